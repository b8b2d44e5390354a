//! The Redis backend against real servers.
//!
//! Tests that use a shared Redis read `PORTCULLIS_TEST_REDIS_URL` (e.g.
//! `redis://127.0.0.1:6379`) and skip when it is unset; each run uses its own key prefix.
//! Failure tests start their own `redis-server` (skipped when it is not on `PATH`), kill or
//! stall it under load, and start it again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hash::{BuildHasher, RandomState};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use portcullis_limit::{
    FallbackMode, Gcra, Limiter, LimiterError, ManualClock, RedisConfig, Served, SystemClock,
};

const SECOND: u64 = 1_000_000_000;
/// Some time in 2023, in nanoseconds since the epoch.
const EPOCH_2023: u64 = 1_700_000_000 * SECOND;

fn gcra(rate: &str, burst: u64) -> Gcra {
    Gcra::new(rate.parse().unwrap(), burst)
}

fn shared_redis_url() -> Option<String> {
    match std::env::var("PORTCULLIS_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: PORTCULLIS_TEST_REDIS_URL is not set");
            None
        }
    }
}

/// A key prefix no other run or test shares.
fn unique_prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let random = RandomState::new().hash_one((nanos, std::process::id()));
    format!("portcullis-test:{random:016x}:{test}:")
}

fn config(url: &str, test: &str) -> RedisConfig {
    RedisConfig {
        url: url.to_owned(),
        timeout: Duration::from_millis(50),
        fallback: FallbackMode::Deny,
        key_prefix: unique_prefix(test),
        use_redis_time: true,
    }
}

async fn direct(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn pttl(connection: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query_async(connection)
        .await
        .unwrap()
}

#[test]
fn limiter_and_its_decisions_can_cross_threads() {
    fn shared<T: Send + Sync>() {}
    fn sendable<T: Send>(_: &T) {}
    shared::<Limiter>();
    let limiter = Limiter::redis(
        RedisConfig::new("redis://cache"),
        16,
        Arc::new(SystemClock::new()),
    )
    .unwrap();
    let limit = gcra("1/s", 1);
    sendable(&limiter.take("k", &limit));
    sendable(&limiter.refund("k", &limit, Served::Redis));
}

#[test]
fn malformed_url_is_refused_at_construction() {
    let build = |url: &str| {
        Limiter::redis(RedisConfig::new(url), 16, Arc::new(SystemClock::new())).map(|_| ())
    };
    let error = build("redis://cache:63x79").unwrap_err();
    assert_eq!(
        error,
        LimiterError::InvalidRedisUrl(
            "the port is not a number from 1 to 65535: use redis://[user:password@]host[:port][/db]"
                .to_owned()
        )
    );
    assert!(error.to_string().starts_with("invalid Redis URL: the port"));
    for (url, expected) in [
        ("localhost:6379", "invalid Redis URL: no scheme"),
        (
            "rediss://cache",
            "invalid Redis URL: TLS (rediss://) is not supported",
        ),
        (
            "redis://cache/zero",
            "invalid Redis URL: the database is not a number",
        ),
        (
            "redis://0.0.0.0:6379",
            "invalid Redis URL: 0.0.0.0 and :: are addresses to listen on",
        ),
    ] {
        let message = build(url).unwrap_err().to_string();
        assert!(message.starts_with(expected), "{url}: {message}");
    }
    let mut zero = RedisConfig::new("redis://cache");
    zero.timeout = Duration::ZERO;
    assert_eq!(
        Limiter::redis(zero, 16, Arc::new(SystemClock::new())).unwrap_err(),
        LimiterError::ZeroTimeout
    );
}

#[test]
fn construction_needs_no_runtime_and_a_failed_connect_is_a_backend_error() {
    // Nothing listens there: construction must still succeed, outside any runtime.
    let url = format!("redis://127.0.0.1:{}", free_port());
    let limiter =
        Limiter::redis(config(&url, "no-server"), 16, Arc::new(SystemClock::new())).unwrap();
    assert!(!limiter.in_fallback());
    assert_eq!(limiter.backend_errors(), 0);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let limit = gcra("10/s", 5);
    let decision = runtime.block_on(limiter.take("k", &limit));
    assert_eq!(decision.served, Served::FallbackDeny);
    assert!(!decision.outcome.allowed);
    assert_eq!(decision.outcome.retry_after, Duration::from_secs(1));
    assert!(limiter.in_fallback());
    assert_eq!(limiter.backend_errors(), 1);
    // In fallback, requests do not try Redis: no further error.
    for _ in 0..100 {
        runtime.block_on(limiter.take("k", &limit));
    }
    assert_eq!(limiter.backend_errors(), 1);
}

/// Sends `per_second` evenly spaced requests for `seconds` of the injected clock.
async fn drive(
    limiter: &Limiter,
    clock: &ManualClock,
    key: &str,
    limit: &Gcra,
    per_second: u64,
    seconds: u64,
) -> u64 {
    let mut allowed = 0;
    for i in 0..per_second * seconds {
        clock.set(EPOCH_2023 + i * SECOND / per_second);
        let decision = limiter.take(key, limit).await;
        assert_eq!(
            decision.served,
            Served::Redis,
            "{}",
            limiter.backend_errors()
        );
        if decision.outcome.allowed {
            allowed += 1;
        }
    }
    allowed
}

#[tokio::test]
async fn three_times_the_rate_gets_burst_plus_rate_times_t() {
    let Some(url) = shared_redis_url() else {
        return;
    };
    let clock = Arc::new(ManualClock::at(EPOCH_2023));
    let mut config = config(&url, "accuracy");
    config.use_redis_time = false;
    let limiter = Limiter::redis(config, 16, clock.clone()).unwrap();
    for (rate, burst, count) in [("100/s", 20, 100), ("10/s", 1, 10), ("7/s", 7, 7)] {
        let limit = gcra(rate, burst);
        for seconds in [1, 5, 30] {
            let key = format!("{rate}-{burst}-{seconds}");
            let allowed = drive(&limiter, &clock, &key, &limit, 3 * count, seconds).await;
            let expected = burst + count * seconds;
            assert!(
                allowed.abs_diff(expected) <= 1,
                "{rate} burst {burst} over {seconds}s: {allowed} allowed, expected {expected}"
            );
        }
    }
    assert_eq!(limiter.backend_errors(), 0);
}

#[tokio::test]
async fn retry_after_is_honest_to_the_microsecond() {
    let Some(url) = shared_redis_url() else {
        return;
    };
    let clock = Arc::new(ManualClock::at(0));
    let mut config = config(&url, "retry-after");
    config.use_redis_time = false;
    let limiter = Limiter::redis(config, 16, clock.clone()).unwrap();
    let limit = gcra("3/s", 5);
    // Whole microseconds and a time between two of them.
    for (key, now) in [
        ("aligned", EPOCH_2023),
        ("unaligned", EPOCH_2023 + 123_456_789),
    ] {
        clock.set(now);
        for left in (0..5).rev() {
            let decision = limiter.take(key, &limit).await;
            assert_eq!(decision.served, Served::Redis);
            assert!(decision.outcome.allowed);
            assert_eq!(decision.outcome.remaining, left);
        }
        let refused = limiter.take(key, &limit).await.outcome;
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_micros(333_333));
        let wait = u64::try_from(refused.retry_after.as_nanos()).unwrap();
        // One microsecond too early: still refused, and refusing changes nothing.
        clock.set(now + wait - 1_000);
        let early = limiter.take(key, &limit).await.outcome;
        assert!(!early.allowed, "{key}");
        assert_eq!(early.retry_after, Duration::from_micros(1));
        // Exactly the wait it was told: allowed.
        clock.set(now + wait);
        assert!(limiter.take(key, &limit).await.outcome.allowed, "{key}");
    }
}

#[tokio::test]
async fn the_bucket_holds_microseconds_of_the_chosen_clock() {
    let Some(url) = shared_redis_url() else {
        return;
    };
    let mut direct = direct(&url).await;
    let limit = gcra("10/s", 5);
    // The limiter's clock.
    let mut injected = config(&url, "clock");
    injected.use_redis_time = false;
    let prefix = injected.key_prefix.clone();
    let limiter =
        Limiter::redis(injected, 16, Arc::new(ManualClock::at(EPOCH_2023 + 999))).unwrap();
    limiter.take("k", &limit).await;
    let tat: u64 = redis::cmd("GET")
        .arg(format!("{prefix}k"))
        .query_async(&mut direct)
        .await
        .unwrap();
    assert_eq!(tat, EPOCH_2023 / 1_000 + 100_000);

    // Redis's clock, whatever the limiter's says (1970 here).
    let shared = config(&url, "clock");
    let prefix = shared.key_prefix.clone();
    let limiter = Limiter::redis(shared, 16, Arc::new(ManualClock::at(0))).unwrap();
    limiter.take("k", &limit).await;
    let tat: u64 = redis::cmd("GET")
        .arg(format!("{prefix}k"))
        .query_async(&mut direct)
        .await
        .unwrap();
    let (seconds, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut direct).await.unwrap();
    let redis_now = seconds * 1_000_000 + micros;
    assert!(
        tat.abs_diff(redis_now + 100_000) < 5_000_000,
        "TAT {tat}, Redis time {redis_now}"
    );
}

#[tokio::test]
async fn every_key_carries_a_ttl_until_the_bucket_is_full() {
    let Some(url) = shared_redis_url() else {
        return;
    };
    let mut direct = direct(&url).await;
    let config = config(&url, "ttl");
    let prefix = config.key_prefix.clone();
    let limiter = Limiter::redis(config, 16, Arc::new(SystemClock::new())).unwrap();

    let hourly = gcra("1/h", 3);
    for _ in 0..3 {
        assert!(limiter.take("hourly", &hourly).await.outcome.allowed);
    }
    let refused = limiter.take("hourly", &hourly).await;
    assert_eq!(refused.served, Served::Redis);
    assert!(!refused.outcome.allowed);
    // Full again three hours after the first request.
    let ttl = pttl(&mut direct, &format!("{prefix}hourly")).await;
    assert!(
        (3 * 3_600_000 - 60_000..=3 * 3_600_000).contains(&ttl),
        "PTTL {ttl}"
    );

    let fast = gcra("10/s", 5);
    limiter.take("fast", &fast).await;
    let ttl = pttl(&mut direct, &format!("{prefix}fast")).await;
    assert!((1..=100).contains(&ttl), "PTTL {ttl}");
    // Not three hours of litter in the shared Redis.
    let _: () = redis::cmd("DEL")
        .arg(format!("{prefix}hourly"))
        .query_async(&mut direct)
        .await
        .unwrap();
}

#[tokio::test]
async fn refund_gives_back_one_request_in_the_background() {
    let Some(url) = shared_redis_url() else {
        return;
    };
    let clock = Arc::new(ManualClock::at(EPOCH_2023));
    let mut config = config(&url, "refund");
    config.use_redis_time = false;
    let prefix = config.key_prefix.clone();
    let limiter = Limiter::redis(config, 16, clock.clone()).unwrap();
    let limit = gcra("1/m", 2);
    let mut direct = direct(&url).await;

    for _ in 0..2 {
        assert!(limiter.take("k", &limit).await.outcome.allowed);
    }
    assert!(!limiter.take("k", &limit).await.outcome.allowed);
    limiter.refund("k", &limit, Served::Redis);
    // The refund runs in a spawned task: wait for the bucket to move back one interval.
    let key = format!("{prefix}k");
    let expected = EPOCH_2023 / 1_000 + 60_000_000;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let tat: u64 = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut direct)
            .await
            .unwrap();
        if tat == expected {
            break;
        }
        assert!(Instant::now() < deadline, "TAT {tat}, expected {expected}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let again = limiter.take("k", &limit).await;
    assert_eq!(again.served, Served::Redis);
    assert!(again.outcome.allowed);
    assert!(!limiter.take("k", &limit).await.outcome.allowed);

    // Refunding an untouched bucket leaves no key behind.
    limiter.refund("untouched", &limit, Served::Redis);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(pttl(&mut direct, &format!("{prefix}untouched")).await, -2);
    assert_eq!(limiter.backend_errors(), 0);
}

#[test]
fn thread_per_core_runtimes_share_one_limiter() {
    let Some(url) = shared_redis_url() else {
        return;
    };
    let config = config(&url, "threads");
    let key = format!("{}shared", config.key_prefix);
    let limiter = Arc::new(Limiter::redis(config, 16, Arc::new(SystemClock::new())).unwrap());
    let limit = gcra("1/h", 100);
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let limiter = Arc::clone(&limiter);
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    let mut allowed = 0;
                    for _ in 0..50 {
                        let decision = limiter.take("shared", &limit).await;
                        assert_eq!(decision.served, Served::Redis);
                        allowed += u64::from(decision.outcome.allowed);
                    }
                    allowed
                })
            })
        })
        .collect();
    let allowed: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(allowed, 100);
    assert_eq!(limiter.backend_errors(), 0);
    // Not a hundred hours of litter in the shared Redis.
    let mut direct = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("DEL").arg(key).query(&mut direct).unwrap();
}

// ---- Failure: a redis-server of our own, killed or stalled under load. ----

fn redis_server_binary() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("redis-server"))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        eprintln!("skipped: redis-server is not on PATH");
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A redis-server child, killed when dropped.
struct RedisServer {
    child: Child,
}

impl RedisServer {
    fn start(binary: &Path, port: u16) -> RedisServer {
        let child = Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .current_dir(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        RedisServer { child }
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGSTOP or SIGCONT to this child: it keeps its sockets but stops answering.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} failed");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const TIMEOUT: Duration = Duration::from_millis(50);
/// Scheduling slack on a busy machine: a correctness bound, not a benchmark.
const SLACK: Duration = Duration::from_millis(200);

/// Worker threads, each with its own current-thread runtime (as in the gateway), sending
/// requests until told to stop. Each returns every call's duration and who decided.
struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<std::thread::JoinHandle<Vec<(Duration, Served)>>>,
}

impl Load {
    fn start(limiter: &Arc<Limiter>, threads: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..threads)
            .map(|worker| {
                let limiter = Arc::clone(limiter);
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    runtime.block_on(async {
                        let limit = gcra("100000/s", 1000);
                        let key = format!("worker-{worker}");
                        let mut seen = Vec::new();
                        while !stop.load(Ordering::Relaxed) {
                            let started = Instant::now();
                            let decision = limiter.take(&key, &limit).await;
                            seen.push((started.elapsed(), decision.served));
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        seen
                    })
                })
            })
            .collect();
        Load { stop, workers }
    }

    fn finish(self) -> Vec<(Duration, Served)> {
        self.stop.store(true, Ordering::Relaxed);
        self.workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap())
            .collect()
    }
}

/// Takes from the main task, asserting the call returns in time.
async fn timed_take(limiter: &Limiter, key: &str, limit: &Gcra) -> portcullis_limit::Decision {
    let started = Instant::now();
    let decision = limiter.take(key, limit).await;
    let elapsed = started.elapsed();
    assert!(elapsed < TIMEOUT + SLACK, "a decision took {elapsed:?}");
    decision
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "waited 5 s for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Checks the fallback's decisions while Redis is down, from the main task.
async fn assert_fallback_decides(limiter: &Limiter, mode: FallbackMode) {
    match mode {
        FallbackMode::Local => {
            // The in-process buckets enforce the limit on their own.
            let limit = gcra("1/m", 3);
            let mut allowed = 0;
            for _ in 0..5 {
                let decision = timed_take(limiter, "fallback", &limit).await;
                assert_eq!(decision.served, Served::FallbackLocal);
                allowed += u64::from(decision.outcome.allowed);
            }
            assert_eq!(allowed, 3);
        }
        FallbackMode::Allow => {
            let limit = gcra("1/m", 3);
            for _ in 0..5 {
                let decision = timed_take(limiter, "fallback", &limit).await;
                assert_eq!(decision.served, Served::FallbackAllow);
                assert!(decision.outcome.allowed);
                assert_eq!(decision.outcome.remaining, 3);
            }
        }
        FallbackMode::Deny => {
            let decision = timed_take(limiter, "fallback", &gcra("1/m", 3)).await;
            assert_eq!(decision.served, Served::FallbackDeny);
            assert!(!decision.outcome.allowed);
            assert_eq!(decision.outcome.retry_after, Duration::from_secs(1));
        }
    }
}

fn expected_fallback(mode: FallbackMode) -> Served {
    match mode {
        FallbackMode::Local => Served::FallbackLocal,
        FallbackMode::Allow => Served::FallbackAllow,
        FallbackMode::Deny => Served::FallbackDeny,
    }
}

/// How Redis goes away in a failure test.
#[derive(Debug, Clone, Copy)]
enum Outage {
    /// SIGKILL, then a new server on the same port: calls fail at once.
    Killed,
    /// SIGSTOP, then SIGCONT: calls get no answer and must time out.
    Stalled,
}

async fn outage_under_load(mode: FallbackMode, outage: Outage) {
    let Some(binary) = redis_server_binary() else {
        return;
    };
    let port = free_port();
    let mut server = RedisServer::start(&binary, port);
    let url = format!("redis://127.0.0.1:{port}");
    let config = RedisConfig {
        timeout: TIMEOUT,
        fallback: mode,
        ..config(&url, "outage")
    };
    let limiter = Arc::new(Limiter::redis(config, 1000, Arc::new(SystemClock::new())).unwrap());
    let limit = gcra("100000/s", 1000);
    assert_eq!(
        timed_take(&limiter, "main", &limit).await.served,
        Served::Redis
    );

    let load = Load::start(&limiter, 3);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!limiter.in_fallback());
    match outage {
        Outage::Killed => server.kill(),
        Outage::Stalled => server.signal("-STOP"),
    }
    wait_for("the fallback", || limiter.in_fallback()).await;
    // Long enough for a few failed probes.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(limiter.in_fallback());
    assert!(limiter.backend_errors() > 0);
    assert_fallback_decides(&limiter, mode).await;

    match outage {
        Outage::Killed => server = RedisServer::start(&binary, port),
        Outage::Stalled => server.signal("-CONT"),
    }
    wait_for("Redis to decide again", || !limiter.in_fallback()).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while timed_take(&limiter, "main", &limit).await.served != Served::Redis {
        assert!(Instant::now() < deadline, "Redis never decided again");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Let every worker reconnect and be served by Redis once more.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = load.finish();
    drop(server);

    let slowest = seen.iter().map(|(elapsed, _)| *elapsed).max().unwrap();
    assert!(slowest < TIMEOUT + SLACK, "a decision took {slowest:?}");
    let count = |served: Served| seen.iter().filter(|(_, s)| *s == served).count();
    let fallback = count(expected_fallback(mode));
    assert!(count(Served::Redis) > 0);
    assert!(fallback > 100, "{fallback} fallback decisions");
    assert_eq!(
        count(Served::Redis) + fallback,
        seen.len(),
        "another kind of decision"
    );
    // In fallback, requests went straight to it: only the calls in flight at the outage
    // and the probes (one per 250 ms at most) failed.
    let errors = limiter.backend_errors();
    assert!(
        errors < 30,
        "{errors} backend errors for {fallback} fallback decisions"
    );
    assert!(!limiter.in_fallback());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_load_falls_back_to_local_buckets_then_recovers() {
    outage_under_load(FallbackMode::Local, Outage::Killed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_load_falls_back_to_deny_then_recovers() {
    outage_under_load(FallbackMode::Deny, Outage::Killed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_load_falls_back_to_allow_then_recovers() {
    outage_under_load(FallbackMode::Allow, Outage::Killed).await;
}

#[tokio::test]
async fn stalled_redis_times_out_into_the_fallback_then_recovers() {
    outage_under_load(FallbackMode::Local, Outage::Stalled).await;
}
