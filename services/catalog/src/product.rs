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

#[cfg(test)]
mod tests {
    use super::*;
    use service_common::rest::money::Currency;

    fn valid() -> ProductInput {
        ProductInput {
            sku: "MUG-001".to_owned(),
            name: "Coffee mug".to_owned(),
            description: Some("A mug.\nDishwasher safe.".to_owned()),
            category: "kitchen".to_owned(),
            price: Money {
                amount: 1_299,
                currency: Currency::parse("EUR").unwrap(),
            },
            stock_quantity: 12,
        }
    }

    /// The (field, code) of every problem `ProductFields::parse` finds in `input`.
    fn problems(input: ProductInput) -> Vec<(String, &'static str)> {
        match ProductFields::parse(input) {
            Ok(fields) => panic!("accepted {fields:?}"),
            Err(invalid) => invalid.0.into_iter().map(|f| (f.field, f.code)).collect(),
        }
    }

    fn one(field: &str, code: &'static str) -> Vec<(String, &'static str)> {
        vec![(field.to_owned(), code)]
    }

    fn accepted(input: ProductInput) {
        let fields = ProductFields::parse(input.clone()).expect("a valid product");
        assert_eq!(fields.get(), &input, "kept unchanged");
    }

    fn sku_problems(sku: &str) -> Vec<FieldError> {
        let mut invalid = Invalid::default();
        check_sku(&mut invalid, sku);
        invalid.0
    }

    #[test]
    fn a_valid_product_is_accepted_unchanged() {
        accepted(valid());
    }

    #[test]
    fn a_product_without_a_description_is_accepted() {
        accepted(ProductInput {
            description: None,
            ..valid()
        });
    }

    #[test]
    fn an_empty_description_is_accepted() {
        accepted(ProductInput {
            description: Some(String::new()),
            ..valid()
        });
    }

    #[test]
    fn a_sku_of_letters_digits_dots_underscores_and_hyphens_is_accepted() {
        assert_eq!(sku_problems("Az09._-"), Vec::new());
        accepted(ProductInput {
            sku: "Az09._-".to_owned(),
            ..valid()
        });
    }

    #[test]
    fn a_sku_of_one_character_is_accepted() {
        assert_eq!(sku_problems("A"), Vec::new());
    }

    #[test]
    fn a_sku_of_64_characters_is_accepted() {
        assert_eq!(sku_problems(&"A".repeat(64)), Vec::new());
    }

    #[test]
    fn a_sku_of_65_characters_is_too_long() {
        assert_eq!(
            sku_problems(&"A".repeat(65)),
            vec![FieldError::new(
                "sku",
                "invalid_format",
                "must be 1 to 64 characters"
            )]
        );
    }

    #[test]
    fn an_empty_sku_is_an_invalid_format() {
        assert_eq!(
            sku_problems(""),
            vec![FieldError::new(
                "sku",
                "invalid_format",
                "must be 1 to 64 characters"
            )]
        );
        assert_eq!(
            problems(ProductInput {
                sku: String::new(),
                ..valid()
            }),
            one("sku", "invalid_format")
        );
    }

    #[test]
    fn a_sku_with_a_space_or_a_slash_is_an_invalid_format() {
        for sku in ["MUG 001", "MUG/001", "MUG+001", "MUG:001", " MUG"] {
            assert_eq!(
                sku_problems(sku),
                vec![FieldError::new(
                    "sku",
                    "invalid_format",
                    "may hold only A-Z, a-z, 0-9, '.', '_' and '-'"
                )],
                "{sku:?}"
            );
        }
    }

    #[test]
    fn a_sku_with_a_non_ascii_letter_is_an_invalid_format() {
        for sku in ["MÜG-001", "ＭＵＧ", "MUG-٣"] {
            let found = sku_problems(sku);
            assert_eq!(found.len(), 1, "{sku:?}");
            assert_eq!(
                (found[0].field.as_str(), found[0].code),
                ("sku", "invalid_format")
            );
        }
    }

    #[test]
    fn a_sku_with_a_control_character_is_an_invalid_format() {
        assert_eq!(
            problems(ProductInput {
                sku: "MUG\u{0}1".to_owned(),
                ..valid()
            }),
            one("sku", "invalid_format")
        );
    }

    #[test]
    fn an_empty_name_is_required() {
        assert_eq!(
            problems(ProductInput {
                name: String::new(),
                ..valid()
            }),
            one("name", "required")
        );
    }

    #[test]
    fn a_name_of_200_characters_is_accepted() {
        accepted(ProductInput {
            name: "n".repeat(200),
            ..valid()
        });
    }

    #[test]
    fn a_name_is_measured_in_characters_not_bytes() {
        accepted(ProductInput {
            name: "é".repeat(200),
            ..valid()
        });
    }

    #[test]
    fn a_name_of_201_characters_is_too_long() {
        assert_eq!(
            problems(ProductInput {
                name: "n".repeat(201),
                ..valid()
            }),
            one("name", "too_long")
        );
    }

    #[test]
    fn a_name_with_a_newline_has_an_invalid_character() {
        assert_eq!(
            problems(ProductInput {
                name: "Coffee\nmug".to_owned(),
                ..valid()
            }),
            one("name", "invalid_character")
        );
    }

    #[test]
    fn a_description_of_5000_characters_is_accepted() {
        accepted(ProductInput {
            description: Some("d".repeat(5_000)),
            ..valid()
        });
    }

    #[test]
    fn a_description_of_5001_characters_is_too_long() {
        assert_eq!(
            problems(ProductInput {
                description: Some("d".repeat(5_001)),
                ..valid()
            }),
            one("description", "too_long")
        );
    }

    #[test]
    fn a_description_may_hold_newlines_and_tabs() {
        accepted(ProductInput {
            description: Some("line one\r\n\tline two\n".to_owned()),
            ..valid()
        });
    }

    #[test]
    fn a_description_with_a_nul_or_an_escape_has_an_invalid_character() {
        for description in ["a\u{0}b", "a\u{1b}[31mb", "a\u{7f}b"] {
            assert_eq!(
                problems(ProductInput {
                    description: Some(description.to_owned()),
                    ..valid()
                }),
                one("description", "invalid_character"),
                "{description:?}"
            );
        }
    }

    #[test]
    fn an_empty_category_is_required() {
        assert_eq!(
            problems(ProductInput {
                category: String::new(),
                ..valid()
            }),
            one("category", "required")
        );
    }

    #[test]
    fn a_category_of_100_characters_is_accepted() {
        accepted(ProductInput {
            category: "c".repeat(100),
            ..valid()
        });
    }

    #[test]
    fn a_category_of_101_characters_is_too_long() {
        assert_eq!(
            problems(ProductInput {
                category: "c".repeat(101),
                ..valid()
            }),
            one("category", "too_long")
        );
    }

    #[test]
    fn a_category_with_a_tab_has_an_invalid_character() {
        assert_eq!(
            problems(ProductInput {
                category: "kitchen\tware".to_owned(),
                ..valid()
            }),
            one("category", "invalid_character")
        );
    }

    fn priced(amount: i64) -> ProductInput {
        ProductInput {
            price: Money {
                amount,
                ..valid().price
            },
            ..valid()
        }
    }

    #[test]
    fn a_price_of_zero_is_accepted() {
        accepted(priced(0));
    }

    #[test]
    fn a_price_of_the_largest_amount_is_accepted() {
        accepted(priced(MAX_AMOUNT));
    }

    #[test]
    fn a_price_one_over_the_largest_amount_is_out_of_range() {
        assert_eq!(
            problems(priced(MAX_AMOUNT + 1)),
            one("price.amount", "out_of_range")
        );
    }

    #[test]
    fn a_negative_price_is_out_of_range() {
        assert_eq!(problems(priced(-1)), one("price.amount", "out_of_range"));
        assert_eq!(
            problems(priced(i64::MIN)),
            one("price.amount", "out_of_range")
        );
    }

    #[test]
    fn a_price_in_a_currency_without_minor_units_is_accepted() {
        accepted(ProductInput {
            price: Money {
                amount: 1_500,
                currency: Currency::parse("JPY").unwrap(),
            },
            ..valid()
        });
    }

    fn stocked(stock_quantity: i64) -> ProductInput {
        ProductInput {
            stock_quantity,
            ..valid()
        }
    }

    #[test]
    fn a_stock_of_zero_is_accepted() {
        accepted(stocked(0));
    }

    #[test]
    fn a_stock_of_the_largest_quantity_is_accepted() {
        accepted(stocked(MAX_STOCK));
    }

    #[test]
    fn a_stock_one_over_the_largest_quantity_is_out_of_range() {
        assert_eq!(
            problems(stocked(MAX_STOCK + 1)),
            one("stock_quantity", "out_of_range")
        );
    }

    #[test]
    fn a_negative_stock_is_out_of_range() {
        assert_eq!(problems(stocked(-1)), one("stock_quantity", "out_of_range"));
    }

    #[test]
    fn every_invalid_field_is_reported_at_once_in_field_order() {
        let input = ProductInput {
            sku: "no spaces".to_owned(),
            name: String::new(),
            description: Some("d".repeat(5_001)),
            category: "c".repeat(101),
            price: Money {
                amount: -5,
                ..valid().price
            },
            stock_quantity: -1,
        };
        assert_eq!(
            problems(input),
            vec![
                ("sku".to_owned(), "invalid_format"),
                ("name".to_owned(), "required"),
                ("description".to_owned(), "too_long"),
                ("category".to_owned(), "too_long"),
                ("price.amount".to_owned(), "out_of_range"),
                ("stock_quantity".to_owned(), "out_of_range"),
            ]
        );
    }

    #[test]
    fn a_products_input_is_its_fields_for_a_merge_patch() {
        let input = valid();
        let product = Product {
            id: "p1".to_owned(),
            sku: input.sku.clone(),
            name: input.name.clone(),
            description: input.description.clone(),
            category: input.category.clone(),
            price: input.price,
            stock_quantity: input.stock_quantity,
            created_at: "2024-01-01T00:00:00Z".to_owned(),
            updated_at: "2024-01-02T00:00:00Z".to_owned(),
            version: 3,
        };
        assert_eq!(product.input(), input);
    }
}
