//! The floor of the stack: the smallest reverse proxy that can be built from the same parts
//! as Portcullis (hyper server, hyper-util pooled client, thread-per-core tokio runtimes) and
//! nothing else: no routing, no header rules, no limits, no logs, no metrics.
//!
//! `bench/proxy.sh` measures it beside nginx and Portcullis, so the cost of the gateway's own
//! work (the difference to this floor) and the cost of the stack (the difference between
//! this floor and nginx) can be told apart.
//!
//! ```sh
//! cargo run --release -p portcullis-proxy --example hyper_floor -- 127.0.0.1:18085 127.0.0.1:18081 2
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::convert::Infallible;

use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

fn main() {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:18085".into());
    let upstream = args.next().unwrap_or_else(|| "127.0.0.1:18081".into());
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(2);
    let listener = std::net::TcpListener::bind(&listen).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            let listener = listener.try_clone().expect("clone listener");
            let upstream = upstream.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(serve(listener, upstream));
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
}

async fn serve(listener: std::net::TcpListener, upstream: String) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("register listener");
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new()).build(http);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let client = client.clone();
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let client = client.clone();
                let upstream = upstream.clone();
                async move {
                    let (mut parts, body) = request.into_parts();
                    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                    parts.uri = format!("http://{upstream}{path}").parse().expect("uri");
                    parts.headers.remove(hyper::header::HOST);
                    let response = match client
                        .request(hyper::Request::from_parts(parts, body))
                        .await
                    {
                        Ok(response) => response.map(http_body_util::Either::Left),
                        Err(_) => {
                            let mut response = hyper::Response::new(http_body_util::Either::Right(
                                http_body_util::Empty::new(),
                            ));
                            *response.status_mut() = hyper::StatusCode::BAD_GATEWAY;
                            response
                        }
                    };
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
