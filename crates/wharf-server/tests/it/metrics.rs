//! `/metrics`: the Prometheus exposition parses, and the series move when work happens.

use std::collections::HashMap;

use serde_json::json;
use wharf_testkit::{TestApp, TestReceiver};

/// Parses the text exposition format: every sample line is `name{labels} value` with a
/// number, and every sample's family was declared with `# TYPE` before it. Returns the
/// samples by their full series text (`name{labels}`).
fn parse(text: &str) -> HashMap<String, f64> {
    let mut declared: Vec<String> = Vec::new();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap().to_owned();
            let kind = parts.next().unwrap();
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "unknown type: {line}"
            );
            declared.push(name);
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample: series value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "a metric name: {line}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| declared.iter().any(|d| d == f))
            })
            .unwrap_or(name);
        assert!(
            declared.iter().any(|d| d == family),
            "{name} was not declared with # TYPE"
        );
        if let Some(labels) = series.split_once('{').map(|(_, l)| l) {
            assert!(labels.ends_with('}'), "closed labels: {line}");
        }
        samples.insert(series.to_owned(), value);
    }
    samples
}

async fn scrape(app: &TestApp) -> HashMap<String, f64> {
    let answer = app.get("/metrics").anonymous().send().await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(
        answer
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    parse(&answer.text)
}

fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

#[wharf_testkit::dual_test]
async fn metrics_move_when_work_happens(app: TestApp) {
    let before = scrape(&app).await;
    let mut receiver = TestReceiver::start().await;
    app.post("/v1/webhooks")
        .json(json!({"target_url": receiver.url("/hook"), "subscribed_events": ["message.sent"]}))
        .expect(201)
        .await;
    let (session, _) = app.connected_session().await;
    let message = app.send_text(&session, "+15550102030", "hi").await;
    app.wait_status(&message, "sent").await;
    receiver.next_of("message.sent").await;
    // The attempt is counted once the worker has its result, and recorded after that.
    let mut after = scrape(&app).await;
    for _ in 0..50 {
        if value(
            &after,
            "wharf_webhook_attempts_total{outcome=\"delivered\"}",
        ) > value(
            &before,
            "wharf_webhook_attempts_total{outcome=\"delivered\"}",
        ) && value(&after, "wharf_webhook_deliveries{status=\"succeeded\"}") == 1.0
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        after = scrape(&app).await;
    }
    // Counters are process-wide (other tests run beside this one): they grow at least by
    // this test's work.
    for series in [
        "wharf_messages_accepted_total{engine=\"emulator\"}",
        "wharf_messages_sent_total{engine=\"emulator\"}",
        "wharf_dispatch_latency_seconds_count{engine=\"emulator\"}",
        "wharf_http_requests_total{method=\"POST\",route=\"/api/send-message\",status=\"202\"}",
        "wharf_http_request_duration_seconds_count{method=\"POST\",route=\"/api/send-message\"}",
        "wharf_webhook_attempts_total{outcome=\"delivered\"}",
        "wharf_webhook_delivery_duration_seconds_count",
        "wharf_db_pool_acquires_total",
    ] {
        assert!(
            value(&after, series) >= value(&before, series) + 1.0,
            "{series} did not move: {} -> {}",
            value(&before, series),
            value(&after, series)
        );
    }
    // The WAL's start-overs are a histogram (zero on PostgreSQL, and in a test too short to
    // fill a 4 MiB WAL).
    for series in [
        "wharf_sqlite_wal_restart_hold_seconds_bucket{le=\"0.001\"}",
        "wharf_sqlite_wal_restart_hold_seconds_bucket{le=\"+Inf\"}",
        "wharf_sqlite_wal_restart_hold_seconds_count",
        "wharf_sqlite_wal_restart_hold_seconds_sum",
    ] {
        assert!(after.contains_key(series), "{series} is exposed");
    }
    // Gauges are read from this test's database.
    assert_eq!(
        value(
            &after,
            "wharf_sessions{engine=\"emulator\",status=\"connected\"}"
        ),
        1.0
    );
    assert!(value(&after, "wharf_event_log_head") >= 3.0);
    assert_eq!(
        value(&after, "wharf_webhook_deliveries{status=\"succeeded\"}"),
        1.0
    );
    assert!(
        after
            .keys()
            .any(|k| k.starts_with("wharf_webhook_lag_events{webhook=\"whk_")),
        "the endpoint's lag is listed"
    );
    // The raw path never becomes a label: routes are templates.
    assert!(
        after.keys().all(|k| !k.contains(&session)),
        "a session id leaked into a label"
    );
    // A permanent failure counts as failed.
    app.post(&format!("/emulator/sessions/{session}/failures"))
        .json(json!({"mode": "permanent", "count": 1}))
        .expect(204)
        .await;
    let doomed = app.send_text(&session, "+15550102030", "doomed").await;
    app.wait_status(&doomed, "failed").await;
    let last = scrape(&app).await;
    let series = "wharf_messages_failed_total{engine=\"emulator\"}";
    assert!(value(&last, series) >= value(&after, series) + 1.0);
}

#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| c.metrics_token = Some("scrape-me".into()))]
async fn metrics_take_the_token_when_one_is_set(app: TestApp) {
    let anonymous = app.get("/metrics").anonymous().send().await;
    assert_eq!(anonymous.status, 401);
    let wrong = app.get("/metrics").token("nope").send().await;
    assert_eq!(wrong.status, 401);
    // A tenant's PAT is not the operator's token.
    let pat = app.get("/metrics").send().await;
    assert_eq!(pat.status, 401);
    let right = app.get("/metrics").token("scrape-me").send().await;
    assert_eq!(right.status, 200);
    assert!(right.text.contains("# TYPE wharf_sessions gauge"));
    // The scheme is case-insensitive (RFC 9110).
    let lower = app
        .get("/metrics")
        .anonymous()
        .header("authorization", "bearer scrape-me")
        .send()
        .await;
    assert_eq!(lower.status, 200);
    // A made-up method name adds no series of its own.
    let odd = reqwest::Method::from_bytes(b"FOO123").unwrap();
    app.call(odd, "/healthz").anonymous().send().await;
    let text = app.get("/metrics").token("scrape-me").send().await.text;
    assert!(
        !text.contains("FOO123"),
        "a client-chosen method became a label"
    );
    assert!(text.contains("method=\"other\""));
}

/// The sum of `wharf_broadcast_recipients` series of broadcasts in `broadcast_status`
/// whose own status is one of `statuses`.
fn recipients(samples: &HashMap<String, f64>, broadcast_status: &str, statuses: &[&str]) -> f64 {
    statuses
        .iter()
        .map(|s| {
            value(
                samples,
                &format!(
                    "wharf_broadcast_recipients{{broadcast_status=\"{broadcast_status}\",status=\"{s}\"}}"
                ),
            )
        })
        .sum()
}

#[wharf_testkit::dual_test]
async fn broadcast_progress_shows_in_the_metrics(app: TestApp) {
    use crate::business_broadcasts::{create, recipients as people, send, setup, until};
    let before = scrape(&app).await;
    assert_eq!(value(&before, "wharf_broadcasts{status=\"draft\"}"), 0.0);
    let session = setup(&app).await;
    let draft = create(&app, &session, people(0, 5)).await;
    let drafted = scrape(&app).await;
    assert_eq!(value(&drafted, "wharf_broadcasts{status=\"draft\"}"), 1.0);
    assert_eq!(recipients(&drafted, "draft", &["pending"]), 5.0);
    send(&app, &draft.id).await;
    until(&app, &draft.id, |b| b.status == "completed").await;
    let done = scrape(&app).await;
    assert_eq!(value(&done, "wharf_broadcasts{status=\"draft\"}"), 0.0);
    assert_eq!(value(&done, "wharf_broadcasts{status=\"completed\"}"), 1.0);
    assert_eq!(
        recipients(&done, "completed", &["sent", "delivered", "read"]),
        5.0
    );
    assert_eq!(recipients(&done, "completed", &["pending", "failed"]), 0.0);
}

/// Retention may remove every event of an account idle for its whole span: the event log's
/// head and an endpoint's lag come from the accounts' own cursors, so the head never goes
/// back and the lag never below zero. Both were read from the events kept.
#[wharf_testkit::dual_test]
async fn the_event_head_and_an_endpoints_lag_outlive_retention(mut app: TestApp) {
    let created = app
        .post("/v1/webhooks")
        .json(json!({"target_url": "https://hooks.example.com/lag"}))
        .expect(201)
        .await;
    let lag = format!(
        "wharf_webhook_lag_events{{webhook=\"{}\"}}",
        created["id"].as_str().unwrap()
    );
    app.connected_session().await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let before = loop {
        let samples = scrape(&app).await;
        if samples.contains_key(&lag) && value(&samples, &lag) == 0.0 {
            break samples;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the endpoint caught up: {:?}",
            samples.get(&lag)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let head = value(&before, "wharf_event_log_head");
    assert!(head >= 3.0, "{head}");
    // As retention leaves an account idle past it.
    app.db().execute("DELETE FROM events").await;
    let after = scrape(&app).await;
    assert_eq!(value(&after, "wharf_event_log_head"), head);
    assert_eq!(after.get(&lag), Some(&0.0), "{lag}");
}
