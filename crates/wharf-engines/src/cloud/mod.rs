//! The Cloud API engine: official WhatsApp Business numbers through Meta's Graph API.
//!
//! A session is one phone number id with its token. `start` checks the credentials by reading
//! the number from Graph (`connected`, or `disconnected` with Graph's error as the reason);
//! sends map Wharf's content model to Graph payloads and return the `wamid`; Graph's errors are
//! classified by `error.code` (see [`graph::ErrorClass`]); an auth error disconnects the
//! session. What arrives from Meta comes by webhook: [`webhook`] reads those payloads, and the
//! server hands the updates to the sink. Business operations (templates, profile, numbers,
//! registration, media) are methods of [`CloudEngine`], in `business.rs`.
//!
//! Credentials are not kept by the engine: it asks a [`CloudDirectory`] (the server, which
//! stores them sealed) when a session starts, and keeps them in memory while it runs.

mod business;
pub mod graph;
pub mod payload;
pub mod webhook;

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, RwLock, Weak},
    time::Duration,
};

use async_trait::async_trait;
pub use business::{CloudError, CodeMethod, MediaInfo, TemplatePage, TemplateQuery};
pub use graph::{ErrorClass, Graph, GraphError};
use wharf_core::{
    Capabilities, Engine, EngineError, EngineKind, EngineSink, EngineUpdate, Jid, Phone,
    ProviderId, SessionId,
    engine::{EngineSession, Pacing},
    jid::JidServer,
    message::{Content, MessageAction, MessageKind, Outbound, Presence},
};

/// The customer-service window: 24 hours after the user's last message.
pub const SERVICE_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// What the Cloud API can send.
const KINDS: &[MessageKind] = &[
    MessageKind::Text,
    MessageKind::Image,
    MessageKind::Video,
    MessageKind::Document,
    MessageKind::Audio,
    MessageKind::Sticker,
    MessageKind::Location,
    MessageKind::Contact,
    MessageKind::Reaction,
    MessageKind::Buttons,
    MessageKind::List,
    MessageKind::Template,
];

/// Server-wide settings of the engine; sessions may override the Graph address and their
/// throughput.
#[derive(Debug, Clone)]
pub struct CloudSettings {
    /// `https://graph.facebook.com`.
    pub graph_base_url: String,
    /// `v23.0`.
    pub graph_version: String,
    /// Sends per second per number, for sessions that do not set their own.
    pub throughput_per_second: u32,
    /// Per recipient: bursts of this many sends …
    pub pair_burst: u32,
    /// … then one per this many milliseconds.
    pub pair_interval_ms: u64,
    /// Time limit of one Graph call.
    pub timeout: Duration,
}

impl Default for CloudSettings {
    fn default() -> Self {
        Self {
            graph_base_url: "https://graph.facebook.com".into(),
            graph_version: "v23.0".into(),
            throughput_per_second: 80,
            pair_burst: 45,
            pair_interval_ms: 6000,
            timeout: graph::DEFAULT_TIMEOUT,
        }
    }
}

/// One session's Graph credentials, in clear (only in memory).
#[derive(Clone, PartialEq, Eq)]
pub struct CloudCredentials {
    pub phone_number_id: String,
    pub waba_id: String,
    pub access_token: String,
    pub app_secret: String,
    /// `None`: the server's default.
    pub graph_base_url: Option<String>,
    pub graph_version: Option<String>,
    pub throughput_per_second: Option<u32>,
}

impl fmt::Debug for CloudCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudCredentials")
            .field("phone_number_id", &self.phone_number_id)
            .field("waba_id", &self.waba_id)
            .field("access_token", &"***")
            .field("app_secret", &"***")
            .field("graph_base_url", &self.graph_base_url)
            .field("graph_version", &self.graph_version)
            .field("throughput_per_second", &self.throughput_per_second)
            .finish()
    }
}

/// Where the engine finds what the server keeps about its sessions.
#[async_trait]
pub trait CloudDirectory: Send + Sync {
    /// The credentials of a cloud session.
    async fn credentials(&self, session: SessionId) -> Result<CloudCredentials, EngineError>;

    /// The WhatsApp id of the newest message `chat` sent to `session`, if any (typing
    /// indicators are attached to one).
    async fn last_inbound_id(
        &self,
        session: SessionId,
        chat: &Jid,
    ) -> Result<Option<ProviderId>, EngineError>;
}

/// A running session: its credentials and a Graph client with its token.
struct Line {
    credentials: CloudCredentials,
    graph: Graph,
}

/// The Cloud API engine.
pub struct CloudEngine {
    http: reqwest::Client,
    sink: Weak<dyn EngineSink>,
    directory: Arc<dyn CloudDirectory>,
    settings: CloudSettings,
    lines: RwLock<HashMap<SessionId, Arc<Line>>>,
}

impl CloudEngine {
    /// An engine reporting to `sink` (held weakly: it usually owns the engine), reading
    /// credentials from `directory`. Needs a rustls crypto provider installed.
    pub fn new(
        sink: Weak<dyn EngineSink>,
        directory: Arc<dyn CloudDirectory>,
        settings: CloudSettings,
    ) -> Result<Self, EngineError> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| EngineError::Permanent(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            sink,
            directory,
            settings,
            lines: RwLock::new(HashMap::new()),
        })
    }

    /// The server-wide settings.
    pub fn settings(&self) -> &CloudSettings {
        &self.settings
    }

    /// A Graph client for these credentials.
    pub fn graph_for(&self, c: &CloudCredentials) -> Graph {
        Graph::new(
            self.http.clone(),
            c.graph_base_url
                .as_deref()
                .unwrap_or(&self.settings.graph_base_url),
            c.graph_version
                .as_deref()
                .unwrap_or(&self.settings.graph_version),
            &c.access_token,
        )
    }

    fn cached(&self, session: SessionId) -> Option<Arc<Line>> {
        self.lines
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&session)
            .cloned()
    }

    fn forget(&self, session: SessionId) {
        self.lines
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&session);
    }

    /// Reads the session's credentials afresh and keeps them.
    async fn load(&self, session: SessionId) -> Result<Arc<Line>, EngineError> {
        let credentials = self.directory.credentials(session).await?;
        let line = Arc::new(Line {
            graph: self.graph_for(&credentials),
            credentials,
        });
        self.lines
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(session, line.clone());
        Ok(line)
    }

    /// The session's line, loading its credentials when they are not in memory.
    async fn line(&self, session: SessionId) -> Result<Arc<Line>, EngineError> {
        match self.cached(session) {
            Some(line) => Ok(line),
            None => self.load(session).await,
        }
    }

    fn sink(&self) -> Result<Arc<dyn EngineSink>, EngineError> {
        self.sink
            .upgrade()
            .ok_or_else(|| EngineError::Transient("the server is shutting down".into()))
    }

    /// What a failed call means for the session: an auth error disconnects it (its token no
    /// longer works; a new one is needed). Returns the error for the caller.
    async fn failed(&self, session: SessionId, e: &GraphError, attempt: u32) -> EngineError {
        if e.class() == ErrorClass::Auth {
            tracing::warn!(session = %session, error = %e, "cloud session disconnected: its credentials were refused");
            self.forget(session);
            if let Ok(sink) = self.sink()
                && let Err(err) = sink
                    .update(
                        session,
                        EngineUpdate::Disconnected {
                            reason: e.describe(),
                        },
                    )
                    .await
            {
                tracing::error!(session = %session, error = %err, "could not record the disconnection");
            }
        }
        e.to_engine_error(attempt)
    }
}

#[async_trait]
impl Engine for CloudEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Cloud
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            qr_pairing: false,
            kinds: KINDS,
            view_once: false,
            channels: false,
            edits: false,
            revoke: false,
            replies: true,
            presence: true,
            mark_read: true,
            client_message_ids: false,
        }
    }

    /// Checks the credentials by reading the number from Graph: connected as that number,
    /// or disconnected with Graph's error as the reason.
    async fn start(&self, session: &EngineSession) -> Result<(), EngineError> {
        let line = self.load(session.id).await?;
        let pnid = &line.credentials.phone_number_id;
        let answer = line
            .graph
            .get(
                pnid,
                &[("fields", "display_phone_number,verified_name".into())],
            )
            .await;
        let update = match answer {
            Ok(number) => {
                let shown = number["display_phone_number"].as_str().unwrap_or_default();
                match Phone::parse(shown) {
                    Ok(phone) => EngineUpdate::Connected { phone },
                    Err(e) => EngineUpdate::Disconnected {
                        reason: format!(
                            "Graph gave phone number id {pnid} the number {shown:?}, which Wharf cannot read: {e}"
                        ),
                    },
                }
            }
            Err(e) => {
                self.forget(session.id);
                EngineUpdate::Disconnected {
                    reason: e.describe(),
                }
            }
        };
        self.sink()?.update(session.id, update).await
    }

    async fn stop(&self, session: SessionId) -> Result<(), EngineError> {
        self.forget(session);
        Ok(())
    }

    async fn logout(&self, session: SessionId) -> Result<(), EngineError> {
        self.forget(session);
        Ok(())
    }

    async fn send(
        &self,
        session: SessionId,
        message: &Outbound,
    ) -> Result<ProviderId, EngineError> {
        let line = self.line(session).await?;
        let body = payload::message(message)?;
        let path = format!("{}/messages", line.credentials.phone_number_id);
        match line.graph.post(&path, &body).await {
            Ok(answer) => answer["messages"][0]["id"]
                .as_str()
                .map(ProviderId::from)
                .ok_or_else(|| {
                    EngineError::Transient(format!(
                        "Graph accepted the message without a message id: {answer}"
                    ))
                }),
            Err(e) => Err(self.failed(session, &e, message.attempt).await),
        }
    }

    async fn act(&self, session: SessionId, action: &MessageAction) -> Result<(), EngineError> {
        let MessageAction::MarkRead { provider_ids, .. } = action else {
            return Err(EngineError::Unsupported(EngineKind::Cloud));
        };
        let line = self.line(session).await?;
        let path = format!("{}/messages", line.credentials.phone_number_id);
        for id in provider_ids {
            if let Err(e) = line.graph.post(&path, &payload::mark_read(id, false)).await {
                return Err(self.failed(session, &e, 0).await);
            }
        }
        Ok(())
    }

    /// Only `composing` in a chat exists on the Cloud API: a typing indicator, attached to
    /// (and marking as read) the chat's latest incoming message.
    async fn presence(
        &self,
        session: SessionId,
        to: Option<&Jid>,
        presence: Presence,
    ) -> Result<(), EngineError> {
        let (Presence::Composing, Some(chat)) = (presence, to) else {
            return Err(EngineError::Unsupported(EngineKind::Cloud));
        };
        let Some(id) = self.directory.last_inbound_id(session, chat).await? else {
            return Err(EngineError::Conflict(format!(
                "a typing indicator answers a message, and {chat} has not written to this session"
            )));
        };
        let line = self.line(session).await?;
        let path = format!("{}/messages", line.credentials.phone_number_id);
        match line.graph.post(&path, &payload::mark_read(&id, true)).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.failed(session, &e, 0).await),
        }
    }

    fn refusal(&self, content: &Content, to: &Jid, quoted: bool) -> Option<String> {
        if let Some(r) = self.capabilities().refusal(content, to, quoted) {
            return Some(r);
        }
        if to.server() != JidServer::User {
            return Some("messages to groups, channels or broadcast lists".into());
        }
        if quoted && content.kind() == MessageKind::Reaction {
            return Some("reactions as replies".into());
        }
        None
    }

    fn pacing(&self, session: SessionId) -> Option<Pacing> {
        let per_second = self
            .cached(session)
            .and_then(|l| l.credentials.throughput_per_second)
            .unwrap_or(self.settings.throughput_per_second);
        Some(Pacing {
            per_second,
            pair_burst: self.settings.pair_burst,
            pair_interval_ms: self.settings.pair_interval_ms,
            jitter_ms: 0,
            daily_cap: None,
        })
    }

    fn service_window_ms(&self) -> Option<i64> {
        Some(SERVICE_WINDOW_MS)
    }

    /// A received file by its Graph media id (`{"media_id"}`, as a received message keeps
    /// it): Graph needs no decryption, only the token.
    async fn decrypt_media(
        &self,
        session: SessionId,
        reference: &serde_json::Value,
    ) -> Result<(Vec<u8>, String), EngineError> {
        let id = reference
            .get("media_id")
            .and_then(serde_json::Value::as_str)
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()))
            .ok_or_else(|| EngineError::Permanent("not a Cloud API media id".into()))?;
        self.download_media(session, id).await.map_err(|e| match e {
            business::CloudError::Graph(g) => g.to_engine_error(0),
            business::CloudError::Engine(e) => e,
        })
    }
}
