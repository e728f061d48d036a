//! The error envelope of the Wapio dialect (also used by the emulator and ops routes):
//! `{"success": false, "message", "reason_code", "errors": {field: [messages]}}`.

use std::collections::BTreeMap;

use axum::{
    Json,
    response::{IntoResponse, Response},
};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use crate::ServiceError;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always `false`.
    pub success: bool,
    /// What went wrong, for a person.
    pub message: String,
    /// What went wrong, for a program: `unauthenticated`, `invalid_token`, `forbidden`,
    /// `not_found`, `invalid_state`, `validation_error`, `engine_unavailable`,
    /// `unsupported_by_engine`, `engine_failed`, `rate_limited`, `bad_request`,
    /// `payload_too_large`, `unsupported_media_type`, `method_not_allowed`, `timeout`,
    /// `database_unavailable`, `idempotency_key_reused`, `edit_window_closed`,
    /// `session_not_connected`, `delivery_in_progress`, `qr_not_supported`,
    /// `phone_number_in_use`, `outside_customer_service_window`, `invalid_signature`,
    /// `cursor_expired`, `owned_elsewhere`, `internal_error`.
    pub reason_code: String,
    /// Messages by field at fault; empty when no single field is.
    pub errors: BTreeMap<String, Vec<String>>,
    /// With `cursor_expired` (410) only: the oldest cursor the event log can be read after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_cursor: Option<i64>,
}

/// An error answer: status, envelope and extra headers (boxed: errors travel in `Result`s).
#[derive(Debug)]
pub struct ApiError(Box<ErrorParts>);

/// The parts of an [`ApiError`].
#[derive(Debug)]
pub struct ErrorParts {
    pub status: StatusCode,
    pub body: ErrorBody,
    pub headers: HeaderMap,
}

impl std::ops::Deref for ApiError {
    type Target = ErrorParts;
    fn deref(&self) -> &ErrorParts {
        &self.0
    }
}

impl std::ops::DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut ErrorParts {
        &mut self.0
    }
}

impl ApiError {
    /// An error with no field at fault.
    pub fn new(status: StatusCode, reason_code: &str, message: impl Into<String>) -> Self {
        Self(Box::new(ErrorParts {
            status,
            body: ErrorBody {
                success: false,
                message: message.into(),
                reason_code: reason_code.to_owned(),
                errors: BTreeMap::new(),
                oldest_cursor: None,
            },
            headers: HeaderMap::new(),
        }))
    }

    /// A 422 naming one field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ServiceError::invalid(field, message).into()
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        if let Ok(v) = HeaderValue::from_str(&value) {
            self.headers.insert(name, v);
        }
        self
    }

    /// 404 for a path or object that is not there.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(what) => Self::not_found(what),
            ServiceError::Unauthorized => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the token is invalid or was revoked",
            ),
            ServiceError::Stale => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "credentials_changed",
                "the key or session changed while the request was handled; retry",
            )
            .with_header("retry-after", "1".into()),
            ServiceError::Forbidden(message) => {
                Self::new(StatusCode::FORBIDDEN, "forbidden", message)
            }
            ServiceError::Conflict {
                reason_code,
                message,
            } => Self::new(StatusCode::CONFLICT, reason_code, message),
            ServiceError::Unavailable {
                reason_code,
                message,
            } => Self::new(StatusCode::SERVICE_UNAVAILABLE, reason_code, message),
            ServiceError::Invalid {
                reason_code,
                message,
                errors,
            } => {
                let mut err = Self::new(StatusCode::UNPROCESSABLE_ENTITY, reason_code, message);
                err.body.errors = errors;
                err
            }
            ServiceError::Engine(e) => {
                use wharf_core::EngineError as E;
                match e {
                    E::Conflict(m) => Self::new(StatusCode::CONFLICT, "invalid_state", m),
                    E::Unsupported(_) => Self::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "unsupported_by_engine",
                        e.to_string(),
                    ),
                    E::Transient(_) => Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "engine_unavailable",
                        e.to_string(),
                    )
                    .with_header("retry-after", "5".into()),
                    E::RetryLater { after_ms, .. } => {
                        let secs = after_ms.map_or(5, |ms| ms.div_ceil(1000).max(1));
                        Self::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "engine_unavailable",
                            e.to_string(),
                        )
                        .with_header("retry-after", secs.to_string())
                    }
                    E::Permanent(_) => {
                        Self::new(StatusCode::BAD_GATEWAY, "engine_failed", e.to_string())
                    }
                }
            }
            ServiceError::BadGateway(message) => {
                Self::new(StatusCode::BAD_GATEWAY, "engine_bad_answer", message)
            }
            e @ ServiceError::CursorExpired { field, oldest } => {
                let mut err = Self::new(StatusCode::GONE, "cursor_expired", e.to_string());
                err.body.errors.insert(
                    field.to_owned(),
                    vec![format!(
                        "older than the event log's retention; the oldest available cursor is {oldest}"
                    )],
                );
                err.body.oldest_cursor = Some(oldest);
                err
            }
            e @ ServiceError::OwnedElsewhere { .. } => {
                let ServiceError::OwnedElsewhere { address, .. } = &e else {
                    unreachable!()
                };
                let err = Self::new(StatusCode::CONFLICT, "owned_elsewhere", e.to_string());
                match address {
                    // Read (and removed) by `forward::to_owner`, which sends the call there.
                    Some(address) => err.with_header(super::forward::FORWARD_TO, address.clone()),
                    None => err,
                }
            }
            ServiceError::Internal(e) => {
                // The request id is on the enclosing span, so this line carries it.
                tracing::error!(error = ?e, "internal error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "internal server error",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let ErrorParts {
            status,
            body,
            headers,
        } = *self.0;
        let mut response = (status, Json(body)).into_response();
        response.headers_mut().extend(headers);
        response
    }
}
