//! Bulk template sends: `POST /v1/whatsapp/bulk`.

use std::collections::BTreeMap;

use axum::{Json, extract::State};
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{BResult, bad_request, body_account, object, service_error, template_components};
use crate::{
    http::{AppState, error::ApiError, extract::JsonBytes, zernio::ZernioErrorBody},
    services::{
        Caller,
        bulk::{BulkRecipient, BulkRequest, MAX_RECIPIENTS},
    },
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(send_bulk))
}

/// One recipient of the body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ZBulkRecipient {
    /// E.164.
    pub phone: String,
    /// Body variables by number (`{"1": "John"}`).
    #[serde(default)]
    pub variables: Option<BTreeMap<String, String>>,
}

/// The template of the body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ZBulkTemplate {
    pub name: String,
    pub language: String,
    /// Parameters every recipient shares (header media, buttons), in Meta's send shape.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub components: Option<Value>,
}

/// `POST /v1/whatsapp/bulk` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZBulkBody {
    pub account_id: String,
    /// At most 100.
    pub recipients: Vec<ZBulkRecipient>,
    pub template: ZBulkTemplate,
}

/// The counts of a bulk send.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ZBulkSummary {
    pub total: usize,
    pub sent: usize,
    pub failed: usize,
}

/// What became of one recipient.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZBulkResult {
    pub phone: String,
    pub success: bool,
    /// The queued message (`msg_…`), when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /v1/whatsapp/bulk` answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ZBulkAnswer {
    /// Whether at least one recipient's message was queued.
    pub success: bool,
    pub summary: ZBulkSummary,
    pub results: Vec<ZBulkResult>,
}

fn string_at(v: &Value, key: &str, field: &str) -> BResult<String> {
    match v.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        None | Some(Value::Null) => Err(bad_request(field, format!("{field} is required"))),
        Some(Value::String(_)) => Err(bad_request(field, format!("{field} must not be empty"))),
        Some(_) => Err(bad_request(field, format!("{field} must be a string"))),
    }
}

fn recipients(body: &Value) -> BResult<Vec<BulkRecipient>> {
    let list = match body.get("recipients") {
        Some(Value::Array(list)) => list,
        None | Some(Value::Null) => {
            return Err(bad_request("recipients", "recipients is required"));
        }
        Some(_) => return Err(bad_request("recipients", "recipients must be an array")),
    };
    if list.is_empty() {
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
            let phone = string_at(r, "phone", &format!("{at}.phone"))?;
            let mut variables = BTreeMap::new();
            match r.get("variables") {
                None | Some(Value::Null) => {}
                Some(Value::Object(vars)) => {
                    for (k, v) in vars {
                        let field = format!("{at}.variables.{k}");
                        match v {
                            Value::String(s) => {
                                variables.insert(k.clone(), s.clone());
                            }
                            _ => {
                                return Err(bad_request(
                                    &field,
                                    format!("{field} must be a string"),
                                ));
                            }
                        }
                    }
                }
                Some(_) => {
                    let field = format!("{at}.variables");
                    return Err(bad_request(&field, format!("{field} must be an object")));
                }
            }
            Ok(BulkRecipient { phone, variables })
        })
        .collect()
}

/// POST /v1/whatsapp/bulk — one approved template to up to 100 recipients, each with its
/// own variables; each becomes one durable message. A bad phone or a missing variable fails
/// that recipient alone. `Idempotency-Key`: a retried call answers the same and sends
/// nothing twice.
#[utoipa::path(post, path = "/v1/whatsapp/bulk", tag = "zernio-business",
    request_body = ZBulkBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Same key and body: the first answer again, nothing new sent. Same key, other body: 409.")),
    responses((status = 200, body = ZBulkAnswer), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody, description = "WhatsApp account not found"),
        (status = 409, body = ZernioErrorBody), (status = 422, body = ZernioErrorBody, description = "The template is missing or not approved.")))]
async fn send_bulk(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<JsonBytes, ApiError>,
) -> BResult<Json<ZBulkAnswer>> {
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .map(str::trim)
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .ok_or_else(|| {
                    bad_request(
                        "Idempotency-Key",
                        "Idempotency-Key must be 1 to 255 visible characters",
                    )
                })?
                .to_owned(),
        ),
    };
    let (body, bytes) = object(body)?;
    let session = body_account(&body)?;
    let recipients = recipients(&body)?;
    let template = match body.get("template") {
        Some(t @ Value::Object(_)) => t,
        None | Some(Value::Null) => return Err(bad_request("template", "template is required")),
        Some(_) => return Err(bad_request("template", "template must be an object")),
    };
    let name = string_at(template, "name", "template.name")?;
    let language = string_at(template, "language", "template.language")?;
    let components = template_components(template)?;
    let results = app
        .services
        .bulk
        .send(
            &caller,
            BulkRequest {
                session,
                recipients,
                template: name,
                language,
                components,
            },
            key.map(|k| (k, bytes)),
        )
        .await
        .map_err(service_error)?;
    let sent = results.iter().filter(|r| r.message_id.is_some()).count();
    Ok(Json(ZBulkAnswer {
        success: sent > 0,
        summary: ZBulkSummary {
            total: results.len(),
            sent,
            failed: results.len() - sent,
        },
        results: results
            .into_iter()
            .map(|r| ZBulkResult {
                phone: r.phone,
                success: r.message_id.is_some(),
                message_id: r.message_id,
                error: r.error,
            })
            .collect(),
    }))
}
