//! The gateway's own HTTP/1.1 path, from the client's and the upstream's side: pipelining,
//! `Expect: 100-continue`, HTTP/1.0, the upstream's framings, stale pooled connections and
//! refused bodies.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// An upstream written by hand, to answer with framings hyper would not choose: it reads
/// request heads (and `Content-Length` bodies) and answers by path. A connection idle for
/// `linger` is closed without a word: what an upstream with a short keep-alive timeout does
/// to a pooled connection.
struct RawUpstream {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl RawUpstream {
    async fn start(linger: Duration) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (c, r) = (Arc::clone(&connections), Arc::clone(&requests));
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let r = Arc::clone(&r);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    // Requests until the connection has been idle for `linger`, then the
                    // silent close.
                    while let Ok(Some((head, body))) =
                        tokio::time::timeout(linger, read_request(&mut stream, &mut buf)).await
                    {
                        r.fetch_add(1, Ordering::SeqCst);
                        let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                        let answer = answer(&path, head.starts_with("HEAD "), body.len());
                        let _ = stream.write_all(&answer).await;
                        if path == "/close-delimited" {
                            let _ = stream.shutdown().await;
                            return;
                        }
                    }
                });
            }
        });
        RawUpstream {
            addr,
            connections,
            requests,
        }
    }
}

/// Reads a request head and its `Content-Length` body.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < end + length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[end..end + length].to_vec();
    buf.drain(..end + length);
    Some((head, body))
}

fn answer(path: &str, is_head: bool, body_len: usize) -> Vec<u8> {
    match path {
        "/chunked" => b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/plain\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\nx-trailer: t\r\n\r\n".to_vec(),
        "/close-delimited" => b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end".to_vec(),
        "/interim" => b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal".to_vec(),
        "/no-content" => b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n".to_vec(),
        _ if is_head => b"HTTP/1.1 200 OK\r\ncontent-length: 1234\r\ncontent-type: text/plain\r\n\r\n".to_vec(),
        _ => {
            let body = format!("{{\"path\":\"{path}\",\"body_len\":{body_len}}}");
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        }
    }
}

async fn raw_gateway(linger: Duration, upstream_extra: &str) -> (RawUpstream, TestGateway) {
    let up = RawUpstream::start(linger).await;
    let config = [
        upstream_block("raw", &[up.addr], upstream_extra),
        route_block("r", "/", "raw", ""),
    ]
    .concat();
    let gw = TestGateway::start("", &config).await;
    (up, gw)
}

/// The responses in `text`, as (status line, body) pairs, for bodies with a length.
fn responses(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(end) = rest.find("\r\n\r\n") {
        let head = &rest[..end];
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        let body_start = end + 4;
        let body_end = (body_start + length).min(rest.len());
        out.push((
            head.lines().next().unwrap_or("").to_owned(),
            rest[body_start..body_end].to_owned(),
        ));
        rest = &rest[body_end..];
    }
    out
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (a, gw) = echo_gateway("", &[("r", "/", "")]).await;
    let text = raw(
        gw.addr(),
        b"GET /one HTTP/1.1\r\nHost: h\r\n\r\nPOST /two HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /three HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    let answers = responses(&text);
    assert_eq!(answers.len(), 3, "{text}");
    let paths: Vec<String> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(status, "HTTP/1.1 200 OK", "{text}");
            let echo: Value = serde_json::from_str(body).unwrap();
            echo["path"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(paths, ["/one", "/two", "/three"]);
    assert_eq!(a.served(), 3);
}

#[tokio::test]
async fn expect_continue_gets_an_interim_response_only_when_the_body_is_wanted() {
    let (a, gw) = echo_gateway("max_body_bytes = \"1 KiB\"", &[("r", "/", "")]).await;
    let mut stream = TcpStream::connect(gw.addr()).await.unwrap();
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        .await
        .unwrap();
    let mut interim = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut interim))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"hello").await.unwrap();
    stream.shutdown().await.unwrap();
    let text = read_all(&mut stream, Duration::from_secs(5)).await;
    let answers = responses(&text);
    assert_eq!(answers[0].0, "HTTP/1.1 200 OK", "{text}");
    let echo: Value = serde_json::from_str(&answers[0].1).unwrap();
    assert_eq!(echo["body_len"], 5);
    assert!(
        echo["headers"].get("expect").is_none(),
        "the expectation was met by the gateway: {echo}"
    );

    // Refused on its head: no interim response, the final answer, and the body never sent.
    let text = raw(
        gw.addr(),
        b"POST /upload HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert_eq!(error_code(&text), "body_too_large");
    assert_eq!(a.served(), 1);
}

#[tokio::test]
async fn http_1_0_clients_are_answered_and_closed() {
    let (_up, gw) = raw_gateway(Duration::from_secs(5), "").await;
    // A chunked upstream answer reaches an HTTP/1.0 client delimited by the close.
    let text = raw(gw.addr(), b"GET /chunked HTTP/1.0\r\nHost: h\r\n\r\n").await;
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(text.contains("connection: close"), "{text}");
    assert!(!text.contains("transfer-encoding"), "{text}");
    assert!(text.ends_with("\r\n\r\nhello, world"), "{text}");
    // Keep-alive when an HTTP/1.0 client asks for it and the length is known.
    let mut stream = TcpStream::connect(gw.addr()).await.unwrap();
    stream
        .write_all(b"GET /a HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    let text = read_all(&mut stream, Duration::from_secs(5)).await;
    let answers = responses(&text);
    assert_eq!(answers.len(), 2, "{text}");
    assert!(text.contains("connection: keep-alive"), "{text}");
}

#[tokio::test]
async fn upstream_framings_are_forwarded() {
    let (_up, gw) = raw_gateway(Duration::from_secs(5), "").await;
    let c = client();
    let response = get(&c, format!("{}/chunked", gw.http)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "hello, world");
    let response = get(&c, format!("{}/close-delimited", gw.http)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "until the end");
    let response = get(&c, format!("{}/interim", gw.http)).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("link").is_none());
    assert_eq!(response.text().await.unwrap(), "final");
    let response = get(&c, format!("{}/no-content", gw.http)).await;
    assert_eq!(response.status(), 204);
    // A 204 carries no length (RFC 9110 §8.6), whatever the upstream sent.
    let text = raw(
        gw.addr(),
        b"GET /no-content HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 204 "), "{text}");
    assert!(!text.contains("content-length"), "{text}");
    // HEAD: the length of what a GET would get, and no body.
    let text = raw(
        gw.addr(),
        b"HEAD /doc HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(text.contains("content-length: 1234\r\n"), "{text}");
    assert!(
        text.ends_with("\r\n\r\n"),
        "no body after a HEAD answer: {text}"
    );
    // A chunked answer is re-framed for an HTTP/1.1 client, trailers dropped.
    let text = raw(
        gw.addr(),
        b"GET /chunked HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
    assert!(
        text.ends_with("\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"),
        "{text}"
    );
}

#[tokio::test]
async fn a_pooled_connection_the_upstream_closed_is_not_used() {
    // The upstream closes every connection 100 ms after its answer, without saying so.
    let (up, gw) = raw_gateway(Duration::from_millis(100), "").await;
    let c = client();
    for round in 0..3 {
        let echo = send_json(c.get(format!("{}/get/{round}", gw.http))).await;
        assert_eq!(echo["path"], format!("/get/{round}"));
        tokio::time::sleep(Duration::from_millis(300)).await;
        // A body cannot be sent twice: the stale connection must be noticed before use.
        let echo = send_json(c.post(format!("{}/post/{round}", gw.http)).body("payload")).await;
        assert_eq!(echo["body_len"], 7);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(up.requests.load(Ordering::SeqCst), 6);
    // Every request found its pooled connection closed: each took a new one.
    assert_eq!(up.connections.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn a_refused_body_gets_the_answer_not_a_reset() {
    let (a, gw) = echo_gateway("", &[("r", "/api", "")]).await;
    let mut stream = TcpStream::connect(gw.addr()).await.unwrap();
    // No route: refused before the body is read. The client is still sending it.
    stream
        .write_all(b"POST /elsewhere HTTP/1.1\r\nHost: h\r\nContent-Length: 200000\r\n\r\n")
        .await
        .unwrap();
    let body = vec![b'x'; 200_000];
    let writer = tokio::spawn(async move {
        let _ = stream.write_all(&body).await;
        stream
    });
    let mut stream = writer.await.unwrap();
    let text = read_all(&mut stream, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 404 "), "{text}");
    assert!(text.contains("connection: close"), "{text}");
    assert_eq!(error_code(&text), "not_found");
    assert_eq!(a.served(), 0);
}

/// A chunked body that breaks is the client's fault, whoever reads it first: inspection
/// (reading the body before routing on) or the upstream request (inspection off).
#[tokio::test]
async fn a_broken_chunked_body_is_refused() {
    let (_a, gw) = echo_gateway(
        "",
        &[
            ("inspected", "/inspected", ""),
            ("plain", "/plain", "inspect = { mode = \"off\" }"),
        ],
    )
    .await;
    for path in ["/inspected", "/plain"] {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\nabc\r\n0\r\n\r\n"
        );
        let text = raw(gw.addr(), request.as_bytes()).await;
        assert!(text.starts_with("HTTP/1.1 400 "), "{path}: {text}");
        assert_eq!(error_code(&text), "bad_body", "{path}: {text}");
    }
}

#[tokio::test]
async fn heads_and_chunked_bodies_split_into_tiny_writes_arrive_whole() {
    let (a, gw) = echo_gateway("", &[("r", "/", "")]).await;
    let mut request =
        b"POST /tiny HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let mut sent = 0;
    for size in [1usize, 17, 300, 4096, 5] {
        request.extend_from_slice(format!("{size:x};ext=1\r\n").as_bytes());
        request.extend(std::iter::repeat_n(b'q', size));
        request.extend_from_slice(b"\r\n");
        sent += size;
    }
    request.extend_from_slice(b"0\r\nx-trailer: dropped\r\n\r\n");
    request.extend_from_slice(b"GET /after HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    let mut stream = TcpStream::connect(gw.addr()).await.unwrap();
    // Pieces of 1 to 7 bytes, each its own segment: every framing state is cut somewhere.
    stream.set_nodelay(true).unwrap();
    let mut at = 0;
    let mut step = 1;
    while at < request.len() {
        let end = (at + step).min(request.len());
        stream.write_all(&request[at..end]).await.unwrap();
        at = end;
        step = step % 7 + 1;
        if at % 5 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let text = read_all(&mut stream, Duration::from_secs(10)).await;
    let answers = responses(&text);
    assert_eq!(answers.len(), 2, "{text}");
    let echo: Value = serde_json::from_str(&answers[0].1).unwrap();
    assert_eq!(echo["body_len"], sent, "{text}");
    let echo: Value = serde_json::from_str(&answers[1].1).unwrap();
    assert_eq!(echo["path"], "/after");
    assert_eq!(a.served(), 2);
}
