//! `GET /api/messages/{id}/media`: only media messages of the caller's, and only on engines
//! that keep a way to fetch the file: the Cloud API through Graph (here its fake), the web
//! engine through WhatsApp's media servers (tested against its fake port in `wharf-engines`).

use serde_json::{Value, json};
use wharf_testkit::{
    TestApp, assert_error,
    fakegraph::{FakeGraph, FakeNumber},
};

const TO: &str = "+15550102030";

/// The id of the session's received message of `kind`, once it is stored.
async fn received(app: &TestApp, session: &str, kind: &str) -> String {
    let logs = app
        .eventually(
            &format!("/api/whatsapp-sessions/{session}/message-logs?direction=in"),
            |l| {
                l["data"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|m| m["kind"] == kind))
            },
        )
        .await;
    let data = logs["data"].as_array().unwrap();
    let m: &Value = data.iter().find(|m| m["kind"] == kind).unwrap();
    m["message_id"].as_str().unwrap().to_owned()
}

#[wharf_testkit::dual_test]
async fn media_files_are_served_only_for_media_the_engine_can_fetch(mut app: TestApp) {
    let (s, _) = app.connected_session().await;
    for body in [
        json!({"from": TO, "kind": "image", "imageUrl": "https://example.com/cat.jpg"}),
        json!({"from": TO, "text": "hello"}),
    ] {
        app.post(&format!("/emulator/sessions/{s}/inbound"))
            .json(body)
            .expect(202)
            .await;
    }
    let image = received(&app, &s, "image").await;
    let text = received(&app, &s, "text").await;

    // The emulator has no media servers: nothing to fetch the file from.
    let answer = app
        .get(&format!("/api/messages/{image}/media"))
        .expect(422)
        .await;
    assert_error(&answer, "unsupported_by_engine");
    let answer = app
        .get(&format!("/api/messages/{text}/media"))
        .expect(422)
        .await;
    let errors = assert_error(&answer, "validation_error");
    assert!(errors["id"].is_array(), "{answer}");
    // A file this session sent stays at its URL.
    let sent = app
        .post("/api/send-message")
        .json(json!({"session_id": s, "to": TO, "kind": "image",
            "imageUrl": "https://example.com/dog.jpg"}))
        .expect(202)
        .await;
    let sent = sent["message_id"].as_str().unwrap();
    let answer = app
        .get(&format!("/api/messages/{sent}/media"))
        .expect(422)
        .await;
    assert_error(&answer, "validation_error");

    app.get("/api/messages/msg_00000000000000000000000000/media")
        .expect(404)
        .await;
    app.get("/api/messages/nonsense/media").expect(404).await;
    let (_, intruder) = app.store.create_account("intruder").await.unwrap();
    app.get(&format!("/api/messages/{image}/media"))
        .token(intruder.raw.as_str())
        .expect(404)
        .await;
    app.stop().await;
}

#[wharf_testkit::dual_test]
async fn cloud_media_is_fetched_from_graph_by_id(mut app: TestApp) {
    const PNID: &str = "106540352242999";
    let graph: FakeGraph = app.graph().clone();
    let cloud = app
        .cloud_session(
            &graph,
            FakeNumber::new(PNID, "102290129340999", "15550783999"),
            json!({}),
        )
        .await;
    let pdf = b"%PDF-1.7 a small report".to_vec();
    let media_id = graph.add_media(PNID, "application/pdf", pdf.clone());
    let (_, status) = graph
        .emit_inbound(
            PNID,
            "16505551234",
            "Sheena",
            json!({"type": "document", "document": {"id": media_id,
                "mime_type": "application/pdf", "filename": "Q3 report.pdf"}}),
        )
        .await;
    assert_eq!(status.as_u16(), 200);
    let id = received(&app, &cloud.session, "document").await;
    let answer = app.get(&format!("/api/messages/{id}/media")).send().await;
    assert_eq!(answer.status.as_u16(), 200, "{}", answer.text);
    assert_eq!(answer.header("content-type"), Some("application/pdf"));
    assert_eq!(
        answer.header("content-length"),
        Some(pdf.len().to_string().as_str())
    );
    assert_eq!(
        answer.header("content-disposition"),
        Some("attachment; filename=\"Q3 report.pdf\"")
    );
    assert_eq!(answer.text.as_bytes(), pdf.as_slice());

    // Graph no longer has it: WhatsApp's answer, not a server error.
    let gone = graph.add_media(PNID, "image/jpeg", b"jpeg".to_vec());
    graph
        .emit_inbound(
            PNID,
            "16505551234",
            "Sheena",
            json!({"type": "image", "image": {"id": format!("{gone}9"), "mime_type": "image/jpeg"}}),
        )
        .await;
    let image = received(&app, &cloud.session, "image").await;
    let answer = app
        .get(&format!("/api/messages/{image}/media"))
        .expect(502)
        .await;
    assert_error(&answer, "engine_failed");
    app.stop().await;
}
