//! Message templates: `GET/POST /v1/whatsapp/templates`,
//! `GET/PATCH/DELETE /v1/whatsapp/templates/{templateName}`.

use axum::{
    Json,
    extract::{Path, State},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{BResult, body_account, object, opt_string, query_account, service_error};
use crate::{
    http::{
        AppState,
        error::ApiError,
        extract::{JsonBytes, QueryPairs},
        zernio::{ZernioError, ZernioErrorBody},
    },
    services::{
        Caller,
        templates::{NewTemplate, TemplateFilter, TemplateView},
    },
};

/// A query parameter, when given and not empty.
fn nonempty(query: &QueryPairs, name: &str) -> Option<String> {
    query.get(name).filter(|v| !v.is_empty()).map(str::to_owned)
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_templates, create_template))
        .routes(routes!(get_template, update_template, delete_template))
}

/// A template as Zernio shows it (Graph's fields).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ZTemplate {
    /// The WhatsApp template id (Meta's on cloud sessions, `tpl_…` elsewhere).
    pub id: String,
    pub name: String,
    /// `APPROVED`, `PENDING` or `REJECTED` (Meta may also say `PAUSED` or `DISABLED`).
    pub status: String,
    /// `AUTHENTICATION`, `MARKETING` or `UTILITY`.
    pub category: String,
    pub language: String,
    #[schema(value_type = Vec<Object>)]
    pub components: Value,
    /// Meta's reason when it rejected (or paused) the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_reason: Option<String>,
}

impl From<TemplateView> for ZTemplate {
    fn from(t: TemplateView) -> Self {
        Self {
            id: t.id,
            name: t.name,
            status: t.status,
            category: t.category,
            language: t.language,
            components: t.components,
            rejected_reason: t.reason,
        }
    }
}

/// `GET /v1/whatsapp/templates` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ZTemplateList {
    pub success: bool,
    pub templates: Vec<ZTemplate>,
}

/// `GET /v1/whatsapp/templates/{templateName}` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ZTemplateOne {
    pub success: bool,
    pub template: ZTemplate,
}

/// The template of a creation answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ZTemplateSummary {
    pub id: String,
    pub name: String,
    /// `PENDING` while Meta reviews it (cloud); `APPROVED` at once elsewhere.
    pub status: String,
    pub category: String,
    pub language: String,
}

/// `POST /v1/whatsapp/templates` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ZTemplateCreated {
    pub success: bool,
    pub template: ZTemplateSummary,
}

/// The template of an update answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ZTemplateStatus {
    pub id: String,
    pub name: String,
    pub status: String,
}

/// `PATCH /v1/whatsapp/templates/{templateName}` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ZTemplateUpdated {
    pub success: bool,
    pub template: ZTemplateStatus,
}

/// `DELETE /v1/whatsapp/templates/{templateName}` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ZTemplateDeleted {
    pub success: bool,
    pub message: String,
}

/// `POST /v1/whatsapp/templates` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZCreateTemplateBody {
    /// The WhatsApp account (a session id of yours).
    pub account_id: String,
    /// `^[a-z][a-z0-9_]*$`.
    pub name: String,
    /// `AUTHENTICATION`, `MARKETING` or `UTILITY`.
    pub category: String,
    /// A language code such as `en_US`.
    pub language: String,
    /// HEADER, BODY, FOOTER and BUTTONS components (Meta's shape).
    #[schema(value_type = Vec<Object>)]
    pub components: Value,
}

/// `PATCH /v1/whatsapp/templates/{templateName}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZUpdateTemplateBody {
    pub account_id: String,
    /// The language to edit (default: the first).
    pub language: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub components: Value,
}

/// GET /v1/whatsapp/templates — the templates of the WhatsApp account (from Graph on cloud
/// sessions).
#[utoipa::path(get, path = "/v1/whatsapp/templates", tag = "zernio-business",
    params(("accountId" = String, Query, description = "The WhatsApp account (a session id of yours)."),
        ("name" = Option<String>, Query, description = "Only names containing this."),
        ("language" = Option<String>, Query), ("status" = Option<String>, Query, description = "APPROVED, PENDING, REJECTED, …")),
    responses((status = 200, body = ZTemplateList), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody, description = "WhatsApp account not found")))]
async fn list_templates(
    State(app): State<AppState>,
    caller: Caller,
    query: Result<QueryPairs, ApiError>,
) -> BResult<Json<ZTemplateList>> {
    let query = query.map_err(ZernioError::from)?;
    let session = query_account(&query)?;
    let filter = TemplateFilter {
        name: nonempty(&query, "name"),
        language: nonempty(&query, "language"),
        status: nonempty(&query, "status"),
    };
    let templates = app
        .services
        .templates
        .list(&caller, session, &filter)
        .await
        .map_err(service_error)?;
    Ok(Json(ZTemplateList {
        success: true,
        templates: templates.into_iter().map(ZTemplate::from).collect(),
    }))
}

/// POST /v1/whatsapp/templates — creates a template: submitted to Meta for review on cloud
/// sessions, checked against Meta's rules and approved at once on web and emulator sessions.
#[utoipa::path(post, path = "/v1/whatsapp/templates", tag = "zernio-business",
    request_body = ZCreateTemplateBody,
    responses((status = 200, body = ZTemplateCreated), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody, description = "WhatsApp account not found")))]
async fn create_template(
    State(app): State<AppState>,
    caller: Caller,
    body: Result<JsonBytes, ApiError>,
) -> BResult<Json<ZTemplateCreated>> {
    let (body, _) = object(body)?;
    let session = body_account(&body)?;
    let new = NewTemplate {
        name: opt_string(&body, "name")?,
        category: opt_string(&body, "category")?,
        language: opt_string(&body, "language")?,
        components: body.get("components").filter(|c| !c.is_null()).cloned(),
    };
    let t = app
        .services
        .templates
        .create(&caller, session, new)
        .await
        .map_err(service_error)?;
    Ok(Json(ZTemplateCreated {
        success: true,
        template: ZTemplateSummary {
            id: t.id,
            name: t.name,
            status: t.status,
            category: t.category,
            language: t.language,
        },
    }))
}

/// GET /v1/whatsapp/templates/{templateName} — one template (its first language).
#[utoipa::path(get, path = "/v1/whatsapp/templates/{templateName}", tag = "zernio-business",
    params(("templateName" = String, Path), ("accountId" = String, Query),
        ("language" = Option<String>, Query, description = "That language (default: the first).")),
    responses((status = 200, body = ZTemplateOne), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody)))]
async fn get_template(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    query: Result<QueryPairs, ApiError>,
) -> BResult<Json<ZTemplateOne>> {
    let query = query.map_err(ZernioError::from)?;
    let session = query_account(&query)?;
    let language = nonempty(&query, "language");
    let t = app
        .services
        .templates
        .get(&caller, session, &name, language.as_deref())
        .await
        .map_err(service_error)?;
    Ok(Json(ZTemplateOne {
        success: true,
        template: t.into(),
    }))
}

/// PATCH /v1/whatsapp/templates/{templateName} — new components (Meta reviews them again on
/// cloud sessions).
#[utoipa::path(patch, path = "/v1/whatsapp/templates/{templateName}", tag = "zernio-business",
    params(("templateName" = String, Path)), request_body = ZUpdateTemplateBody,
    responses((status = 200, body = ZTemplateUpdated), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody)))]
async fn update_template(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Result<JsonBytes, ApiError>,
) -> BResult<Json<ZTemplateUpdated>> {
    let (body, _) = object(body)?;
    let session = body_account(&body)?;
    let components = body.get("components").filter(|c| !c.is_null()).cloned();
    let language = opt_string(&body, "language")?.filter(|l| !l.is_empty());
    let t = app
        .services
        .templates
        .update(&caller, session, &name, language.as_deref(), components)
        .await
        .map_err(service_error)?;
    Ok(Json(ZTemplateUpdated {
        success: true,
        template: ZTemplateStatus {
            id: t.id,
            name: t.name,
            status: t.status,
        },
    }))
}

/// DELETE /v1/whatsapp/templates/{templateName} — deletes every language of the template.
#[utoipa::path(delete, path = "/v1/whatsapp/templates/{templateName}", tag = "zernio-business",
    params(("templateName" = String, Path), ("accountId" = String, Query),
        ("language" = Option<String>, Query, description = "Only that language (default: every one).")),
    responses((status = 200, body = ZTemplateDeleted), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody)))]
async fn delete_template(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    query: Result<QueryPairs, ApiError>,
) -> BResult<Json<ZTemplateDeleted>> {
    let query = query.map_err(ZernioError::from)?;
    let session = query_account(&query)?;
    let language = nonempty(&query, "language");
    app.services
        .templates
        .delete(&caller, session, &name, language.as_deref())
        .await
        .map_err(service_error)?;
    Ok(Json(ZTemplateDeleted {
        success: true,
        message: format!("Template \"{name}\" deleted successfully"),
    }))
}
