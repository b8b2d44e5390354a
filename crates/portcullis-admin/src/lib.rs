//! The Portcullis control plane: `/healthz`, `/readyz`, `/metrics` (Prometheus text format)
//! and `POST /admin/reload`, on a listener of its own (loopback by default).

#![forbid(unsafe_code)]

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use portcullis_proxy::{Gateway, ReloadError};
use serde_json::json;
use subtle::ConstantTimeEq;

/// The admin API's router.
pub fn router(gateway: Arc<Gateway>) -> Router {
    let admin = Router::new()
        .route("/admin/reload", post(reload))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&gateway),
            require_token,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(admin)
        .fallback(not_found)
        .with_state(gateway)
}

/// Serves the admin API until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(gateway))
        .with_graceful_shutdown(shutdown)
        .await
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "error": { "code": code, "message": message } });
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint")
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

async fn require_token(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let snapshot = gateway.snapshot();
    let Some(token) = &snapshot.config.admin.token else {
        return next.run(request).await;
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(presented.as_bytes().ct_eq(token.expose().as_bytes())) && !presented.is_empty() {
        next.run(request).await
    } else {
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid admin token is required",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        response
    }
}
