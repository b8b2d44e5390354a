//! Engine cost on one core, measured with `std::time::Instant` only.
//!
//! ```text
//! cargo run --release --example engine_bench -- [--corpus DIR] [--passes N] [--quick]
//!     [--only get|post|breakdown] [--count N]
//! ```
//!
//! `--only get --count N` (or `post`) runs N inspections untimed and exits, for
//! instruction counts that do not depend on machine load:
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='engine_bench::run_count'
//! engine_bench --only get --count 1000`, divided by 1000.
//!
//! Reports:
//! - ns/request for a typical API GET (3 query parameters, 10 ordinary headers) and a
//!   POST with a ~2 KB realistic JSON body (the issue's bars: ≤ 3 µs and ≤ 15 µs);
//! - MB/s and requests/s over the legitimate files of the waf-dev corpus, read in place;
//! - the time for a ~1 MB adversarial input per detector family (reported, never asserted).

use std::hint::black_box;
use std::io::BufRead;
use std::time::{Duration, Instant};

use portcullis_inspect::{Engine, Request, Settings};

const DEFAULT_CORPUS: &str = "/work/shared/corpora/waf-dev";
const LEGIT_FILES: &[&str] = &[
    "libinjection-falsepos.jsonl",
    "openappsec-legit-queries.jsonl",
    "api-json-legit-dev.jsonl",
];

const JWT: &str = "Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6IjE2YzNkNGQ1In0.\
eyJzdWIiOiI3ZjNjMmE5MC0xYjZlLTRjOGEtOWQyZi0wZTVhNmI3YzhkOTEiLCJuYW1lIjoiU2lvYmhhbiBPJ0JyaWVuIiw\
iaXNzIjoiaHR0cHM6Ly9hdXRoLmV4YW1wbGUuY29tLyIsImF1ZCI6Im9yZGVycyIsImlhdCI6MTcxNjIzOTAyMiwiZXhwIj\
oxNzE2MjQyNjIyLCJzY29wZSI6Im9yZGVyczpyZWFkIG9yZGVyczp3cml0ZSJ9.\
Q2hhbmdlTWVDaGFuZ2VNZUNoYW5nZU1lQ2hhbmdlTWVDaGFuZ2VNZUNoYW5nZU1lQ2hhbmdlTWVDaGFuZ2VNZQ";

fn get_headers() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("host", b"api.shop.example.com"),
        (
            "user-agent",
            b"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        ),
        ("accept", b"application/json, text/plain, */*"),
        ("accept-language", b"en-GB,en;q=0.9,fr;q=0.8"),
        ("accept-encoding", b"gzip, deflate, br"),
        ("authorization", JWT.as_bytes()),
        ("referer", b"https://www.shop.example.com/orders?page=2&sort=recent"),
        ("origin", b"https://www.shop.example.com"),
        ("x-request-id", b"5b1e8f3c-2d4a-4f6b-9c7e-1a2b3c4d5e6f"),
        (
            "cookie",
            b"session=7f3c2a901b6e4c8a9d2f0e5a6b7c8d91; lang=en-GB; theme=dark",
        ),
    ]
}

const GET_QUERY: &str =
    "customer_id=7f3c2a90-1b6e-4c8a-9d2f-0e5a6b7c8d91&q=O%27Brien%20garden%20chairs&sort=created_at";

/// A ~2 KB order body with the kind of text real clients send.
fn post_body() -> String {
    let body = serde_json::json!({
        "order_id": "3e9b1f4c-7a2d-4c1e-8f5b-6d0a9c2e7b14",
        "customer": {
            "id": "7f3c2a90-1b6e-4c8a-9d2f-0e5a6b7c8d91",
            "name": "Siobhan O'Brien",
            "email": "siobhan.obrien@example.org",
            "phone": "+353 1 555 0192",
            "address": {
                "line1": "14 St. Stephen's Green",
                "line2": "Apt. 3B",
                "city": "Dublin",
                "postcode": "D02 XY45",
                "country": "IE"
            }
        },
        "items": [
            {"sku": "CHR-1042-GRN", "name": "Garden chair (set of 2)", "qty": 2, "price": 89.99,
             "note": "Please select the green ones if possible - the grey didn't match last time."},
            {"sku": "TBL-220-OAK", "name": "Oak table, 120cm", "qty": 1, "price": 349.0,
             "note": "Gift: leave the receipt out & wrap it if you can :)"},
            {"sku": "CSH-7-BLU", "name": "Seat cushion \"Harbour\" blue", "qty": 4, "price": 12.5,
             "note": null}
        ],
        "delivery": {
            "slot": "2024-06-14T09:00:00+01:00",
            "instructions": "Ring twice; if nobody answers, leave it with the neighbour at no. 16 (the one with the red door). Don't leave it by the bins!",
            "tracking_url": "https://track.parcels.example.com/t/IE1234567890?lang=en"
        },
        "payment": {
            "method": "card",
            "token": "tok_1PKq2eLkdIwHu7ixW3tJ9aZb",
            "billing_same_as_shipping": true
        },
        "coupon": "SUMMER-24",
        "comment": "Loved the last order <3 Could you drop-down the delivery window to the morning? We're usually out from 1pm to 6pm, so before noon works best. Thanks a million, and select a plan for the extended warranty on the table if there's one on offer - 2 or 3 years is fine.",
        "metadata": {
            "source": "web",
            "campaign": "newsletter_2024_06",
            "ab_bucket": "B",
            "user_agent_hint": "Chrome 124 on macOS",
            "referrer": "https://www.google.com/search?q=oak+garden+table"
        },
        "gift_message": "Happy anniversary, Tom & Mary! Here's to 25 more years. Love, Aoife, Ciarán and the kids.",
        "tags": ["garden", "summer", "priority", "gift"],
        "consent": {"marketing": false, "terms_version": "2024-03-01"}
    });
    body.to_string()
}

fn time_per_request(engine: &Engine, req: &Request<'_>, min_time: Duration) -> f64 {
    // Warm up (caches, lazily built automata).
    for _ in 0..200 {
        black_box(engine.inspect(black_box(req)));
    }
    let mut n: u64 = 0;
    let start = Instant::now();
    let mut batch = 1000u64;
    loop {
        for _ in 0..batch {
            black_box(engine.inspect(black_box(req)));
        }
        n += batch;
        let el = start.elapsed();
        if el >= min_time {
            return el.as_nanos() as f64 / n as f64;
        }
        batch = batch.min(100_000) * 2;
    }
}

struct Rec {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

fn load(path: &std::path::Path) -> Vec<Rec> {
    let Ok(f) = std::fs::File::open(path) else {
        eprintln!("cannot open {}", path.display());
        return Vec::new();
    };
    std::io::BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(&l).ok()?;
            if v.get("label").and_then(|x| x.as_str()) != Some("legit") {
                return None;
            }
            let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
            let headers = v
                .get("headers")
                .and_then(|h| h.as_object())
                .map(|h| {
                    h.iter()
                        .map(|(k, x)| {
                            (
                                k.to_ascii_lowercase(),
                                x.as_str().unwrap_or("").as_bytes().to_vec(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some(Rec {
                method: s("method"),
                path: s("path"),
                query: s("query"),
                headers,
                body: s("body").into_bytes(),
            })
        })
        .collect()
}

fn corpus_throughput(engine: &Engine, dir: &str, passes: usize) {
    let mut all: Vec<Rec> = Vec::new();
    // Legit lines of placements-dev too: values placed in cookies, headers, XML, multipart.
    let mut files: Vec<&str> = LEGIT_FILES.to_vec();
    files.push("placements-dev.jsonl");
    for f in &files {
        let recs = load(&std::path::Path::new(dir).join(f));
        let bytes: usize = recs.iter().map(rec_bytes).sum();
        report_set(engine, f, &recs, bytes, passes);
        all.extend(recs);
    }
    let bytes: usize = all.iter().map(rec_bytes).sum();
    report_set(engine, "ALL LEGIT", &all, bytes, passes);
}

fn rec_bytes(r: &Rec) -> usize {
    r.method.len()
        + r.path.len()
        + r.query.len()
        + r.body.len()
        + r.headers
            .iter()
            .map(|(k, v)| k.len() + v.len() + 4)
            .sum::<usize>()
}

fn report_set(engine: &Engine, name: &str, recs: &[Rec], bytes: usize, passes: usize) {
    if recs.is_empty() {
        return;
    }
    let headers: Vec<Vec<(&str, &[u8])>> = recs
        .iter()
        .map(|r| {
            r.headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice()))
                .collect()
        })
        .collect();
    let reqs: Vec<Request<'_>> = recs
        .iter()
        .zip(&headers)
        .map(|(r, h)| Request {
            method: &r.method,
            path: &r.path,
            query: (!r.query.is_empty()).then_some(r.query.as_str()),
            headers: h,
            body: &r.body,
        })
        .collect();
    for r in &reqs {
        black_box(engine.inspect(r));
    }
    let start = Instant::now();
    for _ in 0..passes {
        for r in &reqs {
            black_box(engine.inspect(black_box(r)));
        }
    }
    let el = start.elapsed().as_secs_f64();
    let n = (reqs.len() * passes) as f64;
    println!(
        "corpus {name:<32} {:>6} req {:>8.1} KB  {:>8.1} MB/s  {:>10.0} req/s  {:>8.2} µs/req",
        reqs.len(),
        bytes as f64 / 1024.0,
        (bytes * passes) as f64 / el / 1e6,
        n / el,
        el * 1e6 / n
    );
}

fn adversarial(engine: &Engine) {
    // One pattern per detector family (and the decoders), repeated to ~1 MB.
    let families: &[(&str, &str)] = &[
        ("sqli quotes", "' or '"),
        ("sqli parens", "(((((((("),
        ("sqli comments", "/*"),
        ("sqli keywords", "select union "),
        ("xss tags", "<a "),
        ("xss script", "<script"),
        ("xss handlers", "onx=a "),
        ("xss js uri", "javascript:"),
        ("cmdi subst", "$("),
        ("cmdi backtick", "`"),
        ("cmdi separators", ";ls "),
        ("traversal", "../"),
        ("ssrf", "http://"),
        ("jndi nested", "${${"),
        ("ssti", "{{"),
        ("nosqli", "{\"$ne\":"),
        ("ldap", ")("),
        ("deser php", "O:1:\""),
        ("proto", "__proto__"),
        ("crlf", "\r\n"),
        ("xxe", "<!ENTITY "),
        ("code php", "$_"),
        ("decode percent", "%25"),
        ("decode entities", "&#"),
        ("decode js escapes", "\\u00"),
        ("decode utf7", "+ADw-"),
    ];
    let engine_big = Engine::new(Settings {
        max_value_len: 2 << 20,
        max_file_bytes: 2 << 20,
        ..engine.settings().clone()
    });
    for (name, p) in families {
        let big = p.repeat((1 << 20) / p.len());
        let headers: Vec<(&str, &[u8])> = vec![("content-type", b"text/plain")];
        let req = Request {
            method: "POST",
            path: "/",
            query: None,
            headers: &headers,
            body: big.as_bytes(),
        };
        let start = Instant::now();
        let out = engine_big.inspect(&req);
        let el = start.elapsed();
        println!(
            "adversarial {name:<18} {p:<14?} {:>5} KB  {:>9.2} ms  {:>7.1} MB/s  blocked={}",
            big.len() / 1024,
            el.as_secs_f64() * 1e3,
            big.len() as f64 / el.as_secs_f64() / 1e6,
            out.blocked
        );
    }
}

/// The untimed loop of `--count`, apart so that callgrind can collect it alone
/// (`--collect-atstart=no --toggle-collect=engine_bench::run_count`), without the first
/// inspection that builds the automata.
#[inline(never)]
fn run_count(engine: &Engine, req: &Request<'_>, n: u64) {
    for _ in 0..n {
        black_box(engine.inspect(black_box(req)));
    }
}

fn main() {
    let mut dir = DEFAULT_CORPUS.to_string();
    let mut quick = false;
    let mut passes = 3usize;
    let mut only: Option<String> = None;
    let mut count: Option<u64> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--corpus" => dir = args.next().unwrap_or(dir),
            "--passes" => passes = args.next().and_then(|x| x.parse().ok()).unwrap_or(passes),
            "--quick" => quick = true,
            "--only" => only = args.next(),
            "--count" => count = args.next().and_then(|x| x.parse().ok()),
            _ => eprintln!("unknown argument {a}"),
        }
    }
    let engine = Engine::new(Settings::default());
    let min_time = Duration::from_millis(if quick { 300 } else { 1500 });

    let headers = get_headers();
    let get = Request {
        method: "GET",
        path: "/v1/customers/7f3c2a90-1b6e-4c8a-9d2f-0e5a6b7c8d91/orders",
        query: Some(GET_QUERY),
        headers: &headers,
        body: b"",
    };
    if only.as_deref() == Some("breakdown") {
        // Cost of each part of the GET on its own (path, query, one header at a time).
        let none: Vec<(&str, &[u8])> = Vec::new();
        let parts: Vec<(&str, Request<'_>)> = vec![
            (
                "path",
                Request {
                    query: None,
                    headers: &none,
                    ..get
                },
            ),
            (
                "query",
                Request {
                    path: "/",
                    headers: &none,
                    ..get
                },
            ),
        ];
        for (name, r) in parts {
            println!(
                "{name:<16} {:>8.0} ns",
                time_per_request(&engine, &r, min_time)
            );
        }
        let base = time_per_request(
            &engine,
            &Request {
                path: "/",
                query: None,
                headers: &none,
                ..get
            },
            min_time,
        );
        println!("{:<16} {:>8.0} ns", "empty", base);
        for h in &headers {
            let one = [*h];
            let r = Request {
                path: "/",
                query: None,
                headers: &one,
                ..get
            };
            println!(
                "{:<16} {:>8.0} ns",
                h.0,
                time_per_request(&engine, &r, min_time)
            );
        }
        return;
    }
    let out = engine.inspect(&get);
    assert!(!out.blocked, "typical GET must pass: {:?}", out.findings);
    if let (Some(n), Some("get")) = (count, only.as_deref()) {
        run_count(&engine, &get, n);
        return;
    }
    if only.as_deref().is_some_and(|o| o != "get") {
    } else {
        let ns = time_per_request(&engine, &get, min_time);
        println!(
            "GET  3 params, 10 headers            {:>9.0} ns/request  (bar 3000)",
            ns
        );
    }

    let body = post_body();
    let mut post_headers = get_headers();
    post_headers.retain(|(k, _)| *k != "cookie");
    post_headers.push(("content-type", b"application/json"));
    let post = Request {
        method: "POST",
        path: "/v1/orders",
        query: None,
        headers: &post_headers,
        body: body.as_bytes(),
    };
    let out = engine.inspect(&post);
    assert!(!out.blocked, "typical POST must pass: {:?}", out.findings);
    if let (Some(n), Some("post")) = (count, only.as_deref()) {
        run_count(&engine, &post, n);
        return;
    }
    if only.as_deref().is_some_and(|o| o != "post") {
        return;
    }
    let ns = time_per_request(&engine, &post, min_time);
    if only.is_some() {
        println!("POST {ns:.0} ns/request");
        return;
    }
    println!(
        "POST {:>4} B JSON body, 10 headers    {:>9.0} ns/request  (bar 15000)",
        body.len(),
        ns
    );

    corpus_throughput(&engine, &dir, if quick { 1 } else { passes });
    if !quick {
        adversarial(&engine);
    }
}
