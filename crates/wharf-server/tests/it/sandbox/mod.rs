//! Sandbox sessions end to end, in both dialects (Zernio and Kapso), on the emulator and on a
//! Cloud API sandbox number played by the fake Graph server, on SQLite and PostgreSQL.

use serde_json::{Value, json};
use wharf_testkit::TestApp;

mod cloud;
mod kapso;
mod sending;
mod zernio;
mod zernio_access;
mod zernio_races;

/// A developer's phone.
pub const DEV_PHONE: &str = "+34688246216";
/// Its digits.
pub const DEV_DIGITS: &str = "34688246216";

/// Makes a connected emulator session of the test account the sandbox number; returns
/// `(session_id, its phone in E.164)`.
pub async fn emulator_number(app: &TestApp) -> (String, String) {
    let (id, _) = app.connected_session().await;
    let session = app
        .get(&format!("/v1/whatsapp-sessions/{id}"))
        .expect(200)
        .await;
    let phone = session["phone_number"]
        .as_str()
        .or_else(|| session["session"]["phone_number"].as_str())
        .expect("a connected session has a number")
        .to_owned();
    set_number(app, &id).await;
    (id, phone)
}

/// Makes `session` the sandbox number (as `wharf sandbox set-number` does).
pub async fn set_number(app: &TestApp, session: &str) {
    app.store
        .set_sandbox_number(
            Some(session.parse().expect("session id")),
            wharf_core::time::now_millis(),
        )
        .await
        .expect("set the sandbox number");
}

/// A second account; returns its personal access token.
pub async fn other_account(app: &TestApp) -> String {
    let (_, token) = app
        .store
        .create_account("other")
        .await
        .expect("create an account");
    token.raw
}

/// `from` writes `text` to the emulator session `session` (the phone's user replies).
pub async fn phone_writes(app: &TestApp, session: &str, from: &str, text: &str) {
    app.post(&format!("/emulator/sessions/{session}/inbound"))
        .json(json!({"from": from, "text": text}))
        .expect(202)
        .await;
}

/// The events of `kind` in the log of the account whose token is `token`, oldest first.
pub async fn events_of(app: &TestApp, token: &str, kind: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = app
            .get(&format!("/v1/events?after={after}&limit=100"))
            .token(token)
            .expect(200)
            .await;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        if data.is_empty() {
            return out;
        }
        after = page["next_cursor"].as_i64().unwrap_or_default();
        out.extend(data.into_iter().filter(|e| e["type"] == kind));
    }
}

/// Waits (at most 10 s) until the account of `token` has an event of `kind`; returns them.
pub async fn wait_events(app: &TestApp, token: &str, kind: &str) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let found = events_of(app, token, kind).await;
        if !found.is_empty() {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {kind} event arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}
