//! Entries of the per-account event log that webhooks and the event stream read.

use serde::Serialize;

use crate::{AccountId, EventId, SessionId};

/// The kind of an event, as delivered (`session.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// A session changed status.
    SessionStatus,
    /// A session produced a new pairing QR code.
    SessionQr,
}

impl EventType {
    /// The dotted wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SessionStatus => "session.status",
            Self::SessionQr => "session.qr",
        }
    }
}

/// An event to append: its type, account, optional session and JSON payload.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: EventId,
    pub account_id: AccountId,
    pub session_id: Option<SessionId>,
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
            kind,
            payload: serde_json::to_value(payload).unwrap_or(serde_json::Value::Null),
        }
    }
}
