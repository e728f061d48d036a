//! The server's configuration, validated before anything starts.

use std::{fmt, net::SocketAddr, num::NonZeroU32};

use serde::{Deserialize, Serialize};
use wharf_core::EngineKind;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object a line, with the fields of the spans around it (request, account,
    /// session and message ids) at the top level.
    Json,
}

/// Everything `wharf serve` can be told. Defaults suit one machine with SQLite.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// `sqlite://PATH` (created when missing) or `postgres://…`.
    pub database_url: String,
    /// Engine of sessions created without `engine`.
    pub default_engine: EngineKind,
    /// Mount the emulator's control surface (`/emulator/...`).
    pub emulator_control: bool,
    /// Requests per minute each account may make on authenticated routes.
    pub rate_limit_per_minute: NonZeroU32,
    /// This instance's name, shown as `worker_id` of the sessions it runs.
    pub instance_id: String,
    /// Log filter, in `RUST_LOG` syntax.
    pub log: String,
    /// How log lines are written: `text` (for people) or `json` (one object a line).
    pub log_format: LogFormat,
    /// Sends per second per session on the emulator engine.
    pub send_rate_emulator: NonZeroU32,
    /// Sends per second per session on the WhatsApp Web engine (WhatsApp bans fast senders).
    pub send_rate_web: NonZeroU32,
    /// WhatsApp Web: sends to one recipient in a burst before `web_pair_interval_ms` applies.
    pub web_pair_burst: u32,
    /// WhatsApp Web: after a burst, one send to the same recipient per this many ms.
    pub web_pair_interval_ms: u64,
    /// WhatsApp Web: a random pause of 0 to this many ms before each send.
    pub web_jitter_ms: u64,
    /// WhatsApp Web: at most this many sends per session a day (UTC); 0 is no cap.
    pub web_daily_cap: u32,
    /// The WebSocket address WhatsApp Web sessions connect to (operator configuration;
    /// tests and benchmarks point it at loopback).
    pub web_endpoint: String,
    /// The WhatsApp Web version the client announces, `2.3000.N`; unset, it is fetched from
    /// web.whatsapp.com once a day.
    pub web_version: Option<String>,
    /// Sends per second per number on the Cloud API engine.
    pub send_rate_cloud: NonZeroU32,
    /// Attempts of a send before a retryable failure becomes final.
    pub send_max_attempts: u32,
    /// First retry delay of a send, in ms (doubling, with jitter).
    pub send_retry_base_ms: u64,
    /// Longest retry delay of a send, in ms.
    pub send_retry_max_ms: u64,
    /// Emulator: the delivered receipt follows a send after this many ms (`-1`: never).
    pub emulator_delivered_after_ms: i64,
    /// Emulator: the read (or played, for audio) receipt follows after this many ms (`-1`: never).
    pub emulator_read_after_ms: i64,
    /// Delays before each webhook retry, in ms; the delivery fails after the last one.
    pub webhook_retry_delays_ms: Vec<u64>,
    /// Time limit of one webhook request, in ms.
    pub webhook_timeout_ms: u64,
    /// Webhook requests in flight, in all.
    pub webhook_concurrency: usize,
    /// Webhook requests in flight to one endpoint.
    pub webhook_per_endpoint: usize,
    /// An endpoint whose deliveries have only failed for this many days is disabled (0: never).
    pub webhook_disable_after_days: u32,
    /// Hosts and ranges that requests made for tenants (webhooks, agents, media) may reach
    /// although they are not public: host names, IP addresses and CIDR ranges. A list, or
    /// one text with entries separated by commas or spaces.
    #[serde(deserialize_with = "list_or_text")]
    pub outbound_allow: Vec<String>,
    /// How long an Idempotency-Key is remembered, in hours.
    pub idempotency_hours: u64,
    /// The URL other instances reach this one at (`http://10.0.0.5:8080`), to forward it the
    /// calls that need a session it runs. Unset: `http://` and the listening address, unless
    /// that is a wildcard (`0.0.0.0`, `::`), in which case such calls made elsewhere answer 409.
    pub advertise_url: Option<String>,
    /// How long an instance's lease on a session lasts without renewal, in milliseconds.
    /// Leases are renewed every third of it; an instance that dies loses its sessions to the
    /// others within about this long plus a third.
    pub lease_ttl_ms: u64,
    /// Events older than this many days are removed, with their webhook deliveries, by a
    /// background job that one instance at a time runs (0: kept forever).
    pub events_retention_days: u32,
    /// How long `POST /v1/whatsapp/broadcasts/{id}/send` waits for the broadcast to end
    /// before answering `status: "sending"` with the counts so far, in milliseconds.
    pub broadcast_send_wait_ms: u64,
    /// Recipients of a broadcast turned into messages per transaction; the worker keeps at
    /// most four batches of a session's messages waiting in the outbox.
    pub broadcast_batch_size: u32,
    /// Phone numbers (Zernio Business API) one account may hold at once, in place of a paid
    /// plan: a purchase past it is refused. 0: accounts cannot purchase numbers.
    pub phone_number_quota: u32,
    /// Telnyx API key: set, purchases order a number from Telnyx when the pool has none, and
    /// `available` adds Telnyx's numbers to the pool's. Unset: Telnyx is off.
    pub telnyx_api_key: Option<String>,
    /// Telnyx's API address (operator configuration; tests point it at a fake).
    pub telnyx_base_url: String,
    /// The country (ISO 3166-1 alpha-2) whose Telnyx numbers are searched and ordered.
    pub telnyx_country: String,
    /// Base64 of the 32-byte key sealing secrets at rest (Cloud API tokens and app secrets).
    /// Unset: a key file next to a SQLite database; on PostgreSQL the cloud engine is off.
    pub secret_key: Option<String>,
    /// When set, `GET /metrics` requires `Authorization: Bearer <metrics_token>`; unset, the
    /// metrics are open to whoever reaches the port (keep it internal).
    pub metrics_token: Option<String>,
    /// Graph API address of every cloud session (operator configuration, never a tenant's).
    pub cloud_graph_base_url: String,
    /// Graph API version for cloud sessions that do not set their own.
    pub cloud_graph_version: String,
    /// Cloud API: sends to one recipient in a burst before the pair pace applies.
    pub cloud_pair_burst: u32,
    /// Cloud API: after a burst, one send to the same recipient per this many ms.
    pub cloud_pair_interval_ms: u64,
    /// Cloud API: time limit of one Graph call, in ms.
    pub cloud_timeout_ms: u64,
    /// The session serving as the shared sandbox number. Set here, it is stored at startup
    /// (as `wharf sandbox set-number` does); unset, the stored choice stands.
    pub sandbox_session_id: Option<String>,
    /// Hours a pending sandbox session waits for its phone.
    pub sandbox_pending_hours: u64,
    /// Hours an activated sandbox session lasts.
    pub sandbox_active_hours: u64,
    /// The approved template sent as the verification message when the sandbox number is a
    /// Cloud API number (business-initiated messages must be templates there).
    pub sandbox_template: String,
    /// Its language code.
    pub sandbox_template_language: String,
    /// The verification message on other engines.
    pub sandbox_verification_text: String,
    /// Sent to a phone when its sandbox session activates (empty: nothing is sent).
    pub sandbox_confirmation_text: String,
    /// The server's clock; tests move it forward.
    #[serde(skip)]
    pub clock: wharf_core::time::Clock,
    /// The outbound client's resolver (the system's when unset); tests play DNS with it.
    #[serde(skip)]
    pub outbound_lookup: Option<std::sync::Arc<dyn crate::outbound::Lookup>>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://./data/wharf.db".into(),
            default_engine: EngineKind::Emulator,
            emulator_control: true,
            rate_limit_per_minute: NonZeroU32::new(600).expect("600 is not zero"),
            instance_id: default_instance_id(),
            log: "info".into(),
            log_format: LogFormat::Text,
            send_rate_emulator: NonZeroU32::new(1000).expect("not zero"),
            send_rate_web: NonZeroU32::new(1).expect("not zero"),
            web_pair_burst: 1,
            web_pair_interval_ms: 4000,
            web_jitter_ms: 2000,
            web_daily_cap: 0,
            web_endpoint: wharf_engines::web::DEFAULT_WEB_ENDPOINT.into(),
            web_version: None,
            send_rate_cloud: NonZeroU32::new(80).expect("not zero"),
            send_max_attempts: 8,
            send_retry_base_ms: 1000,
            send_retry_max_ms: 300_000,
            emulator_delivered_after_ms: 1000,
            emulator_read_after_ms: 3000,
            webhook_retry_delays_ms: crate::workers::webhooks::WebhookConfig::default()
                .retry_delays
                .iter()
                .map(|d| d.as_millis() as u64)
                .collect(),
            webhook_timeout_ms: 10_000,
            webhook_concurrency: 256,
            webhook_per_endpoint: 64,
            webhook_disable_after_days: 5,
            outbound_allow: Vec::new(),
            idempotency_hours: 24,
            lease_ttl_ms: 15_000,
            advertise_url: None,
            events_retention_days: 30,
            broadcast_send_wait_ms: 25_000,
            broadcast_batch_size: 500,
            phone_number_quota: 5,
            telnyx_api_key: None,
            telnyx_base_url: "https://api.telnyx.com".into(),
            telnyx_country: "US".into(),
            secret_key: None,
            metrics_token: None,
            cloud_graph_base_url: "https://graph.facebook.com".into(),
            cloud_graph_version: "v23.0".into(),
            cloud_pair_burst: 45,
            cloud_pair_interval_ms: 6000,
            cloud_timeout_ms: 15_000,
            sandbox_session_id: None,
            sandbox_pending_hours: 24,
            sandbox_active_hours: 24 * 7,
            sandbox_template: "wharf_sandbox_verification".into(),
            sandbox_template_language: "en_US".into(),
            sandbox_verification_text:
                "Reply to this message to connect this phone to the WhatsApp sandbox.".into(),
            sandbox_confirmation_text:
                "You're connected to the WhatsApp sandbox. Messages from this chat now reach the app that invited you."
                    .into(),
            clock: wharf_core::time::Clock::default(),
            outbound_lookup: None,
        }
    }
}

/// A list of strings, also accepted as one text separated by commas or spaces (handy in
/// environment variables: `WHARF_OUTBOUND_ALLOW=10.0.0.0/8,receiver.internal`).
fn list_or_text<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Either::deserialize(de)? {
        Either::List(list) => list,
        Either::Text(text) => text
            .split([',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

fn default_instance_id() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "wharf".into())
}

/// `2.3000.1023456789` as its three numbers.
fn parse_web_version(text: &str) -> Result<(u32, u32, u32), String> {
    let bad = || format!("web_version must look like 2.3000.1023456789 (got {text})");
    let mut parts = text.split('.').map(|p| p.parse::<u32>().map_err(|_| bad()));
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(b), Some(c), None) => Ok((a?, b?, c?)),
        _ => Err(bad()),
    }
}

impl Config {
    /// Checks what serde cannot: the database URL's scheme and a usable instance id.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(url) = self.advertise_url.as_deref().filter(|u| !u.is_empty())
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err("advertise_url must start with http:// or https://".into());
        }
        if !(1_000..=600_000).contains(&self.lease_ttl_ms) {
            return Err("lease_ttl_ms must be between 1000 and 600000".into());
        }
        let url = &self.database_url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(format!(
                "database_url must start with sqlite:, postgres:// or postgresql:// (got {})",
                redact_url(url)
            ));
        }
        if self.instance_id.trim().is_empty() || self.instance_id.len() > 100 {
            return Err("instance_id must be 1 to 100 characters".into());
        }
        if self.broadcast_batch_size == 0 || self.broadcast_batch_size > 5000 {
            return Err("broadcast_batch_size must be from 1 to 5000".into());
        }
        if self.phone_number_quota > 100_000 {
            return Err("phone_number_quota must be 0 to 100000".into());
        }
        if !(self.telnyx_base_url.starts_with("https://")
            || self.telnyx_base_url.starts_with("http://"))
        {
            return Err("telnyx_base_url must be an http:// or https:// URL".into());
        }
        if self.telnyx_country.len() != 2
            || !self.telnyx_country.bytes().all(|b| b.is_ascii_uppercase())
        {
            return Err("telnyx_country must be an ISO 3166-1 alpha-2 code such as US".into());
        }
        if self.send_max_attempts == 0 {
            return Err("send_max_attempts must be at least 1".into());
        }
        if self.send_retry_base_ms == 0 || self.send_retry_max_ms < self.send_retry_base_ms {
            return Err(
                "send_retry_base_ms must be at least 1 and not above send_retry_max_ms".into(),
            );
        }
        if self.webhook_timeout_ms == 0
            || self.webhook_concurrency == 0
            || self.webhook_per_endpoint == 0
        {
            return Err("webhook_timeout_ms, webhook_concurrency and webhook_per_endpoint must be at least 1".into());
        }
        if self.send_rate_cloud.get() > 1000 {
            return Err(
                "send_rate_cloud must be at most 1000 (the Cloud API's highest tier)".into(),
            );
        }
        if let Some(key) = self.secret_key.as_deref().filter(|k| !k.trim().is_empty()) {
            crate::secrets::decode_key(key)?;
        }
        crate::outbound::Policy::new(&self.outbound_allow)?;
        if self.events_retention_days > 36_500 {
            return Err("events_retention_days must be 0 (forever) to 36500".into());
        }
        // (A delay is added to the clock in milliseconds: a larger one would overflow.)
        if self
            .webhook_retry_delays_ms
            .iter()
            .any(|d| *d > MAX_RETRY_DELAY_MS)
        {
            return Err(format!(
                "webhook_retry_delays_ms: each delay must be at most {MAX_RETRY_DELAY_MS} (30 days)"
            ));
        }
        if self.webhook_disable_after_days > 3650 {
            return Err("webhook_disable_after_days must be 0 (never) to 3650".into());
        }
        if !(self.web_endpoint.starts_with("wss://") || self.web_endpoint.starts_with("ws://")) {
            return Err("web_endpoint must be a ws:// or wss:// URL".into());
        }
        if self.web_pair_burst == 0 || self.web_pair_interval_ms == 0 {
            return Err("web_pair_burst and web_pair_interval_ms must be at least 1".into());
        }
        if self.web_jitter_ms > 60_000 {
            return Err("web_jitter_ms must be 0 to 60000".into());
        }
        if let Some(v) = self.web_version.as_deref().filter(|v| !v.is_empty()) {
            parse_web_version(v)?;
        }
        if !(self.cloud_graph_base_url.starts_with("https://")
            || self.cloud_graph_base_url.starts_with("http://"))
        {
            return Err("cloud_graph_base_url must be an http:// or https:// URL".into());
        }
        if !is_graph_version(&self.cloud_graph_version) {
            return Err("cloud_graph_version must look like v23.0".into());
        }
        if self.cloud_pair_burst == 0
            || self.cloud_pair_interval_ms == 0
            || self.cloud_timeout_ms == 0
        {
            return Err(
                "cloud_pair_burst, cloud_pair_interval_ms and cloud_timeout_ms must be at least 1"
                    .into(),
            );
        }
        if let Some(id) = self.sandbox_session_id.as_deref().filter(|s| !s.is_empty())
            && id.parse::<wharf_core::SessionId>().is_err()
        {
            return Err(format!(
                "sandbox_session_id must be a session id (sess_…), got {id}"
            ));
        }
        let hours = 1..=87_600;
        if !hours.contains(&self.sandbox_pending_hours)
            || !hours.contains(&self.sandbox_active_hours)
        {
            return Err(
                "sandbox_pending_hours and sandbox_active_hours must be 1 to 87600 (ten years)"
                    .into(),
            );
        }
        if self.sandbox_template.trim().is_empty()
            || self.sandbox_template_language.trim().is_empty()
            || self.sandbox_verification_text.trim().is_empty()
        {
            return Err(
                "sandbox_template, sandbox_template_language and sandbox_verification_text must not be empty"
                    .into(),
            );
        }
        if self.emulator_delivered_after_ms < -1 || self.emulator_read_after_ms < -1 {
            return Err(
                "emulator_delivered_after_ms and emulator_read_after_ms must be -1 (never) or more"
                    .into(),
            );
        }
        Ok(())
    }
}

impl Config {
    /// A warning for the operator when events are kept for less time than a webhook
    /// delivery may be retried: a delivery still being retried when its event passes
    /// retention is removed with it, and its endpoint never gets that event.
    pub fn retention_warning(&self) -> Option<String> {
        if self.events_retention_days == 0 {
            return None;
        }
        let schedule = self
            .webhook_retry_delays_ms
            .iter()
            .fold(0u64, |sum, d| sum.saturating_add(*d));
        let kept = u64::from(self.events_retention_days) * 86_400_000;
        (schedule > kept).then(|| {
            format!(
                "events_retention_days ({} days) is shorter than the webhook retry schedule \
                 (webhook_retry_delays_ms, {:.1} h in all): a delivery still being retried when \
                 its event passes retention is removed with it",
                self.events_retention_days,
                schedule as f64 / 3_600_000.0
            )
        })
    }
}

/// The longest delay `webhook_retry_delays_ms` may hold: 30 days.
const MAX_RETRY_DELAY_MS: u64 = 30 * 86_400_000;

/// A Graph API version: `v` and a version number (`v23.0`).
pub fn is_graph_version(v: &str) -> bool {
    v.strip_prefix('v').is_some_and(|n| {
        !n.is_empty()
            && n.len() <= 8
            && n.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && n.as_bytes()[0].is_ascii_digit()
    })
}

/// A URL with any password (in the user info or a `password=` parameter) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let url = match url.split_once('?') {
        Some((base, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{base}?{}", query.join("&"))
        }
        None => url.to_owned(),
    };
    let url = url.as_str();
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database_url", &redact_url(&self.database_url))
            .field("default_engine", &self.default_engine)
            .field("emulator_control", &self.emulator_control)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("instance_id", &self.instance_id)
            .field("lease_ttl_ms", &self.lease_ttl_ms)
            .field("advertise_url", &self.advertise_url)
            .field("log", &self.log)
            .field("log_format", &self.log_format)
            .field("send_rate_emulator", &self.send_rate_emulator)
            .field("send_rate_web", &self.send_rate_web)
            .field("web_pair_burst", &self.web_pair_burst)
            .field("web_pair_interval_ms", &self.web_pair_interval_ms)
            .field("web_jitter_ms", &self.web_jitter_ms)
            .field("web_daily_cap", &self.web_daily_cap)
            .field("web_endpoint", &self.web_endpoint)
            .field("web_version", &self.web_version)
            .field("send_rate_cloud", &self.send_rate_cloud)
            .field("send_max_attempts", &self.send_max_attempts)
            .field("webhook_retry_delays_ms", &self.webhook_retry_delays_ms)
            .field(
                "webhook_disable_after_days",
                &self.webhook_disable_after_days,
            )
            .field("events_retention_days", &self.events_retention_days)
            .field("outbound_allow", &self.outbound_allow)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "***"))
            .field("metrics_token", &self.metrics_token.as_ref().map(|_| "***"))
            .field("phone_number_quota", &self.phone_number_quota)
            .field(
                "telnyx_api_key",
                &self.telnyx_api_key.as_ref().map(|_| "***"),
            )
            .field("telnyx_base_url", &self.telnyx_base_url)
            .field("cloud_graph_base_url", &self.cloud_graph_base_url)
            .field("cloud_graph_version", &self.cloud_graph_version)
            .field("sandbox_session_id", &self.sandbox_session_id)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// The sandbox's settings.
    pub fn sandbox(&self) -> crate::services::sandbox::SandboxSettings {
        let hours = |h: u64| i64::try_from(h.saturating_mul(3_600_000)).unwrap_or(i64::MAX);
        crate::services::sandbox::SandboxSettings {
            pending_ttl_ms: hours(self.sandbox_pending_hours),
            active_ttl_ms: hours(self.sandbox_active_hours),
            template: self.sandbox_template.clone(),
            template_language: self.sandbox_template_language.clone(),
            verification_text: self.sandbox_verification_text.clone(),
            confirmation_text: Some(self.sandbox_confirmation_text.clone())
                .filter(|t| !t.trim().is_empty()),
            clock: self.clock.clone(),
        }
    }

    /// The phone numbers' settings: the quota and Telnyx, when configured.
    pub fn numbers(&self) -> crate::services::numbers::NumberSettings {
        crate::services::numbers::NumberSettings {
            quota: i64::from(self.phone_number_quota),
            telnyx: self
                .telnyx_api_key
                .as_deref()
                .filter(|k| !k.trim().is_empty())
                .map(|key| crate::services::numbers::telnyx::TelnyxSettings {
                    api_key: key.trim().to_owned(),
                    base_url: self.telnyx_base_url.trim_end_matches('/').to_owned(),
                    country: self.telnyx_country.clone(),
                    timeout: std::time::Duration::from_millis(self.cloud_timeout_ms),
                }),
        }
    }

    /// The dispatcher's settings.
    pub fn broadcasts(&self) -> crate::services::broadcasts::BroadcastSettings {
        crate::services::broadcasts::BroadcastSettings {
            send_wait: std::time::Duration::from_millis(self.broadcast_send_wait_ms),
            batch: i64::from(self.broadcast_batch_size.max(1)),
        }
    }

    pub fn dispatch(&self) -> crate::workers::dispatch::DispatchConfig {
        use wharf_core::EngineKind;
        crate::workers::dispatch::DispatchConfig {
            rate: [
                (EngineKind::Emulator, self.send_rate_emulator),
                (EngineKind::Web, self.send_rate_web),
                (EngineKind::Cloud, self.send_rate_cloud),
            ]
            .into_iter()
            .collect(),
            max_attempts: self.send_max_attempts,
            base_backoff: std::time::Duration::from_millis(self.send_retry_base_ms),
            max_backoff: std::time::Duration::from_millis(self.send_retry_max_ms),
            clock: self.clock.clone(),
        }
    }

    /// The webhook deliverer's settings.
    pub fn webhooks(&self) -> crate::workers::webhooks::WebhookConfig {
        crate::workers::webhooks::WebhookConfig {
            retry_delays: self
                .webhook_retry_delays_ms
                .iter()
                .map(|ms| std::time::Duration::from_millis(*ms))
                .collect(),
            timeout: std::time::Duration::from_millis(self.webhook_timeout_ms),
            concurrency: self.webhook_concurrency,
            per_endpoint: self.webhook_per_endpoint,
            disable_after: std::time::Duration::from_secs(
                u64::from(self.webhook_disable_after_days) * 86_400,
            ),
            clock: self.clock.clone(),
        }
    }

    /// The retention job's settings.
    pub fn retention(&self) -> crate::workers::retention::RetentionConfig {
        crate::workers::retention::RetentionConfig {
            days: self.events_retention_days,
            holder: format!("{}-{:016x}", self.instance_id, rand::random::<u64>()),
            clock: self.clock.clone(),
        }
    }

    /// The WhatsApp Web engine's settings.
    pub fn web(&self) -> wharf_engines::web::WebConfig {
        wharf_engines::web::WebConfig {
            endpoint: self.web_endpoint.clone(),
            pacing: wharf_core::engine::Pacing {
                per_second: self.send_rate_web.get(),
                pair_burst: self.web_pair_burst,
                pair_interval_ms: self.web_pair_interval_ms,
                jitter_ms: self.web_jitter_ms,
                daily_cap: (self.web_daily_cap > 0).then_some(self.web_daily_cap),
            },
            ..wharf_engines::web::WebConfig::default()
        }
    }

    /// The WhatsApp Web version to announce, when configured.
    pub fn web_version(&self) -> Option<(u32, u32, u32)> {
        self.web_version
            .as_deref()
            .filter(|v| !v.is_empty())
            .and_then(|v| parse_web_version(v).ok())
    }

    /// The Cloud API engine's settings.
    pub fn cloud(&self) -> wharf_engines::cloud::CloudSettings {
        wharf_engines::cloud::CloudSettings {
            graph_base_url: self.cloud_graph_base_url.clone(),
            graph_version: self.cloud_graph_version.clone(),
            throughput_per_second: self.send_rate_cloud.get(),
            pair_burst: self.cloud_pair_burst,
            pair_interval_ms: self.cloud_pair_interval_ms,
            timeout: std::time::Duration::from_millis(self.cloud_timeout_ms),
        }
    }

    /// The emulator's receipt timing.
    pub fn receipt_delays(&self) -> wharf_engines::emulator::ReceiptDelays {
        let after = |ms: i64| u64::try_from(ms).ok().map(std::time::Duration::from_millis);
        wharf_engines::emulator::ReceiptDelays {
            delivered: after(self.emulator_delivered_after_ms),
            read: after(self.emulator_read_after_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_database_passwords() {
        let config = Config {
            database_url: "postgres://wharf:s3cret@db:5432/wharf".into(),
            ..Config::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("postgres://wharf:***@db:5432/wharf"),
            "{shown}"
        );
        assert_eq!(
            redact_url("postgres://db/w?user=u&password=p4ss&sslmode=require"),
            "postgres://db/w?user=u&password=***&sslmode=require"
        );
    }

    #[test]
    fn debug_redacts_the_secret_key_and_validation_checks_it() {
        let config = Config {
            secret_key: Some("c2hvcnQ=".into()),
            ..Config::default()
        };
        assert!(!format!("{config:?}").contains("c2hvcnQ"));
        assert!(config.validate().unwrap_err().contains("32 bytes"));
        let config = Config {
            cloud_graph_version: "23".into(),
            ..Config::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .contains("cloud_graph_version")
        );
    }

    #[test]
    fn validate_rejects_unknown_databases() {
        let config = Config {
            database_url: "mysql://x".into(),
            ..Config::default()
        };
        assert!(config.validate().unwrap_err().contains("database_url"));
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn validate_checks_the_sandbox_settings() {
        for (pending, active) in [(0, 24), (24, 0), (87_601, 24), (24, u64::MAX)] {
            let config = Config {
                sandbox_pending_hours: pending,
                sandbox_active_hours: active,
                ..Config::default()
            };
            assert!(
                config.validate().unwrap_err().contains("sandbox_"),
                "{pending} {active}"
            );
        }
        let config = Config {
            sandbox_session_id: Some("sess_nope".into()),
            ..Config::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .contains("sandbox_session_id")
        );
        let config = Config {
            sandbox_template: " ".into(),
            ..Config::default()
        };
        assert!(config.validate().unwrap_err().contains("sandbox_template"));
    }

    #[test]
    fn validate_bounds_the_webhook_retry_delays() {
        let config = Config {
            webhook_retry_delays_ms: vec![5_000, u64::MAX],
            ..Config::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .contains("webhook_retry_delays_ms")
        );
        let config = Config {
            webhook_retry_delays_ms: vec![0, MAX_RETRY_DELAY_MS],
            ..Config::default()
        };
        assert!(config.validate().is_ok());
    }

    #[test]
    fn a_retention_shorter_than_the_retry_schedule_is_warned_of() {
        // The defaults: 30 days of events, 27.6 h of retries.
        assert_eq!(Config::default().retention_warning(), None);
        let config = Config {
            events_retention_days: 1,
            ..Config::default()
        };
        let warning = config.retention_warning().expect("a warning");
        assert!(warning.contains("27.6 h"), "{warning}");
        let config = Config {
            events_retention_days: 0,
            webhook_retry_delays_ms: vec![MAX_RETRY_DELAY_MS; 3],
            ..Config::default()
        };
        assert_eq!(config.retention_warning(), None, "kept for ever");
    }
}
