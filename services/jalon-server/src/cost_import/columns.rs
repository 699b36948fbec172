//! The columns of a cost file, and how a row becomes a `Cost` of the API.
//!
//! Two layouts, told apart by the header (no hand mapping):
//!
//! - **Jalon's own columns** (`external_ref`, `amount`, ...; see
//!   [`NATIVE_COLUMNS`]), any order, case-insensitive;
//! - **a FOCUS 1.x export** (the FinOps Foundation's FinOps Open Cost and
//!   Usage Specification): a header holding `BilledCost` and
//!   `ChargePeriodStart`. [`FOCUS_MAPPING`] is the one place where a FOCUS
//!   column is mapped to a field of ours; the README copies it.
//!
//! Pure functions: no I/O, unit-tested below.

use std::{collections::HashMap, str::FromStr};

use chrono::{DateTime, NaiveDate, Utc};
use jalon_core::values::CurrencyCode;
use jalon_proto::v1 as pb;
use rust_decimal::{Decimal, RoundingStrategy};
use sha2::{Digest, Sha256};

/// Jalon's own columns: (column, what it is). `external_ref` is required
/// (a re-run must find each row); the others as the API requires them.
pub const NATIVE_COLUMNS: &[(&str, &str)] = &[
    (
        "external_ref",
        "required: the finance system's id of the line, unique in the source",
    ),
    (
        "project_id",
        "the project's id (or project_ref, or a cost-centre rule)",
    ),
    (
        "project_ref",
        "a cost object of the project: WBS element, internal order, cost collector",
    ),
    (
        "cost_centre",
        "the cost centre; names the project by its rule when neither project_id nor project_ref is given",
    ),
    ("incurred_on", "the charge date, YYYY-MM-DD"),
    (
        "posting_period",
        "the accounting month, YYYY-MM (empty: this month)",
    ),
    (
        "category",
        "people, cloud, licences, data_labelling, integration, run_operations, other",
    ),
    ("nature", "capex or opex"),
    (
        "phase",
        "ideation, poc, industrialisation, deployment (empty: the phase on incurred_on)",
    ),
    ("amount", "in the organisation's currency, e.g. 1200.50"),
    (
        "currency",
        "the amount's currency (empty: the organisation's)",
    ),
    (
        "original_amount",
        "the amount in another currency, with the next three",
    ),
    ("original_currency", "its ISO 4217 code"),
    (
        "rate",
        "organisation currency units per unit of original_currency",
    ),
    ("rate_date", "the rate's date, YYYY-MM-DD"),
    (
        "reverses_ref",
        "a reversal: the external_ref of the line it reverses (amount negative)",
    ),
    (
        "reverses_source",
        "the reversed line's source when not this file's",
    ),
    ("description", "free text"),
];

/// Columns named `rejected_…` are ignored: they are the ones a rejects file
/// adds, so that a corrected rejects file imports as it is.
pub const REJECTED_PREFIX: &str = "rejected_";

/// How a FOCUS column becomes a field of ours: (FOCUS column, Jalon field,
/// rule). The one mapping; every other FOCUS column is ignored.
pub const FOCUS_MAPPING: &[(&str, &str, &str)] = &[
    (
        "BilledCost",
        "amount",
        "rounded half to even to the currency's minor unit",
    ),
    ("BillingCurrency", "amount's currency", "ISO 4217"),
    ("ChargePeriodStart", "incurred_on", "its date (UTC)"),
    (
        "BillingPeriodStart",
        "posting_period",
        "its month (YYYY-MM); absent: this month",
    ),
    (
        "ChargeCategory",
        "category",
        "Usage, Purchase, Adjustment: cloud; Tax: other; Credit: rejected (credits are not modelled)",
    ),
    (
        "ChargeClass",
        "reversal",
        "Correction with a negative BilledCost: a reversal of the line of the same charge (see external_ref); Correction with a positive one: a new line",
    ),
    (
        "ChargeDescription",
        "description",
        "followed by the invoice: \"... (invoice INV-1)\"",
    ),
    ("InvoiceId", "description", "appended as \"(invoice ...)\""),
    (
        "Tags / x_ columns",
        "project_ref, cost_centre",
        "a tag or x_ column named like JalonProject, ProjectRef or WBS names the project; one named like CostCentre or CostCenter the cost centre",
    ),
    (
        "SubAccountId",
        "project_ref",
        "when no tag names the project or the cost centre: the sub-account (AWS account, Azure subscription, GCP project) registered as a cost object",
    ),
    (
        "identity columns",
        "external_ref",
        "focus-<hash of BillingAccountId, SubAccountId, ChargeCategory, ChargePeriodStart, ChargePeriodEnd, ServiceName, RegionId, ResourceId, SkuId, SkuPriceId, CommitmentDiscountId, PricingCategory>; a correction: that, then -c and a hash of its whole row",
    ),
    ("(none)", "nature", "opex"),
];

/// The columns whose values identify a FOCUS charge: a correction reverses
/// the line with the same values.
pub const FOCUS_IDENTITY: &[&str] = &[
    "BillingAccountId",
    "SubAccountId",
    "ChargeCategory",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ServiceName",
    "RegionId",
    "ResourceId",
    "SkuId",
    "SkuPriceId",
    "CommitmentDiscountId",
    "PricingCategory",
];

/// Tag keys and `x_` column names, normalised (lowercase letters and
/// digits only), that name the project by a cost object.
const PROJECT_KEYS: &[&str] = &[
    "jalonproject",
    "jalonprojectref",
    "projectref",
    "wbs",
    "wbselement",
];
/// ... and the cost centre.
const COST_CENTRE_KEYS: &[&str] = &[
    "jaloncostcentre",
    "costcentre",
    "costcenter",
    "costcentrecode",
    "costcentercode",
];

/// A bad value: the column to blame and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub column: String,
    pub reason: String,
}

fn refuse(column: &str, reason: impl Into<String>) -> Refusal {
    Refusal {
        column: column.to_owned(),
        reason: reason.into(),
    }
}

/// A row made ready for the API, and its amount for the summary's totals.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedRow {
    pub cost: pb::Cost,
    /// (currency, amount) as the file gives it: the amount, or the original
    /// amount of a converted line.
    pub total: Option<(String, Decimal)>,
}

/// How the file's columns are read.
#[derive(Debug, Clone)]
pub enum Layout {
    Native(Native),
    Focus(Focus),
}

/// Column positions of a file in Jalon's columns.
#[derive(Debug, Clone)]
pub struct Native {
    at: HashMap<&'static str, usize>,
}

/// Column positions of a FOCUS export.
#[derive(Debug, Clone)]
pub struct Focus {
    at: HashMap<String, usize>,
    /// `x_` columns: (normalised name without the prefix, position).
    extensions: Vec<(String, usize)>,
}

impl Layout {
    /// Recognises the header: FOCUS when it holds `BilledCost` and
    /// `ChargePeriodStart`, Jalon's columns when it holds `external_ref`.
    pub fn from_header(header: &[&str]) -> Result<Self, String> {
        let has = |name: &str| header.iter().any(|h| h.trim().eq_ignore_ascii_case(name));
        if has("BilledCost") && has("ChargePeriodStart") {
            return Focus::new(header).map(Layout::Focus);
        }
        if has("external_ref") {
            return Native::new(header).map(Layout::Native);
        }
        Err(format!(
            "the header is neither Jalon's columns (external_ref, amount, incurred_on, ...) nor a FOCUS export (BilledCost, ChargePeriodStart, ...): {}",
            header.join(",")
        ))
    }

    /// "FOCUS" or "Jalon columns", for people.
    pub fn name(&self) -> &'static str {
        match self {
            Layout::Native(_) => "Jalon columns",
            Layout::Focus(_) => "FOCUS",
        }
    }

    /// The row as a cost of `source`; `currency` is the organisation's (the
    /// default of an amount without its currency).
    pub fn parse(&self, row: &[&str], source: &str, currency: &str) -> Result<ParsedRow, Refusal> {
        match self {
            Layout::Native(n) => n.parse(row, source, currency),
            Layout::Focus(f) => f.parse(row, source),
        }
    }

    /// The column of the file a field named by the server comes from
    /// (`costs[3].amount` -> `amount`, or `BilledCost` in a FOCUS file).
    pub fn column_of(&self, field: &str) -> String {
        let name = field.rsplit("].").next().unwrap_or(field);
        let name = name.strip_prefix("cost.").unwrap_or(name);
        let mapped = match self {
            Layout::Native(_) => match name {
                "reverses_external_ref" => "reverses_ref",
                "exchange_rate" => "rate",
                "original_amount.currency_code" => "original_currency",
                "amount.currency_code" => "currency",
                other => other,
            },
            Layout::Focus(_) => match name {
                "amount" | "amount.currency_code" => {
                    if name == "amount" {
                        "BilledCost"
                    } else {
                        "BillingCurrency"
                    }
                }
                "incurred_on" => "ChargePeriodStart",
                "posting_period" => "BillingPeriodStart",
                "category" => "ChargeCategory",
                "reverses_external_ref" => "ChargeClass",
                "description" => "ChargeDescription",
                "project_ref" => "SubAccountId/Tags",
                "cost_centre" => "Tags",
                other => other,
            },
        };
        mapped.to_owned()
    }
}

fn cell<'a>(row: &[&'a str], at: Option<usize>) -> &'a str {
    at.and_then(|i| row.get(i)).map_or("", |v| v.trim())
}

impl Native {
    fn new(header: &[&str]) -> Result<Self, String> {
        let mut at = HashMap::new();
        let mut unknown = Vec::new();
        for (i, h) in header.iter().enumerate() {
            let h = h.trim().to_ascii_lowercase();
            if h.starts_with(REJECTED_PREFIX) {
                continue;
            }
            match NATIVE_COLUMNS.iter().find(|(c, _)| *c == h) {
                Some((c, _)) => {
                    if at.insert(*c, i).is_some() {
                        return Err(format!("the column {c} appears twice"));
                    }
                }
                None => unknown.push(h),
            }
        }
        if !unknown.is_empty() {
            return Err(format!(
                "unknown column(s) {}: the columns are {}",
                unknown.join(", "),
                NATIVE_COLUMNS
                    .iter()
                    .map(|(c, _)| *c)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(Self { at })
    }

    fn get<'a>(&self, row: &[&'a str], column: &str) -> &'a str {
        cell(row, self.at.get(column).copied())
    }

    fn parse(&self, row: &[&str], source: &str, currency: &str) -> Result<ParsedRow, Refusal> {
        let get = |c: &str| self.get(row, c);
        let external_ref = get("external_ref");
        if external_ref.is_empty() {
            return Err(refuse(
                "external_ref",
                "is required: a re-run of the file finds each row by it",
            ));
        }
        let mut cost = pb::Cost {
            external_ref: external_ref.to_owned(),
            source: source.to_owned(),
            project_id: get("project_id").to_owned(),
            project_ref: get("project_ref").to_owned(),
            cost_centre: get("cost_centre").to_owned(),
            posting_period: get("posting_period").to_owned(),
            description: get("description").to_owned(),
            reverses_external_ref: get("reverses_ref").to_owned(),
            reverses_source: get("reverses_source").to_owned(),
            ..Default::default()
        };
        cost.incurred_on =
            optional_date(get("incurred_on")).map_err(|e| refuse("incurred_on", e))?;
        cost.rate_date = optional_date(get("rate_date")).map_err(|e| refuse("rate_date", e))?;
        cost.category = enum_value(get("category"), "COST_CATEGORY_", |n| {
            pb::CostCategory::from_str_name(n).map(|v| v as i32)
        })
        .map_err(|e| refuse("category", e))?;
        cost.nature = enum_value(get("nature"), "COST_NATURE_", |n| {
            pb::CostNature::from_str_name(n).map(|v| v as i32)
        })
        .map_err(|e| refuse("nature", e))?;
        cost.phase = enum_value(get("phase"), "PHASE_", |n| {
            pb::Phase::from_str_name(n).map(|v| v as i32)
        })
        .map_err(|e| refuse("phase", e))?;
        let mut total = None;
        let amount = get("amount");
        if !amount.is_empty() {
            let code = match get("currency") {
                "" => currency.to_owned(),
                c => c.to_ascii_uppercase(),
            };
            total = Decimal::from_str(amount).ok().map(|d| (code.clone(), d));
            cost.amount = Some(pb::Money {
                currency_code: code,
                amount: amount.to_owned(),
            });
        }
        let original = get("original_amount");
        let original_currency = get("original_currency");
        if !original.is_empty() || !original_currency.is_empty() {
            if original_currency.is_empty() {
                return Err(refuse(
                    "original_currency",
                    "is required with an original_amount",
                ));
            }
            let code = original_currency.to_ascii_uppercase();
            if total.is_none() {
                total = Decimal::from_str(original).ok().map(|d| (code.clone(), d));
            }
            cost.original_amount = Some(pb::Money {
                currency_code: code,
                amount: original.to_owned(),
            });
        }
        cost.exchange_rate = get("rate").to_owned();
        Ok(ParsedRow { cost, total })
    }
}

/// An enum cell: empty is unset (0); otherwise its name in any case, with
/// spaces or dashes for underscores, with or without the proto prefix
/// (`cloud`, `Data labelling`, `COST_CATEGORY_CLOUD`).
fn enum_value(
    raw: &str,
    prefix: &str,
    from_name: impl Fn(&str) -> Option<i32>,
) -> Result<i32, String> {
    if raw.is_empty() {
        return Ok(0);
    }
    let name: String = raw
        .trim()
        .chars()
        .map(|c| match c {
            ' ' | '-' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect();
    let full = if name.starts_with(prefix) {
        name
    } else {
        format!("{prefix}{name}")
    };
    match from_name(&full) {
        Some(v) if v != 0 => Ok(v),
        _ => Err(format!("'{raw}' is not a known value")),
    }
}

/// `YYYY-MM-DD` (or an ISO 8601 date-time: its date in UTC); empty: unset.
fn optional_date(raw: &str) -> Result<Option<pb::Date>, String> {
    if raw.is_empty() {
        return Ok(None);
    }
    parse_day(raw).map(|d| Some(date(d)))
}

fn parse_day(raw: &str) -> Result<NaiveDate, String> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc).date_naive());
    }
    // "2026-01-31", "2026-01-31T00:00:00" or "2026-01-31 00:00:00".
    raw.get(..10)
        .filter(|_| raw.len() == 10 || matches!(raw.as_bytes().get(10), Some(b'T' | b' ')))
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .ok_or_else(|| format!("'{raw}' is not a date (YYYY-MM-DD)"))
}

fn date(d: NaiveDate) -> pb::Date {
    use chrono::Datelike;
    pb::Date {
        year: d.year(),
        month: d.month() as i32,
        day: d.day() as i32,
    }
}

/// Lowercase letters and digits only: `Cost-Center`, `cost_centre` and
/// `CostCentre` are alike.
fn normalise_key(key: &str) -> String {
    key.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

impl Focus {
    fn new(header: &[&str]) -> Result<Self, String> {
        let mut at = HashMap::new();
        let mut extensions = Vec::new();
        for (i, h) in header.iter().enumerate() {
            let h = h.trim();
            if let Some(rest) = h.strip_prefix("x_").or_else(|| h.strip_prefix("X_")) {
                extensions.push((normalise_key(rest), i));
            }
            at.entry(h.to_ascii_lowercase()).or_insert(i);
        }
        let focus = Self { at, extensions };
        let missing: Vec<&str> = [
            "BilledCost",
            "BillingCurrency",
            "ChargePeriodStart",
            "ChargeCategory",
        ]
        .into_iter()
        .filter(|c| focus.position(c).is_none())
        .collect();
        if !missing.is_empty() {
            return Err(format!(
                "a FOCUS export needs the column(s) {}",
                missing.join(", ")
            ));
        }
        Ok(focus)
    }

    fn position(&self, column: &str) -> Option<usize> {
        self.at.get(&column.to_ascii_lowercase()).copied()
    }

    fn get<'a>(&self, row: &[&'a str], column: &str) -> &'a str {
        cell(row, self.position(column))
    }

    /// The value of the first tag or `x_` column whose normalised key is in
    /// `keys`: `x_` columns first, then the `Tags` JSON object.
    fn tagged(
        &self,
        row: &[&str],
        tags: &serde_json::Map<String, serde_json::Value>,
        keys: &[&str],
    ) -> String {
        for (name, i) in &self.extensions {
            if keys.contains(&name.as_str()) {
                let v = cell(row, Some(*i));
                if !v.is_empty() {
                    return v.to_owned();
                }
            }
        }
        for (k, v) in tags {
            if keys.contains(&normalise_key(k).as_str()) {
                let v = match v {
                    serde_json::Value::String(s) => s.trim().to_owned(),
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                if !v.is_empty() {
                    return v;
                }
            }
        }
        String::new()
    }

    /// `focus-` and 32 hex digits of the SHA-256 of the identity columns.
    fn identity_ref(&self, row: &[&str]) -> String {
        let mut h = Sha256::new();
        for c in FOCUS_IDENTITY {
            h.update(c.as_bytes());
            h.update(b"=");
            h.update(self.get(row, c).as_bytes());
            h.update(b"\x1f");
        }
        format!("focus-{}", &hex(&h.finalize())[..32])
    }

    fn parse(&self, row: &[&str], source: &str) -> Result<ParsedRow, Refusal> {
        let get = |c: &str| self.get(row, c);
        let currency = CurrencyCode::parse(&get("BillingCurrency").to_ascii_uppercase())
            .map_err(|e| refuse("BillingCurrency", e))?;
        let billed = get("BilledCost");
        let value = Decimal::from_str(billed)
            .or_else(|_| Decimal::from_scientific(billed))
            .map_err(|_| refuse("BilledCost", format!("'{billed}' is not a decimal amount")))?
            .round_dp_with_strategy(
                currency.minor_unit_digits(),
                RoundingStrategy::MidpointNearestEven,
            );
        let category = match get("ChargeCategory").to_ascii_lowercase().as_str() {
            "usage" | "purchase" | "adjustment" => pb::CostCategory::Cloud,
            "tax" => pb::CostCategory::Other,
            "credit" => {
                return Err(refuse(
                    "ChargeCategory",
                    "a Credit is not imported: credits are not modelled in Jalon (post a refund as a reversal of the line it refunds, or as a benefit)",
                ));
            }
            other => {
                return Err(refuse(
                    "ChargeCategory",
                    format!(
                        "'{other}' is not a FOCUS charge category (Usage, Purchase, Tax, Credit, Adjustment)"
                    ),
                ));
            }
        };
        let correction = match get("ChargeClass") {
            "" => false,
            c if c.eq_ignore_ascii_case("correction") => true,
            other => {
                return Err(refuse(
                    "ChargeClass",
                    format!("'{other}' is not a FOCUS charge class (empty or Correction)"),
                ));
            }
        };
        let incurred_on =
            parse_day(get("ChargePeriodStart")).map_err(|e| refuse("ChargePeriodStart", e))?;
        let posting_period = match get("BillingPeriodStart") {
            "" => String::new(),
            raw => parse_day(raw)
                .map_err(|e| refuse("BillingPeriodStart", e))?
                .format("%Y-%m")
                .to_string(),
        };
        let tags = match get("Tags") {
            "" => serde_json::Map::new(),
            raw => match serde_json::from_str::<serde_json::Value>(raw) {
                Ok(serde_json::Value::Object(map)) => map,
                Ok(serde_json::Value::Null) => serde_json::Map::new(),
                _ => return Err(refuse("Tags", "is not a JSON object of key-value pairs")),
            },
        };
        let project = self.tagged(row, &tags, PROJECT_KEYS);
        let cost_centre = self.tagged(row, &tags, COST_CENTRE_KEYS);
        let project_ref = if !project.is_empty() {
            project
        } else if cost_centre.is_empty() {
            get("SubAccountId").to_owned()
        } else {
            // The cost centre's rule names the project.
            String::new()
        };
        let mut description = get("ChargeDescription").to_owned();
        let invoice = get("InvoiceId");
        if !invoice.is_empty() {
            if !description.is_empty() {
                description.push(' ');
            }
            description.push_str(&format!("(invoice {invoice})"));
        }
        let identity = self.identity_ref(row);
        let amount = Some(pb::Money {
            currency_code: currency.as_str().to_owned(),
            amount: value.to_string(),
        });
        let total = Some((currency.as_str().to_owned(), value));
        let cost = if correction {
            let mut whole = Sha256::new();
            for v in row {
                whole.update(v.as_bytes());
                whole.update(b"\x1f");
            }
            let own = format!("{identity}-c{}", &hex(&whole.finalize())[..12]);
            if value.is_sign_negative() && !value.is_zero() {
                // A reversal: booked on the reversed line's project, date,
                // category, nature and phase.
                pb::Cost {
                    external_ref: own,
                    source: source.to_owned(),
                    amount,
                    posting_period,
                    description,
                    reverses_external_ref: identity,
                    ..Default::default()
                }
            } else {
                pb::Cost {
                    external_ref: own,
                    source: source.to_owned(),
                    amount,
                    category: category as i32,
                    nature: pb::CostNature::Opex as i32,
                    incurred_on: Some(date(incurred_on)),
                    posting_period,
                    project_ref,
                    cost_centre,
                    description,
                    ..Default::default()
                }
            }
        } else {
            pb::Cost {
                external_ref: identity,
                source: source.to_owned(),
                amount,
                category: category as i32,
                nature: pb::CostNature::Opex as i32,
                incurred_on: Some(date(incurred_on)),
                posting_period,
                project_ref,
                cost_centre,
                description,
                ..Default::default()
            }
        };
        Ok(ParsedRow { cost, total })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(header: &str) -> Layout {
        Layout::from_header(&header.split(',').collect::<Vec<_>>()).expect("layout")
    }

    fn parse(l: &Layout, row: &str) -> Result<ParsedRow, Refusal> {
        l.parse(&row.split(',').collect::<Vec<_>>(), "sap-fi", "EUR")
    }

    #[test]
    fn native_rows_map_to_costs() {
        let l =
            layout("External_Ref,project_ref,amount,category,nature,incurred_on,rejected_reason");
        assert_eq!(l.name(), "Jalon columns");
        let row = parse(&l, "A-1,WBS-1,12.50,Data labelling,OPEX,2026-03-04,old").unwrap();
        assert_eq!(row.cost.external_ref, "A-1");
        assert_eq!(row.cost.project_ref, "WBS-1");
        assert_eq!(row.cost.source, "sap-fi");
        assert_eq!(row.cost.amount.as_ref().unwrap().currency_code, "EUR");
        assert_eq!(row.cost.category, pb::CostCategory::DataLabelling as i32);
        assert_eq!(row.cost.nature, pb::CostNature::Opex as i32);
        assert_eq!(
            row.cost.incurred_on,
            Some(pb::Date {
                year: 2026,
                month: 3,
                day: 4
            })
        );
        assert_eq!(row.total, Some(("EUR".into(), Decimal::new(1250, 2))));
        assert_eq!(
            parse(&l, ",WBS-1,1,cloud,opex,2026-03-04,")
                .unwrap_err()
                .column,
            "external_ref"
        );
        assert_eq!(
            parse(&l, "A,WBS-1,1,food,opex,2026-03-04,")
                .unwrap_err()
                .column,
            "category"
        );
        assert_eq!(
            parse(&l, "A,WBS-1,1,cloud,opex,2026-13-04,")
                .unwrap_err()
                .column,
            "incurred_on"
        );
    }

    #[test]
    fn native_header_refuses_unknown_columns() {
        let e = Layout::from_header(&["external_ref", "amout"]).unwrap_err();
        assert!(e.contains("amout"), "{e}");
        let e = Layout::from_header(&["ref", "amount"]).unwrap_err();
        assert!(e.contains("neither"), "{e}");
    }

    const FOCUS: &str = "BilledCost,BillingCurrency,ChargePeriodStart,ChargePeriodEnd,BillingPeriodStart,ChargeCategory,ChargeClass,SubAccountId,ResourceId,InvoiceId,ChargeDescription,x_CostCenter";

    #[test]
    fn focus_rows_map_to_costs_and_corrections_to_reversals() {
        let l = layout(FOCUS);
        assert_eq!(l.name(), "FOCUS");
        let regular = parse(
            &l,
            "10.125,EUR,2026-01-05T00:00:00Z,2026-01-06T00:00:00Z,2026-01-01T00:00:00Z,Usage,,acct-1,vm-1,INV-9,GPU hours,",
        )
        .unwrap();
        let c = &regular.cost;
        assert!(c.external_ref.starts_with("focus-") && c.external_ref.len() == 38);
        assert_eq!(c.amount.as_ref().unwrap().amount, "10.12");
        assert_eq!(c.posting_period, "2026-01");
        assert_eq!(c.project_ref, "acct-1");
        assert_eq!(c.category, pb::CostCategory::Cloud as i32);
        assert_eq!(c.description, "GPU hours (invoice INV-9)");
        let correction = parse(
            &l,
            "-4,EUR,2026-01-05T00:00:00Z,2026-01-06T00:00:00Z,2026-02-01T00:00:00Z,Usage,Correction,acct-1,vm-1,INV-10,GPU hours,",
        )
        .unwrap();
        assert_eq!(correction.cost.reverses_external_ref, c.external_ref);
        assert!(correction.cost.external_ref.starts_with(&c.external_ref));
        assert_ne!(correction.cost.external_ref, c.external_ref);
        assert_eq!(correction.cost.posting_period, "2026-02");
        // A cost-centre column leaves the project to the rule.
        let by_centre = parse(
            &l,
            "3,EUR,2026-01-05,2026-01-06,,Tax,,acct-1,vm-1,,VAT,CC-7",
        )
        .unwrap();
        assert_eq!(by_centre.cost.project_ref, "");
        assert_eq!(by_centre.cost.cost_centre, "CC-7");
        assert_eq!(by_centre.cost.category, pb::CostCategory::Other as i32);
        let credit = parse(
            &l,
            "-3,EUR,2026-01-05,2026-01-06,,Credit,,acct-1,vm-1,,promo,",
        )
        .unwrap_err();
        assert_eq!(credit.column, "ChargeCategory");
        assert_eq!(l.column_of("costs[4].amount"), "BilledCost");
    }

    #[test]
    fn focus_tags_name_the_project() {
        let l =
            layout("BilledCost,BillingCurrency,ChargePeriodStart,ChargeCategory,SubAccountId,Tags");
        let row = l
            .parse(
                &[
                    "1",
                    "EUR",
                    "2026-01-05",
                    "Usage",
                    "acct",
                    r#"{"Jalon-Project":"WBS-9","env":"prod"}"#,
                ],
                "focus",
                "EUR",
            )
            .unwrap();
        assert_eq!(row.cost.project_ref, "WBS-9");
        let bad = l
            .parse(
                &["1", "EUR", "2026-01-05", "Usage", "acct", "[1]"],
                "focus",
                "EUR",
            )
            .unwrap_err();
        assert_eq!(bad.column, "Tags");
    }
}
