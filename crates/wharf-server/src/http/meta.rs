//! `/webhooks/meta`: where Meta delivers the Cloud API's webhooks. Public (Meta has no Wharf
//! token): the handshake is checked against the sessions' verify tokens and every delivery
//! against the `X-Hub-Signature-256` of the owning session's app secret.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AppState,
    error::{ApiError, ErrorBody},
    extract::{JsonBytes, QueryPairs},
};
use crate::services::cloud::WebhookRefusal;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(verify_meta_webhook, receive_meta_webhook))
}

/// The answer to a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct Received {
    /// `true`: everything in the delivery is recorded.
    pub success: bool,
}

/// GET /webhooks/meta — Meta's verification handshake: answers `hub.challenge` when
/// `hub.verify_token` is a cloud session's verify token.
#[utoipa::path(get, path = "/webhooks/meta", tag = "meta-webhook", security(),
    params(
        ("hub.mode" = String, Query, min_length = 1, description = "`subscribe`."),
        ("hub.verify_token" = String, Query, min_length = 1, description = "A cloud session's `verify_token`."),
        ("hub.challenge" = String, Query, min_length = 1, description = "Echoed back on success."),
    ),
    responses(
        (status = 200, content_type = "text/plain", body = String, description = "The challenge."),
        (status = 403, body = ErrorBody, description = "Wrong mode or unknown verify token."),
        (status = 422, body = ErrorBody, description = "A parameter is missing."),
    ))]
async fn verify_meta_webhook(
    State(app): State<AppState>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let param = |name: &str| {
        query
            .get(name)
            .ok_or_else(|| ApiError::invalid(name, "required"))
    };
    let mode = param("hub.mode")?;
    let token = param("hub.verify_token")?;
    let challenge = param("hub.challenge")?;
    if !app.services.cloud.handshake(mode, token).await? {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "hub.mode is not subscribe, or hub.verify_token is no cloud session's verify token",
        ));
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        challenge.to_owned(),
    )
        .into_response())
}

/// POST /webhooks/meta — a webhook delivery from Meta (messages received, statuses of
/// messages sent, template review outcomes). Recorded before the 200; deliveries repeated by
/// Meta change nothing.
#[utoipa::path(post, path = "/webhooks/meta", tag = "meta-webhook", security(),
    params(("X-Hub-Signature-256" = String, Header, description = "`sha256=` and the hex HMAC-SHA256 of the raw body with the app secret.")),
    request_body(content = Object, description = "Meta's webhook payload (`object: whatsapp_business_account`)."),
    responses(
        (status = 200, body = Received),
        (status = 401, body = ErrorBody, description = "No signature."),
        (status = 403, body = ErrorBody, description = "The signature does not match."),
        (status = 404, body = ErrorBody, description = "No cloud session has the payload's phone number id."),
        (status = 422, body = ErrorBody, description = "Not a WhatsApp webhook payload."),
    ))]
async fn receive_meta_webhook(
    State(app): State<AppState>,
    headers: HeaderMap,
    JsonBytes(body): JsonBytes,
) -> Result<Json<Received>, ApiError> {
    let Some(signature) = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
    else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "the X-Hub-Signature-256 header is missing",
        ));
    };
    match app.services.cloud.receive(&body, signature).await {
        Ok(()) => Ok(Json(Received { success: true })),
        Err(WebhookRefusal::BadSignature) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_signature",
            "X-Hub-Signature-256 does not match the app secret of the session this payload is about",
        )),
        Err(WebhookRefusal::Other(e)) => Err(e.into()),
    }
}
