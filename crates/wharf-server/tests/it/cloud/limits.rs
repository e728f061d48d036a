//! The dispatcher's pace on the Cloud API: the per-number throughput limit (never more in any
//! one-second window than the number allows, as the fake records it) and the per-recipient
//! pair limit.

use std::time::Duration;

use serde_json::json;

use super::*;

/// Queues `n` templates from `session`, one to each of `n` recipients.
async fn templates_to_many(app: &TestApp, session: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let to = format!("+1555020{i:04}");
        ids.push(
            send(
                app,
                session,
                json!({"to": to, "template": {"name": "welcome", "language": "en_US"}}),
            )
            .await,
        );
    }
    ids
}

#[wharf_testkit::dual_test]
async fn a_number_capped_at_80_never_exceeds_80_sends_in_any_second(
    mut app: wharf_testkit::TestApp,
) {
    let mut n = number();
    // The fake enforces Meta's limit too: going over it would answer 130429.
    n.throughput_cap = Some(80);
    let graph = app.graph().clone();
    graph.add_number(n.clone());
    approved_template(&graph, &n, "welcome", "Welcome").await;
    let cloud = app.cloud_session(&graph, n, json!({})).await;
    // Queued while disconnected, so the whole backlog is there when sending starts.
    app.post(&format!(
        "/v1/whatsapp-sessions/{}/disconnect",
        cloud.session
    ))
    .expect(200)
    .await;
    let ids = templates_to_many(&app, &cloud.session, 240).await;
    let started = std::time::Instant::now();
    app.post(&format!("/v1/whatsapp-sessions/{}/connect", cloud.session))
        .expect(200)
        .await;
    wait_sends(&graph, ids.len()).await;
    let elapsed = started.elapsed();
    let peak = graph.max_sends_in_window(PNID, Duration::from_secs(1));
    assert!(peak <= 80, "{peak} sends in one second");
    assert!(
        peak >= 60,
        "the pace should come close to the limit, got {peak}"
    );
    assert!(
        elapsed >= Duration::from_secs(2),
        "240 sends at 80/s took {elapsed:?}"
    );
    for id in [&ids[0], &ids[ids.len() - 1]] {
        app.wait_status(id, "sent").await;
    }
    assert!(events(&app, "message.failed").await.is_empty());
    assert_eq!(
        graph.send_count(PNID),
        240,
        "no send was refused or repeated"
    );
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test]
async fn a_session_may_set_its_own_throughput(mut app: wharf_testkit::TestApp) {
    let graph = app.graph().clone();
    let n = number();
    graph.add_number(n.clone());
    approved_template(&graph, &n, "welcome", "Welcome").await;
    let cloud = app
        .cloud_session(&graph, n, json!({"throughput_per_second": 20}))
        .await;
    app.post(&format!(
        "/v1/whatsapp-sessions/{}/disconnect",
        cloud.session
    ))
    .expect(200)
    .await;
    let ids = templates_to_many(&app, &cloud.session, 50).await;
    app.post(&format!("/v1/whatsapp-sessions/{}/connect", cloud.session))
        .expect(200)
        .await;
    wait_sends(&graph, ids.len()).await;
    let peak = graph.max_sends_in_window(PNID, Duration::from_secs(1));
    assert!((15..=20).contains(&peak), "{peak} sends in one second");
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| {
    c.cloud_pair_burst = 3;
    c.cloud_pair_interval_ms = 400;
})]
async fn one_recipient_gets_a_burst_then_a_steady_pace(mut app: wharf_testkit::TestApp) {
    let (graph, cloud) = connected(&app).await;
    user_writes(&graph, PNID, USER, "Hi").await;
    app.post(&format!(
        "/v1/whatsapp-sessions/{}/disconnect",
        cloud.session
    ))
    .expect(200)
    .await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(send(&app, &cloud.session, json!({"text": format!("n{i}")})).await);
    }
    // Another recipient is not held up by the first one's pace.
    user_writes(&graph, PNID, "16505559999", "Hi").await;
    let other = send(
        &app,
        &cloud.session,
        json!({"to": "+16505559999", "text": "other"}),
    )
    .await;
    app.post(&format!("/v1/whatsapp-sessions/{}/connect", cloud.session))
        .expect(200)
        .await;
    let sends = wait_sends(&graph, 7).await;
    let to_user: Vec<_> = sends.iter().filter(|s| s.to == USER).collect();
    let texts: Vec<&str> = to_user
        .iter()
        .map(|s| s.body["text"]["body"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["n0", "n1", "n2", "n3", "n4", "n5"], "in order");
    // Three at once, then one per 400 ms at most.
    assert!(to_user[2].at.duration_since(to_user[0].at) < Duration::from_millis(300));
    for i in 3..6 {
        let gap = to_user[i].at.duration_since(to_user[0].at);
        assert!(
            gap >= Duration::from_millis(400 * (i as u64 - 2) - 20),
            "send {i} after {gap:?}"
        );
    }
    let other_at = sends.iter().find(|s| s.to == "16505559999").unwrap().at;
    assert!(other_at < to_user[5].at, "the other chat went on meanwhile");
    for id in ids.iter().chain([&other]) {
        let info = app.wait_status(id, "sent").await;
        assert_eq!(
            info["attempts"], 1,
            "waiting for the pace is not an attempt"
        );
    }
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| {
    c.cloud_pair_burst = 1;
    c.cloud_pair_interval_ms = 6000;
})]
async fn a_recipient_over_its_pair_limit_does_not_stall_the_others(
    mut app: wharf_testkit::TestApp,
) {
    let (graph, cloud) = connected(&app).await;
    user_writes(&graph, PNID, USER, "Hi").await;
    user_writes(&graph, PNID, "16505559999", "Hi").await;
    app.post(&format!(
        "/v1/whatsapp-sessions/{}/disconnect",
        cloud.session
    ))
    .expect(200)
    .await;
    // More than a batch of messages to one number: after the first, its pair budget holds
    // all of them for six seconds.
    for i in 0..210 {
        send(&app, &cloud.session, json!({"text": format!("n{i}")})).await;
    }
    let other = send(
        &app,
        &cloud.session,
        json!({"to": "+16505559999", "text": "other"}),
    )
    .await;
    let started = std::time::Instant::now();
    app.post(&format!("/v1/whatsapp-sessions/{}/connect", cloud.session))
        .expect(200)
        .await;
    app.wait_status(&other, "sent").await;
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_millis(3000),
        "the other number waited {waited:?}"
    );
    let to_user = graph.sends().iter().filter(|s| s.to == USER).count();
    assert_eq!(to_user, 1, "the first number is paced meanwhile");
    graph.assert_no_rejections();
}
