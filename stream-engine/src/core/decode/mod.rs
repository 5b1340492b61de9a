//! Activity events from JSON bytes, validated field by field.
//!
//! The contract (`shared/design.md` §3):
//! `{"user_id":"u123","product_id":"42","event_type":"VIEW_PRODUCT",
//!   "timestamp":"2024-01-01T12:00:00Z","metadata":{"session_id":"abc"}}`.
//!
//! One pass of a hand-written serde visitor reads the object: strings without escapes are
//! borrowed from the input, `metadata` is kept only as its raw length, unknown fields (such as
//! the `event_id` ingest may add) are skipped. Every rejection carries exactly one
//! [`RejectReason`] and the field it concerns, so a summary can count rejections by reason.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::time::{TimestampError, parse_rfc3339_ms};

mod scan;

/// Longest accepted `user_id` and `product_id`, in bytes.
pub const MAX_ID_LEN: usize = 128;
/// Longest accepted `event_type`, in bytes.
pub const MAX_EVENT_TYPE_LEN: usize = 64;
/// Largest accepted `metadata` object, in bytes of JSON text.
pub const MAX_METADATA_BYTES: usize = 4096;
/// Largest accepted event, in bytes of JSON text.
pub const MAX_EVENT_BYTES: usize = 16 * 1024;

/// A decoded, valid activity event. Strings borrow from the input unless they held escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<'a> {
    pub user_id: Cow<'a, str>,
    pub product_id: Cow<'a, str>,
    pub event_type: Cow<'a, str>,
    /// Event time in UTC milliseconds since the epoch.
    pub timestamp_ms: i64,
}

/// The one reason an input was rejected. [`RejectReason::code`] is the stable,
/// machine-readable name used in summaries, metrics, dead-letter headers and HTTP errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// Not valid JSON text (including invalid UTF-8 and trailing characters).
    InvalidJson,
    /// Valid JSON, but not an object.
    NotAnObject,
    /// A required field is absent (or `null`).
    MissingField,
    /// A field has the wrong JSON type (a number where a string belongs, ...).
    WrongType,
    /// The same field appears twice.
    DuplicateField,
    /// An id is the empty string.
    EmptyId,
    /// An id or the event type is longer than its bound.
    TooLong,
    /// `timestamp` is not an RFC 3339 date-time, or is out of range.
    BadTimestamp,
    /// `event_type` is not an upper-snake identifier (`VIEW_PRODUCT`).
    BadEventType,
    /// `metadata` is present but not an object.
    BadMetadata,
    /// `metadata` is larger than [`MAX_METADATA_BYTES`].
    MetadataTooLarge,
    /// The whole event is larger than [`MAX_EVENT_BYTES`].
    EventTooLarge,
}

impl RejectReason {
    pub const ALL: [RejectReason; 12] = [
        RejectReason::InvalidJson,
        RejectReason::NotAnObject,
        RejectReason::MissingField,
        RejectReason::WrongType,
        RejectReason::DuplicateField,
        RejectReason::EmptyId,
        RejectReason::TooLong,
        RejectReason::BadTimestamp,
        RejectReason::BadEventType,
        RejectReason::BadMetadata,
        RejectReason::MetadataTooLarge,
        RejectReason::EventTooLarge,
    ];

    pub fn code(self) -> &'static str {
        match self {
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::NotAnObject => "not_an_object",
            RejectReason::MissingField => "missing_field",
            RejectReason::WrongType => "wrong_type",
            RejectReason::DuplicateField => "duplicate_field",
            RejectReason::EmptyId => "empty_id",
            RejectReason::TooLong => "too_long",
            RejectReason::BadTimestamp => "bad_timestamp",
            RejectReason::BadEventType => "bad_event_type",
            RejectReason::BadMetadata => "bad_metadata",
            RejectReason::MetadataTooLarge => "metadata_too_large",
            RejectReason::EventTooLarge => "event_too_large",
        }
    }
}

/// Why one input was rejected: the reason, the field concerned if any, and a message for
/// people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: RejectReason,
    pub field: Option<&'static str>,
    pub message: String,
}

impl Rejection {
    fn new(reason: RejectReason, field: Option<&'static str>, message: impl Into<String>) -> Self {
        Rejection {
            reason,
            field,
            message: message.into(),
        }
    }

    fn field(reason: RejectReason, field: &'static str, message: impl fmt::Display) -> Self {
        Self::new(reason, Some(field), format!("`{field}`: {message}"))
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason.code(), self.message)
    }
}

impl std::error::Error for Rejection {}

/// Decodes and validates one event from JSON bytes.
pub fn decode_event(input: &[u8]) -> Result<Event<'_>, Rejection> {
    if input.len() > MAX_EVENT_BYTES {
        return Err(Rejection::new(
            RejectReason::EventTooLarge,
            None,
            format!(
                "event is {} bytes, more than the {MAX_EVENT_BYTES} allowed",
                input.len()
            ),
        ));
    }
    if let Some(fields) = scan::event(input) {
        return fields.validate();
    }
    decode_with_serde(input)
}

/// The general path: serde_json with the field-by-field visitor. It decides every input the
/// fast scanner passes on, and classifies every rejection.
pub fn decode_with_serde(input: &[u8]) -> Result<Event<'_>, Rejection> {
    // Checking UTF-8 once for the whole text lets the parser skip it per string, which is
    // faster than `from_slice` (measured; see BENCHMARKS.md).
    let text = std::str::from_utf8(input).map_err(|e| {
        Rejection::new(
            RejectReason::InvalidJson,
            None,
            format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        )
    })?;
    let mut de = serde_json::Deserializer::from_str(text);
    let fields = match de.deserialize_any(EventVisitor) {
        Ok(fields) => fields,
        Err(e) => return Err(syntax_error(&e)),
    };
    if let Err(e) = de.end() {
        return Err(syntax_error(&e));
    }
    fields?.validate()
}

fn syntax_error(e: &serde_json::Error) -> Rejection {
    Rejection::new(RejectReason::InvalidJson, None, e.to_string())
}

pub(crate) const FIELDS: [&str; 5] = [
    "user_id",
    "product_id",
    "event_type",
    "timestamp",
    "metadata",
];

/// The fields as read, before validation. The visitor records the first field-level problem
/// and keeps reading, so that a syntax error later in the text still wins as `invalid_json`.
#[derive(Default)]
pub(crate) struct RawFields<'a> {
    pub(crate) strings: [Option<Cow<'a, str>>; 4],
    pub(crate) seen: [bool; 5],
    pub(crate) metadata_len: Option<usize>,
    pub(crate) metadata_is_object: bool,
}

impl<'a> RawFields<'a> {
    pub(crate) fn validate(self) -> Result<Event<'a>, Rejection> {
        let RawFields {
            strings: [user_id, product_id, event_type, timestamp],
            metadata_len,
            metadata_is_object,
            ..
        } = self;
        let user_id = id(user_id, "user_id")?;
        let product_id = id(product_id, "product_id")?;
        let event_type = required(event_type, "event_type")?;
        if event_type.len() > MAX_EVENT_TYPE_LEN {
            return Err(Rejection::field(
                RejectReason::TooLong,
                "event_type",
                format_args!("longer than {MAX_EVENT_TYPE_LEN} bytes"),
            ));
        }
        if !is_upper_snake(&event_type) {
            return Err(Rejection::field(
                RejectReason::BadEventType,
                "event_type",
                format_args!("{event_type:?} is not an upper-snake identifier like VIEW_PRODUCT"),
            ));
        }
        let timestamp = required(timestamp, "timestamp")?;
        let timestamp_ms = parse_rfc3339_ms(&timestamp).map_err(|e: TimestampError| {
            Rejection::field(
                RejectReason::BadTimestamp,
                "timestamp",
                format_args!("{:?}: {}", truncated(&timestamp), e.message()),
            )
        })?;
        if let Some(len) = metadata_len {
            if !metadata_is_object {
                return Err(Rejection::field(
                    RejectReason::BadMetadata,
                    "metadata",
                    "must be an object",
                ));
            }
            if len > MAX_METADATA_BYTES {
                return Err(Rejection::field(
                    RejectReason::MetadataTooLarge,
                    "metadata",
                    format_args!("{len} bytes, more than the {MAX_METADATA_BYTES} allowed"),
                ));
            }
        }
        Ok(Event {
            user_id,
            product_id,
            event_type,
            timestamp_ms,
        })
    }
}

fn required<'a>(
    value: Option<Cow<'a, str>>,
    field: &'static str,
) -> Result<Cow<'a, str>, Rejection> {
    value.ok_or_else(|| Rejection::field(RejectReason::MissingField, field, "is required"))
}

fn id<'a>(value: Option<Cow<'a, str>>, field: &'static str) -> Result<Cow<'a, str>, Rejection> {
    let value = required(value, field)?;
    if value.is_empty() {
        return Err(Rejection::field(
            RejectReason::EmptyId,
            field,
            "must not be empty",
        ));
    }
    if value.len() > MAX_ID_LEN {
        return Err(Rejection::field(
            RejectReason::TooLong,
            field,
            format_args!("{} bytes, longer than {MAX_ID_LEN}", value.len()),
        ));
    }
    Ok(value)
}

fn is_upper_snake(s: &str) -> bool {
    let b = s.as_bytes();
    matches!(b.first(), Some(b'A'..=b'Z'))
        && b.iter()
            .all(|c| matches!(c, b'A'..=b'Z' | b'0'..=b'9' | b'_'))
}

fn truncated(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Result<RawFields<'de>, Rejection>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an activity event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = RawFields::default();
        let mut problem: Option<Rejection> = None;
        while let Some(FieldKey(field)) = map.next_key::<FieldKey>()? {
            let Some(slot) = field else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let name = FIELDS[slot];
            if std::mem::replace(&mut fields.seen[slot], true) && problem.is_none() {
                problem = Some(Rejection::field(
                    RejectReason::DuplicateField,
                    name,
                    "appears more than once",
                ));
            }
            if slot == 4 {
                let raw: &'de RawValue = map.next_value()?;
                let text = raw.get();
                if text != "null" {
                    fields.metadata_len = Some(text.len());
                    fields.metadata_is_object = text.starts_with('{');
                }
                continue;
            }
            match map.next_value::<StrOrOther<'de>>()? {
                StrOrOther::Str(s) => fields.strings[slot] = Some(s),
                StrOrOther::Null => {}
                StrOrOther::Other(kind) => {
                    if problem.is_none() {
                        problem = Some(Rejection::field(
                            RejectReason::WrongType,
                            name,
                            format_args!("expected a string, found {kind}"),
                        ));
                    }
                }
            }
        }
        Ok(match problem {
            Some(p) => Err(p),
            None => Ok(fields),
        })
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Err(not_an_object("an array")))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err(not_an_object("a boolean")))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err(not_an_object("a number")))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err(not_an_object("a number")))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err(not_an_object("a number")))
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Err(not_an_object("a string")))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Err(not_an_object("null")))
    }
}

fn not_an_object(found: &str) -> Rejection {
    Rejection::new(
        RejectReason::NotAnObject,
        None,
        format!("expected an event object, found {found}"),
    )
}

/// An object key: the index of a known field in [`FIELDS`], or `None` for any other key.
/// Read without allocating, whether or not the key could be borrowed.
struct FieldKey(Option<usize>);

impl<'de> de::Deserialize<'de> for FieldKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = FieldKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E>(self, key: &str) -> Result<FieldKey, E> {
                Ok(FieldKey(FIELDS.iter().position(|f| *f == key)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A field value that should be a string; anything else is remembered by kind, not failed on,
/// so that the visitor can report which field had the wrong type.
enum StrOrOther<'a> {
    Str(Cow<'a, str>),
    Null,
    Other(&'static str),
}

impl<'de> de::Deserialize<'de> for StrOrOther<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrOrOther<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(StrOrOther::Str(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(StrOrOther::Str(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
                Ok(StrOrOther::Str(Cow::Owned(s)))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(StrOrOther::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(StrOrOther::Other("a boolean"))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(StrOrOther::Other("a number"))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(StrOrOther::Other("a number"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(StrOrOther::Other("a number"))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(StrOrOther::Other("an array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(StrOrOther::Other("an object"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"user_id":"u123","product_id":"42","event_type":"VIEW_PRODUCT","timestamp":"2024-01-01T12:00:00Z","metadata":{"session_id":"abc"}}"#;

    fn reason(input: &str) -> (RejectReason, Option<&'static str>) {
        let r = decode_event(input.as_bytes()).unwrap_err();
        (r.reason, r.field)
    }

    #[test]
    fn decodes_the_contract_example_borrowing_strings() {
        let e = decode_event(GOOD.as_bytes()).unwrap();
        assert_eq!(e.user_id, "u123");
        assert_eq!(e.product_id, "42");
        assert_eq!(e.event_type, "VIEW_PRODUCT");
        assert_eq!(e.timestamp_ms, 1_704_110_400_000);
        assert!(matches!(e.user_id, Cow::Borrowed(_)));
    }

    #[test]
    fn normalises_offsets_and_unescapes_strings() {
        let e = decode_event(
            br#"{"user_id":"u\u00e9\"x","product_id":"p","event_type":"ADD_TO_CART","timestamp":"2024-01-01T14:00:00.250+02:00"}"#,
        )
        .unwrap();
        assert_eq!(e.user_id, "u\u{e9}\"x");
        assert_eq!(e.timestamp_ms, 1_704_110_400_250);
    }

    #[test]
    fn tolerates_unknown_fields_null_metadata_and_whitespace() {
        let e = decode_event(
            b" {\"event_id\":7,\"user_id\":\"u\",\"product_id\":\"p\",\"event_type\":\"X\",\n\"timestamp\":\"2024-01-01T00:00:00Z\",\"metadata\":null,\"extra\":{\"a\":[1,2]}}\r\n",
        )
        .unwrap();
        assert_eq!(e.product_id, "p");
    }

    #[test]
    fn one_reason_per_rejection() {
        use RejectReason::*;
        let cases: &[(&str, RejectReason, Option<&str>)] = &[
            ("", InvalidJson, None),
            ("{", InvalidJson, None),
            ("{\"user_id\":\"u\"", InvalidJson, None),
            (&GOOD.replace('}', "},"), InvalidJson, None),
            (&format!("{GOOD} x"), InvalidJson, None),
            // A syntax error after a wrong type is still invalid JSON.
            ("{\"user_id\":5,", InvalidJson, None),
            ("[1,2]", NotAnObject, None),
            ("\"event\"", NotAnObject, None),
            ("42", NotAnObject, None),
            ("null", NotAnObject, None),
            ("true", NotAnObject, None),
            (
                &GOOD.replace("\"user_id\":\"u123\",", ""),
                MissingField,
                Some("user_id"),
            ),
            (
                &GOOD.replace("\"u123\"", "null"),
                MissingField,
                Some("user_id"),
            ),
            (
                &GOOD.replace("\"product_id\":\"42\",", ""),
                MissingField,
                Some("product_id"),
            ),
            (
                &GOOD.replace("\"event_type\":\"VIEW_PRODUCT\",", ""),
                MissingField,
                Some("event_type"),
            ),
            (
                &GOOD.replace("\"timestamp\":\"2024-01-01T12:00:00Z\",", ""),
                MissingField,
                Some("timestamp"),
            ),
            (&GOOD.replace("\"42\"", "42"), WrongType, Some("product_id")),
            (
                &GOOD.replace("\"u123\"", "[\"u\"]"),
                WrongType,
                Some("user_id"),
            ),
            (
                &GOOD.replace("\"VIEW_PRODUCT\"", "{}"),
                WrongType,
                Some("event_type"),
            ),
            (
                &GOOD.replace("\"2024-01-01T12:00:00Z\"", "1704110400000"),
                WrongType,
                Some("timestamp"),
            ),
            (
                &GOOD.replace("\"u123\"", "true"),
                WrongType,
                Some("user_id"),
            ),
            (
                &GOOD.replace("{\"user_id\"", "{\"user_id\":\"a\",\"user_id\""),
                DuplicateField,
                Some("user_id"),
            ),
            (&GOOD.replace("\"u123\"", "\"\""), EmptyId, Some("user_id")),
            (&GOOD.replace("\"42\"", "\"\""), EmptyId, Some("product_id")),
            (
                &GOOD.replace("u123", &"u".repeat(MAX_ID_LEN + 1)),
                TooLong,
                Some("user_id"),
            ),
            (
                &GOOD.replace("\"42\"", &format!("\"{}\"", "9".repeat(MAX_ID_LEN + 1))),
                TooLong,
                Some("product_id"),
            ),
            (
                &GOOD.replace("VIEW_PRODUCT", &"A".repeat(MAX_EVENT_TYPE_LEN + 1)),
                TooLong,
                Some("event_type"),
            ),
            (
                &GOOD.replace("VIEW_PRODUCT", "view_product"),
                BadEventType,
                Some("event_type"),
            ),
            (
                &GOOD.replace("VIEW_PRODUCT", "_VIEW"),
                BadEventType,
                Some("event_type"),
            ),
            (
                &GOOD.replace("VIEW_PRODUCT", ""),
                BadEventType,
                Some("event_type"),
            ),
            (
                &GOOD.replace("2024-01-01T12:00:00Z", "yesterday"),
                BadTimestamp,
                Some("timestamp"),
            ),
            (
                &GOOD.replace("2024-01-01T12:00:00Z", "2024-02-30T12:00:00Z"),
                BadTimestamp,
                Some("timestamp"),
            ),
            (
                &GOOD.replace("2024-01-01T12:00:00Z", "2024-01-01T12:00:00"),
                BadTimestamp,
                Some("timestamp"),
            ),
            (
                &GOOD.replace("{\"session_id\":\"abc\"}", "\"abc\""),
                BadMetadata,
                Some("metadata"),
            ),
            (
                &GOOD.replace("{\"session_id\":\"abc\"}", "[1]"),
                BadMetadata,
                Some("metadata"),
            ),
            (
                &GOOD.replace(
                    "\"abc\"",
                    &format!("\"{}\"", "m".repeat(MAX_METADATA_BYTES)),
                ),
                MetadataTooLarge,
                Some("metadata"),
            ),
            (
                &GOOD.replace("\"abc\"", &format!("\"{}\"", "m".repeat(MAX_EVENT_BYTES))),
                EventTooLarge,
                None,
            ),
        ];
        for (input, want, field) in cases {
            assert_eq!(reason(input), (*want, *field), "input: {input}");
        }
    }

    #[test]
    fn common_events_take_the_fast_path_and_odd_ones_do_not() {
        assert!(scan::event(GOOD.as_bytes()).is_some());
        let mut line = Vec::new();
        crate::sample::Sample::new(crate::sample::SampleConfig::default())
            .next()
            .unwrap()
            .write_json(&mut line);
        assert!(scan::event(line.trim_ascii_end()).is_some());
        for odd in [
            GOOD.replace("u123", "u\\u0031"),
            GOOD.replace("\"abc\"", "{\"deep\":1}"),
            GOOD.replace("\"42\"", "42"),
        ] {
            assert!(scan::event(odd.as_bytes()).is_none(), "{odd}");
        }
    }

    #[test]
    fn invalid_utf8_is_invalid_json() {
        let mut bytes = GOOD.as_bytes().to_vec();
        bytes[13] = 0xFF;
        assert_eq!(
            decode_event(&bytes).unwrap_err().reason,
            RejectReason::InvalidJson
        );
    }

    #[test]
    fn every_reason_has_a_distinct_code() {
        let codes: std::collections::HashSet<_> =
            RejectReason::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), RejectReason::ALL.len());
    }

    #[test]
    fn messages_name_the_field() {
        let r = decode_event(GOOD.replace("\"42\"", "42").as_bytes()).unwrap_err();
        assert_eq!(r.message, "`product_id`: expected a string, found a number");
        assert_eq!(
            r.to_string(),
            "wrong_type: `product_id`: expected a string, found a number"
        );
    }

    /// Pieces of events in many shapes, common and odd, for the fast/serde equality test.
    fn event_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let id = prop_oneof![
            "[a-z0-9]{0,12}".prop_map(|s| format!("\"{s}\"")),
            Just("\"caf\u{e9}\"".to_string()),
            Just("\"a\\\"b\"".to_string()),
            Just("\"tab\\tx\"".to_string()),
            Just("7".to_string()),
            Just("null".to_string()),
            Just("[]".to_string()),
        ];
        let ts = prop_oneof![
            Just("\"2024-01-01T12:00:00Z\"".to_string()),
            Just("\"2024-01-01T12:00:00.123+02:00\"".to_string()),
            Just("\"2024-02-30T12:00:00Z\"".to_string()),
            Just("1704110400".to_string()),
        ];
        let kind = prop_oneof![
            Just("\"VIEW_PRODUCT\"".to_string()),
            Just("\"view\"".to_string()),
            Just("\"\"".to_string()),
        ];
        let metadata = prop_oneof![
            Just("{}".to_string()),
            Just("{\"session_id\":\"abc\",\"n\":-1.5e3,\"ok\":true,\"x\":null}".to_string()),
            Just("{\"nested\":{\"a\":[1,2]}}".to_string()),
            Just("null".to_string()),
            Just("\"text\"".to_string()),
            Just("[1]".to_string()),
            Just("{\"n\":01}".to_string()),
            Just("{\"n\":1.}".to_string()),
        ];
        let extra = prop_oneof![
            Just(String::new()),
            Just("\"event_id\":\"e-1\",".to_string()),
            Just("\"event_id\":42,".to_string()),
            Just("\"extra\":[1,{\"b\":2}],".to_string()),
            Just("\"user_id\":\"dup\",".to_string()),
            Just("\"\\u00e9\":1,".to_string()),
        ];
        let ws = prop_oneof![Just(""), Just(" "), Just("\n\t ")];
        (id.clone(), id, kind, ts, metadata, extra, ws, any::<bool>()).prop_map(
            |(user, product, kind, ts, metadata, extra, ws, with_metadata)| {
                let metadata = if with_metadata {
                    format!(",{ws}\"metadata\"{ws}:{ws}{metadata}")
                } else {
                    String::new()
                };
                format!(
                    "{ws}{{{extra}\"user_id\":{ws}{user},\"product_id\":{product}{ws},\"event_type\":{kind},\"timestamp\":{ts}{metadata}{ws}}}{ws}"
                )
            },
        )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = decode_event(&bytes);
        }

        #[test]
        fn the_fast_path_agrees_with_serde(text in event_text(), cut in 0usize..400, byte in proptest::num::u8::ANY) {
            let bytes = text.as_bytes();
            proptest::prop_assert_eq!(decode_event(bytes), decode_with_serde(bytes));
            // And on a damaged copy: one byte changed, or the text cut short.
            let mut damaged = bytes.to_vec();
            if !damaged.is_empty() {
                let at = cut % damaged.len();
                damaged[at] = byte;
                proptest::prop_assert_eq!(decode_event(&damaged), decode_with_serde(&damaged));
                proptest::prop_assert_eq!(decode_event(&bytes[..at]), decode_with_serde(&bytes[..at]));
            }
        }

        #[test]
        fn never_panics_on_mutated_events(at in 0usize..140, byte in proptest::num::u8::ANY) {
            let mut bytes = GOOD.as_bytes().to_vec();
            let at = at % bytes.len();
            bytes[at] = byte;
            let _ = decode_event(&bytes);
        }
    }
}
