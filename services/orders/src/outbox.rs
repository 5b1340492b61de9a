//! The orders service's records for the stream: an order's `PURCHASE` events, one per line,
//! staged in its outbox ([`messaging::outbox`]) in the transaction that confirms it, so the
//! windows count buyers who paid (event time = the confirmation).
//!
//! Rows carry an `event_id` (`<order id>:<line>`) so that a consumer can drop the duplicate a
//! relay's resend makes (a duplicate does not change a window's unique users; it adds to its
//! event count).

use messaging::Tx;
use service_db::DbError;
use stream_engine::ActivityEvent;

use crate::order::Line;

/// Writes one `PURCHASE` event per line of a confirmed order into the outbox, in `tx`.
pub async fn stage_purchases(
    tx: &mut Tx,
    topic: &str,
    order_id: &str,
    customer_id: &str,
    lines: &[Line],
    confirmed_at_us: i64,
    traceparent: Option<&str>,
) -> Result<(), DbError> {
    for (no, line) in lines.iter().enumerate() {
        let mut metadata = serde_json::Map::new();
        metadata.insert("order_id".into(), order_id.into());
        metadata.insert("quantity".into(), line.quantity.into());
        let event = ActivityEvent {
            event_id: Some(format!("{order_id}:{no}")),
            user_id: customer_id.to_owned(),
            product_id: line.product_id.clone(),
            event_type: "PURCHASE".to_owned(),
            timestamp_ms: confirmed_at_us.div_euclid(1000),
            metadata: Some(metadata),
        };
        messaging::outbox::stage(tx, topic, &line.product_id, &event.to_json(), traceparent)
            .await?;
    }
    Ok(())
}
