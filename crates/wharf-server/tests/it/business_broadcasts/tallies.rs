//! Counters moved as tallies (changes made without the broadcast's row lock, folded in by
//! the worker): additions side by side with a start among them, reads that add the tallies
//! not folded yet, and the folding itself, also after the broadcast ended.

use futures::future::join_all;

use super::*;

/// The broadcast's recipients by status, counted from the rows.
async fn rows_by_status(app: &TestApp, id: &str, status: &str) -> i64 {
    app.db()
        .count(&format!(
            "SELECT COUNT(*) FROM broadcast_recipients WHERE broadcast_id = '{id}' AND status = '{status}'"
        ))
        .await
}

/// The broadcast's tallies not folded yet.
async fn tallies_left(app: &TestApp, id: &str) -> i64 {
    app.db()
        .count(&format!(
            "SELECT COUNT(*) FROM broadcast_tallies WHERE broadcast_id = '{id}'"
        ))
        .await
}

/// Asserts every counter of `b` equals the rows in that status.
async fn assert_counters_are_the_rows(app: &TestApp, b: &ZBroadcast) {
    let rows = |s: &'static str| rows_by_status(app, &b.id, s);
    let (pending, sent, delivered, read) = (
        rows("pending").await,
        rows("sent").await,
        rows("delivered").await,
        rows("read").await,
    );
    let (failed, skipped, cancelled) = (
        rows("failed").await,
        rows("skipped").await,
        rows("cancelled").await,
    );
    assert_eq!(
        (
            b.pending_count,
            b.sent_count,
            b.delivered_count,
            b.read_count,
            b.failed_count,
            b.skipped_count,
            b.cancelled_count,
            b.recipient_count
        ),
        (
            pending,
            sent + delivered + read,
            delivered + read,
            read,
            failed,
            skipped,
            cancelled,
            pending + sent + delivered + read + failed + skipped + cancelled
        ),
        "counters of {b:?}"
    );
}

/// Twelve additions at once, and a send started among them: each addition is either counted
/// and sent in full or refused because the broadcast no longer is a draft. On PostgreSQL the
/// additions share the broadcast (positions from a sequence, counters as tallies) and the
/// start waits for those under way, so none lands behind the worker's cursor unsent.
#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| {
    c.emulator_delivered_after_ms = 5;
    c.emulator_read_after_ms = 10;
})]
async fn additions_side_by_side_with_a_start_among_them_skip_nobody(app: TestApp) {
    let session = setup(&app).await;
    let b = create(&app, &session, recipients(0, 1)).await;
    let path = format!("{BROADCASTS}/{}/recipients", b.id);
    let add = |i: usize| {
        let call = app
            .patch(&path)
            .json(json!({"recipients": recipients(1 + i * 40, 40)}));
        async move { call.send().await }
    };
    // The first half all land: the draft has them all.
    let first = join_all((0..6).map(add)).await;
    for answer in &first {
        assert_eq!(answer.status.as_u16(), 200, "{}", answer.text);
        assert_eq!(answer.json["added"], 40);
        assert_eq!(answer.json["duplicates"], 0);
    }
    let draft = get(&app, &b.id).await;
    assert_eq!((draft.recipient_count, draft.pending_count), (241, 241));
    // The second half races the start.
    let start = async {
        app.post(&format!("{BROADCASTS}/{}/send", b.id))
            .send()
            .await
    };
    let (rest, started) = tokio::join!(join_all((6..12).map(add)), start);
    assert_eq!(started.status.as_u16(), 200, "{}", started.text);
    let mut expected = 241;
    for answer in &rest {
        match answer.status.as_u16() {
            200 => {
                assert_eq!(answer.json["added"], 40);
                expected += 40;
            }
            400 => {
                zernio_error(&answer.json, "invalid_field_value", "status");
            }
            other => panic!("an addition answered {other}: {}", answer.text),
        }
    }
    let done = until(&app, &b.id, |b| {
        b.status == "completed" && b.read_count == b.recipient_count
    })
    .await;
    assert_eq!(done.recipient_count, expected);
    assert_eq!(
        done.sent_count, expected,
        "every counted recipient was sent"
    );
    assert_counters_are_the_rows(&app, &done).await;
    // The session sent exactly one message per recipient.
    let messages = app
        .db()
        .count(&format!(
            "SELECT COUNT(*) FROM messages WHERE session_id = '{session}' AND direction = 'out'"
        ))
        .await;
    assert_eq!(messages, expected);
}

/// While a broadcast sends, every read (the broadcast, the list, the recipients' summary)
/// adds the tallies not folded yet, so what it answers is the rows; once the receipts stop,
/// the worker folds the last tallies, also of a broadcast that already ended.
#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| {
    c.emulator_delivered_after_ms = 30;
    c.emulator_read_after_ms = 300;
})]
async fn reads_add_the_tallies_and_the_worker_folds_them_all(app: TestApp) {
    let session = setup(&app).await;
    let b = create(&app, &session, recipients(0, 300)).await;
    send(&app, &b.id).await;
    let mut seen_mid_way = false;
    loop {
        let now = get(&app, &b.id).await;
        let page = recipients_page(&app, &b.id, "limit=1").await;
        // Between the two reads more may have moved forward, never backward.
        assert!(
            page.summary.read >= now.read_count,
            "{now:?} then {:?}",
            page.summary
        );
        assert_eq!(page.summary.total, 300);
        if now.status == "completed" && now.read_count == 300 {
            break;
        }
        if now.delivered_count > 0 && now.read_count < 300 {
            seen_mid_way = true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(15)).await;
    }
    assert!(seen_mid_way, "the receipts were never seen part way");
    // The reads after the end (receipts came after `completed`) are folded too.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left = tallies_left(&app, &b.id).await;
        if left == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{left} tallies never folded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let folded = get(&app, &b.id).await;
    assert_eq!(
        (folded.sent_count, folded.read_count, folded.pending_count),
        (300, 300, 0)
    );
    assert_counters_are_the_rows(&app, &folded).await;
    let list: Value = app
        .get(&format!("{BROADCASTS}?accountId={session}"))
        .expect(200)
        .await;
    assert_eq!(list["broadcasts"][0]["readCount"], 300, "{list}");
}

/// A draft's tallies (what a PostgreSQL addition writes: rows past the broadcast's
/// `next_seq`, and their counts) are read until a change of state folds them, and the worker
/// then walks up to the last position they name. The worker leaves drafts alone, so what the
/// read shows here can only come from the tally.
#[wharf_testkit::dual_test]
async fn a_drafts_tally_is_read_until_its_start_folds_it(app: TestApp) {
    let session = setup(&app).await;
    let b = create(&app, &session, recipients(0, 2)).await;
    let mut values = Vec::new();
    for i in 0..3 {
        values.push(format!(
            "('{}', {}, '+1555030000{i}', 'pending', '{{\"1\": \"T{i}\"}}')",
            b.id,
            100 + i
        ));
    }
    app.db()
        .execute(&format!(
            "INSERT INTO broadcast_recipients (broadcast_id, seq, phone, status, variables) VALUES {}; \
             INSERT INTO broadcast_tallies (broadcast_id, recipients, last_seq, n_pending) \
             VALUES ('{}', 3, 102, 3)",
            values.join(", "),
            b.id
        ))
        .await;
    let draft = get(&app, &b.id).await;
    assert_eq!((draft.recipient_count, draft.pending_count), (5, 5));
    let page = recipients_page(&app, &b.id, "").await;
    assert_eq!((page.summary.total, page.recipients.len()), (5, 5));
    let answer = send(&app, &b.id).await;
    assert_eq!(
        (answer.status.as_str(), answer.sent, answer.total),
        ("completed", 5, 5)
    );
    let left = tallies_left(&app, &b.id).await;
    assert_eq!(left, 0, "the start folded the tally");
    assert_eq!(rows_by_status(&app, &b.id, "pending").await, 0);
}

/// The worker's window (four batches of the broadcast's messages waiting in the outbox) is
/// read from the counters: at a slow pace the outbox never holds more than the window and a
/// batch, and every recipient is still sent once.
#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| {
    c.broadcast_send_wait_ms = 0;
    c.broadcast_batch_size = 3;
    c.send_rate_emulator = std::num::NonZeroU32::new(20).unwrap();
})]
async fn the_outbox_holds_at_most_the_window(app: TestApp) {
    let session = setup(&app).await;
    let b = create(&app, &session, recipients(0, 40)).await;
    send(&app, &b.id).await;
    let id = session.parse().unwrap();
    let mut most = 0;
    loop {
        most = most.max(app.store.outbox_len(id).await.unwrap());
        let now = get(&app, &b.id).await;
        if now.status == "completed" {
            assert_eq!(now.sent_count, 40);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(most > 0, "the outbox was never seen holding anything");
    // A batch (3) is added while fewer than the window (12) wait: at most 11 + 3.
    assert!(
        most <= 14,
        "the outbox held {most} messages, the window is 12 and a batch 3"
    );
    let messages = app
        .db()
        .count(&format!(
            "SELECT COUNT(*) FROM messages WHERE session_id = '{session}' AND direction = 'out'"
        ))
        .await;
    assert_eq!(messages, 40);
}
