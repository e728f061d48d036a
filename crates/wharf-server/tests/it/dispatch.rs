//! The dispatcher: its queue rule (a busy chat holds back only itself), throttling that is not
//! an attempt, and outcome writes that fail without sending anything twice.

use std::time::Duration;

use serde_json::{Value, json};
use wharf_core::{Jid, SessionId, message::MessageStatus, time::now_millis};
use wharf_store::{JobAction, OutboxJob};

#[wharf_testkit::dual_test]
async fn two_hundred_held_jobs_at_the_head_do_not_hide_other_chats(
    mut app: wharf_testkit::TestApp,
) {
    // Not connected: the dispatcher leaves the outbox alone.
    let created = app.create_session(json!({})).await;
    let session: SessionId = created["session"]["session_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let account = app.account_id.parse().unwrap();
    let busy = Jid::parse("15550100001@s.whatsapp.net").unwrap();
    let other = Jid::parse("15550100002@s.whatsapp.net").unwrap();
    let now = now_millis();
    let job = |chat: &Jid, available_at: i64| {
        let mut j = OutboxJob::new(
            account,
            session,
            chat.clone(),
            None,
            JobAction::MarkRead,
            json!({"message_ids": []}),
        );
        j.available_at = available_at;
        j
    };
    // The busy chat's head waits a minute; 250 later jobs of it are due but held by it.
    app.store
        .enqueue_job(&job(&busy, now + 60_000))
        .await
        .unwrap();
    for _ in 0..250 {
        app.store.enqueue_job(&job(&busy, now)).await.unwrap();
    }
    let go = job(&other, now);
    app.store.enqueue_job(&go).await.unwrap();
    let ready = app.store.ready_jobs(session, now, 200).await.unwrap();
    let ids: Vec<_> = ready.iter().map(|j| j.id).collect();
    assert_eq!(ids, vec![go.id], "only the other chat's job is ready");
    // Once the head is due, the busy chat goes first again, in order, up to the limit.
    let later = app
        .store
        .ready_jobs(session, now + 60_000, 200)
        .await
        .unwrap();
    assert_eq!(later.len(), 200);
    assert!(later.iter().all(|j| j.chat_jid == busy));
    assert!(later.windows(2).all(|w| w[0].id < w[1].id));
}

/// Waits until `done` holds (at most 10 s).
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The account's events of `kind` about `message`.
async fn events_about(app: &wharf_testkit::TestApp, kind: &str, message: &str) -> Vec<Value> {
    crate::cloud::events(app, kind)
        .await
        .into_iter()
        .filter(|e| e["data"]["message_id"] == message)
        .collect()
}

#[wharf_testkit::dual_test]
async fn a_send_whose_outcome_cannot_be_recorded_is_not_sent_again(
    mut app: wharf_testkit::TestApp,
) {
    use crate::cloud::{PNID, USER, connected, send, user_writes};
    let (graph, cloud) = connected(&app).await;
    user_writes(&graph, PNID, USER, "Hi").await;
    // Recording a send (the message becoming `sent`) fails until the trigger is gone.
    app.db()
        .refuse("no_sent", "UPDATE", "messages", "NEW.status = 'sent'")
        .await;
    let id = send(&app, &cloud.session, json!({"text": "once"})).await;
    until("the send reached Graph", || graph.send_count(PNID) == 1).await;
    // Long enough for several rounds of the dispatcher.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        graph.send_count(PNID),
        1,
        "a failed outcome write sent the message again"
    );
    let info = app.info(&id).await;
    assert_eq!(
        info.status,
        MessageStatus::Queued,
        "nothing was recorded yet"
    );
    // The write is retried until it lands, and then only once.
    app.db().allow("no_sent", "messages").await;
    app.wait_status(&id, "sent").await;
    let info = app.info(&id).await;
    assert_eq!(
        info.provider_msg_id.as_deref(),
        Some(graph.sends()[0].wamid.as_str())
    );
    assert_eq!(graph.send_count(PNID), 1);
    assert_eq!(events_about(&app, "message.sent", &id).await.len(), 1);
    graph.assert_no_rejections();
}

/// While an outcome cannot be written, the session sends nothing new: a database refusing
/// writes must not turn into many real sends that a restart would repeat.
#[wharf_testkit::dual_test]
async fn nothing_new_is_sent_while_an_outcome_waits_to_be_written(mut app: wharf_testkit::TestApp) {
    use crate::cloud::{PNID, USER, connected, send, user_writes};
    let (graph, cloud) = connected(&app).await;
    user_writes(&graph, PNID, USER, "Hi").await;
    app.db()
        .refuse("no_sent", "UPDATE", "messages", "NEW.status = 'sent'")
        .await;
    let first = send(&app, &cloud.session, json!({"text": "first"})).await;
    until("the first send reached Graph", || {
        graph.send_count(PNID) == 1
    })
    .await;
    let second = send(&app, &cloud.session, json!({"text": "second"})).await;
    // Long enough for several rounds of the dispatcher.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        graph.send_count(PNID),
        1,
        "a send went out while an outcome was waiting to be written"
    );
    app.db().allow("no_sent", "messages").await;
    app.wait_status(&first, "sent").await;
    app.wait_status(&second, "sent").await;
    assert_eq!(graph.send_count(PNID), 2);
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test]
async fn a_failure_whose_reason_cannot_be_written_is_not_sent_again(
    mut app: wharf_testkit::TestApp,
) {
    use crate::cloud::{PNID, USER, connected, send, user_writes};
    use wharf_testkit::fakegraph::Failure;
    let (graph, cloud) = connected(&app).await;
    user_writes(&graph, PNID, USER, "Hi").await;
    // Graph's message carries a NUL (PostgreSQL refuses it in text) and is long; the
    // database also refuses a reason over 500 characters (as a constraint would).
    let mut failure = Failure::code(131_026).on_path("/messages");
    failure.message = format!("bad\u{0}reason {}", "x".repeat(2000));
    graph.fail_next(failure);
    app.db()
        .refuse(
            "short_reasons",
            "UPDATE",
            "messages",
            "octet_length(NEW.failure_reason) > 500",
        )
        .await;
    let id = send(&app, &cloud.session, json!({"text": "undeliverable"})).await;
    app.wait_status(&id, "failed").await;
    let info = app.info(&id).await;
    let reason = info.failure_reason.as_deref().unwrap();
    assert!(reason.contains("Graph error 131026: bad"), "{reason}");
    assert!(
        !reason.contains('\u{0}') && reason.chars().count() <= 500,
        "{reason}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        graph
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/messages") && r.body["type"] == "text")
            .count(),
        1,
        "sent once"
    );
    assert_eq!(events_about(&app, "message.failed", &id).await.len(), 1);
}

#[wharf_testkit::dual_test]
async fn a_retry_whose_error_cannot_be_written_is_not_sent_at_once_again(
    mut app: wharf_testkit::TestApp,
) {
    use crate::cloud::{PNID, USER, connected, send, user_writes};
    use wharf_testkit::fakegraph::Failure;
    let (graph, cloud) = connected(&app).await;
    user_writes(&graph, PNID, USER, "Hi").await;
    // A retryable failure whose record (the job's next time) cannot be written: on SQLite
    // a send's job is its queued message, on PostgreSQL its outbox row.
    graph.fail_next(Failure::code(131_000).on_path("/messages"));
    let (table, attempts) = match app.db().backend() {
        wharf_testkit::Backend::Sqlite => ("messages", "NEW.send_attempts > OLD.send_attempts"),
        wharf_testkit::Backend::Postgres => ("outbox", "NEW.attempts > OLD.attempts"),
    };
    app.db().refuse("no_retry", "UPDATE", table, attempts).await;
    let id = send(&app, &cloud.session, json!({"text": "later"})).await;
    until("the first attempt reached Graph", || {
        graph.requests().iter().any(|r| r.body["type"] == "text")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tries = graph
        .requests()
        .iter()
        .filter(|r| r.body["type"] == "text")
        .count();
    assert_eq!(tries, 1, "the retry waits for its record");
    app.db().allow("no_retry", table).await;
    app.wait_status(&id, "sent").await;
    assert_eq!(app.info(&id).await.attempts, 2);
    assert_eq!(graph.send_count(PNID), 1);
}
