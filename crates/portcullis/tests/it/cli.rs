//! The binary: `check`, `serve` with signals, `quickstart`, the key lifecycle commands.

use std::io::{BufRead, BufReader, Write};
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// Runs `portcullis SUBCOMMAND -c CONFIG`, expects exit code 1, and returns stderr.
fn refused(subcommand: &str, config: &std::path::Path) -> String {
    let output = bin()
        .arg(subcommand)
        .arg("-c")
        .arg(config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    String::from_utf8(output.stderr).unwrap()
}

#[test]
fn check_reports_every_error_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[gateway]\nlisten = [\"x\"]\nmystery = 1\n[[upstream]]\nname = \"orders\"\ntargets = [\"127.0.0.1:3000\"]\n[[route]]\nname = \"r\"\npath = \"/o\"\nupstream = \"ordrs\"\nauth = [\"none\"]\n[gateway.tls]\nlisten = [\"127.0.0.1:8443\"]\ncert = \"missing.pem\"\nkey = \"missing-key.pem\"\n",
    )
    .unwrap();
    let stderr = refused("check", &path);
    for want in [
        "gateway.mystery: unknown key",
        "gateway.listen[0]: \"x\" is not an address",
        "route[0].upstream: no upstream named \"ordrs\" (known: orders)",
        "gateway.tls.cert: cannot read",
        "gateway.tls.key: cannot read",
        "5 error(s)",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }

    // PEM that is not a certificate is caught too.
    std::fs::write(dir.path().join("missing.pem"), "not pem").unwrap();
    std::fs::write(dir.path().join("missing-key.pem"), "not pem").unwrap();
    let fixed = std::fs::read_to_string(&path)
        .unwrap()
        .replace("[\"x\"]", "[\"127.0.0.1:8080\"]")
        .replace("mystery = 1\n", "")
        .replace("ordrs", "orders");
    std::fs::write(&path, fixed).unwrap();
    let stderr = refused("check", &path);
    assert!(
        stderr.contains("gateway.tls.cert: ") && stderr.contains("holds no certificate"),
        "{stderr}"
    );
    assert!(
        stderr.contains("gateway.tls.key: ") && stderr.contains("holds no PEM private key"),
        "{stderr}"
    );
}

#[test]
fn check_accepts_the_examples() {
    // Examples refer to certificates under tls/, which are not committed: make some.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    std::fs::create_dir(dir.path().join("tls")).unwrap();
    std::fs::write(dir.path().join("tls/cert.pem"), &pki.leaf_pem).unwrap();
    std::fs::write(dir.path().join("tls/key.pem"), &pki.leaf_key_pem).unwrap();
    std::fs::write(dir.path().join("tls/upstream-ca.pem"), &pki.ca_pem).unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let original = entry.unwrap().path();
        if original.extension().is_some_and(|e| e == "toml") {
            let path = dir.path().join(original.file_name().unwrap());
            std::fs::copy(&original, &path).unwrap();
            let output = bin()
                .arg("check")
                .arg("-c")
                .arg(&path)
                .env("PORTCULLIS_PEPPER", "example-pepper-0123456789abcdef")
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(String::from_utf8_lossy(&output.stdout).contains(": ok: "));
            checked += 1;
        }
    }
    assert!(checked >= 2, "expected at least two examples");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reloads_on_sighup_and_drains_on_sigterm() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    let ups = [
        upstream_block("a", &[a.addr], ""),
        upstream_block("b", &[b.addr], ""),
    ]
    .concat();
    let head = "[gateway]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n[log]\naccess = \"off\"\n";
    std::fs::write(
        &path,
        format!("{head}{ups}{}", route_block("r", "/", "a", "")),
    )
    .unwrap();
    let mut served = tokio::task::block_in_place(|| Served::start(&path));
    let gateway = served.gateway.clone();
    let c = client();
    let echo: Value = get_json(&c, format!("{gateway}/x")).await;
    assert_eq!(echo["upstream"], "a");

    std::fs::write(
        &path,
        format!("{head}{ups}{}", route_block("r", "/", "b", "")),
    )
    .unwrap();
    signal(&served.process.0, libc::SIGHUP);
    let switched = poll_until(100, Duration::from_millis(20), async || {
        get_json(&c, format!("{gateway}/x")).await["upstream"] == "b"
    })
    .await;
    assert!(switched, "SIGHUP reload did not take effect");

    // An in-flight request survives SIGTERM; the process exits 0.
    let url = format!("{gateway}/slow/600");
    let in_flight =
        tokio::spawn(async move { client().get(url).send().await.map(|r| r.status().as_u16()) });
    tokio::time::sleep(Duration::from_millis(200)).await;
    signal(&served.process.0, libc::SIGTERM);
    assert_eq!(in_flight.await.unwrap().unwrap(), 200);
    let status = tokio::task::block_in_place(|| served.process.0.wait()).unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn serve_refuses_an_invalid_config_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    std::fs::write(
        &path,
        "[[route]]\nname = \"r\"\npath = \"/\"\nupstream = \"nowhere\"\nauth = [\"none\"]\n",
    )
    .unwrap();
    let stderr = refused("serve", &path);
    assert!(
        stderr.contains("route[0].upstream: no upstream named \"nowhere\""),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_serves_the_demo_api_and_stops_on_ctrl_c() {
    let mut quickstart = Process(
        bin()
            .args([
                "quickstart",
                "--listen",
                "127.0.0.1:0",
                "--admin",
                "127.0.0.1:0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let child = &mut quickstart.0;
    let stdout = child.stdout.take().unwrap();
    let (gateway, admin) = tokio::task::block_in_place(|| wait_ready(child));
    // The demo keys are printed before the ready line.
    let mut lines = BufReader::new(stdout).lines();
    let mut reader_key = String::new();
    let mut narrow_key = String::new();
    let mut printed = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(key) = line.trim().strip_prefix("demo key (orders:read)") {
            reader_key = key.trim().to_owned();
        }
        if let Some(key) = line.trim().strip_prefix("demo key (no scopes)") {
            narrow_key = key.trim().to_owned();
        }
        let done = line.starts_with("Access log lines follow");
        printed.push(line);
        if done {
            break;
        }
    }
    let printed = printed.join("\n");
    // Keep draining stdout so the child never blocks on a full pipe.
    let drained = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<String>>());
    let c = client();
    let response = c
        .get(format!("{gateway}/orders/1"))
        .bearer_auth(&reader_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(!response.headers().contains_key("server"));
    assert!(!response.headers().contains_key("x-powered-by"));
    let order: Value = response.json().await.unwrap();
    assert_eq!(order["id"], 1);
    let response = c.get(format!("{gateway}/admin")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(error_code(&response.text().await.unwrap()), "not_found");
    let response = c.get(format!("{admin}/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let no_key = c.get(format!("{gateway}/orders/1")).send().await.unwrap();
    assert_eq!(no_key.status(), 401);
    let narrow = c
        .get(format!("{gateway}/orders/1"))
        .header("x-api-key", &narrow_key)
        .send()
        .await
        .unwrap();
    assert_eq!(narrow.status(), 403);
    let response = c
        .get(format!("{gateway}/orders?id=1%27%20OR%201%3D1--"))
        .bearer_auth(&reader_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "the demo's attack line is blocked");
    // The throttling line: the burst of 5 runs out (two requests above took from it).
    let mut throttled = None;
    for _ in 0..6 {
        let response = c
            .get(format!("{gateway}/orders/1"))
            .bearer_auth(&reader_key)
            .send()
            .await
            .unwrap();
        assert!(response.headers().contains_key("ratelimit-policy"));
        if response.status() == 429 {
            throttled = Some(response);
            break;
        }
    }
    let throttled = throttled.expect("the demo's limit never answered 429");
    assert_eq!(throttled.headers()["retry-after"], "1");
    assert!(throttled.headers()["ratelimit"]
        .to_str()
        .unwrap()
        .starts_with("\"identity-1s\";r=0;"));

    signal(child, libc::SIGINT);
    let status = tokio::task::block_in_place(|| child.wait()).unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(printed.contains("curl -i"), "{printed}");
    assert!(
        printed.contains(&format!("{gateway}/orders/1")),
        "{printed}"
    );
    // The access log lines that followed are JSON.
    let logged = drained
        .join()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with('{'))
        .count();
    assert!(logged >= 2, "{printed}");
}

#[test]
fn docs_examples_are_valid() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(&docs).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (index, block) in text.split("```toml\n").skip(1).enumerate() {
            let block = block.split("```").next().unwrap();
            if !block.starts_with("# example") {
                continue;
            }
            let file = dir.path().join(format!("doc-{checked}.toml"));
            std::fs::write(&file, block).unwrap();
            let output = bin().arg("check").arg("-c").arg(&file).output().unwrap();
            assert!(
                output.status.success(),
                "{} block {index}: {}",
                path.display(),
                String::from_utf8_lossy(&output.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 1);
}

/// Runs `portcullis waf eval ARGS` with `input` on stdin.
fn waf_eval(args: &[&str], input: &[u8]) -> Output {
    let mut child = bin()
        .args(["waf", "eval"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn waf_eval_prints_a_verdict_per_line_and_a_summary() {
    let input = [
        r#"{"id":"a1","label":"attack","class":"sqli","method":"GET","path":"/","query":"id=1%27%20OR%201%3D1--","headers":{"User-Agent":"curl/8"},"body":""}"#,
        r#"{"id":"a2","label":"attack","class":"xss","method":"POST","path":"/c","query":"","headers":{"Content-Type":"application/json"},"body":"{\"t\":\"<img src=x onerror=alert(1)>\"}"}"#,
        r#"{"id":"l1","label":"legit","class":"legit","method":"GET","path":"/","query":"name=O%27Brien&plan=select+a+plan","headers":{},"body":""}"#,
    ]
    .join("\n");
    let output = waf_eval(&[], input.as_bytes());
    assert!(output.status.success());
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        (lines[0]["id"].as_str(), lines[0]["blocked"].as_bool()),
        (Some("a1"), Some(true))
    );
    assert_eq!(lines[0]["findings"][0]["class"], "sqli");
    assert_eq!(lines[1]["blocked"], true);
    assert_eq!(lines[2]["blocked"], false);
    let summary = String::from_utf8(output.stderr).unwrap();
    assert!(
        summary.contains("| attack sqli | 1 | 1 | 100.00% | |"),
        "{summary}"
    );
    assert!(
        summary.contains("| legit legit | 1 | 0 | | 100.00% |"),
        "{summary}"
    );

    // Bad input: a precise message and a non-zero exit; bad options too.
    let output = waf_eval(&[], b"{not json\n");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("line 1: not a JSON object"));
    let output = waf_eval(&["--sensitivity", "loud"], b"");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--sensitivity: \"loud\""));
}

/// Runs `portcullis ARGS -c CONFIG --json` and parses its output; panics with stderr on failure.
fn cli_json(config: &std::path::Path, args: &[&str]) -> Value {
    let output = bin()
        .args(args)
        .arg("-c")
        .arg(config)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn identities_and_keys_take_rate_limit_and_quota_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gw.toml");
    std::fs::write(
        &config,
        format!(
            "{}{}{}",
            store_block(dir.path()),
            upstream_block("a", &["127.0.0.1:3000".parse().unwrap()], ""),
            route_block("r", "/", "a", "")
        ),
    )
    .unwrap();
    let created = cli_json(
        &config,
        &[
            "identities",
            "create",
            "--name",
            "acme",
            "--rate-limit",
            "100/s",
            "--quota",
            "1000/day",
        ],
    );
    assert_eq!(created["rate_limit_override"], "100/s");
    assert_eq!(created["quota_override"], "1000/day");
    let updated = cli_json(
        &config,
        &[
            "identities",
            "update",
            "acme",
            "--rate-limit",
            "1000/h",
            "--no-quota",
        ],
    );
    assert_eq!(updated["rate_limit_override"], "1000/h");
    assert_eq!(updated["quota_override"], Value::Null);
    let shown = cli_json(&config, &["identities", "show", "acme"]);
    assert_eq!(shown, updated);
    let listed = cli_json(&config, &["identities", "list"]);
    assert_eq!(listed["items"][0]["rate_limit_override"], "1000/h");

    let key = cli_json(
        &config,
        &[
            "keys",
            "create",
            "--identity",
            "acme",
            "--rate-limit",
            "10/s",
            "--quota",
            "50000/month",
        ],
    );
    assert_eq!(key["record"]["rate_limit_override"], "10/s");
    assert_eq!(key["record"]["quota_override"], "50000/month");
    let id = key["id"].as_str().unwrap();
    let updated = cli_json(&config, &["keys", "update", id, "--no-rate-limit"]);
    assert_eq!(updated["rate_limit_override"], Value::Null);
    assert_eq!(updated["quota_override"], "50000/month");
    // The text listing shows what is set.
    let output = bin()
        .args(["keys", "list", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("  quota=50000/month"), "{text}");
    assert!(!text.contains("rate_limit="), "{text}");

    // A value the rate limiter cannot parse is refused, naming the flag.
    let output = bin()
        .args(["identities", "update", "acme", "--quota", "5/s", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--quota: unknown quota period \"s\""),
        "{stderr}"
    );
    let shown = cli_json(&config, &["identities", "show", "acme"]);
    assert_eq!(shown["quota_override"], Value::Null);
}
