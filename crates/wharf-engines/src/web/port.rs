//! The narrow port between the web engine's logic and the WhatsApp Web client.
//!
//! One [`WebPort`] is one client lifetime: the crate's `Client` cannot be restarted after a
//! disconnect, a logout or a terminal failure, so the engine opens a new port through the
//! [`WebPortFactory`] to go on. Everything here speaks Wharf's types only; the adapter over
//! whatsapp-rust (`super::client`) and the fake used by tests (`super::fake`) implement it.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use tokio::sync::mpsc;
use wharf_core::{
    EngineUpdate, Jid, Phone, SessionId,
    message::{Content, MessageKind, Presence},
};

pub use super::convert::Uploaded;
pub use super::social_port::{ContactChange, JoinAnswer, SocialPort};

/// Why a port operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// The client has no live connection (or is not logged in yet): retry once it has.
    #[error("not connected to WhatsApp")]
    NotConnected,
    /// WhatsApp (or the client) refused the request itself; retrying the same request fails
    /// again.
    #[error("{0}")]
    Rejected(String),
    /// A failure that may pass (network, timeout, server error).
    #[error("{0}")]
    Transient(String),
    /// WhatsApp asks to wait before trying again.
    #[error("{reason}")]
    Throttled { reason: String, after: Duration },
    /// WhatsApp refused because of the session's standing (not an admin, already a member,
    /// waiting for approval): the request is valid, the state is not.
    #[error("{0}")]
    Conflict(String),
}

/// A message to send, in Wharf's terms; the adapter builds the protocol message from it.
#[derive(Debug, Clone, PartialEq)]
pub struct PortMessage {
    /// The WhatsApp message id, fixed before the first attempt so a retry reuses it.
    pub id: String,
    pub to: Jid,
    pub content: Content,
    /// The WhatsApp id of the message this one quotes.
    pub quoted_id: Option<String>,
}

/// A received file on WhatsApp's media servers: what downloading and decrypting it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRef {
    /// Image, video, document, audio or sticker (it picks the decryption keys).
    pub kind: MessageKind,
    pub direct_path: String,
    pub media_key: Vec<u8>,
    pub file_sha256: Vec<u8>,
    pub file_enc_sha256: Vec<u8>,
    pub file_length: u64,
}

/// A file fetched from a URL a client gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    /// The server's `Content-Type`, when it gave one.
    pub mime_type: Option<String>,
}

/// Why a media URL could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The outbound policy refused the address (private, loopback, …): no connection made.
    #[error("refused by the outbound policy: {0}")]
    Refused(String),
    /// The file is larger than the limit.
    #[error("the file is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// The server refused it for good (a 4xx answer, a malformed URL).
    #[error("{0}")]
    Failed(String),
    /// A failure that may pass (network, timeout, 5xx).
    #[error("{0}")]
    Transient(String),
}

/// Downloads the files of media sends given by URL, through the server's outbound policy
/// (the engine knows no policy of its own).
#[async_trait]
pub trait MediaFetch: Send + Sync {
    /// The file at `url`, refused when it is larger than `limit` bytes.
    async fn fetch(&self, url: &str, limit: u64) -> Result<Fetched, FetchError>;
}

/// Something done to existing messages.
#[derive(Debug, Clone, PartialEq)]
pub enum PortAction {
    /// Replace the text of a sent message.
    Edit {
        chat: Jid,
        target_id: String,
        text: String,
    },
    /// Revoke a sent message for everyone.
    Revoke { chat: Jid, target_id: String },
    /// Read receipts; `sender` is the participant who wrote them in a group.
    MarkRead {
        chat: Jid,
        sender: Option<Jid>,
        ids: Vec<String>,
    },
}

/// Why a connection attempt or a connection ended, as the client reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum PortEvent {
    /// A connection attempt is under way (after a drop, or the first one).
    Connecting,
    /// A connection attempt failed (the client retries by itself with backoff; nothing else
    /// reports it).
    ConnectFailed { reason: String },
    /// A pairing QR payload to show; valid for `ttl`.
    Qr { code: String, ttl: Duration },
    /// Every QR WhatsApp offered went unscanned.
    QrExhausted,
    /// A pair code was issued (also answered to the caller of [`WebPort::pair_code`]).
    PairCode { code: String },
    /// The phone linked this device.
    Paired { phone: Phone },
    /// Online (logged in, initial sync done) as `phone`.
    Connected { phone: Option<Phone> },
    /// An established connection dropped; the client reconnects by itself.
    Dropped { reason: String },
    /// The device was unlinked (from the phone, or refused at login): pairing is needed again.
    LoggedOut { reason: String },
    /// Another client took over this device's connection.
    StreamReplaced,
    /// WhatsApp banned the number for a while.
    TemporaryBan {
        reason: String,
        expires_in: Duration,
    },
    /// WhatsApp refused the connection; `retrying` says whether the client goes on trying.
    ConnectFailure {
        code: i32,
        reason: String,
        retrying: bool,
    },
    /// Updates that need no acknowledgement (receipts, acks, messages outside the hook).
    Updates(Vec<EngineUpdate>),
    /// Address book entries WhatsApp synced (app-state contact actions, push names).
    Contacts(Vec<ContactChange>),
    /// The client stopped for good (after a terminal event or a disconnect).
    Ended,
}

/// Commits inbound updates before WhatsApp is told they arrived: the client acks only after
/// `commit` returns `Ok`; an error leaves them unacknowledged, so WhatsApp redelivers them.
#[async_trait]
pub trait InboundCommit: Send + Sync {
    async fn commit(&self, updates: Vec<EngineUpdate>) -> Result<(), String>;
}

/// One client lifetime of one session; its contacts, groups and channels are in
/// [`SocialPort`].
#[async_trait]
pub trait WebPort: SocialPort + Send + Sync {
    /// Starts connecting (and keeps reconnecting with the client's own backoff); returns at
    /// once. Progress arrives as [`PortEvent`]s.
    async fn connect(&self) -> Result<(), PortError>;
    /// Closes the connection, keeping the device link. Terminal for this port.
    async fn disconnect(&self);
    /// Unlinks the device (tells WhatsApp when connected), then closes. Terminal.
    async fn logout(&self);
    /// Asks WhatsApp for a pair code for `phone` (the alternative to scanning the QR).
    async fn pair_code(&self, phone: &Phone) -> Result<String, PortError>;
    /// Sends a message with its fixed id.
    async fn send(&self, message: &PortMessage) -> Result<(), PortError>;
    /// Edits, revokes or marks read.
    async fn act(&self, action: &PortAction) -> Result<(), PortError>;
    /// Shows a presence in a chat, or globally.
    async fn presence(&self, to: Option<&Jid>, presence: Presence) -> Result<(), PortError>;
    /// Encrypts and uploads a file to WhatsApp's media servers (needs a connection).
    async fn upload(&self, kind: MessageKind, data: Vec<u8>) -> Result<Uploaded, PortError>;
    /// Sends a media message (its `content` is [`Content::Media`]) whose file was uploaded.
    async fn send_media(&self, message: &PortMessage, upload: &Uploaded) -> Result<(), PortError>;
    /// Downloads and decrypts a received file (needs a connection).
    async fn download(&self, media: &MediaRef) -> Result<Vec<u8>, PortError>;
}

/// An opened port and the events it reports.
pub struct OpenedPort {
    pub port: Arc<dyn WebPort>,
    pub events: mpsc::UnboundedReceiver<PortEvent>,
}

/// Builds ports over each session's stored device.
#[async_trait]
pub trait WebPortFactory: Send + Sync {
    /// A new client lifetime for `session`, committing inbound messages through `inbound`.
    async fn open(
        &self,
        session: SessionId,
        inbound: Arc<dyn InboundCommit>,
    ) -> Result<OpenedPort, PortError>;
    /// Wipes the session's stored device (keys, sessions, everything), after a logout.
    async fn forget(&self, session: SessionId) -> Result<(), PortError>;
}
