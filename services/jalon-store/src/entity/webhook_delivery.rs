use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_position: i64,
    pub event_type: String,
    pub body: String,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_time: DateTimeUtc,
    pub give_up_time: DateTimeUtc,
    pub lease_token: Option<Uuid>,
    pub lease_expire_time: Option<DateTimeUtc>,
    pub last_attempt_time: Option<DateTimeUtc>,
    pub last_status_code: Option<i32>,
    pub last_latency_ms: Option<i64>,
    pub last_error: Option<String>,
    pub create_time: DateTimeUtc,
    pub update_time: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
