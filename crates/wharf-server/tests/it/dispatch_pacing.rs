//! A session's own pace (`settings.pacing`), honoured by the dispatcher on the server's
//! injected clock: a daily cap holds the queue until the next UTC day (nothing fails, no
//! attempt counts, a restart remembers the day's sends), and a recipient's spacing holds only
//! that recipient. Played on the emulator, whose sends are otherwise unpaced.

use std::time::Duration;

use serde_json::json;
use wharf_core::SessionId;

/// The session's jobs that are waiting but not due at the server's `now`.
async fn held(app: &wharf_testkit::TestApp, session: SessionId) -> (i64, usize) {
    let total = app.store.outbox_len(session).await.unwrap();
    let due = app
        .store
        .ready_jobs(session, app.config.clock.now_millis(), 100)
        .await
        .unwrap()
        .len();
    (total, due)
}

async fn held_eventually(app: &wharf_testkit::TestApp, session: SessionId, count: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (total, due) = held(app, session).await;
        if total == count && due == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{total} jobs, {due} due; expected {count} held"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn set_pacing(app: &wharf_testkit::TestApp, id: &str, pacing: serde_json::Value) {
    let answer = app
        .patch(&format!("/v1/whatsapp-sessions/{id}/settings"))
        .json(json!({ "pacing": pacing }))
        .expect(200)
        .await;
    assert_eq!(answer["session_settings"]["pacing"], pacing, "{answer}");
}

#[wharf_testkit::dual_test]
async fn a_daily_cap_holds_the_queue_until_the_next_day(mut app: wharf_testkit::TestApp) {
    let (id, _) = app.connected_session().await;
    let session: SessionId = id.parse().unwrap();
    set_pacing(&app, &id, json!({"daily_cap": 2, "jitter_ms": 0})).await;
    let first = app.send_text(&id, "+15550100001", "one").await;
    let second = app.send_text(&id, "+15550100002", "two").await;
    app.wait_status(&first, "sent").await;
    app.wait_status(&second, "sent").await;
    let third = app.send_text(&id, "+15550100003", "three").await;
    held_eventually(&app, session, 1).await;
    let info = app.info(&third).await;
    assert_eq!(serde_json::to_value(info.status).unwrap(), "queued");
    assert_eq!(info.attempts, 0, "waiting for the cap is not an attempt");
    assert!(info.failure_reason.is_none());

    // A restart counts the day's sends again: a new message waits too.
    app.restart().await;
    app.eventually(&format!("/v1/whatsapp-sessions/{id}"), |s| {
        s["status"] == "connected"
    })
    .await;
    let fourth = app.send_text(&id, "+15550100004", "four").await;
    held_eventually(&app, session, 2).await;
    assert_eq!(
        serde_json::to_value(app.info(&fourth).await.status).unwrap(),
        "queued"
    );

    // The next day (on the server's clock), the queue moves again, up to the cap.
    app.config.clock.advance(Duration::from_secs(86_400));
    app.wait_status(&third, "sent").await;
    app.wait_status(&fourth, "sent").await;
    assert_eq!(app.store.outbox_len(session).await.unwrap(), 0);
    app.stop().await;
}

/// The cap counts sends that went out, as the count after a restart does: a failed attempt
/// spends none of the day's budget.
#[wharf_testkit::dual_test]
async fn a_failed_send_spends_none_of_the_daily_cap(mut app: wharf_testkit::TestApp) {
    let (id, _) = app.connected_session().await;
    let session: SessionId = id.parse().unwrap();
    set_pacing(&app, &id, json!({"daily_cap": 2, "jitter_ms": 0})).await;
    app.post(&format!("/emulator/sessions/{id}/failures"))
        .json(json!({"mode": "permanent", "count": 1}))
        .expect(204)
        .await;
    let failed = app.send_text(&id, "+15550100001", "one").await;
    app.wait_status(&failed, "failed").await;
    let second = app.send_text(&id, "+15550100002", "two").await;
    let third = app.send_text(&id, "+15550100003", "three").await;
    app.wait_status(&second, "sent").await;
    app.wait_status(&third, "sent").await;
    // The cap is reached by the two that went out: the next one waits.
    let fourth = app.send_text(&id, "+15550100004", "four").await;
    held_eventually(&app, session, 1).await;
    assert_eq!(
        serde_json::to_value(app.info(&fourth).await.status).unwrap(),
        "queued"
    );
    app.stop().await;
}

#[wharf_testkit::dual_test]
async fn a_recipients_spacing_holds_only_that_recipient(mut app: wharf_testkit::TestApp) {
    let (id, _) = app.connected_session().await;
    let session: SessionId = id.parse().unwrap();
    set_pacing(
        &app,
        &id,
        json!({"pair_burst": 1, "pair_interval_ms": 60000, "jitter_ms": 0}),
    )
    .await;
    let a1 = app.send_text(&id, "+15550100001", "a1").await;
    app.wait_status(&a1, "sent").await;
    let a2 = app.send_text(&id, "+15550100001", "a2").await;
    let b1 = app.send_text(&id, "+15550100002", "b1").await;
    app.wait_status(&b1, "sent").await;
    held_eventually(&app, session, 1).await;
    let info = app.info(&a2).await;
    assert_eq!(serde_json::to_value(info.status).unwrap(), "queued");
    assert_eq!(info.attempts, 0);
    // A minute later on the server's clock, the recipient may have the next one.
    app.config.clock.advance(Duration::from_secs(61));
    app.wait_status(&a2, "sent").await;
    app.stop().await;
}

#[wharf_testkit::dual_test]
async fn a_sessions_pacing_is_validated_and_can_be_reset(mut app: wharf_testkit::TestApp) {
    let created = app
        .create_session(json!({"settings": {"pacing": {"per_second": 2, "daily_cap": 500}}}))
        .await;
    let id = created["session"]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let settings = app
        .get(&format!("/v1/whatsapp-sessions/{id}/settings"))
        .expect(200)
        .await;
    assert_eq!(
        settings["session_settings"]["pacing"],
        json!({"per_second": 2, "daily_cap": 500})
    );
    for (body, field) in [
        (json!({"pacing": {"per_second": 0}}), "pacing.per_second"),
        (json!({"pacing": {"jitter_ms": 60001}}), "pacing.jitter_ms"),
        (
            json!({"pacing": {"pair_interval_ms": 0}}),
            "pacing.pair_interval_ms",
        ),
        (json!({"pacing": {"daily_cap": -1}}), "pacing.daily_cap"),
        (json!({"pacing": {"burst": 3}}), "pacing"),
    ] {
        let answer = app
            .patch(&format!("/v1/whatsapp-sessions/{id}/settings"))
            .json(body.clone())
            .expect(422)
            .await;
        let errors = wharf_testkit::assert_error(&answer, "validation_error");
        assert!(
            errors
                .as_object()
                .unwrap()
                .keys()
                .any(|k| k.starts_with(field)),
            "{body}: {answer}"
        );
    }
    let bad = app
        .post("/v1/whatsapp-sessions")
        .json(json!({"settings": {"pacing": {"pair_burst": 0}}}))
        .expect(422)
        .await;
    let errors = wharf_testkit::assert_error(&bad, "validation_error");
    assert!(errors["settings.pacing.pair_burst"].is_array(), "{bad}");
    // `{}` goes back to the engine's pace.
    let reset = app
        .patch(&format!("/v1/whatsapp-sessions/{id}/settings"))
        .json(json!({"pacing": {}}))
        .expect(200)
        .await;
    assert!(reset["session_settings"].get("pacing").is_none(), "{reset}");
    app.stop().await;
}
