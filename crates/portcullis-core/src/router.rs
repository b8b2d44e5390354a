//! The route table: host, method and path template → route.
//!
//! Paths are judged on their percent-decoded segments, and a path that could mean two things
//! to two parsers is refused before any route is tried: dot segments (`.`/`..`, also encoded),
//! encoded `/` or `\`, NUL and other control bytes, and segments that are not UTF-8 once
//! decoded. A gateway that routes `/public/%2e%2e/admin` as `/public/...` while the upstream
//! resolves it to `/admin` has no access control at all.

use std::borrow::Cow;
use std::cmp::Ordering;

use http::Method;
use percent_encoding::percent_decode_str;
use portcullis_config::{HostPattern, PathPattern, Route, Segment};

use crate::Rejection;

/// Path parameters bound by a template match, in template order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathParams(Vec<(String, String)>);

impl PathParams {
    /// The decoded value of a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// All parameters as `(name, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Whether no parameter is bound.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The outcome of routing one request.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteMatch {
    /// A route matched: its index in the config, and the bound parameters.
    Matched {
        /// Index into the config's routes.
        route: usize,
        /// Bound path parameters.
        params: PathParams,
    },
    /// Some route matches the host and path, but none the method.
    MethodNotAllowed {
        /// Methods that would match, for the `Allow` header.
        allow: Vec<Method>,
    },
    /// Nothing matches.
    NotFound,
    /// The path itself is refused.
    Invalid(Rejection),
}

#[derive(Debug)]
struct Entry {
    index: usize,
    host: Option<HostPattern>,
    methods: Vec<Method>,
    path: PathPattern,
    rank: Rank,
}

/// How specific a route is; the greatest matching rank wins.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    /// 0 any host, 1 wildcard, 2 exact.
    host_kind: u8,
    /// Longer wildcard suffixes are more specific.
    host_len: usize,
    /// 1 exact template, 0 prefix.
    path_kind: u8,
    /// For templates: 1 per literal segment, 0 per parameter, compared left to right.
    literals: Vec<u8>,
    /// For prefixes: the prefix length.
    prefix_len: usize,
    /// A route listing methods is more specific than one taking all.
    methods: u8,
}

/// The compiled route table.
#[derive(Debug, Default)]
pub struct Router {
    entries: Vec<Entry>,
}

impl Router {
    /// Builds the table from compiled routes.
    pub fn new(routes: &[Route]) -> Self {
        let entries = routes
            .iter()
            .enumerate()
            .map(|(index, route)| Entry {
                index,
                host: route.host.clone(),
                methods: route.methods.clone(),
                path: route.path.clone(),
                rank: rank(route),
            })
            .collect();
        Self { entries }
    }

    /// Routes a request. `host` is the request's host without port; `path` is the raw,
    /// still percent-encoded path without query.
    pub fn route(&self, host: Option<&str>, method: &Method, path: &str) -> RouteMatch {
        let segments = match decode_path(path) {
            Ok(segments) => segments,
            Err(rejection) => return RouteMatch::Invalid(rejection),
        };
        let host = host.map(|h| h.trim_end_matches('.'));
        let mut best: Option<(&Entry, PathParams)> = None;
        let mut allow: Vec<Method> = Vec::new();
        for entry in &self.entries {
            if !host_matches(entry.host.as_ref(), host) {
                continue;
            }
            let Some(params) = path_matches(&entry.path, path, &segments) else {
                continue;
            };
            if !method_matches(&entry.methods, method) {
                for m in &entry.methods {
                    if !allow.contains(m) {
                        allow.push(m.clone());
                    }
                }
                continue;
            }
            let better = match &best {
                None => true,
                Some((current, _)) => entry.rank.cmp(&current.rank) == Ordering::Greater,
            };
            if better {
                best = Some((entry, params));
            }
        }
        match best {
            Some((entry, params)) => RouteMatch::Matched {
                route: entry.index,
                params,
            },
            None if !allow.is_empty() => {
                if allow.contains(&Method::GET) && !allow.contains(&Method::HEAD) {
                    allow.push(Method::HEAD);
                }
                RouteMatch::MethodNotAllowed { allow }
            }
            None => RouteMatch::NotFound,
        }
    }
}

fn rank(route: &Route) -> Rank {
    let (host_kind, host_len) = match &route.host {
        None => (0, 0),
        Some(HostPattern::Suffix(suffix)) => (1, suffix.len()),
        Some(HostPattern::Exact(name)) => (2, name.len()),
    };
    let (path_kind, literals, prefix_len) = match &route.path {
        PathPattern::Exact(segments) => (
            1,
            segments
                .iter()
                .map(|s| u8::from(matches!(s, Segment::Literal(_))))
                .collect(),
            0,
        ),
        PathPattern::Prefix(prefix) => (0, Vec::new(), prefix.len()),
    };
    Rank {
        host_kind,
        host_len,
        path_kind,
        literals,
        prefix_len,
        methods: u8::from(!route.methods.is_empty()),
    }
}

fn host_matches(pattern: Option<&HostPattern>, host: Option<&str>) -> bool {
    match (pattern, host) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(HostPattern::Exact(name)), Some(host)) => host.eq_ignore_ascii_case(name),
        (Some(HostPattern::Suffix(suffix)), Some(host)) => {
            host.len() > suffix.len()
                && host
                    .get(host.len() - suffix.len()..)
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
        }
    }
}

fn method_matches(methods: &[Method], method: &Method) -> bool {
    methods.is_empty()
        || methods.contains(method)
        || (method == Method::HEAD && methods.contains(&Method::GET))
}

fn path_matches(pattern: &PathPattern, raw: &str, segments: &[Cow<'_, str>]) -> Option<PathParams> {
    match pattern {
        PathPattern::Exact(template) => {
            if template.len() != segments.len() {
                return None;
            }
            let mut params = Vec::new();
            for (want, got) in template.iter().zip(segments) {
                match want {
                    Segment::Literal(literal) if literal == got.as_ref() => {}
                    Segment::Literal(_) => return None,
                    Segment::Param(_) if got.is_empty() => return None,
                    Segment::Param(name) => params.push((name.clone(), got.clone().into_owned())),
                }
            }
            Some(PathParams(params))
        }
        PathPattern::Prefix(prefix) => {
            // The prefix is compared with the raw path: `decode_path` has already refused every
            // encoding that could make the raw and decoded forms disagree about structure.
            let matches = raw.starts_with(prefix.as_str())
                || (prefix.ends_with('/')
                    && raw.len() + 1 == prefix.len()
                    && prefix.starts_with(raw));
            matches.then(PathParams::default)
        }
    }
}

/// Splits and percent-decodes a path, refusing ambiguous forms.
fn decode_path(path: &str) -> Result<Vec<Cow<'_, str>>, Rejection> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(Rejection::bad_request(
            "bad_path",
            "the request path must start with '/'",
        ));
    };
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    // RFC 3986: anything outside visible ASCII must arrive percent-encoded. Raw bytes past
    // 0x7E are read differently by different servers (Latin-1, UTF-8, rejected), which is
    // exactly the kind of disagreement that lets a path slip past a rule.
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Rejection::bad_request(
            "bad_path",
            "the request path has characters that must be percent-encoded",
        ));
    }
    let mut segments = Vec::with_capacity(8);
    for raw in rest.split('/') {
        let decoded: Cow<'_, str> = if raw.contains('%') {
            let bytes: Cow<'_, [u8]> = percent_decode_str(raw).into();
            match String::from_utf8(bytes.into_owned()) {
                Ok(text) => Cow::Owned(text),
                Err(_) => {
                    return Err(Rejection::bad_request(
                        "bad_path",
                        "the request path is not valid UTF-8 once percent-decoded",
                    ))
                }
            }
        } else {
            Cow::Borrowed(raw)
        };
        if decoded == "." || decoded == ".." {
            return Err(Rejection::bad_request(
                "bad_path",
                "the request path has a '.' or '..' segment",
            ));
        }
        if decoded
            .bytes()
            .any(|b| b == b'/' || b == b'\\' || b < 0x20 || b == 0x7f)
        {
            return Err(Rejection::bad_request(
                "bad_path",
                "the request path has an encoded '/', a '\\' or a control character",
            ));
        }
        segments.push(decoded);
    }
    Ok(segments)
}

#[cfg(test)]
mod tests;
