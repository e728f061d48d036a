//! The Zernio dialect: `/v1/whatsapp/sandbox/sessions` (and under `/api`).

use std::time::Duration;

use serde_json::{Value, json};

use super::*;

/// The collection, as Zernio's SDKs address it (their base URL ends in `/api`).
pub(super) const SESSIONS: &str = "/v1/whatsapp/sandbox/sessions";

/// Asserts `body` is Zernio's error envelope with `kind` and `code`, and `param` when given
/// (absent otherwise); returns its `error`.
pub fn zernio_error(body: &Value, kind: &str, code: &str, param: Option<&str>) -> String {
    assert_eq!(body["type"], kind, "type of {body}");
    assert_eq!(body["code"], code, "code of {body}");
    match param {
        Some(p) => assert_eq!(body["param"], p, "param of {body}"),
        None => assert!(body.get("param").is_none(), "unexpected param in {body}"),
    }
    assert!(
        body.get("success").is_none() && body.get("reason_code").is_none(),
        "not Zernio's envelope: {body}"
    );
    let error = body["error"].as_str().expect("error is a string");
    assert!(!error.is_empty(), "empty error: {body}");
    error.to_owned()
}

/// POSTs `{"phone": phone}` with the test account's token, expecting `status`.
pub(super) async fn create(app: &TestApp, phone: &str, status: u16) -> Value {
    app.post(SESSIONS)
        .json(json!({"phone": phone}))
        .expect(status)
        .await
}

/// The test account's sandbox sessions (GET).
pub(super) async fn listed(app: &TestApp) -> Vec<Value> {
    app.get(SESSIONS).expect(200).await["sessions"]
        .as_array()
        .expect("sessions is an array")
        .clone()
}

/// The stored live sandbox rows of the test account, by the server's clock.
pub(super) async fn stored(app: &TestApp) -> Vec<wharf_store::SandboxRow> {
    app.store
        .live_sandbox_sessions(
            app.account_id.parse().expect("account id"),
            app.config.clock.now_millis(),
        )
        .await
        .expect("read sandbox sessions")
}

/// With no usable sandbox number: GET says `sandboxNumber: null`, POST is 503
/// `sandbox_unavailable`, on both mounts, and nothing is sent.
pub(super) async fn assert_unavailable(app: &TestApp) {
    for prefix in ["", "/api"] {
        let listing = app.get(&format!("{prefix}{SESSIONS}")).expect(200).await;
        assert_eq!(listing, json!({"sessions": [], "sandboxNumber": null}));
        let answer = app
            .post(&format!("{prefix}{SESSIONS}"))
            .json(json!({"phone": DEV_PHONE}))
            .expect(503)
            .await;
        let error = zernio_error(&answer, "api_error", "sandbox_unavailable", None);
        assert!(error.contains("sandbox number"), "{error}");
    }
    assert!(events_of(app, &app.pat, "message.sent").await.is_empty());
}

#[wharf_testkit::dual_test]
async fn a_phone_activates_by_replying_and_then_receives_sends(mut app: wharf_testkit::TestApp) {
    let (number, number_phone) = emulator_number(&app).await;
    let created = app
        .post("/v1/whatsapp/sandbox/sessions")
        .json(json!({"phone": "+34 688-246 216"}))
        .expect(200)
        .await;
    assert_eq!(created["sandboxNumber"], number_phone.as_str());
    let session = &created["session"];
    assert_eq!(session["phoneE164"], DEV_DIGITS);
    assert_eq!(session["status"], "pending");
    assert!(session["activatedAt"].is_null());
    let id = session["id"].as_str().expect("id").to_owned();
    // The verification message went out from the sandbox number.
    let sent = wait_events(&app, &app.pat, "message.sent").await;
    assert_eq!(
        sent[0]["data"]["chat_jid"],
        format!("{DEV_DIGITS}@s.whatsapp.net")
    );

    // Not activated yet: sending through the sandbox is refused before queueing.
    let refused = app
        .post("/api/send-message")
        .json(json!({"session_id": "sandbox", "to": DEV_PHONE, "text": "hi"}))
        .expect(422)
        .await;
    assert_eq!(refused["reason_code"], "sandbox_recipient_not_activated");
    assert!(refused["errors"]["to"].is_array());

    phone_writes(&app, &number, DEV_PHONE, "yes it's me").await;
    let activated = wait_events(&app, &app.pat, "sandbox.activated").await;
    assert_eq!(activated[0]["data"]["sandbox_session_id"], id.as_str());
    let listed = app
        .get("/api/v1/whatsapp/sandbox/sessions")
        .expect(200)
        .await;
    assert_eq!(listed["sessions"][0]["status"], "active");
    assert!(listed["sessions"][0]["activatedAt"].is_string());

    let sent = app
        .post("/api/send-message")
        .json(json!({"session_id": "sandbox", "to": DEV_PHONE, "text": "hello from the sandbox"}))
        .expect(202)
        .await;
    let message = sent["message_id"].as_str().expect("message_id");
    let info = app.wait_status(message, "sent").await;
    assert_eq!(info["status"], "sent");
}

#[wharf_testkit::dual_test]
async fn every_malformed_phone_is_a_400_naming_phone(mut app: wharf_testkit::TestApp) {
    emulator_number(&app).await;
    const FORMAT: &str = "digits, spaces, dashes and a leading '+' only";
    // (body, what the error must say)
    let cases: Vec<(Value, &str)> = vec![
        // Missing, null, empty, blank.
        (json!({}), "phone"),
        (json!({"phone": null}), "required"),
        (json!({"phone": ""}), "required"),
        (json!({"phone": "   "}), "required"),
        // Not a string.
        (json!({"phone": 34_688_246_216_u64}), "must be a string"),
        (json!({"phone": true}), "must be a string"),
        (json!({"phone": ["+34688246216"]}), "must be a string"),
        (
            json!({"phone": {"e164": "+34688246216"}}),
            "must be a string",
        ),
        // Letters.
        (json!({"phone": "abc"}), FORMAT),
        (json!({"phone": "+34 688 246 21x"}), FORMAT),
        (json!({"phone": "+34688246216 ext 1"}), FORMAT),
        // Parentheses and dots (which Phone::parse elsewhere tolerates) are refused here.
        (json!({"phone": "+34 (688) 246216"}), FORMAT),
        (json!({"phone": "34.688.246.216"}), FORMAT),
        (json!({"phone": "+34/688/246/216"}), FORMAT),
        // A plus anywhere but at the start.
        (json!({"phone": "++34688246216"}), FORMAT),
        (json!({"phone": "34+688246216"}), FORMAT),
        (json!({"phone": "34688246216+"}), FORMAT),
        // Too short, too long.
        (json!({"phone": "+34"}), "is not a phone number"),
        (json!({"phone": "+34 688"}), "is not a phone number"),
        (
            json!({"phone": "+34 688 246 216 1234 5678"}),
            "is not a phone number",
        ),
        // No such country code; `00` is not read as an international prefix.
        (json!({"phone": "+999 1234 5678"}), "is not a phone number"),
        (
            json!({"phone": "0034 688 246 216"}),
            "is not a phone number",
        ),
    ];
    for prefix in ["", "/api"] {
        for (body, says) in &cases {
            let answer = app
                .post(&format!("{prefix}{SESSIONS}"))
                .json(body.clone())
                .expect(400)
                .await;
            let error = zernio_error(
                &answer,
                "invalid_request_error",
                "invalid_field_value",
                Some("phone"),
            );
            assert!(error.starts_with("phone: "), "{body}: {error}");
            assert!(
                error.contains(says),
                "{body}: {error} does not say {says:?}"
            );
        }
    }

    // A body that is not JSON, or not an object: param `body`.
    for raw in [
        "{\"phone\": ",
        "{\"phone\": \"+34688246216\",}",
        "not json",
        "[\"+34688246216\"]",
        "\"+34688246216\"",
    ] {
        let answer = app
            .post(SESSIONS)
            .raw(raw, "application/json")
            .expect(400)
            .await;
        let error = zernio_error(
            &answer,
            "invalid_request_error",
            "invalid_field_value",
            Some("body"),
        );
        assert!(error.contains("malformed JSON"), "{raw}: {error}");
    }
    // A body that is not declared JSON at all.
    let answer = app
        .post(SESSIONS)
        .raw("phone=%2B34688246216", "application/x-www-form-urlencoded")
        .expect(415)
        .await;
    zernio_error(
        &answer,
        "invalid_request_error",
        "unsupported_media_type",
        None,
    );

    // Nothing was stored or sent.
    assert!(listed(&app).await.is_empty());
    assert!(events_of(&app, &app.pat, "message.sent").await.is_empty());
}

#[wharf_testkit::dual_test]
async fn phones_are_normalized_to_e164_digits(mut app: wharf_testkit::TestApp) {
    let (number, number_phone) = emulator_number(&app).await;
    let first = create(&app, "+34 688-246 216", 200).await;
    assert_eq!(first["session"]["phoneE164"], DEV_DIGITS);
    assert_eq!(first["sandboxNumber"], number_phone.as_str());
    assert!(
        number_phone.starts_with('+'),
        "the number is E.164: {number_phone}"
    );
    let id = first["session"]["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("sbx_"), "{id}");
    // Written differently, it is the same phone: the same session.
    for written in [
        "34688246216",
        " +34688246216 ",
        "34-688-246-216",
        "+34 688 246 216",
    ] {
        let again = create(&app, written, 200).await;
        assert_eq!(again["session"]["phoneE164"], DEV_DIGITS, "{written}");
        assert_eq!(again["session"]["id"], id.as_str(), "{written}");
    }
    let sessions = listed(&app).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["phoneE164"], DEV_DIGITS);
    assert_eq!(sessions[0]["id"], id.as_str());
    for field in ["expiresAt", "createdAt"] {
        assert!(
            sessions[0][field]
                .as_str()
                .is_some_and(|t| t.ends_with('Z')),
            "{field}: {}",
            sessions[0]
        );
    }
    // The verification went to that phone's chat, as the configured text.
    let sent = events_of(&app, &app.pat, "message.sent").await;
    assert_eq!(sent.len(), 5, "one verification per POST");
    for event in &sent {
        assert_eq!(
            event["data"]["chat_jid"],
            format!("{DEV_DIGITS}@s.whatsapp.net")
        );
        assert_eq!(event["data"]["session_id"], number.as_str());
    }
    let logs = app
        .get(&format!(
            "/api/whatsapp-sessions/{number}/message-logs?direction=out"
        ))
        .expect(200)
        .await;
    let logged = logs["data"].as_array().expect("data");
    assert_eq!(logged.len(), 5);
    for m in logged {
        assert_eq!(
            m["content"]["text"],
            app.config.sandbox_verification_text.as_str(),
            "{m}"
        );
    }
}

#[wharf_testkit::dual_test]
async fn the_sandbox_number_itself_is_refused(mut app: wharf_testkit::TestApp) {
    let (_, number_phone) = emulator_number(&app).await;
    let digits = number_phone.trim_start_matches('+').to_owned();
    let spaced = format!("+{} {}", &digits[..2], &digits[2..]);
    for written in [number_phone.clone(), digits, spaced] {
        let answer = create(&app, &written, 400).await;
        let error = zernio_error(
            &answer,
            "invalid_request_error",
            "invalid_field_value",
            Some("phone"),
        );
        assert!(error.contains("sandbox number"), "{written}: {error}");
    }
    assert!(listed(&app).await.is_empty());
    assert!(
        events_of(&app, &app.pat, "message.sent").await.is_empty(),
        "nothing was sent"
    );
}

#[wharf_testkit::dual_test]
async fn one_phone_per_account_until_the_first_is_revoked(mut app: wharf_testkit::TestApp) {
    const OTHER: &str = "+44 7700 900123";
    emulator_number(&app).await;
    let first = create(&app, DEV_PHONE, 200).await;
    let first_id = first["session"]["id"].as_str().expect("id").to_owned();

    let refused = create(&app, OTHER, 400).await;
    let error = zernio_error(
        &refused,
        "invalid_request_error",
        "invalid_field_value",
        Some("phone"),
    );
    assert!(
        error.contains(DEV_PHONE),
        "names the existing phone in E.164: {error}"
    );
    assert!(
        error.contains(&first_id),
        "names the existing session: {error}"
    );
    // Also under /api, and however the second phone is written.
    let refused = app
        .post(&format!("/api{SESSIONS}"))
        .json(json!({"phone": "447700900123"}))
        .expect(400)
        .await;
    assert!(
        zernio_error(
            &refused,
            "invalid_request_error",
            "invalid_field_value",
            Some("phone")
        )
        .contains(DEV_PHONE)
    );

    // Nothing was sent to the second phone, and the first session is untouched.
    let sent = events_of(&app, &app.pat, "message.sent").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0]["data"]["chat_jid"],
        format!("{DEV_DIGITS}@s.whatsapp.net")
    );
    let sessions = listed(&app).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["id"], first_id.as_str());

    // Revoked, the first phone no longer counts.
    let deleted = app
        .delete(&format!("{SESSIONS}/{first_id}"))
        .expect(200)
        .await;
    assert_eq!(deleted, json!({"success": true}));
    let second = create(&app, OTHER, 200).await;
    assert_eq!(second["session"]["phoneE164"], "447700900123");
    assert_eq!(second["session"]["status"], "pending");
    assert_ne!(second["session"]["id"], first_id.as_str());
    let sessions = listed(&app).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["phoneE164"], "447700900123");
    // And now the first phone is the other one.
    let refused = create(&app, DEV_PHONE, 400).await;
    assert!(
        zernio_error(
            &refused,
            "invalid_request_error",
            "invalid_field_value",
            Some("phone")
        )
        .contains("+447700900123")
    );
    assert_eq!(events_of(&app, &app.pat, "message.sent").await.len(), 2);
}

#[wharf_testkit::dual_test]
async fn an_activated_phone_still_counts_as_the_one_phone(mut app: wharf_testkit::TestApp) {
    let (number, _) = emulator_number(&app).await;
    create(&app, DEV_PHONE, 200).await;
    phone_writes(&app, &number, DEV_PHONE, "me").await;
    wait_events(&app, &app.pat, "sandbox.activated").await;
    let refused = create(&app, "+44 7700 900123", 400).await;
    let error = zernio_error(
        &refused,
        "invalid_request_error",
        "invalid_field_value",
        Some("phone"),
    );
    assert!(error.contains(DEV_PHONE), "{error}");
}

#[wharf_testkit::dual_test]
async fn the_same_phone_again_refreshes_and_resends(mut app: wharf_testkit::TestApp) {
    let (number, _) = emulator_number(&app).await;
    let first = create(&app, DEV_PHONE, 200).await;
    let id = first["session"]["id"].as_str().expect("id").to_owned();
    let rows = stored(&app).await;
    assert_eq!(rows.len(), 1);
    let (created_at, first_expiry) = (rows[0].created_at, rows[0].expires_at);
    let pending_ttl = i64::try_from(app.config.sandbox_pending_hours).unwrap() * 3_600_000;
    assert!(
        (first_expiry - created_at - pending_ttl).abs() < 1000,
        "pending sessions get 24 h"
    );

    // An hour later, the same phone again: same session, a later expiry, a new message.
    app.config.clock.advance(Duration::from_secs(3600));
    let again = create(&app, "34 688 246 216", 200).await;
    assert_eq!(again["session"]["id"], id.as_str());
    assert_eq!(again["session"]["status"], "pending");
    assert_eq!(again["session"]["createdAt"], first["session"]["createdAt"]);
    assert!(again["session"]["activatedAt"].is_null());
    assert_ne!(again["session"]["expiresAt"], first["session"]["expiresAt"]);
    let rows = stored(&app).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].created_at, created_at);
    assert!(
        rows[0].expires_at >= first_expiry + 3_600_000 - 1000,
        "extended: {} then {}",
        first_expiry,
        rows[0].expires_at
    );
    let refreshed_expiry = rows[0].expires_at;
    let sent = events_of(&app, &app.pat, "message.sent").await;
    assert_eq!(sent.len(), 2, "the verification was sent again");
    assert_ne!(sent[0]["data"]["message_id"], sent[1]["data"]["message_id"]);
    for event in &sent {
        assert_eq!(
            event["data"]["chat_jid"],
            format!("{DEV_DIGITS}@s.whatsapp.net")
        );
    }
    assert_eq!(listed(&app).await.len(), 1);

    // Activated (and confirmed), a refresh keeps it active and its activation, never
    // shortening it, and sends the verification again.
    phone_writes(&app, &number, DEV_PHONE, "it's me").await;
    wait_events(&app, &app.pat, "sandbox.activated").await;
    let active = app
        .eventually(SESSIONS, |l| l["sessions"][0]["status"] == "active")
        .await;
    let activated_at = active["sessions"][0]["activatedAt"].clone();
    assert!(activated_at.is_string());
    let active_expiry = stored(&app).await[0].expires_at;
    assert!(
        active_expiry > refreshed_expiry,
        "activated sessions get 7 days"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while events_of(&app, &app.pat, "message.sent").await.len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the confirmation was never sent"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let again = create(&app, DEV_PHONE, 200).await;
    assert_eq!(again["session"]["id"], id.as_str());
    assert_eq!(again["session"]["status"], "active");
    assert_eq!(again["session"]["activatedAt"], activated_at);
    assert!(stored(&app).await[0].expires_at >= active_expiry);
    assert_eq!(
        events_of(&app, &app.pat, "message.sent").await.len(),
        4,
        "two verifications, the confirmation, and the refresh's verification"
    );
    // Still one sandbox.activated: refreshing does not re-activate.
    assert_eq!(
        events_of(&app, &app.pat, "sandbox.activated").await.len(),
        1
    );
}

#[wharf_testkit::dual_test]
async fn a_refused_verification_stores_nothing_and_says_why(mut app: wharf_testkit::TestApp) {
    let (number, _) = emulator_number(&app).await;
    app.post(&format!("/emulator/sessions/{number}/contacts"))
        .json(json!({"phone": DEV_PHONE, "on_whatsapp": false}))
        .expect(204)
        .await;
    let answer = create(&app, "+34 688 246 216", 400).await;
    let error = zernio_error(&answer, "platform_error", "platform_error", None);
    assert_eq!(
        error,
        format!("{DEV_PHONE} is not on WhatsApp"),
        "the engine's message"
    );
    let listing = app.get(SESSIONS).expect(200).await;
    assert_eq!(listing["sessions"], json!([]), "nothing stored");
    assert!(stored(&app).await.is_empty());
    assert!(events_of(&app, &app.pat, "message.sent").await.is_empty());
    // Not stored means not blocking: the one-phone rule lets another phone in.
    let other = create(&app, "+44 7700 900123", 200).await;
    assert_eq!(other["session"]["phoneE164"], "447700900123");
    app.delete(&format!(
        "{SESSIONS}/{}",
        other["session"]["id"].as_str().unwrap()
    ))
    .expect(200)
    .await;

    // A permanent engine failure with its own words.
    app.post(&format!("/emulator/sessions/{number}/contacts"))
        .json(json!({"phone": DEV_PHONE, "on_whatsapp": true}))
        .expect(204)
        .await;
    app.post(&format!("/emulator/sessions/{number}/failures"))
        .json(json!({"mode": "permanent", "count": 1, "reason": "the business account is paused"}))
        .expect(204)
        .await;
    let answer = create(&app, DEV_PHONE, 400).await;
    let error = zernio_error(&answer, "platform_error", "platform_error", None);
    assert_eq!(error, "the business account is paused");
    assert!(listed(&app).await.is_empty());

    // A passing failure: 503, nothing stored either.
    app.post(&format!("/emulator/sessions/{number}/failures"))
        .json(json!({"mode": "retryable", "count": 1, "reason": "the phone is offline"}))
        .expect(204)
        .await;
    let answer = app
        .post(SESSIONS)
        .json(json!({"phone": DEV_PHONE}))
        .send()
        .await;
    assert_eq!(answer.status.as_u16(), 503, "{}", answer.text);
    let error = zernio_error(&answer.json, "platform_error", "platform_unavailable", None);
    assert!(error.contains("the phone is offline"), "{error}");
    assert!(answer.header("retry-after").is_some(), "says when to retry");
    assert!(listed(&app).await.is_empty());
    assert_eq!(
        events_of(&app, &app.pat, "message.sent").await.len(),
        1,
        "only the other phone's"
    );

    // Once the engine takes it, the phone registers.
    let created = create(&app, DEV_PHONE, 200).await;
    assert_eq!(created["session"]["status"], "pending");
    assert_eq!(listed(&app).await.len(), 1);
}

#[wharf_testkit::dual_test]
async fn without_a_sandbox_number_the_list_says_null_and_creation_is_503(
    mut app: wharf_testkit::TestApp,
) {
    // None set.
    assert_unavailable(&app).await;
    // A session that never connected has no number yet.
    let created = app.create_session(json!({})).await;
    let unconnected = created["session"]["session_id"]
        .as_str()
        .expect("id")
        .to_owned();
    set_number(&app, &unconnected).await;
    assert_unavailable(&app).await;
    // A connected one: the list names it.
    let (number, number_phone) = emulator_number(&app).await;
    let listing = app.get(SESSIONS).expect(200).await;
    assert_eq!(
        listing,
        json!({"sessions": [], "sandboxNumber": number_phone})
    );
    assert_eq!(
        app.get(&format!("/api{SESSIONS}")).expect(200).await["sandboxNumber"],
        number_phone.as_str()
    );
    create(&app, DEV_PHONE, 200).await;
    assert_eq!(listed(&app).await.len(), 1);
    // Unset again (`wharf sandbox set-number` to nothing): sessions stay listed, number null.
    app.store
        .set_sandbox_number(None, wharf_core::time::now_millis())
        .await
        .expect("unset the sandbox number");
    let listing = app.get(SESSIONS).expect(200).await;
    assert!(listing["sandboxNumber"].is_null(), "{listing}");
    assert_eq!(listing["sessions"].as_array().map(Vec::len), Some(1));
    let answer = create(&app, DEV_PHONE, 503).await;
    zernio_error(&answer, "api_error", "sandbox_unavailable", None);
    // Sending through the sandbox is refused too.
    let refused = app
        .post("/api/send-message")
        .json(json!({"session_id": "sandbox", "to": DEV_PHONE, "text": "hi"}))
        .expect(422)
        .await;
    assert_eq!(refused["reason_code"], "sandbox_not_configured");
    // Set again, then that session deleted: no number either.
    set_number(&app, &number).await;
    assert_eq!(
        app.get(SESSIONS).expect(200).await["sandboxNumber"],
        number_phone.as_str()
    );
    let deleted = app
        .delete(&format!("/v1/whatsapp-sessions/{number}"))
        .send()
        .await;
    assert!(deleted.status.is_success(), "{}", deleted.text);
    let listing = app.get(SESSIONS).expect(200).await;
    assert!(listing["sandboxNumber"].is_null(), "{listing}");
    let answer = create(&app, DEV_PHONE, 503).await;
    zernio_error(&answer, "api_error", "sandbox_unavailable", None);
}

#[wharf_testkit::dual_test]
async fn the_list_holds_the_accounts_live_sessions_and_the_number(mut app: wharf_testkit::TestApp) {
    let (_, number_phone) = emulator_number(&app).await;
    let empty = app.get(SESSIONS).expect(200).await;
    assert_eq!(
        empty,
        json!({"sessions": [], "sandboxNumber": number_phone})
    );
    let created = create(&app, DEV_PHONE, 200).await;
    for prefix in ["", "/api"] {
        let listing = app.get(&format!("{prefix}{SESSIONS}")).expect(200).await;
        assert_eq!(listing["sandboxNumber"], number_phone.as_str());
        assert_eq!(
            listing["sessions"],
            json!([created["session"]]),
            "the list shows what POST answered"
        );
    }
    let session = &created["session"];
    let keys: Vec<&str> = session
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "id",
        "phoneE164",
        "status",
        "expiresAt",
        "activatedAt",
        "createdAt",
    ] {
        assert!(keys.contains(&key), "{key} missing from {session}");
    }
    // Past its 24 hours, a pending session is gone from the list.
    app.config
        .clock
        .advance(Duration::from_secs(24 * 3600 + 60));
    assert_eq!(app.get(SESSIONS).expect(200).await["sessions"], json!([]));
    // And no longer holds the one phone.
    let other = create(&app, "+44 7700 900123", 200).await;
    assert_eq!(other["session"]["phoneE164"], "447700900123");
    assert_ne!(other["session"]["id"], session["id"]);
}

#[wharf_testkit::dual_test]
async fn a_disconnected_number_is_unavailable_and_stores_nothing(mut app: wharf_testkit::TestApp) {
    let (number, number_phone) = emulator_number(&app).await;
    let disconnected = app
        .post(&format!("/v1/whatsapp-sessions/{number}/disconnect"))
        .send()
        .await;
    assert!(disconnected.status.is_success(), "{}", disconnected.text);
    // Still the number (it keeps its phone), but it cannot send now: try again later.
    for prefix in ["", "/api"] {
        let answer = app
            .post(&format!("{prefix}{SESSIONS}"))
            .json(json!({"phone": DEV_PHONE}))
            .send()
            .await;
        assert_eq!(answer.status.as_u16(), 503, "{}", answer.text);
        let error = zernio_error(&answer.json, "platform_error", "platform_unavailable", None);
        assert!(error.contains("not connected"), "{error}");
    }
    let listing = app.get(SESSIONS).expect(200).await;
    assert_eq!(
        listing,
        json!({"sessions": [], "sandboxNumber": number_phone})
    );
    assert!(events_of(&app, &app.pat, "message.sent").await.is_empty());
    // Connected again, it works.
    app.post(&format!("/v1/whatsapp-sessions/{number}/connect"))
        .expect(200)
        .await;
    app.eventually(&format!("/v1/whatsapp-sessions/{number}"), |s| {
        s["status"] == "connected" || s["session"]["status"] == "connected"
    })
    .await;
    create(&app, DEV_PHONE, 200).await;
    assert_eq!(listed(&app).await.len(), 1);
}

/// The operator's sandbox number on an engine this server does not run (here: a cloud
/// session on PostgreSQL without `secret_key`) is the server's problem, not the caller's: 503
/// `sandbox_unavailable` naming no field of theirs, and nothing is stored. It was a 400
/// blaming a field `engine` the request never had.
#[tokio::test]
async fn postgres_a_sandbox_number_on_an_engine_not_running_is_a_503() {
    let Some(app) =
        TestApp::spawn_with(wharf_testkit::Backend::Postgres, |c| c.secret_key = None).await
    else {
        return;
    };
    let (id, _) = super::emulator_number(&app).await;
    app.db()
        .execute(&format!(
            "UPDATE sessions SET engine = 'cloud' WHERE id = '{id}'"
        ))
        .await;
    let answer = app
        .post(SESSIONS)
        .json(json!({"phone": DEV_PHONE}))
        .expect(503)
        .await;
    let error = zernio_error(&answer, "api_error", "sandbox_unavailable", None);
    assert!(error.contains("cloud engine"), "{error}");
    assert!(stored(&app).await.is_empty(), "nothing stored");
}
