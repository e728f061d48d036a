//! Webhook endpoints over time: signing secrets sealed at rest (and rows written plain before
//! sealing existed sealed at start), recovery of failed deliveries after an outage, and
//! endpoints disabled after failing for days.

use std::time::Duration;

use serde_json::{Value, json};
use wharf_testkit::{TestApp, TestReceiver, assert_error};

const TO: &str = "+15550102030";

/// The stored (database) form of endpoint `id`'s signing secret.
async fn stored_secret(app: &TestApp, id: &str) -> String {
    app.store
        .get_webhook(app.account_id.parse().unwrap(), id.parse().unwrap())
        .await
        .unwrap()
        .expect("the endpoint")
        .signing_secret
}

/// Every delivery of endpoint `id`, once `done` holds for the list.
async fn deliveries(app: &TestApp, id: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let page = app
        .eventually(&format!("/v1/webhooks/{id}/deliveries?limit=100"), |d| {
            d["data"].as_array().is_some_and(|a| done(a))
        })
        .await;
    page["data"].as_array().unwrap().clone()
}

/// A `message.sent` endpoint on `receiver`: the creation's answer (with the secret) and its id.
async fn sent_endpoint(app: &TestApp, receiver: &TestReceiver) -> (Value, String) {
    let hook = app
        .post("/v1/webhooks")
        .json(json!({"target_url": receiver.url("/hook"), "subscribed_events": ["message.sent"]}))
        .expect(201)
        .await;
    let id = hook["id"].as_str().unwrap().to_owned();
    (hook, id)
}

#[wharf_testkit::dual_test]
async fn signing_secrets_are_sealed_at_rest_and_still_sign(mut app: wharf_testkit::TestApp) {
    let mut receiver = TestReceiver::start().await;
    let (hook, id) = sent_endpoint(&app, &receiver).await;
    let secret = hook["signing_secret"].as_str().unwrap().to_owned();
    let key = secret.trim_start_matches("whsec_");
    let stored = stored_secret(&app, &id).await;
    assert!(stored.starts_with("v1:"), "sealed: {stored}");
    assert!(
        !stored.contains(key),
        "the secret is not readable in the database"
    );
    let (session, _) = app.connected_session().await;
    app.send_text(&session, TO, "hello").await;
    let got = receiver.next_of("message.sent").await;
    assert!(
        got.signature_valid(&secret),
        "signed with the secret shown at creation"
    );

    // A rotated secret is sealed too, and signs from then on.
    let rotated = app
        .post(&format!("/v1/webhooks/{id}/rotate-secret"))
        .expect(200)
        .await;
    let new_secret = rotated["signing_secret"].as_str().unwrap().to_owned();
    let stored = stored_secret(&app, &id).await;
    assert!(stored.starts_with("v1:") && !stored.contains(new_secret.trim_start_matches("whsec_")));
    app.send_text(&session, TO, "again").await;
    let got = receiver.next_of("message.sent").await;
    assert!(got.signature_valid(&new_secret));

    // A Kapso agent's endpoint: the same.
    let agent = app
        .post("/api/v1/agents")
        .api_key(&app.pat)
        .json(json!({"agent": {"name": "Bot", "webhook_url": receiver.url("/agent")}}))
        .expect(201)
        .await;
    let agent_secret = agent["data"]["webhook_secret"].as_str().unwrap().to_owned();
    let agent_id: wharf_core::AgentId = agent["data"]["id"].as_str().unwrap().parse().unwrap();
    let row = app
        .store
        .get_agent(app.account_id.parse().unwrap(), agent_id)
        .await
        .unwrap()
        .unwrap();
    let agent_hook = row.webhook_id.unwrap().to_string();
    let stored = stored_secret(&app, &agent_hook).await;
    assert!(
        stored.starts_with("v1:") && !stored.contains(agent_secret.trim_start_matches("whsec_")),
        "{stored}"
    );
}

#[wharf_testkit::dual_test]
async fn secrets_stored_plain_are_sealed_at_start(mut app: wharf_testkit::TestApp) {
    let mut receiver = TestReceiver::start().await;
    let (_, id) = sent_endpoint(&app, &receiver).await;
    // As a row written before secrets were sealed.
    let plain = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let sealed = stored_secret(&app, &id).await;
    assert!(
        app.store
            .replace_webhook_secret(id.parse().unwrap(), &sealed, plain)
            .await
            .unwrap()
    );
    app.restart().await;
    // Answering means started (the listener is bound first; serving begins after the
    // startup steps).
    app.get(&format!("/v1/webhooks/{id}")).expect(200).await;
    let stored = stored_secret(&app, &id).await;
    assert!(stored.starts_with("v1:"), "sealed at start: {stored}");
    assert!(!stored.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    // Idempotent: a second start leaves it as it is.
    app.restart().await;
    app.get(&format!("/v1/webhooks/{id}")).expect(200).await;
    assert_eq!(stored_secret(&app, &id).await, stored);
    let (session, _) = app.connected_session().await;
    app.send_text(&session, TO, "hello").await;
    let got = receiver.next_of("message.sent").await;
    assert!(
        got.signature_valid(plain),
        "still signs with the same secret"
    );
}

#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| {
    // One request at a time, so the order of arrival is the order of queueing.
    c.webhook_per_endpoint = 1;
})]
async fn recover_queues_failed_deliveries_since_a_time_in_order(mut app: wharf_testkit::TestApp) {
    let mut receiver = TestReceiver::start().await;
    let (_, id) = sent_endpoint(&app, &receiver).await;
    let (session, _) = app.connected_session().await;
    // The endpoint is down for the whole schedule (4 attempts each) of a first message…
    receiver.fail_next(4);
    let first = app.send_text(&session, TO, "m0").await;
    app.wait_status(&first, "sent").await;
    deliveries(&app, &id, |d| d.len() == 1 && d[0]["status"] == "failed").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let since = wharf_core::time::rfc3339(wharf_core::time::now_millis());
    tokio::time::sleep(Duration::from_millis(20)).await;
    // …and of three more, after `since`.
    receiver.fail_next(12);
    let mut sent = Vec::new();
    for i in 1..=3 {
        let m = app.send_text(&session, TO, &format!("m{i}")).await;
        app.wait_status(&m, "sent").await;
        sent.push(m);
    }
    deliveries(&app, &id, |d| {
        d.len() == 4 && d.iter().all(|x| x["status"] == "failed")
    })
    .await;
    while !receiver.quiet_for(Duration::from_millis(100)).await {}

    for (body, field) in [
        (json!({}), "since"),
        (json!({"since": "yesterday"}), "since"),
        (json!({"since": "2026-12-01"}), "since"),
        (json!({"since": 1700000000}), "since"),
    ] {
        let err = app
            .post(&format!("/v1/webhooks/{id}/recover"))
            .json(body)
            .expect(422)
            .await;
        assert!(
            assert_error(&err, "validation_error")[field].is_array(),
            "{err}"
        );
    }
    let (_, other) = app.store.create_account("other").await.unwrap();
    app.post(&format!("/v1/webhooks/{id}/recover"))
        .token(&other.raw)
        .json(json!({"since": since}))
        .expect(404)
        .await;

    let answer = app
        .post(&format!("/v1/webhooks/{id}/recover"))
        .json(json!({"since": since}))
        .expect(202)
        .await;
    assert_eq!(answer["queued"], 3, "{answer}");
    let mut order = Vec::new();
    for _ in 0..3 {
        let got = receiver.next_of("message.sent").await;
        order.push(got.json["message_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(order, sent, "delivered again in their original order");
    let all = deliveries(&app, &id, |d| {
        d.iter().filter(|x| x["status"] == "succeeded").count() == 3
    })
    .await;
    assert_eq!(
        all.iter().filter(|x| x["status"] == "failed").count(),
        1,
        "the one before `since` stays failed"
    );
    // Nothing failed since: nothing to queue.
    let again = app
        .post(&format!("/v1/webhooks/{id}/recover"))
        .json(json!({"since": since}))
        .expect(202)
        .await;
    assert_eq!(again["queued"], 0);
}

#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| {
    c.webhook_retry_delays_ms = vec![];
})]
async fn an_endpoint_failing_for_days_is_disabled_with_an_event(mut app: wharf_testkit::TestApp) {
    let mut receiver = TestReceiver::start().await;
    let (_, id) = sent_endpoint(&app, &receiver).await;
    let (session, _) = app.connected_session().await;
    receiver.fail_next(usize::MAX);
    app.send_text(&session, TO, "one").await;
    deliveries(&app, &id, |d| d.len() == 1 && d[0]["status"] == "failed").await;
    let failing = app.get(&format!("/v1/webhooks/{id}")).expect(200).await;
    assert!(failing["failing_since"].is_string(), "{failing}");
    assert_eq!(
        failing["is_active"], true,
        "one failure does not disable it"
    );
    // Four days of failures: still enabled.
    app.config.clock.advance(Duration::from_secs(4 * 86_400));
    app.send_text(&session, TO, "two").await;
    deliveries(&app, &id, |d| {
        d.len() == 2 && d.iter().all(|x| x["status"] == "failed")
    })
    .await;
    assert_eq!(
        app.get(&format!("/v1/webhooks/{id}")).expect(200).await["is_active"],
        true
    );
    // Past five days: disabled, with an event.
    app.config.clock.advance(Duration::from_secs(86_400 + 60));
    app.send_text(&session, TO, "three").await;
    let disabled = app
        .eventually(&format!("/v1/webhooks/{id}"), |w| w["is_active"] == false)
        .await;
    assert!(disabled["disabled_at"].is_string(), "{disabled}");
    let events = app.get("/v1/events?limit=100").expect(200).await;
    let event = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "webhook.disabled")
        .cloned()
        .unwrap_or_else(|| panic!("no webhook.disabled event: {events}"));
    assert_eq!(event["data"]["webhook_id"], id.as_str(), "{event}");
    // Nothing more is delivered while disabled.
    receiver.fail_next(0);
    while !receiver.quiet_for(Duration::from_millis(200)).await {}
    app.send_text(&session, TO, "four").await;
    assert!(receiver.quiet_for(Duration::from_millis(500)).await);
    // Enabled again through PATCH: the state is cleared and deliveries resume.
    let enabled = app
        .patch(&format!("/v1/webhooks/{id}"))
        .json(json!({"is_active": true}))
        .expect(200)
        .await;
    assert_eq!(enabled["is_active"], true);
    assert_eq!(enabled["disabled_at"], Value::Null);
    assert_eq!(enabled["failing_since"], Value::Null);
    app.send_text(&session, TO, "five").await;
    let got = receiver.next_of("message.sent").await;
    assert!(
        got.json["message_id"]
            .as_str()
            .is_some_and(|m| m.starts_with("msg_"))
    );
}

/// PostgreSQL without `secret_key` has no key: signing secrets are stored as written (and
/// still sign); once a key is configured, the next start seals them.
#[tokio::test]
async fn postgres_without_a_key_stores_secrets_plain_until_a_key_is_set() {
    let Some(mut app) = TestApp::spawn_with(wharf_testkit::Backend::Postgres, |c| {
        c.secret_key = None;
    })
    .await
    else {
        return;
    };
    let mut receiver = TestReceiver::start().await;
    let (hook, id) = sent_endpoint(&app, &receiver).await;
    let secret = hook["signing_secret"].as_str().unwrap().to_owned();
    assert_eq!(
        stored_secret(&app, &id).await,
        secret,
        "no key: stored as written"
    );
    let (session, _) = app.connected_session().await;
    app.send_text(&session, TO, "hello").await;
    assert!(
        receiver
            .next_of("message.sent")
            .await
            .signature_valid(&secret)
    );
    app.config.secret_key = Some("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=".into());
    app.restart().await;
    app.get(&format!("/v1/webhooks/{id}")).expect(200).await;
    let stored = stored_secret(&app, &id).await;
    assert!(
        stored.starts_with("v1:") && !stored.contains(secret.trim_start_matches("whsec_")),
        "{stored}"
    );
    app.send_text(&session, TO, "again").await;
    assert!(
        receiver
            .next_of("message.sent")
            .await
            .signature_valid(&secret)
    );
}

/// A server whose key cannot open the stored signing secrets (the key file lost with a
/// restore, `secret_key` changed) refuses to start, instead of failing every delivery until
/// the endpoints are disabled.
#[wharf_testkit::dual_test]
async fn a_key_that_cannot_open_the_stored_secrets_stops_the_start(app: wharf_testkit::TestApp) {
    app.post("/v1/webhooks")
        .json(
            json!({"target_url": "http://127.0.0.1:9/hook", "subscribed_events": ["message.sent"]}),
        )
        .expect(201)
        .await;
    let mut config = app.config.clone();
    // Another key: 32 zero bytes.
    config.secret_key = Some(format!("{}=", "A".repeat(43)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let started = tokio::time::timeout(
        Duration::from_secs(10),
        wharf_server::run_with_store(
            config,
            app.store.clone(),
            listener,
            tokio_util::sync::CancellationToken::new(),
        ),
    )
    .await
    .expect("the start is refused at once, not served");
    let error = format!("{:#}", started.expect_err("refused"));
    assert!(error.contains("signing secrets"), "{error}");
}

/// A delivery as the deliveries list shows it: the fields the retry schedule is read from.
#[derive(Debug, serde::Deserialize)]
struct ScheduledDelivery {
    status: String,
    attempts: i64,
    next_attempt_at: Option<String>,
    attempt_log: Vec<LoggedAttempt>,
}

#[derive(Debug, serde::Deserialize)]
struct LoggedAttempt {
    attempted_at: String,
}

impl ScheduledDelivery {
    /// Milliseconds from the start of the last attempt to the next one (the delay counts from
    /// the attempt's end, so the request's duration is on top).
    fn next_after_last_ms(&self) -> i64 {
        let next = self.next_attempt_at.as_deref().expect("a next attempt");
        let last = &self.attempt_log.last().expect("an attempt").attempted_at;
        wharf_core::time::parse_rfc3339(next).unwrap()
            - wharf_core::time::parse_rfc3339(last).unwrap()
    }
}

/// The one delivery of endpoint `id`, once it has had `attempts` attempts.
async fn scheduled(app: &TestApp, id: &str, attempts: i64) -> ScheduledDelivery {
    let list = deliveries(app, id, |d| d.len() == 1 && d[0]["attempts"] == attempts).await;
    let delivery: ScheduledDelivery = wharf_testkit::read_view("the delivery", list[0].clone());
    assert_eq!(delivery.attempts, attempts);
    assert_eq!(delivery.attempt_log.len() as i64, attempts, "{delivery:?}");
    delivery
}

#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| {
    // Retries an hour, then two hours, after a failure: far beyond the test's run unless the
    // server's clock moves.
    c.webhook_retry_delays_ms = vec![3_600_000, 7_200_000];
})]
async fn failed_deliveries_are_retried_on_the_servers_clock(mut app: wharf_testkit::TestApp) {
    let receiver = TestReceiver::start().await;
    let (_, id) = sent_endpoint(&app, &receiver).await;
    let (session, _) = app.connected_session().await;
    receiver.fail_next(usize::MAX);
    app.send_text(&session, TO, "hello").await;

    // The first attempt fails: the next is due an hour later, on the server's clock.
    let first = scheduled(&app, &id, 1).await;
    assert_eq!(first.status, "pending", "{first:?}");
    let wait = first.next_after_last_ms();
    assert!((3_600_000..3_610_000).contains(&wait), "{first:?}");

    // An hour passes (the clock moves; nothing sleeps): the second attempt, then two hours.
    app.config.clock.advance(Duration::from_secs(3_600));
    let second = scheduled(&app, &id, 2).await;
    assert_eq!(second.status, "pending", "{second:?}");
    let wait = second.next_after_last_ms();
    assert!((7_200_000..7_210_000).contains(&wait), "{second:?}");
    let gap = wharf_core::time::parse_rfc3339(&second.attempt_log[1].attempted_at).unwrap()
        - wharf_core::time::parse_rfc3339(&second.attempt_log[0].attempted_at).unwrap();
    assert!(
        gap >= 3_600_000,
        "attempts dated by the server's clock: {second:?}"
    );

    // Two more hours: the last attempt of the schedule, and the delivery fails for good.
    app.config.clock.advance(Duration::from_secs(7_200));
    let last = scheduled(&app, &id, 3).await;
    assert_eq!(last.status, "failed", "{last:?}");
    assert_eq!(last.next_attempt_at, None, "{last:?}");
}

#[wharf_testkit::dual_test]
async fn delivery_entry_points_of_the_store_see_only_the_accounts_own(
    mut app: wharf_testkit::TestApp,
) {
    let receiver = TestReceiver::start().await;
    let (_, id) = sent_endpoint(&app, &receiver).await;
    let (session, _) = app.connected_session().await;
    receiver.fail_next(usize::MAX);
    app.send_text(&session, TO, "hello").await;
    let list = deliveries(&app, &id, |d| d.len() == 1 && d[0]["status"] == "failed").await;
    let webhook: wharf_core::WebhookId = id.parse().unwrap();
    let delivery: wharf_core::DeliveryId = list[0]["id"].as_str().unwrap().parse().unwrap();
    let owner: wharf_core::AccountId = app.account_id.parse().unwrap();
    let other = wharf_core::AccountId::generate();
    let now = app.config.clock.now_millis();

    // Another account, given the endpoint's and the delivery's ids, finds nothing…
    let store = &app.store;
    assert!(
        store
            .list_deliveries(other, webhook, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .get_delivery(other, webhook, delivery)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .redeliver(other, webhook, delivery, now)
            .await
            .unwrap(),
        Some(false)
    );
    assert_eq!(
        store
            .recover_deliveries(other, webhook, 0, now)
            .await
            .unwrap(),
        0
    );
    let (row, _) = store
        .get_delivery(owner, webhook, delivery)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.status,
        wharf_store::DeliveryStatus::Failed,
        "left as it was"
    );

    // …and the owner finds it.
    assert_eq!(
        store
            .list_deliveries(owner, webhook, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .recover_deliveries(owner, webhook, 0, now)
            .await
            .unwrap(),
        1
    );
}
