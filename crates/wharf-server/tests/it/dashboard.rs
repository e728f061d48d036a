//! The dashboard over plain HTTP: login cookie, CSRF, the pages and their forms (the browser
//! suite, `tests/browser`, drives the same pages in Chromium).

use reqwest::{StatusCode, header};
use serde_json::json;
use wharf_testkit::TestApp;

/// A browser-like client of the dashboard: no redirects followed, the login cookie kept.
struct Dash<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookie: Option<String>,
}

impl<'a> Dash<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, header::HeaderMap, String) {
        let mut req = self.client.get(self.app.url(path));
        if let Some(c) = &self.cookie {
            req = req.header(header::COOKIE, c);
        }
        let res = req.send().await.unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        (status, headers, res.text().await.unwrap())
    }

    async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, header::HeaderMap, String) {
        let mut req = self
            .client
            .post(self.app.url(path))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap());
        if let Some(c) = &self.cookie {
            req = req.header(header::COOKIE, c);
        }
        let res = req.send().await.unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        (status, headers, res.text().await.unwrap())
    }

    /// Logs in with `token`; returns the Set-Cookie header.
    async fn log_in(&mut self, token: &str) -> String {
        let (status, headers, body) = self.post("/dashboard/login", &[("token", token)]).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        let set = headers[header::SET_COOKIE].to_str().unwrap().to_owned();
        self.cookie = Some(set.split(';').next().unwrap().to_owned());
        set
    }

    /// The CSRF token in the forms of `path`.
    async fn csrf(&self, path: &str) -> String {
        let (status, _, body) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        csrf_of(&body)
    }
}

fn csrf_of(body: &str) -> String {
    let at = body
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    body[at..at + body[at..].find('"').unwrap()].to_owned()
}

#[wharf_testkit::dual_test]
async fn dashboard_login_sets_a_strict_cookie_and_logout_ends_it(app: TestApp) {
    let mut dash = Dash::new(&app);
    let (status, headers, _) = dash.get("/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/dashboard/login");
    let (status, _, body) = dash.get("/dashboard/login").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<label for=\"token\">"), "{body}");

    for (token, says) in [
        ("", "enter a personal access token"),
        ("not-a-token", "not a Wharf token"),
        (
            "wh_pat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "unknown or revoked",
        ),
    ] {
        let (status, headers, body) = dash.post("/dashboard/login", &[("token", token)]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token}: {body}");
        assert!(headers.get(header::SET_COOKIE).is_none());
        assert!(body.contains(says), "{token}: {body}");
    }
    // A session key cannot log in.
    let created = app.create_session(json!({})).await;
    let (_, session_key) = wharf_testkit::session_and_key(&created);
    let (status, _, body) = dash
        .post("/dashboard/login", &[("token", session_key.as_str())])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("personal access token"), "{body}");

    let set = dash.log_in(&app.pat).await;
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    assert!(set.contains("Path=/"), "{set}");
    assert!(!set.contains(&app.pat), "the cookie is not the token");
    let (status, _, body) = dash.get("/").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("<h1>Sessions</h1>"), "{body}");
    assert!(
        body.contains(&wharf_testkit::session_and_key(&created).0),
        "{body}"
    );

    let csrf = csrf_of(&body);
    let (status, headers, _) = dash
        .post("/dashboard/logout", &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    // The old cookie no longer opens anything.
    let (status, headers, _) = dash.get("/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/dashboard/login");
}

#[wharf_testkit::dual_test]
async fn a_revoked_token_ends_its_dashboard_login(app: TestApp) {
    let account = app.account_id.parse().unwrap();
    let (key, token) = app.store.create_pat(account, None).await.unwrap();
    let mut dash = Dash::new(&app);
    dash.log_in(&token.raw).await;
    assert_eq!(dash.get("/").await.0, StatusCode::OK);
    app.store
        .revoke_key(&key.fingerprint)
        .await
        .unwrap()
        .unwrap();
    let (status, headers, _) = dash.get("/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/dashboard/login");
}

#[wharf_testkit::dual_test]
async fn dashboard_forms_refuse_a_missing_or_wrong_csrf_token(app: TestApp) {
    let mut dash = Dash::new(&app);
    dash.log_in(&app.pat).await;
    let csrf = dash.csrf("/").await;
    for form in [
        vec![("label", "x"), ("engine", "emulator")],
        vec![("label", "x"), ("engine", "emulator"), ("csrf", "forged")],
    ] {
        let (status, _, body) = dash.post("/dashboard/sessions", &form).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body.contains("CSRF"), "{body}");
    }
    // A form posted from another site is refused even with the token.
    let res = dash
        .client
        .post(app.url("/dashboard/sessions"))
        .header(header::COOKIE, dash.cookie.as_deref().unwrap())
        .header(header::ORIGIN, "https://evil.example")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("label=x&engine=emulator&csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let listed = app.get("/v1/whatsapp-sessions").expect(200).await;
    assert_eq!(
        listed["data"].as_array().unwrap().len(),
        0,
        "nothing was created"
    );

    let (status, _, body) = dash
        .post(
            "/dashboard/sessions",
            &[
                ("label", "shop"),
                ("engine", "emulator"),
                ("csrf", csrf.as_str()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body.contains("wh_sk_"), "the key is shown once: {body}");
    let listed = app.get("/v1/whatsapp-sessions").expect(200).await;
    assert_eq!(listed["data"][0]["label"], "shop");
    // A bad engine names the field.
    let (status, _, body) = dash
        .post(
            "/dashboard/sessions",
            &[("engine", "telex"), ("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("engine"), "{body}");
}

#[wharf_testkit::dual_test]
async fn the_session_page_links_with_the_qr_and_sends_a_test_message(app: TestApp) {
    let mut dash = Dash::new(&app);
    dash.log_in(&app.pat).await;
    let created = app.create_session(json!({"label": "front desk"})).await;
    let (id, _) = wharf_testkit::session_and_key(&created);
    let page = format!("/dashboard/sessions/{id}");
    let csrf = dash.csrf(&page).await;
    let (status, headers, _) = dash
        .post(&format!("{page}/connect"), &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], page.as_str());
    let (_, _, body) = dash.get(&page).await;
    assert!(body.contains(&format!("{page}/qr.png?v=")), "{body}");
    let res = dash.get(&format!("{page}/qr.png")).await;
    assert_eq!(res.0, StatusCode::OK);
    assert_eq!(res.1[header::CONTENT_TYPE], "image/png");

    app.post(&format!("/emulator/sessions/{id}/scan"))
        .expect(200)
        .await;
    let (_, _, body) = dash.get(&page).await;
    assert!(body.contains("data-status=\"connected\""), "{body}");
    assert!(!body.contains("qr.png"), "{body}");

    let (status, _, body) = dash
        .post(
            &format!("{page}/send"),
            &[
                ("to", "not a phone"),
                ("text", "hi"),
                ("csrf", csrf.as_str()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("to:"), "names the field: {body}");
    let (status, _, _) = dash
        .post(
            &format!("{page}/send"),
            &[
                ("to", "+15550102030"),
                ("text", "hello from the dashboard"),
                ("csrf", csrf.as_str()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let logs = app
        .get(&format!("/api/whatsapp-sessions/{id}/message-logs"))
        .expect(200)
        .await;
    let message = logs["data"][0]["id"]
        .as_str()
        .or(logs["data"][0]["message_id"].as_str())
        .unwrap()
        .to_owned();
    app.wait_status(&message, "sent").await;
    let (_, _, body) = dash.get(&page).await;
    assert!(body.contains("hello from the dashboard"), "{body}");
    assert!(body.contains("→ sent"), "the timeline: {body}");

    // Another tenant's session is not found.
    let (status, _, _) = dash
        .get("/dashboard/sessions/sess_00000000000000000000000000")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = dash
        .post(&format!("{page}/delete"), &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[wharf_testkit::dual_test]
async fn the_webhook_page_redelivers_and_the_stream_is_an_event_stream(app: TestApp) {
    let mut receiver = wharf_testkit::TestReceiver::start().await;
    receiver.fail_next(100);
    let hook = app
        .post("/v1/webhooks")
        .json(json!({"target_url": receiver.url("/hook"), "subscribed_events": ["message.sent"]}))
        .expect(201)
        .await;
    let hook = hook["id"].as_str().unwrap().to_owned();
    let (session, _) = app.connected_session().await;
    app.send_text(&session, "+15550102030", "hi").await;
    // Three retries, all failing: the delivery fails for good.
    let path = format!("/v1/webhooks/{hook}/deliveries");
    let deliveries = app
        .eventually(&path, |d| d["data"][0]["status"] == "failed")
        .await;
    let delivery = deliveries["data"][0]["id"].as_str().unwrap().to_owned();

    let mut dash = Dash::new(&app);
    dash.log_in(&app.pat).await;
    let (_, _, body) = dash.get("/dashboard/webhooks").await;
    assert!(
        body.contains(&format!("/dashboard/webhooks/{hook}")),
        "{body}"
    );
    let page = format!("/dashboard/webhooks/{hook}");
    let (_, _, body) = dash.get(&page).await;
    assert!(body.contains(&delivery), "{body}");
    assert!(
        body.contains("the endpoint answered 500"),
        "the attempt log: {body}"
    );
    let csrf = csrf_of(&body);
    receiver.fail_next(0);
    let (status, _, body) = dash
        .post(
            &format!("{page}/deliveries/{delivery}/redeliver"),
            &[("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    receiver.next_of("message.sent").await;
    app.eventually(&path, |d| d["data"][0]["status"] == "succeeded")
        .await;
    let (status, _, body) = dash
        .post(
            &format!("{page}/recover"),
            &[("since", "yesterday"), ("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("since"), "{body}");

    let res = dash
        .client
        .get(app.url("/dashboard/stream"))
        .header(header::COOKIE, dash.cookie.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    for page in ["/dashboard/events", "/dashboard/sandbox"] {
        let (status, _, body) = dash.get(page).await;
        assert_eq!(status, StatusCode::OK, "{page}: {body}");
    }
    // Without a login, the stream is not served.
    let (status, _, _) = Dash::new(&app).get("/dashboard/stream").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[wharf_testkit::dual_test]
async fn the_broadcasts_page_lists_progress_and_cancels_with_the_csrf_token(app: TestApp) {
    use crate::business_broadcasts::{create, recipients, setup};
    let session = setup(&app).await;
    let draft = create(&app, &session, recipients(0, 2)).await;
    let scheduled = create(&app, &session, recipients(10, 3)).await;
    let at = wharf_core::time::rfc3339(wharf_core::time::now_millis() + 3_600_000);
    app.post(&format!(
        "/v1/whatsapp/broadcasts/{}/schedule",
        scheduled.id
    ))
    .json(json!({"scheduledAt": at}))
    .expect(200)
    .await;
    let mut dash = Dash::new(&app);
    let (status, headers, _) = dash.get("/dashboard/broadcasts").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "a login first");
    assert_eq!(headers[header::LOCATION], "/dashboard/login");
    dash.log_in(&app.pat).await;
    let (status, _, page) = dash.get("/dashboard/broadcasts").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(&format!("data-broadcast=\"{}\"", draft.id)),
        "{page}"
    );
    assert!(
        page.contains("0 sent · 0 delivered · 0 read · 0 failed of 3 · 3 pending"),
        "{page}"
    );
    assert!(
        page.contains("data-live=\"broadcast.started broadcast.progress"),
        "{page}"
    );
    let cancel = format!("/dashboard/broadcasts/{}/cancel", scheduled.id);
    assert!(
        page.contains(&cancel),
        "a scheduled broadcast can be cancelled"
    );
    assert!(
        !page.contains(&format!("/dashboard/broadcasts/{}/cancel", draft.id)),
        "a draft cannot"
    );
    // Without the form's token nothing is cancelled.
    let (status, _, _) = dash.post(&cancel, &[("csrf", "forged")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let b = crate::business_broadcasts::get(&app, &scheduled.id).await;
    assert_eq!(b.status, "scheduled");
    let csrf = csrf_of(&page);
    let (status, headers, _) = dash.post(&cancel, &[("csrf", csrf.as_str())]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/dashboard/broadcasts");
    let b = crate::business_broadcasts::get(&app, &scheduled.id).await;
    assert_eq!(b.status, "cancelled");
    // A second cancel is refused with the reason, as the API refuses it.
    let (status, _, body) = dash.post(&cancel, &[("csrf", csrf.as_str())]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("the broadcast is cancelled"), "{body}");
}
