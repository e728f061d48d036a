//! Counter changes of a broadcast made without its row lock, and their folding.
//!
//! The transactions that move a broadcast's recipients without owning the broadcast (the
//! outcomes and receipts of its messages and, on PostgreSQL, additions to a draft) append a
//! row to `broadcast_tallies` instead of updating the broadcast: on PostgreSQL that update
//! held the broadcast's row lock through each commit's WAL flush, so every such transaction of
//! one broadcast queued behind the others. Whoever locks the broadcast ([`super::lock_broadcast`],
//! the worker's batches) folds the tallies into the row in its own transaction, and reads
//! ([`read_from`]) add those not folded yet, in the same statement, so one snapshot sees
//! each change exactly once.

use sqlx::{AnyConnection, Row};
use wharf_core::{BroadcastId, time::now_millis};

use crate::Result;

// Recipient statuses, in the order of `Deltas`' slots and the counter columns.
pub(super) use super::RECIPIENT_STATUSES as STATUSES;

/// Counter deltas of one broadcast: recipients by status, recipients added, and the highest
/// position an addition used.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Deltas {
    pub by_status: [i64; 7],
    pub recipients: i64,
    pub last_seq: i64,
}

impl Deltas {
    pub fn slot(&mut self, status: &str) -> &mut i64 {
        let i = STATUSES.iter().position(|s| *s == status).unwrap_or(0);
        &mut self.by_status[i]
    }

    /// One recipient moved from status `from` to `to`.
    pub fn moved(&mut self, from: &str, to: &str) {
        *self.slot(from) -= 1;
        *self.slot(to) += 1;
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn add(&mut self, other: &Self) {
        for (a, b) in self.by_status.iter_mut().zip(other.by_status) {
            *a += b;
        }
        self.recipients += other.recipients;
        self.last_seq = self.last_seq.max(other.last_seq);
    }
}

const TALLY_COLUMNS: &str = "recipients, last_seq, n_pending, n_sent, n_delivered, n_read, \
     n_failed, n_skipped, n_cancelled";

/// Appends `d` for broadcast `id` inside the caller's transaction.
pub(super) async fn append(conn: &mut AnyConnection, id: BroadcastId, d: &Deltas) -> Result<()> {
    if d.is_empty() {
        return Ok(());
    }
    let mut q = sqlx::query(
        "INSERT INTO broadcast_tallies (broadcast_id, recipients, last_seq, n_pending, n_sent, \
         n_delivered, n_read, n_failed, n_skipped, n_cancelled) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id)
    .bind(d.recipients)
    .bind(d.last_seq);
    for n in d.by_status {
        q = q.bind(n);
    }
    q.execute(conn).await?;
    Ok(())
}

/// Folds broadcast `id`'s tallies into its row, inside the caller's transaction, which holds
/// the broadcast's row lock (or is SQLite's one writer). `next_seq` is the row's as locked.
/// Returns what was folded.
pub(super) async fn fold(
    conn: &mut AnyConnection,
    id: BroadcastId,
    next_seq: i64,
) -> Result<Deltas> {
    // One statement takes the rows it folds: a tally committed meanwhile stays for the next.
    let sql =
        format!("DELETE FROM broadcast_tallies WHERE broadcast_id = $1 RETURNING {TALLY_COLUMNS}");
    let mut sum = Deltas::default();
    for row in sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_all(&mut *conn)
        .await?
    {
        let mut d = Deltas {
            recipients: row.try_get("recipients")?,
            last_seq: row.try_get("last_seq")?,
            ..Deltas::default()
        };
        for (i, status) in STATUSES.iter().enumerate() {
            d.by_status[i] = row.try_get(format!("n_{status}").as_str())?;
        }
        sum.add(&d);
    }
    if sum.is_empty() {
        return Ok(sum);
    }
    let mut q = sqlx::query(
        "UPDATE broadcasts SET recipient_count = recipient_count + $1, next_seq = $2, \
         n_pending = n_pending + $3, n_sent = n_sent + $4, n_delivered = n_delivered + $5, \
         n_read = n_read + $6, n_failed = n_failed + $7, n_skipped = n_skipped + $8, \
         n_cancelled = n_cancelled + $9, updated_at = $10 WHERE id = $11",
    )
    .bind(sum.recipients)
    .bind(next_seq.max(sum.last_seq));
    for n in sum.by_status {
        q = q.bind(n);
    }
    q.bind(now_millis()).bind(id).execute(conn).await?;
    Ok(sum)
}

/// Applies folded deltas to a row read before the fold.
pub(super) fn apply(b: &mut super::BroadcastRow, d: &Deltas) {
    b.recipient_count += d.recipients;
    b.next_seq = b.next_seq.max(d.last_seq);
    b.n_pending += d.by_status[0];
    b.n_sent += d.by_status[1];
    b.n_delivered += d.by_status[2];
    b.n_read += d.by_status[3];
    b.n_failed += d.by_status[4];
    b.n_skipped += d.by_status[5];
    b.n_cancelled += d.by_status[6];
}

/// `SELECT … FROM …` of broadcasts (aliased `b`) with their tallies not folded yet added to
/// the counters: one statement, so one snapshot sees each change once, either in the row or
/// in its tally. Conditions follow (`WHERE b.…`).
pub(super) fn read_from() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let mut columns: Vec<String> = super::COLUMNS
            .split(',')
            .map(|c| {
                let c = c.trim();
                match c {
                    "recipient_count" => {
                        "b.recipient_count + COALESCE(t.recipients, 0) AS recipient_count".into()
                    }
                    "next_seq" => "CASE WHEN t.last_seq > b.next_seq THEN t.last_seq \
                                   ELSE b.next_seq END AS next_seq"
                        .into(),
                    c if c.starts_with("n_") => format!("b.{c} + COALESCE(t.{c}, 0) AS {c}"),
                    c => format!("b.{c}"),
                }
            })
            .collect();
        columns.dedup();
        let sums: Vec<String> = TALLY_COLUMNS
            .split(',')
            .map(|c| {
                let c = c.trim();
                let f = if c == "last_seq" { "MAX" } else { "SUM" };
                format!("CAST({f}({c}) AS BIGINT) AS {c}")
            })
            .collect();
        format!(
            "SELECT {} FROM broadcasts b LEFT JOIN (SELECT broadcast_id, {} FROM broadcast_tallies \
             GROUP BY broadcast_id) t ON t.broadcast_id = b.id",
            columns.join(", "),
            sums.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_telescope_and_add() {
        let mut d = Deltas::default();
        assert!(d.is_empty());
        d.moved("pending", "sent");
        d.moved("sent", "read");
        assert_eq!(d.by_status, [-1, 0, 0, 1, 0, 0, 0]);
        let mut e = Deltas {
            recipients: 3,
            last_seq: 9,
            ..Deltas::default()
        };
        *e.slot("pending") += 3;
        e.add(&d);
        assert_eq!(e.by_status, [2, 0, 0, 1, 0, 0, 0]);
        assert_eq!((e.recipients, e.last_seq), (3, 9));
        assert!(!e.is_empty());
    }

    #[test]
    fn the_read_adds_every_counter_once() {
        let sql = read_from();
        for c in STATUSES {
            assert!(
                sql.contains(&format!("b.n_{c} + COALESCE(t.n_{c}, 0) AS n_{c}")),
                "{c}"
            );
        }
        assert!(sql.contains("COALESCE(t.recipients, 0) AS recipient_count"));
        assert!(sql.contains("AS next_seq"));
        assert!(sql.contains("b.progress_at"));
        assert_eq!(sql.matches(" AS n_pending").count(), 2);
    }
}
