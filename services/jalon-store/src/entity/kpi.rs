use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "kpis")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub description: String,
    pub unit: String,
    pub unit_kind: String,
    pub direction: String,
    pub category: String,
    pub is_primary: bool,
    pub target: Option<f64>,
    pub method: String,
    pub cadence: Option<String>,
    pub value_per_unit_minor: Option<i64>,
    pub value_per_unit_currency: Option<String>,
    pub volume_per_period: Option<String>,
    pub archived: bool,
    pub create_time: DateTimeUtc,
    pub update_time: DateTimeUtc,
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
