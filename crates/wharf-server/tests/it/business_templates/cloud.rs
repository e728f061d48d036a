//! Templates on a cloud session go through Graph (the fake), and their review status follows
//! Meta's `message_template_status_update` webhook.

use serde_json::json;
use wharf_server::http::business::templates::{ZTemplateDeleted, ZTemplateUpdated};

use super::*;
use crate::cloud::{USER, WABA, connected, wait_sends};

#[wharf_testkit::dual_test]
async fn cloud_templates_go_through_graph_and_follow_the_review_webhook(
    mut app: wharf_testkit::TestApp,
) {
    let (graph, cloud) = connected(&app).await;
    let session = cloud.session.clone();
    let created = create(&app, json!({"accountId": session, "name": "order_confirmation",
        "category": "UTILITY", "language": "en_US", "components": [
            {"type": "body", "text": "Your order {{1}} has been confirmed. Expected delivery: {{2}}",
             "example": {"body_text": [["ORD-12345", "March 31"]]}}]})).await;
    assert_eq!(created.template.status, "PENDING");
    let meta = graph
        .template(WABA, "order_confirmation")
        .expect("the fake has it");
    assert_eq!(created.template.id, meta["id"].as_str().unwrap());
    let listed = list(&app, &session).await;
    assert_eq!(listed.templates.len(), 1);
    assert_eq!(listed.templates[0].status, "PENDING");
    assert_eq!(listed.templates[0].id, created.template.id);

    // Pending: a bulk send is refused before anything is queued.
    let body = json!({"accountId": session, "template": {"name": "order_confirmation", "language": "en_US"},
        "recipients": [{"phone": format!("+{USER}"), "variables": {"1": "ORD-1", "2": "May 2"}}]});
    let refused = app.post(BULK).json(body.clone()).expect(422).await;
    let error = zernio_error(&refused, "template_not_approved", "template.name");
    assert!(error.contains("PENDING"), "{error}");
    assert!(graph.sends().is_empty());

    // Meta approves it: the webhook alone lets it be sent (the send path asks no Graph).
    let status = graph
        .emit_template_status(
            WABA,
            &created.template.id,
            "order_confirmation",
            "en_US",
            "APPROVED",
            None,
        )
        .await;
    assert_eq!(status.as_u16(), 200);
    let sent = bulk(&app, body.clone()).await;
    assert_eq!(
        (sent.summary.sent, sent.summary.failed),
        (1, 0),
        "{:?}",
        sent.results
    );
    let sends = wait_sends(&graph, 1).await;
    assert_eq!(sends[0].kind, "template");
    assert_eq!(
        sends[0].body["template"],
        json!({"name": "order_confirmation", "language": {"code": "en_US"}, "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "ORD-1"}, {"type": "text", "text": "May 2"}]}]})
    );
    assert_eq!(
        get(&app, &session, "order_confirmation")
            .await
            .template
            .status,
        "APPROVED"
    );

    // Meta rejects it later: sends are refused again, with the reason.
    graph
        .emit_template_status(
            WABA,
            &created.template.id,
            "order_confirmation",
            "en_US",
            "REJECTED",
            Some("INVALID_FORMAT"),
        )
        .await;
    let refused = app.post(BULK).json(body).expect(422).await;
    let error = zernio_error(&refused, "template_not_approved", "template.name");
    assert!(
        error.contains("REJECTED") && error.contains("INVALID_FORMAT"),
        "{error}"
    );

    // An edit goes to Graph.
    let updated: ZTemplateUpdated = app
        .patch(&format!("{TEMPLATES}/order_confirmation"))
        .json(json!({"accountId": session, "components": [
            {"type": "BODY", "text": "Updated: your order {{1}} is confirmed. Delivery by {{2}}",
             "example": {"body_text": [["ORD-12345", "April 1"]]}}]}))
        .expect_view(200)
        .await;
    assert_eq!(updated.template.id, created.template.id);
    let meta = graph.template(WABA, "order_confirmation").unwrap();
    assert_eq!(
        meta["components"][0]["text"],
        "Updated: your order {{1}} is confirmed. Delivery by {{2}}"
    );

    // A template made in Meta's tools is listed too, and can be sent once approved.
    crate::cloud::approved_template(&graph, &cloud.number, "made_elsewhere", "Hi {{1}}, welcome")
        .await;
    let names: Vec<_> = list(&app, &session)
        .await
        .templates
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(names.contains(&"made_elsewhere".to_owned()), "{names:?}");

    let deleted: ZTemplateDeleted = app
        .delete(&format!(
            "{TEMPLATES}/order_confirmation?accountId={session}"
        ))
        .expect_view(200)
        .await;
    assert!(deleted.success);
    assert!(graph.template(WABA, "order_confirmation").is_none());
    app.get(&format!(
        "{TEMPLATES}/order_confirmation?accountId={session}"
    ))
    .expect(404)
    .await;
    // What Meta refuses comes back in Zernio's envelope.
    let dup = app
        .post(TEMPLATES)
        .json(simple(&session, "made_elsewhere", "Hi {{1}}, welcome"))
        .expect(400)
        .await;
    assert_eq!(dup["type"], "platform_error", "{dup}");
}

#[wharf_testkit::dual_test]
async fn a_cloud_template_deleted_in_metas_tools_is_no_longer_sendable(
    mut app: wharf_testkit::TestApp,
) {
    let (graph, cloud) = connected(&app).await;
    crate::cloud::approved_template(
        &graph,
        &cloud.number,
        "promo_spring",
        "Hi {{1}}, spring sale",
    )
    .await;
    let body = json!({"accountId": cloud.session, "template": {"name": "promo_spring", "language": "en_US"},
        "recipients": [{"phone": format!("+{USER}"), "variables": {"1": "Ana"}}]});
    // Unknown to Wharf: looked up on Graph once, then sent.
    assert_eq!(bulk(&app, body.clone()).await.summary.sent, 1);
    wait_sends(&graph, 1).await;
    // Deleted on Meta's side: the next listing forgets it, and sends are refused.
    let resp = reqwest::Client::new()
        .delete(format!(
            "{}/v23.0/{}/message_templates?name=promo_spring",
            graph.base_url(),
            WABA
        ))
        .bearer_auth(&cloud.number.access_token)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    assert!(list(&app, &cloud.session).await.templates.is_empty());
    let refused = app.post(BULK).json(body).expect(422).await;
    zernio_error(&refused, "template_not_found", "template.name");
    assert_eq!(graph.sends().len(), 1);
}

#[wharf_testkit::dual_test]
async fn a_graph_answer_that_is_not_an_object_is_a_bad_gateway(mut app: wharf_testkit::TestApp) {
    use wharf_testkit::fakegraph::Failure;
    let (graph, cloud) = connected(&app).await;
    let session = cloud.session.clone();
    let body = json!({"accountId": session, "name": "order_update",
        "category": "UTILITY", "language": "en_US",
        "components": [{"type": "BODY", "text": "Your order {{1}} shipped",
            "example": {"body_text": [["ORD-1"]]}}]});
    // Graph creates it but answers a string: the create is not mirrored without its id.
    graph.fail_next(Failure::answering(200, json!("ok")).on_path("/message_templates"));
    let answer = app.post(TEMPLATES).json(body.clone()).expect(502).await;
    assert_eq!(answer["type"], "platform_error", "{answer}");
    assert_eq!(answer["code"], "platform_bad_answer", "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("a string"),
        "{answer}"
    );
    let created = create(
        &app,
        json!({"accountId": session, "name": "order_shipped", "category": "UTILITY",
            "language": "en_US", "components": [{"type": "BODY", "text": "Order {{1}} shipped",
                "example": {"body_text": [["ORD-1"]]}}]}),
    )
    .await;
    // The edit and the read after it (both on the template's own path) answer an array.
    graph.fail_next(
        Failure::answering(200, json!([1, 2]))
            .on_path(&created.template.id)
            .times(2),
    );
    let answer = app
        .patch(&format!("{TEMPLATES}/order_shipped"))
        .json(json!({"accountId": session, "components": [
            {"type": "BODY", "text": "Order {{1}} is on its way",
             "example": {"body_text": [["ORD-1"]]}}]}))
        .expect(502)
        .await;
    assert_eq!(answer["code"], "platform_bad_answer", "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("an array"),
        "{answer}"
    );
    // The server is still there, and Graph's next answers are read as before.
    assert_eq!(
        get(&app, &session, "order_shipped").await.template.id,
        created.template.id
    );
}
