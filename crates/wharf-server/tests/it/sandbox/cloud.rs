//! The sandbox on a Cloud API number (played by the fake Graph server), through the Zernio
//! dialect: the verification is the configured template, Meta's refusals come back in
//! `error` with nothing stored, and the phone's reply (a Graph webhook) activates it.

use serde_json::{Value, json};
use wharf_testkit::{
    CloudNumber,
    fakegraph::{Failure, FakeGraph, FakeNumber},
};

use super::{zernio::zernio_error, *};
use crate::cloud::{
    DISPLAY, PNID, approved_template, connected_with, number, user_writes, wait_sends,
};

const SESSIONS: &str = "/v1/whatsapp/sandbox/sessions";
/// The default `sandbox_template`.
const TEMPLATE: &str = "wharf_sandbox_verification";

/// A connected cloud session for `number`, made the sandbox number; with the approved
/// template `template` (en_US) unless `None`.
async fn cloud_number_with(
    app: &TestApp,
    number: FakeNumber,
    template: Option<&str>,
) -> (FakeGraph, CloudNumber) {
    let (graph, cloud) = connected_with(app, number, json!({})).await;
    if let Some(name) = template {
        approved_template(
            &graph,
            &cloud.number,
            name,
            "Reply to this message to connect your phone.",
        )
        .await;
    }
    set_number(app, &cloud.session).await;
    (graph, cloud)
}

/// The default cloud sandbox number, with its approved verification template.
async fn cloud_number(app: &TestApp) -> (FakeGraph, CloudNumber) {
    cloud_number_with(app, number(), Some(TEMPLATE)).await
}

/// Asserts POST answers Meta's refusal (400 `platform_error`) holding `says`, and that nothing
/// was stored or recorded as sent.
async fn assert_refused(app: &TestApp, graph: &FakeGraph, says: &[&str]) -> String {
    let sends = graph.sends().len();
    let answer = app
        .post(SESSIONS)
        .json(json!({"phone": DEV_PHONE}))
        .expect(400)
        .await;
    let error = zernio_error(&answer, "platform_error", "platform_error", None);
    for s in says {
        assert!(error.contains(s), "{error} does not say {s:?}");
    }
    assert_eq!(graph.sends().len(), sends, "Graph accepted nothing");
    let listing = app.get(SESSIONS).expect(200).await;
    assert_eq!(listing["sessions"], json!([]), "nothing stored");
    assert_eq!(listing["sandboxNumber"], format!("+{DISPLAY}"));
    assert!(events_of(app, &app.pat, "message.sent").await.is_empty());
    error
}

#[wharf_testkit::dual_test]
async fn the_template_verifies_the_reply_activates_and_sends_reach_graph(
    mut app: wharf_testkit::TestApp,
) {
    let (graph, cloud) = cloud_number(&app).await;
    let created = app
        .post(SESSIONS)
        .json(json!({"phone": "+34 688-246 216"}))
        .expect(200)
        .await;
    assert_eq!(created["sandboxNumber"], format!("+{DISPLAY}"));
    assert_eq!(created["session"]["phoneE164"], DEV_DIGITS);
    assert_eq!(created["session"]["status"], "pending");
    let id = created["session"]["id"].as_str().expect("id").to_owned();

    // The verification went out synchronously, as the template, from the number.
    let sends = graph.sends();
    assert_eq!(sends.len(), 1, "sent before the answer");
    let verification = &sends[0];
    assert_eq!(verification.phone_number_id, PNID);
    assert_eq!(verification.kind, "template");
    assert_eq!(verification.to, DEV_DIGITS);
    assert_eq!(verification.body["template"]["name"], TEMPLATE);
    assert_eq!(verification.body["template"]["language"]["code"], "en_US");
    assert!(verification.body["template"].get("components").is_none());
    // Recorded as sent, with Graph's id: the account's own message on the number.
    let sent = events_of(&app, &app.pat, "message.sent").await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0]["data"]["provider_msg_id"],
        verification.wamid.as_str()
    );
    assert_eq!(sent[0]["data"]["session_id"], cloud.session.as_str());
    assert_eq!(sent[0]["data"]["kind"], "template");
    assert_eq!(
        verification.body["biz_opaque_callback_data"],
        sent[0]["data"]["message_id"]
    );

    // Graph's statuses of the verification find it.
    let verification_id = sent[0]["data"]["message_id"]
        .as_str()
        .expect("message_id")
        .to_owned();
    let status = graph
        .emit_status(PNID, &verification.wamid, "delivered", None)
        .await;
    assert_eq!(status.as_u16(), 200);
    app.wait_status(&verification_id, "delivered").await;

    // Pending: the sandbox refuses sends to it, before anything reaches Graph.
    let refused = app
        .post("/api/send-message")
        .json(json!({"session_id": "sandbox", "to": DEV_PHONE, "text": "too early"}))
        .expect(422)
        .await;
    assert_eq!(refused["reason_code"], "sandbox_recipient_not_activated");

    // The phone replies (a Graph webhook): activated.
    user_writes(&graph, PNID, DEV_DIGITS, "yes, it's me").await;
    let activated = wait_events(&app, &app.pat, "sandbox.activated").await;
    assert_eq!(activated.len(), 1);
    assert_eq!(activated[0]["data"]["sandbox_session_id"], id.as_str());
    assert_eq!(activated[0]["data"]["phone_number"], DEV_PHONE);
    assert_eq!(activated[0]["data"]["dialect"], "zernio");
    let listing = app.get(&format!("/api{SESSIONS}")).expect(200).await;
    assert_eq!(listing["sessions"][0]["id"], id.as_str());
    assert_eq!(listing["sessions"][0]["status"], "active");
    assert!(listing["sessions"][0]["activatedAt"].is_string());
    // The reply itself reached the account, tagged with its sandbox session.
    let received = wait_events(&app, &app.pat, "message.received").await;
    assert_eq!(
        received[0]["data"]["sandbox"]["sandbox_session_id"],
        id.as_str()
    );

    // The confirmation, a text inside the window just opened, reached Graph.
    let sends = wait_sends(&graph, 2).await;
    let confirmation = &sends[1];
    assert_eq!(confirmation.kind, "text");
    assert_eq!(confirmation.to, DEV_DIGITS);
    assert_eq!(
        confirmation.body["text"]["body"],
        app.config.sandbox_confirmation_text.as_str()
    );

    // Sends through the sandbox now reach Graph from the number.
    let message = app
        .send_text("sandbox", DEV_PHONE, "hello from the sandbox")
        .await;
    let sends = wait_sends(&graph, 3).await;
    assert_eq!(sends[2].phone_number_id, PNID);
    assert_eq!(sends[2].kind, "text");
    assert_eq!(sends[2].to, DEV_DIGITS);
    assert_eq!(sends[2].body["text"]["body"], "hello from the sandbox");
    assert_eq!(sends[2].body["biz_opaque_callback_data"], message.as_str());
    let info = app.wait_status(&message, "sent").await;
    assert_eq!(info["status"], "sent");
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test]
async fn a_refresh_sends_the_template_again(mut app: wharf_testkit::TestApp) {
    let (graph, _) = cloud_number(&app).await;
    let first = app
        .post(SESSIONS)
        .json(json!({"phone": DEV_PHONE}))
        .expect(200)
        .await;
    let again = app
        .post(&format!("/api{SESSIONS}"))
        .json(json!({"phone": DEV_DIGITS}))
        .expect(200)
        .await;
    assert_eq!(again["session"]["id"], first["session"]["id"]);
    let sends = graph.sends();
    assert_eq!(sends.len(), 2);
    assert!(sends.iter().all(|s| s.kind == "template"
        && s.to == DEV_DIGITS
        && s.body["template"]["name"] == TEMPLATE));
    assert_ne!(sends[0].wamid, sends[1].wamid);
    assert_eq!(events_of(&app, &app.pat, "message.sent").await.len(), 2);
    // Activated, a refresh is still a template (the window may have closed since).
    user_writes(&graph, PNID, DEV_DIGITS, "me").await;
    wait_events(&app, &app.pat, "sandbox.activated").await;
    wait_sends(&graph, 3).await;
    let active = app
        .post(SESSIONS)
        .json(json!({"phone": DEV_PHONE}))
        .expect(200)
        .await;
    assert_eq!(active["session"]["status"], "active");
    let sends = graph.sends();
    assert_eq!(sends.len(), 4);
    assert_eq!(sends[3].kind, "template");
    assert_eq!(sends[3].to, DEV_DIGITS);
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test]
async fn metas_refusal_of_the_template_is_returned_and_nothing_is_stored(
    mut app: wharf_testkit::TestApp,
) {
    let (graph, _) = cloud_number(&app).await;
    // Undeliverable, with Meta's own words.
    graph.fail_next(Failure::code(131_026).on_path("/messages"));
    let error = assert_refused(
        &app,
        &graph,
        &["Graph error 131026", "Message Undeliverable"],
    )
    .await;
    assert!(
        !error.contains("(#131026)"),
        "the code is named once: {error}"
    );
    graph.fail_next(
        Failure::code(131_026)
            .message("(#131026) Message Undeliverable: 34688246216 is not a WhatsApp user")
            .on_path("/messages"),
    );
    assert_refused(
        &app,
        &graph,
        &["Graph error 131026", "34688246216 is not a WhatsApp user"],
    )
    .await;
    // A locked business account, a paused template: refusals too.
    graph.fail_next(Failure::code(131_031).on_path("/messages"));
    assert_refused(
        &app,
        &graph,
        &["Graph error 131031", "Business Account locked"],
    )
    .await;
    graph.set_template_status(&number().waba_id, TEMPLATE, "PAUSED");
    assert_refused(&app, &graph, &["Graph error 132015", "Template is Paused"]).await;
    graph.set_template_status(&number().waba_id, TEMPLATE, "APPROVED");

    // Nothing stored means nothing blocks: the next try goes through.
    let created = app
        .post(SESSIONS)
        .json(json!({"phone": DEV_PHONE}))
        .expect(200)
        .await;
    assert_eq!(created["session"]["status"], "pending");
    assert_eq!(graph.sends().len(), 1);
    assert_eq!(events_of(&app, &app.pat, "message.sent").await.len(), 1);
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test]
async fn a_phone_not_on_whatsapp_is_refused_by_graph(mut app: wharf_testkit::TestApp) {
    let mut n = number();
    n.not_on_whatsapp = vec![DEV_DIGITS.into()];
    let (graph, _) = cloud_number_with(&app, n, Some(TEMPLATE)).await;
    assert_refused(&app, &graph, &["Graph error 131026", "not a WhatsApp user"]).await;
    // Another phone is fine (the one-phone rule saw nothing stored).
    let other = app
        .post(SESSIONS)
        .json(json!({"phone": "+44 7700 900123"}))
        .expect(200)
        .await;
    assert_eq!(other["session"]["phoneE164"], "447700900123");
    assert_eq!(graph.sends().len(), 1);
    assert_eq!(graph.sends()[0].to, "447700900123");
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test]
async fn without_the_approved_template_graph_refuses_the_verification(
    mut app: wharf_testkit::TestApp,
) {
    let (graph, _) = cloud_number_with(&app, number(), None).await;
    assert_refused(&app, &graph, &["Graph error 132001", TEMPLATE]).await;
    // Approved later, it works.
    approved_template(&graph, &number(), TEMPLATE, "Reply to connect.").await;
    app.post(SESSIONS)
        .json(json!({"phone": DEV_PHONE}))
        .expect(200)
        .await;
    assert_eq!(graph.sends().len(), 1);
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test]
async fn a_refused_token_stores_nothing_and_names_metas_error(mut app: wharf_testkit::TestApp) {
    let (graph, cloud) = cloud_number(&app).await;
    graph.expire_token(PNID);
    let answer = app
        .post(SESSIONS)
        .json(json!({"phone": DEV_PHONE}))
        .send()
        .await;
    // A refused token takes the number offline: a refusal (400) like Meta's others, with
    // Meta's message in `error`, not a passing condition to retry in a moment.
    assert_eq!(answer.status.as_u16(), 400, "{}", answer.text);
    let error = zernio_error(&answer.json, "platform_error", "platform_error", None);
    assert!(
        error.contains("Graph error 190") && error.contains("Error validating access token"),
        "{error}"
    );
    let listing = app.get(SESSIONS).expect(200).await;
    assert_eq!(listing["sessions"], json!([]), "nothing stored");
    assert!(events_of(&app, &app.pat, "message.sent").await.is_empty());
    assert!(graph.sends().is_empty());
    // And the number's session learnt its credentials are refused.
    let session = app
        .get(&format!("/v1/whatsapp-sessions/{}", cloud.session))
        .expect(200)
        .await;
    assert_eq!(session["status"], "disconnected", "{session}");
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test]
async fn the_cloud_number_itself_is_refused_before_graph_is_called(
    mut app: wharf_testkit::TestApp,
) {
    let (graph, _) = cloud_number(&app).await;
    for written in [
        format!("+{DISPLAY}"),
        DISPLAY.to_owned(),
        format!("+1 {}", &DISPLAY[1..]),
    ] {
        let answer = app
            .post(SESSIONS)
            .json(json!({"phone": written}))
            .expect(400)
            .await;
        let error = zernio_error(
            &answer,
            "invalid_request_error",
            "invalid_field_value",
            Some("phone"),
        );
        assert!(error.contains("sandbox number"), "{error}");
    }
    assert!(graph.sends().is_empty());
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| {
    c.sandbox_template = "dev_verify".into();
    c.sandbox_template_language = "es".into();
})]
async fn the_configured_template_and_language_are_sent(mut app: wharf_testkit::TestApp) {
    let (graph, cloud) = connected_with(&app, number(), json!({})).await;
    // The template exists in Spanish only.
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/v23.0/{}/message_templates",
            graph.base_url(),
            cloud.number.waba_id
        ))
        .bearer_auth(&cloud.number.access_token)
        .json(
            &json!({"name": "dev_verify", "language": "es", "category": "UTILITY",
                      "components": [{"type": "BODY", "text": "Responde para conectar."}]}),
        )
        .send()
        .await
        .expect("the fake answers");
    assert!(resp.status().is_success());
    graph.set_template_status(&cloud.number.waba_id, "dev_verify", "APPROVED");
    set_number(&app, &cloud.session).await;
    app.post(SESSIONS)
        .json(json!({"phone": DEV_PHONE}))
        .expect(200)
        .await;
    let sends = graph.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(
        sends[0].body["template"],
        json!({"name": "dev_verify", "language": {"code": "es"}})
    );
    graph.assert_no_rejections();
}

#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| {
    c.sandbox_confirmation_text = String::new();
})]
async fn with_no_confirmation_text_activation_sends_nothing(mut app: wharf_testkit::TestApp) {
    let (graph, _) = cloud_number(&app).await;
    app.post(SESSIONS)
        .json(json!({"phone": DEV_PHONE}))
        .expect(200)
        .await;
    user_writes(&graph, PNID, DEV_DIGITS, "me").await;
    wait_events(&app, &app.pat, "sandbox.activated").await;
    // A send through the sandbox goes out; no confirmation went before it.
    let message = app.send_text("sandbox", DEV_PHONE, "first").await;
    app.wait_status(&message, "sent").await;
    let sends: Vec<Value> = graph.sends().into_iter().map(|s| s.body).collect();
    assert_eq!(sends.len(), 2, "{sends:?}");
    assert_eq!(sends[0]["type"], "template");
    assert_eq!(sends[1]["text"]["body"], "first");
    graph.assert_no_rejections();
}
