//! Changing sent messages: edits, deletions and withdrawals, read marks and presence,
//! replies and reactions, and what the contact sees of them.

use super::*;

#[wharf_testkit::dual_test]
async fn edit_delete_read_and_presence(mut app: wharf_testkit::TestApp) {
    let (s, _) = app.connected_session().await;
    let id = app.send_text(&s, TO, "typo").await;
    app.wait_status(&id, "sent").await;
    app.post(&format!("/api/messages/{id}/edit"))
        .json(json!({"text": "fixed"}))
        .expect(200)
        .await;
    let edited = app
        .eventually(&format!("/api/messages/{id}/info"), |m| {
            m["edited_at"].is_string()
        })
        .await;
    assert!(
        edited["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event_type"] == "message.edited")
    );
    let logs = app
        .get(&format!("/api/whatsapp-sessions/{s}/message-logs"))
        .expect(200)
        .await;
    assert_eq!(logs["data"][0]["content"]["text"], "fixed");
    app.call(reqwest::Method::PUT, &format!("/api/messages/{id}"))
        .json(json!({"text": "again"}))
        .expect(200)
        .await;
    app.post(&format!("/api/messages/{id}/edit"))
        .json(json!({"text": ""}))
        .expect(422)
        .await;

    let answer = app.delete(&format!("/api/messages/{id}")).expect(200).await;
    assert_eq!(answer["message"], "Dispatched");
    app.wait_status(&id, "deleted").await;
    app.delete(&format!("/api/messages/{id}")).expect(409).await;
    app.post(&format!("/api/messages/{id}/edit"))
        .json(json!({"text": "late"}))
        .expect(409)
        .await;

    // Received messages are marked read.
    let injected = app
        .post(&format!("/emulator/sessions/{s}/inbound"))
        .json(json!({"from": TO, "text": "hello?"}))
        .expect(202)
        .await;
    assert!(
        injected["provider_msg_id"]
            .as_str()
            .unwrap()
            .starts_with("3EB0")
    );
    let logs = inbound_log(&app, &s, 1).await;
    let inbound = logs["data"][0]["message_id"].as_str().unwrap().to_owned();
    app.post("/api/messages/read")
        .json(json!({"message_ids": [inbound], "chat_jid": TO_JID}))
        .expect(200)
        .await;
    app.wait_status(&inbound, "read").await;
    app.post("/api/messages/read")
        .json(json!({"message_ids": [inbound], "chat_jid": "15559999999@s.whatsapp.net"}))
        .expect(422)
        .await;
    app.post("/api/messages/read")
        .json(json!({"message_ids": [id], "chat_jid": TO_JID}))
        .expect(422)
        .await;
    app.post("/api/messages/read")
        .json(json!({"message_ids": [], "chat_jid": TO_JID}))
        .expect(422)
        .await;

    for presence in [
        "available",
        "unavailable",
        "composing",
        "recording",
        "paused",
    ] {
        app.post("/api/send-presence-update")
            .json(json!({"session_id": s, "to": TO, "presence": presence}))
            .expect(200)
            .await;
    }
    app.post("/api/send-presence-update")
        .json(json!({"session_id": s, "to": TO, "presence": "dancing"}))
        .expect(422)
        .await;
    app.post("/api/send-presence-update")
        .json(json!({"session_id": s, "presence": "composing"}))
        .expect(422)
        .await;
    app.post(&format!("/v1/whatsapp-sessions/{s}/disconnect"))
        .expect(200)
        .await;
    let refused = app
        .post("/api/send-presence-update")
        .json(json!({"session_id": s, "presence": "available"}))
        .expect(409)
        .await;
    assert_error(&refused, "session_not_connected");
}

#[wharf_testkit::dual_test]
async fn the_contact_sees_edits_revocations_and_read_marks(mut app: wharf_testkit::TestApp) {
    let (s, _) = app.connected_session().await;
    let typo = app.send_text(&s, TO, "typo").await;
    let gone = app.send_text(&s, TO, "oops").await;
    let typo_wid = app.wait_status(&typo, "sent").await["provider_msg_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let gone_wid = app.wait_status(&gone, "sent").await["provider_msg_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(&format!("/emulator/sessions/{s}/inbound"))
        .json(json!({"from": TO, "text": "hello?"}))
        .expect(202)
        .await;
    let logs = inbound_log(&app, &s, 1).await;
    let inbound = logs["data"][0]["message_id"].as_str().unwrap().to_owned();

    app.post(&format!("/api/messages/{typo}/edit"))
        .json(json!({"text": "fixed"}))
        .expect(200)
        .await;
    app.delete(&format!("/api/messages/{gone}"))
        .expect(200)
        .await;
    app.post("/api/messages/read")
        .json(json!({"message_ids": [inbound], "chat_jid": TO_JID}))
        .expect(200)
        .await;
    app.wait_status(&gone, "deleted").await;
    app.wait_status(&inbound, "read").await;
    app.eventually(&format!("/api/messages/{typo}/info"), |m| {
        m["edited_at"].is_string()
    })
    .await;

    let chat = app
        .get(&format!("/emulator/sessions/{s}/chats/{TO_JID}"))
        .expect(200)
        .await;
    let seen = chat["data"].as_array().unwrap();
    assert_eq!(seen.len(), 3, "{chat}");
    assert_eq!(seen[0]["provider_msg_id"], typo_wid.as_str());
    assert_eq!(seen[0]["content"]["text"], "fixed");
    assert_eq!(seen[0]["edited"], true);
    assert_eq!(seen[1]["provider_msg_id"], gone_wid.as_str());
    assert_eq!(seen[1]["revoked"], true);
    assert!(seen[1]["content"].is_null());
    assert_eq!(seen[2]["direction"], "in");
    assert_eq!(seen[2]["read"], true);
    // Another chat is empty; another tenant sees nothing.
    let other = app
        .get(&format!("/emulator/sessions/{s}/chats/+15550109999"))
        .expect(200)
        .await;
    assert_eq!(other["data"].as_array().unwrap().len(), 0);
}

#[wharf_testkit::dual_test]
async fn the_edit_window_closes_fifteen_minutes_after_the_send(mut app: wharf_testkit::TestApp) {
    let (s, _) = app.connected_session().await;
    let id = app.send_text(&s, TO, "typo").await;
    app.wait_status(&id, "sent").await;
    app.config
        .clock
        .advance(std::time::Duration::from_secs(14 * 60));
    app.post(&format!("/api/messages/{id}/edit"))
        .json(json!({"text": "fixed"}))
        .expect(200)
        .await;
    app.config
        .clock
        .advance(std::time::Duration::from_secs(2 * 60));
    let closed = app
        .post(&format!("/api/messages/{id}/edit"))
        .json(json!({"text": "late"}))
        .expect(409)
        .await;
    assert_error(&closed, "edit_window_closed");
}

#[wharf_testkit::dual_test]
async fn a_received_reply_names_the_message_it_replies_to(mut app: wharf_testkit::TestApp) {
    let (s, _) = app.connected_session().await;
    let ours = app.send_text(&s, TO, "Open on Sunday?").await;
    app.wait_status(&ours, "sent").await;
    app.post(&format!("/emulator/sessions/{s}/inbound"))
        .json(json!({"from": TO, "text": "Yes, 10 to 4", "quoted_message_id": ours}))
        .expect(202)
        .await;
    let logs = inbound_log(&app, &s, 1).await;
    let reply = &logs["data"][0];
    assert_eq!(reply["quoted_message_id"], ours.as_str());
    let events = app.get("/v1/events?after=0&limit=100").expect(200).await;
    let received: Vec<_> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "message.received")
        .collect();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["data"]["quoted_message_id"], ours.as_str());

    // Not a reply: null. A message that is not this session's, or not an id: 422.
    app.post(&format!("/emulator/sessions/{s}/inbound"))
        .json(json!({"from": TO, "text": "thanks"}))
        .expect(202)
        .await;
    let logs = inbound_log(&app, &s, 2).await;
    assert!(logs["data"][0]["quoted_message_id"].is_null());
    let (other, _) = app.connected_session().await;
    let theirs = app.send_text(&other, TO, "elsewhere").await;
    app.wait_status(&theirs, "sent").await;
    for bad in [json!(theirs), json!("msg_nope"), json!(7)] {
        let refused = app
            .post(&format!("/emulator/sessions/{s}/inbound"))
            .json(json!({"from": TO, "text": "x", "quoted_message_id": bad}))
            .expect(422)
            .await;
        assert!(
            refused["errors"]["quoted_message_id"].is_array(),
            "{refused}"
        );
    }
}

#[wharf_testkit::dual_test]
async fn a_queued_message_is_withdrawn_at_once(mut app: wharf_testkit::TestApp) {
    let created = app.create_session(json!({})).await;
    let s = created["session"]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = app.send_text(&s, TO, "never mind").await;
    app.delete(&format!("/api/messages/{id}")).expect(200).await;
    let info = app.info(&id).await;
    assert_eq!(info.status, MessageStatus::Deleted);
    // Connecting later sends nothing.
    app.post(&format!("/v1/whatsapp-sessions/{s}/connect"))
        .expect(200)
        .await;
    app.post(&format!("/emulator/sessions/{s}/scan"))
        .expect(200)
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.info(&id).await.sent_at, None);
}

#[wharf_testkit::dual_test]
async fn deleting_a_message_that_keeps_changing_gives_up(mut app: wharf_testkit::TestApp) {
    // A queued message whose send job is gone (as while its outcome is being recorded):
    // withdrawing it loses every time. On PostgreSQL a send's job is its outbox row; on
    // SQLite it is the queued message itself, so deleting outbox rows leaves it whole and the
    // message is withdrawn.
    let created = app.create_session(json!({})).await;
    let s = created["session"]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = app.send_text(&s, TO, "in flight").await;
    app.db()
        .execute(&format!("DELETE FROM outbox WHERE message_id = '{id}'"))
        .await;
    if app.db().backend() == wharf_testkit::Backend::Sqlite {
        app.delete(&format!("/api/messages/{id}")).expect(200).await;
        assert_eq!(
            app.get(&format!("/api/messages/{id}/info"))
                .expect(200)
                .await["status"],
            "deleted"
        );
        return;
    }
    let started = std::time::Instant::now();
    let answer = app.delete(&format!("/api/messages/{id}")).expect(409).await;
    assert_error(&answer, "invalid_state");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        app.get(&format!("/api/messages/{id}/info"))
            .expect(200)
            .await["status"],
        "queued"
    );
}

#[wharf_testkit::dual_test]
async fn replies_and_reactions_refer_to_sent_messages(mut app: wharf_testkit::TestApp) {
    let (s, _) = app.connected_session().await;
    let original = app.send_text(&s, TO, "original").await;
    let early = app
        .post("/api/send-message")
        .json(json!({"session_id": s, "to": TO, "text": "re", "quoted_message_id": original}))
        .send()
        .await;
    assert!(early.status == 202 || early.status == 422, "{}", early.text);
    app.wait_status(&original, "sent").await;
    let reply = send(
        &app,
        json!({"session_id": s, "to": TO, "text": "a reply", "quoted_message_id": original}),
    )
    .await;
    let reply_info = info_at(&app, &reply.message_id, "sent").await;
    assert_eq!(reply_info.kind, MessageKind::Text);
    let reaction = send(&app, json!({"session_id": s, "to": TO, "kind": "reaction", "emoji": "👍", "message_id": original})).await;
    app.wait_status(&reaction.message_id, "sent").await;
    let logs = app
        .get(&format!("/api/whatsapp-sessions/{s}/message-logs"))
        .expect(200)
        .await;
    let reaction_row = logs["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "reaction")
        .unwrap()
        .clone();
    assert_eq!(reaction_row["content"]["target"], original.as_str());
    assert!(
        reaction_row["content"]["target_provider_id"]
            .as_str()
            .unwrap()
            .starts_with("3EB0")
    );
    let reply_row = logs["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["message_id"] == reply.message_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(reply_row["quoted_message_id"], original.as_str());
    // A message that never went out cannot be replied to.
    app.post(&format!("/emulator/sessions/{s}/contacts"))
        .json(json!({"phone": "+15550109999", "on_whatsapp": false}))
        .expect(204)
        .await;
    let failed = app.send_text(&s, "+15550109999", "lost").await;
    app.wait_status(&failed, "failed").await;
    invalid(
        &app,
        json!({"session_id": s, "to": TO, "text": "re", "quoted_message_id": failed}),
        "quoted_message_id",
    )
    .await;
}

#[wharf_testkit::dual_test]
async fn a_message_withdrawn_while_it_was_being_sent_is_revoked(mut app: wharf_testkit::TestApp) {
    // Played at the store: the dispatcher sent the message, the withdrawal committed first.
    let created = app.create_session(json!({})).await;
    let s = created["session"]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = app.send_text(&s, TO, "too late to take back").await;
    let message: wharf_core::MessageId = id.parse().unwrap();
    let account: wharf_core::AccountId = app.account_id.parse().unwrap();
    let row = app
        .store
        .get_message(account, message)
        .await
        .unwrap()
        .unwrap();
    assert!(app.store.withdraw(account, message).await.unwrap());
    let job = wharf_store::OutboxJob::new(
        account,
        row.session_id,
        row.chat_jid.clone(),
        Some(message),
        wharf_store::JobAction::Send,
        Value::Null,
    );
    let at = wharf_core::time::now_millis();
    app.store
        .record_outcomes(&[wharf_store::JobOutcome::Sent {
            job,
            message: Some(Box::new(row.clone())),
            provider_id: "3EB0LATE".into(),
            at,
        }])
        .await
        .unwrap();
    let after = app
        .store
        .get_message(account, message)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.status, wharf_core::message::MessageStatus::Deleted);
    assert_eq!(after.sent_at, Some(at));
    let jobs = app
        .store
        .ready_jobs(row.session_id, wharf_core::time::now_millis() + 1, 10)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        jobs[0].action,
        wharf_store::JobAction::Revoke,
        "it is revoked on WhatsApp"
    );
    let info = app.info(&id).await;
    let kinds: Vec<&str> = info.events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        ["message.deleted"],
        "no message.sent for a withdrawn message"
    );
}

/// A message withdrawn while the dispatcher works through a paced batch that holds it is not
/// sent: a send that waited for its turn reads its message again. Before, the dispatcher sent
/// the copy it had read with the batch (seconds earlier at one send a second), then revoked it.
#[wharf_testkit::dual_test]
async fn a_message_withdrawn_while_its_batch_waits_for_its_pace_is_not_sent(
    mut app: wharf_testkit::TestApp,
) {
    let created = app
        .create_session(json!({"settings": {"pacing": {"per_second": 1, "jitter_ms": 0}}}))
        .await;
    let s = created["session"]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Queued before the session connects, so the dispatcher reads them in one batch.
    let first = app.send_text(&s, "+15550100001", "one").await;
    let second = app.send_text(&s, "+15550100002", "two").await;
    let third = app.send_text(&s, "+15550100003", "three").await;
    app.post(&format!("/v1/whatsapp-sessions/{s}/connect"))
        .expect(200)
        .await;
    app.post(&format!("/emulator/sessions/{s}/scan"))
        .expect(200)
        .await;
    app.wait_status(&first, "sent").await;
    app.delete(&format!("/api/messages/{third}"))
        .expect(200)
        .await;
    app.wait_status(&second, "sent").await;
    // The third's turn comes a second after the second's.
    tokio::time::sleep(std::time::Duration::from_millis(2_000)).await;
    let info = app.info(&third).await;
    assert_eq!(info.status, MessageStatus::Deleted);
    assert_eq!(info.sent_at, None, "the withdrawn message was sent");
}
