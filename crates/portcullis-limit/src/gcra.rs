//! The generic cell rate algorithm: one timestamp per bucket, the theoretical arrival time
//! (TAT) of the next request. No counters, no windows, so no burst at window edges.
//!
//! With an emission interval `T = period / count` and a capacity of `burst` requests, a
//! request arriving at `now` is allowed when `TAT − now ≤ (burst − 1)·T`, and then moves the
//! TAT to `max(TAT, now) + T`. A client sending faster than the rate gets exactly
//! `burst + rate × t` requests through over `t`: the burst at once, then one per interval.
//! Times are in nanoseconds of any monotonic clock; the Redis script applies the same
//! arithmetic in microseconds.

use std::time::Duration;

use crate::rate::Rate;

/// A compiled rate limit: emission interval and burst tolerance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gcra {
    /// Nanoseconds between requests at the steady rate.
    pub interval_ns: u64,
    /// How far the TAT may run ahead of now: `(burst − 1) × interval`.
    pub tolerance_ns: u64,
    /// The capacity: requests that may arrive at once.
    pub burst: u64,
    /// The rate as configured (for headers).
    pub rate: Rate,
}

/// What a bucket said about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the request is allowed (and was counted).
    pub allowed: bool,
    /// Requests that would be allowed right now, after this one.
    pub remaining: u64,
    /// Time until the bucket is full again.
    pub reset: Duration,
    /// For a refused request: the time until the same request would be allowed.
    pub retry_after: Duration,
}

impl Gcra {
    /// A limit of `rate` with a capacity of `burst` requests (at least 1).
    pub fn new(rate: Rate, burst: u64) -> Gcra {
        let burst = burst.max(1);
        let period_ns = u64::try_from(rate.period.as_nanos()).unwrap_or(u64::MAX);
        let interval_ns = (period_ns / rate.count.max(1)).max(1);
        Gcra {
            interval_ns,
            tolerance_ns: interval_ns.saturating_mul(burst - 1),
            burst,
            rate,
        }
    }

    /// Judges a request at `now` against a bucket whose TAT is `tat` (`None`: a new or
    /// expired bucket). Returns the outcome and the TAT to store (unchanged when refused:
    /// refused requests are never counted).
    pub fn take(&self, tat: Option<u64>, now: u64) -> (Outcome, Option<u64>) {
        let tat = tat.map_or(now, |tat| tat.max(now));
        let ahead = tat - now;
        if ahead > self.tolerance_ns {
            let wait = ahead - self.tolerance_ns;
            return (
                Outcome {
                    allowed: false,
                    remaining: 0,
                    reset: Duration::from_nanos(ahead),
                    retry_after: Duration::from_nanos(wait),
                },
                None,
            );
        }
        let new_tat = tat.saturating_add(self.interval_ns);
        (self.outcome_after(new_tat, now), Some(new_tat))
    }

    /// The state of a bucket with TAT `tat` at `now`, without taking anything.
    pub fn peek(&self, tat: Option<u64>, now: u64) -> Outcome {
        self.outcome_after(tat.unwrap_or(now).max(now), now)
    }

    fn outcome_after(&self, tat: u64, now: u64) -> Outcome {
        let ahead = tat.saturating_sub(now);
        // Further requests allowed now: k such that ahead + (k − 1)·T ≤ tolerance.
        let remaining = if ahead > self.tolerance_ns + self.interval_ns {
            0
        } else {
            (self.tolerance_ns + self.interval_ns - ahead) / self.interval_ns
        };
        Outcome {
            allowed: true,
            remaining: remaining.min(self.burst),
            reset: Duration::from_nanos(ahead),
            retry_after: Duration::ZERO,
        }
    }

    /// The TAT after giving back one request taken at some earlier time.
    pub fn refund(&self, tat: u64) -> u64 {
        tat.saturating_sub(self.interval_ns)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn gcra(rate: &str, burst: u64) -> Gcra {
        Gcra::new(rate.parse().unwrap(), burst)
    }

    /// Sends `per_second` evenly spaced requests for `seconds`; returns how many passed.
    fn drive(limit: &Gcra, per_second: u64, seconds: u64) -> u64 {
        let mut tat = None;
        let mut allowed = 0;
        for i in 0..per_second * seconds {
            let now = 1_000 * SECOND + i * SECOND / per_second;
            let (outcome, next) = limit.take(tat, now);
            if outcome.allowed {
                allowed += 1;
                tat = next;
            } else {
                assert_eq!(next, None, "a refused request must not move the bucket");
            }
        }
        allowed
    }

    #[test]
    fn three_times_the_rate_gets_burst_plus_rate_times_t() {
        for (rate, burst, count) in [("100/s", 20, 100), ("10/s", 1, 10), ("7/s", 7, 7)] {
            let limit = gcra(rate, burst);
            for seconds in [1, 5, 30] {
                let allowed = drive(&limit, 3 * count, seconds);
                let expected = burst + count * seconds;
                assert!(
                    allowed.abs_diff(expected) <= 1,
                    "{rate} burst {burst} over {seconds}s: {allowed} allowed, expected {expected}"
                );
            }
        }
    }

    #[test]
    fn burst_arrives_at_once_then_refills_at_the_rate() {
        let limit = gcra("10/s", 5);
        let now = 50 * SECOND;
        let mut tat = None;
        for left in (0..5).rev() {
            let (outcome, next) = limit.take(tat, now);
            assert!(outcome.allowed);
            assert_eq!(outcome.remaining, left);
            tat = next;
        }
        let (refused, next) = limit.take(tat, now);
        assert!(!refused.allowed);
        assert_eq!(next, None);
        assert_eq!(refused.retry_after, Duration::from_millis(100));
        // Exactly the wait it was told: allowed.
        let later = now + u64::try_from(refused.retry_after.as_nanos()).unwrap();
        assert!(limit.take(tat, later).0.allowed);
        // A moment before: still refused.
        assert!(!limit.take(tat, later - 1).0.allowed);
    }

    #[test]
    fn refund_gives_back_exactly_one() {
        let limit = gcra("1/s", 1);
        let (_, tat) = limit.take(None, 10 * SECOND);
        assert!(!limit.take(tat, 10 * SECOND).0.allowed);
        let refunded = limit.refund(tat.unwrap());
        assert!(limit.take(Some(refunded), 10 * SECOND).0.allowed);
    }

    #[test]
    fn reset_is_time_to_full() {
        let limit = gcra("10/s", 10);
        let (outcome, _) = limit.take(None, SECOND);
        assert_eq!(outcome.remaining, 9);
        assert_eq!(outcome.reset, Duration::from_millis(100));
        assert_eq!(limit.peek(None, SECOND).remaining, 10);
    }
}
