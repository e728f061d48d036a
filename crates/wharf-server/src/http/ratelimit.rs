//! Per-account API rate limits: `rate_limit_per_minute` requests a minute per account,
//! replenished evenly, bursts up to that many.
//!
//! On SQLite (one instance) the allowance lives in the process. On PostgreSQL it is shared by
//! every instance on the database (`Store::take_allowance`, a GCRA kept in one row per
//! account): an instance takes tokens in chunks of a tenth of a second's rate (at least one),
//! spends them locally, and asks again when they are gone, one request at a time per account.
//! The limit then holds across instances to within the chunks the instances hold unspent. If
//! the database cannot be asked, the instance falls back to its own allowance for a few
//! seconds (and logs it), so a database hiccup neither refuses requests nor makes each one
//! wait for the database to fail.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use wharf_core::AccountId;
use wharf_store::{Rate, Store};

use super::error::ApiError;

type KeyedLimiter = RateLimiter<
    AccountId,
    DefaultKeyedStateStore<AccountId>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// Per-account request allowance.
pub struct AccountLimiter {
    per_minute: u32,
    /// The in-process allowance: the only one on SQLite, the fallback on PostgreSQL.
    local: KeyedLimiter,
    clock: DefaultClock,
    shared: Option<Shared>,
}

/// The allowance shared through the database, and the tokens this instance holds of it.
struct Shared {
    store: Store,
    rate: Rate,
    chunk: i64,
    held: Mutex<HashMap<AccountId, Arc<Held>>>,
    /// After a failed ask, the database is not asked again before this: requests meanwhile
    /// use the in-process allowance at once instead of each waiting for the database to fail.
    unreachable_until: Mutex<Option<Instant>>,
}

/// How long an instance uses its own allowance after the database could not be asked.
const FALLBACK: Duration = Duration::from_secs(5);

/// One account's tokens on this instance.
struct Held {
    state: Mutex<HeldState>,
    /// Held while asking the database, so one request per account refills at a time.
    refill: tokio::sync::Mutex<()>,
}

struct HeldState {
    tokens: i64,
    /// The shared theoretical arrival time as of the last grant (for the headers).
    tat_ns: i64,
    /// The shared allowance was empty at the last ask, with no token before this time: until
    /// then requests are refused here without asking again (tokens only come back with time).
    empty_until_ns: i64,
    used: Instant,
}

/// A request [`AccountLimiter::check`] admitted.
pub struct Admitted {
    /// The limit headers to answer with.
    pub headers: HeaderMap,
    /// The token it took.
    pub token: Token,
}

/// A token taken from an account's allowance; see [`AccountLimiter::give_back`].
#[derive(Debug, Clone, Copy)]
pub struct Token {
    account: AccountId,
    /// Taken from the allowance shared through the database (not the in-process fallback).
    shared: bool,
}

/// What a check decided: the headers to send, or the 429 to answer.
enum Decision {
    Admit { remaining: i64, full_in_ns: i64 },
    Refuse { wait_ns: i64 },
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn secs_up(ns: i64) -> u64 {
    u64::try_from(ns.max(0))
        .unwrap_or(0)
        .div_ceil(1_000_000_000)
}

impl AccountLimiter {
    /// An allowance of `per_minute` requests a minute per account, in this process only.
    pub fn new(per_minute: NonZeroU32) -> Self {
        Self {
            per_minute: per_minute.get(),
            local: RateLimiter::keyed(Quota::per_minute(per_minute))
                .with_middleware::<StateInformationMiddleware>(),
            clock: DefaultClock::default(),
            shared: None,
        }
    }

    /// An allowance of `per_minute` requests a minute per account, shared by every instance
    /// on `store`'s database.
    pub fn shared(per_minute: NonZeroU32, store: Store) -> Self {
        let rate = Rate::per_minute(per_minute.get());
        let chunk = (i64::from(per_minute.get()) / 600).clamp(1, rate.burst);
        Self {
            shared: Some(Shared {
                store,
                rate,
                chunk,
                held: Mutex::new(HashMap::new()),
                unreachable_until: Mutex::new(None),
            }),
            ..Self::new(per_minute)
        }
    }

    /// Takes one request from `account`'s allowance: the headers to send and the token taken,
    /// or the 429 to answer.
    pub async fn check(&self, account: &AccountId) -> Result<Admitted, ApiError> {
        let mut shared_token = false;
        let decision = match &self.shared {
            Some(shared) => match shared.take(*account).await {
                Ok(Some(decision)) => {
                    shared_token = true;
                    decision
                }
                Ok(None) => self.take_local(account),
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        "the shared rate limit could not be read; this instance applies its own \
                         for the next {} s",
                        FALLBACK.as_secs()
                    );
                    *shared
                        .unreachable_until
                        .lock()
                        .expect("rate limit state poisoned") = Some(Instant::now() + FALLBACK);
                    self.take_local(account)
                }
            },
            None => self.take_local(account),
        };
        match decision {
            Decision::Admit {
                remaining,
                full_in_ns,
            } => Ok(Admitted {
                headers: headers(
                    self.per_minute,
                    u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
                    secs_up(full_in_ns),
                ),
                token: Token {
                    account: *account,
                    shared: shared_token,
                },
            }),
            Decision::Refuse { wait_ns } => {
                let retry = secs_up(wait_ns).max(1);
                let mut err = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!(
                        "rate limit of {} requests per minute exceeded; retry in {retry} s",
                        self.per_minute
                    ),
                )
                .with_header("retry-after", retry.to_string());
                err.headers
                    .extend(headers(self.per_minute, 0, 60.max(retry)));
                Err(err)
            }
        }
    }

    /// Gives back a token taken by [`Self::check`] for a call another instance answered (a
    /// forwarded call, which the owner counts). A token of the shared allowance goes back to
    /// it in the database, where every instance can spend it (if the database cannot be
    /// asked, to the tokens this instance holds, so its next request spends it); one of the
    /// in-process allowance (the fallback while the database cannot be asked) stays spent,
    /// as that allowance cannot give tokens back.
    pub async fn give_back(&self, token: Token) {
        let (Some(shared), true) = (&self.shared, token.shared) else {
            return;
        };
        let given = shared
            .store
            .give_back_allowance(token.account, shared.rate, now_ns())
            .await;
        if let Err(e) = given {
            tracing::debug!(error = %e, "could not give a forwarded call's token back to the shared allowance; this instance keeps it");
            let held = shared.held(token.account);
            held.state.lock().expect("rate limit state poisoned").tokens += 1;
        }
    }

    fn take_local(&self, account: &AccountId) -> Decision {
        let per_token_ns = 60_000_000_000 / i64::from(self.per_minute);
        match self.local.check_key(account) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision::Admit {
                    remaining: i64::from(remaining),
                    full_in_ns: i64::from(self.per_minute - remaining) * per_token_ns,
                }
            }
            Err(not_until) => Decision::Refuse {
                wait_ns: i64::try_from(not_until.wait_time_from(self.clock.now()).as_nanos())
                    .unwrap_or(i64::MAX),
            },
        }
    }

    /// Drops the state of accounts that are back to a full allowance (or idle a minute).
    pub async fn prune(&self) {
        self.local.retain_recent();
        if let Some(shared) = &self.shared {
            shared
                .held
                .lock()
                .expect("rate limit state poisoned")
                .retain(|_, held| {
                    held.state
                        .lock()
                        .expect("rate limit state poisoned")
                        .used
                        .elapsed()
                        < Duration::from_secs(60)
                });
            if let Err(e) = shared.store.prune_allowances(now_ns()).await {
                tracing::warn!(error = %e, "could not prune the shared rate limits");
            }
        }
    }
}

impl Shared {
    fn held(&self, account: AccountId) -> Arc<Held> {
        self.held
            .lock()
            .expect("rate limit state poisoned")
            .entry(account)
            .or_insert_with(|| {
                Arc::new(Held {
                    state: Mutex::new(HeldState {
                        tokens: 0,
                        tat_ns: 0,
                        empty_until_ns: 0,
                        used: Instant::now(),
                    }),
                    refill: tokio::sync::Mutex::new(()),
                })
            })
            .clone()
    }

    /// Spends one held token if there is one, or refuses while the shared allowance is known
    /// to be empty; `None` when the database must be asked.
    fn spend(&self, held: &Held) -> Option<Decision> {
        let mut state = held.state.lock().expect("rate limit state poisoned");
        state.used = Instant::now();
        let now = now_ns();
        if state.tokens > 0 {
            state.tokens -= 1;
            return Some(Decision::Admit {
                remaining: state.tokens + self.rate.available(state.tat_ns, now),
                full_in_ns: self.rate.full_in_ns(state.tat_ns, now),
            });
        }
        (now < state.empty_until_ns).then(|| Decision::Refuse {
            wait_ns: state.empty_until_ns - now,
        })
    }

    /// Whether the database failed to answer a moment ago (see `unreachable_until`).
    fn unreachable(&self) -> bool {
        self.unreachable_until
            .lock()
            .expect("rate limit state poisoned")
            .is_some_and(|until| Instant::now() < until)
    }

    /// The decision from the held tokens or the database; `None` while the database is
    /// unreachable (the caller applies the in-process allowance).
    async fn take(&self, account: AccountId) -> wharf_store::Result<Option<Decision>> {
        let held = self.held(account);
        if let Some(decided) = self.spend(&held) {
            return Ok(Some(decided));
        }
        if self.unreachable() {
            return Ok(None);
        }
        let _refilling = held.refill.lock().await;
        // Another request may have refilled (or found the database gone) while this one waited.
        if let Some(decided) = self.spend(&held) {
            return Ok(Some(decided));
        }
        if self.unreachable() {
            return Ok(None);
        }
        let now = now_ns();
        let grant = self
            .store
            .take_allowance(account, self.chunk, self.rate, now)
            .await?;
        let mut state = held.state.lock().expect("rate limit state poisoned");
        state.tat_ns = grant.tat_ns;
        if grant.granted == 0 {
            let wait_ns = self.rate.wait_ns(grant.tat_ns, now);
            state.empty_until_ns = now + wait_ns;
            return Ok(Some(Decision::Refuse { wait_ns }));
        }
        state.tokens += grant.granted - 1;
        Ok(Some(Decision::Admit {
            remaining: state.tokens + self.rate.available(grant.tat_ns, now),
            full_in_ns: self.rate.full_in_ns(grant.tat_ns, now),
        }))
    }
}

fn headers(limit: u32, remaining: u32, reset_secs: u64) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-ratelimit-limit", HeaderValue::from(limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    h.insert("x-ratelimit-reset", HeaderValue::from(reset_secs));
    h
}

/// Spawns the periodic pruning of idle rate-limit state.
pub fn spawn_pruner(limiter: Arc<AccountLimiter>, shutdown: tokio_util::sync::CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => limiter.prune().await,
            }
        }
    });
}
