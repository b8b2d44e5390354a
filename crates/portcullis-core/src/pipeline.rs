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
use std::sync::Arc;

use http::header::{self, HeaderName, HeaderValue};
use portcullis_config::{Admission, AuthMethod, FilterMode, LargeBody, Route};
use portcullis_inspect::{Engine, Finding};

use crate::ratelimit::{LimitCtx, LimitState, RateLimitFilter};
use crate::{PathParams, Rejection};
use portcullis_config::{Quota, Rate};

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
    /// Who is calling, once authenticated.
    pub principal: Option<Principal>,
    /// What the rate-limit phase decided, its headers and in-flight slots.
    pub limits: LimitCtx,
}

/// An authenticated caller: the key and what it grants. Cheap to clone (two reference counts):
/// a key index hands one out per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Key id.
    pub key_id: Arc<str>,
    /// What the key grants; keys with the same identity, scopes, roles and overrides share
    /// one.
    pub grants: Arc<Grants>,
}

/// What a credential grants: the identity it acts as, its scopes and roles, its limits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Grants {
    /// Identity id (the owner of the key).
    pub identity: Arc<str>,
    /// Scopes the credential carries.
    pub scopes: Box<[Arc<str>]>,
    /// Roles the credential carries.
    pub roles: Box<[Arc<str>]>,
    /// The key's (else its identity's) rate, replacing the route's identity and key limits.
    pub rate_override: Option<Rate>,
    /// The key's (else its identity's) quota, replacing the route's identity and key quotas.
    pub quota_override: Option<Quota>,
    /// `identity` and the comma-separated `scopes` as header values, made once: they go
    /// upstream with every request. `None` for text that cannot be a header value.
    identity_header: Option<HeaderValue>,
    scopes_header: Option<HeaderValue>,
}

impl Grants {
    /// Grants, with the header values forwarded upstream made from them.
    pub fn new(
        identity: Arc<str>,
        scopes: Box<[Arc<str>]>,
        roles: Box<[Arc<str>]>,
        rate_override: Option<Rate>,
        quota_override: Option<Quota>,
    ) -> Grants {
        let joined = scopes
            .iter()
            .map(|s| s.as_ref())
            .collect::<Vec<&str>>()
            .join(",");
        Grants {
            identity_header: HeaderValue::from_str(&identity).ok(),
            scopes_header: HeaderValue::from_str(&joined).ok(),
            identity,
            scopes,
            roles,
            rate_override,
            quota_override,
        }
    }

    /// `identity` as a header value.
    pub fn identity_header(&self) -> Option<&HeaderValue> {
        self.identity_header.as_ref()
    }

    /// The scopes, comma-separated, as a header value.
    pub fn scopes_header(&self) -> Option<&HeaderValue> {
        self.scopes_header.as_ref()
    }
}

/// Looks credentials up. Implemented by the gateway's in-memory key index; never a database
/// round trip on the request path.
pub trait CredentialLookup: Send + Sync + std::fmt::Debug {
    /// The caller an API key belongs to, when the key is well-formed, known and usable now.
    /// Unknown, revoked and expired keys are all `None`: the caller cannot tell them apart.
    fn api_key(&self, presented: &str) -> Option<Principal>;
}

/// A lookup that knows no credential (for `portcullis check`, and gateways without a store).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCredentials;

impl CredentialLookup for NoCredentials {
    fn api_key(&self, _presented: &str) -> Option<Principal> {
        None
    }
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
            principal: None,
            limits: LimitCtx::default(),
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
    /// API key authentication.
    ApiKey(ApiKeyFilter),
    /// Required scopes.
    Scopes(ScopesFilter),
    /// Rate limits, quotas and in-flight limits.
    RateLimit(RateLimitFilter),
    /// Attack payload inspection.
    Inspect(InspectFilter),
}

impl Filter {
    /// The phase this filter runs in.
    pub fn phase(&self) -> Phase {
        match self {
            Filter::Admission(_) => Phase::Admission,
            Filter::ApiKey(_) => Phase::Authn,
            Filter::Scopes(_) => Phase::Authz,
            Filter::RateLimit(_) => Phase::RateLimit,
            Filter::Inspect(_) => Phase::Inspect,
        }
    }

    /// Stable name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Filter::Admission(_) => "admission",
            Filter::ApiKey(_) => "api_key",
            Filter::Scopes(_) => "scopes",
            Filter::RateLimit(_) => "rate_limit",
            Filter::Inspect(_) => "inspect",
        }
    }

    /// Block, monitor or off.
    pub fn mode(&self) -> FilterMode {
        match self {
            Filter::Admission(filter) => filter.mode,
            // Authentication and authorization have no monitor mode: a security decision
            // fails closed.
            Filter::ApiKey(_) | Filter::Scopes(_) => FilterMode::Block,
            // Each limit has its own mode, applied inside the filter: a monitored limit must
            // not count the request it lets through.
            Filter::RateLimit(_) => FilterMode::Block,
            Filter::Inspect(filter) => filter.mode,
        }
    }

    /// Judges a request; `body` is the bounded body prefix read for filters that need it
    /// (empty otherwise). Async because later filters consult shared state (rate-limit
    /// backends); filters that need nothing of the kind return without awaiting.
    pub async fn check(&self, ctx: &mut RequestCtx, head: &Parts, body: &[u8]) -> Verdict {
        match self {
            Filter::Admission(filter) => filter.check(ctx.client_ip),
            Filter::ApiKey(filter) => filter.check(ctx, head),
            Filter::Scopes(filter) => filter.check(ctx),
            Filter::RateLimit(filter) => filter.check(ctx, head).await,
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

/// The header an API key may come in besides `Authorization: Bearer`.
pub static API_KEY_HEADER: HeaderName = HeaderName::from_static("x-api-key");

/// The credential of an `Authorization: Bearer …` value (scheme case-insensitive, spaces
/// around the credential ignored), or `None` for another scheme or an empty credential.
/// Shared by the gateway's `api_key` filter and the admin API.
pub fn bearer_token(value: &HeaderValue) -> Option<&[u8]> {
    let bytes = value.as_bytes();
    let split = bytes.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = bytes.split_at(split);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let start = rest.iter().position(|&b| b != b' ')?;
    let end = rest.iter().rposition(|&b| b != b' ')? + 1;
    Some(&rest[start..end])
}

/// API key authentication: `Authorization: Bearer KEY` or `X-API-Key: KEY`.
#[derive(Debug, Clone)]
pub struct ApiKeyFilter {
    lookup: Arc<dyn CredentialLookup>,
    query: Option<String>,
}

fn unauthorized(code: &'static str, message: &'static str) -> Verdict {
    Verdict::Reject(
        Rejection::new(http::StatusCode::UNAUTHORIZED, code, message).with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"portcullis\", error=\"invalid_token\""),
        ),
    )
}

impl ApiKeyFilter {
    /// A filter looking keys up in `lookup`.
    pub fn new(lookup: Arc<dyn CredentialLookup>) -> Self {
        Self {
            lookup,
            query: None,
        }
    }

    /// Also accepts the key in this query parameter (a route's opt-in).
    pub fn with_query(mut self, name: Option<String>) -> Self {
        self.query = name;
        self
    }

    fn check(&self, ctx: &mut RequestCtx, head: &Parts) -> Verdict {
        let mut presented: Option<&[u8]> = None;
        let mut count = 0;
        // Other `Authorization` schemes (Basic for the upstream, say) are not ours to judge.
        for token in head
            .headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter_map(bearer_token)
        {
            count += 1;
            presented = Some(token);
        }
        for value in head.headers.get_all(&API_KEY_HEADER) {
            count += 1;
            presented = Some(value.as_bytes());
        }
        if let (Some(name), Some(query)) = (&self.query, head.uri.query()) {
            for pair in query.split('&') {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                if key == name {
                    count += 1;
                    // Keys are base62 and '_': a value that needs decoding is not a key.
                    presented = Some(value.as_bytes());
                }
            }
        }
        // Two credentials are ambiguous: which one would the upstream believe?
        if count > 1 {
            return unauthorized("invalid_credentials", "send exactly one API key");
        }
        let Some(presented) = presented else {
            return unauthorized("missing_credentials", "an API key is required");
        };
        let principal = std::str::from_utf8(presented)
            .ok()
            .and_then(|key| self.lookup.api_key(key.trim()));
        match principal {
            Some(principal) => {
                ctx.principal = Some(principal);
                Verdict::Continue
            }
            None => unauthorized("invalid_credentials", "the API key is not valid"),
        }
    }
}

/// Authorization by scopes: the caller must hold every one.
#[derive(Debug, Clone)]
pub struct ScopesFilter {
    required: Box<[String]>,
}

impl ScopesFilter {
    fn check(&self, ctx: &RequestCtx) -> Verdict {
        let held = ctx
            .principal
            .as_ref()
            .map_or(&[][..], |p| &p.grants.scopes[..]);
        if self
            .required
            .iter()
            .all(|want| held.iter().any(|have| have.as_ref() == want))
        {
            Verdict::Continue
        } else {
            Verdict::Reject(Rejection::forbidden(
                "insufficient_scope",
                "the credential does not grant access to this route",
            ))
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
    /// Compiles a route's filters and puts them in phase order; credentials are looked up in
    /// `credentials`, limits kept in `limits`.
    pub fn compile(
        route: &Route,
        credentials: &Arc<dyn CredentialLookup>,
        limits: &Arc<LimitState>,
    ) -> Self {
        let mut filters = Vec::new();
        if let Some(admission) = &route.admission {
            filters.push(Filter::Admission(AdmissionFilter::new(admission)));
        }
        // Fail closed: a route that names no method it accepts gets an authenticator that
        // accepts nothing rather than no authenticator.
        let public = route.auth.contains(&AuthMethod::None);
        if !public {
            let lookup: Arc<dyn CredentialLookup> = if route.auth.contains(&AuthMethod::ApiKey) {
                Arc::clone(credentials)
            } else {
                Arc::new(NoCredentials)
            };
            filters.push(Filter::ApiKey(
                ApiKeyFilter::new(lookup).with_query(route.api_key_query.clone()),
            ));
            if !route.scopes.is_empty() {
                filters.push(Filter::Scopes(ScopesFilter {
                    required: route.scopes.clone().into_boxed_slice(),
                }));
            }
        }
        if let Some(filter) = RateLimitFilter::new(route, limits) {
            filters.push(Filter::RateLimit(filter));
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
        let none: Arc<dyn CredentialLookup> = Arc::new(NoCredentials);
        Chain::compile(&config.routes[0], &none, &LimitState::for_tests())
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
    fn bearer_tokens() {
        let token =
            |v: &'static str| bearer_token(&HeaderValue::from_static(v)).map(|t| t.to_vec());
        assert_eq!(token("Bearer abc"), Some(b"abc".to_vec()));
        assert_eq!(token("bearer   abc  "), Some(b"abc".to_vec()));
        assert_eq!(token("BEARER abc"), Some(b"abc".to_vec()));
        assert_eq!(token("Bearer "), None);
        assert_eq!(token("Bearer"), None);
        assert_eq!(token("Basic Zm9vOmJhcg=="), None);
        assert_eq!(token("Bearerabc"), None);
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
