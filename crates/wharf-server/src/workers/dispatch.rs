//! The dispatcher: drains each connected session's outbox in order, under the session's send
//! rate, without holding a transaction across an engine call. One task per session with work;
//! a manager starts them when woken (new work, a session connecting) and every few seconds
//! for work left behind (a restart, a retry coming due).
//!
//! Crash safety: a job stays in the outbox until its outcome is committed, so a crash between
//! the engine call and the commit sends it again after the restart. Engines that let Wharf
//! choose WhatsApp ids get the same id again, so WhatsApp drops the duplicate.

use std::{
    collections::{HashMap, HashSet},
    num::NonZeroU32,
    sync::Arc,
    time::{Duration, Instant},
};

use rand::Rng;
use tokio::{
    sync::{Notify, mpsc},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;
use wharf_core::{
    EngineError, EngineKind, MessageId, SessionId, SessionStatus,
    message::{MessageAction, Outbound},
    time::now_millis,
};
use wharf_store::{JobAction, JobOutcome, MessageRow, OutboxJob, Store};

use super::pace::Pace;
use crate::services::Engines;

/// How the dispatcher behaves.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// Sends per second per session, by engine.
    pub rate: HashMap<EngineKind, NonZeroU32>,
    /// Attempts before a retryable failure becomes final.
    pub max_attempts: u32,
    /// First retry delay; doubles each attempt (with jitter), capped by `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

/// Jobs read per batch.
const BATCH: i64 = 200;
/// Outcomes are recorded after this many jobs …
const FLUSH_JOBS: usize = 100;
/// … or this long, whichever comes first.
const FLUSH_AFTER: Duration = Duration::from_millis(200);
/// How often work left behind is looked for.
const SWEEP: Duration = Duration::from_secs(2);

struct Running {
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

/// Starts the manager; session ids sent to `wake` start or wake that session's dispatcher.
pub fn spawn(
    store: Store,
    engines: Arc<Engines>,
    config: DispatchConfig,
    mut wake_rx: mpsc::UnboundedReceiver<SessionId>,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let config = Arc::new(config);
        let mut running: HashMap<SessionId, Running> = HashMap::new();
        // Kept across a dispatcher's restarts so an idle pause does not refill the burst.
        let mut paces: HashMap<SessionId, Arc<Pace>> = HashMap::new();
        let mut sweep = tokio::time::interval(SWEEP);
        loop {
            let woken: Vec<SessionId> = tokio::select! {
                _ = stop.cancelled() => break,
                id = wake_rx.recv() => match id { Some(id) => vec![id], None => break },
                _ = sweep.tick() => match store.sessions_with_jobs().await {
                    Ok(ids) => ids,
                    Err(e) => { tracing::warn!(error = %e, "dispatcher sweep failed"); Vec::new() }
                },
            };
            for id in woken {
                match running.get(&id) {
                    Some(r) if !r.task.is_finished() => r.wake.notify_one(),
                    _ => {
                        let wake = Arc::new(Notify::new());
                        let (rate, pacing) = match store.find_session(id).await {
                            Ok(Some(s)) => (
                                config.rate.get(&s.engine).copied(),
                                engines.get(s.engine).ok().and_then(|e| e.pacing(id)),
                            ),
                            _ => (None, None),
                        };
                        let rate = rate.unwrap_or(NonZeroU32::MIN);
                        let limiter = match paces.get(&id) {
                            Some(p) if p.matches(rate, pacing) => p.clone(),
                            _ => {
                                let p = Arc::new(Pace::new(rate, pacing));
                                paces.insert(id, p.clone());
                                p
                            }
                        };
                        let task = tokio::spawn(run_session(
                            id,
                            store.clone(),
                            engines.clone(),
                            config.clone(),
                            wake.clone(),
                            limiter,
                            stop.clone(),
                        ));
                        running.insert(id, Running { wake, task });
                    }
                }
            }
            running.retain(|_, r| !r.task.is_finished());
        }
        for (_, r) in running {
            let _ = r.task.await;
        }
    })
}

/// One session's dispatcher: runs while the session is connected and has work.
async fn run_session(
    id: SessionId,
    store: Store,
    engines: Arc<Engines>,
    config: Arc<DispatchConfig>,
    wake: Arc<Notify>,
    pace: Arc<Pace>,
    stop: CancellationToken,
) {
    loop {
        if stop.is_cancelled() {
            return;
        }
        let session = match store.find_session(id).await {
            Ok(Some(s)) if s.status == SessionStatus::Connected => s,
            Ok(_) => return, // not connected: the work waits; connecting wakes us again
            Err(e) => {
                tracing::warn!(session = %id, error = %e, "dispatcher cannot read its session");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Ok(engine) = engines.get(session.engine) else {
            return;
        };
        let jobs = match store.ready_jobs(id, now_millis(), BATCH).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(session = %id, error = %e, "dispatcher cannot read its outbox");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if jobs.is_empty() {
            // Idle until new work, or a retry comes due (the sweep also wakes us).
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    if store.outbox_len(id).await.unwrap_or(1) == 0 { return; }
                }
            }
            continue;
        }
        let messages = match load_messages(&store, &jobs).await {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(session = %id, error = %e, "dispatcher cannot read messages");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut outcomes = Vec::with_capacity(jobs.len());
        let mut flushed = Instant::now();
        // A chat whose job must wait holds back its later jobs (FIFO per chat).
        let mut held: HashSet<String> = HashSet::new();
        for job in jobs {
            let chat = job.chat_jid.to_string();
            if held.contains(&chat) {
                continue;
            }
            if job.action == JobAction::Send {
                if let Err(wait) = pace.take_pair(&chat) {
                    // This recipient's budget is spent: later, without counting an attempt.
                    outcomes.push(JobOutcome::Defer {
                        available_at: now_millis() + wait.as_millis() as i64,
                        job,
                    });
                    held.insert(chat);
                    continue;
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = pace.ready() => {}
                }
            }
            let (outcome, pause) = execute(engine.as_ref(), id, &job, &messages, &config).await;
            if job.action == JobAction::Send {
                pace.sent();
            }
            if matches!(outcome, JobOutcome::Retry { .. }) {
                held.insert(chat);
            }
            outcomes.push(outcome);
            if let Some(pause) = pause {
                // A limit or a failure of the whole number: nothing more of this session goes
                // out until it passes (the session may also have been disconnected).
                pace.pause(pause);
                break;
            }
            if stop.is_cancelled() {
                break;
            }
            // Record often: a slow send rate must not keep outcomes (and their events)
            // waiting for a whole batch, nor leave many sends to repeat after a crash.
            if outcomes.len() >= FLUSH_JOBS || flushed.elapsed() >= FLUSH_AFTER {
                if !record(&store, id, &mut outcomes).await {
                    break;
                }
                flushed = Instant::now();
            }
        }
        record(&store, id, &mut outcomes).await;
    }
}

/// Records outcomes; on failure the jobs stay in the outbox and go out again.
async fn record(store: &Store, id: SessionId, outcomes: &mut Vec<JobOutcome>) -> bool {
    if outcomes.is_empty() {
        return true;
    }
    match store.record_outcomes(outcomes).await {
        Ok(()) => {
            outcomes.clear();
            true
        }
        Err(e) => {
            tracing::error!(session = %id, error = %e, "could not record dispatch outcomes");
            outcomes.clear();
            tokio::time::sleep(Duration::from_secs(1)).await;
            false
        }
    }
}

/// The messages a batch needs: those its jobs are about, the ones they quote, and those a
/// read mark names.
async fn load_messages(
    store: &Store,
    jobs: &[OutboxJob],
) -> Result<HashMap<MessageId, MessageRow>, wharf_store::StoreError> {
    let mut ids: Vec<MessageId> = jobs.iter().filter_map(|j| j.message_id).collect();
    for job in jobs.iter().filter(|j| j.action == JobAction::MarkRead) {
        ids.extend(marked_ids(job));
    }
    let mut messages: HashMap<_, _> = store
        .messages_by_ids(&ids)
        .await?
        .into_iter()
        .map(|m| (m.id, m))
        .collect();
    let quoted: Vec<MessageId> = messages
        .values()
        .filter_map(|m| m.quoted_message_id)
        .filter(|q| !messages.contains_key(q))
        .collect();
    if !quoted.is_empty() {
        messages.extend(
            store
                .messages_by_ids(&quoted)
                .await?
                .into_iter()
                .map(|m| (m.id, m)),
        );
    }
    Ok(messages)
}

fn marked_ids(job: &OutboxJob) -> Vec<MessageId> {
    job.payload["message_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// Carries out one job; also returns how long the whole session must pause, when the engine
/// said so.
async fn execute(
    engine: &dyn wharf_core::Engine,
    session: SessionId,
    job: &OutboxJob,
    messages: &HashMap<MessageId, MessageRow>,
    config: &DispatchConfig,
) -> (JobOutcome, Option<Duration>) {
    let now = now_millis();
    let message = job.message_id.and_then(|id| messages.get(&id));
    let result = match (job.action, message) {
        (JobAction::Send, Some(m)) => {
            let outbound = Outbound {
                message_id: m.id,
                provider_id: m.provider_msg_id.clone(),
                to: m.chat_jid.clone(),
                content: m.content.clone(),
                quoted_provider_id: m
                    .quoted_message_id
                    .and_then(|q| messages.get(&q))
                    .and_then(|q| q.provider_msg_id.clone()),
                attempt: u32::try_from(job.attempts).unwrap_or(u32::MAX),
            };
            engine.send(session, &outbound).await.map(Some)
        }
        (JobAction::Edit | JobAction::Revoke, Some(m)) => {
            let provider_id = m.provider_msg_id.clone().unwrap_or_default();
            let action = if job.action == JobAction::Edit {
                MessageAction::Edit {
                    chat: m.chat_jid.clone(),
                    provider_id,
                    text: job.payload["text"].as_str().unwrap_or_default().to_owned(),
                }
            } else {
                MessageAction::Revoke {
                    chat: m.chat_jid.clone(),
                    provider_id,
                }
            };
            engine.act(session, &action).await.map(|()| None)
        }
        (JobAction::MarkRead, _) => {
            let provider_ids = marked_ids(job)
                .iter()
                .filter_map(|id| messages.get(id)?.provider_msg_id.clone())
                .collect();
            let action = MessageAction::MarkRead {
                chat: job.chat_jid.clone(),
                provider_ids,
            };
            engine.act(session, &action).await.map(|()| None)
        }
        (_, None) => Err(EngineError::Permanent(
            "the message no longer exists".into(),
        )),
    };
    // A retry waits the usual backoff, or longer when the engine asks (Retry-After).
    let (hint, session_wide) = match &result {
        Err(EngineError::RetryLater {
            after_ms,
            session_wide,
            ..
        }) => (after_ms.map(Duration::from_millis), *session_wide),
        _ => (None, false),
    };
    let outcome = match result {
        Ok(Some(provider_id)) => JobOutcome::Sent {
            job: job.clone(),
            message: message.cloned().map(Box::new),
            provider_id,
            at: now,
        },
        Ok(None) => JobOutcome::Done {
            job: job.clone(),
            at: now,
        },
        Err(e) if e.is_retryable() && (job.attempts as u32) + 1 < config.max_attempts => {
            let delay = backoff(config, job.attempts as u32).max(hint.unwrap_or_default());
            let reason = match e {
                EngineError::Transient(r) | EngineError::RetryLater { reason: r, .. } => r,
                other => other.to_string(),
            };
            JobOutcome::Retry {
                job: job.clone(),
                available_at: now + delay.as_millis() as i64,
                error: reason,
            }
        }
        Err(EngineError::Transient(reason) | EngineError::RetryLater { reason, .. }) => {
            JobOutcome::Failed {
                job: job.clone(),
                reason: format!("gave up after {} attempts: {reason}", job.attempts + 1),
                at: now,
            }
        }
        Err(e) => JobOutcome::Failed {
            job: job.clone(),
            reason: e.to_string(),
            at: now,
        },
    };
    let pause = session_wide.then(|| hint.unwrap_or_else(|| backoff(config, job.attempts as u32)));
    (outcome, pause)
}

/// Exponential backoff with full jitter in its upper half: `base * 2^attempt`, capped.
fn backoff(config: &DispatchConfig, attempt: u32) -> Duration {
    let exp = config
        .base_backoff
        .saturating_mul(1u32 << attempt.min(16))
        .min(config.max_backoff);
    let half = exp / 2;
    half + Duration::from_millis(rand::rng().random_range(0..=half.as_millis().max(1) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let config = DispatchConfig {
            rate: HashMap::new(),
            max_attempts: 5,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        };
        for _ in 0..100 {
            let first = backoff(&config, 0);
            assert!(
                (50..=101).contains(&(first.as_millis() as u64)),
                "{first:?}"
            );
            let third = backoff(&config, 2);
            assert!(
                (200..=401).contains(&(third.as_millis() as u64)),
                "{third:?}"
            );
            assert!(backoff(&config, 20) <= Duration::from_millis(2001));
        }
    }
}
