//! An order: what clients send ([`OrderInput`], checked into [`OrderRequest`]), its
//! [`Status`] machine, and what clients get back ([`Order`]).

use serde::{Deserialize, Serialize};
use service_common::rest::Invalid;
use service_common::rest::money::Money;
use utoipa::ToSchema;

/// The most lines of one order.
pub const MAX_LINES: usize = 100;
/// The largest quantity of one line.
pub const MAX_QUANTITY: i64 = 10_000;

/// A new order: who buys what. Prices are not sent: the server takes them from the catalog.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderInput {
    pub customer_id: String,
    /// 1 to 100 lines.
    pub lines: Vec<LineInput>,
    /// The payment provider's method to charge (default `pm_card_visa`; the sandbox's test
    /// methods: `pm_card_visa`, `pm_card_mastercard`, `pm_card_amex` succeed,
    /// `pm_card_chargeDeclined` and `pm_card_chargeDeclinedInsufficientFunds` are declined).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_method: Option<String>,
}

/// The payment method of an order that names none.
pub const DEFAULT_PAYMENT_METHOD: &str = "pm_card_visa";

/// One line of a new order.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineInput {
    pub product_id: String,
    /// 1 to 10,000.
    pub quantity: i64,
}

/// An [`OrderInput`] whose every field is valid.
#[derive(Debug, Clone)]
pub struct OrderRequest(OrderInput);

impl OrderRequest {
    pub fn parse(input: OrderInput) -> Result<OrderRequest, Invalid> {
        let mut invalid = Invalid::default();
        invalid.text("customer_id", &input.customer_id, 1, 128, false);
        if input.lines.is_empty() || input.lines.len() > MAX_LINES {
            invalid.push(
                "lines",
                "out_of_range",
                format!("must hold 1 to {MAX_LINES} lines"),
            );
        }
        for (i, line) in input.lines.iter().enumerate() {
            invalid.text(
                &format!("lines[{i}].product_id"),
                &line.product_id,
                1,
                128,
                false,
            );
            invalid.range(
                &format!("lines[{i}].quantity"),
                line.quantity,
                1..=MAX_QUANTITY,
            );
        }
        if let Some(method) = &input.payment_method {
            invalid.text("payment_method", method, 1, 128, false);
        }
        invalid.or(OrderRequest(input))
    }

    pub fn get(&self) -> &OrderInput {
        &self.0
    }

    pub fn payment_method(&self) -> &str {
        self.0
            .payment_method
            .as_deref()
            .unwrap_or(DEFAULT_PAYMENT_METHOD)
    }
}

/// Where an order is: `PENDING → CONFIRMED | CANCELLED`, `CONFIRMED → SHIPPED | CANCELLED`,
/// `SHIPPED → DELIVERED`; nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Pending,
    Confirmed,
    Shipped,
    Delivered,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Confirmed => "CONFIRMED",
            Status::Shipped => "SHIPPED",
            Status::Delivered => "DELIVERED",
            Status::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        [
            Status::Pending,
            Status::Confirmed,
            Status::Shipped,
            Status::Delivered,
            Status::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// Whether an order may go from `self` to `next`.
    pub fn can_become(self, next: Status) -> bool {
        use Status::*;
        matches!(
            (self, next),
            (Pending, Confirmed | Cancelled)
                | (Confirmed, Shipped | Cancelled)
                | (Shipped, Delivered)
        )
    }
}

/// `POST /api/v1/orders/{id}/status`'s body (and the one field a merge patch may change).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    pub status: Status,
}

/// One line of an order, priced.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Line {
    pub product_id: String,
    pub quantity: i64,
    /// The catalog's price when the order was created.
    pub unit_price: Money,
}

/// An order as the API answers it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Order {
    pub id: String,
    pub customer_id: String,
    pub status: Status,
    pub lines: Vec<Line>,
    /// The sum of quantity × unit price over the lines.
    pub total: Money,
    /// The payment method the saga charges.
    pub payment_method: String,
    /// Why the order was cancelled: `out_of_stock`, `payment_declined`, `timeout`,
    /// `customer` or `admin`; null unless `CANCELLED`.
    pub cancel_reason: Option<String>,
    /// The saga's steps so far, oldest first.
    pub timeline: Vec<TimelineEntry>,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC.
    pub updated_at: String,
    /// Grows by one with every change; the `ETag`.
    pub version: i64,
}

/// One step of an order's saga.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TimelineEntry {
    /// RFC 3339, UTC.
    pub at: String,
    /// `order`, `stock`, `payment` or `cancel`.
    pub step: String,
    /// What happened: `created`, `reserved`, `rejected`, `succeeded`, `failed`, `timed_out`,
    /// `requested`, `released`, `refunded`, ….
    pub outcome: String,
    /// A detail: the product short of stock, the decline code, the payment id.
    pub detail: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_documented_transitions_are_allowed() {
        use Status::*;
        let all = [Pending, Confirmed, Shipped, Delivered, Cancelled];
        let allowed = [
            (Pending, Confirmed),
            (Pending, Cancelled),
            (Confirmed, Shipped),
            (Confirmed, Cancelled),
            (Shipped, Delivered),
        ];
        for from in all {
            for to in all {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
            assert_eq!(Status::parse(from.as_str()), Some(from));
        }
    }
}
