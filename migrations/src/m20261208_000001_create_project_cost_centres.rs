//! Cost by cost centre as a running aggregate (issue 12, the portfolio's
//! breakdown and filter by cost centre): one row per (project, cost
//! centre) with the net amount and the number of lines, kept by the writes
//! of costs in their transaction like `project_money`. Lines booked without
//! a cost centre are kept under the cost centre "" (so a project's rows add
//! up to its total cost).
//!
//! Existing costs are summed into it here, in one statement. The index
//! `ix_costs_cost_centre`, which served the grouped query this table
//! replaces (GetProjectFinancials' cost by cost centre), is dropped: every
//! cost insert paid for it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn name(s: &str) -> Alias {
    Alias::new(s)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(name("project_cost_centres"))
                    .col(uuid(name("project_id")))
                    // The length of costs.cost_centre.
                    .col(string_len(name("cost_centre"), 100))
                    .col(uuid(name("organisation_id")))
                    .col(big_integer(name("amount_minor")))
                    .col(big_integer(name("lines")))
                    .primary_key(
                        Index::create()
                            .col(name("project_id"))
                            .col(name("cost_centre")),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_project_cost_centres_project")
                            .from(name("project_cost_centres"), name("project_id"))
                            .to(name("projects"), name("id"))
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        // The portfolio's filter (the projects of a cost centre: read from
        // the index alone, hence the project) and its breakdown (an
        // organisation's cost centres).
        manager
            .create_index(
                Index::create()
                    .name("ix_project_cost_centres_organisation")
                    .table(name("project_cost_centres"))
                    .col(name("organisation_id"))
                    .col(name("cost_centre"))
                    .col(name("project_id"))
                    .to_owned(),
            )
            .await?;
        // CAST: PostgreSQL sums BIGINT as NUMERIC; SQLite keeps it as is.
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO project_cost_centres \
                   (project_id, cost_centre, organisation_id, amount_minor, lines) \
                 SELECT project_id, cost_centre, organisation_id, \
                   CAST(SUM(amount_minor) AS BIGINT), COUNT(*) \
                 FROM costs GROUP BY project_id, cost_centre, organisation_id",
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("ix_costs_cost_centre")
                    .table(name("costs"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("ix_costs_cost_centre")
                    .table(name("costs"))
                    .col(name("organisation_id"))
                    .col(name("project_id"))
                    .col(name("cost_centre"))
                    .col(name("amount_minor"))
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(name("project_cost_centres")).to_owned())
            .await
    }
}
