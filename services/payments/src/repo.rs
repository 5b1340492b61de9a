//! The payments tables: every statement of the service, in SQL both databases speak.

use service_db::{Db, DbError, now_us, rfc3339};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::payment::{Amount, Payment, Status};
use messaging::Tx;

/// The most payments one list answers.
pub const LIST_LIMIT: i64 = 100;

const COLUMNS: &str = "id, order_id, customer_id, amount, currency, payment_method, status, \
                       reason, charge_id, refund_id, created_at, updated_at";

/// A payment row: what clients see, and the provider's ids they do not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub payment: Payment,
    /// The provider's charge (also for a declined one); `None` when the provider refused the
    /// request.
    pub charge_id: Option<String>,
    pub refund_id: Option<String>,
}

/// A payment to store.
#[derive(Debug, Clone)]
pub struct NewPayment<'a> {
    pub order_id: &'a str,
    pub customer_id: &'a str,
    pub amount: i64,
    pub currency: &'a str,
    pub payment_method: &'a str,
    /// `SUCCEEDED` or `FAILED`.
    pub status: Status,
    pub reason: Option<&'a str>,
    pub charge_id: Option<&'a str>,
}

fn record(row: &AnyRow) -> Result<Record, DbError> {
    let status: String = row.try_get("status")?;
    Ok(Record {
        payment: Payment {
            id: row.try_get("id")?,
            order_id: row.try_get("order_id")?,
            customer_id: row.try_get("customer_id")?,
            amount: Amount {
                amount: row.try_get("amount")?,
                currency: row.try_get("currency")?,
            },
            status: Status::parse(&status)
                .ok_or_else(|| DbError::Other(format!("stored status {status:?}")))?,
            reason: row.try_get("reason")?,
            payment_method: row.try_get("payment_method")?,
            created_at: rfc3339(row.try_get("created_at")?),
            updated_at: rfc3339(row.try_get("updated_at")?),
        },
        charge_id: row.try_get("charge_id")?,
        refund_id: row.try_get("refund_id")?,
    })
}

/// The payment of `order_id`, if there is one.
pub async fn by_order(tx: &mut Tx, order_id: &str) -> Result<Option<Record>, DbError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM payments WHERE order_id = $1"
    ))
    .bind(order_id)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(record).transpose()
}

/// Stores a new payment; `None` when the order has one already (which stays).
pub async fn insert(tx: &mut Tx, new: &NewPayment<'_>) -> Result<Option<Record>, DbError> {
    let now = now_us();
    let row = sqlx::query(&format!(
        "INSERT INTO payments ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, \
         $10, $10) ON CONFLICT (order_id) DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(service_db::new_id())
    .bind(new.order_id)
    .bind(new.customer_id)
    .bind(new.amount)
    .bind(new.currency)
    .bind(new.payment_method)
    .bind(new.status.as_str())
    .bind(new.reason)
    .bind(new.charge_id)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(record).transpose()
}

/// Marks the succeeded payment of `order_id` refunded; `None` when it is not (any more)
/// `SUCCEEDED`.
pub async fn mark_refunded(
    tx: &mut Tx,
    order_id: &str,
    refund_id: &str,
    reason: &str,
) -> Result<Option<Record>, DbError> {
    let row = sqlx::query(&format!(
        "UPDATE payments SET status = 'REFUNDED', refund_id = $2, reason = $3, updated_at = $4 \
         WHERE order_id = $1 AND status = 'SUCCEEDED' RETURNING {COLUMNS}"
    ))
    .bind(order_id)
    .bind(refund_id)
    .bind(reason)
    .bind(now_us())
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(record).transpose()
}

/// Records that `order_id` was cancelled before any payment of it.
pub async fn tombstone(tx: &mut Tx, order_id: &str, reason: &str) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO cancelled_orders (order_id, reason, at) VALUES ($1, $2, $3) \
         ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(order_id)
    .bind(reason)
    .bind(now_us())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Whether `order_id` was cancelled before any payment of it.
pub async fn is_cancelled(tx: &mut Tx, order_id: &str) -> Result<bool, DbError> {
    let row = sqlx::query("SELECT 1 AS one FROM cancelled_orders WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.is_some())
}

/// The payment `id`.
pub async fn get(db: &Db, id: &str) -> Result<Option<Payment>, DbError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM payments WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.as_ref().map(record).transpose()?.map(|r| r.payment))
}

/// The filters of a list.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub order_id: Option<String>,
    pub customer_id: Option<String>,
}

/// At most [`LIST_LIMIT`] payments, newest first.
pub async fn list(db: &Db, filter: &Filter) -> Result<Vec<Payment>, DbError> {
    // Only the conditions that apply, so that each shape of the query has its plan (the
    // order_id or (customer_id, id) index, or the primary key).
    let mut sql = format!("SELECT {COLUMNS} FROM payments WHERE 1 = 1");
    let mut binds: Vec<&str> = Vec::new();
    if let Some(order_id) = &filter.order_id {
        binds.push(order_id);
        sql.push_str(&format!(" AND order_id = ${}", binds.len()));
    }
    if let Some(customer_id) = &filter.customer_id {
        binds.push(customer_id);
        sql.push_str(&format!(" AND customer_id = ${}", binds.len()));
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT {LIST_LIMIT}"));
    let mut query = sqlx::query(&sql);
    for bind in binds {
        query = query.bind(bind);
    }
    let rows = query.fetch_all(db.pool()).await?;
    rows.iter()
        .map(|row| record(row).map(|r| r.payment))
        .collect()
}
