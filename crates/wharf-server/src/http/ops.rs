//! Health, readiness and the OpenAPI document: public, unauthenticated, not rate-limited.

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
    app.services.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "the database is not reachable",
        )
    })?;
    Ok(Json(Health { status: "ok" }))
}

/// GET /openapi.json — this API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", security(), responses((status = 200, description = "The OpenAPI document.")))]
async fn openapi_json(State(app): State<AppState>) -> Json<utoipa::openapi::OpenApi> {
    Json((*app.openapi).clone())
}
