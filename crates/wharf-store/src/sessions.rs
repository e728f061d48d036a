//! Sessions: one WhatsApp number on one engine. Every mutation locks the row, applies a
//! change decided by the caller, and appends the change's events in the same transaction.

use serde::Deserialize;
use sqlx::{AnyConnection, FromRow, any::AnyRow};
use wharf_core::{
    AccountId, EngineKind, Event, KeyKind, NewToken, OperationId, Phone, SessionId,
    SessionSettings, SessionStatus, time::now_millis,
};

use crate::{
    Backend, NewKey, Result, Store, StoreError,
    events::{append_event, append_events},
    keys::{insert_key, revoke_session_keys},
    operations::{OperationRow, insert_operation},
};

/// A stored session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub id: SessionId,
    pub account_id: AccountId,
    pub engine: EngineKind,
    pub status: SessionStatus,
    /// Why the session is in its status, when the engine said (e.g. a disconnect reason).
    pub status_reason: Option<String>,
    pub label: Option<String>,
    pub phone_number: Option<Phone>,
    /// Whether a device link exists.
    pub paired: bool,
    pub settings: SessionSettings,
    /// The instance running the session, while it runs.
    pub worker_id: Option<String>,
    /// The current pairing code, while pairing.
    pub qr_code: Option<String>,
    pub key_fingerprint: Option<String>,
    pub last_activity_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, account_id, engine, status, status_reason, label, phone_number, paired, settings, \
     worker_id, qr_code, key_fingerprint, last_activity_at, created_at, updated_at";

/// A session as stored, before its columns are parsed. Read from rows, and from the JSON
/// objects the list query aggregates its page into.
#[derive(Debug, sqlx::FromRow, Deserialize)]
struct RawSession {
    id: String,
    account_id: String,
    engine: String,
    status: String,
    status_reason: Option<String>,
    label: Option<String>,
    phone_number: Option<String>,
    paired: i64,
    settings: String,
    worker_id: Option<String>,
    qr_code: Option<String>,
    key_fingerprint: Option<String>,
    last_activity_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<RawSession> for SessionRow {
    type Error = StoreError;

    fn try_from(raw: RawSession) -> Result<Self> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("session {} {what}", raw.id));
        Ok(Self {
            id: raw.id.parse().map_err(|_| corrupt("id"))?,
            account_id: raw.account_id.parse().map_err(|_| corrupt("account_id"))?,
            engine: EngineKind::parse(&raw.engine).ok_or_else(|| corrupt("engine"))?,
            status: SessionStatus::parse(&raw.status).ok_or_else(|| corrupt("status"))?,
            phone_number: raw
                .phone_number
                .as_deref()
                .map(|p| Phone::parse(p).map_err(|_| corrupt("phone_number")))
                .transpose()?,
            paired: raw.paired != 0,
            settings: serde_json::from_str(&raw.settings).map_err(|_| corrupt("settings"))?,
            status_reason: raw.status_reason,
            label: raw.label,
            worker_id: raw.worker_id,
            qr_code: raw.qr_code,
            key_fingerprint: raw.key_fingerprint,
            last_activity_at: raw.last_activity_at,
            created_at: raw.created_at,
            updated_at: raw.updated_at,
        })
    }
}

impl SessionRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        RawSession::from_row(row)?.try_into()
    }
}

/// `json_object('id', id, …)` over every column, for aggregating a page into one value.
fn json_columns() -> String {
    COLUMNS
        .split(", ")
        .map(|c| format!("'{c}', {c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a new session starts with.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub account_id: AccountId,
    pub engine: EngineKind,
    pub label: Option<String>,
    pub phone_number: Option<Phone>,
    pub settings: SessionSettings,
}

/// Which sessions to list.
#[derive(Debug, Clone)]
pub struct SessionFilter {
    pub account_id: AccountId,
    /// Only this status; `None` means every status but `deleted`.
    pub status: Option<SessionStatus>,
    /// Only this session (a session key sees only its own).
    pub only: Option<SessionId>,
    /// Only sessions older than this one (the cursor).
    pub before: Option<SessionId>,
    pub limit: i64,
}

impl Store {
    /// Creates a session and its session key atomically; returns the raw key once.
    pub async fn create_session(&self, new: NewSession) -> Result<(SessionRow, NewToken)> {
        self.create_session_with(new, None).await
    }

    /// As [`Store::create_session`], with the session's cloud settings in the same
    /// transaction (a phone number id already in use is [`StoreError::Conflict`]).
    pub async fn create_session_with(
        &self,
        new: NewSession,
        cloud: Option<&crate::CloudCredentials>,
    ) -> Result<(SessionRow, NewToken)> {
        let now = now_millis();
        let token = NewToken::generate(KeyKind::Session);
        let row = SessionRow {
            id: SessionId::generate(),
            account_id: new.account_id,
            engine: new.engine,
            status: SessionStatus::Disconnected,
            status_reason: None,
            label: new.label,
            phone_number: new.phone_number,
            paired: false,
            settings: new.settings,
            worker_id: None,
            qr_code: None,
            key_fingerprint: Some(token.fingerprint.clone()),
            last_activity_at: None,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.write.begin().await?;
        let sql = format!(
            "INSERT INTO sessions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        );
        bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &row)
            .execute(&mut *tx)
            .await?;
        let key = NewKey {
            account_id: row.account_id,
            kind: KeyKind::Session,
            session_id: Some(row.id),
            label: None,
        };
        insert_key(&mut tx, &key, &token).await?;
        if let Some(cloud) = cloud {
            crate::cloud::insert_cloud(&mut tx, row.id, row.account_id, cloud, now).await?;
        }
        tx.commit().await?;
        Ok((row, token))
    }

    /// For the send path only: the session `id` of `account` and the auth epoch it was read
    /// at, from memory when cached at `epoch`, else read again (the answer's epoch may then
    /// differ from `epoch`: the caller must not combine the two).
    pub async fn session_for_send(
        &self,
        account: AccountId,
        id: SessionId,
        epoch: i64,
    ) -> Result<Option<(SessionRow, i64)>> {
        if let Some(hit) = self.auth.session(account, id)
            && hit.1 == epoch
        {
            return Ok(Some(hit));
        }
        let sql = format!(
            "SELECT {COLUMNS}, {} AS auth_epoch FROM sessions WHERE id = $1 AND account_id = $2",
            crate::authcache::EPOCH
        );
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(account)
            .fetch_optional(&self.read)
            .await?
        else {
            return Ok(None);
        };
        let session = SessionRow::from_row(&row)?;
        let now: i64 = sqlx::Row::try_get(&row, "auth_epoch")?;
        self.auth.put_session(session.clone(), now);
        Ok(Some((session, now)))
    }

    /// The session `id` of `account`; another account's session is `None`.
    pub async fn get_session(
        &self,
        account: AccountId,
        id: SessionId,
    ) -> Result<Option<SessionRow>> {
        let sql = format!("SELECT {COLUMNS} FROM sessions WHERE id = $1 AND account_id = $2");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(account)
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(SessionRow::from_row)
            .transpose()
    }

    /// Sessions matching `filter`, newest first; at most `limit + 1` so callers can tell
    /// whether another page exists.
    pub async fn list_sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionRow>> {
        // The page comes back as one JSON array: SQLite's driver hands rows from its worker
        // thread one at a time, and a page of 50 single-row hand-offs cost more than the query
        // (docs/benchmarks.md). Only the aggregate function differs between the backends.
        // Every optional condition is written so that NULL disables it.
        let aggregate = match self.backend {
            Backend::Sqlite => format!("json_group_array(json_object({}))", json_columns()),
            Backend::Postgres => format!(
                "COALESCE(json_agg(json_build_object({})), '[]')::text",
                json_columns()
            ),
        };
        let sql = format!(
            "SELECT {aggregate} FROM (SELECT {COLUMNS} FROM sessions WHERE account_id = $1 \
             AND (($2 IS NULL AND status <> 'deleted') OR status = $2) \
             AND ($3 IS NULL OR id = $3) AND ($4 IS NULL OR id < $4) \
             ORDER BY id DESC LIMIT $5) page"
        );
        let json: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(filter.account_id)
            .bind(filter.status.map(|s| s.as_str().to_owned()))
            .bind(filter.only)
            .bind(filter.before)
            .bind(filter.limit + 1)
            .fetch_one(&self.read)
            .await?;
        let raw: Vec<RawSession> = serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("session page: {e}")))?;
        let mut rows = raw
            .into_iter()
            .map(SessionRow::try_from)
            .collect::<Result<Vec<_>>>()?;
        // Aggregates promise no order; the page's order is restored here.
        rows.sort_by_key(|row| std::cmp::Reverse(row.id));
        Ok(rows)
    }

    /// Internal, across accounts: the session `id`, whatever its account. For engine
    /// callbacks, workers and the operator's CLI only; a request's path reads sessions with
    /// [`Store::get_session`], which takes the caller's account.
    pub async fn find_session_any_account(&self, id: SessionId) -> Result<Option<SessionRow>> {
        let sql = format!("SELECT {COLUMNS} FROM sessions WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(SessionRow::from_row)
            .transpose()
    }

    /// Sessions of every account whose engine should be running, for resuming after a start.
    pub async fn running_sessions(&self) -> Result<Vec<SessionRow>> {
        self.running_sessions_on(&self.read).await
    }

    /// [`Store::running_sessions`], read on the writer's connection: it sees every commit
    /// made before the call (the session lease worker decides on it which engines to stop).
    pub async fn running_sessions_now(&self) -> Result<Vec<SessionRow>> {
        self.running_sessions_on(&self.write).await
    }

    async fn running_sessions_on(&self, pool: &crate::Pool) -> Result<Vec<SessionRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM sessions WHERE status IN ('pending', 'connecting', 'connected') ORDER BY id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await?
            .iter()
            .map(SessionRow::from_row)
            .collect()
    }

    /// Locks the session, lets `change` edit it and name the events it causes, then writes
    /// the row and the events in one transaction. `change` returning an error rolls back.
    /// `None` when the session does not exist (in `account`, when given).
    pub async fn modify_session<E: From<StoreError>>(
        &self,
        account: Option<AccountId>,
        id: SessionId,
        change: impl FnOnce(&mut SessionRow) -> std::result::Result<Vec<Event>, E>,
    ) -> std::result::Result<Option<SessionRow>, E> {
        let mut tx = self.write.begin().await.map_err(StoreError::from)?;
        let Some(mut row) = self.lock_session(&mut tx, account, id).await? else {
            return Ok(None);
        };
        let events = change(&mut row)?;
        row.updated_at = now_millis();
        write_session(&mut tx, &row).await?;
        append_events(&mut tx, &events).await?;
        tx.commit().await.map_err(StoreError::from)?;
        if !events.is_empty() {
            self.events_appended();
        }
        Ok(Some(row))
    }

    /// Marks a session for deletion, revokes its keys at once and queues the deletion
    /// operation, atomically. `check` may refuse (e.g. when already deleting).
    pub async fn begin_session_deletion<E: From<StoreError>>(
        &self,
        account: AccountId,
        id: SessionId,
        check: impl FnOnce(&SessionRow) -> std::result::Result<Event, E>,
    ) -> std::result::Result<Option<(SessionRow, OperationRow)>, E> {
        let mut tx = self.write.begin().await.map_err(StoreError::from)?;
        let Some(mut row) = self.lock_session(&mut tx, Some(account), id).await? else {
            return Ok(None);
        };
        let event = check(&row)?;
        row.status = SessionStatus::PendingDeletion;
        row.status_reason = None;
        row.updated_at = now_millis();
        row.key_fingerprint = None;
        write_session(&mut tx, &row).await?;
        revoke_session_keys(&mut tx, id).await?;
        let op = insert_operation(
            &mut tx,
            account,
            id,
            OperationId::generate(),
            "delete_session",
        )
        .await?;
        append_event(&mut tx, &event).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.events_appended();
        Ok(Some((row, op)))
    }

    /// Replaces the session's key: the old one is revoked at once. Returns the session, the
    /// new raw key and the previous fingerprint. `check` may refuse.
    pub async fn regenerate_session_key<E: From<StoreError>>(
        &self,
        account: AccountId,
        id: SessionId,
        check: impl FnOnce(&SessionRow) -> std::result::Result<(), E>,
    ) -> std::result::Result<Option<(SessionRow, NewToken, Option<String>)>, E> {
        let mut tx = self.write.begin().await.map_err(StoreError::from)?;
        let Some(mut row) = self.lock_session(&mut tx, Some(account), id).await? else {
            return Ok(None);
        };
        check(&row)?;
        let previous = row.key_fingerprint.take();
        revoke_session_keys(&mut tx, id).await?;
        let token = NewToken::generate(KeyKind::Session);
        let key = NewKey {
            account_id: account,
            kind: KeyKind::Session,
            session_id: Some(id),
            label: None,
        };
        insert_key(&mut tx, &key, &token).await?;
        row.key_fingerprint = Some(token.fingerprint.clone());
        row.updated_at = now_millis();
        write_session(&mut tx, &row).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(Some((row, token, previous)))
    }

    async fn lock_session(
        &self,
        conn: &mut AnyConnection,
        account: Option<AccountId>,
        id: SessionId,
    ) -> Result<Option<SessionRow>> {
        // SQLite has one writer connection, so the transaction already excludes others;
        // PostgreSQL needs the row lock.
        let lock = match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM sessions WHERE id = $1 AND ($2 IS NULL OR account_id = $2){lock}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(account)
            .fetch_optional(conn)
            .await?
            .as_ref()
            .map(SessionRow::from_row)
            .transpose()
    }
}

fn bind_all<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    row: &SessionRow,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    query
        .bind(row.id)
        .bind(row.account_id)
        .bind(row.engine.as_str())
        .bind(row.status.as_str())
        .bind(crate::plain(&row.status_reason))
        .bind(row.label.clone())
        .bind(row.phone_number.as_ref().map(|p| p.e164().to_owned()))
        .bind(i64::from(row.paired))
        .bind(serde_json::to_string(&row.settings).unwrap_or_default())
        .bind(row.worker_id.clone())
        .bind(row.qr_code.clone())
        .bind(row.key_fingerprint.clone())
        .bind(row.last_activity_at)
        .bind(row.created_at)
        .bind(row.updated_at)
}

async fn write_session(conn: &mut AnyConnection, row: &SessionRow) -> Result<()> {
    // Same bind order as COLUMNS; id and account_id are matched, created_at is unchanged.
    let sql = "UPDATE sessions SET engine = $3, status = $4, status_reason = $5, label = $6, \
               phone_number = $7, paired = $8, settings = $9, worker_id = $10, qr_code = $11, \
               key_fingerprint = $12, last_activity_at = $13, created_at = $14, updated_at = $15 \
               WHERE id = $1 AND account_id = $2";
    bind_all(sqlx::query(sql), row).execute(conn).await?;
    Ok(())
}
