//! Upstream pools: targets chosen round robin, pooled keep-alive connections, and passive
//! health (a target that refuses connections is taken out of rotation for `fail_timeout`).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::uri::{Authority, Scheme};
use hyper_rustls::{FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use portcullis_config::{ConfigError, Upstream};

use crate::body::RequestBody;

/// The pooled HTTP client of one upstream and one worker.
#[derive(Clone)]
pub enum UpstreamClient {
    /// Plain HTTP targets.
    Plain(Client<HttpConnector, RequestBody>),
    /// HTTPS targets, verified against the upstream's CA.
    Tls(Client<HttpsConnector<HttpConnector>, RequestBody>),
}

impl UpstreamClient {
    /// Sends a request on a pooled connection.
    pub fn request(&self, request: http::Request<RequestBody>) -> ResponseFuture {
        match self {
            UpstreamClient::Plain(client) => client.request(request),
            UpstreamClient::Tls(client) => client.request(request),
        }
    }
}

/// One target and its health.
#[derive(Debug)]
pub struct TargetState {
    /// `host:port`, as sent in the URI.
    pub authority: Authority,
    /// Milliseconds since the pool's epoch until which the target is out of rotation.
    down_until_ms: AtomicU64,
}

/// A named group of targets and its connection pool.
pub struct UpstreamPool {
    /// Name, for logs and metrics.
    pub name: Arc<str>,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Targets.
    pub targets: Vec<TargetState>,
    /// Response-head timeout.
    pub timeout: Duration,
    /// Forward the client's `Host`.
    pub preserve_host: bool,
    /// One pooled client per data-plane worker, so a connection is only ever used by the
    /// thread whose runtime drives it.
    clients: Vec<UpstreamClient>,
    next: AtomicUsize,
    fail_timeout: Duration,
    epoch: Instant,
}

impl std::fmt::Debug for UpstreamPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamPool")
            .field("name", &self.name)
            .field("targets", &self.targets)
            .finish()
    }
}

impl UpstreamPool {
    /// Builds the pool for an upstream; `index` is its position in the config (for errors).
    pub fn new(config: &Upstream, index: usize, workers: usize) -> Result<Self, ConfigError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        let builder = || {
            let mut builder = Client::builder(TokioExecutor::new());
            builder
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .pool_idle_timeout(config.idle_timeout)
                .pool_max_idle_per_host(config.max_idle_per_target);
            builder
        };
        let workers = workers.max(1);
        let (scheme, clients) = match &config.tls {
            // Plain upstreams get the plain connector: the TLS wrapper would be cloned and
            // dropped on every request for nothing.
            None => {
                let clients = (0..workers)
                    .map(|_| UpstreamClient::Plain(builder().build(http.clone())))
                    .collect();
                (Scheme::HTTP, clients)
            }
            Some(tls) => {
                let client_config =
                    crate::tls::upstream_client_config(tls, &format!("upstream[{index}].tls.ca"))?;
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(client_config)
                    .https_only();
                let connector = match &tls.server_name {
                    Some(name) => {
                        let name = rustls::pki_types::ServerName::try_from(name.clone()).map_err(
                            |err| ConfigError {
                                path: format!("upstream[{index}].tls.server_name"),
                                message: format!("\"{name}\": {err}"),
                            },
                        )?;
                        connector.with_server_name_resolver(FixedServerNameResolver::new(name))
                    }
                    None => connector,
                };
                let connector = connector.enable_http1().wrap_connector(http);
                let clients = (0..workers)
                    .map(|_| UpstreamClient::Tls(builder().build(connector.clone())))
                    .collect();
                (Scheme::HTTPS, clients)
            }
        };
        let targets = config
            .targets
            .iter()
            .enumerate()
            .map(|(t, target)| {
                let authority =
                    target
                        .to_string()
                        .parse::<Authority>()
                        .map_err(|err| ConfigError {
                            path: format!("upstream[{index}].targets[{t}]"),
                            message: format!("\"{target}\" is not a valid authority: {err}"),
                        })?;
                Ok(TargetState {
                    authority,
                    down_until_ms: AtomicU64::new(0),
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        Ok(Self {
            name: Arc::from(config.name.as_str()),
            scheme,
            targets,
            timeout: config.timeout,
            preserve_host: config.preserve_host,
            clients,
            next: AtomicUsize::new(0),
            fail_timeout: config.fail_timeout,
            epoch: Instant::now(),
        })
    }

    /// The client of the worker running on this thread.
    pub fn client(&self) -> &UpstreamClient {
        &self.clients[crate::server::worker_index() % self.clients.len()]
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The next target in rotation that is not marked down; when every target is down, the
    /// next one anyway (so a recovered target is found without waiting for the timeout).
    pub fn pick(&self) -> usize {
        let count = self.targets.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        if count == 1 {
            return 0;
        }
        let now = self.now_ms();
        for offset in 0..count {
            let index = (start + offset) % count;
            if self.targets[index].down_until_ms.load(Ordering::Relaxed) <= now {
                return index;
            }
        }
        start % count
    }

    /// Takes a target out of rotation for `fail_timeout`.
    pub fn mark_failed(&self, index: usize) {
        if let Some(target) = self.targets.get(index) {
            let until = self
                .now_ms()
                .saturating_add(u64::try_from(self.fail_timeout.as_millis()).unwrap_or(u64::MAX));
            target.down_until_ms.store(until, Ordering::Relaxed);
        }
    }
}
