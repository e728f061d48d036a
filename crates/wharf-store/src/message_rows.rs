//! A message's row: its columns, how it is read, written and inserted, and the event that
//! records its state. A leaf of the store's modules: the message pipeline (`messages`), the
//! Cloud API's records (`cloud`) and the sandbox (`sandbox`) all build on it, and it on none
//! of them.

use serde_json::{Value, json};
use sqlx::{AnyConnection, Row, any::AnyRow};
use wharf_core::{
    AccountId, Event, EventType, Jid, MessageId, ProviderId, SessionId,
    message::{Content, Direction, MessageKind, MessageStatus},
    time::now_millis,
};

use crate::{Result, StoreError};

/// A stored message.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRow {
    pub id: MessageId,
    pub account_id: AccountId,
    pub session_id: SessionId,
    pub direction: Direction,
    pub chat_jid: Jid,
    pub sender_jid: Option<String>,
    pub kind: MessageKind,
    pub content: Content,
    pub status: MessageStatus,
    pub provider_msg_id: Option<ProviderId>,
    pub quoted_message_id: Option<MessageId>,
    pub failure_reason: Option<String>,
    pub attempts: i64,
    pub accepted_at: i64,
    pub sent_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub read_at: Option<i64>,
    pub played_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub deleted_at: Option<i64>,
    pub edited_at: Option<i64>,
    pub updated_at: i64,
    /// The chat's linked identity (`…@lid`) when WhatsApp gave one (received on the web
    /// engine); `chat_jid` names it by phone number whenever that is known.
    pub chat_lid: Option<String>,
    /// The sender's linked identity, likewise.
    pub sender_lid: Option<String>,
}

pub(crate) const COLUMNS: &str = "id, account_id, session_id, direction, chat_jid, sender_jid, kind, content, status, \
     provider_msg_id, quoted_message_id, failure_reason, attempts, accepted_at, sent_at, delivered_at, read_at, \
     played_at, failed_at, deleted_at, edited_at, updated_at, chat_lid, sender_lid";

impl MessageRow {
    /// A new outgoing message of `account` through `session` to `chat`, queued at `now`,
    /// with no WhatsApp id, sender or reply yet.
    pub fn outgoing(
        account_id: AccountId,
        session_id: SessionId,
        chat_jid: Jid,
        content: Content,
        now: i64,
    ) -> Self {
        Self {
            id: MessageId::generate(),
            account_id,
            session_id,
            direction: Direction::Out,
            chat_jid,
            sender_jid: None,
            kind: content.kind(),
            content,
            status: MessageStatus::Queued,
            provider_msg_id: None,
            quoted_message_id: None,
            failure_reason: None,
            attempts: 0,
            accepted_at: now,
            sent_at: None,
            delivered_at: None,
            read_at: None,
            played_at: None,
            failed_at: None,
            deleted_at: None,
            edited_at: None,
            updated_at: now,
            chat_lid: None,
            sender_lid: None,
        }
    }

    pub(crate) fn from_row(row: &AnyRow) -> Result<Self> {
        let id: MessageId = row.try_get("id")?;
        let corrupt = |what: &str| StoreError::Corrupt(format!("message {id} {what}"));
        let text = |column: &str| row.try_get::<String, _>(column);
        Ok(Self {
            id,
            account_id: row.try_get("account_id")?,
            session_id: row.try_get("session_id")?,
            direction: Direction::parse(&text("direction")?).ok_or_else(|| corrupt("direction"))?,
            chat_jid: Jid::parse(&text("chat_jid")?).map_err(|_| corrupt("chat_jid"))?,
            sender_jid: row.try_get("sender_jid")?,
            kind: MessageKind::parse(&text("kind")?).ok_or_else(|| corrupt("kind"))?,
            content: serde_json::from_str(&text("content")?).map_err(|_| corrupt("content"))?,
            status: MessageStatus::parse(&text("status")?).ok_or_else(|| corrupt("status"))?,
            provider_msg_id: row.try_get("provider_msg_id")?,
            quoted_message_id: row.try_get("quoted_message_id")?,
            failure_reason: row.try_get("failure_reason")?,
            attempts: row.try_get("attempts")?,
            accepted_at: row.try_get("accepted_at")?,
            sent_at: row.try_get("sent_at")?,
            delivered_at: row.try_get("delivered_at")?,
            read_at: row.try_get("read_at")?,
            played_at: row.try_get("played_at")?,
            failed_at: row.try_get("failed_at")?,
            deleted_at: row.try_get("deleted_at")?,
            edited_at: row.try_get("edited_at")?,
            updated_at: row.try_get("updated_at")?,
            chat_lid: row.try_get("chat_lid")?,
            sender_lid: row.try_get("sender_lid")?,
        })
    }

    /// The event recording this message's current state, of type `kind`.
    pub fn event(&self, kind: EventType) -> Event {
        let mut payload = json!({
            "message_id": self.id,
            "session_id": self.session_id,
            "direction": self.direction,
            "chat_jid": self.chat_jid,
            "kind": self.kind,
            "status": self.status,
            "provider_msg_id": self.provider_msg_id,
            "at": wharf_core::time::rfc3339(self.updated_at),
            "chat_lid": self.chat_lid,
        });
        match kind {
            EventType::MessageReceived => {
                payload["sender_jid"] = json!(self.sender_jid);
                payload["sender_lid"] = json!(self.sender_lid);
                payload["quoted_message_id"] = json!(self.quoted_message_id);
                payload["content"] = serde_json::to_value(&self.content).unwrap_or(Value::Null);
            }
            EventType::MessageEdited => {
                payload["content"] = serde_json::to_value(&self.content).unwrap_or(Value::Null);
            }
            EventType::MessageFailed => payload["failure_reason"] = json!(self.failure_reason),
            _ => {}
        }
        Event::new(self.account_id, Some(self.session_id), kind, payload).about(self.id)
    }

    /// Sets `status` reached at `at`: its timestamp, and the status itself when it moves
    /// forward. Returns whether anything new was learnt (the caller then emits the event).
    /// A later step implies the earlier ones, so `read` first also stamps `delivered`.
    pub fn advance(&mut self, status: MessageStatus, at: i64) -> bool {
        let slot = match status {
            MessageStatus::Sent => &mut self.sent_at,
            MessageStatus::Delivered => &mut self.delivered_at,
            MessageStatus::Read => &mut self.read_at,
            MessageStatus::Played => &mut self.played_at,
            _ => return false,
        };
        if slot.is_some() || self.status.is_terminal() || !self.status.advances_to(status) {
            // Already known, or behind the current status: merge the time quietly.
            if slot.is_none() && !self.status.is_terminal() {
                *slot = Some(at);
            }
            return false;
        }
        *slot = Some(at);
        for (step, earlier) in [
            (MessageStatus::Delivered, MessageStatus::Sent),
            (MessageStatus::Read, MessageStatus::Delivered),
            (MessageStatus::Played, MessageStatus::Read),
        ] {
            if status.rank() >= step.rank() {
                let earlier_slot = match earlier {
                    MessageStatus::Sent => &mut self.sent_at,
                    MessageStatus::Delivered => &mut self.delivered_at,
                    _ => &mut self.read_at,
                };
                // Audio can be played without a read receipt; the others imply each other.
                if earlier_slot.is_none()
                    && !(status == MessageStatus::Played && earlier == MessageStatus::Read)
                {
                    *earlier_slot = Some(at);
                }
            }
        }
        self.status = status;
        self.updated_at = now_millis();
        true
    }
}

pub(crate) fn bind_message<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    m: &MessageRow,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    q.bind(m.id)
        .bind(m.account_id)
        .bind(m.session_id)
        .bind(m.direction.as_str())
        .bind(m.chat_jid.to_string())
        .bind(m.sender_jid.clone())
        .bind(m.kind.as_str())
        .bind(serde_json::to_string(&m.content).unwrap_or_default())
        .bind(m.status.as_str())
        .bind(
            m.provider_msg_id
                .as_ref()
                .map(|p| crate::plain_str(p.as_str())),
        )
        .bind(m.quoted_message_id)
        .bind(crate::plain(&m.failure_reason))
        .bind(m.attempts)
        .bind(m.accepted_at)
        .bind(m.sent_at)
        .bind(m.delivered_at)
        .bind(m.read_at)
        .bind(m.played_at)
        .bind(m.failed_at)
        .bind(m.deleted_at)
        .bind(m.edited_at)
        .bind(m.updated_at)
}

pub(crate) const INSERT_MESSAGE: &str = "INSERT INTO messages (id, account_id, session_id, direction, chat_jid, sender_jid, kind, \
     content, status, provider_msg_id, quoted_message_id, failure_reason, attempts, accepted_at, sent_at, delivered_at, \
     read_at, played_at, failed_at, deleted_at, edited_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
     $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)";

/// Inserts a message row (in the caller's transaction).
pub(crate) async fn insert_message(conn: &mut AnyConnection, m: &MessageRow) -> Result<()> {
    bind_message(sqlx::query(INSERT_MESSAGE), m)
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) async fn write_message(conn: &mut AnyConnection, m: &MessageRow) -> Result<()> {
    sqlx::query(
        "UPDATE messages SET content = $1, status = $2, provider_msg_id = $3, failure_reason = $4, attempts = $5, \
         sent_at = $6, delivered_at = $7, read_at = $8, played_at = $9, failed_at = $10, deleted_at = $11, \
         edited_at = $12, updated_at = $13 WHERE id = $14",
    )
    .bind(serde_json::to_string(&m.content).unwrap_or_default())
    .bind(m.status.as_str())
    .bind(m.provider_msg_id.as_ref().map(|p| crate::plain_str(p.as_str())))
    .bind(crate::plain(&m.failure_reason))
    .bind(m.attempts)
    .bind(m.sent_at)
    .bind(m.delivered_at)
    .bind(m.read_at)
    .bind(m.played_at)
    .bind(m.failed_at)
    .bind(m.deleted_at)
    .bind(m.edited_at)
    .bind(m.updated_at)
    .bind(m.id)
    .execute(conn)
    .await?;
    Ok(())
}
