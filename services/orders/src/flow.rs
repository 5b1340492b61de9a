//! The saga's storage side: an event applied to an order ([`Saga::apply`]) locks its row,
//! takes the [`saga::advance`] transition, and stores the new state, the timeline's entry and
//! the messages it sends (through the outbox) in the caller's transaction: the reply's
//! consumer transaction (with its inbox entry), the timeout sweep's, or a cancelling request's.
//!
//! Owned tables (schema `orders`): `orders` (status, `saga_step`, `step_deadline`,
//! `cancel_reason`), `order_lines`, `order_timeline`, `outbox`, `inbox`, `consumer_positions`.

use std::sync::Arc;
use std::time::Duration;

use messaging::contract::{
    self, Amount, ItemLine, OrderCancelled, OrderConfirmed, OrderCreated, PaymentRequested,
};
use messaging::{Envelope, HandleError, Handler, Message, Tx};
use service_db::{Db, DbError, now_us};
use tokio::sync::Notify;

use crate::order::{Order, Status};
use crate::repo;
use crate::saga::{self, Command, Event, Refused};

/// The `source` of the orders service's envelopes.
pub const SOURCE: &str = "/ecom/orders";
/// The orders service's consumer name (of `inventory.events` and `payment.events`).
pub const CONSUMER: &str = "orders";

/// What happened to an order an event was applied to.
#[derive(Debug)]
pub enum Applied {
    /// No such order.
    Unknown,
    /// The event changed nothing (a stale or repeated reply).
    Unchanged(Order),
    /// The order moved; its timeline is not loaded.
    Changed(Order),
}

/// Why an event was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("an order that is {} cannot be cancelled", .0.as_str())]
    NotCancellable(Status),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The saga's settings.
#[derive(Debug, Clone)]
pub struct SagaConfig {
    /// The topic of the `PURCHASE` events (the stream engine's input).
    pub purchases_topic: String,
    /// How long a step may wait for its answer before the order is cancelled (`timeout`).
    pub step_timeout: Duration,
}

/// The orders service's side of the saga, shared by its consumers, its sweep and its routes.
pub struct Saga {
    db: Db,
    config: SagaConfig,
    /// The ids of the orders changed by transactions not yet announced, and where they are
    /// announced once committed (what `Prefer: wait` waits on).
    touched: std::sync::Mutex<Vec<String>>,
    changed: tokio::sync::broadcast::Sender<Arc<str>>,
    /// The relay's waker, told after a change that sent messages.
    relay: Arc<Notify>,
}

impl Saga {
    pub fn new(db: Db, config: SagaConfig, relay: Arc<Notify>) -> Saga {
        Saga {
            db,
            config,
            touched: std::sync::Mutex::new(Vec::new()),
            changed: tokio::sync::broadcast::channel(4096).0,
            relay,
        }
    }

    pub fn step_timeout(&self) -> Duration {
        self.config.step_timeout
    }

    /// When a step started now must be answered by.
    pub fn deadline(&self, now_us: i64) -> i64 {
        now_us.saturating_add(self.config.step_timeout.as_micros() as i64)
    }

    /// The ids of orders whose changes commit from now on (subscribe before checking). An id
    /// may come before its transaction commits, or not at all when several transactions end
    /// together; a waiter checks the order itself, and also polls.
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<Arc<str>> {
        self.changed.subscribe()
    }

    /// The outbox relay's waker.
    pub fn relay_waker(&self) -> Arc<Notify> {
        self.relay.clone()
    }

    /// Tells the waiters and the relay that a transaction with saga changes committed.
    pub fn committed(&self) {
        let touched = std::mem::take(&mut *self.touched.lock().unwrap_or_else(|e| e.into_inner()));
        for id in touched {
            let _ = self.changed.send(id.into());
        }
        self.relay.notify_one();
    }

    /// Stages `OrderCreated` for a new order, in its creating transaction.
    pub async fn created(&self, tx: &mut Tx, order: &Order) -> Result<(), DbError> {
        let message = Message::OrderCreated(OrderCreated {
            customer_id: order.customer_id.clone(),
            lines: item_lines(order),
            total: amount(order),
        });
        messaging::outbox::send_new(tx, SOURCE, &order.id, &message).await?;
        Ok(())
    }

    /// Applies `event` to order `id` in `tx`.
    pub async fn apply(
        &self,
        tx: &mut Tx,
        id: &str,
        event: &Event,
        traceparent: Option<&str>,
    ) -> Result<Applied, ApplyError> {
        let Some((mut order, state)) = repo::lock(tx, self.db.backend(), id).await? else {
            return Ok(Applied::Unknown);
        };
        let transition = match saga::advance(state, event) {
            Ok(Some(t)) => t,
            Ok(None) => return Ok(Applied::Unchanged(order)),
            Err(Refused::NotCancellable(status)) => {
                return Err(ApplyError::NotCancellable(status));
            }
        };
        let now = now_us();
        let deadline = transition.next.step.map(|_| self.deadline(now));
        repo::store_state(
            tx,
            id,
            transition.next,
            deadline,
            transition.cancel_reason,
            now,
        )
        .await?;
        repo::add_to_timeline(
            tx,
            id,
            now,
            transition.step,
            transition.outcome,
            transition.detail.as_deref(),
        )
        .await?;
        for command in &transition.send {
            let message = match command {
                Command::RequestPayment => Message::PaymentRequested(PaymentRequested {
                    customer_id: order.customer_id.clone(),
                    amount: amount(&order),
                    payment_method: order.payment_method.clone(),
                }),
                Command::Confirm => {
                    crate::outbox::stage_purchases(
                        tx,
                        &self.config.purchases_topic,
                        id,
                        &order.customer_id,
                        &order.lines,
                        now,
                        traceparent,
                    )
                    .await?;
                    Message::OrderConfirmed(OrderConfirmed {
                        customer_id: order.customer_id.clone(),
                        lines: item_lines(&order),
                    })
                }
                Command::Cancel(reason) => Message::OrderCancelled(OrderCancelled {
                    reason: (*reason).to_owned(),
                }),
            };
            let envelope = Envelope::traced(SOURCE, id, &message, traceparent.map(str::to_owned));
            messaging::outbox::send(tx, &envelope).await?;
        }
        order.status = transition.next.status;
        if let Some(reason) = transition.cancel_reason {
            order.cancel_reason = Some(reason.to_owned());
        }
        order.version += 1;
        order.updated_at = service_db::rfc3339(now);
        self.touched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id.to_owned());
        Ok(Applied::Changed(order))
    }

    /// Cancels every order whose step is overdue, each in its own transaction. Returns how
    /// many it cancelled.
    pub async fn sweep(&self) -> Result<usize, DbError> {
        let mut cancelled = 0;
        for id in repo::overdue(&self.db, now_us(), 100).await? {
            let mut tx = self.db.begin_write().await?;
            match self.apply(&mut tx, &id, &Event::Timeout, None).await {
                Ok(Applied::Changed(_)) => {
                    tx.commit().await?;
                    cancelled += 1;
                }
                Ok(_) | Err(ApplyError::NotCancellable(_)) => {}
                Err(ApplyError::Db(e)) => return Err(e),
            }
        }
        if cancelled > 0 {
            tracing::info!(cancelled, "orders cancelled: a saga step timed out");
            self.committed();
        }
        Ok(cancelled)
    }

    /// Sweeps for overdue steps until `stop` resolves, several times per step timeout.
    pub async fn run_timeouts(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        let every =
            (self.config.step_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            if let Err(e) = self.sweep().await {
                tracing::warn!(error = %e, "the saga's timeout sweep failed; retrying");
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }
}

fn item_lines(order: &Order) -> Vec<ItemLine> {
    order
        .lines
        .iter()
        .map(|l| ItemLine {
            product_id: l.product_id.clone(),
            quantity: l.quantity,
        })
        .collect()
}

fn amount(order: &Order) -> Amount {
    Amount {
        amount: order.total.amount,
        currency: order.total.currency.code().to_owned(),
    }
}

/// The replies of `inventory.events` and `payment.events` as saga events.
fn event_of(message: Message) -> Option<Event> {
    Some(match message {
        Message::StockReserved(_) => Event::StockReserved,
        Message::StockRejected(r) => Event::StockRejected {
            product_id: r.product_id,
            requested: r.requested,
            available: r.available,
        },
        Message::StockReleased(_) => Event::StockReleased,
        Message::PaymentSucceeded(p) => Event::PaymentSucceeded {
            payment_id: p.payment_id,
        },
        Message::PaymentFailed(p) => Event::PaymentFailed { reason: p.reason },
        Message::PaymentRefunded(_) => Event::PaymentRefunded,
        _ => return None,
    })
}

impl Handler for Saga {
    fn wants(&self, kind: &str) -> bool {
        matches!(
            kind,
            "StockReserved"
                | "StockRejected"
                | "StockReleased"
                | "PaymentSucceeded"
                | "PaymentFailed"
                | "PaymentRefunded"
        )
    }

    async fn handle(
        &self,
        tx: &mut Tx,
        envelope: &Envelope,
        message: Message,
    ) -> Result<(), HandleError> {
        let Some(event) = event_of(message) else {
            return Ok(());
        };
        match self
            .apply(
                tx,
                &envelope.subject,
                &event,
                envelope.traceparent.as_deref(),
            )
            .await
        {
            Ok(Applied::Unknown) => {
                tracing::warn!(order = %envelope.subject, kind = %envelope.kind, "a reply for an unknown order");
                Ok(())
            }
            Ok(_) | Err(ApplyError::NotCancellable(_)) => Ok(()),
            Err(ApplyError::Db(e)) => Err(e.into()),
        }
    }

    fn committed(&self) {
        Saga::committed(self);
    }
}

/// The topics the orders service consumes.
pub const REPLY_TOPICS: [&str; 2] = [contract::INVENTORY_EVENTS, contract::PAYMENT_EVENTS];
