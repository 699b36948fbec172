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

#[cfg(test)]
mod tests {
    use sea_orm_migration::MigratorTrait;
    use sea_orm_migration::sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

    use super::TABLES;
    use crate::Migrator;

    async fn strings(db: &DatabaseConnection, sql: &str) -> Vec<String> {
        db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get_by_index::<String>(0).unwrap())
            .collect()
    }

    async fn without_rowid(db: &DatabaseConnection) -> Vec<String> {
        strings(
            db,
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND sql LIKE '%WITHOUT ROWID' ORDER BY name",
        )
        .await
    }

    async fn indexes(db: &DatabaseConnection) -> Vec<String> {
        strings(
            db,
            "SELECT tbl_name || '.' || name FROM sqlite_master WHERE type = 'index' ORDER BY 1",
        )
        .await
    }

    /// Up converts the aggregate tables and keeps their rows and indexes;
    /// down converts them back, keeping them too.
    #[tokio::test]
    async fn the_aggregates_go_without_rowid_and_back_with_their_rows_and_indexes() {
        let path = std::env::temp_dir().join(format!(
            "jalon-migration-without-rowid-{}.db",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let db = Database::connect(format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .unwrap();
        let before_this = u32::try_from(Migrator::migrations().len() - 1).unwrap();
        Migrator::up(&db, Some(before_this)).await.unwrap();
        assert!(without_rowid(&db).await.is_empty());
        let indexes_before = indexes(&db).await;
        let row = "INSERT INTO portfolio_counters (organisation_id, name, value) \
                   VALUES ('00000000-0000-0000-0000-000000000001', 'cost', 42)";
        db.execute_unprepared(row).await.unwrap();
        let count = "SELECT CAST(value AS TEXT) FROM portfolio_counters WHERE name = 'cost'";

        Migrator::up(&db, None).await.unwrap();
        let mut expected: Vec<String> = TABLES.iter().map(|t| (*t).to_owned()).collect();
        expected.sort();
        assert_eq!(without_rowid(&db).await, expected);
        assert_eq!(strings(&db, count).await, ["42"]);
        // A WITHOUT ROWID table has no automatic index for its key: the
        // key is the table. Every other index is there again.
        let kept = |all: Vec<String>| -> Vec<String> {
            all.into_iter()
                .filter(|i| {
                    !(TABLES
                        .iter()
                        .any(|t| i.starts_with(&format!("{t}.sqlite_autoindex"))))
                })
                .collect()
        };
        assert_eq!(kept(indexes(&db).await), kept(indexes_before.clone()));

        Migrator::down(&db, Some(1)).await.unwrap();
        assert!(without_rowid(&db).await.is_empty());
        assert_eq!(strings(&db, count).await, ["42"]);
        assert_eq!(indexes(&db).await, indexes_before);
        db.close().await.unwrap();
        let _ = std::fs::remove_file(&path);
    }
}
