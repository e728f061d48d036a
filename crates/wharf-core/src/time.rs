//! Timestamps: stored as integer milliseconds since the Unix epoch, shown as RFC 3339.

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// RFC 3339 text (UTC, millisecond precision) for a millisecond timestamp. Trailing zeros of
/// the fraction are dropped (`…20.12Z`, `…20Z`), so compare such texts as times, not as text.
pub fn rfc3339(millis: i64) -> String {
    let nanos = i128::from(millis) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Milliseconds since the Unix epoch of RFC 3339 text (`2026-12-01T09:30:00Z`, with an offset
/// or `Z`, fractions of a second allowed); `None` when it is not such a time.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The time as the server sees it: the system clock, plus an offset that tests move forward
/// to make hours pass (expiry of sandbox sessions) without waiting. Clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl Clock {
    /// Milliseconds since the Unix epoch, as this clock reads.
    pub fn now_millis(&self) -> i64 {
        now_millis() + self.offset_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Moves this clock (and its clones) forward by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms
            .fetch_add(ms, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_advanced_clock_and_its_clones_run_ahead() {
        let clock = super::Clock::default();
        let copy = clock.clone();
        clock.advance(std::time::Duration::from_secs(3600));
        let ahead = copy.now_millis() - super::now_millis();
        assert!((3_599_000..=3_601_000).contains(&ahead), "{ahead}");
    }

    #[test]
    fn formats_utc_milliseconds() {
        assert_eq!(
            super::rfc3339(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            super::parse_rfc3339("2023-11-14T22:13:20.123Z"),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            super::parse_rfc3339("2023-11-14T23:13:20+01:00"),
            Some(1_700_000_000_000)
        );
        assert_eq!(super::parse_rfc3339("2023-11-14"), None);
        assert_eq!(super::parse_rfc3339("yesterday"), None);
    }
}
