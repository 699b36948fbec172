//! The overload benchmark (`--overload`, issue 15 "Bounded resources").
//!
//! On a fresh database holding a generated portfolio (in a child process,
//! as the portfolio benchmark does), it starts the release `jalon` binary
//! (beside this program, or `--jalon-bin`) as a process of its own, so
//! that its memory is measured alone, from `/proc/PID/status` (`VmRSS`
//! every 100 ms, and `VmHWM`, the kernel's high-water mark). Then:
//!
//! 1. **Load**: `h2load -c 500 -m 100` (50,000 calls offered at once) on
//!    `ProjectService/GetProject` for `--overload-duration` seconds, with a
//!    pre-encoded gRPC body and the director's bearer token. The server's
//!    metrics say how many calls were answered OK and how many were shed
//!    (RESOURCE_EXHAUSTED, `jalon_grpc_requests_shed_total`). Targets: peak
//!    RSS <= 300 MB; shed calls counted.
//! 2. **After**: the RSS is sampled `--overload-after` seconds (70) past the
//!    end of the load; the figure is the RSS at the end of that time, and
//!    the lowest from 30 s on. Target: back under 100 MB.
//! 3. **Idle connections**: `--idle-connections` (1,000) HTTP/2
//!    connections that send their preface and then nothing; the server runs
//!    with `server.idle_connection_timeout_secs` shortened to
//!    `--idle-timeout` (10 s). Target: every one closed by the server, none
//!    before the timeout.
//!
//! ```sh
//! cargo build --release -p jalon-server -p jalon-bench
//! target/release/jalon-bench --overload
//! ```

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use jalon_proto::v1::{
    GetProjectRequest, ListProjectsRequest, project_service_client::ProjectServiceClient,
};
use jalon_server::{
    auth::Authenticator,
    config::{AuthSettings, DatabaseSettings, Secret},
};
use prost::Message;
use serde_json::{Value, json};
use std::process::{Child, Command};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tonic::{Request, metadata::MetadataValue, transport::Channel};

use crate::{
    AUDIENCE, BoxError, ISSUER, SECRET,
    database::{Backend, FreshDatabase},
    generate,
};

/// What `--overload` runs.
#[derive(Debug, Clone)]
pub struct OverloadConfig {
    pub projects: u64,
    pub seed: u64,
    pub jalon_bin: PathBuf,
    pub h2load: String,
    pub clients: usize,
    pub streams_per_client: usize,
    pub duration: Duration,
    pub after: Duration,
    pub idle_connections: usize,
    pub idle_timeout: Duration,
    /// `server.max_in_flight_calls` of the server; `None`: its default.
    pub max_in_flight_calls: Option<usize>,
    pub keep_database: bool,
    pub json: PathBuf,
}

/// Targets of the issue.
const PEAK_RSS_TARGET_MB: f64 = 300.0;
const AFTER_RSS_TARGET_MB: f64 = 100.0;

/// HTTP/2's connection preface and an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

pub async fn run(backend: Backend, config: OverloadConfig) -> Result<(), BoxError> {
    if !config.jalon_bin.exists() {
        return Err(format!(
            "{} not found: build it (cargo build --release -p jalon-server) or give --jalon-bin",
            config.jalon_bin.display()
        )
        .into());
    }
    let h2load_version = tool_version(&config.h2load).await.map_err(|e| {
        format!(
            "{} cannot run ({e}): install nghttp2-client (h2load), or give --h2load",
            config.h2load
        )
    })?;
    eprintln!("== overload on {} ({h2load_version})", backend.name());
    let db = FreshDatabase::create(&backend, "overload").await?;
    eprintln!("  database: {}", db.location);
    let result = measure(&config, &db).await;
    if config.keep_database {
        eprintln!("  kept {}", db.location);
    } else if let Err(e) = db.drop_database().await {
        eprintln!("  could not remove the database: {e}");
    }
    let figures = result?;
    let report = json!({
        "benchmark": "overload",
        "backend": backend.name(),
        "h2load": h2load_version,
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "config": {
            "projects": config.projects,
            "clients": config.clients,
            "streams_per_client": config.streams_per_client,
            "duration_secs": config.duration.as_secs_f64(),
            "after_secs": config.after.as_secs_f64(),
            "idle_connections": config.idle_connections,
            "idle_timeout_secs": config.idle_timeout.as_secs_f64(),
            "max_in_flight_calls": config.max_in_flight_calls,
        },
        "figures": figures,
    });
    println!();
    print!("{}", table(&config, &figures));
    if let Some(parent) = config.json.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&config.json, serde_json::to_string_pretty(&report)?)?;
    println!("figures written to {}", config.json.display());
    if figures["pass"].as_bool() == Some(true) {
        Ok(())
    } else {
        Err("a target was missed".into())
    }
}

async fn tool_version(program: &str) -> Result<String, BoxError> {
    let program = program.to_owned();
    let output =
        tokio::task::spawn_blocking(move || Command::new(program).arg("--version").output())
            .await??;
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text.lines().next().unwrap_or("").trim().to_owned())
}

/// A free port on the loopback.
fn free_port() -> Result<u16, BoxError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// `VmRSS` or `VmHWM` of a process, in kB.
fn status_kb(pid: u32, field: &str) -> Option<u64> {
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

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// The RSS of a process, sampled every 100 ms into `samples` (seconds since
/// `start`, kB) until `stop`.
fn sample_rss(
    pid: u32,
    start: Instant,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(f64, u64)>> {
    tokio::spawn(async move {
        let mut samples = Vec::new();
        let mut every = tokio::time::interval(Duration::from_millis(100));
        while !stop.load(Ordering::SeqCst) {
            every.tick().await;
            if let Some(kb) = status_kb(pid, "VmRSS") {
                samples.push((start.elapsed().as_secs_f64(), kb));
            }
        }
        samples
    })
}

/// The server process, killed if the benchmark fails midway.
struct Server {
    child: Option<Child>,
    pid: u32,
    addr: SocketAddr,
    metrics: SocketAddr,
}

impl Server {
    async fn start(config: &OverloadConfig, url: &str) -> Result<Self, BoxError> {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let mut command = Command::new(&config.jalon_bin);
        command
            .arg("serve")
            .env("JALON__SERVER__LISTEN", addr.to_string())
            .env("JALON__METRICS__LISTEN", metrics.to_string())
            .env("JALON__DATABASE__URL", url)
            .env("JALON__AUTH__HS256_SECRET", SECRET)
            .env("JALON__AUTH__ISSUER", ISSUER)
            .env("JALON__AUTH__AUDIENCE", AUDIENCE)
            .env("JALON__LOG__FILTER", "warn")
            .env(
                "JALON__SERVER__IDLE_CONNECTION_TIMEOUT_SECS",
                config.idle_timeout.as_secs().max(1).to_string(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(n) = config.max_in_flight_calls {
            command.env("JALON__SERVER__MAX_IN_FLIGHT_CALLS", n.to_string());
        }
        let child = command.spawn()?;
        let pid = child.id();
        let mut server = Self {
            child: Some(child),
            pid,
            addr,
            metrics,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(addr).await.is_err() {
            if let Some(child) = server.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                return Err(format!("the server exited with {status}").into());
            }
            if Instant::now() > deadline {
                return Err("the server did not listen within 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(server)
    }

    async fn scrape(&self) -> Result<String, BoxError> {
        scrape_at(self.metrics).await
    }

    async fn stop(mut self) -> Result<(), BoxError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // SIGTERM: the server drains and stops.
        let pid = self.pid.to_string();
        let _ = tokio::task::spawn_blocking(move || {
            Command::new("kill").args(["-TERM", &pid]).status()
        })
        .await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    eprintln!("  the server stopped with {status}");
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                eprintln!("  the server did not stop within 60 s: killed");
                child.kill()?;
                child.wait()?;
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The value of a series (name and labels, as exposed), 0 if absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

fn get_project_calls(text: &str, code: &str) -> f64 {
    sample(
        text,
        &format!(
            r#"jalon_grpc_requests_total{{service="jalon.v1.ProjectService",method="GetProject",code="{code}"}}"#
        ),
    )
}

async fn measure(config: &OverloadConfig, db: &FreshDatabase) -> Result<Value, BoxError> {
    let (portfolio, _, _) = crate::generate_in_child(&db.url, config.projects, config.seed).await?;
    let server = Server::start(config, &db.url).await?;
    let outcome = load_and_idle(config, &server, portfolio.organisation_id).await;
    server.stop().await?;
    outcome
}

async fn load_and_idle(
    config: &OverloadConfig,
    server: &Server,
    organisation_id: uuid::Uuid,
) -> Result<Value, BoxError> {
    let pid = server.pid;
    let start = Instant::now();
    let stop_sampling = Arc::new(AtomicBool::new(false));
    let sampler = sample_rss(pid, start, stop_sampling.clone());

    // The director's token, minted as the server checks it.
    let authenticator = Authenticator::from_settings(
        &AuthSettings {
            hs256_secret: Some(Secret::new(SECRET)),
            issuer: Some(ISSUER.into()),
            audience: Some(AUDIENCE.into()),
            ..AuthSettings::default()
        },
        &DatabaseSettings::default(),
    )?;
    let token = authenticator.mint(generate::DIRECTOR, Duration::from_secs(4 * 3600))?;
    let bearer = format!("Bearer {token}");

    // A project of the portfolio, and the request for it, checked once.
    let channel = Channel::from_shared(format!("http://{}", server.addr))?
        .connect()
        .await?;
    let mut projects = ProjectServiceClient::new(channel);
    let first = projects
        .list_projects(with_bearer(
            &bearer,
            ListProjectsRequest {
                organisation_id: organisation_id.to_string(),
                page_size: 1,
                ..Default::default()
            },
        ))
        .await?
        .into_inner()
        .projects
        .into_iter()
        .next()
        .ok_or("the generated portfolio has no project")?;
    let request = GetProjectRequest {
        organisation_id: organisation_id.to_string(),
        id: first.id.clone(),
    };
    projects
        .get_project(with_bearer(&bearer, request.clone()))
        .await?;
    drop(projects);

    // The gRPC body: uncompressed flag, length, message.
    let message = request.encode_to_vec();
    let mut body = Vec::with_capacity(5 + message.len());
    body.push(0u8);
    body.extend_from_slice(&u32::try_from(message.len())?.to_be_bytes());
    body.extend_from_slice(&message);
    let body_file =
        std::env::temp_dir().join(format!("jalon-overload-{}.grpc", std::process::id()));
    std::fs::write(&body_file, &body)?;

    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_before = status_kb(pid, "VmRSS").unwrap_or(0);
    let metrics_before = server.scrape().await?;

    // 1. The load.
    eprintln!(
        "  h2load -c {} -m {} for {} s on GetProject",
        config.clients,
        config.streams_per_client,
        config.duration.as_secs()
    );
    let in_flight_peak = Arc::new(AtomicU64::new(0));
    let connections_peak = Arc::new(AtomicU64::new(0));
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (in_flight_peak, connections_peak, watching) = (
            in_flight_peak.clone(),
            connections_peak.clone(),
            watching.clone(),
        );
        let metrics = server.metrics;
        tokio::spawn(async move {
            while watching.load(Ordering::SeqCst) {
                if let Ok(text) = scrape_at(metrics).await {
                    let in_flight = sample(&text, "jalon_grpc_requests_in_flight") as u64;
                    let open = sample(&text, "jalon_connections_open") as u64;
                    in_flight_peak.fetch_max(in_flight, Ordering::SeqCst);
                    connections_peak.fetch_max(open, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let load_start = start.elapsed().as_secs_f64();
    let h2load = run_h2load(config, server.addr, &bearer, &body_file).await;
    let load_end = start.elapsed().as_secs_f64();
    watching.store(false, Ordering::SeqCst);
    let _ = watcher.await;
    let _ = std::fs::remove_file(&body_file);
    let h2load = h2load?;
    let hwm_load = status_kb(pid, "VmHWM").unwrap_or(0);
    let metrics_after_load = server.scrape().await?;
    let ok =
        get_project_calls(&metrics_after_load, "OK") - get_project_calls(&metrics_before, "OK");
    let exhausted = get_project_calls(&metrics_after_load, "RESOURCE_EXHAUSTED")
        - get_project_calls(&metrics_before, "RESOURCE_EXHAUSTED");
    let shed_series = r#"jalon_grpc_requests_shed_total{reason="in_flight_calls"}"#;
    let shed = sample(&metrics_after_load, shed_series) - sample(&metrics_before, shed_series);
    let other_codes: f64 = metrics_after_load
        .lines()
        .filter(|l| {
            l.starts_with(r#"jalon_grpc_requests_total{service="jalon.v1.ProjectService",method="GetProject""#)
                && !l.contains(r#"code="OK""#)
                && !l.contains(r#"code="RESOURCE_EXHAUSTED""#)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    eprintln!(
        "  load done: {ok} OK, {exhausted} RESOURCE_EXHAUSTED ({shed} shed), peak RSS {:.1} MB",
        mb(hwm_load)
    );

    // 2. After the load.
    eprintln!(
        "  sampling the RSS for {} s after the load",
        config.after.as_secs()
    );
    tokio::time::sleep(config.after).await;
    stop_sampling.store(true, Ordering::SeqCst);
    let samples = sampler.await?;
    let rss_end = status_kb(pid, "VmRSS").unwrap_or(0);
    let during: Vec<u64> = samples
        .iter()
        .filter(|(t, _)| *t >= load_start && *t <= load_end)
        .map(|(_, kb)| *kb)
        .collect();
    let peak_sampled = during.iter().copied().max().unwrap_or(0);
    let after_30_min = samples
        .iter()
        .filter(|(t, _)| *t >= load_end + 30.0)
        .map(|(_, kb)| *kb)
        .min()
        .unwrap_or(rss_end);
    let at = |secs: f64| {
        samples
            .iter()
            .find(|(t, _)| *t >= load_end + secs)
            .map(|(_, kb)| mb(*kb))
    };

    // 3. Idle connections.
    let idle = idle_connections(config, server).await?;

    let peak_mb = mb(hwm_load.max(peak_sampled));
    let after_mb = mb(rss_end);
    let pass = peak_mb <= PEAK_RSS_TARGET_MB
        && after_mb < AFTER_RSS_TARGET_MB
        && shed > 0.0
        && idle["closed_after_timeout"].as_u64() == Some(config.idle_connections as u64);
    Ok(json!({
        "rss_before_mb": mb(rss_before),
        "peak_rss_mb": peak_mb,
        "peak_rss_sampled_mb": mb(peak_sampled),
        "rss_after_mb": {
            "10s": at(10.0), "30s": at(30.0), "50s": at(50.0),
            "end": after_mb,
            "lowest_from_30s": mb(after_30_min),
        },
        "h2load": h2load,
        "server": {
            "get_project_ok": ok,
            "get_project_resource_exhausted": exhausted,
            "get_project_other_codes": other_codes,
            "shed_in_flight_calls": shed,
            "in_flight_peak": in_flight_peak.load(Ordering::SeqCst),
            "connections_peak": connections_peak.load(Ordering::SeqCst),
        },
        "idle": idle,
        "pass": pass,
    }))
}

fn with_bearer<T>(bearer: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    if let Ok(value) = MetadataValue::try_from(bearer) {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

async fn scrape_at(metrics: SocketAddr) -> Result<String, BoxError> {
    let mut socket = TcpStream::connect(metrics).await?;
    socket
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: jalon\r\nConnection: close\r\n\r\n")
        .await?;
    let mut text = String::new();
    socket.read_to_string(&mut text).await?;
    Ok(text)
}

/// Runs h2load and reads its summary.
async fn run_h2load(
    config: &OverloadConfig,
    addr: SocketAddr,
    bearer: &str,
    body: &Path,
) -> Result<Value, BoxError> {
    let mut command = Command::new(&config.h2load);
    command
        .args([
            "-c",
            &config.clients.to_string(),
            "-m",
            &config.streams_per_client.to_string(),
            "-D",
            &config.duration.as_secs().max(1).to_string(),
            "-d",
            &body.display().to_string(),
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            "-H",
            &format!("authorization: {bearer}"),
            &format!("http://{addr}/jalon.v1.ProjectService/GetProject"),
        ])
        .stdin(Stdio::null());
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!(
            "h2load failed ({}): {}{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let line = |prefix: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .map(|l| l.trim().to_owned())
    };
    Ok(json!({
        "requests": line("requests:"),
        "status_codes": line("status codes:"),
        "finished": line("finished in"),
        "time_for_request": line("time for request:"),
    }))
}

/// Opens the idle connections, then waits for the server to close them.
async fn idle_connections(config: &OverloadConfig, server: &Server) -> Result<Value, BoxError> {
    let n = config.idle_connections;
    let timeout = config.idle_timeout;
    eprintln!(
        "  {n} idle HTTP/2 connections, server idle timeout {} s",
        timeout.as_secs()
    );
    let before = server.scrape().await?;
    let opened = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let addr = server.addr;
        tasks.spawn(async move {
            let mut socket = TcpStream::connect(addr).await.ok()?;
            socket.write_all(H2_PREFACE).await.ok()?;
            let connected = Instant::now();
            let mut buf = [0u8; 512];
            let wait = timeout * 3 + Duration::from_secs(30);
            let closed = tokio::time::timeout(wait, async {
                loop {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            })
            .await;
            closed.ok().map(|()| connected.elapsed().as_secs_f64())
        });
    }
    // While they are open: the server's count.
    tokio::time::sleep(timeout / 2).await;
    let during = server.scrape().await?;
    let open_during = sample(&during, "jalon_connections_open");
    let mut closed = Vec::new();
    let mut not_closed = 0usize;
    while let Some(joined) = tasks.join_next().await {
        match joined? {
            Some(secs) => closed.push(secs),
            None => not_closed += 1,
        }
    }
    let after = server.scrape().await?;
    let series = "jalon_connections_idle_closed_total";
    closed.sort_by(f64::total_cmp);
    let early = closed
        .iter()
        .filter(|s| **s < timeout.as_secs_f64() - 0.5)
        .count();
    Ok(json!({
        "opened": n,
        "open_on_the_server_meanwhile": open_during,
        "closed_after_timeout": closed.len() - early,
        "closed_early": early,
        "never_closed": not_closed,
        "first_closed_after_secs": closed.first(),
        "last_closed_after_secs": closed.last(),
        "server_idle_closed": sample(&after, series) - sample(&before, series),
        "all_closed_within_secs": opened.elapsed().as_secs_f64(),
    }))
}

fn table(config: &OverloadConfig, f: &Value) -> String {
    let num = |v: &Value| v.as_f64().map_or("-".into(), |x| format!("{x:.1}"));
    let pass = |ok: bool| if ok { "pass" } else { "MISS" };
    let peak = f["peak_rss_mb"].as_f64().unwrap_or(f64::MAX);
    let after = f["rss_after_mb"]["end"].as_f64().unwrap_or(f64::MAX);
    let shed = f["server"]["shed_in_flight_calls"].as_f64().unwrap_or(0.0);
    let idle_ok =
        f["idle"]["closed_after_timeout"].as_u64() == Some(config.idle_connections as u64);
    let mut out = String::new();
    out.push_str(&format!(
        "overload: h2load -c {} -m {} ({} calls offered at once), {} s on GetProject\n",
        config.clients,
        config.streams_per_client,
        config.clients * config.streams_per_client,
        config.duration.as_secs()
    ));
    out.push_str("| figure | value | target | |\n|---|---|---|---|\n");
    out.push_str(&format!(
        "| RSS before the load (MB) | {} | | |\n",
        num(&f["rss_before_mb"])
    ));
    out.push_str(&format!(
        "| peak RSS under load (MB, VmHWM) | {peak:.1} | <= {PEAK_RSS_TARGET_MB} | {} |\n",
        pass(peak <= PEAK_RSS_TARGET_MB)
    ));
    for at in ["10s", "30s", "50s"] {
        out.push_str(&format!(
            "| RSS {at} after the load (MB) | {} | | |\n",
            num(&f["rss_after_mb"][at])
        ));
    }
    out.push_str(&format!(
        "| RSS {} s after the load (MB) | {after:.1} | < {AFTER_RSS_TARGET_MB} | {} |\n",
        config.after.as_secs(),
        pass(after < AFTER_RSS_TARGET_MB)
    ));
    out.push_str(&format!(
        "| GetProject answered OK | {} | | |\n",
        num(&f["server"]["get_project_ok"])
    ));
    out.push_str(&format!(
        "| GetProject shed (RESOURCE_EXHAUSTED, counted) | {shed:.0} | > 0 | {} |\n",
        pass(shed > 0.0)
    ));
    out.push_str(&format!(
        "| GetProject other codes | {} | | |\n",
        num(&f["server"]["get_project_other_codes"])
    ));
    out.push_str(&format!(
        "| calls in flight on the server, peak | {} | | |\n",
        f["server"]["in_flight_peak"]
    ));
    out.push_str(&format!(
        "| idle connections closed after the {} s timeout | {} of {} | all | {} |\n",
        config.idle_timeout.as_secs(),
        f["idle"]["closed_after_timeout"],
        config.idle_connections,
        pass(idle_ok)
    ));
    out.push_str(&format!(
        "| idle connections: first / last closed after (s) | {} / {} | | |\n",
        num(&f["idle"]["first_closed_after_secs"]),
        num(&f["idle"]["last_closed_after_secs"])
    ));
    out.push_str(&format!(
        "h2load: {}\n        {}\n",
        f["h2load"]["requests"].as_str().unwrap_or("-"),
        f["h2load"]["status_codes"].as_str().unwrap_or("-")
    ));
    out
}
