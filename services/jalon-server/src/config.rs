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
    pub events: EventSettings,
    pub webhooks: WebhookSettings,
}

/// `[webhooks]`: deliveries of the organisations' events to the endpoints
/// their ADMINs register (`WebhookService`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Accept `http://` endpoint URLs (tests, a receiver on a trusted
    /// network); otherwise `https://` only.
    pub allow_http: bool,
    /// Networks (CIDR, or single addresses) deliveries may reach although
    /// they are not public: loopback, private, link-local, unique-local and
    /// metadata addresses are refused otherwise, after DNS resolution.
    pub allowed_networks: Vec<String>,
    /// PEM files of further certificate authorities trusted for `https://`
    /// endpoints, beside the public ones (Mozilla's, compiled in): a
    /// private CA of the receivers, or a test's own.
    pub extra_root_certificates: Vec<String>,
    /// After a secret rotation, how long the previous secret keeps signing
    /// (a second signature), in seconds.
    pub secret_grace_secs: u64,
    /// Time allowed for one delivery attempt (connect, TLS, request,
    /// response headers), in seconds.
    pub timeout_secs: u64,
    /// How long a replica holds a delivery it claimed; a replica that dies
    /// mid-delivery leaves it to another after this, in seconds (more than
    /// `timeout_secs`).
    pub lease_secs: u64,
    /// Delay before the first retry, in milliseconds; each next one is four
    /// times longer (with ±20% jitter), up to `retry_max_delay_secs`.
    pub retry_initial_delay_ms: u64,
    /// Longest delay between two attempts (also the cap of a
    /// `Retry-After`), in seconds.
    pub retry_max_delay_secs: u64,
    /// A delivery is retried for this long after its event, then given up,
    /// in seconds (3 days).
    pub retry_window_secs: u64,
    /// An endpoint whose deliveries all failed for this long is disabled,
    /// with the reason, in seconds (1 day).
    pub disable_after_secs: u64,
    /// How often the delivery worker looks for due retries, in
    /// milliseconds (new events wake it at once).
    pub poll_interval_ms: u64,
    /// Deliveries in flight at once per replica.
    pub concurrency: usize,
    /// The CloudEvents `source` prefix: events carry
    /// `<source>/organisations/<id>`.
    pub source: String,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_http: false,
            allowed_networks: Vec::new(),
            extra_root_certificates: Vec::new(),
            secret_grace_secs: 24 * 3600,
            timeout_secs: 15,
            lease_secs: 60,
            retry_initial_delay_ms: 10_000,
            retry_max_delay_secs: 12 * 3600,
            retry_window_secs: 3 * 24 * 3600,
            disable_after_secs: 24 * 3600,
            poll_interval_ms: 1000,
            concurrency: 16,
            source: "/jalon".into(),
        }
    }
}

impl WebhookSettings {
    /// The allow-listed networks, parsed.
    pub fn networks(&self) -> Result<Vec<jalon_core::webhook::Network>, String> {
        self.allowed_networks
            .iter()
            .map(|n| {
                n.parse()
                    .map_err(|e| format!("invalid configuration: webhooks.allowed_networks: {e}"))
            })
            .collect()
    }

    fn check(&self) -> Result<(), String> {
        self.networks()?;
        let positive = [
            ("timeout_secs", self.timeout_secs),
            ("retry_initial_delay_ms", self.retry_initial_delay_ms),
            ("retry_max_delay_secs", self.retry_max_delay_secs),
            ("retry_window_secs", self.retry_window_secs),
            ("disable_after_secs", self.disable_after_secs),
            ("poll_interval_ms", self.poll_interval_ms),
            ("concurrency", self.concurrency as u64),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(format!(
                    "invalid configuration: webhooks.{key} must be at least 1"
                ));
            }
        }
        if self.lease_secs <= self.timeout_secs {
            return Err(format!(
                "invalid configuration: webhooks.lease_secs ({}) must be more than webhooks.timeout_secs ({})",
                self.lease_secs, self.timeout_secs
            ));
        }
        Ok(())
    }
}

/// `[events]`: the outbox that `EventService.WatchEvents` streams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventSettings {
    /// How long events are kept, in days; a watch resuming before the
    /// oldest kept answers FAILED_PRECONDITION (HISTORY_EXPIRED).
    pub retention_days: u32,
    /// A watch with nothing to send sends a heartbeat (the current position)
    /// after this many seconds, so idle proxies keep the stream open.
    pub heartbeat_secs: u64,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            retention_days: 30,
            heartbeat_secs: 15,
        }
    }
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
    /// Rows an import writes per transaction (1 to 50,000): each batch also
    /// refreshes the figures of the projects it touches once, so larger
    /// batches import faster and hold the write lock longer.
    pub import_batch_rows: usize,
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
            import_batch_rows: 2_000,
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

    /// The URL with every password masked (the user-info password and any
    /// `password`-like query parameter), for logs and errors. Works on URLs
    /// that do not parse, too.
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.expose())
    }

    /// `text` with the database URL replaced by its redacted form and every
    /// password of the URL (as written and percent-decoded) masked: for any
    /// message that may quote the URL (a driver's error, a log line).
    pub fn redact(&self, text: &str) -> String {
        let url = self.url.expose();
        let mut out = if url.is_empty() {
            text.to_owned()
        } else {
            text.replace(url, &redact_url(url))
        };
        for secret in url_secrets(url) {
            out = out.replace(&secret, REDACTED);
        }
        out
    }

    /// Checks the URL's form before any connection: a scheme Jalon supports
    /// and, for PostgreSQL, a host and a port that parse. The error quotes
    /// the URL redacted.
    pub fn check_url(&self) -> Result<(), String> {
        let url = self.url.expose();
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or_default();
        match scheme {
            "sqlite" => Ok(()),
            "postgres" | "postgresql" => self.postgres_endpoint().map(|_| ()),
            _ => Err(format!(
                "database.url {}: unsupported scheme {:?}: use sqlite://FILE?mode=rwc or \
                 postgres://USER:PASSWORD@HOST:PORT/DATABASE",
                redact_url(url),
                scheme
            )),
        }
    }

    /// PostgreSQL's `host:port` (the `host` and `port` query parameters win,
    /// as in libpq; port 5432 by default), never the password. An error
    /// when the port is not a number from 1 to 65535.
    pub fn postgres_endpoint(&self) -> Result<String, String> {
        let url = self.url.expose();
        let parts = UrlParts::of(url);
        let authority = parts.host_port;
        let (mut host, mut port) = if let Some(rest) = authority.strip_prefix('[') {
            // [v6]:port
            match rest.split_once(']') {
                Some((h, p)) => (format!("[{h}]"), p.strip_prefix(':').map(str::to_owned)),
                None => (authority.to_owned(), None),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p.to_owned())),
                None => (authority.to_owned(), None),
            }
        };
        for (key, value) in parts.query_pairs() {
            match key.as_str() {
                "host" => host = percent_decode(value),
                "port" => port = Some(percent_decode(value)),
                _ => {}
            }
        }
        if host.is_empty() {
            host = "localhost".into();
        }
        let port = match port.filter(|p| !p.is_empty()) {
            None => 5432,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(format!(
                        "database.url {}: the port {p:?} is not a number from 1 to 65535",
                        redact_url(url)
                    ));
                }
            },
        };
        Ok(format!("{host}:{port}"))
    }

    /// The directory the database lives in (the current one for a server).
    pub fn directory(&self) -> PathBuf {
        self.sqlite_path()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

/// What replaces a password.
const REDACTED: &str = "***";

/// The pieces of a database URL, found without a full parse (a URL that
/// does not parse must still be redacted).
struct UrlParts<'a> {
    /// Everything up to and including `://` (empty when there is none).
    scheme: &'a str,
    /// `user[:password]`, without the `@`.
    userinfo: Option<&'a str>,
    /// `host[:port]`.
    host_port: &'a str,
    /// After the `?`.
    query: Option<&'a str>,
}

impl<'a> UrlParts<'a> {
    fn of(url: &'a str) -> Self {
        let (scheme, rest) = match url.find("://") {
            Some(i) => url.split_at(i + 3),
            None => ("", url),
        };
        // The user info ends at the last `@`: a password may hold an
        // unescaped `/`, `?` or `@`. (An `@` in the query makes more of the
        // URL count as the password: redacted too much, never too little.)
        let at = rest.rfind('@');
        let (userinfo, rest) = match at {
            Some(at) if !scheme.is_empty() => (Some(&rest[..at]), &rest[at + 1..]),
            _ => (None, rest),
        };
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let host_port = match before_query.find('/') {
            Some(slash) if !scheme.is_empty() => &before_query[..slash],
            _ => before_query,
        };
        Self {
            scheme,
            userinfo,
            host_port,
            query,
        }
    }

    fn query_pairs(&self) -> impl Iterator<Item = (String, &'a str)> {
        self.query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(k).to_ascii_lowercase(), v)
            })
    }
}

/// Whether a query parameter holds a secret (`password`, `sslpassword`).
fn is_secret_param(key: &str) -> bool {
    key.contains("password")
}

/// The URL with its passwords masked.
pub fn redact_url(url: &str) -> String {
    if url.starts_with("sqlite:") {
        return url.to_owned();
    }
    let parts = UrlParts::of(url);
    let mut out = String::from(parts.scheme);
    if let Some(userinfo) = parts.userinfo {
        match userinfo.split_once(':') {
            Some((user, _)) => {
                out.push_str(user);
                out.push(':');
                out.push_str(REDACTED);
            }
            None => out.push_str(userinfo),
        }
        out.push('@');
    }
    let rest = &url[parts.scheme.len() + parts.userinfo.map_or(0, |u| u.len() + 1)..];
    // Every `key=value` after a `?` or `&` whose key names a password,
    // wherever it is (an `@` in the query moves the parts around).
    let mut masked = String::with_capacity(rest.len());
    let mut start = 0;
    for segment in rest.split(['?', '&']) {
        if start > 0 {
            // The delimiter before this segment.
            masked.push_str(&rest[start - 1..start]);
        }
        match secret_param(segment).filter(|_| start > 0) {
            Some((key, _)) => {
                masked.push_str(key);
                masked.push('=');
                masked.push_str(REDACTED);
            }
            None => masked.push_str(segment),
        }
        start += segment.len() + 1;
    }
    out.push_str(&masked);
    out
}

/// `key=value` whose key names a password: its key and value.
fn secret_param(segment: &str) -> Option<(&str, &str)> {
    let (key, value) = segment.split_once('=')?;
    is_secret_param(&percent_decode(key).to_ascii_lowercase()).then_some((key, value))
}

/// The passwords a URL holds, as written and percent-decoded.
fn url_secrets(url: &str) -> Vec<String> {
    if url.starts_with("sqlite:") {
        return Vec::new();
    }
    let parts = UrlParts::of(url);
    let mut raw = Vec::new();
    if let Some((_, password)) = parts.userinfo.and_then(|u| u.split_once(':')) {
        raw.push(password);
    }
    for segment in url.split(['?', '&']).skip(1) {
        if let Some((_, value)) = secret_param(segment) {
            raw.push(value);
        }
    }
    let mut secrets: Vec<String> = Vec::new();
    for value in raw {
        for form in [value.to_owned(), percent_decode(value)] {
            if !form.is_empty() && !secrets.contains(&form) {
                secrets.push(form);
            }
        }
    }
    // Longest first, so that a password containing another is masked whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets
}

/// `%XX` decoded (and `+` kept): invalid escapes stay as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
    /// The claim of a token that names the person (compared with the
    /// people's subjects): `sub` by default; `oid` for Entra ID, whose
    /// `sub` differs per application.
    pub subject_claim: String,
    /// The SCIM User attribute that becomes a provisioned person's subject,
    /// so that it matches `subject_claim` in their tokens: `userName`
    /// (default) or `externalId`.
    pub scim_subject_attribute: String,
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
            subject_claim: "sub".into(),
            scim_subject_attribute: "userName".into(),
        }
    }
}

impl AuthSettings {
    /// Development mode: no key configured at all.
    pub fn development_mode(&self) -> bool {
        self.hs256_secret.is_none() && self.public_key_file.is_none() && self.jwks_file.is_none()
    }

    /// The SCIM User attribute provisioned people's subjects come from.
    pub fn scim_subject(&self) -> Result<jalon_core::scim::SubjectAttribute, String> {
        self.scim_subject_attribute
            .parse()
            .map_err(|e| format!("invalid configuration: auth.scim_subject_attribute: {e}"))
    }

    fn check(&self) -> Result<(), String> {
        let claim = self.subject_claim.as_str();
        if claim.is_empty()
            || !claim
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-:.".contains(c))
        {
            return Err(format!(
                "invalid configuration: auth.subject_claim must name a claim (such as sub or oid), not {claim:?}"
            ));
        }
        if ["exp", "nbf", "iat", "iss", "aud"].contains(&claim) {
            return Err(format!(
                "invalid configuration: auth.subject_claim cannot be {claim}: it does not name a person"
            ));
        }
        self.scim_subject().map(|_| ())
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

/// The layers, merged: defaults, then `file` (when given), then `JALON__…`
/// variables, then `overrides`.
fn figment(file: Option<&Path>, overrides: Figment) -> Figment {
    let mut figment = Figment::from(Serialized::defaults(Settings::default()));
    if let Some(file) = file {
        figment = figment.merge(Toml::file(file));
    }
    figment
        .merge(Env::prefixed("JALON__").split("__"))
        .merge(overrides)
}

/// Loads the settings: defaults, then `file` (when given), then
/// `JALON__…` variables, then `overrides` (flags, as a partial TOML-like
/// tree). Every unknown key is reported, with its path and where it came
/// from.
pub fn load(file: Option<&Path>, overrides: Figment) -> Result<Settings, String> {
    if let Some(file) = file
        && !file.exists()
    {
        return Err(format!("configuration file {} not found", file.display()));
    }
    let figment = figment(file, overrides);
    let unknown = unknown_keys(&figment)?;
    if !unknown.is_empty() {
        return Err(format!(
            "invalid configuration: unknown key{} {}",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", ")
        ));
    }
    figment
        .extract::<Settings>()
        .map_err(|e| format!("invalid configuration: {}", describe(e)))
        .and_then(|settings| {
            let ratio = settings.tracing.sample_ratio;
            if !(0.0..=1.0).contains(&ratio) {
                return Err(format!(
                    "invalid configuration: tracing.sample_ratio must be between 0.0 and 1.0, not {ratio}"
                ));
            }
            if settings.events.heartbeat_secs == 0 || settings.events.retention_days == 0 {
                return Err(
                    "invalid configuration: events.heartbeat_secs and events.retention_days must be at least 1"
                        .into(),
                );
            }
            settings.webhooks.check()?;
            settings.auth.check()?;
            if settings.server.import_idle_timeout_secs == 0 {
                return Err(
                    "invalid configuration: server.import_idle_timeout_secs must be at least 1"
                        .into(),
                );
            }
            if !(1..=MAX_IMPORT_BATCH_ROWS).contains(&settings.server.import_batch_rows) {
                return Err(format!(
                    "invalid configuration: server.import_batch_rows must be between 1 and {MAX_IMPORT_BATCH_ROWS}, not {}",
                    settings.server.import_batch_rows
                ));
            }
            Ok(settings)
        })
}

/// Largest `server.import_batch_rows`.
pub const MAX_IMPORT_BATCH_ROWS: usize = 50_000;

/// The log format the layers ask for, even when the rest of the
/// configuration is invalid (a fatal error is then printed in that format);
/// text when it cannot be read.
pub fn log_format(file: Option<&Path>, overrides: Figment) -> LogFormat {
    let file = file.filter(|f| f.exists());
    figment(file, overrides)
        .extract_inner::<LogFormat>("log.format")
        .unwrap_or(LogFormat::Text)
}

/// Every key of the merged layers that no setting has, as `section.key`
/// followed by where it was set.
fn unknown_keys(figment: &Figment) -> Result<Vec<String>, String> {
    let known = serde_json::to_value(Settings::default())
        .map_err(|e| format!("cannot list the settings: {e}"))?;
    let given: figment::value::Dict = figment
        .extract()
        .map_err(|e| format!("invalid configuration: {}", describe(e)))?;
    let mut unknown = Vec::new();
    collect_unknown(figment, &given, &known, &mut Vec::new(), &mut unknown);
    Ok(unknown)
}

fn collect_unknown(
    figment: &Figment,
    given: &figment::value::Dict,
    known: &serde_json::Value,
    path: &mut Vec<String>,
    unknown: &mut Vec<String>,
) {
    for (key, value) in given {
        path.push(key.clone());
        match known.get(key) {
            None => {
                let dotted = path.join(".");
                unknown.push(format!("{dotted} ({})", origin(figment, &dotted, path)));
            }
            Some(inner @ serde_json::Value::Object(_)) => {
                if let figment::value::Value::Dict(_, dict) = value {
                    collect_unknown(figment, dict, inner, path, unknown);
                }
            }
            Some(_) => {}
        }
        path.pop();
    }
}

/// Where a key was set: the file, the environment variable, or the layer's
/// name.
fn origin(figment: &Figment, dotted: &str, path: &[String]) -> String {
    match figment.find_metadata(dotted) {
        Some(md) => match &md.source {
            Some(figment::Source::File(file)) => format!("in {}", file.display()),
            _ if md.name.contains("environment") => format!(
                "environment variable JALON__{}",
                path.iter()
                    .map(|k| k.to_ascii_uppercase())
                    .collect::<Vec<_>>()
                    .join("__")
            ),
            _ => format!("from {}", md.name),
        },
        None => "from an unknown source".into(),
    }
}

/// A figment error as `key: what is wrong (where)`, one line each, without
/// figment's profile prefix (`default.`).
fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let place = match e.metadata.as_ref().map(|md| (&md.source, &md.name)) {
                Some((Some(figment::Source::File(file)), _)) => format!(" (in {})", file.display()),
                Some((_, name)) => format!(" (from {name})"),
                None => String::new(),
            };
            if e.path.is_empty() {
                format!("{}{place}", e.kind)
            } else {
                format!("{}: {}{place}", e.path.join("."), e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
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
    fn the_subject_claim_and_scim_attribute_are_read_and_checked() {
        let defaults = AuthSettings::default();
        assert_eq!(defaults.subject_claim, "sub");
        assert_eq!(
            defaults.scim_subject(),
            Ok(jalon_core::scim::SubjectAttribute::UserName)
        );
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "entra.toml",
                "[auth]\nsubject_claim = \"oid\"\nscim_subject_attribute = \"externalId\"",
            )?;
            let s =
                load(Some(Path::new("entra.toml")), Figment::new()).map_err(|e| e.to_string())?;
            assert_eq!(s.auth.subject_claim, "oid");
            assert_eq!(
                s.auth.scim_subject(),
                Ok(jalon_core::scim::SubjectAttribute::ExternalId)
            );
            jail.create_file("bad.toml", "[auth]\nscim_subject_attribute = \"mail\"")?;
            let e = load(Some(Path::new("bad.toml")), Figment::new()).expect_err("refused");
            assert!(e.contains("auth.scim_subject_attribute"), "{e}");
            jail.create_file("exp.toml", "[auth]\nsubject_claim = \"exp\"")?;
            let e = load(Some(Path::new("exp.toml")), Figment::new()).expect_err("refused");
            assert!(e.contains("auth.subject_claim"), "{e}");
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

    fn db(url: &str) -> DatabaseSettings {
        DatabaseSettings {
            url: Secret::new(url),
            ..Default::default()
        }
    }

    #[test]
    fn passwords_are_redacted_in_every_form() {
        let cases = [
            // user-info password
            (
                "postgres://u:s3cret@host:5432/db",
                "postgres://u:***@host:5432/db",
            ),
            // a URL that does not parse (port out of range)
            (
                "postgres://u:s3cret@host:99999/db",
                "postgres://u:***@host:99999/db",
            ),
            // a scheme typo, another database
            ("postgress://u:s3cret@host/db", "postgress://u:***@host/db"),
            ("mysql://u:s3cret@host/db", "mysql://u:***@host/db"),
            // as a query parameter (libpq), alone or among others
            (
                "postgres://u@host/db?password=s3cret",
                "postgres://u@host/db?password=***",
            ),
            (
                "postgres://host/db?user=u&Password=s3cret&sslmode=require&sslpassword=s3cret",
                "postgres://host/db?user=u&Password=***&sslmode=require&sslpassword=***",
            ),
            // a password holding `@`, `/` and `?`
            ("postgres://u:s3c@r/e?t@host/db", "postgres://u:***@host/db"),
            // percent-encoded
            ("postgres://u:s3cr%40t@host/db", "postgres://u:***@host/db"),
        ];
        for (url, redacted) in cases {
            let d = db(url);
            assert_eq!(d.redacted_url(), redacted, "{url}");
            let message = format!("The connection string '{url}' cannot be parsed.");
            let scrubbed = d.redact(&message);
            assert!(!scrubbed.contains("s3c"), "{url}: {scrubbed}");
            assert!(scrubbed.contains(redacted), "{url}: {scrubbed}");
        }
        // A password quoted apart from its URL, decoded or not, is masked.
        let d = db("postgres://u:s3cr%40t@host/db?password=other-pw");
        let scrubbed = d.redact("auth failed for s3cr@t, s3cr%40t and other-pw");
        assert_eq!(scrubbed, "auth failed for ***, *** and ***");
        // An `@` in the query: more is masked, never less.
        let d = db("postgres://u:s3cret@host/db?application_name=a@b&password=s3cret2");
        assert!(!d.redacted_url().contains("s3c"), "{}", d.redacted_url());
        assert!(!d.redact(d.url.expose()).contains("s3c"));
        // SQLite URLs have no password: nothing is touched.
        let d = db("sqlite:///tmp/a:b@c/jalon.db?mode=rwc");
        assert_eq!(d.redacted_url(), "sqlite:///tmp/a:b@c/jalon.db?mode=rwc");
        assert_eq!(d.redact("b and c"), "b and c");
    }

    #[test]
    fn database_urls_are_checked_before_connecting() {
        assert!(db("sqlite://jalon.db?mode=rwc").check_url().is_ok());
        assert!(db("postgres://u:pw@db/jalon").check_url().is_ok());
        assert!(db("postgresql://u:pw@db:6543/jalon").check_url().is_ok());
        for (url, expected) in [
            ("postgres://u:s3cret@host:99999/db", "port \"99999\""),
            (
                "postgress://u:s3cret@host/db",
                "unsupported scheme \"postgress\"",
            ),
            ("mysql://u:s3cret@host/db", "unsupported scheme \"mysql\""),
            ("jalon.db", "unsupported scheme"),
        ] {
            let e = db(url).check_url().expect_err(url);
            assert!(e.contains(expected), "{url}: {e}");
            assert!(!e.contains("s3cret"), "{url}: {e}");
        }
    }

    #[test]
    fn postgres_endpoints_name_host_and_port_only() {
        let endpoint = |url: &str| db(url).postgres_endpoint();
        assert_eq!(endpoint("postgres://u:pw@db/j"), Ok("db:5432".into()));
        assert_eq!(endpoint("postgres://u:pw@db:6543/j"), Ok("db:6543".into()));
        assert_eq!(endpoint("postgres://[::1]:6543/j"), Ok("[::1]:6543".into()));
        assert_eq!(endpoint("postgres:///j"), Ok("localhost:5432".into()));
        assert_eq!(
            endpoint("postgres://u@/j?host=/run/postgresql&port=5433"),
            Ok("/run/postgresql:5433".into())
        );
        assert!(endpoint("postgres://u:pw@db:0/j").is_err());
    }

    #[test]
    fn every_unknown_key_is_reported_with_its_path() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "typos.toml",
                "[databse]\nurl = \"x\"\n[database]\nurll = \"y\"\n[server]\nlisten = \"127.0.0.1:1\"",
            )?;
            jail.set_env("JALON__AUTH__AUDIENCES", "jalon");
            let e = load(Some(Path::new("typos.toml")), Figment::new()).expect_err("refused");
            assert!(e.contains("databse (in "), "{e}");
            assert!(e.contains("database.urll (in "), "{e}");
            assert!(e.contains("typos.toml"), "{e}");
            assert!(
                e.contains("auth.audiences (environment variable JALON__AUTH__AUDIENCES)"),
                "{e}"
            );
            assert!(!e.contains("default."), "{e}");
            Ok(())
        });
    }

    #[test]
    fn other_errors_name_the_key_without_the_profile() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[server]\nrequest_timeout_secs = \"soon\"")?;
            let e = load(Some(Path::new("bad.toml")), Figment::new()).expect_err("refused");
            assert!(
                e.contains("server.request_timeout_secs: invalid type"),
                "{e}"
            );
            assert!(!e.contains("default."), "{e}");
            Ok(())
        });
    }

    #[test]
    fn the_log_format_is_read_even_from_an_invalid_configuration() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "bad.toml",
                "[log]\nformat = \"json\"\n[databse]\nurl = \"x\"",
            )?;
            assert!(load(Some(Path::new("bad.toml")), Figment::new()).is_err());
            assert_eq!(
                log_format(Some(Path::new("bad.toml")), Figment::new()),
                LogFormat::Json
            );
            assert_eq!(log_format(None, Figment::new()), LogFormat::Text);
            jail.set_env("JALON__LOG__FORMAT", "json");
            assert_eq!(log_format(None, Figment::new()), LogFormat::Json);
            Ok(())
        });
    }

    #[test]
    fn webhook_settings_are_read_and_checked() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "hooks.toml",
                "[webhooks]\nallow_http = true\nallowed_networks = [\"127.0.0.1\", \"10.0.0.0/8\"]\ntimeout_secs = 2\nlease_secs = 5",
            )?;
            let settings = load(Some(Path::new("hooks.toml")), Figment::new()).expect("loads");
            assert!(settings.webhooks.allow_http);
            assert_eq!(settings.webhooks.networks().expect("parsed").len(), 2);
            assert_eq!(settings.webhooks.timeout_secs, 2);
            jail.create_file(
                "net.toml",
                "[webhooks]\nallowed_networks = [\"10.0.0.0/40\"]",
            )?;
            let e = load(Some(Path::new("net.toml")), Figment::new()).expect_err("refused");
            assert!(e.contains("webhooks.allowed_networks"), "{e}");
            jail.create_file(
                "lease.toml",
                "[webhooks]\ntimeout_secs = 30\nlease_secs = 30",
            )?;
            let e = load(Some(Path::new("lease.toml")), Figment::new()).expect_err("refused");
            assert!(e.contains("webhooks.lease_secs"), "{e}");
            Ok(())
        });
        let defaults = WebhookSettings::default();
        assert_eq!(defaults.timeout_secs, 15);
        assert!(!defaults.allow_http && defaults.allowed_networks.is_empty());
    }
}
