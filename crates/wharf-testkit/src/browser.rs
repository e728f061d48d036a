//! A headless Chromium driven over WebDriver (the W3C JSON protocol, spoken with reqwest):
//! Debian's `chromium` and `chromium-driver`. The window is phone-sized, so every browser
//! test also checks that the dashboard works on a phone's screen.
//!
//! When `chromedriver` is missing, [`Browser::start`] fails the test under CI (`CI` set) and
//! otherwise skips it with a message on stderr.

use std::{path::Path, time::Duration};

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long `wait_*` calls wait.
const WAIT: Duration = Duration::from_secs(15);

/// A WebDriver session on a headless Chromium.
pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a 390×844 window; `None` (the test
    /// skips) when chromedriver is not installed and `CI` is not set.
    pub async fn start() -> Option<Self> {
        let driver_path = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            l.local_addr().expect("its address").port()
        };
        let driver = match Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
        {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "{driver_path} is not installed: CI must install chromium and chromium-driver (.ci/run does)"
                );
                eprintln!(
                    "SKIPPED: {driver_path} is not installed (apt-get install chromium chromium-driver); browser tests need it"
                );
                return None;
            }
            Err(e) => panic!("cannot start {driver_path}: {e}"),
        };
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let ready = http
                .get(format!("{base}/status"))
                .send()
                .await
                .ok()
                .map(|r| r.json::<Value>());
            if let Some(body) = ready
                && let Ok(body) = body.await
                && body["value"]["ready"] == true
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": binary,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--window-size=390,844"]
                }
            }}}))
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("a JSON answer");
        let id = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("a WebDriver session: {created}"));
        Some(Self {
            driver,
            http,
            session: format!("{base}/session/{id}"),
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let answer: Value = req
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("a JSON answer");
        answer["value"].clone()
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        let v = self
            .call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
        assert!(v.is_null(), "navigate to {url}: {v}");
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The element matching `css` now, if any.
    pub async fn try_find(&self, css: &str) -> Option<String> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT].as_str().map(str::to_owned)
    }

    /// The element matching `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(e) = self.try_find(css).await {
                return e;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no element {css} on {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the element matching `css`. A live region may be swapped for a fresh copy
    /// between finding the element and clicking it (the page refreshes itself from the event
    /// stream): then the element is found again.
    pub async fn click(&self, css: &str) {
        for _ in 0..5 {
            let e = self.find(css).await;
            let v = self
                .call(
                    reqwest::Method::POST,
                    &format!("/element/{e}/click"),
                    Some(json!({})),
                )
                .await;
            if v.is_null() {
                return;
            }
            assert_eq!(v["error"], "stale element reference", "click {css}: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("click {css}: the element kept being replaced");
    }

    /// Replaces the value of the field matching `css` with `text`, as typed.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/clear"),
            Some(json!({})),
        )
        .await;
        let v = self
            .call(
                reqwest::Method::POST,
                &format!("/element/{e}/value"),
                Some(json!({ "text": text })),
            )
            .await;
        assert!(v.is_null(), "type into {css}: {v}");
    }

    /// The visible text of the element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{e}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Runs `script` (a function body) in the page and returns its result.
    pub async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Waits until the text of `css` contains `wanted` (the page is not reloaded: what
    /// changes it is the page's own script).
    pub async fn wait_text(&self, css: &str, wanted: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if self.try_find(css).await.is_some() {
                let text = self.text(css).await;
                if text.contains(wanted) {
                    return text;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{css} never showed {wanted:?} on {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves a PNG screenshot of the window to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("a screenshot"))
            .expect("base64");
        std::fs::write(path, png).expect("write the screenshot");
    }

    /// Ends the session (Chromium exits) and the driver. A test that panics before this
    /// leaves it to `kill_on_drop`.
    pub async fn quit(mut self) {
        let _ = self.http.delete(&self.session).send().await;
        let _ = self.driver.kill().await;
    }
}
