//! Jalon's persistence: the only crate with SQL. One module per aggregate,
//! functions over a connection or a transaction, returning domain types.
//!
//! The same code runs on SQLite (the embedded default) and PostgreSQL.

pub mod aggregates;
pub mod assessments;
pub mod audit;
pub mod change;
pub mod entity;
mod error;
pub mod finance;
pub mod gates;
pub mod idempotency;
pub mod kpis;
pub mod organisations;
pub mod page;
pub mod people;
pub mod portfolio;
pub mod projects;
pub mod readers;

use std::time::Duration;

use jalon_core::{Error, Result};
use jalon_migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

pub use error::db_error;
pub use sea_orm::DatabaseConnection as Db;

/// Connection pool settings.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_connections: u32,
    pub min_connections: u32,
    pub connect_timeout: Duration,
    pub acquire_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            min_connections: 0,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// A handle on the database: cheap to clone (a pool inside).
#[derive(Debug, Clone)]
pub struct Store {
    db: DatabaseConnection,
    readers: readers::Readers,
}

impl Store {
    /// Connects to `url` (`sqlite://path?mode=rwc` or `postgres://…`). SQLite
    /// runs in WAL mode with foreign keys on and a busy timeout, so readers
    /// never block the writer.
    pub async fn connect(url: &str, pool: &PoolOptions) -> Result<Self, String> {
        let mut opts = ConnectOptions::new(url.to_owned());
        opts.max_connections(pool.max_connections)
            .min_connections(pool.min_connections)
            .connect_timeout(pool.connect_timeout)
            .acquire_timeout(pool.acquire_timeout)
            // A connection idle for a second is pinged before use (a lost
            // one is replaced); a busy pool pays no round trip per query.
            .test_before_acquire_if_idle_for(Duration::from_secs(1))
            .sqlx_logging(false)
            // Every connection handed out is timed (a TRACE event of target
            // `sqlx::pool::acquire`): the server turns those into the
            // `jalon_db_pool_acquire_seconds` histogram, the pool's waits.
            .map_sqlx_sqlite_pool_opts(|o| o.acquire_time_level(log::LevelFilter::Trace))
            .map_sqlx_postgres_pool_opts(|o| o.acquire_time_level(log::LevelFilter::Trace))
            .map_sqlx_sqlite_opts(|opts| {
                opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10))
                    .create_if_missing(true)
            });
        let db = Database::connect(opts)
            .await
            .map_err(|e| format!("cannot connect to the database: {e}"))?;
        let readers = readers::Readers::new(
            db.clone(),
            pool.max_connections.min(readers::MAX_READERS) as usize,
        );
        Ok(Self { db, readers })
    }

    /// The dedicated connections of the hottest single-statement reads.
    pub fn readers(&self) -> &readers::Readers {
        &self.readers
    }

    /// The connection pool.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Which database this is.
    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Applies every pending migration (each in its own transaction).
    pub async fn migrate(&self) -> Result<usize, String> {
        let pending = self.pending_migrations().await?;
        Migrator::up(&self.db, None)
            .await
            .map_err(|e| format!("migration failed: {e}"))?;
        Ok(pending.len())
    }

    /// Names of the migrations not yet applied.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, String> {
        let pending = Migrator::get_pending_migrations(&self.db)
            .await
            .map_err(|e| format!("cannot read the migration status: {e}"))?;
        Ok(pending.iter().map(|m| m.name().to_owned()).collect())
    }

    /// Whether the database answers now.
    pub async fn ping(&self) -> Result<()> {
        self.db.ping().await.map_err(db_error)
    }

    /// Closes the pool.
    pub async fn close(self) {
        self.readers.close().await;
        let _ = self.db.close().await;
    }
}

/// Begins a read-write transaction. On SQLite it takes the write lock at once
/// (`BEGIN IMMEDIATE`), so two writers queue instead of dead-locking.
pub(crate) async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
    .map_err(db_error)
}

/// Commits, mapping failures.
pub(crate) async fn commit(txn: DatabaseTransaction) -> Result<()> {
    txn.commit().await.map_err(db_error)
}

pub(crate) fn is_postgres(conn: &impl ConnectionTrait) -> bool {
    conn.get_database_backend() == DbBackend::Postgres
}

/// Runs `attempt` once more when it failed because a concurrent request with
/// the same `request_id` won the race: the retry then finds the first result.
pub(crate) async fn retry_idempotent_race<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    match attempt().await {
        Err(Error::Aborted(msg)) if msg == idempotency::RACE => attempt().await,
        other => other,
    }
}
