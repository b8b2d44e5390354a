//! API key authentication and scopes through a real gateway and a real store.

use std::time::Duration;

use portcullis_store::Actor;
use serde_json::Value;

use crate::support::*;

async fn gateway() -> (Upstream, TestGateway, portcullis_store::Store) {
    let a = Upstream::start("a").await;
    let config = [
        upstream_block("a", &[a.addr], ""),
        api_key_route(
            "read",
            "/orders",
            "a",
            "scopes = [\"orders:read\"]\nmethods = [\"GET\"]",
        ),
        api_key_route("any", "/me", "a", ""),
        route_block("public", "/public", "a", ""),
        api_key_route("query", "/legacy", "a", "api_key_query = \"api_key\""),
    ]
    .concat();
    let (gw, store) = gateway_with_store(tempfile::tempdir().unwrap(), &config).await;
    (a, gw, store)
}

async fn key(store: &portcullis_store::Store, scopes: &[&str]) -> (String, String) {
    new_key(store, "acme", scopes).await
}

#[tokio::test]
async fn keys_authenticate_and_scopes_authorize() {
    let (_a, gw, store) = gateway().await;
    let (_, reader) = key(&store, &["orders:read"]).await;
    let (_, plain) = key(&store, &[]).await;
    let url = format!("{}/orders", gw.http);
    assert!(
        until_status(&client(), &url, &reader, 200).await,
        "new key seen by the gateway"
    );
    let c = client();

    // The upstream learns who calls, never the key; forged identity headers are dropped.
    let echo = send_json(
        c.get(&url)
            .header("x-api-key", &reader)
            .header("x-portcullis-identity", "idn_forged"),
    )
    .await;
    let headers = echo["headers"].as_object().unwrap();
    assert!(headers["x-portcullis-identity"][0]
        .as_str()
        .unwrap()
        .starts_with("idn_"));
    assert_ne!(headers["x-portcullis-identity"][0], "idn_forged");
    assert_eq!(headers["x-portcullis-scopes"][0], "orders:read");
    assert!(
        !headers.contains_key("x-api-key") && !headers.contains_key("authorization"),
        "{headers:?}"
    );

    // Another Authorization scheme is the upstream's business: kept, and not a second key.
    let echo = send_json(
        c.get(&url)
            .header("x-api-key", &reader)
            .header("authorization", "Basic dXNlcjpwYXNz"),
    )
    .await;
    assert_eq!(echo["headers"]["authorization"][0], "Basic dXNlcjpwYXNz");

    // Missing key: 401 with WWW-Authenticate.
    let response = get(&c, &url).await;
    assert!(response.headers().contains_key("www-authenticate"));
    assert_refused(response, 401, "missing_credentials").await;
    // A key without the scope: 403.
    let response = c.get(&url).bearer_auth(&plain).send().await.unwrap();
    assert_refused(response, 403, "insufficient_scope").await;
    // The same key on a route that asks for no scope: 200.
    let me = format!("{}/me", gw.http);
    assert_eq!(status_with_key(&c, &me, &plain).await, 200);
    // A public route needs nothing.
    assert_eq!(status(&c, format!("{}/public", gw.http)).await, 200);
    // Two credentials are ambiguous.
    let response = c
        .get(&url)
        .bearer_auth(&reader)
        .header("x-api-key", &reader)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn malformed_unknown_and_revoked_keys_get_the_same_401() {
    let (a, gw, store) = gateway().await;
    let (id, reader) = key(&store, &["orders:read"]).await;
    let url = format!("{}/orders", gw.http);
    assert!(until_status(&client(), &url, &reader, 200).await);
    store.revoke_key(&id, &Actor::new("test")).await.unwrap();
    assert!(
        until_status(&client(), &url, &reader, 401).await,
        "revocation reached the gateway"
    );
    let served = a.served();

    // A well-formed key nobody issued (checksum recomputed so it passes the format check).
    let unknown = portcullis_store::ApiKey::generate("live")
        .unwrap()
        .plaintext()
        .expose()
        .to_owned();
    let mut bodies = Vec::new();
    for presented in [
        reader.clone(),
        unknown,
        "pc_live_AAAAAAAAAAAAAAAAAAAAAA_AAAAAA".to_owned(),
        reader.replace("pc_live_", "pc_test_"),
        "x".repeat(10_000),
        "not-a-key".to_owned(),
    ] {
        let response = client()
            .get(&url)
            .header("x-api-key", presented.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{presented:.20}");
        let body: Value = response.json().await.unwrap();
        bodies.push((
            body["error"]["code"].clone(),
            body["error"]["message"].clone(),
        ));
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "no oracle: {bodies:?}"
    );
    // Non-ASCII bytes in the header.
    let text = raw(
        gw.addr(),
        b"GET /orders HTTP/1.1\r\nHost: h\r\nX-API-Key: pc_live_\xc3\xa9\xc3\xa9\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 401 "), "{text}");
    assert_eq!(a.served(), served, "nothing refused reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_by_the_cli_reaches_the_running_gateway_within_a_second() {
    let (_a, gw, store) = gateway().await;
    let (id, reader) = key(&store, &["orders:read"]).await;
    let url = format!("{}/orders", gw.http);
    assert!(until_status(&client(), &url, &reader, 200).await);
    let revoked = bin()
        .args(["keys", "revoke", "-c"])
        .arg(&gw.config_path)
        .arg(&id)
        .status()
        .unwrap();
    assert!(revoked.success());
    let revoked_at = std::time::Instant::now();
    let c = client();
    let mut refused = false;
    // Polled for at most one second: that is the promise.
    while revoked_at.elapsed() < Duration::from_secs(1) {
        if status_with_key(&c, &url, &reader).await == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        refused,
        "the revoked key still worked a second after the CLI revoked it"
    );
}

#[tokio::test]
async fn routes_with_api_key_need_a_store() {
    let errors = portcullis_config::Config::from_toml(
        "[[upstream]]\nname = \"u\"\ntargets = [\"127.0.0.1:1\"]\n[[route]]\nname = \"r\"\npath = \"/\"\nupstream = \"u\"\nauth = [\"api_key\"]\n",
        std::path::Path::new("."),
    )
    .unwrap_err()
    .to_string();
    assert!(
        errors.contains("route[0].auth: \"api_key\" needs a [store]"),
        "{errors}"
    );
    let errors = portcullis_config::Config::from_toml(
        "[store]\nurl = \"sqlite://x.db\"\npepper = \"literally-my-pepper-value\"\n",
        std::path::Path::new("."),
    )
    .unwrap_err()
    .to_string();
    assert!(
        errors.contains("store.pepper: give a secret reference"),
        "{errors}"
    );
}

#[tokio::test]
async fn usage_is_counted_per_key_and_written_in_batches() {
    let (_a, gw, store) = gateway().await;
    let (id, reader) = key(&store, &["orders:read"]).await;
    let url = format!("{}/orders", gw.http);
    assert!(until_status(&client(), &url, &reader, 200).await);
    let c = client();
    for _ in 0..9 {
        assert_eq!(status_with_key(&c, &url, &reader).await, 200);
    }
    // The writer runs every 100 ms in tests; wait (bounded) for the batch.
    let written = poll_until(50, Duration::from_millis(50), async || {
        store.get_key(&id).await.unwrap().request_count >= 10
    })
    .await;
    let record = store.get_key(&id).await.unwrap();
    assert!(written, "usage never written: {}", record.request_count);
    assert_eq!(record.request_count, 10);
    assert!(record.last_used_at.is_some());
}

#[tokio::test]
async fn invalid_keys_are_counted_for_brute_force_detection() {
    let (_a, gw, _store) = gateway().await;
    let url = format!("{}/orders", gw.http);
    let c = client();
    for i in 0..12 {
        let guess = format!("pc_live_guess{i}");
        assert_eq!(
            c.get(&url)
                .header("x-api-key", guess)
                .send()
                .await
                .unwrap()
                .status(),
            401
        );
    }
    assert_eq!(status(&c, &url).await, 401);
    let metrics = metrics(&c, &gw).await;
    assert!(
        metrics.contains("portcullis_auth_failures_total{reason=\"invalid_credentials\"} 12"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_auth_failures_total{reason=\"missing_credentials\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_auth_failing_clients 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn query_string_keys_only_where_a_route_opts_in_and_never_forwarded() {
    let (_a, gw, store) = gateway().await;
    let (_, reader) = key(&store, &["orders:read"]).await;
    assert!(until_status(&client(), &format!("{}/me", gw.http), &reader, 200).await);
    let c = client();
    let response = c
        .get(format!(
            "{}/legacy?page=2&api_key={reader}&sort=asc",
            gw.http
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap();
    assert_eq!(
        echo["path"], "/legacy?page=2&sort=asc",
        "the key is removed before forwarding"
    );
    // Not accepted where the route did not opt in.
    let response = c
        .get(format!("{}/me?api_key={reader}", gw.http))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // And never written to the access log. One more request, and its line, so that the lines
    // of the requests above are there to read (an empty or unwritten log would prove nothing).
    assert_eq!(status(&c, format!("{}/public", gw.http)).await, 200);
    let path = gw.dir.path().join("access.log");
    let read = || std::fs::read_to_string(&path).unwrap_or_default();
    let logged = poll_until(100, Duration::from_millis(20), async || {
        read().contains("\"/public\"")
    })
    .await;
    let log = read();
    assert!(logged && log.contains("\"/legacy\""), "{log}");
    assert!(!log.contains(&reader));
}
