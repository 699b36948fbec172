//! A fresh database per portfolio size: a new SQLite file in a new temporary
//! directory, or a new, uniquely named PostgreSQL database, dropped at the
//! end (as the end-to-end tests do).

use std::path::PathBuf;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use uuid::Uuid;

use crate::BoxError;

/// Which database the benchmark runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    /// The URL of an administrative database to create the fresh one from.
    Postgres(String),
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgresql",
        }
    }
}

/// A fresh database and what to remove afterwards.
#[derive(Debug)]
pub struct FreshDatabase {
    pub url: String,
    /// Where it lives, for humans (no password).
    pub location: String,
    dir: Option<PathBuf>,
    pg: Option<(String, String)>,
}

impl FreshDatabase {
    pub async fn create(backend: &Backend, label: &str) -> Result<Self, BoxError> {
        let tag = Uuid::now_v7().simple().to_string();
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("jalon-bench-{label}-{tag}"));
                std::fs::create_dir_all(&dir)?;
                let file = dir.join("jalon.db");
                Ok(Self {
                    url: format!("sqlite://{}?mode=rwc", file.display()),
                    location: file.display().to_string(),
                    dir: Some(dir),
                    pg: None,
                })
            }
            Backend::Postgres(admin_url) => {
                let name = format!("jalon_bench_{label}_{tag}");
                let admin = Database::connect(admin_url.as_str()).await?;
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await?;
                admin.close().await?;
                Ok(Self {
                    url: replace_database(admin_url, &name),
                    location: format!("PostgreSQL database {name}"),
                    dir: None,
                    pg: Some((admin_url.clone(), name)),
                })
            }
        }
    }

    /// Removes the file or drops the database.
    pub async fn drop_database(self) -> Result<(), BoxError> {
        if let Some((admin_url, name)) = &self.pg {
            let admin = Database::connect(admin_url.as_str()).await?;
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await?;
            admin.close().await?;
        }
        if let Some(dir) = &self.dir {
            std::fs::remove_dir_all(dir)?;
        }
        Ok(())
    }
}

/// The server's version, e.g. "sqlite 3.46.0".
pub async fn version(db: &DatabaseConnection) -> String {
    let backend = db.get_database_backend();
    let (label, sql) = match backend {
        DbBackend::Postgres => (
            "postgresql",
            "SELECT current_setting('server_version') AS v",
        ),
        _ => ("sqlite", "SELECT sqlite_version() AS v"),
    };
    match db.query_one_raw(Statement::from_string(backend, sql)).await {
        Ok(Some(row)) => match row.try_get::<String>("", "v") {
            Ok(v) => format!("{label} {v}"),
            Err(_) => label.to_owned(),
        },
        _ => label.to_owned(),
    }
}

/// `postgres://u@h:p/db?x` with the database replaced.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::replace_database;

    #[test]
    fn database_names_are_replaced() {
        assert_eq!(
            replace_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            replace_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
    }
}
