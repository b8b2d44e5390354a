//! The Portcullis data plane: listeners, TLS, HTTP/1.1 (our own, on `portcullis-h1`) and
//! HTTP/2 (hyper), the request path,
//! upstream pools, the access log and metrics.

#![forbid(unsafe_code)]

pub mod access_log;
pub mod body;
pub mod gateway;
pub mod h1_client;
pub mod h1_server;
pub mod handler;
pub mod headers;
mod io;
pub mod keys;
pub mod metrics;
pub mod quotas;
pub mod server;
pub mod tls;
pub mod upstream;

pub use gateway::{check, Gateway, ReloadError, Snapshot};
pub use handler::ConnInfo;
pub use metrics::Metrics;
pub use server::{bind, serve, Listener};
