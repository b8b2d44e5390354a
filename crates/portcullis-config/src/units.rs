//! Human-friendly units in config values: byte sizes and durations.

use std::time::Duration;

/// Parses a byte size: a bare integer (bytes) or a number with a unit
/// (`B`, `KB`, `KiB`, `MB`, `MiB`, `GB`, `GiB`; case-insensitive, optional space).
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(format!(
            "\"{text}\" is not a size: expected a number with an optional unit, e.g. \"1 MiB\""
        ));
    }
    let number: u64 = number
        .parse()
        .map_err(|_| format!("\"{text}\" is too large a number"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" | "k" => 1024,
        "mb" => 1000 * 1000,
        "mib" | "m" => 1024 * 1024,
        "gb" => 1000 * 1000 * 1000,
        "gib" | "g" => 1024 * 1024 * 1024,
        other => {
            return Err(format!(
                "unknown size unit \"{other}\" in \"{text}\": use B, KB, KiB, MB, MiB, GB or GiB"
            ))
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("\"{text}\" is too large"))
}

/// Parses a duration such as `"30s"`, `"250ms"` or `"1m 30s"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|err| {
        format!("\"{text}\" is not a duration ({err}): use e.g. \"30s\" or \"250ms\"")
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_byte_size("1 MiB").unwrap(), 1 << 20);
        assert_eq!(parse_byte_size("16384").unwrap(), 16384);
        assert_eq!(parse_byte_size("2kb").unwrap(), 2000);
        assert!(parse_byte_size("MiB").is_err());
        assert!(parse_byte_size("1 parsec").is_err());
        assert!(parse_byte_size("99999999999999999999").is_err());
        assert!(parse_byte_size("99999999999 GiB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("soon").is_err());
    }
}
