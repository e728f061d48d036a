//! Our own body and query extractors, so malformed input gets the envelope with the field at
//! fault instead of axum's plain-text rejection.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
};
use http::{StatusCode, header::CONTENT_TYPE, request::Parts};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON body, not yet parsed: absent or empty reads as `{}`; a content type other than
/// JSON is 415; too large is 413. For handlers that need the bytes (idempotency hashing).
pub struct JsonBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let mime = v
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            });
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the request body is too large",
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("could not read the body: {e}"),
                )
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(Bytes::from_static(b"{}")));
        }
        if json_type == Some(false) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON (Content-Type: application/json)",
            ));
        }
        Ok(Self(bytes))
    }
}

/// A JSON body, parsed: as [`JsonBytes`], then syntax errors, wrong types and unknown fields
/// are 422 naming the field.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let JsonBytes(bytes) = JsonBytes::from_request(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// As [`ApiJson`], with the rejection in another dialect's envelope `E` (built from the
/// [`ApiError`]).
pub struct DialectJson<T, E>(pub T, pub std::marker::PhantomData<E>);

impl<S, T, E> FromRequest<S> for DialectJson<T, E>
where
    S: Send + Sync,
    T: DeserializeOwned,
    E: From<ApiError> + axum::response::IntoResponse,
{
    type Rejection = E;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        ApiJson::<T>::from_request(req, state)
            .await
            .map(|ApiJson(body)| Self(body, std::marker::PhantomData))
            .map_err(E::from)
    }
}

/// Parses JSON, naming the field at fault on failure.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every body is an object; serde would otherwise read a struct from an array.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::invalid(
            "body",
            "malformed JSON: the body must be a JSON object",
        ));
    }
    if let Some(field) = nul_in(bytes) {
        return Err(ApiError::invalid(&field, NUL_MESSAGE));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let inner = e.inner();
        let message = inner.to_string();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::invalid("body", format!("malformed JSON: {message}"));
        }
        let mut path = e.path().to_string();
        // serde reports a missing field at its parent's path; name the field itself.
        if let Some(name) = message
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
        {
            path = if path == "." {
                name.to_owned()
            } else {
                format!("{path}.{name}")
            };
        }
        let field = if path == "." { "body".to_owned() } else { path };
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_owned();
        ApiError::invalid(&field, message)
    })?;
    // One JSON value and nothing after it: `{"a":1} xx` and `{}{}` are malformed.
    de.end().map_err(|e| {
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message);
        ApiError::invalid("body", format!("malformed JSON: {message}"))
    })?;
    Ok(value)
}

/// What a 422 for a NUL character says.
pub const NUL_MESSAGE: &str = "must not contain the NUL character (U+0000)";

/// The path of the first string (or object key) holding a NUL character, named as
/// [`parse_json`] names fields, or `None` when there is none or the body is not JSON (its
/// syntax error is reported by the parse). PostgreSQL cannot store NUL in text, so client
/// input with one is refused on every backend; JSON can only carry it as the `\u0000`
/// escape, so bodies without that sequence (nearly all) cost one scan.
fn nul_in(bytes: &[u8]) -> Option<String> {
    let mut rest = bytes;
    let escaped_nul = loop {
        // Bodies mostly hold no backslash at all: one pass for one byte value.
        match rest.iter().position(|&b| b == b'\\') {
            None => break false,
            Some(at) if rest[at + 1..].starts_with(b"u0000") => break true,
            Some(at) => rest = &rest[at + 1..],
        }
    };
    if !escaped_nul {
        return None;
    }
    // A body the loose parse cannot read (a lone surrogate or an out-of-range number in a
    // field the typed parse ignores) is refused as a whole rather than let through unchecked.
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Some("body".into());
    };
    fn walk(value: &serde_json::Value, path: &str) -> Option<String> {
        let child = |name: &str| {
            if path.is_empty() {
                name.to_owned()
            } else {
                format!("{path}.{name}")
            }
        };
        match value {
            serde_json::Value::String(s) if s.contains('\0') => Some(if path.is_empty() {
                "body".into()
            } else {
                path.into()
            }),
            serde_json::Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| {
                walk(
                    v,
                    &format!("{}[{i}]", if path.is_empty() { "body" } else { path }),
                )
            }),
            serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
                if k.contains('\0') {
                    // The key itself is the fault; name it readably.
                    Some(child(&k.replace('\0', "\u{FFFD}")))
                } else {
                    walk(v, &child(k))
                }
            }),
            _ => None,
        }
    }
    walk(&value, "")
}

/// The smallest page size a `limit` parameter takes (the OpenAPI document states the same
/// bounds on every `limit`; a test holds them equal).
pub const LIMIT_MIN: i64 = 1;
/// The largest page size a `limit` parameter takes.
pub const LIMIT_MAX: i64 = 100;

/// The query string as ordered pairs, for handlers that validate each parameter themselves
/// (and refuse unknown ones).
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|e| ApiError::invalid("query", format!("malformed query string: {e}")))?;
        if let Some((k, v)) = pairs
            .iter()
            .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            let field = if v.contains('\0') && !k.contains('\0') {
                k.as_str()
            } else {
                "query"
            };
            return Err(ApiError::invalid(field, NUL_MESSAGE));
        }
        Ok(QueryPairs(pairs))
    }
}

impl QueryPairs {
    /// Refuses parameters not in `known`, naming the first one.
    pub fn only(&self, known: &[&str]) -> Result<(), ApiError> {
        match self.0.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            Some((k, _)) => Err(ApiError::invalid(
                k,
                format!(
                    "unknown query parameter; expected one of: {}",
                    known.join(", ")
                ),
            )),
            None => Ok(()),
        }
    }

    /// `limit`: [`LIMIT_MIN`] to [`LIMIT_MAX`], 50 when absent.
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.get("limit") {
            None => Ok(50),
            Some(l) => l
                .parse::<i64>()
                .ok()
                .filter(|l| (LIMIT_MIN..=LIMIT_MAX).contains(l))
                .ok_or_else(|| {
                    ApiError::invalid(
                        "limit",
                        format!("must be an integer from {LIMIT_MIN} to {LIMIT_MAX}"),
                    )
                }),
        }
    }

    /// The value of `name`, treating an empty value as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// A JSON field that distinguishes "absent" (`None`) from `null` (`Some(None)`).
pub fn double_option<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde::Deserialize::deserialize(de).map(Some)
}

#[cfg(test)]
mod tests {
    use super::nul_in;

    #[test]
    fn a_nul_is_found_at_its_path() {
        assert_eq!(
            nul_in(br#"{"a":{"b":["x","y\u0000"]}}"#).as_deref(),
            Some("a.b[1]")
        );
        assert_eq!(
            nul_in(br#"{"a":"\\u0000"}"#),
            None,
            "an escaped backslash is no NUL"
        );
        assert_eq!(nul_in(br#"{"a":"plain"}"#), None);
    }

    /// A value the loose parse cannot read (a lone surrogate, a number out of range) in a
    /// field the typed parse ignores must not hide a NUL elsewhere in the body.
    #[test]
    fn a_nul_beside_an_unreadable_value_is_still_found() {
        assert!(nul_in(br#"{"label":"a\u0000b","x":"\uD800"}"#).is_some());
        assert!(nul_in(br#"{"label":"a\u0000b","x":1e400}"#).is_some());
    }
}
