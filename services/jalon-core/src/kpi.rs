//! KPIs measured before and after: the white paper's "success indicators
//! must be measured before the project starts, and compared after". The gain
//! is computed here, not typed in.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use rust_decimal::{Decimal, RoundingStrategy, prelude::FromPrimitive};
use uuid::Uuid;

use crate::{
    Error, Result,
    gate::{Criterion, GateContext},
    project::{Phase, PhaseSpan},
    stats::{Summary, welch_95},
    values::Money,
};

macro_rules! kpi_enum {
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

kpi_enum!(
    /// What the unit measures.
    UnitKind { Duration => "DURATION", Percentage => "PERCENTAGE", Count => "COUNT", Currency => "CURRENCY", Ratio => "RATIO", Score => "SCORE" }
);
kpi_enum!(
    /// Which way is better.
    Direction { HigherIsBetter => "HIGHER_IS_BETTER", LowerIsBetter => "LOWER_IS_BETTER" }
);
kpi_enum!(
    /// What the KPI is about.
    Category { Productivity => "PRODUCTIVITY", Quality => "QUALITY", Financial => "FINANCIAL", Customer => "CUSTOMER", ModelPerformance => "MODEL_PERFORMANCE" }
);
kpi_enum!(
    /// How often the KPI is reviewed after deployment.
    Cadence { Weekly => "WEEKLY", Monthly => "MONTHLY", Quarterly => "QUARTERLY" }
);
kpi_enum!(
    /// When a measurement was taken.
    Stage { Baseline => "BASELINE", Poc => "POC", Pilot => "PILOT", PostDeployment => "POST_DEPLOYMENT" }
);
kpi_enum!(
    /// Where a measurement comes from.
    Source { Manual => "MANUAL", Integration => "INTEGRATION" }
);

impl Direction {
    /// +1 when higher is better, -1 when lower is.
    pub fn sign(&self) -> f64 {
        match self {
            Direction::HigherIsBetter => 1.0,
            Direction::LowerIsBetter => -1.0,
        }
    }
}

/// A KPI as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Kpi {
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub description: String,
    /// Free text, e.g. "seconds", "% of calls".
    pub unit: String,
    pub unit_kind: UnitKind,
    pub direction: Direction,
    pub category: Category,
    /// The project's primary KPI (the one the POC result is judged on).
    pub primary: bool,
    pub target: Option<f64>,
    pub method: String,
    pub cadence: Option<Cadence>,
    /// Money gained per unit of improvement (e.g. EUR 0.50 per second).
    pub value_per_unit: Option<Money>,
    /// How many units the improvement applies to per review period (e.g.
    /// 40,000 calls a month), exact.
    pub volume_per_period: Option<Decimal>,
    pub archived: bool,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub version: i64,
}

/// A measurement as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub id: Uuid,
    pub kpi_id: Uuid,
    pub value: f64,
    pub measure_time: DateTime<Utc>,
    pub period_start: Option<NaiveDate>,
    pub period_end: Option<NaiveDate>,
    pub stage: Stage,
    pub sample_size: Option<u64>,
    pub std_dev: Option<f64>,
    pub source: Source,
    pub external_ref: Option<String>,
    /// A baseline measured after the project entered POC.
    pub late_baseline: bool,
}

/// Checks a value against its unit: finite; a percentage within 0..=100; a
/// sample size of at least 1 and a finite, non-negative deviation.
pub fn check_value(
    kind: UnitKind,
    value: f64,
    sample_size: Option<u64>,
    std_dev: Option<f64>,
) -> std::result::Result<(), (&'static str, String)> {
    if !value.is_finite() {
        return Err(("value", "must be a finite number".into()));
    }
    if kind == UnitKind::Percentage && !(0.0..=100.0).contains(&value) {
        return Err(("value", "a percentage must be within 0 and 100".into()));
    }
    if sample_size == Some(0) {
        return Err(("sample_size", "must be at least 1 when set".into()));
    }
    if let Some(sd) = std_dev
        && (!sd.is_finite() || sd < 0.0)
    {
        return Err(("std_dev", "must be a finite, non-negative number".into()));
    }
    Ok(())
}

/// When the project entered `phase`, from its history.
pub fn entered(history: &[PhaseSpan], phase: Phase) -> Option<DateTime<Utc>> {
    history
        .iter()
        .find(|s| s.phase == phase)
        .map(|s| s.enter_time)
}

/// The rules of a new measurement's stage: a POST_DEPLOYMENT measurement
/// needs the project to have entered DEPLOYMENT by the time it was measured;
/// a BASELINE taken after the project entered POC is accepted but flagged
/// late. Returns the late flag.
pub fn check_stage(stage: Stage, measured: DateTime<Utc>, history: &[PhaseSpan]) -> Result<bool> {
    match stage {
        Stage::PostDeployment => match entered(history, Phase::Deployment) {
            Some(t) if measured >= t => Ok(false),
            _ => Err(Error::precondition(
                "NOT_DEPLOYED",
                "measurements/stage",
                "a POST_DEPLOYMENT measurement needs the project to have entered DEPLOYMENT before it was measured",
            )),
        },
        Stage::Baseline => Ok(entered(history, Phase::Poc).is_some_and(|t| measured > t)),
        Stage::Poc | Stage::Pilot => Ok(false),
    }
}

/// The review period a time falls in, as a label (`2027-03`, `2027-W11`,
/// `2027-Q1`) that sorts in time order.
pub fn period_of(cadence: Cadence, time: DateTime<Utc>) -> String {
    match cadence {
        Cadence::Monthly => format!("{:04}-{:02}", time.year(), time.month()),
        Cadence::Weekly => {
            let w = time.iso_week();
            format!("{:04}-W{:02}", w.year(), w.week())
        }
        Cadence::Quarterly => format!("{:04}-Q{}", time.year(), (time.month() - 1) / 3 + 1),
    }
}

/// The mean of one review period.
#[derive(Debug, Clone, PartialEq)]
pub struct PeriodMean {
    pub period: String,
    pub mean: f64,
    pub count: usize,
    /// The day of the period's first measurement (when money derived from
    /// it is counted).
    pub first_day: NaiveDate,
}

/// Welch's comparison of the current period with the baseline, signed so
/// that an improvement is positive.
#[derive(Debug, Clone, PartialEq)]
pub struct Significance {
    pub improvement: f64,
    pub low: f64,
    pub high: f64,
    pub degrees_of_freedom: f64,
    /// The whole 95% interval is an improvement.
    pub significant: bool,
}

/// What a KPI shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KpiResult {
    pub baseline: Option<f64>,
    pub baseline_count: usize,
    pub late_baseline: bool,
    /// The latest POC measurement.
    pub poc_result: Option<f64>,
    /// Mean of the latest review period after deployment.
    pub current: Option<f64>,
    pub current_period: Option<String>,
    /// Every review period after deployment, oldest first.
    pub series: Vec<PeriodMean>,
    /// (current - baseline), signed so that an improvement is positive.
    pub absolute_change: Option<f64>,
    /// absolute_change / |baseline|.
    pub relative_change: Option<f64>,
    /// (current - baseline) / (target - baseline): 1 means the target is
    /// reached.
    pub target_attainment: Option<f64>,
    pub target_met: Option<bool>,
    pub significance: Option<Significance>,
}

/// The running statistics of a KPI's measurements of one stage and review
/// period (the period is empty but after deployment): everything
/// [`result_from_stats`] needs, kept by each write instead of re-reading the
/// KPI's history.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub count: u64,
    pub sum: f64,
    /// The earliest and latest measurement times.
    pub first_time: DateTime<Utc>,
    pub last_time: DateTime<Utc>,
    /// The value of the latest measurement (of the last recorded one among
    /// those taken at the same latest time).
    pub last_value: f64,
    /// Baselines flagged late.
    pub late: u64,
    /// Measurements without a sample size or a deviation: one is enough to
    /// leave the pooled summary unknown.
    pub incomplete: u64,
    /// Sufficient statistics of the pooled summary: sum of sample sizes,
    /// sum of n x mean, and sum of (n - 1) x sd^2 + n x mean^2.
    pub pooled_n: f64,
    pub pooled_sum: f64,
    pub pooled_ss: f64,
}

impl Bucket {
    /// The bucket of one measurement.
    pub fn of(m: &Measurement) -> Bucket {
        let (incomplete, pooled_n, pooled_sum, pooled_ss) = match (m.sample_size, m.std_dev) {
            (Some(n), Some(sd)) => {
                let n = n as f64;
                (
                    0,
                    n,
                    n * m.value,
                    (n - 1.0) * sd * sd + n * m.value * m.value,
                )
            }
            _ => (1, 0.0, 0.0, 0.0),
        };
        Bucket {
            count: 1,
            sum: m.value,
            first_time: m.measure_time,
            last_time: m.measure_time,
            last_value: m.value,
            late: u64::from(m.late_baseline),
            incomplete,
            pooled_n,
            pooled_sum,
            pooled_ss,
        }
    }

    /// Adds `later`, whose measurements were recorded after this bucket's.
    pub fn merge(&mut self, later: &Bucket) {
        self.count += later.count;
        self.sum += later.sum;
        self.first_time = self.first_time.min(later.first_time);
        if later.last_time >= self.last_time {
            self.last_time = later.last_time;
            self.last_value = later.last_value;
        }
        self.late += later.late;
        self.incomplete += later.incomplete;
        self.pooled_n += later.pooled_n;
        self.pooled_sum += later.pooled_sum;
        self.pooled_ss += later.pooled_ss;
    }

    /// The mean of the bucket's values.
    pub fn mean(&self) -> f64 {
        self.sum / self.count as f64
    }

    /// The bucket's value as the results report it: when every measurement
    /// carries its sample size and deviation, the pooled (size-weighted)
    /// mean, the one the Welch interval is centred on; otherwise the mean of
    /// the values.
    pub fn value(&self) -> f64 {
        match self.pooled() {
            Some(s) => s.mean,
            None => self.mean(),
        }
    }

    /// The pooled summary (n, mean, sd) when every measurement carries a
    /// sample size and a deviation and there are at least two samples.
    pub fn pooled(&self) -> Option<Summary> {
        if self.incomplete > 0 || self.pooled_n < 2.0 {
            return None;
        }
        let n = self.pooled_n;
        let mean = self.pooled_sum / n;
        let ss = (self.pooled_ss - n * mean * mean).max(0.0);
        Some(Summary {
            n,
            mean,
            sd: (ss / (n - 1.0)).sqrt(),
        })
    }
}

/// Where a measurement's statistics are kept: its stage and, after
/// deployment, its review period under the KPI's cadence (monthly when
/// none is set).
pub fn bucket_key(cadence: Option<Cadence>, m: &Measurement) -> (Stage, String) {
    match m.stage {
        Stage::PostDeployment => (
            m.stage,
            period_of(cadence.unwrap_or(Cadence::Monthly), m.measure_time),
        ),
        stage => (stage, String::new()),
    }
}

/// A KPI's statistics, by stage and period.
pub type KpiStats = std::collections::BTreeMap<(Stage, String), Bucket>;

/// Adds measurements (in the order they were recorded) to `stats`.
pub fn accumulate<'a>(
    stats: &mut KpiStats,
    cadence: Option<Cadence>,
    measurements: impl IntoIterator<Item = &'a Measurement>,
) {
    for m in measurements {
        let one = Bucket::of(m);
        match stats.entry(bucket_key(cadence, m)) {
            std::collections::btree_map::Entry::Occupied(mut b) => b.get_mut().merge(&one),
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(one);
            }
        }
    }
}

/// Computes a KPI's result from its measurements.
pub fn result(kpi: &Kpi, measurements: &[Measurement]) -> KpiResult {
    let mut stats = KpiStats::new();
    accumulate(&mut stats, kpi.cadence, measurements);
    result_from_stats(kpi, &stats)
}

/// Computes a KPI's result from its statistics.
pub fn result_from_stats(kpi: &Kpi, stats: &KpiStats) -> KpiResult {
    let stage = |s: Stage| stats.get(&(s, String::new()));
    let baselines = stage(Stage::Baseline);
    let baseline = baselines.map(Bucket::value);
    let poc_result = stage(Stage::Poc).map(|b| b.last_value);
    let post: Vec<(&String, &Bucket)> = stats
        .iter()
        .filter(|((s, _), _)| *s == Stage::PostDeployment)
        .map(|((_, p), b)| (p, b))
        .collect();
    let series: Vec<PeriodMean> = post
        .iter()
        .map(|(period, b)| PeriodMean {
            period: (*period).clone(),
            mean: b.value(),
            count: usize::try_from(b.count).unwrap_or(usize::MAX),
            first_day: b.first_time.date_naive(),
        })
        .collect();
    let current = series.last().map(|p| p.mean);
    let sign = kpi.direction.sign();
    let absolute_change = baseline.zip(current).map(|(b, c)| sign * (c - b));
    let relative_change = absolute_change
        .zip(baseline)
        .and_then(|(change, b)| (b != 0.0).then(|| change / b.abs()));
    let target_attainment = match (baseline, current, kpi.target) {
        (Some(b), Some(c), Some(t)) if t != b => Some((c - b) / (t - b)),
        _ => None,
    };
    let target_met = current.zip(kpi.target).map(|(c, t)| sign * (c - t) >= 0.0);
    let significance = match (
        baselines.and_then(Bucket::pooled),
        post.last().and_then(|(_, b)| b.pooled()),
    ) {
        (Some(before), Some(after)) => welch_95(before, after).map(|(diff, lo, hi, df)| {
            let (low, high) = if sign > 0.0 { (lo, hi) } else { (-hi, -lo) };
            Significance {
                improvement: sign * diff,
                low,
                high,
                degrees_of_freedom: df,
                significant: low > 0.0,
            }
        }),
        _ => None,
    };
    KpiResult {
        baseline,
        baseline_count: baselines.map_or(0, |b| usize::try_from(b.count).unwrap_or(usize::MAX)),
        late_baseline: baselines.is_some_and(|b| b.late > 0),
        poc_result,
        current,
        current_period: series.last().map(|p| p.period.clone()),
        series,
        absolute_change,
        relative_change,
        target_attainment,
        target_met,
        significance,
    }
}

/// The latest post-deployment measurement time in `stats`.
pub fn last_post_deployment(stats: &KpiStats) -> Option<DateTime<Utc>> {
    stats
        .iter()
        .filter(|((s, _), _)| *s == Stage::PostDeployment)
        .map(|(_, b)| b.last_time)
        .max()
}

/// A KPI underperforms when its last two review periods are both worse than
/// its baseline, or both below its target.
pub fn underperforming(kpi: &Kpi, r: &KpiResult) -> bool {
    if r.series.len() < 2 {
        return false;
    }
    let sign = kpi.direction.sign();
    let last_two = &r.series[r.series.len() - 2..];
    let worse_than_baseline = r
        .baseline
        .is_some_and(|b| last_two.iter().all(|p| sign * (p.mean - b) < 0.0));
    let below_target = kpi
        .target
        .is_some_and(|t| last_two.iter().all(|p| sign * (p.mean - t) < 0.0));
    worse_than_baseline || below_target
}

/// The money an improvement is worth over one review period: improvement x
/// value per unit x volume, rounded half-even to the currency's minor unit.
/// Negative when the KPI got worse. An amount beyond 64 bits saturates: the
/// write that would store such a KPI or measurement is refused by the
/// project's total check ([`crate::finance::check_project_totals`]), so
/// only a read of data older than that check can meet one.
pub fn monetised(kpi: &Kpi, improvement: f64) -> Option<Money> {
    let value = kpi.value_per_unit?;
    let volume = kpi.volume_per_period?;
    if !improvement.is_finite() {
        return None;
    }
    let digits = value.currency().minor_unit_digits();
    let minor = Decimal::from_f64(improvement)
        .and_then(|i| i.checked_mul(value.amount()))
        .and_then(|x| x.checked_mul(volume))
        .map(|x| x.round_dp_with_strategy(digits, RoundingStrategy::MidpointNearestEven))
        .and_then(|x| x.checked_mul(Decimal::from(10_i64.pow(digits))))
        .and_then(|x| x.trunc().to_string().parse::<i64>().ok())
        .unwrap_or_else(|| {
            let negative =
                (improvement < 0.0) ^ (value.amount() < Decimal::ZERO) ^ (volume < Decimal::ZERO);
            if negative { i64::MIN } else { i64::MAX }
        });
    Some(Money::from_minor(minor, value.currency()))
}

/// The money a monetised KPI earned, one line per review period after
/// deployment: the period's improvement over the baseline, monetised.
pub fn derived_benefits(kpi: &Kpi, r: &KpiResult) -> Vec<(NaiveDate, Money)> {
    let Some(baseline) = r.baseline else {
        return Vec::new();
    };
    let sign = kpi.direction.sign();
    r.series
        .iter()
        .filter_map(|p| monetised(kpi, sign * (p.mean - baseline)).map(|m| (p.first_day, m)))
        .collect()
}

/// What the KPI gate criteria look at, per active KPI of the project.
#[derive(Debug, Clone, PartialEq)]
pub struct KpiFacts {
    pub name: String,
    pub category: Category,
    pub primary: bool,
    pub direction: Direction,
    pub target: Option<f64>,
    pub cadence: Option<Cadence>,
    pub baseline_count: usize,
    pub poc_result: Option<f64>,
}

fn kpi_baseline(ctx: &GateContext) -> std::result::Result<bool, String> {
    if ctx.from != Phase::Ideation {
        return Ok(false);
    }
    if ctx
        .kpis
        .iter()
        .any(|k| k.baseline_count > 0 && k.target.is_some())
    {
        Ok(true)
    } else {
        Err(
            "no active KPI has both a target and a baseline measurement: measure before you start"
                .into(),
        )
    }
}

fn poc_result(ctx: &GateContext) -> std::result::Result<bool, String> {
    if ctx.from != Phase::Poc {
        return Ok(false);
    }
    let judged: Vec<&KpiFacts> = ctx
        .kpis
        .iter()
        .filter(|k| k.primary || k.category == Category::ModelPerformance)
        .collect();
    let recorded: Vec<&KpiFacts> = judged
        .iter()
        .copied()
        .filter(|k| k.poc_result.is_some())
        .collect();
    if recorded.is_empty() {
        return Err("no POC result is recorded on a primary or model-performance KPI".into());
    }
    let below: Vec<String> = recorded
        .iter()
        .filter_map(|k| {
            let (value, target) = (k.poc_result?, k.target?);
            (k.direction.sign() * (value - target) < 0.0)
                .then(|| format!("{} is {value} against a target of {target}", k.name))
        })
        .collect();
    if below.is_empty() {
        Ok(true)
    } else {
        Err(format!(
            "the POC result is below target: {}",
            below.join("; ")
        ))
    }
}

fn kpi_cadence(ctx: &GateContext) -> std::result::Result<bool, String> {
    if ctx.from != Phase::Industrialisation {
        return Ok(false);
    }
    let missing: Vec<&str> = ctx
        .kpis
        .iter()
        .filter(|k| k.cadence.is_none())
        .map(|k| k.name.as_str())
        .collect();
    if missing.is_empty() {
        Ok(true)
    } else {
        Err(format!(
            "KPIs without a review cadence: {}",
            missing.join(", ")
        ))
    }
}

/// The KPI criteria, appended to the gate engine's list.
pub fn gate_criteria() -> Vec<Criterion> {
    vec![
        Criterion {
            key: "KPI_BASELINE",
            description: "leaving IDEATION: an active KPI with a target and a baseline measurement",
            waivable: false,
            check: kpi_baseline,
        },
        Criterion {
            key: "POC_RESULT",
            description: "leaving POC: the POC result recorded on a primary or model-performance KPI, at or above target",
            waivable: true,
            check: poc_result,
        },
        Criterion {
            key: "KPI_CADENCE",
            description: "entering DEPLOYMENT: every active KPI has a review cadence",
            waivable: false,
            check: kpi_cadence,
        },
    ]
}

#[cfg(test)]
mod tests;
