//! Layered configuration: compiled-in defaults, then an optional TOML file,
//! then `JALON__SECTION__KEY` environment variables, then command-line flags.
//! Secrets are wrapped in [`Secret`] so they never print.

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

/// A value that must not appear in logs, errors or `--help`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself: only for the code that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Every setting of the service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub log: LogSettings,
    pub metrics: MetricsSettings,
    pub tracing: TracingSettings,
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Longest a call may run before it is cancelled, in seconds. The
    /// client-streaming imports are not bounded by it: see
    /// `import_idle_timeout_secs`.
    pub request_timeout_secs: u64,
    /// A client-streaming import (`ImportCosts`, `ImportMeasurements`) fails
    /// with DEADLINE_EXCEEDED when its client sends nothing for this long,
    /// in seconds; it has no overall limit but the client's `grpc-timeout`.
    pub import_idle_timeout_secs: u64,
    /// On SIGTERM/SIGINT, how long in-flight calls may take to finish, in
    /// seconds.
    pub drain_timeout_secs: u64,
    /// Largest request or response message, in bytes.
    pub max_message_bytes: usize,
    /// Browser origins allowed to call over gRPC-Web (CORS); `["*"]` allows
    /// any; empty allows none.
    pub cors_allowed_origins: Vec<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            request_timeout_secs: 30,
            import_idle_timeout_secs: 60,
            drain_timeout_secs: 20,
            max_message_bytes: 4 * 1024 * 1024,
            cors_allowed_origins: Vec::new(),
        }
    }
}

impl ServerSettings {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    pub fn import_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.import_idle_timeout_secs)
    }

    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_secs)
    }
}

/// `[database]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://path?mode=rwc` or `postgres://user:password@host/db`.
    pub url: Secret,
    /// Pool size.
    pub max_connections: u32,
    /// Seconds to wait for a connection from the pool before answering
    /// UNAVAILABLE.
    pub acquire_timeout_secs: u64,
    /// Apply pending migrations at startup. Unset: yes on SQLite, no on
    /// PostgreSQL (run `jalon migrate`, e.g. as a deployment hook).
    pub migrate: Option<bool>,
    /// How long a Create's `request_id` is remembered, in days; older keys
    /// are purged hourly (a retry after that creates anew).
    pub request_id_retention_days: u32,
}

/// The database used with no configuration at all.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://jalon.db?mode=rwc";

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: Secret::new(DEFAULT_DATABASE_URL),
            max_connections: 16,
            acquire_timeout_secs: 5,
            migrate: None,
            request_id_retention_days: 30,
        }
    }
}

impl DatabaseSettings {
    pub fn is_sqlite(&self) -> bool {
        self.url.expose().starts_with("sqlite:")
    }

    /// The path of the SQLite file, if the database is SQLite.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let rest = self.url.expose().strip_prefix("sqlite:")?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let path = rest.split('?').next().unwrap_or_default();
        (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
    }

    /// The URL with any password masked, for logs.
    pub fn redacted_url(&self) -> String {
        let url = self.url.expose();
        match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                let userinfo = &url[scheme + 3..at];
                let user = userinfo.split(':').next().unwrap_or_default();
                format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
            }
            _ => url.to_owned(),
        }
    }

    /// The directory the database lives in (the current one for a server).
    pub fn directory(&self) -> PathBuf {
        self.sqlite_path()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

/// `[auth]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// The only signature algorithm accepted: `HS256`, `RS256` or `ES256`.
    /// Unset: HS256 with a shared secret, RS256 with a PEM file or JWKS.
    pub algorithm: Option<String>,
    /// A shared HS256 secret (development, tests).
    pub hs256_secret: Option<Secret>,
    /// A PEM file with the identity provider's RSA or EC public key.
    pub public_key_file: Option<PathBuf>,
    /// A JWKS file with the identity provider's keys, chosen by `kid`.
    pub jwks_file: Option<PathBuf>,
    /// Required `iss`. Defaults to `jalon-dev` in development mode; required
    /// with a PEM or JWKS key.
    pub issuer: Option<String>,
    /// Required `aud`. Defaults to `jalon` in development mode; required with
    /// a PEM or JWKS key.
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// Subjects allowed to create organisations.
    pub platform_admins: Vec<String>,
    /// With a JWKS file: when a token names an unknown `kid`, the file is read
    /// again if it changed, at most once per this many seconds.
    pub jwks_reload_interval_secs: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            algorithm: None,
            hs256_secret: None,
            public_key_file: None,
            jwks_file: None,
            issuer: None,
            audience: None,
            leeway_secs: 30,
            platform_admins: Vec::new(),
            jwks_reload_interval_secs: 10,
        }
    }
}

impl AuthSettings {
    /// Development mode: no key configured at all.
    pub fn development_mode(&self) -> bool {
        self.hs256_secret.is_none() && self.public_key_file.is_none() && self.jwks_file.is_none()
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `text` (human-readable) or `json`.
    pub format: LogFormat,
    /// A tracing filter (`RUST_LOG` syntax); `RUST_LOG` wins when set.
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `[metrics]`: Prometheus metrics on their own HTTP port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Serve `/metrics` (Prometheus text format).
    pub enabled: bool,
    /// Address of the metrics HTTP server; must differ from `server.listen`.
    pub listen: SocketAddr,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

/// `[tracing]`: OpenTelemetry traces, exported over OTLP/gRPC when an
/// endpoint is set (off by default). Calls continue the W3C trace context
/// (`traceparent`) of their caller either way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracingSettings {
    /// An OTLP/gRPC collector, e.g. `http://otel-collector:4317`; unset or
    /// empty: no export.
    pub otlp_endpoint: Option<String>,
    /// The `service.name` of the exported spans.
    pub service_name: String,
    /// The share of new traces sampled, from 0.0 to 1.0; a call that comes
    /// with a `traceparent` follows its caller's decision.
    pub sample_ratio: f64,
}

impl Default for TracingSettings {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "jalon".into(),
            sample_ratio: 1.0,
        }
    }
}

impl TracingSettings {
    /// The collector to export to, if any.
    pub fn endpoint(&self) -> Option<&str> {
        self.otlp_endpoint
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
    }
}

/// Loads the settings: defaults, then `file` (when given), then
/// `JALON__…` variables, then `overrides` (flags, as a partial TOML-like
/// tree).
pub fn load(file: Option<&Path>, overrides: Figment) -> Result<Settings, String> {
    let mut figment = Figment::from(Serialized::defaults(Settings::default()));
    if let Some(file) = file {
        if !file.exists() {
            return Err(format!("configuration file {} not found", file.display()));
        }
        figment = figment.merge(Toml::file(file));
    }
    figment
        .merge(Env::prefixed("JALON__").split("__"))
        .merge(overrides)
        .extract::<Settings>()
        .map_err(|e| format!("invalid configuration: {e}"))
        .and_then(|settings| {
            let ratio = settings.tracing.sample_ratio;
            if !(0.0..=1.0).contains(&ratio) {
                return Err(format!(
                    "invalid configuration: tracing.sample_ratio must be between 0.0 and 1.0, not {ratio}"
                ));
            }
            if settings.server.import_idle_timeout_secs == 0 {
                return Err(
                    "invalid configuration: server.import_idle_timeout_secs must be at least 1"
                        .into(),
                );
            }
            Ok(settings)
        })
}

#[cfg(test)]
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
        let mut settings = Settings::default();
        settings.auth.hs256_secret = Some(Secret::new("hunter2"));
        settings.database.url = Secret::new("postgres://u:hunter2@db/jalon");
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn database_url_helpers() {
        let db = DatabaseSettings::default();
        assert!(db.is_sqlite());
        assert_eq!(db.sqlite_path(), Some(PathBuf::from("jalon.db")));
        assert_eq!(db.directory(), PathBuf::from("."));
        let pg = DatabaseSettings {
            url: Secret::new("postgres://jalon:pw@db:5432/jalon"),
            ..Default::default()
        };
        assert!(!pg.is_sqlite());
        assert_eq!(pg.redacted_url(), "postgres://jalon:***@db:5432/jalon");
        let nested = DatabaseSettings {
            url: Secret::new("sqlite:///var/lib/jalon/j.db?mode=rwc"),
            ..Default::default()
        };
        assert_eq!(nested.directory(), PathBuf::from("/var/lib/jalon"));
    }

    #[test]
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "jalon.toml",
                "[server]\nrequest_timeout_secs = 7\n[auth]\nplatform_admins = [\"root\"]",
            )?;
            jail.set_env("JALON__SERVER__DRAIN_TIMEOUT_SECS", "3");
            jail.set_env("JALON__SERVER__REQUEST_TIMEOUT_SECS", "8");
            let overrides =
                Figment::new().merge(Serialized::default("server.drain_timeout_secs", 4));
            let s = load(Some(Path::new("jalon.toml")), overrides).map_err(|e| e.to_string())?;
            assert_eq!(s.server.request_timeout_secs, 8);
            assert_eq!(s.server.drain_timeout_secs, 4);
            assert_eq!(s.auth.platform_admins, vec!["root".to_string()]);
            Ok(())
        });
    }

    #[test]
    fn imports_have_an_idle_timeout_of_their_own() {
        let defaults = ServerSettings::default();
        assert_eq!(defaults.import_idle_timeout(), Duration::from_secs(60));
        assert_eq!(defaults.request_timeout(), Duration::from_secs(30));
        figment::Jail::expect_with(|jail| {
            jail.create_file("jalon.toml", "[server]\nimport_idle_timeout_secs = 120")?;
            let s =
                load(Some(Path::new("jalon.toml")), Figment::new()).map_err(|e| e.to_string())?;
            assert_eq!(s.server.import_idle_timeout_secs, 120);
            assert_eq!(s.server.request_timeout_secs, 30, "unchanged");
            jail.set_env("JALON__SERVER__IMPORT_IDLE_TIMEOUT_SECS", "5");
            let s =
                load(Some(Path::new("jalon.toml")), Figment::new()).map_err(|e| e.to_string())?;
            assert_eq!(s.server.import_idle_timeout(), Duration::from_secs(5));
            jail.set_env("JALON__SERVER__IMPORT_IDLE_TIMEOUT_SECS", "0");
            let e = load(Some(Path::new("jalon.toml")), Figment::new()).expect_err("refused");
            assert!(e.contains("server.import_idle_timeout_secs"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[server]\nlisten_address = \"x\"")?;
            assert!(load(Some(Path::new("bad.toml")), Figment::new()).is_err());
            Ok(())
        });
    }

    #[test]
    fn metrics_default_on_loopback_and_can_be_turned_off() {
        let defaults = MetricsSettings::default();
        assert!(defaults.enabled);
        assert_eq!(defaults.listen, SocketAddr::from(([127, 0, 0, 1], 9464)));
        figment::Jail::expect_with(|jail| {
            jail.create_file("jalon.toml", "[metrics]\nlisten = \"0.0.0.0:9100\"")?;
            jail.set_env("JALON__METRICS__ENABLED", "false");
            let s =
                load(Some(Path::new("jalon.toml")), Figment::new()).map_err(|e| e.to_string())?;
            assert!(!s.metrics.enabled);
            assert_eq!(s.metrics.listen, SocketAddr::from(([0, 0, 0, 0], 9100)));
            Ok(())
        });
    }

    #[test]
    fn bad_metrics_settings_are_refused_with_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("typo.toml", "[metrics]\nport = 9464")?;
            let e = load(Some(Path::new("typo.toml")), Figment::new()).expect_err("refused");
            assert!(e.contains("port"), "{e}");
            jail.create_file("bad.toml", "[metrics]\nlisten = \"9464\"")?;
            let e = load(Some(Path::new("bad.toml")), Figment::new()).expect_err("refused");
            assert!(e.contains("metrics.listen"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn tracing_is_off_by_default_and_configurable() {
        let defaults = TracingSettings::default();
        assert_eq!(defaults.endpoint(), None);
        assert_eq!(defaults.service_name, "jalon");
        assert_eq!(defaults.sample_ratio, 1.0);
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "jalon.toml",
                "[tracing]\notlp_endpoint = \"http://otel-collector:4317\"\nsample_ratio = 0.25",
            )?;
            jail.set_env("JALON__TRACING__SERVICE_NAME", "jalon-eu");
            let s =
                load(Some(Path::new("jalon.toml")), Figment::new()).map_err(|e| e.to_string())?;
            assert_eq!(s.tracing.endpoint(), Some("http://otel-collector:4317"));
            assert_eq!(s.tracing.service_name, "jalon-eu");
            assert_eq!(s.tracing.sample_ratio, 0.25);
            jail.set_env("JALON__TRACING__OTLP_ENDPOINT", "");
            let s =
                load(Some(Path::new("jalon.toml")), Figment::new()).map_err(|e| e.to_string())?;
            assert_eq!(s.tracing.endpoint(), None);
            Ok(())
        });
    }

    #[test]
    fn bad_tracing_settings_are_refused_with_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("typo.toml", "[tracing]\nendpoint = \"http://c:4317\"")?;
            let e = load(Some(Path::new("typo.toml")), Figment::new()).expect_err("refused");
            assert!(e.contains("endpoint"), "{e}");
            jail.create_file("bad.toml", "[tracing]\nsample_ratio = 1.5")?;
            let e = load(Some(Path::new("bad.toml")), Figment::new()).expect_err("refused");
            assert!(e.contains("tracing.sample_ratio"), "{e}");
            Ok(())
        });
    }
}
