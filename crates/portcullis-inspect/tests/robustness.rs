//! Robustness: arbitrary and adversarial input must never panic, and large inputs finish.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use portcullis_inspect::{Engine, Request, Settings};

/// Small deterministic PRNG (xorshift) so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const ALPHABET: &[&str] = &[
    "a",
    "Z",
    "0",
    "9",
    " ",
    "'",
    "\"",
    "`",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "<",
    ">",
    "/",
    "\\",
    ";",
    ":",
    "|",
    "&",
    "$",
    "%",
    "#",
    "@",
    "!",
    "=",
    "+",
    "-",
    "*",
    ".",
    ",",
    "?",
    "~",
    "^",
    "\r",
    "\n",
    "\t",
    "\0",
    "é",
    "’",
    "：",
    "各",
    "😀",
    "\u{FEFF}",
    "%27",
    "%0a",
    "&#x3c;",
    "\\u0027",
    "${",
    "{{",
    "}}",
    "<!--",
    "-->",
    "/*",
    "*/",
    "--",
    "..",
    "://",
    "<script",
    "select",
    "union",
    "or",
    "and",
    "on",
    "javascript:",
    "jndi:",
    "0x",
    "rO0AB",
    "$ne",
    "__proto__",
];

fn random_text(rng: &mut Rng, len: usize) -> String {
    let mut s = String::new();
    for _ in 0..len {
        s.push_str(ALPHABET[(rng.next() % ALPHABET.len() as u64) as usize]);
    }
    s
}

fn inspect_everywhere(engine: &Engine, text: &str) {
    let enc: String = text
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let q = format!("q={enc}&{enc}=1");
    let json = serde_json::json!({ "a": text, text: [text] }).to_string();
    let ua = text.replace(['\r', '\n'], " ");
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("application/json", json.into_bytes()),
        ("application/x-www-form-urlencoded", q.clone().into_bytes()),
        ("application/xml", format!("<r a=\"{text}\">{text}</r>").into_bytes()),
        ("text/plain", text.as_bytes().to_vec()),
        (
            "multipart/form-data; boundary=XX",
            format!("--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"{ua}\"\r\n\r\n{text}\r\n--XX--\r\n").into_bytes(),
        ),
    ];
    for (ct, body) in &bodies {
        let headers: Vec<(&str, &[u8])> = vec![
            ("content-type", ct.as_bytes()),
            ("user-agent", ua.as_bytes()),
            ("cookie", ua.as_bytes()),
        ];
        let path = format!("/a/{enc}/b");
        let req = Request {
            method: "POST",
            path: &path,
            query: Some(&q),
            headers: &headers,
            body,
        };
        let _ = engine.inspect(&req);
    }
}

#[test]
fn random_inputs_never_panic() {
    let engine = Engine::new(Settings::default());
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..1500 {
        let len = 1 + (rng.next() % 40) as usize + if round % 100 == 0 { 400 } else { 0 };
        let t = random_text(&mut rng, len);
        inspect_everywhere(&engine, &t);
    }
}

#[test]
fn megabyte_adversarial_inputs_finish() {
    // One pattern per detector family, repeated to ~1 MB. Must finish; time is a bench.
    let engine = Engine::new(Settings {
        max_value_len: 2 << 20,
        max_file_bytes: 2 << 20,
        ..Settings::default()
    });
    let patterns = [
        "' or '",
        "((((((((",
        "/*",
        "<a ",
        "<script",
        "on",
        "${",
        "${${",
        "{{",
        "../",
        "%25",
        "&#",
        "\\u00",
        "$(",
        "`",
        ";ls ",
        "http://",
        "[",
        ")(",
        "O:1:\"",
        "__proto__",
        "\r\n",
        "<!ENTITY ",
        "a=",
        "select ",
        "'''''",
        "\"\"\"",
        "\\",
        "<?",
        "$_",
        "$a[",
        "a(",
        "# a b c d e ",
        "-- w x y z v ",
        ")(a=",
        "{{1*1",
        "onx=a ",
        "javascript:",
        "\\u{",
        "+ADw-",
        "&lt;",
        "a.b.c.",
        "java.lang.",
        "%u0027",
        "\\x3c",
        "[[",
        "$$",
        "}}",
        ";;",
        "||",
        "0x",
        "2.2250738585072011e-30",
        "/.//",
        "/AAAAAAA",
        "\u{BC}a\u{BE}\u{BC}/",
    ];
    // The first patterns target one detector each and get the full megabyte; the rest
    // probe secondary paths with a smaller input to keep debug-mode test time sane.
    for (n, p) in patterns.iter().enumerate() {
        let started = std::time::Instant::now();
        let size = if n < 24 { 1 << 20 } else { 1 << 17 };
        let big = p.repeat(size / p.len());
        let headers: Vec<(&str, &[u8])> = vec![("content-type", b"text/plain")];
        let req = Request {
            method: "POST",
            path: "/",
            query: None,
            headers: &headers,
            body: big.as_bytes(),
        };
        let _ = engine.inspect(&req);
        // The JSON path gets a quarter: it shares the detectors, only extraction differs.
        let quarter = big.get(..big.len() / 4).unwrap_or(&big);
        let json = serde_json::json!({ "v": quarter }).to_string();
        let headers: Vec<(&str, &[u8])> = vec![("content-type", b"application/json")];
        let req = Request {
            method: "POST",
            path: "/",
            query: None,
            headers: &headers,
            body: json.as_bytes(),
        };
        let _ = engine.inspect(&req);
        // Reported, not asserted: speed belongs to the benches.
        eprintln!("{p:?}: {:?}", started.elapsed());
    }
}

#[test]
fn issue_5_documents_inside_values_stay_bounded() {
    // XML and JSON documents inside values are walked two levels deep at most, each value
    // at most once per level: large and self-similar inputs finish and stay bounded.
    let engine = Engine::new(Settings {
        max_value_len: 2 << 20,
        ..Settings::default()
    });
    let inner = "<?xml version=\"1.0\"?><r><a p=\"&lt;?xml version=&quot;1.0&quot;?&gt;&lt;s q=&quot;x&quot;/&gt;\">&lt;?xml version=\"1.0\"?&gt;&lt;t/&gt;</a></r>";
    let xml_in_json =
        serde_json::json!({ "v": inner.repeat((256 << 10) / inner.len()) }).to_string();
    let nested_json = format!("{}{}", "{\"a\":".repeat(4096), "\"x\"") + &"}".repeat(4096);
    let objects =
        "{\"k\":\"{\\\"k\\\":\\\"<?xml version=\\\\\\\"1.0\\\\\\\"?><r/>\\\"}\"}".repeat(8192);
    for (ct, body) in [
        ("application/json", xml_in_json),
        (
            "application/json",
            serde_json::json!({ "v": nested_json }).to_string(),
        ),
        (
            "application/json",
            serde_json::json!({ "v": objects }).to_string(),
        ),
        (
            "application/xml",
            format!(
                "<o>{}</o>",
                "&lt;?xml version=\"1.0\"?&gt;&lt;r a=\"b\"/&gt;".repeat(8192)
            ),
        ),
    ] {
        let headers: Vec<(&str, &[u8])> = vec![("content-type", ct.as_bytes())];
        let req = Request {
            method: "POST",
            path: "/",
            query: None,
            headers: &headers,
            body: body.as_bytes(),
        };
        let out = engine.inspect(&req);
        // Nothing in them is hostile: walking them finds nothing (the default report
        // bound of 16 findings would hide a blow-up, so none at all is asserted). That the
        // walk stays within `max_values` is asserted where the values can be counted, in
        // extract.rs's tests.
        assert!(out.findings.is_empty(), "{ct}: {:?}", out.findings);
    }
}
