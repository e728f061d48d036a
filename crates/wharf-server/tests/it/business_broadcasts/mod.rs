//! Zernio's broadcasts end to end on emulator sessions, on SQLite and PostgreSQL: every
//! operation and transition, sending as a durable job (schedules by the injected clock,
//! restarts mid-send, cancel), opt-out skipping, counters and tenant isolation.

use serde_json::{Value, json};
use wharf_server::http::business::broadcasts::{
    ZBroadcast, ZBroadcastAnswer, ZRecipientList, ZSendAnswer,
};
use wharf_testkit::TestApp;

mod lifecycle;
mod plans;
mod sending;
mod tallies;

pub const BROADCASTS: &str = "/v1/whatsapp/broadcasts";

/// A connected emulator session with an approved template `promo` ("Hi {{1}}!").
pub async fn setup(app: &TestApp) -> String {
    let (session, _) = app.connected_session().await;
    app.post("/v1/whatsapp/templates")
        .json(
            json!({"accountId": session, "name": "promo", "category": "MARKETING",
            "language": "en_US", "components": [{"type": "BODY", "text": "Hi {{1}}!"}]}),
        )
        .expect(200)
        .await;
    session
}

/// `n` recipients with their variable, phones from `first`.
pub fn recipients(first: usize, n: usize) -> Vec<Value> {
    (first..first + n)
        .map(|i| json!({"phone": format!("+1555020{i:04}"), "name": format!("R{i}"), "variables": {"1": format!("R{i}")}}))
        .collect()
}

/// Creates a draft of `session` with `recipients`; returns it.
pub async fn create(app: &TestApp, session: &str, recipients: Vec<Value>) -> ZBroadcast {
    let answer: ZBroadcastAnswer = app
        .post(BROADCASTS)
        .json(
            json!({"accountId": session, "name": "Weekly", "description": "News",
            "template": {"name": "promo", "language": "en_US"}, "recipients": recipients}),
        )
        .expect_view(200)
        .await;
    assert!(answer.success);
    answer.broadcast
}

/// The broadcast as it is.
pub async fn get(app: &TestApp, id: &str) -> ZBroadcast {
    let answer: ZBroadcastAnswer = app
        .get(&format!("{BROADCASTS}/{id}"))
        .expect_view(200)
        .await;
    answer.broadcast
}

/// Sends; expects 200.
pub async fn send(app: &TestApp, id: &str) -> ZSendAnswer {
    app.post(&format!("{BROADCASTS}/{id}/send"))
        .expect_view(200)
        .await
}

/// The recipients page with `query`.
pub async fn recipients_page(app: &TestApp, id: &str, query: &str) -> ZRecipientList {
    app.get(&format!("{BROADCASTS}/{id}/recipients?{query}"))
        .expect_view(200)
        .await
}

/// Polls the broadcast until `done` holds (at most 20 s).
pub async fn until(app: &TestApp, id: &str, done: impl Fn(&ZBroadcast) -> bool) -> ZBroadcast {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let b = get(app, id).await;
        if done(&b) {
            return b;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition never held: {b:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Asserts Zernio's error envelope with `code` and `param`; returns its `error`.
pub fn zernio_error(body: &Value, code: &str, param: &str) -> String {
    assert!(body["type"].is_string(), "not Zernio's envelope: {body}");
    assert_eq!(body["code"], code, "code of {body}");
    assert_eq!(body["param"], param, "param of {body}");
    body["error"].as_str().expect("error").to_owned()
}

/// The account's events of type `kind` about broadcast `id`.
pub async fn events(app: &TestApp, id: &str, kind: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = app
            .get(&format!("/v1/events?limit=100&after={after}"))
            .expect(200)
            .await;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        for e in &data {
            if e["type"] == kind && e["data"]["broadcast_id"] == id {
                out.push(e.clone());
            }
        }
        let next = page["next_cursor"].as_i64().expect("next_cursor");
        if data.is_empty() || next == after {
            return out;
        }
        after = next;
    }
}
