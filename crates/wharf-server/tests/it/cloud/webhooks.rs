//! `/webhooks/meta`: the handshake, signatures, inbound messages of every type, statuses
//! (redelivered, out of order, failed), template review outcomes.

use serde_json::{Value, json};
use wharf_testkit::assert_error;

use super::*;

/// A signed `messages` webhook for the test number with `value` (metadata added).
fn messages_body(value: Value) -> Vec<u8> {
    let mut value = value;
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] = json!({"display_phone_number": DISPLAY, "phone_number_id": PNID});
    serde_json::to_vec(&json!({"object": "whatsapp_business_account",
        "entry": [{"id": WABA, "changes": [{"field": "messages", "value": value}]}]}))
    .unwrap()
}

async fn received(app: &TestApp, session: &str) -> Vec<Value> {
    let logs = app
        .get(&format!(
            "/api/whatsapp-sessions/{session}/message-logs?direction=in&limit=100"
        ))
        .expect(200)
        .await;
    let mut data = logs["data"].as_array().cloned().unwrap();
    data.reverse();
    data
}

#[wharf_testkit::dual_test]
async fn the_verification_handshake_checks_the_verify_token(mut app: wharf_testkit::TestApp) {
    let (graph, cloud) = connected(&app).await;
    let ok = app
        .get(&format!(
            "/webhooks/meta?hub.mode=subscribe&hub.verify_token={}&hub.challenge=1158201444",
            cloud.verify_token
        ))
        .anonymous()
        .send()
        .await;
    assert_eq!(ok.status.as_u16(), 200);
    assert_eq!(ok.text, "1158201444");
    assert!(ok.header("content-type").unwrap().starts_with("text/plain"));
    let wrong = app
        .get("/webhooks/meta?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1")
        .anonymous()
        .expect(403)
        .await;
    assert_error(&wrong, "forbidden");
    app.get(&format!(
        "/webhooks/meta?hub.mode=unsubscribe&hub.verify_token={}&hub.challenge=1",
        cloud.verify_token
    ))
    .anonymous()
    .expect(403)
    .await;
    let missing = app
        .get("/webhooks/meta?hub.mode=subscribe&hub.verify_token=x")
        .anonymous()
        .expect(422)
        .await;
    assert!(missing["errors"]["hub.challenge"].is_array(), "{missing}");
    // Both routes are public and documented.
    let doc = app.get("/openapi.json").anonymous().expect(200).await;
    let route = &doc["paths"]["/webhooks/meta"];
    assert!(
        route["get"].is_object() && route["post"].is_object(),
        "{route}"
    );
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test]
async fn deliveries_must_be_signed_with_the_sessions_app_secret(mut app: wharf_testkit::TestApp) {
    let (graph, cloud) = connected(&app).await;
    let body = messages_body(
        json!({"messages": [{"from": USER, "id": "wamid.SIG", "timestamp": "1749416383", "type": "text", "text": {"body": "hi"}}]}),
    );
    assert_eq!(graph.emit_raw(body.clone(), None).await.as_u16(), 401);
    let forged = wharf_testkit::fakegraph::FakeNumber {
        app_secret: "not-the-secret".into(),
        ..cloud.number.clone()
    };
    let other = wharf_testkit::fakegraph::FakeGraph::start().await;
    other.add_number(forged);
    let bad = other.sign(PNID, &body);
    assert_eq!(graph.emit_raw(body.clone(), Some(bad)).await.as_u16(), 403);
    assert_eq!(
        graph
            .emit_raw(body.clone(), Some("sha256=zz".into()))
            .await
            .as_u16(),
        403
    );
    // A tampered body fails the signature of the original.
    let signed = graph.sign(PNID, &body);
    let mut tampered = body.clone();
    let at = tampered.windows(4).position(|w| w == b"\"hi\"").unwrap();
    tampered[at + 1] = b'H';
    assert_eq!(
        graph
            .emit_raw(tampered, Some(signed.clone()))
            .await
            .as_u16(),
        403
    );
    assert!(
        received(&app, &cloud.session).await.is_empty(),
        "nothing unsigned was stored"
    );
    // A number no session has.
    let unknown = serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [
        {"field": "messages", "value": {"metadata": {"phone_number_id": "999"}, "messages": []}}]}]})).unwrap();
    let sig = graph.sign(PNID, &unknown);
    assert_eq!(graph.emit_raw(unknown, Some(sig)).await.as_u16(), 404);
    let junk = b"not json".to_vec();
    let sig = graph.sign(PNID, &junk);
    assert_eq!(graph.emit_raw(junk, Some(sig)).await.as_u16(), 422);
    // The genuine one is stored.
    assert_eq!(graph.emit_raw(body, Some(signed)).await.as_u16(), 200);
    assert_eq!(received(&app, &cloud.session).await.len(), 1);
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test]
async fn inbound_messages_of_every_type_are_received(mut app: wharf_testkit::TestApp) {
    let (graph, cloud) = connected(&app).await;
    user_writes(&graph, PNID, USER, "Hi").await;
    let ours = send(&app, &cloud.session, json!({"text": "Pick one"})).await;
    let ours_wamid = app.wait_status(&ours, "sent").await["provider_msg_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let media = graph.add_media(PNID, "image/jpeg", b"jpeg bytes".to_vec());
    // Each type, and what Wharf makes of it (checked on the newest received message).
    let cases: Vec<(Value, Value)> = vec![
        (
            json!({"type": "image", "image": {"id": media, "mime_type": "image/jpeg", "sha256": "x", "caption": "Look"}}),
            json!({"kind": "media", "media": "image", "media_id": media, "mime_type": "image/jpeg", "caption": "Look"}),
        ),
        (
            json!({"type": "video", "video": {"id": "7001", "mime_type": "video/mp4", "sha256": "x"}}),
            json!({"kind": "media", "media": "video", "media_id": "7001", "mime_type": "video/mp4"}),
        ),
        (
            json!({"type": "audio", "audio": {"id": "7002", "mime_type": "audio/ogg", "sha256": "x", "voice": true}}),
            json!({"kind": "media", "media": "audio", "media_id": "7002", "mime_type": "audio/ogg"}),
        ),
        (
            json!({"type": "document", "document": {"id": "7003", "mime_type": "application/pdf", "sha256": "x", "filename": "cv.pdf", "caption": "CV"}}),
            json!({"kind": "media", "media": "document", "media_id": "7003", "mime_type": "application/pdf", "caption": "CV", "file_name": "cv.pdf"}),
        ),
        (
            json!({"type": "sticker", "sticker": {"id": "7004", "mime_type": "image/webp", "sha256": "x", "animated": false}}),
            json!({"kind": "media", "media": "sticker", "media_id": "7004", "mime_type": "image/webp"}),
        ),
        (
            json!({"type": "location", "location": {"latitude": 37.48, "longitude": -122.14, "name": "HQ", "address": "1 Hacker Way"}}),
            json!({"kind": "location", "latitude": 37.48, "longitude": -122.14, "name": "HQ", "address": "1 Hacker Way"}),
        ),
        (
            json!({"type": "contacts", "contacts": [{"name": {"formatted_name": "Jane Doe", "first_name": "Jane"}, "phones": [{"phone": "+1 555 123 0000", "type": "CELL", "wa_id": "15551230000"}]}]}),
            json!({"kind": "contact", "full_name": "Jane Doe", "phone_number": "+15551230000"}),
        ),
        (
            json!({"type": "reaction", "reaction": {"message_id": ours_wamid, "emoji": "👍"}}),
            json!({"kind": "reaction", "target": ours, "target_provider_id": ours_wamid, "emoji": "👍"}),
        ),
        (
            json!({"type": "interactive", "interactive": {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes"}}, "context": {"from": DISPLAY, "id": ours_wamid}}),
            json!({"kind": "interactive_reply", "id": "yes", "title": "Yes"}),
        ),
        (
            json!({"type": "interactive", "interactive": {"type": "list_reply", "list_reply": {"id": "r1", "title": "Row 1", "description": "d"}}}),
            json!({"kind": "interactive_reply", "id": "r1", "title": "Row 1", "description": "d"}),
        ),
        (
            json!({"type": "button", "button": {"payload": "STOP", "text": "Stop promotions"}}),
            json!({"kind": "interactive_reply", "id": "STOP", "title": "Stop promotions"}),
        ),
        (
            json!({"type": "order", "order": {"catalog_id": "1", "product_items": []}}),
            json!({"kind": "unsupported", "provider_type": "order"}),
        ),
        (
            json!({"type": "unsupported", "errors": [{"code": 131051, "title": "Message type unknown", "error_data": {"details": "Message type is currently not supported."}}]}),
            json!({"kind": "unsupported", "provider_type": "unsupported", "detail": "Message type is currently not supported."}),
        ),
    ];
    for (message, content) in &cases {
        let (wamid, status) = graph
            .emit_inbound(PNID, USER, "Sheena", message.clone())
            .await;
        assert_eq!(status.as_u16(), 200);
        let logs = app
            .get(&format!(
                "/api/whatsapp-sessions/{}/message-logs?direction=in&limit=1",
                cloud.session
            ))
            .expect(200)
            .await;
        let got = &logs["data"][0];
        assert_eq!(got["provider_msg_id"], wamid.as_str());
        assert_eq!(&got["content"], content, "for {message}");
        assert_eq!(got["chat_jid"], USER_JID);
        assert_eq!(got["status"], "received");
    }
    let messages = cases;
    let events = events(&app, "message.received").await;
    assert_eq!(events.len(), messages.len() + 1);
    assert_eq!(events[1]["data"]["sender_jid"], USER_JID);
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test]
async fn a_reply_keeps_the_message_it_replies_to(mut app: wharf_testkit::TestApp) {
    let (graph, cloud) = connected(&app).await;
    user_writes(&graph, PNID, USER, "Hi").await;
    let ours = send(&app, &cloud.session, json!({"text": "Pick a day"})).await;
    let wamid = app.wait_status(&ours, "sent").await["provider_msg_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Meta names the message replied to in `context`.
    graph.emit_inbound(PNID, USER, "Sheena", json!({"type": "text", "text": {"body": "Friday"}, "context": {"from": DISPLAY, "id": wamid}})).await;
    // A reply to a message this session never stored, and a forward (context without id).
    graph.emit_inbound(PNID, USER, "Sheena", json!({"type": "text", "text": {"body": "?"}, "context": {"from": DISPLAY, "id": "wamid.UNKNOWN"}})).await;
    graph
        .emit_inbound(
            PNID,
            USER,
            "Sheena",
            json!({"type": "text", "text": {"body": "fwd"}, "context": {"forwarded": true}}),
        )
        .await;
    let logs = app
        .get(&format!(
            "/api/whatsapp-sessions/{}/message-logs?direction=in&limit=3",
            cloud.session
        ))
        .expect(200)
        .await;
    let data = logs["data"].as_array().unwrap();
    assert_eq!(data[2]["content"]["text"], "Friday");
    assert_eq!(data[2]["quoted_message_id"], ours.as_str());
    assert!(data[1]["quoted_message_id"].is_null());
    assert!(data[0]["quoted_message_id"].is_null());
    let received = events(&app, "message.received").await;
    assert_eq!(received[1]["data"]["quoted_message_id"], ours.as_str());
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test]
async fn redelivered_webhooks_change_nothing(mut app: wharf_testkit::TestApp) {
    let (graph, cloud) = connected(&app).await;
    let inbound = messages_body(json!({
        "contacts": [{"profile": {"name": "Sheena"}, "wa_id": USER}],
        "messages": [{"from": USER, "id": "wamid.ONCE", "timestamp": "1749416383", "type": "text", "text": {"body": "Hi"}}]}));
    for _ in 0..3 {
        let sig = graph.sign(PNID, &inbound);
        assert_eq!(
            graph.emit_raw(inbound.clone(), Some(sig)).await.as_u16(),
            200
        );
    }
    assert_eq!(received(&app, &cloud.session).await.len(), 1);
    assert_eq!(events(&app, "message.received").await.len(), 1);
    // A status delivered three times: one event.
    user_writes(&graph, PNID, USER, "again").await;
    let id = send(&app, &cloud.session, json!({"text": "hello"})).await;
    let wamid = app.wait_status(&id, "sent").await["provider_msg_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..3 {
        assert_eq!(
            graph
                .emit_status(PNID, &wamid, "delivered", None)
                .await
                .as_u16(),
            200
        );
    }
    app.wait_status(&id, "delivered").await;
    assert_eq!(events(&app, "message.delivered").await.len(), 1);
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test]
async fn statuses_out_of_order_are_merged(mut app: wharf_testkit::TestApp) {
    let (graph, cloud) = connected(&app).await;
    user_writes(&graph, PNID, USER, "Hi").await;
    let id = send(&app, &cloud.session, json!({"text": "hello"})).await;
    let wamid = app.wait_status(&id, "sent").await["provider_msg_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for status in ["read", "delivered", "sent", "read"] {
        assert_eq!(
            graph.emit_status(PNID, &wamid, status, None).await.as_u16(),
            200
        );
    }
    let info = app.wait_status(&id, "read").await;
    assert!(
        info["delivered_at"].is_string(),
        "read implies delivered: {info}"
    );
    let kinds: Vec<&str> = info["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["message.sent", "message.read"]);
    // Automatic statuses, as Meta sends them.
    graph.set_auto_statuses(true);
    let id = send(&app, &cloud.session, json!({"text": "again"})).await;
    let info = app.wait_status(&id, "read").await;
    let kinds: Vec<&str> = info["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert!(
        kinds.iter().filter(|k| **k == "message.sent").count() == 1,
        "{kinds:?}"
    );
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test]
async fn a_status_before_the_sends_record_finds_its_message_by_the_echoed_id(
    mut app: wharf_testkit::TestApp,
) {
    let (graph, cloud) = connected(&app).await;
    user_writes(&graph, PNID, USER, "Hi").await;
    // Queued, not sent: as if Graph had accepted it and Wharf stopped before recording.
    app.post(&format!(
        "/v1/whatsapp-sessions/{}/disconnect",
        cloud.session
    ))
    .expect(200)
    .await;
    let id = send(&app, &cloud.session, json!({"text": "hello"})).await;
    let body = messages_body(json!({"statuses": [
        {"id": "wamid.EARLY", "status": "sent", "timestamp": "1749416383", "recipient_id": USER, "biz_opaque_callback_data": id},
        {"id": "wamid.EARLY", "status": "delivered", "timestamp": "1749416384", "recipient_id": USER, "biz_opaque_callback_data": id}]}));
    let sig = graph.sign(PNID, &body);
    assert_eq!(graph.emit_raw(body, Some(sig)).await.as_u16(), 200);
    let info = app.wait_status(&id, "delivered").await;
    assert_eq!(info["provider_msg_id"], "wamid.EARLY");
    // It went out, so it is not sent again when the session comes back.
    app.post(&format!("/v1/whatsapp-sessions/{}/connect", cloud.session))
        .expect(200)
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(graph.sends().is_empty(), "no duplicate send");
    assert_eq!(events(&app, "message.sent").await.len(), 1);
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test]
async fn failed_statuses_carry_the_error(mut app: wharf_testkit::TestApp) {
    let (graph, cloud) = connected(&app).await;
    user_writes(&graph, PNID, USER, "Hi").await;
    let id = send(&app, &cloud.session, json!({"text": "promo"})).await;
    let wamid = app.wait_status(&id, "sent").await["provider_msg_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let error = json!({"code": 131049, "title": "This message was not delivered to maintain healthy ecosystem engagement.",
                       "message": "This message was not delivered to maintain healthy ecosystem engagement.",
                       "error_data": {"details": "In order to maintain a healthy ecosystem engagement, the message failed to be delivered."}});
    assert_eq!(
        graph
            .emit_status(PNID, &wamid, "failed", Some(error))
            .await
            .as_u16(),
        200
    );
    let info = app.wait_status(&id, "failed").await;
    let reason = info["failure_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("Graph error 131049: This message was not delivered"),
        "{reason}"
    );
    assert!(
        reason.contains("healthy ecosystem engagement, the message failed"),
        "{reason}"
    );
    // Nothing moves a failed message.
    graph.emit_status(PNID, &wamid, "delivered", None).await;
    let info = app
        .get(&format!("/api/messages/{id}/info"))
        .expect(200)
        .await;
    assert_eq!(info["status"], "failed");
    let failed = events(&app, "message.failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["data"]["failure_reason"], reason);
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test]
async fn template_status_updates_are_recorded(mut app: wharf_testkit::TestApp) {
    let (graph, _cloud) = connected(&app).await;
    assert_eq!(
        graph
            .emit_template_status(
                WABA,
                "594425479261596",
                "order_update",
                "en_US",
                "APPROVED",
                None
            )
            .await
            .as_u16(),
        200
    );
    assert_eq!(
        graph
            .emit_template_status(
                WABA,
                "594425479261596",
                "order_update",
                "en_US",
                "REJECTED",
                Some("INVALID_FORMAT")
            )
            .await
            .as_u16(),
        200
    );
    let stored = app.store.template_statuses(WABA).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].status, "REJECTED");
    assert_eq!(stored[0].reason.as_deref(), Some("INVALID_FORMAT"));
    // An older update redelivered late does not win.
    let old = serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "time": 1_600_000_000,
        "changes": [{"field": "message_template_status_update", "value": {"event": "PENDING", "message_template_id": 594425479261596_u64,
        "message_template_name": "order_update", "message_template_language": "en_US", "reason": "NONE"}}]}]})).unwrap();
    let sig = graph.sign(PNID, &old);
    assert_eq!(graph.emit_raw(old, Some(sig)).await.as_u16(), 200);
    assert_eq!(
        app.store.template_statuses(WABA).await.unwrap()[0].status,
        "REJECTED"
    );
    // Signed with another secret: refused.
    let forged = serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "time": 1_900_000_000,
        "changes": [{"field": "message_template_status_update", "value": {"event": "APPROVED", "message_template_id": "1",
        "message_template_name": "x", "message_template_language": "en"}}]}]})).unwrap();
    assert_eq!(
        graph
            .emit_raw(forged, Some("sha256=00".into()))
            .await
            .as_u16(),
        403
    );
    graph.assert_no_rejections();
}

/// Deliveries about the session's number that hold nothing Wharf records (only `errors`),
/// and payloads of fields Wharf does not use, are acknowledged with 200, the first once its
/// signature is checked: Meta redelivers anything else for a week. A timestamp too large to
/// be a time is read as now instead of breaking the parse.
#[wharf_testkit::dual_test]
async fn deliveries_with_nothing_to_record_are_acknowledged(mut app: wharf_testkit::TestApp) {
    let (graph, cloud) = connected(&app).await;
    let errors_only = messages_body(
        json!({"errors": [{"code": 131000, "title": "Something went wrong", "message": "Something went wrong"}]}),
    );
    let sig = graph.sign(PNID, &errors_only);
    assert_eq!(
        graph
            .emit_raw(errors_only.clone(), Some(sig))
            .await
            .as_u16(),
        200
    );
    assert_eq!(
        graph
            .emit_raw(errors_only, Some("sha256=00".into()))
            .await
            .as_u16(),
        403,
        "still signed"
    );
    let unused = serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [
        {"id": WABA, "time": 1749416383, "changes": [
            {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}}]}]}))
    .unwrap();
    let sig = graph.sign(PNID, &unused);
    assert_eq!(graph.emit_raw(unused, Some(sig)).await.as_u16(), 200);
    let late = messages_body(json!({"messages": [{"from": USER, "id": "wamid.LATE",
        "timestamp": "9999999999999999", "type": "text", "text": {"body": "when?"}}]}));
    let sig = graph.sign(PNID, &late);
    assert_eq!(graph.emit_raw(late, Some(sig)).await.as_u16(), 200);
    let got = received(&app, &cloud.session).await;
    assert_eq!(got.len(), 1, "{got:?}");
    graph.assert_no_rejections();
}
