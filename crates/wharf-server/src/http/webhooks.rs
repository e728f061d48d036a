//! `/v1/webhooks`: an account's endpoints, their delivery log and redelivery. PAT only.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use wharf_core::{DeliveryId, SessionId, WebhookId, time::rfc3339};
use wharf_store::{AttemptRow, DeliveryRow, WebhookRow};

use super::{
    AppState,
    auth::PatCaller,
    error::{ApiError, ErrorBody},
    extract::{ApiJson, QueryPairs, double_option},
};
use crate::services::webhooks::WebhookChange;

type ApiResult<T> = Result<T, ApiError>;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_deliveries))
        .routes(routes!(redeliver))
        .routes(routes!(recover))
}

/// A webhook endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub target_url: String,
    /// Event types delivered; empty means every type.
    pub subscribed_events: Vec<String>,
    /// Only events of this session, when set.
    pub session_id: Option<String>,
    /// False when paused by the account (`PATCH` with `is_active: false`) or disabled by
    /// Wharf after failing too long (then `disabled_at` is set); `PATCH` with
    /// `is_active: true` enables it again.
    pub is_active: bool,
    /// When Wharf disabled the endpoint because every attempt failed for too long.
    pub disabled_at: Option<String>,
    /// Since when every attempt has failed (the first failure after the last success).
    pub failing_since: Option<String>,
    pub description: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// `whsec_…`: only in the answers of creation and rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

fn view(row: &WebhookRow, with_secret: bool) -> WebhookView {
    WebhookView {
        id: row.id.to_string(),
        target_url: row.target_url.clone(),
        subscribed_events: row.subscribed_events.clone(),
        session_id: row.session_id.map(|s| s.to_string()),
        is_active: row.is_active,
        disabled_at: row.disabled_at.map(rfc3339),
        failing_since: row.failing_since.map(rfc3339),
        description: row.description.clone(),
        created_at: rfc3339(row.created_at),
        updated_at: rfc3339(row.updated_at),
        signing_secret: with_secret.then(|| row.signing_secret.clone()),
    }
}

/// Creating or editing an endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    /// Where to POST events: an http(s) URL. Required on creation.
    pub target_url: Option<String>,
    /// Event types to deliver (`message.received`, …); absent or empty means all.
    pub subscribed_events: Option<Vec<String>>,
    /// Only this session's events; `null` for every session.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub session_id: Option<Option<String>>,
    /// Default true.
    pub is_active: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
}

impl WebhookBody {
    fn change(self) -> ApiResult<WebhookChange> {
        let session_id = match self.session_id {
            None => None,
            Some(None) => Some(None),
            Some(Some(s)) if s.is_empty() => Some(None),
            Some(Some(s)) => Some(Some(s.parse::<SessionId>().map_err(|_| {
                ApiError::invalid("session_id", "must be a session id (sess_…)")
            })?)),
        };
        if let Some(Some(d)) = &self.description
            && d.chars().count() > 500
        {
            return Err(ApiError::invalid(
                "description",
                "must be at most 500 characters",
            ));
        }
        Ok(WebhookChange {
            target_url: self.target_url,
            subscribed_events: self.subscribed_events,
            session_id,
            is_active: self.is_active,
            description: self.description,
        })
    }
}

fn webhook_id(raw: &str) -> ApiResult<WebhookId> {
    raw.parse().map_err(|_| ApiError::not_found("webhook"))
}

/// A list of endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookListView {
    pub data: Vec<WebhookView>,
}

/// GET /v1/webhooks — the account's endpoints.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = WebhookListView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_webhooks(
    State(app): State<AppState>,
    PatCaller(caller): PatCaller,
) -> ApiResult<Json<WebhookListView>> {
    let rows = app.services.webhooks.list(&caller).await?;
    Ok(Json(WebhookListView {
        data: rows.iter().map(|r| view(r, false)).collect(),
    }))
}

/// POST /v1/webhooks — adds an endpoint; the answer shows its signing secret once.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = WebhookBody,
    responses((status = 201, body = WebhookView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn create_webhook(
    State(app): State<AppState>,
    PatCaller(caller): PatCaller,
    ApiJson(body): ApiJson<WebhookBody>,
) -> ApiResult<(StatusCode, Json<WebhookView>)> {
    let row = app
        .services
        .webhooks
        .create(&caller, body.change()?)
        .await?;
    Ok((StatusCode::CREATED, Json(view(&row, true))))
}

/// GET /v1/webhooks/{id} — one endpoint.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = WebhookView), (status = 403, body = ErrorBody, description = "A session key: these routes are for personal access tokens."), (status = 404, body = ErrorBody)))]
async fn get_webhook(
    State(app): State<AppState>,
    PatCaller(caller): PatCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookView>> {
    let row = app.services.webhooks.get(&caller, webhook_id(&id)?).await?;
    Ok(Json(view(&row, false)))
}

/// PATCH /v1/webhooks/{id} — changes an endpoint.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)), request_body = Option<WebhookBody>,
    responses((status = 200, body = WebhookView), (status = 403, body = ErrorBody, description = "A session key: these routes are for personal access tokens."), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_webhook(
    State(app): State<AppState>,
    PatCaller(caller): PatCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<WebhookBody>,
) -> ApiResult<Json<WebhookView>> {
    let row = app
        .services
        .webhooks
        .update(&caller, webhook_id(&id)?, body.change()?)
        .await?;
    Ok(Json(view(&row, false)))
}

/// DELETE /v1/webhooks/{id} — removes an endpoint and its delivery log.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 204, description = "Deleted."), (status = 403, body = ErrorBody, description = "A session key: these routes are for personal access tokens."), (status = 404, body = ErrorBody)))]
async fn delete_webhook(
    State(app): State<AppState>,
    PatCaller(caller): PatCaller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    app.services
        .webhooks
        .delete(&caller, webhook_id(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// POST /v1/webhooks/{id}/rotate-secret — a new signing secret, shown once; the old one
/// stops signing at once.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = WebhookView), (status = 403, body = ErrorBody, description = "A session key: these routes are for personal access tokens."), (status = 404, body = ErrorBody)))]
async fn rotate_secret(
    State(app): State<AppState>,
    PatCaller(caller): PatCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookView>> {
    let row = app
        .services
        .webhooks
        .rotate_secret(&caller, webhook_id(&id)?)
        .await?;
    Ok(Json(view(&row, true)))
}

/// One attempt at a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub attempted_at: String,
    /// The endpoint's HTTP status, when it answered.
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// One event's delivery to an endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    /// The event's cursor.
    pub event_cursor: i64,
    /// `pending`, `succeeded` or `failed` (every attempt of the schedule failed).
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
    pub attempt_log: Vec<AttemptView>,
}

fn delivery_view((d, attempts): &(DeliveryRow, Vec<AttemptRow>)) -> DeliveryView {
    DeliveryView {
        id: d.id.to_string(),
        event_id: d.event_id.clone(),
        event_type: d.event_type.clone(),
        event_cursor: d.event_seq,
        status: d.status.as_str().to_owned(),
        attempts: d.attempts,
        next_attempt_at: d
            .next_attempt_at
            .filter(|_| d.status == wharf_store::DeliveryStatus::Pending)
            .map(rfc3339),
        last_status_code: d.last_status_code,
        last_error: d.last_error.clone(),
        created_at: rfc3339(d.created_at),
        delivered_at: d.delivered_at.map(rfc3339),
        attempt_log: attempts
            .iter()
            .map(|a| AttemptView {
                attempted_at: rfc3339(a.attempted_at),
                status_code: a.status_code,
                error: a.error.clone(),
                duration_ms: a.duration_ms,
            })
            .collect(),
    }
}

/// A page of deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryListView {
    pub data: Vec<DeliveryView>,
    pub next_cursor: Option<String>,
}

/// GET /v1/webhooks/{id}/deliveries — the delivery log, newest first, with every attempt.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path), ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1..100, default 50."), ("before_id" = Option<String>, Query)),
    responses((status = 200, body = DeliveryListView), (status = 403, body = ErrorBody, description = "A session key: these routes are for personal access tokens."), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_deliveries(
    State(app): State<AppState>,
    PatCaller(caller): PatCaller,
    Path(id): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<DeliveryListView>> {
    query.only(&["limit", "before_id"])?;
    let limit = query.limit()?;
    let before = query
        .get("before_id")
        .map(|b| {
            b.parse::<DeliveryId>()
                .map_err(|_| ApiError::invalid("before_id", "must be a delivery id (dlv_…)"))
        })
        .transpose()?;
    let (rows, next) = app
        .services
        .webhooks
        .deliveries(&caller, webhook_id(&id)?, before, limit)
        .await?;
    Ok(Json(DeliveryListView {
        data: rows.iter().map(delivery_view).collect(),
        next_cursor: next.map(|n| n.to_string()),
    }))
}

/// POST /v1/webhooks/{id}/deliveries/{delivery_id}/redeliver — attempts the delivery again now.
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", tag = "webhooks",
    params(("id" = String, Path), ("delivery_id" = String, Path)),
    responses((status = 202, body = DeliveryView), (status = 403, body = ErrorBody, description = "A session key: these routes are for personal access tokens."), (status = 404, body = ErrorBody)))]
async fn redeliver(
    State(app): State<AppState>,
    PatCaller(caller): PatCaller,
    Path((id, delivery)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<DeliveryView>)> {
    let delivery: DeliveryId = delivery
        .parse()
        .map_err(|_| ApiError::not_found("delivery"))?;
    let row = app
        .services
        .webhooks
        .redeliver(&caller, webhook_id(&id)?, delivery)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(delivery_view(&row))))
}

/// `POST /v1/webhooks/{id}/recover`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverBody {
    /// RFC 3339 time (`2026-12-01T09:30:00Z`): failed deliveries created at or after it are
    /// queued again.
    pub since: Option<String>,
}

/// What a recovery queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoverView {
    /// How many failed deliveries were queued again.
    pub queued: u64,
}

/// POST /v1/webhooks/{id}/recover — queues again every failed delivery since a time, in order.
#[utoipa::path(post, path = "/v1/webhooks/{id}/recover", tag = "webhooks", params(("id" = String, Path)),
    request_body = RecoverBody,
    responses((status = 202, body = RecoverView), (status = 403, body = ErrorBody, description = "A session key: these routes are for personal access tokens."), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn recover(
    State(app): State<AppState>,
    PatCaller(caller): PatCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RecoverBody>,
) -> ApiResult<(StatusCode, Json<RecoverView>)> {
    let id = webhook_id(&id)?;
    let since = body
        .since
        .as_deref()
        .ok_or_else(|| ApiError::invalid("since", "required: an RFC 3339 time"))?;
    let since = wharf_core::time::parse_rfc3339(since).ok_or_else(|| {
        ApiError::invalid(
            "since",
            "must be an RFC 3339 time such as 2026-12-01T09:30:00Z",
        )
    })?;
    let queued = app.services.webhooks.recover(&caller, id, since).await?;
    Ok((StatusCode::ACCEPTED, Json(RecoverView { queued })))
}
