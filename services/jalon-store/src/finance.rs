//! Costs, budgets and benefits of projects, and their financials.

use std::collections::{BTreeSet, HashMap};

use chrono::{NaiveDate, Utc};
use jalon_core::{
    Error, Result,
    authz::Action,
    finance::{BenefitKind, BenefitLine, CostCategory, CostNature, Financials, MANUAL_SOURCE},
    kpi,
    project::Phase,
    values::{CurrencyCode, Money},
};
use rust_decimal::Decimal;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, QueryFilter, QueryOrder,
};
use serde_json::{Value, json};
use uuid::Uuid;

pub use crate::rows::budgets::Budget;
use crate::rows::budgets::{budget_from, financials_of};
use crate::{
    aggregates::MoneyLine,
    audit::NewEvent,
    change::{Caller, Change},
    entity::{benefit, budget, cost, cost_centre_rule, project_cost_object},
    error::db_error,
    kpis,
};

/// How a cost names its project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CostTarget {
    /// Jalon's id.
    Project(Uuid),
    /// A cost object's reference (WBS element, internal order, cost
    /// collector).
    Reference(String),
    /// Neither: a cost-centre rule for the cost's cost centre (or, for a
    /// reversal, the reversed line's project).
    Unnamed,
}

/// The amount a feed sent in another currency, with the rate it was
/// converted at.
#[derive(Debug, Clone, PartialEq)]
pub struct Original {
    pub amount: Money,
    /// Organisation units per unit of the original currency, as sent.
    pub rate: Decimal,
    pub rate_date: NaiveDate,
}

/// The line a reversal reverses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reverses {
    /// None: the reversal's own source.
    pub source: Option<String>,
    pub external_ref: String,
}

/// A cost to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCost {
    pub target: CostTarget,
    /// In the organisation's currency (converted from `original` if any);
    /// negative only for a reversal.
    pub amount: Money,
    pub original: Option<Original>,
    /// Required unless a reversal (which takes the reversed line's).
    pub category: Option<CostCategory>,
    pub nature: Option<CostNature>,
    pub incurred_on: Option<NaiveDate>,
    pub cost_centre: String,
    /// None: the phase the project was in on `incurred_on`.
    pub phase: Option<Phase>,
    pub description: String,
    pub external_ref: Option<String>,
    /// None: "manual".
    pub source: Option<String>,
    /// "YYYY-MM"; None: the month of the posting (UTC).
    pub posting_period: Option<String>,
    pub reverses: Option<Reverses>,
}

/// A stored cost.
pub type Cost = cost::Model;

/// What became of one cost.
#[derive(Debug, Clone, PartialEq)]
pub enum CostOutcome {
    Accepted(Cost),
    /// Already posted under this source and external_ref, same amount.
    Duplicate(Cost),
    Rejected(Error),
}

/// How much of each line has been reversed (a positive number of minor
/// units), summed from the reversals naming them.
pub async fn reversed_amounts(
    conn: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, i64>> {
    use sea_orm::QuerySelect;
    let mut out = HashMap::new();
    for chunk in ids.chunks(crate::CHUNK) {
        for (id, sum) in cost::Entity::find()
            .select_only()
            .column(cost::Column::ReversesCostId)
            .expr_as(
                sea_orm::sea_query::Expr::cust("CAST(SUM(amount_minor) AS BIGINT)"),
                "reversed",
            )
            .filter(cost::Column::ReversesCostId.is_in(chunk.to_vec()))
            .group_by(cost::Column::ReversesCostId)
            .into_tuple::<(Option<Uuid>, i64)>()
            .all(conn)
            .await
            .map_err(db_error)?
        {
            if let Some(id) = id {
                out.insert(id, -sum);
            }
        }
    }
    Ok(out)
}

/// A row's refusal: a rule of the feed it breaks.
fn refused(kind: &str, subject: impl Into<String>, why: impl Into<String>) -> CostOutcome {
    CostOutcome::Rejected(Error::precondition(kind, subject, why))
}

/// The phase a project was in at the end of `day` (UTC); before its first
/// phase, its first phase.
fn phase_on(project: &jalon_core::project::Project, day: NaiveDate) -> Phase {
    let end = day
        .succ_opt()
        .unwrap_or(day)
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc());
    let mut phase = project.phase_history.first().map(|s| s.phase);
    if let Some(end) = end {
        for span in &project.phase_history {
            if span.enter_time < end {
                phase = Some(span.phase);
            }
        }
    }
    phase.unwrap_or(project.phase)
}

/// Records costs (one, or an import's batch) in one change; each row is
/// judged on its own (the rules of a feed are all here: sources, periods,
/// project references and cost-centre rules, reversals, duplicates). The
/// batch costs a fixed number of statements whatever the projects'
/// history: sources, closed periods, cost objects and rules are read once,
/// the projects read and locked together, the external_refs (and the
/// reversed lines) looked up in one query, the accepted rows inserted
/// together, and the money aggregates moved by what was accepted.
///
/// `all_or_nothing`: the first row refused is the answer (an error) and
/// nothing is written (CorrectCost's reversal and replacement).
pub async fn record_costs(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    caller: &Caller,
    action: Action,
    rows: &[NewCost],
    all_or_nothing: bool,
) -> Result<Vec<CostOutcome>> {
    let change = Change::begin(db, organisation_id, caller, action).await?;
    record_in(change, rows, all_or_nothing).await
}

/// A correction of a posted line: how much of it to reverse, and the rest
/// of the reversal line.
#[derive(Debug, Clone, PartialEq)]
pub struct Correction {
    /// The line's source; None: "manual".
    pub source: Option<String>,
    pub external_ref: String,
    /// Positive; None: all that is left of the line.
    pub amount: Option<Money>,
    pub reversal_external_ref: Option<String>,
    pub posting_period: Option<String>,
    pub description: String,
    /// The restatement's new line; a project it does not name is the
    /// line's.
    pub replacement: Option<NewCost>,
}

/// Reverses a posted line in full or in part and posts its replacement, if
/// any, in one change: both or neither (the first refusal is the answer).
/// The reversal and the replacement's outcomes, in that order.
pub async fn correct_cost(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    caller: &Caller,
    currency: CurrencyCode,
    correction: Correction,
) -> Result<Vec<CostOutcome>> {
    let change = Change::begin(db, organisation_id, caller, Action::CorrectCost).await?;
    let source = correction
        .source
        .clone()
        .unwrap_or_else(|| MANUAL_SOURCE.to_owned());
    let line = format!("costs/{source}/{}", correction.external_ref);
    let original = cost::Entity::find()
        .filter(cost::Column::OrganisationId.eq(organisation_id))
        .filter(cost::Column::Source.eq(source.as_str()))
        .filter(cost::Column::ExternalRef.eq(correction.external_ref.as_str()))
        .one(change.conn())
        .await
        .map_err(db_error)?
        .ok_or_else(|| {
            Error::precondition(
                "REVERSED_LINE_UNKNOWN",
                line.clone(),
                format!("no line {line} to correct"),
            )
        })?;
    // A retry: the reversal posted already answers as a duplicate.
    let posted = match &correction.reversal_external_ref {
        Some(r) => cost::Entity::find()
            .filter(cost::Column::OrganisationId.eq(organisation_id))
            .filter(cost::Column::Source.eq(source.as_str()))
            .filter(cost::Column::ExternalRef.eq(r.as_str()))
            .one(change.conn())
            .await
            .map_err(db_error)?
            .filter(|c| c.reverses_cost_id == Some(original.id)),
        None => None,
    };
    let amount = match (correction.amount, posted) {
        (None, Some(p)) => -p.amount_minor,
        (Some(a), _) => a.minor_units(),
        (None, None) => {
            let done = reversed_amounts(change.conn(), &[original.id])
                .await?
                .get(&original.id)
                .copied()
                .unwrap_or(0);
            original.amount_minor - done
        }
    };
    if amount <= 0 {
        return Err(Error::precondition(
            "REVERSAL_EXCEEDS_LINE",
            line.clone(),
            format!("nothing is left of {line} to reverse"),
        ));
    }
    let mut rows = vec![NewCost {
        target: CostTarget::Project(original.project_id),
        amount: Money::from_minor(-amount, currency),
        original: None,
        category: None,
        nature: None,
        incurred_on: None,
        cost_centre: String::new(),
        phase: None,
        description: correction.description.clone(),
        external_ref: correction.reversal_external_ref.clone(),
        source: Some(source.clone()),
        posting_period: correction.posting_period.clone(),
        reverses: Some(Reverses {
            source: Some(source.clone()),
            external_ref: correction.external_ref.clone(),
        }),
    }];
    if let Some(mut replacement) = correction.replacement {
        if replacement.target == CostTarget::Unnamed {
            replacement.target = CostTarget::Project(original.project_id);
        }
        rows.push(replacement);
    }
    record_in(change, &rows, true).await
}

/// [`record_costs`] in a change begun.
async fn record_in(
    mut change: Change,
    rows: &[NewCost],
    all_or_nothing: bool,
) -> Result<Vec<CostOutcome>> {
    let organisation_id = change.organisation_id();
    let conn = change.conn();
    // Sources and closed periods: a few rows an organisation.
    let sources: BTreeSet<String> = crate::feeds::sources(conn, organisation_id)
        .await?
        .into_iter()
        .map(|s| s.name)
        .chain([MANUAL_SOURCE.to_owned()])
        .collect();
    let closed: BTreeSet<String> = crate::feeds::periods(conn, organisation_id)
        .await?
        .into_iter()
        .filter(|p| p.closed)
        .map(|p| p.period)
        .collect();
    // The cost objects and rules the batch names.
    let references: BTreeSet<String> = rows
        .iter()
        .filter_map(|r| match &r.target {
            CostTarget::Reference(x) => Some(x.clone()),
            _ => None,
        })
        .collect();
    let mut by_reference: HashMap<String, Uuid> = HashMap::new();
    let references: Vec<String> = references.into_iter().collect();
    for chunk in references.chunks(crate::CHUNK) {
        for o in project_cost_object::Entity::find()
            .filter(project_cost_object::Column::OrganisationId.eq(organisation_id))
            .filter(project_cost_object::Column::Reference.is_in(chunk.to_vec()))
            .all(conn)
            .await
            .map_err(db_error)?
        {
            by_reference.insert(o.reference, o.project_id);
        }
    }
    let centres: BTreeSet<String> = rows
        .iter()
        .filter(|r| r.target == CostTarget::Unnamed && r.reverses.is_none())
        .map(|r| r.cost_centre.clone())
        .filter(|c| !c.is_empty())
        .collect();
    let centres: Vec<String> = centres.into_iter().collect();
    let mut by_centre: HashMap<String, Uuid> = HashMap::new();
    for chunk in centres.chunks(crate::CHUNK) {
        for r in cost_centre_rule::Entity::find()
            .filter(cost_centre_rule::Column::OrganisationId.eq(organisation_id))
            .filter(cost_centre_rule::Column::CostCentre.is_in(chunk.to_vec()))
            .all(conn)
            .await
            .map_err(db_error)?
        {
            by_centre.insert(r.cost_centre, r.project_id);
        }
    }
    // Posted lines by (source, external_ref): the rows' own refs and the
    // lines they reverse.
    let source_of = |r: &NewCost| r.source.clone().unwrap_or_else(|| MANUAL_SOURCE.to_owned());
    let mut wanted_refs: BTreeSet<(String, String)> = BTreeSet::new();
    for r in rows {
        if let Some(x) = &r.external_ref {
            wanted_refs.insert((source_of(r), x.clone()));
        }
        if let Some(rev) = &r.reverses {
            wanted_refs.insert((
                rev.source.clone().unwrap_or_else(|| source_of(r)),
                rev.external_ref.clone(),
            ));
        }
    }
    let keys: Vec<Vec<sea_orm::Value>> = wanted_refs
        .iter()
        .map(|(s, x)| vec![s.clone().into(), x.clone().into()])
        .collect();
    let mut posted: HashMap<(String, String), Cost> = HashMap::new();
    for c in crate::aggregates::find_by_keys::<cost::Entity>(
        conn,
        "costs",
        &keys,
        Some(organisation_id.into()),
        |org| {
            format!(
                "t.organisation_id = {org} AND t.source = r.column1 AND t.external_ref = r.column2"
            )
        },
    )
    .await?
    {
        if let Some(r) = c.external_ref.clone() {
            posted.insert((c.source.clone(), r), c);
        }
    }
    // The projects: named, referenced, by rule, or the reversed line's.
    let project_of = |r: &NewCost| -> Option<Uuid> {
        match &r.target {
            CostTarget::Project(id) => Some(*id),
            CostTarget::Reference(x) => by_reference.get(x).copied(),
            CostTarget::Unnamed if r.reverses.is_none() => by_centre.get(&r.cost_centre).copied(),
            CostTarget::Unnamed => None,
        }
    };
    let mut wanted: BTreeSet<Uuid> = rows.iter().filter_map(project_of).collect();
    wanted.extend(posted.values().map(|c| c.project_id));
    let projects = change
        .projects_for(wanted.iter().copied(), "project")
        .await?;
    // What is left of the lines reversed, read under their projects' locks:
    // a concurrent reversal of the same line (same project) has committed
    // or waits for this change.
    let reversed_ids: Vec<Uuid> = posted.values().map(|c| c.id).collect();
    let mut reversed = reversed_amounts(change.conn(), &reversed_ids).await?;
    let now = Utc::now();
    let this_period = jalon_core::finance::period_of(now.date_naive());
    let mut outcomes = Vec::with_capacity(rows.len());
    let mut accepted: Vec<(Phase, CostCategory, Cost)> = Vec::new();
    let mut reversal_events = Vec::new();
    for row in rows {
        let outcome = judge(
            row,
            &JudgeContext {
                organisation_id,
                sources: &sources,
                closed: &closed,
                this_period: &this_period,
                now,
                project_of: project_of(row),
                projects: &projects,
            },
            &mut posted,
            &mut reversed,
        );
        match outcome {
            Ok((phase, category, stored)) => {
                change.touch(stored.project_id);
                if let Some(id) = stored.reverses_cost_id {
                    reversal_events.push((id, stored.clone()));
                }
                accepted.push((phase, category, stored.clone()));
                outcomes.push(CostOutcome::Accepted(stored));
            }
            Err(outcome) => {
                let outcome = *outcome;
                if all_or_nothing && let CostOutcome::Rejected(e) = outcome {
                    return Err(e);
                }
                outcomes.push(outcome);
            }
        }
    }
    if accepted.is_empty() {
        return Ok(outcomes);
    }
    // A reversal is booked on the reversed line's charge month, category,
    // phase and (unless it names one) cost centre (its row carries them):
    // totals by month, by phase and by cost centre net.
    let money = accepted
        .iter()
        .map(|(phase, category, c)| {
            MoneyLine::cost(
                c.project_id,
                c.incurred_on,
                *category,
                *phase,
                &c.cost_centre,
                c.amount_minor,
            )
        })
        .collect::<Vec<_>>();
    crate::aggregates::add_money(change.conn(), organisation_id, money).await?;
    let models: Vec<cost::ActiveModel> = accepted
        .iter()
        .map(|(_, _, c)| cost::ActiveModel::from(c.clone()))
        .collect();
    for chunk in models.chunks(crate::CHUNK) {
        cost::Entity::insert_many(chunk.to_vec())
            .exec(change.conn())
            .await
            .map_err(db_error)?;
    }
    let currency = rows[0].amount.currency();
    let summary: Vec<Value> = accepted
        .iter()
        .map(|(_, _, c)| {
            let mut v = json!({"id": c.id, "project_id": c.project_id, "amount": Money::from_minor(c.amount_minor, currency).to_string(), "currency": c.currency, "category": c.category, "source": c.source, "external_ref": c.external_ref, "posting_period": c.posting_period});
            if let Some(r) = c.reverses_cost_id {
                v["reverses_cost_id"] = json!(r);
            }
            if let (Some(m), Some(cur), Some(rate)) =
                (c.original_amount_minor, &c.original_currency, &c.exchange_rate)
            {
                v["original"] = json!({"amount_minor": m, "currency": cur, "rate": rate, "rate_date": c.rate_date});
            }
            v
        })
        .collect();
    let single = accepted
        .iter()
        .map(|(_, _, c)| c.project_id)
        .collect::<BTreeSet<_>>();
    change.event(NewEvent {
        project_id: (single.len() == 1).then(|| accepted[0].2.project_id),
        action: "finance.costs_recorded",
        resource_type: "cost",
        resource_id: format!("{} cost(s)", summary.len()),
        before: None,
        after: Value::Array(summary),
        chained: false,
    });
    for (reversed_id, reversal) in reversal_events {
        change.event(NewEvent {
            project_id: Some(reversal.project_id),
            action: "finance.cost_reversed",
            resource_type: "cost",
            resource_id: reversed_id.to_string(),
            before: None,
            after: json!({"reversal_id": reversal.id, "amount": Money::from_minor(reversal.amount_minor, currency).to_string(), "posting_period": reversal.posting_period, "external_ref": reversal.external_ref, "source": reversal.source}),
            chained: false,
        });
    }
    change.commit().await?;
    Ok(outcomes)
}

/// What judging a row needs besides the posted lines.
struct JudgeContext<'a> {
    organisation_id: Uuid,
    sources: &'a BTreeSet<String>,
    closed: &'a BTreeSet<String>,
    this_period: &'a str,
    now: chrono::DateTime<Utc>,
    /// The project the row names (by id, reference or rule), if it does.
    project_of: Option<Uuid>,
    projects: &'a HashMap<Uuid, Result<jalon_core::project::Project>>,
}

/// One row: the cost to store (with the phase and category its money is
/// booked under), or why not.
fn judge(
    row: &NewCost,
    cx: &JudgeContext<'_>,
    posted: &mut HashMap<(String, String), Cost>,
    reversed: &mut HashMap<Uuid, i64>,
) -> std::result::Result<(Phase, CostCategory, Cost), Box<CostOutcome>> {
    let source = row
        .source
        .clone()
        .unwrap_or_else(|| MANUAL_SOURCE.to_owned());
    if !cx.sources.contains(&source) {
        return Err(Box::new(CostOutcome::Rejected(Error::invalid(
            "source",
            format!("'{source}' is not a registered source (CreateCostSource)"),
        ))));
    }
    // The line reversed, if any.
    let original = match &row.reverses {
        None => None,
        Some(rev) => {
            let rev_source = rev.source.clone().unwrap_or_else(|| source.clone());
            let line = format!("costs/{rev_source}/{}", rev.external_ref);
            let Some(original) = posted
                .get(&(rev_source.clone(), rev.external_ref.clone()))
                .cloned()
            else {
                return Err(Box::new(refused(
                    "REVERSED_LINE_UNKNOWN",
                    line.clone(),
                    format!("no line {line} to reverse"),
                )));
            };
            if original.reverses_cost_id.is_some() {
                return Err(Box::new(refused(
                    "REVERSAL_OF_A_REVERSAL",
                    line.clone(),
                    format!("{line} is itself a reversal: reverse nothing, or post a new line"),
                )));
            }
            Some((line, original))
        }
    };
    let project_id = match (&original, cx.project_of, &row.target) {
        (_, Some(id), _) => id,
        (Some((_, o)), None, CostTarget::Unnamed) => o.project_id,
        (_, None, CostTarget::Reference(x)) => {
            return Err(Box::new(CostOutcome::Rejected(Error::invalid(
                "project_ref",
                format!("no project has the cost object '{x}'"),
            ))));
        }
        (_, None, _) if row.cost_centre.is_empty() => {
            return Err(Box::new(CostOutcome::Rejected(Error::invalid(
                "project_id",
                "is required (or project_ref, or a cost centre with a cost-centre rule)",
            ))));
        }
        (_, None, _) => {
            return Err(Box::new(CostOutcome::Rejected(Error::invalid(
                "cost_centre",
                format!(
                    "no cost-centre rule names a project for '{}' (and neither project_id nor project_ref is given)",
                    row.cost_centre
                ),
            ))));
        }
    };
    let project = match cx.projects.get(&project_id) {
        Some(Ok(project)) => project,
        Some(Err(e)) => return Err(Box::new(CostOutcome::Rejected(e.clone()))),
        None => {
            return Err(Box::new(CostOutcome::Rejected(Error::NotFound {
                resource: "project",
            })));
        }
    };
    let amount = row.amount.minor_units();
    if let Some(external_ref) = &row.external_ref
        && let Some(existing) = posted.get(&(source.clone(), external_ref.clone()))
    {
        return Err(Box::new(
            if existing.amount_minor == amount && existing.project_id == project_id {
                CostOutcome::Duplicate(existing.clone())
            } else {
                CostOutcome::Rejected(Error::AlreadyExists(format!(
                    "external_ref {external_ref} of source {source} was posted with another amount or project (post a correction: reverses_external_ref)"
                )))
            },
        ));
    }
    // After the duplicate check: a re-run of a closed month's file is
    // duplicates, not refusals.
    let period = row
        .posting_period
        .clone()
        .unwrap_or_else(|| cx.this_period.to_owned());
    if cx.closed.contains(&period) {
        return Err(Box::new(refused(
            "PERIOD_CLOSED",
            format!("periods/{period}"),
            format!(
                "posting_period {period} is closed: post in an open period (a correction keeps the charge date of the line it corrects)"
            ),
        )));
    }
    let (incurred_on, category, nature, phase, reverses_cost_id) = match &original {
        Some((line, o)) => {
            if o.project_id != project_id {
                return Err(Box::new(refused(
                    "REVERSAL_OF_ANOTHER_PROJECT",
                    line.clone(),
                    format!("{line} belongs to another project"),
                )));
            }
            let done = reversed.get(&o.id).copied().unwrap_or(0);
            let remaining = o.amount_minor - done;
            let currency = row.amount.currency();
            if amount >= 0 {
                return Err(Box::new(CostOutcome::Rejected(Error::invalid(
                    "amount",
                    "a reversal's amount must be negative",
                ))));
            }
            if -amount > remaining {
                return Err(Box::new(refused(
                    "REVERSAL_EXCEEDS_LINE",
                    line.clone(),
                    format!(
                        "{line} has {} left to reverse (of {}); this reversal is {}",
                        Money::from_minor(remaining, currency),
                        Money::from_minor(o.amount_minor, currency),
                        Money::from_minor(-amount, currency)
                    ),
                )));
            }
            let bad = |e: String| CostOutcome::Rejected(Error::Internal(e));
            (
                o.incurred_on,
                o.category.parse::<CostCategory>().map_err(bad)?,
                o.nature.clone(),
                o.phase.parse::<Phase>().map_err(bad)?,
                Some(o.id),
            )
        }
        None => {
            if amount < 0 {
                return Err(Box::new(CostOutcome::Rejected(Error::invalid(
                    "amount",
                    "must not be negative: a negative amount is a reversal and names the line it reverses (reverses_external_ref); credits are not modelled",
                ))));
            }
            let (Some(incurred_on), Some(category), Some(nature)) =
                (row.incurred_on, row.category, row.nature)
            else {
                let field = if row.incurred_on.is_none() {
                    "incurred_on"
                } else if row.category.is_none() {
                    "category"
                } else {
                    "nature"
                };
                return Err(Box::new(CostOutcome::Rejected(Error::invalid(
                    field,
                    "is required",
                ))));
            };
            (
                incurred_on,
                category,
                nature.as_str().to_owned(),
                row.phase.unwrap_or_else(|| phase_on(project, incurred_on)),
                None,
            )
        }
    };
    let stored = cost::Model {
        id: Uuid::now_v7(),
        organisation_id: cx.organisation_id,
        project_id,
        amount_minor: amount,
        currency: row.amount.currency().as_str().to_owned(),
        category: category.as_str().to_owned(),
        nature,
        incurred_on,
        cost_centre: if row.cost_centre.is_empty() {
            original
                .as_ref()
                .map(|(_, o)| o.cost_centre.clone())
                .unwrap_or_default()
        } else {
            row.cost_centre.clone()
        },
        phase: phase.as_str().to_owned(),
        description: row.description.clone(),
        external_ref: row.external_ref.clone(),
        create_time: cx.now,
        source: source.clone(),
        posting_period: period,
        original_amount_minor: row.original.as_ref().map(|o| o.amount.minor_units()),
        original_currency: row
            .original
            .as_ref()
            .map(|o| o.amount.currency().as_str().to_owned()),
        exchange_rate: row
            .original
            .as_ref()
            .map(|o| o.rate.normalize().to_string()),
        rate_date: row.original.as_ref().map(|o| o.rate_date),
        reverses_cost_id,
    };
    if let Some(id) = reverses_cost_id {
        *reversed.entry(id).or_default() += -amount;
    }
    if let Some(r) = &stored.external_ref {
        posted.insert((source, r.clone()), stored.clone());
    }
    Ok((phase, category, stored))
}

/// Filters of `ListCosts`; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CostFilter {
    /// Incurred on or after.
    pub from: Option<NaiveDate>,
    /// Incurred on or before.
    pub to: Option<NaiveDate>,
    pub category: Option<CostCategory>,
    pub cost_centre: Option<String>,
    /// Posted in this period ("YYYY-MM").
    pub posting_period: Option<String>,
    /// Of this source.
    pub source: Option<String>,
}

impl CostFilter {
    /// A stable rendering, bound into page tokens (with the project).
    pub fn key(&self, project_id: Uuid) -> String {
        format!(
            "project={project_id};from={:?};to={:?};category={:?};cost_centre={:?};period={:?};source={:?}",
            self.from,
            self.to,
            self.category.map(|c| c.as_str()),
            self.cost_centre,
            self.posting_period,
            self.source
        )
    }
}

/// Where a page of costs continues: after this date and id (costs are
/// listed by date, then id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostCursor {
    pub incurred_on: NaiveDate,
    pub id: Uuid,
}

impl std::fmt::Display for CostCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.incurred_on, self.id)
    }
}

impl std::str::FromStr for CostCursor {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (date, id) = s.split_once('/').ok_or("no separator")?;
        Ok(CostCursor {
            incurred_on: date.parse().map_err(|_| "a bad date")?,
            id: id.parse().map_err(|_| "a bad id")?,
        })
    }
}

/// A page of a project's costs, by date then id (keyset pagination: costs
/// posted while a client pages never make it skip or repeat one).
pub async fn costs(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    project_id: Uuid,
    filter: &CostFilter,
    page_size: u32,
    after: Option<CostCursor>,
) -> Result<crate::page::Page<Cost>> {
    use sea_orm::{Condition, QuerySelect};
    let mut query = cost::Entity::find()
        .filter(cost::Column::OrganisationId.eq(organisation_id))
        .filter(cost::Column::ProjectId.eq(project_id));
    if let Some(from) = filter.from {
        query = query.filter(cost::Column::IncurredOn.gte(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(cost::Column::IncurredOn.lte(to));
    }
    if let Some(category) = filter.category {
        query = query.filter(cost::Column::Category.eq(category.as_str()));
    }
    if let Some(centre) = &filter.cost_centre {
        query = query.filter(cost::Column::CostCentre.eq(centre.as_str()));
    }
    if let Some(period) = &filter.posting_period {
        query = query.filter(cost::Column::PostingPeriod.eq(period.as_str()));
    }
    if let Some(source) = &filter.source {
        query = query.filter(cost::Column::Source.eq(source.as_str()));
    }
    if let Some(after) = after {
        query = query.filter(
            Condition::any()
                .add(cost::Column::IncurredOn.gt(after.incurred_on))
                .add(
                    Condition::all()
                        .add(cost::Column::IncurredOn.eq(after.incurred_on))
                        .add(cost::Column::Id.gt(after.id)),
                ),
        );
    }
    let rows = query
        .order_by_asc(cost::Column::IncurredOn)
        .order_by_asc(cost::Column::Id)
        .limit(u64::from(page_size) + 1)
        .all(conn)
        .await
        .map_err(db_error)?;
    Ok(crate::page::paginate(
        rows,
        page_size,
        &filter.key(project_id),
        |c| CostCursor {
            incurred_on: c.incurred_on,
            id: c.id,
        },
    ))
}

/// A project's cost by cost centre ("" for lines without one), by cost
/// centre: its rows of the cost-centre aggregate kept by the writes (the
/// portfolio's breakdown and filter read the same rows).
pub async fn cost_by_cost_centre(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    project_id: Uuid,
) -> Result<Vec<(String, i64)>> {
    use crate::entity::project_cost_centre as centre;
    use sea_orm::QuerySelect;
    centre::Entity::find()
        .select_only()
        .column(centre::Column::CostCentre)
        .column(centre::Column::AmountMinor)
        .filter(centre::Column::OrganisationId.eq(organisation_id))
        .filter(centre::Column::ProjectId.eq(project_id))
        .order_by_asc(centre::Column::CostCentre)
        .into_tuple::<(String, i64)>()
        .all(conn)
        .await
        .map_err(db_error)
}

/// Reads a project's budget.
pub async fn budget(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    project_id: Uuid,
) -> Result<Option<Budget>> {
    budget::Entity::find_by_id(project_id)
        .filter(budget::Column::OrganisationId.eq(organisation_id))
        .one(conn)
        .await
        .map_err(db_error)?
        .map(budget_from)
        .transpose()
}

/// Sets (creates or replaces) a project's budget.
pub async fn set_budget(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    project_id: Uuid,
    total: Money,
    by_category: &[(CostCategory, Money)],
    caller: &Caller,
) -> Result<Budget> {
    let mut change = Change::begin(db, organisation_id, caller, Action::SetBudget).await?;
    change.project_for(project_id, "project").await?;
    change.touch(project_id);
    let before = budget(change.conn(), organisation_id, project_id).await?;
    let json_categories = Value::Array(
        by_category
            .iter()
            .map(|(c, m)| json!({"category": c.as_str(), "amount_minor": m.minor_units()}))
            .collect(),
    );
    let model = budget::ActiveModel {
        project_id: Set(project_id),
        organisation_id: Set(organisation_id),
        total_minor: Set(total.minor_units()),
        currency: Set(total.currency().as_str().to_owned()),
        by_category: Set(json_categories.to_string()),
        update_time: Set(Utc::now()),
        version: Set(before.as_ref().map_or(1, |b| b.version + 1)),
    };
    let stored = if before.is_some() {
        model.update(change.conn()).await
    } else {
        model.insert(change.conn()).await
    }
    .map_err(db_error)?;
    let view = |b: &Budget| json!({"total": b.total.to_string(), "by_category": b.by_category.iter().map(|(c, m)| json!({"category": c.as_str(), "amount": m.to_string()})).collect::<Vec<_>>()});
    let after = budget_from(stored)?;
    change.event(NewEvent {
        project_id: Some(project_id),
        action: "finance.budget_set",
        resource_type: "budget",
        resource_id: project_id.to_string(),
        before: before.as_ref().map(view),
        after: view(&after),
        chained: false,
    });
    change.commit().await?;
    Ok(after)
}

/// A recorded benefit.
pub type Benefit = benefit::Model;

/// Records a benefit (savings, revenue, avoided cost).
pub async fn record_benefit(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    project_id: Uuid,
    kind: BenefitKind,
    amount: Money,
    date: NaiveDate,
    description: &str,
    caller: &Caller,
) -> Result<Benefit> {
    let mut change = Change::begin(db, organisation_id, caller, Action::RecordBenefit).await?;
    change.project_for(project_id, "project").await?;
    change.touch(project_id);
    let stored = benefit::ActiveModel {
        id: Set(Uuid::now_v7()),
        organisation_id: Set(organisation_id),
        project_id: Set(project_id),
        kind: Set(kind.as_str().to_owned()),
        amount_minor: Set(amount.minor_units()),
        currency: Set(amount.currency().as_str().to_owned()),
        benefit_date: Set(date),
        description: Set(description.to_owned()),
        create_time: Set(Utc::now()),
    }
    .insert(change.conn())
    .await
    .map_err(db_error)?;
    crate::aggregates::add_money(
        change.conn(),
        organisation_id,
        [MoneyLine::benefit(project_id, date, stored.amount_minor)],
    )
    .await?;
    change.event(NewEvent {
        project_id: Some(project_id),
        action: "finance.benefit_recorded",
        resource_type: "benefit",
        resource_id: stored.id.to_string(),
        before: None,
        after: json!({"kind": kind.as_str(), "amount": amount.to_string(), "currency": stored.currency, "date": date, "description": description}),
        chained: false,
    });
    change.commit().await?;
    Ok(stored)
}

/// A project's recorded benefits, by date.
pub async fn benefits(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    project_id: Uuid,
) -> Result<Vec<Benefit>> {
    benefit::Entity::find()
        .filter(benefit::Column::OrganisationId.eq(organisation_id))
        .filter(benefit::Column::ProjectId.eq(project_id))
        .order_by_asc(benefit::Column::BenefitDate)
        .order_by_asc(benefit::Column::Id)
        .all(conn)
        .await
        .map_err(db_error)
}

/// Benefits derived from the project's monetised KPIs, per review period.
pub async fn derived_benefits(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    project_id: Uuid,
) -> Result<Vec<(String, NaiveDate, Money)>> {
    let stats = crate::aggregates::load_kpi_stats(conn, &[project_id]).await?;
    let mut out = Vec::new();
    for k in kpis::list(conn, organisation_id, project_id, None, false).await? {
        if k.value_per_unit.is_none() {
            continue;
        }
        let r = kpi::result_from_stats(&k, stats.get(&k.id).unwrap_or(&kpi::KpiStats::new()));
        for (day, money) in kpi::derived_benefits(&k, &r) {
            out.push((k.name.clone(), day, money));
        }
    }
    Ok(out)
}

/// Everything a sponsor asks of a project's money, from its aggregates.
pub async fn financials(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    project_id: Uuid,
    currency: CurrencyCode,
    discount_rate: Decimal,
) -> Result<Financials> {
    let derived: Vec<BenefitLine> = derived_benefits(conn, organisation_id, project_id)
        .await?
        .into_iter()
        .map(|(_, date, m)| BenefitLine {
            amount_minor: m.minor_units(),
            date,
        })
        .collect();
    let totals = crate::aggregates::load_money(conn, &[project_id], true)
        .await?
        .remove(&project_id)
        .unwrap_or_default();
    let b = budget(conn, organisation_id, project_id).await?;
    Ok(financials_of(
        currency,
        discount_rate,
        totals,
        &derived,
        b.as_ref(),
    ))
}
