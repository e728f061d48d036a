//! Long-running loops, each with one job, all stopped by one cancellation token.

pub mod broadcasts;
pub mod dispatch;
pub mod leases;
pub mod operations;
mod pace;
pub mod retention;
pub mod webhooks;

use std::sync::Arc;

pub(crate) use wharf_store::Failures;

/// Takes up phone numbers left halfway with their provider (a release begun, an order
/// whose answer was lost), at startup and every five minutes.
pub async fn reconcile_numbers(
    numbers: Arc<crate::services::NumberService>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(300));
    let mut failures = Failures::new("reconciling phone numbers");
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => match failures.note(numbers.reconcile().await) {
                Ok(0) | Err(_) => {}
                Ok(n) => tracing::info!(numbers = n, "reconciled phone numbers with the provider"),
            },
        }
    }
}

/// Dead outbox rows (sent jobs) past which the outbox is vacuumed on PostgreSQL.
pub const OUTBOX_VACUUM_DEAD_ROWS: i64 = 10_000;

/// Rows past which the busy tables (the send path's, the contacts list's) are analyzed on
/// PostgreSQL when they have no statistics, and changed rows past which they are analyzed
/// again (with a fifth of the table, at most once a minute).
pub const ANALYZE_MIN_ROWS: i64 = 1_000;

/// On PostgreSQL, every 5 s: vacuums the outbox once enough sent jobs left dead rows behind
/// (`Store::vacuum_outbox` says why), and analyzes the busy tables when their
/// statistics are missing or stale (`Store::analyze_busy_tables`). A no-op loop on SQLite.
pub async fn maintain_postgres(
    store: wharf_store::Store,
    stop: tokio_util::sync::CancellationToken,
) {
    if store.backend() == wharf_store::Backend::Sqlite {
        return;
    }
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    let mut vacuum = Failures::new("vacuuming the outbox");
    let mut analyze = Failures::new("analyzing the busy tables");
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                let _ = vacuum.note(store.vacuum_outbox(OUTBOX_VACUUM_DEAD_ROWS).await);
                if let Ok(tables) = analyze.note(store.analyze_busy_tables(ANALYZE_MIN_ROWS).await)
                    && !tables.is_empty()
                {
                    tracing::debug!(?tables, "analyzed the busy tables")
                }
            }
        }
    }
}

/// The job's name in `scheduled_jobs`.
pub const IDEMPOTENCY_JOB: &str = "idempotency_expiry";

/// Removes idempotency keys older than `hours`, hourly: a job claimed through the database
/// (`scheduled_jobs`), so however many instances share it, one runs each round. Each instance
/// looks every 5 s whether it is due; a run that fails is not finished, and its lease (10
/// minutes) lets another try again.
pub async fn expire_idempotency_keys(
    store: wharf_store::Store,
    hours: u64,
    holder: String,
    clock: wharf_core::time::Clock,
    stop: tokio_util::sync::CancellationToken,
) {
    const LEASE_MS: i64 = 600_000;
    const EVERY_MS: i64 = 3_600_000;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    let mut claims = Failures::new("claiming the idempotency-key expiry");
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = clock.now_millis();
        let lease = match claims.note(
            store
                .claim_job(IDEMPOTENCY_JOB, &holder, now, LEASE_MS)
                .await,
        ) {
            Ok(Some(lease)) => lease,
            Ok(None) | Err(_) => continue,
        };
        let before = now - (hours as i64) * 3_600_000;
        match store.expire_idempotency_keys(before).await {
            Ok(_) => {
                if let Err(e) = store
                    .finish_job(&lease, clock.now_millis() + EVERY_MS)
                    .await
                {
                    tracing::warn!(error = %e, "could not finish the idempotency-key expiry");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not expire idempotency keys"),
        }
    }
}
