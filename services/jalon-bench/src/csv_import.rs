//! The `csv` phase of the write benchmark: `jalon import costs FILE.csv`,
//! the command a finance team runs, end to end.
//!
//! On a fresh database (SQLite file, or a uniquely named PostgreSQL
//! database) it starts the release `jalon serve` **as a child process**
//! (beside this program: `target/release/jalon`), sets up one organisation
//! with 100 projects, each with a WBS element, and a finance source, writes
//! a CSV of `--csv-rows` rows (Jalon's columns; each row names its project
//! by WBS element, 24 months, every category) and runs `jalon import
//! costs` on it, as a second child process. Figures: rows/s from the
//! command's start to its exit, and the peak resident memory (`VmHWM`) of
//! the client and of the server, read from `/proc/<pid>/status` (the
//! client's every 50 ms until it exits; the server's after the import). The
//! server and the client are separate processes so that each figure is its
//! own, not this program's.

use std::{
    io::{BufRead, BufReader, BufWriter, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use jalon_proto::v1::{
    self as pb, finance_service_client::FinanceServiceClient,
    organisation_service_client::OrganisationServiceClient,
    person_service_client::PersonServiceClient, project_service_client::ProjectServiceClient,
};
use tonic::{
    Request,
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};

use crate::{
    AUDIENCE, ISSUER, SECRET,
    database::{Backend, FreshDatabase},
    writes::WritesConfig,
};

/// Projects the rows are spread over.
pub const CSV_PROJECTS: usize = 100;
const SOURCE: &str = "erp-bench";
const PLATFORM: &str = "bench-platform";
const ADMIN: &str = "bench-admin";
const DIRECTOR: &str = "bench-director";
const ERP: &str = "bench-erp";
const CATEGORIES: &[&str] = &[
    "people",
    "cloud",
    "licences",
    "data_labelling",
    "integration",
    "run_operations",
    "other",
];

/// What the csv phase measured.
#[derive(Debug, Clone)]
pub struct CsvFigures {
    pub rows: u64,
    pub file_bytes: u64,
    pub generate_secs: f64,
    /// From the command's start to its exit.
    pub secs: f64,
    pub imported: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub client_peak_kb: Option<u64>,
    pub server_peak_kb: Option<u64>,
    /// The server's VmHWM once set up, before the import.
    pub server_before_kb: Option<u64>,
    pub exit_code: Option<i32>,
    pub batch: u64,
    /// PostgreSQL without autovacuum: ANALYZE runs in its place during the
    /// import, (runs, seconds).
    pub analyze: Option<(u32, f64)>,
}

impl CsvFigures {
    pub fn rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.secs.max(1e-9)
    }
}

/// `VmHWM` (or another field) of a process, in kB.
pub fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
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

/// The `jalon` binary beside this program.
fn jalon_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = exe
        .parent()
        .map(|d| d.join("jalon"))
        .ok_or("no directory of jalon-bench")?;
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: build it with `cargo build --release -p jalon-server -p jalon-bench`",
            path.display()
        ))
    }
}

/// The server's configuration, as environment variables.
fn server_env(command: &mut Command, url: &str) {
    command
        .env("JALON__DATABASE__URL", url)
        .env("JALON__DATABASE__MIGRATE", "true")
        .env("JALON__AUTH__HS256_SECRET", SECRET)
        .env("JALON__AUTH__ISSUER", ISSUER)
        .env("JALON__AUTH__AUDIENCE", AUDIENCE)
        .env("JALON__AUTH__PLATFORM_ADMINS", format!("[\"{PLATFORM}\"]"))
        .env("JALON__METRICS__ENABLED", "false")
        .env("JALON__LOG__FILTER", "warn")
        .env_remove("JALON_CONFIG")
        .env_remove("RUST_LOG");
}

/// A `jalon serve` child, stopped (SIGTERM, then waited for) on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(binary: &Path, url: &str, dir: &Path) -> Result<Self, String> {
        let mut command = Command::new(binary);
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        server_env(&mut command, url);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(rest) = line.strip_prefix("jalon listening on ") {
                        break rest
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned();
                    }
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err("the server exited before listening".into());
                }
            }
        };
        // Keep reading its stdout, so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Ok(Self { child, addr })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A token signed by the server's secret, minted by `jalon token`.
fn bearer(binary: &Path, url: &str, subject: &str) -> Result<String, String> {
    let mut command = Command::new(binary);
    command.args(["token", "--subject", subject, "--ttl", "1d"]);
    server_env(&mut command, url);
    let out = command
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("jalon token: {e}"))?;
    if !out.status.success() {
        return Err(format!("jalon token failed ({})", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn authed<T>(token: &MetadataValue<Ascii>, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", token.clone());
    request
}

fn header(token: &str) -> Result<MetadataValue<Ascii>, String> {
    format!("Bearer {token}")
        .parse()
        .map_err(|_| "a token that is not a header value".to_owned())
}

fn person(subject: &str, role: pb::Role) -> pb::Person {
    pb::Person {
        subject: subject.into(),
        email: format!("{subject}@bench.jalon.example"),
        display_name: format!("Person {subject}"),
        department: "Finance".into(),
        job_title: "Benchmark".into(),
        role: role as i32,
        ..Default::default()
    }
}

/// The organisation, its people, 100 projects with their WBS elements
/// (`WBS-0000` ...), and the source; the organisation's id.
async fn setup(channel: Channel, tokens: &Tokens) -> Result<String, String> {
    let s = |e: tonic::Status| format!("{:?}: {}", e.code(), e.message());
    let org = OrganisationServiceClient::new(channel.clone())
        .create_organisation(authed(
            &tokens.platform,
            pb::CreateOrganisationRequest {
                organisation: Some(pb::Organisation {
                    display_name: "CSV benchmark".into(),
                    slug: "csv-bench".into(),
                    default_currency: "EUR".into(),
                    discount_rate: "0.08".into(),
                    fiscal_year_start_month: 1,
                    ..Default::default()
                }),
                initial_admin: Some(person(ADMIN, pb::Role::Unspecified)),
                request_id: String::new(),
            },
        ))
        .await
        .map_err(s)?
        .into_inner()
        .organisation
        .ok_or("no organisation")?
        .id;
    let mut people = PersonServiceClient::new(channel.clone());
    for (subject, role) in [(DIRECTOR, pb::Role::Director), (ERP, pb::Role::Integration)] {
        people
            .create_person(authed(
                &tokens.admin,
                pb::CreatePersonRequest {
                    organisation_id: org.clone(),
                    person: Some(person(subject, role)),
                    request_id: String::new(),
                },
            ))
            .await
            .map_err(s)?;
    }
    let mut finance = FinanceServiceClient::new(channel.clone());
    finance
        .create_cost_source(authed(
            &tokens.admin,
            pb::CreateCostSourceRequest {
                organisation_id: org.clone(),
                source: Some(pb::CostSource {
                    name: SOURCE.into(),
                    display_name: "The benchmark's ERP".into(),
                    create_time: None,
                }),
            },
        ))
        .await
        .map_err(s)?;
    let mut projects = ProjectServiceClient::new(channel);
    for i in 0..CSV_PROJECTS {
        let id = projects
            .create_project(authed(
                &tokens.director,
                pb::CreateProjectRequest {
                    organisation_id: org.clone(),
                    project: Some(pb::Project {
                        name: format!("CSV project {i}"),
                        business_unit: "Finance".into(),
                        ai_act_tier: pb::AiActTier::Minimal as i32,
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
            ))
            .await
            .map_err(s)?
            .into_inner()
            .project
            .ok_or("no project")?
            .id;
        finance
            .set_project_cost_objects(authed(
                &tokens.erp,
                pb::SetProjectCostObjectsRequest {
                    organisation_id: org.clone(),
                    project_id: id,
                    cost_objects: vec![pb::ProjectCostObject {
                        kind: pb::CostObjectKind::WbsElement as i32,
                        reference: wbs(i),
                        project_id: String::new(),
                    }],
                },
            ))
            .await
            .map_err(s)?;
    }
    Ok(org)
}

fn wbs(project: usize) -> String {
    format!("WBS-{project:04}")
}

struct Tokens {
    platform: MetadataValue<Ascii>,
    admin: MetadataValue<Ascii>,
    director: MetadataValue<Ascii>,
    erp: MetadataValue<Ascii>,
    erp_raw: String,
}

/// Writes the file: `rows` rows over the 100 projects, 24 months back from
/// January 2026, the seven categories, amounts from 10.00 to 50,009.99.
pub fn generate(path: &Path, rows: u64, seed: u64) -> Result<u64, String> {
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let w = |r: std::io::Result<()>| r.map_err(|e| e.to_string());
    w(writeln!(
        out,
        "external_ref,project_ref,cost_centre,incurred_on,category,nature,amount,description"
    ))?;
    let mut rng = crate::rng::Rng::derive(seed ^ 0xC5F, 0);
    for r in 0..rows {
        let project = (r % CSV_PROJECTS as u64) as usize;
        let category = CATEGORIES[((r / 3) % CATEGORIES.len() as u64) as usize];
        let nature = if matches!(category, "cloud" | "licences" | "run_operations") {
            "opex"
        } else {
            "capex"
        };
        let months_back = ((r / 100) % 24) as i32;
        let month0 = 2026 * 12 - months_back;
        let (year, month) = (month0.div_euclid(12), month0.rem_euclid(12) + 1);
        let day = 1 + r % 28;
        let minor = rng.range(1_000, 5_000_000);
        w(writeln!(
            out,
            "CSV-{r:08},{},CC-{:02},{year}-{month:02}-{day:02},{category},{nature},{}.{:02},imported cost {r}",
            wbs(project),
            r % 40,
            minor / 100,
            minor % 100
        ))?;
    }
    w(out.flush())?;
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| e.to_string())
}

/// The phase: a fresh database, the server, the file, the command.
pub async fn run(backend: &Backend, config: &WritesConfig) -> Result<CsvFigures, String> {
    let binary = jalon_binary()?;
    let db = FreshDatabase::create(backend, "csv")
        .await
        .map_err(|e| e.to_string())?;
    eprintln!(
        "== csv import of {} rows on {}",
        config.csv_rows,
        backend.name()
    );
    eprintln!("  database: {}", db.location);
    let dir =
        std::env::temp_dir().join(format!("jalon-bench-csv-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let result = measure(&binary, &db.url, &dir, config).await;
    if config.keep_database {
        eprintln!("  kept {} and {}", db.location, dir.display());
    } else {
        if let Err(e) = db.drop_database().await {
            eprintln!("  could not remove the database: {e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn measure(
    binary: &Path,
    url: &str,
    dir: &Path,
    config: &WritesConfig,
) -> Result<CsvFigures, String> {
    let raw = |s: &str| bearer(binary, url, s);
    let erp_raw = raw(ERP)?;
    let tokens = Tokens {
        platform: header(&raw(PLATFORM)?)?,
        admin: header(&raw(ADMIN)?)?,
        director: header(&raw(DIRECTOR)?)?,
        erp: header(&erp_raw)?,
        erp_raw,
    };
    let server = Server::start(binary, url, dir)?;
    eprintln!(
        "  server: {} (pid {}) on {}",
        binary.display(),
        server.pid(),
        server.addr
    );
    let measured = async {
        let channel = Channel::from_shared(format!("http://{}", server.addr))
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| format!("cannot connect to the server: {e}"))?;
        let org = setup(channel, &tokens).await?;
        let file = dir.join("costs.csv");
        let started = Instant::now();
        let rows = config.csv_rows.max(1);
        let file_bytes = generate(&file, rows, config.seed)?;
        let generate_secs = started.elapsed().as_secs_f64();
        eprintln!(
            "  {} rows, {:.1} MB written in {generate_secs:.1} s; importing",
            rows,
            file_bytes as f64 / 1e6
        );
        let server_before_kb = status_kb(server.pid(), "VmHWM");
        let mut command = Command::new(binary);
        command
            .arg("import")
            .arg("costs")
            .arg(&file)
            .args(["--server", &format!("http://{}", server.addr)])
            .args(["--organisation", &org])
            .args(["--source", SOURCE])
            .args(["--batch", &config.import_message_rows.to_string()])
            .arg("--rejects")
            .arg(dir.join("costs.rejects.csv"))
            .env("JALON_TOKEN", &tokens.erp_raw)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // As the import phase does: on a PostgreSQL server whose autovacuum
        // is off, ANALYZE every --pg-analyze-every seconds in its place.
        let stand_in = match sea_orm::Database::connect(url).await {
            Ok(db) => {
                let off = crate::writes::autovacuum_off(&db).await;
                let _ = db.close().await;
                match off {
                    Some(_) if !config.pg_analyze_every.is_zero() => Some(
                        crate::writes::AnalyzeStandIn::start(url, config.pg_analyze_every)
                            .await
                            .map_err(|e| e.to_string())?,
                    ),
                    _ => None,
                }
            }
            Err(_) => None,
        };
        let started = Instant::now();
        let mut child = command.spawn().map_err(|e| format!("jalon import: {e}"))?;
        let pid = child.id();
        let peak = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, done) = (peak.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    if let Some(kb) = status_kb(pid, "VmHWM") {
                        peak.fetch_max(kb, Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        let output = tokio::task::spawn_blocking(move || {
            let mut stdout = String::new();
            if let Some(out) = child.stdout.take() {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    stdout.push_str(&line);
                    stdout.push('\n');
                }
            }
            child.wait().map(|status| (status, stdout))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        let secs = started.elapsed().as_secs_f64();
        let analyze = match stand_in {
            Some(s) => Some(s.stop().await),
            None => None,
        };
        done.store(true, Ordering::SeqCst);
        let _ = sampler.join();
        let (status, stdout) = output;
        print!("{stdout}");
        let count = |label: &str| {
            stdout.lines().find_map(|l| {
                l.trim_start()
                    .strip_prefix(label)
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|n| n.parse::<u64>().ok())
            })
        };
        let figures = CsvFigures {
            rows,
            file_bytes,
            generate_secs,
            secs,
            imported: count("imported").unwrap_or(0),
            duplicates: count("duplicates").unwrap_or(0),
            rejected: count("rejected").unwrap_or(0),
            client_peak_kb: Some(peak.load(Ordering::SeqCst)).filter(|kb| *kb > 0),
            server_peak_kb: status_kb(server.pid(), "VmHWM"),
            server_before_kb,
            exit_code: status.code(),
            batch: config.import_message_rows,
            analyze,
        };
        if !status.success() {
            return Err(format!(
                "jalon import costs exited with {status} after {secs:.1} s ({} imported)",
                figures.imported
            ));
        }
        Ok(figures)
    }
    .await;
    server.stop();
    measured
}
