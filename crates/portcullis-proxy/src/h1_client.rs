//! The HTTP/1.1 client side of the gateway: requests go upstream on pooled keep-alive
//! connections, driven inline in the task that handles the request (no dispatch channel, no
//! second task per upstream connection).
//!
//! - Each data-plane worker has its own idle list per upstream (a connection is only ever
//!   used by the thread whose reactor registered it), bounded by `max_idle_per_target` and
//!   `idle_timeout`.
//! - An idle connection the upstream closed is noticed before it is reused when the reactor
//!   already saw it readable; when the close races the request, a request without a body is
//!   sent again once on a new connection (nothing of it was processed).
//! - The request is sent whole (head and body) before the response head is read. Interim
//!   (1xx) responses are skipped.
//! - A response body that ends cleanly gives its connection back to the idle list; one that
//!   is dropped early closes it.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header;
use http::{Method, Request, Response};
use http_body::{Body, Frame, SizeHint};
use portcullis_h1::{Framing, HeadError};
use tokio::net::TcpStream;

use crate::body::{BoxError, RequestBody};
use crate::io::{
    push_decimal, push_field, write_body, written_by_hop, BodyFraming, BodyReadError, Conn, Io,
    WriteBodyError,
};
use crate::upstream::UpstreamPool;

/// Response heads larger than this are refused (502).
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Why a request could not be sent or its response head read.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be opened (refused, unreachable, TLS handshake failed).
    #[error("cannot connect: {0}")]
    Connect(#[source] io::Error),
    /// The connect attempt took longer than `connect_timeout`.
    #[error("connect timed out")]
    ConnectTimeout,
    /// The client's request body failed (too large, broken framing, client gone).
    #[error("request body: {0}")]
    Body(#[source] BoxError),
    /// The connection failed while the request was sent or the response awaited.
    #[error("upstream connection: {0}")]
    Io(#[source] io::Error),
    /// The upstream answered with a head that cannot be forwarded.
    #[error("bad response head: {0}")]
    Head(#[source] HeadError),
}

impl SendError {
    /// Whether nothing reached the target (the request can go to another one).
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_) | SendError::ConnectTimeout)
    }
}

/// An upstream connection at rest.
#[derive(Debug)]
struct Idle {
    conn: Conn,
    target: usize,
    since: Instant,
}

/// One worker's idle connections to one upstream.
#[derive(Debug)]
pub struct IdleList {
    conns: Mutex<Vec<Idle>>,
    max_per_target: usize,
    idle_timeout: Duration,
}

impl IdleList {
    /// An empty list.
    pub fn new(max_per_target: usize, idle_timeout: Duration) -> Self {
        Self {
            conns: Mutex::new(Vec::new()),
            max_per_target,
            idle_timeout,
        }
    }

    /// The most recently used connection to `target` that is still usable.
    fn take(&self, target: usize) -> Option<Conn> {
        let mut conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        // Expired connections are the oldest: they sit at the front.
        let expired = conns
            .iter()
            .take_while(|c| now.duration_since(c.since) >= self.idle_timeout)
            .count();
        conns.drain(..expired);
        while let Some(at) = conns.iter().rposition(|c| c.target == target) {
            let idle = conns.remove(at);
            if !idle.conn.io.seen_readable() {
                return Some(idle.conn);
            }
        }
        None
    }

    fn put(&self, conn: Conn, target: usize) {
        let mut conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = conns.iter().filter(|c| c.target == target).count();
        if kept >= self.max_per_target {
            if let Some(oldest) = conns.iter().position(|c| c.target == target) {
                conns.remove(oldest);
            } else {
                return;
            }
        }
        conns.push(Idle {
            conn,
            target,
            since: Instant::now(),
        });
    }
}

/// Sends `request` to `target` of `pool` and reads the response head.
pub async fn send(
    pool: &UpstreamPool,
    target: usize,
    request: Request<RequestBody>,
) -> Result<Response<UpstreamBody>, SendError> {
    let (parts, mut body) = request.into_parts();
    let is_head = parts.method == Method::HEAD;
    let mut out = Vec::with_capacity(1024);
    let chunked = write_head(&mut out, &parts, &body, pool, target);
    let idle = pool.idle_list();
    let (mut conn, mut pooled) = match idle.take(target) {
        Some(conn) => (conn, true),
        None => (pool.connect(target).await?, false),
    };
    let bodiless = body.is_end_stream();
    loop {
        let sent = if bodiless {
            conn.write_all(&out).await.map_err(SendError::Io)
        } else {
            write_body(&mut conn, &mut out, &mut body, chunked)
                .await
                .map_err(|err| match err {
                    WriteBodyError::Io(err) => SendError::Io(err),
                    WriteBodyError::Body(err) => SendError::Body(err),
                })
        };
        let head = match sent {
            Ok(()) => read_head(&mut conn, is_head).await,
            Err(err) => Err(err),
        };
        match head {
            Ok(head) => {
                let keep_alive = head.keep_alive;
                let body = UpstreamBody::new(conn, head.framing, keep_alive, target, idle);
                return Ok(Response::from_parts(head.parts, body));
            }
            // A pooled connection the upstream had closed: nothing was processed. Once more
            // on a new connection, when there is no body to send again.
            Err(SendError::Io(_)) if pooled && bodiless => {
                conn = pool.connect(target).await?;
                pooled = false;
            }
            Err(err) => return Err(err),
        }
    }
}

/// Writes the upstream request head into `out`; returns whether the body goes chunked.
fn write_head(
    out: &mut Vec<u8>,
    parts: &http::request::Parts,
    body: &RequestBody,
    pool: &UpstreamPool,
    target: usize,
) -> bool {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target_uri = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(target_uri.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !parts.headers.contains_key(header::HOST) {
        push_field(
            out,
            b"host",
            pool.targets[target].authority.as_str().as_bytes(),
        );
    }
    for (name, value) in &parts.headers {
        // `Expect: 100-continue` was the gateway's to meet (it asked the client for the body
        // already); the body follows the head at once.
        if !written_by_hop(name) && name != header::EXPECT {
            push_field(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    let chunked = match body.size_hint().exact() {
        Some(0) if body.is_end_stream() => {
            // RFC 9110 §8.6: a length is sent for methods that usually carry a body.
            if matches!(parts.method, Method::POST | Method::PUT | Method::PATCH) {
                out.extend_from_slice(b"content-length: 0\r\n");
            }
            false
        }
        Some(length) => {
            out.extend_from_slice(b"content-length: ");
            push_decimal(out, length);
            out.extend_from_slice(b"\r\n");
            false
        }
        None => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            true
        }
    };
    out.extend_from_slice(b"\r\n");
    chunked
}

/// Reads the final response head, skipping interim (1xx) responses.
async fn read_head(
    conn: &mut Conn,
    is_head: bool,
) -> Result<portcullis_h1::ResponseHead, SendError> {
    loop {
        if !conn.buf.is_empty() {
            match portcullis_h1::parse_response(&mut conn.buf, is_head, MAX_RESPONSE_HEAD) {
                Ok(Some(head)) if head.parts.status.is_informational() => continue,
                Ok(Some(head)) => return Ok(head),
                Ok(None) => {}
                Err(err) => return Err(SendError::Head(err)),
            }
        }
        match conn.fill().await {
            Ok(0) => return Err(SendError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(_) => {}
            Err(err) => return Err(SendError::Io(err)),
        }
    }
}

impl UpstreamPool {
    /// Opens a connection to `target` (TCP, then TLS for `https` upstreams), bounded by
    /// `connect_timeout`.
    async fn connect(&self, target: usize) -> Result<Conn, SendError> {
        let authority = &self.targets[target].authority;
        let open = async {
            let host = authority.host();
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            let port = authority
                .port_u16()
                .unwrap_or(if self.tls.is_some() { 443 } else { 80 });
            let stream = TcpStream::connect((host, port)).await?;
            stream.set_nodelay(true)?;
            let io = match &self.tls {
                None => Io::Plain(stream),
                Some(tls) => {
                    let name = match &tls.server_name {
                        Some(name) => name.clone(),
                        None => rustls::pki_types::ServerName::try_from(host.to_owned())
                            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?,
                    };
                    Io::Client(Box::new(tls.connector.connect(name, stream).await?))
                }
            };
            Ok::<_, io::Error>(Conn::new(io, b""))
        };
        match tokio::time::timeout(self.connect_timeout, open).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(err)) => Err(SendError::Connect(err)),
            Err(_) => Err(SendError::ConnectTimeout),
        }
    }
}

/// Upstream TLS: the connector (trusting the upstream's CA only) and the name to verify.
pub struct UpstreamTls {
    /// Connector with the upstream's client config.
    pub connector: tokio_rustls::TlsConnector,
    /// `tls.server_name`, when set; otherwise each target's host is verified.
    pub server_name: Option<rustls::pki_types::ServerName<'static>>,
}

/// A response body read from an upstream connection.
pub struct UpstreamBody {
    conn: Option<Conn>,
    framing: BodyFraming,
    keep_alive: bool,
    target: usize,
    idle: Arc<IdleList>,
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody").finish_non_exhaustive()
    }
}

impl UpstreamBody {
    fn new(
        conn: Conn,
        framing: Framing,
        keep_alive: bool,
        target: usize,
        idle: Arc<IdleList>,
    ) -> Self {
        let mut body = Self {
            conn: Some(conn),
            framing: BodyFraming::new(framing),
            keep_alive,
            target,
            idle,
        };
        if body.framing.is_done() {
            body.release();
        }
        body
    }

    /// The body ended cleanly: the connection goes back to the idle list when it can carry
    /// another request (nothing unexpected follows the response).
    fn release(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.keep_alive && conn.buf.is_empty() {
                self.idle.put(conn, self.target);
            }
        }
    }

    fn fail(&mut self, err: BodyReadError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.framing = BodyFraming::Done;
        self.conn = None;
        Poll::Ready(Some(Err(Box::new(err))))
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let Some(conn) = this.conn.as_mut() else {
            return Poll::Ready(None);
        };
        match std::task::ready!(this.framing.poll_data(conn, cx)) {
            Err(err) => this.fail(err),
            Ok(data) => {
                // The end of the body (with its last bytes or after them) frees the socket.
                if this.framing.is_done() {
                    this.release();
                }
                Poll::Ready(data.map(|data| Ok(Frame::data(data))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.framing.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        self.framing.size_hint()
    }
}
