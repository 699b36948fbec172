//! KPIs, their measurements, and the project's underperformance flag.

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

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(name("kpis"))
                    .col(pk_uuid("id"))
                    .col(uuid("organisation_id"))
                    .col(uuid("project_id"))
                    .col(string_len("name", 200))
                    .col(text("description"))
                    .col(string_len("unit", 64))
                    .col(string_len("unit_kind", 16))
                    .col(string_len("direction", 20))
                    .col(string_len("category", 20))
                    .col(boolean("is_primary"))
                    .col(double_null("target"))
                    .col(text("method"))
                    .col(string_len_null("cadence", 16))
                    // Money per unit of improvement: integer minor units +
                    // currency; the volume as an exact decimal string.
                    .col(big_integer_null("value_per_unit_minor"))
                    .col(string_len_null("value_per_unit_currency", 3))
                    .col(string_len_null("volume_per_period", 40))
                    .col(boolean("archived"))
                    .col(timestamp_with_time_zone("create_time"))
                    .col(timestamp_with_time_zone("update_time"))
                    .col(big_integer("version"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_kpis_project")
                            .from(name("kpis"), name("project_id"))
                            .to(name("projects"), name("id"))
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_kpis_project",
                "kpis",
                &["organisation_id", "project_id", "id"],
            ))
            .await?;
        manager
            .create_index(index(
                "ix_kpis_category",
                "kpis",
                &["organisation_id", "category", "id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(name("kpi_measurements"))
                    .col(pk_uuid("id"))
                    .col(uuid("organisation_id"))
                    .col(uuid("kpi_id"))
                    .col(double("value"))
                    .col(timestamp_with_time_zone("measure_time"))
                    .col(date_null("period_start"))
                    .col(date_null("period_end"))
                    .col(string_len("stage", 20))
                    .col(big_integer_null("sample_size"))
                    .col(double_null("std_dev"))
                    .col(string_len("source", 16))
                    .col(string_len_null("external_ref", 200))
                    .col(boolean("late_baseline"))
                    .col(timestamp_with_time_zone("create_time"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_kpi_measurements_kpi")
                            .from(name("kpi_measurements"), name("kpi_id"))
                            .to(name("kpis"), name("id"))
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        // An import's external_ref makes it idempotent, per KPI.
        manager
            .create_index(
                index(
                    "ux_kpi_measurements_external_ref",
                    "kpi_measurements",
                    &["kpi_id", "external_ref"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_kpi_measurements_kpi",
                "kpi_measurements",
                &["kpi_id", "stage", "measure_time"],
            ))
            .await?;

        manager
            .alter_table(
                Table::alter()
                    .table(name("projects"))
                    .add_column(boolean("underperforming").default(false))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
