//! `portcullis waf eval`: the inspection engine offline, over JSON Lines requests.
//!
//! Input: one request per line in the waf-dev corpus format (`id`, `method`, `path`, `query`,
//! `headers`, `body`, optional `label`, `class`, `meta.paranoia_level`). Output: one verdict
//! per line on stdout, `{"id":…,"blocked":…,"findings":[…]}`, and a summary table on stderr.
//! The engine and its settings are the gateway's: same extraction, same decoding, same body
//! bound.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use portcullis_inspect::{Engine, Exclusion, Request, Sensitivity, Settings};
use serde_json::{json, Value};

/// Options of `waf eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// balanced (default), strict or paranoid.
    #[arg(long, default_value = "balanced")]
    sensitivity: String,
    /// Exclusions, as in a route's `inspect.exclude` (repeatable).
    #[arg(long = "exclude", value_name = "LOCATION[:CLASS]")]
    exclude: Vec<String>,
    /// Print only the summary, not one verdict per line.
    #[arg(long)]
    summary_only: bool,
}

#[derive(Default)]
struct Tally {
    total: u64,
    blocked: u64,
}

/// Runs the evaluation over stdin.
pub fn eval(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let sensitivity: Sensitivity = args.sensitivity.parse().map_err(|_| {
        anyhow::anyhow!(
            "--sensitivity: \"{}\" is not balanced, strict or paranoid",
            args.sensitivity
        )
    })?;
    let mut exclusions = Vec::new();
    for text in &args.exclude {
        exclusions.push(
            text.parse::<Exclusion>()
                .map_err(|err| anyhow::anyhow!("--exclude: {err}"))?,
        );
    }
    let engine = Engine::new(Settings {
        sensitivity,
        exclusions,
        ..Settings::default()
    });
    // The gateway inspects the first 64 KiB of a body by default; so does the evaluation.
    let body_bound = portcullis_config::Inspect::default().max_body_bytes;

    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut by_class: BTreeMap<String, Tally> = BTreeMap::new();
    let mut bad_lines = 0u64;
    for (number, line) in stdin.lock().lines().enumerate() {
        let line = line.context("cannot read standard input")?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Value = match serde_json::from_str(&line) {
            Ok(value @ Value::Object(_)) => value,
            Ok(_) | Err(_) => {
                eprintln!("line {}: not a JSON object; skipped", number + 1);
                bad_lines += 1;
                continue;
            }
        };
        let text = |key: &str| record.get(key).and_then(Value::as_str).unwrap_or("");
        let headers: Vec<(String, Vec<u8>)> = record
            .get("headers")
            .and_then(Value::as_object)
            .map(|object| {
                object
                    .iter()
                    .map(|(name, value)| {
                        (
                            name.to_ascii_lowercase(),
                            value.as_str().unwrap_or("").as_bytes().to_vec(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let header_refs: Vec<(&str, &[u8])> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        let body = text("body").as_bytes();
        let query = text("query");
        let request = Request {
            method: if text("method").is_empty() {
                "GET"
            } else {
                text("method")
            },
            path: if text("path").is_empty() {
                "/"
            } else {
                text("path")
            },
            query: (!query.is_empty()).then_some(query),
            headers: &header_refs,
            body: &body[..body.len().min(body_bound)],
        };
        let inspection = engine.inspect(&request);
        if !args.summary_only {
            let findings: Vec<Value> = inspection
                .findings
                .iter()
                .map(|f| {
                    json!({
                        "class": f.class.as_str(),
                        "location": f.location,
                        "detector": f.detector,
                        "score": f.score,
                        "evidence": f.evidence,
                    })
                })
                .collect();
            let verdict = json!({ "id": record.get("id").cloned().unwrap_or(Value::Null), "blocked": inspection.blocked, "findings": findings });
            writeln!(out, "{verdict}").context("cannot write standard output")?;
        }
        let label = if text("label") == "legit" {
            "legit"
        } else {
            "attack"
        };
        let class = if text("class").is_empty() {
            "unknown"
        } else {
            text("class")
        };
        let key = match record
            .pointer("/meta/paranoia_level")
            .and_then(Value::as_u64)
        {
            Some(level) if label == "attack" => format!("{label} {class} (paranoia level {level})"),
            _ => format!("{label} {class}"),
        };
        let tally = by_class.entry(key).or_default();
        tally.total += 1;
        tally.blocked += u64::from(inspection.blocked);
    }
    out.flush().context("cannot write standard output")?;

    eprintln!("| set | requests | blocked | attacks blocked | legitimate passed |");
    eprintln!("|---|---:|---:|---:|---:|");
    for (key, tally) in &by_class {
        let share = |n: u64| 100.0 * n as f64 / tally.total.max(1) as f64;
        if key.starts_with("legit") {
            eprintln!(
                "| {key} | {} | {} | | {:.2}% |",
                tally.total,
                tally.blocked,
                share(tally.total - tally.blocked)
            );
        } else {
            eprintln!(
                "| {key} | {} | {} | {:.2}% | |",
                tally.total,
                tally.blocked,
                share(tally.blocked)
            );
        }
    }
    if bad_lines > 0 {
        eprintln!("{bad_lines} line(s) skipped: not JSON objects");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
