//! A small Graph API client for one phone number, and Graph's errors classified by
//! `error.code` (the contract's table), never by HTTP status alone.

use std::{fmt, time::Duration};

use reqwest::{Method, header};
use serde_json::Value;
use wharf_core::EngineError;

/// A Graph client bound to one access token and one `base_url/version` prefix.
#[derive(Clone)]
pub struct Graph {
    http: reqwest::Client,
    /// `https://graph.facebook.com/v23.0`
    prefix: String,
    token: String,
}

impl fmt::Debug for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Graph")
            .field("prefix", &self.prefix)
            .field("token", &"***")
            .finish()
    }
}

/// A failed Graph call: Graph's error envelope when it answered one, else what went wrong
/// on the way (`code` is then `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphError {
    /// The HTTP status, when Graph answered.
    pub http_status: Option<u16>,
    /// `error.code`.
    pub code: Option<i64>,
    /// `error.error_subcode`.
    pub subcode: Option<i64>,
    /// `error.message` (or the transport failure).
    pub message: String,
    /// `error.error_data.details`.
    pub details: Option<String>,
    /// The `Retry-After` header, in seconds.
    pub retry_after: Option<u64>,
}

/// What to do about a failure, per the contract's table of codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// 0, 190: the token does not work; the session is disconnected.
    Auth,
    /// App, WABA or number throughput limits (4, 80007, 130429): retry after the hint, and
    /// hold the whole number meanwhile.
    NumberRateLimit,
    /// 131056: this recipient only, backing off 4^n seconds.
    PairRateLimit,
    /// 131048: spam rate limit, retry slowly.
    SpamRateLimit,
    /// Unknown, service or maintenance errors (1, 2, 131000, 131016, 131057), 5xx and
    /// transport failures: retry with the usual backoff.
    Transient,
    /// Everything else: retrying will not help.
    Permanent,
}

impl GraphError {
    fn transport(e: &reqwest::Error) -> Self {
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "could not connect"
        } else {
            "request failed"
        };
        Self {
            http_status: None,
            code: None,
            subcode: None,
            message: format!("Graph API {what}: {e}"),
            details: None,
            retry_after: None,
        }
    }

    /// Reads Graph's error envelope from an answer with an error status.
    fn from_answer(status: u16, retry_after: Option<u64>, body: &[u8]) -> Self {
        let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let e = &json["error"];
        let message = e["message"].as_str().map(str::to_owned).unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text: String = text.chars().take(200).collect();
            format!("Graph API answered {status}: {text}")
        });
        Self {
            http_status: Some(status),
            code: e["code"].as_i64(),
            subcode: e["error_subcode"].as_i64(),
            message,
            details: e["error_data"]["details"].as_str().map(str::to_owned),
            retry_after,
        }
    }

    /// The class of this failure.
    pub fn class(&self) -> ErrorClass {
        match self.code {
            Some(0 | 190) => ErrorClass::Auth,
            Some(4 | 80_007 | 130_429) => ErrorClass::NumberRateLimit,
            Some(131_056) => ErrorClass::PairRateLimit,
            Some(131_048) => ErrorClass::SpamRateLimit,
            Some(1 | 2 | 131_000 | 131_016 | 131_057) => ErrorClass::Transient,
            Some(_) => ErrorClass::Permanent,
            // No Graph code: judge by what happened on the way.
            None => match self.http_status {
                None => ErrorClass::Transient,
                Some(401) => ErrorClass::Auth,
                Some(429) => ErrorClass::NumberRateLimit,
                Some(s) if s >= 500 => ErrorClass::Transient,
                Some(_) => ErrorClass::Permanent,
            },
        }
    }

    /// The failure as Wharf reports it: `Graph error CODE: message (details)`.
    pub fn describe(&self) -> String {
        let Some(code) = self.code else {
            return self.message.clone();
        };
        // Graph's messages start with "(#CODE) "; the code is named once, up front.
        let message = self
            .message
            .strip_prefix(&format!("(#{code}) "))
            .unwrap_or(&self.message);
        match &self.details {
            Some(d) if !d.is_empty() && d != message => {
                format!("Graph error {code}: {message} ({d})")
            }
            _ => format!("Graph error {code}: {message}"),
        }
    }

    /// The engine error a send failing this way becomes; `attempt` counts earlier attempts.
    pub fn to_engine_error(&self, attempt: u32) -> EngineError {
        let reason = self.describe();
        let hint = self.retry_after.map(|s| s.saturating_mul(1000));
        match self.class() {
            ErrorClass::Auth => EngineError::RetryLater {
                reason,
                after_ms: None,
                session_wide: true,
            },
            ErrorClass::NumberRateLimit => EngineError::RetryLater {
                reason,
                after_ms: Some(hint.unwrap_or(1000)),
                session_wide: true,
            },
            ErrorClass::PairRateLimit => EngineError::RetryLater {
                reason,
                // 4^n seconds for this recipient only (1, 4, 16, 64, … s), or the hint.
                after_ms: Some(
                    hint.unwrap_or(1000u64.saturating_mul(4u64.saturating_pow(attempt))),
                ),
                session_wide: false,
            },
            ErrorClass::SpamRateLimit => EngineError::RetryLater {
                reason,
                after_ms: Some(hint.unwrap_or(60_000).max(60_000)),
                session_wide: true,
            },
            ErrorClass::Transient => match hint {
                Some(ms) => EngineError::RetryLater {
                    reason,
                    after_ms: Some(ms),
                    session_wide: false,
                },
                None => EngineError::Transient(reason),
            },
            ErrorClass::Permanent => EngineError::Permanent(reason),
        }
    }
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl std::error::Error for GraphError {}

/// A multipart/form-data body: text fields and one file.
pub struct Multipart {
    pub fields: Vec<(&'static str, String)>,
    pub file_field: &'static str,
    pub file_name: String,
    pub file_type: String,
    pub file: Vec<u8>,
}

impl Multipart {
    /// The body and its content type.
    fn encode(&self) -> (Vec<u8>, String) {
        let boundary = format!("wharf-{:032x}", rand::random::<u128>());
        let mut body = Vec::with_capacity(self.file.len() + 512);
        let clean = |s: &str| s.replace(['"', '\r', '\n'], "_");
        for (name, value) in &self.fields {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
                self.file_field,
                clean(&self.file_name),
                clean(&self.file_type)
            )
            .as_bytes(),
        );
        body.extend_from_slice(&self.file);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        (body, format!("multipart/form-data; boundary={boundary}"))
    }
}

impl Graph {
    /// A client for `base_url` (`https://graph.facebook.com`) and `version` (`v23.0`).
    pub fn new(http: reqwest::Client, base_url: &str, version: &str, token: &str) -> Self {
        let base = base_url.trim_end_matches('/');
        let version = version.trim_matches('/');
        Self {
            http,
            prefix: format!("{base}/{version}"),
            token: token.to_owned(),
        }
    }

    /// The URL of `path` (without a leading slash) with `query`.
    fn url(&self, path: &str, query: &[(&str, String)]) -> String {
        let url = format!("{}/{}", self.prefix, path.trim_start_matches('/'));
        match serde_urlencoded::to_string(query) {
            Ok(q) if !q.is_empty() => format!("{url}?{q}"),
            _ => url,
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, GraphError> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| GraphError::transport(&e))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = resp.bytes().await.map_err(|e| GraphError::transport(&e))?;
        if (200..300).contains(&status) {
            if body.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&body).map_err(|e| GraphError {
                http_status: Some(status),
                code: None,
                subcode: None,
                message: format!("Graph API answered {status} with a body that is not JSON: {e}"),
                details: None,
                retry_after: None,
            });
        }
        Err(GraphError::from_answer(status, retry_after, &body))
    }

    /// `GET path?query`.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, GraphError> {
        self.send(self.http.get(self.url(path, query))).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, GraphError> {
        self.send(self.http.post(self.url(path, &[])).json(body))
            .await
    }

    /// `POST path?query` without a body.
    pub async fn post_query(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Value, GraphError> {
        self.send(self.http.post(self.url(path, query))).await
    }

    /// `DELETE path?query`.
    pub async fn delete(&self, path: &str, query: &[(&str, String)]) -> Result<Value, GraphError> {
        self.send(self.http.request(Method::DELETE, self.url(path, query)))
            .await
    }

    /// `GET url` (a media download URL Graph gave) with the token: the file and the type it
    /// was served as.
    pub async fn download(&self, url: &str) -> Result<(Vec<u8>, Option<String>), GraphError> {
        let resp = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| GraphError::transport(&e))?;
        let status = resp.status().as_u16();
        let mime = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp.bytes().await.map_err(|e| GraphError::transport(&e))?;
        if (200..300).contains(&status) {
            return Ok((body.to_vec(), mime));
        }
        Err(GraphError::from_answer(status, None, &body))
    }

    /// `POST path` with a multipart body.
    pub async fn post_multipart(&self, path: &str, form: &Multipart) -> Result<Value, GraphError> {
        let (body, content_type) = form.encode();
        self.send(
            self.http
                .post(self.url(path, &[]))
                .header(header::CONTENT_TYPE, content_type)
                .body(body),
        )
        .await
    }
}

/// The default timeout of one Graph call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

#[cfg(test)]
mod tests {
    use super::*;

    fn code(code: i64) -> GraphError {
        GraphError {
            http_status: Some(400),
            code: Some(code),
            subcode: None,
            message: format!("(#{code}) Something"),
            details: Some("more".into()),
            retry_after: None,
        }
    }

    #[test]
    fn errors_are_classified_by_code() {
        for c in [0, 190] {
            assert_eq!(code(c).class(), ErrorClass::Auth);
        }
        for c in [4, 80_007, 130_429] {
            assert_eq!(code(c).class(), ErrorClass::NumberRateLimit);
        }
        assert_eq!(code(131_056).class(), ErrorClass::PairRateLimit);
        assert_eq!(code(131_048).class(), ErrorClass::SpamRateLimit);
        for c in [1, 2, 131_000, 131_016, 131_057] {
            assert_eq!(code(c).class(), ErrorClass::Transient);
        }
        for c in [
            10, 200, 299, 100, 33, 131_008, 131_009, 131_021, 131_026, 131_047, 131_049, 131_050,
            131_051, 131_052, 131_053, 132_000, 132_016, 133_005, 133_010, 368, 130_497, 131_031,
        ] {
            assert_eq!(code(c).class(), ErrorClass::Permanent, "{c}");
        }
        // A 429 with a code classified permanent stays permanent: the code decides.
        let mut e = code(131_026);
        e.http_status = Some(429);
        assert_eq!(e.class(), ErrorClass::Permanent);
    }

    #[test]
    fn retry_hints_follow_the_contract() {
        let mut limit = code(130_429);
        limit.retry_after = Some(7);
        assert_eq!(
            limit.to_engine_error(0),
            EngineError::RetryLater {
                reason: "Graph error 130429: Something (more)".into(),
                after_ms: Some(7000),
                session_wide: true,
            }
        );
        let EngineError::RetryLater {
            after_ms,
            session_wide,
            ..
        } = code(131_056).to_engine_error(2)
        else {
            panic!()
        };
        assert_eq!((after_ms, session_wide), (Some(16_000), false));
        assert!(matches!(
            code(131_000).to_engine_error(0),
            EngineError::Transient(_)
        ));
        assert_eq!(
            code(131_026).to_engine_error(0),
            EngineError::Permanent("Graph error 131026: Something (more)".into())
        );
    }

    #[test]
    fn multipart_bodies_are_well_formed() {
        let form = Multipart {
            fields: vec![("messaging_product", "whatsapp".into())],
            file_field: "file",
            file_name: "a\"b.png".into(),
            file_type: "image/png".into(),
            file: b"\x89PNG".to_vec(),
        };
        let (body, ct) = form.encode();
        let boundary = ct.split("boundary=").nth(1).unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.contains("filename=\"a_b.png\""));
        assert!(text.ends_with(&format!("\r\n--{boundary}--\r\n")));
    }
}
