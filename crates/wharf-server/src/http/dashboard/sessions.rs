//! Sessions: the list (home page), creating one, a session's page (status, linking QR and
//! pair code, settings, last messages, a test send) and its lifecycle buttons.

use std::fmt::Write as _;

use axum::{
    body::Bytes,
    extract::{Path, State},
    response::{Html, IntoResponse, Response},
};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use wharf_core::{EngineKind, Phone, SessionId, message::Content};
use wharf_store::{MessageRow, SessionRow};

use super::{
    Form, Operator, PageResult, fail,
    html::{self, badge, button_form, csrf, esc, time},
    see_other,
};
use crate::{
    ServiceError,
    http::AppState,
    services::{
        CreateSession,
        messages::{SendRequest, SessionChoice},
    },
};

/// Events that change what the sessions pages show.
const SESSION_EVENTS: &[&str] = &["session.status", "session.qr"];
/// Events that change a session's page.
const SESSION_PAGE_EVENTS: &[&str] = &[
    "session.status",
    "session.qr",
    "message.received",
    "message.sent",
    "message.delivered",
    "message.read",
    "message.played",
    "message.failed",
    "message.deleted",
    "message.edited",
];

fn session_id(raw: &str) -> Result<SessionId, Response> {
    raw.parse()
        .map_err(|_| super::error_page(ServiceError::NotFound("session")))
}

fn name(row: &SessionRow) -> String {
    row.label.clone().unwrap_or_else(|| row.id.to_string())
}

/// GET / — the account's sessions with their live status, and the form creating one.
pub async fn list_sessions(State(app): State<AppState>, operator: Operator) -> PageResult {
    let list = app
        .services
        .sessions
        .list(&operator.caller, None, None, 100)
        .await
        .map_err(fail)?;
    let mut rows = String::new();
    for s in &list.sessions {
        let _ = write!(
            rows,
            "<tr><td><a href=\"/dashboard/sessions/{id}\">{name}</a></td><td>{engine}</td><td>{status}</td><td>{phone}</td></tr>",
            id = s.id,
            name = esc(&name(s)),
            engine = s.engine.as_str(),
            status = badge(s.status.as_str()),
            phone = esc(&s
                .phone_number
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()),
        );
    }
    let table = if list.sessions.is_empty() {
        "<p>No sessions yet: create one below.</p>".to_owned()
    } else {
        format!(
            "<div class=\"scroll\"><table><caption class=\"sr-only\">Sessions</caption><thead><tr><th scope=\"col\">Session</th><th scope=\"col\">Engine</th>\
             <th scope=\"col\">Status</th><th scope=\"col\">Phone</th></tr></thead><tbody>{rows}</tbody></table></div>"
        )
    };
    let mut engines = String::new();
    for kind in app.services.engines.available() {
        // Cloud API sessions need Meta's credentials: the API creates them.
        if kind == EngineKind::Cloud {
            continue;
        }
        let _ = write!(engines, "<option value=\"{0}\">{0}</option>", kind.as_str());
    }
    let body = format!(
        "<section id=\"sessions\" data-region aria-live=\"polite\">{table}</section>\
         <h2>New session</h2><form method=\"post\" action=\"/dashboard/sessions\" class=\"card\">{csrf}\
         <label for=\"label\">Label</label><input id=\"label\" name=\"label\" maxlength=\"100\">\
         <label for=\"engine\">Engine</label><select id=\"engine\" name=\"engine\">{engines}</select>\
         <button type=\"submit\">Create session</button></form>\
         <p class=\"muted\">Cloud API sessions need Meta's credentials: create them with <code>POST /v1/whatsapp-sessions</code>.</p>",
        csrf = csrf(&operator),
    );
    Ok(Html(html::page(
        &operator,
        "Sessions",
        "/",
        SESSION_EVENTS,
        &body,
    ))
    .into_response())
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    label: String,
    #[serde(default)]
    engine: String,
}

/// POST /dashboard/sessions — creates a session and shows its key once.
pub async fn create_session(
    State(app): State<AppState>,
    operator: Operator,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let form: CreateForm = Form::parse(&operator, &headers, &body)?;
    let engine = match form.engine.as_str() {
        "" => None,
        other => Some(EngineKind::parse(other).ok_or_else(|| {
            fail(ServiceError::invalid(
                "engine",
                "must be one of the engines offered",
            ))
        })?),
    };
    let req = CreateSession {
        label: crate::services::sessions::parse_label(&form.label).map_err(fail)?,
        engine,
        ..Default::default()
    };
    let created = app
        .services
        .sessions
        .create(&operator.caller, req)
        .await
        .map_err(fail)?;
    let id = created.session.id;
    let body = format!(
        "<p role=\"status\">Session <strong>{name}</strong> created on the {engine} engine.</p>\
         <div class=\"card\"><p>Its session key, shown only now (it can send through this session only):</p>\
         <p><code class=\"secret\">{key}</code></p></div>\
         <p><a href=\"/dashboard/sessions/{id}\" class=\"button\">Open the session</a></p>",
        name = esc(&name(&created.session)),
        engine = created.session.engine.as_str(),
        key = esc(&created.key.raw),
    );
    Ok((
        StatusCode::CREATED,
        Html(html::page(&operator, "Session created", "/", &[], &body)),
    )
        .into_response())
}

/// GET /dashboard/sessions/{id} — a session: its status and linking, settings, last
/// messages and a test send.
pub async fn show_session(
    State(app): State<AppState>,
    operator: Operator,
    Path(raw): Path<String>,
) -> PageResult {
    let id = session_id(&raw)?;
    let row = app
        .services
        .sessions
        .get(&operator.caller, id)
        .await
        .map_err(fail)?;
    let page = app
        .services
        .messages
        .logs(&operator.caller, id, None, None, None, 20)
        .await
        .map_err(fail)?;
    let status = status_region(&operator, &row);
    let mut settings = String::new();
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(row.settings) {
        for (k, v) in map {
            let _ = write!(
                settings,
                "<dt>{}</dt><dd>{}</dd>",
                esc(&k),
                esc(&v.to_string())
            );
        }
    }
    let body = format!(
        "{status}\
         <h2>Send a test message</h2><form method=\"post\" action=\"/dashboard/sessions/{id}/send\" class=\"card\">{csrf}\
         <label for=\"to\">To (phone number in international format)</label>\
         <input id=\"to\" name=\"to\" inputmode=\"tel\" autocomplete=\"off\" required placeholder=\"+15551234567\">\
         <label for=\"text\">Text</label><textarea id=\"text\" name=\"text\" required rows=\"2\">Hello from Wharf</textarea>\
         <button type=\"submit\">Send</button></form>\
         <section id=\"messages\" data-region aria-live=\"polite\"><h2>Last messages</h2>{messages}</section>\
         <h2>Settings</h2><dl class=\"settings\">{settings}</dl>\
         <p class=\"muted\">Change settings with <code>PATCH /v1/whatsapp-sessions/{id}/settings</code>.</p>",
        csrf = csrf(&operator),
        messages = messages_table(&page.messages),
    );
    Ok(Html(html::page(
        &operator,
        &format!("Session {}", name(&row)),
        "/",
        SESSION_PAGE_EVENTS,
        &body,
    ))
    .into_response())
}

fn status_region(operator: &Operator, row: &SessionRow) -> String {
    let id = row.id;
    let mut out = format!(
        "<section id=\"session-status\" data-region aria-live=\"polite\"><dl class=\"facts\">\
         <dt>Status</dt><dd id=\"status\">{status}</dd><dt>Engine</dt><dd>{engine}</dd>\
         <dt>Phone</dt><dd>{phone}</dd><dt>Id</dt><dd><code>{id}</code></dd>",
        status = badge(row.status.as_str()),
        engine = row.engine.as_str(),
        phone = esc(&row
            .phone_number
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_else(|| "not linked yet".into())),
    );
    if let Some(reason) = &row.status_reason {
        let _ = write!(out, "<dt>Reason</dt><dd>{}</dd>", esc(reason));
    }
    out.push_str("</dl><div class=\"actions\">");
    for (action, label) in [
        ("connect", "Connect"),
        ("disconnect", "Disconnect"),
        ("restart", "Restart"),
    ] {
        out.push_str(&button_form(
            operator,
            &format!("/dashboard/sessions/{id}/{action}"),
            label,
            "",
        ));
    }
    out.push_str(&button_form(
        operator,
        &format!("/dashboard/sessions/{id}/delete"),
        "Delete",
        "danger",
    ));
    out.push_str("</div>");
    if let Some(qr) = &row.qr_code {
        // The image's URL changes with the code, so a rotation shows the new one.
        let version = &super::digest(qr)[..12];
        let _ = write!(
            out,
            "<div class=\"qr\"><h2>Link a phone</h2><p>Open WhatsApp on the phone, Linked devices, Link a device, and scan:</p>\
             <img id=\"qr\" src=\"/dashboard/sessions/{id}/qr.png?v={version}\" width=\"264\" height=\"264\" \
             alt=\"Pairing QR code of this session\" data-qr=\"{version}\"></div>"
        );
        // Pair codes are a WhatsApp Web feature.
        if row.engine == EngineKind::Web {
            let _ = write!(
                out,
                "<form method=\"post\" action=\"/dashboard/sessions/{id}/pair-code\" class=\"card\">{csrf}\
                 <label for=\"pair-phone\">Or get a code to type on the phone: its number</label>\
                 <input id=\"pair-phone\" name=\"phone_number\" inputmode=\"tel\" required placeholder=\"+15551234567\">\
                 <button type=\"submit\">Get a pair code</button></form>",
                csrf = csrf(operator)
            );
        }
    } else if row.status == wharf_core::SessionStatus::Connected {
        out.push_str("<p class=\"ok\" id=\"linked\">Connected.</p>");
    }
    out.push_str("</section>");
    out
}

fn messages_table(messages: &[MessageRow]) -> String {
    if messages.is_empty() {
        return "<p>No messages yet.</p>".to_owned();
    }
    let mut rows = String::new();
    for m in messages {
        let text = match &m.content {
            Content::Text { text } => text.clone(),
            _ => format!("({})", m.kind.as_str()),
        };
        let mut timeline = format!("accepted {}", time(m.accepted_at));
        for (label, at) in [
            ("sent", m.sent_at),
            ("delivered", m.delivered_at),
            ("read", m.read_at),
            ("failed", m.failed_at),
        ] {
            if let Some(at) = at {
                let _ = write!(timeline, " → {label} {}", time(at));
            }
        }
        if let Some(reason) = &m.failure_reason {
            let _ = write!(timeline, " <span class=\"error\">({})</span>", esc(reason));
        }
        let _ = write!(
            rows,
            "<tr data-message=\"{id}\"><td>{dir}</td><td>{chat}</td><td>{text}</td><td>{status}</td><td class=\"timeline\">{timeline}</td></tr>",
            id = m.id,
            dir = m.direction.as_str(),
            chat = esc(&m.chat_jid.to_string()),
            text = esc(&text),
            status = badge(m.status.as_str()),
        );
    }
    format!(
        "<div class=\"scroll\"><table><thead><tr><th scope=\"col\">Dir.</th><th scope=\"col\">Chat</th><th scope=\"col\">Content</th>\
         <th scope=\"col\">Status</th><th scope=\"col\">Timeline</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )
}

/// GET /dashboard/sessions/{id}/qr.png — the session's current pairing QR as a PNG.
pub async fn qr_image(
    State(app): State<AppState>,
    operator: Operator,
    Path(raw): Path<String>,
) -> PageResult {
    let id = session_id(&raw)?;
    let code = app
        .services
        .sessions
        .qr_code(&operator.caller, id)
        .await
        .map_err(fail)?;
    let png = crate::http::wapio::qr_png::render(&code)
        .map_err(|e| fail(ServiceError::Internal(anyhow::anyhow!(e))))?;
    Ok((
        [
            (http::header::CONTENT_TYPE, "image/png"),
            (http::header::CACHE_CONTROL, "no-store"),
        ],
        png,
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct PairForm {
    #[serde(default)]
    phone_number: String,
}

/// POST /dashboard/sessions/{id}/pair-code — a code to type on the phone.
pub async fn pair_code(
    State(app): State<AppState>,
    operator: Operator,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let id = session_id(&raw)?;
    let form: PairForm = Form::parse(&operator, &headers, &body)?;
    let phone = Phone::parse(form.phone_number.trim()).map_err(|_| {
        fail(ServiceError::invalid(
            "phone_number",
            "must be a phone number in international format, such as +15551234567",
        ))
    })?;
    let code = app
        .services
        .sessions
        .pair_code(&operator.caller, id, &phone)
        .await
        .map_err(fail)?;
    let body = format!(
        "<p>On the phone: WhatsApp, Linked devices, Link a device, Link with phone number instead, and type:</p>\
         <p class=\"pair-code\"><code>{}</code></p><p><a href=\"/dashboard/sessions/{id}\">Back to the session</a> (it turns connected by itself)</p>",
        esc(&code)
    );
    Ok(Html(html::page(&operator, "Pair code", "/", &[], &body)).into_response())
}

#[derive(Deserialize)]
pub struct SendForm {
    #[serde(default)]
    to: String,
    #[serde(default)]
    text: String,
}

/// POST /dashboard/sessions/{id}/send — sends a text message through the session.
pub async fn send_test(
    State(app): State<AppState>,
    operator: Operator,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let id = session_id(&raw)?;
    let form: SendForm = Form::parse(&operator, &headers, &body)?;
    let to = crate::http::wapio::send::parse_recipient("to", form.to.trim()).map_err(fail)?;
    if form.text.trim().is_empty() {
        return Err(fail(ServiceError::invalid("text", "is required")));
    }
    let req = SendRequest {
        session: SessionChoice::Named(id),
        to,
        content: Content::Text { text: form.text },
        quoted: None,
    };
    app.services
        .messages
        .send(&operator.caller, req, None)
        .await
        .map_err(fail)?;
    Ok(see_other(&format!("/dashboard/sessions/{id}")))
}

/// POST /dashboard/sessions/{id}/{action} — connect, disconnect, restart or delete.
pub async fn act_on_session(
    State(app): State<AppState>,
    operator: Operator,
    Path((raw, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let id = session_id(&raw)?;
    let _: super::login::Empty = Form::parse(&operator, &headers, &body)?;
    let sessions = &app.services.sessions;
    let caller = &operator.caller;
    let done = match action.as_str() {
        "connect" => sessions.connect(caller, id).await.map(|_| ()),
        "disconnect" => sessions.disconnect(caller, id).await.map(|_| ()),
        "restart" => sessions.restart(caller, id).await.map(|_| ()),
        "delete" => {
            sessions.delete(caller, id).await.map_err(fail)?;
            return Ok(see_other("/"));
        }
        _ => Err(ServiceError::NotFound("action")),
    };
    done.map_err(fail)?;
    Ok(see_other(&format!("/dashboard/sessions/{id}")))
}
