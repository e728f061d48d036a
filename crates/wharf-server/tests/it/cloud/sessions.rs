//! Cloud sessions: creation (validated field by field), secrets never shown and sealed at
//! rest, connect against Graph, QR codes refused, changes of credentials, deletion.

use serde_json::{Value, json};
use wharf_testkit::{Backend, TestApp, assert_error, cloud_body, fakegraph::FakeNumber};

use super::*;

async fn invalid_field(app: &TestApp, body: Value, field: &str) {
    let answer = app
        .post("/v1/whatsapp-sessions")
        .json(body.clone())
        .expect(422)
        .await;
    let errors = assert_error(&answer, "validation_error");
    assert!(
        errors[field].is_array(),
        "expected an error on {field} for {body}: {answer}"
    );
}

#[wharf_testkit::dual_test]
async fn cloud_sessions_are_validated_field_by_field(mut app: wharf_testkit::TestApp) {
    let n = number();
    let good = cloud_body(&n, "tok");
    let with = |field: &str, value: Value| {
        let mut c = good.clone();
        if value.is_null() {
            c.as_object_mut().unwrap().remove(field);
        } else {
            c[field] = value;
        }
        json!({"engine": "cloud", "cloud": c})
    };
    invalid_field(&app, json!({"engine": "cloud"}), "cloud").await;
    for (field, value) in [
        ("phone_number_id", json!("abc")),
        ("phone_number_id", Value::Null),
        ("waba_id", json!("")),
        ("access_token", json!("has space")),
        ("access_token", Value::Null),
        ("app_secret", Value::Null),
        ("verify_token", json!("")),
        ("graph_version", json!("23")),
        ("throughput_per_second", json!(0)),
        ("throughput_per_second", json!(1001)),
    ] {
        invalid_field(&app, with(field, value), &format!("cloud.{field}")).await;
    }
    invalid_field(&app, with("colour", json!("blue")), "cloud.colour").await;
    // The Graph address is the operator's: a tenant may not set it.
    invalid_field(
        &app,
        with("graph_base_url", json!("http://169.254.169.254")),
        "cloud.graph_base_url",
    )
    .await;
    invalid_field(
        &app,
        with("throughput_per_second", json!("fast")),
        "cloud.throughput_per_second",
    )
    .await;
    invalid_field(
        &app,
        json!({"engine": "emulator", "cloud": good.clone()}),
        "cloud",
    )
    .await;
    // Ids may be JSON numbers.
    let mut numeric = good.clone();
    numeric["phone_number_id"] = json!(106540352242922u64);
    let created = app
        .create_session(json!({"engine": "cloud", "cloud": numeric}))
        .await;
    assert_eq!(created["session"]["cloud"]["phone_number_id"], PNID);
    // Nothing was created by the refused requests.
    let list = app.get("/v1/whatsapp-sessions").expect(200).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

#[wharf_testkit::dual_test]
async fn secrets_are_never_shown_and_are_sealed_at_rest(mut app: wharf_testkit::TestApp) {
    let graph = app.graph().clone();
    let n = number();
    let body =
        json!({"engine": "cloud", "label": "Support", "cloud": cloud_body(&n, "my-verify-token")});
    let answer = app.post("/v1/whatsapp-sessions").json(body).send().await;
    assert_eq!(answer.status.as_u16(), 201, "{}", answer.text);
    let leaks = |text: &str| {
        text.contains(&n.access_token)
            || text.contains(&n.app_secret)
            || text.contains("my-verify-token")
    };
    assert!(!leaks(&answer.text), "{}", answer.text);
    let session = answer.json["session"]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cloud = &answer.json["session"]["cloud"];
    assert_eq!(cloud["phone_number_id"], PNID);
    assert_eq!(cloud["waba_id"], WABA);
    assert!(cloud.get("graph_base_url").is_none(), "{cloud}");
    assert_eq!(cloud["throughput_per_second"], 80);
    assert_eq!(cloud["webhook_path"], "/webhooks/meta");
    assert!(answer.json["warnings"].to_string().contains("connect"));
    for path in [
        format!("/v1/whatsapp-sessions/{session}"),
        "/v1/whatsapp-sessions".to_owned(),
    ] {
        let got = app.get(&path).send().await;
        assert_eq!(got.status.as_u16(), 200);
        assert!(!leaks(&got.text), "{}", got.text);
    }
    let patched = app
        .patch(&format!("/v1/whatsapp-sessions/{session}"))
        .json(json!({"cloud": {"throughput_per_second": 200}}))
        .send()
        .await;
    assert_eq!(patched.status.as_u16(), 200, "{}", patched.text);
    assert_eq!(patched.json["cloud"]["throughput_per_second"], 200);
    assert!(!leaks(&patched.text), "{}", patched.text);
    // Sealed in the database.
    let stored = app
        .store
        .cloud_session(app.account_id.parse().unwrap(), session.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    for sealed in [
        &stored.credentials.access_token,
        &stored.credentials.app_secret,
    ] {
        assert!(sealed.starts_with("v1:"), "{sealed}");
        assert!(!leaks(sealed), "{sealed}");
    }
    assert!(!leaks(&stored.credentials.verify_token_hash));
    // One number, one session.
    let again = app
        .post("/v1/whatsapp-sessions")
        .json(json!({"engine": "cloud", "cloud": cloud_body(&n, "other")}))
        .expect(409)
        .await;
    assert_error(&again, "phone_number_in_use");
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test]
async fn connect_checks_the_credentials_against_graph(mut app: wharf_testkit::TestApp) {
    let (graph, cloud) = connected(&app).await;
    let session = app
        .get(&format!("/v1/whatsapp-sessions/{}", cloud.session))
        .expect(200)
        .await;
    assert_eq!(session["status"], "connected");
    assert_eq!(session["phone_number"], format!("+{DISPLAY}"));
    assert!(graph.requests().iter().any(|r| r.method == "GET"
        && r.path == format!("/{PNID}")
        && r.authorization.as_deref()
            == Some(&format!("Bearer {}", cloud.number.access_token)[..])));
    // Cloud numbers do not pair.
    let qr = app
        .get(&format!("/v1/whatsapp-sessions/{}/qrcode", cloud.session))
        .expect(409)
        .await;
    let _ = assert_error(&qr, "qr_not_supported");
    assert!(qr["message"].as_str().unwrap().contains("cloud"), "{qr}");

    // A token Graph does not know: disconnected, with Graph's error as the reason.
    let mut stranger = FakeNumber::new("200000000000001", WABA, "15550783882");
    stranger.access_token = "EAAWRONG".into();
    let created = app
        .create_session(json!({"engine": "cloud", "cloud": cloud_body(&stranger, "t2")}))
        .await;
    let id = created["session"]["session_id"].as_str().unwrap();
    let answer = app
        .post(&format!("/v1/whatsapp-sessions/{id}/connect"))
        .expect(200)
        .await;
    assert_eq!(answer["status"], "disconnected");
    let reason = answer["status_reason"].as_str().unwrap();
    assert!(reason.contains("Graph error 190"), "{reason}");
    let statuses = events(&app, "session.status").await;
    let last = statuses
        .iter()
        .rev()
        .find(|e| e["session_id"] == id)
        .unwrap();
    assert_eq!(last["data"]["status"], "disconnected");
    assert_eq!(last["data"]["reason"], reason);
    // Sessions resume at start, checking again.
    app.restart().await;
    let session = app
        .get(&format!("/v1/whatsapp-sessions/{}", cloud.session))
        .expect(200)
        .await;
    assert_eq!(session["status"], "connected");
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test]
async fn credentials_change_only_while_disconnected(mut app: wharf_testkit::TestApp) {
    let (graph, cloud) = connected(&app).await;
    let path = format!("/v1/whatsapp-sessions/{}", cloud.session);
    let busy = app
        .patch(&path)
        .json(json!({"cloud": {"access_token": "EAANEW"}}))
        .expect(409)
        .await;
    assert!(
        busy["message"].as_str().unwrap().contains("disconnect"),
        "{busy}"
    );
    let bad = app
        .patch(&path)
        .json(json!({"cloud": {"graph_version": "x"}}))
        .expect(422)
        .await;
    assert_error(&bad, "validation_error");
    app.post(&format!("{path}/disconnect")).expect(200).await;
    // A new token for the number.
    let mut renewed = cloud.number.clone();
    renewed.access_token = "EAARENEWED".into();
    graph.add_number(renewed);
    app.patch(&path)
        .json(json!({"cloud": {"access_token": "EAARENEWED"}}))
        .expect(200)
        .await;
    // The Graph address is not a session's to change.
    let refused = app
        .patch(&path)
        .json(json!({"cloud": {"graph_base_url": "http://127.0.0.1:1"}}))
        .expect(422)
        .await;
    assert!(
        refused["errors"]["cloud.graph_base_url"].is_array(),
        "{refused}"
    );
    let answer = app.post(&format!("{path}/connect")).expect(200).await;
    assert_eq!(answer["status"], "connected", "{answer}");
    let last = graph.requests().last().cloned().unwrap();
    assert_eq!(last.authorization.as_deref(), Some("Bearer EAARENEWED"));
    // Emulator sessions have no cloud settings.
    let emu = app.create_session(json!({})).await;
    let id = emu["session"]["session_id"].as_str().unwrap();
    let refused = app
        .patch(&format!("/v1/whatsapp-sessions/{id}"))
        .json(json!({"cloud": {"access_token": "x"}}))
        .expect(422)
        .await;
    assert!(refused["errors"]["cloud"].is_array(), "{refused}");
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test]
async fn deleting_a_cloud_session_frees_its_number(mut app: wharf_testkit::TestApp) {
    let (_graph, cloud) = connected(&app).await;
    let op = app
        .delete(&format!("/v1/whatsapp-sessions/{}", cloud.session))
        .expect(202)
        .await;
    let op_path = op["status_url"].as_str().unwrap().to_owned();
    app.eventually(&op_path, |o| o["status"] == "succeeded")
        .await;
    assert!(
        app.store
            .cloud_session_any_account(cloud.session.parse().unwrap())
            .await
            .unwrap()
            .is_none()
    );
    app.post("/v1/whatsapp-sessions")
        .json(json!({"engine": "cloud", "cloud": cloud_body(&cloud.number, "again")}))
        .expect(201)
        .await;
}

/// Without `secret_key`, a SQLite server keeps its key in `wharf.key` next to the database,
/// readable by its owner only.
#[tokio::test]
async fn sqlite_keeps_a_key_file_next_to_the_database() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.secret_key = None)
        .await
        .expect("sqlite");
    let (graph, _) = connected(&app).await;
    let path = wharf_server::secrets::key_file(&app.config.database_url).expect("a key file");
    let meta = std::fs::metadata(&path).expect("the key file exists");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    let key = std::fs::read_to_string(&path).unwrap();
    assert!(wharf_server::secrets::decode_key(&key).is_ok());
    graph.assert_no_rejections();
}

/// PostgreSQL has no default key: cloud sessions need `secret_key`.
#[tokio::test]
async fn postgres_without_a_key_refuses_cloud_sessions() {
    let Some(app) = TestApp::spawn_with(Backend::Postgres, |c| c.secret_key = None).await else {
        return;
    };
    let answer = app
        .post("/v1/whatsapp-sessions")
        .json(json!({"engine": "cloud", "cloud": cloud_body(&number(), "t")}))
        .expect(422)
        .await;
    let errors = assert_error(&answer, "engine_unavailable");
    assert!(
        errors["engine"][0].as_str().unwrap().contains("secret_key"),
        "{answer}"
    );
    // The emulator still works.
    app.create_session(json!({})).await;
}
