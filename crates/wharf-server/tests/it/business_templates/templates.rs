//! Templates on emulator sessions: Wharf's own, checked against Meta's rules, approved at
//! once; sending one renders it; tenancy.

use serde_json::json;
use wharf_core::message::{Content, MessageKind};
use wharf_server::http::{
    business::templates::{ZTemplateDeleted, ZTemplateUpdated},
    wapio::messages::SendAnswerView,
};

use super::*;

#[wharf_testkit::dual_test]
async fn templates_are_created_listed_read_updated_and_deleted(mut app: wharf_testkit::TestApp) {
    let (session, _) = app.connected_session().await;
    for (prefix, name) in [("", "order_confirmation"), ("/api", "order_shipped")] {
        let created: ZTemplateCreated = app
            .post(&format!("{prefix}{TEMPLATES}"))
            .json(simple(
                &session,
                name,
                "Your order {{1}} has been confirmed. Thanks!",
            ))
            .expect_view(200)
            .await;
        assert!(created.success);
        assert_eq!(created.template.name, name);
        assert_eq!(created.template.status, "APPROVED");
        assert_eq!(created.template.category, "UTILITY");
        assert_eq!(created.template.language, "en_US");
        assert!(
            created.template.id.starts_with("tpl_"),
            "{}",
            created.template.id
        );
    }
    let listed = list(&app, &session).await;
    assert!(listed.success);
    let names: Vec<_> = listed.templates.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["order_confirmation", "order_shipped"]);
    let one = get(&app, &session, "order_confirmation").await;
    assert_eq!(one.template.status, "APPROVED");
    assert_eq!(
        one.template.components,
        json!([{"type": "BODY", "text": "Your order {{1}} has been confirmed. Thanks!"}])
    );

    let updated: ZTemplateUpdated = app
        .patch(&format!("{TEMPLATES}/order_confirmation"))
        .json(json!({"accountId": session, "components": [
            {"type": "body", "text": "Updated: your order {{1}} is confirmed. Delivery by {{2}}."}]}))
        .expect_view(200)
        .await;
    assert!(updated.success);
    assert_eq!(updated.template.name, "order_confirmation");
    assert_eq!(updated.template.status, "APPROVED");
    let one = get(&app, &session, "order_confirmation").await;
    assert_eq!(
        one.template.components[0]["text"],
        "Updated: your order {{1}} is confirmed. Delivery by {{2}}."
    );
    assert_eq!(one.template.components[0]["type"], "BODY");

    let deleted: ZTemplateDeleted = app
        .delete(&format!(
            "/api{TEMPLATES}/order_confirmation?accountId={session}"
        ))
        .expect_view(200)
        .await;
    assert!(deleted.success);
    assert_eq!(
        deleted.message,
        "Template \"order_confirmation\" deleted successfully"
    );
    let gone = app
        .get(&format!(
            "{TEMPLATES}/order_confirmation?accountId={session}"
        ))
        .expect(404)
        .await;
    assert_eq!(gone["code"], "not_found", "{gone}");
    assert_eq!(gone["error"], "Template not found", "{gone}");
    app.delete(&format!(
        "{TEMPLATES}/order_confirmation?accountId={session}"
    ))
    .expect(404)
    .await;
    assert_eq!(list(&app, &session).await.templates.len(), 1);
}

#[wharf_testkit::dual_test]
async fn an_invalid_template_is_refused_naming_the_field(mut app: wharf_testkit::TestApp) {
    let (session, _) = app.connected_session().await;
    let base = simple(&session, "valid_name", "Hello {{1}}, welcome!");
    let with = |key: &str, value: serde_json::Value| {
        let mut b = base.clone();
        if value.is_null() {
            b.as_object_mut().unwrap().remove(key);
        } else {
            b[key] = value;
        }
        b
    };
    let body = |c: serde_json::Value| with("components", c);
    let cases = [
        (with("accountId", json!(null)), "accountId"),
        (with("name", json!(null)), "name"),
        (with("name", json!("Order-Update")), "name"),
        (with("name", json!("1order")), "name"),
        (with("name", json!(7)), "name"),
        (with("category", json!("PROMOTIONAL")), "category"),
        (with("category", json!(null)), "category"),
        (with("language", json!("english")), "language"),
        (with("components", json!(null)), "components"),
        (body(json!([])), "components"),
        (
            body(json!([{"type": "FOOTER", "text": "Bye"}])),
            "components",
        ),
        (
            body(json!([{"type": "BODY", "text": "Hi {{1}} and {{3}} ok"}])),
            "components[0].text",
        ),
        (
            body(json!([{"type": "BODY", "text": "Hi {{one}}"}])),
            "components[0].text",
        ),
        (
            body(json!([{"type": "BODY", "text": "x".repeat(1025)}])),
            "components[0].text",
        ),
        (
            body(json!([{"type": "BODY", "text": "Hi"}, {"type": "BODY", "text": "Hi"}])),
            "components[1].type",
        ),
        (
            body(json!([{"type": "BANNER", "text": "Hi"}])),
            "components[0].type",
        ),
        (
            body(
                json!([{"type": "HEADER", "format": "TEXT", "text": "x".repeat(61)}, {"type": "BODY", "text": "Hi"}]),
            ),
            "components[0].text",
        ),
        (
            body(json!([{"type": "HEADER", "format": "GIF"}, {"type": "BODY", "text": "Hi"}])),
            "components[0].format",
        ),
        (
            body(json!([{"type": "BODY", "text": "Hi"}, {"type": "FOOTER", "text": "Bye {{1}}"}])),
            "components[1].text",
        ),
        (
            body(
                json!([{"type": "BODY", "text": "Hi"}, {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "x".repeat(26)}]}]),
            ),
            "components[1].buttons[0].text",
        ),
        (
            body(
                json!([{"type": "BODY", "text": "Hi"}, {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Open"}]}]),
            ),
            "components[1].buttons[0].url",
        ),
        (
            body(
                json!([{"type": "BODY", "text": "Hi"}, {"type": "BUTTONS", "buttons": [{"type": "CALL", "text": "Call"}]}]),
            ),
            "components[1].buttons[0].type",
        ),
    ];
    for (body, param) in cases {
        let answer = app.post(TEMPLATES).json(body.clone()).expect(400).await;
        let error = zernio_error(&answer, "invalid_field_value", param);
        assert!(!error.is_empty(), "{body}");
    }
    assert!(
        list(&app, &session).await.templates.is_empty(),
        "nothing was stored"
    );
    // A name and language taken.
    create(&app, base.clone()).await;
    let again = app.post(TEMPLATES).json(base).expect(400).await;
    zernio_error(&again, "template_exists", "name");
    // PATCH checks the components as well.
    let answer = app
        .patch(&format!("{TEMPLATES}/valid_name"))
        .json(json!({"accountId": session, "components": [{"type": "FOOTER", "text": "x"}]}))
        .expect(400)
        .await;
    zernio_error(&answer, "invalid_field_value", "components");
    let answer = app
        .patch(&format!("{TEMPLATES}/valid_name"))
        .json(json!({"accountId": session}))
        .expect(400)
        .await;
    zernio_error(&answer, "invalid_field_value", "components");
    let answer = app.get(TEMPLATES).expect(400).await;
    zernio_error(&answer, "invalid_field_value", "accountId");
}

#[wharf_testkit::dual_test]
async fn another_accounts_session_is_an_unknown_whatsapp_account(mut app: wharf_testkit::TestApp) {
    let (session, _) = app.connected_session().await;
    create(&app, simple(&session, "ours", "Hello {{1}}, welcome!")).await;
    let (_, theirs) = app.store.create_account("intruder").await.unwrap();
    let unknown = "sess_00000000000000000000000000";
    let mut answers = Vec::new();
    for account in [session.as_str(), unknown, "not-a-session"] {
        let token = if account == session {
            theirs.raw.as_str()
        } else {
            app.pat.as_str()
        };
        for call in [
            app.get(&format!("{TEMPLATES}?accountId={account}")),
            app.get(&format!("{TEMPLATES}/ours?accountId={account}")),
            app.delete(&format!("{TEMPLATES}/ours?accountId={account}")),
            app.post(TEMPLATES)
                .json(simple(account, "theirs", "Hi {{1}}, hello")),
            app.patch(&format!("{TEMPLATES}/ours")).json(
                json!({"accountId": account, "components": [{"type": "BODY", "text": "Hi"}]}),
            ),
            app.post(BULK).json(
                json!({"accountId": account, "recipients": [{"phone": "+15550102030"}],
                "template": {"name": "ours", "language": "en_US"}}),
            ),
        ] {
            let answer = call.token(token).expect(404).await;
            assert_eq!(
                zernio_error(&answer, "not_found", "accountId"),
                "WhatsApp account not found"
            );
            answers.push(answer);
        }
    }
    assert!(
        answers.windows(2).all(|w| w[0] == w[1]),
        "one answer for all: {answers:?}"
    );
    // Nothing changed.
    assert_eq!(list(&app, &session).await.templates.len(), 1);
    assert_eq!(sent_count(&app, &session).await, 0);
}

#[wharf_testkit::dual_test]
async fn a_template_send_renders_into_the_emulators_message(mut app: wharf_testkit::TestApp) {
    let (session, _) = app.connected_session().await;
    create(&app, json!({"accountId": session, "name": "order_update", "category": "UTILITY", "language": "en_US",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Hi {{1}}"},
            {"type": "BODY", "text": "Your order {{1}} ships on {{2}}."},
            {"type": "FOOTER", "text": "Thanks for shopping"},
            {"type": "BUTTONS", "buttons": [
                {"type": "QUICK_REPLY", "text": "Track order"},
                {"type": "URL", "text": "Details", "url": "https://shop.example/o/{{1}}"}]}]})).await;
    create(
        &app,
        json!({"accountId": session, "name": "receipt", "category": "UTILITY", "language": "en_US",
        "components": [
            {"type": "HEADER", "format": "IMAGE"},
            {"type": "BODY", "text": "Receipt for {{1}} attached."}]}),
    )
    .await;
    let send = |template: serde_json::Value| {
        app.post("/api/send-message")
            .json(json!({"session_id": session, "to": "+15550102030",
            "kind": "template", "template": template}))
    };
    let answer: SendAnswerView = send(json!({"name": "order_update", "language": "en_US", "components": [
            {"type": "header", "parameters": [{"type": "text", "text": "Ana"}]},
            {"type": "body", "parameters": [{"type": "text", "text": "A-17"}, {"type": "text", "text": "May 2"}]},
            {"type": "button", "sub_type": "quick_reply", "index": "0", "parameters": [{"type": "payload", "payload": "TRACK"}]},
            {"type": "button", "sub_type": "url", "index": "1", "parameters": [{"type": "text", "text": "A-17"}]}]}))
        .expect_view(202)
        .await;
    // The Business API's bulk send takes the same components, Meta's string positions too.
    let bulk = app
        .post("/v1/whatsapp/bulk")
        .json(json!({"accountId": session, "recipients": [{"phone": "+15550102031"}],
            "template": {"name": "order_update", "language": "en_US", "components": [
            {"type": "header", "parameters": [{"type": "text", "text": "Ana"}]},
            {"type": "body", "parameters": [{"type": "text", "text": "A-17"}, {"type": "text", "text": "May 2"}]},
            {"type": "button", "sub_type": "quick_reply", "index": "0", "parameters": [{"type": "payload", "payload": "TRACK"}]},
            {"type": "button", "sub_type": "url", "index": "1", "parameters": [{"type": "text", "text": "A-17"}]}]}}))
        .expect(200)
        .await;
    assert_eq!(bulk["summary"]["sent"], 1, "{bulk}");
    let account = app.account_id.parse().unwrap();
    let row = app
        .store
        .get_message(account, answer.message_id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.kind, MessageKind::Buttons);
    match &row.content {
        Content::Buttons {
            body,
            header,
            footer,
            buttons,
        } => {
            assert_eq!(
                body,
                "Your order A-17 ships on May 2.\n\nDetails: https://shop.example/o/A-17"
            );
            assert_eq!(header.as_deref(), Some("Hi Ana"));
            assert_eq!(footer.as_deref(), Some("Thanks for shopping"));
            assert_eq!(buttons.len(), 1);
            assert_eq!(
                (buttons[0].id.as_str(), buttons[0].title.as_str()),
                ("TRACK", "Track order")
            );
        }
        other => panic!("not buttons: {other:?}"),
    }
    let answer: SendAnswerView = send(json!({"name": "receipt", "language": "en_US", "components": [
            {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://93.184.215.14/r.png"}}]},
            {"type": "body", "parameters": [{"type": "text", "text": "March"}]}]}))
        .expect_view(202)
        .await;
    let row = app
        .store
        .get_message(account, answer.message_id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    match &row.content {
        Content::Media {
            media,
            url,
            caption,
            ..
        } => {
            assert_eq!(*media, MessageKind::Image);
            assert_eq!(url, "https://93.184.215.14/r.png");
            assert_eq!(caption.as_deref(), Some("Receipt for March attached."));
        }
        other => panic!("not media: {other:?}"),
    }
    app.wait_status(&answer.message_id, "sent").await;
    let before = sent_count(&app, &session).await;
    // Refused before anything is queued, naming the template or the variable.
    for (template, code, param) in [
        (
            json!({"name": "nope", "language": "en_US"}),
            "template_not_found",
            "template.name",
        ),
        (
            json!({"name": "order_update", "language": "pt_BR"}),
            "template_not_found",
            "template.name",
        ),
        (
            json!({"name": "order_update", "language": "en_US", "components": [
            {"type": "header", "parameters": [{"type": "text", "text": "Ana"}]},
            {"type": "body", "parameters": [{"type": "text", "text": "A-17"}]}]}),
            "template_variable_missing",
            "template.variables.2",
        ),
        (
            json!({"name": "receipt", "language": "en_US", "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "March"}]}]}),
            "template_variable_missing",
            "template.components",
        ),
    ] {
        let answer = send(template).expect(422).await;
        assert_eq!(answer["reason_code"], code, "{answer}");
        assert!(answer["errors"].get(param).is_some(), "{param} in {answer}");
    }
    assert_eq!(sent_count(&app, &session).await, before);
}

#[wharf_testkit::dual_test]
async fn languages_and_listing_filters_pick_templates(mut app: wharf_testkit::TestApp) {
    let (session, _) = app.connected_session().await;
    create(
        &app,
        simple(&session, "order_update", "Your order {{1}} shipped."),
    )
    .await;
    let mut pt = simple(&session, "order_update", "Seu pedido {{1}} foi enviado.");
    pt["language"] = json!("pt_BR");
    create(&app, pt).await;
    create(&app, simple(&session, "welcome", "Welcome, {{1}}!")).await;
    let names = |list: ZTemplateList| {
        list.templates
            .into_iter()
            .map(|t| format!("{}:{}", t.name, t.language))
            .collect::<Vec<_>>()
    };
    let app = &app;
    let listed = |query: &str| {
        let path = format!("{TEMPLATES}?accountId={session}&{query}");
        async move { names(app.get(&path).expect_view(200).await) }
    };
    assert_eq!(
        listed("").await,
        ["order_update:en_US", "order_update:pt_BR", "welcome:en_US"]
    );
    assert_eq!(listed("language=pt_BR").await, ["order_update:pt_BR"]);
    assert_eq!(listed("name=order").await.len(), 2);
    assert_eq!(listed("status=approved").await.len(), 3);
    assert!(listed("status=PENDING").await.is_empty());
    let one: ZTemplateOne = app
        .get(&format!(
            "{TEMPLATES}/order_update?accountId={session}&language=pt_BR"
        ))
        .expect_view(200)
        .await;
    assert_eq!(
        one.template.components[0]["text"],
        "Seu pedido {{1}} foi enviado."
    );
    assert_eq!(
        get(app, &session, "order_update").await.template.language,
        "en_US"
    );
    app.get(&format!(
        "{TEMPLATES}/order_update?accountId={session}&language=fr"
    ))
    .expect(404)
    .await;
    app.patch(&format!("{TEMPLATES}/order_update"))
        .json(json!({"accountId": session, "language": "pt_BR",
            "components": [{"type": "BODY", "text": "Pedido {{1}} a caminho."}]}))
        .expect(200)
        .await;
    assert_eq!(
        get(app, &session, "order_update").await.template.components[0]["text"],
        "Your order {{1}} shipped."
    );
    app.delete(&format!(
        "{TEMPLATES}/order_update?accountId={session}&language=en_US"
    ))
    .expect(200)
    .await;
    let left = get(app, &session, "order_update").await.template;
    assert_eq!(left.language, "pt_BR");
    assert_eq!(left.components[0]["text"], "Pedido {{1}} a caminho.");
}
