//! Prometheus metrics of the data plane.
//!
//! Label values come only from config (route and upstream names) and from small closed sets
//! (status codes, decisions, error kinds), so cardinality is bounded: no label carries a
//! client address, a path or a key.

use std::sync::Arc;

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// A label value from config (a route or upstream name), shared rather than copied per
/// request.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Name(pub Arc<str>);

impl EncodeLabelValue for Name {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&&*self.0, encoder)
    }
}

/// Labels of a finished request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route name, or `""` when no route matched.
    pub route: Name,
    /// HTTP status.
    pub status: u16,
    /// `allow`, `monitor` or `reject`.
    pub decision: &'static str,
}

/// Labels of a rate-limit decision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// Route name.
    pub route: Name,
    /// `allowed`, `monitored`, `limited` or `unavailable`.
    pub outcome: &'static str,
    /// Who decided: `local`, `redis`, `fallback_local`, `fallback_allow`, `fallback_deny`.
    pub backend: &'static str,
}

/// A metric read from elsewhere when `/metrics` is scraped (the limiter's own counters).
pub struct ReadMetric {
    kind: MetricType,
    read: Box<dyn Fn() -> u64 + Send + Sync>,
}

impl std::fmt::Debug for ReadMetric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadMetric")
            .field("value", &(self.read)())
            .finish()
    }
}

impl ReadMetric {
    /// A counter whose value `read` returns.
    pub fn counter(read: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        Self {
            kind: MetricType::Counter,
            read: Box::new(read),
        }
    }

    /// A gauge whose value `read` returns.
    pub fn gauge(read: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        Self {
            kind: MetricType::Gauge,
            read: Box::new(read),
        }
    }
}

impl EncodeMetric for ReadMetric {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let value = (self.read)();
        match self.kind {
            MetricType::Counter => encoder.encode_counter::<NoLabelSet, _, u64>(&value, None),
            _ => encoder.encode_gauge(&i64::try_from(value).unwrap_or(i64::MAX)),
        }
    }

    fn metric_type(&self) -> MetricType {
        self.kind
    }
}

/// Labels of a per-route histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Route name, or `""` when no route matched.
    pub route: Name,
}

/// Labels of an upstream error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    /// Upstream name.
    pub upstream: Name,
    /// `connect`, `timeout` or `other`.
    pub kind: &'static str,
}

/// Labels of a listener.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    /// `http` or `https`.
    pub scheme: &'static str,
}

/// Labels of an inspection finding.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FindingLabels {
    /// Attack class (`sqli`, `xss`, …).
    pub class: &'static str,
    /// `block` (the request was refused), `monitor` (monitor mode: it would have been) or
    /// `log` (below the blocking threshold).
    pub action: &'static str,
}

/// Labels of an authentication failure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthFailureLabels {
    /// `missing_credentials` or `invalid_credentials`.
    pub reason: &'static str,
}

/// Labels of a reload.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `ok` or `error`.
    pub result: &'static str,
}

/// Every metric of the gateway, registered once at start; they outlive config reloads.
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// Requests by route, status and decision.
    pub requests: Family<RequestLabels, Counter>,
    /// Time from request head to response head, by route.
    pub request_duration: Family<RouteLabels, LatencyHistogram>,
    /// Time the upstream took to answer, by route.
    pub upstream_duration: Family<RouteLabels, LatencyHistogram>,
    /// Upstream failures by upstream and kind.
    pub upstream_errors: Family<UpstreamErrorLabels, Counter>,
    /// Open client connections by scheme.
    pub connections: Family<ListenerLabels, Gauge>,
    /// Config reloads by result.
    pub reloads: Family<ResultLabels, Counter>,
    /// Inspection findings by class and action.
    pub findings: Family<FindingLabels, Counter>,
    /// Authentication failures by reason.
    pub auth_failures: Family<AuthFailureLabels, Counter>,
    /// Client addresses that sent at least `INVALID_KEY_THRESHOLD` invalid keys in the current
    /// minute (a brute-force signal; the detectors act on it).
    pub auth_failing_clients: Gauge,
    /// Access log lines dropped because the writer fell behind.
    pub access_log_dropped: Counter,
    /// Connections closed for sending no complete request head in time.
    pub header_timeouts: Counter,
    /// Rate-limit decisions by route, outcome and backend.
    pub rate_limit_decisions: Family<LimitLabels, Counter>,
    /// Connections answered 429 for passing `limits.max_connections_per_ip`.
    pub connections_refused: Counter,
}

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// The same bounds in microseconds, for the hot path.
const BUCKETS_US: [u64; 15] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000, 30_000_000,
];

/// A latency histogram of atomics: observing is a few relaxed atomic adds, with no lock
/// (prometheus-client's own histogram takes a write lock per observation, which the workers
/// would contend on).
#[derive(Clone, Debug, Default)]
pub struct LatencyHistogram(Arc<HistogramCells>);

#[derive(Debug, Default)]
struct HistogramCells {
    /// Per-bucket counts (not cumulative); the last cell is +Inf.
    buckets: [AtomicU64; 16],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl LatencyHistogram {
    /// Records one duration, in microseconds.
    pub fn observe_us(&self, us: u64) {
        let index = BUCKETS_US
            .iter()
            .position(|&bound| us <= bound)
            .unwrap_or(BUCKETS_US.len());
        self.0.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.0.count.fetch_add(1, Ordering::Relaxed);
        self.0.sum_us.fetch_add(us, Ordering::Relaxed);
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let mut buckets: Vec<(f64, u64)> = BUCKETS
            .iter()
            .zip(&self.0.buckets)
            .map(|(bound, cell)| (*bound, cell.load(Ordering::Relaxed)))
            .collect();
        buckets.push((f64::MAX, self.0.buckets[15].load(Ordering::Relaxed)));
        let sum = self.0.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let count = self.0.count.load(Ordering::Relaxed);
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("portcullis");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by route, status and decision",
            requests.clone(),
        );
        let request_duration = Family::<RouteLabels, LatencyHistogram>::default();
        registry.register(
            "request_duration_seconds",
            "Time from request head to response head",
            request_duration.clone(),
        );
        let upstream_duration = Family::<RouteLabels, LatencyHistogram>::default();
        registry.register(
            "upstream_duration_seconds",
            "Time the upstream took to send its response head",
            upstream_duration.clone(),
        );
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Upstream failures by kind",
            upstream_errors.clone(),
        );
        let connections = Family::<ListenerLabels, Gauge>::default();
        registry.register(
            "connections_active",
            "Open client connections",
            connections.clone(),
        );
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Config reloads by result",
            reloads.clone(),
        );
        let findings = Family::<FindingLabels, Counter>::default();
        registry.register(
            "inspection_findings",
            "Inspection findings by class and action",
            findings.clone(),
        );
        let auth_failures = Family::<AuthFailureLabels, Counter>::default();
        registry.register(
            "auth_failures",
            "Authentication failures by reason",
            auth_failures.clone(),
        );
        let auth_failing_clients = Gauge::default();
        registry.register(
            "auth_failing_clients",
            "Client addresses with 10 or more invalid API keys in the current minute",
            auth_failing_clients.clone(),
        );
        let access_log_dropped = Counter::default();
        registry.register(
            "access_log_dropped",
            "Access log lines dropped because the writer fell behind",
            access_log_dropped.clone(),
        );
        let header_timeouts = Counter::default();
        registry.register(
            "request_header_timeouts",
            "Connections closed for not sending a complete request head in time",
            header_timeouts.clone(),
        );
        let rate_limit_decisions = Family::<LimitLabels, Counter>::default();
        registry.register(
            "rate_limit_decisions",
            "Rate-limit decisions by route, outcome and backend",
            rate_limit_decisions.clone(),
        );
        let connections_refused = Counter::default();
        registry.register(
            "connections_over_ip_cap",
            "Connections answered 429 for passing limits.max_connections_per_ip",
            connections_refused.clone(),
        );
        Self {
            registry,
            rate_limit_decisions,
            connections_refused,
            requests,
            request_duration,
            upstream_duration,
            upstream_errors,
            connections,
            reloads,
            findings,
            auth_failures,
            auth_failing_clients,
            access_log_dropped,
            header_timeouts,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
