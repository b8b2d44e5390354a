//! The Portcullis control plane, on a listener of its own (loopback by default):
//!
//! - `/healthz`, `/readyz`, `/metrics` (Prometheus text format): open.
//! - `POST /admin/reload`: guarded by the `[admin] token` when one is configured (an admin
//!   key is accepted too).
//! - `/admin/v1/…`: the admin REST API over the token store (identities, keys, audit log),
//!   authenticated with admin keys; see [`v1`] and `docs/admin-api.md`.

#![forbid(unsafe_code)]

pub mod auth;
pub mod v1;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{FromRef, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use portcullis_proxy::{Gateway, ReloadError};
use portcullis_store::Store;
use serde_json::json;

use crate::auth::{authenticate, AuthOutcome};

/// What every admin handler can reach: the running gateway and, when `[store]` is configured,
/// the token store.
#[derive(Clone, Debug)]
pub struct AdminState {
    /// The running gateway (config snapshot, metrics, key index).
    pub gateway: Arc<Gateway>,
    /// The token store, or `None` when no `[store]` is configured.
    pub store: Option<Store>,
}

impl FromRef<AdminState> for Arc<Gateway> {
    fn from_ref(state: &AdminState) -> Arc<Gateway> {
        Arc::clone(&state.gateway)
    }
}

/// The admin listener's router. `store` backs `/admin/v1`; without it those endpoints answer
/// 503.
pub fn router(gateway: Arc<Gateway>, store: Option<Store>) -> Router {
    let state = AdminState { gateway, store };
    let reload_routes = Router::new()
        .route("/admin/reload", post(reload))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(reload_routes)
        .merge(v1::router(state.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Serves the admin API until `shutdown` resolves. Each request knows its client address,
/// which the admin API records in the audit log.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Arc<Gateway>,
    store: Option<Store>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = router(gateway, store).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "error": { "code": code, "message": message, "details": [] } });
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint")
}

async fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept this method",
    )
}

async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

async fn readyz(State(gateway): State<Arc<Gateway>>) -> Response {
    if gateway.is_draining() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "draining" })),
        )
            .into_response()
    } else {
        Json(json!({ "status": "ready" })).into_response()
    }
}

async fn metrics(State(gateway): State<Arc<Gateway>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        gateway.metrics.encode(),
    )
        .into_response()
}

async fn reload(State(gateway): State<Arc<Gateway>>) -> Response {
    let result = tokio::task::spawn_blocking(move || gateway.reload()).await;
    match result {
        Ok(Ok(summary)) => {
            tracing::info!(%summary, "config reloaded (admin API)");
            Json(json!({ "status": "reloaded", "summary": summary })).into_response()
        }
        Ok(Err(ReloadError::Invalid(errors))) => {
            for error in &errors.0 {
                tracing::error!(%error, "reload refused");
            }
            let details: Vec<serde_json::Value> = errors
                .0
                .iter()
                .map(|e| json!({ "path": e.path, "message": e.message }))
                .collect();
            let body = json!({ "error": {
                "code": "invalid_config",
                "message": "the new config has errors; the running config keeps serving",
                "details": details,
            }});
            (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
        }
        Ok(Err(err @ ReloadError::NoConfigFile)) => {
            error(StatusCode::CONFLICT, "no_config_file", &err.to_string())
        }
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "reload failed",
        ),
    }
}

/// `/admin/reload`: open when no `[admin] token` is configured (the historical behaviour of a
/// loopback admin listener); otherwise the token or an admin key.
async fn require_token(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    if state.gateway.snapshot().config.admin.token.is_none() {
        return next.run(request).await;
    }
    match authenticate(&state.gateway, request.headers()) {
        AuthOutcome::Admin(_) => next.run(request).await,
        AuthOutcome::Forbidden => auth::forbidden(error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this key lacks the admin role",
        )),
        AuthOutcome::Unauthenticated => auth::unauthorized(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid admin token is required",
        )),
    }
}
