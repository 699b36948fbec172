use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "assessment_items")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub project_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    pub organisation_id: Uuid,
    pub phase: String,
    pub concern: String,
    pub kind: String,
    pub weight: i32,
    pub text: String,
    pub bank_version: i64,
    pub status: String,
    pub risk: Option<String>,
    pub note: String,
    pub evidence_uri: String,
    pub justification: String,
    pub answered_by: Option<Uuid>,
    pub answer_time: Option<DateTimeUtc>,
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
