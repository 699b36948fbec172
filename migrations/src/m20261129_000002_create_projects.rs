//! AI projects, their tags and their phase history.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
    OrganisationId,
    Name,
    Description,
    BusinessUnit,
    Objective,
    GainQuantified,
    ExpectedGainMinor,
    ExpectedGainCurrency,
    Usage,
    ResultType,
    DataKinds,
    AlgorithmApproach,
    Execution,
    Hosting,
    PersonalData,
    AiActTier,
    AiActReason,
    SponsorId,
    LeadId,
    Phase,
    Status,
    PlannedStart,
    PlannedEnd,
    CreateTime,
    UpdateTime,
    Version,
}

#[derive(DeriveIden)]
enum ProjectTags {
    Table,
    ProjectId,
    OrganisationId,
    Tag,
}

#[derive(DeriveIden)]
enum ProjectPhases {
    Table,
    ProjectId,
    Seq,
    Phase,
    EnterTime,
    LeaveTime,
}

#[derive(DeriveIden)]
enum Organisations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum People {
    Table,
    Id,
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

fn fk(
    name: &str,
    from: (Projects, Projects),
    to_table: impl IntoIden,
    to_col: impl IntoIden,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from.0, from.1)
        .to(to_table, to_col)
        .on_delete(ForeignKeyAction::Restrict)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Projects::Table)
                    .col(pk_uuid(Projects::Id))
                    .col(uuid(Projects::OrganisationId))
                    .col(string_len(Projects::Name, 200))
                    .col(text(Projects::Description))
                    .col(string_len(Projects::BusinessUnit, 200))
                    .col(text(Projects::Objective))
                    .col(boolean(Projects::GainQuantified))
                    // Money as integer minor units plus the currency: exact on
                    // both databases.
                    .col(big_integer_null(Projects::ExpectedGainMinor))
                    .col(string_len_null(Projects::ExpectedGainCurrency, 3))
                    .col(string_len_null(Projects::Usage, 32))
                    .col(string_len_null(Projects::ResultType, 32))
                    .col(string_len(Projects::DataKinds, 200))
                    .col(string_len_null(Projects::AlgorithmApproach, 32))
                    .col(string_len_null(Projects::Execution, 32))
                    .col(string_len_null(Projects::Hosting, 32))
                    .col(boolean(Projects::PersonalData))
                    .col(string_len(Projects::AiActTier, 16))
                    .col(text(Projects::AiActReason))
                    .col(uuid_null(Projects::SponsorId))
                    .col(uuid_null(Projects::LeadId))
                    .col(string_len(Projects::Phase, 32))
                    .col(string_len(Projects::Status, 32))
                    .col(date_null(Projects::PlannedStart))
                    .col(date_null(Projects::PlannedEnd))
                    .col(timestamp_with_time_zone(Projects::CreateTime))
                    .col(timestamp_with_time_zone(Projects::UpdateTime))
                    .col(big_integer(Projects::Version))
                    .foreign_key(&mut fk(
                        "fk_projects_organisation",
                        (Projects::Table, Projects::OrganisationId),
                        Organisations::Table,
                        Organisations::Id,
                    ))
                    .foreign_key(&mut fk(
                        "fk_projects_sponsor",
                        (Projects::Table, Projects::SponsorId),
                        People::Table,
                        People::Id,
                    ))
                    .foreign_key(&mut fk(
                        "fk_projects_lead",
                        (Projects::Table, Projects::LeadId),
                        People::Table,
                        People::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        // Keyset pagination on id under every List filter.
        for (name, cols) in [
            ("ix_projects_organisation", &["organisation_id", "id"][..]),
            ("ix_projects_phase", &["organisation_id", "phase", "id"][..]),
            (
                "ix_projects_status",
                &["organisation_id", "status", "id"][..],
            ),
            (
                "ix_projects_sponsor",
                &["organisation_id", "sponsor_id", "id"][..],
            ),
            (
                "ix_projects_lead",
                &["organisation_id", "lead_id", "id"][..],
            ),
            (
                "ix_projects_business_unit",
                &["organisation_id", "business_unit", "id"][..],
            ),
            (
                "ix_projects_ai_act_tier",
                &["organisation_id", "ai_act_tier", "id"][..],
            ),
        ] {
            manager
                .create_index(index(name, Projects::Table, cols))
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(ProjectTags::Table)
                    .col(uuid(ProjectTags::ProjectId))
                    .col(uuid(ProjectTags::OrganisationId))
                    .col(string_len(ProjectTags::Tag, 50))
                    .primary_key(
                        Index::create()
                            .name("pk_project_tags")
                            .col(ProjectTags::ProjectId)
                            .col(ProjectTags::Tag),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_project_tags_project")
                            .from(ProjectTags::Table, ProjectTags::ProjectId)
                            .to(Projects::Table, Projects::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_project_tags_tag",
                ProjectTags::Table,
                &["organisation_id", "tag", "project_id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ProjectPhases::Table)
                    .col(uuid(ProjectPhases::ProjectId))
                    .col(integer(ProjectPhases::Seq))
                    .col(string_len(ProjectPhases::Phase, 32))
                    .col(timestamp_with_time_zone(ProjectPhases::EnterTime))
                    .col(timestamp_with_time_zone_null(ProjectPhases::LeaveTime))
                    .primary_key(
                        Index::create()
                            .name("pk_project_phases")
                            .col(ProjectPhases::ProjectId)
                            .col(ProjectPhases::Seq),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_project_phases_project")
                            .from(ProjectPhases::Table, ProjectPhases::ProjectId)
                            .to(Projects::Table, Projects::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
