//! The error answers of the Wapio routes as Wapio's Postman collection (seed 004) documents
//! them: `{"success": false, "message", "reason_code", "errors": {field: [messages]}}`, with
//! the seed's `reason_code` wherever it shows one (`validation_error`, `rate_limited`).

use serde_json::{Value, json};
use wharf_testkit::session_and_key;

/// Asserts the seed's envelope, exactly those four keys, and returns `errors`.
fn seed_envelope(body: &Value, reason_code: &str) -> serde_json::Map<String, Value> {
    let object = body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {body}"));
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["errors", "message", "reason_code", "success"],
        "{body}"
    );
    assert_eq!(body["success"], false, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body["reason_code"], reason_code, "{body}");
    let errors = body["errors"]
        .as_object()
        .unwrap_or_else(|| panic!("errors: {body}"));
    for (field, messages) in errors {
        let messages = messages
            .as_array()
            .unwrap_or_else(|| panic!("{field}: {body}"));
        assert!(
            !messages.is_empty() && messages.iter().all(Value::is_string),
            "{body}"
        );
    }
    errors.clone()
}

#[wharf_testkit::dual_test]
async fn a_send_without_to_is_the_seeds_validation_error(mut app: wharf_testkit::TestApp) {
    let (session, _) = app.connected_session().await;
    // The seed's 422 example of POST /api/send-message:
    // {"success": false, "message": "Validation failed", "reason_code": "validation_error",
    //  "errors": {"to": ["Required"]}}
    let body = app
        .post("/api/send-message")
        .json(json!({"session_id": session, "kind": "text", "text": "Hello from Wapio"}))
        .expect(422)
        .await;
    let errors = seed_envelope(&body, "validation_error");
    assert_eq!(errors.keys().collect::<Vec<_>>(), ["to"], "{body}");
}

#[wharf_testkit::dual_test]
async fn every_validation_failure_of_the_wapio_routes_is_validation_error(
    mut app: wharf_testkit::TestApp,
) {
    // The collection's own placeholder bodies: "" where the settings are booleans.
    let blank_settings = json!({"account_protection": "", "read_incoming": "", "auto_reject_calls": "",
        "always_online": "", "ignore_groups": "", "ignore_broadcasts": "", "ignore_channels": "", "typing": ""});
    let body = app
        .post("/v1/whatsapp-sessions")
        .json(json!({"label": "", "phone_number": "", "settings": blank_settings}))
        .expect(422)
        .await;
    assert!(
        seed_envelope(&body, "validation_error").contains_key("settings.account_protection"),
        "{body}"
    );

    let (session, _) = app.connected_session().await;
    let body = app
        .patch(&format!("/v1/whatsapp-sessions/{session}/settings"))
        .json(blank_settings)
        .expect(422)
        .await;
    assert!(
        seed_envelope(&body, "validation_error").contains_key("account_protection"),
        "{body}"
    );
    let body = app.get("/v1/whatsapp-sessions?limit=0").expect(422).await;
    assert!(
        seed_envelope(&body, "validation_error").contains_key("limit"),
        "{body}"
    );
    let message = app.send_text(&session, "+15550102030", "hi").await;
    app.wait_status(&message, "sent").await;
    let body = app
        .post(&format!("/api/messages/{message}/edit"))
        .json(json!({"text": ""}))
        .expect(422)
        .await;
    assert!(
        seed_envelope(&body, "validation_error").contains_key("text"),
        "{body}"
    );
    let body = app
        .post("/api/messages/read")
        .json(json!({"message_ids": [""], "chat_jid": ""}))
        .expect(422)
        .await;
    assert!(
        !seed_envelope(&body, "validation_error").is_empty(),
        "names a field: {body}"
    );
}

#[wharf_testkit::dual_test]
async fn the_collections_other_documented_errors_have_the_seeds_envelope(
    mut app: wharf_testkit::TestApp,
) {
    // 401: "Missing or invalid Bearer token."
    let body = app
        .get("/v1/whatsapp-sessions")
        .anonymous()
        .expect(401)
        .await;
    seed_envelope(&body, "unauthenticated");
    let body = app
        .get("/v1/whatsapp-sessions")
        .token("wh_pat_nope")
        .expect(401)
        .await;
    seed_envelope(&body, "invalid_token");
    // 403: "session-scoped key on a PAT-only route".
    let created = app.create_session(json!({})).await;
    let (id, key) = session_and_key(&created);
    let body = app
        .post("/v1/whatsapp-sessions")
        .token(&key)
        .json(json!({}))
        .expect(403)
        .await;
    seed_envelope(&body, "forbidden");
    let body = app
        .delete(&format!("/v1/whatsapp-sessions/{id}"))
        .token(&key)
        .expect(403)
        .await;
    seed_envelope(&body, "forbidden");
    let body = app
        .post(&format!("/v1/whatsapp-sessions/{id}/regenerate-key"))
        .token(&key)
        .expect(403)
        .await;
    seed_envelope(&body, "forbidden");
    // 404: "Resource not found, or not visible to this caller."
    let body = app.get("/v1/whatsapp-sessions/sess_nope").expect(404).await;
    seed_envelope(&body, "not_found");
    let body = app.get("/api/messages/msg_nope/info").expect(404).await;
    seed_envelope(&body, "not_found");
    // 409: "Resource not in a state that supports this operation." (connect a paired,
    // connected session; the QR of a session that is not pairing).
    let (connected, _) = app.connected_session().await;
    let body = app
        .post(&format!("/v1/whatsapp-sessions/{connected}/connect"))
        .expect(409)
        .await;
    seed_envelope(&body, "invalid_state");
    let body = app
        .get(&format!("/v1/whatsapp-sessions/{connected}/qrcode"))
        .expect(409)
        .await;
    seed_envelope(&body, "invalid_state");
}

#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| {
    c.rate_limit_per_minute = 1.try_into().unwrap();
})]
async fn past_the_allowance_is_the_seeds_rate_limited(mut app: wharf_testkit::TestApp) {
    app.get("/v1/whatsapp-sessions").expect(200).await;
    // The seed's 429 example of POST /api/send-message:
    // {"success": false, "message": "Rate limit exceeded", "reason_code": "rate_limited"}
    let body = app
        .post("/api/send-message")
        .json(json!({"to": "+15550102030", "text": "hi"}))
        .expect(429)
        .await;
    seed_envelope(&body, "rate_limited");
}
