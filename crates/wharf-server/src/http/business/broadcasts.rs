//! Broadcasts: `GET/POST /v1/whatsapp/broadcasts`, `GET/DELETE /v1/whatsapp/broadcasts/{id}`,
//! `POST .../send`, `POST/DELETE .../schedule`, `GET/PATCH/DELETE .../recipients`, and
//! Wharf's `POST .../cancel`.

use std::collections::BTreeMap;

use axum::{
    Json,
    extract::{Path, RawQuery, State},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use wharf_core::time::rfc3339;
use wharf_store::{BroadcastRow, BroadcastStatus, RecipientRow};

use super::{
    BResult, MessageAnswer, bad_request, body_account, int_param, limit_param, object, opt_string,
    query, query_account, service_error, template_components,
};
use crate::{
    http::{AppState, error::ApiError, extract::JsonBytes, zernio::ZernioErrorBody},
    services::{
        Caller,
        broadcasts::{CreateBroadcast, MAX_RECIPIENTS, RecipientInput},
    },
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_broadcasts, create_broadcast))
        .routes(routes!(get_broadcast, delete_broadcast))
        .routes(routes!(send_broadcast))
        .routes(routes!(cancel_broadcast))
        .routes(routes!(schedule_broadcast, unschedule_broadcast))
        .routes(routes!(list_recipients, add_recipients, remove_recipients))
}

/// A broadcast's template.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ZBroadcastTemplate {
    pub name: String,
    pub language: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub components: Vec<Value>,
}

/// A broadcast with its counters. `sentCount` counts delivered and read messages too,
/// `deliveredCount` read ones too. `skippedCount`, `cancelledCount`, `pendingCount`,
/// `accountId` and `failureReason` are Wharf's.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZBroadcast {
    pub id: String,
    pub account_id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub template: ZBroadcastTemplate,
    /// draft, scheduled, sending, completed, failed, cancelled.
    pub status: String,
    pub recipient_count: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    pub sent_count: i64,
    pub delivered_count: i64,
    pub read_count: i64,
    pub failed_count: i64,
    pub skipped_count: i64,
    pub cancelled_count: i64,
    pub pending_count: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&BroadcastRow> for ZBroadcast {
    fn from(b: &BroadcastRow) -> Self {
        let t = &b.template;
        Self {
            id: b.id.to_string(),
            account_id: b.session_id.to_string(),
            name: b.name.clone(),
            description: b.description.clone(),
            template: ZBroadcastTemplate {
                name: t["name"].as_str().unwrap_or_default().to_owned(),
                language: t["language"].as_str().unwrap_or_default().to_owned(),
                components: t["components"].as_array().cloned().unwrap_or_default(),
            },
            status: b.status.as_str().to_owned(),
            recipient_count: b.recipient_count,
            scheduled_at: b.scheduled_at.map(rfc3339),
            started_at: b.started_at.map(rfc3339),
            completed_at: b.completed_at.map(rfc3339),
            sent_count: b.sent_total(),
            delivered_count: b.delivered_total(),
            read_count: b.n_read,
            failed_count: b.n_failed,
            skipped_count: b.n_skipped,
            cancelled_count: b.n_cancelled,
            pending_count: b.n_pending,
            failure_reason: b.failure_reason.clone(),
            created_at: rfc3339(b.created_at),
            updated_at: rfc3339(b.updated_at),
        }
    }
}

/// `{total, limit, skip, hasMore}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZPagination {
    pub total: i64,
    pub limit: i64,
    pub skip: i64,
    pub has_more: bool,
}

/// `GET /v1/whatsapp/broadcasts` answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ZBroadcastList {
    pub success: bool,
    pub broadcasts: Vec<ZBroadcast>,
    pub pagination: ZPagination,
}

/// `{success, broadcast}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ZBroadcastAnswer {
    pub success: bool,
    pub broadcast: ZBroadcast,
}

/// `POST .../send` answer: the final `completed` or `failed` with the counts; a broadcast
/// still going when the wait ended answers `sending` with the counts so far (Wharf's
/// extension; it keeps going). `skipped` (opted out) and `pending` are Wharf's.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ZSendAnswer {
    pub success: bool,
    pub status: String,
    pub sent: i64,
    pub failed: i64,
    pub total: i64,
    pub skipped: i64,
    pub pending: i64,
}

/// The broadcast part of a schedule answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZScheduled {
    pub id: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<String>,
}

/// `POST .../schedule` answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ZScheduleAnswer {
    pub success: bool,
    pub broadcast: ZScheduled,
}

/// `DELETE .../schedule` answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ZUnscheduleAnswer {
    pub success: bool,
    pub broadcast: ZScheduled,
    pub message: String,
}

/// A recipient with its delivery status.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZRecipient {
    pub phone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub variables: Option<Value>,
    /// pending, sent, delivered, read, failed; Wharf's `skipped` (opted out) and `cancelled`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_at: Option<String>,
}

impl From<&RecipientRow> for ZRecipient {
    fn from(r: &RecipientRow) -> Self {
        Self {
            phone: r.phone.clone(),
            name: r.name.clone(),
            variables: r.variables.clone(),
            status: r.status.clone(),
            message_id: r.message_id.map(|m| m.to_string()),
            error: r.error.clone(),
            sent_at: r.sent_at.map(rfc3339),
            delivered_at: r.delivered_at.map(rfc3339),
            read_at: r.read_at.map(rfc3339),
        }
    }
}

/// Recipients by current status (the broadcast's counters, never a scan).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ZRecipientSummary {
    pub total: i64,
    pub pending: i64,
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    pub failed: i64,
    pub skipped: i64,
    pub cancelled: i64,
}

/// `GET .../recipients` answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ZRecipientList {
    pub success: bool,
    pub recipients: Vec<ZRecipient>,
    pub pagination: ZPagination,
    pub summary: ZRecipientSummary,
}

/// `PATCH .../recipients` answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZAddedAnswer {
    pub success: bool,
    pub added: i64,
    pub duplicates: i64,
    pub total_recipients: i64,
}

/// `DELETE .../recipients` answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZRemovedAnswer {
    pub success: bool,
    pub removed: i64,
    pub total_recipients: i64,
}

/// A recipient of a body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ZRecipientInput {
    /// E.164.
    pub phone: String,
    pub name: Option<String>,
    /// Body variables by number (`{"1": "John"}`).
    pub variables: Option<BTreeMap<String, String>>,
}

/// `POST /v1/whatsapp/broadcasts` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZCreateBody {
    pub account_id: String,
    pub name: String,
    pub description: Option<String>,
    pub template: ZBroadcastTemplate,
    /// At most 1,000.
    pub recipients: Option<Vec<ZRecipientInput>>,
}

/// `PATCH .../recipients` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ZAddBody {
    /// 1 to 1,000.
    pub recipients: Vec<ZRecipientInput>,
}

/// `DELETE .../recipients` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ZRemoveBody {
    pub phones: Vec<String>,
}

/// `POST .../schedule` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZScheduleBody {
    /// RFC 3339, in the future, at most 30 days out.
    pub scheduled_at: String,
}

fn required_string(v: &Value, key: &str, field: &str) -> BResult<String> {
    match v.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        None | Some(Value::Null) => Err(bad_request(field, format!("{field} is required"))),
        Some(Value::String(_)) => Err(bad_request(field, format!("{field} must not be empty"))),
        Some(_) => Err(bad_request(field, format!("{field} must be a string"))),
    }
}

/// The `recipients` array of a body (`required`: it must be there and not empty).
fn recipients_of(body: &Value, required: bool) -> BResult<Vec<RecipientInput>> {
    let list = match body.get("recipients") {
        Some(Value::Array(list)) => list,
        None | Some(Value::Null) if !required => return Ok(Vec::new()),
        None | Some(Value::Null) => {
            return Err(bad_request("recipients", "recipients is required"));
        }
        Some(_) => return Err(bad_request("recipients", "recipients must be an array")),
    };
    if required && list.is_empty() {
        return Err(bad_request(
            "recipients",
            "recipients must hold at least one recipient",
        ));
    }
    if list.len() > MAX_RECIPIENTS {
        return Err(bad_request(
            "recipients",
            format!("at most {MAX_RECIPIENTS} recipients per request"),
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, r)| {
            let at = format!("recipients[{i}]");
            if !r.is_object() {
                return Err(bad_request(&at, format!("{at} must be an object")));
            }
            let phone = required_string(r, "phone", &format!("{at}.phone"))?;
            let name = match r.get("name") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => {
                    let field = format!("{at}.name");
                    return Err(bad_request(&field, format!("{field} must be a string")));
                }
            };
            let mut variables = BTreeMap::new();
            match r.get("variables") {
                None | Some(Value::Null) => {}
                Some(Value::Object(vars)) => {
                    for (k, v) in vars {
                        let Value::String(s) = v else {
                            let field = format!("{at}.variables.{k}");
                            return Err(bad_request(&field, format!("{field} must be a string")));
                        };
                        variables.insert(k.clone(), s.clone());
                    }
                }
                Some(_) => {
                    let field = format!("{at}.variables");
                    return Err(bad_request(&field, format!("{field} must be an object")));
                }
            }
            Ok(RecipientInput {
                at,
                phone,
                name,
                variables,
            })
        })
        .collect()
}

/// GET /v1/whatsapp/broadcasts — the session's broadcasts, newest first, without their
/// recipients.
#[utoipa::path(get, path = "/v1/whatsapp/broadcasts", tag = "zernio-business",
    params(("accountId" = String, Query),
        ("status" = Option<String>, Query, description = "draft, scheduled, sending, completed, failed or cancelled"),
        ("limit" = Option<i64>, Query, minimum = 1, description = "At least 1, default 50; above 100 reads as 100."),
        ("skip" = Option<i64>, Query, minimum = 0, description = "Offset, default 0.")),
    responses((status = 200, body = ZBroadcastList), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody, description = "WhatsApp account not found")))]
async fn list_broadcasts(
    State(app): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> BResult<Json<ZBroadcastList>> {
    let q = query(raw).map_err(super::ZernioError::from)?;
    let session = query_account(&q)?;
    let status = match q.get("status").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(BroadcastStatus::parse(s).ok_or_else(|| {
            bad_request(
                "status",
                "status must be one of draft, scheduled, sending, completed, failed, cancelled",
            )
        })?),
    };
    let limit = limit_param(&q, 50, 100)?;
    let skip = int_param(&q, "skip", 0, 0, i64::MAX / 2)?;
    let (rows, total) = app
        .services
        .broadcasts
        .list(&caller, session, status, limit, skip)
        .await
        .map_err(service_error)?;
    Ok(Json(ZBroadcastList {
        success: true,
        pagination: ZPagination {
            total,
            limit,
            skip,
            has_more: skip + (rows.len() as i64) < total,
        },
        broadcasts: rows.iter().map(ZBroadcast::from).collect(),
    }))
}

/// POST /v1/whatsapp/broadcasts — a draft, with optional initial recipients (at most 1,000).
#[utoipa::path(post, path = "/v1/whatsapp/broadcasts", tag = "zernio-business",
    request_body = ZCreateBody,
    responses((status = 200, body = ZBroadcastAnswer), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody, description = "WhatsApp account not found")))]
async fn create_broadcast(
    State(app): State<AppState>,
    caller: Caller,
    body: Result<JsonBytes, ApiError>,
) -> BResult<Json<ZBroadcastAnswer>> {
    let (body, _) = object(body)?;
    let session = body_account(&body)?;
    let name = required_string(&body, "name", "name")?;
    let description = opt_string(&body, "description")?;
    let template = match body.get("template") {
        Some(t @ Value::Object(_)) => t,
        None | Some(Value::Null) => return Err(bad_request("template", "template is required")),
        Some(_) => return Err(bad_request("template", "template must be an object")),
    };
    let template_name = required_string(template, "name", "template.name")?;
    let language = required_string(template, "language", "template.language")?;
    let components = template_components(template)?;
    let recipients = recipients_of(&body, false)?;
    let b = app
        .services
        .broadcasts
        .create(
            &caller,
            CreateBroadcast {
                session,
                name,
                description,
                template: template_name,
                language,
                components,
                recipients,
            },
        )
        .await
        .map_err(service_error)?;
    Ok(Json(ZBroadcastAnswer {
        success: true,
        broadcast: ZBroadcast::from(&b),
    }))
}

/// GET /v1/whatsapp/broadcasts/{broadcastId} — one broadcast with its counters.
#[utoipa::path(get, path = "/v1/whatsapp/broadcasts/{broadcastId}", tag = "zernio-business",
    params(("broadcastId" = String, Path)),
    responses((status = 200, body = ZBroadcastAnswer), (status = 401, body = ZernioErrorBody),
        (status = 404, body = ZernioErrorBody)))]
async fn get_broadcast(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> BResult<Json<ZBroadcastAnswer>> {
    let b = app
        .services
        .broadcasts
        .get(&caller, &id)
        .await
        .map_err(service_error)?;
    Ok(Json(ZBroadcastAnswer {
        success: true,
        broadcast: ZBroadcast::from(&b),
    }))
}

/// DELETE /v1/whatsapp/broadcasts/{broadcastId} — only a draft or a cancelled broadcast
/// (400 naming the status otherwise).
#[utoipa::path(delete, path = "/v1/whatsapp/broadcasts/{broadcastId}", tag = "zernio-business",
    params(("broadcastId" = String, Path)),
    responses((status = 200, body = MessageAnswer), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody)))]
async fn delete_broadcast(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> BResult<Json<MessageAnswer>> {
    app.services
        .broadcasts
        .delete(&caller, &id)
        .await
        .map_err(service_error)?;
    Ok(Json(MessageAnswer {
        success: true,
        message: "Broadcast deleted successfully".into(),
    }))
}

/// POST /v1/whatsapp/broadcasts/{broadcastId}/send — starts a draft or scheduled broadcast
/// at once and waits for its end up to `broadcast_send_wait_ms` (default 25 s); a longer one
/// answers `status: "sending"` with the counts so far and keeps going.
#[utoipa::path(post, path = "/v1/whatsapp/broadcasts/{broadcastId}/send", tag = "zernio-business",
    params(("broadcastId" = String, Path)),
    responses((status = 200, body = ZSendAnswer), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody),
        (status = 422, body = ZernioErrorBody, description = "The template is missing or not approved.")))]
async fn send_broadcast(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> BResult<Json<ZSendAnswer>> {
    let b = app
        .services
        .broadcasts
        .send(&caller, &id)
        .await
        .map_err(service_error)?;
    Ok(Json(ZSendAnswer {
        success: b.status != BroadcastStatus::Failed,
        status: b.status.as_str().to_owned(),
        sent: b.sent_total(),
        failed: b.n_failed,
        total: b.recipient_count,
        skipped: b.n_skipped,
        pending: b.n_pending,
    }))
}

/// POST /v1/whatsapp/broadcasts/{broadcastId}/cancel — Wharf's: stops a scheduled or
/// sending broadcast within a second; what was sent stays sent, the rest is `cancelled`.
#[utoipa::path(post, path = "/v1/whatsapp/broadcasts/{broadcastId}/cancel", tag = "zernio-business",
    params(("broadcastId" = String, Path)),
    responses((status = 200, body = ZBroadcastAnswer), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody)))]
async fn cancel_broadcast(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> BResult<Json<ZBroadcastAnswer>> {
    let b = app
        .services
        .broadcasts
        .cancel(&caller, &id)
        .await
        .map_err(service_error)?;
    Ok(Json(ZBroadcastAnswer {
        success: true,
        broadcast: ZBroadcast::from(&b),
    }))
}

/// POST /v1/whatsapp/broadcasts/{broadcastId}/schedule — a draft with recipients, for a
/// time in the future and at most 30 days out.
#[utoipa::path(post, path = "/v1/whatsapp/broadcasts/{broadcastId}/schedule", tag = "zernio-business",
    params(("broadcastId" = String, Path)), request_body = ZScheduleBody,
    responses((status = 200, body = ZScheduleAnswer), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody),
        (status = 422, body = ZernioErrorBody, description = "The template is missing or not approved.")))]
async fn schedule_broadcast(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<JsonBytes, ApiError>,
) -> BResult<Json<ZScheduleAnswer>> {
    let (body, _) = object(body)?;
    let raw = required_string(&body, "scheduledAt", "scheduledAt")?;
    let at = wharf_core::time::parse_rfc3339(raw.trim()).ok_or_else(|| {
        bad_request(
            "scheduledAt",
            "scheduledAt must be an ISO 8601 date-time such as 2026-03-15T10:00:00Z",
        )
    })?;
    let b = app
        .services
        .broadcasts
        .schedule(&caller, &id, at)
        .await
        .map_err(service_error)?;
    Ok(Json(ZScheduleAnswer {
        success: true,
        broadcast: ZScheduled {
            id: b.id.to_string(),
            status: b.status.as_str().to_owned(),
            scheduled_at: b.scheduled_at.map(rfc3339),
        },
    }))
}

/// DELETE /v1/whatsapp/broadcasts/{broadcastId}/schedule — a scheduled broadcast returns to
/// draft.
#[utoipa::path(delete, path = "/v1/whatsapp/broadcasts/{broadcastId}/schedule", tag = "zernio-business",
    params(("broadcastId" = String, Path)),
    responses((status = 200, body = ZUnscheduleAnswer), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody)))]
async fn unschedule_broadcast(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> BResult<Json<ZUnscheduleAnswer>> {
    let b = app
        .services
        .broadcasts
        .unschedule(&caller, &id)
        .await
        .map_err(service_error)?;
    Ok(Json(ZUnscheduleAnswer {
        success: true,
        broadcast: ZScheduled {
            id: b.id.to_string(),
            status: b.status.as_str().to_owned(),
            scheduled_at: None,
        },
        message: "Broadcast returned to draft status".into(),
    }))
}

/// GET /v1/whatsapp/broadcasts/{broadcastId}/recipients — recipients in the order they were
/// added, with their delivery status; `status` filters; the summary is the counters.
#[utoipa::path(get, path = "/v1/whatsapp/broadcasts/{broadcastId}/recipients", tag = "zernio-business",
    params(("broadcastId" = String, Path),
        ("status" = Option<String>, Query, description = "pending, sent, delivered, read, failed (Wharf's: skipped, cancelled)"),
        ("limit" = Option<i64>, Query, minimum = 1, description = "At least 1, default 100; above 1000 reads as 1000."),
        ("skip" = Option<i64>, Query, minimum = 0, description = "Offset, default 0.")),
    responses((status = 200, body = ZRecipientList), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody)))]
async fn list_recipients(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> BResult<Json<ZRecipientList>> {
    let q = query(raw).map_err(super::ZernioError::from)?;
    let status = match q.get("status").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) if wharf_store::RECIPIENT_STATUSES.contains(&s) => Some(s.to_owned()),
        Some(_) => {
            return Err(bad_request(
                "status",
                "status must be one of pending, sent, delivered, read, failed, skipped, cancelled",
            ));
        }
    };
    let limit = limit_param(&q, 100, 1000)?;
    let skip = int_param(&q, "skip", 0, 0, i64::MAX / 2)?;
    let (b, rows) = app
        .services
        .broadcasts
        .recipients(&caller, &id, status.as_deref(), limit, skip)
        .await
        .map_err(service_error)?;
    let total = match status.as_deref() {
        None => b.recipient_count,
        Some("pending") => b.n_pending,
        Some("sent") => b.n_sent,
        Some("delivered") => b.n_delivered,
        Some("read") => b.n_read,
        Some("failed") => b.n_failed,
        Some("skipped") => b.n_skipped,
        Some(_) => b.n_cancelled,
    };
    Ok(Json(ZRecipientList {
        success: true,
        recipients: rows.iter().map(ZRecipient::from).collect(),
        pagination: ZPagination {
            total,
            limit,
            skip,
            has_more: skip + (rows.len() as i64) < total,
        },
        summary: ZRecipientSummary {
            total: b.recipient_count,
            pending: b.n_pending,
            sent: b.n_sent,
            delivered: b.n_delivered,
            read: b.n_read,
            failed: b.n_failed,
            skipped: b.n_skipped,
            cancelled: b.n_cancelled,
        },
    }))
}

/// PATCH /v1/whatsapp/broadcasts/{broadcastId}/recipients — adds up to 1,000 recipients to
/// a draft; phones already there are counted as duplicates.
#[utoipa::path(patch, path = "/v1/whatsapp/broadcasts/{broadcastId}/recipients", tag = "zernio-business",
    params(("broadcastId" = String, Path)), request_body = ZAddBody,
    responses((status = 200, body = ZAddedAnswer), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody)))]
async fn add_recipients(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<JsonBytes, ApiError>,
) -> BResult<Json<ZAddedAnswer>> {
    let (body, _) = object(body)?;
    let recipients = recipients_of(&body, true)?;
    let added = app
        .services
        .broadcasts
        .add_recipients(&caller, &id, recipients)
        .await
        .map_err(service_error)?;
    Ok(Json(ZAddedAnswer {
        success: true,
        added: added.added,
        duplicates: added.duplicates,
        total_recipients: added.total,
    }))
}

/// DELETE /v1/whatsapp/broadcasts/{broadcastId}/recipients — removes phones from a draft.
#[utoipa::path(delete, path = "/v1/whatsapp/broadcasts/{broadcastId}/recipients", tag = "zernio-business",
    params(("broadcastId" = String, Path)), request_body = ZRemoveBody,
    responses((status = 200, body = ZRemovedAnswer), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody)))]
async fn remove_recipients(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<JsonBytes, ApiError>,
) -> BResult<Json<ZRemovedAnswer>> {
    let (body, _) = object(body)?;
    let phones = match body.get("phones") {
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, p)| match p {
                Value::String(s) => Ok(s.clone()),
                _ => Err(bad_request(
                    &format!("phones[{i}]"),
                    format!("phones[{i}] must be a string"),
                )),
            })
            .collect::<BResult<Vec<String>>>()?,
        None | Some(Value::Null) => return Err(bad_request("phones", "phones is required")),
        Some(_) => return Err(bad_request("phones", "phones must be an array")),
    };
    if phones.is_empty() {
        return Err(bad_request("phones", "phones must hold at least one phone"));
    }
    if phones.len() > MAX_RECIPIENTS {
        return Err(bad_request(
            "phones",
            format!("at most {MAX_RECIPIENTS} phones per request"),
        ));
    }
    let (removed, total) = app
        .services
        .broadcasts
        .remove_recipients(&caller, &id, phones)
        .await
        .map_err(service_error)?;
    Ok(Json(ZRemovedAnswer {
        success: true,
        removed,
        total_recipients: total,
    }))
}
