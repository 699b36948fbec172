use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "projects")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub name: String,
    pub description: String,
    pub business_unit: String,
    pub objective: String,
    pub gain_quantified: bool,
    pub expected_gain_minor: Option<i64>,
    pub expected_gain_currency: Option<String>,
    pub usage: Option<String>,
    pub result_type: Option<String>,
    pub data_kinds: String,
    pub algorithm_approach: Option<String>,
    pub execution: Option<String>,
    pub hosting: Option<String>,
    pub personal_data: bool,
    pub ai_act_tier: String,
    pub ai_act_reason: String,
    pub sponsor_id: Option<Uuid>,
    pub lead_id: Option<Uuid>,
    pub phase: String,
    pub status: String,
    pub planned_start: Option<Date>,
    pub planned_end: Option<Date>,
    pub create_time: DateTimeUtc,
    pub update_time: DateTimeUtc,
    pub version: i64,
    pub underperforming: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
