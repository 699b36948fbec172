//! Database errors in the words of the domain.

use jalon_core::Error;
use sea_orm::{DbErr, RuntimeErr, SqlErr, sqlx};

/// Maps a database error: unreachable database is `UNAVAILABLE` (the pool
/// reconnects by itself), anything else is logged and `INTERNAL`.
pub fn db_error(err: DbErr) -> Error {
    if is_unavailable(&err) {
        tracing::warn!(error = %err, "database unavailable");
        return Error::Unavailable("the database is unreachable; retry later".into());
    }
    if is_busy(&err) {
        tracing::warn!(error = %err, "database busy");
        return Error::Aborted("the database is busy with a concurrent write; retry".into());
    }
    tracing::error!(error = %err, "database error");
    Error::Internal("database error".into())
}

/// The message of a unique-constraint violation: the constraint's name on
/// PostgreSQL, `table.column, ...` on SQLite.
pub(crate) fn unique_violation(err: &DbErr) -> Option<String> {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(message)) => Some(message),
        _ => None,
    }
}

fn sqlx_error(err: &DbErr) -> Option<&sqlx::Error> {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e))
        | DbErr::Conn(RuntimeErr::SqlxError(e)) => Some(e.as_ref()),
        _ => None,
    }
}

fn is_unavailable(err: &DbErr) -> bool {
    if matches!(err, DbErr::ConnectionAcquire(_) | DbErr::Conn(_)) {
        return true;
    }
    match sqlx_error(err) {
        Some(
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed,
        ) => true,
        // PostgreSQL: connection exceptions (08xxx), shutdowns (57P01..57P03).
        Some(sqlx::Error::Database(e)) => e
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

fn is_busy(err: &DbErr) -> bool {
    // SQLite: SQLITE_BUSY (5) and SQLITE_LOCKED (6), with extended codes;
    // PostgreSQL: serialization failure and deadlock.
    match sqlx_error(err) {
        Some(sqlx::Error::Database(e)) => e.code().is_some_and(|code| {
            let code = code.as_ref();
            code == "40001"
                || code == "40P01"
                || code
                    .parse::<i32>()
                    .is_ok_and(|n| n & 0xff == 5 || n & 0xff == 6)
        }),
        _ => false,
    }
}

/// A stored value the code does not know: an error naming the row, never a
/// silent default.
pub(crate) fn unknown(table: &str, key: impl std::fmt::Display, what: String) -> Error {
    Error::Internal(format!("{table} row {key}: {what}"))
}
