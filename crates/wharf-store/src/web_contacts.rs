//! The address book WhatsApp syncs to a linked web device: one row per person of a session,
//! keyed by the phone JID (or the LID when WhatsApp named no number). Part of the device:
//! [`Store::delete_web_device`] removes it too.

use sqlx::Row;
use wharf_core::{SessionId, time::now_millis};

use crate::{Result, Store};

/// One synced address book entry; JIDs as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebContactRow {
    pub jid: String,
    pub lid: Option<String>,
    pub name: Option<String>,
    pub push_name: Option<String>,
}

fn row(r: &sqlx::any::AnyRow) -> Result<WebContactRow> {
    Ok(WebContactRow {
        jid: r.try_get("jid")?,
        lid: r.try_get("lid")?,
        name: r.try_get("name")?,
        push_name: r.try_get("push_name")?,
    })
}

impl Store {
    /// The entries of `session` whose JID or LID is one of `keys`.
    pub async fn web_contacts_matching(
        &self,
        session: SessionId,
        keys: &[String],
    ) -> Result<Vec<WebContactRow>> {
        let mut out: Vec<WebContactRow> = Vec::new();
        for key in keys {
            let rows = sqlx::query(
                "SELECT jid, lid, name, push_name FROM web_contacts \
                 WHERE session_id = $1 AND (jid = $2 OR lid = $2)",
            )
            .bind(session)
            .bind(key)
            .fetch_all(&self.write)
            .await?;
            for r in &rows {
                let r = row(r)?;
                if !out.iter().any(|o| o.jid == r.jid) {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    /// Removes the entries keyed by `removed` and writes `entry`, in one transaction.
    pub async fn replace_web_contact(
        &self,
        session: SessionId,
        removed: &[String],
        entry: &WebContactRow,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        for jid in removed {
            sqlx::query("DELETE FROM web_contacts WHERE session_id = $1 AND jid = $2")
                .bind(session)
                .bind(jid)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO web_contacts (session_id, jid, lid, name, push_name, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (session_id, jid) DO UPDATE SET lid = $3, name = $4, push_name = $5, \
             updated_at = $6",
        )
        .bind(session)
        .bind(&entry.jid)
        .bind(&entry.lid)
        .bind(&entry.name)
        .bind(&entry.push_name)
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every entry of `session`'s synced address book, in JID order.
    pub async fn web_contacts(&self, session: SessionId) -> Result<Vec<WebContactRow>> {
        let rows = sqlx::query(
            "SELECT jid, lid, name, push_name FROM web_contacts WHERE session_id = $1 ORDER BY jid",
        )
        .bind(session)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(row).collect()
    }

    /// Deletes `session`'s synced address book.
    pub async fn delete_web_contacts(&self, session: SessionId) -> Result<()> {
        sqlx::query("DELETE FROM web_contacts WHERE session_id = $1")
            .bind(session)
            .execute(&self.write)
            .await?;
        Ok(())
    }
}
