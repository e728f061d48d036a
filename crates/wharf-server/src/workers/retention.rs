//! Retention: events older than `events_retention_days` (and their webhook deliveries) are
//! removed hourly by a job claimed through the database, so however many instances share it
//! one runs each round. The work goes in bounded batches, oldest first, with a pause between
//! them, so writers never wait long behind it; a lost lease (an instance that stalled past
//! it) stops the run, and the instance that took the job over goes on.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wharf_core::time::Clock;
use wharf_store::{Pruned, Store, StoreError};

/// The job's name in `scheduled_jobs`.
pub const JOB: &str = "events_retention";
/// How often an instance looks whether the job is due.
const POLL: Duration = Duration::from_secs(1);
/// A run's next one is this much later.
const EVERY_MS: i64 = 3_600_000;
/// How long a claim (or the last batch) keeps the job ours.
const LEASE_MS: i64 = 60_000;
/// Events removed per transaction.
const BATCH: i64 = 1000;
/// Between two batches: the writer is free for others meanwhile.
const PAUSE: Duration = Duration::from_millis(20);

/// The job's settings.
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// Events older than this many days go; 0 keeps them forever (the job does not run).
    pub days: u32,
    /// This process's name as a claimant (unique per process).
    pub holder: String,
    pub clock: Clock,
}

/// The worker loop.
pub async fn run(store: Store, config: RetentionConfig, stop: CancellationToken) {
    if config.days == 0 {
        return;
    }
    let mut failures = super::Failures::new("the events retention");
    loop {
        let _ = failures.note(run_once(&store, &config, &stop).await);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Runs the job if it is due and this process wins the claim. Returns the events removed.
pub async fn run_once(
    store: &Store,
    config: &RetentionConfig,
    stop: &CancellationToken,
) -> Result<u64, StoreError> {
    let now = config.clock.now_millis();
    let Some(lease) = store.claim_job(JOB, &config.holder, now, LEASE_MS).await? else {
        return Ok(0);
    };
    let before = now - i64::from(config.days) * 86_400_000;
    let mut removed = 0;
    for account in store.account_ids().await? {
        loop {
            if stop.is_cancelled() {
                // Unfinished: the lease runs out and the next run (any instance) goes on.
                return Ok(removed);
            }
            let now = config.clock.now_millis();
            match store
                .prune_events(account, before, BATCH, &lease, now, now + LEASE_MS)
                .await?
            {
                Pruned::Some(n) => removed += n,
                Pruned::Done => break,
                Pruned::LeaseLost => return Ok(removed),
            }
            tokio::time::sleep(PAUSE).await;
        }
    }
    store
        .finish_job(&lease, config.clock.now_millis() + EVERY_MS)
        .await?;
    if removed > 0 {
        tracing::info!(events = removed, "events retention removed old events");
    }
    Ok(removed)
}
