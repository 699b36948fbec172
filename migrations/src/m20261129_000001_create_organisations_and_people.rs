//! Organisations (tenants), their people, and the idempotency keys of Create
//! calls.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organisations {
    Table,
    Id,
    DisplayName,
    Slug,
    DefaultCurrency,
    DiscountRate,
    FiscalYearStartMonth,
    ExternalRef,
    CreateTime,
    UpdateTime,
    DeleteTime,
    Version,
}

#[derive(DeriveIden)]
enum People {
    Table,
    Id,
    OrganisationId,
    Subject,
    Email,
    DisplayName,
    Department,
    JobTitle,
    ManagerId,
    Role,
    Active,
    ExternalId,
    CreateTime,
    UpdateTime,
    DeactivateTime,
    Version,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    Scope,
    RequestId,
    Fingerprint,
    ResourceId,
    CreateTime,
}

fn index(
    name: &str,
    table: impl IntoIden + 'static,
    cols: &[&'static str],
) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(name).table(table);
    for col in cols {
        stmt.col(Alias::new(*col));
    }
    stmt.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Organisations::Table)
                    .col(pk_uuid(Organisations::Id))
                    .col(string_len(Organisations::DisplayName, 200))
                    .col(string_len(Organisations::Slug, 63))
                    .col(string_len(Organisations::DefaultCurrency, 3))
                    // Exact decimal kept as text: SQLite has no exact decimal type.
                    .col(string_len(Organisations::DiscountRate, 32))
                    .col(small_integer(Organisations::FiscalYearStartMonth))
                    .col(string_len_null(Organisations::ExternalRef, 200))
                    .col(timestamp_with_time_zone(Organisations::CreateTime))
                    .col(timestamp_with_time_zone(Organisations::UpdateTime))
                    .col(timestamp_with_time_zone_null(Organisations::DeleteTime))
                    .col(big_integer(Organisations::Version))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index("ux_organisations_slug", Organisations::Table, &["slug"])
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "ux_organisations_external_ref",
                    Organisations::Table,
                    &["external_ref"],
                )
                .unique()
                .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(People::Table)
                    .col(pk_uuid(People::Id))
                    .col(uuid(People::OrganisationId))
                    .col(string_len(People::Subject, 255))
                    .col(string_len(People::Email, 254))
                    .col(string_len(People::DisplayName, 200))
                    .col(string_len(People::Department, 200))
                    .col(string_len(People::JobTitle, 200))
                    .col(uuid_null(People::ManagerId))
                    .col(string_len(People::Role, 16))
                    .col(boolean(People::Active))
                    .col(string_len_null(People::ExternalId, 200))
                    .col(timestamp_with_time_zone(People::CreateTime))
                    .col(timestamp_with_time_zone(People::UpdateTime))
                    .col(timestamp_with_time_zone_null(People::DeactivateTime))
                    .col(big_integer(People::Version))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_people_organisation")
                            .from(People::Table, People::OrganisationId)
                            .to(Organisations::Table, Organisations::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_people_manager")
                            .from(People::Table, People::ManagerId)
                            .to(People::Table, People::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        // Uniqueness rules of the domain, mapped to ALREADY_EXISTS.
        for (name, cols) in [
            ("ux_people_subject", &["organisation_id", "subject"][..]),
            ("ux_people_email", &["organisation_id", "email"][..]),
            (
                "ux_people_external_id",
                &["organisation_id", "external_id"][..],
            ),
        ] {
            manager
                .create_index(index(name, People::Table, cols).unique().to_owned())
                .await?;
        }
        // List orders and filters: keyset pagination on id within a filter.
        for (name, cols) in [
            ("ix_people_organisation", &["organisation_id", "id"][..]),
            ("ix_people_role", &["organisation_id", "role", "id"][..]),
            ("ix_people_active", &["organisation_id", "active", "id"][..]),
            (
                "ix_people_department",
                &["organisation_id", "department", "id"][..],
            ),
            ("ix_people_manager", &["manager_id"][..]),
            // Memberships of a caller, for ListOrganisations and every
            // authorisation check.
            ("ix_people_membership", &["subject", "organisation_id"][..]),
        ] {
            manager
                .create_index(index(name, People::Table, cols))
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .col(string_len(IdempotencyKeys::Scope, 200))
                    .col(uuid(IdempotencyKeys::RequestId))
                    .col(string_len(IdempotencyKeys::Fingerprint, 64))
                    .col(uuid(IdempotencyKeys::ResourceId))
                    .col(timestamp_with_time_zone(IdempotencyKeys::CreateTime))
                    .primary_key(
                        Index::create()
                            .name("pk_idempotency_keys")
                            .col(IdempotencyKeys::Scope)
                            .col(IdempotencyKeys::RequestId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_idempotency_keys_create_time",
                IdempotencyKeys::Table,
                &["create_time"],
            ))
            .await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
