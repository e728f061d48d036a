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
    html::{self, badge, csrf, esc, time_or_dash},
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

fn row(operator: &Operator, b: &BroadcastRow, sessions: &HashMap<String, String>) -> String {
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
            "<form method=\"post\" action=\"/dashboard/broadcasts/{id}/cancel\" class=\"inline\">{csrf}\
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
        .map(|r| format!("<br><span class=\"error\">{}</span>", esc(r)))
        .unwrap_or_default();
    format!(
        "<tr data-broadcast=\"{id}\"><td><strong>{name}</strong><br><code>{id}</code><br>\
         <span class=\"muted\">template {template}</span></td>\
         <td><a href=\"/dashboard/sessions/{session}\">{session_name}</a></td>\
         <td>{status}{reason}</td>\
         <td><progress max=\"{max}\" value=\"{done}\" aria-label=\"{name}: {done} of {total} recipients processed\"></progress>\
         <br><span class=\"counts\">{counts}</span></td>\
         <td><dl class=\"times\"><dt>Scheduled</dt><dd>{scheduled}</dd><dt>Started</dt><dd>{started}</dd>\
         <dt>Ended</dt><dd>{ended}</dd></dl></td><td>{cancel}</td></tr>",
        name = esc(&b.name),
        template = esc(template),
        session_name = esc(session_name),
        status = badge(b.status.as_str()),
        max = b.recipient_count.max(1),
        total = b.recipient_count,
        counts = counts(b),
        scheduled = time_or_dash(b.scheduled_at),
        started = time_or_dash(b.started_at),
        ended = time_or_dash(b.completed_at),
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
    let mut rows = String::new();
    for b in &broadcasts {
        rows.push_str(&row(&operator, b, &sessions));
    }
    let table = if broadcasts.is_empty() {
        "<p>No broadcasts yet. Create one with <code>POST /v1/whatsapp/broadcasts</code> \
         (the Zernio Business API) and send or schedule it.</p>"
            .to_owned()
    } else {
        format!(
            "<div class=\"scroll\"><table><thead><tr><th scope=\"col\">Broadcast</th><th scope=\"col\">Session</th>\
             <th scope=\"col\">Status</th><th scope=\"col\">Progress</th><th scope=\"col\">Times</th>\
             <th scope=\"col\"><span class=\"sr-only\">Actions</span></th></tr></thead><tbody>{rows}</tbody></table></div>"
        )
    };
    let body = format!(
        "<p>The newest {SHOWN} broadcasts of this account, with their recipients' progress as \
         receipts arrive. Cancelling stops a scheduled or sending broadcast: what was sent stays \
         sent, the rest is cancelled.</p><section id=\"broadcasts\" data-region>{table}</section>"
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
