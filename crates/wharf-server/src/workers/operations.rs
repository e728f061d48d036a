//! Runs queued operations (session deletions). Woken when one is queued; also polls, so work
//! left by a crash (an expired lease) or by another instance is picked up.

use std::{sync::Arc, time::Duration};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::services::SessionService;

/// How long a claimed operation is ours before another run may take it over.
const LEASE_MS: i64 = 60_000;
const POLL: Duration = Duration::from_secs(1);

/// The worker loop.
pub async fn run(sessions: Arc<SessionService>, wake: Arc<Notify>, stop: CancellationToken) {
    let mut failures = super::Failures::errors("the operations worker's step");
    loop {
        // Drain everything that is ready before sleeping.
        loop {
            if stop.is_cancelled() {
                return;
            }
            match failures.note(sessions.run_next_operation(LEASE_MS).await) {
                Ok(true) => continue,
                Ok(false) | Err(_) => break,
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}
