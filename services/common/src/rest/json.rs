//! JSON bodies and query strings, with every problem a structured 400.

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{BodyLimits, read_body};
use crate::ApiError;

/// One problem with one field of a body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field's path, such as `price.amount` or `lines[2].quantity` (empty for the body).
    pub field: String,
    /// A stable code: `required`, `unknown_field`, `invalid_type`, `invalid_value`,
    /// `too_long`, `out_of_range`, `invalid_format`, ...
    pub code: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

/// The problems found in a body: `400 validation_failed` with a `fields` list.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Invalid(pub Vec<FieldError>);

impl Invalid {
    pub fn push(
        &mut self,
        field: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) {
        self.0.push(FieldError::new(field, code, message));
    }

    /// Checks a text field: `min..=max` characters, no control characters (but newlines and
    /// tabs when `multiline`), no NUL (PostgreSQL cannot store it).
    pub fn text(&mut self, field: &str, value: &str, min: usize, max: usize, multiline: bool) {
        let chars = value.chars().count();
        if chars < min {
            if min == 1 {
                self.push(field, "required", "must not be empty");
            } else {
                self.push(
                    field,
                    "too_short",
                    format!("must be at least {min} characters"),
                );
            }
        } else if chars > max {
            self.push(
                field,
                "too_long",
                format!("must be at most {max} characters"),
            );
        } else if value
            .chars()
            .any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\t' || c == '\r')))
        {
            self.push(
                field,
                "invalid_character",
                "must not contain control characters",
            );
        }
    }

    /// Checks that `value` is within `range`.
    pub fn range(&mut self, field: &str, value: i64, range: std::ops::RangeInclusive<i64>) {
        if !range.contains(&value) {
            self.push(
                field,
                "out_of_range",
                format!("must be from {} to {}", range.start(), range.end()),
            );
        }
    }

    /// `Ok(value)` when no problem was found.
    pub fn or<T>(self, value: T) -> Result<T, Invalid> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl From<Invalid> for ApiError {
    fn from(invalid: Invalid) -> Self {
        let summary = invalid
            .0
            .iter()
            .map(|f| {
                if f.field.is_empty() {
                    f.message.clone()
                } else {
                    format!("{}: {}", f.field, f.message)
                }
            })
            .collect::<Vec<_>>()
            .join("; ");
        ApiError::new(StatusCode::BAD_REQUEST, "validation_failed", summary)
            .with_details("fields", serde_json::json!(invalid.0))
    }
}

/// `bytes` as JSON deserialized into `T`: 400 `malformed_json` when it is not JSON, 400
/// `validation_failed` naming the field when it does not fit `T` (a missing, unknown or
/// mistyped field).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not JSON: {e}"),
        )
    })?;
    Ok(from_value(value)?)
}

/// A JSON object deserialized into `T` (a struct), as [`parse_json`] does. Anything but an
/// object is refused, though serde would read a struct from an array of its fields.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, Invalid> {
    if !value.is_object() {
        return Err(Invalid(vec![FieldError::new(
            "",
            "invalid_type",
            "must be a JSON object",
        )]));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        Invalid(vec![field_error(&path, &inner)])
    })
}

/// The field and code of a serde error message.
fn field_error(path: &str, message: &str) -> FieldError {
    let path = if path == "." { "" } else { path };
    let named = |prefix: &str| {
        message.strip_prefix(prefix).and_then(|rest| {
            let rest = rest.strip_prefix('`')?;
            rest.split('`').next().map(str::to_owned)
        })
    };
    // serde_path_to_error's path ends at the unknown field itself, and at the parent of a
    // missing one.
    let join = |name: String| {
        if path.is_empty() {
            name
        } else if path == name || path.ends_with(&format!(".{name}")) {
            path.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    if let Some(name) = named("missing field ") {
        FieldError::new(join(name), "required", "is required")
    } else if let Some(name) = named("unknown field ") {
        FieldError::new(
            join(name),
            "unknown_field",
            "is not a field of this resource",
        )
    } else if message.starts_with("invalid type") {
        FieldError::new(path, "invalid_type", message)
    } else {
        FieldError::new(path, "invalid_value", message)
    }
}

/// A JSON request body deserialized into `T`, within the [`BodyLimits`] of the request's
/// extensions (an `axum::Extension` layer) or the default ones; any problem is a structured
/// error (415 when the content type is not JSON).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" && essence != "application/merge-patch+json" {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "Content-Type {:?} is not application/json",
                    if content_type.is_empty() {
                        "(none)"
                    } else {
                        content_type
                    }
                ),
            ));
        }
        let limits = parts
            .extensions
            .get::<BodyLimits>()
            .copied()
            .unwrap_or_default();
        let bytes = read_body(&parts.headers, Body::new(body), limits).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// The query string deserialized into `T`: 400 `invalid_parameter` naming the problem.
pub fn query<T: DeserializeOwned>(raw: Option<&str>) -> Result<T, ApiError> {
    serde_urlencoded::from_str(raw.unwrap_or("")).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            format!("the query string is not valid: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Line {
        product_id: String,
        quantity: i64,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Order {
        customer_id: String,
        lines: Vec<Line>,
    }

    fn problem(body: &str) -> (StatusCode, &'static str, serde_json::Value) {
        let e = parse_json::<Order>(body.as_bytes()).unwrap_err();
        let fields = e.details.map_or(serde_json::Value::Null, |(_, v)| v);
        (e.status, e.code, fields)
    }

    #[test]
    fn every_body_problem_names_its_field() {
        let (status, code, _) = problem("{\"customer_id\":");
        assert_eq!((status, code), (StatusCode::BAD_REQUEST, "malformed_json"));

        let (_, code, fields) = problem(r#"{"lines": []}"#);
        assert_eq!(code, "validation_failed");
        assert_eq!(fields[0]["field"], "customer_id");
        assert_eq!(fields[0]["code"], "required");

        let (_, _, fields) =
            problem(r#"{"customer_id": "c", "lines": [{"product_id": "p", "quantity": "2"}]}"#);
        assert_eq!(fields[0]["field"], "lines[0].quantity");
        assert_eq!(fields[0]["code"], "invalid_type");

        let (_, _, fields) = problem(r#"{"customer_id": "c", "lines": [], "coupon": "X"}"#);
        assert_eq!(fields[0]["field"], "coupon");
        assert_eq!(fields[0]["code"], "unknown_field");

        let (_, _, fields) = problem(r#"{"customer_id": "c", "lines": [{"product_id": "p"}]}"#);
        assert_eq!(fields[0]["field"], "lines[0].quantity");
        assert_eq!(fields[0]["code"], "required");
    }
}
