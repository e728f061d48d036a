//! What WhatsApp tells of messages after they arrived: the sender edited or revoked one, and
//! the linked identities (`…@lid`) of a chat and its sender.
//!
//! One identity per contact: a chat WhatsApp names only by LID is stored under the phone
//! number the session's device learnt for that LID (the web device's `web_lid_pn` map), with
//! the LID beside it, so the same person's messages share one `chat_jid` whichever form
//! WhatsApp showed.

use sqlx::AnyConnection;
use wharf_core::{
    EventType, Jid, SessionId,
    jid::JidServer,
    message::{Content, MessageStatus},
    time::now_millis,
};

use super::{MessageRow, write_message};
use crate::{Result, Store, events::append_events};

/// A change the sender made to a message already received (or, from the session's phone, to
/// one the session sent).
#[derive(Debug, Clone, PartialEq)]
pub enum InboundChange {
    /// The content was replaced.
    Edited {
        chat: Jid,
        provider_id: String,
        content: Content,
        at: i64,
    },
    /// The message was revoked for everyone.
    Revoked {
        chat: Jid,
        provider_id: String,
        at: i64,
    },
}

/// The phone-number form of `jid` when it is a LID the session's device has a number for.
pub(crate) async fn phone_of_lid(
    conn: &mut AnyConnection,
    session: SessionId,
    jid: &Jid,
) -> Result<Option<Jid>> {
    if jid.server() != JidServer::Lid {
        return Ok(None);
    }
    let phone: Option<String> = sqlx::query_scalar(
        "SELECT phone_number FROM web_lid_pn WHERE session_id = $1 AND lid = $2",
    )
    .bind(session)
    .bind(jid.user())
    .fetch_optional(conn)
    .await?;
    Ok(phone.and_then(|p| Jid::parse(&format!("{p}@s.whatsapp.net")).ok()))
}

/// `jid` by phone number when known, and its LID when known: `(primary, lid)`.
pub(crate) async fn both_forms(
    conn: &mut AnyConnection,
    session: SessionId,
    jid: &Jid,
    lid: Option<&Jid>,
) -> Result<(Jid, Option<Jid>)> {
    if jid.server() == JidServer::Lid {
        let phone = phone_of_lid(conn, session, jid).await?;
        return Ok(match phone {
            Some(phone) => (phone, Some(jid.clone())),
            None => (jid.clone(), Some(jid.clone())),
        });
    }
    // Only LIDs are looked up: a message named by phone number costs no query.
    Ok((jid.clone(), lid.cloned()))
}

/// Writes the linked identities of a message just inserted (outside the shared insert, whose
/// shape other writers use too).
pub(super) async fn write_lids(conn: &mut AnyConnection, m: &MessageRow) -> Result<()> {
    if m.chat_lid.is_none() && m.sender_lid.is_none() {
        return Ok(());
    }
    sqlx::query("UPDATE messages SET chat_lid = $1, sender_lid = $2 WHERE id = $3")
        .bind(m.chat_lid.clone())
        .bind(m.sender_lid.clone())
        .bind(m.id)
        .execute(conn)
        .await?;
    Ok(())
}

impl Store {
    /// Applies edits and revocations WhatsApp reported for messages of `session`, each with
    /// its event (`message.edited`, `message.deleted`) in one transaction. A change naming an
    /// unknown message, or one in another chat, is ignored; a revoked message is not edited
    /// again and a second revocation emits nothing. Returns the messages that changed.
    pub async fn apply_inbound_changes(
        &self,
        session: SessionId,
        changes: &[InboundChange],
    ) -> Result<Vec<MessageRow>> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.write.begin().await?;
        let mut events = Vec::new();
        let mut changed = Vec::new();
        for change in changes {
            let (chat, provider_id) = match change {
                InboundChange::Edited {
                    chat, provider_id, ..
                }
                | InboundChange::Revoked {
                    chat, provider_id, ..
                } => (chat, provider_id),
            };
            let Some(mut row) = self
                .lock_message(
                    &mut tx,
                    "provider_msg_id",
                    provider_id.clone(),
                    Some(session),
                )
                .await?
            else {
                continue;
            };
            let (primary, lid) = both_forms(&mut tx, session, chat, None).await?;
            let same_chat = row.chat_jid == primary
                || row.chat_jid == *chat
                || lid
                    .as_ref()
                    .is_some_and(|l| row.chat_lid.as_deref() == Some(l.to_string().as_str()));
            if !same_chat || row.status == MessageStatus::Deleted {
                continue;
            }
            let kind = match change {
                InboundChange::Edited { content, at, .. } => {
                    row.kind = content.kind();
                    row.content = content.clone();
                    row.edited_at = Some(*at);
                    EventType::MessageEdited
                }
                InboundChange::Revoked { at, .. } => {
                    row.status = MessageStatus::Deleted;
                    row.deleted_at = Some(*at);
                    EventType::MessageDeleted
                }
            };
            row.updated_at = now_millis();
            write_message(&mut tx, &row).await?;
            if kind == EventType::MessageEdited {
                // The kind may change with the content (a caption edit stays media).
                sqlx::query("UPDATE messages SET kind = $1 WHERE id = $2")
                    .bind(row.kind.as_str())
                    .bind(row.id)
                    .execute(&mut *tx)
                    .await?;
            }
            events.push(row.event(kind));
            changed.push(row);
        }
        append_events(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(changed)
    }
}
