//! The orders tables: every statement of the service, in SQL both databases speak.

use std::collections::HashMap;

use service_common::rest::PageRequest;
use service_common::rest::money::{Currency, Money};
use service_db::{Db, DbError, now_us, rfc3339};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::order::{Line, Order, Status, TimelineEntry};
use crate::saga::{State, Step};

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

const COLUMNS: &str = "id, customer_id, status, currency, total_amount, payment_method, \
     cancel_reason, saga_step, created_at, updated_at, version";

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
        payment_method: row.try_get("payment_method").map_err(get)?,
        cancel_reason: row.try_get("cancel_reason").map_err(get)?,
        timeline: Vec::new(),
        created_at: rfc3339(row.try_get("created_at").map_err(get)?),
        updated_at: rfc3339(row.try_get("updated_at").map_err(get)?),
        version: row.try_get("version").map_err(get)?,
    })
}

/// Stores a new order (`PENDING`, waiting for its stock until `deadline_us`), its lines, the
/// first entry of its timeline and its `OrderCreated`, in the creating transaction.
pub async fn insert(
    tx: &mut Transaction<'static, Any>,
    customer_id: &str,
    lines: Vec<Line>,
    total: Money,
    payment_method: &str,
    deadline_us: i64,
) -> Result<Order, RepoError> {
    let id = service_db::new_id();
    let now = now_us();
    let row = sqlx::query(&format!(
        "INSERT INTO orders (id, customer_id, status, currency, total_amount, payment_method, \
         saga_step, step_deadline, created_at, updated_at, version) \
         VALUES ($1, $2, 'PENDING', $3, $4, $5, 'stock', $6, $7, $7, 1) RETURNING {COLUMNS}"
    ))
    .bind(&id)
    .bind(customer_id)
    .bind(total.currency.code())
    .bind(total.amount)
    .bind(payment_method)
    .bind(deadline_us)
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
    order.lines = lines;
    order
        .timeline
        .push(add_to_timeline(tx, &id, now, "order", "created", None).await?);
    Ok(order)
}

/// Appends an entry to the order's timeline (its row is locked by the caller's transaction).
pub async fn add_to_timeline(
    tx: &mut Transaction<'static, Any>,
    order_id: &str,
    at_us: i64,
    step: &str,
    outcome: &str,
    detail: Option<&str>,
) -> Result<TimelineEntry, DbError> {
    sqlx::query(
        "INSERT INTO order_timeline (order_id, seq, at, step, outcome, detail) \
         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5 FROM order_timeline \
         WHERE order_id = $1",
    )
    .bind(order_id)
    .bind(at_us)
    .bind(step)
    .bind(outcome)
    .bind(detail)
    .execute(&mut **tx)
    .await?;
    Ok(TimelineEntry {
        at: rfc3339(at_us),
        step: step.to_owned(),
        outcome: outcome.to_owned(),
        detail: detail.map(str::to_owned),
    })
}

/// An order inside a write transaction, its row locked until the transaction ends (on SQLite
/// the transaction holds the database's write lock already).
pub async fn lock(
    tx: &mut Transaction<'static, Any>,
    backend: service_db::Backend,
    id: &str,
) -> Result<Option<(Order, State)>, DbError> {
    let lock = match backend {
        service_db::Backend::Postgres => " FOR UPDATE",
        service_db::Backend::Sqlite => "",
    };
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM orders WHERE id = $1{lock}"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut order = order(&row)?;
    let step: Option<String> = row.try_get("saga_step")?;
    let state = State {
        status: order.status,
        step: step.as_deref().and_then(Step::parse),
    };
    let rows = sqlx::query(
        "SELECT product_id, quantity, unit_amount FROM order_lines WHERE order_id = $1 \
         ORDER BY line_no",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    for row in &rows {
        order.lines.push(Line {
            product_id: row.try_get("product_id")?,
            quantity: row.try_get("quantity")?,
            unit_price: Money {
                amount: row.try_get("unit_amount")?,
                currency: order.total.currency,
            },
        });
    }
    Ok(Some((order, state)))
}

/// Stores the saga's move of a locked order to `next`: its status, the step it waits on until
/// `deadline_us`, the reason of a cancellation; one version more.
pub async fn store_state(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    next: State,
    deadline_us: Option<i64>,
    cancel_reason: Option<&str>,
    now: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE orders SET status = $2, saga_step = $3, step_deadline = $4, \
         cancel_reason = COALESCE($5, cancel_reason), updated_at = $6, version = version + 1 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(next.status.as_str())
    .bind(next.step.map(Step::as_str))
    .bind(deadline_us)
    .bind(cancel_reason)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Orders whose step has waited past its deadline, oldest first.
pub async fn overdue(db: &Db, now: i64, limit: i64) -> Result<Vec<String>, DbError> {
    let rows = sqlx::query(
        "SELECT id FROM orders WHERE step_deadline IS NOT NULL AND step_deadline < $1 \
         ORDER BY step_deadline LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| r.try_get("id").map_err(DbError::from))
        .collect()
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
    let sql = format!(
        "SELECT order_id, at, step, outcome, detail FROM order_timeline \
         WHERE order_id IN ({}) ORDER BY order_id, seq",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for o in orders.iter() {
        query = query.bind(&o.id);
    }
    let mut timelines: HashMap<String, Vec<TimelineEntry>> = HashMap::new();
    for row in &query.fetch_all(db.pool()).await? {
        timelines
            .entry(row.try_get("order_id")?)
            .or_default()
            .push(TimelineEntry {
                at: rfc3339(row.try_get("at")?),
                step: row.try_get("step")?,
                outcome: row.try_get("outcome")?,
                detail: row.try_get("detail")?,
            });
    }
    for o in orders.iter_mut() {
        o.timeline = timelines.remove(&o.id).unwrap_or_default();
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
