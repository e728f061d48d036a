//! Phone numbers (Zernio Business API) over two real mechanisms: the operator's pool
//! (`wharf numbers add`), from which a purchase assigns a number at once, within the
//! account's quota (`phone_number_quota`); and a provider (Telnyx, when configured) that
//! numbers are ordered from when the pool has none. Meta's registration of a number
//! (`request-code`, `verify`) is in [`meta`].

pub mod meta;
pub mod telnyx;

use std::sync::Arc;

use async_trait::async_trait;
use wharf_core::{EngineError, PhoneNumberId, time::Clock};
use wharf_store::{Claim, NumberStatus, PhoneNumberRow, PoolNumberRow, PoolSearch, Release, Store};

use super::{Caller, CloudService};
use crate::ServiceError;

/// Most numbers `available` answers.
pub const MAX_AVAILABLE: i64 = 100;
/// Numbers `available` answers by default.
pub const DEFAULT_AVAILABLE: i64 = 20;
/// Longest `profileId`.
pub const MAX_PROFILE_ID: usize = 200;
/// How long a number may stay provisioning without an order the provider knows of before
/// it is taken for never ordered (released), and how old a provisioning number must be
/// before the reconciliation checks it.
pub const PROVISIONING_STALE_MS: i64 = 10 * 60_000;
/// How long a provider's order may stay pending before its number can be released anyway.
pub const PROVISIONING_DEADLINE_MS: i64 = 24 * 3_600_000;

/// The quota and the provider.
#[derive(Debug, Clone)]
pub struct NumberSettings {
    /// Numbers one account may hold at once.
    pub quota: i64,
    /// Telnyx, when configured.
    pub telnyx: Option<telnyx::TelnyxSettings>,
}

/// A number that can be purchased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// E.164.
    pub phone_number: String,
    pub country: String,
    pub locality: Option<String>,
    pub area_code: Option<String>,
    /// `pool` or the provider's name.
    pub source: &'static str,
}

impl From<PoolNumberRow> for Offer {
    fn from(p: PoolNumberRow) -> Self {
        Self {
            phone_number: p.phone_number,
            country: p.country,
            locality: p.locality,
            area_code: p.area_code,
            source: "pool",
        }
    }
}

/// A provider's search.
#[derive(Debug, Clone, Default)]
pub struct ProviderSearch {
    /// The provider's own country when `None`.
    pub country: Option<String>,
    pub area_code: Option<String>,
    pub locality: Option<String>,
    pub contains: Option<String>,
    pub limit: usize,
}

/// Where a provider's order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    Pending,
    Success,
    Failure,
}

/// A provider's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderState {
    pub order_id: String,
    pub status: OrderStatus,
}

/// A provider numbers are bought from on demand.
#[async_trait]
pub trait NumberProvider: Send + Sync {
    /// Its name, stored as the number's source.
    fn name(&self) -> &'static str;
    /// The country it searches.
    fn country(&self) -> &str;
    /// Numbers it has for sale.
    async fn search(&self, q: &ProviderSearch) -> Result<Vec<Offer>, ServiceError>;
    /// Orders one, with `reference` (the record's id) as the order's customer reference.
    /// A refusal (nothing was ordered) is [`EngineError::Permanent`]; any other error leaves
    /// open whether the order was placed.
    async fn order(&self, phone_number: &str, reference: &str) -> Result<OrderState, ServiceError>;
    /// Where an order stands.
    async fn order_state(&self, order_id: &str) -> Result<OrderState, ServiceError>;
    /// The order placed with `reference`, if any.
    async fn find_order(&self, reference: &str) -> Result<Option<OrderState>, ServiceError>;
    /// Cancels what is still pending of an order; where the order then stands (it may have
    /// completed or failed meanwhile).
    async fn cancel_order(&self, order_id: &str) -> Result<OrderState, ServiceError>;
    /// Gives a number back (a number the provider no longer has counts as given back).
    async fn release(&self, phone_number: &str) -> Result<(), ServiceError>;
}

/// The area code of a North American number (`+1` and ten digits): its three first digits.
pub fn area_code_of(e164: &str) -> Option<String> {
    let national = e164.strip_prefix("+1")?;
    (national.len() == 10 && national.bytes().all(|b| b.is_ascii_digit()))
        .then(|| national[..3].to_owned())
}

/// `available`'s filters, as given.
#[derive(Debug, Clone, Default)]
pub struct AvailableQuery<'a> {
    /// ISO 3166-1 alpha-2 (a Wharf extension: Zernio's newer SDKs send it).
    pub country: Option<&'a str>,
    pub prefix: Option<&'a str>,
    pub locality: Option<&'a str>,
    pub contains: Option<&'a str>,
    pub limit: Option<&'a str>,
}

fn digits(field: &str, v: Option<&str>, max: usize) -> Result<Option<String>, ServiceError> {
    let Some(v) = v.map(str::trim) else {
        return Ok(None);
    };
    if v.is_empty() || v.len() > max || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ServiceError::invalid(
            field,
            format!("must be 1 to {max} digits"),
        ));
    }
    Ok(Some(v.to_owned()))
}

/// A `profileId`: an opaque label of at most 200 characters.
pub fn profile_id(v: Option<&str>) -> Result<String, ServiceError> {
    let v = v
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ServiceError::invalid("profileId", "profileId is required"))?;
    if v.chars().count() > MAX_PROFILE_ID || v.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            "profileId",
            format!("must be at most {MAX_PROFILE_ID} characters without control characters"),
        ));
    }
    Ok(v.to_owned())
}

/// An optional ISO 3166-1 alpha-2 country, upper-cased.
fn country(v: Option<&str>) -> Result<Option<String>, ServiceError> {
    let Some(v) = v.map(str::trim) else {
        return Ok(None);
    };
    if v.len() != 2 || !v.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(ServiceError::invalid(
            "country",
            "must be an ISO 3166-1 alpha-2 code such as US",
        ));
    }
    Ok(Some(v.to_ascii_uppercase()))
}

fn not_found() -> ServiceError {
    ServiceError::NotFound("phone number")
}

/// The refusal of an operation on a number already released or being released.
fn gone(row: &PhoneNumberRow) -> ServiceError {
    match row.status {
        NumberStatus::Releasing => ServiceError::conflict(
            "release_in_progress",
            "Phone number is already being released",
        ),
        _ => ServiceError::conflict("already_released", "Phone number is already released"),
    }
}

/// The phone numbers service.
pub struct NumberService {
    store: Store,
    cloud: Arc<CloudService>,
    clock: Clock,
    quota: i64,
    provider: Option<Arc<dyn NumberProvider>>,
}

impl NumberService {
    /// The service; Telnyx is built when `settings` configure it.
    pub fn new(
        store: Store,
        cloud: Arc<CloudService>,
        clock: Clock,
        settings: NumberSettings,
    ) -> anyhow::Result<Self> {
        let provider = match settings.telnyx {
            Some(t) => Some(Arc::new(telnyx::Telnyx::new(t)?) as Arc<dyn NumberProvider>),
            None => None,
        };
        Ok(Self {
            store,
            cloud,
            clock,
            quota: settings.quota,
            provider,
        })
    }

    /// The caller's number `id` (an unknown, malformed or foreign id is the same 404).
    async fn held(&self, caller: &Caller, id: &str) -> Result<PhoneNumberRow, ServiceError> {
        let id: PhoneNumberId = id.trim().parse().map_err(|_| not_found())?;
        self.store
            .phone_number(caller.account_id, id)
            .await?
            .ok_or_else(not_found)
    }

    /// The caller's numbers: released ones only when `status` asks for them.
    pub async fn list(
        &self,
        caller: &Caller,
        status: Option<&str>,
        profile: Option<&str>,
    ) -> Result<Vec<PhoneNumberRow>, ServiceError> {
        let status = match status.map(str::trim) {
            None => None,
            Some(s) => Some(NumberStatus::parse(s).ok_or_else(|| {
                ServiceError::invalid(
                    "status",
                    "must be one of: provisioning, active, suspended, releasing, released",
                )
            })?),
        };
        let profile = profile.map(|p| profile_id(Some(p))).transpose()?;
        Ok(self
            .store
            .phone_numbers(caller.account_id, status, profile.as_deref())
            .await?)
    }

    /// One number; a number still being ordered is checked with the provider first.
    pub async fn get(&self, caller: &Caller, id: &str) -> Result<PhoneNumberRow, ServiceError> {
        let row = self.held(caller, id).await?;
        self.checked(row).await
    }

    /// `row`, checked with its provider when it is still being ordered (the stored state
    /// stands when the provider cannot be read).
    async fn checked(&self, row: PhoneNumberRow) -> Result<PhoneNumberRow, ServiceError> {
        let Some(provider) = &self.provider else {
            return Ok(row);
        };
        if row.status != NumberStatus::Provisioning || row.source != provider.name() {
            return Ok(row);
        }
        let fallback = row.clone();
        match self.check_order(provider.as_ref(), row).await {
            Ok(row) => Ok(row),
            Err(e) => {
                // The stored state is still true: the number is being provisioned.
                tracing::warn!(number = %fallback.id, error = %e, "cannot read the provider's order");
                Ok(fallback)
            }
        }
    }

    /// Reads the order of a provisioning number (by its id, else by the record's id as the
    /// customer reference) and applies it. A number with no order the provider knows of is
    /// released once it is stale: the order was never placed.
    async fn check_order(
        &self,
        provider: &dyn NumberProvider,
        row: PhoneNumberRow,
    ) -> Result<PhoneNumberRow, ServiceError> {
        let state = match &row.provider_order_id {
            Some(order) => Some(provider.order_state(order).await?),
            None => provider.find_order(&row.id.to_string()).await?,
        };
        match state {
            Some(state) => self.settle(row, &state).await,
            None if row.updated_at < self.clock.now_millis() - PROVISIONING_STALE_MS => {
                tracing::info!(number = %row.id, "no order was placed for the number; released");
                let now = self.clock.now_millis();
                self.store
                    .settle_order(row.account_id, row.id, None, Some(false), now)
                    .await?;
                self.reread(&row).await
            }
            None => Ok(row),
        }
    }

    async fn reread(&self, row: &PhoneNumberRow) -> Result<PhoneNumberRow, ServiceError> {
        self.store
            .phone_number(row.account_id, row.id)
            .await?
            .ok_or_else(not_found)
    }

    /// Applies an order's outcome to its record (while it is still provisioning): active on
    /// success; on failure the number never became the account's and is released.
    async fn settle(
        &self,
        row: PhoneNumberRow,
        state: &OrderState,
    ) -> Result<PhoneNumberRow, ServiceError> {
        let outcome = match state.status {
            OrderStatus::Pending => None,
            OrderStatus::Success => Some(true),
            OrderStatus::Failure => Some(false),
        };
        self.store
            .settle_order(
                row.account_id,
                row.id,
                Some(&state.order_id),
                outcome,
                self.clock.now_millis(),
            )
            .await?;
        self.reread(&row).await
    }

    /// Numbers left halfway with the provider (a crash, a dropped connection, an outage):
    /// releases are taken up again, stale provisioning numbers checked with the provider.
    /// Run at startup and periodically.
    pub async fn reconcile(&self) -> Result<usize, ServiceError> {
        let Some(provider) = &self.provider else {
            return Ok(0);
        };
        let rows = self
            .store
            .numbers_to_reconcile(self.clock.now_millis() - PROVISIONING_STALE_MS)
            .await?;
        let mut settled = 0;
        for row in rows {
            if row.source != provider.name() {
                continue;
            }
            let id = row.id;
            let outcome = match row.status {
                NumberStatus::Releasing => self.give_back(row, None).await,
                _ => self.check_order(provider.as_ref(), row).await,
            };
            match outcome {
                Ok(_) => settled += 1,
                Err(e) => tracing::warn!(number = %id, error = %e, "cannot reconcile the number"),
            }
        }
        Ok(settled)
    }

    /// Numbers that can be purchased: the pool's available ones matching the filters, then
    /// the provider's (when configured) up to `limit`.
    pub async fn available(
        &self,
        _caller: &Caller,
        q: AvailableQuery<'_>,
    ) -> Result<Vec<Offer>, ServiceError> {
        self.paid_plan()?;
        let limit = match q.limit.map(str::trim) {
            None => DEFAULT_AVAILABLE,
            Some(l) => l
                .parse::<i64>()
                .ok()
                .filter(|l| (1..=MAX_AVAILABLE).contains(l))
                .ok_or_else(|| {
                    ServiceError::invalid(
                        "limit",
                        format!("must be an integer from 1 to {MAX_AVAILABLE}"),
                    )
                })?,
        };
        let country = country(q.country)?;
        let area_code = digits("prefix", q.prefix, 6)?;
        let contains = digits("contains", q.contains, 15)?;
        let locality = match q.locality.map(str::trim) {
            None => None,
            Some(l) if l.is_empty() || l.chars().count() > 100 => {
                return Err(ServiceError::invalid(
                    "locality",
                    "must be 1 to 100 characters",
                ));
            }
            Some(l) => Some(l.to_owned()),
        };
        let mut offers: Vec<Offer> = self
            .store
            .search_pool(&PoolSearch {
                country: country.clone(),
                area_code: area_code.clone(),
                locality: locality.clone(),
                contains: contains.clone(),
                limit,
            })
            .await?
            .into_iter()
            .map(Offer::from)
            .collect();
        let wanted = usize::try_from(limit).unwrap_or(0);
        if let Some(provider) = &self.provider
            && offers.len() < wanted
        {
            let more = provider
                .search(&ProviderSearch {
                    country,
                    area_code,
                    locality,
                    contains,
                    limit: wanted - offers.len(),
                })
                .await;
            let more = match more {
                Ok(more) => more,
                // The pool's numbers are still worth answering.
                Err(e) if !offers.is_empty() => {
                    tracing::warn!(error = %e, "the provider's number search failed");
                    Vec::new()
                }
                Err(e) => return Err(e),
            };
            for offer in more {
                if !offers.iter().any(|o| o.phone_number == offer.phone_number) {
                    offers.push(offer);
                }
            }
            offers.truncate(wanted);
        }
        Ok(offers)
    }

    /// The caller's numbers of `profile` whose Meta verification holds (not expired).
    pub async fn preverified(
        &self,
        caller: &Caller,
        profile: Option<&str>,
    ) -> Result<Vec<PhoneNumberRow>, ServiceError> {
        let profile = profile_id(profile)?;
        let now = self.clock.now_millis();
        Ok(self
            .store
            .phone_numbers(caller.account_id, None, Some(&profile))
            .await?
            .into_iter()
            .filter(|n| meta::verified(n, now) && n.status != NumberStatus::Releasing)
            .collect())
    }

    /// A new record of the caller's for `profile` (its number is filled in by the claim).
    fn holding(&self, caller: &Caller, profile: String, now: i64) -> PhoneNumberRow {
        PhoneNumberRow {
            id: PhoneNumberId::generate(),
            account_id: caller.account_id,
            phone_number: String::new(),
            country: String::new(),
            source: "pool".into(),
            provider_order_id: None,
            status: NumberStatus::Active,
            profile_id: Some(profile),
            meta_preverified_id: None,
            meta_verification_status: None,
            meta_verified_at: None,
            meta_verification_expires_at: None,
            provisioned_at: Some(now),
            released_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Refuses an account that may hold no number (Zernio's 403 of a free plan).
    fn paid_plan(&self) -> Result<(), ServiceError> {
        if self.quota > 0 {
            return Ok(());
        }
        Err(ServiceError::Forbidden(
            "A paid plan is required: this server lets no account hold phone numbers \
             (phone_number_quota is 0)"
                .into(),
        ))
    }

    fn quota_reached(&self, held: i64) -> ServiceError {
        ServiceError::conflict(
            "plan_limit_reached",
            format!(
                "Phone number limit reached: the account holds {held} of the {} numbers it may hold",
                self.quota
            ),
        )
    }

    /// Assigns the caller a number (of `country` when given): the pool's oldest available
    /// one, else one ordered from the provider. Refused when the caller holds its quota.
    pub async fn purchase(
        &self,
        caller: &Caller,
        profile: Option<&str>,
        country: Option<&str>,
    ) -> Result<PhoneNumberRow, ServiceError> {
        self.paid_plan()?;
        let profile = profile_id(profile)?;
        let country = self::country(country)?;
        let now = self.clock.now_millis();
        let holding = self.holding(caller, profile, now);
        match self
            .store
            .claim_pool_number(self.quota, country.as_deref(), holding.clone())
            .await?
        {
            Claim::Done(row) => Ok(*row),
            Claim::QuotaReached(held) => Err(self.quota_reached(held)),
            Claim::Unavailable => match &self.provider {
                Some(provider) => self.order(provider.as_ref(), country, holding).await,
                None => Err(ServiceError::conflict(
                    "no_numbers_available",
                    "No phone number is available: the operator's pool is empty",
                )),
            },
        }
    }

    /// Reserves one of the provider's numbers for the caller and orders it.
    async fn order(
        &self,
        provider: &dyn NumberProvider,
        country: Option<String>,
        holding: PhoneNumberRow,
    ) -> Result<PhoneNumberRow, ServiceError> {
        let wanted = country
            .clone()
            .unwrap_or_else(|| provider.country().to_owned());
        let offers = provider
            .search(&ProviderSearch {
                country,
                limit: 5,
                ..Default::default()
            })
            .await?;
        let mut refusal = None;
        for offer in offers {
            let row = PhoneNumberRow {
                id: PhoneNumberId::generate(),
                phone_number: offer.phone_number,
                country: offer.country,
                source: provider.name().into(),
                status: NumberStatus::Provisioning,
                provisioned_at: None,
                ..holding.clone()
            };
            match self.store.reserve_number(self.quota, &row).await? {
                Claim::QuotaReached(held) => return Err(self.quota_reached(held)),
                Claim::Unavailable => continue,
                Claim::Done(row) => {
                    let row = *row;
                    match provider.order(&row.phone_number, &row.id.to_string()).await {
                        Ok(state) if state.status == OrderStatus::Failure => {
                            self.store.forget_number(row.account_id, row.id).await?;
                            refusal = Some(ServiceError::Engine(EngineError::Permanent(format!(
                                "{} could not provision {}",
                                provider.name(),
                                row.phone_number
                            ))));
                        }
                        Ok(state) => return self.settle(row, &state).await,
                        // Refused (the number is gone, say): nothing was ordered; the next.
                        Err(e @ ServiceError::Engine(EngineError::Permanent(_))) => {
                            tracing::info!(number = %row.phone_number, error = %e, "the provider refused the order");
                            self.store.forget_number(row.account_id, row.id).await?;
                            refusal = Some(e);
                        }
                        // The operator's credentials: nothing was ordered.
                        Err(e @ ServiceError::Unavailable { .. }) => {
                            self.store.forget_number(row.account_id, row.id).await?;
                            return Err(e);
                        }
                        // A timeout or an outage: the order may have been placed. The
                        // number stays provisioning; its order is looked up later.
                        Err(e) => {
                            tracing::warn!(number = %row.id, error = %e, "the provider's order has no answer; checked later");
                            return Ok(row);
                        }
                    }
                }
            }
        }
        if let Some(e) = refusal {
            return Err(e);
        }
        Err(ServiceError::conflict(
            "no_numbers_available",
            format!(
                "No phone number is available: the operator's pool is empty and {} has none in {wanted}",
                provider.name(),
            ),
        ))
    }

    /// Releases the caller's number. A pool number is `released` and available again in one
    /// transaction; an ordered number is `releasing` while its provider takes it back, then
    /// `released` (or as it was, should the provider refuse; a release that failed halfway
    /// is taken up again by the next call or the reconciliation). A number a live session
    /// of the account uses is refused: that session is deleted first.
    pub async fn release(&self, caller: &Caller, id: &str) -> Result<PhoneNumberRow, ServiceError> {
        let stored = self.held(caller, id).await?;
        // A number still being ordered is checked with the provider first.
        let mut row = self.checked(stored.clone()).await?;
        if row.status == NumberStatus::Provisioning
            && row.created_at <= self.clock.now_millis() - PROVISIONING_DEADLINE_MS
        {
            row = self.cancel_order(row).await?;
        }
        match row.status {
            // Its order was never placed or failed: nothing is held any more.
            NumberStatus::Released if stored.status == NumberStatus::Provisioning => {
                return Ok(row);
            }
            NumberStatus::Released => return Err(gone(&row)),
            // A release that failed halfway: the provider is asked again.
            NumberStatus::Releasing => return self.give_back(row, None).await,
            NumberStatus::Provisioning
                if row.created_at > self.clock.now_millis() - PROVISIONING_DEADLINE_MS =>
            {
                return Err(ServiceError::conflict(
                    "provisioning_in_progress",
                    "Phone number is still being provisioned; release it once it is active",
                ));
            }
            _ => {}
        }
        if let Some(session) = self
            .store
            .session_using_number(
                caller.account_id,
                &row.phone_number,
                row.meta_preverified_id.as_deref(),
            )
            .await?
        {
            return Err(ServiceError::conflict(
                "number_in_use",
                format!("Phone number is used by session {session}; delete that session first"),
            ));
        }
        if row.source == "pool" {
            // One transaction: released, and available in the pool again.
            return self.finish(&row, false).await;
        }
        let before = match self
            .store
            .begin_release(caller.account_id, row.id, self.clock.now_millis())
            .await?
        {
            None => return Err(not_found()),
            Some(Release::Refused(row)) => return Err(gone(&row)),
            Some(Release::Done(before)) => before,
        };
        let status = before.status;
        self.give_back(before, Some(status)).await
    }

    /// Cancels the pending order of a number still provisioning past the deadline, and
    /// settles the number as the order then stands: released when it was cancelled (or had
    /// failed), active when it completed meanwhile (to be given back like any other). An
    /// order the provider will not cancel leaves the number provisioning, and says so.
    async fn cancel_order(&self, row: PhoneNumberRow) -> Result<PhoneNumberRow, ServiceError> {
        let provider = self.provider_of(&row)?;
        let order_id = match &row.provider_order_id {
            Some(order) => Some(order.clone()),
            None => provider
                .find_order(&row.id.to_string())
                .await?
                .map(|o| o.order_id),
        };
        let Some(order_id) = order_id else {
            // No order was placed: `checked` releases such a number once it is stale.
            return Ok(row);
        };
        let state = provider.cancel_order(&order_id).await?;
        let row = self.settle(row, &state).await?;
        if row.status == NumberStatus::Provisioning {
            return Err(ServiceError::conflict(
                "provisioning_in_progress",
                format!(
                    "{} would not cancel its pending order {order_id} for the number; release it once the order completes",
                    provider.name()
                ),
            ));
        }
        tracing::info!(number = %row.id, order = %order_id, status = ?row.status, "cancelled a pending order past its deadline");
        Ok(row)
    }

    /// The provider a number was ordered from, when this server is configured for it.
    fn provider_of(&self, row: &PhoneNumberRow) -> Result<Arc<dyn NumberProvider>, ServiceError> {
        self.provider
            .clone()
            .filter(|p| p.name() == row.source)
            .ok_or_else(|| ServiceError::Unavailable {
                reason_code: "provider_unavailable",
                message: format!(
                    "the number was ordered from {}, which this server is not configured for",
                    row.source
                ),
            })
    }

    /// Has the provider take back a number in `releasing`, then marks it released. Should
    /// the provider refuse, the number is put back to `restore` (when given); should it
    /// fail otherwise, it stays `releasing` to be taken up again. Runs in its own task, so a
    /// dropped connection does not abandon it halfway.
    async fn give_back(
        &self,
        row: PhoneNumberRow,
        restore: Option<NumberStatus>,
    ) -> Result<PhoneNumberRow, ServiceError> {
        let provider = self.provider_of(&row);
        let store = self.store.clone();
        let clock = self.clock.clone();
        let task = tokio::spawn(async move {
            let outcome = match provider {
                Ok(p) => p.release(&row.phone_number).await,
                Err(e) => Err(e),
            };
            let now = clock.now_millis();
            match outcome {
                Ok(()) => finished(
                    store
                        .finish_release(row.account_id, row.id, now, true)
                        .await?,
                ),
                Err(e) => {
                    let refused = matches!(
                        e,
                        ServiceError::Engine(EngineError::Permanent(_))
                            | ServiceError::Unavailable { .. }
                    );
                    if let (true, Some(status)) = (refused, restore) {
                        // Nothing was released: the number is as it was.
                        store
                            .restore_release(row.account_id, row.id, status, now)
                            .await?;
                    }
                    Err(e)
                }
            }
        });
        task.await
            .map_err(|e| ServiceError::Internal(anyhow::anyhow!("the release task: {e}")))?
    }

    async fn finish(
        &self,
        row: &PhoneNumberRow,
        staged: bool,
    ) -> Result<PhoneNumberRow, ServiceError> {
        finished(
            self.store
                .finish_release(row.account_id, row.id, self.clock.now_millis(), staged)
                .await?,
        )
    }
}

fn finished(release: Option<Release>) -> Result<PhoneNumberRow, ServiceError> {
    match release {
        None => Err(not_found()),
        Some(Release::Refused(row)) => Err(gone(&row)),
        Some(Release::Done(row)) => Ok(row),
    }
}

#[cfg(test)]
mod tests;
