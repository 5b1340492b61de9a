//! The stock tables: every statement of inventory, in SQL both databases speak.
//!
//! Concurrency: on PostgreSQL several replicas change the same product's row at once (each
//! handles other partitions of `order.events`, and administrators write beside them). So no
//! statement reads a quantity to write it back: a reservation is one conditional `UPDATE`
//! (`WHERE on_hand - reserved >= q`), a sale or release one `UPDATE` guarded by what it takes,
//! and an administrator's change one `UPDATE` at the version read. An order's state moves by a
//! conditional `UPDATE` too (`WHERE state = 'RESERVED'`), so two deliveries of its messages
//! racing on two replicas cannot both apply it.

use messaging::Envelope;
use messaging::contract::{Message, StockChanged, StockLow};
use service_db::{Db, DbError, now_us};
use sqlx::Row;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use crate::stock::{MAX_ON_HAND, OrderState, Stock, falls_low, is_product_id};

const COLUMNS: &str = "product_id, on_hand, reserved, version";

/// The most rows one list answers.
pub const LIST_LIMIT: i64 = 1_000;

fn stock(row: &AnyRow) -> Result<Stock, DbError> {
    Ok(Stock::new(
        row.try_get("product_id")?,
        row.try_get("on_hand")?,
        row.try_get("reserved")?,
        row.try_get("version")?,
    ))
}

/// The stock of `product_id`, if it has a row.
pub async fn get(db: &Db, product_id: &str) -> Result<Option<Stock>, DbError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM stock WHERE product_id = $1"
    ))
    .bind(product_id)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(stock).transpose()
}

async fn get_in(tx: &mut Transaction<'_, Any>, product_id: &str) -> Result<Option<Stock>, DbError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM stock WHERE product_id = $1"
    ))
    .bind(product_id)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(stock).transpose()
}

/// Up to [`LIST_LIMIT`] rows in product id order; with `below`, only those whose available
/// stock is below it.
pub async fn list(db: &Db, below: Option<i64>) -> Result<Vec<Stock>, DbError> {
    let rows = match below {
        Some(threshold) => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM stock WHERE on_hand - reserved < $1 \
                 ORDER BY product_id LIMIT {LIST_LIMIT}"
            ))
            .bind(threshold)
            .fetch_all(db.pool())
            .await?
        }
        None => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM stock ORDER BY product_id LIMIT {LIST_LIMIT}"
            ))
            .fetch_all(db.pool())
            .await?
        }
    };
    rows.iter().map(stock).collect()
}

/// What a change of on-hand stock expects of the product's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Nothing: create the row, or change it at whatever version it is (the catalog's sync).
    Anything,
    /// No row yet (a `PUT` without `If-Match`): changing a row needs its version.
    NoRow,
    /// A row, at any version (`If-Match: *`).
    AnyVersion,
    /// A row at one of these versions (`If-Match` naming them).
    Versions(Vec<i64>),
}

/// Why on-hand stock was not set.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    #[error("{0:?} is not a product id (1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-')")]
    ProductId(String),
    #[error("on_hand must be from 0 to {MAX_ON_HAND} (got {0})")]
    OutOfRange(i64),
    #[error("the stock exists (version {current}): changing it needs If-Match")]
    PreconditionRequired { current: i64 },
    #[error("the stock is at version {current}")]
    Stale { current: i64 },
    #[error("the product has no stock yet: create it without If-Match")]
    NoStock,
    #[error("{reserved} units are reserved by orders: on_hand cannot go below that")]
    BelowReserved { reserved: i64 },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for SetError {
    fn from(e: sqlx::Error) -> Self {
        SetError::Db(e.into())
    }
}

/// What a change of on-hand stock does when it asks for fewer units than orders hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Floor {
    /// Refuses it ([`SetError::BelowReserved`]): an administrator's change, who can ask again.
    Refuse,
    /// Sets what orders hold instead: the catalog's sync, which nobody can be asked to redo.
    Clamp,
}

/// A change of a product's row: the row before (`None` when the change created it) and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub before: Option<Stock>,
    pub after: Stock,
}

/// Sets the on-hand stock of `product_id`, creating its row when it has none, at version
/// `if_match` when given (else at whatever version it is). `StockChanged` (and `StockLow` when
/// the change takes available stock below `threshold`), about the product, is staged in the
/// same transaction. Returns the stock and whether its row was created.
pub async fn set_on_hand(
    db: &Db,
    product_id: &str,
    on_hand: i64,
    if_match: Option<i64>,
    threshold: i64,
) -> Result<(Stock, bool), SetError> {
    let expect = match if_match {
        Some(version) => Expect::Versions(vec![version]),
        None => Expect::Anything,
    };
    set(db, product_id, on_hand, &expect, threshold).await
}

/// [`set_on_hand`] with any [`Expect`]ation of the row (an administrator's change: below the
/// reserved units is refused).
pub async fn set(
    db: &Db,
    product_id: &str,
    on_hand: i64,
    expect: &Expect,
    threshold: i64,
) -> Result<(Stock, bool), SetError> {
    let mut tx = db.begin_write().await?;
    let change = set_in(&mut tx, product_id, on_hand, expect, Floor::Refuse).await?;
    let trace = service_common::telemetry::current_traceparent();
    announce(
        &mut tx,
        product_id,
        trace,
        change.before.as_ref().map(|s| s.available),
        &change.after,
        threshold,
    )
    .await?;
    tx.commit().await?;
    Ok((change.after, change.before.is_none()))
}

/// Sets the on-hand stock of `product_id` in `tx`, creating its row when it has none; below
/// the reserved units as `floor` says. Stages nothing: the caller [`announce`]s the change.
pub async fn set_in(
    tx: &mut Transaction<'_, Any>,
    product_id: &str,
    on_hand: i64,
    expect: &Expect,
    floor: Floor,
) -> Result<Change, SetError> {
    if !is_product_id(product_id) {
        return Err(SetError::ProductId(product_id.to_owned()));
    }
    if !(0..=MAX_ON_HAND).contains(&on_hand) {
        return Err(SetError::OutOfRange(on_hand));
    }
    // A reservation between the read and the write changes the version: read again (on
    // SQLite the transaction holds the write lock, so this is PostgreSQL's case only).
    for _ in 0..5 {
        let Some(current) = get_in(tx, product_id).await? else {
            if matches!(expect, Expect::AnyVersion | Expect::Versions(_)) {
                return Err(SetError::NoStock);
            }
            let row = sqlx::query(&format!(
                "INSERT INTO stock (product_id, on_hand, reserved, version, updated_at) \
                 VALUES ($1, $2, 0, 1, $3) ON CONFLICT (product_id) DO NOTHING \
                 RETURNING {COLUMNS}"
            ))
            .bind(product_id)
            .bind(on_hand)
            .bind(now_us())
            .fetch_optional(&mut **tx)
            .await?;
            match row {
                Some(row) => {
                    return Ok(Change {
                        before: None,
                        after: stock(&row)?,
                    });
                }
                // Created concurrently: now it is a change of that row.
                None => continue,
            }
        };
        match expect {
            Expect::NoRow => {
                return Err(SetError::PreconditionRequired {
                    current: current.version,
                });
            }
            Expect::Versions(versions) if !versions.contains(&current.version) => {
                return Err(SetError::Stale {
                    current: current.version,
                });
            }
            _ => {}
        }
        let target = match floor {
            Floor::Clamp => on_hand.max(current.reserved),
            Floor::Refuse if on_hand < current.reserved => {
                return Err(SetError::BelowReserved {
                    reserved: current.reserved,
                });
            }
            Floor::Refuse => on_hand,
        };
        let row = sqlx::query(&format!(
            "UPDATE stock SET on_hand = $2, version = version + 1, updated_at = $3 \
             WHERE product_id = $1 AND version = $4 AND reserved <= $2 RETURNING {COLUMNS}"
        ))
        .bind(product_id)
        .bind(target)
        .bind(now_us())
        .bind(current.version)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else {
            continue;
        };
        return Ok(Change {
            before: Some(current),
            after: stock(&row)?,
        });
    }
    Err(SetError::Db(DbError::Unavailable(format!(
        "the stock of {product_id:?} kept changing under concurrent writes"
    ))))
}

/// Stages what a change of a product's row tells, about `subject` (the order that caused it,
/// else the product) in the trace `traceparent`: `StockChanged` with the row after it, and
/// `StockLow` when it took available stock from `available_before` to below `threshold`
/// (`None`: the row was created, or the change cannot lower it).
pub async fn announce(
    tx: &mut messaging::Tx,
    subject: &str,
    traceparent: Option<String>,
    available_before: Option<i64>,
    after: &Stock,
    threshold: i64,
) -> Result<(), DbError> {
    let changed = Message::StockChanged(StockChanged {
        product_id: after.product_id.clone(),
        on_hand: after.on_hand,
        reserved: after.reserved,
        available: after.available,
        version: after.version,
    });
    let envelope = Envelope::traced(crate::SOURCE, subject, &changed, traceparent.clone());
    messaging::outbox::send(tx, &envelope).await?;
    if let Some(before) = available_before
        && falls_low(before, after.available, threshold)
    {
        let low = Message::StockLow(StockLow {
            product_id: after.product_id.clone(),
            available: after.available,
        });
        let envelope = Envelope::traced(crate::SOURCE, subject, &low, traceparent);
        messaging::outbox::send(tx, &envelope).await?;
    }
    Ok(())
}

/// Records that inventory has seen `order_id`, in `state`; `false` when it had already (the
/// row is then left as it is).
pub async fn claim_order(
    tx: &mut Transaction<'_, Any>,
    order_id: &str,
    state: OrderState,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "INSERT INTO stock_orders (order_id, state, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(order_id)
    .bind(state.as_str())
    .bind(now_us())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Moves `order_id` from `from` to `to`; `false` when it is not in `from`.
pub async fn move_order(
    tx: &mut Transaction<'_, Any>,
    order_id: &str,
    from: OrderState,
    to: OrderState,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE stock_orders SET state = $3, updated_at = $4 WHERE order_id = $1 AND state = $2",
    )
    .bind(order_id)
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(now_us())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Reserves `quantity` of `product_id` if that much is available: the stock after, or `None`
/// (not enough, or no stock row at all).
pub async fn reserve(
    tx: &mut Transaction<'_, Any>,
    product_id: &str,
    quantity: i64,
) -> Result<Option<Stock>, DbError> {
    let row = sqlx::query(&format!(
        "UPDATE stock SET reserved = reserved + $2, version = version + 1, updated_at = $3 \
         WHERE product_id = $1 AND on_hand - reserved >= $2 RETURNING {COLUMNS}"
    ))
    .bind(product_id)
    .bind(quantity)
    .bind(now_us())
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(stock).transpose()
}

/// The available stock of `product_id` now (0 without a row).
pub async fn available(tx: &mut Transaction<'_, Any>, product_id: &str) -> Result<i64, DbError> {
    Ok(get_in(tx, product_id).await?.map_or(0, |s| s.available))
}

/// Stores what `order_id` holds of each product.
pub async fn hold(
    tx: &mut Transaction<'_, Any>,
    order_id: &str,
    lines: &[(String, i64)],
) -> Result<(), DbError> {
    for (product_id, quantity) in lines {
        sqlx::query(
            "INSERT INTO stock_order_lines (order_id, product_id, quantity) VALUES ($1, $2, $3)",
        )
        .bind(order_id)
        .bind(product_id)
        .bind(quantity)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// What `order_id` holds of each product, in product id order.
pub async fn held(
    tx: &mut Transaction<'_, Any>,
    order_id: &str,
) -> Result<Vec<(String, i64)>, DbError> {
    let rows = sqlx::query(
        "SELECT product_id, quantity FROM stock_order_lines WHERE order_id = $1 \
         ORDER BY product_id",
    )
    .bind(order_id)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("product_id")?, row.try_get("quantity")?)))
        .collect()
}

/// One change of a product's row by what an order holds of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Movement {
    /// A reservation becomes a sale: `on_hand - q`, `reserved - q`.
    Sell,
    /// A reservation is given back: `reserved - q`.
    Release,
    /// A sale is given back: `on_hand + q`.
    Return,
}

/// Applies `movement` of `quantity` to `product_id`'s row: the row after, or `None` when it
/// does not hold what the movement takes (no row, or less reserved than `quantity`: a broken
/// invariant).
pub async fn apply(
    tx: &mut Transaction<'_, Any>,
    product_id: &str,
    quantity: i64,
    movement: Movement,
) -> Result<Option<Stock>, DbError> {
    let set = match movement {
        Movement::Sell => "on_hand = on_hand - $2, reserved = reserved - $2",
        Movement::Release => "reserved = reserved - $2",
        Movement::Return => "on_hand = on_hand + $2",
    };
    let guard = match movement {
        Movement::Sell | Movement::Release => " AND reserved >= $2",
        Movement::Return => "",
    };
    let row = sqlx::query(&format!(
        "UPDATE stock SET {set}, version = version + 1, updated_at = $3 \
         WHERE product_id = $1{guard} RETURNING {COLUMNS}"
    ))
    .bind(product_id)
    .bind(quantity)
    .bind(now_us())
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(stock).transpose()
}
