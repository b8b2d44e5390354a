//! Time for limits and quotas, injectable so tests can step it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch. Rate-limit buckets need it to be monotonic; quota
/// windows need it to be close to UTC.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in nanoseconds since the Unix epoch.
    fn now_ns(&self) -> u64;
}

/// The wall clock read once at start, then advanced by the monotonic clock: never steps
/// backwards when the system time is changed, so a bucket never owes time it did not use.
#[derive(Debug)]
pub struct SystemClock {
    base_ns: u64,
    start: Instant,
}

impl SystemClock {
    /// Anchors at the current system time.
    pub fn new() -> SystemClock {
        let base_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        SystemClock {
            base_ns,
            start: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now_ns(&self) -> u64 {
        self.base_ns
            .saturating_add(u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }
}

/// A clock that moves only when told to (tests, simulations).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock standing at `ns` since the Unix epoch.
    pub fn at(ns: u64) -> ManualClock {
        ManualClock(AtomicU64::new(ns))
    }

    /// Moves the clock to `ns`.
    pub fn set(&self, ns: u64) {
        self.0.store(ns, Ordering::SeqCst);
    }

    /// Moves the clock forward by `ns`.
    pub fn advance(&self, ns: u64) {
        self.0.fetch_add(ns, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
