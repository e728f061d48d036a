//! How fast one session may send: the server's per-engine rate (a token bucket), or an
//! engine's own [`Pacing`] (or the session's, over it): a sliding one-second window per
//! number, a budget per recipient, a random pause before each send, a daily cap, and pauses
//! the provider asks for. Kept across a dispatcher's restarts, so an idle moment does not
//! refill a burst. Recipient budgets and the daily cap read the dispatcher's clock (the
//! injected [`wharf_core::time::Clock`]), so tests make time pass without waiting.

use std::{
    collections::{HashMap, VecDeque},
    num::NonZeroU32,
    sync::Mutex,
    time::{Duration, Instant},
};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use wharf_core::engine::Pacing;

/// A day of the daily cap: UTC days since the epoch.
const DAY_MS: i64 = 86_400_000;

/// One session's pace.
pub struct Pace {
    kind: Kind,
    /// Nothing goes out before this: a limit of the whole number was hit.
    paused_until: Mutex<Option<Instant>>,
    /// When a send last took from the budgets.
    last_used: Mutex<Instant>,
    /// Sends counted against the daily cap: `(day, count)`.
    daily: Mutex<(i64, u32)>,
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

/// A recipient's budget: `tokens` left as of `at` (ms on the dispatcher's clock).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: i64,
}

/// Chats remembered before full budgets are forgotten.
const PAIRS_KEPT: usize = 10_000;

impl Pace {
    /// The server's rate for the engine, or the engine's own pacing when it has one.
    pub fn new(rate: NonZeroU32, pacing: Option<Pacing>) -> Self {
        let kind = match pacing {
            Some(pacing) => Kind::Window {
                pacing: normal(pacing),
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
            daily: Mutex::new((i64::MIN, 0)),
        }
    }

    /// The daily cap, when this pace has one.
    pub fn daily_cap(&self) -> Option<u32> {
        match &self.kind {
            Kind::Window { pacing, .. } => pacing.daily_cap,
            Kind::Bucket { .. } => None,
        }
    }

    /// Starts the daily count at `sent` sends already made on the day of `now` (ms).
    pub fn seed_daily(&self, now: i64, sent: u32) {
        *self.daily.lock().unwrap_or_else(|e| e.into_inner()) = (now.div_euclid(DAY_MS), sent);
    }

    /// `Err(start of the next day, ms)` when the daily cap is reached at `now`.
    pub fn daily_check(&self, now: i64) -> Result<(), i64> {
        let Some(cap) = self.daily_cap() else {
            return Ok(());
        };
        let day = now.div_euclid(DAY_MS);
        let (counted_day, count) = *self.daily.lock().unwrap_or_else(|e| e.into_inner());
        if counted_day == day && count >= cap {
            Err((day + 1) * DAY_MS)
        } else {
            Ok(())
        }
    }

    /// Counts one send against the daily cap at `now`.
    pub fn count_daily(&self, now: i64) {
        if self.daily_cap().is_none() {
            return;
        }
        let day = now.div_euclid(DAY_MS);
        let mut daily = self.daily.lock().unwrap_or_else(|e| e.into_inner());
        if daily.0 == day {
            daily.1 = daily.1.saturating_add(1);
        } else {
            *daily = (day, 1);
        }
    }

    /// The random pause before the next send: 0 to `jitter_ms`, uniformly; `None` for no
    /// pause at all. (Never a zero-length sleep: a tokio sleep of zero still waits for the
    /// timer's next millisecond tick, and one per send held the dispatcher to about 1,000
    /// sends a second: 699-800/s in the broadcast benchmark at 1M recipients.)
    pub fn jitter(&self) -> Option<Duration> {
        match &self.kind {
            Kind::Window { pacing, .. } if pacing.jitter_ms > 0 => Some(Duration::from_millis(
                rand::rng().random_range(0..=pacing.jitter_ms),
            ))
            .filter(|d| !d.is_zero()),
            _ => None,
        }
    }

    /// Whether this pace was made from these settings (else the dispatcher makes a new one).
    pub fn matches(&self, rate: NonZeroU32, pacing: Option<Pacing>) -> bool {
        match (&self.kind, pacing) {
            (Kind::Bucket { rate: r, .. }, None) => *r == rate,
            (Kind::Window { pacing: p, .. }, Some(q)) => *p == normal(q),
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
                    .clamp(1001, DAY_MS as u64),
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

    /// Takes one send to `chat` from its budget at `now` (ms on the dispatcher's clock);
    /// `Err(wait)` when the chat must wait.
    pub fn take_pair(&self, chat: &str, now: i64) -> Result<(), Duration> {
        let Kind::Window { pacing, pairs, .. } = &self.kind else {
            return Ok(());
        };
        self.used();
        let burst = f64::from(pacing.pair_burst);
        let per_ms = 1.0 / pacing.pair_interval_ms as f64;
        let mut pairs = pairs.lock().unwrap_or_else(|e| e.into_inner());
        if pairs.len() > PAIRS_KEPT {
            pairs.retain(|_, b| b.tokens + (now - b.at).max(0) as f64 * per_ms < burst);
        }
        let b = pairs.entry(chat.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let tokens = (b.tokens + (now - b.at).max(0) as f64 * per_ms).min(burst);
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
                // Waited on tokio's timer: governor's own `until_ready` waits on the
                // futures-timer crate's thread, one more thread to wake for every send.
                Kind::Bucket { limiter, .. } => match limiter.check() {
                    Ok(()) => return,
                    Err(not_until) => {
                        let wait =
                            not_until.wait_time_from(governor::clock::Clock::now(limiter.clock()));
                        tokio::time::sleep(wait).await;
                    }
                },
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

    /// Waits before a send: until it fits the number's limit, then the random pause.
    pub async fn before_send(&self) {
        self.ready().await;
        if let Some(jitter) = self.jitter() {
            tokio::time::sleep(jitter).await;
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

/// `pacing` with every limit at least 1.
fn normal(pacing: Pacing) -> Pacing {
    Pacing {
        per_second: pacing.per_second.max(1),
        pair_burst: pacing.pair_burst.max(1),
        pair_interval_ms: pacing.pair_interval_ms.max(1),
        jitter_ms: pacing.jitter_ms,
        daily_cap: pacing.daily_cap,
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
            jitter_ms: 0,
            daily_cap: None,
        })
    }

    #[test]
    fn pairs_get_a_burst_then_a_pace() {
        let pace = Pace::new(NonZeroU32::MIN, pacing(80, 3, 6000));
        let t = 1_700_000_000_000;
        for _ in 0..3 {
            assert!(pace.take_pair("a", t).is_ok());
        }
        let wait = pace.take_pair("a", t).unwrap_err();
        assert_eq!(wait, Duration::from_millis(6000));
        assert!(pace.take_pair("b", t).is_ok(), "other chats are not held");
        assert!(!pace.rested(), "budgets refill over 18 s");
        // Time passes on the clock, not on the wall: 2 s later, 4 s to go; 6 s later, one more.
        let wait = pace.take_pair("a", t + 2000).unwrap_err();
        assert!(
            (3999..=4001).contains(&(wait.as_millis() as u64)),
            "{wait:?}"
        );
        assert!(pace.take_pair("a", t + 6001).is_ok());
        assert!(pace.take_pair("a", t + 6001).is_err(), "spaced one per 6 s");
        assert!(pace.take_pair("a", t + 12_002).is_ok());
    }

    #[test]
    fn jitter_stays_within_its_bounds_and_varies() {
        let mut p = pacing(1, 1, 1000).unwrap();
        p.jitter_ms = 1500;
        let pace = Pace::new(NonZeroU32::MIN, Some(p));
        let samples: Vec<Duration> = (0..2000)
            .map(|_| pace.jitter().unwrap_or_default())
            .collect();
        assert!(samples.iter().all(|d| *d <= Duration::from_millis(1500)));
        let (min, max) = (samples.iter().min().unwrap(), samples.iter().max().unwrap());
        assert!(*min < Duration::from_millis(150), "{min:?}");
        assert!(*max > Duration::from_millis(1350), "{max:?}");
        let none = Pace::new(NonZeroU32::MIN, pacing(1, 1, 1000));
        assert_eq!(none.jitter(), None, "no pause, not a pause of zero");
        let bucket = Pace::new(NonZeroU32::MIN, None);
        assert_eq!(bucket.jitter(), None);
    }

    #[test]
    fn the_daily_cap_holds_sends_until_the_next_utc_day() {
        let mut p = pacing(10, 10, 1).unwrap();
        p.daily_cap = Some(3);
        let pace = Pace::new(NonZeroU32::MIN, Some(p));
        let day = 20_000 * DAY_MS;
        let noon = day + DAY_MS / 2;
        // Two were sent earlier today (before a restart).
        pace.seed_daily(noon, 2);
        assert!(pace.daily_check(noon).is_ok());
        pace.count_daily(noon);
        assert_eq!(pace.daily_check(noon), Err(day + DAY_MS));
        assert_eq!(pace.daily_check(day + DAY_MS - 1), Err(day + DAY_MS));
        // The next day starts afresh.
        assert!(pace.daily_check(day + DAY_MS).is_ok());
        for _ in 0..3 {
            pace.count_daily(day + DAY_MS + 5);
        }
        assert_eq!(pace.daily_check(day + DAY_MS + 6), Err(day + 2 * DAY_MS));
        assert!(!pace.matches(NonZeroU32::MIN, pacing(10, 10, 1)));
        assert!(pace.matches(NonZeroU32::MIN, Some(p)));
        let uncapped = Pace::new(NonZeroU32::MIN, pacing(10, 10, 1));
        for _ in 0..100 {
            uncapped.count_daily(noon);
        }
        assert!(uncapped.daily_check(noon).is_ok());
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

    // The bucket waits on tokio's timer (not governor's `until_ready`, whose timer thread
    // woke for every paced send): a second's burst at once, then one send per 1/rate.
    #[tokio::test]
    async fn the_bucket_lets_a_burst_through_then_holds_to_the_rate() {
        let pace = Pace::new(NonZeroU32::new(20).unwrap(), None);
        let start = Instant::now();
        for _ in 0..20 {
            pace.ready().await;
        }
        let burst = start.elapsed();
        for _ in 0..10 {
            pace.ready().await;
        }
        let all = start.elapsed();
        assert!(
            burst < Duration::from_millis(200),
            "the burst took {burst:?}"
        );
        assert!(
            all >= Duration::from_millis(450) && all < Duration::from_secs(3),
            "ten sends over the burst at 20/s took {all:?}, not about 500 ms"
        );
    }
}
