//! Contact groups: derived from the contacts, renamed and deleted across them at once.

use serde_json::json;
use wharf_server::http::business::contact_groups::{GroupChanged, GroupList};

use super::*;

async fn groups(app: &TestApp, account: &str) -> GroupList {
    app.get(&format!("/v1/whatsapp/groups?accountId={account}"))
        .expect_view(200)
        .await
}

fn counts(list: &GroupList) -> Vec<(String, i64, i64)> {
    list.groups
        .iter()
        .map(|g| (g.name.clone(), g.total_count, g.opted_in_count))
        .collect()
}

#[wharf_testkit::dual_test]
async fn groups_are_counted_renamed_and_deleted_across_contacts(app: TestApp) {
    let account = account(&app).await;
    for (phone, groups, opted) in [
        ("+16505550001", vec!["customers", "leads"], true),
        ("+16505550002", vec!["customers"], false),
        ("+16505550003", vec!["leads"], true),
        ("+16505550004", vec![], true),
    ] {
        create(
            &app,
            &account,
            json!({"phone": phone, "name": phone, "groups": groups, "isOptedIn": opted}),
        )
        .await;
    }
    let list = groups(&app, &account).await;
    assert_eq!(
        counts(&list),
        vec![("customers".into(), 2, 1), ("leads".into(), 2, 2)]
    );
    assert_eq!(
        (
            list.summary.total_contacts,
            list.summary.opted_in_contacts,
            list.summary.group_count
        ),
        (4, 3, 2)
    );

    // Renaming onto an existing group merges the two (a contact in both is in it once).
    let renamed: GroupChanged = app
        .post("/api/v1/whatsapp/groups")
        .json(json!({"accountId": account, "oldName": "leads", "newName": "customers"}))
        .expect_view(200)
        .await;
    assert_eq!(
        (renamed.message.as_str(), renamed.modified),
        ("Group renamed successfully", 2)
    );
    assert_eq!(
        counts(&groups(&app, &account).await),
        vec![("customers".into(), 3, 2)]
    );
    let first = super::list(&app, &account, "").await;
    assert_eq!(first.contacts[0].groups, vec!["customers"]);
    assert_totals_hold(&app, &account).await;

    let renamed: GroupChanged = app
        .post("/v1/whatsapp/groups")
        .json(json!({"accountId": account, "oldName": "customers", "newName": "active"}))
        .expect_view(200)
        .await;
    assert_eq!(renamed.modified, 3);
    let unknown: GroupChanged = app
        .post("/v1/whatsapp/groups")
        .json(json!({"accountId": account, "oldName": "nobody", "newName": "x"}))
        .expect_view(200)
        .await;
    assert_eq!(unknown.modified, 0);

    let deleted: GroupChanged = app
        .delete("/v1/whatsapp/groups")
        .json(json!({"accountId": account, "groupName": "active"}))
        .expect_view(200)
        .await;
    assert_eq!(
        (deleted.message.as_str(), deleted.modified),
        ("Group deleted successfully", 3)
    );
    let after = groups(&app, &account).await;
    assert!(after.groups.is_empty());
    assert_eq!(after.summary.total_contacts, 4, "the contacts stay");
    assert!(
        super::list(&app, &account, "group=active")
            .await
            .contacts
            .is_empty()
    );
    assert_totals_hold(&app, &account).await;

    for (method, body, field) in [
        (
            reqwest::Method::POST,
            json!({"accountId": account, "oldName": "a", "newName": "a"}),
            "newName",
        ),
        (
            reqwest::Method::POST,
            json!({"accountId": account, "newName": "a"}),
            "oldName",
        ),
        (
            reqwest::Method::POST,
            json!({"oldName": "a", "newName": "b"}),
            "accountId",
        ),
        (
            reqwest::Method::DELETE,
            json!({"accountId": account}),
            "groupName",
        ),
    ] {
        let answer = app
            .call(method, "/v1/whatsapp/groups")
            .json(body)
            .expect(400)
            .await;
        zernio_error(&answer, "invalid_field_value", Some(field));
    }
    let missing = app.get("/v1/whatsapp/groups").expect(400).await;
    zernio_error(&missing, "invalid_field_value", Some("accountId"));
    let unknown = app
        .get("/v1/whatsapp/groups?accountId=sess_0000000000000000000000000")
        .expect(404)
        .await;
    assert_eq!(
        zernio_error(&unknown, "not_found", Some("accountId")),
        "WhatsApp account not found"
    );
}
