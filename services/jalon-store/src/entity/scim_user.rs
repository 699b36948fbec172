use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "scim_users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub person_id: Uuid,
    pub organisation_id: Uuid,
    pub user_name: String,
    /// `user_name` lowercased.
    pub user_name_key: String,
    /// The SCIM attributes kept as sent (`name`, `displayName`,
    /// `emails`): a JSON object.
    pub profile_json: String,
    pub create_time: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
