//! Retention of the event log, and the scheduled jobs that one instance at a time runs.
//!
//! Old events go in bounded batches, oldest first, each batch a short transaction of its own
//! (so writers never wait long behind one): the events, the webhook deliveries of those
//! events (and, by cascade, their attempts), and the account's `events_pruned_seq`, the last
//! cursor removed, which tells a reader resuming before it where the log now starts.

use sqlx::Row;
use wharf_core::AccountId;

use crate::{Result, Store};

/// A claimed run of a scheduled job.
#[derive(Debug, Clone)]
pub struct JobLease {
    pub name: String,
    /// Who claimed it (unique per process).
    pub holder: String,
}

/// What one batch of [`Store::prune_events`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pruned {
    /// This many events were removed; there may be more.
    Some(u64),
    /// Nothing older than the limit is left in the account's log.
    Done,
    /// The lease was lost (it expired and another instance took the job): nothing removed.
    LeaseLost,
}

/// The tables [`Store::analyze_busy_tables`] keeps analyzed on PostgreSQL, in the order it
/// analyzes them.
pub const BUSY_TABLES: [&str; 5] = ["contact_labels", "contacts", "events", "messages", "outbox"];

impl Store {
    /// Claims scheduled job `name` for `holder` when it is due at `now` and nobody holds it
    /// (or the lease expired), under a lease of `lease_ms`. At most one claimant wins, across
    /// instances.
    pub async fn claim_job(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<JobLease>> {
        // A read first: most polls find the job not due, and need not take the write lock.
        let due = sqlx::query(
            "SELECT 1 FROM scheduled_jobs WHERE name = $1 AND next_run_at <= $2 \
             AND (lease_until IS NULL OR lease_until < $2)",
        )
        .bind(name)
        .bind(now)
        .fetch_optional(&self.read)
        .await?;
        if due.is_none() {
            return Ok(None);
        }
        // The conditions again: PostgreSQL re-checks them on a row another instance updated
        // meanwhile, so only one claim matches.
        let won = sqlx::query(
            "UPDATE scheduled_jobs SET holder = $1, lease_until = $2 WHERE name = $3 \
             AND next_run_at <= $4 AND (lease_until IS NULL OR lease_until < $4)",
        )
        .bind(holder)
        .bind(now + lease_ms)
        .bind(name)
        .bind(now)
        .execute(&self.write)
        .await?
        .rows_affected();
        Ok((won == 1).then(|| JobLease {
            name: name.to_owned(),
            holder: holder.to_owned(),
        }))
    }

    /// Ends a run: the job is due again at `next_run_at`. False when the lease was lost.
    pub async fn finish_job(&self, lease: &JobLease, next_run_at: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE scheduled_jobs SET next_run_at = $1, holder = NULL, lease_until = NULL \
             WHERE name = $2 AND holder = $3",
        )
        .bind(next_run_at)
        .bind(&lease.name)
        .bind(&lease.holder)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every account's id.
    pub async fn account_ids(&self) -> Result<Vec<AccountId>> {
        let rows = sqlx::query("SELECT id FROM accounts ORDER BY id")
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| r.try_get("id").map_err(Into::into))
            .collect()
    }

    /// Removes up to `batch` of the oldest events of `account` created before `before`, with
    /// their webhook deliveries (except one being attempted now; a later run removes it), in
    /// one transaction that also extends `lease` to `lease_until`, and only while it is held.
    pub async fn prune_events(
        &self,
        account: AccountId,
        before: i64,
        batch: i64,
        lease: &JobLease,
        now: i64,
        lease_until: i64,
    ) -> Result<Pruned> {
        let oldest = sqlx::query(
            "SELECT seq, created_at FROM events WHERE account_id = $1 ORDER BY seq LIMIT $2",
        )
        .bind(account)
        .bind(batch)
        .fetch_all(&self.read)
        .await?;
        // The log is in commit order, so by time too (to the millisecond): the run of old
        // events at its start.
        let mut through = None;
        for row in &oldest {
            if row.try_get::<i64, _>("created_at")? >= before {
                break;
            }
            through = Some(row.try_get::<i64, _>("seq")?);
        }
        let Some(through) = through else {
            return Ok(Pruned::Done);
        };
        let mut tx = self.write.begin().await?;
        let held = sqlx::query(
            "UPDATE scheduled_jobs SET lease_until = $1 WHERE name = $2 AND holder = $3",
        )
        .bind(lease_until)
        .bind(&lease.name)
        .bind(&lease.holder)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if held != 1 {
            return Ok(Pruned::LeaseLost);
        }
        sqlx::query(
            "DELETE FROM webhook_deliveries WHERE webhook_id IN (SELECT id FROM webhooks WHERE account_id = $1) \
             AND event_seq <= $2 AND (lease_until IS NULL OR lease_until < $3)",
        )
        .bind(account)
        .bind(through)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let removed = sqlx::query("DELETE FROM events WHERE account_id = $1 AND seq <= $2")
            .bind(account)
            .bind(through)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "UPDATE accounts SET events_pruned_seq = $1 WHERE id = $2 AND events_pruned_seq < $1",
        )
        .bind(through)
        .bind(account)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Pruned::Some(removed))
    }

    /// The last cursor of `account` that retention removed (0 when none was): reading after
    /// an older cursor would miss events.
    pub async fn events_pruned_through(&self, account: AccountId) -> Result<i64> {
        let seq: Option<i64> =
            sqlx::query_scalar("SELECT events_pruned_seq FROM accounts WHERE id = $1")
                .bind(account)
                .fetch_optional(&self.read)
                .await?;
        Ok(seq.unwrap_or(0))
    }
}

impl Store {
    /// On PostgreSQL, vacuums the outbox when it holds more than `dead` rows deleted and not
    /// yet vacuumed (by the statistics, which lag about a second); `true` when it did. SQLite
    /// frees a deleted row's index entries at once and has nothing to do.
    ///
    /// The outbox is a queue: every send inserts a row and deletes it soon after. PostgreSQL
    /// keeps a deleted row's index entries until a vacuum, and each dispatcher read of the
    /// session's next jobs walked them all from the front of the index: after a million sends
    /// with autovacuum off, 3,471 index pages and 11.5 ms a read, a third of the database's
    /// time. Autovacuum, where it is on, looks at most once a minute, and a busy gateway
    /// deletes hundreds of thousands of rows a minute. `SKIP_LOCKED`: when another instance
    /// (or autovacuum) is vacuuming it, this one does not wait.
    pub async fn vacuum_outbox(&self, dead: i64) -> Result<bool> {
        if self.backend == crate::Backend::Sqlite {
            return Ok(false);
        }
        let pending: Option<i64> = sqlx::query_scalar(
            "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'outbox'::regclass",
        )
        .fetch_optional(&self.read)
        .await?;
        if pending.is_none_or(|n| n <= dead) {
            return Ok(false);
        }
        // No truncation of the table's empty tail: that takes an exclusive lock that sends
        // would queue behind.
        self.maintain("VACUUM (SKIP_LOCKED, TRUNCATE false) outbox")
            .await?;
        Ok(true)
    }

    /// On PostgreSQL, analyzes the tables whose plans depend on their size ([`BUSY_TABLES`]:
    /// the send path's, and the contacts list's) whose statistics are missing while they
    /// hold at least `min_rows` rows (live or dead), or stale: changed by at least `min_rows`
    /// rows and a fifth of the table since the last analysis, itself more than a minute ago.
    /// Returns the tables analyzed. SQLite has nothing to do: its planner needs no statistics
    /// to use these tables' indexes.
    ///
    /// Without statistics PostgreSQL takes a table for a few pages and plans for that: the
    /// dispatcher's read of a session's next jobs became a scan of the session's whole outbox
    /// and a sort (129 ms at 73,000 queued jobs, 0.6 ms once analyzed), its read of a
    /// batch's messages a scan of all the session's messages, and a page of a million
    /// contacts filtered by opt-in a scan of the session's contacts and a sort (950 ms, 0.6 ms
    /// once analyzed). Autovacuum, where it is on, first looks a minute after the rows
    /// arrive; where it is off, never.
    pub async fn analyze_busy_tables(&self, min_rows: i64) -> Result<Vec<&'static str>> {
        if self.backend == crate::Backend::Sqlite {
            return Ok(Vec::new());
        }
        let names = BUSY_TABLES.map(|t| format!("'{t}'")).join(", ");
        let sql = format!(
            "SELECT relname::text FROM pg_stat_user_tables \
             WHERE relname IN ({names}) \
             AND schemaname = current_schema() \
             AND ((COALESCE(last_analyze, last_autoanalyze) IS NULL \
                   AND n_live_tup + n_dead_tup >= $1) \
               OR (n_mod_since_analyze >= GREATEST($1, n_live_tup / 5) \
                   AND GREATEST(last_analyze, last_autoanalyze) < now() - interval '60 seconds')) \
             ORDER BY relname"
        );
        let stale: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(min_rows)
            .fetch_all(&self.read)
            .await?;
        let mut done = Vec::with_capacity(stale.len());
        for table in BUSY_TABLES {
            if stale.iter().any(|t| t == table) {
                self.maintain(&format!("ANALYZE {table}")).await?;
                done.push(table);
            }
        }
        Ok(done)
    }

    /// Runs a maintenance statement (a vacuum, an analysis) on a connection of its own, with
    /// statement logging off: on a busy table one takes a second or two, which the pool's
    /// connections would log as a slow statement every few seconds. The simple protocol:
    /// VACUUM cannot run inside the implicit transaction of a prepared statement's round.
    async fn maintain(&self, statement: &str) -> Result<()> {
        use sqlx::{ConnectOptions, Connection};
        let options = (*self.write.0.connect_options())
            .clone()
            .disable_statement_logging();
        let mut conn = sqlx::AnyConnection::connect_with(&options).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned()))
            .execute(&mut conn)
            .await?;
        conn.close().await.ok();
        Ok(())
    }
}
