//! The payments step of the order saga: the consumer `payments` of `order.events` hands it
//! `PaymentRequested` and `OrderCancelled`, each inside the transaction that also records the
//! message handled; the replies go to `payment.events` through the outbox.
//!
//! | message | payment row | effect | reply |
//! |---|---|---|---|
//! | `PaymentRequested` | none, order not cancelled | charge (key: the order id) | `PaymentSucceeded` / `PaymentFailed{reason: code}` |
//! | `PaymentRequested` | none, order cancelled (tombstone) | none | none |
//! | `PaymentRequested` | `SUCCEEDED` / `FAILED` | none (no provider call) | the stored outcome again |
//! | `PaymentRequested` | `REFUNDED` | none | none (the order is cancelled) |
//! | `OrderCancelled` | `SUCCEEDED` | refund (key: `refund:<order id>`) → `REFUNDED` | `PaymentRefunded` |
//! | `OrderCancelled` | `FAILED` / `REFUNDED` | none | none |
//! | `OrderCancelled` | none | tombstone in `cancelled_orders` | none |
//!
//! Invariant: an order is charged at most once. Within the service, the payment row (unique
//! per order) is looked at before the provider is called; across a crash between the
//! provider's answer and the commit (the row and the inbox entry roll back together), the
//! message is handled again, before any later message of its partition (the positions are
//! the database's), and the provider answers the same charge for the same key. So a charge
//! in the provider's ledger always ends up recorded here, and a cancel that follows it in the
//! partition refunds it.
//!
//! Transient provider failures are retried with [`Backoff`] within
//! [`crate::Settings::retry_budget`], each call bounded by what is left of it; once it is
//! spent the message is [`HandleError::Retry`]: the consumer rolls the batch back and handles
//! it again later (the provider's idempotency makes that safe).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use messaging::contract::{self, OrderCancelled, PaymentRequested};
use messaging::{Envelope, HandleError, Handler, Message, Tx, outbox};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use service_common::retry::Backoff;

use crate::payment::{PROVIDER_ERROR, Status};
use crate::provider::{ChargeRequest, Outcome, Provider, ProviderError, RefundRequest};
use crate::repo::{self, NewPayment, Record};
use crate::{SOURCE, Settings};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    operation: &'static str,
    outcome: &'static str,
}

/// The calls to the payment provider, by operation (`charge`, `refund`) and outcome
/// (`succeeded`, `declined`, `transient`, `permanent`, `timeout`): what the provider was
/// asked, whether or not the transaction that asked committed.
#[derive(Clone, Debug, Default)]
pub struct ProviderMetrics {
    calls: Family<CallLabels, Counter>,
}

impl ProviderMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = ProviderMetrics::default();
        registry.register(
            "payment_provider_calls",
            "Calls to the payment provider by operation and outcome",
            metrics.calls.clone(),
        );
        metrics
    }

    fn count(&self, operation: &'static str, outcome: &'static str) {
        self.calls
            .get_or_create(&CallLabels { operation, outcome })
            .inc();
    }
}

/// Why a provider call gave no answer to act on.
enum Failed {
    /// The provider refused the request itself.
    Permanent(String),
    /// Transient failures until the budget was spent.
    Exhausted(String),
}

/// The payments participant, over a provider.
pub struct PaymentHandler<P> {
    provider: Arc<P>,
    settings: Settings,
    metrics: ProviderMetrics,
}

impl<P: Provider> PaymentHandler<P> {
    pub fn new(provider: Arc<P>, settings: Settings, metrics: ProviderMetrics) -> Self {
        PaymentHandler {
            provider,
            settings,
            metrics,
        }
    }

    /// The provider's answer, retrying transient failures within the budget.
    async fn call<T, F, Fut>(&self, operation: &'static str, mut attempt: F) -> Result<T, Failed>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let budget = self.settings.retry_budget;
        let started = Instant::now();
        let mut backoff = Backoff::new(budget);
        loop {
            let left = budget.saturating_sub(started.elapsed());
            let error =
                match tokio::time::timeout(left.max(Duration::from_millis(1)), attempt()).await {
                    Ok(Ok(answer)) => return Ok(answer),
                    Ok(Err(ProviderError::Permanent(e))) => {
                        self.metrics.count(operation, "permanent");
                        return Err(Failed::Permanent(e));
                    }
                    Ok(Err(ProviderError::Transient(e))) => {
                        self.metrics.count(operation, "transient");
                        e
                    }
                    Err(_) => {
                        self.metrics.count(operation, "timeout");
                        format!("no answer within {budget:?}")
                    }
                };
            tracing::debug!(operation, %error, "the payment provider failed; retrying");
            if !backoff.wait().await {
                return Err(Failed::Exhausted(format!(
                    "the payment provider's {operation} kept failing for {budget:?}: {error}"
                )));
            }
        }
    }

    async fn requested(
        &self,
        tx: &mut Tx,
        envelope: &Envelope,
        request: PaymentRequested,
    ) -> Result<(), HandleError> {
        let order_id = envelope.subject.as_str();
        if let Some(existing) = repo::by_order(tx, order_id).await? {
            // Asked again (a second request for the order): the same answer, no second call.
            return reply_outcome(tx, envelope, &existing).await;
        }
        if repo::is_cancelled(tx, order_id).await? {
            tracing::info!(
                order_id,
                "payment requested for a cancelled order: not charged"
            );
            return Ok(());
        }
        let charge = ChargeRequest {
            idempotency_key: order_id.to_owned(),
            amount: request.amount.amount,
            currency: request.amount.currency.clone(),
            payment_method: request.payment_method.clone(),
        };
        let answer = self.call("charge", || self.provider.charge(&charge)).await;
        let (status, reason, charge_id) = match answer {
            Ok(charge) => match charge.outcome {
                Outcome::Succeeded => {
                    self.metrics.count("charge", "succeeded");
                    (Status::Succeeded, None, Some(charge.id))
                }
                Outcome::Declined { code } => {
                    self.metrics.count("charge", "declined");
                    (Status::Failed, Some(code), Some(charge.id))
                }
            },
            Err(Failed::Permanent(e)) => {
                tracing::warn!(order_id, error = %e, "the payment provider refused the charge");
                (Status::Failed, Some(PROVIDER_ERROR.to_owned()), None)
            }
            Err(Failed::Exhausted(e)) => return Err(HandleError::Retry(e)),
        };
        let new = NewPayment {
            order_id,
            customer_id: &request.customer_id,
            amount: request.amount.amount,
            currency: &request.amount.currency,
            payment_method: &request.payment_method,
            status,
            reason: reason.as_deref(),
            charge_id: charge_id.as_deref(),
        };
        let stored = match repo::insert(tx, &new).await? {
            Some(stored) => stored,
            // Another consumer stored it meanwhile (a partition moving between replicas): its
            // charge is this one, by the key.
            None => repo::by_order(tx, order_id).await?.ok_or_else(|| {
                HandleError::Retry(format!("the payment of order {order_id} vanished"))
            })?,
        };
        reply_outcome(tx, envelope, &stored).await
    }

    async fn cancelled(
        &self,
        tx: &mut Tx,
        envelope: &Envelope,
        cancel: OrderCancelled,
    ) -> Result<(), HandleError> {
        let order_id = envelope.subject.as_str();
        let Some(existing) = repo::by_order(tx, order_id).await? else {
            // Cancelled before any request to charge it (reordered): never charge it.
            repo::tombstone(tx, order_id, &cancel.reason).await?;
            return Ok(());
        };
        if existing.payment.status != Status::Succeeded {
            // Nothing taken, or already given back.
            return Ok(());
        }
        let charge_id = existing.charge_id.clone().ok_or_else(|| {
            HandleError::Poison(format!(
                "the succeeded payment of order {order_id} has no charge id"
            ))
        })?;
        let refund = RefundRequest {
            idempotency_key: format!("refund:{order_id}"),
            charge_id,
            amount: existing.payment.amount.amount,
        };
        let refund = match self.call("refund", || self.provider.refund(&refund)).await {
            Ok(refund) => {
                self.metrics.count("refund", "succeeded");
                refund
            }
            Err(Failed::Permanent(e)) => {
                // Money is held for a cancelled order: an operator must look (dead letters).
                return Err(HandleError::Poison(format!(
                    "the payment provider refused to refund order {order_id}: {e}"
                )));
            }
            Err(Failed::Exhausted(e)) => return Err(HandleError::Retry(e)),
        };
        let Some(refunded) = repo::mark_refunded(tx, order_id, &refund.id, &cancel.reason).await?
        else {
            return Ok(());
        };
        let reply = Message::PaymentRefunded(contract::PaymentRefunded {
            payment_id: refunded.payment.id.clone(),
            amount: amount(&refunded),
        });
        outbox::send(tx, &Envelope::reply(SOURCE, envelope, &reply)).await?;
        Ok(())
    }
}

fn amount(record: &Record) -> contract::Amount {
    contract::Amount {
        amount: record.payment.amount.amount,
        currency: record.payment.amount.currency.clone(),
    }
}

/// Stages the reply a stored payment gives to a `PaymentRequested`.
async fn reply_outcome(tx: &mut Tx, to: &Envelope, record: &Record) -> Result<(), HandleError> {
    let payment = &record.payment;
    let reply = match payment.status {
        Status::Succeeded => Message::PaymentSucceeded(contract::PaymentSucceeded {
            payment_id: payment.id.clone(),
            amount: amount(record),
        }),
        Status::Failed => Message::PaymentFailed(contract::PaymentFailed {
            reason: payment
                .reason
                .clone()
                .unwrap_or_else(|| PROVIDER_ERROR.to_owned()),
            payment_id: Some(payment.id.clone()),
        }),
        // The order was cancelled, and the refund announced.
        Status::Refunded => return Ok(()),
    };
    outbox::send(tx, &Envelope::reply(SOURCE, to, &reply)).await?;
    Ok(())
}

impl<P: Provider> Handler for PaymentHandler<P> {
    fn wants(&self, kind: &str) -> bool {
        matches!(kind, "PaymentRequested" | "OrderCancelled")
    }

    async fn handle(
        &self,
        tx: &mut Tx,
        envelope: &Envelope,
        message: Message,
    ) -> Result<(), HandleError> {
        match message {
            Message::PaymentRequested(request) => self.requested(tx, envelope, request).await,
            Message::OrderCancelled(cancel) => self.cancelled(tx, envelope, cancel).await,
            _ => Ok(()),
        }
    }
}
