//! The emulator's control surface: what a person with a phone would do, for trying Wharf
//! and for tests. Authenticated like the session's own routes; off with
//! `--no-emulator-control`.

use axum::{
    Json,
    extract::{Path, State},
};
use utoipa_axum::{router::OpenApiRouter, routes};
use wharf_core::{Phone, SessionId};

use super::{
    AppState,
    error::{ApiError, ErrorBody},
    extract::ApiJson,
    wapio::views::{ScanBody, SessionView},
};
use crate::services::Caller;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(scan_qr))
        .routes(routes!(logout_from_phone))
}

fn session_id(raw: &str) -> Result<SessionId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found("session"))
}

/// POST /emulator/sessions/{id}/scan — a phone scans the session's QR; the session connects.
#[utoipa::path(post, path = "/emulator/sessions/{id}/scan", tag = "emulator", params(("id" = String, Path)),
    request_body = ScanBody,
    responses((status = 200, body = SessionView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Not waiting for a scan, or not an emulator session."),
        (status = 422, body = ErrorBody)))]
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
