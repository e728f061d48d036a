//! The web engine against WhatsApp itself, with a real phone: ignored unless asked for, since
//! tests never reach WhatsApp otherwise. To run it (SQLite; the phone gets a linked device):
//!
//! ```text
//! WHARF_LIVE_WEB=1 [WHARF_LIVE_WEB_PAIR=+15551234567] [WHARF_LIVE_WEB_TO=+15557654321] \
//!   cargo test -p wharf-server --test it -- --ignored --nocapture web_live
//! ```
//!
//! It creates a web session, prints its QR code (or, with `WHARF_LIVE_WEB_PAIR`, a pair code
//! for that number) and waits three minutes for the phone to link it; with
//! `WHARF_LIVE_WEB_TO` it sends that number a text and waits for `sent`; it restarts the
//! server and checks the session comes back without a new QR; then it deletes the session,
//! which unlinks the device, so the phone's "Linked devices" list is left as it was. Run without `WHARF_LIVE_WEB` it
//! fails (an ignored test run on purpose must not pass without doing anything).

use std::time::Duration;

use qrcode::{QrCode, render::unicode::Dense1x2};
use serde_json::{Value, json};
use wharf_testkit::{Backend, TestApp};

async fn poll(app: &TestApp, path: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let body = app.get(path).expect(200).await;
        if done(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not in {limit:?}; last: {body}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test]
#[ignore = "live: links a real phone over the internet; set WHARF_LIVE_WEB=1 and run with --ignored (see the module's docs)"]
async fn web_live_links_a_phone_sends_and_survives_a_restart() {
    assert!(
        std::env::var_os("WHARF_LIVE_WEB").is_some(),
        "WHARF_LIVE_WEB is not set: this test needs a phone (see the module's docs)"
    );
    let mut app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.web_endpoint = wharf_engines::web::DEFAULT_WEB_ENDPOINT.into();
        c.web_version = None;
    })
    .await
    .expect("a SQLite test database");
    let created = app.create_session(json!({"engine": "web"})).await;
    let id = created["session"]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = format!("/v1/whatsapp-sessions/{id}");
    app.post(&format!("{base}/connect")).expect(200).await;

    // Show the QR codes as they rotate, or a pair code, until the phone links the session.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let mut shown = String::new();
    let mut paired = false;
    loop {
        let session = app.get(&base).expect(200).await;
        match session["status"].as_str().unwrap() {
            "connected" => break,
            "disconnected" => panic!("the session stopped: {session}"),
            _ => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no link within 3 minutes: {session}"
        );
        let qr = app.get(&format!("{base}/qrcode")).send().await;
        if qr.status == 200
            && let Some(code) = qr.json["qr"].as_str()
            && code != shown
        {
            if let Ok(phone) = std::env::var("WHARF_LIVE_WEB_PAIR") {
                if !paired {
                    let answer = app
                        .post(&format!("{base}/pair-code"))
                        .json(json!({ "phone_number": phone }))
                        .expect(200)
                        .await;
                    eprintln!("pair code: {}", answer["code"]);
                    paired = true;
                }
            } else {
                let drawing = QrCode::new(code.as_bytes())
                    .unwrap()
                    .render::<Dense1x2>()
                    .dark_color(Dense1x2::Light)
                    .light_color(Dense1x2::Dark)
                    .quiet_zone(true)
                    .build();
                eprintln!("{drawing}\nscan with WhatsApp: Linked devices → Link a device");
            }
            shown = code.to_owned();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    if let Ok(to) = std::env::var("WHARF_LIVE_WEB_TO") {
        let message = app.send_text(&id, &to, "Wharf live test").await;
        let info = poll(
            &app,
            &format!("/api/messages/{message}/info"),
            Duration::from_secs(60),
            |m| m["status"] != "queued",
        )
        .await;
        assert_ne!(info["status"], "failed", "{info}");
    }

    // A linked session comes back by itself, without a QR.
    app.restart().await;
    poll(&app, &base, Duration::from_secs(90), |s| {
        s["status"] == "connected"
    })
    .await;

    // Deleting the session unlinks the device from the phone.
    app.delete(&base).expect(202).await;
    poll(&app, &base, Duration::from_secs(60), |s| {
        s["status"] == "deleted"
    })
    .await;
    app.stop().await;
}
