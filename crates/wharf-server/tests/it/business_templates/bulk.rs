//! `POST /v1/whatsapp/bulk` on an emulator session: per-recipient results, limits, the
//! template check before anything is queued, and idempotent retries.

use serde_json::json;
use wharf_core::message::Content;

use super::*;

fn recipients(n: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| json!({"phone": format!("+1555010{i:04}"), "variables": {"1": format!("R{i}")}}))
        .collect()
}

#[wharf_testkit::dual_test]
async fn each_recipient_succeeds_or_fails_alone(mut app: wharf_testkit::TestApp) {
    let (session, _) = app.connected_session().await;
    create(
        &app,
        simple(
            &session,
            "welcome_message",
            "Hello {{1}}, your code is {{2}}.",
        ),
    )
    .await;
    let answer = bulk(
        &app,
        json!({"accountId": session, "template": {"name": "welcome_message", "language": "en_US"},
        "recipients": [
            {"phone": "+15550102030", "variables": {"1": "John", "2": "A1"}},
            {"phone": "+1 555 CALL ME", "variables": {"1": "Jane", "2": "B2"}},
            {"phone": "+15550102031", "variables": {"1": "Ana"}},
            {"phone": "+15550102032", "variables": {"1": "Bo", "2": "C3"}}]}),
    )
    .await;
    assert!(answer.success);
    assert_eq!(
        (
            answer.summary.total,
            answer.summary.sent,
            answer.summary.failed
        ),
        (4, 2, 2)
    );
    let r = &answer.results;
    assert_eq!(r.len(), 4);
    assert!(
        r[0].success
            && r[0]
                .message_id
                .as_deref()
                .is_some_and(|m| m.starts_with("msg_"))
    );
    assert!(!r[1].success && r[1].message_id.is_none());
    assert!(
        r[1].error.as_deref().unwrap().contains("phone"),
        "{:?}",
        r[1].error
    );
    assert!(!r[2].success);
    assert!(
        r[2].error.as_deref().unwrap().contains("{{2}}"),
        "{:?}",
        r[2].error
    );
    assert!(r[3].success);
    assert_eq!(r[1].phone, "+1 555 CALL ME");
    // One durable message per successful recipient, rendered with its own variables.
    let account = app.account_id.parse().unwrap();
    let first = app
        .store
        .get_message(
            account,
            r[0].message_id.as_deref().unwrap().parse().unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first.content,
        Content::Text {
            text: "Hello John, your code is A1.".into()
        }
    );
    assert_eq!(sent_count(&app, &session).await, 2);
    app.wait_status(r[3].message_id.as_deref().unwrap(), "sent")
        .await;
}

#[wharf_testkit::dual_test]
async fn a_retried_bulk_call_sends_nothing_twice(mut app: wharf_testkit::TestApp) {
    let (session, _) = app.connected_session().await;
    create(
        &app,
        simple(&session, "welcome_message", "Hello {{1}}, welcome!"),
    )
    .await;
    let mut list = recipients(3);
    list.push(json!({"phone": "12"}));
    let body = json!({"accountId": session, "template": {"name": "welcome_message", "language": "en_US"},
        "recipients": list});
    let call = || {
        app.post("/api/v1/whatsapp/bulk")
            .header("Idempotency-Key", "bulk-1")
            .json(body.clone())
    };
    let first: ZBulkAnswer = call().expect_view(200).await;
    assert_eq!((first.summary.sent, first.summary.failed), (3, 1));
    let again: ZBulkAnswer = call().expect_view(200).await;
    assert_eq!(
        serde_json::to_value(&again).unwrap(),
        serde_json::to_value(&first).unwrap()
    );
    assert_eq!(sent_count(&app, &session).await, 3);
    // The same key with another body is a conflict, and sends nothing.
    let mut other = body.clone();
    other["recipients"] = json!(recipients(1));
    other["recipients"][0]["variables"]["1"] = json!("Someone else");
    app.post(BULK)
        .header("Idempotency-Key", "bulk-1")
        .json(other)
        .expect(409)
        .await;
    // Without a key, the same call sends again.
    bulk(&app, body).await;
    assert_eq!(sent_count(&app, &session).await, 6);
}

#[wharf_testkit::dual_test]
async fn a_bulk_call_is_checked_before_anything_is_queued(mut app: wharf_testkit::TestApp) {
    let (session, _) = app.connected_session().await;
    create(
        &app,
        simple(&session, "welcome_message", "Hello {{1}}, welcome!"),
    )
    .await;
    let template = json!({"name": "welcome_message", "language": "en_US"});
    let base = json!({"accountId": session, "template": template, "recipients": recipients(2)});
    let with = |key: &str, value: serde_json::Value| {
        let mut b = base.clone();
        if value.is_null() {
            b.as_object_mut().unwrap().remove(key);
        } else {
            b[key] = value;
        }
        b
    };
    for (body, param) in [
        (with("accountId", json!(null)), "accountId"),
        (with("recipients", json!(null)), "recipients"),
        (with("recipients", json!([])), "recipients"),
        (with("recipients", json!(recipients(101))), "recipients"),
        (
            with("recipients", json!([{"variables": {"1": "x"}}])),
            "recipients[0].phone",
        ),
        (
            with(
                "recipients",
                json!([{"phone": "+15550102030", "variables": {"1": 5}}]),
            ),
            "recipients[0].variables.1",
        ),
        (with("template", json!(null)), "template"),
        (
            with("template", json!({"language": "en_US"})),
            "template.name",
        ),
        (
            with("template", json!({"name": "welcome_message"})),
            "template.language",
        ),
        (
            with(
                "template",
                json!({"name": "welcome_message", "language": "en_US", "components": [{"type": "nope"}]}),
            ),
            "template.components[0].type",
        ),
        // Meta's rules for a button: its sub_type and its position (0 to 9) are required.
        (
            with(
                "template",
                json!({"name": "welcome_message", "language": "en_US", "components": [
                    {"type": "button", "index": 0, "parameters": [{"type": "payload", "payload": "x"}]}]}),
            ),
            "template.components[0].sub_type",
        ),
        (
            with(
                "template",
                json!({"name": "welcome_message", "language": "en_US", "components": [
                    {"type": "body", "parameters": [{"type": "text", "text": "x"}]},
                    {"type": "button", "sub_type": "quick_reply", "index": 12}]}),
            ),
            "template.components[1].index",
        ),
        (
            with(
                "template",
                json!({"name": "welcome_message", "language": "en_US", "components": {}}),
            ),
            "template.components",
        ),
    ] {
        let answer = app.post(BULK).json(body).expect(400).await;
        zernio_error(&answer, "invalid_field_value", param);
    }
    // Exactly 100 is fine.
    let hundred = bulk(&app, with("recipients", json!(recipients(100)))).await;
    assert_eq!(hundred.summary.sent, 100);
    let before = sent_count(&app, &session).await;
    for (template, code) in [
        (
            json!({"name": "unknown_one", "language": "en_US"}),
            "template_not_found",
        ),
        (
            json!({"name": "welcome_message", "language": "fr"}),
            "template_not_found",
        ),
    ] {
        let answer = app
            .post(BULK)
            .json(with("template", template))
            .expect(422)
            .await;
        zernio_error(&answer, code, "template.name");
    }
    assert_eq!(sent_count(&app, &session).await, before);
}

#[wharf_testkit::dual_test]
async fn a_contact_who_opted_out_is_skipped_and_told_why(mut app: wharf_testkit::TestApp) {
    let (session, _) = app.connected_session().await;
    create(&app, simple(&session, "welcome_message", "Hello {{1}}!")).await;
    // The CRM knows two of the three numbers; one of them opted out.
    for (phone, opted_in) in [("+15550107001", false), ("+15550107002", true)] {
        app.post("/v1/whatsapp/contacts")
            .json(json!({"accountId": session, "phone": phone, "name": "C", "isOptedIn": opted_in}))
            .expect(200)
            .await;
    }
    let answer = bulk(
        &app,
        json!({"accountId": session, "template": {"name": "welcome_message", "language": "en_US"},
        "recipients": [
            {"phone": "+1 555 010 7001", "variables": {"1": "Out"}},
            {"phone": "+15550107002", "variables": {"1": "In"}},
            {"phone": "+15550107003", "variables": {"1": "Unknown"}}]}),
    )
    .await;
    assert_eq!((answer.summary.sent, answer.summary.failed), (2, 1));
    let r = &answer.results;
    assert!(!r[0].success && r[0].message_id.is_none());
    assert!(
        r[0].error.as_deref().unwrap().contains("opted out"),
        "{:?}",
        r[0].error
    );
    assert!(r[1].success && r[2].success);
    assert_eq!(sent_count(&app, &session).await, 2);
}

/// Makes the database refuse to store a message to `phone_digits` (a trigger on both
/// backends): a failure of one recipient's send after earlier ones were committed.
async fn refuse_messages_to(app: &wharf_testkit::TestApp, phone_digits: &str) {
    let sql = match app.backend() {
        wharf_testkit::Backend::Sqlite => format!(
            "CREATE TRIGGER refuse_one BEFORE INSERT ON messages \
             WHEN NEW.chat_jid LIKE '{phone_digits}@%' \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
        ),
        wharf_testkit::Backend::Postgres => format!(
            "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.chat_jid LIKE '{phone_digits}@%' THEN RAISE EXCEPTION 'injected failure'; \
             END IF; RETURN NEW; END; $$; \
             CREATE TRIGGER refuse_one BEFORE INSERT ON messages FOR EACH ROW \
             EXECUTE FUNCTION refuse_one();"
        ),
    };
    app.db().execute(&sql).await;
}

async fn allow_messages_again(app: &wharf_testkit::TestApp) {
    let sql = match app.backend() {
        wharf_testkit::Backend::Sqlite => "DROP TRIGGER refuse_one",
        wharf_testkit::Backend::Postgres => "DROP TRIGGER refuse_one ON messages",
    };
    app.db().execute(sql).await;
}

#[wharf_testkit::dual_test]
async fn a_later_recipients_failure_does_not_abort_the_call(mut app: wharf_testkit::TestApp) {
    let (session, _) = app.connected_session().await;
    create(&app, simple(&session, "welcome_message", "Hello {{1}}!")).await;
    // The third recipient's send fails after the first two were committed.
    refuse_messages_to(&app, "15550100002").await;
    let body = json!({"accountId": session,
        "template": {"name": "welcome_message", "language": "en_US"},
        "recipients": recipients(4)});
    let call = || {
        app.post(BULK)
            .header("Idempotency-Key", "bulk-partial")
            .json(body.clone())
    };
    let first: ZBulkAnswer = call().expect_view(200).await;
    assert!(first.success);
    assert_eq!(
        (
            first.summary.total,
            first.summary.sent,
            first.summary.failed
        ),
        (4, 3, 1)
    );
    let r = &first.results;
    assert!(r[0].success && r[1].success && r[3].success, "{r:?}");
    assert!(!r[2].success && r[2].message_id.is_none(), "{r:?}");
    assert_eq!(r[2].phone, "+15550100002");
    assert!(
        r[2].error.as_deref().is_some_and(|e| !e.is_empty()),
        "{:?}",
        r[2].error
    );
    assert_eq!(sent_count(&app, &session).await, 3);
    // A retry with the key sends only what failed, and answers the others' first ids.
    allow_messages_again(&app).await;
    let again: ZBulkAnswer = call().expect_view(200).await;
    assert_eq!(
        (again.summary.sent, again.summary.failed),
        (4, 0),
        "{:?}",
        again.results
    );
    for i in [0, 1, 3] {
        assert_eq!(again.results[i].message_id, r[i].message_id);
    }
    assert_eq!(sent_count(&app, &session).await, 4);
}

#[wharf_testkit::dual_test]
async fn a_failure_before_anything_is_queued_fails_the_call(mut app: wharf_testkit::TestApp) {
    let (session, _) = app.connected_session().await;
    create(&app, simple(&session, "welcome_message", "Hello {{1}}!")).await;
    refuse_messages_to(&app, "15550100000").await;
    let body = json!({"accountId": session,
        "template": {"name": "welcome_message", "language": "en_US"},
        "recipients": recipients(2)});
    let answer = app.post(BULK).json(body).send().await;
    assert!(answer.status.is_server_error(), "{}", answer.text);
    assert!(answer.json["error"].is_string(), "{}", answer.text);
    assert_eq!(sent_count(&app, &session).await, 0);
}
