//! Broadcasts (the Zernio Business API's): the account's broadcasts with their status and
//! progress, kept current by their events, and cancelling one.

use std::{collections::HashMap, fmt::Write as _};

use axum::{
    body::Bytes,
    extract::{Path, State},
    response::{Html, IntoResponse},
};
use http::HeaderMap;
use wharf_store::{BroadcastRow, BroadcastStatus};

use super::{
    Form, Operator, PageResult, fail,
    html::{self, badge, csrf, esc, time},
    see_other,
};
use crate::http::AppState;

/// Events that move a broadcast's row.
const BROADCAST_EVENTS: &[&str] = &[
    "broadcast.started",
    "broadcast.progress",
    "broadcast.completed",
    "broadcast.failed",
    "broadcast.cancelled",
];

/// Broadcasts shown, newest first.
const SHOWN: i64 = 100;

/// The counts of a broadcast, as the API's counters read (sent includes delivered and read
/// ones, delivered includes read ones).
fn counts(b: &BroadcastRow) -> String {
    let mut text = format!(
        "{sent} sent · {delivered} delivered · {read} read · {failed} failed of {total}",
        sent = b.sent_total(),
        delivered = b.delivered_total(),
        read = b.n_read,
        failed = b.n_failed,
        total = b.recipient_count,
    );
    for (n, what) in [
        (b.n_pending, "pending"),
        (b.n_skipped, "skipped (opted out)"),
        (b.n_cancelled, "cancelled"),
    ] {
        if n > 0 {
            let _ = write!(text, " · {n} {what}");
        }
    }
    text
}

/// One broadcast as a card (cards stack on a phone and tile on a wide screen).
fn card(operator: &Operator, b: &BroadcastRow, sessions: &HashMap<String, String>) -> String {
    let id = b.id.to_string();
    let session = b.session_id.to_string();
    let session_name = sessions.get(&session).unwrap_or(&session);
    let template = b.template["name"].as_str().unwrap_or_default();
    let done = b.recipient_count - b.n_pending;
    let cancel = if matches!(
        b.status,
        BroadcastStatus::Scheduled | BroadcastStatus::Sending
    ) {
        format!(
            "<form method=\"post\" action=\"/dashboard/broadcasts/{id}/cancel\">{csrf}\
             <button type=\"submit\" class=\"danger\" aria-label=\"Cancel broadcast {name}\">Cancel</button></form>",
            csrf = csrf(operator),
            name = esc(&b.name),
        )
    } else {
        String::new()
    };
    let reason = b
        .failure_reason
        .as_deref()
        .map(|r| format!("<p class=\"error\">{}</p>", esc(r)))
        .unwrap_or_default();
    let mut times = format!("<dt>Created</dt><dd>{}</dd>", time(b.created_at));
    for (label, at) in [
        ("Scheduled", b.scheduled_at),
        ("Started", b.started_at),
        ("Ended", b.completed_at),
    ] {
        if let Some(at) = at {
            let _ = write!(times, "<dt>{label}</dt><dd>{}</dd>", time(at));
        }
    }
    format!(
        "<li data-broadcast=\"{id}\"><h2>{name} {status}</h2>\
         <p class=\"muted\">Template {template} · session <a href=\"/dashboard/sessions/{session}\">{session_name}</a> · <code>{id}</code></p>\
         <progress max=\"{max}\" value=\"{done}\" aria-label=\"{name}: {done} of {total} recipients processed\"></progress>\
         <p class=\"counts\">{counts}</p>{reason}<dl class=\"times\">{times}</dl>{cancel}</li>",
        name = esc(&b.name),
        status = badge(b.status.as_str()),
        template = esc(template),
        session_name = esc(session_name),
        max = b.recipient_count.max(1),
        total = b.recipient_count,
        counts = counts(b),
    )
}

/// GET /dashboard/broadcasts — the account's broadcasts, live.
pub async fn list_broadcasts(State(app): State<AppState>, operator: Operator) -> PageResult {
    let broadcasts = app
        .services
        .broadcasts
        .list_all(&operator.caller, SHOWN)
        .await
        .map_err(fail)?;
    let sessions: HashMap<String, String> = app
        .services
        .sessions
        .list(&operator.caller, None, None, 100)
        .await
        .map_err(fail)?
        .sessions
        .into_iter()
        .filter_map(|s| Some((s.id.to_string(), s.label?)))
        .collect();
    let cards: String = broadcasts
        .iter()
        .map(|b| card(&operator, b, &sessions))
        .collect();
    let list = if broadcasts.is_empty() {
        "<p>No broadcasts yet. Create one with <code>POST /v1/whatsapp/broadcasts</code> \
         (the Zernio Business API) and send or schedule it.</p>"
            .to_owned()
    } else {
        format!("<ul class=\"broadcasts\">{cards}</ul>")
    };
    let body = format!(
        "<p>The newest {SHOWN} broadcasts of this account, with their status and progress, live \
         while they send. Cancelling stops a scheduled or sending broadcast: what was sent stays \
         sent, the rest is cancelled.</p><section id=\"broadcasts\" data-region>{list}</section>"
    );
    Ok(Html(html::page(
        &operator,
        "Broadcasts",
        "/dashboard/broadcasts",
        BROADCAST_EVENTS,
        &body,
    ))
    .into_response())
}

/// POST /dashboard/broadcasts/{id}/cancel — the API's cancel.
pub async fn cancel(
    State(app): State<AppState>,
    operator: Operator,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let _: super::login::Empty = Form::parse(&operator, &headers, &body)?;
    app.services
        .broadcasts
        .cancel(&operator.caller, &id)
        .await
        .map_err(fail)?;
    Ok(see_other("/dashboard/broadcasts"))
}
