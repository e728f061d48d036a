//! Session ownership between Wharf instances sharing one database (`wharf_store::Lease`).
//!
//! Every running session is owned by one instance through a lease in the database. Only the
//! owner runs the session's engine connection and dispatches its outbox. [`Ownership`] is this
//! instance's view of the leases it holds; `workers::leases` renews them, takes the sessions
//! of dead instances over and keeps the share of each live instance even.
//!
//! A lease is trusted locally only until a little before its expiry as last renewed
//! ([`Ownership::fence`]): an instance that stalls (a pause, a long GC-like hiccup, SIGSTOP)
//! stops acting on its own before another instance may take the session over, and every
//! outcome write carries the lease's generation, so a write after a takeover is refused by
//! the database.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::Notify;
use wharf_core::{
    EngineError, SessionId,
    engine::{EngineSink, EngineUpdate},
    time::now_millis,
};
use wharf_store::{Fence, InstanceRow, Lease, Store, StoreError};

/// A lease as this instance holds it.
#[derive(Debug, Clone, Copy)]
struct Held {
    generation: i64,
    /// When this instance learned it took it (at this generation): the answer's arrival, so
    /// its commit is seen by every read sent since. (Its query's sending time is not: an
    /// insert sent earlier may commit after a read sent later.)
    taken: Instant,
    /// Until when this instance acts on it (before the lease's expiry in the database).
    until: Instant,
}

#[derive(Default)]
struct State {
    held: HashMap<SessionId, Held>,
    /// Sessions whose engine this instance started and has not stopped.
    started: HashSet<SessionId>,
}

/// The leases this instance holds, and its identity among the instances.
pub struct Ownership {
    store: Store,
    /// Unique to this process: the configured name and a random suffix, so two processes
    /// given the same name never share leases.
    id: String,
    name: String,
    address: Option<String>,
    started_at: i64,
    ttl: Duration,
    state: Mutex<State>,
    /// Wakes the lease worker before its next tick.
    wake: Notify,
}

impl Ownership {
    /// This instance, named `name`, reachable by peers at `address`, holding leases of `ttl`.
    pub fn new(store: Store, name: &str, address: Option<String>, ttl: Duration) -> Arc<Self> {
        Arc::new(Self {
            store,
            id: format!("{name}-{:08x}", rand::random::<u32>()),
            name: name.to_owned(),
            address,
            started_at: now_millis(),
            ttl,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This process's instance id (leases name it).
    pub fn instance_id(&self) -> &str {
        &self.id
    }

    /// The configured instance name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How long a lease lasts without renewal.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// How long before a lease's expiry this instance stops trusting it: a tenth of the
    /// lease, at least 200 ms (clock steps between instances, the renewal's own delay).
    fn margin(&self) -> Duration {
        (self.ttl / 10).max(Duration::from_millis(200))
    }

    /// The heartbeat row of this instance, alive until `now` + the lease length.
    pub(crate) fn heartbeat_row(&self, now: i64) -> InstanceRow {
        InstanceRow {
            id: self.id.clone(),
            name: self.name.clone(),
            address: self.address.clone(),
            started_at: self.started_at,
            heartbeat_at: now,
            expires_at: now + self.ttl.as_millis() as i64,
        }
    }

    /// The fence of this instance's lease on `session`, while it holds one it may act on.
    pub fn fence(&self, session: SessionId) -> Option<Fence> {
        let state = self.state();
        let held = state.held.get(&session)?;
        (held.until > Instant::now()).then(|| Fence {
            session_id: session,
            instance_id: self.id.clone(),
            generation: held.generation,
        })
    }

    /// Whether this instance holds a lease on `session` it may act on.
    pub fn holds(&self, session: SessionId) -> bool {
        self.fence(session).is_some()
    }

    /// Whether `fence` is still this instance's current, valid lease.
    pub fn still(&self, fence: &Fence) -> bool {
        self.fence(fence.session_id)
            .is_some_and(|f| f.generation == fence.generation)
    }

    /// The sessions this instance holds leases on (valid or not yet renewed).
    pub fn held(&self) -> Vec<SessionId> {
        let mut ids: Vec<SessionId> = self.state().held.keys().copied().collect();
        ids.sort();
        ids
    }

    /// The sessions held since before `t`, with their generations: a lease taken after `t`
    /// may be missing from reads made since `t`, and is left alone by the lease worker's pass.
    pub(crate) fn held_before(&self, t: Instant) -> Vec<(SessionId, i64)> {
        let mut held: Vec<(SessionId, i64)> = self
            .state()
            .held
            .iter()
            .filter(|(_, h)| h.taken < t)
            .map(|(id, h)| (*id, h.generation))
            .collect();
        held.sort();
        held
    }

    /// Takes the lease of `session` unless another instance holds it; `true` when this
    /// instance holds it afterwards.
    pub async fn acquire(&self, session: SessionId) -> Result<bool, StoreError> {
        let started = Instant::now();
        let now = now_millis();
        let expires = now + self.ttl.as_millis() as i64;
        match self
            .store
            .acquire_lease(&self.id, session, now, expires)
            .await?
        {
            Some(lease) => {
                self.note(lease, started);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Records `lease` as held, renewed at `renewed` (when its query was sent); called once its
    /// answer is in hand.
    pub(crate) fn note(&self, lease: Lease, renewed: Instant) {
        let until = renewed + self.ttl.saturating_sub(self.margin());
        let mut state = self.state();
        match state.held.get_mut(&lease.session_id) {
            Some(h) if h.generation == lease.generation => h.until = h.until.max(until),
            _ => {
                state.held.insert(
                    lease.session_id,
                    Held {
                        generation: lease.generation,
                        taken: Instant::now(),
                        until,
                    },
                );
            }
        }
    }

    /// Stops trusting this instance's lease on `session` (lost or being given up). Returns
    /// whether this instance had started its engine (the caller stops it).
    pub(crate) fn forget(&self, session: SessionId) -> bool {
        let mut state = self.state();
        state.held.remove(&session);
        state.started.remove(&session)
    }

    /// The generation held for `session`, valid or not.
    pub(crate) fn generation(&self, session: SessionId) -> Option<i64> {
        self.state().held.get(&session).map(|h| h.generation)
    }

    /// Records that this instance started (or stopped) `session`'s engine.
    pub fn set_started(&self, session: SessionId, started: bool) {
        let mut state = self.state();
        if started {
            state.started.insert(session);
        } else {
            state.started.remove(&session);
        }
    }

    /// Whether this instance runs `session`'s engine.
    pub fn started(&self, session: SessionId) -> bool {
        self.state().started.contains(&session)
    }

    /// Refuses a call that needs `session`'s live connection when another live instance
    /// runs it ([`crate::ServiceError::OwnedElsewhere`], which the HTTP layer forwards to that
    /// instance). Passes when this instance owns it, or nobody does.
    pub async fn require_local(&self, session: SessionId) -> Result<(), crate::ServiceError> {
        if self.holds(session) {
            return Ok(());
        }
        let Some(lease) = self.store.lease_of(session).await? else {
            return Ok(());
        };
        if lease.instance_id == self.id || lease.expires_at <= now_millis() {
            return Ok(());
        }
        let address = self
            .store
            .instance(&lease.instance_id)
            .await?
            .and_then(|i| i.address);
        Err(crate::ServiceError::OwnedElsewhere {
            instance: lease.instance_id,
            address,
        })
    }

    /// Asks the lease worker to run now (a session started or stopped, a peer's news).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) async fn woken(&self) {
        self.wake.notified().await
    }
}

/// The sink given to engines that hold a live connection (the emulator, WhatsApp Web): it
/// passes on their updates only while this instance holds the session's lease, so an engine
/// left running after its lease was lost (a stalled instance) writes nothing; it refuses them
/// otherwise, so nothing is acknowledged to WhatsApp that was not recorded. The Cloud API
/// engine's updates arrive by webhook at any instance and go to the supervisor directly.
pub struct OwnedSink {
    inner: Arc<dyn EngineSink>,
    ownership: Arc<Ownership>,
}

impl OwnedSink {
    pub fn new(inner: Arc<dyn EngineSink>, ownership: Arc<Ownership>) -> Self {
        Self { inner, ownership }
    }
}

#[async_trait::async_trait]
impl EngineSink for OwnedSink {
    async fn updates(
        &self,
        session: SessionId,
        updates: Vec<EngineUpdate>,
    ) -> Result<(), EngineError> {
        if !self.ownership.holds(session) {
            // Refused, not taken and dropped: an engine that acknowledges what its sink took
            // (WhatsApp Web's inbound messages) must not acknowledge these, so WhatsApp
            // delivers them again, to the session's owner.
            tracing::debug!(session_id = %session, updates = updates.len(), "refused engine updates of a session this instance does not own");
            return Err(EngineError::Transient(format!(
                "this instance does not hold the lease of session {session}: nothing was recorded"
            )));
        }
        self.inner.updates(session, updates).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Instance "a"'s ownership, on a new SQLite store in the directory returned with it.
    async fn ownership() -> (Arc<Ownership>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("wharf-cluster-{:08x}", rand::random::<u32>()));
        let store = Store::connect(&format!("sqlite://{}/w.db?mode=rwc", dir.display()))
            .await
            .unwrap();
        (
            Ownership::new(store, "a", None, Duration::from_secs(30)),
            dir,
        )
    }

    /// A lease whose acquisition was sent before a lease pass began but answered after the
    /// pass's renewal read it may be missing from that read (the insert committed after the
    /// read). It must not count as held before the pass, or the pass takes it for lost and
    /// stops the engine a request has just started.
    #[tokio::test]
    async fn a_lease_answered_after_a_pass_began_is_not_held_before_it() {
        let (own, dir) = ownership().await;
        let session = SessionId::generate();

        let sent = Instant::now();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let pass_began = Instant::now();
        tokio::time::sleep(Duration::from_millis(5)).await;
        own.note(
            Lease {
                session_id: session,
                generation: 1,
            },
            sent,
        );
        assert!(own.held_before(pass_began).is_empty());
        assert_eq!(
            own.held_before(Instant::now() + Duration::from_millis(1)),
            vec![(session, 1)]
        );
        // The lease is trusted from when its query was sent.
        assert!(own.holds(session));
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A sink that counts what reaches it.
    #[derive(Default)]
    struct Counting(std::sync::atomic::AtomicUsize);

    #[async_trait::async_trait]
    impl EngineSink for Counting {
        async fn updates(
            &self,
            _: SessionId,
            updates: Vec<EngineUpdate>,
        ) -> Result<(), EngineError> {
            self.0
                .fetch_add(updates.len(), std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
    }

    /// Updates of a session this instance does not own (its lease was let go while its engine
    /// was still closing, or ran out while the database was away) are refused, not taken
    /// and dropped: WhatsApp Web acknowledges an inbound message only once the sink took it,
    /// so a refusal has it delivered again (to the owner), where an `Ok` lost it for good.
    #[tokio::test]
    async fn updates_of_a_session_not_owned_are_refused_not_dropped() {
        let (own, dir) = ownership().await;
        let inner = Arc::new(Counting::default());
        let sink = OwnedSink::new(inner.clone(), own.clone());
        let session = SessionId::generate();
        let update = || EngineUpdate::Disconnected { reason: "x".into() };
        let refused = sink.updates(session, vec![update()]).await;
        assert!(
            matches!(refused, Err(EngineError::Transient(_))),
            "{refused:?}"
        );
        own.note(
            Lease {
                session_id: session,
                generation: 1,
            },
            Instant::now(),
        );
        sink.updates(session, vec![update()]).await.unwrap();
        assert_eq!(inner.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}
