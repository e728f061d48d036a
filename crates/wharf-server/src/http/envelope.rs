//! Errors that no handler answers (unknown routes, methods, unreadable paths, timeouts,
//! panics, and anything a layer answered outside the envelope) get the envelope of the
//! dialect the path belongs to; and the rule for client-sent request ids.

use std::{panic::AssertUnwindSafe, time::Duration};

use axum::{
    extract::Request,
    middleware::Next,
    response::{IntoResponse, Response},
};
use futures::FutureExt;
use http::{StatusCode, Uri, header::CONTENT_TYPE};

use super::{error::ApiError, kapso::KapsoError, zernio::ZernioError};

/// Whose envelope an answer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Wapio's `{success, message, reason_code, errors}`, also the emulator's, ops' and
    /// every unknown path's.
    Wapio,
    /// Zernio's `{error, type, code, param}`.
    Zernio,
    /// Kapso's `{error, errors}`.
    Kapso,
}

/// Whether `path` is `prefix` or below it.
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl Dialect {
    /// The dialect whose routes `path` belongs to (Wapio for unknown paths).
    pub fn of(path: &str) -> Self {
        let unprefixed = path.strip_prefix("/api").unwrap_or(path);
        if under(unprefixed, "/v1/whatsapp/sandbox") {
            Self::Zernio
        } else if under(path, "/api/v1/sandbox_sessions") || under(path, "/api/v1/agents") {
            Self::Kapso
        } else {
            Self::Wapio
        }
    }

    /// `error` in this dialect's envelope.
    pub fn answer(self, error: ApiError) -> Response {
        match self {
            Self::Wapio => error.into_response(),
            Self::Zernio => ZernioError::from(error).into_response(),
            Self::Kapso => KapsoError::from(error).into_response(),
        }
    }
}

/// The reason code of an error answered by a layer rather than a handler.
fn reason_of(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => ("bad_request", "the request could not be read"),
        404 => ("not_found", "route not found"),
        405 => (
            "method_not_allowed",
            "this method is not allowed on this route",
        ),
        408 => ("timeout", "the request took too long to arrive"),
        413 => ("payload_too_large", "the request body is too large"),
        414 => ("uri_too_long", "the request URI is too long"),
        415 => (
            "unsupported_media_type",
            "the body must be JSON (Content-Type: application/json)",
        ),
        422 => ("validation_error", "the request is invalid"),
        431 => (
            "headers_too_large",
            "the request headers are too large or too many",
        ),
        429 => ("rate_limited", "too many requests"),
        504 => ("timeout", "the request took too long and was abandoned"),
        s if s >= 500 => ("internal_error", "internal server error"),
        _ => ("bad_request", "the request was refused"),
    }
}

/// The envelope's error for a bare `status`.
pub fn bare(status: StatusCode) -> ApiError {
    let (reason, message) = reason_of(status);
    ApiError::new(status, reason, message)
}

/// The most header bytes (names and values) a request may carry. hyper refuses more than
/// 100 headers by itself, but lets one header grow to hundreds of KiB.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// How long a request may take before it is answered with 504.
const REQUEST_TIME_LIMIT: Duration = Duration::from_secs(30);

/// Middleware around every route: refuses a path that is not UTF-8 or holds a NUL once
/// percent-decoded, answers 504 after [`REQUEST_TIME_LIMIT`] and 500 on a panic, and puts
/// any error answered without a JSON body into the envelope, each in the path's dialect.
pub async fn guard(req: Request, next: Next) -> Response {
    guarded(req, next, REQUEST_TIME_LIMIT).await
}

async fn guarded(req: Request, next: Next, time_limit: Duration) -> Response {
    let dialect = Dialect::of(req.uri().path());
    if let Some(error) = path_fault(req.uri()) {
        return dialect.answer(error);
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return dialect.answer(bare(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
    }
    let run = AssertUnwindSafe(next.run(req)).catch_unwind();
    let response = match tokio::time::timeout(time_limit, run).await {
        Ok(Ok(response)) => response,
        Ok(Err(_)) => {
            // The request id is on the enclosing span.
            tracing::error!("a handler panicked");
            return dialect.answer(bare(StatusCode::INTERNAL_SERVER_ERROR));
        }
        Err(_) => return dialect.answer(bare(StatusCode::GATEWAY_TIMEOUT)),
    };
    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        let json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            // The dashboard's error pages are HTML on purpose.
            .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
        if !json {
            let mut answer = dialect.answer(bare(status));
            // Keep what the layer said besides its body (Allow, Retry-After, rate limits).
            for (name, value) in response.headers() {
                if name != CONTENT_TYPE && name != http::header::CONTENT_LENGTH {
                    answer.headers_mut().insert(name, value.clone());
                }
            }
            return answer;
        }
    }
    response
}

/// A 400 or 422 for a path that cannot name anything: not UTF-8, or holding a NUL, once
/// percent-decoded (axum's path extractor would answer the first in plain text; PostgreSQL
/// cannot store the second).
fn path_fault(uri: &Uri) -> Option<ApiError> {
    let path = uri.path();
    if !path.contains('%') {
        return None;
    }
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                decoded.push((hex(h)? * 16 + hex(l)?) as u8);
                i += 3;
            }
            (b, _, _) => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    let text = match String::from_utf8(decoded) {
        Ok(text) => text,
        Err(_) => {
            let mut error = ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "path: is not valid UTF-8 once percent-decoded",
            );
            error.body.errors.insert(
                "path".into(),
                vec!["is not valid UTF-8 once percent-decoded".into()],
            );
            return Some(error);
        }
    };
    text.contains('\0')
        .then(|| ApiError::invalid("path", super::extract::NUL_MESSAGE))
}

/// GET, POST, … on a path no route serves.
pub async fn not_found(uri: Uri) -> Response {
    Dialect::of(uri.path()).answer(ApiError::not_found("route"))
}

/// A method the path's route does not serve.
pub async fn method_not_allowed(uri: Uri) -> Response {
    Dialect::of(uri.path()).answer(bare(StatusCode::METHOD_NOT_ALLOWED))
}

/// The longest client-sent `X-Request-Id` kept.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Whether a client-sent request id is kept (and echoed and logged): 1 to
/// [`MAX_REQUEST_ID_LEN`] characters of `A-Z a-z 0-9 . _ : -`.
pub fn request_id_is_safe(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Middleware before the request id is set: drops a client-sent `X-Request-Id` that breaks
/// [`request_id_is_safe`] (and any second one), so a generated id replaces it; logs and
/// answers never carry what a client chose beyond the safe set.
pub async fn request_id_rule(mut req: Request, next: Next) -> Response {
    let headers = req.headers_mut();
    let mut ids = headers.get_all("x-request-id").iter();
    let refused = match (ids.next(), ids.next()) {
        (None, _) => false,
        (Some(id), None) => !request_id_is_safe(id.as_bytes()),
        (Some(_), Some(_)) => true,
    };
    if refused {
        headers.remove("x-request-id");
    }
    next.run(req).await
}

/// The body of an error answered with a bare `status`, in `dialect`'s envelope, for answers
/// made below the router (see `conn`).
pub fn envelope_json(dialect: Dialect, status: StatusCode) -> Vec<u8> {
    let error = bare(status);
    match dialect {
        Dialect::Wapio => serde_json::to_vec(&error.body),
        Dialect::Zernio => ZernioError::from(error).body_json(),
        Dialect::Kapso => KapsoError::from(error).body_json(),
    }
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use axum::{Router, body::Body, middleware::from_fn, routing::get};
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    /// `path` through the guard, on routes that panic, stall or answer in plain text.
    async fn call(path: &str) -> (StatusCode, Value) {
        async fn panics() -> &'static str {
            panic!("a bug")
        }
        async fn stalls() -> &'static str {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "late"
        }
        async fn plain() -> (StatusCode, &'static str) {
            (StatusCode::BAD_REQUEST, "plain text")
        }
        let app = Router::new()
            .route("/v1/whatsapp-sessions/{id}", get(panics))
            .route("/v1/whatsapp/sandbox/sessions", get(panics))
            .route("/api/v1/agents", get(stalls))
            .route("/api/v1/agents/{id}", get(plain))
            .route("/healthz", get(stalls))
            .layer(from_fn(|req, next| {
                guarded(req, next, Duration::from_millis(50))
            }));
        let response = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        assert!(
            response.headers()[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn panics_are_500_in_the_paths_envelope() {
        let (status, body) = call("/v1/whatsapp-sessions/sess_1").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["reason_code"], "internal_error");
        assert_eq!(body["success"], false);
        let (status, body) = call("/v1/whatsapp/sandbox/sessions").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["type"], "api_error");
        assert_eq!(body["code"], "internal_error");
    }

    #[tokio::test]
    async fn timeouts_are_504_in_the_paths_envelope() {
        let (status, body) = call("/api/v1/agents").await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        assert!(
            body["error"].as_str().unwrap().contains("too long"),
            "{body}"
        );
        assert!(body.get("success").is_none(), "{body}");
        let (status, body) = call("/healthz").await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(body["reason_code"], "timeout");
    }

    #[tokio::test]
    async fn plain_text_errors_are_put_in_the_envelope() {
        let (status, body) = call("/api/v1/agents/agt_1").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["error"].is_string(), "{body}");
    }

    #[test]
    fn dialects_by_path() {
        assert_eq!(
            Dialect::of("/v1/whatsapp/sandbox/sessions"),
            Dialect::Zernio
        );
        assert_eq!(
            Dialect::of("/api/v1/whatsapp/sandbox/sessions/x"),
            Dialect::Zernio
        );
        assert_eq!(Dialect::of("/api/v1/sandbox_sessions"), Dialect::Kapso);
        assert_eq!(Dialect::of("/api/v1/agents/agt_1"), Dialect::Kapso);
        assert_eq!(Dialect::of("/api/v1/agentsx"), Dialect::Wapio);
        assert_eq!(Dialect::of("/api/send-message"), Dialect::Wapio);
        assert_eq!(Dialect::of("/"), Dialect::Wapio);
    }

    #[test]
    fn request_id_rule() {
        assert!(request_id_is_safe(b"req_01J:a.b-c"));
        assert!(request_id_is_safe("x".repeat(128).as_bytes()));
        assert!(!request_id_is_safe("x".repeat(129).as_bytes()));
        assert!(!request_id_is_safe(b""));
        assert!(!request_id_is_safe(b"a b"));
        assert!(!request_id_is_safe("\u{e9}".as_bytes()));
    }
}
