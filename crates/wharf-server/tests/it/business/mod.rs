//! The Zernio Business API (contacts CRM, contact groups, business profile) end to end, on
//! SQLite and PostgreSQL.

use serde_json::{Value, json};
use wharf_server::http::business::contacts::{ContactAnswer, ContactList, ContactView};
use wharf_testkit::{TestApp, session_and_key};

mod contacts;
mod groups;
mod profile;

/// An emulator session of the test account (a Zernio `accountId`).
pub async fn account(app: &TestApp) -> String {
    let created = app.create_session(json!({})).await;
    session_and_key(&created).0
}

/// Asserts `body` is Zernio's error envelope with `code` and `param` (absent when `None`);
/// returns its `error`.
pub fn zernio_error(body: &Value, code: &str, param: Option<&str>) -> String {
    assert!(body["type"].is_string(), "not Zernio's envelope: {body}");
    assert_eq!(body["code"], code, "code of {body}");
    match param {
        Some(p) => assert_eq!(body["param"], p, "param of {body}"),
        None => assert!(body.get("param").is_none(), "unexpected param in {body}"),
    }
    body["error"]
        .as_str()
        .expect("error is a string")
        .to_owned()
}

/// Creates a contact of `account` from `fields` (accountId added); returns it.
pub async fn create(app: &TestApp, account: &str, mut fields: Value) -> ContactView {
    fields["accountId"] = json!(account);
    let answer: ContactAnswer = app
        .post("/v1/whatsapp/contacts")
        .json(fields)
        .expect_view(200)
        .await;
    assert!(answer.success);
    answer.contact
}

/// The list with `query` (accountId added).
pub async fn list(app: &TestApp, account: &str, query: &str) -> ContactList {
    let sep = if query.is_empty() { "" } else { "&" };
    app.get(&format!(
        "/v1/whatsapp/contacts?accountId={account}{sep}{query}"
    ))
    .expect_view(200)
    .await
}

/// The names of a page, in order.
pub fn names(list: &ContactList) -> Vec<String> {
    list.contacts.iter().map(|c| c.name.clone()).collect()
}
