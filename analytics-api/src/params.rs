//! The query parameters, checked: every bad value is a 400 that names the parameter.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use result_store::RangeCursor;
use service_common::ApiError;
use stream_engine::core::time::parse_rfc3339_ms;

use crate::MAX_LIMIT;

pub use service_common::rest::bad_parameter;

/// The longest `product_id`, as the engine's decoder accepts.
const MAX_ID_BYTES: usize = 128;

pub fn check_product_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(bad_parameter(
            "product_id",
            &format!("must be 1 to {MAX_ID_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// The query string as name → value (the last of repeated names wins).
pub struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(map) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_parameter",
                    format!("the query string cannot be read: {e}"),
                )
            })?;
        Ok(Params(map))
    }
}

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A count from 1 to [`MAX_LIMIT`], `default` when absent.
    pub fn limit(&self, name: &str, default: usize) -> Result<usize, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        match raw.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(bad_parameter(
                name,
                &format!("must be a whole number from 1 to {MAX_LIMIT} (got {raw:?})"),
            )),
        }
    }

    /// An RFC 3339 time as UTC milliseconds.
    pub fn time(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|raw| {
                parse_rfc3339_ms(raw).map_err(|_| {
                    bad_parameter(
                        name,
                        &format!(
                            "must be an RFC 3339 time such as 2024-01-01T12:00:00Z (got {raw:?})"
                        ),
                    )
                })
            })
            .transpose()
    }

    pub fn cursor(&self) -> Result<Option<RangeCursor>, ApiError> {
        self.get("cursor")
            .map(|raw| {
                decode_cursor(raw)
                    .ok_or_else(|| bad_parameter("cursor", "is not a cursor this API returned"))
            })
            .transpose()
    }
}

/// `<window start ms>:<product_id>`, hex-encoded so that it needs no escaping in a URL.
pub fn encode_cursor(cursor: &RangeCursor) -> String {
    let plain = format!("{}:{}", cursor.window_start_ms, cursor.product_id);
    plain.bytes().map(|b| format!("{b:02x}")).collect()
}

pub fn decode_cursor(raw: &str) -> Option<RangeCursor> {
    if !raw.len().is_multiple_of(2) || raw.len() > 1024 {
        return None;
    }
    let bytes = (0..raw.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(raw.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    let plain = String::from_utf8(bytes).ok()?;
    let (ms, product_id) = plain.split_once(':')?;
    if product_id.len() > MAX_ID_BYTES {
        return None;
    }
    Some(RangeCursor {
        window_start_ms: ms.parse().ok()?,
        product_id: product_id.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        for product_id in ["a b/ü:|", ""] {
            let cursor = RangeCursor {
                window_start_ms: 1_704_110_400_000,
                product_id: product_id.to_owned(),
            };
            assert_eq!(decode_cursor(&encode_cursor(&cursor)), Some(cursor));
        }
        let too_long = encode_cursor(&RangeCursor {
            window_start_ms: 0,
            product_id: "x".repeat(200),
        });
        for junk in ["", "zz", "abc", "3a", "3132", "78783a", too_long.as_str()] {
            assert_eq!(decode_cursor(junk), None, "{junk}");
        }
    }
}
