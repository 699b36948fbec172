//! Costs, budgets and benefits of projects, and their financials.

use std::collections::{BTreeSet, HashMap};

use chrono::{NaiveDate, Utc};
use jalon_core::{
    Error, Result,
    authz::Action,
    finance::{BenefitKind, BenefitLine, CostCategory, CostNature, Financials},
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
    aggregates::MoneyKey,
    audit::NewEvent,
    change::{Caller, Change},
    entity::{benefit, budget, cost},
    error::db_error,
    kpis,
};

/// A cost to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCost {
    pub project_id: Uuid,
    pub amount: Money,
    pub category: CostCategory,
    pub nature: CostNature,
    pub incurred_on: NaiveDate,
    pub cost_centre: String,
    /// Defaults to the project's phase when the cost is recorded.
    pub phase: Option<Phase>,
    pub description: String,
    pub external_ref: Option<String>,
}

/// A stored cost.
pub type Cost = cost::Model;

/// What became of one cost.
#[derive(Debug, Clone, PartialEq)]
pub enum CostOutcome {
    Accepted(Cost),
    /// Already posted under this external_ref, same amount.
    Duplicate(Cost),
    Rejected(Error),
}

/// Records costs (one, or an import's batch) in one change; each row is
/// judged on its own. The batch costs a fixed number of statements whatever
/// the projects' history: the projects are read and locked together, the
/// external_refs looked up in one query, the accepted rows inserted
/// together, and the money aggregates moved by what was accepted.
pub async fn record_costs(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    caller: &Caller,
    action: Action,
    rows: &[NewCost],
) -> Result<Vec<CostOutcome>> {
    let mut change = Change::begin(db, organisation_id, caller, action).await?;
    let wanted: BTreeSet<Uuid> = rows.iter().map(|r| r.project_id).collect();
    let projects = change
        .projects_for(wanted.iter().copied(), "project")
        .await?;
    let refs: Vec<String> = rows.iter().filter_map(|r| r.external_ref.clone()).collect();
    let mut posted: HashMap<String, Cost> = HashMap::new();
    let keys: Vec<Vec<sea_orm::Value>> = refs.iter().map(|r| vec![r.clone().into()]).collect();
    for c in crate::aggregates::find_by_keys::<cost::Entity>(
        change.conn(),
        "costs",
        &keys,
        Some(organisation_id.into()),
        |org| format!("t.organisation_id = {org} AND t.external_ref = r.column1"),
    )
    .await?
    {
        if let Some(r) = c.external_ref.clone() {
            posted.insert(r, c);
        }
    }
    let now = Utc::now();
    let mut outcomes = Vec::with_capacity(rows.len());
    let mut accepted = Vec::new();
    for row in rows {
        let project = match projects.get(&row.project_id) {
            Some(Ok(project)) => project,
            Some(Err(e)) => {
                outcomes.push(CostOutcome::Rejected(e.clone()));
                continue;
            }
            None => {
                outcomes.push(CostOutcome::Rejected(Error::NotFound {
                    resource: "project",
                }));
                continue;
            }
        };
        if let Some(external_ref) = &row.external_ref
            && let Some(existing) = posted.get(external_ref)
        {
            outcomes.push(
                if existing.amount_minor == row.amount.minor_units()
                    && existing.project_id == row.project_id
                {
                    CostOutcome::Duplicate(existing.clone())
                } else {
                    CostOutcome::Rejected(Error::AlreadyExists(format!(
                        "external_ref {external_ref} was posted with another amount or project"
                    )))
                },
            );
            continue;
        }
        let stored = cost::Model {
            id: Uuid::now_v7(),
            organisation_id,
            project_id: row.project_id,
            amount_minor: row.amount.minor_units(),
            currency: row.amount.currency().as_str().to_owned(),
            category: row.category.as_str().to_owned(),
            nature: row.nature.as_str().to_owned(),
            incurred_on: row.incurred_on,
            cost_centre: row.cost_centre.clone(),
            phase: row.phase.unwrap_or(project.phase).as_str().to_owned(),
            description: row.description.clone(),
            external_ref: row.external_ref.clone(),
            create_time: now,
        };
        if let Some(r) = &stored.external_ref {
            posted.insert(r.clone(), stored.clone());
        }
        change.touch(row.project_id);
        accepted.push((
            row.phase.unwrap_or(project.phase),
            row.category,
            stored.clone(),
        ));
        outcomes.push(CostOutcome::Accepted(stored));
    }
    if accepted.is_empty() {
        return Ok(outcomes);
    }
    let money = accepted
        .iter()
        .map(|(phase, category, c)| {
            (
                MoneyKey::cost(c.project_id, c.incurred_on, *category, *phase),
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
    let summary: Vec<Value> = accepted
        .iter()
        .map(|(_, _, c)| json!({"id": c.id, "project_id": c.project_id, "amount": Money::from_minor(c.amount_minor, rows[0].amount.currency()).to_string(), "currency": c.currency, "category": c.category, "external_ref": c.external_ref}))
        .collect();
    let single = wanted.len() == 1;
    change.event(NewEvent {
        project_id: single.then(|| rows[0].project_id),
        action: "finance.costs_recorded",
        resource_type: "cost",
        resource_id: format!("{} cost(s)", summary.len()),
        before: None,
        after: Value::Array(summary),
        chained: false,
    });
    change.commit().await?;
    Ok(outcomes)
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
}

impl CostFilter {
    /// A stable rendering, bound into page tokens (with the project).
    pub fn key(&self, project_id: Uuid) -> String {
        format!(
            "project={project_id};from={:?};to={:?};category={:?};cost_centre={:?}",
            self.from,
            self.to,
            self.category.map(|c| c.as_str()),
            self.cost_centre
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
        [(MoneyKey::benefit(project_id, date), stored.amount_minor)],
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
