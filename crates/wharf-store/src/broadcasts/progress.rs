//! The worker's side of broadcasts: a batch of recipients becomes queued messages (each its
//! own send job) in one transaction with the recipients' state and the cursor's move; the
//! message events of every other path (dispatch outcomes, receipts, withdrawals) move the
//! recipients, and append the counters' change as a tally, in the transaction that appends
//! them ([`follow`]); the worker folds the tallies into the broadcast and ends it once every
//! recipient is settled ([`Store::settle_broadcasts`]).

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};
use wharf_core::{
    AccountId, BroadcastId, Event, EventType, MessageId, SessionId, time::now_millis,
};

use super::{
    BroadcastRow, BroadcastStatus, COLUMNS, Transition, lock_broadcast, lock_clause,
    tallies::{self, Deltas},
    write_state,
};
use crate::{
    MessageRow, Params, Result, Store,
    events::append_events,
    messages::{COLUMNS as MESSAGE_COLUMNS, insert_broadcast_messages},
};

/// What became of one recipient of a batch.
#[derive(Debug, Clone)]
pub enum BatchOutcome {
    /// Its queued message, to commit.
    Queued(Box<MessageRow>),
    /// Not messaged (opted out), with why.
    Skipped(String),
    /// Refused before anything was queued (bad variables, refused by the engine), with why.
    Failed(String),
}

/// One recipient of a batch.
#[derive(Debug, Clone)]
pub struct BatchItem {
    pub seq: i64,
    pub outcome: BatchOutcome,
}

/// Gap between two `broadcast.progress` events of one broadcast.
const PROGRESS_EVERY_MS: i64 = 1000;

/// The status a recipient takes from a message event, if any.
fn recipient_status(kind: EventType) -> Option<&'static str> {
    match kind {
        EventType::MessageSent => Some("sent"),
        EventType::MessageDelivered => Some("delivered"),
        EventType::MessageRead | EventType::MessagePlayed => Some("read"),
        EventType::MessageFailed => Some("failed"),
        // A message withdrawn before it left (a cancel): the recipient is cancelled.
        EventType::MessageDeleted => Some("cancelled"),
        _ => None,
    }
}

fn rank(status: &str) -> i32 {
    match status {
        "pending" => 0,
        "sent" => 1,
        "delivered" => 2,
        "read" => 3,
        _ => 4,
    }
}

/// Ends broadcast `id` when it is sending and every recipient is settled (completed, or
/// failed when none was sent and some failed); otherwise writes a progress event when the
/// last is a second old. Returns the event to append, if any.
async fn settle(conn: &mut AnyConnection, id: BroadcastId) -> Result<Option<Event>> {
    let now = now_millis();
    let sql = format!(
        "UPDATE broadcasts SET status = CASE WHEN n_sent + n_delivered + n_read = 0 AND n_failed > 0 \
         THEN 'failed' ELSE 'completed' END, completed_at = $1, updated_at = $1 \
         WHERE id = $2 AND status = 'sending' AND cursor_seq >= next_seq AND n_pending = 0 \
         RETURNING {COLUMNS}"
    );
    if let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
    {
        let b = BroadcastRow::from_row(&row)?;
        let kind = match b.status {
            BroadcastStatus::Failed => EventType::BroadcastFailed,
            _ => EventType::BroadcastCompleted,
        };
        return Ok(Some(b.event(kind)));
    }
    let sql = format!(
        "UPDATE broadcasts SET progress_at = $1, updated_at = $1 WHERE id = $2 AND status = 'sending' \
         AND progress_at <= $3 RETURNING {COLUMNS}"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(id)
        .bind(now - PROGRESS_EVERY_MS)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|row| BroadcastRow::from_row(&row).map(|b| b.event(EventType::BroadcastProgress)))
        .transpose()
}

/// Moves the recipients of the messages `events` are about, with the counters of their
/// broadcasts (as tallies), inside the caller's transaction.
pub(crate) async fn follow(conn: &mut AnyConnection, events: &[Event]) -> Result<()> {
    let changes: Vec<(MessageId, &'static str, &Event)> = events
        .iter()
        .filter_map(|e| Some((e.message_id?, recipient_status(e.kind)?, e)))
        .collect();
    if changes.is_empty() {
        return Ok(());
    }
    // The recipients of these messages, named by the messages themselves (most messages
    // are not a broadcast's: one query through both primary keys).
    let mut found: HashMap<MessageId, (BroadcastId, i64, String)> = HashMap::new();
    let mut ids: Vec<MessageId> = changes.iter().map(|(id, ..)| *id).collect();
    ids.sort_by_key(|id| id.to_string());
    ids.dedup();
    for chunk in ids.chunks(200) {
        let list = Params::on(conn).list(chunk.len());
        let sql = format!(
            "SELECT r.broadcast_id, r.seq, r.status, m.id AS message_id FROM messages m \
             JOIN broadcast_recipients r ON r.broadcast_id = m.broadcast_id AND r.seq = m.broadcast_seq \
             WHERE m.id IN ({list}) AND m.broadcast_id IS NOT NULL"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        for id in chunk {
            q = q.bind(*id);
        }
        for row in q.fetch_all(&mut *conn).await? {
            let message: MessageId = row.try_get("message_id")?;
            found.insert(
                message,
                (
                    row.try_get("broadcast_id")?,
                    row.try_get("seq")?,
                    row.try_get("status")?,
                ),
            );
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    // (broadcast, seq) → (status before, status, error, sent, delivered, read)
    type Change = (
        String,
        String,
        Option<String>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    );
    let mut writes: HashMap<(BroadcastId, i64), Change> = HashMap::new();
    for (message, to, event) in changes {
        let Some((broadcast, seq, current)) = found.get_mut(&message) else {
            continue;
        };
        let at = event.payload["at"]
            .as_str()
            .and_then(wharf_core::time::parse_rfc3339)
            .unwrap_or_else(now_millis);
        let terminal = rank(current) == 4;
        let moves = match to {
            "failed" => !terminal,
            "cancelled" => current.as_str() == "pending",
            _ => !terminal && rank(to) > rank(current),
        };
        if !moves {
            continue;
        }
        let slot = writes
            .entry((*broadcast, *seq))
            .or_insert_with(|| (current.clone(), String::new(), None, None, None, None));
        slot.1 = to.to_owned();
        match to {
            "failed" => {
                slot.2 = Some(
                    event.payload["failure_reason"]
                        .as_str()
                        .unwrap_or("the message failed")
                        .to_owned(),
                );
            }
            "cancelled" => slot.2 = Some("cancelled before it was sent".to_owned()),
            _ => {
                // A later step implies the earlier ones.
                slot.3.get_or_insert(at);
                if rank(to) >= 2 {
                    slot.4.get_or_insert(at);
                }
                if rank(to) >= 3 {
                    slot.5.get_or_insert(at);
                }
            }
        }
        *current = to.to_owned();
    }
    // In one order, so two transactions moving the same recipients cannot deadlock.
    let mut writes: Vec<_> = writes.into_iter().collect();
    writes.sort_by_key(|a| (a.0.0.to_string(), a.0.1));
    // The counters move for the recipients written: one whose broadcast was deleted
    // meanwhile is gone, and its move is not counted anywhere.
    let mut deltas: HashMap<BroadcastId, Deltas> = HashMap::new();
    for chunk in writes.chunks(100) {
        let values = Params::on(conn).rows(chunk.len(), 7);
        let sql = format!(
            "UPDATE broadcast_recipients SET status = v.column3, error = COALESCE(v.column4, error), \
             sent_at = COALESCE(sent_at, CAST(v.column5 AS BIGINT)), \
             delivered_at = COALESCE(delivered_at, CAST(v.column6 AS BIGINT)), \
             read_at = COALESCE(read_at, CAST(v.column7 AS BIGINT)) \
             FROM (VALUES {values}) AS v \
             WHERE broadcast_recipients.broadcast_id = v.column1 \
             AND broadcast_recipients.seq = CAST(v.column2 AS BIGINT) \
             RETURNING broadcast_recipients.broadcast_id, broadcast_recipients.seq"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        let text = |t: Option<i64>| t.map(|t| t.to_string());
        for ((broadcast, seq), (_, status, error, sent, delivered, read)) in chunk {
            q = q
                .bind(*broadcast)
                .bind(seq.to_string())
                .bind(status.clone())
                .bind(error.clone())
                .bind(text(*sent))
                .bind(text(*delivered))
                .bind(text(*read));
        }
        let written: HashMap<(BroadcastId, i64), ()> = q
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| Ok(((row.try_get("broadcast_id")?, row.try_get("seq")?), ())))
            .collect::<Result<_>>()?;
        for (key, (from, to, ..)) in chunk {
            if written.contains_key(key) {
                deltas.entry(key.0).or_default().moved(from, to);
            }
        }
    }
    // No lock on the broadcasts: a tally each, folded by whoever locks them next (their
    // worker, within 100 ms while they send), which also ends them.
    let mut touched: Vec<BroadcastId> = deltas.keys().copied().collect();
    touched.sort_by_key(|id| id.to_string());
    for id in touched {
        tallies::append(conn, id, &deltas[&id]).await?;
    }
    Ok(())
}

impl Store {
    /// Commits a batch of broadcast `b`'s recipients, those after `b.cursor_seq` up to
    /// `upto`: their messages and jobs, their state, the cursor's move and the counters, in
    /// one transaction. `false` (nothing written) when the broadcast moved meanwhile (it was
    /// cancelled, or another worker took this batch).
    pub async fn commit_broadcast_batch(
        &self,
        b: &BroadcastRow,
        upto: i64,
        items: &[BatchItem],
    ) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        // Its session must still be live, and stays so until this commits: a deletion
        // fails the session's outbox after this batch, or this batch sees the deletion and
        // writes nothing (the worker then ends the broadcast). Otherwise its messages would
        // wait forever in a deleted session's outbox and the broadcast stay `sending`.
        let share = if lock_clause(&tx).is_empty() {
            ""
        } else {
            " FOR SHARE"
        };
        let status: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT status FROM sessions WHERE id = $1{share}"
        )))
        .bind(b.session_id)
        .fetch_optional(&mut *tx)
        .await?;
        if status.is_none_or(|s| s == "pending_deletion" || s == "deleted") {
            return Ok(false);
        }
        let mut d = Deltas::default();
        for item in items {
            match &item.outcome {
                BatchOutcome::Queued(_) => {}
                BatchOutcome::Skipped(_) => d.moved("pending", "skipped"),
                BatchOutcome::Failed(_) => d.moved("pending", "failed"),
            }
        }
        let moved = sqlx::query(
            "UPDATE broadcasts SET cursor_seq = $1, processed = processed + $2, \
             n_pending = n_pending + $3, n_failed = n_failed + $4, n_skipped = n_skipped + $5, \
             updated_at = $6 WHERE id = $7 AND cursor_seq = $8 AND status = 'sending'",
        )
        .bind(upto)
        .bind(items.len() as i64)
        .bind(d.by_status[0])
        .bind(d.by_status[4])
        .bind(d.by_status[5])
        .bind(now_millis())
        .bind(b.id)
        .bind(b.cursor_seq)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved == 0 {
            return Ok(false);
        }
        let queued: Vec<(i64, &MessageRow)> = items
            .iter()
            .filter_map(|i| match &i.outcome {
                BatchOutcome::Queued(q) => Some((i.seq, &**q)),
                _ => None,
            })
            .collect();
        insert_broadcast_messages(&mut tx, b.id, &queued).await?;
        for chunk in items.chunks(100) {
            let mut p = Params::on(&tx);
            let values = p.rows(chunk.len(), 4);
            let broadcast = p.next();
            let sql = format!(
                "UPDATE broadcast_recipients SET status = v.column2, message_id = v.column3, \
                 error = v.column4 FROM (VALUES {values}) AS v \
                 WHERE broadcast_recipients.broadcast_id = {broadcast} \
                 AND broadcast_recipients.seq = CAST(v.column1 AS BIGINT)"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
            for item in chunk {
                let (status, message, error) = match &item.outcome {
                    BatchOutcome::Queued(q) => ("pending", Some(q.id.to_string()), None),
                    BatchOutcome::Skipped(why) => ("skipped", None, Some(why.clone())),
                    BatchOutcome::Failed(why) => ("failed", None, Some(why.clone())),
                };
                q = q
                    .bind(item.seq.to_string())
                    .bind(status)
                    .bind(message)
                    .bind(error);
            }
            q.bind(b.id).execute(&mut *tx).await?;
        }
        // The broadcast's row is locked by the cursor's move: the tallies join it.
        tallies::fold(&mut tx, b.id, b.next_seq).await?;
        let events: Vec<Event> = settle(&mut tx, b.id).await?.into_iter().collect();
        append_events(&mut tx, &events).await?;
        tx.commit().await?;
        if !events.is_empty() {
            self.events_appended();
        }
        Ok(true)
    }

    /// Folds the tallies of broadcasts into them (a draft's, from additions, are left to
    /// the change that ends the draft, so additions are not held up) and ends the sending
    /// broadcasts whose recipients are all settled, or writes their `broadcast.progress`
    /// (at most once a second): the worker's round. Returns how many broadcasts got an event.
    pub async fn settle_broadcasts(&self, limit: i64) -> Result<usize> {
        let ids: Vec<BroadcastId> = sqlx::query_scalar(
            "SELECT id FROM broadcasts WHERE status = 'sending' AND cursor_seq >= next_seq \
             AND n_pending = 0 \
             UNION SELECT t.broadcast_id FROM broadcast_tallies t \
             JOIN broadcasts b ON b.id = t.broadcast_id WHERE b.status <> 'draft' \
             ORDER BY 1 LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        let mut ended = 0;
        for id in ids {
            let mut tx = self.write.begin().await?;
            let Some(b) = lock_broadcast(&mut tx, None, id).await? else {
                continue;
            };
            let events: Vec<Event> = if b.status == BroadcastStatus::Sending {
                settle(&mut tx, id).await?.into_iter().collect()
            } else {
                Vec::new()
            };
            append_events(&mut tx, &events).await?;
            tx.commit().await?;
            if !events.is_empty() {
                ended += 1;
                self.events_appended();
            }
        }
        Ok(ended)
    }

    /// Cancels `account`'s broadcast `id` when it is scheduled or sending: recipients not
    /// yet messaged and messages not yet sent (withdrawn from the outbox) become cancelled;
    /// what was sent stays sent. `None` when there is no such broadcast.
    ///
    /// One transaction, so a failure or a crash part way changes nothing and the cancel can
    /// be retried. Its waiting messages are withdrawn first, taking the locks in the order
    /// every message path takes them (messages, then the broadcast), so it cannot deadlock
    /// with the dispatcher; then the broadcast ends (no batch commits after it), and the
    /// messages of a batch that committed in between are withdrawn too.
    pub async fn cancel_broadcast(
        &self,
        account: AccountId,
        id: BroadcastId,
        now: i64,
    ) -> Result<Option<Transition>> {
        let mut tx = self.write.begin().await?;
        // Nothing of another account's broadcast is touched: its id is checked first.
        let session: Option<SessionId> = sqlx::query_scalar(
            "SELECT session_id FROM broadcasts WHERE id = $1 AND account_id = $2",
        )
        .bind(id)
        .bind(account)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(session) = session else {
            return Ok(None);
        };
        // Their events are appended once the broadcast has ended, so they do not settle it
        // as completed on the way.
        let mut withdrawn = withdraw_queued(&mut tx, id, session, now).await?;
        let Some(mut b) = lock_broadcast(&mut tx, Some(account), id).await? else {
            return Ok(None);
        };
        if !matches!(
            b.status,
            BroadcastStatus::Scheduled | BroadcastStatus::Sending
        ) {
            // Dropping the transaction undoes the withdrawal (there was none to do: a
            // broadcast in another state has no waiting messages).
            return Ok(Some(Transition::Refused(b)));
        }
        b.status = BroadcastStatus::Cancelled;
        b.completed_at = Some(now);
        b.updated_at = now;
        write_state(&mut tx, &b).await?;
        let left = sqlx::query(
            "UPDATE broadcast_recipients SET status = 'cancelled', error = 'cancelled before it was sent' \
             WHERE broadcast_id = $1 AND seq > $2",
        )
        .bind(id)
        .bind(b.cursor_seq)
        .execute(&mut *tx)
        .await?
        .rows_affected() as i64;
        sqlx::query(
            "UPDATE broadcasts SET cursor_seq = next_seq, processed = processed + $1, \
             n_pending = n_pending - $1, n_cancelled = n_cancelled + $1 WHERE id = $2",
        )
        .bind(left)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        withdrawn.extend(withdraw_queued(&mut tx, id, session, now).await?);
        append_events(&mut tx, &withdrawn).await?;
        let b = lock_broadcast(&mut tx, None, id).await?.unwrap_or(b);
        append_events(&mut tx, &[b.event(EventType::BroadcastCancelled)]).await?;
        tx.commit().await?;
        self.events_appended();
        Ok(Some(Transition::Done(b)))
    }

    /// Ends sending broadcast `id` as failed with `reason` (its session is gone, its
    /// template no longer sendable): recipients not yet messaged fail with the reason.
    pub async fn fail_broadcast(&self, id: BroadcastId, reason: &str) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let Some(mut b) = lock_broadcast(&mut tx, None, id).await? else {
            return Ok(());
        };
        if b.status != BroadcastStatus::Sending {
            return Ok(());
        }
        let now = now_millis();
        let left = sqlx::query(
            "UPDATE broadcast_recipients SET status = 'failed', error = $1 \
             WHERE broadcast_id = $2 AND seq > $3",
        )
        .bind(crate::plain_str(reason))
        .bind(id)
        .bind(b.cursor_seq)
        .execute(&mut *tx)
        .await?
        .rows_affected() as i64;
        sqlx::query(
            "UPDATE broadcasts SET cursor_seq = next_seq, processed = processed + $1, \
             n_pending = n_pending - $1, n_failed = n_failed + $1 WHERE id = $2",
        )
        .bind(left)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        b.status = BroadcastStatus::Failed;
        b.failure_reason = Some(reason.to_owned());
        b.completed_at = Some(now);
        b.updated_at = now;
        write_state(&mut tx, &b).await?;
        let b = lock_broadcast(&mut tx, None, id).await?.unwrap_or(b);
        append_events(&mut tx, &[b.event(EventType::BroadcastFailed)]).await?;
        tx.commit().await?;
        self.events_appended();
        Ok(())
    }
}

/// Withdraws broadcast `id`'s messages still queued in its session `session` (the
/// dispatcher revokes one that was leaving at this very moment); their `message.deleted`
/// events cancel the recipients and move the counters once appended. Returns those events.
///
/// A queued send keeps its job until its outcome, so the waiting messages are the
/// broadcast's among the session's jobs (its outbox on PostgreSQL, its queued messages on
/// SQLite: see `messages::sends_in_outbox`): those are read, bounded by the broadcast's
/// window, not the broadcast's recipients, which can be a million.
async fn withdraw_queued(
    tx: &mut AnyConnection,
    id: BroadcastId,
    session: SessionId,
    now: i64,
) -> Result<Vec<Event>> {
    let sql = if crate::messages::sends_in_outbox_of(tx) {
        "DELETE FROM outbox WHERE session_id = $1 AND action = 'send' AND EXISTS \
         (SELECT 1 FROM messages m WHERE m.id = outbox.message_id AND m.broadcast_id = $2) \
         RETURNING message_id"
    } else {
        "SELECT id FROM messages WHERE session_id = $1 AND status = 'queued' \
         AND broadcast_id = $2"
    };
    let waiting: Vec<MessageId> = sqlx::query_scalar(sql)
        .bind(session)
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
    let mut events = Vec::with_capacity(waiting.len());
    for chunk in waiting.chunks(500) {
        let mut p = Params::on(tx);
        let (deleted_at, updated_at) = (p.next(), p.next());
        let list = p.list(chunk.len());
        let sql = format!(
            "UPDATE messages SET status = 'deleted', deleted_at = {deleted_at}, \
             updated_at = {updated_at} WHERE status = 'queued' AND id IN ({list}) \
             RETURNING {MESSAGE_COLUMNS}"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .persistent(false)
            .bind(now)
            .bind(now);
        for message in chunk {
            q = q.bind(*message);
        }
        for row in q.fetch_all(&mut *tx).await? {
            events.push(MessageRow::from_row(&row)?.event(EventType::MessageDeleted));
        }
    }
    Ok(events)
}
