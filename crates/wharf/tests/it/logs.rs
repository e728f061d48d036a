//! `wharf serve --log-format json`: every line on stderr is one JSON object, and the lines
//! about a request or a message carry its ids as top-level fields.

use std::time::Duration;

use serde_json::{Value, json};
use wharf_testkit::{Backend, TestDb};

use super::{start_serve, terminate, token_of};

/// The log's lines as JSON; panics on a line that is not.
fn lines(log: &std::sync::Mutex<Vec<String>>) -> Vec<Value> {
    log.lock()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[wharf_testkit::dual_test]
async fn json_logs_carry_request_account_session_and_message_ids(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let served = start_serve(&db, &["--log-format", "json"], &[], true);
    let pat = token_of(&served.banner);
    let api = format!("http://{}", served.addr);
    wharf_server::install_crypto();
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value, request_id: &str| {
        client
            .post(format!("{api}{path}"))
            .bearer_auth(&pat)
            .header("x-request-id", request_id)
            .json(&body)
            .send()
    };
    let created: Value = post(
        "/v1/whatsapp-sessions",
        json!({"label": "logs"}),
        "it-create",
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let session = created["session"]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let connected = post(
        &format!("/v1/whatsapp-sessions/{session}/connect"),
        json!({}),
        "it-connect",
    )
    .await
    .unwrap();
    assert!(connected.status().is_success(), "{}", connected.status());
    let scanned = post(
        &format!("/emulator/sessions/{session}/scan"),
        json!({}),
        "it-scan",
    )
    .await
    .unwrap();
    assert_eq!(scanned.status(), 200);
    // The next send fails for good: the dispatcher logs it with its ids.
    let failures = post(
        &format!("/emulator/sessions/{session}/failures"),
        json!({"mode": "permanent", "count": 1}),
        "it-failures",
    )
    .await
    .unwrap();
    assert_eq!(failures.status(), 204);
    let sent = post(
        "/api/send-message",
        json!({"session_id": session, "to": "+15550102030", "text": "hi"}),
        "it-send-1",
    )
    .await
    .unwrap();
    assert_eq!(sent.status(), 202);
    assert_eq!(sent.headers()["x-request-id"], "it-send-1", "echoed");
    let sent: Value = sent.json().await.unwrap();
    let message = sent["message_id"].as_str().unwrap().to_owned();
    // A request without an id gets a generated one, echoed too.
    let listed = client
        .get(format!("{api}/v1/whatsapp-sessions"))
        .bearer_auth(&pat)
        .send()
        .await
        .unwrap();
    let generated = listed.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(generated.starts_with("req_"), "{generated}");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let failed = loop {
        let found = lines(&served.log)
            .into_iter()
            .find(|l| l["level"] == "WARN" && l["message_id"] == message.as_str());
        if let Some(line) = found {
            break line;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no WARN line about the failed message: {:#?}",
            served.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(failed["session_id"], session.as_str(), "{failed}");
    assert!(
        failed["account_id"].as_str().unwrap().starts_with("acc_"),
        "{failed}"
    );
    assert_eq!(failed["action"], "send", "{failed}");
    assert!(failed["reason"].is_string(), "{failed}");
    assert!(failed["timestamp"].is_string() && failed["target"].is_string());

    terminate(&served.child);
    let mut child = served.child;
    assert!(child.wait().unwrap().success());
    let all = lines(&served.log);
    // The send's closing line: its request id, the account, the session and the message.
    let answered = all
        .iter()
        .find(|l| l["request_id"] == "it-send-1" && l["status"].is_number())
        .unwrap_or_else(|| panic!("no line for the send request: {all:#?}"));
    assert_eq!(answered["status"], 202, "{answered}");
    assert_eq!(answered["level"], "INFO");
    assert!(
        answered["account_id"].as_str().unwrap().starts_with("acc_"),
        "{answered}"
    );
    assert_eq!(answered["session_id"], session.as_str(), "{answered}");
    assert_eq!(answered["message_id"], message.as_str(), "{answered}");
    assert_eq!(answered["method"], "POST");
    assert_eq!(answered["path"], "/api/send-message");
    // Creating a session, and a session's route, record the session; a generated id is
    // logged as it was echoed.
    let connect = all
        .iter()
        .find(|l| l["request_id"] == "it-connect" && l["status"].is_number())
        .expect("the connect request's line");
    assert_eq!(connect["session_id"], session.as_str(), "{connect}");
    let create = all
        .iter()
        .find(|l| l["request_id"] == "it-create" && l["status"].is_number())
        .expect("the create request's line");
    assert_eq!(create["session_id"], session.as_str(), "{create}");
    assert!(
        all.iter()
            .any(|l| l["request_id"] == generated.as_str() && l["account_id"].is_string()),
        "the generated request id is logged"
    );
}
