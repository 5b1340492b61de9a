//! The products table: every statement of the catalog, in SQL both databases speak.
//!
//! `stock_quantity` is written two ways: by a request that sets stock (a creation, a patch
//! naming it, an upsert that changes it), which also tells the inventory; and by the reading
//! of the inventory's available stock ([`read_stock`]). Every other write leaves it alone, so
//! that a change of a product's name does not write back a reading that has moved since.

use service_common::rest::PageRequest;
use service_common::rest::money::{Currency, Money};
use service_db::{Db, DbError, now_us, rfc3339};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::product::{ItemStatus, Product, ProductFields};

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("no product with this id")]
    NotFound,
    #[error("the product is at version {current}")]
    Stale { current: i64 },
    #[error("the SKU {0:?} belongs to another product")]
    SkuTaken(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for RepoError {
    fn from(e: sqlx::Error) -> Self {
        RepoError::Db(e.into())
    }
}

const COLUMNS: &str = "id, sku, name, description, category, price_amount, price_currency, \
                       stock_quantity, created_at, updated_at, version";

fn product(row: &AnyRow) -> Result<Product, DbError> {
    let get = |e: sqlx::Error| DbError::from(e);
    let currency: String = row.try_get("price_currency").map_err(get)?;
    Ok(Product {
        id: row.try_get("id").map_err(get)?,
        sku: row.try_get("sku").map_err(get)?,
        name: row.try_get("name").map_err(get)?,
        description: row.try_get("description").map_err(get)?,
        category: row.try_get("category").map_err(get)?,
        price: Money {
            amount: row.try_get("price_amount").map_err(get)?,
            currency: Currency::parse(&currency)
                .ok_or_else(|| DbError::Other(format!("stored currency {currency:?}")))?,
        },
        stock_quantity: row.try_get("stock_quantity").map_err(get)?,
        created_at: rfc3339(row.try_get("created_at").map_err(get)?),
        updated_at: rfc3339(row.try_get("updated_at").map_err(get)?),
        version: row.try_get("version").map_err(get)?,
    })
}

fn sku_taken(e: sqlx::Error, sku: &str) -> RepoError {
    match DbError::from(e) {
        DbError::Duplicate(_) => RepoError::SkuTaken(sku.to_owned()),
        e => RepoError::Db(e),
    }
}

/// Inserts a new product.
pub async fn insert(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    fields: &ProductFields,
) -> Result<Product, RepoError> {
    let p = fields.get();
    let now = now_us();
    let row = sqlx::query(&format!(
        "INSERT INTO products ({COLUMNS}, name_folded) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, 1, $10) RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(&p.sku)
    .bind(&p.name)
    .bind(p.description.as_deref())
    .bind(&p.category)
    .bind(p.price.amount)
    .bind(p.price.currency.code())
    .bind(p.stock_quantity)
    .bind(now)
    .bind(p.name.to_lowercase())
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| sku_taken(e, &p.sku))?;
    Ok(product(&row)?)
}

pub async fn get(db: &Db, id: &str) -> Result<Option<Product>, DbError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM products WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(product).transpose()
}

async fn get_in(tx: &mut Transaction<'static, Any>, id: &str) -> Result<Option<Product>, DbError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM products WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(product).transpose()
}

async fn get_by_sku(
    tx: &mut Transaction<'static, Any>,
    sku: &str,
) -> Result<Option<Product>, DbError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM products WHERE sku = $1"))
        .bind(sku)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(product).transpose()
}

/// The filters of a list.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub category: Option<String>,
    /// Part of the name, any case.
    pub q: Option<String>,
}

/// One page of products in id order.
pub async fn list(db: &Db, filter: &Filter, page: &PageRequest) -> Result<Vec<Product>, DbError> {
    let mut sql = format!("SELECT {COLUMNS} FROM products WHERE 1 = 1");
    let mut binds: Vec<String> = Vec::new();
    if let Some(category) = &filter.category {
        binds.push(category.clone());
        sql.push_str(&format!(" AND category = ${}", binds.len()));
    }
    if let Some(q) = &filter.q {
        binds.push(format!("%{}%", escape_like(&q.to_lowercase())));
        sql.push_str(&format!(
            " AND name_folded LIKE ${} ESCAPE '\\'",
            binds.len()
        ));
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
    rows.iter().map(product).collect()
}

/// `text` with LIKE's wildcards and the escape character taken literally.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Replaces the fields of the product at `version`, in `tx`: its stock only when
/// `sets_stock` (else the stored reading stays); [`RepoError::Stale`] when it is at another
/// version.
pub async fn update(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    version: i64,
    fields: &ProductFields,
    sets_stock: bool,
) -> Result<Product, RepoError> {
    let p = fields.get();
    let stock = if sets_stock {
        ", stock_quantity = $11"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE products SET sku = $3, name = $4, name_folded = $5, description = $6, \
         category = $7, price_amount = $8, price_currency = $9, updated_at = $10, \
         version = version + 1{stock} WHERE id = $1 AND version = $2 RETURNING {COLUMNS}"
    );
    let mut query = sqlx::query(&sql)
        .bind(id)
        .bind(version)
        .bind(&p.sku)
        .bind(&p.name)
        .bind(p.name.to_lowercase())
        .bind(p.description.as_deref())
        .bind(&p.category)
        .bind(p.price.amount)
        .bind(p.price.currency.code())
        .bind(now_us());
    if sets_stock {
        query = query.bind(p.stock_quantity);
    }
    let row = query
        .fetch_optional(&mut **tx)
        .await
        .map_err(|e| sku_taken(e, &p.sku))?;
    match row {
        Some(row) => Ok(product(&row)?),
        None => Err(match get_in(tx, id).await? {
            Some(current) => RepoError::Stale {
                current: current.version,
            },
            None => RepoError::NotFound,
        }),
    }
}

/// Sets the product's `stock_quantity` to the inventory's reading of its available stock, of
/// the inventory's row at `stock_version`: unless the product holds a later reading already
/// (two orders' changes of one product reach the catalog in no set order). `false` when no
/// product has the id, or its reading is later.
///
/// Neither `version` nor `updated_at` moves: the reading is derived, not a change of the
/// product, and bumping the version would make every order's reservation stale an
/// administrator's `If-Match`.
pub async fn read_stock(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    available: i64,
    stock_version: i64,
) -> Result<bool, DbError> {
    // `<=`: the same reading again (the inventory tells its row after a stock set even when
    // nothing changed) replaces what a stock set wrote meanwhile.
    let done = sqlx::query(
        "UPDATE products SET stock_quantity = $2, stock_version = $3 \
         WHERE id = $1 AND stock_version <= $3",
    )
    .bind(id)
    .bind(available)
    .bind(stock_version)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the product (only at `version`, when given).
pub async fn delete(db: &Db, id: &str, version: Option<i64>) -> Result<(), RepoError> {
    let query = match version {
        None => sqlx::query("DELETE FROM products WHERE id = $1").bind(id),
        Some(version) => sqlx::query("DELETE FROM products WHERE id = $1 AND version = $2")
            .bind(id)
            .bind(version),
    };
    let done = query.execute(db.pool()).await?;
    if done.rows_affected() == 1 {
        return Ok(());
    }
    Err(match get(db, id).await? {
        Some(current) => RepoError::Stale {
            current: current.version,
        },
        None => RepoError::NotFound,
    })
}

/// What an upsert did.
#[derive(Debug, Clone)]
pub struct Upserted {
    pub status: ItemStatus,
    pub product: Product,
    /// Whether the product's stock was set: it was created, or its `stock_quantity` changed.
    pub stock_set: bool,
}

/// Creates the product of `fields.sku`, or updates it when anything differs, inside the
/// batch's transaction. Its stock is written only when it differs from the stored one.
///
/// On SQLite the transaction holds the write lock, so nothing changes between the read and
/// the write. On PostgreSQL a concurrent batch may insert or update the same SKU in between:
/// the insert then does nothing and the update finds another version, and the item is read
/// again (each statement sees what committed before it).
pub async fn upsert(
    tx: &mut Transaction<'static, Any>,
    fields: &ProductFields,
) -> Result<Upserted, RepoError> {
    let p = fields.get();
    for _ in 0..5 {
        let Some(current) = get_by_sku(tx, &p.sku).await? else {
            let now = now_us();
            let row = sqlx::query(&format!(
                "INSERT INTO products ({COLUMNS}, name_folded) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, 1, $10) \
                 ON CONFLICT (sku) DO NOTHING RETURNING {COLUMNS}"
            ))
            .bind(service_db::new_id())
            .bind(&p.sku)
            .bind(&p.name)
            .bind(p.description.as_deref())
            .bind(&p.category)
            .bind(p.price.amount)
            .bind(p.price.currency.code())
            .bind(p.stock_quantity)
            .bind(now)
            .bind(p.name.to_lowercase())
            .fetch_optional(&mut **tx)
            .await?;
            match row {
                Some(row) => {
                    return Ok(Upserted {
                        status: ItemStatus::Created,
                        product: product(&row)?,
                        stock_set: true,
                    });
                }
                None => continue,
            }
        };
        if &current.input() == p {
            return Ok(Upserted {
                status: ItemStatus::Unchanged,
                product: current,
                stock_set: false,
            });
        }
        let sets_stock = p.stock_quantity != current.stock_quantity;
        let stock = if sets_stock {
            ", stock_quantity = $10"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE products SET name = $3, name_folded = $4, description = $5, category = $6, \
             price_amount = $7, price_currency = $8, updated_at = $9, \
             version = version + 1{stock} WHERE id = $1 AND version = $2 RETURNING {COLUMNS}"
        );
        let mut query = sqlx::query(&sql)
            .bind(&current.id)
            .bind(current.version)
            .bind(&p.name)
            .bind(p.name.to_lowercase())
            .bind(p.description.as_deref())
            .bind(&p.category)
            .bind(p.price.amount)
            .bind(p.price.currency.code())
            .bind(now_us());
        if sets_stock {
            query = query.bind(p.stock_quantity);
        }
        if let Some(row) = query.fetch_optional(&mut **tx).await? {
            return Ok(Upserted {
                status: ItemStatus::Updated,
                product: product(&row)?,
                stock_set: sets_stock,
            });
        }
    }
    Err(RepoError::Db(DbError::Unavailable(format!(
        "SKU {:?} kept changing under concurrent writes",
        p.sku
    ))))
}
