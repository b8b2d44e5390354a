//! Portcullis rate limiting, with no knowledge of HTTP.
//!
//! - [`Gcra`]: the algorithm (one timestamp per bucket).
//! - [`Limiter`]: buckets in process ([`LocalBuckets`]) or in Redis ([`RedisConfig`]), with
//!   the fallback behaviour chosen for when Redis fails.
//! - [`QuotaCounters`]: calendar quotas counted in memory, persisted by the gateway.
//! - [`Concurrency`]: in-flight request limits.

pub mod clock;
pub mod concurrency;
pub mod gcra;
pub mod limiter;
pub mod local;
pub mod quota;
pub mod rate;
mod redis_buckets;

pub use clock::{Clock, ManualClock, SystemClock};
pub use concurrency::{Concurrency, Permit};
pub use gcra::{Gcra, Outcome};
pub use limiter::{Decision, FallbackMode, Limiter, LimiterError, Served};
pub use local::LocalBuckets;
pub use quota::{window, QuotaCounters, QuotaDelta, QuotaOutcome};
pub use rate::{ParseError, Quota, QuotaPeriod, Rate};
pub use redis_buckets::{RedisConfig, PROBE_INTERVAL};
