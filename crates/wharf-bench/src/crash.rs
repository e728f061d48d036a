//! The crash test: queue messages, kill the server with SIGKILL while it dispatches them,
//! start it again on the same database, and check that every message reached a terminal
//! status exactly once and every event reached the webhook receiver.

use std::{
    collections::HashMap,
    path::Path,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{messaging::Api, receiver::Receiver, server::Spec};

pub async fn run(bin: &Path, db: Option<&str>, messages: usize) -> anyhow::Result<()> {
    // Dispatch slowly enough (about 10 s in all) that the kill lands in the middle of it.
    let rate = (messages / 10).max(20);
    let spec = Spec::new(bin, db)?
        .args(&["--rate-limit-per-minute", "1000000000"])
        .env("emulator_delivered_after_ms", -1)
        .env("emulator_read_after_ms", -1)
        .env("send_rate_emulator", rate)
        .env("webhook_retry_delays_ms", "[200, 500, 1000, 2000, 5000]");
    let receiver = Receiver::start().await?;
    let server = spec.start().await?;
    let api = Api::new(&server)?;
    api.subscribe(&receiver).await?;
    let session = api.session(false).await?;
    println!("crash test: {messages} messages, dispatch at {rate}/s, SIGKILL mid-dispatch");
    let ids = api.send_many(&session, messages, 32).await?;
    api.connect(&session).await?;
    // Wait until some but not all are out, then kill.
    let mut tracker = SentTracker::default();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let sent = tracker.update(&api).await?;
        if sent >= messages / 4 {
            println!("  killing the server with {sent} of {messages} sent");
            anyhow::ensure!(
                sent < messages,
                "everything went out before the kill; use more messages"
            );
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "dispatch did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill9()?;

    let server = spec.start().await?;
    let api = api.with_server(&server);
    let events = settle(&mut tracker, &api, &ids, &receiver, "after the restart").await?;
    let duplicates = receiver.total() as usize - receiver.distinct();
    server.stop().await?;
    println!(
        "  ok: {messages} messages sent exactly once; {} events all delivered ({duplicates} redelivered after the crash)",
        events.len()
    );
    println!("1 passed, 0 failed");
    Ok(())
}

/// Waits until every accepted message (`ids`) is reported sent, checks each has exactly one
/// `message.sent` event, and waits until every event reached `receiver`; returns the events.
pub(crate) async fn settle(
    tracker: &mut SentTracker,
    api: &Api,
    ids: &[String],
    receiver: &Receiver,
    after: &str,
) -> anyhow::Result<Vec<Value>> {
    let messages = ids.len();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let sent = tracker.update(api).await?;
        if sent == messages {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {sent} of {messages} sent {after}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tracker.update(api).await?;
    let events = std::mem::take(&mut tracker.events);
    let mut sent_events: HashMap<String, u32> = HashMap::new();
    for e in events.iter().filter(|e| e["type"] == "message.sent") {
        *sent_events
            .entry(e["message_id"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    for id in ids {
        let n = sent_events.get(id).copied().unwrap_or(0);
        anyhow::ensure!(n == 1, "{id} has {n} message.sent events");
    }
    // Every event reaches the receiver (at least once).
    let deadline = Instant::now() + Duration::from_secs(120);
    let missing = loop {
        let seen = receiver
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_event
            .clone();
        let missing = events
            .iter()
            .filter_map(|e| e["id"].as_str())
            .filter(|id| !seen.contains_key(*id))
            .count();
        if missing == 0 || Instant::now() > deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    anyhow::ensure!(
        missing == 0,
        "{missing} of {} events never reached the webhook receiver",
        events.len()
    );
    Ok(events)
}

/// Follows the event log: keeps every event read and counts the messages reported sent.
#[derive(Default)]
pub(crate) struct SentTracker {
    after: i64,
    pub(crate) events: Vec<Value>,
    sent: std::collections::HashSet<String>,
}

impl SentTracker {
    pub(crate) async fn update(&mut self, api: &Api) -> anyhow::Result<usize> {
        loop {
            let page = api
                .call(
                    reqwest::Method::GET,
                    &format!("/v1/events?after={}&limit=100", self.after),
                    None,
                    200,
                )
                .await?;
            let data = page["data"].as_array().cloned().unwrap_or_default();
            for e in data.iter().filter(|e| e["type"] == "message.sent") {
                self.sent
                    .insert(e["message_id"].as_str().unwrap_or_default().to_owned());
            }
            let next = page["next_cursor"].as_i64().unwrap_or(self.after);
            let done = data.is_empty() || next == self.after;
            self.events.extend(data);
            if done {
                return Ok(self.sent.len());
            }
            self.after = next;
        }
    }
}
