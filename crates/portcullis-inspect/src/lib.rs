//! The Portcullis inspection engine.
//!
//! A library with no I/O: the gateway hands it a parsed [`Request`] and gets back an
//! [`Inspection`] with [`Finding`]s (class, location, detector, score, evidence) and a
//! verdict. Every inspectable value of the request is extracted (path segments, query
//! parameters, headers, cookies, form, multipart, JSON, XML, GraphQL), decoded in layers
//! (percent, `+`, HTML entities, JS escapes, overlong UTF-8, base64 when plausible) and
//! judged by detectors that tokenize the language they guard against (SQL, HTML/JS,
//! shell, paths, URLs, templates, serialized objects) instead of matching keyword lists.
//!
//! All algorithms are linear in the input: no backtracking regexes, every loop bounded.
//!
//! ```
//! use portcullis_inspect::{Class, Engine, Request, Settings};
//!
//! let engine = Engine::new(Settings::default());
//! let headers: Vec<(&str, &[u8])> = vec![("content-type", b"application/json")];
//! let req = Request {
//!     method: "POST",
//!     path: "/v1/orders",
//!     query: Some("id=1%27%20or%201%3D1--"),
//!     headers: &headers,
//!     body: br#"{"note":"leave at O'Brien's door"}"#,
//! };
//! let out = engine.inspect(&req);
//! assert!(out.blocked);
//! assert_eq!(out.findings[0].location, "query.id");
//! assert_eq!(out.findings[0].class, Class::Sqli);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod decode;
mod detect;
mod evidence;
mod extract;
/// Not a stable API: entry points for the fuzz targets only.
#[doc(hidden)]
pub mod fuzzing;
mod settings;

use std::sync::Arc;

pub use settings::{Class, Exclusion, ExclusionError, ParseClassError, Sensitivity, Settings};

/// Hooks for `benches/detectors.rs`, which measures each detector family on its own. Not
/// part of the API: names and behaviour may change with any release.
#[doc(hidden)]
pub mod bench {
    /// The detector families [`run_family`] knows.
    pub const FAMILIES: [&str; 14] = crate::detect::FAMILIES;

    /// Runs one detector family over `text` (judged as a JSON string value) and returns
    /// its strongest score, 0 when it finds nothing or the family is unknown.
    pub fn run_family(family: &str, text: &str) -> u32 {
        crate::detect::run_family(family, text)
    }
}

/// A request as the gateway has parsed it, borrowed for the duration of one inspection.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// HTTP method as sent (`GET`, `POST`, ...).
    pub method: &'a str,
    /// Raw path, still percent-encoded, without the query string.
    pub path: &'a str,
    /// Raw query string without the leading `?`, if any.
    pub query: Option<&'a str>,
    /// Header fields with lower-case names; repeated names are kept in order.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// Request body, already bounded by the caller.
    pub body: &'a [u8],
}

/// One detection: which class of attack, where, by which detector, how sure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Attack class.
    pub class: Class,
    /// Where the value sits, e.g. `query.id`, `path[2]`, `body.$.items[2].note`.
    pub location: String,
    /// Name of the detector rule that fired, stable for logs and metrics.
    pub detector: &'static str,
    /// Confidence 0–100; compared with the sensitivity threshold.
    pub score: u32,
    /// Short, truncated excerpt with secrets redacted; never the Authorization header.
    pub evidence: String,
}

/// Result of inspecting one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inspection {
    /// Findings after exclusions, highest score first, at most `max_findings`.
    pub findings: Vec<Finding>,
    /// Whether any finding reached the sensitivity threshold.
    pub blocked: bool,
}

impl Inspection {
    /// Highest score among the findings (0 when there are none).
    pub fn max_score(&self) -> u32 {
        self.findings.iter().map(|f| f.score).max().unwrap_or(0)
    }
}

/// The compiled inspection engine. Cheap to clone and share between threads.
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Settings>,
}

impl Engine {
    /// Compiles settings into an engine.
    pub fn new(settings: Settings) -> Engine {
        Engine {
            inner: Arc::new(settings),
        }
    }

    /// The settings this engine was built with.
    pub fn settings(&self) -> &Settings {
        &self.inner
    }

    /// Inspects one request and returns its findings and verdict.
    pub fn inspect(&self, request: &Request<'_>) -> Inspection {
        let settings = &*self.inner;
        let threshold = settings.sensitivity.threshold();
        // Report threshold: findings well below the block threshold are noise.
        let report_floor = threshold.saturating_sub(25).max(10);
        let mut findings: Vec<Finding> = Vec::new();
        // Findings of the request-level pass come after every value's own, as they did
        // when that pass ran over the collected values.
        let mut late: Vec<Finding> = Vec::new();
        let mut pass = detect::RequestPass::new(request);
        let mut request_hits: Vec<detect::Hit> = Vec::new();
        let keep = |value: &extract::Value<'_>, hit: detect::Hit, out: &mut Vec<Finding>| {
            if hit.score < report_floor
                || settings
                    .exclusions
                    .iter()
                    .any(|e| e.matches(value.location, hit.class))
            {
                return;
            }
            let evidence = evidence::render(value, &hit);
            out.push(Finding {
                class: hit.class,
                location: value.location.to_string(),
                detector: hit.detector,
                score: hit.score.min(100),
                evidence,
            });
        };
        // Each value is judged as soon as it is extracted, while it is still borrowed
        // from the request (or the parsed body): the common value costs no copy.
        // The closure says whether the value was quiet: no hit at all (before the report
        // floor and exclusions) and nothing pending in the request-level pass.
        extract::extract(request, settings.limits(), &mut |value| {
            let hits = detect::judge(value);
            let mut quiet = hits.is_empty();
            for hit in hits {
                keep(value, hit, &mut findings);
            }
            pass.judge(value, &mut request_hits);
            quiet &= request_hits.is_empty() && pass.idle();
            for hit in request_hits.drain(..) {
                keep(value, hit, &mut late);
            }
            quiet
        });
        findings.append(&mut late);
        findings.sort_by_key(|f| std::cmp::Reverse(f.score));
        // One finding per (class, location) is enough for an operator.
        if findings.len() > 1 {
            let mut seen: std::collections::HashSet<(Class, String)> =
                std::collections::HashSet::new();
            findings.retain(|f| seen.insert((f.class, f.location.clone())));
        }
        let blocked = findings.iter().any(|f| f.score >= threshold);
        findings.truncate(settings.max_findings.max(1));
        Inspection { findings, blocked }
    }
}

#[cfg(test)]
mod engine_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn engine_is_send_sync() {
        assert_send_sync::<Engine>();
    }

    #[test]
    fn exclusion_suppresses_finding() {
        let headers: Vec<(&str, &[u8])> = vec![];
        let req = Request {
            method: "GET",
            path: "/",
            query: Some("q=1%27%20or%201%3D1--"),
            headers: &headers,
            body: b"",
        };
        let engine = Engine::new(Settings::default());
        assert!(engine.inspect(&req).blocked);
        let settings = Settings {
            exclusions: vec!["query.q:sqli".parse().unwrap()],
            ..Settings::default()
        };
        let engine = Engine::new(settings);
        let out = engine.inspect(&req);
        assert!(!out.findings.iter().any(|f| f.class == Class::Sqli));
    }
}
