//! The Sessions API: create, read, list, update, settings, key rotation and deletion.

use serde_json::{Value, json};
use wharf_testkit::assert_error;

fn id_of(created: &Value) -> String {
    created["session"]["session_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[wharf_testkit::dual_test]
async fn create_returns_the_session_its_key_once_and_warnings(mut app: wharf_testkit::TestApp) {
    let created = app
        .create_session(json!({
            "label": "  Support line ",
            "phone_number": "+1 (555) 123-4567",
            "settings": {"typing": true, "ignore_groups": true}
        }))
        .await;
    let session = &created["session"];
    assert!(session["session_id"].as_str().unwrap().starts_with("sess_"));
    assert_eq!(session["account_id"], app.account_id.as_str());
    assert_eq!(session["status"], "disconnected");
    assert_eq!(session["label"], "Support line");
    assert_eq!(session["phone_number"], "+15551234567");
    assert_eq!(session["engine"], "emulator");
    assert_eq!(session["worker_id"], Value::Null);
    let key = &created["session_api_key"];
    assert!(key["raw"].as_str().unwrap().starts_with("wh_sk_"));
    assert_eq!(key["fingerprint"], session["session_api_key_fingerprint"]);
    assert_eq!(key["previous_fingerprint"], Value::Null);
    assert!(
        created["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("emulator"))
    );

    // The raw key is never shown again.
    let fetched = app
        .get(&format!("/v1/whatsapp-sessions/{}", id_of(&created)))
        .expect(200)
        .await;
    assert!(!fetched.to_string().contains(key["raw"].as_str().unwrap()));
    assert_eq!(fetched["label"], "Support line");

    let settings = app
        .get(&format!(
            "/v1/whatsapp-sessions/{}/settings",
            id_of(&created)
        ))
        .expect(200)
        .await;
    assert_eq!(settings["session_settings"]["typing"], true);
    assert_eq!(settings["session_settings"]["ignore_groups"], true);
    assert_eq!(
        settings["session_settings"]["account_protection"], true,
        "defaults fill the rest"
    );
    assert_eq!(settings["session_settings"].as_object().unwrap().len(), 8);
}

#[wharf_testkit::dual_test]
async fn blank_fields_from_the_postman_example_mean_unset(mut app: wharf_testkit::TestApp) {
    let created = app
        .create_session(json!({"label": "", "phone_number": ""}))
        .await;
    assert_eq!(created["session"]["label"], Value::Null);
    assert_eq!(created["session"]["phone_number"], Value::Null);
    assert!(
        created["warnings"]
            .to_string()
            .contains("phone_number is not set")
    );
}

#[wharf_testkit::dual_test]
async fn list_pages_newest_first_with_a_cursor(mut app: wharf_testkit::TestApp) {
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(id_of(
            &app.create_session(json!({"label": format!("s{i}")})).await,
        ));
    }
    ids.reverse();
    let page1 = app.get("/v1/whatsapp-sessions?limit=2").expect(200).await;
    let got: Vec<_> = page1["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ids[..2]);
    let cursor = page1["next_cursor"].as_str().unwrap();
    assert_eq!(cursor, ids[1]);
    let page2 = app
        .get(&format!("/v1/whatsapp-sessions?limit=2&before_id={cursor}"))
        .expect(200)
        .await;
    let got: Vec<_> = page2["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ids[2..4]);
    let page3 = app
        .get(&format!(
            "/v1/whatsapp-sessions?limit=2&before_id={}",
            page2["next_cursor"].as_str().unwrap()
        ))
        .expect(200)
        .await;
    assert_eq!(page3["data"].as_array().unwrap().len(), 1);
    assert_eq!(page3["next_cursor"], Value::Null, "last page");

    // Exactly `limit` left: no phantom next page.
    let all = app.get("/v1/whatsapp-sessions?limit=5").expect(200).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 5);
    assert_eq!(all["next_cursor"], Value::Null);
    // Default limit and the Postman collection's empty before_id.
    let default = app
        .get("/v1/whatsapp-sessions?before_id=")
        .expect(200)
        .await;
    assert_eq!(default["data"].as_array().unwrap().len(), 5);
}

#[wharf_testkit::dual_test]
async fn list_filters_by_status_and_hides_deleted(mut app: wharf_testkit::TestApp) {
    let a = id_of(&app.create_session(json!({})).await);
    let b = id_of(&app.create_session(json!({})).await);
    app.post(&format!("/v1/whatsapp-sessions/{b}/connect"))
        .expect(200)
        .await;
    let connecting = app
        .get("/v1/whatsapp-sessions?status=connecting")
        .expect(200)
        .await;
    assert_eq!(connecting["data"].as_array().unwrap().len(), 1);
    assert_eq!(connecting["data"][0]["session_id"], b.as_str());

    app.delete(&format!("/v1/whatsapp-sessions/{a}"))
        .expect(202)
        .await;
    app.eventually(&format!("/v1/whatsapp-sessions/{a}"), |s| {
        s["status"] == "deleted"
    })
    .await;
    let visible = app.get("/v1/whatsapp-sessions").expect(200).await;
    let ids: Vec<_> = visible["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].clone())
        .collect();
    assert_eq!(
        ids,
        vec![json!(b)],
        "deleted sessions are hidden by default"
    );
    let deleted = app
        .get("/v1/whatsapp-sessions?status=deleted")
        .expect(200)
        .await;
    assert_eq!(deleted["data"][0]["session_id"], a.as_str());
}

#[wharf_testkit::dual_test]
async fn patch_updates_label_phone_and_settings(mut app: wharf_testkit::TestApp) {
    let id = id_of(&app.create_session(json!({"label": "old"})).await);
    let path = format!("/v1/whatsapp-sessions/{id}");
    let updated = app
        .patch(&path)
        .json(json!({"label": "new", "phone_number": "0044 20 7946 0958", "settings": {"always_online": true}}))
        .expect(200)
        .await;
    assert_eq!(updated["label"], "new");
    assert_eq!(updated["phone_number"], "+442079460958");
    let settings = app.get(&format!("{path}/settings")).expect(200).await;
    assert_eq!(settings["session_settings"]["always_online"], true);

    // Absent fields stay; null clears.
    let kept = app.patch(&path).json(json!({})).expect(200).await;
    assert_eq!(kept["label"], "new");
    let cleared = app
        .patch(&path)
        .json(json!({"label": null, "phone_number": null}))
        .expect(200)
        .await;
    assert_eq!(cleared["label"], Value::Null);
    assert_eq!(cleared["phone_number"], Value::Null);
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
    let current = app
        .get(&format!("/v1/whatsapp-sessions/{id}"))
        .expect(200)
        .await;
    app.patch(&format!("/v1/whatsapp-sessions/{id}"))
        .json(json!({"phone_number": current["phone_number"]}))
        .expect(200)
        .await;
}

#[wharf_testkit::dual_test]
async fn settings_patch_changes_only_given_fields(mut app: wharf_testkit::TestApp) {
    let id = id_of(&app.create_session(json!({})).await);
    let path = format!("/v1/whatsapp-sessions/{id}/settings");
    let before = app.get(&path).expect(200).await["session_settings"].clone();
    let after = app
        .patch(&path)
        .json(json!({"read_incoming": true, "account_protection": false}))
        .expect(200)
        .await;
    let after = &after["session_settings"];
    assert_eq!(after["read_incoming"], true);
    assert_eq!(after["account_protection"], false);
    for field in [
        "auto_reject_calls",
        "always_online",
        "ignore_groups",
        "ignore_broadcasts",
        "ignore_channels",
        "typing",
    ] {
        assert_eq!(after[field], before[field], "{field} unchanged");
    }
    assert_eq!(
        app.get(&path).expect(200).await["session_settings"],
        *after,
        "persisted"
    );
}

#[wharf_testkit::dual_test]
async fn regenerate_key_revokes_the_old_key_at_once(mut app: wharf_testkit::TestApp) {
    let created = app.create_session(json!({})).await;
    let id = id_of(&created);
    let old = created["session_api_key"]["raw"]
        .as_str()
        .unwrap()
        .to_owned();
    app.get(&format!("/v1/whatsapp-sessions/{id}"))
        .token(&old)
        .expect(200)
        .await;

    let rotated = app
        .post(&format!("/v1/whatsapp-sessions/{id}/regenerate-key"))
        .expect(200)
        .await;
    let key = &rotated["session_api_key"];
    assert_eq!(
        key["previous_fingerprint"],
        created["session_api_key"]["fingerprint"]
    );
    let new = key["raw"].as_str().unwrap();
    assert!(new.starts_with("wh_sk_") && new != old);

    let body = app
        .get(&format!("/v1/whatsapp-sessions/{id}"))
        .token(&old)
        .expect(401)
        .await;
    assert_error(&body, "invalid_token");
    let session = app
        .get(&format!("/v1/whatsapp-sessions/{id}"))
        .token(new)
        .expect(200)
        .await;
    assert_eq!(session["session_api_key_fingerprint"], key["fingerprint"]);
}

#[wharf_testkit::dual_test]
async fn delete_revokes_the_key_and_reports_an_operation(mut app: wharf_testkit::TestApp) {
    let (id, key) = app.connected_session().await;
    let op = app
        .delete(&format!("/v1/whatsapp-sessions/{id}"))
        .expect(202)
        .await;
    assert!(op["operation_id"].as_str().unwrap().starts_with("op_"));
    assert_eq!(op["session_id"], id.as_str());
    assert_eq!(op["operation_type"], "delete_session");
    assert_eq!(op["status"], "queued");
    let status_url = op["status_url"].as_str().unwrap().to_owned();
    assert_eq!(
        status_url,
        format!("/v1/operations/{}", op["operation_id"].as_str().unwrap())
    );

    // The key is revoked at once, before the operation runs.
    app.get(&format!("/v1/whatsapp-sessions/{id}"))
        .token(&key)
        .expect(401)
        .await;

    let done = app
        .eventually(&status_url, |o| o["status"] == "succeeded")
        .await;
    assert!(done["started_at"].is_string() && done["finished_at"].is_string());
    assert_eq!(done["error"], Value::Null);
    let session = app
        .get(&format!("/v1/whatsapp-sessions/{id}"))
        .expect(200)
        .await;
    assert_eq!(session["status"], "deleted");
    assert_eq!(session["session_api_key_fingerprint"], Value::Null);
    assert_eq!(session["worker_id"], Value::Null);

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
