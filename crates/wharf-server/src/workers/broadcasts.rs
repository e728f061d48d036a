//! Runs broadcasts: starts scheduled ones when due and turns sending ones into messages, a
//! batch at a time. Woken when a broadcast starts; also polls, so a schedule fires on time
//! by the injected clock, a full outbox window that drained is refilled, and work left by a
//! crash (or another instance) is picked up: all of it is in the database.
//!
//! While a broadcast has recipients left to commit it polls every 100 ms. Otherwise it polls
//! once a second (how late a schedule may start), and looks again, at most every 100 ms, when
//! events are committed: the receipts that end a broadcast or move its counters. A step is
//! three statements on every instance: at 10 Hz, idle, they were most of an idle database's
//! traffic.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::services::BroadcastService;

const POLL: Duration = Duration::from_millis(100);
/// The poll when no broadcast has recipients left to commit.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// While a sending broadcast waits for its outbox window to drain: the first look again
/// after this, then twice as long each time nothing drained, up to `DRAIN_MAX`. A fast
/// pace refills at once (each refill resets it); a slow one is not polled 40 times a second.
/// `DRAIN_MAX` stays short: the window only looks full until the dispatcher records its
/// sends, and a worker asleep for a second let the outbox run dry (699 messages/s at 1M
/// recipients instead of thousands); in 100 ms a fast dispatcher sends less than the three
/// batches left in the window.
const DRAIN: Duration = Duration::from_millis(25);
const DRAIN_MAX: Duration = Duration::from_millis(100);

/// The worker loop.
pub async fn run(broadcasts: Arc<BroadcastService>, stop: CancellationToken) {
    let wake = broadcasts.wakeup();
    let mut appended = broadcasts.events_appended();
    let mut drain = DRAIN;
    let mut failures = super::Failures::errors("the broadcast worker's step");
    loop {
        // Everything that is ready, before sleeping.
        let mut pause = IDLE_POLL;
        loop {
            if stop.is_cancelled() {
                return;
            }
            match failures.note(broadcasts.step().await) {
                Ok(step) if step.progressed => {
                    drain = DRAIN;
                    continue;
                }
                Ok(step) => {
                    if step.sending {
                        pause = POLL;
                    }
                    if step.waiting {
                        pause = drain;
                        drain = (drain * 2).min(DRAIN_MAX);
                    }
                    break;
                }
                Err(_) => break,
            }
        }
        let stepped = tokio::time::Instant::now();
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(pause) => {}
            Ok(()) = appended.changed(), if pause > POLL => {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep_until(stepped + POLL) => {}
                }
            }
        }
    }
}
