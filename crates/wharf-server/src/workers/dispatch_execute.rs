//! One job carried out: the engine call and the outcome it makes, the outcome's log line and
//! metrics, and the retry backoff.

use std::{collections::HashMap, time::Duration};

use rand::Rng;
use wharf_core::{
    EngineError, EngineKind, Jid, MessageId, SessionId,
    message::{MessageAction, Outbound},
};
use wharf_store::{JobAction, JobOutcome, MessageRow, OutboxJob};

use super::{DispatchConfig, marked_ids};

/// Carries out one job; also returns how long the whole session must pause, when the engine
/// said so.
pub(super) async fn execute(
    engine: &dyn wharf_core::Engine,
    session: SessionId,
    job: &OutboxJob,
    messages: &HashMap<MessageId, MessageRow>,
    config: &DispatchConfig,
) -> (JobOutcome, Option<Duration>) {
    let now = config.clock.now_millis();
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
            // With who wrote each (group read receipts on WhatsApp Web name the participant).
            let (provider_ids, senders) = marked_ids(job)
                .iter()
                .filter_map(|id| {
                    let m = messages.get(id)?;
                    let sender = m.sender_jid.as_deref().and_then(|s| Jid::parse(s).ok());
                    Some((m.provider_msg_id.clone()?, sender))
                })
                .unzip();
            let action = MessageAction::MarkRead {
                chat: job.chat_jid.clone(),
                provider_ids,
                senders,
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
    let pause = session_wide.then(|| hint.unwrap_or_else(|| backoff(config, job.attempts as u32)));
    let outcome = match result {
        // Throttled (a limit of the whole number): waiting, not failing, so no attempt counts.
        Err(EngineError::RetryLater {
            session_wide: true, ..
        }) => JobOutcome::Defer {
            job: job.clone(),
            available_at: now + pause.unwrap_or_default().as_millis() as i64,
        },
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
    (outcome, pause)
}

/// Logs a job's outcome with its session and message: a retry at INFO, a message that
/// failed for good at WARN, the rest at DEBUG.
pub(super) fn log_outcome(outcome: &JobOutcome) {
    let job = outcome.job();
    let message_id = job.message_id.as_ref().map(tracing::field::display);
    let action = job.action.as_str();
    match outcome {
        JobOutcome::Retry {
            error,
            available_at,
            ..
        } => tracing::info!(
            account_id = %job.account_id,
            session_id = %job.session_id,
            message_id,
            action,
            attempt = job.attempts + 1,
            error = %error,
            retry_at = %wharf_core::time::rfc3339(*available_at),
            "engine call failed; retrying later"
        ),
        JobOutcome::Failed { reason, .. } => tracing::warn!(
            account_id = %job.account_id,
            session_id = %job.session_id,
            message_id,
            action,
            attempt = job.attempts + 1,
            reason = %reason,
            "gave up on a job"
        ),
        JobOutcome::Sent { .. } => {
            tracing::debug!(session_id = %job.session_id, message_id, "message sent")
        }
        JobOutcome::Done { .. } => {
            tracing::debug!(session_id = %job.session_id, message_id, action, "job done")
        }
        JobOutcome::Defer { available_at, .. } => tracing::debug!(
            session_id = %job.session_id,
            message_id,
            action,
            until = %wharf_core::time::rfc3339(*available_at),
            "job deferred by pacing"
        ),
    }
}

/// Counts a send's outcome in the process's metrics.
pub(super) fn count(engine: EngineKind, outcome: &JobOutcome) {
    let metrics = crate::metrics::global();
    match outcome {
        JobOutcome::Sent {
            message: Some(m),
            at,
            ..
        } => metrics.message_sent(engine.as_str(), at - m.accepted_at),
        JobOutcome::Failed { job, .. } if job.action == JobAction::Send => {
            metrics.message_failed(engine.as_str())
        }
        _ => {}
    }
}

/// Exponential backoff with full jitter in its upper half: `base * 2^attempt`, capped.
pub(super) fn backoff(config: &DispatchConfig, attempt: u32) -> Duration {
    let exp = config
        .base_backoff
        .saturating_mul(1u32 << attempt.min(16))
        .min(config.max_backoff);
    let half = exp / 2;
    half + Duration::from_millis(rand::rng().random_range(0..=half.as_millis().max(1) as u64))
}
