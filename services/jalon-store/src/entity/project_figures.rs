use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "project_figures")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub project_id: Uuid,
    pub organisation_id: Uuid,
    pub name: String,
    pub business_unit: String,
    pub sponsor_id: Option<Uuid>,
    pub lead_id: Option<Uuid>,
    pub phase: String,
    pub phase_rank: i16,
    pub status: String,
    pub ai_act_tier: String,
    pub project_create_time: DateTimeUtc,
    pub phase_enter_time: DateTimeUtc,
    pub gate_watch_since: Option<DateTimeUtc>,
    pub review_due_time: Option<DateTimeUtc>,
    pub condition_due_date: Option<Date>,
    pub readiness: f64,
    pub open_must_items: i32,
    pub kpi_gain: Option<f64>,
    pub budget_minor: Option<i64>,
    pub cost_minor: i64,
    pub benefit_minor: i64,
    pub roi_micros: Option<i64>,
    pub paid_back: bool,
    pub alert_bits: i32,
    pub static_alert_count: i32,
    pub update_time: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
