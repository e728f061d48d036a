//! The service layer's error: what went wrong in terms a dialect can map to its envelope.

use std::collections::BTreeMap;

use wharf_core::EngineError;
use wharf_store::StoreError;

/// A service failure. Client mistakes carry what to tell the client; everything else is
/// [`ServiceError::Internal`], logged with the request id and answered as a bare 500.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The object does not exist or is not visible to the caller (never "forbidden", so the
    /// existence of another tenant's objects does not leak).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The credential is unknown or was revoked (found by a check after authentication).
    #[error("the token is invalid or was revoked")]
    Unauthorized,
    /// A send decided with cached credentials found them changed at commit time; the send
    /// path decides it again. Answered 503 should it ever get out.
    #[error("the key or session changed while the request was handled; retry")]
    Stale,
    /// Authenticated, but this credential may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The object's state does not allow the operation.
    #[error("{message}")]
    Conflict {
        reason_code: &'static str,
        message: String,
    },
    /// Something the operator must set up first is missing (503).
    #[error("{message}")]
    Unavailable {
        reason_code: &'static str,
        message: String,
    },
    /// Input failed validation; `errors` maps each field at fault to its messages.
    #[error("{message}")]
    Invalid {
        reason_code: &'static str,
        message: String,
        errors: BTreeMap<String, Vec<String>>,
    },
    /// An engine failed while doing what was asked.
    #[error("{0}")]
    Engine(EngineError),
    /// The provider answered something Wharf cannot read (a Graph answer of the wrong
    /// shape): a bad gateway, answered 502 naming what was wrong.
    #[error("{0}")]
    BadGateway(String),
    /// A cursor (of the parameter `field`) before events that retention removed: reading on
    /// from it would miss them; `oldest` is the oldest cursor that can be read after.
    #[error(
        "{field}: the events after this cursor were removed by retention; the oldest available cursor is {oldest}"
    )]
    CursorExpired { field: &'static str, oldest: i64 },
    /// The call needs the session's live connection, which another live instance runs
    /// (`instance`, reachable at `address` when it said where): answered 409, or forwarded to
    /// that instance by the HTTP layer.
    #[error("the session's connection runs on instance {instance}; this call needs it there")]
    OwnedElsewhere {
        instance: String,
        address: Option<String>,
    },
    /// A bug or an outage.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ServiceError {
    /// A validation failure of one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let message = message.into();
        let field = field.into();
        let mut errors = BTreeMap::new();
        errors.insert(field.clone(), vec![message.clone()]);
        Self::Invalid {
            reason_code: "validation_error",
            message: format!("{field}: {message}"),
            errors,
        }
    }

    /// A validation failure of one field with a specific reason code.
    pub fn invalid_with(
        reason_code: &'static str,
        field: &str,
        message: impl Into<String>,
    ) -> Self {
        match Self::invalid(field, message) {
            Self::Invalid {
                message, errors, ..
            } => Self::Invalid {
                reason_code,
                message,
                errors,
            },
            other => other,
        }
    }

    /// A state conflict.
    pub fn conflict(reason_code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            reason_code,
            message: message.into(),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Stale => Self::Stale,
            e => Self::Internal(anyhow::Error::new(e)),
        }
    }
}

impl From<EngineError> for ServiceError {
    fn from(e: EngineError) -> Self {
        Self::Engine(e)
    }
}
