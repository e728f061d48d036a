//! The Kapso dialect: sandbox sessions at `/api/v1/sandbox_sessions` (a phone activates by
//! sending its code to the sandbox number) and the agents phones can be bound to at
//! `/api/v1/agents`. `X-API-Key` (or Bearer) auth with a personal access token; answers are
//! wrapped in `{"data": …}`, errors are `{"error": "...", "errors": {field: [...]}}`.

use std::collections::BTreeMap;

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
use wharf_core::{AgentId, SandboxId, time::rfc3339};
use wharf_store::{AgentRow, SandboxDialect, SandboxRow, SandboxStatus};

use super::{
    AppState, auth,
    error::ApiError,
    extract::{DialectJson, double_option},
};
use crate::{
    ServiceError,
    services::{
        Caller,
        sandbox::{AgentChange, CreateSandbox},
    },
};

/// Kapso's error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct KapsoErrorBody {
    /// What went wrong.
    pub error: String,
    /// Messages by field at fault, when a field is.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, Vec<String>>,
}

/// An error answer of this dialect.
#[derive(Debug)]
pub struct KapsoError {
    status: StatusCode,
    body: KapsoErrorBody,
    headers: http::HeaderMap,
}

impl From<ApiError> for KapsoError {
    fn from(mut e: ApiError) -> Self {
        // Fields are named as Kapso's validations name them: without the wrapper object.
        e.body.errors = std::mem::take(&mut e.body.errors)
            .into_iter()
            .map(|(field, messages)| {
                let short = ["whatsapp_sandbox_session.", "agent."]
                    .iter()
                    .find_map(|wrapper| field.strip_prefix(wrapper))
                    .map(str::to_owned);
                (short.unwrap_or(field), messages)
            })
            .collect();
        let error = match e.body.errors.iter().next() {
            Some((field, messages)) => format!("{field}: {}", messages.join("; ")),
            None => e.body.message.clone(),
        };
        Self {
            status: e.status,
            body: KapsoErrorBody {
                error,
                errors: e.body.errors.clone(),
            },
            headers: e.headers.clone(),
        }
    }
}

impl From<ServiceError> for KapsoError {
    fn from(e: ServiceError) -> Self {
        ApiError::from(e).into()
    }
}

impl KapsoError {
    /// The envelope's JSON alone (for answers made below the router).
    pub fn body_json(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(&self.body)
    }
}

impl IntoResponse for KapsoError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        response.headers_mut().extend(self.headers);
        response
    }
}

type KResult<T> = Result<T, KapsoError>;

/// A JSON body, with malformed input answered in this dialect's envelope.
type KJson<T> = DialectJson<T, KapsoError>;

/// The routes, for the OpenAPI document.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sessions, create_session))
        .routes(routes!(get_session, delete_session))
        .routes(routes!(list_agents, create_agent))
        .routes(routes!(get_agent, update_agent, delete_agent))
}

/// Puts Kapso's authentication in front of `router`.
pub fn mount(router: Router<AppState>, state: AppState) -> Router<AppState> {
    router.layer(middleware::from_fn_with_state(state, kapso_auth))
}

async fn kapso_auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    auth::admit_with(&state, req, next, auth::Admit::PatOnly, |e| {
        KapsoError::from(e).into_response()
    })
    .await
}

/// An agent.
#[derive(Debug, Serialize, ToSchema)]
pub struct KapsoAgent {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// The account the agent belongs to.
    pub project_id: String,
    /// Where inbound sandbox messages of phones bound to the agent are delivered (signed
    /// like every Wharf webhook).
    pub webhook_url: Option<String>,
    /// The endpoint's signing secret: only in the answer that created the endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

fn agent_view(row: &AgentRow, secret: Option<String>) -> KapsoAgent {
    KapsoAgent {
        id: row.id.to_string(),
        name: row.name.clone(),
        description: row.description.clone(),
        project_id: row.account_id.to_string(),
        webhook_url: row.webhook_url.clone(),
        webhook_secret: secret,
        created_at: rfc3339(row.created_at),
        updated_at: rfc3339(row.updated_at),
    }
}

/// A sandbox session, as Kapso shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct KapsoSandboxSession {
    pub id: String,
    /// E.164 with `+`.
    pub phone_number: String,
    /// `pending_activation` or `active`.
    pub status: String,
    /// Six characters; the phone activates by sending it to the sandbox number.
    pub activation_code: String,
    pub activation_message: String,
    /// `https://wa.me/<sandbox number>?text=<code>`.
    pub activation_link: Option<String>,
    pub activated_at: Option<String>,
    pub expires_at: String,
    pub created_at: String,
    pub updated_at: String,
    pub agent: Option<KapsoAgent>,
}

fn session_view(
    row: &SandboxRow,
    number: Option<&wharf_core::Phone>,
    agent: Option<&AgentRow>,
) -> KapsoSandboxSession {
    KapsoSandboxSession {
        id: row.id.to_string(),
        phone_number: row.phone.e164().to_owned(),
        status: match row.status {
            SandboxStatus::Pending => "pending_activation",
            SandboxStatus::Active => "active",
        }
        .into(),
        activation_code: row.activation_code.clone(),
        activation_message: format!(
            "Your WhatsApp Sandbox activation code is: {}",
            row.activation_code
        ),
        activation_link: number
            .map(|n| format!("https://wa.me/{}?text={}", n.digits(), row.activation_code)),
        activated_at: row.activated_at.map(rfc3339),
        expires_at: rfc3339(row.expires_at),
        created_at: rfc3339(row.created_at),
        updated_at: rfc3339(row.updated_at),
        agent: agent.map(|a| agent_view(a, None)),
    }
}

/// `{"data": …}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Data<T> {
    pub data: T,
}

/// The session part of a creation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KapsoSessionFields {
    /// The phone in international format (`+12345678901`).
    pub phone_number: String,
    /// An agent of yours to bind the phone to (optional).
    pub agent_id: Option<String>,
}

/// `POST /api/v1/sandbox_sessions` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct KapsoCreateBody {
    pub whatsapp_sandbox_session: KapsoSessionFields,
}

fn sandbox_id(id: &str) -> Result<SandboxId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::not_found("sandbox session"))
}

fn agent_id(id: &str) -> Result<AgentId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found("agent"))
}

/// The agents of `rows`, by id.
async fn agents_of(
    app: &AppState,
    caller: &Caller,
    rows: &[SandboxRow],
) -> KResult<BTreeMap<AgentId, AgentRow>> {
    let mut out = BTreeMap::new();
    if rows.iter().any(|r| r.agent_id.is_some()) {
        for agent in app.services.sandbox.agents(caller).await? {
            out.insert(agent.id, agent);
        }
    }
    Ok(out)
}

/// GET /api/v1/sandbox_sessions — the project's non-expired sandbox sessions.
#[utoipa::path(get, path = "/api/v1/sandbox_sessions", tag = "kapso-sandbox",
    responses((status = 200, body = Data<Vec<KapsoSandboxSession>>), (status = 401, body = KapsoErrorBody)))]
async fn list_sessions(
    State(app): State<AppState>,
    caller: Caller,
) -> KResult<Json<Data<Vec<KapsoSandboxSession>>>> {
    let (rows, number) = app.services.sandbox.list(&caller).await?;
    let agents = agents_of(&app, &caller, &rows).await?;
    Ok(Json(Data {
        data: rows
            .iter()
            .map(|r| session_view(r, number.as_ref(), r.agent_id.and_then(|a| agents.get(&a))))
            .collect(),
    }))
}

/// POST /api/v1/sandbox_sessions — a pending session with its activation code (201), or the
/// project's live session of the same phone, refreshed (200).
#[utoipa::path(post, path = "/api/v1/sandbox_sessions", tag = "kapso-sandbox", request_body = KapsoCreateBody,
    responses((status = 201, body = Data<KapsoSandboxSession>), (status = 200, body = Data<KapsoSandboxSession>),
        (status = 422, body = KapsoErrorBody), (status = 401, body = KapsoErrorBody), (status = 503, body = KapsoErrorBody)))]
async fn create_session(
    State(app): State<AppState>,
    caller: Caller,
    DialectJson(body, _): KJson<KapsoCreateBody>,
) -> KResult<(StatusCode, Json<Data<KapsoSandboxSession>>)> {
    let fields = body.whatsapp_sandbox_session;
    let agent = match fields.agent_id.as_deref().filter(|a| !a.is_empty()) {
        Some(raw) => Some(
            raw.parse::<AgentId>()
                .map_err(|_| KapsoError::from(ApiError::invalid("agent_id", "no such agent")))?,
        ),
        None => None,
    };
    let created = app
        .services
        .sandbox
        .create(
            &caller,
            CreateSandbox {
                phone: fields.phone_number,
                phone_field: "phone_number",
                dialect: SandboxDialect::Kapso,
                agent_id: agent,
            },
        )
        .await?;
    let status = if created.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(Data {
            data: session_view(
                &created.session,
                Some(&created.number),
                created.agent.as_ref(),
            ),
        }),
    ))
}

/// GET /api/v1/sandbox_sessions/{id} — one live session.
#[utoipa::path(get, path = "/api/v1/sandbox_sessions/{id}", tag = "kapso-sandbox", params(("id" = String, Path)),
    responses((status = 200, body = Data<KapsoSandboxSession>), (status = 404, body = KapsoErrorBody)))]
async fn get_session(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> KResult<Json<Data<KapsoSandboxSession>>> {
    let row = app.services.sandbox.get(&caller, sandbox_id(&id)?).await?;
    let number = app.services.sandbox.number().await?.map(|(_, p)| p);
    let agent = match row.agent_id {
        Some(a) => match app.services.sandbox.agent(&caller, a).await {
            Ok(agent) => Some(agent),
            Err(ServiceError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    Ok(Json(Data {
        data: session_view(&row, number.as_ref(), agent.as_ref()),
    }))
}

/// DELETE /api/v1/sandbox_sessions/{id} — revokes the session (204): sends to its phone
/// are refused from now on.
#[utoipa::path(delete, path = "/api/v1/sandbox_sessions/{id}", tag = "kapso-sandbox", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = KapsoErrorBody)))]
async fn delete_session(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> KResult<StatusCode> {
    app.services
        .sandbox
        .delete(&caller, sandbox_id(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An agent's editable fields.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KapsoAgentFields {
    /// Required on creation; cannot be `null`.
    #[serde(default, deserialize_with = "double_option")]
    /// 1 to 200 characters once trimmed.
    #[schema(value_type = String, required = false, pattern = "\\S", max_length = 200)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 2000)]
    pub description: Option<Option<String>>,
    /// Where the agent's sandbox traffic is delivered; `null` removes it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub webhook_url: Option<Option<String>>,
}

/// Agent bodies: `{"agent": {...}}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KapsoAgentBody {
    pub agent: KapsoAgentFields,
}

impl KapsoAgentFields {
    fn change(self) -> Result<AgentChange, ApiError> {
        let name = match self.name {
            Some(None) => return Err(ApiError::invalid("name", "must not be null")),
            Some(Some(name)) => Some(name),
            None => None,
        };
        Ok(AgentChange {
            name,
            description: self.description,
            webhook_url: self.webhook_url,
        })
    }
}

/// GET /api/v1/agents — the project's agents.
#[utoipa::path(get, path = "/api/v1/agents", tag = "kapso-sandbox",
    responses((status = 200, body = Data<Vec<KapsoAgent>>), (status = 401, body = KapsoErrorBody)))]
async fn list_agents(
    State(app): State<AppState>,
    caller: Caller,
) -> KResult<Json<Data<Vec<KapsoAgent>>>> {
    let rows = app.services.sandbox.agents(&caller).await?;
    Ok(Json(Data {
        data: rows.iter().map(|r| agent_view(r, None)).collect(),
    }))
}

/// POST /api/v1/agents — creates an agent (201).
#[utoipa::path(post, path = "/api/v1/agents", tag = "kapso-sandbox", request_body = KapsoAgentBody,
    responses((status = 201, body = Data<KapsoAgent>), (status = 422, body = KapsoErrorBody)))]
async fn create_agent(
    State(app): State<AppState>,
    caller: Caller,
    DialectJson(body, _): KJson<KapsoAgentBody>,
) -> KResult<(StatusCode, Json<Data<KapsoAgent>>)> {
    let (row, secret) = app
        .services
        .sandbox
        .create_agent(&caller, body.agent.change()?)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Data {
            data: agent_view(&row, secret),
        }),
    ))
}

/// GET /api/v1/agents/{id} — one agent.
#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "kapso-sandbox", params(("id" = String, Path)),
    responses((status = 200, body = Data<KapsoAgent>), (status = 404, body = KapsoErrorBody)))]
async fn get_agent(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> KResult<Json<Data<KapsoAgent>>> {
    let row = app.services.sandbox.agent(&caller, agent_id(&id)?).await?;
    Ok(Json(Data {
        data: agent_view(&row, None),
    }))
}

/// PATCH /api/v1/agents/{id} — edits an agent.
#[utoipa::path(patch, path = "/api/v1/agents/{id}", tag = "kapso-sandbox", params(("id" = String, Path)),
    request_body = KapsoAgentBody,
    responses((status = 200, body = Data<KapsoAgent>), (status = 404, body = KapsoErrorBody), (status = 422, body = KapsoErrorBody)))]
async fn update_agent(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    DialectJson(body, _): KJson<KapsoAgentBody>,
) -> KResult<Json<Data<KapsoAgent>>> {
    let (row, secret) = app
        .services
        .sandbox
        .update_agent(&caller, agent_id(&id)?, body.agent.change()?)
        .await?;
    Ok(Json(Data {
        data: agent_view(&row, secret),
    }))
}

/// DELETE /api/v1/agents/{id} — deletes an agent and its endpoint (204); phones bound to it
/// stay activated.
#[utoipa::path(delete, path = "/api/v1/agents/{id}", tag = "kapso-sandbox", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = KapsoErrorBody)))]
async fn delete_agent(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> KResult<StatusCode> {
    app.services
        .sandbox
        .delete_agent(&caller, agent_id(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
