//! What every resource API shares, so that a handler holds only its resource's logic:
//!
//! - [`read_body`] / [`JsonBody`]: a request body read within a size and time limit, parsed as
//!   JSON, and deserialized with every problem reported as a 400 naming the field;
//! - [`Invalid`] / [`FieldError`]: `400 validation_failed` with a `fields` list;
//! - [`etag`] / [`IfMatch`]: versions as strong `ETag`s, and the `If-Match` precondition;
//! - [`IdempotencyKey`]: the `Idempotency-Key` header of creating POSTs;
//! - [`merge_patch`]: RFC 7396 JSON merge patch;
//! - [`money`]: amounts in minor units of an ISO 4217 currency;
//! - [`query`]: query strings deserialized with `400 invalid_parameter` on any problem;
//! - [`Page`] / [`cursor`]: keyset pages, `{"items": [...], "next_cursor": ...}`.
//!
//! Unknown fields in a body are refused (`unknown_field`), so a misspelt field is an error
//! rather than silently ignored.

pub mod cursor;
mod json;
pub use primitives::money;

pub use cursor::{Page, PageRequest};
pub use json::{FieldError, Invalid, JsonBody, from_value, parse_json, query};

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::ApiError;

/// How much of a request body a service reads, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Bodies over this many bytes are refused with 413.
    pub max_bytes: usize,
    /// A body not received whole within this is refused with 408 (a stalled client).
    pub read_timeout: Duration,
}

impl Default for BodyLimits {
    /// 1 MiB within 30 s: far more than any resource of the CRUD services needs (a batch of
    /// 1,000 products is about 300 KiB).
    fn default() -> Self {
        BodyLimits {
            max_bytes: 1 << 20,
            read_timeout: Duration::from_secs(30),
        }
    }
}

/// Reads `body` whole: 413 `body_too_large` past `limits.max_bytes` (at once when the declared
/// length is over), 408 `body_timeout` when it does not arrive within `limits.read_timeout`.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limits: BodyLimits,
) -> Result<Bytes, ApiError> {
    let limit = limits.max_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let read = tokio::time::timeout(limits.read_timeout, axum::body::to_bytes(body, limit));
    let read = read.await.map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!("the body did not arrive within {:?}", limits.read_timeout),
        )
    })?;
    read.map_err(|e| {
        let over = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if over {
            too_large()
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "body_unreadable", e.to_string())
        }
    })
}

/// The strong entity tag of a resource version: `"<version>"`.
pub fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits and quotes are a valid header")
}

/// The `If-Match` precondition of a request (RFC 9110 §13.1.1: strong comparison, so a weak
/// tag never matches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// No `If-Match`: the change applies to whatever version is current.
    Absent,
    /// `If-Match: *`: any current version.
    Any,
    /// The versions the client names; a tag that is weak or no version of ours names none,
    /// so it never matches (412).
    Versions(Vec<i64>),
}

impl IfMatch {
    /// Whether a resource at `version` satisfies the precondition.
    pub fn matches(&self, version: i64) -> bool {
        match self {
            IfMatch::Absent | IfMatch::Any => true,
            IfMatch::Versions(versions) => versions.contains(&version),
        }
    }

    /// Whether the client named versions: then a concurrent change is a 412, not retried.
    pub fn names_versions(&self) -> bool {
        matches!(self, IfMatch::Versions(_))
    }

    fn parse(value: &str) -> IfMatch {
        let value = value.trim();
        if value == "*" {
            return IfMatch::Any;
        }
        let versions = value
            .split(',')
            .map(str::trim)
            .filter(|tag| !tag.starts_with("W/"))
            .filter_map(|tag| {
                tag.strip_prefix('"')?
                    .strip_suffix('"')?
                    .parse::<i64>()
                    .ok()
            })
            .filter(|v| *v >= 1)
            .collect();
        IfMatch::Versions(versions)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(match parts.headers.get(header::IF_MATCH) {
            None => IfMatch::Absent,
            // Not visible ASCII: no tag of ours.
            Some(value) => IfMatch::parse(value.to_str().unwrap_or("")),
        })
    }
}

/// 412 `precondition_failed`: the `If-Match` version is not the current one.
pub fn precondition_failed(current: i64) -> ApiError {
    ApiError::new(
        StatusCode::PRECONDITION_FAILED,
        "precondition_failed",
        format!("If-Match does not name the current version ({current})"),
    )
}

/// The `Idempotency-Key` of a creating POST: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(pub String);

/// The longest `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, ApiError> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(None);
        };
        let key = value
            .to_str()
            .ok()
            .filter(|k| {
                !k.is_empty()
                    && k.len() <= MAX_IDEMPOTENCY_KEY
                    && k.bytes().all(|b| b.is_ascii_graphic())
            })
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_idempotency_key",
                    format!(
                        "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
                    ),
                )
            })?;
        Ok(Some(IdempotencyKey(key.to_owned())))
    }
}

/// 422 `idempotency_key_reused`: the key was used before with another body.
pub fn idempotency_key_reused() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "this Idempotency-Key was used with another request body",
    )
}

/// Applies an RFC 7396 merge patch to `target`: members of an object patch replace, `null`
/// removes, and anything else replaces the whole target.
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    use serde_json::Value;
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let Value::Object(target) = target else {
        unreachable!("made an object above");
    };
    for (name, value) in patch {
        if value.is_null() {
            target.remove(name);
        } else {
            merge_patch(target.entry(name.clone()).or_insert(Value::Null), value);
        }
    }
}

/// The answer to a creating request (or its replay): `status`, `Location`, the `ETag` of the
/// body's `version`, and the body.
pub fn created(status: u16, location: &str, body: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED);
    let version = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("version").and_then(serde_json::Value::as_i64));
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if let Some(version) = version {
        response.headers_mut().insert(header::ETAG, etag(version));
    }
    response
}

/// A resource with its `ETag`, as `GET` and `PATCH` answer.
pub fn tagged<T: serde::Serialize>(version: i64, resource: &T) -> axum::response::Response {
    use axum::response::IntoResponse;
    ([(header::ETAG, etag(version))], axum::Json(resource)).into_response()
}

/// A text query parameter: at most `max` characters, no control characters (PostgreSQL
/// cannot even compare a NUL); else 400 `invalid_parameter` naming it.
pub fn text_parameter(
    name: &str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.chars().count() > max => Err(bad_parameter(
            name,
            &format!("is longer than {max} characters"),
        )),
        Some(v) if v.chars().any(char::is_control) => {
            Err(bad_parameter(name, "must not contain control characters"))
        }
        v => Ok(v),
    }
}

/// 400 `invalid_parameter` naming the query parameter.
pub fn bad_parameter(name: &str, problem: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        format!("`{name}` {problem}"),
    )
}

/// 404 `not_found` for `what` (`"product"`) with `id`.
pub fn not_found(what: &str, id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no {what} with id {id:?}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        // The examples of RFC 7396, appendix A.
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (mut target, patch, expected) in cases {
            merge_patch(&mut target, &patch);
            assert_eq!(target, expected, "patch {patch}");
        }
    }

    #[test]
    fn if_match_compares_strong_tags_only_and_reads_lists() {
        assert!(IfMatch::parse("\"3\"").matches(3));
        assert!(!IfMatch::parse("\"3\"").matches(4));
        assert!(
            !IfMatch::parse("W/\"3\"").matches(3),
            "weak tags never match"
        );
        let listed = IfMatch::parse("\"x\", \"1\", \"2\"");
        assert!(listed.matches(1) && listed.matches(2) && !listed.matches(3));
        assert_eq!(IfMatch::parse("*"), IfMatch::Any);
        for foreign in ["\"abc\"", "\"0\"", "\"-1\"", "3", ""] {
            assert_eq!(
                IfMatch::parse(foreign),
                IfMatch::Versions(Vec::new()),
                "{foreign:?}"
            );
        }
        assert!(IfMatch::Absent.matches(9));
    }
}
