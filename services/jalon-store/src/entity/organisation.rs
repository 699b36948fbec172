use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "organisations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub display_name: String,
    pub slug: String,
    pub default_currency: String,
    pub discount_rate: String,
    pub fiscal_year_start_month: i16,
    pub external_ref: Option<String>,
    pub create_time: DateTimeUtc,
    pub update_time: DateTimeUtc,
    pub delete_time: Option<DateTimeUtc>,
    pub version: i64,
    pub gate_overdue_days: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
