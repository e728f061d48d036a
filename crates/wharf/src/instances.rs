//! `wharf instances`: the instances sharing the database, the sessions each owns (by lease)
//! and the running sessions no live instance owns, read from the database.

use serde_json::json;
use wharf_core::time::{now_millis, rfc3339};
use wharf_store::Store;

pub async fn run(store: &Store, json_out: bool) -> anyhow::Result<()> {
    let now = now_millis();
    let instances = store.live_instances(now).await?;
    let leases = store.leases().await?;
    let running = store.running_sessions().await?;
    let live_lease = |session: &wharf_core::SessionId| {
        leases
            .iter()
            .find(|l| &l.session_id == session && l.expires_at > now)
            .filter(|l| instances.iter().any(|i| i.id == l.instance_id))
    };
    let unowned: Vec<_> = running
        .iter()
        .filter(|r| live_lease(&r.id).is_none())
        .map(|r| r.id)
        .collect();
    if json_out {
        let list: Vec<_> = instances
            .iter()
            .map(|i| {
                let sessions: Vec<_> = leases
                    .iter()
                    .filter(|l| l.instance_id == i.id && l.expires_at > now)
                    .map(|l| {
                        json!({
                            "session_id": l.session_id,
                            "generation": l.generation,
                            "held_ms": now - l.acquired_at,
                            "expires_in_ms": l.expires_at - now,
                        })
                    })
                    .collect();
                json!({
                    "id": i.id,
                    "name": i.name,
                    "address": i.address,
                    "started_at": rfc3339(i.started_at),
                    "heartbeat_age_ms": now - i.heartbeat_at,
                    "sessions": sessions,
                })
            })
            .collect();
        println!(
            "{}",
            json!({ "instances": list, "running_sessions": running.len(), "unowned_sessions": unowned })
        );
        return Ok(());
    }
    if instances.is_empty() {
        println!("no live instance");
    }
    for i in &instances {
        let owned: Vec<_> = leases
            .iter()
            .filter(|l| l.instance_id == i.id && l.expires_at > now)
            .collect();
        println!(
            "instance {} (started {}, heartbeat {:.1} s ago): {} session(s)",
            i.id,
            rfc3339(i.started_at),
            (now - i.heartbeat_at) as f64 / 1000.0,
            owned.len()
        );
        for l in owned {
            println!(
                "  {}  lease generation {}, held {:.1} s, expires in {:.1} s",
                l.session_id,
                l.generation,
                (now - l.acquired_at) as f64 / 1000.0,
                (l.expires_at - now) as f64 / 1000.0
            );
        }
    }
    if unowned.is_empty() {
        println!(
            "every running session ({}) is owned by a live instance",
            running.len()
        );
    } else {
        println!(
            "running sessions no live instance owns yet ({} of {}):",
            unowned.len(),
            running.len()
        );
        for id in unowned {
            println!("  {id}");
        }
    }
    Ok(())
}
