//! Access log and metrics.

use serde_json::Value;

use crate::support::*;

#[tokio::test]
async fn access_log_has_one_json_line_per_request() {
    let (_a, gw) = echo_gateway("", &[("r", "/api/", "")]).await;
    let c = client();
    let posted = c
        .post(format!("{}/api/orders?token=secret", gw.http))
        .body("hello");
    assert_eq!(send_status(posted).await, 200);
    assert_eq!(status(&c, format!("{}/missing", gw.http)).await, 404);
    let log = gw.access_log(2).await;
    assert_eq!(log.len(), 2);
    let first = &log[0];
    for field in [
        "time",
        "request_id",
        "client_ip",
        "method",
        "path",
        "route",
        "status",
        "bytes_in",
        "bytes_out",
        "upstream_ms",
        "total_ms",
        "decision",
    ] {
        assert!(first.get(field).is_some(), "{field} missing in {first}");
    }
    assert_eq!(first["method"], "POST");
    assert_eq!(
        first["path"], "/api/orders",
        "no query string (it may carry secrets)"
    );
    assert_eq!(first["route"], "r");
    assert_eq!(first["status"], 200);
    assert_eq!(first["bytes_in"], 5);
    assert!(first["bytes_out"].as_u64().unwrap() > 50);
    assert!(first["upstream_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(first["decision"], "allow");
    assert_eq!(log[1]["status"], 404);
    assert_eq!(log[1]["route"], Value::Null);
    assert_eq!(log[1]["decision"], "reject");
    assert_eq!(log[1]["code"], "not_found");
}

#[tokio::test]
async fn metrics_count_requests_latency_errors_and_connections() {
    let (_a, gw) = echo_gateway("", &[("r", "/", "methods = [\"GET\"]")]).await;
    let c = client();
    for _ in 0..3 {
        assert_eq!(status(&c, format!("{}/x", gw.http)).await, 200);
    }
    assert_eq!(send_status(c.post(format!("{}/x", gw.http))).await, 405);
    let admin = client();
    assert_eq!(status(&admin, format!("{}/healthz", gw.admin)).await, 200);
    assert_eq!(status(&admin, format!("{}/readyz", gw.admin)).await, 200);
    let text = metrics(&admin, &gw).await;
    for want in [
        "portcullis_requests_total{route=\"r\",status=\"200\",decision=\"allow\"} 3",
        "portcullis_requests_total{route=\"\",status=\"405\",decision=\"reject\"} 1",
        "portcullis_request_duration_seconds_count{route=\"r\"} 3",
        "portcullis_upstream_duration_seconds_bucket{le=\"30.0\",route=\"r\"} 3",
        "# TYPE portcullis_upstream_errors counter",
        "portcullis_connections_active{scheme=\"http\"} 1",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    // No per-client labels.
    assert!(!text.contains("127.0.0.1"), "{text}");
}
