//! Retention of the event log (`events_retention_days`): old events and their webhook
//! deliveries go, by a job one instance at a time claims, and a cursor before them gets 410.

use std::time::Duration;

use serde_json::json;
use wharf_store::Pruned;
use wharf_testkit::{TestReceiver, assert_error};

const TO: &str = "+15550102030";
const DAY: Duration = Duration::from_secs(86_400);

#[wharf_testkit::dual_test]
async fn events_past_retention_go_and_an_older_cursor_gets_410(mut app: wharf_testkit::TestApp) {
    let receiver = TestReceiver::start().await;
    let hook = app
        .post("/v1/webhooks")
        .json(json!({"target_url": receiver.url("/hook")}))
        .expect(201)
        .await;
    let deliveries = format!("/v1/webhooks/{}/deliveries", hook["id"].as_str().unwrap());
    let (session, _) = app.connected_session().await;
    let old = app.send_text(&session, TO, "a month ago").await;
    app.wait_status(&old, "sent").await;
    // Every delivery done (none in flight when the clock jumps, which would expire its lease).
    app.eventually(&deliveries, |d| {
        let all = d["data"].as_array().unwrap();
        all.iter().any(|d| d["event_type"] == "message.sent")
            && all.iter().all(|d| d["status"] == "succeeded")
    })
    .await;
    let head = app.get("/v1/events?limit=100").expect(200).await["next_cursor"]
        .as_i64()
        .unwrap();
    assert!(head > 2, "{head}");
    app.get("/v1/events?after=1").expect(200).await;

    // A month on by the server's clock, the hourly job (due again) removes them. Events are
    // stamped by the system's clock, not the server's: these are made 6 s old for real, and
    // the clock moves 5 s short of 30 days, so what the test does next is not old yet.
    tokio::time::sleep(Duration::from_secs(6)).await;
    app.config.clock.advance(30 * DAY - Duration::from_secs(5));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let gone = loop {
        let answer = app.get("/v1/events?after=1").send().await;
        if answer.status == 410 {
            break answer.json;
        }
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert!(tokio::time::Instant::now() < deadline, "never removed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let error = assert_error(&gone, "cursor_expired");
    let oldest = gone["oldest_cursor"].as_i64().expect("the oldest cursor");
    assert!(oldest >= head, "{oldest} < {head}");
    assert!(
        gone["errors"]["after"][0]
            .as_str()
            .unwrap()
            .contains(&oldest.to_string()),
        "{error}"
    );
    // The stream refuses the same cursor, from the query or Last-Event-ID.
    let stream = app
        .get("/v1/events/stream")
        .header("last-event-id", "2")
        .send()
        .await;
    assert_eq!(stream.status, 410, "{}", stream.text);
    assert_eq!(stream.json["oldest_cursor"], oldest);
    // From the start, or from the oldest cursor, reads go on without a gap.
    let start = app.get("/v1/events").expect(200).await;
    assert_eq!(start["data"], json!([]));
    assert_eq!(start["next_cursor"], oldest);
    app.get(&format!("/v1/events?after={oldest}"))
        .expect(200)
        .await;
    // The deliveries of the removed events went with them; the message itself stays.
    app.eventually(&deliveries, |d| d["data"].as_array().unwrap().is_empty())
        .await;
    assert_eq!(
        app.info(&old).await.status,
        wharf_core::message::MessageStatus::Sent
    );

    let new = app.send_text(&session, TO, "today").await;
    app.wait_status(&new, "sent").await;
    let after = app
        .get(&format!("/v1/events?after={oldest}&limit=100"))
        .expect(200)
        .await;
    let first = &after["data"][0];
    assert_eq!(first["cursor"], oldest + 1, "{after}");
    assert!(
        after["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "message.sent" && e["message_id"] == new.as_str()),
        "{after}"
    );
}

#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| {
    // The server's own job stays off: the test plays two instances.
    c.events_retention_days = 0;
})]
async fn one_instance_holds_the_job_and_removes_in_bounded_batches(
    mut app: wharf_testkit::TestApp,
) {
    const JOB: &str = "events_retention";
    app.connected_session().await;
    let store = app.store.clone();
    let account = app.account_id.parse().unwrap();
    let head = store.event_cursor(account).await.unwrap();
    assert!(head >= 3, "{head}");
    let now = wharf_core::time::now_millis() + 1;

    let a = store
        .claim_job(JOB, "a", now, 60_000)
        .await
        .unwrap()
        .expect("a claims the due job");
    assert!(
        store
            .claim_job(JOB, "b", now, 60_000)
            .await
            .unwrap()
            .is_none(),
        "held by a"
    );
    // Nothing is older than a day ago.
    let day_ago = now - 86_400_000;
    assert_eq!(
        store
            .prune_events(account, day_ago, 2, &a, now, now + 60_000)
            .await
            .unwrap(),
        Pruned::Done
    );
    // Everything is older than `now`: two at a time, oldest first.
    assert_eq!(
        store
            .prune_events(account, now, 2, &a, now, now + 60_000)
            .await
            .unwrap(),
        Pruned::Some(2)
    );
    assert_eq!(store.events_pruned_through(account).await.unwrap(), 2);
    let rest = store.list_events(account, 0, 100).await.unwrap();
    assert_eq!(rest.first().map(|e| e.seq), Some(3));

    // a stalls past its (extended) lease: b takes the job over and a's next batch is refused.
    let later = now + 60_001;
    let b = store
        .claim_job(JOB, "b", later, 60_000)
        .await
        .unwrap()
        .expect("the lease ran out");
    assert_eq!(
        store
            .prune_events(account, now, 2, &a, later, later + 60_000)
            .await
            .unwrap(),
        Pruned::LeaseLost
    );
    assert_eq!(store.events_pruned_through(account).await.unwrap(), 2);
    loop {
        match store
            .prune_events(account, now, 2, &b, later, later + 60_000)
            .await
            .unwrap()
        {
            Pruned::Some(n) => assert!(n <= 2),
            Pruned::Done => break,
            Pruned::LeaseLost => panic!("b holds the job"),
        }
    }
    assert_eq!(store.events_pruned_through(account).await.unwrap(), head);
    assert!(store.list_events(account, 0, 100).await.unwrap().is_empty());

    let next_run = later + 3_600_000;
    assert!(!store.finish_job(&a, next_run).await.unwrap(), "a lost it");
    assert!(store.finish_job(&b, next_run).await.unwrap());
    assert!(
        store
            .claim_job(JOB, "a", later + 1, 60_000)
            .await
            .unwrap()
            .is_none(),
        "not due before the next run"
    );
    assert!(
        store
            .claim_job(JOB, "a", next_run, 60_000)
            .await
            .unwrap()
            .is_some()
    );
}

/// On PostgreSQL the outbox (a queue: each send inserts a row and deletes it soon after) is
/// vacuumed once sent jobs left more dead rows than the threshold, and not before; the dead
/// rows are then gone. (SQLite frees them at once: nothing to do there.)
#[tokio::test]
async fn the_outbox_is_vacuumed_once_sends_left_enough_dead_rows() {
    let Some(app) = wharf_testkit::TestApp::spawn(wharf_testkit::Backend::Postgres).await else {
        return;
    };
    let (session, _) = app.connected_session().await;
    let mut last = String::new();
    for i in 0..60 {
        last = app.send_text(&session, TO, &format!("m{i}")).await;
    }
    app.wait_status(&last, "sent").await;
    let stat = |column: &'static str| {
        let db = app.db();
        async move {
            db.count(&format!(
                "SELECT {column} FROM pg_stat_user_tables WHERE relname = 'outbox'"
            ))
            .await
        }
    };
    let before = stat("vacuum_count").await;
    assert!(
        !app.store.vacuum_outbox(1_000_000).await.unwrap(),
        "vacuumed below the threshold"
    );
    // The statistics lag up to a second behind the deletes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !app.store.vacuum_outbox(50).await.unwrap() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never vacuumed with {} dead rows",
            stat("n_dead_tup").await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stat("vacuum_count").await <= before || stat("n_dead_tup").await >= 50 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the vacuum left {} dead rows",
            stat("n_dead_tup").await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The hourly expiry of idempotency keys is a job claimed through the database: it runs at
/// start and is due again an hour later; while another instance holds it, this one leaves
/// it alone; once that lease lapses, this one runs it and removes the expired keys.
#[wharf_testkit::dual_test]
async fn the_idempotency_key_expiry_is_claimed_once_across_instances(app: wharf_testkit::TestApp) {
    let job = "SELECT COUNT(*) FROM scheduled_jobs WHERE name = 'idempotency_expiry'";
    let now = wharf_core::time::now_millis();
    // Run at start, finished, due in an hour.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app
        .db()
        .count(&format!(
            "{job} AND holder IS NULL AND next_run_at > {}",
            now + 3_000_000
        ))
        .await
        != 1
    {
        assert!(std::time::Instant::now() < deadline, "the job ran at start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A key two days old (past the default 24 hours), and the job due but held by a peer.
    app.db()
        .execute(&format!(
            "INSERT INTO idempotency_keys (account_id, key, request_hash, status_code, response, \
             created_at) VALUES ('{}', 'old', 'h', 202, '{{}}', {})",
            app.account_id,
            now - 2 * 86_400_000
        ))
        .await;
    let old_key = "SELECT COUNT(*) FROM idempotency_keys WHERE key = 'old'";
    app.db()
        .execute(&format!(
            "UPDATE scheduled_jobs SET next_run_at = 0, holder = 'peer', lease_until = {} \
             WHERE name = 'idempotency_expiry'",
            now + 600_000
        ))
        .await;
    // Two of the worker's looks (every 5 s) later, the peer's claim is still respected.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(app.db().count(old_key).await, 1);
    // The peer's lease lapses: this instance claims the job and the key goes.
    app.db()
        .execute("UPDATE scheduled_jobs SET lease_until = 1 WHERE name = 'idempotency_expiry'")
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(12);
    while app.db().count(old_key).await != 0 {
        assert!(std::time::Instant::now() < deadline, "the expired key goes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        app.db()
            .count(&format!("{job} AND holder IS NULL AND next_run_at > {now}"))
            .await,
        1
    );
}

/// On PostgreSQL the send path's tables are analyzed once they have rows and no statistics
/// (a new database; autovacuum off, or not yet round), and again only after enough changes.
/// Without statistics PostgreSQL planned the dispatcher's read of a session's next jobs as a
/// scan of the session's whole outbox and a sort (129 ms at 73,000 queued jobs, against
/// 0.6 ms once analyzed).
#[tokio::test]
async fn the_send_path_tables_are_analyzed_once_they_have_rows() {
    let Some(app) = wharf_testkit::TestApp::spawn(wharf_testkit::Backend::Postgres).await else {
        return;
    };
    let (session, _) = app.connected_session().await;
    let analyzed = |table: &'static str| {
        let db = app.db();
        async move {
            db.count(&format!(
                "SELECT analyze_count + autoanalyze_count FROM pg_stat_user_tables \
                 WHERE relname = '{table}'"
            ))
            .await
        }
    };
    let before = analyzed("messages").await;
    let mut last = String::new();
    for i in 0..30 {
        last = app.send_text(&session, TO, &format!("m{i}")).await;
    }
    app.wait_status(&last, "sent").await;
    assert_eq!(
        app.store.analyze_busy_tables(1_000_000).await.unwrap(),
        Vec::<&str>::new(),
        "analyzed below the threshold"
    );
    // The statistics lag behind the writes, each connection's on its own: a connection
    // that goes idle reports its counts within 10 s (PostgreSQL 15's idle interval).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut done = Vec::new();
    while !(done.contains(&"messages") && done.contains(&"outbox")) {
        if tokio::time::Instant::now() >= deadline {
            let db = app.db();
            panic!(
                "never analyzed: only {done:?}; messages: {} live, {} dead, {} changed, {} analyses",
                db.count("SELECT n_live_tup FROM pg_stat_user_tables WHERE relname = 'messages'")
                    .await,
                db.count("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'messages'")
                    .await,
                db.count(
                    "SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'messages'"
                )
                .await,
                analyzed("messages").await,
            );
        }
        done.extend(app.store.analyze_busy_tables(20).await.unwrap());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(analyzed("messages").await > before);
    // Analyzed now, and nothing changed since: not again.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(
        app.store.analyze_busy_tables(20).await.unwrap(),
        Vec::<&str>::new()
    );
}

/// The contacts list's tables are analyzed on PostgreSQL too: without statistics a page of a
/// big list filtered by opt-in was planned as a scan of the session's contacts and a sort
/// (950 ms a page at a million contacts, 0.6 ms once analyzed).
#[tokio::test]
async fn the_contacts_tables_are_analyzed_once_they_have_rows() {
    let Some(app) = wharf_testkit::TestApp::spawn(wharf_testkit::Backend::Postgres).await else {
        return;
    };
    let (session, _) = wharf_testkit::session_and_key(&app.create_session(json!({})).await);
    let contacts: Vec<_> = (0..40)
        .map(
            |i| json!({"phone": format!("+1650555{i:04}"), "name": format!("c{i}"), "tags": ["t"]}),
        )
        .collect();
    app.post("/v1/whatsapp/contacts/import")
        .json(json!({"accountId": session, "contacts": contacts}))
        .expect(200)
        .await;
    // As above: the counts reach the statistics once the writing connection reports them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut done = Vec::new();
    while !(done.contains(&"contacts") && done.contains(&"contact_labels")) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never analyzed: only {done:?}"
        );
        done.extend(app.store.analyze_busy_tables(20).await.unwrap());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let analyzed = app
        .db()
        .count(
            "SELECT COUNT(*) FROM pg_stat_user_tables WHERE relname IN ('contacts', 'contact_labels') \
             AND last_analyze IS NOT NULL",
        )
        .await;
    assert_eq!(analyzed, 2);
}

/// A delivery being attempted while retention removed its event, then told to try again,
/// can never be sent: its next claim removes it (as retention would have) instead of leasing
/// it again. Before, it stayed pending for good, claimed and dropped at every lease.
#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| {
    c.events_retention_days = 0;
})]
async fn a_delivery_whose_event_retention_removed_meanwhile_goes_at_its_next_claim(
    mut app: wharf_testkit::TestApp,
) {
    let created = app
        .post("/v1/webhooks")
        .json(serde_json::json!({"target_url": "https://hooks.example.com/late"}))
        .expect(201)
        .await;
    let hook: wharf_core::WebhookId = created["id"].as_str().unwrap().parse().unwrap();
    app.connected_session().await;
    app.stop().await;
    let store = app.store.clone();
    let account = app.account_id.parse().unwrap();
    // (The server may have made the deliveries and attempted them: two minutes on, any
    // first retry is due.)
    store.fan_out(100).await.unwrap();
    let now = wharf_core::time::now_millis() + 120_000;
    let jobs = store
        .claim_deliveries(now, 100, 100, 60_000, &[])
        .await
        .unwrap();
    let attempted = jobs
        .first()
        .expect("a delivery being attempted")
        .delivery
        .id;
    // Retention runs meanwhile: every event goes, the deliveries being attempted stay.
    let lease = store
        .claim_job("events_retention", "a", now, 60_000)
        .await
        .unwrap()
        .expect("the job");
    while let Pruned::Some(_) = store
        .prune_events(account, now, 100, &lease, now, now + 60_000)
        .await
        .unwrap()
    {}
    assert!(store.list_events(account, 0, 10).await.unwrap().is_empty());
    // The attempt failed: try again at once.
    let failed = wharf_store::AttemptResult {
        delivery_id: attempted,
        webhook_id: hook,
        attempted_at: now,
        status_code: Some(503),
        error: None,
        duration_ms: 5,
        retry_at: Some(now),
    };
    store.record_attempts(&[failed], now, None).await.unwrap();
    let again = store
        .claim_deliveries(now + 1, 100, 100, 60_000, &[])
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
    assert!(
        store
            .get_delivery(account, hook, attempted)
            .await
            .unwrap()
            .is_none(),
        "the delivery of a removed event is gone, not pending"
    );
}
