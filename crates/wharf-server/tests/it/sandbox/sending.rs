//! Sending through the sandbox number, expiry, revocation and isolation between accounts.

use std::time::Duration;

use serde_json::{Value, json};
use wharf_testkit::{Backend, TestApp, TestReceiver, assert_error};

use super::{
    kapso::{
        HOUR_MS, PHONE_2, PHONE_3, chat_of, count_of, kapso_activate, kapso_create, kapso_list,
        millis, receive_until, wait_n_events,
    },
    *,
};

/// `POST /api/send-message` through the sandbox to `to`, authenticated with `token`.
fn sandbox_send<'a>(app: &'a TestApp, token: &str, to: &str) -> wharf_testkit::Call<'a> {
    app.post("/api/send-message")
        .token(token)
        .json(json!({"session_id": "sandbox", "to": to, "text": "hello from the sandbox"}))
}

/// Asserts a send was refused because `to` is not activated for the caller.
fn not_activated(body: &Value) {
    let errors = assert_error(body, "sandbox_recipient_not_activated");
    assert!(
        errors["to"].as_array().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// Sends through the sandbox with `token`; returns the message id.
async fn send_ok(app: &TestApp, token: &str, to: &str) -> String {
    sandbox_send(app, token, to).expect(202).await["message_id"]
        .as_str()
        .expect("message_id")
        .to_owned()
}

/// Polls a message's info with `token` until its status is `status`.
async fn wait_status_as(app: &TestApp, token: &str, message: &str, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let info = app
            .get(&format!("/api/messages/{message}/info"))
            .token(token)
            .expect(200)
            .await;
        if info["status"] == status {
            return info;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never {status}: {info}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[wharf_testkit::dual_test]
async fn sends_go_only_to_the_accounts_activated_phones(mut app: wharf_testkit::TestApp) {
    // No sandbox number: refused, naming session_id.
    let body = sandbox_send(&app, &app.pat, DEV_PHONE).expect(422).await;
    let errors = assert_error(&body, "sandbox_not_configured");
    assert!(errors["session_id"].is_array(), "{body}");

    let (number, number_key) = app.connected_session().await;
    set_number(&app, &number).await;
    let number_phone = app
        .get(&format!("/v1/whatsapp-sessions/{number}"))
        .expect(200)
        .await["phone_number"]
        .as_str()
        .expect("a connected session has a number")
        .to_owned();
    // A phone without a sandbox session.
    not_activated(&sandbox_send(&app, &app.pat, DEV_PHONE).expect(422).await);
    // A pending one.
    let session = kapso_create(&app, &app.pat, DEV_PHONE, 201).await;
    not_activated(&sandbox_send(&app, &app.pat, DEV_PHONE).expect(422).await);
    // Nothing was queued by the refusals.
    assert!(
        app.get(&format!(
            "/api/whatsapp-sessions/{number}/message-logs?direction=out"
        ))
        .expect(200)
        .await["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Activated: accepted and sent from the sandbox number.
    kapso_activate(&app, &app.pat, &number, &session).await;
    let id = send_ok(&app, &app.pat, DEV_PHONE).await;
    let info = app.wait_status(&id, "sent").await;
    assert_eq!(info["session_id"], number.as_str());
    assert_eq!(info["direction"], "out");
    let sent = wait_n_events(&app, &app.pat, "message.sent", 2).await;
    let event = sent
        .iter()
        .find(|e| e["data"]["message_id"] == id.as_str())
        .expect("its message.sent");
    assert_eq!(event["data"]["chat_jid"], chat_of(DEV_PHONE));
    assert_eq!(event["data"]["session_id"], number.as_str());
    // The phone written other ways is the same recipient.
    for to in [
        DEV_DIGITS.to_owned(),
        chat_of(DEV_PHONE),
        "+34 688 246 216".to_owned(),
    ] {
        let id = send_ok(&app, &app.pat, &to).await;
        app.wait_status(&id, "sent").await;
    }

    // Other recipients stay refused: another phone, a group, the sandbox number itself.
    not_activated(&sandbox_send(&app, &app.pat, PHONE_2).expect(422).await);
    let _pending = kapso_create(&app, &app.pat, PHONE_2, 201).await;
    not_activated(&sandbox_send(&app, &app.pat, PHONE_2).expect(422).await);
    not_activated(
        &sandbox_send(&app, &app.pat, "120363025246125888@g.us")
            .expect(422)
            .await,
    );
    not_activated(
        &sandbox_send(&app, &app.pat, &number_phone)
            .expect(422)
            .await,
    );

    // Session-scoped keys cannot use the sandbox: the number's own, or another session's.
    let (_, other_key) = app.connected_session().await;
    for key in [&number_key, &other_key] {
        let body = sandbox_send(&app, key, DEV_PHONE).expect(403).await;
        assert_error(&body, "forbidden");
    }

    // Once the sandbox number's session is deleted, there is no sandbox.
    app.delete(&format!("/v1/whatsapp-sessions/{number}"))
        .expect(202)
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = sandbox_send(&app, &app.pat, DEV_PHONE).send().await;
        if answer.status.as_u16() == 422 && answer.json["reason_code"] == "sandbox_not_configured" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still sending: {}",
            answer.text
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[wharf_testkit::dual_test]
async fn a_pending_session_expires_after_a_day(mut app: wharf_testkit::TestApp) {
    let (number, _) = emulator_number(&app).await;
    let session = kapso_create(&app, &app.pat, DEV_PHONE, 201).await;
    let id = session["id"].as_str().unwrap().to_owned();
    let code = session["activation_code"].as_str().unwrap().to_owned();

    // A second before the end it is still there.
    app.config.clock.advance(Duration::from_secs(24 * 3600 - 1));
    assert_eq!(kapso_list(&app, &app.pat).await.len(), 1);
    app.get(&format!("/api/v1/sandbox_sessions/{id}"))
        .api_key(&app.pat)
        .expect(200)
        .await;
    let zernio = app.get("/v1/whatsapp/sandbox/sessions").expect(200).await;
    assert_eq!(zernio["sessions"].as_array().unwrap().len(), 1, "{zernio}");

    // Past 24 h it is gone from every view.
    app.config.clock.advance(Duration::from_secs(2));
    assert!(kapso_list(&app, &app.pat).await.is_empty());
    let zernio = app.get("/v1/whatsapp/sandbox/sessions").expect(200).await;
    assert_eq!(zernio["sessions"], json!([]), "{zernio}");
    app.get(&format!("/api/v1/sandbox_sessions/{id}"))
        .api_key(&app.pat)
        .expect(404)
        .await;
    app.delete(&format!("/api/v1/sandbox_sessions/{id}"))
        .api_key(&app.pat)
        .expect(404)
        .await;

    // Its code no longer activates anything: the message is an ordinary one.
    phone_writes(&app, &number, DEV_PHONE, &code).await;
    let received = wait_events(&app, &app.pat, "message.received").await;
    assert!(received[0]["data"].get("sandbox").is_none(), "{received:?}");
    assert!(
        events_of(&app, &app.pat, "sandbox.activated")
            .await
            .is_empty()
    );
    not_activated(&sandbox_send(&app, &app.pat, DEV_PHONE).expect(422).await);
    assert!(
        events_of(&app, &app.pat, "message.sent").await.is_empty(),
        "no confirmation"
    );

    // The phone starts over with a new session, which activates with its own code.
    let fresh = kapso_create(&app, &app.pat, DEV_PHONE, 201).await;
    assert_ne!(fresh["id"], id.as_str());
    let active = kapso_activate(&app, &app.pat, &number, &fresh).await;
    assert_eq!(active["id"], fresh["id"]);
    send_ok(&app, &app.pat, DEV_PHONE).await;
}

#[wharf_testkit::dual_test]
async fn an_active_session_expires_after_a_week(mut app: wharf_testkit::TestApp) {
    let (number, _) = emulator_number(&app).await;
    let session = kapso_create(&app, &app.pat, DEV_PHONE, 201).await;
    let id = session["id"].as_str().unwrap().to_owned();
    let active = kapso_activate(&app, &app.pat, &number, &session).await;
    let activated_at = millis(active["activated_at"].as_str().unwrap());
    assert_eq!(
        millis(active["expires_at"].as_str().unwrap()) - activated_at,
        7 * 24 * HOUR_MS
    );

    // A minute before the week is over: still listed, sends accepted and sent.
    app.config
        .clock
        .advance(Duration::from_secs(7 * 24 * 3600 - 60));
    let listed = kapso_list(&app, &app.pat).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["status"], "active");
    let last = send_ok(&app, &app.pat, DEV_PHONE).await;

    // Past it: refused at once, and listed nowhere.
    app.config.clock.advance(Duration::from_secs(120));
    not_activated(&sandbox_send(&app, &app.pat, DEV_PHONE).expect(422).await);
    assert!(kapso_list(&app, &app.pat).await.is_empty());
    assert_eq!(
        app.get("/v1/whatsapp/sandbox/sessions").expect(200).await["sessions"],
        json!([])
    );
    app.get(&format!("/api/v1/sandbox_sessions/{id}"))
        .api_key(&app.pat)
        .expect(404)
        .await;
    // What was accepted before still goes out.
    app.wait_status(&last, "sent").await;

    // The phone's messages are no longer routed through the expired session.
    phone_writes(&app, &number, DEV_PHONE, "still there?").await;
    let received = wait_n_events(&app, &app.pat, "message.received", 2).await;
    assert_eq!(received[1]["data"]["content"]["text"], "still there?");
    assert!(
        received[1]["data"].get("sandbox").is_none(),
        "{:?}",
        received[1]
    );

    // And it can join again.
    let again = kapso_create(&app, &app.pat, DEV_PHONE, 201).await;
    assert_ne!(again["id"], id.as_str());
    assert_eq!(again["status"], "pending_activation");
}

#[wharf_testkit::dual_test]
async fn another_account_cannot_see_revoke_use_or_take_a_phone(mut app: wharf_testkit::TestApp) {
    let (number, _) = emulator_number(&app).await;
    let mine = kapso_create(&app, &app.pat, DEV_PHONE, 201).await;
    let mine_id = mine["id"].as_str().unwrap().to_owned();
    kapso_activate(&app, &app.pat, &number, &mine).await;
    let pending = kapso_create(&app, &app.pat, PHONE_2, 201).await;
    let other = other_account(&app).await;

    // Invisible to the other account, which cannot revoke it either.
    assert!(kapso_list(&app, &other).await.is_empty());
    assert_eq!(
        app.get("/v1/whatsapp/sandbox/sessions")
            .token(&other)
            .expect(200)
            .await["sessions"],
        json!([])
    );
    for id in [mine_id.as_str(), pending["id"].as_str().unwrap()] {
        app.get(&format!("/api/v1/sandbox_sessions/{id}"))
            .api_key(&other)
            .expect(404)
            .await;
        app.delete(&format!("/api/v1/sandbox_sessions/{id}"))
            .api_key(&other)
            .expect(404)
            .await;
        let body = app
            .delete(&format!("/v1/whatsapp/sandbox/sessions/{id}"))
            .token(&other)
            .expect(400)
            .await;
        assert!(body["error"].is_string(), "{body}");
    }
    let still = kapso_list(&app, &app.pat).await;
    assert_eq!(still.len(), 2);
    assert_eq!(still[0]["status"], "active");

    // It cannot send to my activated phone through the sandbox.
    not_activated(&sandbox_send(&app, &other, DEV_PHONE).expect(422).await);
    not_activated(&sandbox_send(&app, &other, PHONE_2).expect(422).await);

    // Nor take my phones, active or pending, in either dialect.
    for phone in [DEV_PHONE, PHONE_2] {
        let body = app
            .post("/api/v1/sandbox_sessions")
            .api_key(&other)
            .json(json!({"whatsapp_sandbox_session": {"phone_number": phone}}))
            .expect(422)
            .await;
        assert!(body["errors"]["phone_number"].is_array(), "{body}");
        let body = app
            .post("/v1/whatsapp/sandbox/sessions")
            .token(&other)
            .json(json!({"phone": phone}))
            .expect(400)
            .await;
        assert_eq!(body["code"], "invalid_field_value", "{body}");
        assert_eq!(body["param"], "phone", "{body}");
    }
    assert!(kapso_list(&app, &other).await.is_empty());
    // Nothing was sent to my phones by those attempts.
    assert!(events_of(&app, &other, "message.sent").await.is_empty());

    // A phone of nobody's is free for it.
    kapso_create(&app, &other, PHONE_3, 201).await;

    // My sends are unaffected.
    let id = send_ok(&app, &app.pat, DEV_PHONE).await;
    app.wait_status(&id, "sent").await;
    // And my messages are mine.
    app.get(&format!("/api/messages/{id}/info"))
        .token(&other)
        .expect(404)
        .await;
}

#[wharf_testkit::dual_test]
async fn concurrent_claims_of_a_phone_leave_one_owner(mut app: wharf_testkit::TestApp) {
    emulator_number(&app).await;
    let other = other_account(&app).await;
    let tokens = [app.pat.clone(), other.clone()];
    let attempts = (0..8).map(|i| {
        let (app, token) = (&app, tokens[i % 2].clone());
        async move {
            let answer = app
                .post("/api/v1/sandbox_sessions")
                .api_key(&token)
                .json(json!({"whatsapp_sandbox_session": {"phone_number": DEV_PHONE}}))
                .send()
                .await;
            (token, answer.status.as_u16(), answer.json)
        }
    });
    let answers = futures::future::join_all(attempts).await;
    let created: Vec<_> = answers
        .iter()
        .filter(|(_, status, _)| *status == 201)
        .collect();
    assert_eq!(created.len(), 1, "exactly one creation: {answers:?}");
    let owner = created[0].0.clone();
    let id = created[0].2["data"]["id"].clone();
    for (token, status, body) in &answers {
        if *token == owner {
            assert!(
                *status == 201 || (*status == 200 && body["data"]["id"] == id),
                "{status} {body}"
            );
        } else {
            assert_eq!(*status, 422, "{body}");
            assert!(body["errors"]["phone_number"].is_array(), "{body}");
        }
    }
    let loser = if owner == app.pat { &other } else { &app.pat };
    assert_eq!(kapso_list(&app, &owner).await.len(), 1);
    assert!(kapso_list(&app, loser).await.is_empty());
}

#[wharf_testkit::dual_test]
async fn inbound_from_a_phone_belongs_to_the_account_of_its_session(
    mut app: wharf_testkit::TestApp,
) {
    // The sandbox number is the test account's; the phone joins another account.
    let (number, _) = emulator_number(&app).await;
    let other = other_account(&app).await;
    let mut owner_hook = TestReceiver::start().await;
    app.post("/v1/webhooks")
        .json(json!({"target_url": owner_hook.url("/owner")}))
        .expect(201)
        .await;
    let mut their_hook = TestReceiver::start().await;
    let theirs = app
        .post("/v1/webhooks")
        .token(&other)
        .json(json!({"target_url": their_hook.url("/theirs")}))
        .expect(201)
        .await;
    let their_secret = theirs["signing_secret"].as_str().unwrap().to_owned();

    let session = kapso_create(&app, &other, DEV_PHONE, 201).await;
    let session_id = session["id"].as_str().unwrap().to_owned();
    kapso_activate(&app, &other, &number, &session).await;
    phone_writes(&app, &number, DEV_PHONE, "hello other account").await;

    // Recorded for the owning account, naming its sandbox session.
    let activated = wait_events(&app, &other, "sandbox.activated").await;
    assert_eq!(
        activated[0]["data"]["sandbox_session_id"],
        session_id.as_str()
    );
    let received = wait_n_events(&app, &other, "message.received", 2).await;
    for event in &received {
        assert_eq!(
            event["data"]["sandbox"]["sandbox_session_id"],
            session_id.as_str(),
            "{event}"
        );
        assert_eq!(event["data"]["sender_jid"], chat_of(DEV_PHONE));
        assert_eq!(event["data"]["session_id"], number.as_str());
    }
    assert_eq!(
        received[1]["data"]["content"]["text"],
        "hello other account"
    );
    let confirmation = wait_events(&app, &other, "message.sent").await;
    assert_eq!(confirmation[0]["data"]["chat_jid"], chat_of(DEV_PHONE));
    let message = received[1]["data"]["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let info = app
        .get(&format!("/api/messages/{message}/info"))
        .token(&other)
        .expect(200)
        .await;
    assert_eq!(info["direction"], "in");

    // Delivered to the owning account's webhook, signed with its secret.
    let got = receive_until(&mut their_hook, |got| {
        count_of(got, "sandbox.activated") == 1 && count_of(got, "message.received") == 2
    })
    .await;
    let mut texts = Vec::new();
    for r in &got {
        assert!(r.signature_valid(&their_secret), "{}", r.body);
        match r.json["type"].as_str().unwrap() {
            "sandbox.activated" => {
                assert_eq!(r.json["data"]["sandbox_session_id"], session_id.as_str())
            }
            "message.received" => {
                assert_eq!(
                    r.json["data"]["sandbox"]["sandbox_session_id"],
                    session_id.as_str()
                );
                texts.push(
                    r.json["data"]["content"]["text"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                );
            }
            // The confirmation, sent to the phone on the account's behalf.
            "message.sent" => assert_eq!(r.json["data"]["chat_jid"], chat_of(DEV_PHONE)),
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert!(
        texts.contains(&"hello other account".to_owned()),
        "{texts:?}"
    );

    // The number's owner sees none of it: no events, no messages, no webhook calls.
    for kind in ["message.received", "sandbox.activated", "message.sent"] {
        assert!(
            events_of(&app, &app.pat, kind).await.is_empty(),
            "{kind} leaked to the number's owner"
        );
    }
    assert_eq!(
        app.get(&format!("/api/whatsapp-sessions/{number}/message-logs"))
            .expect(200)
            .await["data"],
        json!([])
    );
    app.get(&format!("/api/messages/{message}/info"))
        .expect(404)
        .await;
    assert!(
        owner_hook.quiet_for(Duration::from_millis(500)).await,
        "the owner's webhook got nothing"
    );

    // The other account sends to its phone through the sandbox; the owner cannot.
    let id = send_ok(&app, &other, DEV_PHONE).await;
    wait_status_as(&app, &other, &id, "sent").await;
    app.get(&format!("/api/messages/{id}/info"))
        .expect(404)
        .await;
    not_activated(&sandbox_send(&app, &app.pat, DEV_PHONE).expect(422).await);

    // A phone with no sandbox session writing to the number is the owner's traffic.
    phone_writes(&app, &number, PHONE_3, "who is this?").await;
    let owners = wait_events(&app, &app.pat, "message.received").await;
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0]["data"]["sender_jid"], chat_of(PHONE_3));
    assert!(owners[0]["data"].get("sandbox").is_none());
    assert_eq!(
        owner_hook.next_of("message.received").await.json["data"]["sender_jid"],
        chat_of(PHONE_3)
    );
    assert_eq!(events_of(&app, &other, "message.received").await.len(), 2);
}

/// Revocation: with slow retries, so a message accepted before it is still in flight when
/// the session is revoked.
#[wharf_testkit::dual_test]
async fn revocation_blocks_new_sends_but_not_accepted_ones(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.send_retry_base_ms = 300;
        c.send_retry_max_ms = 1000;
    })
    .await
    else {
        return;
    };
    let (number, _) = emulator_number(&app).await;
    let session = kapso_create(&app, &app.pat, DEV_PHONE, 201).await;
    let id = session["id"].as_str().unwrap().to_owned();
    kapso_activate(&app, &app.pat, &number, &session).await;
    // The confirmation is out before the number starts failing.
    wait_events(&app, &app.pat, "message.sent").await;

    app.post(&format!("/emulator/sessions/{number}/failures"))
        .json(json!({"mode": "retryable", "reason": "network hiccup"}))
        .expect(204)
        .await;
    let accepted = send_ok(&app, &app.pat, DEV_PHONE).await;
    app.eventually(&format!("/api/messages/{accepted}/info"), |m| {
        m["attempts"].as_i64().unwrap_or_default() >= 1
    })
    .await;

    // Revoked: the next send is refused at once.
    let deleted = app
        .delete(&format!("/api/v1/sandbox_sessions/{id}"))
        .api_key(&app.pat)
        .send()
        .await;
    assert_eq!(deleted.status.as_u16(), 204);
    not_activated(&sandbox_send(&app, &app.pat, DEV_PHONE).expect(422).await);
    assert!(kapso_list(&app, &app.pat).await.is_empty());

    // The message accepted before still goes out once the number recovers.
    app.post(&format!("/emulator/sessions/{number}/failures"))
        .json(json!({"mode": "none"}))
        .expect(204)
        .await;
    let info = app.wait_status(&accepted, "sent").await;
    assert!(info["attempts"].as_i64().unwrap() >= 2, "{info}");
    assert!(info["failure_reason"].is_null(), "{info}");

    // The phone's messages are no longer routed through the revoked session.
    phone_writes(&app, &number, DEV_PHONE, "after revocation").await;
    let received = wait_n_events(&app, &app.pat, "message.received", 2).await;
    assert_eq!(received[1]["data"]["content"]["text"], "after revocation");
    assert!(received[1]["data"].get("sandbox").is_none());

    // A new session, activated again, restores sending.
    let again = kapso_create(&app, &app.pat, DEV_PHONE, 201).await;
    assert_ne!(again["id"], id.as_str());
    not_activated(&sandbox_send(&app, &app.pat, DEV_PHONE).expect(422).await);
    kapso_activate(&app, &app.pat, &number, &again).await;
    let id = send_ok(&app, &app.pat, DEV_PHONE).await;
    app.wait_status(&id, "sent").await;
}

#[wharf_testkit::dual_test]
async fn revocation_also_stops_resends_edits_and_presence_but_not_replays(
    mut app: wharf_testkit::TestApp,
) {
    // The number is the test account's; another account uses the sandbox.
    let (number, _) = emulator_number(&app).await;
    let user = other_account(&app).await;
    let session = kapso_create(&app, &user, DEV_PHONE, 201).await;
    kapso_activate(&app, &user, &number, &session).await;

    // Presence never goes through the sandbox number.
    let body = app
        .post("/api/send-presence-update")
        .token(&user)
        .json(json!({"session_id": "sandbox", "to": DEV_PHONE, "presence": "composing"}))
        .expect(422)
        .await;
    assert!(
        assert_error(&body, "validation_error")["session_id"].is_array(),
        "{body}"
    );

    // A keyed send, then a text that is sent, then one that fails for good.
    let keyed = json!({"session_id": "sandbox", "to": DEV_PHONE, "text": "keyed"});
    let first = app
        .post("/api/send-message")
        .token(&user)
        .header("idempotency-key", "k-1")
        .json(keyed.clone())
        .expect(202)
        .await;
    let sent = send_ok(&app, &user, DEV_PHONE).await;
    wait_status_as(&app, &user, &sent, "sent").await;
    app.post(&format!("/emulator/sessions/{number}/failures"))
        .json(json!({"mode": "permanent", "count": 1}))
        .expect(204)
        .await;
    let failed = send_ok(&app, &user, DEV_PHONE).await;
    wait_status_as(&app, &user, &failed, "failed").await;
    // While the phone is active, both operations are allowed.
    app.post(&format!("/api/messages/{sent}/edit"))
        .token(&user)
        .json(json!({"text": "edited"}))
        .expect(200)
        .await;

    let id = session["id"].as_str().unwrap();
    app.delete(&format!("/api/v1/sandbox_sessions/{id}"))
        .api_key(&user)
        .expect(204)
        .await;

    // The retry of an accepted request still gets its answer...
    let replay = app
        .post("/api/send-message")
        .token(&user)
        .header("idempotency-key", "k-1")
        .json(keyed)
        .expect(202)
        .await;
    assert_eq!(replay, first);
    // ...but nothing new reaches the phone: no resend, no edit.
    not_activated(
        &app.post(&format!("/api/messages/{failed}/resend"))
            .token(&user)
            .expect(422)
            .await,
    );
    not_activated(
        &app.post(&format!("/api/messages/{sent}/edit"))
            .token(&user)
            .json(json!({"text": "changed"}))
            .expect(422)
            .await,
    );
    assert_eq!(
        wait_status_as(&app, &user, &failed, "failed").await["status"],
        "failed"
    );
}

#[wharf_testkit::dual_test]
async fn a_reply_never_names_another_accounts_message(mut app: wharf_testkit::TestApp) {
    let (number, _) = emulator_number(&app).await;
    // The number's owner (the test account) writes to the phone first.
    let own = app
        .send_text(&number, DEV_PHONE, "operator's message")
        .await;
    let own_wamid = app.wait_status(&own, "sent").await["provider_msg_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Then another account activates the phone.
    let other = other_account(&app).await;
    let session = kapso_create(&app, &other, DEV_PHONE, 201).await;
    kapso_activate(&app, &other, &number, &session).await;
    // The phone replies to the operator's message: the reply is the other account's, and
    // names no message of the operator's.
    app.post(&format!("/emulator/sessions/{number}/inbound"))
        .json(json!({"from": DEV_PHONE, "text": "re: that", "quoted_message_id": own}))
        .expect(202)
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let reply = loop {
        let received = events_of(&app, &other, "message.received").await;
        if let Some(reply) = received
            .into_iter()
            .find(|e| e["data"]["content"]["text"] == "re: that")
        {
            break reply;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reply never arrived"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(reply["data"]["quoted_message_id"].is_null(), "{reply}");
    assert_eq!(
        reply["data"]["sandbox"]["sandbox_session_id"],
        session["id"]
    );
    // The operator's own reply to its own message still resolves.
    app.post(&format!("/emulator/sessions/{number}/inbound"))
        .json(json!({"from": "+15550107777", "text": "mine", "quoted_message_id": own}))
        .expect(202)
        .await;
    let logs = app
        .eventually(
            &format!("/api/whatsapp-sessions/{number}/message-logs?direction=in"),
            |l| {
                l["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["content"]["text"] == "mine")
            },
        )
        .await;
    let mine = logs["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["content"]["text"] == "mine")
        .unwrap()
        .clone();
    assert_eq!(mine["quoted_message_id"], own.as_str(), "{mine}");
    assert!(!own_wamid.is_empty());
}
