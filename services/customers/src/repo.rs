//! The customers table: every statement of the service, in SQL both databases speak.

use service_common::rest::PageRequest;
use service_db::{Db, DbError, now_us, rfc3339};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::customer::{Customer, CustomerFields};

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("no customer with this id")]
    NotFound,
    #[error("the customer is at version {current}")]
    Stale { current: i64 },
    #[error("the email {0:?} belongs to another customer")]
    EmailTaken(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for RepoError {
    fn from(e: sqlx::Error) -> Self {
        RepoError::Db(e.into())
    }
}

const COLUMNS: &str = "id, name, email, phone, address, created_at, updated_at, version";

fn customer(row: &AnyRow) -> Result<Customer, sqlx::Error> {
    Ok(Customer {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        phone: row.try_get("phone")?,
        address: row.try_get("address")?,
        created_at: rfc3339(row.try_get("created_at")?),
        updated_at: rfc3339(row.try_get("updated_at")?),
        version: row.try_get("version")?,
    })
}

fn email_taken(e: sqlx::Error, email: &str) -> RepoError {
    match DbError::from(e) {
        DbError::Duplicate(_) => RepoError::EmailTaken(email.to_owned()),
        e => RepoError::Db(e),
    }
}

pub async fn insert(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    fields: &CustomerFields,
) -> Result<Customer, RepoError> {
    let c = fields.get();
    let row = sqlx::query(&format!(
        "INSERT INTO customers ({COLUMNS}, email_folded) \
         VALUES ($1, $2, $3, $4, $5, $6, $6, 1, $7) RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(&c.name)
    .bind(&c.email)
    .bind(c.phone.as_deref())
    .bind(c.address.as_deref())
    .bind(now_us())
    .bind(fields.email_folded())
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| email_taken(e, &c.email))?;
    Ok(customer(&row)?)
}

pub async fn get(db: &Db, id: &str) -> Result<Option<Customer>, DbError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM customers WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.as_ref().map(customer).transpose()?)
}

/// One page of customers in id order, of one email (any case) when given.
pub async fn list(
    db: &Db,
    email: Option<&str>,
    page: &PageRequest,
) -> Result<Vec<Customer>, DbError> {
    // Only the conditions that apply, so that each shape of the query has its own plan (the
    // email index, or the primary key).
    let mut sql = format!("SELECT {COLUMNS} FROM customers WHERE 1 = 1");
    let mut binds = Vec::new();
    if let Some(email) = email {
        binds.push(crate::customer::fold_email(email));
        sql.push_str(&format!(" AND email_folded = ${}", binds.len()));
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
    Ok(rows.iter().map(customer).collect::<Result<_, _>>()?)
}

/// Replaces the fields of the customer at `version`.
pub async fn update(
    db: &Db,
    id: &str,
    version: i64,
    fields: &CustomerFields,
) -> Result<Customer, RepoError> {
    let c = fields.get();
    let row = sqlx::query(&format!(
        "UPDATE customers SET name = $3, email = $4, email_folded = $5, phone = $6, \
         address = $7, updated_at = $8, version = version + 1 \
         WHERE id = $1 AND version = $2 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(version)
    .bind(&c.name)
    .bind(&c.email)
    .bind(fields.email_folded())
    .bind(c.phone.as_deref())
    .bind(c.address.as_deref())
    .bind(now_us())
    .fetch_optional(db.pool())
    .await
    .map_err(|e| email_taken(e, &c.email))?;
    match row {
        Some(row) => Ok(customer(&row)?),
        None => Err(missing_or_stale(db, id).await),
    }
}

async fn missing_or_stale(db: &Db, id: &str) -> RepoError {
    match get(db, id).await {
        Ok(Some(current)) => RepoError::Stale {
            current: current.version,
        },
        Ok(None) => RepoError::NotFound,
        Err(e) => RepoError::Db(e),
    }
}

/// Deletes the customer (only at `version`, when given).
pub async fn delete(db: &Db, id: &str, version: Option<i64>) -> Result<(), RepoError> {
    let query = match version {
        None => sqlx::query("DELETE FROM customers WHERE id = $1").bind(id),
        Some(version) => sqlx::query("DELETE FROM customers WHERE id = $1 AND version = $2")
            .bind(id)
            .bind(version),
    };
    let done = query.execute(db.pool()).await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(missing_or_stale(db, id).await)
    }
}
