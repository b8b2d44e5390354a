//! The demo API that `quickstart` puts behind the gateway: a few JSON endpoints over an
//! in-memory order list.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

type Orders = Arc<Mutex<Vec<Value>>>;

/// Starts the demo API on an ephemeral loopback port; returns its address.
pub async fn start() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let orders: Orders = Arc::new(Mutex::new(vec![
        json!({"id": 1, "item": "portcullis", "quantity": 1, "status": "shipped"}),
        json!({"id": 2, "item": "drawbridge", "quantity": 2, "status": "pending"}),
    ]));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let orders = Arc::clone(&orders);
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let orders = Arc::clone(&orders);
                    async move { Ok::<_, Infallible>(handle(request, &orders).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

fn reply(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    // What many frameworks leak by default; the gateway removes both.
    headers.insert(
        header::SERVER,
        header::HeaderValue::from_static("demo-api/0.1"),
    );
    headers.insert(
        "x-powered-by",
        header::HeaderValue::from_static("DemoFramework 1.0"),
    );
    response
}

async fn handle(request: Request<Incoming>, orders: &Orders) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (Method::GET, ["health"]) => reply(StatusCode::OK, &json!({"status": "ok"})),
        (Method::GET, ["orders"]) => {
            let list = orders.lock().map(|o| o.clone()).unwrap_or_default();
            reply(StatusCode::OK, &json!({ "orders": list }))
        }
        (Method::POST, ["orders"]) => {
            let body = Limited::new(request.into_body(), 64 * 1024).collect().await;
            let Ok(body) = body else {
                return reply(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": "unreadable body"}),
                );
            };
            let Ok(mut order) = serde_json::from_slice::<Value>(&body.to_bytes()) else {
                return reply(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": "body must be JSON"}),
                );
            };
            let Ok(mut list) = orders.lock() else {
                return reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &json!({"error": "unavailable"}),
                );
            };
            let id = list.len() + 1;
            if let Some(object) = order.as_object_mut() {
                object.insert("id".into(), json!(id));
                object.insert("status".into(), json!("pending"));
            }
            list.push(order.clone());
            reply(StatusCode::CREATED, &order)
        }
        (Method::GET, ["orders", id]) => {
            let found = id.parse::<u64>().ok().and_then(|id| {
                orders
                    .lock()
                    .ok()?
                    .iter()
                    .find(|o| o["id"].as_u64() == Some(id))
                    .cloned()
            });
            match found {
                Some(order) => reply(StatusCode::OK, &order),
                None => reply(StatusCode::NOT_FOUND, &json!({"error": "no such order"})),
            }
        }
        _ => reply(StatusCode::NOT_FOUND, &json!({"error": "not found"})),
    }
}
