//! The orders tables: every statement of the service, in SQL both databases speak.

use std::collections::HashMap;

use service_common::rest::PageRequest;
use service_common::rest::money::{Currency, Money};
use service_db::{Db, DbError, now_us, rfc3339};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::order::{Line, Order, Status};
use crate::outbox;

/// Why a change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("no order with this id")]
    NotFound,
    #[error("the order is at version {current}")]
    Stale { current: i64 },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for RepoError {
    fn from(e: sqlx::Error) -> Self {
        RepoError::Db(e.into())
    }
}

const COLUMNS: &str =
    "id, customer_id, status, currency, total_amount, created_at, updated_at, version";

/// An order row before its lines are attached.
fn order(row: &AnyRow) -> Result<Order, DbError> {
    let get = |e: sqlx::Error| DbError::from(e);
    let currency: String = row.try_get("currency").map_err(get)?;
    let currency = Currency::parse(&currency)
        .ok_or_else(|| DbError::Other(format!("stored currency {currency:?}")))?;
    let status: String = row.try_get("status").map_err(get)?;
    Ok(Order {
        id: row.try_get("id").map_err(get)?,
        customer_id: row.try_get("customer_id").map_err(get)?,
        status: Status::parse(&status)
            .ok_or_else(|| DbError::Other(format!("stored status {status:?}")))?,
        lines: Vec::new(),
        total: Money {
            amount: row.try_get("total_amount").map_err(get)?,
            currency,
        },
        created_at: rfc3339(row.try_get("created_at").map_err(get)?),
        updated_at: rfc3339(row.try_get("updated_at").map_err(get)?),
        version: row.try_get("version").map_err(get)?,
    })
}

/// Stores a new order, its lines and one outbox event per line, in the creating transaction.
pub async fn insert(
    tx: &mut Transaction<'static, Any>,
    customer_id: &str,
    lines: Vec<Line>,
    total: Money,
    topic: &str,
) -> Result<Order, RepoError> {
    let id = service_db::new_id();
    let now = now_us();
    let row = sqlx::query(&format!(
        "INSERT INTO orders ({COLUMNS}) VALUES ($1, $2, 'PENDING', $3, $4, $5, $5, 1) \
         RETURNING {COLUMNS}"
    ))
    .bind(&id)
    .bind(customer_id)
    .bind(total.currency.code())
    .bind(total.amount)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    let mut order = order(&row)?;
    for (no, line) in lines.iter().enumerate() {
        sqlx::query(
            "INSERT INTO order_lines (order_id, line_no, product_id, quantity, unit_amount) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(no as i64)
        .bind(&line.product_id)
        .bind(line.quantity)
        .bind(line.unit_price.amount)
        .execute(&mut **tx)
        .await?;
    }
    outbox::stage_purchases(tx, topic, &id, customer_id, &lines, now).await?;
    order.lines = lines;
    Ok(order)
}

async fn attach_lines(db: &Db, orders: &mut [Order]) -> Result<(), DbError> {
    if orders.is_empty() {
        return Ok(());
    }
    let placeholders: Vec<String> = (1..=orders.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT order_id, product_id, quantity, unit_amount FROM order_lines \
         WHERE order_id IN ({}) ORDER BY order_id, line_no",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for o in orders.iter() {
        query = query.bind(&o.id);
    }
    let rows = query.fetch_all(db.pool()).await?;
    let mut lines: HashMap<String, Vec<(String, i64, i64)>> = HashMap::new();
    for row in &rows {
        lines.entry(row.try_get("order_id")?).or_default().push((
            row.try_get("product_id")?,
            row.try_get("quantity")?,
            row.try_get("unit_amount")?,
        ));
    }
    for o in orders.iter_mut() {
        let currency = o.total.currency;
        o.lines = lines
            .remove(&o.id)
            .unwrap_or_default()
            .into_iter()
            .map(|(product_id, quantity, amount)| Line {
                product_id,
                quantity,
                unit_price: Money { amount, currency },
            })
            .collect();
    }
    Ok(())
}

pub async fn get(db: &Db, id: &str) -> Result<Option<Order>, DbError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM orders WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut orders = [order(&row)?];
    attach_lines(db, &mut orders).await?;
    let [order] = orders;
    Ok(Some(order))
}

/// The filters of a list.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub customer_id: Option<String>,
    pub status: Option<Status>,
}

/// One page of orders in id order.
pub async fn list(db: &Db, filter: &Filter, page: &PageRequest) -> Result<Vec<Order>, DbError> {
    // Only the conditions that apply, so that each shape of the query has its own plan (the
    // (customer_id, id) or (status, id) index, or the primary key).
    let mut sql = format!("SELECT {COLUMNS} FROM orders WHERE 1 = 1");
    let mut binds: Vec<String> = Vec::new();
    if let Some(customer_id) = &filter.customer_id {
        binds.push(customer_id.clone());
        sql.push_str(&format!(" AND customer_id = ${}", binds.len()));
    }
    if let Some(status) = filter.status {
        binds.push(status.as_str().to_owned());
        sql.push_str(&format!(" AND status = ${}", binds.len()));
    }
    if let Some(after) = &page.after {
        binds.push(after.clone());
        sql.push_str(&format!(" AND id > ${}", binds.len()));
    }
    sql.push_str(&format!(" ORDER BY id LIMIT {}", page.fetch()));
    let mut query = sqlx::query(&sql);
    for bind in &binds {
        query = query.bind(bind);
    }
    let rows = query.fetch_all(db.pool()).await?;
    let mut orders = rows.iter().map(order).collect::<Result<Vec<_>, _>>()?;
    attach_lines(db, &mut orders).await?;
    Ok(orders)
}

/// Moves the order at `version` from `from` to `to` (the caller checked the transition).
pub async fn set_status(
    db: &Db,
    id: &str,
    version: i64,
    from: Status,
    to: Status,
) -> Result<Order, RepoError> {
    let row = sqlx::query(&format!(
        "UPDATE orders SET status = $4, updated_at = $5, version = version + 1 \
         WHERE id = $1 AND version = $2 AND status = $3 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(version)
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(now_us())
    .fetch_optional(db.pool())
    .await?;
    match row {
        // The change this request made, whatever happens next.
        Some(row) => {
            let mut orders = [order(&row)?];
            attach_lines(db, &mut orders).await?;
            let [order] = orders;
            Ok(order)
        }
        None => Err(match get(db, id).await? {
            Some(current) => RepoError::Stale {
                current: current.version,
            },
            None => RepoError::NotFound,
        }),
    }
}
