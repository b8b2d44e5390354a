//! Secrets that never print.

use std::fmt;

/// A secret value read from config. `Debug` and `Display` print `[redacted]`, so a secret
/// cannot leak through a log line, an error message or a `{:?}` of the config.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself. Call sites are easy to audit: grep for `expose`.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Resolves a secret reference from config: `env:NAME` reads an environment variable,
/// `file:PATH` reads a file (one trailing newline trimmed); anything else is the literal value.
pub fn resolve_secret(reference: &str) -> Result<Secret<String>, String> {
    if let Some(name) = reference.strip_prefix("env:") {
        return match std::env::var(name) {
            Ok(value) if !value.is_empty() => Ok(Secret::new(value)),
            Ok(_) => Err(format!("environment variable {name} is empty")),
            Err(_) => Err(format!("environment variable {name} is not set")),
        };
    }
    if let Some(path) = reference.strip_prefix("file:") {
        return match std::fs::read_to_string(path) {
            Ok(value) => {
                let value = value.strip_suffix('\n').unwrap_or(&value);
                let value = value.strip_suffix('\r').unwrap_or(value);
                if value.is_empty() {
                    Err(format!("secret file \"{path}\" is empty"))
                } else {
                    Ok(Secret::new(value.to_owned()))
                }
            }
            Err(err) => Err(format!("cannot read secret file \"{path}\": {err}")),
        };
    }
    Ok(Secret::new(reference.to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn never_prints() {
        let secret = Secret::new("hunter2".to_owned());
        assert_eq!(format!("{secret} {secret:?}"), "[redacted] [redacted]");
    }

    #[test]
    fn references() {
        assert_eq!(resolve_secret("plain").unwrap().expose(), "plain");
        assert!(resolve_secret("env:PORTCULLIS_SURELY_UNSET_VARIABLE")
            .unwrap_err()
            .contains("not set"));
        assert!(resolve_secret("file:/nonexistent/secret")
            .unwrap_err()
            .contains("cannot read"));
    }
}
