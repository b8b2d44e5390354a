//! Upstream pools: targets chosen round robin, pooled keep-alive connections, and passive
//! health (a target that refuses connections is taken out of rotation for `fail_timeout`).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::uri::Authority;
use portcullis_config::{ConfigError, Upstream};

use crate::h1_client::{IdleList, UpstreamTls};

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
    /// Targets.
    pub targets: Vec<TargetState>,
    /// Response-head timeout.
    pub timeout: Duration,
    /// Forward the client's `Host`.
    pub preserve_host: bool,
    /// TLS to the targets (`https` upstreams).
    pub(crate) tls: Option<UpstreamTls>,
    /// Bound on opening a connection (TCP and TLS handshake).
    pub(crate) connect_timeout: Duration,
    /// One idle list per data-plane worker, so a connection is only ever used by the thread
    /// whose reactor registered it.
    idle: Vec<Arc<IdleList>>,
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
        let workers = workers.max(1);
        let tls = match &config.tls {
            None => None,
            Some(tls) => {
                let mut client_config =
                    crate::tls::upstream_client_config(tls, &format!("upstream[{index}].tls.ca"))?;
                client_config.alpn_protocols = vec![b"http/1.1".to_vec()];
                let server_name = match &tls.server_name {
                    Some(name) => Some(
                        rustls::pki_types::ServerName::try_from(name.clone()).map_err(|err| {
                            ConfigError {
                                path: format!("upstream[{index}].tls.server_name"),
                                message: format!("\"{name}\": {err}"),
                            }
                        })?,
                    ),
                    None => None,
                };
                let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
                Some(UpstreamTls {
                    connector,
                    server_name,
                })
            }
        };
        let idle = (0..workers)
            .map(|_| {
                Arc::new(IdleList::new(
                    config.max_idle_per_target,
                    config.idle_timeout,
                ))
            })
            .collect();
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
            targets,
            timeout: config.timeout,
            preserve_host: config.preserve_host,
            tls,
            connect_timeout: config.connect_timeout,
            idle,
            next: AtomicUsize::new(0),
            fail_timeout: config.fail_timeout,
            epoch: Instant::now(),
        })
    }

    /// The idle connections of the worker running on this thread.
    pub(crate) fn idle_list(&self) -> Arc<IdleList> {
        Arc::clone(&self.idle[crate::server::worker_index() % self.idle.len()])
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
