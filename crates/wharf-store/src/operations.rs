//! Long-running operations (session deletion), run by a worker under a lease so that a
//! crash mid-operation only delays it: the lease expires and another run picks it up.

use sqlx::{AnyConnection, Row, any::AnyRow};
use wharf_core::{AccountId, OperationId, OperationStatus, SessionId, time::now_millis};

use crate::{Backend, Result, Store, StoreError};

/// A stored operation.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationRow {
    pub id: OperationId,
    pub account_id: AccountId,
    pub session_id: SessionId,
    pub kind: String,
    pub status: OperationStatus,
    pub result: Option<String>,
    pub error: Option<String>,
    pub attempts: i64,
    pub enqueued_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

const COLUMNS: &str = "id, account_id, session_id, kind, status, result, error, attempts, enqueued_at, started_at, finished_at";

impl OperationRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("operation {what}"));
        let id: String = row.try_get("id")?;
        let account: String = row.try_get("account_id")?;
        let session: String = row.try_get("session_id")?;
        let status: String = row.try_get("status")?;
        Ok(Self {
            id: id.parse().map_err(|_| corrupt("id"))?,
            account_id: account.parse().map_err(|_| corrupt("account_id"))?,
            session_id: session.parse().map_err(|_| corrupt("session_id"))?,
            kind: row.try_get("kind")?,
            status: OperationStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
            result: row.try_get("result")?,
            error: row.try_get("error")?,
            attempts: row.try_get("attempts")?,
            enqueued_at: row.try_get("enqueued_at")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
        })
    }
}

/// Queues an operation inside the caller's transaction.
pub(crate) async fn insert_operation(
    conn: &mut AnyConnection,
    account: AccountId,
    session: SessionId,
    id: OperationId,
    kind: &str,
) -> Result<OperationRow> {
    let now = now_millis();
    sqlx::query(
        "INSERT INTO operations (id, account_id, session_id, kind, status, attempts, enqueued_at) \
         VALUES ($1, $2, $3, $4, 'queued', 0, $5)",
    )
    .bind(id)
    .bind(account)
    .bind(session)
    .bind(kind)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(OperationRow {
        id,
        account_id: account,
        session_id: session,
        kind: kind.to_owned(),
        status: OperationStatus::Queued,
        result: None,
        error: None,
        attempts: 0,
        enqueued_at: now,
        started_at: None,
        finished_at: None,
    })
}

impl Store {
    /// The operation `id` of `account`.
    pub async fn get_operation(
        &self,
        account: AccountId,
        id: OperationId,
    ) -> Result<Option<OperationRow>> {
        let sql = format!("SELECT {COLUMNS} FROM operations WHERE id = $1 AND account_id = $2");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(account)
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(OperationRow::from_row)
            .transpose()
    }

    /// Claims the oldest operation that is queued, or running under a lease expired at `now`
    /// (the server's clock), and marks it running under a lease of `lease_ms`.
    pub async fn claim_operation(&self, now: i64, lease_ms: i64) -> Result<Option<OperationRow>> {
        // The status re-check in the outer WHERE makes a concurrent claim of the same row
        // (another instance on PostgreSQL) update nothing instead of running it twice.
        // On PostgreSQL, instances skip rows another one is claiming instead of waiting.
        let skip_locked = match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE operations SET status = 'running', lease_until = $1, attempts = attempts + 1, \
             started_at = COALESCE(started_at, $2) \
             WHERE id = (SELECT id FROM operations WHERE status = 'queued' \
                         OR (status = 'running' AND lease_until < $2) ORDER BY enqueued_at LIMIT 1{skip_locked}) \
             AND (status = 'queued' OR (status = 'running' AND lease_until < $2)) \
             RETURNING {COLUMNS}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now + lease_ms)
            .bind(now)
            .fetch_optional(&self.write)
            .await?
            .as_ref()
            .map(OperationRow::from_row)
            .transpose()
    }

    /// Whether `account`'s session has an operation that is queued or running.
    pub async fn has_open_operation(&self, account: AccountId, session: SessionId) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM operations WHERE session_id = $1 AND account_id = $2 \
             AND status IN ('queued', 'running')",
        )
        .bind(session)
        .bind(account)
        .fetch_one(&self.read)
        .await?;
        Ok(n > 0)
    }

    /// Records the end of a running operation.
    pub async fn finish_operation(
        &self,
        id: OperationId,
        status: OperationStatus,
        result: Option<&str>,
        error: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE operations SET status = $1, result = $2, error = $3, finished_at = $4, lease_until = NULL \
             WHERE id = $5",
        )
        .bind(status.as_str())
        .bind(result.map(str::to_owned))
        .bind(crate::plain(&error.map(str::to_owned)))
        .bind(now_millis())
        .bind(id)
        .execute(&self.write)
        .await?;
        Ok(())
    }
}
