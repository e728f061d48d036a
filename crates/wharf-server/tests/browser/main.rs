//! The dashboard in a real browser: headless Chromium over WebDriver, on a phone-sized
//! window, against the real server on SQLite and on PostgreSQL.
//!
//! Needs Debian's `chromium` and `chromium-driver`; without them a test skips locally and
//! fails under CI. `WHARF_SCREENSHOTS=DIR` also saves screenshots of the main pages there
//! (`scripts/screenshots` regenerates docs/screenshots this way).

use std::path::PathBuf;

use serde_json::json;
use wharf_testkit::{Browser, TestApp, TestReceiver};

/// Saves a screenshot as `DIR/name.png` when `WHARF_SCREENSHOTS=DIR` is set.
async fn shoot(browser: &Browser, name: &str) {
    if let Some(dir) = std::env::var_os("WHARF_SCREENSHOTS") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("the screenshot directory");
        browser.screenshot(&dir.join(format!("{name}.png"))).await;
    }
}

async fn log_in(browser: &Browser, app: &TestApp) {
    browser.goto(&app.url("/")).await;
    assert!(browser.url().await.ends_with("/dashboard/login"));
    browser.fill("#token", &app.pat).await;
    browser.click("button[type=submit]").await;
    browser.wait_text("h1", "Sessions").await;
}

/// The session id in the current URL (`/dashboard/sessions/{id}`).
async fn session_in_url(browser: &Browser) -> String {
    let url = browser.url().await;
    url.rsplit('/').next().unwrap().to_owned()
}

/// Creates an emulator session from the home page and opens its page.
async fn create_and_open(browser: &Browser, app: &TestApp, label: &str) -> String {
    browser.goto(&app.url("/")).await;
    browser.fill("#label", label).await;
    browser
        .script("document.getElementById('engine').value = 'emulator';")
        .await;
    browser
        .click("form[action='/dashboard/sessions'] button")
        .await;
    browser.wait_text("main", "shown only now").await;
    browser.click("a.button").await;
    browser.wait_text("h1", label).await;
    session_in_url(browser).await
}

#[wharf_testkit::dual_test]
async fn logging_in_a_bad_token_and_a_forged_form_are_refused(app: TestApp) {
    let Some(browser) = Browser::start().await else {
        return;
    };
    browser.goto(&app.url("/")).await;
    browser.find("label[for=token]").await;
    shoot(&browser, "login").await;
    browser
        .fill(
            "#token",
            "wh_pat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .await;
    browser.click("button[type=submit]").await;
    browser
        .wait_text("[role=alert]", "unknown or revoked")
        .await;
    assert!(browser.url().await.ends_with("/dashboard/login"));

    log_in(&browser, &app).await;
    // A form whose CSRF token was tampered with is refused, and creates nothing.
    browser
        .script("document.querySelector(\"form[action='/dashboard/sessions'] input[name=csrf]\").value = 'forged';")
        .await;
    browser.fill("#label", "forged").await;
    browser
        .click("form[action='/dashboard/sessions'] button")
        .await;
    browser.wait_text("[role=alert]", "CSRF").await;
    let listed = app.get("/v1/whatsapp-sessions").expect(200).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 0);

    browser.goto(&app.url("/")).await;
    browser.click("header form button").await;
    browser.wait_text("h1", "Log in").await;
    browser.goto(&app.url("/")).await;
    assert!(
        browser.url().await.ends_with("/dashboard/login"),
        "logged out"
    );
    browser.quit().await;
}

#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| {
    c.emulator_delivered_after_ms = 100;
    c.emulator_read_after_ms = 200;
})]
async fn a_phone_links_by_the_qr_and_a_test_message_is_read(app: TestApp) {
    let Some(browser) = Browser::start().await else {
        return;
    };
    log_in(&browser, &app).await;
    let id = create_and_open(&browser, &app, "Front desk").await;
    browser
        .click(&format!(
            "form[action='/dashboard/sessions/{id}/connect'] button"
        ))
        .await;
    browser.find("img#qr").await;
    shoot(&browser, "linking").await;
    // The page must change by itself: a marker set now survives only without a reload.
    browser.script("window.wharfMarker = 1;").await;
    app.post(&format!("/emulator/sessions/{id}/scan"))
        .expect(200)
        .await;
    browser.wait_text("#session-status", "Connected.").await;
    assert_eq!(browser.script("return window.wharfMarker;").await, 1);
    assert!(browser.try_find("img#qr").await.is_none());

    browser.fill("#to", "+15550102030").await;
    browser.fill("#text", "hello from the browser").await;
    browser
        .click(&format!(
            "form[action='/dashboard/sessions/{id}/send'] button"
        ))
        .await;
    browser
        .wait_text("#messages", "hello from the browser")
        .await;
    browser.script("window.wharfMarker = 2;").await;
    browser.wait_text("#messages", "→ read").await;
    assert_eq!(browser.script("return window.wharfMarker;").await, 2);
    shoot(&browser, "session").await;

    browser.goto(&app.url("/")).await;
    browser.wait_text("#sessions", "connected").await;
    shoot(&browser, "sessions").await;
    browser.goto(&app.url("/dashboard/events")).await;
    browser.find("#tail").await;
    app.post(&format!("/emulator/sessions/{id}/inbound"))
        .json(json!({"from": "+15550102030", "text": "hi back"}))
        .send()
        .await;
    browser.wait_text("#tail", "message.received").await;
    shoot(&browser, "events").await;
    browser.quit().await;
}

#[wharf_testkit::dual_test]
async fn a_failed_webhook_delivery_is_redelivered_from_the_page(app: TestApp) {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let mut receiver = TestReceiver::start().await;
    receiver.fail_next(100);
    let hook = app
        .post("/v1/webhooks")
        .json(json!({"target_url": receiver.url("/hook"), "subscribed_events": ["message.sent"]}))
        .expect(201)
        .await;
    let hook = hook["id"].as_str().unwrap().to_owned();
    let (session, _) = app.connected_session().await;
    app.send_text(&session, "+15550102030", "hi").await;
    let path = format!("/v1/webhooks/{hook}/deliveries");
    app.eventually(&path, |d| d["data"][0]["status"] == "failed")
        .await;

    log_in(&browser, &app).await;
    browser.click("nav a[href='/dashboard/webhooks']").await;
    browser
        .click(&format!("a[href='/dashboard/webhooks/{hook}']"))
        .await;
    browser.wait_text("#deliveries", "failed").await;
    browser
        .wait_text("#deliveries", "the endpoint answered 500")
        .await;
    shoot(&browser, "webhook").await;
    receiver.fail_next(0);
    browser.click("#deliveries tr[data-delivery] button").await;
    receiver.next_of("message.sent").await;
    // The attempt's outcome is written when it ends: look again until it shows.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        browser
            .goto(&app.url(&format!("/dashboard/webhooks/{hook}")))
            .await;
        if browser.text("#deliveries").await.contains("succeeded") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never succeeded");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    browser.quit().await;
}

/// Creates a draft broadcast of `session` (template `promo`) to `n` recipients; its id.
async fn broadcast(app: &TestApp, session: &str, name: &str, n: usize) -> String {
    let recipients: Vec<_> = (0..n)
        .map(|i| json!({"phone": format!("+1555030{i:04}"), "variables": {"1": format!("R{i}")}}))
        .collect();
    let answer = app
        .post("/v1/whatsapp/broadcasts")
        .json(json!({"accountId": session, "name": name,
            "template": {"name": "promo", "language": "en_US"}, "recipients": recipients}))
        .expect(200)
        .await;
    answer["broadcast"]["id"].as_str().unwrap().to_owned()
}

#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| c.broadcast_send_wait_ms = 0)]
async fn a_broadcast_progresses_live_and_a_scheduled_one_is_cancelled(app: TestApp) {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let (session, _) = app.connected_session().await;
    app.post("/v1/whatsapp/templates")
        .json(
            json!({"accountId": session, "name": "promo", "category": "MARKETING",
            "language": "en_US", "components": [{"type": "BODY", "text": "Hi {{1}}!"}]}),
        )
        .expect(200)
        .await;
    let weekly = broadcast(&app, &session, "Weekly news", 3).await;
    let later = broadcast(&app, &session, "Spring sale", 2).await;
    let at = wharf_core::time::rfc3339(wharf_core::time::now_millis() + 24 * 3_600_000);
    app.post(&format!("/v1/whatsapp/broadcasts/{later}/schedule"))
        .json(json!({"scheduledAt": at}))
        .expect(200)
        .await;

    log_in(&browser, &app).await;
    browser.click("nav a[href='/dashboard/broadcasts']").await;
    browser.wait_text("h1", "Broadcasts").await;
    let weekly_row = format!("[data-broadcast='{weekly}']");
    let later_row = format!("[data-broadcast='{later}']");
    browser.wait_text(&weekly_row, "draft").await;
    browser.wait_text(&weekly_row, "0 sent").await;
    browser.wait_text(&later_row, "scheduled").await;
    assert!(
        browser
            .try_find(&format!("{weekly_row} button"))
            .await
            .is_none(),
        "a draft has nothing to cancel"
    );
    // The page must follow the broadcast by itself: a marker set now survives only without
    // a reload.
    browser.find("body[data-stream=open]").await;
    browser.script("window.wharfMarker = 3;").await;
    app.post(&format!("/v1/whatsapp/broadcasts/{weekly}/send"))
        .expect(200)
        .await;
    browser.wait_text(&weekly_row, "completed").await;
    browser.wait_text(&weekly_row, "3 sent").await;
    assert_eq!(browser.script("return window.wharfMarker;").await, 3);
    shoot(&browser, "broadcasts").await;

    // Cancelling the scheduled one from its button (a CSRF-checked form).
    browser
        .click(&format!(
            "form[action='/dashboard/broadcasts/{later}/cancel'] button"
        ))
        .await;
    browser.wait_text(&later_row, "cancelled").await;
    let answer = app
        .get(&format!("/v1/whatsapp/broadcasts/{later}"))
        .expect(200)
        .await;
    assert_eq!(answer["broadcast"]["status"], "cancelled");
    assert!(
        browser
            .try_find(&format!("{later_row} button"))
            .await
            .is_none(),
        "a cancelled broadcast has no cancel button"
    );
    browser.quit().await;
}
