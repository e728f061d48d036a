//! Sending: the seed's final answer, per-recipient status following receipts, opt-out
//! skipping, events, the wait bound, schedules by the injected clock (also after a restart
//! that missed them), resuming after a restart mid-send with exact counts, and cancel.

use std::{collections::HashSet, time::Duration};

use serde_json::json;

use super::*;

/// How many messages the session has, all statuses.
async fn messages_of(app: &TestApp, session: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut before = String::new();
    loop {
        let page = app
            .get(&format!(
                "/api/whatsapp-sessions/{session}/message-logs?direction=out&limit=100{before}"
            ))
            .expect(200)
            .await;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        out.extend(data);
        match page["next_cursor"].as_str() {
            Some(next) => before = format!("&before_id={next}"),
            None => return out,
        }
    }
}

#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| {
    c.emulator_delivered_after_ms = 10;
    c.emulator_read_after_ms = 20;
})]
async fn a_send_ends_with_the_counts_and_recipients_follow_receipts(app: TestApp) {
    let session = setup(&app).await;
    // One opted-out contact of the CRM, one recipient without the variable.
    app.post("/v1/whatsapp/contacts")
        .json(json!({"accountId": session, "phone": "+15550200001", "name": "Out", "isOptedIn": false}))
        .expect(200)
        .await;
    let mut list = recipients(0, 3);
    list.push(json!({"phone": "+15550200003"}));
    let b = create(&app, &session, list).await;
    let answer = send(&app, &b.id).await;
    assert_eq!(
        (
            answer.success,
            answer.status.as_str(),
            answer.sent,
            answer.failed,
            answer.skipped,
            answer.total
        ),
        (true, "completed", 2, 1, 1, 4)
    );
    assert_eq!(answer.pending, 0);
    // Receipts move the recipients (and the counters) to read.
    let done = until(&app, &b.id, |b| b.read_count == 2).await;
    assert_eq!(
        (
            done.sent_count,
            done.delivered_count,
            done.failed_count,
            done.skipped_count
        ),
        (2, 2, 1, 1)
    );
    assert!(done.started_at.is_some() && done.completed_at.is_some());
    let page = recipients_page(&app, &b.id, "").await;
    let by_phone = |p: &str| {
        page.recipients
            .iter()
            .find(|r| r.phone == p)
            .unwrap()
            .clone()
    };
    let read = by_phone("+15550200000");
    assert_eq!(read.status, "read");
    assert!(read.sent_at.is_some() && read.delivered_at.is_some() && read.read_at.is_some());
    let message = read.message_id.clone().unwrap();
    let info = app.info(&message).await;
    assert_eq!(info.status, wharf_core::message::MessageStatus::Read);
    let skipped = by_phone("+15550200001");
    assert_eq!(skipped.status, "skipped");
    assert!(skipped.error.unwrap().contains("opted out"));
    assert!(skipped.message_id.is_none());
    let failed = by_phone("+15550200003");
    assert_eq!(failed.status, "failed");
    assert!(failed.error.unwrap().contains("{{1}}"));
    // The summary is the counters, and agrees with the rows.
    assert_eq!(
        (
            page.summary.total,
            page.summary.read,
            page.summary.failed,
            page.summary.skipped,
            page.summary.pending
        ),
        (4, 2, 1, 1, 0)
    );
    let reads = recipients_page(&app, &b.id, "status=read").await;
    assert_eq!(reads.recipients.len(), 2);
    assert_eq!(reads.pagination.total, 2);
    // Each message rendered with its recipient's variables.
    let account = app.account_id.parse().unwrap();
    let row = app
        .store
        .get_message(account, message.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.content,
        wharf_core::message::Content::Text {
            text: "Hi R0!".into()
        }
    );
    assert_eq!(messages_of(&app, &session).await.len(), 2);
    // Events: started, then completed (with the counts), in the log.
    assert_eq!(events(&app, &b.id, "broadcast.started").await.len(), 1);
    let completed = events(&app, &b.id, "broadcast.completed").await;
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0]["data"]["sent"], 2);
    assert_eq!(completed[0]["data"]["skipped"], 1);
}

#[wharf_testkit::dual_test]
async fn a_broadcast_where_every_message_fails_ends_failed(app: TestApp) {
    let session = setup(&app).await;
    let b = create(&app, &session, vec![json!({"phone": "+15550200000"})]).await;
    let answer = send(&app, &b.id).await;
    assert_eq!(
        (
            answer.success,
            answer.status.as_str(),
            answer.sent,
            answer.failed
        ),
        (false, "failed", 0, 1)
    );
    assert_eq!(events(&app, &b.id, "broadcast.failed").await.len(), 1);
}

#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| {
    c.broadcast_send_wait_ms = 0;
    c.send_rate_emulator = std::num::NonZeroU32::new(10).unwrap();
})]
async fn a_long_broadcast_answers_sending_and_goes_on(app: TestApp) {
    let session = setup(&app).await;
    let b = create(&app, &session, recipients(0, 30)).await;
    let answer = send(&app, &b.id).await;
    assert_eq!((answer.status.as_str(), answer.total), ("sending", 30));
    assert!(answer.sent < 30);
    let done = until(&app, &b.id, |b| b.status == "completed").await;
    assert_eq!(done.sent_count, 30);
    assert_eq!(messages_of(&app, &session).await.len(), 30);
    // Progress events, at most one a second.
    let progress = events(&app, &b.id, "broadcast.progress").await;
    let times: Vec<i64> = progress
        .iter()
        .map(|e| wharf_core::time::parse_rfc3339(e["data"]["at"].as_str().unwrap()).unwrap())
        .collect();
    assert!(times.len() >= 2, "{times:?}");
    assert!(times.windows(2).all(|w| w[1] - w[0] >= 1000), "{times:?}");
}

#[wharf_testkit::dual_test]
async fn a_schedule_fires_by_the_clock_also_after_a_restart_that_missed_it(mut app: TestApp) {
    let session = setup(&app).await;
    let first = create(&app, &session, recipients(0, 2)).await;
    let second = create(&app, &session, recipients(2, 2)).await;
    let in_an_hour = wharf_core::time::rfc3339(app.config.clock.now_millis() + 3_600_000);
    for b in [&first, &second] {
        app.post(&format!("{BROADCASTS}/{}/schedule", b.id))
            .json(json!({"scheduledAt": in_an_hour}))
            .expect(200)
            .await;
    }
    // Not before its time.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get(&app, &first.id).await.status, "scheduled");
    app.config.clock.advance(Duration::from_secs(3601));
    let done = until(&app, &first.id, |b| b.status == "completed").await;
    assert_eq!(done.sent_count, 2);
    until(&app, &second.id, |b| b.status == "completed").await;

    // Scheduled, then the server is down when the time comes: it starts on the next start.
    let third = create(&app, &session, recipients(4, 2)).await;
    let soon = wharf_core::time::rfc3339(app.config.clock.now_millis() + 60_000);
    app.post(&format!("{BROADCASTS}/{}/schedule", third.id))
        .json(json!({"scheduledAt": soon}))
        .expect(200)
        .await;
    app.stop().await;
    app.config.clock.advance(Duration::from_secs(120));
    app.start().await;
    // The restarted emulator session reconnects by itself; the messages wait for it.
    let done = until(&app, &third.id, |b| b.status == "completed").await;
    assert_eq!(done.sent_count, 2);
    assert_eq!(messages_of(&app, &session).await.len(), 6);
}

#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| {
    c.broadcast_send_wait_ms = 0;
    c.broadcast_batch_size = 3;
    c.send_rate_emulator = std::num::NonZeroU32::new(5).unwrap();
})]
async fn a_restart_mid_send_resumes_with_no_duplicate_and_no_gap(mut app: TestApp) {
    let session = setup(&app).await;
    let b = create(&app, &session, recipients(0, 40)).await;
    let answer = send(&app, &b.id).await;
    assert_eq!(answer.status, "sending");
    until(&app, &b.id, |b| b.sent_count >= 5).await;
    app.restart().await;
    let mid = get(&app, &b.id).await;
    assert!(mid.sent_count < 40, "the restart came too late: {mid:?}");
    let done = until(&app, &b.id, |b| b.status == "completed").await;
    assert_eq!(
        (done.sent_count, done.failed_count, done.pending_count),
        (40, 0, 0)
    );
    // Exactly one message per recipient.
    let messages = messages_of(&app, &session).await;
    assert_eq!(messages.len(), 40);
    let to: HashSet<String> = messages
        .iter()
        .map(|m| m["chat_jid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(to.len(), 40);
    let page = recipients_page(&app, &b.id, "limit=1000").await;
    let ids: HashSet<String> = page
        .recipients
        .iter()
        .map(|r| {
            r.message_id
                .clone()
                .expect("every recipient has its message")
        })
        .collect();
    assert_eq!(ids.len(), 40);
    assert!(page.recipients.iter().all(|r| r.status == "sent"));
}

#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| {
    c.broadcast_send_wait_ms = 0;
    c.broadcast_batch_size = 3;
    c.send_rate_emulator = std::num::NonZeroU32::new(5).unwrap();
})]
async fn a_cancel_while_sending_stops_within_a_second(app: TestApp) {
    let session = setup(&app).await;
    let b = create(&app, &session, recipients(0, 40)).await;
    send(&app, &b.id).await;
    until(&app, &b.id, |b| b.sent_count >= 3).await;
    let cancelled: ZBroadcastAnswer = app
        .post(&format!("{BROADCASTS}/{}/cancel", b.id))
        .expect_view(200)
        .await;
    assert_eq!(cancelled.broadcast.status, "cancelled");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let settled = get(&app, &b.id).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = get(&app, &b.id).await;
    assert_eq!(later.sent_count, settled.sent_count, "sending went on");
    assert!(later.sent_count < 40);
    assert_eq!(later.sent_count + later.cancelled_count, 40, "{later:?}");
    assert_eq!(later.pending_count, 0);
    // What was sent stays sent; nothing else left the outbox.
    let messages = messages_of(&app, &session).await;
    let live = messages.iter().filter(|m| m["status"] != "deleted").count();
    assert_eq!(live as i64, later.sent_count);
    let page = recipients_page(&app, &b.id, "status=cancelled&limit=1000").await;
    assert_eq!(page.recipients.len() as i64, later.cancelled_count);
    assert_eq!(events(&app, &b.id, "broadcast.cancelled").await.len(), 1);
}

/// Every recipient already has its message waiting in the outbox (one batch took them all):
/// the cancel withdraws those messages and the broadcast ends cancelled, not completed.
#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| {
    c.broadcast_send_wait_ms = 0;
    c.broadcast_batch_size = 100;
    c.send_rate_emulator = std::num::NonZeroU32::new(2).unwrap();
})]
async fn a_cancel_withdraws_the_messages_waiting_in_the_outbox(app: TestApp) {
    let session = setup(&app).await;
    let b = create(&app, &session, recipients(0, 12)).await;
    send(&app, &b.id).await;
    until(&app, &b.id, |b| b.sent_count >= 1).await;
    let cancelled: ZBroadcastAnswer = app
        .post(&format!("{BROADCASTS}/{}/cancel", b.id))
        .expect_view(200)
        .await;
    assert_eq!(cancelled.broadcast.status, "cancelled");
    assert_eq!(cancelled.broadcast.pending_count, 0, "{cancelled:?}");
    assert!(cancelled.broadcast.cancelled_count > 0, "{cancelled:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = get(&app, &b.id).await;
    assert_eq!(later.status, "cancelled");
    assert_eq!(later.sent_count + later.cancelled_count, 12, "{later:?}");
    let messages = messages_of(&app, &session).await;
    let live = messages.iter().filter(|m| m["status"] != "deleted").count();
    assert_eq!(
        live as i64, later.sent_count,
        "a withdrawn message went out"
    );
    assert_eq!(events(&app, &b.id, "broadcast.cancelled").await.len(), 1);
    assert!(events(&app, &b.id, "broadcast.completed").await.is_empty());
    // A second cancel is refused naming the status; nothing moves.
    let answer = app
        .post(&format!("{BROADCASTS}/{}/cancel", b.id))
        .expect(400)
        .await;
    assert!(answer.to_string().contains("cancelled"), "{answer}");
}

/// The session is deleted while its broadcast sends: the broadcast ends (nothing waits in
/// a deleted session's outbox), its recipients are all settled and none is left pending.
#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| {
    c.broadcast_send_wait_ms = 0;
    c.broadcast_batch_size = 3;
    c.send_rate_emulator = std::num::NonZeroU32::new(5).unwrap();
})]
async fn a_session_deleted_mid_send_ends_its_broadcast(app: TestApp) {
    let session = setup(&app).await;
    let b = create(&app, &session, recipients(0, 40)).await;
    send(&app, &b.id).await;
    until(&app, &b.id, |b| b.sent_count >= 3).await;
    app.delete(&format!("/v1/whatsapp-sessions/{session}"))
        .expect(202)
        .await;
    // It ends at once; its messages left in the outbox fail when the deletion runs.
    let done = until(&app, &b.id, |b| {
        !matches!(b.status.as_str(), "sending" | "scheduled") && b.pending_count == 0
    })
    .await;
    assert_eq!(done.status, "failed", "{done:?}");
    assert_eq!(done.pending_count, 0, "{done:?}");
    assert!(done.sent_count < 40, "{done:?}");
    assert_eq!(done.sent_count + done.failed_count, 40, "{done:?}");
    let page = recipients_page(&app, &b.id, "status=failed&limit=1000").await;
    assert_eq!(page.recipients.len() as i64, done.failed_count);
    assert!(
        page.recipients.iter().all(|r| r.error.is_some()),
        "{page:?}"
    );
}
