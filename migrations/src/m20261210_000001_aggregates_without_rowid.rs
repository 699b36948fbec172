//! SQLite: the running aggregates become `WITHOUT ROWID` tables (issue 11).
//! Each is read and written by its primary key only (a project's money
//! rows, a KPI's buckets, a project's contributions...). As rowid tables,
//! a read by the primary key went through the key's index and then looked
//! each row up in the table, and a write updated both B-trees: an import
//! batch's refresh read 33,600 index entries and as many table rows to sum
//! 100 projects' money. Clustered on their key, a read is one range of one
//! B-tree. The tables keep their columns, keys and indexes; only their
//! storage changes. PostgreSQL has no such choice: nothing to do there.

use sea_orm::{ConnectionTrait, Statement, TransactionTrait};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The aggregate tables (each has a composite primary key).
const TABLES: &[&str] = &[
    "project_money",
    "project_cost_centres",
    "kpi_stats",
    "assessment_counts",
    "portfolio_contributions",
    "portfolio_counters",
    "project_alerts",
];

const SUFFIX: &str = " WITHOUT ROWID";

/// Rebuilds `table` with (`without_rowid`) or without the clause: a new
/// table from the stored definition, the rows copied, the old one dropped,
/// the new one renamed, the indexes created again.
async fn rebuild(db: &impl ConnectionTrait, table: &str, without_rowid: bool) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let sql_of = |kind: &str| {
        Statement::from_sql_and_values(
            backend,
            "SELECT sql FROM sqlite_master WHERE type = ? AND tbl_name = ? AND sql IS NOT NULL",
            [kind.into(), table.into()],
        )
    };
    let Some(create) = db.query_one_raw(sql_of("table")).await? else {
        return Err(DbErr::Migration(format!(
            "the table {table} does not exist"
        )));
    };
    let create: String = create.try_get("", "sql")?;
    let create = create.trim_end();
    if create.ends_with(SUFFIX) == without_rowid {
        return Ok(());
    }
    let indexes: Vec<String> = db
        .query_all_raw(sql_of("index"))
        .await?
        .iter()
        .map(|r| r.try_get("", "sql"))
        .collect::<Result<_, _>>()?;
    let new = format!("{table}_rebuilt");
    let prefix = format!("CREATE TABLE \"{table}\"");
    let Some(body) = create.strip_prefix(&prefix) else {
        return Err(DbErr::Migration(format!(
            "the definition of {table} does not start with {prefix}: {create}"
        )));
    };
    let body = if without_rowid {
        format!("{body}{SUFFIX}")
    } else {
        body.strip_suffix(SUFFIX).unwrap_or(body).to_owned()
    };
    for sql in [
        format!("CREATE TABLE \"{new}\"{body}"),
        format!("INSERT INTO \"{new}\" SELECT * FROM \"{table}\""),
        format!("DROP TABLE \"{table}\""),
        format!("ALTER TABLE \"{new}\" RENAME TO \"{table}\""),
    ]
    .into_iter()
    .chain(indexes)
    {
        db.execute_unprepared(&sql).await?;
    }
    Ok(())
}

async fn run(manager: &SchemaManager<'_>, without_rowid: bool) -> Result<(), DbErr> {
    if manager.get_database_backend() != sea_orm::DatabaseBackend::Sqlite {
        return Ok(());
    }
    // One transaction, so one connection: on a pool, a connection that
    // did not see the DROP refused the RENAME ("already another table").
    let txn = manager.get_connection().begin().await?;
    for table in TABLES {
        rebuild(&txn, table, without_rowid).await?;
    }
    txn.commit().await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, true).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, false).await
    }
}
