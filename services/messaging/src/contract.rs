//! The order flow's topics and message types: the one definition the orders service, its
//! participants and the catalog share. Every record's key is the envelope's subject: the order
//! id, so one order's messages keep their order within a partition; or, for a stock change no
//! order caused, the product id.
//!
//! | topic | types (sender) |
//! |---|---|
//! | `order.events` | `OrderCreated`, `PaymentRequested`, `OrderConfirmed`, `OrderCancelled` (orders) |
//! | `inventory.events` | `StockReserved`, `StockRejected`, `StockReleased`, `StockLow`, `StockChanged` (inventory) |
//! | `payment.events` | `PaymentSucceeded`, `PaymentFailed`, `PaymentRefunded` (payments) |
//! | `catalog.events` | `ProductStockSet` (catalog) |
//! | `saga.dead-letters` | a message a consumer could not handle, with the error (any consumer) |
//!
//! The stock sync: the inventory is the one source of truth for stock. Stock set on a product in
//! the catalog (created, patched, upserted) is sent as `ProductStockSet` (subject: the product),
//! which sets the inventory's `on_hand`; every change of a stock row is sent as `StockChanged`
//! (subject: the order that caused it, else the product), whose `available` the catalog shows
//! as the product's `stock_quantity`.
//!
//! Data fields may be added; a consumer ignores fields it does not know and skips types it does
//! not know, so a newer sender does not break an older consumer.

use serde::{Deserialize, Serialize};

/// The orders service's messages: the saga's commands and outcomes.
pub const ORDER_EVENTS: &str = "order.events";
/// The inventory's replies and stock alerts.
pub const INVENTORY_EVENTS: &str = "inventory.events";
/// The payments service's replies.
pub const PAYMENT_EVENTS: &str = "payment.events";
/// The catalog's messages: stock set on a product.
pub const CATALOG_EVENTS: &str = "catalog.events";
/// Messages a consumer could not handle (not an envelope, or data that does not fit its type).
pub const DEAD_LETTERS: &str = "saga.dead-letters";

/// Every topic of the order flow and the stock sync.
pub const TOPICS: [&str; 5] = [
    ORDER_EVENTS,
    INVENTORY_EVENTS,
    PAYMENT_EVENTS,
    CATALOG_EVENTS,
    DEAD_LETTERS,
];

/// Why an order was cancelled (`OrderCancelled.reason`, the order's `cancel_reason`).
pub mod reason {
    pub const OUT_OF_STOCK: &str = "out_of_stock";
    pub const PAYMENT_DECLINED: &str = "payment_declined";
    pub const TIMEOUT: &str = "timeout";
    pub const CUSTOMER: &str = "customer";
    pub const ADMIN: &str = "admin";
    pub const ALL: [&str; 5] = [OUT_OF_STOCK, PAYMENT_DECLINED, TIMEOUT, CUSTOMER, ADMIN];
}

/// A quantity of a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemLine {
    pub product_id: String,
    pub quantity: i64,
}

/// An amount of money in minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    pub amount: i64,
    /// ISO 4217.
    pub currency: String,
}

/// An order was placed (stored `PENDING`): reserve its lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCreated {
    pub customer_id: String,
    pub lines: Vec<ItemLine>,
    pub total: Amount,
}

/// The order's stock is reserved: charge it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRequested {
    pub customer_id: String,
    pub amount: Amount,
    /// The provider's payment method (`pm_card_visa`, …).
    pub payment_method: String,
}

/// The order is paid: its reservation becomes a sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderConfirmed {
    pub customer_id: String,
    pub lines: Vec<ItemLine>,
}

/// The order is cancelled: release or return its stock, refund its payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCancelled {
    /// One of [`reason::ALL`].
    pub reason: String,
}

/// Every line of the order is reserved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockReserved {}

/// A line could not be reserved (nothing of the order is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockRejected {
    pub product_id: String,
    pub requested: i64,
    pub available: i64,
}

/// The order's reservation (or sale) was given back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockReleased {}

/// A product's available stock fell below the low-stock threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLow {
    pub product_id: String,
    pub available: i64,
}

/// A product's stock row changed (a reservation, a sale, a release, a return, an
/// administrator's change, a `ProductStockSet`): its levels after the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockChanged {
    pub product_id: String,
    pub on_hand: i64,
    pub reserved: i64,
    /// `on_hand - reserved`.
    pub available: i64,
    /// The stock row's version after the change: it grows with every change of the row, so a
    /// reader can tell a later change from an earlier one that reached it late (two orders'
    /// changes of one product travel on different keys, so in no set order).
    pub version: i64,
}

/// Stock was set on a product in the catalog (created, patched, upserted): the inventory sets
/// the product's on-hand units to it (never below what orders hold).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductStockSet {
    pub product_id: String,
    pub on_hand: i64,
}

/// The order was charged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentSucceeded {
    pub payment_id: String,
    pub amount: Amount,
}

/// The order could not be charged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFailed {
    /// The provider's decline code (`card_declined`, `insufficient_funds`, …).
    pub reason: String,
    #[serde(default)]
    pub payment_id: Option<String>,
}

/// The order's charge was refunded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRefunded {
    pub payment_id: String,
    pub amount: Amount,
}

/// A message of the order flow: an envelope's `type` and `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum Message {
    OrderCreated(OrderCreated),
    PaymentRequested(PaymentRequested),
    OrderConfirmed(OrderConfirmed),
    OrderCancelled(OrderCancelled),
    StockReserved(StockReserved),
    StockRejected(StockRejected),
    StockReleased(StockReleased),
    StockLow(StockLow),
    StockChanged(StockChanged),
    PaymentSucceeded(PaymentSucceeded),
    PaymentFailed(PaymentFailed),
    PaymentRefunded(PaymentRefunded),
    ProductStockSet(ProductStockSet),
}

/// Every type, with its topic.
pub const KINDS: [(&str, &str); 13] = [
    ("OrderCreated", ORDER_EVENTS),
    ("PaymentRequested", ORDER_EVENTS),
    ("OrderConfirmed", ORDER_EVENTS),
    ("OrderCancelled", ORDER_EVENTS),
    ("StockReserved", INVENTORY_EVENTS),
    ("StockRejected", INVENTORY_EVENTS),
    ("StockReleased", INVENTORY_EVENTS),
    ("StockLow", INVENTORY_EVENTS),
    ("StockChanged", INVENTORY_EVENTS),
    ("PaymentSucceeded", PAYMENT_EVENTS),
    ("PaymentFailed", PAYMENT_EVENTS),
    ("PaymentRefunded", PAYMENT_EVENTS),
    ("ProductStockSet", CATALOG_EVENTS),
];

impl Message {
    /// The envelope's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::OrderCreated(_) => "OrderCreated",
            Message::PaymentRequested(_) => "PaymentRequested",
            Message::OrderConfirmed(_) => "OrderConfirmed",
            Message::OrderCancelled(_) => "OrderCancelled",
            Message::StockReserved(_) => "StockReserved",
            Message::StockRejected(_) => "StockRejected",
            Message::StockReleased(_) => "StockReleased",
            Message::StockLow(_) => "StockLow",
            Message::StockChanged(_) => "StockChanged",
            Message::PaymentSucceeded(_) => "PaymentSucceeded",
            Message::PaymentFailed(_) => "PaymentFailed",
            Message::PaymentRefunded(_) => "PaymentRefunded",
            Message::ProductStockSet(_) => "ProductStockSet",
        }
    }

    /// The topic it is sent on.
    pub fn topic(&self) -> &'static str {
        topic_of(self.kind()).unwrap_or(DEAD_LETTERS)
    }

    /// The envelope's `data`.
    pub fn data(&self) -> serde_json::Value {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut tagged)) => tagged.remove("data").unwrap_or_default(),
            _ => serde_json::Value::Null,
        }
    }

    /// The message of `kind` with `data`; `Ok(None)` when the kind is not one of [`KINDS`].
    pub fn from_parts(
        kind: &str,
        data: &serde_json::Value,
    ) -> Result<Option<Message>, serde_json::Error> {
        if topic_of(kind).is_none() {
            return Ok(None);
        }
        serde_json::from_value(serde_json::json!({"type": kind, "data": data})).map(Some)
    }
}

/// The topic of a message type, if it is one.
pub fn topic_of(kind: &str) -> Option<&'static str> {
    KINDS.iter().find(|(k, _)| *k == kind).map(|(_, t)| *t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples() -> Vec<Message> {
        let amount = Amount {
            amount: 1299,
            currency: "EUR".into(),
        };
        let lines = vec![ItemLine {
            product_id: "p1".into(),
            quantity: 2,
        }];
        vec![
            Message::OrderCreated(OrderCreated {
                customer_id: "c".into(),
                lines: lines.clone(),
                total: amount.clone(),
            }),
            Message::PaymentRequested(PaymentRequested {
                customer_id: "c".into(),
                amount: amount.clone(),
                payment_method: "pm_card_visa".into(),
            }),
            Message::OrderConfirmed(OrderConfirmed {
                customer_id: "c".into(),
                lines,
            }),
            Message::OrderCancelled(OrderCancelled {
                reason: reason::TIMEOUT.into(),
            }),
            Message::StockReserved(StockReserved {}),
            Message::StockRejected(StockRejected {
                product_id: "p1".into(),
                requested: 2,
                available: 0,
            }),
            Message::StockReleased(StockReleased {}),
            Message::StockLow(StockLow {
                product_id: "p1".into(),
                available: 3,
            }),
            Message::StockChanged(StockChanged {
                product_id: "p1".into(),
                on_hand: 10,
                reserved: 2,
                available: 8,
                version: 4,
            }),
            Message::PaymentSucceeded(PaymentSucceeded {
                payment_id: "pay".into(),
                amount: amount.clone(),
            }),
            Message::PaymentFailed(PaymentFailed {
                reason: "card_declined".into(),
                payment_id: None,
            }),
            Message::PaymentRefunded(PaymentRefunded {
                payment_id: "pay".into(),
                amount,
            }),
            Message::ProductStockSet(ProductStockSet {
                product_id: "p1".into(),
                on_hand: 12,
            }),
        ]
    }

    #[test]
    fn every_type_round_trips_through_its_kind_and_data() {
        let all = examples();
        assert_eq!(all.len(), KINDS.len());
        for (message, (kind, topic)) in all.iter().zip(KINDS) {
            assert_eq!(message.kind(), kind);
            assert_eq!(message.topic(), topic);
            let back = Message::from_parts(kind, &message.data()).unwrap();
            assert_eq!(back.as_ref(), Some(message));
        }
    }

    #[test]
    fn unknown_fields_are_ignored_and_unknown_kinds_skipped() {
        let data = serde_json::json!({"reason": "customer", "added_later": true});
        assert_eq!(
            Message::from_parts("OrderCancelled", &data).unwrap(),
            Some(Message::OrderCancelled(OrderCancelled {
                reason: "customer".into()
            }))
        );
        assert!(
            Message::from_parts("OrderTeleported", &data)
                .unwrap()
                .is_none()
        );
        assert!(Message::from_parts("OrderCancelled", &serde_json::json!({})).is_err());
    }
}
