//! Routing, upstreams and headers.

use std::collections::HashSet;

use serde_json::Value;

use crate::support::*;

#[tokio::test]
async fn routes_pick_the_most_specific_match_and_404_in_json() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let config = [
        upstream_block("a", &[a.addr], ""),
        upstream_block("b", &[b.addr], ""),
        route_block("prefix", "/orders/", "a", ""),
        route_block("by-id", "/orders/{order_id}", "b", "methods = [\"GET\"]"),
        route_block(
            "host",
            "/orders/{order_id}",
            "a",
            "methods = [\"GET\"]\nhost = \"api.example.com\"",
        ),
    ]
    .concat();
    let gw = TestGateway::start("", &config).await;
    let c = client();

    let echo: Value = get_json(&c, format!("{}/orders/7?x=1", gw.http)).await;
    assert_eq!(echo["upstream"], "b");
    assert_eq!(echo["path"], "/orders/7?x=1");

    let echo: Value = get_json(&c, format!("{}/orders/7/items", gw.http)).await;
    assert_eq!(echo["upstream"], "a", "prefix route");

    let echo = send_json(
        c.get(format!("{}/orders/7", gw.http))
            .header("host", "API.example.com:8080"),
    )
    .await;
    assert_eq!(echo["upstream"], "a", "host-specific route");

    let response = get(&c, format!("{}/nothing/here", gw.http)).await;
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = assert_refused(response, 404, "not_found").await;
    assert!(body.contains(&id), "request id in body");

    let response = c
        .delete(format!("{}/orders/7", gw.http))
        .send()
        .await
        .unwrap();
    // The prefix route takes every method, so DELETE goes there rather than 405.
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echo["upstream"], "a", "prefix route");
}

#[tokio::test]
async fn method_not_allowed_has_allow_header() {
    let (_a, gw) = echo_gateway("", &[("r", "/x", "methods = [\"POST\"]")]).await;
    let response = get(&client(), format!("{}/x", gw.http)).await;
    assert_eq!(response.headers()["allow"], "POST");
    assert_refused(response, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn round_robin_over_targets_with_pooled_connections() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let config = [
        upstream_block("u", &[a.addr, b.addr], ""),
        route_block("r", "/", "u", ""),
    ]
    .concat();
    let gw = TestGateway::start("", &config).await;
    let c = client();
    let mut seen = Vec::new();
    for _ in 0..20 {
        let echo: Value = get_json(&c, format!("{}/x", gw.http)).await;
        seen.push(echo["upstream"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen.iter().filter(|s| *s == "a").count(), 10, "{seen:?}");
    assert_eq!(seen.iter().filter(|s| *s == "b").count(), 10, "{seen:?}");
    // Sequential requests reuse one pooled connection per target.
    assert_eq!(a.connections.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(b.connections.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn failed_target_is_taken_out_and_requests_still_succeed() {
    let a = Upstream::start("a").await;
    let dead = dead_addr();
    let config = [
        upstream_block(
            "u",
            &[dead, a.addr],
            "fail_timeout = \"1h\"\nconnect_timeout = \"1s\"",
        ),
        route_block("r", "/", "u", ""),
    ]
    .concat();
    let gw = TestGateway::start("", &config).await;
    let c = client();
    for _ in 0..10 {
        assert_eq!(status(&c, format!("{}/x", gw.http)).await, 200);
    }
    // The dead target was tried once, then left out of rotation.
    let metrics = metrics(&c, &gw).await;
    assert!(
        metrics.contains("portcullis_upstream_errors_total{upstream=\"u\",kind=\"connect\"} 1"),
        "{metrics}"
    );

    // A POST with a body is never retried: it may fail once, and then the target is out.
    let response = c
        .post(format!("{}/x", gw.http))
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn all_targets_down_is_502_and_slow_upstream_is_504() {
    let dead = dead_addr();
    let slow = Upstream::start("slow").await;
    let config = [
        upstream_block("dead", &[dead], ""),
        upstream_block("slow", &[slow.addr], "timeout = \"200ms\""),
        route_block("dead", "/dead", "dead", ""),
        route_block("slow", "/slow/{ms}", "slow", ""),
    ]
    .concat();
    let gw = TestGateway::start("", &config).await;
    let c = client();
    let response = get(&c, format!("{}/dead", gw.http)).await;
    let body = assert_refused(response, 502, "bad_gateway").await;
    assert!(!body.contains("127.0.0.1"), "no internal detail: {body}");

    let response = get(&c, format!("{}/slow/3000", gw.http)).await;
    assert_refused(response, 504, "gateway_timeout").await;
    assert_eq!(status(&c, format!("{}/slow/1", gw.http)).await, 200);
}

#[tokio::test]
async fn hop_by_hop_and_leaky_headers_are_stripped_both_ways() {
    let (_a, gw) = echo_gateway("", &[("r", "/", "")]).await;
    let text = raw(
        gw.addr(),
        b"GET /echo HTTP/1.1\r\nHost: h\r\nConnection: close, x-client-hop\r\nX-Client-Hop: secret\r\nKeep-Alive: timeout=9\r\nTE: trailers\r\nUpgrade: websocket\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nX-End: kept\r\n\r\n",
    )
    .await;
    let (_, body) = text.split_once("\r\n\r\n").unwrap();
    let echo: Value = serde_json::from_str(body).unwrap();
    let headers = echo["headers"].as_object().unwrap();
    for gone in [
        "connection",
        "x-client-hop",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
    ] {
        assert!(
            !headers.contains_key(gone),
            "{gone} reached the upstream: {headers:?}"
        );
    }
    assert_eq!(headers["x-end"][0], "kept");

    let hop_response = raw(
        gw.addr(),
        b"GET /hop HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    let hop_response = hop_response
        .split_once("\r\n\r\n")
        .unwrap()
        .0
        .to_ascii_lowercase();
    assert!(
        hop_response.contains("x-end-to-end: kept"),
        "{hop_response}"
    );
    for gone in ["x-hop-secret", "keep-alive", "server:", "x-powered-by"] {
        assert!(
            !hop_response.contains(gone),
            "{gone} reached the client: {hop_response}"
        );
    }
    assert!(hop_response.contains("x-content-type-options: nosniff"));
}

#[tokio::test]
async fn request_ids_and_forwarding_headers() {
    let (a, gw) = echo_gateway("", &[("r", "/", "")]).await;
    let c = client();

    // Generated when absent, unique, sent both ways.
    let mut ids = HashSet::new();
    for _ in 0..50 {
        let response = c.get(format!("{}/x", gw.http)).send().await.unwrap();
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let echo: Value = response.json().await.unwrap();
        assert_eq!(echo["headers"]["x-request-id"][0], id.as_str());
        assert!(ids.insert(id));
    }
    // Kept when the client sends a sane one, replaced when not.
    let response = c
        .get(format!("{}/x", gw.http))
        .header("x-request-id", "trace-abc.123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-abc.123");
    let response = c
        .get(format!("{}/x", gw.http))
        .header("x-request-id", "<script>")
        .send()
        .await
        .unwrap();
    assert_ne!(response.headers()["x-request-id"], "<script>");

    // Untrusted peer: forged forwarding headers are replaced, not extended.
    let echo = send_json(
        c.get(format!("{}/x", gw.http))
            .header("x-forwarded-for", "6.6.6.6")
            .header("forwarded", "for=6.6.6.6")
            .header("host", "shop.example"),
    )
    .await;
    assert_eq!(echo["headers"]["x-forwarded-for"][0], "127.0.0.1");
    assert_eq!(echo["headers"]["forwarded"][0], "for=127.0.0.1;proto=http");
    assert_eq!(echo["headers"]["x-forwarded-proto"][0], "http");
    // Host is the target's unless preserve_host.
    assert_eq!(echo["headers"]["host"][0], a.addr.to_string());
}

#[tokio::test]
async fn trusted_proxy_chain_sets_client_ip_and_is_extended() {
    let a = Upstream::start("a").await;
    let config = [
        upstream_block("a", &[a.addr], "preserve_host = true"),
        route_block("r", "/", "a", ""),
    ]
    .concat();
    let gw = TestGateway::start("trusted_proxies = [\"127.0.0.0/8\"]", &config).await;
    let echo = send_json(
        client()
            .get(format!("{}/x", gw.http))
            .header("x-forwarded-for", "203.0.113.9, 127.0.0.5")
            .header("host", "shop.example"),
    )
    .await;
    assert_eq!(
        echo["headers"]["x-forwarded-for"][0],
        "203.0.113.9, 127.0.0.5, 127.0.0.1"
    );
    assert_eq!(echo["headers"]["host"][0], "shop.example");
    let log = gw.access_log(1).await;
    assert_eq!(log[0]["client_ip"], "203.0.113.9");
}

#[tokio::test]
async fn admission_filter_blocks_or_monitors() {
    let (a, gw) = echo_gateway(
        "",
        &[
            (
                "blocked",
                "/blocked",
                "admission = { deny = [\"127.0.0.0/8\"] }",
            ),
            (
                "watched",
                "/watched",
                "admission = { allow = [\"10.0.0.0/8\"], mode = \"monitor\" }",
            ),
        ],
    )
    .await;
    let c = client();
    let response = get(&c, format!("{}/blocked", gw.http)).await;
    assert_refused(response, 403, "ip_not_allowed").await;
    assert_eq!(status(&c, format!("{}/watched", gw.http)).await, 200);
    let log = gw.access_log(2).await;
    assert_eq!(log[0]["decision"], "reject");
    assert_eq!(log[1]["decision"], "monitor");
    assert_eq!(log[1]["monitored"][0], "admission");
    assert_eq!(
        a.served(),
        1,
        "the blocked request never reached the upstream"
    );
}

#[tokio::test]
async fn http2_prior_knowledge_end_to_end() {
    let (_a, gw) = echo_gateway("", &[("r", "/", "")]).await;
    let c = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let mut handles = Vec::new();
    for i in 0..20 {
        let c = c.clone();
        let url = format!("{}/h2/{i}", gw.http);
        handles.push(tokio::spawn(async move {
            c.post(url).body(vec![b'x'; 1000]).send().await.unwrap()
        }));
    }
    for handle in handles {
        let response = handle.await.unwrap();
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        assert_eq!(response.status(), 200);
        let echo: Value = response.json().await.unwrap();
        assert_eq!(echo["body_len"], 1000);
    }
    let response = c
        .get(format!(
            "{}/none",
            gw.http.replace("127.0.0.1", "localhost")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn upstream_tls_verifies_the_ca() {
    let pki = Pki::new();
    let other = Pki::new();
    let secure = Upstream::start_tls("secure", &pki).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &pki.ca_pem).unwrap();
    std::fs::write(dir.path().join("other-ca.pem"), &other.ca_pem).unwrap();
    let config = [
        upstream_block(
            "good",
            &[secure.addr],
            "tls = { ca = \"ca.pem\", server_name = \"localhost\" }",
        ),
        upstream_block("bad", &[secure.addr], "tls = { ca = \"other-ca.pem\" }"),
        route_block("good", "/good", "good", ""),
        route_block("bad", "/bad", "bad", ""),
    ]
    .concat();
    let gw = TestGateway::start_in(dir, "", &config).await;
    let c = client();
    let response = get(&c, format!("{}/good", gw.http)).await;
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echo["upstream"], "secure");
    assert_eq!(
        status(&c, format!("{}/bad", gw.http)).await,
        502,
        "a certificate from an unknown CA is refused"
    );
}
