//! Messages and the outbox. Accepting a send commits the message and its outbox job (and the
//! idempotency record) together; dispatch results, receipts and inbound messages are applied
//! in batches, each change with its event, never moving a status backwards.

use std::collections::HashMap;

use serde_json::{Value, json};
use sqlx::{AnyConnection, Row, any::AnyRow};
use wharf_core::{
    AccountId, Event, EventType, Jid, JobId, MessageId, ProviderId, SessionId,
    message::{Content, Direction, Inbound, MessageKind, MessageStatus, ReceiptKind},
    time::now_millis,
};

use crate::{Backend, Params, Result, Store, StoreError, conflict_or, events::append_events};

mod polls;

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

/// What the dispatcher does with an outbox job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobAction {
    Send,
    Edit,
    Revoke,
    MarkRead,
}

impl JobAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::Edit => "edit",
            Self::Revoke => "revoke",
            Self::MarkRead => "mark_read",
        }
    }
    fn parse(text: &str) -> Option<Self> {
        [Self::Send, Self::Edit, Self::Revoke, Self::MarkRead]
            .into_iter()
            .find(|a| a.as_str() == text)
    }
}

/// A unit of dispatcher work.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxJob {
    pub id: JobId,
    pub account_id: AccountId,
    pub session_id: SessionId,
    pub chat_jid: Jid,
    pub message_id: Option<MessageId>,
    pub action: JobAction,
    /// Action details: `{"text"}` for edits, `{"message_ids"}` for read marks.
    pub payload: Value,
    pub available_at: i64,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
}

const JOB_COLUMNS: &str = "id, account_id, session_id, chat_jid, message_id, action, payload, available_at, attempts, last_error, created_at";

impl OutboxJob {
    /// A job for `action` on a message, available now.
    pub fn new(
        account: AccountId,
        session: SessionId,
        chat: Jid,
        message: Option<MessageId>,
        action: JobAction,
        payload: Value,
    ) -> Self {
        let now = now_millis();
        Self {
            id: JobId::generate(),
            account_id: account,
            session_id: session,
            chat_jid: chat,
            message_id: message,
            action,
            payload,
            available_at: now,
            attempts: 0,
            last_error: None,
            created_at: now,
        }
    }

    fn from_row(row: &AnyRow) -> Result<Self> {
        let id: JobId = row.try_get("id")?;
        let corrupt = |what: &str| StoreError::Corrupt(format!("outbox job {id} {what}"));
        let text = |column: &str| row.try_get::<String, _>(column);
        Ok(Self {
            id,
            account_id: row.try_get("account_id")?,
            session_id: row.try_get("session_id")?,
            chat_jid: Jid::parse(&text("chat_jid")?).map_err(|_| corrupt("chat_jid"))?,
            message_id: row.try_get("message_id")?,
            action: JobAction::parse(&text("action")?).ok_or_else(|| corrupt("action"))?,
            payload: serde_json::from_str(&text("payload")?).map_err(|_| corrupt("payload"))?,
            available_at: row.try_get("available_at")?,
            attempts: row.try_get("attempts")?,
            last_error: row.try_get("last_error")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// A send waiting for its group commit.
pub(crate) struct PendingAccept {
    message: MessageRow,
    job: OutboxJob,
    /// The auth epoch the send was decided at, when it used cached credentials.
    verify: Option<i64>,
    reply: tokio::sync::oneshot::Sender<Result<()>>,
}

/// Rows per multi-row insert of a group (22 parameters a message).
const GROUP_CHUNK: usize = 100;
/// Sends committed together, at most.
const GROUP_MAX: usize = 512;
/// Largest group whose SQLite statement is kept prepared.
const PREPARED_GROUP_MAX: usize = 64;

/// Starts the task that commits queued sends in groups.
pub(crate) fn spawn_batcher(
    pool: crate::pool::Pool,
    backend: Backend,
) -> tokio::sync::mpsc::Sender<PendingAccept> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<PendingAccept>(4096);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(GROUP_MAX);
        while let Some(first) = rx.recv().await {
            batch.push(first);
            while batch.len() < GROUP_MAX {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            // Sends decided at an older epoch than another in the group are stale already.
            if let Some(newest) = batch.iter().filter_map(|p| p.verify).max() {
                for p in batch.extract_if(.., |p| p.verify.is_some_and(|e| e < newest)) {
                    let _ = p.reply.send(Err(StoreError::Stale));
                }
            }
            match commit_group(&pool, backend, &batch).await {
                Ok(Committed::All) => {
                    for p in batch.drain(..) {
                        let _ = p.reply.send(Ok(()));
                    }
                }
                Ok(Committed::Unchecked) => {
                    for p in batch.drain(..) {
                        let _ = p.reply.send(match p.verify {
                            None => Ok(()),
                            Some(_) => Err(StoreError::Stale),
                        });
                    }
                }
                Err(_) if batch.len() > 1 => {
                    // Find the culprit: each request on its own, so one bad row fails alone.
                    for p in batch.drain(..) {
                        let result = commit_group(&pool, backend, std::slice::from_ref(&p))
                            .await
                            .and_then(|c| match (c, p.verify) {
                                (Committed::Unchecked, Some(_)) => Err(StoreError::Stale),
                                _ => Ok(()),
                            });
                        let _ = p.reply.send(result);
                    }
                }
                Err(e) => {
                    for p in batch.drain(..) {
                        let _ = p
                            .reply
                            .send(Err(StoreError::Corrupt(format!("group commit: {e}"))));
                    }
                }
            }
        }
    });
    tx
}

/// What a group commit wrote.
enum Committed {
    /// Every send.
    All,
    /// Only the sends without an epoch to check: the auth epoch had moved.
    Unchecked,
}

/// The statements of a group: for the sends without an epoch, plain multi-row inserts; for
/// the others (all at one epoch, given last), inserts that write only while the auth epoch
/// still has that value. Each statement numbers its own parameters.
fn group_statements(backend: Backend, unchecked: usize, checked: usize) -> Vec<String> {
    let head = INSERT_MESSAGE
        .split(" VALUES ")
        .next()
        .unwrap_or(INSERT_MESSAGE);
    let mut statements = Vec::new();
    for (count, check) in [(unchecked, false), (checked, true)] {
        let mut left = count;
        while left > 0 {
            let n = left.min(GROUP_CHUNK);
            left -= n;
            for (table, cols) in [(head, 22), (INSERT_JOB, 11)] {
                let mut params = Params::new(backend);
                let rows = params.rows(n, cols);
                statements.push(if check {
                    let epoch = params.next();
                    format!(
                        "{table} SELECT * FROM (VALUES {rows}) AS v WHERE {} = {epoch}",
                        crate::authcache::EPOCH
                    )
                } else {
                    format!("{table} VALUES {rows}")
                });
            }
        }
    }
    statements
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// Binds one statement of a group: each send's row (`bind` picks the message or the job),
/// then the epoch when the statement checks one.
fn bind_rows<'q>(
    mut q: AnyQuery<'q>,
    chunk: &[&PendingAccept],
    bind: fn(AnyQuery<'q>, &PendingAccept) -> AnyQuery<'q>,
) -> AnyQuery<'q> {
    for p in chunk {
        q = bind(q, p);
    }
    match chunk.first().and_then(|p| p.verify) {
        Some(epoch) => q.bind(epoch),
        None => q,
    }
}

/// The message, then the job, of a send.
const ROW_BINDERS: [for<'q> fn(AnyQuery<'q>, &PendingAccept) -> AnyQuery<'q>; 2] = [
    |q, p| bind_message(q, &p.message),
    |q, p| bind_job(q, &p.job),
];

/// Binds a group's parameters in the order of [`group_statements`].
fn bind_group<'q>(mut q: AnyQuery<'q>, batch: &[PendingAccept]) -> AnyQuery<'q> {
    let unchecked: Vec<&PendingAccept> = batch.iter().filter(|p| p.verify.is_none()).collect();
    let checked: Vec<&PendingAccept> = batch.iter().filter(|p| p.verify.is_some()).collect();
    for group in [unchecked, checked] {
        for chunk in group.chunks(GROUP_CHUNK) {
            for bind in ROW_BINDERS {
                q = bind_rows(q, chunk, bind);
            }
        }
    }
    q
}

/// Reads how much of a group was written from its statements' row counts.
fn committed(batch: &[PendingAccept], rows: u64) -> Result<Committed> {
    let all = 2 * batch.len() as u64;
    let unchecked = 2 * batch.iter().filter(|p| p.verify.is_none()).count() as u64;
    if rows == all {
        Ok(Committed::All)
    } else if rows == unchecked {
        Ok(Committed::Unchecked)
    } else {
        Err(StoreError::Corrupt(format!(
            "group commit wrote {rows} rows, expected {all} or {unchecked}"
        )))
    }
}

async fn commit_group(
    pool: &crate::pool::Pool,
    backend: Backend,
    batch: &[PendingAccept],
) -> Result<Committed> {
    let unchecked = batch.iter().filter(|p| p.verify.is_none()).count();
    let checked = batch.len() - unchecked;
    if backend == Backend::Sqlite {
        return commit_group_sqlite(pool, batch, unchecked, checked).await;
    }
    // PostgreSQL: one statement at a time (each is one round trip anyway), binding each
    // statement's own slice of the group.
    let mut tx = pool.begin().await?;
    if checked > 0 {
        // Held until the commit: the checked inserts all see one value.
        sqlx::query(crate::authcache::hold_epoch(Backend::Postgres))
            .execute(&mut *tx)
            .await?;
    }
    let mut rows = 0;
    let unchecked_rows: Vec<&PendingAccept> = batch.iter().filter(|p| p.verify.is_none()).collect();
    let checked_rows: Vec<&PendingAccept> = batch.iter().filter(|p| p.verify.is_some()).collect();
    for group in [unchecked_rows, checked_rows] {
        for chunk in group.chunks(GROUP_CHUNK) {
            let epoch = chunk.first().and_then(|p| p.verify);
            let statements = group_statements(
                Backend::Postgres,
                if epoch.is_none() { chunk.len() } else { 0 },
                if epoch.is_some() { chunk.len() } else { 0 },
            );
            for (sql, bind) in statements.into_iter().zip(ROW_BINDERS) {
                let q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
                rows += bind_rows(q, chunk, bind)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
        }
    }
    let outcome = committed(batch, rows)?;
    tx.commit().await?;
    Ok(outcome)
}

/// The text of a SQLite group commit of `unchecked` and `checked` sends, made once per
/// make-up.
fn sqlite_group_sql(unchecked: usize, checked: usize) -> std::sync::Arc<str> {
    use std::{
        collections::HashMap,
        sync::{Arc, Mutex},
    };
    /// SQL text by (unchecked, checked) sends.
    type Made = HashMap<(usize, usize), Arc<str>>;
    static MADE: Mutex<Option<Made>> = Mutex::new(None);
    if let Ok(mut made) = MADE.lock() {
        let made = made.get_or_insert_default();
        if let Some(sql) = made.get(&(unchecked, checked)) {
            return sql.clone();
        }
        if made.len() >= 1024 {
            made.clear();
        }
    }
    // The epoch cannot change inside this write transaction, so the one it reads says
    // whether the checked inserts wrote (SQLite's row counts cannot tell: after COMMIT it
    // reports the last insert's count again).
    let mut sql = format!("BEGIN IMMEDIATE;\nSELECT {};\n", crate::authcache::EPOCH);
    for statement in group_statements(Backend::Sqlite, unchecked, checked) {
        sql.push_str(&statement);
        sql.push_str(";\n");
    }
    sql.push_str("COMMIT;");
    let sql: Arc<str> = sql.into();
    if let Ok(mut made) = MADE.lock() {
        made.get_or_insert_default()
            .insert((unchecked, checked), sql.clone());
    }
    sql
}

/// The group commit on SQLite: the whole transaction is one multi-statement call, a single
/// hand-off to the connection's worker thread instead of one per statement (on a busy
/// machine each hand-off waits for the thread to be scheduled, and that wait, not SQLite,
/// bounded how fast sends were committed).
async fn commit_group_sqlite(
    pool: &crate::pool::Pool,
    batch: &[PendingAccept],
    unchecked: usize,
    checked: usize,
) -> Result<Committed> {
    let mut conn = pool.acquire().await?;
    // Kept prepared: the text depends only on the group's make-up, and parsing it again for
    // every group cost the writer more than a twentieth of its time (and writing it out, a
    // few percent of the server's).
    let sql = sqlite_group_sql(unchecked, checked);
    // Groups of up to `PREPARED_GROUP_MAX` sends (what a busy server makes) stay prepared;
    // larger ones are rare and each shape would hold a large prepared statement in memory.
    let q = bind_group(sqlx::query(sqlx::AssertSqlSafe(sql)), batch)
        .persistent(batch.len() <= PREPARED_GROUP_MAX);
    // Every statement must run: `fetch_all`, since fetching one row stops after it.
    match q.fetch_all(&mut *conn).await {
        Ok(rows) => {
            let row = rows
                .first()
                .ok_or_else(|| StoreError::Corrupt("group commit read no epoch".into()))?;
            let epoch: i64 = sqlx::Row::try_get(row, 0)?;
            let wrote = batch.iter().all(|p| p.verify.is_none_or(|e| e == epoch));
            Ok(if wrote {
                Committed::All
            } else {
                Committed::Unchecked
            })
        }
        Err(e) => {
            // Leave no transaction open on a pooled connection; one that cannot roll back is
            // closed rather than reused.
            if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
                conn.discard();
            }
            Err(e.into())
        }
    }
}

impl Store {
    /// The outgoing messages of `session` with these provider ids, by provider id (unknown
    /// ids left out), read inside `tx` and locked for its update on PostgreSQL.
    pub(crate) async fn outgoing_by_provider_ids(
        &self,
        tx: &mut sqlx::AnyConnection,
        session: SessionId,
        ids: &[&ProviderId],
    ) -> Result<HashMap<ProviderId, MessageRow>> {
        let lock = match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        };
        let mut rows = HashMap::new();
        for chunk in ids.chunks(200) {
            let mut p = Params::on(tx);
            let session_param = p.next();
            let list = p.list(chunk.len());
            let sql = format!(
                "SELECT {COLUMNS} FROM messages WHERE session_id = {session_param} \
                 AND direction = 'out' AND provider_msg_id IN ({list}){lock}"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .persistent(false)
                .bind(session);
            for id in chunk {
                q = q.bind(*id);
            }
            for row in q.fetch_all(&mut *tx).await? {
                let m = MessageRow::from_row(&row)?;
                if let Some(pid) = m.provider_msg_id.clone() {
                    rows.insert(pid, m);
                }
            }
        }
        Ok(rows)
    }
}

/// A stored answer to an idempotent request.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotentAnswer {
    pub request_hash: String,
    pub status_code: u16,
    pub response: Value,
}

/// What accepting a send did.
#[derive(Debug, Clone, PartialEq)]
pub enum Accepted {
    /// The message and its job are committed.
    New,
    /// The key was used before; here is what was stored with it.
    Replayed(IdempotentAnswer),
}

/// How one job ended, as reported by the dispatcher.
#[derive(Debug, Clone)]
pub enum JobOutcome {
    /// A send went out as `provider_id`. `message` is the row as the dispatcher read it,
    /// which lets a batch of sends be recorded with a few statements.
    Sent {
        job: OutboxJob,
        message: Option<Box<MessageRow>>,
        provider_id: ProviderId,
        at: i64,
    },
    /// An action was carried out.
    Done { job: OutboxJob, at: i64 },
    /// Not now (a pacing limit): try again at `available_at`, without counting an attempt.
    Defer { job: OutboxJob, available_at: i64 },
    /// Try again at `available_at`.
    Retry {
        job: OutboxJob,
        available_at: i64,
        error: String,
    },
    /// Give up: the message fails with `reason` (actions are dropped with it recorded).
    Failed {
        job: OutboxJob,
        reason: String,
        at: i64,
    },
}

impl JobOutcome {
    /// The job this outcome is about.
    pub fn job(&self) -> &OutboxJob {
        match self {
            Self::Sent { job, .. }
            | Self::Done { job, .. }
            | Self::Defer { job, .. }
            | Self::Retry { job, .. }
            | Self::Failed { job, .. } => job,
        }
    }

    /// Whether the outcome leaves the job waiting in the outbox (its chat is held meanwhile).
    pub fn waits(&self) -> bool {
        matches!(self, Self::Defer { .. } | Self::Retry { .. })
    }

    /// The same outcome with the texts an engine gave (a failure's reason, a retry's error,
    /// the WhatsApp id) made writable: NUL characters removed (PostgreSQL refuses them in
    /// text) and the reason and error cut to `max_chars` characters.
    pub fn cut_down(&self, max_chars: usize) -> Self {
        let clean = |text: &str| text.chars().filter(|c| *c != '\0').collect::<String>();
        let cut = |text: &str| clean(text).chars().take(max_chars).collect::<String>();
        let mut out = self.clone();
        match &mut out {
            Self::Sent { provider_id, .. } => *provider_id = clean(provider_id.as_str()).into(),
            Self::Retry { error, .. } => *error = cut(error),
            Self::Failed { reason, .. } => *reason = cut(reason),
            Self::Done { .. } | Self::Defer { .. } => {}
        }
        out
    }
}

/// How inbound traffic on the sandbox number is routed (see [`Store::ingest_inbound_routed`]).
#[derive(Debug, Clone)]
pub struct SandboxIngest {
    /// The server's clock reading (sandbox expiry follows it).
    pub now: i64,
    /// How long an activated session lives.
    pub active_ttl_ms: i64,
    /// The message sent to a phone when it activates; `None`: none.
    pub confirmation: Option<String>,
}

/// Our id of the message of `session` with WhatsApp id `provider_id`, when it is `owner`'s
/// (on the sandbox number, other accounts' messages share the session).
async fn owned_message(
    conn: &mut AnyConnection,
    session: SessionId,
    owner: AccountId,
    provider_id: &ProviderId,
) -> Result<Option<MessageId>> {
    let found: Option<String> = sqlx::query_scalar(
        "SELECT id FROM messages WHERE session_id = $1 AND provider_msg_id = $2 AND account_id = $3",
    )
    .bind(session)
    .bind(provider_id)
    .bind(owner)
    .fetch_optional(conn)
    .await?;
    Ok(found.and_then(|id| id.parse().ok()))
}

/// The queued confirmation of an activation, owned by the sandbox session's account (the
/// engine picks its WhatsApp id when sending).
fn sandbox_confirmation(
    live: &crate::SandboxRow,
    session: SessionId,
    chat: &Jid,
    text: &str,
    now: i64,
) -> MessageRow {
    let content = Content::Text {
        text: text.to_owned(),
    };
    MessageRow::outgoing(live.account_id, session, chat.clone(), content, now)
}

/// Which messages to list.
#[derive(Debug, Clone)]
pub struct MessageFilter {
    pub account_id: AccountId,
    pub session_id: SessionId,
    pub direction: Option<Direction>,
    pub chat: Option<Jid>,
    pub before: Option<MessageId>,
    pub limit: i64,
}

fn bind_message<'q>(
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

const INSERT_MESSAGE: &str = "INSERT INTO messages (id, account_id, session_id, direction, chat_jid, sender_jid, kind, \
     content, status, provider_msg_id, quoted_message_id, failure_reason, attempts, accepted_at, sent_at, delivered_at, \
     read_at, played_at, failed_at, deleted_at, edited_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
     $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)";

/// Inserts outgoing messages with their send jobs in multi-row statements (in the caller's
/// transaction).
pub(crate) async fn insert_messages_with_jobs(
    conn: &mut AnyConnection,
    rows: &[&(MessageRow, OutboxJob)],
) -> Result<()> {
    let head = INSERT_MESSAGE
        .split(" VALUES ")
        .next()
        .unwrap_or(INSERT_MESSAGE);
    for chunk in rows.chunks(GROUP_CHUNK) {
        let values = Params::on(conn).rows(chunk.len(), 22);
        let sql = format!("{head} VALUES {values}");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        for (m, _) in chunk.iter().map(|r| (&r.0, &r.1)) {
            q = bind_message(q, m);
        }
        q.execute(&mut *conn).await?;
        let values = Params::on(conn).rows(chunk.len(), 11);
        let sql = format!("{INSERT_JOB} VALUES {values}");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        for (_, job) in chunk.iter().map(|r| (&r.0, &r.1)) {
            q = bind_job(q, job);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

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

const INSERT_JOB: &str = "INSERT INTO outbox (id, account_id, session_id, chat_jid, message_id, action, payload, \
     available_at, attempts, last_error, created_at)";

fn bind_job<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    job: &OutboxJob,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    q.bind(job.id)
        .bind(job.account_id)
        .bind(job.session_id)
        .bind(job.chat_jid.to_string())
        .bind(job.message_id)
        .bind(job.action.as_str())
        .bind(job.payload.to_string())
        .bind(job.available_at)
        .bind(job.attempts)
        .bind(crate::plain(&job.last_error))
        .bind(job.created_at)
}

async fn insert_job(conn: &mut AnyConnection, job: &OutboxJob) -> Result<()> {
    let sql = format!("{INSERT_JOB} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)");
    bind_job(sqlx::query(sqlx::AssertSqlSafe(sql)), job)
        .execute(conn)
        .await?;
    Ok(())
}

async fn delete_job(conn: &mut AnyConnection, id: JobId) -> Result<()> {
    sqlx::query("DELETE FROM outbox WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

impl Store {
    async fn lock_message(
        &self,
        conn: &mut AnyConnection,
        by: &str,
        value: String,
        session: Option<SessionId>,
    ) -> Result<Option<MessageRow>> {
        let lock = match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM messages WHERE {by} = $1 AND ($2 IS NULL OR session_id = $2){lock}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(value)
            .bind(session)
            .fetch_optional(conn)
            .await?
            .as_ref()
            .map(MessageRow::from_row)
            .transpose()
    }

    /// Commits an outgoing message with its send job and, when given, the idempotency record
    /// `(key, request hash, status, answer)`. A key used before returns what it stored.
    ///
    /// Sends without a key are committed in groups: concurrent requests share one transaction
    /// (and one multi-row insert), and each returns only once that transaction committed.
    ///
    /// `verify` is the auth epoch of the cached key and session the send was decided with
    /// ([`Store::key_for_send`]): the send is written only if the epoch still has that value,
    /// else nothing is written and the answer is [`StoreError::Stale`].
    pub async fn accept_outgoing(
        &self,
        message: &MessageRow,
        job: &OutboxJob,
        idempotency: Option<(&str, &str, u16, &Value)>,
        verify: Option<i64>,
    ) -> Result<Accepted> {
        if idempotency.is_some() {
            return self.accept_one(message, job, idempotency, verify).await;
        }
        let (reply, done) = tokio::sync::oneshot::channel();
        let pending = PendingAccept {
            message: message.clone(),
            job: job.clone(),
            verify,
            reply,
        };
        let batcher = self
            .ingest
            .get_or_init(|| spawn_batcher(self.write.clone(), self.backend));
        batcher
            .send(pending)
            .await
            .map_err(|_| StoreError::Corrupt("the ingest batcher stopped".into()))?;
        match done.await {
            Ok(Ok(())) => Ok(Accepted::New),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::Corrupt(
                "the ingest batcher dropped a request".into(),
            )),
        }
    }

    async fn accept_one(
        &self,
        message: &MessageRow,
        job: &OutboxJob,
        idempotency: Option<(&str, &str, u16, &Value)>,
        verify: Option<i64>,
    ) -> Result<Accepted> {
        let mut tx = self.write.begin().await?;
        if let Some(epoch) = verify {
            let now: i64 = sqlx::query_scalar(crate::authcache::hold_epoch(self.backend))
                .fetch_one(&mut *tx)
                .await?;
            if now != epoch {
                return Err(StoreError::Stale);
            }
        }
        if let Some((key, ..)) = idempotency
            && let Some(found) = self
                .idempotent_answer(&mut tx, message.account_id, key)
                .await?
        {
            return Ok(Accepted::Replayed(found));
        }
        bind_message(sqlx::query(INSERT_MESSAGE), message)
            .execute(&mut *tx)
            .await?;
        insert_job(&mut tx, job).await?;
        if let Some((key, hash, status, answer)) = idempotency {
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (account_id, key, request_hash, status_code, response, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(message.account_id)
            .bind(key)
            .bind(hash)
            .bind(i64::from(status))
            .bind(answer.to_string())
            .bind(now_millis())
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_or(e, "idempotency key"));
            if let Err(StoreError::Conflict(_)) = inserted {
                // Another request with the same key committed first: answer as it did.
                drop(tx);
                let mut conn = self.write.acquire().await?;
                return match self
                    .idempotent_answer(&mut conn, message.account_id, key)
                    .await?
                {
                    Some(found) => Ok(Accepted::Replayed(found)),
                    None => Err(StoreError::Conflict("idempotency key".into())),
                };
            }
            inserted?;
        }
        tx.commit().await?;
        Ok(Accepted::New)
    }

    /// What an idempotency key of `account` stored, if it was used.
    pub async fn idempotent_answer_of(
        &self,
        account: AccountId,
        key: &str,
    ) -> Result<Option<IdempotentAnswer>> {
        let mut conn = self.read.acquire().await?;
        self.idempotent_answer(&mut conn, account, key).await
    }

    async fn idempotent_answer(
        &self,
        conn: &mut AnyConnection,
        account: AccountId,
        key: &str,
    ) -> Result<Option<IdempotentAnswer>> {
        let row: Option<(String, i64, String)> = sqlx::query_as(
            "SELECT request_hash, status_code, response FROM idempotency_keys WHERE account_id = $1 AND key = $2",
        )
        .bind(account)
        .bind(key)
        .fetch_optional(conn)
        .await?;
        row.map(|(request_hash, status, response)| {
            Ok(IdempotentAnswer {
                request_hash,
                status_code: u16::try_from(status).unwrap_or(500),
                response: serde_json::from_str(&response)
                    .map_err(|e| StoreError::Corrupt(format!("idempotent answer: {e}")))?,
            })
        })
        .transpose()
    }

    /// Forgets idempotency keys older than `before` (ms).
    pub async fn expire_idempotency_keys(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(before)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected())
    }

    /// The message `id` of `account`.
    pub async fn get_message(
        &self,
        account: AccountId,
        id: MessageId,
    ) -> Result<Option<MessageRow>> {
        let sql = format!("SELECT {COLUMNS} FROM messages WHERE id = $1 AND account_id = $2");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(account)
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(MessageRow::from_row)
            .transpose()
    }

    /// A page of a session's messages, newest first (`limit + 1` rows at most).
    pub async fn list_messages(&self, f: &MessageFilter) -> Result<Vec<MessageRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM messages WHERE session_id = $1 AND account_id = $2 \
             AND ($3 IS NULL OR direction = $3) AND ($4 IS NULL OR chat_jid = $4 OR chat_lid = $4) AND ($5 IS NULL OR id < $5) \
             ORDER BY id DESC LIMIT $6"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(f.session_id)
            .bind(f.account_id)
            .bind(f.direction.map(|d| d.as_str().to_owned()))
            .bind(f.chat.as_ref().map(|c| c.to_string()))
            .bind(f.before)
            .bind(f.limit + 1)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(MessageRow::from_row)
            .collect()
    }

    /// Queues an action job on an existing message (edit, revoke, read marks).
    pub async fn enqueue_job(&self, job: &OutboxJob) -> Result<()> {
        let mut conn = self.write.acquire().await?;
        insert_job(&mut conn, job).await
    }

    /// Withdraws a message that never went out (queued, or failed): a pending send job is
    /// dropped and the message is `deleted` at once. `false` when it has left meanwhile.
    pub async fn withdraw(&self, account: AccountId, message: MessageId) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let Some(mut row) = self
            .lock_message(&mut tx, "id", message.to_string(), None)
            .await?
            .filter(|row| row.account_id == account)
        else {
            return Ok(false);
        };
        let dropped = sqlx::query("DELETE FROM outbox WHERE message_id = $1 AND action = 'send'")
            .bind(message)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let never_left = (row.status == MessageStatus::Queued && dropped > 0)
            || row.status == MessageStatus::Failed;
        if !never_left {
            return Ok(false);
        }
        let now = now_millis();
        row.status = MessageStatus::Deleted;
        row.deleted_at = Some(now);
        row.updated_at = now;
        write_message(&mut tx, &row).await?;
        append_events(&mut tx, &[row.event(EventType::MessageDeleted)]).await?;
        tx.commit().await?;
        self.events_appended();
        Ok(true)
    }

    /// Ends the outbox of a deleted session: its jobs are dropped and its queued messages
    /// fail with `reason`, each with its event. Returns how many messages failed.
    pub async fn fail_session_outbox(&self, session: SessionId, reason: &str) -> Result<usize> {
        let mut tx = self.write.begin().await?;
        sqlx::query("DELETE FROM outbox WHERE session_id = $1")
            .bind(session)
            .execute(&mut *tx)
            .await?;
        let sql =
            format!("SELECT {COLUMNS} FROM messages WHERE session_id = $1 AND status = 'queued'");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(session)
            .fetch_all(&mut *tx)
            .await?;
        let now = now_millis();
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut m = MessageRow::from_row(row)?;
            m.status = MessageStatus::Failed;
            m.failure_reason = Some(reason.to_owned());
            m.failed_at = Some(now);
            m.updated_at = now;
            write_message(&mut tx, &m).await?;
            events.push(m.event(EventType::MessageFailed));
        }
        append_events(&mut tx, &events).await?;
        tx.commit().await?;
        if !events.is_empty() {
            self.events_appended();
        }
        Ok(events.len())
    }

    /// Queues a failed message again (its failure is cleared). `None` unless it failed.
    pub async fn requeue_failed(
        &self,
        account: AccountId,
        id: MessageId,
    ) -> Result<Option<MessageRow>> {
        let mut tx = self.write.begin().await?;
        let Some(mut row) = self
            .lock_message(&mut tx, "id", id.to_string(), None)
            .await?
        else {
            return Ok(None);
        };
        if row.account_id != account
            || row.status != MessageStatus::Failed
            || row.direction != Direction::Out
        {
            return Ok(None);
        }
        row.status = MessageStatus::Queued;
        row.failure_reason = None;
        row.failed_at = None;
        row.updated_at = now_millis();
        write_message(&mut tx, &row).await?;
        let job = OutboxJob::new(
            row.account_id,
            row.session_id,
            row.chat_jid.clone(),
            Some(row.id),
            JobAction::Send,
            Value::Null,
        );
        insert_job(&mut tx, &job).await?;
        tx.commit().await?;
        Ok(Some(row))
    }

    /// Jobs of `session` ready at `now`, in order, at most `limit`. A job waiting (for a
    /// retry or its chat's pace) holds back every later job of its chat (FIFO per chat); other
    /// chats go on. The hold-back is part of the query, before the limit, so any number of
    /// held jobs at the front cannot hide the jobs of other chats (`outbox_by_chat` finds a
    /// chat's waiting jobs).
    pub async fn ready_jobs(
        &self,
        session: SessionId,
        now: i64,
        limit: i64,
    ) -> Result<Vec<OutboxJob>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM outbox o WHERE o.session_id = $1 AND o.available_at <= $2 \
             AND NOT EXISTS (SELECT 1 FROM outbox h WHERE h.session_id = o.session_id \
             AND h.chat_jid = o.chat_jid AND h.available_at > $2 AND h.id < o.id) \
             ORDER BY o.id LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(session)
            .bind(now)
            .bind(limit)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(OutboxJob::from_row).collect()
    }

    /// How many jobs a session has waiting.
    pub async fn outbox_len(&self, session: SessionId) -> Result<i64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE session_id = $1")
            .bind(session)
            .fetch_one(&self.read)
            .await?;
        Ok(n)
    }

    /// How many messages `session` sent (reached `sent` or beyond) since `since` (ms): the
    /// daily cap's count after a restart.
    pub async fn count_sent_since(&self, session: SessionId, since: i64) -> Result<i64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages WHERE session_id = $1 AND direction = 'out' \
             AND sent_at >= $2",
        )
        .bind(session)
        .bind(since)
        .fetch_one(&self.read)
        .await?;
        Ok(n)
    }

    /// Sessions that have jobs waiting.
    pub async fn sessions_with_jobs(&self) -> Result<Vec<SessionId>> {
        // From the sessions, each one index probe of the outbox (a correlated subquery with
        // a limit: no plan reads the outbox whole, whatever the statistics). A `DISTINCT`
        // over the outbox read the whole table, every row a send deleted included (on
        // PostgreSQL until a vacuum: after a million sends, hundreds of megabytes a sweep).
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT s.id FROM sessions s \
             WHERE (SELECT 1 FROM outbox o WHERE o.session_id = s.id LIMIT 1) IS NOT NULL",
        )
        .fetch_all(&self.read)
        .await?;
        ids.iter()
            .map(|s| {
                s.parse()
                    .map_err(|_| StoreError::Corrupt(format!("outbox session {s}")))
            })
            .collect()
    }

    /// Applies the dispatcher's outcomes in one transaction, with their events.
    pub async fn record_outcomes(&self, outcomes: &[JobOutcome]) -> Result<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let mut tx = self.write.begin().await?;
        let mut events = Vec::new();
        let slow = self.record_sends(&mut tx, outcomes, &mut events).await?;
        for outcome in slow {
            match outcome {
                JobOutcome::Defer { job, available_at } => {
                    sqlx::query("UPDATE outbox SET available_at = $1 WHERE id = $2")
                        .bind(*available_at)
                        .bind(job.id)
                        .execute(&mut *tx)
                        .await?;
                }
                JobOutcome::Retry {
                    job,
                    available_at,
                    error,
                } => {
                    sqlx::query("UPDATE outbox SET available_at = $1, attempts = attempts + 1, last_error = $2 WHERE id = $3")
                        .bind(*available_at)
                        .bind(crate::plain_str(error))
                        .bind(job.id)
                        .execute(&mut *tx)
                        .await?;
                    if let Some(id) = job.message_id
                        && job.action == JobAction::Send
                    {
                        sqlx::query("UPDATE messages SET attempts = attempts + 1 WHERE id = $1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                JobOutcome::Sent {
                    job,
                    provider_id,
                    at,
                    ..
                } => {
                    delete_job(&mut tx, job.id).await?;
                    let Some(id) = job.message_id else { continue };
                    let Some(mut row) = self
                        .lock_message(&mut tx, "id", id.to_string(), None)
                        .await?
                    else {
                        continue;
                    };
                    row.attempts += 1;
                    row.provider_msg_id = Some(provider_id.clone());
                    if row.status == MessageStatus::Deleted && row.sent_at.is_none() {
                        // Withdrawn while it was being sent: it reached WhatsApp after all,
                        // so it is revoked there.
                        row.sent_at = Some(*at);
                        let revoke = OutboxJob::new(
                            row.account_id,
                            row.session_id,
                            row.chat_jid.clone(),
                            Some(row.id),
                            JobAction::Revoke,
                            Value::Null,
                        );
                        insert_job(&mut tx, &revoke).await?;
                    } else if row.advance(MessageStatus::Sent, *at) {
                        events.push(row.event(EventType::MessageSent));
                    }
                    write_message(&mut tx, &row).await?;
                }
                JobOutcome::Failed { job, reason, at } => {
                    delete_job(&mut tx, job.id).await?;
                    let Some(id) = job.message_id else { continue };
                    if job.action != JobAction::Send {
                        // A failed action leaves the message as it was; the reason is logged.
                        tracing::warn!(job = %job.id, message = %id, %reason, "message action failed");
                        continue;
                    }
                    let Some(mut row) = self
                        .lock_message(&mut tx, "id", id.to_string(), None)
                        .await?
                    else {
                        continue;
                    };
                    if row.status.is_terminal() {
                        continue;
                    }
                    row.attempts += 1;
                    row.status = MessageStatus::Failed;
                    row.failure_reason = Some(reason.clone());
                    row.failed_at = Some(*at);
                    row.updated_at = now_millis();
                    write_message(&mut tx, &row).await?;
                    events.push(row.event(EventType::MessageFailed));
                }
                JobOutcome::Done { job, at } => {
                    delete_job(&mut tx, job.id).await?;
                    self.apply_action(&mut tx, job, *at, &mut events).await?;
                }
            }
        }
        // The CRM's sent count and time of each contact a message went out to.
        let sent: Vec<_> = outcomes
            .iter()
            .filter_map(|o| match o {
                JobOutcome::Sent { job, at, .. }
                    if job.action == JobAction::Send && job.message_id.is_some() =>
                {
                    let phone = job.chat_jid.phone()?;
                    Some((job.account_id, job.session_id, phone.e164().to_owned(), *at))
                }
                _ => None,
            })
            .collect();
        crate::contacts::touch_outbound(&mut tx, &sent).await?;
        append_events(&mut tx, &events).await?;
        tx.commit().await?;
        if !events.is_empty() {
            self.events_appended();
        }
        Ok(())
    }

    /// Records the sends of queued messages in bulk: their jobs deleted, the messages marked
    /// sent, in a handful of statements. Returns the outcomes left for one-by-one handling
    /// (everything else, and sends whose message was no longer queued).
    async fn record_sends<'a>(
        &self,
        tx: &mut AnyConnection,
        outcomes: &'a [JobOutcome],
        events: &mut Vec<Event>,
    ) -> Result<Vec<&'a JobOutcome>> {
        let mut rest = Vec::new();
        let mut sends = Vec::new();
        for o in outcomes {
            match o {
                JobOutcome::Sent {
                    job,
                    message: Some(m),
                    provider_id,
                    at,
                } if m.status == MessageStatus::Queued => sends.push((job, m, provider_id, *at)),
                other => rest.push(other),
            }
        }
        let now = now_millis();
        for chunk in sends.chunks(100) {
            let ids = Params::on(tx).list(chunk.len());
            let sql = format!("DELETE FROM outbox WHERE id IN ({ids})");
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
            for (job, ..) in chunk {
                q = q.bind(job.id);
            }
            q.execute(&mut *tx).await?;
            let values = Params::on(tx).rows(chunk.len(), 3);
            let sql = format!(
                "UPDATE messages SET status = 'sent', provider_msg_id = v.column2, \
                 sent_at = CAST(v.column3 AS BIGINT), attempts = attempts + 1, updated_at = {now} \
                 FROM (VALUES {values}) AS v WHERE messages.id = v.column1 AND messages.status = 'queued' \
                 RETURNING messages.id"
            );
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).persistent(false);
            for (_, m, provider_id, at) in chunk {
                q = q.bind(m.id).bind(*provider_id).bind(at.to_string());
            }
            let updated: std::collections::HashSet<String> =
                q.fetch_all(&mut *tx).await?.into_iter().collect();
            for (job, m, provider_id, at) in chunk {
                if updated.contains(&m.id.to_string()) {
                    let mut row = (**m).clone();
                    row.status = MessageStatus::Sent;
                    row.provider_msg_id = Some((*provider_id).clone());
                    row.sent_at = Some(*at);
                    row.attempts += 1;
                    row.updated_at = now;
                    events.push(row.event(EventType::MessageSent));
                } else {
                    // Changed since it was read (say, a receipt came first): the careful way.
                    let original = outcomes
                        .iter()
                        .find(|o| matches!(o, JobOutcome::Sent { job: j, .. } if j.id == job.id));
                    if let Some(o) = original {
                        rest.push(o);
                    }
                }
            }
        }
        Ok(rest)
    }

    async fn apply_action(
        &self,
        tx: &mut AnyConnection,
        job: &OutboxJob,
        at: i64,
        events: &mut Vec<Event>,
    ) -> Result<()> {
        let ids: Vec<String> = match job.action {
            JobAction::MarkRead => job.payload["message_ids"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            _ => job
                .message_id
                .map(|m| vec![m.to_string()])
                .unwrap_or_default(),
        };
        for id in ids {
            let Some(mut row) = self
                .lock_message(tx, "id", id, Some(job.session_id))
                .await?
            else {
                continue;
            };
            let event = match job.action {
                JobAction::Edit if row.status != MessageStatus::Deleted => {
                    if let (Content::Text { text }, Some(new)) =
                        (&mut row.content, job.payload["text"].as_str())
                    {
                        *text = new.to_owned();
                    }
                    row.edited_at = Some(at);
                    row.updated_at = now_millis();
                    Some(EventType::MessageEdited)
                }
                JobAction::Revoke if row.status != MessageStatus::Deleted => {
                    row.status = MessageStatus::Deleted;
                    row.deleted_at = Some(at);
                    row.updated_at = now_millis();
                    Some(EventType::MessageDeleted)
                }
                JobAction::MarkRead => row
                    .advance(MessageStatus::Read, at)
                    .then_some(EventType::MessageRead),
                _ => None,
            };
            if let Some(kind) = event {
                write_message(tx, &row).await?;
                events.push(row.event(kind));
            }
        }
        Ok(())
    }

    /// Applies receipts for messages `session` sent: forward only, duplicates and late
    /// arrivals merged without a second event. Unknown ids are ignored. The batch reads its
    /// messages with one query per 200 ids and writes the changed ones with one statement.
    pub async fn apply_receipts(
        &self,
        session: SessionId,
        receipts: &[(ProviderId, ReceiptKind, i64)],
    ) -> Result<()> {
        if receipts.is_empty() {
            return Ok(());
        }
        let mut tx = self.write.begin().await?;
        let ids: Vec<&ProviderId> = {
            let mut seen = std::collections::HashSet::new();
            receipts
                .iter()
                .map(|(p, ..)| p)
                .filter(|p| seen.insert(*p))
                .collect()
        };
        let mut rows = self
            .outgoing_by_provider_ids(&mut tx, session, &ids)
            .await?;
        let mut events = Vec::new();
        let mut changed: Vec<ProviderId> = Vec::new();
        for (provider_id, kind, at) in receipts {
            let Some(row) = rows.get_mut(provider_id) else {
                continue;
            };
            let before = (
                row.status,
                row.sent_at,
                row.delivered_at,
                row.read_at,
                row.played_at,
            );
            let status = kind.status();
            if row.advance(status, *at) {
                events.push(
                    row.event(EventType::for_status(status).unwrap_or(EventType::MessageDelivered)),
                );
            }
            if before
                != (
                    row.status,
                    row.sent_at,
                    row.delivered_at,
                    row.read_at,
                    row.played_at,
                )
                && !changed.contains(provider_id)
            {
                changed.push(provider_id.clone());
            }
        }
        let now = now_millis();
        for chunk in changed.chunks(100) {
            let values = Params::on(&tx).rows(chunk.len(), 6);
            let sql = format!(
                "UPDATE messages SET status = v.column2, sent_at = CAST(v.column3 AS BIGINT), \
                 delivered_at = CAST(v.column4 AS BIGINT), read_at = CAST(v.column5 AS BIGINT), \
                 played_at = CAST(v.column6 AS BIGINT), updated_at = {now} \
                 FROM (VALUES {values}) AS v WHERE messages.id = v.column1"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
            for pid in chunk {
                let m = &rows[pid];
                let text = |t: Option<i64>| t.map(|t| t.to_string());
                q = q
                    .bind(m.id)
                    .bind(m.status.as_str())
                    .bind(text(m.sent_at))
                    .bind(text(m.delivered_at))
                    .bind(text(m.read_at))
                    .bind(text(m.played_at));
            }
            q.execute(&mut *tx).await?;
        }
        append_events(&mut tx, &events).await?;
        tx.commit().await?;
        if !events.is_empty() {
            self.events_appended();
        }
        Ok(())
    }

    /// Stores inbound messages of `session` (a redelivered one, same WhatsApp id, is dropped)
    /// with a `message.received` event each. Returns the new rows.
    pub async fn ingest_inbound(
        &self,
        account: AccountId,
        session: SessionId,
        inbound: &[Inbound],
    ) -> Result<Vec<MessageRow>> {
        self.ingest_inbound_routed(account, session, inbound, None)
            .await
    }

    /// As [`Store::ingest_inbound`], on the sandbox number when `sandbox` is given: in the same
    /// transaction, a message from a phone with a pending sandbox session that it activates
    /// (any reply, or the code) activates it, with its `sandbox.activated` event and the
    /// confirmation message queued; a message from a phone with an active session belongs to
    /// that session's account (its `message.received` names the sandbox session and agent).
    pub async fn ingest_inbound_routed(
        &self,
        account: AccountId,
        session: SessionId,
        inbound: &[Inbound],
        sandbox: Option<&SandboxIngest>,
    ) -> Result<Vec<MessageRow>> {
        let mut tx = self.write.begin().await?;
        let mut rows = Vec::new();
        let mut tags = Vec::new();
        let mut activations = Vec::new();
        for m in inbound {
            let now = now_millis();
            let mut owner = account;
            let mut tag = None;
            if let Some(sb) = sandbox
                && m.chat == m.sender
                && let Some(phone) = m.sender.phone()
                && let Some(mut live) = crate::sandbox::live_of_phone(
                    &mut tx,
                    self.backend == Backend::Postgres,
                    &phone,
                    sb.now,
                )
                .await?
            {
                // A redelivered message changes nothing.
                let seen: Option<String> = sqlx::query_scalar(
                    "SELECT id FROM messages WHERE session_id = $1 AND provider_msg_id = $2",
                )
                .bind(session)
                .bind(&m.provider_id)
                .fetch_optional(&mut *tx)
                .await?;
                if seen.is_none() && live.activated_by(&m.content) {
                    crate::sandbox::activate(&mut tx, &mut live, session, sb.now, sb.active_ttl_ms)
                        .await?;
                    activations.push(live.clone());
                    if let Some(text) = &sb.confirmation {
                        let reply = sandbox_confirmation(&live, session, &m.chat, text, now);
                        insert_message(&mut tx, &reply).await?;
                        let job = OutboxJob::new(
                            live.account_id,
                            session,
                            m.chat.clone(),
                            Some(reply.id),
                            JobAction::Send,
                            Value::Null,
                        );
                        insert_job(&mut tx, &job).await?;
                    }
                }
                if live.is_active_at(sb.now) {
                    owner = live.account_id;
                    tag = Some(serde_json::json!({
                        "sandbox_session_id": live.id,
                        "agent_id": live.agent_id,
                    }));
                }
            }
            let mut content = m.content.clone();
            // Reactions and replies name their message by WhatsApp id; find ours (the owner's).
            if let Content::Reaction {
                target: target @ None,
                target_provider_id,
                ..
            } = &mut content
                && !target_provider_id.is_empty()
            {
                *target = owned_message(&mut tx, session, owner, target_provider_id).await?;
            }
            // A vote names its poll by WhatsApp id and its options by hash.
            polls::name_vote(&mut tx, session, owner, &mut content).await?;
            let quoted_message_id = match &m.quoted_provider_id {
                Some(provider_id) => owned_message(&mut tx, session, owner, provider_id).await?,
                None => None,
            };
            // One identity per contact: a LID the device has a number for is stored by number.
            let (chat_jid, chat_lid) =
                changes::both_forms(&mut tx, session, &m.chat, m.chat_lid.as_ref()).await?;
            let (sender_jid, sender_lid) =
                changes::both_forms(&mut tx, session, &m.sender, m.sender_lid.as_ref()).await?;
            let row = MessageRow {
                id: MessageId::generate(),
                account_id: owner,
                session_id: session,
                direction: Direction::In,
                chat_jid,
                sender_jid: Some(sender_jid.to_string()),
                kind: content.kind(),
                content,
                status: MessageStatus::Received,
                provider_msg_id: Some(m.provider_id.clone()),
                quoted_message_id,
                failure_reason: None,
                attempts: 0,
                accepted_at: now,
                sent_at: Some(m.sent_at),
                delivered_at: None,
                read_at: None,
                played_at: None,
                failed_at: None,
                deleted_at: None,
                edited_at: None,
                updated_at: now,
                chat_lid: chat_lid.as_ref().map(ToString::to_string),
                sender_lid: sender_lid.as_ref().map(ToString::to_string),
            };
            let sql =
                format!("{INSERT_MESSAGE} ON CONFLICT (session_id, provider_msg_id) DO NOTHING");
            let inserted = bind_message(sqlx::query(sqlx::AssertSqlSafe(sql)), &row)
                .execute(&mut *tx)
                .await?;
            if inserted.rows_affected() == 1 {
                changes::write_lids(&mut tx, &row).await?;
                rows.push(row);
                tags.push(tag);
            }
        }
        crate::cloud::touch_windows(&mut tx, &rows).await?;
        // The senders' contacts (CRM) change with the messages that tell of them.
        crate::contacts::touch_inbound(&mut tx, account, &rows).await?;
        let events: Vec<Event> = rows
            .iter()
            .zip(tags)
            .map(|(r, tag)| {
                let mut event = r.event(EventType::MessageReceived);
                if let (Some(tag), Some(payload)) = (tag, event.payload.as_object_mut()) {
                    payload.insert("sandbox".into(), tag);
                }
                event
            })
            .collect();
        append_events(&mut tx, &events).await?;
        tx.commit().await?;
        if !events.is_empty() || !activations.is_empty() {
            self.events_appended();
        }
        Ok(rows)
    }

    /// The messages with these ids (in no particular order; missing ones are left out).
    pub async fn messages_by_ids(
        &self,
        account: AccountId,
        ids: &[MessageId],
    ) -> Result<Vec<MessageRow>> {
        self.messages_where("account_id", &account.to_string(), ids)
            .await
    }

    /// The messages of `session` among `ids` (the dispatcher's read: on the sandbox number
    /// one session carries several accounts' messages).
    pub async fn session_messages_by_ids(
        &self,
        session: SessionId,
        ids: &[MessageId],
    ) -> Result<Vec<MessageRow>> {
        self.messages_where("session_id", &session.to_string(), ids)
            .await
    }

    async fn messages_where(
        &self,
        column: &'static str,
        value: &str,
        ids: &[MessageId],
    ) -> Result<Vec<MessageRow>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(200) {
            let mut params = Params::new(self.backend);
            let owner = params.next();
            let ids = params.list(chunk.len());
            let sql = format!(
                "SELECT {COLUMNS} FROM messages WHERE {column} = {owner} AND id IN ({ids})"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .persistent(false)
                .bind(value.to_owned());
            for id in chunk {
                q = q.bind(id);
            }
            for row in q.fetch_all(&self.read).await? {
                out.push(MessageRow::from_row(&row)?);
            }
        }
        Ok(out)
    }

    /// The message of `session` with WhatsApp id `provider_id`.
    pub async fn message_by_provider_id(
        &self,
        session: SessionId,
        provider_id: &ProviderId,
    ) -> Result<Option<MessageRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM messages WHERE session_id = $1 AND provider_msg_id = $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(session)
            .bind(provider_id)
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(MessageRow::from_row)
            .transpose()
    }
}

mod changes;
#[cfg(test)]
mod tests;

pub use changes::InboundChange;
