//! `web-sessions`: what a WhatsApp Web session costs while it tries to connect. N web
//! sessions are created and connected against a local TCP endpoint (`web_endpoint`) that
//! accepts each connection and never completes the handshake, so every session holds a real
//! whatsapp-rust client with an open socket, waiting, as one does while WhatsApp is slow or
//! unreachable. The growth of the server's resident memory over the idle server is divided by
//! N, and the server's CPU time over an idle window gives its idle CPU (percent of one core).

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use base64::Engine as _;
use serde_json::json;
use tokio::{io::AsyncReadExt, net::TcpListener};

use crate::{
    messaging::Api,
    server::{Spec, mib},
};

/// Sessions created (and connected) at once.
const CONCURRENCY: usize = 16;

/// An endpoint that takes connections and answers nothing; counts them.
async fn silent_endpoint() -> anyhow::Result<(String, Arc<AtomicUsize>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                // Read (and drop) whatever the client says, until it hangs up.
                let mut buf = [0u8; 4096];
                while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    Ok((format!("ws://{addr}/ws/chat"), accepted))
}

/// The process's CPU time (user + system), in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("unreadable /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12th and 13th after the name.
    let utime: u64 = fields.get(11).unwrap_or(&"0").parse()?;
    let stime: u64 = fields.get(12).unwrap_or(&"0").parse()?;
    Ok(utime + stime)
}

/// Clock ticks per second in /proc (USER_HZ: 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

pub async fn run(
    bin: &Path,
    db: Option<&str>,
    sessions: usize,
    idle_secs: u64,
    cpu_secs: u64,
) -> anyhow::Result<()> {
    anyhow::ensure!(sessions >= 1, "--sessions must be at least 1");
    anyhow::ensure!(cpu_secs >= 1, "--cpu-secs must be at least 1");
    let (endpoint, accepted) = silent_endpoint().await?;
    let key: [u8; 32] = rand::random();
    let spec = Spec::new(bin, db)?
        .args(&["--rate-limit-per-minute", "1000000000"])
        .env("web_endpoint", &endpoint)
        // A fixed version: the client would otherwise fetch the current one from WhatsApp.
        .env("web_version", "2.3000.1")
        .env(
            "secret_key",
            base64::engine::general_purpose::STANDARD.encode(key),
        );
    let server = spec.start().await?;
    let api = Api::new(&server)?;
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let before = server.memory()?;
    let idle_cpu = {
        let start = cpu_ticks(server.pid())?;
        tokio::time::sleep(Duration::from_secs(cpu_secs)).await;
        cpu_ticks(server.pid())?.saturating_sub(start)
    };

    let mut created = Vec::with_capacity(sessions);
    for chunk in (0..sessions).collect::<Vec<_>>().chunks(CONCURRENCY) {
        let mut set = tokio::task::JoinSet::new();
        for _ in chunk {
            let api = api.with_server(&server);
            set.spawn(async move {
                let created = api
                    .call(
                        reqwest::Method::POST,
                        "/v1/whatsapp-sessions",
                        Some(json!({"engine": "web"})),
                        201,
                    )
                    .await?;
                let id = created["session"]["session_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                // Connect only: the emulator's scan route does not apply to web sessions;
                // the session dials the bench's endpoint and waits in the handshake.
                api.call(
                    reqwest::Method::POST,
                    &format!("/v1/whatsapp-sessions/{id}/connect"),
                    None,
                    200,
                )
                .await?;
                anyhow::Ok(id)
            });
        }
        while let Some(id) = set.join_next().await {
            created.push(id??);
        }
    }
    // Every session has dialled the endpoint (and waits there).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while accepted.load(Ordering::Relaxed) < sessions {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "only {} of {sessions} sessions reached the endpoint in 120 s",
            accepted.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let after = server.memory()?;
    let busy_cpu = {
        let start = cpu_ticks(server.pid())?;
        tokio::time::sleep(Duration::from_secs(cpu_secs)).await;
        cpu_ticks(server.pid())?.saturating_sub(start)
    };
    // Still waiting, not failed: count the sessions still trying.
    let mut connecting = 0;
    for id in &created {
        let view = api
            .call(
                reqwest::Method::GET,
                &format!("/v1/whatsapp-sessions/{id}"),
                None,
                200,
            )
            .await?;
        if matches!(view["status"].as_str(), Some("pending" | "connecting")) {
            connecting += 1;
        }
    }
    let dials = accepted.load(Ordering::Relaxed);
    server.stop().await?;

    let percent = |ticks: u64| ticks as f64 / TICKS_PER_SEC / cpu_secs as f64 * 100.0;
    println!(
        "scenario: web-sessions ({sessions} web sessions connecting to a local endpoint that never completes the handshake, then {idle_secs} s idle)"
    );
    println!("  idle, no sessions:      {}", before.describe());
    println!("  idle, {sessions} sessions:  {}", after.describe());
    let per = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / sessions as f64;
    println!(
        "  per session: VmRSS {:.1} KiB, RssAnon {:.1} KiB ({:.1} MiB in all)",
        per(after.rss, before.rss),
        per(after.anon, before.anon),
        mib(after.rss.saturating_sub(before.rss)),
    );
    println!(
        "  idle CPU over {cpu_secs} s: {:.2} % of one core without sessions, {:.2} % with {sessions}",
        percent(idle_cpu),
        percent(busy_cpu)
    );
    println!(
        "  sessions still connecting: {connecting} of {sessions}; connections the endpoint accepted: {dials}"
    );
    Ok(())
}
