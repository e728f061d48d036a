//! Message templates per session: Wharf's own on web and emulator sessions, a mirror of
//! Meta's on cloud sessions (kept current from Graph answers and the status webhook).

use sqlx::{FromRow, any::AnyRow};
use wharf_core::{AccountId, SessionId, TemplateId};

use crate::{Result, Store, StoreError, conflict_or};

/// A stored template.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateRow {
    pub id: TemplateId,
    pub account_id: AccountId,
    pub session_id: SessionId,
    pub name: String,
    pub language: String,
    pub category: String,
    /// Meta's words: APPROVED, PENDING, REJECTED, PAUSED, …
    pub status: String,
    /// Why it was rejected (or paused), when it was.
    pub reason: Option<String>,
    /// The components as created (Meta's JSON shape).
    pub components: serde_json::Value,
    /// Meta's template id (cloud sessions).
    pub external_id: Option<String>,
    pub status_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, account_id, session_id, name, language, category, status, reason, \
     components, external_id, status_at, created_at, updated_at";

#[derive(FromRow)]
struct Raw {
    id: String,
    account_id: String,
    session_id: String,
    name: String,
    language: String,
    category: String,
    status: String,
    reason: Option<String>,
    components: String,
    external_id: Option<String>,
    status_at: i64,
    created_at: i64,
    updated_at: i64,
}

impl TemplateRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        let raw = Raw::from_row(row)?;
        let corrupt = |what: &str| StoreError::Corrupt(format!("template {} {what}", raw.id));
        Ok(Self {
            id: raw.id.parse().map_err(|_| corrupt("id"))?,
            account_id: raw.account_id.parse().map_err(|_| corrupt("account_id"))?,
            session_id: raw.session_id.parse().map_err(|_| corrupt("session_id"))?,
            components: serde_json::from_str(&raw.components).map_err(|_| corrupt("components"))?,
            name: raw.name,
            language: raw.language,
            category: raw.category,
            status: raw.status,
            reason: raw.reason,
            external_id: raw.external_id,
            status_at: raw.status_at,
            created_at: raw.created_at,
            updated_at: raw.updated_at,
        })
    }
}

impl Store {
    /// The templates of `account`'s session `session`, by name then language.
    pub async fn templates(
        &self,
        account: AccountId,
        session: SessionId,
    ) -> Result<Vec<TemplateRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM templates WHERE account_id = $1 AND session_id = $2 \
             ORDER BY name, language"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account)
            .bind(session)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(TemplateRow::from_row).collect()
    }

    /// Every language of the template `name` of `account`'s session `session`.
    pub async fn templates_named(
        &self,
        account: AccountId,
        session: SessionId,
        name: &str,
    ) -> Result<Vec<TemplateRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM templates WHERE account_id = $1 AND session_id = $2 \
             AND name = $3 ORDER BY language"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account)
            .bind(session)
            .bind(name)
            .fetch_all(&self.write)
            .await?;
        rows.iter().map(TemplateRow::from_row).collect()
    }

    /// Stores a new template; [`StoreError::Conflict`] when the session already has one of
    /// that name and language.
    pub async fn insert_template(&self, t: &TemplateRow) -> Result<()> {
        let sql = format!(
            "INSERT INTO templates ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(t.id)
            .bind(t.account_id)
            .bind(t.session_id)
            .bind(t.name.clone())
            .bind(t.language.clone())
            .bind(t.category.clone())
            .bind(t.status.clone())
            .bind(crate::plain(&t.reason))
            .bind(t.components.to_string())
            .bind(t.external_id.clone())
            .bind(t.status_at)
            .bind(t.created_at)
            .bind(t.updated_at)
            .execute(&self.write)
            .await
            .map_err(|e| conflict_or(e, "template name and language"))?;
        Ok(())
    }

    /// Writes a Graph answer about a cloud template: inserts it, or updates the mirror of the
    /// same name and language. The status is taken unless a later one (from the webhook) is
    /// already recorded.
    pub async fn upsert_mirrored_template(&self, t: &TemplateRow) -> Result<()> {
        let sql = format!(
            "INSERT INTO templates ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (session_id, name, language) DO UPDATE SET category = excluded.category, \
             components = excluded.components, external_id = excluded.external_id, \
             updated_at = excluded.updated_at, \
             status = CASE WHEN templates.status_at <= excluded.status_at THEN excluded.status ELSE templates.status END, \
             reason = CASE WHEN templates.status_at <= excluded.status_at THEN excluded.reason ELSE templates.reason END, \
             status_at = CASE WHEN templates.status_at <= excluded.status_at THEN excluded.status_at ELSE templates.status_at END"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(t.id)
            .bind(t.account_id)
            .bind(t.session_id)
            .bind(t.name.clone())
            .bind(t.language.clone())
            .bind(t.category.clone())
            .bind(t.status.clone())
            .bind(crate::plain(&t.reason))
            .bind(t.components.to_string())
            .bind(t.external_id.clone())
            .bind(t.status_at)
            .bind(t.created_at)
            .bind(t.updated_at)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Replaces a template's components, category, status and reason (an edit).
    pub async fn update_template(&self, t: &TemplateRow) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE templates SET components = $1, category = $2, status = $3, reason = $4, \
             status_at = $5, updated_at = $6 WHERE id = $7 AND account_id = $8",
        )
        .bind(t.components.to_string())
        .bind(t.category.clone())
        .bind(t.status.clone())
        .bind(crate::plain(&t.reason))
        .bind(t.status_at)
        .bind(t.updated_at)
        .bind(t.id)
        .bind(t.account_id)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes template `name` of the session, in `language` or every language; how many
    /// there were.
    pub async fn delete_templates_named(
        &self,
        account: AccountId,
        session: SessionId,
        name: &str,
        language: Option<&str>,
    ) -> Result<u64> {
        let query = match language {
            Some(language) => sqlx::query(
                "DELETE FROM templates WHERE account_id = $1 AND session_id = $2 AND name = $3 \
                 AND language = $4",
            )
            .bind(account)
            .bind(session)
            .bind(name)
            .bind(language),
            None => sqlx::query(
                "DELETE FROM templates WHERE account_id = $1 AND session_id = $2 AND name = $3",
            )
            .bind(account)
            .bind(session)
            .bind(name),
        };
        Ok(query.execute(&self.write).await?.rows_affected())
    }

    /// Forgets the mirrored templates of the session that Graph no longer has: every one
    /// not in `kept` (name, language), among those named `name` when given.
    pub async fn prune_mirrored_templates(
        &self,
        account: AccountId,
        session: SessionId,
        name: Option<&str>,
        kept: &[(String, String)],
    ) -> Result<u64> {
        let rows = match name {
            Some(n) => self.templates_named(account, session, n).await?,
            None => self.templates(account, session).await?,
        };
        let mut gone = 0;
        for row in rows {
            if kept
                .iter()
                .any(|(n, l)| *n == row.name && *l == row.language)
            {
                continue;
            }
            gone += sqlx::query("DELETE FROM templates WHERE id = $1 AND account_id = $2")
                .bind(row.id)
                .bind(account)
                .execute(&self.write)
                .await?
                .rows_affected();
        }
        Ok(gone)
    }

    /// Applies a review outcome from Meta's webhook to the mirrors of template `external_id`
    /// on the sessions of WABA `waba_id`, unless a later status is already recorded.
    pub async fn review_mirrored_template(
        &self,
        waba_id: &str,
        external_id: &str,
        status: &str,
        reason: Option<String>,
        at: i64,
        now: i64,
    ) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE templates SET status = $1, reason = $2, status_at = $3, updated_at = $4 \
             WHERE external_id = $5 AND status_at <= $3 AND session_id IN \
             (SELECT session_id FROM cloud_sessions WHERE waba_id = $6)",
        )
        .bind(status)
        .bind(crate::plain(&reason))
        .bind(at)
        .bind(now)
        .bind(external_id)
        .bind(waba_id)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }
}
