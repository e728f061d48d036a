//! The sandbox: the shared number and this account's activations.

use std::fmt::Write as _;

use axum::{
    extract::State,
    response::{Html, IntoResponse},
};

use super::{
    Operator, PageResult, fail,
    html::{self, badge, esc, time, time_or_dash},
};
use crate::http::AppState;

/// GET /dashboard/sandbox — the sandbox number and the account's live activations.
pub async fn show_sandbox(State(app): State<AppState>, operator: Operator) -> PageResult {
    let (sessions, number) = app
        .services
        .sandbox
        .list(&operator.caller)
        .await
        .map_err(fail)?;
    let number = match number {
        Some(phone) => format!("<p>The sandbox number is <strong>{}</strong>.</p>", esc(&phone.to_string())),
        None => "<p>This server has no sandbox number (the operator sets one with <code>wharf sandbox set-number SESSION_ID</code>).</p>".to_owned(),
    };
    let mut rows = String::new();
    for s in &sessions {
        let _ = write!(
            rows,
            "<tr><td>{phone}</td><td>{dialect}</td><td>{status}</td><td><code>{code}</code></td><td>{activated}</td><td>{expires}</td></tr>",
            phone = esc(&s.phone.to_string()),
            dialect = s.dialect.as_str(),
            status = badge(s.status.as_str()),
            code = esc(&s.activation_code),
            activated = time_or_dash(s.activated_at),
            expires = time(s.expires_at),
        );
    }
    let table = if sessions.is_empty() {
        "<p>No sandbox sessions. Start one with the Zernio or Kapso sandbox API.</p>".to_owned()
    } else {
        format!(
            "<div class=\"scroll\"><table><thead><tr><th scope=\"col\">Phone</th><th scope=\"col\">Dialect</th>\
             <th scope=\"col\">Status</th><th scope=\"col\">Activation code</th><th scope=\"col\">Activated</th>\
             <th scope=\"col\">Expires</th></tr></thead><tbody>{rows}</tbody></table></div>"
        )
    };
    let body = format!(
        "{number}<section id=\"activations\" data-region aria-live=\"polite\"><h2>Activations</h2>{table}</section>"
    );
    Ok(Html(html::page(
        &operator,
        "Sandbox",
        "/dashboard/sandbox",
        &["sandbox.activated"],
        &body,
    ))
    .into_response())
}
