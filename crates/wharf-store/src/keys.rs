//! API keys: personal access tokens and session keys, stored as hashes.

use sqlx::{AnyConnection, Row, any::AnyRow};
use wharf_core::{AccountId, KeyKind, NewToken, SessionId, TokenHash, time::now_millis};

use crate::{Result, Store, StoreError, conflict_or};

/// What to store with a new key.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub account_id: AccountId,
    pub kind: KeyKind,
    pub session_id: Option<SessionId>,
    pub label: Option<String>,
}

/// A stored key (never the raw token).
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub fingerprint: String,
    pub account_id: AccountId,
    pub kind: KeyKind,
    pub session_id: Option<SessionId>,
    pub label: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl KeyRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("api key {what}"));
        let account: String = row.try_get("account_id")?;
        let kind: String = row.try_get("kind")?;
        let session: Option<String> = row.try_get("session_id")?;
        Ok(Self {
            fingerprint: row.try_get("fingerprint")?,
            account_id: account.parse().map_err(|_| corrupt("account_id"))?,
            kind: KeyKind::from_db(&kind).ok_or_else(|| corrupt("kind"))?,
            session_id: session
                .map(|s| s.parse().map_err(|_| corrupt("session_id")))
                .transpose()?,
            label: row.try_get("label")?,
            created_at: row.try_get("created_at")?,
            revoked_at: row.try_get("revoked_at")?,
        })
    }
}

const KEY_COLUMNS: &str =
    "fingerprint, account_id, kind, session_id, label, created_at, revoked_at";

/// Inserts a key inside the caller's transaction.
pub(crate) async fn insert_key(
    conn: &mut AnyConnection,
    key: &NewKey,
    token: &NewToken,
) -> Result<KeyRow> {
    let created_at = now_millis();
    sqlx::query(
        "INSERT INTO api_keys (hash, fingerprint, account_id, kind, session_id, label, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&token.hash.0)
    .bind(&token.fingerprint)
    .bind(key.account_id)
    .bind(key.kind.as_str())
    .bind(key.session_id)
    .bind(key.label.clone())
    .bind(created_at)
    .execute(conn)
    .await
    .map_err(|e| conflict_or(e, "key fingerprint collision"))?;
    Ok(KeyRow {
        fingerprint: token.fingerprint.clone(),
        account_id: key.account_id,
        kind: key.kind,
        session_id: key.session_id,
        label: key.label.clone(),
        created_at,
        revoked_at: None,
    })
}

/// Revokes every live key of a session inside the caller's transaction.
pub(crate) async fn revoke_session_keys(
    conn: &mut AnyConnection,
    session: SessionId,
) -> Result<()> {
    sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE session_id = $2 AND revoked_at IS NULL")
        .bind(now_millis())
        .bind(session)
        .execute(conn)
        .await?;
    Ok(())
}

impl Store {
    /// Mints and stores a new personal access token, returning the raw token once. (Session
    /// keys are minted with their session and rotated with it.)
    pub async fn create_pat(
        &self,
        account: AccountId,
        label: Option<String>,
    ) -> Result<(KeyRow, NewToken)> {
        let token = NewToken::generate(KeyKind::Pat);
        let key = NewKey {
            account_id: account,
            kind: KeyKind::Pat,
            session_id: None,
            label,
        };
        let mut conn = self.write.acquire().await?;
        let row = insert_key(&mut conn, &key, &token).await?;
        Ok((row, token))
    }

    /// For the send path only: the live key with this hash and the auth epoch it was read
    /// at, from memory when cached (`fresh` reads the database and refreshes the entry). A
    /// send made with it must be committed with that epoch (`accept_outgoing`'s `verify`).
    pub async fn key_for_send(
        &self,
        hash: &TokenHash,
        fresh: bool,
    ) -> Result<Option<(KeyRow, i64)>> {
        if !fresh && let Some(hit) = self.auth.key(&hash.0) {
            return Ok(Some(hit));
        }
        let Some((key, epoch)) = self.read_live_key(hash).await? else {
            self.auth.forget_key(&hash.0);
            return Ok(None);
        };
        self.auth.put_key(&hash.0, key.clone(), epoch);
        Ok(Some((key, epoch)))
    }

    /// The live (unrevoked) key with this hash.
    pub async fn find_live_key(&self, hash: &TokenHash) -> Result<Option<KeyRow>> {
        Ok(self.read_live_key(hash).await?.map(|(key, _)| key))
    }

    /// The live key with this hash and the auth epoch, read in one statement.
    async fn read_live_key(&self, hash: &TokenHash) -> Result<Option<(KeyRow, i64)>> {
        let sql = format!(
            "SELECT {KEY_COLUMNS}, {} AS auth_epoch FROM api_keys WHERE hash = $1 AND revoked_at IS NULL",
            crate::authcache::EPOCH
        );
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&hash.0)
            .fetch_optional(&self.read)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some((KeyRow::from_row(&row)?, row.try_get("auth_epoch")?)))
    }

    /// Every key of an account, newest first, revoked ones included.
    pub async fn list_keys(&self, account: AccountId) -> Result<Vec<KeyRow>> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE account_id = $1 ORDER BY created_at DESC, fingerprint"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(KeyRow::from_row)
            .collect()
    }

    /// Revokes the key with this fingerprint. `None` when no such key exists; revoking an
    /// already revoked key is a no-op that returns it.
    pub async fn revoke_key(&self, fingerprint: &str) -> Result<Option<KeyRow>> {
        sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE fingerprint = $2 AND revoked_at IS NULL",
        )
        .bind(now_millis())
        .bind(fingerprint)
        .execute(&self.write)
        .await?;
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE fingerprint = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(fingerprint)
            .fetch_optional(&self.write)
            .await?
            .as_ref()
            .map(KeyRow::from_row)
            .transpose()
    }
}
