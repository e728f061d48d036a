//! Contacts: create, get, update, delete, list, import and bulk actions.

use serde_json::json;
use wharf_server::http::business::{
    MessageAnswer,
    contacts::{BulkAnswer, BulkDeleteAnswer, ContactAnswer, ImportAnswer},
};

use super::*;

#[wharf_testkit::dual_test]
async fn a_contact_is_created_read_updated_and_deleted(app: TestApp) {
    let account = account(&app).await;
    let created = create(
        &app,
        &account,
        json!({"phone": "+1 (650) 555-1234", "name": "John Doe", "email": "john@example.com",
               "company": "Acme", "tags": ["vip", "newsletter", "vip"], "groups": ["customers"],
               "customFields": {"plan": "pro", "remove_me": "x"}, "notes": "met at the fair"}),
    )
    .await;
    assert!(created.id.starts_with("ct_"));
    assert_eq!(created.phone, "+16505551234", "stored in E.164");
    assert_eq!(created.wa_id, "16505551234");
    assert_eq!(created.tags, vec!["vip", "newsletter"], "repeats dropped");
    assert!(created.is_opted_in, "opted in by default");
    assert!(created.opt_in_date.is_some() && created.opt_out_date.is_none());
    assert!(!created.is_blocked);

    // Under /api too (Zernio's base URL).
    let got: ContactAnswer = app
        .get(&format!("/api/v1/whatsapp/contacts/{}", created.id))
        .expect_view(200)
        .await;
    assert_eq!(got.contact.name, "John Doe");
    assert_eq!(got.contact.custom_fields.len(), 2);

    let updated: ContactAnswer = app
        .call(
            reqwest::Method::PUT,
            &format!("/v1/whatsapp/contacts/{}", created.id),
        )
        .json(
            json!({"name": "John Doe Updated", "tags": ["vip", "premium"],
                     "customFields": {"plan": "enterprise", "remove_me": null, "seat": "3"},
                     "isOptedIn": false, "isBlocked": true, "company": null}),
        )
        .expect_view(200)
        .await;
    let c = updated.contact;
    assert_eq!(c.name, "John Doe Updated");
    assert_eq!(c.tags, vec!["vip", "premium"], "tags are replaced");
    assert_eq!(c.groups, vec!["customers"], "untouched fields stay");
    assert_eq!(c.email.as_deref(), Some("john@example.com"));
    assert_eq!(c.company, None, "null clears");
    let fields: Vec<(&str, &str)> = c
        .custom_fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        fields,
        vec![("plan", "enterprise"), ("seat", "3")],
        "custom fields merge; null removes"
    );
    assert!(
        !c.is_opted_in && c.opt_out_date.is_some(),
        "opt-out is timestamped"
    );
    assert!(c.is_blocked);

    assert_totals_hold(&app, &account).await;
    let deleted: MessageAnswer = app
        .delete(&format!("/v1/whatsapp/contacts/{}", created.id))
        .expect_view(200)
        .await;
    assert_eq!(deleted.message, "Contact deleted successfully");
    let gone = app
        .get(&format!("/v1/whatsapp/contacts/{}", created.id))
        .expect(404)
        .await;
    zernio_error(&gone, "not_found", None);
    assert_eq!(list(&app, &account, "").await.pagination.total, 0);
    assert_totals_hold(&app, &account).await;
}

#[wharf_testkit::dual_test]
async fn invalid_input_names_the_field_and_writes_nothing(app: TestApp) {
    let account = account(&app).await;
    let cases = [
        (json!({"phone": "+16505551234", "name": "A"}), "accountId"),
        (json!({"accountId": account, "name": "A"}), "phone"),
        (
            json!({"accountId": account, "phone": "12ab", "name": "A"}),
            "phone",
        ),
        (
            json!({"accountId": account, "phone": "+16505551234"}),
            "name",
        ),
        (
            json!({"accountId": account, "phone": "+16505551234", "name": "  "}),
            "name",
        ),
        (
            json!({"accountId": account, "phone": "+16505551234", "name": "A", "email": "nope"}),
            "email",
        ),
        (
            json!({"accountId": account, "phone": "+16505551234", "name": "A", "tags": ["ok", ""]}),
            "tags[1]",
        ),
        (
            json!({"accountId": account, "phone": "+16505551234", "name": "A", "tags": "vip"}),
            "tags",
        ),
        (
            json!({"accountId": account, "phone": "+16505551234", "name": "A", "isOptedIn": "yes"}),
            "isOptedIn",
        ),
        (
            json!({"accountId": account, "phone": "+16505551234", "name": "A", "customFields": {"k": "v".repeat(1025)}}),
            "customFields.k",
        ),
    ];
    for (body, field) in cases {
        let answer = app
            .post("/v1/whatsapp/contacts")
            .json(body.clone())
            .expect(400)
            .await;
        zernio_error(&answer, "invalid_field_value", Some(field));
    }
    // An unknown or malformed accountId is 404, with Zernio's words.
    for id in ["sess_0000000000000000000000000", "nope"] {
        let answer = app
            .post("/v1/whatsapp/contacts")
            .json(json!({"accountId": id, "phone": "+16505551234", "name": "A"}))
            .expect(404)
            .await;
        assert_eq!(
            zernio_error(&answer, "not_found", Some("accountId")),
            "WhatsApp account not found"
        );
    }
    let bad_query = app
        .get(&format!(
            "/v1/whatsapp/contacts?accountId={account}&optedIn=maybe"
        ))
        .expect(400)
        .await;
    zernio_error(&bad_query, "invalid_field_value", Some("optedIn"));
    let bad_limit = app
        .get(&format!(
            "/v1/whatsapp/contacts?accountId={account}&limit=0"
        ))
        .expect(400)
        .await;
    zernio_error(&bad_limit, "invalid_field_value", Some("limit"));
    let missing = app.get("/v1/whatsapp/contacts").expect(400).await;
    zernio_error(&missing, "invalid_field_value", Some("accountId"));
    assert_eq!(list(&app, &account, "").await.pagination.total, 0);
}

#[wharf_testkit::dual_test]
async fn a_phone_is_unique_per_account(app: TestApp) {
    let account = account(&app).await;
    let other = super::account(&app).await;
    create(
        &app,
        &account,
        json!({"phone": "+16505551234", "name": "A"}),
    )
    .await;
    let answer = app
        .post("/v1/whatsapp/contacts")
        .json(json!({"accountId": account, "phone": "16505551234", "name": "B"}))
        .expect(409)
        .await;
    let error = zernio_error(&answer, "contact_exists", None);
    assert!(error.contains("already exists"), "{error}");
    // Another WhatsApp account of the same tenant has its own list.
    create(&app, &other, json!({"phone": "+16505551234", "name": "B"})).await;
    assert_eq!(names(&list(&app, &account, "").await), vec!["A"]);
}

#[wharf_testkit::dual_test]
async fn another_tenant_sees_nothing_and_changes_nothing(app: TestApp) {
    let account = account(&app).await;
    let contact = create(
        &app,
        &account,
        json!({"phone": "+16505551234", "name": "A"}),
    )
    .await;
    let (_, intruder) = app.store.create_account("intruder").await.unwrap();
    let theirs = app
        .get(&format!("/v1/whatsapp/contacts?accountId={account}"))
        .token(&intruder.raw)
        .expect(404)
        .await;
    let unknown = app
        .get("/v1/whatsapp/contacts?accountId=sess_0000000000000000000000000")
        .token(&intruder.raw)
        .expect(404)
        .await;
    assert_eq!(theirs, unknown, "a foreign id reads as an unknown one");
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let answer = app
            .call(method, &format!("/v1/whatsapp/contacts/{}", contact.id))
            .token(&intruder.raw)
            .json(json!({"name": "Mallory"}))
            .expect(404)
            .await;
        zernio_error(&answer, "not_found", None);
    }
    let bulk: BulkAnswer = app
        .post("/v1/whatsapp/contacts/bulk")
        .token(&intruder.raw)
        .json(json!({"action": "optOut", "contactIds": [contact.id]}))
        .expect_view(200)
        .await;
    assert_eq!((bulk.matched, bulk.modified), (0, 0));
    let deleted: BulkDeleteAnswer = app
        .delete("/v1/whatsapp/contacts/bulk")
        .token(&intruder.raw)
        .json(json!({"contactIds": [contact.id]}))
        .expect_view(200)
        .await;
    assert_eq!(deleted.deleted, 0);
    let rename = app
        .post("/v1/whatsapp/groups")
        .token(&intruder.raw)
        .json(json!({"accountId": account, "oldName": "a", "newName": "b"}))
        .expect(404)
        .await;
    zernio_error(&rename, "not_found", Some("accountId"));
    let mine = list(&app, &account, "").await;
    assert_eq!(names(&mine), vec!["A"]);
    assert!(mine.contacts[0].is_opted_in);
}

#[wharf_testkit::dual_test]
async fn the_list_searches_filters_sorts_and_pages(app: TestApp) {
    let account = account(&app).await;
    for (phone, name, email, company, tags, groups, opted) in [
        (
            "+16505550001",
            "charlie Brown",
            "cb@peanuts.com",
            "Peanuts",
            vec!["vip"],
            vec!["customers"],
            true,
        ),
        (
            "+16505550002",
            "Alice Smith",
            "alice@wonder.land",
            "Wonderland Inc",
            vec!["vip", "new"],
            vec!["customers", "leads"],
            true,
        ),
        (
            "+16505550003",
            "bob Jones",
            "bob@example.com",
            "Acme",
            vec!["new"],
            vec!["leads"],
            false,
        ),
        (
            "+447700900004",
            "Dana White",
            "dana@example.org",
            "Acme 50%",
            vec![],
            vec![],
            true,
        ),
        (
            "+16505550005",
            "Eve Black",
            "eve@evil.io",
            "Evil_Corp",
            vec!["vip"],
            vec![],
            false,
        ),
    ] {
        create(
            &app,
            &account,
            json!({"phone": phone, "name": name, "email": email, "company": company,
                   "tags": tags, "groups": groups, "isOptedIn": opted}),
        )
        .await;
    }
    let all = list(&app, &account, "").await;
    assert_eq!(
        names(&all),
        vec![
            "Alice Smith",
            "bob Jones",
            "charlie Brown",
            "Dana White",
            "Eve Black"
        ],
        "sorted by name, whatever the case"
    );
    assert_eq!(all.filters.tags, vec!["new", "vip"]);
    assert_eq!(all.filters.groups, vec!["customers", "leads"]);
    assert_eq!(all.pagination.total, 5);
    assert!(!all.pagination.has_more);

    let by = |q: &'static str| {
        let app = &app;
        let account = &account;
        async move { names(&list(app, account, q).await) }
    };
    assert_eq!(
        by("search=SMITH").await,
        vec!["Alice Smith"],
        "name, any case"
    );
    assert_eq!(by("search=4477009").await, vec!["Dana White"], "phone");
    assert_eq!(
        by("search=example.").await,
        vec!["bob Jones", "Dana White"],
        "email"
    );
    assert_eq!(
        by("search=acme").await,
        vec!["bob Jones", "Dana White"],
        "company"
    );
    assert_eq!(by("search=50%25").await, vec!["Dana White"], "% is literal");
    assert_eq!(by("search=e_b").await, Vec::<String>::new(), "_ is literal");
    assert_eq!(by("search=evil_").await, vec!["Eve Black"]);
    assert_eq!(
        by("tag=vip").await,
        vec!["Alice Smith", "charlie Brown", "Eve Black"]
    );
    assert_eq!(by("group=leads").await, vec!["Alice Smith", "bob Jones"]);
    assert_eq!(
        by("tag=vip&group=customers").await,
        vec!["Alice Smith", "charlie Brown"]
    );
    assert_eq!(by("optedIn=false").await, vec!["bob Jones", "Eve Black"]);
    assert_eq!(
        by("tag=vip&optedIn=true&search=PEA").await,
        vec!["charlie Brown"]
    );

    let page = list(&app, &account, "limit=2&skip=2").await;
    assert_eq!(names(&page), vec!["charlie Brown", "Dana White"]);
    assert_eq!(
        (
            page.pagination.total,
            page.pagination.limit,
            page.pagination.skip,
            page.pagination.has_more
        ),
        (5, 2, 2, true)
    );
    // Zernio's `limit` has no maximum: one above Wharf's page reads as the largest page.
    let large = list(&app, &account, "limit=500").await;
    assert_eq!((large.pagination.limit, names(&large).len()), (100, 5));
    let last = list(&app, &account, "tag=vip&limit=2&skip=2").await;
    assert_eq!(names(&last), vec!["Eve Black"]);
    assert_eq!(last.pagination.total, 3);
    assert!(!last.pagination.has_more);
    assert_totals_hold(&app, &account).await;
}

/// A search's pages come from the store's search cache: every kind of write (create,
/// update, delete, import, bulk action) must show in the next search, and
/// paging through a search must give each match once.
#[wharf_testkit::dual_test]
async fn a_search_follows_every_write_and_pages_through_each_match_once(app: TestApp) {
    let account = account(&app).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let c = create(
            &app,
            &account,
            json!({"phone": format!("+1650555010{i}"), "name": format!("Jones {i}"),
                   "groups": ["g"]}),
        )
        .await;
        ids.push(c.id);
    }
    create(
        &app,
        &account,
        json!({"phone": "+16505550200", "name": "Other"}),
    )
    .await;
    let by = |q: &'static str| {
        let app = &app;
        let account = &account;
        async move { list(app, account, q).await }
    };
    // Pages of one search: each match once, in order, the total on every page.
    let mut seen = Vec::new();
    for skip in [0, 3, 6] {
        let page = list(&app, &account, &format!("search=jones&limit=3&skip={skip}")).await;
        assert_eq!(page.pagination.total, 7);
        assert_eq!(page.pagination.has_more, skip < 6);
        seen.extend(names(&page));
    }
    assert_eq!(
        seen,
        (0..7).map(|i| format!("Jones {i}")).collect::<Vec<_>>()
    );
    let past = by("search=jones&skip=50").await;
    assert!(past.contacts.is_empty());
    assert_eq!(past.pagination.total, 7, "a page past the end still counts");

    // Update: the renamed contact leaves the search, the other one joins it.
    app.call(
        reqwest::Method::PUT,
        &format!("/v1/whatsapp/contacts/{}", ids[0]),
    )
    .json(json!({"name": "Smith 0"}))
    .expect(200)
    .await;
    let other = by("search=other").await.contacts[0].id.clone();
    app.call(
        reqwest::Method::PUT,
        &format!("/v1/whatsapp/contacts/{other}"),
    )
    .json(json!({"name": "Jones 9"}))
    .expect(200)
    .await;
    let after = by("search=jones").await;
    assert_eq!(after.pagination.total, 7);
    assert_eq!(names(&after)[0], "Jones 1");
    assert_eq!(names(&after).last().map(String::as_str), Some("Jones 9"));

    // Delete and create.
    app.delete(&format!("/v1/whatsapp/contacts/{}", ids[1]))
        .expect(200)
        .await;
    create(
        &app,
        &account,
        json!({"phone": "+16505550300", "name": "Jones 8"}),
    )
    .await;
    let after = by("search=jones").await;
    assert_eq!(after.pagination.total, 7);
    assert!(!names(&after).contains(&"Jones 1".to_owned()));
    assert!(names(&after).contains(&"Jones 8".to_owned()));

    // Import.
    app.post("/v1/whatsapp/contacts/import")
        .json(json!({"accountId": account, "contacts": [
            {"phone": "+16505550400", "name": "Jones 10"}]}))
        .expect(200)
        .await;
    assert_eq!(by("search=jones").await.pagination.total, 8);

    // A search with a filter, then bulk actions that change the filter.
    assert_eq!(by("search=jones&group=g").await.pagination.total, 5);
    app.post("/v1/whatsapp/contacts/bulk")
        .json(json!({"action": "removeGroups",
                     "contactIds": [ids[2].clone()], "groups": ["g"]}))
        .expect(200)
        .await;
    assert_eq!(by("search=jones&group=g").await.pagination.total, 4);
    assert_eq!(by("search=jones&optedIn=false").await.pagination.total, 0);
    app.post("/v1/whatsapp/contacts/bulk")
        .json(json!({"action": "optOut",
                     "contactIds": [ids[3].clone()]}))
        .expect(200)
        .await;
    assert_eq!(by("search=jones&optedIn=false").await.pagination.total, 1);
}

#[wharf_testkit::dual_test]
async fn an_import_reports_each_row(app: TestApp) {
    let account = account(&app).await;
    create(
        &app,
        &account,
        json!({"phone": "+16505550001", "name": "Existing"}),
    )
    .await;
    let body = json!({
        "accountId": account,
        "contacts": [
            {"phone": "+16505550002", "name": "New One", "tags": ["x"]},
            {"phone": "not a phone", "name": "Bad Phone"},
            {"phone": "+16505550001", "name": "Existing Again"},
            {"phone": "+1 650 555 0002", "name": "Repeat In Batch"},
            {"phone": "+16505550003", "name": ""},
            {"phone": "+16505550004", "name": "New Two", "email": "two@example.com"}
        ],
        "defaultTags": ["imported"],
        "defaultGroups": ["new-leads"]
    });
    let answer: ImportAnswer = app
        .post("/v1/whatsapp/contacts/import")
        .json(body.clone())
        .expect_view(200)
        .await;
    assert_eq!(
        (
            answer.summary.total,
            answer.summary.created,
            answer.summary.skipped,
            answer.summary.failed
        ),
        (6, 2, 2, 2)
    );
    let r = &answer.results;
    assert!(
        r[0].success
            && r[0]
                .contact_id
                .as_deref()
                .is_some_and(|i| i.starts_with("ct_"))
    );
    assert!(!r[1].success && r[1].error.as_deref().unwrap().contains("phone"));
    assert!(!r[2].success && r[2].error.as_deref().unwrap().contains("already exists"));
    assert!(!r[3].success && r[3].error.as_deref().unwrap().contains("already exists"));
    assert!(!r[4].success && r[4].error.as_deref().unwrap().contains("name"));
    assert!(r[5].success);
    let imported = list(&app, &account, "tag=imported").await;
    assert_eq!(names(&imported), vec!["New One", "New Two"]);
    assert_eq!(imported.contacts[0].tags, vec!["x", "imported"]);
    assert_eq!(imported.contacts[0].groups, vec!["new-leads"]);

    // Without skipDuplicates, a duplicate is a failure.
    let again: ImportAnswer = app
        .post("/v1/whatsapp/contacts/import")
        .json(json!({"accountId": account, "skipDuplicates": false,
                     "contacts": [{"phone": "+16505550004", "name": "Dup"}]}))
        .expect_view(200)
        .await;
    assert_eq!((again.summary.skipped, again.summary.failed), (0, 1));

    let too_many: Vec<_> = (0..1001)
        .map(|i| json!({"phone": format!("+1650556{i:04}"), "name": "X"}))
        .collect();
    let refused = app
        .post("/v1/whatsapp/contacts/import")
        .json(json!({"accountId": account, "contacts": too_many}))
        .expect(400)
        .await;
    zernio_error(&refused, "invalid_field_value", Some("contacts"));
    let refused = app
        .post("/v1/whatsapp/contacts/import")
        .json(json!({"accountId": account, "contacts": [], "defaultTags": [""]}))
        .expect(400)
        .await;
    zernio_error(&refused, "invalid_field_value", Some("contacts"));
    assert_eq!(list(&app, &account, "").await.pagination.total, 3);
    assert_totals_hold(&app, &account).await;
}

#[wharf_testkit::dual_test]
async fn bulk_actions_count_matched_and_modified(app: TestApp) {
    let account = account(&app).await;
    let a = create(
        &app,
        &account,
        json!({"phone": "+16505550001", "name": "A", "tags": ["vip"]}),
    )
    .await;
    let b = create(
        &app,
        &account,
        json!({"phone": "+16505550002", "name": "B"}),
    )
    .await;
    let bulk = |body: serde_json::Value| {
        let app = &app;
        async move {
            app.post("/v1/whatsapp/contacts/bulk")
                .json(body)
                .expect_view::<BulkAnswer>(200)
                .await
        }
    };
    let ids = json!([a.id, b.id, "ct_0000000000000000000000000", "junk"]);
    let r = bulk(json!({"action": "addTags", "contactIds": ids, "tags": ["vip", "x"]})).await;
    assert_eq!(
        (r.action.as_str(), r.matched, r.modified),
        ("addTags", 2, 2)
    );
    let r = bulk(json!({"action": "removeTags", "contactIds": ids, "tags": ["x"]})).await;
    assert_eq!((r.matched, r.modified), (2, 2));
    let r = bulk(json!({"action": "addGroups", "contactIds": [a.id], "groups": ["g"]})).await;
    assert_eq!((r.matched, r.modified), (1, 1));
    let r = bulk(json!({"action": "removeGroups", "contactIds": [b.id], "groups": ["g"]})).await;
    assert_eq!((r.matched, r.modified), (1, 0), "nothing to remove");
    let r = bulk(json!({"action": "optOut", "contactIds": ids})).await;
    assert_eq!((r.matched, r.modified), (2, 2));
    let r = bulk(json!({"action": "optOut", "contactIds": ids})).await;
    assert_eq!((r.matched, r.modified), (2, 0), "already out");
    let r = bulk(json!({"action": "optIn", "contactIds": [a.id]})).await;
    assert_eq!(r.modified, 1);
    let r = bulk(json!({"action": "block", "contactIds": [b.id]})).await;
    assert_eq!(r.modified, 1);
    let r = bulk(json!({"action": "unblock", "contactIds": [a.id, b.id]})).await;
    assert_eq!((r.matched, r.modified), (2, 1));

    let now = list(&app, &account, "").await;
    assert_eq!(now.contacts[0].tags, vec!["vip"]);
    assert_eq!(now.contacts[0].groups, vec!["g"]);
    assert!(now.contacts[0].is_opted_in);
    assert!(!now.contacts[1].is_opted_in && now.contacts[1].opt_out_date.is_some());
    assert!(!now.contacts[1].is_blocked);

    // The bulk and broadcast paths ask which phones opted out.
    let out = app
        .store
        .opted_out_phones(
            app.account_id.parse().unwrap(),
            account.parse().unwrap(),
            &[
                "+16505550001".into(),
                "+16505550002".into(),
                "+16505550009".into(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        out.into_iter().collect::<Vec<_>>(),
        vec!["+16505550002".to_owned()]
    );

    for (body, field) in [
        (json!({"contactIds": [a.id]}), "action"),
        (json!({"action": "promote", "contactIds": [a.id]}), "action"),
        (json!({"action": "addTags", "contactIds": [a.id]}), "tags"),
        (
            json!({"action": "removeGroups", "contactIds": [a.id], "groups": []}),
            "groups",
        ),
        (json!({"action": "optIn"}), "contactIds"),
        (
            json!({"action": "optIn", "contactIds": vec!["x"; 501]}),
            "contactIds",
        ),
    ] {
        let answer = app
            .post("/v1/whatsapp/contacts/bulk")
            .json(body)
            .expect(400)
            .await;
        zernio_error(&answer, "invalid_field_value", Some(field));
    }
    let refused = app
        .delete("/v1/whatsapp/contacts/bulk")
        .json(json!({}))
        .expect(400)
        .await;
    zernio_error(&refused, "invalid_field_value", Some("contactIds"));
    let deleted: BulkDeleteAnswer = app
        .delete("/api/v1/whatsapp/contacts/bulk")
        .json(json!({"contactIds": [a.id, "ct_0000000000000000000000000"]}))
        .expect_view(200)
        .await;
    assert_eq!(deleted.deleted, 1);
    assert_eq!(names(&list(&app, &account, "").await), vec!["B"]);
    assert_totals_hold(&app, &account).await;
}

#[wharf_testkit::dual_test]
async fn an_inbound_message_creates_or_updates_the_senders_contact(app: TestApp) {
    let (session, _) = app.connected_session().await;
    let known = create(
        &app,
        &session,
        json!({"phone": "+16505550001", "name": "Known", "tags": ["vip"]}),
    )
    .await;
    for (from, text) in [
        ("+16505550001", "hi"),
        ("+16505550002", "hello"),
        ("+16505550001", "again"),
    ] {
        app.post(&format!("/emulator/sessions/{session}/inbound"))
            .json(json!({"from": from, "text": text}))
            .expect(202)
            .await;
    }
    // Inbound messages are stored as the emulator delivers them; wait for the third.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let contacts = loop {
        let contacts = list(&app, &session, "").await;
        let received: i64 = contacts
            .contacts
            .iter()
            .map(|c| c.messages_received_count)
            .sum();
        if received == 3 || tokio::time::Instant::now() > deadline {
            break contacts;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(names(&contacts), vec!["+16505550002", "Known"]);
    let new = &contacts.contacts[0];
    assert_eq!(new.messages_received_count, 1);
    assert!(new.is_opted_in && new.last_message_received_at.is_some());
    let known_now = &contacts.contacts[1];
    assert_eq!(known_now.id, known.id, "the same contact, not a second one");
    assert_eq!(known_now.messages_received_count, 2);
    assert_eq!(known_now.tags, vec!["vip"]);
    assert_totals_hold(&app, &session).await;
}

#[wharf_testkit::dual_test]
async fn a_contacts_sent_count_and_time_follow_the_messages_sent_to_it(app: TestApp) {
    let (session, _) = app.connected_session().await;
    let reached = create(
        &app,
        &session,
        json!({"phone": "+16505550011", "name": "Reached"}),
    )
    .await;
    create(
        &app,
        &session,
        json!({"phone": "+16505550012", "name": "Quiet"}),
    )
    .await;
    assert_eq!(reached.messages_sent_count, 0);
    assert!(reached.last_message_sent_at.is_none());
    let first = app.send_text(&session, "+16505550011", "one").await;
    let second = app.send_text(&session, "+1 650 555 0011", "two").await;
    // A number without a contact gets none.
    let stranger = app.send_text(&session, "+16505550013", "hello").await;
    for id in [&first, &second, &stranger] {
        app.wait_status(id, "sent").await;
    }
    // A send that fails for good is not counted.
    app.post(&format!("/emulator/sessions/{session}/failures"))
        .json(json!({"mode": "permanent", "count": 1}))
        .expect(204)
        .await;
    let failed = app.send_text(&session, "+16505550011", "three").await;
    app.wait_status(&failed, "failed").await;
    let contacts = list(&app, &session, "").await;
    assert_eq!(names(&contacts), vec!["Quiet", "Reached"]);
    let quiet = &contacts.contacts[0];
    assert_eq!(quiet.messages_sent_count, 0);
    assert!(quiet.last_message_sent_at.is_none());
    let now = &contacts.contacts[1];
    assert_eq!(now.messages_sent_count, 2, "{now:?}");
    let account = app.account_id.parse().unwrap();
    let mut latest = 0;
    for id in [&first, &second] {
        let row = app
            .store
            .get_message(account, id.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        latest = latest.max(row.sent_at.expect("sent"));
    }
    assert_eq!(
        now.last_message_sent_at.as_deref(),
        Some(wharf_core::time::rfc3339(latest).as_str())
    );
    // Counting leaves everything else of the contact as it was.
    assert_eq!(now.messages_received_count, 0);
    assert_eq!(now.name, "Reached");
    assert_totals_hold(&app, &session).await;
}
