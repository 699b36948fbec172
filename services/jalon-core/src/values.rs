//! Validated values: each is parsed once at the edge and then carried as a
//! type, so nothing downstream re-checks a string. `parse` returns the human
//! description of what is wrong; the caller names the field.

use std::{fmt, str::FromStr};

use rust_decimal::Decimal;

type ParseResult<T> = Result<T, String>;

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// A trimmed, non-empty name of at most 200 characters without control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> ParseResult<Self> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("must not be empty".into());
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        if has_control(trimmed) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Optional free text (department, job title): trimmed, at most 200
/// characters, possibly empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortText(String);

impl ShortText {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> ParseResult<Self> {
        let trimmed = raw.trim();
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        if has_control(trimmed) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An organisation's slug: 2 to 63 characters of `a-z`, `0-9` and `-`,
/// starting with a letter, not ending with a hyphen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slug(String);

impl Slug {
    pub fn parse(raw: &str) -> ParseResult<Self> {
        let ok_len = (2..=63).contains(&raw.len());
        let ok_chars = raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let ok_ends = raw.starts_with(|c: char| c.is_ascii_lowercase()) && !raw.ends_with('-');
        if ok_len && ok_chars && ok_ends {
            Ok(Self(raw.to_owned()))
        } else {
            Err("must be 2 to 63 characters of a-z, 0-9 and '-', start with a letter and not end with '-'".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Active ISO 4217 currency codes.
const ISO_4217: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN",
    "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF",
    "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP",
    "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD",
    "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY",
    "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD",
    "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK",
    "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK",
    "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG",
    "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS",
    "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VES",
    "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

/// Currencies whose minor unit is not 2 digits (ISO 4217).
const MINOR_UNITS: &[(&str, u32)] = &[
    ("BHD", 3),
    ("BIF", 0),
    ("CLP", 0),
    ("DJF", 0),
    ("GNF", 0),
    ("IQD", 3),
    ("ISK", 0),
    ("JOD", 3),
    ("JPY", 0),
    ("KMF", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("LYD", 3),
    ("OMR", 3),
    ("PYG", 0),
    ("RWF", 0),
    ("TND", 3),
    ("UGX", 0),
    ("UYU", 2),
    ("VND", 0),
    ("VUV", 0),
    ("XAF", 0),
    ("XOF", 0),
    ("XPF", 0),
];

/// An active ISO 4217 currency code, uppercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CurrencyCode([u8; 3]);

impl CurrencyCode {
    pub fn parse(raw: &str) -> ParseResult<Self> {
        match ISO_4217.binary_search(&raw) {
            Ok(_) => {
                let b = raw.as_bytes();
                Ok(Self([b[0], b[1], b[2]]))
            }
            Err(_) => Err(format!(
                "'{raw}' is not an active ISO 4217 currency code (e.g. EUR, USD)"
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        // The bytes come from the ASCII table above.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// Digits after the decimal point of the currency's minor unit.
    pub fn minor_unit_digits(&self) -> u32 {
        MINOR_UNITS
            .iter()
            .find(|(code, _)| *code == self.as_str())
            .map_or(2, |(_, digits)| *digits)
    }
}

impl fmt::Display for CurrencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The largest amount, in minor units, of one money line and of any total
/// of one project (its cost, benefit, budget, each month, category and
/// phase): fifteen digits, e.g. EUR 9,999,999,999,999.99. Every write that
/// would take a project's total beyond it is refused, so that no figure
/// computed from such totals can overflow.
pub const MAX_MINOR_UNITS: i64 = 999_999_999_999_999;

/// An exact amount of money: integer minor units (cents) of a currency.
/// Never a float; parsed from and rendered to a decimal string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor: i64,
    currency: CurrencyCode,
}

impl Money {
    /// Parses a decimal string (`"1234.50"`) in `currency`: at most as many
    /// decimal places as the currency's minor unit.
    pub fn parse(amount: &str, currency: CurrencyCode) -> ParseResult<Self> {
        let value = Decimal::from_str(amount.trim())
            .map_err(|_| format!("'{amount}' is not a decimal amount (e.g. \"1234.50\")"))?;
        let digits = currency.minor_unit_digits();
        let normalized = value.normalize();
        if normalized.scale() > digits {
            return Err(format!(
                "{currency} amounts have at most {digits} decimal places"
            ));
        }
        let minor = normalized
            .checked_mul(Decimal::from(10_i64.pow(digits)))
            .and_then(|m| m.trunc().to_string().parse::<i64>().ok())
            .filter(|m| m.unsigned_abs() <= MAX_MINOR_UNITS.unsigned_abs())
            .ok_or_else(|| {
                format!(
                    "is too large: an amount is at most {} {currency}",
                    Self::from_minor(MAX_MINOR_UNITS, currency)
                )
            })?;
        Ok(Self { minor, currency })
    }

    /// From stored minor units.
    pub fn from_minor(minor: i64, currency: CurrencyCode) -> Self {
        Self { minor, currency }
    }

    pub fn minor_units(&self) -> i64 {
        self.minor
    }

    pub fn currency(&self) -> CurrencyCode {
        self.currency
    }

    /// The exact decimal value.
    pub fn amount(&self) -> Decimal {
        Decimal::new(self.minor, self.currency.minor_unit_digits())
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.amount())
    }
}

/// A discount rate for NPV: a decimal in `0..=1`, at most 6 decimal places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiscountRate(Decimal);

impl DiscountRate {
    pub fn parse(raw: &str) -> ParseResult<Self> {
        if raw.is_empty() {
            return Ok(Self(Decimal::ZERO));
        }
        let value = Decimal::from_str(raw)
            .map_err(|_| format!("'{raw}' is not a decimal number (e.g. \"0.08\")"))?;
        if value < Decimal::ZERO || value > Decimal::ONE {
            return Err("must be between 0 and 1 (e.g. \"0.08\" for 8%)".into());
        }
        if value.scale() > 6 {
            return Err("must have at most 6 decimal places".into());
        }
        Ok(Self(value.normalize()))
    }

    pub fn value(&self) -> Decimal {
        self.0
    }
}

impl fmt::Display for DiscountRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A month of the year, 1 to 12.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month(u8);

impl Month {
    pub const JANUARY: Month = Month(1);

    pub fn parse(raw: i32) -> ParseResult<Self> {
        match u8::try_from(raw) {
            Ok(m @ 1..=12) => Ok(Self(m)),
            _ => Err("must be a month number from 1 to 12".into()),
        }
    }

    pub fn number(&self) -> u8 {
        self.0
    }
}

/// A lowercase e-mail address of reasonable shape (`local@domain.tld`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> ParseResult<Self> {
        let email = raw.trim().to_lowercase();
        let bad = || Err(format!("'{raw}' is not a valid e-mail address"));
        if email.is_empty() || email.len() > 254 {
            return bad();
        }
        let Some((local, domain)) = email.split_once('@') else {
            return bad();
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok {
            Ok(Self(email))
        } else {
            bad()
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A token subject (`sub`): 1 to 255 characters, no control characters, no
/// surrounding whitespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject(String);

impl Subject {
    pub fn parse(raw: &str) -> ParseResult<Self> {
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        if raw.len() > 255 {
            return Err("must be at most 255 bytes".into());
        }
        if raw.trim() != raw || has_control(raw) {
            return Err("must not have surrounding whitespace or control characters".into());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An identifier of another system (HR, finance, the enterprise's directory):
/// 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalRef(String);

impl ExternalRef {
    pub fn parse(raw: &str) -> ParseResult<Self> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("must not be empty when set".into());
        }
        if trimmed.chars().count() > 200 {
            return Err("must be at most 200 characters".into());
        }
        if has_control(trimmed) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The one rule of free text (descriptions, notes, comments, references,
/// cost centres, filters): no NUL and no other control character but line
/// breaks and tabs. PostgreSQL cannot store NUL, and text one database
/// would store and the other refuse is refused on both.
pub fn check_text(raw: &str) -> ParseResult<()> {
    if raw.contains('\0') {
        return Err("must not contain NUL characters".into());
    }
    if raw
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err("must not contain control characters other than line breaks and tabs".into());
    }
    Ok(())
}

/// Free text of at most `max_chars` characters, trimmed, possibly empty,
/// under the rule of [`check_text`].
pub fn free_text(raw: &str, max_chars: usize) -> ParseResult<String> {
    let trimmed = raw.trim();
    if trimmed.chars().count() > max_chars {
        return Err(format!("must be at most {max_chars} characters"));
    }
    check_text(trimmed)?;
    Ok(trimmed.to_owned())
}

/// A link to a document or a page: an absolute `https` or `http` URL of at
/// most 2,000 characters, with a host and no whitespace or control
/// character; empty means none. Nothing a browser would execute
/// (`javascript:`, `data:`, `vbscript:`, `file:`) is a link.
pub fn parse_link(raw: &str) -> ParseResult<String> {
    const MAX_CHARS: usize = 2_000;
    let link = raw.trim();
    if link.is_empty() {
        return Ok(String::new());
    }
    if link.chars().count() > MAX_CHARS {
        return Err(format!("must be at most {MAX_CHARS} characters"));
    }
    let refused = || Err("must be an https:// or http:// link".to_owned());
    let Some((scheme, rest)) = link.split_once("://") else {
        return refused();
    };
    if !(scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http")) {
        return refused();
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err("must name a host (https://host/...)".into());
    }
    if link.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters (encode them as %20)".into());
    }
    Ok(link.to_owned())
}

/// Parses a resource id (a UUID in its hyphenated form).
pub fn parse_id(raw: &str) -> ParseResult<uuid::Uuid> {
    if raw.is_empty() {
        return Err("is required".into());
    }
    uuid::Uuid::try_parse(raw).map_err(|_| format!("'{raw}' is not a valid id (a UUID)"))
}

/// Page size of List calls: 0 means the default, negative or above the maximum
/// is refused.
pub fn parse_page_size(raw: i32, default: u32, max: u32) -> ParseResult<u32> {
    match raw {
        0 => Ok(default),
        n if n < 0 => Err("must not be negative".into()),
        n if n as u32 > max => Err(format!("must be at most {max}")),
        n => Ok(n as u32),
    }
}

/// Default page size of every List call.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Maximum page size of every List call.
pub const MAX_PAGE_SIZE: u32 = 500;

/// A decimal as text with exactly `dp` digits after the point, rounded
/// half to even: the one formatter of ratios (ROI, rates) on every RPC.
pub fn fixed_decimal(value: rust_decimal::Decimal, dp: u32) -> String {
    let rounded =
        value.round_dp_with_strategy(dp, rust_decimal::RoundingStrategy::MidpointNearestEven);
    format!("{rounded:.prec$}", prec = dp as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_table_is_sorted_for_binary_search() {
        assert!(ISO_4217.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn currency_accepts_iso_codes_only() {
        assert_eq!(
            CurrencyCode::parse("EUR").map(|c| c.to_string()),
            Ok("EUR".into())
        );
        assert!(CurrencyCode::parse("eur").is_err());
        assert!(CurrencyCode::parse("EURO").is_err());
        assert!(CurrencyCode::parse("XYZ").is_err());
        assert!(CurrencyCode::parse("").is_err());
    }

    #[test]
    fn currency_minor_units() {
        assert_eq!(
            CurrencyCode::parse("EUR").map(|c| c.minor_unit_digits()),
            Ok(2)
        );
        assert_eq!(
            CurrencyCode::parse("JPY").map(|c| c.minor_unit_digits()),
            Ok(0)
        );
        assert_eq!(
            CurrencyCode::parse("KWD").map(|c| c.minor_unit_digits()),
            Ok(3)
        );
    }

    #[test]
    fn money_is_exact_minor_units() {
        let eur = CurrencyCode::parse("EUR").unwrap();
        let m = Money::parse("1234.5", eur).unwrap();
        assert_eq!(m.minor_units(), 123_450);
        assert_eq!(m.to_string(), "1234.50");
        assert_eq!(Money::parse("0.1", eur).map(|m| m.minor_units()), Ok(10));
        assert!(Money::parse("1.005", eur).is_err());
        assert!(Money::parse("abc", eur).is_err());
        assert!(Money::parse("1e40", eur).is_err());
        let jpy = CurrencyCode::parse("JPY").unwrap();
        assert_eq!(Money::parse("500", jpy).map(|m| m.minor_units()), Ok(500));
        assert!(Money::parse("500.5", jpy).is_err());
        assert_eq!(Money::from_minor(-250, eur).to_string(), "-2.50");
    }

    #[test]
    fn money_has_a_documented_maximum_and_never_panics() {
        let eur = CurrencyCode::parse("EUR").unwrap();
        let jpy = CurrencyCode::parse("JPY").unwrap();
        assert_eq!(
            Money::parse("9999999999999.99", eur).map(|m| m.minor_units()),
            Ok(MAX_MINOR_UNITS)
        );
        assert_eq!(
            Money::parse("-9999999999999.99", eur).map(|m| m.minor_units()),
            Ok(-MAX_MINOR_UNITS)
        );
        assert_eq!(
            Money::parse("10000000000000.00", eur),
            Err("is too large: an amount is at most 9999999999999.99 EUR".into())
        );
        assert!(Money::parse("92233720368547758.07", eur).is_err());
        assert!(Money::parse("999999999999999", jpy).is_ok());
        assert!(Money::parse("1000000000000000", jpy).is_err());
        // Decimal's own limit: no overflow panic on scaling.
        assert!(Money::parse("79228162514264337593543950335", eur).is_err());
        assert!(Money::parse("-79228162514264337593543950335", eur).is_err());
    }

    #[test]
    fn slug_rules() {
        assert!(Slug::parse("acme").is_ok());
        assert!(Slug::parse("acme-2").is_ok());
        assert!(Slug::parse("a").is_err());
        assert!(Slug::parse("Acme").is_err());
        assert!(Slug::parse("2acme").is_err());
        assert!(Slug::parse("acme-").is_err());
        assert!(Slug::parse("ac me").is_err());
        assert!(Slug::parse(&"a".repeat(64)).is_err());
    }

    #[test]
    fn display_name_is_trimmed_and_bounded() {
        assert_eq!(
            DisplayName::parse("  Acme ").map(|n| n.0),
            Ok("Acme".into())
        );
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"x".repeat(201)).is_err());
        assert!(DisplayName::parse("a\u{0}b").is_err());
    }

    #[test]
    fn discount_rate_between_zero_and_one() {
        assert_eq!(
            DiscountRate::parse("0.080").map(|r| r.to_string()),
            Ok("0.08".into())
        );
        assert_eq!(
            DiscountRate::parse("").map(|r| r.to_string()),
            Ok("0".into())
        );
        assert!(DiscountRate::parse("1").is_ok());
        assert!(DiscountRate::parse("1.01").is_err());
        assert!(DiscountRate::parse("-0.1").is_err());
        assert!(DiscountRate::parse("abc").is_err());
        assert!(DiscountRate::parse("0.1234567").is_err());
    }

    #[test]
    fn month_range() {
        assert!(Month::parse(1).is_ok());
        assert!(Month::parse(12).is_ok());
        assert!(Month::parse(0).is_err());
        assert!(Month::parse(13).is_err());
    }

    #[test]
    fn email_shapes() {
        assert_eq!(
            Email::parse("Ada@Example.COM").map(|e| e.0),
            Ok("ada@example.com".into())
        );
        assert!(Email::parse("first.last+tag@sub.example.org").is_ok());
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "ada@@example.com",
            "ada@-x.com",
            ".ada@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn subject_rules() {
        assert!(Subject::parse("auth0|123").is_ok());
        assert!(Subject::parse("").is_err());
        assert!(Subject::parse(" x").is_err());
        assert!(Subject::parse(&"x".repeat(256)).is_err());
    }

    #[test]
    fn free_text_refuses_nul_and_control_characters_but_keeps_line_breaks() {
        assert_eq!(free_text("  a\nb\tc\r\n ", 10), Ok("a\nb\tc".into()));
        assert_eq!(free_text("", 10), Ok(String::new()));
        assert!(free_text("a\0b", 10).unwrap_err().contains("NUL"));
        assert!(free_text("a\u{1b}[31m", 10).is_err());
        assert!(free_text("a\u{85}b", 10).is_err());
        assert!(free_text(&"é".repeat(11), 10).is_err());
        assert!(free_text(&"é".repeat(10), 10).is_ok());
    }

    #[test]
    fn links_are_http_or_https_only() {
        for good in [
            "https://example.com",
            "HTTPS://example.com/a?b=c#d",
            "http://intranet:8080/doc.pdf",
            "https://user@example.com/x",
        ] {
            assert_eq!(parse_link(good).as_deref(), Ok(good), "{good}");
        }
        assert_eq!(parse_link("  "), Ok(String::new()));
        for bad in [
            "javascript:alert(1)",
            "JavaScript://%0aalert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:msgbox(1)",
            "file:///etc/passwd",
            "//example.com/x",
            "example.com",
            "https://",
            "https:///path",
            "https://exa mple.com",
            "https://example.com/\0",
            "ftp://example.com/x",
        ] {
            assert!(parse_link(bad).is_err(), "{bad} accepted");
        }
        assert!(parse_link(&format!("https://e.com/{}", "a".repeat(2_000))).is_err());
    }

    #[test]
    fn ids_and_page_sizes() {
        assert!(parse_id("0190b6a4-6c7e-7a3b-9f3e-1c2d3e4f5a6b").is_ok());
        assert!(parse_id("").is_err());
        assert!(parse_id("not-a-uuid").is_err());
        assert_eq!(parse_page_size(0, 50, 500), Ok(50));
        assert_eq!(parse_page_size(10, 50, 500), Ok(10));
        assert!(parse_page_size(-1, 50, 500).is_err());
        assert!(parse_page_size(501, 50, 500).is_err());
    }
}
