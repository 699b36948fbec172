//! The portfolio: one row of figures per project, the contributions of each
//! project to its organisation's roll-up counters, the counters themselves,
//! and the alerts raised by writes. All of it is maintained by the writes
//! that change a project, in their transaction; the server fills in the
//! figures of projects created before this migration at startup.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn name(s: &str) -> Alias {
    Alias::new(s)
}

fn index(name_: &str, table: &str, cols: &[&str]) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(name_).table(name(table));
    for col in cols {
        stmt.col(name(col));
    }
    stmt.to_owned()
}

fn project_fk(table: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{table}_project"))
        .from(name(table), name("project_id"))
        .to(name("projects"), name("id"))
        .on_delete(ForeignKeyAction::Restrict)
        .to_owned()
}

/// Columns ListPortfolioProjects sorts by: each gets an index ending with
/// the project id, so that every page, however deep, is an index range.
const SORTED: &[&str] = &[
    "name",
    "phase_rank",
    "phase_enter_time",
    "readiness",
    "kpi_gain",
    "cost_minor",
    "benefit_minor",
    "roi_micros",
    "project_create_time",
];

/// Columns the time-dependent alerts compare with now.
const DEADLINES: &[&str] = &["gate_watch_since", "review_due_time", "condition_due_date"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(name("organisations"))
                    .add_column(integer(name("gate_overdue_days")).default(365))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(name("project_figures"))
                    .col(pk_uuid(name("project_id")))
                    .col(uuid(name("organisation_id")))
                    .col(string_len(name("name"), 200))
                    .col(string_len(name("business_unit"), 200))
                    .col(uuid_null(name("sponsor_id")))
                    .col(uuid_null(name("lead_id")))
                    .col(string_len(name("phase"), 32))
                    .col(small_integer(name("phase_rank")))
                    .col(string_len(name("status"), 32))
                    .col(string_len(name("ai_act_tier"), 16))
                    .col(timestamp_with_time_zone(name("project_create_time")))
                    .col(timestamp_with_time_zone(name("phase_enter_time")))
                    // phase_enter_time while the project waits for a gate
                    // decision (ACTIVE), else null.
                    .col(timestamp_with_time_zone_null(name("gate_watch_since")))
                    .col(timestamp_with_time_zone_null(name("review_due_time")))
                    .col(date_null(name("condition_due_date")))
                    .col(double(name("readiness")))
                    .col(integer(name("open_must_items")))
                    .col(double_null(name("kpi_gain")))
                    .col(big_integer_null(name("budget_minor")))
                    .col(big_integer(name("cost_minor")))
                    .col(big_integer(name("benefit_minor")))
                    .col(big_integer_null(name("roi_micros")))
                    .col(boolean(name("paid_back")))
                    .col(integer(name("alert_bits")))
                    .col(integer(name("static_alert_count")))
                    .col(timestamp_with_time_zone(name("update_time")))
                    .foreign_key(&mut project_fk("project_figures"))
                    .to_owned(),
            )
            .await?;
        for col in SORTED.iter().chain(DEADLINES) {
            manager
                .create_index(index(
                    &format!("ix_project_figures_{col}"),
                    "project_figures",
                    &["organisation_id", col, "project_id"],
                ))
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(name("portfolio_contributions"))
                    .col(uuid(name("project_id")))
                    .col(string_len(name("name"), 80))
                    .col(uuid(name("organisation_id")))
                    .col(big_integer(name("value")))
                    .primary_key(Index::create().col(name("project_id")).col(name("name")))
                    .foreign_key(&mut project_fk("portfolio_contributions"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(name("portfolio_counters"))
                    .col(uuid(name("organisation_id")))
                    .col(string_len(name("name"), 80))
                    .col(big_integer(name("value")))
                    .primary_key(
                        Index::create()
                            .col(name("organisation_id"))
                            .col(name("name")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(name("project_alerts"))
                    .col(uuid(name("project_id")))
                    .col(string_len(name("kind"), 32))
                    .col(uuid(name("organisation_id")))
                    .col(timestamp_with_time_zone(name("since")))
                    .col(text(name("reason")))
                    .primary_key(Index::create().col(name("project_id")).col(name("kind")))
                    .foreign_key(&mut project_fk("project_alerts"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_project_alerts_kind",
                "project_alerts",
                &["organisation_id", "kind", "project_id"],
            ))
            .await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
