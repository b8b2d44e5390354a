//! The one place admin API errors become HTTP responses.
//!
//! Every error has the shape `{"error": {"code", "message", "details": [{"field", "message"}]}}`
//! (`details` is empty unless a field is to blame). Internal errors are logged with their
//! cause and answered without it.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_store::{ErrorKind, StoreError};
use serde::Serialize;

/// One field-level problem in a 400 response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The offending field: a JSON path into the body (`scopes[2]`), a query parameter
    /// (`limit`), or `body` when the body as a whole is unusable.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An admin API error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Vec<FieldError>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// 400 with field errors.
    pub fn invalid(details: Vec<FieldError>) -> ApiError {
        let message = match details.as_slice() {
            [one] => format!("invalid {}: {}", one.field, one.message),
            many => format!("the request has {} invalid fields", many.len()),
        };
        ApiError {
            details,
            ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
        }
    }

    /// 400 for one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::invalid(vec![FieldError::new(field, message)])
    }

    /// 401: no usable credential.
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "an admin key is required: Authorization: Bearer <key with role admin>",
        )
    }

    /// 403: a valid key without the admin role.
    pub fn forbidden() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this key is valid but lacks the admin role",
        )
    }

    /// 503: the gateway runs without a `[store]`.
    pub fn no_store() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_not_configured",
            "no key store is configured: add a [store] section (url, pepper) to the config \
             and restart to manage identities and keys",
        )
    }

    /// 413.
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {limit} bytes"),
        )
    }

    /// 415.
    pub fn unsupported_media_type() -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as Content-Type: application/json",
        )
    }

    /// 500, after logging `cause`.
    pub fn internal(cause: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "admin API request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the gateway log has the details",
        )
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match (err.kind(), &err) {
            (ErrorKind::Invalid, StoreError::Invalid { field, reason }) => {
                ApiError::field(field.clone(), reason.clone())
            }
            (ErrorKind::Invalid, StoreError::InvalidCursor) => {
                ApiError::field("cursor", "not a cursor this endpoint handed out")
            }
            (ErrorKind::Invalid, _) => ApiError::field("body", err.to_string()),
            (ErrorKind::NotFound, _) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", err.to_string())
            }
            (ErrorKind::Conflict, _) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", err.to_string())
            }
            (ErrorKind::Internal, _) => ApiError::internal(&err),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    details: &'a [FieldError],
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                details: &self.details,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        let www_authenticate = match self.status {
            StatusCode::UNAUTHORIZED => Some("Bearer"),
            StatusCode::FORBIDDEN => Some("Bearer error=\"insufficient_scope\""),
            _ => None,
        };
        if let Some(value) = www_authenticate {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
        }
        response
    }
}
