//! Money: an integer amount of minor units of an ISO 4217 currency, never a float.

use serde::{Deserialize, Serialize};

/// The active ISO 4217 codes of money (funds, metals and test codes left out), each with its
/// exponent: the number of minor-unit digits (USD 2, JPY 0, KWD 3).
const CURRENCIES: &[(&str, u8)] = &{
    const ZERO: &[&str] = &[
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
        "VUV", "XAF", "XOF", "XPF",
    ];
    const THREE: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
    const FOUR: &[&str] = &["CLF", "UYW"];
    const ALL: &[&str] = &[
        "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
        "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD",
        "CAD", "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUC", "CUP",
        "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP",
        "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS",
        "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW",
        "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD",
        "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN",
        "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR",
        "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SLL",
        "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY",
        "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES",
        "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG", "ZWL",
    ];
    const fn in_list(list: &[&str], code: &str) -> bool {
        let mut i = 0;
        while i < list.len() {
            if eq(list[i], code) {
                return true;
            }
            i += 1;
        }
        false
    }
    const fn eq(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        a.len() == b.len() && a[0] == b[0] && a[1] == b[1] && a[2] == b[2]
    }
    let mut out = [("", 0u8); ALL.len()];
    let mut i = 0;
    while i < ALL.len() {
        let code = ALL[i];
        let exponent = if in_list(ZERO, code) {
            0
        } else if in_list(THREE, code) {
            3
        } else if in_list(FOUR, code) {
            4
        } else {
            2
        };
        out[i] = (code, exponent);
        i += 1;
    }
    out
};

/// An ISO 4217 currency code known to this list, such as `EUR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "&'static str")]
pub struct Currency(&'static str);

impl Currency {
    /// The currency of an upper-case three-letter code, if it is an active ISO 4217 currency.
    pub fn parse(code: &str) -> Option<Currency> {
        CURRENCIES
            .binary_search_by(|(c, _)| (*c).cmp(code))
            .ok()
            .map(|i| Currency(CURRENCIES[i].0))
    }

    pub fn code(self) -> &'static str {
        self.0
    }

    /// Digits of the minor unit: 2 for EUR, 0 for JPY, 3 for KWD.
    pub fn exponent(self) -> u8 {
        CURRENCIES
            .binary_search_by(|(c, _)| (*c).cmp(self.0))
            .map_or(2, |i| CURRENCIES[i].1)
    }
}

impl From<Currency> for &'static str {
    fn from(c: Currency) -> Self {
        c.0
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Currency::parse(&code).ok_or_else(|| {
            serde::de::Error::invalid_value(
                serde::de::Unexpected::Str(&code),
                &"an ISO 4217 currency code such as \"EUR\"",
            )
        })
    }
}

/// An amount of money: `{"amount": <integer minor units>, "currency": "<ISO 4217>"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Money {
    /// Minor units (cents for EUR): an integer, never a fraction.
    pub amount: i64,
    /// An ISO 4217 code such as `EUR`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "EUR"))]
    pub currency: Currency,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_and_knows_the_exponents() {
        assert!(
            CURRENCIES.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted, no duplicates"
        );
        assert!(CURRENCIES.iter().all(|(c, _)| c.len() == 3));
        let exponent = |c: &str| Currency::parse(c).map(Currency::exponent);
        assert_eq!(exponent("EUR"), Some(2));
        assert_eq!(exponent("JPY"), Some(0));
        assert_eq!(exponent("KWD"), Some(3));
        assert_eq!(exponent("CLF"), Some(4));
        assert_eq!(exponent("eur"), None);
        assert_eq!(exponent("XAU"), None, "metals are not money here");
        assert_eq!(exponent("ZZZ"), None);
    }

    #[test]
    fn money_reads_integers_only() {
        let m: Money = serde_json::from_str(r#"{"amount": 1999, "currency": "EUR"}"#).unwrap();
        assert_eq!((m.amount, m.currency.code()), (1999, "EUR"));
        assert!(serde_json::from_str::<Money>(r#"{"amount": 19.99, "currency": "EUR"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount": 1, "currency": "EURO"}"#).is_err());
    }
}
