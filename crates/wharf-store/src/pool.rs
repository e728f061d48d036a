//! Connection pools that lend a connection without extra round trips.
//!
//! sqlx's pool pings every connection it takes back, in a task it spawns for that, and
//! (by default) again before lending it: on SQLite each ping is one more hand-off to the
//! connection's worker thread (and back), so a one-statement read cost two hand-offs and a
//! task, and the single writer connection could not be lent again until its ping had run.
//! On PostgreSQL each ping is a round trip to the server: a one-statement read cost three,
//! and a group commit of sends nine instead of five. Measured with `wharf-bench ingest`,
//! those hand-offs and round trips were the largest cost of a send.
//!
//! So both backends use [`Local`]: a fixed set of connections behind a fair semaphore,
//! opened on demand, returned as they are. sqlx's connections are safe to reuse after a
//! cancelled call: SQLite's worker finishes or stops the statement and resets it;
//! PostgreSQL's connection sends what was left in its buffer and reads the answers still
//! due before its next statement, and a transaction dropped open queues its rollback the
//! same way.
//!
//! A PostgreSQL connection can also be broken under the pool (a server restart, a network
//! cut). Such a connection is not lent without a check: one idle for longer than
//! [`CHECK_IDLE_AFTER`] is pinged before it is lent, and so is every connection for a while
//! after any statement of this process failed for want of a working connection
//! ([`note_error`], called for every error the store sees); a connection that fails its
//! ping is closed and another one taken. A busy, healthy pool pings nothing.

use std::{
    ops::{Deref, DerefMut},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::{TryStreamExt, future::BoxFuture, stream::BoxStream};
use sqlx::{
    Any, AnyConnection, ConnectOptions, Connection, Either, Execute, Executor,
    any::{AnyConnectOptions, AnyQueryResult, AnyRow, AnyStatement, AnyTransactionManager},
};
use sqlx_core::{sql_str::SqlStr, transaction::TransactionManager};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

mod checkpointer;
pub(crate) use checkpointer::{REWIND_AT_PAGES, spawn_checkpointer};
pub use checkpointer::{REWIND_BOUNDS, RewindStats};

/// How long a caller waits for a connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Every PostgreSQL connection's setup. No transaction of the store waits on anything but the
/// database, so one idle for 10 s belongs to a process that stalled (SIGSTOP, a frozen
/// machine): the server ends it, and the row locks it held (a session lease locked by a fenced
/// write) no longer keep another instance from taking the session over.
const POSTGRES_SETUP: &str = "SET idle_in_transaction_session_timeout = '10s'";

/// A pool of connections (cheap to clone).
#[derive(Clone, Debug)]
pub(crate) struct Pool(pub(crate) Arc<Local>);

/// A PostgreSQL connection idle for longer than this is pinged before it is lent.
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(5);
/// After a connection-level error, how long every PostgreSQL connection is pinged before it
/// is lent.
const SUSPECT_FOR: Duration = Duration::from_secs(10);

/// Until when (milliseconds of [`wharf_core::time::now_millis`]) connections are suspect.
static SUSPECT_UNTIL: AtomicU64 = AtomicU64::new(0);

/// Notes an error of a statement: one that says the connection itself failed (its socket,
/// the protocol, a pool that could not connect) makes every PostgreSQL connection suspect
/// for [`SUSPECT_FOR`], so each is pinged before it is lent again and a broken one is
/// replaced instead of failing the next statement too.
pub(crate) fn note_error(error: &sqlx::Error) {
    if connection_failed(error) {
        let until = wharf_core::time::now_millis().max(0) as u64 + SUSPECT_FOR.as_millis() as u64;
        SUSPECT_UNTIL.fetch_max(until, Ordering::Relaxed);
    }
}

/// Whether `error` says the connection itself failed (its socket, the protocol, a pool that
/// could not connect), rather than the statement.
pub(crate) fn connection_failed(error: &sqlx::Error) -> bool {
    use sqlx::Error::*;
    matches!(
        error,
        Io(_) | Tls(_) | Protocol(_) | PoolTimedOut | WorkerCrashed
    )
}

fn suspect() -> bool {
    SUSPECT_UNTIL.load(Ordering::Relaxed) > wharf_core::time::now_millis().max(0) as u64
}

/// Connections to a database: at most `max` at once, opened when first needed.
pub(crate) struct Local {
    options: AnyConnectOptions,
    /// Run on every new connection (nothing when empty).
    setup: &'static str,
    /// Write transactions begin with `BEGIN IMMEDIATE` (SQLite).
    immediate: bool,
    /// Connections are checked before they are lent after an idle time or an error
    /// (PostgreSQL: a server goes away; a SQLite file does not).
    checked: bool,
    /// Idle connections, with when each was given back.
    idle: Mutex<Vec<(AnyConnection, std::time::Instant)>>,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
            .field("idle", &self.idle.lock().map(|v| v.len()).unwrap_or(0))
            .field("available", &self.permits.available_permits())
            .finish()
    }
}

impl Local {
    /// A pool of at most `max` SQLite connections, one opened now (so a bad URL fails at
    /// once).
    pub(crate) async fn open(
        options: AnyConnectOptions,
        setup: &'static str,
        max: usize,
    ) -> Result<Arc<Self>, sqlx::Error> {
        Self::open_with(options, setup, max, true, false).await
    }

    /// A pool of at most `max` PostgreSQL connections, one opened now.
    pub(crate) async fn open_postgres(
        options: AnyConnectOptions,
        max: usize,
    ) -> Result<Arc<Self>, sqlx::Error> {
        Self::open_with(options, POSTGRES_SETUP, max, false, true).await
    }

    async fn open_with(
        options: AnyConnectOptions,
        setup: &'static str,
        max: usize,
        immediate: bool,
        checked: bool,
    ) -> Result<Arc<Self>, sqlx::Error> {
        let local = Arc::new(Self {
            options,
            setup,
            immediate,
            checked,
            idle: Mutex::new(Vec::with_capacity(max)),
            permits: Arc::new(Semaphore::new(max)),
        });
        let first = local.connect().await?;
        local.give_back(first);
        Ok(local)
    }

    /// The options connections are opened with.
    pub(crate) fn connect_options(&self) -> &AnyConnectOptions {
        &self.options
    }

    async fn connect(&self) -> Result<AnyConnection, sqlx::Error> {
        let opened = async {
            let mut conn = self.options.connect().await?;
            if !self.setup.is_empty() {
                conn.execute(self.setup).await?;
            }
            Ok(conn)
        };
        in_time(opened).await
    }

    fn give_back(&self, conn: AnyConnection) {
        if self.permits.is_closed() {
            return; // closed: the connection ends when dropped
        }
        if let Ok(mut idle) = self.idle.lock() {
            idle.push((conn, std::time::Instant::now()));
        }
    }

    /// A connection to lend: an idle one (checked first when it must be), else a new one.
    async fn take(&self) -> Result<AnyConnection, sqlx::Error> {
        loop {
            let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            let Some((mut conn, since)) = idle else {
                return self.connect().await;
            };
            if !self.checked || (since.elapsed() < CHECK_IDLE_AFTER && !suspect()) {
                return Ok(conn);
            }
            match tokio::time::timeout(ACQUIRE_TIMEOUT, conn.ping()).await {
                Ok(Ok(())) => return Ok(conn),
                // Broken: closed (dropped), and the next one is tried.
                Ok(Err(e)) => note_error(&e),
                Err(_) => note_error(&sqlx::Error::PoolTimedOut),
            }
        }
    }
}

/// Opens a connection (`opened`) within [`ACQUIRE_TIMEOUT`]: a server that does not answer
/// (a network cut) fails the borrower in time. Errors are noted ([`note_error`]).
async fn in_time<C>(
    opened: impl std::future::Future<Output = Result<C, sqlx::Error>>,
) -> Result<C, sqlx::Error> {
    match tokio::time::timeout(ACQUIRE_TIMEOUT, opened).await {
        Ok(result) => result.inspect_err(note_error),
        Err(_) => {
            let e = sqlx::Error::PoolTimedOut;
            note_error(&e);
            Err(e)
        }
    }
}

/// A PostgreSQL connection of its own, outside every pool (the group commit of sends keeps
/// one, to bind PostgreSQL's own types, which sqlx's `Any` connections cannot), lent again
/// by [`OwnPostgres::take`] with the pool's checks: pinged when idle for a while or while
/// connections are suspect, replaced when broken.
pub(crate) struct OwnPostgres {
    options: sqlx::postgres::PgConnectOptions,
    conn: Option<(sqlx::PgConnection, std::time::Instant)>,
}

impl OwnPostgres {
    /// Opens nothing yet: the first [`Self::take`] connects.
    pub(crate) fn new(options: &AnyConnectOptions) -> Result<Self, sqlx::Error> {
        Ok(Self {
            options: sqlx::postgres::PgConnectOptions::try_from(options)?,
            conn: None,
        })
    }

    /// The connection, checked or new. Give it back with [`Self::give_back`] after a
    /// statement that did not fail for want of a working connection; one not given back is
    /// closed, and the next call opens another.
    pub(crate) async fn take(&mut self) -> Result<sqlx::PgConnection, sqlx::Error> {
        if let Some((mut conn, since)) = self.conn.take() {
            if since.elapsed() < CHECK_IDLE_AFTER && !suspect() {
                return Ok(conn);
            }
            match tokio::time::timeout(ACQUIRE_TIMEOUT, conn.ping()).await {
                Ok(Ok(())) => return Ok(conn),
                Ok(Err(e)) => note_error(&e),
                Err(_) => note_error(&sqlx::Error::PoolTimedOut),
            }
        }
        let opened = async {
            let mut conn = self.options.connect().await?;
            conn.execute(POSTGRES_SETUP).await?;
            Ok(conn)
        };
        in_time(opened).await
    }

    /// Keeps `conn` for the next [`Self::take`].
    pub(crate) fn give_back(&mut self, conn: sqlx::PgConnection) {
        self.conn = Some((conn, std::time::Instant::now()));
    }
}

/// Process-wide counts of connection acquisitions, for `/metrics`.
static ACQUIRES: AtomicU64 = AtomicU64::new(0);
/// Acquisitions that waited longer than [`WAITED`].
static WAITS: AtomicU64 = AtomicU64::new(0);
/// Total time spent acquiring, in microseconds.
static WAIT_MICROS: AtomicU64 = AtomicU64::new(0);
/// An acquisition slower than this counts as a wait (a free connection takes microseconds).
const WAITED: Duration = Duration::from_millis(1);

/// Connection acquisitions of every pool of this process (all stores).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PoolStats {
    pub acquires: u64,
    /// Acquisitions that took longer than a millisecond (waited for a connection, or opened one).
    pub waits: u64,
    pub wait_seconds: f64,
}

impl PoolStats {
    /// The counts so far.
    pub fn read() -> Self {
        Self {
            acquires: ACQUIRES.load(Ordering::Relaxed),
            waits: WAITS.load(Ordering::Relaxed),
            wait_seconds: WAIT_MICROS.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

impl Pool {
    /// A connection, waiting up to ten seconds for one.
    pub(crate) async fn acquire(&self) -> Result<Conn, sqlx::Error> {
        let started = std::time::Instant::now();
        let conn = self.acquire_untimed().await;
        let took = started.elapsed();
        ACQUIRES.fetch_add(1, Ordering::Relaxed);
        WAIT_MICROS.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        if took > WAITED {
            WAITS.fetch_add(1, Ordering::Relaxed);
        }
        conn
    }

    /// The pool's turn without a connection, waiting up to ten seconds for it: for a writer
    /// with a connection of its own (the SQLite group commit), so that its writes and the
    /// pool's still happen one at a time, in the order they asked.
    pub(crate) async fn hold(&self) -> Result<OwnedSemaphorePermit, sqlx::Error> {
        tokio::time::timeout(ACQUIRE_TIMEOUT, self.0.permits.clone().acquire_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)
    }

    async fn acquire_untimed(&self) -> Result<Conn, sqlx::Error> {
        let local = &self.0;
        let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, local.permits.clone().acquire_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let conn = local.take().await?;
        Ok(Conn {
            conn: Some(conn),
            pool: local.clone(),
            permit: Some(permit),
            rolled_back: false,
        })
    }

    /// A connection in a new transaction. On SQLite (the store's own pools, whose
    /// transactions are the writer's) it begins `IMMEDIATE`, taking the write lock at once: a
    /// deferred transaction that read first failed with SQLITE_BUSY_SNAPSHOT when another
    /// process (a CLI command beside the server) wrote before its first write; now that
    /// process waits its turn under `busy_timeout` instead.
    pub(crate) async fn begin(&self) -> Result<Tx, sqlx::Error> {
        let mut conn = self.acquire().await?;
        let statement = self
            .0
            .immediate
            .then(|| sqlx::SqlSafeStr::into_sql_str("BEGIN IMMEDIATE"));
        AnyTransactionManager::begin(&mut conn, statement).await?;
        Ok(Tx { conn, open: true })
    }

    /// Closes the pool: connections in use end when they are given back.
    pub(crate) async fn close(&self) {
        let local = &self.0;
        local.permits.close();
        let idle = local
            .idle
            .lock()
            .map(|mut idle| std::mem::take(&mut *idle))
            .unwrap_or_default();
        for (conn, _) in idle {
            let _ = conn.close().await;
        }
    }
}

/// A lent connection; given back when dropped.
pub(crate) struct Conn {
    conn: Option<AnyConnection>,
    pool: Arc<Local>,
    /// Released once the connection is back.
    permit: Option<OwnedSemaphorePermit>,
    /// A transaction was dropped open on it: its rollback is queued, not yet run.
    rolled_back: bool,
}

impl Deref for Conn {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        self.conn.as_ref().expect("a lent connection")
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.conn.as_mut().expect("a lent connection")
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let Conn {
            conn,
            pool,
            permit,
            rolled_back,
        } = self;
        let Some(mut conn) = conn.take() else { return };
        // A PostgreSQL transaction dropped open holds its locks until its queued rollback
        // runs: it runs now, before the connection is lent again, or an idle connection
        // would keep rows locked that busy borrowers wait for. (SQLite's single writer runs
        // it before its next statement, which nothing else waits for.)
        if *rolled_back
            && pool.checked
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let pool = pool.clone();
            let permit = permit.take();
            runtime.spawn(async move {
                match tokio::time::timeout(ACQUIRE_TIMEOUT, conn.ping()).await {
                    Ok(Ok(())) => pool.give_back(conn),
                    Ok(Err(e)) => note_error(&e),
                    Err(_) => note_error(&sqlx::Error::PoolTimedOut),
                }
                drop(permit);
            });
            return;
        }
        // Given back before the permit is released, so the next borrower finds it.
        pool.give_back(conn);
    }
}

/// A connection in a transaction; rolled back when dropped uncommitted (the rollback is
/// queued on the connection and runs before its next statement).
pub(crate) struct Tx {
    conn: Conn,
    open: bool,
}

impl Tx {
    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        AnyTransactionManager::commit(&mut self.conn).await?;
        self.open = false;
        Ok(())
    }
}

impl Deref for Tx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.conn
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if self.open {
            AnyTransactionManager::start_rollback(&mut self.conn);
            self.conn.rolled_back = true;
        }
    }
}

/// `&pool` runs a query on a connection it borrows for that query alone.
impl<'p> Executor<'p> for &'_ Pool {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Any>,
    {
        let pool = self.clone();
        // Every caller collects the whole answer, so it is read before the connection
        // goes back.
        Box::pin(
            futures::stream::once(async move {
                let mut conn = pool.acquire().await?;
                conn.fetch_many(query).try_collect::<Vec<_>>().await
            })
            .map_ok(|all| futures::stream::iter(all.into_iter().map(Ok)))
            .try_flatten(),
        )
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Any>,
    {
        let pool = self.clone();
        Box::pin(async move {
            let mut conn = pool.acquire().await?;
            conn.fetch_optional(query).await
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [sqlx::any::AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement, sqlx::Error>>
    where
        'p: 'e,
    {
        let pool = self.clone();
        Box::pin(async move {
            let mut conn = pool.acquire().await?;
            conn.prepare_with(sql, parameters).await
        })
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<sqlx::Describe<Any>, sqlx::Error>> {
        let pool = self.clone();
        Box::pin(async move {
            let mut conn = pool.acquire().await?;
            conn.describe(sql).await
        })
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::Row;

    use super::*;

    async fn local(dir: &std::path::Path, max: usize) -> Pool {
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
        let options = AnyConnectOptions::from_str(&url).expect("url");
        Pool(
            Local::open(options, "PRAGMA journal_mode = WAL;", max)
                .await
                .expect("open"),
        )
    }

    fn tempdir() -> std::path::PathBuf {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wharf-pool-{}-{}-{}",
            std::process::id(),
            wharf_core::time::now_millis(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    /// Another process (a CLI command, a test's second store) writing between a transaction's
    /// first read and its first write must make it wait, not fail: a deferred `BEGIN`
    /// failed there with SQLITE_BUSY_SNAPSHOT ("database is locked", 517).
    #[tokio::test]
    async fn a_transaction_is_not_failed_by_another_connections_write() {
        const SETUP: &str = "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000;";
        sqlx::any::install_default_drivers();
        let dir = tempdir();
        let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
        let options = AnyConnectOptions::from_str(&url).expect("url");
        let a = Pool(Local::open(options.clone(), SETUP, 1).await.expect("a"));
        let b = Pool(Local::open(options, SETUP, 1).await.expect("b"));
        sqlx::query("CREATE TABLE t (n INTEGER)")
            .execute(&a)
            .await
            .expect("create");
        let mut tx = a.begin().await.expect("begin");
        sqlx::query("SELECT count(*) FROM t")
            .fetch_one(&mut *tx)
            .await
            .expect("read");
        let other = tokio::spawn({
            let b = b.clone();
            async move {
                sqlx::query("INSERT INTO t VALUES (1)")
                    .execute(&b)
                    .await
                    .map(|_| ())
            }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        sqlx::query("INSERT INTO t VALUES (2)")
            .execute(&mut *tx)
            .await
            .expect("the transaction's write");
        tx.commit().await.expect("commit");
        other
            .await
            .expect("join")
            .expect("the other write, after the commit");
        a.close().await;
        b.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_dropped_transaction_is_rolled_back_before_the_next_use() {
        let dir = tempdir();
        let pool = local(&dir, 1).await;
        sqlx::query("CREATE TABLE t (n INTEGER)")
            .execute(&pool)
            .await
            .expect("create");
        {
            let mut tx = pool.begin().await.expect("begin");
            sqlx::query("INSERT INTO t VALUES (1)")
                .execute(&mut *tx)
                .await
                .expect("insert");
        }
        let mut tx = pool
            .begin()
            .await
            .expect("a new transaction on the same connection");
        sqlx::query("INSERT INTO t VALUES (2)")
            .execute(&mut *tx)
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
        let rows: Vec<i64> = sqlx::query("SELECT n FROM t")
            .fetch_all(&pool)
            .await
            .expect("select")
            .iter()
            .map(|r| r.get::<i64, _>(0))
            .collect();
        assert_eq!(rows, vec![2]);
        pool.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_under_back_to_back_writes() {
        const SETUP: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA busy_timeout = 5000; PRAGMA wal_autocheckpoint = 0;";
        /// 1 MiB here (256 pages) instead of 4 MiB, so a few seconds of writes cross it often.
        const REWIND_AT: u64 = 256 * 4096;
        sqlx::any::install_default_drivers();
        let dir = tempdir();
        let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
        let options = AnyConnectOptions::from_str(&url).expect("url");
        let writer = Local::open(options.clone(), SETUP, 1).await.expect("open");
        let rewinds = RewindStats::read();
        let rounds = spawn_checkpointer(options, SETUP, &writer, 256)
            .await
            .expect("checkpointer");
        let pool = Pool(writer);
        sqlx::query("CREATE TABLE t (b BLOB)")
            .execute(&pool)
            .await
            .expect("create");
        let wal = dir.join("t.db-wal");
        // Back to back transactions of 32 KB, as fast as they go. How far the WAL may grow
        // depends on how much is written between two rounds of the checkpointer, which a
        // loaded machine stretches: so the bound is measured, not assumed. A round that finds
        // the WAL over the limit lets it start over, so it stays under the limit plus what
        // two rounds let through; without that it grows with everything written.
        let (mut written, mut largest) = (0u64, 0u64);
        let (mut round, mut since_round, mut most_per_round) = (0, 0u64, 0u64);
        let bound = |most_per_round: u64| REWIND_AT + 2 * most_per_round + (1 << 20);
        // At least 48 MiB and 20 rounds, and enough that an unbounded WAL (as large as what
        // was written) would be far over the bound.
        while written < 48 << 20
            || rounds.load(Ordering::Relaxed) < 20
            || written < 3 * bound(most_per_round).min(128 << 20)
        {
            let mut tx = pool.begin().await.expect("begin");
            for _ in 0..8 {
                sqlx::query("INSERT INTO t VALUES (randomblob(4000))")
                    .execute(&mut *tx)
                    .await
                    .expect("insert");
            }
            tx.commit().await.expect("commit");
            written += 32_000;
            since_round += 32_000;
            let now = rounds.load(Ordering::Relaxed);
            if now != round {
                (round, since_round) = (now, 0);
            }
            most_per_round = most_per_round.max(since_round);
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        }
        // With checkpoints only beside the writer, the WAL grew to a multiple of what was
        // written (hundreds of MiB in a few seconds).
        assert!(
            largest < bound(most_per_round),
            "the WAL reached {largest} bytes after {written} written, at most {most_per_round} \
             between two rounds of the checkpointer"
        );
        // It started over many times (48 MiB through a 1 MiB WAL), each counted for
        // `/metrics` with the time the writer was held (other tests' stores add theirs).
        let after = RewindStats::read();
        assert!(
            after.count() >= rewinds.count() + 10,
            "start-overs counted: {} -> {}",
            rewinds.count(),
            after.count()
        );
        assert!(after.seconds > rewinds.seconds, "their time is counted");
        pool.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn borrowers_wait_for_the_one_connection_and_get_it_back() {
        let dir = tempdir();
        let pool = local(&dir, 1).await;
        let held = pool.acquire().await.expect("first");
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { sqlx::query("SELECT 1").fetch_one(&pool).await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the second borrower waits");
        drop(held);
        waiting.await.expect("join").expect("then gets it");
        pool.close().await;
        assert!(matches!(pool.acquire().await, Err(sqlx::Error::PoolClosed)));
        let _ = std::fs::remove_dir_all(dir);
    }
}
