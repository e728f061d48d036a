//! The emulator's receipts: the recipient's phone reports `delivered`, then `read` (or
//! `played` for audio), after configurable delays. One task holds a timer queue for every
//! session and hands due receipts to the sink in batches.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    sync::Weak,
    time::Duration,
};

use tokio::{sync::mpsc, time::Instant};
use wharf_core::{EngineSink, EngineUpdate, SessionId, message::ReceiptKind, time::now_millis};

/// When receipts follow a send; `None` means that receipt never comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiptDelays {
    pub delivered: Option<Duration>,
    pub read: Option<Duration>,
}

struct Due {
    at: Instant,
    session: SessionId,
    provider_id: String,
    kind: ReceiptKind,
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
}

/// Receipts handed to the sink at once, at most.
const BATCH: usize = 500;

impl Receipts {
    pub(super) fn spawn(sink: Weak<dyn EngineSink>, delays: ReceiptDelays) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(sink, rx));
        Self { tx, delays }
    }

    /// Schedules the receipts of a message just sent.
    pub(super) fn schedule(&self, session: SessionId, provider_id: String, audio: bool) {
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
                let _ = self.tx.send(Due {
                    at: now + delay,
                    session,
                    provider_id: provider_id.clone(),
                    kind,
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
                let mut by_session: HashMap<SessionId, Vec<EngineUpdate>> = HashMap::new();
                let mut taken = 0;
                while taken < BATCH && queue.peek().is_some_and(|Reverse(d)| d.at <= now) {
                    let Some(Reverse(due)) = queue.pop() else { break };
                    taken += 1;
                    by_session.entry(due.session).or_default().push(EngineUpdate::Receipt {
                        provider_id: due.provider_id,
                        kind: due.kind,
                        at: now_millis(),
                    });
                }
                let Some(sink) = sink.upgrade() else { return };
                for (session, updates) in by_session {
                    if let Err(e) = sink.updates(session, updates).await {
                        tracing::warn!(%session, error = %e, "could not record emulator receipts");
                    }
                }
            }
        }
    }
}
