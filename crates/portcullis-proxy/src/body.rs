//! Request and response bodies as they cross the gateway.
//!
//! Bodies stream: nothing is buffered whole. [`RequestBody`] enforces `max_body_bytes` on the
//! bytes actually received (a chunked body that grows past the bound fails the upstream
//! request, which the handler turns into 413) and counts them for the access log.
//! [`ResponseBody`] counts what is sent and writes the access-log record when the response
//! is finished or abandoned.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;

use crate::h1_client::UpstreamBody;
use crate::h1_server::H1Body;

/// Boxed error of a body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request body grew past `max_body_bytes`.
#[derive(Debug, thiserror::Error)]
#[error("request body is larger than {limit} bytes")]
pub struct BodyTooLarge {
    /// The bound.
    pub limit: u64,
}

/// A client's request body as it arrives: none, from hyper (HTTP/2) or from the gateway's
/// HTTP/1.1 connection driver.
#[derive(Debug)]
pub enum ClientBody {
    /// No body.
    Empty,
    /// An HTTP/2 stream's body.
    Hyper(Incoming),
    /// An HTTP/1.1 body, read from the connection.
    H1(H1Body),
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ClientBody::Empty => Poll::Ready(None),
            ClientBody::Hyper(body) => match Pin::new(body).poll_frame(cx) {
                Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(Box::new(err)))),
                Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
            ClientBody::H1(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Empty => true,
            ClientBody::Hyper(body) => body.is_end_stream(),
            ClientBody::H1(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Empty => SizeHint::with_exact(0),
            ClientBody::Hyper(body) => body.size_hint(),
            ClientBody::H1(body) => body.size_hint(),
        }
    }
}

/// A client's request body on its way upstream.
#[derive(Debug)]
pub struct RequestBody {
    /// Bytes already read from the client (for inspection), sent first.
    prefix: Option<Bytes>,
    inner: Option<ClientBody>,
    remaining: u64,
    limit: u64,
    received: Option<Arc<AtomicU64>>,
}

impl RequestBody {
    /// Wraps a client body with a size bound; `received`, when given, counts the bytes that
    /// pass (for the access log).
    /// `prefix` is what was already read from `inner` (and counted); it is sent first.
    pub fn new(
        prefix: Bytes,
        inner: ClientBody,
        limit: u64,
        received: Option<Arc<AtomicU64>>,
    ) -> Self {
        Self {
            remaining: limit.saturating_sub(prefix.len() as u64),
            prefix: (!prefix.is_empty()).then_some(prefix),
            inner: Some(inner),
            limit,
            received,
        }
    }

    /// An empty body (a retried request that had none).
    pub fn empty(received: Option<Arc<AtomicU64>>) -> Self {
        Self {
            prefix: None,
            inner: None,
            remaining: 0,
            limit: 0,
            received,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(prefix) = this.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > this.remaining {
                        if let Some(rest) = this.inner.take() {
                            discard_in_background(rest);
                        }
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge {
                            limit: this.limit,
                        }))));
                    }
                    this.remaining -= len;
                    if let Some(received) = &this.received {
                        received.fetch_add(len, Ordering::Relaxed);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let prefix = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        let inner = self
            .inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint);
        match inner.exact() {
            Some(exact) => SizeHint::with_exact(exact + prefix),
            None => {
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower() + prefix);
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper + prefix);
                }
                hint
            }
        }
    }
}

/// Why the body prefix could not be read.
#[derive(Debug)]
pub enum PrefixError {
    /// The body grew past `max_body_bytes`.
    TooLarge,
    /// The client's body failed (reset, malformed chunking).
    Client(BoxError),
}

/// Reads the first `want` bytes of a body (a little more when a frame straddles the bound),
/// enforcing `limit` on the total. Returns the bytes and whether the whole body fits in
/// `want` bytes.
pub async fn read_prefix(
    body: &mut ClientBody,
    want: usize,
    limit: u64,
    received: Option<&Arc<AtomicU64>>,
) -> Result<(Bytes, bool), PrefixError> {
    let mut buffer = bytes::BytesMut::new();
    while buffer.len() < want {
        match body.frame().await {
            None => {
                let fits = buffer.len() <= want;
                return Ok((buffer.freeze(), fits));
            }
            Some(Err(err)) => return Err(PrefixError::Client(err)),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if (buffer.len() + data.len()) as u64 > limit {
                        return Err(PrefixError::TooLarge);
                    }
                    if let Some(received) = received {
                        received.fetch_add(data.len() as u64, Ordering::Relaxed);
                    }
                    buffer.extend_from_slice(&data);
                }
            }
        }
    }
    let fits = buffer.len() <= want && body.is_end_stream();
    Ok((buffer.freeze(), fits))
}

/// Reads and throws away what is left of a refused request body, for a bounded time and
/// size, so that the client reads the gateway's answer instead of a connection reset (a
/// socket closed with unread input sends RST, which destroys the response in flight).
/// An HTTP/1.1 body goes back to its connection, whose driver does this after the answer.
pub fn discard_in_background(body: ClientBody) {
    let mut body = match body {
        ClientBody::Hyper(body) if !body.is_end_stream() => body,
        _ => return,
    };
    tokio::spawn(async move {
        let mut budget: u64 = LINGER_BYTES;
        let drain = async {
            while let Some(Ok(frame)) = body.frame().await {
                let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                if len >= budget {
                    break;
                }
                budget -= len;
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME, drain).await;
    });
}

/// How much of a refused body is read and discarded at most.
const LINGER_BYTES: u64 = 4 << 20;
/// How long a refused body is read and discarded at most.
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether an error chain holds a [`BodyTooLarge`].
pub fn is_body_too_large(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(err) = current {
        if err.is::<BodyTooLarge>() {
            return true;
        }
        current = err.source();
    }
    false
}

/// Called once when a response is finished (or abandoned by the client), with the number of
/// body bytes sent.
pub trait OnResponseEnd: Send + 'static {
    /// Records the finished response.
    fn finish(self: Box<Self>, bytes_out: u64);
}

enum Kind {
    Upstream(UpstreamBody),
    Full(Option<Bytes>),
}

/// A response body sent to the client.
pub struct ResponseBody {
    kind: Kind,
    sent: u64,
    on_end: Option<Box<dyn OnResponseEnd>>,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("sent", &self.sent)
            .finish()
    }
}

impl ResponseBody {
    /// The upstream's body, streamed.
    pub fn upstream(body: UpstreamBody, on_end: Option<Box<dyn OnResponseEnd>>) -> Self {
        Self {
            kind: Kind::Upstream(body),
            sent: 0,
            on_end,
        }
    }

    /// A body the gateway made.
    pub fn full(bytes: Bytes, on_end: Option<Box<dyn OnResponseEnd>>) -> Self {
        Self {
            kind: Kind::Full(Some(bytes)),
            sent: 0,
            on_end,
        }
    }

    fn finish(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            on_end.finish(self.sent);
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = match &mut this.kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Upstream(body) => Pin::new(body).poll_frame(cx),
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Upstream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Upstream(body) => body.size_hint(),
        }
    }
}
