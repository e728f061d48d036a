//! Bad input gets a clear 4xx in the envelope, naming the field at fault; never a 500.

use serde_json::json;
use wharf_testkit::{TestApp, assert_error};

async fn session(app: &TestApp) -> String {
    app.create_session(json!({})).await["session"]["session_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Asserts a 422 `validation_error` whose `errors` names `field`.
async fn assert_invalid(call: wharf_testkit::Call<'_>, field: &str) -> String {
    let body = call.expect(422).await;
    let errors = assert_error(&body, "validation_error");
    let messages = errors[field]
        .as_array()
        .unwrap_or_else(|| panic!("no error for {field}: {body}"));
    assert!(!messages.is_empty());
    messages[0].as_str().unwrap().to_owned()
}

#[wharf_testkit::dual_test]
async fn malformed_json_is_422_on_the_body(mut app: wharf_testkit::TestApp) {
    let msg = assert_invalid(
        app.post("/v1/whatsapp-sessions")
            .raw("{\"label\": ", "application/json"),
        "body",
    )
    .await;
    assert!(msg.contains("malformed JSON"), "{msg}");
    assert_invalid(
        app.post("/v1/whatsapp-sessions")
            .raw("[1, 2]", "application/json"),
        "body",
    )
    .await;
}

#[wharf_testkit::dual_test]
async fn unknown_fields_and_wrong_types_name_the_field(mut app: wharf_testkit::TestApp) {
    let msg = assert_invalid(
        app.post("/v1/whatsapp-sessions")
            .json(json!({"lable": "typo"})),
        "lable",
    )
    .await;
    assert!(msg.contains("unknown field"), "{msg}");
    assert_invalid(
        app.post("/v1/whatsapp-sessions")
            .json(json!({"settings": {"typo": true}})),
        "settings.typo",
    )
    .await;
    let msg = assert_invalid(
        app.post("/v1/whatsapp-sessions")
            .json(json!({"settings": {"typing": "yes"}})),
        "settings.typing",
    )
    .await;
    assert!(msg.contains("boolean"), "{msg}");
    assert_invalid(
        app.post("/v1/whatsapp-sessions").json(json!({"label": 5})),
        "label",
    )
    .await;
    let id = session(&app).await;
    assert_invalid(
        app.patch(&format!("/v1/whatsapp-sessions/{id}/settings"))
            .json(json!({"typing": 1})),
        "typing",
    )
    .await;
    assert_invalid(
        app.patch(&format!("/v1/whatsapp-sessions/{id}/settings"))
            .json(json!({"colour": true})),
        "colour",
    )
    .await;
    assert_invalid(
        app.patch(&format!("/v1/whatsapp-sessions/{id}"))
            .json(json!({"status": "connected"})),
        "status",
    )
    .await;
}

#[wharf_testkit::dual_test]
async fn phone_label_and_engine_are_validated(mut app: wharf_testkit::TestApp) {
    for bad in ["hello", "+1 555", "+999 1234 5678", "12345678901234567"] {
        assert_invalid(
            app.post("/v1/whatsapp-sessions")
                .json(json!({"phone_number": bad})),
            "phone_number",
        )
        .await;
    }
    let long = "x".repeat(101);
    let msg = assert_invalid(
        app.post("/v1/whatsapp-sessions")
            .json(json!({"label": long})),
        "label",
    )
    .await;
    assert!(msg.contains("100"), "{msg}");
    app.post("/v1/whatsapp-sessions")
        .json(json!({"label": "x".repeat(100)}))
        .expect(201)
        .await;

    let msg = assert_invalid(
        app.post("/v1/whatsapp-sessions")
            .json(json!({"engine": "telegram"})),
        "engine",
    )
    .await;
    assert!(msg.contains("emulator"), "lists the valid engines: {msg}");
    // The web engine runs (issue 12).
    let body = app
        .post("/v1/whatsapp-sessions")
        .json(json!({"engine": "web"}))
        .expect(201)
        .await;
    assert_eq!(body["session"]["engine"], "web", "{body}");
    // The cloud engine runs, and needs its credentials.
    assert_invalid(
        app.post("/v1/whatsapp-sessions")
            .json(json!({"engine": "cloud"})),
        "cloud",
    )
    .await;
    let id = session(&app).await;
    assert_invalid(
        app.patch(&format!("/v1/whatsapp-sessions/{id}"))
            .json(json!({"phone_number": "abc"})),
        "phone_number",
    )
    .await;
    assert_invalid(
        app.post(&format!("/emulator/sessions/{id}/scan"))
            .json(json!({"phone_number": "abc"})),
        "phone_number",
    )
    .await;
    // Nothing was created by the refused requests (the two sessions are the emulator's and
    // the web one above).
    let list = app.get("/v1/whatsapp-sessions").expect(200).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 3);
}

#[wharf_testkit::dual_test]
async fn list_query_is_validated(mut app: wharf_testkit::TestApp) {
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("status=online", "status"),
        ("before_id=42", "before_id"),
        ("colour=blue", "colour"),
    ] {
        assert_invalid(app.get(&format!("/v1/whatsapp-sessions?{query}")), field).await;
    }
    app.get("/v1/whatsapp-sessions?limit=1").expect(200).await;
    app.get("/v1/whatsapp-sessions?limit=100&status=deleted")
        .expect(200)
        .await;
    let id = session(&app).await;
    assert_invalid(
        app.get(&format!("/v1/whatsapp-sessions/{id}/qrcode?format=svg")),
        "format",
    )
    .await;
}

#[wharf_testkit::dual_test]
async fn transport_errors_use_the_envelope(mut app: wharf_testkit::TestApp) {
    let body = app
        .post("/v1/whatsapp-sessions")
        .raw("label=x", "application/x-www-form-urlencoded")
        .expect(415)
        .await;
    assert_error(&body, "unsupported_media_type");
    let body = app
        .post("/api/send-message")
        .raw("to=x", "application/x-www-form-urlencoded")
        .expect(415)
        .await;
    assert_error(&body, "unsupported_media_type");
    let huge_send = format!("{{\"text\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let body = app
        .post("/api/send-message")
        .raw(&huge_send, "application/json")
        .expect(413)
        .await;
    assert_error(&body, "payload_too_large");
    let huge = format!("{{\"label\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let body = app
        .post("/v1/whatsapp-sessions")
        .raw(&huge, "application/json")
        .expect(413)
        .await;
    assert_error(&body, "payload_too_large");
    let body = app.get("/v1/nothing-here").expect(404).await;
    assert_error(&body, "not_found");
    let body = app
        .call(reqwest::Method::PUT, "/v1/whatsapp-sessions")
        .expect(405)
        .await;
    assert_error(&body, "method_not_allowed");
    // An empty body on a JSON route is an empty object.
    app.post("/v1/whatsapp-sessions")
        .raw("", "application/json")
        .expect(201)
        .await;
}

#[wharf_testkit::dual_test]
async fn every_answer_has_a_request_id(mut app: wharf_testkit::TestApp) {
    for answer in [
        app.get("/healthz").anonymous().send().await,
        app.get("/v1/whatsapp-sessions").send().await,
        app.get("/v1/whatsapp-sessions").anonymous().send().await,
        app.get("/nope").send().await,
    ] {
        assert!(
            answer
                .header("x-request-id")
                .is_some_and(|id| id.starts_with("req_")),
            "{:?}",
            answer.headers
        );
    }
    let echoed = app
        .get("/healthz")
        .header("x-request-id", "client-chosen-id")
        .send()
        .await;
    assert_eq!(echoed.header("x-request-id"), Some("client-chosen-id"));
}
