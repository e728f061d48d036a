//! HTTP: the dialects' routers, the shared middleware and the OpenAPI document.

pub mod auth;
pub mod business;
pub mod conn;
mod dashboard;
mod emulator;
pub mod envelope;
pub mod error;
mod events;
pub mod extract;
pub mod forward;
mod kapso;
mod meta;
mod ops;
pub mod ratelimit;
pub mod wapio;
mod webhooks;
mod zernio;

use std::sync::Arc;

use axum::{Router, extract::Request, middleware};
use http::{HeaderName, HeaderValue};
use tower::ServiceBuilder;
use tower_http::{
    request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    trace::{DefaultOnResponse, TraceLayer},
};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_axum::router::OpenApiRouter;

use self::ratelimit::AccountLimiter;
use crate::services::Services;

/// What every handler can reach; cloned for every request (and by every middleware that
/// takes it), so it is one shared allocation: cloning the services field by field cost a few
/// percent of a send's CPU time.
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

impl std::ops::Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

/// The contents of [`AppState`].
pub struct AppStateInner {
    pub services: Services,
    pub limiter: Arc<AccountLimiter>,
    pub openapi: Arc<utoipa::openapi::OpenApi>,
    /// Fires when the server shuts down: long-lived answers (event streams) end then, so a
    /// graceful shutdown does not wait for them forever.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// When set, `/metrics` takes this bearer token.
    pub metrics_token: Option<String>,
    /// The dashboard's logins on this instance.
    pub dashboard: dashboard::Logins,
}

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(title = "Wharf", description = "Self-hosted WhatsApp API gateway. Errors use the envelope `{success, message, reason_code, errors}`."),
    modifiers(&SecurityAddon),
    security(("bearer" = []), ("api_key" = [])),
    tags((name = "sessions", description = "WhatsApp session lifecycle (Wapio Sessions API)."),
         (name = "messages", description = "Sending, tracking and managing messages (Wapio Messages API)."),
         (name = "contacts", description = "A session's contacts: on WhatsApp, address book, saved names, pictures, blocking (Wapio Contacts API)."),
         (name = "groups", description = "A session's groups: participants, admins, settings, invite links (Wapio Groups API)."),
         (name = "channels", description = "Channels (newsletters) a session follows."),
         (name = "webhooks", description = "Webhook endpoints, signed deliveries and their log."),
         (name = "events", description = "The event log: catch-up and a live stream."),
         (name = "emulator", description = "Control surface of the emulator engine."),
         (name = "zernio-business", description = "Zernio's WhatsApp Business API: templates, bulk sends, contacts CRM, contact groups and the business profile (also under /api). `accountId` is a session id of yours. Errors use `{error, type, code, param}`."),
         (name = "zernio-sandbox", description = "Sandbox sessions in the Zernio dialect (also under /api). Errors use `{error, type, code, param}`."),
         (name = "kapso-sandbox", description = "Sandbox sessions and agents in the Kapso dialect. Answers are `{data}`; errors `{error, errors}`."),
         (name = "meta-webhook", description = "Webhooks from Meta's Cloud API (public; signed with the app secret)."),
         (name = "ops", description = "Health and readiness."))
)]
struct ApiDoc;

struct SecurityAddon;
impl Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

fn authenticated_routes(emulator_control: bool) -> OpenApiRouter<AppState> {
    let router = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(wapio::sessions::routes())
        .merge(wapio::messages::routes())
        .merge(wapio::contacts::routes())
        .merge(wapio::groups::routes())
        .merge(wapio::channels::routes())
        .merge(wapio::account::routes())
        .merge(webhooks::routes())
        .merge(events::routes());
    if emulator_control {
        router.merge(emulator::routes())
    } else {
        router
    }
}

/// The whole application router; `metrics_token`, when set, guards `/metrics`.
pub fn router(
    services: Services,
    limiter: Arc<AccountLimiter>,
    emulator_control: bool,
    shutdown: tokio_util::sync::CancellationToken,
    metrics_token: Option<String>,
    forwarder: forward::Forwarder,
) -> Router {
    let (authenticated, mut openapi) = authenticated_routes(emulator_control).split_for_parts();
    let (public, public_api) = ops::routes().merge(meta::routes()).split_for_parts();
    let (zernio_routes, zernio_api) = zernio::routes().split_for_parts();
    let (business_routes, business_api) = business::routes().split_for_parts();
    let (kapso_routes, kapso_api) = kapso::routes().split_for_parts();
    // The document describes exactly the routes this instance mounts.
    openapi.merge(public_api);
    openapi.merge(zernio_api);
    openapi.merge(business_api);
    openapi.merge(kapso_api);
    let state = AppState(Arc::new(AppStateInner {
        services,
        limiter,
        openapi: Arc::new(openapi),
        shutdown,
        metrics_token: metrics_token.filter(|t| !t.trim().is_empty()),
        dashboard: dashboard::Logins::default(),
    }));
    let authenticated = authenticated.layer(middleware::from_fn_with_state(
        state.clone(),
        auth::require_auth,
    ));
    let request_id = HeaderName::from_static("x-request-id");
    // The dialects with their own envelopes authenticate with their own error shapes.
    let zernio_routes = zernio::mount(zernio_routes, state.clone());
    let business_routes = business::mount(business_routes, state.clone());
    let kapso_routes = kapso::mount(kapso_routes, state.clone());
    Router::new()
        .merge(authenticated)
        .merge(zernio_routes)
        .merge(business_routes)
        .merge(kapso_routes)
        .merge(public)
        .merge(dashboard::routes())
        .fallback(envelope::not_found)
        .method_not_allowed_fallback(envelope::method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Instances sharing a database: calls a session's owner must answer go there.
        .layer(middleware::from_fn_with_state(forwarder, forward::to_owner))
        // Inside the router's layers, so the matched route template is known.
        .layer(middleware::from_fn(count_request))
        .layer(
            ServiceBuilder::new()
                .layer(middleware::from_fn(envelope::request_id_rule))
                .layer(SetRequestIdLayer::new(
                    request_id.clone(),
                    MakeWharfRequestId,
                ))
                // The ids the request turns out to be about are recorded on its span as
                // they are known (`crate::log_fields`); the answer is one line at INFO.
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|req: &Request| {
                            let id = req
                                .headers()
                                .get("x-request-id")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("");
                            tracing::info_span!(
                                "request",
                                request_id = %id,
                                method = %req.method(),
                                path = %req.uri().path(),
                                account_id = tracing::field::Empty,
                                session_id = tracing::field::Empty,
                                message_id = tracing::field::Empty,
                            )
                        })
                        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(middleware::from_fn(envelope::guard)),
        )
        .with_state(state)
}

/// Counts the request and its latency by method, route template and status.
async fn count_request(req: Request, next: middleware::Next) -> axum::response::Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    // Any method name is valid HTTP: unknown ones share one label, so a client cannot add
    // series without bound.
    let method = match method.as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => m,
        _ => "other",
    };
    crate::metrics::global().request(
        method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Gives each request a `req_…` id unless the client sent one.
#[derive(Clone, Copy)]
struct MakeWharfRequestId;
impl MakeRequestId for MakeWharfRequestId {
    fn make_request_id<B>(&mut self, _: &http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&wharf_core::RequestId::generate().to_string())
            .ok()
            .map(RequestId::new)
    }
}
