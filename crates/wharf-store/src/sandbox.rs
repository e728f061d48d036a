//! The sandbox: which session is the shared sandbox number, the phones activated on it
//! (sandbox sessions, each owned by one account) and the agents phones can be bound to.
//!
//! A phone has at most one live (pending or active, not expired) sandbox session across all
//! accounts, so inbound traffic from it has exactly one owner. Expired rows are ignored by
//! every query and pruned by the next write.

use sqlx::{AnyConnection, Row, any::AnyRow};
use wharf_core::{
    AccountId, AgentId, Event, EventType, Jid, Phone, SandboxId, SessionId, WebhookId,
    message::Content,
};

use crate::{
    Backend, MessageRow, Result, SessionRow, Store, StoreError, WebhookRow,
    events::append_events,
    message_rows::insert_message,
    webhooks::{delete_webhook_in, insert_webhook},
};

/// Which dialect created a sandbox session; it decides what activates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxDialect {
    /// Any message from the phone activates it (the reply proves ownership).
    Zernio,
    /// A message containing the activation code activates it.
    Kapso,
}

impl SandboxDialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Zernio => "zernio",
            Self::Kapso => "kapso",
        }
    }
    fn parse(text: &str) -> Option<Self> {
        [Self::Zernio, Self::Kapso]
            .into_iter()
            .find(|d| d.as_str() == text)
    }
}

/// A sandbox session's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxStatus {
    Pending,
    Active,
}

impl SandboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
        }
    }
    fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Active]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A stored sandbox session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxRow {
    pub id: SandboxId,
    pub account_id: AccountId,
    pub dialect: SandboxDialect,
    pub phone: Phone,
    pub status: SandboxStatus,
    pub activation_code: String,
    pub agent_id: Option<AgentId>,
    pub expires_at: i64,
    pub activated_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const SANDBOX_COLUMNS: &str = "id, account_id, dialect, phone, status, activation_code, agent_id, \
     expires_at, activated_at, created_at, updated_at";

impl SandboxRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        let id: SandboxId = row.try_get("id")?;
        let corrupt = |what: &str| StoreError::Corrupt(format!("sandbox session {id} {what}"));
        let text = |column: &str| row.try_get::<String, _>(column);
        Ok(Self {
            id,
            account_id: row.try_get("account_id")?,
            dialect: SandboxDialect::parse(&text("dialect")?).ok_or_else(|| corrupt("dialect"))?,
            phone: Phone::parse(&text("phone")?).map_err(|_| corrupt("phone"))?,
            status: SandboxStatus::parse(&text("status")?).ok_or_else(|| corrupt("status"))?,
            activation_code: row.try_get("activation_code")?,
            agent_id: row.try_get("agent_id")?,
            expires_at: row.try_get("expires_at")?,
            activated_at: row.try_get("activated_at")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    /// Whether the session lets its account send to its phone at `now`.
    pub fn is_active_at(&self, now: i64) -> bool {
        self.status == SandboxStatus::Active && self.expires_at > now
    }

    /// Whether `content`, sent by the phone, activates this (pending) session.
    pub fn activated_by(&self, content: &Content) -> bool {
        if self.status != SandboxStatus::Pending {
            return false;
        }
        match self.dialect {
            SandboxDialect::Zernio => true,
            SandboxDialect::Kapso => content.text().is_some_and(|text| {
                text.to_ascii_uppercase()
                    .contains(&self.activation_code.to_ascii_uppercase())
            }),
        }
    }
}

async fn insert_sandbox(conn: &mut AnyConnection, r: &SandboxRow) -> Result<()> {
    let sql = format!(
        "INSERT INTO sandbox_sessions ({SANDBOX_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(r.id)
        .bind(r.account_id)
        .bind(r.dialect.as_str())
        .bind(r.phone.e164().to_owned())
        .bind(r.status.as_str())
        .bind(r.activation_code.clone())
        .bind(r.agent_id)
        .bind(r.expires_at)
        .bind(r.activated_at)
        .bind(r.created_at)
        .bind(r.updated_at)
        .execute(conn)
        .await?;
    Ok(())
}

async fn update_sandbox(conn: &mut AnyConnection, r: &SandboxRow) -> Result<()> {
    sqlx::query(
        "UPDATE sandbox_sessions SET dialect = $1, status = $2, activation_code = $3, agent_id = $4, \
         expires_at = $5, activated_at = $6, updated_at = $7 WHERE id = $8",
    )
    .bind(r.dialect.as_str())
    .bind(r.status.as_str())
    .bind(r.activation_code.clone())
    .bind(r.agent_id)
    .bind(r.expires_at)
    .bind(r.activated_at)
    .bind(r.updated_at)
    .bind(r.id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The live sandbox session of `phone` (any account); `lock` takes a row lock (PostgreSQL,
/// inside a write transaction).
pub(crate) async fn live_of_phone(
    conn: &mut AnyConnection,
    lock: bool,
    phone: &Phone,
    now: i64,
) -> Result<Option<SandboxRow>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let sql = format!(
        "SELECT {SANDBOX_COLUMNS} FROM sandbox_sessions WHERE phone = $1 AND expires_at > $2 \
         ORDER BY created_at DESC LIMIT 1{lock}"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(phone.e164().to_owned())
        .bind(now)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(SandboxRow::from_row)
        .transpose()
}

/// Activates `row` (pending) at `now` for `active_ttl_ms`, with its `sandbox.activated` event.
pub(crate) async fn activate(
    conn: &mut AnyConnection,
    row: &mut SandboxRow,
    session: SessionId,
    now: i64,
    active_ttl_ms: i64,
) -> Result<()> {
    row.status = SandboxStatus::Active;
    row.activated_at = Some(now);
    row.expires_at = now + active_ttl_ms;
    row.updated_at = now;
    update_sandbox(conn, row).await?;
    let event = Event::new(
        row.account_id,
        Some(session),
        EventType::SandboxActivated,
        serde_json::json!({
            "sandbox_session_id": row.id,
            "phone_number": row.phone.e164(),
            "dialect": row.dialect.as_str(),
            "agent_id": row.agent_id,
            "activated_at": wharf_core::time::rfc3339(now),
            "expires_at": wharf_core::time::rfc3339(row.expires_at),
        }),
    );
    append_events(conn, &[event]).await
}

async fn record_sent(conn: &mut AnyConnection, sent: Option<&MessageRow>) -> Result<()> {
    if let Some(m) = sent {
        insert_message(conn, m).await?;
        append_events(conn, &[m.event(EventType::MessageSent)]).await?;
    }
    Ok(())
}

/// What [`Store::put_sandbox`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutSandbox {
    /// A new session was stored.
    Created(SandboxRow),
    /// The account's live session of the same phone was refreshed.
    Refreshed(SandboxRow),
    /// The phone has a live session with another account.
    PhoneTaken,
    /// One phone per account, and the account has a live session of another phone.
    OtherPhone(SandboxRow),
    /// The agent to bind was deleted meanwhile.
    AgentGone,
}

/// The rules a new or refreshed session is stored under.
pub struct SandboxWrite<'a> {
    pub account: AccountId,
    pub phone: &'a Phone,
    pub now: i64,
    /// Refuse when the account has a live session of another phone (Zernio).
    pub one_phone_per_account: bool,
}

/// An edit of an agent; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct AgentEdit {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    /// `Some(None)` removes the webhook endpoint.
    pub webhook_url: Option<Option<String>>,
}

/// A stored agent (Kapso dialect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    pub id: AgentId,
    pub account_id: AccountId,
    pub name: String,
    pub description: Option<String>,
    pub webhook_url: Option<String>,
    pub webhook_id: Option<WebhookId>,
    pub created_at: i64,
    pub updated_at: i64,
}

const AGENT_COLUMNS: &str =
    "id, account_id, name, description, webhook_url, webhook_id, created_at, updated_at";

impl AgentRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            account_id: row.try_get("account_id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            webhook_url: row.try_get("webhook_url")?,
            webhook_id: row.try_get("webhook_id")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

impl Store {
    /// The session serving as the sandbox number, if one is set.
    pub async fn sandbox_number(&self) -> Result<Option<SessionId>> {
        let id: Option<String> =
            sqlx::query_scalar("SELECT session_id FROM sandbox_number WHERE id = 1")
                .fetch_optional(&self.read)
                .await?;
        id.map(|s| {
            s.parse()
                .map_err(|_| StoreError::Corrupt("sandbox_number session_id".into()))
        })
        .transpose()
    }

    /// Internal, across accounts: the session serving as the sandbox number (the
    /// operator's, shared by every account's developers), if one is set.
    pub async fn sandbox_session(&self) -> Result<Option<SessionRow>> {
        match self.sandbox_number().await? {
            Some(id) => self.find_session_any_account(id).await,
            None => Ok(None),
        }
    }

    /// Makes `session` the sandbox number (`None`: no sandbox number).
    pub async fn set_sandbox_number(&self, session: Option<SessionId>, now: i64) -> Result<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query("DELETE FROM sandbox_number")
            .execute(&mut *tx)
            .await?;
        if let Some(session) = session {
            sqlx::query(
                "INSERT INTO sandbox_number (id, session_id, updated_at) VALUES (1, $1, $2)",
            )
            .bind(session)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The account's live sandbox sessions, oldest first.
    pub async fn live_sandbox_sessions(
        &self,
        account: AccountId,
        now: i64,
    ) -> Result<Vec<SandboxRow>> {
        let sql = format!(
            "SELECT {SANDBOX_COLUMNS} FROM sandbox_sessions WHERE account_id = $1 AND expires_at > $2 \
             ORDER BY created_at, id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account)
            .bind(now)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(SandboxRow::from_row)
            .collect()
    }

    /// The account's live sandbox session `id`.
    pub async fn live_sandbox_session(
        &self,
        account: AccountId,
        id: SandboxId,
        now: i64,
    ) -> Result<Option<SandboxRow>> {
        let sql = format!(
            "SELECT {SANDBOX_COLUMNS} FROM sandbox_sessions WHERE id = $1 AND account_id = $2 AND expires_at > $3"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(account)
            .bind(now)
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(SandboxRow::from_row)
            .transpose()
    }

    /// The live sandbox session of `phone`, whichever account owns it.
    pub async fn live_sandbox_of_phone(
        &self,
        phone: &Phone,
        now: i64,
    ) -> Result<Option<SandboxRow>> {
        let mut conn = self.read.acquire().await?;
        live_of_phone(&mut conn, false, phone, now).await
    }

    /// Stores a new sandbox session, or refreshes the account's live one of the same phone
    /// (`refresh` edits it), under the one-owner-per-phone rule, atomically.
    ///
    /// `sent` is the verification message already sent to the phone: it is recorded (with
    /// its `message.sent` event) in the same transaction.
    pub async fn put_sandbox(
        &self,
        rules: SandboxWrite<'_>,
        new: SandboxRow,
        refresh: impl FnOnce(&mut SandboxRow),
        sent: Option<&MessageRow>,
    ) -> Result<PutSandbox> {
        let mut tx = self.write.begin().await?;
        if self.backend == Backend::Postgres {
            // Creations are rare: serializing them (and only them: the inbound path is not
            // blocked) keeps the one-owner-per-phone rule exact.
            sqlx::query("SELECT pg_advisory_xact_lock(7245031)")
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM sandbox_sessions WHERE expires_at <= $1")
            .bind(rules.now)
            .execute(&mut *tx)
            .await?;
        if self.backend == Backend::Postgres {
            // The inbound path activates under the phone's row lock, not the advisory lock:
            // wait for an activation in flight, so the read below sees it and the refresh
            // does not write the pending row back over it.
            sqlx::query("SELECT id FROM sandbox_sessions WHERE phone = $1 FOR UPDATE")
                .bind(rules.phone.e164().to_owned())
                .execute(&mut *tx)
                .await?;
        }
        let sql = format!(
            "SELECT {SANDBOX_COLUMNS} FROM sandbox_sessions WHERE phone = $1 OR account_id = $2 ORDER BY created_at"
        );
        let live: Vec<SandboxRow> = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rules.phone.e164().to_owned())
            .bind(rules.account)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(SandboxRow::from_row)
            .collect::<Result<_>>()?;
        if live
            .iter()
            .any(|r| &r.phone == rules.phone && r.account_id != rules.account)
        {
            return self.refuse_sandbox(tx, sent, PutSandbox::PhoneTaken).await;
        }
        if let Some(agent) = new.agent_id {
            // Locked (PostgreSQL), so a deletion of the agent waits for this to commit and
            // then unbinds the session.
            let lock = if self.backend == Backend::Postgres {
                " FOR SHARE"
            } else {
                ""
            };
            let found: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT id FROM sandbox_agents WHERE id = $1 AND account_id = $2{lock}"
            )))
            .bind(agent)
            .bind(rules.account)
            .fetch_optional(&mut *tx)
            .await?;
            if found.is_none() {
                return self.refuse_sandbox(tx, sent, PutSandbox::AgentGone).await;
            }
        }
        if let Some(mut mine) = live
            .iter()
            .find(|r| &r.phone == rules.phone && r.account_id == rules.account)
            .cloned()
        {
            refresh(&mut mine);
            mine.updated_at = rules.now;
            update_sandbox(&mut tx, &mine).await?;
            record_sent(&mut tx, sent).await?;
            tx.commit().await?;
            if sent.is_some() {
                self.events_appended();
            }
            return Ok(PutSandbox::Refreshed(mine));
        }
        if rules.one_phone_per_account
            && let Some(other) = live.into_iter().find(|r| r.account_id == rules.account)
        {
            return self
                .refuse_sandbox(tx, sent, PutSandbox::OtherPhone(other))
                .await;
        }
        insert_sandbox(&mut tx, &new).await?;
        record_sent(&mut tx, sent).await?;
        tx.commit().await?;
        if sent.is_some() {
            self.events_appended();
        }
        Ok(PutSandbox::Created(new))
    }

    /// Ends a refused [`Store::put_sandbox`]: a verification that already left is still
    /// recorded (it did reach the phone).
    async fn refuse_sandbox(
        &self,
        mut tx: crate::pool::Tx,
        sent: Option<&MessageRow>,
        outcome: PutSandbox,
    ) -> Result<PutSandbox> {
        record_sent(&mut tx, sent).await?;
        tx.commit().await?;
        if sent.is_some() {
            self.events_appended();
        }
        Ok(outcome)
    }

    /// Deletes the account's live sandbox session `id`; `false` when there is none.
    pub async fn delete_sandbox_session(
        &self,
        account: AccountId,
        id: SandboxId,
        now: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM sandbox_sessions WHERE id = $1 AND account_id = $2 AND expires_at > $3",
        )
        .bind(id)
        .bind(account)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether the account may send to `to` through the sandbox at `now`: an active, unexpired
    /// session of its own for that phone.
    pub async fn sandbox_recipient_active(
        &self,
        account: AccountId,
        to: &Jid,
        now: i64,
    ) -> Result<bool> {
        let Some(phone) = to.phone() else {
            return Ok(false);
        };
        let found: Option<String> = sqlx::query_scalar(
            "SELECT id FROM sandbox_sessions WHERE account_id = $1 AND phone = $2 AND status = 'active' \
             AND expires_at > $3",
        )
        .bind(account)
        .bind(phone.e164().to_owned())
        .bind(now)
        .fetch_optional(&self.read)
        .await?;
        Ok(found.is_some())
    }

    /// Stores a new agent, with its new webhook endpoint when given, in one transaction.
    pub async fn create_agent(&self, row: &AgentRow, webhook: Option<WebhookRow>) -> Result<()> {
        let mut tx = self.write.begin().await?;
        if let Some(hook) = webhook {
            insert_webhook(&mut tx, hook).await?;
        }
        let sql = format!(
            "INSERT INTO sandbox_agents ({AGENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(row.id)
            .bind(row.account_id)
            .bind(row.name.clone())
            .bind(row.description.clone())
            .bind(row.webhook_url.clone())
            .bind(row.webhook_id)
            .bind(row.created_at)
            .bind(row.updated_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Edits the account's agent `id` in one transaction, deciding what happens to its
    /// webhook endpoint from the agent as it is then (so concurrent edits cannot orphan an
    /// endpoint): a new URL retargets the endpoint (its secret stays) or, when there is none,
    /// creates one with `make_hook`; `Some(None)` deletes it. Returns the agent and a new
    /// endpoint's secret; `None` when there is no such agent.
    pub async fn edit_agent(
        &self,
        account: AccountId,
        id: AgentId,
        edit: AgentEdit,
        now: i64,
        make_hook: impl FnOnce(&AgentRow, &str) -> WebhookRow,
    ) -> Result<Option<(AgentRow, Option<String>)>> {
        let mut tx = self.write.begin().await?;
        let lock = if self.backend == Backend::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {AGENT_COLUMNS} FROM sandbox_agents WHERE id = $1 AND account_id = $2{lock}"
        );
        let Some(mut row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(account)
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(AgentRow::from_row)
            .transpose()?
        else {
            return Ok(None);
        };
        if let Some(name) = edit.name {
            row.name = name;
        }
        if let Some(description) = edit.description {
            row.description = description;
        }
        row.updated_at = now;
        let mut secret = None;
        match (edit.webhook_url, row.webhook_id) {
            (None, _) | (Some(None), None) => {}
            (Some(None), Some(hook)) => {
                delete_webhook_in(&mut tx, account, hook).await?;
                row.webhook_id = None;
                row.webhook_url = None;
            }
            (Some(Some(url)), Some(hook)) => {
                sqlx::query(
                    "UPDATE webhooks SET target_url = $1, updated_at = $2 WHERE id = $3 AND account_id = $4",
                )
                .bind(url.clone())
                .bind(now)
                .bind(hook)
                .bind(account)
                .execute(&mut *tx)
                .await?;
                row.webhook_url = Some(url);
            }
            (Some(Some(url)), None) => {
                let hook = insert_webhook(&mut tx, make_hook(&row, &url)).await?;
                secret = Some(hook.signing_secret);
                row.webhook_id = Some(hook.id);
                row.webhook_url = Some(url);
            }
        }
        sqlx::query(
            "UPDATE sandbox_agents SET name = $1, description = $2, webhook_url = $3, webhook_id = $4, \
             updated_at = $5 WHERE id = $6 AND account_id = $7",
        )
        .bind(row.name.clone())
        .bind(row.description.clone())
        .bind(row.webhook_url.clone())
        .bind(row.webhook_id)
        .bind(row.updated_at)
        .bind(row.id)
        .bind(row.account_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some((row, secret)))
    }

    /// The account's agents, oldest first.
    pub async fn list_agents(&self, account: AccountId) -> Result<Vec<AgentRow>> {
        let sql =
            format!("SELECT {AGENT_COLUMNS} FROM sandbox_agents WHERE account_id = $1 ORDER BY id");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(AgentRow::from_row)
            .collect()
    }

    /// The account's agent `id`.
    pub async fn get_agent(&self, account: AccountId, id: AgentId) -> Result<Option<AgentRow>> {
        let sql =
            format!("SELECT {AGENT_COLUMNS} FROM sandbox_agents WHERE id = $1 AND account_id = $2");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(account)
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(AgentRow::from_row)
            .transpose()
    }

    /// Deletes the account's agent `id` with its webhook endpoint (its sandbox sessions stay,
    /// unbound), in one transaction; `false` when there was none.
    pub async fn delete_agent(&self, account: AccountId, id: AgentId) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let hook: Option<Option<String>> = sqlx::query_scalar(
            "SELECT webhook_id FROM sandbox_agents WHERE id = $1 AND account_id = $2",
        )
        .bind(id)
        .bind(account)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(hook) = hook else {
            return Ok(false);
        };
        // The agent row first: a binding in flight holds it, so the unbinding below sees it.
        sqlx::query("DELETE FROM sandbox_agents WHERE id = $1 AND account_id = $2")
            .bind(id)
            .bind(account)
            .execute(&mut *tx)
            .await?;
        if let Some(hook) = hook.and_then(|h| h.parse().ok()) {
            delete_webhook_in(&mut tx, account, hook).await?;
        }
        sqlx::query(
            "UPDATE sandbox_sessions SET agent_id = NULL WHERE agent_id = $1 AND account_id = $2",
        )
        .bind(id)
        .bind(account)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}
