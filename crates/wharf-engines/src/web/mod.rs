//! The `web` engine: a linked device on WhatsApp Web multi-device, through whatsapp-rust.
//!
//! The logic here (lifecycle, QR rotation and exhaustion, reconnects with a watchdog, the
//! terminal states, error mapping) speaks only to the [`WebPort`] of one client lifetime;
//! `client` holds the adapter over the crate's `Client`, `fake` a scripted port for tests.
//!
//! A session's supervisor task opens a port, connects, and follows its events:
//! - a QR is recorded and reported (`session.qr`); exhaustion ends the session with
//!   reason `qr_exhausted`;
//! - failed connects are silent in the crate except through the transport (reported here as
//!   `connecting` with the failure as reason); a watchdog rebuilds the client when no
//!   progress (a QR, a login) comes within [`WebConfig::watchdog`], with backoff;
//! - a logout from the phone wipes the stored device and reports `logged_out`; a temporary
//!   ban, a stream replaced by another client and a refused connection each stop the session
//!   with their own reason (`temporary_ban`, `stream_replaced`, `connect_failure`), never a
//!   silent loop.

pub mod book;
pub mod client;
pub mod convert;
mod engine;
pub mod fake;
pub mod http;
pub mod media;
pub mod port;
mod social;
pub mod social_port;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_social;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock, Weak},
    time::Duration,
};

use async_trait::async_trait;
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
    time::{Instant, sleep_until},
};
use wharf_core::{
    Capabilities, Engine, EngineError, EngineKind, EngineSink, EngineUpdate, Jid, Phone, SessionId,
    engine::{EngineSession, Pacing},
    jid::JidServer,
    message::{Content, MessageAction, MessageKind, Outbound, Presence, ProviderId},
    social::{
        ChannelInfo, EngineContact, GroupChange, GroupInfo, InvitePreview, ParticipantAction,
        ParticipantResult, Registration, SocialCapabilities, UserInfo,
    },
};

pub use self::media::WEB_MEDIA_CAPABILITIES;
pub use self::{
    book::{ContactBook, MemoryBook},
    port::{
        FetchError, Fetched, InboundCommit, MediaFetch, MediaRef, OpenedPort, PortAction,
        PortError, PortEvent, PortMessage, SocialPort, WebPort, WebPortFactory,
    },
    social::WEB_SOCIAL,
};

/// WhatsApp's own WebSocket endpoint, the default `web_endpoint`.
pub const DEFAULT_WEB_ENDPOINT: &str = "wss://web.whatsapp.com/ws/chat";

/// What the web engine can do without a way to fetch media URLs ([`WebEngine::with_media`]).
/// Buttons, lists and templates do not exist for linked devices; channels take text only
/// (the crate has no unencrypted channel media upload), which [`WebEngine`]'s `refusal` adds
/// to these.
pub const WEB_CAPABILITIES: Capabilities = Capabilities {
    qr_pairing: true,
    kinds: &[
        MessageKind::Text,
        MessageKind::Location,
        MessageKind::Contact,
        MessageKind::Poll,
        MessageKind::Reaction,
    ],
    view_once: false,
    channels: true,
    edits: true,
    revoke: true,
    replies: true,
    presence: true,
    mark_read: true,
    client_message_ids: true,
};

/// Operator settings of the web engine.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The WebSocket URL connected to (`web_endpoint`); tests point it at loopback.
    pub endpoint: String,
    /// How long a client may go without progress (a QR, a login) before it is rebuilt.
    pub watchdog: Duration,
    /// The first pause before rebuilding a client; it doubles up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// How long a stop waits for the client to close before abandoning it.
    pub stop_timeout: Duration,
    /// The pace every session keeps unless configured otherwise.
    pub pacing: Pacing,
    /// The largest file a media send downloads from its URL.
    pub media_max_bytes: u64,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            endpoint: DEFAULT_WEB_ENDPOINT.to_owned(),
            watchdog: Duration::from_secs(90),
            backoff_min: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
            stop_timeout: Duration::from_secs(15),
            pacing: DEFAULT_WEB_PACING,
            media_max_bytes: media::DEFAULT_MEDIA_MAX_BYTES,
        }
    }
}

/// Conservative defaults: linked numbers that send fast get banned. One message a second at
/// most, one per 4 s to the same chat after the first, and a random pause of up to 2 s
/// before each send; no daily cap unless configured.
pub const DEFAULT_WEB_PACING: Pacing = Pacing {
    per_second: 1,
    pair_burst: 1,
    pair_interval_ms: 4_000,
    jitter_ms: 2_000,
    daily_cap: None,
};

/// Where a session stands inside the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebStatus {
    /// Connecting or reconnecting; `reason` says why it is not online (the last failure).
    Connecting { reason: String },
    /// Waiting for a QR scan or a pair code.
    Pairing,
    /// Online as `phone`.
    Connected { phone: Option<Phone> },
    /// Stopped by a terminal event; `reason` starts with its code (`qr_exhausted`,
    /// `logged_out`, `temporary_ban`, `stream_replaced`, `connect_failure`).
    Ended { reason: String },
}

/// A session the engine runs.
struct Running {
    port: Option<Arc<dyn WebPort>>,
    status: WebStatus,
    qr: Option<String>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    pacing: Pacing,
    /// A logout was asked for here: the client's own "logged out" is not news.
    logging_out: bool,
}

struct Inner {
    factory: Arc<dyn WebPortFactory>,
    sink: Weak<dyn EngineSink>,
    config: WebConfig,
    sessions: Mutex<HashMap<SessionId, Running>>,
    /// Per-session pacing set by the operator, kept across restarts of the session.
    pacing: Mutex<HashMap<SessionId, Pacing>>,
    /// Fetches the files of media sends; without it media is not claimed.
    media: OnceLock<Arc<dyn MediaFetch>>,
    /// The address books WhatsApp syncs.
    book: Arc<dyn ContactBook>,
}

/// The WhatsApp Web engine.
pub struct WebEngine {
    inner: Arc<Inner>,
}

impl WebEngine {
    /// An engine opening clients through `factory` and reporting to `sink`.
    pub fn new(
        factory: Arc<dyn WebPortFactory>,
        sink: Weak<dyn EngineSink>,
        config: WebConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                factory,
                sink,
                config,
                sessions: Mutex::new(HashMap::new()),
                pacing: Mutex::new(HashMap::new()),
                media: OnceLock::new(),
                book: Arc::new(MemoryBook::default()),
            }),
        }
    }

    /// Sends media given by URL, fetching the files through `fetch` (the server's outbound
    /// policy); media kinds and view-once are claimed from then on.
    pub fn with_media(self, fetch: Arc<dyn MediaFetch>) -> Self {
        let _ = self.inner.media.set(fetch);
        self
    }

    /// Keeps the synced address books in `book` (in memory without it). Call before use.
    pub fn with_contact_book(mut self, book: Arc<dyn ContactBook>) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("the contact book is set before the engine is shared")
            .book = book;
        self
    }

    /// The engine's settings.
    pub fn config(&self) -> &WebConfig {
        &self.inner.config
    }

    /// Where `session` stands, when the engine runs it.
    pub fn status(&self, session: SessionId) -> Option<WebStatus> {
        self.inner.with(session, |r| r.status.clone())
    }

    /// The QR payload to scan now, while pairing.
    pub fn current_qr(&self, session: SessionId) -> Option<String> {
        self.inner.with(session, |r| r.qr.clone()).flatten()
    }

    /// Sets the pace of one session's sends (kept until changed).
    pub fn set_pacing(&self, session: SessionId, pacing: Pacing) {
        self.inner.pacing.lock().unwrap().insert(session, pacing);
        self.inner.with(session, |r| r.pacing = pacing);
    }

    /// Asks WhatsApp for a pair code for `phone`: typed on the phone under "Linked devices",
    /// it links the session like a QR scan. Needs the session to be pairing.
    pub async fn pair_code(
        &self,
        session: SessionId,
        phone: &Phone,
    ) -> Result<String, EngineError> {
        let (port, status) = self
            .inner
            .with(session, |r| (r.port.clone(), r.status.clone()))
            .ok_or_else(|| EngineError::Conflict("the session is not running".into()))?;
        match status {
            WebStatus::Pairing => {}
            WebStatus::Connected { .. } => {
                return Err(EngineError::Conflict(
                    "the session is already linked".into(),
                ));
            }
            _ => {
                return Err(EngineError::Conflict(
                    "the session is not waiting to be linked yet (no QR code so far)".into(),
                ));
            }
        }
        let port =
            port.ok_or_else(|| EngineError::Conflict("the session is not running".into()))?;
        port.pair_code(phone).await.map_err(map_port_error)
    }

    fn port(&self, session: SessionId) -> Result<Arc<dyn WebPort>, EngineError> {
        let not_online = || EngineError::RetryLater {
            reason: "the session is not connected to WhatsApp".into(),
            after_ms: Some(5_000),
            session_wide: true,
        };
        let (port, status) = self
            .inner
            .with(session, |r| (r.port.clone(), r.status.clone()))
            .ok_or_else(not_online)?;
        match (port, status) {
            (Some(port), WebStatus::Connected { .. }) => Ok(port),
            _ => Err(not_online()),
        }
    }
}

impl Inner {
    fn with<R>(&self, session: SessionId, f: impl FnOnce(&mut Running) -> R) -> Option<R> {
        self.sessions.lock().unwrap().get_mut(&session).map(f)
    }

    async fn report(&self, session: SessionId, update: EngineUpdate) {
        let Some(sink) = self.sink.upgrade() else {
            return;
        };
        if let Err(e) = sink.update(session, update).await {
            tracing::warn!(%session, error = %e, "recording a web session update failed");
        }
    }
}

/// Maps a port failure onto the engine contract.
pub fn map_port_error(e: PortError) -> EngineError {
    match e {
        PortError::NotConnected => EngineError::RetryLater {
            reason: "the session is not connected to WhatsApp".into(),
            after_ms: Some(5_000),
            session_wide: true,
        },
        PortError::Rejected(why) => EngineError::Permanent(why),
        PortError::Conflict(why) => EngineError::Conflict(why),
        PortError::Transient(why) => EngineError::Transient(why),
        PortError::Throttled { reason, after } => EngineError::RetryLater {
            reason,
            after_ms: Some(u64::try_from(after.as_millis()).unwrap_or(u64::MAX)),
            session_wide: true,
        },
    }
}

/// The hook the client awaits before acknowledging inbound messages: it records them
/// through the sink (which commits before returning).
struct SinkCommit {
    session: SessionId,
    sink: Weak<dyn EngineSink>,
}

#[async_trait]
impl InboundCommit for SinkCommit {
    async fn commit(&self, updates: Vec<EngineUpdate>) -> Result<(), String> {
        let sink = self
            .sink
            .upgrade()
            .ok_or_else(|| "the server is shutting down".to_owned())?;
        sink.updates(self.session, updates)
            .await
            .map_err(|e| e.to_string())
    }
}

/// How one client lifetime ended.
enum Outcome {
    /// Asked to stop.
    Stopped,
    /// A terminal event: the session stays down.
    Terminal,
    /// No progress, or the client ended by itself: rebuild it.
    Rebuild { reason: String },
}

async fn supervise(inner: Arc<Inner>, session: EngineSession, mut stop: watch::Receiver<bool>) {
    let id = session.id;
    let mut backoff = inner.config.backoff_min;
    loop {
        if *stop.borrow() {
            return;
        }
        let hook = Arc::new(SinkCommit {
            session: id,
            sink: inner.sink.clone(),
        });
        let outcome = match inner.factory.open(id, hook).await {
            Err(e) => Outcome::Rebuild {
                reason: format!("cannot open the linked device: {e}"),
            },
            Ok(OpenedPort { port, events }) => {
                inner.with(id, |r| r.port = Some(port.clone()));
                let outcome = match port.connect().await {
                    Err(e) => Outcome::Rebuild {
                        reason: format!("cannot start the client: {e}"),
                    },
                    Ok(()) => follow(&inner, &session, events, &mut stop, &mut backoff).await,
                };
                inner.with(id, |r| r.port = None);
                let closing = tokio::time::timeout(inner.config.stop_timeout, port.disconnect());
                if closing.await.is_err() {
                    tracing::warn!(session = %id, "the web client did not close in time");
                }
                outcome
            }
        };
        match outcome {
            Outcome::Stopped | Outcome::Terminal => return,
            Outcome::Rebuild { reason } => {
                let reason = format!("{reason}; retrying in {}s", backoff.as_secs().max(1));
                set_status(
                    &inner,
                    id,
                    WebStatus::Connecting {
                        reason: reason.clone(),
                    },
                );
                inner.report(id, EngineUpdate::Connecting { reason }).await;
                let wake = Instant::now() + backoff;
                backoff = (backoff * 2).min(inner.config.backoff_max);
                tokio::select! {
                    _ = sleep_until(wake) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

fn set_status(inner: &Inner, session: SessionId, status: WebStatus) {
    inner.with(session, |r| {
        if !matches!(status, WebStatus::Pairing) {
            r.qr = None;
        }
        r.status = status;
    });
}

/// Follows one client lifetime's events until it ends.
async fn follow(
    inner: &Arc<Inner>,
    session: &EngineSession,
    mut events: mpsc::UnboundedReceiver<PortEvent>,
    stop: &mut watch::Receiver<bool>,
    backoff: &mut Duration,
) -> Outcome {
    let id = session.id;
    let watchdog = inner.config.watchdog;
    // Armed while the client should be making progress; `None` once online.
    let mut deadline = Some(Instant::now() + watchdog);
    let mut last_failure: Option<String> = None;
    // The number the device is linked to, as far as known (a fresh link names it).
    let mut own_phone = session.phone.clone();
    loop {
        let event = tokio::select! {
            _ = stop.changed() => return Outcome::Stopped,
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                let why = last_failure.as_deref().unwrap_or("no answer from WhatsApp");
                return Outcome::Rebuild {
                    reason: format!("no connection after {}s ({why})", watchdog.as_secs()),
                };
            }
            event = events.recv() => event,
        };
        let Some(event) = event else {
            return Outcome::Rebuild {
                reason: "the client stopped reporting".into(),
            };
        };
        match event {
            PortEvent::Connecting => {}
            PortEvent::ConnectFailed { reason } => {
                if last_failure.as_ref() != Some(&reason) {
                    last_failure = Some(reason.clone());
                    let reason = format!("connect failed: {reason}");
                    set_status(
                        inner,
                        id,
                        WebStatus::Connecting {
                            reason: reason.clone(),
                        },
                    );
                    inner.report(id, EngineUpdate::Connecting { reason }).await;
                }
            }
            PortEvent::Qr { code, ttl } => {
                deadline = Some(Instant::now() + ttl + watchdog);
                inner.with(id, |r| {
                    r.status = WebStatus::Pairing;
                    r.qr = Some(code.clone());
                });
                inner.report(id, EngineUpdate::Qr { code }).await;
            }
            PortEvent::PairCode { .. } => {
                // A pair code lives about three minutes.
                deadline = Some(Instant::now() + Duration::from_secs(180) + watchdog);
            }
            PortEvent::QrExhausted => {
                let reason =
                    "qr_exhausted: no QR code was scanned in time; connect again for new ones"
                        .to_owned();
                return end(
                    inner,
                    id,
                    EngineUpdate::Disconnected {
                        reason: reason.clone(),
                    },
                    reason,
                )
                .await;
            }
            PortEvent::Paired { phone } => {
                deadline = Some(Instant::now() + watchdog);
                own_phone = Some(phone);
            }
            PortEvent::Connected { phone } => {
                deadline = None;
                last_failure = None;
                *backoff = inner.config.backoff_min;
                let phone = phone.or_else(|| own_phone.clone());
                set_status(
                    inner,
                    id,
                    WebStatus::Connected {
                        phone: phone.clone(),
                    },
                );
                match phone {
                    Some(phone) => inner.report(id, EngineUpdate::Connected { phone }).await,
                    None => tracing::warn!(session = %id, "online, but WhatsApp named no number"),
                }
            }
            PortEvent::Dropped { reason } => {
                deadline = Some(Instant::now() + watchdog);
                let reason = format!("connection lost: {reason}");
                set_status(
                    inner,
                    id,
                    WebStatus::Connecting {
                        reason: reason.clone(),
                    },
                );
                inner.report(id, EngineUpdate::Connecting { reason }).await;
            }
            PortEvent::LoggedOut { reason } => return logged_out(inner, id, &reason).await,
            PortEvent::StreamReplaced => {
                let reason =
                    "stream_replaced: another WhatsApp Web client took over this linked device"
                        .to_owned();
                return end(
                    inner,
                    id,
                    EngineUpdate::Disconnected {
                        reason: reason.clone(),
                    },
                    reason,
                )
                .await;
            }
            PortEvent::TemporaryBan { reason, expires_in } => {
                let reason = format!(
                    "temporary_ban: {reason} (WhatsApp lifts it in {}s)",
                    expires_in.as_secs()
                );
                return end(
                    inner,
                    id,
                    EngineUpdate::Disconnected {
                        reason: reason.clone(),
                    },
                    reason,
                )
                .await;
            }
            PortEvent::ConnectFailure {
                code,
                reason,
                retrying,
            } => {
                if matches!(code, 401 | 403 | 406) {
                    return logged_out(inner, id, &format!("{code} {reason}")).await;
                }
                let text = format!("connect_failure: {code} {reason}");
                if retrying {
                    last_failure = Some(text.clone());
                    set_status(
                        inner,
                        id,
                        WebStatus::Connecting {
                            reason: text.clone(),
                        },
                    );
                    inner
                        .report(id, EngineUpdate::Connecting { reason: text })
                        .await;
                } else {
                    return end(
                        inner,
                        id,
                        EngineUpdate::Disconnected {
                            reason: text.clone(),
                        },
                        text,
                    )
                    .await;
                }
            }
            PortEvent::Updates(updates) => {
                if let Some(sink) = inner.sink.upgrade()
                    && let Err(e) = sink.updates(id, updates).await
                {
                    tracing::warn!(session = %id, error = %e, "recording web updates failed");
                }
            }
            PortEvent::Contacts(changes) => {
                if let Err(e) = book::apply(&*inner.book, id, &changes).await {
                    tracing::warn!(session = %id, error = %e, "saving synced contacts failed");
                }
            }
            PortEvent::Ended => {
                return Outcome::Rebuild {
                    reason: last_failure.unwrap_or_else(|| "the client stopped".into()),
                };
            }
        }
    }
}

async fn end(inner: &Inner, id: SessionId, update: EngineUpdate, reason: String) -> Outcome {
    set_status(inner, id, WebStatus::Ended { reason });
    inner.report(id, update).await;
    Outcome::Terminal
}

async fn logged_out(inner: &Inner, id: SessionId, why: &str) -> Outcome {
    // The crate keeps the keys of a logged-out device, which would then fail every login:
    // forget them so the next start offers a new QR.
    if let Err(e) = inner.factory.forget(id).await {
        tracing::error!(session = %id, error = %e, "wiping a logged-out web device failed");
    }
    if let Err(e) = inner.book.forget(id).await {
        tracing::error!(session = %id, error = %e, "wiping a logged-out address book failed");
    }
    let reason = format!("logged_out: the device was unlinked ({why})");
    if inner.with(id, |r| r.logging_out) == Some(true) {
        // Asked for through the API, which records it itself.
        set_status(inner, id, WebStatus::Ended { reason });
        return Outcome::Terminal;
    }
    end(
        inner,
        id,
        EngineUpdate::LoggedOut {
            reason: reason.clone(),
        },
        reason,
    )
    .await
}
