//! The byte streams of the hand-written HTTP/1.1 path: a client or upstream socket, plain or
//! TLS, and its read buffer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

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
    pub(crate) fn new(io: Io, buf: BytesMut) -> Self {
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

/// Appends `name: value\r\n`.
pub(crate) fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends a decimal number.
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// The framing and hop-by-hop fields a hop writes itself (RFC 9110 §7.6.1): never copied
/// from one side of the proxy to the other by the serialisers.
pub(crate) fn written_by_hop(name: &http::HeaderName) -> bool {
    use http::header;
    name == header::CONTENT_LENGTH
        || name == header::TRANSFER_ENCODING
        || name == header::CONNECTION
        || name == header::TE
        || name == header::TRAILER
        || name == header::UPGRADE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
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
