//! Rates (`"100/s"`) and quotas (`"100000/month"`) as written in config and key overrides.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Why a rate or quota text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

/// `count` requests per `period`, e.g. `100/s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// Requests per period (≥ 1).
    pub count: u64,
    /// The period (one second, minute, hour or day).
    pub period: Duration,
}

impl Rate {
    /// Most requests one rate may allow per period.
    pub const MAX_COUNT: u64 = 1_000_000_000;

    /// The period's unit as written back (`s`, `m`, `h`, `d`).
    pub fn unit(&self) -> &'static str {
        match self.period.as_secs() {
            1 => "s",
            60 => "m",
            3600 => "h",
            _ => "d",
        }
    }
}

impl FromStr for Rate {
    type Err = ParseError;

    /// `N/UNIT` with UNIT one of `s`, `sec`, `second`, `m`, `min`, `minute`, `h`, `hour`, `d`,
    /// `day`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (count, unit) = split(text, "a rate such as \"100/s\" or \"1000/h\"")?;
        let period = match unit {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86_400,
            other => {
                return Err(ParseError(format!(
                    "unknown rate unit \"{other}\" (use s, m, h or d)"
                )))
            }
        };
        if count > Rate::MAX_COUNT {
            return Err(ParseError(format!(
                "{count} requests per period is more than {} ",
                Rate::MAX_COUNT
            )));
        }
        Ok(Rate {
            count,
            period: Duration::from_secs(period),
        })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, self.unit())
    }
}

/// A calendar period of a quota, aligned in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaPeriod {
    /// From 00:00:00 UTC to the next midnight.
    Day,
    /// From the first of the month, 00:00:00 UTC, to the first of the next.
    Month,
}

impl QuotaPeriod {
    /// `day` or `month`.
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaPeriod::Day => "day",
            QuotaPeriod::Month => "month",
        }
    }
}

impl FromStr for QuotaPeriod {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "day" | "d" => Ok(QuotaPeriod::Day),
            "month" => Ok(QuotaPeriod::Month),
            other => Err(ParseError(format!(
                "unknown quota period \"{other}\" (use day or month)"
            ))),
        }
    }
}

/// `requests` per calendar `period`, e.g. `100000/month`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    /// Requests allowed per period (≥ 1).
    pub requests: u64,
    /// The calendar period.
    pub period: QuotaPeriod,
}

impl FromStr for Quota {
    type Err = ParseError;

    /// `N/day` or `N/month`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (requests, period) = split(text, "a quota such as \"1000/day\" or \"100000/month\"")?;
        Ok(Quota {
            requests,
            period: period.parse()?,
        })
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.requests, self.period.as_str())
    }
}

fn split<'a>(text: &'a str, expected: &str) -> Result<(u64, &'a str), ParseError> {
    let Some((count, unit)) = text.trim().split_once('/') else {
        return Err(ParseError(format!("\"{text}\" is not {expected}")));
    };
    let count: u64 = count
        .trim()
        .parse()
        .map_err(|_| ParseError(format!("\"{text}\" is not {expected}")))?;
    if count == 0 {
        return Err(ParseError(format!(
            "\"{text}\": the count must be at least 1"
        )));
    }
    Ok((count, unit.trim()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn rates() {
        assert_eq!(
            "100/s".parse::<Rate>().unwrap(),
            Rate {
                count: 100,
                period: Duration::from_secs(1)
            }
        );
        assert_eq!("1000/hour".parse::<Rate>().unwrap().period.as_secs(), 3600);
        assert_eq!("5 / min".parse::<Rate>().unwrap().to_string(), "5/m");
        for bad in [
            "",
            "100",
            "0/s",
            "-1/s",
            "10/week",
            "ten/s",
            "1/",
            "99999999999/s",
        ] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn quotas() {
        let quota: Quota = "1000/day".parse().unwrap();
        assert_eq!(quota.period, QuotaPeriod::Day);
        assert_eq!("5/month".parse::<Quota>().unwrap().to_string(), "5/month");
        for bad in ["1000/week", "0/day", "x/day", "day"] {
            assert!(bad.parse::<Quota>().is_err(), "{bad}");
        }
    }
}
