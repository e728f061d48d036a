//! Contacts: the names users save for a session's contacts, the senders of its inbound
//! messages, and group events (which engines report, and which join the event log).

use sqlx::Row;
use wharf_core::{AccountId, Event, SessionId, time::now_millis};

use crate::{Result, Store, events::append_event};

/// A name a user saved for one of a session's contacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactNameRow {
    /// The contact's JID, as text.
    pub jid: String,
    pub name: String,
    pub updated_at: i64,
}

impl Store {
    /// Saves (or replaces) the name of a contact of `session`, which must be the account's.
    /// Answers `None` when the session is not the account's.
    pub async fn save_contact_name(
        &self,
        account: AccountId,
        session: SessionId,
        jid: &str,
        name: &str,
    ) -> Result<Option<ContactNameRow>> {
        let now = now_millis();
        let mut tx = self.write.begin().await?;
        let owned: Option<String> =
            sqlx::query_scalar("SELECT id FROM sessions WHERE id = $1 AND account_id = $2")
                .bind(session.to_string())
                .bind(account.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        if owned.is_none() {
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO contact_names (account_id, session_id, jid, name, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (session_id, jid) DO UPDATE SET name = $4, updated_at = $5",
        )
        .bind(account.to_string())
        .bind(session.to_string())
        .bind(jid)
        .bind(name)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(ContactNameRow {
            jid: jid.to_owned(),
            name: name.to_owned(),
            updated_at: now,
        }))
    }

    /// The names saved for `session`'s contacts.
    pub async fn contact_names(
        &self,
        account: AccountId,
        session: SessionId,
    ) -> Result<Vec<ContactNameRow>> {
        let rows = sqlx::query(
            "SELECT jid, name, updated_at FROM contact_names \
             WHERE account_id = $1 AND session_id = $2 ORDER BY jid",
        )
        .bind(account.to_string())
        .bind(session.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ContactNameRow {
                    jid: r.try_get("jid")?,
                    name: r.try_get("name")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// The people who wrote to `session` (the sender JIDs of its inbound messages), each with
    /// the time of their last message.
    pub async fn inbound_senders(
        &self,
        account: AccountId,
        session: SessionId,
    ) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT sender_jid, MAX(accepted_at) AS last_at FROM messages \
             WHERE session_id = $1 AND account_id = $2 AND direction = 'in' \
             AND sender_jid IS NOT NULL GROUP BY sender_jid",
        )
        .bind(session.to_string())
        .bind(account.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("sender_jid")?, r.try_get("last_at")?)))
            .collect()
    }

    /// Appends an event an engine reported for a session (a group event) to the log.
    pub async fn record_engine_event(&self, event: &Event) -> Result<()> {
        let mut tx = self.write.begin().await?;
        append_event(&mut tx, event).await?;
        tx.commit().await?;
        self.events_appended();
        Ok(())
    }
}
