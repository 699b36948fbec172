use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "costs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub project_id: Uuid,
    pub amount_minor: i64,
    pub currency: String,
    pub category: String,
    pub nature: String,
    pub incurred_on: Date,
    pub cost_centre: String,
    pub phase: String,
    pub description: String,
    pub external_ref: Option<String>,
    pub create_time: DateTimeUtc,
    /// A registered source's name, or "manual".
    pub source: String,
    /// "YYYY-MM".
    pub posting_period: String,
    pub original_amount_minor: Option<i64>,
    pub original_currency: Option<String>,
    /// A decimal string.
    pub exchange_rate: Option<String>,
    pub rate_date: Option<Date>,
    pub reverses_cost_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
