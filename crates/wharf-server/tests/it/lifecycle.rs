//! Connect, pair, disconnect, restart and resume, on the emulator engine, with the events
//! each status change leaves in the log.

use std::time::Duration;

use serde_json::{Value, json};
use wharf_core::AccountId;
use wharf_testkit::{TestApp, assert_error};

async fn new_session(app: &TestApp, body: Value) -> String {
    app.create_session(body).await["session"]["session_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The `session.status` transitions recorded for the test account, as (previous, status).
async fn transitions(app: &TestApp) -> Vec<(String, String)> {
    let account: AccountId = app.account_id.parse().unwrap();
    let events = app.store.list_events(account, 0, 1000).await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "cursors are gap-free: {seqs:?}"
    );
    events
        .iter()
        .filter(|e| e.kind == "session.status")
        .map(|e| {
            (
                e.payload["previous_status"].as_str().unwrap().to_owned(),
                e.payload["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Queues a deletion straight in the store, as the API would, without the server noticing.
async fn queue_deletion_in_store(app: &TestApp, id: &str) -> wharf_store::OperationRow {
    let account: AccountId = app.account_id.parse().unwrap();
    let (_, op) = app
        .store
        .begin_session_deletion::<wharf_store::StoreError>(account, id.parse().unwrap(), |row| {
            Ok(wharf_core::Event::new(
                row.account_id,
                Some(row.id),
                wharf_core::EventType::SessionStatus,
                json!({}),
            ))
        })
        .await
        .unwrap()
        .unwrap();
    op
}

fn t(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

#[wharf_testkit::dual_test]
async fn pairing_by_qr_then_disconnect_and_reconnect_without_qr(mut app: wharf_testkit::TestApp) {
    let id = new_session(&app, json!({"phone_number": "+15557654321"})).await;
    let base = format!("/v1/whatsapp-sessions/{id}");

    let qr_conflict = app.get(&format!("{base}/qrcode")).expect(409).await;
    assert_error(&qr_conflict, "invalid_state");

    let connecting = app.post(&format!("{base}/connect")).expect(200).await;
    assert_eq!(connecting["status"], "connecting");
    // The instance's name and a suffix of its process: the lease owner.
    assert!(
        connecting["worker_id"]
            .as_str()
            .is_some_and(|w| w.starts_with("test-instance-")),
        "{connecting}"
    );
    let qr = app.get(&format!("{base}/qrcode")).expect(200).await;
    let code = qr["qr"].as_str().unwrap();
    assert!(
        code.starts_with("2@") && code.split(',').count() == 4,
        "WhatsApp Web QR format: {code}"
    );
    let image = app
        .get(&format!("{base}/qrcode?format=image"))
        .expect(200)
        .await;
    assert!(
        image["qr"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,iVBORw0KGgo")
    );

    let again = app.post(&format!("{base}/connect")).expect(409).await;
    assert_error(&again, "invalid_state");

    // A scan from another number than the session's is refused.
    app.post(&format!("/emulator/sessions/{id}/scan"))
        .json(json!({"phone_number": "+15550009999"}))
        .expect(409)
        .await;
    let connected = app
        .post(&format!("/emulator/sessions/{id}/scan"))
        .expect(200)
        .await;
    assert_eq!(connected["status"], "connected");
    assert_eq!(connected["phone_number"], "+15557654321");
    assert!(connected["last_activity_at"].is_string());
    app.get(&format!("{base}/qrcode")).expect(409).await;
    app.post(&format!("{base}/connect")).expect(409).await;

    let disconnected = app.post(&format!("{base}/disconnect")).expect(200).await;
    assert_eq!(disconnected["status"], "disconnected");
    assert_eq!(disconnected["worker_id"], Value::Null);
    app.post(&format!("{base}/disconnect")).expect(409).await;
    app.post(&format!("{base}/restart")).expect(409).await;

    // Still linked: connecting again needs no QR.
    let back = app.post(&format!("{base}/connect")).expect(200).await;
    assert_eq!(back["status"], "connected");

    assert_eq!(
        transitions(&app).await,
        vec![
            t("disconnected", "pending"),
            t("pending", "connecting"),
            t("connecting", "connected"),
            t("connected", "disconnected"),
            t("disconnected", "pending"),
            t("pending", "connected"),
        ]
    );
    let account: AccountId = app.account_id.parse().unwrap();
    let events = app.store.list_events(account, 0, 1000).await.unwrap();
    let qr_event = events
        .iter()
        .find(|e| e.kind == "session.qr")
        .expect("a session.qr event");
    assert_eq!(qr_event.payload["qr"], code);
    assert_eq!(qr_event.session_id.as_deref(), Some(id.as_str()));
}

#[wharf_testkit::dual_test]
async fn restart_reconnects_a_linked_session(mut app: wharf_testkit::TestApp) {
    let (id, _) = app.connected_session().await;
    let restarted = app
        .post(&format!("/v1/whatsapp-sessions/{id}/restart"))
        .expect(200)
        .await;
    assert_eq!(restarted["status"], "connected");
    let tail: Vec<_> = transitions(&app).await.into_iter().rev().take(2).collect();
    assert_eq!(
        tail,
        vec![t("pending", "connected"), t("connected", "pending")]
    );
}

#[wharf_testkit::dual_test]
async fn restart_while_pairing_issues_a_fresh_qr(mut app: wharf_testkit::TestApp) {
    let id = new_session(&app, json!({})).await;
    app.post(&format!("/v1/whatsapp-sessions/{id}/connect"))
        .expect(200)
        .await;
    let first = app
        .get(&format!("/v1/whatsapp-sessions/{id}/qrcode"))
        .expect(200)
        .await;
    let restarted = app
        .post(&format!("/v1/whatsapp-sessions/{id}/restart"))
        .expect(200)
        .await;
    assert_eq!(restarted["status"], "connecting");
    let second = app
        .get(&format!("/v1/whatsapp-sessions/{id}/qrcode"))
        .expect(200)
        .await;
    assert_ne!(first["qr"], second["qr"]);
    // Without a number of its own, the scan links a test number.
    let connected = app
        .post(&format!("/emulator/sessions/{id}/scan"))
        .expect(200)
        .await;
    assert!(
        connected["phone_number"]
            .as_str()
            .unwrap()
            .starts_with("+1555")
    );
}

#[wharf_testkit::dual_test]
async fn logout_from_the_phone_needs_a_new_pairing(mut app: wharf_testkit::TestApp) {
    let (id, _) = app.connected_session().await;
    let out = app
        .post(&format!("/emulator/sessions/{id}/logout"))
        .expect(200)
        .await;
    assert_eq!(out["status"], "disconnected");
    assert_eq!(out["status_reason"], "logged out from the phone");
    let reconnect = app
        .post(&format!("/v1/whatsapp-sessions/{id}/connect"))
        .expect(200)
        .await;
    assert_eq!(reconnect["status"], "connecting", "a QR is needed again");
    app.get(&format!("/v1/whatsapp-sessions/{id}/qrcode"))
        .expect(200)
        .await;
}

#[wharf_testkit::dual_test]
async fn disconnect_while_pairing_drops_the_qr(mut app: wharf_testkit::TestApp) {
    let id = new_session(&app, json!({})).await;
    app.post(&format!("/v1/whatsapp-sessions/{id}/connect"))
        .expect(200)
        .await;
    app.post(&format!("/v1/whatsapp-sessions/{id}/disconnect"))
        .expect(200)
        .await;
    app.get(&format!("/v1/whatsapp-sessions/{id}/qrcode"))
        .expect(409)
        .await;
    let scan = app
        .post(&format!("/emulator/sessions/{id}/scan"))
        .expect(409)
        .await;
    assert_error(&scan, "invalid_state");
}

#[wharf_testkit::dual_test]
async fn sessions_resume_after_a_restart(mut app: wharf_testkit::TestApp) {
    let (linked, _) = app.connected_session().await;
    let pairing = new_session(&app, json!({})).await;
    app.post(&format!("/v1/whatsapp-sessions/{pairing}/connect"))
        .expect(200)
        .await;
    let old_qr = app
        .get(&format!("/v1/whatsapp-sessions/{pairing}/qrcode"))
        .expect(200)
        .await;
    let idle = new_session(&app, json!({"label": "never started"})).await;

    app.restart().await;

    let s = app
        .eventually(&format!("/v1/whatsapp-sessions/{linked}"), |s| {
            s["status"] == "connected"
        })
        .await;
    assert!(
        s["worker_id"]
            .as_str()
            .is_some_and(|w| w.starts_with("test-instance-")),
        "{s}"
    );
    // The pairing session gets a new QR from the new process and can still be scanned.
    let new_qr = app
        .eventually(&format!("/v1/whatsapp-sessions/{pairing}/qrcode"), |q| {
            q["qr"] != old_qr["qr"]
        })
        .await;
    assert!(new_qr["qr"].as_str().unwrap().starts_with("2@"));
    app.post(&format!("/emulator/sessions/{pairing}/scan"))
        .expect(200)
        .await;
    let idle = app
        .get(&format!("/v1/whatsapp-sessions/{idle}"))
        .expect(200)
        .await;
    assert_eq!(
        idle["status"], "disconnected",
        "sessions never started stay stopped"
    );
}

#[wharf_testkit::dual_test]
async fn phone_cannot_change_while_pairing(mut app: wharf_testkit::TestApp) {
    let id = new_session(&app, json!({"phone_number": "+15550001000"})).await;
    app.post(&format!("/v1/whatsapp-sessions/{id}/connect"))
        .expect(200)
        .await;
    let body = app
        .patch(&format!("/v1/whatsapp-sessions/{id}"))
        .json(json!({"phone_number": "+15550002000"}))
        .expect(409)
        .await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("disconnect it first"),
        "{body}"
    );
    app.post(&format!("/v1/whatsapp-sessions/{id}/disconnect"))
        .expect(200)
        .await;
    let changed = app
        .patch(&format!("/v1/whatsapp-sessions/{id}"))
        .json(json!({"phone_number": "+15550002000"}))
        .expect(200)
        .await;
    assert_eq!(changed["phone_number"], "+15550002000");
}

#[wharf_testkit::dual_test]
async fn a_failed_deletion_can_be_asked_for_again(mut app: wharf_testkit::TestApp) {
    let (id, _) = app.connected_session().await;
    app.stop().await;
    let op = queue_deletion_in_store(&app, &id).await;
    // As if the engine had refused the logout.
    app.store
        .claim_operation(app.config.clock.now_millis(), 60_000)
        .await
        .unwrap()
        .unwrap();
    app.store
        .finish_operation(
            op.id,
            wharf_core::OperationStatus::Failed,
            None,
            Some("engine unreachable"),
        )
        .await
        .unwrap();
    app.start().await;
    let failed = app
        .get(&format!("/v1/operations/{}", op.id))
        .expect(200)
        .await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"], "engine unreachable");
    let s = app
        .get(&format!("/v1/whatsapp-sessions/{id}"))
        .expect(200)
        .await;
    assert_eq!(s["status"], "pending_deletion");

    let retry = app
        .delete(&format!("/v1/whatsapp-sessions/{id}"))
        .expect(202)
        .await;
    // While the retry is under way or done, a third request is refused.
    app.eventually(retry["status_url"].as_str().unwrap(), |o| {
        o["status"] == "succeeded"
    })
    .await;
    app.delete(&format!("/v1/whatsapp-sessions/{id}"))
        .expect(409)
        .await;
    assert_eq!(
        app.get(&format!("/v1/whatsapp-sessions/{id}"))
            .expect(200)
            .await["status"],
        "deleted"
    );
}

#[wharf_testkit::dual_test]
async fn a_queued_deletion_survives_a_restart(mut app: wharf_testkit::TestApp) {
    let (id, _) = app.connected_session().await;
    // Queue the deletion while the server is down, as if it died right after the 202.
    app.stop().await;
    let op = queue_deletion_in_store(&app, &id).await;
    app.start().await;
    let done = app
        .eventually(&format!("/v1/operations/{}", op.id), |o| {
            o["status"] == "succeeded"
        })
        .await;
    assert_eq!(done["result"], "session deleted");
    let s = app
        .get(&format!("/v1/whatsapp-sessions/{id}"))
        .expect(200)
        .await;
    assert_eq!(s["status"], "deleted");
}

#[wharf_testkit::dual_test]
async fn a_deletion_left_by_a_dead_instance_resumes_when_its_lease_expires_on_the_clock(
    mut app: wharf_testkit::TestApp,
) {
    let (id, _) = app.connected_session().await;
    app.stop().await;
    let op = queue_deletion_in_store(&app, &id).await;
    // Claimed by an instance that then died, under a lease of a minute.
    app.store
        .claim_operation(app.config.clock.now_millis(), 60_000)
        .await
        .unwrap()
        .unwrap();
    app.start().await;
    let path = format!("/v1/operations/{}", op.id);
    assert_eq!(
        app.get(&path).expect(200).await["status"],
        "running",
        "the lease holds it"
    );
    // The minute passes on the server's clock (nothing sleeps): the worker takes it up.
    app.config.clock.advance(Duration::from_secs(61));
    let done = app.eventually(&path, |o| o["status"] == "succeeded").await;
    assert_eq!(done["error"], Value::Null);
}
