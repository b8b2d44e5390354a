//! HTTP/1.1 framing for a hand-written HTTP/1.1 path: request and response heads parsed with
//! `httparse` into `http` types (values share the read buffer, nothing is copied), the body
//! framing of each message, and a strict chunked decoder ([`chunked`]). No I/O.
//!
//! A proxy and the server behind it must agree on where every message ends; where two parsers
//! could disagree (request smuggling), this crate refuses instead of picking a reading:
//!
//! - `Content-Length` together with `Transfer-Encoding`: refused ([`HeadError::ConflictingFraming`]).
//! - `Content-Length` must be digits only; repeated fields must agree; lists are refused.
//! - `Transfer-Encoding` must be exactly one `chunked` on HTTP/1.1. Other codings, lists
//!   (`chunked, identity`, `gzip, chunked`) and any transfer coding on HTTP/1.0 are refused:
//!   the body is re-framed on the way out, so a coding other than chunked would be lost.
//! - obs-fold, bytes not allowed in a field name or value, a bare CR: refused (`httparse`).
//! - A bare LF ending a head line is accepted (RFC 9112 §2.2 allows it); heads are always
//!   re-serialised with CRLF, so the server behind never sees one.
//! - More than one `Host`: refused (RFC 9112 §3.2).
//!
//! The `max_head` bound given to the parsers is a read-buffer bound: a head that does not end
//! within it is [`HeadError::TooLarge`]. The gateway applies its own `max_header_bytes` on the
//! parsed head as well.

#![forbid(unsafe_code)]

pub mod chunked;
#[cfg(test)]
mod tests;

use std::mem::MaybeUninit;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};

/// Header fields a head may carry at most.
pub const MAX_HEADERS: usize = 128;

/// Room left in a parsed head's field map for the fields a proxy adds (forwarding, request
/// id, security headers), so that adding them does not grow and rehash the map.
const ROOM_FOR_PROXY_FIELDS: usize = 8;

/// How a message body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes (more than zero: zero is `Empty`).
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
    /// Responses only: the body runs until the server closes the connection.
    UntilClose,
}

/// A parsed request head.
#[derive(Debug)]
pub struct RequestHead {
    /// Method, URI, version and header fields (framing and hop-by-hop fields included, as
    /// sent).
    pub parts: http::request::Parts,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the client keeps the connection open after this exchange.
    pub keep_alive: bool,
    /// `Expect: 100-continue`: the client waits for an interim response before the body.
    pub expect_continue: bool,
}

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    /// Status, version and header fields (as sent).
    pub parts: http::response::Parts,
    /// How the body is delimited; `Empty` for 1xx, 204, 304 and answers to `HEAD`, whatever
    /// their fields say.
    pub framing: Framing,
    /// Whether the connection can carry another request after this response's body.
    pub keep_alive: bool,
}

/// Why a head is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// The head did not end within the read-buffer bound.
    #[error("the head is larger than {0} bytes")]
    TooLarge(usize),
    /// More than [`MAX_HEADERS`] fields.
    #[error("the head has more than {MAX_HEADERS} header fields")]
    TooManyHeaders,
    /// Not an HTTP/1.x head.
    #[error("malformed head: {0}")]
    Malformed(&'static str),
    /// Both `Content-Length` and `Transfer-Encoding`.
    #[error("a message must not carry both Content-Length and Transfer-Encoding")]
    ConflictingFraming,
    /// `Content-Length` that is not a number, or several that disagree.
    #[error("invalid Content-Length")]
    BadContentLength,
    /// A transfer coding other than a single `chunked` on HTTP/1.1.
    #[error("unsupported Transfer-Encoding")]
    UnsupportedTransferEncoding,
}

impl HeadError {
    /// The status a server answers a refused request head with.
    pub fn status(&self) -> StatusCode {
        match self {
            HeadError::TooLarge(_) | HeadError::TooManyHeaders => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Where the pieces of a head lie in the read buffer, so that they can be taken from the
/// frozen head without copying once `httparse` no longer borrows it.
struct Layout {
    headers: Vec<(Range<usize>, Range<usize>)>,
}

impl Layout {
    fn record(base: &[u8], headers: &[httparse::Header<'_>]) -> Self {
        Self {
            headers: headers
                .iter()
                .map(|header| {
                    (
                        offset(base, header.name.as_bytes()),
                        offset(base, header.value),
                    )
                })
                .collect(),
        }
    }

    fn header_map(&self, head: &Bytes) -> Result<HeaderMap, HeadError> {
        let mut map = HeaderMap::with_capacity(self.headers.len() + ROOM_FOR_PROXY_FIELDS);
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(&head[name.clone()])
                .map_err(|_| HeadError::Malformed("invalid header name"))?;
            let value = HeaderValue::from_maybe_shared(head.slice(value.clone()))
                .map_err(|_| HeadError::Malformed("invalid header value"))?;
            map.append(name, value);
        }
        Ok(map)
    }
}

/// The range of `part` within `base` (`part` is a sub-slice of `base`).
fn offset(base: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).saturating_sub(base.as_ptr() as usize);
    start..start + part.len()
}

/// The length of a complete head from httparse's answer over `buffered` bytes; `None` when
/// more must be read. A head longer than `max_head`, or not complete within it, is refused.
fn head_len(
    parsed: httparse::Result<usize>,
    buffered: usize,
    max_head: usize,
) -> Result<Option<usize>, HeadError> {
    match parsed.map_err(httparse_error)? {
        httparse::Status::Complete(len) if len <= max_head => Ok(Some(len)),
        httparse::Status::Partial if buffered < max_head => Ok(None),
        _ => Err(HeadError::TooLarge(max_head)),
    }
}

fn httparse_error(err: httparse::Error) -> HeadError {
    match err {
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
        httparse::Error::Version => HeadError::Malformed("unsupported HTTP version"),
        httparse::Error::Token => HeadError::Malformed("invalid method or request line"),
        httparse::Error::HeaderName => HeadError::Malformed("invalid header name"),
        httparse::Error::HeaderValue => HeadError::Malformed("invalid header value"),
        httparse::Error::NewLine => HeadError::Malformed("invalid line ending"),
        httparse::Error::Status => HeadError::Malformed("invalid status"),
    }
}

fn version(minor: Option<u8>) -> Version {
    if minor == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    }
}

/// What the framing and connection fields of a head say.
#[derive(Default)]
struct Fields {
    length: Option<u64>,
    transfer_encoding: bool,
    chunked: bool,
    unsupported_coding: bool,
    close: bool,
    keep_alive: bool,
    hosts: usize,
    expect_continue: bool,
}

impl Fields {
    fn read(headers: &[httparse::Header<'_>]) -> Result<Self, HeadError> {
        let mut fields = Fields::default();
        for header in headers {
            let name = header.name.as_bytes();
            if name.eq_ignore_ascii_case(b"content-length") {
                let length = content_length(header.value)?;
                if fields.length.is_some_and(|known| known != length) {
                    return Err(HeadError::BadContentLength);
                }
                fields.length = Some(length);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                fields.transfer_encoding = true;
                for coding in header.value.split(|&b| b == b',') {
                    if coding.trim_ascii().eq_ignore_ascii_case(b"chunked") && !fields.chunked {
                        fields.chunked = true;
                    } else {
                        fields.unsupported_coding = true;
                    }
                }
            } else if name.eq_ignore_ascii_case(b"connection") {
                for token in header.value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    fields.close |= token.eq_ignore_ascii_case(b"close");
                    fields.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            } else if name.eq_ignore_ascii_case(b"host") {
                fields.hosts += 1;
            } else if name.eq_ignore_ascii_case(b"expect") {
                fields.expect_continue |= header
                    .value
                    .trim_ascii()
                    .eq_ignore_ascii_case(b"100-continue");
            }
        }
        Ok(fields)
    }

    /// The body framing of a message that may have one (RFC 9112 §6.3).
    fn framing(&self, http10: bool) -> Result<Framing, HeadError> {
        if self.transfer_encoding {
            // Checked first: a smuggling attempt gets the precise refusal.
            if self.length.is_some() {
                return Err(HeadError::ConflictingFraming);
            }
            if http10 || self.unsupported_coding || !self.chunked {
                return Err(HeadError::UnsupportedTransferEncoding);
            }
            return Ok(Framing::Chunked);
        }
        Ok(match self.length {
            None | Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
        })
    }

    fn persistent(&self, http10: bool) -> bool {
        if http10 {
            self.keep_alive && !self.close
        } else {
            !self.close
        }
    }
}

/// `Content-Length`: one or more digits, nothing else (no sign, no list, no spaces inside).
fn content_length(value: &[u8]) -> Result<u64, HeadError> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(HeadError::BadContentLength);
    }
    value.iter().try_fold(0u64, |total, &digit| {
        total
            .checked_mul(10)
            .and_then(|t| t.checked_add(u64::from(digit - b'0')))
            .ok_or(HeadError::BadContentLength)
    })
}

/// Parses the request head at the start of `buf`. `Ok(None)`: the head is not complete yet
/// (read more). On success the head is split off `buf`, which keeps what follows it (body
/// bytes, pipelined requests).
pub fn parse_request(
    buf: &mut BytesMut,
    max_head: usize,
) -> Result<Option<RequestHead>, HeadError> {
    // Uninitialised slots: only the fields found are written (two heads per proxied request,
    // 128 slots each, would otherwise be zeroed every time).
    let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let parsed = request.parse_with_uninit_headers(buf, &mut headers);
    let Some(len) = head_len(parsed, buf.len(), max_head)? else {
        return Ok(None);
    };
    let (Some(method), Some(path), Some(minor)) = (request.method, request.path, request.version)
    else {
        return Err(HeadError::Malformed("incomplete request line"));
    };
    let http10 = minor == 0;
    let fields = Fields::read(request.headers)?;
    let framing = fields.framing(http10)?;
    if fields.hosts > 1 {
        return Err(HeadError::Malformed("more than one Host field"));
    }
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| HeadError::Malformed("invalid method"))?;
    let path = offset(buf, path.as_bytes());
    let layout = Layout::record(buf, request.headers);

    let head = buf.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(path))
        .map_err(|_| HeadError::Malformed("invalid request target"))?;
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = version(Some(minor));
    parts.headers = layout.header_map(&head)?;
    Ok(Some(RequestHead {
        parts,
        framing,
        keep_alive: fields.persistent(http10),
        expect_continue: fields.expect_continue && !http10,
    }))
}

/// Parses the response head at the start of `buf` (the answer to a request whose method was
/// `HEAD` when `to_head` is set). Same contract as [`parse_request`].
pub fn parse_response(
    buf: &mut BytesMut,
    to_head: bool,
    max_head: usize,
) -> Result<Option<ResponseHead>, HeadError> {
    let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buf,
        &mut headers,
    );
    let Some(len) = head_len(parsed, buf.len(), max_head)? else {
        return Ok(None);
    };
    let (Some(code), Some(minor)) = (response.code, response.version) else {
        return Err(HeadError::Malformed("incomplete status line"));
    };
    let status =
        StatusCode::from_u16(code).map_err(|_| HeadError::Malformed("invalid status code"))?;
    let http10 = minor == 0;
    let fields = Fields::read(response.headers)?;
    // Checked on every response, bodiless or not: a server that sends both is not trusted
    // with the connection.
    let declared = fields.framing(http10)?;
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || to_head;
    let framing = match declared {
        _ if bodiless => Framing::Empty,
        Framing::Empty if fields.length.is_none() => Framing::UntilClose,
        declared => declared,
    };
    let layout = Layout::record(buf, response.headers);

    let head = buf.split_to(len).freeze();
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = status;
    parts.version = version(Some(minor));
    parts.headers = layout.header_map(&head)?;
    Ok(Some(ResponseHead {
        parts,
        framing,
        keep_alive: fields.persistent(http10) && framing != Framing::UntilClose,
    }))
}
