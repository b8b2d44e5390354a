//! Integration tests: a real gateway on port 0 in front of real upstreams, driven by real
//! HTTP clients (reqwest for HTTP/1.1, HTTP/2 and TLS; raw sockets for malformed input).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod auth;
mod cli;
mod http1;
mod inspect;
mod lifecycle;
mod limits;
mod observability;
mod proxy;
mod ratelimit;
mod ratelimit_redis;
mod support;
mod tls;
