//! The Redis limit backend through real gateways: several processes sharing one limit, and a
//! Redis that dies under load. Skipped (with the reason printed) when
//! `PORTCULLIS_TEST_REDIS_URL` is not set or `redis-server` is not on `PATH`; `.ci/run` sets it.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;

fn redis_url() -> Option<String> {
    let url = std::env::var("PORTCULLIS_TEST_REDIS_URL").ok();
    if url.is_none() {
        eprintln!("skipped: PORTCULLIS_TEST_REDIS_URL is not set");
    }
    url
}

/// Three `portcullis serve` processes, one limit of 50/s (burst 10) on one Redis, 150 requests a
/// second spread over them for 10 s: together they allow `burst + rate × t`, within 2%.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_sharing_redis_enforce_one_combined_limit() {
    let Some(url) = redis_url() else { return };
    let upstream = Upstream::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    // A route name of its own: bucket keys carry it, so runs never share a bucket.
    let route = format!("shared{}", rand_suffix());
    let (rate, burst) = (50.0_f64, 10.0_f64);
    let config = format!(
        "[gateway]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n[admin]\nlisten = \"127.0.0.1:0\"\n[log]\naccess = \"off\"\n[limits]\nbackend = \"{url}\"\ntimeout = \"200ms\"\n{}{}",
        upstream_block("a", &[upstream.addr], ""),
        route_block(&route, "/orders", "a", "limit = { rate = \"50/s\", burst = 10, by = \"route\" }"),
    );
    let path = dir.path().join("gw.toml");
    std::fs::write(&path, config).unwrap();
    let processes: Vec<Served> = (0..3)
        .map(|_| tokio::task::block_in_place(|| Served::start(&path)))
        .collect();
    let gateways: Vec<String> = processes.iter().map(|p| p.gateway.clone()).collect();

    let allowed = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let load = Duration::from_secs(10);
    let mut tasks = Vec::new();
    for gateway in gateways.clone() {
        let (allowed, refused) = (Arc::clone(&allowed), Arc::clone(&refused));
        tasks.push(tokio::spawn(async move {
            let c = client();
            // 50 a second from each of three clients: three times the limit.
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let mut last = start;
            while start.elapsed() < load {
                tick.tick().await;
                last = Instant::now();
                let status = c
                    .get(format!("{gateway}/orders"))
                    .send()
                    .await
                    .unwrap()
                    .status();
                match status.as_u16() {
                    200 => allowed.fetch_add(1, Ordering::Relaxed),
                    429 => refused.fetch_add(1, Ordering::Relaxed),
                    other => panic!("unexpected status {other}"),
                };
            }
            last
        }));
    }
    let mut last = start;
    for task in tasks {
        last = last.max(task.await.unwrap());
    }
    let t = last.duration_since(start).as_secs_f64();
    let allowed = allowed.load(Ordering::Relaxed) as f64;
    let expected = burst + rate * t;
    let refused = refused.load(Ordering::Relaxed);
    eprintln!("3 gateways, {t:.2} s: {allowed} allowed, {refused} refused, expected {expected:.1}");
    assert!(
        (allowed - expected).abs() <= expected * 0.02,
        "{allowed} allowed over {t:.2} s; one shared limit allows {expected:.1} (±2%)"
    );
    // Each gateway alone would have let about three times as many through.
    assert!(refused as f64 > allowed, "{refused} refused");
}

fn rand_suffix() -> u32 {
    use std::hash::{BuildHasher, RandomState};
    (RandomState::new().hash_one(Instant::now()) & 0xffff_ffff) as u32
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_redis(port: u16) -> Option<Process> {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(child) = child else {
        eprintln!("skipped: redis-server is not on PATH");
        return None;
    };
    for _ in 0..500 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(Process(child));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("redis-server did not start on port {port}");
}

/// The value of one metric line; a missing line fails the test rather than reading as 0.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
}

/// Redis killed under load: requests keep being answered without waiting past the timeout,
/// the local fallback engages (and says so in metrics), and Redis is used again once it is
/// back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_load_falls_back_and_recovers() {
    if redis_url().is_none() {
        return;
    }
    let port = free_port();
    let Some(redis) = start_redis(port) else {
        return;
    };
    let (_upstream, gw) = echo_gateway_with(
        "",
        &[("r", "/orders", "limit = { rate = \"1000/s\", by = \"ip\" }")],
        &format!(
            "[limits]\nbackend = \"redis://127.0.0.1:{port}\"\ntimeout = \"50ms\"\non_backend_error = \"local\"\n"
        ),
    )
    .await;
    let c = client();
    let url = format!("{}/orders", gw.http);
    let mut worst = Duration::ZERO;
    let run = |n: usize| {
        let c = c.clone();
        let url = url.clone();
        async move {
            let mut worst = Duration::ZERO;
            for _ in 0..n {
                let sent = Instant::now();
                let response = c.get(&url).send().await.unwrap();
                assert_eq!(response.status(), 200);
                worst = worst.max(sent.elapsed());
            }
            worst
        }
    };
    run(50).await;
    let text = metrics(&c, &gw).await;
    assert!(
        metric(&text, "portcullis_rate_limit_decisions_total{route=\"r\",outcome=\"allowed\",backend=\"redis\"}") >= 50.0,
        "{text}"
    );

    drop(redis);
    worst = worst.max(run(100).await);
    let text = metrics(&c, &gw).await;
    assert_eq!(
        metric(&text, "portcullis_rate_limit_fallback"),
        1.0,
        "{text}"
    );
    assert!(
        metric(&text, "portcullis_rate_limit_backend_errors_total") >= 1.0,
        "{text}"
    );
    assert!(
        metric(&text, "portcullis_rate_limit_decisions_total{route=\"r\",outcome=\"allowed\",backend=\"fallback_local\"}") >= 99.0,
        "{text}"
    );
    // The configured timeout is 50 ms; the slack covers the rest of the request on a busy
    // machine. A request that waited on a dead Redis's TCP timeout would take seconds.
    assert!(
        worst < Duration::from_millis(1000),
        "a request waited {worst:?}"
    );

    let _redis = start_redis(port).unwrap();
    let back = poll_until(100, Duration::from_millis(50), async || {
        run(5).await;
        metric(&metrics(&c, &gw).await, "portcullis_rate_limit_fallback") == 0.0
    })
    .await;
    assert!(back, "the limiter never went back to Redis");
    let before = metric(
        &metrics(&c, &gw).await,
        "portcullis_rate_limit_decisions_total{route=\"r\",outcome=\"allowed\",backend=\"redis\"}",
    );
    run(10).await;
    let after = metric(
        &metrics(&c, &gw).await,
        "portcullis_rate_limit_decisions_total{route=\"r\",outcome=\"allowed\",backend=\"redis\"}",
    );
    assert_eq!(after - before, 10.0);
    gw.shutdown().await;
}
