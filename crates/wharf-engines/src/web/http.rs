//! The crate's `HttpClient` on the project's reqwest: WhatsApp's CDN (media) and the version
//! probe go through it. One client serves every session.

use std::collections::HashMap;

use async_trait::async_trait;
use whatsapp_rust::{
    anyhow,
    http::{HttpClient, HttpRequest, HttpResponse},
};

/// The largest body read (media WhatsApp accepts stay well under it).
pub const MAX_BODY_BYTES: usize = 128 * 1024 * 1024;

/// `HttpClient` over reqwest: any completed exchange is `Ok` whatever its status (the crate
/// branches on 401/403/404/410); `Err` is a failure to connect, a timeout, or a body over the
/// limit.
#[derive(Clone)]
pub struct ReqwestHttp {
    client: reqwest::Client,
    max_body: usize,
}

impl ReqwestHttp {
    pub fn new(client: reqwest::Client) -> Self {
        Self {
            client,
            max_body: MAX_BODY_BYTES,
        }
    }

    /// The same client, refusing bodies over `max_body` bytes.
    pub fn with_max_body(mut self, max_body: usize) -> Self {
        self.max_body = max_body;
        self
    }
}

fn build(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    headers: &HashMap<String, String>,
) -> anyhow::Result<reqwest::RequestBuilder> {
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| anyhow::anyhow!("unsupported HTTP method {method}"))?;
    let mut request = client.request(method, url);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    Ok(request)
}

#[async_trait]
impl HttpClient for ReqwestHttp {
    async fn execute(&self, request: HttpRequest) -> anyhow::Result<HttpResponse> {
        let mut builder = build(
            &self.client,
            &request.method,
            &request.url,
            &request.headers,
        )?;
        if let Some(body) = request.body {
            // A full body: reqwest sends a fixed Content-Length, which the CDN requires.
            builder = builder.body(body.to_vec());
        }
        let mut response = builder.send().await?;
        let status_code = response.status().as_u16();
        if response
            .content_length()
            .is_some_and(|n| n > self.max_body as u64)
        {
            anyhow::bail!("response body over {} bytes", self.max_body);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > self.max_body {
                anyhow::bail!("response body over {} bytes", self.max_body);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse { status_code, body })
    }
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    /// reqwest needs a rustls crypto provider; the crate's TLS setup installs ring.
    fn client() -> reqwest::Client {
        let _ = whatsapp_rust::transport::default_tls_connector();
        reqwest::Client::new()
    }

    /// Serves one canned HTTP answer and hands back the request it read.
    async fn serve_once(answer: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/f", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = vec![0u8; 4096];
            let n = socket.read(&mut seen).await.unwrap();
            socket.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&seen[..n]).into_owned()
        });
        (url, task)
    }

    fn request(url: String, method: &str, body: Option<&'static [u8]>) -> HttpRequest {
        HttpRequest {
            url,
            method: method.into(),
            headers: HashMap::from([("Origin".to_owned(), "https://web.whatsapp.com".to_owned())]),
            body: body.map(whatsapp_rust::bytes::Bytes::from_static),
        }
    }

    #[tokio::test]
    async fn error_statuses_are_answers_and_headers_and_bodies_go_through() {
        let (url, seen) = serve_once(
            "HTTP/1.1 404 Not Found\r\ncontent-length: 4\r\nconnection: close\r\n\r\ngone",
        )
        .await;
        let http = ReqwestHttp::new(client());
        let answer = http
            .execute(request(url, "POST", Some(b"payload")))
            .await
            .unwrap();
        assert_eq!(
            (answer.status_code, answer.body.as_slice()),
            (404, &b"gone"[..])
        );
        let seen = seen.await.unwrap().to_ascii_lowercase();
        assert!(seen.starts_with("post /f"), "{seen}");
        assert!(seen.contains("origin: https://web.whatsapp.com"), "{seen}");
        assert!(
            seen.contains("content-length: 7") && seen.ends_with("payload"),
            "{seen}"
        );
    }

    #[tokio::test]
    async fn bodies_over_the_limit_fail() {
        let (url, _seen) = serve_once(
            "HTTP/1.1 200 OK\r\ncontent-length: 10\r\nconnection: close\r\n\r\n0123456789",
        )
        .await;
        let http = ReqwestHttp::new(client()).with_max_body(5);
        let e = http.execute(request(url, "GET", None)).await.unwrap_err();
        assert!(e.to_string().contains("over 5 bytes"), "{e}");
    }

    #[tokio::test]
    async fn unreachable_hosts_fail() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let http = ReqwestHttp::new(client());
        assert!(http.execute(request(url, "GET", None)).await.is_err());
    }
}
