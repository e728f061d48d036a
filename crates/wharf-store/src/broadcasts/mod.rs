//! Broadcasts (the Zernio Business API): a draft with its recipients, the state machine
//! (draft → scheduled → sending → completed | failed | cancelled), and counters kept
//! incrementally in the same transaction as every change they count (directly, or as a
//! tally folded in later by whoever locks the broadcast: [`tallies`]). The worker's side
//! (batches of recipients becoming messages, receipts moving recipients) is in [`progress`].
//!
//! Recipients are numbered per broadcast (`seq`): the worker walks them in order behind a
//! cursor stored on the broadcast, so a batch, its messages and the cursor's move commit
//! together and no recipient is messaged twice or skipped, whatever stops the process.

mod progress;
mod recipients;
mod tallies;

use serde_json::{Value, json};
use sqlx::{AnyConnection, Row, any::AnyRow};
use wharf_core::{AccountId, BroadcastId, Event, EventType, SessionId};

pub(crate) use self::progress::follow;
pub use self::{
    progress::{BatchItem, BatchOutcome},
    recipients::{Added as RecipientsAdded, NewRecipient, RecipientRow},
};
use crate::{Result, Store, StoreError, events::append_events};

/// A recipient's statuses, in the order of the broadcast's counter columns (`n_pending`, …).
pub const RECIPIENT_STATUSES: [&str; 7] = [
    "pending",
    "sent",
    "delivered",
    "read",
    "failed",
    "skipped",
    "cancelled",
];

/// Where a broadcast is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BroadcastStatus {
    Draft,
    Scheduled,
    Sending,
    Completed,
    Failed,
    Cancelled,
}

impl BroadcastStatus {
    pub const ALL: [Self; 6] = [
        Self::Draft,
        Self::Scheduled,
        Self::Sending,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Scheduled => "scheduled",
            Self::Sending => "sending",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the broadcast is over.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// A stored broadcast. The `n_*` counters are recipients by current status (exclusive);
/// the API's cumulative counts (`sentCount` counts delivered and read ones too) are methods.
#[derive(Debug, Clone, PartialEq)]
pub struct BroadcastRow {
    pub id: BroadcastId,
    pub account_id: AccountId,
    pub session_id: SessionId,
    pub name: String,
    pub description: Option<String>,
    /// `{name, language, components}`.
    pub template: Value,
    pub status: BroadcastStatus,
    pub failure_reason: Option<String>,
    pub scheduled_at: Option<i64>,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub recipient_count: i64,
    /// The last recipient position handed out.
    pub next_seq: i64,
    /// Recipients at or below this position were processed by the worker.
    pub cursor_seq: i64,
    pub processed: i64,
    pub n_pending: i64,
    pub n_sent: i64,
    pub n_delivered: i64,
    pub n_read: i64,
    pub n_failed: i64,
    pub n_skipped: i64,
    pub n_cancelled: i64,
    pub progress_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(crate) const COLUMNS: &str = "id, account_id, session_id, name, description, template, status, \
     failure_reason, scheduled_at, started_at, completed_at, recipient_count, next_seq, cursor_seq, \
     processed, n_pending, n_sent, n_delivered, n_read, n_failed, n_skipped, n_cancelled, progress_at, \
     created_at, updated_at";

impl BroadcastRow {
    /// A new draft with no recipients.
    pub fn draft(
        account_id: AccountId,
        session_id: SessionId,
        name: String,
        description: Option<String>,
        template: Value,
        now: i64,
    ) -> Self {
        Self {
            id: BroadcastId::generate(),
            account_id,
            session_id,
            name,
            description,
            template,
            status: BroadcastStatus::Draft,
            failure_reason: None,
            scheduled_at: None,
            started_at: None,
            completed_at: None,
            recipient_count: 0,
            next_seq: 0,
            cursor_seq: 0,
            processed: 0,
            n_pending: 0,
            n_sent: 0,
            n_delivered: 0,
            n_read: 0,
            n_failed: 0,
            n_skipped: 0,
            n_cancelled: 0,
            progress_at: 0,
            created_at: now,
            updated_at: now,
        }
    }

    pub(crate) fn from_row(row: &AnyRow) -> Result<Self> {
        let id: String = row.try_get("id")?;
        let corrupt = |what: &str| StoreError::Corrupt(format!("broadcast {id} {what}"));
        let template: String = row.try_get("template")?;
        let status: String = row.try_get("status")?;
        Ok(Self {
            id: id.parse().map_err(|_| corrupt("id"))?,
            account_id: row.try_get("account_id")?,
            session_id: row.try_get("session_id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            template: serde_json::from_str(&template).map_err(|_| corrupt("template"))?,
            status: BroadcastStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
            failure_reason: row.try_get("failure_reason")?,
            scheduled_at: row.try_get("scheduled_at")?,
            started_at: row.try_get("started_at")?,
            completed_at: row.try_get("completed_at")?,
            recipient_count: row.try_get("recipient_count")?,
            next_seq: row.try_get("next_seq")?,
            cursor_seq: row.try_get("cursor_seq")?,
            processed: row.try_get("processed")?,
            n_pending: row.try_get("n_pending")?,
            n_sent: row.try_get("n_sent")?,
            n_delivered: row.try_get("n_delivered")?,
            n_read: row.try_get("n_read")?,
            n_failed: row.try_get("n_failed")?,
            n_skipped: row.try_get("n_skipped")?,
            n_cancelled: row.try_get("n_cancelled")?,
            progress_at: row.try_get("progress_at")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    /// Recipients whose message was sent (delivered and read ones included).
    pub fn sent_total(&self) -> i64 {
        self.n_sent + self.n_delivered + self.n_read
    }

    /// Recipients whose message was delivered (read ones included).
    pub fn delivered_total(&self) -> i64 {
        self.n_delivered + self.n_read
    }

    /// The broadcast's messages queued and not yet settled (sent, failed or withdrawn): its
    /// pending recipients less those the worker has not reached. Read from the counters, so
    /// the worker's window needs no look at the outbox (on PostgreSQL with its dead rows not
    /// vacuumed, counting a busy outbox took a fifth of the database's time).
    pub fn waiting_messages(&self) -> i64 {
        self.n_pending - (self.recipient_count - self.processed)
    }

    /// Whether the worker has recipients left to turn into messages.
    pub fn has_unprocessed(&self) -> bool {
        self.cursor_seq < self.next_seq
    }

    /// The event of type `kind` about this broadcast's current state.
    pub fn event(&self, kind: EventType) -> Event {
        let mut payload = json!({
            "broadcast_id": self.id,
            "session_id": self.session_id,
            "name": self.name,
            "status": self.status.as_str(),
            "total": self.recipient_count,
            "pending": self.n_pending,
            "sent": self.sent_total(),
            "delivered": self.delivered_total(),
            "read": self.n_read,
            "failed": self.n_failed,
            "skipped": self.n_skipped,
            "cancelled": self.n_cancelled,
            "at": wharf_core::time::rfc3339(self.updated_at),
        });
        if let Some(reason) = &self.failure_reason {
            payload["failure_reason"] = json!(reason);
        }
        Event::new(self.account_id, Some(self.session_id), kind, payload)
    }
}

/// What a state change found.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// It happened; the broadcast as it is now.
    Done(BroadcastRow),
    /// The broadcast is not in a status that allows it; the broadcast as it is.
    Refused(BroadcastRow),
}

/// The FOR UPDATE of this connection's backend (SQLite has one writer).
pub(crate) fn lock_clause(conn: &AnyConnection) -> &'static str {
    if conn.backend_name() == "SQLite" {
        ""
    } else {
        " FOR UPDATE"
    }
}

pub(crate) async fn lock_broadcast(
    conn: &mut AnyConnection,
    account: Option<AccountId>,
    id: BroadcastId,
) -> Result<Option<BroadcastRow>> {
    let lock = lock_clause(conn);
    let sql = format!(
        "SELECT {COLUMNS} FROM broadcasts WHERE id = $1 AND ($2 IS NULL OR account_id = $2){lock}"
    );
    let Some(mut b) = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(account)
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(BroadcastRow::from_row)
        .transpose()?
    else {
        return Ok(None);
    };
    // The lock is held: the counters changed elsewhere join the row now.
    let folded = tallies::fold(conn, id, b.next_seq).await?;
    tallies::apply(&mut b, &folded);
    Ok(Some(b))
}

/// Broadcasts as read: their counters with the tallies not folded yet.
pub(super) fn read_broadcasts(conditions: &str) -> String {
    format!("{} {conditions}", tallies::read_from())
}

/// Writes the status and times of `b` (its counters are changed by increments only).
async fn write_state(conn: &mut AnyConnection, b: &BroadcastRow) -> Result<()> {
    sqlx::query(
        "UPDATE broadcasts SET status = $1, failure_reason = $2, scheduled_at = $3, started_at = $4, \
         completed_at = $5, updated_at = $6 WHERE id = $7",
    )
    .bind(b.status.as_str())
    .bind(crate::plain(&b.failure_reason))
    .bind(b.scheduled_at)
    .bind(b.started_at)
    .bind(b.completed_at)
    .bind(b.updated_at)
    .bind(b.id)
    .execute(conn)
    .await?;
    Ok(())
}

impl Store {
    /// Stores a new draft and its initial recipients in one transaction; returns it as stored.
    pub async fn insert_broadcast(
        &self,
        b: &BroadcastRow,
        recipients: &[NewRecipient],
    ) -> Result<BroadcastRow> {
        let mut tx = self.write.begin().await?;
        let sql = format!(
            "INSERT INTO broadcasts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
             $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(b.id)
            .bind(b.account_id)
            .bind(b.session_id)
            .bind(crate::plain_str(&b.name))
            .bind(crate::plain(&b.description))
            .bind(b.template.to_string())
            .bind(b.status.as_str())
            .bind(crate::plain(&b.failure_reason))
            .bind(b.scheduled_at)
            .bind(b.started_at)
            .bind(b.completed_at)
            .bind(b.recipient_count)
            .bind(b.next_seq)
            .bind(b.cursor_seq)
            .bind(b.processed)
            .bind(b.n_pending)
            .bind(b.n_sent)
            .bind(b.n_delivered)
            .bind(b.n_read)
            .bind(b.n_failed)
            .bind(b.n_skipped)
            .bind(b.n_cancelled)
            .bind(b.progress_at)
            .bind(b.created_at)
            .bind(b.updated_at)
            .execute(&mut *tx)
            .await?;
        recipients::insert(&mut tx, b.id, 0, recipients).await?;
        let stored = lock_broadcast(&mut tx, None, b.id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a broadcast vanished".into()))?;
        tx.commit().await?;
        Ok(stored)
    }

    /// The broadcast `id` of `account`.
    pub async fn get_broadcast(
        &self,
        account: AccountId,
        id: BroadcastId,
    ) -> Result<Option<BroadcastRow>> {
        let sql = read_broadcasts("WHERE b.id = $1 AND b.account_id = $2");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(account)
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(BroadcastRow::from_row)
            .transpose()
    }

    /// A page of the broadcasts of `account`'s session, newest first, and how many match.
    pub async fn list_broadcasts(
        &self,
        account: AccountId,
        session: SessionId,
        status: Option<BroadcastStatus>,
        limit: i64,
        skip: i64,
    ) -> Result<(Vec<BroadcastRow>, i64)> {
        let status = status.map(|s| s.as_str());
        let sql = read_broadcasts(
            "WHERE b.session_id = $1 AND b.account_id = $2 AND ($3 IS NULL OR b.status = $3) \
             ORDER BY b.id DESC LIMIT $4 OFFSET $5",
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(session)
            .bind(account)
            .bind(status)
            .bind(limit)
            .bind(skip)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(BroadcastRow::from_row)
            .collect::<Result<Vec<_>>>()?;
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM broadcasts WHERE session_id = $1 AND account_id = $2 \
             AND ($3 IS NULL OR status = $3)",
        )
        .bind(session)
        .bind(account)
        .bind(status)
        .fetch_one(&self.read)
        .await?;
        Ok((rows, total))
    }

    /// The newest `limit` broadcasts of `account` (of its session `only`, when given), for
    /// the dashboard.
    pub async fn recent_broadcasts(
        &self,
        account: AccountId,
        only: Option<SessionId>,
        limit: i64,
    ) -> Result<Vec<BroadcastRow>> {
        let sql = read_broadcasts(
            "WHERE b.account_id = $1 AND ($2 IS NULL OR b.session_id = $2) ORDER BY b.id DESC LIMIT $3",
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account)
            .bind(only)
            .bind(limit)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(BroadcastRow::from_row)
            .collect()
    }

    /// Deletes a draft or cancelled broadcast with its recipients. `None` when there is no
    /// such broadcast of `account`.
    pub async fn delete_broadcast(
        &self,
        account: AccountId,
        id: BroadcastId,
    ) -> Result<Option<Transition>> {
        let mut tx = self.write.begin().await?;
        let Some(b) = lock_broadcast(&mut tx, Some(account), id).await? else {
            return Ok(None);
        };
        if !matches!(
            b.status,
            BroadcastStatus::Draft | BroadcastStatus::Cancelled
        ) {
            return Ok(Some(Transition::Refused(b)));
        }
        sqlx::query("DELETE FROM broadcast_recipients WHERE broadcast_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM broadcasts WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // A late receipt's tally written since the lock (a cancelled broadcast's messages
        // still get receipts) goes with it; later ones find no recipient and write none.
        sqlx::query("DELETE FROM broadcast_tallies WHERE broadcast_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(Transition::Done(b)))
    }

    /// Changes the status of `account`'s broadcast `id` when it is one of `from`: `change`
    /// edits the row (status, times); `event` is appended with the change. `None` when there
    /// is no such broadcast.
    async fn transition(
        &self,
        account: Option<AccountId>,
        id: BroadcastId,
        from: &[BroadcastStatus],
        allowed: impl FnOnce(&BroadcastRow) -> bool,
        change: impl FnOnce(&mut BroadcastRow),
        event: Option<EventType>,
    ) -> Result<Option<Transition>> {
        let mut tx = self.write.begin().await?;
        let Some(mut b) = lock_broadcast(&mut tx, account, id).await? else {
            return Ok(None);
        };
        if !from.contains(&b.status) || !allowed(&b) {
            return Ok(Some(Transition::Refused(b)));
        }
        change(&mut b);
        write_state(&mut tx, &b).await?;
        if let Some(kind) = event {
            append_events(&mut tx, &[b.event(kind)]).await?;
        }
        tx.commit().await?;
        if event.is_some() {
            self.events_appended();
        }
        Ok(Some(Transition::Done(b)))
    }

    /// draft → scheduled at `at`, when it has recipients.
    pub async fn schedule_broadcast(
        &self,
        account: AccountId,
        id: BroadcastId,
        at: i64,
        now: i64,
    ) -> Result<Option<Transition>> {
        self.transition(
            Some(account),
            id,
            &[BroadcastStatus::Draft],
            |b| b.recipient_count > 0,
            |b| {
                b.status = BroadcastStatus::Scheduled;
                b.scheduled_at = Some(at);
                b.updated_at = now;
            },
            None,
        )
        .await
    }

    /// scheduled → draft.
    pub async fn unschedule_broadcast(
        &self,
        account: AccountId,
        id: BroadcastId,
        now: i64,
    ) -> Result<Option<Transition>> {
        self.transition(
            Some(account),
            id,
            &[BroadcastStatus::Scheduled],
            |_| true,
            |b| {
                b.status = BroadcastStatus::Draft;
                b.scheduled_at = None;
                b.updated_at = now;
            },
            None,
        )
        .await
    }

    /// draft or scheduled → sending (with `broadcast.started`), when it has recipients.
    /// `account` is `None` for the scheduler, which starts only broadcasts due at `now`.
    pub async fn start_broadcast(
        &self,
        account: Option<AccountId>,
        id: BroadcastId,
        now: i64,
    ) -> Result<Option<Transition>> {
        let from: &[BroadcastStatus] = match account {
            Some(_) => &[BroadcastStatus::Draft, BroadcastStatus::Scheduled],
            None => &[BroadcastStatus::Scheduled],
        };
        self.transition(
            account,
            id,
            from,
            |b| b.recipient_count > 0 && (account.is_some() || b.scheduled_at <= Some(now)),
            |b| {
                b.status = BroadcastStatus::Sending;
                b.started_at = Some(now);
                b.updated_at = now;
            },
            Some(EventType::BroadcastStarted),
        )
        .await
    }

    /// Scheduled broadcasts due at `now`, oldest first (at most `limit`).
    pub async fn due_broadcasts(&self, now: i64, limit: i64) -> Result<Vec<BroadcastId>> {
        let ids: Vec<BroadcastId> = sqlx::query_scalar(
            "SELECT id FROM broadcasts WHERE status = 'scheduled' AND scheduled_at <= $1 \
             ORDER BY scheduled_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(ids)
    }

    /// Sending broadcasts with recipients left to process.
    pub async fn broadcasts_to_process(&self, limit: i64) -> Result<Vec<BroadcastRow>> {
        let sql = read_broadcasts(
            "WHERE b.status = 'sending' AND b.cursor_seq < b.next_seq ORDER BY b.id LIMIT $1",
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(BroadcastRow::from_row)
            .collect()
    }
}
