//! Header rules: hop-by-hop stripping, forwarding headers, client address, request ids.

use std::net::{IpAddr, SocketAddr};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

/// `X-Request-Id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `X-Forwarded-For`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Powered-By`.
pub static X_POWERED_BY: HeaderName = HeaderName::from_static("x-powered-by");
/// `X-Content-Type-Options`.
pub static X_CONTENT_TYPE_OPTIONS: HeaderName = HeaderName::from_static("x-content-type-options");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Removes hop-by-hop headers (RFC 9110 §7.6.1): the fixed list and every header the
/// `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names first, noting which of the fixed list are there: most messages
    // carry none or only `Connection`, and a scan is much cheaper than nine hash lookups (a
    // removal costs more still).
    let mut present = 0u16;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|hop| name == *hop) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    if let Some(connection) = headers.get(header::CONNECTION) {
        // `close` and `keep-alive` are the usual tokens and name no field worth a lookup
        // (`keep-alive` is in the fixed list anyway).
        let named: Vec<HeaderName> = connection
            .to_str()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|token| {
                !token.is_empty()
                    && !token.eq_ignore_ascii_case("close")
                    && !token.eq_ignore_ascii_case("keep-alive")
            })
            .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(*name);
        }
    }
}

/// Whether `name` is one of the fixed hop-by-hop fields.
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name)
}

/// The fixed hop-by-hop list.
static HOP_BY_HOP: [&HeaderName; 9] = [
    &header::CONNECTION,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &header::TE,
    &header::TRAILER,
    &header::TRANSFER_ENCODING,
    &header::UPGRADE,
    &header::PROXY_AUTHORIZATION,
    &header::PROXY_AUTHENTICATE,
];

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    proxies.iter().any(|net| net.contains(&ip))
}

/// Parses one `X-Forwarded-For` element or `Forwarded` `for=` value: an IP, optionally with a
/// port, brackets or quotes.
fn parse_node(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(canonical(addr.ip()));
    }
    let inner = text.strip_prefix('[')?.split(']').next()?;
    inner.parse::<IpAddr>().ok().map(canonical)
}

/// The client's address. Forwarding headers are believed only when the peer is a trusted
/// proxy; then the chain is walked from the right, skipping trusted hops, and the first
/// untrusted address is the client. A malformed element stops the walk at the last address
/// that could be established.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, proxies: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    if proxies.is_empty() || !trusted(peer, proxies) {
        return peer;
    }
    let mut hops: Vec<&str> = Vec::new();
    for value in headers.get_all(&X_FORWARDED_FOR) {
        let Ok(value) = value.to_str() else {
            return peer;
        };
        hops.extend(value.split(','));
    }
    if hops.is_empty() {
        for value in headers.get_all(header::FORWARDED) {
            let Ok(value) = value.to_str() else {
                return peer;
            };
            for element in value.split(',') {
                if let Some(node) = element.split(';').find_map(|pair| {
                    pair.trim()
                        .strip_prefix("for=")
                        .or_else(|| pair.trim().strip_prefix("For="))
                }) {
                    hops.push(node);
                }
            }
        }
    }
    let mut client = peer;
    for hop in hops.iter().rev() {
        match parse_node(hop) {
            Some(ip) => {
                client = ip;
                if !trusted(ip, proxies) {
                    return ip;
                }
            }
            None => return client,
        }
    }
    client
}

/// `X-Portcullis-Identity`: the authenticated identity, for the upstream.
pub static X_PORTCULLIS_IDENTITY: HeaderName = HeaderName::from_static("x-portcullis-identity");
/// `X-Portcullis-Key`: the id (not the secret) of the key used.
pub static X_PORTCULLIS_KEY: HeaderName = HeaderName::from_static("x-portcullis-key");
/// `X-Portcullis-Scopes`: the scopes of the credential, comma-separated.
pub static X_PORTCULLIS_SCOPES: HeaderName = HeaderName::from_static("x-portcullis-scopes");

/// Tells the upstream who is calling, and makes sure the client cannot: identity headers sent
/// by the client are always removed, and so is the credential itself (the upstream never
/// needs the key).
pub fn set_identity(headers: &mut HeaderMap, principal: Option<&portcullis_core::Principal>) {
    // Forged identity fields are rare: a scan of the names finds whether any is there.
    let identity = [
        &X_PORTCULLIS_IDENTITY,
        &X_PORTCULLIS_KEY,
        &X_PORTCULLIS_SCOPES,
    ];
    if headers.keys().any(|name| identity.contains(&name)) {
        for name in identity {
            headers.remove(name);
        }
    }
    let Some(principal) = principal else { return };
    headers.remove(&portcullis_core::pipeline::API_KEY_HEADER);
    let bearer = headers
        .get(header::AUTHORIZATION)
        .is_some_and(|v| portcullis_core::pipeline::bearer_token(v).is_some());
    if bearer {
        headers.remove(header::AUTHORIZATION);
    }
    if let Some(value) = principal.grants.identity_header() {
        headers.insert(X_PORTCULLIS_IDENTITY.clone(), value.clone());
    }
    if let Ok(value) = HeaderValue::from_str(&principal.key_id) {
        headers.insert(X_PORTCULLIS_KEY.clone(), value);
    }
    if let Some(value) = principal.grants.scopes_header() {
        headers.insert(X_PORTCULLIS_SCOPES.clone(), value.clone());
    }
}

/// The forwarding header values of one connection, computed once when it is accepted.
#[derive(Debug, Clone)]
pub struct Forwarding {
    /// The peer as an `X-Forwarded-For` element.
    pub for_value: HeaderValue,
    /// The peer as a `Forwarded` element (`for=…;proto=…`).
    pub forwarded_value: HeaderValue,
    /// `http` or `https`.
    pub proto: HeaderValue,
}

impl Forwarding {
    /// Computes the values for a peer.
    pub fn new(peer: IpAddr, tls: bool) -> Self {
        let peer = canonical(peer);
        let node = match peer {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("\"[{v6}]\""),
        };
        let proto = if tls { "https" } else { "http" };
        let forwarded = format!("for={node};proto={proto}");
        Self {
            for_value: HeaderValue::from_str(&peer.to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
            forwarded_value: HeaderValue::from_str(&forwarded)
                .unwrap_or_else(|_| HeaderValue::from_static("for=unknown")),
            proto: HeaderValue::from_static(if tls { "https" } else { "http" }),
        }
    }
}

/// Sets the forwarding headers sent upstream. From a trusted proxy the existing chain is
/// extended; from anyone else it is replaced, so an upstream never sees a client-forged hop.
pub fn set_forwarding(headers: &mut HeaderMap, forwarding: &Forwarding, peer_trusted: bool) {
    extend_or_replace(
        headers,
        &X_FORWARDED_FOR,
        &forwarding.for_value,
        peer_trusted,
    );
    extend_or_replace(
        headers,
        &header::FORWARDED,
        &forwarding.forwarded_value,
        peer_trusted,
    );
    if !(peer_trusted && headers.contains_key(&X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO.clone(), forwarding.proto.clone());
    }
}

fn extend_or_replace(
    headers: &mut HeaderMap,
    name: &HeaderName,
    element: &HeaderValue,
    trusted: bool,
) {
    if trusted && headers.get_all(name).iter().count() == 1 {
        if let Some(existing) = headers.get(name) {
            let mut joined = Vec::with_capacity(existing.len() + 2 + element.len());
            joined.extend_from_slice(existing.as_bytes());
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(element.as_bytes());
            if let Ok(value) = HeaderValue::from_bytes(&joined) {
                headers.insert(name.clone(), value);
                return;
            }
        }
    }
    headers.insert(name.clone(), element.clone());
}

/// Whether a peer is a trusted proxy.
pub fn is_trusted_peer(peer: IpAddr, proxies: &[IpNet]) -> bool {
    !proxies.is_empty() && trusted(canonical(peer), proxies)
}

/// A client-supplied request id, when it is safe to keep: 1 to 128 characters of letters,
/// digits and `-_.:`.
pub fn client_request_id(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(&X_REQUEST_ID)?.to_str().ok()?;
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| value.to_owned())
}

/// Bytes of the request head as a client sent it (request line and header fields), for the
/// `max_header_bytes` bound.
pub fn head_size(method: &http::Method, uri: &http::Uri, headers: &HeaderMap) -> usize {
    let line = method.as_str().len() + uri.path_and_query().map_or(1, |pq| pq.as_str().len()) + 11;
    headers.iter().fold(line, |total, (name, value)| {
        total + name.as_str().len() + value.len() + 4
    })
}

/// The request's host without port, from the URI (HTTP/2, absolute-form) or `Host`.
pub fn request_host<'a>(uri: &'a http::Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    if let Some(host) = uri.host() {
        return Some(host.trim_start_matches('[').trim_end_matches(']'));
    }
    let value = headers.get(header::HOST)?.to_str().ok()?;
    let host = if let Some(rest) = value.strip_prefix('[') {
        rest.split(']').next()?
    } else {
        value.rsplit_once(':').map_or(value, |(h, _)| h)
    };
    Some(host)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn client_ip_trusts_only_trusted_peers() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let forged = map(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            client_ip("192.0.2.9".parse().unwrap(), &forged, &proxies),
            "192.0.2.9".parse::<IpAddr>().unwrap()
        );
        let chain = map(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.1.1")]);
        assert_eq!(
            client_ip("10.0.0.1".parse().unwrap(), &chain, &proxies),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        let split = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.8"),
        ]);
        assert_eq!(
            client_ip("10.0.0.1".parse().unwrap(), &split, &proxies),
            "198.51.100.8".parse::<IpAddr>().unwrap()
        );
        let garbage = map(&[("x-forwarded-for", "nonsense, 10.2.2.2")]);
        assert_eq!(
            client_ip("10.0.0.1".parse().unwrap(), &garbage, &proxies),
            "10.2.2.2".parse::<IpAddr>().unwrap()
        );
        let forwarded = map(&[(
            "forwarded",
            "for=\"[2001:db8::1]:4711\";proto=https, for=10.9.9.9",
        )]);
        assert_eq!(
            client_ip("10.0.0.1".parse().unwrap(), &forwarded, &proxies),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip("::ffff:10.0.0.1".parse().unwrap(), &chain, &proxies),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn forwarding_is_replaced_for_untrusted_and_extended_for_trusted() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let untrusted: IpAddr = "192.0.2.9".parse().unwrap();
        let mut headers = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("forwarded", "for=1.2.3.4"),
            ("x-forwarded-proto", "http"),
        ]);
        let trusted = is_trusted_peer(untrusted, &proxies);
        set_forwarding(&mut headers, &Forwarding::new(untrusted, true), trusted);
        assert_eq!(headers["x-forwarded-for"], "192.0.2.9");
        assert_eq!(headers["forwarded"], "for=192.0.2.9;proto=https");
        assert_eq!(headers["x-forwarded-proto"], "https");

        let mut headers = map(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=1.2.3.4")]);
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        set_forwarding(
            &mut headers,
            &Forwarding::new(proxy, false),
            is_trusted_peer(proxy, &proxies),
        );
        assert_eq!(headers["x-forwarded-for"], "1.2.3.4, 10.0.0.1");
        assert_eq!(headers["forwarded"], "for=1.2.3.4, for=10.0.0.1;proto=http");

        let mut headers = map(&[]);
        set_forwarding(
            &mut headers,
            &Forwarding::new("2001:db8::1".parse().unwrap(), false),
            false,
        );
        assert_eq!(headers["forwarded"], "for=\"[2001:db8::1]\";proto=http");
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut headers = map(&[
            ("connection", "close, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("upgrade", "websocket"),
            ("te", "trailers"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert_eq!(headers["x-kept"], "yes");
    }

    #[test]
    fn request_ids() {
        assert_eq!(
            client_request_id(&map(&[("x-request-id", "abc-123")])),
            Some("abc-123".into())
        );
        assert_eq!(client_request_id(&map(&[("x-request-id", "a b")])), None);
        assert_eq!(
            client_request_id(&map(&[("x-request-id", &"a".repeat(129))])),
            None
        );
    }

    #[test]
    fn hosts() {
        let uri: http::Uri = "/x".parse().unwrap();
        assert_eq!(
            request_host(&uri, &map(&[("host", "api.example.com:8080")])),
            Some("api.example.com")
        );
        assert_eq!(
            request_host(&uri, &map(&[("host", "[::1]:8080")])),
            Some("::1")
        );
        let abs: http::Uri = "https://h2.example.com/x".parse().unwrap();
        assert_eq!(
            request_host(&abs, &HeaderMap::new()),
            Some("h2.example.com")
        );
    }
}
