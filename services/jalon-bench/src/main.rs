//! `jalon-bench`: Jalon's benchmarks, each measured against baselines run
//! in the same process on the same database.
//!
//! **The portfolio benchmark** (the default). For each size asked, on a
//! fresh SQLite file or PostgreSQL database, it generates a deterministic
//! synthetic portfolio in one organisation and recomputes its figures with
//! `jalon_store::portfolio::rebuild` (both in a child process running this
//! same program, so that the peak memory measured afterwards is the
//! server's, not the generator's), starts Jalon's real server in this
//! process, and measures it against baselines run in the same process: a
//! bare tonic echo service for throughput, hand-written SQL for the portfolio
//! summary. It prints a table (value, target, pass or miss) and writes the
//! figures as JSON.
//!
//! ```sh
//! cargo run --release -p jalon-bench -- --projects 1000,100000
//! cargo run --release -p jalon-bench -- --projects 1000,100000 \
//!     --postgres-url postgres://postgres@127.0.0.1:5432/postgres
//! ```
//!
//! **The write-path benchmark** (`--writes`, issue 11). On a fresh database
//! (SQLite file, or with `--postgres-url` a uniquely named PostgreSQL
//! database, dropped at the end) it starts the real server (request timeout
//! raised to a day, so that a long stream is measured rather than cut) and
//! measures, each against a bare baseline it runs itself on the same
//! database through the same driver (sea-orm over sqlx, the server's pool):
//!
//! 1. `FinanceService/ImportCosts` of `--import-rows` cost rows (default
//!    1,000,000) in one client stream of `--import-message-rows`-row
//!    messages (default 500, the server's commit batch), spread over 100
//!    projects, 24 months and every category, each with a unique
//!    external_ref; against multi-row INSERTs of the same rows,
//!    `--import-batch` rows per transaction (default 2,000; the server is
//!    given the same `server.import_batch_rows`), into a table with
//!    the columns and indexes of `costs`. The server's progress is read from
//!    the database, not from the client's sends (tonic hands messages to
//!    HTTP/2 megabytes ahead of what the server has committed): a connection
//!    of its own looks up every 25 ms whether the next milestone row's
//!    external_ref is committed. Figures: rows/s overall (target >= 0.5x the
//!    bare inserts'), of the first and of the last segment (100,000 rows, or
//!    a tenth of a smaller import), and the last segment's time over the
//!    first's (target <= 1.25: linear). A stream that fails is reported with
//!    its status and the rows committed until then.
//! 2. `--writers` (16) concurrent clients, each on its own project and
//!    HTTP/2 connection, alternating `RecordCost` and `RecordMeasurement`
//!    (BASELINE and POC stages) for `--writers-duration` seconds (10) after
//!    `--writers-warmup` (1), against as many clients each running a one-row
//!    INSERT transaction: writes/s, p50, p99 (targets: >= 0.25x on
//!    PostgreSQL, p99 <= 50 ms on SQLite).
//! 3. `RecordMeasurement` one call at a time, `--kpi-calls` (500) after
//!    `--kpi-warmup` (20), alternating between a KPI loaded with
//!    `--kpi-measurements` (100,000) through `ImportMeasurements` and a
//!    fresh KPI of another project of the same organisation (p50 ratio
//!    target <= 1.2). On PostgreSQL, `VACUUM ANALYZE` follows the load, as
//!    autovacuum would.
//! 4. `portfolio::rebuild` of a generated portfolio of `--rebuild-projects`
//!    projects (100,000; 0 to skip) on a fresh database of its own, as the
//!    portfolio benchmark generates it (target under 20 s).
//!
//! On a PostgreSQL server whose autovacuum is off, the write benchmark runs
//! `ANALYZE` every `--pg-analyze-every` seconds (60, autovacuum's default
//! period) during phases 1 to 3 in its place, and says so under the table:
//! without statistics, a plan a pooled connection prepared while a table was
//! empty is kept however large the table grows.
//!
//! 5. `--phases csv` (not in the default phases; issue 12): `jalon import
//!    costs FILE.csv` of `--csv-rows` rows (default 1,000,000, over 100
//!    projects named by WBS element) against `jalon serve`, both the release
//!    binaries beside this program, as child processes: rows/s and the peak
//!    memory (VmHWM) of the client and of the server (see `csv_import.rs`).
//!
//! **The overload benchmark** (`--overload`, issue 15): the release `jalon`
//! binary, started as a process of its own on a generated portfolio, under
//! `h2load -c 500 -m 100` on `GetProject`; its resident memory during and
//! after the load, the calls it shed, and 1,000 idle connections closed
//! after a shortened idle timeout. See `overload.rs`; it needs `h2load`
//! (Debian's nghttp2-client).
//!
//! ```sh
//! cargo build --release -p jalon-server -p jalon-bench
//! target/release/jalon-bench --overload
//! ```
//!
//! `--phases import,writers,kpi,rebuild` runs a subset. Progress goes to
//! stderr; the table to stdout; the figures to `--json`
//! (`target/jalon-bench-writes.json` by default). The exit status is a
//! failure when a phase failed or the import stream did not complete.
//!
//! ```sh
//! cargo run --release -p jalon-bench -- --writes
//! cargo run --release -p jalon-bench -- --writes \
//!     --postgres-url postgres://postgres@127.0.0.1:5432/postgres
//! # small sizes, to check that it works:
//! cargo run --release -p jalon-bench -- --writes --import-rows 100000 \
//!     --writers-duration 5 --kpi-measurements 10000 --rebuild-projects 1000
//! ```

mod csv_import;
mod database;
mod echo;
mod generate;
mod load;
mod overload;
mod report;
mod rng;
mod writes;
mod writes_report;

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{ExitCode, Stdio},
    time::{Duration, Instant},
};

use clap::Parser;
use jalon_proto::v1::{
    GetPortfolioSummaryRequest, GetProjectRequest, ListPortfolioProjectsRequest, PortfolioSort,
    portfolio_service_client::PortfolioServiceClient, project_service_client::ProjectServiceClient,
};
use jalon_server::{
    Application,
    config::{LogFormat, LogSettings, Secret, Settings},
    telemetry,
};
use jalon_store::{PoolOptions, Store};
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tonic::{
    Status,
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};
use uuid::Uuid;

/// The server this program hosts allocates as the `jalon` binary does
/// (jemalloc, `jalon-server`'s `jemalloc` feature), so that its figures are
/// the shipped binary's. (With glibc's malloc, `perf` put a fifth of an
/// import's database-thread time in `malloc` and `free`; the import's
/// rows/s did not move measurably either way.)
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use crate::{
    database::{Backend, FreshDatabase},
    echo::{EchoClient, EchoMessage},
    generate::Portfolio,
    load::{EchoCall, GetProjectCall, LoadConfig, authed},
    report::{DeepPage, Memory, Run, Setup},
};

/// The error type of the benchmark: anything, with its message.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

const SECRET: &str = "jalon-bench: an HS256 secret of at least 32 bytes";
const ISSUER: &str = "https://idp.bench.jalon.example";
const AUDIENCE: &str = "jalon-bench";
/// Unmeasured calls before each sequential measure: enough for every
/// connection of a 16-connection pool to have prepared the statements of
/// the call (sqlx prepares a statement once per connection), so that the
/// measure is of a warm server, as in production.
const SEQUENTIAL_WARMUP: usize = 64;
/// ListPortfolioProjects' page size.
const PAGE_SIZE: i32 = 50;

/// Jalon's portfolio benchmark: a synthetic portfolio, the real server
/// under load, figures against a bare tonic echo and hand-written SQL.
#[derive(Debug, Parser)]
#[command(name = "jalon-bench", version)]
struct Args {
    /// Portfolio sizes, comma-separated; each runs on a fresh database
    /// (e.g. 1000,100000).
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    projects: Vec<u64>,
    /// Run on PostgreSQL: an administrative URL from which a fresh,
    /// uniquely named database is created (and dropped at the end).
    /// Without it: a fresh SQLite file in the temporary directory.
    #[arg(long)]
    postgres_url: Option<String>,
    /// HTTP/2 connections of the throughput runs.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Requests in flight on each connection.
    #[arg(long, default_value_t = 16)]
    inflight: usize,
    /// Measured seconds of each throughput run.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Warm-up seconds before each throughput run is measured.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// The server's database pool size (`database.max_connections`);
    /// unset: the server's default.
    #[arg(long)]
    db_connections: Option<u32>,
    /// Sequential calls of the latency measures.
    #[arg(long, default_value_t = 50)]
    calls: usize,
    /// ListPortfolioProjects pages to walk down (50 rows each).
    #[arg(long, default_value_t = 400)]
    pages: usize,
    /// Seed of the synthetic portfolio and of the request sequences.
    #[arg(long, default_value_t = 20_261_129)]
    seed: u64,
    /// Where to write the figures as JSON [default:
    /// target/jalon-bench.json, or target/jalon-bench-writes.json with
    /// --writes].
    #[arg(long)]
    json: Option<PathBuf>,
    /// Keep the databases (their location is printed).
    #[arg(long)]
    keep_database: bool,
    /// Run the write-path benchmark instead of the portfolio benchmark
    /// (see the --import-*, --writers*, --kpi-* and --rebuild-projects
    /// options).
    #[arg(long)]
    writes: bool,
    /// --writes: the phases to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "import,writers,kpi,events,webhooks,rebuild"
    )]
    phases: Vec<writes::WritePhase>,
    /// --writes: cost rows of the ImportCosts stream (and of the bare
    /// inserts).
    #[arg(long, default_value_t = 1_000_000)]
    import_rows: u64,
    /// --writes: rows per ImportCosts message.
    #[arg(long, default_value_t = 500)]
    import_message_rows: u64,
    /// --writes: rows per transaction of the server's import
    /// (`server.import_batch_rows`) and of the bare batched INSERT.
    #[arg(long, default_value_t = 2_000)]
    import_batch: u64,
    /// --writes: concurrent writers, each on its own project.
    #[arg(long, default_value_t = 16)]
    writers: usize,
    /// --writes: measured seconds of the concurrent writers.
    #[arg(long, default_value_t = 10.0)]
    writers_duration: f64,
    /// --writes: warm-up seconds before the concurrent writers are measured.
    #[arg(long, default_value_t = 1.0)]
    writers_warmup: f64,
    /// --writes: measurements loaded into the KPI whose RecordMeasurement
    /// latency is compared with a fresh KPI's.
    #[arg(long, default_value_t = 100_000)]
    kpi_measurements: u64,
    /// --writes: measured RecordMeasurement calls on each KPI.
    #[arg(long, default_value_t = 500)]
    kpi_calls: usize,
    /// --writes: unmeasured RecordMeasurement calls on each KPI first.
    #[arg(long, default_value_t = 20)]
    kpi_warmup: usize,
    /// --writes: RecordCost calls whose events are timed to a watcher.
    #[arg(long, default_value_t = 1000)]
    event_writes: usize,
    /// --writes: RecordCost calls whose events are delivered to an
    /// in-process webhook receiver.
    #[arg(long, default_value_t = 2000)]
    webhook_writes: usize,
    /// --writes: concurrent writers of the webhooks phase, each on its own
    /// project.
    #[arg(long, default_value_t = 8)]
    webhook_writers: usize,
    /// --writes: projects of the generated portfolio whose rebuild is timed
    /// (0: skip).
    #[arg(long, default_value_t = 100_000)]
    rebuild_projects: u64,
    /// --writes, phase csv: rows of the CSV file imported by `jalon import
    /// costs` (the release `jalon` beside this program).
    #[arg(long, default_value_t = 1_000_000)]
    csv_rows: u64,
    /// --writes, on a PostgreSQL server whose autovacuum is off: run ANALYZE
    /// every so many seconds during the server phases, in its place (0:
    /// never).
    #[arg(long, default_value_t = 60.0)]
    pg_analyze_every: f64,
    /// Run the overload benchmark instead (see the --overload-*, --idle-*
    /// and --jalon-bin options).
    #[arg(long)]
    overload: bool,
    /// --overload: projects of the generated portfolio.
    #[arg(long, default_value_t = 1000)]
    overload_projects: u64,
    /// --overload: the `jalon` binary to start [default: `jalon` beside
    /// this program].
    #[arg(long)]
    jalon_bin: Option<PathBuf>,
    /// --overload: the h2load program.
    #[arg(long, default_value = "h2load")]
    h2load: String,
    /// --overload: h2load's clients (connections), `-c`.
    #[arg(long, default_value_t = 500)]
    overload_clients: usize,
    /// --overload: h2load's streams in flight per connection, `-m`.
    #[arg(long, default_value_t = 100)]
    overload_streams: usize,
    /// --overload: seconds of load, h2load's `-D`.
    #[arg(long, default_value_t = 30)]
    overload_duration: u64,
    /// --overload: seconds the memory is watched after the load.
    #[arg(long, default_value_t = 70)]
    overload_after: u64,
    /// --overload: the server's server.max_in_flight_calls [default: the
    /// server's default].
    #[arg(long)]
    overload_max_in_flight: Option<usize>,
    /// --overload: idle HTTP/2 connections opened after the load.
    #[arg(long, default_value_t = 1000)]
    idle_connections: usize,
    /// --overload: the server's server.idle_connection_timeout_secs, shortened.
    #[arg(long, default_value_t = 10)]
    idle_timeout: u64,
    /// Internal: generate the portfolio into this database, recompute its
    /// figures, print what was done as JSON, and exit. The benchmark runs
    /// itself this way so that the generator's memory is not the server's.
    #[arg(long, env = GENERATE_ENV, hide = true)]
    generate_into: Option<String>,
}

/// The variable that makes the benchmark a generator (a URL can hold a
/// password: it is not passed on the command line).
const GENERATE_ENV: &str = "JALON_BENCH_GENERATE_INTO";

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jalon-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), BoxError> {
    // The server's logs at WARN: a benchmark does not read request logs.
    // The generator (a child process) also shows the rebuild's progress.
    let filter = if args.generate_into.is_some() {
        "warn,jalon_store::portfolio=info"
    } else {
        "warn"
    };
    telemetry::init(
        &LogSettings {
            format: LogFormat::Text,
            filter: filter.into(),
        },
        None,
    );
    if let Some(url) = &args.generate_into {
        let projects = args.projects.first().copied().unwrap_or(1000);
        let done = generate_and_rebuild(url, projects, args.seed).await?;
        println!("{done}");
        return Ok(());
    }
    let backend = match &args.postgres_url {
        Some(url) => Backend::Postgres(url.clone()),
        None => Backend::Sqlite,
    };
    if args.overload {
        let jalon_bin = match &args.jalon_bin {
            Some(path) => path.clone(),
            None => std::env::current_exe()?.with_file_name("jalon"),
        };
        let config = overload::OverloadConfig {
            projects: args.overload_projects.max(1),
            seed: args.seed,
            jalon_bin,
            h2load: args.h2load.clone(),
            clients: args.overload_clients.max(1),
            streams_per_client: args.overload_streams.max(1),
            duration: Duration::from_secs(args.overload_duration.max(1)),
            after: Duration::from_secs(args.overload_after),
            idle_connections: args.idle_connections,
            idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
            max_in_flight_calls: args.overload_max_in_flight,
            keep_database: args.keep_database,
            json: args
                .json
                .clone()
                .unwrap_or_else(|| PathBuf::from("target/jalon-bench-overload.json")),
        };
        return overload::run(backend, config).await;
    }
    if args.writes {
        let config = writes::WritesConfig {
            phases: args.phases.clone(),
            import_rows: args.import_rows,
            import_message_rows: args.import_message_rows.max(1),
            import_batch_rows: args.import_batch.max(1),
            writers: args.writers.max(1),
            writers_warmup: Duration::from_secs_f64(args.writers_warmup.max(0.0)),
            writers_duration: Duration::from_secs_f64(args.writers_duration.max(0.1)),
            kpi_measurements: args.kpi_measurements,
            kpi_calls: args.kpi_calls.max(1),
            kpi_warmup: args.kpi_warmup,
            event_writes: args.event_writes,
            webhook_writes: args.webhook_writes,
            webhook_writers: args.webhook_writers.max(1),
            rebuild_projects: args.rebuild_projects,
            csv_rows: args.csv_rows,
            pg_analyze_every: Duration::from_secs_f64(args.pg_analyze_every.max(0.0)),
            db_connections: args.db_connections,
            seed: args.seed,
            keep_database: args.keep_database,
            json: args
                .json
                .clone()
                .unwrap_or_else(|| PathBuf::from("target/jalon-bench-writes.json")),
        };
        return writes::run(backend, config).await;
    }
    let json_path = args
        .json
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/jalon-bench.json"));
    let load = LoadConfig {
        connections: args.connections.max(1),
        inflight: args.inflight.max(1),
        warmup: Duration::from_secs_f64(args.warmup.max(0.0)),
        duration: Duration::from_secs_f64(args.duration.max(0.1)),
    };
    let echo = echo::serve().await?;
    let mut runs = Vec::new();
    let mut backend_version = backend.name().to_owned();
    let mut failure = None;
    for &projects in &args.projects {
        eprintln!("== {projects} projects on {}", backend.name());
        let db = FreshDatabase::create(&backend, &projects.to_string()).await?;
        eprintln!("  database: {}", db.location);
        let result = one_size(&args, load, &db, projects, echo.addr, &mut backend_version).await;
        if args.keep_database {
            eprintln!("  kept {}", db.location);
        } else if let Err(e) = db.drop_database().await {
            eprintln!("  could not remove the database: {e}");
        }
        match result {
            Ok(run) => runs.push(run),
            Err(e) => {
                failure = Some(format!("{projects} projects: {e}"));
                break;
            }
        }
    }
    echo.stop().await?;
    let setup = Setup {
        backend: backend.name(),
        backend_version,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu: cpu_model(),
        load,
        calls: args.calls,
        seed: args.seed,
        db_connections: args
            .db_connections
            .unwrap_or(Settings::default().database.max_connections),
    };
    println!();
    print!("{}", report::table(&setup, &runs));
    report::write_json(&json_path, &report::json(&setup, &runs))?;
    println!("figures written to {}", json_path.display());
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// One portfolio size: generate, rebuild, serve, measure, stop.
async fn one_size(
    args: &Args,
    load: LoadConfig,
    db: &FreshDatabase,
    projects: u64,
    echo_addr: SocketAddr,
    backend_version: &mut String,
) -> Result<Run, BoxError> {
    let (portfolio, rebuild, version) = generate_in_child(&db.url, projects, args.seed).await?;
    *backend_version = version;

    // The peak resident memory from here on is the server's and the load's
    // (the generator ran in a process of its own).
    let memory_reset = std::fs::write("/proc/self/clear_refs", "5").map_err(|e| e.to_string());
    let rss_at_reset = status_kb("VmRSS");

    let mut settings = Settings::default();
    settings.server.listen = "127.0.0.1:0".parse()?;
    settings.metrics.listen = "127.0.0.1:0".parse()?;
    settings.database.url = Secret::new(db.url.clone());
    settings.database.migrate = Some(true);
    if let Some(n) = args.db_connections {
        settings.database.max_connections = n;
    }
    let pool_size = settings.database.max_connections;
    settings.auth.hs256_secret = Some(Secret::new(SECRET));
    settings.auth.issuer = Some(ISSUER.into());
    settings.auth.audience = Some(AUDIENCE.into());
    let started = Instant::now();
    let app = Application::build(settings).await?;
    let addr = app.local_addr();
    let token = app.mint_token(generate::DIRECTOR, Duration::from_secs(4 * 3600))?;
    let pool = app.store().db().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    eprintln!(
        "  server on {addr} ({:.1} s to start, pool of {pool_size})",
        started.elapsed().as_secs_f64()
    );

    let target = Target {
        addr,
        echo_addr,
        organisation_id: portfolio.organisation_id,
        auth: format!("Bearer {token}").parse()?,
        pool,
    };
    let measured = measure(
        args,
        load,
        &target,
        &portfolio,
        rebuild,
        (memory_reset, rss_at_reset),
    )
    .await;
    let _ = stop.send(());
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("  the server stopped with an error: {e}"),
        Err(e) => eprintln!("  the server task failed: {e}"),
    }
    measured
}

/// The generator's side: generates the portfolio, recomputes its figures,
/// and says what it did as one line of JSON.
async fn generate_and_rebuild(url: &str, projects: u64, seed: u64) -> Result<Value, BoxError> {
    let store = Store::connect(url, &PoolOptions::default()).await?;
    store.migrate().await?;
    let version = database::version(store.db()).await;
    let portfolio = generate::generate(&store, projects, seed).await?;
    eprintln!(
        "  generated {} rows in {:.1} s",
        portfolio.rows.values().sum::<u64>(),
        portfolio.people_secs + portfolio.insert_secs
    );
    // PostgreSQL's autovacuum gathers statistics and marks pages all-visible
    // after bulk writes in production; a benchmark that starts right after
    // its bulk load does it by hand, or the planner believes the tables
    // empty and an index-only count still reads every heap page (a sequential
    // scan instead: 4.2 ms against 0.7 ms for one deadline count at 10,000
    // projects). SQLite has no automatic ANALYZE, so none is run there: what
    // a deployment sees.
    vacuum_analyze_postgres(&store).await?;
    let started = Instant::now();
    let rebuild = jalon_store::portfolio::rebuild(store.db(), portfolio.organisation_id).await;
    let secs = started.elapsed().as_secs_f64();
    vacuum_analyze_postgres(&store).await?;
    let rebuild = match rebuild {
        Ok(n) => {
            eprintln!("  portfolio::rebuild: {secs:.1} s, returned {n}");
            json!({ "secs": secs, "returned": n })
        }
        Err(e) => {
            eprintln!("  portfolio::rebuild failed: {e}");
            json!({ "error": e.to_string() })
        }
    };
    store.close().await;
    Ok(json!({
        "portfolio": portfolio.to_json(),
        "rebuild": rebuild,
        "backend_version": version,
    }))
}

/// `VACUUM ANALYZE` on PostgreSQL (what autovacuum does after a bulk load);
/// nothing on SQLite.
async fn vacuum_analyze_postgres(store: &Store) -> Result<(), BoxError> {
    use sea_orm::ConnectionTrait;
    if store.backend() == sea_orm::DbBackend::Postgres {
        store.db().execute_unprepared("VACUUM ANALYZE").await?;
    }
    Ok(())
}

/// Runs this program as the generator, in a child process, and reads what
/// it did.
async fn generate_in_child(
    url: &str,
    projects: u64,
    seed: u64,
) -> Result<(Portfolio, Result<(f64, u64), String>, String), BoxError> {
    let exe = std::env::current_exe()?;
    let url = url.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .args([
                "--projects",
                &projects.to_string(),
                "--seed",
                &seed.to_string(),
            ])
            .env(GENERATE_ENV, url)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
    })
    .await??;
    if !output.status.success() {
        return Err(format!("the generator failed ({})", output.status).into());
    }
    let stdout = String::from_utf8(output.stdout)?;
    let line = stdout
        .lines()
        .last()
        .ok_or("the generator printed nothing")?;
    let done: Value = serde_json::from_str(line)?;
    let portfolio = Portfolio::from_json(&done["portfolio"])?;
    let rebuild = match (
        done["rebuild"]["secs"].as_f64(),
        done["rebuild"]["returned"].as_u64(),
    ) {
        (Some(secs), Some(n)) => Ok((secs, n)),
        _ => Err(done["rebuild"]["error"]
            .as_str()
            .unwrap_or("unknown error")
            .to_owned()),
    };
    let version = done["backend_version"].as_str().unwrap_or("").to_owned();
    Ok((portfolio, rebuild, version))
}

/// What the measures talk to.
struct Target {
    addr: SocketAddr,
    echo_addr: SocketAddr,
    organisation_id: Uuid,
    auth: MetadataValue<Ascii>,
    /// The server's own pool, for the hand-written SQL.
    pool: DatabaseConnection,
}

fn status_text(status: Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

async fn measure(
    args: &Args,
    load: LoadConfig,
    target: &Target,
    portfolio: &Portfolio,
    rebuild: Result<(f64, u64), String>,
    (memory_reset, rss_at_reset): (Result<(), String>, Option<u64>),
) -> Result<Run, BoxError> {
    let org = target.organisation_id;
    let projects = portfolio.projects;
    let jalon = load::connect(target.addr, load.connections).await?;
    let echo_channels = load::connect(target.echo_addr, load.connections).await?;

    eprintln!("  load: echo");
    let echo = load::throughput(&echo_channels, load, args.seed, |channel| EchoCall {
        client: EchoClient::new(channel),
        projects,
    })
    .await?;
    eprintln!("  load: GetProject");
    let get_project = load::throughput(&jalon, load, args.seed, |channel| GetProjectCall {
        client: ProjectServiceClient::new(channel),
        organisation_id: org,
        auth: target.auth.clone(),
        projects,
    })
    .await?;

    eprintln!("  sequential: echo, GetProject, GetPortfolioSummary, hand-written SQL, aggregates");
    let echo_client = EchoClient::new(echo_channels[0].clone());
    let echo_sequential = load::sequential(SEQUENTIAL_WARMUP, args.calls, || {
        let mut client = echo_client.clone();
        let message = generate::project_id(0).to_string();
        async move {
            client
                .echo(EchoMessage { message })
                .await
                .map(|_| ())
                .map_err(status_text)
        }
    })
    .await;
    let project_client = ProjectServiceClient::new(jalon[0].clone());
    let get_project_sequential = load::sequential(SEQUENTIAL_WARMUP, args.calls, || {
        let mut client = project_client.clone();
        let request = authed(
            &target.auth,
            GetProjectRequest {
                organisation_id: org.to_string(),
                id: generate::project_id(0).to_string(),
            },
        );
        async move {
            client
                .get_project(request)
                .await
                .map(|_| ())
                .map_err(status_text)
        }
    })
    .await;
    let client = PortfolioServiceClient::new(jalon[0].clone());
    let summary = load::sequential(SEQUENTIAL_WARMUP, args.calls, || {
        let mut client = client.clone();
        let request = authed(
            &target.auth,
            GetPortfolioSummaryRequest {
                organisation_id: org.to_string(),
                filter: None,
                include_cost_centres: false,
            },
        );
        async move {
            client
                .get_portfolio_summary(request)
                .await
                .map(|_| ())
                .map_err(status_text)
        }
    })
    .await;
    let sql = load::sequential(SEQUENTIAL_WARMUP, args.calls, || {
        load::summary_sql(&target.pool, org)
    })
    .await;
    let scratch = load::sequential(1, 5, || load::scratch_aggregates(&target.pool, org)).await;

    eprintln!("  ListPortfolioProjects");
    let first_page = load::sequential(SEQUENTIAL_WARMUP, args.calls, || {
        let mut client = client.clone();
        let request = authed(&target.auth, list_request(org, String::new()));
        async move {
            client
                .list_portfolio_projects(request)
                .await
                .map(|_| ())
                .map_err(status_text)
        }
    })
    .await;
    let deep = walk(&client, target, args.pages, args.calls.min(20)).await;

    let memory = Memory {
        reset: memory_reset,
        rss_at_reset_kb: rss_at_reset,
        hwm_kb: status_kb("VmHWM"),
        rss_kb: status_kb("VmRSS"),
    };
    Ok(Run {
        projects,
        rows: portfolio.rows.clone(),
        people_secs: portfolio.people_secs,
        insert_secs: portfolio.insert_secs,
        rebuild,
        echo,
        get_project,
        echo_sequential,
        get_project_sequential,
        summary,
        sql,
        scratch,
        first_page,
        deep,
        memory,
    })
}

fn list_request(organisation_id: Uuid, page_token: String) -> ListPortfolioProjectsRequest {
    ListPortfolioProjectsRequest {
        organisation_id: organisation_id.to_string(),
        filter: None,
        sort: PortfolioSort::Cost as i32,
        descending: true,
        page_size: PAGE_SIZE,
        page_token,
    }
}

/// Walks down ListPortfolioProjects (COST descending) by its page tokens,
/// up to `max_pages`, then fetches the last page reached again `repeats`
/// times.
async fn walk(
    client: &PortfolioServiceClient<Channel>,
    target: &Target,
    max_pages: usize,
    repeats: usize,
) -> Result<DeepPage, String> {
    let org = target.organisation_id;
    let mut c = client.clone();
    let started = Instant::now();
    let (mut pages, mut rows, mut first_ms) = (0usize, 0usize, 0.0);
    let mut token = String::new();
    let (last_token, last_ms) = loop {
        let sent = Instant::now();
        let page = c
            .list_portfolio_projects(authed(&target.auth, list_request(org, token.clone())))
            .await
            .map_err(status_text)?
            .into_inner();
        let ms = sent.elapsed().as_secs_f64() * 1000.0;
        pages += 1;
        rows += page.projects.len();
        if pages == 1 {
            first_ms = ms;
        }
        if page.next_page_token.is_empty() || pages >= max_pages.max(1) {
            break (token, ms);
        }
        token = page.next_page_token;
    };
    let walk_secs = started.elapsed().as_secs_f64();
    let last = load::sequential(0, repeats.max(1), || {
        let mut client = client.clone();
        let request = authed(&target.auth, list_request(org, last_token.clone()));
        async move {
            client
                .list_portfolio_projects(request)
                .await
                .map(|_| ())
                .map_err(status_text)
        }
    })
    .await?;
    Ok(DeepPage {
        pages,
        rows,
        first_row: (pages - 1) * PAGE_SIZE as usize + 1,
        walk_secs,
        first_ms,
        last_ms,
        last,
    })
}

/// A `kB` field of /proc/self/status (Linux).
fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        line.strip_prefix(field)?
            .strip_prefix(':')?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

/// The CPU's model name (Linux), or the architecture.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_owned())
            })
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned())
}
