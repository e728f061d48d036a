//! The fake's in-memory world: numbers, templates, media and everything it recorded.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::body::Bytes;
use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde_json::{Map, Value, json};

use crate::types::{EmittedWebhook, Failure, FakeNumber, RecordedRequest, RecordedSend};

/// State shared by the server task, background webhook tasks and every [`crate::FakeGraph`].
pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub client: reqwest::Client,
    pub base_url: String,
    pub latency_nanos: AtomicU64,
    pub busy_nanos: AtomicU64,
    pub auto_statuses: AtomicBool,
    seq: AtomicU64,
    salt: u64,
    id_base: u64,
}

impl Shared {
    pub fn new(base_url: String, client: reqwest::Client) -> Self {
        Self {
            state: Mutex::new(State::default()),
            client,
            base_url,
            latency_nanos: AtomicU64::new(0),
            busy_nanos: AtomicU64::new(0),
            auto_statuses: AtomicBool::new(false),
            seq: AtomicU64::new(1),
            salt: rand::random::<u64>() >> 8,
            id_base: 1_000_000_000_000_000 + (rand::random::<u64>() % 1_000_000) * 1_000_000_000,
        }
    }

    /// The state, even if a panicking test thread poisoned the lock.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn latency(&self) -> Duration {
        Duration::from_nanos(self.latency_nanos.load(Ordering::Relaxed))
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// A fresh numeric Graph object id (16 digits, like Meta's).
    pub fn next_id(&self) -> String {
        (self.id_base + self.next_seq()).to_string()
    }

    /// A fresh message id shaped like Meta's: `wamid.` + base64 of a small protobuf holding
    /// the peer's number and a unique hex id (so it starts `HBgL` for 11-digit numbers).
    pub fn wamid(&self, peer_digits: &str, outbound: bool) -> String {
        let peer = &peer_digits.as_bytes()[..peer_digits.len().min(20)];
        let mut raw = Vec::with_capacity(48);
        raw.extend_from_slice(&[0x1c, 0x18, peer.len() as u8]);
        raw.extend_from_slice(peer);
        raw.extend_from_slice(&[0x15, 0x02, 0x00, if outbound { 0x11 } else { 0x12 }, 0x18]);
        let id = format!(
            "{:020X}",
            (self.salt as u128) << 40 | self.next_seq() as u128
        );
        raw.push(id.len() as u8);
        raw.extend_from_slice(id.as_bytes());
        raw.push(0x00);
        format!("wamid.{}", STANDARD.encode(raw))
    }
}

/// Everything behind the one lock. Keep critical sections short.
#[derive(Default)]
pub(crate) struct State {
    pub numbers: HashMap<String, NumberState>,
    /// WABA id → its phone number ids, in registration order.
    pub wabas: HashMap<String, Vec<String>>,
    pub known_tokens: HashSet<String>,
    pub expired_tokens: HashSet<String>,
    pub templates: HashMap<String, Template>,
    /// WABA id → its template ids, in creation order.
    pub waba_templates: HashMap<String, Vec<String>>,
    pub media: HashMap<String, Media>,
    pub failures: Vec<Failure>,
    pub webhook_url: Option<String>,
    pub sends: Vec<RecordedSend>,
    pub send_meta: HashMap<String, SendMeta>,
    pub requests: Vec<RecordedRequest>,
    pub rejections: Vec<String>,
    pub inbound_ids: HashSet<String>,
    pub webhooks: Vec<EmittedWebhook>,
}

impl State {
    pub fn add_number(&mut self, n: FakeNumber) {
        let pnid = n.phone_number_id.clone();
        self.known_tokens.insert(n.access_token.clone());
        let list = self.wabas.entry(n.waba_id.clone()).or_default();
        if !list.contains(&pnid) {
            list.push(pnid.clone());
        }
        let not_on_whatsapp = n.not_on_whatsapp.iter().map(|r| digits(r)).collect();
        let profile = match self.numbers.remove(&pnid) {
            Some(old) => old.profile,
            None => default_profile(),
        };
        self.numbers.insert(
            pnid,
            NumberState {
                cfg: n,
                not_on_whatsapp,
                verification: "NOT_VERIFIED",
                code_requested: false,
                registered: true,
                profile,
                send_count: 0,
                recent: VecDeque::new(),
            },
        );
    }

    /// The app secret webhooks about `waba_id` are signed with (its first number's).
    pub fn waba_secret(&self, waba_id: &str) -> Option<&str> {
        let pnid = self.wabas.get(waba_id)?.first()?;
        Some(&self.numbers.get(pnid)?.cfg.app_secret)
    }

    /// Whether `token` belongs to a number of `waba_id`.
    pub fn waba_token(&self, waba_id: &str, token: &str) -> bool {
        self.wabas.get(waba_id).is_some_and(|ids| {
            ids.iter().any(|p| {
                self.numbers
                    .get(p)
                    .is_some_and(|n| n.cfg.access_token == token)
            })
        })
    }
}

pub(crate) struct NumberState {
    pub cfg: FakeNumber,
    /// Digits of `cfg.not_on_whatsapp`.
    pub not_on_whatsapp: HashSet<String>,
    pub verification: &'static str,
    pub code_requested: bool,
    pub registered: bool,
    pub profile: Map<String, Value>,
    pub send_count: usize,
    /// Accepted sends inside the last second (only kept when a throughput cap is set).
    pub recent: VecDeque<Instant>,
}

fn default_profile() -> Map<String, Value> {
    let v = json!({"about": "Hey there! I am using WhatsApp.", "vertical": "UNDEFINED"});
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

pub(crate) struct Template {
    pub id: String,
    pub waba: String,
    pub name: String,
    pub language: String,
    pub category: String,
    pub status: String,
    pub parameter_format: String,
    pub components: Value,
    /// Distinct `{{…}}` placeholders in the BODY text.
    pub body_params: usize,
}

impl Template {
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "parameter_format": self.parameter_format,
            "components": self.components,
            "language": self.language,
            "status": self.status,
            "category": self.category,
            "id": self.id,
        })
    }
}

pub(crate) struct Media {
    pub owner: String,
    pub mime: String,
    pub bytes: Bytes,
    pub sha256: String,
}

/// What status webhooks need to know about an accepted send.
pub(crate) struct SendMeta {
    pub pnid: String,
    pub recipient: String,
    pub category: String,
    pub conversation: String,
    pub callback: Option<String>,
}

/// The digits of a phone number (`+1 555-0100` → `15550100`).
pub(crate) fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// Unix time in seconds.
pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
