//! Many instances on one PostgreSQL database: the multi-instance crash test (`crash
//! --instances N`) and the failover benchmark (`failover`).
//!
//! Both start N `wharf serve` processes on the same database, create sessions through the
//! first (which owns them all until the others join and take their shares), then kill one
//! instance with SIGKILL and watch the others take its sessions over.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    messaging::Api,
    receiver::Receiver,
    server::{Server, Spec},
};

/// The lease length the instances run with: short, so a takeover is quick to watch.
pub const LEASE_MS: u64 = 5_000;

/// N specs on one database, each on its own port, named `i0`, `i1`, …
fn specs(
    bin: &Path,
    db: &str,
    n: usize,
    configure: impl Fn(Spec) -> Spec,
) -> anyhow::Result<Vec<Spec>> {
    (0..n)
        .map(|i| {
            let spec = Spec::new(bin, Some(db))?
                .args(&["--instance-id", &format!("i{i}")])
                .env("lease_ttl_ms", LEASE_MS);
            Ok(configure(spec))
        })
        .collect()
}

/// `wharf instances --json` of the database.
pub fn instances(bin: &Path, db: &str) -> anyhow::Result<Value> {
    let out = std::process::Command::new(bin)
        .args(["instances", "--json", "--database-url", db])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "wharf instances: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Sessions owned, by instance name.
fn owned(view: &Value) -> HashMap<String, usize> {
    view["instances"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|i| {
                    (
                        i["name"].as_str().unwrap_or_default().to_owned(),
                        i["sessions"].as_array().map_or(0, Vec::len),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The owning instance's id, by session id.
fn owners(view: &Value) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for i in view["instances"].as_array().into_iter().flatten() {
        for s in i["sessions"].as_array().into_iter().flatten() {
            map.insert(
                s["session_id"].as_str().unwrap_or_default().to_owned(),
                i["id"].as_str().unwrap_or_default().to_owned(),
            );
        }
    }
    map
}

/// Polls `wharf instances` until `done` holds; returns the view and the time it took.
async fn until(
    bin: &Path,
    db: &str,
    within: Duration,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> anyhow::Result<(Value, Duration)> {
    let began = Instant::now();
    loop {
        let view = instances(bin, db)?;
        if done(&view) {
            return Ok((view, began.elapsed()));
        }
        anyhow::ensure!(
            began.elapsed() < within,
            "{what}: not within {within:?}: {view}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts N instances: the first on the empty database (its token is the account's), the
/// others once `sessions` connected sessions exist, then waits until the sessions are spread.
async fn cluster(
    bin: &Path,
    db: &str,
    specs: &[Spec],
    sessions: usize,
    receiver: Option<&Receiver>,
) -> anyhow::Result<(Vec<Server>, Api, Vec<String>)> {
    let first = specs[0].start().await?;
    let api = Api::new(&first)?;
    if let Some(receiver) = receiver {
        api.subscribe(receiver).await?;
    }
    let mut ids = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        ids.push(api.session(true).await?);
    }
    let mut servers = vec![first];
    for spec in &specs[1..] {
        servers.push(spec.start().await?);
    }
    let n = specs.len();
    let share = sessions.div_ceil(n);
    let (_, took) = until(
        bin,
        db,
        Duration::from_millis(10 * LEASE_MS),
        "the sessions spread",
        |v| {
            let o = owned(v);
            o.len() == n
                && o.values().all(|&s| s >= sessions / n && s <= share)
                && v["unowned_sessions"].as_array().is_some_and(Vec::is_empty)
        },
    )
    .await?;
    println!(
        "  {n} instances; {sessions} sessions spread over them {:.1} s after the last one started",
        took.as_secs_f64()
    );
    Ok((servers, api, ids))
}

/// The multi-instance crash test: `messages` texts over `sessions` sessions, sent through
/// every instance; one instance is killed with SIGKILL mid-dispatch. Every message must be
/// recorded sent exactly once, every session owned again within the lease, and every event
/// must reach the webhook receiver.
pub async fn crash(
    bin: &Path,
    db: Option<&str>,
    messages: usize,
    n: usize,
    sessions: usize,
) -> anyhow::Result<()> {
    let db = db.ok_or_else(|| {
        anyhow::anyhow!(
            "--instances needs --database-url postgres://… (SQLite serves one instance)"
        )
    })?;
    anyhow::ensure!(
        n >= 2 && sessions >= n,
        "--instances ≥ 2 and --sessions ≥ --instances"
    );
    // Dispatch takes about ten seconds in all, so the kill lands in the middle of it.
    let rate = (messages / sessions / 10).max(5);
    let specs = specs(bin, db, n, |s| {
        s.args(&["--rate-limit-per-minute", "1000000000"])
            .env("emulator_delivered_after_ms", -1)
            .env("emulator_read_after_ms", -1)
            .env("send_rate_emulator", rate)
            .env("webhook_retry_delays_ms", "[200, 500, 1000, 2000, 5000]")
    })?;
    let receiver = Receiver::start().await?;
    println!(
        "crash test, {n} instances: {messages} messages over {sessions} sessions at {rate}/s each, SIGKILL of one instance mid-dispatch"
    );
    let (mut servers, api, ids) = cluster(bin, db, &specs, sessions, Some(&receiver)).await?;
    // Sends through every instance in turn, 32 at a time.
    let apis: Vec<Api> = servers.iter().map(|s| api.with_server(s)).collect();
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(std::sync::Mutex::new(Vec::with_capacity(messages)));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (apis, ids, next, accepted) =
            (apis.clone(), ids.clone(), next.clone(), accepted.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= messages {
                    return Ok::<(), anyhow::Error>(());
                }
                let answer = apis[i % apis.len()]
                    .call(
                        reqwest::Method::POST,
                        "/api/send-message",
                        Some(json!({"session_id": ids[i % ids.len()], "to": "+15550100001", "text": format!("m{i}")})),
                        202,
                    )
                    .await?;
                accepted
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(answer["message_id"].as_str().unwrap_or_default().to_owned());
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let accepted = std::mem::take(&mut *accepted.lock().unwrap_or_else(|e| e.into_inner()));
    // Kill the second instance once a quarter is out.
    let mut tracker = crate::crash::SentTracker::default();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let sent = tracker.update(&api).await?;
        if sent >= messages / 4 {
            anyhow::ensure!(
                sent < messages,
                "everything went out before the kill; use more messages"
            );
            println!("  killing instance i1 with {sent} of {messages} sent");
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "dispatch did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let victim = servers.remove(1);
    let killed = Instant::now();
    victim.kill9()?;
    let (_, _) = until(
        bin,
        db,
        Duration::from_millis(3 * LEASE_MS),
        "every session owned again",
        |v| owned(v).len() == n - 1 && v["unowned_sessions"].as_array().is_some_and(Vec::is_empty),
    )
    .await?;
    let took = killed.elapsed();
    println!(
        "  every session owned by a live instance {:.1} s after the kill (lease {:.1} s)",
        took.as_secs_f64(),
        LEASE_MS as f64 / 1000.0
    );
    anyhow::ensure!(
        took <= Duration::from_millis(LEASE_MS + LEASE_MS / 3 + 2_000),
        "the takeover took {took:?}, more than the lease and a pass"
    );
    let api = api.with_server(&servers[0]);
    let events =
        crate::crash::settle(&mut tracker, &api, &accepted, &receiver, "after the kill").await?;
    let duplicates = receiver.total() as usize - receiver.distinct();
    for server in servers {
        server.stop().await?;
    }
    println!(
        "  ok: {messages} messages sent exactly once; {} events all delivered ({duplicates} redelivered after the kill)",
        events.len()
    );
    println!("1 passed, 0 failed");
    Ok(())
}

/// The failover benchmark: `sessions` connected emulator sessions spread over `n`
/// instances; one is killed with SIGKILL, and the time until every session is owned by a live
/// instance and reconnected by it (its `worker_id` names the new owner) is measured. Then the
/// lease traffic of the idle instances is read from PostgreSQL's statistics.
pub async fn failover(
    bin: &Path,
    db: Option<&str>,
    sessions: usize,
    n: usize,
) -> anyhow::Result<()> {
    let db = db.ok_or_else(|| {
        anyhow::anyhow!("failover needs --database-url postgres://… (SQLite serves one instance)")
    })?;
    anyhow::ensure!(
        n >= 2 && sessions >= n,
        "--instances ≥ 2 and --sessions ≥ --instances"
    );
    let specs = specs(bin, db, n, |s| {
        s.args(&["--rate-limit-per-minute", "1000000000"])
    })?;
    println!(
        "failover: {sessions} emulator sessions over {n} instances, lease {} ms",
        LEASE_MS
    );
    let (mut servers, api, ids) = cluster(bin, db, &specs, sessions, None).await?;

    // The lease traffic of idle instances: transactions committed in the database per second
    // (each statement outside a transaction is one), over 20 s with nothing else going on.
    let idle = Duration::from_secs(20);
    let before = commits(db).await?;
    tokio::time::sleep(idle).await;
    let after = commits(db).await?;
    let per_s = (after - before) as f64 / idle.as_secs_f64();
    // Most of it is the workers' polling that predates leases (docs/benchmarks.md); the lease
    // worker's own is four statements a pass, a pass every third of the lease.
    println!(
        "  idle: {per_s:.1} statements/s in all, {:.1} per instance ({n} instances, {sessions} sessions); lease worker: 4 a pass every {} ms",
        per_s / n as f64,
        LEASE_MS / 3
    );

    let victim = servers.remove(1);
    let view = instances(bin, db)?;
    let victim_id = view["instances"]
        .as_array()
        .and_then(|l| l.iter().find(|i| i["name"] == "i1"))
        .and_then(|i| i["id"].as_str())
        .unwrap_or_default()
        .to_owned();
    let moved: HashSet<String> = owners(&view)
        .into_iter()
        .filter(|(_, owner)| *owner == victim_id)
        .map(|(s, _)| s)
        .collect();
    let killed = Instant::now();
    victim.kill9()?;
    let (_, owned_after) = until(
        bin,
        db,
        Duration::from_millis(4 * LEASE_MS),
        "every session owned again",
        |v| owned(v).len() == n - 1 && v["unowned_sessions"].as_array().is_some_and(Vec::is_empty),
    )
    .await?;
    // Reconnected: the new owner's engine reported, so the session's worker_id is its owner.
    let api = api.with_server(&servers[0]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let reconnected = loop {
        let owners = owners(&instances(bin, db)?);
        let mut pending = 0;
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/whatsapp-sessions?limit=100&before_id={c}"),
                None => "/v1/whatsapp-sessions?limit=100".into(),
            };
            let page = api.call(reqwest::Method::GET, &path, None, 200).await?;
            for s in page["data"].as_array().into_iter().flatten() {
                let id = s["session_id"].as_str().unwrap_or_default();
                if moved.contains(id)
                    && (s["status"] != "connected"
                        || s["worker_id"].as_str() != owners.get(id).map(String::as_str))
                {
                    pending += 1;
                }
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        if pending == 0 {
            break killed.elapsed();
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{pending} sessions not reconnected after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "  kill -9 of i1 ({} sessions): every session owned again after {:.2} s, the moved ones reconnected by their new owners after {:.2} s",
        moved.len(),
        owned_after.as_secs_f64(),
        reconnected.as_secs_f64()
    );
    let _ = ids;
    for server in servers {
        server.stop().await?;
    }
    Ok(())
}

/// Transactions committed in the current database so far.
async fn commits(db: &str) -> anyhow::Result<i64> {
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(db).await?;
    // Statistics are flushed at most once a second: read them as of now.
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut conn)
        .await?;
    let row: (i64,) = sqlx::query_as(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&mut conn)
    .await?;
    Ok(row.0)
}
