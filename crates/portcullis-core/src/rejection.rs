//! Responses the gateway makes itself.
//!
//! Every refusal is a [`Rejection`]: a status, a stable machine-readable code and a message
//! written for the client. They are rendered in one place, in one JSON shape:
//! `{"error":{"code":"...","message":"...","request_id":"..."}}`, and never carry internal
//! detail (no upstream addresses, no error chains, no evidence).

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};

/// A decision to answer the client without forwarding its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code, e.g. `not_found`, `body_too_large`.
    pub code: &'static str,
    /// Human-readable, client-safe message.
    pub message: Cow<'static, str>,
    /// Extra response headers (e.g. `Allow`, `Retry-After`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Rejection {
    /// A rejection with no extra headers.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// 400 with a message.
    pub fn bad_request(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404: no route.
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no route matches this request",
        )
    }

    /// 413: body past the configured bound.
    pub fn body_too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request body is larger than {limit} bytes"),
        )
    }

    /// 431: request head past the configured bound.
    pub fn headers_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("request headers are larger than {limit} bytes"),
        )
    }

    /// 408: the client was too slow.
    pub fn request_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request was not received in time",
        )
    }

    /// 502: the upstream could not be reached or answered badly.
    pub fn bad_gateway() -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "bad_gateway",
            "the upstream service is unavailable",
        )
    }

    /// 504: the upstream did not answer in time.
    pub fn gateway_timeout() -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "gateway_timeout",
            "the upstream service did not answer in time",
        )
    }

    /// 429 with `Retry-After`: `wait` in seconds, rounded up (a client that waits that long
    /// is never early), at least 1.
    pub fn too_many_requests(
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
        wait: std::time::Duration,
    ) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, code, message).with_header(
            http::header::RETRY_AFTER,
            HeaderValue::from(crate::ratelimit::retry_after_secs(wait)),
        )
    }

    /// 429 `rate_limited`: a rate limit refused the request; retry after `wait`.
    pub fn rate_limited(wait: std::time::Duration) -> Self {
        let secs = crate::ratelimit::retry_after_secs(wait);
        Self::too_many_requests(
            "rate_limited",
            format!("too many requests; retry after {secs} s"),
            wait,
        )
    }

    /// 403 for an admission refusal.
    pub fn forbidden(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// The JSON body for this rejection.
    pub fn body(&self, request_id: &str) -> Bytes {
        error_body(self.code, &self.message, request_id)
    }
}

/// Renders the one JSON error shape.
pub fn error_body(code: &str, message: &str, request_id: &str) -> Bytes {
    let value = serde_json::json!({
        "error": { "code": code, "message": message, "request_id": request_id }
    });
    Bytes::from(value.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn shape_is_stable_and_escaped() {
        let body = Rejection::bad_request("bad_path", "a \"quoted\" reason").body("req-1");
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["error"]["code"], "bad_path");
        assert_eq!(value["error"]["message"], "a \"quoted\" reason");
        assert_eq!(value["error"]["request_id"], "req-1");
        assert_eq!(value.as_object().unwrap().len(), 1);
    }
}
