//! A few dedicated connections for the hottest single-statement reads
//! (`GetProject`).
//!
//! Every statement sent through sqlx's pool is followed, when the
//! connection goes back, by a ping in a spawned task: a second round trip
//! per statement (to the connection's worker thread on SQLite, to the server
//! on PostgreSQL). A reader here is a connection taken out of the pool
//! (`detach`, so it keeps the pool's options: WAL, busy timeout, foreign
//! keys) and kept aside: a statement costs one round trip. The rules of
//! the pool are kept where they matter:
//! - a connection idle for more than [`IDLE_BEFORE_PING`] is pinged before
//!   use, and replaced if the ping fails;
//! - a connection older than [`MAX_AGE`] is replaced;
//! - a connection goes back only after its statement completed; an error,
//!   or a request cancelled mid-statement, closes it.
//!
//! Only reads that need no transaction go through here.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use jalon_core::{Error, Result};
use sea_orm::{
    DatabaseConnection, DbBackend, DbErr, QueryResult, RuntimeErr,
    sqlx::{self, Connection, postgres::PgConnection, sqlite::SqliteConnection},
};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::db_error;

/// A reader idle for longer is pinged before use.
pub const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);
/// A reader older than this is replaced by a fresh connection.
pub const MAX_AGE: Duration = Duration::from_secs(30 * 60);
/// How many readers at most, whatever the pool's size.
pub const MAX_READERS: u32 = 4;

/// A value bound to a reader's statement.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Uuid(Uuid),
    Text(&'a str),
    Bool(bool),
}

enum Conn {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

struct Reader {
    conn: Conn,
    opened: Instant,
    last_used: Instant,
}

struct Inner {
    db: DatabaseConnection,
    idle: Mutex<Vec<Reader>>,
    permits: Semaphore,
    size: usize,
}

/// The readers of a store: cheap to clone.
#[derive(Clone)]
pub struct Readers {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers")
            .field("size", &self.inner.size)
            .finish_non_exhaustive()
    }
}

/// The columns of an entity, qualified by `alias` and comma-separated, for
/// a reader's statement. Named, never `alias.*`: sqlx keeps the columns of
/// a prepared statement, and SQLite re-expands a `*` when it re-prepares
/// after a schema change (a connection opened before a migration), which
/// would no longer match.
pub fn columns<E: sea_orm::EntityTrait>(alias: &str) -> String {
    use sea_orm::{IdenStatic, Iterable};
    E::Column::iter()
        .map(|c| format!("{alias}.{}", c.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn sqlx_failure(e: sqlx::Error) -> Error {
    db_error(DbErr::Query(RuntimeErr::SqlxError(Arc::new(e))))
}

impl Readers {
    /// Up to `size` readers, opened on first use from `db`'s pool.
    pub fn new(db: DatabaseConnection, size: usize) -> Self {
        let size = size.max(1);
        Self {
            inner: Arc::new(Inner {
                db,
                idle: Mutex::new(Vec::with_capacity(size)),
                permits: Semaphore::new(size),
                size,
            }),
        }
    }

    /// Which database the readers read.
    pub fn backend(&self) -> DbBackend {
        self.inner.db.get_database_backend()
    }

    /// Runs one read statement (`$1`, `$2`… placeholders on both backends)
    /// and returns its first row, if any.
    pub async fn fetch_optional(
        &self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Option<QueryResult>> {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| Error::Unavailable("the store is closing".into()))?;
        let mut reader = self.take().await?;
        // If this future is dropped while the statement runs, `reader` is
        // dropped with it: a connection in an unknown state is closed, not
        // put back.
        let row = match &mut reader.conn {
            Conn::Sqlite(conn) => {
                let mut query = sqlx::query(sql);
                for arg in args {
                    query = match *arg {
                        Arg::Uuid(v) => query.bind(v),
                        Arg::Text(v) => query.bind(v.to_owned()),
                        Arg::Bool(v) => query.bind(v),
                    };
                }
                query
                    .fetch_optional(&mut *conn)
                    .await
                    .map(|row| row.map(QueryResult::from))
            }
            Conn::Postgres(conn) => {
                let mut query = sqlx::query(sql);
                for arg in args {
                    query = match *arg {
                        Arg::Uuid(v) => query.bind(v),
                        Arg::Text(v) => query.bind(v.to_owned()),
                        Arg::Bool(v) => query.bind(v),
                    };
                }
                query
                    .fetch_optional(&mut *conn)
                    .await
                    .map(|row| row.map(QueryResult::from))
            }
        };
        match row {
            Ok(row) => {
                reader.last_used = Instant::now();
                self.put_back(reader);
                Ok(row)
            }
            // The connection is closed with `reader`; the next use opens one.
            Err(e) => Err(sqlx_failure(e)),
        }
    }

    /// An idle reader still fit for use, or a new one.
    async fn take(&self) -> Result<Reader> {
        loop {
            let idle = self.lock().pop();
            let Some(mut reader) = idle else {
                return self.open().await;
            };
            if reader.opened.elapsed() > MAX_AGE {
                close(reader).await;
                continue;
            }
            if reader.last_used.elapsed() > IDLE_BEFORE_PING {
                let alive = match &mut reader.conn {
                    Conn::Sqlite(c) => c.ping().await.is_ok(),
                    Conn::Postgres(c) => c.ping().await.is_ok(),
                };
                if !alive {
                    tracing::warn!("an idle database reader was lost; opening another");
                    continue;
                }
            }
            return Ok(reader);
        }
    }

    async fn open(&self) -> Result<Reader> {
        let db = &self.inner.db;
        let conn = match db.get_database_backend() {
            DbBackend::Postgres => Conn::Postgres(
                db.get_postgres_connection_pool()
                    .acquire()
                    .await
                    .map_err(sqlx_failure)?
                    .detach(),
            ),
            _ => Conn::Sqlite(
                db.get_sqlite_connection_pool()
                    .acquire()
                    .await
                    .map_err(sqlx_failure)?
                    .detach(),
            ),
        };
        let now = Instant::now();
        Ok(Reader {
            conn,
            opened: now,
            last_used: now,
        })
    }

    fn put_back(&self, reader: Reader) {
        self.lock().push(reader);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Reader>> {
        // A panic while holding this lock cannot leave the Vec inconsistent.
        self.inner.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes the idle readers (at shutdown).
    pub async fn close(&self) {
        self.inner.permits.close();
        let idle: Vec<Reader> = std::mem::take(&mut *self.lock());
        for reader in idle {
            close(reader).await;
        }
    }
}

async fn close(reader: Reader) {
    let _ = match reader.conn {
        Conn::Sqlite(c) => c.close().await,
        Conn::Postgres(c) => c.close().await,
    };
}

#[cfg(test)]
mod tests {
    use sea_orm::ConnectionTrait;

    use super::*;
    use crate::{PoolOptions, Store};

    impl Readers {
        fn idle(&self) -> usize {
            self.lock().len()
        }
    }

    async fn sqlite() -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("jalon-readers-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("r.db").display());
        (
            Store::connect(&url, &PoolOptions::default()).await.unwrap(),
            dir,
        )
    }

    async fn number(readers: &Readers, sql: &'static str) -> Result<i64> {
        let row = readers.fetch_optional(sql, &[]).await?.expect("a row");
        row.try_get::<i64>("", "n").map_err(db_error)
    }

    #[tokio::test]
    async fn a_failed_or_cancelled_statement_closes_its_connection() {
        let (store, dir) = sqlite().await;
        let readers = store.readers();
        assert_eq!(number(readers, "SELECT 1 AS n").await.unwrap(), 1);
        assert_eq!(readers.idle(), 1, "a completed statement puts it back");

        let failed = number(readers, "SELECT n FROM no_such_table").await;
        assert!(matches!(failed, Err(Error::Internal(_))), "{failed:?}");
        assert_eq!(readers.idle(), 0, "the failed connection is closed");
        assert_eq!(number(readers, "SELECT 2 AS n").await.unwrap(), 2);
        assert_eq!(readers.idle(), 1);

        // Cancelled mid-statement (a long count): not put back.
        let slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                    WHERE x < 5000000) SELECT count(*) AS n FROM c";
        let cancelled =
            tokio::time::timeout(Duration::from_millis(20), number(readers, slow)).await;
        assert!(cancelled.is_err(), "the slow count was cut short");
        assert_eq!(readers.idle(), 0, "a cancelled connection is not reused");
        assert_eq!(number(readers, "SELECT 3 AS n").await.unwrap(), 3);

        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    /// With `JALON_TEST_POSTGRES_URL`: a reader whose server process was
    /// terminated while idle is found dead by the ping and replaced.
    #[tokio::test]
    async fn a_reader_lost_while_idle_is_replaced() {
        let Ok(admin_url) = std::env::var("JALON_TEST_POSTGRES_URL") else {
            eprintln!("JALON_TEST_POSTGRES_URL unset: PostgreSQL case skipped");
            return;
        };
        let admin = Store::connect(&admin_url, &PoolOptions::default())
            .await
            .unwrap();
        let name = format!("jalon_readers_{}", Uuid::now_v7().simple());
        admin
            .db()
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let url = match admin_url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("JALON_TEST_POSTGRES_URL has no database path"),
        };
        let store = Store::connect(&url, &PoolOptions::default()).await.unwrap();
        let readers = store.readers();
        let pid = |r: &Readers| {
            let r = r.clone();
            async move {
                r.fetch_optional("SELECT pg_backend_pid()::bigint AS n", &[])
                    .await
                    .unwrap()
                    .unwrap()
                    .try_get::<i64>("", "n")
                    .unwrap()
            }
        };
        let first = pid(readers).await;
        admin
            .db()
            .execute_unprepared(&format!("SELECT pg_terminate_backend({first})"))
            .await
            .unwrap();
        tokio::time::sleep(IDLE_BEFORE_PING + Duration::from_millis(200)).await;
        let second = pid(readers).await;
        assert_ne!(first, second, "a new connection answered");

        store.close().await;
        admin
            .db()
            .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .await
            .unwrap();
        admin.close().await;
    }
}
