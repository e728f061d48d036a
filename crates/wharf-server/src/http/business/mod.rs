//! The Zernio Business API: the contacts CRM (`/v1/whatsapp/contacts…`), contact groups
//! (`/v1/whatsapp/groups`) and the business profile (`/v1/whatsapp/business-profile`).
//! Like the sandbox routes, they answer under `/api` too, take personal access tokens and
//! answer errors in Zernio's envelope. Zernio's `accountId` is a session id of the caller's
//! account; an unknown or foreign one is 404 "WhatsApp account not found" (the services
//! decide it, identically for both).

pub mod contact_groups;
pub mod contacts;
pub mod profile;

use axum::Router;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;

use super::{AppState, error::ApiError, extract::QueryPairs, zernio};

/// The routes, for the OpenAPI document (paths under `/v1`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(contacts::routes())
        .merge(contact_groups::routes())
        .merge(profile::routes())
}

/// Puts Zernio's authentication in front of `router` and serves it at its paths and under
/// `/api`.
pub fn mount(router: Router<AppState>, state: AppState) -> Router<AppState> {
    zernio::mount(router, state)
}

/// The query string; a malformed one is refused (the handler answers in Zernio's envelope).
pub(crate) fn query(raw: Option<String>) -> Result<QueryPairs, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::invalid("query", format!("malformed query string: {e}")))?;
    if let Some((k, _)) = pairs
        .iter()
        .find(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        return Err(ApiError::invalid(k, super::extract::NUL_MESSAGE));
    }
    Ok(QueryPairs(pairs))
}

/// `{success, message}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessageAnswer {
    pub success: bool,
    pub message: String,
}
