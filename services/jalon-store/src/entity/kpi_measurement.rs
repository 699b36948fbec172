use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "kpi_measurements")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub kpi_id: Uuid,
    pub value: f64,
    pub measure_time: DateTimeUtc,
    pub period_start: Option<Date>,
    pub period_end: Option<Date>,
    pub stage: String,
    pub sample_size: Option<i64>,
    pub std_dev: Option<f64>,
    pub source: String,
    pub external_ref: Option<String>,
    pub late_baseline: bool,
    pub create_time: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
