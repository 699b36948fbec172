//! Costs, budgets and benefits of projects: money as integer minor units plus
//! the currency, never floating point.

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

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(name("costs"))
                    .col(pk_uuid("id"))
                    .col(uuid("organisation_id"))
                    .col(uuid("project_id"))
                    .col(big_integer("amount_minor"))
                    .col(string_len("currency", 3))
                    .col(string_len("category", 20))
                    .col(string_len("nature", 8))
                    .col(date("incurred_on"))
                    .col(string_len("cost_centre", 100))
                    .col(string_len("phase", 32))
                    .col(text("description"))
                    .col(string_len_null("external_ref", 200))
                    .col(timestamp_with_time_zone("create_time"))
                    .foreign_key(&mut project_fk("costs"))
                    .to_owned(),
            )
            .await?;
        // The finance system's id: re-posting it is idempotent.
        manager
            .create_index(
                index(
                    "ux_costs_external_ref",
                    "costs",
                    &["organisation_id", "external_ref"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_costs_project",
                "costs",
                &["organisation_id", "project_id", "incurred_on"],
            ))
            .await?;
        manager
            .create_index(index(
                "ix_costs_category",
                "costs",
                &["organisation_id", "category"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(name("budgets"))
                    .col(pk_uuid("project_id"))
                    .col(uuid("organisation_id"))
                    .col(big_integer("total_minor"))
                    .col(string_len("currency", 3))
                    // [{"category": "CLOUD", "amount_minor": 123}], exact integers.
                    .col(text("by_category"))
                    .col(timestamp_with_time_zone("update_time"))
                    .col(big_integer("version"))
                    .foreign_key(&mut project_fk("budgets"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(name("benefits"))
                    .col(pk_uuid("id"))
                    .col(uuid("organisation_id"))
                    .col(uuid("project_id"))
                    .col(string_len("kind", 16))
                    .col(big_integer("amount_minor"))
                    .col(string_len("currency", 3))
                    .col(date("benefit_date"))
                    .col(text("description"))
                    .col(timestamp_with_time_zone("create_time"))
                    .foreign_key(&mut project_fk("benefits"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_benefits_project",
                "benefits",
                &["organisation_id", "project_id", "benefit_date"],
            ))
            .await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
