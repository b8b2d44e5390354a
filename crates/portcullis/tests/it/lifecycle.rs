//! Reload and graceful shutdown, in process.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// Upstreams "a" and "b", and their config blocks.
async fn two_upstreams() -> (Upstream, Upstream, String) {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let ups = [
        upstream_block("a", &[a.addr], ""),
        upstream_block("b", &[b.addr], ""),
    ]
    .concat();
    (a, b, ups)
}

#[tokio::test]
async fn reload_swaps_a_valid_config_and_refuses_an_invalid_one() {
    let (_a, _b, ups) = two_upstreams().await;
    let gw = TestGateway::start("", &format!("{ups}{}", route_block("r", "/", "a", ""))).await;
    let c = client();
    let echo: Value = get_json(&c, format!("{}/x", gw.http)).await;
    assert_eq!(echo["upstream"], "a");

    gw.rewrite("", &format!("{ups}{}", route_block("r", "/", "b", "")));
    let response = gw.reload().await;
    assert_eq!(response.status(), 200);
    let echo: Value = get_json(&c, format!("{}/x", gw.http)).await;
    assert_eq!(echo["upstream"], "b");

    // Invalid: every error comes back with its path; the old config keeps serving.
    gw.rewrite(
        "",
        &format!(
            "{ups}{}{}",
            route_block("r", "/", "nope", ""),
            "[[route]]\nname = \"x\"\npath = \"/y\"\nupstream = \"a\"\n"
        ),
    );
    let response = gw.reload().await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_config");
    let details = body["error"]["details"].as_array().unwrap();
    assert_eq!(details.len(), 2, "{details:?}");
    assert_eq!(details[0]["path"], "route[0].upstream");
    assert_eq!(details[1]["path"], "route[1].auth");
    let echo: Value = get_json(&c, format!("{}/x", gw.http)).await;
    assert_eq!(echo["upstream"], "b");

    // Listener addresses cannot move on reload.
    std::fs::write(
        &gw.config_path,
        format!(
            "[gateway]\nlisten = [\"127.0.0.1:1\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n{ups}{}",
            route_block("r", "/", "a", "")
        ),
    )
    .unwrap();
    let response = gw.reload().await;
    assert_eq!(response.status(), 422);
    let metrics = metrics(&c, &gw).await;
    assert!(
        metrics.contains("portcullis_config_reloads_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_config_reloads_total{result=\"error\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn reload_under_load_drops_no_request() {
    let (a, b, ups) = two_upstreams().await;
    let gw = TestGateway::start("", &format!("{ups}{}", route_block("r", "/", "a", ""))).await;
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for i in 0..8 {
        let (stop, ok, failed) = (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failed));
        let url = format!(
            "{}/{}",
            gw.http,
            if i % 2 == 0 { "slow/20" } else { "fast" }
        );
        let c = if i % 4 == 3 {
            reqwest::Client::builder()
                .no_proxy()
                .http2_prior_knowledge()
                .build()
                .unwrap()
        } else {
            client()
        };
        workers.push(tokio::spawn(async move {
            // Bounded: at most 2000 requests per worker.
            for _ in 0..2000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match c.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for round in 0..20 {
        let target = if round % 2 == 0 { "b" } else { "a" };
        gw.rewrite("", &format!("{ups}{}", route_block("r", "/", target, "")));
        assert_eq!(gw.reload().await.status(), 200);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(ok.load(Ordering::Relaxed) > 50);
    assert!(a.requests.load(Ordering::SeqCst) > 0 && b.requests.load(Ordering::SeqCst) > 0);
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests() {
    let (_a, gw) = echo_gateway("drain_timeout = \"10s\"", &[("r", "/", "")]).await;
    let url = format!("{}/slow/500", gw.http);
    let addr = gw.addr();
    let in_flight = tokio::spawn(async move { client().get(url).send().await.unwrap().status() });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let gateway = Arc::clone(&gw.gateway);
    let shutdown = tokio::spawn(gw.shutdown());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(gateway.is_draining());
    // New connections are refused once draining.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    assert_eq!(in_flight.await.unwrap(), 200);
    shutdown.await.unwrap();
}
