//! Running aggregates kept by the writes (issue 11): money per project by
//! month, nature, category and phase; KPI statistics per stage and review
//! period; assessment counts per project, phase and concern. A write updates
//! them in its transaction, so refreshing a project's figures reads a few
//! aggregate rows instead of its whole history.
//!
//! Existing organisations are queued in `aggregate_rebuilds`: the server
//! recomputes their aggregates and figures from the raw rows at startup
//! (`jalon_store::portfolio::backfill`), one organisation per transaction.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn name(s: &str) -> Alias {
    Alias::new(s)
}

fn project_fk(table: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{table}_project"))
        .from(name(table), name("project_id"))
        .to(name("projects"), name("id"))
        .on_delete(ForeignKeyAction::Restrict)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Money: one row per (project, nature, month, category, phase).
        // `nature` is COST or BENEFIT (a recorded benefit; benefits derived
        // from KPIs come from the KPI statistics); a benefit row has an
        // empty category and phase.
        manager
            .create_table(
                Table::create()
                    .table(name("project_money"))
                    .col(uuid(name("project_id")))
                    .col(string_len(name("nature"), 16))
                    .col(date(name("month")))
                    .col(string_len(name("category"), 32))
                    .col(string_len(name("phase"), 32))
                    .col(uuid(name("organisation_id")))
                    .col(big_integer(name("amount_minor")))
                    .col(big_integer(name("lines")))
                    .primary_key(
                        Index::create()
                            .col(name("project_id"))
                            .col(name("nature"))
                            .col(name("month"))
                            .col(name("category"))
                            .col(name("phase")),
                    )
                    .foreign_key(&mut project_fk("project_money"))
                    .to_owned(),
            )
            .await?;
        // KPI statistics: one row per (KPI, stage, review period); the
        // period is empty except after deployment.
        manager
            .create_table(
                Table::create()
                    .table(name("kpi_stats"))
                    .col(uuid(name("kpi_id")))
                    .col(string_len(name("stage"), 32))
                    .col(string_len(name("period"), 16))
                    .col(uuid(name("organisation_id")))
                    .col(uuid(name("project_id")))
                    .col(big_integer(name("count")))
                    .col(double(name("sum_value")))
                    .col(timestamp_with_time_zone(name("first_time")))
                    .col(timestamp_with_time_zone(name("last_time")))
                    .col(double(name("last_value")))
                    .col(big_integer(name("late_count")))
                    // Measurements without a sample size or a deviation:
                    // any makes the pooled summary unknown.
                    .col(big_integer(name("incomplete")))
                    .col(double(name("pooled_n")))
                    .col(double(name("pooled_sum")))
                    .col(double(name("pooled_ss")))
                    .primary_key(
                        Index::create()
                            .col(name("kpi_id"))
                            .col(name("stage"))
                            .col(name("period")),
                    )
                    .foreign_key(&mut project_fk("kpi_stats"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_kpi_stats_project")
                    .table(name("kpi_stats"))
                    .col(name("project_id"))
                    .to_owned(),
            )
            .await?;
        // Assessment counts: one row per (project, phase, concern).
        manager
            .create_table(
                Table::create()
                    .table(name("assessment_counts"))
                    .col(uuid(name("project_id")))
                    .col(string_len(name("phase"), 32))
                    .col(string_len(name("concern"), 32))
                    .col(uuid(name("organisation_id")))
                    .col(big_integer(name("should_applicable_weight")))
                    .col(big_integer(name("should_done_weight")))
                    .col(big_integer(name("must_open")))
                    .col(big_integer(name("open_high_risk")))
                    .primary_key(
                        Index::create()
                            .col(name("project_id"))
                            .col(name("phase"))
                            .col(name("concern")),
                    )
                    .foreign_key(&mut project_fk("assessment_counts"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(name("aggregate_rebuilds"))
                    .col(pk_uuid(name("organisation_id")))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO aggregate_rebuilds (organisation_id) SELECT id FROM organisations",
            )
            .await?;
        // On PostgreSQL, audit events take their sequence numbers from a
        // database sequence (no lock shared by the organisation's writers),
        // continuing after the highest number given so far.
        if manager.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            let conn = manager.get_connection();
            conn.execute_unprepared("CREATE SEQUENCE audit_event_sequence")
                .await?;
            conn.execute_unprepared(
                "SELECT setval('audit_event_sequence', COALESCE((SELECT MAX(sequence) FROM audit_events), 0) + 1, false)",
            )
            .await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
