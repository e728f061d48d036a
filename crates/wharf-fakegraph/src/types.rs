//! The public value types: numbers to register, failures to inject, and what the fake recorded.

use std::time::Instant;

use serde_json::Value;

use crate::error::{default_status, title};

/// A Cloud API phone number (and the WhatsApp Business Account that owns it) known to the fake.
///
/// Build one with [`FakeNumber::new`] and adjust fields, or with a struct literal and
/// `..Default::default()`.
#[derive(Clone, Debug, Default)]
pub struct FakeNumber {
    /// The Graph id of the phone number (`/{phone_number_id}/messages`).
    pub phone_number_id: String,
    /// The WhatsApp Business Account id that owns the number.
    pub waba_id: String,
    /// The number itself, digits only (as in webhook `metadata.display_phone_number`).
    pub display_phone_number: String,
    /// The approved display name.
    pub verified_name: String,
    /// The Bearer token that may act on this number, its WABA and the objects it created.
    pub access_token: String,
    /// The app secret webhooks about this number are signed with.
    pub app_secret: String,
    /// Recipients (digits, `+` optional) that get `131026 Message Undeliverable` synchronously.
    pub not_on_whatsapp: Vec<String>,
    /// Meta's per-number throughput limit in messages per second (sliding 1 s window of
    /// accepted sends); over it a send gets `130429 Rate limit hit`. `None`: unlimited.
    pub throughput_cap: Option<u32>,
}

impl FakeNumber {
    /// A number with a derived token (`EAAFAKE<pnid>`), app secret (`fake-secret-<pnid>`)
    /// and verified name ("Wharf Test").
    pub fn new(phone_number_id: &str, waba_id: &str, display_phone_number: &str) -> Self {
        Self {
            phone_number_id: phone_number_id.to_owned(),
            waba_id: waba_id.to_owned(),
            display_phone_number: display_phone_number.to_owned(),
            verified_name: "Wharf Test".to_owned(),
            access_token: format!("EAAFAKE{phone_number_id}"),
            app_secret: format!("fake-secret-{phone_number_id}"),
            not_on_whatsapp: Vec::new(),
            throughput_cap: None,
        }
    }
}

/// An error the fake answers instead of processing a matching request.
///
/// Queued with [`crate::FakeGraph::fail_next`]; a request matches when both filters match
/// (an absent filter matches everything). Each match consumes one of `times`.
#[derive(Clone, Debug)]
pub struct Failure {
    /// Only requests addressing this object id (phone number, WABA, media, template), or
    /// objects owned by this phone number.
    pub phone_number_id: Option<String>,
    /// Only requests whose path (without version prefix) contains this, e.g. `"/messages"`.
    pub path_contains: Option<String>,
    /// The HTTP status to answer with.
    pub http_status: u16,
    /// Graph `error.code`.
    pub code: i64,
    /// Graph `error.error_subcode`.
    pub subcode: Option<i64>,
    /// Graph `error.message`.
    pub message: String,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
    /// How many matching requests this failure answers.
    pub times: usize,
    /// Answer this JSON instead of Graph's error envelope (a Graph that misbehaves).
    pub raw_body: Option<Value>,
}

impl Failure {
    /// A failure with Graph error `code`, the HTTP status Meta uses for it (0/190 → 401;
    /// 10, 200–299, 368, 130497, 131031 → 403; 4, 80007, 130429 → 429; 1, 2, 131000 → 500;
    /// 131016, 131057 → 503; others → 400), message `"(#CODE) <title>"`, once.
    pub fn code(code: i64) -> Self {
        Self {
            phone_number_id: None,
            path_contains: None,
            http_status: default_status(code),
            code,
            subcode: None,
            message: format!("(#{code}) {}", title(code)),
            retry_after: None,
            times: 1,
            raw_body: None,
        }
    }

    /// A Graph that misbehaves: answers `body` (any JSON, not its error envelope) with HTTP
    /// `http_status`, once.
    pub fn answering(http_status: u16, body: Value) -> Self {
        Self {
            http_status,
            raw_body: Some(body),
            ..Self::code(1)
        }
    }

    /// Answer this many matching requests.
    pub fn times(mut self, n: usize) -> Self {
        self.times = n;
        self
    }

    /// Add a `Retry-After: secs` header.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// Only match requests about this phone number (or object id).
    pub fn for_number(mut self, phone_number_id: &str) -> Self {
        self.phone_number_id = Some(phone_number_id.to_owned());
        self
    }

    /// Only match requests whose path contains `s`.
    pub fn on_path(mut self, s: &str) -> Self {
        self.path_contains = Some(s.to_owned());
        self
    }

    /// Override the HTTP status.
    pub fn status(mut self, http_status: u16) -> Self {
        self.http_status = http_status;
        self
    }

    /// Set `error.error_subcode`.
    pub fn subcode(mut self, subcode: i64) -> Self {
        self.subcode = Some(subcode);
        self
    }

    /// Override `error.message`.
    pub fn message(mut self, message: &str) -> Self {
        self.message = message.to_owned();
        self
    }
}

/// A message the fake accepted (`POST /{pnid}/messages`, not mark-read or typing).
#[derive(Clone, Debug)]
pub struct RecordedSend {
    /// The sending number.
    pub phone_number_id: String,
    /// `to` exactly as sent.
    pub to: String,
    /// The message `type` (`text`, `image`, `template`, …).
    pub kind: String,
    /// The whole request body.
    pub body: Value,
    /// The id the fake answered with.
    pub wamid: String,
    /// When the fake accepted it.
    pub at: Instant,
}

/// Any request the fake received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// HTTP method, upper case.
    pub method: String,
    /// Path without the `/vNN.N` prefix, e.g. `/106540352242922/messages`.
    pub path: String,
    /// The raw query string (`""` when none).
    pub query: String,
    /// The JSON (or form) body; `Value::Null` when empty, multipart or unparsable.
    pub body: Value,
    /// The `Authorization` header, verbatim.
    pub authorization: Option<String>,
}

/// A webhook the fake POSTed to the configured URL.
#[derive(Clone, Debug)]
pub struct EmittedWebhook {
    /// The body as sent.
    pub body: Value,
    /// The `X-Hub-Signature-256` header, if any.
    pub signature: Option<String>,
    /// The receiver's HTTP status; `None` when the POST failed at the transport level.
    pub status: Option<u16>,
}
