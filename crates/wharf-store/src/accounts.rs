//! Accounts (tenants).

use sqlx::{Row, any::AnyRow};
use wharf_core::{AccountId, KeyKind, NewToken, time::now_millis};

use crate::{NewKey, Result, Store, StoreError, keys::insert_key};

/// A stored account.
#[derive(Debug, Clone)]
pub struct AccountRow {
    pub id: AccountId,
    pub name: String,
    pub created_at: i64,
}

impl AccountRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        let id: String = row.try_get("id")?;
        Ok(Self {
            id: id
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("account id {id}")))?,
            name: row.try_get("name")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

impl Store {
    /// Creates an account with its first personal access token, atomically.
    pub async fn create_account(&self, name: &str) -> Result<(AccountRow, NewToken)> {
        let account = AccountRow {
            id: AccountId::generate(),
            name: name.to_owned(),
            created_at: now_millis(),
        };
        let token = NewToken::generate(KeyKind::Pat);
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO accounts (id, name, event_seq, created_at) VALUES ($1, $2, 0, $3)",
        )
        .bind(account.id)
        .bind(&account.name)
        .bind(account.created_at)
        .execute(&mut *tx)
        .await?;
        insert_key(
            &mut tx,
            &NewKey {
                account_id: account.id,
                kind: KeyKind::Pat,
                session_id: None,
                label: Some("initial".into()),
            },
            &token,
        )
        .await?;
        tx.commit().await?;
        Ok((account, token))
    }

    /// How many accounts exist.
    pub async fn count_accounts(&self) -> Result<i64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
            .fetch_one(&self.read)
            .await?;
        Ok(n)
    }

    /// The account `id`, if it exists.
    pub async fn get_account(&self, id: AccountId) -> Result<Option<AccountRow>> {
        sqlx::query("SELECT id, name, created_at FROM accounts WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(AccountRow::from_row)
            .transpose()
    }
}
