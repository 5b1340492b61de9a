//! Stock and what orders hold of it, as plain values: the answer of the API ([`Stock`]), what
//! an administrator sends ([`StockInput`]), an order's state ([`OrderState`]), and the pure
//! rules the handler and the routes apply ([`demand`], [`falls_low`], [`is_product_id`]).
//!
//! Invariant (held by the database's checks and by every statement of [`crate::repo`]): per
//! product `on_hand = available + reserved`, `available >= 0`, `reserved >= 0`.

use std::collections::BTreeMap;

use messaging::contract::ItemLine;
use serde::{Deserialize, Serialize};
use service_common::rest::Invalid;
use utoipa::ToSchema;

/// The largest on-hand quantity of one product.
pub const MAX_ON_HAND: i64 = 1_000_000_000;
/// The low-stock threshold when none is configured (`ECOM_LOW_STOCK_THRESHOLD`).
pub const DEFAULT_LOW_STOCK_THRESHOLD: i64 = 5;

/// A product's stock as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Stock {
    pub product_id: String,
    /// Units in the warehouse: `available + reserved`.
    pub on_hand: i64,
    /// Units held by orders not yet paid.
    pub reserved: i64,
    /// Units an order may still reserve: `on_hand - reserved`, never below 0.
    pub available: i64,
    /// Grows by one with every change (a reservation too); the `ETag`.
    pub version: i64,
}

impl Stock {
    /// The stock of `product_id` with `on_hand` and `reserved`.
    pub fn new(product_id: String, on_hand: i64, reserved: i64, version: i64) -> Stock {
        Stock {
            product_id,
            on_hand,
            reserved,
            available: on_hand - reserved,
            version,
        }
    }
}

/// `PUT /api/v1/inventory/{product_id}`'s body. Unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockInput {
    /// The units in the warehouse, 0 to 1,000,000,000; not below what is reserved.
    pub on_hand: i64,
}

/// A [`StockInput`] whose `on_hand` is in range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnHand(i64);

impl OnHand {
    pub fn parse(input: StockInput) -> Result<OnHand, Invalid> {
        let mut invalid = Invalid::default();
        invalid.range("on_hand", input.on_hand, 0..=MAX_ON_HAND);
        invalid.or(OnHand(input.on_hand))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// Whether `id` can be a product's id: 1 to 64 of `A-Z a-z 0-9 . _ -` (the catalog's ids are
/// 32 hex digits). Anything else names no stock, without a query.
pub fn is_product_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// What inventory knows of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderState {
    /// Every line is reserved.
    Reserved,
    /// A line could not be reserved; nothing is.
    Rejected,
    /// The reservation became a sale (the order was confirmed).
    Sold,
    /// The reservation was given back (cancelled before it was paid).
    Released,
    /// The sale was given back (cancelled after it was paid): the units are on hand again.
    Returned,
    /// Cancelled before its `OrderCreated` was seen: a later one reserves nothing.
    Cancelled,
}

impl OrderState {
    pub const ALL: [OrderState; 6] = [
        OrderState::Reserved,
        OrderState::Rejected,
        OrderState::Sold,
        OrderState::Released,
        OrderState::Returned,
        OrderState::Cancelled,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Reserved => "RESERVED",
            OrderState::Rejected => "REJECTED",
            OrderState::Sold => "SOLD",
            OrderState::Released => "RELEASED",
            OrderState::Returned => "RETURNED",
            OrderState::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(name: &str) -> Option<OrderState> {
        OrderState::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// Why an order's lines cannot be reserved at all (the message is poison, not a refusal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadLines {
    #[error("the order has no lines")]
    Empty,
    #[error(
        "the line of product {product_id:?} has quantity {quantity}; quantities are at least 1"
    )]
    Quantity { product_id: String, quantity: i64 },
    #[error("the quantities of product {0:?} add up beyond 64 bits")]
    Overflow(String),
}

/// What an order asks of each product: its lines' quantities summed per product (an order may
/// list a product twice), in product id order (the order every reservation locks rows in, so
/// that two concurrent reservations never wait on each other crosswise).
pub fn demand(lines: &[ItemLine]) -> Result<Vec<(String, i64)>, BadLines> {
    if lines.is_empty() {
        return Err(BadLines::Empty);
    }
    let mut summed: BTreeMap<&str, i64> = BTreeMap::new();
    for line in lines {
        if line.quantity < 1 {
            return Err(BadLines::Quantity {
                product_id: line.product_id.clone(),
                quantity: line.quantity,
            });
        }
        let total = summed.entry(line.product_id.as_str()).or_insert(0);
        *total = total
            .checked_add(line.quantity)
            .ok_or_else(|| BadLines::Overflow(line.product_id.clone()))?;
    }
    Ok(summed
        .into_iter()
        .map(|(product_id, quantity)| (product_id.to_owned(), quantity))
        .collect())
}

/// Whether available stock going from `before` to `after` falls below `threshold`: it was at
/// or above it, and is now below (so `StockLow` fires once per fall, not on every sale below).
pub fn falls_low(before: i64, after: i64, threshold: i64) -> bool {
    before >= threshold && after < threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(product_id: &str, quantity: i64) -> ItemLine {
        ItemLine {
            product_id: product_id.to_owned(),
            quantity,
        }
    }

    #[test]
    fn available_is_on_hand_less_reserved() {
        let stock = Stock::new("p1".into(), 10, 3, 4);
        assert_eq!(stock.available, 7);
        let json = serde_json::to_value(&stock).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"product_id": "p1", "on_hand": 10, "reserved": 3, "available": 7, "version": 4})
        );
    }

    #[test]
    fn on_hand_from_0_to_a_billion_is_accepted() {
        for n in [0, 1, MAX_ON_HAND] {
            assert_eq!(OnHand::parse(StockInput { on_hand: n }).unwrap().get(), n);
        }
    }

    #[test]
    fn on_hand_below_0_or_above_a_billion_is_out_of_range() {
        for n in [-1, MAX_ON_HAND + 1, i64::MIN, i64::MAX] {
            let invalid = OnHand::parse(StockInput { on_hand: n }).unwrap_err();
            assert_eq!(invalid.0.len(), 1);
            assert_eq!(invalid.0[0].field, "on_hand");
            assert_eq!(invalid.0[0].code, "out_of_range");
            assert_eq!(invalid.0[0].message, "must be from 0 to 1000000000");
        }
    }

    #[test]
    fn product_ids_are_short_words_of_safe_characters() {
        for id in [
            "p1",
            "0190f3c2a1b27c3d8e9f0a1b2c3d4e5f",
            "MUG-001",
            "a.b_c",
            &"x".repeat(64),
        ] {
            assert!(is_product_id(id), "{id:?}");
        }
        for id in ["", "a/b", "a b", "ü", "a\0", &"x".repeat(65)] {
            assert!(!is_product_id(id), "{id:?}");
        }
    }

    #[test]
    fn order_states_round_trip_through_their_stored_names() {
        for state in OrderState::ALL {
            assert_eq!(OrderState::parse(state.as_str()), Some(state));
        }
        assert_eq!(OrderState::parse("reserved"), None);
        assert_eq!(OrderState::parse("PENDING"), None);
    }

    #[test]
    fn demand_sums_a_product_listed_twice_and_sorts_by_product() {
        let lines = [line("p2", 1), line("p1", 2), line("p2", 3)];
        assert_eq!(
            demand(&lines).unwrap(),
            [("p1".to_owned(), 2), ("p2".to_owned(), 4)]
        );
    }

    #[test]
    fn demand_of_no_lines_is_refused() {
        assert_eq!(demand(&[]), Err(BadLines::Empty));
    }

    #[test]
    fn demand_of_a_quantity_below_1_is_refused() {
        for quantity in [0, -3] {
            assert_eq!(
                demand(&[line("p1", 1), line("p2", quantity)]),
                Err(BadLines::Quantity {
                    product_id: "p2".into(),
                    quantity
                })
            );
        }
    }

    #[test]
    fn demand_that_overflows_is_refused() {
        assert_eq!(
            demand(&[line("p1", i64::MAX), line("p1", 1)]),
            Err(BadLines::Overflow("p1".into()))
        );
    }

    #[test]
    fn stock_falls_low_only_when_it_crosses_the_threshold() {
        assert!(falls_low(5, 4, 5));
        assert!(falls_low(9, 0, 5));
        assert!(!falls_low(6, 5, 5), "at the threshold is not below it");
        assert!(!falls_low(4, 3, 5), "already below");
        assert!(!falls_low(3, 8, 5), "rising");
        assert!(!falls_low(5, 5, 5));
        assert!(!falls_low(0, 0, 0), "a threshold of 0 never fires");
    }
}
