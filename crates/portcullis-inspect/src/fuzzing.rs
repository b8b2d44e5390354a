//! Entry points for the fuzz targets in `crates/portcullis-inspect/fuzz/`.
//!
//! **Not a stable API.** These are thin wrappers over crate-private decoders, detectors and
//! parsers so that each can be fuzzed on its own, with its own invariants, instead of only
//! through [`Engine::inspect`](crate::Engine::inspect). Names and signatures change with
//! the engine; nothing outside the fuzz targets may use them.

use std::borrow::Cow;

use crate::decode;
use crate::detect::{self, Sink};
use crate::extract::Origin;
use crate::settings::Class;

/// Percent-decodes `%XX` and `%uXXXX` (and `+` when `plus_is_space`), bytes in, bytes out.
pub fn percent_decode(input: &[u8], plus_is_space: bool) -> Vec<u8> {
    decode::percent_decode(input, plus_is_space)
}

/// One percent-decoding layer of a string, the result read leniently as text.
pub fn url_decode(s: &str, plus_is_space: bool) -> String {
    decode::url_decode(s, plus_is_space).into_owned()
}

/// Bytes to text: UTF-8 as is, overlong forms folded, other bytes as Latin-1.
pub fn bytes_to_text(b: &[u8]) -> Cow<'_, str> {
    decode::bytes_to_text(b)
}

/// Quoted-printable decoding of a multipart part.
pub fn quoted_printable(s: &str) -> String {
    decode::quoted_printable(s)
}

/// A UTF-16 body decoded, `None` when the bytes do not look like UTF-16.
pub fn utf16_body(b: &[u8]) -> Option<String> {
    decode::utf16_body(b)
}

/// HTML character references decoded.
pub fn html_entities(s: &str) -> String {
    decode::html_entities(s)
}

/// JavaScript escapes (`\uXXXX`, `\u{X}`, `\xXX`) decoded.
pub fn js_unescape(s: &str) -> String {
    decode::js_unescape(s)
}

/// UTF-7 shifted sequences decoded, `None` when there is none.
pub fn utf7_decode(s: &str) -> Option<String> {
    decode::utf7_decode(s)
}

/// Standard or URL-safe base64, `None` when `s` is not base64.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    decode::base64_decode(s)
}

/// Whether `s` plausibly is base64 worth decoding.
pub fn plausible_base64(s: &str) -> bool {
    decode::plausible_base64(s)
}

/// Whether decoded bytes are mostly printable text.
pub fn mostly_text(b: &[u8]) -> bool {
    decode::mostly_text(b)
}

/// Fullwidth and high-bit look-alikes folded to ASCII, `None` when nothing folds.
pub fn fold_lookalikes(s: &str) -> Option<String> {
    decode::fold_lookalikes(s)
}

/// The layered normalisation (percent, entities, JS escapes) until stable, bounded.
pub fn normalize(s: &str, plus_is_space: bool) -> String {
    decode::normalize(s, plus_is_space)
}

/// Every decoded form of a value that the detectors judge.
pub fn variants(raw: &str, plus_is_space: bool) -> Vec<String> {
    decode::variants(raw, plus_is_space)
}

/// Evidence rendering: truncated, control characters escaped, token runs redacted.
pub fn redact(src: &str) -> String {
    crate::evidence::redact(src)
}

/// Every origin a value can have, in a fixed order: fuzz input picks one by index.
const ORIGINS: [Origin; 19] = [
    Origin::PathSegment,
    Origin::PathFull,
    Origin::ParamName,
    Origin::ParamValue,
    Origin::Header,
    Origin::CookieName,
    Origin::CookieValue,
    Origin::Filename,
    Origin::FileContent,
    Origin::JsonKey,
    Origin::JsonValue,
    Origin::XmlText,
    Origin::XmlName,
    Origin::XmlDoctype,
    Origin::GraphQl,
    Origin::RawBody,
    Origin::AgentProduct,
    Origin::MediaType,
    Origin::Charset,
];

/// Header names whose values some detectors treat differently; fuzz input picks one.
pub const HEADERS: [Option<&str>; 8] = [
    None,
    Some("user-agent"),
    Some("referer"),
    Some("cookie"),
    Some("x-forwarded-for"),
    Some("authorization"),
    Some("content-type"),
    Some("x-custom"),
];

/// One detector (or parser-level judgement) that can be run on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detector {
    /// SQL lexer and judge.
    Sqli,
    /// HTML tag/attribute tokenizer and JS tokenizer.
    Xss,
    /// Shell tokenizer, cmd.exe and PowerShell.
    Cmdi,
    /// Path normalisation.
    Traversal,
    /// URL and IP parsing.
    Ssrf,
    /// Log4j lookups.
    Jndi,
    /// Template expressions.
    Ssti,
    /// MongoDB operators.
    Nosqli,
    /// LDAP filter breaks.
    Ldapi,
    /// Serialized-object signatures in text.
    Deserialization,
    /// Serialized-object signatures in raw bytes.
    DeserializationBytes,
    /// Prototype pollution.
    PrototypePollution,
    /// CR/LF injection.
    Crlf,
    /// PHP/Node/Python/Ruby/Java code.
    CodeInjection,
    /// XXE declarations.
    Xxe,
    /// Upload file names.
    DangerousFilename,
    /// Attack-tool User-Agents.
    ScannerAgent,
    /// `Content-Type` values.
    MediaType,
    /// Charset labels.
    Charset,
    /// RFC 2109 cookie attributes.
    LegacyCookie,
    /// Floats that hang old parsers.
    FloatDos,
}

impl Detector {
    /// The misc, protocol and single-purpose detectors, for targets that pick one by index.
    pub const MISC: [Detector; 16] = [
        Detector::Jndi,
        Detector::Ssti,
        Detector::Nosqli,
        Detector::Ldapi,
        Detector::Deserialization,
        Detector::DeserializationBytes,
        Detector::PrototypePollution,
        Detector::Crlf,
        Detector::CodeInjection,
        Detector::Xxe,
        Detector::DangerousFilename,
        Detector::ScannerAgent,
        Detector::MediaType,
        Detector::Charset,
        Detector::LegacyCookie,
        Detector::FloatDos,
    ];

    /// The classes this detector may report; anything else is a bug.
    pub fn classes(self) -> &'static [Class] {
        match self {
            Detector::Sqli => &[Class::Sqli],
            Detector::Xss => &[Class::Xss],
            Detector::Cmdi => &[Class::Cmdi],
            Detector::Traversal => &[Class::Traversal],
            // A remote script URL is reported as code injection.
            Detector::Ssrf => &[Class::Ssrf, Class::CodeInjection],
            Detector::Jndi => &[Class::Jndi],
            Detector::Ssti => &[Class::Ssti],
            Detector::Nosqli => &[Class::Nosqli],
            Detector::Ldapi => &[Class::Ldapi],
            Detector::Deserialization | Detector::DeserializationBytes => &[Class::Deserialization],
            Detector::PrototypePollution => &[Class::PrototypePollution],
            Detector::Crlf => &[Class::Crlf],
            Detector::CodeInjection | Detector::DangerousFilename => &[Class::CodeInjection],
            Detector::Xxe => &[Class::Xxe],
            Detector::ScannerAgent => &[Class::Scanner],
            Detector::MediaType
            | Detector::Charset
            | Detector::LegacyCookie
            | Detector::FloatDos => &[Class::Protocol],
        }
    }
}

/// A detector's raw hit, before exclusions and evidence rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// Attack class.
    pub class: Class,
    /// Rule name.
    pub detector: &'static str,
    /// Raw score (the engine caps it at 100).
    pub score: u32,
    /// Excerpt the evidence is rendered from.
    pub snippet: String,
}

fn hits(sink: Sink<'_>) -> Vec<Hit> {
    sink.into_hits()
        .into_iter()
        .map(|h| Hit {
            class: h.class,
            detector: h.detector,
            score: h.score,
            snippet: h.snippet,
        })
        .collect()
}

/// The origin numbered `n` (modulo the number of origins).
fn origin(n: u8) -> Origin {
    ORIGINS[usize::from(n) % ORIGINS.len()]
}

/// Runs one detector over `text` as a value of origin number `origin_index` (any `u8`),
/// from header `header` if any.
pub fn detect(detector: Detector, text: &str, origin_index: u8, header: Option<&str>) -> Vec<Hit> {
    let mut sink = Sink::new(origin(origin_index), header);
    let lower = text.to_ascii_lowercase();
    let (t, l, s) = (text, lower.as_str(), &mut sink);
    match detector {
        Detector::Sqli => detect::sqli::detect(t, l, s),
        Detector::Xss => detect::xss::detect(t, l, s),
        Detector::Cmdi => detect::cmdi::detect(t, l, s),
        Detector::Traversal => detect::traversal::detect(t, l, s),
        Detector::Ssrf => detect::ssrf::detect(t, l, s),
        Detector::Jndi => detect::misc::jndi(t, s),
        Detector::Ssti => detect::misc::ssti(t, l, s),
        Detector::Nosqli => detect::misc::nosqli(t, s),
        Detector::Ldapi => detect::misc::ldapi(t, s),
        Detector::Deserialization => detect::misc::deserialization(t, l, s),
        Detector::DeserializationBytes => detect::misc::deserialization_bytes(t.as_bytes(), s),
        Detector::PrototypePollution => detect::misc::prototype_pollution(t, l, s),
        Detector::Crlf => detect::misc::crlf(t, s),
        Detector::CodeInjection => detect::misc::code_injection(t, l, s),
        Detector::Xxe => detect::misc::xxe(t, l, s),
        Detector::DangerousFilename => detect::misc::dangerous_filename(t, l, s),
        Detector::ScannerAgent => detect::misc::scanner_agent(t, l, s),
        Detector::MediaType => detect::protocol::media_type(t, l, s),
        Detector::Charset => detect::protocol::charset(t, l, s),
        Detector::LegacyCookie => detect::protocol::legacy_cookie(t, l, s),
        Detector::FloatDos => detect::protocol::float_dos(t, s),
    }
    hits(sink)
}

/// Every applicable detector over one decoded form, as the engine runs them; `memo`
/// goes through the per-thread verdict memo for short word-only values.
pub fn judge(text: &str, origin_index: u8, header: Option<&str>, memo: bool) -> Vec<Hit> {
    let o = origin(origin_index);
    let mut sink = Sink::new(o, header);
    if memo {
        detect::judge_memo(text, o, &mut sink, None);
    } else {
        detect::judge_text(text, o, &mut sink);
    }
    hits(sink)
}

/// The SSRF detector's `inet_aton`-style IPv4 parser: address and "unusual spelling".
pub fn parse_ipv4(h: &str) -> Option<(u32, bool)> {
    detect::ssrf::parse_ipv4(h)
}

/// The SSRF detector's IPv6 parser.
pub fn parse_ipv6(h: &str) -> Option<[u16; 8]> {
    detect::ssrf::parse_ipv6(h)
}

/// The SSRF detector's `[userinfo@]host[:port]` splitter.
pub fn authority(s: &str) -> (&str, bool) {
    detect::ssrf::authority(s)
}
