//! Webhooks: the endpoints, one endpoint's deliveries with their attempts, redelivering one,
//! and recovering every failed delivery since a time.

use std::fmt::Write as _;

use axum::{
    body::Bytes,
    extract::{Path, State},
    response::{Html, IntoResponse, Response},
};
use http::HeaderMap;
use serde::Deserialize;
use wharf_core::{DeliveryId, WebhookId};

use super::{
    Form, Operator, PageResult, fail,
    html::{self, badge, button_form, csrf, esc, time, time_or_dash},
    see_other,
};
use crate::{ServiceError, http::AppState};

/// Deliveries follow the events they carry: these refresh the deliveries.
const DELIVERY_EVENTS: &[&str] = &[
    "session.status",
    "message.received",
    "message.sent",
    "message.delivered",
    "message.read",
    "message.failed",
];

fn webhook_id(raw: &str) -> Result<WebhookId, Response> {
    raw.parse()
        .map_err(|_| super::error_page(ServiceError::NotFound("webhook")))
}

/// GET /dashboard/webhooks — the account's webhook endpoints.
pub async fn list_webhooks(State(app): State<AppState>, operator: Operator) -> PageResult {
    let hooks = app
        .services
        .webhooks
        .list(&operator.caller)
        .await
        .map_err(fail)?;
    let mut rows = String::new();
    for w in &hooks {
        let events = if w.subscribed_events.is_empty() {
            "all".to_owned()
        } else {
            w.subscribed_events.join(", ")
        };
        let _ = write!(
            rows,
            "<tr><td><a href=\"/dashboard/webhooks/{id}\">{url}</a></td><td>{events}</td><td>{state}</td><td>{since}</td></tr>",
            id = w.id,
            url = esc(&w.target_url),
            events = esc(&events),
            state = badge(if w.is_active { "active" } else { "disabled" }),
            since = w
                .failing_since
                .map(|t| format!("failing since {}", time(t)))
                .unwrap_or_default(),
        );
    }
    let body = if hooks.is_empty() {
        "<p>No webhook endpoints. Add one with <code>POST /v1/webhooks</code>.</p>".to_owned()
    } else {
        format!(
            "<div class=\"scroll\"><table><thead><tr><th scope=\"col\">URL</th><th scope=\"col\">Events</th>\
             <th scope=\"col\">State</th><th scope=\"col\">Health</th></tr></thead><tbody>{rows}</tbody></table></div>"
        )
    };
    Ok(Html(html::page(
        &operator,
        "Webhooks",
        "/dashboard/webhooks",
        &[],
        &body,
    ))
    .into_response())
}

/// GET /dashboard/webhooks/{id} — an endpoint's last deliveries and their attempts.
pub async fn show_webhook(
    State(app): State<AppState>,
    operator: Operator,
    Path(raw): Path<String>,
) -> PageResult {
    let id = webhook_id(&raw)?;
    let hook = app
        .services
        .webhooks
        .get(&operator.caller, id)
        .await
        .map_err(fail)?;
    let (deliveries, _) = app
        .services
        .webhooks
        .deliveries(&operator.caller, id, None, 50)
        .await
        .map_err(fail)?;
    let mut rows = String::new();
    for (d, attempts) in &deliveries {
        let mut tried = String::new();
        for a in attempts {
            let outcome = match (&a.status_code, &a.error) {
                (_, Some(e)) => esc(e),
                (Some(code), None) => format!("HTTP {code}"),
                (None, None) => "–".to_owned(),
            };
            let _ = write!(
                tried,
                "<li>{} · {outcome} · {} ms</li>",
                time(a.attempted_at),
                a.duration_ms
            );
        }
        let redeliver = button_form(
            &operator,
            &format!("/dashboard/webhooks/{id}/deliveries/{}/redeliver", d.id),
            "Redeliver",
            "",
        );
        let _ = write!(
            rows,
            "<tr data-delivery=\"{did}\"><td><code>{did}</code></td><td>{kind}</td><td>{status}</td><td>{attempts}</td>\
             <td>{next}</td><td><ul class=\"attempts\">{tried}</ul></td><td>{redeliver}</td></tr>",
            did = d.id,
            kind = esc(&d.event_type),
            status = badge(d.status.as_str()),
            attempts = d.attempts,
            next = time_or_dash(d.next_attempt_at.filter(|_| d.status.as_str() == "pending")),
        );
    }
    let table = if deliveries.is_empty() {
        "<p>No deliveries yet.</p>".to_owned()
    } else {
        format!(
            "<div class=\"scroll\"><table><thead><tr><th scope=\"col\">Delivery</th><th scope=\"col\">Event</th>\
             <th scope=\"col\">Status</th><th scope=\"col\">Attempts</th><th scope=\"col\">Next attempt</th>\
             <th scope=\"col\">Attempt log</th><th scope=\"col\"><span class=\"sr-only\">Actions</span></th></tr></thead>\
             <tbody>{rows}</tbody></table></div>"
        )
    };
    let body = format!(
        "<dl class=\"facts\"><dt>URL</dt><dd>{url}</dd><dt>State</dt><dd>{state}</dd></dl>\
         <section id=\"deliveries\" data-region aria-live=\"polite\"><h2>Deliveries</h2>{table}</section>\
         <h2>Recover</h2><form method=\"post\" action=\"/dashboard/webhooks/{id}/recover\" class=\"card\">{csrf}\
         <label for=\"since\">Queue again every failed delivery since (UTC, RFC 3339)</label>\
         <input id=\"since\" name=\"since\" required placeholder=\"2026-12-01T09:30:00Z\">\
         <button type=\"submit\">Recover</button></form>",
        url = esc(&hook.target_url),
        state = badge(if hook.is_active { "active" } else { "disabled" }),
        csrf = csrf(&operator),
    );
    Ok(Html(html::page(
        &operator,
        "Webhook deliveries",
        "/dashboard/webhooks",
        DELIVERY_EVENTS,
        &body,
    ))
    .into_response())
}

/// POST /dashboard/webhooks/{id}/deliveries/{delivery}/redeliver — attempts it again now.
pub async fn redeliver(
    State(app): State<AppState>,
    operator: Operator,
    Path((raw, delivery)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let id = webhook_id(&raw)?;
    let _: super::login::Empty = Form::parse(&operator, &headers, &body)?;
    let delivery: DeliveryId = delivery
        .parse()
        .map_err(|_| fail(ServiceError::NotFound("delivery")))?;
    app.services
        .webhooks
        .redeliver(&operator.caller, id, delivery)
        .await
        .map_err(fail)?;
    Ok(see_other(&format!("/dashboard/webhooks/{id}")))
}

#[derive(Deserialize)]
pub struct RecoverForm {
    #[serde(default)]
    since: String,
}

/// POST /dashboard/webhooks/{id}/recover — queues again the failed deliveries since a time.
pub async fn recover(
    State(app): State<AppState>,
    operator: Operator,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let id = webhook_id(&raw)?;
    let form: RecoverForm = Form::parse(&operator, &headers, &body)?;
    let since = wharf_core::time::parse_rfc3339(form.since.trim()).ok_or_else(|| {
        fail(ServiceError::invalid(
            "since",
            "must be an RFC 3339 time such as 2026-12-01T09:30:00Z",
        ))
    })?;
    let queued = app
        .services
        .webhooks
        .recover(&operator.caller, id, since)
        .await
        .map_err(fail)?;
    let body = format!(
        "<p role=\"status\">{queued} failed deliveries queued again.</p><p><a href=\"/dashboard/webhooks/{id}\">Back to the deliveries</a></p>"
    );
    Ok(Html(html::page(
        &operator,
        "Recovered",
        "/dashboard/webhooks",
        &[],
        &body,
    ))
    .into_response())
}
