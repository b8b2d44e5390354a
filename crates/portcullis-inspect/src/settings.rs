//! Engine settings: sensitivity, attack classes, exclusions, bounds.

use std::fmt;
use std::str::FromStr;

/// How eager the engine is to block. Each level lowers the score a finding needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Sensitivity {
    /// Blocks confident findings only (the default).
    #[default]
    Balanced,
    /// Also blocks likely attacks; expect some false positives on free text.
    Strict,
    /// Blocks weak signals too; for routes that never carry free text.
    Paranoid,
}

impl Sensitivity {
    /// Score at or above which a finding blocks the request.
    pub fn threshold(self) -> u32 {
        match self {
            Sensitivity::Balanced => 60,
            Sensitivity::Strict => 45,
            Sensitivity::Paranoid => 30,
        }
    }

    /// The config spelling: `balanced`, `strict`, `paranoid`.
    pub fn as_str(self) -> &'static str {
        match self {
            Sensitivity::Balanced => "balanced",
            Sensitivity::Strict => "strict",
            Sensitivity::Paranoid => "paranoid",
        }
    }
}

impl fmt::Display for Sensitivity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown sensitivity or class name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseClassError {
    what: &'static str,
    got: String,
    expected: &'static str,
}

impl fmt::Display for ParseClassError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown {} `{}`, expected one of: {}",
            self.what, self.got, self.expected
        )
    }
}

impl std::error::Error for ParseClassError {}

impl FromStr for Sensitivity {
    type Err = ParseClassError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "balanced" => Ok(Sensitivity::Balanced),
            "strict" => Ok(Sensitivity::Strict),
            "paranoid" => Ok(Sensitivity::Paranoid),
            _ => Err(ParseClassError {
                what: "sensitivity",
                got: s.to_string(),
                expected: "balanced, strict, paranoid",
            }),
        }
    }
}

/// Attack class of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// SQL injection.
    Sqli,
    /// Cross-site scripting.
    Xss,
    /// OS command injection.
    Cmdi,
    /// Path traversal and local file inclusion.
    Traversal,
    /// Server-side request forgery.
    Ssrf,
    /// XML external entities.
    Xxe,
    /// Server-side template injection.
    Ssti,
    /// NoSQL (MongoDB-style operator) injection.
    Nosqli,
    /// LDAP filter injection.
    Ldapi,
    /// JNDI lookups (Log4Shell).
    Jndi,
    /// Serialized objects of unsafe formats.
    Deserialization,
    /// JavaScript prototype pollution.
    PrototypePollution,
    /// CR/LF injection into headers or protocol lines.
    Crlf,
    /// PHP / JavaScript / Python / Java code injection.
    CodeInjection,
    /// A request sent by a vulnerability scanner or attack tool (by its User-Agent).
    Scanner,
    /// Protocol and parser abuse: a body format or charset the gateway and the back end
    /// would read differently, legacy cookie syntax, values that hang parsers.
    Protocol,
    /// A server framework's session identifier sent as a request parameter (session
    /// fixation).
    SessionFixation,
}

const CLASS_NAMES: &str = "sqli, xss, cmdi, traversal, ssrf, xxe, ssti, nosqli, ldapi, jndi, deserialization, prototype-pollution, crlf, code-injection, scanner, protocol, session-fixation";

impl Class {
    /// Every class, in declaration order.
    pub const ALL: [Class; 17] = [
        Class::Sqli,
        Class::Xss,
        Class::Cmdi,
        Class::Traversal,
        Class::Ssrf,
        Class::Xxe,
        Class::Ssti,
        Class::Nosqli,
        Class::Ldapi,
        Class::Jndi,
        Class::Deserialization,
        Class::PrototypePollution,
        Class::Crlf,
        Class::CodeInjection,
        Class::Scanner,
        Class::Protocol,
        Class::SessionFixation,
    ];

    /// Stable lower-case name used in config, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Sqli => "sqli",
            Class::Xss => "xss",
            Class::Cmdi => "cmdi",
            Class::Traversal => "traversal",
            Class::Ssrf => "ssrf",
            Class::Xxe => "xxe",
            Class::Ssti => "ssti",
            Class::Nosqli => "nosqli",
            Class::Ldapi => "ldapi",
            Class::Jndi => "jndi",
            Class::Deserialization => "deserialization",
            Class::PrototypePollution => "prototype-pollution",
            Class::Crlf => "crlf",
            Class::CodeInjection => "code-injection",
            Class::Scanner => "scanner",
            Class::Protocol => "protocol",
            Class::SessionFixation => "session-fixation",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Class {
    type Err = ParseClassError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.replace('_', "-");
        Class::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == norm)
            .or(match norm.as_str() {
                "deser" => Some(Class::Deserialization),
                "rce" | "code" => Some(Class::CodeInjection),
                "proto" => Some(Class::PrototypePollution),
                _ => None,
            })
            .ok_or(ParseClassError {
                what: "class",
                got: s.to_string(),
                expected: CLASS_NAMES,
            })
    }
}

/// Error for a malformed exclusion string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExclusionError {
    input: String,
    reason: String,
}

impl fmt::Display for ExclusionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid exclusion `{}`: {}", self.input, self.reason)
    }
}

impl std::error::Error for ExclusionError {}

/// A location (and optionally one class) whose findings are dropped.
///
/// Spelled `LOCATION[:CLASS]`, e.g. `body.$.description:xss`, `query.q:sqli`,
/// `header.user-agent`. A location covers its children: `body.$.items` covers
/// `body.$.items[2].note`. A `*` segment matches any one segment: `body.$.items[*].note`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclusion {
    location: String,
    class: Option<Class>,
}

const LOCATION_ROOTS: [&str; 5] = ["path", "query", "header", "cookie", "body"];

impl Exclusion {
    /// The location prefix this exclusion covers.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The class it is limited to, or `None` for every class.
    pub fn class(&self) -> Option<Class> {
        self.class
    }

    /// Whether a finding of `class` at `location` is excluded.
    pub fn matches(&self, location: &str, class: Class) -> bool {
        if let Some(c) = self.class {
            if c != class {
                return false;
            }
        }
        location_covers(&self.location, location)
    }
}

/// `pattern` covers `location` when it equals it or is a parent of it; `*` matches one
/// segment (a run without `.` or `[`), `[*]` any index.
fn location_covers(pattern: &str, location: &str) -> bool {
    let p = pattern.as_bytes();
    let l = location.as_bytes();
    let (mut i, mut j) = (0usize, 0usize);
    while i < p.len() {
        if p[i] == b'*' {
            // Skip one segment of the location.
            while j < l.len() && l[j] != b'.' && l[j] != b'[' && l[j] != b']' {
                j += 1;
            }
            i += 1;
            continue;
        }
        if j >= l.len() || p[i] != l[j] {
            return false;
        }
        i += 1;
        j += 1;
    }
    j == l.len() || l[j] == b'.' || l[j] == b'['
}

impl FromStr for Exclusion {
    type Err = ExclusionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| ExclusionError {
            input: s.to_string(),
            reason,
        };
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err(err(
                "empty; expected LOCATION[:CLASS], e.g. `query.q:sqli`".into()
            ));
        }
        let (loc, class) = match trimmed.rsplit_once(':') {
            Some((loc, cls)) => {
                let class = cls.parse::<Class>().map_err(|e| err(e.to_string()))?;
                (loc, Some(class))
            }
            None => (trimmed, None),
        };
        let root = loc.split(['.', '[']).next().unwrap_or("");
        if !LOCATION_ROOTS.contains(&root) {
            return Err(err(format!(
                "location must start with one of path, query, header, cookie, body; got `{root}`"
            )));
        }
        if (root == "header" || root == "cookie" || root == "query")
            && (loc.len() <= root.len() + 1 || loc.as_bytes().get(root.len()) != Some(&b'.'))
        {
            return Err(err(format!("`{root}` needs a name, e.g. `{root}.NAME`")));
        }
        if loc.contains(char::is_whitespace) {
            return Err(err("location contains whitespace".into()));
        }
        let location = if root == "header" {
            loc.to_ascii_lowercase()
        } else {
            loc.to_string()
        };
        Ok(Exclusion { location, class })
    }
}

impl fmt::Display for Exclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.class {
            Some(c) => write!(f, "{}:{}", self.location, c),
            None => f.write_str(&self.location),
        }
    }
}

/// Bounds on the work done per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub max_values: usize,
    pub max_value_len: usize,
    pub max_file_bytes: usize,
    pub max_depth: usize,
}

/// Engine settings. Build with struct update syntax over [`Settings::default`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// Blocking threshold.
    pub sensitivity: Sensitivity,
    /// Locations (and classes) whose findings are dropped.
    pub exclusions: Vec<Exclusion>,
    /// Most findings kept per request (at least one is always kept).
    pub max_findings: usize,
    /// Most values extracted from one request; the rest are not inspected.
    pub max_values: usize,
    /// Longest value judged, in bytes; longer values are judged on their prefix.
    pub max_value_len: usize,
    /// Bytes of an uploaded file's content that are inspected.
    pub max_file_bytes: usize,
    /// Deepest JSON/XML nesting followed.
    pub max_depth: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sensitivity: Sensitivity::Balanced,
            exclusions: Vec::new(),
            max_findings: 16,
            max_values: 4096,
            max_value_len: 64 * 1024,
            max_file_bytes: 64 * 1024,
            max_depth: 64,
        }
    }
}

impl Settings {
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_values: self.max_values.max(1),
            max_value_len: self.max_value_len.max(64),
            max_file_bytes: self.max_file_bytes,
            max_depth: self.max_depth.max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn parses_exclusions() {
        let e: Exclusion = "body.$.description:xss".parse().unwrap();
        assert_eq!(e.location(), "body.$.description");
        assert_eq!(e.class(), Some(Class::Xss));
        assert!(e.matches("body.$.description", Class::Xss));
        assert!(e.matches("body.$.description[0]", Class::Xss));
        assert!(!e.matches("body.$.descriptions", Class::Xss));
        assert!(!e.matches("body.$.description", Class::Sqli));
        let e: Exclusion = "header.User-Agent".parse().unwrap();
        assert!(e.matches("header.user-agent", Class::Sqli));
        let e: Exclusion = "body.$.items[*].note:sqli".parse().unwrap();
        assert!(e.matches("body.$.items[3].note", Class::Sqli));
    }

    #[test]
    fn rejects_bad_exclusions() {
        let e = "query.q:sqlx".parse::<Exclusion>().unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("invalid exclusion `query.q:sqlx`: unknown class `sqlx`, expected one of: {CLASS_NAMES}")
        );
        assert!("foo.bar".parse::<Exclusion>().is_err());
        assert!("query".parse::<Exclusion>().is_err());
        assert!("".parse::<Exclusion>().is_err());
    }

    #[test]
    fn parses_names() {
        assert_eq!(
            "strict".parse::<Sensitivity>().unwrap(),
            Sensitivity::Strict
        );
        assert!("loose".parse::<Sensitivity>().is_err());
        for c in Class::ALL {
            assert_eq!(c.as_str().parse::<Class>().unwrap(), c);
        }
    }
}
