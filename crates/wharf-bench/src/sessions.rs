//! `sessions-memory`: what a connected session costs in memory, per engine. N sessions are
//! created and connected (emulator: connect and scan; cloud: connect to a fake Graph server
//! in this process, one number each), the server idles, and the growth of its resident
//! memory over the idle server is divided by N.

use std::{path::Path, time::Duration};

use base64::Engine as _;
use serde_json::json;
use wharf_fakegraph::FakeGraph;

use crate::{
    cloud::{WABA, number},
    messaging::Api,
    server::{Spec, mib},
};

/// Sessions created (and connected) at once.
const CONCURRENCY: usize = 16;

pub async fn run(
    bin: &Path,
    db: Option<&str>,
    sessions: usize,
    engine: &str,
    idle_secs: u64,
) -> anyhow::Result<()> {
    anyhow::ensure!(sessions >= 1, "--sessions must be at least 1");
    let cloud = match engine {
        "emulator" => false,
        "cloud" => true,
        other => anyhow::bail!("--engine must be emulator or cloud (got {other})"),
    };
    let graph = if cloud {
        let graph = FakeGraph::start().await;
        for i in 0..sessions {
            graph.add_number(number(i));
        }
        Some(graph)
    } else {
        None
    };
    let key: [u8; 32] = rand::random();
    let spec = Spec::new(bin, db)?
        .args(&["--rate-limit-per-minute", "1000000000"])
        .env(
            "secret_key",
            base64::engine::general_purpose::STANDARD.encode(key),
        );
    let server = spec.start().await?;
    let api = Api::new(&server)?;
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let before = server.memory()?;

    let mut created = Vec::with_capacity(sessions);
    for chunk in (0..sessions).collect::<Vec<_>>().chunks(CONCURRENCY) {
        let mut set = tokio::task::JoinSet::new();
        for &i in chunk {
            let api = api.with_server(&server);
            let body = match &graph {
                Some(graph) => {
                    let n = number(i);
                    json!({"engine": "cloud", "cloud": {
                        "phone_number_id": n.phone_number_id, "waba_id": WABA,
                        "access_token": n.access_token, "app_secret": n.app_secret,
                        "verify_token": format!("bench-{i}"), "graph_base_url": graph.base_url(),
                    }})
                }
                None => json!({"engine": "emulator"}),
            };
            set.spawn(async move {
                let created = api
                    .call(
                        reqwest::Method::POST,
                        "/v1/whatsapp-sessions",
                        Some(body),
                        201,
                    )
                    .await?;
                let id = created["session"]["session_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                if cloud {
                    api.call(
                        reqwest::Method::POST,
                        &format!("/v1/whatsapp-sessions/{id}/connect"),
                        None,
                        200,
                    )
                    .await?;
                } else {
                    api.connect(&id).await?;
                }
                anyhow::Ok(id)
            });
        }
        while let Some(id) = set.join_next().await {
            created.push(id??);
        }
    }
    // Cloud sessions connect once Graph has answered: wait until every one is connected.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    for id in &created {
        loop {
            let view = api
                .call(
                    reqwest::Method::GET,
                    &format!("/v1/whatsapp-sessions/{id}"),
                    None,
                    200,
                )
                .await?;
            if view["status"] == "connected" {
                break;
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "session {id} is {} after 120 s, not connected",
                view["status"]
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let after = server.memory()?;
    server.stop().await?;

    println!(
        "scenario: sessions-memory ({sessions} {engine} sessions created and connected, then {idle_secs} s idle)"
    );
    println!("  idle, no sessions:       {}", before.describe());
    println!("  idle, {sessions} connected: {}", after.describe());
    let per = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / sessions as f64;
    println!(
        "  per session: VmRSS {:.1} KiB, RssAnon {:.1} KiB ({:.1} MiB in all)",
        per(after.rss, before.rss),
        per(after.anon, before.anon),
        mib(after.rss.saturating_sub(before.rss)),
    );
    Ok(())
}
