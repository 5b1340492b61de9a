//! What inventory does with the orders service's messages (consumer `inventory` on
//! `order.events`) and the catalog's (consumer `inventory` on `catalog.events`), each in the
//! consumer's transaction, its replies staged in the outbox:
//!
//! | message | order state | effect | reply |
//! |---|---|---|---|
//! | `OrderCreated` | unknown | every line reserved, or none | `StockReserved` (+ `StockLow` per product that fell below the threshold), or `StockRejected` |
//! | `OrderCreated` | known (any state, a `CANCELLED` tombstone too) | none | none |
//! | `OrderConfirmed` | `RESERVED` → `SOLD` | the reservation becomes a sale | none |
//! | `OrderConfirmed` | any other | none (a confirmation after a cancellation sells nothing) | none |
//! | `OrderCancelled` | `RESERVED` → `RELEASED` | the reservation is given back | `StockReleased` |
//! | `OrderCancelled` | `SOLD` → `RETURNED` | the sold units are on hand again | `StockReleased` |
//! | `OrderCancelled` | unknown → `CANCELLED` | none (a tombstone: a later `OrderCreated` reserves nothing) | none |
//! | `OrderCancelled` | `REJECTED`, `RELEASED`, `RETURNED`, `CANCELLED` | none | none |
//! | `ProductStockSet` | — | the product's `on_hand` set (its row created if missing), never below its reserved units | `StockLow` if available stock fell below the threshold |
//!
//! Every change of a product's row (a reservation, a sale, a release, a return, a
//! `ProductStockSet`) also sends `StockChanged` with the row after it, about the order that
//! caused it (else the product), in the same transaction.
//!
//! Every transition is a conditional update of the order's row, so each applies once however
//! the messages are repeated or reordered; the consumer's inbox drops exact duplicates before
//! they get here. A `ProductStockSet` sets a level, so a repeated one sets the same level again.

use messaging::contract::{ItemLine, ProductStockSet, StockRejected, StockReleased, StockReserved};
use messaging::{Envelope, HandleError, Handler, Message, Tx};
use sqlx::Acquire;

use crate::repo::{self, Expect, Floor, Movement, SetError};
use crate::stock::{OrderState, demand};
use crate::{SOURCE, Settings};

/// Inventory's side of the order saga and of the catalog's stock sync (one handler for both
/// consumers: each sees only its topic's types).
#[derive(Debug, Clone)]
pub struct StockHandler {
    threshold: i64,
}

impl StockHandler {
    pub fn new(settings: &Settings) -> StockHandler {
        StockHandler {
            threshold: settings.low_stock_threshold,
        }
    }

    /// Reserves every line of a new order, or none.
    async fn created(
        &self,
        tx: &mut Tx,
        envelope: &Envelope,
        lines: &[ItemLine],
    ) -> Result<(), HandleError> {
        let order_id = envelope.subject.as_str();
        let demand =
            demand(lines).map_err(|e| HandleError::Poison(format!("order {order_id}: {e}")))?;
        // Claimed as refused, and moved to RESERVED below when every line is: the claim is
        // what tells a first OrderCreated from one of an order already seen (or cancelled
        // before it came), even across replicas.
        if !repo::claim_order(tx, order_id, OrderState::Rejected).await? {
            return Ok(());
        }
        // Rolled back whole when a line is short: nothing of the order stays reserved.
        let mut reserving = (&mut **tx).begin().await?;
        let mut after = Vec::with_capacity(demand.len());
        for (product_id, quantity) in &demand {
            match repo::reserve(&mut reserving, product_id, *quantity).await? {
                Some(stock) => after.push(stock),
                None => {
                    reserving.rollback().await?;
                    let available = repo::available(tx, product_id).await?;
                    tracing::info!(
                        order_id,
                        product_id,
                        requested = quantity,
                        available,
                        "stock short: order refused"
                    );
                    let refusal = Message::StockRejected(StockRejected {
                        product_id: product_id.clone(),
                        requested: *quantity,
                        available,
                    });
                    return reply(tx, envelope, &refusal).await;
                }
            }
        }
        reserving.commit().await?;
        repo::move_order(tx, order_id, OrderState::Rejected, OrderState::Reserved).await?;
        repo::hold(tx, order_id, &demand).await?;
        reply(tx, envelope, &Message::StockReserved(StockReserved {})).await?;
        for ((_, quantity), stock) in demand.iter().zip(&after) {
            let before = stock.available + quantity;
            announce(tx, envelope, Some(before), stock, self.threshold).await?;
        }
        Ok(())
    }

    /// Sets a product's on-hand stock to what the catalog was given, never below what orders
    /// hold (their units are promised: the difference shows as less available).
    async fn stock_set(
        &self,
        tx: &mut Tx,
        envelope: &Envelope,
        set: &ProductStockSet,
    ) -> Result<(), HandleError> {
        let product_id = set.product_id.as_str();
        let change = repo::set_in(tx, product_id, set.on_hand, &Expect::Anything, Floor::Clamp)
            .await
            .map_err(|e| match e {
                SetError::Db(e) => HandleError::from(e),
                // Out of range or not a product id; the other refusals cannot happen without
                // a precondition and with the floor clamped.
                e => HandleError::Poison(format!("stock of product {product_id:?}: {e}")),
            })?;
        if change.after.on_hand > set.on_hand {
            tracing::warn!(
                product_id,
                requested = set.on_hand,
                reserved = change.after.reserved,
                "stock set below what orders hold: on_hand kept at the reserved units"
            );
        }
        let before = change.before.as_ref().map(|s| s.available);
        announce(tx, envelope, before, &change.after, self.threshold).await
    }
}

impl Handler for StockHandler {
    fn wants(&self, kind: &str) -> bool {
        matches!(
            kind,
            "OrderCreated" | "OrderConfirmed" | "OrderCancelled" | "ProductStockSet"
        )
    }

    async fn handle(
        &self,
        tx: &mut Tx,
        envelope: &Envelope,
        message: Message,
    ) -> Result<(), HandleError> {
        match message {
            Message::OrderCreated(created) => self.created(tx, envelope, &created.lines).await,
            Message::OrderConfirmed(_) => confirmed(tx, envelope, self.threshold).await,
            Message::OrderCancelled(_) => cancelled(tx, envelope, self.threshold).await,
            Message::ProductStockSet(set) => self.stock_set(tx, envelope, &set).await,
            _ => Ok(()),
        }
    }
}

/// A paid order's reservation becomes a sale.
async fn confirmed(tx: &mut Tx, envelope: &Envelope, threshold: i64) -> Result<(), HandleError> {
    let order_id = envelope.subject.as_str();
    if !repo::move_order(tx, order_id, OrderState::Reserved, OrderState::Sold).await? {
        return Ok(());
    }
    give(tx, envelope, Movement::Sell, threshold).await
}

/// A cancelled order's reservation (or sale) is given back; an order not seen yet is
/// remembered as cancelled.
async fn cancelled(tx: &mut Tx, envelope: &Envelope, threshold: i64) -> Result<(), HandleError> {
    let order_id = envelope.subject.as_str();
    if repo::claim_order(tx, order_id, OrderState::Cancelled).await? {
        return Ok(());
    }
    let movement =
        if repo::move_order(tx, order_id, OrderState::Reserved, OrderState::Released).await? {
            Movement::Release
        } else if repo::move_order(tx, order_id, OrderState::Sold, OrderState::Returned).await? {
            Movement::Return
        } else {
            return Ok(());
        };
    give(tx, envelope, movement, threshold).await?;
    reply(tx, envelope, &Message::StockReleased(StockReleased {})).await
}

/// Applies `movement` to every product the envelope's order holds.
async fn give(
    tx: &mut Tx,
    envelope: &Envelope,
    movement: Movement,
    threshold: i64,
) -> Result<(), HandleError> {
    let order_id = envelope.subject.as_str();
    for (product_id, quantity) in repo::held(tx, order_id).await? {
        let Some(after) = repo::apply(tx, &product_id, quantity, movement).await? else {
            // The order's reservation is not in the product's row: a bug, not a retry.
            return Err(HandleError::Poison(format!(
                "order {order_id}: {movement:?} of {quantity} × {product_id}: the stock does not hold the reservation"
            )));
        };
        // A sale leaves available stock as it was, a release or a return raises it: none
        // can fall below the threshold.
        announce(tx, envelope, None, &after, threshold).await?;
    }
    Ok(())
}

/// Stages `StockChanged` (and `StockLow` when it fell) about what `to` is about.
async fn announce(
    tx: &mut Tx,
    to: &Envelope,
    available_before: Option<i64>,
    after: &crate::stock::Stock,
    threshold: i64,
) -> Result<(), HandleError> {
    repo::announce(
        tx,
        &to.subject,
        to.traceparent.clone(),
        available_before,
        after,
        threshold,
    )
    .await?;
    Ok(())
}

async fn reply(tx: &mut Tx, to: &Envelope, message: &Message) -> Result<(), HandleError> {
    messaging::outbox::send(tx, &Envelope::reply(SOURCE, to, message)).await?;
    Ok(())
}
