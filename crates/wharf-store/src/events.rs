//! The per-account event log. Each account has its own gap-free cursor: the account row's
//! `event_seq` is bumped in the same transaction as the change the event records, which also
//! orders an account's events by commit, so a reader resuming "after N" never misses one.

use sqlx::{AnyConnection, Row};
use wharf_core::{AccountId, Event, time::now_millis};

use crate::{Result, Store, StoreError};

/// A stored event.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub seq: i64,
    pub id: String,
    pub session_id: Option<String>,
    pub kind: String,
    pub payload: serde_json::Value,
    pub created_at: i64,
}

/// Appends `event` inside the caller's transaction and returns its cursor.
pub(crate) async fn append_event(conn: &mut AnyConnection, event: &Event) -> Result<i64> {
    let account = event.account_id.to_string();
    let seq: i64 = sqlx::query_scalar(
        "UPDATE accounts SET event_seq = event_seq + 1 WHERE id = $1 RETURNING event_seq",
    )
    .bind(&account)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO events (account_id, seq, id, session_id, type, payload, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&account)
    .bind(seq)
    .bind(event.id.to_string())
    .bind(event.session_id.map(|s| s.to_string()))
    .bind(event.kind.as_str())
    .bind(event.payload.to_string())
    .bind(now_millis())
    .execute(conn)
    .await?;
    Ok(seq)
}

impl Store {
    /// An account's events after cursor `after`, oldest first.
    pub async fn list_events(
        &self,
        account: AccountId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>> {
        let rows = sqlx::query(
            "SELECT seq, id, session_id, type, payload, created_at FROM events \
             WHERE account_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(account.to_string())
        .bind(after)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| {
                let payload: String = row.try_get("payload")?;
                Ok(EventRow {
                    seq: row.try_get("seq")?,
                    id: row.try_get("id")?,
                    session_id: row.try_get("session_id")?,
                    kind: row.try_get("type")?,
                    payload: serde_json::from_str(&payload)
                        .map_err(|e| StoreError::Corrupt(format!("event payload: {e}")))?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }
}
