//! The limiter the gateway calls: one decision per bucket, from the configured backend.

use std::sync::Arc;

use crate::clock::Clock;
use crate::gcra::{Gcra, Outcome};
use crate::local::LocalBuckets;

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

    /// The clock decisions are made with.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Takes one request from `key`'s bucket. Never waits longer than the backend's timeout.
    pub async fn take(&self, key: &str, limit: &Gcra) -> Decision {
        match self.backend {
            Backend::Local => Decision {
                outcome: self.local.take(key, limit, self.clock.now_ns()),
                served: Served::Local,
            },
        }
    }

    /// Gives back a request taken by [`Limiter::take`] (when a later limit refused it).
    pub async fn refund(&self, key: &str, limit: &Gcra, served: Served) {
        match served {
            Served::Local | Served::FallbackLocal => self.local.refund(key, limit),
            Served::Redis => match self.backend {
                Backend::Local => {}
            },
            Served::FallbackAllow | Served::FallbackDeny => {}
        }
    }
}
