//! Prometheus metrics: counters and histograms kept in memory by this process, gauges read
//! from the database at each scrape, written out in the Prometheus text exposition format
//! (version 0.0.4) by hand: a few maps behind one lock are all it takes, so no metrics crate
//! joins the dependency graph.
//!
//! Counters are process-wide (one registry per process, as Prometheus clients keep): every
//! server of a process (tests run several) adds to the same series.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{Mutex, OnceLock},
    time::Duration,
};

/// Upper bounds (seconds) of HTTP request latency buckets.
const REQUEST_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds (seconds) of accept-to-sent and webhook delivery latency buckets.
const SLOW_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

#[derive(Debug, Clone, Default)]
struct Histogram {
    /// Cumulative counts are computed when written; these are per bucket (+Inf last).
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], seconds: f64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; bounds.len() + 1];
        }
        let i = bounds
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(bounds.len());
        self.buckets[i] += 1;
        self.sum += seconds;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let mut cumulative = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            cumulative += n;
            let le = bounds
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
            let sep = if labels.is_empty() { "" } else { "," };
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Default)]
struct Registry {
    /// `(method, route, status)` → count.
    requests: BTreeMap<(String, String, u16), u64>,
    /// `(method, route)` → latency.
    request_seconds: BTreeMap<(String, String), Histogram>,
    /// `(engine, outcome)` → count, outcome `accepted`, `sent` or `failed`.
    messages: BTreeMap<(String, &'static str), u64>,
    /// engine → accept-to-sent latency.
    dispatch_seconds: BTreeMap<String, Histogram>,
    /// outcome (`delivered`, `retry`, `failed`) → webhook attempts.
    webhook_attempts: BTreeMap<&'static str, u64>,
    webhook_seconds: Histogram,
    /// engine → times a running session lost its connection and reconnected.
    reconnects: BTreeMap<String, u64>,
}

/// The process's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
}

/// The process-wide registry.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics {
        registry: Mutex::new(Registry::default()),
    })
}

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut Registry)) {
        // A panic while holding the lock leaves counts that are still counts.
        let mut guard = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard);
    }

    /// One answered HTTP request; `route` is the matched route template (never the raw path,
    /// which would make a series per id).
    pub fn request(&self, method: &str, route: &str, status: u16, took: Duration) {
        self.with(|r| {
            *r.requests
                .entry((method.to_owned(), route.to_owned(), status))
                .or_default() += 1;
            r.request_seconds
                .entry((method.to_owned(), route.to_owned()))
                .or_default()
                .observe(REQUEST_BUCKETS, took.as_secs_f64());
        });
    }

    /// A message accepted (committed with its outbox row) on `engine`.
    pub fn message_accepted(&self, engine: &str) {
        self.with(|r| {
            *r.messages
                .entry((engine.to_owned(), "accepted"))
                .or_default() += 1
        });
    }

    /// A message the engine took, `latency_ms` after it was accepted.
    pub fn message_sent(&self, engine: &str, latency_ms: i64) {
        self.with(|r| {
            *r.messages.entry((engine.to_owned(), "sent")).or_default() += 1;
            r.dispatch_seconds
                .entry(engine.to_owned())
                .or_default()
                .observe(SLOW_BUCKETS, latency_ms.max(0) as f64 / 1000.0);
        });
    }

    /// A message that failed for good.
    pub fn message_failed(&self, engine: &str) {
        self.with(|r| *r.messages.entry((engine.to_owned(), "failed")).or_default() += 1);
    }

    /// One webhook attempt: `delivered`, `retry` (failed, tried again later) or `failed`
    /// (no retry left).
    pub fn webhook_attempt(&self, outcome: &'static str, took: Duration) {
        self.with(|r| {
            *r.webhook_attempts.entry(outcome).or_default() += 1;
            r.webhook_seconds.observe(SLOW_BUCKETS, took.as_secs_f64());
        });
    }

    /// A running session that lost its connection and reconnected.
    pub fn reconnect(&self, engine: &str) {
        self.with(|r| *r.reconnects.entry(engine.to_owned()).or_default() += 1);
    }

    /// The exposition: this process's series, then `gauges` read from the database.
    pub fn render(
        &self,
        gauges: &wharf_store::Gauges,
        pool: &wharf_store::PoolStats,
        rewinds: &wharf_store::RewindStats,
    ) -> String {
        let mut out = String::with_capacity(4096);
        self.with(|r| {
            header(&mut out, "wharf_http_requests_total", "counter", "HTTP requests answered, by method, route template and status.");
            for ((method, route, status), n) in &r.requests {
                let _ = writeln!(out, "wharf_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}", esc(method), esc(route));
            }
            header(&mut out, "wharf_http_request_duration_seconds", "histogram", "Time to answer HTTP requests, by method and route template.");
            for ((method, route), h) in &r.request_seconds {
                let labels = format!("method=\"{}\",route=\"{}\"", esc(method), esc(route));
                h.write(&mut out, "wharf_http_request_duration_seconds", &labels, REQUEST_BUCKETS);
            }
            for (outcome, help) in [
                ("accepted", "Messages accepted (committed, queued for the dispatcher), by engine."),
                ("sent", "Messages the engine took (sent to WhatsApp), by engine."),
                ("failed", "Messages that failed for good, by engine."),
            ] {
                let name = format!("wharf_messages_{outcome}_total");
                header(&mut out, &name, "counter", help);
                for ((engine, o), n) in &r.messages {
                    if *o == outcome {
                        let _ = writeln!(out, "{name}{{engine=\"{}\"}} {n}", esc(engine));
                    }
                }
            }
            header(&mut out, "wharf_dispatch_latency_seconds", "histogram", "Time from a message's acceptance to its sending, by engine.");
            for (engine, h) in &r.dispatch_seconds {
                h.write(&mut out, "wharf_dispatch_latency_seconds", &format!("engine=\"{}\"", esc(engine)), SLOW_BUCKETS);
            }
            header(&mut out, "wharf_webhook_attempts_total", "counter", "Webhook delivery attempts, by outcome: delivered, retry (failed, tried again later), failed (no retry left).");
            for (outcome, n) in &r.webhook_attempts {
                let _ = writeln!(out, "wharf_webhook_attempts_total{{outcome=\"{outcome}\"}} {n}");
            }
            header(&mut out, "wharf_webhook_delivery_duration_seconds", "histogram", "Time of one webhook delivery attempt.");
            r.webhook_seconds.write(&mut out, "wharf_webhook_delivery_duration_seconds", "", SLOW_BUCKETS);
            header(&mut out, "wharf_engine_reconnects_total", "counter", "Connected sessions that lost their connection (counted at the loss, as they begin reconnecting), by engine.");
            for (engine, n) in &r.reconnects {
                let _ = writeln!(out, "wharf_engine_reconnects_total{{engine=\"{}\"}} {n}", esc(engine));
            }
        });
        header(
            &mut out,
            "wharf_sessions",
            "gauge",
            "Sessions, by engine and status.",
        );
        for (engine, status, n) in &gauges.sessions {
            let _ = writeln!(
                out,
                "wharf_sessions{{engine=\"{}\",status=\"{}\"}} {n}",
                esc(engine),
                esc(status)
            );
        }
        header(
            &mut out,
            "wharf_outbox_depth",
            "gauge",
            "Jobs waiting for the dispatcher (queued sends and actions), by engine.",
        );
        for (engine, n) in &gauges.outbox {
            let _ = writeln!(out, "wharf_outbox_depth{{engine=\"{}\"}} {n}", esc(engine));
        }
        header(
            &mut out,
            "wharf_webhook_deliveries",
            "gauge",
            "Webhook deliveries, by status (pending is the queue).",
        );
        for (status, n) in &gauges.deliveries {
            let _ = writeln!(
                out,
                "wharf_webhook_deliveries{{status=\"{}\"}} {n}",
                esc(status)
            );
        }
        header(
            &mut out,
            "wharf_event_log_head",
            "gauge",
            "The highest event cursor of any account.",
        );
        let _ = writeln!(out, "wharf_event_log_head {}", gauges.event_head);
        header(
            &mut out,
            "wharf_webhook_lag_events",
            "gauge",
            "Events of its account an active webhook endpoint has not fanned out yet.",
        );
        for (webhook, n) in &gauges.webhook_lag {
            let _ = writeln!(
                out,
                "wharf_webhook_lag_events{{webhook=\"{}\"}} {n}",
                esc(webhook)
            );
        }
        header(
            &mut out,
            "wharf_broadcasts",
            "gauge",
            "Broadcasts (Zernio Business API), by status.",
        );
        for (status, n) in &gauges.broadcasts {
            let _ = writeln!(out, "wharf_broadcasts{{status=\"{}\"}} {n}", esc(status));
        }
        header(
            &mut out,
            "wharf_broadcast_recipients",
            "gauge",
            "Recipients of broadcasts, by the broadcast's status and their own (pending, sent, delivered, read, failed, skipped, cancelled).",
        );
        for (broadcast, status, n) in &gauges.broadcast_recipients {
            let _ = writeln!(
                out,
                "wharf_broadcast_recipients{{broadcast_status=\"{}\",status=\"{status}\"}} {n}",
                esc(broadcast)
            );
        }
        header(
            &mut out,
            "wharf_db_pool_acquires_total",
            "counter",
            "Database connections taken from the pools.",
        );
        let _ = writeln!(out, "wharf_db_pool_acquires_total {}", pool.acquires);
        header(
            &mut out,
            "wharf_db_pool_waits_total",
            "counter",
            "Connection acquisitions that took longer than 1 ms (waited for a free connection, or opened one).",
        );
        let _ = writeln!(out, "wharf_db_pool_waits_total {}", pool.waits);
        header(
            &mut out,
            "wharf_db_pool_wait_seconds_total",
            "counter",
            "Time spent acquiring database connections.",
        );
        let _ = writeln!(
            out,
            "wharf_db_pool_wait_seconds_total {}",
            pool.wait_seconds
        );
        header(
            &mut out,
            "wharf_sqlite_wal_restart_hold_seconds",
            "histogram",
            "Times the SQLite WAL was started over, by how long the checkpointer held the writer for it (writes wait meanwhile); none on PostgreSQL.",
        );
        Histogram {
            buckets: rewinds.buckets.to_vec(),
            sum: rewinds.seconds,
            count: rewinds.count(),
        }
        .write(
            &mut out,
            "wharf_sqlite_wal_restart_hold_seconds",
            "",
            &wharf_store::REWIND_BOUNDS,
        );
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value (backslash, quote, newline).
fn esc(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        let mut h = Histogram::default();
        h.observe(&[0.1, 1.0], 0.05);
        h.observe(&[0.1, 1.0], 0.5);
        h.observe(&[0.1, 1.0], 5.0);
        let mut out = String::new();
        h.write(&mut out, "x", "a=\"b\"", &[0.1, 1.0]);
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.1\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"1\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count{a=\"b\"} 3\n"), "{out}");
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn wal_restarts_are_a_histogram_of_the_time_the_writer_was_held() {
        let metrics = Metrics {
            registry: Mutex::new(Registry::default()),
        };
        let rewinds = wharf_store::RewindStats {
            buckets: [1, 2, 0, 0, 0, 0, 0, 1],
            seconds: 0.5,
        };
        let out = metrics.render(&Default::default(), &Default::default(), &rewinds);
        let name = "wharf_sqlite_wal_restart_hold_seconds";
        for line in [
            format!("# TYPE {name} histogram\n"),
            format!("{name}_bucket{{le=\"0.001\"}} 1\n"),
            format!("{name}_bucket{{le=\"0.005\"}} 3\n"),
            format!("{name}_bucket{{le=\"0.25\"}} 3\n"),
            format!("{name}_bucket{{le=\"+Inf\"}} 4\n"),
            format!("{name}_sum 0.5\n"),
            format!("{name}_count 4\n"),
        ] {
            assert!(out.contains(&line), "{line:?} missing from:\n{out}");
        }
    }
}
