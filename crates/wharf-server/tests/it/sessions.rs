//! The Sessions API: create, read, list, update, settings, key rotation and deletion.
//!
//! Answers are read into the views the handlers serialize, so a schema drift fails here.

use serde_json::{Value, json};
use wharf_core::{EngineKind, OperationStatus, SessionStatus};
use wharf_server::http::wapio::views::{
    CreatedSessionView, OperationView, RotatedKeyView, SessionListView, SessionView, SettingsView,
};
use wharf_testkit::{TestApp, assert_error, read_view};

/// Creates a session (201), read as the creation's view.
async fn create(app: &TestApp, body: Value) -> CreatedSessionView {
    read_view("POST /v1/whatsapp-sessions", app.create_session(body).await)
}

async fn create_id(app: &TestApp, body: Value) -> String {
    create(app, body).await.session.session_id
}

async fn session(app: &TestApp, id: &str) -> SessionView {
    app.get(&format!("/v1/whatsapp-sessions/{id}"))
        .expect_view(200)
        .await
}

async fn page(app: &TestApp, query: &str) -> SessionListView {
    app.get(&format!("/v1/whatsapp-sessions{query}"))
        .expect_view(200)
        .await
}

fn ids(page: &SessionListView) -> Vec<&str> {
    page.data.iter().map(|s| s.session_id.as_str()).collect()
}

#[wharf_testkit::dual_test]
async fn create_returns_the_session_its_key_once_and_warnings(mut app: wharf_testkit::TestApp) {
    let created = create(
        &app,
        json!({
            "label": "  Support line ",
            "phone_number": "+1 (555) 123-4567",
            "settings": {"typing": true, "ignore_groups": true}
        }),
    )
    .await;
    let session = &created.session;
    assert!(session.session_id.starts_with("sess_"));
    assert_eq!(session.account_id, app.account_id);
    assert_eq!(session.status, SessionStatus::Disconnected);
    assert_eq!(session.label.as_deref(), Some("Support line"));
    assert_eq!(session.phone_number.as_deref(), Some("+15551234567"));
    assert_eq!(session.engine, EngineKind::Emulator);
    assert_eq!(session.worker_id, None);
    let key = &created.session_api_key;
    assert!(key.raw.starts_with("wh_sk_"));
    assert_eq!(
        Some(&key.fingerprint),
        session.session_api_key_fingerprint.as_ref()
    );
    assert_eq!(key.previous_fingerprint, None);
    assert!(created.warnings.iter().any(|w| w.contains("emulator")));

    // The raw key is never shown again.
    let path = format!("/v1/whatsapp-sessions/{}", session.session_id);
    let fetched = app.get(&path).expect(200).await;
    assert!(!fetched.to_string().contains(&key.raw));
    let fetched: SessionView = read_view(&path, fetched);
    assert_eq!(fetched.label.as_deref(), Some("Support line"));

    let path = format!("{path}/settings");
    let raw = app.get(&path).expect(200).await;
    assert_eq!(
        raw["session_settings"].as_object().unwrap().len(),
        8,
        "every setting is shown"
    );
    let settings: SettingsView = read_view(&path, raw);
    let settings = settings.session_settings;
    assert!(settings.typing);
    assert!(settings.ignore_groups);
    assert!(settings.account_protection, "defaults fill the rest");
}

#[wharf_testkit::dual_test]
async fn blank_fields_from_the_postman_example_mean_unset(mut app: wharf_testkit::TestApp) {
    let created = create(&app, json!({"label": "", "phone_number": ""})).await;
    assert_eq!(created.session.label, None);
    assert_eq!(created.session.phone_number, None);
    assert!(
        created
            .warnings
            .iter()
            .any(|w| w.contains("phone_number is not set")),
        "{:?}",
        created.warnings
    );
}

#[wharf_testkit::dual_test]
async fn list_pages_newest_first_with_a_cursor(mut app: wharf_testkit::TestApp) {
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(create_id(&app, json!({"label": format!("s{i}")})).await);
    }
    created.reverse();
    let page1 = page(&app, "?limit=2").await;
    assert_eq!(ids(&page1), created[..2]);
    let cursor = page1.next_cursor.clone().unwrap();
    assert_eq!(cursor, created[1]);
    let page2 = page(&app, &format!("?limit=2&before_id={cursor}")).await;
    assert_eq!(ids(&page2), created[2..4]);
    let page3 = page(
        &app,
        &format!("?limit=2&before_id={}", page2.next_cursor.unwrap()),
    )
    .await;
    assert_eq!(page3.data.len(), 1);
    assert_eq!(page3.next_cursor, None, "last page");

    // Exactly `limit` left: no phantom next page.
    let all = page(&app, "?limit=5").await;
    assert_eq!(all.data.len(), 5);
    assert_eq!(all.next_cursor, None);
    // Default limit and the Postman collection's empty before_id.
    let default = page(&app, "?before_id=").await;
    assert_eq!(default.data.len(), 5);
}

#[wharf_testkit::dual_test]
async fn list_filters_by_status_and_hides_deleted(mut app: wharf_testkit::TestApp) {
    let a = create_id(&app, json!({})).await;
    let b = create_id(&app, json!({})).await;
    app.post(&format!("/v1/whatsapp-sessions/{b}/connect"))
        .expect(200)
        .await;
    let connecting = page(&app, "?status=connecting").await;
    assert_eq!(ids(&connecting), vec![b.as_str()]);
    assert_eq!(connecting.data[0].status, SessionStatus::Connecting);

    app.delete(&format!("/v1/whatsapp-sessions/{a}"))
        .expect(202)
        .await;
    app.eventually(&format!("/v1/whatsapp-sessions/{a}"), |s| {
        s["status"] == "deleted"
    })
    .await;
    let visible = page(&app, "").await;
    assert_eq!(
        ids(&visible),
        vec![b.as_str()],
        "deleted sessions are hidden by default"
    );
    let deleted = page(&app, "?status=deleted").await;
    assert_eq!(deleted.data[0].session_id, a);
    assert_eq!(deleted.data[0].status, SessionStatus::Deleted);
}

#[wharf_testkit::dual_test]
async fn patch_updates_label_phone_and_settings(mut app: wharf_testkit::TestApp) {
    let id = create_id(&app, json!({"label": "old"})).await;
    let path = format!("/v1/whatsapp-sessions/{id}");
    let updated: SessionView = app
        .patch(&path)
        .json(json!({"label": "new", "phone_number": "0044 20 7946 0958", "settings": {"always_online": true}}))
        .expect_view(200)
        .await;
    assert_eq!(updated.label.as_deref(), Some("new"));
    assert_eq!(updated.phone_number.as_deref(), Some("+442079460958"));
    let settings: SettingsView = app.get(&format!("{path}/settings")).expect_view(200).await;
    assert!(settings.session_settings.always_online);

    // Absent fields stay; null clears.
    let kept: SessionView = app.patch(&path).json(json!({})).expect_view(200).await;
    assert_eq!(kept.label.as_deref(), Some("new"));
    let cleared: SessionView = app
        .patch(&path)
        .json(json!({"label": null, "phone_number": null}))
        .expect_view(200)
        .await;
    assert_eq!(cleared.label, None);
    assert_eq!(cleared.phone_number, None);
}

#[wharf_testkit::dual_test]
async fn phone_cannot_change_while_linked(mut app: wharf_testkit::TestApp) {
    let (id, _) = app.connected_session().await;
    let body = app
        .patch(&format!("/v1/whatsapp-sessions/{id}"))
        .json(json!({"phone_number": "+15550001111"}))
        .expect(409)
        .await;
    assert_error(&body, "invalid_state");
    // Setting the same number is not a change.
    let current = session(&app, &id).await;
    app.patch(&format!("/v1/whatsapp-sessions/{id}"))
        .json(json!({"phone_number": current.phone_number}))
        .expect_view::<SessionView>(200)
        .await;
}

#[wharf_testkit::dual_test]
async fn settings_patch_changes_only_given_fields(mut app: wharf_testkit::TestApp) {
    let id = create_id(&app, json!({})).await;
    let path = format!("/v1/whatsapp-sessions/{id}/settings");
    let before: SettingsView = app.get(&path).expect_view(200).await;
    let before = before.session_settings;
    let after: SettingsView = app
        .patch(&path)
        .json(json!({"read_incoming": true, "account_protection": false}))
        .expect_view(200)
        .await;
    let after = after.session_settings;
    assert!(after.read_incoming);
    assert!(!after.account_protection);
    // Every other field is unchanged.
    let mut expected = before;
    expected.read_incoming = true;
    expected.account_protection = false;
    assert_eq!(after, expected, "the other fields are unchanged");
    let persisted: SettingsView = app.get(&path).expect_view(200).await;
    assert_eq!(persisted.session_settings, after, "persisted");
}

#[wharf_testkit::dual_test]
async fn regenerate_key_revokes_the_old_key_at_once(mut app: wharf_testkit::TestApp) {
    let created = create(&app, json!({})).await;
    let id = created.session.session_id.clone();
    let old = created.session_api_key.raw.clone();
    app.get(&format!("/v1/whatsapp-sessions/{id}"))
        .token(&old)
        .expect_view::<SessionView>(200)
        .await;

    let rotated: RotatedKeyView = app
        .post(&format!("/v1/whatsapp-sessions/{id}/regenerate-key"))
        .expect_view(200)
        .await;
    let key = &rotated.session_api_key;
    assert_eq!(
        key.previous_fingerprint.as_ref(),
        Some(&created.session_api_key.fingerprint)
    );
    let new = &key.raw;
    assert!(new.starts_with("wh_sk_") && *new != old);

    let body = app
        .get(&format!("/v1/whatsapp-sessions/{id}"))
        .token(&old)
        .expect(401)
        .await;
    assert_error(&body, "invalid_token");
    let session: SessionView = app
        .get(&format!("/v1/whatsapp-sessions/{id}"))
        .token(new)
        .expect_view(200)
        .await;
    assert_eq!(
        session.session_api_key_fingerprint.as_ref(),
        Some(&key.fingerprint)
    );
}

#[wharf_testkit::dual_test]
async fn delete_revokes_the_key_and_reports_an_operation(mut app: wharf_testkit::TestApp) {
    let (id, key) = app.connected_session().await;
    let op: OperationView = app
        .delete(&format!("/v1/whatsapp-sessions/{id}"))
        .expect_view(202)
        .await;
    assert!(op.operation_id.starts_with("op_"));
    assert_eq!(op.session_id, id);
    assert_eq!(op.operation_type, "delete_session");
    assert_eq!(op.status, OperationStatus::Queued);
    assert_eq!(op.status_url, format!("/v1/operations/{}", op.operation_id));

    // The key is revoked at once, before the operation runs.
    app.get(&format!("/v1/whatsapp-sessions/{id}"))
        .token(&key)
        .expect(401)
        .await;

    let done = app
        .eventually(&op.status_url, |o| o["status"] == "succeeded")
        .await;
    let done: OperationView = read_view(&op.status_url, done);
    assert!(done.started_at.is_some() && done.finished_at.is_some());
    assert_eq!(done.error, None);
    let session = session(&app, &id).await;
    assert_eq!(session.status, SessionStatus::Deleted);
    assert_eq!(session.session_api_key_fingerprint, None);
    assert_eq!(session.worker_id, None);

    // Nothing more can be done with it.
    let again = app
        .delete(&format!("/v1/whatsapp-sessions/{id}"))
        .expect(409)
        .await;
    assert_error(&again, "invalid_state");
    app.post(&format!("/v1/whatsapp-sessions/{id}/connect"))
        .expect(409)
        .await;
    app.post(&format!("/v1/whatsapp-sessions/{id}/regenerate-key"))
        .expect(409)
        .await;
    app.patch(&format!("/v1/whatsapp-sessions/{id}"))
        .json(json!({"label": "x"}))
        .expect(409)
        .await;
}

#[wharf_testkit::dual_test]
async fn unknown_and_malformed_ids_are_not_found(mut app: wharf_testkit::TestApp) {
    for path in [
        "/v1/whatsapp-sessions/sess_00000000000000000000000000",
        "/v1/whatsapp-sessions/not-an-id",
        "/v1/whatsapp-sessions/not-an-id/settings",
        "/v1/operations/op_00000000000000000000000000",
        "/v1/operations/nope",
    ] {
        let body = app.get(path).expect(404).await;
        assert_error(&body, "not_found");
    }
}
