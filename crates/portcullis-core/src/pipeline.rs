//! The phases a request walks, the filters that run in them, and what a filter decides.
//!
//! ```text
//! route match → admission → authn → authz → rate limit → inspect → validate → upstream
//! ```
//!
//! The order belongs to the gateway, not to the config: [`Chain::compile`] sorts a route's
//! filters by [`Phase`], so no config can put rate limiting before authentication or skip
//! inspection by reordering. Each filter is a variant of the plain [`Filter`] enum, applied
//! with an exhaustive `match`: a new kind of filter cannot be forgotten by the runner.
//!
//! Every filter has a [`FilterMode`]: `Block` applies its verdict, `Monitor` records what it
//! would have done ([`RequestCtx::monitored`]) and lets the request through, `Off` skips it.

use std::net::{IpAddr, SocketAddr};

use http::request::Parts;
use ipnet::IpNet;
use portcullis_config::{Admission, FilterMode, LargeBody, Route};
use portcullis_inspect::{Engine, Finding};

use crate::{PathParams, Rejection};

/// The phases of the request path, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// IP allow/deny lists and block lists.
    Admission,
    /// Who is calling (API key, JWT, HMAC signature, mTLS).
    Authn,
    /// What the caller may do (scopes, roles, object-level rules).
    Authz,
    /// Rate limits and quotas.
    RateLimit,
    /// Attack payload inspection.
    Inspect,
    /// Request validation against the API description.
    Validate,
}

impl Phase {
    /// Lower-case name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Admission => "admission",
            Phase::Authn => "authn",
            Phase::Authz => "authz",
            Phase::RateLimit => "rate_limit",
            Phase::Inspect => "inspect",
            Phase::Validate => "validate",
        }
    }
}

/// What a filter decided about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on with the next filter.
    Continue,
    /// Answer the client now; the request is not forwarded.
    Reject(Rejection),
}

/// The outcome of a request, as logged and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Forwarded, and no filter objected.
    Allow,
    /// Forwarded, but a filter in monitor mode would have refused it.
    Monitor,
    /// Refused by the gateway.
    Reject,
}

impl Decision {
    /// Lower-case name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Monitor => "monitor",
            Decision::Reject => "reject",
        }
    }
}

/// What a monitor-mode filter would have done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorEvent {
    /// The filter.
    pub filter: &'static str,
    /// The code it would have answered with.
    pub code: &'static str,
}

/// Per-request state, created when the request head arrives and handed to every phase.
#[derive(Debug)]
pub struct RequestCtx {
    /// `X-Request-Id`, kept from the client or generated.
    pub request_id: String,
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The client's address: the peer, or taken from forwarding headers when the peer is a
    /// trusted proxy.
    pub client_ip: IpAddr,
    /// Whether the request came over TLS.
    pub tls: bool,
    /// Index of the matched route, once routed.
    pub route: Option<usize>,
    /// Path parameters bound by the route's template.
    pub params: PathParams,
    /// Filters in monitor mode that would have refused this request.
    pub monitored: Vec<MonitorEvent>,
    /// What the inspection engine found (whether or not it blocked).
    pub findings: Vec<Finding>,
}

impl RequestCtx {
    /// A context for a new request.
    pub fn new(request_id: String, peer: SocketAddr, client_ip: IpAddr, tls: bool) -> Self {
        Self {
            request_id,
            peer,
            client_ip,
            tls,
            route: None,
            params: PathParams::default(),
            monitored: Vec::new(),
            findings: Vec::new(),
        }
    }

    /// The decision so far for a request that is being forwarded.
    pub fn forwarded_decision(&self) -> Decision {
        if self.monitored.is_empty() {
            Decision::Allow
        } else {
            Decision::Monitor
        }
    }
}

/// One filter compiled from a route's config.
#[derive(Debug, Clone)]
pub enum Filter {
    /// IP allow/deny lists.
    Admission(AdmissionFilter),
    /// Attack payload inspection.
    Inspect(InspectFilter),
}

impl Filter {
    /// The phase this filter runs in.
    pub fn phase(&self) -> Phase {
        match self {
            Filter::Admission(_) => Phase::Admission,
            Filter::Inspect(_) => Phase::Inspect,
        }
    }

    /// Stable name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Filter::Admission(_) => "admission",
            Filter::Inspect(_) => "inspect",
        }
    }

    /// Block, monitor or off.
    pub fn mode(&self) -> FilterMode {
        match self {
            Filter::Admission(filter) => filter.mode,
            Filter::Inspect(filter) => filter.mode,
        }
    }

    /// Judges a request; `body` is the bounded body prefix read for filters that need it
    /// (empty otherwise). Async because later filters consult shared state (rate-limit
    /// backends); filters that need nothing of the kind return without awaiting.
    pub async fn check(&self, ctx: &mut RequestCtx, head: &Parts, body: &[u8]) -> Verdict {
        match self {
            Filter::Admission(filter) => filter.check(ctx.client_ip),
            Filter::Inspect(filter) => filter.check(ctx, head, body),
        }
    }
}

/// IP admission: deny list first, then the allow list when one is given.
#[derive(Debug, Clone)]
pub struct AdmissionFilter {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    mode: FilterMode,
}

impl AdmissionFilter {
    /// Compiles the route's admission config.
    pub fn new(config: &Admission) -> Self {
        Self {
            allow: config.allow.clone(),
            deny: config.deny.clone(),
            mode: config.mode,
        }
    }

    fn check(&self, ip: IpAddr) -> Verdict {
        // IPv4-mapped IPv6 peers (`::ffff:10.0.0.1`) must meet the IPv4 rules.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let refused = self.deny.iter().any(|net| net.contains(&ip))
            || (!self.allow.is_empty() && !self.allow.iter().any(|net| net.contains(&ip)));
        if refused {
            Verdict::Reject(Rejection::forbidden(
                "ip_not_allowed",
                "requests from this address are not allowed",
            ))
        } else {
            Verdict::Continue
        }
    }
}

/// Attack payload inspection with the route's engine settings.
#[derive(Debug, Clone)]
pub struct InspectFilter {
    engine: Engine,
    mode: FilterMode,
    max_body_bytes: usize,
    on_large_body: LargeBody,
}

impl InspectFilter {
    /// Compiles the route's inspection config.
    pub fn new(config: &portcullis_config::Inspect) -> Self {
        Self {
            engine: Engine::new(config.settings.clone()),
            mode: config.mode,
            max_body_bytes: config.max_body_bytes,
            on_large_body: config.on_large_body,
        }
    }

    fn check(&self, ctx: &mut RequestCtx, head: &Parts, body: &[u8]) -> Verdict {
        let headers: Vec<(&str, &[u8])> = head
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes()))
            .collect();
        let request = portcullis_inspect::Request {
            method: head.method.as_str(),
            path: head.uri.path(),
            query: head.uri.query(),
            headers: &headers,
            body,
        };
        let inspection = self.engine.inspect(&request);
        ctx.findings = inspection.findings;
        if inspection.blocked {
            Verdict::Reject(Rejection::forbidden(
                "request_blocked",
                "the request was blocked by the gateway's inspection",
            ))
        } else {
            Verdict::Continue
        }
    }
}

/// How much of the body a chain needs to see before it can judge a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyNeed {
    /// Bytes to read at most.
    pub max_bytes: usize,
    /// What to do with a longer body.
    pub on_large_body: LargeBody,
}

/// A route's filters, in phase order.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    filters: Vec<Filter>,
}

impl Chain {
    /// Compiles a route's filters and puts them in phase order.
    pub fn compile(route: &Route) -> Self {
        let mut filters = Vec::new();
        if let Some(admission) = &route.admission {
            filters.push(Filter::Admission(AdmissionFilter::new(admission)));
        }
        if route.inspect.mode != FilterMode::Off {
            filters.push(Filter::Inspect(InspectFilter::new(&route.inspect)));
        }
        // Stable sort: filters of one phase keep their config order.
        filters.sort_by_key(Filter::phase);
        Self { filters }
    }

    /// The filters, in the order they run.
    pub fn filters(&self) -> &[Filter] {
        &self.filters
    }

    /// Whether a filter needs to see the request body, and how much of it.
    pub fn body_need(&self) -> Option<BodyNeed> {
        self.filters.iter().find_map(|filter| match filter {
            Filter::Inspect(inspect) if inspect.mode != FilterMode::Off => Some(BodyNeed {
                max_bytes: inspect.max_body_bytes,
                on_large_body: inspect.on_large_body,
            }),
            _ => None,
        })
    }

    /// Runs every filter in order. The first blocking rejection ends the chain; a monitor-mode
    /// rejection is recorded in the context and the chain goes on. `body` is the body prefix
    /// read according to [`Chain::body_need`].
    pub async fn run(&self, ctx: &mut RequestCtx, head: &Parts, body: &[u8]) -> Verdict {
        for filter in &self.filters {
            let mode = filter.mode();
            if mode == FilterMode::Off {
                continue;
            }
            match filter.check(ctx, head, body).await {
                Verdict::Continue => {}
                Verdict::Reject(rejection) => match mode {
                    FilterMode::Block => return Verdict::Reject(rejection),
                    FilterMode::Monitor | FilterMode::Off => ctx.monitored.push(MonitorEvent {
                        filter: filter.name(),
                        code: rejection.code,
                    }),
                },
            }
        }
        Verdict::Continue
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::Path;

    use portcullis_config::Config;

    use super::*;

    fn chain(admission: &str) -> Chain {
        let text = format!(
            "[[upstream]]\nname = \"u\"\ntargets = [\"127.0.0.1:1\"]\n[[route]]\nname = \"r\"\npath = \"/\"\nupstream = \"u\"\nauth = [\"none\"]\nadmission = {admission}\n"
        );
        let config = Config::from_toml(&text, Path::new(".")).unwrap();
        Chain::compile(&config.routes[0])
    }

    fn run(chain: &Chain, ip: &str) -> (Verdict, RequestCtx) {
        let ip: IpAddr = ip.parse().unwrap();
        let mut ctx = RequestCtx::new("r".into(), SocketAddr::new(ip, 1), ip, false);
        let (head, ()) = http::Request::new(()).into_parts();
        let verdict = block_on(chain.run(&mut ctx, &head, b""));
        (verdict, ctx)
    }

    /// The filters of this crate never await, so polling once is enough.
    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => panic!("filter awaited"),
        }
    }

    #[test]
    fn admission_blocks_and_allows() {
        let c = chain("{ allow = [\"10.0.0.0/8\"], deny = [\"10.6.6.0/24\"] }");
        assert_eq!(run(&c, "10.1.2.3").0, Verdict::Continue);
        assert!(matches!(run(&c, "10.6.6.6").0, Verdict::Reject(r) if r.status == 403));
        assert!(matches!(run(&c, "192.0.2.1").0, Verdict::Reject(_)));
        // Mapped IPv6 forms meet the IPv4 rules.
        assert!(matches!(run(&c, "::ffff:10.6.6.6").0, Verdict::Reject(_)));
        assert_eq!(run(&c, "::ffff:10.1.2.3").0, Verdict::Continue);
    }

    #[test]
    fn monitor_mode_records_and_lets_through() {
        let c = chain("{ deny = [\"192.0.2.0/24\"], mode = \"monitor\" }");
        let (verdict, ctx) = run(&c, "192.0.2.7");
        assert_eq!(verdict, Verdict::Continue);
        assert_eq!(
            ctx.monitored,
            vec![MonitorEvent {
                filter: "admission",
                code: "ip_not_allowed"
            }]
        );
        assert_eq!(ctx.forwarded_decision(), Decision::Monitor);
        let off = chain("{ deny = [\"192.0.2.0/24\"], mode = \"off\" }");
        let (verdict, ctx) = run(&off, "192.0.2.7");
        assert_eq!(verdict, Verdict::Continue);
        assert!(ctx.monitored.is_empty());
    }

    #[test]
    fn phases_run_in_fixed_order() {
        let mut phases = vec![
            Phase::Validate,
            Phase::Authn,
            Phase::Inspect,
            Phase::Admission,
            Phase::RateLimit,
            Phase::Authz,
        ];
        phases.sort();
        assert_eq!(
            phases,
            [
                Phase::Admission,
                Phase::Authn,
                Phase::Authz,
                Phase::RateLimit,
                Phase::Inspect,
                Phase::Validate
            ]
        );
    }
}
