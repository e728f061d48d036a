//! Zernio's WhatsApp Business API: message templates and bulk sends, on the emulator and
//! on the Cloud API engine (against the fake Graph server).

use serde_json::{Value, json};
use wharf_server::http::business::{
    bulk::ZBulkAnswer,
    templates::{ZTemplateCreated, ZTemplateList, ZTemplateOne},
};
use wharf_testkit::TestApp;

/// Asserts `body` is Zernio's error envelope with `code` and `param`; returns its `error`.
pub fn zernio_error(body: &Value, code: &str, param: &str) -> String {
    assert_eq!(body["code"], code, "code of {body}");
    assert_eq!(body["param"], param, "param of {body}");
    assert!(body["type"].is_string(), "type of {body}");
    assert!(
        body.get("reason_code").is_none(),
        "not Zernio's envelope: {body}"
    );
    body["error"]
        .as_str()
        .expect("error is a string")
        .to_owned()
}

mod bulk;
mod cloud;
mod templates;

pub const TEMPLATES: &str = "/v1/whatsapp/templates";
pub const BULK: &str = "/v1/whatsapp/bulk";

/// A body-only template with `body`.
pub fn simple(account: &str, name: &str, body: &str) -> Value {
    json!({"accountId": account, "name": name, "category": "UTILITY", "language": "en_US",
        "components": [{"type": "BODY", "text": body}]})
}

/// Creates a template (200); returns the answer.
pub async fn create(app: &TestApp, body: Value) -> ZTemplateCreated {
    app.post(TEMPLATES).json(body).expect_view(200).await
}

/// The account's templates.
pub async fn list(app: &TestApp, account: &str) -> ZTemplateList {
    app.get(&format!("{TEMPLATES}?accountId={account}"))
        .expect_view(200)
        .await
}

/// One template.
pub async fn get(app: &TestApp, account: &str, name: &str) -> ZTemplateOne {
    app.get(&format!("{TEMPLATES}/{name}?accountId={account}"))
        .expect_view(200)
        .await
}

/// A bulk send expecting 200.
pub async fn bulk(app: &TestApp, body: Value) -> ZBulkAnswer {
    app.post(BULK).json(body).expect_view(200).await
}

/// How many messages the session has sent.
pub async fn sent_count(app: &TestApp, session: &str) -> usize {
    app.get(&format!(
        "/api/whatsapp-sessions/{session}/message-logs?direction=out&limit=100"
    ))
    .expect(200)
    .await["data"]
        .as_array()
        .map(Vec::len)
        .unwrap_or_default()
}
