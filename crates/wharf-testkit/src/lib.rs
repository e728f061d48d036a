//! Wharf's test kit: [`TestApp`] runs the real server on port 0 over a throwaway SQLite file
//! or PostgreSQL database, with a client whose calls assert the expected status.
//!
//! PostgreSQL tests use `WHARF_TEST_DATABASE_URL` (a server URL; each test gets its own
//! database, dropped afterwards). [`dual_test`] defines each test on both backends: when the
//! variable is unset at build time the PostgreSQL half is `#[ignore]`d (cargo counts it as
//! ignored, not passed); when it is set and the server is unreachable, the test fails. A test
//! crate using it needs the build script that turns the variable into `cfg(wharf_postgres)`:
//!
//! ```text
//! println!("cargo::rerun-if-env-changed=WHARF_TEST_DATABASE_URL");
//! println!("cargo::rustc-check-cfg=cfg(wharf_postgres)");
//! if std::env::var_os("WHARF_TEST_DATABASE_URL").is_some() {
//!     println!("cargo::rustc-cfg=wharf_postgres");
//! }
//! ```

mod browser;
mod cloud;
mod db;
mod receiver;
mod telnyx;

use std::{net::SocketAddr, time::Duration};

pub use browser::Browser;
pub use cloud::{CloudNumber, cloud_body};
pub use db::{Backend, TestDb};
pub use receiver::{Received, TestReceiver};
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::Value;
pub use telnyx::{FakeTelnyx, TELNYX_KEY};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
/// The scripted WhatsApp Web port that drives the `web` engine's logic in tests.
pub use wharf_engines::web::fake as web;
/// The fake Meta Graph server the Cloud API engine is tested against.
pub use wharf_fakegraph as fakegraph;
pub use wharf_server::Config;
use wharf_server::http::wapio::messages::{MessageInfoView, SendAnswerView};
use wharf_store::Store;
/// Runs a test on SQLite and on PostgreSQL (see the macro crate for the rules).
pub use wharf_testkit_macros::dual_test;

/// A running server with an account and its personal access token.
pub struct TestApp {
    pub addr: SocketAddr,
    pub config: Config,
    /// The account created for the test.
    pub account_id: String,
    /// Its personal access token, used by default.
    pub pat: String,
    pub store: Store,
    client: reqwest::Client,
    shutdown: CancellationToken,
    /// The server task; its error is kept as text.
    server: Option<JoinHandle<Result<(), String>>>,
    db: TestDb,
    /// The fake Graph server the app's `cloud_graph_base_url` points at.
    graph: wharf_fakegraph::FakeGraph,
}

impl TestApp {
    /// A server on `backend` with default settings; `None` when PostgreSQL is not configured.
    pub async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_with(backend, |_| {}).await
    }

    /// A server on `backend` with settings adjusted by `configure`.
    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> Option<Self> {
        // `WHARF_TEST_LOG=debug` shows the server's logs of a test (with --nocapture).
        if let Ok(filter) = std::env::var("WHARF_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        wharf_server::install_crypto();
        let db = TestDb::create(backend).await?;
        let graph = wharf_fakegraph::FakeGraph::start().await;
        let mut config = Config {
            database_url: db.url().to_owned(),
            instance_id: "test-instance".into(),
            rate_limit_per_minute: std::num::NonZeroU32::new(100_000).expect("non-zero"),
            // Receipts only when a test asks for them; quick retries.
            emulator_delivered_after_ms: -1,
            emulator_read_after_ms: -1,
            send_retry_base_ms: 20,
            send_retry_max_ms: 200,
            // A fresh key per test, so cloud sessions work on both backends.
            secret_key: Some(random_key()),
            webhook_retry_delays_ms: vec![50, 100, 200],
            // Receivers (and the fake Graph server) listen on loopback, which the outbound
            // policy refuses unless allowed. Tests of the policy set their own list.
            outbound_allow: vec!["127.0.0.0/8".into(), "::1".into()],
            // The Graph address is operator configuration: the fake's.
            cloud_graph_base_url: graph.base_url(),
            // Tests never reach WhatsApp: web sessions dial a loopback port where nothing
            // listens, announcing a fixed version instead of fetching it.
            web_endpoint: "ws://127.0.0.1:1/ws/chat".into(),
            web_version: Some("2.3000.1".into()),
            ..Config::default()
        };
        configure(&mut config);
        let store = Store::open(&config.database_url)
            .await
            .expect("open the test database");
        let (account, token) = store
            .create_account("test")
            .await
            .expect("create the test account");
        let mut app = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            config,
            account_id: account.id.to_string(),
            pat: token.raw,
            store,
            client: reqwest::Client::new(),
            shutdown: CancellationToken::new(),
            server: None,
            db,
            graph,
        };
        app.start().await;
        Some(app)
    }

    /// Starts the server (again) on the app's database and a new port.
    pub async fn start(&mut self) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        self.addr = listener.local_addr().expect("local address");
        self.shutdown = CancellationToken::new();
        let config = self.config.clone();
        let shutdown = self.shutdown.clone();
        self.server = Some(tokio::spawn(async move {
            wharf_server::run(config, listener, shutdown)
                .await
                .map_err(|e| format!("{e:#}"))
        }));
    }

    /// Stops the server gracefully and waits for it to finish.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            let result = tokio::time::timeout(Duration::from_secs(10), server)
                .await
                .expect("the server stops within 10 s")
                .expect("the server task does not panic");
            result.expect("the server ends without error");
        }
    }

    /// Stops the server and starts a new one on the same database (a restart).
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start().await;
    }

    /// The test database (to play outages with [`TestDb::set_reachable`]).
    pub fn db(&self) -> &TestDb {
        &self.db
    }

    /// The fake Graph server behind the app's cloud sessions.
    pub fn graph(&self) -> &wharf_fakegraph::FakeGraph {
        &self.graph
    }

    /// The database behind this app.
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A request authenticated with the account's PAT (change it with [`Call::token`]).
    pub fn call(&self, method: Method, path: &str) -> Call<'_> {
        Call {
            app: self,
            method,
            path: path.to_owned(),
            auth: Auth::Bearer(self.pat.clone()),
            body: None,
            headers: HeaderMap::new(),
        }
    }

    pub fn get(&self, path: &str) -> Call<'_> {
        self.call(Method::GET, path)
    }
    pub fn post(&self, path: &str) -> Call<'_> {
        self.call(Method::POST, path)
    }
    pub fn patch(&self, path: &str) -> Call<'_> {
        self.call(Method::PATCH, path)
    }
    pub fn delete(&self, path: &str) -> Call<'_> {
        self.call(Method::DELETE, path)
    }

    /// Creates a session with `body` and returns the creation answer.
    pub async fn create_session(&self, body: Value) -> Value {
        self.post("/v1/whatsapp-sessions")
            .json(body)
            .expect(201)
            .await
    }

    /// Creates an emulator session, connects it and scans its QR: a connected session.
    /// Returns `(session_id, session_key)`.
    pub async fn connected_session(&self) -> (String, String) {
        let created = self.create_session(serde_json::json!({})).await;
        let (id, key) = session_and_key(&created);
        self.post(&format!("/v1/whatsapp-sessions/{id}/connect"))
            .expect(200)
            .await;
        let scanned = self
            .post(&format!("/emulator/sessions/{id}/scan"))
            .expect(200)
            .await;
        assert_eq!(scanned["status"], "connected");
        (id, key)
    }

    /// Sends a text from `session` to `to` with the PAT; returns the `msg_…` id.
    pub async fn send_text(&self, session: &str, to: &str, text: &str) -> String {
        let answer: SendAnswerView = self
            .post("/api/send-message")
            .json(serde_json::json!({"session_id": session, "to": to, "text": text}))
            .expect_view(202)
            .await;
        answer.message_id
    }

    /// Waits until the message's status is `status` (at most 10 s); returns its info, which
    /// is checked to read as the handler's `MessageInfoView`.
    pub async fn wait_status(&self, message: &str, status: &str) -> Value {
        let path = format!("/api/messages/{message}/info");
        let info = self.eventually(&path, |m| m["status"] == status).await;
        let _: MessageInfoView = read_view(&path, info.clone());
        info
    }

    /// The message's info, read as the handler's view.
    pub async fn info(&self, message: &str) -> MessageInfoView {
        self.get(&format!("/api/messages/{message}/info"))
            .expect_view(200)
            .await
    }

    /// Polls `path` until `done` holds for its JSON (at most 10 s).
    pub async fn eventually(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let body = self.get(path).expect(200).await;
            if done(&body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "condition never held; last answer: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Base64 of 32 random bytes.
fn random_key() -> String {
    use base64::Engine as _;
    let key: [u8; 32] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(key)
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

enum Auth {
    None,
    Bearer(String),
    ApiKey(String),
}

/// A request being built.
pub struct Call<'a> {
    app: &'a TestApp,
    method: Method,
    path: String,
    auth: Auth,
    body: Option<(Vec<u8>, &'static str)>,
    headers: HeaderMap,
}

/// An answer: status, headers and the body parsed as JSON (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Answer {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl<'a> Call<'a> {
    /// Authenticate with `token` as a Bearer token.
    pub fn token(mut self, token: &str) -> Self {
        self.auth = Auth::Bearer(token.to_owned());
        self
    }
    /// Authenticate with `token` in `X-API-Key`.
    pub fn api_key(mut self, token: &str) -> Self {
        self.auth = Auth::ApiKey(token.to_owned());
        self
    }
    /// Send no credentials.
    pub fn anonymous(mut self) -> Self {
        self.auth = Auth::None;
        self
    }
    /// A JSON body.
    pub fn json(mut self, body: Value) -> Self {
        self.body = Some((body.to_string().into_bytes(), "application/json"));
        self
    }
    /// A raw body with a content type.
    pub fn raw(mut self, body: &str, content_type: &'static str) -> Self {
        self.body = Some((body.as_bytes().to_vec(), content_type));
        self
    }
    /// An extra header.
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers
            .insert(name, value.parse().expect("valid header value"));
        self
    }

    /// Sends the request.
    pub async fn send(self) -> Answer {
        let mut req = self
            .app
            .client
            .request(self.method, self.app.url(&self.path))
            .headers(self.headers);
        req = match self.auth {
            Auth::None => req,
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::ApiKey(t) => req.header("x-api-key", t),
        };
        if let Some((body, content_type)) = self.body {
            req = req.header("content-type", content_type).body(body);
        }
        let resp = req.send().await.expect("the server answers");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("a readable body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            json,
            text,
        }
    }

    /// Sends the request, asserts the status and reads the body into `T`, the view the
    /// handler serializes: a field missing, renamed, of another type or unknown fails the test.
    pub async fn expect_view<T: serde::de::DeserializeOwned>(self, status: u16) -> T {
        let what = format!("{} {}", self.method, self.path);
        let json = self.expect(status).await;
        read_view(&what, json)
    }

    /// Sends the request, asserts the status and returns the JSON body.
    pub async fn expect(self, status: u16) -> Value {
        let what = format!("{} {}", self.method, self.path);
        let answer = self.send().await;
        assert_eq!(
            answer.status.as_u16(),
            status,
            "{what} answered {}: {}",
            answer.status,
            answer.text
        );
        answer.json
    }
}

/// Reads `json` (the answer to `what`) into the view `T`; panics naming the field at fault.
pub fn read_view<T: serde::de::DeserializeOwned>(what: &str, json: Value) -> T {
    serde_json::from_value(json.clone()).unwrap_or_else(|e| {
        panic!(
            "{what}: the answer does not read as {}: {e}: {json}",
            std::any::type_name::<T>()
        )
    })
}

/// Asserts `body` is the error envelope with `reason_code`, and returns its `errors` map.
pub fn assert_error(body: &Value, reason_code: &str) -> Value {
    assert_eq!(body["success"], false, "not an error envelope: {body}");
    assert_eq!(
        body["reason_code"], reason_code,
        "unexpected reason: {body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "no message: {body}"
    );
    body["errors"].clone()
}

/// The session id and raw session key of a session creation's answer.
pub fn session_and_key(created: &Value) -> (String, String) {
    let id = created["session"]["session_id"]
        .as_str()
        .expect("session id")
        .to_owned();
    let key = created["session_api_key"]["raw"]
        .as_str()
        .expect("raw key")
        .to_owned();
    (id, key)
}
