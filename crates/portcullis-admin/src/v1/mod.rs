//! The admin REST API, under `/admin/v1`: identities, keys and the audit log of the token
//! store, as JSON.
//!
//! Every endpoint but `GET /admin/v1/openapi.json` needs an admin credential (see
//! [`crate::auth`]) and a configured store (503 otherwise). Lifecycle operations are audited
//! with actor `admin:<key_id>` (or `admin:token` for the static token) and the client's
//! address. The OpenAPI 3.1 description is `docs/admin-api.openapi.json`, compiled in so the
//! served copy is always the committed one.

pub mod error;
pub mod extract;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{ExtensionRejection, PathRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Extension, Json, Router};
use portcullis_proxy::Gateway;
use portcullis_store::{
    Actor, AuditFilter, IdentityUpdate, KeyFilter, KeyRecord, KeyStatusKind, KeyUpdate,
    NewIdentity, NewKey, Store,
};
use serde::{Deserialize, Serialize};

use crate::auth::{authenticate, AuthOutcome};
use crate::AdminState;
use error::ApiError;
use extract::{path_param, JsonBody, OptionalJsonBody, QueryParams, MAX_BODY_BYTES};

/// Where the API lives.
pub const PREFIX: &str = "/admin/v1";

/// The OpenAPI 3.1 document describing this API (the file `docs/admin-api.openapi.json`).
pub const OPENAPI_JSON: &str = include_str!("../../../../docs/admin-api.openapi.json");

/// Rotation grace when the request names none.
pub const DEFAULT_ROTATION_GRACE: Duration = Duration::from_secs(24 * 60 * 60);

/// The authenticated context of one admin request, put in the request's extensions by the
/// authentication layer. Handlers that extract it cannot run unauthenticated: a missing
/// extension is a 500, never an open door.
#[derive(Clone, Debug)]
struct AdminContext {
    store: Store,
    actor: Actor,
}

/// Every authenticated endpoint, by path below [`PREFIX`]. The router is built from this
/// list, and the tests check it against the OpenAPI document.
fn endpoints() -> Vec<(&'static str, MethodRouter<AdminState>)> {
    vec![
        ("/identities", get(list_identities).post(create_identity)),
        (
            "/identities/{id_or_name}",
            get(get_identity)
                .patch(update_identity)
                .delete(delete_identity),
        ),
        ("/keys", get(list_keys).post(create_key)),
        ("/keys/{id}", get(get_key).patch(update_key)),
        ("/keys/{id}/rotate", post(rotate_key)),
        ("/keys/{id}/revoke", post(revoke_key)),
        ("/keys/{id}/quota", get(key_quota)),
        ("/audit", get(list_audit)),
    ]
}

/// Path of the OpenAPI document (served without authentication: it is public in the repo).
const OPENAPI_PATH: &str = "/openapi.json";

/// The `/admin/v1` routes.
pub(crate) fn router(state: AdminState) -> Router<AdminState> {
    let mut authenticated = Router::new();
    for (path, methods) in endpoints() {
        authenticated = authenticated.route(&format!("{PREFIX}{path}"), methods);
    }
    let authenticated =
        authenticated.route_layer(middleware::from_fn_with_state(state, require_admin));
    Router::new()
        .route(&format!("{PREFIX}{OPENAPI_PATH}"), get(openapi))
        .merge(authenticated)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::map_response(no_store))
}

/// Plaintext keys travel in these responses: no cache may keep them.
async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Store first (a gateway without one cannot serve any of this, whoever asks), then the
/// credential.
async fn require_admin(
    State(state): State<AdminState>,
    connect_info: Result<ConnectInfo<SocketAddr>, ExtensionRejection>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(store) = state.store.clone() else {
        return ApiError::no_store().into_response();
    };
    let caller = match authenticate(&state.gateway, request.headers()) {
        AuthOutcome::Admin(caller) => caller,
        AuthOutcome::Forbidden => return ApiError::forbidden().into_response(),
        AuthOutcome::Unauthenticated => return ApiError::unauthorized().into_response(),
    };
    let mut actor = Actor::new(caller.actor);
    if let Ok(ConnectInfo(addr)) = connect_info {
        actor = actor.from_ip(addr.ip());
    }
    request
        .extensions_mut()
        .insert(AdminContext { store, actor });
    next.run(request).await
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

type ApiResult = Result<Response, ApiError>;

fn created(location: String, body: impl Serialize) -> ApiResult {
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    // Ids are ASCII alphanumerics with an underscore: always a valid header value.
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

// ----- identities ---------------------------------------------------------------------------

async fn list_identities(Extension(ctx): Extension<AdminContext>, uri: Uri) -> ApiResult {
    let mut query = QueryParams::parse(&uri, &["limit", "cursor"]);
    let page = query.page();
    query.finish()?;
    Ok(Json(ctx.store.list_identities(&page).await?).into_response())
}

async fn create_identity(
    Extension(ctx): Extension<AdminContext>,
    JsonBody(new): JsonBody<NewIdentity>,
) -> ApiResult {
    let identity = ctx.store.create_identity(new, &ctx.actor).await?;
    created(format!("{PREFIX}/identities/{}", identity.id), identity)
}

async fn get_identity(
    Extension(ctx): Extension<AdminContext>,
    id_or_name: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id_or_name = path_param(id_or_name)?;
    Ok(Json(ctx.store.get_identity(&id_or_name).await?).into_response())
}

async fn update_identity(
    Extension(ctx): Extension<AdminContext>,
    id_or_name: Result<Path<String>, PathRejection>,
    JsonBody(update): JsonBody<IdentityUpdate>,
) -> ApiResult {
    let id_or_name = path_param(id_or_name)?;
    let identity = ctx
        .store
        .update_identity(&id_or_name, update, &ctx.actor)
        .await?;
    Ok(Json(identity).into_response())
}

async fn delete_identity(
    Extension(ctx): Extension<AdminContext>,
    id_or_name: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id_or_name = path_param(id_or_name)?;
    ctx.store.delete_identity(&id_or_name, &ctx.actor).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ----- keys ---------------------------------------------------------------------------------

/// A new key: its plaintext appears here and in [`RotatedKeyResponse`], never anywhere else.
#[derive(Serialize)]
struct CreatedKeyResponse {
    id: String,
    key: String,
    record: KeyRecord,
}

#[derive(Serialize)]
struct RotatedKeyResponse {
    id: String,
    key: String,
    record: KeyRecord,
    previous: KeyRecord,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    #[serde(default)]
    grace: Option<String>,
}

async fn list_keys(Extension(ctx): Extension<AdminContext>, uri: Uri) -> ApiResult {
    let mut query = QueryParams::parse(&uri, &["limit", "cursor", "identity", "status"]);
    let page = query.page();
    let filter = KeyFilter {
        identity: query.text("identity"),
        status: query.parsed("status", |text| {
            text.parse::<KeyStatusKind>()
                .map_err(|_| "must be one of active, rotating, revoked, expired".to_owned())
        }),
    };
    query.finish()?;
    Ok(Json(ctx.store.list_keys(&filter, &page).await?).into_response())
}

async fn create_key(
    Extension(ctx): Extension<AdminContext>,
    JsonBody(new): JsonBody<NewKey>,
) -> ApiResult {
    let (record, plaintext) = ctx.store.create_key(new, &ctx.actor).await?;
    let location = format!("{PREFIX}/keys/{}", record.id);
    let body = CreatedKeyResponse {
        id: record.id.clone(),
        key: plaintext.into_exposed(),
        record,
    };
    created(location, body)
}

async fn get_key(
    Extension(ctx): Extension<AdminContext>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = path_param(id)?;
    Ok(Json(ctx.store.get_key(&id).await?).into_response())
}

/// The quotas that count a key's requests, and where each stands.
async fn key_quota(
    State(gateway): State<Arc<Gateway>>,
    Extension(ctx): Extension<AdminContext>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = path_param(id)?;
    let snapshot = gateway.snapshot();
    let quotas = portcullis_proxy::quotas::key_report(
        &snapshot.config.routes,
        &ctx.store,
        &id,
        Some(&gateway.limits),
    )
    .await?;
    Ok(Json(serde_json::json!({ "key_id": id, "quotas": quotas })).into_response())
}

async fn update_key(
    Extension(ctx): Extension<AdminContext>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(update): JsonBody<KeyUpdate>,
) -> ApiResult {
    let id = path_param(id)?;
    Ok(Json(ctx.store.update_key(&id, update, &ctx.actor).await?).into_response())
}

async fn rotate_key(
    Extension(ctx): Extension<AdminContext>,
    id: Result<Path<String>, PathRejection>,
    OptionalJsonBody(request): OptionalJsonBody<RotateRequest>,
) -> ApiResult {
    let id = path_param(id)?;
    let grace = match request.and_then(|r| r.grace) {
        None => DEFAULT_ROTATION_GRACE,
        Some(text) => humantime::parse_duration(&text).map_err(|_| {
            ApiError::field(
                "grace",
                "must be a duration such as \"24h\", \"90m\" or \"0s\"",
            )
        })?,
    };
    let rotated = ctx.store.rotate_key(&id, grace, &ctx.actor).await?;
    let location = format!("{PREFIX}/keys/{}", rotated.key.id);
    let body = RotatedKeyResponse {
        id: rotated.key.id.clone(),
        key: rotated.plaintext.into_exposed(),
        record: rotated.key,
        previous: rotated.previous,
    };
    created(location, body)
}

async fn revoke_key(
    Extension(ctx): Extension<AdminContext>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = path_param(id)?;
    Ok(Json(ctx.store.revoke_key(&id, &ctx.actor).await?).into_response())
}

// ----- audit log ----------------------------------------------------------------------------

async fn list_audit(Extension(ctx): Extension<AdminContext>, uri: Uri) -> ApiResult {
    let mut query = QueryParams::parse(
        &uri,
        &[
            "limit", "cursor", "actor", "action", "target", "since", "until",
        ],
    );
    let page = query.page();
    let filter = AuditFilter {
        actor: query.text("actor"),
        action: query.text("action"),
        target: query.text("target"),
        since: query.timestamp("since"),
        until: query.timestamp("until"),
    };
    query.finish()?;
    Ok(Json(ctx.store.audit(&filter, &page).await?).into_response())
}
