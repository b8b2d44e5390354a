//! Portcullis configuration.
//!
//! A config goes through three steps, and only the last one produces something the gateway
//! can run:
//!
//! 1. **read**: TOML → [`wire::ConfigFile`]; unknown keys are collected, not ignored;
//! 2. **validate**: every value is checked and *every* problem is reported with its path
//!    (`route[2].upstream: no upstream named "ordrs"`);
//! 3. **compile**: the checked values become typed runtime values ([`Config`]).
//!
//! Steps 2 and 3 are one pass ([`Config::from_toml`]) so a value is parsed exactly once.

#![forbid(unsafe_code)]

mod compile;
pub mod limits;
pub mod secret;
pub mod units;
pub mod wire;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use http::Method;
pub use ipnet::IpNet;
pub use limits::{
    ConcurrencyRule, FallbackMode, LimitBackend, LimitKey, LimitRule, Limits, Quota, QuotaPeriod,
    QuotaRule, Rate, RateLimits,
};
pub use secret::Secret;

/// One problem in a config file, with the path of the value it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where, e.g. `route[2].upstream`; empty for the file as a whole.
    pub path: String,
    /// What is wrong, and where useful how to fix it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// A validated, compiled configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The data plane.
    pub gateway: Gateway,
    /// The control plane.
    pub admin: Admin,
    /// Logging.
    pub log: Log,
    /// The key store, when configured.
    pub store: Option<StoreConfig>,
    /// Upstreams, in file order; routes refer to them by index.
    pub upstreams: Vec<Upstream>,
    /// Routes, in file order.
    pub routes: Vec<Route>,
    /// The rate-limit backend and listener-wide limits.
    pub limits: Limits,
}

/// `[gateway]`, compiled.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// Plain-HTTP listeners.
    pub listen: Vec<SocketAddr>,
    /// HTTPS listeners and their certificate.
    pub tls: Option<Tls>,
    /// Largest request head in bytes (431 past it).
    pub max_header_bytes: usize,
    /// Largest request body in bytes (413 past it).
    pub max_body_bytes: u64,
    /// Time a client has to send a complete request head (408 past it).
    pub request_header_timeout: Duration,
    /// Time from a request's head to the upstream's response head (504 past it).
    pub request_timeout: Duration,
    /// Time in-flight requests get to finish on shutdown.
    pub drain_timeout: Duration,
    /// Peers whose forwarding headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// `Strict-Transport-Security` value for TLS listeners.
    pub hsts: String,
    /// Data-plane worker threads.
    pub workers: usize,
}

/// HTTPS listeners and the server certificate.
#[derive(Debug, Clone)]
pub struct Tls {
    /// HTTPS listen addresses.
    pub listen: Vec<SocketAddr>,
    /// Where the certificate chain was read from.
    pub cert_path: PathBuf,
    /// Where the private key was read from.
    pub key_path: PathBuf,
    /// The certificate chain, PEM.
    pub cert_pem: Vec<u8>,
    /// The private key, PEM. Never printed.
    pub key_pem: Secret<Vec<u8>>,
}

/// `[admin]`, compiled.
#[derive(Debug, Clone)]
pub struct Admin {
    /// Admin listen address.
    pub listen: SocketAddr,
    /// Bearer token required on `/admin/*`, if any.
    pub token: Option<Secret<String>>,
}

/// `[store]`, compiled.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Database URL; a relative SQLite path is made absolute against the config's directory.
    /// May hold a password: never printed by `Debug`.
    pub url: Secret<String>,
    /// The pepper keys are hashed with (at least 16 bytes).
    pub pepper: Secret<String>,
}

/// Where access log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    /// Not written.
    Off,
    /// Standard output.
    Stdout,
    /// Appended to a file.
    File(PathBuf),
}

/// `[log]`, compiled.
#[derive(Debug, Clone)]
pub struct Log {
    /// Access log destination.
    pub access: AccessLog,
}

/// `[[upstream]]`, compiled.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Name.
    pub name: String,
    /// Targets as `(host, port)`.
    pub targets: Vec<Target>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Time to the response head.
    pub timeout: Duration,
    /// Idle pooled connection lifetime.
    pub idle_timeout: Duration,
    /// Idle pooled connections per target.
    pub max_idle_per_target: usize,
    /// How long a failed target stays out of rotation.
    pub fail_timeout: Duration,
    /// Forward the client's `Host`.
    pub preserve_host: bool,
    /// TLS to the targets.
    pub tls: Option<UpstreamTls>,
}

/// One upstream target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// TLS towards an upstream.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    /// CA bundle, PEM.
    pub ca_pem: Vec<u8>,
    /// Where the CA bundle was read from.
    pub ca_path: PathBuf,
    /// Name verified in the target certificates, if not the target host.
    pub server_name: Option<String>,
}

/// How a route's path is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    /// The whole path must match the template, segment by segment.
    Exact(Vec<Segment>),
    /// The path must start with this prefix (compared on segment boundaries when it ends
    /// with `/`, byte-wise otherwise).
    Prefix(String),
}

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Must be equal to the (percent-decoded) path segment.
    Literal(String),
    /// Matches any one non-empty segment and binds it to the name.
    Param(String),
}

/// How a route's host is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Equal, case-insensitively (stored lowercase).
    Exact(String),
    /// `*.example.com`: any name ending with `.example.com` (stored lowercase, with the dot).
    Suffix(String),
}

/// Authentication a route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// Public route: no authentication.
    None,
    /// An API key from the store, in `Authorization: Bearer` or `X-API-Key`.
    ApiKey,
}

/// What a filter does with a request it would refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FilterMode {
    /// Refuse it.
    #[default]
    Block,
    /// Record that it would have been refused, and let it through.
    Monitor,
    /// Do not run the filter.
    Off,
}

/// IP admission rules of a route.
#[derive(Debug, Clone)]
pub struct Admission {
    /// When non-empty, only these networks are admitted.
    pub allow: Vec<IpNet>,
    /// Networks that are refused (checked before `allow`).
    pub deny: Vec<IpNet>,
    /// Block, monitor or off.
    pub mode: FilterMode,
}

/// What happens to a body larger than the inspection bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LargeBody {
    /// Inspect the first `max_body_bytes` and forward the whole body.
    InspectPrefix,
    /// Refuse the request with 413.
    Reject,
}

/// Attack payload inspection of a route.
#[derive(Debug, Clone)]
pub struct Inspect {
    /// Block, monitor or off.
    pub mode: FilterMode,
    /// Engine settings (sensitivity, exclusions).
    pub settings: portcullis_inspect::Settings,
    /// Bytes of the body that are inspected.
    pub max_body_bytes: usize,
    /// What happens past `max_body_bytes`.
    pub on_large_body: LargeBody,
}

impl Default for Inspect {
    fn default() -> Self {
        Self {
            mode: FilterMode::Block,
            settings: portcullis_inspect::Settings::default(),
            max_body_bytes: 64 * 1024,
            on_large_body: LargeBody::InspectPrefix,
        }
    }
}

/// `[[route]]`, compiled.
#[derive(Debug, Clone)]
pub struct Route {
    /// Unique name.
    pub name: String,
    /// Host to match; any when `None`.
    pub host: Option<HostPattern>,
    /// Methods to match; any when empty.
    pub methods: Vec<Method>,
    /// Path to match.
    pub path: PathPattern,
    /// Index into [`Config::upstreams`].
    pub upstream: usize,
    /// Accepted authentication methods.
    pub auth: Vec<AuthMethod>,
    /// IP admission rules.
    pub admission: Option<Admission>,
    /// Attack payload inspection.
    pub inspect: Inspect,
    /// Scopes a caller must hold (all of them); empty for none.
    pub scopes: Vec<String>,
    /// Query parameter that may carry the API key, when the route opts in. The parameter is
    /// removed before the request is forwarded, and queries are never logged.
    pub api_key_query: Option<String>,
    /// Rate limits, quotas and the in-flight limit.
    pub rate_limits: RateLimits,
}

impl Config {
    /// Reads, validates and compiles a config file. Relative file paths inside it (certificates,
    /// keys) are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|err| {
            ConfigErrors(vec![ConfigError {
                path: String::new(),
                message: format!("cannot read config file {}: {err}", path.display()),
            }])
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::from_toml(&text, &base)
    }

    /// Validates and compiles TOML text; `base` is the directory relative paths start from.
    pub fn from_toml(text: &str, base: &Path) -> Result<Config, ConfigErrors> {
        let mut unknown = Vec::new();
        let deserializer = toml::Deserializer::new(text);
        let file: wire::ConfigFile = serde_ignored::deserialize(deserializer, |path| {
            unknown.push(ConfigError {
                path: display_path(&path),
                message: "unknown key".to_owned(),
            });
        })
        .map_err(|err| {
            ConfigErrors(vec![ConfigError {
                path: String::new(),
                message: format!("invalid TOML: {}", err.to_string().trim_end()),
            }])
        })?;
        let mut errors = compile::Errors::new(unknown);
        let config = compile::compile(&file, base, &mut errors);
        errors.finish(config)
    }

    /// A one-line summary for `portcullis check`.
    pub fn summary(&self) -> String {
        let mut listeners: Vec<String> = self
            .gateway
            .listen
            .iter()
            .map(|addr| format!("http://{addr}"))
            .collect();
        if let Some(tls) = &self.gateway.tls {
            listeners.extend(tls.listen.iter().map(|addr| format!("https://{addr}")));
        }
        format!(
            "{} route(s), {} upstream(s), listeners {}, admin http://{}",
            self.routes.len(),
            self.upstreams.len(),
            listeners.join(" "),
            self.admin.listen
        )
    }
}

fn display_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", display_path(parent)),
        P::Map { parent, key } => {
            let parent = display_path(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            display_path(parent)
        }
    }
}

#[cfg(test)]
mod tests;
