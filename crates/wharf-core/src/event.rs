//! Entries of the per-account event log that webhooks and the event stream read.

use serde::Serialize;

use crate::{AccountId, EventId, MessageId, SessionId};

/// The kind of an event, as delivered (`session.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// A session changed status.
    SessionStatus,
    /// A session produced a new pairing QR code.
    SessionQr,
    MessageReceived,
    MessageSent,
    MessageDelivered,
    MessageRead,
    MessagePlayed,
    MessageFailed,
    MessageDeleted,
    MessageEdited,
    /// A phone activated its sandbox session (it replied, or sent its code).
    SandboxActivated,
    /// A webhook endpoint was disabled after failing for too long.
    WebhookDisabled,
    /// The session became a member of a group (created it, was added, joined by invite).
    GroupJoined,
    /// A group's members were added, removed, promoted or demoted.
    GroupParticipants,
    /// A group's subject, description or settings changed.
    GroupUpdated,
    /// The session left a group or was removed from it.
    GroupLeft,
    /// A broadcast began sending.
    BroadcastStarted,
    /// A sending broadcast's counters moved (at most one a second per broadcast).
    BroadcastProgress,
    /// A broadcast finished with at least one message sent (or nothing left to fail).
    BroadcastCompleted,
    /// A broadcast ended with no message sent, or could not go on.
    BroadcastFailed,
    /// A broadcast was cancelled while scheduled or sending.
    BroadcastCancelled,
}

impl EventType {
    /// The dotted wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SessionStatus => "session.status",
            Self::SessionQr => "session.qr",
            Self::MessageReceived => "message.received",
            Self::MessageSent => "message.sent",
            Self::MessageDelivered => "message.delivered",
            Self::MessageRead => "message.read",
            Self::MessagePlayed => "message.played",
            Self::MessageFailed => "message.failed",
            Self::MessageDeleted => "message.deleted",
            Self::MessageEdited => "message.edited",
            Self::SandboxActivated => "sandbox.activated",
            Self::WebhookDisabled => "webhook.disabled",
            Self::GroupJoined => "group.joined",
            Self::GroupParticipants => "group.participants",
            Self::GroupUpdated => "group.updated",
            Self::GroupLeft => "group.left",
            Self::BroadcastStarted => "broadcast.started",
            Self::BroadcastProgress => "broadcast.progress",
            Self::BroadcastCompleted => "broadcast.completed",
            Self::BroadcastFailed => "broadcast.failed",
            Self::BroadcastCancelled => "broadcast.cancelled",
        }
    }

    /// Every type, for validating subscriptions.
    pub const ALL: [Self; 21] = [
        Self::SessionStatus,
        Self::SessionQr,
        Self::MessageReceived,
        Self::MessageSent,
        Self::MessageDelivered,
        Self::MessageRead,
        Self::MessagePlayed,
        Self::MessageFailed,
        Self::MessageDeleted,
        Self::MessageEdited,
        Self::SandboxActivated,
        Self::WebhookDisabled,
        Self::GroupJoined,
        Self::GroupParticipants,
        Self::GroupUpdated,
        Self::GroupLeft,
        Self::BroadcastStarted,
        Self::BroadcastProgress,
        Self::BroadcastCompleted,
        Self::BroadcastFailed,
        Self::BroadcastCancelled,
    ];

    /// The type named `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// The event a message reaching `status` emits.
    pub fn for_status(status: crate::message::MessageStatus) -> Option<Self> {
        use crate::message::MessageStatus as S;
        match status {
            S::Sent => Some(Self::MessageSent),
            S::Delivered => Some(Self::MessageDelivered),
            S::Read => Some(Self::MessageRead),
            S::Played => Some(Self::MessagePlayed),
            S::Failed => Some(Self::MessageFailed),
            S::Deleted => Some(Self::MessageDeleted),
            S::Received => Some(Self::MessageReceived),
            S::Queued => None,
        }
    }
}

/// An event to append: its type, account, optional session and JSON payload.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: EventId,
    pub account_id: AccountId,
    pub session_id: Option<SessionId>,
    /// The message the event is about, if any.
    pub message_id: Option<MessageId>,
    pub kind: EventType,
    pub payload: serde_json::Value,
}

impl Event {
    /// A new event with a fresh id.
    pub fn new(
        account_id: AccountId,
        session_id: Option<SessionId>,
        kind: EventType,
        payload: impl Serialize,
    ) -> Self {
        Self {
            id: EventId::generate(),
            account_id,
            session_id,
            message_id: None,
            kind,
            payload: serde_json::to_value(payload).unwrap_or(serde_json::Value::Null),
        }
    }
}

impl Event {
    /// The same event, about message `id`.
    pub fn about(mut self, id: MessageId) -> Self {
        self.message_id = Some(id);
        self
    }
}
