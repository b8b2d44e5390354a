//! The rate-limit phase: in-flight limits, GCRA rate limits and calendar quotas of a route,
//! and the `RateLimit-Policy` / `RateLimit` headers that describe them.
//!
//! Order inside the phase: the in-flight slot first (cheap, local), then every rate limit,
//! then every quota. A request refused by any of them is counted by none: what earlier ones
//! took is given back. Buckets and counters live in [`LimitState`], outside the config
//! snapshot, so a reload keeps them.

use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use http::request::Parts;
use http::StatusCode;
use portcullis_config::{FilterMode, LimitKey, LimitRule, QuotaRule, RateLimits, Route};
use portcullis_limit::{Concurrency, Gcra, Limiter, Permit, Quota, QuotaCounters, Served};

use crate::pipeline::{MonitorEvent, Principal, RequestCtx, Verdict};
use crate::Rejection;

/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers).
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` (draft-ietf-httpapi-ratelimit-headers).
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Rate-limit state that outlives config reloads.
#[derive(Debug)]
pub struct LimitState {
    /// GCRA buckets (in process or Redis).
    pub limiter: Limiter,
    /// Quota counters.
    pub quotas: QuotaCounters,
    /// In-flight counts.
    pub concurrency: Concurrency,
}

impl LimitState {
    /// State around a limiter.
    pub fn new(limiter: Limiter) -> LimitState {
        LimitState {
            limiter,
            quotas: QuotaCounters::new(),
            concurrency: Concurrency::new(),
        }
    }

    /// In-process state on the system clock, for tests and `portcullis check`.
    pub fn for_tests() -> Arc<LimitState> {
        Arc::new(LimitState::new(Limiter::local(
            1024,
            Arc::new(portcullis_limit::SystemClock::new()),
        )))
    }

    fn unix_ms(&self) -> i64 {
        i64::try_from(self.limiter.clock().now_ns() / 1_000_000).unwrap_or(i64::MAX)
    }
}

/// How the rate-limit phase ended for a request (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitOutcome {
    /// Every limit allowed it.
    Allowed,
    /// A limit in monitor mode would have refused it.
    Monitored,
    /// Refused with 429.
    Limited,
    /// Refused with 503: the backend is failing and the fallback is `deny`.
    Unavailable,
}

impl LimitOutcome {
    /// Lower-case name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitOutcome::Allowed => "allowed",
            LimitOutcome::Monitored => "monitored",
            LimitOutcome::Limited => "limited",
            LimitOutcome::Unavailable => "unavailable",
        }
    }
}

/// What the rate-limit phase leaves in the request context.
#[derive(Debug, Default)]
pub struct LimitCtx {
    /// `RateLimit-Policy` and `RateLimit` for the response.
    pub headers: Option<(HeaderValue, HeaderValue)>,
    /// In-flight slots, held until the response is done.
    pub permits: Vec<Permit>,
    /// How the phase ended; `None` when the route has no limit.
    pub outcome: Option<LimitOutcome>,
    /// Who made the last rate-limit decision (the backend, or its fallback).
    pub served: Option<Served>,
}

#[derive(Debug, Clone)]
struct CompiledLimit {
    /// Index in the route's config (bucket names carry it).
    index: usize,
    rule: LimitRule,
    gcra: Gcra,
}

/// A route's limits, compiled.
#[derive(Debug, Clone)]
pub struct RateLimitFilter {
    route: Arc<str>,
    limits: Vec<CompiledLimit>,
    /// With their index in the route's config (bucket names carry it).
    quotas: Vec<(usize, QuotaRule)>,
    concurrency: Option<portcullis_config::ConcurrencyRule>,
    state: Arc<LimitState>,
    /// `RateLimit-Policy` when no override applies and no window varies (no monthly quota):
    /// rendered once, not per request.
    fixed_policy: Option<HeaderValue>,
}

/// One policy's figures for the headers.
struct Item<'a> {
    name: &'a str,
    quota: u64,
    window_secs: u64,
    remaining: u64,
    reset: Duration,
}

impl<'a> Item<'a> {
    /// An item for rendering the policy header alone.
    fn policy(name: &'a str, quota: u64, window_secs: u64) -> Item<'a> {
        Item {
            name,
            quota,
            window_secs,
            remaining: 0,
            reset: Duration::ZERO,
        }
    }
}

/// Seconds, rounded up (a client that waits this long is never early).
fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// A `Retry-After` value: the wait in seconds, rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    ceil_secs(wait).max(1)
}

impl RateLimitFilter {
    /// Compiles a route's limits; `None` when it has none that run.
    pub fn new(route: &Route, state: &Arc<LimitState>) -> Option<RateLimitFilter> {
        let RateLimits {
            limits,
            quotas,
            concurrency,
        } = &route.rate_limits;
        if route.rate_limits.is_empty() {
            return None;
        }
        let mut filter = RateLimitFilter {
            route: Arc::from(route.name.as_str()),
            limits: limits
                .iter()
                .enumerate()
                .filter(|(_, l)| l.mode != FilterMode::Off)
                .map(|(index, rule)| CompiledLimit {
                    index,
                    gcra: Gcra::new(rule.rate, rule.burst),
                    rule: rule.clone(),
                })
                .collect(),
            quotas: quotas
                .iter()
                .enumerate()
                .filter(|(_, q)| q.mode != FilterMode::Off)
                .map(|(index, rule)| (index, rule.clone()))
                .collect(),
            concurrency: concurrency.clone().filter(|c| c.mode != FilterMode::Off),
            state: Arc::clone(state),
            fixed_policy: None,
        };
        if filter
            .quotas
            .iter()
            .all(|(_, q)| q.quota.period == portcullis_limit::QuotaPeriod::Day)
        {
            let items: Vec<Item<'_>> = filter
                .limits
                .iter()
                .map(|l| {
                    Item::policy(
                        &l.rule.name,
                        l.gcra.rate.count,
                        l.gcra.rate.period.as_secs(),
                    )
                })
                .chain(
                    filter
                        .quotas
                        .iter()
                        .map(|(_, q)| Item::policy(&q.name, q.quota.requests, 86_400)),
                )
                .collect();
            filter.fixed_policy = render(&items, None).map(|(policy, _)| policy);
        }
        Some(filter)
    }

    /// The precomputed `RateLimit-Policy`, unless the caller's overrides change it.
    fn fixed_policy_for(&self, principal: Option<&Principal>) -> Option<&HeaderValue> {
        let overridden = principal.is_some_and(|p| {
            (p.grants.rate_override.is_some()
                && self.limits.iter().any(|l| l.rule.by.needs_caller()))
                || (p.grants.quota_override.is_some()
                    && self.quotas.iter().any(|(_, q)| q.by.needs_caller()))
        });
        if overridden {
            None
        } else {
            self.fixed_policy.as_ref()
        }
    }

    /// The name of the bucket that limit `index` of `kind` (`l` limit, `q` quota, `c`
    /// in-flight) keyed `by` uses for this request.
    fn bucket(
        &self,
        kind: &str,
        index: usize,
        by: &LimitKey,
        ctx: &RequestCtx,
        head: &Parts,
    ) -> String {
        if let Some(p) = &ctx.principal {
            if let Some(bucket) =
                caller_bucket(&self.route, kind, index, by, &p.grants.identity, &p.key_id)
            {
                return bucket;
            }
        }
        let mut key = String::with_capacity(self.route.len() + 48);
        push_prefix(&mut key, &self.route, kind, index);
        match by {
            LimitKey::Route => key.push('*'),
            LimitKey::Header(name) => match head.headers.get(name) {
                Some(value) if value.len() <= 128 => {
                    key.push_str("h:");
                    key.push_str(&String::from_utf8_lossy(value.as_bytes()));
                }
                Some(value) => {
                    // Long values are hashed with fixed keys: every gateway sharing a Redis
                    // must name the bucket alike.
                    let mut hasher = std::collections::hash_map::DefaultHasher::new();
                    value.as_bytes().hash(&mut hasher);
                    let _ = write!(key, "hh:{:016x}", hasher.finish());
                }
                None => push_ip(&mut key, ctx.client_ip),
            },
            // Identity and key limits are refused on public routes by the config; should a
            // request reach one without a caller, it shares its address's bucket.
            LimitKey::Ip | LimitKey::Identity | LimitKey::Key => push_ip(&mut key, ctx.client_ip),
        }
        key
    }

    fn gcra_for(&self, limit: &CompiledLimit, principal: Option<&Principal>) -> Gcra {
        match (
            principal.and_then(|p| p.grants.rate_override),
            limit.rule.by.needs_caller(),
        ) {
            (Some(rate), true) => Gcra::new(rate, rate.count),
            _ => limit.gcra,
        }
    }

    /// Runs the phase.
    pub(crate) async fn check(&self, ctx: &mut RequestCtx, head: &Parts) -> Verdict {
        let mut items: Vec<Item<'_>> = Vec::with_capacity(self.limits.len() + self.quotas.len());
        let mut monitored = false;
        if let Some(rule) = &self.concurrency {
            let key = self.bucket("c", 0, &rule.by, ctx, head);
            match self.state.concurrency.try_acquire(&key, rule.max) {
                Some(permit) => ctx.limits.permits.push(permit),
                None if rule.mode == FilterMode::Monitor => monitored = true,
                None => {
                    ctx.limits.outcome = Some(LimitOutcome::Limited);
                    return Verdict::Reject(Rejection::too_many_requests(
                        "too_many_concurrent_requests",
                        format!(
                            "at most {} requests may be in flight at once; retry when one completes",
                            rule.max
                        ),
                        Duration::from_secs(1),
                    ));
                }
            }
        }

        let principal = ctx.principal.clone();
        let mut taken: Vec<(String, Gcra, Served, usize)> = Vec::new();
        let mut refusal: Option<(Rejection, LimitOutcome)> = None;
        for limit in &self.limits {
            let gcra = self.gcra_for(limit, principal.as_ref());
            let key = self.bucket("l", limit.index, &limit.rule.by, ctx, head);
            let decision = self.state.limiter.take(&key, &gcra).await;
            ctx.limits.served = Some(decision.served);
            let outcome = decision.outcome;
            items.push(Item {
                name: &limit.rule.name,
                quota: gcra.rate.count,
                window_secs: gcra.rate.period.as_secs(),
                remaining: outcome.remaining,
                reset: if outcome.allowed {
                    outcome.reset
                } else {
                    outcome.retry_after
                },
            });
            if outcome.allowed {
                taken.push((key, gcra, decision.served, items.len() - 1));
                continue;
            }
            if decision.served == Served::FallbackDeny {
                refusal = Some((
                    Rejection::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "rate_limit_unavailable",
                        "the rate limiter is unavailable; retry shortly",
                    )
                    .with_header(RETRY_AFTER, HeaderValue::from_static("1")),
                    LimitOutcome::Unavailable,
                ));
                break;
            }
            if limit.rule.mode == FilterMode::Monitor {
                monitored = true;
                continue;
            }
            refusal = Some((
                Rejection::rate_limited(outcome.retry_after),
                LimitOutcome::Limited,
            ));
            break;
        }

        // The wall clock is read only for quotas.
        let unix_ms = if self.quotas.is_empty() {
            0
        } else {
            self.state.unix_ms()
        };
        let mut counted: Vec<(String, Quota, usize)> = Vec::new();
        if refusal.is_none() {
            for (index, rule) in &self.quotas {
                let quota = quota_for(
                    rule,
                    principal.as_ref().and_then(|p| p.grants.quota_override),
                );
                let key = self.bucket("q", *index, &rule.by, ctx, head);
                let outcome = self.state.quotas.take(&key, &quota, unix_ms);
                items.push(Item {
                    name: &rule.name,
                    quota: quota.requests,
                    window_secs: outcome.window.as_secs(),
                    remaining: outcome.remaining,
                    reset: outcome.reset,
                });
                if outcome.allowed {
                    counted.push((key, quota, items.len() - 1));
                    continue;
                }
                if rule.mode == FilterMode::Monitor {
                    monitored = true;
                    continue;
                }
                refusal = Some((
                    Rejection::too_many_requests(
                        "quota_exceeded",
                        format!(
                            "the {} quota of {} requests is used up; it renews in {} s",
                            quota.period.as_str(),
                            quota.requests,
                            retry_after_secs(outcome.reset)
                        ),
                        outcome.reset,
                    ),
                    LimitOutcome::Limited,
                ));
                break;
            }
        }

        match refusal {
            None => {
                ctx.limits.outcome = Some(if monitored {
                    ctx.monitored.push(MonitorEvent {
                        filter: "rate_limit",
                        code: "rate_limited",
                    });
                    LimitOutcome::Monitored
                } else {
                    LimitOutcome::Allowed
                });
                ctx.limits.headers = render(&items, self.fixed_policy_for(principal.as_ref()));
                Verdict::Continue
            }
            Some((mut rejection, outcome)) => {
                // Refused requests are never counted.
                for (key, gcra, served, item) in &taken {
                    self.state.limiter.refund(key, gcra, *served);
                    items[*item].remaining = (items[*item].remaining + 1).min(gcra.burst);
                }
                for (key, quota, item) in &counted {
                    self.state.quotas.refund(key, quota, unix_ms);
                    items[*item].remaining += 1;
                }
                ctx.limits.permits.clear();
                ctx.limits.outcome = Some(outcome);
                if let Some((policy, state)) =
                    render(&items, self.fixed_policy_for(principal.as_ref()))
                {
                    rejection = rejection
                        .with_header(RATELIMIT_POLICY.clone(), policy)
                        .with_header(RATELIMIT.clone(), state);
                }
                Verdict::Reject(rejection)
            }
        }
    }
}

/// The quota a caller gets from `rule`: its override when the rule is keyed by caller.
fn quota_for(rule: &QuotaRule, caller_override: Option<Quota>) -> Quota {
    match (caller_override, rule.by.needs_caller()) {
        (Some(quota), true) => quota,
        _ => rule.quota,
    }
}

/// The bucket of a limit keyed by caller (`identity` or `key`); `None` for other keys.
fn caller_bucket(
    route: &str,
    kind: &str,
    index: usize,
    by: &LimitKey,
    identity: &str,
    key_id: &str,
) -> Option<String> {
    let (tag, value) = match by {
        LimitKey::Identity => ("i:", identity),
        LimitKey::Key => ("k:", key_id),
        _ => return None,
    };
    let mut key = String::with_capacity(route.len() + value.len() + 8);
    push_prefix(&mut key, route, kind, index);
    key.push_str(tag);
    key.push_str(value);
    Some(key)
}

/// `ROUTE|KINDINDEX|`: the start of every bucket name.
fn push_prefix(key: &mut String, route: &str, kind: &str, index: usize) {
    key.push_str(route);
    key.push('|');
    key.push_str(kind);
    push_u64(key, index as u64);
    key.push('|');
}

/// `ip:ADDRESS`, without the formatting machinery for the common IPv4 case.
fn push_ip(key: &mut String, ip: std::net::IpAddr) {
    key.push_str("ip:");
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    key.push('.');
                }
                push_u64(key, u64::from(octet));
            }
        }
        std::net::IpAddr::V6(v6) => {
            let _ = write!(key, "{v6}");
        }
    }
}

/// Decimal digits of `n` (the request path formats a few numbers per limit).
fn push_u64(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// A quota that applies to one API key, and its bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyQuota {
    /// Route name.
    pub route: String,
    /// Policy name (as in `RateLimit-Policy`).
    pub policy: String,
    /// The quota the key gets (its override, or the route's).
    pub quota: Quota,
    /// The counter's bucket.
    pub bucket: String,
    /// Whether the quota only logs.
    pub monitor: bool,
}

/// The quotas of `routes` that count the requests of a key (those keyed by `identity` or
/// `key`), with the buckets the gateway counts them in. `caller_override` is the key's (else
/// its identity's) quota override.
pub fn key_quotas(
    routes: &[Route],
    identity: &str,
    key_id: &str,
    caller_override: Option<Quota>,
) -> Vec<KeyQuota> {
    let mut out = Vec::new();
    for route in routes {
        for (index, rule) in route.rate_limits.quotas.iter().enumerate() {
            if rule.mode == FilterMode::Off {
                continue;
            }
            if let Some(bucket) = caller_bucket(&route.name, "q", index, &rule.by, identity, key_id)
            {
                out.push(KeyQuota {
                    route: route.name.clone(),
                    policy: rule.name.clone(),
                    quota: quota_for(rule, caller_override),
                    bucket,
                    monitor: rule.mode == FilterMode::Monitor,
                });
            }
        }
    }
    out
}

/// `RateLimit-Policy: "ip-1s";q=10;w=1, …` and `RateLimit: "ip-1s";r=3;t=1, …`.
fn render(
    items: &[Item<'_>],
    fixed_policy: Option<&HeaderValue>,
) -> Option<(HeaderValue, HeaderValue)> {
    if items.is_empty() {
        return None;
    }
    let mut policy = String::with_capacity(if fixed_policy.is_some() {
        0
    } else {
        32 * items.len()
    });
    let mut state = String::with_capacity(32 * items.len());
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            policy.push_str(", ");
            state.push_str(", ");
        }
        if fixed_policy.is_none() {
            policy.push('"');
            policy.push_str(item.name);
            policy.push_str("\";q=");
            push_u64(&mut policy, item.quota);
            policy.push_str(";w=");
            push_u64(&mut policy, item.window_secs);
        }
        state.push('"');
        state.push_str(item.name);
        state.push_str("\";r=");
        push_u64(&mut state, item.remaining);
        state.push_str(";t=");
        push_u64(&mut state, ceil_secs(item.reset));
    }
    let policy = match fixed_policy {
        Some(fixed) => fixed.clone(),
        None => HeaderValue::try_from(policy).ok()?,
    };
    Some((policy, HeaderValue::try_from(state).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_formatting_matches_display() {
        for n in [0u64, 7, 10, 99, 1000, 86_400, u64::MAX] {
            let mut out = String::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string());
        }
        for ip in ["10.0.0.1", "255.255.255.255", "0.0.0.0", "2001:db8::1"] {
            let mut out = String::new();
            push_ip(
                &mut out,
                ip.parse().unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
            );
            assert_eq!(out, format!("ip:{ip}"));
        }
    }
}
