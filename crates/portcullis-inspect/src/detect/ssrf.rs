//! Server-side request forgery: URLs and bare hosts are parsed (userinfo, brackets, port)
//! and the host classified by address, including decimal, octal, hex, short and
//! IPv6-mapped IPv4 spellings. URLs to public hosts pass.

use std::borrow::Cow;

use super::{Feat, Sink, Strongest};
use crate::extract::Origin;
use crate::settings::Class;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum HostKind {
    Public,
    Private,
    Loopback,
    Metadata,
}

/// Parses an IPv4 address the way `inet_aton` does: 1–4 parts, each decimal, octal
/// (leading 0) or hex (0x). Returns the address and whether the spelling is unusual.
pub(crate) fn parse_ipv4(h: &str) -> Option<(u32, bool)> {
    let mut part_buf = [""; 4];
    let mut n_parts = 0;
    for p in h.split('.') {
        if n_parts == 4 || p.is_empty() {
            return None;
        }
        part_buf[n_parts] = p;
        n_parts += 1;
    }
    let parts = &part_buf[..n_parts];
    let mut num_buf = [0u64; 4];
    let mut n_nums = 0;
    let mut odd = parts.len() != 4;
    let mut nums = |v: u64| {
        num_buf[n_nums] = v;
        n_nums += 1;
    };
    for p in parts {
        let (digits, radix) = if let Some(x) = p.strip_prefix("0x") {
            odd = true;
            (x, 16)
        } else if p.len() > 1 && p.starts_with('0') {
            odd = true;
            (&p[1..], 8)
        } else {
            (*p, 10)
        };
        if digits.is_empty() && radix == 16 {
            nums(0u64);
            continue;
        }
        let v = u64::from_str_radix(digits, radix).ok()?;
        nums(v);
    }
    let nums = &num_buf[..n_nums];
    let last = *nums.last()?;
    let head = &nums[..nums.len() - 1];
    if head.iter().any(|&v| v > 255) {
        return None;
    }
    let shift = 8 * (4 - nums.len() as u32);
    let max_last = if shift == 24 {
        u64::from(u32::MAX)
    } else {
        (1u64 << (32 - 8 * head.len() as u32)) - 1
    };
    if last > max_last {
        return None;
    }
    let mut addr: u64 = 0;
    for (i, v) in head.iter().enumerate() {
        addr |= v << (24 - 8 * i as u32);
    }
    addr |= last;
    Some((addr as u32, odd))
}

fn classify_v4(a: u32) -> HostKind {
    let o = a.to_be_bytes();
    match o {
        [169, 254, 169, 254] | [100, 100, 100, 200] | [192, 0, 0, 192] | [169, 254, 170, 2] => {
            HostKind::Metadata
        }
        [127, ..] | [0, 0, 0, 0] => HostKind::Loopback,
        [10, ..] | [192, 168, ..] | [169, 254, ..] => HostKind::Private,
        [172, b, ..] if (16..32).contains(&b) => HostKind::Private,
        [100, b, ..] if (64..128).contains(&b) => HostKind::Private,
        [198, 18 | 19, ..] => HostKind::Private,
        _ => HostKind::Public,
    }
}

pub(crate) fn parse_ipv6(h: &str) -> Option<[u16; 8]> {
    let (head, tail) = match h.split_once("::") {
        Some((a, b)) => (a, Some(b)),
        None => (h, None),
    };
    let mut groups: Vec<u16> = Vec::new();
    let parse_part = |s: &str, out: &mut Vec<u16>| -> Option<()> {
        if s.is_empty() {
            return Some(());
        }
        for g in s.split(':') {
            if g.contains('.') {
                let (v4, _) = parse_ipv4(g)?;
                out.push((v4 >> 16) as u16);
                out.push((v4 & 0xFFFF) as u16);
            } else {
                out.push(u16::from_str_radix(g, 16).ok()?);
            }
        }
        Some(())
    };
    parse_part(head, &mut groups)?;
    let mut tail_groups = Vec::new();
    if let Some(t) = tail {
        parse_part(t, &mut tail_groups)?;
    }
    let total = groups.len() + tail_groups.len();
    if total > 8 || (tail.is_none() && total != 8) {
        return None;
    }
    let mut out = [0u16; 8];
    for (i, g) in groups.iter().enumerate() {
        out[i] = *g;
    }
    for (i, g) in tail_groups.iter().enumerate() {
        out[8 - tail_groups.len() + i] = *g;
    }
    Some(out)
}

fn classify_v6(g: [u16; 8]) -> HostKind {
    if g == [0, 0, 0, 0, 0, 0, 0, 1] || g == [0; 8] {
        return HostKind::Loopback;
    }
    if g == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254] {
        return HostKind::Metadata;
    }
    // IPv4-mapped / compatible / NAT64.
    if (g[..5] == [0, 0, 0, 0, 0] && (g[5] == 0xffff || g[5] == 0))
        || (g[0] == 0x64 && g[1] == 0xff9b)
    {
        let v4 = (u32::from(g[6]) << 16) | u32::from(g[7]);
        return classify_v4(v4);
    }
    if g[0] & 0xffc0 == 0xfe80 {
        return HostKind::Private;
    }
    if g[0] & 0xfe00 == 0xfc00 {
        return HostKind::Private;
    }
    HostKind::Public
}

fn classify_name(h: &str) -> HostKind {
    let h = h.trim_end_matches('.');
    match h {
        "localhost"
        | "localhost.localdomain"
        | "ip6-localhost"
        | "ip6-loopback"
        | "ipv6-localhost"
        | "ipv6-loopback"
        | "localhost4"
        | "localhost6"
        | "localhost4.localdomain4"
        | "localhost6.localdomain6"
        | "0" => HostKind::Loopback,
        "metadata.google.internal"
        | "metadata"
        | "instance-data"
        | "metadata.azure.com"
        | "169.254.169.254.nip.io"
        | "metadata.packet.net"
        | "metadata.oraclecloud.com" => HostKind::Metadata,
        _ => {
            // Public DNS names that resolve to 127.0.0.1 by design.
            let loopback_dns = [
                "localtest.me",
                "lvh.me",
                "vcap.me",
                "lacolhost.com",
                "127-0-0-1.org.uk",
                "fuf.me",
                "readme.localtest.me",
                "yoogle.com",
                "spoofed.burpcollaborator.net",
            ];
            if h.ends_with(".localhost")
                || loopback_dns.iter().any(|d| {
                    h.strip_suffix(d)
                        .is_some_and(|r| r.is_empty() || r.ends_with('.'))
                })
            {
                HostKind::Loopback
            } else if h.ends_with(".internal")
                || h == "host.docker.internal"
                || h.starts_with("kubernetes.default")
                || h.ends_with(".svc.cluster.local")
                || h.ends_with(".cluster.local")
            {
                HostKind::Private
            } else if let Some(rest) = h
                .strip_suffix(".nip.io")
                .or_else(|| h.strip_suffix(".xip.io"))
                .or_else(|| h.strip_suffix(".sslip.io"))
            {
                // 127.0.0.1.nip.io resolves to 127.0.0.1.
                let ip: String = rest
                    .rsplit(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
                    .next()
                    .unwrap_or("")
                    .replace('-', ".");
                parse_ipv4(ip.trim_matches('.')).map_or(HostKind::Public, |(a, _)| classify_v4(a))
            } else {
                HostKind::Public
            }
        }
    }
}

/// Classifies a host string; the bool says whether the spelling was obfuscated.
fn classify_host(host: &str) -> (HostKind, bool) {
    let h = host.trim();
    let h = if h.bytes().any(|c| c.is_ascii_uppercase()) {
        Cow::Owned(h.to_ascii_lowercase())
    } else {
        Cow::Borrowed(h)
    };
    let h = h.trim_end_matches('.');
    if h.is_empty() {
        return (HostKind::Public, false);
    }
    if let Some(inner) = h.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        let inner = inner.split('%').next().unwrap_or(inner);
        return parse_ipv6(inner).map_or((HostKind::Public, false), |g| {
            (classify_v6(g), g[5] == 0xffff)
        });
    }
    if h.contains(':') {
        if let Some(g) = parse_ipv6(h) {
            return (classify_v6(g), false);
        }
    }
    if h.bytes()
        .all(|c| c.is_ascii_hexdigit() || c == b'.' || c == b'x')
        && h.bytes().next().is_some_and(|c| c.is_ascii_digit())
    {
        if let Some((a, odd)) = parse_ipv4(h) {
            return (classify_v4(a), odd);
        }
    }
    (classify_name(h), false)
}

/// Splits `[userinfo@]host[:port]` off the start of `s`; returns the host and whether
/// something follows it (port or path) that makes it clearly an address.
pub(crate) fn authority(s: &str) -> (&str, bool) {
    let end = s
        .find(|c: char| {
            matches!(
                c,
                '/' | '?'
                    | '#'
                    | '\\'
                    | ' '
                    | '"'
                    | '\''
                    | '<'
                    | '>'
                    | '\n'
                    | '\r'
                    | '\t'
                    | ','
                    | ')'
                    | ';'
            )
        })
        .unwrap_or(s.len());
    let auth = &s[..end];
    let auth = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
    let followed = end < s.len() && matches!(s.as_bytes()[end], b'/' | b'?' | b'#' | b'\\');
    if auth.starts_with('[') {
        let close = auth.find(']').map_or(auth.len(), |p| p + 1);
        return (&auth[..close], followed || close < auth.len());
    }
    // host:port (but IPv6 without brackets has several colons).
    if auth.matches(':').count() == 1 {
        let (h, port) = auth.split_once(':').unwrap_or((auth, ""));
        return (
            h,
            followed || port.bytes().all(|c| c.is_ascii_digit()) && !port.is_empty(),
        );
    }
    (auth, followed)
}

fn kind_score(kind: HostKind, odd: bool) -> u32 {
    let base = match kind {
        HostKind::Metadata => 95,
        HostKind::Loopback => 80,
        HostKind::Private => 75,
        HostKind::Public => 0,
    };
    if base > 0 && odd {
        (base + 10).min(97)
    } else if odd && kind == HostKind::Public {
        40
    } else {
        base
    }
}

/// Judges one value; pushes at most one finding.
pub(crate) fn detect(text: &str, lower: &str, sink: &mut Sink) {
    if text.len() < 3 {
        return;
    }
    // The parameters of a Referer's query are judged as parameters (`Origin::ParamValue`).
    if let Some(h) = sink.header.filter(|_| sink.origin != Origin::ParamValue) {
        // Addresses in these headers describe the client, not a fetch target. A
        // User-Agent that is a plain product list (`+http://10.0.0.5/bot` in a comment
        // included) is judged only for tool names; one that is not is judged as a value.
        if matches!(
            h,
            "referer"
                | "origin"
                | "x-forwarded-for"
                | "x-real-ip"
                | "x-client-ip"
                | "forwarded"
                | "via"
                | "x-forwarded-host"
                | "x-original-host"
                | "true-client-ip"
                | "cf-connecting-ip"
                | "x-forwarded-server"
        ) {
            return;
        }
    }
    let mut best = Strongest::NONE;
    // Dangerous schemes apart: they count where a plain internal address does not.
    let mut schemes = Strongest::NONE;
    // Schemes, `://` and `unix:` all need a colon.
    let colon = sink.feat.any(Feat::COLON);
    let mut from = if colon { 0 } else { lower.len() };
    let mut guard = 0;
    while let Some(p) = lower[from..].find(':') {
        guard += 1;
        if guard > 64 {
            break;
        }
        let colon = from + p;
        from = colon + 1;
        let scheme_start = lower[..colon]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.'))
            .map_or(0, |x| {
                x + lower[x..].chars().next().map_or(1, char::len_utf8)
            });
        let scheme = lower.get(scheme_start..colon).unwrap_or("");
        if scheme.is_empty() || !scheme.as_bytes()[0].is_ascii_alphabetic() {
            continue;
        }
        let rest = &lower[colon + 1..];
        let slashes = rest.starts_with("//") || rest.starts_with("\\\\") || rest.starts_with("/\\");
        match scheme {
            "gopher" | "dict" | "tftp" | "ldap" | "ldaps" | "rmi" | "jar" | "netdoc" | "sftp"
            | "telnet" | "ssh"
                if slashes || scheme == "jar" || scheme == "netdoc" =>
            {
                schemes.consider((
                    if matches!(scheme, "gopher" | "dict") {
                        88
                    } else {
                        70
                    },
                    "ssrf.dangerous-scheme",
                ));
            }
            "file" if slashes || rest.starts_with('/') => {
                schemes.consider((80, "ssrf.file-scheme"))
            }
            _ => {}
        }
        if matches!(
            scheme,
            "http"
                | "https"
                | "ftp"
                | "gopher"
                | "dict"
                | "ws"
                | "wss"
                | "ldap"
                | "tftp"
                | "ftps"
                | "sftp"
                | "smb"
                | "redis"
                | "mysql"
                | "postgres"
                | "mongodb"
                | "memcache"
                | "zookeeper"
                | "jar"
                | "ssh"
                | "telnet"
        ) {
            let after = if slashes { &rest[2..] } else { rest };
            let (host, _) = authority(after);
            let (kind, odd) = classify_host(host);
            let s = kind_score(kind, odd);
            if s > 0 {
                best.consider((
                    s,
                    if kind == HostKind::Metadata {
                        "ssrf.cloud-metadata"
                    } else {
                        "ssrf.internal-host"
                    },
                ));
            }
            // Userinfo tricks: http://public@127.0.0.1 handled by authority; also
            // "http://127.0.0.1#@public" parses host before '#'.
        }
    }
    // Remote file inclusion: a URL to a raw IP address serving a server-side script.
    if let Some(p) = (colon && lower.contains("://"))
        .then(|| lower.find("://"))
        .flatten()
    {
        let after = &lower[p + 3..];
        let (host, _) = authority(after);
        let path = after.get(host.len()..).unwrap_or("");
        let path = path.split(['?', '#']).next().unwrap_or("");
        let script = [
            ".php", ".phtml", ".asp", ".aspx", ".jsp", ".cgi", ".pl", ".py", ".sh", ".txt", ".inc",
        ]
        .iter()
        .any(|e| path.ends_with(e));
        let ip_host = host.starts_with('[')
            || parse_ipv4(host.trim_end_matches('.')).is_some()
            || host.matches(':').count() >= 2;
        if script && ip_host {
            sink.hit(Class::CodeInjection, "rfi.remote-script", 70, text);
        }
    }
    // mod_proxy unix sockets: `unix:/path|http://backend/`.
    if colon && lower.contains("unix:") && lower.contains("|http") {
        best.consider((80, "ssrf.unix-socket"));
    }
    // Scheme-less host at the start of the value: `localhost/`, `127.0.0.1:8080`.
    let t = lower.trim();
    if !(colon && t.contains("://")) {
        // `user@host` without a scheme is an account or e-mail address.
        let starts_host = t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '[')
            && !t.split('/').next().unwrap_or("").contains('@');
        if starts_host {
            let (host, followed) = authority(t);
            // A bare number is a quantity, not an address.
            let has_dot_or_colon = host.contains('.')
                || host.starts_with('[')
                || host.starts_with("localhost")
                || host.starts_with("ip6-")
                || host.starts_with("ipv6-");
            let followed = followed && has_dot_or_colon;
            let host = if has_dot_or_colon { host } else { "" };
            if host.len() == t.len() || followed {
                let (kind, odd) = classify_host(host);
                // Without a scheme, only plain dotted quads and names count: `2.3` is a version.
                let s = if odd || kind == HostKind::Public {
                    0
                } else {
                    kind_score(kind, odd)
                };
                if s > 0 {
                    let whole = host.len() == t.len();
                    let looks_ip = host.bytes().all(|c| c.is_ascii_digit() || c == b'.');
                    let score = if kind == HostKind::Metadata {
                        s
                    } else if whole && looks_ip && !odd {
                        40
                    } else if whole {
                        if odd {
                            60
                        } else {
                            50
                        }
                    } else {
                        s.saturating_sub(10).max(62)
                    };
                    best.consider((
                        score,
                        if kind == HostKind::Metadata {
                            "ssrf.cloud-metadata"
                        } else {
                            "ssrf.internal-host"
                        },
                    ));
                }
            }
        }
    }
    // A Referer's parameter naming a private or loopback address is how a page on an
    // intranet host or a local development server links to itself (`?next=http://
    // 192.168.1.20/…`); a metadata host or a dangerous scheme is not a navigation target.
    if sink.header == Some("referer") && best.1 == "ssrf.internal-host" {
        schemes.report(Class::Ssrf, text, sink);
        return;
    }
    best.consider((schemes.0, schemes.1));
    best.report(Class::Ssrf, text, sink);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::detect::score_of;
    use crate::extract::Origin;

    fn s(t: &str) -> u32 {
        score_of(t, Origin::ParamValue, Class::Ssrf)
    }

    #[test]
    fn ip_forms() {
        assert_eq!(parse_ipv4("2130706433").map(|x| x.0), Some(0x7f000001));
        assert_eq!(parse_ipv4("0177.0.0.1").map(|x| x.0), Some(0x7f000001));
        assert_eq!(parse_ipv4("0x7f.1").map(|x| x.0), Some(0x7f000001));
        assert_eq!(parse_ipv4("127.1").map(|x| x.0), Some(0x7f000001));
        assert_eq!(classify_host("[::ffff:127.0.0.1]").0, HostKind::Loopback);
        assert_eq!(classify_host("[::ffff:7f00:1]").0, HostKind::Loopback);
        assert_eq!(classify_host("[fd00:ec2::254]").0, HostKind::Metadata);
    }

    #[test]
    fn attacks() {
        for a in [
            "http://169.254.169.254/latest/meta-data/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://2130706433/admin",
            "http://0x7f000001/",
            "http://0177.0.0.1:8080/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "gopher://127.0.0.1:6379/_SET",
            "dict://localhost:11211/stat",
            "file:///etc/passwd",
            "http://evil.com@127.0.0.1/",
            "http://10.0.0.5:8500/v1/agent/self",
            "http:127.0.0.1",
            "localhost:6379/",
            "http://127.0.0.1.nip.io/",
            "https://internal.localhost/x",
        ] {
            assert!(s(a) >= 60, "{a}: {}", s(a));
        }
    }

    #[test]
    fn legit() {
        for l in [
            "https://www.example.com/a?b=c",
            "http://github.com/rust-lang/rust",
            "see https://8.8.8.8/ for dns",
            "version 10.0.0.1 release",
            "call me at 12:30",
            "https://cdn.jsdelivr.net/npm/x@1.2.3/dist/x.min.js",
            "mailto:someone@example.org",
            "127.0.0.1",
        ] {
            assert!(s(l) < 60, "{l}: {}", s(l));
        }
    }
}
