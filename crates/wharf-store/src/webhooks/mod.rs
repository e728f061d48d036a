//! Webhook endpoints (this file) and their deliveries (`deliveries.rs`). A fan-out step turns
//! each endpoint's share of the event log (after its own cursor) into delivery rows; the
//! deliverer claims due rows under a lease and records every attempt. Both survive restarts:
//! the cursor, the rows and the leases are all in the database.

use sqlx::{AnyConnection, Row, any::AnyRow};
use wharf_core::{AccountId, AgentId, SessionId, WebhookId};

mod deliveries;

pub use deliveries::{AttemptResult, AttemptRow, DeliveryJob, DeliveryRow, DeliveryStatus};

use crate::{Result, Store, StoreError, events::EventRow};

/// A stored webhook endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookRow {
    pub id: WebhookId,
    pub account_id: AccountId,
    pub target_url: String,
    /// Event types delivered; empty means all.
    pub subscribed_events: Vec<String>,
    pub session_id: Option<SessionId>,
    /// Set on an agent's endpoint: it receives only sandbox traffic bound to that agent.
    pub agent_id: Option<AgentId>,
    pub is_active: bool,
    pub signing_secret: String,
    pub description: Option<String>,
    /// The last event seq already turned into deliveries.
    pub event_cursor: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// When the current run of failed attempts began; `None` after a success.
    pub failing_since: Option<i64>,
    /// When the endpoint was disabled for failing too long; `None` unless so disabled.
    pub disabled_at: Option<i64>,
}

/// What an edit of an endpoint changes; `None` leaves a column as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookEdit {
    pub target_url: Option<String>,
    pub subscribed_events: Option<Vec<String>>,
    pub session_id: Option<Option<SessionId>>,
    pub is_active: Option<bool>,
    pub description: Option<Option<String>>,
    /// The new stored (sealed) signing secret.
    pub signing_secret: Option<String>,
}

const WEBHOOK_COLUMNS: &str = "id, account_id, target_url, subscribed_events, session_id, is_active, signing_secret, \
     description, event_cursor, created_at, updated_at, agent_id, failing_since, disabled_at";

impl WebhookRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        let id: WebhookId = row.try_get("id")?;
        let corrupt = |what: &str| StoreError::Corrupt(format!("webhook {id} {what}"));
        let subscribed_events: String = row.try_get("subscribed_events")?;
        Ok(Self {
            id,
            account_id: row.try_get("account_id")?,
            subscribed_events: serde_json::from_str(&subscribed_events)
                .map_err(|_| corrupt("subscribed_events"))?,
            session_id: row.try_get("session_id")?,
            agent_id: row.try_get("agent_id")?,
            is_active: row.try_get::<i64, _>("is_active")? != 0,
            target_url: row.try_get("target_url")?,
            signing_secret: row.try_get("signing_secret")?,
            description: row.try_get("description")?,
            event_cursor: row.try_get("event_cursor")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            failing_since: row.try_get("failing_since")?,
            disabled_at: row.try_get("disabled_at")?,
        })
    }

    /// Whether this endpoint wants `event`.
    pub fn wants(&self, event: &EventRow) -> bool {
        (self.subscribed_events.is_empty() || self.subscribed_events.contains(&event.kind))
            && self
                .session_id
                .is_none_or(|s| event.session_id.as_deref() == Some(&s.to_string()))
            && self.agent_id.is_none_or(|agent| {
                let named = event
                    .payload
                    .get("sandbox")
                    .unwrap_or(&event.payload)
                    .get("agent_id")
                    .and_then(|a| a.as_str());
                named == Some(&agent.to_string())
            })
    }
}

/// Inserts an endpoint (in the caller's transaction); it receives the account's events from
/// now on.
pub(crate) async fn insert_webhook(
    conn: &mut AnyConnection,
    mut row: WebhookRow,
) -> Result<WebhookRow> {
    let cursor: i64 = sqlx::query_scalar("SELECT event_seq FROM accounts WHERE id = $1")
        .bind(row.account_id)
        .fetch_one(&mut *conn)
        .await?;
    row.event_cursor = cursor;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO webhooks ({WEBHOOK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    )))
    .bind(row.id)
    .bind(row.account_id)
    .bind(row.target_url.clone())
    .bind(serde_json::to_string(&row.subscribed_events).unwrap_or_default())
    .bind(row.session_id)
    .bind(i64::from(row.is_active))
    .bind(row.signing_secret.clone())
    .bind(row.description.clone())
    .bind(row.event_cursor)
    .bind(row.created_at)
    .bind(row.updated_at)
    .bind(row.agent_id)
    .bind(row.failing_since)
    .bind(row.disabled_at)
    .execute(&mut *conn)
    .await?;
    Ok(row)
}

/// Deletes an endpoint with its deliveries (in the caller's transaction); `false` when there
/// was none.
pub(crate) async fn delete_webhook_in(
    conn: &mut AnyConnection,
    account: AccountId,
    id: WebhookId,
) -> Result<bool> {
    // Nothing of another account's endpoint is touched.
    let mine: Option<String> =
        sqlx::query_scalar("SELECT id FROM webhooks WHERE id = $1 AND account_id = $2")
            .bind(id)
            .bind(account)
            .fetch_optional(&mut *conn)
            .await?;
    if mine.is_none() {
        return Ok(false);
    }
    sqlx::query(
        "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE webhook_id = $1)",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let done = sqlx::query("DELETE FROM webhooks WHERE id = $1 AND account_id = $2")
        .bind(id)
        .bind(account)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

impl Store {
    /// Stores a new endpoint; it receives events from now on.
    pub async fn create_webhook(&self, row: WebhookRow) -> Result<WebhookRow> {
        let mut tx = self.write.begin().await?;
        let row = insert_webhook(&mut tx, row).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// The account's endpoints, oldest first (agents' endpoints left out).
    pub async fn list_webhooks(&self, account: AccountId) -> Result<Vec<WebhookRow>> {
        let sql = format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE account_id = $1 AND agent_id IS NULL ORDER BY id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(WebhookRow::from_row)
            .collect()
    }

    /// The endpoint `id` of `account`.
    pub async fn get_webhook(
        &self,
        account: AccountId,
        id: WebhookId,
    ) -> Result<Option<WebhookRow>> {
        let sql =
            format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1 AND account_id = $2");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(account)
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(WebhookRow::from_row)
            .transpose()
    }

    /// Edits an endpoint: only the columns `edit` names are written, so a concurrent change
    /// of the others (the deliverer disabling it, a rotation) is not overwritten with what
    /// was read before. Enabling it (`is_active: Some(true)`) starts its failures afresh.
    /// `false` when there is no such endpoint of the account.
    pub async fn edit_webhook(
        &self,
        account: AccountId,
        id: WebhookId,
        edit: &WebhookEdit,
        now: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE webhooks SET target_url = COALESCE($1, target_url), \
             subscribed_events = COALESCE($2, subscribed_events), \
             session_id = CASE WHEN $3 = 1 THEN $4 ELSE session_id END, \
             is_active = COALESCE($5, is_active), \
             description = CASE WHEN $6 = 1 THEN $7 ELSE description END, \
             signing_secret = COALESCE($8, signing_secret), \
             failing_since = CASE WHEN $5 = 1 THEN NULL ELSE failing_since END, \
             disabled_at = CASE WHEN $5 = 1 THEN NULL ELSE disabled_at END, \
             updated_at = $9 \
             WHERE id = $10 AND account_id = $11",
        )
        .bind(edit.target_url.clone())
        .bind(
            edit.subscribed_events
                .as_ref()
                .map(|e| serde_json::to_string(e).unwrap_or_default()),
        )
        .bind(i64::from(edit.session_id.is_some()))
        .bind(edit.session_id.flatten())
        .bind(edit.is_active.map(i64::from))
        .bind(i64::from(edit.description.is_some()))
        .bind(edit.description.clone().flatten())
        .bind(edit.signing_secret.clone())
        .bind(now)
        .bind(id)
        .bind(account)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Endpoints whose signing secret is stored as written (not sealed: it does not start
    /// with `sealed_prefix`), as `(id, stored secret)`.
    pub async fn unsealed_webhook_secrets(
        &self,
        sealed_prefix: &str,
    ) -> Result<Vec<(WebhookId, String)>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, signing_secret FROM webhooks WHERE signing_secret NOT LIKE $1",
        )
        // The prefix is ours (`v1:`): no LIKE wildcards in it.
        .bind(format!("{sealed_prefix}%"))
        .fetch_all(&self.read)
        .await?;
        rows.into_iter()
            .map(|(id, secret)| {
                Ok((
                    id.parse()
                        .map_err(|_| StoreError::Corrupt(format!("webhook {id} id")))?,
                    secret,
                ))
            })
            .collect()
    }

    /// One endpoint whose signing secret is sealed (starts with `sealed_prefix`), as `(id,
    /// stored secret)`: enough to check at start that the server's key opens them.
    pub async fn a_sealed_webhook_secret(
        &self,
        sealed_prefix: &str,
    ) -> Result<Option<(WebhookId, String)>> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT id, signing_secret FROM webhooks WHERE signing_secret LIKE $1 LIMIT 1",
        )
        .bind(format!("{sealed_prefix}%"))
        .fetch_optional(&self.read)
        .await?;
        row.map(|(id, secret)| {
            Ok((
                id.parse()
                    .map_err(|_| StoreError::Corrupt(format!("webhook {id} id")))?,
                secret,
            ))
        })
        .transpose()
    }

    /// Replaces an endpoint's stored secret `old` by `new`; nothing when it changed meanwhile
    /// (a rotation, another instance sealing it first).
    pub async fn replace_webhook_secret(
        &self,
        id: WebhookId,
        old: &str,
        new: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE webhooks SET signing_secret = $1 WHERE id = $2 AND signing_secret = $3",
        )
        .bind(new.to_owned())
        .bind(id)
        .bind(old.to_owned())
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Queues again every failed delivery of `account`'s endpoint `webhook` created at or after
    /// `since`, due at `now` (they go out in their original order); returns how many.
    pub async fn recover_deliveries(
        &self,
        account: AccountId,
        webhook: WebhookId,
        since: i64,
        now: i64,
    ) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $1, lease_until = NULL, updated_at = $1 \
             WHERE webhook_id = $2 AND status = 'failed' AND created_at >= $3 AND account_id = $4",
        )
        .bind(now)
        .bind(webhook)
        .bind(since)
        .bind(account)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }

    /// Deletes an endpoint with its deliveries; `false` when there was none.
    pub async fn delete_webhook(&self, account: AccountId, id: WebhookId) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let done = delete_webhook_in(&mut tx, account, id).await?;
        tx.commit().await?;
        Ok(done)
    }
}
