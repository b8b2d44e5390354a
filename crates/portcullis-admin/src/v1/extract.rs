//! Request parsing that answers in the admin API's error shape: JSON bodies (with the path of
//! the offending field), query parameters (unknown ones refused), path parameters.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, Path, Query, Request};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use portcullis_store::{Page, Timestamp};
use serde::de::DeserializeOwned;

use super::error::{ApiError, FieldError};

/// Largest JSON body accepted. Metadata is capped at 16 KiB by the store; the rest of a key
/// or identity is small.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A required JSON body, parsed into `T` (whose `deny_unknown_fields` refuses extra fields).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// An optional JSON body: `None` when the request has no body.
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match read_json(request, state).await? {
            Some(value) => Ok(JsonBody(value)),
            None => Err(ApiError::field("body", "a JSON object is required")),
        }
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Ok(OptionalJsonBody(read_json(request, state).await?))
    }
}

async fn read_json<S: Send + Sync, T: DeserializeOwned>(
    request: Request,
    state: &S,
) -> Result<Option<T>, ApiError> {
    let is_json = is_json(request.headers());
    // The limit is the router's `DefaultBodyLimit` layer (set to MAX_BODY_BYTES).
    let bytes = Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(MAX_BODY_BYTES)
            } else {
                ApiError::field("body", "the request body could not be read")
            }
        })?;
    if bytes.is_empty() {
        return Ok(None);
    }
    if !is_json {
        return Err(ApiError::unsupported_media_type());
    }
    parse_json(&bytes).map(Some)
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.to_ascii_lowercase().ends_with("+json")
}

/// Parses a JSON body, naming the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde's derived structs also accept arrays (fields by position): refuse those, every
    // body of this API is an object.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|&b| b != b'{')
        && serde_json::from_slice::<serde_json::Value>(bytes).is_ok()
    {
        return Err(ApiError::field("body", "must be a JSON object"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        json_error(&path, &inner)
    })?;
    deserializer
        .end()
        .map_err(|err| ApiError::field("body", format!("invalid JSON: {}", message_of(&err))))?;
    Ok(value)
}

fn json_error(path: &str, err: &serde_json::Error) -> ApiError {
    let message = message_of(err);
    if err.is_syntax() || err.is_eof() || err.is_io() {
        return ApiError::field("body", format!("invalid JSON: {message}"));
    }
    // A missing field is reported at the enclosing object (an unknown one at itself): name it.
    let named = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
    };
    let field = match (path, named("missing field `")) {
        (".", Some(name)) => name,
        (path, Some(name)) => format!("{path}.{name}"),
        (".", None) => named("unknown field `").unwrap_or_else(|| "body".to_owned()),
        (path, None) => path.to_owned(),
    };
    ApiError::field(field, message)
}

/// serde_json's message without its " at line L column C" suffix.
fn message_of(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rsplit_once(" at line ") {
        Some((message, _)) => message.to_owned(),
        None => text,
    }
}

/// A single path parameter, or a 400 naming it.
pub fn path_param(param: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    param
        .map(|Path(value)| value)
        .map_err(|rejection| ApiError::field("path", rejection.body_text()))
}

/// Query parameters, checked against the names an endpoint accepts. Problems accumulate, so
/// one 400 lists all of them.
#[derive(Debug)]
pub struct QueryParams {
    values: BTreeMap<String, String>,
    errors: Vec<FieldError>,
}

impl QueryParams {
    /// Parses the query of `uri`: unknown names, repeated names and empty values are errors.
    pub fn parse(uri: &Uri, allowed: &[&str]) -> QueryParams {
        let mut params = QueryParams {
            values: BTreeMap::new(),
            errors: Vec::new(),
        };
        let pairs = match Query::<Vec<(String, String)>>::try_from_uri(uri) {
            Ok(Query(pairs)) => pairs,
            Err(rejection) => {
                params
                    .errors
                    .push(FieldError::new("query", rejection.body_text()));
                return params;
            }
        };
        for (name, value) in pairs {
            if !allowed.contains(&name.as_str()) {
                let message = format!("unknown query parameter; accepted: {}", allowed.join(", "));
                params.errors.push(FieldError::new(name, message));
            } else {
                match params.values.entry(name) {
                    Entry::Occupied(entry) => params
                        .errors
                        .push(FieldError::new(entry.key(), "given more than once")),
                    Entry::Vacant(entry) if value.is_empty() => params
                        .errors
                        .push(FieldError::new(entry.key(), "must not be empty")),
                    Entry::Vacant(entry) => {
                        entry.insert(value);
                    }
                }
            }
        }
        params
    }

    /// A text parameter.
    pub fn text(&mut self, name: &str) -> Option<String> {
        self.values.remove(name)
    }

    /// A parameter converted by `parse`; a failure is recorded against `name`.
    pub fn parsed<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let value = self.values.remove(name)?;
        match parse(&value) {
            Ok(parsed) => Some(parsed),
            Err(message) => {
                self.errors.push(FieldError::new(name, message));
                None
            }
        }
    }

    /// An RFC 3339 time parameter.
    pub fn timestamp(&mut self, name: &str) -> Option<Timestamp> {
        self.parsed(name, |text| {
            Timestamp::parse_rfc3339(text)
                .map_err(|_| "must be an RFC 3339 time such as 2026-01-02T03:04:05Z".to_owned())
        })
    }

    /// `limit` (1 to 1000, default 100) and `cursor`.
    pub fn page(&mut self) -> Page {
        let max = portcullis_store::model::MAX_PAGE_LIMIT;
        let limit = self.parsed("limit", |text| match text.parse::<u32>() {
            Ok(limit) if (1..=max).contains(&limit) => Ok(limit),
            _ => Err(format!("must be an integer from 1 to {max}")),
        });
        Page {
            limit: limit.unwrap_or(portcullis_store::model::DEFAULT_PAGE_LIMIT),
            cursor: self.text("cursor"),
        }
    }

    /// Every problem found, as one 400.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(self.errors))
        }
    }
}
