//! Measures the engine on labelled JSONL corpora (the waf-dev format).
//!
//! ```text
//! cargo run --release --example corpus_eval -- [--sensitivity S]... [--misses N] [--fps N]
//!     [--filter CLASS] [--by-placement] [--value V] FILE.jsonl...
//! ```
//!
//! Prints, per file and sensitivity, the share of attacks blocked per class (CRS lines
//! split by `meta.paranoia_level`) and the share of legitimate requests passed.
//! `--misses N` / `--fps N` print up to N missed attacks / blocked legit requests.

use std::collections::BTreeMap;
use std::io::BufRead;

use portcullis_inspect::{Engine, Request, Sensitivity, Settings};

struct Record {
    id: String,
    label: String,
    class: String,
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    pl: Option<u64>,
    placement: Option<String>,
}

fn parse(line: &str) -> Option<Record> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    let mut headers = Vec::new();
    if let Some(h) = v.get("headers").and_then(|x| x.as_object()) {
        for (k, val) in h {
            headers.push((
                k.to_ascii_lowercase(),
                val.as_str().unwrap_or("").as_bytes().to_vec(),
            ));
        }
    }
    let pl = v
        .get("meta")
        .and_then(|m| m.get("paranoia_level"))
        .and_then(|x| x.as_u64());
    let placement = v
        .get("meta")
        .and_then(|m| m.get("placement"))
        .and_then(|x| x.as_str())
        .map(str::to_string);
    Some(Record {
        placement,
        id: s("id"),
        label: s("label"),
        class: s("class"),
        method: s("method"),
        path: s("path"),
        query: s("query"),
        headers,
        body: s("body").into_bytes(),
        pl,
    })
}

#[derive(Default)]
struct Tally {
    total: usize,
    hit: usize,
}

fn main() {
    let mut sens: Vec<Sensitivity> = Vec::new();
    let mut files: Vec<String> = Vec::new();
    let mut misses = 0usize;
    let mut fps = 0usize;
    let mut filter: Option<String> = None;
    let mut by_placement = false;
    // `--dump FILE`: one line per request and sensitivity (id, verdict, findings with
    // detector and evidence), for diffing two builds of the engine over the same corpus.
    let mut dump: Option<std::fs::File> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--sensitivity" => {
                if let Some(s) = args.next().and_then(|x| x.parse().ok()) {
                    sens.push(s);
                }
            }
            "--misses" => misses = args.next().and_then(|x| x.parse().ok()).unwrap_or(20),
            "--fps" => fps = args.next().and_then(|x| x.parse().ok()).unwrap_or(20),
            "--filter" => filter = args.next(),
            "--by-placement" => by_placement = true,
            "--dump" => dump = args.next().and_then(|p| std::fs::File::create(p).ok()),
            "--value" => {
                // Debug aid: judge one value as a JSON string field and print the findings.
                let v = args.next().unwrap_or_default();
                let body = serde_json::json!({ "v": v }).to_string();
                let headers: Vec<(&str, &[u8])> = vec![("content-type", b"application/json")];
                let req = Request {
                    method: "POST",
                    path: "/",
                    query: None,
                    headers: &headers,
                    body: body.as_bytes(),
                };
                let engine = Engine::new(Settings {
                    sensitivity: Sensitivity::Paranoid,
                    ..Settings::default()
                });
                for f in engine.inspect(&req).findings {
                    println!(
                        "{} {} {} {} {:?}",
                        f.class, f.location, f.detector, f.score, f.evidence
                    );
                }
                return;
            }
            _ => files.push(a),
        }
    }
    if sens.is_empty() {
        sens = vec![
            Sensitivity::Balanced,
            Sensitivity::Strict,
            Sensitivity::Paranoid,
        ];
    }
    for file in &files {
        let Ok(f) = std::fs::File::open(file) else {
            eprintln!("cannot open {file}");
            continue;
        };
        let records: Vec<Record> = std::io::BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| parse(&l))
            .collect();
        let name = std::path::Path::new(file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        for &s in &sens {
            let engine = Engine::new(Settings {
                sensitivity: s,
                ..Settings::default()
            });
            let mut per: BTreeMap<String, Tally> = BTreeMap::new();
            let mut shown_m = 0;
            let mut shown_f = 0;
            for r in &records {
                let headers: Vec<(&str, &[u8])> = r
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_slice()))
                    .collect();
                let req = Request {
                    method: &r.method,
                    path: &r.path,
                    query: if r.query.is_empty() {
                        None
                    } else {
                        Some(&r.query)
                    },
                    headers: &headers,
                    body: &r.body,
                };
                let out = engine.inspect(&req);
                if let Some(d) = dump.as_mut() {
                    use std::io::Write;
                    let f: Vec<String> = out
                        .findings
                        .iter()
                        .map(|f| {
                            format!(
                                "{}@{}={}:{}:{:?}",
                                f.class, f.location, f.score, f.detector, f.evidence
                            )
                        })
                        .collect();
                    let _ = writeln!(d, "{} {} {} {}", s.as_str(), r.id, out.blocked, f.join(" "));
                }
                let attack = r.label == "attack";
                let key = if by_placement {
                    let label = if attack { "attack" } else { "legit" };
                    format!("{}/{label}", r.placement.as_deref().unwrap_or("-"))
                } else if attack {
                    match r.pl {
                        Some(pl) => format!("{} PL{}", r.class, pl),
                        None => r.class.clone(),
                    }
                } else {
                    "legit".to_string()
                };
                let t = per.entry(key).or_default();
                t.total += 1;
                let good = if attack { out.blocked } else { !out.blocked };
                if good {
                    t.hit += 1;
                }
                let wanted = filter.as_deref().is_none_or(|f| r.class == f);
                if attack && !good && shown_m < misses && wanted {
                    shown_m += 1;
                    let q: String = r.query.chars().take(160).collect();
                    let b: String = String::from_utf8_lossy(&r.body).chars().take(200).collect();
                    println!(
                        "MISS {} {} {} q={} body={:?} top={:?}",
                        r.id,
                        r.class,
                        r.path.chars().take(80).collect::<String>(),
                        q,
                        b,
                        out.findings
                            .first()
                            .map(|f| (f.class.as_str(), f.detector, f.score))
                    );
                }
                if !attack && !good && shown_f < fps {
                    shown_f += 1;
                    for f in out.findings.iter().filter(|f| f.score >= s.threshold()) {
                        println!(
                            "FP {} {} {} {} {} {:?}",
                            r.id, f.class, f.location, f.detector, f.score, f.evidence
                        );
                    }
                }
            }
            let (mut at, mut ah, mut lt, mut lh) = (0, 0, 0, 0);
            for (k, t) in &per {
                let pct = 100.0 * t.hit as f64 / t.total.max(1) as f64;
                let is_legit = k == "legit" || k.ends_with("/legit");
                let what = if is_legit { "passed" } else { "blocked" };
                println!(
                    "{name:<28} {:<9} {k:<16} {:>6} {what:<8} {pct:>7.2}%",
                    s.as_str(),
                    t.total
                );
                if is_legit {
                    lt += t.total;
                    lh += t.hit;
                } else {
                    at += t.total;
                    ah += t.hit;
                }
            }
            if at > 0 {
                println!(
                    "{name:<28} {:<9} {:<16} {:>6} blocked  {:>7.2}%",
                    s.as_str(),
                    "ALL ATTACKS",
                    at,
                    100.0 * ah as f64 / at as f64
                );
            }
            if lt > 0 {
                println!(
                    "{name:<28} {:<9} {:<16} {:>6} passed   {:>7.2}%",
                    s.as_str(),
                    "ALL LEGIT",
                    lt,
                    100.0 * lh as f64 / lt as f64
                );
            }
        }
    }
}
