//! The one HTTP handler: version-prefix stripping, recording, auth, queued failures, routing.

use std::{collections::HashMap, sync::Arc, time::Instant};

use axum::{
    body::{Bytes, to_bytes},
    extract::{Request, State as AxState},
    http::{HeaderMap, Method, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde_json::Value;

use crate::{
    error::GraphError,
    media, messages, numbers,
    state::{Shared, State},
    templates,
    types::RecordedRequest,
    wire::parse_form,
};

/// Larger than the biggest upload Meta accepts (documents, 100 MB).
const MAX_BODY: usize = 110 * 1024 * 1024;

/// Every request lands here (the router's fallback).
pub(crate) async fn handle(AxState(sh): AxState<Arc<Shared>>, req: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let resp = match to_bytes(body, MAX_BODY).await {
        Ok(bytes) => dispatch(&sh, &parts, bytes),
        Err(_) => GraphError::invalid("request body too large or unreadable").into_response(),
    };
    let spent = started.elapsed().as_nanos() as u64;
    sh.busy_nanos
        .fetch_add(spent, std::sync::atomic::Ordering::Relaxed);
    let latency = sh.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    resp
}

/// `/v23.0/x/y` → `/x/y`; paths without a version stay as they are.
fn strip_version(path: &str) -> &str {
    let rest = &path[1.min(path.len())..];
    let (first, _) = rest.split_once('/').unwrap_or((rest, ""));
    let is_version = first
        .strip_prefix('v')
        .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
    if is_version {
        &path[1 + first.len()..]
    } else {
        path
    }
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The object a request addresses, resolved against the state.
enum Target {
    Number(String),
    Waba(String),
    Template,
    Media { owner: String },
}

fn dispatch(sh: &Arc<Shared>, parts: &Parts, bytes: Bytes) -> Response {
    let raw_path = parts.uri.path();
    let path = strip_version(raw_path);
    let path = if path.is_empty() { "/" } else { path };
    let query_str = parts.uri.query().unwrap_or("");
    let content_type = header_str(&parts.headers, header::CONTENT_TYPE).unwrap_or("");
    let auth = header_str(&parts.headers, header::AUTHORIZATION).map(str::to_owned);
    let method = parts.method.as_str();

    let mut reject: Option<String> = None;
    let query = parse_form(query_str).unwrap_or_else(|e| {
        reject = Some(format!("query: {e}"));
        HashMap::new()
    });
    let body = if bytes.is_empty() || content_type.starts_with("multipart/") {
        Value::Null
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        match std::str::from_utf8(&bytes)
            .map_err(|e| e.to_string())
            .and_then(parse_form)
        {
            Ok(m) => Value::Object(m.into_iter().map(|(k, v)| (k, Value::String(v))).collect()),
            Err(e) => {
                reject = Some(format!("form body: {e}"));
                Value::Null
            }
        }
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            reject = Some(format!("body is not valid JSON: {e}"));
            Value::Null
        })
    };

    let mut st = sh.lock();
    st.requests.push(RecordedRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query_str.to_owned(),
        body: body.clone(),
        authorization: auth.clone(),
    });
    let result = admit(&mut st, method, path, auth.as_deref(), reject);
    drop(st);
    let result = result.and_then(|target| {
        route(
            sh,
            &parts.method,
            path,
            raw_path,
            target,
            &query,
            &body,
            content_type,
            &bytes,
        )
    });
    match result {
        Ok(resp) => resp,
        Err(e) => {
            if let Some(reason) = &e.rejection {
                sh.lock()
                    .rejections
                    .push(format!("{method} {path}: {reason}"));
            }
            e.into_response()
        }
    }
}

/// Authenticates, resolves the addressed object and applies queued failures.
fn admit(
    st: &mut State,
    method: &str,
    path: &str,
    auth: Option<&str>,
    reject: Option<String>,
) -> Result<Target, GraphError> {
    let Some(token) = auth.and_then(|a| a.strip_prefix("Bearer ")).map(str::trim) else {
        return Err(GraphError::bad_token().rejected("missing Authorization: Bearer header"));
    };
    if !st.known_tokens.contains(token) {
        return Err(GraphError::bad_token());
    }
    if st.expired_tokens.contains(token) {
        return Err(GraphError::expired_token());
    }
    let mut segs = path.trim_matches('/').split('/');
    let mut id = segs.next().unwrap_or("");
    if id == "media-download" {
        id = segs.next().unwrap_or("");
    }
    let (target, allowed) = if let Some(n) = st.numbers.get(id) {
        (Target::Number(id.to_owned()), n.cfg.access_token == token)
    } else if st.wabas.contains_key(id) {
        (Target::Waba(id.to_owned()), st.waba_token(id, token))
    } else if let Some(t) = st.templates.get(id) {
        (Target::Template, st.waba_token(&t.waba, token))
    } else if let Some(m) = st.media.get(id) {
        let ok = st
            .numbers
            .get(&m.owner)
            .is_some_and(|n| n.cfg.access_token == token);
        (
            Target::Media {
                owner: m.owner.clone(),
            },
            ok,
        )
    } else {
        return Err(GraphError::no_object(method, id));
    };
    if !allowed {
        return Err(GraphError::bad_token());
    }
    if let Some(reason) = reject {
        return Err(GraphError::invalid(reason));
    }
    let owner = match &target {
        Target::Number(p) | Target::Media { owner: p } => Some(p.as_str()),
        Target::Waba(_) | Target::Template => None,
    };
    let hit = st.failures.iter().position(|f| {
        f.times > 0
            && f.phone_number_id
                .as_deref()
                .is_none_or(|p| p == id || Some(p) == owner)
            && f.path_contains.as_deref().is_none_or(|s| path.contains(s))
    });
    if let Some(i) = hit {
        let err = GraphError::from_failure(&st.failures[i]);
        st.failures[i].times -= 1;
        if st.failures[i].times == 0 {
            st.failures.remove(i);
        }
        return Err(err);
    }
    Ok(target)
}

#[allow(clippy::too_many_arguments)]
fn route(
    sh: &Arc<Shared>,
    method: &Method,
    path: &str,
    raw_path: &str,
    target: Target,
    q: &HashMap<String, String>,
    body: &Value,
    content_type: &str,
    bytes: &Bytes,
) -> Result<Response, GraphError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let json = |v: Result<Value, GraphError>| v.map(|v| axum::Json(v).into_response());
    let m = method.as_str();
    let unsupported = || GraphError::invalid(format!("unsupported {m} request on {path}"));
    match (&target, &segs[..]) {
        (_, ["media-download", id]) => match (&target, m) {
            (Target::Media { .. }, "GET") => media::download(sh, id),
            _ => Err(unsupported()),
        },
        (Target::Number(p), [_]) => match m {
            "GET" => json(numbers::get_number(sh, p, q)),
            _ => Err(unsupported()),
        },
        (Target::Number(p), [_, edge]) => json(match (m, *edge) {
            ("POST", "messages") => messages::post_messages(sh, p, body),
            ("POST", "media") => media::upload(sh, p, content_type, bytes),
            ("GET", "whatsapp_business_profile") => numbers::get_profile(sh, p, q),
            ("POST", "whatsapp_business_profile") => numbers::update_profile(sh, p, body),
            ("POST", "request_code") => numbers::request_code(sh, p, q, body),
            ("POST", "verify_code") => numbers::verify_code(sh, p, q, body),
            ("POST", "register") => numbers::register(sh, p, body, true),
            ("POST", "deregister") => numbers::register(sh, p, body, false),
            _ => Err(unsupported()),
        }),
        (Target::Waba(w), [_]) => match m {
            "GET" => Ok(axum::Json(numbers::get_waba(sh, w)).into_response()),
            _ => Err(unsupported()),
        },
        (Target::Waba(w), [_, edge]) => json(match (m, *edge) {
            ("GET", "phone_numbers") => numbers::list_numbers(sh, w, q),
            ("GET", "message_templates") => templates::list(sh, w, q, raw_path),
            ("POST", "message_templates") => templates::create(sh, w, body),
            ("DELETE", "message_templates") => templates::delete(sh, w, q),
            ("GET", "subscribed_apps") => Ok(serde_json::json!({"data": [{
                "whatsapp_business_api_data": {"id": "1", "name": "Wharf", "link": "https://wharf.invalid"}
            }]})),
            ("POST" | "DELETE", "subscribed_apps") => Ok(serde_json::json!({"success": true})),
            _ => Err(unsupported()),
        }),
        (Target::Template, [id]) => json(match m {
            "GET" => templates::get(sh, id, q),
            "POST" => templates::edit(sh, id, body),
            _ => Err(unsupported()),
        }),
        (Target::Media { .. }, [id]) => json(match m {
            "GET" => media::get(sh, id, q),
            "DELETE" => media::delete(sh, id),
            _ => Err(unsupported()),
        }),
        _ => Err(GraphError::invalid(format!(
            "unknown path components: {path}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::strip_version;

    #[test]
    fn strips_versions() {
        assert_eq!(strip_version("/v23.0/123/messages"), "/123/messages");
        assert_eq!(strip_version("/v19/123"), "/123");
        assert_eq!(strip_version("/123/messages"), "/123/messages");
        assert_eq!(strip_version("/v23.0"), "");
        assert_eq!(strip_version("/vendor/x"), "/vendor/x");
    }
}
