//! A faithful fake of Meta's WhatsApp Cloud API (the Graph API) for tests and benchmarks.
//!
//! [`FakeGraph::start`] serves the contract in `shared/reference/meta-cloud-api.md` on
//! `127.0.0.1:0`: sends with strict payload validation, templates, phone numbers, business
//! profile and media, plus signed webhooks back to a configured URL. Everything a client does
//! is recorded; anything malformed is answered with Graph's `(#100)` error *and* listed in
//! [`FakeGraph::rejections`], so a test can assert its client never sent a bad request.
//!
//! ```no_run
//! # async fn demo() {
//! use wharf_fakegraph::{FakeGraph, FakeNumber, Failure};
//! let graph = FakeGraph::start().await;
//! graph.add_number(FakeNumber::new("106540352242922", "102290129340398", "15550783881"));
//! graph.fail_next(Failure::code(131_000).on_path("/messages"));
//! // point the client at graph.base_url() …
//! graph.assert_no_rejections();
//! # }
//! ```

mod check;
mod error;
mod media;
mod messages;
mod numbers;
mod server;
mod state;
mod templates;
mod types;
mod webhooks;
mod wire;

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use axum::{Router, serve::ListenerExt};
use serde_json::Value;
use tokio::{net::TcpListener, sync::watch};

use crate::state::Shared;
pub use crate::types::{EmittedWebhook, Failure, FakeNumber, RecordedRequest, RecordedSend};

/// A running fake Graph server. Cheap to clone; the server stops when the last clone is
/// dropped or on [`FakeGraph::shutdown`].
#[derive(Clone)]
pub struct FakeGraph {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl FakeGraph {
    /// Binds `127.0.0.1:0` and serves until shutdown. Must run inside a tokio runtime.
    pub async fn start() -> FakeGraph {
        // reqwest (for webhooks) needs a rustls provider even for plain-HTTP loopback use.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake graph: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("fake graph: local address");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build()
            .expect("fake graph: HTTP client");
        let shared = Arc::new(Shared::new(format!("http://{addr}"), client));
        let (shutdown, mut rx) = watch::channel(false);
        let app = Router::new()
            .fallback(server::handle)
            .with_state(shared.clone());
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            let stop = async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::warn!(error = %e, "fake graph: server stopped");
            }
        });
        FakeGraph {
            inner: Arc::new(Inner { shared, shutdown }),
        }
    }

    fn sh(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// `http://127.0.0.1:PORT`. Routes answer with any `/vNN.N` prefix and without one.
    pub fn base_url(&self) -> String {
        self.sh().base_url.clone()
    }

    /// Stops the server (in-flight requests finish). Recorded data stays readable.
    pub fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
    }

    /// Registers a phone number and its WABA (replacing a number with the same id).
    pub fn add_number(&self, n: FakeNumber) {
        self.sh().lock().add_number(n);
    }

    /// Where emitted webhooks are POSTed.
    pub fn set_webhook_url(&self, url: &str) {
        self.sh().lock().webhook_url = Some(url.to_owned());
    }

    /// Queues a failure; the first queued failure matching a request answers it.
    pub fn fail_next(&self, f: Failure) {
        if f.times > 0 {
            self.sh().lock().failures.push(f);
        }
    }

    /// Adds `d` to every response.
    pub fn set_latency(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sh().latency_nanos.store(nanos, Ordering::Relaxed);
    }

    /// From now on every call with that number's token gets 401, code 190, subcode 463.
    pub fn expire_token(&self, phone_number_id: &str) {
        let mut st = self.sh().lock();
        let token = st
            .numbers
            .get(phone_number_id)
            .map(|n| n.cfg.access_token.clone())
            .unwrap_or_else(|| panic!("fake graph: unknown number {phone_number_id}"));
        st.expired_tokens.insert(token);
    }

    /// After each accepted send, emit signed `sent`, `delivered`, `read` webhooks in that
    /// order on a background task (a few milliseconds apart).
    pub fn set_auto_statuses(&self, on: bool) {
        self.sh().auto_statuses.store(on, Ordering::Relaxed);
    }

    /// Accepted sends (not mark-read or typing indicators), in order.
    pub fn sends(&self) -> Vec<RecordedSend> {
        self.sh().lock().sends.clone()
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.sh().lock().requests.clone()
    }

    /// Every request the fake judged malformed, as `"METHOD /path: reason"`.
    pub fn rejections(&self) -> Vec<String> {
        self.sh().lock().rejections.clone()
    }

    /// Panics, listing them, when the fake judged any request malformed.
    #[track_caller]
    pub fn assert_no_rejections(&self) {
        let rejections = self.rejections();
        assert!(rejections.is_empty(), "malformed requests: {rejections:?}");
    }

    /// Every webhook the fake emitted, in order, with the receiver's status.
    pub fn webhooks(&self) -> Vec<EmittedWebhook> {
        self.sh().lock().webhooks.clone()
    }

    /// Forgets recorded sends, requests, rejections and webhooks (e.g. after a warm-up).
    pub fn clear_records(&self) {
        let mut st = self.sh().lock();
        st.sends.clear();
        st.requests.clear();
        st.rejections.clear();
        st.webhooks.clear();
    }

    /// The largest number of accepted sends of that number inside any window of `window`.
    pub fn max_sends_in_window(&self, phone_number_id: &str, window: Duration) -> usize {
        let st = self.sh().lock();
        let times: Vec<_> = st
            .sends
            .iter()
            .filter(|s| s.phone_number_id == phone_number_id)
            .map(|s| s.at)
            .collect();
        let mut best = 0;
        let mut lo = 0;
        for hi in 0..times.len() {
            while times[hi].duration_since(times[lo]) >= window {
                lo += 1;
            }
            best = best.max(hi - lo + 1);
        }
        best
    }

    /// Accepted sends of that number.
    pub fn send_count(&self, phone_number_id: &str) -> usize {
        self.sh()
            .lock()
            .numbers
            .get(phone_number_id)
            .map_or(0, |n| n.send_count)
    }

    /// Total wall time spent inside request handlers, excluding injected latency (the
    /// fake's own cost, for benchmarks).
    pub fn handler_busy_time(&self) -> Duration {
        Duration::from_nanos(self.sh().busy_nanos.load(Ordering::Relaxed))
    }

    /// POSTs a signed statuses webhook (`sent|delivered|read|played|failed`). `errors` (an
    /// array, or one object) is attached as `errors`; `failed` without errors gets a 131000.
    /// Returns the receiver's status, or 502 when it could not be reached.
    ///
    /// # Panics
    /// When `pnid` is unknown.
    pub async fn emit_status(
        &self,
        pnid: &str,
        wamid: &str,
        status: &str,
        errors: Option<Value>,
    ) -> reqwest::StatusCode {
        let built = webhooks::status_webhook(&self.sh().lock(), Some(pnid), wamid, status, errors);
        let (body, sig) = built.unwrap_or_else(|| panic!("fake graph: unknown number {pnid}"));
        self.post(body, Some(sig)).await
    }

    /// POSTs a signed inbound-message webhook from `from`. Fills `from`, `id` (a fresh wamid)
    /// and `timestamp` when absent, and `type` when the message holds one known kind; the id
    /// becomes valid for mark-read. Returns the message id and the receiver's status.
    ///
    /// # Panics
    /// When `pnid` is unknown or `message` is not an object.
    pub async fn emit_inbound(
        &self,
        pnid: &str,
        from: &str,
        profile_name: &str,
        message: Value,
    ) -> (String, reqwest::StatusCode) {
        let (id, body, sig) = {
            let mut st = self.sh().lock();
            let built =
                webhooks::inbound_webhook(self.sh(), &st, pnid, from, profile_name, message)
                    .unwrap_or_else(|| {
                        panic!("fake graph: unknown number {pnid} or message not an object")
                    });
            st.inbound_ids.insert(built.0.clone());
            built
        };
        (id, self.post(body, Some(sig)).await)
    }

    /// POSTs a signed `message_template_status_update` webhook (`event`: APPROVED, REJECTED,
    /// PAUSED, …; `reason` defaults to `"NONE"`). When the template is known, its status
    /// becomes `event` first.
    pub async fn emit_template_status(
        &self,
        waba_id: &str,
        template_id: &str,
        name: &str,
        language: &str,
        event: &str,
        reason: Option<&str>,
    ) -> reqwest::StatusCode {
        let (body, sig) = {
            let mut st = self.sh().lock();
            if let Some(t) = st.templates.get_mut(template_id)
                && t.waba == waba_id
            {
                t.status = event.to_owned();
            }
            webhooks::template_webhook(&st, waba_id, template_id, name, language, event, reason)
        };
        self.post(body, Some(sig)).await
    }

    /// POSTs arbitrary bytes with an optional `X-Hub-Signature-256` (for signature tests).
    pub async fn emit_raw(&self, body: Vec<u8>, signature: Option<String>) -> reqwest::StatusCode {
        self.post(body, signature).await
    }

    async fn post(&self, body: Vec<u8>, signature: Option<String>) -> reqwest::StatusCode {
        assert!(
            self.sh().lock().webhook_url.is_some(),
            "fake graph: set_webhook_url before emitting webhooks"
        );
        webhooks::post(self.sh(), body, signature)
            .await
            .unwrap_or(reqwest::StatusCode::BAD_GATEWAY)
    }

    /// `sha256=<hex>` HMAC of `body` with that number's app secret.
    ///
    /// # Panics
    /// When `pnid` is unknown.
    pub fn sign(&self, pnid: &str, body: &[u8]) -> String {
        let st = self.sh().lock();
        let n = st
            .numbers
            .get(pnid)
            .unwrap_or_else(|| panic!("fake graph: unknown number {pnid}"));
        webhooks::sign(&n.cfg.app_secret, body)
    }

    /// The first template called `name` in that WABA, as `GET /{template-id}` shows it.
    pub fn template(&self, waba_id: &str, name: &str) -> Option<Value> {
        let st = self.sh().lock();
        st.waba_templates
            .get(waba_id)?
            .iter()
            .filter_map(|id| st.templates.get(id))
            .find(|t| t.name == name)
            .map(|t| t.to_json())
    }

    /// Sets the status (APPROVED, REJECTED, PAUSED, …) of every language of a template.
    ///
    /// # Panics
    /// When the WABA has no template called `name`.
    pub fn set_template_status(&self, waba_id: &str, name: &str, status: &str) {
        let mut st = self.sh().lock();
        let st = &mut *st;
        let ids = st.waba_templates.get(waba_id).cloned().unwrap_or_default();
        let mut found = false;
        for id in ids {
            if let Some(t) = st.templates.get_mut(&id)
                && t.name == name
            {
                t.status = status.to_owned();
                found = true;
            }
        }
        assert!(found, "fake graph: no template {name} in WABA {waba_id}");
    }

    /// The number's business profile (every stored field plus `messaging_product`).
    pub fn profile(&self, pnid: &str) -> Value {
        numbers::profile_of(self.sh(), pnid)
    }

    /// The number's `code_verification_status` (NOT_VERIFIED until a correct verify_code).
    pub fn verification_status(&self, pnid: &str) -> Option<String> {
        let st = self.sh().lock();
        st.numbers.get(pnid).map(|n| n.verification.to_owned())
    }

    /// Whether the number is registered (true until `deregister`).
    pub fn is_registered(&self, pnid: &str) -> bool {
        self.sh()
            .lock()
            .numbers
            .get(pnid)
            .is_some_and(|n| n.registered)
    }

    /// Stores media as if `pnid` had uploaded it (e.g. for inbound media messages);
    /// returns its id.
    pub fn add_media(&self, pnid: &str, mime: &str, bytes: Vec<u8>) -> String {
        media::add(self.sh(), pnid, mime, bytes)
    }

    /// Whether a media id still exists.
    pub fn has_media(&self, media_id: &str) -> bool {
        self.sh().lock().media.contains_key(media_id)
    }
}
