//! The catalog's side of the stock sync. The inventory is the one source of truth for stock:
//!
//! - stock set on a product here (a creation, a patch naming `stock_quantity`, an upsert that
//!   creates the product or changes its stock) is staged as `ProductStockSet` on
//!   `catalog.events` ([`stage_set`]), in the transaction of the product's write;
//! - the inventory's `StockChanged` (consumer [`crate::CONSUMER`] on `inventory.events`,
//!   [`StockReadings`]) sets the product's `stock_quantity` to its `available` units, without a
//!   new version of the product (see [`crate::repo::read_stock`]).
//!
//! So a product's `stock_quantity` is what an order may still reserve of it, as of the last
//! change the catalog has read (in `ecom up`, well within a second), or the stock last set
//! here until the inventory's answer comes.

use messaging::contract::{ProductStockSet, StockChanged};
use messaging::{Envelope, HandleError, Handler, Message, Tx};
use service_db::DbError;

use crate::{SOURCE, repo};

/// Stages `ProductStockSet` of `product_id` (its subject) with `on_hand`, in `tx`.
pub async fn stage_set(tx: &mut Tx, product_id: &str, on_hand: i64) -> Result<(), DbError> {
    let set = Message::ProductStockSet(ProductStockSet {
        product_id: product_id.to_owned(),
        on_hand,
    });
    messaging::outbox::send_new(tx, SOURCE, product_id, &set).await?;
    Ok(())
}

/// Reads the inventory's `StockChanged` into the products' `stock_quantity`.
#[derive(Debug, Clone, Default)]
pub struct StockReadings;

impl Handler for StockReadings {
    fn wants(&self, kind: &str) -> bool {
        kind == "StockChanged"
    }

    async fn handle(
        &self,
        tx: &mut Tx,
        _envelope: &Envelope,
        message: Message,
    ) -> Result<(), HandleError> {
        let Message::StockChanged(changed) = message else {
            return Ok(());
        };
        read(tx, &changed).await
    }
}

async fn read(tx: &mut Tx, changed: &StockChanged) -> Result<(), HandleError> {
    if changed.available < 0 {
        return Err(HandleError::Poison(format!(
            "product {:?}: {} units available",
            changed.product_id, changed.available
        )));
    }
    // A product the catalog does not have (stock set on the inventory alone, or a product
    // deleted since) is no one's reading.
    let read =
        repo::read_stock(tx, &changed.product_id, changed.available, changed.version).await?;
    if !read {
        tracing::debug!(
            product_id = changed.product_id,
            version = changed.version,
            "stock change of no product, or older than the product's reading: ignored"
        );
    }
    Ok(())
}
