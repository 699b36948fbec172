//! Builds the application from its settings and serves it until a shutdown
//! signal: API services behind authentication, health and reflection open,
//! gRPC-Web with CORS, request logging and metrics, timeouts (the request
//! timeout, or the idle timeout of a streamed import), message size limits,
//! and a graceful drain; Prometheus metrics on their own port.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use http::{HeaderName, HeaderValue};
use jalon_proto::{
    FILE_DESCRIPTOR_SET, SERVICE_NAMES,
    v1::{
        assessment_service_server::AssessmentServiceServer,
        audit_service_server::AuditServiceServer, event_service_server::EventServiceServer,
        finance_service_server::FinanceServiceServer, gate_service_server::GateServiceServer,
        kpi_service_server::KpiServiceServer,
        organisation_service_server::OrganisationServiceServer,
        person_service_server::PersonServiceServer,
        portfolio_service_server::PortfolioServiceServer,
        project_service_server::ProjectServiceServer,
        provisioning_service_server::ProvisioningServiceServer,
        webhook_service_server::WebhookServiceServer,
    },
};
use jalon_store::{PoolOptions, Store};
use tokio::net::TcpListener;
use tonic::{
    service::interceptor::InterceptedService,
    transport::{Server, server::TcpIncoming},
};
use tonic_health::{ServingStatus, server::HealthReporter};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    trace::TraceLayer,
};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{
    auth::{AuthInterceptor, Authenticator},
    codec_errors::CodecErrorLayer,
    config::{DatabaseSettings, Settings},
    grpc::{
        assessments::AssessmentApi, audit::AuditApi, events::EventApi, finance::FinanceApi,
        gates::GateApi, import::ImportLimits, kpis::KpiApi, organisations::OrganisationApi,
        people::PersonApi, portfolio::PortfolioApi, projects::ProjectApi,
        provisioning::ProvisioningApi, webhooks::WebhookApi,
    },
    metrics::{self, Metrics, MetricsLayer},
    scim::{ScimLayer, ScimState},
    telemetry,
    timeouts::TimeoutLayer,
};

/// A built application: database connected and migrated, port bound.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    store: Store,
    settings: Settings,
    authenticator: Arc<Authenticator>,
    metrics: Arc<Metrics>,
    /// The metrics listener and its address, when metrics are enabled.
    metrics_listener: Option<(TcpListener, SocketAddr)>,
    /// On SQLite, the lock that keeps a second server off the same file,
    /// held for as long as this one serves.
    sqlite_lock: Option<std::fs::File>,
}

impl Application {
    /// Binds the listeners first (a busy port is reported before the
    /// database is touched), checks the database URL (and, on SQLite, that
    /// the file can be created and written), loads the keys, then connects
    /// the database (migrating it when allowed). Port 0 picks a free port
    /// (tests).
    pub async fn build(settings: Settings) -> Result<Self, String> {
        settings.database.check_url()?;
        tracing::info!(database = %settings.database.redacted_url(), "starting jalon");
        let listener = TcpListener::bind(settings.server.listen)
            .await
            .map_err(|e| {
                format!(
                    "cannot listen on {} (server.listen, --listen): {e}",
                    settings.server.listen
                )
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot read the bound address: {e}"))?;
        let metrics_listener = if settings.metrics.enabled {
            let listen = settings.metrics.listen;
            if listen.port() != 0 && listen == settings.server.listen {
                return Err(format!(
                    "metrics.listen ({listen}) must differ from server.listen; \
                     or set metrics.enabled = false"
                ));
            }
            let listener = TcpListener::bind(listen).await.map_err(|e| {
                format!(
                    "cannot listen for metrics on {listen} (metrics.listen): {e}; \
                     choose another address or set metrics.enabled = false"
                )
            })?;
            let addr = listener
                .local_addr()
                .map_err(|e| format!("cannot read the bound metrics address: {e}"))?;
            Some((listener, addr))
        } else {
            None
        };
        check_sqlite_file(&settings.database)?;
        let sqlite_lock = lock_sqlite_file(&settings.database)?;
        let authenticator = Arc::new(Authenticator::from_settings(
            &settings.auth,
            &settings.database,
        )?);
        let store = connect(&settings.database, &pool_options(&settings.database)).await?;
        let pending = store.pending_migrations().await?;
        if !pending.is_empty() {
            let migrate = settings
                .database
                .migrate
                .unwrap_or(settings.database.is_sqlite());
            if !migrate {
                return Err(format!(
                    "the database schema is behind: {} pending migration(s) ({}). \
                     Run `jalon migrate`, or start with --migrate",
                    pending.len(),
                    pending.join(", ")
                ));
            }
            let applied = store.migrate().await?;
            tracing::info!(applied, "database migrated");
        }
        // Projects created before the portfolio existed get their figures.
        let backfilled = jalon_store::portfolio::backfill(store.db())
            .await
            .map_err(|e| format!("cannot compute the portfolio figures: {e}"))?;
        if backfilled > 0 {
            tracing::info!(backfilled, "portfolio figures computed");
        }
        Ok(Self {
            listener,
            addr,
            store,
            settings,
            authenticator,
            metrics: Arc::new(Metrics::new()),
            metrics_listener,
            sqlite_lock,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address `/metrics` is served on, when metrics are enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(|(_, addr)| *addr)
    }

    /// The database handle.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Mints a token when this configuration has a shared secret.
    pub fn mint_token(&self, subject: &str, ttl: Duration) -> Result<String, String> {
        self.authenticator.mint(subject, ttl)
    }

    /// Whether tokens are checked against the development secret.
    pub fn development_mode(&self) -> bool {
        self.authenticator.development
    }

    /// Serves until `shutdown` completes, then drains: health turns
    /// NOT_SERVING, no new connection is accepted, in-flight calls finish
    /// within the drain timeout.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), String> {
        let Self {
            listener,
            store,
            settings,
            authenticator,
            metrics,
            metrics_listener,
            sqlite_lock,
            ..
        } = self;
        // The metrics server runs until the gRPC server has drained, so that
        // the drain itself can be watched.
        let (metrics_stop, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
        let metrics_server = metrics_listener.map(|(listener, addr)| {
            tracing::info!(%addr, "serving metrics at /metrics");
            tokio::spawn(metrics::serve(
                listener,
                metrics.clone(),
                store.clone(),
                async {
                    let _ = metrics_stopped.await;
                },
            ))
        });
        let recorded = metrics_server.is_some().then(|| metrics.clone());
        let (health, health_service) = tonic_health::server::health_reporter();
        set_health(&health, ServingStatus::Serving).await;

        let reflection_v1 = reflection()
            .build_v1()
            .map_err(|e| format!("reflection: {e}"))?;
        let reflection_v1alpha = reflection()
            .build_v1alpha()
            .map_err(|e| format!("reflection: {e}"))?;

        let max = settings.server.max_message_bytes;
        let interceptor = AuthInterceptor(authenticator);
        let organisations = OrganisationServiceServer::new(OrganisationApi {
            store: store.clone(),
        })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
        let people = PersonServiceServer::new(PersonApi {
            store: store.clone(),
        })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);

        let projects = ProjectServiceServer::new(ProjectApi {
            store: store.clone(),
        })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);

        let assessments = AssessmentServiceServer::new(AssessmentApi {
            store: store.clone(),
        })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
        let gates = GateServiceServer::new(GateApi {
            store: store.clone(),
        })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
        let audit = AuditServiceServer::new(AuditApi {
            store: store.clone(),
        })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);

        let portfolio = PortfolioServiceServer::new(PortfolioApi {
            store: store.clone(),
        })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
        // Turns true when the drain starts: watch streams end UNAVAILABLE.
        let (stopping, stopping_rx) = tokio::sync::watch::channel(false);
        let events = EventServiceServer::new(EventApi {
            store: store.clone(),
            heartbeat: Duration::from_secs(settings.events.heartbeat_secs),
            shutdown: stopping_rx,
        })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
        let webhooks = WebhookServiceServer::new(WebhookApi {
            store: store.clone(),
            settings: settings.webhooks.clone(),
        })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
        let provisioning = ProvisioningServiceServer::new(ProvisioningApi {
            store: store.clone(),
        })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
        // SCIM 2.0 at /scim/v2/, on this port: routed around gRPC-Web.
        let scim = ScimLayer::new(
            ScimState {
                store: store.clone(),
                subject_attribute: settings.auth.scim_subject()?,
                max_body_bytes: max,
            },
            settings.server.request_timeout(),
        );
        let imports = ImportLimits::new(max, settings.server.import_batch_rows);
        let finance = FinanceServiceServer::new(FinanceApi {
            store: store.clone(),
            imports,
        })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
        let kpis = KpiServiceServer::new(KpiApi {
            store: store.clone(),
            imports,
        })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);

        // Unary calls: the request timeout; streamed imports: the idle
        // timeout instead. The client's grpc-timeout applies to both (tonic).
        let timeouts = TimeoutLayer::new(
            settings.server.request_timeout(),
            settings.server.import_idle_timeout(),
        )?;
        let layers = tower::ServiceBuilder::new()
            .layer(cors(&settings.server.cors_allowed_origins))
            .layer(scim)
            .layer(tonic_web::GrpcWebLayer::new())
            .layer(MetricsLayer::new(recorded))
            .layer(
                TraceLayer::new_for_grpc()
                    .make_span_with(|req: &http::Request<_>| {
                        let span = tracing::info_span!(
                            "rpc",
                            method = %req.uri().path(),
                            trace_id = tracing::field::Empty,
                            latency_ms = tracing::field::Empty
                        );
                        telemetry::continue_trace(&span, req.headers());
                        span.set_attribute("rpc.system", "grpc");
                        span.set_attribute("rpc.method", req.uri().path().to_owned());
                        span
                    })
                    .on_request(())
                    // The status of a call is in the response headers when
                    // it failed before any message (trailers-only), else in
                    // the trailers: the call is logged when its status is
                    // known, with the status the client got.
                    .on_response(|res: &http::Response<_>, latency: Duration, span: &Span| {
                        span.record(
                            "latency_ms",
                            format_args!("{:.3}", latency.as_secs_f64() * 1000.0),
                        );
                        if let Some(code) = grpc_code(res.headers()) {
                            rpc_finished(span, code);
                        }
                    })
                    .on_body_chunk(())
                    .on_eos(
                        |trailers: Option<&http::HeaderMap>, _: Duration, span: &Span| {
                            if let Some(code) = trailers.and_then(grpc_code) {
                                rpc_finished(span, code);
                            }
                        },
                    )
                    .on_failure(()),
            )
            // Inside the log and the metrics, so that both record the
            // status the client gets.
            .layer(CodecErrorLayer)
            // Innermost, so that a call cut short is logged and counted with
            // its code.
            .layer(timeouts);

        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let router = Server::builder()
            .accept_http1(true)
            .layer(layers)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(InterceptedService::new(organisations, interceptor.clone()))
            .add_service(InterceptedService::new(people, interceptor.clone()))
            .add_service(InterceptedService::new(projects, interceptor.clone()))
            .add_service(InterceptedService::new(assessments, interceptor.clone()))
            .add_service(InterceptedService::new(gates, interceptor.clone()))
            .add_service(InterceptedService::new(audit, interceptor.clone()))
            .add_service(InterceptedService::new(kpis, interceptor.clone()))
            .add_service(InterceptedService::new(finance, interceptor.clone()))
            .add_service(InterceptedService::new(events, interceptor.clone()))
            .add_service(InterceptedService::new(webhooks, interceptor.clone()))
            .add_service(InterceptedService::new(provisioning, interceptor.clone()))
            .add_service(InterceptedService::new(portfolio, interceptor));
        let server = router.serve_with_incoming_shutdown(
            // TCP_NODELAY, as `Server::serve` sets it: without it a small
            // response waits for the client's delayed ACK (40 ms on Linux).
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            async {
                let _ = stop_rx.await;
            },
        );
        tokio::pin!(server);

        // Request ids are remembered for a retention period, then forgotten.
        let retention =
            chrono::Duration::days(i64::from(settings.database.request_id_retention_days));
        let purger = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(3600));
                loop {
                    every.tick().await;
                    match jalon_store::idempotency::purge(
                        store.db(),
                        chrono::Utc::now() - retention,
                    )
                    .await
                    {
                        Ok(0) => {}
                        Ok(purged) => tracing::info!(purged, "old request ids forgotten"),
                        Err(error) => tracing::warn!(%error, "cannot purge old request ids"),
                    }
                }
            })
        };

        // Other replicas' commits wake this one's watchers (PostgreSQL);
        // events past their retention are purged.
        let listener_task = tokio::spawn(jalon_store::events::listen(store.db().clone()));
        let event_retention = chrono::Duration::days(i64::from(settings.events.retention_days));
        let event_purger = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(3600));
                loop {
                    every.tick().await;
                    match jalon_store::events::purge(
                        store.db(),
                        chrono::Utc::now() - event_retention,
                    )
                    .await
                    {
                        Ok(0) => {}
                        Ok(purged) => tracing::info!(purged, "events past their retention purged"),
                        Err(error) => tracing::warn!(%error, "cannot purge old events"),
                    }
                }
            })
        };

        // The counters' deltas that writes append are folded into the
        // counters every second (by every replica: each delta once).
        let counter_folder = AbortOnDrop(tokio::spawn({
            let store = store.clone();
            async move {
                let mut every = tokio::time::interval(Duration::from_secs(1));
                loop {
                    every.tick().await;
                    loop {
                        match jalon_store::portfolio::fold_counters(store.db(), FOLD_BATCH).await {
                            Ok(n) if n == FOLD_BATCH => continue,
                            Ok(_) => break,
                            Err(error) => {
                                tracing::warn!(%error, "cannot fold the portfolio counters");
                                break;
                            }
                        }
                    }
                }
            }
        }));

        // Webhook deliveries: this replica's worker. Dropped with this
        // future (even when it is cancelled rather than drained): its
        // deliveries in flight end, their leases expire, another replica
        // sends them.
        let webhook_worker = AbortOnDrop(tokio::spawn(
            crate::webhooks::Worker {
                store: store.clone(),
                settings: settings.webhooks.clone(),
                client: crate::webhooks::Client::new(&settings.webhooks)?,
                metrics: metrics.clone(),
            }
            .run(),
        ));

        let drain = settings.server.drain_timeout();
        let result = tokio::select! {
            result = &mut server => result.map_err(|e| format!("server error: {e}")),
            () = shutdown => {
                tracing::info!(drain_timeout_secs = drain.as_secs(), "shutting down: draining in-flight calls");
                set_health(&health, ServingStatus::NotServing).await;
                // Watch streams end now (UNAVAILABLE): their clients resume
                // on another replica instead of holding the drain.
                let _ = stopping.send(true);
                let _ = stop_tx.send(());
                match tokio::time::timeout(drain, &mut server).await {
                    Ok(result) => result.map_err(|e| format!("server error: {e}")),
                    Err(_) => {
                        tracing::warn!("drain timeout reached: abandoning the calls still running");
                        Ok(())
                    }
                }
            }
        };
        let _ = metrics_stop.send(());
        if let Some(task) = metrics_server {
            let _ = task.await;
        }
        drop(webhook_worker);
        drop(counter_folder);
        purger.abort();
        event_purger.abort();
        listener_task.abort();
        store.close().await;
        // The next server may take the SQLite file once this one has closed it.
        drop(sqlite_lock);
        tracing::info!("stopped");
        result
    }
}

/// Aborts a background task when dropped.
/// Counter deltas folded per transaction (several in a row while more are
/// waiting).
const FOLD_BATCH: u64 = 10_000;

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Connects to the configured database. The URL's form is checked first,
/// and every error names the database without its password: on SQLite the
/// file, on PostgreSQL `host:port` with the cause (a refused or timed-out
/// connection, which the pool reports only as "pool timed out").
pub async fn connect(database: &DatabaseSettings, pool: &PoolOptions) -> Result<Store, String> {
    database.check_url()?;
    match Store::connect(database.url.expose(), pool).await {
        Ok(store) => Ok(store),
        Err(error) => {
            let error = error
                .strip_prefix("cannot connect to the database: ")
                .unwrap_or(&error);
            let error = error
                .strip_prefix("Connection Error: ")
                .unwrap_or(error)
                .to_owned();
            let message = if database.is_sqlite() {
                let file = database
                    .sqlite_path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| ":memory:".into());
                format!("cannot open the SQLite database {file}: {error}")
            } else {
                let endpoint = database.postgres_endpoint()?;
                let cause = postgres_cause(database, pool.connect_timeout, error).await;
                format!("cannot connect to PostgreSQL at {endpoint}: {cause}")
            };
            Err(database.redact(&message))
        }
    }
}

/// The pool the database settings describe.
pub fn pool_options(database: &DatabaseSettings) -> PoolOptions {
    PoolOptions {
        max_connections: database.max_connections,
        acquire_timeout: Duration::from_secs(database.acquire_timeout_secs),
        ..PoolOptions::default()
    }
}

/// `jalon migrate`: applies the pending migrations and says how many, to
/// which database (its URL redacted).
pub async fn migrate(database: &DatabaseSettings) -> Result<String, String> {
    let store = connect(database, &pool_options(database)).await?;
    let applied = store.migrate().await.map_err(|e| database.redact(&e));
    store.close().await;
    Ok(format!(
        "{} migration(s) applied to {}",
        applied?,
        database.redacted_url()
    ))
}

/// Why PostgreSQL cannot be reached. The pool retries a refused
/// connection until its acquire timeout and then says only "pool timed
/// out": one direct connection attempt tells the cause.
async fn postgres_cause(
    database: &DatabaseSettings,
    timeout: Duration,
    pool_error: String,
) -> String {
    use sea_orm::sqlx::{Connection, postgres::PgConnection};
    if !pool_error.contains("timed out") {
        return pool_error;
    }
    let attempt = tokio::time::timeout(timeout, PgConnection::connect(database.url.expose())).await;
    match attempt {
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            format!("{pool_error} (a direct connection succeeded: the server may be overloaded)")
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!(
            "no answer within {} s (connect timeout): is the host reachable and the port open?",
            timeout.as_secs()
        ),
    }
}

/// On SQLite, takes an exclusive lock on `<database>.serve-lock` beside the
/// file (released when the process ends, however it ends): SQLite is served
/// by one server per file (its writers are serialised in the process), so a
/// second `jalon serve` on the same file is refused, naming the first one's
/// process id. PostgreSQL has no such lock: replicas share it.
pub fn lock_sqlite_file(database: &DatabaseSettings) -> Result<Option<std::fs::File>, String> {
    use std::io::{Read, Seek, Write};
    let Some(path) = database.sqlite_path() else {
        return Ok(None);
    };
    if database.url.expose().contains("mode=ro") {
        return Ok(None);
    }
    let shown = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
    let mut lock_path = path.clone().into_os_string();
    lock_path.push(".serve-lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| {
            format!(
                "cannot open {} beside the SQLite database: {e}",
                std::path::Path::new(&lock_path).display()
            )
        })?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(format!(
                "another jalon server{} is already serving the SQLite database {}: \
                 SQLite is served by one server per file; stop it first, or use \
                 PostgreSQL to run several replicas",
                if holder.is_empty() {
                    String::new()
                } else {
                    format!(" (process {holder})")
                },
                shown.display()
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(format!(
                "cannot lock {} beside the SQLite database: {e}",
                std::path::Path::new(&lock_path).display()
            ));
        }
    }
    // Who holds it, for the next one's message.
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    Ok(Some(file))
}

/// On SQLite, checks that the database file can be created (its directory
/// exists and is writable) and, when it exists, written: the error names
/// the file and the reason, before anything else (such as the development
/// secret, kept beside it) tries to write there. A read-only URL
/// (`mode=ro`) is not checked.
pub fn check_sqlite_file(database: &DatabaseSettings) -> Result<(), String> {
    let Some(path) = database.sqlite_path() else {
        return Ok(());
    };
    if database.url.expose().contains("mode=ro") {
        return Ok(());
    }
    let shown = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
    let directory = database.directory();
    let cannot = |what: &str, why: String| {
        format!(
            "the SQLite database {} (database.url) cannot be {what}: {why}",
            shown.display()
        )
    };
    match std::fs::metadata(&directory) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(cannot(
                "created",
                format!("{} is not a directory", directory.display()),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(cannot(
                "created",
                format!("its directory {} does not exist", directory.display()),
            ));
        }
        Err(e) => {
            return Err(cannot(
                "created",
                format!("its directory {}: {e}", directory.display()),
            ));
        }
    }
    // SQLite writes its journal (-wal, -shm) beside the file: the directory
    // must be writable even when the file exists.
    let probe = directory.join(format!(
        ".jalon-write-check-{}",
        uuid::Uuid::now_v7().simple()
    ));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
        }
        Err(e) => {
            return Err(cannot(
                if path.exists() { "written" } else { "created" },
                format!(
                    "its directory {} is not writable ({e})",
                    directory.display()
                ),
            ));
        }
    }
    if path.exists()
        && let Err(e) = std::fs::OpenOptions::new().write(true).open(&path)
    {
        return Err(cannot("written", e.to_string()));
    }
    Ok(())
}

/// Reflection over our API, health, and the `google.rpc` error details.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
}

/// The gRPC status in response headers or trailers, if any.
fn grpc_code(headers: &http::HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(tonic::Code::from_i32)
}

/// The request log's line of a call, with the status the client got; its
/// span carries the method, the trace id and the latency.
fn rpc_finished(span: &Span, code: tonic::Code) {
    span.set_attribute("rpc.grpc.status_code", code as i64);
    if code != tonic::Code::Ok {
        span.set_status(opentelemetry::trace::Status::error(format!("{code:?}")));
    }
    tracing::info!(?code, "rpc finished");
}

async fn set_health(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status("", status).await;
    for name in SERVICE_NAMES {
        health.set_service_status(*name, status).await;
    }
}

fn cors(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    let exposed = ["grpc-status", "grpc-message", "grpc-status-details-bin"];
    let allowed = [
        "authorization",
        "content-type",
        "x-grpc-web",
        "x-user-agent",
        "grpc-timeout",
        "traceparent",
        "tracestate",
    ];
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([http::Method::POST, http::Method::OPTIONS])
        .allow_headers(allowed.map(HeaderName::from_static))
        .expose_headers(exposed.map(HeaderName::from_static))
        .max_age(Duration::from_secs(24 * 3600))
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
