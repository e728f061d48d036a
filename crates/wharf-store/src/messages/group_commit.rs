//! The group commit of sends: accepted sends wait in a channel and one task commits them
//! together (a multi-row insert of their messages and outbox jobs), answering each send once
//! its group is durable.

use super::*;
/// A send waiting for its group commit.
pub(crate) struct PendingAccept {
    pub(super) message: MessageRow,
    pub(super) job: OutboxJob,
    /// The auth epoch the send was decided at, when it used cached credentials.
    pub(super) verify: Option<i64>,
    pub(super) reply: tokio::sync::oneshot::Sender<Result<()>>,
}

/// Rows per multi-row insert of a group (22 parameters a message).
pub(super) const GROUP_CHUNK: usize = 100;
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
    let batcher = async move {
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
    };
    run_beside_the_workers(batcher);
    tx
}

/// Runs the batcher on a thread of its own when the runtime has worker threads to drive its
/// I/O and timers (`Handle::block_on`); otherwise (a test's single-threaded runtime) as a
/// task. On its own thread the batcher is woken by the operating system as soon as its
/// commit returns, instead of waiting in the workers' shared queue behind every HTTP
/// connection's task, which left the writer idle between groups under load.
fn run_beside_the_workers(batcher: impl std::future::Future<Output = ()> + Send + 'static) {
    let handle = tokio::runtime::Handle::current();
    if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
        let spawned = std::thread::Builder::new()
            .name("wharf-commit".into())
            .spawn(move || handle.block_on(batcher));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the group commit's thread");
        }
        return;
    }
    handle.spawn(batcher);
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
    commit_group_postgres(pool, batch).await
}

/// The group commit on PostgreSQL: one prepared statement, the same text whatever the group's
/// size, taking the group's rows as one JSON parameter. It runs on its own (its implicit
/// transaction is the group's), so a group costs one round trip and no parse or plan: a
/// multi-row `VALUES` of a different size for each group was parsed and planned every time,
/// and the transaction around it took four round trips while the group waited.
///
/// The checked sends (all at one epoch, `$2`) are written only if the auth epoch still has
/// that value; the epoch row is read `FOR SHARE`, so a change that bumps it waits for the
/// group to commit (as [`crate::authcache::hold_epoch`] does for a transaction).
const PG_GROUP: &str = "WITH r AS MATERIALIZED (SELECT * FROM json_to_recordset($1::json) AS r(\
     id text, account_id text, session_id text, direction text, chat_jid text, sender_jid text, \
     kind text, content text, status text, provider_msg_id text, quoted_message_id text, \
     failure_reason text, attempts bigint, accepted_at bigint, sent_at bigint, delivered_at bigint, \
     read_at bigint, played_at bigint, failed_at bigint, deleted_at bigint, edited_at bigint, \
     updated_at bigint, j_id text, j_account_id text, j_session_id text, j_chat_jid text, \
     j_message_id text, j_action text, j_payload text, j_available_at bigint, j_attempts bigint, \
     j_last_error text, j_created_at bigint, checked boolean) \
     WHERE NOT r.checked OR (SELECT n FROM auth_epoch WHERE id = 1 FOR SHARE) = $2), \
     m AS (INSERT INTO messages (id, account_id, session_id, direction, chat_jid, sender_jid, kind, \
     content, status, provider_msg_id, quoted_message_id, failure_reason, attempts, accepted_at, \
     sent_at, delivered_at, read_at, played_at, failed_at, deleted_at, edited_at, updated_at) \
     SELECT id, account_id, session_id, direction, chat_jid, sender_jid, kind, content, status, \
     provider_msg_id, quoted_message_id, failure_reason, attempts, accepted_at, sent_at, \
     delivered_at, read_at, played_at, failed_at, deleted_at, edited_at, updated_at FROM r \
     RETURNING 1), \
     j AS (INSERT INTO outbox (id, account_id, session_id, chat_jid, message_id, action, payload, \
     available_at, attempts, last_error, created_at) \
     SELECT j_id, j_account_id, j_session_id, j_chat_jid, j_message_id, j_action, j_payload, \
     j_available_at, j_attempts, j_last_error, j_created_at FROM r RETURNING 1) \
     SELECT CAST((SELECT count(*) FROM m) + (SELECT count(*) FROM j) AS BIGINT)";

/// A send as one element of [`PG_GROUP`]'s JSON rows.
fn pg_row(p: &PendingAccept) -> Value {
    let (m, j) = (&p.message, &p.job);
    json!({
        "id": m.id.to_string(),
        "account_id": m.account_id.to_string(),
        "session_id": m.session_id.to_string(),
        "direction": m.direction.as_str(),
        "chat_jid": m.chat_jid.to_string(),
        "sender_jid": m.sender_jid,
        "kind": m.kind.as_str(),
        "content": serde_json::to_string(&m.content).unwrap_or_default(),
        "status": m.status.as_str(),
        "provider_msg_id": m.provider_msg_id.as_ref().map(|p| crate::plain_str(p.as_str())),
        "quoted_message_id": m.quoted_message_id.map(|q| q.to_string()),
        "failure_reason": crate::plain(&m.failure_reason),
        "attempts": m.attempts,
        "accepted_at": m.accepted_at,
        "sent_at": m.sent_at,
        "delivered_at": m.delivered_at,
        "read_at": m.read_at,
        "played_at": m.played_at,
        "failed_at": m.failed_at,
        "deleted_at": m.deleted_at,
        "edited_at": m.edited_at,
        "updated_at": m.updated_at,
        "j_id": j.id.to_string(),
        "j_account_id": j.account_id.to_string(),
        "j_session_id": j.session_id.to_string(),
        "j_chat_jid": j.chat_jid.to_string(),
        "j_message_id": j.message_id.map(|id| id.to_string()),
        "j_action": j.action.as_str(),
        "j_payload": j.payload.to_string(),
        "j_available_at": j.available_at,
        "j_attempts": j.attempts,
        "j_last_error": crate::plain(&j.last_error),
        "j_created_at": j.created_at,
        "checked": p.verify.is_some(),
    })
}

async fn commit_group_postgres(
    pool: &crate::pool::Pool,
    batch: &[PendingAccept],
) -> Result<Committed> {
    let rows = Value::Array(batch.iter().map(pg_row).collect()).to_string();
    let epoch = batch.iter().find_map(|p| p.verify);
    let mut conn = pool.acquire().await?;
    let written: i64 = sqlx::query_scalar(PG_GROUP)
        .bind(rows)
        .bind(epoch)
        .fetch_one(&mut *conn)
        .await?;
    committed(batch, u64::try_from(written).unwrap_or_default())
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
