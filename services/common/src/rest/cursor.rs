//! Keyset pagination: a page is the rows after the last key of the previous page, in key
//! order, so a walk sees every row that existed when it started exactly once, however many
//! rows are inserted meanwhile (a new row sorts either before the cursor, unseen, or after
//! it, seen once). The cursor is opaque to clients: the key, versioned and hex-encoded.

use axum::http::StatusCode;
use serde::Serialize;

use crate::ApiError;

/// The most rows a page holds.
pub const MAX_LIMIT: usize = 200;
/// Rows per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 50;

/// One page of a list: `{"items": [...], "next_cursor": "..." | null}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `limit` and `cursor`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    /// The key after which the page starts.
    pub after: Option<String>,
}

impl PageRequest {
    /// From the query's `limit` (1 to [`MAX_LIMIT`]) and `cursor` (as [`Page::next_cursor`]
    /// gave it): 400 `invalid_parameter` naming the one that is wrong.
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<PageRequest, ApiError> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    invalid(
                        "limit",
                        &format!("must be an integer from 1 to {MAX_LIMIT}"),
                    )
                })?,
        };
        let after = cursor
            .map(|c| decode(c).ok_or_else(|| invalid("cursor", "is not a cursor this API gave")))
            .transpose()?;
        Ok(PageRequest { limit, after })
    }

    /// The page of `rows` fetched with `LIMIT limit + 1` in key order: the extra row, if
    /// any, only says that there is a next page.
    pub fn page<T>(&self, mut rows: Vec<T>, key: impl Fn(&T) -> &str) -> Page<T> {
        let more = rows.len() > self.limit;
        rows.truncate(self.limit);
        let next_cursor = if more {
            rows.last().map(|r| encode(key(r)))
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }

    /// The `LIMIT` to query with.
    pub fn fetch(&self) -> i64 {
        self.limit as i64 + 1
    }
}

fn invalid(name: &str, problem: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        format!("`{name}` {problem}"),
    )
}

const VERSION: &str = "k1:";

/// The cursor after `key`.
pub fn encode(key: &str) -> String {
    let mut out = String::with_capacity(2 * (VERSION.len() + key.len()));
    for b in VERSION.bytes().chain(key.bytes()) {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The key of a cursor [`encode`] made; `None` for anything else.
pub fn decode(cursor: &str) -> Option<String> {
    if !cursor.len().is_multiple_of(2) || cursor.len() > 512 {
        return None;
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(cursor.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    let text = String::from_utf8(bytes).ok()?;
    let key = text.strip_prefix(VERSION)?;
    (!key.is_empty() && key.bytes().all(|b| b.is_ascii_graphic())).then(|| key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let key = "0192f3a1b2c34d5e8f9a0b1c2d3e4f50";
        assert_eq!(decode(&encode(key)).as_deref(), Some(key));
        for bad in ["", "zz", "6b313a", "abc", "6b323a6162", "ff", "é"] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn limits_outside_one_to_two_hundred_are_refused() {
        assert_eq!(PageRequest::parse(None, None).unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(PageRequest::parse(Some("200"), None).unwrap().limit, 200);
        for bad in ["0", "201", "-1", "ten", ""] {
            let e = PageRequest::parse(Some(bad), None).unwrap_err();
            assert_eq!(e.code, "invalid_parameter", "{bad:?}");
        }
        assert!(PageRequest::parse(None, Some("nope")).is_err());
    }

    #[test]
    fn the_extra_row_makes_the_next_cursor() {
        let request = PageRequest {
            limit: 2,
            after: None,
        };
        let page = request.page(vec!["a", "b", "c"], |r| r);
        assert_eq!(page.items, ["a", "b"]);
        assert_eq!(
            page.next_cursor.as_deref().and_then(decode).as_deref(),
            Some("b")
        );
        let last = request.page(vec!["a", "b"], |r| r);
        assert_eq!(last.next_cursor, None);
    }
}
