use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub sequence: i64,
    pub project_id: Option<Uuid>,
    pub actor_person_id: Option<Uuid>,
    pub actor_subject: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub before_json: String,
    pub after_json: String,
    pub time: DateTimeUtc,
    pub chain_sequence: i64,
    pub previous_hash: String,
    pub hash: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
