//! Per-account API rate limits shared by the instances on one database: a GCRA whose state
//! (the theoretical arrival time) is one row per account. An instance takes tokens in chunks
//! and spends them locally, so the database is asked once per chunk, not once per request.
//!
//! Times are the instances' clocks in nanoseconds, like the leases' (kept in step by NTP).

use sqlx::Row;
use wharf_core::AccountId;

use crate::{Backend, Result, Store};

/// What the shared allowance gave: `granted` tokens (0 when it is empty), and the account's
/// theoretical arrival time after the grant, from which the caller derives what is left and
/// when the next token comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub granted: i64,
    pub tat_ns: i64,
}

/// A rate: one token every `interval_ns`, at most `burst` tokens at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub interval_ns: i64,
    pub burst: i64,
}

impl Rate {
    /// `per_minute` tokens a minute, bursts up to `per_minute`.
    pub fn per_minute(per_minute: u32) -> Self {
        let per_minute = i64::from(per_minute.max(1));
        Self {
            interval_ns: (60_000_000_000 / per_minute).max(1),
            burst: per_minute,
        }
    }

    /// Tokens available at `now_ns` for an account whose arrival time is `tat_ns`.
    pub fn available(&self, tat_ns: i64, now_ns: i64) -> i64 {
        let base = tat_ns.max(now_ns);
        ((now_ns + self.burst * self.interval_ns - base) / self.interval_ns).clamp(0, self.burst)
    }

    /// Nanoseconds from `now_ns` until one token is available again.
    pub fn wait_ns(&self, tat_ns: i64, now_ns: i64) -> i64 {
        let base = tat_ns.max(now_ns);
        (base + self.interval_ns - now_ns - self.burst * self.interval_ns).max(0)
    }

    /// Nanoseconds from `now_ns` until the allowance is full again.
    pub fn full_in_ns(&self, tat_ns: i64, now_ns: i64) -> i64 {
        (tat_ns - now_ns).max(0)
    }
}

impl Store {
    /// Takes up to `want` tokens (at least 1) of `account`'s shared allowance at `now_ns`: as
    /// many as are available, none when it is empty. One atomic statement, so instances taking
    /// at the same moment never share a token.
    pub async fn take_allowance(
        &self,
        account: AccountId,
        want: i64,
        rate: Rate,
        now_ns: i64,
    ) -> Result<Grant> {
        let want = want.clamp(1, rate.burst);
        let tau = rate.burst * rate.interval_ns;
        // The expressions read the row as it was before this statement (the old `tat_ns`).
        let (greatest, least) = match self.backend() {
            Backend::Postgres => ("GREATEST", "LEAST"),
            Backend::Sqlite => ("MAX", "MIN"),
        };
        let n = format!(
            "{greatest}(0, {least}($3, ($2 + $5 - {greatest}(rate_allowances.tat_ns, $2)) / $4))"
        );
        let sql = format!(
            "INSERT INTO rate_allowances (account_id, tat_ns, granted) VALUES ($1, $2 + $3 * $4, $3) \
             ON CONFLICT (account_id) DO UPDATE SET granted = {n}, \
             tat_ns = {greatest}(rate_allowances.tat_ns, $2) + {n} * $4 \
             RETURNING tat_ns, granted"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account)
            .bind(now_ns)
            .bind(want)
            .bind(rate.interval_ns)
            .bind(tau)
            .fetch_one(&self.write)
            .await?;
        Ok(Grant {
            granted: row.try_get("granted")?,
            tat_ns: row.try_get("tat_ns")?,
        })
    }

    /// Gives one token back to `account`'s shared allowance at `now_ns` (a call another
    /// instance answered and counted): its arrival time moves back one interval, never before
    /// `now_ns` (an allowance is never fuller than full).
    pub async fn give_back_allowance(
        &self,
        account: AccountId,
        rate: Rate,
        now_ns: i64,
    ) -> Result<()> {
        let greatest = match self.backend() {
            Backend::Postgres => "GREATEST",
            Backend::Sqlite => "MAX",
        };
        let sql = format!(
            "UPDATE rate_allowances SET tat_ns = {greatest}(tat_ns - $2, $3) WHERE account_id = $1"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account)
            .bind(rate.interval_ns)
            .bind(now_ns)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Forgets the allowances that are full again at `now_ns` (a missing row is a full one).
    pub async fn prune_allowances(&self, now_ns: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM rate_allowances WHERE tat_ns < $1")
            .bind(now_ns)
            .execute(&self.write)
            .await?
            .rows_affected())
    }
}
