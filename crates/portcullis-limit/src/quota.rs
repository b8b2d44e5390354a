//! Quota counters: requests per calendar day or month (UTC), counted in memory on the request
//! path and written to the store in batches by the gateway.
//!
//! Each counter keeps what the store last said (`stored`) and what this process counted
//! since (`pending`). [`QuotaCounters::drain`] hands the pending counts to the writer;
//! [`QuotaCounters::settle`] takes the totals the store answers with, which include other
//! gateways' counts. A request is allowed while `stored + pending < limit`.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::Duration;

use crate::rate::{Quota, QuotaPeriod};

const DAY_MS: i64 = 86_400_000;

/// How long a counter whose period is not known here (one restored or read back from the
/// store) is kept at most: longer than any month. It only bounds when the counter is
/// forgotten, never what it allows.
const LONGEST_WINDOW_MS: i64 = 32 * DAY_MS;

/// The calendar window containing `unix_ms`: `(start, end)` in Unix milliseconds, UTC.
pub fn window(period: QuotaPeriod, unix_ms: i64) -> (i64, i64) {
    match period {
        QuotaPeriod::Day => {
            let start = unix_ms.div_euclid(DAY_MS) * DAY_MS;
            (start, start + DAY_MS)
        }
        QuotaPeriod::Month => {
            let (year, month, _) = civil_from_days(unix_ms.div_euclid(DAY_MS));
            let start = days_from_civil(year, month, 1) * DAY_MS;
            let (next_year, next_month) = if month == 12 {
                (year + 1, 1)
            } else {
                (year, month + 1)
            };
            (start, days_from_civil(next_year, next_month, 1) * DAY_MS)
        }
    }
}

/// Days since 1970-01-01 → (year, month 1–12, day 1–31), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month, day) → days since 1970-01-01.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// What a quota said about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaOutcome {
    /// Whether the request is allowed (and was counted).
    pub allowed: bool,
    /// Requests left in this window after this one.
    pub remaining: u64,
    /// Time until the window ends.
    pub reset: Duration,
    /// Length of the window (a day, or this month).
    pub window: Duration,
}

/// Counts of one bucket in one window, to be added to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaDelta {
    /// The bucket.
    pub bucket: String,
    /// Start of the window, Unix milliseconds.
    pub window_start: i64,
    /// Requests counted here since the last batch.
    pub delta: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Count {
    stored: u64,
    pending: u64,
    window_end: i64,
}

type Shard = HashMap<(Box<str>, i64), Count>;

/// Quota counters of this process.
#[derive(Debug)]
pub struct QuotaCounters {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
}

impl Default for QuotaCounters {
    fn default() -> Self {
        QuotaCounters::new()
    }
}

impl QuotaCounters {
    /// No counts yet.
    pub fn new() -> QuotaCounters {
        QuotaCounters {
            shards: (0..64).map(|_| Mutex::new(Shard::new())).collect(),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, bucket: &str) -> std::sync::MutexGuard<'_, Shard> {
        let index = (self.hasher.hash_one(bucket) as usize) & (self.shards.len() - 1);
        self.shards[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one request against `quota` in `bucket` at `unix_ms`, unless the window's
    /// quota is spent.
    pub fn take(&self, bucket: &str, quota: &Quota, unix_ms: i64) -> QuotaOutcome {
        let (start, end) = window(quota.period, unix_ms);
        let reset = Duration::from_millis(u64::try_from(end - unix_ms).unwrap_or(0));
        let length = Duration::from_millis(u64::try_from(end - start).unwrap_or(0));
        let mut shard = self.shard(bucket);
        let count = shard
            .entry((bucket.into(), start))
            .or_insert_with(|| Count {
                window_end: end,
                ..Count::default()
            });
        let used = count.stored + count.pending;
        if used >= quota.requests {
            return QuotaOutcome {
                allowed: false,
                remaining: 0,
                reset,
                window: length,
            };
        }
        count.pending += 1;
        QuotaOutcome {
            allowed: true,
            remaining: quota.requests - used - 1,
            reset,
            window: length,
        }
    }

    /// Gives back one request counted by [`QuotaCounters::take`] at `unix_ms`.
    pub fn refund(&self, bucket: &str, quota: &Quota, unix_ms: i64) {
        let (start, _) = window(quota.period, unix_ms);
        if let Some(count) = self.shard(bucket).get_mut(&(bucket.into(), start)) {
            if count.pending > 0 {
                count.pending -= 1;
            } else {
                count.stored = count.stored.saturating_sub(1);
            }
        }
    }

    /// Requests used in `bucket`'s current window (stored and pending).
    pub fn used(&self, bucket: &str, quota: &Quota, unix_ms: i64) -> u64 {
        let (start, _) = window(quota.period, unix_ms);
        self.shard(bucket)
            .get(&(bucket.into(), start))
            .map_or(0, |c| c.stored + c.pending)
    }

    /// Takes the counts not yet written; they count as stored from now on. Windows that
    /// ended before `unix_ms` and have nothing pending are forgotten.
    pub fn drain(&self, unix_ms: i64) -> Vec<QuotaDelta> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let mut shard = shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            shard.retain(|(bucket, start), count| {
                if count.pending > 0 {
                    out.push(QuotaDelta {
                        bucket: bucket.to_string(),
                        window_start: *start,
                        delta: count.pending,
                    });
                    count.stored += count.pending;
                    count.pending = 0;
                }
                count.window_end > unix_ms
            });
        }
        out
    }

    /// Puts back counts whose write failed, to go with the next batch.
    pub fn restore(&self, deltas: &[QuotaDelta]) {
        for delta in deltas {
            let mut shard = self.shard(&delta.bucket);
            let count = shard
                .entry((delta.bucket.as_str().into(), delta.window_start))
                .or_insert_with(|| Count {
                    window_end: delta.window_start + LONGEST_WINDOW_MS,
                    ..Count::default()
                });
            count.stored = count.stored.saturating_sub(delta.delta);
            count.pending += delta.delta;
        }
    }

    /// Takes the store's total for a window (which includes other gateways' counts).
    pub fn settle(&self, bucket: &str, window_start: i64, used: u64) {
        let mut shard = self.shard(bucket);
        let count = shard
            .entry((bucket.into(), window_start))
            .or_insert_with(|| Count {
                window_end: window_start + LONGEST_WINDOW_MS,
                ..Count::default()
            });
        count.stored = count.stored.max(used);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// 2026-11-22T23:59:59.999Z
    const NOV_22_LAST_MS: i64 = 1_795_391_999_999;

    #[test]
    fn calendar_windows_in_utc() {
        let (start, end) = window(QuotaPeriod::Day, NOV_22_LAST_MS);
        assert_eq!(end, NOV_22_LAST_MS + 1);
        assert_eq!(end - start, DAY_MS);
        // November 2026 has 30 days; December starts at 2026-12-01T00:00:00Z.
        let (start, end) = window(QuotaPeriod::Month, NOV_22_LAST_MS);
        assert_eq!(start, 1_793_491_200_000);
        assert_eq!(end, 1_796_083_200_000);
        // February of a leap year.
        let feb_2028 = days_from_civil(2028, 2, 15) * DAY_MS;
        let (start, end) = window(QuotaPeriod::Month, feb_2028);
        assert_eq!((end - start) / DAY_MS, 29);
        for days in [-1000, 0, 59, 60, 365, 11_000, 20_000, 60_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn quota_rolls_over_at_midnight_utc() {
        let counters = QuotaCounters::new();
        let quota: Quota = "3/day".parse().unwrap();
        for left in [2, 1, 0] {
            let outcome = counters.take("k", &quota, NOV_22_LAST_MS - 10);
            assert!(outcome.allowed);
            assert_eq!(outcome.remaining, left);
        }
        let refused = counters.take("k", &quota, NOV_22_LAST_MS);
        assert!(!refused.allowed);
        assert_eq!(refused.reset, Duration::from_millis(1));
        assert_eq!(refused.window, Duration::from_secs(86_400));
        // One millisecond later it is a new day.
        assert!(counters.take("k", &quota, NOV_22_LAST_MS + 1).allowed);
    }

    #[test]
    fn drained_counts_stay_counted_and_failed_writes_come_back() {
        let counters = QuotaCounters::new();
        let quota: Quota = "2/day".parse().unwrap();
        let now = NOV_22_LAST_MS - 1000;
        counters.take("k", &quota, now);
        let batch = counters.drain(now);
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].delta, 1);
        assert_eq!(counters.used("k", &quota, now), 1);
        assert!(counters.drain(now).is_empty());
        counters.restore(&batch);
        assert_eq!(counters.drain(now)[0].delta, 1);
        // Another gateway used one more: the store's total wins.
        let (start, end) = window(QuotaPeriod::Day, now);
        counters.settle("k", start, 2);
        assert!(!counters.take("k", &quota, now).allowed);
        // Ended windows are forgotten.
        counters.drain(end);
        assert_eq!(counters.used("k", &quota, now), 0);
    }
}
