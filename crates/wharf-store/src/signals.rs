//! Signals between instances sharing a PostgreSQL database, over `LISTEN/NOTIFY`: events were
//! appended (event streams and the webhook fan-out read on), a session has new outbox work
//! (its owner's dispatcher wakes), sessions were started or stopped by another instance (the
//! owner's lease worker looks again). Signals are coalesced: at most one `NOTIFY` a channel
//! and payload per few milliseconds, so a burst of commits costs a handful of them.
//!
//! Signals only shorten waits: every reader also polls, so a lost notification (a listener
//! reconnecting) delays work by a poll interval and loses nothing. SQLite has one instance,
//! and signals there are in-process only.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wharf_core::SessionId;

use crate::{Backend, Store};

const EVENTS: &str = "wharf_events";
const OUTBOX: &str = "wharf_outbox";
const SESSIONS: &str = "wharf_sessions";

/// How long signals are gathered before they are sent.
const COALESCE: Duration = Duration::from_millis(5);

/// What another instance said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// Events were appended to the log.
    Events,
    /// A session has new work in its outbox.
    Outbox(SessionId),
    /// Sessions were started or stopped: owners look at their leases again.
    Sessions,
}

#[derive(Default)]
struct Pending {
    events: bool,
    sessions: bool,
    outbox: HashSet<SessionId>,
}

/// The signals waiting to be sent, and the task sending them.
#[derive(Default)]
pub(crate) struct Signaller {
    pending: Mutex<Pending>,
    wake: Notify,
    started: OnceLock<()>,
}

impl std::fmt::Debug for Signaller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signaller").finish_non_exhaustive()
    }
}

impl Signaller {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store {
    fn signal(&self, change: impl FnOnce(&mut Pending)) {
        if self.backend != Backend::Postgres {
            return;
        }
        change(&mut self.signals.pending());
        let signals = self.signals.clone();
        if signals.started.set(()).is_ok() {
            let store = self.clone();
            tokio::spawn(async move { store.send_signals().await });
        }
        signals.wake.notify_one();
    }

    async fn send_signals(self) {
        loop {
            self.signals.wake.notified().await;
            tokio::time::sleep(COALESCE).await;
            let pending = std::mem::take(&mut *self.signals.pending());
            let mut sends: Vec<(&str, String)> = Vec::new();
            if pending.events {
                sends.push((EVENTS, String::new()));
            }
            if pending.sessions {
                sends.push((SESSIONS, String::new()));
            }
            sends.extend(pending.outbox.iter().map(|id| (OUTBOX, id.to_string())));
            for (channel, payload) in sends {
                if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(channel)
                    .bind(payload)
                    .execute(&self.write)
                    .await
                {
                    tracing::debug!(error = %e, channel, "could not signal the other instances");
                }
            }
        }
    }

    /// Tells the other instances that events were appended.
    pub(crate) fn signal_events(&self) {
        self.signal(|p| p.events = true);
    }

    /// Tells the other instances that `session` has new outbox work (its owner wakes).
    pub fn signal_outbox(&self, session: SessionId) {
        self.signal(|p| {
            p.outbox.insert(session);
        });
    }

    /// Tells the other instances that sessions were started or stopped.
    pub fn signal_sessions(&self) {
        self.signal(|p| p.sessions = true);
    }

    /// Tells the other instances at once that sessions were started or stopped (a server
    /// about to stop, which cannot wait for the coalesced signal).
    pub async fn signal_sessions_now(&self) {
        if self.backend != Backend::Postgres {
            return;
        }
        if let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
            .bind(SESSIONS)
            .execute(&self.write)
            .await
        {
            tracing::debug!(error = %e, "could not signal the other instances");
        }
    }

    /// Listens for the other instances' signals until `stop`, passing each to `on` (events
    /// also wake this process's readers of the log). Reconnects after a failure. Returns at
    /// once on SQLite.
    pub async fn listen(&self, on: impl Fn(Signal) + Send + Sync, stop: CancellationToken) {
        if self.backend != Backend::Postgres {
            return;
        }
        let mut failures = crate::Failures::new("listening to the other instances");
        loop {
            let listener = async {
                let mut listener = PgListener::connect(&self.url).await?;
                listener.listen_all([EVENTS, OUTBOX, SESSIONS]).await?;
                failures.succeeded();
                // Whatever was signalled while nobody listened: look once.
                self.events_appended_here();
                on(Signal::Sessions);
                loop {
                    let n = listener.recv().await?;
                    match n.channel() {
                        EVENTS => self.events_appended_here(),
                        SESSIONS => on(Signal::Sessions),
                        OUTBOX => {
                            if let Ok(id) = n.payload().parse() {
                                on(Signal::Outbox(id));
                            }
                        }
                        _ => {}
                    }
                }
                #[allow(unreachable_code)]
                Ok::<(), sqlx::Error>(())
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                result = listener => {
                    if let Err(e) = result {
                        // Reconnected after a second; while the database is down, logged
                        // once (then once a minute), not at every try.
                        failures.failed(&e);
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

pub(crate) type Signals = Arc<Signaller>;
