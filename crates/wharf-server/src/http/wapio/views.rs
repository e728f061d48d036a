//! Response and request shapes of the Wapio Sessions API.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wharf_core::{
    EngineKind, SessionSettings, SessionStatus, session::SessionSettingsPatch, time::rfc3339,
};
use wharf_store::{OperationRow, SessionRow};

use crate::http::extract::double_option;

/// A session as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionView {
    pub session_id: String,
    pub account_id: String,
    pub status: SessionStatus,
    pub created_at: String,
    pub label: Option<String>,
    /// E.164, set at creation or when a phone links the session.
    pub phone_number: Option<String>,
    /// The Wharf instance running the session, while it runs.
    pub worker_id: Option<String>,
    pub last_activity_at: Option<String>,
    pub updated_at: String,
    /// Fingerprint of the live session key; `null` once the session is being deleted.
    pub session_api_key_fingerprint: Option<String>,
    /// Wharf extension: the engine carrying the session.
    pub engine: EngineKind,
    /// Wharf extension: why the session is in its status (e.g. a disconnect reason).
    pub status_reason: Option<String>,
    /// Wharf extension, cloud sessions only (in the answers about one session): the Graph
    /// settings. The access token and app secret are never shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud: Option<CloudView>,
}

/// A cloud session's Graph settings, without its secrets.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloudView {
    pub phone_number_id: String,
    pub waba_id: String,
    pub graph_version: String,
    /// Sends per second allowed to this number.
    pub throughput_per_second: u32,
    /// Where Meta's webhooks for this number go (with the session's verify token).
    pub webhook_path: String,
}

impl From<crate::services::cloud::CloudSummary> for CloudView {
    fn from(c: crate::services::cloud::CloudSummary) -> Self {
        Self {
            phone_number_id: c.phone_number_id,
            waba_id: c.waba_id,
            graph_version: c.graph_version,
            throughput_per_second: c.throughput_per_second,
            webhook_path: "/webhooks/meta".into(),
        }
    }
}

impl From<&SessionRow> for SessionView {
    fn from(row: &SessionRow) -> Self {
        Self {
            session_id: row.id.to_string(),
            account_id: row.account_id.to_string(),
            status: row.status,
            created_at: rfc3339(row.created_at),
            label: row.label.clone(),
            phone_number: row.phone_number.as_ref().map(|p| p.e164().to_owned()),
            worker_id: row.worker_id.clone(),
            last_activity_at: row.last_activity_at.map(rfc3339),
            updated_at: rfc3339(row.updated_at),
            session_api_key_fingerprint: row.key_fingerprint.clone(),
            engine: row.engine,
            status_reason: row.status_reason.clone(),
            cloud: None,
        }
    }
}

/// A page of sessions.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionListView {
    pub data: Vec<SessionView>,
    /// Pass as `before_id` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A session key, raw only in the answer that minted it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionKeyView {
    /// The raw key (`wh_sk_…`): store it, it is never shown again.
    pub raw: String,
    pub fingerprint: String,
    pub created_at: String,
    /// The fingerprint of the key this one replaced (revoked at once), if any.
    pub previous_fingerprint: Option<String>,
}

/// The answer to a creation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatedSessionView {
    pub session: SessionView,
    pub session_api_key: SessionKeyView,
    pub warnings: Vec<String>,
}

/// The answer to a key rotation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotatedKeyView {
    pub session_api_key: SessionKeyView,
}

/// Session settings.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsView {
    pub session_settings: SessionSettings,
}

/// A long-running operation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperationView {
    pub operation_id: String,
    pub session_id: String,
    /// `delete_session`.
    pub operation_type: String,
    #[schema(value_type = String, example = "queued")]
    pub status: wharf_core::OperationStatus,
    pub enqueued_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub result: Option<String>,
    pub error: Option<String>,
    /// Where to poll for progress.
    pub status_url: String,
}

impl From<&OperationRow> for OperationView {
    fn from(op: &OperationRow) -> Self {
        Self {
            operation_id: op.id.to_string(),
            session_id: op.session_id.to_string(),
            operation_type: op.kind.clone(),
            status: op.status,
            enqueued_at: rfc3339(op.enqueued_at),
            started_at: op.started_at.map(rfc3339),
            finished_at: op.finished_at.map(rfc3339),
            result: op.result.clone(),
            error: op.error.clone(),
            status_url: format!("/v1/operations/{}", op.id),
        }
    }
}

/// The pairing QR.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QrView {
    /// The raw pairing payload, or a `data:image/png;base64,…` URI with `?format=image`.
    pub qr: String,
}

/// `POST /v1/whatsapp-sessions/{id}/pair-code` (Wharf extension, `web` sessions).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PairCodeBody {
    /// The number to link, in any common format (the phone that will type the code).
    pub phone_number: String,
}

/// A pair code: typed on the phone under Linked devices → Link with phone number, it links
/// the session like a QR scan. It lives about three minutes.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PairCodeView {
    /// Eight letters and digits, as WhatsApp shows them.
    pub code: String,
}

/// `POST /v1/whatsapp-sessions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionBody {
    /// A name for people; up to 100 characters.
    pub label: Option<String>,
    /// The number to link, in any common format; normalized to E.164.
    pub phone_number: Option<String>,
    /// Initial settings; absent ones take their defaults.
    pub settings: Option<SessionSettingsPatch>,
    /// Wharf extension: `emulator`, `cloud` or `web`; the server's default when absent.
    pub engine: Option<EngineKind>,
    /// Wharf extension, required with `engine: "cloud"`: the Graph credentials.
    pub cloud: Option<CloudBody>,
}

/// A cloud session's Graph credentials and settings.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloudBody {
    /// The Graph id of the phone number (digits; a JSON number is accepted too).
    #[serde(default, deserialize_with = "string_or_number")]
    #[schema(value_type = Option<String>)]
    pub phone_number_id: Option<String>,
    /// The WhatsApp Business Account id (digits).
    #[serde(default, deserialize_with = "string_or_number")]
    #[schema(value_type = Option<String>)]
    pub waba_id: Option<String>,
    /// A system-user access token; stored sealed, never returned.
    pub access_token: Option<String>,
    /// The Meta app's secret, which signs webhooks; stored sealed, never returned.
    pub app_secret: Option<String>,
    /// The token Meta's webhook verification handshake presents.
    pub verify_token: Option<String>,
    /// Default: the server's `cloud_graph_version` (`v23.0`).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub graph_version: Option<Option<String>>,
    /// Sends per second allowed, 1 to 1000; default: the server's `send_rate_cloud` (80).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub throughput_per_second: Option<Option<u32>>,
}

impl CloudBody {
    /// As the service takes it.
    pub fn input(self) -> crate::services::cloud::CloudInput {
        crate::services::cloud::CloudInput {
            phone_number_id: self.phone_number_id,
            waba_id: self.waba_id,
            access_token: self.access_token,
            app_secret: self.app_secret,
            verify_token: self.verify_token,
            graph_version: self.graph_version.map(|v| v.filter(|v| !v.is_empty())),
            throughput_per_second: self.throughput_per_second,
        }
    }
}

/// A Graph id given as a string or a JSON number.
fn string_or_number<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(u64),
    }
    Ok(Option::<Id>::deserialize(de)?.map(|id| match id {
        Id::Text(t) => t,
        Id::Number(n) => n.to_string(),
    }))
}

/// `PATCH /v1/whatsapp-sessions/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSessionBody {
    /// New label; `null` or `""` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub label: Option<Option<String>>,
    /// New number; `null` or `""` clears it. Cannot change while a device is linked.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub phone_number: Option<Option<String>>,
    pub settings: Option<SessionSettingsPatch>,
    /// Cloud sessions, while disconnected: any of the creation's `cloud` fields (a new
    /// `access_token` after one expired, …); `null` resets the optional ones to the defaults.
    pub cloud: Option<CloudBody>,
}

/// `POST /emulator/sessions/{id}/scan`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanBody {
    /// The scanning phone; defaults to the session's number or a made-up test number.
    pub phone_number: Option<String>,
}
