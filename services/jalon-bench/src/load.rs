//! Load: closed-loop workers over a fixed set of HTTP/2 connections for a
//! fixed duration after a warm-up (throughput), and sequential calls
//! (latency of one request at a time). Latencies are kept in full and read
//! with nearest-rank percentiles.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use chrono::Utc;
use jalon_proto::v1::{GetProjectRequest, project_service_client::ProjectServiceClient};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};
use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    transport::{Channel, Endpoint},
};
use uuid::Uuid;

use crate::{
    BoxError,
    echo::{EchoClient, EchoMessage},
    generate::project_id,
    rng::Rng,
};

/// How hard to push.
#[derive(Debug, Clone, Copy)]
pub struct LoadConfig {
    /// HTTP/2 connections.
    pub connections: usize,
    /// Requests in flight on each connection.
    pub inflight: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

/// `count` separate HTTP/2 connections to `addr` (a tonic `Channel` made by
/// `connect()` is one connection).
pub async fn connect(addr: SocketAddr, count: usize) -> Result<Vec<Channel>, BoxError> {
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        let channel = Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect()
            .await?;
        channels.push(channel);
    }
    Ok(channels)
}

/// Latency figures, in milliseconds.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub max_ms: f64,
}

impl Stats {
    /// From latencies in microseconds.
    pub fn from_micros(mut micros: Vec<u32>) -> Self {
        if micros.is_empty() {
            return Self::default();
        }
        micros.sort_unstable();
        let rank = |q: f64| {
            let n = micros.len();
            let i = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
            f64::from(micros[i]) / 1000.0
        };
        let sum: u64 = micros.iter().map(|m| u64::from(*m)).sum();
        Self {
            count: micros.len(),
            p50_ms: rank(0.50),
            p99_ms: rank(0.99),
            mean_ms: sum as f64 / micros.len() as f64 / 1000.0,
            max_ms: f64::from(micros[micros.len() - 1]) / 1000.0,
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "count": self.count,
            "p50_ms": round3(self.p50_ms),
            "p99_ms": round3(self.p99_ms),
            "mean_ms": round3(self.mean_ms),
            "max_ms": round3(self.max_ms),
        })
    }
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// What a throughput run measured.
#[derive(Debug, Clone, Default)]
pub struct Throughput {
    pub rps: f64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub latency: Stats,
}

impl Throughput {
    pub fn json(&self) -> Value {
        json!({
            "rps": self.rps.round(),
            "errors": self.errors,
            "first_error": self.first_error,
            "latency": self.latency.json(),
        })
    }
}

/// One kind of request, made by a worker.
pub trait Caller: Send + 'static {
    fn call(&mut self, rng: &mut Rng) -> impl Future<Output = Result<(), Status>> + Send;
}

/// Closed loop: each of `connections × inflight` workers sends its next
/// request when the previous one is answered. Requests started during the
/// warm-up, or finished after the end, are not counted.
pub async fn throughput<C: Caller>(
    channels: &[Channel],
    config: LoadConfig,
    seed: u64,
    make: impl Fn(Channel) -> C,
) -> Result<Throughput, BoxError> {
    let start = Instant::now();
    let measure_from = start + config.warmup;
    let end = measure_from + config.duration;
    let mut workers = Vec::new();
    for (c, channel) in channels.iter().enumerate() {
        for w in 0..config.inflight.max(1) {
            let mut caller = make(channel.clone());
            let mut rng = Rng::derive(seed, (c * 1000 + w) as u64);
            workers.push(tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(4096);
                let mut errors = 0u64;
                let mut first_error = None;
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    let result = caller.call(&mut rng).await;
                    let done = Instant::now();
                    if sent < measure_from || done > end {
                        continue;
                    }
                    match result {
                        Ok(()) => latencies.push(micros(done - sent)),
                        Err(status) => {
                            errors += 1;
                            first_error.get_or_insert_with(|| {
                                format!("{:?}: {}", status.code(), status.message())
                            });
                        }
                    }
                }
                (latencies, errors, first_error)
            }));
        }
    }
    let mut all = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for worker in workers {
        let (latencies, e, first) = worker.await?;
        all.extend(latencies);
        errors += e;
        if first_error.is_none() {
            first_error = first;
        }
    }
    Ok(Throughput {
        rps: all.len() as f64 / config.duration.as_secs_f64(),
        errors,
        first_error,
        latency: Stats::from_micros(all),
    })
}

/// Calls `f` `warmup` times, then `calls` times timing each; the first
/// error ends the measure.
pub async fn sequential<F, Fut>(warmup: usize, calls: usize, mut f: F) -> Result<Stats, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    for _ in 0..warmup {
        f().await?;
    }
    let mut latencies = Vec::with_capacity(calls);
    for _ in 0..calls {
        let sent = Instant::now();
        f().await?;
        latencies.push(micros(sent.elapsed()));
    }
    Ok(Stats::from_micros(latencies))
}

/// A request carrying the bearer token.
pub fn authed<T>(auth: &MetadataValue<Ascii>, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", auth.clone());
    request
}

/// Echoes a project id (the same client-side work as GetProject).
pub struct EchoCall {
    pub client: EchoClient,
    pub projects: u64,
}

impl Caller for EchoCall {
    async fn call(&mut self, rng: &mut Rng) -> Result<(), Status> {
        let message = project_id(rng.below(self.projects)).to_string();
        self.client.echo(EchoMessage { message }).await?;
        Ok(())
    }
}

/// GetProject on a random project of the organisation.
pub struct GetProjectCall {
    pub client: ProjectServiceClient<Channel>,
    pub organisation_id: Uuid,
    pub auth: MetadataValue<Ascii>,
    pub projects: u64,
}

impl Caller for GetProjectCall {
    async fn call(&mut self, rng: &mut Rng) -> Result<(), Status> {
        let id = project_id(rng.below(self.projects)).to_string();
        let request = authed(
            &self.auth,
            GetProjectRequest {
                organisation_id: self.organisation_id.to_string(),
                id,
            },
        );
        self.client.get_project(request).await?;
        Ok(())
    }
}

fn db_text(e: sea_orm::DbErr) -> String {
    e.to_string()
}

/// What GetPortfolioSummary reads for the whole organisation, written by
/// hand: the organisation's counters (folded and pending deltas) and the
/// three deadline counts.
pub async fn summary_sql(db: &DatabaseConnection, organisation_id: Uuid) -> Result<(), String> {
    let backend = db.get_database_backend();
    let now = Utc::now();
    let cutoff = now - chrono::Duration::days(365);
    let today = now.date_naive();
    let counters = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            "SELECT name, CAST(SUM(value) AS BIGINT) AS value FROM ( \
               SELECT name, value FROM portfolio_counters WHERE organisation_id = $1 \
               UNION ALL \
               SELECT name, value FROM portfolio_counter_deltas WHERE organisation_id = $1 \
             ) AS c GROUP BY name",
            [organisation_id.into()],
        ))
        .await
        .map_err(db_text)?;
    for row in &counters {
        let _: String = row.try_get("", "name").map_err(db_text)?;
        let _: i64 = row.try_get("", "value").map_err(db_text)?;
    }
    let deadlines: [(&str, sea_orm::Value); 3] = [
        (
            "SELECT count(*) AS n FROM project_figures WHERE organisation_id = $1 AND gate_watch_since < $2",
            cutoff.into(),
        ),
        (
            "SELECT count(*) AS n FROM project_figures WHERE organisation_id = $1 AND review_due_time < $2",
            now.into(),
        ),
        (
            "SELECT count(*) AS n FROM project_figures WHERE organisation_id = $1 AND condition_due_date < $2",
            today.into(),
        ),
    ];
    for (sql, value) in deadlines {
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [organisation_id.into(), value],
            ))
            .await
            .map_err(db_text)?
            .ok_or("a count returned no row")?;
        let _: i64 = row.try_get("", "n").map_err(db_text)?;
    }
    Ok(())
}

/// The same kind of roll-ups computed from scratch over the base tables
/// (for information: what the kept figures save).
pub async fn scratch_aggregates(
    db: &DatabaseConnection,
    organisation_id: Uuid,
) -> Result<(), String> {
    let backend = db.get_database_backend();
    for sql in [
        "SELECT phase, status, count(*) AS n FROM projects WHERE organisation_id = $1 GROUP BY phase, status",
        "SELECT category, CAST(sum(amount_minor) AS BIGINT) AS n FROM costs WHERE organisation_id = $1 GROUP BY category",
        "SELECT phase, concern, count(*) AS n FROM assessment_items WHERE organisation_id = $1 \
         AND risk = 'HIGH' AND status NOT IN ('DONE', 'NOT_APPLICABLE') GROUP BY phase, concern",
    ] {
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [organisation_id.into()],
            ))
            .await
            .map_err(db_text)?;
        for row in &rows {
            let _: i64 = row.try_get("", "n").map_err(db_text)?;
        }
    }
    Ok(())
}
