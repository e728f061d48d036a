//! A closed-loop load generator: N clients send requests back to back for a while and every
//! latency is kept for percentiles.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::Value;

/// What each client sends.
pub struct Load {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
    body: Option<Arc<dyn Fn(u64) -> Value + Send + Sync>>,
    expect: u16,
}

/// The outcome of a load.
pub struct LoadResult {
    pub ok: usize,
    pub errors: usize,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
}

impl Load {
    /// GETs of `url`, expecting 200.
    pub fn get(client: &reqwest::Client, url: String, token: Option<String>) -> Self {
        Self {
            client: client.clone(),
            url,
            token,
            body: None,
            expect: 200,
        }
    }

    /// POSTs of `body(n)` to `url`, expecting `expect`.
    pub fn post(
        client: &reqwest::Client,
        url: String,
        token: String,
        expect: u16,
        body: impl Fn(u64) -> Value + Send + Sync + 'static,
    ) -> Self {
        Self {
            client: client.clone(),
            url,
            token: Some(token),
            body: Some(Arc::new(body)),
            expect,
        }
    }

    /// Runs `concurrency` clients for `secs` seconds (or until `total` requests, if set).
    pub async fn run(&self, concurrency: usize, secs: u64) -> anyhow::Result<LoadResult> {
        self.run_bounded(concurrency, Duration::from_secs(secs), u64::MAX)
            .await
    }

    /// Runs until `deadline` passes or `total` requests were sent.
    pub async fn run_bounded(
        &self,
        concurrency: usize,
        duration: Duration,
        total: u64,
    ) -> anyhow::Result<LoadResult> {
        let deadline = Instant::now() + duration;
        let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let (client, url, token, body, expect) = (
                self.client.clone(),
                self.url.clone(),
                self.token.clone(),
                self.body.clone(),
                self.expect,
            );
            let counter = counter.clone();
            tasks.spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0;
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= total {
                        break;
                    }
                    let t = Instant::now();
                    let mut req = match &body {
                        Some(body) => client.post(&url).json(&body(n)),
                        None => client.get(&url),
                    };
                    if let Some(token) = &token {
                        req = req.bearer_auth(token);
                    }
                    match req.send().await {
                        Ok(resp) if resp.status().as_u16() == expect => {
                            let _ = resp.bytes().await;
                            latencies.push(t.elapsed());
                        }
                        Ok(resp) => {
                            if errors == 0 {
                                eprintln!(
                                    "unexpected answer {}: {}",
                                    resp.status(),
                                    resp.text().await.unwrap_or_default()
                                );
                            }
                            errors += 1;
                        }
                        Err(e) => {
                            if errors == 0 {
                                eprintln!("request failed: {e}");
                            }
                            errors += 1;
                        }
                    }
                }
                (latencies, errors)
            });
        }
        let mut all = Vec::new();
        let mut errors = 0;
        while let Some(done) = tasks.join_next().await {
            let (l, e) = done?;
            all.extend(l);
            errors += e;
        }
        let elapsed = start.elapsed();
        all.sort();
        Ok(LoadResult {
            ok: all.len(),
            errors,
            elapsed,
            latencies: all,
        })
    }
}

impl LoadResult {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile(&self, p: f64) -> Duration {
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies.get(i).copied().unwrap_or_default()
    }

    pub fn print(&self, name: &str) {
        println!(
            "  {name}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} ok, {} errors",
            self.rate(),
            ms(self.percentile(0.50)),
            ms(self.percentile(0.99)),
            ms(self.latencies.last().copied().unwrap_or_default()),
            self.ok,
            self.errors
        );
    }
}

/// Milliseconds, as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
