//! A webhook receiver for the scenarios: counts deliveries and remembers each event id.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{Router, extract::State, http::HeaderMap, http::StatusCode, routing::post};

/// Shared counts.
#[derive(Default)]
pub struct Seen {
    /// Deliveries per event id (`webhook-id`).
    pub by_event: HashMap<String, u32>,
    pub total: u64,
}

/// A running receiver.
pub struct Receiver {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Seen>>,
}

async fn receive(State(seen): State<Arc<Mutex<Seen>>>, headers: HeaderMap) -> StatusCode {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    *seen.by_event.entry(id).or_default() += 1;
    seen.total += 1;
    StatusCode::NO_CONTENT
}

impl Receiver {
    pub async fn start() -> anyhow::Result<Self> {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = Router::new()
            .route("/", post(receive))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, seen })
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn total(&self) -> u64 {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    pub fn distinct(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_event
            .len()
    }
}
