//! Protocol and parser abuse: requests built so that the gateway and the back end read
//! different things, and values known to hang a back end's parser.
//!
//! - A second body format named inside `Content-Type` (`application/x-www-form-urlencoded;
//!   boundary="application/json"`) or two media types in one header: a back end that
//!   matches `json` anywhere in the header parses a body the engine judged as a form.
//! - A charset the engine does not decode, declared for the body, a multipart part, the
//!   HTML `_charset_` field or an XML declaration: UTF-7 and UTF-16/32 hide every ASCII
//!   character, EBCDIC maps them elsewhere, and the legacy CJK sets carry fullwidth look-
//!   alikes and (Shift_JIS, Big5, GBK) trail bytes that swallow a following `\`. The
//!   engine only sees what the back end will see when the bytes are UTF-8 or an
//!   ASCII-compatible single-byte set, so anything else fails closed.
//! - RFC 2109 cookie attributes (`$Version`, `$Path`, `$Domain`) in a request: no browser
//!   sends them, and servers that honour them parse quoted cookie values that hide further
//!   cookies from a `;` splitter.
//! - The number 2.2250738585072011e-308 in any spelling, which sends the strtod of older
//!   Java and PHP runtimes into an endless loop.

use super::{Sink, Strongest};
use crate::settings::Class;

/// Top-level media types; a parameter value spelt `TOP/SUB` with one of these is a media
/// type, not a URL or a token.
const MEDIA_TOPS: &[&str] = &[
    "application",
    "text",
    "multipart",
    "image",
    "audio",
    "video",
    "message",
    "model",
    "font",
];

/// The body format a media type selects in a back end's parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Xml,
    Form,
    Multipart,
    Other,
}

fn format_of(mime: &str) -> Format {
    let sub = mime.split_once('/').map_or("", |(_, s)| s);
    if mime.starts_with("multipart/") {
        Format::Multipart
    } else if sub == "x-www-form-urlencoded" {
        Format::Form
    } else if sub == "json" || sub.ends_with("+json") || sub.ends_with("-json") {
        Format::Json
    } else if sub == "xml" || sub.ends_with("+xml") {
        Format::Xml
    } else {
        Format::Other
    }
}

/// `TOP/SUB` with a registered top-level type and token characters: `text/xml`,
/// `application/vnd.api+json`. URLs (`https://…`) and paths do not qualify.
fn is_media_type(s: &str) -> bool {
    let Some((top, sub)) = s.split_once('/') else {
        return false;
    };
    MEDIA_TOPS.contains(&top)
        && !sub.is_empty()
        && sub.len() <= 127
        && sub
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'+' | b'-' | b'_'))
}

/// Judges a `Content-Type` value (the request's or a multipart part's, already lower
/// case in `lower`).
pub(crate) fn media_type(text: &str, lower: &str, sink: &mut Sink<'_>) {
    let mut parts = lower.split(';');
    let mime = parts.next().unwrap_or("").trim();
    let mut best = Strongest::NONE;
    // Two media types where one belongs: `application/json, text/xml` (repeated headers
    // joined by a proxy read the same way).
    if mime.split(',').filter(|m| is_media_type(m.trim())).count() > 1 {
        best.consider((72, "protocol.content-type-confusion"));
    }
    let declared = format_of(mime);
    for param in parts.take(32) {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), v.trim().trim_matches(['"', '\''])),
            None => ("", param.trim()),
        };
        if name == "charset" {
            if let Some(found) = charset_verdict(value) {
                best.consider(found);
            }
            continue;
        }
        if !is_media_type(value) {
            continue;
        }
        // RFC 2387: multipart/related names its root part's type in `type`/`start-info`.
        if mime == "multipart/related" && matches!(name, "type" | "start-info") {
            continue;
        }
        let embedded = format_of(value);
        if embedded != Format::Other && embedded != declared {
            best.consider((75, "protocol.content-type-confusion"));
        }
    }
    best.report(Class::Protocol, text, sink);
}

/// Judges a charset label on its own (`_charset_` field, XML `encoding=`).
pub(crate) fn charset(text: &str, lower: &str, sink: &mut Sink<'_>) {
    if let Some((score, rule)) = charset_verdict(lower.trim().trim_matches(['"', '\''])) {
        sink.hit(Class::Protocol, rule, score, text);
    }
}

/// `None` when the engine reads bytes in `label` as the back end will (UTF-8, ASCII and
/// the ASCII-compatible single-byte sets), else the score and rule for the label.
fn charset_verdict(label: &str) -> Option<(u32, &'static str)> {
    // Normalised on the stack: most bodies come with a charset. A byte outside ASCII
    // matches no label; `?` stands in for it, which keeps the buffer ASCII (a `str`).
    let mut buf = [0u8; 40];
    let mut len = 0;
    let kept = label
        .bytes()
        .filter(|c| !matches!(c, b'-' | b'_' | b' ' | b'.' | b':'));
    for c in kept.take(buf.len()) {
        buf[len] = if c.is_ascii() {
            c.to_ascii_lowercase()
        } else {
            b'?'
        };
        len += 1;
    }
    let n = std::str::from_utf8(&buf[..len]).unwrap_or("?");
    // `utf8mb4`, `utf-8-sig` are UTF-8; `binary` (as `file --mime` writes it) is no text.
    let single_byte = n.is_empty()
        || n.starts_with("utf8")
        || n == "binary"
        || n == "usascii"
        || n == "ascii"
        || n == "us"
        || n == "iso646us"
        || n == "ansix341968"
        || n == "latin1"
        || n == "l1"
        || n == "koi8r"
        || n == "koi8u"
        || n.strip_prefix("iso8859").is_some_and(|v| {
            v.trim_end_matches("1987")
                .parse::<u8>()
                .is_ok_and(|v| v <= 16)
        })
        || n.strip_prefix("windows")
            .or_else(|| n.strip_prefix("cp"))
            .is_some_and(|v| v.parse::<u16>().is_ok_and(|v| (1250..=1258).contains(&v)));
    if single_byte {
        return None;
    }
    let rule = "protocol.charset-evasion";
    let score = if n.starts_with("utf7") || n.contains("unicode11utf7") {
        88
    } else if n.starts_with("utf16")
        || n.starts_with("utf32")
        || n.starts_with("ucs2")
        || n.starts_with("ucs4")
        || n == "unicode"
        || n.contains("ebcdic")
        || n.starts_with("ibm")
        || n.starts_with("cp0")
        || n.starts_with("cp5")
        || n.starts_with("cp1047")
    {
        78
    } else {
        // Legacy multi-byte sets (Shift_JIS, EUC, ISO-2022, Big5, GBK, …) and labels
        // no decoder knows (`utf-`): the engine cannot vouch for what the back end sees.
        65
    };
    Some((score, rule))
}

/// Judges a cookie name that starts with `$`.
pub(crate) fn legacy_cookie(text: &str, lower: &str, sink: &mut Sink<'_>) {
    let score = match lower.trim() {
        "$version" => 72,
        "$path" | "$domain" | "$port" => 64,
        _ => return,
    };
    sink.hit(Class::Protocol, "protocol.legacy-cookie", score, text);
}

/// The significant digits of the boundary value between subnormal and normal doubles
/// (2.2250738585072011e-308) on which older Java and PHP `strtod` loop for ever.
const DBL_MIN_DIGITS: &[u8] = b"222507385850720";

/// Finds 2.2250738585072011e-308 (and 2.2250738585072012e-308) in any spelling: leading
/// zeros, the point anywhere, any exponent that lands on the same value.
pub(crate) fn float_dos(text: &str, sink: &mut Sink<'_>) {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !(b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
            continue;
        }
        // Mantissa: digits with at most one point.
        let mut buf = [0u8; 64];
        let (mut n, mut total) = (0usize, 0usize);
        let mut point: Option<usize> = None;
        while i < b.len() && (b[i].is_ascii_digit() || (b[i] == b'.' && point.is_none())) {
            if b[i] == b'.' {
                point = Some(total);
            } else {
                if n < buf.len() {
                    buf[n] = b[i];
                    n += 1;
                }
                total += 1;
            }
            i += 1;
        }
        let digits = &buf[..n];
        if i >= b.len() || !matches!(b[i], b'e' | b'E') || digits.is_empty() {
            continue;
        }
        let mut j = i + 1;
        let negative = b.get(j) == Some(&b'-');
        if matches!(b.get(j), Some(b'-' | b'+')) {
            j += 1;
        }
        let exp_start = j;
        let mut exp: i64 = 0;
        while j < b.len() && b[j].is_ascii_digit() {
            exp = (exp * 10 + i64::from(b[j] - b'0')).min(100_000);
            j += 1;
        }
        i = j;
        if j == exp_start {
            continue;
        }
        let exp = if negative { -exp } else { exp };
        let int_digits = point.unwrap_or(total) as i64;
        let zeros = digits.iter().take_while(|&&c| c == b'0').count();
        let sig = &digits[zeros..];
        // value = 0.SIG × 10^(int_digits - zeros + exp); DBL_MIN is 0.22250… × 10^-307.
        if sig.starts_with(DBL_MIN_DIGITS) && int_digits - zeros as i64 + exp == -307 {
            sink.hit(Class::Protocol, "protocol.float-dos", 80, text);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use crate::detect::score_of;
    use crate::extract::Origin;
    use crate::settings::Class;

    fn check(origin: Origin, attacks: &[&str], legit: &[&str]) {
        for a in attacks {
            let s = score_of(a, origin, Class::Protocol);
            assert!(s >= 60, "should block {a:?}: {s}");
        }
        for l in legit {
            let s = score_of(l, origin, Class::Protocol);
            assert!(s < 60, "should pass {l:?}: {s}");
        }
    }

    #[test]
    fn content_type_confusion() {
        check(
            Origin::MediaType,
            &[
                "application/x-www-form-urlencoded;boundary=\"application/json\"",
                "application/x-www-form-urlencoded; boundary=text/xml",
                "application/x-www-form-urlencoded; x=\"application/vnd.acme.order-v2+json\"",
                "APPLICATION/X-WWW-FORM-URLENCODED;BOUNDARY=\"APPLICATION/SOAP+XML\"",
                "text/plain; application/json",
                "application/json, application/x-www-form-urlencoded",
                "multipart/form-data; boundary=x; type=application/json",
                "application/json; charset=utf-7",
                "text/xml; charset=\"UTF-16\"",
                "application/x-www-form-urlencoded; charset=ibm037",
                "application/x-www-form-urlencoded; charset=shift_jis",
            ],
            &[
                "application/json",
                "application/json; charset=UTF-8",
                "application/x-www-form-urlencoded; charset=utf-8",
                "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
                "multipart/related; type=\"application/xop+xml\"; start=\"<root>\"; start-info=\"text/xml\"",
                "application/xop+xml; charset=UTF-8; type=\"application/soap+xml\"",
                "application/vnd.api+json; ext=\"https://jsonapi.org/ext/atomic\"",
                "application/json; profile=\"https://example.com/profiles/order\"",
                "application/soap+xml; charset=utf-8; action=\"urn:example/GetOrder\"",
                "text/plain; charset=ISO-8859-1",
                "text/plain; charset=windows-1252",
                "text/plain;charset=US-ASCII",
                "image/png",
                "application/octet-stream",
            ],
        );
    }

    #[test]
    fn charset_labels() {
        check(
            Origin::Charset,
            &[
                "utf-7",
                "UTF-7",
                "utf-",
                "utf-16",
                "UTF-16LE",
                "utf-32",
                "ucs-2",
                "ibm037",
                "cp500",
                "shift_jis",
                "euc-jp",
                "iso-2022-jp",
                "big5",
                "gbk",
                "x-unknown",
                "\u{fc}tf-8",
            ],
            &[
                "UTF-8",
                "utf8",
                "us-ascii",
                "ISO-8859-1",
                "iso-8859-15",
                "latin1",
                "windows-1252",
                "cp1251",
                "KOI8-R",
                "utf8mb4",
                "UTF-8-SIG",
                "ISO_8859-1:1987",
                "binary",
            ],
        );
    }

    #[test]
    fn legacy_cookie_attributes() {
        check(
            Origin::CookieName,
            &["$Version", "$version", "$Path", "$Domain"],
            &["$session", "version", "path", "$", "$Versioned"],
        );
    }

    #[test]
    fn parser_hanging_float() {
        check(
            Origin::ParamValue,
            &[
                "2.2250738585072011e-308",
                "2.2250738585072012e-308",
                "0.00022250738585072011e-304",
                "22.250738585072011E-309",
                "222507385850720110000e-328",
                "x=2.2250738585072011e-308&y=1",
                "[2.2250738585072011e-00308]",
            ],
            &[
                "2.2250738585072011e-307",
                "2.2250738585072011",
                "1.7976931348623157e+308",
                "2.225e-308",
                "2.2250738585072011e308",
                "6.02214076e23",
                "1e-308",
            ],
        );
        check(Origin::JsonKey, &["2.2250738585072011e-308"], &["1e-3"]);
    }
}
