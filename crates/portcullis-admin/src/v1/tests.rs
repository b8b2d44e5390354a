//! The admin API in process (`oneshot`, no sockets), against a real SQLite store in a temp dir
//! and a real gateway whose key index is loaded from that store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use portcullis_config::Config;
use portcullis_core::CredentialLookup;
use portcullis_proxy::keys::KeyIndex;
use portcullis_proxy::Gateway;
use portcullis_store::{Actor, KeyHasher, NewIdentity, NewKey, Store};
use serde_json::{json, Value};
use tower::ServiceExt;

const CLIENT: &str = "203.0.113.7:4242";
const STATIC_TOKEN: &str = "break-glass-token-0123456789";

const CONFIG: &str = r#"
[admin]
listen = "127.0.0.1:0"
{token}

[log]
access = "off"

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

struct Harness {
    _dir: tempfile::TempDir,
    store: Store,
    index: Arc<KeyIndex>,
    app: Router,
    /// Plaintext of a key with role `admin`, created through the store.
    admin_key: String,
    admin_key_id: String,
    /// Plaintext of a valid key without role `admin`.
    user_key: String,
}

fn config(token: Option<&str>) -> Config {
    let token = token
        .map(|t| format!("token = \"{t}\""))
        .unwrap_or_default();
    Config::from_toml(&CONFIG.replace("{token}", &token), Path::new(".")).unwrap()
}

async fn harness() -> Harness {
    harness_with(None).await
}

async fn harness_with(token: Option<&str>) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("keys.db").display());
    let hasher = KeyHasher::new(b"test-pepper-0123456789abcdef").unwrap();
    let store = Store::open(&url, hasher).await.unwrap();
    let bootstrap = Actor::new("cli:test");
    store
        .create_identity(NewIdentity::named("ops"), &bootstrap)
        .await
        .unwrap();
    let mut admin = NewKey::for_identity("ops");
    admin.roles = vec!["admin".into()];
    let (admin_record, admin_key) = store.create_key(admin, &bootstrap).await.unwrap();
    let mut user = NewKey::for_identity("ops");
    user.roles = vec!["reader".into()];
    let (_, user_key) = store.create_key(user, &bootstrap).await.unwrap();
    let index = KeyIndex::load(&store).await.unwrap();
    let gateway = Gateway::with_credentials(config(token), None, index.clone()).unwrap();
    let app = crate::router(gateway, Some(store.clone()))
        .layer(MockConnectInfo(CLIENT.parse::<SocketAddr>().unwrap()));
    Harness {
        _dir: dir,
        store,
        index,
        app,
        admin_key: admin_key.into_exposed(),
        admin_key_id: admin_record.id,
        user_key: user_key.into_exposed(),
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

impl Reply {
    fn field_errors(&self) -> Vec<(String, String)> {
        self.body["error"]["details"]
            .as_array()
            .unwrap_or_else(|| panic!("no details in {}", self.text))
            .iter()
            .map(|d| {
                (
                    d["field"].as_str().unwrap().to_owned(),
                    d["message"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn fields(&self) -> Vec<String> {
        self.field_errors().into_iter().map(|(f, _)| f).collect()
    }

    /// A string field of the JSON body.
    fn string(&self, field: &str) -> String {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("no string {field:?} in {}", self.text))
            .to_owned()
    }
}

async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::Null)
    };
    Reply {
        status,
        headers,
        body,
        text,
    }
}

fn request(method: Method, uri: &str, bearer: Option<&str>) -> axum::http::request::Builder {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(key) = bearer {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    builder
}

impl Harness {
    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> Reply {
        self.call_as(&self.admin_key.clone(), method, uri, body)
            .await
    }

    async fn get(&self, uri: &str) -> Reply {
        self.call(Method::GET, uri, None).await
    }

    /// `POST /admin/v1/keys` with `body`, which must answer 201.
    async fn create_key(&self, body: Value) -> Reply {
        let reply = self.call(Method::POST, "/admin/v1/keys", Some(body)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply
    }

    async fn call_as(&self, key: &str, method: Method, uri: &str, body: Option<Value>) -> Reply {
        let builder = request(method, uri, Some(key));
        let request = match body {
            Some(body) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => builder.body(Body::empty()),
        };
        send(&self.app, request.unwrap()).await
    }

    async fn raw(
        &self,
        method: Method,
        uri: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> Reply {
        let mut builder = request(method, uri, Some(&self.admin_key));
        if let Some(content_type) = content_type {
            builder = builder.header(header::CONTENT_TYPE, content_type);
        }
        send(
            &self.app,
            builder.body(Body::from(body.to_owned())).unwrap(),
        )
        .await
    }
}

fn assert_error(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(reply.body["error"]["code"], code, "{}", reply.text);
    assert!(reply.body["error"]["message"].is_string(), "{}", reply.text);
    assert!(reply.body["error"]["details"].is_array(), "{}", reply.text);
}

// ----- authentication -----------------------------------------------------------------------

#[tokio::test]
async fn requests_without_a_valid_admin_key_get_401_with_www_authenticate() {
    let h = harness().await;
    let garbage = "pc_live_notakeyatall_000000";
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("no header", vec![]),
        ("garbage", vec![format!("Bearer {garbage}")]),
        ("empty bearer", vec!["Bearer ".to_owned()]),
        ("basic scheme", vec![format!("Basic {}", h.admin_key)]),
        ("no scheme", vec![h.admin_key.clone()]),
        (
            "two headers",
            vec![
                format!("Bearer {}", h.admin_key),
                format!("Bearer {}", h.admin_key),
            ],
        ),
    ];
    for (name, values) in cases {
        let mut builder = Request::get("/admin/v1/identities");
        for value in &values {
            builder = builder.header(header::AUTHORIZATION, value);
        }
        let reply = send(&h.app, builder.body(Body::empty()).unwrap()).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(reply.headers[header::WWW_AUTHENTICATE], "Bearer", "{name}");
    }
    // The scheme is case-insensitive.
    let reply = send(
        &h.app,
        Request::get("/admin/v1/identities")
            .header(header::AUTHORIZATION, format!("bearer {}", h.admin_key))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn a_revoked_admin_key_gets_401() {
    let h = harness().await;
    // A second admin key revokes the first through the API.
    let created = h
        .create_key(json!({"identity": "ops", "roles": ["admin"]}))
        .await;
    let second = created.string("key");
    h.index.refresh(&h.store).await.unwrap();
    let path = format!("/admin/v1/keys/{}/revoke", h.admin_key_id);
    let reply = h.call_as(&second, Method::POST, &path, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    h.index.refresh(&h.store).await.unwrap();
    let reply = h.get("/admin/v1/identities").await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn a_valid_key_without_the_admin_role_gets_403() {
    let h = harness().await;
    for (method, uri) in [
        (Method::GET, "/admin/v1/identities"),
        (Method::GET, "/admin/v1/keys"),
        (Method::GET, "/admin/v1/audit"),
        (Method::POST, "/admin/v1/keys/key_0000000000000000/revoke"),
    ] {
        let reply = h.call_as(&h.user_key.clone(), method, uri, None).await;
        assert_error(&reply, StatusCode::FORBIDDEN, "forbidden");
        assert!(reply.headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
    }
}

#[tokio::test]
async fn without_a_store_the_api_answers_503() {
    let gateway = Gateway::new(config(Some(STATIC_TOKEN)), None).unwrap();
    let app = crate::router(gateway, None);
    for bearer in [None, Some(STATIC_TOKEN)] {
        let reply = send(
            &app,
            request(Method::GET, "/admin/v1/keys", bearer)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_error(
            &reply,
            StatusCode::SERVICE_UNAVAILABLE,
            "store_not_configured",
        );
        assert!(reply.text.contains("[store]"), "{}", reply.text);
    }
    // The description of the API does not need the store.
    let reply = send(
        &app,
        Request::get("/admin/v1/openapi.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn the_static_token_is_a_break_glass_credential_audited_as_admin_token() {
    let h = harness_with(Some(STATIC_TOKEN)).await;
    let reply = h
        .call_as(
            STATIC_TOKEN,
            Method::POST,
            "/admin/v1/identities",
            Some(json!({"name": "glass"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let id = reply.string("id");
    let audit = h.get(&format!("/admin/v1/audit?target={id}")).await;
    assert_eq!(audit.body["items"][0]["actor"], "admin:token");
    // A near miss is not the token.
    let reply = h
        .call_as(
            &format!("{STATIC_TOKEN}x"),
            Method::GET,
            "/admin/v1/identities",
            None,
        )
        .await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn reload_keeps_its_token_and_also_accepts_admin_keys() {
    let h = harness_with(Some(STATIC_TOKEN)).await;
    // The test gateway has no config file: an authorised reload answers 409 no_config_file.
    for (key, status) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("wrong"), StatusCode::UNAUTHORIZED),
        (Some(h.user_key.as_str()), StatusCode::FORBIDDEN),
        (Some(STATIC_TOKEN), StatusCode::CONFLICT),
        (Some(h.admin_key.as_str()), StatusCode::CONFLICT),
    ] {
        let reply = send(
            &h.app,
            request(Method::POST, "/admin/reload", key)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status, status, "{key:?}: {}", reply.text);
    }
    // Without a configured token, reload stays open (loopback listener), as before.
    let open = harness().await;
    let reply = send(
        &open.app,
        Request::post("/admin/reload").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
}

#[tokio::test]
async fn health_readiness_and_metrics_stay_open() {
    let h = harness_with(Some(STATIC_TOKEN)).await;
    for uri in ["/healthz", "/readyz", "/metrics"] {
        let reply = send(&h.app, Request::get(uri).body(Body::empty()).unwrap()).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}");
    }
}

// ----- lifecycle ----------------------------------------------------------------------------

#[tokio::test]
async fn full_lifecycle_through_the_api_shows_plaintext_only_on_create_and_rotate() {
    let h = harness().await;
    let mut bodies = Vec::new();

    // Identity: create, duplicate, show by name and id, update, list.
    let reply = h
        .call(
            Method::POST,
            "/admin/v1/identities",
            Some(json!({"name": "acme", "metadata": {"tier": "gold"}, "roles": ["customer"]})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let identity_id = reply.string("id");
    assert_eq!(
        reply.headers[header::LOCATION],
        format!("/admin/v1/identities/{identity_id}").as_str()
    );
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
    let duplicate = h
        .call(
            Method::POST,
            "/admin/v1/identities",
            Some(json!({"name": "acme"})),
        )
        .await;
    assert_error(&duplicate, StatusCode::CONFLICT, "conflict");
    let by_name = h.get("/admin/v1/identities/acme").await;
    let by_id = h.get(&format!("/admin/v1/identities/{identity_id}")).await;
    assert_eq!(by_name.status, StatusCode::OK);
    assert_eq!(by_name.body, by_id.body);
    assert_eq!(by_name.body["metadata"]["tier"], "gold");
    let updated = h
        .call(
            Method::PATCH,
            "/admin/v1/identities/acme",
            Some(json!({"roles": ["customer", "beta"]})),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text);
    assert_eq!(updated.body["roles"], json!(["customer", "beta"]));

    // Key: create (plaintext once), show and list (never the plaintext).
    let created = h
        .create_key(json!({"identity": "acme", "scopes": ["orders:read"], "env": "test"}))
        .await;
    assert_eq!(created.headers[header::CACHE_CONTROL], "no-store");
    let key_id = created.string("id");
    let plaintext = created.string("key");
    assert!(plaintext.starts_with("pc_test_"), "{plaintext}");
    assert_eq!(created.body["record"]["id"], key_id.as_str());
    assert_eq!(created.body["record"]["identity_id"], identity_id.as_str());
    assert_eq!(created.body["record"]["status"]["state"], "active");
    assert!(plaintext.starts_with(created.body["record"]["display_prefix"].as_str().unwrap()));
    // The running gateway's index accepts the new key.
    h.index.refresh(&h.store).await.unwrap();
    let principal = h.index.api_key(&plaintext).unwrap();
    assert_eq!(&*principal.key_id, key_id.as_str());

    let shown = h.get(&format!("/admin/v1/keys/{key_id}")).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(shown.body.get("key").is_none());
    assert_eq!(shown.body["scopes"], json!(["orders:read"]));
    bodies.push(shown.text.clone());
    let listed = h.get("/admin/v1/keys?identity=acme&status=active").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["items"][0]["id"], key_id.as_str());
    assert!(listed.body["next_cursor"].is_null());
    bodies.push(listed.text.clone());

    // Update.
    let patched = h
        .call(
            Method::PATCH,
            &format!("/admin/v1/keys/{key_id}"),
            Some(json!({"scopes": ["orders:read", "orders:write"], "rate_limit_override": "10/s"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(
        patched.body["scopes"],
        json!(["orders:read", "orders:write"])
    );
    assert_eq!(patched.body["rate_limit_override"], "10/s");
    bodies.push(patched.text.clone());

    // Rotate: a new plaintext, once; the old key is rotating until the grace ends.
    let rotated = h
        .call(
            Method::POST,
            &format!("/admin/v1/keys/{key_id}/rotate"),
            Some(json!({"grace": "1h"})),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.text);
    let new_id = rotated.string("id");
    let new_plaintext = rotated.string("key");
    assert_ne!(new_plaintext, plaintext);
    assert!(new_plaintext.starts_with("pc_test_"));
    assert_eq!(rotated.body["record"]["id"], new_id.as_str());
    assert_eq!(
        rotated.body["record"]["scopes"],
        json!(["orders:read", "orders:write"])
    );
    assert_eq!(rotated.body["previous"]["id"], key_id.as_str());
    assert_eq!(rotated.body["previous"]["status"]["state"], "rotating");
    assert_eq!(rotated.body["previous"]["replaced_by"], new_id.as_str());
    assert!(rotated.text.contains(&new_plaintext));
    assert!(!rotated.text.contains(&plaintext));
    let again = h
        .call(
            Method::POST,
            &format!("/admin/v1/keys/{key_id}/rotate"),
            None,
        )
        .await;
    assert_error(&again, StatusCode::CONFLICT, "conflict");
    let rotating = h.get("/admin/v1/keys?status=rotating").await;
    assert_eq!(rotating.body["items"][0]["id"], key_id.as_str());
    bodies.push(rotating.text.clone());

    // Deleting an identity with usable keys is refused.
    let refused = h
        .call(Method::DELETE, "/admin/v1/identities/acme", None)
        .await;
    assert_error(&refused, StatusCode::CONFLICT, "conflict");

    // Revoke both, then revoking again conflicts.
    for id in [&key_id, &new_id] {
        let revoked = h
            .call(Method::POST, &format!("/admin/v1/keys/{id}/revoke"), None)
            .await;
        assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
        assert_eq!(revoked.body["status"]["state"], "revoked");
        bodies.push(revoked.text.clone());
    }
    let twice = h
        .call(
            Method::POST,
            &format!("/admin/v1/keys/{key_id}/revoke"),
            None,
        )
        .await;
    assert_error(&twice, StatusCode::CONFLICT, "conflict");
    let update_revoked = h
        .call(
            Method::PATCH,
            &format!("/admin/v1/keys/{key_id}"),
            Some(json!({"scopes": []})),
        )
        .await;
    assert_error(&update_revoked, StatusCode::CONFLICT, "conflict");

    // The revoked keys no longer authenticate in the gateway's index.
    h.index.refresh(&h.store).await.unwrap();
    assert!(h.index.api_key(&plaintext).is_none());
    assert!(h.index.api_key(&new_plaintext).is_none());

    // Delete, then it is gone.
    let deleted = h
        .call(Method::DELETE, "/admin/v1/identities/acme", None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    assert!(deleted.text.is_empty());
    let gone = h.get("/admin/v1/identities/acme").await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found");
    let gone = h.get(&format!("/admin/v1/keys/{key_id}")).await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found");

    // The audit log has every step, by this admin key, from the client's address, and never a
    // secret.
    let audit = h
        .get(&format!(
            "/admin/v1/audit?actor=admin:{}&limit=1000",
            h.admin_key_id
        ))
        .await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);
    bodies.push(audit.text.clone());
    let events = audit.body["items"].as_array().unwrap();
    let actions: Vec<&str> = events
        .iter()
        .rev()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "identity.create",
            "identity.update",
            "key.create",
            "key.update",
            "key.create",
            "key.rotate",
            "key.revoke",
            "key.revoke",
            "identity.delete",
        ]
    );
    for event in events {
        assert_eq!(event["actor"], format!("admin:{}", h.admin_key_id).as_str());
        assert_eq!(event["source_ip"], "203.0.113.7");
    }
    for body in &bodies {
        assert!(!body.contains(&plaintext), "plaintext leaked: {body}");
        assert!(!body.contains(&new_plaintext), "plaintext leaked: {body}");
    }
}

#[tokio::test]
async fn an_admin_key_created_through_the_api_can_use_the_api() {
    let h = harness().await;
    let created = h
        .create_key(json!({"identity": "ops", "roles": ["admin"]}))
        .await;
    let key = created.string("key");
    let id = created.string("id");
    h.index.refresh(&h.store).await.unwrap();
    let reply = h
        .call_as(
            &key,
            Method::POST,
            "/admin/v1/identities",
            Some(json!({"name": "by-new-key"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let audit = h.get("/admin/v1/audit?action=identity.create").await;
    assert_eq!(
        audit.body["items"][0]["actor"],
        format!("admin:{id}").as_str()
    );
}

#[tokio::test]
async fn rotate_without_a_body_uses_a_24h_grace() {
    let h = harness().await;
    let created = h.create_key(json!({"identity": "ops"})).await;
    let id = created.string("id");
    let rotated = h
        .call(Method::POST, &format!("/admin/v1/keys/{id}/rotate"), None)
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.text);
    let audit = h
        .get(&format!("/admin/v1/audit?action=key.rotate&target={id}"))
        .await;
    assert_eq!(audit.body["items"][0]["detail"]["grace_ms"], 86_400_000);
    // A zero grace ends the old key at once.
    let new_id = rotated.string("id");
    let zero = h
        .call(
            Method::POST,
            &format!("/admin/v1/keys/{new_id}/rotate"),
            Some(json!({"grace": "0s"})),
        )
        .await;
    assert_eq!(zero.status, StatusCode::CREATED, "{}", zero.text);
    assert_eq!(zero.body["previous"]["status"]["state"], "expired");
}

// ----- errors -------------------------------------------------------------------------------

#[tokio::test]
async fn bad_bodies_get_400_naming_the_field() {
    let h = harness().await;
    let cases: Vec<(&str, &str, &str)> = vec![
        ("/admin/v1/identities", "{not json", "body"),
        ("/admin/v1/identities", "[1, 2]", "body"),
        ("/admin/v1/identities", r#"{"name": "x"} trailing"#, "body"),
        (
            "/admin/v1/identities",
            r#"{"name": "x", "secret": 1}"#,
            "secret",
        ),
        ("/admin/v1/identities", r#"{"metadata": {}}"#, "name"),
        ("/admin/v1/identities", r#"{"name": 7}"#, "name"),
        (
            "/admin/v1/identities",
            r#"{"name": "idn_reserved"}"#,
            "name",
        ),
        (
            "/admin/v1/identities",
            r#"{"name": "x", "roles": ["ok", 3]}"#,
            "roles[1]",
        ),
        (
            "/admin/v1/identities",
            r#"{"name": "x", "metadata": [1]}"#,
            "metadata",
        ),
        (
            "/admin/v1/keys",
            r#"{"identity": "ops", "scopes": ["ok", "bad scope"]}"#,
            "scopes[1]",
        ),
        (
            "/admin/v1/keys",
            r#"{"identity": "ops", "expires_at": "yesterday"}"#,
            "expires_at",
        ),
        (
            "/admin/v1/keys",
            r#"{"identity": "ops", "expires_at": "2001-01-01T00:00:00Z"}"#,
            "expires_at",
        ),
        (
            "/admin/v1/keys",
            r#"{"identity": "ops", "key": "pc_live_mine"}"#,
            "key",
        ),
        (
            "/admin/v1/identities",
            r#"{"name": "x", "rate_limit_override": "10/week"}"#,
            "rate_limit_override",
        ),
        (
            "/admin/v1/identities",
            r#"{"name": "x", "quota_override": 1000}"#,
            "quota_override",
        ),
        (
            "/admin/v1/keys",
            r#"{"identity": "ops", "quota_override": "5/s"}"#,
            "quota_override",
        ),
    ];
    for (uri, body, field) in cases {
        let reply = h
            .raw(Method::POST, uri, Some("application/json"), body)
            .await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(reply.fields(), [field], "{body}: {}", reply.text);
        assert!(
            !reply.field_errors()[0].1.contains(" at line "),
            "{}",
            reply.text
        );
    }
    // PATCH with an empty change set and an unknown field.
    let reply = h
        .raw(
            Method::PATCH,
            "/admin/v1/identities/ops",
            Some("application/json"),
            "{}",
        )
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
    let reply = h
        .raw(
            Method::PATCH,
            &format!("/admin/v1/keys/{}", h.admin_key_id),
            Some("application/json"),
            r#"{"status": "active"}"#,
        )
        .await;
    assert_eq!(reply.fields(), ["status"], "{}", reply.text);
    // A required body that is missing.
    let reply = h.raw(Method::POST, "/admin/v1/identities", None, "").await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(reply.fields(), ["body"]);
    // Rotation grace.
    for (body, field) in [
        (r#"{"grace": "soon"}"#, "grace"),
        (r#"{"grace": "365d"}"#, "grace"),
        (r#"{"grace": "1h", "extra": true}"#, "extra"),
    ] {
        let reply = h
            .raw(
                Method::POST,
                &format!("/admin/v1/keys/{}/rotate", h.admin_key_id),
                Some("application/json"),
                body,
            )
            .await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(reply.fields(), [field], "{body}: {}", reply.text);
    }
}

#[tokio::test]
async fn bodies_must_be_json_and_small() {
    let h = harness().await;
    let reply = h
        .raw(
            Method::POST,
            "/admin/v1/identities",
            Some("text/plain"),
            r#"{"name": "x"}"#,
        )
        .await;
    assert_error(
        &reply,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let reply = h
        .raw(
            Method::POST,
            "/admin/v1/identities",
            None,
            r#"{"name": "x"}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let reply = h
        .raw(
            Method::POST,
            "/admin/v1/identities",
            Some("application/json; charset=utf-8"),
            r#"{"name": "x"}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let big = format!(
        r#"{{"name": "y", "metadata": {{"pad": "{}"}}}}"#,
        "a".repeat(70_000)
    );
    let reply = h
        .raw(
            Method::POST,
            "/admin/v1/identities",
            Some("application/json"),
            &big,
        )
        .await;
    assert_error(&reply, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

#[tokio::test]
async fn bad_query_parameters_get_400_listing_each() {
    let h = harness().await;
    for (uri, fields) in [
        ("/admin/v1/identities?limit=0", vec!["limit"]),
        ("/admin/v1/identities?limit=1001", vec!["limit"]),
        ("/admin/v1/identities?limit=ten", vec!["limit"]),
        ("/admin/v1/identities?limit=1&limit=2", vec!["limit"]),
        ("/admin/v1/identities?cursor=garbage", vec!["cursor"]),
        ("/admin/v1/identities?cursor=", vec!["cursor"]),
        ("/admin/v1/identities?page=2", vec!["page"]),
        ("/admin/v1/keys?status=dormant", vec!["status"]),
        (
            "/admin/v1/keys?status=dormant&limit=0&x=1",
            vec!["x", "limit", "status"],
        ),
        ("/admin/v1/audit?since=yesterday", vec!["since"]),
        ("/admin/v1/audit?until=2026-13-01T00:00:00Z", vec!["until"]),
        ("/admin/v1/audit?cursor=abc", vec!["cursor"]),
    ] {
        let reply = h.get(uri).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
        let mut got = reply.fields();
        got.sort();
        let mut want: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "{uri}: {}", reply.text);
    }
}

#[tokio::test]
async fn unknown_things_get_404_and_wrong_methods_405() {
    let h = harness().await;
    for uri in [
        "/admin/v1/identities/nobody",
        "/admin/v1/identities/idn_0000000000000000",
        "/admin/v1/keys/key_0000000000000000",
        "/admin/v1/keys?identity=nobody",
        "/admin/v1/nothing-here",
    ] {
        let reply = h.get(uri).await;
        assert_error(&reply, StatusCode::NOT_FOUND, "not_found");
    }
    for (method, uri) in [
        (Method::POST, "/admin/v1/keys/key_0000000000000000/revoke"),
        (Method::POST, "/admin/v1/keys/key_0000000000000000/rotate"),
        (Method::DELETE, "/admin/v1/identities/nobody"),
    ] {
        let reply = h.call(method, uri, None).await;
        assert_error(&reply, StatusCode::NOT_FOUND, "not_found");
    }
    let reply = h
        .call(
            Method::POST,
            "/admin/v1/keys",
            Some(json!({"identity": "nobody"})),
        )
        .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "not_found");
    let reply = h.call(Method::DELETE, "/admin/v1/keys", None).await;
    assert_error(&reply, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

// ----- pagination ---------------------------------------------------------------------------

#[tokio::test]
async fn lists_page_with_limit_and_cursor() {
    let h = harness().await;
    let mut expected = vec!["ops".to_owned()];
    for i in 0..6 {
        let name = format!("customer-{i}");
        let reply = h
            .call(
                Method::POST,
                "/admin/v1/identities",
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
        expected.push(name);
    }
    let mut seen = Vec::new();
    let mut uri = "/admin/v1/identities?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let reply = h.get(&uri).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let items = reply.body["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|i| i["name"].as_str().unwrap().to_owned()));
        pages += 1;
        match reply.body["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/admin/v1/identities?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);

    // Keys and the audit log page the same way.
    for _ in 0..3 {
        h.create_key(json!({"identity": "ops"})).await;
    }
    let first = h.get("/admin/v1/keys?limit=4").await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 4);
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = h
        .get(&format!("/admin/v1/keys?limit=4&cursor={cursor}"))
        .await;
    assert_eq!(second.body["items"].as_array().unwrap().len(), 1);
    assert!(second.body["next_cursor"].is_null());

    let first = h.get("/admin/v1/audit?limit=2").await;
    let ids: Vec<i64> = first.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert!(ids[0] > ids[1], "newest first: {ids:?}");
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = h
        .get(&format!("/admin/v1/audit?limit=2&cursor={cursor}"))
        .await;
    assert!(second.body["items"][0]["id"].as_i64().unwrap() < ids[1]);
}

#[tokio::test]
async fn audit_filters_by_time() {
    let h = harness().await;
    let reply = h
        .get("/admin/v1/audit?since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00Z")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["items"], json!([]));
    let reply = h
        .get("/admin/v1/audit?since=2000-01-01T00:00:00Z&actor=cli:test")
        .await;
    // The harness made one identity and two keys through the store as `cli:test`.
    assert_eq!(reply.body["items"].as_array().unwrap().len(), 3);
}

// ----- the OpenAPI document -----------------------------------------------------------------

fn openapi_doc() -> Value {
    serde_json::from_str(super::OPENAPI_JSON).unwrap()
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

#[tokio::test]
async fn openapi_document_is_served_and_parses() {
    let h = harness().await;
    let reply = send(
        &h.app,
        Request::get("/admin/v1/openapi.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(reply.body, openapi_doc());
    assert!(reply.body["openapi"].as_str().unwrap().starts_with("3.1."));
    // The committed file is the served one.
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/admin-api.openapi.json"
    ))
    .unwrap();
    assert_eq!(committed, reply.text);
}

#[tokio::test]
async fn openapi_document_lists_exactly_the_routes_the_router_has() {
    let h = harness().await;
    let doc = openapi_doc();
    let paths = doc["paths"].as_object().unwrap();
    let documented: BTreeSet<String> = paths.keys().cloned().collect();
    let routed: BTreeSet<String> = super::endpoints()
        .into_iter()
        .map(|(path, _)| format!("{}{path}", super::PREFIX))
        .chain([format!("{}{}", super::PREFIX, super::OPENAPI_PATH)])
        .collect();
    assert_eq!(documented, routed);

    // Every documented method is routed (401 without a key, 200 for the open document), and
    // every undocumented one is not (405).
    for (path, item) in paths {
        let concrete = path
            .replace("{id_or_name}", "ops")
            .replace("{id}", "key_0000000000000000");
        for method in METHODS {
            let reply = send(
                &h.app,
                Request::builder()
                    .method(method.to_uppercase().as_str())
                    .uri(&concrete)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
            match item.get(method) {
                Some(operation) => {
                    let open = operation.get("security") == Some(&json!([]));
                    let want = if open {
                        StatusCode::OK
                    } else {
                        StatusCode::UNAUTHORIZED
                    };
                    assert_eq!(reply.status, want, "{method} {path}");
                    if !open {
                        let responses = operation["responses"].as_object().unwrap();
                        for code in ["401", "403", "500", "503"] {
                            assert!(responses.contains_key(code), "{method} {path} lacks {code}");
                        }
                    }
                }
                None => assert_eq!(
                    reply.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is routed but not documented"
                ),
            }
        }
    }
}

#[test]
fn openapi_references_all_resolve() {
    fn walk(node: &Value, refs: &mut Vec<String>) {
        match node {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    refs.push(r.clone());
                }
                for value in map.values() {
                    walk(value, refs);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, refs)),
            _ => {}
        }
    }
    let doc = openapi_doc();
    let mut refs = Vec::new();
    walk(&doc, &mut refs);
    assert!(refs.len() > 20);
    for r in refs {
        let pointer = r.strip_prefix('#').unwrap();
        assert!(doc.pointer(pointer).is_some(), "dangling {r}");
    }
}

#[tokio::test]
async fn openapi_schemas_match_what_the_api_returns() {
    // Each response object's keys are the `required` (and only the declared) properties of
    // its schema: a cheap guard against the document drifting from the serde types.
    let h = harness().await;
    let doc = openapi_doc();
    let schema = |name: &str| doc["components"]["schemas"][name].clone();
    let keys_of = |value: &Value| -> BTreeSet<String> {
        value.as_object().unwrap().keys().cloned().collect()
    };
    let declared = |name: &str| -> BTreeSet<String> { keys_of(&schema(name)["properties"]) };
    let required = |name: &str| -> BTreeSet<String> {
        schema(name)["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let identity = h.get("/admin/v1/identities/ops").await;
    assert_eq!(keys_of(&identity.body), declared("Identity"));
    assert_eq!(keys_of(&identity.body), required("Identity"));
    let created = h.create_key(json!({"identity": "ops"})).await;
    assert_eq!(keys_of(&created.body), declared("CreatedKey"));
    assert_eq!(keys_of(&created.body["record"]), declared("KeyRecord"));
    assert_eq!(keys_of(&created.body["record"]), required("KeyRecord"));
    let id = created.body["id"].as_str().unwrap();
    let rotated = h
        .call(Method::POST, &format!("/admin/v1/keys/{id}/rotate"), None)
        .await;
    assert_eq!(keys_of(&rotated.body), declared("RotatedKey"));
    let audit = h.get("/admin/v1/audit?limit=1").await;
    assert_eq!(keys_of(&audit.body), declared("AuditPage"));
    assert_eq!(keys_of(&audit.body["items"][0]), declared("AuditEvent"));
    let error = h.get("/admin/v1/keys?limit=0").await;
    assert_eq!(keys_of(&error.body["error"]), required_of_error(&doc));
    assert_eq!(
        keys_of(&error.body["error"]["details"][0]),
        declared("FieldError")
    );

    fn required_of_error(doc: &Value) -> BTreeSet<String> {
        doc["components"]["schemas"]["Error"]["properties"]["error"]["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }
    // Every input schema lists exactly the fields serde accepts (deny_unknown_fields refuses
    // the rest): each declared property is accepted…
    let new_key = declared("NewKey");
    for field in &new_key {
        let mut body = json!({"identity": "ops"});
        let value = match field.as_str() {
            "identity" => json!("ops"),
            "env" => json!("test"),
            "scopes" | "roles" => json!(["a"]),
            "metadata" => json!({}),
            "expires_at" => json!("2999-01-01T00:00:00Z"),
            "rate_limit_override" => json!("5/s"),
            "quota_override" => json!("1000/day"),
            other => panic!("NewKey.{other}: add a sample value"),
        };
        body[field] = value;
        let reply = h.call(Method::POST, "/admin/v1/keys", Some(body)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{field}: {}", reply.text);
    }
    for (n, field) in declared("NewIdentity").iter().enumerate() {
        let mut body = json!({"name": format!("schema-{n}")});
        let value = match field.as_str() {
            "name" => json!(format!("schema-{n}")),
            "roles" => json!(["a"]),
            "metadata" => json!({}),
            "rate_limit_override" => json!("100/s"),
            "quota_override" => json!("50000/month"),
            other => panic!("NewIdentity.{other}: add a sample value"),
        };
        body[field] = value;
        let reply = h
            .call(Method::POST, "/admin/v1/identities", Some(body))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{field}: {}", reply.text);
        assert_eq!(keys_of(&reply.body), declared("Identity"));
    }
    for field in declared("IdentityUpdate") {
        let value = match field.as_str() {
            "name" => json!("ops"),
            "roles" => json!(["a"]),
            "metadata" => json!({}),
            "rate_limit_override" => json!("100/s"),
            "quota_override" => json!(null),
            other => panic!("IdentityUpdate.{other}: add a sample value"),
        };
        let reply = h
            .call(
                Method::PATCH,
                "/admin/v1/identities/ops",
                Some(json!({ field.as_str(): value })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{field}: {}", reply.text);
    }
}

#[tokio::test]
async fn identity_overrides_round_trip() {
    let h = harness().await;
    let created = h
        .call(
            Method::POST,
            "/admin/v1/identities",
            Some(json!({"name": "acme", "rate_limit_override": "100/s", "quota_override": "50000/month"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["rate_limit_override"], "100/s");
    assert_eq!(created.body["quota_override"], "50000/month");
    let id = created.string("id");

    // Change one, clear the other with null; absent fields are kept.
    let patched = h
        .call(
            Method::PATCH,
            "/admin/v1/identities/acme",
            Some(json!({"rate_limit_override": "1000/h", "quota_override": null})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["rate_limit_override"], "1000/h");
    assert_eq!(patched.body["quota_override"], Value::Null);
    let shown = h.get(&format!("/admin/v1/identities/{id}")).await;
    assert_eq!(shown.body, patched.body);
    let listed = h.get("/admin/v1/identities").await;
    let item = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(item, patched.body);

    // A value the rate limiter cannot parse: 400 naming the field, with the parser's reason,
    // and nothing changed.
    let refused = h
        .call(
            Method::PATCH,
            "/admin/v1/identities/acme",
            Some(json!({"quota_override": "5/s"})),
        )
        .await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(
        refused.field_errors(),
        [(
            "quota_override".to_owned(),
            "unknown quota period \"s\" (use day or month)".to_owned()
        )]
    );
    let shown = h.get("/admin/v1/identities/acme").await;
    assert_eq!(shown.body, patched.body);

    // Audited with the admin actor, from and to.
    let audit = h
        .get(&format!(
            "/admin/v1/audit?target={id}&action=identity.update"
        ))
        .await;
    let items = audit.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", audit.text);
    assert_eq!(
        items[0]["detail"]["changes"],
        json!({
            "rate_limit_override": {"from": "100/s", "to": "1000/h"},
            "quota_override": {"from": "50000/month", "to": null},
        })
    );
    assert_eq!(
        items[0]["actor"],
        format!("admin:{}", h.admin_key_id).as_str()
    );
}

#[tokio::test]
async fn serve_records_the_real_client_address() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = harness().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gateway = Gateway::with_credentials(config(None), None, h.index.clone()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::serve(
        listener,
        gateway,
        Some(h.store.clone()),
        async move {
            let _ = stopped.await;
        },
    ));
    let body = r#"{"name":"over-tcp"}"#;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /admin/v1/identities HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        h.admin_key,
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    let audit = h
        .get("/admin/v1/audit?action=identity.create&limit=1")
        .await;
    assert_eq!(audit.body["items"][0]["source_ip"], "127.0.0.1");
}
