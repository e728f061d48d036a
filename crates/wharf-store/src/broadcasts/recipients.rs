//! A broadcast's recipients: added in multi-row inserts (a phone already there is a
//! duplicate, skipped by the unique index), removed by phone, listed by status in order.
//! Every change moves the broadcast's counters in the same transaction (an addition on
//! PostgreSQL as a tally, see [`super::tallies`]).

use serde_json::Value;
use sqlx::{AnyConnection, Row, any::AnyRow};
use wharf_core::{AccountId, BroadcastId, MessageId};

use super::{
    BroadcastRow, BroadcastStatus, Transition, lock_broadcast, lock_clause, read_broadcasts,
};
use crate::{Params, Result, Store, StoreError};

/// A recipient to add (phone already in E.164).
#[derive(Debug, Clone, PartialEq)]
pub struct NewRecipient {
    pub phone: String,
    pub name: Option<String>,
    /// A JSON object of strings.
    pub variables: Option<Value>,
}

/// A stored recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct RecipientRow {
    pub seq: i64,
    pub phone: String,
    pub name: Option<String>,
    pub variables: Option<Value>,
    /// pending, sent, delivered, read, failed, skipped, cancelled.
    pub status: String,
    pub message_id: Option<MessageId>,
    pub error: Option<String>,
    pub sent_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub read_at: Option<i64>,
}

const COLUMNS: &str =
    "seq, phone, name, variables, status, message_id, error, sent_at, delivered_at, read_at";

/// Recipients per multi-row insert (6 parameters each).
const CHUNK: usize = 500;

impl RecipientRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        let variables: Option<String> = row.try_get("variables")?;
        let seq: i64 = row.try_get("seq")?;
        Ok(Self {
            seq,
            phone: row.try_get("phone")?,
            name: row.try_get("name")?,
            variables: variables
                .map(|v| serde_json::from_str(&v))
                .transpose()
                .map_err(|_| StoreError::Corrupt(format!("recipient {seq} variables")))?,
            status: row.try_get("status")?,
            message_id: row.try_get("message_id")?,
            error: row.try_get("error")?,
            sent_at: row.try_get("sent_at")?,
            delivered_at: row.try_get("delivered_at")?,
            read_at: row.try_get("read_at")?,
        })
    }
}

/// Inserts `recipients` (skipping phones already there) and moves the broadcast's counters;
/// returns how many were added.
///
/// SQLite (one writer) numbers them after `after`, the broadcast's `next_seq`, and moves its
/// counters directly. PostgreSQL numbers them from a sequence and appends the counters as a
/// tally, so additions to one draft run side by side: the caller holds only a key-share lock
/// on the broadcast, which its start or scheduling (a `FOR UPDATE`) waits for.
pub(super) async fn insert(
    conn: &mut AnyConnection,
    broadcast: BroadcastId,
    after: i64,
    recipients: &[NewRecipient],
) -> Result<i64> {
    let sqlite = conn.backend_name() == "SQLite";
    let mut added = 0;
    let mut seq = after;
    let mut last_seq = 0;
    for chunk in recipients.chunks(CHUNK) {
        let mut p = Params::on(conn);
        let values = (0..chunk.len())
            .map(|_| {
                if sqlite {
                    format!("({})", p.list(6))
                } else {
                    let first = p.next();
                    format!(
                        "({first}, nextval('broadcast_recipient_seq'), {})",
                        p.list(4)
                    )
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        // PostgreSQL's positions come back (the highest goes in the tally); SQLite's are ours.
        let returning = if sqlite { "" } else { " RETURNING seq" };
        let sql = format!(
            "INSERT INTO broadcast_recipients (broadcast_id, seq, phone, name, variables, status) \
             VALUES {values} ON CONFLICT (broadcast_id, phone) DO NOTHING{returning}"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        for r in chunk {
            q = q.bind(broadcast);
            if sqlite {
                seq += 1;
                q = q.bind(seq);
            }
            q = q
                .bind(crate::plain_str(&r.phone))
                .bind(crate::plain(&r.name))
                .bind(r.variables.as_ref().map(|v| v.to_string()))
                .bind("pending");
        }
        if sqlite {
            added += q.execute(&mut *conn).await?.rows_affected() as i64;
        } else {
            for row in q.fetch_all(&mut *conn).await? {
                added += 1;
                last_seq = last_seq.max(row.try_get::<i64, _>("seq")?);
            }
        }
    }
    if sqlite {
        sqlx::query(
            "UPDATE broadcasts SET next_seq = $1, recipient_count = recipient_count + $2, \
             n_pending = n_pending + $2 WHERE id = $3",
        )
        .bind(seq)
        .bind(added)
        .bind(broadcast)
        .execute(&mut *conn)
        .await?;
    } else {
        let mut d = super::tallies::Deltas {
            recipients: added,
            last_seq,
            ..Default::default()
        };
        *d.slot("pending") += added;
        super::tallies::append(conn, broadcast, &d).await?;
    }
    Ok(added)
}

/// Broadcast `id` as the caller's transaction sees it, its tallies added.
async fn read_in(conn: &mut AnyConnection, id: BroadcastId) -> Result<BroadcastRow> {
    let sql = read_broadcasts("WHERE b.id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_one(conn)
        .await?;
    BroadcastRow::from_row(&row)
}

/// The counts of an addition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Added {
    pub added: i64,
    pub duplicates: i64,
    pub total: i64,
}

impl Store {
    /// Adds recipients to `account`'s draft broadcast `id`. `None` when there is no such
    /// broadcast; [`Transition::Refused`] when it is not a draft.
    pub async fn add_broadcast_recipients(
        &self,
        account: AccountId,
        id: BroadcastId,
        recipients: &[NewRecipient],
    ) -> Result<Option<std::result::Result<Added, Transition>>> {
        let mut tx = self.write.begin().await?;
        // Additions share the broadcast (PostgreSQL: a key-share lock, which other additions
        // share and a change of state waits for; SQLite: its one writer).
        let share = if lock_clause(&tx).is_empty() {
            ""
        } else {
            " FOR KEY SHARE"
        };
        let found: Option<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT status, next_seq FROM broadcasts WHERE id = $1 AND account_id = $2{share}"
        )))
        .bind(id)
        .bind(account)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((status, next_seq)) = found else {
            return Ok(None);
        };
        if status != BroadcastStatus::Draft.as_str() {
            let b = read_in(&mut tx, id).await?;
            return Ok(Some(Err(Transition::Refused(b))));
        }
        let added = insert(&mut tx, id, next_seq, recipients).await?;
        let total = read_in(&mut tx, id).await?.recipient_count;
        tx.commit().await?;
        Ok(Some(Ok(Added {
            added,
            duplicates: recipients.len() as i64 - added,
            total,
        })))
    }

    /// Removes the recipients with `phones` from `account`'s draft broadcast `id`; returns
    /// `(removed, remaining)`.
    pub async fn remove_broadcast_recipients(
        &self,
        account: AccountId,
        id: BroadcastId,
        phones: &[String],
    ) -> Result<Option<std::result::Result<(i64, i64), Transition>>> {
        let mut tx = self.write.begin().await?;
        let Some(b) = lock_broadcast(&mut tx, Some(account), id).await? else {
            return Ok(None);
        };
        if b.status != BroadcastStatus::Draft {
            return Ok(Some(Err(Transition::Refused(b))));
        }
        let mut removed = 0;
        for chunk in phones.chunks(CHUNK) {
            let mut p = Params::on(&tx);
            let first = p.next();
            let list = p.list(chunk.len());
            let sql = format!(
                "DELETE FROM broadcast_recipients WHERE broadcast_id = {first} AND phone IN ({list})"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .persistent(false)
                .bind(id);
            for phone in chunk {
                q = q.bind(crate::plain_str(phone));
            }
            removed += q.execute(&mut *tx).await?.rows_affected() as i64;
        }
        // A draft's recipients are all pending.
        sqlx::query(
            "UPDATE broadcasts SET recipient_count = recipient_count - $1, n_pending = n_pending - $1 \
             WHERE id = $2",
        )
        .bind(removed)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(Ok((removed, b.recipient_count - removed))))
    }

    /// A page of broadcast `id`'s recipients in the order they were added, those in
    /// `status` only when given. The caller checked the broadcast is the account's.
    pub async fn broadcast_recipients(
        &self,
        id: BroadcastId,
        status: Option<&str>,
        limit: i64,
        skip: i64,
    ) -> Result<Vec<RecipientRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM broadcast_recipients WHERE broadcast_id = $1 \
             AND ($2 IS NULL OR status = $2) ORDER BY seq LIMIT $3 OFFSET $4"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(status)
            .bind(limit)
            .bind(skip)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(RecipientRow::from_row)
            .collect()
    }

    /// Up to `limit` recipients of broadcast `id` after position `after`, in order (the
    /// worker's next batch).
    pub async fn recipients_after(
        &self,
        id: BroadcastId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<RecipientRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM broadcast_recipients WHERE broadcast_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.write)
            .await?
            .iter()
            .map(RecipientRow::from_row)
            .collect()
    }
}
