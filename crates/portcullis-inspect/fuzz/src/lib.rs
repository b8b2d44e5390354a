//! Invariants shared by the fuzz targets. Each `check_*` panics (a libFuzzer crash) when
//! the engine breaks a property that holds for every input.

use portcullis_inspect::fuzzing::{Detector, Hit};
use portcullis_inspect::{Engine, Inspection, Request};

/// Longest evidence: 96 source characters, a control character escaped to at most six
/// (`\u{9f}`), and the trailing ellipsis.
pub const MAX_EVIDENCE_CHARS: usize = 96 * 6 + 1;

/// Longest snippet a detector keeps (`Sink::hit`).
pub const MAX_SNIPPET_CHARS: usize = 200;

/// Headers whose values are credentials: their findings never show them.
const SECRET_HEADERS: [&str; 3] = [
    "header.authorization",
    "header.proxy-authorization",
    "header.x-api-key",
];

/// Fuzz bytes as the engine reads bytes it did not get as text.
pub fn text(data: &[u8]) -> String {
    portcullis_inspect::fuzzing::bytes_to_text(data).into_owned()
}

/// Runs `req` twice and checks the properties every inspection has: the same verdict
/// both times (the per-thread memo is exact), findings sorted by score and unique per
/// (class, location), at most `max_findings`, `blocked` agreeing with the scores,
/// evidence bounded and free of control characters, credentials never shown.
pub fn check_inspection(engine: &Engine, req: &Request<'_>) -> Inspection {
    let first = engine.inspect(req);
    let second = engine.inspect(req);
    assert_eq!(first, second, "the verdict differs between two runs");
    let settings = engine.settings();
    assert!(first.findings.len() <= settings.max_findings.max(1));
    assert_eq!(
        first.blocked,
        first.max_score() >= settings.sensitivity.threshold(),
        "blocked disagrees with the scores"
    );
    for pair in first.findings.windows(2) {
        assert!(
            pair[0].score >= pair[1].score,
            "findings not sorted by score"
        );
    }
    for (i, f) in first.findings.iter().enumerate() {
        assert!(f.score <= 100, "score above 100: {f:?}");
        assert!(!f.detector.is_empty(), "finding without a rule name: {f:?}");
        let chars = f.evidence.chars().count();
        assert!(
            chars <= MAX_EVIDENCE_CHARS,
            "evidence of {chars} chars: {f:?}"
        );
        assert!(
            !f.evidence.chars().any(char::is_control),
            "control character in evidence: {f:?}"
        );
        assert!(
            !f.location.chars().any(char::is_control),
            "control character in location: {f:?}"
        );
        for secret in SECRET_HEADERS {
            if let Some(rest) = f.location.strip_prefix(secret) {
                if rest.is_empty() || rest.starts_with(['.', '[']) {
                    assert_eq!(f.evidence, "[redacted]", "credential shown: {f:?}");
                }
            }
        }
        assert!(
            !first.findings[..i]
                .iter()
                .any(|g| g.class == f.class && g.location == f.location),
            "two findings for one class and location: {f:?}"
        );
    }
    first
}

/// Checks one detector's hits: only the classes it reports, one hit per class, a
/// bounded snippet, and the same hits when run again.
pub fn check_detector(detector: Detector, text: &str, origin: u8, header: Option<&str>) {
    let hits = portcullis_inspect::fuzzing::detect(detector, text, origin, header);
    check_hits(&hits, detector.classes());
    let again = portcullis_inspect::fuzzing::detect(detector, text, origin, header);
    assert_eq!(hits, again, "{detector:?} is not deterministic");
}

/// Checks a set of hits: classes among `allowed` (all if empty), one hit per class,
/// a nonzero score, a bounded snippet.
pub fn check_hits(hits: &[Hit], allowed: &[portcullis_inspect::Class]) {
    for (i, h) in hits.iter().enumerate() {
        assert!(
            allowed.is_empty() || allowed.contains(&h.class),
            "unexpected class: {h:?}"
        );
        assert!(h.score > 0, "zero score: {h:?}");
        assert!(h.snippet.chars().count() <= MAX_SNIPPET_CHARS);
        assert!(
            !hits[..i].iter().any(|g| g.class == h.class),
            "two hits of one class: {h:?}"
        );
    }
}

/// A request with only a body of type `content_type`.
pub fn body_request<'a>(headers: &'a [(&'a str, &'a [u8])], body: &'a [u8]) -> Request<'a> {
    Request {
        method: "POST",
        path: "/fuzz",
        query: None,
        headers,
        body,
    }
}
