//! The SQLite checkpointer: copies the WAL into the database file beside the writer, and
//! has the WAL start over once it is long (see [`spawn_checkpointer`]); with the counts of
//! those start-overs for `/metrics`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use sqlx::{AnyConnection, ConnectOptions, Connection, Executor, any::AnyConnectOptions};

use super::{Local, Pool};

/// How often the checkpointer copies the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// WAL pages (4 KiB each) past which the checkpointer checkpoints on the writer's
/// connection, so the WAL can start over: 4 MiB. A start-over holds the writes up while the
/// last copy and its `fsync`s run, and that wait grows with the WAL: under wrk's 64
/// connections the sends' p99 was 46-60 ms at 64 MiB, 37-49 ms at 16 MiB and 34 ms at
/// 4 MiB (and 94-105 ms at 256 MiB) on the same machine (docs/benchmarks.md, issue 19). At
/// 4 MiB a start-over held the writer 6 ms (median) to 11 ms (max) on a faster machine.
pub(crate) const REWIND_AT_PAGES: i64 = 1_024;

/// Starts the SQLite checkpointer: on a connection of its own, a passive checkpoint every
/// 100 ms while `writer`'s pool is open (the writer runs none itself). A passive checkpoint
/// never waits for the writer or readers, so commits no longer stop for one. But SQLite
/// starts the WAL over only when a write begins after everything in it was copied, which a
/// checkpoint running beside a busy writer never reaches: under sustained writes the WAL
/// would grow without end. So once it holds more than `rewind_at_pages`, the checkpointer
/// borrows the writer connection, like any writer, and runs the passive checkpoint there,
/// between two write transactions: it copies what the last rounds left (little) and the
/// next write starts the WAL over. (A `RESTART` or `TRUNCATE` checkpoint there also waits
/// for readers and, for `TRUNCATE`, makes the file grow again: they stalled sends for up to
/// 100 ms at a time in `wharf-bench ingest`.) Should the file ever pass 64 MiB (writes that
/// outrun the checkpointer), the writer's `journal_size_limit` trims it back to that when it
/// starts over. Each start-over is counted in [`RewindStats`], with the time the writer was
/// held for it.
///
/// Returns the count of rounds done so far (for tests).
pub(crate) async fn spawn_checkpointer(
    options: AnyConnectOptions,
    setup: &'static str,
    writer: &Arc<Local>,
    rewind_at_pages: i64,
) -> Result<Arc<AtomicU64>, sqlx::Error> {
    let mut conn = options.connect().await?;
    conn.execute(setup).await?;
    let writer = Arc::downgrade(writer);
    let rounds = Arc::new(AtomicU64::new(0));
    let done = rounds.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(CHECKPOINT_EVERY).await;
            let pool = match writer.upgrade() {
                Some(pool) if !pool.permits.is_closed() => Pool(pool),
                _ => break,
            };
            if let Err(e) = checkpoint(&mut conn, &pool, rewind_at_pages).await {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
            done.fetch_add(1, Ordering::Relaxed);
        }
        let _ = conn.close().await;
    });
    Ok(rounds)
}

/// One round of the checkpointer: passive on its own connection; when the WAL is too long,
/// passive again on the writer's connection, borrowed like any writer borrows it, so the
/// process's writes wait their turn instead of keeping the WAL from ever starting over.
async fn checkpoint(
    conn: &mut AnyConnection,
    writer: &Pool,
    rewind_at_pages: i64,
) -> Result<(), sqlx::Error> {
    use sqlx::Row;
    // (busy, pages in the WAL, pages copied)
    let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(&mut *conn)
        .await?;
    let pages: i64 = row.try_get(1)?;
    if pages > rewind_at_pages {
        let mut writer = writer.acquire().await?;
        let held = Instant::now();
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&mut *writer)
            .await?;
        drop(writer);
        note_rewind(held.elapsed());
    }
    Ok(())
}

/// Upper bounds (seconds) of the buckets of [`RewindStats::buckets`].
pub const REWIND_BOUNDS: [f64; 7] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25];
/// The checkpointer's rounds that held the writer so the WAL could start over, by how long
/// they held it (the last bucket is over the last bound), of every store of this process.
static REWINDS: [AtomicU64; REWIND_BOUNDS.len() + 1] =
    [const { AtomicU64::new(0) }; REWIND_BOUNDS.len() + 1];
/// Their total time holding the writer, in microseconds.
static REWIND_MICROS: AtomicU64 = AtomicU64::new(0);

fn note_rewind(held: Duration) {
    let seconds = held.as_secs_f64();
    let bucket = REWIND_BOUNDS
        .iter()
        .position(|b| seconds <= *b)
        .unwrap_or(REWIND_BOUNDS.len());
    REWINDS[bucket].fetch_add(1, Ordering::Relaxed);
    REWIND_MICROS.fetch_add(held.as_micros() as u64, Ordering::Relaxed);
}

/// The times SQLite's WAL was started over, for `/metrics`: each one holds the writes up
/// while the checkpointer has the writer's connection (the stalls of issue 19).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RewindStats {
    /// Counts by how long the writer was held, per bucket of [`REWIND_BOUNDS`] (not
    /// cumulative), the last one over the last bound.
    pub buckets: [u64; REWIND_BOUNDS.len() + 1],
    /// The writer held for them in all.
    pub seconds: f64,
}

impl RewindStats {
    /// The counts so far.
    pub fn read() -> Self {
        Self {
            buckets: std::array::from_fn(|i| REWINDS[i].load(Ordering::Relaxed)),
            seconds: REWIND_MICROS.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }

    /// How many there were.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}
