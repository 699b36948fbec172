//! Budget rows.

use std::collections::HashMap;

use chrono::Utc;
use jalon_core::{
    Result,
    finance::{BenefitLine, CostCategory, Financials, MoneyTotals, financials_of_totals},
    values::{CurrencyCode, Money},
};
use rust_decimal::Decimal;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::Value;
use uuid::Uuid;

use crate::{
    entity::budget,
    error::{db_error, unknown},
};

/// A project's budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub total: Money,
    pub by_category: Vec<(CostCategory, Money)>,
    pub update_time: chrono::DateTime<Utc>,
    pub version: i64,
}

/// A stored budget; a currency, category or amount the code cannot read
/// is an error naming the row, never dropped.
pub(crate) fn budget_from(m: budget::Model) -> Result<Budget> {
    let bad = |what: String| unknown("project_budgets", m.project_id, what);
    let currency = CurrencyCode::parse(&m.currency).map_err(bad)?;
    let items = match serde_json::from_str::<Value>(&m.by_category) {
        Ok(Value::Array(items)) => items,
        Ok(other) => return Err(bad(format!("by_category is not a list: {other}"))),
        Err(e) => return Err(bad(format!("by_category: {e}"))),
    };
    let by_category = items
        .iter()
        .map(|v| {
            let category = v["category"]
                .as_str()
                .ok_or_else(|| bad(format!("a category without a name: {v}")))?
                .parse::<CostCategory>()
                .map_err(bad)?;
            let minor = v["amount_minor"]
                .as_i64()
                .ok_or_else(|| bad(format!("a category without an amount: {v}")))?;
            Ok((category, Money::from_minor(minor, currency)))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Budget {
        total: Money::from_minor(m.total_minor, currency),
        by_category,
        update_time: m.update_time,
        version: m.version,
    })
}

/// The budgets of projects of an organisation.
pub(crate) async fn budgets_of(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    project_ids: &[Uuid],
) -> Result<HashMap<Uuid, Budget>> {
    let mut out = HashMap::new();
    for chunk in project_ids.chunks(crate::CHUNK) {
        for m in budget::Entity::find()
            .filter(budget::Column::OrganisationId.eq(organisation_id))
            .filter(budget::Column::ProjectId.is_in(chunk.to_vec()))
            .all(conn)
            .await
            .map_err(db_error)?
        {
            out.insert(m.project_id, budget_from(m)?);
        }
    }
    Ok(out)
}

/// The money rules over a project's summed money and budget.
pub(crate) fn financials_of(
    currency: CurrencyCode,
    discount_rate: Decimal,
    totals: MoneyTotals,
    derived: &[BenefitLine],
    b: Option<&Budget>,
) -> Financials {
    let by_category: Vec<(CostCategory, i64)> = b
        .map(|b| {
            b.by_category
                .iter()
                .map(|(c, m)| (*c, m.minor_units()))
                .collect()
        })
        .unwrap_or_default();
    financials_of_totals(
        currency,
        discount_rate,
        totals,
        derived,
        b.map(|b| b.total.minor_units()),
        &by_category,
    )
}
