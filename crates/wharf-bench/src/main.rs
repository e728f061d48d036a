//! `wharf-bench`: load scenarios against a real `wharf serve` process. Each scenario starts a
//! fresh server (SQLite in a temporary directory unless `--database-url` is given) and prints
//! throughput, latency percentiles and, where it has one, the ratio to a no-op baseline
//! measured in the same run.

mod server;

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use clap::{Parser, Subcommand};
use serde_json::json;
use server::Server;

#[derive(Debug, Parser)]
#[command(name = "wharf-bench", about = "Wharf's benchmark scenarios")]
struct Cli {
    /// The wharf binary to start (default: `wharf` next to this program).
    #[arg(long, global = true)]
    wharf_bin: Option<PathBuf>,
    /// Run against this database instead of a fresh SQLite file (it must be empty).
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Time from process start to a ready answer on an empty database, and idle memory.
    Startup {
        /// How many fresh starts to time.
        #[arg(long, default_value_t = 10)]
        runs: usize,
        /// How long the server idles before its memory is read.
        #[arg(long, default_value_t = 3)]
        idle_secs: u64,
    },
    /// `GET /v1/whatsapp-sessions` with N sessions in the account, against `GET /healthz`.
    ListSessions {
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        secs: u64,
        /// Page size asked for (the API's default is 50).
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let bin = match cli.wharf_bin {
        Some(b) => b,
        None => std::env::current_exe()?.with_file_name("wharf"),
    };
    anyhow::ensure!(
        bin.exists(),
        "{} not found: build it (cargo build --release -p wharf) or pass --wharf-bin",
        bin.display()
    );
    match cli.scenario {
        Scenario::Startup { runs, idle_secs } => {
            startup(&bin, cli.database_url.as_deref(), runs, idle_secs).await
        }
        Scenario::ListSessions {
            sessions,
            concurrency,
            secs,
            limit,
        } => {
            list_sessions(
                &bin,
                cli.database_url.as_deref(),
                sessions,
                concurrency,
                secs,
                limit,
            )
            .await
        }
    }
}

async fn startup(
    bin: &std::path::Path,
    database_url: Option<&str>,
    runs: usize,
    idle_secs: u64,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        database_url.is_none() || runs == 1,
        "startup with --database-url measures one run (the database is no longer empty after it)"
    );
    let mut times = Vec::new();
    let mut rss = Vec::new();
    for i in 0..runs {
        let server = Server::start(bin, database_url, &[]).await?;
        times.push(server.ready_after);
        if i + 1 == runs {
            tokio::time::sleep(Duration::from_secs(idle_secs)).await;
            rss.push(server.rss_kib()?);
        }
        server.stop().await?;
    }
    times.sort();
    println!("scenario: startup ({runs} fresh starts on an empty database)");
    println!(
        "  ready after: median {:.1} ms, max {:.1} ms",
        ms(times[times.len() / 2]),
        ms(*times.last().unwrap())
    );
    println!(
        "  idle RSS after {idle_secs} s: {:.1} MiB",
        rss[0] as f64 / 1024.0
    );
    Ok(())
}

async fn list_sessions(
    bin: &std::path::Path,
    database_url: Option<&str>,
    sessions: usize,
    concurrency: usize,
    secs: u64,
    limit: usize,
) -> anyhow::Result<()> {
    let server = Server::start(
        bin,
        database_url,
        &["--rate-limit-per-minute", "1000000000"],
    )
    .await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let pat = server
        .pat
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the server printed no token; is the database empty?"))?;
    let create = server.url("/v1/whatsapp-sessions");
    for i in 0..sessions {
        let resp = client
            .post(&create)
            .bearer_auth(&pat)
            .json(&json!({"label": format!("bench {i}")}))
            .send()
            .await?;
        anyhow::ensure!(
            resp.status() == 201,
            "creating session {i}: {}",
            resp.status()
        );
    }
    println!("scenario: list-sessions ({sessions} sessions, {concurrency} clients, {secs} s each)");
    let baseline = load(&client, server.url("/healthz"), None, concurrency, secs).await?;
    baseline.print("baseline GET /healthz");
    let path = format!("/v1/whatsapp-sessions?limit={limit}");
    let list = load(&client, server.url(&path), Some(pat), concurrency, secs).await?;
    list.print(&format!("GET {path}"));
    println!("  ratio to baseline: {:.2}", list.rate() / baseline.rate());
    server.stop().await
}

struct LoadResult {
    ok: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl LoadResult {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile(&self, p: f64) -> Duration {
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies.get(i).copied().unwrap_or_default()
    }
    fn print(&self, name: &str) {
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

/// `concurrency` clients send GETs to `url` back to back for `secs` seconds.
async fn load(
    client: &reqwest::Client,
    url: String,
    token: Option<String>,
    concurrency: usize,
    secs: u64,
) -> anyhow::Result<LoadResult> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let url = Arc::new(url);
    let token = Arc::new(token);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                let mut req = client.get(url.as_str());
                if let Some(token) = token.as_ref() {
                    req = req.bearer_auth(token);
                }
                match req.send().await {
                    Ok(resp) if resp.status().is_success() => {
                        let _ = resp.bytes().await;
                        latencies.push(t.elapsed());
                    }
                    _ => errors += 1,
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
