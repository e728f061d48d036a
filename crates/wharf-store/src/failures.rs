//! A background loop's failures logged once per outage, not once per poll.
//!
//! A loop that polls the database every second or faster (the server's workers, the
//! listener for the other instances' signals) logged a line at every poll while the database
//! was down: 303 lines in a 30 s outage of PostgreSQL, from eleven loops. Each loop now keeps
//! a [`Failures`]: the first failure of a run is
//! logged at once, the ones after it at most once a [`REPEAT`] with how many there were, and
//! the first success after them says the loop works again, after how many failures and how
//! long.

use std::time::{Duration, Instant};

/// How often a loop that keeps failing logs again.
pub const REPEAT: Duration = Duration::from_secs(60);

/// One loop's run of failures.
#[derive(Debug)]
pub struct Failures {
    what: &'static str,
    /// Failures are logged at ERROR (else WARN).
    errors: bool,
    run: Option<Run>,
}

#[derive(Debug)]
struct Run {
    began: Instant,
    logged: Instant,
    /// Failures in the run so far.
    count: u64,
    /// Failures since the last line.
    unlogged: u64,
}

/// What a failure or a success calls for.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// The run's first failure.
    First,
    /// Still failing: `since_last` failures since the last line, `secs` since the first.
    Again { since_last: u64, secs: u64 },
    /// Working again after `count` failures over `secs`.
    Recovered { count: u64, secs: u64 },
}

impl Failures {
    /// The failures of the loop that does `what` ("the webhook fan-out", ...), logged at WARN.
    pub fn new(what: &'static str) -> Self {
        Self {
            what,
            errors: false,
            run: None,
        }
    }

    /// The same, logged at ERROR (a loop whose failure stops work an operator must see).
    pub fn errors(what: &'static str) -> Self {
        Self {
            errors: true,
            ..Self::new(what)
        }
    }

    /// Notes a failure, and logs it if it is the run's first or the last line is a
    /// [`REPEAT`] old.
    pub fn failed(&mut self, error: &dyn std::fmt::Display) {
        let (what, errors) = (self.what, self.errors);
        match self.on_failure(Instant::now()) {
            Some(Line::First) if errors => tracing::error!(error = %error, "{what} failed"),
            Some(Line::First) => tracing::warn!(error = %error, "{what} failed"),
            Some(Line::Again { since_last, secs }) if errors => tracing::error!(
                error = %error,
                failures = since_last,
                failing_for_s = secs,
                "{what} is still failing"
            ),
            Some(Line::Again { since_last, secs }) => tracing::warn!(
                error = %error,
                failures = since_last,
                failing_for_s = secs,
                "{what} is still failing"
            ),
            _ => {}
        }
    }

    /// Notes a success: after failures, says the loop works again.
    pub fn succeeded(&mut self) {
        let what = self.what;
        if let Some(Line::Recovered { count, secs }) = self.on_success(Instant::now()) {
            tracing::info!(failures = count, failed_for_s = secs, "{what} works again");
        }
    }

    /// Notes `result`'s outcome and hands it back.
    pub fn note<T, E: std::fmt::Display>(&mut self, result: Result<T, E>) -> Result<T, E> {
        match &result {
            Ok(_) => self.succeeded(),
            Err(e) => self.failed(e),
        }
        result
    }

    fn on_failure(&mut self, now: Instant) -> Option<Line> {
        let Some(run) = &mut self.run else {
            self.run = Some(Run {
                began: now,
                logged: now,
                count: 1,
                unlogged: 0,
            });
            return Some(Line::First);
        };
        run.count += 1;
        run.unlogged += 1;
        if now.duration_since(run.logged) < REPEAT {
            return None;
        }
        let line = Line::Again {
            since_last: run.unlogged,
            secs: now.duration_since(run.began).as_secs(),
        };
        run.logged = now;
        run.unlogged = 0;
        Some(line)
    }

    fn on_success(&mut self, now: Instant) -> Option<Line> {
        let run = self.run.take()?;
        Some(Line::Recovered {
            count: run.count,
            secs: now.duration_since(run.began).as_secs(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_one_line_then_one_a_minute_then_one_for_the_recovery() {
        let mut f = Failures::new("test loop");
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_millis(s);
        assert_eq!(f.on_success(at(0)), None, "no outage, nothing to say");
        assert_eq!(f.on_failure(at(0)), Some(Line::First));
        // A poll every 100 ms for just under a minute: quiet.
        for ms in (100..60_000).step_by(100) {
            assert_eq!(f.on_failure(at(ms)), None, "at {ms} ms");
        }
        assert_eq!(
            f.on_failure(at(60_000)),
            Some(Line::Again {
                since_last: 600,
                secs: 60
            })
        );
        assert_eq!(f.on_failure(at(60_100)), None);
        assert_eq!(
            f.on_success(at(61_000)),
            Some(Line::Recovered {
                count: 602,
                secs: 61
            })
        );
        assert_eq!(f.on_success(at(61_100)), None, "said once");
        assert_eq!(
            f.on_failure(at(70_000)),
            Some(Line::First),
            "a new outage is logged at once"
        );
    }
}
