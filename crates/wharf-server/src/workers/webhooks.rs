//! Webhook delivery: a fan-out loop turns new events into delivery rows for each endpoint,
//! and a deliverer posts them, signed with the Standard Webhooks scheme, retrying failures on
//! a schedule that spans more than a day. Everything is in the database, so a restart goes on
//! where it stopped. Each endpoint has its own in-flight cap, so a slow or dead endpoint
//! never holds up the others.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use wharf_core::{
    WebhookId,
    time::{Clock, now_millis},
};
use wharf_store::{AttemptResult, DeliveryJob, Store};

use crate::{
    outbound::{Outbound, SendError},
    secrets::SecretBox,
    services::{events::envelope, webhooks::open_secret},
};

/// How deliveries are made.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Delays before the 2nd, 3rd, … attempt; the delivery fails after the last.
    pub retry_delays: Vec<Duration>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Requests in flight, in all.
    pub concurrency: usize,
    /// Requests in flight to one endpoint.
    pub per_endpoint: usize,
    /// An endpoint failing for this long is disabled (zero: never).
    pub disable_after: Duration,
    /// The clock judging how long an endpoint has been failing.
    pub clock: wharf_core::time::Clock,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        // The Standard Webhooks schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (27.6 h).
        let secs = [5, 300, 1800, 7200, 18000, 36000, 36000];
        Self {
            retry_delays: secs.iter().map(|s| Duration::from_secs(*s)).collect(),
            timeout: Duration::from_secs(10),
            concurrency: 256,
            per_endpoint: 64,
            disable_after: Duration::from_secs(5 * 86_400),
            clock: wharf_core::time::Clock::default(),
        }
    }
}

/// The signature headers for a body: `(webhook-id, webhook-timestamp, webhook-signature)`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let key = secret
        .strip_prefix("whsec_")
        .and_then(|k| STANDARD.decode(k).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec());
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// What the deliverer sends with: the outbound client (its policy decides which addresses
/// may be reached) and the key opening signing secrets.
pub struct Senders {
    pub outbound: Arc<Outbound>,
    pub secrets: Option<Arc<SecretBox>>,
}

/// Starts the fan-out loop and the deliverer.
pub fn spawn(
    store: Store,
    config: WebhookConfig,
    senders: Senders,
    stop: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let wake = Arc::new(tokio::sync::Notify::new());
    vec![
        tokio::spawn(fan_out(store.clone(), wake.clone(), stop.clone())),
        tokio::spawn(deliver(store, config, senders, wake, stop)),
    ]
}

async fn fan_out(store: Store, wake: Arc<tokio::sync::Notify>, stop: CancellationToken) {
    let mut appended = store.subscribe_events();
    let mut failures = super::Failures::new("the webhook fan-out");
    // The stop is checked on every round: a long backlog must not hold up a shutdown.
    while !stop.is_cancelled() {
        match failures.note(store.fan_out(1000).await) {
            Ok(0) | Err(_) => {}
            Ok(_) => {
                wake.notify_one();
                continue;
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = appended.changed() => {}
            // Events written by other instances, and endpoints re-enabled.
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn deliver(
    store: Store,
    config: WebhookConfig,
    senders: Senders,
    wake: Arc<tokio::sync::Notify>,
    stop: CancellationToken,
) {
    let senders = Arc::new(senders);
    let disable_after = (!config.disable_after.is_zero())
        .then(|| i64::try_from(config.disable_after.as_millis()).unwrap_or(i64::MAX));
    let (tx, mut rx) = mpsc::unbounded_channel::<(WebhookId, AttemptResult)>();
    let mut in_flight: HashMap<WebhookId, usize> = HashMap::new();
    let mut total = 0usize;
    let mut failures = super::Failures::new("claiming webhook deliveries");
    loop {
        let room = config.concurrency.saturating_sub(total);
        let mut claimed = 0;
        if room > 0 && !stop.is_cancelled() {
            let busy: Vec<WebhookId> = in_flight
                .iter()
                .filter(|(_, n)| **n >= config.per_endpoint)
                .map(|(w, _)| *w)
                .collect();
            // A claim outlives one request by a margin; after a crash, the deliveries come
            // back when it expires.
            let lease_ms = config.timeout.as_millis() as i64 + 5_000;
            if let Ok(jobs) = failures.note(
                store
                    .claim_deliveries(
                        config.clock.now_millis(),
                        room.min(200) as i64,
                        config.per_endpoint as i64,
                        lease_ms,
                        &busy,
                    )
                    .await,
            ) {
                claimed = jobs.len();
                for job in jobs {
                    *in_flight.entry(job.delivery.webhook_id).or_default() += 1;
                    total += 1;
                    let (senders, tx, delays, timeout, clock) = (
                        senders.clone(),
                        tx.clone(),
                        config.retry_delays.clone(),
                        config.timeout,
                        config.clock.clone(),
                    );
                    tokio::spawn(async move {
                        let webhook = job.delivery.webhook_id;
                        let result = attempt(&senders, &job, &delays, timeout, &clock).await;
                        let _ = tx.send((webhook, result));
                    });
                }
            }
        }
        if stop.is_cancelled() && total == 0 {
            return;
        }
        // Wait for a result, new work, or the next due retry.
        let first = tokio::select! {
            r = rx.recv() => r,
            _ = wake.notified(), if claimed == 0 => None,
            _ = tokio::time::sleep(Duration::from_millis(if claimed == 0 { 250 } else { 0 })) => None,
            _ = stop.cancelled(), if total == 0 => return,
        };
        let mut results = Vec::new();
        if let Some(r) = first {
            results.push(r);
        }
        while let Ok(r) = rx.try_recv() {
            results.push(r);
        }
        if results.is_empty() {
            continue;
        }
        for (webhook, _) in &results {
            total -= 1;
            if let Some(n) = in_flight.get_mut(webhook) {
                *n -= 1;
                if *n == 0 {
                    in_flight.remove(webhook);
                }
            }
        }
        let attempts: Vec<AttemptResult> = results.into_iter().map(|(_, r)| r).collect();
        match store
            .record_attempts(&attempts, config.clock.now_millis(), disable_after)
            .await
        {
            Ok(disabled) => {
                for webhook in disabled {
                    tracing::warn!(webhook_id = %webhook, "webhook endpoint disabled: its deliveries have failed for too long");
                }
            }
            // The leases expire and the deliveries are attempted again: at least once.
            Err(e) => tracing::error!(error = %e, "could not record webhook attempts"),
        }
    }
}

/// One attempt: POST the envelope, signed; a 2xx within the timeout is a success. No request
/// is made when the outbound policy refuses the address, nor when the secret cannot be
/// opened (an unsigned delivery would be worse than none).
async fn attempt(
    senders: &Senders,
    job: &DeliveryJob,
    delays: &[Duration],
    timeout: Duration,
    clock: &Clock,
) -> AttemptResult {
    let started = Instant::now();
    let attempted_at = clock.now_millis();
    let (status_code, error) = match post(senders, job, timeout).await {
        Ok(r) if r.status().is_success() => (Some(r.status().as_u16()), None),
        Ok(r) => (
            Some(r.status().as_u16()),
            Some(format!("the endpoint answered {}", r.status())),
        ),
        Err(error) => (None, Some(error)),
    };
    let retry_at = match error {
        None => None,
        Some(_) => delays
            .get(job.delivery.attempts as usize)
            .map(|d| clock.now_millis() + d.as_millis() as i64),
    };
    let outcome = match (&error, retry_at) {
        (None, _) => "delivered",
        (Some(_), Some(_)) => "retry",
        (Some(_), None) => "failed",
    };
    crate::metrics::global().webhook_attempt(outcome, started.elapsed());
    AttemptResult {
        delivery_id: job.delivery.id,
        webhook_id: job.delivery.webhook_id,
        attempted_at,
        status_code,
        error,
        duration_ms: started.elapsed().as_millis() as i64,
        retry_at,
    }
}

async fn post(
    senders: &Senders,
    job: &DeliveryJob,
    timeout: Duration,
) -> Result<reqwest::Response, String> {
    let secret = open_secret(
        senders.secrets.as_deref(),
        job.delivery.webhook_id,
        &job.signing_secret,
    )
    .map_err(|e| format!("not sent: {e}; rotate the endpoint's secret"))?;
    let body = envelope(&job.event).to_string();
    let timestamp = now_millis() / 1000;
    let signature = sign(&secret, &job.event.id, timestamp, &body);
    let request = senders
        .outbound
        .post(&job.target_url)
        .map_err(describe)?
        .timeout(timeout)
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("Wharf-Webhooks/", env!("CARGO_PKG_VERSION")),
        )
        .header("webhook-id", &job.event.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body);
    senders.outbound.send(request).await.map_err(describe)
}

/// The attempt's error as the delivery log shows it. A refusal says nothing of the address.
fn describe(e: SendError) -> String {
    match e {
        SendError::Refused => "not sent: refused by the outbound policy".to_owned(),
        SendError::Timeout => "timed out".to_owned(),
        SendError::Failed(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::sign;

    #[test]
    fn signs_like_standard_webhooks() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        let sig = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
