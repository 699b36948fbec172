//! Production authentication and secrets, and errors a person can act on
//! (issue 15): `aud` arrays, JWKS keys removed without a restart, database
//! passwords never shown, fatal errors in the log's format, and startup
//! errors that name what is wrong.

use std::{path::PathBuf, time::Duration};

use jalon_proto::v1 as pb;
use jalon_server::{
    Application,
    auth::{Authenticator, DEV_SECRET_FILE, DevSecret},
    config::{self, DatabaseSettings, LogFormat, LogSettings, Secret},
    startup, telemetry,
    telemetry::LogBuffer,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tonic::Code;

use crate::helpers::*;

/// What each bad database URL below hides.
const PASSWORD: &str = "s3cret-db-password";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "jalon-hardening-{tag}-{}",
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn list(app: &TestApp, token: &str) -> Result<pb::ListOrganisationsResponse, tonic::Status> {
    app.organisations()
        .list_organisations(with_token(token, pb::ListOrganisationsRequest::default()))
        .await
        .map(|r| r.into_inner())
}

/// The error of building a server with these settings.
async fn build_error(settings: config::Settings) -> String {
    match Application::build(settings).await {
        Ok(_) => panic!("the application built"),
        Err(e) => e,
    }
}

fn sqlite_settings(dir: &std::path::Path) -> config::Settings {
    test_settings(&format!("sqlite://{}/jalon.db?mode=rwc", dir.display()))
}

#[tokio::test]
async fn an_aud_array_is_accepted_when_it_holds_our_audience() {
    on_each_backend(async |app| {
        for aud in [
            json!([AUDIENCE]),
            json!([AUDIENCE, "account"]),
            json!(AUDIENCE),
        ] {
            let mut claims = claims(ROOT);
            claims["aud"] = aud.clone();
            let result = list(app, &hs256(&claims)).await;
            assert!(result.is_ok(), "aud {aud}: {result:?}");
        }
        for aud in [json!(["account"]), json!(["account", "other"]), json!([])] {
            let mut claims = claims(ROOT);
            claims["aud"] = aud.clone();
            let status = expect_code(list(app, &hs256(&claims)).await, Code::Unauthenticated);
            assert_eq!(status.message(), "missing or invalid credentials");
        }
    })
    .await;
}

fn rs256(kid: &str, key_file: &str) -> String {
    let pem = std::fs::read(fixture(key_file)).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(
        &header,
        &claims("ada"),
        &EncodingKey::from_rsa_pem(&pem).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_key_removed_from_the_jwks_file_is_refused_after_the_reload_interval() {
    for backend in backends() {
        let dir = temp_dir("jwks");
        let file = dir.join("jwks.json");
        let full: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fixture("jwks.json")).unwrap()).unwrap();
        std::fs::write(&file, full.to_string()).unwrap();
        let jwks_file = file.clone();
        let app = TestApp::spawn_with(&backend, move |s| {
            s.auth.hs256_secret = None;
            s.auth.jwks_file = Some(jwks_file);
            s.auth.jwks_reload_interval_secs = 1;
        })
        .await;
        let key_a = rs256("key-2026-01", "rsa1.key");
        let key_b = rs256("key-2026-07", "rsa2.key");
        assert!(list(&app, &key_a).await.is_ok(), "key A is published");
        assert!(list(&app, &key_b).await.is_ok(), "key B is published");

        // Key A is rotated out (or compromised): the file no longer has it.
        // Only known kids are presented, so nothing but the interval makes
        // the server look again.
        let without_a = json!({ "keys": [full["keys"][1].clone()] });
        std::fs::write(&file, without_a.to_string()).unwrap();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let status = expect_code(list(&app, &key_a).await, Code::Unauthenticated);
        assert_eq!(status.message(), "missing or invalid credentials");
        assert!(list(&app, &key_b).await.is_ok(), "key B still works");

        // Republished, it works again.
        std::fs::write(&file, full.to_string()).unwrap();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(list(&app, &key_a).await.is_ok(), "key A is back");
        app.cleanup().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test]
async fn database_passwords_never_appear_in_errors() {
    for (url, quoted) in [
        // Does not parse: port out of range. The URL is quoted, redacted.
        (
            format!("postgres://u:{PASSWORD}@db.example:99999/jalon"),
            true,
        ),
        // A typo in the scheme, and a database Jalon does not support.
        (format!("postgress://u:{PASSWORD}@db.example/jalon"), true),
        (format!("mysql://u:{PASSWORD}@db.example/jalon"), true),
        (
            format!("mysql://db.example/jalon?password={PASSWORD}"),
            true,
        ),
        // Unreachable, with the password as a user-info or query parameter:
        // host and port are named, not the URL.
        (format!("postgres://u:{PASSWORD}@127.0.0.1:1/jalon"), false),
        (
            format!("postgres://u@127.0.0.1:1/jalon?password={PASSWORD}"),
            false,
        ),
        (
            format!("postgres://127.0.0.1:1/jalon?sslmode=disable&password={PASSWORD}"),
            false,
        ),
    ] {
        let mut settings = test_settings(&url);
        settings.database.acquire_timeout_secs = 1;
        let error = build_error(settings).await;
        assert!(!error.contains(PASSWORD), "{url}: {error}");
        if quoted {
            assert!(
                error.contains("***"),
                "{url}: the URL is shown redacted: {error}"
            );
        } else {
            assert!(error.contains("127.0.0.1:1"), "{url}: {error}");
        }
        // `jalon migrate` and `jalon rebuild-portfolio` connect the same way.
        let database = DatabaseSettings {
            url: Secret::new(url.clone()),
            acquire_timeout_secs: 1,
            ..Default::default()
        };
        let error = startup::migrate(&database).await.unwrap_err();
        assert!(!error.contains(PASSWORD), "{url}: {error}");
    }
    let mut settings = test_settings(&format!("postgress://u:{PASSWORD}@db.example/jalon"));
    settings.database.acquire_timeout_secs = 1;
    let error = build_error(settings).await;
    assert!(
        error.contains("unsupported scheme \"postgress\""),
        "{error}"
    );
    let error = build_error(test_settings(&format!(
        "postgres://u:{PASSWORD}@db.example:99999/jalon"
    )))
    .await;
    assert!(error.contains("port \"99999\""), "{error}");
}

/// `url` with a password in its query (trust authentication ignores it).
fn with_query_password(url: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}password={PASSWORD}")
}

#[test]
fn the_startup_log_and_migrate_never_show_a_query_password() {
    let Some(Backend::Postgres(admin_url)) = backends().into_iter().nth(1) else {
        return; // PostgreSQL only: SQLite URLs have no password.
    };
    for format in [LogFormat::Text, LogFormat::Json] {
        let buffer = LogBuffer::default();
        let settings = LogSettings {
            format,
            filter: "info".into(),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let migrated = telemetry::scoped(&settings, buffer.clone(), || {
            runtime.block_on(async {
                let db = FreshDatabase::create(&Backend::Postgres(admin_url.clone())).await;
                let url = with_query_password(&db.url);
                let database = DatabaseSettings {
                    url: Secret::new(url.clone()),
                    ..Default::default()
                };
                let migrated = startup::migrate(&database).await.expect("migrated");
                let mut app = TestApp::start(db, test_settings(&url)).await;
                app.stop().await.unwrap();
                app.cleanup().await;
                migrated
            })
        });
        drop(runtime);
        let log = buffer.contents();
        assert!(log.contains("starting jalon"), "{format:?}: {log}");
        assert!(log.contains("password=***"), "{format:?}: {log}");
        assert!(!log.contains(PASSWORD), "{format:?}: {log}");
        assert!(migrated.contains("password=***"), "{migrated}");
        assert!(!migrated.contains(PASSWORD), "{migrated}");
    }
}

#[test]
fn fatal_errors_are_json_lines_when_json_logging_is_configured() {
    let message = "cannot listen on 127.0.0.1:1 (server.listen, --listen): denied";
    let line = telemetry::fatal_line(LogFormat::Json, message);
    let value: serde_json::Value = serde_json::from_str(&line).expect(&line);
    assert_eq!(value["level"], "ERROR");
    assert_eq!(value["message"], message);
    assert!(
        value["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(
        telemetry::fatal_line(LogFormat::Text, message),
        format!("jalon: {message}")
    );
    // The format is read even from a configuration that is otherwise
    // invalid, so that its own error is printed as JSON.
    let dir = temp_dir("fatal");
    let file = dir.join("jalon.toml");
    std::fs::write(&file, "[log]\nformat = \"json\"\n[databse]\nurl = \"x\"\n").unwrap();
    let overrides = figment::Figment::new();
    assert!(config::load(Some(&file), overrides.clone()).is_err());
    assert_eq!(config::log_format(Some(&file), overrides), LogFormat::Json);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_unknown_configuration_key_is_reported_with_its_path() {
    let dir = temp_dir("config");
    let file = dir.join("jalon.toml");
    std::fs::write(
        &file,
        "[databse]\nurl = \"sqlite://x.db\"\n[database]\nurll = \"sqlite://y.db\"\n[server]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let error = config::load(Some(&file), figment::Figment::new()).unwrap_err();
    assert!(error.contains("unknown keys"), "{error}");
    assert!(
        error.contains(&format!("databse (in {})", file.display())),
        "{error}"
    );
    assert!(
        error.contains(&format!("database.urll (in {})", file.display())),
        "{error}"
    );
    assert!(!error.contains("default."), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_unreachable_postgres_is_named_with_the_cause() {
    let mut settings = test_settings(&format!("postgres://jalon:{PASSWORD}@127.0.0.1:1/jalon"));
    settings.database.acquire_timeout_secs = 1;
    let error = build_error(settings).await;
    assert!(
        error.contains("cannot connect to PostgreSQL at 127.0.0.1:1"),
        "{error}"
    );
    assert!(error.to_lowercase().contains("refused"), "{error}");
    assert!(!error.contains(PASSWORD), "{error}");
}

#[tokio::test]
async fn an_sqlite_database_that_cannot_be_created_is_named() {
    let dir = temp_dir("sqlite");
    // Its directory does not exist.
    let missing = dir.join("missing");
    let error = build_error(sqlite_settings(&missing)).await;
    assert!(
        error.contains(&format!(
            "the SQLite database {}/jalon.db (database.url) cannot be created",
            missing.display()
        )),
        "{error}"
    );
    assert!(error.contains("does not exist"), "{error}");
    // Its "directory" is a file.
    let file = dir.join("a-file");
    std::fs::write(&file, "").unwrap();
    let error = build_error(sqlite_settings(&file)).await;
    assert!(error.contains("is not a directory"), "{error}");
    // Its directory is read-only (root writes anyway: then nothing to see).
    let read_only = dir.join("read-only");
    std::fs::create_dir_all(&read_only).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o555)).unwrap();
    let root = std::fs::write(read_only.join("probe"), "").is_ok();
    if !root {
        let mut settings = sqlite_settings(&read_only);
        // Development mode keeps its secret beside the database: the error
        // is about the database, not the secret.
        settings.auth.hs256_secret = None;
        settings.auth.issuer = None;
        settings.auth.audience = None;
        let error = build_error(settings).await;
        assert!(error.contains("the SQLite database"), "{error}");
        assert!(error.contains("not writable"), "{error}");
        assert!(!error.contains(DEV_SECRET_FILE), "{error}");
    }
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_busy_port_is_named_before_the_database_is_touched() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    // SQLite: the file is not created.
    let dir = temp_dir("port");
    let mut settings = sqlite_settings(&dir);
    settings.server.listen = addr;
    let error = build_error(settings).await;
    assert!(
        error.contains(&format!("cannot listen on {addr} (server.listen")),
        "{error}"
    );
    assert!(!dir.join("jalon.db").exists(), "the database was touched");
    // PostgreSQL: an unreachable one is not even tried.
    let mut settings = test_settings("postgres://u:pw@127.0.0.1:1/jalon");
    settings.server.listen = addr;
    let error = build_error(settings).await;
    assert!(
        error.contains(&format!("cannot listen on {addr}")),
        "{error}"
    );
    // The metrics port too.
    let mut settings = sqlite_settings(&dir);
    settings.metrics.listen = addr;
    let error = build_error(settings).await;
    assert!(error.contains(&format!("metrics on {addr}")), "{error}");
    assert!(!dir.join("jalon.db").exists(), "the database was touched");
    drop(taken);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn jalon_token_reads_the_servers_secret_and_never_creates_one() {
    let dev = |settings: &mut config::Settings| {
        settings.auth.hs256_secret = None;
        settings.auth.issuer = None;
        settings.auth.audience = None;
        settings.auth.platform_admins = vec![];
    };
    // In a directory without a server: refused, naming the file.
    let elsewhere = temp_dir("token");
    let mut settings = sqlite_settings(&elsewhere);
    dev(&mut settings);
    let error = Authenticator::load(&settings.auth, &settings.database, DevSecret::MustExist)
        .err()
        .expect("refused");
    let secret = elsewhere.join(DEV_SECRET_FILE);
    assert!(
        error.contains(&format!("no development secret at {}", secret.display())),
        "{error}"
    );
    assert!(!secret.exists(), "no secret was created");

    // Beside the server's database: the server's secret, named.
    let app = TestApp::spawn_with(&Backend::Sqlite, dev).await;
    let mut settings = test_settings(&app.db.url);
    dev(&mut settings);
    let minter =
        Authenticator::load(&settings.auth, &settings.database, DevSecret::MustExist).unwrap();
    assert!(
        minter.secret_source().ends_with(DEV_SECRET_FILE),
        "{}",
        minter.secret_source()
    );
    let token = minter.mint("dev-admin", Duration::from_secs(60)).unwrap();
    assert!(list(&app, &token).await.is_ok());
    app.cleanup().await;
    let _ = std::fs::remove_dir_all(&elsewhere);
}
