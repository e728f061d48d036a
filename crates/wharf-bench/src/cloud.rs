//! `dispatch --engine cloud`: queued messages drained through the Cloud API engine to a fake
//! Graph server running in this process on loopback, several numbers at once, each capped at
//! its own throughput. The fake's own cost (time inside its handlers) is reported beside the
//! figures, since it shares the machine with the server.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use base64::Engine as _;
use serde_json::json;
use wharf_fakegraph::{FakeGraph, FakeNumber};

use crate::{
    load::{Load, ms},
    messaging::Api,
    server::Spec,
};

/// The WhatsApp Business Account every bench number belongs to.
pub const WABA: &str = "200000000000001";
/// Recipients per number (each gets messages / numbers / this many: within the pair burst).
const RECIPIENTS: usize = 1000;

pub fn number(i: usize) -> FakeNumber {
    FakeNumber::new(
        &format!("{}", 100_000_000_000_001u64 + i as u64),
        WABA,
        &format!("1555010{i:04}"),
    )
}

/// The template every message is (templates may go to anyone, without a 24-hour window).
async fn approve_template(graph: &FakeGraph, n: &FakeNumber) -> anyhow::Result<()> {
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/v23.0/{WABA}/message_templates",
            graph.base_url()
        ))
        .bearer_auth(&n.access_token)
        .json(
            &json!({"name": "bench", "language": "en_US", "category": "UTILITY",
                      "components": [{"type": "BODY", "text": "Your code is {{1}}"}]}),
        )
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "creating the template: {}",
        resp.status()
    );
    graph.set_template_status(WABA, "bench", "APPROVED");
    Ok(())
}

pub async fn dispatch(
    bin: &Path,
    db: Option<&str>,
    messages: usize,
    numbers: usize,
    rate: u32,
) -> anyhow::Result<()> {
    anyhow::ensure!(numbers >= 1, "--numbers must be at least 1");
    let graph = FakeGraph::start().await;
    for i in 0..numbers {
        let mut n = number(i);
        // The fake enforces the limit too: a send over it would be answered 130429.
        n.throughput_cap = Some(rate);
        graph.add_number(n);
    }
    approve_template(&graph, &number(0)).await?;
    let key: [u8; 32] = rand::random();
    let spec = Spec::new(bin, db)?
        .args(&["--rate-limit-per-minute", "1000000000"])
        .env("send_rate_cloud", rate)
        .env("cloud_graph_base_url", graph.base_url())
        .env(
            "secret_key",
            base64::engine::general_purpose::STANDARD.encode(key),
        );
    let server = spec.start().await?;
    let api = Api::new(&server)?;
    graph.set_webhook_url(&api.url("/webhooks/meta"));
    let mut sessions = Vec::with_capacity(numbers);
    for i in 0..numbers {
        let n = number(i);
        let created = api
            .call(
                reqwest::Method::POST,
                "/v1/whatsapp-sessions",
                Some(json!({"engine": "cloud", "cloud": {
                    "phone_number_id": n.phone_number_id, "waba_id": WABA,
                    "access_token": n.access_token, "app_secret": n.app_secret,
                    "verify_token": format!("bench-{i}"),
                    "throughput_per_second": rate,
                }})),
                201,
            )
            .await?;
        sessions.push(
            created["session"]["session_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    // Queued while the sessions are disconnected: the whole backlog waits for the drain.
    let queued = {
        let sessions = sessions.clone();
        Load::post(
            &api.client,
            api.url("/api/send-message"),
            api.pat.clone(),
            202,
            move |i| {
                let i = i as usize;
                let s = i % sessions.len();
                let to = format!("+15559{s:02}{:04}", (i / sessions.len()) % RECIPIENTS);
                json!({"session_id": sessions[s], "to": to, "template": {"name": "bench", "language": "en_US",
                       "components": [{"type": "body", "parameters": [{"type": "text", "text": format!("{i}")}]}]}})
            },
        )
        .run_bounded(64, Duration::from_secs(3600), messages as u64)
        .await?
    };
    anyhow::ensure!(queued.errors == 0, "{} sends were refused", queued.errors);
    println!(
        "scenario: dispatch --engine cloud ({messages} template messages over {numbers} numbers capped at {rate} msg/s each, fake Graph on loopback; queued in {:.1} s)",
        queued.elapsed.as_secs_f64()
    );
    graph.clear_records();
    let busy_before = graph.handler_busy_time();
    let started = Instant::now();
    let mut connects = tokio::task::JoinSet::new();
    for s in &sessions {
        let (client, url, pat) = (
            api.client.clone(),
            api.url(&format!("/v1/whatsapp-sessions/{s}/connect")),
            api.pat.clone(),
        );
        connects.spawn(async move { client.post(url).bearer_auth(pat).send().await });
    }
    while let Some(done) = connects.join_next().await {
        let resp = done??;
        anyhow::ensure!(resp.status() == 200, "connect: {}", resp.status());
    }
    let deadline = started + Duration::from_secs(1800);
    let total = |graph: &FakeGraph| -> usize {
        (0..numbers)
            .map(|i| graph.send_count(&number(i).phone_number_id))
            .sum()
    };
    while total(&graph) < messages {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {messages} sends reached the fake",
            total(&graph)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let at_graph = started.elapsed();
    // Wharf records outcomes in batches: wait until each session's newest message is sent.
    for s in &sessions {
        loop {
            let page = api
                .call(
                    reqwest::Method::GET,
                    &format!("/api/whatsapp-sessions/{s}/message-logs?limit=1"),
                    None,
                    200,
                )
                .await?;
            if page["data"][0]["status"] == "sent" {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "messages of {s} never recorded as sent"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let recorded = started.elapsed();
    let busy = graph.handler_busy_time() - busy_before;
    let requests = graph.requests().len();
    let peak = (0..numbers)
        .map(|i| graph.max_sends_in_window(&number(i).phone_number_id, Duration::from_secs(1)))
        .max()
        .unwrap_or(0);
    println!(
        "  accepted by Graph in {:.2} s: {:.0} messages/s aggregate ({:.0} per number)",
        at_graph.as_secs_f64(),
        messages as f64 / at_graph.as_secs_f64(),
        messages as f64 / at_graph.as_secs_f64() / numbers as f64,
    );
    println!(
        "  recorded as sent by Wharf after {:.2} s: {:.0} messages/s",
        recorded.as_secs_f64(),
        messages as f64 / recorded.as_secs_f64()
    );
    println!(
        "  busiest number: {peak} sends in its busiest second (cap {rate}); {requests} Graph requests for {messages} messages, {} refused as malformed",
        graph.rejections().len()
    );
    println!(
        "  the fake's own cost: {:.2} s inside its handlers ({:.1} µs a request, {:.0}% of one core over the drain)",
        busy.as_secs_f64(),
        ms(busy) * 1000.0 / requests.max(1) as f64,
        busy.as_secs_f64() / at_graph.as_secs_f64() * 100.0
    );
    server.stop().await
}
