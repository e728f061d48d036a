//! Messages and the outbox. Accepting a send commits the message and its outbox job (and the
//! idempotency record) together; dispatch results, receipts and inbound messages are applied
//! in batches, each change with its event, never moving a status backwards.

use std::collections::HashMap;

use serde_json::{Value, json};
use sqlx::{AnyConnection, Row, any::AnyRow};
use wharf_core::{
    AccountId, BroadcastId, Event, EventType, Jid, JobId, MessageId, ProviderId, SessionId,
    message::{Content, Direction, Inbound, MessageKind, MessageStatus, ReceiptKind},
    time::now_millis,
};

use crate::{Backend, Params, Result, Store, StoreError, conflict_or, events::append_events};

mod group_commit;
mod inbound;
mod outbox;
mod outcomes;
mod polls;

use group_commit::GROUP_CHUNK;
pub(crate) use group_commit::{PendingAccept, spawn_batcher};
use outbox::{INSERT_JOB, bind_job, delete_job, insert_job};
pub use outbox::{JobAction, OutboxJob};

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

/// Inserts the messages of broadcast `broadcast` with their send jobs in multi-row
/// statements (in the caller's transaction); each message names its recipient (the
/// broadcast and the position given with it), which its events follow.
pub(crate) async fn insert_broadcast_messages(
    conn: &mut AnyConnection,
    broadcast: BroadcastId,
    rows: &[(i64, &(MessageRow, OutboxJob))],
) -> Result<()> {
    let head = INSERT_MESSAGE
        .split(") VALUES ")
        .next()
        .unwrap_or(INSERT_MESSAGE);
    for chunk in rows.chunks(GROUP_CHUNK) {
        let values = Params::on(conn).rows(chunk.len(), 24);
        let sql = format!("{head}, broadcast_id, broadcast_seq) VALUES {values}");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        for (seq, (m, _)) in chunk.iter().map(|(seq, r)| (seq, (&r.0, &r.1))) {
            q = bind_message(q, m).bind(broadcast).bind(*seq);
        }
        q.execute(&mut *conn).await?;
        let values = Params::on(conn).rows(chunk.len(), 11);
        let sql = format!("{INSERT_JOB} VALUES {values}");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        for (_, job) in chunk.iter().map(|(_, r)| (&r.0, &r.1)) {
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
