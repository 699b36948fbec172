use sea_orm::entity::prelude::*;

/// A project's cost in one cost centre ("" for lines without one): the
/// net amount and the number of lines, kept by the writes of costs.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "project_cost_centres")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub project_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub cost_centre: String,
    pub organisation_id: Uuid,
    pub amount_minor: i64,
    pub lines: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
