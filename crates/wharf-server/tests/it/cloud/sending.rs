//! Sending through the Cloud API: each kind's exact Graph payload, the wamid as
//! provider_msg_id, kinds refused at the API, read marks and typing indicators, and the
//! 24-hour customer-service window.

use serde_json::{Value, json};
use wharf_testkit::assert_error;

use super::*;

#[wharf_testkit::dual_test]
async fn every_kind_maps_to_its_exact_graph_payload(mut app: wharf_testkit::TestApp) {
    let (graph, cloud) = connected(&app).await;
    approved_template(
        &graph,
        &cloud.number,
        "order_update",
        "Hi {{1}}, your order shipped",
    )
    .await;
    let inbound_wamid = user_writes(&graph, PNID, USER, "Hello").await;
    let logs = app
        .get(&format!(
            "/api/whatsapp-sessions/{}/message-logs?direction=in",
            cloud.session
        ))
        .expect(200)
        .await;
    let inbound = logs["data"][0]["message_id"].as_str().unwrap().to_owned();

    let cases: Vec<(Value, &str, Value)> = vec![
        (
            json!({"text": "See https://wharf.example/x"}),
            "text",
            json!({"body": "See https://wharf.example/x", "preview_url": true}),
        ),
        (
            json!({"text": "No link here"}),
            "text",
            json!({"body": "No link here"}),
        ),
        (
            json!({"kind": "image", "imageUrl": "https://example.com/a.jpg", "caption": "Menu"}),
            "image",
            json!({"link": "https://example.com/a.jpg", "caption": "Menu"}),
        ),
        (
            json!({"kind": "video", "videoUrl": "https://example.com/v.mp4", "caption": "Clip"}),
            "video",
            json!({"link": "https://example.com/v.mp4", "caption": "Clip"}),
        ),
        (
            json!({"kind": "document", "documentUrl": "https://example.com/i.pdf", "file_name": "invoice.pdf", "caption": "Invoice"}),
            "document",
            json!({"link": "https://example.com/i.pdf", "caption": "Invoice", "filename": "invoice.pdf"}),
        ),
        (
            json!({"kind": "audio", "audioUrl": "https://example.com/a.mp3"}),
            "audio",
            json!({"link": "https://example.com/a.mp3"}),
        ),
        (
            json!({"kind": "sticker", "stickerUrl": "https://example.com/s.webp"}),
            "sticker",
            json!({"link": "https://example.com/s.webp"}),
        ),
        (
            json!({"location": {"latitude": 37.48, "longitude": -122.14, "name": "HQ", "address": "1 Hacker Way"}}),
            "location",
            json!({"latitude": 37.48, "longitude": -122.14, "name": "HQ", "address": "1 Hacker Way"}),
        ),
        (
            json!({"contact": {"fullName": "Jane Doe", "phoneNumber": "+1 555 123 0000", "organization": "Acme"}}),
            "contacts",
            json!([{"name": {"formatted_name": "Jane Doe", "first_name": "Jane", "last_name": "Doe"},
                 "phones": [{"phone": "+15551230000", "type": "CELL", "wa_id": "15551230000"}],
                 "org": {"company": "Acme"}}]),
        ),
        (
            json!({"buttons": {"body": "Pick", "header": "Q", "footer": "F", "buttons": [{"id": "yes", "title": "Yes"}, {"id": "no", "title": "No"}]}}),
            "interactive",
            json!({"type": "button", "header": {"type": "text", "text": "Q"}, "body": {"text": "Pick"}, "footer": {"text": "F"},
                "action": {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
                                       {"type": "reply", "reply": {"id": "no", "title": "No"}}]}}),
        ),
        (
            json!({"list": {"body": "Choose", "button": "Options", "sections": [{"title": "S1", "rows": [{"id": "r1", "title": "Row 1", "description": "d"}]},
                                                                             {"title": "S2", "rows": [{"id": "r2", "title": "Row 2"}]}]}}),
            "interactive",
            json!({"type": "list", "body": {"text": "Choose"},
                "action": {"button": "Options", "sections": [{"title": "S1", "rows": [{"id": "r1", "title": "Row 1", "description": "d"}]},
                                                             {"title": "S2", "rows": [{"id": "r2", "title": "Row 2"}]}]}}),
        ),
        (
            json!({"template": {"name": "order_update", "language": "en_US", "components": [
                    {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://example.com/a.jpg"}}]},
                    {"type": "body", "parameters": [{"type": "text", "text": "Ana"}]},
                    {"type": "button", "sub_type": "quick_reply", "index": "0", "parameters": [{"type": "payload", "payload": "STOP"}]}]}}),
            "template",
            json!({"name": "order_update", "language": {"code": "en_US"}, "components": [
                    {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://example.com/a.jpg"}}]},
                    {"type": "body", "parameters": [{"type": "text", "text": "Ana"}]},
                    {"type": "button", "sub_type": "quick_reply", "index": 0, "parameters": [{"type": "payload", "payload": "STOP"}]}]}),
        ),
        (
            json!({"text": "Replying", "quoted_message_id": inbound}),
            "text",
            json!({"body": "Replying"}),
        ),
        (
            json!({"emoji": "👍", "message_id": inbound}),
            "reaction",
            json!({"message_id": inbound_wamid, "emoji": "👍"}),
        ),
    ];
    let mut ids = Vec::new();
    for (body, _, _) in &cases {
        ids.push(send(&app, &cloud.session, body.clone()).await);
    }
    let sends = wait_sends(&graph, cases.len()).await;
    assert_eq!(sends.len(), cases.len());
    for (i, ((_, kind, payload), send)) in cases.iter().zip(&sends).enumerate() {
        let mut expected = json!({
            "messaging_product": "whatsapp", "recipient_type": "individual", "to": USER,
            "type": kind, "biz_opaque_callback_data": ids[i],
        });
        expected[*kind] = payload.clone();
        if i == 12 {
            expected["context"] = json!({"message_id": inbound_wamid});
        }
        assert_eq!(send.body, expected, "case {i}");
        assert_eq!(send.phone_number_id, PNID);
        // The wamid becomes the provider id.
        let info = app.wait_status(&ids[i], "sent").await;
        assert_eq!(info["provider_msg_id"], send.wamid.as_str(), "case {i}");
    }
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test]
async fn kinds_the_cloud_api_cannot_carry_are_refused(mut app: wharf_testkit::TestApp) {
    let (graph, cloud) = connected(&app).await;
    user_writes(&graph, PNID, USER, "Hi").await;
    let refused = [
        json!({"poll": {"question": "Q?", "options": ["a", "b"]}}),
        json!({"kind": "image", "imageUrl": "https://example.com/a.jpg", "viewOnce": true}),
        json!({"channel_id": "120363000000000000@newsletter", "text": "hi"}),
        json!({"to": "120363000000000001@g.us", "text": "hi"}),
    ];
    for mut body in refused {
        body["session_id"] = json!(cloud.session);
        if body.get("to").is_none() && body.get("channel_id").is_none() {
            body["to"] = json!(USER);
        }
        let answer = app
            .post("/api/send-message")
            .json(body.clone())
            .expect(422)
            .await;
        assert_error(&answer, "unsupported_by_engine");
    }
    let sent = send(&app, &cloud.session, json!({"text": "ok"})).await;
    app.wait_status(&sent, "sent").await;
    let edit = app
        .post(&format!("/api/messages/{sent}/edit"))
        .json(json!({"text": "new"}))
        .expect(422)
        .await;
    assert_error(&edit, "unsupported_by_engine");
    let revoke = app
        .delete(&format!("/api/messages/{sent}"))
        .expect(422)
        .await;
    assert_error(&revoke, "unsupported_by_engine");
    assert_eq!(graph.sends().len(), 1, "nothing refused went out");
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test]
async fn read_marks_and_typing_indicators_answer_inbound_messages(mut app: wharf_testkit::TestApp) {
    let (graph, cloud) = connected(&app).await;
    let wamid = user_writes(&graph, PNID, USER, "Are you open?").await;
    let logs = app
        .get(&format!(
            "/api/whatsapp-sessions/{}/message-logs?direction=in",
            cloud.session
        ))
        .expect(200)
        .await;
    let inbound = logs["data"][0]["message_id"].as_str().unwrap().to_owned();
    app.post("/api/messages/read")
        .json(json!({"message_ids": [inbound], "chat_jid": USER_JID}))
        .expect(200)
        .await;
    app.wait_status(&inbound, "read").await;
    let mark = json!({"messaging_product": "whatsapp", "status": "read", "message_id": wamid});
    assert!(
        graph
            .requests()
            .iter()
            .any(|r| r.path == format!("/{PNID}/messages") && r.body == mark)
    );

    app.post("/api/send-presence-update")
        .json(json!({"session_id": cloud.session, "to": USER, "presence": "composing"}))
        .expect(200)
        .await;
    let typing = json!({"messaging_product": "whatsapp", "status": "read", "message_id": wamid,
                        "typing_indicator": {"type": "text"}});
    assert!(graph.requests().iter().any(|r| r.body == typing));
    // A chat that never wrote has nothing to attach the indicator to.
    let none = app
        .post("/api/send-presence-update")
        .json(json!({"session_id": cloud.session, "to": "+15550001111", "presence": "composing"}))
        .expect(409)
        .await;
    assert!(
        none["message"]
            .as_str()
            .unwrap()
            .contains("has not written"),
        "{none}"
    );
    for presence in ["available", "recording", "paused"] {
        let answer = app
            .post("/api/send-presence-update")
            .json(json!({"session_id": cloud.session, "to": USER, "presence": presence}))
            .expect(422)
            .await;
        assert_error(&answer, "unsupported_by_engine");
    }
    assert!(
        graph.sends().is_empty(),
        "read marks and typing are not sends"
    );
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test]
async fn free_form_messages_need_the_customer_service_window(mut app: wharf_testkit::TestApp) {
    let (graph, cloud) = connected(&app).await;
    approved_template(&graph, &cloud.number, "welcome", "Welcome to Wharf").await;
    // Never wrote: only templates.
    let answer = app
        .post("/api/send-message")
        .json(json!({"session_id": cloud.session, "to": USER, "text": "hi"}))
        .expect(422)
        .await;
    let errors = assert_error(&answer, "outside_customer_service_window");
    assert!(
        errors["to"][0].as_str().unwrap().contains("never written"),
        "{answer}"
    );
    let template = send(
        &app,
        &cloud.session,
        json!({"template": {"name": "welcome", "language": "en_US"}}),
    )
    .await;
    app.wait_status(&template, "sent").await;
    // Writing opens the window.
    user_writes(&graph, PNID, USER, "Hi!").await;
    let text = send(&app, &cloud.session, json!({"text": "Hello back"})).await;
    app.wait_status(&text, "sent").await;
    // A message written 25 hours ago does not.
    let old = (wharf_core::time::now_millis() / 1000 - 25 * 3600).to_string();
    let (_, status) = graph
        .emit_inbound(
            PNID,
            "16505550000",
            "Old",
            json!({"type": "text", "text": {"body": "yesterday"}, "timestamp": old}),
        )
        .await;
    assert_eq!(status.as_u16(), 200);
    let late = app.post("/api/send-message")
        .json(json!({"session_id": cloud.session, "to": "+16505550000", "emoji": "👍", "message_id": text}))
        .expect(422).await;
    let errors = assert_error(&late, "outside_customer_service_window");
    assert!(
        errors["to"][0]
            .as_str()
            .unwrap()
            .contains("more than 24 hours"),
        "{late}"
    );
    // Our own sends never refresh it; the emulator has no such rule.
    let (emu, _) = app.connected_session().await;
    send(&app, &emu, json!({"text": "no window on the emulator"})).await;
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test]
async fn the_customer_service_window_closes_24_hours_after_the_last_inbound(
    mut app: wharf_testkit::TestApp,
) {
    let (graph, cloud) = connected(&app).await;
    user_writes(&graph, PNID, USER, "Hi!").await;
    app.config
        .clock
        .advance(std::time::Duration::from_secs(23 * 3600));
    let text = send(&app, &cloud.session, json!({"text": "still open"})).await;
    app.wait_status(&text, "sent").await;
    app.config
        .clock
        .advance(std::time::Duration::from_secs(2 * 3600));
    let late = app
        .post("/api/send-message")
        .json(json!({"session_id": cloud.session, "to": USER, "text": "closed"}))
        .expect(422)
        .await;
    let errors = assert_error(&late, "outside_customer_service_window");
    assert!(
        errors["to"][0]
            .as_str()
            .unwrap()
            .contains("more than 24 hours"),
        "{late}"
    );
    graph.assert_no_rejections();
}
