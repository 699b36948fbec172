use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "gate_reviews")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub project_id: Uuid,
    pub open_project_id: Option<Uuid>,
    pub from_phase: String,
    pub to_phase: Option<String>,
    pub state: String,
    pub requested_by: Option<Uuid>,
    pub request_time: DateTimeUtc,
    pub criteria_at_request: String,
    pub signatories: String,
    pub outcome: Option<String>,
    pub rationale: String,
    pub decided_by: Option<Uuid>,
    pub decide_time: Option<DateTimeUtc>,
    pub criteria_at_decision: Option<String>,
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
