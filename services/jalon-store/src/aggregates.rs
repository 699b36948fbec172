//! The running aggregates a project's figures are computed from, kept by
//! the writes in their transaction (issue 11): money by month, nature,
//! category and phase, and cost by cost centre; KPI statistics by stage
//! and review period; assessment counts by phase and concern. A write adds
//! what it changes to the few rows it touches (read, merged with checked
//! sums, written back, under the project's row lock); the refresh of a
//! project's figures reads its aggregate rows, never its history.
//! [`recompute`] rebuilds them from the raw rows (what `jalon
//! rebuild-portfolio` and the tests compare with).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{Datelike, NaiveDate};
use jalon_core::{
    Error, Result,
    assessment::{ItemCounts, QuestionKind},
    finance::{BenefitLine, CostCategory, MoneyTotals},
    kpi::{self, Bucket, Kpi, KpiStats, Measurement, Stage},
    project::Phase,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    sea_query::{Expr, ExprTrait, OnConflict},
};
use uuid::Uuid;

use crate::{
    CHUNK,
    entity::{
        assessment_count as count, assessment_item as item, kpi_stats as stat,
        project_cost_centre as centre, project_money as money,
    },
    error::db_error,
    error::unknown,
};

/// A money row's nature.
pub(crate) const COST: &str = "COST";
pub(crate) const BENEFIT: &str = "BENEFIT";

/// The largest amount a money row may reach, in minor units: a month's
/// cost of one category and phase is part of the project's total, which
/// is kept within the same limit.
const MAX_TOTAL: i64 = jalon_core::values::MAX_MINOR_UNITS;

/// The first day of `d`'s month: money is bucketed by month.
pub(crate) fn month_of(d: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(d.year(), d.month(), 1).unwrap_or(d)
}

/// The key of a money row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct MoneyKey {
    pub project_id: Uuid,
    pub nature: &'static str,
    pub month: NaiveDate,
    /// Empty for a benefit.
    pub category: &'static str,
    /// Empty for a benefit.
    pub phase: &'static str,
}

impl MoneyKey {
    pub fn cost(project_id: Uuid, date: NaiveDate, category: CostCategory, phase: Phase) -> Self {
        Self {
            project_id,
            nature: COST,
            month: month_of(date),
            category: category.as_str(),
            phase: phase.as_str(),
        }
    }

    pub fn benefit(project_id: Uuid, date: NaiveDate) -> Self {
        Self {
            project_id,
            nature: BENEFIT,
            month: month_of(date),
            category: "",
            phase: "",
        }
    }
}

/// A line of money to add to the aggregates: its money row's key, its
/// amount and, for a cost, its cost centre ("" for a line without one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MoneyLine {
    pub key: MoneyKey,
    pub amount_minor: i64,
    /// None for a benefit.
    pub cost_centre: Option<String>,
}

impl MoneyLine {
    /// A cost line (a reversal is one, negative, booked on the reversed
    /// line's date, category, phase and, unless it names another, cost
    /// centre).
    pub fn cost(
        project_id: Uuid,
        date: NaiveDate,
        category: CostCategory,
        phase: Phase,
        cost_centre: &str,
        amount_minor: i64,
    ) -> Self {
        Self {
            key: MoneyKey::cost(project_id, date, category, phase),
            amount_minor,
            cost_centre: Some(cost_centre.to_owned()),
        }
    }

    /// A recorded benefit.
    pub fn benefit(project_id: Uuid, date: NaiveDate, amount_minor: i64) -> Self {
        Self {
            key: MoneyKey::benefit(project_id, date),
            amount_minor,
            cost_centre: None,
        }
    }
}

fn centre_overflow(project_id: Uuid, cost_centre: &str) -> Error {
    Error::precondition(
        "TOTAL_OVERFLOW",
        format!("projects/{project_id}"),
        format!(
            "the project's cost in cost centre '{cost_centre}' would exceed the largest total kept for a project ({MAX_TOTAL} minor units of its currency, e.g. 9999999999999.99 EUR): the write is refused"
        ),
    )
}

fn overflow(key: &MoneyKey) -> Error {
    Error::precondition(
        "TOTAL_OVERFLOW",
        format!("projects/{}", key.project_id),
        format!(
            "the project's {} of {} would exceed the largest total kept for a project ({MAX_TOTAL} minor units of its currency, e.g. 9999999999999.99 EUR): the write is refused",
            key.nature.to_lowercase(),
            key.month.format("%Y-%m")
        ),
    )
}

/// A sum, if within [`MAX_TOTAL`] in absolute value.
fn within_total(sum: Option<i64>) -> Option<i64> {
    sum.filter(|t| t.unsigned_abs() <= MAX_TOTAL.unsigned_abs())
}

/// `(amount, lines)` plus `(amount, lines)`, the amount within
/// [`MAX_TOTAL`] (else `overflow()`).
fn add_checked(
    (total, count): (i64, i64),
    (amount, lines): (i64, i64),
    overflow: impl FnOnce() -> Error,
) -> Result<(i64, i64)> {
    let total = within_total(total.checked_add(amount)).ok_or_else(overflow)?;
    Ok((total, count + lines))
}

/// Adds lines to the money rows of their keys (several lines may share a
/// key) and, for costs, to the rows of their (project, cost centre), with
/// checked sums: a total that would overflow refuses the write. One call
/// keeps both aggregates, a statement per batch for each (one read, one
/// upsert), never one per line.
pub(crate) async fn add_money(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    lines: impl IntoIterator<Item = MoneyLine>,
) -> Result<()> {
    use sea_orm::ActiveValue::Set;
    let mut delta: BTreeMap<MoneyKey, (i64, i64)> = BTreeMap::new();
    let mut by_centre: BTreeMap<(Uuid, String), (i64, i64)> = BTreeMap::new();
    for MoneyLine {
        key,
        amount_minor: amount,
        cost_centre,
    } in lines
    {
        if let Some(cost_centre) = cost_centre {
            let slot = by_centre
                .entry((key.project_id, cost_centre.clone()))
                .or_default();
            *slot = add_checked(*slot, (amount, 1), || {
                centre_overflow(key.project_id, &cost_centre)
            })?;
        }
        let slot = delta.entry(key.clone()).or_default();
        *slot = add_checked(*slot, (amount, 1), || overflow(&key))?;
    }
    if delta.is_empty() {
        return Ok(());
    }
    // (project, nature, month, category, phase) -> (amount, lines)
    type Row = (Uuid, String, NaiveDate, String, String);
    let mut existing: HashMap<Row, (i64, i64)> = HashMap::new();
    // Exactly the rows of the batch's keys, by index.
    let keys: Vec<Vec<sea_orm::Value>> = delta
        .keys()
        .map(|k| {
            vec![
                k.project_id.into(),
                k.nature.into(),
                k.month.into(),
                k.category.into(),
                k.phase.into(),
            ]
        })
        .collect();
    for r in find_by_keys::<money::Entity>(conn, "project_money", &keys, None, |_| {
        "t.project_id = r.column1 AND t.nature = r.column2 AND t.month = r.column3 \
         AND t.category = r.column4 AND t.phase = r.column5"
            .to_owned()
    })
    .await?
    {
        existing.insert(
            (r.project_id, r.nature, r.month, r.category, r.phase),
            (r.amount_minor, r.lines),
        );
    }
    let mut rows = Vec::with_capacity(delta.len());
    for (key, added) in delta {
        let old = existing
            .get(&(
                key.project_id,
                key.nature.to_owned(),
                key.month,
                key.category.to_owned(),
                key.phase.to_owned(),
            ))
            .copied()
            .unwrap_or_default();
        let (total, lines) = add_checked(old, added, || overflow(&key))?;
        rows.push(money::ActiveModel {
            project_id: Set(key.project_id),
            nature: Set(key.nature.to_owned()),
            month: Set(key.month),
            category: Set(key.category.to_owned()),
            phase: Set(key.phase.to_owned()),
            organisation_id: Set(organisation_id),
            amount_minor: Set(total),
            lines: Set(lines),
        });
    }
    for chunk in rows.chunks(CHUNK) {
        money::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([
                    money::Column::ProjectId,
                    money::Column::Nature,
                    money::Column::Month,
                    money::Column::Category,
                    money::Column::Phase,
                ])
                .update_columns([money::Column::AmountMinor, money::Column::Lines])
                .to_owned(),
            )
            .exec(conn)
            .await
            .map_err(db_error)?;
    }
    add_cost_centres(conn, organisation_id, by_centre).await
}

/// Adds (amount, lines) to the rows of their (project, cost centre): the
/// rows of the batch's keys read by index, merged with checked sums,
/// written back.
async fn add_cost_centres(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    delta: BTreeMap<(Uuid, String), (i64, i64)>,
) -> Result<()> {
    use sea_orm::ActiveValue::Set;
    if delta.is_empty() {
        return Ok(());
    }
    let keys: Vec<Vec<sea_orm::Value>> = delta
        .keys()
        .map(|(p, c)| vec![(*p).into(), c.clone().into()])
        .collect();
    let mut existing: HashMap<(Uuid, String), (i64, i64)> = HashMap::new();
    for r in find_by_keys::<centre::Entity>(conn, "project_cost_centres", &keys, None, |_| {
        "t.project_id = r.column1 AND t.cost_centre = r.column2".to_owned()
    })
    .await?
    {
        existing.insert((r.project_id, r.cost_centre), (r.amount_minor, r.lines));
    }
    let mut rows = Vec::with_capacity(delta.len());
    for ((project_id, cost_centre), added) in delta {
        let old = existing
            .get(&(project_id, cost_centre.clone()))
            .copied()
            .unwrap_or_default();
        let (total, lines) = add_checked(old, added, || centre_overflow(project_id, &cost_centre))?;
        rows.push(centre::ActiveModel {
            project_id: Set(project_id),
            cost_centre: Set(cost_centre),
            organisation_id: Set(organisation_id),
            amount_minor: Set(total),
            lines: Set(lines),
        });
    }
    for chunk in rows.chunks(CHUNK) {
        centre::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([centre::Column::ProjectId, centre::Column::CostCentre])
                    .update_columns([centre::Column::AmountMinor, centre::Column::Lines])
                    .to_owned(),
            )
            .exec(conn)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

/// The money of projects summed by the database: per month (costs and
/// recorded benefits), per cost category, and per phase when asked; the
/// recorded benefits summed in Rust, checked. One statement per batch of
/// projects, a few dozen rows a project whatever its number of cost lines:
/// a row per month and nature (summed over categories and phases in the
/// primary key's order, no sort), plus a row per category (and phase).
/// Reading a row per month, nature, category and phase instead was most of
/// an import batch's refresh (36 to 56 ms of 45 to 65 for 100 projects).
pub(crate) async fn load_money(
    conn: &impl ConnectionTrait,
    project_ids: &[Uuid],
    with_phase: bool,
) -> Result<HashMap<Uuid, MoneyTotals>> {
    let mut out: HashMap<Uuid, MoneyTotals> = HashMap::new();
    let sum = "CAST(SUM(amount_minor) AS BIGINT)";
    for ids in project_ids.chunks(CHUNK) {
        let mut values: Vec<sea_orm::Value> = Vec::new();
        let mut in_ids = || {
            let first = values.len() + 1;
            values.extend(ids.iter().map(|id| sea_orm::Value::from(*id)));
            (first..first + ids.len())
                .map(|n| placeholder(conn, n))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut arms = vec![
            format!(
                "SELECT 'M' AS kind, project_id, nature, '' AS label, month, {sum} AS amount \
                 FROM project_money WHERE project_id IN ({}) GROUP BY project_id, nature, month",
                in_ids()
            ),
            format!(
                "SELECT 'C', project_id, nature, category, NULL, {sum} FROM project_money \
                 WHERE project_id IN ({}) AND nature = '{COST}' GROUP BY project_id, nature, category",
                in_ids()
            ),
        ];
        if with_phase {
            arms.push(format!(
                "SELECT 'P', project_id, nature, phase, NULL, {sum} FROM project_money \
                 WHERE project_id IN ({}) AND nature = '{COST}' GROUP BY project_id, nature, phase",
                in_ids()
            ));
        }
        let rows = conn
            .query_all_raw(sea_orm::Statement::from_sql_and_values(
                conn.get_database_backend(),
                arms.join(" UNION ALL "),
                values,
            ))
            .await
            .map_err(db_error)?;
        for row in rows {
            let get = |column: &str| row.try_get::<String>("", column).map_err(db_error);
            let project_id: Uuid = row.try_get("", "project_id").map_err(db_error)?;
            let amount: i64 = row.try_get("", "amount").map_err(db_error)?;
            let (kind, nature, label) = (get("kind")?, get("nature")?, get("label")?);
            let bad = |e: String| unknown("project_money", project_id, e);
            let add = |to: &mut i64| -> Result<()> {
                *to = to
                    .checked_add(amount)
                    .ok_or_else(|| bad("a sum of its money rows is beyond 64 bits".to_owned()))?;
                Ok(())
            };
            let t = out.entry(project_id).or_default();
            match (kind.as_str(), nature.as_str()) {
                ("M", COST) => {
                    let month: NaiveDate = row.try_get("", "month").map_err(db_error)?;
                    add(&mut t.flows.entry(month).or_default().0)?;
                }
                ("M", BENEFIT) => {
                    let month: NaiveDate = row.try_get("", "month").map_err(db_error)?;
                    add(&mut t.flows.entry(month).or_default().1)?;
                    add(&mut t.recorded)?;
                }
                ("C", _) => add(t
                    .cost_by_category
                    .entry(label.parse().map_err(bad)?)
                    .or_default())?,
                ("P", _) => add(t
                    .cost_by_phase
                    .entry(label.parse().map_err(bad)?)
                    .or_default())?,
                (_, other) => return Err(bad(format!("unknown nature '{other}'"))),
            }
        }
    }
    Ok(out)
}

fn stat_row(
    organisation_id: Uuid,
    project_id: Uuid,
    kpi_id: Uuid,
    (stage, period): &(Stage, String),
    b: &Bucket,
) -> stat::ActiveModel {
    use sea_orm::ActiveValue::Set;
    stat::ActiveModel {
        kpi_id: Set(kpi_id),
        stage: Set(stage.as_str().to_owned()),
        period: Set(period.clone()),
        organisation_id: Set(organisation_id),
        project_id: Set(project_id),
        count: Set(i64::try_from(b.count).unwrap_or(i64::MAX)),
        sum_value: Set(b.sum),
        first_time: Set(b.first_time),
        last_time: Set(b.last_time),
        last_value: Set(b.last_value),
        late_count: Set(i64::try_from(b.late).unwrap_or(i64::MAX)),
        incomplete: Set(i64::try_from(b.incomplete).unwrap_or(i64::MAX)),
        pooled_n: Set(b.pooled_n),
        pooled_sum: Set(b.pooled_sum),
        pooled_ss: Set(b.pooled_ss),
    }
}

fn bucket_from(r: &stat::Model) -> Result<((Stage, String), Bucket)> {
    let stage: Stage = r
        .stage
        .parse()
        .map_err(|e| unknown("kpi_stats", r.kpi_id, e))?;
    let count =
        |v: i64| u64::try_from(v).map_err(|e| unknown("kpi_stats", r.kpi_id, e.to_string()));
    Ok((
        (stage, r.period.clone()),
        Bucket {
            count: count(r.count)?,
            sum: r.sum_value,
            first_time: r.first_time,
            last_time: r.last_time,
            last_value: r.last_value,
            late: count(r.late_count)?,
            incomplete: count(r.incomplete)?,
            pooled_n: r.pooled_n,
            pooled_sum: r.pooled_sum,
            pooled_ss: r.pooled_ss,
        },
    ))
}

async fn write_stats(conn: &impl ConnectionTrait, rows: Vec<stat::ActiveModel>) -> Result<()> {
    for chunk in rows.chunks(CHUNK) {
        stat::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([
                    stat::Column::KpiId,
                    stat::Column::Stage,
                    stat::Column::Period,
                ])
                .update_columns([
                    stat::Column::Count,
                    stat::Column::SumValue,
                    stat::Column::FirstTime,
                    stat::Column::LastTime,
                    stat::Column::LastValue,
                    stat::Column::LateCount,
                    stat::Column::Incomplete,
                    stat::Column::PooledN,
                    stat::Column::PooledSum,
                    stat::Column::PooledSs,
                ])
                .to_owned(),
            )
            .exec(conn)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

/// Adds recorded measurements (in the order they were recorded) to their
/// KPIs' statistics.
pub(crate) async fn add_measurements(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    recorded: &[(&Kpi, &Measurement)],
) -> Result<()> {
    let mut delta: BTreeMap<Uuid, (Uuid, KpiStats)> = BTreeMap::new();
    for (k, m) in recorded {
        let (_, stats) = delta
            .entry(k.id)
            .or_insert_with(|| (k.project_id, KpiStats::new()));
        kpi::accumulate(stats, k.cadence, [*m]);
    }
    if delta.is_empty() {
        return Ok(());
    }
    let periods: BTreeSet<String> = delta
        .values()
        .flat_map(|(_, s)| s.keys().map(|(_, p)| p.clone()))
        .collect();
    let kpi_ids: Vec<Uuid> = delta.keys().copied().collect();
    let mut existing: HashMap<(Uuid, (Stage, String)), Bucket> = HashMap::new();
    for ids in kpi_ids.chunks(CHUNK) {
        for r in stat::Entity::find()
            .filter(stat::Column::KpiId.is_in(ids.to_vec()))
            .filter(stat::Column::Period.is_in(periods.iter().cloned()))
            .all(conn)
            .await
            .map_err(db_error)?
        {
            let (key, b) = bucket_from(&r)?;
            existing.insert((r.kpi_id, key), b);
        }
    }
    let mut rows = Vec::new();
    for (kpi_id, (project_id, stats)) in delta {
        for (key, later) in stats {
            let merged = match existing.remove(&(kpi_id, key.clone())) {
                Some(mut b) => {
                    b.merge(&later);
                    b
                }
                None => later,
            };
            rows.push(stat_row(organisation_id, project_id, kpi_id, &key, &merged));
        }
    }
    write_stats(conn, rows).await
}

/// Recomputes one KPI's statistics from its measurements (after its review
/// cadence changed, which regroups its periods).
pub(crate) async fn recompute_kpi(conn: &impl ConnectionTrait, k: &Kpi) -> Result<()> {
    stat::Entity::delete_many()
        .filter(stat::Column::KpiId.eq(k.id))
        .exec(conn)
        .await
        .map_err(db_error)?;
    let ms = crate::rows::kpis::measurements_in_record_order(conn, k.id).await?;
    let mut stats = KpiStats::new();
    kpi::accumulate(&mut stats, k.cadence, &ms);
    write_stats(
        conn,
        stats
            .iter()
            .map(|(key, b)| stat_row(k.organisation_id, k.project_id, k.id, key, b))
            .collect(),
    )
    .await
}

/// The statistics of the KPIs of projects, by KPI.
pub(crate) async fn load_kpi_stats(
    conn: &impl ConnectionTrait,
    project_ids: &[Uuid],
) -> Result<HashMap<Uuid, KpiStats>> {
    let mut out: HashMap<Uuid, KpiStats> = HashMap::new();
    for ids in project_ids.chunks(CHUNK) {
        for r in stat::Entity::find()
            .filter(stat::Column::ProjectId.is_in(ids.to_vec()))
            .all(conn)
            .await
            .map_err(db_error)?
        {
            let (key, b) = bucket_from(&r)?;
            out.entry(r.kpi_id).or_default().insert(key, b);
        }
    }
    Ok(out)
}

/// The statistics of one KPI.
pub async fn kpi_stats(conn: &impl ConnectionTrait, kpi_id: Uuid) -> Result<KpiStats> {
    stat::Entity::find()
        .filter(stat::Column::KpiId.eq(kpi_id))
        .all(conn)
        .await
        .map_err(db_error)?
        .iter()
        .map(bucket_from)
        .collect()
}

/// Adds item counts to their (project, phase, concern) rows.
pub(crate) async fn add_item_counts(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    deltas: impl IntoIterator<Item = (Uuid, Phase, jalon_core::assessment::Concern, ItemCounts)>,
) -> Result<()> {
    use sea_orm::ActiveValue::Set;
    let mut by_key: BTreeMap<(Uuid, &'static str, &'static str), ItemCounts> = BTreeMap::new();
    for (project_id, phase, concern, c) in deltas {
        by_key
            .entry((project_id, phase.as_str(), concern.as_str()))
            .or_default()
            .add(c);
    }
    let rows: Vec<count::ActiveModel> = by_key
        .into_iter()
        .filter(|(_, c)| !c.is_zero())
        .map(|((project_id, phase, concern), c)| count::ActiveModel {
            project_id: Set(project_id),
            phase: Set(phase.to_owned()),
            concern: Set(concern.to_owned()),
            organisation_id: Set(organisation_id),
            should_applicable_weight: Set(c.should_applicable_weight),
            should_done_weight: Set(c.should_done_weight),
            must_open: Set(c.must_open),
            open_high_risk: Set(c.open_high_risk),
        })
        .collect();
    let add = |col: &str| Expr::cust(format!("assessment_counts.{col} + excluded.{col}"));
    for chunk in rows.chunks(CHUNK) {
        count::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([
                    count::Column::ProjectId,
                    count::Column::Phase,
                    count::Column::Concern,
                ])
                .value(
                    count::Column::ShouldApplicableWeight,
                    add("should_applicable_weight"),
                )
                .value(count::Column::ShouldDoneWeight, add("should_done_weight"))
                .value(count::Column::MustOpen, add("must_open"))
                .value(count::Column::OpenHighRisk, add("open_high_risk"))
                .to_owned(),
            )
            .exec(conn)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

/// The counts of an item row.
pub(crate) fn item_counts(
    r: &item::Model,
) -> Result<(Phase, jalon_core::assessment::Concern, ItemCounts)> {
    let key = || format!("({}, {})", r.project_id, r.key);
    let phase: Phase = r
        .phase
        .parse()
        .map_err(|e| unknown("assessment_items", key(), e))?;
    let concern = r
        .concern
        .parse()
        .map_err(|e| unknown("assessment_items", key(), e))?;
    let kind: QuestionKind = r
        .kind
        .parse()
        .map_err(|e| unknown("assessment_items", key(), e))?;
    let status = r
        .status
        .parse()
        .map_err(|e| unknown("assessment_items", key(), e))?;
    let risk = r
        .risk
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e| unknown("assessment_items", key(), e))?;
    let weight =
        u32::try_from(r.weight).map_err(|e| unknown("assessment_items", key(), e.to_string()))?;
    Ok((phase, concern, ItemCounts::of(kind, weight, status, risk)))
}

/// The assessment counts of projects, by project.
pub(crate) async fn load_item_counts(
    conn: &impl ConnectionTrait,
    project_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<(Phase, jalon_core::assessment::Concern, ItemCounts)>>> {
    let mut out: HashMap<Uuid, Vec<_>> = HashMap::new();
    for ids in project_ids.chunks(CHUNK) {
        // Only what the figures read: the rows of each project's current
        // phase (readiness) and those with open HIGH risks (the heat map).
        for r in count::Entity::find()
            .filter(count::Column::ProjectId.is_in(ids.to_vec()))
            .filter(
                sea_orm::Condition::any()
                    .add(count::Column::OpenHighRisk.ne(0))
                    .add(
                        Expr::col((count::Entity, count::Column::Phase)).in_subquery(
                            sea_orm::sea_query::Query::select()
                                .column(crate::entity::project::Column::Phase)
                                .from(crate::entity::project::Entity)
                                .and_where(
                                    Expr::col((
                                        crate::entity::project::Entity,
                                        crate::entity::project::Column::Id,
                                    ))
                                    .equals((count::Entity, count::Column::ProjectId)),
                                )
                                .to_owned(),
                        ),
                    ),
            )
            .all(conn)
            .await
            .map_err(db_error)?
        {
            let key = || format!("({}, {}, {})", r.project_id, r.phase, r.concern);
            out.entry(r.project_id).or_default().push((
                r.phase
                    .parse()
                    .map_err(|e| unknown("assessment_counts", key(), e))?,
                r.concern
                    .parse()
                    .map_err(|e| unknown("assessment_counts", key(), e))?,
                ItemCounts {
                    should_applicable_weight: r.should_applicable_weight,
                    should_done_weight: r.should_done_weight,
                    must_open: r.must_open,
                    open_high_risk: r.open_high_risk,
                },
            ));
        }
    }
    Ok(out)
}

/// Recomputes every aggregate of an organisation's projects from the raw
/// rows, set-based: money, cost by cost centre and assessment counts are
/// summed by the database, KPI statistics accumulated from the
/// measurements read once in record order.
pub(crate) async fn recompute(conn: &impl ConnectionTrait, organisation_id: Uuid) -> Result<()> {
    for table in [
        "project_money",
        "project_cost_centres",
        "kpi_stats",
        "assessment_counts",
    ] {
        let sql = format!(
            "DELETE FROM {table} WHERE organisation_id = {}",
            placeholder(conn, 1)
        );
        execute_for(conn, &sql, organisation_id).await?;
    }
    recompute_money(conn, organisation_id).await?;
    recompute_item_counts(conn, organisation_id).await?;
    recompute_kpi_stats(conn, organisation_id).await
}

/// Runs a statement whose one parameter is an organisation's id.
pub(crate) async fn execute_for(
    conn: &impl ConnectionTrait,
    sql: &str,
    organisation_id: Uuid,
) -> Result<()> {
    conn.execute_raw(sea_orm::Statement::from_sql_and_values(
        conn.get_database_backend(),
        sql,
        [organisation_id.into()],
    ))
    .await
    .map_err(db_error)?;
    Ok(())
}

/// `(VALUES (a, b), (c, d), ...) AS r`: a literal table of `rows` rows of
/// `cols` parameters numbered from `first`, whose columns are `r.column1`,
/// `r.column2`... on both databases. Joined to an indexed table, it looks up
/// a batch of keys by index whatever the table's statistics: the `IN (...)`
/// form was planned on PostgreSQL as a scan of the organisation's rows
/// comparing each with every key of the batch (an import of 20,000 costs
/// spent 300 ms a batch there, growing with the table).
pub(crate) fn values_table(
    conn: &impl ConnectionTrait,
    rows: usize,
    cols: usize,
    first: usize,
) -> String {
    let mut n = first;
    let mut out = String::from("(VALUES ");
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            out.push_str(&placeholder(conn, n));
            n += 1;
        }
        out.push(')');
    }
    out.push_str(") AS r");
    out
}

/// The rows of `E` (table `table`, aliased `t`) that match a batch of keys,
/// looked up by index through a [`values_table`] of the keys: `on(last)` is
/// the join condition over `t` and `r.column1`, `r.column2`..., where
/// `last` is the placeholder of the one parameter `last_value` bound after
/// the keys, if any. Every key has the same number of values.
pub(crate) async fn find_by_keys<E>(
    conn: &impl ConnectionTrait,
    table: &str,
    keys: &[Vec<sea_orm::Value>],
    last_value: Option<sea_orm::Value>,
    on: impl Fn(&str) -> String,
) -> Result<Vec<E::Model>>
where
    E: EntityTrait,
{
    let cols = keys.first().map_or(1, Vec::len).max(1);
    let mut out = Vec::new();
    for chunk in keys.chunks((2 * CHUNK / cols).max(1)) {
        let last = placeholder(conn, chunk.len() * cols + 1);
        let keys = values_table(conn, chunk.len(), cols, 1);
        let sql = if crate::is_postgres(conn) {
            // A lateral subquery the planner cannot flatten (OFFSET 0): one
            // index lookup per key, whatever the table's statistics. As a
            // join, a table never analysed yet (a first import, autovacuum
            // behind) was hash-joined with all the organisation's rows: 60
            // to 80 ms a batch of 500 keys at 100,000 costs, growing with
            // the table (3 ms this way).
            format!(
                "SELECT t.* FROM {keys} CROSS JOIN LATERAL \
                 (SELECT * FROM {table} t WHERE {} OFFSET 0) AS t",
                on(&last)
            )
        } else {
            format!("SELECT t.* FROM {keys} JOIN {table} t ON {}", on(&last))
        };
        // Parameters in the order they appear (SQLite's are positional).
        let mut values: Vec<sea_orm::Value> = chunk.iter().flatten().cloned().collect();
        values.extend(last_value.clone());
        out.extend(
            E::find()
                .from_raw_sql(sea_orm::Statement::from_sql_and_values(
                    conn.get_database_backend(),
                    sql,
                    values,
                ))
                .all(conn)
                .await
                .map_err(db_error)?,
        );
    }
    Ok(out)
}

pub(crate) fn placeholder(conn: &impl ConnectionTrait, n: usize) -> String {
    if crate::is_postgres(conn) {
        format!("${n}")
    } else {
        "?".to_owned()
    }
}

async fn recompute_money(conn: &impl ConnectionTrait, organisation_id: Uuid) -> Result<()> {
    // Sums in 128 bits where the database allows it, so that an overflow
    // is seen (and refused) rather than wrapped: PostgreSQL sums BIGINT as
    // NUMERIC; SQLite's SUM raises "integer overflow".
    let month = |col: &str| {
        if crate::is_postgres(conn) {
            format!("CAST(date_trunc('month', {col}) AS DATE)")
        } else {
            format!("strftime('%Y-%m-01', {col})")
        }
    };
    let p = placeholder(conn, 1);
    let sum = if crate::is_postgres(conn) {
        "CAST(SUM(amount_minor) AS BIGINT)"
    } else {
        "SUM(amount_minor)"
    };
    for sql in [
        format!(
            "INSERT INTO project_money (project_id, nature, month, category, phase, organisation_id, amount_minor, lines) \
             SELECT project_id, '{COST}', {m}, category, phase, organisation_id, {sum}, COUNT(*) \
             FROM costs WHERE organisation_id = {p} GROUP BY project_id, {m}, category, phase, organisation_id",
            m = month("incurred_on")
        ),
        format!(
            "INSERT INTO project_money (project_id, nature, month, category, phase, organisation_id, amount_minor, lines) \
             SELECT project_id, '{BENEFIT}', {m}, '', '', organisation_id, {sum}, COUNT(*) \
             FROM benefits WHERE organisation_id = {p} GROUP BY project_id, {m}, organisation_id",
            m = month("benefit_date")
        ),
        // Lines without a cost centre are kept under "".
        format!(
            "INSERT INTO project_cost_centres (project_id, cost_centre, organisation_id, amount_minor, lines) \
             SELECT project_id, cost_centre, organisation_id, {sum}, COUNT(*) \
             FROM costs WHERE organisation_id = {p} GROUP BY project_id, cost_centre, organisation_id"
        ),
    ] {
        execute_for(conn, &sql, organisation_id).await?;
    }
    Ok(())
}

async fn recompute_item_counts(conn: &impl ConnectionTrait, organisation_id: Uuid) -> Result<()> {
    let p = placeholder(conn, 1);
    let sql = format!(
        "INSERT INTO assessment_counts (project_id, phase, concern, organisation_id, \
           should_applicable_weight, should_done_weight, must_open, open_high_risk) \
         SELECT project_id, phase, concern, organisation_id, \
           SUM(CASE WHEN kind = 'SHOULD' AND status <> 'NOT_APPLICABLE' THEN weight ELSE 0 END), \
           SUM(CASE WHEN kind = 'SHOULD' AND status = 'DONE' THEN weight ELSE 0 END), \
           SUM(CASE WHEN kind = 'MUST' AND status NOT IN ('DONE', 'NOT_APPLICABLE') THEN 1 ELSE 0 END), \
           SUM(CASE WHEN status IN ('OPEN', 'BLOCKED') AND risk = 'HIGH' THEN 1 ELSE 0 END) \
         FROM assessment_items WHERE organisation_id = {p} \
         GROUP BY project_id, phase, concern, organisation_id"
    );
    execute_for(conn, &sql, organisation_id).await
}

async fn recompute_kpi_stats(conn: &impl ConnectionTrait, organisation_id: Uuid) -> Result<()> {
    let kpis: HashMap<Uuid, Kpi> = crate::rows::kpis::all_of_organisation(conn, organisation_id)
        .await?
        .into_iter()
        .map(|k| (k.id, k))
        .collect();
    let mut stats: BTreeMap<Uuid, KpiStats> = BTreeMap::new();
    crate::rows::kpis::for_each_measurement(conn, organisation_id, |m| {
        if let Some(k) = kpis.get(&m.kpi_id) {
            kpi::accumulate(stats.entry(k.id).or_default(), k.cadence, [&m]);
        }
    })
    .await?;
    let mut rows = Vec::new();
    for (kpi_id, s) in &stats {
        if let Some(k) = kpis.get(kpi_id) {
            for (key, b) in s {
                rows.push(stat_row(organisation_id, k.project_id, *kpi_id, key, b));
            }
        }
    }
    write_stats(conn, rows).await
}

/// Derived benefits and what the portfolio needs of one KPI, from its
/// statistics.
pub(crate) fn kpi_outcome(k: &Kpi, stats: Option<&KpiStats>) -> (kpi::KpiResult, Vec<BenefitLine>) {
    let empty = KpiStats::new();
    let stats = stats.unwrap_or(&empty);
    let r = kpi::result_from_stats(k, stats);
    let derived = if k.value_per_unit.is_some() {
        kpi::derived_benefits(k, &r)
            .into_iter()
            .map(|(date, money)| BenefitLine {
                amount_minor: money.minor_units(),
                date,
            })
            .collect()
    } else {
        Vec::new()
    };
    (r, derived)
}
