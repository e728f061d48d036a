//! The Kapso dialect: `/api/v1/sandbox_sessions` and `/api/v1/agents`.

use std::time::Duration;

use serde_json::{Value, json};
use wharf_testkit::{Received, TestApp, TestReceiver};

use super::*;

/// The activation code alphabet: no 0/O, 1/I/L.
const CODE_ALPHABET: &str = "ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// A second developer phone.
pub(super) const PHONE_2: &str = "+447700900123";
/// A third one.
pub(super) const PHONE_3: &str = "+14155550123";
/// Hours as milliseconds.
pub(super) const HOUR_MS: i64 = 3_600_000;
/// A well-formed sandbox session id that names nothing.
const UNKNOWN_SESSION: &str = "sbx_00000000000000000000000000";
/// A well-formed agent id that names nothing.
const UNKNOWN_AGENT: &str = "agt_00000000000000000000000000";

/// Every field of a Kapso sandbox session (seed `002`).
const SESSION_FIELDS: [&str; 11] = [
    "activated_at",
    "activation_code",
    "activation_link",
    "activation_message",
    "agent",
    "created_at",
    "expires_at",
    "id",
    "phone_number",
    "status",
    "updated_at",
];

/// `POST /api/v1/sandbox_sessions` for `phone` with the token `token` in `X-API-Key`;
/// asserts `status` and returns the answer's `data`.
pub(super) async fn kapso_create(app: &TestApp, token: &str, phone: &str, status: u16) -> Value {
    let answer = app
        .post("/api/v1/sandbox_sessions")
        .api_key(token)
        .json(json!({"whatsapp_sandbox_session": {"phone_number": phone}}))
        .expect(status)
        .await;
    answer["data"].clone()
}

/// The live Kapso sessions of the account of `token`.
pub(super) async fn kapso_list(app: &TestApp, token: &str) -> Vec<Value> {
    app.get("/api/v1/sandbox_sessions")
        .api_key(token)
        .expect(200)
        .await["data"]
        .as_array()
        .expect("data is a list")
        .clone()
}

/// Polls `GET /api/v1/sandbox_sessions/{id}` (with `token`) until `done` holds (at most
/// 10 s); returns the session.
pub(super) async fn kapso_eventually(
    app: &TestApp,
    token: &str,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let session = app
            .get(&format!("/api/v1/sandbox_sessions/{id}"))
            .api_key(token)
            .expect(200)
            .await["data"]
            .clone();
        if done(&session) {
            return session;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition never held; last: {session}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `phone` sends its session's activation code (lower case, inside a sentence) to the sandbox
/// number `number`; waits until the session (of the account of `token`) is active and
/// returns it.
pub(super) async fn kapso_activate(
    app: &TestApp,
    token: &str,
    number: &str,
    session: &Value,
) -> Value {
    let phone = session["phone_number"].as_str().expect("phone_number");
    let code = session["activation_code"]
        .as_str()
        .expect("activation_code");
    phone_writes(
        app,
        number,
        phone,
        &format!("hi! my code is {} :)", code.to_lowercase()),
    )
    .await;
    let id = session["id"].as_str().expect("id");
    kapso_eventually(app, token, id, |s| s["status"] == "active").await
}

/// Waits (at most 10 s) until the account of `token` has at least `n` events of `kind`;
/// returns them all.
pub(super) async fn wait_n_events(app: &TestApp, token: &str, kind: &str, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = events_of(app, token, kind).await;
        if found.len() >= n {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} {kind} events arrived, expected {n}",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Requests `receiver` gets until `done` holds for all of them so far (deliveries to one
/// endpoint run concurrently, so their order is not fixed).
pub(super) async fn receive_until(
    receiver: &mut TestReceiver,
    done: impl Fn(&[Received]) -> bool,
) -> Vec<Received> {
    let mut got = Vec::new();
    while !done(&got) {
        got.push(receiver.next().await);
    }
    got
}

/// How many of `got` have event type `kind`.
pub(super) fn count_of(got: &[Received], kind: &str) -> usize {
    got.iter().filter(|r| r.json["type"] == kind).count()
}

/// The WhatsApp chat of a phone in E.164.
pub(super) fn chat_of(phone: &str) -> String {
    format!("{}@s.whatsapp.net", phone.trim_start_matches('+'))
}

/// Milliseconds since the epoch of an RFC 3339 UTC timestamp (`YYYY-MM-DDTHH:MM:SS[.f]Z`).
pub(super) fn millis(text: &str) -> i64 {
    let (date, time) = text
        .strip_suffix('Z')
        .and_then(|t| t.split_once('T'))
        .unwrap_or_else(|| panic!("not an RFC 3339 UTC timestamp: {text}"));
    let ymd: Vec<i64> = date.split('-').map(|p| p.parse().expect("date")).collect();
    let (hms, fraction) = time.split_once('.').unwrap_or((time, ""));
    let hms: Vec<i64> = hms.split(':').map(|p| p.parse().expect("time")).collect();
    let ms: i64 = format!("{fraction:0<3}")[..3].parse().expect("fraction");
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m, d) = (
        if ymd[1] <= 2 { ymd[0] - 1 } else { ymd[0] },
        ymd[1],
        ymd[2],
    );
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    days * 86_400_000 + (hms[0] * 3600 + hms[1] * 60 + hms[2]) * 1000 + ms
}

/// The keys of a JSON object, sorted.
fn keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// Asserts `body` is Kapso's error envelope; returns its `errors` (`Null` when absent).
fn kapso_error(body: &Value) -> Value {
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "not a Kapso error: {body}"
    );
    assert!(
        body.get("success").is_none() && body.get("reason_code").is_none(),
        "{body}"
    );
    body["errors"].clone()
}

/// Asserts `body` is a Kapso 422 naming `field` (and returns the field's messages).
fn invalid_field(body: &Value, field: &str) -> Vec<Value> {
    let errors = kapso_error(body);
    let messages = errors[field]
        .as_array()
        .unwrap_or_else(|| panic!("no errors.{field}: {body}"));
    assert!(
        !messages.is_empty()
            && messages
                .iter()
                .all(|m| m.as_str().is_some_and(|m| !m.is_empty()))
    );
    assert!(body["error"].as_str().unwrap().contains(field), "{body}");
    messages.clone()
}

#[test]
fn timestamps_parse() {
    assert_eq!(millis("1970-01-01T00:00:00Z"), 0);
    assert_eq!(millis("2023-11-07T05:31:56Z"), 1_699_335_116_000);
    assert_eq!(millis("2023-11-07T05:31:56.5Z"), 1_699_335_116_500);
    assert_eq!(millis("2024-02-29T23:59:59.999Z"), 1_709_251_199_999);
}

#[wharf_testkit::dual_test]
async fn creation_answers_every_field_of_the_seed_and_sends_nothing(
    mut app: wharf_testkit::TestApp,
) {
    let (number, number_phone) = emulator_number(&app).await;
    let before = app.config.clock.now_millis();
    let answer = app
        .post("/api/v1/sandbox_sessions")
        .api_key(&app.pat)
        .json(json!({"whatsapp_sandbox_session": {"phone_number": DEV_PHONE}}))
        .expect(201)
        .await;
    let after = app.config.clock.now_millis();
    assert_eq!(keys(&answer), ["data"], "wrapped in data: {answer}");
    let s = &answer["data"];
    assert_eq!(keys(s), SESSION_FIELDS, "{s}");
    let id = s["id"].as_str().unwrap();
    assert!(id.starts_with("sbx_") && id.len() == 30, "{id}");
    assert_eq!(s["phone_number"], DEV_PHONE);
    assert_eq!(s["status"], "pending_activation");
    let code = s["activation_code"].as_str().unwrap();
    assert_eq!(code.len(), 6, "{code}");
    assert!(
        code.chars().all(|c| CODE_ALPHABET.contains(c)),
        "unambiguous alphabet: {code}"
    );
    let message = s["activation_message"].as_str().unwrap();
    assert!(message.contains(code), "{message}");
    assert_eq!(
        s["activation_link"],
        format!(
            "https://wa.me/{}?text={code}",
            number_phone.trim_start_matches('+')
        )
    );
    assert!(s["activated_at"].is_null());
    assert!(s["agent"].is_null());
    let created = millis(s["created_at"].as_str().unwrap());
    assert!(
        (before..=after).contains(&created),
        "{before} <= {created} <= {after}"
    );
    assert_eq!(s["updated_at"], s["created_at"]);
    assert_eq!(
        millis(s["expires_at"].as_str().unwrap()) - created,
        24 * HOUR_MS,
        "pending for 24 h"
    );

    // Nothing was sent: the phone writes first in this dialect.
    assert!(events_of(&app, &app.pat, "message.sent").await.is_empty());
    let logs = app
        .get(&format!("/api/whatsapp-sessions/{number}/message-logs"))
        .expect(200)
        .await;
    assert_eq!(logs["data"], json!([]), "no verification message: {logs}");

    // Bearer works too, and the list shows the same session.
    let listed = app.get("/api/v1/sandbox_sessions").expect(200).await;
    assert_eq!(listed["data"], json!([s]));
}

#[wharf_testkit::dual_test]
async fn the_code_activates_in_any_case_anywhere_in_the_text(mut app: wharf_testkit::TestApp) {
    let (number, _) = emulator_number(&app).await;
    let s = kapso_create(&app, &app.pat, DEV_PHONE, 201).await;
    let id = s["id"].as_str().unwrap();
    let code = s["activation_code"].as_str().unwrap().to_owned();

    // Messages without the code (a greeting, part of the code, a wrong code) do not
    // activate; they are received by the number's account as usual.
    let wrong: String = code
        .chars()
        .map(|c| {
            let at = CODE_ALPHABET.find(c).unwrap();
            CODE_ALPHABET.as_bytes()[(at + 1) % CODE_ALPHABET.len()] as char
        })
        .collect();
    for text in ["hello, what is this?", &code[..5], &wrong] {
        phone_writes(&app, &number, DEV_PHONE, text).await;
    }
    let received = wait_n_events(&app, &app.pat, "message.received", 3).await;
    assert!(
        received.iter().all(|e| e["data"].get("sandbox").is_none()),
        "not routed: {received:?}"
    );
    assert!(
        events_of(&app, &app.pat, "sandbox.activated")
            .await
            .is_empty()
    );
    let still = app
        .get(&format!("/api/v1/sandbox_sessions/{id}"))
        .api_key(&app.pat)
        .expect(200)
        .await;
    assert_eq!(still["data"]["status"], "pending_activation");
    assert!(still["data"]["activated_at"].is_null());

    // The code in lower case, in the middle of a sentence, activates.
    phone_writes(
        &app,
        &number,
        DEV_PHONE,
        &format!("ok here it is: {} thanks", code.to_lowercase()),
    )
    .await;
    let activated = wait_events(&app, &app.pat, "sandbox.activated").await;
    assert_eq!(activated.len(), 1);
    let data = &activated[0]["data"];
    assert_eq!(data["sandbox_session_id"], id);
    assert_eq!(data["phone_number"], DEV_PHONE);
    assert_eq!(data["dialect"], "kapso");
    assert!(data["agent_id"].is_null());
    let active = app
        .get(&format!("/api/v1/sandbox_sessions/{id}"))
        .api_key(&app.pat)
        .expect(200)
        .await["data"]
        .clone();
    assert_eq!(active["status"], "active");
    let activated_at = millis(active["activated_at"].as_str().expect("activated_at set"));
    assert_eq!(
        millis(active["expires_at"].as_str().unwrap()) - activated_at,
        7 * 24 * HOUR_MS,
        "active for 7 days"
    );
    assert_eq!(active["updated_at"], active["activated_at"]);
    assert_eq!(active["activation_code"], code.as_str());
    assert_eq!(millis(data["activated_at"].as_str().unwrap()), activated_at);

    // The activating message is the first one routed through the sandbox session.
    let received = wait_n_events(&app, &app.pat, "message.received", 4).await;
    assert_eq!(received[3]["data"]["sandbox"]["sandbox_session_id"], id);
    assert_eq!(received[3]["data"]["sender_jid"], chat_of(DEV_PHONE));

    // The confirmation went out from the sandbox number to the phone.
    let sent = wait_events(&app, &app.pat, "message.sent").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["data"]["chat_jid"], chat_of(DEV_PHONE));
    assert_eq!(sent[0]["data"]["session_id"], number.as_str());
    assert_eq!(sent[0]["data"]["direction"], "out");
    let confirmation = sent[0]["data"]["message_id"].as_str().unwrap();
    let logs = app
        .get(&format!(
            "/api/whatsapp-sessions/{number}/message-logs?direction=out"
        ))
        .expect(200)
        .await;
    let logged = logs["data"].as_array().unwrap();
    assert_eq!(logged.len(), 1, "{logs}");
    assert_eq!(logged[0]["message_id"], confirmation);
    assert!(
        logged[0]["content"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("sandbox")),
        "{logs}"
    );

    // The code again changes nothing: no second activation, no second confirmation.
    phone_writes(&app, &number, DEV_PHONE, &code).await;
    let received = wait_n_events(&app, &app.pat, "message.received", 5).await;
    assert_eq!(received[4]["data"]["sandbox"]["sandbox_session_id"], id);
    assert_eq!(
        events_of(&app, &app.pat, "sandbox.activated").await.len(),
        1
    );
    let again = app
        .get(&format!("/api/v1/sandbox_sessions/{id}"))
        .api_key(&app.pat)
        .expect(200)
        .await["data"]
        .clone();
    assert_eq!(again["activated_at"], active["activated_at"]);
    assert!(
        app.get(&format!(
            "/api/whatsapp-sessions/{number}/message-logs?direction=out"
        ))
        .expect(200)
        .await["data"]
            .as_array()
            .unwrap()
            .len()
            == 1
    );

    // Creating it again refreshes the active session: still active, same activation.
    let refreshed = kapso_create(&app, &app.pat, DEV_PHONE, 200).await;
    assert_eq!(refreshed["id"], id);
    assert_eq!(refreshed["status"], "active");
    assert_eq!(refreshed["activated_at"], active["activated_at"]);
    assert!(
        millis(refreshed["expires_at"].as_str().unwrap())
            >= millis(active["expires_at"].as_str().unwrap())
    );
}

#[wharf_testkit::dual_test]
async fn refresh_list_get_and_delete(mut app: wharf_testkit::TestApp) {
    emulator_number(&app).await;
    let first = kapso_create(&app, &app.pat, DEV_PHONE, 201).await;
    let id = first["id"].as_str().unwrap().to_owned();

    // The same phone again, written differently, an hour later: the same session, refreshed.
    app.config.clock.advance(Duration::from_secs(3600));
    let again = kapso_create(&app, &app.pat, "+34 688-246 216", 200).await;
    assert_eq!(again["id"], id.as_str());
    assert_eq!(
        again["activation_code"], first["activation_code"],
        "the code stays valid"
    );
    assert_eq!(again["status"], "pending_activation");
    assert_eq!(again["created_at"], first["created_at"]);
    let extended = millis(again["expires_at"].as_str().unwrap())
        - millis(first["expires_at"].as_str().unwrap());
    assert!(
        (HOUR_MS..HOUR_MS + 60_000).contains(&extended),
        "extended by an hour: {extended}"
    );
    assert_eq!(
        millis(again["expires_at"].as_str().unwrap())
            - millis(again["updated_at"].as_str().unwrap()),
        24 * HOUR_MS
    );

    // Several phones per account in this dialect; listed oldest first.
    let second = kapso_create(&app, &app.pat, PHONE_2, 201).await;
    assert_ne!(second["id"], id.as_str());
    assert_ne!(second["activation_code"], first["activation_code"]);
    let listed = kapso_list(&app, &app.pat).await;
    assert_eq!(listed, vec![again.clone(), second.clone()]);

    let got = app
        .get(&format!("/api/v1/sandbox_sessions/{id}"))
        .api_key(&app.pat)
        .expect(200)
        .await;
    assert_eq!(got, json!({"data": again}));

    // Unknown, malformed and other kinds of ids are 404 in Kapso's envelope.
    for bad in [
        UNKNOWN_SESSION,
        "nope",
        "123e4567-e89b-12d3-a456-426614174000",
        UNKNOWN_AGENT,
    ] {
        let body = app
            .get(&format!("/api/v1/sandbox_sessions/{bad}"))
            .api_key(&app.pat)
            .expect(404)
            .await;
        assert!(kapso_error(&body).is_null(), "{body}");
        let body = app
            .delete(&format!("/api/v1/sandbox_sessions/{bad}"))
            .api_key(&app.pat)
            .expect(404)
            .await;
        kapso_error(&body);
    }

    // Someone else's session is not found either, and stays.
    let other = other_account(&app).await;
    let theirs = kapso_create(&app, &other, PHONE_3, 201).await;
    let theirs_id = theirs["id"].as_str().unwrap();
    app.get(&format!("/api/v1/sandbox_sessions/{theirs_id}"))
        .api_key(&app.pat)
        .expect(404)
        .await;
    app.delete(&format!("/api/v1/sandbox_sessions/{theirs_id}"))
        .api_key(&app.pat)
        .expect(404)
        .await;
    assert_eq!(kapso_list(&app, &other).await, vec![theirs.clone()]);
    assert_eq!(kapso_list(&app, &app.pat).await.len(), 2);

    // DELETE: 204 without a body, then gone.
    let deleted = app
        .delete(&format!("/api/v1/sandbox_sessions/{id}"))
        .api_key(&app.pat)
        .send()
        .await;
    assert_eq!(deleted.status.as_u16(), 204);
    assert!(deleted.text.is_empty(), "{}", deleted.text);
    let body = app
        .get(&format!("/api/v1/sandbox_sessions/{id}"))
        .api_key(&app.pat)
        .expect(404)
        .await;
    assert!(
        body["error"].as_str().unwrap().contains("not found"),
        "{body}"
    );
    app.delete(&format!("/api/v1/sandbox_sessions/{id}"))
        .api_key(&app.pat)
        .expect(404)
        .await;
    assert_eq!(kapso_list(&app, &app.pat).await, vec![second]);

    // The phone can start over: a new session with a new code.
    let fresh = kapso_create(&app, &app.pat, DEV_PHONE, 201).await;
    assert_ne!(fresh["id"], id.as_str());
}

#[wharf_testkit::dual_test]
async fn every_validation_and_auth_error(mut app: wharf_testkit::TestApp) {
    // No sandbox number yet: 503, even for a valid request.
    let body = app
        .post("/api/v1/sandbox_sessions")
        .api_key(&app.pat)
        .json(json!({"whatsapp_sandbox_session": {"phone_number": DEV_PHONE}}))
        .expect(503)
        .await;
    assert!(kapso_error(&body).is_null(), "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("sandbox number"),
        "{body}"
    );

    let (_, number_phone) = emulator_number(&app).await;
    let post = |body: Value| {
        app.post("/api/v1/sandbox_sessions")
            .api_key(&app.pat)
            .json(body)
    };

    let body = post(json!({})).expect(422).await;
    invalid_field(&body, "whatsapp_sandbox_session");
    let body = post(json!({"whatsapp_sandbox_session": "+34688246216"}))
        .expect(422)
        .await;
    invalid_field(&body, "whatsapp_sandbox_session");
    // Fields are named without the wrapper, whether missing, mistyped or malformed.
    let body = post(json!({"whatsapp_sandbox_session": {}}))
        .expect(422)
        .await;
    invalid_field(&body, "phone_number");
    let body = post(json!({"whatsapp_sandbox_session": {"phone_number": 34688246216_u64}}))
        .expect(422)
        .await;
    invalid_field(&body, "phone_number");
    for bad in [
        "",
        "   ",
        "abc",
        "+34 (688) 246216",
        "34.688.246.216",
        "++34688246216",
        "+34",
        "+999 1234 5678",
    ] {
        let body = post(json!({"whatsapp_sandbox_session": {"phone_number": bad}}))
            .expect(422)
            .await;
        invalid_field(&body, "phone_number");
    }
    // The sandbox number itself.
    let body = post(json!({"whatsapp_sandbox_session": {"phone_number": number_phone}}))
        .expect(422)
        .await;
    invalid_field(&body, "phone_number");
    // Agents: unknown, malformed.
    for bad in [
        UNKNOWN_AGENT,
        "123e4567-e89b-12d3-a456-426614174000",
        UNKNOWN_SESSION,
    ] {
        let body =
            post(json!({"whatsapp_sandbox_session": {"phone_number": DEV_PHONE, "agent_id": bad}}))
                .expect(422)
                .await;
        invalid_field(&body, "agent_id");
    }
    // Unknown fields inside the session object.
    let body =
        post(json!({"whatsapp_sandbox_session": {"phone_number": DEV_PHONE, "nickname": "me"}}))
            .expect(422)
            .await;
    let errors = kapso_error(&body);
    assert!(
        body["error"].as_str().unwrap().contains("nickname"),
        "{body}"
    );
    assert_eq!(errors.as_object().unwrap().len(), 1, "{body}");
    // Not JSON.
    let body = app
        .post("/api/v1/sandbox_sessions")
        .api_key(&app.pat)
        .raw("{\"whatsapp_sandbox_session\": ", "application/json")
        .expect(422)
        .await;
    invalid_field(&body, "body");
    let body = app
        .post("/api/v1/sandbox_sessions")
        .api_key(&app.pat)
        .raw("[]", "application/json")
        .expect(422)
        .await;
    invalid_field(&body, "body");

    // None of that stored anything.
    assert!(kapso_list(&app, &app.pat).await.is_empty());

    // Authentication: missing or wrong key, on every route.
    for (method, path) in [
        ("GET", "/api/v1/sandbox_sessions".to_owned()),
        ("POST", "/api/v1/sandbox_sessions".to_owned()),
        ("GET", format!("/api/v1/sandbox_sessions/{UNKNOWN_SESSION}")),
        (
            "DELETE",
            format!("/api/v1/sandbox_sessions/{UNKNOWN_SESSION}"),
        ),
        ("GET", "/api/v1/agents".to_owned()),
        ("POST", "/api/v1/agents".to_owned()),
        ("PATCH", format!("/api/v1/agents/{UNKNOWN_AGENT}")),
    ] {
        let call = |m: &str| match m {
            "GET" => app.get(&path),
            "POST" => app.post(&path),
            "PATCH" => app.patch(&path),
            _ => app.delete(&path),
        };
        let body = call(method)
            .anonymous()
            .json(json!({"whatsapp_sandbox_session": {"phone_number": DEV_PHONE}}))
            .expect(401)
            .await;
        assert!(kapso_error(&body).is_null(), "{method} {path}: {body}");
        let body = call(method)
            .api_key("wharf_pat_not_a_real_key")
            .json(json!({}))
            .expect(401)
            .await;
        kapso_error(&body);
    }
    assert!(kapso_list(&app, &app.pat).await.is_empty());

    // A session-scoped key cannot manage the sandbox.
    let (_, key) = app.connected_session().await;
    let body = app
        .post("/api/v1/sandbox_sessions")
        .api_key(&key)
        .json(json!({"whatsapp_sandbox_session": {"phone_number": DEV_PHONE}}))
        .expect(403)
        .await;
    kapso_error(&body);
    let body = app
        .get("/api/v1/sandbox_sessions")
        .api_key(&key)
        .expect(403)
        .await;
    kapso_error(&body);
    let body = app.get("/api/v1/agents").api_key(&key).expect(403).await;
    kapso_error(&body);
    // Judged before the request: a broken body or id changes nothing.
    let body = app
        .post("/api/v1/sandbox_sessions")
        .api_key(&key)
        .raw("[]", "application/json")
        .expect(403)
        .await;
    kapso_error(&body);
    let body = app
        .delete("/api/v1/agents/not-an-id")
        .api_key(&key)
        .expect(403)
        .await;
    kapso_error(&body);

    // And the valid request works.
    kapso_create(&app, &app.pat, DEV_PHONE, 201).await;
}

#[wharf_testkit::dual_test]
async fn agents_crud_validation_and_binding(mut app: wharf_testkit::TestApp) {
    emulator_number(&app).await;
    let receiver = TestReceiver::start().await;
    let url = receiver.url("/agent");
    let created = app.post("/api/v1/agents").api_key(&app.pat)
        .json(json!({"agent": {"name": "Customer Support Agent", "description": "Handles initial customer support queries", "webhook_url": url}}))
        .expect(201).await;
    assert_eq!(keys(&created), ["data"]);
    let agent = created["data"].clone();
    assert_eq!(
        keys(&agent),
        [
            "created_at",
            "description",
            "id",
            "name",
            "project_id",
            "updated_at",
            "webhook_secret",
            "webhook_url"
        ]
    );
    let agent_id = agent["id"].as_str().unwrap().to_owned();
    assert!(agent_id.starts_with("agt_"), "{agent_id}");
    assert_eq!(agent["name"], "Customer Support Agent");
    assert_eq!(
        agent["description"],
        "Handles initial customer support queries"
    );
    assert_eq!(agent["project_id"], app.account_id.as_str());
    assert_eq!(agent["webhook_url"], url.as_str());
    assert!(
        agent["webhook_secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    millis(agent["created_at"].as_str().unwrap());
    assert_eq!(agent["updated_at"], agent["created_at"]);

    // An agent without an endpoint has no secret.
    let plain = app
        .post("/api/v1/agents")
        .api_key(&app.pat)
        .json(json!({"agent": {"name": "  Plain  "}}))
        .expect(201)
        .await["data"]
        .clone();
    assert_eq!(plain["name"], "Plain", "trimmed");
    assert!(plain["description"].is_null() && plain["webhook_url"].is_null());
    assert!(plain.get("webhook_secret").is_none(), "{plain}");

    // Listed and fetched, never with the secret.
    let mut public = agent.clone();
    public.as_object_mut().unwrap().remove("webhook_secret");
    let listed = app
        .get("/api/v1/agents")
        .api_key(&app.pat)
        .expect(200)
        .await["data"]
        .clone();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        listed.contains(&public) && listed.contains(&plain),
        "{listed:?}"
    );
    let got = app
        .get(&format!("/api/v1/agents/{agent_id}"))
        .api_key(&app.pat)
        .expect(200)
        .await;
    assert_eq!(got, json!({"data": public}));

    // Agent endpoints are not the account's webhooks.
    assert_eq!(app.get("/v1/webhooks").expect(200).await["data"], json!([]));
    let own = app
        .post("/v1/webhooks")
        .json(json!({"target_url": receiver.url("/own")}))
        .expect(201)
        .await;
    let hooks = app.get("/v1/webhooks").expect(200).await["data"].clone();
    assert_eq!(hooks.as_array().unwrap().len(), 1, "{hooks}");
    assert_eq!(hooks[0]["id"], own["id"]);

    // A sandbox session bound to the agent shows it (without the secret).
    let bound = app
        .post("/api/v1/sandbox_sessions")
        .api_key(&app.pat)
        .json(
            json!({"whatsapp_sandbox_session": {"phone_number": DEV_PHONE, "agent_id": agent_id}}),
        )
        .expect(201)
        .await["data"]
        .clone();
    assert_eq!(bound["agent"], public);
    let session_id = bound["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get(&format!("/api/v1/sandbox_sessions/{session_id}"))
            .api_key(&app.pat)
            .expect(200)
            .await["data"]["agent"],
        public
    );
    assert_eq!(kapso_list(&app, &app.pat).await[0]["agent"], public);
    // Refreshing without an agent keeps the binding; an empty agent_id is no agent.
    let refreshed = app
        .post("/api/v1/sandbox_sessions")
        .api_key(&app.pat)
        .json(json!({"whatsapp_sandbox_session": {"phone_number": DEV_PHONE, "agent_id": ""}}))
        .expect(200)
        .await["data"]
        .clone();
    assert_eq!(refreshed["agent"], public);

    // PATCH: each field alone; `null` clears.
    let patch = |body: Value| {
        app.patch(&format!("/api/v1/agents/{agent_id}"))
            .api_key(&app.pat)
            .json(body)
    };
    let renamed = patch(json!({"agent": {"name": "Sales"}})).expect(200).await["data"].clone();
    assert_eq!(renamed["name"], "Sales");
    assert_eq!(renamed["description"], agent["description"]);
    assert_eq!(renamed["webhook_url"], url.as_str());
    assert!(renamed.get("webhook_secret").is_none(), "{renamed}");
    assert!(
        millis(renamed["updated_at"].as_str().unwrap())
            >= millis(agent["updated_at"].as_str().unwrap())
    );
    let cleared = patch(json!({"agent": {"description": null}}))
        .expect(200)
        .await["data"]
        .clone();
    assert!(cleared["description"].is_null());
    assert_eq!(cleared["name"], "Sales");
    let described = patch(json!({"agent": {"description": "Sells things"}}))
        .expect(200)
        .await["data"]
        .clone();
    assert_eq!(described["description"], "Sells things");
    let moved = patch(json!({"agent": {"webhook_url": receiver.url("/moved")}}))
        .expect(200)
        .await["data"]
        .clone();
    assert_eq!(moved["webhook_url"], receiver.url("/moved").as_str());
    assert!(
        moved.get("webhook_secret").is_none(),
        "the endpoint and its secret are kept: {moved}"
    );
    let removed = patch(json!({"agent": {"webhook_url": null}}))
        .expect(200)
        .await["data"]
        .clone();
    assert!(removed["webhook_url"].is_null());
    let readded = patch(json!({"agent": {"webhook_url": url}}))
        .expect(200)
        .await["data"]
        .clone();
    assert_eq!(readded["webhook_url"], url.as_str());
    assert!(
        readded["webhook_secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_"),
        "a new endpoint: {readded}"
    );
    assert_ne!(readded["webhook_secret"], agent["webhook_secret"]);
    let got = app
        .get(&format!("/api/v1/agents/{agent_id}"))
        .api_key(&app.pat)
        .expect(200)
        .await["data"]
        .clone();
    assert_eq!(got["name"], "Sales");
    assert_eq!(got["description"], "Sells things");
    assert_eq!(got["webhook_url"], url.as_str());
    assert_eq!(
        app.get(&format!("/api/v1/sandbox_sessions/{session_id}"))
            .api_key(&app.pat)
            .expect(200)
            .await["data"]["agent"],
        got
    );

    // Validation.
    let create = |body: Value| app.post("/api/v1/agents").api_key(&app.pat).json(body);
    invalid_field(&create(json!({})).expect(422).await, "agent");
    invalid_field(
        &create(json!({"agent": {"description": "no name"}}))
            .expect(422)
            .await,
        "name",
    );
    invalid_field(
        &create(json!({"agent": {"name": "   "}})).expect(422).await,
        "name",
    );
    invalid_field(
        &create(json!({"agent": {"name": "x".repeat(201)}}))
            .expect(422)
            .await,
        "name",
    );
    invalid_field(
        &create(json!({"agent": {"name": "x", "description": "d".repeat(2001)}}))
            .expect(422)
            .await,
        "description",
    );
    for bad in [
        "not a url",
        "ftp://example.com/hook",
        "https://",
        "https://exa mple.com/",
    ] {
        invalid_field(
            &create(json!({"agent": {"name": "x", "webhook_url": bad}}))
                .expect(422)
                .await,
            "webhook_url",
        );
        invalid_field(
            &patch(json!({"agent": {"webhook_url": bad}}))
                .expect(422)
                .await,
            "webhook_url",
        );
    }
    let body = create(json!({"agent": {"name": "x", "colour": "red"}}))
        .expect(422)
        .await;
    assert!(body["error"].as_str().unwrap().contains("colour"), "{body}");
    let body = create(json!({"agent": {"name": "x"}, "extra": 1}))
        .expect(422)
        .await;
    assert!(body["error"].as_str().unwrap().contains("extra"), "{body}");
    invalid_field(
        &patch(json!({"agent": {"name": ""}})).expect(422).await,
        "name",
    );
    invalid_field(
        &patch(json!({"agent": {"name": null}})).expect(422).await,
        "name",
    );
    invalid_field(
        &create(json!({"agent": {"name": null}})).expect(422).await,
        "name",
    );
    // Refused edits changed nothing; refused creations stored nothing.
    assert_eq!(
        app.get(&format!("/api/v1/agents/{agent_id}"))
            .api_key(&app.pat)
            .expect(200)
            .await["data"],
        got
    );
    assert_eq!(
        app.get("/api/v1/agents")
            .api_key(&app.pat)
            .expect(200)
            .await["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        app.get("/v1/webhooks").expect(200).await["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Unknown and malformed ids.
    for bad in [UNKNOWN_AGENT, "agent-123abc", UNKNOWN_SESSION] {
        kapso_error(
            &app.get(&format!("/api/v1/agents/{bad}"))
                .api_key(&app.pat)
                .expect(404)
                .await,
        );
        kapso_error(
            &app.patch(&format!("/api/v1/agents/{bad}"))
                .api_key(&app.pat)
                .json(json!({"agent": {"name": "x"}}))
                .expect(404)
                .await,
        );
        kapso_error(
            &app.delete(&format!("/api/v1/agents/{bad}"))
                .api_key(&app.pat)
                .expect(404)
                .await,
        );
    }

    // Another account sees none of it, and cannot bind a phone to it.
    let other = other_account(&app).await;
    assert_eq!(
        app.get("/api/v1/agents").api_key(&other).expect(200).await["data"],
        json!([])
    );
    app.get(&format!("/api/v1/agents/{agent_id}"))
        .api_key(&other)
        .expect(404)
        .await;
    app.patch(&format!("/api/v1/agents/{agent_id}"))
        .api_key(&other)
        .json(json!({"agent": {"name": "mine"}}))
        .expect(404)
        .await;
    app.delete(&format!("/api/v1/agents/{agent_id}"))
        .api_key(&other)
        .expect(404)
        .await;
    let body = app
        .post("/api/v1/sandbox_sessions")
        .api_key(&other)
        .json(json!({"whatsapp_sandbox_session": {"phone_number": PHONE_3, "agent_id": agent_id}}))
        .expect(422)
        .await;
    invalid_field(&body, "agent_id");
    assert!(kapso_list(&app, &other).await.is_empty());
    assert_eq!(
        app.get(&format!("/api/v1/agents/{agent_id}"))
            .api_key(&app.pat)
            .expect(200)
            .await["data"]["name"],
        "Sales"
    );

    // DELETE: gone, and the phone stays, unbound.
    let deleted = app
        .delete(&format!("/api/v1/agents/{agent_id}"))
        .api_key(&app.pat)
        .send()
        .await;
    assert_eq!(deleted.status.as_u16(), 204);
    assert!(deleted.text.is_empty());
    app.get(&format!("/api/v1/agents/{agent_id}"))
        .api_key(&app.pat)
        .expect(404)
        .await;
    app.delete(&format!("/api/v1/agents/{agent_id}"))
        .api_key(&app.pat)
        .expect(404)
        .await;
    let unbound = app
        .get(&format!("/api/v1/sandbox_sessions/{session_id}"))
        .api_key(&app.pat)
        .expect(200)
        .await["data"]
        .clone();
    assert!(unbound["agent"].is_null(), "{unbound}");
    assert_eq!(unbound["status"], "pending_activation");
    assert_eq!(
        app.get("/api/v1/agents")
            .api_key(&app.pat)
            .expect(200)
            .await["data"],
        json!([plain])
    );
    assert_eq!(
        app.get("/v1/webhooks").expect(200).await["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[wharf_testkit::dual_test]
async fn an_agent_receives_its_phones_traffic_signed(mut app: wharf_testkit::TestApp) {
    let (number, _) = emulator_number(&app).await;
    let mut receiver = TestReceiver::start().await;
    let agent = app
        .post("/api/v1/agents")
        .api_key(&app.pat)
        .json(json!({"agent": {"name": "Bot", "webhook_url": receiver.url("/bot")}}))
        .expect(201)
        .await["data"]
        .clone();
    let agent_id = agent["id"].as_str().unwrap().to_owned();
    let secret = agent["webhook_secret"].as_str().unwrap().to_owned();

    let bound = app
        .post("/api/v1/sandbox_sessions")
        .api_key(&app.pat)
        .json(
            json!({"whatsapp_sandbox_session": {"phone_number": DEV_PHONE, "agent_id": agent_id}}),
        )
        .expect(201)
        .await["data"]
        .clone();
    let bound_id = bound["id"].as_str().unwrap().to_owned();
    let unbound = kapso_create(&app, &app.pat, PHONE_2, 201).await;
    // A second agent, with its own endpoint and phone.
    let mut other_receiver = TestReceiver::start().await;
    let other_agent = app
        .post("/api/v1/agents")
        .api_key(&app.pat)
        .json(json!({"agent": {"name": "Other bot", "webhook_url": other_receiver.url("/other")}}))
        .expect(201)
        .await["data"]
        .clone();
    let other_agent_id = other_agent["id"].as_str().unwrap().to_owned();
    let other_secret = other_agent["webhook_secret"].as_str().unwrap().to_owned();
    assert_ne!(other_secret, secret);
    let other_bound = app.post("/api/v1/sandbox_sessions").api_key(&app.pat)
        .json(json!({"whatsapp_sandbox_session": {"phone_number": PHONE_3, "agent_id": other_agent_id}}))
        .expect(201).await["data"].clone();

    // The unbound phone and the other agent's phone activate and write first: none of it
    // reaches the agent.
    kapso_activate(&app, &app.pat, &number, &unbound).await;
    phone_writes(&app, &number, PHONE_2, "unbound says hi").await;
    kapso_activate(&app, &app.pat, &number, &other_bound).await;
    phone_writes(&app, &number, PHONE_3, "third says hi").await;
    wait_n_events(&app, &app.pat, "message.received", 4).await;
    let theirs = receive_until(&mut other_receiver, |got| {
        count_of(got, "sandbox.activated") == 1 && count_of(got, "message.received") == 2
    })
    .await;
    assert_eq!(theirs.len(), 3, "{theirs:?}");
    for r in &theirs {
        assert!(
            r.signature_valid(&other_secret) && !r.signature_valid(&secret),
            "{}",
            r.body
        );
        let about = r.json["data"].get("sandbox").unwrap_or(&r.json["data"]);
        assert_eq!(about["agent_id"], other_agent_id.as_str(), "{}", r.body);
    }

    // The bound phone activates and writes.
    kapso_activate(&app, &app.pat, &number, &bound).await;
    phone_writes(&app, &number, DEV_PHONE, "bound says hi").await;

    // The activation and both messages arrive (in any order), signed, about the bound
    // phone only.
    let got = receive_until(&mut receiver, |got| {
        count_of(got, "sandbox.activated") == 1 && count_of(got, "message.received") == 2
    })
    .await;
    assert_eq!(got.len(), 3, "only its subscriptions: {got:?}");
    let mut texts = Vec::new();
    for r in &got {
        assert!(
            r.signature_valid(&secret),
            "signed with the agent's secret: {}",
            r.body
        );
        assert!(!r.signature_valid("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
        assert!(
            r.header("webhook-id").starts_with("evt_"),
            "{:?}",
            r.headers
        );
        let data = &r.json["data"];
        if r.json["type"] == "sandbox.activated" {
            assert_eq!(data["sandbox_session_id"], bound_id.as_str());
            assert_eq!(data["agent_id"], agent_id.as_str());
            assert_eq!(data["phone_number"], DEV_PHONE);
        } else {
            assert_eq!(data["sender_jid"], chat_of(DEV_PHONE), "{}", r.body);
            assert_eq!(data["sandbox"]["agent_id"], agent_id.as_str());
            assert_eq!(data["sandbox"]["sandbox_session_id"], bound_id.as_str());
            texts.push(data["content"]["text"].as_str().unwrap().to_owned());
        }
    }
    texts.sort_by_key(|t| t != "bound says hi");
    assert_eq!(texts[0], "bound says hi");
    assert!(
        texts[1].contains(&bound["activation_code"].as_str().unwrap().to_lowercase()),
        "the code message: {texts:?}"
    );

    // More from the unbound phone: still nothing for the agent.
    phone_writes(&app, &number, PHONE_2, "unbound again").await;
    wait_n_events(&app, &app.pat, "message.received", 7).await;
    assert!(
        receiver.quiet_for(Duration::from_millis(500)).await,
        "nothing about the unbound phone"
    );

    // A moved endpoint keeps its secret.
    let mut moved = TestReceiver::start().await;
    app.patch(&format!("/api/v1/agents/{agent_id}"))
        .api_key(&app.pat)
        .json(json!({"agent": {"webhook_url": moved.url("/moved")}}))
        .expect(200)
        .await;
    phone_writes(&app, &number, DEV_PHONE, "to the new address").await;
    let got = moved.next_of("message.received").await;
    assert!(got.signature_valid(&secret));
    assert_eq!(got.json["data"]["content"]["text"], "to the new address");
    assert!(
        receiver.quiet_for(Duration::from_millis(300)).await,
        "the old address gets nothing"
    );

    // Without an endpoint, the agent gets nothing; the account still records the message.
    app.patch(&format!("/api/v1/agents/{agent_id}"))
        .api_key(&app.pat)
        .json(json!({"agent": {"webhook_url": null}}))
        .expect(200)
        .await;
    phone_writes(&app, &number, DEV_PHONE, "nobody listening").await;
    let all = wait_n_events(&app, &app.pat, "message.received", 9).await;
    assert_eq!(all[8]["data"]["content"]["text"], "nobody listening");
    assert_eq!(all[8]["data"]["sandbox"]["agent_id"], agent_id.as_str());
    assert!(moved.quiet_for(Duration::from_millis(500)).await);
    // The other agent heard nothing of all that.
    assert!(other_receiver.quiet_for(Duration::from_millis(100)).await);
}
