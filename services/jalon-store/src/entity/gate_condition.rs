use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "gate_conditions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub project_id: Uuid,
    pub review_id: Uuid,
    pub description: String,
    pub owner_id: Uuid,
    pub due_date: Date,
    pub closed: bool,
    pub close_note: String,
    pub closed_by: Option<Uuid>,
    pub close_time: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
