//! Phone numbers (Zernio Business API): the operator's pool and the numbers each account
//! holds. A purchase takes a pool number, or reserves a provider's, in one transaction that
//! also checks the account's quota, so two purchases never get the same number and never
//! pass the quota together.

use sqlx::{AnyConnection, FromRow, any::AnyRow};
use wharf_core::{AccountId, PhoneNumberId, SessionId};

use crate::{Result, Store, StoreError, broadcasts::lock_clause, conflict_or};

/// The status of an account's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberStatus {
    Provisioning,
    Active,
    Suspended,
    Releasing,
    Released,
}

impl NumberStatus {
    pub const ALL: [Self; 5] = [
        Self::Provisioning,
        Self::Active,
        Self::Suspended,
        Self::Releasing,
        Self::Released,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provisioning => "provisioning",
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Releasing => "releasing",
            Self::Released => "released",
        }
    }

    /// The status named `text`, if any.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A number of the operator's pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolNumberRow {
    /// E.164 with `+`.
    pub phone_number: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    pub area_code: Option<String>,
    pub locality: Option<String>,
    /// The number's Graph id at Meta, when it was pre-verified.
    pub meta_preverified_id: Option<String>,
    /// The account's record holding it; `None` while it is available.
    pub assigned_to: Option<PhoneNumberId>,
    pub created_at: i64,
}

/// A number an account holds (or held: released ones are kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumberRow {
    pub id: PhoneNumberId,
    pub account_id: AccountId,
    pub phone_number: String,
    pub country: String,
    /// `pool` or the provider's name (`telnyx`).
    pub source: String,
    pub provider_order_id: Option<String>,
    pub status: NumberStatus,
    pub profile_id: Option<String>,
    pub meta_preverified_id: Option<String>,
    /// `pending`, `code_requested` or `verified`.
    pub meta_verification_status: Option<String>,
    pub meta_verified_at: Option<i64>,
    pub meta_verification_expires_at: Option<i64>,
    pub provisioned_at: Option<i64>,
    pub released_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Which available pool numbers to list.
#[derive(Debug, Clone, Default)]
pub struct PoolSearch {
    /// Of this country (ISO 3166-1 alpha-2).
    pub country: Option<String>,
    /// Exactly this area code.
    pub area_code: Option<String>,
    /// This locality (case-insensitive).
    pub locality: Option<String>,
    /// Digits somewhere in the number.
    pub contains: Option<String>,
    pub limit: i64,
}

/// What a purchase found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The account holds the number now.
    Done(Box<PhoneNumberRow>),
    /// The account already holds this many numbers (its quota).
    QuotaReached(i64),
    /// No pool number is available (or the provider's number is already held).
    Unavailable,
}

/// What a step of a release found.
#[derive(Debug, Clone, PartialEq)]
pub enum Release {
    /// The step was taken: [`Store::begin_release`] answers the row as it was before
    /// (to restore it should the provider refuse), [`Store::finish_release`] the released row.
    Done(PhoneNumberRow),
    /// The number's status does not allow the step; the row as it is.
    Refused(PhoneNumberRow),
}

/// What adding a pool number found.
#[derive(Debug, Clone, PartialEq)]
pub enum PoolAdd {
    Added,
    /// It is in the pool already.
    InPool,
    /// An account holds it through a provider (this record).
    Held(PhoneNumberId),
}

/// What removing a pool number found.
#[derive(Debug, Clone, PartialEq)]
pub enum PoolRemoval {
    Removed,
    Missing,
    /// An account holds it (this record).
    Assigned(PhoneNumberId),
}

const POOL_COLUMNS: &str =
    "phone_number, country, area_code, locality, meta_preverified_id, assigned_to, created_at";

const COLUMNS: &str = "id, account_id, phone_number, country, source, provider_order_id, status, \
     profile_id, meta_preverified_id, meta_verification_status, meta_verified_at, \
     meta_verification_expires_at, provisioned_at, released_at, created_at, updated_at";

#[derive(FromRow)]
struct RawPool {
    phone_number: String,
    country: String,
    area_code: Option<String>,
    locality: Option<String>,
    meta_preverified_id: Option<String>,
    assigned_to: Option<String>,
    created_at: i64,
}

impl PoolNumberRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        let raw = RawPool::from_row(row)?;
        let assigned_to = match raw.assigned_to {
            Some(a) => Some(a.parse().map_err(|_| {
                StoreError::Corrupt(format!("pool number {} assigned_to", raw.phone_number))
            })?),
            None => None,
        };
        Ok(Self {
            phone_number: raw.phone_number,
            country: raw.country,
            area_code: raw.area_code,
            locality: raw.locality,
            meta_preverified_id: raw.meta_preverified_id,
            assigned_to,
            created_at: raw.created_at,
        })
    }
}

#[derive(FromRow)]
struct Raw {
    id: String,
    account_id: String,
    phone_number: String,
    country: String,
    source: String,
    provider_order_id: Option<String>,
    status: String,
    profile_id: Option<String>,
    meta_preverified_id: Option<String>,
    meta_verification_status: Option<String>,
    meta_verified_at: Option<i64>,
    meta_verification_expires_at: Option<i64>,
    provisioned_at: Option<i64>,
    released_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl PhoneNumberRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        let raw = Raw::from_row(row)?;
        let corrupt = |what: &str| StoreError::Corrupt(format!("phone number {} {what}", raw.id));
        Ok(Self {
            id: raw.id.parse().map_err(|_| corrupt("id"))?,
            account_id: raw.account_id.parse().map_err(|_| corrupt("account_id"))?,
            status: NumberStatus::parse(&raw.status).ok_or_else(|| corrupt("status"))?,
            phone_number: raw.phone_number,
            country: raw.country,
            source: raw.source,
            provider_order_id: raw.provider_order_id,
            profile_id: raw.profile_id,
            meta_preverified_id: raw.meta_preverified_id,
            meta_verification_status: raw.meta_verification_status,
            meta_verified_at: raw.meta_verified_at,
            meta_verification_expires_at: raw.meta_verification_expires_at,
            provisioned_at: raw.provisioned_at,
            released_at: raw.released_at,
            created_at: raw.created_at,
            updated_at: raw.updated_at,
        })
    }
}

async fn insert_holding(conn: &mut AnyConnection, r: &PhoneNumberRow) -> Result<()> {
    let sql = format!(
        "INSERT INTO phone_numbers ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
         $11, $12, $13, $14, $15, $16)"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(r.id)
        .bind(r.account_id)
        .bind(r.phone_number.clone())
        .bind(r.country.clone())
        .bind(r.source.clone())
        .bind(r.provider_order_id.clone())
        .bind(r.status.as_str())
        .bind(r.profile_id.clone())
        .bind(r.meta_preverified_id.clone())
        .bind(r.meta_verification_status.clone())
        .bind(r.meta_verified_at)
        .bind(r.meta_verification_expires_at)
        .bind(r.provisioned_at)
        .bind(r.released_at)
        .bind(r.created_at)
        .bind(r.updated_at)
        .execute(conn)
        .await
        .map_err(|e| conflict_or(e, "phone number held"))?;
    Ok(())
}

/// Locks the account (PostgreSQL; SQLite has one writer) and counts the numbers it holds.
async fn held(conn: &mut AnyConnection, account: AccountId) -> Result<i64> {
    let lock = lock_clause(conn);
    if !lock.is_empty() {
        let sql = format!("SELECT id FROM accounts WHERE id = $1{lock}");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account)
            .fetch_optional(&mut *conn)
            .await?;
    }
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM phone_numbers WHERE account_id = $1 AND status <> 'released'",
    )
    .bind(account)
    .fetch_one(conn)
    .await?)
}

async fn lock_holding(
    conn: &mut AnyConnection,
    account: AccountId,
    id: PhoneNumberId,
) -> Result<Option<PhoneNumberRow>> {
    let lock = lock_clause(conn);
    let sql =
        format!("SELECT {COLUMNS} FROM phone_numbers WHERE id = $1 AND account_id = $2{lock}");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(account)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(PhoneNumberRow::from_row)
        .transpose()
}

impl Store {
    /// Adds a number to the pool, unless it is there already or an account holds it (a
    /// number ordered from a provider).
    pub async fn add_pool_number(&self, n: &PoolNumberRow) -> Result<PoolAdd> {
        let mut tx = self.write.begin().await?;
        let holder: Option<String> = sqlx::query_scalar(
            "SELECT id FROM phone_numbers WHERE phone_number = $1 AND status <> 'released'",
        )
        .bind(n.phone_number.clone())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(holder) = holder {
            let id = holder
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("phone number id {holder}")))?;
            return Ok(PoolAdd::Held(id));
        }
        let sql = format!(
            "INSERT INTO number_pool ({POOL_COLUMNS}, locality_key) \
             VALUES ($1, $2, $3, $4, $5, NULL, $6, $7)"
        );
        let inserted = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(n.phone_number.clone())
            .bind(n.country.clone())
            .bind(n.area_code.clone())
            .bind(crate::plain(&n.locality))
            .bind(n.meta_preverified_id.clone())
            .bind(n.created_at)
            .bind(crate::plain(&n.locality).map(|l| l.to_lowercase()))
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_or(e, "pool number"));
        match inserted {
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => return Ok(PoolAdd::InPool),
            Err(e) => return Err(e),
        }
        tx.commit().await?;
        Ok(PoolAdd::Added)
    }

    /// The whole pool, in the order numbers were added.
    pub async fn pool_numbers(&self) -> Result<Vec<PoolNumberRow>> {
        let sql =
            format!("SELECT {POOL_COLUMNS} FROM number_pool ORDER BY created_at, phone_number");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(PoolNumberRow::from_row).collect()
    }

    /// Removes a pool number no account holds.
    pub async fn remove_pool_number(&self, phone_number: &str) -> Result<PoolRemoval> {
        let mut tx = self.write.begin().await?;
        let lock = lock_clause(&tx);
        let sql = format!("SELECT {POOL_COLUMNS} FROM number_pool WHERE phone_number = $1{lock}");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(phone_number)
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(PoolNumberRow::from_row)
            .transpose()?;
        let outcome = match row {
            None => PoolRemoval::Missing,
            Some(PoolNumberRow {
                assigned_to: Some(holder),
                ..
            }) => PoolRemoval::Assigned(holder),
            Some(_) => {
                sqlx::query("DELETE FROM number_pool WHERE phone_number = $1")
                    .bind(phone_number)
                    .execute(&mut *tx)
                    .await?;
                PoolRemoval::Removed
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// Available (unassigned) pool numbers matching `q`, oldest first.
    pub async fn search_pool(&self, q: &PoolSearch) -> Result<Vec<PoolNumberRow>> {
        let sql = format!(
            "SELECT {POOL_COLUMNS} FROM number_pool WHERE assigned_to IS NULL \
             AND NOT EXISTS (SELECT 1 FROM phone_numbers p \
             WHERE p.phone_number = number_pool.phone_number AND p.status <> 'released') \
             AND ($1 IS NULL OR area_code = $1) AND ($2 IS NULL OR locality_key = $2) \
             AND ($3 IS NULL OR phone_number LIKE $3) AND ($4 IS NULL OR country = $4) \
             ORDER BY created_at, phone_number LIMIT $5"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(q.area_code.clone())
            .bind(q.locality.as_ref().map(|l| l.to_lowercase()))
            .bind(q.contains.as_ref().map(|c| format!("%{c}%")))
            .bind(q.country.clone())
            .bind(q.limit)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(PoolNumberRow::from_row).collect()
    }

    /// Gives the account the oldest available pool number (of `country` when given), unless
    /// it holds `quota` numbers already. `holding` is the new record (its number, country and
    /// Meta id are the pool's).
    pub async fn claim_pool_number(
        &self,
        quota: i64,
        country: Option<&str>,
        holding: PhoneNumberRow,
    ) -> Result<Claim> {
        let mut tx = self.write.begin().await?;
        let count = held(&mut tx, holding.account_id).await?;
        if count >= quota {
            return Ok(Claim::QuotaReached(count));
        }
        let lock = match lock_clause(&tx) {
            "" => "",
            _ => " FOR UPDATE SKIP LOCKED",
        };
        loop {
            let sql = format!(
                "SELECT {POOL_COLUMNS} FROM number_pool WHERE assigned_to IS NULL \
                 AND ($1 IS NULL OR country = $1) AND NOT EXISTS (SELECT 1 FROM phone_numbers p \
                 WHERE p.phone_number = number_pool.phone_number AND p.status <> 'released') \
                 ORDER BY created_at, phone_number LIMIT 1{lock}"
            );
            let Some(pick) = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(country)
                .fetch_optional(&mut *tx)
                .await?
                .as_ref()
                .map(PoolNumberRow::from_row)
                .transpose()?
            else {
                return Ok(Claim::Unavailable);
            };
            let taken = sqlx::query(
                "UPDATE number_pool SET assigned_to = $1 WHERE phone_number = $2 AND assigned_to IS NULL",
            )
            .bind(holding.id)
            .bind(pick.phone_number.clone())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if taken == 0 {
                continue;
            }
            let row = PhoneNumberRow {
                phone_number: pick.phone_number,
                country: pick.country,
                meta_verification_status: pick
                    .meta_preverified_id
                    .as_ref()
                    .map(|_| "pending".into()),
                meta_preverified_id: pick.meta_preverified_id,
                ..holding
            };
            match insert_holding(&mut tx, &row).await {
                Ok(()) => {}
                // Someone took the number through a provider meanwhile.
                Err(StoreError::Conflict(_)) => return Ok(Claim::Unavailable),
                Err(e) => return Err(e),
            }
            tx.commit().await?;
            return Ok(Claim::Done(Box::new(row)));
        }
    }

    /// Records a provider's number for the account (before it is ordered), unless the
    /// account holds `quota` numbers already or someone holds that number.
    pub async fn reserve_number(&self, quota: i64, holding: &PhoneNumberRow) -> Result<Claim> {
        let mut tx = self.write.begin().await?;
        let count = held(&mut tx, holding.account_id).await?;
        if count >= quota {
            return Ok(Claim::QuotaReached(count));
        }
        match insert_holding(&mut tx, holding).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Ok(Claim::Unavailable),
            Err(e) => return Err(e),
        }
        tx.commit().await?;
        Ok(Claim::Done(Box::new(holding.clone())))
    }

    /// Forgets a reservation (still provisioning) whose order the provider refused.
    pub async fn forget_number(&self, account: AccountId, id: PhoneNumberId) -> Result<()> {
        sqlx::query(
            "DELETE FROM phone_numbers WHERE id = $1 AND account_id = $2 \
             AND status = 'provisioning'",
        )
        .bind(id)
        .bind(account)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The account's numbers, oldest first: released ones only when `status` asks for them.
    pub async fn phone_numbers(
        &self,
        account: AccountId,
        status: Option<NumberStatus>,
        profile_id: Option<&str>,
    ) -> Result<Vec<PhoneNumberRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM phone_numbers WHERE account_id = $1 \
             AND (($2 IS NULL AND status <> 'released') OR status = $2) \
             AND ($3 IS NULL OR profile_id = $3) ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account)
            .bind(status.map(NumberStatus::as_str))
            .bind(profile_id)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(PhoneNumberRow::from_row).collect()
    }

    /// One of the account's numbers.
    pub async fn phone_number(
        &self,
        account: AccountId,
        id: PhoneNumberId,
    ) -> Result<Option<PhoneNumberRow>> {
        let sql = format!("SELECT {COLUMNS} FROM phone_numbers WHERE id = $1 AND account_id = $2");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(account)
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(PhoneNumberRow::from_row)
            .transpose()
    }

    /// Records Meta's verification state of a number, unless it is released or being
    /// released (a release may have begun since the row was read). `false` when it was not
    /// written. A `code_requested` does not overwrite a verification still holding at `now`.
    pub async fn record_verification(&self, r: &PhoneNumberRow, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE phone_numbers SET meta_verification_status = $1, meta_verified_at = $2, \
             meta_verification_expires_at = $3, updated_at = $4 WHERE id = $5 \
             AND account_id = $6 AND status NOT IN ('releasing', 'released') \
             AND ($1 <> 'code_requested' OR meta_verification_status IS NULL \
             OR meta_verification_status <> 'verified' OR meta_verification_expires_at IS NULL \
             OR meta_verification_expires_at <= $4)",
        )
        .bind(r.meta_verification_status.clone())
        .bind(r.meta_verified_at)
        .bind(r.meta_verification_expires_at)
        .bind(now)
        .bind(r.id)
        .bind(r.account_id)
        .execute(&self.write)
        .await?
        .rows_affected();
        Ok(done > 0)
    }

    /// Applies a provider order's outcome to a number still provisioning: its order id, and
    /// `active` (`Some(true)`), `released` (`Some(false)`) or still provisioning (`None`).
    /// `false` when the number was no longer provisioning.
    pub async fn settle_order(
        &self,
        account: AccountId,
        id: PhoneNumberId,
        order_id: Option<&str>,
        outcome: Option<bool>,
        now: i64,
    ) -> Result<bool> {
        let status = match outcome {
            None => NumberStatus::Provisioning,
            Some(true) => NumberStatus::Active,
            Some(false) => NumberStatus::Released,
        };
        let done = sqlx::query(
            "UPDATE phone_numbers SET status = $1, \
             provider_order_id = COALESCE($2, provider_order_id), \
             provisioned_at = CASE WHEN $1 = 'active' THEN $3 ELSE provisioned_at END, \
             released_at = CASE WHEN $1 = 'released' THEN $3 ELSE released_at END, \
             updated_at = $3 WHERE id = $4 AND account_id = $5 AND status = 'provisioning'",
        )
        .bind(status.as_str())
        .bind(order_id)
        .bind(now)
        .bind(id)
        .bind(account)
        .execute(&self.write)
        .await?
        .rows_affected();
        Ok(done > 0)
    }

    /// Puts a number being released back to `status` (its provider refused to take it back).
    /// `false` when it was no longer being released.
    pub async fn restore_release(
        &self,
        account: AccountId,
        id: PhoneNumberId,
        status: NumberStatus,
        now: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE phone_numbers SET status = $1, updated_at = $2 WHERE id = $3 \
             AND account_id = $4 AND status = 'releasing'",
        )
        .bind(status.as_str())
        .bind(now)
        .bind(id)
        .bind(account)
        .execute(&self.write)
        .await?
        .rows_affected();
        Ok(done > 0)
    }

    /// Numbers of every account left halfway with their provider: being released, or still
    /// provisioning and last changed before `stale_before`.
    pub async fn numbers_to_reconcile(&self, stale_before: i64) -> Result<Vec<PhoneNumberRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM phone_numbers WHERE status = 'releasing' \
             OR (status = 'provisioning' AND updated_at < $1) ORDER BY id LIMIT 500"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(stale_before)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(PhoneNumberRow::from_row).collect()
    }

    /// Moves a number to `releasing`, unless it is released or being released already.
    pub async fn begin_release(
        &self,
        account: AccountId,
        id: PhoneNumberId,
        now: i64,
    ) -> Result<Option<Release>> {
        let mut tx = self.write.begin().await?;
        let Some(row) = lock_holding(&mut tx, account, id).await? else {
            return Ok(None);
        };
        if matches!(row.status, NumberStatus::Released | NumberStatus::Releasing) {
            return Ok(Some(Release::Refused(row)));
        }
        sqlx::query("UPDATE phone_numbers SET status = 'releasing', updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(Release::Done(row)))
    }

    /// Marks a number released and gives a pool number back to the pool, in one
    /// transaction: a number in `releasing` when `staged` (its provider gave it back), else a
    /// number neither released nor being released.
    pub async fn finish_release(
        &self,
        account: AccountId,
        id: PhoneNumberId,
        now: i64,
        staged: bool,
    ) -> Result<Option<Release>> {
        let mut tx = self.write.begin().await?;
        let Some(mut row) = lock_holding(&mut tx, account, id).await? else {
            return Ok(None);
        };
        let allowed = match row.status {
            NumberStatus::Releasing => staged,
            NumberStatus::Released => false,
            _ => !staged,
        };
        if !allowed {
            return Ok(Some(Release::Refused(row)));
        }
        row.status = NumberStatus::Released;
        row.released_at = Some(now);
        row.updated_at = now;
        sqlx::query(
            "UPDATE phone_numbers SET status = 'released', released_at = $1, updated_at = $1 \
             WHERE id = $2",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE number_pool SET assigned_to = NULL WHERE assigned_to = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(Release::Done(row)))
    }

    /// A live session of the account using the number: its phone is `phone_number`, or it is
    /// a cloud session of the Graph number `graph_id`.
    pub async fn session_using_number(
        &self,
        account: AccountId,
        phone_number: &str,
        graph_id: Option<&str>,
    ) -> Result<Option<SessionId>> {
        let id: Option<String> = sqlx::query_scalar(
            "SELECT id FROM sessions WHERE account_id = $1 \
             AND status NOT IN ('deleted', 'pending_deletion') AND (phone_number = $2 \
             OR id IN (SELECT session_id FROM cloud_sessions WHERE phone_number_id = $3)) \
             ORDER BY id LIMIT 1",
        )
        .bind(account)
        .bind(phone_number)
        .bind(graph_id)
        .fetch_optional(&self.read)
        .await?;
        id.map(|i| {
            i.parse()
                .map_err(|_| StoreError::Corrupt(format!("session id {i}")))
        })
        .transpose()
    }

    /// The account's oldest live cloud session (whose credentials reach Meta for it).
    pub async fn first_cloud_session(&self, account: AccountId) -> Result<Option<SessionId>> {
        let id: Option<String> = sqlx::query_scalar(
            "SELECT s.id FROM sessions s JOIN cloud_sessions c ON c.session_id = s.id \
             WHERE s.account_id = $1 AND s.status NOT IN ('deleted', 'pending_deletion') \
             ORDER BY s.id LIMIT 1",
        )
        .bind(account)
        .fetch_optional(&self.read)
        .await?;
        id.map(|i| {
            i.parse()
                .map_err(|_| StoreError::Corrupt(format!("session id {i}")))
        })
        .transpose()
    }
}
