//! The payment provider: who moves the money. The handler knows it only through [`Provider`],
//! two idempotent calls whose idempotency key makes "at most once" the provider's promise
//! rather than ours: the same key answers the same charge (or refund) again, however often it
//! is asked, even after the answer was lost on the way back.
//!
//! The one shipped is the [`crate::sandbox::Sandbox`], a card processor's test mode. A real
//! provider plugs in behind the same trait; Stripe's, for example, would be
//!
//! - [`Provider::charge`]: `POST /v1/payment_intents` with `amount`, `currency`,
//!   `payment_method`, `confirm=true` and the header `Idempotency-Key: <order id>`; a
//!   `succeeded` intent is [`Outcome::Succeeded`], a `card_error` is [`Outcome::Declined`]
//!   with its `decline_code` (or `code`), a 429, a 5xx or a timeout is
//!   [`ProviderError::Transient`] (Stripe replays the stored answer for a key it has seen, so
//!   the retry is safe), any other 4xx is [`ProviderError::Permanent`];
//! - [`Provider::refund`]: `POST /v1/refunds` with `payment_intent` and `amount`, under
//!   `Idempotency-Key: refund:<order id>`.

use std::future::Future;

/// A charge to make. The same `idempotency_key` always names the same charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    /// The order id: an order is charged at most once.
    pub idempotency_key: String,
    /// Minor units of `currency`.
    pub amount: i64,
    /// ISO 4217.
    pub currency: String,
    /// The provider's payment method (`pm_card_visa`, …).
    pub payment_method: String,
}

/// What the provider did with a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The money is taken.
    Succeeded,
    /// The card was refused; `code` says why (`card_declined`, `insufficient_funds`, …).
    Declined { code: String },
}

/// A charge the provider made (or refused): the same for every call with its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The provider's id of the charge.
    pub id: String,
    pub outcome: Outcome,
}

/// A refund to make of a succeeded charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    /// `refund:<order id>`: an order is refunded at most once.
    pub idempotency_key: String,
    /// The provider's id of the charge to refund.
    pub charge_id: String,
    /// Minor units, at most the charge's.
    pub amount: i64,
}

/// A refund the provider made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// The provider's id of the refund.
    pub id: String,
}

/// Why the provider gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// Worth asking again with the same key: the provider was unreachable, slow, or lost its
    /// answer. The call may or may not have taken effect.
    #[error("the payment provider failed transiently: {0}")]
    Transient(String),
    /// Asking again gives the same refusal: the request itself is wrong (an unknown charge, a
    /// key reused with other parameters).
    #[error("the payment provider refused the request: {0}")]
    Permanent(String),
}

/// A payment provider. Both calls are idempotent by their request's `idempotency_key`.
pub trait Provider: Send + Sync + 'static {
    /// Charges, or answers the charge already made under the key.
    fn charge(
        &self,
        request: &ChargeRequest,
    ) -> impl Future<Output = Result<Charge, ProviderError>> + Send;

    /// Refunds a succeeded charge, or answers the refund already made under the key.
    fn refund(
        &self,
        request: &RefundRequest,
    ) -> impl Future<Output = Result<Refund, ProviderError>> + Send;
}

/// The providers this build ships (`ECOM_PAYMENT_PROVIDER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderName {
    /// [`crate::sandbox::Sandbox`]: Stripe's test payment methods, on a ledger of its own.
    Sandbox,
}

/// The value of `ECOM_PAYMENT_PROVIDER` names no provider of this build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown payment provider {0:?}: this build ships `sandbox` only")]
pub struct UnknownProvider(pub String);

impl ProviderName {
    /// Every accepted name.
    pub const ALL: [&str; 1] = ["sandbox"];

    pub fn parse(name: &str) -> Result<ProviderName, UnknownProvider> {
        match name {
            "sandbox" => Ok(ProviderName::Sandbox),
            other => Err(UnknownProvider(other.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderName::Sandbox => "sandbox",
        }
    }
}

impl std::str::FromStr for ProviderName {
    type Err = UnknownProvider;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        ProviderName::parse(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_is_the_only_provider_name() {
        assert_eq!(ProviderName::parse("sandbox"), Ok(ProviderName::Sandbox));
        assert_eq!(ProviderName::Sandbox.as_str(), ProviderName::ALL[0]);
        let e = "stripe".parse::<ProviderName>().unwrap_err();
        assert_eq!(e, UnknownProvider("stripe".into()));
        assert!(e.to_string().contains("`sandbox`"), "{e}");
        assert!(ProviderName::parse("Sandbox").is_err());
        assert!(ProviderName::parse("").is_err());
    }
}
