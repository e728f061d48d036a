//! What `wharf instances` and `GET /instances` show: the live instances sharing the database,
//! the sessions each owns by lease, and the running sessions no live instance owns yet (a dead
//! instance's, until their leases expire). Read from the database, so every instance on it
//! gives the same view.

use serde::Serialize;
use utoipa::ToSchema;
use wharf_core::{
    SessionId,
    time::{now_millis, rfc3339},
};
use wharf_store::Store;

/// The instances on the database and the sessions they own.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstancesView {
    /// The live instances (heartbeat not expired), in the order the database lists them.
    pub instances: Vec<InstanceView>,
    /// How many sessions are meant to run (started, not stopped).
    pub running_sessions: usize,
    /// Running sessions that no live instance holds a lease on yet.
    #[schema(value_type = Vec<String>)]
    pub unowned_sessions: Vec<SessionId>,
}

/// One live instance.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceView {
    /// The instance's id: its name and a random suffix (what leases and `worker_id` name).
    pub id: String,
    /// The instance's name (the `instance_id` setting).
    pub name: String,
    /// The address other instances forward calls to, if it advertises one.
    pub address: Option<String>,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// Milliseconds since its last heartbeat.
    pub heartbeat_age_ms: i64,
    /// The sessions it holds a live lease on.
    pub sessions: Vec<OwnedSession>,
}

/// A session an instance owns.
#[derive(Debug, Serialize, ToSchema)]
pub struct OwnedSession {
    #[schema(value_type = String)]
    pub session_id: SessionId,
    /// The lease's generation: it grows each time the session changes hands.
    pub generation: i64,
    /// Milliseconds the instance has held it.
    pub held_ms: i64,
    /// Milliseconds before the lease expires unless renewed.
    pub expires_in_ms: i64,
}

/// Reads the view now.
pub async fn view(store: &Store) -> wharf_store::Result<InstancesView> {
    let now = now_millis();
    let instances = store.live_instances(now).await?;
    let leases = store.leases().await?;
    let running = store.running_sessions().await?;
    let instances: Vec<InstanceView> = instances
        .into_iter()
        .map(|i| InstanceView {
            sessions: leases
                .iter()
                .filter(|l| l.instance_id == i.id && l.expires_at > now)
                .map(|l| OwnedSession {
                    session_id: l.session_id,
                    generation: l.generation,
                    held_ms: now - l.acquired_at,
                    expires_in_ms: l.expires_at - now,
                })
                .collect(),
            started_at: rfc3339(i.started_at),
            heartbeat_age_ms: now - i.heartbeat_at,
            id: i.id,
            name: i.name,
            address: i.address,
        })
        .collect();
    let owned: std::collections::HashSet<SessionId> = instances
        .iter()
        .flat_map(|i| i.sessions.iter().map(|s| s.session_id))
        .collect();
    let unowned_sessions = running
        .iter()
        .map(|r| r.id)
        .filter(|id| !owned.contains(id))
        .collect();
    Ok(InstancesView {
        instances,
        running_sessions: running.len(),
        unowned_sessions,
    })
}
