//! Deliveries of webhook events: the fan-out of the event log into delivery rows, the
//! deliverer's claims under a lease, the attempts it records, and the delivery log.

use std::collections::{BTreeMap, HashMap};

use sqlx::{FromRow, Row, any::AnyRow};
use wharf_core::{
    AccountId, AttemptId, DeliveryId, Event, EventType, WebhookId,
    time::{now_millis, rfc3339},
};

use super::{WEBHOOK_COLUMNS, WebhookRow};
use crate::{
    Backend, Params, Result, Store, StoreError,
    events::{EventRow, append_event},
};

/// Delivery states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// The endpoint answered 2xx.
    Succeeded,
    /// Every attempt of the schedule failed.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
    fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Succeeded, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A stored delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub account_id: AccountId,
    pub event_seq: i64,
    pub event_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub delivered_at: Option<i64>,
}

const DELIVERY_COLUMNS: &str = "id, webhook_id, account_id, event_seq, event_id, event_type, status, attempts, \
     next_attempt_at, last_status_code, last_error, created_at, updated_at, delivered_at";

impl DeliveryRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        let id: DeliveryId = row.try_get("id")?;
        let corrupt = |what: &str| StoreError::Corrupt(format!("delivery {id} {what}"));
        let status: String = row.try_get("status")?;
        Ok(Self {
            id,
            webhook_id: row.try_get("webhook_id")?,
            account_id: row.try_get("account_id")?,
            status: DeliveryStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
            event_seq: row.try_get("event_seq")?,
            event_id: row.try_get("event_id")?,
            event_type: row.try_get("event_type")?,
            attempts: row.try_get("attempts")?,
            next_attempt_at: row.try_get("next_attempt_at")?,
            last_status_code: row.try_get("last_status_code")?,
            last_error: row.try_get("last_error")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            delivered_at: row.try_get("delivered_at")?,
        })
    }
}

/// One recorded attempt.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct AttemptRow {
    pub id: String,
    pub delivery_id: String,
    pub attempted_at: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// A claimed delivery with what is needed to send it.
#[derive(Debug, Clone)]
pub struct DeliveryJob {
    pub delivery: DeliveryRow,
    pub target_url: String,
    pub signing_secret: String,
    pub event: EventRow,
}

/// The result of one attempt, to record.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub delivery_id: DeliveryId,
    /// The delivery's endpoint.
    pub webhook_id: WebhookId,
    pub attempted_at: i64,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
    /// When to try again; `None` after a success or when the schedule is exhausted.
    pub retry_at: Option<i64>,
}

/// On PostgreSQL a claim of `limit` deliveries picks among `limit` times this many candidates,
/// so as many instances claiming at once each find their own.
const CLAIM_CANDIDATES: i64 = 8;

impl Store {
    /// Turns new events into deliveries for every active endpoint, up to `limit` events per
    /// endpoint. Returns how many deliveries were created.
    pub async fn fan_out(&self, limit: i64) -> Result<usize> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE is_active = 1 ORDER BY id");
        let hooks: Vec<WebhookRow> = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(WebhookRow::from_row)
            .collect::<Result<_>>()?;
        let mut created = 0;
        for hook in hooks {
            let events = self
                .list_events(hook.account_id, hook.event_cursor, limit)
                .await?;
            let Some(last) = events.last().map(|e| e.seq) else {
                continue;
            };
            let wanted: Vec<&EventRow> = events.iter().filter(|e| hook.wants(e)).collect();
            let now = now_millis();
            let mut tx = self.write.begin().await?;
            // Advancing the cursor only from where it was read makes a concurrent fan-out of
            // the same endpoint (another instance) a no-op instead of a duplicate.
            let moved = sqlx::query(
                "UPDATE webhooks SET event_cursor = $1 WHERE id = $2 AND event_cursor = $3",
            )
            .bind(last)
            .bind(hook.id)
            .bind(hook.event_cursor)
            .execute(&mut *tx)
            .await?;
            if moved.rows_affected() == 0 {
                continue;
            }
            for chunk in wanted.chunks(100) {
                let mut p = Params::new(self.backend);
                let values = (0..chunk.len())
                    .map(|_| {
                        let (head, tail) = (p.list(6), p.list(3));
                        format!("({head}, 'pending', 0, {tail})")
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "INSERT INTO webhook_deliveries (id, webhook_id, account_id, event_seq, event_id, event_type, status, \
                     attempts, next_attempt_at, created_at, updated_at) VALUES {values} \
                     ON CONFLICT (webhook_id, event_seq) DO NOTHING"
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
                for e in chunk {
                    q = q
                        .bind(DeliveryId::generate())
                        .bind(hook.id)
                        .bind(hook.account_id)
                        .bind(e.seq)
                        .bind(e.id.clone())
                        .bind(e.kind.clone())
                        .bind(now)
                        .bind(now)
                        .bind(now);
                }
                created += q.execute(&mut *tx).await?.rows_affected() as usize;
            }
            tx.commit().await?;
        }
        Ok(created)
    }

    /// Claims up to `limit` deliveries due at `now` (the server's clock), at most `per_webhook`
    /// of one endpoint, under a lease of `lease_ms`, skipping endpoints in `busy` (those at
    /// their concurrency cap).
    pub async fn claim_deliveries(
        &self,
        now: i64,
        limit: i64,
        per_webhook: i64,
        lease_ms: i64,
        busy: &[WebhookId],
    ) -> Result<Vec<DeliveryJob>> {
        let busy_list = if busy.is_empty() {
            String::new()
        } else {
            // Ids are generated by Wharf (base32 with a fixed prefix); safe to inline.
            let ids: Vec<String> = busy.iter().map(|b| format!("'{b}'")).collect();
            format!(" AND webhook_id NOT IN ({})", ids.join(", "))
        };
        // The due deliveries, at most `per_webhook` of each endpoint, oldest first.
        let candidates = format!(
            "SELECT id FROM (SELECT id, next_attempt_at, \
             ROW_NUMBER() OVER (PARTITION BY webhook_id ORDER BY next_attempt_at, id) AS rn FROM webhook_deliveries \
             WHERE status = 'pending' AND next_attempt_at <= $2 AND (lease_until IS NULL OR lease_until < $2){busy_list} \
             AND webhook_id IN (SELECT id FROM webhooks WHERE is_active = 1)) \
             ranked WHERE rn <= $4 ORDER BY next_attempt_at"
        );
        let sql = match self.backend {
            // One writer: the claim is whole.
            Backend::Sqlite => format!(
                "UPDATE webhook_deliveries SET lease_until = $1 WHERE id IN ({candidates} LIMIT $3) \
                 RETURNING {DELIVERY_COLUMNS}"
            ),
            // Instances claiming at the same moment read the same candidates. Each locks the
            // first `limit` that no other claim has locked (`SKIP LOCKED`), out of more
            // candidates than it needs, so it neither waits for another claim nor finds its
            // rows taken when that one commits. The lease condition is checked again on the
            // locked row (a claim that committed meanwhile leased it).
            Backend::Postgres => format!(
                "WITH claimed AS (SELECT id FROM webhook_deliveries WHERE id IN ({candidates} LIMIT $5) \
                 AND (lease_until IS NULL OR lease_until < $2) ORDER BY next_attempt_at, id LIMIT $3 \
                 FOR UPDATE SKIP LOCKED) \
                 UPDATE webhook_deliveries SET lease_until = $1 WHERE id IN (SELECT id FROM claimed) \
                 RETURNING {DELIVERY_COLUMNS}"
            ),
        };
        // The text varies with the busy list: not worth a cached statement.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .persistent(false)
            .bind(now + lease_ms)
            .bind(now)
            .bind(limit)
            .bind(per_webhook);
        if self.backend == Backend::Postgres {
            query = query.bind(limit.saturating_mul(CLAIM_CANDIDATES));
        }
        let deliveries: Vec<DeliveryRow> = query
            .fetch_all(&self.write)
            .await?
            .iter()
            .map(DeliveryRow::from_row)
            .collect::<Result<_>>()?;
        // One lookup per endpoint and per account, not per delivery.
        let mut hooks: HashMap<WebhookId, Option<(String, String)>> = HashMap::new();
        let mut seqs: HashMap<AccountId, Vec<i64>> = HashMap::new();
        for d in &deliveries {
            if let std::collections::hash_map::Entry::Vacant(slot) = hooks.entry(d.webhook_id) {
                let hook: Option<(String, String)> =
                    sqlx::query_as("SELECT target_url, signing_secret FROM webhooks WHERE id = $1")
                        .bind(d.webhook_id)
                        .fetch_optional(&self.read)
                        .await?;
                slot.insert(hook);
            }
            seqs.entry(d.account_id).or_default().push(d.event_seq);
        }
        let mut events: HashMap<(AccountId, i64), EventRow> = HashMap::new();
        for (account, seqs) in seqs {
            for e in self.events_at(account, &seqs).await? {
                events.insert((account, e.seq), e);
            }
        }
        let mut jobs = Vec::with_capacity(deliveries.len());
        let mut unsendable = Vec::new();
        for delivery in deliveries {
            let hook = hooks.get(&delivery.webhook_id).cloned().flatten();
            // Several endpoints may deliver the same event: look it up, do not take it.
            let event = events
                .get(&(delivery.account_id, delivery.event_seq))
                .cloned();
            if event.is_none() {
                unsendable.push(delivery.id);
            }
            if let (Some((target_url, signing_secret)), Some(event)) = (hook, event) {
                jobs.push(DeliveryJob {
                    delivery,
                    target_url,
                    signing_secret,
                    event,
                });
            }
        }
        self.remove_pruned_deliveries(&unsendable).await?;
        Ok(jobs)
    }

    /// Removes those of `ids` whose event retention removed (they were being attempted when
    /// it ran, so it left them): they can never be sent, and would otherwise be claimed and
    /// dropped at every lease. Their attempts go with them, as retention's do.
    async fn remove_pruned_deliveries(&self, ids: &[DeliveryId]) -> Result<()> {
        for chunk in ids.chunks(500) {
            let list = Params::new(self.backend).list(chunk.len());
            let sql = format!(
                "DELETE FROM webhook_deliveries WHERE id IN ({list}) AND event_seq <= \
                 (SELECT a.events_pruned_seq FROM accounts a WHERE a.id = webhook_deliveries.account_id)"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&self.write).await?;
        }
        Ok(())
    }

    /// Records attempts and moves their deliveries on, in one transaction and a few
    /// statements. Each endpoint's run of failures is tracked (`failing_since`, set to `now`
    /// at the first failure after a success); an endpoint failing since `disable_after` ms or
    /// more before `now` is disabled, with a `webhook.disabled` event in its account's log.
    /// Returns the endpoints disabled.
    pub async fn record_attempts(
        &self,
        results: &[AttemptResult],
        now: i64,
        disable_after: Option<i64>,
    ) -> Result<Vec<WebhookId>> {
        if results.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.write.begin().await?;
        for chunk in results.chunks(100) {
            // Only for deliveries still there: an endpoint deleted while its delivery was
            // being attempted took the delivery with it, and an attempt row without one would
            // fail its foreign key and the whole batch with it.
            let values = Params::new(self.backend).rows(chunk.len(), 6);
            let sql = format!(
                "INSERT INTO webhook_attempts (id, delivery_id, attempted_at, status_code, error, duration_ms) \
                 SELECT v.column1, v.column2, CAST(v.column3 AS BIGINT), CAST(v.column4 AS BIGINT), \
                 v.column5, CAST(v.column6 AS BIGINT) FROM (VALUES {values}) AS v \
                 WHERE v.column2 IN (SELECT id FROM webhook_deliveries)"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
            for r in chunk {
                q = q
                    .bind(AttemptId::generate())
                    .bind(r.delivery_id)
                    .bind(r.attempted_at.to_string())
                    .bind(r.status_code.map(|c| c.to_string()))
                    .bind(crate::plain(&r.error))
                    .bind(r.duration_ms.to_string());
            }
            q.execute(&mut *tx).await?;
            // Values travel as text and are cast, so one statement serves both backends.
            let values = Params::new(self.backend).rows(chunk.len(), 7);
            let sql = format!(
                "UPDATE webhook_deliveries SET status = v.column2, attempts = attempts + 1, \
                 next_attempt_at = CAST(v.column3 AS BIGINT), lease_until = NULL, \
                 last_status_code = CAST(v.column4 AS BIGINT), last_error = v.column5, \
                 updated_at = CAST(v.column6 AS BIGINT), \
                 delivered_at = CASE WHEN v.column7 = '1' THEN CAST(v.column6 AS BIGINT) ELSE delivered_at END \
                 FROM (VALUES {values}) AS v WHERE webhook_deliveries.id = v.column1"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
            for r in chunk {
                let succeeded = r.status_code.is_some_and(|c| (200..300).contains(&c));
                let status = if succeeded {
                    DeliveryStatus::Succeeded
                } else if r.retry_at.is_some() {
                    DeliveryStatus::Pending
                } else {
                    DeliveryStatus::Failed
                };
                q = q
                    .bind(r.delivery_id)
                    .bind(status.as_str())
                    .bind(r.retry_at.map(|t| t.to_string()))
                    .bind(r.status_code.map(|c| c.to_string()))
                    .bind(crate::plain(&r.error))
                    .bind(r.attempted_at.to_string())
                    .bind(if succeeded { "1" } else { "0" });
            }
            q.execute(&mut *tx).await?;
        }
        // The latest attempt of each endpoint in the batch says whether it is failing. The
        // endpoints' rows are updated in the order of their ids, and the accounts' (their
        // events) after them in the order of theirs, so two instances recording results for
        // the same endpoints at once never wait for each other in a cycle.
        let mut latest: BTreeMap<WebhookId, (i64, bool)> = BTreeMap::new();
        for r in results {
            let ok = r.status_code.is_some_and(|c| (200..300).contains(&c));
            let entry = latest.entry(r.webhook_id).or_insert((r.attempted_at, ok));
            if r.attempted_at >= entry.0 {
                *entry = (r.attempted_at, ok);
            }
        }
        let mut disabled = Vec::new();
        let mut events = Vec::new();
        for (hook, (_, ok)) in latest {
            if ok {
                sqlx::query("UPDATE webhooks SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL")
                    .bind(hook)
                    .execute(&mut *tx)
                    .await?;
                continue;
            }
            sqlx::query(
                "UPDATE webhooks SET failing_since = $1 WHERE id = $2 AND failing_since IS NULL",
            )
            .bind(now)
            .bind(hook)
            .execute(&mut *tx)
            .await?;
            let Some(after) = disable_after else { continue };
            let off: Option<(String, String, i64)> = sqlx::query_as(
                "UPDATE webhooks SET is_active = 0, disabled_at = $1, updated_at = $1 \
                 WHERE id = $2 AND is_active = 1 AND failing_since <= $3 RETURNING account_id, target_url, failing_since",
            )
            .bind(now)
            .bind(hook)
            .bind(now.saturating_sub(after))
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((account, target_url, since)) = off {
                let account: AccountId = account
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("webhook {hook} account_id")))?;
                let event = Event::new(
                    account,
                    None,
                    EventType::WebhookDisabled,
                    serde_json::json!({
                        "webhook_id": hook.to_string(),
                        "target_url": target_url,
                        "failing_since": rfc3339(since),
                        "reason": "every delivery attempt failed for too long",
                    }),
                );
                events.push((account, hook, event));
                disabled.push(hook);
            }
        }
        events.sort_by_key(|(account, hook, _)| (*account, *hook));
        for (_, _, event) in &events {
            append_event(&mut tx, event).await?;
        }
        tx.commit().await?;
        Ok(disabled)
    }

    /// A page of the deliveries of `account`'s endpoint `webhook`, newest first, each with its
    /// attempts.
    pub async fn list_deliveries(
        &self,
        account: AccountId,
        webhook: WebhookId,
        before: Option<DeliveryId>,
        limit: i64,
    ) -> Result<Vec<(DeliveryRow, Vec<AttemptRow>)>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = $1 AND ($2 IS NULL OR id < $2) \
             AND account_id = $4 ORDER BY id DESC LIMIT $3"
        );
        let rows: Vec<DeliveryRow> = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(webhook)
            .bind(before)
            .bind(limit + 1)
            .bind(account)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(DeliveryRow::from_row)
            .collect::<Result<_>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for d in rows {
            let attempts = self.attempts_of(d.id).await?;
            out.push((d, attempts));
        }
        Ok(out)
    }

    async fn attempts_of(&self, delivery: DeliveryId) -> Result<Vec<AttemptRow>> {
        Ok(sqlx::query_as::<_, AttemptRow>(
            "SELECT id, delivery_id, attempted_at, status_code, error, duration_ms FROM webhook_attempts \
             WHERE delivery_id = $1 ORDER BY attempted_at, id",
        )
        .bind(delivery)
        .fetch_all(&self.read)
        .await?)
    }

    /// The delivery `id` of `account`'s endpoint `webhook`.
    pub async fn get_delivery(
        &self,
        account: AccountId,
        webhook: WebhookId,
        id: DeliveryId,
    ) -> Result<Option<(DeliveryRow, Vec<AttemptRow>)>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1 AND webhook_id = $2 AND account_id = $3"
        );
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(webhook)
            .bind(account)
            .fetch_optional(&self.read)
            .await?
        else {
            return Ok(None);
        };
        let d = DeliveryRow::from_row(&row)?;
        let attempts = self.attempts_of(d.id).await?;
        Ok(Some((d, attempts)))
    }

    /// Schedules a delivery of `account`'s endpoint `webhook` again at `now` (the server's
    /// clock), whatever its state, unless an attempt is under way (then `Ok(None)`; `Err` only
    /// on database failure). `Ok(Some(false))` when there is no such delivery.
    pub async fn redeliver(
        &self,
        account: AccountId,
        webhook: WebhookId,
        id: DeliveryId,
        now: i64,
    ) -> Result<Option<bool>> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $1, lease_until = NULL, updated_at = $1 \
             WHERE id = $2 AND webhook_id = $3 AND account_id = $4 AND (lease_until IS NULL OR lease_until < $1)",
        )
        .bind(now)
        .bind(id)
        .bind(webhook)
        .bind(account)
        .execute(&self.write)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(Some(true));
        }
        Ok(self
            .get_delivery(account, webhook, id)
            .await?
            .map(|_| None)
            .unwrap_or(Some(false)))
    }
}
