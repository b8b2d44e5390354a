#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use super::*;

const MINIMAL: &str = r#"
[[upstream]]
name = "orders"
targets = ["127.0.0.1:3000"]

[[route]]
name = "get-order"
methods = ["GET"]
path = "/orders/{order_id}"
upstream = "orders"
auth = ["none"]
"#;

fn errors_of(text: &str) -> Vec<String> {
    match Config::from_toml(text, Path::new(".")) {
        Ok(_) => panic!("config was accepted"),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn minimal_config_compiles_with_defaults() {
    let config = Config::from_toml(MINIMAL, Path::new(".")).unwrap();
    assert_eq!(
        config.gateway.listen,
        vec!["127.0.0.1:8080".parse().unwrap()]
    );
    assert_eq!(config.gateway.max_header_bytes, 16384);
    assert_eq!(config.gateway.max_body_bytes, 1 << 20);
    assert_eq!(config.admin.listen, "127.0.0.1:9901".parse().unwrap());
    assert_eq!(config.log.access, AccessLog::Stdout);
    assert_eq!(config.routes[0].upstream, 0);
    assert_eq!(
        config.routes[0].path,
        PathPattern::Exact(vec![
            Segment::Literal("orders".into()),
            Segment::Param("order_id".into())
        ])
    );
}

#[test]
fn every_error_is_reported_with_its_path() {
    let errors = errors_of(
        r#"
[gateway]
listen = ["127.0.0.1:80800", "nonsense"]
lisen = 3
max_body_bytes = "1 parsec"

[[upstream]]
name = "orders"
targets = []
color = "blue"

[[route]]
name = "a"
path = "/orders/{id}"
upstream = "ordrs"
auth = ["none"]

[[route]]
name = "a"
path = "orders"
upstream = "orders"

[[route]]
name = "c"
path = "/x"
path_prefix = "/y"
upstream = "orders"
auth = ["jwt"]
methods = ["get", "FETCH IT"]
"#,
    );
    let expected = [
        "gateway.lisen: unknown key",
        "upstream[0].color: unknown key",
        "gateway.listen[0]: \"127.0.0.1:80800\" is not an address",
        "gateway.listen[1]: \"nonsense\" is not an address",
        "gateway.max_body_bytes: unknown size unit",
        "upstream[0].targets: empty",
        "route[0].upstream: no upstream named \"ordrs\" (known: orders)",
        "route[1].name: \"a\" is already the name of route[0]",
        "route[1].path: \"orders\" must start with '/'",
        "route[1].auth: missing",
        "route[2].path: give either path or path_prefix",
        "route[2].auth[0]: unknown authentication method \"jwt\"",
        "route[2].methods[0]: \"get\": write methods in upper case",
        "route[2].methods[1]: \"FETCH IT\" is not an HTTP method",
    ];
    for want in expected {
        assert!(
            errors.iter().any(|e| e.starts_with(want)),
            "missing error {want:?} in {errors:#?}"
        );
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
}

#[test]
fn invalid_toml_is_refused_with_its_position() {
    let errors = errors_of("[gateway\nlisten = 1");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("invalid TOML: "), "{errors:?}");
    assert!(errors[0].contains("line 1"), "{errors:?}");
}

#[test]
fn wrong_type_is_refused() {
    let errors = errors_of("[gateway]\nlisten = 5\n");
    assert!(errors[0].contains("invalid type"), "{errors:?}");
}

#[test]
fn missing_cert_file_is_a_precise_error() {
    let errors = errors_of(
        r#"
[gateway.tls]
listen = ["127.0.0.1:8443"]
cert = "/nonexistent/cert.pem"
key = "/nonexistent/key.pem"
"#,
    );
    assert_eq!(
        errors,
        vec![
            "gateway.tls.cert: cannot read \"/nonexistent/cert.pem\": No such file or directory (os error 2)",
            "gateway.tls.key: cannot read \"/nonexistent/key.pem\": No such file or directory (os error 2)",
        ]
    );
}

#[test]
fn duplicate_routes_are_refused() {
    let errors = errors_of(&format!(
        "{MINIMAL}\n[[route]]\nname = \"again\"\nmethods = [\"POST\", \"GET\"]\npath = \"/orders/{{order_id}}\"\nupstream = \"orders\"\nauth = [\"none\"]\n"
    ));
    assert_eq!(
        errors,
        vec!["route[1].path: matches the same host, path and methods as route[0] (\"get-order\")"]
    );
}

#[test]
fn public_admin_listener_needs_a_token() {
    let errors = errors_of(&format!("{MINIMAL}\n[admin]\nlisten = \"0.0.0.0:9901\"\n"));
    assert!(
        errors[0].starts_with("admin.listen: 0.0.0.0:9901 is reachable"),
        "{errors:?}"
    );
    let with_token = format!("{MINIMAL}\n[admin]\nlisten = \"0.0.0.0:9901\"\ntoken = \"s3cret\"\n");
    let config = Config::from_toml(&with_token, Path::new(".")).unwrap();
    assert_eq!(format!("{:?}", config.admin.token), "Some([redacted])");
}

#[test]
fn templates_are_checked() {
    for (bad, why) in [
        ("/orders/{id}/{id}", "appears twice"),
        ("/orders/x{id}", "whole segment"),
        ("/orders//x", "empty"),
        ("/orders/../x", "not allowed"),
        ("/orders/{1d}", "not a parameter name"),
        ("/a%20b", "decoded"),
    ] {
        let text = MINIMAL.replace("/orders/{order_id}", bad);
        let errors = errors_of(&text);
        assert!(errors[0].contains(why), "{bad}: {errors:?}");
    }
}

#[test]
fn hosts_and_prefixes() {
    let text = MINIMAL.replace(
        "path = \"/orders/{order_id}\"",
        "path_prefix = \"/static/\"\nhost = \"*.Example.com\"",
    );
    let config = Config::from_toml(&text, Path::new(".")).unwrap();
    assert_eq!(
        config.routes[0].host,
        Some(HostPattern::Suffix(".example.com".into()))
    );
    assert_eq!(
        config.routes[0].path,
        PathPattern::Prefix("/static/".into())
    );
    let errors = errors_of(&MINIMAL.replace("methods", "host = \"a:80\"\nmethods"));
    assert!(errors[0].starts_with("route[0].host:"), "{errors:?}");
}

#[test]
fn limits_compile_with_defaults_names_and_overrides() {
    let text = format!(
        "{MINIMAL}limit = [{{ rate = \"10/s\", burst = 20 }}, {{ rate = \"1000/hour\", by = \"header:x-tenant\" }}]\nquota = {{ requests = 100000, per = \"month\", by = \"route\", mode = \"monitor\" }}\nconcurrency = {{ max = 8 }}\n[limits]\nbackend = \"redis://127.0.0.1:6379/2\"\non_backend_error = \"deny\"\ntimeout = \"20ms\"\nglobal = {{ rate = \"5000/s\" }}\nmax_connections_per_ip = 64\n"
    );
    let config = Config::from_toml(&text, Path::new(".")).unwrap();
    let limits = &config.routes[0].rate_limits;
    assert_eq!(limits.limits[0].name, "ip-1s");
    assert_eq!(
        limits.limits[0].by,
        LimitKey::Ip,
        "public routes default to ip"
    );
    assert_eq!(limits.limits[0].burst, 20);
    assert_eq!(limits.limits[1].name, "header-1h");
    assert_eq!(
        limits.limits[1].burst, 1000,
        "burst defaults to the rate's count"
    );
    assert_eq!(
        limits.limits[1].by,
        LimitKey::Header(http::HeaderName::from_static("x-tenant"))
    );
    assert_eq!(limits.quotas[0].name, "route-month");
    assert_eq!(limits.quotas[0].mode, FilterMode::Monitor);
    assert_eq!(limits.concurrency.as_ref().unwrap().max, 8);
    assert_eq!(limits.concurrency.as_ref().unwrap().by, LimitKey::Route);
    assert!(matches!(config.limits.backend, LimitBackend::Redis(_)));
    assert_eq!(config.limits.on_backend_error, FallbackMode::Deny);
    assert_eq!(config.limits.timeout, std::time::Duration::from_millis(20));
    assert_eq!(config.limits.global.unwrap().1, 5000);
    assert_eq!(config.limits.max_connections_per_ip, Some(64));
    // The backend URL may carry a password: it never prints.
    assert!(!format!("{:?}", config.limits).contains("6379"));
}

#[test]
fn bad_limits_are_reported_with_their_paths() {
    let text = format!(
        "{MINIMAL}limit = [{{ rate = \"10/week\", colour = 1 }}, {{ rate = \"5/s\", burst = 0, by = \"identity\" }}]\nquota = {{ requests = 0, per = \"year\" }}\nconcurrency = {{ by = \"everyone\" }}\n[limits]\nbackend = \"memcached://x\"\non_backend_error = \"panic\"\ntimeout = \"10s\"\nmax_connections_per_ip = 0\n"
    );
    let errors = errors_of(&text).join("\n");
    for expected in [
        "route[0].limit[0].rate: unknown rate unit \"week\"",
        "route[0].limit[0].colour: unknown key",
        "route[0].limit[1].burst: must be between 1 and 1000000000",
        "route[0].limit[1].by: \"identity\" needs an authenticated caller",
        "route[0].quota.requests: must be at least 1",
        "route[0].quota.per: unknown quota period \"year\"",
        "route[0].concurrency.by: \"everyone\" is not a bucket key",
        "route[0].concurrency.max: missing",
        "limits.backend: use \"local\" or a \"redis://host:port[/db]\" URL",
        "limits.on_backend_error: \"panic\" is not a fallback",
        "limits.timeout: at most 5s",
        "limits.max_connections_per_ip: must be between 1",
    ] {
        assert!(
            errors.contains(expected),
            "missing {expected:?} in:\n{errors}"
        );
    }
}

#[test]
fn empty_limit_lists_are_refused() {
    let errors = errors_of(&format!("{MINIMAL}limit = []\nquota = []\n")).join("\n");
    for expected in [
        "route[0].limit: an empty list: remove `limit` or give it a table",
        "route[0].quota: an empty list: remove `quota` or give it a table",
    ] {
        assert!(
            errors.contains(expected),
            "missing {expected:?} in:\n{errors}"
        );
    }
}
