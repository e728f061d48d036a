//! The outbox: the jobs the dispatcher works through (sends and actions on sent messages),
//! how they are written, read in order (FIFO per chat), withdrawn, requeued and ended.

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

pub(super) const INSERT_JOB: &str = "INSERT INTO outbox (id, account_id, session_id, chat_jid, message_id, action, payload, \
     available_at, attempts, last_error, created_at)";

pub(super) fn bind_job<'q>(
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

pub(super) async fn insert_job(conn: &mut AnyConnection, job: &OutboxJob) -> Result<()> {
    let sql = format!("{INSERT_JOB} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)");
    bind_job(sqlx::query(sqlx::AssertSqlSafe(sql)), job)
        .execute(conn)
        .await?;
    Ok(())
}

pub(super) async fn delete_job(conn: &mut AnyConnection, id: JobId) -> Result<()> {
    sqlx::query("DELETE FROM outbox WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

impl Store {
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
    /// held jobs at the front cannot hide the jobs of other chats.
    ///
    /// A chat's waiting jobs are found in `outbox_waiting`, which holds only jobs told to
    /// wait (`available_at > created_at`: deferred, retried): sends accepted meanwhile, whose
    /// index entries a PostgreSQL read sees though their rows are invisible to it, cost
    /// nothing (see `store::ready_jobs_skip_jobs_accepted_after_now`). Each due job costs one
    /// probe of that index whatever the plan: on PostgreSQL the hold-back is `id < ALL (…)`,
    /// a subplan run per candidate with its chat as a parameter. A `NOT EXISTS` there became
    /// an anti-join, and the generic plan PostgreSQL keeps after planning it on an almost
    /// empty outbox probed by session alone: a read per job of the session's entries, seconds
    /// a call at 80,000 jobs. SQLite always runs the `NOT EXISTS` as a correlated probe.
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
}
