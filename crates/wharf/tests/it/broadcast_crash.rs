//! A broadcast survives `kill -9` mid-send: the restarted server resumes it at its cursor
//! and it ends with exactly one message per recipient, none twice, none skipped.

use std::{collections::HashSet, time::Duration};

use serde_json::{Value, json};
use wharf_testkit::{Backend, TestDb};

use super::serve_with;

const RECIPIENTS: usize = 400;

struct Api {
    client: reqwest::Client,
    base: String,
    pat: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.pat);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let answer = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = answer.status();
        let text = answer.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }

    async fn broadcast(&self, id: &str) -> Value {
        self.call(
            reqwest::Method::GET,
            &format!("/v1/whatsapp/broadcasts/{id}"),
            None,
        )
        .await["broadcast"]
            .clone()
    }
}

#[wharf_testkit::dual_test]
async fn a_broadcast_resumes_after_kill_9_with_every_recipient_messaged_once(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let env = [
        ("WHARF_SEND_RATE_EMULATOR", "150"),
        ("WHARF_BROADCAST_BATCH_SIZE", "20"),
        ("WHARF_BROADCAST_SEND_WAIT_MS", "0"),
        ("WHARF_EMULATOR_DELIVERED_AFTER_MS", "-1"),
        ("WHARF_EMULATOR_READ_AFTER_MS", "-1"),
    ];
    let (mut child, addr, banner) = serve_with(&db, true, &env);
    let pat = banner
        .split_whitespace()
        .find(|w| w.starts_with("wh_pat_"))
        .unwrap_or_else(|| panic!("the first start prints a token: {banner}"))
        .to_owned();
    wharf_server::install_crypto();
    let mut api = Api {
        client: reqwest::Client::new(),
        base: format!("http://{addr}"),
        pat,
    };
    use reqwest::Method;
    let created = api
        .call(Method::POST, "/v1/whatsapp-sessions", Some(json!({})))
        .await;
    let session = created["session"]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.call(
        Method::POST,
        &format!("/v1/whatsapp-sessions/{session}/connect"),
        None,
    )
    .await;
    api.call(
        Method::POST,
        &format!("/emulator/sessions/{session}/scan"),
        None,
    )
    .await;
    api.call(
        Method::POST,
        "/v1/whatsapp/templates",
        Some(
            json!({"accountId": session, "name": "promo", "category": "MARKETING",
            "language": "en_US", "components": [{"type": "BODY", "text": "Hi {{1}}!"}]}),
        ),
    )
    .await;
    let recipients: Vec<Value> = (0..RECIPIENTS)
        .map(|i| json!({"phone": format!("+1650{i:07}"), "variables": {"1": format!("R{i}")}}))
        .collect();
    let draft = api
        .call(
            Method::POST,
            "/v1/whatsapp/broadcasts",
            Some(json!({"accountId": session, "name": "crash",
                "template": {"name": "promo", "language": "en_US"},
                "recipients": recipients})),
        )
        .await;
    let id = draft["broadcast"]["id"].as_str().unwrap().to_owned();
    api.call(
        Method::POST,
        &format!("/v1/whatsapp/broadcasts/{id}/send"),
        None,
    )
    .await;

    // SIGKILL part way.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let before = loop {
        let sent = api.broadcast(&id).await["sentCount"].as_i64().unwrap();
        if sent >= (RECIPIENTS / 4) as i64 {
            break sent;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {sent} sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        before < RECIPIENTS as i64,
        "the kill came after the end: {before}"
    );

    // The restart resumes it (the emulator session reconnects by itself).
    let (mut child, addr, _) = serve_with(&db, false, &env);
    api.base = format!("http://{addr}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let done = loop {
        let b = api.broadcast(&id).await;
        if b["status"] != "sending" {
            break b;
        }
        assert!(tokio::time::Instant::now() < deadline, "not done: {b}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["sentCount"], RECIPIENTS, "{done}");
    assert_eq!(done["pendingCount"], 0, "{done}");
    assert_eq!(done["failedCount"], 0, "{done}");

    // One message per recipient: as many rows as recipients, to as many chats.
    let mut chats = HashSet::new();
    let mut rows = 0;
    let mut before_id = String::new();
    loop {
        let page = api
            .call(
                Method::GET,
                &format!(
                    "/api/whatsapp-sessions/{session}/message-logs?direction=out&limit=100{before_id}"
                ),
                None,
            )
            .await;
        for m in page["data"].as_array().unwrap() {
            rows += 1;
            chats.insert(m["chat_jid"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => before_id = format!("&before_id={next}"),
            None => break,
        }
    }
    assert_eq!((rows, chats.len()), (RECIPIENTS, RECIPIENTS));
    child.kill().unwrap();
    child.wait().unwrap();
}
