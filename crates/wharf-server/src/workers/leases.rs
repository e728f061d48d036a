//! The lease worker: keeps this instance's heartbeat and session leases alive, stops the
//! engines of sessions whose lease it lost, takes over running sessions nobody owns (their
//! owner died or handed them over) up to its fair share, and hands over what is beyond that
//! share when instances join. Runs every third of a lease, and at once when woken.
//!
//! On SQLite there is one instance, whose fair share is every running session.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wharf_core::{SessionId, time::now_millis};
use wharf_store::{SessionRow, StoreError};

use crate::{cluster::Ownership, services::SessionService};

/// What one pass of the worker did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    /// Sessions whose lease was lost to another instance (their engines stopped here).
    pub lost: usize,
    /// Sessions taken over (their engines started here).
    pub taken: usize,
    /// Sessions handed over: beyond this instance's share, or no longer running.
    pub released: usize,
    /// Sessions this instance holds after the pass.
    pub held: usize,
}

/// The worker's parts.
pub struct LeaseWorker {
    pub ownership: Arc<Ownership>,
    pub sessions: Arc<SessionService>,
    /// Wakes the dispatcher for a session taken over.
    pub dispatch: mpsc::UnboundedSender<SessionId>,
}

impl LeaseWorker {
    /// One pass: heartbeat, renewal, losses, releases, takeovers.
    pub async fn pass(&self) -> Result<Pass, StoreError> {
        let store = self.sessions.store();
        let own = &self.ownership;
        let me = own.instance_id().to_owned();
        let ttl_ms = own.ttl().as_millis() as i64;
        let mut pass = Pass::default();

        let sent = Instant::now();
        let now = now_millis();
        store.heartbeat(&own.heartbeat_row(now)).await?;
        let renewed = store.renew_leases(&me, now + ttl_ms).await?;
        let renewed_gen: HashMap<SessionId, i64> = renewed
            .iter()
            .map(|l| (l.session_id, l.generation))
            .collect();
        // Leases taken over by another instance (or renewed at another generation, which
        // means one was lost and taken back): stop acting on them first.
        for (id, generation) in own.held_before(sent) {
            if renewed_gen.get(&id) != Some(&generation) {
                pass.lost += 1;
                tracing::warn!(session_id = %id, "lost the lease of a session to another instance; stopping its engine here");
                self.stop_engine(id).await;
            }
        }
        for lease in renewed {
            own.note(lease, sent);
        }

        let running: HashMap<SessionId, SessionRow> = store
            .running_sessions_now()
            .await?
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
        // Sessions held that stopped running (disconnected, logged out, being deleted through
        // another instance): their engines stop and their leases go.
        let idle: Vec<SessionId> = own
            .held_before(sent)
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| !running.contains_key(id))
            .collect();
        self.release(&idle).await?;
        pass.released += idle.len();

        let live = store.live_instances(now).await?.len().max(1);
        let fair = running.len().div_ceil(live);
        // Only the leases held before the pass began are weighed against the running sessions
        // it read. A request that starts a session commits it as running, then takes its
        // lease; when both happen after that read, the lease would look beyond this
        // instance's share, and the pass would stop the engine the request starts.
        let held: Vec<SessionId> = own
            .held_before(sent)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        if held.len() > fair {
            // Beyond this instance's share (an instance joined): hand over the most recently
            // created sessions; the others take them on their next pass.
            let extra: Vec<SessionId> =
                held.iter().rev().take(held.len() - fair).copied().collect();
            self.release(&extra).await?;
            pass.released += extra.len();
        } else if held.len() < fair {
            let wanted = (fair - held.len()) as i64;
            for id in store.unowned_sessions(now_millis(), wanted).await? {
                if own.acquire(id).await? {
                    pass.taken += 1;
                }
            }
        }
        // Every running session held here runs its engine here (those taken by a request
        // since the pass began are being started by it).
        for (id, _) in own.held_before(sent) {
            if own.started(id) {
                continue;
            }
            let Some(row) = running.get(&id) else {
                continue;
            };
            match self.sessions.take_up(row).await {
                Ok(true) => {
                    let _ = self.dispatch.send(id);
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(session_id = %id, error = %e, "could not start a session taken over")
                }
            }
        }
        pass.held = own.held().len();
        if pass
            != (Pass {
                held: pass.held,
                ..Pass::default()
            })
        {
            tracing::info!(
                lost = pass.lost,
                taken = pass.taken,
                released = pass.released,
                held = pass.held,
                "session leases changed"
            );
        }
        Ok(pass)
    }

    async fn stop_engine(&self, id: SessionId) {
        let started = self.ownership.forget(id);
        if started && let Ok(Some(row)) = self.sessions.store().find_session_any_account(id).await {
            self.sessions.put_down(id, row.engine).await;
        }
    }

    /// Stops the engines of `ids` here, then gives up their leases.
    async fn release(&self, ids: &[SessionId]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        for id in ids {
            self.stop_engine(*id).await;
        }
        let store = self.sessions.store();
        store
            .release_leases(self.ownership.instance_id(), ids)
            .await?;
        store.signal_sessions();
        Ok(())
    }

    /// Runs passes until `stop`, then hands every session over (see [`LeaseWorker::hand_over`]
    /// — called by the server once the dispatcher has stopped).
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let every = self.ownership.ttl() / 3;
        let mut failures = super::Failures::new("the session lease pass");
        loop {
            let began = Instant::now();
            let _ = failures.note(self.pass().await);
            if began.elapsed() > SLOW_PASS {
                tracing::warn!(
                    ms = began.elapsed().as_millis() as u64,
                    "a session lease pass was slow; leases last lease_ttl_ms"
                );
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
                _ = self.ownership.woken() => {}
            }
        }
    }

    /// A clean shutdown: stops every engine this instance runs, gives up its leases and its
    /// heartbeat, so the other instances take the sessions over at once.
    pub async fn hand_over(&self) {
        let held = self.ownership.held();
        for id in &held {
            self.stop_engine(*id).await;
        }
        let store = self.sessions.store();
        let me = self.ownership.instance_id();
        if let Err(e) = store.release_all_leases(me).await {
            tracing::warn!(error = %e, "could not hand the session leases over; they expire instead");
        }
        if let Err(e) = store.remove_instance(me).await {
            tracing::warn!(error = %e, "could not remove this instance's heartbeat");
        }
        store.signal_sessions_now().await;
        if !held.is_empty() {
            tracing::info!(sessions = held.len(), "handed the sessions over");
        }
    }
}

/// How long a pass may take before it is worth a warning (a slow database eats the lease).
pub const SLOW_PASS: Duration = Duration::from_secs(2);
