//! Session fixation: a server framework's session cookie sent as a request parameter.
//!
//! Frameworks that still accept a session identifier from the URL or the body
//! (`?PHPSESSID=…`, `;jsessionid=…`, ColdFusion's `CFID`/`CFTOKEN`) let whoever writes the
//! link choose the victim's session: the attacker plants an identifier they know, the
//! victim logs in with it. A browser sends these names as cookies, never as parameters,
//! so a parameter with one of them is the attack's vector whatever its value. The Referer
//! says where the link was followed from: the same site (URL rewriting in a legacy
//! application: weak), another site or none (a planted link: strong).
//!
//! Generic names (`session_id`, `sessionId`, `sid`) are ordinary API fields and analytics
//! beacons send them from other sites all day: they only count, and only at `paranoid`,
//! as a query or form parameter followed from another site.

use crate::extract::{Origin, Value};
use crate::settings::Class;
use crate::Request;

use super::{Hit, WordSet};

/// Default session (or login) cookie names of server frameworks.
const FRAMEWORK_COOKIES: &[&str] = &[
    "phpsessid",
    "jsessionid",
    "jsessionidsso",
    "weblogicsession",
    "asp.net_sessionid",
    ".aspxauth",
    ".aspnetcore.session",
    "cfid",
    "cftoken",
    "laravel_session",
    "ci_session",
    "cakephp",
    "connect.sid",
    "express.sid",
    "express:sess",
    "sails.sid",
    "koa.sess",
    "koa:sess",
    "koa.sid",
    "rack.session",
    "_session_id",
    "play_session",
    "meteor_login_token",
    "next-auth.session-token",
    "authjs.session-token",
    "cgisessid",
    "keycloak_session",
    "keycloak_identity",
    "auth_session_id",
    "beaker.session.id",
    "ss-id",
    "ss-pid",
];

/// Name prefixes of framework session cookies that carry a suffix (`ASPSESSIONIDQASCTBQT`,
/// `JServSessionIdroot`, `wordpress_logged_in_<hash>`).
const FRAMEWORK_PREFIXES: &[&str] = &[
    "aspsessionid",
    "jservsession",
    "wordpress_logged_in_",
    "wordpress_sec_",
];

/// Session parameter names that APIs and analytics use for their own purposes.
const GENERIC: &[&str] = &[
    "sessionid",
    "session_id",
    "session-id",
    "sessid",
    "session",
    "sessiontoken",
    "session_token",
    "session-token",
];

/// How a name reads as a session identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Framework,
    Generic,
}

fn kind_of(name: &str) -> Option<Kind> {
    if name.len() > 64 || name.len() < 3 {
        return None;
    }
    // Lower-cased on the stack: JSON bodies bring hundreds of keys per request.
    let mut buf = [0u8; 64];
    let buf = &mut buf[..name.len()];
    buf.copy_from_slice(name.as_bytes());
    buf.make_ascii_lowercase();
    let Ok(lower) = std::str::from_utf8(buf) else {
        return None;
    };
    // Cookie prefixes that only bind a cookie to a secure origin.
    let n = lower
        .strip_prefix("__host-")
        .or_else(|| lower.strip_prefix("__secure-"))
        .unwrap_or(lower);
    static FRAMEWORK_SET: WordSet = WordSet::new(FRAMEWORK_COOKIES);
    static GENERIC_SET: WordSet = WordSet::new(GENERIC);
    if FRAMEWORK_SET.contains(n) || FRAMEWORK_PREFIXES.iter().any(|p| n.starts_with(p)) {
        return Some(Kind::Framework);
    }
    // Rails' default `_<app>_session`; Drupal's `SESS`/`SSESS` + 32 hex digits.
    let rails = n.len() > 10
        && n.starts_with('_')
        && n.ends_with("_session")
        && n[1..n.len() - 8]
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
    let drupal = n
        .strip_prefix("ssess")
        .or_else(|| n.strip_prefix("sess"))
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|c| c.is_ascii_hexdigit()));
    if rails || drupal {
        return Some(Kind::Framework);
    }
    GENERIC_SET.contains(n).then_some(Kind::Generic)
}

/// Whether `name` reads as a session identifier at all, whatever the request around it.
pub(crate) fn is_session_name(name: &str) -> bool {
    kind_of(name).is_some()
}

/// Where the request says it was followed from, relative to its own host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Referer {
    Absent,
    SameSite,
    CrossSite,
    /// A Referer whose site cannot be compared (no Host, or not a URL).
    Unknown,
}

/// The registrable part of a host, approximately: the last two labels, three under a
/// two-letter country code with a short second level (`example.co.uk`).
fn site_of(host: &str) -> String {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    let host = match host.strip_prefix('[') {
        Some(v6) => return v6.split(']').next().unwrap_or("").to_string(),
        None => host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h),
    };
    if host.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
        return host.to_string();
    }
    let labels: Vec<&str> = host.split('.').collect();
    let n = labels.len();
    let keep = if n >= 3 && labels[n - 1].len() == 2 && labels[n - 2].len() <= 3 {
        3
    } else {
        2
    };
    labels[n.saturating_sub(keep)..].join(".")
}

fn referer(req: &Request<'_>) -> Referer {
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let Some(r) = header("referer") else {
        return Referer::Absent;
    };
    let Some((_, rest)) = r.split_once("://") else {
        return Referer::Unknown;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let rhost = authority.rsplit('@').next().unwrap_or(authority);
    match header("host") {
        Some(h) if !rhost.is_empty() => {
            if site_of(rhost) == site_of(&h) {
                Referer::SameSite
            } else {
                Referer::CrossSite
            }
        }
        _ => Referer::Unknown,
    }
}

/// A finding when `v` is a parameter or JSON key named like a session cookie. `site`
/// caches where the request was followed from, read from its headers the first time a
/// name needs it.
pub(crate) fn judge(req: &Request<'_>, site: &mut Option<Referer>, v: &Value<'_>) -> Option<Hit> {
    let json = match v.origin {
        Origin::ParamName if v.header.is_none() => false,
        Origin::JsonKey => true,
        _ => return None,
    };
    let name = v.variants.first();
    let kind = kind_of(name)?;
    let from = *site.get_or_insert_with(|| referer(req));
    let score = match (kind, from) {
        (Kind::Framework, Referer::SameSite) => 45,
        (Kind::Framework, _) if json => 62,
        (Kind::Framework, _) => 66,
        (Kind::Generic, Referer::CrossSite) if !json => 40,
        (Kind::Generic, _) => return None,
    };
    Some(Hit {
        class: Class::SessionFixation,
        detector: "session.parameter",
        score,
        snippet: name.chars().take(64).collect(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::detect::request_score;

    fn score(query: &str, body: &str, headers: &[(&str, &[u8])]) -> u32 {
        let req = Request {
            method: if body.is_empty() { "GET" } else { "POST" },
            path: "/login",
            query: (!query.is_empty()).then_some(query),
            headers,
            body: body.as_bytes(),
        };
        request_score(&req, Class::SessionFixation)
    }

    const FORM: (&str, &[u8]) = ("content-type", b"application/x-www-form-urlencoded");
    const JSON: (&str, &[u8]) = ("content-type", b"application/json");
    const HOST: (&str, &[u8]) = ("host", b"shop.example.com");
    const CROSS: (&str, &[u8]) = ("referer", b"https://promo.attacker.example/deal");
    const SAME: (&str, &[u8]) = ("referer", b"https://www.example.com/cart?x=1");

    #[test]
    fn framework_session_parameters_block() {
        for (q, b, h) in [
            ("PHPSESSID=0123456789abcdef", "", vec![HOST, CROSS]),
            ("phpsessid=x", "", vec![]),
            (
                "JSESSIONID=74B0CB414BD77D17B5680A6386EF1666",
                "",
                vec![CROSS],
            ),
            ("id=3&ASPSESSIONIDQASCTBQT=KJHGFDSA", "", vec![HOST, CROSS]),
            ("CFID=1234&CFTOKEN=5678", "", vec![]),
            ("", "laravel_session=abc&email=a%40b.c", vec![FORM, CROSS]),
            ("__Secure-next-auth.session-token=t", "", vec![HOST, CROSS]),
            ("_shop_session=BAh7", "", vec![]),
            (
                "SESS0123456789abcdef0123456789abcdef=x",
                "",
                vec![HOST, CROSS],
            ),
            ("", r#"{"connect.sid":"s:abc.def"}"#, vec![JSON]),
            ("sessionid=abc", "", vec![HOST, CROSS]),
        ] {
            let s = score(q, b, &h);
            let want = if q.starts_with("sessionid") { 40 } else { 60 };
            assert!(s >= want, "{q} {b}: {s}");
        }
    }

    #[test]
    fn look_alikes_pass() {
        // URL rewriting inside the same site: weak, reported but not blocked at balanced.
        let s = score("PHPSESSID=0123456789abcdef", "", &[HOST, SAME]);
        assert!(s > 0 && s < 60, "{s}");
        for (q, b, h) in [
            // Generic names are API fields: they only count from another site, in a
            // query or form.
            ("session_id=42&limit=10", "", vec![HOST, SAME]),
            ("sessionId=42", "", vec![]),
            ("session=abc", "", vec![CROSS]),
            (
                "",
                r#"{"session_id":"8d1f","event":"page_view"}"#,
                vec![JSON, HOST, CROSS],
            ),
            ("", r#"{"sessionId":"8d1f"}"#, vec![JSON, CROSS]),
            ("session_start=2024-01-01&sessions=3", "", vec![HOST, CROSS]),
            ("sid=abc&tid=G-XYZ", "", vec![HOST, CROSS]),
            ("", r#"{"user_session":"x","cfid_hint":"y"}"#, vec![JSON]),
        ] {
            assert_eq!(score(q, b, &h), 0, "{q} {b}");
        }
    }

    #[test]
    fn cookies_are_where_sessions_belong() {
        assert_eq!(
            score("", "", &[("cookie", b"PHPSESSID=abc; JSESSIONID=def")]),
            0
        );
    }

    #[test]
    fn sites() {
        assert_eq!(site_of("shop.example.com:8443"), "example.com");
        assert_eq!(site_of("www.example.co.uk"), "example.co.uk");
        assert_eq!(site_of("10.0.0.1:80"), "10.0.0.1");
        assert_eq!(site_of("[::1]:8080"), "::1");
    }
}
