//! Costs, budgets and benefits of projects, and their financials.

use std::str::FromStr;

use chrono::{NaiveDate, Utc};
use jalon_core::{
    Error, Result,
    finance::{self, BenefitKind, BenefitLine, CostCategory, CostLine, CostNature, Financials},
    kpi,
    project::{Phase, Project},
    values::{CurrencyCode, Money},
};
use rust_decimal::Decimal;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, QueryFilter, QueryOrder,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    audit::{self, Actor, NewEvent},
    begin_write, commit,
    entity::{benefit, budget, cost},
    error::db_error,
    kpis,
    people::lock_organisation,
    projects,
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

/// Records costs (one, or an import's batch) in one transaction; each row is
/// judged on its own.
pub async fn record_costs(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    rows: &[NewCost],
    actor: &Actor,
    authorise: impl Fn(&Project) -> Result<()>,
) -> Result<Vec<CostOutcome>> {
    let txn = begin_write(db).await?;
    lock_organisation(&txn, organisation_id).await?;
    let mut projects_seen: std::collections::HashMap<Uuid, std::result::Result<Project, Error>> =
        std::collections::HashMap::new();
    let mut outcomes = Vec::with_capacity(rows.len());
    let mut accepted = Vec::new();
    for row in rows {
        if let std::collections::hash_map::Entry::Vacant(slot) = projects_seen.entry(row.project_id)
        {
            let found = match projects::get(&txn, organisation_id, row.project_id).await {
                Ok(p) => authorise(&p).map(|()| p),
                Err(e @ Error::NotFound { .. }) => Err(e),
                Err(e) => return Err(e),
            };
            slot.insert(found);
        }
        let project = match projects_seen.get(&row.project_id) {
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
        if let Some(external_ref) = &row.external_ref {
            let existing = cost::Entity::find()
                .filter(cost::Column::OrganisationId.eq(organisation_id))
                .filter(cost::Column::ExternalRef.eq(external_ref.as_str()))
                .one(&txn)
                .await
                .map_err(db_error)?;
            if let Some(existing) = existing {
                outcomes.push(
                    if existing.amount_minor == row.amount.minor_units()
                        && existing.project_id == row.project_id
                    {
                        CostOutcome::Duplicate(existing)
                    } else {
                        CostOutcome::Rejected(Error::AlreadyExists(format!(
                            "external_ref {external_ref} was posted with another amount or project"
                        )))
                    },
                );
                continue;
            }
        }
        let stored = cost::ActiveModel {
            id: Set(Uuid::now_v7()),
            organisation_id: Set(organisation_id),
            project_id: Set(row.project_id),
            amount_minor: Set(row.amount.minor_units()),
            currency: Set(row.amount.currency().as_str().to_owned()),
            category: Set(row.category.as_str().to_owned()),
            nature: Set(row.nature.as_str().to_owned()),
            incurred_on: Set(row.incurred_on),
            cost_centre: Set(row.cost_centre.clone()),
            phase: Set(row.phase.unwrap_or(project.phase).as_str().to_owned()),
            description: Set(row.description.clone()),
            external_ref: Set(row.external_ref.clone()),
            create_time: Set(Utc::now()),
        }
        .insert(&txn)
        .await
        .map_err(db_error)?;
        accepted.push(json!({"id": stored.id, "project_id": stored.project_id, "amount": row.amount.to_string(), "currency": stored.currency, "category": stored.category, "external_ref": stored.external_ref}));
        outcomes.push(CostOutcome::Accepted(stored));
    }
    if !accepted.is_empty() {
        audit::record(
            &txn,
            organisation_id,
            actor,
            NewEvent {
                project_id: (rows.iter().all(|r| r.project_id == rows[0].project_id))
                    .then(|| rows[0].project_id),
                action: "finance.costs_recorded",
                resource_type: "cost",
                resource_id: format!("{} cost(s)", accepted.len()),
                before: None,
                after: Value::Array(accepted),
                chained: false,
            },
        )
        .await?;
    }
    crate::portfolio::refresh(&txn, organisation_id, rows.iter().map(|r| r.project_id)).await?;
    commit(txn).await?;
    Ok(outcomes)
}

/// A project's costs, by date.
pub async fn costs(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    project_id: Uuid,
) -> Result<Vec<Cost>> {
    cost::Entity::find()
        .filter(cost::Column::OrganisationId.eq(organisation_id))
        .filter(cost::Column::ProjectId.eq(project_id))
        .order_by_asc(cost::Column::IncurredOn)
        .order_by_asc(cost::Column::Id)
        .all(conn)
        .await
        .map_err(db_error)
}

/// A project's budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub total: Money,
    pub by_category: Vec<(CostCategory, Money)>,
    pub update_time: chrono::DateTime<Utc>,
    pub version: i64,
}

fn budget_from(m: budget::Model) -> Option<Budget> {
    let currency = CurrencyCode::parse(&m.currency).ok()?;
    let by_category = match serde_json::from_str::<Value>(&m.by_category).ok()? {
        Value::Array(items) => items
            .iter()
            .filter_map(|v| {
                Some((
                    CostCategory::from_str(v["category"].as_str()?).ok()?,
                    Money::from_minor(v["amount_minor"].as_i64()?, currency),
                ))
            })
            .collect(),
        _ => Vec::new(),
    };
    Some(Budget {
        total: Money::from_minor(m.total_minor, currency),
        by_category,
        update_time: m.update_time,
        version: m.version,
    })
}

/// Reads a project's budget.
pub async fn budget(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    project_id: Uuid,
) -> Result<Option<Budget>> {
    Ok(budget::Entity::find_by_id(project_id)
        .filter(budget::Column::OrganisationId.eq(organisation_id))
        .one(conn)
        .await
        .map_err(db_error)?
        .and_then(budget_from))
}

/// Sets (creates or replaces) a project's budget.
pub async fn set_budget(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    project_id: Uuid,
    total: Money,
    by_category: &[(CostCategory, Money)],
    actor: &Actor,
) -> Result<Budget> {
    let txn = begin_write(db).await?;
    lock_organisation(&txn, organisation_id).await?;
    projects::get(&txn, organisation_id, project_id).await?;
    let before = budget(&txn, organisation_id, project_id).await?;
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
        model.update(&txn).await
    } else {
        model.insert(&txn).await
    }
    .map_err(db_error)?;
    let view = |b: &Budget| json!({"total": b.total.to_string(), "by_category": b.by_category.iter().map(|(c, m)| json!({"category": c.as_str(), "amount": m.to_string()})).collect::<Vec<_>>()});
    let after = budget_from(stored).ok_or_else(|| Error::Internal("budget not readable".into()))?;
    audit::record(
        &txn,
        organisation_id,
        actor,
        NewEvent {
            project_id: Some(project_id),
            action: "finance.budget_set",
            resource_type: "budget",
            resource_id: project_id.to_string(),
            before: before.as_ref().map(view),
            after: view(&after),
            chained: false,
        },
    )
    .await?;
    crate::portfolio::refresh(&txn, organisation_id, [project_id]).await?;
    commit(txn).await?;
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
    actor: &Actor,
) -> Result<Benefit> {
    let txn = begin_write(db).await?;
    lock_organisation(&txn, organisation_id).await?;
    projects::get(&txn, organisation_id, project_id).await?;
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
    .insert(&txn)
    .await
    .map_err(db_error)?;
    audit::record(&txn, organisation_id, actor, NewEvent {
        project_id: Some(project_id),
        action: "finance.benefit_recorded",
        resource_type: "benefit",
        resource_id: stored.id.to_string(),
        before: None,
        after: json!({"kind": kind.as_str(), "amount": amount.to_string(), "currency": stored.currency, "date": date, "description": description}),
        chained: false,
    })
    .await?;
    crate::portfolio::refresh(&txn, organisation_id, [project_id]).await?;
    commit(txn).await?;
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
    let mut out = Vec::new();
    for k in kpis::list(conn, organisation_id, project_id, None, false).await? {
        if k.value_per_unit.is_none() {
            continue;
        }
        let r = kpi::result(&k, &kpis::measurements(conn, k.id, None).await?);
        for (day, money) in kpi::derived_benefits(&k, &r) {
            out.push((k.name.clone(), day, money));
        }
    }
    Ok(out)
}

/// Everything a sponsor asks of a project's money.
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
    financials_with(
        conn,
        organisation_id,
        project_id,
        currency,
        discount_rate,
        derived,
    )
    .await
}

/// A project's money, with the benefits derived from its KPIs already
/// computed.
pub(crate) async fn financials_with(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    project_id: Uuid,
    currency: CurrencyCode,
    discount_rate: Decimal,
    derived: Vec<BenefitLine>,
) -> Result<Financials> {
    let cost_lines: Vec<CostLine> = costs(conn, organisation_id, project_id)
        .await?
        .into_iter()
        .filter_map(|c| {
            Some(CostLine {
                amount_minor: c.amount_minor,
                category: c.category.parse().ok()?,
                phase: c.phase.parse().ok()?,
                date: c.incurred_on,
            })
        })
        .collect();
    let recorded: Vec<BenefitLine> = benefits(conn, organisation_id, project_id)
        .await?
        .into_iter()
        .map(|b| BenefitLine {
            amount_minor: b.amount_minor,
            date: b.benefit_date,
        })
        .collect();
    let b = budget(conn, organisation_id, project_id).await?;
    let by_category: Vec<(CostCategory, i64)> = b
        .as_ref()
        .map(|b| {
            b.by_category
                .iter()
                .map(|(c, m)| (*c, m.minor_units()))
                .collect()
        })
        .unwrap_or_default();
    Ok(finance::financials(
        currency,
        discount_rate,
        &cost_lines,
        &recorded,
        &derived,
        b.map(|b| b.total.minor_units()),
        &by_category,
    ))
}
