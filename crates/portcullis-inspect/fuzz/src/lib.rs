//! Invariants shared by the fuzz targets. Each `check_*` panics (a libFuzzer crash) when
//! the engine breaks a property that holds for every input.

use portcullis_inspect::fuzzing::{self, Detector, Hit, HEADERS};
use portcullis_inspect::{Engine, Inspection, Request, Settings};

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
    fuzzing::bytes_to_text(data).into_owned()
}

/// One value for the detector targets: the first fuzz byte picks its origin, the second
/// the header it came from (among [`HEADERS`]), the rest is the text.
pub struct ValueInput {
    /// Origin index, any `u8` ([`fuzzing::detect`] takes it modulo the origins).
    pub origin: u8,
    /// Header context, `None` for a value outside the headers.
    pub header: Option<&'static str>,
    /// The value, read from the bytes as the engine reads bytes.
    pub text: String,
}

impl ValueInput {
    /// `None` for fewer than two bytes.
    pub fn parse(data: &[u8]) -> Option<ValueInput> {
        let [origin, header, rest @ ..] = data else {
            return None;
        };
        Some(ValueInput {
            origin: *origin,
            header: HEADERS[usize::from(*header) % HEADERS.len()],
            text: text(rest),
        })
    }
}

/// [`check_detector`] on the value fuzz bytes spell ([`ValueInput::parse`]), the whole of
/// a detector target; the value is returned for a target's own checks.
pub fn check_detector_bytes(detector: Detector, data: &[u8]) -> Option<ValueInput> {
    let input = ValueInput::parse(data)?;
    check_detector(detector, &input.text, input.origin, input.header);
    Some(input)
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
    let hits = fuzzing::detect(detector, text, origin, header);
    check_hits(&hits, detector.classes());
    let again = fuzzing::detect(detector, text, origin, header);
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

/// [`check_inspection`] on `body` sent as `content_type` (a POST with no other header) to
/// an engine with default settings: the whole of a body-format target.
pub fn check_body(content_type: &[u8], body: &[u8]) -> Inspection {
    let engine = Engine::new(Settings::default());
    let headers: [(&str, &[u8]); 1] = [("content-type", content_type)];
    let req = Request {
        method: "POST",
        path: "/fuzz",
        query: None,
        headers: &headers,
        body,
    };
    check_inspection(&engine, &req)
}
