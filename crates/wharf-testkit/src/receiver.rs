//! A webhook receiver: an HTTP server on port 0 that records every request it gets and can
//! be told to fail or stall first, so retries and isolation can be observed.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::{Mutex, mpsc};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: String,
    pub json: Value,
    /// The status it was answered with.
    pub answered: u16,
}

impl Received {
    /// A header's value.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Whether the Standard Webhooks signature verifies with `secret` (`whsec_…`).
    pub fn signature_valid(&self, secret: &str) -> bool {
        let Some(key) = secret
            .strip_prefix("whsec_")
            .and_then(|k| STANDARD.decode(k).ok())
        else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
        mac.update(
            format!(
                "{}.{}.{}",
                self.header("webhook-id"),
                self.header("webhook-timestamp"),
                self.body
            )
            .as_bytes(),
        );
        let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        self.header("webhook-signature")
            .split(' ')
            .any(|s| s == expected)
    }
}

struct Behaviour {
    fail_first: AtomicUsize,
    delay: Mutex<Duration>,
    tx: mpsc::UnboundedSender<Received>,
}

/// The receiver; requests arrive on [`TestReceiver::next`].
pub struct TestReceiver {
    pub addr: SocketAddr,
    rx: mpsc::UnboundedReceiver<Received>,
    behaviour: Arc<Behaviour>,
    _server: tokio::task::JoinHandle<()>,
}

async fn receive(State(b): State<Arc<Behaviour>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let delay = *b.delay.lock().await;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let failing = b
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    };
    let body = String::from_utf8_lossy(&body).into_owned();
    let json = serde_json::from_str(&body).unwrap_or(Value::Null);
    let _ = b.tx.send(Received {
        headers,
        body,
        json,
        answered: status.as_u16(),
    });
    status
}

impl TestReceiver {
    /// Starts a receiver that answers 204.
    pub async fn start() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let behaviour = Arc::new(Behaviour {
            fail_first: AtomicUsize::new(0),
            delay: Mutex::new(Duration::ZERO),
            tx,
        });
        let app = Router::new()
            .route("/{*path}", post(receive))
            .route("/", post(receive))
            .with_state(behaviour.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let addr = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            rx,
            behaviour,
            _server: server,
        }
    }

    /// Its URL, with `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Answers 500 to the next `n` requests.
    pub fn fail_next(&self, n: usize) {
        self.behaviour.fail_first.store(n, Ordering::SeqCst);
    }

    /// Waits `delay` before answering each request.
    pub async fn set_delay(&self, delay: Duration) {
        *self.behaviour.delay.lock().await = delay;
    }

    /// The next request, within 10 s.
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(10), self.rx.recv())
            .await
            .expect("a webhook request arrives within 10 s")
            .expect("the receiver runs")
    }

    /// The next request that was answered with success and has event type `kind`.
    pub async fn next_of(&mut self, kind: &str) -> Received {
        loop {
            let r = self.next().await;
            if r.answered < 300 && r.json["type"] == kind {
                return r;
            }
        }
    }

    /// Whether a request arrives within `wait`.
    pub async fn quiet_for(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.rx.recv()).await.is_err()
    }
}
