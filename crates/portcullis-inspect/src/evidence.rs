//! Evidence for logs: short, printable, with credentials and token-like runs redacted.

use crate::detect::Hit;
use crate::extract::Value;

/// Longest evidence kept, in characters.
const MAX_EVIDENCE: usize = 96;
/// Runs of token characters at least this long look like secrets.
const TOKEN_RUN: usize = 32;

pub(crate) fn render(value: &Value<'_>, hit: &Hit) -> String {
    if value.secret {
        return "[redacted]".to_string();
    }
    let src = if hit.snippet.is_empty() {
        value.variants.last()
    } else {
        hit.snippet.as_str()
    };
    redact(src)
}

/// Truncates, escapes control characters and hides long token-like runs (JWTs, keys).
pub(crate) fn redact(src: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.chars().count() >= TOKEN_RUN {
            let head: String = run.chars().take(4).collect();
            out.push_str(&head);
            out.push_str("…[redacted]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for (count, c) in src.chars().enumerate() {
        if count >= MAX_EVIDENCE {
            flush(&mut run, &mut out);
            out.push('…');
            return out;
        }
        if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+' | '/' | '=') {
            run.push(c);
            continue;
        }
        flush(&mut run, &mut out);
        if c.is_control() {
            out.push_str(&c.escape_default().to_string());
        } else {
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_tokens_and_truncates() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefghijklmnop";
        let r = redact(&format!("token={jwt}' or 1=1"));
        assert!(!r.contains("eyJzdWIi"));
        assert!(r.contains("[redacted]"));
        let long = "a ".repeat(200);
        assert!(redact(&long).chars().count() <= MAX_EVIDENCE + 2);
        assert_eq!(redact("a\r\nb"), "a\\r\\nb");
    }
}
