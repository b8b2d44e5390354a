//! Rate limits, quotas, in-flight and connection limits through a real gateway.

use std::time::Duration;

use portcullis_store::NewKey;
use serde_json::Value;

use crate::support::*;

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn public_gateway(extra: &str) -> (Upstream, TestGateway) {
    echo_gateway(
        "",
        &[("limited", "/orders", extra), ("free", "/health", "")],
    )
    .await
}

#[tokio::test]
async fn a_limited_route_answers_429_with_an_honest_retry_after_and_ratelimit_headers() {
    let (_a, gw) = public_gateway("limit = { rate = \"1/s\", burst = 1, by = \"ip\" }").await;
    let c = client();
    let url = format!("{}/orders", gw.http);

    let first = c.get(&url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "ratelimit-policy"), "\"ip-1s\";q=1;w=1");
    assert_eq!(header(&first, "ratelimit"), "\"ip-1s\";r=0;t=1");

    let refused = c.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = header(&refused, "retry-after").parse().unwrap();
    assert_eq!(retry_after, 1);
    assert_eq!(header(&refused, "ratelimit-policy"), "\"ip-1s\";q=1;w=1");
    assert!(header(&refused, "ratelimit").starts_with("\"ip-1s\";r=0;t="));
    assert_eq!(header(&refused, "cache-control"), "no-store");
    assert_refused(refused, 429, "rate_limited").await;

    // A client that waits exactly what it was told is let in.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(status(&c, &url).await, 200);

    // Routes without limits carry no rate-limit headers.
    let free = get(&c, format!("{}/health", gw.http)).await;
    assert_eq!(free.status(), 200);
    assert!(free.headers().get("ratelimit").is_none());

    let text = metrics(&c, &gw).await;
    assert!(text.contains(
        "portcullis_rate_limit_decisions_total{route=\"limited\",outcome=\"limited\",backend=\"local\"} 1"
    ), "{text}");
    assert!(text.contains(
        "portcullis_rate_limit_decisions_total{route=\"limited\",outcome=\"allowed\",backend=\"local\"} 2"
    ), "{text}");
    gw.shutdown().await;
}

#[tokio::test]
async fn several_limits_apply_together_and_refused_requests_are_not_counted() {
    let (_a, gw) = public_gateway(
        "limit = [{ rate = \"3/m\", burst = 3, by = \"ip\" }, { rate = \"1/m\", burst = 1, by = \"route\" }]",
    )
    .await;
    let c = client();
    let url = format!("{}/orders", gw.http);
    let first = c.get(&url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(
        header(&first, "ratelimit-policy"),
        "\"ip-1m\";q=3;w=60, \"route-1m\";q=1;w=60"
    );
    assert_eq!(
        header(&first, "ratelimit"),
        "\"ip-1m\";r=2;t=20, \"route-1m\";r=0;t=60"
    );
    // The second limit refuses; the first must not lose a request each time, or after two
    // more it would be the one refusing.
    for _ in 0..10 {
        let refused = c.get(&url).send().await.unwrap();
        assert_eq!(refused.status(), 429);
        let state = header(&refused, "ratelimit");
        assert!(state.starts_with("\"ip-1m\";r=2;"), "{state}");
        assert!(state.contains("\"route-1m\";r=0;"), "{state}");
        let wait: u64 = header(&refused, "retry-after").parse().unwrap();
        assert!((59..=60).contains(&wait), "{wait}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn monitor_mode_lets_requests_through_and_counts_them() {
    let (_a, gw) =
        public_gateway("limit = { rate = \"1/m\", burst = 1, by = \"ip\", mode = \"monitor\" }")
            .await;
    let c = client();
    for _ in 0..3 {
        assert_eq!(status(&c, format!("{}/orders", gw.http)).await, 200);
    }
    let log = gw.access_log(3).await;
    assert_eq!(log[0]["decision"], "allow");
    assert_eq!(log[1]["decision"], "monitor");
    assert_eq!(log[2]["decision"], "monitor");
    assert_eq!(log[2]["monitored"], serde_json::json!(["rate_limit"]));
    let text = metrics(&c, &gw).await;
    assert!(text.contains(
        "portcullis_rate_limit_decisions_total{route=\"limited\",outcome=\"monitored\",backend=\"local\"} 2"
    ), "{text}");
    gw.shutdown().await;
}

#[tokio::test]
async fn in_flight_limit_refuses_the_extra_request_and_frees_its_slot() {
    let (_a, gw) = echo_gateway("", &[("slow", "/slow/", "concurrency = { max = 2 }")]).await;
    let c = client();
    let url = format!("{}/slow/600", gw.http);
    let (first, second) = (c.get(&url).send(), c.get(&url).send());
    let pending = tokio::spawn(async move {
        let (first, second) = tokio::join!(first, second);
        (
            first.unwrap().status().as_u16(),
            second.unwrap().status().as_u16(),
        )
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = get(&c, &url).await;
    assert_eq!(header(&refused, "retry-after"), "1");
    assert_refused(refused, 429, "too_many_concurrent_requests").await;
    assert_eq!(pending.await.unwrap(), (200, 200));
    // Both slots are back once the responses are done.
    let (x, y) = tokio::join!(c.get(&url).send(), c.get(&url).send());
    assert_eq!(x.unwrap().status(), 200);
    assert_eq!(y.unwrap().status(), 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn connections_past_the_per_ip_cap_get_429_and_are_closed() {
    let (_a, gw) = echo_gateway_with(
        "",
        &[("r", "/", "")],
        "[limits]\nmax_connections_per_ip = 2\n",
    )
    .await;
    let addr = gw.addr();
    let request = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut stream, request)
            .await
            .unwrap();
        let mut buf = [0u8; 12];
        tokio::io::AsyncReadExt::read_exact(&mut stream, &mut buf)
            .await
            .unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
        held.push(stream);
    }
    let third = raw(addr, request).await;
    assert!(third.starts_with("HTTP/1.1 429"), "{third}");
    assert!(
        third.to_ascii_lowercase().contains("connection: close"),
        "{third}"
    );
    assert_eq!(error_code(&third), "too_many_connections");
    drop(held);
    // The slots come back with the connections.
    let ok = poll_until(50, Duration::from_millis(20), async || {
        raw(
            addr,
            b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .await
        .starts_with("HTTP/1.1 200")
    })
    .await;
    assert!(ok, "connection slots were not given back");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_global_limit_covers_every_request_of_the_listener() {
    let (_a, gw) = echo_gateway_with(
        "",
        &[("r", "/orders", "")],
        "[limits]\nglobal = { rate = \"2/m\", burst = 2 }\n",
    )
    .await;
    let c = client();
    assert_eq!(status(&c, format!("{}/orders", gw.http)).await, 200);
    // Unknown paths count too: the global limit protects the gateway itself.
    assert_eq!(status(&c, format!("{}/nope", gw.http)).await, 404);
    let refused = get(&c, format!("{}/orders", gw.http)).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "retry-after"), "30");
    gw.shutdown().await;
}

async fn keyed_gateway(
    dir: tempfile::TempDir,
    upstream: &Upstream,
    extra: &str,
) -> (TestGateway, portcullis_store::Store) {
    let config = [
        upstream_block("a", &[upstream.addr], ""),
        api_key_route("orders", "/orders", "a", extra),
    ]
    .concat();
    gateway_with_store(dir, &config).await
}

/// Waits (bounded) until the gateway knows `key`: the key's first request is accepted.
async fn until_known(c: &reqwest::Client, url: &str, key: &str) {
    assert!(
        until_status(c, url, key, 200).await,
        "the gateway never learnt the key"
    );
}

#[tokio::test]
async fn identities_have_their_own_buckets_and_a_key_override_replaces_the_route_rate() {
    let a = Upstream::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    let (gw, store) = keyed_gateway(dir, &a, "limit = { rate = \"3/m\", by = \"identity\" }").await;
    let c = client();
    let url = format!("{}/orders", gw.http);
    let (_, acme_1) = new_key(&store, "acme", &[]).await;
    let (_, acme_2) = new_key(&store, "acme", &[]).await;
    let mut premium = NewKey::for_identity("globex");
    premium.rate_limit_override = Some("5/m".into());
    let (_, globex) = issue_key(&store, premium).await;
    // `until_known` spends one request of the bucket when the key is already known.
    until_known(&c, &url, &acme_1).await;
    assert_eq!(status_with_key(&c, &url, &acme_2).await, 200);
    // Both keys of one identity share its bucket: 3 in all.
    assert_eq!(status_with_key(&c, &url, &acme_1).await, 200);
    assert_eq!(status_with_key(&c, &url, &acme_2).await, 429);
    assert_eq!(status_with_key(&c, &url, &acme_1).await, 429);

    // The override reached the gateway with the key: its policy is 5 a minute from the
    // first accepted request (which `until_known` spends).
    until_known(&c, &url, &globex).await;
    let response = c.get(&url).bearer_auth(&globex).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "ratelimit-policy"),
        "\"identity-1m\";q=5;w=60"
    );
    assert!(header(&response, "ratelimit").starts_with("\"identity-1m\";r=3;"));
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(status_with_key(&c, &url, &globex).await);
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_quota_survives_a_restart() {
    let a = Upstream::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().to_path_buf();
    let (gw, store) = keyed_gateway(
        dir,
        &a,
        "quota = { requests = 3, per = \"day\", by = \"key\" }",
    )
    .await;
    let c = client();
    let url = format!("{}/orders", gw.http);
    let (key_id, key) = new_key(&store, "acme", &[]).await;
    let mut admin = NewKey::for_identity("acme");
    admin.roles = vec!["admin".into()];
    let (_, admin) = issue_key(&store, admin).await;
    until_known(&c, &url, &key).await;
    assert_eq!(status_with_key(&c, &url, &key).await, 200);
    let last = c.get(&url).bearer_auth(&key).send().await.unwrap();
    assert_eq!(last.status(), 200);
    assert_eq!(header(&last, "ratelimit-policy"), "\"key-day\";q=3;w=86400");
    assert!(header(&last, "ratelimit").starts_with("\"key-day\";r=0;t="));
    let refused = c.get(&url).bearer_auth(&key).send().await.unwrap();
    let wait: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1..=86_400).contains(&wait), "{wait}");
    assert_refused(refused, 429, "quota_exceeded").await;

    // The admin API shows where the key's quota stands.
    let report = send_json(
        c.get(format!("{}/admin/v1/keys/{key_id}/quota", gw.admin))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(report["quotas"][0]["route"], "orders");
    assert_eq!(report["quotas"][0]["policy"], "key-day");
    assert_eq!(report["quotas"][0]["quota"], "3/day");
    assert_eq!(report["quotas"][0]["used"], 3);
    assert_eq!(report["quotas"][0]["remaining"], 0);

    // Keep the directory: a new gateway on the same store.
    let dir = gw.shutdown_keep_dir().await;
    assert_eq!(dir.path(), keep.as_path());
    let (gw, _store) = keyed_gateway(
        dir,
        &a,
        "quota = { requests = 3, per = \"day\", by = \"key\" }",
    )
    .await;
    let response = c
        .get(format!("{}/orders", gw.http))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429, "the quota was reset by a restart");
    let used: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(used["error"]["code"], "quota_exceeded");
    // And the CLI, from the store. Awaited, not blocked on: this test's runtime also runs
    // the gateway, whose usage writer may hold SQLite's write lock until it is polled again.
    let output = tokio::process::Command::from(bin())
        .args(["keys", "show", "--json", "-c"])
        .arg(&gw.config_path)
        .arg(&key_id)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let shown: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(shown["quotas"][0]["used"], 3, "{shown}");
    assert_eq!(shown["quotas"][0]["remaining"], 0, "{shown}");
    gw.shutdown().await;
}

#[tokio::test]
async fn buckets_survive_a_reload_and_the_backend_cannot_change_without_a_restart() {
    let a = Upstream::start("a").await;
    let route = |extra: &str| {
        [
            upstream_block("a", &[a.addr], ""),
            route_block(
                "limited",
                "/orders",
                "a",
                "limit = { rate = \"2/m\", by = \"ip\" }",
            ),
            extra.to_owned(),
        ]
        .concat()
    };
    let gw = TestGateway::start("", &route("")).await;
    let c = client();
    let url = format!("{}/orders", gw.http);
    assert_eq!(status(&c, &url).await, 200);
    assert_eq!(status(&c, &url).await, 200);
    assert_eq!(status(&c, &url).await, 429);

    // An unrelated change reloads; the spent bucket is still spent.
    gw.rewrite("", &route(&route_block("other", "/other", "a", "")));
    assert_eq!(gw.reload().await.status(), 200);
    assert_eq!(status(&c, &url).await, 429);

    gw.rewrite(
        "",
        &route("[limits]\nbackend = \"redis://127.0.0.1:6379\"\n"),
    );
    let reload = gw.reload().await;
    assert_eq!(reload.status(), 422);
    let body: Value = reload.json().await.unwrap();
    assert_eq!(body["error"]["details"][0]["path"], "limits", "{body}");
    gw.shutdown().await;
}
