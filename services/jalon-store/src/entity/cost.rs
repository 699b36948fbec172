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
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
