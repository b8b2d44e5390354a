//! Timestamps and the injected clock.
//!
//! Times are integer Unix milliseconds everywhere: in memory, in both databases (a `BIGINT`
//! column, so the SQLite and PostgreSQL schemas are identical) and in comparisons. They
//! print and serialize as RFC 3339 (`2026-01-02T03:04:05.678Z`).

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time: milliseconds since the Unix epoch, between 1970-01-01T00:00:00.000Z
/// and 9999-12-31T23:59:59.999Z inclusive (the range RFC 3339 can print).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The earliest representable time, the Unix epoch.
    pub const MIN: Timestamp = Timestamp(0);
    /// The latest representable time, 9999-12-31T23:59:59.999Z.
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999);

    /// A timestamp from Unix milliseconds; `None` outside [`Timestamp::MIN`]..=[`Timestamp::MAX`].
    pub fn from_unix_millis(millis: i64) -> Option<Timestamp> {
        (Self::MIN.0..=Self::MAX.0)
            .contains(&millis)
            .then_some(Timestamp(millis))
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(self) -> i64 {
        self.0
    }

    /// The current wall-clock time (clamped into the representable range).
    pub fn now() -> Timestamp {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp(millis.clamp(Self::MIN.0, Self::MAX.0))
    }

    /// `self + duration`, clamped to [`Timestamp::MAX`].
    pub fn saturating_add(self, duration: Duration) -> Timestamp {
        let add = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(add).min(Self::MAX.0))
    }

    /// `self - duration`, clamped to [`Timestamp::MIN`].
    pub fn saturating_sub(self, duration: Duration) -> Timestamp {
        let sub = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_sub(sub).max(Self::MIN.0))
    }

    /// Parses RFC 3339 (`2026-01-02T03:04:05Z`, fractional seconds allowed, `Z` only).
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp, TimestampParseError> {
        let time = humantime::parse_rfc3339_weak(text)
            .map_err(|err| TimestampParseError(err.to_string()))?;
        let millis = time
            .duration_since(UNIX_EPOCH)
            .map_err(|_| TimestampParseError("time is before 1970".to_owned()))?
            .as_millis();
        i64::try_from(millis)
            .ok()
            .and_then(Timestamp::from_unix_millis)
            .ok_or_else(|| TimestampParseError("time is after year 9999".to_owned()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The invariant (0..=MAX) keeps humantime inside the range it can format.
        let time = UNIX_EPOCH + Duration::from_millis(self.0.unsigned_abs());
        write!(f, "{}", humantime::format_rfc3339_millis(time))
    }
}

/// A string that is not an RFC 3339 time in the supported range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC 3339 time: {0}")]
pub struct TimestampParseError(String);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

/// Where the store gets "now" from. Injected so tests can move time without sleeping
/// (expiry, rotation grace).
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(start.0)))
    }

    /// Sets the time.
    pub fn set(&self, now: Timestamp) {
        self.0.store(now.0, Ordering::SeqCst);
    }

    /// Moves the time forward by `by` (clamped to [`Timestamp::MAX`]).
    pub fn advance(&self, by: Duration) {
        let next = self.now().saturating_add(by);
        self.set(next);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn range_and_printing() {
        assert_eq!(Timestamp::from_unix_millis(-1), None);
        assert_eq!(Timestamp::from_unix_millis(Timestamp::MAX.0 + 1), None);
        assert_eq!(Timestamp::MIN.to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(Timestamp::MAX.to_string(), "9999-12-31T23:59:59.999Z");
        assert_eq!(
            Timestamp::MAX.saturating_add(Duration::from_secs(1)),
            Timestamp::MAX
        );
        assert_eq!(
            Timestamp::MIN.saturating_sub(Duration::from_secs(1)),
            Timestamp::MIN
        );
    }

    #[test]
    fn serde_round_trip() {
        let t = Timestamp::from_unix_millis(1_767_225_600_123).unwrap();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2026-01-01T00:00:00.123Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp::MIN);
        let shared = clock.clone();
        clock.advance(Duration::from_secs(2));
        assert_eq!(shared.now().unix_millis(), 2000);
    }
}
