//! Size and time limits, slow clients and malformed requests.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::*;

async fn gateway(extra: &str) -> (Upstream, TestGateway) {
    echo_gateway(extra, &[("r", "/", "")]).await
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let (_a, gw) = gateway("max_header_bytes = 4096").await;
    let c = client();
    let response = c
        .get(format!("{}/x", gw.http))
        .header("x-big", "a".repeat(5000))
        .send()
        .await
        .unwrap();
    assert_refused(response, 431, "headers_too_large").await;
    // Past hyper's read buffer the connection layer answers 431 itself.
    let response = c
        .get(format!("{}/x", gw.http))
        .header("x-big", "a".repeat(64_000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 431);
    // Just under the bound is fine.
    let response = c
        .get(format!("{}/x", gw.http))
        .header("x-big", "a".repeat(3500))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn oversized_bodies_get_413_with_length_or_chunked() {
    let (a, gw) = gateway("max_body_bytes = \"64 KiB\"").await;
    let c = client();
    let response = c
        .post(format!("{}/x", gw.http))
        .body(vec![b'a'; 65 * 1024])
        .send()
        .await
        .unwrap();
    assert_refused(response, 413, "body_too_large").await;
    assert_eq!(a.served(), 0, "refused before the upstream");

    // A chunked body (no Content-Length) that grows past the bound.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..20).map(|_| Ok(vec![b'b'; 8 * 1024])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let response = c
        .post(format!("{}/x", gw.http))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_refused(response, 413, "body_too_large").await;

    // A chunked body under the bound passes whole.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..4).map(|_| Ok(vec![b'c'; 8 * 1024])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let echo = send_json(c.post(format!("{}/x", gw.http)).body(body)).await;
    assert_eq!(echo["body_len"], 32 * 1024);
}

#[tokio::test]
async fn slow_loris_gets_408_and_holds_no_worker() {
    let (_a, gw) = gateway("request_header_timeout = \"300ms\"").await;
    // Many clients trickling a request head.
    let mut lorises = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(gw.addr()).await.unwrap();
        stream
            .write_all(b"GET /x HTTP/1.1\r\nHost: h\r\nX-Slow: ")
            .await
            .unwrap();
        lorises.push(stream);
    }
    // A client that connected and sent nothing at all, and one that sent only "GE".
    let silent = TcpStream::connect(gw.addr()).await.unwrap();
    let mut two = TcpStream::connect(gw.addr()).await.unwrap();
    two.write_all(b"GE").await.unwrap();

    // Meanwhile normal clients are served.
    let c = client();
    for _ in 0..10 {
        assert_eq!(status(&c, format!("{}/x", gw.http)).await, 200);
    }
    for mut stream in lorises {
        // Keep trickling: bytes arriving do not extend the deadline.
        let _ = stream.write_all(b"a").await;
        let text = read_all(&mut stream, Duration::from_secs(5)).await;
        assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
        assert_eq!(error_code(&text), "request_timeout");
    }
    let mut two = two;
    let text = read_all(&mut two, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    let mut silent = silent;
    let text = read_all(&mut silent, Duration::from_secs(5)).await;
    assert_eq!(text, "", "an idle connection is closed without a response");
}

#[tokio::test]
async fn request_timeout_bounds_the_upstream_wait() {
    let (_a, gw) = gateway("request_timeout = \"200ms\"").await;
    let response = get(&client(), format!("{}/slow/3000", gw.http)).await;
    assert_refused(response, 504, "gateway_timeout").await;
}

#[tokio::test]
async fn malformed_requests_get_precise_errors_and_no_panic() {
    let (a, gw) = gateway("").await;
    let addr = gw.addr();
    for (name, request, status, code) in [
        (
            "garbage request line",
            &b"GARBAGE\r\n\r\n"[..],
            "400",
            "bad_request",
        ),
        (
            "bad method",
            b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n",
            "400",
            "bad_request",
        ),
        (
            "bad version",
            b"GET / HTTP/9.9\r\nHost: h\r\n\r\n",
            "400",
            "bad_request",
        ),
        (
            "control byte in header value",
            b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x01b\r\n\r\n",
            "400",
            "bad_request",
        ),
        (
            "space in header name",
            b"GET / HTTP/1.1\r\nHost: h\r\nX A: b\r\n\r\n",
            "400",
            "bad_request",
        ),
        (
            "bare CR in header value",
            b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n",
            "400",
            "bad_request",
        ),
        (
            "two different content lengths",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            "400",
            "bad_content_length",
        ),
        (
            "non-numeric content length",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n",
            "400",
            "bad_content_length",
        ),
        (
            "unknown transfer coding",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
            "400",
            "unsupported_transfer_encoding",
        ),
        (
            "transfer coding on HTTP/1.0",
            b"POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "400",
            "unsupported_transfer_encoding",
        ),
    ] {
        let text = raw(addr, request).await;
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status} ")),
            "{name}: {text:?}"
        );
        assert_eq!(error_code(&text), code, "{name}: {text:?}");
    }
    // Percent-encoded bytes that are not UTF-8: refused by the gateway in its JSON shape.
    let text = raw(
        addr,
        b"GET /a%ff HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    assert_eq!(error_code(&text), "bad_path");
    assert!(text.contains("not valid UTF-8"), "{text}");
    // Raw bytes past ASCII (UTF-8 or not) must be percent-encoded. Raw UTF-8 reaches the
    // gateway's path check; bytes that are not UTF-8 are refused by the HTTP/1.1 parser. Both
    // get the JSON error shape.
    for (request, code) in [
        (
            &b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"[..],
            "bad_path",
        ),
        (
            b"GET /\xff\xfe HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            "bad_request",
        ),
    ] {
        let text = raw(addr, request).await;
        assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
        assert_eq!(error_code(&text), code, "{text}");
    }
    assert_eq!(a.served(), 0);
    // The gateway still serves.
    assert_eq!(status(&client(), format!("{}/ok", gw.http)).await, 200);
}

/// Content-Length together with Transfer-Encoding is how requests are smuggled: refused with
/// a precise 400, in either order, and nothing reaches the upstream, neither the request nor
/// what was appended to it.
#[tokio::test]
async fn content_length_with_transfer_encoding_is_refused() {
    let (a, gw) = gateway("").await;
    for request in [
        &b"POST /first HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"[..],
        b"POST /first HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\ncontent-length: 4\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
    ] {
        let text = raw(gw.addr(), request).await;
        assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
        assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "exactly one response: {text}");
        assert_eq!(error_code(&text), "conflicting_framing");
    }
    assert_eq!(a.served(), 0);

    // Keep-alive after a normal request: a later chunked request without Content-Length passes,
    // and a body that merely contains "content-length:" is not mistaken for a header.
    let text = raw(
        gw.addr(),
        b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 20\r\n\r\ncontent-length: 9\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(text.matches("HTTP/1.1 200 ").count(), 2, "{text}");
}
