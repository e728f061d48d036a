//! Graph's errors by class: retryable ones back off (honouring Retry-After), permanent ones
//! fail the message with Graph's code and message, auth errors disconnect the session.

use std::time::{Duration, Instant};

use serde_json::json;
use wharf_testkit::{assert_error, fakegraph::Failure};

use super::*;

#[wharf_testkit::dual_test]
async fn retryable_errors_back_off_and_honour_retry_after(mut app: wharf_testkit::TestApp) {
    let (graph, cloud) = connected(&app).await;
    user_writes(&graph, PNID, USER, "Hi").await;
    // Unknown / service errors: retried with the usual backoff.
    graph.fail_next(Failure::code(131_000).on_path("/messages"));
    let id = send(&app, &cloud.session, json!({"text": "one"})).await;
    let info = app.wait_status(&id, "sent").await;
    assert_eq!(info["attempts"], 2);

    // A throughput limit with Retry-After: not again before it has passed.
    graph.fail_next(Failure::code(130_429).retry_after(1).on_path("/messages"));
    let started = Instant::now();
    let id = send(&app, &cloud.session, json!({"text": "two"})).await;
    let info = app.wait_status(&id, "sent").await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retried after {:?}",
        started.elapsed()
    );
    assert_eq!(info["attempts"], 1, "a throttle is waiting, not an attempt");

    // The pair rate limit: that recipient waits 4^n seconds (1 s first).
    graph.fail_next(Failure::code(131_056).on_path("/messages"));
    let started = Instant::now();
    let id = send(&app, &cloud.session, json!({"text": "three"})).await;
    app.wait_status(&id, "sent").await;
    assert!(started.elapsed() >= Duration::from_secs(1));

    // Maintenance, as a 503 with its code: retried.
    graph.fail_next(Failure::code(131_057).on_path("/messages"));
    let id = send(&app, &cloud.session, json!({"text": "four"})).await;
    app.wait_status(&id, "sent").await;
    assert_eq!(graph.sends().len(), 4, "each message went out once");
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test]
async fn permanent_errors_fail_the_message_with_graph_code_and_message(
    mut app: wharf_testkit::TestApp,
) {
    let mut n = number();
    n.not_on_whatsapp = vec!["15550009999".into()];
    let (graph, cloud) = connected_with(&app, n, json!({})).await;
    approved_template(&graph, &cloud.number, "welcome", "Welcome").await;
    // Undeliverable: answered synchronously.
    let id = send(
        &app,
        &cloud.session,
        json!({"to": "+15550009999", "template": {"name": "welcome", "language": "en_US"}}),
    )
    .await;
    let info = app.wait_status(&id, "failed").await;
    let reason = info["failure_reason"].as_str().unwrap();
    assert!(
        reason.contains("Graph error 131026") && reason.contains("Message Undeliverable"),
        "{reason}"
    );
    assert_eq!(info["attempts"], 1, "not retried");
    // A template that does not exist is refused before anything is queued (Graph would
    // have failed it with 132001).
    let refused = app
        .post("/api/send-message")
        .json(
            json!({"session_id": cloud.session, "to": format!("+{USER}"),
            "template": {"name": "nope", "language": "en_US"}}),
        )
        .expect(422)
        .await;
    assert_error(&refused, "template_not_found");
    assert!(
        refused["errors"].get("template.name").is_some(),
        "{refused}"
    );
    // The window closed on Meta's side (its clock differs from ours).
    user_writes(&graph, PNID, USER, "Hi").await;
    graph.fail_next(Failure::code(131_047).on_path("/messages"));
    let id = send(&app, &cloud.session, json!({"text": "late"})).await;
    let info = app.wait_status(&id, "failed").await;
    assert!(
        info["failure_reason"]
            .as_str()
            .unwrap()
            .contains("Graph error 131047: Re-engagement message"),
        "{info}"
    );
    let failed = events(&app, "message.failed").await;
    assert_eq!(failed.len(), 2);
    assert!(
        failed[0]["data"]["failure_reason"]
            .as_str()
            .unwrap()
            .contains("131026")
    );
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test]
async fn an_expired_token_disconnects_the_session_and_keeps_its_messages(
    mut app: wharf_testkit::TestApp,
) {
    let (graph, cloud) = connected(&app).await;
    user_writes(&graph, PNID, USER, "Hi").await;
    graph.expire_token(PNID);
    let id = send(&app, &cloud.session, json!({"text": "after expiry"})).await;
    let path = format!("/v1/whatsapp-sessions/{}", cloud.session);
    let session = app
        .eventually(&path, |s| s["status"] == "disconnected")
        .await;
    let reason = session["status_reason"].as_str().unwrap();
    assert!(reason.contains("Graph error 190"), "{reason}");
    let statuses = events(&app, "session.status").await;
    let last = statuses.last().unwrap();
    assert_eq!(last["data"]["previous_status"], "connected");
    assert_eq!(last["data"]["status"], "disconnected");
    assert_eq!(last["data"]["reason"], reason);
    // The message waits for the session, not failed.
    let info = app
        .get(&format!("/api/messages/{id}/info"))
        .expect(200)
        .await;
    assert_eq!(info["status"], "queued");
    // A new token, and it goes out.
    let mut renewed = cloud.number.clone();
    renewed.access_token = "EAARENEWED".into();
    graph.add_number(renewed);
    app.patch(&path)
        .json(json!({"cloud": {"access_token": "EAARENEWED"}}))
        .expect(200)
        .await;
    let connected = app.post(&format!("{path}/connect")).expect(200).await;
    assert_eq!(connected["status"], "connected");
    app.wait_status(&id, "sent").await;
    assert_eq!(graph.sends().len(), 1);
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| {
    c.send_max_attempts = 2;
})]
async fn being_throttled_is_waiting_not_an_attempt(mut app: wharf_testkit::TestApp) {
    let (graph, cloud) = connected(&app).await;
    user_writes(&graph, PNID, USER, "Hi").await;
    // The number's throughput limit, five times over: more than the attempts allowed.
    graph.fail_next(
        Failure::code(130_429)
            .retry_after(0)
            .times(5)
            .on_path("/messages"),
    );
    let id = send(&app, &cloud.session, json!({"text": "patient"})).await;
    let info = app.wait_status(&id, "sent").await;
    assert_eq!(info["attempts"], 1, "throttles are not attempts");
    assert!(events(&app, "message.failed").await.is_empty());
    assert_eq!(graph.send_count(PNID), 1);
    graph.assert_no_rejections();
}
