//! Graph's error envelope, the titles Meta gives its codes, and the HTTP status for each.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use rand::Rng;
use serde_json::{Map, Value, json};

use crate::types::Failure;

/// An error answered in Graph's envelope
/// `{"error":{"message","type","code","error_subcode"?,"error_data"?,"fbtrace_id"}}`.
#[derive(Debug)]
pub(crate) struct GraphError {
    pub status: u16,
    pub code: i64,
    pub subcode: Option<i64>,
    /// `GraphMethodException` instead of `OAuthException` (kept a bool to keep errors small).
    pub method_exception: bool,
    pub message: String,
    pub details: Option<String>,
    /// Seconds (`u32` keeps the error small; a queued failure's value is capped).
    pub retry_after: Option<u32>,
    /// Set when the request was malformed (a client bug): recorded in `rejections()`.
    pub rejection: Option<String>,
    /// Answered instead of the envelope (a queued [`Failure`] playing a misbehaving Graph).
    pub raw_body: Option<Box<Value>>,
}

impl GraphError {
    /// A business error with Meta's status and title for `code`, and `details` in `error_data`.
    pub fn code(code: i64, details: impl Into<String>) -> Self {
        Self {
            status: default_status(code),
            code,
            subcode: None,
            method_exception: false,
            message: format!("(#{code}) {}", title(code)),
            details: Some(details.into()),
            retry_after: None,
            rejection: None,
            raw_body: None,
        }
    }

    /// A malformed request: 400, code 100, naming the field; recorded as a rejection.
    pub fn invalid(reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self {
            status: 400,
            code: 100,
            subcode: None,
            method_exception: false,
            message: format!("(#100) Invalid parameter: {reason}"),
            details: Some(reason.clone()),
            retry_after: None,
            rejection: Some(reason),
            raw_body: None,
        }
    }

    /// 401, code 190: missing, unknown or mismatched token.
    pub fn bad_token() -> Self {
        Self {
            status: 401,
            code: 190,
            subcode: None,
            method_exception: false,
            message: "Invalid OAuth access token - Cannot parse access token".into(),
            details: None,
            retry_after: None,
            rejection: None,
            raw_body: None,
        }
    }

    /// 401, code 190, subcode 463: the token expired.
    pub fn expired_token() -> Self {
        Self {
            subcode: Some(463),
            message: "Error validating access token: Session has expired on Tuesday, \
                      01-Jul-25 00:00:00 PDT."
                .into(),
            ..Self::bad_token()
        }
    }

    /// 400, code 100, subcode 33: the addressed object does not exist (or is not ours).
    pub fn no_object(method: &str, id: &str) -> Self {
        Self {
            status: 400,
            code: 100,
            subcode: Some(33),
            method_exception: true,
            message: format!(
                "Unsupported {} request. Object with ID '{id}' does not exist, cannot be loaded \
                 due to missing permissions, or does not support this operation. Please read \
                 the Graph API documentation at https://developers.facebook.com/docs/graph-api",
                method.to_ascii_lowercase()
            ),
            details: None,
            retry_after: None,
            rejection: None,
            raw_body: None,
        }
    }

    /// The error a queued [`Failure`] produces.
    pub fn from_failure(f: &Failure) -> Self {
        Self {
            status: f.http_status,
            code: f.code,
            subcode: f.subcode,
            method_exception: false,
            message: f.message.clone(),
            details: (f.code >= 130_000).then(|| title(f.code).to_owned()),
            retry_after: f.retry_after.map(|s| u32::try_from(s).unwrap_or(u32::MAX)),
            rejection: None,
            raw_body: f.raw_body.clone().map(Box::new),
        }
    }

    /// Mark as a rejection (a client bug) with `reason`.
    pub fn rejected(mut self, reason: impl Into<String>) -> Self {
        self.rejection = Some(reason.into());
        self
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        if let Some(raw) = &self.raw_body {
            return (**raw).clone();
        }
        let mut e = Map::new();
        e.insert("message".into(), json!(self.message));
        let kind = if self.method_exception {
            "GraphMethodException"
        } else {
            "OAuthException"
        };
        e.insert("type".into(), json!(kind));
        e.insert("code".into(), json!(self.code));
        if let Some(sub) = self.subcode {
            e.insert("error_subcode".into(), json!(sub));
        }
        if let Some(details) = &self.details {
            e.insert(
                "error_data".into(),
                json!({"messaging_product": "whatsapp", "details": details}),
            );
        }
        e.insert("fbtrace_id".into(), json!(fbtrace_id()));
        json!({ "error": e })
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut resp = (status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == 401 {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("OAuth \"Facebook Platform\" \"invalid_token\""),
            );
        }
        resp
    }
}

/// A random trace id shaped like Meta's.
fn fbtrace_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    (0..23)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The HTTP status Meta answers a Graph error code with.
pub(crate) fn default_status(code: i64) -> u16 {
    match code {
        0 | 190 => 401,
        10 | 200..=299 | 368 | 130_497 | 131_031 => 403,
        4 | 80_007 | 130_429 => 429,
        1 | 2 | 131_000 => 500,
        131_016 | 131_057 => 503,
        _ => 400,
    }
}

/// The title Meta gives a Graph error code.
pub(crate) fn title(code: i64) -> &'static str {
    match code {
        0 => "AuthException",
        1 => "API Unknown",
        2 => "API Service",
        3 => "API Method",
        4 => "API Too Many Calls",
        10 => "API Permission Denied",
        33 => "Object does not exist",
        100 => "Invalid parameter",
        190 => "Access token has expired",
        200..=299 => "API Permission",
        368 => "Temporarily blocked for policies violations",
        80_007 => "Rate limit issues",
        130_429 => "Rate limit hit",
        130_472 => "User's number is part of an experiment",
        130_497 => "Business account is restricted from messaging users in this country",
        131_000 => "Something went wrong",
        131_005 => "Access denied",
        131_008 => "Required parameter is missing",
        131_009 => "Parameter value is not valid",
        131_016 => "Service unavailable",
        131_021 => "Recipient cannot be sender",
        131_026 => "Message Undeliverable",
        131_031 => "Business Account locked",
        131_042 => "Business eligibility payment issue",
        131_045 => "Incorrect certificate",
        131_047 => "Re-engagement message",
        131_048 => "Spam rate limit hit",
        131_049 => "This message was not delivered to maintain healthy ecosystem engagement.",
        131_050 => "User has stopped marketing messages",
        131_051 => "Unsupported message type",
        131_052 => "Media download error",
        131_053 => "Media upload error",
        131_056 => "(Business Account, Consumer Account) pair rate limit hit",
        131_057 => "Account in maintenance mode",
        132_000 => "Number of parameters does not match the expected number of params",
        132_001 => "Template name does not exist in the translation",
        132_005 => "Translated text too long",
        132_007 => "Template Format Character Policy Violated",
        132_012 => "Parameter format does not match format in the created template",
        132_015 => "Template is Paused",
        132_016 => "Template is Disabled",
        133_005 => "Two step verification PIN Mismatch",
        133_010 => "Phone number Not Registered",
        136_025 => "Verification code is incorrect",
        _ => "Error",
    }
}
