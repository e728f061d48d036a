//! The contract between Wharf and the code that talks to WhatsApp.
//!
//! An engine runs sessions. Services ask it to start, stop or log out a session; the engine
//! reports what happens (a QR to scan, the link succeeding, the connection dropping) to an
//! [`EngineSink`], which persists each update with its event before returning.

use std::{fmt, sync::Arc};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    AccountId, Jid, MessageId, Phone, SessionId,
    jid::JidServer,
    message::{
        Content, Inbound, MessageAction, MessageKind, Outbound, Presence, ProviderId, ReceiptKind,
        ReportedStatus,
    },
    social::{
        ChannelInfo, EngineContact, GroupChange, GroupEvent, GroupInfo, InvitePreview,
        ParticipantAction, ParticipantResult, Registration, SocialCapabilities, UserInfo,
    },
};

/// The engines Wharf knows of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    /// The built-in simulated WhatsApp network.
    Emulator,
    /// Meta's WhatsApp Cloud API.
    Cloud,
    /// WhatsApp Web multi-device.
    Web,
}

impl EngineKind {
    /// Every engine kind.
    pub const ALL: [Self; 3] = [Self::Emulator, Self::Cloud, Self::Web];

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Emulator => "emulator",
            Self::Cloud => "cloud",
            Self::Web => "web",
        }
    }

    /// The kind named `text`, if any.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an engine can do; requests it cannot serve are refused at the API before anything is
/// queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Capabilities {
    /// Links a device by scanning a QR code.
    pub qr_pairing: bool,
    /// Message kinds it can send.
    #[schema(value_type = Vec<MessageKind>)]
    pub kinds: &'static [MessageKind],
    /// View-once media.
    pub view_once: bool,
    /// Posting into channels (`@newsletter`).
    pub channels: bool,
    /// Editing sent text messages.
    pub edits: bool,
    /// Revoking sent messages for everyone.
    pub revoke: bool,
    /// Replies quoting another message.
    pub replies: bool,
    /// Presence updates (typing, recording, online).
    pub presence: bool,
    /// Sending read receipts.
    pub mark_read: bool,
    /// Whether it chooses WhatsApp message ids itself (so Wharf can pick them in advance).
    pub client_message_ids: bool,
}

impl Capabilities {
    /// What of a send the engine cannot do, named for an error message; `None` when it can.
    pub fn refusal(&self, content: &Content, to: &Jid, quoted: bool) -> Option<String> {
        let kind = content.kind();
        if !self.kinds.contains(&kind) {
            Some(format!("{} messages", kind.as_str()))
        } else if content.is_view_once() && !self.view_once {
            Some("view-once media".into())
        } else if to.server() == JidServer::Newsletter && !self.channels {
            Some("channel messages".into())
        } else if quoted && !self.replies {
            Some("replies".into())
        } else {
            None
        }
    }
}

/// What the service layer tells an engine about the session it should run.
#[derive(Debug, Clone)]
pub struct EngineSession {
    pub id: SessionId,
    pub account_id: AccountId,
    /// The number the session is (or should be) linked to, when known.
    pub phone: Option<Phone>,
    /// Whether a device link already exists, so no QR is needed to reconnect.
    pub paired: bool,
}

/// Something that happened to a session inside an engine.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineUpdate {
    /// A (new) pairing code to show as a QR.
    Qr { code: String },
    /// The session is (re)connecting and not online yet; `reason` says why (the last
    /// failure, or the drop that started it).
    Connecting { reason: String },
    /// The session is online as `phone`.
    Connected { phone: Phone },
    /// The connection dropped; the link is kept and a later start reconnects.
    Disconnected { reason: String },
    /// The device link is gone (logged out from the phone); pairing is needed again.
    LoggedOut { reason: String },
    /// A receipt for a message this session sent.
    Receipt {
        provider_id: ProviderId,
        kind: ReceiptKind,
        at: i64,
    },
    /// A message arrived.
    Inbound(Inbound),
    /// The sender of a received message replaced its content.
    InboundEdited {
        chat: Jid,
        provider_id: String,
        content: Content,
        at: i64,
    },
    /// The sender of a received message revoked it for everyone.
    InboundRevoked {
        chat: Jid,
        provider_id: String,
        at: i64,
    },
    /// A provider's report on a message this session sent. `message_id` is Wharf's own id
    /// when the provider echoes it back (so a report that beats the recording of the send
    /// still finds its message).
    Status {
        provider_id: ProviderId,
        message_id: Option<MessageId>,
        status: ReportedStatus,
        at: i64,
    },
    /// Something happened to a group the session is (or was) in.
    Group(GroupEvent),
}

/// A failure inside an engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The request conflicts with the session's state inside the engine.
    #[error("{0}")]
    Conflict(String),
    /// The engine does not do this.
    #[error("not supported by the {0} engine")]
    Unsupported(EngineKind),
    /// A failure worth retrying later.
    #[error("temporary engine failure: {0}")]
    Transient(String),
    /// A failure that retrying will not fix.
    #[error("engine failure: {0}")]
    Permanent(String),
    /// A failure worth retrying, with the provider's hint: not before `after_ms` (when
    /// given), and, when `session_wide`, nothing else of the session either (a limit or an
    /// outage of the whole number rather than of one chat).
    #[error("temporary engine failure: {reason}")]
    RetryLater {
        reason: String,
        after_ms: Option<u64>,
        session_wide: bool,
    },
}

impl EngineError {
    /// Whether retrying may help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transient(_) | Self::RetryLater { .. })
    }
}

/// How fast an engine lets one session send, when it knows better than the server-wide
/// `send_rate_<engine>` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// Sends per second, counted in any sliding one-second window (not a token bucket, whose
    /// burst could double the count in a window).
    pub per_second: u32,
    /// Per recipient: bursts of up to `pair_burst` sends, then one per `pair_interval_ms`.
    pub pair_burst: u32,
    pub pair_interval_ms: u64,
    /// A random pause of 0 to `jitter_ms` before each send, so sends do not come at machine
    /// regular intervals.
    pub jitter_ms: u64,
    /// At most this many sends a day (UTC); the rest wait in the queue for the next day.
    pub daily_cap: Option<u32>,
}

impl Pacing {
    /// The pace of an engine without its own: the server's rate, no other limit.
    pub fn at_rate(per_second: u32) -> Self {
        Self {
            per_second,
            // A thousand a second to any one chat: no limit in practice.
            pair_burst: 1000,
            pair_interval_ms: 1,
            jitter_ms: 0,
            daily_cap: None,
        }
    }
}

/// Receives engine updates and makes them durable (status change plus event, in one
/// transaction) before returning.
#[async_trait]
pub trait EngineSink: Send + Sync {
    /// Records `update` for `session`.
    async fn update(&self, session: SessionId, update: EngineUpdate) -> Result<(), EngineError> {
        self.updates(session, vec![update]).await
    }

    /// Records several updates of one session, in order, in as few transactions as it can.
    async fn updates(
        &self,
        session: SessionId,
        updates: Vec<EngineUpdate>,
    ) -> Result<(), EngineError>;
}

/// One way of talking to WhatsApp.
#[async_trait]
pub trait Engine: Send + Sync {
    /// Which engine this is.
    fn kind(&self) -> EngineKind;

    /// What it can do.
    fn capabilities(&self) -> Capabilities;

    /// Starts or resumes the session; progress arrives at the sink.
    async fn start(&self, session: &EngineSession) -> Result<(), EngineError>;

    /// Stops the session's connection, keeping its device link.
    async fn stop(&self, session: SessionId) -> Result<(), EngineError>;

    /// Stops the session and removes its device link for good.
    async fn logout(&self, session: SessionId) -> Result<(), EngineError>;

    /// Sends a message; returns its WhatsApp id. Called again after a crash with the same
    /// [`Outbound::provider_id`] where the engine supports client ids.
    async fn send(&self, session: SessionId, message: &Outbound)
    -> Result<ProviderId, EngineError>;

    /// Acts on sent or received messages.
    async fn act(&self, session: SessionId, action: &MessageAction) -> Result<(), EngineError>;

    /// Shows a presence in a chat (or globally, without one).
    async fn presence(
        &self,
        session: SessionId,
        to: Option<&Jid>,
        presence: Presence,
    ) -> Result<(), EngineError>;

    /// What of a send the engine cannot do, named for an error message; `None` when it can.
    /// Engines with rules beyond their [`Capabilities`] (say, which chats they reach) add them.
    fn refusal(&self, content: &Content, to: &Jid, quoted: bool) -> Option<String> {
        self.capabilities().refusal(content, to, quoted)
    }

    /// The pace this session's sends must keep; `None` for the server's per-engine rate.
    fn pacing(&self, _session: SessionId) -> Option<Pacing> {
        None
    }

    /// The customer-service window: free-form messages may only go to a chat that wrote
    /// within this many milliseconds (templates may always go). `None`: no such rule.
    fn service_window_ms(&self) -> Option<i64> {
        None
    }

    /// Its contact, group and channel abilities; none unless the engine says otherwise.
    fn social(&self) -> SocialCapabilities {
        SocialCapabilities::default()
    }

    /// Whether `phone` is on WhatsApp.
    async fn on_whatsapp(
        &self,
        _session: SessionId,
        _phone: &Phone,
    ) -> Result<Registration, EngineError> {
        Err(EngineError::Unsupported(self.kind()))
    }

    /// The session's address book as WhatsApp syncs it.
    async fn contacts(&self, _session: SessionId) -> Result<Vec<EngineContact>, EngineError> {
        Err(EngineError::Unsupported(self.kind()))
    }

    /// The JIDs the session has blocked.
    async fn blocklist(&self, _session: SessionId) -> Result<Vec<Jid>, EngineError> {
        Err(EngineError::Unsupported(self.kind()))
    }

    /// Blocks (or unblocks) a contact.
    async fn set_blocked(
        &self,
        _session: SessionId,
        _jid: &Jid,
        _blocked: bool,
    ) -> Result<(), EngineError> {
        Err(EngineError::Unsupported(self.kind()))
    }

    /// The profile picture URL of a contact or group; `None` when it has none or hides it.
    async fn picture(
        &self,
        _session: SessionId,
        _jid: &Jid,
    ) -> Result<Option<String>, EngineError> {
        Err(EngineError::Unsupported(self.kind()))
    }

    /// The groups the session is in.
    async fn groups(&self, _session: SessionId) -> Result<Vec<GroupInfo>, EngineError> {
        Err(EngineError::Unsupported(self.kind()))
    }

    /// One group the session is in; `None` when it is not in it (or it does not exist).
    async fn group(
        &self,
        _session: SessionId,
        _group: &Jid,
    ) -> Result<Option<GroupInfo>, EngineError> {
        Err(EngineError::Unsupported(self.kind()))
    }

    /// Creates a group with the session as its creator; answers it and each participant's
    /// outcome.
    async fn create_group(
        &self,
        _session: SessionId,
        _subject: &str,
        _participants: &[Jid],
    ) -> Result<(GroupInfo, Vec<ParticipantResult>), EngineError> {
        Err(EngineError::Unsupported(self.kind()))
    }

    /// Adds, removes, promotes or demotes participants (the session must be an admin).
    async fn update_participants(
        &self,
        _session: SessionId,
        _group: &Jid,
        _action: ParticipantAction,
        _participants: &[Jid],
    ) -> Result<Vec<ParticipantResult>, EngineError> {
        Err(EngineError::Unsupported(self.kind()))
    }

    /// Changes a group's subject, description or settings.
    async fn update_group(
        &self,
        _session: SessionId,
        _group: &Jid,
        _changes: &[GroupChange],
    ) -> Result<GroupInfo, EngineError> {
        Err(EngineError::Unsupported(self.kind()))
    }

    /// The group's invite code; `reset` revokes the old one first.
    async fn invite_code(
        &self,
        _session: SessionId,
        _group: &Jid,
        _reset: bool,
    ) -> Result<String, EngineError> {
        Err(EngineError::Unsupported(self.kind()))
    }

    /// Leaves a group.
    async fn leave_group(&self, _session: SessionId, _group: &Jid) -> Result<(), EngineError> {
        Err(EngineError::Unsupported(self.kind()))
    }

    /// What an invite code leads to; `None` when the code is unknown or revoked.
    async fn resolve_invite(
        &self,
        _session: SessionId,
        _code: &str,
    ) -> Result<Option<InvitePreview>, EngineError> {
        Err(EngineError::Unsupported(self.kind()))
    }

    /// Joins the group of an invite code; answers its JID (`None`: unknown or revoked code).
    async fn accept_invite(
        &self,
        _session: SessionId,
        _code: &str,
    ) -> Result<Option<Jid>, EngineError> {
        Err(EngineError::Unsupported(self.kind()))
    }

    /// Follows (or unfollows) a channel; `false` when no such channel exists.
    async fn follow_channel(
        &self,
        _session: SessionId,
        _channel: &Jid,
        _follow: bool,
    ) -> Result<bool, EngineError> {
        Err(EngineError::Unsupported(self.kind()))
    }

    /// The channels the session follows or owns.
    async fn channels(&self, _session: SessionId) -> Result<Vec<ChannelInfo>, EngineError> {
        Err(EngineError::Unsupported(self.kind()))
    }

    /// One channel's metadata; `None` when no such channel exists.
    async fn channel(
        &self,
        _session: SessionId,
        _channel: &Jid,
    ) -> Result<Option<ChannelInfo>, EngineError> {
        Err(EngineError::Unsupported(self.kind()))
    }

    /// The linked account.
    async fn user(&self, _session: SessionId) -> Result<UserInfo, EngineError> {
        Err(EngineError::Unsupported(self.kind()))
    }

    /// Downloads and decrypts a media reference the session received.
    async fn decrypt_media(
        &self,
        _session: SessionId,
        _reference: &serde_json::Value,
    ) -> Result<(Vec<u8>, String), EngineError> {
        Err(EngineError::Unsupported(self.kind()))
    }
}

/// A shared engine handle.
pub type DynEngine = Arc<dyn Engine>;

#[cfg(test)]
mod tests {
    use super::*;

    fn text_only() -> Capabilities {
        Capabilities {
            qr_pairing: false,
            kinds: &[MessageKind::Text, MessageKind::Image],
            view_once: false,
            channels: false,
            edits: false,
            revoke: false,
            replies: false,
            presence: false,
            mark_read: false,
            client_message_ids: false,
        }
    }

    #[test]
    fn refusals_name_what_the_engine_cannot_do() {
        let caps = text_only();
        let user = Jid::parse("15551234567@s.whatsapp.net").unwrap();
        let channel = Jid::parse("1203630000@newsletter").unwrap();
        let text = Content::Text { text: "hi".into() };
        assert_eq!(caps.refusal(&text, &user, false), None);
        let poll = Content::Poll {
            question: "q".into(),
            options: vec!["a".into(), "b".into()],
            multi_select: false,
        };
        assert_eq!(
            caps.refusal(&poll, &user, false).as_deref(),
            Some("poll messages")
        );
        let once = Content::Media {
            media: MessageKind::Image,
            url: "https://x.com/a.png".into(),
            media_id: None,
            caption: None,
            file_name: None,
            mime_type: None,
            view_once: true,
        };
        assert_eq!(
            caps.refusal(&once, &user, false).as_deref(),
            Some("view-once media")
        );
        assert_eq!(
            caps.refusal(&text, &channel, false).as_deref(),
            Some("channel messages")
        );
        assert_eq!(caps.refusal(&text, &user, true).as_deref(), Some("replies"));
    }
}
