//! The live parts: the event stream for the login's account (what the script listens to)
//! and the events page, a live tail of it.

use axum::{
    extract::State,
    response::{Html, IntoResponse},
};
use wharf_core::EventType;

use super::{Operator, PageResult, fail, html};
use crate::http::AppState;

/// GET /dashboard/stream — Server-Sent Events of the account's events from now on (the
/// event API's stream, authenticated by the login cookie; it ends when the token is revoked).
pub async fn stream(State(app): State<AppState>, operator: Operator) -> PageResult {
    let head = app
        .services
        .event_head(&operator.caller)
        .await
        .map_err(fail)?;
    let key = operator.caller.token.clone();
    Ok(crate::http::events::event_stream(&app, operator.caller, key, head).into_response())
}

/// GET /dashboard/events — a live tail of the account's events.
pub async fn events_page(State(_app): State<AppState>, operator: Operator) -> PageResult {
    let types: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    let body = format!(
        "<p>Events of this account as they happen (newest first). The list starts empty: past \
         events are at <code>GET /v1/events</code>.</p>\
         <ol id=\"tail\" class=\"tail\" aria-live=\"polite\" data-types=\"{}\"></ol>",
        html::esc(&types.join(" "))
    );
    Ok(Html(html::page(
        &operator,
        "Events",
        "/dashboard/events",
        &[],
        &body,
    ))
    .into_response())
}
