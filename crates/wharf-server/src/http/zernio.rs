//! The Zernio (formerly Late) dialect: WhatsApp sandbox sessions at
//! `/v1/whatsapp/sandbox/sessions`, also under `/api` (Zernio's clients use a base URL ending
//! in `/api`). Bearer auth with a personal access token; errors in Zernio's envelope
//! `{"error", "type", "code", "param"}`.

use axum::{
    Json, Router,
    extract::{Path, Request, State},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use wharf_core::{EngineError, SandboxId, time::rfc3339};
use wharf_store::{SandboxDialect, SandboxRow, SandboxStatus};

use super::{AppState, auth, error::ApiError, extract::DialectJson};
use crate::{
    ServiceError,
    services::{Caller, sandbox::CreateSandbox},
};

/// Zernio's error envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct ZernioErrorBody {
    /// What went wrong, for a person.
    pub error: String,
    /// `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `rate_limit_error`, `platform_error` or `api_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What went wrong, for a program: `invalid_field_value`, `missing_credentials`,
    /// `invalid_credentials`, `forbidden`, `rate_limited`, `platform_error`,
    /// `platform_unavailable`, `sandbox_unavailable`, `not_found`, `internal_error`, ….
    pub code: String,
    /// The request field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}

/// An error answer of this dialect.
#[derive(Debug)]
pub struct ZernioError {
    status: StatusCode,
    body: ZernioErrorBody,
    headers: http::HeaderMap,
}

impl ZernioError {
    pub(crate) fn new(
        status: StatusCode,
        kind: &str,
        code: &str,
        error: impl Into<String>,
    ) -> Self {
        Self {
            status,
            body: ZernioErrorBody {
                error: error.into(),
                kind: kind.into(),
                code: code.into(),
                param: None,
            },
            headers: http::HeaderMap::new(),
        }
    }

    pub(crate) fn param(mut self, param: &str) -> Self {
        self.body.param = Some(param.to_owned());
        self
    }

    /// The same error with another status (the Business API's 404s and 422s).
    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// The 400 of an unknown, foreign or malformed session id (the same for all three, so
    /// no one learns which ids exist).
    fn unknown_session() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_field_value",
            "sandbox session not found",
        )
        .param("sessionId")
    }
}

impl From<ApiError> for ZernioError {
    fn from(e: ApiError) -> Self {
        let status = e.status;
        let reason = e.body.reason_code.as_str();
        let (status, kind, code) = match (status.as_u16(), reason) {
            (401, "unauthenticated") => (status, "authentication_error", "missing_credentials"),
            (401, _) => (status, "authentication_error", "invalid_credentials"),
            (403, _) => (status, "permission_error", reason),
            (429, _) => (status, "rate_limit_error", "rate_limited"),
            // Zernio answers every validation failure with 400.
            (422, "validation_error") => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_field_value",
            ),
            (422, _) => (StatusCode::BAD_REQUEST, "invalid_request_error", reason),
            (s, _) if s >= 500 => (status, "api_error", reason),
            _ => (status, "invalid_request_error", reason),
        };
        let (param, error) = match e.body.errors.iter().next() {
            Some((field, messages)) => (
                Some(field.clone()),
                format!("{field}: {}", messages.join("; ")),
            ),
            None => (None, e.body.message.clone()),
        };
        let mut out = Self::new(status, kind, code, error);
        out.body.param = param;
        out.headers = e.headers.clone();
        out
    }
}

impl From<ServiceError> for ZernioError {
    fn from(e: ServiceError) -> Self {
        match e {
            // What the provider refused, in its own words.
            ServiceError::Engine(EngineError::Permanent(m) | EngineError::Conflict(m)) => {
                Self::new(
                    StatusCode::BAD_REQUEST,
                    "platform_error",
                    "platform_error",
                    m,
                )
            }
            ServiceError::Engine(e @ EngineError::Unsupported(_)) => Self::new(
                StatusCode::BAD_REQUEST,
                "platform_error",
                "platform_error",
                e.to_string(),
            ),
            ServiceError::BadGateway(m) => Self::new(
                StatusCode::BAD_GATEWAY,
                "platform_error",
                "platform_bad_answer",
                m,
            ),
            // A passing engine failure: try again later.
            e @ ServiceError::Engine(_) => {
                let mut out = Self::from(ApiError::from(e));
                if out.status == StatusCode::SERVICE_UNAVAILABLE {
                    out.body.kind = "platform_error".into();
                    out.body.code = "platform_unavailable".into();
                }
                out
            }
            // An unknown, foreign or malformed `accountId` (the Business API's, and its
            // dialect's sessions): the parameter at fault is named.
            e @ ServiceError::NotFound("WhatsApp account") => {
                Self::from(ApiError::from(e)).param("accountId")
            }
            other => Self::from(ApiError::from(other)),
        }
    }
}

impl ZernioError {
    /// The envelope's JSON alone (for answers made below the router).
    pub fn body_json(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(&self.body)
    }
}

impl IntoResponse for ZernioError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        response.headers_mut().extend(self.headers);
        response
    }
}

pub(crate) type ZResult<T> = Result<T, ZernioError>;

/// The routes, for the OpenAPI document (paths under `/v1`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sessions, create_session))
        .routes(routes!(delete_session))
}

/// Puts Zernio's authentication in front of `router` and serves it both at its paths and
/// under `/api`.
pub fn mount(router: Router<AppState>, state: AppState) -> Router<AppState> {
    let router = router.layer(middleware::from_fn_with_state(state, zernio_auth));
    Router::new().merge(router.clone()).nest("/api", router)
}

async fn zernio_auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    auth::admit_with(&state, req, next, auth::Admit::PatOnly, |e| {
        ZernioError::from(e).into_response()
    })
    .await
}

/// A JSON body, with malformed input answered in this dialect's envelope.
pub(crate) type ZJson<T> = DialectJson<T, ZernioError>;

/// A sandbox session, as Zernio shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZernioSandboxSession {
    /// Use it to revoke via DELETE.
    pub id: String,
    /// Digits-only E.164 (no `+`, spaces or dashes).
    #[serde(rename = "phoneE164")]
    pub phone_e164: String,
    /// `pending` until the phone replies, then `active`.
    pub status: String,
    /// Pending sessions get 24 h, activated ones 7 days.
    pub expires_at: String,
    pub activated_at: Option<String>,
    pub created_at: Option<String>,
}

fn view(row: &SandboxRow) -> ZernioSandboxSession {
    ZernioSandboxSession {
        id: row.id.to_string(),
        phone_e164: row.phone.digits().to_owned(),
        status: match row.status {
            SandboxStatus::Pending => "pending",
            SandboxStatus::Active => "active",
        }
        .into(),
        expires_at: rfc3339(row.expires_at),
        activated_at: row.activated_at.map(rfc3339),
        created_at: Some(rfc3339(row.created_at)),
    }
}

/// `GET` answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZernioSandboxList {
    pub sessions: Vec<ZernioSandboxSession>,
    /// The shared sandbox number in E.164, or null when none is set.
    pub sandbox_number: Option<String>,
}

/// `POST` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ZernioCreateBody {
    /// The phone in international format: digits, spaces, dashes and a leading `+`.
    #[schema(value_type = String)]
    pub phone: serde_json::Value,
}

/// `POST` answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZernioSandboxCreated {
    pub session: ZernioSandboxSession,
    pub sandbox_number: String,
}

/// `DELETE` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ZernioSuccess {
    pub success: bool,
}

/// GET /v1/whatsapp/sandbox/sessions — your non-expired sandbox sessions and the number.
#[utoipa::path(get, path = "/v1/whatsapp/sandbox/sessions", tag = "zernio-sandbox",
    responses((status = 200, body = ZernioSandboxList), (status = 401, body = ZernioErrorBody)))]
async fn list_sessions(
    State(app): State<AppState>,
    caller: Caller,
) -> ZResult<Json<ZernioSandboxList>> {
    let (sessions, number) = app.services.sandbox.list(&caller).await?;
    Ok(Json(ZernioSandboxList {
        sessions: sessions.iter().map(view).collect(),
        sandbox_number: number.map(|p| p.e164().to_owned()),
    }))
}

/// POST /v1/whatsapp/sandbox/sessions — starts (or refreshes) the activation of a phone and
/// sends it the verification message from the sandbox number.
#[utoipa::path(post, path = "/v1/whatsapp/sandbox/sessions", tag = "zernio-sandbox",
    request_body = ZernioCreateBody,
    responses((status = 200, body = ZernioSandboxCreated), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 503, body = ZernioErrorBody)))]
async fn create_session(
    State(app): State<AppState>,
    caller: Caller,
    DialectJson(body, _): ZJson<ZernioCreateBody>,
) -> ZResult<Json<ZernioSandboxCreated>> {
    let phone = match body.phone {
        serde_json::Value::String(s) => s,
        serde_json::Value::Null => String::new(),
        _ => {
            return Err(ZernioError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_field_value",
                "phone: must be a string",
            )
            .param("phone"));
        }
    };
    let created = app
        .services
        .sandbox
        .create(
            &caller,
            CreateSandbox {
                phone,
                phone_field: "phone",
                dialect: SandboxDialect::Zernio,
                agent_id: None,
            },
        )
        .await?;
    Ok(Json(ZernioSandboxCreated {
        session: view(&created.session),
        sandbox_number: created.number.e164().to_owned(),
    }))
}

/// DELETE /v1/whatsapp/sandbox/sessions/{sessionId} — revokes a session: future sends to its
/// phone are refused. Unknown and foreign ids answer the same 400.
#[utoipa::path(delete, path = "/v1/whatsapp/sandbox/sessions/{sessionId}", tag = "zernio-sandbox",
    params(("sessionId" = String, Path)),
    responses((status = 200, body = ZernioSuccess), (status = 400, body = ZernioErrorBody)))]
async fn delete_session(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ZResult<Json<ZernioSuccess>> {
    let id: SandboxId = id.parse().map_err(|_| ZernioError::unknown_session())?;
    match app.services.sandbox.delete(&caller, id).await {
        Ok(()) => Ok(Json(ZernioSuccess { success: true })),
        Err(ServiceError::NotFound(_)) => Err(ZernioError::unknown_session()),
        Err(e) => Err(e.into()),
    }
}
