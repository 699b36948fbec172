//! The write-path benchmark (`--writes`, issue 11): Jalon's real server on
//! a fresh database, each measure against a bare baseline that this program
//! runs itself on the same database in the same run.
//!
//! 1. **Import**: one `FinanceService/ImportCosts` client stream of N cost
//!    rows (messages of `--import-message-rows`) into 100 projects of one
//!    organisation, against a bare batched multi-row `INSERT` of the same
//!    rows, `--import-batch` rows per transaction, through the same driver
//!    (sea-orm over sqlx, the server's own pool) into `bare_costs`, a table
//!    with the columns of `costs` and the same indexes (no foreign key).
//! 2. **Concurrent writers**: `--writers` clients, each on its own project
//!    and HTTP/2 connection, alternating `FinanceService/RecordCost` and
//!    `KpiService/RecordMeasurement`, against as many clients each running
//!    a one-row `INSERT` transaction (alternating `bare_costs` and
//!    `bare_measurements`) through the server's pool.
//! 3. **RecordMeasurement latency** on a KPI holding `--kpi-measurements`
//!    measurements (loaded through `ImportMeasurements`, so that whatever
//!    the server keeps is kept as in production) against a fresh KPI of
//!    another project of the same organisation.
//! 4. **Rebuild**: `portfolio::rebuild` of a generated portfolio of
//!    `--rebuild-projects` projects (the portfolio benchmark's generator,
//!    in a child process, on a fresh database of its own).
//!
//! Each of phases 1 to 3 has an organisation of its own in the one
//! database, so that one phase's size does not change another's figures.
//! The server runs with a request timeout of a day: the benchmark measures
//! the write path, not the deadline (a stream cut by it is reported as an
//! error).

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{Datelike, NaiveDate, Utc};
use jalon_core::{
    finance::{CostCategory, CostNature},
    kpi::{Source, Stage},
    project::Phase,
};
use jalon_proto::v1::{
    self as pb, finance_service_client::FinanceServiceClient, kpi_service_client::KpiServiceClient,
    organisation_service_client::OrganisationServiceClient,
    person_service_client::PersonServiceClient, project_service_client::ProjectServiceClient,
};
use jalon_server::{
    Application,
    config::{Secret, Settings},
};
use jalon_store::entity::{cost, kpi_measurement};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DbBackend, EntityTrait, PaginatorTrait, QueryFilter, QueryTrait, Schema, SqliteTransactionMode,
    TransactionOptions, TransactionTrait, sea_query::Alias,
};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};
use uuid::Uuid;

use crate::{
    AUDIENCE, BoxError, ISSUER, SECRET,
    database::{self, Backend, FreshDatabase},
    generate::Portfolio,
    load::{self, Stats, authed},
    rng::Rng,
    writes_report,
};

/// Projects the import spreads its rows over.
pub const IMPORT_PROJECTS: usize = 100;
/// The import's progress is read in segments of at most this many rows:
/// the first and the last are compared.
pub const SEGMENT_ROWS: u64 = 100_000;
/// How often the import's progress is read from the database.
const POLL_EVERY: Duration = Duration::from_millis(25);
/// Rows per ImportMeasurements stream while loading the KPI (each stream's
/// response holds a result per row, which must stay under the server's
/// message size).
const LOAD_STREAM_ROWS: u64 = 20_000;
/// Rows per message of the KPI load.
const LOAD_MESSAGE_ROWS: u64 = 500;
/// The organisation's currency.
const CURRENCY: &str = "EUR";
/// A platform administrator, to create the organisations.
const PLATFORM: &str = "bench-platform";
/// Each organisation's first administrator.
const ADMIN: &str = "bench-admin";
/// Each organisation's innovation director: creates projects and KPIs.
const DIRECTOR: &str = "bench-director";
/// Each organisation's finance and KPI integration: every measured write.
const ERP: &str = "bench-erp";
const BARE_COSTS: &str = "bare_costs";
const BARE_MEASUREMENTS: &str = "bare_measurements";
/// Independent streams of the seeded PRNG.
const IMPORT_STREAM: u64 = 0x1;
const WRITER_STREAM: u64 = 0x2;
const KPI_STREAM: u64 = 0x3;

/// A phase of the write benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WritePhase {
    Import,
    Writers,
    Kpi,
    Events,
    Webhooks,
    Rebuild,
    /// `jalon import costs FILE.csv` against `jalon serve`, both child
    /// processes (not in the default phases).
    Csv,
}

/// What to run, and how big.
#[derive(Debug, Clone)]
pub struct WritesConfig {
    pub phases: Vec<WritePhase>,
    pub import_rows: u64,
    pub import_message_rows: u64,
    pub import_batch_rows: u64,
    pub writers: usize,
    pub writers_warmup: Duration,
    pub writers_duration: Duration,
    pub kpi_measurements: u64,
    pub kpi_calls: usize,
    pub kpi_warmup: usize,
    pub event_writes: usize,
    pub webhook_writes: usize,
    pub webhook_writers: usize,
    pub rebuild_projects: u64,
    /// Rows of the csv phase's file.
    pub csv_rows: u64,
    /// On a PostgreSQL server whose autovacuum is off: ANALYZE this often
    /// during phases 1 to 3, in its place (zero: never).
    pub pg_analyze_every: Duration,
    pub db_connections: Option<u32>,
    pub seed: u64,
    pub keep_database: bool,
    pub json: std::path::PathBuf,
}

impl WritesConfig {
    fn runs(&self, phase: WritePhase) -> bool {
        self.phases.contains(&phase)
    }
}

/// Seconds at which so many rows were seen committed, from the start of the
/// import: a curve of progress.
#[derive(Debug, Clone, Default)]
pub struct Curve(pub Vec<(u64, f64)>);

impl Curve {
    /// Seconds at which `rows` were committed (0 rows: the start).
    pub fn at(&self, rows: u64) -> Option<f64> {
        if rows == 0 {
            return Some(0.0);
        }
        self.0.iter().find(|(r, _)| *r == rows).map(|(_, t)| *t)
    }

    /// Rows per second between two points of the curve.
    pub fn rate(&self, from: u64, to: u64) -> Option<f64> {
        let secs = self.at(to)? - self.at(from)?;
        (secs > 0.0 && to > from).then(|| (to - from) as f64 / secs)
    }

    /// The most rows seen committed.
    pub fn committed(&self) -> u64 {
        self.0.last().map_or(0, |(r, _)| *r)
    }

    pub fn json(&self) -> Value {
        Value::Array(
            self.0
                .iter()
                .map(|(r, t)| json!([r, load::round3(*t)]))
                .collect(),
        )
    }
}

/// Where the import's progress is read: multiples of a step, the start of
/// the last segment, and the last row.
#[derive(Debug, Clone)]
pub struct Milestones {
    pub rows: u64,
    /// The size of the first and of the last segment.
    pub segment: u64,
    pub points: Vec<u64>,
}

impl Milestones {
    pub fn new(rows: u64) -> Self {
        let segment = SEGMENT_ROWS.min(rows / 10).max(10);
        let step = (segment / 10).max(1);
        let segment = (step * 10).min(rows);
        let mut points: Vec<u64> = (1..=rows / step).map(|k| k * step).collect();
        points.push(rows);
        points.push(rows.saturating_sub(segment));
        points.retain(|p| *p > 0);
        points.sort_unstable();
        points.dedup();
        Self {
            rows,
            segment,
            points,
        }
    }
}

/// One import: the server's stream, or the bare inserts.
#[derive(Debug, Clone, Default)]
pub struct ImportRun {
    pub curve: Curve,
    /// Rows found in the table at the end.
    pub committed: u64,
    /// Until the call returned (the server) or the last commit (bare).
    pub secs: f64,
    /// Why the stream ended early or failed.
    pub error: Option<String>,
    /// The server's counts, when it answered.
    pub counts: Option<(i64, i64, i64)>,
}

impl ImportRun {
    pub fn complete(&self, m: &Milestones) -> bool {
        self.curve.committed() >= m.rows
    }

    pub fn overall(&self, m: &Milestones) -> Option<f64> {
        self.curve.rate(0, m.rows)
    }

    pub fn first(&self, m: &Milestones) -> Option<f64> {
        self.curve.rate(0, m.segment)
    }

    pub fn last(&self, m: &Milestones) -> Option<f64> {
        self.curve.rate(m.rows - m.segment, m.rows)
    }

    /// Time of the last segment over time of the first: 1 is linear.
    pub fn slowdown(&self, m: &Milestones) -> Option<f64> {
        Some(self.first(m)? / self.last(m)?)
    }
}

/// Phase 1's figures.
#[derive(Debug, Clone)]
pub struct ImportFigures {
    pub milestones: Milestones,
    pub message_rows: u64,
    pub batch_rows: u64,
    pub server: ImportRun,
    pub bare: Result<ImportRun, String>,
}

/// A closed-loop run of concurrent writers.
#[derive(Debug, Clone, Default)]
pub struct Concurrent {
    pub writes_per_sec: f64,
    pub all: Stats,
    /// Per kind of write: RecordCost (or the costs insert), RecordMeasurement
    /// (or the measurements insert).
    pub by_kind: [Stats; 2],
    pub errors: u64,
    pub first_error: Option<String>,
}

/// Phase 2's figures.
#[derive(Debug, Clone)]
pub struct WritersFigures {
    pub writers: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub server: Concurrent,
    pub bare: Result<Concurrent, String>,
    /// One trivial statement's round trip through the server's pool, one
    /// after another inside a transaction: back to back, then with 0.1 ms
    /// of work between two statements, as a write's statements run.
    pub round_trip: Result<(Stats, Stats), String>,
}

/// Phase 3's figures.
#[derive(Debug, Clone)]
pub struct KpiFigures {
    pub measurements: u64,
    pub load_secs: f64,
    pub calls: usize,
    pub loaded: Stats,
    pub fresh: Stats,
}

/// The events phase's figures: a watcher and a writer on two connections.
#[derive(Debug, Clone)]
pub struct EventFigures {
    pub writes: usize,
    /// From the writer receiving its answer (the commit is done) to the
    /// watcher receiving the event; an event that arrived first counts 0.
    pub after_answer: Stats,
    /// From the writer sending its request to the watcher receiving the
    /// event (the write's own latency included).
    pub from_request: Stats,
}

/// The webhooks phase's figures: concurrent writers, one endpoint
/// subscribed to their events, an in-process receiver.
#[derive(Debug, Clone)]
pub struct WebhookFigures {
    pub writes: usize,
    pub writers: usize,
    /// From the first write sent to the last write answered.
    pub write_secs: f64,
    /// From the first write sent to the last delivery received.
    pub deliver_secs: f64,
    /// Requests the receiver got beyond one per event (at least once).
    pub duplicates: usize,
    /// From the event's commit (its CloudEvents `time`, taken in the
    /// committing transaction) to the receiver getting it.
    pub commit_to_delivery: Stats,
}

impl WebhookFigures {
    pub fn deliveries_per_sec(&self) -> f64 {
        self.writes as f64 / self.deliver_secs.max(1e-9)
    }

    pub fn writes_per_sec(&self) -> f64 {
        self.writes as f64 / self.write_secs.max(1e-9)
    }
}

/// Phase 4's figures.
#[derive(Debug, Clone)]
pub struct RebuildFigures {
    pub portfolio: Portfolio,
    /// Seconds and what the rebuild returned.
    pub rebuild: Result<(f64, u64), String>,
}

/// Everything the write benchmark measured; a phase not run is `None`.
#[derive(Debug)]
pub struct WritesRun {
    pub backend: &'static str,
    pub backend_version: String,
    pub db_connections: u32,
    pub import: Option<Result<ImportFigures, String>>,
    pub writers: Option<Result<WritersFigures, String>>,
    pub kpi: Option<Result<KpiFigures, String>>,
    pub events: Option<Result<EventFigures, String>>,
    pub webhooks: Option<Result<WebhookFigures, String>>,
    pub rebuild: Option<Result<RebuildFigures, String>>,
    pub csv: Option<Result<crate::csv_import::CsvFigures, String>>,
    /// What a reader of the figures must know about the database server.
    pub notes: Vec<String>,
}

/// Runs the write benchmark, prints its table and writes its JSON.
pub async fn run(backend: Backend, config: WritesConfig) -> Result<(), BoxError> {
    let mut settings = Settings::default();
    if let Some(n) = config.db_connections {
        settings.database.max_connections = n;
    }
    let mut run = WritesRun {
        backend: backend.name(),
        backend_version: backend.name().to_owned(),
        db_connections: settings.database.max_connections,
        import: None,
        writers: None,
        kpi: None,
        events: None,
        webhooks: None,
        rebuild: None,
        csv: None,
        notes: Vec::new(),
    };
    let server_phases = [
        WritePhase::Import,
        WritePhase::Writers,
        WritePhase::Kpi,
        WritePhase::Events,
        WritePhase::Webhooks,
    ];
    if server_phases.iter().any(|p| config.runs(*p)) {
        eprintln!("== write path on {}", backend.name());
        let db = FreshDatabase::create(&backend, "writes").await?;
        eprintln!("  database: {}", db.location);
        let served = serve_and_measure(&config, &db, settings, &mut run).await;
        if config.keep_database {
            eprintln!("  kept {}", db.location);
        } else if let Err(e) = db.drop_database().await {
            eprintln!("  could not remove the database: {e}");
        }
        served?;
    }
    if config.runs(WritePhase::Rebuild) && config.rebuild_projects > 0 {
        run.rebuild = Some(rebuild(&backend, &config, &mut run.backend_version).await);
    }
    if config.runs(WritePhase::Csv) {
        run.csv = Some(crate::csv_import::run(&backend, &config).await);
    }
    println!();
    print!("{}", writes_report::table(&config, &run));
    crate::report::write_json(&config.json, &writes_report::json(&config, &run))?;
    println!("figures written to {}", config.json.display());
    let failed: Vec<&str> = [
        ("import", run.import.as_ref().map(|r| r.is_err())),
        ("writers", run.writers.as_ref().map(|r| r.is_err())),
        ("kpi", run.kpi.as_ref().map(|r| r.is_err())),
        ("events", run.events.as_ref().map(|r| r.is_err())),
        ("webhooks", run.webhooks.as_ref().map(|r| r.is_err())),
        ("rebuild", run.rebuild.as_ref().map(|r| r.is_err())),
        ("csv", run.csv.as_ref().map(|r| r.is_err())),
    ]
    .into_iter()
    .filter(|(_, failed)| *failed == Some(true))
    .map(|(name, _)| name)
    .collect();
    let import_error = run
        .import
        .as_ref()
        .and_then(|r| r.as_ref().ok())
        .and_then(|f| f.server.error.clone());
    match (failed.is_empty(), import_error) {
        (true, None) => Ok(()),
        (true, Some(e)) => Err(format!("the import stream failed: {e}").into()),
        (false, _) => Err(format!("phase(s) failed: {}", failed.join(", ")).into()),
    }
}

/// The generated portfolio's rebuild, on a fresh database of its own.
async fn rebuild(
    backend: &Backend,
    config: &WritesConfig,
    backend_version: &mut String,
) -> Result<RebuildFigures, String> {
    let n = config.rebuild_projects;
    eprintln!("== rebuild at {n} projects on {}", backend.name());
    let db = FreshDatabase::create(backend, &format!("rebuild{n}"))
        .await
        .map_err(|e| e.to_string())?;
    eprintln!("  database: {}", db.location);
    let result = crate::generate_in_child(&db.url, n, config.seed).await;
    if config.keep_database {
        eprintln!("  kept {}", db.location);
    } else if let Err(e) = db.drop_database().await {
        eprintln!("  could not remove the database: {e}");
    }
    let (portfolio, rebuild, version) = result.map_err(|e| e.to_string())?;
    if !version.is_empty() {
        *backend_version = version;
    }
    Ok(RebuildFigures { portfolio, rebuild })
}

/// What the phases talk to.
struct Api {
    channel: Channel,
    url: String,
    /// The server's own pool: the bare baselines run on it.
    pool: DatabaseConnection,
    platform: MetadataValue<Ascii>,
    admin: MetadataValue<Ascii>,
    director: MetadataValue<Ascii>,
    erp: MetadataValue<Ascii>,
}

fn bearer(app: &Application, subject: &str) -> Result<MetadataValue<Ascii>, BoxError> {
    let token = app.mint_token(subject, Duration::from_secs(24 * 3600))?;
    Ok(format!("Bearer {token}").parse()?)
}

fn status_text(status: Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

async fn serve_and_measure(
    config: &WritesConfig,
    db: &FreshDatabase,
    mut settings: Settings,
    run: &mut WritesRun,
) -> Result<(), BoxError> {
    settings.server.listen = "127.0.0.1:0".parse()?;
    settings.metrics.listen = "127.0.0.1:0".parse()?;
    // A day: a long stream is measured, not cut by the unary deadline.
    settings.server.request_timeout_secs = 24 * 3600;
    // The server writes an import's rows in batches of the bare baseline's.
    settings.server.import_batch_rows = usize::try_from(config.import_batch_rows)?;
    settings.database.url = Secret::new(db.url.clone());
    settings.database.migrate = Some(true);
    settings.auth.hs256_secret = Some(Secret::new(SECRET));
    settings.auth.issuer = Some(ISSUER.into());
    settings.auth.audience = Some(AUDIENCE.into());
    settings.auth.platform_admins = vec![PLATFORM.into()];
    if config.runs(WritePhase::Webhooks) {
        // The receiver is this process, on the loopback: allowed here only.
        settings.webhooks.allow_http = true;
        settings.webhooks.allowed_networks = vec!["127.0.0.1".into()];
    }
    let app = Application::build(settings).await?;
    let addr = app.local_addr();
    let api = Api {
        channel: load::connect(addr, 1).await?.remove(0),
        url: db.url.clone(),
        pool: app.store().db().clone(),
        platform: bearer(&app, PLATFORM)?,
        admin: bearer(&app, ADMIN)?,
        director: bearer(&app, DIRECTOR)?,
        erp: bearer(&app, ERP)?,
    };
    run.backend_version = database::version(&api.pool).await;
    let autovacuum = autovacuum_off(&api.pool).await;
    if let Some(setting) = &autovacuum {
        eprintln!("  note: PostgreSQL's autovacuum is {setting} on this server");
    }
    let stand_in = match autovacuum {
        Some(_) if !config.pg_analyze_every.is_zero() => {
            Some(AnalyzeStandIn::start(&api.url, config.pg_analyze_every).await?)
        }
        _ => None,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    eprintln!(
        "  server on {addr} (pool of {}, request timeout 1 day)",
        run.db_connections
    );
    let measured = async {
        create_bare_tables(&api.pool).await?;
        if config.runs(WritePhase::Import) {
            run.import = Some(import(&api, config).await);
        }
        if config.runs(WritePhase::Writers) {
            run.writers = Some(writers(&api, config, addr).await);
        }
        if config.runs(WritePhase::Kpi) {
            run.kpi = Some(kpi_latency(&api, config).await);
        }
        if config.runs(WritePhase::Events) {
            run.events = Some(event_latency(&api, config, addr).await);
        }
        if config.runs(WritePhase::Webhooks) {
            run.webhooks = Some(webhook_throughput(&api, config).await);
        }
        Ok::<(), BoxError>(())
    }
    .await;
    if let Some(setting) = autovacuum {
        run.notes.push(match stand_in {
            Some(stand_in) => {
                let (runs, secs) = stand_in.stop().await;
                format!(
                    "autovacuum is {setting} on this PostgreSQL server: in its place the benchmark ran ANALYZE every {:.0} s during the import, writers and KPI phases ({runs} times, {secs:.1} s in all; --pg-analyze-every 0: never)",
                    config.pg_analyze_every.as_secs_f64()
                )
            }
            None => format!(
                "autovacuum is {setting} on this PostgreSQL server and nothing ran in its place (--pg-analyze-every 0): tables written during the run had no statistics, and plans chosen while they were empty stayed"
            ),
        });
    }
    let _ = stop.send(());
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("  the server stopped with an error: {e}"),
        Err(e) => eprintln!("  the server task failed: {e}"),
    }
    measured
}

/// ANALYZE at a fixed period, on a connection of its own: what autovacuum
/// would do for tables growing during the run (it analyses a table after
/// 50 rows plus 10% of it changed, checking every minute by default). An
/// ANALYZE also invalidates the plans cached by prepared statements on the
/// tables it analyses, so that a plan chosen on an empty table is replaced.
pub(crate) struct AnalyzeStandIn {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(u32, f64)>,
}

impl AnalyzeStandIn {
    pub(crate) async fn start(url: &str, every: Duration) -> Result<Self, BoxError> {
        let mut opts = ConnectOptions::new(url.to_owned());
        opts.max_connections(1).sqlx_logging(false);
        let db = Database::connect(opts).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let (mut runs, mut secs) = (0u32, 0.0);
            let mut next = Instant::now() + every;
            while !flag.load(Ordering::SeqCst) {
                if Instant::now() < next {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                let started = Instant::now();
                if let Err(e) = db.execute_unprepared("ANALYZE").await {
                    eprintln!("  (ANALYZE failed: {e})");
                }
                runs += 1;
                secs += started.elapsed().as_secs_f64();
                next = Instant::now() + every;
            }
            let _ = db.close().await;
            (runs, secs)
        });
        Ok(Self { stop, task })
    }

    pub(crate) async fn stop(self) -> (u32, f64) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap_or((0, 0.0))
    }
}

// ---------------------------------------------------------------------------
// Setup through the API.

fn person(subject: &str, role: pb::Role) -> pb::Person {
    pb::Person {
        subject: subject.into(),
        email: format!("{subject}@bench.jalon.example"),
        display_name: format!("Person {subject}"),
        department: "Innovation".into(),
        job_title: "Benchmark".into(),
        role: role as i32,
        ..Default::default()
    }
}

/// A new organisation with its admin, director and ERP integration; its id.
async fn organisation(api: &Api, slug: &str) -> Result<String, String> {
    let created = OrganisationServiceClient::new(api.channel.clone())
        .create_organisation(authed(
            &api.platform,
            pb::CreateOrganisationRequest {
                organisation: Some(pb::Organisation {
                    display_name: format!("Write benchmark ({slug})"),
                    slug: slug.into(),
                    default_currency: CURRENCY.into(),
                    discount_rate: "0.08".into(),
                    fiscal_year_start_month: 1,
                    ..Default::default()
                }),
                initial_admin: Some(person(ADMIN, pb::Role::Unspecified)),
                request_id: String::new(),
            },
        ))
        .await
        .map_err(|s| format!("CreateOrganisation: {}", status_text(s)))?
        .into_inner();
    let org = created
        .organisation
        .ok_or("CreateOrganisation returned no organisation")?
        .id;
    let mut people = PersonServiceClient::new(api.channel.clone());
    for (subject, role) in [(DIRECTOR, pb::Role::Director), (ERP, pb::Role::Integration)] {
        people
            .create_person(authed(
                &api.admin,
                pb::CreatePersonRequest {
                    organisation_id: org.clone(),
                    person: Some(person(subject, role)),
                    request_id: String::new(),
                },
            ))
            .await
            .map_err(|s| format!("CreatePerson {subject}: {}", status_text(s)))?;
    }
    Ok(org)
}

/// A new project (IDEATION, ACTIVE); its id.
async fn project(api: &Api, org: &str, name: &str) -> Result<String, String> {
    ProjectServiceClient::new(api.channel.clone())
        .create_project(authed(
            &api.director,
            pb::CreateProjectRequest {
                organisation_id: org.into(),
                project: Some(pb::Project {
                    name: name.into(),
                    business_unit: "Finance".into(),
                    ai_act_tier: pb::AiActTier::Minimal as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .map_err(|s| format!("CreateProject: {}", status_text(s)))?
        .into_inner()
        .project
        .map(|p| p.id)
        .ok_or_else(|| "CreateProject returned no project".into())
}

/// A new KPI of a project (waiting time in seconds, monthly); its id.
async fn kpi(api: &Api, org: &str, project_id: &str) -> Result<String, String> {
    KpiServiceClient::new(api.channel.clone())
        .create_kpi(authed(
            &api.director,
            pb::CreateKpiRequest {
                organisation_id: org.into(),
                kpi: Some(pb::Kpi {
                    project_id: project_id.into(),
                    name: "Waiting time".into(),
                    unit: "seconds".into(),
                    unit_kind: pb::UnitKind::Duration as i32,
                    direction: pb::Direction::LowerIsBetter as i32,
                    category: pb::KpiCategory::Customer as i32,
                    primary: true,
                    target: Some(45.0),
                    cadence: pb::Cadence::Monthly as i32,
                    measurement_method: "telephony statistics".into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .map_err(|s| format!("CreateKpi: {}", status_text(s)))?
        .into_inner()
        .kpi
        .map(|k| k.id)
        .ok_or_else(|| "CreateKpi returned no KPI".into())
}

fn parse_ids(ids: &[String]) -> Result<Vec<Uuid>, String> {
    ids.iter()
        .map(|id| id.parse().map_err(|e| format!("bad id {id}: {e}")))
        .collect()
}

// ---------------------------------------------------------------------------
// The bare baselines' tables.

/// `bare_costs` and `bare_measurements`: the columns of `costs` and
/// `kpi_measurements` (from their entities), their indexes, no foreign key.
async fn create_bare_tables(db: &DatabaseConnection) -> Result<(), BoxError> {
    let schema = Schema::new(db.get_database_backend());
    let mut costs = schema.create_table_from_entity(cost::Entity);
    costs.table(Alias::new(BARE_COSTS));
    db.execute(&costs).await?;
    let mut measurements = schema.create_table_from_entity(kpi_measurement::Entity);
    measurements.table(Alias::new(BARE_MEASUREMENTS));
    db.execute(&measurements).await?;
    for sql in [
        "CREATE UNIQUE INDEX ux_bare_costs_external_ref ON bare_costs (organisation_id, external_ref)",
        "CREATE INDEX ix_bare_costs_project ON bare_costs (organisation_id, project_id, incurred_on)",
        "CREATE INDEX ix_bare_costs_category ON bare_costs (organisation_id, category)",
        "CREATE UNIQUE INDEX ux_bare_measurements_external_ref ON bare_measurements (kpi_id, external_ref)",
        "CREATE INDEX ix_bare_measurements_kpi ON bare_measurements (kpi_id, stage, measure_time)",
    ] {
        db.execute_unprepared(sql).await?;
    }
    Ok(())
}

/// A write transaction as the server begins one (`BEGIN IMMEDIATE` on
/// SQLite).
async fn begin_write(db: &DatabaseConnection) -> Result<sea_orm::DatabaseTransaction, String> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())
}

/// After a bulk write, before the next measure: the WAL folded back into the
/// database (SQLite) or a checkpoint (PostgreSQL), so that one measure does
/// not pay for the previous one's writes. Best effort.
async fn settle(db: &DatabaseConnection) {
    let sql = match db.get_database_backend() {
        DbBackend::Postgres => "CHECKPOINT",
        _ => "PRAGMA wal_checkpoint(TRUNCATE)",
    };
    if let Err(e) = db.execute_unprepared(sql).await {
        eprintln!("  ({sql} failed: {e})");
    }
}

/// PostgreSQL's `autovacuum` setting when it is not on. Then a table written
/// during the run never gets statistics, and a plan that a pooled
/// connection's prepared statement chose while the table was empty is never
/// replaced (in production autovacuum analyses a growing table within a
/// minute or so, which invalidates such plans).
pub(crate) async fn autovacuum_off(db: &DatabaseConnection) -> Option<String> {
    if db.get_database_backend() != DbBackend::Postgres {
        return None;
    }
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            DbBackend::Postgres,
            "SELECT current_setting('autovacuum') AS v",
        ))
        .await
        .ok()??;
    let setting: String = row.try_get("", "v").ok()?;
    (setting != "on").then_some(setting)
}

/// `VACUUM ANALYZE` on PostgreSQL after a bulk load, as autovacuum would
/// do; nothing on SQLite (it has no automatic ANALYZE).
async fn vacuum_analyze(db: &DatabaseConnection) -> Result<(), String> {
    if db.get_database_backend() == DbBackend::Postgres {
        db.execute_unprepared("VACUUM ANALYZE")
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Phase 1: the import.

/// Row `r` of the import: spread over the 100 projects, 24 months and the
/// seven categories, with a unique external_ref.
struct ImportRow {
    project: usize,
    amount_minor: i64,
    category: CostCategory,
    nature: CostNature,
    incurred_on: NaiveDate,
    external_ref: String,
    description: String,
}

fn import_row(seed: u64, r: u64, this_month: (i32, u32)) -> ImportRow {
    let mut rng = Rng::derive(seed ^ IMPORT_STREAM, r);
    let category = CostCategory::ALL[((r / 3) % CostCategory::ALL.len() as u64) as usize];
    let nature = if matches!(
        category,
        CostCategory::Cloud | CostCategory::Licences | CostCategory::RunOperations
    ) {
        CostNature::Opex
    } else {
        CostNature::Capex
    };
    let months_back = ((r / 100) % 24) as i32;
    let month0 = this_month.0 * 12 + this_month.1 as i32 - 1 - months_back;
    let incurred_on = NaiveDate::from_ymd_opt(
        month0.div_euclid(12),
        month0.rem_euclid(12) as u32 + 1,
        1 + (r % 28) as u32,
    )
    .unwrap_or_default();
    ImportRow {
        project: (r % IMPORT_PROJECTS as u64) as usize,
        amount_minor: rng.range(1_000, 5_000_000),
        category,
        nature,
        incurred_on,
        external_ref: format!("IMP-{r:08}"),
        description: format!("imported cost {r}"),
    }
}

fn today_month() -> (i32, u32) {
    let today = Utc::now().date_naive();
    (today.year(), today.month())
}

fn money(minor: i64) -> pb::Money {
    pb::Money {
        currency_code: CURRENCY.into(),
        amount: format!("{}.{:02}", minor / 100, minor % 100),
    }
}

fn date(d: NaiveDate) -> pb::Date {
    pb::Date {
        year: d.year(),
        month: d.month() as i32,
        day: d.day() as i32,
    }
}

impl ImportRow {
    fn to_proto(&self, projects: &[String]) -> pb::Cost {
        pb::Cost {
            project_id: projects[self.project].clone(),
            amount: Some(money(self.amount_minor)),
            category: pb::CostCategory::from_str_name(&format!(
                "COST_CATEGORY_{}",
                self.category.as_str()
            ))
            .unwrap_or(pb::CostCategory::Other) as i32,
            nature: pb::CostNature::from_str_name(&format!("COST_NATURE_{}", self.nature.as_str()))
                .unwrap_or(pb::CostNature::Opex) as i32,
            incurred_on: Some(date(self.incurred_on)),
            cost_centre: "CC-BENCH".into(),
            description: self.description.clone(),
            external_ref: self.external_ref.clone(),
            ..Default::default()
        }
    }

    /// The row as the server stores it.
    fn to_model(&self, org: Uuid, projects: &[Uuid]) -> cost::ActiveModel {
        cost::ActiveModel {
            id: Set(Uuid::now_v7()),
            organisation_id: Set(org),
            project_id: Set(projects[self.project]),
            amount_minor: Set(self.amount_minor),
            currency: Set(CURRENCY.to_owned()),
            category: Set(self.category.as_str().to_owned()),
            nature: Set(self.nature.as_str().to_owned()),
            incurred_on: Set(self.incurred_on),
            cost_centre: Set("CC-BENCH".to_owned()),
            phase: Set(Phase::Ideation.as_str().to_owned()),
            description: Set(self.description.clone()),
            external_ref: Set(Some(self.external_ref.clone())),
            create_time: Set(Utc::now()),
            source: Set(jalon_core::finance::MANUAL_SOURCE.to_owned()),
            posting_period: Set(Utc::now().format("%Y-%m").to_string()),
            original_amount_minor: Set(None),
            original_currency: Set(None),
            exchange_rate: Set(None),
            rate_date: Set(None),
            reverses_cost_id: Set(None),
        }
    }
}

/// Prints progress each `every` rows.
struct Progress {
    label: &'static str,
    total: u64,
    every: u64,
    next: u64,
}

impl Progress {
    fn new(label: &'static str, total: u64) -> Self {
        let every = (total / 10).clamp(1, SEGMENT_ROWS);
        Self {
            label,
            total,
            every,
            next: every,
        }
    }

    fn at(&mut self, rows: u64, secs: f64) {
        if rows < self.next {
            return;
        }
        while self.next <= rows {
            self.next += self.every;
        }
        eprintln!(
            "  {}: {}/{} rows committed ({:.1} s, {:.0} rows/s so far)",
            self.label,
            rows,
            self.total,
            secs,
            rows as f64 / secs.max(1e-9)
        );
    }
}

async fn import(api: &Api, config: &WritesConfig) -> Result<ImportFigures, String> {
    let rows = config.import_rows.max(1);
    let milestones = Milestones::new(rows);
    eprintln!(
        "  import: {rows} cost rows into {IMPORT_PROJECTS} projects (segments of {})",
        milestones.segment
    );
    let org = organisation(api, "bench-import").await?;
    let mut projects = Vec::with_capacity(IMPORT_PROJECTS);
    for p in 0..IMPORT_PROJECTS {
        projects.push(project(api, &org, &format!("Import target {p:03}")).await?);
    }
    let org_id: Uuid = org.parse().map_err(|e| format!("bad id {org}: {e}"))?;
    let project_ids = parse_ids(&projects)?;

    eprintln!(
        "  import: bare batched INSERT, {} rows per transaction",
        config.import_batch_rows
    );
    let bare = bare_import(
        &api.pool,
        org_id,
        &project_ids,
        &milestones,
        config.import_batch_rows.max(1),
        config.seed,
    )
    .await;
    settle(&api.pool).await;

    eprintln!(
        "  import: FinanceService/ImportCosts, one stream, messages of {} rows",
        config.import_message_rows
    );
    let server = server_import(api, &org, org_id, projects, &milestones, config).await?;
    if let Some(e) = &server.error {
        eprintln!(
            "  import: the stream FAILED after {} rows committed: {e}",
            server.committed
        );
    }
    settle(&api.pool).await;
    Ok(ImportFigures {
        milestones,
        message_rows: config.import_message_rows,
        batch_rows: config.import_batch_rows,
        server,
        bare,
    })
}

/// The same rows with multi-row INSERTs into `bare_costs` (of the store's
/// statement size), one transaction per batch, timed at each commit.
async fn bare_import(
    db: &DatabaseConnection,
    org: Uuid,
    projects: &[Uuid],
    milestones: &Milestones,
    batch: u64,
    seed: u64,
) -> Result<ImportRun, String> {
    let month = today_month();
    let mut progress = Progress::new("bare insert", milestones.rows);
    let mut curve = Curve::default();
    let mut next = 0;
    let started = Instant::now();
    let mut from = 0;
    while from < milestones.rows {
        let to = (from + batch).min(milestones.rows);
        let models: Vec<cost::ActiveModel> = (from..to)
            .map(|r| import_row(seed, r, month).to_model(org, projects))
            .collect();
        let txn = begin_write(db).await?;
        // Statements of the store's size (SQLite allows 32,766 variables
        // in one), as the server inserts a batch.
        for chunk in models.chunks(jalon_store::CHUNK) {
            let mut insert = cost::Entity::insert_many(chunk.to_vec()).into_query();
            insert.into_table(Alias::new(BARE_COSTS));
            txn.execute(&insert).await.map_err(|e| e.to_string())?;
        }
        txn.commit().await.map_err(|e| e.to_string())?;
        let secs = started.elapsed().as_secs_f64();
        while next < milestones.points.len() && milestones.points[next] <= to {
            curve.0.push((milestones.points[next], secs));
            next += 1;
        }
        progress.at(to, secs);
        from = to;
    }
    Ok(ImportRun {
        committed: curve.committed(),
        secs: started.elapsed().as_secs_f64(),
        curve,
        error: None,
        counts: None,
    })
}

/// The stream, and its progress read from the database: how long the
/// server took to commit each milestone row.
///
/// The client cannot time the server's progress: tonic takes a message as
/// soon as HTTP/2 flow control and the socket buffers allow, megabytes ahead
/// of what the server has committed. So a task with a connection of its own
/// (outside the server's pool) looks up, every 25 ms, whether the row of the
/// next milestone is committed, by its unique external_ref (one lookup in
/// `ux_costs_external_ref`, see [`probe_connection`]: it does not perturb
/// the import as a `count(*)` of a growing table would). The server processes a stream's rows in
/// order and commits them in batches, so the row at a milestone being
/// visible means every row before it is. Each time is late by at most the
/// polling period; a segment's rate is read between two such times.
async fn server_import(
    api: &Api,
    org: &str,
    org_id: Uuid,
    projects: Vec<String>,
    milestones: &Milestones,
    config: &WritesConfig,
) -> Result<ImportRun, String> {
    let probe = probe_connection(&api.url).await?;
    let rows = milestones.rows;
    let per_message = config.import_message_rows.max(1);
    let seed = config.seed;
    let month = today_month();
    let org_owned = org.to_owned();
    let messages = (0..rows.div_ceil(per_message)).map(move |k| {
        let from = k * per_message;
        let to = (from + per_message).min(rows);
        pb::ImportCostsRequest {
            organisation_id: org_owned.clone(),
            costs: (from..to)
                .map(|r| import_row(seed, r, month).to_proto(&projects))
                .collect(),
        }
    });
    let mut request = Request::new(tokio_stream::iter(messages));
    request
        .metadata_mut()
        .insert("authorization", api.erp.clone());
    let mut client = FinanceServiceClient::new(api.channel.clone())
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);

    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let poller = tokio::spawn(poll_progress(
        probe.clone(),
        org_id,
        milestones.points.clone(),
        rows,
        started,
        done.clone(),
    ));
    let result = client.import_costs(request).await;
    let secs = started.elapsed().as_secs_f64();
    done.store(true, Ordering::SeqCst);
    let curve = poller
        .await
        .map_err(|e| format!("the progress probe failed: {e}"))??;
    let committed = cost::Entity::find()
        .filter(cost::Column::OrganisationId.eq(org_id))
        .count(&probe)
        .await
        .map_err(|e| e.to_string())?;
    let _ = probe.close().await;
    let (error, counts) = match result {
        Ok(response) => {
            let r = response.into_inner();
            let error = (r.accepted != rows as i64).then(|| {
                format!(
                    "{} accepted, {} duplicates, {} rejected of {rows}{}",
                    r.accepted,
                    r.duplicates,
                    r.rejected,
                    r.results
                        .iter()
                        .find(|x| !x.reason.is_empty())
                        .map(|x| format!(" (row {}: {})", x.row, x.reason))
                        .unwrap_or_default()
                )
            });
            (error, Some((r.accepted, r.duplicates, r.rejected)))
        }
        Err(status) => (Some(status_text(status)), None),
    };
    Ok(ImportRun {
        curve,
        committed,
        secs,
        error,
        counts,
    })
}

/// The progress probe's connection: one, outside the server's pool. On
/// PostgreSQL its statements are planned for their values at each call
/// (`plan_cache_mode = force_custom_plan`): the generic plan PostgreSQL
/// makes for the lookup while `costs` is still empty (and without
/// statistics) walks every row of the organisation in `ix_costs_category`
/// instead of finding the one row in `ux_costs_external_ref`, and polling
/// with it would load the machine the import runs on.
async fn probe_connection(url: &str) -> Result<DatabaseConnection, String> {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(1)
        .min_connections(1)
        .sqlx_logging(false)
        .map_sqlx_postgres_opts(|o| o.options([("plan_cache_mode", "force_custom_plan")]));
    Database::connect(opts)
        .await
        .map_err(|e| format!("the progress probe cannot connect: {e}"))
}

/// Looks up each milestone row's external_ref until `done`, then once more.
async fn poll_progress(
    probe: DatabaseConnection,
    org: Uuid,
    points: Vec<u64>,
    total: u64,
    started: Instant,
    done: Arc<AtomicBool>,
) -> Result<Curve, String> {
    let mut curve = Curve::default();
    let mut progress = Progress::new("ImportCosts", total);
    let mut next = 0;
    loop {
        let last_pass = done.load(Ordering::SeqCst);
        while next < points.len() {
            let external_ref = format!("IMP-{:08}", points[next] - 1);
            let found = cost::Entity::find()
                // The whole key of the unique index (organisation,
                // source, external_ref): without the source the probe
                // scanned the organisation's rows, 4 ms a probe at 100k
                // rows, every 25 ms, on the machine it measures.
                .filter(cost::Column::OrganisationId.eq(org))
                .filter(cost::Column::Source.eq(jalon_core::finance::MANUAL_SOURCE))
                .filter(cost::Column::ExternalRef.eq(external_ref))
                .one(&probe)
                .await
                .map_err(|e| format!("the progress probe failed: {e}"))?;
            if found.is_none() {
                break;
            }
            let secs = started.elapsed().as_secs_f64();
            curve.0.push((points[next], secs));
            progress.at(points[next], secs);
            next += 1;
        }
        if last_pass || next == points.len() {
            return Ok(curve);
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

// ---------------------------------------------------------------------------
// Phase 2: concurrent writers.

/// One closed-loop writer: its `n`-th write, of kind 0 (a cost) or 1 (a
/// measurement).
trait Writer: Send + 'static {
    fn write(&mut self, n: u64) -> impl Future<Output = Result<(), String>> + Send;
}

fn kind_of(n: u64) -> usize {
    (n % 2) as usize
}

/// Each worker writes until the end; a write started during the warm-up or
/// finished after the end is not counted.
async fn closed_loop<W: Writer>(
    workers: Vec<W>,
    warmup: Duration,
    duration: Duration,
) -> Result<Concurrent, BoxError> {
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut tasks = Vec::new();
    for mut worker in workers {
        tasks.push(tokio::spawn(async move {
            let mut latencies: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
            let mut errors = 0u64;
            let mut first_error = None;
            let mut n = 0u64;
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let result = worker.write(n).await;
                let done = Instant::now();
                let kind = kind_of(n);
                n += 1;
                if sent < measure_from || done > end {
                    continue;
                }
                match result {
                    Ok(()) => latencies[kind]
                        .push(u32::try_from((done - sent).as_micros()).unwrap_or(u32::MAX)),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (latencies, errors, first_error)
        }));
    }
    let mut by_kind: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        let (latencies, e, first) = task.await?;
        for (all, mine) in by_kind.iter_mut().zip(latencies) {
            all.extend(mine);
        }
        errors += e;
        if first_error.is_none() {
            first_error = first;
        }
    }
    let all: Vec<u32> = by_kind.iter().flatten().copied().collect();
    let [costs, measurements] = by_kind;
    Ok(Concurrent {
        writes_per_sec: all.len() as f64 / duration.as_secs_f64(),
        all: Stats::from_micros(all),
        by_kind: [Stats::from_micros(costs), Stats::from_micros(measurements)],
        errors,
        first_error,
    })
}

/// A writer through the API: RecordCost, then RecordMeasurement, in turn.
struct ApiWriter {
    finance: FinanceServiceClient<Channel>,
    kpis: KpiServiceClient<Channel>,
    auth: MetadataValue<Ascii>,
    org: String,
    project: String,
    kpi: String,
    worker: usize,
    rng: Rng,
}

fn measurement(
    kpi: &str,
    stage: Stage,
    rng: &mut Rng,
    minutes_ago: i64,
    external_ref: String,
) -> pb::Measurement {
    let when = Utc::now() - chrono::Duration::minutes(minutes_ago);
    pb::Measurement {
        kpi_id: kpi.into(),
        value: 40.0 + 40.0 * rng.f64(),
        measure_time: Some(prost_types_timestamp(when)),
        stage: match stage {
            Stage::Baseline => pb::Stage::Baseline,
            _ => pb::Stage::Poc,
        } as i32,
        sample_size: Some(rng.range(30, 500)),
        std_dev: Some(5.0),
        source: pb::MeasurementSource::Integration as i32,
        external_ref,
        ..Default::default()
    }
}

fn prost_types_timestamp(t: chrono::DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    }
}

/// Alternately BASELINE and POC: neither needs a deployment.
fn stage_of(n: u64) -> Stage {
    if (n / 2).is_multiple_of(2) {
        Stage::Baseline
    } else {
        Stage::Poc
    }
}

impl Writer for ApiWriter {
    async fn write(&mut self, n: u64) -> Result<(), String> {
        if kind_of(n) == 0 {
            let cost = pb::Cost {
                project_id: self.project.clone(),
                amount: Some(money(self.rng.range(1_000, 500_000))),
                category: pb::CostCategory::Cloud as i32,
                nature: pb::CostNature::Opex as i32,
                incurred_on: Some(date(Utc::now().date_naive())),
                cost_centre: "CC-BENCH".into(),
                description: "concurrent writer".into(),
                external_ref: format!("W{:02}-{n:08}", self.worker),
                ..Default::default()
            };
            self.finance
                .record_cost(authed(
                    &self.auth,
                    pb::RecordCostRequest {
                        organisation_id: self.org.clone(),
                        cost: Some(cost),
                    },
                ))
                .await
                .map(|_| ())
                .map_err(status_text)
        } else {
            let m = measurement(
                &self.kpi,
                stage_of(n),
                &mut self.rng,
                (n % 10_000) as i64,
                String::new(),
            );
            self.kpis
                .record_measurement(authed(
                    &self.auth,
                    pb::RecordMeasurementRequest {
                        organisation_id: self.org.clone(),
                        measurement: Some(m),
                    },
                ))
                .await
                .map(|_| ())
                .map_err(status_text)
        }
    }
}

/// The bare writer: a one-row INSERT transaction, into `bare_costs` and
/// `bare_measurements` in turn.
struct BareWriter {
    db: DatabaseConnection,
    org: Uuid,
    project: Uuid,
    kpi: Uuid,
    worker: usize,
    rng: Rng,
}

impl Writer for BareWriter {
    async fn write(&mut self, n: u64) -> Result<(), String> {
        let now = Utc::now();
        // No RETURNING: the bare insert reads nothing back.
        let insert = if kind_of(n) == 0 {
            let mut q = cost::Entity::insert(cost::ActiveModel {
                id: Set(Uuid::now_v7()),
                organisation_id: Set(self.org),
                project_id: Set(self.project),
                amount_minor: Set(self.rng.range(1_000, 500_000)),
                currency: Set(CURRENCY.to_owned()),
                category: Set(CostCategory::Cloud.as_str().to_owned()),
                nature: Set(CostNature::Opex.as_str().to_owned()),
                incurred_on: Set(now.date_naive()),
                cost_centre: Set("CC-BENCH".to_owned()),
                phase: Set(Phase::Ideation.as_str().to_owned()),
                description: Set("concurrent writer".to_owned()),
                external_ref: Set(Some(format!("W{:02}-{n:08}", self.worker))),
                create_time: Set(now),
                source: Set(jalon_core::finance::MANUAL_SOURCE.to_owned()),
                posting_period: Set(now.format("%Y-%m").to_string()),
                original_amount_minor: Set(None),
                original_currency: Set(None),
                exchange_rate: Set(None),
                rate_date: Set(None),
                reverses_cost_id: Set(None),
            })
            .into_query();
            q.into_table(Alias::new(BARE_COSTS));
            q
        } else {
            let mut q = kpi_measurement::Entity::insert(kpi_measurement::ActiveModel {
                id: Set(Uuid::now_v7()),
                organisation_id: Set(self.org),
                kpi_id: Set(self.kpi),
                value: Set(40.0 + 40.0 * self.rng.f64()),
                measure_time: Set(now - chrono::Duration::minutes((n % 10_000) as i64)),
                period_start: Set(None),
                period_end: Set(None),
                stage: Set(stage_of(n).as_str().to_owned()),
                sample_size: Set(Some(self.rng.range(30, 500))),
                std_dev: Set(Some(5.0)),
                source: Set(Source::Integration.as_str().to_owned()),
                external_ref: Set(None),
                late_baseline: Set(false),
                create_time: Set(now),
            })
            .into_query();
            q.into_table(Alias::new(BARE_MEASUREMENTS));
            q
        };
        let txn = begin_write(&self.db).await?;
        txn.execute(&insert).await.map_err(|e| e.to_string())?;
        txn.commit().await.map_err(|e| e.to_string())
    }
}

async fn writers(
    api: &Api,
    config: &WritesConfig,
    addr: std::net::SocketAddr,
) -> Result<WritersFigures, String> {
    let n = config.writers.max(1);
    eprintln!(
        "  writers: {n} concurrent writers, {:.1} s after {:.1} s warm-up",
        config.writers_duration.as_secs_f64(),
        config.writers_warmup.as_secs_f64()
    );
    let org = organisation(api, "bench-writers").await?;
    let org_id: Uuid = org.parse().map_err(|e| format!("bad id {org}: {e}"))?;
    let mut projects = Vec::with_capacity(n);
    let mut kpis = Vec::with_capacity(n);
    for w in 0..n {
        let p = project(api, &org, &format!("Writer {w:02}")).await?;
        kpis.push(kpi(api, &org, &p).await?);
        projects.push(p);
    }
    let project_ids = parse_ids(&projects)?;
    let kpi_ids = parse_ids(&kpis)?;

    eprintln!("  writers: bare one-row INSERT transactions");
    let bare_workers: Vec<BareWriter> = (0..n)
        .map(|w| BareWriter {
            db: api.pool.clone(),
            org: org_id,
            project: project_ids[w],
            kpi: kpi_ids[w],
            worker: w,
            rng: Rng::derive(config.seed ^ WRITER_STREAM, 1000 + w as u64),
        })
        .collect();
    let bare = closed_loop(bare_workers, config.writers_warmup, config.writers_duration)
        .await
        .map_err(|e| e.to_string());
    if let Ok(b) = &bare {
        eprintln!(
            "  writers: bare {:.0} writes/s, p50 {:.2} ms, p99 {:.2} ms",
            b.writes_per_sec, b.all.p50_ms, b.all.p99_ms
        );
    }
    settle(&api.pool).await;
    let round_trip = async {
        Ok::<_, sea_orm::DbErr>((
            statement_round_trip(&api.pool, Duration::ZERO).await?,
            statement_round_trip(&api.pool, ROUND_TRIP_WORK).await?,
        ))
    }
    .await
    .map_err(|e| e.to_string());
    if let Ok((hot, spaced)) = &round_trip {
        eprintln!(
            "  writers: one statement's round trip, p50 {:.3} ms back to back, {:.3} ms between work",
            hot.p50_ms, spaced.p50_ms
        );
    }

    eprintln!("  writers: RecordCost and RecordMeasurement through the server");
    let channels = load::connect(addr, n)
        .await
        .map_err(|e| format!("cannot connect the writers: {e}"))?;
    let api_workers: Vec<ApiWriter> = channels
        .into_iter()
        .enumerate()
        .map(|(w, channel)| ApiWriter {
            finance: FinanceServiceClient::new(channel.clone()),
            kpis: KpiServiceClient::new(channel),
            auth: api.erp.clone(),
            org: org.clone(),
            project: projects[w].clone(),
            kpi: kpis[w].clone(),
            worker: w,
            rng: Rng::derive(config.seed ^ WRITER_STREAM, w as u64),
        })
        .collect();
    let server = closed_loop(api_workers, config.writers_warmup, config.writers_duration)
        .await
        .map_err(|e| e.to_string())?;
    eprintln!(
        "  writers: server {:.0} writes/s, p50 {:.2} ms, p99 {:.2} ms{}",
        server.writes_per_sec,
        server.all.p50_ms,
        server.all.p99_ms,
        server
            .first_error
            .as_ref()
            .map(|e| format!(", {} errors (first: {e})", server.errors))
            .unwrap_or_default()
    );
    settle(&api.pool).await;
    Ok(WritersFigures {
        writers: n,
        warmup: config.writers_warmup,
        duration: config.writers_duration,
        server,
        bare,
        round_trip,
    })
}

/// Statements timed by [`statement_round_trip`].
const ROUND_TRIPS: usize = 2000;

/// The work (a busy wait) between two statements timed by
/// [`statement_round_trip`]: about what a write computes between two of its
/// statements.
const ROUND_TRIP_WORK: Duration = Duration::from_micros(100);

/// How long one trivial statement (`SELECT 1`, prepared) takes to reach the
/// database and come back, run one after another inside a transaction as a
/// write's statements are, with nothing else running, `work` (busy) apart:
/// on SQLite a hand-off to the connection's worker thread and back, on
/// PostgreSQL a round trip over the loopback. Back to back, the other side
/// is still awake; a pause lets it sleep, and waking it is what a write's
/// statements pay.
async fn statement_round_trip(
    db: &DatabaseConnection,
    work: Duration,
) -> Result<Stats, sea_orm::DbErr> {
    let txn = db.begin().await?;
    let select = sea_orm::Statement::from_string(db.get_database_backend(), "SELECT 1");
    let mut micros = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let until = Instant::now() + work;
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        let started = Instant::now();
        txn.query_one_raw(select.clone()).await?;
        micros.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
    }
    txn.rollback().await?;
    Ok(Stats::from_micros(micros))
}

// ---------------------------------------------------------------------------
// Phase 3: RecordMeasurement on a loaded KPI against a fresh one.

async fn record_one(
    client: &mut KpiServiceClient<Channel>,
    auth: &MetadataValue<Ascii>,
    org: &str,
    m: pb::Measurement,
) -> Result<u32, String> {
    let sent = Instant::now();
    let response = client
        .record_measurement(authed(
            auth,
            pb::RecordMeasurementRequest {
                organisation_id: org.into(),
                measurement: Some(m),
            },
        ))
        .await
        .map_err(status_text)?;
    let micros = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
    if response.into_inner().duplicate {
        return Err("the measurement was taken for a duplicate".into());
    }
    Ok(micros)
}

async fn kpi_latency(api: &Api, config: &WritesConfig) -> Result<KpiFigures, String> {
    let total = config.kpi_measurements;
    eprintln!(
        "  kpi: RecordMeasurement on a KPI with {total} measurements against a fresh KPI ({} calls each)",
        config.kpi_calls
    );
    let org = organisation(api, "bench-kpi").await?;
    let loaded_project = project(api, &org, "Loaded KPI").await?;
    let loaded = kpi(api, &org, &loaded_project).await?;
    let fresh_project = project(api, &org, "Fresh KPI").await?;
    let fresh = kpi(api, &org, &fresh_project).await?;

    // The load: ImportMeasurements, in streams whose responses stay small.
    let mut client = KpiServiceClient::new(api.channel.clone())
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    let started = Instant::now();
    let mut rng = Rng::derive(config.seed ^ KPI_STREAM, 0);
    let mut from = 0;
    while from < total {
        let to = (from + LOAD_STREAM_ROWS).min(total);
        let mut messages = Vec::new();
        let mut r = from;
        while r < to {
            let end = (r + LOAD_MESSAGE_ROWS).min(to);
            messages.push(pb::ImportMeasurementsRequest {
                organisation_id: org.clone(),
                measurements: (r..end)
                    .map(|i| {
                        // Spread over two years, one every few minutes.
                        let minutes_ago = 60 + (i as i64 * 7) % (2 * 365 * 24 * 60);
                        measurement(
                            &loaded,
                            stage_of(i * 2),
                            &mut rng,
                            minutes_ago,
                            format!("LOAD-{i:08}"),
                        )
                    })
                    .collect(),
            });
            r = end;
        }
        let mut request = Request::new(tokio_stream::iter(messages));
        request
            .metadata_mut()
            .insert("authorization", api.erp.clone());
        let response = client
            .import_measurements(request)
            .await
            .map_err(|s| {
                format!(
                    "ImportMeasurements of rows {from}..{to}: {}",
                    status_text(s)
                )
            })?
            .into_inner();
        if response.accepted != (to - from) as i64 {
            return Err(format!(
                "ImportMeasurements of rows {from}..{to}: {} accepted, {} duplicates, {} rejected{}",
                response.accepted,
                response.duplicates,
                response.rejected,
                response
                    .results
                    .iter()
                    .find(|x| !x.reason.is_empty())
                    .map(|x| format!(" (row {}: {})", x.row, x.reason))
                    .unwrap_or_default()
            ));
        }
        from = to;
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "  kpi: {from}/{total} measurements imported ({secs:.1} s, {:.0} rows/s so far)",
            from as f64 / secs.max(1e-9)
        );
    }
    let load_secs = started.elapsed().as_secs_f64();
    vacuum_analyze(&api.pool).await?;
    settle(&api.pool).await;

    // Warm-up, then the measured calls, alternating between the two KPIs
    // (so that the machine's drift affects both alike; the fresh KPI ends
    // with as many measurements as calls were made on it).
    let mut client = KpiServiceClient::new(api.channel.clone());
    let mut rng = Rng::derive(config.seed ^ KPI_STREAM, 1);
    let mut latencies: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
    let calls = config.kpi_warmup + config.kpi_calls.max(1);
    for n in 0..calls {
        for (k, kpi_id) in [&loaded, &fresh].into_iter().enumerate() {
            let m = measurement(kpi_id, stage_of(n as u64 * 2), &mut rng, 30, String::new());
            let micros = record_one(&mut client, &api.erp, &org, m)
                .await
                .map_err(|e| format!("RecordMeasurement: {e}"))?;
            if n >= config.kpi_warmup {
                latencies[k].push(micros);
            }
        }
        let measured = (n + 1).saturating_sub(config.kpi_warmup);
        if measured > 0 && measured % 100 == 0 {
            eprintln!("  kpi: {measured}/{} calls on each KPI", config.kpi_calls);
        }
    }
    let [on_loaded, on_fresh] = latencies;
    Ok(KpiFigures {
        measurements: total,
        load_secs,
        calls: config.kpi_calls.max(1),
        loaded: Stats::from_micros(on_loaded),
        fresh: Stats::from_micros(on_fresh),
    })
}

// The events phase: commit to watcher.

/// `RecordCost` calls one after the other on one connection while a
/// director watches the organisation's `finance.costs_posted` events on
/// another: the time from each answer (and from each request) to the
/// watcher receiving its event.
async fn event_latency(
    api: &Api,
    config: &WritesConfig,
    addr: std::net::SocketAddr,
) -> Result<EventFigures, String> {
    use jalon_proto::v1::event_service_client::EventServiceClient;
    let writes = config.event_writes.max(1);
    eprintln!("  events: {writes} RecordCost calls, each event timed to a watcher");
    let org = organisation(api, "bench-events").await?;
    let project_id = project(api, &org, "Watched").await?;
    let watcher_channel = load::connect(addr, 1)
        .await
        .map_err(|e| format!("the watcher's connection: {e}"))?
        .remove(0);
    let mut stream = EventServiceClient::new(watcher_channel)
        .watch_events(authed(
            &api.director,
            pb::WatchEventsRequest {
                organisation_id: org.clone(),
                from_now: true,
                types: vec!["finance.costs_posted".into()],
                project_id: project_id.clone(),
                ..Default::default()
            },
        ))
        .await
        .map_err(|s| format!("WatchEvents: {}", status_text(s)))?
        .into_inner();
    // The watcher stamps each event as it arrives.
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let watcher = tokio::spawn(async move {
        while let Ok(Some(message)) = stream.message().await {
            if let Some(pb::watch_events_response::Kind::Event(_)) = message.kind
                && arrived_tx.send(Instant::now()).is_err()
            {
                return;
            }
        }
    });
    let mut finance = FinanceServiceClient::new(api.channel.clone());
    let mut after_answer = Vec::with_capacity(writes);
    let mut from_request = Vec::with_capacity(writes);
    let micros = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
    for n in 0..writes {
        let cost = pb::Cost {
            project_id: project_id.clone(),
            amount: Some(money(10_000)),
            category: pb::CostCategory::Cloud as i32,
            nature: pb::CostNature::Opex as i32,
            incurred_on: Some(date(Utc::now().date_naive())),
            description: "event latency".into(),
            external_ref: format!("EV-{n:08}"),
            ..Default::default()
        };
        let sent = Instant::now();
        finance
            .record_cost(authed(
                &api.director,
                pb::RecordCostRequest {
                    organisation_id: org.clone(),
                    cost: Some(cost),
                },
            ))
            .await
            .map_err(|s| format!("RecordCost {n}: {}", status_text(s)))?;
        let answered = Instant::now();
        let at = tokio::time::timeout(Duration::from_secs(10), arrived.recv())
            .await
            .map_err(|_| format!("the event of write {n} did not reach the watcher within 10 s"))?
            .ok_or("the watch stream ended")?;
        after_answer.push(micros(at.saturating_duration_since(answered)));
        from_request.push(micros(at.saturating_duration_since(sent)));
    }
    watcher.abort();
    Ok(EventFigures {
        writes,
        after_answer: Stats::from_micros(after_answer),
        from_request: Stats::from_micros(from_request),
    })
}

// The webhooks phase: deliveries per second, commit to delivery.

/// What the in-process receiver saw: per request, when it arrived and the
/// event's time and id from the body.
type Arrivals = Arc<std::sync::Mutex<Vec<(chrono::DateTime<Utc>, String, String)>>>;

/// An HTTP/1.1 receiver on 127.0.0.1 answering 204 to every POST.
async fn hook_receiver()
-> Result<(std::net::SocketAddr, Arrivals, tokio::task::JoinHandle<()>), String> {
    use http_body_util::{BodyExt, Empty};
    use hyper::{body::Incoming, server::conn::http1, service::service_fn};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("the receiver's listener: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("the receiver's address: {e}"))?;
    let arrivals: Arrivals = Arc::default();
    let seen = arrivals.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let arrived = Utc::now();
                        let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let field = |k: &str| event[k].as_str().unwrap_or_default().to_owned();
                        if let Ok(mut seen) = seen.lock() {
                            seen.push((arrived, field("time"), field("id")));
                        }
                        hyper::Response::builder()
                            .status(204)
                            .body(Empty::<bytes::Bytes>::new())
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((addr, arrivals, task))
}

/// `--webhook-writers` clients, each on its own project, make
/// `--webhook-writes` `RecordCost` calls in all, as fast as answered; one
/// endpoint subscribed to `finance.costs_posted` gets every event at an
/// in-process receiver. Deliveries per second are counted from the first
/// write to the last delivery (so they are at most the writes' rate: the
/// table shows both); each delivery is timed from its event's commit.
async fn webhook_throughput(api: &Api, config: &WritesConfig) -> Result<WebhookFigures, String> {
    use jalon_proto::v1::webhook_service_client::WebhookServiceClient;
    let writers = config.webhook_writers.max(1);
    let writes = config.webhook_writes.max(writers);
    eprintln!(
        "  webhooks: {writes} RecordCost calls by {writers} writers, each event delivered to a receiver"
    );
    let org = organisation(api, "bench-webhooks").await?;
    let mut projects = Vec::with_capacity(writers);
    for w in 0..writers {
        projects.push(project(api, &org, &format!("Hooked {w}")).await?);
    }
    let (addr, arrivals, receiver) = hook_receiver().await?;
    WebhookServiceClient::new(api.channel.clone())
        .create_webhook_endpoint(authed(
            &api.admin,
            pb::CreateWebhookEndpointRequest {
                organisation_id: org.clone(),
                endpoint: Some(pb::WebhookEndpoint {
                    url: format!("http://{addr}/hooks"),
                    description: "the benchmark's receiver".into(),
                    event_types: vec!["finance.costs_posted".into()],
                    enabled: true,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .map_err(|s| format!("CreateWebhookEndpoint: {}", status_text(s)))?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (w, project_id) in projects.into_iter().enumerate() {
        let mut finance = FinanceServiceClient::new(api.channel.clone());
        let auth = api.director.clone();
        let org = org.clone();
        let mine = writes / writers + usize::from(w < writes % writers);
        tasks.spawn(async move {
            for n in 0..mine {
                let cost = pb::Cost {
                    project_id: project_id.clone(),
                    amount: Some(money(10_000)),
                    category: pb::CostCategory::Cloud as i32,
                    nature: pb::CostNature::Opex as i32,
                    incurred_on: Some(date(Utc::now().date_naive())),
                    description: "webhook throughput".into(),
                    external_ref: format!("WH-{w:03}-{n:08}"),
                    ..Default::default()
                };
                finance
                    .record_cost(authed(
                        &auth,
                        pb::RecordCostRequest {
                            organisation_id: org.clone(),
                            cost: Some(cost),
                        },
                    ))
                    .await
                    .map_err(|s| format!("RecordCost {w}/{n}: {}", status_text(s)))?;
            }
            Ok::<(), String>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| format!("a writer failed: {e}"))??;
    }
    let write_secs = started.elapsed().as_secs_f64();
    let unique = || {
        arrivals.lock().map_or(0, |a| {
            a.iter()
                .map(|(_, _, id)| id.as_str())
                .collect::<std::collections::HashSet<_>>()
                .len()
        })
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while unique() < writes {
        if Instant::now() > deadline {
            receiver.abort();
            return Err(format!(
                "{} of {writes} deliveries within 120 s of the last write",
                unique()
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let deliver_secs = started.elapsed().as_secs_f64();
    receiver.abort();
    let seen = arrivals
        .lock()
        .map_err(|_| "the receiver's log is poisoned".to_owned())?
        .clone();
    let mut latencies = Vec::with_capacity(seen.len());
    let mut ids = std::collections::HashSet::new();
    for (arrived, time, id) in &seen {
        if !ids.insert(id.as_str()) {
            continue;
        }
        let committed = chrono::DateTime::parse_from_rfc3339(time)
            .map_err(|e| format!("a delivery's time {time:?}: {e}"))?;
        let micros = (*arrived - committed.with_timezone(&Utc))
            .num_microseconds()
            .unwrap_or(0)
            .max(0);
        latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
    }
    Ok(WebhookFigures {
        writes,
        writers,
        write_secs,
        deliver_secs,
        duplicates: seen.len() - ids.len(),
        commit_to_delivery: Stats::from_micros(latencies),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milestones_hold_both_segments() {
        let m = Milestones::new(1_000_000);
        assert_eq!(m.segment, 100_000);
        assert!(m.points.contains(&100_000));
        assert!(m.points.contains(&900_000));
        assert_eq!(m.points.last(), Some(&1_000_000));
        assert_eq!(m.points.first(), Some(&10_000));

        let m = Milestones::new(100_000);
        assert_eq!(m.segment, 10_000);
        assert!(m.points.contains(&90_000));

        let m = Milestones::new(12_345);
        assert_eq!(m.segment, 1_230);
        assert!(m.points.contains(&(12_345 - 1_230)));
        assert_eq!(m.points.last(), Some(&12_345));
        assert!(m.points.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn rates_are_read_between_points() {
        let curve = Curve(vec![(10, 1.0), (20, 3.0)]);
        assert_eq!(curve.rate(0, 10), Some(10.0));
        assert_eq!(curve.rate(10, 20), Some(5.0));
        assert_eq!(curve.rate(0, 30), None);
        assert_eq!(curve.committed(), 20);
    }

    #[test]
    fn import_rows_are_valid_and_unique() {
        let mut refs = std::collections::HashSet::new();
        for r in 0..5_000 {
            let row = import_row(7, r, (2026, 1));
            assert!(row.project < IMPORT_PROJECTS);
            assert!(row.amount_minor > 0);
            assert!(row.incurred_on <= NaiveDate::from_ymd_opt(2026, 1, 28).unwrap_or_default());
            assert!(row.incurred_on >= NaiveDate::from_ymd_opt(2024, 2, 1).unwrap_or_default());
            assert!(refs.insert(row.external_ref.clone()));
            let wire = row_proto(&row);
            assert_ne!(wire.category, pb::CostCategory::Unspecified as i32);
            assert_ne!(wire.nature, pb::CostNature::Unspecified as i32);
        }
    }

    fn row_proto(row: &ImportRow) -> pb::Cost {
        let projects: Vec<String> = (0..IMPORT_PROJECTS).map(|p| p.to_string()).collect();
        row.to_proto(&projects)
    }
}
