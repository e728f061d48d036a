//! Zernio's WhatsApp Business API (`/v1/whatsapp/...`, also under `/api`): templates, bulk
//! sends, the contacts CRM (`/v1/whatsapp/contacts…`), contact groups (`/v1/whatsapp/groups`),
//! the business profile (`/v1/whatsapp/business-profile`) and phone numbers
//! (`/v1/whatsapp/phone-numbers…`). `accountId` is a session id of
//! the caller's account; an unknown id and another account's answer the same 404 "WhatsApp
//! account not found". Bearer PATs and Zernio's error envelope, as the sandbox routes of the
//! Zernio dialect.

// The helpers answer Zernio's envelope (with its headers) as their error, once per request:
// boxing it would buy nothing.
#![allow(clippy::result_large_err)]

pub mod broadcasts;
pub mod bulk;
pub mod contact_groups;
pub mod contacts;
pub mod numbers;
pub mod profile;
pub mod templates;

use axum::Router;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use wharf_core::SessionId;

use super::{
    AppState,
    error::ApiError,
    extract::{JsonBytes, QueryPairs, parse_json},
    zernio::ZernioError,
};
use crate::ServiceError;

/// The routes, for the OpenAPI document (paths under `/v1`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(templates::routes())
        .merge(bulk::routes())
        .merge(broadcasts::routes())
        .merge(contacts::routes())
        .merge(contact_groups::routes())
        .merge(profile::routes())
        .merge(numbers::routes())
}

/// Zernio's authentication in front of `router`, served at its paths and under `/api`.
pub fn mount(router: Router<AppState>, state: AppState) -> Router<AppState> {
    super::zernio::mount(router, state)
}

type BResult<T> = Result<T, ZernioError>;

fn bad_request(param: &str, error: impl Into<String>) -> ZernioError {
    ZernioError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "invalid_field_value",
        error,
    )
    .param(param)
}

/// The 404 of an unknown, foreign or malformed `accountId` (one answer for all three).
fn account_not_found() -> ZernioError {
    ZernioError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "not_found",
        "WhatsApp account not found",
    )
    .param("accountId")
}

/// A service error in this dialect's envelope: Zernio answers validation with 400, but a
/// template send refused before anything was queued (missing, unapproved, a variable that
/// does not fit) is 422 naming the template or the variable.
fn service_error(e: ServiceError) -> ZernioError {
    match e {
        ServiceError::NotFound("WhatsApp account") => account_not_found(),
        ServiceError::NotFound(what) => ZernioError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "not_found",
            format!("{} not found", capitalized(what)),
        ),
        ServiceError::Invalid {
            reason_code,
            message,
            errors,
        } if reason_code.starts_with("template_") && reason_code != "template_exists" => {
            ZernioError::from(ServiceError::Invalid {
                reason_code,
                message,
                errors,
            })
            .with_status(StatusCode::UNPROCESSABLE_ENTITY)
        }
        other => ZernioError::from(other),
    }
}

fn capitalized(what: &str) -> String {
    let mut c = what.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The session an `accountId` names (not yet checked to be the caller's).
fn account_id(raw: Option<&str>) -> BResult<SessionId> {
    let raw = raw
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| bad_request("accountId", "accountId is required"))?;
    raw.parse().map_err(|_| account_not_found())
}

/// `accountId` from the query string.
fn query_account(query: &QueryPairs) -> BResult<SessionId> {
    account_id(query.get("accountId"))
}

/// A JSON object body.
fn object(body: Result<JsonBytes, ApiError>) -> BResult<(Value, Vec<u8>)> {
    let JsonBytes(bytes) = body.map_err(ZernioError::from)?;
    let value: Value = parse_json(&bytes).map_err(ZernioError::from)?;
    if !value.is_object() {
        return Err(bad_request("body", "the body must be a JSON object"));
    }
    Ok((value, bytes.to_vec()))
}

/// `accountId` from a body.
fn body_account(body: &Value) -> BResult<SessionId> {
    match body.get("accountId") {
        None | Some(Value::Null) => account_id(None),
        Some(Value::String(s)) => account_id(Some(s)),
        Some(_) => Err(bad_request("accountId", "accountId must be a string")),
    }
}

/// An optional string field of a body; a value of another type is a 400 naming it.
fn opt_string(body: &Value, field: &str) -> BResult<Option<String>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad_request(field, format!("{field} must be a string"))),
    }
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

/// An integer query parameter in `min..=max`, `default` when absent.
pub(super) fn int_param(
    q: &QueryPairs,
    name: &str,
    default: i64,
    min: i64,
    max: i64,
) -> BResult<i64> {
    match q.get(name) {
        None | Some("") => Ok(default),
        Some(raw) => raw
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                bad_request(
                    name,
                    format!("{name} must be an integer from {min} to {max}"),
                )
            }),
    }
}

/// A page's `limit`: `default` when absent, at least 1, and `largest` for anything larger
/// (Zernio's `limit` has no maximum; the answer's `pagination.limit` says which was used).
pub(super) fn limit_param(q: &QueryPairs, default: i64, largest: i64) -> BResult<i64> {
    match q.get("limit") {
        None | Some("") => Ok(default),
        Some(raw) => raw
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .map(|n| n.min(largest))
            .ok_or_else(|| {
                bad_request(
                    "limit",
                    format!("limit must be a positive integer (a page holds at most {largest})"),
                )
            }),
    }
}

/// A template's `components` (`template.components`), each checked as a Wapio template send
/// checks it (Meta's rules: `index` a number or a string of digits from 0 to 9, `sub_type`
/// and `index` required on buttons, known parameter types): a 400 naming the field at fault.
pub(super) fn template_components(
    template: &Value,
) -> BResult<Vec<wharf_core::message::TemplateComponent>> {
    match template.get("components") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(all)) => all
            .iter()
            .enumerate()
            .map(|(i, c)| {
                crate::http::wapio::interactive::component(&format!("template.components[{i}]"), c)
                    .map_err(ZernioError::from)
            })
            .collect(),
        Some(_) => Err(bad_request(
            "template.components",
            "template.components must be an array",
        )),
    }
}
