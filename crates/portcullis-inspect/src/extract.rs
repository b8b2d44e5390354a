//! Extraction: every inspectable value of a request, with its location and decodings.

use crate::decode;
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

/// One value to judge.
#[derive(Debug, Clone)]
pub(crate) struct Value {
    pub location: String,
    pub origin: Origin,
    /// Lower-case header name when the value came from a header (or cookie).
    pub header: Option<String>,
    /// Evidence must not show this value (credentials).
    pub secret: bool,
    /// Decoded forms to judge; `variants[0]` is the value after transport decoding.
    pub variants: Vec<String>,
    /// Raw bytes when they matter (binary serialized objects).
    pub raw_bytes: Option<Vec<u8>>,
}

struct Sink<'l> {
    out: Vec<Value>,
    limits: &'l Limits,
    /// Values pushed while this is set are credentials (JWT claims): never shown.
    secret: bool,
}

impl Sink<'_> {
    fn full(&self) -> bool {
        self.out.len() >= self.limits.max_values
    }

    /// Pushes a protocol field judged as written (no decoding layers).
    fn push_raw(&mut self, location: String, origin: Origin, text: &str) {
        if self.full() || text.is_empty() {
            return;
        }
        self.out.push(Value {
            location,
            origin,
            header: None,
            secret: false,
            variants: vec![truncate_str(text, 1024).to_string()],
            raw_bytes: None,
        });
    }

    fn push(&mut self, location: String, origin: Origin, text: &str, plus: bool) {
        self.push_with(location, origin, text, plus, None, false);
    }

    fn push_with(
        &mut self,
        location: String,
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
        self.out.push(Value {
            location,
            origin,
            header: header.map(str::to_string),
            secret: secret || self.secret,
            variants: decode::variants(bounded, plus),
            raw_bytes: None,
        });
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

/// Extracts every inspectable value of a request, bounded by `limits`.
pub(crate) fn extract(req: &Request<'_>, limits: Limits) -> Vec<Value> {
    let mut sink = Sink {
        out: Vec::new(),
        limits: &limits,
        secret: false,
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
                    "header.content-type".to_string(),
                    Origin::MediaType,
                    &format!("{first}, {text}"),
                ),
                Some(_) => {}
            }
        }
        extract_header(name, &text, &mut sink);
    }
    if let Some(ct) = &content_type {
        sink.push_raw("header.content-type".to_string(), Origin::MediaType, ct);
    }
    if !req.body.is_empty() {
        extract_body(req.body, content_type.as_deref(), &mut sink);
    }
    sink.out
}

fn extract_path(path: &str, sink: &mut Sink<'_>) {
    let mut index = 0usize;
    for seg in path.split('/') {
        if seg.is_empty() {
            continue;
        }
        let decoded = decode::url_decode(seg, false);
        sink.push(
            format!("path[{index}]"),
            Origin::PathSegment,
            &decoded,
            false,
        );
        index += 1;
        if sink.full() {
            return;
        }
    }
    let full = decode::url_decode(path, false);
    if full.len() > 1 {
        sink.push("path".to_string(), Origin::PathFull, &full, false);
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

fn extract_urlencoded(s: &str, root: &str, sink: &mut Sink<'_>) {
    if has_entity_refs(s) {
        // Judge the whole string too: `v&tab;b&tab;script:` only means something joined.
        let whole = decode::url_decode(s, true);
        sink.push(root.to_string(), Origin::ParamValue, &whole, true);
    }
    for pair in s.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (name_raw, value_raw) = match pair.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (pair, None),
        };
        let name = decode::url_decode(name_raw, true);
        let loc = format!("{root}.{}", location_key(&name));
        sink.push(loc.clone(), Origin::ParamName, &name, true);
        if let Some(v) = value_raw {
            let value = decode::url_decode(v, true);
            if name.eq_ignore_ascii_case("_charset_") {
                sink.push_raw(loc.clone(), Origin::Charset, &value);
            }
            sink.push(loc, Origin::ParamValue, &value, true);
        }
        if sink.full() {
            return;
        }
    }
}

fn location_key(name: &str) -> String {
    let t = truncate_str(name, 64);
    t.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
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

fn extract_header(name: &str, value: &str, sink: &mut Sink<'_>) {
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
            let cloc = format!("cookie.{}", location_key(&n_dec));
            sink.push_with(
                cloc.clone(),
                Origin::CookieName,
                &n_dec,
                false,
                Some("cookie"),
                false,
            );
            let v_dec = decode::url_decode(v.trim().trim_matches('"'), false);
            sink.push_with(
                cloc,
                Origin::CookieValue,
                &v_dec,
                false,
                Some("cookie"),
                false,
            );
        }
        return;
    }
    let loc = format!("header.{name}");
    if name == "user-agent" && benign_user_agent(value) {
        // A product/version list with plain comments: nothing in it can be code, but the
        // product may be an attack tool.
        sink.push_with(loc, Origin::AgentProduct, value, false, Some(name), false);
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
        sink.push_with(loc, Origin::Filename, value, false, Some(name), secret);
        return;
    }
    let decoded = decode::url_decode(value, false);
    sink.push_with(
        loc.clone(),
        Origin::Header,
        &decoded,
        false,
        Some(name),
        secret,
    );
    if name == "referer" {
        if let Some((_, q)) = value.split_once('?') {
            push_referer_params(&loc, name, q, false, sink);
        }
    }
}

/// The query of a Referer is a second set of parameters a browser was tricked into sending.
/// `whole` is set when the URL itself is not judged: a parameter without `=` then is
/// the value.
fn push_referer_params(loc: &str, name: &str, q: &str, whole: bool, sink: &mut Sink<'_>) {
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
        sink.push_with(
            loc.to_string(),
            Origin::ParamValue,
            &v,
            true,
            Some(name),
            false,
        );
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
    // Outside comments every token is `product/version`.
    let mut top = String::with_capacity(b.len());
    let mut d = 0u32;
    for &c in b {
        match c {
            b'(' => d += 1,
            b')' => {
                d -= 1;
                top.push(' ');
            }
            _ if d == 0 => top.push(char::from(c)),
            _ => {}
        }
    }
    if !top.split_ascii_whitespace().all(|t| {
        t.split_once('/')
            .is_some_and(|(n, v)| !n.is_empty() && !v.is_empty() && !v.contains('/'))
    }) {
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
fn extract_credentials(name: &str, loc: &str, value: &str, sink: &mut Sink<'_>) -> bool {
    let Some((scheme, token)) = value.trim().split_once(' ') else {
        return false;
    };
    let token = token.trim();
    let token68 = !token.is_empty()
        && token.trim_end_matches('=').bytes().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        });
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
        sink.push_with(
            loc.to_string(),
            Origin::Header,
            &text,
            false,
            Some(name),
            true,
        );
        return true;
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() == 3 && parts[..2].iter().all(|p| p.len() >= 4) {
        // The JOSE header is what a back end acts on before the signature is checked
        // (`kid` looked up in a database or on disk, `jku`/`x5u` fetched): judge it. The
        // claims are the issuer's and are verified by the authentication phase, which
        // runs before inspection.
        let Some(bytes) = decode::base64_decode(parts[0]) else {
            return false;
        };
        let text = decode::bytes_to_text(&bytes);
        let was = std::mem::replace(&mut sink.secret, true);
        let ok = extract_json_text(&text, &format!("{loc}.jwt"), sink);
        sink.secret = was;
        return ok;
    }
    // An opaque token: only a plausible base64 payload could hide something.
    if decode::plausible_base64(token) {
        sink.push_with(
            loc.to_string(),
            Origin::Header,
            token,
            false,
            Some(name),
            true,
        );
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

fn extract_body(body: &[u8], content_type: Option<&str>, sink: &mut Sink<'_>) {
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
        extract_xml(&text, sink);
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
        extract_xml(&text, sink);
        return;
    }
    if looks_like_form(&text) {
        extract_urlencoded(&text, "body.form", sink);
        return;
    }
    if !sink.full() {
        let bounded = truncate_str(&text, sink.limits.max_value_len);
        sink.out.push(Value {
            location: "body".to_string(),
            origin: Origin::RawBody,
            header: None,
            secret: false,
            variants: decode::variants(bounded, false),
            raw_bytes: Some(body[..body.len().min(sink.limits.max_file_bytes.max(64))].to_vec()),
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

fn extract_json_text(text: &str, root: &str, sink: &mut Sink<'_>) -> bool {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => {
            walk_json(&v, root.to_string(), 0, sink);
            true
        }
        Err(_) => false,
    }
}

fn json_child(parent: &str, key: &str) -> String {
    let simple = !key.is_empty()
        && key.len() <= 64
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '$' | '@' | ':'));
    if simple {
        format!("{parent}.{key}")
    } else {
        let quoted = serde_json::to_string(truncate_str(key, 64)).unwrap_or_default();
        // JSON escapes only C0 controls; DEL and C1 (U+0080..U+009F) would reach the logs.
        let mut k = String::with_capacity(quoted.len());
        for c in quoted.chars() {
            if c.is_control() {
                k.push_str(&format!("\\u{:04x}", u32::from(c)));
            } else {
                k.push(c);
            }
        }
        format!("{parent}[{k}]")
    }
}

fn walk_json(v: &serde_json::Value, loc: String, depth: usize, sink: &mut Sink<'_>) {
    if sink.full() || depth > sink.limits.max_depth {
        return;
    }
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                let cloc = json_child(&loc, k);
                sink.push(cloc.clone(), Origin::JsonKey, k, false);
                if k == "query" {
                    if let serde_json::Value::String(q) = child {
                        if looks_like_graphql(q) {
                            extract_graphql(q, &cloc, sink);
                            continue;
                        }
                    }
                }
                walk_json(child, cloc, depth + 1, sink);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                walk_json(child, format!("{loc}[{i}]"), depth + 1, sink);
                if sink.full() {
                    return;
                }
            }
        }
        serde_json::Value::String(s) => {
            let t = s.trim_start();
            // JSON inside a JSON string: judge the inner document too.
            if depth < 8 && (t.starts_with('{') || t.starts_with('[')) && t.len() > 2 {
                if let Ok(inner) = serde_json::from_str::<serde_json::Value>(t) {
                    walk_json(&inner, loc.clone(), depth + 1, sink);
                }
            }
            sink.push(loc, Origin::JsonValue, s, false);
        }
        _ => {}
    }
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
fn extract_graphql(q: &str, loc: &str, sink: &mut Sink<'_>) {
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
                sink.push(loc.to_string(), Origin::GraphQl, &s, false);
                i = if block { j + 3 } else { j + 1 };
                continue;
            }
            _ => {}
        }
        i += 1;
    }
}

fn extract_multipart(text: &str, boundary: &str, sink: &mut Sink<'_>) {
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
            sink.push(loc.clone(), Origin::ParamName, nm, false);
        }
        if !part_type.is_empty() {
            sink.push_raw(loc.clone(), Origin::MediaType, &part_type);
        }
        match filename {
            Some(f) => {
                sink.push(loc.clone(), Origin::Filename, &f, false);
                let bound = truncate_str(content, sink.limits.max_file_bytes);
                if !bound.is_empty() && !sink.full() {
                    let value = Value {
                        location: loc,
                        origin: Origin::FileContent,
                        header: None,
                        secret: false,
                        variants: vec![bound.to_string()],
                        raw_bytes: None,
                    };
                    sink.out.push(value);
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
                    extract_xml(content, sink);
                    continue;
                }
                if field.eq_ignore_ascii_case("_charset_") {
                    sink.push_raw(loc.clone(), Origin::Charset, content.trim());
                }
                sink.push(loc, Origin::ParamValue, content, false);
            }
        }
    }
}

/// A tolerant XML scanner: text, attribute values, names, DOCTYPE. Not a validator.
fn extract_xml(text: &str, sink: &mut Sink<'_>) {
    let b = text.as_bytes();
    let mut i = 0;
    let mut stack: Vec<String> = Vec::new();
    let mut text_start = 0;
    while i < b.len() && !sink.full() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        push_xml_text(&text[text_start..i], &stack, sink);
        let rest = &text[i..];
        if rest.starts_with("<!--") {
            let end = rest.find("-->").map_or(b.len(), |p| i + p + 3);
            i = end;
        } else if rest.starts_with("<![CDATA[") {
            let end = rest.find("]]>").map_or(b.len(), |p| i + p);
            sink.push(
                xml_location(&stack),
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
            sink.push(
                "body.xml.doctype".to_string(),
                Origin::XmlDoctype,
                &text[i..end],
                false,
            );
            i = end;
        } else if rest.starts_with("<?") {
            let end = rest.find("?>").map_or(b.len(), |p| i + p + 2);
            let pi = &text[i..end];
            if !pi.starts_with("<?xml ") && !pi.starts_with("<?xml?") {
                sink.push(xml_location(&stack), Origin::XmlText, pi, false);
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
                if !wide {
                    sink.push_raw("body.xml.encoding".to_string(), Origin::Charset, &enc);
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
                sink.push(xml_location(&stack), Origin::XmlName, name, false);
                let mut eloc = xml_location(&stack);
                if stack.len() < XML_LOCATION_DEPTH {
                    eloc.push('/');
                    eloc.push_str(&location_key(name));
                }
                let attrs = xml_attributes(&tag[name_end..]);
                if attrs.iter().any(|(n, v)| v.is_empty() && !n.is_empty()) {
                    // Malformed attributes: judge the raw tag text so nothing hides in it.
                    sink.push(
                        eloc.clone(),
                        Origin::XmlText,
                        &decode::html_entities(&tag[name_end..]),
                        false,
                    );
                }
                for (an, av) in attrs {
                    let aloc = format!("{eloc}@{}", location_key(&an));
                    sink.push(
                        aloc.clone(),
                        Origin::XmlText,
                        &decode::html_entities(&av),
                        false,
                    );
                    sink.push(aloc, Origin::XmlName, &an, false);
                }
                if !self_closing && stack.len() < sink.limits.max_depth {
                    stack.push(name.to_string());
                }
            }
        }
        text_start = i;
    }
    if text_start < b.len() {
        push_xml_text(&text[text_start..], &stack, sink);
    }
}

/// Most element names an XML location spells out.
const XML_LOCATION_DEPTH: usize = 16;

/// `body.xml/a/b` for the open elements `stack`. Names are spelt as other keys are
/// ([`location_key`]): at most 64 bytes, so a long name does not make every value under it
/// carry a copy, and no control characters, which would reach the logs.
fn xml_location(stack: &[String]) -> String {
    let mut s = String::from("body.xml");
    for e in stack.iter().take(XML_LOCATION_DEPTH) {
        s.push('/');
        s.push_str(&location_key(e));
    }
    s
}

/// Text between two tags, entities decoded; whitespace-only runs are layout.
fn push_xml_text(chunk: &str, stack: &[String], sink: &mut Sink<'_>) {
    if !chunk.trim().is_empty() {
        sink.push(
            xml_location(stack),
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

    fn body_values(content_type: &str, body: &str) -> Vec<Value> {
        let headers: Vec<(&str, &[u8])> = vec![("content-type", content_type.as_bytes())];
        let req = Request {
            method: "POST",
            path: "/",
            query: None,
            headers: &headers,
            body: body.as_bytes(),
        };
        extract(&req, Settings::default().limits())
    }

    fn xml_values(body: &str) -> Vec<Value> {
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
}
