//! The web engine's contacts, groups and channels, driven through the fake port: the
//! request each call sends, how answers and errors map, the synced address book, and the
//! conversions of the crate's group notifications and contact actions.

use std::time::Duration;

use serde_json::json;
use wharf_core::{
    Engine, EngineError, EngineUpdate, Phone,
    social::{
        ChannelInfo, EngineContact, GroupChange, GroupEventKind, GroupInfo, GroupSettings,
        InvitePreview, Participant, ParticipantAction, ParticipantOutcome, ParticipantResult,
        ParticipantRole, Registration, SocialCapabilities, UserInfo,
    },
};
use whatsapp_rust::{
    Jid as WaJid,
    chrono::Utc,
    types::events::{ContactUpdate, GroupUpdate},
    wacore::stanza::groups::{GroupNotificationAction as A, GroupParticipantInfo},
    waproto::whatsapp::sync_action_value::ContactAction,
};

use super::{
    PortError, PortEvent, WEB_SOCIAL, WebConfig,
    book::merge,
    convert::social::{Own, contact_change, group_event, participant_outcome},
    fake::{SocialAnswer, SocialCall},
    port::{ContactChange, JoinAnswer},
    tests::{jid, online, phone, setup_with},
};

fn group(members: &[(&str, ParticipantRole)]) -> GroupInfo {
    GroupInfo {
        jid: jid("120363000000000001@g.us"),
        subject: "Team".into(),
        description: None,
        owner: Some(jid("15551230001@s.whatsapp.net")),
        created_at: 1_700_000_000_000,
        participants: members
            .iter()
            .map(|(j, role)| Participant {
                jid: jid(j),
                role: *role,
            })
            .collect(),
        settings: GroupSettings::default(),
    }
}

#[tokio::test]
async fn the_engine_declares_what_whatsapp_web_can_do_and_refuses_the_rest() {
    let s = setup_with(WebConfig::default());
    assert_eq!(s.engine.social(), WEB_SOCIAL);
    assert_eq!(
        WEB_SOCIAL,
        SocialCapabilities {
            on_whatsapp: true,
            contacts: true,
            groups: true,
            channel_follow: true,
            user: true,
            decrypt_media: true,
        }
    );
    let (session, port) = online(&s).await;
    let refused = s
        .engine
        .decrypt_media(session.id, &json!({"url": "x"}))
        .await
        .unwrap_err();
    // Media decryption is claimed (web/media.rs); a body that names no WhatsApp media is
    // refused without asking WhatsApp anything.
    assert!(
        matches!(&refused, EngineError::Permanent(m) if m.contains("not a usable media reference")),
        "{refused:?}"
    );
    assert!(port.social_calls().is_empty());
    assert!(
        !port
            .calls()
            .iter()
            .any(|c| matches!(c, crate::web::fake::FakeCall::Download(_)))
    );
}

#[tokio::test]
async fn contact_requests_reach_the_port_and_their_answers_come_back() {
    let s = setup_with(WebConfig::default());
    let (session, port) = online(&s).await;
    let id = session.id;
    let amina = Phone::parse("+15550102030").unwrap();
    let amina_jid = jid("15550102030@s.whatsapp.net");
    let registration = Registration {
        exists: true,
        jid: Some(amina_jid.clone()),
        lid: Some(jid("201234567890123@lid")),
    };
    port.answer_social([
        SocialAnswer::Registration(registration.clone()),
        SocialAnswer::Picture(Some("https://pps.whatsapp.net/a.jpg".into())),
        SocialAnswer::Picture(None),
        SocialAnswer::Jids(vec![amina_jid.clone()]),
        SocialAnswer::Done,
        SocialAnswer::User(UserInfo {
            phone: phone(),
            jid: jid("15551230001@s.whatsapp.net"),
            name: Some("Shop".into()),
            picture_url: None,
        }),
    ]);
    assert_eq!(
        s.engine.on_whatsapp(id, &amina).await.unwrap(),
        registration
    );
    assert_eq!(
        s.engine.picture(id, &amina_jid).await.unwrap().as_deref(),
        Some("https://pps.whatsapp.net/a.jpg")
    );
    assert_eq!(s.engine.picture(id, &amina_jid).await.unwrap(), None);
    assert_eq!(
        s.engine.blocklist(id).await.unwrap(),
        vec![amina_jid.clone()]
    );
    s.engine.set_blocked(id, &amina_jid, true).await.unwrap();
    let me = s.engine.user(id).await.unwrap();
    assert_eq!(me.name.as_deref(), Some("Shop"));
    assert_eq!(
        port.social_calls(),
        vec![
            SocialCall::OnWhatsapp(amina.clone()),
            SocialCall::Picture(amina_jid.clone()),
            SocialCall::Picture(amina_jid.clone()),
            SocialCall::Blocklist,
            SocialCall::SetBlocked(amina_jid, true),
            SocialCall::User,
        ]
    );
}

#[tokio::test]
async fn group_requests_send_their_shape_and_answer_per_participant() {
    let s = setup_with(WebConfig::default());
    let (session, port) = online(&s).await;
    let id = session.id;
    let me = "15551230001@s.whatsapp.net";
    let info = group(&[(me, ParticipantRole::Superadmin)]);
    let g = info.jid.clone();
    let asked = vec![
        jid("15550000001@s.whatsapp.net"),
        jid("15550000002@s.whatsapp.net"),
        jid("15550000003@s.whatsapp.net"),
    ];
    let answered = vec![
        ParticipantResult {
            jid: asked[0].clone(),
            outcome: ParticipantOutcome::Added,
        },
        ParticipantResult {
            jid: asked[1].clone(),
            outcome: ParticipantOutcome::PrivacyRestricted,
        },
        ParticipantResult {
            jid: asked[2].clone(),
            outcome: ParticipantOutcome::NotOnWhatsapp,
        },
    ];
    port.answer_social([
        SocialAnswer::Created(info.clone(), answered.clone()),
        SocialAnswer::Results(answered[..1].to_vec()),
        SocialAnswer::Groups(vec![info.clone()]),
        SocialAnswer::Group(None),
        SocialAnswer::Code("AbCdEf123".into()),
        SocialAnswer::Done,
        SocialAnswer::Preview(Some(InvitePreview {
            jid: g.clone(),
            subject: "Team".into(),
            description: None,
            size: 2,
        })),
        SocialAnswer::Preview(None),
    ]);
    let (created, results) = s.engine.create_group(id, "Team", &asked).await.unwrap();
    assert_eq!(created, info);
    assert_eq!(results, answered);
    let promoted = s
        .engine
        .update_participants(id, &g, ParticipantAction::Promote, &asked[..1])
        .await
        .unwrap();
    assert_eq!(promoted, answered[..1]);
    assert_eq!(s.engine.groups(id).await.unwrap(), vec![info.clone()]);
    assert_eq!(s.engine.group(id, &g).await.unwrap(), None);
    assert_eq!(
        s.engine.invite_code(id, &g, true).await.unwrap(),
        "AbCdEf123"
    );
    s.engine.leave_group(id, &g).await.unwrap();
    assert_eq!(
        s.engine
            .resolve_invite(id, "AbCdEf123")
            .await
            .unwrap()
            .unwrap()
            .size,
        2
    );
    assert_eq!(s.engine.resolve_invite(id, "gone").await.unwrap(), None);
    assert_eq!(
        port.social_calls(),
        vec![
            SocialCall::CreateGroup("Team".into(), asked.clone()),
            SocialCall::Participants(g.clone(), ParticipantAction::Promote, asked[..1].to_vec()),
            SocialCall::Groups,
            SocialCall::Group(g.clone()),
            SocialCall::InviteCode(g.clone(), true),
            SocialCall::LeaveGroup(g.clone()),
            SocialCall::ResolveInvite("AbCdEf123".into()),
            SocialCall::ResolveInvite("gone".into()),
        ]
    );
}

#[tokio::test]
async fn settings_go_one_request_each_then_the_group_is_read_back() {
    let s = setup_with(WebConfig::default());
    let (session, port) = online(&s).await;
    let mut info = group(&[("15551230001@s.whatsapp.net", ParticipantRole::Admin)]);
    info.settings.announce = true;
    info.subject = "Renamed".into();
    let g = info.jid.clone();
    port.answer_social([
        SocialAnswer::Done,
        SocialAnswer::Done,
        SocialAnswer::Group(Some(info.clone())),
    ]);
    let changes = [
        GroupChange::Subject("Renamed".into()),
        GroupChange::Announce(true),
    ];
    let now = s
        .engine
        .update_group(session.id, &g, &changes)
        .await
        .unwrap();
    assert_eq!(now, info);
    assert_eq!(
        port.social_calls(),
        vec![
            SocialCall::UpdateGroup(g.clone(), changes[0].clone()),
            SocialCall::UpdateGroup(g.clone(), changes[1].clone()),
            SocialCall::Group(g.clone()),
        ]
    );

    // A refusal midway stops there, with WhatsApp's reason as a conflict.
    port.answer_social([SocialAnswer::Fail(PortError::Conflict(
        "WhatsApp refused: the session may not do this (403 forbidden)".into(),
    ))]);
    let refused = s
        .engine
        .update_group(session.id, &g, &changes)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, EngineError::Conflict(m) if m.contains("403")),
        "{refused:?}"
    );
    assert_eq!(port.social_calls().len(), 4);
}

#[tokio::test]
async fn port_failures_map_to_the_engine_contract() {
    let s = setup_with(WebConfig::default());
    let (session, port) = online(&s).await;
    let id = session.id;
    let g = jid("120363000000000001@g.us");
    port.answer_social([
        SocialAnswer::Fail(PortError::Conflict("not an admin".into())),
        SocialAnswer::Fail(PortError::NotConnected),
        SocialAnswer::Fail(PortError::Rejected(
            "WhatsApp answered 406 not-acceptable".into(),
        )),
        SocialAnswer::Fail(PortError::Throttled {
            reason: "rate-overlimit".into(),
            after: Duration::from_secs(30),
        }),
        SocialAnswer::Fail(PortError::Transient("timed out".into())),
    ]);
    let e = s.engine.invite_code(id, &g, false).await.unwrap_err();
    assert!(matches!(e, EngineError::Conflict(_)), "{e:?}");
    let e = s.engine.groups(id).await.unwrap_err();
    assert!(matches!(e, EngineError::RetryLater { .. }), "{e:?}");
    let e = s.engine.channels(id).await.unwrap_err();
    assert!(matches!(e, EngineError::Permanent(_)), "{e:?}");
    let e = s.engine.blocklist(id).await.unwrap_err();
    assert!(
        matches!(
            e,
            EngineError::RetryLater {
                after_ms: Some(30_000),
                ..
            }
        ),
        "{e:?}"
    );
    let e = s.engine.user(id).await.unwrap_err();
    assert!(matches!(e, EngineError::Transient(_)), "{e:?}");

    // A session that is not online asks nothing of WhatsApp.
    let other = super::tests::setup_with(WebConfig::default());
    let e = other
        .engine
        .groups(wharf_core::SessionId::generate())
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
}

#[tokio::test]
async fn invites_and_channels_map_each_answer() {
    let s = setup_with(WebConfig::default());
    let (session, port) = online(&s).await;
    let id = session.id;
    let g = jid("120363000000000001@g.us");
    let channel = jid("120363111111111111@newsletter");
    let info = ChannelInfo {
        jid: channel.clone(),
        name: "News".into(),
        description: None,
        followers: 12,
        following: true,
        owner: false,
    };
    port.answer_social([
        SocialAnswer::Join(JoinAnswer::Joined(g.clone())),
        SocialAnswer::Join(JoinAnswer::Unknown),
        SocialAnswer::Join(JoinAnswer::Refused("needs an admin's approval".into())),
        SocialAnswer::Found(true),
        SocialAnswer::Found(false),
        SocialAnswer::Channels(vec![info.clone()]),
        SocialAnswer::Channel(None),
    ]);
    assert_eq!(s.engine.accept_invite(id, "a").await.unwrap(), Some(g));
    assert_eq!(s.engine.accept_invite(id, "b").await.unwrap(), None);
    let e = s.engine.accept_invite(id, "c").await.unwrap_err();
    assert!(
        matches!(&e, EngineError::Conflict(m) if m.contains("approval")),
        "{e:?}"
    );
    assert!(s.engine.follow_channel(id, &channel, true).await.unwrap());
    assert!(!s.engine.follow_channel(id, &channel, false).await.unwrap());
    assert_eq!(s.engine.channels(id).await.unwrap(), vec![info]);
    assert_eq!(s.engine.channel(id, &channel).await.unwrap(), None);
    let calls = port.social_calls();
    assert_eq!(calls[3], SocialCall::FollowChannel(channel.clone(), true));
    assert_eq!(calls[4], SocialCall::FollowChannel(channel.clone(), false));
}

#[tokio::test]
async fn synced_contacts_form_one_address_book_entry_per_person() {
    let s = setup_with(WebConfig::default());
    let (session, port) = online(&s).await;
    let lid = jid("201234567890123@lid");
    let pn = jid("15550102030@s.whatsapp.net");
    // First seen by LID only (a push name), then the phone's address book links the two.
    port.emit(PortEvent::Contacts(vec![ContactChange {
        jid: lid.clone(),
        lid: Some(lid.clone()),
        name: None,
        push_name: Some("Amina ✨".into()),
    }]));
    port.emit(PortEvent::Contacts(vec![ContactChange {
        jid: pn.clone(),
        lid: Some(lid.clone()),
        name: Some("Amina Diallo".into()),
        push_name: None,
    }]));
    let want = EngineContact {
        jid: pn.clone(),
        lid: Some(lid.clone()),
        name: Some("Amina Diallo".into()),
        push_name: Some("Amina ✨".into()),
    };
    let mut book = Vec::new();
    for _ in 0..500 {
        book = s.engine.contacts(session.id).await.unwrap();
        if book == vec![want.clone()] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(book, vec![want]);
    // A later push name by LID lands on the same person.
    port.emit(PortEvent::Contacts(vec![ContactChange {
        jid: lid.clone(),
        lid: Some(lid),
        name: None,
        push_name: Some("Amina".into()),
    }]));
    for _ in 0..500 {
        book = s.engine.contacts(session.id).await.unwrap();
        if book[0].push_name.as_deref() == Some("Amina") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(book.len(), 1, "{book:?}");
    assert_eq!(book[0].jid, pn);
    assert_eq!(book[0].name.as_deref(), Some("Amina Diallo"));
    assert_eq!(book[0].push_name.as_deref(), Some("Amina"));

    // Unlinking the device forgets what it synced.
    s.engine.logout(session.id).await.unwrap();
    assert!(s.engine.contacts(session.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn group_notifications_reach_the_sink_as_group_updates() {
    let s = setup_with(WebConfig::default());
    let (session, port) = online(&s).await;
    let me = WaJid::pn("15551230001");
    let own = Own {
        pn: Some(me.clone()),
        lid: None,
    };
    let update = notification(A::Subject {
        subject: "Renamed".into(),
        subject_owner: None,
        subject_time: None,
    });
    let event = group_event(&update, &own).unwrap();
    port.emit(PortEvent::Updates(vec![EngineUpdate::Group(event.clone())]));
    let got = s
        .recorder
        .wait_for("group", |u| matches!(u, EngineUpdate::Group(_)))
        .await;
    assert_eq!(got, EngineUpdate::Group(event));
    let _ = session;
}

fn person(number: &str) -> GroupParticipantInfo {
    GroupParticipantInfo {
        jid: WaJid::pn(number),
        phone_number: None,
        display_name: None,
        r#type: None,
        lid: None,
        username: None,
        join_time: None,
        group_history_sent_state: None,
    }
}

fn notification(action: A) -> GroupUpdate {
    GroupUpdate::builder()
        .group_jid("120363000000000001@g.us".parse().unwrap())
        .participant(WaJid::pn("15550000009"))
        .timestamp(Utc::now())
        .is_lid_addressing_mode(false)
        .action(action)
        .build()
}

#[test]
fn group_notifications_become_the_events_the_emulator_reports() {
    let own = Own {
        pn: Some(WaJid::pn("15551230001")),
        lid: Some(WaJid::lid("201234567890123")),
    };
    let added_me = notification(A::Add {
        participants: vec![person("15551230001")],
        reason: None,
    });
    let e = group_event(&added_me, &own).unwrap();
    assert_eq!(e.kind, GroupEventKind::Joined);
    assert_eq!(e.group.to_string(), "120363000000000001@g.us");
    assert_eq!(e.detail["reason"], "added");
    assert_eq!(e.detail["by"], "15550000009@s.whatsapp.net");

    let added_others = notification(A::Add {
        participants: vec![person("15550000001"), person("15550000002")],
        reason: None,
    });
    let e = group_event(&added_others, &own).unwrap();
    assert_eq!(e.kind, GroupEventKind::Participants);
    assert_eq!(e.detail["action"], "add");
    assert_eq!(
        e.detail["participants"],
        json!(["15550000001@s.whatsapp.net", "15550000002@s.whatsapp.net"])
    );

    let removed_me = notification(A::Remove {
        participants: vec![person("15551230001")],
        reason: None,
    });
    let e = group_event(&removed_me, &own).unwrap();
    assert_eq!(e.kind, GroupEventKind::Left);
    assert_eq!(e.detail["reason"], "removed");

    let left = notification(A::Remove {
        participants: vec![person("15550000009")],
        reason: None,
    });
    assert_eq!(group_event(&left, &own).unwrap().detail["action"], "leave");

    let promoted = notification(A::Promote {
        participants: vec![person("15550000001")],
    });
    assert_eq!(
        group_event(&promoted, &own).unwrap().detail["action"],
        "promote"
    );

    for (action, key, value) in [
        (
            A::Subject {
                subject: "New".into(),
                subject_owner: None,
                subject_time: None,
            },
            "subject",
            json!("New"),
        ),
        (A::Announce, "announce", json!(true)),
        (A::Unlocked, "locked", json!(false)),
        (
            A::Ephemeral {
                expiration: 86_400,
                trigger: None,
            },
            "ephemeral_seconds",
            json!(86_400),
        ),
        (
            A::MembershipApprovalMode { enabled: true },
            "join_approval",
            json!(true),
        ),
    ] {
        let e = group_event(&notification(action), &own).unwrap();
        assert_eq!(e.kind, GroupEventKind::Updated);
        assert_eq!(e.detail["changes"][key], value, "{key}");
    }
    assert!(group_event(&notification(A::RevokeInvite), &own).is_none());
}

#[test]
fn contact_actions_name_the_person_by_number_when_whatsapp_gives_it() {
    let by_lid = ContactUpdate::builder()
        .jid(WaJid::lid("201234567890123"))
        .timestamp(Utc::now())
        .action(Box::new(ContactAction {
            full_name: Some("Amina Diallo".into()),
            pn_jid: Some("15550102030@s.whatsapp.net".into()),
            ..Default::default()
        }))
        .from_full_sync(true)
        .build();
    let change = contact_change(&by_lid).unwrap();
    assert_eq!(change.jid, jid("15550102030@s.whatsapp.net"));
    assert_eq!(change.lid, Some(jid("201234567890123@lid")));
    assert_eq!(change.name.as_deref(), Some("Amina Diallo"));

    let lid_only = ContactUpdate::builder()
        .jid(WaJid::lid("201234567890123"))
        .timestamp(Utc::now())
        .action(Box::new(ContactAction {
            first_name: Some("Amina".into()),
            ..Default::default()
        }))
        .from_full_sync(false)
        .build();
    let change = contact_change(&lid_only).unwrap();
    assert_eq!(change.jid, jid("201234567890123@lid"));
    assert_eq!(change.name.as_deref(), Some("Amina"));
}

#[test]
fn whatsapps_participant_codes_are_named() {
    use ParticipantAction::*;
    use ParticipantOutcome as O;
    assert_eq!(participant_outcome(Add, None, None), O::Added);
    assert_eq!(
        participant_outcome(Add, Some("403"), None),
        O::PrivacyRestricted
    );
    assert_eq!(
        participant_outcome(Add, Some("409"), None),
        O::AlreadyInGroup
    );
    assert_eq!(participant_outcome(Add, Some("408"), None), O::NotAllowed);
    assert_eq!(participant_outcome(Remove, None, None), O::Removed);
    assert_eq!(
        participant_outcome(Remove, Some("404"), None),
        O::NotInGroup
    );
    assert_eq!(
        participant_outcome(Demote, Some("406"), None),
        O::NotAllowed
    );
    assert_eq!(participant_outcome(Promote, None, None), O::Promoted);
}

#[test]
fn a_number_absorbs_the_lid_entry_of_the_same_person() {
    let lid = jid("201234567890123@lid");
    let pn = jid("15550102030@s.whatsapp.net");
    let known = vec![EngineContact {
        jid: lid.clone(),
        lid: Some(lid.clone()),
        name: None,
        push_name: Some("Amina".into()),
    }];
    let (removed, entry) = merge(
        &known,
        &ContactChange {
            jid: pn.clone(),
            lid: Some(lid.clone()),
            name: Some("Amina Diallo".into()),
            push_name: None,
        },
    );
    assert_eq!(removed, vec![lid.clone()]);
    assert_eq!(entry.jid, pn);
    assert_eq!(entry.push_name.as_deref(), Some("Amina"));
    assert_eq!(entry.name.as_deref(), Some("Amina Diallo"));
}
