//! `wharf-bench`: load scenarios against a real `wharf serve` process. Each scenario starts a
//! fresh server (SQLite in a temporary directory unless `--database-url` is given, which must
//! name an empty database) and prints throughput, latency percentiles and, where it has one,
//! the ratio to a no-op baseline measured in the same run.

mod broadcast;
mod cloud;
mod cluster;
mod contacts;
mod crash;
mod ingest;
mod load;
mod messaging;
mod receiver;
mod server;
mod sessions;
mod web_sessions;

use std::{path::PathBuf, time::Duration};

use clap::{Parser, Subcommand};
use load::{Load, ms};
use serde_json::json;
use server::Spec;

#[derive(Debug, Parser)]
#[command(name = "wharf-bench", about = "Wharf's benchmark scenarios")]
struct Cli {
    /// The wharf binary to start (default: `wharf` next to this program).
    #[arg(long, global = true)]
    wharf_bin: Option<PathBuf>,
    /// Run against this (empty) database instead of a fresh SQLite file.
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
    /// Clients posting text sends (each durable before its 202), against `GET /healthz` in
    /// the same run: throughput, p50 to p99.99, max, the longest time with no answer, answers
    /// per 100 ms, the SQLite WAL's size and the database's bytes per message.
    Ingest {
        /// Connections, each with one request in flight (closed loop, as wrk); with `--rate`,
        /// the most connections in use at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 20)]
        secs: u64,
        /// Open loop: start this many sends a second whatever the answers do; a send that
        /// waited for a connection counts that wait in its latency.
        #[arg(long)]
        rate: Option<u32>,
        /// Write the timeline (answers and WAL bytes per 100 ms, CSV) to this file instead of
        /// printing its slowest buckets.
        #[arg(long)]
        timeline: Option<PathBuf>,
        /// Dispatch at once and have the emulator deliver and read every message; the bytes
        /// per message are then per read message.
        #[arg(long)]
        read: bool,
        /// Instances on one PostgreSQL database the requests are spread over in turn (the
        /// same total load; the session's owner dispatches).
        #[arg(long, default_value_t = 1)]
        instances: usize,
    },
    /// Queued messages drained through the emulator (or the Cloud API engine) to `sent`.
    Dispatch {
        #[arg(long, default_value_t = 100_000)]
        messages: usize,
        /// `emulator`, or `cloud` (to a fake Graph server in this process).
        #[arg(long, default_value = "emulator")]
        engine: String,
        /// Cloud: how many numbers (sessions) share the messages.
        #[arg(long, default_value_t = 10)]
        numbers: usize,
        /// Cloud: each number's throughput cap, messages per second.
        #[arg(long, default_value_t = 1000)]
        rate: u32,
    },
    /// Events delivered to a local webhook receiver.
    Webhooks {
        #[arg(long, default_value_t = 20_000)]
        events: usize,
    },
    /// Resident memory while messages flow through (sent, dispatched, delivered to a webhook).
    Memory {
        #[arg(long, default_value_t = 1_000_000)]
        messages: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Memory of N connected sessions of one engine, per session, over the idle server.
    SessionsMemory {
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
        /// `emulator`, or `cloud` (against a fake Graph server in this process).
        #[arg(long, default_value = "emulator")]
        engine: String,
        /// How long the server idles before each reading.
        #[arg(long, default_value_t = 3)]
        idle_secs: u64,
    },
    /// Memory and idle CPU of N WhatsApp Web sessions connecting to a local endpoint that
    /// never completes the handshake (`web_endpoint`), per session, over the idle server.
    WebSessions {
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
        /// How long the server idles before each memory reading.
        #[arg(long, default_value_t = 5)]
        idle_secs: u64,
        /// How long the server's CPU time is measured, idle, without and with the sessions.
        #[arg(long, default_value_t = 10)]
        cpu_secs: u64,
    },
    /// Contacts imported through the Zernio import route, then the contacts list (search, tag,
    /// opt-in filters, skip) under concurrent clients, and the server's memory.
    Contacts {
        #[arg(long, default_value_t = 1_000_000)]
        contacts: usize,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Seconds per measured query.
        #[arg(long, default_value_t = 10)]
        secs: u64,
    },
    /// A Zernio broadcast: recipients added 1,000 per call, a cancel's latency, then the send
    /// with a kill -9 at half way and a restart, memory sampled throughout, and an exact
    /// count of the messages sent.
    Broadcast {
        #[arg(long, default_value_t = 1_000_000)]
        recipients: usize,
        /// The emulator's pace, messages per second (0: unlimited).
        #[arg(long, default_value_t = 0)]
        rate: u32,
    },
    /// Kill -9 in the middle of dispatching, restart, and check nothing was lost or doubled.
    /// With `--instances N` (PostgreSQL): N instances share the sessions, one is killed and
    /// the others take its sessions over.
    Crash {
        #[arg(long, default_value_t = 10_000)]
        messages: usize,
        /// Instances on one PostgreSQL database (1: kill and restart the only one).
        #[arg(long, default_value_t = 1)]
        instances: usize,
        /// Sessions the messages are spread over (with `--instances` above 1).
        #[arg(long, default_value_t = 30)]
        sessions: usize,
    },
    /// Many instances on one PostgreSQL database: the lease traffic of idle instances, then
    /// the time from a kill -9 of one until every session is owned and reconnected again.
    Failover {
        #[arg(long, default_value_t = 300)]
        sessions: usize,
        #[arg(long, default_value_t = 3)]
        instances: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bin = match cli.wharf_bin {
        Some(b) => b,
        None => std::env::current_exe()?.with_file_name("wharf"),
    };
    anyhow::ensure!(
        bin.exists(),
        "{} not found: build it (cargo build --release -p wharf) or pass --wharf-bin",
        bin.display()
    );
    let db = cli.database_url.as_deref();
    match cli.scenario {
        Scenario::Startup { runs, idle_secs } => startup(&bin, db, runs, idle_secs).await,
        Scenario::ListSessions {
            sessions,
            concurrency,
            secs,
            limit,
        } => list_sessions(&bin, db, sessions, concurrency, secs, limit).await,
        Scenario::Ingest {
            concurrency,
            secs,
            rate,
            timeline,
            read,
            instances,
        } => {
            let options = ingest::Options {
                instances,
                concurrency,
                secs,
                rate,
                timeline,
                read,
            };
            ingest::run(&bin, db, options).await
        }
        Scenario::Dispatch {
            messages,
            engine,
            numbers,
            rate,
        } => match engine.as_str() {
            "emulator" => messaging::dispatch(&bin, db, messages).await,
            "cloud" => cloud::dispatch(&bin, db, messages, numbers, rate).await,
            other => anyhow::bail!("--engine must be emulator or cloud (got {other})"),
        },
        Scenario::Webhooks { events } => messaging::webhooks(&bin, db, events).await,
        Scenario::Memory {
            messages,
            concurrency,
        } => messaging::memory(&bin, db, messages, concurrency).await,
        Scenario::SessionsMemory {
            sessions,
            engine,
            idle_secs,
        } => sessions::run(&bin, db, sessions, &engine, idle_secs).await,
        Scenario::Crash {
            messages,
            instances: 1,
            ..
        } => crash::run(&bin, db, messages).await,
        Scenario::Crash {
            messages,
            instances,
            sessions,
        } => cluster::crash(&bin, db, messages, instances, sessions).await,
        Scenario::Failover {
            sessions,
            instances,
        } => cluster::failover(&bin, db, sessions, instances).await,
        Scenario::WebSessions {
            sessions,
            idle_secs,
            cpu_secs,
        } => web_sessions::run(&bin, db, sessions, idle_secs, cpu_secs).await,
        Scenario::Broadcast { recipients, rate } => {
            broadcast::run(&bin, db, recipients, rate).await
        }
        Scenario::Contacts {
            contacts: n,
            concurrency,
            secs,
        } => contacts::run(&bin, db, n, concurrency, secs).await,
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
    let mut memory = server::Memory::default();
    for i in 0..runs {
        let spec = Spec::new(bin, database_url)?;
        let server = spec.start().await?;
        times.push(server.ready_after);
        if i + 1 == runs {
            tokio::time::sleep(Duration::from_secs(idle_secs)).await;
            memory = server.memory()?;
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
        "  idle after {idle_secs} s: {} = VmRSS {:.1} MB",
        memory.describe(),
        memory.rss as f64 * 1024.0 / 1e6
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
    let spec = Spec::new(bin, database_url)?.args(&["--rate-limit-per-minute", "1000000000"]);
    let server = spec.start().await?;
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
    let baseline = Load::get(&client, server.url("/healthz"), None)
        .run(concurrency, secs)
        .await?;
    baseline.print("baseline GET /healthz");
    let path = format!("/v1/whatsapp-sessions?limit={limit}");
    let list = Load::get(&client, server.url(&path), Some(pat))
        .run(concurrency, secs)
        .await?;
    list.print(&format!("GET {path}"));
    println!("  ratio to baseline: {:.2}", list.rate() / baseline.rate());
    server.stop().await
}
