//! A request body into events: the formats `POST /api/v1/events` accepts, and the validation of each
//! event by the engine's own decoder (so that ingest accepts exactly what the engine counts).

use std::borrow::Cow;

use axum::body::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;
use stream_engine::{RejectReason, decode_event};

/// How the body holds its events, from the `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/json`: one event (an object) or an array of events.
    Json,
    /// `application/x-ndjson`: one event per line; blank lines are ignored.
    Ndjson,
}

impl Format {
    /// The format of a `Content-Type` value, parameters (such as `charset`) ignored.
    pub fn from_content_type(value: Option<&str>) -> Option<Format> {
        let essence = value?.split(';').next()?.trim();
        if essence.eq_ignore_ascii_case("application/json") {
            Some(Format::Json)
        } else if essence.eq_ignore_ascii_case("application/x-ndjson")
            || essence.eq_ignore_ascii_case("application/ndjson")
        {
            Some(Format::Ndjson)
        } else {
            None
        }
    }
}

/// A valid event, ready to append: keyed by its `product_id`, its bytes as received.
pub use event_log::Record;

/// An event the body held that was not valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Rejected {
    /// Position in the body: array index, or 0-based line number for NDJSON.
    pub index: usize,
    pub code: &'static str,
    pub message: String,
}

/// The events of a body, valid and not.
#[derive(Debug, Default)]
pub struct Split {
    pub records: Vec<Record>,
    /// The event time of each record (UTC milliseconds), in the same order.
    pub event_times_ms: Vec<i64>,
    pub rejected: Vec<Rejected>,
}

/// Why a body as a whole could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the body holds no events")]
    Empty,
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
}

impl BodyError {
    pub fn code(&self) -> &'static str {
        match self {
            BodyError::Empty => "empty_body",
            BodyError::InvalidJson(_) => RejectReason::InvalidJson.code(),
        }
    }
}

/// Splits `body` into events and validates each.
pub fn split(format: Format, body: &Bytes) -> Result<Split, BodyError> {
    let mut split = Split::default();
    match format {
        Format::Ndjson => {
            for (index, line) in body.split(|&b| b == b'\n').enumerate() {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                split.add(index, body.slice_ref(line));
            }
        }
        Format::Json => {
            let text = body.trim_ascii();
            if text.first() == Some(&b'[') {
                let items: Vec<&RawValue> = serde_json::from_slice(text)
                    .map_err(|e| BodyError::InvalidJson(e.to_string()))?;
                for (index, item) in items.into_iter().enumerate() {
                    split.add(index, body.slice_ref(item.get().as_bytes()));
                }
            } else if !text.is_empty() {
                // One event; the decoder says what is wrong with it, if anything.
                split.add(0, body.slice_ref(text));
            }
        }
    }
    if split.records.is_empty() && split.rejected.is_empty() {
        return Err(BodyError::Empty);
    }
    Ok(split)
}

impl Split {
    fn add(&mut self, index: usize, event: Bytes) {
        match decode_event(&event) {
            Ok(decoded) => {
                let key = match decoded.product_id {
                    Cow::Borrowed(id) => event.slice_ref(id.as_bytes()),
                    // An id with escapes was decoded into a new string.
                    Cow::Owned(id) => Bytes::from(id),
                };
                self.event_times_ms.push(decoded.timestamp_ms);
                self.records.push(Record::new(key, event));
            }
            Err(rejection) => self.rejected.push(Rejected {
                index,
                code: rejection.reason.code(),
                message: rejection.message,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"user_id":"u1","product_id":"p1","event_type":"VIEW_PRODUCT","timestamp":"2024-01-01T12:00:00Z"}"#;
    const ESCAPED: &str = r#"{"user_id":"u2","product_id":"p\u00e9","event_type":"ADD_TO_CART","timestamp":"2024-01-01T13:00:00+01:00"}"#;

    fn keys(split: &Split) -> Vec<&[u8]> {
        split.records.iter().map(|r| &r.key[..]).collect()
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Format::from_content_type(Some("application/json")),
            Some(Format::Json)
        );
        assert_eq!(
            Format::from_content_type(Some("Application/JSON; charset=utf-8")),
            Some(Format::Json)
        );
        assert_eq!(
            Format::from_content_type(Some("application/x-ndjson")),
            Some(Format::Ndjson)
        );
        assert_eq!(Format::from_content_type(Some("text/plain")), None);
        assert_eq!(Format::from_content_type(None), None);
    }

    #[test]
    fn one_object() {
        let split = split(Format::Json, &Bytes::from(format!(" {GOOD}\n"))).unwrap();
        assert_eq!(keys(&split), vec![b"p1"]);
        assert_eq!(&split.records[0].value[..], GOOD.as_bytes());
        assert!(split.rejected.is_empty());
    }

    #[test]
    fn an_array_keeps_the_good_and_names_the_bad() {
        let body = format!(r#"[{GOOD}, 17, {{"user_id":""}}, {ESCAPED}]"#);
        let split = split(Format::Json, &Bytes::from(body)).unwrap();
        assert_eq!(keys(&split), vec!["p1".as_bytes(), "pé".as_bytes()]);
        assert_eq!(&split.records[1].value[..], ESCAPED.as_bytes());
        let rejected: Vec<_> = split.rejected.iter().map(|r| (r.index, r.code)).collect();
        assert_eq!(rejected, vec![(1, "not_an_object"), (2, "empty_id")]);
    }

    #[test]
    fn ndjson_lines_blank_lines_and_crlf() {
        let body = format!("{GOOD}\r\n\n{{bad\n  \n{ESCAPED}");
        let split = split(Format::Ndjson, &Bytes::from(body)).unwrap();
        assert_eq!(keys(&split), vec!["p1".as_bytes(), "pé".as_bytes()]);
        assert_eq!(&split.records[0].value[..], GOOD.as_bytes());
        assert_eq!(split.rejected.len(), 1);
        assert_eq!(split.rejected[0].index, 2);
        assert_eq!(split.rejected[0].code, "invalid_json");
    }

    #[test]
    fn bodies_that_are_not_events() {
        assert_eq!(
            split(Format::Json, &Bytes::new()).unwrap_err(),
            BodyError::Empty
        );
        assert_eq!(
            split(Format::Ndjson, &Bytes::from("\n \n")).unwrap_err(),
            BodyError::Empty
        );
        assert_eq!(
            split(Format::Json, &Bytes::from("[]")).unwrap_err(),
            BodyError::Empty
        );
        assert!(matches!(
            split(Format::Json, &Bytes::from("[{}, ")),
            Err(BodyError::InvalidJson(_))
        ));
        let one = split(Format::Json, &Bytes::from("{not json")).unwrap();
        assert_eq!(one.rejected[0].code, "invalid_json");
    }
}
