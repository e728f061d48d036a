//! The dispatcher's work: sends and actions on sent messages, how they are written, read in
//! order (FIFO per chat), withdrawn, requeued and ended.
//!
//! On SQLite a send's job is its message: a queued outgoing message is a send to make, found
//! through the partial index `messages_queued`, and told to wait (deferred, retried) with its
//! `send_after`; the outbox table holds the actions (edits, revokes, read marks). On
//! PostgreSQL each send also has its outbox row (see [`super::sends_in_outbox`]). A send job
//! is named after its message (the same id body, see [`OutboxJob::send`]), so it sorts among
//! the actions by the time it was accepted.

use super::*;

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

/// A unit of dispatcher work: an outbox row (an action), or a queued message (a send).
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

    /// The send job of queued outgoing message `m`, due now.
    pub fn send(m: &MessageRow) -> Self {
        Self {
            id: m.id.retag(),
            account_id: m.account_id,
            session_id: m.session_id,
            chat_jid: m.chat_jid.clone(),
            message_id: Some(m.id),
            action: JobAction::Send,
            payload: Value::Null,
            available_at: m.accepted_at,
            attempts: 0,
            last_error: None,
            created_at: m.accepted_at,
        }
    }

    /// A send job as [`Store::ready_jobs`] reads it from a queued message.
    fn from_send_row(row: &AnyRow) -> Result<Self> {
        let id: MessageId = row.try_get("id")?;
        let chat: String = row.try_get("chat_jid")?;
        let accepted_at: i64 = row.try_get("accepted_at")?;
        Ok(Self {
            id: id.retag(),
            account_id: row.try_get("account_id")?,
            session_id: row.try_get("session_id")?,
            chat_jid: Jid::parse(&chat)
                .map_err(|_| StoreError::Corrupt(format!("message {id} chat_jid")))?,
            message_id: Some(id),
            action: JobAction::Send,
            payload: Value::Null,
            available_at: row
                .try_get::<Option<i64>, _>("send_after")?
                .unwrap_or(accepted_at),
            attempts: row.try_get("send_attempts")?,
            last_error: None,
            created_at: accepted_at,
        })
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

/// Writes an action's job. A send's job is written with its message
/// ([`insert_send_job`], where [`super::sends_in_outbox`]).
pub(super) async fn insert_job(conn: &mut AnyConnection, job: &OutboxJob) -> Result<()> {
    if job.action == JobAction::Send {
        return Err(StoreError::Corrupt(format!(
            "job {}: a send's job is written with its message",
            job.id
        )));
    }
    let sql = format!("{INSERT_JOB} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)");
    bind_job(sqlx::query(sqlx::AssertSqlSafe(sql)), job)
        .execute(conn)
        .await?;
    Ok(())
}

/// The outbox row of a send, as the columns of [`INSERT_JOB`] selected from its message's
/// row (`id`, `account_id`, `session_id`, `chat_jid`, `accepted_at`): named after the message
/// and due at its acceptance, as [`OutboxJob::send`] makes it. The group commit's PostgreSQL
/// statement selects the same from its rows.
macro_rules! send_job_from_message {
    () => {
        "'job_' || substr(id, 5), account_id, session_id, chat_jid, id, 'send', 'null', \
         accepted_at, 0, NULL, accepted_at"
    };
}
pub(super) use send_job_from_message;

/// Writes the outbox row of the send of queued message `m` (just written, in this
/// transaction) on PostgreSQL; nothing on SQLite, where the queued message is the job (see
/// [`super::sends_in_outbox`]).
pub(super) async fn insert_send_job(conn: &mut AnyConnection, m: &MessageRow) -> Result<()> {
    insert_send_jobs(conn, &[m.id]).await
}

/// Writes the outbox rows of the sends of queued messages `ids` (just written, in this
/// transaction) where [`super::sends_in_outbox`]: one statement per 500 (see
/// [`send_job_from_message`]).
pub(crate) async fn insert_send_jobs(conn: &mut AnyConnection, ids: &[MessageId]) -> Result<()> {
    if !super::sends_in_outbox_of(conn) {
        return Ok(());
    }
    for chunk in ids.chunks(500) {
        let list = Params::on(conn).list(chunk.len());
        let sql = format!(
            "{INSERT_JOB} SELECT {} FROM messages WHERE id IN ({list})",
            send_job_from_message!()
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        for id in chunk {
            q = q.bind(*id);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Ends `job`: an action's outbox row is deleted, and a send's where it has one
/// ([`super::sends_in_outbox`]; found by its message, whatever id the job was given).
pub(super) async fn end_job(conn: &mut AnyConnection, job: &OutboxJob) -> Result<()> {
    match (job.action, job.message_id) {
        (JobAction::Send, Some(message)) => {
            if super::sends_in_outbox_of(conn) {
                sqlx::query("DELETE FROM outbox WHERE message_id = $1 AND action = 'send'")
                    .bind(message)
                    .execute(conn)
                    .await?;
            }
            Ok(())
        }
        _ => delete_job(conn, job.id).await,
    }
}

pub(super) async fn delete_job(conn: &mut AnyConnection, id: JobId) -> Result<()> {
    sqlx::query("DELETE FROM outbox WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

impl Store {
    /// Queues an action job on an existing message (edit, revoke, read marks). A send is
    /// queued by accepting its message ([`Store::accept_outgoing`]).
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
        // A queued message's send job is dropped (on SQLite it is the message: once deleted,
        // the dispatcher no longer reads it). One being sent at this moment is revoked when its
        // send is recorded.
        let queued = row.status == MessageStatus::Queued
            && (!super::sends_in_outbox(self.backend())
                || sqlx::query("DELETE FROM outbox WHERE message_id = $1 AND action = 'send'")
                    .bind(message)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    > 0);
        let never_left = queued || row.status == MessageStatus::Failed;
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

    /// Ends the work of a deleted session: its outbox rows are dropped and its queued
    /// messages (its sends) fail with `reason`, each with its event. Returns how many
    /// messages failed.
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

    /// Queues a failed message again (its failure is cleared, its send's attempts start
    /// over). Its job is named after it, so it goes before the sends accepted after it.
    /// `None` unless it failed.
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
        if super::sends_in_outbox(self.backend()) {
            insert_send_job(&mut tx, &row).await?;
        } else {
            sqlx::query("UPDATE messages SET send_after = NULL, send_attempts = 0 WHERE id = $1")
                .bind(row.id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Some(row))
    }

    /// Jobs of `session` ready at `now`, in order, at most `limit`: its due sends and actions
    /// (on SQLite the sends are its queued messages, merged with the outbox's actions by id;
    /// see [`super::sends_in_outbox`]). A job waiting (for a retry or its chat's pace) holds
    /// back every later job of its chat (FIFO per chat; on SQLite per chat and kind: an
    /// action is only ever queued on a message that was sent, so a chat's sends and actions
    /// have no order to keep between them, and within a batch the dispatcher holds the chat
    /// whatever the kind); other chats go on. The hold-back is part of each query, before the
    /// limit, so any number of held jobs at the front cannot hide the jobs of other chats.
    ///
    /// A chat's waiting jobs are found in partial indexes that hold only jobs told to wait
    /// (`outbox_waiting`: `available_at > created_at`; SQLite's `messages_waiting`:
    /// `send_after` set): sends accepted meanwhile, whose index entries a PostgreSQL read
    /// sees though their rows are invisible to it, cost nothing (see
    /// `store::ready_jobs_skip_jobs_accepted_after_now`). Each due job costs one probe of
    /// that index whatever the plan: on PostgreSQL the hold-back is `id < ALL (…)`, a subplan
    /// run per candidate with its chat as a parameter. A `NOT EXISTS` there became an
    /// anti-join, and the generic plan PostgreSQL keeps after planning it on an almost empty
    /// outbox probed by session alone: a read per job of the session's entries, seconds a
    /// call at 80,000 jobs. SQLite always runs the `NOT EXISTS` as a correlated probe.
    pub async fn ready_jobs(
        &self,
        session: SessionId,
        now: i64,
        limit: i64,
    ) -> Result<Vec<OutboxJob>> {
        let held = match self.backend() {
            Backend::Postgres => {
                "o.id < ALL (SELECT h.id FROM outbox h WHERE h.session_id = $1 \
                 AND h.chat_jid = o.chat_jid AND h.available_at > $2 \
                 AND h.available_at > h.created_at)"
            }
            Backend::Sqlite => {
                "NOT EXISTS (SELECT 1 FROM outbox h WHERE h.session_id = o.session_id \
                 AND h.chat_jid = o.chat_jid AND h.available_at > $2 \
                 AND h.available_at > h.created_at AND h.id < o.id)"
            }
        };
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM outbox o WHERE o.session_id = $1 AND o.available_at <= $2 \
             AND {held} ORDER BY o.id LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(session)
            .bind(now)
            .bind(limit)
            .fetch_all(&self.read)
            .await?;
        let mut jobs = rows
            .iter()
            .map(OutboxJob::from_row)
            .collect::<Result<Vec<_>>>()?;
        if super::sends_in_outbox(self.backend()) {
            return Ok(jobs);
        }
        // SQLite: the sends are the queued messages, told which indexes to use (without
        // statistics it could walk a chat's every message in `messages_by_chat`).
        let rows = sqlx::query(
            "SELECT m.id, m.account_id, m.session_id, m.chat_jid, m.accepted_at, m.send_after, \
             m.send_attempts FROM messages m INDEXED BY messages_queued WHERE m.session_id = $1 \
             AND m.status = 'queued' AND (m.send_after IS NULL OR m.send_after <= $2) \
             AND NOT EXISTS (SELECT 1 FROM messages h INDEXED BY messages_waiting \
             WHERE h.session_id = m.session_id AND h.chat_jid = m.chat_jid \
             AND h.status = 'queued' AND h.send_after IS NOT NULL AND h.send_after > $2 \
             AND h.id < m.id) ORDER BY m.id LIMIT $3",
        )
        .bind(session)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        for row in &rows {
            jobs.push(OutboxJob::from_send_row(row)?);
        }
        jobs.sort_by_key(|j| j.id);
        jobs.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(jobs)
    }

    /// How many jobs a session has waiting (on SQLite its queued messages and its actions).
    pub async fn outbox_len(&self, session: SessionId) -> Result<i64> {
        let sql = if super::sends_in_outbox(self.backend()) {
            "SELECT COUNT(*) FROM outbox WHERE session_id = $1"
        } else {
            "SELECT (SELECT COUNT(*) FROM messages WHERE session_id = $1 AND status = 'queued') \
             + (SELECT COUNT(*) FROM outbox WHERE session_id = $1)"
        };
        let n: i64 = sqlx::query_scalar(sql)
            .bind(session)
            .fetch_one(&self.read)
            .await?;
        Ok(n)
    }

    /// Sessions that have jobs waiting.
    pub async fn sessions_with_jobs(&self) -> Result<Vec<SessionId>> {
        // From the sessions, each one index probe of the outbox (and on SQLite of the queue):
        // a correlated subquery with a limit, so no plan reads either whole, whatever the
        // statistics. A `DISTINCT` over the outbox read the whole table, every row a send
        // deleted included (on PostgreSQL until a vacuum: after a million sends, hundreds of
        // megabytes a sweep).
        let sql = if super::sends_in_outbox(self.backend()) {
            "SELECT s.id FROM sessions s \
             WHERE (SELECT 1 FROM outbox o WHERE o.session_id = s.id LIMIT 1) IS NOT NULL"
        } else {
            "SELECT s.id FROM sessions s \
             WHERE (SELECT 1 FROM outbox o WHERE o.session_id = s.id LIMIT 1) IS NOT NULL \
             OR (SELECT 1 FROM messages m WHERE m.session_id = s.id AND m.status = 'queued' \
             LIMIT 1) IS NOT NULL"
        };
        let ids: Vec<String> = sqlx::query_scalar(sql).fetch_all(&self.read).await?;
        ids.iter()
            .map(|s| {
                s.parse()
                    .map_err(|_| StoreError::Corrupt(format!("outbox session {s}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    async fn migrate(conn: &mut sqlx::AnyConnection, path: std::path::PathBuf) {
        let sql = std::fs::read_to_string(path).expect("read");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(conn)
            .await
            .expect("migrate");
    }

    /// SQLite's migration 0036 turns the outbox rows of queued sends into their messages'
    /// `send_after` and `send_attempts` (a send told to wait keeps waiting, a retried one
    /// keeps its count), drops those rows and keeps the actions': an upgrade with a queue
    /// loses no send and sends none early.
    #[tokio::test]
    async fn sqlite_migration_0036_moves_queued_sends_onto_their_messages() {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect("sqlite::memory:")
            .await
            .expect("connect");
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .expect("migrations")
            .map(|f| f.expect("a migration").path())
            .collect();
        files.sort();
        let (before, after): (Vec<_>, Vec<_>) = files.into_iter().partition(|f| {
            f.file_name()
                .is_some_and(|n| *n.to_string_lossy() < *"0036")
        });
        for f in before {
            migrate(&mut conn, f).await;
        }
        let setup = "INSERT INTO accounts (id, name, created_at) VALUES ('acc_1', 'a', 1);
            INSERT INTO sessions (id, account_id, engine, status, settings, created_at, updated_at)
                VALUES ('sess_1', 'acc_1', 'emulator', 'disconnected', '{}', 1, 1);
            INSERT INTO messages (id, account_id, session_id, direction, chat_jid, kind, content,
                status, attempts, accepted_at, updated_at)
            VALUES ('msg_1', 'acc_1', 'sess_1', 'out', 'c@s.whatsapp.net', 'text', '{}', 'queued', 0, 10, 10),
                   ('msg_2', 'acc_1', 'sess_1', 'out', 'c@s.whatsapp.net', 'text', '{}', 'queued', 2, 10, 10),
                   ('msg_3', 'acc_1', 'sess_1', 'out', 'c@s.whatsapp.net', 'text', '{}', 'sent', 1, 10, 10);
            INSERT INTO outbox (id, account_id, session_id, chat_jid, message_id, action, payload,
                available_at, attempts, created_at)
            VALUES ('job_1', 'acc_1', 'sess_1', 'c@s.whatsapp.net', 'msg_1', 'send', 'null', 10, 0, 10),
                   ('job_2', 'acc_1', 'sess_1', 'c@s.whatsapp.net', 'msg_2', 'send', 'null', 5000, 2, 10),
                   ('job_3', 'acc_1', 'sess_1', 'c@s.whatsapp.net', 'msg_3', 'revoke', 'null', 10, 0, 10);";
        sqlx::raw_sql(setup).execute(&mut conn).await.expect("rows");
        for f in after {
            migrate(&mut conn, f).await;
        }
        let rows: Vec<(String, Option<i64>, i64)> =
            sqlx::query_as("SELECT id, send_after, send_attempts FROM messages ORDER BY id")
                .fetch_all(&mut conn)
                .await
                .expect("messages");
        assert_eq!(
            rows,
            vec![
                ("msg_1".to_owned(), None, 0),
                ("msg_2".to_owned(), Some(5000), 2),
                ("msg_3".to_owned(), None, 0),
            ]
        );
        let jobs: Vec<(String, String)> = sqlx::query_as("SELECT id, action FROM outbox")
            .fetch_all(&mut conn)
            .await
            .expect("outbox");
        assert_eq!(jobs, vec![("job_3".to_owned(), "revoke".to_owned())]);
    }
}
