//! The limiter the gateway calls: one decision per bucket, from the configured backend.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::gcra::{Gcra, Outcome};
use crate::local::LocalBuckets;
use crate::redis_buckets::{RedisBuckets, RedisConfig};

/// Why a limiter could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimiterError {
    /// The Redis URL is not `redis://[user:password@]host[:port][/db]`. The message never
    /// repeats the URL: it may hold a password.
    #[error("invalid Redis URL: {0}")]
    InvalidRedisUrl(String),
    /// A zero timeout would send every decision to the fallback.
    #[error("the Redis timeout must be more than zero")]
    ZeroTimeout,
}

/// What the limiter does while its shared backend (Redis) is failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FallbackMode {
    /// Enforce every limit in this process alone.
    Local,
    /// Let every request through.
    Allow,
    /// Refuse every limited request (503).
    Deny,
}

/// The wait a `deny` fallback asks for: about when a probe may have found Redis again.
const DENY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Who made a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Served {
    /// The in-process backend (configured as such).
    Local,
    /// Redis.
    Redis,
    /// The in-process buckets, standing in for a failing Redis.
    FallbackLocal,
    /// Allowed without a check: Redis is failing and the fallback is `allow`.
    FallbackAllow,
    /// Refused without a check: Redis is failing and the fallback is `deny`.
    FallbackDeny,
}

impl Served {
    /// Lower-case name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Served::Local => "local",
            Served::Redis => "redis",
            Served::FallbackLocal => "fallback_local",
            Served::FallbackAllow => "fallback_allow",
            Served::FallbackDeny => "fallback_deny",
        }
    }
}

/// One bucket's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// What the bucket said.
    pub outcome: Outcome,
    /// Who said it.
    pub served: Served,
}

#[derive(Debug)]
enum Backend {
    Local,
    Redis(Arc<RedisBuckets>),
}

/// GCRA buckets in the configured backend.
#[derive(Debug)]
pub struct Limiter {
    backend: Backend,
    local: LocalBuckets,
    clock: Arc<dyn Clock>,
}

impl Limiter {
    /// An in-process limiter holding at most `max_buckets` buckets.
    pub fn local(max_buckets: usize, clock: Arc<dyn Clock>) -> Limiter {
        Limiter {
            backend: Backend::Local,
            local: LocalBuckets::new(max_buckets),
            clock,
        }
    }

    /// A limiter whose buckets live in Redis, shared by every gateway using it, with at most
    /// `max_buckets` in-process buckets for the `local` fallback.
    ///
    /// Checks the config but connects nothing and needs no runtime: each worker thread
    /// connects on first use, and a failure to connect is a backend failure like any other.
    pub fn redis(
        config: RedisConfig,
        max_buckets: usize,
        clock: Arc<dyn Clock>,
    ) -> Result<Limiter, LimiterError> {
        Ok(Limiter {
            backend: Backend::Redis(Arc::new(RedisBuckets::new(config)?)),
            local: LocalBuckets::new(max_buckets),
            clock,
        })
    }

    /// The clock decisions are made with.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Whether Redis is failing and the fallback decides. Always false for a local limiter.
    pub fn in_fallback(&self) -> bool {
        match &self.backend {
            Backend::Local => false,
            Backend::Redis(redis) => redis.in_fallback(),
        }
    }

    /// Calls to Redis that failed or timed out since the limiter was built (decisions,
    /// refunds and recovery probes).
    pub fn backend_errors(&self) -> u64 {
        match &self.backend {
            Backend::Local => 0,
            Backend::Redis(redis) => redis.errors(),
        }
    }

    /// Takes one request from `key`'s bucket. Never waits longer than the backend's timeout;
    /// while the backend is failing, does not wait at all.
    pub async fn take(&self, key: &str, limit: &Gcra) -> Decision {
        match &self.backend {
            Backend::Local => Decision {
                outcome: self.local.take(key, limit, self.clock.now_ns()),
                served: Served::Local,
            },
            Backend::Redis(redis) => match redis.take(key, limit, self.clock.now_ns()).await {
                Some(outcome) => Decision {
                    outcome,
                    served: Served::Redis,
                },
                None => self.fallback(redis.fallback(), key, limit),
            },
        }
    }

    fn fallback(&self, mode: FallbackMode, key: &str, limit: &Gcra) -> Decision {
        match mode {
            FallbackMode::Local => Decision {
                outcome: self.local.take(key, limit, self.clock.now_ns()),
                served: Served::FallbackLocal,
            },
            FallbackMode::Allow => Decision {
                outcome: Outcome {
                    allowed: true,
                    remaining: limit.burst,
                    reset: Duration::ZERO,
                    retry_after: Duration::ZERO,
                },
                served: Served::FallbackAllow,
            },
            FallbackMode::Deny => Decision {
                outcome: Outcome {
                    allowed: false,
                    remaining: 0,
                    reset: DENY_RETRY_AFTER,
                    retry_after: DENY_RETRY_AFTER,
                },
                served: Served::FallbackDeny,
            },
        }
    }

    /// Gives back a request taken by [`Limiter::take`] (when a later limit refused it).
    /// A Redis refund runs in a background task: this never waits for Redis.
    pub fn refund(&self, key: &str, limit: &Gcra, served: Served) {
        match served {
            Served::Local | Served::FallbackLocal => self.local.refund(key, limit),
            Served::Redis => match &self.backend {
                Backend::Local => {}
                Backend::Redis(redis) => {
                    redis.refund_in_background(key, limit, self.clock.now_ns());
                }
            },
            Served::FallbackAllow | Served::FallbackDeny => {}
        }
    }
}
