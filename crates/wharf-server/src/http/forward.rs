//! Calls that need a session's live connection, answered by the instance that runs it.
//!
//! On SQLite (one instance) the layer only removes the internal header.
//!
//! A service refuses such a call on an instance that does not own the session
//! (`ServiceError::OwnedElsewhere`), and the error answer carries the owner's address in an
//! internal header. This layer, outermost on instances sharing a PostgreSQL database, then
//! sends the same request (method, path, query, headers, body) to the owner, marked as
//! forwarded so the owner never forwards it again, and answers with the owner's answer. The
//! owner authenticates the call again with the caller's own credentials, and counts it
//! against the account's rate limit: once it has answered, this instance gives back the
//! token it took ([`super::ratelimit::AccountLimiter::give_back`]), so a forwarded call
//! counts once (twice only for the moment of the forward).
//!
//! Only bodies up to [`MAX_FORWARDED_BODY`] with a declared length are kept for a forward; a
//! larger or streamed body is answered with the 409 itself (naming the owner).

use std::time::Duration;

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use http::{HeaderMap, HeaderValue, Method, header};

/// Set on a forwarded request: answer it here, whoever owns the session.
pub const FORWARDED: &str = "x-wharf-forwarded";
/// Set by the error answer of a call the session's owner must answer: the owner's address.
/// Never leaves the server.
pub const FORWARD_TO: &str = "x-wharf-forward-to";
/// The largest body kept for a forward.
pub const MAX_FORWARDED_BODY: usize = 1 << 20;

/// The HTTP client forwards go through, and this instance's id (named on forwarded calls).
#[derive(Clone)]
pub struct Forwarder {
    /// `None` on SQLite (one instance): nothing is forwarded and the header is only removed
    /// (no client is built, so an idle single instance holds none).
    client: Option<reqwest::Client>,
    instance: String,
    /// The account allowances: a forwarded call's token goes back, the owner counts it.
    limiter: std::sync::Arc<super::ratelimit::AccountLimiter>,
}

impl Forwarder {
    /// Forwards (when `enabled`) on behalf of `instance`, giving the tokens of forwarded calls
    /// back to `limiter`.
    pub fn new(
        instance: String,
        enabled: bool,
        limiter: std::sync::Arc<super::ratelimit::AccountLimiter>,
    ) -> Self {
        let client = enabled.then(|| {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(60))
                // Instances reach each other directly, never through a proxy from the
                // environment.
                .no_proxy()
                .build()
                .unwrap_or_default()
        });
        Self {
            client,
            instance,
            limiter,
        }
    }

    async fn send(
        &self,
        client: &reqwest::Client,
        target: &str,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response, reqwest::Error> {
        let url = format!("{}{path_and_query}", target.trim_end_matches('/'));
        let mut out = HeaderMap::new();
        for (name, value) in headers {
            if !hop_by_hop(name) {
                out.append(name.clone(), value.clone());
            }
        }
        if let Ok(v) = HeaderValue::from_str(&self.instance) {
            out.insert(FORWARDED, v);
        }
        let answer = client
            .request(method, url)
            .headers(out)
            .body(body)
            .send()
            .await?;
        let status = answer.status();
        let mut headers = HeaderMap::new();
        for (name, value) in answer.headers() {
            if !hop_by_hop(name) && name != header::CONTENT_LENGTH {
                headers.append(name.clone(), value.clone());
            }
        }
        let body = answer.bytes().await?;
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

fn hop_by_hop(name: &header::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "host"
    )
}

/// The layer: runs the request here, and forwards it when the answer says the session's owner
/// must answer it.
pub async fn to_owner(State(forwarder): State<Forwarder>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let bodiless = matches!(req.method(), &Method::GET | &Method::HEAD | &Method::DELETE)
        && declared.is_none()
        && !req.headers().contains_key(header::TRANSFER_ENCODING);
    let client = forwarder.client.as_ref().filter(|_| {
        !req.headers().contains_key(FORWARDED)
            && (bodiless || declared.is_some_and(|n| n <= MAX_FORWARDED_BODY))
    });
    let Some(client) = client else {
        let mut response = next.run(req).await;
        response.headers_mut().remove(FORWARD_TO);
        return response;
    };
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_FORWARDED_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => Bytes::new(),
    };
    let method = parts.method.clone();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| parts.uri.path().to_owned());
    let headers = parts.headers.clone();
    let mut response = next
        .run(Request::from_parts(parts, Body::from(body.clone())))
        .await;
    let Some(target) = response.headers_mut().remove(FORWARD_TO) else {
        return response;
    };
    let Ok(target) = target.to_str() else {
        return response;
    };
    match forwarder
        .send(client, target, method, &path_and_query, &headers, body)
        .await
    {
        Ok(answer) => {
            // The owner answered: it counts the call against the account's allowance if it
            // admitted it, so this instance's token goes back. (A forward that fails is
            // answered here, with the 409, and stays counted here.)
            if let Some(token) = response.extensions().get::<super::ratelimit::Token>() {
                forwarder.limiter.give_back(*token).await;
            }
            answer
        }
        Err(e) => {
            tracing::warn!(owner = target, error = %e, "could not forward a call to the session's owner; answering 409");
            response
        }
    }
}
