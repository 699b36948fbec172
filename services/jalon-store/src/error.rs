//! Database errors in the words of the domain.

use jalon_core::Error;
use sea_orm::{DbErr, RuntimeErr, SqlErr, sqlx};

/// Maps a database error: unreachable database is `UNAVAILABLE` (the pool
/// reconnects by itself); a write that lost to a concurrent one (busy,
/// locked, serialization failure, deadlock, lock timeout) is `ABORTED`, to be
/// retried; a value the database refuses (a data exception: NUL or invalid
/// bytes in text, a number out of range) is `INVALID_ARGUMENT`, as a retry
/// can never succeed; anything else is logged and `INTERNAL`. Only the
/// first two are retryable codes.
pub fn db_error(err: DbErr) -> Error {
    if is_pool_closed(&err) {
        // Only a server that stops closes its pool: a call still running at
        // the end of the drain.
        tracing::warn!(error = %err, "a call outlived the drain");
        return Error::Unavailable(
            "the server is shutting down; retry, another replica will answer".into(),
        );
    }
    if is_unavailable(&err) {
        tracing::warn!(error = %err, "database unavailable");
        return Error::Unavailable("the database is unreachable; retry later".into());
    }
    if is_busy(&err) {
        tracing::warn!(error = %err, "database busy");
        return Error::Aborted("the database is busy with a concurrent write; retry".into());
    }
    if is_data_exception(&err) {
        // The edge validates every value: reaching here is a gap in it.
        tracing::error!(error = %err, "database refused a value");
        return Error::invalid(
            "request",
            "holds a value the database cannot store (such as a NUL character or a number out of range)",
        );
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

/// The pool was closed: the server is stopping.
fn is_pool_closed(err: &DbErr) -> bool {
    matches!(
        err,
        DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::ConnectionClosed)
    ) || matches!(sqlx_error(err), Some(sqlx::Error::PoolClosed))
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

/// The SQLSTATE of a PostgreSQL error.
fn postgres_code(err: &DbErr) -> Option<String> {
    match sqlx_error(err) {
        Some(sqlx::Error::Database(e)) => e
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .map(|e| e.code().to_owned()),
        _ => None,
    }
}

/// The (extended) result code of a SQLite error.
fn sqlite_code(err: &DbErr) -> Option<i32> {
    match sqlx_error(err) {
        Some(sqlx::Error::Database(e))
            if e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() =>
        {
            e.code().and_then(|code| code.parse::<i32>().ok())
        }
        _ => None,
    }
}

fn is_busy(err: &DbErr) -> bool {
    // PostgreSQL: serialization failure, deadlock, lock not available (lock
    // timeout); SQLite: SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their
    // extended codes. A SQLSTATE is never read as a SQLite code: 22021
    // (NUL in text) would read as 5.
    if let Some(code) = postgres_code(err) {
        return matches!(code.as_str(), "40001" | "40P01" | "55P03");
    }
    sqlite_code(err).is_some_and(|code| code & 0xff == 5 || code & 0xff == 6)
}

/// A value the database refuses: on PostgreSQL, text it cannot store (NUL,
/// invalid bytes: 22021, 22P05), too long (22001) or a number out of range
/// (22003); on SQLite, SQLITE_TOOBIG (18) and SQLITE_MISMATCH (20). Other
/// data exceptions (a division by zero) are bugs: `INTERNAL`.
fn is_data_exception(err: &DbErr) -> bool {
    if let Some(code) = postgres_code(err) {
        return matches!(code.as_str(), "22021" | "22P05" | "22001" | "22003");
    }
    sqlite_code(err).is_some_and(|code| code & 0xff == 18 || code & 0xff == 20)
}

/// A stored value the code does not know: an error naming the row, never a
/// silent default.
pub(crate) fn unknown(table: &str, key: impl std::fmt::Display, what: String) -> Error {
    Error::Internal(format!("{table} row {key}: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pool_means_the_server_is_shutting_down() {
        let closed = DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::ConnectionClosed);
        match db_error(closed) {
            Error::Unavailable(message) => assert!(message.contains("shutting down"), "{message}"),
            other => panic!("{other:?}"),
        }
        let closed = DbErr::Conn(RuntimeErr::SqlxError(std::sync::Arc::new(
            sqlx::Error::PoolClosed,
        )));
        assert!(matches!(db_error(closed), Error::Unavailable(m) if m.contains("shutting down")));
        let timeout = DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout);
        assert!(matches!(db_error(timeout), Error::Unavailable(m) if m.contains("unreachable")));
    }
}
