//! Who is calling the admin API.
//!
//! The main credential is a managed admin key: an API key from the store whose roles include
//! [`ADMIN_ROLE`], sent as `Authorization: Bearer <key>` and looked up in the gateway's
//! in-memory key index (so revoking an admin key takes effect as fast as revoking any other).
//! The static `[admin] token` of the config is accepted too, as a break-glass credential for
//! when no admin key exists or the store is unreachable.

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use portcullis_proxy::Gateway;
use subtle::ConstantTimeEq;

/// The role a key needs to use the admin API.
pub const ADMIN_ROLE: &str = "admin";

/// The audit actor recorded for requests authenticated with the static `[admin] token`. Key
/// ids start with `key_`, so this never collides with `admin:<key_id>`.
pub const STATIC_TOKEN_ACTOR: &str = "admin:token";

/// An authenticated admin caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminCaller {
    /// The audit actor: `admin:<key_id>`, or [`STATIC_TOKEN_ACTOR`].
    pub actor: String,
}

/// The result of [`authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// A valid admin key, or the static token.
    Admin(AdminCaller),
    /// A valid key without the admin role: 403.
    Forbidden,
    /// No credential, several, a malformed one, or one that is unknown, revoked or expired:
    /// 401.
    Unauthenticated,
}

/// Authenticates a request from its headers: exactly one `Authorization: Bearer` header,
/// holding either the static `[admin] token` (compared in constant time) or an API key with
/// the [`ADMIN_ROLE`] role.
pub fn authenticate(gateway: &Gateway, headers: &HeaderMap) -> AuthOutcome {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        // None, or two: which one would we believe?
        return AuthOutcome::Unauthenticated;
    };
    let Some(presented) = bearer_token(value) else {
        return AuthOutcome::Unauthenticated;
    };
    let snapshot = gateway.snapshot();
    if let Some(token) = &snapshot.config.admin.token {
        let expected = token.expose().as_bytes();
        // `ct_eq` on slices of different lengths returns early: only the length can leak.
        if !expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected)) {
            return AuthOutcome::Admin(AdminCaller {
                actor: STATIC_TOKEN_ACTOR.to_owned(),
            });
        }
    }
    match gateway.credentials().api_key(presented) {
        Some(principal)
            if principal
                .grants
                .roles
                .iter()
                .any(|role| &**role == ADMIN_ROLE) =>
        {
            AuthOutcome::Admin(AdminCaller {
                actor: format!("admin:{}", principal.key_id),
            })
        }
        Some(_) => AuthOutcome::Forbidden,
        None => AuthOutcome::Unauthenticated,
    }
}

/// The credential of a `Bearer` authorization value, as text.
fn bearer_token(value: &HeaderValue) -> Option<&str> {
    std::str::from_utf8(portcullis_core::pipeline::bearer_token(value)?).ok()
}

/// Adds `WWW-Authenticate: Bearer` to a 401 response.
pub fn unauthorized(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Adds `WWW-Authenticate: Bearer error="insufficient_scope"` (RFC 6750) to a 403 response.
pub fn forbidden(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"insufficient_scope\""),
    );
    response
}
