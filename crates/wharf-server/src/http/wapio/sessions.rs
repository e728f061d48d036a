//! The Sessions folder of the Wapio API (`/v1/whatsapp-sessions…`) and `/v1/operations`.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use utoipa_axum::{router::OpenApiRouter, routes};
use wharf_core::{
    OperationId, Phone, SessionId, SessionStatus, session::SessionSettingsPatch, time::rfc3339,
};

use super::views::*;
use crate::{
    ServiceError,
    http::{
        AppState,
        auth::PatCaller,
        error::{ApiError, ErrorBody},
        extract::{ApiJson, QueryPairs},
    },
    services::{Caller, CreateSession, UpdateSession, sessions::parse_label},
};

type ApiResult<T> = Result<T, ApiError>;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sessions, create_session))
        .routes(routes!(get_session, update_session, delete_session))
        .routes(routes!(connect_session))
        .routes(routes!(disconnect_session))
        .routes(routes!(restart_session))
        .routes(routes!(get_qrcode))
        .routes(routes!(pair_code))
        .routes(routes!(regenerate_key))
        .routes(routes!(get_settings, update_settings))
        .routes(routes!(get_operation))
}

/// A session id from the path; one that cannot exist is simply not found.
fn session_id(raw: &str) -> ApiResult<SessionId> {
    raw.parse().map_err(|_| ApiError::not_found("session"))
}

fn phone_field(field: &str, raw: &str) -> ApiResult<Option<Phone>> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    Phone::parse(raw)
        .map(Some)
        .map_err(|e| ApiError::invalid(field, e.to_string()))
}

fn key_view(
    key: &wharf_core::NewToken,
    created_at: i64,
    previous: Option<String>,
) -> SessionKeyView {
    SessionKeyView {
        raw: key.raw.clone(),
        fingerprint: key.fingerprint.clone(),
        created_at: rfc3339(created_at),
        previous_fingerprint: previous,
    }
}

/// GET /v1/whatsapp-sessions — lists the caller's sessions, newest first.
#[utoipa::path(get, path = "/v1/whatsapp-sessions", tag = "sessions",
    params(
        ("status" = Option<SessionStatus>, Query, description = "Only sessions in this status; without it, every status but `deleted`."),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size, 1..100 (default 50)."),
        ("before_id" = Option<String>, Query, description = "Cursor: the `next_cursor` of the previous page."),
    ),
    responses(
        (status = 200, body = SessionListView, description = "A page of sessions; a session key sees only its own."),
        (status = 401, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
    ))]
async fn list_sessions(
    State(app): State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> ApiResult<Json<SessionListView>> {
    query.only(&["status", "limit", "before_id"])?;
    let status = query
        .get("status")
        .map(|s| {
            SessionStatus::parse(s).ok_or_else(|| {
                ApiError::invalid(
                    "status",
                    "must be one of pending, connecting, connected, disconnected, pending_deletion, deleted",
                )
            })
        })
        .transpose()?;
    let limit = match query.get("limit") {
        None => 50,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| ApiError::invalid("limit", "must be an integer from 1 to 100"))?,
    };
    let before = query
        .get("before_id")
        .map(|b| {
            b.parse::<SessionId>()
                .map_err(|_| ApiError::invalid("before_id", "must be a session id (sess_…)"))
        })
        .transpose()?;
    let page = app
        .services
        .sessions
        .list(&caller, status, before, limit)
        .await?;
    Ok(Json(SessionListView {
        data: page.sessions.iter().map(SessionView::from).collect(),
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

/// POST /v1/whatsapp-sessions — creates a session (PAT only).
#[utoipa::path(post, path = "/v1/whatsapp-sessions", tag = "sessions", request_body = Option<CreateSessionBody>,
    responses(
        (status = 201, body = CreatedSessionView, description = "Created; `session_api_key.raw` is shown only now."),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody),
    ))]
async fn create_session(
    State(app): State<AppState>,
    PatCaller(caller): PatCaller,
    ApiJson(body): ApiJson<CreateSessionBody>,
) -> ApiResult<(StatusCode, Json<CreatedSessionView>)> {
    let req = CreateSession {
        label: body
            .label
            .as_deref()
            .map(parse_label)
            .transpose()?
            .flatten(),
        phone_number: body
            .phone_number
            .as_deref()
            .map(|p| phone_field("phone_number", p))
            .transpose()?
            .flatten(),
        settings: body.settings.unwrap_or_default(),
        engine: body.engine,
        cloud: body.cloud.map(CloudBody::input),
    };
    let created = app.services.sessions.create(&caller, req).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedSessionView {
            session: view_one(&app, &created.session).await?,
            session_api_key: key_view(&created.key, created.session.created_at, None),
            warnings: created.warnings,
        }),
    ))
}

/// GET /v1/whatsapp-sessions/{id} — one session.
#[utoipa::path(get, path = "/v1/whatsapp-sessions/{id}", tag = "sessions", params(("id" = String, Path)),
    responses((status = 200, body = SessionView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_session(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionView>> {
    let row = app.services.sessions.get(&caller, session_id(&id)?).await?;
    Ok(Json(view_one(&app, &row).await?))
}

/// A session with its cloud settings, for the answers about one session.
async fn view_one(app: &AppState, row: &wharf_store::SessionRow) -> ApiResult<SessionView> {
    let mut view = SessionView::from(row);
    if row.engine == wharf_core::EngineKind::Cloud {
        view.cloud = app
            .services
            .cloud
            .summary(row.account_id, row.id)
            .await?
            .map(CloudView::from);
    }
    Ok(view)
}

/// PATCH /v1/whatsapp-sessions/{id} — updates label, phone number and settings.
#[utoipa::path(patch, path = "/v1/whatsapp-sessions/{id}", tag = "sessions", params(("id" = String, Path)),
    request_body = Option<UpdateSessionBody>,
    responses((status = 200, body = SessionView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_session(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateSessionBody>,
) -> ApiResult<Json<SessionView>> {
    let id = session_id(&id)?;
    let req = UpdateSession {
        label: body
            .label
            .map(|l| {
                l.as_deref()
                    .map(parse_label)
                    .transpose()
                    .map(Option::flatten)
            })
            .transpose()?,
        phone_number: body
            .phone_number
            .map(|p| {
                p.as_deref()
                    .map(|p| phone_field("phone_number", p))
                    .transpose()
                    .map(Option::flatten)
            })
            .transpose()?,
        settings: body.settings,
        cloud: body.cloud.map(CloudBody::input),
    };
    let row = app.services.sessions.update(&caller, id, req).await?;
    Ok(Json(view_one(&app, &row).await?))
}

/// DELETE /v1/whatsapp-sessions/{id} — queues deletion and revokes the session key at once
/// (PAT only).
#[utoipa::path(delete, path = "/v1/whatsapp-sessions/{id}", tag = "sessions", params(("id" = String, Path)),
    responses((status = 202, body = OperationView, description = "Deletion queued; poll `status_url`."),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn delete_session(
    State(app): State<AppState>,
    PatCaller(caller): PatCaller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<OperationView>)> {
    let op = app
        .services
        .sessions
        .delete(&caller, session_id(&id)?)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(OperationView::from(&op))))
}

/// POST /v1/whatsapp-sessions/{id}/connect — starts a disconnected session.
#[utoipa::path(post, path = "/v1/whatsapp-sessions/{id}/connect", tag = "sessions", params(("id" = String, Path)),
    responses((status = 200, body = SessionView, description = "Worker dispatched; the session as it now stands."),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn connect_session(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionView>> {
    let row = app
        .services
        .sessions
        .connect(&caller, session_id(&id)?)
        .await?;
    Ok(Json(SessionView::from(&row)))
}

/// POST /v1/whatsapp-sessions/{id}/disconnect — stops a running session, keeping its link.
#[utoipa::path(post, path = "/v1/whatsapp-sessions/{id}/disconnect", tag = "sessions", params(("id" = String, Path)),
    responses((status = 200, body = SessionView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn disconnect_session(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionView>> {
    let row = app
        .services
        .sessions
        .disconnect(&caller, session_id(&id)?)
        .await?;
    Ok(Json(SessionView::from(&row)))
}

/// POST /v1/whatsapp-sessions/{id}/restart — restarts a running session's worker.
#[utoipa::path(post, path = "/v1/whatsapp-sessions/{id}/restart", tag = "sessions", params(("id" = String, Path)),
    responses((status = 200, body = SessionView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn restart_session(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionView>> {
    let row = app
        .services
        .sessions
        .restart(&caller, session_id(&id)?)
        .await?;
    Ok(Json(SessionView::from(&row)))
}

/// GET /v1/whatsapp-sessions/{id}/qrcode — the pairing QR while the session is pairing.
#[utoipa::path(get, path = "/v1/whatsapp-sessions/{id}/qrcode", tag = "sessions",
    params(("id" = String, Path), ("format" = Option<String>, Query, pattern = "^(text|string|image|png)$", description = "`text` (default; also `string`) or `image` (also `png`) for a PNG data URI.")),
    responses((status = 200, body = QrView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn get_qrcode(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<QrView>> {
    query.only(&["format"])?;
    let image = match query.get("format") {
        None | Some("text") | Some("string") => false,
        Some("image") | Some("png") => true,
        Some(_) => return Err(ApiError::invalid("format", "must be `text` or `image`")),
    };
    let code = app
        .services
        .sessions
        .qr_code(&caller, session_id(&id)?)
        .await?;
    let qr = if image {
        let png =
            super::qr_png::render(&code).map_err(|e| ServiceError::Internal(anyhow::anyhow!(e)))?;
        format!("data:image/png;base64,{}", STANDARD.encode(png))
    } else {
        code
    };
    Ok(Json(QrView { qr }))
}

/// POST /v1/whatsapp-sessions/{id}/pair-code — Wharf extension for `web` sessions: a code to
/// type on the phone instead of scanning the QR, while the session is pairing.
#[utoipa::path(post, path = "/v1/whatsapp-sessions/{id}/pair-code", tag = "sessions",
    params(("id" = String, Path)), request_body = PairCodeBody,
    responses((status = 200, body = PairCodeView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn pair_code(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PairCodeBody>,
) -> ApiResult<Json<PairCodeView>> {
    let phone = phone_field("phone_number", &body.phone_number)?
        .ok_or_else(|| ApiError::invalid("phone_number", "is required"))?;
    let code = app
        .services
        .sessions
        .pair_code(&caller, session_id(&id)?, &phone)
        .await?;
    Ok(Json(PairCodeView { code }))
}

/// POST /v1/whatsapp-sessions/{id}/regenerate-key — mints a new session key and revokes the
/// old one at once (PAT only).
#[utoipa::path(post, path = "/v1/whatsapp-sessions/{id}/regenerate-key", tag = "sessions", params(("id" = String, Path)),
    responses((status = 200, body = RotatedKeyView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn regenerate_key(
    State(app): State<AppState>,
    PatCaller(caller): PatCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<RotatedKeyView>> {
    let rotated = app
        .services
        .sessions
        .regenerate_key(&caller, session_id(&id)?)
        .await?;
    Ok(Json(RotatedKeyView {
        session_api_key: key_view(
            &rotated.key,
            rotated.session.updated_at,
            rotated.previous_fingerprint,
        ),
    }))
}

/// GET /v1/whatsapp-sessions/{id}/settings — the session's operational settings.
#[utoipa::path(get, path = "/v1/whatsapp-sessions/{id}/settings", tag = "sessions", params(("id" = String, Path)),
    responses((status = 200, body = SettingsView), (status = 404, body = ErrorBody)))]
async fn get_settings(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SettingsView>> {
    let settings = app
        .services
        .sessions
        .settings(&caller, session_id(&id)?)
        .await?;
    Ok(Json(SettingsView {
        session_settings: settings,
    }))
}

/// PATCH /v1/whatsapp-sessions/{id}/settings — changes some settings.
#[utoipa::path(patch, path = "/v1/whatsapp-sessions/{id}/settings", tag = "sessions", params(("id" = String, Path)),
    request_body = Option<SessionSettingsPatch>,
    responses((status = 200, body = SettingsView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn update_settings(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<SessionSettingsPatch>,
) -> ApiResult<Json<SettingsView>> {
    let settings = app
        .services
        .sessions
        .update_settings(&caller, session_id(&id)?, patch)
        .await?;
    Ok(Json(SettingsView {
        session_settings: settings,
    }))
}

/// GET /v1/operations/{id} — progress of a long-running operation.
#[utoipa::path(get, path = "/v1/operations/{id}", tag = "sessions", params(("id" = String, Path)),
    responses((status = 200, body = OperationView), (status = 404, body = ErrorBody)))]
async fn get_operation(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<OperationView>> {
    let id: OperationId = id.parse().map_err(|_| ApiError::not_found("operation"))?;
    let op = app.services.sessions.operation(&caller, id).await?;
    Ok(Json(OperationView::from(&op)))
}
