//! CPU cost of the rate-limit phase alone, per request: one local limit that allows, and one
//! that refuses (the 429 path, with its refund and headers).
//!
//! ```sh
//! cargo run --release -p portcullis-core --example ratelimit_cost
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use portcullis_config::Config;
use portcullis_core::{Chain, CredentialLookup, LimitState, NoCredentials, RequestCtx, Verdict};

fn chain(limit: &str, state: &Arc<LimitState>) -> Chain {
    let text = format!(
        "[[upstream]]\nname = \"u\"\ntargets = [\"127.0.0.1:1\"]\n[[route]]\nname = \"orders\"\npath = \"/\"\nupstream = \"u\"\nauth = [\"none\"]\ninspect = {{ mode = \"off\" }}\nlimit = {limit}\n"
    );
    let config = Config::from_toml(&text, Path::new(".")).unwrap();
    let none: Arc<dyn CredentialLookup> = Arc::new(NoCredentials);
    Chain::compile(&config.routes[0], &none, state)
}

/// The local limiter never awaits: one poll finishes a decision.
fn poll_once<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("the local limiter awaited"),
    }
}

fn measure(name: &str, chain: &Chain, clients: u32, expect_allowed: bool) {
    let (head, ()) = http::Request::new(()).into_parts();
    let n: u32 = 2_000_000;
    let mut allowed = 0u32;
    let start = Instant::now();
    for i in 0..n {
        let ip = IpAddr::from([10, 0, (i % clients / 256) as u8, (i % clients % 256) as u8]);
        let mut ctx = RequestCtx::new(String::new(), SocketAddr::new(ip, 1), ip, false);
        if poll_once(chain.run(&mut ctx, &head, b"")) == Verdict::Continue {
            allowed += 1;
        }
        std::hint::black_box(&ctx.limits.headers);
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(n);
    // The baseline: making the request context alone.
    let start = Instant::now();
    for i in 0..n {
        let ip = IpAddr::from([10, 0, (i % clients / 256) as u8, (i % clients % 256) as u8]);
        let ctx = RequestCtx::new(String::new(), SocketAddr::new(ip, 1), ip, false);
        std::hint::black_box(&ctx);
    }
    let base = start.elapsed().as_nanos() as f64 / f64::from(n);
    assert_eq!(
        allowed == n,
        expect_allowed,
        "{name}: {allowed} of {n} allowed"
    );
    println!(
        "{name:<44} {:>7.0} ns/request ({clients} clients, {allowed} of {n} allowed)",
        ns - base
    );
}

fn main() {
    let state = LimitState::for_tests();
    let allow = chain("{ rate = \"1000000000/s\", by = \"ip\" }", &state);
    measure("one local limit, allowed", &allow, 1, true);
    measure("one local limit, allowed", &allow, 10_000, true);
    let two = chain(
        "[{ rate = \"1000000000/s\", by = \"ip\" }, { rate = \"1000000000/h\", by = \"route\" }]",
        &state,
    );
    measure("two local limits, allowed", &two, 10_000, true);
    let refuse = chain("{ rate = \"1/h\", burst = 1, by = \"ip\" }", &state);
    measure("one local limit, refused (429 path)", &refuse, 1, false);
}
