//! Wire structs: the TOML file as written, before validation.
//!
//! Leaves are kept as the user wrote them (mostly strings) so that `validate` can check every
//! value and report every error with its path, instead of stopping at the first bad value.
//! Unknown keys are collected by `serde_ignored` while deserializing and reported as errors
//! with their paths (all of them, not just the first, which `deny_unknown_fields` would give).

use std::path::PathBuf;

use serde::Deserialize;

/// The whole config file.
#[derive(Debug, Default, Deserialize)]
pub struct ConfigFile {
    /// `[gateway]`: the data plane.
    #[serde(default)]
    pub gateway: GatewaySection,
    /// `[admin]`: the control plane listener.
    #[serde(default)]
    pub admin: AdminSection,
    /// `[log]`: access log.
    #[serde(default)]
    pub log: LogSection,
    /// `[store]`: keys, identities, audit log.
    pub store: Option<StoreSection>,
    /// `[limits]`: the rate-limit backend and listener-wide limits.
    #[serde(default)]
    pub limits: LimitsSection,
    /// `[[upstream]]`: named groups of targets.
    #[serde(default)]
    pub upstream: Vec<UpstreamSection>,
    /// `[[route]]`: what is served, and how.
    #[serde(default)]
    pub route: Vec<RouteSection>,
}

/// A size: a TOML integer (bytes) or a string with a unit (`"1 MiB"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SizeValue {
    /// Bytes.
    Bytes(i64),
    /// A number with a unit.
    Text(String),
}

/// `[gateway]`.
#[derive(Debug, Default, Deserialize)]
pub struct GatewaySection {
    /// Plain-HTTP listen addresses.
    pub listen: Option<Vec<String>>,
    /// `[gateway.tls]`: HTTPS listeners.
    pub tls: Option<TlsSection>,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: Option<SizeValue>,
    /// Largest request body.
    pub max_body_bytes: Option<SizeValue>,
    /// Time a client has to send a complete request head.
    pub request_header_timeout: Option<String>,
    /// Time a request may take, from its head to the upstream's response head.
    pub request_timeout: Option<String>,
    /// Time in-flight requests get to finish on shutdown.
    pub drain_timeout: Option<String>,
    /// Peers whose `X-Forwarded-For` / `Forwarded` headers are believed.
    pub trusted_proxies: Option<Vec<String>>,
    /// `Strict-Transport-Security` value sent on TLS listeners.
    pub hsts: Option<String>,
    /// Data-plane worker threads (default: one per CPU).
    pub workers: Option<i64>,
}

/// `[gateway.tls]`.
#[derive(Debug, Default, Deserialize)]
pub struct TlsSection {
    /// HTTPS listen addresses.
    pub listen: Option<Vec<String>>,
    /// Certificate chain, PEM.
    pub cert: Option<PathBuf>,
    /// Private key, PEM.
    pub key: Option<PathBuf>,
}

/// `[admin]`.
#[derive(Debug, Default, Deserialize)]
pub struct AdminSection {
    /// Admin listen address.
    pub listen: Option<String>,
    /// Bearer token required on `/admin/*` (a secret reference).
    pub token: Option<String>,
}

/// `[store]`.
#[derive(Debug, Default, Deserialize)]
pub struct StoreSection {
    /// `sqlite://FILE` (relative to the config file) or `postgres://…`.
    pub url: Option<String>,
    /// Secret reference of the key-hashing pepper (`env:NAME`, `file:PATH`).
    pub pepper: Option<String>,
}

/// `[log]`.
#[derive(Debug, Default, Deserialize)]
pub struct LogSection {
    /// `"stdout"`, `"off"` or a file path.
    pub access: Option<String>,
}

/// `[[upstream]]`.
#[derive(Debug, Default, Deserialize)]
pub struct UpstreamSection {
    /// Name routes refer to.
    pub name: Option<String>,
    /// `host:port` targets, used round robin.
    pub targets: Option<Vec<String>>,
    /// TCP (and TLS) connect timeout.
    pub connect_timeout: Option<String>,
    /// Time to the upstream's response head.
    pub timeout: Option<String>,
    /// How long an idle pooled connection is kept.
    pub idle_timeout: Option<String>,
    /// Idle pooled connections kept per target.
    pub max_idle_per_target: Option<i64>,
    /// How long a target that failed to connect is taken out of rotation.
    pub fail_timeout: Option<String>,
    /// Send the client's `Host` header instead of the target's address.
    pub preserve_host: Option<bool>,
    /// `tls = { ... }`: connect to the targets over TLS.
    pub tls: Option<UpstreamTlsSection>,
}

/// `[upstream.tls]`.
#[derive(Debug, Default, Deserialize)]
pub struct UpstreamTlsSection {
    /// CA bundle (PEM) that signs the targets' certificates. Required.
    pub ca: Option<PathBuf>,
    /// Name to verify in the targets' certificates (default: the target's host).
    pub server_name: Option<String>,
}

/// `[[route]]`.
#[derive(Debug, Default, Deserialize)]
pub struct RouteSection {
    /// Unique name (used in logs and metrics).
    pub name: Option<String>,
    /// Host to match (`api.example.com` or `*.example.com`); any host when absent.
    pub host: Option<String>,
    /// Methods to match; any method when absent.
    pub methods: Option<Vec<String>>,
    /// Exact path template, e.g. `/orders/{order_id}`.
    pub path: Option<String>,
    /// Path prefix, e.g. `/static/`.
    pub path_prefix: Option<String>,
    /// Upstream name.
    pub upstream: Option<String>,
    /// Authentication methods; `["none"]` for a public route.
    pub auth: Option<Vec<String>>,
    /// IP allow/deny lists.
    pub admission: Option<AdmissionSection>,
    /// Attack payload inspection (on, in block mode, when absent).
    pub inspect: Option<InspectSection>,
    /// Scopes the caller's key must hold.
    pub scopes: Option<Vec<String>>,
    /// Name of a query parameter that may carry the API key (opt-in; off when absent).
    pub api_key_query: Option<String>,
    /// Rate limits: one table or an array of tables.
    pub limit: Option<OneOrMany<LimitSection>>,
    /// Quotas: one table or an array of tables.
    pub quota: Option<OneOrMany<QuotaSection>>,
    /// In-flight request limit.
    pub concurrency: Option<ConcurrencySection>,
}

/// A TOML value that may be one table or an array of them (`limit = { ... }` or
/// `limit = [{ ... }, { ... }]`). Deserialized through the same deserializer, so unknown keys
/// inside are still reported with their paths (an untagged enum would buffer them away).
#[derive(Debug)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table or an array of tables")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|one| OneOrMany(vec![one]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Self::Value, A::Error> {
                Vec::<T>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(OneOrMany)
            }
        }
        deserializer.deserialize_any(Visit(std::marker::PhantomData))
    }
}

/// `route.limit`: a GCRA rate limit.
#[derive(Debug, Default, Deserialize)]
pub struct LimitSection {
    /// `"100/s"`, `"1000/h"`.
    pub rate: Option<String>,
    /// Requests that may arrive at once (default: the rate's count).
    pub burst: Option<i64>,
    /// `"identity"`, `"key"`, `"ip"`, `"route"` or `"header:NAME"`.
    pub by: Option<String>,
    /// `"block"` (default), `"monitor"` or `"off"`.
    pub mode: Option<String>,
}

/// `route.quota`: requests per calendar day or month.
#[derive(Debug, Default, Deserialize)]
pub struct QuotaSection {
    /// Requests per period.
    pub requests: Option<i64>,
    /// `"day"` or `"month"` (UTC).
    pub per: Option<String>,
    /// As for limits.
    pub by: Option<String>,
    /// `"block"` (default), `"monitor"` or `"off"`.
    pub mode: Option<String>,
}

/// `route.concurrency`: requests in flight at once.
#[derive(Debug, Default, Deserialize)]
pub struct ConcurrencySection {
    /// Most requests in flight per bucket.
    pub max: Option<i64>,
    /// As for limits (default `"route"`).
    pub by: Option<String>,
    /// `"block"` (default), `"monitor"` or `"off"`.
    pub mode: Option<String>,
}

/// `[limits]`.
#[derive(Debug, Default, Deserialize)]
pub struct LimitsSection {
    /// `"local"` (default) or `"redis://host:port[/db]"` (a secret reference is accepted).
    pub backend: Option<String>,
    /// `"local"` (default), `"allow"` or `"deny"`.
    pub on_backend_error: Option<String>,
    /// Longest wait for the shared backend per decision.
    pub timeout: Option<String>,
    /// Most in-process buckets kept at once.
    pub max_buckets: Option<i64>,
    /// A limit on all requests of each listener.
    pub global: Option<LimitSection>,
    /// Most open connections from one client address per listener set.
    pub max_connections_per_ip: Option<i64>,
}

/// `route.inspect`.
#[derive(Debug, Default, Deserialize)]
pub struct InspectSection {
    /// `"block"` (default), `"monitor"` or `"off"`.
    pub mode: Option<String>,
    /// `"balanced"` (default), `"strict"` or `"paranoid"`.
    pub sensitivity: Option<String>,
    /// Findings to drop: `"LOCATION[:CLASS]"`, e.g. `"body.$.description:xss"`.
    pub exclude: Option<Vec<String>>,
    /// How much of a request body is inspected.
    pub max_body_bytes: Option<SizeValue>,
    /// `"inspect_prefix"` (default) or `"reject"` for bodies past `max_body_bytes`.
    pub on_large_body: Option<String>,
}

/// `route.admission`.
#[derive(Debug, Default, Deserialize)]
pub struct AdmissionSection {
    /// When present, only these networks are admitted.
    pub allow: Option<Vec<String>>,
    /// Networks that are refused.
    pub deny: Option<Vec<String>>,
    /// `"block"` (default), `"monitor"` or `"off"`.
    pub mode: Option<String>,
}
