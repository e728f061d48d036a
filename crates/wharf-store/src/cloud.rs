//! What the Cloud API engine keeps: each cloud session's Graph credentials (secrets arrive
//! sealed; the store never sees them in clear), the customer-service window of each chat,
//! provider status reports, and template review outcomes.

use std::collections::HashMap;

use sqlx::{AnyConnection, FromRow, Row, any::AnyRow};
use wharf_core::{
    AccountId, Event, EventType, Jid, MessageId, ProviderId, SessionId, SessionStatus,
    message::{Direction, MessageStatus, ReportedStatus},
    time::now_millis,
};

use crate::{
    Backend, MessageRow, Params, Result, Store, StoreError, conflict_or,
    events::append_events,
    message_rows::{COLUMNS as MESSAGE_COLUMNS, write_message},
};

/// A cloud session's Graph settings as stored. `access_token` and `app_secret` are sealed by
/// the caller (base64 of nonce and ciphertext); `verify_token_hash` is SHA-256 hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudCredentials {
    pub phone_number_id: String,
    pub waba_id: String,
    pub access_token: String,
    pub app_secret: String,
    pub verify_token_hash: String,
    /// `None`: the server's default.
    pub graph_base_url: Option<String>,
    pub graph_version: Option<String>,
    pub throughput_per_second: Option<u32>,
}

/// A stored cloud session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudRow {
    pub session_id: SessionId,
    pub account_id: AccountId,
    pub credentials: CloudCredentials,
    pub created_at: i64,
    pub updated_at: i64,
}

const CLOUD_COLUMNS: &str = "session_id, account_id, phone_number_id, waba_id, access_token, app_secret, \
     verify_token_hash, graph_base_url, graph_version, throughput_per_second, created_at, updated_at";

impl CloudRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        let session_id: SessionId = row.try_get("session_id")?;
        let corrupt =
            |what: &str| StoreError::Corrupt(format!("cloud session {session_id} {what}"));
        let throughput: Option<i64> = row.try_get("throughput_per_second")?;
        Ok(Self {
            session_id,
            account_id: row.try_get("account_id")?,
            credentials: CloudCredentials {
                phone_number_id: row.try_get("phone_number_id")?,
                waba_id: row.try_get("waba_id")?,
                access_token: row.try_get("access_token")?,
                app_secret: row.try_get("app_secret")?,
                verify_token_hash: row.try_get("verify_token_hash")?,
                graph_base_url: row.try_get("graph_base_url")?,
                graph_version: row.try_get("graph_version")?,
                throughput_per_second: throughput
                    .map(|t| u32::try_from(t).map_err(|_| corrupt("throughput_per_second")))
                    .transpose()?,
            },
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// Inserts the cloud settings of a session being created (in its transaction).
pub(crate) async fn insert_cloud(
    conn: &mut AnyConnection,
    session: SessionId,
    account: AccountId,
    c: &CloudCredentials,
    now: i64,
) -> Result<()> {
    let sql = format!(
        "INSERT INTO cloud_sessions ({CLOUD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(session)
        .bind(account)
        .bind(c.phone_number_id.clone())
        .bind(c.waba_id.clone())
        .bind(c.access_token.clone())
        .bind(c.app_secret.clone())
        .bind(c.verify_token_hash.clone())
        .bind(c.graph_base_url.clone())
        .bind(c.graph_version.clone())
        .bind(c.throughput_per_second.map(i64::from))
        .bind(now)
        .bind(now)
        .execute(conn)
        .await
        .map_err(|e| conflict_or(e, "phone_number_id"))?;
    Ok(())
}

/// A cloud session with the status of its session.
#[derive(Debug, Clone)]
pub struct CloudSessionState {
    pub cloud: CloudRow,
    pub status: SessionStatus,
}

/// A template's latest review outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateStatusRow {
    pub waba_id: String,
    pub template_id: String,
    pub name: String,
    pub language: String,
    pub status: String,
    pub reason: Option<String>,
    pub event_at: i64,
    pub updated_at: i64,
}

/// A provider's report about a sent message, to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    pub provider_id: ProviderId,
    /// Wharf's id of the message, when the provider echoed it back.
    pub message_id: Option<MessageId>,
    pub status: ReportedStatus,
    pub at: i64,
}

impl Store {
    /// The cloud settings of `account`'s session `session` (`None` for another account's).
    pub async fn cloud_session(
        &self,
        account: AccountId,
        session: SessionId,
    ) -> Result<Option<CloudRow>> {
        let sql = format!(
            "SELECT {CLOUD_COLUMNS} FROM cloud_sessions WHERE session_id = $1 AND account_id = $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(session)
            .bind(account)
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(CloudRow::from_row)
            .transpose()
    }

    /// Internal, across accounts: the cloud settings of `session`, for the engine reading
    /// the credentials of a session it runs.
    pub async fn cloud_session_any_account(&self, session: SessionId) -> Result<Option<CloudRow>> {
        let sql = format!("SELECT {CLOUD_COLUMNS} FROM cloud_sessions WHERE session_id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(session)
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(CloudRow::from_row)
            .transpose()
    }

    /// The cloud sessions of these phone number ids (any account), with their statuses.
    pub async fn cloud_sessions_by_number(
        &self,
        phone_number_ids: &[String],
    ) -> Result<Vec<CloudSessionState>> {
        self.cloud_sessions_where("c.phone_number_id", phone_number_ids)
            .await
    }

    /// The cloud sessions of a WhatsApp Business Account (any account), with their statuses.
    pub async fn cloud_sessions_by_waba(&self, waba_id: &str) -> Result<Vec<CloudSessionState>> {
        self.cloud_sessions_where("c.waba_id", &[waba_id.to_owned()])
            .await
    }

    async fn cloud_sessions_where(
        &self,
        column: &str,
        values: &[String],
    ) -> Result<Vec<CloudSessionState>> {
        let mut out = Vec::new();
        for chunk in values.chunks(100) {
            let mut p = Params::new(self.backend);
            let list = p.list(chunk.len());
            let columns = CLOUD_COLUMNS
                .split(", ")
                .map(|c| format!("c.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT {columns}, s.status AS session_status FROM cloud_sessions c \
                 JOIN sessions s ON s.id = c.session_id WHERE {column} IN ({list})"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
            for v in chunk {
                q = q.bind(v.clone());
            }
            for row in q.fetch_all(&self.read).await? {
                let status: String = sqlx::Row::try_get(&row, "session_status")?;
                out.push(CloudSessionState {
                    cloud: CloudRow::from_row(&row)?,
                    status: SessionStatus::parse(&status)
                        .ok_or_else(|| StoreError::Corrupt(format!("session status {status}")))?,
                });
            }
        }
        Ok(out)
    }

    /// Whether a session not being deleted has this verify token (by its SHA-256 hex).
    pub async fn cloud_verify_token_exists(&self, hash: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM cloud_sessions c JOIN sessions s ON s.id = c.session_id \
             WHERE c.verify_token_hash = $1 AND s.status NOT IN ('pending_deletion', 'deleted')",
        )
        .bind(hash)
        .fetch_one(&self.read)
        .await?;
        Ok(n > 0)
    }

    /// Replaces the cloud settings of `account`'s session `session`; `false` when it has
    /// none.
    pub async fn update_cloud_session(
        &self,
        account: AccountId,
        session: SessionId,
        c: &CloudCredentials,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE cloud_sessions SET phone_number_id = $1, waba_id = $2, access_token = $3, \
             app_secret = $4, verify_token_hash = $5, graph_base_url = $6, graph_version = $7, \
             throughput_per_second = $8, updated_at = $9 WHERE session_id = $10 AND account_id = $11",
        )
        .bind(c.phone_number_id.clone())
        .bind(c.waba_id.clone())
        .bind(c.access_token.clone())
        .bind(c.app_secret.clone())
        .bind(c.verify_token_hash.clone())
        .bind(c.graph_base_url.clone())
        .bind(c.graph_version.clone())
        .bind(c.throughput_per_second.map(i64::from))
        .bind(now_millis())
        .bind(session)
        .bind(account)
        .execute(&self.write)
        .await
        .map_err(|e| conflict_or(e, "phone_number_id"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Forgets a deleted session's cloud settings (its credentials, and its number, which
    /// another session may then use).
    pub async fn delete_cloud_session(&self, account: AccountId, session: SessionId) -> Result<()> {
        sqlx::query("DELETE FROM cloud_sessions WHERE session_id = $1 AND account_id = $2")
            .bind(session)
            .bind(account)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// When `chat` last wrote to `account`'s session `session` (WhatsApp's time, ms), if
    /// ever; `None` for another account's session.
    pub async fn last_inbound_at(
        &self,
        account: AccountId,
        session: SessionId,
        chat: &Jid,
    ) -> Result<Option<i64>> {
        let at: Option<i64> = sqlx::query_scalar(
            "SELECT w.last_inbound_at FROM chat_windows w JOIN sessions s ON s.id = w.session_id \
             WHERE w.session_id = $1 AND w.chat_jid = $2 AND s.account_id = $3",
        )
        .bind(session)
        .bind(chat.to_string())
        .bind(account)
        .fetch_optional(&self.read)
        .await?;
        Ok(at)
    }

    /// Records a template's review outcome unless a later one is already recorded (Meta
    /// redelivers and does not order its webhooks). Returns whether it was recorded.
    pub async fn record_template_status(&self, t: &TemplateStatusRow) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO cloud_templates (waba_id, template_id, name, language, status, reason, event_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (waba_id, template_id) DO UPDATE SET name = excluded.name, \
             language = excluded.language, status = excluded.status, reason = excluded.reason, \
             event_at = excluded.event_at, updated_at = excluded.updated_at \
             WHERE cloud_templates.event_at <= excluded.event_at",
        )
        .bind(t.waba_id.clone())
        .bind(t.template_id.clone())
        .bind(t.name.clone())
        .bind(t.language.clone())
        .bind(t.status.clone())
        .bind(crate::plain(&t.reason))
        .bind(t.event_at)
        .bind(now_millis())
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The recorded template outcomes of a WABA, by template id.
    pub async fn template_statuses(&self, waba_id: &str) -> Result<Vec<TemplateStatusRow>> {
        #[derive(FromRow)]
        struct Raw {
            waba_id: String,
            template_id: String,
            name: String,
            language: String,
            status: String,
            reason: Option<String>,
            event_at: i64,
            updated_at: i64,
        }
        let rows: Vec<Raw> = sqlx::query_as(
            "SELECT waba_id, template_id, name, language, status, reason, event_at, updated_at \
             FROM cloud_templates WHERE waba_id = $1 ORDER BY template_id",
        )
        .bind(waba_id)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| TemplateStatusRow {
                waba_id: r.waba_id,
                template_id: r.template_id,
                name: r.name,
                language: r.language,
                status: r.status,
                reason: r.reason,
                event_at: r.event_at,
                updated_at: r.updated_at,
            })
            .collect())
    }

    /// Applies status reports about messages `session` sent, in one transaction: statuses
    /// only move forward, repeats and late arrivals are merged without a second event, and
    /// `failed` ends delivery with its reason. A report whose provider id is not recorded yet
    /// (it beat the dispatcher's record of the send) finds its message by the echoed Wharf id:
    /// the provider id is recorded then, and a send job still pending is dropped, since the
    /// message did go out. Reports about unknown messages are ignored.
    pub async fn apply_status_reports(
        &self,
        session: SessionId,
        reports: &[StatusReport],
    ) -> Result<()> {
        if reports.is_empty() {
            return Ok(());
        }
        let lock = match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        };
        let mut tx = self.write.begin().await?;
        let ids: Vec<&ProviderId> = reports.iter().map(|r| &r.provider_id).collect();
        let mut by_provider = self
            .outgoing_by_provider_ids(&mut tx, session, &ids)
            .await?;
        // Reports that beat the send's record: by the echoed Wharf id.
        let echoed: Vec<MessageId> = reports
            .iter()
            .filter(|r| !by_provider.contains_key(&r.provider_id))
            .filter_map(|r| r.message_id)
            .collect();
        let mut claimed: Vec<MessageId> = Vec::new();
        for chunk in echoed.chunks(200) {
            let mut p = Params::on(&tx);
            let session_param = p.next();
            let list = p.list(chunk.len());
            let sql = format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_id = {session_param} \
                 AND direction = 'out' AND provider_msg_id IS NULL AND id IN ({list}){lock}"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .persistent(false)
                .bind(session);
            for id in chunk {
                q = q.bind(id);
            }
            for row in q.fetch_all(&mut *tx).await? {
                let mut m = MessageRow::from_row(&row)?;
                let Some(report) = reports.iter().find(|r| r.message_id == Some(m.id)) else {
                    continue;
                };
                m.provider_msg_id = Some(report.provider_id.clone());
                claimed.push(m.id);
                by_provider.insert(report.provider_id.clone(), m);
            }
        }
        let mut events: Vec<Event> = Vec::new();
        let mut changed: Vec<ProviderId> = Vec::new();
        // Receipts first, then failures, so a failure reported with receipts ends the batch.
        let mut ordered: Vec<&StatusReport> = reports.iter().collect();
        ordered.sort_by_key(|r| matches!(r.status, ReportedStatus::Failed { .. }));
        for report in ordered {
            let Some(row) = by_provider.get_mut(&report.provider_id) else {
                continue;
            };
            let before = row.clone();
            match &report.status {
                ReportedStatus::Failed { reason } => {
                    if !row.status.is_terminal() {
                        row.status = MessageStatus::Failed;
                        row.failure_reason = Some(reason.clone());
                        row.failed_at = Some(report.at);
                        row.updated_at = now_millis();
                        events.push(row.event(EventType::MessageFailed));
                    }
                }
                other => {
                    let status = other.status();
                    if row.advance(status, report.at)
                        && let Some(kind) = EventType::for_status(status)
                    {
                        events.push(row.event(kind));
                    }
                }
            }
            if *row != before && !changed.contains(&report.provider_id) {
                changed.push(report.provider_id.clone());
            }
        }
        for id in &claimed {
            let pid = by_provider
                .values()
                .find(|m| m.id == *id)
                .and_then(|m| m.provider_msg_id.clone());
            if let Some(pid) = pid
                && !changed.contains(&pid)
            {
                changed.push(pid);
            }
            // Its send is over (the report's status moves it out of `queued`, which on SQLite
            // alone ends its job).
            if crate::messages::sends_in_outbox(self.backend) {
                sqlx::query("DELETE FROM outbox WHERE message_id = $1 AND action = 'send'")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for pid in &changed {
            write_message(&mut tx, &by_provider[pid]).await?;
        }
        append_events(&mut tx, &events).await?;
        tx.commit().await?;
        if !events.is_empty() {
            self.events_appended();
        }
        Ok(())
    }
}

/// Opens or refreshes the customer-service window of each chat of `rows` (incoming messages
/// just stored), keeping the latest time.
pub(crate) async fn touch_windows(conn: &mut AnyConnection, rows: &[MessageRow]) -> Result<()> {
    let mut latest: HashMap<(SessionId, String), i64> = HashMap::new();
    for r in rows.iter().filter(|r| r.direction == Direction::In) {
        let at = r.sent_at.unwrap_or(r.accepted_at);
        let slot = latest
            .entry((r.session_id, r.chat_jid.to_string()))
            .or_insert(at);
        *slot = (*slot).max(at);
    }
    for ((session, chat), at) in latest {
        sqlx::query(
            "INSERT INTO chat_windows (session_id, chat_jid, last_inbound_at) VALUES ($1, $2, $3) \
             ON CONFLICT (session_id, chat_jid) DO UPDATE SET last_inbound_at = \
             CASE WHEN excluded.last_inbound_at > chat_windows.last_inbound_at \
             THEN excluded.last_inbound_at ELSE chat_windows.last_inbound_at END",
        )
        .bind(session)
        .bind(chat)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

impl Store {
    /// The WhatsApp id of the newest message `chat` sent to `session`.
    /// (Internal: the cloud engine's, for the session it runs.)
    pub async fn last_inbound_provider_id(
        &self,
        session: SessionId,
        chat: &Jid,
    ) -> Result<Option<ProviderId>> {
        let id: Option<Option<ProviderId>> = sqlx::query_scalar(
            "SELECT provider_msg_id FROM messages WHERE session_id = $1 AND chat_jid = $2 \
             AND direction = 'in' ORDER BY id DESC LIMIT 1",
        )
        .bind(session)
        .bind(chat.to_string())
        .fetch_optional(&self.read)
        .await?;
        Ok(id.flatten())
    }
}
