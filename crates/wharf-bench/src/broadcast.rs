//! `broadcast`: a Zernio broadcast of N recipients on an emulator session. Measures adding
//! recipients (1,000 per call), a cancel's latency (on a small paced broadcast), then sends
//! the big one, kills the server with SIGKILL at half way, starts it again on the same
//! database and checks that exactly N messages were sent, each once, while sampling the
//! server's memory every second.

use std::{
    collections::HashSet,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    messaging::Api,
    server::{Server, Spec, mib},
};

const B: &str = "/v1/whatsapp/broadcasts";

fn recipient(i: usize) -> Value {
    json!({"phone": format!("+1650{i:07}"), "variables": {"1": format!("R{i}")}})
}

/// Resident memory samples of one phase.
#[derive(Default)]
struct Rss(Vec<u64>);

impl Rss {
    fn sample(&mut self, server: &Server) {
        if let Ok(kib) = server.rss_kib() {
            self.0.push(kib);
        }
    }
    fn describe(&self) -> String {
        let (Some(min), Some(max)) = (self.0.iter().min(), self.0.iter().max()) else {
            return "no samples".into();
        };
        format!(
            "RSS min {:.1} MiB, max {:.1} MiB over {} samples (first {:.1}, last {:.1})",
            mib(*min),
            mib(*max),
            self.0.len(),
            mib(self.0[0]),
            mib(*self.0.last().unwrap_or(min))
        )
    }
}

async fn draft(api: &Api, session: &str, name: &str) -> anyhow::Result<String> {
    let b = api
        .call(
            Method::POST,
            B,
            Some(json!({"accountId": session, "name": name,
                "template": {"name": "bench", "language": "en_US"}})),
            200,
        )
        .await?;
    Ok(b["broadcast"]["id"].as_str().unwrap_or_default().to_owned())
}

async fn add(api: &Api, id: &str, range: std::ops::Range<usize>) -> anyhow::Result<i64> {
    let rows: Vec<Value> = range.map(recipient).collect();
    let answer = api
        .call(
            Method::PATCH,
            &format!("{B}/{id}/recipients"),
            Some(json!({"recipients": rows})),
            200,
        )
        .await?;
    Ok(answer["added"].as_i64().unwrap_or_default())
}

async fn broadcast(api: &Api, id: &str) -> anyhow::Result<Value> {
    Ok(api
        .call(Method::GET, &format!("{B}/{id}"), None, 200)
        .await?["broadcast"]
        .clone())
}

/// Runs the scenario. `rate`: the emulator's pace, messages per second (0: unlimited).
pub async fn run(bin: &Path, db: Option<&str>, n: usize, rate: u32) -> anyhow::Result<()> {
    let pace = if rate == 0 { 1_000_000 } else { rate };
    let spec = Spec::new(bin, db)?
        .args(&["--rate-limit-per-minute", "1000000000"])
        .env("emulator_delivered_after_ms", -1)
        .env("emulator_read_after_ms", -1)
        .env("broadcast_send_wait_ms", 0)
        .env("send_rate_emulator", pace);
    let server = spec.start().await?;
    let api = Api::new(&server)?;
    let session = api.session(true).await?;
    api.call(
        Method::POST,
        "/v1/whatsapp/templates",
        Some(
            json!({"accountId": session, "name": "bench", "category": "MARKETING",
            "language": "en_US", "components": [{"type": "BODY", "text": "Hi {{1}}!"}]}),
        ),
        200,
    )
    .await?;
    println!(
        "scenario: broadcast ({n} recipients on an emulator session, pace {})",
        if rate == 0 {
            "unlimited".to_owned()
        } else {
            format!("{rate}/s")
        }
    );

    // A cancel while sending: the call's latency, and whether sending stopped.
    let small = draft(&api, &session, "cancel").await?;
    let small_n = n.clamp(1000, 20_000);
    for i in (0..small_n).step_by(1000) {
        add(&api, &small, i..(i + 1000).min(small_n)).await?;
    }
    api.call(Method::POST, &format!("{B}/{small}/send"), None, 200)
        .await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while broadcast(&api, &small).await?["sentCount"].as_i64() < Some(1) {
        anyhow::ensure!(Instant::now() < deadline, "the small broadcast never sent");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let t = Instant::now();
    let resp = api
        .client
        .post(api.url(&format!("{B}/{small}/cancel")))
        .bearer_auth(&api.pat)
        .send()
        .await?;
    let latency = t.elapsed();
    let status = resp.status().as_u16();
    let cancelled: Value = resp.json().await?;
    if status == 200 {
        let at_cancel = cancelled["broadcast"]["sentCount"].as_i64().unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = broadcast(&api, &small).await?;
        let later = after["sentCount"].as_i64().unwrap_or(0) - at_cancel;
        println!(
            "  cancel of {small_n} recipients: answered in {:.1} ms with {at_cancel} sent; {later} sent after it; status {}",
            latency.as_secs_f64() * 1000.0,
            after["status"]
        );
        anyhow::ensure!(later == 0, "{later} messages went out after the cancel");
    } else {
        println!(
            "  cancel: the {small_n} recipients were all sent before the cancel ({cancelled})"
        );
    }

    // Adding recipients: 4 clients, 1,000 per call.
    let id = draft(&api, &session, "big").await?;
    let mut rss = Rss::default();
    rss.sample(&server);
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let calls = n.div_ceil(1000);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (api, id, next) = (api.clone(), id.clone(), next.clone());
        tasks.spawn(async move {
            let mut added = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= calls {
                    return Ok::<i64, anyhow::Error>(added);
                }
                added += add(&api, &id, i * 1000..((i + 1) * 1000).min(n)).await?;
            }
        });
    }
    let mut added = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while !tasks.is_empty() {
        tokio::select! {
            done = tasks.join_next() => {
                if let Some(done) = done {
                    added += done??;
                }
            }
            _ = tick.tick() => rss.sample(&server),
        }
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(added == n as i64, "{added} of {n} recipients added");
    println!(
        "  added {n} recipients in {:.2} s: {:.0} recipients/s; {}",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        rss.describe()
    );

    // Send; SIGKILL at half way; restart; to the end.
    let mut rss = Rss::default();
    let started = Instant::now();
    api.call(Method::POST, &format!("{B}/{id}/send"), None, 200)
        .await?;
    let deadline = Instant::now() + Duration::from_secs(3600);
    let sent_before = loop {
        rss.sample(&server);
        let sent = broadcast(&api, &id).await?["sentCount"]
            .as_i64()
            .unwrap_or(0);
        if sent as usize >= n / 2 {
            break sent;
        }
        anyhow::ensure!(Instant::now() < deadline, "only {sent} sent in an hour");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let first_half = started.elapsed();
    server.kill9()?;
    println!(
        "  killed with SIGKILL at {sent_before} sent ({:.0} messages/s so far); {}",
        sent_before as f64 / first_half.as_secs_f64(),
        rss.describe()
    );
    let server = spec.start().await?;
    let api = api.with_server(&server);
    let mut rss = Rss::default();
    let restarted = Instant::now();
    let done = loop {
        rss.sample(&server);
        let b = broadcast(&api, &id).await?;
        if b["status"] != "sending" {
            break b;
        }
        anyhow::ensure!(Instant::now() < deadline, "not done in an hour: {b}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let second_half = restarted.elapsed();
    let sent = done["sentCount"].as_i64().unwrap_or(0);
    println!(
        "  after the restart: {} with {sent} sent, {} failed in {:.1} s ({:.0} messages/s); {}",
        done["status"],
        done["failedCount"],
        second_half.as_secs_f64(),
        (sent - sent_before) as f64 / second_half.as_secs_f64(),
        rss.describe()
    );
    // Exactly one message.sent event per message, n messages in all (the big broadcast's and
    // the small one's).
    let mut after = 0;
    let mut sent_ids = HashSet::new();
    let mut events = 0usize;
    loop {
        let page = api
            .call(
                Method::GET,
                &format!("/v1/events?after={after}&limit=100"),
                None,
                200,
            )
            .await?;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        for e in data.iter().filter(|e| e["type"] == "message.sent") {
            events += 1;
            sent_ids.insert(e["message_id"].as_str().unwrap_or_default().to_owned());
        }
        let next = page["next_cursor"].as_i64().unwrap_or(after);
        if data.is_empty() || next == after {
            break;
        }
        after = next;
    }
    let small_sent = broadcast(&api, &small).await?["sentCount"]
        .as_i64()
        .unwrap_or(0) as usize;
    anyhow::ensure!(
        done["status"] == "completed" && sent == n as i64,
        "the broadcast ended {} with {sent} of {n} sent",
        done["status"]
    );
    anyhow::ensure!(
        events == sent_ids.len() && events == n + small_sent,
        "{events} message.sent events for {} messages; expected {}",
        sent_ids.len(),
        n + small_sent
    );
    println!("  ok: {n} messages sent exactly once through the crash");
    server.stop().await
}
