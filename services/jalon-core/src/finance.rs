//! Money of a project: costs, budgets, benefits, and what they add up to:
//! ROI, payback and NPV. Exact decimal arithmetic in the organisation's
//! currency; amounts are integer minor units underneath.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use rust_decimal::{Decimal, RoundingStrategy};

use crate::{
    project::Phase,
    values::{CurrencyCode, MAX_MINOR_UNITS, Money},
};

macro_rules! money_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown {} '{other}'", stringify!($name))),
                }
            }
        }
    };
}

money_enum!(
    /// What a cost paid for.
    CostCategory {
        People => "PEOPLE", Cloud => "CLOUD", Licences => "LICENCES", DataLabelling => "DATA_LABELLING",
        Integration => "INTEGRATION", RunOperations => "RUN_OPERATIONS", Other => "OTHER",
    }
);
money_enum!(
    /// Capital or operating expenditure.
    CostNature { Capex => "CAPEX", Opex => "OPEX" }
);
money_enum!(
    /// What a recorded benefit is.
    BenefitKind { Savings => "SAVINGS", Revenue => "REVENUE", AvoidedCost => "AVOIDED_COST" }
);

money_enum!(
    /// What kind of a finance system's cost object names a project.
    CostObjectKind { WbsElement => "WBS_ELEMENT", InternalOrder => "INTERNAL_ORDER", CostCollector => "COST_COLLECTOR" }
);

/// The built-in source of every organisation: costs posted by hand or
/// without a source.
pub const MANUAL_SOURCE: &str = "manual";

/// The longest cost centre kept (the column's length).
pub const COST_CENTRE_MAX_CHARS: usize = 100;

/// A cost centre as a cost, a cost-centre rule or a portfolio filter names
/// it: trimmed, at most [`COST_CENTRE_MAX_CHARS`] characters, and, being a
/// code of one line, no control character at all (not even a tab or a line
/// break, which other free text allows); empty means none.
pub fn parse_cost_centre(raw: &str) -> Result<String, String> {
    let c = crate::values::free_text(raw, COST_CENTRE_MAX_CHARS)?;
    if c.chars().any(char::is_control) {
        return Err("must not contain control characters (tabs and line breaks included)".into());
    }
    Ok(c)
}

/// A source's name: a slug of 1 to 64 lowercase letters, digits and `-`,
/// starting with a letter.
pub fn parse_source_name(raw: &str) -> Result<String, String> {
    let ok = !raw.is_empty()
        && raw.len() <= 64
        && raw.starts_with(|c: char| c.is_ascii_lowercase())
        && raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(format!(
            "'{raw}' is not a source name: 1 to 64 lowercase letters, digits and '-', starting with a letter (e.g. \"sap-fi\")"
        ))
    }
}

/// An accounting period "YYYY-MM" (years 1900 to 9999).
pub fn parse_period(raw: &str) -> Result<String, String> {
    let bad = || format!("'{raw}' is not a period: \"YYYY-MM\" (e.g. \"2026-01\")");
    let (y, m) = raw.split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 || !y.chars().chain(m.chars()).all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let (y, m): (i32, u32) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(1900..=9999).contains(&y) || !(1..=12).contains(&m) {
        return Err(bad());
    }
    Ok(raw.to_owned())
}

/// The period of a day: "YYYY-MM".
pub fn period_of(day: NaiveDate) -> String {
    day.format("%Y-%m").to_string()
}

/// An amount in another currency converted at a rate (organisation units
/// per unit of the original), once, rounded half-even to `currency`'s minor
/// unit.
pub fn convert(original: Decimal, rate: Decimal, currency: CurrencyCode) -> Result<Money, String> {
    let value = original
        .checked_mul(rate)
        .ok_or_else(|| "original_amount x exchange_rate is too large".to_owned())?
        .round_dp_with_strategy(
            currency.minor_unit_digits(),
            RoundingStrategy::MidpointNearestEven,
        );
    Money::parse(&value.to_string(), currency)
}

/// An exchange rate: a positive decimal string.
pub fn parse_rate(raw: &str) -> Result<Decimal, String> {
    let rate: Decimal = raw
        .trim()
        .parse()
        .map_err(|_| format!("'{raw}' is not a decimal rate (e.g. \"1.0842\")"))?;
    if rate <= Decimal::ZERO {
        return Err("must be positive".into());
    }
    Ok(rate)
}

/// A cost as the money rules see it.
#[derive(Debug, Clone, PartialEq)]
pub struct CostLine {
    pub amount_minor: i64,
    pub category: CostCategory,
    pub phase: Phase,
    pub date: NaiveDate,
}

/// A recorded benefit's amount: zero or more. A benefit is what a project
/// brought; a negative one would silently lower its ROI.
pub fn check_benefit_amount(amount: Money) -> Result<Money, String> {
    if amount.minor_units() < 0 {
        return Err("must not be negative: a benefit is what the project brought".into());
    }
    Ok(amount)
}

/// A benefit (recorded, or derived from a monetised KPI) as the money rules
/// see it.
#[derive(Debug, Clone, PartialEq)]
pub struct BenefitLine {
    pub amount_minor: i64,
    pub date: NaiveDate,
}

/// What a project's money adds up to.
#[derive(Debug, Clone, PartialEq)]
pub struct Financials {
    pub currency: CurrencyCode,
    pub total_cost: Money,
    pub cost_by_category: Vec<(CostCategory, Money)>,
    pub cost_by_phase: Vec<(Phase, Money)>,
    /// Cost by charge month (the first day of the month), months with
    /// cost lines only, oldest first.
    pub cost_by_month: Vec<(NaiveDate, Money)>,
    pub recorded_benefit: Money,
    pub derived_benefit: Money,
    pub net_value: Money,
    /// (benefit - cost) / cost; none without cost.
    pub roi: Option<Decimal>,
    /// The first month whose cumulative benefit reaches the cumulative cost.
    pub payback_month: Option<NaiveDate>,
    /// Net monthly cash flows discounted at the annual rate compounded
    /// monthly (rate / 12 a month), from the first month with a flow.
    pub npv: Money,
    pub budget: Option<Money>,
    /// budget - cost: positive is under budget.
    pub budget_variance: Option<Money>,
    pub budget_by_category: Vec<(CostCategory, Money, Money)>,
}

fn month_of(d: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(d.year(), d.month(), 1).unwrap_or(d)
}

fn months_between(from: NaiveDate, to: NaiveDate) -> i64 {
    i64::from(to.year() - from.year()) * 12 + i64::from(to.month()) - i64::from(from.month())
}

fn money(minor: i64, currency: CurrencyCode) -> Money {
    Money::from_minor(minor, currency)
}

fn to_minor(amount: Decimal, currency: CurrencyCode) -> i64 {
    let digits = currency.minor_unit_digits();
    let scaled = (amount * Decimal::from(10_i64.pow(digits)))
        .round_dp_with_strategy(0, RoundingStrategy::MidpointNearestEven);
    scaled
        .to_string()
        .parse::<i64>()
        .unwrap_or(if scaled.is_sign_negative() {
            i64::MIN
        } else {
            i64::MAX
        })
}

/// Return on investment, (benefit - cost) / cost, exact; none without
/// cost. The one ROI of every figure (project financials, portfolio rows and
/// summary).
pub fn roi(cost_minor: i64, benefit_minor: i64) -> Option<Decimal> {
    (cost_minor != 0).then(|| {
        (Decimal::from(benefit_minor) - Decimal::from(cost_minor)) / Decimal::from(cost_minor)
    })
}

/// Digits after the point of an ROI as text.
pub const ROI_DIGITS: u32 = 6;

/// An ROI as text: six decimals, rounded half to even; empty without cost.
pub fn roi_text(roi: Option<Decimal>) -> String {
    roi.map(|r| crate::values::fixed_decimal(r, ROI_DIGITS))
        .unwrap_or_default()
}

/// Adds up a project's money.
pub fn financials(
    currency: CurrencyCode,
    annual_discount_rate: Decimal,
    costs: &[CostLine],
    recorded: &[BenefitLine],
    derived: &[BenefitLine],
    budget_total_minor: Option<i64>,
    budget_by_category: &[(CostCategory, i64)],
) -> Financials {
    let mut t = MoneyTotals::default();
    for c in costs {
        *t.cost_by_category.entry(c.category).or_default() += c.amount_minor;
        *t.cost_by_phase.entry(c.phase).or_default() += c.amount_minor;
        t.flows.entry(month_of(c.date)).or_default().0 += c.amount_minor;
    }
    for b in recorded {
        t.recorded += b.amount_minor;
        t.flows.entry(month_of(b.date)).or_default().1 += b.amount_minor;
    }
    financials_of_totals(
        currency,
        annual_discount_rate,
        t,
        derived,
        budget_total_minor,
        budget_by_category,
    )
}

/// A project's money summed: what ROI, payback, NPV and the budget
/// variance need (the store can sum it in SQL).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MoneyTotals {
    pub cost_by_category: BTreeMap<CostCategory, i64>,
    /// Empty when the caller does not need it (the portfolio's figures).
    pub cost_by_phase: BTreeMap<Phase, i64>,
    /// Recorded benefits.
    pub recorded: i64,
    /// Per month: (costs, recorded benefits).
    pub flows: BTreeMap<NaiveDate, (i64, i64)>,
}

/// The largest sum, in minor units, of one money figure over an
/// organisation's projects (its portfolio's cost, budget, benefits, each
/// category): 4 x 10^18, so that the portfolio's figures computed from two
/// of them (benefit, net value, variance) stay within 64 bits. A write that
/// would take one beyond it is refused.
pub const MAX_ORGANISATION_MINOR_UNITS: i64 = 4_000_000_000_000_000_000;

/// Refuses a project's money beyond [`MAX_MINOR_UNITS`]: its total cost,
/// recorded benefit, derived benefits (summed in absolute value: a KPI that
/// worsened derives a negative benefit), and so every category, phase and
/// month of them. Checked by every write that moves a project's money, so
/// that nothing computed from these totals (net value, ROI, payback, NPV,
/// budget variance) can overflow. Names the total that would be too large.
pub fn check_project_totals(
    totals: &MoneyTotals,
    derived: &[BenefitLine],
    currency: CurrencyCode,
) -> Result<(), String> {
    let cost: i128 = totals
        .cost_by_category
        .values()
        .map(|v| i128::from(*v))
        .sum();
    let phase: i128 = totals.cost_by_phase.values().map(|v| i128::from(*v)).sum();
    let recorded = i128::from(totals.recorded);
    let derived: i128 = derived
        .iter()
        .map(|b| i128::from(b.amount_minor).abs())
        .sum();
    for (what, total) in [
        ("cost", cost.max(phase)),
        ("recorded benefit", recorded),
        ("derived benefit (in absolute value)", derived),
    ] {
        if total.abs() > i128::from(MAX_MINOR_UNITS) {
            return Err(format!(
                "the project's {what} would reach {} {currency}, beyond the largest total kept for a project ({} {currency})",
                Decimal::from_i128_with_scale(total, currency.minor_unit_digits()),
                Money::from_minor(MAX_MINOR_UNITS, currency),
            ));
        }
    }
    Ok(())
}

/// [`financials`] of summed money plus the benefits derived from KPIs.
pub fn financials_of_totals(
    currency: CurrencyCode,
    annual_discount_rate: Decimal,
    totals: MoneyTotals,
    derived: &[BenefitLine],
    budget_total_minor: Option<i64>,
    budget_by_category: &[(CostCategory, i64)],
) -> Financials {
    let MoneyTotals {
        cost_by_category: by_category,
        cost_by_phase: by_phase,
        recorded: recorded_total,
        mut flows,
    } = totals;
    // Saturating: the writes keep every total within MAX_MINOR_UNITS
    // (check_project_totals), so these never saturate on data Jalon wrote;
    // a read never panics or fails on data it did not.
    let sum = |values: &mut dyn Iterator<Item = i64>| values.fold(0_i64, i64::saturating_add);
    let total_cost = sum(&mut by_category.values().copied());
    let derived_total = sum(&mut derived.iter().map(|b| b.amount_minor));
    let benefit = recorded_total.saturating_add(derived_total);
    let roi = roi(total_cost, benefit);
    let cost_by_month = flows
        .iter()
        .filter(|(_, (cost, _))| *cost != 0)
        .map(|(m, (cost, _))| (*m, money(*cost, currency)))
        .collect();

    // Monthly net flows.
    for b in derived {
        let flow = flows.entry(month_of(b.date)).or_default();
        flow.1 = flow.1.saturating_add(b.amount_minor);
    }
    let (mut cum_cost, mut cum_benefit) = (0_i64, 0_i64);
    let mut payback_month = None;
    for (month, (cost, gain)) in &flows {
        cum_cost = cum_cost.saturating_add(*cost);
        cum_benefit = cum_benefit.saturating_add(*gain);
        if payback_month.is_none() && cum_cost > 0 && cum_benefit >= cum_cost {
            payback_month = Some(*month);
        }
    }
    let monthly = Decimal::ONE + annual_discount_rate / Decimal::from(12);
    let first = flows.keys().next().copied();
    let mut npv = Decimal::ZERO;
    if let Some(first) = first {
        // The months are in order: the factor grows from one flow to the
        // next. A factor beyond Decimal's range (a flow centuries after the
        // first at a high rate) discounts that flow and the later ones to
        // nothing.
        let (mut factor, mut at) = (Some(Decimal::ONE), 0);
        for (month, (cost, gain)) in &flows {
            let n = months_between(first, *month);
            while at < n && factor.is_some() {
                factor = factor.and_then(|f| f.checked_mul(monthly));
                at += 1;
            }
            let Some(factor) = factor else { break };
            npv += (Decimal::from(*gain) - Decimal::from(*cost)) / factor;
        }
    }
    let digits = currency.minor_unit_digits();
    let npv_minor = to_minor(npv / Decimal::from(10_i64.pow(digits)), currency);
    let budget_by_category = budget_by_category
        .iter()
        .map(|(category, budget)| {
            let actual = by_category.get(category).copied().unwrap_or(0);
            (
                *category,
                money(*budget, currency),
                money(budget.saturating_sub(actual), currency),
            )
        })
        .collect();
    Financials {
        currency,
        total_cost: money(total_cost, currency),
        cost_by_category: by_category
            .into_iter()
            .map(|(k, v)| (k, money(v, currency)))
            .collect(),
        cost_by_phase: by_phase
            .into_iter()
            .map(|(k, v)| (k, money(v, currency)))
            .collect(),
        cost_by_month,
        recorded_benefit: money(recorded_total, currency),
        derived_benefit: money(derived_total, currency),
        net_value: money(benefit.saturating_sub(total_cost), currency),
        roi,
        payback_month,
        npv: money(npv_minor, currency),
        budget: budget_total_minor.map(|b| money(b, currency)),
        budget_variance: budget_total_minor.map(|b| money(b.saturating_sub(total_cost), currency)),
        budget_by_category,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn eur() -> CurrencyCode {
        CurrencyCode::parse("EUR").unwrap()
    }

    #[test]
    fn a_cost_centre_is_one_line_of_at_most_100_characters() {
        assert_eq!(parse_cost_centre("  CC-4711 "), Ok("CC-4711".to_owned()));
        assert_eq!(parse_cost_centre(""), Ok(String::new()));
        assert!(parse_cost_centre(&"C".repeat(100)).is_ok());
        assert!(parse_cost_centre(&"C".repeat(101)).is_err());
        for bad in ["CC\t1", "CC\n1", "CC\u{7}1", "CC\u{0}1"] {
            assert!(parse_cost_centre(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn benefits_are_never_negative() {
        let amount = |raw: &str| Money::parse(raw, eur()).unwrap();
        assert!(check_benefit_amount(amount("-3.00")).is_err());
        assert!(check_benefit_amount(amount("-0.01")).is_err());
        assert_eq!(check_benefit_amount(amount("0")), Ok(amount("0")));
        assert_eq!(check_benefit_amount(amount("3.00")), Ok(amount("3.00")));
    }

    #[test]
    fn roi_payback_and_budget_by_hand() {
        // Costs: EUR 30,000 people in Jan (POC), EUR 10,000 cloud in Feb
        // (industrialisation). Benefits: EUR 15,000 recorded in Mar, EUR
        // 20,000 derived in Apr, EUR 20,000 derived in May.
        // Total cost 40,000; benefit 55,000; net 15,000; ROI 0.375.
        // Cumulative: Jan -30k, Feb -40k, Mar -25k, Apr -5k, May +15k:
        // payback in May.
        let costs = [
            CostLine {
                amount_minor: 3_000_000,
                category: CostCategory::People,
                phase: Phase::Poc,
                date: d(2026, 1, 15),
            },
            CostLine {
                amount_minor: 1_000_000,
                category: CostCategory::Cloud,
                phase: Phase::Industrialisation,
                date: d(2026, 2, 3),
            },
        ];
        let recorded = [BenefitLine {
            amount_minor: 1_500_000,
            date: d(2026, 3, 31),
        }];
        let derived = [
            BenefitLine {
                amount_minor: 2_000_000,
                date: d(2026, 4, 1),
            },
            BenefitLine {
                amount_minor: 2_000_000,
                date: d(2026, 5, 1),
            },
        ];
        let f = financials(
            eur(),
            Decimal::ZERO,
            &costs,
            &recorded,
            &derived,
            Some(3_500_000),
            &[(CostCategory::Cloud, 1_200_000)],
        );
        assert_eq!(f.total_cost.to_string(), "40000.00");
        assert_eq!(f.recorded_benefit.to_string(), "15000.00");
        assert_eq!(f.derived_benefit.to_string(), "40000.00");
        assert_eq!(f.net_value.to_string(), "15000.00");
        assert_eq!(f.roi, Some(Decimal::new(375, 3)));
        assert_eq!(f.payback_month, Some(d(2026, 5, 1)));
        // Zero discount: NPV is the plain sum.
        assert_eq!(f.npv.to_string(), "15000.00");
        assert_eq!(
            f.budget_variance.map(|m| m.to_string()),
            Some("-5000.00".into())
        );
        assert_eq!(f.budget_by_category[0].2.to_string(), "2000.00");
        assert_eq!(
            f.cost_by_phase,
            vec![
                (Phase::Poc, Money::from_minor(3_000_000, eur())),
                (
                    Phase::Industrialisation,
                    Money::from_minor(1_000_000, eur())
                )
            ]
        );
    }

    #[test]
    fn npv_at_a_known_rate() {
        // 12% a year, 1% a month. -1,000 now, +1,010 next month: NPV 0.
        // -1,000 now, +1,020.10 in two months: NPV 0 too (1.01^2 = 1.0201).
        let costs = [CostLine {
            amount_minor: 100_000,
            category: CostCategory::Other,
            phase: Phase::Poc,
            date: d(2026, 1, 1),
        }];
        let next = [BenefitLine {
            amount_minor: 101_000,
            date: d(2026, 2, 1),
        }];
        let f = financials(eur(), Decimal::new(12, 2), &costs, &next, &[], None, &[]);
        assert_eq!(f.npv.to_string(), "0.00");
        let later = [BenefitLine {
            amount_minor: 102_010,
            date: d(2026, 3, 20),
        }];
        let f = financials(eur(), Decimal::new(12, 2), &costs, &later, &[], None, &[]);
        assert_eq!(f.npv.to_string(), "0.00");
        // +2,000 in 12 months at 12%: 2000 / 1.01^12 = 1774.90; NPV 774.90.
        let year = [BenefitLine {
            amount_minor: 200_000,
            date: d(2027, 1, 1),
        }];
        let f = financials(eur(), Decimal::new(12, 2), &costs, &year, &[], None, &[]);
        assert_eq!(f.npv.to_string(), "774.90");
    }

    #[test]
    fn no_payback_and_no_cost() {
        let costs = [CostLine {
            amount_minor: 500,
            category: CostCategory::Other,
            phase: Phase::Ideation,
            date: d(2026, 1, 1),
        }];
        let f = financials(eur(), Decimal::ZERO, &costs, &[], &[], None, &[]);
        assert_eq!(f.payback_month, None);
        assert_eq!(f.roi, Some(Decimal::NEGATIVE_ONE));
        let none = financials(eur(), Decimal::ZERO, &[], &[], &[], None, &[]);
        assert_eq!(none.roi, None);
        assert_eq!(none.npv.to_string(), "0.00");
    }

    #[test]
    fn conversion_rounds_half_even_to_the_minor_unit() {
        // 100.25 x 1.1 = 110.275 -> 110.28 (8 is even); 100.35 x 1.1 =
        // 110.385 -> 110.38.
        let rate = parse_rate("1.1").unwrap();
        assert_eq!(
            convert(Decimal::new(10025, 2), rate, eur())
                .unwrap()
                .to_string(),
            "110.28"
        );
        assert_eq!(
            convert(Decimal::new(10035, 2), rate, eur())
                .unwrap()
                .to_string(),
            "110.38"
        );
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("abc").is_err());
    }

    #[test]
    fn periods_and_source_names() {
        assert_eq!(parse_period("2026-01").unwrap(), "2026-01");
        for bad in ["2026-13", "2026-1", "26-01", "2026/01", "", "2026-00"] {
            assert!(parse_period(bad).is_err(), "{bad}");
        }
        assert!(parse_source_name("sap-fi").is_ok());
        for bad in ["", "SAP", "1sap", "sap fi", &"a".repeat(65)] {
            assert!(parse_source_name(bad).is_err(), "{bad}");
        }
    }
}
