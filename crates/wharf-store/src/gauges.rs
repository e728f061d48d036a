//! Instance-wide figures for the operator's `/metrics`: counts over whole tables, read at
//! scrape time (never on a request path of a tenant, so they take no account).

use sqlx::Row;

use crate::{Result, Store};

/// What `/metrics` reads from the database at each scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gauges {
    /// `(engine, status, count)` of sessions.
    pub sessions: Vec<(String, String, i64)>,
    /// `(engine, rows)` waiting in the outbox.
    pub outbox: Vec<(String, i64)>,
    /// `(status, count)` of webhook deliveries.
    pub deliveries: Vec<(String, i64)>,
    /// The highest event cursor of any account (0 when the log is empty).
    pub event_head: i64,
    /// `(webhook id, events of its account past the endpoint's fan-out cursor)`: how far
    /// each active endpoint trails the event log.
    pub webhook_lag: Vec<(String, i64)>,
    /// `(status, count)` of broadcasts.
    pub broadcasts: Vec<(String, i64)>,
    /// `(broadcast status, recipient status, count)`: the recipients of broadcasts, by the
    /// broadcast's status and their own (pending, sent, delivered, read, failed, skipped,
    /// cancelled; each recipient counted once, in its current status).
    pub broadcast_recipients: Vec<(String, &'static str, i64)>,
}

// The recipient statuses of `Gauges::broadcast_recipients`, as their counter columns.
use crate::broadcasts::RECIPIENT_STATUSES;

impl Store {
    /// Reads the [`Gauges`].
    pub async fn gauges(&self) -> Result<Gauges> {
        let mut out = Gauges::default();
        for row in sqlx::query(
            "SELECT engine, status, COUNT(*) AS n FROM sessions GROUP BY engine, status ORDER BY engine, status",
        )
        .fetch_all(&self.read)
        .await?
        {
            out.sessions
                .push((row.try_get("engine")?, row.try_get("status")?, row.try_get("n")?));
        }
        // On SQLite a send's job is its queued message (see `messages::sends_in_outbox`).
        let jobs = if crate::messages::sends_in_outbox(self.backend()) {
            "SELECT session_id FROM outbox"
        } else {
            "SELECT session_id FROM messages WHERE status = 'queued' \
             UNION ALL SELECT session_id FROM outbox"
        };
        let sql = format!(
            "SELECT s.engine AS engine, COUNT(*) AS n FROM ({jobs}) o \
             JOIN sessions s ON s.id = o.session_id GROUP BY s.engine ORDER BY s.engine"
        );
        for row in sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.read)
            .await?
        {
            out.outbox.push((row.try_get("engine")?, row.try_get("n")?));
        }
        for row in sqlx::query(
            "SELECT status, COUNT(*) AS n FROM webhook_deliveries GROUP BY status ORDER BY status",
        )
        .fetch_all(&self.read)
        .await?
        {
            out.deliveries
                .push((row.try_get("status")?, row.try_get("n")?));
        }
        // The accounts' own cursors (`event_seq`), not the events kept: retention removes
        // every event of an account idle for its whole span, and the head never goes back.
        let head: Option<i64> = sqlx::query("SELECT MAX(event_seq) AS head FROM accounts")
            .fetch_one(&self.read)
            .await?
            .try_get("head")?;
        out.event_head = head.unwrap_or(0);
        for row in sqlx::query(
            "SELECT w.id AS id, a.event_seq - w.event_cursor AS lag \
             FROM webhooks w JOIN accounts a ON a.id = w.account_id \
             WHERE w.is_active <> 0 ORDER BY w.id",
        )
        .fetch_all(&self.read)
        .await?
        {
            out.webhook_lag
                .push((row.try_get("id")?, row.try_get("lag")?));
        }
        // SUM of BIGINT is NUMERIC on PostgreSQL: cast back.
        let sums: Vec<String> = RECIPIENT_STATUSES
            .iter()
            .map(|s| format!("CAST(COALESCE(SUM(n_{s}), 0) AS BIGINT) AS n_{s}"))
            .collect();
        let sql = format!(
            "SELECT status, COUNT(*) AS n, {} FROM broadcasts GROUP BY status ORDER BY status",
            sums.join(", ")
        );
        for row in sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.read)
            .await?
        {
            let status: String = row.try_get("status")?;
            for s in RECIPIENT_STATUSES {
                let n: i64 = row.try_get(format!("n_{s}").as_str())?;
                out.broadcast_recipients.push((status.clone(), s, n));
            }
            out.broadcasts.push((status, row.try_get("n")?));
        }
        Ok(out)
    }
}
