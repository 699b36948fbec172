//! SCIM 2.0 provisioning (issue 13): an organisation's provisioning tokens
//! (only their SHA-256 hash is kept), the link between a SCIM User and a
//! person (userName, and the name, display name and e-mail addresses as the
//! identity provider sent them), SCIM Groups and their members, and the mapping of group
//! names to roles.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn name(s: &str) -> Alias {
    Alias::new(s)
}

fn fk(
    from_table: &str,
    from_col: &str,
    to_table: &str,
    to_col: &str,
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{from_table}_{from_col}"))
        .from(name(from_table), name(from_col))
        .to(name(to_table), name(to_col))
        .on_delete(on_delete)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(name("provisioning_tokens"))
                    .col(uuid(name("id")).primary_key())
                    .col(uuid(name("organisation_id")))
                    .col(string_len(name("display_name"), 200))
                    .col(string_len(name("secret_hash"), 64))
                    .col(string_len(name("created_by"), 255))
                    .col(timestamp_with_time_zone(name("create_time")))
                    .col(timestamp_with_time_zone_null(name("last_used_time")))
                    .col(timestamp_with_time_zone_null(name("revoke_time")))
                    .foreign_key(&mut fk(
                        "provisioning_tokens",
                        "organisation_id",
                        "organisations",
                        "id",
                        ForeignKeyAction::Restrict,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_provisioning_tokens_organisation")
                    .table(name("provisioning_tokens"))
                    .col(name("organisation_id"))
                    .col(name("id"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(name("scim_users"))
                    .col(uuid(name("person_id")).primary_key())
                    .col(uuid(name("organisation_id")))
                    .col(string_len(name("user_name"), 255))
                    // The userName lowercased: unique per organisation
                    // (userName is case-insensitive, RFC 7643 §4.1.1).
                    .col(string_len(name("user_name_key"), 255))
                    // The SCIM attributes kept as sent (name, displayName,
                    // emails): a JSON object.
                    .col(text(name("profile_json")))
                    .col(timestamp_with_time_zone(name("create_time")))
                    .foreign_key(&mut fk(
                        "scim_users",
                        "person_id",
                        "people",
                        "id",
                        ForeignKeyAction::Restrict,
                    ))
                    .foreign_key(&mut fk(
                        "scim_users",
                        "organisation_id",
                        "organisations",
                        "id",
                        ForeignKeyAction::Restrict,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_scim_users_user_name")
                    .table(name("scim_users"))
                    .col(name("organisation_id"))
                    .col(name("user_name_key"))
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(name("scim_groups"))
                    .col(uuid(name("id")).primary_key())
                    .col(uuid(name("organisation_id")))
                    .col(string_len(name("display_name"), 255))
                    // The displayName lowercased: unique per organisation,
                    // and what role mappings name.
                    .col(string_len(name("display_key"), 255))
                    .col(string_len_null(name("external_id"), 200))
                    .col(timestamp_with_time_zone(name("create_time")))
                    .col(timestamp_with_time_zone(name("update_time")))
                    .col(big_integer(name("version")))
                    .foreign_key(&mut fk(
                        "scim_groups",
                        "organisation_id",
                        "organisations",
                        "id",
                        ForeignKeyAction::Restrict,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_scim_groups_display_name")
                    .table(name("scim_groups"))
                    .col(name("organisation_id"))
                    .col(name("display_key"))
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(name("scim_group_members"))
                    .col(uuid(name("group_id")))
                    .col(uuid(name("person_id")))
                    .col(uuid(name("organisation_id")))
                    .primary_key(
                        Index::create()
                            .name("pk_scim_group_members")
                            .col(name("group_id"))
                            .col(name("person_id")),
                    )
                    .foreign_key(&mut fk(
                        "scim_group_members",
                        "group_id",
                        "scim_groups",
                        "id",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "scim_group_members",
                        "person_id",
                        "people",
                        "id",
                        ForeignKeyAction::Restrict,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_scim_group_members_person")
                    .table(name("scim_group_members"))
                    .col(name("person_id"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(name("group_role_mappings"))
                    .col(uuid(name("organisation_id")))
                    // The group's displayName lowercased.
                    .col(string_len(name("group_key"), 255))
                    .col(string_len(name("group_name"), 255))
                    .col(string_len(name("role"), 20))
                    .col(timestamp_with_time_zone(name("create_time")))
                    .col(timestamp_with_time_zone(name("update_time")))
                    .primary_key(
                        Index::create()
                            .name("pk_group_role_mappings")
                            .col(name("organisation_id"))
                            .col(name("group_key")),
                    )
                    .foreign_key(&mut fk(
                        "group_role_mappings",
                        "organisation_id",
                        "organisations",
                        "id",
                        ForeignKeyAction::Restrict,
                    ))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "group_role_mappings",
            "scim_group_members",
            "scim_groups",
            "scim_users",
            "provisioning_tokens",
        ] {
            manager
                .drop_table(Table::drop().table(name(table)).to_owned())
                .await?;
        }
        Ok(())
    }
}
