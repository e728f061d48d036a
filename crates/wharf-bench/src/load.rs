//! A load generator: N clients send requests back to back for a while (closed loop, the shape
//! of wrk: N connections, one request in flight on each), or requests start at a fixed rate
//! whatever the answers do (open loop). Every latency and the time of every answer are kept,
//! for percentiles, the longest silence and a timeline.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::Value;

/// What each client sends.
#[derive(Clone)]
pub struct Load {
    client: reqwest::Client,
    /// Request `n` goes to `urls[n % len]` (one URL, or one per instance).
    urls: Arc<Vec<String>>,
    token: Option<String>,
    body: Option<Arc<dyn Fn(u64) -> Value + Send + Sync>>,
    expect: u16,
}

/// The outcome of a load.
pub struct LoadResult {
    pub ok: usize,
    pub errors: usize,
    /// When the load began.
    pub started: Instant,
    pub elapsed: Duration,
    /// Latencies of the successful requests, sorted.
    pub latencies: Vec<Duration>,
    /// When each answer (successful or not) arrived, from `started`, sorted.
    pub answers: Vec<Duration>,
}

/// One request's outcome: when it ended (from the start) and its latency, or an error.
type Outcome = (Duration, Result<Duration, String>);

impl Load {
    /// GETs of `url`, expecting 200.
    pub fn get(client: &reqwest::Client, url: String, token: Option<String>) -> Self {
        Self {
            client: client.clone(),
            urls: Arc::new(vec![url]),
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
            urls: Arc::new(vec![url]),
            token: Some(token),
            body: Some(Arc::new(body)),
            expect,
        }
    }

    /// The same requests spread over `urls` in turn (several instances behind no balancer).
    pub fn over(mut self, urls: Vec<String>) -> Self {
        if !urls.is_empty() {
            self.urls = Arc::new(urls);
        }
        self
    }

    /// Request `n`; the latency counts from `since` (its start, or when it was due).
    async fn one(&self, n: u64, since: Instant) -> Result<Duration, String> {
        let url = &self.urls[(n % self.urls.len() as u64) as usize];
        let mut req = match &self.body {
            Some(body) => self.client.post(url).json(&body(n)),
            None => self.client.get(url),
        };
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        match req.send().await {
            Ok(resp) if resp.status().as_u16() == self.expect => {
                let _ = resp.bytes().await;
                Ok(since.elapsed())
            }
            Ok(resp) => Err(format!(
                "unexpected answer {}: {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            )),
            Err(e) => Err(format!("request failed: {e}")),
        }
    }

    /// Runs `concurrency` clients for `secs` seconds (or until `total` requests, if set).
    pub async fn run(&self, concurrency: usize, secs: u64) -> anyhow::Result<LoadResult> {
        self.run_bounded(concurrency, Duration::from_secs(secs), u64::MAX)
            .await
    }

    /// Closed loop: runs until `deadline` passes or `total` requests were sent.
    pub async fn run_bounded(
        &self,
        concurrency: usize,
        duration: Duration,
        total: u64,
    ) -> anyhow::Result<LoadResult> {
        let start = Instant::now();
        let deadline = start + duration;
        let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let (load, counter) = (self.clone(), counter.clone());
            tasks.spawn(async move {
                let mut outcomes: Vec<Outcome> = Vec::new();
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= total {
                        break;
                    }
                    let result = load.one(n, Instant::now()).await;
                    outcomes.push((start.elapsed(), result));
                }
                outcomes
            });
        }
        let mut all = Vec::new();
        while let Some(done) = tasks.join_next().await {
            all.extend(done?);
        }
        Ok(LoadResult::of(start, all))
    }

    /// Open loop: request `n` is due at `n / rate` seconds, whether or not earlier ones were
    /// answered, on at most `connections` connections at once; a request that had to wait for
    /// a connection counts that wait in its latency (from when it was due), so a stall is not
    /// hidden by the requests it kept from starting.
    pub async fn run_open(
        &self,
        rate: u32,
        connections: usize,
        duration: Duration,
    ) -> anyhow::Result<LoadResult> {
        anyhow::ensure!(rate > 0, "the rate must be above 0");
        let start = Instant::now();
        let total = (duration.as_secs_f64() * f64::from(rate)) as u64;
        let slots = Arc::new(tokio::sync::Semaphore::new(connections));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Outcome>();
        for n in 0..total {
            let due = start + Duration::from_secs_f64(n as f64 / f64::from(rate));
            tokio::time::sleep_until(due.into()).await;
            let slot = slots.clone().acquire_owned().await?;
            let (load, tx) = (self.clone(), tx.clone());
            tokio::spawn(async move {
                let result = load.one(n, due).await;
                drop(slot);
                let _ = tx.send((start.elapsed(), result));
            });
        }
        drop(tx);
        let mut all = Vec::with_capacity(total as usize);
        while let Some(outcome) = rx.recv().await {
            all.push(outcome);
        }
        Ok(LoadResult::of(start, all))
    }
}

impl LoadResult {
    fn of(started: Instant, outcomes: Vec<Outcome>) -> Self {
        let elapsed = started.elapsed();
        let mut latencies = Vec::with_capacity(outcomes.len());
        let mut answers = Vec::with_capacity(outcomes.len());
        let mut errors = 0;
        for (at, result) in outcomes {
            answers.push(at);
            match result {
                Ok(latency) => latencies.push(latency),
                Err(e) => {
                    if errors == 0 {
                        eprintln!("{e}");
                    }
                    errors += 1;
                }
            }
        }
        latencies.sort();
        answers.sort();
        Self {
            ok: latencies.len(),
            errors,
            started,
            elapsed,
            latencies,
            answers,
        }
    }

    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile(&self, p: f64) -> Duration {
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies.get(i).copied().unwrap_or_default()
    }

    pub fn max(&self) -> Duration {
        self.latencies.last().copied().unwrap_or_default()
    }

    /// The longest time with no answer at all, and when it began (from the start), counting
    /// from the start to the first answer and from the last answer to the end.
    pub fn longest_silence(&self) -> (Duration, Duration) {
        let mut last = Duration::ZERO;
        let mut longest = (Duration::ZERO, Duration::ZERO);
        for &at in self.answers.iter().chain(std::iter::once(&self.elapsed)) {
            if at.saturating_sub(last) > longest.0 {
                longest = (at - last, last);
            }
            last = at;
        }
        longest
    }

    /// The `k` longest times with no answer, longest first: (length, when it began).
    pub fn silences(&self, k: usize) -> Vec<(Duration, Duration)> {
        let mut gaps: Vec<(Duration, Duration)> = self
            .answers
            .windows(2)
            .map(|w| (w[1] - w[0], w[0]))
            .collect();
        gaps.sort_unstable_by(|a, b| b.cmp(a));
        gaps.truncate(k);
        gaps
    }

    /// Answers per `bucket` from the start.
    pub fn timeline(&self, bucket: Duration) -> Vec<usize> {
        let n = (self.elapsed.as_nanos() / bucket.as_nanos()) as usize + 1;
        let mut counts = vec![0; n];
        for at in &self.answers {
            let i = (at.as_nanos() / bucket.as_nanos()) as usize;
            counts[i.min(n - 1)] += 1;
        }
        counts
    }

    pub fn print(&self, name: &str) {
        println!(
            "  {name}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} ok, {} errors",
            self.rate(),
            ms(self.percentile(0.50)),
            ms(self.percentile(0.99)),
            ms(self.max()),
            self.ok,
            self.errors
        );
    }

    /// As [`Self::print`], with the tail: p99.9 and the longest time without an answer.
    pub fn print_tail(&self, name: &str) {
        self.print(name);
        let (silence, at) = self.longest_silence();
        println!(
            "    p90 {:.2} ms, p99.9 {:.2} ms, p99.99 {:.2} ms; longest time with no answer {:.1} ms (from {:.2} s)",
            ms(self.percentile(0.90)),
            ms(self.percentile(0.999)),
            ms(self.percentile(0.9999)),
            ms(silence),
            at.as_secs_f64()
        );
    }
}

/// Milliseconds, as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
