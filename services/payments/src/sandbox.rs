//! The sandbox provider (`ECOM_PAYMENT_PROVIDER=sandbox`, the default): a card processor's
//! test mode, with Stripe's test payment methods ([`METHODS`]).
//!
//! It keeps a ledger of its own ([`SANDBOX_MIGRATIONS`]) in a database apart from the
//! payments service's (a separate SQLite file in `ecom up`, the schema [`SANDBOX_SCHEMA`] on
//! PostgreSQL), because it stands for an external processor: what it charged stays charged
//! when the payments transaction that asked rolls back, or its process dies before the
//! commit. Its idempotency is the processor's: a charge with a key it has seen answers the
//! stored charge (same id, same outcome), a refund likewise, so a retry never charges twice.
//!
//! [`SandboxSettings`] make it behave like a network away: each call first waits `latency`,
//! then fails transiently with probability `error_rate`, half of those failures before it
//! writes its ledger (the request never arrived) and half after (the answer was lost on the
//! way back: the charge is made, and the retry must find it).

use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use service_common::rest::money::Currency;
use service_db::{Db, DbError, Migrations, now_us};
use sqlx::Row;

use crate::provider::{
    Charge, ChargeRequest, Outcome, Provider, ProviderError, Refund, RefundRequest,
};

/// The schema of the ledger on PostgreSQL.
pub const SANDBOX_SCHEMA: &str = "payment_sandbox";

/// The ledger's migrations.
pub static SANDBOX_MIGRATIONS: Migrations = Migrations(&[(
    1,
    "the sandbox's ledger",
    include_str!("../migrations/sandbox/0001_ledger.sql"),
)]);

/// The decline codes of the sandbox (Stripe's).
pub mod code {
    /// `pm_card_chargeDeclined`.
    pub const CARD_DECLINED: &str = "card_declined";
    /// `pm_card_chargeDeclinedInsufficientFunds`.
    pub const INSUFFICIENT_FUNDS: &str = "insufficient_funds";
    /// Any payment method that is not one of [`super::METHODS`].
    pub const INVALID_PAYMENT_METHOD: &str = "invalid_payment_method";
}

/// The test payment methods and what charging them does: `None` succeeds, `Some(code)` is
/// declined with `code`. Any other method is declined `invalid_payment_method`.
pub const METHODS: [(&str, Option<&str>); 5] = [
    ("pm_card_visa", None),
    ("pm_card_mastercard", None),
    ("pm_card_amex", None),
    ("pm_card_chargeDeclined", Some(code::CARD_DECLINED)),
    (
        "pm_card_chargeDeclinedInsufficientFunds",
        Some(code::INSUFFICIENT_FUNDS),
    ),
];

/// What charging `payment_method` does.
pub fn outcome_of(payment_method: &str) -> Outcome {
    match METHODS.iter().find(|(m, _)| *m == payment_method) {
        Some((_, None)) => Outcome::Succeeded,
        Some((_, Some(code))) => Outcome::Declined {
            code: (*code).to_owned(),
        },
        None => Outcome::Declined {
            code: code::INVALID_PAYMENT_METHOD.to_owned(),
        },
    }
}

/// How the sandbox misbehaves (`ECOM_PAYMENT_SANDBOX_LATENCY_MS`,
/// `ECOM_PAYMENT_SANDBOX_ERROR_RATE`). The default answers at once and never fails.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SandboxSettings {
    /// How long each call takes.
    pub latency: Duration,
    /// The share of calls that fail transiently, 0 to 1.
    pub error_rate: f64,
}

/// Settings the sandbox cannot have.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the sandbox's error rate must be between 0 and 1 (got {0})")]
pub struct BadErrorRate(pub f64);

impl SandboxSettings {
    /// Checked settings.
    pub fn new(latency: Duration, error_rate: f64) -> Result<SandboxSettings, BadErrorRate> {
        if !(0.0..=1.0).contains(&error_rate) {
            return Err(BadErrorRate(error_rate));
        }
        Ok(SandboxSettings {
            latency,
            error_rate,
        })
    }
}

/// Where a simulated transient failure strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// Before the ledger is written: the request never arrived.
    Before,
    /// After: the effect is made, the answer lost.
    After,
}

/// Where a draw in `[0, 1)` strikes at `rate`: the lower half of the failures before the
/// ledger, the upper half after.
fn fault(draw: f64, rate: f64) -> Fault {
    if draw < rate / 2.0 {
        Fault::Before
    } else if draw < rate {
        Fault::After
    } else {
        Fault::None
    }
}

/// The sandbox processor over its ledger (migrated with [`SANDBOX_MIGRATIONS`]).
pub struct Sandbox {
    db: Db,
    settings: SandboxSettings,
    rng: Mutex<SmallRng>,
}

impl Sandbox {
    pub fn new(db: Db, settings: SandboxSettings) -> Sandbox {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Sandbox::with_seed(db, settings, seed)
    }

    /// A sandbox whose failures follow `seed` (reproducible tests).
    pub fn with_seed(db: Db, settings: SandboxSettings, seed: u64) -> Sandbox {
        Sandbox {
            db,
            settings,
            rng: Mutex::new(SmallRng::seed_from_u64(seed)),
        }
    }

    /// The ledger's database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Waits the latency, then draws whether and where this call fails.
    async fn call(&self) -> Fault {
        if !self.settings.latency.is_zero() {
            tokio::time::sleep(self.settings.latency).await;
        }
        let rate = self.settings.error_rate;
        if rate <= 0.0 {
            return Fault::None;
        }
        let draw: f64 = self.rng.lock().unwrap_or_else(|e| e.into_inner()).random();
        fault(draw, rate)
    }

    /// The charge stored under the request's key, made now if there is none.
    async fn record_charge(&self, request: &ChargeRequest) -> Result<Charge, ProviderError> {
        if request.idempotency_key.is_empty() {
            return Err(ProviderError::Permanent(
                "an idempotency key is required".into(),
            ));
        }
        if request.amount < 0 {
            return Err(ProviderError::Permanent(format!(
                "the amount {} is negative",
                request.amount
            )));
        }
        if Currency::parse(&request.currency).is_none() {
            return Err(ProviderError::Permanent(format!(
                "{:?} is not an ISO 4217 currency",
                request.currency
            )));
        }
        let (outcome, code) = match outcome_of(&request.payment_method) {
            Outcome::Succeeded => ("succeeded", None),
            Outcome::Declined { code } => ("declined", Some(code)),
        };
        sqlx::query(
            "INSERT INTO sandbox_charges (idempotency_key, id, amount, currency, payment_method, \
             outcome, code, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(&request.idempotency_key)
        .bind(format!("ch_{}", service_db::new_id()))
        .bind(request.amount)
        .bind(&request.currency)
        .bind(&request.payment_method)
        .bind(outcome)
        .bind(code)
        .bind(now_us())
        .execute(self.db.pool())
        .await
        .map_err(ledger)?;
        let row = sqlx::query(
            "SELECT id, amount, currency, payment_method, outcome, code FROM sandbox_charges \
             WHERE idempotency_key = $1",
        )
        .bind(&request.idempotency_key)
        .fetch_one(self.db.pool())
        .await
        .map_err(ledger)?;
        let stored = (
            row.try_get::<i64, _>("amount").map_err(ledger)?,
            row.try_get::<String, _>("currency").map_err(ledger)?,
            row.try_get::<String, _>("payment_method").map_err(ledger)?,
        );
        if stored
            != (
                request.amount,
                request.currency.clone(),
                request.payment_method.clone(),
            )
        {
            return Err(ProviderError::Permanent(format!(
                "the idempotency key {:?} was used with other parameters",
                request.idempotency_key
            )));
        }
        let outcome = match row
            .try_get::<String, _>("outcome")
            .map_err(ledger)?
            .as_str()
        {
            "succeeded" => Outcome::Succeeded,
            _ => Outcome::Declined {
                code: row
                    .try_get::<Option<String>, _>("code")
                    .map_err(ledger)?
                    .unwrap_or_else(|| code::CARD_DECLINED.to_owned()),
            },
        };
        Ok(Charge {
            id: row.try_get("id").map_err(ledger)?,
            outcome,
        })
    }

    /// The refund stored under the request's key, made now if there is none.
    async fn record_refund(&self, request: &RefundRequest) -> Result<Refund, ProviderError> {
        if request.idempotency_key.is_empty() {
            return Err(ProviderError::Permanent(
                "an idempotency key is required".into(),
            ));
        }
        if let Some(refund) = self.stored_refund(request).await? {
            return Ok(refund);
        }
        let charge = sqlx::query("SELECT amount, outcome FROM sandbox_charges WHERE id = $1")
            .bind(&request.charge_id)
            .fetch_optional(self.db.pool())
            .await
            .map_err(ledger)?
            .ok_or_else(|| {
                ProviderError::Permanent(format!("no charge {:?}", request.charge_id))
            })?;
        let charged: i64 = charge.try_get("amount").map_err(ledger)?;
        if charge.try_get::<String, _>("outcome").map_err(ledger)? != "succeeded" {
            return Err(ProviderError::Permanent(format!(
                "the charge {:?} was declined: there is nothing to refund",
                request.charge_id
            )));
        }
        let refunded: i64 = sqlx::query(
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS n FROM sandbox_refunds WHERE charge_id = $1",
        )
        .bind(&request.charge_id)
        .fetch_one(self.db.pool())
        .await
        .map_err(ledger)?
        .try_get("n")
        .map_err(ledger)?;
        if request.amount < 0 || request.amount > charged - refunded {
            return Err(ProviderError::Permanent(format!(
                "cannot refund {} of the charge {:?}: {} of {} is left",
                request.amount,
                request.charge_id,
                charged - refunded,
                charged
            )));
        }
        sqlx::query(
            "INSERT INTO sandbox_refunds (idempotency_key, id, charge_id, amount, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(&request.idempotency_key)
        .bind(format!("re_{}", service_db::new_id()))
        .bind(&request.charge_id)
        .bind(request.amount)
        .bind(now_us())
        .execute(self.db.pool())
        .await
        .map_err(ledger)?;
        self.stored_refund(request).await?.ok_or_else(|| {
            ProviderError::Transient("the refund just written is not in the ledger".into())
        })
    }

    async fn stored_refund(
        &self,
        request: &RefundRequest,
    ) -> Result<Option<Refund>, ProviderError> {
        let Some(row) = sqlx::query(
            "SELECT id, charge_id, amount FROM sandbox_refunds WHERE idempotency_key = $1",
        )
        .bind(&request.idempotency_key)
        .fetch_optional(self.db.pool())
        .await
        .map_err(ledger)?
        else {
            return Ok(None);
        };
        let charge_id: String = row.try_get("charge_id").map_err(ledger)?;
        let amount: i64 = row.try_get("amount").map_err(ledger)?;
        if (charge_id.as_str(), amount) != (request.charge_id.as_str(), request.amount) {
            return Err(ProviderError::Permanent(format!(
                "the idempotency key {:?} was used with other parameters",
                request.idempotency_key
            )));
        }
        Ok(Some(Refund {
            id: row.try_get("id").map_err(ledger)?,
        }))
    }
}

/// The ledger's own failures are the processor's: an outage is transient.
fn ledger(e: sqlx::Error) -> ProviderError {
    match DbError::from(e) {
        DbError::Unavailable(e) => ProviderError::Transient(format!("the sandbox's ledger: {e}")),
        e => ProviderError::Permanent(format!("the sandbox's ledger: {e}")),
    }
}

const LOST_REQUEST: &str = "the sandbox did not answer (simulated: the request never arrived)";
const LOST_ANSWER: &str = "the sandbox did not answer (simulated: the answer was lost)";

impl Provider for Sandbox {
    async fn charge(&self, request: &ChargeRequest) -> Result<Charge, ProviderError> {
        let fault = self.call().await;
        if fault == Fault::Before {
            return Err(ProviderError::Transient(LOST_REQUEST.into()));
        }
        let charge = self.record_charge(request).await?;
        if fault == Fault::After {
            return Err(ProviderError::Transient(LOST_ANSWER.into()));
        }
        Ok(charge)
    }

    async fn refund(&self, request: &RefundRequest) -> Result<Refund, ProviderError> {
        let fault = self.call().await;
        if fault == Fault::Before {
            return Err(ProviderError::Transient(LOST_REQUEST.into()));
        }
        let refund = self.record_refund(request).await?;
        if fault == Fault::After {
            return Err(ProviderError::Transient(LOST_ANSWER.into()));
        }
        Ok(refund)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declined(code: &str) -> Outcome {
        Outcome::Declined { code: code.into() }
    }

    #[test]
    fn the_test_cards_succeed() {
        for method in ["pm_card_visa", "pm_card_mastercard", "pm_card_amex"] {
            assert_eq!(outcome_of(method), Outcome::Succeeded, "{method}");
        }
    }

    #[test]
    fn the_declining_test_methods_decline_with_their_codes() {
        assert_eq!(
            outcome_of("pm_card_chargeDeclined"),
            declined("card_declined")
        );
        assert_eq!(
            outcome_of("pm_card_chargeDeclinedInsufficientFunds"),
            declined("insufficient_funds")
        );
    }

    #[test]
    fn any_other_method_is_an_invalid_payment_method() {
        for method in [
            "",
            "pm_card_VISA",
            "pm_card_visa ",
            "tok_visa",
            "4242424242424242",
        ] {
            assert_eq!(
                outcome_of(method),
                declined("invalid_payment_method"),
                "{method:?}"
            );
        }
    }

    #[test]
    fn failures_strike_half_before_and_half_after_the_ledger() {
        let draws: Vec<f64> = (0..1000).map(|i| f64::from(i) / 1000.0).collect();
        let count =
            |rate: f64, wanted: Fault| draws.iter().filter(|&&d| fault(d, rate) == wanted).count();
        assert_eq!(count(0.5, Fault::Before), 250);
        assert_eq!(count(0.5, Fault::After), 250);
        assert_eq!(count(0.5, Fault::None), 500);
        assert_eq!(count(0.0, Fault::None), 1000);
        assert_eq!(count(1.0, Fault::None), 0);
    }

    #[test]
    fn an_error_rate_outside_zero_to_one_is_refused() {
        assert!(SandboxSettings::new(Duration::ZERO, 0.0).is_ok());
        assert!(SandboxSettings::new(Duration::ZERO, 1.0).is_ok());
        assert_eq!(
            SandboxSettings::new(Duration::ZERO, 1.5),
            Err(BadErrorRate(1.5))
        );
        assert!(SandboxSettings::new(Duration::ZERO, -0.1).is_err());
        assert!(SandboxSettings::new(Duration::ZERO, f64::NAN).is_err());
    }
}
