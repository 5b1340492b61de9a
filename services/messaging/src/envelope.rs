//! The CloudEvents 1.0 structured JSON envelope every message of the order flow travels in.
//!
//! ```json
//! {"specversion": "1.0", "id": "…", "source": "/ecom/orders", "type": "OrderCreated",
//!  "time": "2026-12-07T21:00:00.123456Z", "subject": "<order id>",
//!  "datacontenttype": "application/json", "data": {…}, "traceparent": "00-…-01"}
//! ```
//!
//! `id` is unique per message (a consumer's inbox keys on it), `subject` is the order the
//! message is about, or the product for the stock sync's `ProductStockSet` and a
//! `StockChanged` no order caused (also the record's key, so one order's messages stay in
//! order), and
//! `traceparent` is the distributed-tracing extension (W3C Trace Context).

use serde::{Deserialize, Serialize};

use crate::contract::Message;

/// The CloudEvents version of every envelope.
pub const SPEC_VERSION: &str = "1.0";
/// An envelope is at most this large (a record's value).
pub const MAX_BYTES: usize = 256 * 1024;

/// A message in its envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub specversion: String,
    pub id: String,
    /// The sending service, as a URI reference: `/ecom/orders`, `/ecom/inventory`, ….
    pub source: String,
    /// The message's type: [`Message::kind`].
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339, UTC, when the message was made.
    pub time: String,
    /// The order id (the product id for stock readings no order caused).
    pub subject: String,
    #[serde(default = "json")]
    pub datacontenttype: String,
    pub data: serde_json::Value,
    /// The W3C `traceparent` of the span that made the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

fn json() -> String {
    "application/json".to_owned()
}

/// Why bytes are not an envelope, or its data not its type's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadEnvelope {
    #[error("the envelope is {0} bytes, over the limit of {MAX_BYTES}")]
    TooLarge(usize),
    #[error("not a CloudEvents JSON envelope: {0}")]
    NotJson(String),
    #[error("specversion {0:?} is not 1.0")]
    Version(String),
    #[error("the envelope's {0} is empty")]
    Empty(&'static str),
    #[error("the data of a {kind} message does not fit its type: {error}")]
    Data { kind: String, error: String },
}

impl Envelope {
    /// A new envelope around `message` about `subject`, from `source`, traced by the current
    /// span.
    pub fn new(source: &str, subject: &str, message: &Message) -> Envelope {
        Envelope::traced(
            source,
            subject,
            message,
            service_common::telemetry::current_traceparent(),
        )
    }

    /// A new envelope with the given trace context.
    pub fn traced(
        source: &str,
        subject: &str,
        message: &Message,
        traceparent: Option<String>,
    ) -> Envelope {
        Envelope {
            specversion: SPEC_VERSION.to_owned(),
            id: service_db::new_id(),
            source: source.to_owned(),
            kind: message.kind().to_owned(),
            time: service_db::rfc3339(service_db::now_us()),
            subject: subject.to_owned(),
            datacontenttype: json(),
            data: message.data(),
            traceparent,
        }
    }

    /// The reply to `to`: about the same order, in the same trace.
    pub fn reply(source: &str, to: &Envelope, message: &Message) -> Envelope {
        Envelope::traced(source, &to.subject, message, to.traceparent.clone())
    }

    /// Reads an envelope, checking what every consumer relies on.
    pub fn parse(bytes: &[u8]) -> Result<Envelope, BadEnvelope> {
        if bytes.len() > MAX_BYTES {
            return Err(BadEnvelope::TooLarge(bytes.len()));
        }
        let envelope: Envelope =
            serde_json::from_slice(bytes).map_err(|e| BadEnvelope::NotJson(e.to_string()))?;
        if envelope.specversion != SPEC_VERSION {
            return Err(BadEnvelope::Version(envelope.specversion));
        }
        for (field, value) in [
            ("id", &envelope.id),
            ("source", &envelope.source),
            ("type", &envelope.kind),
            ("subject", &envelope.subject),
        ] {
            if value.is_empty() {
                return Err(BadEnvelope::Empty(field));
            }
        }
        Ok(envelope)
    }

    /// The message it carries: `None` for a type this build does not know (a newer sender's),
    /// which consumers skip.
    pub fn message(&self) -> Result<Option<Message>, BadEnvelope> {
        Message::from_parts(&self.kind, &self.data).map_err(|error| BadEnvelope::Data {
            kind: self.kind.clone(),
            error: error.to_string(),
        })
    }

    pub fn to_json(&self) -> String {
        // A struct of strings and a JSON value: serializing it cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{OrderCancelled, StockRejected};

    #[test]
    fn an_envelope_round_trips_and_carries_its_message() {
        let message = Message::StockRejected(StockRejected {
            product_id: "p1".into(),
            requested: 3,
            available: 1,
        });
        let envelope = Envelope::traced("/ecom/inventory", "o1", &message, None);
        let text = envelope.to_json();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["specversion"], "1.0");
        assert_eq!(value["type"], "StockRejected");
        assert_eq!(value["subject"], "o1");
        assert_eq!(value["data"]["available"], 1);
        assert!(value.get("traceparent").is_none());
        let back = Envelope::parse(text.as_bytes()).unwrap();
        assert_eq!(back, envelope);
        assert_eq!(back.message().unwrap(), Some(message));
    }

    #[test]
    fn a_reply_keeps_the_subject_and_the_trace() {
        let first = Envelope::traced(
            "/ecom/orders",
            "o9",
            &Message::OrderCancelled(OrderCancelled {
                reason: "customer".into(),
            }),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        );
        let reply = Envelope::reply(
            "/ecom/inventory",
            &first,
            &Message::StockReleased(Default::default()),
        );
        assert_eq!(reply.subject, "o9");
        assert_eq!(reply.traceparent, first.traceparent);
        assert_ne!(reply.id, first.id);
    }

    #[test]
    fn what_is_not_an_envelope_is_told_apart() {
        let ok = Envelope::traced("/s", "o", &Message::StockReleased(Default::default()), None);
        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v = serde_json::to_value(&ok).unwrap();
            f(&mut v);
            Envelope::parse(v.to_string().as_bytes())
        };
        assert!(matches!(
            Envelope::parse(b"{"),
            Err(BadEnvelope::NotJson(_))
        ));
        assert!(matches!(
            with(&|v| v["specversion"] = "0.3".into()),
            Err(BadEnvelope::Version(_))
        ));
        assert_eq!(
            with(&|v| v["subject"] = "".into()),
            Err(BadEnvelope::Empty("subject"))
        );
        assert!(matches!(
            Envelope::parse(&vec![b' '; MAX_BYTES + 1]),
            Err(BadEnvelope::TooLarge(_))
        ));
        let unknown = with(&|v| v["type"] = "SomethingNew".into()).unwrap();
        assert_eq!(unknown.message(), Ok(None));
        let wrong = with(&|v| {
            v["type"] = "StockRejected".into();
            v["data"] = serde_json::json!({"product_id": 5});
        })
        .unwrap();
        assert!(matches!(wrong.message(), Err(BadEnvelope::Data { .. })));
    }
}
