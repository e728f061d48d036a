//! Answers hyper makes before a request reaches the router (a request line or header block
//! it cannot parse: 400, a URI over its fixed 65534-byte limit: 414, headers over its buffer
//! or count limits: 431) carry an empty body. The connection wrapper here replaces each with
//! the same status in the envelope of the dialect the request's path belongs to.
//!
//! It costs a comparison of the first bytes of each write and a copy of the first 64 bytes
//! of each request; hyper's automatic answers are recognized by their shape (one of those
//! three statuses, `content-length: 0`, no content type), which no route of ours answers.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use axum::serve::Listener;
use http::StatusCode;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
};

use super::envelope::{Dialect, envelope_json};

/// How much of a request's head is kept to find its path's dialect.
const HEAD_KEPT: usize = 64;

/// A listener whose connections answer hyper's automatic errors in the envelope.
pub struct EnvelopedListener(pub TcpListener);

impl Listener for EnvelopedListener {
    type Io = Enveloped<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = Listener::accept(&mut self.0).await;
        (Enveloped::new(io), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Listener::local_addr(&self.0)
    }
}

/// A connection: reads pass through (the start of each request is noted), writes pass
/// through unless they are one of hyper's bodiless automatic answers.
pub struct Enveloped<S> {
    inner: S,
    head: [u8; HEAD_KEPT],
    head_len: usize,
    /// Whether the bytes read next begin (or continue) a request's head.
    reading_head: bool,
    /// A replacement answer and how much of it was written.
    pending: Option<(Vec<u8>, usize)>,
}

impl<S> Enveloped<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            head: [0; HEAD_KEPT],
            head_len: 0,
            reading_head: true,
            pending: None,
        }
    }

    /// The dialect of the path in the kept head (`GET /path HTTP/1.1`).
    fn dialect(&self) -> Dialect {
        let head = &self.head[..self.head_len];
        let path = head
            .split(|b| *b == b' ')
            .nth(1)
            .and_then(|p| p.split(|b| *b == b'?').next())
            .and_then(|p| std::str::from_utf8(p).ok())
            .unwrap_or("/");
        Dialect::of(path)
    }

    /// The replacement of `buf` when it is one of hyper's automatic answers.
    fn replacement(&self, buf: &[u8]) -> Option<Vec<u8>> {
        let status = automatic_answer(buf)?;
        let body = envelope_json(self.dialect(), status);
        let status_line = &buf[..buf.windows(2).position(|w| w == b"\r\n")?];
        let mut answer = Vec::with_capacity(status_line.len() + 160 + body.len());
        answer.extend_from_slice(status_line);
        answer.extend_from_slice(
            format!(
                "\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nx-request-id: {}\r\n\r\n",
                body.len(),
                wharf_core::RequestId::generate()
            )
            .as_bytes(),
        );
        answer.extend_from_slice(&body);
        Some(answer)
    }
}

/// The status of `buf` when it is a whole bodiless answer with one of the statuses hyper
/// answers by itself.
fn automatic_answer(buf: &[u8]) -> Option<StatusCode> {
    let status = match buf.get(..13)? {
        b"HTTP/1.1 400 " => StatusCode::BAD_REQUEST,
        b"HTTP/1.1 414 " => StatusCode::URI_TOO_LONG,
        b"HTTP/1.1 431 " => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        _ => return None,
    };
    if !buf.ends_with(b"\r\n\r\n") || buf.len() > 512 {
        return None;
    }
    let head = buf.to_ascii_lowercase();
    let has = |needle: &[u8]| head.windows(needle.len()).any(|w| w == needle);
    (has(b"\r\ncontent-length: 0\r\n") && !has(b"\r\ncontent-type:")).then_some(status)
}

impl<S: AsyncWrite + Unpin> Enveloped<S> {
    /// Writes what is left of a replacement answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((answer, written)) = &mut self.pending {
            if *written == answer.len() {
                self.pending = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &answer[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }

    /// Takes `buf` in place of a write when it is an automatic answer.
    fn replace(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Option<Poll<io::Result<usize>>> {
        let answer = self.replacement(buf)?;
        self.pending = Some((answer, 0));
        Some(match self.poll_pending(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            // The rest is written by the next write, flush or shutdown.
            _ => Poll::Ready(Ok(buf.len())),
        })
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Enveloped<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if this.reading_head {
            let read = &buf.filled()[before..];
            let n = read.len().min(HEAD_KEPT - this.head_len);
            this.head[this.head_len..this.head_len + n].copy_from_slice(&read[..n]);
            this.head_len += n;
            this.reading_head = this.head_len < HEAD_KEPT;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Enveloped<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        if let Some(answered) = this.replace(cx, buf) {
            return answered;
        }
        this.next_request();
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        let mut nonempty = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(first), None) = (nonempty.next(), nonempty.next())
            && let Some(answered) = this.replace(cx, first)
        {
            return answered;
        }
        this.next_request();
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<S> Enveloped<S> {
    /// An answer is being written: the bytes read next begin the next request.
    fn next_request(&mut self) {
        self.head_len = 0;
        self.reading_head = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_bodiless_answers_are_replaced() {
        let hyper_414 = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 22:00:00 GMT\r\n\r\n";
        assert_eq!(automatic_answer(hyper_414), Some(StatusCode::URI_TOO_LONG));
        let hyper_431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(
            automatic_answer(hyper_431),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        // Ours: a body, a content type, another status, or a partial head.
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(automatic_answer(ours), None);
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(automatic_answer(with_body), None);
        assert_eq!(
            automatic_answer(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"),
            None
        );
        assert_eq!(automatic_answer(b"HTTP/1.1 414 URI"), None);
    }

    #[test]
    fn the_dialect_comes_from_the_request_line() {
        let mut conn = Enveloped::new(());
        let line = b"GET /api/v1/agents/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        conn.head[..HEAD_KEPT].copy_from_slice(&line[..HEAD_KEPT]);
        conn.head_len = HEAD_KEPT;
        assert_eq!(conn.dialect(), Dialect::Kapso);
        conn.head_len = 0;
        assert_eq!(conn.dialect(), Dialect::Wapio);
    }
}
