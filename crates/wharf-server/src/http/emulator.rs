//! The emulator's control surface: what a person with a phone would do, for trying Wharf
//! and for tests. Authenticated like the session's own routes; off with
//! `--no-emulator-control`.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use wharf_core::{MessageId, message::ReceiptKind};
use wharf_core::{Phone, SessionId};
use wharf_engines::emulator::{ContactSetup, FailurePlan};

use super::{
    AppState,
    error::{ApiError, ErrorBody},
    extract::{ApiJson, JsonBytes, parse_json},
    wapio::{
        send::{SendMessageBody, parse_recipient},
        views::{ScanBody, SessionView},
    },
};
use crate::services::Caller;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(scan_qr))
        .routes(routes!(logout_from_phone))
        .routes(routes!(inject_inbound))
        .routes(routes!(edit_inbound))
        .routes(routes!(revoke_inbound))
        .routes(routes!(set_failures))
        .routes(routes!(set_contact))
        .routes(routes!(create_channel))
        .routes(routes!(set_group_picture))
        .routes(routes!(send_receipt))
        .routes(routes!(chat_as_seen))
}

fn session_id(raw: &str) -> Result<SessionId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found("session"))
}

/// POST /emulator/sessions/{id}/scan — a phone scans the session's QR; the session connects.
#[utoipa::path(post, path = "/emulator/sessions/{id}/scan", tag = "emulator", params(("id" = String, Path)),
    request_body = Option<ScanBody>,
    responses((status = 200, body = SessionView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Not waiting for a scan."),
        (status = 422, body = ErrorBody, description = "Invalid phone, or `unsupported_by_engine` for a session of another engine.")))]
async fn scan_qr(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ScanBody>,
) -> Result<Json<SessionView>, ApiError> {
    let phone = body
        .phone_number
        .filter(|p| !p.trim().is_empty())
        .map(|p| Phone::parse(&p).map_err(|e| ApiError::invalid("phone_number", e.to_string())))
        .transpose()?;
    let row = app
        .services
        .sessions
        .emulator_scan(&caller, session_id(&id)?, phone)
        .await?;
    Ok(Json(SessionView::from(&row)))
}

/// POST /emulator/sessions/{id}/logout — the phone removes the linked device; the session
/// disconnects and needs a new QR scan.
#[utoipa::path(post, path = "/emulator/sessions/{id}/logout", tag = "emulator", params(("id" = String, Path)),
    responses((status = 200, body = SessionView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn logout_from_phone(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SessionView>, ApiError> {
    let row = app
        .services
        .sessions
        .emulator_logout(&caller, session_id(&id)?)
        .await?;
    Ok(Json(SessionView::from(&row)))
}

/// `POST /emulator/sessions/{id}/inbound`: a user writes to the session. `from` is a phone or
/// JID; `chat` (a group or channel JID) when it is written there; `quoted_message_id` (a
/// `msg_…` of this session) when it replies; the other fields are the content fields of
/// `/api/send-message` (`text`, `imageUrl`, `location`, …).
/// (Parsed by hand: see `inject_inbound`; this type documents the body.)
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct InboundBody {
    pub from: String,
    /// The writer's linked identity (`digits@lid`), when WhatsApp names them by one too.
    pub from_lid: Option<String>,
    pub chat: Option<String>,
    pub quoted_message_id: Option<String>,
    pub text: Option<String>,
}

/// The WhatsApp id of an injected message.
#[derive(Debug, Serialize, ToSchema)]
pub struct InjectedView {
    pub provider_msg_id: String,
}

/// POST /emulator/sessions/{id}/inbound — a user of the emulated network sends the session a
/// message (any kind); it arrives as `message.received`.
#[utoipa::path(post, path = "/emulator/sessions/{id}/inbound", tag = "emulator", params(("id" = String, Path)),
    request_body = InboundBody,
    responses((status = 202, body = InjectedView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn inject_inbound(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBytes(body): JsonBytes,
) -> Result<(StatusCode, Json<InjectedView>), ApiError> {
    // `from` and `chat` are taken out; the rest is a send-message body without recipient.
    let mut fields: serde_json::Map<String, serde_json::Value> = parse_json(&body)?;
    let text_of = |v: Option<serde_json::Value>, field: &str| -> Result<Option<String>, ApiError> {
        match v {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::invalid(field, "must be a string")),
        }
    };
    let from = text_of(fields.remove("from"), "from")?
        .ok_or_else(|| ApiError::invalid("from", "required: who writes"))?;
    let from = parse_recipient("from", &from)?;
    let chat = text_of(fields.remove("chat"), "chat")?
        .map(|c| parse_recipient("chat", &c))
        .transpose()?;
    let from_lid = text_of(fields.remove("from_lid"), "from_lid")?
        .filter(|l| !l.is_empty())
        .map(|l| match wharf_core::Jid::parse(&l) {
            Ok(jid) if jid.server() == wharf_core::jid::JidServer::Lid => Ok(jid),
            _ => Err(ApiError::invalid(
                "from_lid",
                "must be a linked identity JID (digits@lid)",
            )),
        })
        .transpose()?;
    let quoted = text_of(fields.remove("quoted_message_id"), "quoted_message_id")?
        .filter(|q| !q.is_empty())
        .map(|q| {
            q.parse::<MessageId>()
                .map_err(|_| ApiError::invalid("quoted_message_id", "must be a message id (msg_…)"))
        })
        .transpose()?;
    for field in ["session_id", "to", "channel_id"] {
        if fields.contains_key(field) {
            return Err(ApiError::invalid(
                field,
                "does not apply to an injected message (it comes from `from`)",
            ));
        }
    }
    let message: SendMessageBody =
        parse_json(serde_json::Value::Object(fields).to_string().as_bytes())?;
    let content = message.content()?;
    let (row, emulator) = app
        .services
        .sessions
        .emulator_session(&caller, session_id(&id)?)
        .await?;
    // A reply names a message of this session that has a WhatsApp id.
    let quoted = match quoted {
        Some(id) => Some(
            app.services
                .messages
                .of_session(&caller, row.id, id)
                .await?
                .and_then(|m| m.provider_msg_id)
                .ok_or_else(|| {
                    ApiError::invalid(
                        "quoted_message_id",
                        "no message of this session with a WhatsApp id",
                    )
                })?,
        ),
        None => None,
    };
    let provider_msg_id = match from_lid {
        Some(lid) => {
            emulator
                .inbound_with_lid(row.id, from, lid, chat, content, quoted)
                .await
        }
        None => emulator.inbound(row.id, from, chat, content, quoted).await,
    }
    .map_err(not_connected)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(InjectedView {
            provider_msg_id: provider_msg_id.into_string(),
        }),
    ))
}

/// `POST /emulator/sessions/{id}/inbound/{provider_msg_id}/edit`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundEditBody {
    /// The new text.
    pub text: String,
}

/// POST /emulator/sessions/{id}/inbound/{provider_msg_id}/edit — the writer of a message the
/// session received edits it; it arrives as `message.edited`.
#[utoipa::path(post, path = "/emulator/sessions/{id}/inbound/{provider_msg_id}/edit", tag = "emulator",
    params(("id" = String, Path), ("provider_msg_id" = String, Path)),
    request_body = InboundEditBody,
    responses((status = 202), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Not connected, or no such received message that can change."),
        (status = 422, body = ErrorBody)))]
async fn edit_inbound(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, provider_msg_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<InboundEditBody>,
) -> Result<StatusCode, ApiError> {
    if body.text.trim().is_empty() {
        return Err(ApiError::invalid("text", "must not be empty"));
    }
    let (row, emulator) = app
        .services
        .sessions
        .emulator_session(&caller, session_id(&id)?)
        .await?;
    emulator
        .inbound_change(row.id, &provider_msg_id.into(), Some(body.text))
        .await
        .map_err(not_connected)?;
    Ok(StatusCode::ACCEPTED)
}

/// POST /emulator/sessions/{id}/inbound/{provider_msg_id}/revoke — the writer of a message
/// the session received deletes it for everyone; it arrives as `message.deleted`.
#[utoipa::path(post, path = "/emulator/sessions/{id}/inbound/{provider_msg_id}/revoke", tag = "emulator",
    params(("id" = String, Path), ("provider_msg_id" = String, Path)),
    responses((status = 202), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Not connected, or no such received message that can change.")))]
async fn revoke_inbound(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, provider_msg_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (row, emulator) = app
        .services
        .sessions
        .emulator_session(&caller, session_id(&id)?)
        .await?;
    emulator
        .inbound_change(row.id, &provider_msg_id.into(), None)
        .await
        .map_err(not_connected)?;
    Ok(StatusCode::ACCEPTED)
}

fn not_connected(e: wharf_core::EngineError) -> ApiError {
    match e {
        wharf_core::EngineError::Transient(m) => {
            ApiError::new(StatusCode::CONFLICT, "session_not_connected", m)
        }
        other => crate::ServiceError::from(other).into(),
    }
}

/// `POST /emulator/sessions/{id}/failures`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailuresBody {
    /// `retryable` (the dispatcher retries with backoff), `permanent` (the message fails at
    /// once), or `none` to stop failing.
    #[schema(pattern = "^(retryable|permanent|none)$")]
    pub mode: String,
    /// How many sends fail; absent means every send until changed.
    #[schema(minimum = 1)]
    pub count: Option<u32>,
    /// What the failure says (default: "emulated failure").
    pub reason: Option<String>,
}

/// POST /emulator/sessions/{id}/failures — makes the session's next sends fail.
#[utoipa::path(post, path = "/emulator/sessions/{id}/failures", tag = "emulator", params(("id" = String, Path)),
    request_body = FailuresBody,
    responses((status = 204, description = "Set."), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn set_failures(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<FailuresBody>,
) -> Result<StatusCode, ApiError> {
    let retryable = match body.mode.as_str() {
        "retryable" => Some(true),
        "permanent" => Some(false),
        "none" => None,
        _ => {
            return Err(ApiError::invalid(
                "mode",
                "must be retryable, permanent or none",
            ));
        }
    };
    if body.count == Some(0) {
        return Err(ApiError::invalid(
            "count",
            "must be at least 1 (or absent for every send)",
        ));
    }
    let (row, emulator) = app
        .services
        .sessions
        .emulator_session(&caller, session_id(&id)?)
        .await?;
    let plan = retryable.map(|retryable| FailurePlan {
        retryable,
        remaining: body.count,
        reason: body.reason.unwrap_or_else(|| "emulated failure".into()),
    });
    emulator.set_failures(row.id, plan);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /emulator/sessions/{id}/contacts`: what the session's phone knows of one number;
/// absent fields stay as they were.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactStateBody {
    pub phone: String,
    /// `false`: the number has no WhatsApp account (sends to it fail for good, groups refuse
    /// it, `/api/on-whatsapp` says so).
    pub on_whatsapp: Option<bool>,
    /// `true`: its privacy settings forbid adding it to groups (`privacy_restricted`).
    pub privacy_restricted: Option<bool>,
    /// A name in the phone's address book (`""` removes it): the contact is then listed.
    pub name: Option<String>,
    /// Its profile picture URL (`""`: none, or hidden from the session).
    pub picture_url: Option<String>,
}

/// POST /emulator/sessions/{id}/contacts — sets what the session's phone knows of a number:
/// whether it is on WhatsApp, privacy-restricted, in the address book, its picture.
#[utoipa::path(post, path = "/emulator/sessions/{id}/contacts", tag = "emulator", params(("id" = String, Path)),
    request_body = ContactStateBody,
    responses((status = 204, description = "Set."), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn set_contact(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ContactStateBody>,
) -> Result<StatusCode, ApiError> {
    let phone = Phone::parse(&body.phone).map_err(|e| ApiError::invalid("phone", e.to_string()))?;
    if body.name.as_ref().is_some_and(|n| n.chars().count() > 256) {
        return Err(ApiError::invalid("name", "at most 256 characters"));
    }
    if let Some(url) = body.picture_url.as_deref().filter(|u| !u.is_empty())
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        return Err(ApiError::invalid("picture_url", "must be an http(s) URL"));
    }
    let (row, emulator) = app
        .services
        .sessions
        .emulator_session(&caller, session_id(&id)?)
        .await?;
    emulator.set_contact(
        row.id,
        phone,
        ContactSetup {
            on_whatsapp: body.on_whatsapp,
            privacy_restricted: body.privacy_restricted,
            name: body.name,
            picture_url: body.picture_url,
        },
    );
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /emulator/sessions/{id}/channels`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelBody {
    pub name: String,
    pub description: Option<String>,
}

/// A channel made on the emulated network.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedChannelView {
    pub jid: String,
}

/// POST /emulator/sessions/{id}/channels — makes a channel owned by the session (it may post
/// in it; other sessions may follow it and receive its posts).
#[utoipa::path(post, path = "/emulator/sessions/{id}/channels", tag = "emulator", params(("id" = String, Path)),
    request_body = ChannelBody,
    responses((status = 201, body = CreatedChannelView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn create_channel(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ChannelBody>,
) -> Result<(StatusCode, Json<CreatedChannelView>), ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid(
            "name",
            "required, at most 100 characters",
        ));
    }
    let (row, emulator) = app
        .services
        .sessions
        .emulator_session(&caller, session_id(&id)?)
        .await?;
    let jid = emulator
        .create_channel(row.id, name, body.description)
        .map_err(not_connected)?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedChannelView {
            jid: jid.to_string(),
        }),
    ))
}

/// `POST /emulator/sessions/{id}/groups/{group}/picture`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupPictureBody {
    /// The picture's URL; `null` removes it.
    pub url: Option<String>,
}

/// POST /emulator/sessions/{id}/groups/{group}/picture — the session's phone sets the
/// group's picture (as a member may from the phone).
#[utoipa::path(post, path = "/emulator/sessions/{id}/groups/{group}/picture", tag = "emulator",
    params(("id" = String, Path), ("group" = String, Path)), request_body = GroupPictureBody,
    responses((status = 204, description = "Set."), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn set_group_picture(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, group)): Path<(String, String)>,
    ApiJson(body): ApiJson<GroupPictureBody>,
) -> Result<StatusCode, ApiError> {
    let group = match wharf_core::Jid::parse(&group) {
        Ok(j) if j.server() == wharf_core::jid::JidServer::Group => j,
        _ => {
            return Err(ApiError::invalid(
                "group",
                "must be a group JID ending in @g.us",
            ));
        }
    };
    if let Some(url) = body.url.as_deref()
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        return Err(ApiError::invalid("url", "must be an http(s) URL"));
    }
    let (row, emulator) = app
        .services
        .sessions
        .emulator_session(&caller, session_id(&id)?)
        .await?;
    emulator
        .set_group_picture(row.id, &group, body.url)
        .map_err(not_connected)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /emulator/sessions/{id}/receipts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptBody {
    /// The message (`msg_…`) the session sent.
    pub message_id: String,
    /// `delivered`, `read` or `played`.
    #[schema(value_type = String, pattern = "^(delivered|read|played)$")]
    pub status: ReceiptKind,
}

/// POST /emulator/sessions/{id}/receipts — the recipient's phone sends a receipt now (in any
/// order, any number of times).
#[utoipa::path(post, path = "/emulator/sessions/{id}/receipts", tag = "emulator", params(("id" = String, Path)),
    request_body = ReceiptBody,
    responses((status = 202, description = "Sent."), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn send_receipt(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReceiptBody>,
) -> Result<StatusCode, ApiError> {
    let message: MessageId = body
        .message_id
        .parse()
        .map_err(|_| ApiError::invalid("message_id", "must be a message id (msg_…)"))?;
    let (row, emulator) = app
        .services
        .sessions
        .emulator_session(&caller, session_id(&id)?)
        .await?;
    let sent = app
        .services
        .messages
        .of_session(&caller, row.id, message)
        .await?
        .filter(|m| m.direction == wharf_core::message::Direction::Out)
        .and_then(|m| m.provider_msg_id.filter(|_| m.sent_at.is_some()))
        .ok_or_else(|| ApiError::invalid("message_id", "no message this session has sent"))?;
    emulator
        .receipt(row.id, sent, body.status)
        .await
        .map_err(not_connected)?;
    Ok(StatusCode::ACCEPTED)
}

/// A message as the emulated contact's phone shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeenMessageView {
    /// Its WhatsApp id.
    pub provider_msg_id: String,
    /// `out`: the session sent it; `in`: the contact wrote it.
    pub direction: String,
    /// What the phone shows (`null` once revoked).
    #[schema(value_type = Option<Object>)]
    pub content: Option<serde_json::Value>,
    pub edited: bool,
    pub revoked: bool,
    /// For a message the contact wrote: the session marked it read.
    pub read: bool,
}

/// The messages of one chat, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeenChatView {
    pub data: Vec<SeenMessageView>,
}

/// GET /emulator/sessions/{id}/chats/{chat} — the chat as the contact's phone shows it (a
/// phone number or JID): the session's messages with their edits and revocations, the
/// contact's own with the session's read marks. Kept in memory (the last 10,000 messages of
/// a session), so a restart forgets it.
#[utoipa::path(get, path = "/emulator/sessions/{id}/chats/{chat}", tag = "emulator",
    params(("id" = String, Path), ("chat" = String, Path)),
    responses((status = 200, body = SeenChatView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn chat_as_seen(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, chat)): Path<(String, String)>,
) -> Result<Json<SeenChatView>, ApiError> {
    let chat = parse_recipient("chat", &chat)?;
    let (row, emulator) = app
        .services
        .sessions
        .emulator_session(&caller, session_id(&id)?)
        .await?;
    let data = emulator
        .seen(row.id, &chat)
        .into_iter()
        .map(|m| SeenMessageView {
            provider_msg_id: m.provider_id.into_string(),
            direction: if m.from_session { "out" } else { "in" }.to_owned(),
            content: m.content.and_then(|c| serde_json::to_value(c).ok()),
            edited: m.edited,
            revoked: m.revoked,
            read: m.read,
        })
        .collect();
    Ok(Json(SeenChatView { data }))
}
