//! The SDK's session-level calls: `/api/status` (the caller's session), `/api/user` (the
//! linked account) and `/api/decrypt-media`. The session is chosen as for contacts.

use axum::{
    Json,
    body::Body,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use wharf_core::{EngineKind, SessionStatus};

use super::contacts::{SessionQuery, session_param};
use crate::{
    http::{
        AppState,
        error::{ApiError, ErrorBody},
        extract::{ApiJson, QueryPairs},
    },
    services::Caller,
};

type ApiResult<T> = Result<T, ApiError>;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_status))
        .routes(routes!(get_user))
        .routes(routes!(decrypt_media))
}

/// The caller's session status.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusView {
    pub session_id: String,
    pub status: SessionStatus,
    /// Whether it can send now.
    pub connected: bool,
    pub engine: EngineKind,
    /// E.164, once linked.
    pub phone_number: Option<String>,
}

/// The linked WhatsApp account.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserView {
    pub jid: String,
    pub phone_number: String,
    pub name: Option<String>,
    pub picture_url: Option<String>,
}

/// GET /api/status — the status of the caller's session.
#[utoipa::path(get, path = "/api/status", tag = "sessions", params(SessionQuery),
    responses((status = 200, body = StatusView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn get_status(
    State(app): State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> ApiResult<Json<StatusView>> {
    let session = session_param(&query, &[])?;
    let row = app.services.social.status(&caller, session).await?;
    Ok(Json(StatusView {
        session_id: row.id.to_string(),
        status: row.status,
        connected: row.status == SessionStatus::Connected,
        engine: row.engine,
        phone_number: row.phone_number.as_ref().map(|p| p.e164().to_owned()),
    }))
}

/// GET /api/user — the WhatsApp account the session is linked to: number, name, picture.
#[utoipa::path(get, path = "/api/user", tag = "sessions", params(SessionQuery),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn get_user(
    State(app): State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> ApiResult<Json<UserView>> {
    let session = session_param(&query, &[])?;
    let user = app.services.social.user(&caller, session).await?;
    Ok(Json(UserView {
        jid: user.jid.to_string(),
        phone_number: user.phone.e164().to_owned(),
        name: user.name,
        picture_url: user.picture_url,
    }))
}

/// GET /api/decrypt-media — a WhatsApp media reference the session received (the `media`
/// object of an inbound message: `url` or `directPath`, `mediaKey`, `mimetype`, …).
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct DecryptMediaBody {
    #[schema(value_type = Object)]
    pub message: Value,
}

/// POST /api/decrypt-media — downloads and decrypts a media reference the session
/// received; answers the file. Engines without WhatsApp media servers (the emulator, the
/// Cloud API, whose media is fetched by id) answer `unsupported_by_engine`.
#[utoipa::path(post, path = "/api/decrypt-media", tag = "messages", params(SessionQuery),
    request_body = DecryptMediaBody,
    responses((status = 200, description = "The decrypted file.", content_type = "application/octet-stream"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn decrypt_media(
    State(app): State<AppState>,
    caller: Caller,
    query: QueryPairs,
    ApiJson(body): ApiJson<serde_json::Map<String, Value>>,
) -> ApiResult<Response> {
    let session = session_param(&query, &[])?;
    if body.is_empty() {
        return Err(ApiError::invalid(
            "message",
            "required: the media reference to decrypt",
        ));
    }
    let (bytes, mime) = app
        .services
        .social
        .decrypt_media(&caller, session, &Value::Object(body))
        .await?;
    let mut response = Body::from(bytes).into_response();
    if let Ok(v) = HeaderValue::from_str(&mime) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    Ok(response)
}
