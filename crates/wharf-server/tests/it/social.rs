//! Contacts, groups, channels, `/api/status`, `/api/user` and `/api/decrypt-media` on the
//! emulator (and refused on the Cloud API).

use std::time::Duration;

use serde_json::{Value, json};
use wharf_core::social::{ParticipantOutcome, ParticipantRole};
use wharf_server::http::wapio::{
    account::{StatusView, UserView},
    channels::{ChannelListView, ChannelView},
    contacts::{ContactListView, ContactView, OnWhatsappView, PictureView},
    groups::{
        CreatedGroupView, GroupListView, GroupView, InviteLinkView, InvitePreviewView,
        ParticipantListView, ParticipantResultsView,
    },
};
use wharf_testkit::{TestApp, assert_error, session_and_key};

const FRIEND: &str = "+15550102030";
const FRIEND_JID: &str = "15550102030@s.whatsapp.net";
const ABSENT: &str = "+15550109999";
const PRIVATE: &str = "+15550108888";

/// A connected emulator session on `phone`: `(id, key)`.
async fn session_on(app: &TestApp, phone: &str) -> (String, String) {
    let created = app.create_session(json!({})).await;
    let (id, key) = session_and_key(&created);
    app.post(&format!("/v1/whatsapp-sessions/{id}/connect"))
        .expect(200)
        .await;
    app.post(&format!("/emulator/sessions/{id}/scan"))
        .json(json!({ "phone_number": phone }))
        .expect(200)
        .await;
    (id, key)
}

async fn setup_contact(app: &TestApp, session: &str, body: Value) {
    app.post(&format!("/emulator/sessions/{session}/contacts"))
        .json(body)
        .expect(204)
        .await;
}

/// The session's events of type `kind`.
async fn events(app: &TestApp, session: &str, kind: &str) -> Vec<Value> {
    let all = app.get("/v1/events?limit=100").expect(200).await;
    all["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == kind && e["session_id"] == session)
        .cloned()
        .collect()
}

#[wharf_testkit::dual_test]
async fn contacts_merge_the_address_book_saved_names_and_senders(app: TestApp) {
    let (s, key) = session_on(&app, "+15550100001").await;
    setup_contact(
        &app,
        &s,
        json!({"phone": FRIEND, "name": "Amina (phone book)"}),
    )
    .await;
    app.call(reqwest::Method::PUT, "/api/contacts")
        .token(&key)
        .json(json!({"phone": "+15550103333", "name": "Bilal"}))
        .expect(200)
        .await;
    app.post(&format!("/emulator/sessions/{s}/inbound"))
        .json(json!({"from": "+15550104444", "text": "hello"}))
        .expect(202)
        .await;
    // Saving a name over the address book's wins, and it is one contact.
    let saved: ContactView = app
        .call(
            reqwest::Method::PUT,
            &format!("/api/contacts?session_id={s}"),
        )
        .json(json!({"phone": FRIEND, "name": "Amina"}))
        .expect_view(200)
        .await;
    assert_eq!(saved.jid, FRIEND_JID);
    assert_eq!(saved.name.as_deref(), Some("Amina"));
    assert!(saved.saved && saved.in_address_book && !saved.blocked);
    assert!(saved.lid.as_deref().is_some_and(|l| l.ends_with("@lid")));

    let all: ContactListView = app.get("/api/contacts").token(&key).expect_view(200).await;
    let jids: Vec<&str> = all.data.iter().map(|c| c.jid.as_str()).collect();
    assert_eq!(
        jids,
        [
            FRIEND_JID,
            "15550103333@s.whatsapp.net",
            "15550104444@s.whatsapp.net"
        ]
    );
    let sender = &all.data[2];
    assert!(sender.last_message_at.is_some() && sender.name.is_none());

    // Paged by cursor, searchable by name and number.
    let first: ContactListView = app
        .get(&format!("/api/contacts?session_id={s}&limit=2"))
        .expect_view(200)
        .await;
    assert_eq!(first.data.len(), 2);
    let cursor = first.next_cursor.expect("a next page");
    let rest: ContactListView = app
        .get(&format!("/api/contacts?session_id={s}&cursor={cursor}"))
        .expect_view(200)
        .await;
    assert_eq!(rest.data.len(), 1);
    assert_eq!(rest.next_cursor, None);
    let by_name: ContactListView = app
        .get(&format!("/api/contacts?session_id={s}&search=bil"))
        .expect_view(200)
        .await;
    assert_eq!(by_name.data.len(), 1);
    assert_eq!(by_name.data[0].name.as_deref(), Some("Bilal"));
    let by_number: ContactListView = app
        .get(&format!("/api/contacts?session_id={s}&search=4444"))
        .expect_view(200)
        .await;
    assert_eq!(by_number.data.len(), 1);

    let one: ContactView = app
        .get("/api/contacts/+15550103333")
        .token(&key)
        .expect_view(200)
        .await;
    assert_eq!(one.name.as_deref(), Some("Bilal"));
    let unknown = app
        .get("/api/contacts/+15550107777")
        .token(&key)
        .expect(404)
        .await;
    assert_error(&unknown, "not_found");

    // Bad input names the field.
    let bad = app
        .call(reqwest::Method::PUT, "/api/contacts")
        .token(&key)
        .json(json!({"phone": "", "name": ""}))
        .expect(422)
        .await;
    assert!(assert_error(&bad, "validation_error")["phone"].is_array());
    let bad = app
        .call(reqwest::Method::PUT, "/api/contacts")
        .token(&key)
        .json(json!({"phone": FRIEND, "name": "  "}))
        .expect(422)
        .await;
    assert!(assert_error(&bad, "validation_error")["name"].is_array());
    // A PAT names the session.
    let unnamed = app.get("/api/contacts").expect(422).await;
    assert!(assert_error(&unnamed, "validation_error")["session_id"].is_array());
}

#[wharf_testkit::dual_test]
async fn pictures_blocking_and_on_whatsapp(app: TestApp) {
    let (s, key) = session_on(&app, "+15550100001").await;
    let none = app
        .get(&format!("/api/contacts/{FRIEND_JID}/picture"))
        .token(&key)
        .expect(404)
        .await;
    assert_error(&none, "not_found");
    setup_contact(
        &app,
        &s,
        json!({"phone": FRIEND, "picture_url": "https://pics.example.com/amina.jpg"}),
    )
    .await;
    let picture: PictureView = app
        .get(&format!("/api/contacts/{FRIEND}/picture"))
        .token(&key)
        .expect_view(200)
        .await;
    assert_eq!(picture.url, "https://pics.example.com/amina.jpg");

    let blocked: ContactView = app
        .post(&format!("/api/contacts/{FRIEND}/block"))
        .token(&key)
        .expect_view(200)
        .await;
    assert!(blocked.blocked);
    let listed: ContactView = app
        .get(&format!("/api/contacts/{FRIEND}"))
        .token(&key)
        .expect_view(200)
        .await;
    assert!(listed.blocked, "the block is reflected in the contact");
    // A blocked contact's messages are not delivered; a send to it fails.
    app.post(&format!("/emulator/sessions/{s}/inbound"))
        .json(json!({"from": FRIEND, "text": "hi?"}))
        .expect(409)
        .await;
    let id = app.send_text(&s, FRIEND, "to a blocked contact").await;
    let failed = app.wait_status(&id, "failed").await;
    assert!(
        failed["failure_reason"]
            .as_str()
            .unwrap()
            .contains("blocked")
    );
    let unblocked: ContactView = app
        .post(&format!("/api/contacts/{FRIEND}/unblock"))
        .token(&key)
        .expect_view(200)
        .await;
    assert!(!unblocked.blocked);
    app.post(&format!("/emulator/sessions/{s}/inbound"))
        .json(json!({"from": FRIEND, "text": "hi again"}))
        .expect(202)
        .await;

    let on: OnWhatsappView = app
        .get(&format!("/api/on-whatsapp/{ABSENT}"))
        .token(&key)
        .expect_view(200)
        .await;
    assert!(on.exists);
    assert_eq!(on.jid.as_deref(), Some("15550109999@s.whatsapp.net"));
    assert!(on.lid.is_some());
    // A short cache: the number leaving WhatsApp shows after a minute, not at once.
    setup_contact(&app, &s, json!({"phone": ABSENT, "on_whatsapp": false})).await;
    let cached: OnWhatsappView = app
        .get(&format!("/api/on-whatsapp/{ABSENT}"))
        .token(&key)
        .expect_view(200)
        .await;
    assert!(cached.exists);
    app.config.clock.advance(Duration::from_secs(61));
    let fresh: OnWhatsappView = app
        .get(&format!("/api/on-whatsapp/{ABSENT}"))
        .token(&key)
        .expect_view(200)
        .await;
    assert!(!fresh.exists);
    assert_eq!(fresh.jid, None);
    let bad = app
        .get("/api/on-whatsapp/not-a-number")
        .token(&key)
        .expect(422)
        .await;
    assert!(assert_error(&bad, "validation_error")["phone"].is_array());
}

#[wharf_testkit::dual_test]
async fn groups_have_participants_admins_settings_and_per_participant_results(app: TestApp) {
    let (a, a_key) = session_on(&app, "+15550100001").await;
    let (b, b_key) = session_on(&app, "+15550100002").await;
    setup_contact(&app, &a, json!({"phone": ABSENT, "on_whatsapp": false})).await;
    setup_contact(
        &app,
        &a,
        json!({"phone": PRIVATE, "privacy_restricted": true}),
    )
    .await;

    let created: CreatedGroupView = app
        .post("/api/groups")
        .token(&a_key)
        .json(json!({"subject": "Team", "participants": ["+15550100002", ABSENT, PRIVATE, FRIEND]}))
        .expect_view(201)
        .await;
    let outcomes: Vec<ParticipantOutcome> = created.results.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            ParticipantOutcome::Added,
            ParticipantOutcome::NotOnWhatsapp,
            ParticipantOutcome::PrivacyRestricted,
            ParticipantOutcome::Added
        ]
    );
    let group = created.group.jid.clone();
    assert!(group.ends_with("@g.us"));
    assert_eq!(created.group.size, 3);
    assert_eq!(
        created.group.participants[0].role,
        ParticipantRole::Superadmin
    );

    // The other session was added: it sees the group and got `group.joined`.
    let b_groups: GroupListView = app.get("/api/groups").token(&b_key).expect_view(200).await;
    assert_eq!(b_groups.data.len(), 1);
    assert_eq!(b_groups.data[0].subject, "Team");
    assert_eq!(events(&app, &a, "group.joined").await.len(), 1);
    let joined = events(&app, &b, "group.joined").await;
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0]["data"]["group_jid"], group.as_str());

    let meta: GroupView = app
        .get(&format!("/api/groups/{group}/metadata"))
        .token(&a_key)
        .expect_view(200)
        .await;
    assert_eq!(meta.owner.as_deref(), Some("15550100001@s.whatsapp.net"));
    let again: ParticipantResultsView = app
        .post(&format!("/api/groups/{group}/participants"))
        .token(&a_key)
        .json(json!({"participants": [FRIEND, "+15550105555"]}))
        .expect_view(200)
        .await;
    assert_eq!(again.results[0].outcome, ParticipantOutcome::AlreadyInGroup);
    assert_eq!(again.results[1].outcome, ParticipantOutcome::Added);

    // A non-admin is refused admin actions with a clear error.
    let refused = app
        .post(&format!("/api/groups/{group}/participants/add"))
        .token(&b_key)
        .json(json!({"participants": ["+15550106666"]}))
        .expect(403)
        .await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("not an admin")
    );
    app.get(&format!("/api/groups/{group}/invite-link"))
        .token(&b_key)
        .expect(403)
        .await;
    app.call(
        reqwest::Method::PUT,
        &format!("/api/groups/{group}/settings"),
    )
    .token(&b_key)
    .json(json!({"announce": true}))
    .expect(403)
    .await;

    let promoted: ParticipantResultsView = app
        .post(&format!("/api/groups/{group}/participants/promote"))
        .token(&a_key)
        .json(json!({"participants": ["+15550100002", "+15550107777"]}))
        .expect_view(200)
        .await;
    assert_eq!(promoted.results[0].outcome, ParticipantOutcome::Promoted);
    assert_eq!(promoted.results[1].outcome, ParticipantOutcome::NotInGroup);
    let list: ParticipantListView = app
        .get(&format!("/api/groups/{group}/participants"))
        .token(&b_key)
        .expect_view(200)
        .await;
    let b_role = list
        .data
        .iter()
        .find(|p| p.jid.to_string() == "15550100002@s.whatsapp.net")
        .unwrap()
        .role;
    assert_eq!(b_role, ParticipantRole::Admin);
    let demoted: ParticipantResultsView = app
        .post(&format!("/api/groups/{group}/participants/demote"))
        .token(&b_key)
        .json(json!({"participants": ["+15550100001"]}))
        .expect_view(200)
        .await;
    assert_eq!(
        demoted.results[0].outcome,
        ParticipantOutcome::NotAllowed,
        "the creator stays"
    );
    assert!(!events(&app, &a, "group.participants").await.is_empty());

    // Settings: known keys apply, unknown ones are named.
    let bad = app
        .call(
            reqwest::Method::PUT,
            &format!("/api/groups/{group}/settings"),
        )
        .token(&a_key)
        .json(json!({"key_0": 712, "subject": "x"}))
        .expect(422)
        .await;
    assert!(assert_error(&bad, "validation_error")["key_0"].is_array());
    let bad = app
        .call(
            reqwest::Method::PUT,
            &format!("/api/groups/{group}/settings"),
        )
        .token(&a_key)
        .json(json!({"ephemeral_seconds": 5}))
        .expect(422)
        .await;
    assert!(assert_error(&bad, "validation_error")["ephemeral_seconds"].is_array());
    let updated: GroupView = app
        .call(reqwest::Method::PUT, &format!("/api/groups/{group}/settings"))
        .token(&a_key)
        .json(json!({"subject": "Team 2", "description": "Weekly", "announce": true, "locked": true, "ephemeral_seconds": 86400, "join_approval": false}))
        .expect_view(200)
        .await;
    assert_eq!(updated.subject, "Team 2");
    assert!(updated.settings.announce && updated.settings.locked);
    assert_eq!(updated.settings.ephemeral_seconds, 86400);
    let seen = events(&app, &b, "group.updated").await;
    assert_eq!(seen[0]["data"]["changes"]["subject"], "Team 2");

    // Removing a member: it is told it left.
    let removed: ParticipantResultsView = app
        .call(
            reqwest::Method::DELETE,
            &format!("/api/groups/{group}/participants"),
        )
        .token(&a_key)
        .json(json!({"participants": ["+15550100002"]}))
        .expect_view(200)
        .await;
    assert_eq!(removed.results[0].outcome, ParticipantOutcome::Removed);
    assert_eq!(events(&app, &b, "group.left").await.len(), 1);
    app.get(&format!("/api/groups/{group}"))
        .token(&b_key)
        .expect(404)
        .await;

    // Pictures: none, then one.
    app.get(&format!("/api/groups/{group}/picture"))
        .token(&a_key)
        .expect(404)
        .await;
    app.post(&format!("/emulator/sessions/{a}/groups/{group}/picture"))
        .json(json!({"url": "https://pics.example.com/team.jpg"}))
        .expect(204)
        .await;
    let picture: PictureView = app
        .get(&format!("/api/groups/{group}/picture"))
        .token(&a_key)
        .expect_view(200)
        .await;
    assert_eq!(picture.url, "https://pics.example.com/team.jpg");

    let bad = app
        .post("/api/groups")
        .token(&a_key)
        .json(json!({"subject": "", "participants": ["", ""]}))
        .expect(422)
        .await;
    assert!(assert_error(&bad, "validation_error")["participants[0]"].is_array());
    let bad = app
        .post("/api/groups")
        .token(&a_key)
        .json(json!({"subject": " ", "participants": []}))
        .expect(422)
        .await;
    assert!(assert_error(&bad, "validation_error")["subject"].is_array());
    let bad = app
        .get("/api/groups/12345@s.whatsapp.net")
        .token(&a_key)
        .expect(422)
        .await;
    assert!(assert_error(&bad, "validation_error")["groupJid"].is_array());
}

#[wharf_testkit::dual_test]
async fn an_invite_round_trip_between_two_sessions(app: TestApp) {
    let (a, a_key) = session_on(&app, "+15550100001").await;
    let (c, c_key) = session_on(&app, "+15550100003").await;
    let created: CreatedGroupView = app
        .post("/api/groups")
        .token(&a_key)
        .json(json!({"subject": "Open", "participants": []}))
        .expect_view(201)
        .await;
    let group = created.group.jid;
    let link: InviteLinkView = app
        .get(&format!("/api/groups/{group}/invite-link?session_id={a}"))
        .expect_view(200)
        .await;
    assert_eq!(
        link.invite_link,
        format!("https://chat.whatsapp.com/{}", link.invite_code)
    );
    let preview: InvitePreviewView = app
        .get(&format!("/api/groups/invite/{}", link.invite_code))
        .token(&c_key)
        .expect_view(200)
        .await;
    assert_eq!(
        (preview.group_jid.as_str(), preview.size),
        (group.as_str(), 1)
    );
    let joined: GroupView = app
        .post("/api/groups/invite/accept")
        .token(&c_key)
        .json(json!({"invite_code": link.invite_link}))
        .expect_view(200)
        .await;
    assert_eq!(joined.size, 2);
    assert_eq!(events(&app, &c, "group.joined").await.len(), 1);
    let told = events(&app, &a, "group.participants").await;
    assert_eq!(told[0]["data"]["action"], "join");
    // Accepting twice is a clear conflict.
    app.post("/api/groups/invite/accept")
        .token(&c_key)
        .json(json!({"invite_code": link.invite_code}))
        .expect(409)
        .await;

    // A member's message reaches the other members' sessions.
    let sent = app
        .post("/api/send-message")
        .token(&c_key)
        .json(json!({"to": group, "text": "hello group"}))
        .expect(202)
        .await;
    app.wait_status(sent["message_id"].as_str().unwrap(), "sent")
        .await;
    let logs = app
        .eventually(
            &format!("/api/whatsapp-sessions/{a}/message-logs?chat={group}"),
            |l| !l["data"].as_array().unwrap().is_empty(),
        )
        .await;
    assert_eq!(logs["data"][0]["direction"], "in");
    assert_eq!(logs["data"][0]["sender_jid"], "15550100003@s.whatsapp.net");

    // Announce-only: a plain member's send fails with the reason.
    app.call(
        reqwest::Method::PUT,
        &format!("/api/groups/{group}/settings"),
    )
    .token(&a_key)
    .json(json!({"announce": true}))
    .expect(200)
    .await;
    let refused = app
        .post("/api/send-message")
        .token(&c_key)
        .json(json!({"to": group, "text": "me too"}))
        .expect(202)
        .await;
    let failed = app
        .wait_status(refused["message_id"].as_str().unwrap(), "failed")
        .await;
    assert!(
        failed["failure_reason"]
            .as_str()
            .unwrap()
            .contains("only admins")
    );

    // Resetting the link revokes the old code.
    let reset: InviteLinkView = app
        .post(&format!("/api/groups/{group}/invite-link/reset"))
        .token(&a_key)
        .expect_view(200)
        .await;
    assert_ne!(reset.invite_code, link.invite_code);
    app.get(&format!("/api/groups/invite/{}", link.invite_code))
        .token(&c_key)
        .expect(404)
        .await;

    app.post(&format!("/api/groups/{group}/leave"))
        .token(&c_key)
        .expect(200)
        .await;
    assert_eq!(events(&app, &c, "group.left").await.len(), 1);
    let left: GroupListView = app.get("/api/groups").token(&c_key).expect_view(200).await;
    assert!(left.data.is_empty());
    let bad = app
        .post("/api/groups/invite/accept")
        .token(&c_key)
        .json(json!({"invite_code": ""}))
        .expect(422)
        .await;
    assert!(assert_error(&bad, "validation_error")["invite_code"].is_array());
    // The code to resolve is the path's `inviteCode`, and its error names that.
    let bad = app
        .get("/api/groups/invite/bad$code")
        .token(&c_key)
        .expect(422)
        .await;
    let errors = assert_error(&bad, "validation_error");
    assert!(errors["inviteCode"].is_array(), "{bad}");
}

#[wharf_testkit::dual_test]
async fn another_accounts_sessions_groups_and_contacts_are_not_found(app: TestApp) {
    let (a, a_key) = session_on(&app, "+15550100001").await;
    let created: CreatedGroupView = app
        .post("/api/groups")
        .token(&a_key)
        .json(json!({"subject": "Private", "participants": []}))
        .expect_view(201)
        .await;
    let group = created.group.jid;
    app.call(reqwest::Method::PUT, "/api/contacts")
        .token(&a_key)
        .json(json!({"phone": FRIEND, "name": "Amina"}))
        .expect(200)
        .await;
    let (_, intruder) = app.store.create_account("intruder").await.unwrap();
    let token = intruder.raw.clone();
    for path in [
        format!("/api/groups/{group}?session_id={a}"),
        format!("/api/contacts/{FRIEND}?session_id={a}"),
        format!("/api/contacts?session_id={a}"),
        format!("/api/status?session_id={a}"),
    ] {
        let answer = app.get(&path).token(&token).expect(404).await;
        assert_error(&answer, "not_found");
    }
    // Its own session is not in the group either.
    let (_, other_key) = session_on(&app, "+15550100009").await;
    app.get(&format!("/api/groups/{group}"))
        .token(&other_key)
        .expect(404)
        .await;
}

#[wharf_testkit::dual_test]
async fn channels_are_followed_and_their_posts_reach_followers(app: TestApp) {
    let (a, a_key) = session_on(&app, "+15550100001").await;
    let (b, b_key) = session_on(&app, "+15550100002").await;
    let made = app
        .post(&format!("/emulator/sessions/{a}/channels"))
        .json(json!({"name": "News", "description": "Daily"}))
        .expect(201)
        .await;
    let channel = made["jid"].as_str().unwrap().to_owned();
    let followed: ChannelView = app
        .post(&format!("/api/channels/{channel}/follow"))
        .token(&b_key)
        .expect_view(200)
        .await;
    assert!(followed.following && !followed.owner);
    assert_eq!(followed.followers, 1);
    let list: ChannelListView = app
        .get("/api/channels")
        .token(&b_key)
        .expect_view(200)
        .await;
    assert_eq!(list.data.len(), 1);
    let meta: ChannelView = app
        .get(&format!("/api/channels/{channel}"))
        .token(&a_key)
        .expect_view(200)
        .await;
    assert!(meta.owner && meta.name == "News");

    let post = app
        .post("/api/send-message")
        .token(&a_key)
        .json(json!({"channel_id": channel, "text": "edition 1"}))
        .expect(202)
        .await;
    app.wait_status(post["message_id"].as_str().unwrap(), "sent")
        .await;
    let logs = app
        .eventually(
            &format!("/api/whatsapp-sessions/{b}/message-logs?chat={channel}"),
            |l| !l["data"].as_array().unwrap().is_empty(),
        )
        .await;
    assert_eq!(logs["data"][0]["content"]["text"], "edition 1");
    // A follower cannot post in someone else's channel.
    let refused = app
        .post("/api/send-message")
        .token(&b_key)
        .json(json!({"channel_id": channel, "text": "mine?"}))
        .expect(202)
        .await;
    app.wait_status(refused["message_id"].as_str().unwrap(), "failed")
        .await;

    let unfollowed: ChannelView = app
        .post(&format!("/api/channels/{channel}/unfollow"))
        .token(&b_key)
        .expect_view(200)
        .await;
    assert!(!unfollowed.following);
    app.get("/api/channels/120363999999999999@newsletter")
        .token(&b_key)
        .expect(404)
        .await;
    let bad = app
        .post(&format!("/api/channels/{FRIEND_JID}/follow"))
        .token(&b_key)
        .expect(422)
        .await;
    assert!(assert_error(&bad, "validation_error")["channelJid"].is_array());
}

#[wharf_testkit::dual_test]
async fn status_user_and_decrypt_media(app: TestApp) {
    let (s, key) = session_on(&app, "+15550100001").await;
    let status: StatusView = app.get("/api/status").token(&key).expect_view(200).await;
    assert_eq!(status.session_id, s);
    assert!(status.connected);
    assert_eq!(status.phone_number.as_deref(), Some("+15550100001"));
    let user: UserView = app
        .get(&format!("/api/user?session_id={s}"))
        .expect_view(200)
        .await;
    assert_eq!(user.jid, "15550100001@s.whatsapp.net");
    // The emulator has no media servers: it says so before doing anything.
    let refused = app
        .post("/api/decrypt-media")
        .token(&key)
        .json(json!({"message": {"url": "https://mmg.whatsapp.net/x", "mediaKey": "AAAA"}}))
        .expect(422)
        .await;
    assert_error(&refused, "unsupported_by_engine");

    // A disconnected session answers status, and refuses what needs WhatsApp.
    app.post(&format!("/v1/whatsapp-sessions/{s}/disconnect"))
        .expect(200)
        .await;
    let status: StatusView = app.get("/api/status").token(&key).expect_view(200).await;
    assert!(!status.connected);
    let offline = app.get("/api/groups").token(&key).expect(409).await;
    assert_error(&offline, "session_not_connected");
}

#[wharf_testkit::dual_test]
async fn the_cloud_api_refuses_what_it_has_no_equivalent_for(app: TestApp) {
    let (_graph, cloud) = crate::cloud::connected(&app).await;
    for (method, path, body) in [
        (reqwest::Method::GET, "/api/groups".to_owned(), None),
        (
            reqwest::Method::POST,
            "/api/groups".to_owned(),
            Some(json!({"subject": "x", "participants": []})),
        ),
        (
            reqwest::Method::GET,
            format!("/api/on-whatsapp/{FRIEND}"),
            None,
        ),
        (reqwest::Method::GET, "/api/contacts".to_owned(), None),
        (
            reqwest::Method::POST,
            format!("/api/contacts/{FRIEND}/block"),
            None,
        ),
        (reqwest::Method::GET, "/api/channels".to_owned(), None),
        (reqwest::Method::GET, "/api/user".to_owned(), None),
    ] {
        let mut call = app.call(method, &path).token(&cloud.key);
        if let Some(body) = body {
            call = call.json(body);
        }
        let answer = call.expect(422).await;
        assert_error(&answer, "unsupported_by_engine");
    }
    let status: StatusView = app
        .get("/api/status")
        .token(&cloud.key)
        .expect_view(200)
        .await;
    assert_eq!(status.session_id, cloud.session);
}
