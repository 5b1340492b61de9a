//! A product: what clients send ([`ProductInput`]), checked into [`ProductFields`], and what
//! they get back ([`Product`]).

use serde::{Deserialize, Serialize};
use service_common::rest::money::Money;
use service_common::rest::{FieldError, Invalid};
use utoipa::ToSchema;

/// The largest price, in minor units (ten billion in a two-digit currency).
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;
/// The largest stock quantity.
pub const MAX_STOCK: i64 = 1_000_000_000;

/// A product as created, replaced by a merge patch, or upserted by SKU. Unknown fields are
/// refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    /// Unique; 1 to 64 of `A-Z a-z 0-9 . _ -`.
    pub sku: String,
    /// 1 to 200 characters.
    pub name: String,
    /// At most 5,000 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// 1 to 100 characters.
    pub category: String,
    /// At least 0, at most 10^12 minor units.
    pub price: Money,
    /// At least 0.
    pub stock_quantity: i64,
}

/// A [`ProductInput`] whose every field is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductFields(ProductInput);

impl ProductFields {
    pub fn parse(input: ProductInput) -> Result<ProductFields, Invalid> {
        let mut invalid = Invalid::default();
        check_sku(&mut invalid, &input.sku);
        invalid.text("name", &input.name, 1, 200, false);
        if let Some(description) = &input.description {
            invalid.text("description", description, 0, 5_000, true);
        }
        invalid.text("category", &input.category, 1, 100, false);
        invalid.range("price.amount", input.price.amount, 0..=MAX_AMOUNT);
        invalid.range("stock_quantity", input.stock_quantity, 0..=MAX_STOCK);
        invalid.or(ProductFields(input))
    }

    pub fn get(&self) -> &ProductInput {
        &self.0
    }
}

fn check_sku(invalid: &mut Invalid, sku: &str) {
    if sku.is_empty() || sku.len() > 64 {
        invalid.push("sku", "invalid_format", "must be 1 to 64 characters");
    } else if !sku
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        invalid.push(
            "sku",
            "invalid_format",
            "may hold only A-Z, a-z, 0-9, '.', '_' and '-'",
        );
    }
}

/// A product as the API answers it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Product {
    pub id: String,
    pub sku: String,
    pub name: String,
    pub description: Option<String>,
    pub category: String,
    pub price: Money,
    pub stock_quantity: i64,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC.
    pub updated_at: String,
    /// Grows by one with every change; the `ETag`.
    pub version: i64,
}

impl Product {
    /// The fields a merge patch applies to.
    pub fn input(&self) -> ProductInput {
        ProductInput {
            sku: self.sku.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            category: self.category.clone(),
            price: self.price,
            stock_quantity: self.stock_quantity,
        }
    }
}

/// What happened to one item of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Created,
    Updated,
    Unchanged,
    Rejected,
}

/// The result of one item of `POST /api/v1/products/batch`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ItemResult {
    /// The item's position in `items`.
    pub index: usize,
    /// The item's SKU, when it has one.
    pub sku: Option<String>,
    pub status: ItemStatus,
    /// The product's id (absent when rejected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Why the item was rejected: a code (`validation_failed`, `sku_taken`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    /// Why the item was rejected, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The fields that are wrong.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
}
