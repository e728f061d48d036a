//! The web engine's media downloads (files of sends given by URL) through the one outbound
//! client, so its policy applies to the address actually connected to, with a size limit
//! enforced as the body arrives.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use reqwest::{StatusCode, header};
use wharf_engines::web::{FetchError, Fetched, MediaFetch};

use crate::outbound::{Outbound, SendError};

/// How long one media download may take, from connect to the last byte.
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// Fetches media URLs for the web engine.
pub struct MediaFetcher {
    outbound: Arc<Outbound>,
    timeout: Duration,
}

impl MediaFetcher {
    pub fn new(outbound: Arc<Outbound>) -> Self {
        Self {
            outbound,
            timeout: FETCH_TIMEOUT,
        }
    }
}

fn sent_error(e: SendError) -> FetchError {
    match e {
        SendError::Refused => FetchError::Refused(
            "the host is, or resolves to, an address that is not public; the operator can allow \
             it with outbound_allow"
                .into(),
        ),
        SendError::Timeout => FetchError::Transient("no answer in time".into()),
        SendError::Failed(why) => FetchError::Transient(why),
    }
}

#[async_trait]
impl MediaFetch for MediaFetcher {
    async fn fetch(&self, url: &str, limit: u64) -> Result<Fetched, FetchError> {
        let request = self.outbound.get(url).map_err(|e| match e {
            SendError::Failed(why) => FetchError::Failed(why),
            other => sent_error(other),
        })?;
        let mut response = self
            .outbound
            .send(request.timeout(self.timeout))
            .await
            .map_err(sent_error)?;
        let status = response.status();
        if !status.is_success() {
            let why = format!("the server answered {status}");
            return Err(
                if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                    FetchError::Transient(why)
                } else {
                    // Redirects are not followed: another address could be anywhere.
                    FetchError::Failed(why)
                },
            );
        }
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(FetchError::TooLarge { limit });
        }
        let mime_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if (bytes.len() + chunk.len()) as u64 > limit {
                        return Err(FetchError::TooLarge { limit });
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => {
                    return Err(FetchError::Transient("the download took too long".into()));
                }
                Err(e) => return Err(FetchError::Transient(format!("reading the file: {e}"))),
            }
        }
        Ok(Fetched { bytes, mime_type })
    }
}

#[cfg(test)]
mod tests {
    use axum::{Router, http::HeaderMap, routing::get};

    use super::*;

    /// Serves `/small` (5 bytes, typed), `/big` (64 bytes) and `/chunked` (64 bytes with no
    /// length) on loopback.
    async fn server() -> String {
        let app = Router::new()
            .route(
                "/small",
                get(|| async {
                    let mut h = HeaderMap::new();
                    h.insert(header::CONTENT_TYPE, "image/png".parse().unwrap());
                    (h, b"hello".to_vec())
                }),
            )
            .route("/big", get(|| async { vec![1u8; 64] }))
            .route(
                "/chunked",
                get(|| async {
                    let parts = (0..8).map(|_| Ok::<_, std::io::Error>(vec![2u8; 8]));
                    axum::body::Body::from_stream(futures::stream::iter(parts))
                }),
            )
            .route(
                "/down",
                get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "later") }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn loopback_is_refused_unless_allowed_and_the_limit_holds() {
        crate::install_crypto();
        let base = server().await;
        let strict = MediaFetcher::new(Arc::new(Outbound::new(&[], None).unwrap()));
        let refused = strict.fetch(&format!("{base}/small"), 1024).await;
        assert!(
            matches!(refused, Err(FetchError::Refused(_))),
            "{refused:?}"
        );

        let allowed = MediaFetcher::new(Arc::new(
            Outbound::new(&["127.0.0.0/8".into()], None).unwrap(),
        ));
        let small = allowed.fetch(&format!("{base}/small"), 1024).await.unwrap();
        assert_eq!(small.bytes, b"hello");
        assert_eq!(small.mime_type.as_deref(), Some("image/png"));
        for path in ["big", "chunked"] {
            let too_big = allowed.fetch(&format!("{base}/{path}"), 63).await;
            assert_eq!(too_big, Err(FetchError::TooLarge { limit: 63 }), "{path}");
            let fits = allowed.fetch(&format!("{base}/{path}"), 64).await.unwrap();
            assert_eq!(fits.bytes.len(), 64, "{path}");
        }
        let missing = allowed.fetch(&format!("{base}/nothing"), 64).await;
        assert!(matches!(missing, Err(FetchError::Failed(_))), "{missing:?}");
        let down = allowed.fetch(&format!("{base}/down"), 64).await;
        assert!(matches!(down, Err(FetchError::Transient(_))), "{down:?}");
    }
}
