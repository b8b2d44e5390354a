//! One request through the gateway: limits → route → filters (phase order) → upstream →
//! response headers → log.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::uri::{PathAndQuery, Uri};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use portcullis_config::LargeBody;
use portcullis_core::ratelimit::{RATELIMIT, RATELIMIT_POLICY};
use portcullis_core::{Decision, LimitOutcome, Rejection, RequestCtx, RouteMatch, Verdict};
use portcullis_limit::Permit;

use crate::access_log::AccessRecord;
use crate::body::{
    is_body_too_large, read_prefix, ClientBody, OnResponseEnd, PrefixError, RequestBody,
    ResponseBody,
};
use crate::gateway::{Gateway, Snapshot};
use crate::h1_client::{SendError, UpstreamBody};
use crate::headers::{self, X_CONTENT_TYPE_OPTIONS, X_POWERED_BY, X_REQUEST_ID};
use crate::metrics::{FindingLabels, Name, RequestLabels, UpstreamErrorLabels};
use crate::upstream::UpstreamPool;

/// The connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The peer's forwarding header values, computed once per connection.
    pub forwarding: Arc<headers::Forwarding>,
    /// The bucket of `limits.global` for the listener the connection arrived on (global
    /// limits are per listener), named once per connection.
    pub global_bucket: Arc<str>,
    /// The peer has more connections open than `limits.max_connections_per_ip`: every
    /// request on this connection is answered 429 and the connection closed.
    pub over_connection_cap: bool,
}

impl ConnInfo {
    /// Describes a new connection.
    pub fn new(peer: SocketAddr, tls: bool) -> Self {
        Self {
            peer,
            tls,
            forwarding: Arc::new(headers::Forwarding::new(peer.ip(), tls)),
            global_bucket: Arc::from("global|"),
            over_connection_cap: false,
        }
    }

    /// The listener the connection arrived on.
    pub fn with_local(mut self, local: Option<SocketAddr>) -> Self {
        if let Some(local) = local {
            self.global_bucket = Arc::from(format!("global|{local}"));
        }
        self
    }
}

static NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
static NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
static JSON: HeaderValue = HeaderValue::from_static("application/json");

/// What is known of a request for its log line and metrics.
struct Outcome {
    route: Option<usize>,
    status: StatusCode,
    decision: Decision,
    code: Option<&'static str>,
    upstream_us: Option<u64>,
}

/// Writes the access log record when the response body is done.
struct LogOnEnd {
    snapshot: Arc<Snapshot>,
    record: AccessRecord,
    start: Instant,
    received: Option<Arc<AtomicU64>>,
}

/// What happens when a response is done: the log line is written and the request's
/// in-flight slots are given back (also when the client goes away before the end).
struct OnEnd {
    log: Option<LogOnEnd>,
    _permits: Vec<Permit>,
}

impl OnResponseEnd for OnEnd {
    fn finish(self: Box<Self>, bytes_out: u64) {
        if let Some(log) = self.log {
            log.finish(bytes_out);
        }
    }
}

impl LogOnEnd {
    fn finish(self, bytes_out: u64) {
        let LogOnEnd {
            snapshot,
            mut record,
            start,
            received,
        } = self;
        record.bytes_out = bytes_out;
        record.bytes_in = received.map_or(0, |r| r.load(Ordering::Relaxed));
        record.total_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        snapshot.access_log.record(record);
    }
}

impl Gateway {
    /// Handles one request. Never fails: every problem becomes a response in the gateway's
    /// JSON error shape.
    pub async fn handle(
        &self,
        request: Request<ClientBody>,
        conn: &ConnInfo,
    ) -> Response<ResponseBody> {
        let start = Instant::now();
        let time = SystemTime::now();
        let snapshot = self.snapshot();
        let (mut head, body) = request.into_parts();
        let trusted = &snapshot.config.gateway.trusted_proxies;
        let request_id =
            headers::client_request_id(&head.headers).unwrap_or_else(|| self.next_request_id());
        let client_ip = headers::client_ip(conn.peer.ip(), &head.headers, trusted);
        // One header value, shared by the upstream request and the response.
        let id_header = HeaderValue::from_str(&request_id).ok();
        let mut ctx = RequestCtx::new(request_id, conn.peer, client_ip, conn.tls);
        // Counting request body bytes is only needed for the access log.
        let received = snapshot
            .access_log
            .enabled()
            .then(|| Arc::new(AtomicU64::new(0)));

        let mut body = body;
        let result = match self
            .admit(
                &snapshot,
                &mut ctx,
                &head,
                conn,
                &mut body,
                received.as_ref(),
            )
            .await
        {
            Err(rejection) => {
                crate::body::discard_in_background(body);
                Err(rejection)
            }
            Ok((route, prefix)) => {
                let pool = &snapshot.upstreams[snapshot.config.routes[route].upstream];
                self.forward(
                    &snapshot,
                    pool,
                    &ctx,
                    conn,
                    id_header.as_ref(),
                    &mut head,
                    prefix,
                    body,
                    &received,
                )
                .await
            }
        };
        let route = ctx.route;
        let (response, outcome) = match result {
            Ok((upstream, upstream_us)) => {
                let status = upstream.status();
                (
                    Ok(upstream),
                    Outcome {
                        route,
                        status,
                        decision: ctx.forwarded_decision(),
                        code: None,
                        upstream_us: Some(upstream_us),
                    },
                )
            }
            Err(rejection) => {
                let outcome = Outcome {
                    route,
                    status: rejection.status,
                    decision: Decision::Reject,
                    code: Some(rejection.code),
                    upstream_us: None,
                };
                (Err(rejection), outcome)
            }
        };
        self.count(&snapshot, &outcome, start);
        if let Some(reason @ ("missing_credentials" | "invalid_credentials")) = outcome.code {
            self.count_auth_failure(reason, ctx.client_ip);
        }
        if !ctx.findings.is_empty() {
            let action = if outcome.code == Some("request_blocked") {
                "block"
            } else if ctx.monitored.iter().any(|m| m.code == "request_blocked") {
                "monitor"
            } else {
                "log"
            };
            for finding in &ctx.findings {
                self.metrics
                    .findings
                    .get_or_create(&FindingLabels {
                        class: finding.class.as_str(),
                        action,
                    })
                    .inc();
            }
        }
        if let Some(outcome) = ctx.limits.outcome {
            self.count_limit(&snapshot, &ctx, outcome);
        }
        let log = snapshot.access_log.enabled().then(|| LogOnEnd {
            record: AccessRecord {
                time,
                request_id: ctx.request_id.clone(),
                client_ip: ctx.client_ip,
                method: head.method.clone(),
                path: head.uri.path().to_owned(),
                route: outcome.route.map(|r| Arc::clone(&snapshot.route_names[r])),
                status: outcome.status.as_u16(),
                bytes_in: 0,
                bytes_out: 0,
                upstream_us: outcome.upstream_us,
                total_us: 0,
                decision: outcome.decision.as_str(),
                code: outcome.code,
                monitored: ctx.monitored.iter().map(|m| m.filter).collect(),
                findings: std::mem::take(&mut ctx.findings),
            },
            snapshot: Arc::clone(&snapshot),
            start,
            received,
        });
        let permits = std::mem::take(&mut ctx.limits.permits);
        let on_end = (log.is_some() || !permits.is_empty()).then(|| {
            Box::new(OnEnd {
                log,
                _permits: permits,
            }) as Box<dyn OnResponseEnd>
        });
        match response {
            Ok(upstream) => respond_upstream(upstream, &snapshot, &ctx, id_header, on_end),
            Err(rejection) => respond_rejection(&rejection, &snapshot, &ctx, id_header, on_end),
        }
    }

    /// Limits, routing, the body prefix the route's filters need, and the route's filter
    /// chain. Returns the route index and the body prefix read.
    async fn admit(
        &self,
        snapshot: &Snapshot,
        ctx: &mut RequestCtx,
        head: &Parts,
        conn: &ConnInfo,
        body: &mut ClientBody,
        received: Option<&Arc<AtomicU64>>,
    ) -> Result<(usize, Bytes), Rejection> {
        let gateway = &snapshot.config.gateway;
        if conn.over_connection_cap {
            return Err(Rejection::too_many_requests(
                "too_many_connections",
                "too many connections from this address; close some and retry",
                std::time::Duration::from_secs(1),
            )
            .with_header(header::CONNECTION, HeaderValue::from_static("close")));
        }
        if let Some(global) = &snapshot.global_limit {
            let decision = self.limits.limiter.take(&conn.global_bucket, global).await;
            if !decision.outcome.allowed {
                let wait = decision.outcome.retry_after;
                return Err(Rejection::too_many_requests(
                    "rate_limited",
                    format!(
                        "the gateway is receiving too many requests; retry after {} s",
                        portcullis_core::ratelimit::retry_after_secs(wait)
                    ),
                    wait,
                ));
            }
        }
        if headers::head_size(&head.method, &head.uri, &head.headers) > gateway.max_header_bytes {
            return Err(Rejection::headers_too_large(gateway.max_header_bytes));
        }
        if let Some(length) = head.headers.get(header::CONTENT_LENGTH) {
            match length.to_str().ok().and_then(|v| v.parse::<u64>().ok()) {
                Some(length) if length > gateway.max_body_bytes => {
                    return Err(Rejection::body_too_large(gateway.max_body_bytes));
                }
                Some(_) => {}
                None => {
                    return Err(Rejection::bad_request(
                        "bad_content_length",
                        "Content-Length is not a number",
                    ))
                }
            }
        }
        let host = headers::request_host(&head.uri, &head.headers);
        let route = match snapshot.router.route(host, &head.method, head.uri.path()) {
            RouteMatch::Matched { route, params } => {
                ctx.route = Some(route);
                ctx.params = params;
                route
            }
            RouteMatch::NotFound => return Err(Rejection::not_found()),
            RouteMatch::MethodNotAllowed { allow } => {
                let allow = allow
                    .iter()
                    .map(Method::as_str)
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut rejection = Rejection::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "this method is not allowed on this path",
                );
                if let Ok(value) = HeaderValue::from_str(&allow) {
                    rejection = rejection.with_header(header::ALLOW, value);
                }
                return Err(rejection);
            }
            RouteMatch::Invalid(rejection) => return Err(rejection),
        };
        let chain = &snapshot.chains[route];
        let need = chain.body_need();
        let mut prefix = Bytes::new();
        if let Some(need) = need {
            if !body.is_end_stream() {
                let read = read_prefix(body, need.max_bytes, gateway.max_body_bytes, received);
                let (bytes, fits) = match tokio::time::timeout(gateway.request_timeout, read).await
                {
                    Err(_) => return Err(Rejection::request_timeout()),
                    Ok(Err(PrefixError::TooLarge)) => {
                        return Err(Rejection::body_too_large(gateway.max_body_bytes))
                    }
                    Ok(Err(PrefixError::Client(_))) => return Err(bad_body()),
                    Ok(Ok(read)) => read,
                };
                if !fits && need.on_large_body == LargeBody::Reject {
                    return Err(Rejection::body_too_large(need.max_bytes as u64));
                }
                prefix = bytes;
            }
        }
        // A frame straddling the bound may have brought a little more than was asked for.
        let inspected = &prefix[..prefix.len().min(need.map_or(0, |n| n.max_bytes))];
        match chain.run(ctx, head, inspected).await {
            Verdict::Continue => Ok((route, prefix)),
            Verdict::Reject(rejection) => Err(rejection),
        }
    }

    /// Sends the request upstream. Returns the response and the upstream time in µs.
    #[allow(clippy::too_many_arguments)]
    async fn forward(
        &self,
        snapshot: &Snapshot,
        pool: &UpstreamPool,
        ctx: &RequestCtx,
        conn: &ConnInfo,
        id_header: Option<&HeaderValue>,
        head: &mut Parts,
        prefix: Bytes,
        body: ClientBody,
        received: &Option<Arc<AtomicU64>>,
    ) -> Result<(Response<UpstreamBody>, u64), Rejection> {
        let gateway = &snapshot.config.gateway;
        headers::strip_hop_by_hop(&mut head.headers);
        headers::set_identity(&mut head.headers, ctx.principal.as_ref());
        let peer_trusted = headers::is_trusted_peer(ctx.peer.ip(), &gateway.trusted_proxies);
        headers::set_forwarding(&mut head.headers, &conn.forwarding, peer_trusted);
        if let Some(id) = id_header {
            head.headers.insert(X_REQUEST_ID.clone(), id.clone());
        }
        if pool.preserve_host {
            if let (None, Some(authority)) = (head.headers.get(header::HOST), head.uri.authority())
            {
                if let Ok(value) = HeaderValue::from_str(authority.as_str()) {
                    head.headers.insert(header::HOST, value);
                }
            }
        } else {
            head.headers.remove(header::HOST);
        }
        let mut path_and_query = head
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        // A key sent in the query (a route's opt-in) never reaches the upstream.
        let key_param = ctx
            .route
            .and_then(|r| snapshot.config.routes[r].api_key_query.as_deref());
        if let (Some(name), Some(query)) = (key_param, path_and_query.query()) {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|pair| pair.split_once('=').map_or(*pair, |(k, _)| k) != name)
                .collect();
            let rebuilt = if kept.is_empty() {
                path_and_query.path().to_owned()
            } else {
                format!("{}?{}", path_and_query.path(), kept.join("&"))
            };
            if let Ok(stripped) = PathAndQuery::try_from(rebuilt) {
                path_and_query = stripped;
            }
        }

        // A request that sent nothing yet can be tried on another target when the first one
        // refuses the connection: nothing reached the upstream, so nothing can be repeated.
        // (`prefix` holds body bytes already read for inspection: such a request has a body.)
        let retryable = pool.targets.len() > 1
            && prefix.is_empty()
            && body.is_end_stream()
            && is_idempotent(&head.method);
        let saved = retryable.then(|| (head.method.clone(), head.headers.clone()));
        let attempts = if retryable {
            pool.targets.len().min(3)
        } else {
            1
        };

        let timeout = pool.timeout.min(gateway.request_timeout);
        let mut body = Some(RequestBody::new(
            prefix,
            body,
            gateway.max_body_bytes,
            received.clone(),
        ));
        for attempt in 0..attempts {
            let target = pool.pick();
            // The client writes the request target in origin form; the target's authority
            // goes in `Host` unless the client's is kept.
            let uri = Uri::from(path_and_query.clone());
            let mut request = Request::new(
                body.take()
                    .unwrap_or_else(|| RequestBody::empty(received.clone())),
            );
            *request.method_mut() = head.method.clone();
            *request.uri_mut() = uri;
            *request.version_mut() = Version::HTTP_11;
            *request.headers_mut() = match (&saved, attempt) {
                (Some((_, headers)), _) => headers.clone(),
                (None, _) => std::mem::take(&mut head.headers),
            };
            let upstream_start = Instant::now();
            let result =
                tokio::time::timeout(timeout, crate::h1_client::send(pool, target, request)).await;
            let elapsed = u64::try_from(upstream_start.elapsed().as_micros()).unwrap_or(u64::MAX);
            match result {
                Ok(Ok(response)) => {
                    if let Some(route) = ctx.route {
                        snapshot.route_metrics[route].upstream.observe_us(elapsed);
                    }
                    return Ok((response, elapsed));
                }
                Ok(Err(err)) if err.is_connect() => {
                    pool.mark_failed(target);
                    self.upstream_error(pool, "connect");
                    tracing::warn!(
                        upstream = %pool.name,
                        target = %pool.targets[target].authority,
                        request_id = %ctx.request_id,
                        error = %error_chain(&err),
                        "upstream connect failed; target out of rotation",
                    );
                }
                Ok(Err(err)) => {
                    if is_body_too_large(&err) {
                        return Err(Rejection::body_too_large(gateway.max_body_bytes));
                    }
                    if let SendError::Body(_) = err {
                        // The client's side failed (broken chunking, gone mid-body), not
                        // the upstream's: the same answer as when inspection reads it.
                        tracing::debug!(request_id = %ctx.request_id, error = %error_chain(&err), "request body failed");
                        return Err(bad_body());
                    }
                    self.upstream_error(pool, "other");
                    tracing::warn!(
                        upstream = %pool.name,
                        request_id = %ctx.request_id,
                        error = %error_chain(&err),
                        "upstream request failed",
                    );
                    return Err(Rejection::bad_gateway());
                }
                Err(_) => {
                    self.upstream_error(pool, "timeout");
                    tracing::warn!(upstream = %pool.name, request_id = %ctx.request_id, "upstream timed out");
                    return Err(Rejection::gateway_timeout());
                }
            }
        }
        Err(Rejection::bad_gateway())
    }

    fn upstream_error(&self, pool: &UpstreamPool, kind: &'static str) {
        self.metrics
            .upstream_errors
            .get_or_create(&UpstreamErrorLabels {
                upstream: Name(Arc::clone(&pool.name)),
                kind,
            })
            .inc();
    }

    fn count_limit(&self, snapshot: &Snapshot, ctx: &RequestCtx, outcome: LimitOutcome) {
        let Some(route) = ctx.route else { return };
        self.metrics
            .rate_limit_decisions
            .get_or_create(&crate::metrics::LimitLabels {
                route: Name(Arc::clone(&snapshot.route_names[route])),
                outcome: outcome.as_str(),
                backend: ctx.limits.served.map_or("local", |s| s.as_str()),
            })
            .inc();
    }

    fn count(&self, snapshot: &Snapshot, outcome: &Outcome, start: Instant) {
        let index = outcome.route.unwrap_or(snapshot.route_names.len());
        snapshot.route_metrics[index]
            .duration
            .observe_us(u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX));
        let route = Name(match outcome.route {
            Some(r) => Arc::clone(&snapshot.route_names[r]),
            None => Arc::clone(&snapshot.no_route),
        });
        self.metrics
            .requests
            .get_or_create(&RequestLabels {
                route,
                status: outcome.status.as_u16(),
                decision: outcome.decision.as_str(),
            })
            .inc();
    }
}

fn bad_body() -> Rejection {
    Rejection::bad_request("bad_body", "the request body could not be read")
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(err) = source {
        text.push_str(": ");
        text.push_str(&err.to_string());
        source = err.source();
    }
    text
}

fn security_headers(
    headers: &mut http::HeaderMap,
    snapshot: &Snapshot,
    ctx: &RequestCtx,
    id: Option<HeaderValue>,
) {
    headers.insert(X_CONTENT_TYPE_OPTIONS.clone(), NOSNIFF.clone());
    if ctx.tls {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, snapshot.hsts.clone());
    }
    if let Some(id) = id {
        headers.insert(X_REQUEST_ID.clone(), id);
    }
    if let Some((policy, state)) = &ctx.limits.headers {
        headers.insert(RATELIMIT_POLICY.clone(), policy.clone());
        headers.insert(RATELIMIT.clone(), state.clone());
    }
}

fn respond_upstream(
    upstream: Response<UpstreamBody>,
    snapshot: &Snapshot,
    ctx: &RequestCtx,
    id: Option<HeaderValue>,
    on_end: Option<Box<dyn OnResponseEnd>>,
) -> Response<ResponseBody> {
    let (mut parts, body) = upstream.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::SERVER);
    parts.headers.remove(&X_POWERED_BY);
    security_headers(&mut parts.headers, snapshot, ctx, id);
    parts.version = Version::HTTP_11;
    Response::from_parts(parts, ResponseBody::upstream(body, on_end))
}

/// Renders a rejection in the one JSON error shape.
pub(crate) fn respond_rejection(
    rejection: &Rejection,
    snapshot: &Snapshot,
    ctx: &RequestCtx,
    id: Option<HeaderValue>,
    on_end: Option<Box<dyn OnResponseEnd>>,
) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(rejection.body(&ctx.request_id), on_end));
    *response.status_mut() = rejection.status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, JSON.clone());
    headers.insert(header::CACHE_CONTROL, NO_STORE.clone());
    for (name, value) in &rejection.headers {
        headers.insert(name.clone(), value.clone());
    }
    security_headers(headers, snapshot, ctx, id);
    response
}
