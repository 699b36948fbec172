//! Jalon's migrations. They run unchanged on SQLite and PostgreSQL; each one
//! runs in a transaction on both, so a failure never leaves a half-migrated
//! schema. A migration that has landed is never edited: add a new one.

pub use sea_orm_migration::prelude::*;

mod m20261129_000001_create_organisations_and_people;
mod m20261129_000002_create_projects;
mod m20261129_000003_create_assessments_gates_audit;
mod m20261129_000004_create_kpis;
mod m20261129_000005_create_finance;
mod m20261129_000006_create_portfolio;
mod m20261202_000001_create_write_aggregates;
mod m20261202_000002_create_outbox;
mod m20261203_000001_create_webhooks;
mod m20261203_000002_create_webhook_attempts;
mod m20261205_000001_create_finance_feeds;
mod m20261206_000001_create_counter_deltas;
mod m20261207_000001_create_scim;
mod m20261208_000001_create_project_cost_centres;
mod m20261209_000001_outbox_positions_at_commit;
mod m20261210_000001_aggregates_without_rowid;

/// The ordered list of migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261129_000001_create_organisations_and_people::Migration),
            Box::new(m20261129_000002_create_projects::Migration),
            Box::new(m20261129_000003_create_assessments_gates_audit::Migration),
            Box::new(m20261129_000004_create_kpis::Migration),
            Box::new(m20261129_000005_create_finance::Migration),
            Box::new(m20261129_000006_create_portfolio::Migration),
            Box::new(m20261202_000001_create_write_aggregates::Migration),
            Box::new(m20261202_000002_create_outbox::Migration),
            Box::new(m20261203_000001_create_webhooks::Migration),
            Box::new(m20261203_000002_create_webhook_attempts::Migration),
            Box::new(m20261205_000001_create_finance_feeds::Migration),
            Box::new(m20261206_000001_create_counter_deltas::Migration),
            Box::new(m20261207_000001_create_scim::Migration),
            Box::new(m20261208_000001_create_project_cost_centres::Migration),
            Box::new(m20261209_000001_outbox_positions_at_commit::Migration),
            Box::new(m20261210_000001_aggregates_without_rowid::Migration),
        ]
    }
}
