//! Messaging scenarios: dispatch, webhook delivery and memory.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    load::{Load, ms},
    receiver::Receiver,
    server::{Server, Spec},
};

pub const TO: &str = "+15550102030";

/// A client, the token and helpers against one server.
#[derive(Clone)]
pub struct Api {
    pub client: reqwest::Client,
    pub pat: String,
    base: String,
}

impl Api {
    pub fn new(server: &Server) -> anyhow::Result<Self> {
        let pat = server.pat.clone().ok_or_else(|| {
            anyhow::anyhow!("the server printed no token; is the database empty?")
        })?;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()?;
        Ok(Self {
            client,
            pat,
            base: server.url(""),
        })
    }

    /// Reuses a token with a server started again.
    pub fn with_server(&self, server: &Server) -> Self {
        Self {
            client: self.client.clone(),
            pat: self.pat.clone(),
            base: server.url(""),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        expect: u16,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .client
            .request(method.clone(), self.url(path))
            .bearer_auth(&self.pat);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        anyhow::ensure!(
            status == expect,
            "{method} {path} answered {status}: {text}"
        );
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A new emulator session; connected (scanned) when `connect`.
    pub async fn session(&self, connect: bool) -> anyhow::Result<String> {
        let created = self
            .call(
                reqwest::Method::POST,
                "/v1/whatsapp-sessions",
                Some(json!({})),
                201,
            )
            .await?;
        let id = created["session"]["session_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if connect {
            self.connect(&id).await?;
        }
        Ok(id)
    }

    /// Subscribes `receiver` to every event of the account.
    pub async fn subscribe(&self, receiver: &crate::receiver::Receiver) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::POST,
            "/v1/webhooks",
            Some(json!({"target_url": receiver.url()})),
            201,
        )
        .await?;
        Ok(())
    }

    pub async fn connect(&self, id: &str) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::POST,
            &format!("/v1/whatsapp-sessions/{id}/connect"),
            None,
            200,
        )
        .await?;
        self.call(
            reqwest::Method::POST,
            &format!("/emulator/sessions/{id}/scan"),
            None,
            200,
        )
        .await?;
        Ok(())
    }

    /// Sends `n` texts from `session` with `concurrency` clients; returns the ids in order of
    /// acceptance of the last one.
    pub async fn send_many(
        &self,
        session: &str,
        n: usize,
        concurrency: usize,
    ) -> anyhow::Result<Vec<String>> {
        let ids = std::sync::Arc::new(std::sync::Mutex::new(Vec::with_capacity(n)));
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let (client, url, pat, session, ids, counter) = (
                self.client.clone(),
                self.url("/api/send-message"),
                self.pat.clone(),
                session.to_owned(),
                ids.clone(),
                counter.clone(),
            );
            tasks.spawn(async move {
                loop {
                    let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        return Ok::<(), anyhow::Error>(());
                    }
                    let body =
                        json!({"session_id": session, "to": TO, "text": format!("message {i}")});
                    let resp = client
                        .post(&url)
                        .bearer_auth(&pat)
                        .json(&body)
                        .send()
                        .await?;
                    anyhow::ensure!(resp.status() == 202, "send {i}: {}", resp.status());
                    let v: Value = resp.json().await?;
                    ids.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(v["message_id"].as_str().unwrap_or_default().to_owned());
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        let mut ids = std::mem::take(&mut *ids.lock().unwrap_or_else(|e| e.into_inner()));
        ids.sort();
        Ok(ids)
    }

    /// Waits until message `id` has `status`.
    pub async fn wait_status(
        &self,
        id: &str,
        status: &str,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let info = self
                .call(
                    reqwest::Method::GET,
                    &format!("/api/messages/{id}/info"),
                    None,
                    200,
                )
                .await?;
            if info["status"] == status {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{id} is still {} after {timeout:?}",
                info["status"]
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A server for messaging scenarios: no request limit, no receipts unless asked.
pub fn spec(bin: &Path, db: Option<&str>) -> anyhow::Result<Spec> {
    Ok(Spec::new(bin, db)?
        .args(&["--rate-limit-per-minute", "1000000000"])
        .env("emulator_delivered_after_ms", -1)
        .env("emulator_read_after_ms", -1))
}

pub async fn dispatch(bin: &Path, db: Option<&str>, messages: usize) -> anyhow::Result<()> {
    let spec = spec(bin, db)?.env("send_rate_emulator", 1_000_000);
    let server = spec.start().await?;
    let api = Api::new(&server)?;
    let session = api.session(false).await?;
    let t = Instant::now();
    let ids = api.send_many(&session, messages, 64).await?;
    println!(
        "scenario: dispatch ({messages} messages queued on a disconnected session in {:.1} s)",
        t.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    api.connect(&session).await?;
    // The outbox drains in order: the last message sent means all were.
    api.wait_status(
        ids.last().expect("messages"),
        "sent",
        Duration::from_secs(600),
    )
    .await?;
    let elapsed = started.elapsed();
    println!(
        "  drained to sent in {:.2} s: {:.0} messages/s",
        elapsed.as_secs_f64(),
        messages as f64 / elapsed.as_secs_f64()
    );
    for id in [&ids[0], &ids[ids.len() / 2]] {
        api.wait_status(id, "sent", Duration::from_secs(1)).await?;
    }
    server.stop().await
}

pub async fn webhooks(bin: &Path, db: Option<&str>, events: usize) -> anyhow::Result<()> {
    let spec = spec(bin, db)?.env("send_rate_emulator", 1_000_000);
    let server = spec.start().await?;
    let api = Api::new(&server)?;
    let receiver = Receiver::start().await?;
    let hook = api
        .call(
            reqwest::Method::POST,
            "/v1/webhooks",
            Some(json!({"target_url": receiver.url(), "subscribed_events": ["message.sent"], "is_active": false})),
            201,
        )
        .await?;
    let hook_id = hook["id"].as_str().unwrap_or_default().to_owned();
    let session = api.session(true).await?;
    let ids = api.send_many(&session, events, 64).await?;
    api.wait_status(
        ids.last().expect("events"),
        "sent",
        Duration::from_secs(600),
    )
    .await?;
    println!(
        "scenario: webhooks ({events} message.sent events waiting, then the endpoint is enabled)"
    );
    let started = Instant::now();
    api.call(
        reqwest::Method::PATCH,
        &format!("/v1/webhooks/{hook_id}"),
        Some(json!({"is_active": true})),
        200,
    )
    .await?;
    let deadline = started + Duration::from_secs(600);
    while receiver.distinct() < events {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {events} delivered",
            receiver.distinct()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    println!(
        "  {} deliveries ({} distinct events) in {:.2} s: {:.0} deliveries/s",
        receiver.total(),
        receiver.distinct(),
        elapsed.as_secs_f64(),
        receiver.total() as f64 / elapsed.as_secs_f64()
    );
    server.stop().await
}

pub async fn memory(
    bin: &Path,
    db: Option<&str>,
    messages: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let spec = spec(bin, db)?
        .env("send_rate_emulator", 1_000_000)
        .env("emulator_delivered_after_ms", 200)
        .env("emulator_read_after_ms", 500);
    let server = spec.start().await?;
    let api = Api::new(&server)?;
    let receiver = Receiver::start().await?;
    api.subscribe(&receiver).await?;
    let session = api.session(true).await?;
    println!(
        "scenario: memory ({messages} messages sent, dispatched, receipted and delivered to a webhook)"
    );
    let baseline = server.rss_kib()?;
    let sends = {
        let session = session.clone();
        Load::post(
            &api.client,
            api.url("/api/send-message"),
            api.pat.clone(),
            202,
            move |i| json!({"session_id": session, "to": TO, "text": format!("memory {i}")}),
        )
    };
    let pid = server.pid();
    let sampler = tokio::spawn(async move {
        let mut peak = 0u64;
        loop {
            let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
                return peak;
            };
            let rss = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0);
            peak = peak.max(rss);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let started = Instant::now();
    let result = sends
        .run_bounded(concurrency, Duration::from_secs(3600), messages as u64)
        .await?;
    result.print("POST /api/send-message");
    let after_sends = server.rss_kib()?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let settled = server.rss_kib()?;
    server.stop().await?;
    let peak = sampler.await?;
    println!(
        "  RSS: {:.1} MiB at start, {:.1} MiB after the sends, {:.1} MiB 5 s later, peak {:.1} MiB ({:.0} s in all, p99 {:.2} ms)",
        baseline as f64 / 1024.0,
        after_sends as f64 / 1024.0,
        settled as f64 / 1024.0,
        peak as f64 / 1024.0,
        started.elapsed().as_secs_f64(),
        ms(result.percentile(0.99)),
    );
    println!("  webhook deliveries received: {}", receiver.total());
    Ok(())
}
