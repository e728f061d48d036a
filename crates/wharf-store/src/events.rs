//! The per-account event log. Each account has its own gap-free cursor: the account row's
//! `event_seq` is bumped in the same transaction as the change the event records, which also
//! orders an account's events by commit, so a reader resuming "after N" never misses one.

use sqlx::{AnyConnection, Row, any::AnyRow};
use wharf_core::{AccountId, Event, MessageId, time::now_millis};

use crate::{Params, Result, Store, StoreError};

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub account_id: String,
    pub seq: i64,
    pub id: String,
    pub session_id: Option<String>,
    pub message_id: Option<String>,
    pub kind: String,
    pub payload: serde_json::Value,
    pub created_at: i64,
}

const COLUMNS: &str = "account_id, seq, id, session_id, message_id, type, payload, created_at";
/// Rows per multi-row INSERT (8 parameters each, well under SQLite's limit).
const CHUNK: usize = 200;

/// [`Store::message_events`]' statement (public for the test of its plan). By message alone:
/// with the account too, PostgreSQL without statistics `BitmapAnd`ed `events_by_message` with
/// the account's whole range of the primary key, a cost growing with the account's log. The
/// account is checked on the rows (a message's events are all its account's).
#[doc(hidden)]
pub const MESSAGE_EVENTS_SQL: &str = "SELECT account_id, seq, id, session_id, message_id, type, \
     payload, created_at FROM events WHERE message_id = $1 ORDER BY seq";

impl EventRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        let payload: String = row.try_get("payload")?;
        let session_id: Option<String> = row.try_get("session_id")?;
        let message_id: Option<String> = row.try_get("message_id")?;
        let kind: String = row.try_get("type")?;
        let payload = crate::event_payload::decode(
            &kind,
            message_id.as_deref(),
            session_id.as_deref(),
            &payload,
        )
        .map_err(|e| StoreError::Corrupt(format!("event payload: {e}")))?;
        Ok(Self {
            account_id: row.try_get("account_id")?,
            seq: row.try_get("seq")?,
            id: row.try_get("id")?,
            session_id,
            message_id,
            kind,
            payload,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// Appends one event inside the caller's transaction.
pub(crate) async fn append_event(conn: &mut AnyConnection, event: &Event) -> Result<()> {
    append_events(conn, std::slice::from_ref(event)).await
}

/// Appends events inside the caller's transaction, numbering each account's events in order
/// with one counter update per run of same-account events.
///
/// Message status events also move the broadcast recipients of those messages (and their
/// broadcasts' counters, as tallies) here, in the same transaction, whatever path changed
/// the message.
pub(crate) async fn append_events(conn: &mut AnyConnection, events: &[Event]) -> Result<()> {
    crate::broadcasts::follow(conn, events).await?;
    let now = now_millis();
    let mut rest = events;
    while let Some(first) = rest.first() {
        let run = rest
            .iter()
            .take_while(|e| e.account_id == first.account_id)
            .count();
        let (group, tail) = rest.split_at(run);
        rest = tail;
        let account = first.account_id.to_string();
        let last: i64 = sqlx::query_scalar(
            "UPDATE accounts SET event_seq = event_seq + $1 WHERE id = $2 RETURNING event_seq",
        )
        .bind(group.len() as i64)
        .bind(&account)
        .fetch_one(&mut *conn)
        .await?;
        let mut seq = last - group.len() as i64;
        for chunk in group.chunks(CHUNK) {
            let values = Params::on(conn).rows(chunk.len(), 8);
            let sql = format!("INSERT INTO events ({COLUMNS}) VALUES {values}");
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
            for event in chunk {
                seq += 1;
                let payload = crate::event_payload::encode(
                    event.kind.as_str(),
                    event
                        .message_id
                        .as_ref()
                        .map(ToString::to_string)
                        .as_deref(),
                    event
                        .session_id
                        .as_ref()
                        .map(ToString::to_string)
                        .as_deref(),
                    &event.payload,
                );
                query = query
                    .bind(account.clone())
                    .bind(seq)
                    .bind(event.id)
                    .bind(event.session_id)
                    .bind(event.message_id)
                    .bind(event.kind.as_str())
                    .bind(payload)
                    .bind(now);
            }
            query.execute(&mut *conn).await?;
        }
    }
    Ok(())
}

impl Store {
    /// An account's events after cursor `after`, oldest first.
    pub async fn list_events(
        &self,
        account: AccountId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM events WHERE account_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(EventRow::from_row)
            .collect()
    }

    /// The events of `account` with these cursors (missing ones left out).
    pub(crate) async fn events_at(
        &self,
        account: AccountId,
        seqs: &[i64],
    ) -> Result<Vec<EventRow>> {
        let mut out = Vec::with_capacity(seqs.len());
        for chunk in seqs.chunks(200) {
            let mut p = Params::new(self.backend);
            let account_param = p.next();
            let seqs = p.list(chunk.len());
            let sql = format!(
                "SELECT {COLUMNS} FROM events WHERE account_id = {account_param} AND seq IN ({seqs})"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .persistent(false)
                .bind(account);
            for seq in chunk {
                q = q.bind(*seq);
            }
            for row in q.fetch_all(&self.read).await? {
                out.push(EventRow::from_row(&row)?);
            }
        }
        Ok(out)
    }

    /// Events about one message, oldest first.
    pub async fn message_events(
        &self,
        account: AccountId,
        message: MessageId,
    ) -> Result<Vec<EventRow>> {
        let account = account.to_string();
        let mut events = Vec::new();
        for row in sqlx::query(MESSAGE_EVENTS_SQL)
            .bind(message)
            .fetch_all(&self.read)
            .await?
        {
            let event = EventRow::from_row(&row)?;
            if event.account_id == account {
                events.push(event);
            }
        }
        Ok(events)
    }

    /// The account's latest cursor (0 before its first event).
    pub async fn event_cursor(&self, account: AccountId) -> Result<i64> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT event_seq FROM accounts WHERE id = $1")
            .bind(account)
            .fetch_optional(&self.read)
            .await?;
        Ok(seq.unwrap_or(0))
    }
}
