//! A customer: what clients send ([`CustomerInput`]), checked into [`CustomerFields`], and
//! what they get back ([`Customer`]).

use serde::{Deserialize, Serialize};
use service_common::rest::Invalid;
use utoipa::ToSchema;

/// A customer as created or replaced by a merge patch. Unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerInput {
    /// 1 to 200 characters.
    pub name: String,
    /// Unique in any case; at most 254 characters, `local@domain`.
    pub email: String,
    /// At most 32 of `0-9 + - ( ) . space`.
    #[serde(default)]
    pub phone: Option<String>,
    /// At most 500 characters, lines allowed.
    #[serde(default)]
    pub address: Option<String>,
}

/// A [`CustomerInput`] whose every field is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerFields(CustomerInput);

impl CustomerFields {
    pub fn parse(mut input: CustomerInput) -> Result<CustomerFields, Invalid> {
        let mut invalid = Invalid::default();
        invalid.text("name", &input.name, 1, 200, false);
        input.email = input.email.trim().to_owned();
        check_email(&mut invalid, &input.email);
        if let Some(phone) = &input.phone {
            let ok = !phone.is_empty()
                && phone.len() <= 32
                && phone.bytes().any(|b| b.is_ascii_digit())
                && phone.bytes().all(|b| {
                    b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'(' | b')' | b'.' | b' ')
                });
            if !ok {
                invalid.push(
                    "phone",
                    "invalid_format",
                    "must be up to 32 of 0-9 + - ( ) . and spaces",
                );
            }
        }
        if let Some(address) = &input.address {
            invalid.text("address", address, 0, 500, true);
        }
        invalid.or(CustomerFields(input))
    }

    pub fn get(&self) -> &CustomerInput {
        &self.0
    }

    /// The email as compared for uniqueness.
    pub fn email_folded(&self) -> String {
        fold_email(&self.0.email)
    }
}

/// An email as compared for uniqueness and filtered on: trimmed, lower case.
pub fn fold_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn check_email(invalid: &mut Invalid, email: &str) {
    let shaped = email.chars().count() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && local.len() <= 64
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if !shaped {
        invalid.push(
            "email",
            "invalid_format",
            "must be an address such as name@example.com",
        );
    }
}

/// A customer as the API answers it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Customer {
    pub id: String,
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    pub address: Option<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC.
    pub updated_at: String,
    /// Grows by one with every change; the `ETag`.
    pub version: i64,
}

impl Customer {
    /// The fields a merge patch applies to.
    pub fn input(&self) -> CustomerInput {
        CustomerInput {
            name: self.name.clone(),
            email: self.email.clone(),
            phone: self.phone.clone(),
            address: self.address.clone(),
        }
    }
}
