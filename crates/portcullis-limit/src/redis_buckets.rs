//! GCRA buckets in Redis, shared by every gateway using the same server.
//!
//! One Lua script per decision (`gcra.lua`, the arithmetic of [`Gcra`] in microseconds), one
//! key per bucket (so Redis Cluster works), every key expiring when its bucket is full again.
//!
//! The gateway runs one current-thread runtime per worker thread, and a multiplexed
//! connection is driven by a task on the runtime that opened it: a connection opened on one
//! thread stalls when awaited from another. So each thread opens its own connection, lazily,
//! on its own runtime, and drops it when a call on it fails.
//!
//! When a call fails or outlasts the timeout, the buckets go into fallback: from then on no
//! request tries Redis, so none waits on it. A request that finds the next probe due spawns
//! one background probe (at most one per [`PROBE_INTERVAL`]) and does not wait for it; the
//! first probe Redis answers ends the fallback.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Script};
use tokio::runtime::Handle;
use tokio::sync::OnceCell;

use crate::gcra::{Gcra, Outcome};
use crate::limiter::{FallbackMode, LimiterError};

const SCRIPT: &str = include_str!("gcra.lua");

/// Ids of [`RedisBuckets`], for the threads' [`SLOTS`].
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's connection to each Redis backend, with the generation it was opened in.
    static SLOTS: RefCell<HashMap<u64, (u64, Slot)>> = RefCell::new(HashMap::new());
}

/// Least time between two probes of a failing Redis (more when the timeout is longer).
pub const PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// Largest integer a Lua number (a double) holds exactly.
const LUA_MAX_EXACT: u64 = 1 << 53;

/// How to reach Redis, how long to wait for it, and what decides when it fails.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[user:password@]host[:port][/db]`. Never printed whole: `Debug` and logs
    /// hide the user and password.
    pub url: String,
    /// Longest a decision waits for Redis, connecting included; past it the fallback decides.
    pub timeout: Duration,
    /// What decides while Redis is failing.
    pub fallback: FallbackMode,
    /// Put before every bucket key, to share a Redis with other data or other gateways.
    pub key_prefix: String,
    /// Judge requests by Redis's clock (`TIME`), one clock for every gateway; when false, by
    /// the limiter's clock (for tests with a [`ManualClock`](crate::ManualClock)).
    pub use_redis_time: bool,
}

impl RedisConfig {
    /// A config for `url` with a 50 ms timeout, the local fallback, the key prefix
    /// `portcullis:limit:` and Redis's clock.
    pub fn new(url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            timeout: Duration::from_millis(50),
            fallback: FallbackMode::Local,
            key_prefix: "portcullis:limit:".to_owned(),
            use_redis_time: true,
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact(&self.url))
            .field("timeout", &self.timeout)
            .field("fallback", &self.fallback)
            .field("key_prefix", &self.key_prefix)
            .field("use_redis_time", &self.use_redis_time)
            .finish()
    }
}

/// One thread's connection, opened by the first request that needs it.
type Slot = Arc<OnceCell<MultiplexedConnection>>;

#[derive(Debug, Clone, Copy)]
enum Mode {
    Take,
    Refund,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Take => "take",
            Mode::Refund => "refund",
        }
    }
}

/// Why a call to Redis gave no answer.
#[derive(Debug)]
enum Failure {
    Redis(redis::RedisError),
    Timeout(Duration),
    NoRuntime,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Redis(error) => write!(f, "{error}"),
            Failure::Timeout(timeout) => write!(f, "no answer within {timeout:?}"),
            Failure::NoRuntime => f.write_str("called outside a tokio runtime"),
        }
    }
}

/// Buckets in Redis, with the fallback state.
pub(crate) struct RedisBuckets {
    client: Client,
    connection_config: AsyncConnectionConfig,
    script: Script,
    /// The URL without user or password, for logs.
    shown_url: String,
    timeout: Duration,
    fallback: FallbackMode,
    key_prefix: String,
    use_redis_time: bool,
    /// Tells this backend's connections apart in the threads' [`SLOTS`].
    id: u64,
    /// Bumped when the fallback starts: every thread's connection from before is dropped on
    /// its next use.
    generation: AtomicU64,
    in_fallback: AtomicBool,
    errors: AtomicU64,
    started: Instant,
    /// Milliseconds after `started` before which no probe starts.
    next_probe_ms: AtomicU64,
}

impl fmt::Debug for RedisBuckets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBuckets")
            .field("url", &self.shown_url)
            .field("timeout", &self.timeout)
            .field("fallback", &self.fallback)
            .field("key_prefix", &self.key_prefix)
            .field("use_redis_time", &self.use_redis_time)
            .field("in_fallback", &self.in_fallback())
            .field("errors", &self.errors())
            .finish_non_exhaustive()
    }
}

impl RedisBuckets {
    /// Checks the config; connects nothing (no runtime needed).
    pub(crate) fn new(config: RedisConfig) -> Result<RedisBuckets, LimiterError> {
        check_url(&config.url).map_err(LimiterError::InvalidRedisUrl)?;
        if config.timeout.is_zero() {
            return Err(LimiterError::ZeroTimeout);
        }
        // `Client::open` only parses; it is the last word on what it accepts.
        let client = Client::open(config.url.as_str())
            .map_err(|error| LimiterError::InvalidRedisUrl(error.to_string()))?;
        let connection_config = AsyncConnectionConfig::new()
            .set_connection_timeout(config.timeout)
            .set_response_timeout(config.timeout);
        Ok(RedisBuckets {
            client,
            connection_config,
            script: Script::new(SCRIPT),
            shown_url: redact(&config.url),
            timeout: config.timeout,
            fallback: config.fallback,
            key_prefix: config.key_prefix,
            use_redis_time: config.use_redis_time,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
            in_fallback: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            started: Instant::now(),
            next_probe_ms: AtomicU64::new(0),
        })
    }

    pub(crate) fn fallback(&self) -> FallbackMode {
        self.fallback
    }

    pub(crate) fn in_fallback(&self) -> bool {
        self.in_fallback.load(Ordering::Acquire)
    }

    pub(crate) fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Takes one request from `key`'s bucket; `None` when Redis is failing and the fallback
    /// must decide. Waits at most the timeout, and not at all while in fallback.
    pub(crate) async fn take(
        self: &Arc<Self>,
        key: &str,
        limit: &Gcra,
        now_ns: u64,
    ) -> Option<Outcome> {
        if self.in_fallback() {
            self.maybe_probe();
            return None;
        }
        match self.call(key, limit, Mode::Take, now_ns).await {
            Ok(outcome) => Some(outcome),
            Err(failure) => {
                self.enter_fallback(&failure);
                None
            }
        }
    }

    /// Gives back one request, in a background task: the request never waits for it. A
    /// failure is only counted (a lost refund costs one request, not a decision).
    pub(crate) fn refund_in_background(self: &Arc<Self>, key: &str, limit: &Gcra, now_ns: u64) {
        if self.in_fallback() {
            return;
        }
        let Ok(runtime) = Handle::try_current() else {
            self.errors.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let buckets = Arc::clone(self);
        let key = key.to_owned();
        let limit = *limit;
        runtime.spawn(async move {
            if let Err(failure) = buckets.call(&key, &limit, Mode::Refund, now_ns).await {
                tracing::debug!(backend = %buckets.shown_url, error = %failure, "rate-limit refund lost");
            }
        });
    }

    /// One script call on this thread's connection, bounded by the timeout as a whole
    /// (connecting, loading the script and running it). Counts and forgets on failure.
    async fn call(
        &self,
        key: &str,
        limit: &Gcra,
        mode: Mode,
        now_ns: u64,
    ) -> Result<Outcome, Failure> {
        if Handle::try_current().is_err() {
            self.errors.fetch_add(1, Ordering::Relaxed);
            return Err(Failure::NoRuntime);
        }
        let slot = self.slot();
        let now_us = if self.use_redis_time {
            String::new()
        } else {
            (now_ns / 1_000).to_string()
        };
        let answer = tokio::time::timeout(self.timeout, async {
            let mut connection = slot.get_or_try_init(|| self.connect()).await?.clone();
            let mut invocation = self.script.key(format!("{}{key}", self.key_prefix));
            let interval_us = micros(limit.interval_ns).max(1);
            // Whole intervals in microseconds, as the nanosecond bucket has whole intervals.
            let tolerance_us = micros(limit.tolerance_ns)
                .min(interval_us.saturating_mul(limit.burst.saturating_sub(1)));
            invocation
                .arg(interval_us)
                .arg(tolerance_us)
                .arg(limit.burst.clamp(1, LUA_MAX_EXACT))
                .arg(now_us)
                .arg(mode.as_str());
            invocation
                .invoke_async::<(i64, i64, i64, i64)>(&mut connection)
                .await
        })
        .await;
        match answer {
            Ok(Ok(reply)) => Ok(outcome(reply)),
            Ok(Err(error)) => Err(self.failed(&slot, Failure::Redis(error))),
            Err(_) => Err(self.failed(&slot, Failure::Timeout(self.timeout))),
        }
    }

    fn connect(
        &self,
    ) -> impl std::future::Future<Output = redis::RedisResult<MultiplexedConnection>> + Send + '_
    {
        self.client
            .get_multiplexed_async_connection_with_config(&self.connection_config)
    }

    /// This thread's connection slot: thread-local, so a decision takes no lock shared
    /// with the other workers. A slot from before the last fallback is replaced.
    fn slot(&self) -> Slot {
        let generation = self.generation.load(Ordering::Acquire);
        SLOTS.with(|slots| {
            let mut slots = slots.borrow_mut();
            let entry = slots
                .entry(self.id)
                .or_insert_with(|| (generation, Slot::default()));
            if entry.0 != generation {
                *entry = (generation, Slot::default());
            }
            Arc::clone(&entry.1)
        })
    }

    /// Counts a failure and drops the connection it happened on, unless another request
    /// already replaced it.
    fn failed(&self, slot: &Slot, failure: Failure) -> Failure {
        self.errors.fetch_add(1, Ordering::Relaxed);
        SLOTS.with(|slots| {
            let mut slots = slots.borrow_mut();
            if slots
                .get(&self.id)
                .is_some_and(|(_, current)| Arc::ptr_eq(current, slot))
            {
                slots.remove(&self.id);
            }
        });
        failure
    }

    fn enter_fallback(&self, failure: &Failure) {
        if self.in_fallback() {
            return;
        }
        // Before the flag, so no request sees the flag with a probe already due.
        self.next_probe_ms.store(
            self.elapsed_ms() + self.probe_interval_ms(),
            Ordering::Release,
        );
        if self
            .in_fallback
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // A failure on one thread's connection usually means all of them are broken
            // (Redis restarted): drop them all rather than fail once more per thread after
            // the recovery.
            self.generation.fetch_add(1, Ordering::AcqRel);
            tracing::warn!(
                backend = %self.shown_url,
                error = %failure,
                fallback = ?self.fallback,
                "rate-limit backend failing: the fallback decides until it answers again"
            );
        }
    }

    /// Starts a background probe when one is due and no other request started it first.
    fn maybe_probe(self: &Arc<Self>) {
        let now = self.elapsed_ms();
        let due = self.next_probe_ms.load(Ordering::Acquire);
        if now < due
            || self
                .next_probe_ms
                .compare_exchange(
                    due,
                    now + self.probe_interval_ms(),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        let Ok(runtime) = Handle::try_current() else {
            return;
        };
        let buckets = Arc::clone(self);
        runtime.spawn(async move { buckets.probe().await });
    }

    /// PINGs Redis on a fresh connection of this thread; ends the fallback when it answers.
    async fn probe(&self) {
        let slot = self.slot();
        let answer = tokio::time::timeout(self.timeout, async {
            let mut connection = slot.get_or_try_init(|| self.connect()).await?.clone();
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
        })
        .await;
        let failure = match answer {
            Ok(Ok(_)) => {
                if self
                    .in_fallback
                    .compare_exchange(true, false, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    tracing::info!(
                        backend = %self.shown_url,
                        "rate-limit backend answers again: Redis decides"
                    );
                }
                return;
            }
            Ok(Err(error)) => Failure::Redis(error),
            Err(_) => Failure::Timeout(self.timeout),
        };
        let failure = self.failed(&slot, failure);
        tracing::debug!(backend = %self.shown_url, error = %failure, "rate-limit backend probe failed");
    }

    fn probe_interval_ms(&self) -> u64 {
        millis(PROBE_INTERVAL.max(self.timeout))
    }

    fn elapsed_ms(&self) -> u64 {
        millis(self.started.elapsed())
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Nanoseconds to whole microseconds (rounded down), within what Lua holds exactly.
fn micros(ns: u64) -> u64 {
    (ns / 1_000).min(LUA_MAX_EXACT)
}

fn outcome((allowed, remaining, reset_us, retry_after_us): (i64, i64, i64, i64)) -> Outcome {
    let non_negative = |n: i64| u64::try_from(n).unwrap_or(0);
    Outcome {
        allowed: allowed == 1,
        remaining: non_negative(remaining),
        reset: Duration::from_micros(non_negative(reset_us)),
        retry_after: Duration::from_micros(non_negative(retry_after_us)),
    }
}

const URL_FORM: &str = "use redis://[user:password@]host[:port][/db]";

/// Checks the parts of a `redis://` URL that `Client::open` reports vaguely. Messages never
/// repeat a part of the URL: a malformed one may have its password anywhere.
fn check_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("no scheme: {URL_FORM}"));
    };
    match scheme {
        "redis" => {}
        "rediss" => return Err(format!("TLS (rediss://) is not supported: {URL_FORM}")),
        "unix" | "redis+unix" => return Err(format!("Unix sockets are not supported: {URL_FORM}")),
        _ => return Err(format!("the scheme is not redis://: {URL_FORM}")),
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, after)) => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("junk after the IPv6 address: {URL_FORM}")),
            },
            None => return Err(format!("unclosed [ in the host: {URL_FORM}")),
        },
        None => match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    if host.is_empty() {
        return Err(format!("no host: {URL_FORM}"));
    }
    if host == "0.0.0.0" || host == "::" {
        return Err(format!(
            "0.0.0.0 and :: are addresses to listen on, not to connect to: {URL_FORM}"
        ));
    }
    if let Some(port) = port {
        if !matches!(port.parse::<u16>(), Ok(1..)) {
            return Err(format!(
                "the port is not a number from 1 to 65535: {URL_FORM}"
            ));
        }
    }
    let path = tail.split(['?', '#']).next().unwrap_or_default();
    let db = path.trim_matches('/');
    if !db.is_empty() && db.parse::<u32>().is_err() {
        return Err(format!(
            "the database is not a number (the path holds only the database): {URL_FORM}"
        ));
    }
    Ok(())
}

/// The URL with any user and password replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}{tail}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_without_repeating_them() {
        for good in [
            "redis://127.0.0.1:6379",
            "redis://localhost",
            "redis://:secret@redis.internal:6380/2",
            "redis://user:pa%40ss@[::1]:6379/0",
        ] {
            assert_eq!(check_url(good), Ok(()), "{good}");
        }
        for (bad, expected) in [
            ("127.0.0.1:6379", "no scheme"),
            ("http://secret@host", "the scheme is not redis://"),
            ("rediss://host", "TLS (rediss://) is not supported"),
            (
                "redis+unix:///tmp/redis.sock",
                "Unix sockets are not supported",
            ),
            ("redis://", "no host"),
            ("redis://:pw@:6379", "no host"),
            ("redis://user:secret/0", "the port is not a number"),
            ("redis://host:0", "the port is not a number"),
            ("redis://host:70000", "the port is not a number"),
            ("redis://host/secret", "the database is not a number"),
            ("redis://[::1", "unclosed ["),
            (
                "redis://[::]:6379",
                "0.0.0.0 and :: are addresses to listen on",
            ),
        ] {
            let message = check_url(bad).err().unwrap_or_default();
            assert!(message.starts_with(expected), "{bad}: {message}");
            assert!(!message.contains("secret"), "{bad}: {message}");
        }
    }

    #[test]
    fn redact_hides_user_and_password() {
        assert_eq!(
            redact("redis://user:secret@host:6379/1"),
            "redis://***@host:6379/1"
        );
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
        assert_eq!(redact("nonsense"), "***");
        let config = RedisConfig::new("redis://:secret@host");
        assert!(!format!("{config:?}").contains("secret"));
    }
}
