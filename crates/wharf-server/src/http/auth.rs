//! Authentication and per-account rate limiting, as one middleware in front of every
//! authenticated route, plus the [`Caller`] extractor handlers use.
//!
//! Tokens come as `Authorization: Bearer <token>` or `X-API-Key: <token>`. Each answer of a
//! rate-limited route carries `x-ratelimit-limit`, `x-ratelimit-remaining` and
//! `x-ratelimit-reset` (seconds until the allowance is full again); a refusal is 429 with
//! `Retry-After` (the allowance itself is `super::ratelimit`).

use axum::{
    extract::{FromRequestParts, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use http::{HeaderMap, StatusCode, request::Parts};
use wharf_core::TokenHash;

use super::{AppState, error::ApiError};
use crate::services::Caller;

/// The presented token, from `Authorization: Bearer`, else `X-API-Key` (an `Authorization`
/// header of another scheme, say a proxy's Basic credentials, is not ours to read).
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim())
                .filter(|t| !t.is_empty())
        });
    bearer.or_else(|| {
        headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|t| !t.is_empty())
    })
}

/// The hash of the request's token, to look the key up again later (a long-lived answer
/// checks that its key was not revoked meanwhile).
pub fn presented_hash(headers: &HeaderMap) -> Option<TokenHash> {
    presented_token(headers).map(TokenHash::of)
}

/// Routes whose handlers commit what they do with the auth epoch of the key
/// (`MessageService::send`), so their key may come from the send path's cache. Every other
/// route reads the key from the database on each request.
const CACHED_KEY_ROUTES: &[&str] = &["/api/send-message"];

/// Whether `req` may be authenticated from the send path's cache: a send without an
/// `Idempotency-Key` (a replay answers from storage before anything is committed).
fn may_use_cached_key(req: &Request) -> bool {
    req.method() == http::Method::POST
        && req
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .is_some_and(|p| CACHED_KEY_ROUTES.contains(&p.as_str()))
        && !req.headers().contains_key("idempotency-key")
}

/// Resolves the caller from the request's token.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    cached: bool,
) -> Result<Caller, ApiError> {
    let Some(token) = presented_token(headers) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "missing credentials: send 'Authorization: Bearer <token>' or 'X-API-Key: <token>'",
        ));
    };
    let invalid = || ApiError::from(crate::ServiceError::Unauthorized);
    if wharf_core::keys::kind_of(token).is_none() {
        return Err(invalid());
    }
    let hash = TokenHash::of(token);
    let (key, epoch) = state
        .services
        .key_of(&hash, cached)
        .await?
        .ok_or_else(invalid)?;
    Ok(Caller::of_key(&key, hash, cached.then_some(epoch)))
}

/// Middleware: authenticates, applies the account's rate limit, and stamps the limit headers
/// on whatever the route answers.
pub async fn require_auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    admit_with(&state, req, next, Admit::AnyKey, ApiError::into_response).await
}

/// Which credentials a group of routes takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Personal access tokens and session keys (the handlers decide).
    AnyKey,
    /// Personal access tokens only: a session key is 403 before the request is looked at.
    PatOnly,
}

/// Authenticates and rate-limits `req`, then runs it with the [`Caller`] and stamps the
/// limit headers; a refusal is answered through `refuse` (each dialect has its envelope).
pub async fn admit_with(
    state: &AppState,
    mut req: Request,
    next: Next,
    admit: Admit,
    refuse: impl FnOnce(ApiError) -> Response,
) -> Response {
    let cached = may_use_cached_key(&req);
    let caller = match authenticate(state, req.headers(), cached).await {
        Ok(caller) => caller,
        Err(e) => return refuse(e),
    };
    crate::log_fields::account(caller.account_id);
    if let Some(session) = caller.session_id {
        crate::log_fields::session(session);
    }
    if admit == Admit::PatOnly
        && let Err(e) = caller.require_pat()
    {
        return refuse(e.into());
    }
    // A key from the send path's cache may have been revoked since it was cached: anything
    // but a committed send is answered only once the key is read again.
    let token = cached.then(|| caller.token.clone()).flatten();
    let admitted = match state.limiter.check(&caller.account_id).await {
        Ok(admitted) => admitted,
        Err(e) => {
            return match revoked_since_cached(state, token.as_ref()).await {
                Some(refusal) => refuse(refusal),
                None => refuse(e),
            };
        }
    };
    req.extensions_mut().insert(caller);
    let mut response = next.run(req).await;
    let status = response.status();
    if (status.is_client_error() || status.is_server_error())
        && status != StatusCode::UNAUTHORIZED
        && let Some(refusal) = revoked_since_cached(state, token.as_ref()).await
    {
        return refuse(refusal);
    }
    // A call the session's owner must answer: the forward layer gives the token back if the
    // owner answers it (the owner counts it).
    if response.headers().contains_key(super::forward::FORWARD_TO) {
        response.extensions_mut().insert(admitted.token);
    }
    response.headers_mut().extend(admitted.headers);
    response
}

/// For a key that came from the send path's cache: the refusal to answer instead when it is
/// no longer live (and the cache is emptied, so its next request is refused at once).
async fn revoked_since_cached(state: &AppState, token: Option<&TokenHash>) -> Option<ApiError> {
    match state.services.key_is_live(token?).await {
        Ok(true) => None,
        Ok(false) => Some(crate::ServiceError::Unauthorized.into()),
        Err(e) => Some(e.into()),
    }
}

/// The caller of a route for personal access tokens only, on a router that admits any key:
/// a session key is refused with 403 before the path or the body is looked at (an extractor
/// of the request's parts runs before the handler's other arguments are read).
pub struct PatCaller(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for PatCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require_pat()?;
        Ok(Self(caller))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            tracing::error!(
                "a handler asked for the caller on a route without the auth middleware"
            );
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "internal server error",
            )
        })
    }
}
