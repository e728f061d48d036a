//! Long-running loops, each with one job, all stopped by one cancellation token.

pub mod operations;

use std::sync::Arc;

use crate::services::SessionService;

/// Restarts the engines of sessions that were running when the server last stopped.
pub async fn resume(sessions: Arc<SessionService>) {
    match sessions.resume_running().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(sessions = n, "resumed running sessions"),
        Err(e) => tracing::error!(error = %e, "could not resume running sessions"),
    }
}
