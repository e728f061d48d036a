//! The Messages folder of the Wapio API (`/api/send-message`, `/api/messages/…`,
//! `/api/send-presence-update`) and a session's message logs.

use axum::{
    Json,
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use wharf_core::{
    MessageId, SessionId,
    message::{Direction, MAX_TEXT_CHARS, MessageKind, MessageStatus, Presence},
    time::rfc3339,
};
use wharf_store::{EventRow, MessageRow};

use super::send::{SendMessageBody, parse_recipient};
use crate::{
    http::{
        AppState,
        error::{ApiError, ErrorBody},
        extract::{ApiJson, JsonBytes, QueryPairs, parse_json},
    },
    services::{
        Caller,
        messages::{SendAnswer, SendRequest},
    },
};

type ApiResult<T> = Result<T, ApiError>;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send_message))
        .routes(routes!(get_message_info))
        .routes(routes!(get_message_media))
        .routes(routes!(delete_message, edit_message_alias))
        .routes(routes!(edit_message))
        .routes(routes!(resend_message))
        .routes(routes!(mark_read))
        .routes(routes!(send_presence))
        .routes(routes!(list_message_logs))
}

/// A message as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageView {
    pub message_id: String,
    pub session_id: String,
    pub direction: Direction,
    pub chat_jid: String,
    /// The chat's linked identity (`…@lid`) when WhatsApp gave one; `chat_jid` is then the
    /// phone-number JID whenever that is known.
    pub chat_lid: Option<String>,
    pub sender_jid: Option<String>,
    /// The sender's linked identity, likewise.
    pub sender_lid: Option<String>,
    pub kind: MessageKind,
    /// The content, tagged with its `kind` (`text`, `media`, `location`, …).
    #[schema(value_type = Object)]
    pub content: Value,
    pub status: MessageStatus,
    pub provider_msg_id: Option<String>,
    pub quoted_message_id: Option<String>,
    pub failure_reason: Option<String>,
    pub accepted_at: String,
    pub sent_at: Option<String>,
    pub delivered_at: Option<String>,
    pub read_at: Option<String>,
    pub played_at: Option<String>,
    pub failed_at: Option<String>,
    pub deleted_at: Option<String>,
    pub edited_at: Option<String>,
    pub updated_at: String,
}

impl From<&MessageRow> for MessageView {
    fn from(m: &MessageRow) -> Self {
        Self {
            message_id: m.id.to_string(),
            session_id: m.session_id.to_string(),
            direction: m.direction,
            chat_jid: m.chat_jid.to_string(),
            chat_lid: m.chat_lid.clone(),
            sender_jid: m.sender_jid.clone(),
            sender_lid: m.sender_lid.clone(),
            kind: m.kind,
            content: serde_json::to_value(&m.content).unwrap_or(Value::Null),
            status: m.status,
            provider_msg_id: m.provider_msg_id.as_ref().map(ToString::to_string),
            quoted_message_id: m.quoted_message_id.map(|q| q.to_string()),
            failure_reason: m.failure_reason.clone(),
            accepted_at: rfc3339(m.accepted_at),
            sent_at: m.sent_at.map(rfc3339),
            delivered_at: m.delivered_at.map(rfc3339),
            read_at: m.read_at.map(rfc3339),
            played_at: m.played_at.map(rfc3339),
            failed_at: m.failed_at.map(rfc3339),
            deleted_at: m.deleted_at.map(rfc3339),
            edited_at: m.edited_at.map(rfc3339),
            updated_at: rfc3339(m.updated_at),
        }
    }
}

/// The answer to a send.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendAnswerView {
    /// The WhatsApp message id when known at acceptance, else the Wharf id.
    #[serde(rename = "msgId")]
    pub msg_id: String,
    /// Wharf's id (`msg_…`), for `/api/messages/{id}/…`.
    pub message_id: String,
    pub jid: String,
    /// `queued`.
    pub status: String,
}

impl From<&SendAnswer> for SendAnswerView {
    fn from(a: &SendAnswer) -> Self {
        Self {
            msg_id: a
                .provider_id
                .as_ref()
                .map_or_else(|| a.message_id.to_string(), ToString::to_string),
            message_id: a.message_id.to_string(),
            jid: a.to.to_string(),
            status: a.status.as_str().to_owned(),
        }
    }
}

/// One event of a message's history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageEventView {
    pub event_id: String,
    pub event_type: String,
    /// The status the event recorded (`sent`, `delivered`, …) or what changed (`edited`).
    pub update_kind: String,
    pub emitted_at: String,
}

/// `GET /api/messages/{id}/info`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageInfoView {
    pub message_id: String,
    pub session_id: String,
    pub provider_msg_id: Option<String>,
    pub to: String,
    /// The chat's linked identity (`…@lid`) when WhatsApp gave one.
    pub chat_lid: Option<String>,
    pub kind: MessageKind,
    pub status: MessageStatus,
    pub direction: Direction,
    pub accepted_at: String,
    pub sent_at: Option<String>,
    pub delivered_at: Option<String>,
    pub read_at: Option<String>,
    pub played_at: Option<String>,
    pub deleted_at: Option<String>,
    pub failed_at: Option<String>,
    pub failure_reason: Option<String>,
    pub edited_at: Option<String>,
    pub attempts: i64,
    pub updated_at: String,
    pub events: Vec<MessageEventView>,
}

/// The "Dispatched" answer of message operations.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DispatchedView {
    pub success: bool,
    /// `Dispatched`.
    pub message: String,
    pub message_id: Option<String>,
}

fn dispatched(id: Option<MessageId>) -> Json<DispatchedView> {
    Json(DispatchedView {
        success: true,
        message: "Dispatched".into(),
        message_id: id.map(|i| i.to_string()),
    })
}

fn message_id(raw: &str) -> ApiResult<MessageId> {
    raw.parse().map_err(|_| ApiError::not_found("message"))
}

/// POST /api/send-message — queues a message of any kind; answers 202 once it is stored.
#[utoipa::path(post, path = "/api/send-message", tag = "messages", request_body = SendMessageBody,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$", description = "Same key and body: the first answer again, nothing new sent. Same key, other body: 409.")),
    responses((status = 202, body = SendAnswerView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody, description = "Invalid, or `unsupported_by_engine`."),
        (status = 429, body = ErrorBody)))]
async fn send_message(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBytes(body): JsonBytes,
) -> ApiResult<(StatusCode, Json<SendAnswerView>)> {
    let parsed: SendMessageBody = parse_json(&body)?;
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let key = v
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|k| !k.is_empty() && k.len() <= 255);
            Some(
                key.ok_or_else(|| {
                    ApiError::invalid("Idempotency-Key", "must be 1 to 255 visible characters")
                })?
                .to_owned(),
            )
        }
    };
    let req = SendRequest {
        session: parsed.session()?,
        to: parsed.recipient()?,
        content: parsed.content()?,
        quoted: parsed.quoted()?,
    };
    // Media the engine will fetch must pass the outbound policy.
    for (field, url) in parsed.media_urls(&req.content) {
        app.services.outbound.check_url(&field, &url).await?;
    }
    let answer = app
        .services
        .messages
        .send(&caller, req, key.map(|k| (k, body.to_vec())))
        .await?;
    Ok((StatusCode::ACCEPTED, Json(SendAnswerView::from(&answer))))
}

/// GET /api/messages/{id}/info — the message's delivery state and history.
#[utoipa::path(get, path = "/api/messages/{id}/info", tag = "messages", params(("id" = String, Path)),
    responses((status = 200, body = MessageInfoView), (status = 404, body = ErrorBody)))]
async fn get_message_info(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<MessageInfoView>> {
    let (m, events) = app
        .services
        .messages
        .info(&caller, message_id(&id)?)
        .await?;
    Ok(Json(MessageInfoView {
        message_id: m.id.to_string(),
        session_id: m.session_id.to_string(),
        provider_msg_id: m.provider_msg_id.as_ref().map(ToString::to_string),
        to: m.chat_jid.to_string(),
        chat_lid: m.chat_lid.clone(),
        kind: m.kind,
        status: m.status,
        direction: m.direction,
        accepted_at: rfc3339(m.accepted_at),
        sent_at: m.sent_at.map(rfc3339),
        delivered_at: m.delivered_at.map(rfc3339),
        read_at: m.read_at.map(rfc3339),
        played_at: m.played_at.map(rfc3339),
        deleted_at: m.deleted_at.map(rfc3339),
        failed_at: m.failed_at.map(rfc3339),
        failure_reason: m.failure_reason.clone(),
        edited_at: m.edited_at.map(rfc3339),
        attempts: m.attempts,
        updated_at: rfc3339(m.updated_at),
        events: events.iter().map(event_view).collect(),
    }))
}

/// GET /api/messages/{id}/media — the file of a received media message, decrypted, with its
/// type, length and name. Web sessions fetch it from WhatsApp's media servers (the session
/// must be connected); engines that keep no media reference answer `unsupported_by_engine`.
#[utoipa::path(get, path = "/api/messages/{id}/media", tag = "messages", params(("id" = String, Path)),
    responses((status = 200, description = "The file.", content_type = "application/octet-stream"),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody, description = "Not a media message, or `unsupported_by_engine`."),
        (status = 502, body = ErrorBody, description = "WhatsApp no longer has the file."),
        (status = 503, body = ErrorBody, description = "The session is not connected.")))]
async fn get_message_media(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let file = app
        .services
        .messages
        .media(&caller, message_id(&id)?)
        .await?;
    let length = file.bytes.len();
    let mut response = Body::from(file.bytes).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&file.mime_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&file.file_name)) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// `attachment` with the name in plain ASCII and, when it has more, in UTF-8 (RFC 6266).
fn content_disposition(name: &str) -> String {
    let plain: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " ._-()".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if plain == name {
        return format!("attachment; filename=\"{plain}\"");
    }
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{plain}\"; filename*=UTF-8''{encoded}")
}

fn event_view(e: &EventRow) -> MessageEventView {
    MessageEventView {
        event_id: e.id.clone(),
        event_type: e.kind.clone(),
        update_kind: e
            .kind
            .strip_prefix("message.")
            .unwrap_or(&e.kind)
            .to_owned(),
        emitted_at: rfc3339(e.created_at),
    }
}

/// DELETE /api/messages/{id} — revokes the message for everyone.
#[utoipa::path(delete, path = "/api/messages/{id}", tag = "messages", params(("id" = String, Path)),
    responses((status = 200, body = DispatchedView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn delete_message(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<DispatchedView>> {
    let id = message_id(&id)?;
    app.services.messages.delete(&caller, id).await?;
    Ok(dispatched(Some(id)))
}

/// `{"text"}` of an edit.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditBody {
    pub text: String,
}

async fn edit(
    app: AppState,
    caller: Caller,
    id: String,
    body: EditBody,
) -> ApiResult<Json<DispatchedView>> {
    let id = message_id(&id)?;
    if body.text.trim().is_empty() || body.text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::invalid(
            "text",
            format!("must be 1 to {MAX_TEXT_CHARS} characters"),
        ));
    }
    app.services.messages.edit(&caller, id, body.text).await?;
    Ok(dispatched(Some(id)))
}

/// POST /api/messages/{id}/edit — new text for a sent text message (within 15 minutes).
#[utoipa::path(post, path = "/api/messages/{id}/edit", tag = "messages", params(("id" = String, Path)), request_body = EditBody,
    responses((status = 200, body = DispatchedView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn edit_message(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<EditBody>,
) -> ApiResult<Json<DispatchedView>> {
    edit(app, caller, id, body).await
}

/// PUT /api/messages/{id} — alias of the edit.
#[utoipa::path(put, path = "/api/messages/{id}", tag = "messages", params(("id" = String, Path)), request_body = EditBody,
    responses((status = 200, body = DispatchedView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn edit_message_alias(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<EditBody>,
) -> ApiResult<Json<DispatchedView>> {
    edit(app, caller, id, body).await
}

/// POST /api/messages/{id}/resend — sends a failed message again.
#[utoipa::path(post, path = "/api/messages/{id}/resend", tag = "messages", params(("id" = String, Path)),
    responses((status = 200, body = DispatchedView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn resend_message(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<DispatchedView>> {
    let id = message_id(&id)?;
    app.services.messages.resend(&caller, id).await?;
    Ok(dispatched(Some(id)))
}

/// `POST /api/messages/read`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadBody {
    /// Received messages (`msg_…`) of one chat, 1 to 100.
    #[schema(min_items = 1, max_items = 100)]
    pub message_ids: Vec<String>,
    pub chat_jid: String,
}

/// POST /api/messages/read — sends read receipts for received messages.
#[utoipa::path(post, path = "/api/messages/read", tag = "messages", request_body = ReadBody,
    responses((status = 200, body = DispatchedView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn mark_read(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ReadBody>,
) -> ApiResult<Json<DispatchedView>> {
    if body.message_ids.is_empty() || body.message_ids.len() > 100 {
        return Err(ApiError::invalid(
            "message_ids",
            "must list 1 to 100 message ids",
        ));
    }
    let ids = body
        .message_ids
        .iter()
        .enumerate()
        .map(|(i, m)| {
            m.parse().map_err(|_| {
                ApiError::invalid(&format!("message_ids[{i}]"), "must be a message id (msg_…)")
            })
        })
        .collect::<ApiResult<Vec<MessageId>>>()?;
    let chat = parse_recipient("chat_jid", &body.chat_jid)?;
    app.services.messages.mark_read(&caller, ids, chat).await?;
    Ok(dispatched(None))
}

/// `POST /api/send-presence-update`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresenceBody {
    /// Required with a PAT.
    pub session_id: Option<String>,
    /// The chat to show it in; without it, the presence is global (available/unavailable).
    pub to: Option<String>,
    pub presence: Presence,
}

/// POST /api/send-presence-update — shows typing, recording, paused or online status.
#[utoipa::path(post, path = "/api/send-presence-update", tag = "messages", request_body = PresenceBody,
    responses((status = 200, body = DispatchedView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn send_presence(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<PresenceBody>,
) -> ApiResult<Json<DispatchedView>> {
    let choice = SendMessageBody {
        session_id: body.session_id.clone(),
        ..Default::default()
    }
    .session()?;
    let to = body
        .to
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(|t| parse_recipient("to", t))
        .transpose()?;
    if to.is_none()
        && matches!(
            body.presence,
            Presence::Composing | Presence::Recording | Presence::Paused
        )
    {
        return Err(ApiError::invalid(
            "to",
            "required for composing, recording and paused",
        ));
    }
    app.services
        .messages
        .presence(&caller, choice, to, body.presence)
        .await?;
    Ok(dispatched(None))
}

/// A page of messages.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageListView {
    pub data: Vec<MessageView>,
    pub next_cursor: Option<String>,
}

/// GET /api/whatsapp-sessions/{id}/message-logs — the session's messages, newest first.
#[utoipa::path(get, path = "/api/whatsapp-sessions/{id}/message-logs", tag = "messages",
    params(("id" = String, Path),
        ("direction" = Option<Direction>, Query, description = "`in` or `out`."),
        ("chat" = Option<String>, Query, description = "Only this chat (phone or JID)."),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1..100, default 50."),
        ("before_id" = Option<String>, Query, description = "Cursor: `next_cursor` of the previous page.")),
    responses((status = 200, body = MessageListView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_message_logs(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<MessageListView>> {
    let session: SessionId = id.parse().map_err(|_| ApiError::not_found("session"))?;
    query.only(&["direction", "chat", "chat_jid", "limit", "before_id"])?;
    let direction = query
        .get("direction")
        .map(|d| {
            Direction::parse(d)
                .ok_or_else(|| ApiError::invalid("direction", "must be `in` or `out`"))
        })
        .transpose()?;
    let chat = match (query.get("chat"), query.get("chat_jid")) {
        (Some(c), _) => Some(parse_recipient("chat", c)?),
        (None, Some(c)) => Some(parse_recipient("chat_jid", c)?),
        (None, None) => None,
    };
    let limit = query.limit()?;
    let before = query
        .get("before_id")
        .map(|b| {
            b.parse::<MessageId>()
                .map_err(|_| ApiError::invalid("before_id", "must be a message id (msg_…)"))
        })
        .transpose()?;
    let page = app
        .services
        .messages
        .logs(&caller, session, direction, chat, before, limit)
        .await?;
    Ok(Json(MessageListView {
        data: page.messages.iter().map(MessageView::from).collect(),
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}
