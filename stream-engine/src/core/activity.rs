//! The activity event as producers write it (the contract of `ecom-raw-events`): the owned
//! counterpart of [`Event`], whose `Serialize` writes exactly what [`decode_event`] accepts.
//! Its limits are the decoder's constants; with feature `openapi`, its schema is ingest's
//! request body.

use serde::Serialize;

#[cfg(doc)]
use super::decode::{Event, decode_event};
use super::time::format_rfc3339_ms;

/// An activity event: who did what to which product, and when.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivityEvent {
    /// A stable id given by the service that made the event (optional), so that a duplicate
    /// delivery is recognisable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Non-empty, at most 128 bytes (`MAX_ID_LEN`).
    pub user_id: String,
    /// Non-empty, at most 128 bytes; the key of the event log.
    pub product_id: String,
    /// An upper-snake identifier such as `VIEW_PRODUCT`, at most 64 bytes.
    pub event_type: String,
    /// RFC 3339 with any UTC offset (written in UTC, to the millisecond).
    #[serde(rename = "timestamp", serialize_with = "rfc3339")]
    // No `example`: schemathesis would send it as NDJSON too, which it cannot serialize.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub timestamp_ms: i64,
    /// An object of at most 4 KiB of JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

fn rfc3339<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_rfc3339_ms(*ms))
}

impl ActivityEvent {
    /// The event's JSON, as the log carries it.
    pub fn to_json(&self) -> String {
        // Strings, integers and a JSON map: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::decode::{MAX_ID_LEN, RejectReason, decode_event};

    fn purchase() -> ActivityEvent {
        let mut metadata = serde_json::Map::new();
        metadata.insert("order_id".into(), "o-1".into());
        metadata.insert("quantity".into(), 2.into());
        ActivityEvent {
            event_id: Some("o-1:0".into()),
            user_id: "c-7".into(),
            product_id: "p\u{e9}|42".into(),
            event_type: "PURCHASE".into(),
            timestamp_ms: 1_704_110_400_123,
            metadata: Some(metadata),
        }
    }

    #[test]
    fn what_it_writes_the_decoder_reads_back() {
        let event = purchase();
        let json = event.to_json();
        let decoded = decode_event(json.as_bytes()).unwrap();
        assert_eq!(decoded.user_id, event.user_id);
        assert_eq!(decoded.product_id, event.product_id);
        assert_eq!(decoded.event_type, event.event_type);
        assert_eq!(decoded.timestamp_ms, event.timestamp_ms);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["timestamp"], "2024-01-01T12:00:00.123Z");
        assert_eq!(value["metadata"]["quantity"], 2);
        assert_eq!(value["event_id"], "o-1:0");
    }

    #[test]
    fn optional_fields_are_left_out_and_the_limits_are_the_decoder_s() {
        let event = ActivityEvent {
            event_id: None,
            metadata: None,
            user_id: "u".repeat(MAX_ID_LEN),
            ..purchase()
        };
        let value: serde_json::Value = serde_json::from_str(&event.to_json()).unwrap();
        assert!(value.get("event_id").is_none() && value.get("metadata").is_none());
        assert!(decode_event(event.to_json().as_bytes()).is_ok());
        let over = ActivityEvent {
            user_id: "u".repeat(MAX_ID_LEN + 1),
            ..event
        };
        let rejected = decode_event(over.to_json().as_bytes()).unwrap_err();
        assert_eq!(rejected.reason, RejectReason::TooLong);
    }
}
