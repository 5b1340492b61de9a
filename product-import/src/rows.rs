//! What the CSV's columns mean: the header found by name, and each row turned into the
//! catalog's product, or into the reason it cannot be one.
//!
//! Only what the catalog cannot see is checked here: that a field is present, UTF-8 and a
//! number where one is needed, and that a price converts exactly to minor units. Everything
//! else (SKU format, lengths, ranges) is the catalog's to judge, and its verdicts come back
//! per row.

use primitives::money::Currency;
use serde::Serialize;

use crate::records::Record;

/// A field longer than this cannot be a valid product field (the catalog's longest, a
/// description of 5,000 characters, is at most 20,000 bytes); the row is rejected here, which
/// keeps every product small enough for a batch.
pub const MAX_FIELD_BYTES: usize = 32 * 1024;

/// The columns, by the names a header gives them (any case, any order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Sku,
    Name,
    Description,
    Price,
    Currency,
    Category,
    StockQuantity,
}

impl Column {
    pub const ALL: [Column; 7] = [
        Column::Sku,
        Column::Name,
        Column::Description,
        Column::Price,
        Column::Currency,
        Column::Category,
        Column::StockQuantity,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Column::Sku => "sku",
            Column::Name => "name",
            Column::Description => "description",
            Column::Price => "price",
            Column::Currency => "currency",
            Column::Category => "category",
            Column::StockQuantity => "stock_quantity",
        }
    }

    /// Every column but `description` must be in the header.
    pub fn required(self) -> bool {
        self != Column::Description
    }

    /// The column a catalog field path (`price.amount`, `sku`) comes from.
    pub fn of_field(field: &str) -> Option<Column> {
        match field.split('.').next().unwrap_or_default() {
            "price" if field == "price.currency" => Some(Column::Currency),
            name => Column::ALL.into_iter().find(|c| c.name() == name),
        }
    }
}

/// Where each column is in the records.
#[derive(Debug, Clone)]
pub struct Header {
    positions: [Option<usize>; 7],
}

/// Why a file cannot be imported at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error(
        "the file is empty: its first line must be a header naming the columns sku, name, price, currency, category and stock_quantity (description is optional)"
    )]
    Empty,
    #[error("the header has no column {}: it needs sku, name, price, currency, category and stock_quantity (any case, any order; description is optional)", .0.join(", "))]
    MissingColumns(Vec<&'static str>),
    #[error("the header names the column {0} more than once")]
    DuplicateColumn(&'static str),
    #[error("the header (line {0}) is longer than the reader's limit: is a quote left open?")]
    Oversized(u64),
}

impl Header {
    /// The header record: names trimmed and compared without case; unknown columns ignored.
    pub fn parse(record: &Record) -> Result<Header, HeaderError> {
        if record.oversized {
            return Err(HeaderError::Oversized(record.line));
        }
        let mut positions = [None; 7];
        for i in 0..record.len() {
            let Some(name) = record.field(i).and_then(|f| std::str::from_utf8(f).ok()) else {
                continue;
            };
            let name = name.trim();
            if let Some(at) = Column::ALL
                .iter()
                .position(|c| c.name().eq_ignore_ascii_case(name))
            {
                if positions[at].is_some() {
                    return Err(HeaderError::DuplicateColumn(Column::ALL[at].name()));
                }
                positions[at] = Some(i);
            }
        }
        let missing: Vec<&'static str> = Column::ALL
            .iter()
            .zip(positions)
            .filter(|(c, at)| c.required() && at.is_none())
            .map(|(c, _)| c.name())
            .collect();
        if missing.is_empty() {
            Ok(Header { positions })
        } else {
            Err(HeaderError::MissingColumns(missing))
        }
    }

    fn text<'r>(&self, record: &'r Record, column: Column) -> Result<&'r str, Rejection> {
        let at = Column::ALL.iter().position(|c| *c == column).unwrap_or(0);
        let bytes = self.positions[at]
            .and_then(|i| record.field(i))
            .unwrap_or_default();
        if bytes.len() > MAX_FIELD_BYTES {
            return Err(Rejection::new(
                column,
                format!("longer than {MAX_FIELD_BYTES} bytes"),
            ));
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|_| Rejection::new(column, "not valid UTF-8".to_owned()))?;
        Ok(text.trim())
    }

    /// The row's SKU for the report, when it has a readable, non-empty one (clipped: a
    /// report never echoes more than [`CLIP`] bytes of a field).
    pub fn sku(&self, record: &Record) -> Option<String> {
        self.text(record, Column::Sku)
            .ok()
            .filter(|s| !s.is_empty())
            .map(clip)
    }

    fn required<'r>(&self, record: &'r Record, column: Column) -> Result<&'r str, Rejection> {
        let text = self.text(record, column)?;
        if text.is_empty() {
            return Err(Rejection::new(column, "required, but empty".to_owned()));
        }
        Ok(text)
    }

    /// A data row as the catalog's product (the JSON of `POST /api/v1/products/batch`'s items).
    pub fn product(&self, record: &Record) -> Result<Product, Rejection> {
        if record.oversized {
            return Err(Rejection {
                column: None,
                reason: "the row is longer than the reader's limit (is a quote left open?)"
                    .to_owned(),
            });
        }
        let sku = self.required(record, Column::Sku)?;
        let name = self.required(record, Column::Name)?;
        let description = self.text(record, Column::Description)?;
        let category = self.required(record, Column::Category)?;
        let code = self.required(record, Column::Currency)?;
        let currency = Currency::parse(&code.to_ascii_uppercase()).ok_or_else(|| {
            Rejection::new(
                Column::Currency,
                format!(
                    "{:?} is not an ISO 4217 currency code (such as EUR)",
                    clip(code)
                ),
            )
        })?;
        let price = self.required(record, Column::Price)?;
        let amount = minor_units(price, currency.exponent())
            .map_err(|reason| Rejection::new(Column::Price, reason.to_string()))?;
        let stock = self.required(record, Column::StockQuantity)?;
        let stock_quantity = whole_number(stock)
            .map_err(|reason| Rejection::new(Column::StockQuantity, reason.to_string()))?;
        Ok(Product {
            sku: sku.to_owned(),
            name: name.to_owned(),
            description: (!description.is_empty()).then(|| description.to_owned()),
            category: category.to_owned(),
            price: Price {
                amount,
                currency: currency.code(),
            },
            stock_quantity,
        })
    }
}

/// The most bytes of a field a report repeats (a SKU, a bad value in a reason), so that a
/// report's size follows its number of rows, not the rows' contents.
pub const CLIP: usize = 80;

/// `text` up to [`CLIP`] bytes (on a character boundary), marked with `…` when cut.
pub fn clip(text: &str) -> String {
    clip_to(CLIP, text)
}

/// `text` up to `max` bytes (on a character boundary), marked with `…` when cut.
pub fn clip_to(max: usize, text: &str) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A product as the catalog's batch takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Product {
    pub sku: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub category: String,
    pub price: Price,
    pub stock_quantity: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Price {
    pub amount: i64,
    pub currency: &'static str,
}

/// Why a row is not imported: the column at fault (none when the row as a whole is) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub column: Option<Column>,
    pub reason: String,
}

impl Rejection {
    fn new(column: Column, reason: String) -> Self {
        Rejection {
            column: Some(column),
            reason,
        }
    }
}

/// Why a field is not the number it should be: a reason for the report, naming the value
/// (clipped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadNumber(String);

/// A decimal in major units (`19.99`) as an exact integer of minor units for a currency with
/// `exponent` minor digits: digits, at most one point, no sign, no exponent, no separators;
/// decimals past the exponent only when they are zeros (`19.990` is 1999 cents, `19.999` is
/// refused rather than rounded).
pub fn minor_units(text: &str, exponent: u8) -> Result<i64, BadNumber> {
    let exponent = usize::from(exponent);
    if text.starts_with('-') {
        return Err(BadNumber(format!(
            "{:?} is negative; a price is at least 0",
            clip(text)
        )));
    }
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return Err(BadNumber(format!(
            "{:?} is not a decimal number of major units such as 19.99",
            clip(text)
        )));
    }
    let (kept, dropped) = fraction.split_at(fraction.len().min(exponent));
    if dropped.bytes().any(|b| b != b'0') {
        return Err(BadNumber(format!(
            "{:?} has more decimals than the currency's {exponent}",
            clip(text)
        )));
    }
    let too_large = || BadNumber(format!("{:?} is too large", clip(text)));
    let mut amount: i64 = 0;
    for b in whole
        .bytes()
        .chain(kept.bytes())
        .chain(std::iter::repeat_n(b'0', exponent - kept.len()))
    {
        amount = amount
            .checked_mul(10)
            .and_then(|a| a.checked_add(i64::from(b - b'0')))
            .ok_or_else(too_large)?;
    }
    Ok(amount)
}

/// A whole number of at least 0, such as a stock quantity.
fn whole_number(text: &str) -> Result<i64, BadNumber> {
    if text.starts_with('-') {
        return Err(BadNumber(format!(
            "{:?} is negative; it must be at least 0",
            clip(text)
        )));
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadNumber(format!("{:?} is not a whole number", clip(text))));
    }
    text.parse()
        .map_err(|_| BadNumber(format!("{:?} is too large", clip(text))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Limits, Records};

    #[test]
    fn prices_convert_exactly_by_the_currency_exponent() {
        assert_eq!(minor_units("19.99", 2), Ok(1999));
        assert_eq!(minor_units("19.9", 2), Ok(1990));
        assert_eq!(minor_units("19", 2), Ok(1900));
        assert_eq!(minor_units("19.", 2), Ok(1900));
        assert_eq!(minor_units(".5", 2), Ok(50));
        assert_eq!(
            minor_units("19.990", 2),
            Ok(1999),
            "trailing zeros are exact"
        );
        assert_eq!(minor_units("0", 2), Ok(0));
        assert_eq!(minor_units("1500", 0), Ok(1500), "JPY");
        assert_eq!(minor_units("1.234", 3), Ok(1234), "KWD");
        assert_eq!(minor_units("0.0001", 4), Ok(1), "CLF");
        assert_eq!(minor_units("0.1", 2), Ok(10), "no float drift");
        for bad in [
            "19.999",
            "1.5",
            "-1",
            "-0.01",
            "+1",
            "1e3",
            "1,000",
            "",
            ".",
            "1.2.3",
            " 1",
            "abc",
            "99999999999999999999",
        ] {
            let exponent = if bad == "1.5" { 0 } else { 2 };
            assert!(minor_units(bad, exponent).is_err(), "{bad:?} refused");
        }
        assert!(
            minor_units("19.999", 2)
                .unwrap_err()
                .to_string()
                .contains("more decimals")
        );
        assert!(
            minor_units("-5", 2)
                .unwrap_err()
                .to_string()
                .contains("negative")
        );
    }

    async fn parse(
        text: impl AsRef<[u8]>,
    ) -> (Result<Header, HeaderError>, Vec<Result<Product, Rejection>>) {
        let mut records = Records::new(text.as_ref(), Limits::default());
        let header = Header::parse(records.next().await.unwrap().unwrap());
        let mut rows = Vec::new();
        if let Ok(header) = &header {
            while let Some(r) = records.next().await.unwrap() {
                rows.push(header.product(r));
            }
        }
        (header, rows)
    }

    #[tokio::test]
    async fn columns_by_name_in_any_case_and_order_unknown_ones_ignored() {
        let (header, rows) = parse(
            "Stock_Quantity, PRICE ,colour,Currency,Name,SKU,category\n\
             3,19.99,red,eur,Mug,MUG-1,kitchen\n",
        )
        .await;
        assert!(header.is_ok());
        assert_eq!(
            rows[0],
            Ok(Product {
                sku: "MUG-1".into(),
                name: "Mug".into(),
                description: None,
                category: "kitchen".into(),
                price: Price {
                    amount: 1999,
                    currency: "EUR"
                },
                stock_quantity: 3,
            })
        );
    }

    #[tokio::test]
    async fn a_missing_or_repeated_column_fails_the_file_with_one_reason() {
        let (header, _) = parse("sku,name,category,stock_quantity\n").await;
        let error = header.unwrap_err();
        assert_eq!(
            error,
            HeaderError::MissingColumns(vec!["price", "currency"])
        );
        assert!(error.to_string().contains("no column price, currency"));
        let (header, _) = parse("sku,name,price,currency,category,stock_quantity,SKU\n").await;
        assert_eq!(header.unwrap_err(), HeaderError::DuplicateColumn("sku"));
    }

    #[tokio::test]
    async fn each_bad_row_names_its_column() {
        let header = "sku,name,price,currency,category,stock_quantity,description\n";
        let rows = [
            (",Mug,1,EUR,k,1", Column::Sku, "required"),
            ("A,Mug,1,EUR,k,-1", Column::StockQuantity, "negative"),
            ("A,Mug,1,EUR,k,1.5", Column::StockQuantity, "whole number"),
            ("A,Mug,1.999,EUR,k,1", Column::Price, "more decimals"),
            ("A,Mug,-2,EUR,k,1", Column::Price, "negative"),
            ("A,Mug,2,XYZ,k,1", Column::Currency, "ISO 4217"),
            ("A,Mug,2,EUR,,1", Column::Category, "required"),
            ("A,Mug,2,EUR", Column::Category, "required"),
        ];
        for (row, column, reason) in rows {
            let text = format!("{header}{row}\n");
            let (_, parsed) = parse(&text).await;
            let rejection = parsed[0].clone().unwrap_err();
            assert_eq!(rejection.column, Some(column), "{row}");
            assert!(rejection.reason.contains(reason), "{row}: {rejection:?}");
        }
        let mut latin1 = header.as_bytes().to_vec();
        latin1.extend_from_slice(b"A,Caf\xe9,2,EUR,k,1\n");
        let (_, parsed) = parse(&latin1).await;
        let rejection = parsed[0].clone().unwrap_err();
        assert_eq!(rejection.column, Some(Column::Name));
        assert!(rejection.reason.contains("UTF-8"));
        let long = "d".repeat(MAX_FIELD_BYTES + 1);
        let (_, parsed) = parse(&format!("{header}A,Mug,1,EUR,k,1,{long}\n")).await;
        assert_eq!(
            parsed[0].clone().unwrap_err().column,
            Some(Column::Description)
        );
    }

    #[test]
    fn reports_echo_at_most_a_clip_of_a_field() {
        let long = "é".repeat(100);
        let clipped = clip(&long);
        assert!(clipped.len() <= CLIP + "…".len() && clipped.ends_with('…'));
        assert_eq!(clip("19.999"), "19.999");
        assert!(
            minor_units(&"9".repeat(30_000), 2)
                .unwrap_err()
                .to_string()
                .len()
                < 200
        );
    }

    #[test]
    fn catalog_fields_map_to_columns() {
        assert_eq!(Column::of_field("price.amount"), Some(Column::Price));
        assert_eq!(Column::of_field("price.currency"), Some(Column::Currency));
        assert_eq!(Column::of_field("sku"), Some(Column::Sku));
        assert_eq!(Column::of_field(""), None);
    }
}
