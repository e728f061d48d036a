//! Health, readiness, metrics, the instances and the OpenAPI document: not rate-limited; only
//! `/metrics` and `/instances` may ask for a token (`metrics_token`, the operator's).

use axum::{Json, extract::State, http::StatusCode};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{AppState, error::ApiError};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(openapi_json))
        .routes(routes!(get_metrics))
        .routes(routes!(get_instances))
}

/// A health answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
}

/// GET /healthz — the process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops", security(), responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// GET /readyz — the process can serve: its database answers.
#[utoipa::path(get, path = "/readyz", tag = "ops", security(),
    responses((status = 200, body = Health), (status = 503, body = super::error::ErrorBody)))]
async fn readyz(State(app): State<AppState>) -> Result<Json<Health>, ApiError> {
    app.services
        .ping()
        .await
        .map_err(|e| unavailable("readiness check failed", e))?;
    Ok(Json(Health { status: "ok" }))
}

/// GET /openapi.json — this API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", security(), responses((status = 200, description = "The OpenAPI document.")))]
async fn openapi_json(State(app): State<AppState>) -> Json<utoipa::openapi::OpenApi> {
    Json((*app.openapi).clone())
}

/// GET /metrics — Prometheus text exposition (version 0.0.4). With `metrics_token` set, it
/// takes `Authorization: Bearer <metrics_token>`.
#[utoipa::path(get, path = "/metrics", tag = "ops", security(("bearer" = [])),
    responses((status = 200, content_type = "text/plain", description = "The metrics."),
        (status = 401, body = super::error::ErrorBody), (status = 503, body = super::error::ErrorBody)))]
async fn get_metrics(
    State(app): State<AppState>,
    headers: http::HeaderMap,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    operator(&app, &headers, "metrics")?;
    let gauges = app
        .services
        .gauges()
        .await
        .map_err(|e| unavailable("metrics: the database did not answer", e))?;
    let body = crate::metrics::global().render(
        &gauges,
        &wharf_store::PoolStats::read(),
        &wharf_store::RewindStats::read(),
    );
    Ok((
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    ))
}

/// Refuses the call unless it carries `Authorization: Bearer <metrics_token>`, when that token
/// is set (`what` names the resource in the error).
fn operator(app: &AppState, headers: &http::HeaderMap, what: &str) -> Result<(), ApiError> {
    if let Some(expected) = app.metrics_token.as_deref() {
        let presented = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(token)
            })
            .unwrap_or_default();
        if !crate::secrets::constant_time_eq(
            presented.trim().as_bytes(),
            expected.trim().as_bytes(),
        ) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                format!("{what} need 'Authorization: Bearer <metrics_token>'"),
            ));
        }
    }
    Ok(())
}

/// GET /instances — the live instances sharing the database, the sessions each owns by lease,
/// and the running sessions no live instance owns yet, as `wharf instances --json` prints them.
/// It takes `Authorization: Bearer <metrics_token>`, and is refused while no `metrics_token` is
/// set: it names every tenant's sessions. On SQLite there is one instance, which owns every
/// running session.
#[utoipa::path(get, path = "/instances", tag = "ops", security(("bearer" = [])),
    responses((status = 200, body = crate::instances::InstancesView),
        (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody),
        (status = 503, body = super::error::ErrorBody)))]
async fn get_instances(
    State(app): State<AppState>,
    headers: http::HeaderMap,
) -> Result<Json<crate::instances::InstancesView>, ApiError> {
    if app.metrics_token.is_none() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "instances are shown over HTTP only with metrics_token set (they name every tenant's sessions); `wharf instances` reads them from the database",
        ));
    }
    operator(&app, &headers, "instances")?;
    let view = app
        .services
        .instances()
        .await
        .map_err(|e| unavailable("instances: the database did not answer", e))?;
    Ok(Json(view))
}

/// The 503 of an operations route whose database did not answer, logged with `what`.
fn unavailable(what: &str, e: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "{what}");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "database_unavailable",
        "the database is not reachable",
    )
}
