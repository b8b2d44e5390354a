//! The byte streams of the hand-written HTTP/1.1 path: a client or upstream socket, plain or
//! TLS, and its read buffer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;
use portcullis_h1::chunked::{ChunkError, Decoder};
use portcullis_h1::Framing;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::body::BoxError;

/// How much is read from a socket at a time.
pub(crate) const READ_CHUNK: usize = 16 * 1024;

/// A connection's socket.
#[derive(Debug)]
pub(crate) enum Io {
    /// Plain TCP.
    Plain(TcpStream),
    /// A client's TLS connection.
    Server(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// A TLS connection to an upstream.
    Client(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Io {
    fn tcp(&self) -> &TcpStream {
        match self {
            Io::Plain(stream) => stream,
            Io::Server(stream) => stream.get_ref().0,
            Io::Client(stream) => stream.get_ref().0,
        }
    }

    /// Whether the reactor has seen the socket readable (data, end of stream or an error),
    /// without a system call. An idle HTTP/1.1 connection has nothing to read: when it is
    /// readable, the peer closed it (or broke the protocol) and it must not be reused.
    pub(crate) fn seen_readable(&self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        self.tcp().poll_read_ready(&mut cx).is_ready()
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Io::Server(stream) => Pin::new(stream).poll_read(cx, buf),
            Io::Client(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(stream) => Pin::new(stream).poll_write(cx, data),
            Io::Server(stream) => Pin::new(stream).poll_write(cx, data),
            Io::Client(stream) => Pin::new(stream).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Io::Server(stream) => Pin::new(stream).poll_flush(cx),
            Io::Client(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Io::Server(stream) => Pin::new(stream).poll_shutdown(cx),
            Io::Client(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}

/// A socket and the bytes read from it and not consumed yet.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) io: Io,
    pub(crate) buf: BytesMut,
}

impl Conn {
    /// A connection whose first bytes, `already_read`, were read before (the protocol
    /// sniff), or none.
    pub(crate) fn new(io: Io, already_read: &[u8]) -> Self {
        let mut buf = BytesMut::with_capacity(READ_CHUNK.max(already_read.len()));
        buf.extend_from_slice(already_read);
        Self { io, buf }
    }

    /// Reads more into the buffer; `Ready(Ok(0))` is the end of the stream.
    pub(crate) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }

    /// Reads more into the buffer; `Ok(0)` is the end of the stream.
    pub(crate) async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }

    /// Writes all of `data`.
    pub(crate) async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.io.write_all(data).await
    }
}

/// Trailer section bound of a chunked body (trailers are read and dropped).
const MAX_TRAILER_BYTES: usize = 16 * 1024;
/// A body is written in pieces of about this size.
const WRITE_CHUNK: usize = 16 * 1024;

/// A message body was not read to its end.
#[derive(Debug, thiserror::Error)]
pub enum BodyReadError {
    /// The connection ended or failed first.
    #[error("the connection failed before the end of the body: {0}")]
    Io(#[from] io::Error),
    /// Broken chunked framing.
    #[error("malformed chunked body: {0}")]
    Chunked(#[from] ChunkError),
}

/// What is left of a message body on a connection, and how it is delimited.
#[derive(Debug)]
pub(crate) enum BodyFraming {
    Length(u64),
    Chunked(Box<Decoder>),
    UntilClose,
    Done,
}

impl BodyFraming {
    pub(crate) fn new(framing: Framing) -> Self {
        match framing {
            Framing::Empty => BodyFraming::Done,
            Framing::Length(n) => BodyFraming::Length(n),
            Framing::Chunked => BodyFraming::Chunked(Box::new(Decoder::new(MAX_TRAILER_BYTES))),
            Framing::UntilClose => BodyFraming::UntilClose,
        }
    }

    /// The whole body was read.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self, BodyFraming::Done)
    }

    pub(crate) fn size_hint(&self) -> SizeHint {
        match self {
            BodyFraming::Length(left) => SizeHint::with_exact(*left),
            BodyFraming::Done => SizeHint::with_exact(0),
            BodyFraming::Chunked(_) | BodyFraming::UntilClose => SizeHint::new(),
        }
    }

    /// The next piece of the body from `conn` (its buffer first, then the socket):
    /// `Ready(Ok(None))` at the end. Body bytes share the read buffer; nothing is copied.
    pub(crate) fn poll_data(
        &mut self,
        conn: &mut Conn,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, BodyReadError>> {
        loop {
            match self {
                BodyFraming::Done => return Poll::Ready(Ok(None)),
                BodyFraming::Length(left) => {
                    if !conn.buf.is_empty() {
                        let take = usize::try_from(*left)
                            .unwrap_or(usize::MAX)
                            .min(conn.buf.len());
                        let data = conn.buf.split_to(take).freeze();
                        *left -= take as u64;
                        if *left == 0 {
                            *self = BodyFraming::Done;
                        }
                        return Poll::Ready(Ok(Some(data)));
                    }
                }
                BodyFraming::UntilClose => {
                    if !conn.buf.is_empty() {
                        return Poll::Ready(Ok(Some(conn.buf.split().freeze())));
                    }
                }
                BodyFraming::Chunked(decoder) => {
                    if !conn.buf.is_empty() {
                        let decoded = decoder.decode(&conn.buf)?;
                        let done = decoder.is_done();
                        if done {
                            *self = BodyFraming::Done;
                        }
                        if !decoded.data.is_empty() {
                            let chunk = conn.buf.split_to(decoded.consumed).freeze();
                            return Poll::Ready(Ok(Some(chunk.slice(decoded.data))));
                        }
                        conn.buf.advance(decoded.consumed);
                        if done || decoded.consumed > 0 {
                            continue;
                        }
                    }
                }
            }
            match conn.poll_fill(cx) {
                Poll::Ready(Ok(0)) if matches!(self, BodyFraming::UntilClose) => {
                    *self = BodyFraming::Done;
                    return Poll::Ready(Ok(None));
                }
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()))
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err.into())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Writing a body failed: its source, or the connection.
pub(crate) enum WriteBodyError {
    Body(BoxError),
    Io(io::Error),
}

/// Writes what `out` holds (a head), then the whole of `body` after it, chunked or as is.
/// Frames that are ready are gathered into `out`, which is written before waiting for more.
pub(crate) async fn write_body<B>(
    conn: &mut Conn,
    out: &mut Vec<u8>,
    body: &mut B,
    chunked: bool,
) -> Result<(), WriteBodyError>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    loop {
        let frame = match poll_now(body) {
            Some(frame) => frame,
            None => {
                if !out.is_empty() {
                    conn.write_all(out).await.map_err(WriteBodyError::Io)?;
                    out.clear();
                }
                body.frame().await
            }
        };
        let data = match frame {
            None => break,
            Some(Err(err)) => return Err(WriteBodyError::Body(err)),
            // Trailers are not forwarded.
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if !data.is_empty() => data,
                _ => continue,
            },
        };
        if chunked {
            portcullis_h1::chunked::chunk_header(data.len(), out);
        }
        if out.len() + data.len() <= WRITE_CHUNK {
            out.extend_from_slice(&data);
        } else {
            conn.write_all(out).await.map_err(WriteBodyError::Io)?;
            out.clear();
            conn.write_all(&data).await.map_err(WriteBodyError::Io)?;
        }
        if chunked {
            out.extend_from_slice(b"\r\n");
        }
    }
    if chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    if !out.is_empty() {
        conn.write_all(out).await.map_err(WriteBodyError::Io)?;
        out.clear();
    }
    Ok(())
}

/// The body's next frame if it is ready now, without waiting.
fn poll_now<B>(body: &mut B) -> Option<Option<Result<Frame<Bytes>, BoxError>>>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match Pin::new(body).poll_frame(&mut cx) {
        Poll::Ready(frame) => Some(frame),
        Poll::Pending => None,
    }
}

/// Appends `name: value\r\n`.
pub(crate) fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends a decimal number.
pub(crate) fn push_decimal(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// The fields a hop writes itself: the body's framing and the hop-by-hop fields (the handler
/// strips the latter; gateway-made answers may carry `Connection: close`). The serialisers
/// never copy them from one side of the proxy to the other.
pub(crate) fn written_by_hop(name: &http::HeaderName) -> bool {
    name == http::header::CONTENT_LENGTH || crate::headers::is_hop_by_hop(name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimals() {
        for n in [0u64, 7, 10, 4096, u64::MAX] {
            let mut out = Vec::new();
            super::push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }
}
