//! The floor of a hand-written HTTP/1.1 path: the smallest reverse proxy that parses request
//! and response heads with `httparse` and drives a pooled upstream connection inline in the
//! client connection's task (no client dispatch channel, no second task per upstream
//! connection), on the same thread-per-core runtime layout as `hyper_floor`.
//!
//! It answers one question for `bench/proxy.sh`: how close to nginx's CPU per request can a
//! proxy get on this runtime when the HTTP/1.1 machinery is ours. Like `hyper_floor` it does
//! no routing, no header rules, no limits, no logs, no metrics; unlike the gateway it has no
//! timeouts and answers every refusal with a bare status line. It is an experiment, not a
//! server to expose.
//!
//! ```sh
//! cargo run --release -p portcullis-proxy --example h1_floor -- 127.0.0.1:18086 127.0.0.1:18081 2
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BUF: usize = 16 * 1024;
const MAX_HEADERS: usize = 100;
const POOL_MAX: usize = 1024;

thread_local! {
    /// Idle upstream connections of this worker. The runtime is single-threaded, so a task
    /// that takes one from here runs on the thread (and the reactor) that registered it.
    static POOL: RefCell<Vec<Peer>> = const { RefCell::new(Vec::new()) };
}

fn main() {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:18086".into());
    let upstream: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:18081".into())
        .parse()
        .expect("upstream address");
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(2);
    let listener = std::net::TcpListener::bind(&listen).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            let listener = listener.try_clone().expect("clone listener");
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(serve(listener, upstream));
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
}

async fn serve(listener: std::net::TcpListener, upstream: SocketAddr) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("register listener");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = connection(Peer::new(stream), upstream).await;
        });
    }
}

/// A socket and its read buffer: `buf[pos..len]` was read and not yet consumed.
struct Peer {
    stream: TcpStream,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
}

impl Peer {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: vec![0; BUF].into_boxed_slice(),
            pos: 0,
            len: 0,
        }
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.pos..self.len]
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos == self.len {
            self.pos = 0;
            self.len = 0;
        }
    }

    /// Reads more; `Ok(0)` is end of stream. Fails when a head does not fit the buffer.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.len == self.buf.len() {
            if self.pos == 0 {
                return Err(io::Error::other("head too large"));
            }
            self.buf.copy_within(self.pos..self.len, 0);
            self.len -= self.pos;
            self.pos = 0;
        }
        let n = self.stream.read(&mut self.buf[self.len..]).await?;
        self.len += n;
        Ok(n)
    }
}

/// How a message body is delimited.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Response only: the body runs to the end of the upstream connection.
    UntilClose,
}

struct RequestHead {
    len: usize,
    framing: Framing,
    keep_alive: bool,
    is_head: bool,
}

struct ResponseHead {
    len: usize,
    framing: Framing,
    keep_alive: bool,
    informational: bool,
}

/// Hop-by-hop fields (RFC 9110 §7.6.1) and the framing fields the proxy writes itself.
fn skipped(name: &str) -> bool {
    const NAMES: [&str; 8] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "transfer-encoding",
        "content-length",
    ];
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Body framing from the headers; `Err` on what a proxy must refuse (RFC 9112 §6.3).
fn framing(headers: &[httparse::Header<'_>]) -> Result<(Framing, bool, bool), ()> {
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut close = false;
    let mut keep_alive = false;
    for header in headers {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value).map_err(|_| ())?;
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(());
            }
            let n: u64 = value.parse().map_err(|_| ())?;
            if length.is_some_and(|l| l != n) {
                return Err(());
            }
            length = Some(n);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only a lone `chunked` is understood; anything else is refused.
            if chunked || !header.value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(());
            }
            chunked = true;
        } else if header.name.eq_ignore_ascii_case("connection") {
            close |= has_token(header.value, "close");
            keep_alive |= has_token(header.value, "keep-alive");
        }
    }
    let framing = match (length, chunked) {
        (Some(_), true) => return Err(()),
        (Some(0), false) | (None, false) => Framing::Empty,
        (Some(n), false) => Framing::Length(n),
        (None, true) => Framing::Chunked,
    };
    Ok((framing, close, keep_alive))
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn push_framing(out: &mut Vec<u8>, framing: Framing) {
    match framing {
        Framing::Length(n) => push_header(out, b"content-length", n.to_string().as_bytes()),
        Framing::Chunked => push_header(out, b"transfer-encoding", b"chunked"),
        Framing::Empty | Framing::UntilClose => {}
    }
}

/// Parses a request head at the start of `bytes` and writes the upstream's version of it
/// into `out`. `Ok(None)`: incomplete.
fn parse_request(bytes: &[u8], out: &mut Vec<u8>) -> Result<Option<RequestHead>, u16> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(431),
        Err(_) => return Err(400),
    };
    let (framing, close, keep_alive) = framing(request.headers).map_err(|()| 400u16)?;
    let method = request.method.unwrap_or("GET");
    let http11 = request.version == Some(1);
    out.clear();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(request.path.unwrap_or("/").as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for header in request.headers.iter() {
        if !skipped(header.name) {
            push_header(out, header.name.as_bytes(), header.value);
        }
    }
    push_framing(out, framing);
    out.extend_from_slice(b"\r\n");
    Ok(Some(RequestHead {
        len,
        framing,
        keep_alive: if http11 { !close } else { keep_alive },
        is_head: method == "HEAD",
    }))
}

/// Parses a response head and writes the client's version of it into `out`.
fn parse_response(
    bytes: &[u8],
    out: &mut Vec<u8>,
    is_head: bool,
) -> Result<Option<ResponseHead>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let code = response.code.unwrap_or(502);
    let (mut framing, close, keep_alive) = framing(response.headers)?;
    let http11 = response.version == Some(1);
    let informational = (100..200).contains(&code);
    let bodiless = informational || code == 204 || code == 304 || is_head;
    let declared = response.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("content-length")
            || h.name.eq_ignore_ascii_case("transfer-encoding")
    });
    if !bodiless && !declared {
        framing = Framing::UntilClose;
    }
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(code.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(response.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for header in response.headers.iter() {
        if !skipped(header.name) {
            push_header(out, header.name.as_bytes(), header.value);
        }
    }
    if is_head || code == 304 {
        // Framing headers describe the body a GET would get: pass them through unchanged.
        for header in response.headers.iter() {
            if header.name.eq_ignore_ascii_case("content-length")
                || header.name.eq_ignore_ascii_case("transfer-encoding")
            {
                push_header(out, header.name.as_bytes(), header.value);
            }
        }
    } else if !bodiless {
        push_framing(out, framing);
    }
    if framing == Framing::UntilClose {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Some(ResponseHead {
        len,
        framing: if bodiless { Framing::Empty } else { framing },
        keep_alive: (if http11 { !close } else { keep_alive }) && framing != Framing::UntilClose,
        informational,
    }))
}

async fn status_only(down: &mut Peer, code: u16) -> io::Result<()> {
    let line = format!("HTTP/1.1 {code} \r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    down.stream.write_all(line.as_bytes()).await
}

/// Takes an idle upstream connection of this worker, or opens one.
async fn upstream(addr: SocketAddr) -> io::Result<(Peer, bool)> {
    if let Some(peer) = POOL.with(|pool| pool.borrow_mut().pop()) {
        return Ok((peer, true));
    }
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok((Peer::new(stream), false))
}

fn release(peer: Peer) {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOL_MAX {
            pool.push(peer);
        }
    });
}

async fn connection(mut down: Peer, addr: SocketAddr) -> io::Result<()> {
    let mut head = Vec::with_capacity(4096);
    let mut out = Vec::with_capacity(BUF);
    loop {
        let request = loop {
            if down.len > down.pos {
                match parse_request(down.pending(), &mut head) {
                    Ok(Some(request)) => break request,
                    Ok(None) => {}
                    Err(code) => return status_only(&mut down, code).await,
                }
            }
            match down.fill().await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(_) => return status_only(&mut down, 431).await,
            }
        };
        down.consume(request.len);

        // The request, and its body, upstream. A pooled connection the upstream closed while
        // idle is retried once on a new one when the request had no body (nothing was lost).
        let (mut up, mut pooled) = match upstream(addr).await {
            Ok(up) => up,
            Err(_) => return status_only(&mut down, 502).await,
        };
        let response = loop {
            let sent = send_request(&mut down, &mut up, &mut head, request.framing).await;
            let response = match sent {
                Ok(()) => read_response_head(&mut up, &mut out, request.is_head).await,
                Err(err) => Err(err),
            };
            match response {
                Ok(Some(response)) => break response,
                Ok(None) | Err(_) if pooled && request.framing == Framing::Empty => {
                    let Ok(stream) = TcpStream::connect(addr).await else {
                        return status_only(&mut down, 502).await;
                    };
                    let _ = stream.set_nodelay(true);
                    up = Peer::new(stream);
                    pooled = false;
                }
                _ => return status_only(&mut down, 502).await,
            }
        };

        let reusable = forward_response(&mut up, &mut down, &mut out, response.framing).await?;
        if reusable && response.keep_alive && up.pending().is_empty() {
            release(up);
        }
        if !request.keep_alive || response.framing == Framing::UntilClose {
            return Ok(());
        }
    }
}

async fn send_request(
    down: &mut Peer,
    up: &mut Peer,
    out: &mut Vec<u8>,
    framing: Framing,
) -> io::Result<()> {
    match framing {
        Framing::Empty | Framing::UntilClose => up.stream.write_all(out).await,
        Framing::Length(n) => {
            let mut left = n;
            let take = usize::try_from(left)
                .unwrap_or(usize::MAX)
                .min(down.pending().len());
            out.extend_from_slice(&down.pending()[..take]);
            down.consume(take);
            left -= take as u64;
            up.stream.write_all(out).await?;
            copy_length(down, &mut up.stream, left).await
        }
        Framing::Chunked => forward_chunked(down, &mut up.stream, out).await,
    }
}

/// Reads the response head (skipping 100-continue and other interim responses, which are
/// forwarded to the client) and leaves the client's version of it in `out`.
async fn read_response_head(
    up: &mut Peer,
    out: &mut Vec<u8>,
    is_head: bool,
) -> io::Result<Option<ResponseHead>> {
    loop {
        if up.len > up.pos {
            out.clear();
            match parse_response(up.pending(), out, is_head) {
                Ok(Some(head)) if head.informational => {
                    // Interim responses are dropped: this floor never sends Expect upstream.
                    up.consume(head.len);
                    continue;
                }
                Ok(Some(head)) => {
                    up.consume(head.len);
                    return Ok(Some(head));
                }
                Ok(None) => {}
                Err(()) => return Err(io::Error::other("bad response head")),
            }
        }
        if up.fill().await? == 0 {
            return Ok(None);
        }
    }
}

/// Streams the response body after the head in `out`; `Ok(true)` when the upstream
/// connection ended the message cleanly and can be reused.
async fn forward_response(
    up: &mut Peer,
    down: &mut Peer,
    out: &mut Vec<u8>,
    framing: Framing,
) -> io::Result<bool> {
    match framing {
        Framing::Empty => {
            down.stream.write_all(out).await?;
            Ok(true)
        }
        Framing::Length(n) => {
            let take = usize::try_from(n)
                .unwrap_or(usize::MAX)
                .min(up.pending().len());
            out.extend_from_slice(&up.pending()[..take]);
            up.consume(take);
            down.stream.write_all(out).await?;
            copy_length(up, &mut down.stream, n - take as u64).await?;
            Ok(true)
        }
        Framing::Chunked => {
            forward_chunked(up, &mut down.stream, out).await?;
            Ok(true)
        }
        Framing::UntilClose => {
            out.extend_from_slice(up.pending());
            up.consume(up.pending().len());
            down.stream.write_all(out).await?;
            loop {
                if up.fill().await? == 0 {
                    return Ok(false);
                }
                down.stream.write_all(up.pending()).await?;
                let n = up.pending().len();
                up.consume(n);
            }
        }
    }
}

async fn copy_length(src: &mut Peer, dst: &mut TcpStream, mut left: u64) -> io::Result<()> {
    while left > 0 {
        if src.pending().is_empty() && src.fill().await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let take = usize::try_from(left)
            .unwrap_or(usize::MAX)
            .min(src.pending().len());
        dst.write_all(&src.pending()[..take]).await?;
        src.consume(take);
        left -= take as u64;
    }
    Ok(())
}

/// Passes a chunked body through unchanged (after `out`, which is written first), checking
/// its framing on the way so that the end of the message is known.
async fn forward_chunked(src: &mut Peer, dst: &mut TcpStream, out: &mut Vec<u8>) -> io::Result<()> {
    enum State {
        Size,
        Data(u64),
        DataEnd,
        Trailer,
    }
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad chunked body");
    let mut state = State::Size;
    loop {
        let pending = src.pending();
        let progress = match state {
            State::Size => match httparse::parse_chunk_size(pending) {
                Ok(httparse::Status::Complete((used, size))) => {
                    state = if size == 0 {
                        State::Trailer
                    } else {
                        State::Data(size)
                    };
                    used
                }
                Ok(httparse::Status::Partial) => 0,
                Err(_) => return Err(bad()),
            },
            State::Data(left) => {
                let take = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(pending.len());
                state = if take as u64 == left {
                    State::DataEnd
                } else {
                    State::Data(left - take as u64)
                };
                take
            }
            State::DataEnd => {
                if pending.len() < 2 {
                    0
                } else if &pending[..2] == b"\r\n" {
                    state = State::Size;
                    2
                } else {
                    return Err(bad());
                }
            }
            State::Trailer => match pending.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    let line = &pending[..end];
                    if line.is_empty() || line == b"\r" {
                        out.extend_from_slice(&pending[..=end]);
                        src.consume(end + 1);
                        return dst.write_all(out).await;
                    }
                    end + 1
                }
                None => 0,
            },
        };
        if progress > 0 {
            out.extend_from_slice(&src.pending()[..progress]);
            src.consume(progress);
            if out.len() >= BUF {
                dst.write_all(out).await?;
                out.clear();
            }
        } else {
            if !out.is_empty() {
                dst.write_all(out).await?;
                out.clear();
            }
            if src.fill().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}
