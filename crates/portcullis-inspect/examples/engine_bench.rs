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

#[path = "support/typical.rs"]
mod typical;
use typical::{get_headers, post_body, post_headers, GET_PATH, GET_QUERY, POST_PATH};

const DEFAULT_CORPUS: &str = "/work/shared/corpora/waf-dev";
const LEGIT_FILES: &[&str] = &[
    "libinjection-falsepos.jsonl",
    "openappsec-legit-queries.jsonl",
    "api-json-legit-dev.jsonl",
];

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
        path: GET_PATH,
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
    let post_headers = post_headers();
    let post = Request {
        method: "POST",
        path: POST_PATH,
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
