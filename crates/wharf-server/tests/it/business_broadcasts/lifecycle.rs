//! Drafts, recipients, schedules and every transition, allowed and refused; validation
//! naming the field; tenant isolation.

use serde_json::json;
use wharf_server::http::business::broadcasts::{
    ZAddedAnswer, ZBroadcastList, ZRemovedAnswer, ZScheduleAnswer, ZUnscheduleAnswer,
};

use super::*;

#[wharf_testkit::dual_test]
async fn a_draft_is_created_listed_read_and_deleted(app: TestApp) {
    let session = setup(&app).await;
    let mut list = recipients(0, 3);
    // The same phone written otherwise is one recipient.
    list.push(json!({"phone": "+1 555 020 0001"}));
    let b = create(&app, &session, list).await;
    assert!(b.id.starts_with("bc_"), "{}", b.id);
    assert_eq!(b.status, "draft");
    assert_eq!(b.recipient_count, 3);
    assert_eq!(
        (b.name.as_str(), b.description.as_deref()),
        ("Weekly", Some("News"))
    );
    assert_eq!(
        (b.template.name.as_str(), b.template.language.as_str()),
        ("promo", "en_US")
    );
    assert_eq!(b.account_id, session);
    let other = create(&app, &session, vec![]).await;
    assert_eq!(other.recipient_count, 0);

    // Newest first; filtered by status; paged.
    let all: ZBroadcastList = app
        .get(&format!("{BROADCASTS}?accountId={session}"))
        .expect_view(200)
        .await;
    let ids: Vec<&str> = all.broadcasts.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(ids, [other.id.as_str(), b.id.as_str()]);
    assert_eq!((all.pagination.total, all.pagination.has_more), (2, false));
    let page: ZBroadcastList = app
        .get(&format!("{BROADCASTS}?accountId={session}&limit=1&skip=1"))
        .expect_view(200)
        .await;
    assert_eq!(page.broadcasts.len(), 1);
    assert_eq!(page.broadcasts[0].id, b.id);
    assert_eq!((page.pagination.limit, page.pagination.skip), (1, 1));
    let sending: ZBroadcastList = app
        .get(&format!("{BROADCASTS}?accountId={session}&status=sending"))
        .expect_view(200)
        .await;
    assert!(sending.broadcasts.is_empty());
    assert_eq!(sending.pagination.total, 0);

    assert_eq!(get(&app, &b.id).await.recipient_count, 3);
    let deleted = app
        .delete(&format!("{BROADCASTS}/{}", b.id))
        .expect(200)
        .await;
    assert_eq!(deleted["message"], "Broadcast deleted successfully");
    app.get(&format!("{BROADCASTS}/{}", b.id)).expect(404).await;
    app.get(&format!("/api{BROADCASTS}/{}", other.id))
        .expect(200)
        .await;
}

#[wharf_testkit::dual_test]
async fn bad_input_is_a_400_naming_the_field(app: TestApp) {
    let session = setup(&app).await;
    let body = |patch: Value| {
        let mut b = json!({"accountId": session, "name": "N",
            "template": {"name": "promo", "language": "en_US"}});
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    for (patch, param) in [
        (json!({"name": null}), "name"),
        (json!({"name": "  "}), "name"),
        (json!({"template": null}), "template"),
        (json!({"template": {"name": "promo"}}), "template.language"),
        (json!({"accountId": null}), "accountId"),
        (
            json!({"recipients": [{"phone": "+15550100000"}, {"phone": "call me"}]}),
            "recipients[1].phone",
        ),
        (
            json!({"recipients": [{"phone": "+15550100000", "variables": {"1": 2}}]}),
            "recipients[0].variables.1",
        ),
        (json!({"recipients": recipients(0, 1001)}), "recipients"),
        (
            json!({"template": {"name": "promo", "language": "en_US", "components": [
                {"type": "button", "sub_type": "url"}]}}),
            "template.components[0].index",
        ),
    ] {
        let answer = app
            .post(BROADCASTS)
            .json(body(patch.clone()))
            .expect(400)
            .await;
        zernio_error(&answer, "invalid_field_value", param);
    }
    let unknown = app
        .post(BROADCASTS)
        .json(body(
            json!({"accountId": "sess_00000000000000000000000000"}),
        ))
        .expect(404)
        .await;
    assert_eq!(unknown["error"], "WhatsApp account not found");
    let b = create(&app, &session, recipients(0, 1)).await;
    // Zernio's `limit` has no maximum: one above Wharf's page reads as the largest page.
    for (list, largest) in [
        (format!("{BROADCASTS}?accountId={session}&limit=101"), 100),
        (format!("{BROADCASTS}/{}/recipients?limit=5000", b.id), 1000),
    ] {
        let page = app.get(&list).expect(200).await;
        assert_eq!(page["pagination"]["limit"], largest, "{list}: {page}");
    }
    for query in ["status=done", "limit=0", "limit=x", "skip=-1"] {
        let answer = app
            .get(&format!("{BROADCASTS}?accountId={session}&{query}"))
            .expect(400)
            .await;
        zernio_error(
            &answer,
            "invalid_field_value",
            query.split('=').next().unwrap(),
        );
    }
    let answer = app
        .get(&format!("{BROADCASTS}/{}/recipients?status=gone", b.id))
        .expect(400)
        .await;
    zernio_error(&answer, "invalid_field_value", "status");
    let schedule = |at: String| {
        app.post(&format!("{BROADCASTS}/{}/schedule", b.id))
            .json(json!({"scheduledAt": at}))
    };
    let now = wharf_core::time::now_millis();
    for at in [
        "tomorrow".to_owned(),
        wharf_core::time::rfc3339(now - 60_000),
        wharf_core::time::rfc3339(now + 31 * 24 * 3_600_000),
    ] {
        let answer = schedule(at).expect(400).await;
        zernio_error(&answer, "invalid_field_value", "scheduledAt");
    }
    let answer = app
        .patch(&format!("{BROADCASTS}/{}/recipients", b.id))
        .json(json!({"recipients": []}))
        .expect(400)
        .await;
    zernio_error(&answer, "invalid_field_value", "recipients");
    let answer = app
        .delete(&format!("{BROADCASTS}/{}/recipients", b.id))
        .json(json!({"phones": "+15550100000"}))
        .expect(400)
        .await;
    zernio_error(&answer, "invalid_field_value", "phones");
    // An unknown or malformed broadcast id is 404.
    for id in ["bc_00000000000000000000000000", "nope"] {
        app.get(&format!("{BROADCASTS}/{id}")).expect(404).await;
    }
}

#[wharf_testkit::dual_test]
async fn recipients_are_added_listed_and_removed(app: TestApp) {
    let session = setup(&app).await;
    let b = create(&app, &session, recipients(0, 2)).await;
    let mut more = recipients(1, 3);
    more.push(json!({"phone": "+15550209999"}));
    let added: ZAddedAnswer = app
        .patch(&format!("{BROADCASTS}/{}/recipients", b.id))
        .json(json!({"recipients": more}))
        .expect_view(200)
        .await;
    assert_eq!(
        (added.added, added.duplicates, added.total_recipients),
        (3, 1, 5)
    );
    let page = recipients_page(&app, &b.id, "limit=2&skip=1").await;
    let phones: Vec<&str> = page.recipients.iter().map(|r| r.phone.as_str()).collect();
    assert_eq!(phones, ["+15550200001", "+15550200002"]);
    assert_eq!(page.recipients[0].name.as_deref(), Some("R1"));
    assert_eq!(page.recipients[0].variables, Some(json!({"1": "R1"})));
    assert_eq!(page.recipients[0].status, "pending");
    assert_eq!((page.pagination.total, page.pagination.has_more), (5, true));
    assert_eq!((page.summary.total, page.summary.pending), (5, 5));
    let removed: ZRemovedAnswer = app
        .delete(&format!("{BROADCASTS}/{}/recipients", b.id))
        .json(json!({"phones": ["+1 555 020 0000", "+15550209999", "+15550208888"]}))
        .expect_view(200)
        .await;
    assert_eq!((removed.removed, removed.total_recipients), (2, 3));
    let b = get(&app, &b.id).await;
    assert_eq!((b.recipient_count, b.pending_count), (3, 3));
    let page = recipients_page(&app, &b.id, "status=pending").await;
    assert_eq!(page.recipients.len(), 3);
    assert_eq!(page.pagination.total, 3);
}

#[wharf_testkit::dual_test]
async fn every_transition_is_allowed_or_refused_naming_the_status(app: TestApp) {
    let session = setup(&app).await;
    let empty = create(&app, &session, vec![]).await;
    let path = |id: &str, tail: &str| format!("{BROADCASTS}/{id}{tail}");
    let at = wharf_core::time::rfc3339(wharf_core::time::now_millis() + 3_600_000);
    // No recipients: neither sent nor scheduled.
    let answer = app.post(&path(&empty.id, "/send")).expect(400).await;
    zernio_error(&answer, "invalid_field_value", "recipients");
    let answer = app
        .post(&path(&empty.id, "/schedule"))
        .json(json!({"scheduledAt": at}))
        .expect(400)
        .await;
    zernio_error(&answer, "invalid_field_value", "recipients");
    // A draft cannot be cancelled nor unscheduled.
    for (tail, delete) in [("/cancel", false), ("/schedule", true)] {
        let call = if delete {
            app.delete(&path(&empty.id, tail))
        } else {
            app.post(&path(&empty.id, tail))
        };
        let answer = call.expect(400).await;
        let error = zernio_error(&answer, "invalid_field_value", "status");
        assert!(error.contains("draft"), "{error}");
    }

    let b = create(&app, &session, recipients(0, 2)).await;
    let scheduled: ZScheduleAnswer = app
        .post(&path(&b.id, "/schedule"))
        .json(json!({"scheduledAt": at}))
        .expect_view(200)
        .await;
    assert_eq!(scheduled.broadcast.status, "scheduled");
    assert!(scheduled.broadcast.scheduled_at.is_some());
    // Scheduled: not scheduled again, no recipients changed, not deleted.
    let refusals = [
        app.post(&path(&b.id, "/schedule"))
            .json(json!({"scheduledAt": at}))
            .expect(400)
            .await,
        app.patch(&path(&b.id, "/recipients"))
            .json(json!({"recipients": recipients(5, 1)}))
            .expect(400)
            .await,
        app.delete(&path(&b.id, "/recipients"))
            .json(json!({"phones": ["+15550200000"]}))
            .expect(400)
            .await,
        app.delete(&path(&b.id, "")).expect(400).await,
    ];
    for answer in refusals {
        let error = zernio_error(&answer, "invalid_field_value", "status");
        assert!(error.contains("scheduled"), "{error}");
    }
    let back: ZUnscheduleAnswer = app.delete(&path(&b.id, "/schedule")).expect_view(200).await;
    assert_eq!(back.broadcast.status, "draft");
    assert_eq!(back.message, "Broadcast returned to draft status");
    assert_eq!(get(&app, &b.id).await.scheduled_at, None);

    // Scheduled → cancelled; a cancelled broadcast is not sent, and can be deleted.
    app.post(&path(&b.id, "/schedule"))
        .json(json!({"scheduledAt": at}))
        .expect(200)
        .await;
    let cancelled: ZBroadcastAnswer = app.post(&path(&b.id, "/cancel")).expect_view(200).await;
    assert_eq!(cancelled.broadcast.status, "cancelled");
    assert_eq!(cancelled.broadcast.cancelled_count, 2);
    let answer = app.post(&path(&b.id, "/send")).expect(400).await;
    assert!(zernio_error(&answer, "invalid_field_value", "status").contains("cancelled"));
    app.delete(&path(&b.id, "")).expect(200).await;

    // Draft → sending → completed; then nothing but reading.
    let c = create(&app, &session, recipients(0, 2)).await;
    let sent = send(&app, &c.id).await;
    assert_eq!(sent.status, "completed");
    for answer in [
        app.post(&path(&c.id, "/send")).expect(400).await,
        app.post(&path(&c.id, "/cancel")).expect(400).await,
        app.delete(&path(&c.id, "")).expect(400).await,
        app.post(&path(&c.id, "/schedule"))
            .json(json!({"scheduledAt": at}))
            .expect(400)
            .await,
    ] {
        let error = zernio_error(&answer, "invalid_field_value", "status");
        assert!(error.contains("completed"), "{error}");
    }
}

#[wharf_testkit::dual_test]
async fn another_account_sees_nothing(app: TestApp) {
    let session = setup(&app).await;
    let b = create(&app, &session, recipients(0, 1)).await;
    let (_, intruder) = app.store.create_account("intruder").await.unwrap();
    let t = intruder.raw.as_str();
    let path = |tail: &str| format!("{BROADCASTS}/{}{tail}", b.id);
    app.get(&path("")).token(t).expect(404).await;
    app.delete(&path("")).token(t).expect(404).await;
    app.post(&path("/send")).token(t).expect(404).await;
    app.post(&path("/cancel")).token(t).expect(404).await;
    app.get(&path("/recipients")).token(t).expect(404).await;
    app.patch(&path("/recipients"))
        .token(t)
        .json(json!({"recipients": recipients(3, 1)}))
        .expect(404)
        .await;
    let listed = app
        .get(&format!("{BROADCASTS}?accountId={session}"))
        .token(t)
        .expect(404)
        .await;
    assert_eq!(listed["error"], "WhatsApp account not found");
    app.post(BROADCASTS)
        .token(t)
        .json(json!({"accountId": session, "name": "N",
            "template": {"name": "promo", "language": "en_US"}}))
        .expect(404)
        .await;
    // Nothing changed.
    let b = get(&app, &b.id).await;
    assert_eq!((b.status.as_str(), b.recipient_count), ("draft", 1));
}
