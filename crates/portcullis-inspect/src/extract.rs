//! Extraction: every inspectable value of a request, with its location and decodings.

use std::borrow::Cow;

use crate::decode;
use crate::detect::Feat;
use crate::settings::Limits;
use crate::Request;

/// Where a value came from; detectors weigh some signals by origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// One `/`-separated segment of the path.
    PathSegment,
    /// The whole decoded path, for traversal only.
    PathFull,
    /// Name of a query, form or multipart parameter.
    ParamName,
    /// Value of a query, form or multipart parameter.
    ParamValue,
    /// A header value.
    Header,
    /// A cookie name.
    CookieName,
    /// A cookie value.
    CookieValue,
    /// A file name from a multipart part or an upload header.
    Filename,
    /// Content of an uploaded file (bounded).
    FileContent,
    /// A JSON object key.
    JsonKey,
    /// A JSON string value.
    JsonValue,
    /// XML element text or attribute value.
    XmlText,
    /// An XML name (element or attribute).
    XmlName,
    /// The DOCTYPE / entity declarations of an XML body.
    XmlDoctype,
    /// A string argument inside a GraphQL document.
    GraphQl,
    /// A body whose format is unknown, judged as one value.
    RawBody,
    /// A User-Agent that parsed as a plain product list: only its product names matter.
    AgentProduct,
    /// A `Content-Type` value, the request's or a multipart part's.
    MediaType,
    /// A charset label a back end decodes other values with (`_charset_`, XML `encoding`).
    Charset,
}

impl Origin {
    /// Names (keys) rather than values.
    pub(crate) fn is_name(self) -> bool {
        matches!(
            self,
            Origin::ParamName | Origin::CookieName | Origin::JsonKey | Origin::XmlName
        )
    }
}

/// One value to judge, lent to the judge while extraction goes on: nothing of it is
/// copied unless a finding needs it.
#[derive(Debug)]
pub(crate) struct Value<'v> {
    pub location: &'v str,
    pub origin: Origin,
    /// Lower-case header name when the value came from a header (or cookie).
    pub header: Option<&'v str>,
    /// Evidence must not show this value (credentials).
    pub secret: bool,
    /// Decoded forms to judge.
    pub variants: Variants<'v>,
    /// Raw bytes when they matter (binary serialized objects).
    pub raw_bytes: Option<&'v [u8]>,
}

/// The forms of a value: the value after transport decoding, then what the decoders make
/// of it (usually nothing, so usually no allocation at all).
#[derive(Debug)]
pub(crate) struct Variants<'v> {
    first: &'v str,
    /// `Feat::of(first)`, computed once for the decoders and the detectors.
    first_feat: Feat,
    rest: Vec<String>,
}

impl<'v> Variants<'v> {
    /// The value after transport decoding, with its features; what the decoders make of it.
    fn new(first: &'v str, plus: bool) -> Variants<'v> {
        let first_feat = Feat::of(first);
        Variants {
            first,
            first_feat,
            rest: decode::decoded_forms(first, first_feat, plus),
        }
    }

    /// Features of the first form.
    pub(crate) fn first_feat(&self) -> Feat {
        self.first_feat
    }

    /// Every form, the transported one first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.first).chain(self.rest.iter().map(String::as_str))
    }

    /// The form as transported.
    pub(crate) fn first(&self) -> &'v str {
        self.first
    }

    /// The most decoded form.
    pub(crate) fn last(&self) -> &str {
        self.rest.last().map_or(self.first, String::as_str)
    }
}

struct Sink<'l, 'e> {
    /// Values handed to `judge` so far.
    emitted: usize,
    limits: &'l Limits,
    /// Values pushed while this is set are credentials (JWT claims): never shown.
    secret: bool,
    /// How many XML or JSON documents found inside values are being walked (`push_with`).
    nested: u8,
    /// Whether the last value judged was quiet (see [`extract`]); true before the first.
    last_quiet: bool,
    /// Whether every value judged since this was last set was quiet (per header field).
    all_quiet: bool,
    judge: &'e mut dyn FnMut(&Value<'_>) -> bool,
}

impl Sink<'_, '_> {
    fn full(&self) -> bool {
        self.emitted >= self.limits.max_values
    }

    /// Pushes a protocol field judged as written (no decoding layers).
    fn push_raw(&mut self, location: &str, origin: Origin, text: &str) {
        if self.full() || text.is_empty() {
            return;
        }
        let text = truncate_str(text, 1024);
        self.emit(&Value {
            location,
            origin,
            header: None,
            secret: false,
            variants: Variants {
                first: text,
                first_feat: Feat::of(text),
                rest: Vec::new(),
            },
            raw_bytes: None,
        });
    }

    fn push(&mut self, location: &str, origin: Origin, text: &str, plus: bool) {
        self.push_with(location, origin, text, plus, None, false);
    }

    fn push_with(
        &mut self,
        location: &str,
        origin: Origin,
        text: &str,
        plus: bool,
        header: Option<&str>,
        secret: bool,
    ) {
        if self.full() || text.is_empty() {
            return;
        }
        let bounded = truncate_str(text, self.limits.max_value_len);
        let value = Value {
            location,
            origin,
            header,
            secret: secret || self.secret,
            variants: Variants::new(bounded, plus),
            raw_bytes: None,
        };
        self.emit(&value);
        // An XML document carried inside a value (a SOAP or XML payload in a JSON field, a
        // header, a query parameter, escaped in another document's text) is parsed by the
        // back end that receives it: walk it as a body is walked, so an attribute or text
        // holding markup, a path or a command is judged decoded, on its own. Two levels at
        // most; only a value that opens with an XML declaration, after its decoding.
        if self.nested < 2 && origin != Origin::XmlName {
            if let Some(doc) = value.variants.iter().find_map(xml_document) {
                self.nested += 1;
                extract_xml(doc, location, self);
                self.nested -= 1;
                return;
            }
        }
        // Likewise a JSON document in a parameter, header, cookie, form or multipart field,
        // XML text or a JSON key (a string value's JSON is walked by `walk_json`): an API
        // that takes JSON there parses it, and its keys and strings are judged on their own.
        if self.nested < 2
            && (origin == Origin::JsonKey || origin != Origin::JsonValue && !origin.is_name())
        {
            if let Some(doc) = value.variants.iter().find_map(json_document) {
                let mut loc = location.to_owned();
                self.nested += 1;
                walk_json(&doc, &mut loc, 1, self);
                self.nested -= 1;
            }
        }
    }

    fn emit(&mut self, value: &Value<'_>) {
        self.emitted += 1;
        let quiet = (self.judge)(value);
        self.last_quiet = quiet;
        self.all_quiet &= quiet;
    }
}

/// `s` from its XML declaration on, when it opens with one (after white space).
fn xml_document(s: &str) -> Option<&str> {
    let t = s.trim_start();
    let head = t.get(..6)?;
    (head.eq_ignore_ascii_case("<?xml ") || head.eq_ignore_ascii_case("<?xml?")).then_some(t)
}

/// `s` parsed as a JSON object, when it is one (after white space). Objects only: their
/// keys are what a value judged whole hides (`$where`, `__proto__`, `@type`); an array's
/// strings are judged well enough in the whole value, and arrays of tracking data
/// (fingerprints, coordinates) are common in parameters.
fn json_document(s: &str) -> Option<Json<'_>> {
    let t = s.trim();
    if t.len() > 2 && t.starts_with('{') && t.ends_with('}') {
        serde_json::from_str::<Json<'_>>(t).ok()
    } else {
        None
    }
}

/// Appends the decimal digits of `n` (a location index) without the formatting machinery.
fn push_index(out: &mut String, n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

pub(crate) fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Header fields whose values come back unchanged request after request: a client's
/// User-Agent, its credentials for the life of a token, its cookies for a session.
fn repeats(name: &str) -> bool {
    matches!(name, "user-agent" | "authorization" | "cookie")
}

/// Longest header value [`QuietMemo`] remembers.
const QUIET_MAX_LEN: usize = 2048;
/// Sets of the per-thread [`QuietMemo`] (a power of two), each of `QUIET_WAYS` entries.
const QUIET_SETS: usize = 64;
const QUIET_WAYS: usize = 4;

struct QuietEntry {
    name: String,
    text: String,
    limits: Limits,
    values: usize,
}

type QuietMemo = crate::detect::SetAssoc<QuietEntry, QUIET_SETS, QUIET_WAYS>;

/// The quiet memo's hash of `name: text`.
fn quiet_hash(m: &QuietMemo, name: &str, text: &str) -> u64 {
    use std::hash::Hasher;
    let mut h = m.hasher();
    h.write(name.as_bytes());
    h.write_u8(0xff);
    h.write(text.as_bytes());
    h.finish()
}

thread_local! {
    /// Header values (of the fields [`repeats`] names) whose every extracted value was
    /// quiet, per thread, with how many values they gave: the next time the field holds
    /// the same text under the same limits, its values are counted and not extracted
    /// again. Exact: extraction and judgement are pure functions of (name, text, limits),
    /// and a quiet value leaves nothing behind. Set-associative (a client's User-Agent,
    /// token and cookies cannot keep evicting one another), bounded.
    static QUIET: std::cell::RefCell<QuietMemo> =
        std::cell::RefCell::new(QuietMemo::new(1));
}

/// Hands every inspectable value of a request to `judge`, in request order, bounded by
/// `limits`. `judge` returns whether the value was quiet: no hit of its own, and nothing
/// left for the request-level judgements of the values after it.
pub(crate) fn extract(
    req: &Request<'_>,
    limits: Limits,
    judge: &mut dyn FnMut(&Value<'_>) -> bool,
) {
    let mut sink = Sink {
        emitted: 0,
        limits: &limits,
        secret: false,
        nested: 0,
        last_quiet: true,
        all_quiet: true,
        judge,
    };
    extract_path(req.path, &mut sink);
    if let Some(q) = req.query {
        extract_urlencoded(q, "query", &mut sink);
    }
    let mut content_type: Option<std::borrow::Cow<'_, str>> = None;
    for (name, value) in req.headers {
        let text = decode::bytes_to_text(value);
        if *name == "content-type" {
            match &content_type {
                None => content_type = Some(text.clone()),
                // A second, different Content-Type: judged joined, as a proxy joins
                // repeated fields, so the two body formats show side by side.
                Some(first) if first.trim() != text.trim() => sink.push_raw(
                    "header.content-type",
                    Origin::MediaType,
                    &format!("{first}, {text}"),
                ),
                Some(_) => {}
            }
        }
        let memo = repeats(name) && text.len() <= QUIET_MAX_LEN;
        // A repeated quiet value, after a quiet value (nothing pending): count its values.
        // Only when the limit on values cannot have cut it short, then or now.
        if memo && sink.last_quiet {
            let seen = QUIET.with(|m| {
                let m = m.borrow();
                let hash = quiet_hash(&m, name, &text);
                m.find(hash, |e| {
                    e.text == *text && e.name == *name && e.limits == limits
                })
                .map(|e| e.values)
            });
            if let Some(n) = seen.filter(|n| sink.emitted + n < limits.max_values) {
                sink.emitted += n;
                continue;
            }
        }
        let start = sink.emitted;
        sink.all_quiet = true;
        extract_header(name, &text, &mut sink);
        // Quietness does not depend on what came before: a value's request-level
        // judgements only add to what it would give alone.
        if memo && sink.all_quiet && !sink.full() {
            let n = sink.emitted - start;
            QUIET.with(|m| {
                let mut m = m.borrow_mut();
                let hash = quiet_hash(&m, name, &text);
                let entry = QuietEntry {
                    name: name.to_string(),
                    text: text.to_string(),
                    limits,
                    values: n,
                };
                m.insert(hash, entry);
            });
        }
    }
    if let Some(ct) = &content_type {
        sink.push_raw("header.content-type", Origin::MediaType, ct);
    }
    if !req.body.is_empty() {
        extract_body(req.body, content_type.as_deref(), &mut sink);
    }
}

fn extract_path(path: &str, sink: &mut Sink<'_, '_>) {
    let mut index = 0usize;
    let mut loc = String::new();
    for seg in path.split('/') {
        if seg.is_empty() {
            continue;
        }
        let decoded = decode::url_decode(seg, false);
        loc.clear();
        loc.push_str("path[");
        push_index(&mut loc, index);
        loc.push(']');
        sink.push(&loc, Origin::PathSegment, &decoded, false);
        index += 1;
        if sink.full() {
            return;
        }
    }
    let full = decode::url_decode(path, false);
    if full.len() > 1 {
        sink.push("path", Origin::PathFull, &full, false);
    }
}

/// Whether `s` holds HTML character references (`&tab;`, `&#x3c;`) that a form splitter
/// would cut apart at their `&`.
fn has_entity_refs(s: &str) -> bool {
    s.match_indices('&').take(64).any(|(p, _)| {
        let rest = &s[p + 1..];
        let name_len = rest
            .bytes()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == b'#')
            .count();
        (2..=10).contains(&name_len) && rest.as_bytes().get(name_len) == Some(&b';')
    })
}

fn extract_urlencoded(s: &str, root: &str, sink: &mut Sink<'_, '_>) {
    if has_entity_refs(s) {
        // Judge the whole string too: `v&tab;b&tab;script:` only means something joined.
        let whole = decode::url_decode(s, true);
        sink.push(root, Origin::ParamValue, &whole, true);
    }
    let mut loc = String::new();
    for pair in s.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (name_raw, value_raw) = match pair.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (pair, None),
        };
        let name = decode::url_decode(name_raw, true);
        loc.clear();
        loc.push_str(root);
        loc.push('.');
        push_location_key(&mut loc, &name);
        sink.push(&loc, Origin::ParamName, &name, true);
        if let Some(v) = value_raw {
            let value = decode::url_decode(v, true);
            if name.eq_ignore_ascii_case("_charset_") {
                sink.push_raw(&loc, Origin::Charset, &value);
            }
            sink.push(&loc, Origin::ParamValue, &value, true);
        }
        if sink.full() {
            return;
        }
    }
}

/// Appends `name` as a location segment: at most 64 bytes, control characters as `?`.
fn push_location_key(out: &mut String, name: &str) {
    let t = truncate_str(name, 64);
    if t.chars().any(char::is_control) {
        out.extend(t.chars().map(|c| if c.is_control() { '?' } else { c }));
    } else {
        out.push_str(t);
    }
}

fn location_key(name: &str) -> String {
    let mut out = String::new();
    push_location_key(&mut out, name);
    out
}

/// Headers whose values carry no user data worth judging, or are judged elsewhere.
const SKIPPED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "accept",
    "accept-encoding",
    "accept-language",
    "accept-charset",
    "cache-control",
    "pragma",
    "te",
    "upgrade-insecure-requests",
    "if-none-match",
    "if-modified-since",
    "dnt",
    "keep-alive",
    "proxy-connection",
    "priority",
    "content-type",
    "transfer-encoding",
];

fn extract_header(name: &str, value: &str, sink: &mut Sink<'_, '_>) {
    if SKIPPED_HEADERS.contains(&name)
        || name.starts_with("sec-ch-")
        || name.starts_with("sec-fetch-")
    {
        return;
    }
    if name == "cookie" {
        for pair in value.split(';') {
            let pair = pair.trim();
            if pair.is_empty() {
                continue;
            }
            let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
            let n_dec = decode::url_decode(n.trim(), false);
            let mut cloc = String::from("cookie.");
            push_location_key(&mut cloc, &n_dec);
            sink.push_with(
                &cloc,
                Origin::CookieName,
                &n_dec,
                false,
                Some("cookie"),
                false,
            );
            let v_dec = decode::url_decode(v.trim().trim_matches('"'), false);
            sink.push_with(
                &cloc,
                Origin::CookieValue,
                &v_dec,
                false,
                Some("cookie"),
                false,
            );
            // PHP's `$_COOKIE` and Rails read `+` as a space, other back ends do not (and
            // base64 keeps it): a value with `+` and no space is judged both ways.
            if v_dec.contains('+') && !v_dec.contains(' ') {
                sink.push_with(
                    &cloc,
                    Origin::CookieValue,
                    &v_dec.replace('+', " "),
                    false,
                    Some("cookie"),
                    false,
                );
            }
        }
        return;
    }
    let mut loc = String::with_capacity(7 + name.len());
    loc.push_str("header.");
    loc.push_str(name);
    if name == "user-agent" && benign_user_agent(value) {
        // A product/version list with plain comments: nothing in it can be code, but the
        // product may be an attack tool.
        sink.push_with(&loc, Origin::AgentProduct, value, false, Some(name), false);
        return;
    }
    if matches!(name, "authorization" | "proxy-authorization")
        && extract_credentials(name, &loc, value, sink)
    {
        return;
    }
    if matches!(name, "referer" | "origin") {
        if let Some(query) = plain_url(value) {
            // The URL itself is inert; only its parameters carry user data.
            push_referer_params(&loc, name, query, true, sink);
            return;
        }
    }
    let secret = matches!(name, "authorization" | "proxy-authorization" | "x-api-key");
    let mut compact = name.bytes().rev().filter(u8::is_ascii_alphanumeric);
    if b"emanelif".iter().all(|c| compact.next() == Some(*c)) {
        sink.push_with(&loc, Origin::Filename, value, false, Some(name), secret);
        return;
    }
    let decoded = decode::url_decode(value, false);
    sink.push_with(&loc, Origin::Header, &decoded, false, Some(name), secret);
    if name == "referer" {
        if let Some((_, q)) = value.split_once('?') {
            push_referer_params(&loc, name, q, false, sink);
        }
    }
}

/// The query of a Referer is a second set of parameters a browser was tricked into sending.
/// `whole` is set when the URL itself is not judged: a parameter without `=` then is
/// the value.
fn push_referer_params(loc: &str, name: &str, q: &str, whole: bool, sink: &mut Sink<'_, '_>) {
    if name != "referer" {
        return;
    }
    let q = q.split('#').next().unwrap_or("");
    for pair in q.split('&') {
        let v = match pair.split_once('=') {
            Some((_, v)) => v,
            None if whole => pair,
            None => continue,
        };
        let v = decode::url_decode(v, true);
        sink.push_with(loc, Origin::ParamValue, &v, true, Some(name), false);
    }
}

/// Whether a User-Agent is a plain RFC 9110 product list: `name/version` tokens and
/// parenthesised comments made of words, numbers and `; . _ : / , +` (in-word `-`),
/// without SQL or shell words. Browser and API-client agents all look like this, and
/// nothing that could be code fits in it; anything else is judged as usual.
fn benign_user_agent(ua: &str) -> bool {
    let b = ua.as_bytes();
    if b.is_empty() || b.len() > 512 {
        return false;
    }
    let mut depth = 0u32;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'(' => {
                depth += 1;
                if depth > 2 {
                    return false;
                }
            }
            b')' => {
                if depth == 0 {
                    return false;
                }
                depth -= 1;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'_' | b'+' | b' ' => {}
            b'/' if b.get(i + 1) != Some(&b'/') => {}
            b'-' => {
                let word = |x: Option<&u8>| x.is_some_and(|c| c.is_ascii_alphanumeric());
                if !(i > 0 && word(b.get(i - 1)) && word(b.get(i + 1))) {
                    return false;
                }
            }
            b';' | b':' | b',' if depth > 0 => {}
            _ => return false,
        }
        if c == b'.' && b.get(i + 1) == Some(&b'.') {
            return false;
        }
        i += 1;
    }
    if depth != 0 {
        return false;
    }
    // Outside comments every token is `product/version`: one `/` with text on both
    // sides. Tokens end at a space and at every `)`; comments are skipped.
    let mut d = 0u32;
    let (mut len, mut slashes, mut first_slash) = (0usize, 0u32, 0usize);
    let product = |len: usize, slashes: u32, first: usize| {
        len == 0 || slashes == 1 && first > 0 && first + 1 < len
    };
    for &c in b {
        let boundary = match c {
            b'(' => {
                d += 1;
                false
            }
            b')' => {
                d -= 1;
                true
            }
            b' ' if d == 0 => true,
            _ if d == 0 => {
                if c == b'/' {
                    if slashes == 0 {
                        first_slash = len;
                    }
                    slashes += 1;
                }
                len += 1;
                false
            }
            _ => false,
        };
        if boundary {
            if !product(len, slashes, first_slash) {
                return false;
            }
            (len, slashes) = (0, 0);
        }
    }
    if !product(len, slashes, first_slash) {
        return false;
    }
    !UA_SUSPECT_WORDS.any(ua)
}

/// Words that never appear in a real agent string but do in injected ones.
const UA_SUSPECT: &[&str] = &[
    "select",
    "union",
    "sleep",
    "benchmark",
    "waitfor",
    "drop",
    "insert",
    "delete",
    "update",
    "exec",
    "having",
    "order by",
    "group by",
    "procedure",
    "sysobjects",
    "information_schema",
    "localhost",
    "passwd",
    "whoami",
    "wget ",
    "curl ",
    "bash",
    "/bin",
    "/etc",
    "cmd",
    "powershell",
    "script",
    "alert",
    "onerror",
    "onload",
    "eval",
    "jndi",
    "ldap",
    "proto",
    "constructor",
];
static UA_SUSPECT_WORDS: crate::detect::Dict = crate::detect::Dict::new(UA_SUSPECT, true);

/// `http(s)://host[:port][/path][?query]` with a path of plain characters (no `..`, no
/// escapes, no quotes or brackets): returns its query (possibly empty), `None` if the
/// value is anything else and must be judged whole.
fn plain_url(v: &str) -> Option<&str> {
    let lower4 = v.get(..8)?.to_ascii_lowercase();
    let rest = if lower4.starts_with("https://") {
        &v[8..]
    } else if lower4.starts_with("http://") {
        &v[7..]
    } else {
        return None;
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let (hostpath, query) = rest.split_at(end);
    let host_end = hostpath.find('/').unwrap_or(hostpath.len());
    let (host, path) = hostpath.split_at(host_end);
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b':'));
    let path_ok = path.bytes().all(|c| {
        c.is_ascii_alphanumeric() || matches!(c, b'/' | b'-' | b'_' | b'.' | b'~' | b'+' | b',')
    }) && !path.contains("..")
        && !path.contains("//");
    let query_ok = query.bytes().all(|c| {
        c.is_ascii_graphic()
            && !matches!(
                c,
                b'<' | b'>'
                    | b'"'
                    | b'\''
                    | b'`'
                    | b'{'
                    | b'}'
                    | b'\\'
                    | b'|'
                    | b'('
                    | b')'
                    | b';'
                    | b'$'
            )
    });
    (host_ok && path_ok && query_ok).then(|| query.strip_prefix('?').unwrap_or(query))
}

/// `Authorization` credentials: a JWT's header and claims are JSON a back end reads
/// (`kid` lookups, claim values), Basic's `user:password` is text a back end compares;
/// an opaque token68 carries nothing to judge. Everything stays secret in evidence.
/// Returns false when the value is not a well-formed credential and must be judged whole.
fn extract_credentials(name: &str, loc: &str, value: &str, sink: &mut Sink<'_, '_>) -> bool {
    let Some((scheme, token)) = value.trim().split_once(' ') else {
        return false;
    };
    let token = token.trim();
    // RFC 9110 token68 characters.
    static TOKEN68: [bool; 256] = {
        let mut t = [false; 256];
        let mut c = 0;
        while c < 256 {
            let b = c as u8;
            t[c] =
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            c += 1;
        }
        t
    };
    let token68 = !token.is_empty()
        && token
            .trim_end_matches('=')
            .bytes()
            .all(|c| TOKEN68[usize::from(c)]);
    if !token68
        || !scheme
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-')
    {
        return false;
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let Some(bytes) = decode::base64_decode(token) else {
            return false;
        };
        let text = decode::bytes_to_text(&bytes);
        sink.push_with(loc, Origin::Header, &text, false, Some(name), true);
        return true;
    }
    // Exactly three dot-separated parts, without collecting them.
    let mut parts = token.splitn(4, '.');
    let jwt = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(claims), Some(_), None) if header.len() >= 4 && claims.len() >= 4 => {
            Some(header)
        }
        _ => None,
    };
    if let Some(header) = jwt {
        // The JOSE header is what a back end acts on before the signature is checked
        // (`kid` looked up in a database or on disk, `jku`/`x5u` fetched): judge it. The
        // claims are the issuer's and are verified by the authentication phase, which
        // runs before inspection.
        let Some(bytes) = decode::base64_decode(header) else {
            return false;
        };
        let text = decode::bytes_to_text(&bytes);
        let was = std::mem::replace(&mut sink.secret, true);
        let ok = extract_json_text(&text, &[loc, ".jwt"].concat(), sink);
        sink.secret = was;
        return ok;
    }
    // An opaque token: only a plausible base64 payload could hide something.
    if decode::plausible_base64(token) {
        sink.push_with(loc, Origin::Header, token, false, Some(name), true);
    }
    true
}

fn header_param(ct: &str, param: &str) -> Option<String> {
    for part in ct.split(';').skip(1) {
        let (k, v) = part.split_once('=')?;
        if k.trim().eq_ignore_ascii_case(param) {
            return Some(v.trim().trim_matches('"').to_string());
        }
    }
    None
}

fn extract_body(body: &[u8], content_type: Option<&str>, sink: &mut Sink<'_, '_>) {
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    let mime = ct.split(';').next().unwrap_or("").trim().to_string();
    let text = match decode::utf16_body(body) {
        Some(wide) => std::borrow::Cow::Owned(wide),
        None => decode::bytes_to_text(body),
    };
    let trimmed = text.trim_start();
    if mime == "multipart/form-data" || mime.starts_with("multipart/") {
        if let Some(boundary) = content_type.and_then(|c| header_param(c, "boundary")) {
            extract_multipart(&text, &boundary, sink);
            return;
        }
    }
    if (mime.ends_with("json") || mime.ends_with("+json"))
        && extract_json_text(&text, "body.$", sink)
    {
        return;
    }
    if mime == "application/graphql" {
        extract_graphql(&text, "body.graphql", sink);
        return;
    }
    if mime.ends_with("xml") || mime.ends_with("+xml") {
        extract_xml(&text, "body.xml", sink);
        return;
    }
    if mime == "application/x-www-form-urlencoded" && !looks_like_json(trimmed) {
        extract_urlencoded(&text, "body.form", sink);
        return;
    }
    // Sniff: the declared type is missing, generic or wrong.
    if looks_like_json(trimmed) && extract_json_text(&text, "body.$", sink) {
        return;
    }
    if trimmed.starts_with('<') {
        extract_xml(&text, "body.xml", sink);
        return;
    }
    if looks_like_form(&text) {
        extract_urlencoded(&text, "body.form", sink);
        return;
    }
    if !sink.full() {
        let bounded = truncate_str(&text, sink.limits.max_value_len);
        sink.emit(&Value {
            location: "body",
            origin: Origin::RawBody,
            header: None,
            secret: false,
            variants: Variants::new(bounded, false),
            raw_bytes: Some(&body[..body.len().min(sink.limits.max_file_bytes.max(64))]),
        });
    }
}

fn looks_like_json(t: &str) -> bool {
    t.starts_with('{') || t.starts_with('[')
}

fn looks_like_form(t: &str) -> bool {
    let t = t.trim_end();
    t.contains('=')
        && !t.contains(' ')
        && !t.contains('\n')
        && t.split('&').all(|p| !p.is_empty() && !p.starts_with('='))
}

fn extract_json_text(text: &str, root: &str, sink: &mut Sink<'_, '_>) -> bool {
    match serde_json::from_str::<Json<'_>>(text) {
        Ok(v) => {
            walk_json(&v, &mut String::from(root), 0, sink);
            true
        }
        Err(_) => false,
    }
}

/// A parsed JSON document for walking: strings borrow from the text unless they hold an
/// escape, numbers and literals are dropped. The same parser as `serde_json::Value` (same
/// documents accepted, same limits), and object members come out as from its map: sorted
/// by key, a repeated key keeping its last value.
enum Json<'a> {
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
    Array(Vec<Json<'a>>),
    String(Cow<'a, str>),
    Other,
}

/// An object key, borrowed when it holds no escape.
struct JsonKey<'a>(Cow<'a, str>);

struct JsonVisitor;

impl<'de> serde::de::Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Json<'de>, E> {
        Ok(Json::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Json<'de>, E> {
        Ok(Json::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Json<'de>, E> {
        Ok(Json::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Json<'de>, E> {
        Ok(Json::Other)
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Other)
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(v)))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut members: Vec<(Cow<'de, str>, Json<'de>)> = Vec::new();
        while let Some(JsonKey(key)) = map.next_key()? {
            members.push((key, map.next_value()?));
        }
        // A stable sort keeps repeated keys in document order: the last one wins.
        members.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(Cow<'de, str>, Json<'de>)> = Vec::with_capacity(members.len());
        for member in members {
            match out.last_mut() {
                Some(last) if last.0 == member.0 => *last = member,
                _ => out.push(member),
            }
        }
        Ok(Json::Object(out))
    }
}

impl<'de> serde::Deserialize<'de> for Json<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Json<'de>, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonKeyVisitor;

impl<'de> serde::de::Visitor<'de> for JsonKeyVisitor {
    type Value = JsonKey<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<JsonKey<'de>, E> {
        Ok(JsonKey(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<JsonKey<'de>, E> {
        Ok(JsonKey(Cow::Owned(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<JsonKey<'de>, E> {
        Ok(JsonKey(Cow::Owned(v)))
    }
}

impl<'de> serde::Deserialize<'de> for JsonKey<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<JsonKey<'de>, D::Error> {
        d.deserialize_str(JsonKeyVisitor)
    }
}

/// Appends the location segment of object member `key`: `.key`, or `["key"]` when the
/// key is not a plain name.
fn push_json_child(loc: &mut String, key: &str) {
    let simple = !key.is_empty()
        && key.len() <= 64
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '$' | '@' | ':'));
    if simple {
        loc.push('.');
        loc.push_str(key);
    } else {
        let quoted = serde_json::to_string(truncate_str(key, 64)).unwrap_or_default();
        loc.push('[');
        // JSON escapes only C0 controls; DEL and C1 (U+0080..U+009F) would reach the logs.
        for c in quoted.chars() {
            if c.is_control() {
                push_unicode_escape(loc, c);
            } else {
                loc.push(c);
            }
        }
        loc.push(']');
    }
}

/// Appends `\uXXXX` for a BMP control character.
fn push_unicode_escape(out: &mut String, c: char) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n = u32::from(c);
    out.push_str("\\u");
    for shift in [12, 8, 4, 0] {
        out.push(char::from(HEX[((n >> shift) & 0xf) as usize]));
    }
}

/// Walks a JSON document; `loc` is the location of `v`, extended for each child and
/// restored before returning.
fn walk_json(v: &Json<'_>, loc: &mut String, depth: usize, sink: &mut Sink<'_, '_>) {
    if sink.full() || depth > sink.limits.max_depth {
        return;
    }
    let parent = loc.len();
    match v {
        Json::Object(map) => {
            for (k, child) in map {
                loc.truncate(parent);
                push_json_child(loc, k);
                sink.push(loc, Origin::JsonKey, k, false);
                if k == "query" {
                    if let Json::String(q) = child {
                        if looks_like_graphql(q) {
                            extract_graphql(q, loc, sink);
                            continue;
                        }
                    }
                }
                walk_json(child, loc, depth + 1, sink);
            }
        }
        Json::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                loc.truncate(parent);
                loc.push('[');
                push_index(loc, i);
                loc.push(']');
                walk_json(child, loc, depth + 1, sink);
                if sink.full() {
                    break;
                }
            }
        }
        Json::String(s) => {
            let t = s.trim_start();
            // JSON inside a JSON string: judge the inner document too.
            if depth < 8 && (t.starts_with('{') || t.starts_with('[')) && t.len() > 2 {
                if let Ok(inner) = serde_json::from_str::<Json<'_>>(t) {
                    walk_json(&inner, loc, depth + 1, sink);
                }
            }
            sink.push(loc, Origin::JsonValue, s, false);
        }
        _ => {}
    }
    loc.truncate(parent);
}

fn looks_like_graphql(q: &str) -> bool {
    let t = q.trim_start();
    (t.starts_with('{')
        || t.starts_with("query")
        || t.starts_with("mutation")
        || t.starts_with("subscription")
        || t.starts_with("fragment"))
        && t.contains('{')
}

/// Extracts string arguments from a GraphQL document; the document itself is judged
/// for injection too (it is code the server parses).
fn extract_graphql(q: &str, loc: &str, sink: &mut Sink<'_, '_>) {
    let b = q.as_bytes();
    let mut i = 0;
    while i < b.len() && !sink.full() {
        match b[i] {
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                let block = b.get(i + 1) == Some(&b'"') && b.get(i + 2) == Some(&b'"');
                let start = if block { i + 3 } else { i + 1 };
                let mut j = start;
                let mut s = String::new();
                while j < b.len() {
                    if block {
                        if b[j] == b'"'
                            && b.get(j + 1) == Some(&b'"')
                            && b.get(j + 2) == Some(&b'"')
                        {
                            break;
                        }
                    } else if b[j] == b'"' {
                        break;
                    } else if b[j] == b'\\' && j + 1 < b.len() {
                        s.push('\\');
                        j += 1;
                    }
                    let ch_len = q[j..].chars().next().map_or(1, char::len_utf8);
                    s.push_str(&q[j..j + ch_len]);
                    j += ch_len;
                }
                sink.push(loc, Origin::GraphQl, &s, false);
                i = if block { j + 3 } else { j + 1 };
                continue;
            }
            _ => {}
        }
        i += 1;
    }
}

fn extract_multipart(text: &str, boundary: &str, sink: &mut Sink<'_, '_>) {
    let delim = format!("--{boundary}");
    for (n, part) in text.split(delim.as_str()).enumerate().skip(1) {
        if sink.full() || part.starts_with("--") {
            break;
        }
        let part = part
            .strip_prefix("\r\n")
            .or_else(|| part.strip_prefix('\n'))
            .unwrap_or(part);
        let (head, content) = match part.find("\r\n\r\n") {
            Some(p) => (&part[..p], &part[p + 4..]),
            None => match part.find("\n\n") {
                Some(p) => (&part[..p], &part[p + 2..]),
                None => (part, ""),
            },
        };
        let content = content
            .strip_suffix("\r\n")
            .or_else(|| content.strip_suffix('\n'))
            .unwrap_or(content);
        let mut name: Option<String> = None;
        let mut filename: Option<String> = None;
        let mut part_type = String::new();
        let mut transfer = String::new();
        for line in head.lines() {
            let (k, v) = line.split_once(':').unwrap_or((line, ""));
            let k = k.trim().to_ascii_lowercase();
            if k == "content-disposition" {
                name = header_param(v, "name");
                filename = header_param(v, "filename");
            } else if k == "content-type" {
                part_type = v.trim().to_ascii_lowercase();
            } else if k == "content-transfer-encoding" {
                transfer = v.trim().to_ascii_lowercase();
            }
        }
        // RFC 7578 retired Content-Transfer-Encoding for form data, but parsers that still
        // honour it read the decoded part: so does the engine.
        let transfer_decoded = match transfer.as_str() {
            "quoted-printable" => Some(decode::quoted_printable(content)),
            "base64" => {
                let compact: String = content.split_ascii_whitespace().collect();
                decode::base64_decode(&compact).map(|b| decode::bytes_to_text(&b).into_owned())
            }
            _ => None,
        };
        let content = transfer_decoded.as_deref().unwrap_or(content);
        let field = name.clone().unwrap_or_else(|| format!("part{n}"));
        let loc = format!("body.multipart.{}", location_key(&field));
        if let Some(nm) = &name {
            sink.push(&loc, Origin::ParamName, nm, false);
        }
        if !part_type.is_empty() {
            sink.push_raw(&loc, Origin::MediaType, &part_type);
        }
        match filename {
            Some(f) => {
                sink.push(&loc, Origin::Filename, &f, false);
                let bound = truncate_str(content, sink.limits.max_file_bytes);
                if !bound.is_empty() && !sink.full() {
                    sink.emit(&Value {
                        location: &loc,
                        origin: Origin::FileContent,
                        header: None,
                        secret: false,
                        variants: Variants {
                            first: bound,
                            first_feat: Feat::ALL,
                            rest: Vec::new(),
                        },
                        raw_bytes: None,
                    });
                }
            }
            None => {
                if part_type.contains("json")
                    && extract_json_text(content, &format!("{loc}.$"), sink)
                {
                    continue;
                }
                // An XML part (SOAP with attachments, MTOM's root) is a document, not text.
                let mime = part_type.split(';').next().unwrap_or("").trim();
                if mime.ends_with("/xml") || mime.ends_with("+xml") {
                    extract_xml(content, "body.xml", sink);
                    continue;
                }
                if field.eq_ignore_ascii_case("_charset_") {
                    sink.push_raw(&loc, Origin::Charset, content.trim());
                }
                sink.push(&loc, Origin::ParamValue, content, false);
            }
        }
    }
}

/// A tolerant XML scanner: text, attribute values, names, DOCTYPE. Not a validator.
/// Walks an XML document; `root` names it in locations (`body.xml`, or the location of the
/// value that carried it).
fn extract_xml(text: &str, root: &str, sink: &mut Sink<'_, '_>) {
    let b = text.as_bytes();
    let mut i = 0;
    let mut stack: Vec<String> = Vec::new();
    let mut text_start = 0;
    while i < b.len() && !sink.full() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        push_xml_text(&text[text_start..i], root, &stack, sink);
        let rest = &text[i..];
        if rest.starts_with("<!--") {
            let end = rest.find("-->").map_or(b.len(), |p| i + p + 3);
            i = end;
        } else if rest.starts_with("<![CDATA[") {
            let end = rest.find("]]>").map_or(b.len(), |p| i + p);
            sink.push(
                &xml_location(root, &stack),
                Origin::XmlText,
                &text[i + 9..end.max(i + 9)],
                false,
            );
            i = (end + 3).min(b.len());
        } else if rest.starts_with("<!") {
            // DOCTYPE with an internal subset: find the matching `]>` or `>`.
            let end = match rest.find('[') {
                Some(p) if rest[..p].find('>').is_none() => {
                    rest[p..].find("]>").map_or(b.len(), |q| i + p + q + 2)
                }
                _ => rest.find('>').map_or(b.len(), |p| i + p + 1),
            };
            let doctype = format!("{root}.doctype");
            sink.push(&doctype, Origin::XmlDoctype, &text[i..end], false);
            i = end;
        } else if rest.starts_with("<?") {
            let end = rest.find("?>").map_or(b.len(), |p| i + p + 2);
            let pi = &text[i..end];
            if !pi.starts_with("<?xml ") && !pi.starts_with("<?xml?") {
                sink.push(&xml_location(root, &stack), Origin::XmlText, pi, false);
            } else if let Some((_, enc)) = xml_attributes(pi[5..].trim_end_matches("?>"))
                .into_iter()
                .find(|(n, _)| n == "encoding")
            {
                // The declared encoding is how the back end's parser reads the bytes. A
                // UTF-16 label on text that was read here as ASCII (as .NET's StringWriter
                // writes it) cannot switch a parser to anything the engine has not seen;
                // a body really in UTF-16 was decoded before it got here.
                let wide = enc.get(..6).is_some_and(|p| {
                    p.eq_ignore_ascii_case("utf-16") || p.eq_ignore_ascii_case("utf-32")
                });
                // Only the body's declaration says how the body's bytes are read.
                if !wide && sink.nested == 0 {
                    sink.push_raw("body.xml.encoding", Origin::Charset, &enc);
                }
            }
            i = end;
        } else {
            let end = find_tag_end(b, i + 1);
            let tag = &text[i + 1..end.min(b.len())];
            i = (end + 1).min(b.len());
            if let Some(close) = tag.strip_prefix('/') {
                let name = close.trim();
                if let Some(pos) = stack.iter().rposition(|n| n == name) {
                    stack.truncate(pos);
                }
            } else {
                let self_closing = tag.ends_with('/');
                let tag = tag.trim_end_matches('/');
                let name_end = tag.find(|c: char| c.is_whitespace()).unwrap_or(tag.len());
                let name = &tag[..name_end];
                sink.push(&xml_location(root, &stack), Origin::XmlName, name, false);
                let mut eloc = xml_location(root, &stack);
                if stack.len() < XML_LOCATION_DEPTH {
                    eloc.push('/');
                    eloc.push_str(&location_key(name));
                }
                let attrs = xml_attributes(&tag[name_end..]);
                if attrs.iter().any(|(n, v)| v.is_empty() && !n.is_empty()) {
                    // Malformed attributes: judge the raw tag text so nothing hides in it.
                    sink.push(
                        &eloc,
                        Origin::XmlText,
                        &decode::html_entities(&tag[name_end..]),
                        false,
                    );
                }
                for (an, av) in attrs {
                    let aloc = format!("{eloc}@{}", location_key(&an));
                    sink.push(&aloc, Origin::XmlText, &decode::html_entities(&av), false);
                    sink.push(&aloc, Origin::XmlName, &an, false);
                }
                if !self_closing && stack.len() < sink.limits.max_depth {
                    stack.push(name.to_string());
                }
            }
        }
        text_start = i;
    }
    if text_start < b.len() {
        push_xml_text(&text[text_start..], root, &stack, sink);
    }
}

/// Most element names an XML location spells out.
const XML_LOCATION_DEPTH: usize = 16;

/// `body.xml/a/b` for the open elements `stack`. Names are spelt as other keys are
/// ([`location_key`]): at most 64 bytes, so a long name does not make every value under it
/// carry a copy, and no control characters, which would reach the logs.
fn xml_location(root: &str, stack: &[String]) -> String {
    let mut s = String::from(root);
    for e in stack.iter().take(XML_LOCATION_DEPTH) {
        s.push('/');
        s.push_str(&location_key(e));
    }
    s
}

/// Text between two tags, entities decoded; whitespace-only runs are layout.
fn push_xml_text(chunk: &str, root: &str, stack: &[String], sink: &mut Sink<'_, '_>) {
    if !chunk.trim().is_empty() {
        sink.push(
            &xml_location(root, stack),
            Origin::XmlText,
            &decode::html_entities(chunk),
            false,
        );
    }
}

fn find_tag_end(b: &[u8], from: usize) -> usize {
    let mut quote: Option<u8> = None;
    let mut j = from;
    while j < b.len() {
        match (quote, b[j]) {
            (None, b'"' | b'\'') => quote = Some(b[j]),
            (Some(q), c) if c == q => quote = None,
            (None, b'>') => return j,
            _ => {}
        }
        j += 1;
    }
    b.len()
}

fn xml_attributes(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && out.len() < 64 {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let ns = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        let name = s[ns..i].to_string();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let value = if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                let vs = i + 1;
                i = vs;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                let v = s[vs..i].to_string();
                i += 1;
                v
            } else {
                let vs = i;
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                s[vs..i].to_string()
            };
            out.push((name, value));
        } else if !name.is_empty() {
            out.push((name, String::new()));
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::Settings;

    /// What `extract` handed to its callback, copied out.
    struct Seen {
        location: String,
        variants: Vec<String>,
    }

    fn body_values(content_type: &str, body: &str) -> Vec<Seen> {
        let headers: Vec<(&str, &[u8])> = vec![("content-type", content_type.as_bytes())];
        let req = Request {
            method: "POST",
            path: "/",
            query: None,
            headers: &headers,
            body: body.as_bytes(),
        };
        let mut out = Vec::new();
        extract(&req, Settings::default().limits(), &mut |v| {
            out.push(Seen {
                location: v.location.to_string(),
                variants: v.variants.iter().map(str::to_string).collect(),
            });
            false
        });
        out
    }

    fn xml_values(body: &str) -> Vec<Seen> {
        body_values("application/xml", body)
    }

    #[test]
    fn issue_5_xml_names_in_locations_are_bounded_and_printable() {
        // Found by the body_xml and engine fuzz targets: element names went into locations
        // as written. A control character reached the location (and the logs), and a
        // long name was copied into the location of every value under it: 16 nested
        // 4 KiB names over 4096 values made 256 MiB of locations from a 70 KiB body.
        let values = xml_values("<a\u{1}b><c\u{9d}>text</c\u{9d}></a\u{1}b>");
        assert!(values.iter().any(|v| v.location == "body.xml/a?b/c?"));
        assert!(values
            .iter()
            .all(|v| !v.location.chars().any(char::is_control)));
        let name = "n".repeat(4096);
        let body = format!("{}{}", format!("<{name}>").repeat(16), "<b/>".repeat(4096));
        let values = xml_values(&body);
        assert!(values.len() >= 4000);
        let total: usize = values.iter().map(|v| v.location.len()).sum();
        assert!(total < values.len() * 2048, "{total} bytes of locations");
        // Closing tags still match their (full) names.
        let values = xml_values(&format!("<{name}><x/></{name}><y/>"));
        assert!(values
            .iter()
            .any(|v| v.location == "body.xml" && v.variants[0] == "y"));
    }

    #[test]
    fn issue_5_documents_inside_values_stay_within_max_values() {
        // Each XML declaration inside a value opens a document that is walked: thousands of
        // them in one value must still hand over at most `max_values` values.
        let doc = "<?xml version=\"1.0\"?><r a=\"b\">t</r>";
        // Members are walked in key order: `a` before the flood in `v`.
        let body = serde_json::json!({ "a": doc, "v": doc.repeat(8192) }).to_string();
        let limits = Settings::default().limits();
        let values = body_values("application/json", &body);
        assert!(values.len() <= limits.max_values, "{}", values.len());
        // The document in `a` was walked: its attribute is a value of its own.
        assert!(values
            .iter()
            .any(|v| v.location == "body.$.a/r@a" && v.variants[0] == "b"));
        // The flood in `v` was walked until the limit, not skipped.
        assert!(values.iter().any(|v| v.location == "body.$.v/r@a"));
    }

    #[test]
    fn issue_5_json_keys_in_locations_are_printable() {
        // Found by the body_multipart fuzz target: a JSON key is quoted with JSON escapes,
        // which cover C0 controls but not DEL and C1 (U+0080..U+009F).
        let body = r#"{"a\u0089\u007fb\u0001": 1, "c d": "x"}"#;
        let values = body_values("application/json", body);
        let locations: Vec<&str> = values.iter().map(|v| v.location.as_str()).collect();
        assert!(
            locations.contains(&r#"body.$["a\u0089\u007fb\u0001"]"#),
            "{locations:?}"
        );
        assert!(locations.contains(&r#"body.$["c d"]"#), "{locations:?}");
    }

    #[test]
    fn issue_5_xml_document_in_a_value_is_walked_under_its_location() {
        let body = r#"{"note":"<?xml version=\"1.0\"?><r><a p=\"&lt;b&gt;\">t</a></r>"}"#;
        let values = body_values("application/json", body);
        let seen = |loc: &str, v: &str| {
            values
                .iter()
                .any(|s| s.location == loc && s.variants[0] == v)
        };
        assert!(seen("body.$.note/r/a@p", "<b>"));
        assert!(seen("body.$.note/r/a", "t"));
        // Escaped in the text of an XML body, two levels down; no `encoding` of its own.
        let body =
            "<o><n>&lt;?xml version=\"1.0\" encoding=\"UTF-7\"?&gt;&lt;r a=\"x\"/&gt;</n></o>";
        let values = xml_values(body);
        assert!(values.iter().any(|s| s.location == "body.xml/o/n/r@a"));
        assert!(!values.iter().any(|s| s.location == "body.xml.encoding"));
        // Not a document: no declaration.
        let values = body_values("application/json", r#"{"note":"<r a=\"x\"/>"}"#);
        assert!(!values.iter().any(|s| s.location.contains('@')));
    }
}
