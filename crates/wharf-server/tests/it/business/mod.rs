//! The Zernio Business API (contacts CRM, contact groups, business profile, phone numbers)
//! end to end, on SQLite and PostgreSQL.

use serde_json::{Value, json};
use wharf_server::http::business::contacts::{ContactAnswer, ContactList, ContactView};
use wharf_testkit::{TestApp, session_and_key};

mod contacts;
mod contacts_import;
mod contacts_paging;
mod groups;
mod numbers;
mod numbers_faults;
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

/// Every total the list and the groups answer from the counters equals the number of
/// contacts actually listed (at most 100 contacts), and every label row is one of a contact's
/// labels with the contact's sort name and opt-in (nothing is left behind by a delete or an
/// update: on PostgreSQL no foreign key cascades them).
pub async fn assert_totals_hold(app: &TestApp, account: &str) {
    let stray = app
        .db()
        .count(
            "SELECT COUNT(*) FROM contact_labels l WHERE NOT EXISTS (SELECT 1 FROM contacts c \
             CROSS JOIN contact_label_keys k WHERE c.seq = l.seq AND k.id = l.label_id \
             AND k.session_id = c.session_id AND c.sort_name = l.sort_name \
             AND c.is_opted_in = l.is_opted_in)",
        )
        .await;
    assert_eq!(
        stray, 0,
        "label rows of no contact, or out of step with theirs"
    );
    let all = list(app, account, "limit=100").await;
    let mut queries = vec![String::new()];
    for tag in &all.filters.tags {
        queries.push(format!("tag={tag}"));
    }
    for group in &all.filters.groups {
        queries.push(format!("group={group}"));
    }
    for q in queries {
        for opt in ["", "&optedIn=true", "&optedIn=false"] {
            let page = list(app, account, &format!("limit=100&{q}{opt}")).await;
            assert_eq!(
                page.pagination.total,
                page.contacts.len() as i64,
                "total of {q}{opt}"
            );
        }
    }
    let groups: wharf_server::http::business::contact_groups::GroupList = app
        .get(&format!("/v1/whatsapp/groups?accountId={account}"))
        .expect_view(200)
        .await;
    assert_eq!(groups.summary.total_contacts, all.contacts.len() as i64);
    let opted = all.contacts.iter().filter(|c| c.is_opted_in).count() as i64;
    assert_eq!(groups.summary.opted_in_contacts, opted);
    for g in &groups.groups {
        let members: Vec<_> = all
            .contacts
            .iter()
            .filter(|c| c.groups.contains(&g.name))
            .collect();
        assert_eq!(g.total_count, members.len() as i64, "group {}", g.name);
        assert_eq!(
            g.opted_in_count,
            members.iter().filter(|c| c.is_opted_in).count() as i64,
            "group {}",
            g.name
        );
    }
}
