//! The HTTP/1.1 server side of the gateway, hand-written on `portcullis-h1`: one task per
//! client connection reads a request head, hands the request to [`Gateway::handle`] in the
//! same task, and writes the response. HTTP/2 stays on hyper.
//!
//! - Heads are bounded in size (the read buffer) and in time (`request_header_timeout`, from
//!   the moment the gateway waits for a head): a client that started a request and did not
//!   finish its head in time gets a 408, an idle keep-alive connection is closed silently.
//! - Framing ambiguities (`Content-Length` with `Transfer-Encoding`, codings other than
//!   `chunked`, several `Host` fields…) are refused by `portcullis-h1` with a 400 in the JSON
//!   error shape, before anything reaches the routing.
//! - The request body is read from the connection while the handler runs (the [`H1Body`] owns
//!   the socket meanwhile and gives it back when the body ends or is dropped). A body the
//!   handler did not read to its end (a refused request) is read and thrown away for a bounded
//!   time after the answer, then the connection is closed: the client reads the answer instead
//!   of a reset.
//! - `Expect: 100-continue`: the interim response is sent when the body is first read, so a
//!   request refused on its head never has its body sent at all.
//! - Shutdown: an idle connection closes at once; one that is handling a request finishes it
//!   and answers with `Connection: close`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use portcullis_core::Rejection;
use portcullis_h1::{Framing, HeadError, RequestHead};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{oneshot, watch};

use crate::body::{BoxError, ClientBody, ResponseBody};
use crate::gateway::Gateway;
use crate::handler::ConnInfo;
use crate::io::{
    push_decimal, push_field, write_body, written_by_hop, BodyFraming, BodyReadError, Conn,
    WriteBodyError,
};

/// How much of a refused body is read and thrown away at most.
const LINGER_BYTES: usize = 4 << 20;
/// How long a refused body is read and thrown away at most.
const LINGER_TIME: Duration = Duration::from_secs(2);
/// A response body is written in pieces of about this size.
const WRITE_CHUNK: usize = 16 * 1024;

/// Serves one HTTP/1.x connection until the client closes it, an error, or shutdown.
/// `conn`'s buffer may already hold the first bytes (the protocol sniff).
pub(crate) async fn serve(
    gateway: Arc<Gateway>,
    conn: Conn,
    info: ConnInfo,
    drain: watch::Receiver<bool>,
) {
    let (max_header_bytes, header_timeout) = {
        let snapshot = gateway.snapshot();
        let config = &snapshot.config.gateway;
        (config.max_header_bytes, config.request_header_timeout)
    };
    // The read buffer bound: a little over the gateway's own limit, so that the handler's
    // check (which measures the head as parsed) answers most oversize heads.
    let max_head = (max_header_bytes + 4096).max(8192);
    let mut conn = Some(conn);
    let mut out: Vec<u8> = Vec::with_capacity(WRITE_CHUNK);
    let mut timer = HeadTimer::new(header_timeout);
    // Resolves once the gateway starts draining. Kept across requests so that its waiter is
    // registered once per connection, not once per request.
    let mut draining = {
        let mut drain = drain.clone();
        Box::pin(async move {
            while !*drain.borrow_and_update() {
                if drain.changed().await.is_err() {
                    return;
                }
            }
        })
    };
    loop {
        let Some(mut current) = conn.take() else {
            return;
        };
        let head = match read_head(&mut current, max_head, &mut timer, &mut draining).await {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(HeadFailure::Io) => return,
            Err(HeadFailure::Timeout) => {
                head_timed_out(&gateway, &mut current).await;
                return;
            }
            Err(HeadFailure::Refused(err)) => {
                write_error(&gateway, &mut current, &refusal(&err, max_header_bytes)).await;
                return;
            }
        };
        let RequestHead {
            parts,
            framing,
            keep_alive,
            expect_continue,
        } = head;
        let is_head = parts.method == Method::HEAD;
        let version = parts.version;
        let (body, returned) = match framing {
            Framing::Empty | Framing::UntilClose => {
                conn = Some(current);
                (ClientBody::Empty, None)
            }
            Framing::Length(_) | Framing::Chunked => {
                let (tx, rx) = oneshot::channel();
                let body = H1Body::new(current, framing, expect_continue, tx);
                (ClientBody::H1(body), Some(rx))
            }
        };
        let response = gateway
            .handle(Request::from_parts(parts, body), &info)
            .await;
        let complete = match returned {
            None => true,
            Some(rx) => match rx.await {
                Ok(back) => {
                    conn = Some(back.conn);
                    back.complete
                }
                Err(_) => return,
            },
        };
        let Some(current) = conn.as_mut() else {
            return;
        };
        let close = !keep_alive
            || !complete
            || *drain.borrow()
            || has_close(response.headers().get(header::CONNECTION));
        let written = write_response(current, response, is_head, version, close, &mut out).await;
        if written.is_err() {
            return;
        }
        if close {
            if !complete {
                linger(current).await;
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), current.io.shutdown()).await;
            return;
        }
    }
}

enum HeadFailure {
    /// The connection failed or closed in the middle of a head.
    Io,
    /// No complete head within the timeout.
    Timeout,
    /// A head that must be refused.
    Refused(HeadError),
}

/// The request-head deadline of a connection. Every request starts a new one, but the timer
/// under it is only re-armed when it fires before the current deadline: registering a tokio
/// timer per request costs more than the head it guards.
struct HeadTimer {
    timeout: Duration,
    due: tokio::time::Instant,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl HeadTimer {
    fn new(timeout: Duration) -> Self {
        let due = tokio::time::Instant::now() + timeout;
        Self {
            timeout,
            due,
            sleep: Box::pin(tokio::time::sleep_until(due)),
        }
    }

    /// A new head starts being awaited now.
    fn start(&mut self) {
        self.due = tokio::time::Instant::now() + self.timeout;
    }

    /// Resolves when the current head's deadline has passed.
    async fn expired(&mut self) {
        loop {
            (&mut self.sleep).await;
            if tokio::time::Instant::now() >= self.due {
                return;
            }
            let due = self.due;
            self.sleep.as_mut().reset(due);
        }
    }
}

/// Reads the next request head. `Ok(None)`: the client closed the connection between
/// requests, or the gateway is shutting down and no request had started.
async fn read_head(
    conn: &mut Conn,
    max_head: usize,
    timer: &mut HeadTimer,
    draining: &mut Pin<Box<impl std::future::Future<Output = ()>>>,
) -> Result<Option<RequestHead>, HeadFailure> {
    if !conn.buf.is_empty() {
        if let Some(head) =
            portcullis_h1::parse_request(&mut conn.buf, max_head).map_err(HeadFailure::Refused)?
        {
            return Ok(Some(head));
        }
    }
    timer.start();
    loop {
        let read = tokio::select! {
            biased;
            read = conn.fill() => read,
            () = timer.expired() => return Err(HeadFailure::Timeout),
            () = draining.as_mut(), if conn.buf.is_empty() => return Ok(None),
        };
        match read {
            Ok(0) if conn.buf.is_empty() => return Ok(None),
            Ok(0) | Err(_) => return Err(HeadFailure::Io),
            Ok(_) => {}
        }
        if let Some(head) =
            portcullis_h1::parse_request(&mut conn.buf, max_head).map_err(HeadFailure::Refused)?
        {
            return Ok(Some(head));
        }
    }
}

/// The answer to a refused head. `max_header_bytes` is the gateway's bound, which the
/// answer to an oversize head names (the read buffer is a little larger).
fn refusal(err: &HeadError, max_header_bytes: usize) -> Rejection {
    let code = match err {
        HeadError::TooLarge(_) => return Rejection::headers_too_large(max_header_bytes),
        HeadError::TooManyHeaders => "headers_too_large",
        HeadError::ConflictingFraming => "conflicting_framing",
        HeadError::BadContentLength => "bad_content_length",
        HeadError::UnsupportedTransferEncoding => "unsupported_transfer_encoding",
        HeadError::Malformed(_) => "bad_request",
    };
    // `HeadError`'s messages are the crate's own words, never the client's bytes.
    Rejection::new(err.status(), code, err.to_string())
}

/// A client that did not send its request head in time: answered 408 when part of a head
/// had arrived (an idle connection is just closed), counted either way.
pub(crate) async fn head_timed_out(gateway: &Gateway, conn: &mut Conn) {
    gateway.metrics.header_timeouts.inc();
    if !conn.buf.is_empty() {
        write_error(gateway, conn, &Rejection::request_timeout()).await;
    }
}

/// Answers a connection whose request never reached the gateway's handler, and closes it.
async fn write_error(gateway: &Gateway, conn: &mut Conn, rejection: &Rejection) {
    let body = rejection.body(&gateway.next_request_id());
    let status = rejection.status;
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(&mut out, u64::from(status.as_u16()));
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(
        b"\r\ncontent-type: application/json\r\ncache-control: no-store\r\nx-content-type-options: nosniff\r\nconnection: close\r\n",
    );
    push_date(&mut out);
    out.extend_from_slice(b"content-length: ");
    push_decimal(&mut out, body.len() as u64);
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(&body);
    let write = async {
        conn.write_all(&out).await?;
        conn.io.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

fn has_close(value: Option<&HeaderValue>) -> bool {
    value.is_some_and(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

/// Reads and throws away what the client still sends (the rest of a refused body), bounded
/// in size and time.
async fn linger(conn: &mut Conn) {
    let read = async {
        let mut total = conn.buf.len();
        conn.buf.clear();
        while total < LINGER_BYTES {
            match conn.fill().await {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            }
            conn.buf.clear();
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, read).await;
}

thread_local! {
    /// `date: …\r\n` for the current second.
    static DATE: std::cell::RefCell<(u64, Vec<u8>)> = const { std::cell::RefCell::new((0, Vec::new())) };
}

fn push_date(out: &mut Vec<u8>) {
    let now = std::time::SystemTime::now();
    let second = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|date| {
        let mut date = date.borrow_mut();
        if date.0 != second || date.1.is_empty() {
            date.1.clear();
            push_field(
                &mut date.1,
                b"date",
                httpdate::fmt_http_date(now).as_bytes(),
            );
            date.0 = second;
        }
        out.extend_from_slice(&date.1);
    });
}

/// Writes a response: head, then the body, re-framed for this connection.
async fn write_response(
    conn: &mut Conn,
    response: Response<ResponseBody>,
    is_head: bool,
    version: Version,
    close: bool,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let (parts, mut body) = response.into_parts();
    let status = parts.status;
    let bodiless = is_head
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status.as_u16()));
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    // The answer to a HEAD, and a 304, keep the length the upstream gave (the size of what a
    // GET would get); 1xx and 204 never carry one (RFC 9110 §8.6). Other framing fields are
    // this hop's to write.
    let keeps_length = is_head || status == StatusCode::NOT_MODIFIED;
    for (name, value) in &parts.headers {
        let keep_length = keeps_length && name == header::CONTENT_LENGTH;
        if keep_length || !written_by_hop(name) {
            push_field(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    if !parts.headers.contains_key(header::DATE) {
        push_date(out);
    }
    let mut chunked = false;
    let mut close = close;
    if !bodiless {
        match body.size_hint().exact() {
            Some(length) => {
                out.extend_from_slice(b"content-length: ");
                push_decimal(out, length);
                out.extend_from_slice(b"\r\n");
            }
            None if version == Version::HTTP_11 => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                chunked = true;
            }
            // An HTTP/1.0 client: the body ends with the connection.
            None => close = true,
        }
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if version == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if bodiless {
        drop(body);
        return conn.write_all(out).await;
    }
    write_body(conn, out, &mut body, chunked)
        .await
        .map_err(|err| match err {
            WriteBodyError::Io(err) => err,
            WriteBodyError::Body(err) => io::Error::other(err),
        })
}

/// What a request body gives back to its connection when it ends or is dropped.
pub(crate) struct Returned {
    conn: Conn,
    /// The whole body was read: the connection is at the next request.
    complete: bool,
}

/// The body of a request read from an HTTP/1.1 connection while the handler runs.
pub struct H1Body {
    conn: Option<Conn>,
    framing: BodyFraming,
    /// `Expect: 100-continue`: bytes of the interim response still to write.
    interim: &'static [u8],
    back: Option<oneshot::Sender<Returned>>,
}

impl std::fmt::Debug for H1Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Body").finish_non_exhaustive()
    }
}

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl H1Body {
    fn new(
        conn: Conn,
        framing: Framing,
        expect_continue: bool,
        back: oneshot::Sender<Returned>,
    ) -> Self {
        Self {
            conn: Some(conn),
            framing: BodyFraming::new(framing),
            interim: if expect_continue { CONTINUE } else { b"" },
            back: Some(back),
        }
    }

    /// Gives the connection back (once).
    fn give_back(&mut self, complete: bool) {
        if let (Some(conn), Some(back)) = (self.conn.take(), self.back.take()) {
            let _ = back.send(Returned { conn, complete });
        }
    }

    fn fail(&mut self, err: BodyReadError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.framing = BodyFraming::Done;
        self.give_back(false);
        Poll::Ready(Some(Err(Box::new(err))))
    }
}

impl Drop for H1Body {
    fn drop(&mut self) {
        let complete = self.framing.is_done();
        self.give_back(complete);
    }
}

impl Body for H1Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        while !this.interim.is_empty() {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match Pin::new(&mut conn.io).poll_write(cx, this.interim) {
                Poll::Ready(Ok(0)) => {
                    return this.fail(io::Error::from(io::ErrorKind::WriteZero).into())
                }
                Poll::Ready(Ok(n)) => this.interim = &this.interim[n..],
                Poll::Ready(Err(err)) => return this.fail(err.into()),
                Poll::Pending => return Poll::Pending,
            }
        }
        let Some(conn) = this.conn.as_mut() else {
            return Poll::Ready(None);
        };
        match std::task::ready!(this.framing.poll_data(conn, cx)) {
            Err(err) => this.fail(err),
            Ok(data) => {
                // The end of the body (with its last bytes or after them) frees the socket.
                if this.framing.is_done() {
                    this.give_back(true);
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
