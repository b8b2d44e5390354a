#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;
use http::{Method, StatusCode, Version};

use crate::chunked::{chunk_header, ChunkError, Decoder, LAST_CHUNK};
use crate::{parse_request, parse_response, Framing, HeadError, RequestHead, ResponseHead};

const MAX: usize = 16 * 1024;

fn request(bytes: &[u8]) -> Result<Option<RequestHead>, HeadError> {
    parse_request(&mut BytesMut::from(bytes), MAX)
}

fn complete(bytes: &[u8]) -> RequestHead {
    request(bytes).unwrap().expect("complete head")
}

fn refused(bytes: &[u8]) -> HeadError {
    request(bytes).expect_err("refused")
}

fn response(bytes: &[u8], to_head: bool) -> Result<Option<ResponseHead>, HeadError> {
    parse_response(&mut BytesMut::from(bytes), to_head, MAX)
}

#[test]
fn a_simple_request_and_what_follows_it() {
    let mut buf = BytesMut::from(
        &b"GET /a?b=1 HTTP/1.1\r\nHost: h\r\nX-Two: 1\r\nx-two: 2\r\n\r\nGET /next HTTP/1.1\r\n"[..],
    );
    let head = parse_request(&mut buf, MAX).unwrap().unwrap();
    assert_eq!(head.parts.method, Method::GET);
    assert_eq!(head.parts.uri, "/a?b=1");
    assert_eq!(head.parts.version, Version::HTTP_11);
    assert_eq!(head.parts.headers["host"], "h");
    let twos: Vec<_> = head.parts.headers.get_all("x-two").iter().collect();
    assert_eq!(twos, ["1", "2"]);
    assert_eq!(head.framing, Framing::Empty);
    assert!(head.keep_alive);
    assert!(!head.expect_continue);
    // The pipelined request stays in the buffer, untouched.
    assert_eq!(&buf[..], b"GET /next HTTP/1.1\r\n");
    assert!(parse_request(&mut buf, MAX).unwrap().is_none());
    assert_eq!(&buf[..], b"GET /next HTTP/1.1\r\n");
}

#[test]
fn partial_heads_wait_for_more() {
    for cut in [0, 1, 5, 17, 30] {
        let full = b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";
        assert!(request(&full[..cut]).unwrap().is_none(), "cut at {cut}");
    }
}

#[test]
fn keep_alive_follows_the_version_and_connection() {
    assert!(complete(b"GET / HTTP/1.1\r\n\r\n").keep_alive);
    assert!(!complete(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
    assert!(!complete(b"GET / HTTP/1.1\r\nConnection: foo, CLOSE\r\n\r\n").keep_alive);
    assert!(!complete(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
    assert!(complete(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
}

#[test]
fn body_framing() {
    let head = complete(b"POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n");
    assert_eq!(head.framing, Framing::Length(12));
    let head = complete(b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(head.framing, Framing::Empty);
    let head = complete(b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n");
    assert_eq!(head.framing, Framing::Chunked);
    // The same length twice is one length.
    let head = complete(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(head.framing, Framing::Length(5));
}

/// Every reading of a message's length that two parsers could disagree on is refused.
#[test]
fn ambiguous_framing_is_refused() {
    for (name, head, error) in [
        (
            "length then chunked",
            &b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            HeadError::ConflictingFraming,
        ),
        (
            "chunked then length",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\ncontent-length: 0\r\n\r\n",
            HeadError::ConflictingFraming,
        ),
        (
            "two lengths",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            HeadError::BadContentLength,
        ),
        (
            "length list",
            b"POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n",
            HeadError::BadContentLength,
        ),
        (
            "signed length",
            b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
            HeadError::BadContentLength,
        ),
        (
            "hex length",
            b"POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
            HeadError::BadContentLength,
        ),
        (
            "empty length",
            b"POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
            HeadError::BadContentLength,
        ),
        (
            "length past 64 bits",
            b"POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n",
            HeadError::BadContentLength,
        ),
        (
            "chunked, identity",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            HeadError::UnsupportedTransferEncoding,
        ),
        (
            "gzip, chunked",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            HeadError::UnsupportedTransferEncoding,
        ),
        (
            "chunked twice",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            HeadError::UnsupportedTransferEncoding,
        ),
        (
            "unknown coding",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            HeadError::UnsupportedTransferEncoding,
        ),
        (
            "empty coding",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: \r\n\r\n",
            HeadError::UnsupportedTransferEncoding,
        ),
        (
            "misspelt chunked",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunkedx\r\n\r\n",
            HeadError::UnsupportedTransferEncoding,
        ),
        (
            "coding on HTTP/1.0",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            HeadError::UnsupportedTransferEncoding,
        ),
    ] {
        assert_eq!(request(head).map(|_| ()), Err(error), "{name}");
        assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{name}");
    }
}

#[test]
fn malformed_heads_are_refused() {
    for (name, head) in [
        ("garbage request line", &b"GARBAGE\r\n\r\n"[..]),
        ("bad method", b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n"),
        ("bad version", b"GET / HTTP/9.9\r\nHost: h\r\n\r\n"),
        ("HTTP/2 in an HTTP/1 head", b"GET / HTTP/2.0\r\n\r\n"),
        (
            "control byte in value",
            b"GET / HTTP/1.1\r\nX-A: a\x01b\r\n\r\n",
        ),
        ("space in name", b"GET / HTTP/1.1\r\nX A: b\r\n\r\n"),
        ("space before colon", b"GET / HTTP/1.1\r\nX-A : b\r\n\r\n"),
        ("bare CR in value", b"GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n"),
        (
            "obs-fold",
            b"GET / HTTP/1.1\r\nX-A: a\r\n folded\r\nHost: h\r\n\r\n",
        ),
        (
            "obs-fold with a tab",
            b"GET / HTTP/1.1\r\nX-A: a\r\n\tb\r\n\r\n",
        ),
        ("two hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        (
            "bytes that are not UTF-8 in the target",
            b"GET /\xff\xfe HTTP/1.1\r\n\r\n",
        ),
        ("no target", b"GET  HTTP/1.1\r\n\r\n"),
    ] {
        let error = refused(head);
        assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{name}: {error}");
    }
}

#[test]
fn bare_lf_line_endings_are_read_as_line_endings() {
    let head = complete(b"POST /x HTTP/1.1\nHost: h\nContent-Length: 2\n\nab");
    assert_eq!(head.framing, Framing::Length(2));
    assert_eq!(head.parts.headers["host"], "h");
}

#[test]
fn oversized_heads() {
    let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(MAX));
    assert_eq!(refused(big.as_bytes()), HeadError::TooLarge(MAX));
    // Incomplete and already past the bound: refused without waiting for the rest.
    assert_eq!(
        refused(&big.as_bytes()[..MAX + 10]),
        HeadError::TooLarge(MAX)
    );
    let mut many = String::from("GET / HTTP/1.1\r\n");
    for n in 0..=crate::MAX_HEADERS {
        many.push_str(&format!("X-{n}: v\r\n"));
    }
    many.push_str("\r\n");
    let error = refused(many.as_bytes());
    assert_eq!(error, HeadError::TooManyHeaders);
    assert_eq!(error.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

#[test]
fn expect_continue() {
    assert!(
        complete(b"POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n")
            .expect_continue
    );
    assert!(
        !complete(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
            .expect_continue
    );
}

#[test]
fn forms_of_request_target() {
    let head = complete(b"GET http://example.com/a HTTP/1.1\r\n\r\n");
    assert_eq!(head.parts.uri.host(), Some("example.com"));
    let head = complete(b"OPTIONS * HTTP/1.1\r\n\r\n");
    assert_eq!(head.parts.uri, "*");
    // Leading empty lines before a request line are skipped (RFC 9112 §2.2).
    let head = complete(b"\r\nGET /x HTTP/1.1\r\n\r\n");
    assert_eq!(head.parts.uri, "/x");
    // Raw UTF-8 in the target passes the parser, as with hyper: the gateway's path rules
    // answer it in their own JSON shape.
    let head = complete(b"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n");
    assert_eq!(head.parts.uri.path(), "/caf\u{e9}");
}

#[test]
fn responses_without_a_body() {
    for (name, head, to_head) in [
        (
            "HEAD",
            &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"[..],
            true,
        ),
        ("204", b"HTTP/1.1 204 No Content\r\n\r\n", false),
        (
            "304",
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
            false,
        ),
        ("100", b"HTTP/1.1 100 Continue\r\n\r\n", false),
    ] {
        let head = response(head, to_head).unwrap().unwrap();
        assert_eq!(head.framing, Framing::Empty, "{name}");
        assert!(head.keep_alive, "{name}");
    }
}

#[test]
fn response_framing() {
    let head = response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", false)
        .unwrap()
        .unwrap();
    assert_eq!(head.framing, Framing::Length(3));
    assert_eq!(head.parts.status, StatusCode::OK);
    let head = response(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false)
        .unwrap()
        .unwrap();
    assert_eq!(head.framing, Framing::Empty);
    assert!(head.keep_alive);
    let head = response(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        false,
    )
    .unwrap()
    .unwrap();
    assert_eq!(head.framing, Framing::Chunked);
    // Neither: the body runs to the close, and the connection cannot be reused.
    let head = response(b"HTTP/1.1 200 OK\r\n\r\n", false)
        .unwrap()
        .unwrap();
    assert_eq!(head.framing, Framing::UntilClose);
    assert!(!head.keep_alive);
    let head = response(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false)
        .unwrap()
        .unwrap();
    assert!(!head.keep_alive);
    for bad in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: a\r\n folded\r\n\r\n",
        b"HTTP/1.1 999999 Nope\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    ] {
        assert!(
            response(bad, false).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

/// Decodes a whole chunked body given in pieces of `step` bytes; returns the body and what
/// followed the message.
fn dechunk(input: &[u8], step: usize) -> Result<(Vec<u8>, Vec<u8>), ChunkError> {
    let mut decoder = Decoder::new(1024);
    let mut body = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut fed = 0;
    loop {
        if !decoder.is_done() && pending.is_empty() {
            if fed == input.len() {
                panic!("incomplete: {:?}", String::from_utf8_lossy(input));
            }
            let end = (fed + step).min(input.len());
            pending.extend_from_slice(&input[fed..end]);
            fed = end;
        }
        let decoded = decoder.decode(&pending)?;
        body.extend_from_slice(&pending[decoded.data.clone()]);
        pending.drain(..decoded.consumed);
        if decoder.is_done() {
            pending.extend_from_slice(&input[fed..]);
            return Ok((body, pending));
        }
    }
}

#[test]
fn chunked_bodies_decode_whatever_the_reads() {
    let input = b"5\r\nhello\r\n1;name=value;x=\"q s\"\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\nGET /";
    for step in 1..input.len() {
        let (body, rest) = dechunk(input, step).unwrap();
        assert_eq!(body, b"hello 0123456789", "step {step}");
        assert_eq!(rest, b"GET /", "step {step}");
    }
    assert_eq!(dechunk(b"0\r\n\r\n", 1).unwrap().0, b"");
    // Whitespace before an extension, upper-case hex, leading zeros.
    assert_eq!(
        dechunk(b"0003 ;e\r\nabc\r\n0\r\n\r\n", 2).unwrap().0,
        b"abc"
    );
    assert_eq!(
        dechunk(b"B\r\nhello world\r\n0\r\n\r\n", 3).unwrap().0,
        b"hello world"
    );
}

#[test]
fn malformed_chunked_bodies_are_refused() {
    for (name, input, error) in [
        ("no size", &b"\r\n"[..], ChunkError::Size),
        ("not hex", b"g\r\n", ChunkError::Size),
        ("signed size", b"+5\r\nhello\r\n0\r\n\r\n", ChunkError::Size),
        (
            "size past 64 bits",
            b"10000000000000000\r\n",
            ChunkError::Size,
        ),
        ("endless leading zeros", &[b'0'; 100][..], ChunkError::Size),
        ("space inside the size", b"1 2\r\n", ChunkError::Size),
        (
            "bare LF after the size",
            b"5\nhello\r\n0\r\n\r\n",
            ChunkError::LineEnding,
        ),
        (
            "lone CR after the size",
            b"5\rhello\r\n",
            ChunkError::LineEnding,
        ),
        (
            "bare LF after data",
            b"5\r\nhello\n0\r\n\r\n",
            ChunkError::LineEnding,
        ),
        (
            "data longer than its size",
            b"3\r\nhello\r\n",
            ChunkError::LineEnding,
        ),
        (
            "bare LF ending the trailers",
            b"0\r\n\n",
            ChunkError::LineEnding,
        ),
        (
            "control byte in an extension",
            b"1;a\x00b\r\nx\r\n",
            ChunkError::Extension,
        ),
        (
            "bare LF in an extension",
            b"1;a\nx\r\n",
            ChunkError::LineEnding,
        ),
        (
            "trailer without a colon",
            b"0\r\nnocolon\r\n\r\n",
            ChunkError::Trailer,
        ),
        (
            "obs-fold in the trailers",
            b"0\r\nA: b\r\n c\r\n\r\n",
            ChunkError::Trailer,
        ),
        (
            "control byte in a trailer",
            b"0\r\nA: \x01\r\n\r\n",
            ChunkError::Trailer,
        ),
    ] {
        let mut decoder = Decoder::new(1024);
        let mut input = input;
        let result = loop {
            match decoder.decode(input) {
                Err(err) => break Err(err),
                Ok(d) if d.consumed == 0 => break Ok(()),
                Ok(d) => input = &input[d.consumed..],
            }
        };
        assert_eq!(result, Err(error), "{name}");
    }
}

#[test]
fn chunk_extensions_and_trailers_are_bounded() {
    let mut input = Vec::new();
    for _ in 0..100 {
        input.extend_from_slice(b"1;");
        input.extend_from_slice(&[b'e'; 100]);
        input.extend_from_slice(b"\r\nx\r\n");
    }
    let mut decoder = Decoder::new(1024);
    let mut rest = &input[..];
    let error = loop {
        match decoder.decode(rest) {
            Err(err) => break err,
            Ok(d) => rest = &rest[d.consumed..],
        }
    };
    assert_eq!(error, ChunkError::Extension);

    let mut input = b"0\r\n".to_vec();
    input.extend_from_slice(b"X: ");
    input.extend_from_slice(&[b'a'; 2000]);
    input.extend_from_slice(b"\r\n\r\n");
    let mut decoder = Decoder::new(1024);
    assert_eq!(decoder.decode(&input), Err(ChunkError::Trailer));
}

#[test]
fn chunk_headers_round_trip() {
    for len in [1usize, 9, 10, 15, 16, 255, 4096, 65_535, 1 << 40] {
        let mut out = Vec::new();
        chunk_header(len, &mut out);
        assert!(out.ends_with(b"\r\n"));
        let text = std::str::from_utf8(&out[..out.len() - 2]).unwrap();
        assert_eq!(usize::from_str_radix(text, 16).unwrap(), len);
    }
    let mut body = Vec::new();
    chunk_header(3, &mut body);
    body.extend_from_slice(b"abc\r\n");
    body.extend_from_slice(LAST_CHUNK);
    assert_eq!(dechunk(&body, 1).unwrap().0, b"abc");
}
