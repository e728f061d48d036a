//! Webhook endpoints: CRUD, signed deliveries of every event, retries against a failing
//! receiver, the attempts log, redelivery, isolation of a slow endpoint.

use std::time::Duration;

use serde_json::json;
use wharf_testkit::{TestReceiver, assert_error};

const TO: &str = "+15550102030";

#[wharf_testkit::dual_test]
async fn webhooks_crud_and_validation(mut app: wharf_testkit::TestApp) {
    let created = app
        .post("/v1/webhooks")
        .json(json!({"target_url": "https://hooks.example.com/wharf", "subscribed_events": ["message.sent"], "description": "prod"}))
        .expect(201)
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("whk_"));
    let secret = created["signing_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(created["is_active"], true);

    let fetched = app.get(&format!("/v1/webhooks/{id}")).expect(200).await;
    assert!(
        fetched.get("signing_secret").is_none(),
        "the secret is shown once"
    );
    let listed = app.get("/v1/webhooks").expect(200).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);

    let patched = app
        .patch(&format!("/v1/webhooks/{id}"))
        .json(json!({"is_active": false, "subscribed_events": []}))
        .expect(200)
        .await;
    assert_eq!(patched["is_active"], false);
    assert_eq!(patched["subscribed_events"], json!([]));
    let rotated = app
        .post(&format!("/v1/webhooks/{id}/rotate-secret"))
        .expect(200)
        .await;
    assert_ne!(rotated["signing_secret"], secret.as_str());

    for (body, field) in [
        (json!({}), "target_url"),
        (json!({"target_url": "ftp://x"}), "target_url"),
        (json!({"target_url": "https://"}), "target_url"),
        (
            json!({"target_url": "https://x.com", "subscribed_events": ["message.exploded"]}),
            "subscribed_events",
        ),
        (
            json!({"target_url": "https://x.com", "session_id": "sess_00000000000000000000000000"}),
            "session_id",
        ),
        (json!({"target_url": "https://x.com", "extra": 1}), "extra"),
    ] {
        let err = app.post("/v1/webhooks").json(body).expect(422).await;
        assert!(
            assert_error(&err, "validation_error")[field].is_array(),
            "{err}"
        );
    }
    // Session keys cannot manage webhooks; other tenants cannot see them.
    let (_, key) = app.connected_session().await;
    app.get("/v1/webhooks").token(&key).expect(403).await;
    let (_, other) = app.store.create_account("other").await.unwrap();
    app.get(&format!("/v1/webhooks/{id}"))
        .token(&other.raw)
        .expect(404)
        .await;
    app.delete(&format!("/v1/webhooks/{id}"))
        .token(&other.raw)
        .expect(404)
        .await;

    app.delete(&format!("/v1/webhooks/{id}")).expect(204).await;
    app.get(&format!("/v1/webhooks/{id}")).expect(404).await;
}

#[wharf_testkit::dual_test]
async fn another_account_cannot_delete_an_endpoint_or_its_log(mut app: wharf_testkit::TestApp) {
    let mut receiver = TestReceiver::start().await;
    let hook = app
        .post("/v1/webhooks")
        .json(json!({"target_url": receiver.url("/hook")}))
        .expect(201)
        .await;
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    app.connected_session().await;
    receiver.next_of("session.status").await;
    let before = app
        .eventually(&format!("/v1/webhooks/{hook_id}/deliveries"), |d| {
            !d["data"].as_array().unwrap().is_empty()
        })
        .await;
    let (_, other) = app.store.create_account("other").await.unwrap();
    app.delete(&format!("/v1/webhooks/{hook_id}"))
        .token(&other.raw)
        .expect(404)
        .await;
    // The endpoint and its whole delivery log are untouched.
    app.get(&format!("/v1/webhooks/{hook_id}"))
        .expect(200)
        .await;
    let after = app
        .get(&format!("/v1/webhooks/{hook_id}/deliveries"))
        .expect(200)
        .await;
    let ids = |page: &serde_json::Value| {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let kept = ids(&after);
    assert!(
        ids(&before).iter().all(|id| kept.contains(id)),
        "before {before}, after {after}"
    );
    app.delete(&format!("/v1/webhooks/{hook_id}"))
        .expect(204)
        .await;
}

#[wharf_testkit::dual_test]
async fn events_are_delivered_signed(mut app: wharf_testkit::TestApp) {
    let mut receiver = TestReceiver::start().await;
    let hook = app
        .post("/v1/webhooks")
        .json(json!({"target_url": receiver.url("/hook")}))
        .expect(201)
        .await;
    let secret = hook["signing_secret"].as_str().unwrap().to_owned();
    let (s, _) = app.connected_session().await;
    let status = receiver.next_of("session.status").await;
    assert!(
        status.signature_valid(&secret),
        "signed with the endpoint's secret"
    );
    assert!(status.header("webhook-id").starts_with("evt_"));
    assert!(status.header("webhook-timestamp").parse::<i64>().unwrap() > 1_700_000_000);
    assert_eq!(status.json["session_id"], s.as_str());
    assert!(status.json["cursor"].as_i64().unwrap() > 0);

    let id = app.send_text(&s, TO, "hook me").await;
    let sent = receiver.next_of("message.sent").await;
    assert_eq!(sent.json["message_id"], id.as_str());
    assert_eq!(sent.json["data"]["status"], "sent");
    assert!(sent.signature_valid(&secret));
    assert!(!sent.signature_valid("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));

    app.post(&format!("/emulator/sessions/{s}/inbound"))
        .json(json!({"from": TO, "text": "hello"}))
        .expect(202)
        .await;
    let received = receiver.next_of("message.received").await;
    assert_eq!(received.json["data"]["content"]["text"], "hello");
    assert_eq!(received.json["data"]["direction"], "in");
}

#[wharf_testkit::dual_test]
async fn subscriptions_and_session_filters_apply(mut app: wharf_testkit::TestApp) {
    let mut receiver = TestReceiver::start().await;
    let (s1, _) = app.connected_session().await;
    let (s2, _) = app.connected_session().await;
    app.post("/v1/webhooks")
        .json(json!({"target_url": receiver.url("/"), "subscribed_events": ["message.sent"], "session_id": s2}))
        .expect(201)
        .await;
    app.send_text(&s1, TO, "not for this hook").await;
    let wanted = app.send_text(&s2, TO, "for this hook").await;
    let got = receiver.next().await;
    assert_eq!(got.json["type"], "message.sent");
    assert_eq!(got.json["message_id"], wanted.as_str());
    assert!(
        receiver.quiet_for(Duration::from_millis(500)).await,
        "nothing else"
    );
}

#[wharf_testkit::dual_test]
async fn failed_deliveries_are_retried_and_logged(mut app: wharf_testkit::TestApp) {
    let mut receiver = TestReceiver::start().await;
    receiver.fail_next(2);
    let hook = app
        .post("/v1/webhooks")
        .json(json!({"target_url": receiver.url("/flaky"), "subscribed_events": ["message.received"]}))
        .expect(201)
        .await;
    let hook_id = hook["id"].as_str().unwrap();
    let (s, _) = app.connected_session().await;
    app.post(&format!("/emulator/sessions/{s}/inbound"))
        .json(json!({"from": TO, "text": "retry me"}))
        .expect(202)
        .await;
    let first = receiver.next().await;
    let second = receiver.next().await;
    let third = receiver.next().await;
    assert_eq!(
        (first.answered, second.answered, third.answered),
        (500, 500, 204)
    );
    assert_eq!(
        first.header("webhook-id"),
        third.header("webhook-id"),
        "the same event id on every attempt"
    );

    let log = app
        .eventually(&format!("/v1/webhooks/{hook_id}/deliveries"), |d| {
            d["data"][0]["status"] == "succeeded"
        })
        .await;
    let delivery = &log["data"][0];
    assert_eq!(delivery["attempts"], 3);
    let attempts = delivery["attempt_log"].as_array().unwrap();
    assert_eq!(
        attempts
            .iter()
            .map(|a| a["status_code"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [500, 500, 204]
    );
    assert!(delivery["delivered_at"].is_string());

    // Redelivery sends it once more.
    let delivery_id = delivery["id"].as_str().unwrap();
    let again = app
        .post(&format!(
            "/v1/webhooks/{hook_id}/deliveries/{delivery_id}/redeliver"
        ))
        .expect(202)
        .await;
    assert_eq!(again["status"], "pending");
    let redelivered = receiver.next().await;
    assert_eq!(redelivered.header("webhook-id"), first.header("webhook-id"));
    app.post(&format!(
        "/v1/webhooks/{hook_id}/deliveries/dlv_00000000000000000000000000/redeliver"
    ))
    .expect(404)
    .await;
}

#[wharf_testkit::dual_test]
async fn a_dead_endpoint_gives_up_after_the_schedule(mut app: wharf_testkit::TestApp) {
    let hook = app
        .post("/v1/webhooks")
        .json(json!({"target_url": "http://127.0.0.1:9/nothing-listens", "subscribed_events": ["message.received"]}))
        .expect(201)
        .await;
    let hook_id = hook["id"].as_str().unwrap();
    let (s, _) = app.connected_session().await;
    app.post(&format!("/emulator/sessions/{s}/inbound"))
        .json(json!({"from": TO, "text": "into the void"}))
        .expect(202)
        .await;
    let log = app
        .eventually(&format!("/v1/webhooks/{hook_id}/deliveries"), |d| {
            d["data"][0]["status"] == "failed"
        })
        .await;
    // The test schedule has three retries: four attempts in all.
    assert_eq!(log["data"][0]["attempts"], 4);
    assert!(
        log["data"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("request failed")
    );
}

#[wharf_testkit::dual_test]
async fn a_slow_endpoint_does_not_delay_others(mut app: wharf_testkit::TestApp) {
    let mut slow = TestReceiver::start().await;
    slow.set_delay(Duration::from_secs(3)).await;
    let mut fast = TestReceiver::start().await;
    app.post("/v1/webhooks")
        .json(json!({"target_url": slow.url("/"), "subscribed_events": ["message.received"]}))
        .expect(201)
        .await;
    app.post("/v1/webhooks")
        .json(json!({"target_url": fast.url("/"), "subscribed_events": ["message.received"]}))
        .expect(201)
        .await;
    let (s, _) = app.connected_session().await;
    for i in 0..40 {
        app.post(&format!("/emulator/sessions/{s}/inbound"))
            .json(json!({"from": TO, "text": format!("n{i}")}))
            .expect(202)
            .await;
    }
    let started = std::time::Instant::now();
    for _ in 0..40 {
        fast.next().await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the fast endpoint got everything while the slow one stalled: {:?}",
        started.elapsed()
    );
    slow.next().await;
}

#[wharf_testkit::dual_test]
async fn an_inactive_endpoint_is_paused_and_resumes_with_its_backlog(
    mut app: wharf_testkit::TestApp,
) {
    let mut receiver = TestReceiver::start().await;
    let hook = app
        .post("/v1/webhooks")
        .json(json!({"target_url": receiver.url("/"), "subscribed_events": ["message.received"], "is_active": false}))
        .expect(201)
        .await;
    let (s, _) = app.connected_session().await;
    app.post(&format!("/emulator/sessions/{s}/inbound"))
        .json(json!({"from": TO, "text": "while paused"}))
        .expect(202)
        .await;
    assert!(
        receiver.quiet_for(Duration::from_millis(700)).await,
        "nothing while inactive"
    );
    app.patch(&format!("/v1/webhooks/{}", hook["id"].as_str().unwrap()))
        .json(json!({"is_active": true}))
        .expect(200)
        .await;
    let got = receiver.next().await;
    assert_eq!(got.json["data"]["content"]["text"], "while paused");
}

/// Instances claiming webhook deliveries at the same moment take different ones, without
/// waiting on one another. On PostgreSQL a claim waited for a concurrent claim of the same
/// rows, then found them taken and came back empty: 160 claims of 50 leased 2,050 of 4,000.
#[wharf_testkit::dual_test]
async fn concurrent_claims_of_deliveries_take_different_ones(mut app: wharf_testkit::TestApp) {
    let created = app
        .post("/v1/webhooks")
        .json(json!({"target_url": "https://hooks.example.com/claims"}))
        .expect(201)
        .await;
    let hook = created["id"].as_str().unwrap().to_owned();
    app.stop().await;
    // 4,000 deliveries due at the same moment (of events that do not exist: a claim leases
    // them and finds nothing to send).
    const DELIVERIES: i64 = 4_000;
    let (rows, digits) = crate::store::numbers(&app, DELIVERIES as u32);
    app.db()
        .execute(&format!(
            "INSERT INTO webhook_deliveries (id, webhook_id, account_id, event_seq, event_id, \
             event_type, status, attempts, next_attempt_at, created_at, updated_at) \
             SELECT 'dlv_' || {digits}, '{hook}', '{}', g, 'evt_' || {digits}, 'message.sent', \
             'pending', 0, 1, 1, 1 FROM {rows}",
            app.account_id
        ))
        .await;
    let now = wharf_core::time::now_millis();
    let claimers = (0..8).map(|_| {
        let store = app.store.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                store
                    .claim_deliveries(now, 50, DELIVERIES, 600_000, &[])
                    .await
                    .expect("a claim succeeds");
            }
        })
    });
    for claimer in claimers.collect::<Vec<_>>() {
        claimer.await.unwrap();
    }
    // 8 claimers × 20 claims × 50 is twice the deliveries: every one is leased, even if
    // some claims overlap.
    assert_eq!(
        app.db()
            .count("SELECT COUNT(*) FROM webhook_deliveries WHERE lease_until IS NOT NULL")
            .await,
        DELIVERIES
    );
}

/// Creates `n` endpoints, stops the server (nothing delivers behind the test), and queues
/// `per_hook` deliveries for each (of events that do not exist: the store records their
/// attempts all the same). Returns the endpoints and, for each, its deliveries' ids.
async fn endpoints_with_deliveries(
    app: &mut wharf_testkit::TestApp,
    n: usize,
    per_hook: u32,
) -> Vec<(wharf_core::WebhookId, Vec<wharf_core::DeliveryId>)> {
    let mut hooks = Vec::new();
    for i in 0..n {
        let created = app
            .post("/v1/webhooks")
            .json(json!({"target_url": format!("https://hooks.example.com/{i}")}))
            .expect(201)
            .await;
        hooks.push(created["id"].as_str().unwrap().to_owned());
    }
    app.stop().await;
    let (rows, digits) = crate::store::numbers(app, per_hook);
    let mut out = Vec::new();
    for (i, hook) in hooks.iter().enumerate() {
        let offset = i as u32 * 100_000;
        app.db()
            .execute(&format!(
                "INSERT INTO webhook_deliveries (id, webhook_id, account_id, event_seq, event_id, \
                 event_type, status, attempts, next_attempt_at, lease_until, created_at, updated_at) \
                 SELECT 'dlv_' || {digits}, '{hook}', '{}', g, 'evt_' || {digits}, 'message.sent', \
                 'pending', 0, 1, 9000000000000, 1, 1 \
                 FROM (SELECT g + {offset} AS g FROM {rows}) AS t",
                app.account_id
            ))
            .await;
        let ids = (1..=per_hook)
            .map(|g| {
                format!("dlv_{:026}", offset + g)
                    .parse()
                    .expect("a delivery id")
            })
            .collect();
        out.push((hook.parse().unwrap(), ids));
    }
    out
}

/// The result of one attempt of `delivery`, of `hook`'s, answered `status`.
fn attempt(
    hook: wharf_core::WebhookId,
    delivery: wharf_core::DeliveryId,
    status: u16,
) -> wharf_store::AttemptResult {
    let now = wharf_core::time::now_millis();
    wharf_store::AttemptResult {
        delivery_id: delivery,
        webhook_id: hook,
        attempted_at: now,
        status_code: Some(status),
        error: None,
        duration_ms: 3,
        retry_at: (status >= 300).then_some(now + 60_000),
    }
}

/// An endpoint deleted while one of its deliveries was being attempted: that result has no
/// delivery left to record, and the other results of the batch are recorded all the same.
/// Before, its attempt row failed its foreign key and rolled the whole batch back, so every
/// other endpoint's result was lost and its delivery sent again when the lease ran out.
#[wharf_testkit::dual_test]
async fn a_batch_of_results_is_recorded_when_an_endpoint_was_deleted_meanwhile(
    mut app: wharf_testkit::TestApp,
) {
    let hooks = endpoints_with_deliveries(&mut app, 2, 1).await;
    let (gone, gone_delivery) = (hooks[0].0, hooks[0].1[0]);
    let (kept, kept_delivery) = (hooks[1].0, hooks[1].1[0]);
    let account = app.account_id.parse().unwrap();
    assert!(app.store.delete_webhook(account, gone).await.unwrap());
    let now = wharf_core::time::now_millis();
    let results = [
        attempt(gone, gone_delivery, 500),
        attempt(kept, kept_delivery, 200),
    ];
    app.store
        .record_attempts(&results, now, None)
        .await
        .expect("the batch is recorded");
    let (delivery, attempts) = app
        .store
        .get_delivery(account, kept, kept_delivery)
        .await
        .unwrap()
        .expect("the kept endpoint's delivery");
    assert_eq!(delivery.status.as_str(), "succeeded");
    assert_eq!((delivery.attempts, attempts.len()), (1, 1));
    assert_eq!(
        app.db()
            .count("SELECT COUNT(*) FROM webhook_attempts")
            .await,
        1,
        "nothing is recorded for the deleted endpoint"
    );
}

/// Two instances recording results for the same endpoints at once: each takes the
/// endpoints' rows in the same order, so neither waits for the other in a cycle. Before, the
/// order was a hash map's (another in every batch), and PostgreSQL aborted one of two such
/// batches as a deadlock, losing its results.
#[wharf_testkit::dual_test]
async fn results_recorded_at_once_for_the_same_endpoints_do_not_deadlock(
    mut app: wharf_testkit::TestApp,
) {
    const ROUNDS: u32 = 30;
    let hooks = endpoints_with_deliveries(&mut app, 6, 2 * ROUNDS).await;
    for round in 0..ROUNDS as usize {
        // Every endpoint failing, so each success below updates its row.
        app.db()
            .execute("UPDATE webhooks SET failing_since = 1")
            .await;
        let batches = (0..2).map(|instance| {
            let results: Vec<_> = hooks
                .iter()
                .map(|(hook, ids)| attempt(*hook, ids[2 * round + instance], 200))
                .collect();
            let store = app.store.clone();
            tokio::spawn(async move {
                store
                    .record_attempts(&results, wharf_core::time::now_millis(), Some(1))
                    .await
            })
        });
        for batch in batches.collect::<Vec<_>>() {
            let recorded = batch.await.unwrap();
            assert!(recorded.is_ok(), "round {round}: {recorded:?}");
        }
    }
    assert_eq!(
        app.db()
            .count("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'succeeded'")
            .await,
        i64::from(6 * 2 * ROUNDS)
    );
}
