use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_endpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub url: String,
    pub description: String,
    /// A JSON array of event types; empty for every type.
    pub event_types: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub disable_time: Option<DateTimeUtc>,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expire_time: Option<DateTimeUtc>,
    pub cursor: i64,
    pub failing_since: Option<DateTimeUtc>,
    pub create_time: DateTimeUtc,
    pub update_time: DateTimeUtc,
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
