//! Layered decoders. Each is a single linear pass; `normalize` applies them in rounds
//! until the value is stable (bounded), which undoes double and mixed encodings.

use std::borrow::Cow;

use crate::detect::Feat;

/// Most decoding rounds; four layers of nesting is already far beyond real traffic.
const MAX_ROUNDS: usize = 4;

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The code unit spelt by the four hex digits at `b[at..at + 4]`: the `XXXX` of IIS
/// `%uXXXX` and JavaScript `\uXXXX`.
fn hex4(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)?
        .iter()
        .try_fold(0u32, |acc, &x| Some(acc * 16 + u32::from(hex_val(x)?)))
}

fn push_char(out: &mut Vec<u8>, c: u32) {
    let ch = char::from_u32(c).unwrap_or('\u{FFFD}');
    let mut buf = [0u8; 4];
    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
}

/// Percent-decodes `%XX` and IIS-style `%uXXXX`; invalid escapes are kept verbatim.
pub(crate) fn percent_decode(input: &[u8], plus_is_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'%' {
            if let (Some(h), Some(l)) = (
                input.get(i + 1).and_then(|&x| hex_val(x)),
                input.get(i + 2).and_then(|&x| hex_val(x)),
            ) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
            if matches!(input.get(i + 1), Some(b'u' | b'U')) {
                if let Some(cp) = hex4(input, i + 2) {
                    push_char(&mut out, cp);
                    i += 6;
                    continue;
                }
            }
            out.push(b);
        } else if b == b'+' && plus_is_space {
            out.push(b' ');
        } else {
            out.push(b);
        }
        i += 1;
    }
    out
}

/// Turns bytes into text without losing attack signal: valid UTF-8 as is (borrowed),
/// overlong encodings (`C0 AE` for `.`) folded to the character they spell, any other
/// invalid byte mapped to the Latin-1 character of the same value.
pub(crate) fn bytes_to_text(b: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(lenient_text(b)),
    }
}

/// Decodes quoted-printable (`=3C` → `<`, `=` at a line end joins lines).
pub(crate) fn quoted_printable(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            if let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex_val),
                b.get(i + 2).copied().and_then(hex_val),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
            let rest = &b[i + 1..];
            let soft = if rest.starts_with(b"\r\n") {
                2
            } else if rest.starts_with(b"\n") {
                1
            } else {
                0
            };
            if soft > 0 {
                i += 1 + soft;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    bytes_into_text(out)
}

/// A body written in UTF-16 (a byte-order mark, or ASCII text with a NUL beside every
/// character), decoded; `None` for anything else. A back end that honours the BOM or a
/// declared charset reads such a body as text, so the engine must too.
pub(crate) fn utf16_body(b: &[u8]) -> Option<String> {
    let (little, body) = match b {
        [0xFF, 0xFE, rest @ ..] if !rest.starts_with(&[0, 0]) => (true, rest),
        [0xFE, 0xFF, rest @ ..] => (false, rest),
        _ => {
            let head = &b[..b.len().min(64) & !1];
            if head.len() < 8 {
                return None;
            }
            let ascii = |c: u8| c.is_ascii_graphic() || c.is_ascii_whitespace();
            let pairs = head.len() / 2;
            let le = head.chunks(2).filter(|p| ascii(p[0]) && p[1] == 0).count();
            let be = head.chunks(2).filter(|p| p[0] == 0 && ascii(p[1])).count();
            if le * 10 >= pairs * 9 {
                (true, b)
            } else if be * 10 >= pairs * 9 {
                (false, b)
            } else {
                return None;
            }
        }
    };
    let units = body.chunks_exact(2).map(|p| {
        if little {
            u16::from_le_bytes([p[0], p[1]])
        } else {
            u16::from_be_bytes([p[0], p[1]])
        }
    });
    Some(
        char::decode_utf16(units)
            .map(|c| c.unwrap_or('\u{FFFD}'))
            .collect(),
    )
}

/// [`bytes_to_text`] for bytes a decoder has just produced: valid UTF-8 becomes the
/// string without a copy.
fn bytes_into_text(b: Vec<u8>) -> String {
    match String::from_utf8(b) {
        Ok(s) => s,
        Err(e) => lenient_text(e.as_bytes()),
    }
}

fn lenient_text(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c0 = b[i];
        if c0 < 0x80 {
            out.push(char::from(c0));
            i += 1;
            continue;
        }
        let cont = |k: usize| b.get(i + k).is_some_and(|&x| (0x80..0xC0).contains(&x));
        let (len, init) = match c0 {
            0xC0..=0xDF => (2, u32::from(c0 & 0x1F)),
            0xE0..=0xEF => (3, u32::from(c0 & 0x0F)),
            0xF0..=0xF7 => (4, u32::from(c0 & 0x07)),
            _ => (1, 0),
        };
        if len > 1 && (1..len).all(cont) {
            let cp = (1..len).fold(init, |acc, k| {
                (acc << 6) | u32::from(b.get(i + k).copied().unwrap_or(0) & 0x3F)
            });
            // Overlong forms are decoded deliberately: that is what lenient servers do.
            out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
            i += len;
        } else {
            out.push(char::from(c0));
            i += 1;
        }
    }
    out
}

/// Percent-decodes a string once; borrowed when there is nothing to decode.
pub(crate) fn url_decode(s: &str, plus_is_space: bool) -> Cow<'_, str> {
    if !(s.contains('%') || plus_is_space && s.contains('+')) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(bytes_into_text(percent_decode(s.as_bytes(), plus_is_space)))
}

fn named_entity(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    Some(match lower.as_str() {
        "lt" => "<",
        "gt" => ">",
        "amp" => "&",
        "quot" => "\"",
        "apos" => "'",
        "nbsp" => " ",
        "colon" => ":",
        "tab" => "\t",
        "newline" => "\n",
        "lpar" => "(",
        "rpar" => ")",
        "sol" => "/",
        "bsol" => "\\",
        "lbrace" | "lcub" => "{",
        "rbrace" | "rcub" => "}",
        "lsqb" | "lbrack" => "[",
        "rsqb" | "rbrack" => "]",
        "semi" => ";",
        "comma" => ",",
        "period" => ".",
        "excl" => "!",
        "num" => "#",
        "dollar" => "$",
        "percnt" => "%",
        "plus" => "+",
        "equals" => "=",
        "grave" => "`",
        "hat" => "^",
        "lowbar" => "_",
        "ast" | "midast" => "*",
        "quest" => "?",
        "commat" => "@",
        "verbar" | "vert" => "|",
        "dash" | "hyphen" => "-",
        _ => return None,
    })
}

/// Decodes HTML character references, named and numeric, with or without `;`.
pub(crate) fn html_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        if b[i] != b'&' {
            i += 1;
            continue;
        }
        let start = i;
        let mut j = i + 1;
        let mut decoded: Option<String> = None;
        if b.get(j) == Some(&b'#') {
            j += 1;
            let hex = matches!(b.get(j), Some(b'x' | b'X'));
            if hex {
                j += 1;
            }
            // Leading zeros are padding browsers ignore: `&#0000000060;` is `<`.
            let mut zeros = 0;
            while j < b.len() && b[j] == b'0' && zeros < 64 {
                j += 1;
                zeros += 1;
            }
            let ds = j;
            let mut cp: u32 = 0;
            while j < b.len() && j - ds < 8 {
                let d = if hex {
                    hex_val(b[j]).map(u32::from)
                } else if b[j].is_ascii_digit() {
                    Some(u32::from(b[j] - b'0'))
                } else {
                    None
                };
                match d {
                    Some(d) => {
                        cp = cp
                            .saturating_mul(if hex { 16 } else { 10 })
                            .saturating_add(d)
                    }
                    None => break,
                }
                j += 1;
            }
            if j > ds || zeros > 0 {
                decoded = Some(char::from_u32(cp).unwrap_or('\u{FFFD}').to_string());
            }
        } else {
            let ns = j;
            while j < b.len() && b[j].is_ascii_alphanumeric() && j - ns < 10 {
                j += 1;
            }
            if let Some(rep) = std::str::from_utf8(&b[ns..j]).ok().and_then(named_entity) {
                decoded = Some(rep.to_string());
            }
        }
        match decoded {
            Some(rep) => {
                if b.get(j) == Some(&b';') {
                    j += 1;
                }
                out.push_str(&s[last..start]);
                out.push_str(&rep);
                last = j;
                i = j;
            }
            None => i += 1,
        }
    }
    out.push_str(&s[last..]);
    out
}

/// Decodes JavaScript / C style escapes: `\uXXXX`, `\u{X}`, `\xXX`.
pub(crate) fn js_unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            match b.get(i + 1) {
                Some(b'u' | b'U') => {
                    if b.get(i + 2) == Some(&b'{') {
                        let mut j = i + 3;
                        let mut cp: u32 = 0;
                        while j < b.len() && j < i + 10 {
                            match hex_val(b[j]) {
                                Some(d) => cp = cp * 16 + u32::from(d),
                                None => break,
                            }
                            j += 1;
                        }
                        if b.get(j) == Some(&b'}') && j > i + 3 {
                            push_char(&mut out, cp);
                            i = j + 1;
                            continue;
                        }
                    } else if let Some(cp) = hex4(b, i + 2) {
                        push_char(&mut out, cp);
                        i += 6;
                        continue;
                    }
                }
                Some(b'x' | b'X') => {
                    if let (Some(h), Some(l)) = (
                        b.get(i + 2).and_then(|&x| hex_val(x)),
                        b.get(i + 3).and_then(|&x| hex_val(x)),
                    ) {
                        out.push(h * 16 + l);
                        i += 4;
                        continue;
                    }
                }
                _ => {}
            }
        }
        out.push(b[i]);
        i += 1;
    }
    bytes_into_text(out)
}

/// Decodes UTF-7 shifted sequences (`+ADw-` is `<`): old IE sniffed UTF-7 pages.
pub(crate) fn utf7_decode(s: &str) -> Option<String> {
    if !s.contains("+A") {
        return None;
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut changed = false;
    while i < b.len() {
        if b[i] == b'+' {
            let mut j = i + 1;
            let mut bits: u32 = 0;
            let mut nbits = 0u32;
            let mut units: Vec<u16> = Vec::new();
            while j < b.len() {
                let v = match b[j] {
                    c @ b'A'..=b'Z' => c - b'A',
                    c @ b'a'..=b'z' => c - b'a' + 26,
                    c @ b'0'..=b'9' => c - b'0' + 52,
                    b'+' => 62,
                    b'/' => 63,
                    _ => break,
                };
                bits = (bits << 6) | u32::from(v);
                nbits += 6;
                if nbits >= 16 {
                    nbits -= 16;
                    units.push(((bits >> nbits) & 0xFFFF) as u16);
                }
                j += 1;
            }
            if !units.is_empty() {
                out.push_str(&String::from_utf16_lossy(&units));
                changed = true;
                if b.get(j) == Some(&b'-') {
                    j += 1;
                }
                i = j;
                continue;
            }
        }
        let ch_len = s[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&s[i..i + ch_len]);
        i += ch_len;
    }
    changed.then_some(out)
}

/// Standard or URL-safe base64, padding optional. `None` if not base64.
pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let t = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(t.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut n = 0u32;
    for c in t.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push(((acc >> n) & 0xFF) as u8);
        }
    }
    if t.len() % 4 == 1 {
        return None;
    }
    Some(out)
}

/// Whether a value plausibly is base64 worth decoding: long enough, only base64
/// characters, and mixed like encoded data rather than a word.
pub(crate) fn plausible_base64(s: &str) -> bool {
    let t = s.trim_end_matches('=');
    if t.len() < 12 {
        return false;
    }
    let mut upper = false;
    let mut lower = false;
    let mut digit_or_sym = false;
    for c in t.bytes() {
        match c {
            b'A'..=b'Z' => upper = true,
            b'a'..=b'z' => lower = true,
            b'0'..=b'9' | b'+' | b'/' | b'-' | b'_' => digit_or_sym = true,
            _ => return false,
        }
    }
    upper && lower && (digit_or_sym || t.len() >= 16)
}

/// Share of printable text in decoded bytes, used to keep only meaningful base64.
pub(crate) fn mostly_text(b: &[u8]) -> bool {
    if b.is_empty() {
        return false;
    }
    let Ok(s) = std::str::from_utf8(b) else {
        return false;
    };
    let printable = s
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
        .count();
    printable * 100 >= s.chars().count() * 95
}

/// Folds characters that lenient back ends or old browsers read as ASCII: fullwidth
/// forms (`＜` U+FF1C → `<`) and, when `¼`/`¾` appear, the Latin-1 bytes whose low seven
/// bits spell ASCII (`\xbc` → `<`, the US-ASCII charset trick). `None` if nothing folds.
pub(crate) fn fold_lookalikes(s: &str) -> Option<String> {
    let fullwidth = s.chars().any(|c| ('\u{FF01}'..='\u{FF5E}').contains(&c));
    let high_bit = s.contains(['\u{BC}', '\u{BE}']);
    if !fullwidth && !high_bit {
        return None;
    }
    let out: String = s
        .chars()
        .map(|c| {
            let cp = u32::from(c);
            if (0xFF01..=0xFF5E).contains(&cp) {
                char::from_u32(cp - 0xFF01 + 0x21).unwrap_or(c)
            } else if high_bit && (0xA0..=0xFF).contains(&cp) {
                char::from_u32(cp & 0x7F).unwrap_or(c)
            } else {
                c
            }
        })
        .collect();
    Some(out)
}

/// One full normalisation round set: percent (optionally `+`), HTML entities, JS escapes,
/// repeated until stable or `MAX_ROUNDS`.
pub(crate) fn normalize(s: &str, plus_is_space: bool) -> String {
    let mut cur = s.to_string();
    // Once a percent layer is peeled, a `+` it revealed is a form-encoded space.
    let mut seen_percent = false;
    for _ in 0..MAX_ROUNDS {
        let had_percent = cur.contains('%');
        let mut next = url_decode(&cur, plus_is_space && seen_percent);
        seen_percent |= had_percent && next != cur;
        // Each decoder is the identity without its marker: no copy then.
        if next.contains('&') {
            next = Cow::Owned(html_entities(&next));
        }
        if next.contains('\\') {
            next = Cow::Owned(js_unescape(&next));
        }
        if next == cur {
            break;
        }
        cur = next.into_owned();
    }
    cur
}

/// The forms of a value that detectors judge: the value as transported, its full
/// normalisation, UTF-7 and base64 decodings when plausible. Deduplicated. The engine
/// uses [`decoded_forms`]; this is for tests and fuzz targets.
pub(crate) fn variants(raw: &str, plus_is_space: bool) -> Vec<String> {
    let mut out = vec![raw.to_string()];
    out.extend(decoded_forms(raw, Feat::of(raw), plus_is_space));
    out
}

/// The forms of [`variants`] after the first (`raw` itself, which the caller keeps
/// borrowed): empty, without an allocation, for a value with nothing to decode. `feat`
/// is `Feat::of(raw)`.
pub(crate) fn decoded_forms(raw: &str, feat: Feat, plus_is_space: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    // No escape marker (`%`, `&`, `\`, `+` for form spaces and UTF-7) and nothing to
    // fold: every decoder is the identity, so only base64 is left to try.
    let markers = feat.any(Feat::PCT | Feat::AMP | Feat::BSLASH | Feat::PLUS | Feat::NONASCII);
    if !markers {
        // Punctuation that base64 does not use survives any trim, and plausible base64
        // mixes cases: without an upper-case letter it is not plausible.
        if !feat.any(NOT_BASE64) && feat.any(Feat::UPPER) {
            push_base64(raw, &mut out);
        }
        return out;
    }
    // Without `%`, `&` or `\` every round of `normalize` is the identity.
    let norm_literal: Cow<'_, str> = if feat.any(Feat::PCT | Feat::AMP | Feat::BSLASH) {
        Cow::Owned(normalize(raw, false))
    } else {
        Cow::Borrowed(raw)
    };
    if norm_literal != raw {
        out.push(norm_literal.to_string());
    }
    // A form-encoded string embedded where `+` is not special (XML, JSON, headers) still
    // means spaces once its percent layer is peeled.
    if plus_is_space || (raw.contains('%') && raw.contains('+')) {
        let norm = normalize(raw, true);
        if norm != norm_literal {
            out.push(norm);
        }
    }
    // `+` used as a space one encoding layer down (`%2B%7C%2Bdir` → `+|+dir`): judge a
    // spaced form too when the value has no spaces but has code punctuation.
    if plus_is_space
        && norm_literal.contains('+')
        && !norm_literal.contains(' ')
        && norm_literal.contains(['|', ';', '&', '\'', '"', '(', '<', '>', '`', '='])
    {
        out.push(norm_literal.replace('+', " "));
    }
    // The forms below are all made from the last form so far (without copying it).
    let u7 = utf7_decode(&norm_literal);
    let last = out.last().map_or(raw, String::as_str);
    // Every look-alike `fold_lookalikes` folds is outside ASCII.
    let folded = if last.is_ascii() {
        None
    } else {
        fold_lookalikes(last)
    };
    let mut b64 = Vec::new();
    push_base64(last, &mut b64);
    out.extend(u7);
    out.extend(folded);
    out.append(&mut b64);
    out.dedup();
    // Deduplicated as if `raw` led the list.
    if out.first().is_some_and(|f| f == raw) {
        out.remove(0);
    }
    out
}

/// Characters that are neither base64 nor whitespace a trim would remove.
const NOT_BASE64: u64 = Feat::QUOTE
    | Feat::BACKTICK
    | Feat::LT
    | Feat::GT
    | Feat::PAREN
    | Feat::SEMI
    | Feat::PIPE
    | Feat::AMP
    | Feat::DOLLAR
    | Feat::BRACE
    | Feat::BRACKET
    | Feat::BSLASH
    | Feat::COLON
    | Feat::PCT
    | Feat::HASH
    | Feat::STAR
    | Feat::DOT
    | Feat::AT
    | Feat::OTHER;

/// Adds the decoding of `s` when it plausibly is base64 of text.
fn push_base64(s: &str, out: &mut Vec<String>) {
    // Shorter than `plausible_base64` accepts, even before trimming.
    if s.len() < 12 {
        return;
    }
    let trimmed = s.trim();
    if plausible_base64(trimmed) {
        if let Some(bytes) = base64_decode(trimmed) {
            if mostly_text(&bytes) {
                let text = bytes_to_text(&bytes);
                out.push(normalize(&text, false));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn percent_layers() {
        assert_eq!(normalize("%2527", false), "'");
        assert_eq!(normalize("%u0027", false), "'");
        assert_eq!(normalize("a+b", true), "a+b");
        assert_eq!(normalize("%252B", true), " ");
        assert_eq!(url_decode("%zz%41", false), "%zzA");
    }

    #[test]
    fn overlong_utf8() {
        assert_eq!(url_decode("%c0%ae%c0%ae/", false), "../");
        assert_eq!(url_decode("%e0%80%ae", false), ".");
    }

    #[test]
    fn entities_and_escapes() {
        assert_eq!(html_entities("&lt;a&#x3e;&#39&colon;"), "<a>':");
        assert_eq!(js_unescape("\\u0027\\x3c\\u{3e}"), "'<>");
        assert_eq!(normalize("&amp;lt;", false), "<");
        assert_eq!(html_entities("AT&T rocks"), "AT&T rocks");
    }

    #[test]
    fn quoted_printable_parts() {
        assert_eq!(
            quoted_printable("=3Cscript=3Ealert(1)=3C/script=3E"),
            "<script>alert(1)</script>"
        );
        assert_eq!(quoted_printable("caf=C3=A9 =\r\nau lait"), "café au lait");
        assert_eq!(quoted_printable("a = b, =zz"), "a = b, =zz");
    }

    #[test]
    fn utf16_bodies() {
        let le: Vec<u8> = "{\"q\":\"' or 1=1--\"}"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(utf16_body(&le).unwrap(), "{\"q\":\"' or 1=1--\"}");
        let mut be = vec![0xFE, 0xFF];
        be.extend("<a>é</a>".encode_utf16().flat_map(u16::to_be_bytes));
        assert_eq!(utf16_body(&be).unwrap(), "<a>é</a>");
        assert!(utf16_body(b"{\"q\":\"plain utf-8 text\"}").is_none());
        assert!(utf16_body(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x01\0").is_none());
    }

    #[test]
    fn utf7() {
        assert_eq!(utf7_decode("+ADw-script+AD4-").unwrap(), "<script>");
    }

    #[test]
    fn base64() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert!(plausible_base64("JHtqbmRpOmxkYXA6Ly94fQ=="));
        assert!(!plausible_base64("hello world"));
        let v = variants("JHtqbmRpOmxkYXA6Ly94fQ==", false);
        assert!(v.iter().any(|x| x == "${jndi:ldap://x}"));
    }
}
