//! The operator's dashboard: server-rendered HTML pages at `/` and under `/dashboard/`, with
//! one small script that keeps marked regions live from the event stream (no polling).
//!
//! A login turns a personal access token into a random cookie (`HttpOnly`,
//! `SameSite=Strict`); the server keeps only the cookie's hash, with the token's hash and a
//! CSRF token every form carries. Every request checks that the token is still live, so
//! revoking it ends its dashboard logins too. Pages call the services with the token's
//! [`Caller`], as the API does.

// Page handlers fail with the error page itself (an axum `Response`, as large as any answer).
#![allow(clippy::result_large_err)]

mod broadcasts;
mod html;
mod login;
mod sandbox;
mod sessions;
mod stream;
mod webhooks;

use std::{collections::HashMap, sync::Mutex};

use axum::{
    Router,
    body::Bytes,
    extract::FromRequestParts,
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use http::{HeaderMap, StatusCode, request::Parts};
use rand::RngCore;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use wharf_core::TokenHash;

use super::{AppState, error::ApiError};
use crate::{ServiceError, services::Caller};

/// The login cookie's name.
const COOKIE: &str = "wharf_dashboard";
/// How long a login lasts, in ms.
const LOGIN_MS: i64 = 12 * 60 * 60 * 1000;

/// The dashboard's routes (stateful; merged into the application router).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(sessions::list_sessions))
        .route(
            "/dashboard/login",
            get(login::login_form).post(login::log_in),
        )
        .route("/dashboard/logout", post(login::log_out))
        .route("/dashboard/sessions", post(sessions::create_session))
        .route("/dashboard/sessions/{id}", get(sessions::show_session))
        .route("/dashboard/sessions/{id}/qr.png", get(sessions::qr_image))
        .route(
            "/dashboard/sessions/{id}/pair-code",
            post(sessions::pair_code),
        )
        .route("/dashboard/sessions/{id}/send", post(sessions::send_test))
        .route(
            "/dashboard/sessions/{id}/{action}",
            post(sessions::act_on_session),
        )
        .route("/dashboard/webhooks", get(webhooks::list_webhooks))
        .route("/dashboard/webhooks/{id}", get(webhooks::show_webhook))
        .route(
            "/dashboard/webhooks/{id}/deliveries/{delivery}/redeliver",
            post(webhooks::redeliver),
        )
        .route("/dashboard/webhooks/{id}/recover", post(webhooks::recover))
        .route("/dashboard/events", get(stream::events_page))
        .route("/dashboard/stream", get(stream::stream))
        .route("/dashboard/sandbox", get(sandbox::show_sandbox))
        .route("/dashboard/broadcasts", get(broadcasts::list_broadcasts))
        .route(
            "/dashboard/broadcasts/{id}/cancel",
            post(broadcasts::cancel),
        )
        .route("/dashboard/assets/app.js", get(script))
        .route("/dashboard/assets/app.css", get(style))
}

/// GET /dashboard/assets/app.js — the dashboard's script.
async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    )
}

/// GET /dashboard/assets/app.css — the dashboard's style sheet.
async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/app.css"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (http::header::CONTENT_TYPE, content_type),
            (http::header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// A dashboard login, kept in the instance's memory by the hash of its cookie.
#[derive(Debug, Clone)]
struct Login {
    pat: TokenHash,
    csrf: String,
    expires_at: i64,
}

/// The live logins of this instance.
#[derive(Debug, Default)]
pub struct Logins(Mutex<HashMap<String, Login>>);

impl Logins {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Login>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a login for the token `pat`: the raw cookie value to set.
    fn start(&self, pat: TokenHash, now: i64) -> String {
        let cookie = random_token();
        let mut map = self.map();
        map.retain(|_, l| l.expires_at > now);
        map.insert(
            digest(&cookie),
            Login {
                pat,
                csrf: random_token(),
                expires_at: now + LOGIN_MS,
            },
        );
        cookie
    }

    fn find(&self, cookie: &str, now: i64) -> Option<Login> {
        let key = digest(cookie);
        let mut map = self.map();
        match map.get(&key) {
            Some(l) if l.expires_at > now => Some(l.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    fn end(&self, cookie: &str) {
        self.map().remove(&digest(cookie));
    }
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn digest(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(text.as_bytes()))
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A logged-in operator: the caller their token stands for, and the CSRF token their forms
/// carry. Without a live login, a page redirects to the login form.
pub struct Operator {
    pub caller: Caller,
    pub csrf: String,
    cookie: String,
}

/// Why a request has no [`Operator`].
pub enum NoLogin {
    /// No cookie, an unknown or expired one, or a revoked token: log in again.
    LogIn,
    /// The database did not answer.
    Failed(ServiceError),
}

impl IntoResponse for NoLogin {
    fn into_response(self) -> Response {
        match self {
            NoLogin::LogIn => Redirect::to("/dashboard/login").into_response(),
            NoLogin::Failed(e) => error_page(e),
        }
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = NoLogin;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, NoLogin> {
        let raw = cookie(&parts.headers, COOKIE).ok_or(NoLogin::LogIn)?;
        let now = app.services.messages.clock().now_millis();
        let login = app.dashboard.find(raw, now).ok_or(NoLogin::LogIn)?;
        let Some((key, _)) = app
            .services
            .key_of(&login.pat, false)
            .await
            .map_err(NoLogin::Failed)?
        else {
            app.dashboard.end(raw);
            return Err(NoLogin::LogIn);
        };
        crate::log_fields::account(key.account_id);
        Ok(Operator {
            caller: Caller::of_key(&key, login.pat, None),
            csrf: login.csrf,
            cookie: raw.to_owned(),
        })
    }
}

/// A form's fields, with its CSRF token checked against the operator's.
pub struct Form<T>(pub T);

impl<T: DeserializeOwned> Form<T> {
    /// Parses `body` for `operator`; a missing or wrong CSRF token is 403.
    fn parse(operator: &Operator, headers: &HeaderMap, body: &Bytes) -> Result<T, Response> {
        same_origin(headers)?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|_| page_error(StatusCode::BAD_REQUEST, "the form could not be read"))?;
        let presented = pairs
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        if !crate::secrets::constant_time_eq(presented.as_bytes(), operator.csrf.as_bytes()) {
            return Err(page_error(
                StatusCode::FORBIDDEN,
                "this form is out of date or did not come from this dashboard (CSRF check failed): reload the page and try again",
            ));
        }
        let fields: Vec<(String, String)> =
            pairs.into_iter().filter(|(k, _)| k != "csrf").collect();
        let encoded = serde_urlencoded::to_string(&fields).unwrap_or_default();
        serde_urlencoded::from_str(&encoded).map_err(|e| {
            page_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("the form is not valid: {e}"),
            )
        })
    }
}

/// Refuses a form posted from another origin (a second line behind SameSite and the CSRF
/// token): when the browser says where the form came from, it must be this host.
fn same_origin(headers: &HeaderMap) -> Result<(), Response> {
    let Some(origin) = headers
        .get(http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(());
    };
    let host = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    if origin == "null" || origin_host != host {
        return Err(page_error(
            StatusCode::FORBIDDEN,
            "this form was posted from another site",
        ));
    }
    Ok(())
}

/// An HTML error page for a service error, with the API's status and message (and the
/// fields at fault).
pub fn error_page(e: ServiceError) -> Response {
    let err = ApiError::from(e);
    let mut text = err.body.message.clone();
    for (field, messages) in &err.body.errors {
        text.push_str(&format!("; {field}: {}", messages.join(", ")));
    }
    page_error(err.status, &text)
}

/// An HTML error page.
pub fn page_error(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<h1>{}</h1><p role=\"alert\" class=\"error\">{}</p><p><a href=\"javascript:history.back()\">Back</a> · <a href=\"/\">Sessions</a></p>",
        status.as_u16(),
        html::esc(message)
    );
    (status, Html(html::bare("Error", &body))).into_response()
}

/// See other: where a form's answer sends the browser.
fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Handlers' results: a page, or an error page.
pub type PageResult = Result<Response, Response>;

/// Maps a service error to its page.
fn fail(e: ServiceError) -> Response {
    error_page(e)
}
