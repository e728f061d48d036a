//! How fast one session may send: the server's per-engine rate (a token bucket), or an
//! engine's own [`Pacing`]: a sliding one-second window per number plus a budget per
//! recipient, and pauses the provider asks for. Kept across a dispatcher's restarts, so an
//! idle moment does not refill a burst.

use std::{
    collections::{HashMap, VecDeque},
    num::NonZeroU32,
    sync::Mutex,
    time::{Duration, Instant},
};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use wharf_core::engine::Pacing;

/// One session's pace.
pub struct Pace {
    kind: Kind,
    /// Nothing goes out before this: a limit of the whole number was hit.
    paused_until: Mutex<Option<Instant>>,
    /// When a send last took from the budgets.
    last_used: Mutex<Instant>,
}

enum Kind {
    /// `rate` sends per second, bursts of one second's worth.
    Bucket {
        rate: NonZeroU32,
        limiter: DefaultDirectRateLimiter,
    },
    /// At most `pacing.per_second` sends in any one-second window, and a budget per chat.
    Window {
        pacing: Pacing,
        /// When each of the last `per_second` sends finished.
        recent: Mutex<VecDeque<Instant>>,
        pairs: Mutex<HashMap<String, Bucket>>,
    },
}

/// A recipient's budget: `tokens` left as of `at`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Chats remembered before full budgets are forgotten.
const PAIRS_KEPT: usize = 10_000;

impl Pace {
    /// The server's rate for the engine, or the engine's own pacing when it has one.
    pub fn new(rate: NonZeroU32, pacing: Option<Pacing>) -> Self {
        let kind = match pacing {
            Some(pacing) => Kind::Window {
                pacing: Pacing {
                    per_second: pacing.per_second.max(1),
                    pair_burst: pacing.pair_burst.max(1),
                    pair_interval_ms: pacing.pair_interval_ms.max(1),
                },
                recent: Mutex::new(VecDeque::new()),
                pairs: Mutex::new(HashMap::new()),
            },
            None => Kind::Bucket {
                rate,
                limiter: RateLimiter::direct(Quota::per_second(rate)),
            },
        };
        Self {
            kind,
            paused_until: Mutex::new(None),
            last_used: Mutex::new(Instant::now()),
        }
    }

    /// Whether this pace was made from these settings (else the dispatcher makes a new one).
    pub fn matches(&self, rate: NonZeroU32, pacing: Option<Pacing>) -> bool {
        match (&self.kind, pacing) {
            (Kind::Bucket { rate: r, .. }, None) => *r == rate,
            (Kind::Window { pacing: p, .. }, Some(q)) => {
                p.per_second == q.per_second.max(1)
                    && p.pair_burst == q.pair_burst.max(1)
                    && p.pair_interval_ms == q.pair_interval_ms.max(1)
            }
            _ => false,
        }
    }

    /// Whether every budget is full again and no pause is pending: a new pace would be the
    /// same, so this one can be forgotten.
    pub fn rested(&self) -> bool {
        let now = Instant::now();
        let paused = *self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        if paused.is_some_and(|until| until > now) {
            return false;
        }
        let refill = match &self.kind {
            Kind::Bucket { .. } => Duration::from_secs(1),
            Kind::Window { pacing, .. } => Duration::from_millis(
                pacing
                    .pair_interval_ms
                    .saturating_mul(u64::from(pacing.pair_burst))
                    .max(1001),
            ),
        };
        let last = *self.last_used.lock().unwrap_or_else(|e| e.into_inner());
        now.duration_since(last) > refill
    }

    /// As if unused for a long time (tests).
    #[cfg(test)]
    pub fn rest(&self) {
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner()) =
            Instant::now() - Duration::from_secs(3600);
    }

    fn used(&self) {
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// Takes one send to `chat` from its budget; `Err(wait)` when the chat must wait.
    pub fn take_pair(&self, chat: &str) -> Result<(), Duration> {
        let Kind::Window { pacing, pairs, .. } = &self.kind else {
            return Ok(());
        };
        self.used();
        let now = Instant::now();
        let burst = f64::from(pacing.pair_burst);
        let per_ms = 1.0 / pacing.pair_interval_ms as f64;
        let mut pairs = pairs.lock().unwrap_or_else(|e| e.into_inner());
        if pairs.len() > PAIRS_KEPT {
            pairs.retain(|_, b| {
                b.tokens + now.duration_since(b.at).as_millis() as f64 * per_ms < burst
            });
        }
        let b = pairs.entry(chat.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let tokens =
            (b.tokens + now.duration_since(b.at).as_secs_f64() * 1000.0 * per_ms).min(burst);
        if tokens >= 1.0 {
            *b = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            Ok(())
        } else {
            let ms = ((1.0 - tokens) / per_ms).ceil() as u64;
            Err(Duration::from_millis(ms.max(1)))
        }
    }

    /// Waits until one more send fits the number's limit (and any pause is over).
    pub async fn ready(&self) {
        loop {
            let paused = *self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(until) = paused
                && until > Instant::now()
            {
                tokio::time::sleep_until(until.into()).await;
                continue;
            }
            match &self.kind {
                Kind::Bucket { limiter, .. } => return limiter.until_ready().await,
                Kind::Window { pacing, recent, .. } => {
                    let wait = {
                        let recent = recent.lock().unwrap_or_else(|e| e.into_inner());
                        if recent.len() < pacing.per_second as usize {
                            None
                        } else {
                            // The send `per_second` back must have finished more than a
                            // second ago: the provider saw it before it finished and sees
                            // this one after it starts, so no second of its clock holds more.
                            recent.front().map(|oldest| {
                                (*oldest + Duration::from_millis(1001))
                                    .saturating_duration_since(Instant::now())
                            })
                        }
                    };
                    match wait {
                        Some(w) if !w.is_zero() => tokio::time::sleep(w).await,
                        _ => return,
                    }
                }
            }
        }
    }

    /// Records that a send attempt finished (it counts whether or not it was accepted).
    pub fn sent(&self) {
        self.used();
        if let Kind::Window { pacing, recent, .. } = &self.kind {
            let mut recent = recent.lock().unwrap_or_else(|e| e.into_inner());
            recent.push_back(Instant::now());
            while recent.len() > pacing.per_second as usize {
                recent.pop_front();
            }
        }
    }

    /// Holds every send of the session for `d` (a limit of the whole number).
    pub fn pause(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut paused = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        if paused.is_none_or(|p| p < until) {
            *paused = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacing(per_second: u32, burst: u32, interval: u64) -> Option<Pacing> {
        Some(Pacing {
            per_second,
            pair_burst: burst,
            pair_interval_ms: interval,
        })
    }

    #[test]
    fn pairs_get_a_burst_then_a_pace() {
        let pace = Pace::new(NonZeroU32::MIN, pacing(80, 3, 6000));
        for _ in 0..3 {
            assert!(pace.take_pair("a").is_ok());
        }
        let wait = pace.take_pair("a").unwrap_err();
        assert!(
            wait > Duration::from_millis(5900) && wait <= Duration::from_millis(6000),
            "{wait:?}"
        );
        assert!(pace.take_pair("b").is_ok(), "other chats are not held");
        assert!(!pace.rested(), "budgets refill over 18 s");
    }

    #[test]
    fn a_pace_unused_for_its_refill_time_is_rested() {
        let pace = Pace::new(NonZeroU32::MIN, pacing(80, 1, 1));
        assert!(!pace.rested());
        pace.rest();
        assert!(pace.rested());
        pace.pause(Duration::from_secs(5));
        assert!(!pace.rested(), "a pause must be remembered");
    }

    #[tokio::test]
    async fn the_window_never_holds_more_than_the_rate() {
        let pace = Pace::new(NonZeroU32::MIN, pacing(5, 45, 6000));
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..11 {
            pace.ready().await;
            times.push(Instant::now());
            pace.sent();
        }
        for (i, t) in times.iter().enumerate().skip(5) {
            assert!(t.duration_since(times[i - 5]) > Duration::from_secs(1));
        }
        assert!(start.elapsed() >= Duration::from_secs(2));
        assert!(pace.matches(NonZeroU32::MIN, pacing(5, 45, 6000)));
        assert!(!pace.matches(NonZeroU32::MIN, pacing(6, 45, 6000)));
    }
}
