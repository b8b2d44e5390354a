//! The gateway: the current [`Snapshot`] of compiled config behind an `ArcSwap`, the state
//! that outlives reloads (metrics, request-id sequence), and reload itself.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use http::HeaderValue;
use portcullis_config::{Config, ConfigError, ConfigErrors};
use portcullis_config::{LimitBackend, Limits};
use portcullis_core::{Chain, CredentialLookup, LimitState, NoCredentials, Router};
use portcullis_limit::{Concurrency, Gcra, Limiter};
use rustls::ServerConfig;

use crate::access_log::AccessLog;
use crate::metrics::{LatencyHistogram, Metrics, Name, ResultLabels, RouteLabels};
use crate::upstream::UpstreamPool;

/// Everything a request needs from config, compiled once and shared read-only. A request
/// loads the snapshot once and keeps it to the end, so a reload never changes the rules under
/// a request in flight.
#[derive(Debug)]
pub struct Snapshot {
    /// The config this snapshot was compiled from.
    pub config: Config,
    /// The route table.
    pub router: Router,
    /// Per route: its filters in phase order.
    pub chains: Vec<Chain>,
    /// Per route: its name, shared with metrics and logs.
    pub route_names: Vec<Arc<str>>,
    /// Upstream pools, indexed like `config.upstreams`.
    pub upstreams: Vec<Arc<UpstreamPool>>,
    /// The TLS listener config, when there are TLS listeners.
    pub tls: Option<Arc<ServerConfig>>,
    /// The access log.
    pub access_log: AccessLog,
    /// `Strict-Transport-Security` for TLS listeners.
    pub hsts: HeaderValue,
    /// The route label of requests that matched no route.
    pub no_route: Arc<str>,
    /// Per route (and one more for "no route"): its histograms, looked up once per config
    /// rather than once per request.
    pub route_metrics: Vec<RouteMetrics>,
    /// `limits.global`, compiled.
    pub global_limit: Option<Gcra>,
}

/// A route's histograms.
#[derive(Debug, Clone)]
pub struct RouteMetrics {
    /// Request head to response head.
    pub duration: LatencyHistogram,
    /// Upstream response-head time.
    pub upstream: LatencyHistogram,
}

impl Snapshot {
    /// Compiles a config into a snapshot; errors that only show when building runtime parts
    /// (PEM contents, TLS settings) come back with their config paths.
    pub fn build(
        config: Config,
        access_log: AccessLog,
        metrics: &Metrics,
        credentials: &Arc<dyn CredentialLookup>,
        limits: &Arc<LimitState>,
    ) -> Result<Snapshot, ConfigErrors> {
        let mut errors: Vec<ConfigError> = Vec::new();
        let tls = match &config.gateway.tls {
            None => None,
            Some(tls) => match crate::tls::server_config(tls) {
                Ok(server) => Some(server),
                Err(mut list) => {
                    errors.append(&mut list);
                    None
                }
            },
        };
        let mut upstreams = Vec::with_capacity(config.upstreams.len());
        for (index, upstream) in config.upstreams.iter().enumerate() {
            match UpstreamPool::new(upstream, index, config.gateway.workers) {
                Ok(pool) => upstreams.push(Arc::new(pool)),
                Err(err) => errors.push(err),
            }
        }
        let hsts = HeaderValue::from_str(&config.gateway.hsts).map_err(|_| {
            ConfigErrors(vec![ConfigError {
                path: "gateway.hsts".into(),
                message: "not a valid header value".into(),
            }])
        })?;
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let no_route: Arc<str> = Arc::from("");
        let route_names: Vec<Arc<str>> = config
            .routes
            .iter()
            .map(|r| Arc::from(r.name.as_str()))
            .collect();
        let route_metrics = route_names
            .iter()
            .chain(std::iter::once(&no_route))
            .map(|name| {
                let labels = RouteLabels {
                    route: Name(Arc::clone(name)),
                };
                RouteMetrics {
                    duration: metrics.request_duration.get_or_create(&labels).clone(),
                    upstream: metrics.upstream_duration.get_or_create(&labels).clone(),
                }
            })
            .collect();
        Ok(Snapshot {
            router: Router::new(&config.routes),
            chains: config
                .routes
                .iter()
                .map(|route| Chain::compile(route, credentials, limits))
                .collect(),
            global_limit: config
                .limits
                .global
                .map(|(rate, burst)| Gcra::new(rate, burst)),
            route_names,
            route_metrics,
            upstreams,
            tls,
            access_log,
            hsts,
            no_route,
            config,
        })
    }
}

/// Checks everything `serve` would check before starting, without starting anything.
pub fn check(config: Config) -> Result<Snapshot, ConfigErrors> {
    let none: Arc<dyn CredentialLookup> = Arc::new(NoCredentials);
    let limits = build_limits(&config.limits)?;
    Snapshot::build(config, AccessLog::off(), &Metrics::new(), &none, &limits)
}

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The gateway was started without a config file.
    #[error("this gateway was not started from a config file")]
    NoConfigFile,
    /// The new config has errors; the old one keeps serving.
    #[error("{0}")]
    Invalid(ConfigErrors),
}

/// The running gateway's shared state.
pub struct Gateway {
    snapshot: ArcSwap<Snapshot>,
    invalid_keys: Mutex<InvalidKeyTally>,
    credentials: Arc<dyn CredentialLookup>,
    /// Metrics; they outlive reloads.
    pub metrics: Arc<Metrics>,
    /// Rate-limit buckets, quota counters and in-flight counts; they outlive reloads.
    pub limits: Arc<LimitState>,
    /// Open connections per client address, for `limits.max_connections_per_ip`.
    pub connections_by_ip: Concurrency,
    config_path: Option<PathBuf>,
    reload_lock: Mutex<()>,
    draining: AtomicBool,
    id_prefix: u32,
    id_key: u64,
    id_counter: AtomicU64,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("config_path", &self.config_path)
            .finish()
    }
}

impl Gateway {
    /// Builds the gateway from a config. `config_path` is where reloads read from.
    pub fn new(config: Config, config_path: Option<PathBuf>) -> Result<Arc<Gateway>, ConfigErrors> {
        Self::with_credentials(config, config_path, Arc::new(NoCredentials))
    }

    /// Builds the gateway with a credential lookup (the API key index of the store).
    pub fn with_credentials(
        config: Config,
        config_path: Option<PathBuf>,
        credentials: Arc<dyn CredentialLookup>,
    ) -> Result<Arc<Gateway>, ConfigErrors> {
        let limits = build_limits(&config.limits)?;
        let mut metrics = Metrics::new();
        register_limiter(&mut metrics, &limits);
        let metrics = Arc::new(metrics);
        let access_log = start_access_log(&config, &metrics)?;
        let snapshot = Snapshot::build(config, access_log, &metrics, &credentials, &limits)?;
        Ok(Arc::new(Gateway {
            limits,
            connections_by_ip: Concurrency::new(),
            snapshot: ArcSwap::from_pointee(snapshot),
            invalid_keys: Mutex::new(InvalidKeyTally::default()),
            credentials,
            metrics,
            config_path,
            reload_lock: Mutex::new(()),
            draining: AtomicBool::new(false),
            id_prefix: rand::random(),
            id_key: rand::random::<u64>() | 1,
            id_counter: AtomicU64::new(0),
        }))
    }

    /// Counts an authentication failure; invalid keys are also tallied per client address for
    /// the brute-force gauge. Only refused requests come here: the tally is off the path of
    /// legitimate traffic.
    pub fn count_auth_failure(&self, reason: &'static str, client: std::net::IpAddr) {
        self.metrics
            .auth_failures
            .get_or_create(&crate::metrics::AuthFailureLabels { reason })
            .inc();
        if reason != "invalid_credentials" {
            return;
        }
        let minute = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / 60);
        let mut tally = self
            .invalid_keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if tally.minute != minute {
            tally.minute = minute;
            tally.by_client.clear();
            self.metrics.auth_failing_clients.set(0);
        }
        // Bounded: past the cap new addresses are not tracked (the counter above still counts).
        if tally.by_client.len() >= INVALID_KEY_CLIENTS_CAP
            && !tally.by_client.contains_key(&client)
        {
            return;
        }
        let count = tally.by_client.entry(client).or_insert(0);
        *count += 1;
        if *count == INVALID_KEY_THRESHOLD {
            self.metrics.auth_failing_clients.inc();
        }
    }

    /// The credential lookup (the API key index when a store is configured).
    pub fn credentials(&self) -> &Arc<dyn CredentialLookup> {
        &self.credentials
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Re-reads the config file and swaps it in when it is valid. An invalid config is refused
    /// with every error, and the running one keeps serving.
    pub fn reload(&self) -> Result<String, ReloadError> {
        let path = self.config_path.as_ref().ok_or(ReloadError::NoConfigFile)?;
        let _guard = self
            .reload_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let result = Config::load(path).and_then(|config| self.apply(config));
        let label = if result.is_ok() { "ok" } else { "error" };
        self.metrics
            .reloads
            .get_or_create(&ResultLabels { result: label })
            .inc();
        result.map_err(ReloadError::Invalid)
    }

    fn apply(&self, config: Config) -> Result<String, ConfigErrors> {
        let current = self.snapshot.load();
        let mut errors = Vec::new();
        // Sockets are bound once at start; a reload cannot move them.
        let old = &current.config;
        if config.gateway.listen != old.gateway.listen {
            errors.push(restart_needed("gateway.listen"));
        }
        let tls_listen = |c: &Config| {
            c.gateway
                .tls
                .as_ref()
                .map(|t| t.listen.clone())
                .unwrap_or_default()
        };
        if tls_listen(&config) != tls_listen(old) {
            errors.push(restart_needed("gateway.tls.listen"));
        }
        if config.admin.listen != old.admin.listen {
            errors.push(restart_needed("admin.listen"));
        }
        let store_of = |c: &Config| {
            c.store
                .as_ref()
                .map(|s| (s.url.expose().clone(), s.pepper.expose().clone()))
        };
        if store_of(&config) != store_of(old) {
            errors.push(ConfigError {
                path: "store".into(),
                message: "the store cannot change on reload; restart the gateway".into(),
            });
        }
        if config.gateway.workers != old.gateway.workers {
            errors.push(ConfigError {
                path: "gateway.workers".into(),
                message: "the number of workers cannot change on reload; restart the gateway"
                    .into(),
            });
        }
        let backend_of = |c: &Config| {
            (
                c.limits.backend.clone(),
                c.limits.on_backend_error,
                c.limits.timeout,
                c.limits.max_buckets,
            )
        };
        if backend_of(&config) != backend_of(old) {
            errors.push(ConfigError {
                path: "limits".into(),
                message: "the limit backend (backend, on_backend_error, timeout, max_buckets) \
                          cannot change on reload; restart the gateway"
                    .into(),
            });
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let access_log = if config.log.access == old.log.access {
            current.access_log.clone()
        } else {
            start_access_log(&config, &self.metrics)?
        };
        let summary = config.summary();
        let snapshot = Snapshot::build(
            config,
            access_log,
            &self.metrics,
            &self.credentials,
            &self.limits,
        )?;
        self.snapshot.store(Arc::new(snapshot));
        Ok(summary)
    }

    /// Data-plane worker threads, fixed at start.
    pub fn workers(&self) -> usize {
        self.snapshot.load().config.gateway.workers.max(1)
    }

    /// Writes out the access log; call once the data plane has stopped.
    pub fn finish_logs(&self) {
        self.snapshot()
            .access_log
            .finish(std::time::Duration::from_secs(5));
    }

    /// Marks the gateway as draining: `/readyz` answers 503 from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether the gateway is shutting down.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// A new request id: a per-process random prefix and a sequence number scrambled by a
    /// per-process bijection, so ids are unique without revealing request volume.
    pub fn next_request_id(&self) -> String {
        let n = self.id_counter.fetch_add(1, Ordering::Relaxed);
        let mixed =
            (n ^ (self.id_key >> 1)).wrapping_mul(self.id_key) ^ self.id_key.rotate_left(29);
        let mut id = String::with_capacity(24);
        push_hex(&mut id, u64::from(self.id_prefix), 8);
        push_hex(&mut id, mixed, 16);
        id
    }
}

/// Invalid keys per client address in the current minute.
#[derive(Debug, Default)]
struct InvalidKeyTally {
    minute: u64,
    by_client: std::collections::HashMap<std::net::IpAddr, u32>,
}

/// Invalid keys in a minute from one address that make it count as failing.
pub const INVALID_KEY_THRESHOLD: u32 = 10;
const INVALID_KEY_CLIENTS_CAP: usize = 10_000;

fn restart_needed(path: &str) -> ConfigError {
    ConfigError {
        path: path.into(),
        message: "listen addresses cannot change on reload; restart the gateway to move them"
            .into(),
    }
}

/// The limiter `[limits]` asks for. Nothing connects here: a Redis backend connects on first
/// use, and a Redis that is down at start is a fallback like any other failure.
pub fn build_limits(limits: &Limits) -> Result<Arc<LimitState>, ConfigErrors> {
    let clock: Arc<dyn portcullis_limit::Clock> = Arc::new(portcullis_limit::SystemClock::new());
    let limiter = match &limits.backend {
        LimitBackend::Local => Limiter::local(limits.max_buckets, clock),
        LimitBackend::Redis(url) => {
            let mut redis = portcullis_limit::RedisConfig::new(url.expose().clone());
            redis.timeout = limits.timeout;
            redis.fallback = limits.on_backend_error;
            Limiter::redis(redis, limits.max_buckets, clock).map_err(|err| {
                ConfigErrors(vec![ConfigError {
                    path: "limits.backend".into(),
                    message: err.to_string(),
                }])
            })?
        }
    };
    Ok(Arc::new(LimitState::new(limiter)))
}

fn register_limiter(metrics: &mut Metrics, limits: &Arc<LimitState>) {
    let errors = Arc::clone(limits);
    metrics.registry.register(
        "rate_limit_backend_errors",
        "Rate-limit backend (Redis) calls that failed or timed out",
        crate::metrics::ReadMetric::counter(move || errors.limiter.backend_errors()),
    );
    let fallback = Arc::clone(limits);
    metrics.registry.register(
        "rate_limit_fallback",
        "1 while the rate limiter runs on its on_backend_error fallback",
        crate::metrics::ReadMetric::gauge(move || u64::from(fallback.limiter.in_fallback())),
    );
}

fn start_access_log(config: &Config, metrics: &Metrics) -> Result<AccessLog, ConfigErrors> {
    AccessLog::start(&config.log.access, metrics.access_log_dropped.clone()).map_err(|err| {
        ConfigErrors(vec![ConfigError {
            path: "log.access".into(),
            message: format!("cannot open the access log: {err}"),
        }])
    })
}

fn push_hex(out: &mut String, value: u64, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..digits).rev() {
        out.push(char::from(HEX[((value >> (shift * 4)) & 0xf) as usize]));
    }
}
