//! Logging in with a personal access token, and out.

use axum::{
    body::Bytes,
    extract::State,
    response::{Html, IntoResponse, Response},
};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;
use wharf_core::TokenHash;

use super::{COOKIE, LOGIN_MS, Operator, html, page_error, same_origin, see_other};
use crate::{http::AppState, services::Caller};

fn form(message: Option<&str>) -> String {
    let alert = message
        .map(|m| format!("<p role=\"alert\" class=\"error\">{}</p>", html::esc(m)))
        .unwrap_or_default();
    format!(
        "<h1>Log in</h1>{alert}<form method=\"post\" action=\"/dashboard/login\" class=\"card\">\
         <label for=\"token\">Personal access token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required \
         placeholder=\"wh_pat_…\" autofocus>\
         <button type=\"submit\">Log in</button></form>\
         <p class=\"muted\">Create one with <code>wharf keys create --account ACCOUNT_ID</code>.</p>"
    )
}

/// GET /dashboard/login — the login form.
pub async fn login_form() -> Html<String> {
    Html(html::bare("Log in", &form(None)))
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
}

/// POST /dashboard/login — checks the token (a live personal access token) and sets the
/// login cookie.
pub async fn log_in(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refused) = same_origin(&headers) {
        return refused;
    }
    let Ok(LoginForm { token }) = serde_urlencoded::from_bytes::<LoginForm>(&body) else {
        return page_error(StatusCode::BAD_REQUEST, "the form could not be read");
    };
    let token = token.trim();
    let refuse = |message: &str| {
        (
            StatusCode::UNAUTHORIZED,
            Html(html::bare("Log in", &form(Some(message)))),
        )
            .into_response()
    };
    if token.is_empty() {
        return refuse("token: enter a personal access token");
    }
    if wharf_core::keys::kind_of(token).is_none() {
        return refuse("token: this is not a Wharf token (wh_pat_…)");
    }
    let hash = TokenHash::of(token);
    let key = match app.services.key_of(&hash, false).await {
        Ok(Some((key, _))) => key,
        Ok(None) => return refuse("token: unknown or revoked"),
        Err(e) => return super::error_page(e),
    };
    if Caller::of_key(&key, hash.clone(), None)
        .require_pat()
        .is_err()
    {
        return refuse("token: a session key cannot log in; use a personal access token");
    }
    let now = app.services.messages.clock().now_millis();
    let cookie = app.dashboard.start(hash, now);
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let value = format!(
        "{COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        LOGIN_MS / 1000,
        if secure { "; Secure" } else { "" }
    );
    let mut response = see_other("/");
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(http::header::SET_COOKIE, v);
    }
    response
}

/// POST /dashboard/logout — ends the login and clears the cookie.
pub async fn log_out(
    State(app): State<AppState>,
    operator: Operator,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refused) = super::Form::<Empty>::parse(&operator, &headers, &body) {
        return refused;
    }
    app.dashboard.end(&operator.cookie);
    let mut response = see_other("/dashboard/login");
    response.headers_mut().insert(
        http::header::SET_COOKIE,
        HeaderValue::from_static("wharf_dashboard=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

/// A form with no fields but its CSRF token.
#[derive(Deserialize)]
pub struct Empty {}
