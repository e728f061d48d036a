//! `wharf sessions link` against a running test server: the emulator shows a QR code, which
//! the command prints; the phone (the emulator's control surface) scans it and the command
//! exits 0. A session that stops instead, or a refused token, makes it fail with the reason.

use std::{process::Stdio, time::Duration};

use serde_json::json;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader},
    process::{Child, Command},
};
use wharf_testkit::TestApp;

fn link(app: &TestApp, token: &str, session: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["sessions", "link", session, "--poll-ms", "100"])
        .args(["--url", &app.url("")])
        .env("WHARF_TOKEN", token)
        .env_remove("WHARF_URL")
        .env_remove("WHARF_CONFIG")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run wharf sessions link")
}

/// Reads the child's stdout until a line contains `needle`; returns everything read.
async fn read_until(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    needle: &str,
) -> String {
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains(needle) {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(found, Ok(true)),
        "no line with {needle:?}; got:\n{seen}"
    );
    seen
}

async fn finish(mut child: Child) -> (bool, String, String) {
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the command ends")
        .expect("wait");
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        o.read_to_string(&mut out).await.unwrap();
    }
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut err).await.unwrap();
    }
    (status.success(), out, err)
}

#[wharf_testkit::dual_test]
async fn link_prints_the_qr_and_exits_once_the_phone_scanned(mut app: wharf_testkit::TestApp) {
    let created = app.create_session(json!({})).await;
    let id = created["session"]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The session is not running: the command connects it.
    let mut child = link(&app, &app.pat, &id);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let shown = read_until(&mut lines, "QR code.").await;
    assert!(shown.contains("connecting session"), "{shown}");
    assert!(
        shown.contains('\u{2584}') || shown.contains('\u{2580}'),
        "drawn with half blocks: {shown}"
    );
    let qr = app
        .get(&format!("/v1/whatsapp-sessions/{id}/qrcode"))
        .expect(200)
        .await;
    assert!(qr["qr"].as_str().is_some_and(|q| !q.is_empty()));

    app.post(&format!("/emulator/sessions/{id}/scan"))
        .json(json!({"phone_number": "+15550001234"}))
        .expect(200)
        .await;
    let done = read_until(&mut lines, "linked:").await;
    assert!(done.contains("+15550001234"), "{done}");
    let (ok, _, err) = finish(child).await;
    assert!(ok, "exit 0 once connected: {err}");

    // Already linked: says so at once.
    let (ok, out, err) = finish(link(&app, &app.pat, &id)).await;
    assert!(ok, "{err}");
    assert!(out.contains("linked: session"), "{out}");
    app.stop().await;
}

#[wharf_testkit::dual_test]
async fn link_fails_with_the_reason_when_the_session_stops_or_the_token_is_refused(
    mut app: wharf_testkit::TestApp,
) {
    let created = app.create_session(json!({})).await;
    let id = created["session"]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut child = link(&app, &app.pat, &id);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    read_until(&mut lines, "QR code.").await;
    app.post(&format!("/v1/whatsapp-sessions/{id}/disconnect"))
        .expect(200)
        .await;
    let (ok, _, err) = finish(child).await;
    assert!(!ok, "a session that stops is a failure");
    assert!(err.contains("disconnected by request"), "{err}");

    let (ok, _, err) = finish(link(&app, "wh_pat_not_a_real_token", &id)).await;
    assert!(!ok);
    assert!(err.contains("401"), "{err}");

    let (ok, _, err) = finish(link(&app, &app.pat, "sess_01jd8x6k2m9q4r7t3v5w8y0z1a")).await;
    assert!(!ok);
    assert!(err.contains("404"), "{err}");
    app.stop().await;
}
