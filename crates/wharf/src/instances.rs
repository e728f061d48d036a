//! `wharf instances`: the instances sharing the database, the sessions each owns (by lease)
//! and the running sessions no live instance owns, read from the database
//! ([`wharf_server::instances::view`], which `GET /instances` answers too).

use wharf_store::Store;

pub async fn run(store: &Store, json_out: bool) -> anyhow::Result<()> {
    let view = wharf_server::instances::view(store).await?;
    if json_out {
        println!("{}", serde_json::to_string(&view)?);
        return Ok(());
    }
    if view.instances.is_empty() {
        println!("no live instance");
    }
    for i in &view.instances {
        println!(
            "instance {} (started {}, heartbeat {:.1} s ago): {} session(s)",
            i.id,
            i.started_at,
            i.heartbeat_age_ms as f64 / 1000.0,
            i.sessions.len()
        );
        for s in &i.sessions {
            println!(
                "  {}  lease generation {}, held {:.1} s, expires in {:.1} s",
                s.session_id,
                s.generation,
                s.held_ms as f64 / 1000.0,
                s.expires_in_ms as f64 / 1000.0
            );
        }
    }
    if view.unowned_sessions.is_empty() {
        println!(
            "every running session ({}) is owned by a live instance",
            view.running_sessions
        );
    } else {
        println!(
            "running sessions no live instance owns yet ({} of {}):",
            view.unowned_sessions.len(),
            view.running_sessions
        );
        for id in &view.unowned_sessions {
            println!("  {id}");
        }
    }
    Ok(())
}
