//! The portfolio: what a project adds to its organisation's roll-ups, which
//! alerts it raises, and how the roll-ups read as a summary.
//!
//! Each project is reduced to a [`Figures`] row and a set of named integer
//! *contributions* (one project in IDEATION/ACTIVE, 1,500.00 EUR of cloud
//! cost, a 42-day stay in POC, ...). The organisation's counters are the sums
//! of its projects' contributions, so a summary of the whole organisation
//! reads a few hundred counters, and a filtered one sums the contributions of
//! the matching projects: both go through [`summarise`].

use std::collections::BTreeMap;

use chrono::{DateTime, Days, Months, NaiveDate, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::{
    assessment::Concern,
    finance::CostCategory,
    gate::Outcome,
    kpi::Cadence,
    project::{AiActTier, Phase, PhaseSpan, Status},
    values::{CurrencyCode, Money},
};

/// Days a project may stay in a phase before its gate is overdue, unless the
/// organisation sets another threshold (the study's typical project length).
pub const DEFAULT_GATE_OVERDUE_DAYS: u32 = 365;

/// A gate-overdue threshold: 1 to 3650 days.
pub fn parse_gate_overdue_days(raw: i32) -> Result<u32, String> {
    match u32::try_from(raw) {
        Ok(days @ 1..=3650) => Ok(days),
        _ => Err(format!("must be between 1 and 3650 days, got {raw}")),
    }
}

macro_rules! alert_kinds {
    ($($variant:ident => $text:literal, $bit:literal, $static_:literal;)+) => {
        /// What an alert is about.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum AlertKind { $($variant),+ }

        impl AlertKind {
            pub const ALL: &'static [AlertKind] = &[$(AlertKind::$variant),+];

            pub fn as_str(&self) -> &'static str {
                match self { $(AlertKind::$variant => $text),+ }
            }

            /// The kind's bit in a project's stored alert set.
            pub fn bit(&self) -> i32 {
                match self { $(AlertKind::$variant => 1 << $bit),+ }
            }

            /// Raised and cleared by writes (else by the clock passing a
            /// deadline kept in the figures).
            pub fn is_static(&self) -> bool {
                match self { $(AlertKind::$variant => $static_),+ }
            }
        }

        impl std::str::FromStr for AlertKind {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok(AlertKind::$variant),)+
                    other => Err(format!("unknown AlertKind '{other}'")),
                }
            }
        }
    };
}

alert_kinds!(
    NoSponsor => "NO_SPONSOR", 0, true;
    SponsorInactive => "SPONSOR_INACTIVE", 1, true;
    KpiWithoutBaseline => "KPI_WITHOUT_BASELINE", 2, true;
    LateBaseline => "LATE_BASELINE", 3, true;
    GateOverdue => "GATE_OVERDUE", 4, false;
    ReviewOverdue => "REVIEW_OVERDUE", 5, false;
    KpiUnderperforming => "KPI_UNDERPERFORMING", 6, true;
    BudgetOverrun => "BUDGET_OVERRUN", 7, true;
    ConditionOverdue => "CONDITION_OVERDUE", 8, false;
    ProhibitedActive => "PROHIBITED_ACTIVE", 9, true;
    LeadInactive => "LEAD_INACTIVE", 10, true;
    NoKpi => "NO_KPI", 11, true;
);

/// A project's status leaves room for alerts (it is not stopped or retired).
pub fn is_live(status: Status) -> bool {
    matches!(
        status,
        Status::Active | Status::OnHold | Status::InProduction
    )
}

/// What the portfolio needs to know of one KPI.
#[derive(Debug, Clone, PartialEq)]
pub struct KpiFacts {
    pub name: String,
    pub primary: bool,
    pub baseline_count: usize,
    pub late_baseline: bool,
    pub cadence: Option<Cadence>,
    /// The latest post-deployment measurement.
    pub last_post_deployment: Option<DateTime<Utc>>,
    /// Relative change vs baseline, signed so that an improvement is positive.
    pub relative_change: Option<f64>,
}

/// What the portfolio needs to know of a project's money.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MoneyFacts {
    /// The organisation's currency, which every amount here is in (alert
    /// reasons name amounts in it).
    pub currency: Option<CurrencyCode>,
    pub budget_minor: Option<i64>,
    pub cost_by_category: Vec<(CostCategory, i64)>,
    pub recorded_benefit_minor: i64,
    pub derived_benefit_minor: i64,
    pub paid_back: bool,
}

/// Everything a project contributes to the portfolio, gathered by the store.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectFacts {
    pub id: Uuid,
    pub name: String,
    pub business_unit: String,
    pub phase: Phase,
    pub status: Status,
    pub ai_act_tier: AiActTier,
    pub sponsor: Option<PersonFacts>,
    pub lead: Option<PersonFacts>,
    pub create_time: DateTime<Utc>,
    pub phase_history: Vec<PhaseSpan>,
    pub underperforming: bool,
    /// Readiness of the current phase, 0 to 1.
    pub readiness: f64,
    pub open_must_items: u32,
    /// Open HIGH-risk items per (phase, concern).
    pub open_high_risk: Vec<(Phase, Concern, i64)>,
    /// Every gate decision: the phase it closed and its outcome.
    pub decisions: Vec<(Phase, Outcome)>,
    /// Earliest due date of an open condition.
    pub open_condition_due: Option<NaiveDate>,
    pub kpis: Vec<KpiFacts>,
    pub money: MoneyFacts,
}

/// The sponsor or the lead as the alerts see them.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonFacts {
    pub id: Uuid,
    pub active: bool,
    pub display_name: String,
    /// The day (UTC) they were deactivated, while inactive.
    pub left_on: Option<NaiveDate>,
}

impl PersonFacts {
    /// Why an alert about this person, gone from `function` ("sponsor",
    /// "lead"), is raised, in words a director reads: their name and the
    /// day they left, never an id ("Grace Hopper, sponsor, left on
    /// 2026-12-01").
    pub fn gone_reason(&self, function: &str) -> String {
        match self.left_on {
            Some(day) => format!("{}, {function}, left on {day}", self.display_name),
            None => format!("{}, {function}, is no longer active", self.display_name),
        }
    }
}

/// The stored row of a project's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub project_id: Uuid,
    pub name: String,
    pub business_unit: String,
    pub sponsor_id: Option<Uuid>,
    pub lead_id: Option<Uuid>,
    pub phase: Phase,
    pub status: Status,
    pub ai_act_tier: AiActTier,
    pub project_create_time: DateTime<Utc>,
    pub phase_enter_time: DateTime<Utc>,
    /// `phase_enter_time` while the project waits for a gate decision.
    pub gate_watch_since: Option<DateTime<Utc>>,
    /// When the next post-deployment measurement is due.
    pub review_due_time: Option<DateTime<Utc>>,
    pub condition_due_date: Option<NaiveDate>,
    pub readiness: f64,
    pub open_must_items: u32,
    pub kpi_gain: Option<f64>,
    pub budget_minor: Option<i64>,
    pub cost_minor: i64,
    pub benefit_minor: i64,
    /// ROI in millionths, rounded toward zero; none without cost.
    pub roi_micros: Option<i64>,
    pub paid_back: bool,
    /// The write-raised alerts (see [`AlertKind::bit`]).
    pub alert_bits: i32,
    pub static_alert_count: i32,
}

/// A write-raised alert with its reason.
#[derive(Debug, Clone, PartialEq)]
pub struct RaisedAlert {
    pub kind: AlertKind,
    pub reason: String,
}

/// Ordinal of a phase (IDEATION = 0), for sorting.
pub fn phase_rank(phase: Phase) -> i16 {
    match phase {
        Phase::Ideation => 0,
        Phase::Poc => 1,
        Phase::Industrialisation => 2,
        Phase::Deployment => 3,
    }
}

/// When a post-deployment measurement is due after `last`.
pub fn next_review(last: DateTime<Utc>, cadence: Cadence) -> DateTime<Utc> {
    match cadence {
        Cadence::Weekly => last.checked_add_days(Days::new(7)),
        Cadence::Monthly => last.checked_add_months(Months::new(1)),
        Cadence::Quarterly => last.checked_add_months(Months::new(3)),
    }
    .unwrap_or(last)
}

fn roi_micros(cost: i64, benefit: i64) -> Option<i64> {
    (cost != 0).then(|| {
        let micros = (i128::from(benefit) - i128::from(cost)) * 1_000_000 / i128::from(cost);
        i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX })
    })
}

/// The write-raised alerts of a project.
pub fn static_alerts(facts: &ProjectFacts, cost_minor: i64) -> Vec<RaisedAlert> {
    let mut out = Vec::new();
    if !is_live(facts.status) {
        return out;
    }
    let mut raise = |kind, reason: String| out.push(RaisedAlert { kind, reason });
    match &facts.sponsor {
        None => raise(
            AlertKind::NoSponsor,
            "the project has no business sponsor".into(),
        ),
        Some(s) if !s.active => raise(AlertKind::SponsorInactive, s.gone_reason("sponsor")),
        Some(_) => {}
    }
    if let Some(lead) = facts.lead.as_ref().filter(|l| !l.active) {
        raise(AlertKind::LeadInactive, lead.gone_reason("lead"));
    }
    if facts.kpis.is_empty() {
        raise(
            AlertKind::NoKpi,
            "no KPI is defined: the gain cannot be measured (define one and measure its baseline before the POC)"
                .into(),
        );
    }
    let without: Vec<&str> = facts
        .kpis
        .iter()
        .filter(|k| k.baseline_count == 0)
        .map(|k| k.name.as_str())
        .collect();
    if !without.is_empty() {
        raise(
            AlertKind::KpiWithoutBaseline,
            format!("no baseline measured for: {}", without.join(", ")),
        );
    }
    let late: Vec<&str> = facts
        .kpis
        .iter()
        .filter(|k| k.late_baseline)
        .map(|k| k.name.as_str())
        .collect();
    if !late.is_empty() {
        raise(
            AlertKind::LateBaseline,
            format!(
                "baseline measured after the project started for: {}",
                late.join(", ")
            ),
        );
    }
    if facts.underperforming {
        raise(
            AlertKind::KpiUnderperforming,
            "a KPI's last two review periods fell below its baseline or target".into(),
        );
    }
    if let Some(budget) = facts.money.budget_minor
        && cost_minor > budget
    {
        raise(AlertKind::BudgetOverrun, {
            let amount = |minor: i64| match facts.money.currency {
                Some(c) => format!("{} {}", c.as_str(), Money::from_minor(minor, c)),
                None => format!("{minor} minor units"),
            };
            format!(
                "costs of {} exceed the budget of {} by {}",
                amount(cost_minor),
                amount(budget),
                amount(cost_minor.saturating_sub(budget))
            )
        });
    }
    if facts.ai_act_tier == AiActTier::Prohibited {
        raise(
            AlertKind::ProhibitedActive,
            format!(
                "the AI Act tier is PROHIBITED and the project is {}",
                facts.status
            ),
        );
    }
    out
}

/// Reduces a project to its figures, its contributions to the counters, and
/// its write-raised alerts.
pub fn reduce(facts: &ProjectFacts) -> (Figures, BTreeMap<String, i64>, Vec<RaisedAlert>) {
    let live = is_live(facts.status);
    let phase_enter_time = facts
        .phase_history
        .iter()
        .rev()
        .find(|s| s.phase == facts.phase)
        .map_or(facts.create_time, |s| s.enter_time);
    // Within MAX_MINOR_UNITS on data Jalon wrote (the write checks it);
    // saturating so that nothing else can panic.
    let cost_minor = facts
        .money
        .cost_by_category
        .iter()
        .fold(0_i64, |sum, (_, v)| sum.saturating_add(*v));
    let benefit_minor = facts
        .money
        .recorded_benefit_minor
        .saturating_add(facts.money.derived_benefit_minor);
    let kpi_gain = facts
        .kpis
        .iter()
        .filter(|k| k.primary)
        .chain(facts.kpis.iter().filter(|k| !k.primary))
        .find_map(|k| k.relative_change);
    let review_due_time = if facts.phase == Phase::Deployment
        && matches!(facts.status, Status::Active | Status::InProduction)
    {
        facts
            .kpis
            .iter()
            .map(|k| {
                let last = k
                    .last_post_deployment
                    .map_or(phase_enter_time, |t| t.max(phase_enter_time));
                next_review(last, k.cadence.unwrap_or(Cadence::Monthly))
            })
            .min()
    } else {
        None
    };
    let alerts = static_alerts(facts, cost_minor);
    let alert_bits = alerts.iter().fold(0, |bits, a| bits | a.kind.bit());
    let figures = Figures {
        project_id: facts.id,
        name: facts.name.clone(),
        business_unit: facts.business_unit.clone(),
        sponsor_id: facts.sponsor.as_ref().map(|s| s.id),
        lead_id: facts.lead.as_ref().map(|l| l.id),
        phase: facts.phase,
        status: facts.status,
        ai_act_tier: facts.ai_act_tier,
        project_create_time: facts.create_time,
        phase_enter_time,
        gate_watch_since: (facts.status == Status::Active).then_some(phase_enter_time),
        review_due_time,
        condition_due_date: if live { facts.open_condition_due } else { None },
        readiness: facts.readiness,
        open_must_items: facts.open_must_items,
        kpi_gain,
        budget_minor: facts.money.budget_minor,
        cost_minor,
        benefit_minor,
        roi_micros: roi_micros(cost_minor, benefit_minor),
        paid_back: facts.money.paid_back,
        alert_bits,
        static_alert_count: i32::try_from(alerts.len()).unwrap_or(i32::MAX),
    };

    let mut c: BTreeMap<String, i64> = BTreeMap::new();
    let mut add = |name: String, value: i64| {
        if value != 0 {
            *c.entry(name).or_default() += value;
        }
    };
    add("projects".into(), 1);
    add(format!("ps:{}:{}", facts.phase, facts.status), 1);
    add(format!("tier:{}", facts.ai_act_tier), 1);
    let mut entered: Vec<Phase> = facts.phase_history.iter().map(|s| s.phase).collect();
    entered.sort();
    entered.dedup();
    for p in entered {
        add(format!("entered:{p}"), 1);
    }
    for s in &facts.phase_history {
        if let Some(leave) = s.leave_time {
            let days = (leave - s.enter_time).num_days().max(0);
            add(format!("stay:{}:{days}", s.phase), 1);
        }
    }
    for phase in Phase::ALL {
        let at_gate: Vec<Outcome> = facts
            .decisions
            .iter()
            .filter(|(p, _)| p == phase)
            .map(|(_, o)| *o)
            .collect();
        if at_gate.is_empty() {
            continue;
        }
        add(format!("decided:{phase}"), 1);
        let passed = at_gate
            .iter()
            .any(|o| matches!(o, Outcome::Go | Outcome::ConditionalGo));
        add(format!("passed:{phase}"), i64::from(passed));
        add(
            format!("killed:{phase}"),
            i64::from(at_gate.contains(&Outcome::Kill)),
        );
        if *phase == Phase::Deployment {
            add("production".into(), i64::from(passed));
        }
        for o in at_gate {
            add(format!("outcome:{phase}:{}", o.as_str()), 1);
        }
    }
    add("budget".into(), facts.money.budget_minor.unwrap_or(0));
    add("cost".into(), cost_minor);
    add("with_cost".into(), i64::from(cost_minor != 0));
    for (category, amount) in &facts.money.cost_by_category {
        add(format!("cost:{}", category.as_str()), *amount);
    }
    add(
        "benefit_recorded".into(),
        facts.money.recorded_benefit_minor,
    );
    add("benefit_derived".into(), facts.money.derived_benefit_minor);
    // Bounds every partial sum of benefit_derived (negative for a KPI that
    // worsened): the write checks it against the organisation's limit.
    add(
        "benefit_derived_abs".into(),
        facts.money.derived_benefit_minor.saturating_abs(),
    );
    add("paid_back".into(), i64::from(facts.money.paid_back));
    if live {
        for (phase, concern, n) in &facts.open_high_risk {
            add(format!("heat:{phase}:{}", concern.as_str()), *n);
        }
    }
    for a in &alerts {
        add(format!("alert:{}", a.kind.as_str()), 1);
    }
    (figures, c, alerts)
}

/// Whether a counter holds money (checked against
/// [`crate::finance::MAX_ORGANISATION_MINOR_UNITS`] by the writes).
pub fn is_money_counter(name: &str) -> bool {
    matches!(
        name,
        "budget" | "cost" | "benefit_recorded" | "benefit_derived" | "benefit_derived_abs"
    ) || name.starts_with("cost:")
}

/// Nearest-rank percentile of a histogram of whole days.
pub fn percentile(histogram: &BTreeMap<i64, i64>, p: f64) -> i64 {
    let n: i64 = histogram.values().sum();
    if n == 0 {
        return 0;
    }
    let rank = ((p * n as f64).ceil() as i64).clamp(1, n);
    let mut seen = 0;
    for (days, count) in histogram {
        seen += count;
        if seen >= rank {
            return *days;
        }
    }
    histogram.keys().next_back().copied().unwrap_or(0)
}

/// A ratio as a decimal string with `dp` digits; empty without denominator.
pub fn ratio(numerator: i64, denominator: i64, dp: u32) -> String {
    if denominator == 0 {
        return String::new();
    }
    crate::values::fixed_decimal(Decimal::from(numerator) / Decimal::from(denominator), dp)
}

/// One step of the funnel.
#[derive(Debug, Clone, PartialEq)]
pub struct FunnelStage {
    pub phase: Phase,
    pub entered: i64,
    pub decided: i64,
    pub passed: i64,
    pub killed: i64,
    pub outcomes: Vec<(Outcome, i64)>,
    pub kill_rate: String,
}

/// Time spent in a phase.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseDuration {
    pub phase: Phase,
    pub stays: i64,
    pub median_days: i64,
    pub p90_days: i64,
}

/// The portfolio's money.
#[derive(Debug, Clone, PartialEq)]
pub struct PortfolioMoney {
    pub budget: Money,
    pub cost: Money,
    pub cost_by_category: Vec<(CostCategory, Money)>,
    pub recorded_benefit: Money,
    pub derived_benefit: Money,
    pub net_value: Money,
    pub roi: String,
    pub paid_back_projects: i64,
    pub projects_with_cost: i64,
    /// Cost by cost centre over the projects covered, in
    /// [`cost_centre_breakdown`]'s order; filled by the store (it is read
    /// from the cost-centre aggregate, not from the counters).
    pub cost_by_cost_centre: Vec<CostCentreCost>,
}

/// The cost of a cost centre over a set of projects.
#[derive(Debug, Clone, PartialEq)]
pub struct CostCentreCost {
    /// "" for lines booked without a cost centre.
    pub cost_centre: String,
    /// Net of reversals.
    pub cost: Money,
    /// Projects with at least one cost line booked to it (a line reversed
    /// in full still counts).
    pub project_count: i64,
}

/// Cost centres with their cost (minor units) and project count, in the
/// order the portfolio shows them: largest cost first, then by cost centre
/// (byte order, so that both databases agree).
pub fn cost_centre_breakdown(
    rows: impl IntoIterator<Item = (String, i64, i64)>,
    currency: CurrencyCode,
) -> Vec<CostCentreCost> {
    let mut rows: Vec<(String, i64, i64)> = rows.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    rows.into_iter()
        .map(|(cost_centre, minor, project_count)| CostCentreCost {
            cost_centre,
            cost: Money::from_minor(minor, currency),
            project_count,
        })
        .collect()
}

/// The portfolio summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub project_count: i64,
    pub by_phase_status: Vec<(Phase, Status, i64)>,
    pub funnel: Vec<FunnelStage>,
    pub reached_production: i64,
    pub poc_to_production_share: String,
    pub time_in_phase: Vec<PhaseDuration>,
    pub money: PortfolioMoney,
    pub tiers: Vec<(AiActTier, i64)>,
    pub risk_heat_map: Vec<(Phase, Concern, i64)>,
    pub alerts: Vec<(AlertKind, i64)>,
}

/// Reads summed counters (and the deadline alerts counted now) as a summary.
pub fn summarise(
    counters: &BTreeMap<String, i64>,
    deadline_alerts: &[(AlertKind, i64)],
    currency: CurrencyCode,
) -> Summary {
    let get = |name: &str| counters.get(name).copied().unwrap_or(0);
    let money = |minor: i64| Money::from_minor(minor, currency);
    let mut by_phase_status = Vec::new();
    for phase in Phase::ALL {
        for status in Status::ALL {
            let n = get(&format!("ps:{phase}:{status}"));
            if n != 0 {
                by_phase_status.push((*phase, *status, n));
            }
        }
    }
    let funnel: Vec<FunnelStage> = Phase::ALL
        .iter()
        .map(|phase| {
            let decided = get(&format!("decided:{phase}"));
            let killed = get(&format!("killed:{phase}"));
            FunnelStage {
                phase: *phase,
                entered: get(&format!("entered:{phase}")),
                decided,
                passed: get(&format!("passed:{phase}")),
                killed,
                outcomes: Outcome::ALL
                    .iter()
                    .map(|o| (*o, get(&format!("outcome:{phase}:{}", o.as_str()))))
                    .collect(),
                kill_rate: ratio(killed, decided, 4),
            }
        })
        .collect();
    let time_in_phase = Phase::ALL
        .iter()
        .map(|phase| {
            let prefix = format!("stay:{phase}:");
            let histogram: BTreeMap<i64, i64> = counters
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .filter_map(|(k, v)| Some((k[prefix.len()..].parse().ok()?, *v)))
                .filter(|(_, v)| *v != 0)
                .collect();
            PhaseDuration {
                phase: *phase,
                stays: histogram.values().sum(),
                median_days: percentile(&histogram, 0.5),
                p90_days: percentile(&histogram, 0.9),
            }
        })
        .collect();
    let cost = get("cost");
    let recorded = get("benefit_recorded");
    let derived = get("benefit_derived");
    // Within 64 bits: each counter is kept within
    // MAX_ORGANISATION_MINOR_UNITS by the writes (saturating on data that
    // was not).
    let benefit = recorded.saturating_add(derived);
    let reached_production = get("production");
    let summary_money = PortfolioMoney {
        budget: money(get("budget")),
        cost: money(cost),
        cost_by_category: CostCategory::ALL
            .iter()
            .map(|c| (*c, money(get(&format!("cost:{}", c.as_str())))))
            .collect(),
        recorded_benefit: money(recorded),
        derived_benefit: money(derived),
        net_value: money(benefit.saturating_sub(cost)),
        roi: crate::finance::roi_text(crate::finance::roi(cost, benefit)),
        paid_back_projects: get("paid_back"),
        projects_with_cost: get("with_cost"),
        cost_by_cost_centre: Vec::new(),
    };
    let mut risk_heat_map = Vec::new();
    for phase in Phase::ALL {
        for concern in Concern::ALL {
            risk_heat_map.push((
                *phase,
                *concern,
                get(&format!("heat:{phase}:{}", concern.as_str())),
            ));
        }
    }
    let alerts = AlertKind::ALL
        .iter()
        .map(|k| {
            let n = if k.is_static() {
                get(&format!("alert:{}", k.as_str()))
            } else {
                deadline_alerts
                    .iter()
                    .find(|(d, _)| d == k)
                    .map_or(0, |(_, n)| *n)
            };
            (*k, n)
        })
        .collect();
    Summary {
        project_count: get("projects"),
        by_phase_status,
        funnel,
        reached_production,
        poc_to_production_share: ratio(
            reached_production,
            get(&format!("entered:{}", Phase::Poc)),
            4,
        ),
        time_in_phase,
        money: summary_money,
        tiers: AiActTier::ALL
            .iter()
            .map(|t| (*t, get(&format!("tier:{t}"))))
            .collect(),
        risk_heat_map,
        alerts,
    }
}

/// The alerts a figures row carries at `now`, with when each began and why.
pub fn alerts_now(
    f: &Figures,
    now: DateTime<Utc>,
    gate_overdue_days: u32,
) -> Vec<(AlertKind, DateTime<Utc>, String)> {
    let mut out = Vec::new();
    if let Some(since) = f.gate_watch_since {
        let due = since
            .checked_add_days(Days::new(u64::from(gate_overdue_days)))
            .unwrap_or(since);
        if due < now {
            out.push((
                AlertKind::GateOverdue,
                due,
                format!(
                    "in {} for {} days, more than the {gate_overdue_days} allowed before a gate decision",
                    f.phase,
                    (now - since).num_days()
                ),
            ));
        }
    }
    if let Some(due) = f.review_due_time
        && due < now
    {
        out.push((
            AlertKind::ReviewOverdue,
            due,
            format!(
                "a post-deployment KPI measurement was due on {}",
                due.date_naive()
            ),
        ));
    }
    if let Some(due) = f.condition_due_date
        && due < now.date_naive()
    {
        out.push((
            AlertKind::ConditionOverdue,
            due.and_hms_opt(0, 0, 0).map_or(now, |d| d.and_utc()),
            format!("a condition of a CONDITIONAL_GO was due on {due} and is still open"),
        ));
    }
    out
}

/// The cut-off of the gate-overdue alert: projects watched since before it
/// are overdue at `now`.
pub fn gate_cutoff(now: DateTime<Utc>, gate_overdue_days: u32) -> DateTime<Utc> {
    now.checked_sub_days(Days::new(u64::from(gate_overdue_days)))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests;
