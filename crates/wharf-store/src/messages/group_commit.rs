//! The group commit of sends: accepted sends wait in a channel and one thread commits them
//! together (one transaction for their messages and outbox jobs), answering each send once
//! its group is durable.

use super::{sqlite_writer::SqliteWriter, *};
/// A send waiting for its group commit.
pub(crate) struct PendingAccept {
    pub(super) message: MessageRow,
    pub(super) job: OutboxJob,
    /// The auth epoch the send was decided at, when it used cached credentials.
    pub(super) verify: Option<i64>,
    pub(super) reply: tokio::sync::oneshot::Sender<Result<()>>,
}

/// Rows per multi-row insert of messages (22 parameters or more a message).
pub(super) const GROUP_CHUNK: usize = 100;
/// Sends committed together, at most.
const GROUP_MAX: usize = 512;

/// Starts the task that commits queued sends in groups. `file` is the SQLite database's
/// (none on PostgreSQL).
pub(crate) fn spawn_batcher(
    pool: crate::pool::Pool,
    backend: Backend,
    file: Option<std::path::PathBuf>,
) -> tokio::sync::mpsc::Sender<PendingAccept> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<PendingAccept>(4096);
    let mut committer = Committer {
        pool,
        backend,
        file,
        sqlite: None,
        on_own_thread: has_workers(),
    };
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
            match committer.commit(&mut batch).await {
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
                    for p in std::mem::take(&mut batch) {
                        let mut one = vec![p];
                        let result = committer.commit(&mut one).await;
                        // (Gone only if the commit panicked: its sender is told so.)
                        let Some(p) = one.pop() else { continue };
                        let result = result.and_then(|c| match (c, p.verify) {
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
    if has_workers() {
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

/// Whether the current runtime has worker threads (so the batcher gets a thread of its own).
fn has_workers() -> bool {
    tokio::runtime::Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
}

/// What a group commit wrote.
enum Committed {
    /// Every send.
    All,
    /// Only the sends without an epoch to check: the auth epoch had moved.
    Unchecked,
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

/// Commits groups of sends: on SQLite with a connection of its own, called on this thread
/// ([`SqliteWriter`]); on PostgreSQL with one statement on a pooled connection.
struct Committer {
    pool: crate::pool::Pool,
    backend: Backend,
    /// The SQLite database's file.
    file: Option<std::path::PathBuf>,
    /// The SQLite connection, opened at the first group (and again after one that failed
    /// and could not roll back).
    sqlite: Option<SqliteWriter>,
    /// Whether the batcher has a thread of its own ([`run_beside_the_workers`]), where
    /// SQLite's calls may block.
    on_own_thread: bool,
}

impl Committer {
    /// Commits `batch`; the sends are still in it when this returns.
    async fn commit(&mut self, batch: &mut Vec<PendingAccept>) -> Result<Committed> {
        if self.backend == Backend::Postgres {
            return commit_group_postgres(&self.pool, batch).await;
        }
        // The write pool's turn, so the store's writes stay one at a time.
        let _turn = self.pool.hold().await?;
        let writer = match self.sqlite.take() {
            Some(writer) => writer,
            None => {
                let file = self.file.as_deref().ok_or_else(|| {
                    StoreError::Sqlite("the group commit needs a database file".into())
                })?;
                SqliteWriter::open(file, crate::SQLITE_WRITER_SETUP)?
            }
        };
        let (writer, wrote) = if self.on_own_thread {
            let mut writer = writer;
            let wrote = writer.commit(batch);
            (writer, wrote)
        } else {
            // A task of a single-threaded runtime (a test's) must not block it: SQLite can
            // wait there for a lock held by another store of the same process, whose
            // transaction needs this runtime to finish.
            let owned = std::mem::take(batch);
            let (writer, owned, wrote) = tokio::task::spawn_blocking(move || {
                let mut writer = writer;
                let wrote = writer.commit(&owned);
                (writer, owned, wrote)
            })
            .await
            .map_err(|e| StoreError::Sqlite(format!("the group commit failed: {e}")))?;
            *batch = owned;
            (writer, wrote)
        };
        // One left inside a transaction it could not end is closed; the next group opens
        // another.
        if wrote.is_ok() || writer.idle() {
            self.sqlite = Some(writer);
        }
        Ok(match wrote? {
            true => Committed::All,
            false if batch.iter().all(|p| p.verify.is_none()) => Committed::All,
            false => Committed::Unchecked,
        })
    }
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
     SELECT j_id, COALESCE(j_account_id, account_id), COALESCE(j_session_id, session_id), \
     COALESCE(j_chat_jid, chat_jid), CASE WHEN j_message_id = '' THEN NULL \
     ELSE COALESCE(j_message_id, id) END, j_action, j_payload, j_available_at, j_attempts, \
     j_last_error, j_created_at FROM r RETURNING 1) \
     SELECT CAST((SELECT count(*) FROM m) + (SELECT count(*) FROM j) AS BIGINT)";

/// A send as one element of [`PG_GROUP`]'s JSON rows. A field left out is NULL to
/// `json_to_recordset`, so what a queued send does not have (most of its timestamps) is not
/// written, nor the job's account, session and chat when they are the message's, nor its
/// message when it is this one (`j_message_id` is `""` for a job of no message). Parsing this
/// JSON was the largest item of PostgreSQL's profile of the group commit. (The content stays a
/// string of JSON: as JSON, PostgreSQL refuses a `\u0000` in it.)
#[derive(serde::Serialize)]
struct PgRow<'a> {
    #[serde(serialize_with = "shown")]
    id: &'a MessageId,
    #[serde(serialize_with = "shown")]
    account_id: &'a AccountId,
    #[serde(serialize_with = "shown")]
    session_id: &'a SessionId,
    direction: &'static str,
    #[serde(serialize_with = "shown")]
    chat_jid: &'a Jid,
    #[serde(skip_serializing_if = "Option::is_none")]
    sender_jid: Option<String>,
    kind: &'static str,
    content: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_msg_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quoted_message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_reason: Option<String>,
    attempts: i64,
    accepted_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sent_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivered_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    read_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    played_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failed_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    edited_at: Option<i64>,
    updated_at: i64,
    #[serde(serialize_with = "shown")]
    j_id: &'a JobId,
    #[serde(skip_serializing_if = "Option::is_none")]
    j_account_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    j_session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    j_chat_jid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    j_message_id: Option<String>,
    j_action: &'static str,
    j_payload: String,
    j_available_at: i64,
    j_attempts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    j_last_error: Option<String>,
    j_created_at: i64,
    checked: bool,
}

/// Serializes a value by its `Display`, without a `String` of its own.
fn shown<T: std::fmt::Display, S: serde::Serializer>(
    value: &T,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(value)
}

fn pg_row(p: &PendingAccept) -> PgRow<'_> {
    let (m, j) = (&p.message, &p.job);
    // The job's own value, only where it is not the message's.
    let unless = |same: bool, value: &dyn std::fmt::Display| (!same).then(|| value.to_string());
    PgRow {
        id: &m.id,
        account_id: &m.account_id,
        session_id: &m.session_id,
        direction: m.direction.as_str(),
        chat_jid: &m.chat_jid,
        sender_jid: crate::plain(&m.sender_jid),
        kind: m.kind.as_str(),
        content: serde_json::to_string(&m.content).unwrap_or_default(),
        status: m.status.as_str(),
        provider_msg_id: m
            .provider_msg_id
            .as_ref()
            .map(|p| crate::plain_str(p.as_str())),
        quoted_message_id: m.quoted_message_id.map(|q| q.to_string()),
        failure_reason: crate::plain(&m.failure_reason),
        attempts: m.attempts,
        accepted_at: m.accepted_at,
        sent_at: m.sent_at,
        delivered_at: m.delivered_at,
        read_at: m.read_at,
        played_at: m.played_at,
        failed_at: m.failed_at,
        deleted_at: m.deleted_at,
        edited_at: m.edited_at,
        updated_at: m.updated_at,
        j_id: &j.id,
        j_account_id: unless(j.account_id == m.account_id, &j.account_id),
        j_session_id: unless(j.session_id == m.session_id, &j.session_id),
        j_chat_jid: unless(j.chat_jid == m.chat_jid, &j.chat_jid),
        j_message_id: match j.message_id {
            Some(id) if id == m.id => None,
            Some(id) => Some(id.to_string()),
            None => Some(String::new()),
        },
        j_action: j.action.as_str(),
        j_payload: j.payload.to_string(),
        j_available_at: j.available_at,
        j_attempts: j.attempts,
        j_last_error: crate::plain(&j.last_error),
        j_created_at: j.created_at,
        checked: p.verify.is_some(),
    }
}

async fn commit_group_postgres(
    pool: &crate::pool::Pool,
    batch: &[PendingAccept],
) -> Result<Committed> {
    let rows: Vec<PgRow<'_>> = batch.iter().map(pg_row).collect();
    let rows = serde_json::to_string(&rows)
        .map_err(|e| StoreError::Corrupt(format!("group commit: {e}")))?;
    let epoch = batch.iter().find_map(|p| p.verify);
    let mut conn = pool.acquire().await?;
    let written: i64 = sqlx::query_scalar(PG_GROUP)
        .bind(rows)
        .bind(epoch)
        .fetch_one(&mut *conn)
        .await?;
    committed(batch, u64::try_from(written).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use wharf_core::{EngineKind, Jid};

    use super::*;
    use crate::sessions::NewSession;

    /// A store on a new SQLite file, with one session; and a send to it.
    async fn store_and_send() -> (crate::Store, MessageRow, OutboxJob) {
        let dir = std::env::temp_dir().join(format!(
            "wharf-group-{}-{}",
            std::process::id(),
            MessageId::generate()
        ));
        let store = crate::Store::open(&crate::sqlite_url(&dir.join("wharf.db")))
            .await
            .expect("store");
        let (account, _) = store.create_account("a").await.expect("account");
        let (session, _) = store
            .create_session(NewSession {
                account_id: account.id,
                engine: EngineKind::Emulator,
                label: None,
                phone_number: None,
                settings: Default::default(),
            })
            .await
            .expect("session");
        let now = now_millis();
        let chat = Jid::parse("15550102030@s.whatsapp.net").expect("jid");
        let mut message = crate::messages::tests::sent_message(MessageStatus::Queued);
        (message.account_id, message.session_id) = (account.id, session.id);
        (message.chat_jid, message.sent_at) = (chat.clone(), None);
        (message.accepted_at, message.updated_at) = (now, now);
        let job = OutboxJob::new(
            account.id,
            session.id,
            chat,
            Some(message.id),
            JobAction::Send,
            Value::Null,
        );
        (store, message, job)
    }

    /// The group commit's own SQLite connection writes in the write pool's turn: a send
    /// made while another write transaction is open (longer than SQLite's 5 s busy timeout,
    /// which alone would fail it with "database is locked") waits for it, then is written.
    #[tokio::test]
    async fn a_send_waits_for_the_writers_turn() {
        let (store, message, job) = store_and_send().await;
        let mut tx = store.write.begin().await.expect("a write transaction");
        sqlx::query("UPDATE accounts SET name = 'b'")
            .execute(&mut *tx)
            .await
            .expect("a write");
        let send = tokio::spawn({
            let (store, message, job) = (store.clone(), message.clone(), job.clone());
            async move { store.accept_outgoing(&message, &job, None, None).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(5_500)).await;
        assert!(!send.is_finished(), "the send did not wait for its turn");
        tx.commit().await.expect("commit");
        let accepted = send.await.expect("the send's task");
        assert!(accepted.is_ok(), "{accepted:?}");
        let stored = store.get_message(message.account_id, message.id).await;
        assert_eq!(stored.expect("read"), Some(message));
    }
}
