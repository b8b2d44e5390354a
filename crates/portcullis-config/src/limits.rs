//! `[limits]` and the routes' `limit`, `quota` and `concurrency` tables, compiled.

use std::time::Duration;

use http::HeaderName;
pub use portcullis_limit::{FallbackMode, Quota, QuotaPeriod, Rate};

use crate::compile::{parse_mode, Errors};
use crate::wire::{ConcurrencySection, LimitSection, LimitsSection, OneOrMany, QuotaSection};
use crate::{FilterMode, Secret};

/// What a bucket is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitKey {
    /// The authenticated identity (all its keys share the bucket).
    Identity,
    /// The API key.
    Key,
    /// The client address.
    Ip,
    /// Everyone: one bucket for the route.
    Route,
    /// A request header's value (the client address when the header is absent).
    Header(HeaderName),
}

impl LimitKey {
    /// The name used in policy names: `identity`, `key`, `ip`, `route`, `header`.
    pub fn as_str(&self) -> &'static str {
        match self {
            LimitKey::Identity => "identity",
            LimitKey::Key => "key",
            LimitKey::Ip => "ip",
            LimitKey::Route => "route",
            LimitKey::Header(_) => "header",
        }
    }

    /// Whether the key needs an authenticated caller.
    pub fn needs_caller(&self) -> bool {
        matches!(self, LimitKey::Identity | LimitKey::Key)
    }
}

/// A route's rate limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRule {
    /// Name in `RateLimit-Policy` headers, unique on the route (`identity-1s`).
    pub name: String,
    /// The rate.
    pub rate: Rate,
    /// Requests that may arrive at once.
    pub burst: u64,
    /// Bucket key.
    pub by: LimitKey,
    /// Block or monitor.
    pub mode: FilterMode,
}

/// A route's quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaRule {
    /// Name in `RateLimit-Policy` headers, unique on the route (`identity-month`).
    pub name: String,
    /// Requests per calendar period.
    pub quota: Quota,
    /// Bucket key.
    pub by: LimitKey,
    /// Block or monitor.
    pub mode: FilterMode,
}

/// A route's in-flight limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcurrencyRule {
    /// Most requests in flight per bucket.
    pub max: u32,
    /// Bucket key.
    pub by: LimitKey,
    /// Block or monitor.
    pub mode: FilterMode,
}

/// A route's limits (all empty: the route is not limited).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Rate limits, all enforced.
    pub limits: Vec<LimitRule>,
    /// Quotas, all enforced.
    pub quotas: Vec<QuotaRule>,
    /// In-flight limit.
    pub concurrency: Option<ConcurrencyRule>,
}

impl RateLimits {
    /// Whether the route has any limit that runs.
    pub fn is_empty(&self) -> bool {
        self.limits.iter().all(|l| l.mode == FilterMode::Off)
            && self.quotas.iter().all(|q| q.mode == FilterMode::Off)
            && self
                .concurrency
                .as_ref()
                .is_none_or(|c| c.mode == FilterMode::Off)
    }
}

/// Where buckets live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitBackend {
    /// In this process.
    Local,
    /// In Redis, shared by every gateway using it.
    Redis(Secret<String>),
}

/// `[limits]`, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Where buckets live.
    pub backend: LimitBackend,
    /// What to do while the backend fails.
    pub on_backend_error: FallbackMode,
    /// Longest wait for the shared backend per decision.
    pub timeout: Duration,
    /// Most in-process buckets.
    pub max_buckets: usize,
    /// A limit on all requests of each listener: (rate, burst).
    pub global: Option<(Rate, u64)>,
    /// Most open connections from one client address.
    pub max_connections_per_ip: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            backend: LimitBackend::Local,
            on_backend_error: FallbackMode::Local,
            timeout: Duration::from_millis(50),
            max_buckets: portcullis_limit::local::DEFAULT_MAX_BUCKETS,
            global: None,
            max_connections_per_ip: None,
        }
    }
}

pub(crate) fn compile_limits(section: &LimitsSection, errors: &mut Errors) -> Limits {
    let mut limits = Limits::default();
    match section.backend.as_deref() {
        None | Some("local") => {}
        Some(text) => {
            let resolved = if text.starts_with("env:") || text.starts_with("file:") {
                match crate::secret::resolve_secret(text) {
                    Ok(secret) => Some(secret),
                    Err(message) => {
                        errors.push("limits.backend", message);
                        None
                    }
                }
            } else {
                Some(Secret::new(text.to_owned()))
            };
            if let Some(url) = resolved {
                let value = url.expose();
                if value.starts_with("redis://") && value.len() > "redis://".len() {
                    limits.backend = LimitBackend::Redis(url);
                } else if value == "local" {
                } else {
                    // Never echo the value: it may hold a password.
                    errors.push(
                        "limits.backend",
                        "use \"local\" or a \"redis://host:port[/db]\" URL",
                    );
                }
            }
        }
    }
    limits.on_backend_error = match section.on_backend_error.as_deref() {
        None | Some("local") => FallbackMode::Local,
        Some("allow") => FallbackMode::Allow,
        Some("deny") => FallbackMode::Deny,
        Some(other) => {
            errors.push(
                "limits.on_backend_error",
                format!("\"{other}\" is not a fallback: use \"local\", \"allow\" or \"deny\""),
            );
            FallbackMode::Local
        }
    };
    limits.timeout =
        crate::compile::duration(&section.timeout, limits.timeout, "limits.timeout", errors);
    if limits.timeout > Duration::from_secs(5) {
        errors.push(
            "limits.timeout",
            "at most 5s: every limited request may wait this long when the backend is slow",
        );
    }
    if let Some(max) = section.max_buckets {
        match usize::try_from(max) {
            Ok(max) if (1..=100_000_000).contains(&max) => limits.max_buckets = max,
            _ => errors.push("limits.max_buckets", "must be between 1 and 100000000"),
        }
    }
    if let Some(global) = &section.global {
        let at = |key: &str| format!("limits.global.{key}");
        if global.by.is_some() {
            errors.push(
                at("by"),
                "a global limit counts every request of a listener",
            );
        }
        if global.mode.is_some() {
            errors.push(at("mode"), "a global limit always blocks");
        }
        if let Some(rate) = parse_rate(global.rate.as_deref(), &at("rate"), errors) {
            limits.global = Some((rate, parse_burst(global.burst, rate, &at("burst"), errors)));
        }
    }
    if let Some(max) = section.max_connections_per_ip {
        match u32::try_from(max) {
            Ok(max) if max >= 1 => limits.max_connections_per_ip = Some(max),
            _ => errors.push(
                "limits.max_connections_per_ip",
                "must be between 1 and 4294967295",
            ),
        }
    }
    limits
}

fn parse_rate(text: Option<&str>, path: &str, errors: &mut Errors) -> Option<Rate> {
    match text {
        None => {
            errors.push(path, "missing: a rate such as \"100/s\"");
            None
        }
        Some(text) => match text.parse::<Rate>() {
            Ok(rate) => Some(rate),
            Err(err) => {
                errors.push(path, err.to_string());
                None
            }
        },
    }
}

fn parse_burst(burst: Option<i64>, rate: Rate, path: &str, errors: &mut Errors) -> u64 {
    match burst {
        None => rate.count,
        Some(burst) => match u64::try_from(burst) {
            Ok(burst) if (1..=Rate::MAX_COUNT).contains(&burst) => burst,
            _ => {
                errors.push(path, "must be between 1 and 1000000000");
                rate.count
            }
        },
    }
}

fn parse_by(text: Option<&str>, default: &str, path: &str, errors: &mut Errors) -> LimitKey {
    match text.unwrap_or(default) {
        "identity" => LimitKey::Identity,
        "key" => LimitKey::Key,
        "ip" => LimitKey::Ip,
        "route" => LimitKey::Route,
        other => match other.strip_prefix("header:") {
            Some(name) => match HeaderName::try_from(name) {
                Ok(name) => LimitKey::Header(name),
                Err(_) => {
                    errors.push(path, format!("\"{name}\" is not a header name"));
                    LimitKey::Route
                }
            },
            None => {
                errors.push(
                    path,
                    format!(
                        "\"{other}\" is not a bucket key: use \"identity\", \"key\", \"ip\", \"route\" or \"header:NAME\""
                    ),
                );
                LimitKey::Route
            }
        },
    }
}

/// A policy name unique among `taken`.
fn unique_name(base: String, taken: &[String]) -> String {
    if !taken.contains(&base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|name| !taken.contains(name))
        .unwrap_or(base)
}

/// Paths and checks shared by a route's `limit`, `quota` and `concurrency` tables.
struct RouteTables<'a> {
    index: usize,
    public: bool,
    errors: &'a mut Errors,
}

impl RouteTables<'_> {
    /// `route[N].what` for a single table, `route[N].what[i]` in an array of several.
    fn path(&self, what: &str, i: usize, many: bool) -> String {
        if many {
            format!("route[{}].{what}[{i}]", self.index)
        } else {
            format!("route[{}].{what}", self.index)
        }
    }

    /// The bucket key and mode of the table at `at`.
    fn key_and_mode(
        &mut self,
        by: Option<&str>,
        mode: Option<&str>,
        default_by: &str,
        at: &str,
    ) -> (LimitKey, FilterMode) {
        let by = parse_by(by, default_by, &format!("{at}.by"), self.errors);
        if self.public && by.needs_caller() {
            self.errors.push(
                format!("{at}.by"),
                format!(
                    "\"{}\" needs an authenticated caller, and this route is public (auth = [\"none\"]): use \"ip\", \"route\" or \"header:NAME\"",
                    by.as_str()
                ),
            );
        }
        (by, parse_mode(mode, &format!("{at}.mode"), self.errors))
    }

    /// The tables of a one-or-many value with their paths; an empty array is an error.
    fn each<'s, T>(&mut self, what: &str, value: Option<&'s OneOrMany<T>>) -> Vec<(String, &'s T)> {
        let Some(OneOrMany(list)) = value else {
            return Vec::new();
        };
        if list.is_empty() {
            self.errors.push(
                format!("route[{}].{what}", self.index),
                format!("an empty list: remove `{what}` or give it a table"),
            );
        }
        let many = list.len() > 1;
        list.iter()
            .enumerate()
            .map(|(i, table)| (self.path(what, i, many), table))
            .collect()
    }
}

/// Compiles a route's `limit`, `quota` and `concurrency`; `public` routes have no caller to
/// key buckets by.
pub(crate) fn compile_route_limits(
    limit: Option<&OneOrMany<LimitSection>>,
    quota: Option<&OneOrMany<QuotaSection>>,
    concurrency: Option<&ConcurrencySection>,
    index: usize,
    public: bool,
    errors: &mut Errors,
) -> RateLimits {
    let mut out = RateLimits::default();
    // Authenticated routes limit each caller; public ones each client address.
    let default_by = if public { "ip" } else { "identity" };
    let mut names: Vec<String> = Vec::new();
    let mut tables = RouteTables {
        index,
        public,
        errors,
    };
    for (at, section) in tables.each("limit", limit) {
        let (by, mode) = tables.key_and_mode(
            section.by.as_deref(),
            section.mode.as_deref(),
            default_by,
            &at,
        );
        let errors = &mut *tables.errors;
        if let Some(rate) = parse_rate(section.rate.as_deref(), &format!("{at}.rate"), errors) {
            let burst = parse_burst(section.burst, rate, &format!("{at}.burst"), errors);
            let name = unique_name(format!("{}-1{}", by.as_str(), rate.unit()), &names);
            names.push(name.clone());
            out.limits.push(LimitRule {
                name,
                rate,
                burst,
                by,
                mode,
            });
        }
    }
    for (at, section) in tables.each("quota", quota) {
        let (by, mode) = tables.key_and_mode(
            section.by.as_deref(),
            section.mode.as_deref(),
            default_by,
            &at,
        );
        let errors = &mut *tables.errors;
        let requests = match section.requests.map(u64::try_from) {
            Some(Ok(n)) if n >= 1 => Some(n),
            Some(_) => {
                errors.push(format!("{at}.requests"), "must be at least 1");
                None
            }
            None => {
                errors.push(format!("{at}.requests"), "missing: requests per period");
                None
            }
        };
        let period = match section.per.as_deref().map(str::parse::<QuotaPeriod>) {
            Some(Ok(period)) => Some(period),
            Some(Err(err)) => {
                errors.push(format!("{at}.per"), err.to_string());
                None
            }
            None => {
                errors.push(format!("{at}.per"), "missing: \"day\" or \"month\"");
                None
            }
        };
        if let (Some(requests), Some(period)) = (requests, period) {
            let name = unique_name(format!("{}-{}", by.as_str(), period.as_str()), &names);
            names.push(name.clone());
            out.quotas.push(QuotaRule {
                name,
                quota: Quota { requests, period },
                by,
                mode,
            });
        }
    }
    if let Some(section) = concurrency {
        let at = tables.path("concurrency", 0, false);
        let (by, mode) =
            tables.key_and_mode(section.by.as_deref(), section.mode.as_deref(), "route", &at);
        match section.max.map(u32::try_from) {
            Some(Ok(max)) if max >= 1 => out.concurrency = Some(ConcurrencyRule { max, by, mode }),
            Some(_) => tables
                .errors
                .push(format!("{at}.max"), "must be between 1 and 4294967295"),
            None => tables
                .errors
                .push(format!("{at}.max"), "missing: most requests in flight"),
        }
    }
    out
}
