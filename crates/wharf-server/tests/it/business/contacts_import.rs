//! Contact imports written together: concurrent imports, and on SQLite the group commit that
//! writes the imports waiting for the writer in one transaction.

use std::collections::{BTreeMap, HashMap};

use serde_json::json;
use sqlx::Connection;
use wharf_core::ContactId;
use wharf_server::http::business::contacts::ImportAnswer;
use wharf_store::ContactRow;

use super::*;

/// Posts one import of `rows` per batch to the session `account`, all at once; their answers.
async fn import_at_once(
    app: &TestApp,
    account: &str,
    batches: Vec<Vec<serde_json::Value>>,
) -> Vec<ImportAnswer> {
    let calls = batches.into_iter().map(|rows| {
        let body = json!({"accountId": account, "contacts": rows});
        async move {
            app.post("/v1/whatsapp/contacts/import")
                .json(body)
                .expect_view::<ImportAnswer>(200)
                .await
        }
    });
    futures::future::join_all(calls).await
}

/// Concurrent imports touch the same counter rows (tags, groups, opt-in): they must all
/// succeed (on PostgreSQL, rows locked in different orders deadlocked and answered 500).
#[wharf_testkit::dual_test]
async fn concurrent_imports_all_succeed(app: TestApp) {
    let account = account(&app).await;
    let batches = (0..8)
        .map(|batch| {
            (0..100)
                .map(|i| {
                    let n = batch * 100 + i;
                    json!({"phone": format!("+1650556{n:04}"), "name": format!("C {n}"),
                           "tags": [format!("t{}", n % 7), format!("u{}", n % 5)],
                           "groups": [format!("g{}", n % 3)], "isOptedIn": n % 4 != 0})
                })
                .collect()
        })
        .collect();
    let answers = import_at_once(&app, &account, batches).await;
    assert_eq!(answers.iter().map(|a| a.summary.created).sum::<i64>(), 800);
    assert_eq!(list(&app, &account, "").await.pagination.total, 800);
}

/// Imports sharing phones, all at once: each phone is stored by exactly one of them and the
/// others say it already exists, as one import after another would.
#[wharf_testkit::dual_test]
async fn imports_at_once_store_each_phone_once(app: TestApp) {
    let account = account(&app).await;
    let app = &app;
    // Each shares half its phones with the next.
    let batches = (0..8)
        .map(|batch| {
            (batch * 10..batch * 10 + 20)
                .map(|n| {
                    json!({"phone": format!("+1650557{n:04}"), "name": format!("C {n} of {batch}"),
                           "tags": [format!("t{}", n % 3)], "groups": [format!("g{batch}")]})
                })
                .collect()
        })
        .collect();
    let answers = import_at_once(app, &account, batches).await;
    let mut stored_by: BTreeMap<String, usize> = BTreeMap::new();
    for answer in &answers {
        assert_eq!(answer.summary.total, 20);
        assert_eq!(answer.summary.created + answer.summary.skipped, 20);
        for r in &answer.results {
            if r.success {
                *stored_by.entry(r.phone.clone()).or_default() += 1;
            } else {
                assert!(
                    r.error.as_deref().unwrap().contains("already exists"),
                    "{r:?}"
                );
            }
        }
    }
    assert_eq!(stored_by.len(), 90, "every phone stored");
    assert!(stored_by.values().all(|n| *n == 1), "no phone stored twice");
    assert_eq!(list(app, &account, "").await.pagination.total, 90);
    assert_totals_hold(app, &account).await;
}

/// `n` contacts of the session with fresh ids, phones from `first`.
fn rows(app: &TestApp, session: &str, first: u32, n: u32) -> Vec<ContactRow> {
    (first..first + n)
        .map(|i| ContactRow {
            id: ContactId::generate(),
            account_id: app.account_id.parse().unwrap(),
            session_id: session.parse().unwrap(),
            phone: format!("+1650558{i:04}"),
            name: format!("Row {i}"),
            email: None,
            company: None,
            tags: vec![format!("t{}", i % 2)],
            groups: vec!["imported".into()],
            is_opted_in: true,
            opt_in_at: Some(1),
            opt_out_at: None,
            is_blocked: false,
            custom_fields: BTreeMap::new(),
            notes: None,
            last_sent_at: None,
            last_received_at: None,
            sent_count: 0,
            received_count: 0,
            created_at: 1,
            updated_at: 1,
        })
        .collect()
}

/// Imports that wait for the writer together go in one transaction; when it fails, each is
/// retried alone, so only the import at fault fails and nothing of it is left.
#[tokio::test]
async fn an_import_that_fails_in_a_group_fails_alone() {
    let app = TestApp::spawn(wharf_testkit::Backend::Sqlite)
        .await
        .unwrap();
    let session = account(&app).await;
    let existing = create(
        &app,
        &session,
        json!({"phone": "+16505590000", "name": "Existing"}),
    )
    .await;
    let groups = app.store.contact_import_groups();
    // Holds SQLite's write lock, so the first import waits for it alone and the three after
    // it queue for the next group.
    let mut lock = sqlx::SqliteConnection::connect(&app.config.database_url)
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut lock)
        .await
        .unwrap();
    let first = tokio::spawn({
        let store = app.store.clone();
        let rows = rows(&app, &session, 0, 10);
        async move { store.import_contacts(&rows).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut bad = rows(&app, &session, 100, 10);
    // A contact id already taken: the whole transaction it is in fails.
    bad[5].id = existing.id.parse().unwrap();
    let mut group = HashMap::new();
    for (name, rows) in [
        ("before", rows(&app, &session, 200, 10)),
        ("bad", bad),
        ("after", rows(&app, &session, 300, 10)),
    ] {
        let store = app.store.clone();
        group.insert(
            name,
            tokio::spawn(async move { store.import_contacts(&rows).await }),
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    assert_eq!(first.await.unwrap().unwrap(), vec![true; 10]);
    for name in ["before", "after"] {
        let stored = group.remove(name).unwrap().await.unwrap();
        assert_eq!(stored.unwrap(), vec![true; 10], "{name}");
    }
    let failed = group.remove("bad").unwrap().await.unwrap();
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(
        app.store.contact_import_groups(),
        groups + 1,
        "the three waiting imports went in one group"
    );
    let all = list(&app, &session, "limit=100").await;
    assert_eq!(all.pagination.total, 31);
    assert!(
        !all.contacts
            .iter()
            .any(|c| c.phone.starts_with("+1650558010"))
    );
    assert_eq!(
        list(&app, &session, "group=imported")
            .await
            .pagination
            .total,
        30
    );
    assert_totals_hold(&app, &session).await;
}
