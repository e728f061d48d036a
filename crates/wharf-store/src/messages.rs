//! Messages and the outbox. Accepting a send commits the message (a queued outgoing message
//! is its own send job; on PostgreSQL with its outbox row) and the idempotency record
//! together; dispatch results, receipts and inbound messages are applied in batches, each
//! change with its event, never moving a status backwards.

use std::collections::HashMap;

use serde_json::Value;
use sqlx::{AnyConnection, Row, any::AnyRow};
use wharf_core::{
    AccountId, BroadcastId, Event, EventType, Jid, JobId, MessageId, ProviderId, SessionId,
    message::{Content, Direction, Inbound, MessageStatus, ReceiptKind},
    time::now_millis,
};

pub use crate::message_rows::MessageRow;
pub(crate) use crate::message_rows::{
    COLUMNS, INSERT_MESSAGE, bind_message, insert_message, write_message,
};
use crate::{Backend, Params, Result, Store, StoreError, conflict_or, events::append_events};

mod group_commit;
mod inbound;
mod outbox;
mod outcomes;
mod polls;
mod sqlite_writer;

use group_commit::GROUP_CHUNK;
pub(crate) use group_commit::{PendingAccept, spawn_batcher};
pub use outbox::{JobAction, OutboxJob};
use outbox::{end_job, insert_job, insert_send_job, insert_send_jobs};

/// Whether a send's job is an outbox row (PostgreSQL) rather than its queued message alone
/// (SQLite).
///
/// On SQLite a queued outgoing message is its send job: the dispatcher reads the partial
/// index `messages_queued`, and a send writes no outbox row (a quarter of the WAL a send
/// wrote, and half of the group commit's inserts). SQLite removes an index entry when its
/// row changes, so that index holds only what is queued. PostgreSQL keeps the entry of every
/// message that left `queued` until a vacuum of `messages` (the whole table's indexes), and
/// the dispatcher would walk them from the front of the session's range at every read, as it
/// did the outbox's before that small table was vacuumed on its own (see
/// `Store::vacuum_outbox`); so there each send keeps its outbox row, named after its message.
pub(crate) fn sends_in_outbox(backend: Backend) -> bool {
    backend == Backend::Postgres
}

/// As [`sends_in_outbox`], for a statement run on `conn`.
pub(crate) fn sends_in_outbox_of(conn: &AnyConnection) -> bool {
    sends_in_outbox(match conn.backend_name() {
        "SQLite" => Backend::Sqlite,
        _ => Backend::Postgres,
    })
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

/// Inserts the messages of broadcast `broadcast` (queued, with their send jobs: see
/// [`sends_in_outbox`]) in multi-row statements (in the caller's transaction); each message
/// names its recipient (the broadcast and the position given with it), which its events
/// follow.
pub(crate) async fn insert_broadcast_messages(
    conn: &mut AnyConnection,
    broadcast: BroadcastId,
    rows: &[(i64, &MessageRow)],
) -> Result<()> {
    let head = INSERT_MESSAGE
        .split(") VALUES ")
        .next()
        .unwrap_or(INSERT_MESSAGE);
    for chunk in rows.chunks(GROUP_CHUNK) {
        let values = Params::on(conn).rows(chunk.len(), 24);
        let sql = format!("{head}, broadcast_id, broadcast_seq) VALUES {values}");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        for (seq, m) in chunk {
            q = bind_message(q, m).bind(broadcast).bind(*seq);
        }
        q.execute(&mut *conn).await?;
        let ids: Vec<MessageId> = chunk.iter().map(|(_, m)| m.id).collect();
        insert_send_jobs(conn, &ids).await?;
    }
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

    /// Commits a queued outgoing message with its send job ([`sends_in_outbox`]) and, when
    /// given, the idempotency record `(key, request hash, status, answer)`. A key used
    /// before returns what it stored.
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
        idempotency: Option<(&str, &str, u16, &Value)>,
        verify: Option<i64>,
    ) -> Result<Accepted> {
        if idempotency.is_some() {
            return self.accept_one(message, idempotency, verify).await;
        }
        let (reply, done) = tokio::sync::oneshot::channel();
        let pending = PendingAccept {
            message: message.clone(),
            verify,
            reply,
        };
        let batcher = self.ingest.get_or_init(|| {
            spawn_batcher(
                self.write.clone(),
                self.backend,
                crate::sqlite_path(&self.url),
            )
        });
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
        insert_send_job(&mut tx, message).await?;
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
