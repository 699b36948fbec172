//! Finance feeds (issue 12): cost sources, posting periods, corrections
//! (reversals naming the line they reverse), original currencies with their
//! rate, cost objects of projects and cost-centre rules.
//!
//! Existing costs get the source "manual" (every organisation's built-in
//! default source) and the posting period of the month they were recorded
//! in (UTC); `external_ref` becomes unique per (organisation, source).
//!
//! Phase by date: a cost whose phase is the one its project was in when the
//! cost was recorded (what the server filled in for a cost sent without a
//! phase) is moved to the phase the project was in on the cost's charge
//! date (`incurred_on`), from `project_phases`. A phase given explicitly
//! that happens to equal the phase at recording cannot be told apart and is
//! re-derived too. Every organisation is queued in `aggregate_rebuilds`, so
//! the server recomputes the money aggregates (cost by phase) from the rows
//! at startup.

use sea_orm_migration::sea_orm::DatabaseBackend;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn name(s: &str) -> Alias {
    Alias::new(s)
}

async fn add_column(manager: &SchemaManager<'_>, col: ColumnDef) -> Result<(), DbErr> {
    // One column a statement: SQLite alters one column at a time.
    let mut col = col;
    manager
        .alter_table(
            Table::alter()
                .table(name("costs"))
                .add_column(&mut col)
                .to_owned(),
        )
        .await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let conn = manager.get_connection();
        manager
            .create_table(
                Table::create()
                    .table(name("cost_sources"))
                    .col(pk_uuid(name("id")))
                    .col(uuid(name("organisation_id")))
                    .col(string_len(name("name"), 64))
                    .col(string_len(name("display_name"), 200))
                    .col(timestamp_with_time_zone(name("create_time")))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_cost_sources_name")
                    .table(name("cost_sources"))
                    .col(name("organisation_id"))
                    .col(name("name"))
                    .unique()
                    .to_owned(),
            )
            .await?;
        add_column(
            manager,
            string_len(name("source"), 64).default("manual").to_owned(),
        )
        .await?;
        add_column(
            manager,
            string_len(name("posting_period"), 7).default("").to_owned(),
        )
        .await?;
        add_column(manager, big_integer_null(name("original_amount_minor"))).await?;
        add_column(manager, string_len_null(name("original_currency"), 3)).await?;
        add_column(manager, string_len_null(name("exchange_rate"), 40)).await?;
        add_column(manager, date_null(name("rate_date"))).await?;
        add_column(manager, uuid_null(name("reverses_cost_id"))).await?;
        // The posting period of existing costs: the month they were
        // recorded in, UTC.
        conn.execute_unprepared(match backend {
            DatabaseBackend::Postgres => {
                "UPDATE costs SET posting_period = \
                 to_char(create_time AT TIME ZONE 'UTC', 'YYYY-MM')"
            }
            _ => "UPDATE costs SET posting_period = substr(create_time, 1, 7)",
        })
        .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("ux_costs_external_ref")
                    .table(name("costs"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_costs_source_external_ref")
                    .table(name("costs"))
                    .col(name("organisation_id"))
                    .col(name("source"))
                    .col(name("external_ref"))
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The reversals of a line, summed when another is posted.
        manager
            .create_index(
                Index::create()
                    .name("ix_costs_reverses")
                    .table(name("costs"))
                    .col(name("reverses_cost_id"))
                    .to_owned(),
            )
            .await?;
        // Cost by cost centre: one grouped query reading this index only.
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
            .create_table(
                Table::create()
                    .table(name("cost_periods"))
                    .col(uuid(name("organisation_id")))
                    .col(string_len(name("period"), 7))
                    .col(boolean(name("closed")))
                    .col(string_len(name("updated_by"), 320))
                    .col(timestamp_with_time_zone(name("update_time")))
                    .primary_key(
                        Index::create()
                            .col(name("organisation_id"))
                            .col(name("period")),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(name("project_cost_objects"))
                    .col(pk_uuid(name("id")))
                    .col(uuid(name("organisation_id")))
                    .col(uuid(name("project_id")))
                    .col(string_len(name("kind"), 20))
                    .col(string_len(name("reference"), 100))
                    .col(timestamp_with_time_zone(name("create_time")))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_project_cost_objects_project")
                            .from(name("project_cost_objects"), name("project_id"))
                            .to(name("projects"), name("id"))
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_project_cost_objects_reference")
                    .table(name("project_cost_objects"))
                    .col(name("organisation_id"))
                    .col(name("reference"))
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_project_cost_objects_project")
                    .table(name("project_cost_objects"))
                    .col(name("project_id"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(name("cost_centre_rules"))
                    .col(uuid(name("organisation_id")))
                    .col(string_len(name("cost_centre"), 100))
                    .col(uuid(name("project_id")))
                    .col(timestamp_with_time_zone(name("create_time")))
                    .primary_key(
                        Index::create()
                            .col(name("organisation_id"))
                            .col(name("cost_centre")),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_cost_centre_rules_project")
                            .from(name("cost_centre_rules"), name("project_id"))
                            .to(name("projects"), name("id"))
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;

        // Phase by date (see the module's comment). `day_after` is the
        // first instant after the charge date, UTC; SQLite keeps times as
        // ISO text, whose order is the time order.
        let day_after = match backend {
            DatabaseBackend::Postgres => "((costs.incurred_on + 1)::timestamp AT TIME ZONE 'UTC')",
            _ => "date(costs.incurred_on, '+1 day')",
        };
        let sql = format!(
            "UPDATE costs SET phase = COALESCE(\
               (SELECT pp.phase FROM project_phases pp WHERE pp.project_id = costs.project_id \
                  AND pp.enter_time < {day_after} ORDER BY pp.seq DESC LIMIT 1), \
               (SELECT pp.phase FROM project_phases pp WHERE pp.project_id = costs.project_id \
                  ORDER BY pp.seq ASC LIMIT 1), \
               costs.phase) \
             WHERE costs.phase = (SELECT pp.phase FROM project_phases pp \
               WHERE pp.project_id = costs.project_id AND pp.enter_time <= costs.create_time \
               ORDER BY pp.seq DESC LIMIT 1)"
        );
        conn.execute_unprepared(&sql).await?;
        conn.execute_unprepared(
            "INSERT INTO aggregate_rebuilds (organisation_id) SELECT id FROM organisations \
             WHERE id NOT IN (SELECT organisation_id FROM aggregate_rebuilds)",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "cost_centre_rules",
            "project_cost_objects",
            "cost_periods",
            "cost_sources",
        ] {
            manager
                .drop_table(Table::drop().table(name(table)).to_owned())
                .await?;
        }
        Ok(())
    }
}
