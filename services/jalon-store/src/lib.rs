//! Jalon's persistence: the only crate with SQL. One module per aggregate,
//! functions over a connection or a transaction, returning domain types.
//!
//! The same code runs on SQLite (the embedded default) and PostgreSQL.

pub mod access;
pub mod aggregates;
pub mod assessments;
pub mod audit;
pub mod change;
pub mod demo_history;
pub mod entity;
mod error;
pub mod events;
pub mod feeds;
pub mod finance;
pub mod gates;
pub mod handover;
pub mod idempotency;
pub mod kpis;
pub mod organisations;
pub mod page;
pub mod people;
pub mod portfolio;
pub mod projects;
pub mod provisioning;
pub mod readers;
mod rows;
pub mod scim;
pub mod webhooks;

use std::time::Duration;

use jalon_core::{Error, Result};
use jalon_migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

pub use error::db_error;
pub use sea_orm::DatabaseConnection as Db;

/// How long a SQLite writer waits for the database before answering that it
/// is busy.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

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
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
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

    /// A read-only transaction whose statements all see one snapshot of the
    /// database (REPEATABLE READ on PostgreSQL; on SQLite a read transaction
    /// in WAL mode): a list and the event position it reflects are read
    /// together. Dropping it ends it.
    pub async fn snapshot(&self) -> Result<DatabaseTransaction> {
        let options = if self.backend() == DbBackend::Postgres {
            TransactionOptions {
                isolation_level: Some(sea_orm::IsolationLevel::RepeatableRead),
                access_mode: Some(sea_orm::AccessMode::ReadOnly),
                ..Default::default()
            }
        } else {
            TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Deferred),
                ..Default::default()
            }
        };
        self.db
            .begin_with_options(options)
            .await
            .map_err(error::db_error)
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

/// A read-write transaction. On SQLite it also holds the database file's
/// write gate: writers of one file queue in this process, first come first
/// served, instead of polling SQLite's lock (whose busy handler sleeps up to
/// 100 ms between tries, which made the slowest of 16 concurrent writers
/// wait 600 ms behind writes of 3 ms).
pub struct WriteTxn {
    txn: DatabaseTransaction,
    _gate: Option<tokio::sync::OwnedMutexGuard<()>>,
}

#[async_trait::async_trait]
impl ConnectionTrait for WriteTxn {
    fn get_database_backend(&self) -> DbBackend {
        self.txn.get_database_backend()
    }

    async fn execute_raw(
        &self,
        stmt: sea_orm::Statement,
    ) -> std::result::Result<sea_orm::ExecResult, sea_orm::DbErr> {
        self.txn.execute_raw(stmt).await
    }

    async fn execute_unprepared(
        &self,
        sql: &str,
    ) -> std::result::Result<sea_orm::ExecResult, sea_orm::DbErr> {
        self.txn.execute_unprepared(sql).await
    }

    async fn query_one_raw(
        &self,
        stmt: sea_orm::Statement,
    ) -> std::result::Result<Option<sea_orm::QueryResult>, sea_orm::DbErr> {
        self.txn.query_one_raw(stmt).await
    }

    async fn query_all_raw(
        &self,
        stmt: sea_orm::Statement,
    ) -> std::result::Result<Vec<sea_orm::QueryResult>, sea_orm::DbErr> {
        self.txn.query_all_raw(stmt).await
    }

    fn support_returning(&self) -> bool {
        self.txn.support_returning()
    }
}

/// The write gate of a SQLite database file, shared by every pool of this
/// process on that file.
fn sqlite_gate(db: &DatabaseConnection) -> Option<std::sync::Arc<tokio::sync::Mutex<()>>> {
    use std::{
        collections::HashMap,
        path::PathBuf,
        sync::{Arc, LazyLock, Mutex},
    };
    static GATES: LazyLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> =
        LazyLock::new(Default::default);
    if db.get_database_backend() != DbBackend::Sqlite {
        return None;
    }
    let file = db
        .get_sqlite_connection_pool()
        .connect_options()
        .get_filename()
        .to_path_buf();
    let mut gates = GATES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    Some(gates.entry(file).or_default().clone())
}

/// Begins a read-write transaction. On SQLite it waits for the file's
/// write gate, then takes the write lock at once (`BEGIN IMMEDIATE`).
pub(crate) async fn begin_write(db: &DatabaseConnection) -> Result<WriteTxn> {
    let gate = match sqlite_gate(db) {
        // As long as SQLite's own busy timeout, and the same answer.
        Some(gate) => Some(
            tokio::time::timeout(SQLITE_BUSY_TIMEOUT, gate.lock_owned())
                .await
                .map_err(|_| {
                    tracing::warn!("database busy: the write gate stayed closed");
                    Error::Aborted("the database is busy with a concurrent write; retry".into())
                })?,
        ),
        None => None,
    };
    let txn = db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await
        .map_err(db_error)?;
    Ok(WriteTxn { txn, _gate: gate })
}

/// Commits, mapping failures (the gate opens after the commit).
pub(crate) async fn commit(txn: WriteTxn) -> Result<()> {
    txn.txn.commit().await.map_err(db_error)
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

/// Rows per multi-row INSERT or IN list (well under both databases'
/// parameter limits).
pub const CHUNK: usize = 500;
