//! The ingest scenario: text sends (each committed before its 202) against `GET /healthz`
//! on the same server in the same run, closed loop (wrk's shape) or open loop at a fixed
//! rate, with the tail (p99.9, max, the longest time with no answer), a timeline per 100 ms,
//! the SQLite WAL's size over time and the database's bytes per message.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::json;
use sqlx::Row;

use crate::{
    load::{Load, LoadResult},
    messaging::{Api, TO, spec},
};

/// The timeline's bucket.
const BUCKET: Duration = Duration::from_millis(100);
/// How often the WAL is looked at.
const SAMPLE: Duration = Duration::from_millis(20);

/// The SQLite WAL at one moment: the file's size and, from the shared-memory index beside
/// it (`-shm`, read as another process reads it), the frames (pages) in use, how many of
/// them a checkpoint has copied to the database, and the salt that changes when the WAL
/// starts over from its beginning.
#[derive(Debug, Clone, Copy)]
struct WalSample {
    at: Instant,
    file: u64,
    frames: u32,
    backfilled: u32,
    salt: u32,
    /// The machine's pressure stall totals (`/proc/pressure/{cpu,io}`, "some", in µs): time
    /// some task waited for a CPU, or for I/O.
    cpu_stall: u64,
    io_stall: u64,
}

/// The "some" total of `/proc/pressure/NAME`, in µs (0 where the kernel has none).
fn pressure(name: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/pressure/{name}"))
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("some"))?;
            line.split_whitespace()
                .find_map(|f| f.strip_prefix("total="))?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

impl WalSample {
    fn read(db: &Path) -> Self {
        let mut shm = [0u8; 136];
        let mut name = db.as_os_str().to_owned();
        name.push("-shm");
        let read = std::fs::File::open(PathBuf::from(name))
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut shm));
        // The wal-index header (native byte order): mxFrame at 16, aSalt[0] at 32; the
        // checkpoint information after the two header copies: nBackfill at 96.
        let word = |at: usize| u32::from_ne_bytes([shm[at], shm[at + 1], shm[at + 2], shm[at + 3]]);
        let (frames, salt, backfilled) = match read {
            Ok(()) => (word(16), word(32), word(96)),
            Err(_) => (0, 0, 0),
        };
        Self {
            at: Instant::now(),
            file: file_len(&wal_of(db)),
            frames,
            backfilled,
            salt,
            cpu_stall: pressure("cpu"),
            io_stall: pressure("io"),
        }
    }
}

/// How the scenario runs.
pub struct Options {
    pub concurrency: usize,
    pub secs: u64,
    /// Open loop at this many sends a second (the `/healthz` baseline stays closed loop).
    pub rate: Option<u32>,
    /// Writes the timeline (CSV) here instead of printing it compactly.
    pub timeline: Option<PathBuf>,
    /// Messages are dispatched at once and the emulator delivers and reads each one; at the
    /// end the bench waits until they are read, so the size per message is per read message.
    pub read: bool,
    /// Instances on one PostgreSQL database the requests are spread over.
    pub instances: usize,
}

/// The SQLite file of a `sqlite://` URL.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    Some(PathBuf::from(rest.split('?').next()?))
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The `-wal` file beside a SQLite database.
fn wal_of(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

pub async fn run(bin: &Path, db: Option<&str>, o: Options) -> anyhow::Result<()> {
    let mut spec = spec(bin, db)?;
    if o.read {
        spec = spec
            .env("send_rate_emulator", 1_000_000)
            .env("emulator_delivered_after_ms", 100)
            .env("emulator_read_after_ms", 200);
    }
    let url = spec.database_url().to_owned();
    let file = sqlite_path(&url);
    anyhow::ensure!(
        o.instances <= 1 || file.is_none(),
        "--instances needs --database-url postgres://… (SQLite serves one instance)"
    );
    let spec = spec.args(&["--instance-id", "i0"]);
    let server = spec.start().await?;
    let api = Api::new(&server)?;
    let session = api.session(true).await?;
    // More instances on the same database, each with the same settings.
    let mut others = Vec::new();
    for i in 1..o.instances.max(1) {
        let mut more =
            crate::messaging::spec(bin, Some(&url))?.args(&["--instance-id", &format!("i{i}")]);
        if o.read {
            more = more
                .env("send_rate_emulator", 1_000_000)
                .env("emulator_delivered_after_ms", 100)
                .env("emulator_read_after_ms", 200);
        }
        others.push(more.start().await?);
    }
    let urls = |path: &str| -> Vec<String> {
        std::iter::once(server.url(path))
            .chain(others.iter().map(|s| s.url(path)))
            .collect()
    };
    if !others.is_empty() {
        println!(
            "  {} instances on one database; requests go to each in turn",
            others.len() + 1
        );
    }
    let shape = match o.rate {
        Some(rate) => format!(
            "open loop at {rate} sends/s on at most {} connections",
            o.concurrency
        ),
        None => format!("closed loop, {} connections", o.concurrency),
    };
    println!(
        "scenario: ingest ({shape}, {} s each; the dispatcher drains meanwhile{})",
        o.secs,
        if o.read {
            ", and each message is delivered and read"
        } else {
            ""
        }
    );
    let baseline = Load::get(&api.client, api.url("/healthz"), None)
        .over(urls("/healthz"))
        .run(o.concurrency, o.secs)
        .await?;
    baseline.print_tail("baseline GET /healthz");
    let load = {
        let session = session.clone();
        Load::post(
            &api.client,
            api.url("/api/send-message"),
            api.pat.clone(),
            202,
            move |i| json!({"session_id": session, "to": TO, "text": format!("bench {i}")}),
        )
        .over(urls("/api/send-message"))
    };
    // The WAL every 20 ms while the sends run.
    let samples = Arc::new(Mutex::new(Vec::<WalSample>::new()));
    let sampler = file.clone().map(|db| {
        let samples = samples.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE);
            loop {
                tick.tick().await;
                let sample = WalSample::read(&db);
                samples
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(sample);
            }
        })
    });
    let duration = Duration::from_secs(o.secs);
    let sends = match o.rate {
        Some(rate) => load.run_open(rate, o.concurrency, duration).await?,
        None => load.run_bounded(o.concurrency, duration, u64::MAX).await?,
    };
    if let Some(sampler) = &sampler {
        sampler.abort();
    }
    sends.print_tail("POST /api/send-message (202 = committed)");
    println!("  ratio to baseline: {:.2}", sends.rate() / baseline.rate());
    let wal = std::mem::take(&mut *samples.lock().unwrap_or_else(|e| e.into_inner()));
    timeline(&sends, &wal, o.timeline.as_deref())?;
    if !wal.is_empty() {
        wal_summary(&sends, &wal);
    }
    // A last send: once it is sent (or read), the ones before it are (one chat, in order).
    let last = api
        .call(
            reqwest::Method::POST,
            "/api/send-message",
            Some(json!({"session_id": session, "to": TO, "text": "the last one"})),
            202,
        )
        .await?;
    let id = last["message_id"].as_str().unwrap_or_default().to_owned();
    let status = if o.read { "read" } else { "sent" };
    let waited = Instant::now();
    api.wait_status(&id, status, Duration::from_secs(1800))
        .await?;
    if o.read {
        // Receipts are due a fixed time after each send: a little more for the last ones.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!(
        "  every message {status} {:.1} s after the load ended",
        waited.elapsed().as_secs_f64()
    );
    let messages = sends.ok as u64 + 1;
    let live = file
        .as_ref()
        .map(|db| (file_len(db), file_len(&wal_of(db))));
    for other in others {
        other.stop().await?;
    }
    server.stop().await?;
    sizes(&url, messages, live).await
}

/// Prints the answers per 100 ms compactly (the slowest buckets), or writes them all to
/// `path` as CSV with the WAL's state at the end of each.
fn timeline(sends: &LoadResult, wal: &[WalSample], path: Option<&Path>) -> anyhow::Result<()> {
    let counts = sends.timeline(BUCKET);
    if let Some(path) = path {
        let mut csv =
            String::from("t_ms,answers,wal_file_bytes,wal_frames,wal_backfilled,wal_restarts\n");
        let mut restarts = 0;
        let mut samples = wal.iter().peekable();
        let mut last: Option<WalSample> = None;
        for (i, n) in counts.iter().enumerate() {
            let end = sends.started + BUCKET * (i as u32 + 1);
            while let Some(w) = samples.next_if(|w| w.at <= end) {
                if last.is_some_and(|l| l.salt != w.salt) {
                    restarts += 1;
                }
                last = Some(*w);
            }
            let state = last
                .map(|w| format!("{},{},{},{restarts}", w.file, w.frames, w.backfilled))
                .unwrap_or_else(|| ",,,".into());
            csv.push_str(&format!("{},{n},{state}\n", i * 100));
        }
        std::fs::write(path, csv)?;
        println!(
            "  timeline (answers per 100 ms) written to {}",
            path.display()
        );
        return Ok(());
    }
    // The last bucket is partial: left out of the summary.
    let full = &counts[..counts.len().saturating_sub(1)];
    let mut sorted = full.to_vec();
    sorted.sort_unstable();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
    let mut slow: Vec<(usize, usize)> = full.iter().copied().enumerate().collect();
    slow.sort_by_key(|&(_, n)| n);
    let shown: Vec<String> = slow
        .iter()
        .take(8)
        .map(|&(i, n)| format!("{:.1} s: {n}", i as f64 / 10.0))
        .collect();
    let below_half = full.iter().filter(|&&n| n * 2 < median).count();
    println!(
        "  answers per 100 ms: median {median}, {below_half} of {} buckets below half of it; slowest {}",
        full.len(),
        shown.join(", ")
    );
    Ok(())
}

/// The WAL during the sends: its largest size, how often it started over, and whether the
/// longest silences of the sends came with a restart.
fn wal_summary(sends: &LoadResult, wal: &[WalSample]) {
    let restarts: Vec<Instant> = wal
        .windows(2)
        .filter(|w| w[0].salt != w[1].salt)
        .map(|w| w[1].at)
        .collect();
    let largest = wal.iter().map(|w| w.file).max().unwrap_or(0);
    let frames = wal.iter().map(|w| w.frames).max().unwrap_or(0);
    let last = wal.last().map(|w| w.file).unwrap_or(0);
    println!(
        "  SQLite WAL during the sends: file largest {:.1} MiB (at the end {:.1} MiB), at most {frames} pages in use; started over {} times",
        largest as f64 / 1048576.0,
        last as f64 / 1048576.0,
        restarts.len()
    );
    let shown: Vec<String> = sends
        .silences(5)
        .iter()
        .map(|&(gap, from)| {
            let (start, end) = (sends.started + from, sends.started + from + gap);
            let restart = restarts
                .iter()
                .any(|&r| r + SAMPLE >= start && r <= end + SAMPLE);
            // The machine's stall time from the sample before the silence to the one after.
            let before = wal.iter().rev().find(|w| w.at <= start);
            let after = wal.iter().find(|w| w.at >= end);
            let stalls = match (before, after) {
                (Some(b), Some(a)) if a.at > b.at => {
                    let span = (a.at - b.at).as_micros() as f64;
                    format!(
                        ", CPU wait {:.0} %, I/O wait {:.0} %",
                        100.0 * a.cpu_stall.saturating_sub(b.cpu_stall) as f64 / span,
                        100.0 * a.io_stall.saturating_sub(b.io_stall) as f64 / span
                    )
                }
                _ => String::new(),
            };
            format!(
                "{:.0} ms at {:.2} s{}{stalls}",
                gap.as_secs_f64() * 1000.0,
                from.as_secs_f64(),
                if restart { " (WAL restart)" } else { "" }
            )
        })
        .collect();
    println!("  longest silences: {}", shown.join("; "));
    if let (Some(first), Some(last)) = (wal.first(), wal.last())
        && last.at > first.at
    {
        let span = (last.at - first.at).as_micros() as f64;
        println!(
            "  the machine during the sends (/proc/pressure, some): CPU wait {:.0} %, I/O wait {:.0} %",
            100.0 * last.cpu_stall.saturating_sub(first.cpu_stall) as f64 / span,
            100.0 * last.io_stall.saturating_sub(first.io_stall) as f64 / span
        );
    }
}

/// Prints the database's size per message: file sizes and, per table and index, the bytes
/// in use (SQLite's `dbstat`), or the tables' total sizes on PostgreSQL.
async fn sizes(url: &str, messages: u64, live: Option<(u64, u64)>) -> anyhow::Result<()> {
    let per = |bytes: u64| bytes as f64 / messages as f64;
    let mut rows: Vec<(String, u64)> = Vec::new();
    if let Some(db) = sqlite_path(url) {
        if let Some((file, wal)) = live {
            println!(
                "  at the end: database {:.1} MiB + WAL {:.1} MiB = {:.0} bytes per message ({messages} messages)",
                file as f64 / 1048576.0,
                wal as f64 / 1048576.0,
                per(file + wal)
            );
        }
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(url).await?;
        let page: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&mut conn)
            .await?;
        let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
            .fetch_one(&mut conn)
            .await?;
        for row in sqlx::query(
            "SELECT name, SUM(pgsize) AS bytes FROM dbstat GROUP BY name ORDER BY bytes DESC",
        )
        .fetch_all(&mut conn)
        .await?
        {
            rows.push((row.try_get("name")?, row.try_get::<i64, _>("bytes")? as u64));
        }
        println!(
            "  after the server stopped: database file {:.1} MiB, {:.1} MiB of it free pages",
            file_len(&db) as f64 / 1048576.0,
            (free * page) as f64 / 1048576.0
        );
    } else {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url).await?;
        for row in sqlx::query(
            "SELECT c.relname::text AS name, pg_total_relation_size(c.oid) AS bytes FROM pg_class c \
             WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace ORDER BY bytes DESC",
        )
        .fetch_all(&mut conn)
        .await?
        {
            rows.push((row.try_get("name")?, row.try_get::<i64, _>("bytes")? as u64));
        }
    }
    let total: u64 = rows.iter().map(|r| r.1).sum();
    let top: Vec<String> = rows
        .iter()
        .filter(|r| per(r.1) >= 1.0)
        .map(|(name, bytes)| format!("{name} {:.0}", per(*bytes)))
        .collect();
    println!(
        "  bytes per message in the tables and indexes: {:.0} ({})",
        per(total),
        top.join(", ")
    );
    Ok(())
}
