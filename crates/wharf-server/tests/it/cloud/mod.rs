//! The Cloud API engine end to end: the real server against the fake Graph server, on SQLite
//! and PostgreSQL. Every test also checks that the fake judged nothing Wharf sent malformed.

use std::time::Duration;

use serde_json::{Value, json};
use wharf_server::http::wapio::messages::SendAnswerView;
use wharf_testkit::{
    CloudNumber, TestApp,
    fakegraph::{FakeGraph, FakeNumber, RecordedSend},
};

pub const PNID: &str = "106540352242922";
pub const WABA: &str = "102290129340398";
pub const DISPLAY: &str = "15550783881";
/// A customer.
pub const USER: &str = "16505551234";
pub const USER_JID: &str = "16505551234@s.whatsapp.net";

mod errors;
mod limits;
mod sending;
mod sessions;
mod webhooks;

/// The test number.
pub fn number() -> FakeNumber {
    FakeNumber::new(PNID, WABA, DISPLAY)
}

/// A fake Graph server and a connected cloud session on it.
pub async fn connected(app: &TestApp) -> (FakeGraph, CloudNumber) {
    connected_with(app, number(), json!({})).await
}

/// As [`connected`], with a number and extra `cloud` fields of the test's choosing.
pub async fn connected_with(
    app: &TestApp,
    number: FakeNumber,
    extra: Value,
) -> (FakeGraph, CloudNumber) {
    let graph = app.graph().clone();
    let cloud = app.cloud_session(&graph, number, extra).await;
    (graph, cloud)
}

/// `from` writes `text` to the number (opening the customer-service window); returns the
/// inbound wamid.
pub async fn user_writes(graph: &FakeGraph, pnid: &str, from: &str, text: &str) -> String {
    let (wamid, status) = graph
        .emit_inbound(
            pnid,
            from,
            "Sheena",
            json!({"type": "text", "text": {"body": text}}),
        )
        .await;
    assert_eq!(status.as_u16(), 200, "the webhook was accepted");
    wamid
}

/// Sends `body` (session and recipient filled in when absent); returns the `msg_…` id.
pub async fn send(app: &TestApp, session: &str, mut body: Value) -> String {
    body["session_id"] = json!(session);
    if body.get("to").is_none() {
        body["to"] = json!(format!("+{USER}"));
    }
    let answer: SendAnswerView = app
        .post("/api/send-message")
        .json(body)
        .expect_view(202)
        .await;
    assert_eq!(answer.status, "queued");
    answer.message_id
}

/// Waits until the fake accepted `n` sends; returns them.
pub async fn wait_sends(graph: &FakeGraph, n: usize) -> Vec<RecordedSend> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let sends = graph.sends();
        if sends.len() >= n {
            return sends;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} sends reached the fake",
            sends.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Creates an approved template on the fake (as the business would have, through Meta).
pub async fn approved_template(graph: &FakeGraph, number: &FakeNumber, name: &str, body: &str) {
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/v23.0/{}/message_templates",
            graph.base_url(),
            number.waba_id
        ))
        .bearer_auth(&number.access_token)
        .json(
            &json!({"name": name, "language": "en_US", "category": "UTILITY",
                      "components": [{"type": "BODY", "text": body}]}),
        )
        .send()
        .await
        .expect("the fake answers");
    assert!(
        resp.status().is_success(),
        "{}",
        resp.text().await.unwrap_or_default()
    );
    graph.set_template_status(&number.waba_id, name, "APPROVED");
}

/// The account's events of `kind`, oldest first.
pub async fn events(app: &TestApp, kind: &str) -> Vec<Value> {
    crate::sandbox::events_of(app, &app.pat, kind).await
}
