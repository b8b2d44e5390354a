//! HTTPS listeners: rustls, TLS 1.2 and 1.3, ALPN h2 and http/1.1, HSTS.

use serde_json::Value;

use crate::support::*;

async fn tls_gateway() -> (Upstream, TestGateway, Pki) {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), &pki.leaf_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &pki.leaf_key_pem).unwrap();
    let a = Upstream::start("a").await;
    let config = [
        upstream_block("a", &[a.addr], ""),
        route_block("r", "/", "a", ""),
    ]
    .concat();
    let gw = TestGateway::start_in(
        dir,
        "[gateway.tls]\nlisten = [\"127.0.0.1:0\"]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n",
        &config,
    )
    .await;
    (a, gw, pki)
}

fn tls_client(pki: &Pki) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
}

#[tokio::test]
async fn https_with_h2_and_http1_over_alpn() {
    let (_a, gw, pki) = tls_gateway().await;
    let https = gw.https.clone().unwrap();

    let h2 = tls_client(&pki).build().unwrap();
    let response = h2.get(format!("{https}/x")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echo["headers"]["x-forwarded-proto"][0], "https");

    let h1 = tls_client(&pki).http1_only().build().unwrap();
    for _ in 0..3 {
        let response = h1.get(format!("{https}/x")).send().await.unwrap();
        assert_eq!(response.version(), reqwest::Version::HTTP_11);
        assert_eq!(response.status(), 200);
    }
    // Gateway errors over TLS carry HSTS too.
    let response = h1.get(format!("{https}/a%2Fb")).send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.headers().contains_key("strict-transport-security"));

    // Plain listener: no HSTS.
    let response = client().get(format!("{}/x", gw.http)).send().await.unwrap();
    assert!(!response.headers().contains_key("strict-transport-security"));
}

#[tokio::test]
async fn tls12_and_tls13_are_accepted() {
    let (_a, gw, pki) = tls_gateway().await;
    let https = gw.https.clone().unwrap();
    for version in [
        reqwest::tls::Version::TLS_1_2,
        reqwest::tls::Version::TLS_1_3,
    ] {
        let c = tls_client(&pki)
            .min_tls_version(version)
            .max_tls_version(version)
            .build()
            .unwrap();
        let response = c.get(format!("{https}/x")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{version:?}");
    }
}

#[tokio::test]
async fn untrusted_or_plaintext_clients_do_not_get_through() {
    let (a, gw, _pki) = tls_gateway().await;
    let https = gw.https.clone().unwrap();
    // A client that does not trust the gateway's CA fails the handshake.
    let c = reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    assert!(c.get(format!("{https}/x")).send().await.is_err());
    // Plaintext HTTP on the TLS port gets no HTTP response.
    let port = https.rsplit(':').next().unwrap();
    let text = raw(
        format!("127.0.0.1:{port}").parse().unwrap(),
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
    )
    .await;
    assert!(!text.contains("HTTP/"), "{text}");
    assert_eq!(a.served(), 0);
}
