//! The emulator's receipts: the recipient's phone reports `delivered`, then `read` (or
//! `played` for audio), after configurable delays. One task holds a timer queue for every
//! session and hands due receipts to the sink in batches.
//!
//! The queue is bounded: each pending receipt holds a permit until the sink has taken it, so
//! when the sink falls behind (the database writer is the slowest part of a full pipeline)
//! sends wait for room instead of piling receipts up in memory.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    sync::{Arc, Weak},
    time::Duration,
};

use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
    time::Instant,
};
use wharf_core::{
    EngineSink, EngineUpdate, ProviderId, SessionId, message::ReceiptKind, time::now_millis,
};

/// When receipts follow a send; `None` means that receipt never comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiptDelays {
    pub delivered: Option<Duration>,
    pub read: Option<Duration>,
}

struct Due {
    at: Instant,
    session: SessionId,
    provider_id: ProviderId,
    kind: ReceiptKind,
    /// Times the sink could not record it so far.
    failures: u32,
    /// Room in the bounded queue, given back (dropped) once the sink has the receipt.
    _room: OwnedSemaphorePermit,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

/// Handle on the receipt task.
pub(super) struct Receipts {
    tx: mpsc::UnboundedSender<Due>,
    delays: ReceiptDelays,
    room: Arc<Semaphore>,
}

/// Receipts handed to the sink at once, at most.
const BATCH: usize = 500;
/// Receipts waiting (for their time or for the sink) at most: about 10 MB.
const PENDING_MAX: usize = 100_000;

impl Receipts {
    pub(super) fn spawn(sink: Weak<dyn EngineSink>, delays: ReceiptDelays) -> Self {
        Self::with_room(sink, delays, PENDING_MAX)
    }

    fn with_room(sink: Weak<dyn EngineSink>, delays: ReceiptDelays, room: usize) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(sink, rx));
        Self {
            tx,
            delays,
            room: Arc::new(Semaphore::new(room)),
        }
    }

    /// Schedules the receipts of a message just sent, first waiting for room in the queue.
    pub(super) async fn schedule(&self, session: SessionId, provider_id: ProviderId, audio: bool) {
        let now = Instant::now();
        let last = if audio {
            ReceiptKind::Played
        } else {
            ReceiptKind::Read
        };
        for (delay, kind) in [
            (self.delays.delivered, ReceiptKind::Delivered),
            (self.delays.read, last),
        ] {
            if let Some(delay) = delay {
                let Ok(room) = self.room.clone().acquire_owned().await else {
                    return;
                };
                let _ = self.tx.send(Due {
                    at: now + delay,
                    session,
                    provider_id: provider_id.clone(),
                    kind,
                    failures: 0,
                    _room: room,
                });
            }
        }
    }
}

async fn run(sink: Weak<dyn EngineSink>, mut rx: mpsc::UnboundedReceiver<Due>) {
    let mut queue: BinaryHeap<Reverse<Due>> = BinaryHeap::new();
    loop {
        let next = queue.peek().map(|Reverse(d)| d.at);
        tokio::select! {
            incoming = rx.recv() => match incoming {
                Some(due) => queue.push(Reverse(due)),
                None => return,
            },
            _ = async { tokio::time::sleep_until(next.unwrap_or_else(Instant::now)).await }, if next.is_some() => {
                let now = Instant::now();
                let mut by_session: HashMap<SessionId, Vec<Due>> = HashMap::new();
                let mut taken = 0;
                while taken < BATCH && queue.peek().is_some_and(|Reverse(d)| d.at <= now) {
                    let Some(Reverse(due)) = queue.pop() else { break };
                    taken += 1;
                    by_session.entry(due.session).or_default().push(due);
                }
                let Some(sink) = sink.upgrade() else { return };
                for (session, dues) in by_session {
                    let updates = dues
                        .iter()
                        .map(|due| EngineUpdate::Receipt {
                            provider_id: due.provider_id.clone(),
                            kind: due.kind,
                            at: now_millis(),
                        })
                        .collect();
                    let Err(e) = sink.updates(session, updates).await else {
                        // Recorded: their room is given back.
                        continue;
                    };
                    // A phone's receipt is sent again until the server has it, so one the
                    // sink could not record (a deadlock, a busy database) comes again
                    // later: it is recorded once (receipts are idempotent) rather than lost.
                    let failures = dues.iter().map(|d| d.failures).max().unwrap_or(0) + 1;
                    if failures > RETRIES {
                        tracing::error!(%session, error = %e, receipts = dues.len(),
                            "could not record emulator receipts; giving them up");
                        continue;
                    }
                    tracing::warn!(%session, error = %e, receipts = dues.len(),
                        "could not record emulator receipts; trying again");
                    let again = Instant::now() + retry_delay(failures);
                    for mut due in dues {
                        due.failures = failures;
                        due.at = again;
                        queue.push(Reverse(due));
                    }
                }
            }
        }
    }
}

/// Times a batch the sink could not record is handed over again before it is given up.
const RETRIES: u32 = 20;

/// The wait before the `failures`-th new try: 50 ms, doubling, at most 2 s.
fn retry_delay(failures: u32) -> Duration {
    Duration::from_millis(
        50u64
            .saturating_mul(1 << failures.min(6).saturating_sub(1))
            .min(2_000),
    )
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use wharf_core::EngineError;

    use super::*;

    /// A sink that takes receipts only while its gate is open.
    struct Gated {
        gate: Semaphore,
        taken: std::sync::Mutex<usize>,
    }

    #[async_trait]
    impl EngineSink for Gated {
        async fn updates(
            &self,
            _session: SessionId,
            updates: Vec<EngineUpdate>,
        ) -> Result<(), EngineError> {
            let _open = self.gate.acquire().await.expect("gate");
            *self.taken.lock().unwrap() += updates.len();
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_slow_sink_makes_sends_wait_instead_of_queueing_without_bound() {
        let gated = Arc::new(Gated {
            gate: Semaphore::new(0),
            taken: Default::default(),
        });
        let sink: Arc<dyn EngineSink> = gated.clone();
        let delays = ReceiptDelays {
            delivered: Some(Duration::ZERO),
            read: Some(Duration::ZERO),
        };
        let receipts = Receipts::with_room(Arc::downgrade(&sink), delays, 4);
        let session = SessionId::generate();
        // Two messages fill the room (two receipts each).
        for id in ["a", "b"] {
            tokio::time::timeout(
                Duration::from_secs(1),
                receipts.schedule(session, id.into(), false),
            )
            .await
            .expect("room for the first receipts");
        }
        let third = receipts.schedule(session, "c".into(), false);
        tokio::pin!(third);
        assert!(
            tokio::time::timeout(Duration::from_millis(200), &mut third)
                .await
                .is_err(),
            "a full queue makes the send wait"
        );
        gated.gate.add_permits(1_000);
        tokio::time::timeout(Duration::from_secs(2), &mut third)
            .await
            .expect("room again once the sink took the receipts");
        tokio::time::timeout(Duration::from_secs(2), async {
            while *gated.taken.lock().unwrap() < 6 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("every receipt reaches the sink");
    }

    /// A sink whose first `failures` calls fail (a deadlock, a busy database), then takes
    /// everything.
    struct Flaky {
        failures: std::sync::Mutex<usize>,
        taken: std::sync::Mutex<Vec<(ProviderId, ReceiptKind)>>,
    }

    #[async_trait]
    impl EngineSink for Flaky {
        async fn updates(
            &self,
            _session: SessionId,
            updates: Vec<EngineUpdate>,
        ) -> Result<(), EngineError> {
            {
                let mut failures = self.failures.lock().unwrap();
                if *failures > 0 {
                    *failures -= 1;
                    return Err(EngineError::Transient("deadlock detected".into()));
                }
            }
            let mut taken = self.taken.lock().unwrap();
            for u in updates {
                if let EngineUpdate::Receipt {
                    provider_id, kind, ..
                } = u
                {
                    taken.push((provider_id, kind));
                }
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_batch_the_sink_could_not_record_is_handed_over_again() {
        let flaky = Arc::new(Flaky {
            failures: std::sync::Mutex::new(2),
            taken: Default::default(),
        });
        let sink: Arc<dyn EngineSink> = flaky.clone();
        let delays = ReceiptDelays {
            delivered: Some(Duration::ZERO),
            read: None,
        };
        let receipts = Receipts::with_room(Arc::downgrade(&sink), delays, 100);
        let session = SessionId::generate();
        for id in ["a", "b", "c"] {
            receipts.schedule(session, id.into(), false).await;
        }
        tokio::time::timeout(Duration::from_secs(5), async {
            while flaky.taken.lock().unwrap().len() < 3 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the receipts reach the sink once it records again");
        assert_eq!(*flaky.failures.lock().unwrap(), 0);
        let mut taken = flaky.taken.lock().unwrap().clone();
        taken.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        assert_eq!(
            taken,
            [
                ("a".into(), ReceiptKind::Delivered),
                ("b".into(), ReceiptKind::Delivered),
                ("c".into(), ReceiptKind::Delivered),
            ],
            "each receipt once"
        );
    }
}
