use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "kpi_stats")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub kpi_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub stage: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub period: String,
    pub organisation_id: Uuid,
    pub project_id: Uuid,
    pub count: i64,
    pub sum_value: f64,
    pub first_time: DateTimeUtc,
    pub last_time: DateTimeUtc,
    pub last_value: f64,
    pub late_count: i64,
    pub incomplete: i64,
    pub pooled_n: f64,
    pub pooled_sum: f64,
    pub pooled_ss: f64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
