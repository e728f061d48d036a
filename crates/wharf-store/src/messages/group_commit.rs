//! The group commit of sends: accepted sends wait in a channel and one thread commits them
//! together (one transaction for their messages, and on PostgreSQL their outbox rows),
//! answering each send once its group is durable.

use super::{sqlite_writer::SqliteWriter, *};
/// A send waiting for its group commit.
pub(crate) struct PendingAccept {
    pub(super) message: MessageRow,
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
        postgres: None,
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

/// Reads how much of a group was written from its statement's row count (PostgreSQL: a
/// message and its outbox row a send).
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
    /// The PostgreSQL connection, opened at the first group (and again after one that
    /// broke).
    postgres: Option<crate::pool::OwnPostgres>,
}

impl Committer {
    /// Commits `batch`; the sends are still in it when this returns.
    async fn commit(&mut self, batch: &mut Vec<PendingAccept>) -> Result<Committed> {
        if self.backend == Backend::Postgres {
            let own = match &mut self.postgres {
                Some(own) => own,
                None => self.postgres.insert(crate::pool::OwnPostgres::new(
                    self.pool.0.connect_options(),
                )?),
            };
            return commit_group_postgres(own, batch).await;
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
/// size, taking the group's rows as one array per column. It runs on its own (its implicit
/// transaction is the group's), so a group costs one round trip and no parse or plan: a
/// multi-row `VALUES` of a different size for each group was parsed and planned every time,
/// and the transaction around it took four round trips while the group waited.
///
/// The arrays go in PostgreSQL's binary format, on a connection of the group commit's own
/// (sqlx's `Any` connections bind no arrays): each value arrives length-prefixed and is
/// copied as it is. The rows were one JSON parameter before, and parsing it
/// (`json_to_recordset`, character by character) was the largest item of PostgreSQL's
/// profile of the send path.
///
/// The checked sends (all at one epoch, `$24`) are written only if the auth epoch still has
/// that value; the epoch row is read `FOR SHARE`, so a change that bumps it waits for the
/// group to commit (as [`crate::authcache::hold_epoch`] does for a transaction).
///
/// Each send's outbox row ([`super::sends_in_outbox`]) is made from its message's columns
/// (`outbox::send_job_from_message`: named after the message, due at its acceptance).
const PG_GROUP: &str = concat!(
    "WITH r AS MATERIALIZED (SELECT * FROM unnest(\
     $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
     $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::int8[], $14::int8[], \
     $15::int8[], $16::int8[], $17::int8[], $18::int8[], $19::int8[], $20::int8[], $21::int8[], \
     $22::int8[], $23::bool[]) AS r(\
     id, account_id, session_id, direction, chat_jid, sender_jid, kind, content, status, \
     provider_msg_id, quoted_message_id, failure_reason, attempts, accepted_at, sent_at, \
     delivered_at, read_at, played_at, failed_at, deleted_at, edited_at, updated_at, checked) \
     WHERE NOT r.checked OR (SELECT n FROM auth_epoch WHERE id = 1 FOR SHARE) = $24), \
     m AS (INSERT INTO messages (id, account_id, session_id, direction, chat_jid, sender_jid, kind, \
     content, status, provider_msg_id, quoted_message_id, failure_reason, attempts, accepted_at, \
     sent_at, delivered_at, read_at, played_at, failed_at, deleted_at, edited_at, updated_at) \
     SELECT id, account_id, session_id, direction, chat_jid, sender_jid, kind, content, status, \
     provider_msg_id, quoted_message_id, failure_reason, attempts, accepted_at, sent_at, \
     delivered_at, read_at, played_at, failed_at, deleted_at, edited_at, updated_at FROM r \
     RETURNING 1), \
     j AS (INSERT INTO outbox (id, account_id, session_id, chat_jid, message_id, action, payload, \
     available_at, attempts, last_error, created_at) SELECT ",
    super::outbox::send_job_from_message!(),
    " FROM r RETURNING 1) \
     SELECT CAST((SELECT count(*) FROM m) + (SELECT count(*) FROM j) AS BIGINT)"
);

/// A group's sends as [`PG_GROUP`]'s columns, one array each.
#[derive(Default)]
struct PgColumns {
    id: Vec<String>,
    account_id: Vec<String>,
    session_id: Vec<String>,
    direction: Vec<&'static str>,
    chat_jid: Vec<String>,
    sender_jid: Vec<Option<String>>,
    kind: Vec<&'static str>,
    /// The content as a string of JSON (PostgreSQL's JSON refuses a `\u0000`).
    content: Vec<String>,
    status: Vec<&'static str>,
    provider_msg_id: Vec<Option<String>>,
    quoted_message_id: Vec<Option<String>>,
    failure_reason: Vec<Option<String>>,
    attempts: Vec<i64>,
    accepted_at: Vec<i64>,
    sent_at: Vec<Option<i64>>,
    delivered_at: Vec<Option<i64>>,
    read_at: Vec<Option<i64>>,
    played_at: Vec<Option<i64>>,
    failed_at: Vec<Option<i64>>,
    deleted_at: Vec<Option<i64>>,
    edited_at: Vec<Option<i64>>,
    updated_at: Vec<i64>,
    checked: Vec<bool>,
}

impl PgColumns {
    fn of(batch: &[PendingAccept]) -> Self {
        let mut c = Self::default();
        for p in batch {
            c.push(p);
        }
        c
    }

    fn push(&mut self, p: &PendingAccept) {
        let m = &p.message;
        self.id.push(m.id.to_string());
        self.account_id.push(m.account_id.to_string());
        self.session_id.push(m.session_id.to_string());
        self.direction.push(m.direction.as_str());
        self.chat_jid.push(m.chat_jid.to_string());
        self.sender_jid.push(crate::plain(&m.sender_jid));
        self.kind.push(m.kind.as_str());
        self.content
            .push(serde_json::to_string(&m.content).unwrap_or_default());
        self.status.push(m.status.as_str());
        self.provider_msg_id.push(
            m.provider_msg_id
                .as_ref()
                .map(|p| crate::plain_str(p.as_str())),
        );
        self.quoted_message_id
            .push(m.quoted_message_id.map(|q| q.to_string()));
        self.failure_reason.push(crate::plain(&m.failure_reason));
        self.attempts.push(m.attempts);
        self.accepted_at.push(m.accepted_at);
        self.sent_at.push(m.sent_at);
        self.delivered_at.push(m.delivered_at);
        self.read_at.push(m.read_at);
        self.played_at.push(m.played_at);
        self.failed_at.push(m.failed_at);
        self.deleted_at.push(m.deleted_at);
        self.edited_at.push(m.edited_at);
        self.updated_at.push(m.updated_at);
        self.checked.push(p.verify.is_some());
    }
}

async fn commit_group_postgres(
    own: &mut crate::pool::OwnPostgres,
    batch: &[PendingAccept],
) -> Result<Committed> {
    let c = PgColumns::of(batch);
    let epoch = batch.iter().find_map(|p| p.verify);
    let mut conn = own.take().await?;
    let written = sqlx::query_scalar::<sqlx::Postgres, i64>(PG_GROUP)
        .bind(&c.id)
        .bind(&c.account_id)
        .bind(&c.session_id)
        .bind(&c.direction)
        .bind(&c.chat_jid)
        .bind(&c.sender_jid)
        .bind(&c.kind)
        .bind(&c.content)
        .bind(&c.status)
        .bind(&c.provider_msg_id)
        .bind(&c.quoted_message_id)
        .bind(&c.failure_reason)
        .bind(&c.attempts)
        .bind(&c.accepted_at)
        .bind(&c.sent_at)
        .bind(&c.delivered_at)
        .bind(&c.read_at)
        .bind(&c.played_at)
        .bind(&c.failed_at)
        .bind(&c.deleted_at)
        .bind(&c.edited_at)
        .bind(&c.updated_at)
        .bind(&c.checked)
        .bind(epoch)
        .fetch_one(&mut conn)
        .await;
    match &written {
        // A connection that failed is closed (dropped here); the next group opens another.
        Err(e) if crate::pool::connection_failed(e) => {}
        _ => own.give_back(conn),
    }
    committed(batch, u64::try_from(written?).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use wharf_core::{EngineKind, Jid};

    use super::*;
    use crate::sessions::NewSession;

    /// A store on a new SQLite file, with one session; and a send to it.
    async fn store_and_send() -> (crate::Store, MessageRow) {
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
        (store, message)
    }

    /// The group commit's own SQLite connection writes in the write pool's turn: a send
    /// made while another write transaction is open (longer than SQLite's 5 s busy timeout,
    /// which alone would fail it with "database is locked") waits for it, then is written.
    #[tokio::test]
    async fn a_send_waits_for_the_writers_turn() {
        let (store, message) = store_and_send().await;
        let mut tx = store.write.begin().await.expect("a write transaction");
        sqlx::query("UPDATE accounts SET name = 'b'")
            .execute(&mut *tx)
            .await
            .expect("a write");
        let send = tokio::spawn({
            let (store, message) = (store.clone(), message.clone());
            async move { store.accept_outgoing(&message, None, None).await }
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
