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

#[cfg(test)]
mod tests {
    use super::*;
    use service_common::rest::FieldError;

    fn valid() -> CustomerInput {
        CustomerInput {
            name: "Ann Example".to_owned(),
            email: "ann@example.com".to_owned(),
            phone: Some("+1 (555) 010-0199".to_owned()),
            address: Some("1 Main Street\nSpringfield".to_owned()),
        }
    }

    /// The (field, code) of every problem `CustomerFields::parse` finds in `input`.
    fn problems(input: CustomerInput) -> Vec<(String, &'static str)> {
        match CustomerFields::parse(input) {
            Ok(fields) => panic!("accepted {fields:?}"),
            Err(invalid) => invalid.0.into_iter().map(|f| (f.field, f.code)).collect(),
        }
    }

    fn one(field: &str, code: &'static str) -> Vec<(String, &'static str)> {
        vec![(field.to_owned(), code)]
    }

    fn accepted(input: CustomerInput) {
        let fields = CustomerFields::parse(input.clone()).expect("a valid customer");
        assert_eq!(fields.get(), &input, "kept unchanged");
    }

    fn emailed(email: &str) -> CustomerInput {
        CustomerInput {
            email: email.to_owned(),
            ..valid()
        }
    }

    fn email_problems(email: &str) -> Vec<FieldError> {
        let mut invalid = Invalid::default();
        check_email(&mut invalid, email);
        invalid.0
    }

    fn bad_email() -> Vec<FieldError> {
        vec![FieldError::new(
            "email",
            "invalid_format",
            "must be an address such as name@example.com",
        )]
    }

    fn phoned(phone: &str) -> CustomerInput {
        CustomerInput {
            phone: Some(phone.to_owned()),
            ..valid()
        }
    }

    fn addressed(address: &str) -> CustomerInput {
        CustomerInput {
            address: Some(address.to_owned()),
            ..valid()
        }
    }

    #[test]
    fn a_valid_customer_is_accepted_unchanged() {
        accepted(valid());
    }

    #[test]
    fn a_customer_without_a_phone_or_an_address_is_accepted() {
        accepted(CustomerInput {
            phone: None,
            address: None,
            ..valid()
        });
    }

    #[test]
    fn an_empty_name_is_required() {
        assert_eq!(
            problems(CustomerInput {
                name: String::new(),
                ..valid()
            }),
            one("name", "required")
        );
    }

    #[test]
    fn a_name_of_200_characters_is_accepted() {
        accepted(CustomerInput {
            name: "n".repeat(200),
            ..valid()
        });
    }

    #[test]
    fn a_name_is_measured_in_characters_not_bytes() {
        accepted(CustomerInput {
            name: "ü".repeat(200),
            ..valid()
        });
    }

    #[test]
    fn a_name_of_201_characters_is_too_long() {
        assert_eq!(
            problems(CustomerInput {
                name: "n".repeat(201),
                ..valid()
            }),
            one("name", "too_long")
        );
    }

    #[test]
    fn a_name_with_a_newline_has_an_invalid_character() {
        assert_eq!(
            problems(CustomerInput {
                name: "Ann\nExample".to_owned(),
                ..valid()
            }),
            one("name", "invalid_character")
        );
    }

    #[test]
    fn an_email_is_trimmed_but_keeps_its_case() {
        let fields = CustomerFields::parse(emailed(" \tAnn@Example.COM\n ")).expect("valid");
        assert_eq!(fields.get().email, "Ann@Example.COM");
        assert_eq!(fields.get().name, "Ann Example", "the rest unchanged");
    }

    #[test]
    fn an_email_is_folded_to_lower_case_for_uniqueness() {
        let fields = CustomerFields::parse(emailed("  Ann@Example.COM ")).expect("valid");
        assert_eq!(fields.email_folded(), "ann@example.com");
    }

    #[test]
    fn folding_an_email_trims_it_and_lowers_its_case() {
        assert_eq!(fold_email("  ANN@EXAMPLE.COM\t"), "ann@example.com");
        assert_eq!(fold_email("ann@example.com"), "ann@example.com");
        assert_eq!(fold_email("Ünal@Example.de"), "ünal@example.de");
    }

    #[test]
    fn addresses_differing_only_in_case_fold_to_one() {
        assert_eq!(
            fold_email("Ann@Example.com"),
            fold_email("ann@EXAMPLE.com ")
        );
        assert_ne!(
            fold_email("ann@example.com"),
            fold_email("anne@example.com")
        );
    }

    #[test]
    fn an_ordinary_email_is_well_formed() {
        for email in [
            "ann@example.com",
            "a@b.c",
            "ann.example+shop@mail.example.co.uk",
            "ünal@example.de",
        ] {
            assert_eq!(email_problems(email), Vec::new(), "{email:?}");
        }
    }

    #[test]
    fn an_empty_email_is_an_invalid_format() {
        assert_eq!(email_problems(""), bad_email());
        assert_eq!(problems(emailed("")), one("email", "invalid_format"));
    }

    #[test]
    fn an_email_of_only_spaces_is_an_invalid_format() {
        assert_eq!(problems(emailed("   ")), one("email", "invalid_format"));
    }

    #[test]
    fn an_email_without_an_at_sign_is_an_invalid_format() {
        assert_eq!(email_problems("ann.example.com"), bad_email());
    }

    #[test]
    fn an_email_without_a_local_part_is_an_invalid_format() {
        assert_eq!(email_problems("@example.com"), bad_email());
    }

    #[test]
    fn an_email_with_two_at_signs_is_an_invalid_format() {
        assert_eq!(email_problems("ann@example@example.com"), bad_email());
        assert_eq!(email_problems("ann@@example.com"), bad_email());
    }

    #[test]
    fn an_email_whose_domain_has_no_dot_is_an_invalid_format() {
        assert_eq!(email_problems("ann@localhost"), bad_email());
        assert_eq!(email_problems("ann@"), bad_email());
    }

    #[test]
    fn an_email_whose_domain_starts_or_ends_with_a_dot_is_an_invalid_format() {
        assert_eq!(email_problems("ann@.example.com"), bad_email());
        assert_eq!(email_problems("ann@example.com."), bad_email());
    }

    #[test]
    fn an_email_with_inner_whitespace_is_an_invalid_format() {
        assert_eq!(email_problems("ann example@example.com"), bad_email());
        assert_eq!(
            problems(emailed("ann@exa mple.com")),
            one("email", "invalid_format")
        );
        assert_eq!(
            problems(emailed("ann@example.\u{a0}com")),
            one("email", "invalid_format")
        );
    }

    #[test]
    fn an_email_with_a_control_character_is_an_invalid_format() {
        assert_eq!(email_problems("ann\u{0}@example.com"), bad_email());
        assert_eq!(email_problems("ann@example.com\u{7f}x"), bad_email());
    }

    #[test]
    fn an_email_whose_local_part_is_64_bytes_is_well_formed() {
        assert_eq!(
            email_problems(&format!("{}@example.com", "a".repeat(64))),
            Vec::new()
        );
    }

    #[test]
    fn an_email_whose_local_part_is_65_bytes_is_an_invalid_format() {
        assert_eq!(
            email_problems(&format!("{}@example.com", "a".repeat(65))),
            bad_email()
        );
    }

    #[test]
    fn an_email_local_part_is_measured_in_bytes() {
        // 33 characters, 66 bytes.
        assert_eq!(
            email_problems(&format!("{}@example.com", "é".repeat(33))),
            bad_email()
        );
    }

    /// An address of exactly `len` characters with a 64-character local part.
    fn email_of(len: usize) -> String {
        let domain = format!("{}.com", "d".repeat(len - 64 - 1 - 4));
        let email = format!("{}@{domain}", "a".repeat(64));
        assert_eq!(email.chars().count(), len);
        email
    }

    #[test]
    fn an_email_of_254_characters_is_well_formed() {
        assert_eq!(email_problems(&email_of(254)), Vec::new());
        accepted(emailed(&email_of(254)));
    }

    #[test]
    fn an_email_of_255_characters_is_an_invalid_format() {
        assert_eq!(email_problems(&email_of(255)), bad_email());
    }

    #[test]
    fn the_email_length_is_checked_after_trimming() {
        let padded = format!("  {}  ", email_of(254));
        let fields = CustomerFields::parse(emailed(&padded)).expect("valid once trimmed");
        assert_eq!(fields.get().email, email_of(254));
    }

    #[test]
    fn a_phone_of_digits_and_punctuation_is_accepted() {
        for phone in [
            "5550100",
            "+44 20 7946 0958",
            "(555) 010-0199",
            "555.010.0199",
        ] {
            accepted(phoned(phone));
        }
    }

    #[test]
    fn a_phone_of_32_characters_is_accepted() {
        accepted(phoned(&"1".repeat(32)));
    }

    #[test]
    fn a_phone_of_33_characters_is_an_invalid_format() {
        assert_eq!(
            problems(phoned(&"1".repeat(33))),
            one("phone", "invalid_format")
        );
    }

    #[test]
    fn an_empty_phone_is_an_invalid_format() {
        assert_eq!(problems(phoned("")), one("phone", "invalid_format"));
    }

    #[test]
    fn a_phone_without_a_digit_is_an_invalid_format() {
        for phone in ["+", "() -", "   "] {
            assert_eq!(
                problems(phoned(phone)),
                one("phone", "invalid_format"),
                "{phone:?}"
            );
        }
    }

    #[test]
    fn a_phone_with_letters_or_other_characters_is_an_invalid_format() {
        for phone in ["555-0100 ext 2", "555/0100", "555#0100", "555\n0100", "٥٥٥"] {
            assert_eq!(
                problems(phoned(phone)),
                one("phone", "invalid_format"),
                "{phone:?}"
            );
        }
    }

    #[test]
    fn an_invalid_phone_says_what_it_may_hold() {
        let invalid = CustomerFields::parse(phoned("call me")).unwrap_err();
        assert_eq!(
            invalid.0,
            [FieldError::new(
                "phone",
                "invalid_format",
                "must be up to 32 of 0-9 + - ( ) . and spaces"
            )]
        );
    }

    #[test]
    fn an_empty_address_is_accepted() {
        accepted(addressed(""));
    }

    #[test]
    fn an_address_of_500_characters_is_accepted() {
        accepted(addressed(&"a".repeat(500)));
    }

    #[test]
    fn an_address_of_501_characters_is_too_long() {
        assert_eq!(
            problems(addressed(&"a".repeat(501))),
            one("address", "too_long")
        );
    }

    #[test]
    fn an_address_may_hold_newlines_and_tabs() {
        accepted(addressed("Flat 2\r\n1 Main Street\n\tSpringfield"));
    }

    #[test]
    fn an_address_with_a_nul_or_an_escape_has_an_invalid_character() {
        for address in ["1 Main\u{0} Street", "1 Main \u{1b}Street"] {
            assert_eq!(
                problems(addressed(address)),
                one("address", "invalid_character"),
                "{address:?}"
            );
        }
    }

    #[test]
    fn every_invalid_field_is_reported_at_once_in_field_order() {
        let input = CustomerInput {
            name: String::new(),
            email: "not an email".to_owned(),
            phone: Some("call me".to_owned()),
            address: Some("a".repeat(501)),
        };
        assert_eq!(
            problems(input),
            vec![
                ("name".to_owned(), "required"),
                ("email".to_owned(), "invalid_format"),
                ("phone".to_owned(), "invalid_format"),
                ("address".to_owned(), "too_long"),
            ]
        );
    }

    #[test]
    fn a_customers_input_is_its_fields_for_a_merge_patch() {
        let input = valid();
        let customer = Customer {
            id: "c1".to_owned(),
            name: input.name.clone(),
            email: input.email.clone(),
            phone: input.phone.clone(),
            address: input.address.clone(),
            created_at: "2024-01-01T00:00:00Z".to_owned(),
            updated_at: "2024-01-02T00:00:00Z".to_owned(),
            version: 2,
        };
        assert_eq!(customer.input(), input);
    }
}
