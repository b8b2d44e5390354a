//! Test support: real upstream servers, a real gateway on port 0, certificates, raw sockets.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use portcullis_config::Config;
use portcullis_proxy::Gateway;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A real HTTP/1.1 upstream that echoes what it received.
pub struct Upstream {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    /// Requests this upstream has answered so far.
    pub fn served(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub async fn start(name: &str) -> Upstream {
        Self::start_with(name, None).await
    }

    pub async fn start_tls(name: &str, pki: &Pki) -> Upstream {
        let certs = vec![rustls::pki_types::CertificateDer::from(
            pki.leaf_der.clone(),
        )];
        let key = rustls::pki_types::PrivateKeyDer::try_from(pki.leaf_key_der.clone()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        Self::start_with(
            name,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        )
        .await
    }

    async fn start_with(name: &str, tls: Option<tokio_rustls::TlsAcceptor>) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let name: Arc<str> = Arc::from(name);
        let (c, r) = (Arc::clone(&connections), Arc::clone(&requests));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let (name, r, tls) = (Arc::clone(&name), Arc::clone(&r), tls.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        r.fetch_add(1, Ordering::SeqCst);
                        let name = Arc::clone(&name);
                        async move { Ok::<_, Infallible>(echo(request, &name).await) }
                    });
                    let builder = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                    }
                });
            }
        });
        Upstream {
            addr,
            connections,
            requests,
            task,
        }
    }
}

async fn echo(request: Request<Incoming>, name: &str) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    if let Some(ms) = path.strip_prefix("/slow/") {
        let ms: u64 = ms.parse().unwrap_or(1000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in request.headers() {
        headers
            .entry(k.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let method = request.method().to_string();
    let body = Limited::new(request.into_body(), 64 << 20).collect().await;
    let body_len = body.map(|b| b.to_bytes().len()).unwrap_or(usize::MAX);
    let value = json!({
        "upstream": name,
        "method": method,
        "path": path_and_query,
        "headers": headers,
        "body_len": body_len,
    });
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    let h = response.headers_mut();
    h.insert("content-type", "application/json".parse().unwrap());
    h.insert("server", "leaky/1.2.3".parse().unwrap());
    h.insert("x-powered-by", "PHP/5.4".parse().unwrap());
    if path == "/hop" {
        h.insert("connection", "x-hop-secret".parse().unwrap());
        h.insert("x-hop-secret", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-end-to-end", "kept".parse().unwrap());
    }
    if let Some(code) = path.strip_prefix("/status/") {
        *response.status_mut() = StatusCode::from_u16(code.parse().unwrap_or(500))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    }
    response
}

/// A test CA and a leaf certificate for localhost / 127.0.0.1.
pub struct Pki {
    pub ca_pem: String,
    pub leaf_pem: String,
    pub leaf_key_pem: String,
    pub leaf_der: Vec<u8>,
    pub leaf_key_der: Vec<u8>,
}

impl Pki {
    pub fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Portcullis Test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let mut leaf_params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        leaf_params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
        Pki {
            ca_pem: ca.pem(),
            leaf_pem: leaf.pem(),
            leaf_key_pem: leaf_key.serialize_pem(),
            leaf_der: leaf.der().to_vec(),
            leaf_key_der: leaf_key.serialize_der(),
        }
    }
}

/// A gateway running in this process on ephemeral ports, from a config file in a temp dir.
pub struct TestGateway {
    pub http: String,
    pub https: Option<String>,
    pub admin: String,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub gateway: Arc<Gateway>,
    quota_store: Option<portcullis_store::Store>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestGateway {
    /// Starts a gateway. `config` is TOML without `[gateway] listen` and `[admin]`, which are
    /// added (ephemeral ports); `gateway_extra` goes into `[gateway]`.
    pub async fn start(gateway_extra: &str, config: &str) -> TestGateway {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, gateway_extra, config).await
    }

    pub async fn start_in(
        dir: tempfile::TempDir,
        gateway_extra: &str,
        config: &str,
    ) -> TestGateway {
        let text = format!(
            "[gateway]\nlisten = [\"127.0.0.1:0\"]\n{gateway_extra}\n[admin]\nlisten = \"127.0.0.1:0\"\n[log]\naccess = \"access.log\"\n{config}"
        );
        let config_path = dir.path().join("portcullis.toml");
        std::fs::write(&config_path, text).unwrap();
        let config = match Config::load(&config_path) {
            Ok(config) => config,
            Err(errors) => panic!("test config refused:\n{errors}"),
        };
        let mut admin_store = None;
        let credentials: Arc<dyn portcullis_core::CredentialLookup> = match &config.store {
            None => Arc::new(portcullis_core::NoCredentials),
            Some(store) => {
                let hasher =
                    portcullis_store::KeyHasher::new(store.pepper.expose().as_bytes()).unwrap();
                let store = portcullis_store::Store::open(store.url.expose(), hasher)
                    .await
                    .unwrap();
                let index = portcullis_proxy::keys::KeyIndex::load(&store)
                    .await
                    .unwrap();
                admin_store = Some(store.clone());
                // The follower and the usage writer live as long as the test's runtime.
                drop(index.write_usage(store.clone(), std::time::Duration::from_millis(100)));
                drop(index.follow(store));
                index
            }
        };
        let gateway =
            Gateway::with_credentials(config, Some(config_path.clone()), credentials).unwrap();
        if let Some(store) = &admin_store {
            portcullis_proxy::quotas::load(&gateway.limits, store)
                .await
                .unwrap();
            drop(portcullis_proxy::quotas::persist(
                Arc::clone(&gateway.limits),
                store.clone(),
                Duration::from_millis(100),
            ));
        }
        let quota_store = admin_store.clone();
        let listeners = portcullis_proxy::bind(&gateway).await.unwrap();
        let mut http = String::new();
        let mut https = None;
        for listener in &listeners {
            let addr = listener.local_addr().unwrap();
            if listener.tls {
                https = Some(format!("https://localhost:{}", addr.port()));
            } else {
                http = format!("http://{addr}");
            }
        }
        let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = format!("http://{}", admin_listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let g = Arc::clone(&gateway);
        let task = tokio::spawn(async move {
            let (admin_stop_tx, admin_stop_rx) = oneshot::channel::<()>();
            let admin_task = tokio::spawn(portcullis_admin::serve(
                admin_listener,
                Arc::clone(&g),
                admin_store,
                async move {
                    let _ = admin_stop_rx.await;
                },
            ));
            portcullis_proxy::serve(g, listeners, async move {
                let _ = stopped.await;
            })
            .await;
            let _ = admin_stop_tx.send(());
            let _ = admin_task.await;
        });
        TestGateway {
            http,
            https,
            admin,
            dir,
            config_path,
            gateway,
            quota_store,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Rewrites the config file (same listeners) for a reload.
    pub fn rewrite(&self, gateway_extra: &str, config: &str) {
        let text = format!(
            "[gateway]\nlisten = [\"127.0.0.1:0\"]\n{gateway_extra}\n[admin]\nlisten = \"127.0.0.1:0\"\n[log]\naccess = \"access.log\"\n{config}"
        );
        std::fs::write(&self.config_path, text).unwrap();
    }

    /// Stops accepting, drains, and waits for the gateway to finish.
    pub async fn shutdown(mut self) {
        self.stop_now().await;
    }

    /// Shuts down like `serve` does, and hands back the directory (store, config) for a
    /// restart.
    pub async fn shutdown_keep_dir(mut self) -> tempfile::TempDir {
        self.stop_now().await;
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    async fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(store) = self.quota_store.take() {
            portcullis_proxy::quotas::flush(&self.gateway.limits, &store)
                .await
                .unwrap();
        }
    }

    /// The access log lines written so far, waiting (bounded) until at least `n` are there.
    pub async fn access_log(&self, n: usize) -> Vec<Value> {
        let path = self.dir.path().join("access.log");
        let mut lines = Vec::new();
        for _ in 0..100 {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            lines = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            if lines.len() >= n {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{} access log line(s) after 2 s, expected {n}", lines.len());
    }

    /// Asks the admin API to reload the config file.
    pub async fn reload(&self) -> reqwest::Response {
        client()
            .post(format!("{}/admin/reload", self.admin))
            .send()
            .await
            .unwrap()
    }

    pub fn addr(&self) -> SocketAddr {
        self.http.trim_start_matches("http://").parse().unwrap()
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A `[store]` section with a SQLite file and a pepper file in `dir`.
pub fn store_block(dir: &std::path::Path) -> String {
    std::fs::write(dir.join("pepper"), "test-pepper-0123456789abcdef").unwrap();
    format!(
        "[store]\nurl = \"sqlite://{}\"\npepper = \"file:{}\"\n",
        dir.join("keys.db").display(),
        dir.join("pepper").display()
    )
}

/// Opens the store of a test gateway directory (a second handle, like the CLI's).
pub async fn open_store(dir: &std::path::Path) -> portcullis_store::Store {
    let hasher = portcullis_store::KeyHasher::new(b"test-pepper-0123456789abcdef").unwrap();
    portcullis_store::Store::open(
        &format!("sqlite://{}", dir.join("keys.db").display()),
        hasher,
    )
    .await
    .unwrap()
}

/// An address where nothing listens (a port that was free a moment ago).
pub fn dead_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// An upstream + route block for tests.
pub fn upstream_block(name: &str, targets: &[SocketAddr], extra: &str) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "[[upstream]]\nname = \"{name}\"\ntargets = [{}]\n{extra}\n",
        targets.join(", ")
    )
}

/// A public route (`auth = ["none"]`); a path ending in `/` is a prefix.
pub fn route_block(name: &str, path: &str, upstream: &str, extra: &str) -> String {
    route_with_auth(name, path, upstream, "none", extra)
}

/// A route that asks for an API key.
pub fn api_key_route(name: &str, path: &str, upstream: &str, extra: &str) -> String {
    route_with_auth(name, path, upstream, "api_key", extra)
}

fn route_with_auth(name: &str, path: &str, upstream: &str, auth: &str, extra: &str) -> String {
    let key = if path.ends_with('/') {
        "path_prefix"
    } else {
        "path"
    };
    format!("[[route]]\nname = \"{name}\"\n{key} = \"{path}\"\nupstream = \"{upstream}\"\nauth = [\"{auth}\"]\n{extra}\n")
}

/// Starts an echo upstream named "a" and a gateway whose public routes, given as
/// (name, path, extra lines), all lead to it. `gateway_extra` goes into `[gateway]`.
pub async fn echo_gateway(
    gateway_extra: &str,
    routes: &[(&str, &str, &str)],
) -> (Upstream, TestGateway) {
    echo_gateway_with(gateway_extra, routes, "").await
}

/// Like [`echo_gateway`], with more config (a `[limits]` section, say) after the routes.
pub async fn echo_gateway_with(
    gateway_extra: &str,
    routes: &[(&str, &str, &str)],
    more: &str,
) -> (Upstream, TestGateway) {
    let a = Upstream::start("a").await;
    let mut config = upstream_block("a", &[a.addr], "");
    for (name, path, extra) in routes {
        config.push_str(&route_block(name, path, "a", extra));
    }
    config.push_str(more);
    let gw = TestGateway::start(gateway_extra, &config).await;
    (a, gw)
}

/// Starts a gateway with a SQLite store in `dir` (the `[store]` section is added to `config`)
/// and opens a second handle on that store, like the CLI's.
pub async fn gateway_with_store(
    dir: tempfile::TempDir,
    config: &str,
) -> (TestGateway, portcullis_store::Store) {
    let store_dir = dir.path().to_path_buf();
    let config = format!("{}{config}", store_block(&store_dir));
    let gw = TestGateway::start_in(dir, "", &config).await;
    let store = open_store(&store_dir).await;
    (gw, store)
}

/// Issues a key as `new` describes, creating its identity first when the store has none by
/// that name; returns (key id, plaintext).
pub async fn issue_key(
    store: &portcullis_store::Store,
    new: portcullis_store::NewKey,
) -> (String, String) {
    let actor = portcullis_store::Actor::new("test");
    if store.get_identity(&new.identity).await.is_err() {
        store
            .create_identity(portcullis_store::NewIdentity::named(&new.identity), &actor)
            .await
            .unwrap();
    }
    let (record, plaintext) = store.create_key(new, &actor).await.unwrap();
    (record.id, plaintext.expose().to_owned())
}

/// A key of `identity` with `scopes`; see [`issue_key`].
pub async fn new_key(
    store: &portcullis_store::Store,
    identity: &str,
    scopes: &[&str],
) -> (String, String) {
    let mut new = portcullis_store::NewKey::for_identity(identity);
    new.scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
    issue_key(store, new).await
}

/// GETs a URL and parses the JSON answer (the echo upstream's, usually).
pub async fn get_json(client: &reqwest::Client, url: impl reqwest::IntoUrl) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// The gateway's Prometheus text.
pub async fn metrics(client: &reqwest::Client, gw: &TestGateway) -> String {
    client
        .get(format!("{}/metrics", gw.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// GETs a URL; the response, whatever its status.
pub async fn get(client: &reqwest::Client, url: impl reqwest::IntoUrl) -> reqwest::Response {
    client.get(url).send().await.unwrap()
}

/// Sends a request, reads the whole answer, and returns its status.
pub async fn send_status(request: reqwest::RequestBuilder) -> u16 {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    response.bytes().await.unwrap();
    status
}

/// GETs a URL and returns the status.
pub async fn status(client: &reqwest::Client, url: impl reqwest::IntoUrl) -> u16 {
    send_status(client.get(url)).await
}

/// GETs a URL with `key` as a bearer token and returns the status.
pub async fn status_with_key(client: &reqwest::Client, url: &str, key: &str) -> u16 {
    send_status(client.get(url).bearer_auth(key)).await
}

/// Sends a request and parses the JSON answer.
pub async fn send_json(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// Waits (bounded, 2 s) until a GET with `key` as a bearer token answers `want`: keys and
/// revocations reach a running gateway through the store's change feed, not at once.
pub async fn until_status(client: &reqwest::Client, url: &str, key: &str, want: u16) -> bool {
    poll_until(100, Duration::from_millis(20), async || {
        status_with_key(client, url, key).await == want
    })
    .await
}

/// Checks a gateway refusal: its status and the code in its JSON error body; returns the body.
pub async fn assert_refused(response: reqwest::Response, status: u16, code: &str) -> String {
    assert_eq!(response.status(), status);
    let body = response.text().await.unwrap();
    assert_eq!(error_code(&body), code, "{body}");
    body
}

/// Calls `check` every `pause` until it returns true, at most `tries` times; whether it did.
/// Callers assert the result: a poll that timed out is a failure, not a pass.
pub async fn poll_until(
    tries: usize,
    pause: Duration,
    mut check: impl AsyncFnMut() -> bool,
) -> bool {
    for _ in 0..tries {
        if check().await {
            return true;
        }
        tokio::time::sleep(pause).await;
    }
    false
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Sends raw bytes, returns everything the server sends until it closes (bounded wait).
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    read_all(&mut stream, Duration::from_secs(5)).await
}

pub async fn read_all(stream: &mut TcpStream, limit: Duration) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(limit, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The JSON error body of a gateway response, checked for the one shape.
pub fn error_code(body: &str) -> String {
    let json_start = body.find('{').unwrap_or(0);
    let value: Value =
        serde_json::from_str(&body[json_start..]).unwrap_or_else(|_| panic!("not JSON: {body}"));
    let error = value["error"]
        .as_object()
        .unwrap_or_else(|| panic!("not the error shape: {body}"));
    assert_eq!(error.len(), 3, "{body}");
    assert!(
        error["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{body}"
    );
    assert!(error["message"].as_str().is_some(), "{body}");
    error["code"].as_str().unwrap().to_owned()
}

/// The `portcullis` binary built for these tests.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
}

/// Sends a signal to a child process.
pub fn signal(child: &Child, signal: i32) {
    let pid = i32::try_from(child.id()).unwrap();
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// Reads stderr lines until the admin address is printed; returns (gateway URL, admin URL).
pub fn wait_ready(child: &mut Child) -> (String, String) {
    let stderr = child.stderr.take().unwrap();
    let mut reader = BufReader::new(stderr);
    let mut gateway = String::new();
    let mut line = String::new();
    for _ in 0..200 {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("process exited before it was ready");
        }
        if let Some(url) = line.trim().strip_prefix("portcullis: listening on ") {
            gateway = url.to_owned();
        }
        if let Some(url) = line.trim().strip_prefix("portcullis: admin on ") {
            let admin = url.to_owned();
            // Keep draining stderr so the child never blocks on a full pipe.
            std::thread::spawn(move || for _ in reader.lines() {});
            return (gateway, admin);
        }
    }
    panic!("no ready line");
}

/// A child process that is killed (and reaped) when the test ends, passing or not.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `portcullis serve -c CONFIG` process, ready: its gateway and admin URLs.
pub struct Served {
    pub process: Process,
    pub gateway: String,
    pub admin: String,
}

impl Served {
    /// Starts `portcullis serve` and waits (blocking this thread; call it from
    /// `block_in_place` on a multi-thread runtime) until it prints its addresses.
    pub fn start(config: &std::path::Path) -> Served {
        let child = bin()
            .arg("serve")
            .arg("-c")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut process = Process(child);
        let (gateway, admin) = wait_ready(&mut process.0);
        Served {
            process,
            gateway,
            admin,
        }
    }
}
