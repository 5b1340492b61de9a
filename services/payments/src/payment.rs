//! A payment as clients see it ([`Payment`]) and its [`Status`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a payment is: `SUCCEEDED → REFUNDED`; `FAILED` stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = PaymentStatus)]
pub enum Status {
    /// The order is charged.
    Succeeded,
    /// The charge was declined or refused: nothing was taken.
    Failed,
    /// The order was cancelled and its charge given back.
    Refunded,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "SUCCEEDED",
            Status::Failed => "FAILED",
            Status::Refunded => "REFUNDED",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "SUCCEEDED" => Some(Status::Succeeded),
            "FAILED" => Some(Status::Failed),
            "REFUNDED" => Some(Status::Refunded),
            _ => None,
        }
    }
}

/// The reason of a payment that failed because the provider refused the request itself (not
/// a decline of the card).
pub const PROVIDER_ERROR: &str = "provider_error";

/// An amount of money as the order asked for it: the shape of the orders service's `total`.
/// The currency is the one the `PaymentRequested` carried, kept as sent (the provider is what
/// refuses a currency it does not know).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Amount {
    /// Minor units (cents for EUR).
    pub amount: i64,
    /// ISO 4217, such as `EUR`.
    #[schema(example = "EUR")]
    pub currency: String,
}

/// The payment of one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Payment {
    pub id: String,
    pub order_id: String,
    pub customer_id: String,
    pub amount: Amount,
    pub status: Status,
    /// The decline code when `FAILED` (`card_declined`, `insufficient_funds`,
    /// `invalid_payment_method`, or `provider_error` when the provider refused the request),
    /// the order's cancel reason when `REFUNDED`, `null` when `SUCCEEDED`.
    pub reason: Option<String>,
    /// The provider's payment method (`pm_card_visa`, …).
    pub payment_method: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC.
    pub updated_at: String,
}

/// A list of payments.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Payments {
    /// Newest first, at most [`crate::repo::LIST_LIMIT`].
    pub items: Vec<Payment>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in [Status::Succeeded, Status::Failed, Status::Refunded] {
            assert_eq!(Status::parse(status.as_str()), Some(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        assert_eq!(Status::parse("succeeded"), None);
    }
}
