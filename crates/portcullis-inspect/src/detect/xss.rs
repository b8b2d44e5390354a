//! Cross-site scripting: an HTML tag/attribute tokenizer (dangerous elements, event
//! handlers, script URIs, dangerous CSS) and a small JavaScript tokenizer for values
//! that land in script context (sink calls, DOM access, JSFuck, template calls).

use super::{Feat, Sink, Strongest, WordSet};
use crate::settings::Class;

/// Bytes scanned per tag; a tag longer than this is judged on its prefix.
const MAX_TAG: usize = 4096;
/// Tags judged per value.
const MAX_TAGS: usize = 256;

fn tag_score(name: &str) -> u32 {
    let n = name.rsplit(':').next().unwrap_or(name);
    // A prefixed document container (`soap:Body`, `w:body`, `x:html`) is an element of
    // its own XML vocabulary: it holds nothing a browser runs unless a handler is on it
    // (judged apart). Prefixed script-capable elements (`x:script`, `h:iframe` bound to
    // XHTML) and foreign-content roots (`svg:svg`) keep their score.
    if n.len() < name.len() && matches!(n, "html" | "body" | "layer" | "ilayer" | "bgsound") {
        return 15;
    }
    local_tag_score(n)
}

fn local_tag_score(n: &str) -> u32 {
    match n {
        "script" => 92,
        "iframe" | "frame" | "frameset" | "object" | "embed" | "applet" | "base" | "import"
        | "vmlframe" | "isindex" | "portal" | "xss" | "handler" | "listener" => 82,
        "meta" | "link" | "style" | "xml" => 65,
        "html" | "body" | "layer" | "ilayer" | "bgsound" => 62,
        "svg" | "math" => 62,
        "template" | "animate" | "set" | "foreignobject" | "marquee" | "xmp" | "plaintext"
        | "noscript" | "textarea" | "title" | "video" | "audio" | "source" | "details" | "form"
        | "input" | "button" | "keygen" | "dialog" | "image" | "select" | "option" => 30,
        "p" | "b" | "i" | "u" | "em" | "strong" | "ul" | "ol" | "li" | "br" | "hr" | "h1"
        | "h2" | "h3" | "h4" | "h5" | "h6" | "blockquote" | "code" | "pre" | "span" | "table"
        | "tr" | "td" | "th" | "thead" | "tbody" | "sup" | "sub" | "small" | "strike" | "s"
        | "del" | "ins" | "dl" | "dt" | "dd" | "kbd" | "abbr" | "cite" | "q" => 10,
        "a" | "img" | "div" => 20,
        _ => 15,
    }
}

fn is_event_handler(attr: &str) -> bool {
    let a = attr.rsplit(':').next().unwrap_or(attr);
    a.len() >= 5
        && a.starts_with("on")
        && a.as_bytes()[2..5].iter().all(|c| c.is_ascii_alphabetic())
}

/// Strips characters browsers ignore inside a URI scheme (whitespace, controls) and
/// lower-cases, so `java&#9;script:` and ` JaVaScRiPt:` compare equal.
fn scheme_of(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        if c == ':' {
            out.push(':');
            break;
        }
        if c.is_whitespace() || c.is_control() || c == '\u{FEFF}' {
            continue;
        }
        if out.len() > 16 {
            break;
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn uri_score(value: &str) -> u32 {
    let v = value
        .trim_start_matches(|c: char| c.is_whitespace() || c.is_control() || c == '"' || c == '\'');
    let scheme = scheme_of(v);
    match scheme.as_str() {
        "javascript:" | "vbscript:" | "livescript:" | "mocha:" => 90,
        "mhtml:" | "ms-its:" | "jar:" => 75,
        "data:" => {
            let lower: String = v
                .chars()
                .take(64)
                .collect::<String>()
                .to_ascii_lowercase()
                .replace(|c: char| c.is_whitespace(), "");
            if lower.starts_with("data:text/html")
                || lower.starts_with("data:image/svg")
                || lower.starts_with("data:application/")
                || lower.starts_with("data:text/javascript")
                || lower.starts_with("data:,")
                || lower.starts_with("data:text/xml")
            {
                80
            } else {
                20
            }
        }
        _ => 0,
    }
}

/// Decodes CSS escapes (`\28`, `\000028 `, `\(`) and drops comments, so
/// `expr/**/ession\28` reads `expression(`.
fn css_unescape(value: &str) -> String {
    let chars: Vec<char> = value.chars().take(8192).collect();
    let mut out = String::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '/' && chars.get(i + 1) == Some(&'*') {
            let mut j = i + 2;
            while j + 1 < chars.len() && !(chars[j] == '*' && chars[j + 1] == '/') {
                j += 1;
            }
            i = j + 2;
            continue;
        }
        if c == '\\' {
            let mut j = i + 1;
            let mut cp: u32 = 0;
            while j < chars.len() && j < i + 7 && chars[j].is_ascii_hexdigit() {
                cp = cp * 16 + chars[j].to_digit(16).unwrap_or(0);
                j += 1;
            }
            if j > i + 1 {
                if let Some(ch) = char::from_u32(cp) {
                    if cp != 0 {
                        out.push(ch);
                    }
                }
                if chars.get(j) == Some(&' ') {
                    j += 1;
                }
                i = j;
                continue;
            }
            i += 1;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

fn css_score(value: &str) -> u32 {
    let escaped = value.contains('\\') || value.contains("/*");
    let v: String = css_unescape(value)
        .chars()
        .filter(|c| !c.is_whitespace())
        .take(4096)
        .collect::<String>()
        .to_ascii_lowercase();
    if v.contains("expression(")
        || v.contains("-moz-binding")
        || v.contains("behavior:")
        || v.contains("behaviour:")
    {
        return 85;
    }
    if let Some(p) = v.find("url(") {
        let inner = &v[p + 4..];
        if uri_score(inner.trim_start_matches(['"', '\''])) >= 80 {
            return 88;
        }
    }
    if v.contains("@import") || v.contains("binding:") {
        return 70;
    }
    if v.contains("url(") || escaped && v.contains(':') {
        return 62;
    }
    // Breaking out of a declaration: braces, brackets, stray quotes.
    if v.contains(['{', '}', '[', ']']) || v.matches('\'').count() % 2 == 1 || v.contains(";'") {
        return 62;
    }
    0
}

struct Attr<'a> {
    name: String,
    value: &'a str,
}

/// Parses attributes of a tag body (after its name) as a browser would, tolerating
/// `/` separators and junk.
fn parse_attrs(s: &str) -> Vec<Attr<'_>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() && out.len() < 64 {
        while i < b.len()
            && (b[i].is_ascii_whitespace()
                || b[i] == 0x0b
                || b[i] == b'/'
                || b[i] == 0
                || b[i] == b'"'
                || b[i] == b'\''
                || b[i] == b'`')
        {
            i += 1;
        }
        if i >= b.len() || b[i] == b'>' {
            break;
        }
        let ns = i;
        while i < b.len()
            && !b[i].is_ascii_whitespace()
            && !matches!(b[i], b'/' | b'>' | b'=' | 0x0b)
        {
            i += 1;
        }
        let name = s[ns..i].to_ascii_lowercase();
        let mut j = i;
        while j < b.len() && (b[j].is_ascii_whitespace() || b[j] == 0x0b) {
            j += 1;
        }
        if j < b.len() && b[j] == b'=' {
            j += 1;
            while j < b.len() && (b[j].is_ascii_whitespace() || b[j] == 0x0b) {
                j += 1;
            }
            let (vs, ve, next) = if j < b.len() && matches!(b[j], b'"' | b'\'' | b'`') {
                let q = b[j];
                let vs = j + 1;
                let mut k = vs;
                while k < b.len() && b[k] != q {
                    k += 1;
                }
                (vs, k, (k + 1).min(b.len()))
            } else {
                let vs = j;
                let mut k = vs;
                while k < b.len() && !b[k].is_ascii_whitespace() && b[k] != b'>' {
                    k += 1;
                }
                (vs, k, k)
            };
            out.push(Attr {
                name,
                value: &s[vs..ve],
            });
            i = next;
        } else {
            if !name.is_empty() {
                out.push(Attr { name, value: "" });
            }
            i = i.max(ns + 1);
        }
    }
    out
}

fn judge_tags(text: &str, lower: &str) -> (u32, &'static str) {
    let b = lower.as_bytes();
    let mut best = (0u32, "");
    let bump = |s: u32, r: &'static str, best: &mut (u32, &'static str)| {
        if s > best.0 {
            *best = (s, r);
        }
    };
    let mut tags = 0;
    let mut i = 0;
    while i < b.len() && tags < MAX_TAGS {
        let Some(p) = lower[i..].find('<') else { break };
        let lt = i + p;
        i = lt + 1;
        let rest = &lower[lt + 1..];
        if let Some(d) = rest.strip_prefix("!--#") {
            if d.starts_with("exec")
                || d.starts_with("include")
                || d.starts_with("echo")
                || d.starts_with("set")
                || d.starts_with("config")
            {
                bump(75, "xss.ssi", &mut best);
            }
            continue;
        }
        if rest.starts_with("!attlist") || rest.starts_with("!doctype") {
            let decl = &rest[..rest.len().min(MAX_TAG)];
            if decl
                .split(|c: char| c.is_whitespace())
                .any(is_event_handler)
            {
                bump(80, "xss.attlist-handler", &mut best);
            }
        }
        if rest.starts_with("//") || rest.starts_with("/ ") {
            // `<// style=x:expression(...)>`: a nameless tag still carries attributes.
            let end = rest.find('>').unwrap_or(rest.len()).min(MAX_TAG);
            for a in parse_attrs(text.get(lt + 1..lt + 1 + end).unwrap_or("")) {
                if is_event_handler(&a.name) {
                    bump(80, "xss.event-handler", &mut best);
                }
                if a.name == "style" {
                    bump(css_score(a.value), "xss.css", &mut best);
                }
            }
        }
        if rest.starts_with("?import") || rest.starts_with("?xml-stylesheet") {
            bump(75, "xss.import", &mut best);
            continue;
        }
        let closing = rest.starts_with('/');
        let nb = if closing { &rest[1..] } else { rest };
        // `<:vmlframe`: an empty namespace prefix.
        let nb = nb.strip_prefix(':').unwrap_or(nb);
        let name_len = nb
            .bytes()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b':' | b'-' | b'_' | b'.'))
            .count();
        if name_len == 0 || !nb.as_bytes()[0].is_ascii_alphabetic() {
            continue;
        }
        tags += 1;
        let name = &nb[..name_len];
        let base = tag_score(name);
        if closing {
            if matches!(name, "body" | "html") {
                // `</body></html>`: closing the page to append markup after it.
                bump(62, "xss.closing-tag", &mut best);
            }
            if base >= 80
                || matches!(
                    name,
                    "title" | "textarea" | "style" | "noscript" | "xmp" | "iframe"
                )
            {
                bump(
                    if name.ends_with("script") { 80 } else { 50 },
                    "xss.closing-tag",
                    &mut best,
                );
            }
            continue;
        }
        let body_start = lt + 1 + (rest.len() - nb.len()) + name_len;
        let body_end_rel = lower[body_start..].find('>');
        let closed = body_end_rel.is_some();
        let body_end = body_end_rel
            .map_or(lower.len(), |q| body_start + q)
            .min(body_start + MAX_TAG);
        let body_end = {
            let mut e = body_end.min(lower.len());
            while e > body_start && !lower.is_char_boundary(e) {
                e -= 1;
            }
            e
        };
        // Attribute values are judged on the original case (entities already decoded).
        let body = text.get(body_start..body_end).unwrap_or("");
        let attrs = parse_attrs(body);
        let separated = body.is_empty()
            || body.starts_with(|c: char| c.is_whitespace() || c == '/' || c == '>');
        if !separated {
            continue;
        }
        let mut score = if closed || !attrs.is_empty() {
            base
        } else {
            base.saturating_sub(10)
        };
        if name == "meta"
            && attrs
                .iter()
                .any(|a| a.name == "http-equiv" || a.name == "charset" || a.name == "content")
        {
            score = score.max(75);
        }
        if name == "link" && attrs.iter().any(|a| a.name == "href" || a.name == "rel") {
            score = score.max(72);
        }
        if name.ends_with("script") && name != "script" {
            score = score.max(88);
        }
        bump(score, "xss.tag", &mut best);
        for a in &attrs {
            if is_event_handler(&a.name) {
                bump(90, "xss.event-handler", &mut best);
            }
            match a.name.as_str() {
                "href" | "src" | "action" | "formaction" | "data" | "xlink:href" | "background"
                | "lowsrc" | "dynsrc" | "code" | "codebase" | "to" | "values" | "from"
                | "poster" | "srcset" | "content" | "folder" | "ping" | "classid" | "archive"
                | "by" => {
                    if matches!(a.name.as_str(), "to" | "values" | "from" | "by")
                        && js_score(a.value).0 >= 60
                    {
                        bump(80, "xss.svg-animate", &mut best);
                    }
                    let u = uri_score(a.value);
                    if u >= 80 {
                        bump(u, "xss.script-uri", &mut best);
                    } else if a.name == "content" && a.value.to_ascii_lowercase().contains("url=") {
                        bump(70, "xss.meta-refresh", &mut best);
                    }
                }
                "style" => bump(css_score(a.value), "xss.css", &mut best),
                "srcdoc" => bump(80, "xss.srcdoc", &mut best),
                "datasrc" | "datafld" | "dataformatas" => bump(75, "xss.data-binding", &mut best),
                "ev:handler" | "ev:event" | "handler" => bump(70, "xss.xml-events", &mut best),
                "attributename" if a.value.to_ascii_lowercase().starts_with("on") => {
                    bump(85, "xss.svg-animate", &mut best)
                }
                "attributename" if a.value.eq_ignore_ascii_case("href") => {
                    bump(70, "xss.svg-animate", &mut best)
                }
                _ => {}
            }
        }
        if name == "style" {
            let after = lower.get(body_end..).unwrap_or("");
            bump(css_score(after).max(score), "xss.css", &mut best);
        }
        i = body_end.max(lt + 1);
    }
    best
}

/// Finds `on<event>=` outside a tag, as written to break out of an attribute value.
fn judge_attribute_breakout(lower: &str) -> (u32, &'static str) {
    let b = lower.as_bytes();
    let mut best = (0u32, "");
    let mut i = 0;
    let mut seen_quote = false;
    while i + 4 < b.len() {
        if matches!(b[i], b'"' | b'\'' | b'`') {
            seen_quote = true;
        }
        let boundary = i == 0
            || matches!(
                b[i - 1],
                b' ' | b'\t' | b'\n' | b'\r' | b'/' | b'"' | b'\'' | b'`' | b'\x0c' | b';' | b'+'
            );
        if boundary && b[i] == b'o' && b[i + 1] == b'n' {
            let mut j = i + 2;
            while j < b.len() && b[j].is_ascii_alphabetic() {
                j += 1;
            }
            let name_len = j - i - 2;
            let mut k = j;
            while k < b.len() && (b[k].is_ascii_whitespace() || b[k] == 0) {
                k += 1;
            }
            if name_len >= 3 && k < b.len() && b[k] == b'=' && b.get(k + 1) != Some(&b'=') {
                let rhs = crate::extract::truncate_str(&lower[k + 1..], 256);
                // `onload=` as the whole value: an attribute name injected on its own.
                if rhs.trim().is_empty() && lower[..i].trim().is_empty() {
                    best = best.max((62, "xss.attribute-handler"));
                }
                // `"onzoom=` at the end: an attribute opened right after a quote.
                if seen_quote
                    && rhs.trim().is_empty()
                    && i > 0
                    && matches!(b[i - 1], b'"' | b'\'' | b'`')
                {
                    best = best.max((70, "xss.attribute-handler"));
                }
                let js = js_score(rhs);
                let jsish = js.0 >= 50
                    || rhs
                        .trim_start_matches(['"', '\'', ' '])
                        .starts_with(|c: char| c.is_ascii_alphabetic() || c == '$' || c == '_')
                        && rhs
                            .chars()
                            .take(80)
                            .any(|c| matches!(c, '(' | '`' | '=' | '['));
                if jsish {
                    let s = if seen_quote { 85 } else { 70 };
                    if s > best.0 {
                        best = (s, "xss.attribute-handler");
                    }
                }
            }
            i = j;
            continue;
        }
        i += 1;
    }
    best
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum J {
    Ident,
    Str,
    Num,
    Tpl,
    P(u8),
}

struct JTok<'a> {
    k: J,
    text: &'a str,
}

fn js_tokens(s: &str) -> Vec<JTok<'_>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(s.len() / 4 + 4);
    let mut i = 0;
    while i < b.len() && out.len() < 4096 {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i = s[i + 2..].find("*/").map_or(b.len(), |p| i + p + 4);
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            i = s[i..].find('\n').map_or(b.len(), |p| i + p);
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' || c == b'$' || c >= 0x80 {
            let st = i;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80)
            {
                i += 1;
            }
            out.push(JTok {
                k: J::Ident,
                text: &s[st..i],
            });
            continue;
        }
        if c.is_ascii_digit() {
            let st = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
            out.push(JTok {
                k: J::Num,
                text: &s[st..i],
            });
            continue;
        }
        if c == b'"' || c == b'\'' || c == b'`' {
            let st = i;
            i += 1;
            while i < b.len() && b[i] != c {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i = (i + 1).min(b.len());
            let end = i.min(s.len());
            let mut e = end;
            while e > st && !s.is_char_boundary(e) {
                e -= 1;
            }
            out.push(JTok {
                k: if c == b'`' { J::Tpl } else { J::Str },
                text: &s[st..e],
            });
            continue;
        }
        out.push(JTok {
            k: J::P(c),
            text: "",
        });
        i += 1;
    }
    out
}

const SINK_CALLS: &[&str] = &[
    "alert",
    "prompt",
    "confirm",
    "eval",
    "settimeout",
    "setinterval",
    "btoa",
    "execscript",
    "fromcharcode",
    "atob",
    "unescape",
    "write",
    "writeln",
    "import",
    "importscripts",
    "open",
    "print",
    "constructor",
    "fetch",
    "escape",
    "decodeuri",
    "decodeuricomponent",
    "tostring",
    "valueof",
    "setimmediate",
    "msSetImmediate",
];
const DOM_OBJECTS: &[&str] = &[
    "document",
    "window",
    "self",
    "top",
    "parent",
    "globalthis",
    "frames",
    "location",
    "opener",
    "content",
    "this",
];
const DOM_PROPS: &[&str] = &[
    "cookie",
    "domain",
    "write",
    "writeln",
    "location",
    "href",
    "innerhtml",
    "outerhtml",
    "body",
    "createelement",
    "execcommand",
    "open",
    "localstorage",
    "sessionstorage",
    "documentelement",
    "origin",
    "referrer",
    "alert",
    "eval",
    "hash",
    "search",
    "appendchild",
    "insertadjacenthtml",
    "queryselector",
    "textcontent",
];

static SINK_CALL_SET: WordSet = WordSet::new(SINK_CALLS);
static DOM_OBJECT_SET: WordSet = WordSet::new(DOM_OBJECTS);
static DOM_PROP_SET: WordSet = WordSet::new(DOM_PROPS);

/// Longest identifier any rule of `js_score` compares with (`decodeuricomponent`).
const JS_WORD_MAX: usize = 32;

/// `word` in ASCII lower case in `buf`, or `None` when it is longer than any identifier
/// `js_score` compares with (so no rule can name it).
fn js_lower<'b>(word: &str, buf: &'b mut [u8; JS_WORD_MAX]) -> Option<&'b str> {
    let out = buf.get_mut(..word.len())?;
    out.copy_from_slice(word.as_bytes());
    out.make_ascii_lowercase();
    std::str::from_utf8(out).ok()
}

/// Scores script context: calls to sinks, DOM access, obfuscation.
fn js_score(s: &str) -> (u32, &'static str) {
    let toks = js_tokens(s);
    let mut word_buf = [0u8; JS_WORD_MAX];
    let mut prop_buf = [0u8; JS_WORD_MAX];
    let mut best = (0u32, "");
    let mut bump = |sc: u32, r: &'static str| {
        if sc > best.0 {
            best = (sc, r);
        }
    };
    for i in 0..toks.len() {
        let t = &toks[i];
        if t.k != J::Ident {
            continue;
        }
        let Some(lower) = js_lower(t.text, &mut word_buf) else {
            continue;
        };
        let next = toks.get(i + 1).map(|x| x.k);
        let prev_dot = i > 0 && toks[i - 1].k == J::P(b'.');
        if SINK_CALL_SET.contains(lower) {
            match next {
                Some(J::P(b'(')) => {
                    // Judge the argument list: JS arguments rarely hold bare English.
                    let mut j = i + 2;
                    let mut depth = 1;
                    let mut idents_in_row = 0;
                    let mut max_row = 0;
                    let mut n = 0;
                    let mut strong_arg = false;
                    while j < toks.len() && depth > 0 && n < 256 {
                        match toks[j].k {
                            J::P(b'(') => depth += 1,
                            J::P(b')') => depth -= 1,
                            J::Ident => {
                                idents_in_row += 1;
                                max_row = max_row.max(idents_in_row);
                            }
                            J::Str | J::Num | J::Tpl => strong_arg = true,
                            J::P(b'.') | J::P(b'[') => strong_arg = true,
                            _ => idents_in_row = 0,
                        }
                        if !matches!(toks[j].k, J::Ident) {
                            idents_in_row = 0;
                        }
                        j += 1;
                        n += 1;
                    }
                    let empty = toks.get(i + 2).is_some_and(|x| x.k == J::P(b')'));
                    let base: u32 = match lower {
                        "eval" | "settimeout" | "setinterval" | "execscript" | "fromcharcode"
                        | "constructor" | "function" => 80,
                        "alert" | "prompt" | "confirm" => 75,
                        "atob" | "btoa" | "unescape" | "write" | "writeln" | "importscripts" => 68,
                        _ if prev_dot => 62,
                        _ => 0,
                    };
                    if base == 0 || max_row >= 2 {
                        continue;
                    }
                    // `eval() is evil`: an empty call followed by prose is a mention.
                    let prose_after = empty
                        && toks
                            .get(i + 3..)
                            .unwrap_or(&[])
                            .iter()
                            .take(4)
                            .filter(|x| x.k == J::Ident)
                            .count()
                            >= 3;
                    let sc = if prose_after {
                        40
                    } else if empty || strong_arg {
                        base
                    } else {
                        base.saturating_sub(25)
                    };
                    bump(sc, "xss.js-sink-call");
                }
                Some(J::Tpl) => bump(82, "xss.js-template-call"),
                _ => {}
            }
        }
        if DOM_OBJECT_SET.contains(lower) && !prev_dot {
            match (next, toks.get(i + 2)) {
                (Some(J::P(b'.')), Some(p)) if p.k == J::Ident => {
                    let prop = js_lower(p.text, &mut prop_buf);
                    if prop.is_some_and(|x| DOM_PROP_SET.contains(x))
                        && lower != "this"
                        && lower != "content"
                    {
                        bump(72, "xss.dom-access");
                    }
                }
                (Some(J::P(b'[')), Some(p))
                    if matches!(p.k, J::Str | J::Tpl) && lower != "this" =>
                {
                    bump(78, "xss.dom-access");
                }
                // `(document)["cookie"]`
                (Some(J::P(b')')), Some(p)) if p.k == J::P(b'[') && lower == "document" => {
                    bump(75, "xss.dom-access");
                }
                _ => {}
            }
        }
        if lower == "new"
            && toks
                .get(i + 1)
                .is_some_and(|x| x.text.eq_ignore_ascii_case("function"))
        {
            bump(85, "xss.js-new-function");
        }
        if prev_dot
            && (lower == "call" || lower == "apply" || lower == "bind")
            && matches!(next, Some(J::Tpl))
        {
            bump(82, "xss.js-template-call");
        }
        // `x.cookie = …`: writing a cookie from script.
        if lower == "cookie"
            && prev_dot
            && toks.get(i + 1).is_some_and(|x| x.k == J::P(b'='))
            && toks.get(i + 2).is_some_and(|x| x.k != J::P(b'='))
        {
            bump(70, "xss.dom-write");
        }
        if (lower == "innerhtml" || lower == "outerhtml" || lower == "srcdoc")
            && prev_dot
            && toks.get(i + 1).is_some_and(|x| x.k == J::P(b'='))
        {
            bump(75, "xss.dom-write");
        }
    }
    // JSFuck-style: nothing but []()!+ characters.
    let core: Vec<u8> = if s.contains('!') && s.contains('[') && s.contains(']') {
        s.bytes().filter(|c| !c.is_ascii_whitespace()).collect()
    } else {
        // Without `!` and `[]` the test below fails anyway.
        Vec::new()
    };
    if core.len() >= 4 {
        let fuck = core
            .iter()
            .filter(|c| matches!(c, b'[' | b']' | b'(' | b')' | b'!' | b'+'))
            .count();
        if fuck * 100 >= core.len() * 90
            && core.windows(2).any(|w| w == b"[]")
            && core.contains(&b'!')
        {
            bump(82, "xss.jsfuck");
        }
    }
    best
}

/// Whether `js_score` can score anything in `lower` or in a suffix of it (the suffixes
/// it is given start after a quote or `&{`, never inside a name). Each of its rules
/// needs a sink name before a call or template, a subscript (`[`), `new Function`, or a
/// member `.name` that is a DOM property or one written to (`.cookie =`); a comment
/// between two tokens could hide a pair, so a comment means yes.
fn js_possible(lower: &str, f: Feat) -> bool {
    if f.any(Feat::BRACKET) && lower.contains('[')
        || lower.contains("function")
        || f.any(Feat::SLASH) && (lower.contains("/*") || lower.contains("//"))
    {
        return true;
    }
    let b = lower.as_bytes();
    // A call or a template counts after a sink name (a template also after `.call`,
    // `.apply`, `.bind`): the identifier right before it, across whitespace.
    if f.any(Feat::PAREN | Feat::BACKTICK) {
        let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
        for (q, &c) in b.iter().enumerate() {
            if c != b'(' && c != b'`' {
                continue;
            }
            let mut end = q;
            while end > 0 && b[end - 1].is_ascii_whitespace() {
                end -= 1;
            }
            let mut start = end;
            while start > 0 && ident(b[start - 1]) {
                start -= 1;
            }
            let name = &lower[start..end];
            if SINK_CALL_SET.contains(name)
                || c == b'`' && matches!(name, "call" | "apply" | "bind")
            {
                return true;
            }
        }
    }
    if !f.any(Feat::DOT) {
        return false;
    }
    let mut from = 0;
    while let Some(p) = lower[from..].find('.') {
        let mut i = from + p + 1;
        from = i;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while i < b.len()
            && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80)
        {
            i += 1;
        }
        let name = &lower[start..i];
        if DOM_PROP_SET.contains(name)
            || matches!(name, "cookie" | "innerhtml" | "outerhtml" | "srcdoc")
        {
            return true;
        }
    }
    false
}

/// Whether text before position `p` contains a way out of a surrounding string or tag.
fn has_breakout(s: &str) -> bool {
    s.bytes()
        .any(|c| matches!(c, b'\'' | b'"' | b'`' | b';' | b'>' | b'}' | b'\\'))
}

/// Judges one value; pushes at most one finding.
pub(crate) fn detect(text: &str, lower: &str, sink: &mut Sink) {
    if text.len() < 4 {
        return;
    }
    let mut best = Strongest::NONE;
    // `f` says which characters the value holds at all: a search for one it does not
    // hold is skipped.
    let f = sink.feat;
    if f.any(Feat::LT) && lower.contains('<') {
        best.consider(judge_tags(text, lower));
        // `<f o r m`, `< x: script`: tag names spelled with spaces.
        for (p, _) in lower.match_indices('<').take(32) {
            let spelled: String = lower[p + 1..]
                .chars()
                .take(24)
                .filter(|c| !c.is_whitespace())
                .take_while(|c| c.is_ascii_alphabetic() || *c == ':')
                .collect();
            let spaced = lower[p + 1..].chars().take(3).any(char::is_whitespace);
            let name = spelled.rsplit(':').next().unwrap_or("");
            if spaced
                && matches!(
                    name,
                    "script"
                        | "form"
                        | "dialog"
                        | "iframe"
                        | "object"
                        | "embed"
                        | "svg"
                        | "img"
                        | "body"
                        | "style"
                        | "meta"
                        | "link"
                        | "base"
                        | "math"
                        | "frame"
                        | "input"
                        | "video"
                        | "audio"
                        | "details"
                        | "marquee"
                )
            {
                best.consider((70, "xss.spaced-tag"));
            }
        }
    }
    if f.any(Feat::NONASCII) && text.contains('\u{BC}') && seven_bit_markup(text) {
        best.consider((68, "xss.seven-bit-markup"));
    }
    if let Some(p) = (f.any(Feat::EQ) && lower.contains("formaction="))
        .then(|| lower.find("formaction="))
        .flatten()
    {
        if p > 0 && matches!(lower.as_bytes()[p - 1], b'"' | b'\'' | b' ' | b'/') {
            best.consider((70, "xss.attribute-handler"));
        }
    }
    if f.any(Feat::EQ) && lower.contains("on") && lower.contains('=') {
        best.consider(judge_attribute_breakout(lower));
    }
    if f.any(Feat::COLON) && lower.contains(':') {
        // A script URI as the whole value (a link field), or after a quote/paren.
        let u = if harmless_js_uri(lower) {
            0
        } else {
            uri_score(text)
        };
        if u >= 75 {
            let after = text.split_once(':').map_or("", |x| x.1);
            let js = js_score(after).0;
            let code_like = after.contains(['(', '`', '\\', '=', ';', '{', '[', '\'', '"'])
                || after.contains("//")
                || after.starts_with(|c: char| c.is_ascii_punctuation());
            let sc = if u == 90 && (js >= 40 || code_like || after.trim().is_empty()) {
                90
            } else if u == 90 {
                45
            } else {
                u - 10
            };
            best.consider((sc, "xss.script-uri"));
        }
        for marker in ["javascript:", "vbscript:"] {
            if let Some(p) = compact_find(lower, marker) {
                if harmless_js_uri(&lower[p..]) {
                    continue;
                }
                let before = lower[..p].trim_end();
                if before.ends_with(['=', '"', '\'', '(', '`', '>']) || before.ends_with("url(") {
                    best.consider((85, "xss.script-uri"));
                } else if js_score(&lower[p + marker.len()..]).0 >= 60 {
                    best.consider((80, "xss.script-uri"));
                }
            }
        }
    }
    if js_possible(lower, f) {
        let (js, rule) = js_score(text);
        if js > 0 {
            let bonus = if has_breakout(text) { 8 } else { 0 };
            best.consider(((js + bonus).min(95), rule));
        }
        // Script-string contexts: the value may start inside a JS string literal, so
        // judge what follows the first quote that would close it.
        for q in ['\'', '"', '`'] {
            if let Some(p) = text.find(q) {
                let (js, rule) = js_score(&text[p + 1..]);
                if js > 0 {
                    best.consider(((js + 8).min(95), rule));
                }
            }
        }
        // Netscape JavaScript entities: `&{alert(1)};`.
        if let Some(p) = text.contains("&{").then(|| text.find("&{")).flatten() {
            let (js, _) = js_score(&text[p + 2..]);
            if js >= 50 {
                best.consider((80, "xss.js-entity"));
            }
        }
    }
    let paren = f.any(Feat::PAREN);
    if paren
        && (lower.contains("url(javascript")
            || lower.contains("url(vbscript")
            || lower.contains("url(\"javascript")
            || lower.contains("url('javascript"))
    {
        best.consider((85, "xss.css"));
    }
    if paren && lower.contains("expression(")
        || f.any(Feat::HYPHEN) && lower.contains("-moz-binding")
        || f.any(Feat::COLON) && lower.contains("behavior:")
        || paren && lower.contains("url(")
    {
        best.consider((css_score(lower).saturating_sub(5), "xss.css"));
    }
    best.report(Class::Xss, text, sink);
}

/// Markup spelt for a 7-bit reader: `¼script¾…¼/script¾`. A US-ASCII decoder that drops
/// the high bit reads 0xBC and 0xBE as `<` and `>` (and every other Latin-1 letter as
/// ASCII), so an element opened and closed with them is written for that reader.
/// Fractions in prose (`¼ cup`, `¾tsp`) never close an element.
fn seven_bit_markup(text: &str) -> bool {
    const LT: char = '\u{1}';
    const GT: char = '\u{2}';
    let folded: Vec<char> = text
        .chars()
        .take(8192)
        .map(|c| match c {
            '\u{BC}' => LT,
            '\u{BE}' => GT,
            '\u{A0}'..='\u{FF}' => char::from_u32(u32::from(c) & 0x7F).unwrap_or(c),
            _ => c,
        })
        .collect();
    let mut opened: Vec<String> = Vec::new();
    for (i, &c) in folded.iter().enumerate() {
        if c != LT {
            continue;
        }
        let closing = folded.get(i + 1) == Some(&'/');
        let start = i + 1 + usize::from(closing);
        let name: String = folded[start.min(folded.len())..]
            .iter()
            .take(32)
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            continue;
        }
        let ends = folded[start + name.len()..]
            .iter()
            .take(256)
            .find(|&&c| c == LT || c == GT)
            == Some(&GT);
        if !ends {
            continue;
        }
        if closing {
            if opened.contains(&name) {
                return true;
            }
        } else if opened.len() < 32 {
            opened.push(name);
        }
    }
    false
}

/// `javascript:;`, `javascript:void(0)`: the inert placeholder links of real sites.
fn harmless_js_uri(lower: &str) -> bool {
    let t = lower.trim_start_matches(|c: char| c.is_whitespace() || c == '"' || c == '\'');
    let Some(rest) = t.strip_prefix("javascript:") else {
        return false;
    };
    let rest: String = rest.chars().filter(|c| !c.is_whitespace()).collect();
    let end = rest.find(['"', '\'', '&']).unwrap_or(rest.len());
    let body = rest[..end].trim_end_matches(';');
    matches!(
        body,
        "" | "void(0)" | "void0" | "void(null)" | "false" | "true" | "null" | "undefined"
    )
}

/// Finds `needle` in `hay` ignoring whitespace and control characters inside the match.
fn compact_find(hay: &str, needle: &str) -> Option<usize> {
    let hb = hay.as_bytes();
    let nb = needle.as_bytes();
    let first = nb.first()?;
    let mut start = 0;
    while let Some(p) = hay[start..].find(char::from(*first)) {
        let s = start + p;
        let mut i = s;
        let mut k = 0;
        let mut steps = 0;
        while i < hb.len() && k < nb.len() && steps < 64 {
            steps += 1;
            if hb[i] == nb[k] {
                k += 1;
                i += 1;
            } else if hb[i].is_ascii_whitespace() || hb[i] < 0x20 {
                i += 1;
            } else {
                break;
            }
        }
        if k == nb.len() {
            return Some(s);
        }
        start = s + 1;
        if start >= hay.len() {
            break;
        }
    }
    None
}

#[cfg(test)]
mod tests;
