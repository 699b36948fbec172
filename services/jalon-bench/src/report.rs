//! The figures: one table row per measure (value, target, pass or miss),
//! and the same figures as JSON.

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use serde_json::{Value, json};

use crate::{
    BoxError,
    load::{LoadConfig, Stats, Throughput, round3},
};

/// GetProject throughput / echo throughput, at least.
pub const RATIO_TARGET_SQLITE: f64 = 0.5;
pub const RATIO_TARGET_POSTGRES: f64 = 0.35;
/// GetPortfolioSummary p50 / the hand-written SQL's p50, at most.
pub const SUMMARY_SQL_TARGET: f64 = 1.2;
/// GetPortfolioSummary p50, largest size / smallest size, at most.
pub const SUMMARY_SCALING_TARGET: f64 = 10.0;
/// Peak resident memory under load, at most (MB).
pub const MEMORY_TARGET_MB: f64 = 150.0;

/// The walk down ListPortfolioProjects' pages.
#[derive(Debug, Clone, Default)]
pub struct DeepPage {
    /// Pages fetched, the first included.
    pub pages: usize,
    /// Rows returned over those pages.
    pub rows: usize,
    /// The position of the first row of the last page (1-based).
    pub first_row: usize,
    pub walk_secs: f64,
    pub first_ms: f64,
    /// The last page reached, fetched once during the walk.
    pub last_ms: f64,
    /// The last page reached, fetched again with its token.
    pub last: Stats,
}

/// Resident memory of the process, in kB.
#[derive(Debug, Clone)]
pub struct Memory {
    /// Whether the high-water mark was reset after generation.
    pub reset: Result<(), String>,
    /// Resident memory when it was reset: what generation and rebuild left.
    pub rss_at_reset_kb: Option<u64>,
    pub hwm_kb: Option<u64>,
    pub rss_kb: Option<u64>,
}

/// Everything measured at one portfolio size.
#[derive(Debug, Clone)]
pub struct Run {
    pub projects: u64,
    pub rows: BTreeMap<String, u64>,
    pub people_secs: f64,
    pub insert_secs: f64,
    /// Seconds, and what the rebuild returned.
    pub rebuild: Result<(f64, u64), String>,
    pub echo: Throughput,
    pub get_project: Throughput,
    /// One call at a time: the latency floor of each stack.
    pub echo_sequential: Result<Stats, String>,
    pub get_project_sequential: Result<Stats, String>,
    pub summary: Result<Stats, String>,
    pub sql: Result<Stats, String>,
    pub scratch: Result<Stats, String>,
    pub first_page: Result<Stats, String>,
    pub deep: Result<DeepPage, String>,
    pub memory: Memory,
}

impl Run {
    fn generation_secs(&self) -> f64 {
        self.people_secs + self.insert_secs
    }

    fn total_rows(&self) -> u64 {
        self.rows.values().sum()
    }

    fn ratio(&self) -> Option<f64> {
        (self.echo.rps > 0.0 && self.get_project.errors == 0)
            .then(|| self.get_project.rps / self.echo.rps)
    }

    fn summary_sql_ratio(&self) -> Option<f64> {
        match (&self.summary, &self.sql) {
            (Ok(s), Ok(q)) if q.p50_ms > 0.0 => Some(s.p50_ms / q.p50_ms),
            _ => None,
        }
    }
}

/// The machine and the settings of the whole invocation.
#[derive(Debug, Clone)]
pub struct Setup {
    pub backend: &'static str,
    pub backend_version: String,
    pub cores: usize,
    pub cpu: String,
    pub load: LoadConfig,
    pub calls: usize,
    pub seed: u64,
    /// The server's database pool size.
    pub db_connections: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Pass,
    Miss,
    Info,
    Failed,
}

impl Verdict {
    pub(crate) fn text(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Miss => "MISS",
            Verdict::Info => "",
            Verdict::Failed => "ERROR",
        }
    }

    pub(crate) fn at_least(value: f64, target: f64) -> Self {
        if value >= target {
            Verdict::Pass
        } else {
            Verdict::Miss
        }
    }

    pub(crate) fn at_most(value: f64, target: f64) -> Self {
        if value <= target {
            Verdict::Pass
        } else {
            Verdict::Miss
        }
    }
}

struct Row {
    measure: String,
    value: String,
    target: String,
    verdict: Verdict,
}

fn row(
    measure: impl Into<String>,
    value: impl Into<String>,
    target: &str,
    verdict: Verdict,
) -> Row {
    Row {
        measure: measure.into(),
        value: value.into(),
        target: target.to_owned(),
        verdict,
    }
}

pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn latency(s: &Stats) -> String {
    format!("p50 {:.2} ms, p99 {:.2} ms", s.p50_ms, s.p99_ms)
}

fn throughput(t: &Throughput) -> String {
    let mut text = format!("{:.0} req/s, {}", t.rps, latency(&t.latency));
    if t.errors > 0 {
        let _ = write!(text, ", {} errors", t.errors);
    }
    text
}

fn error_row(measure: &str, error: &str) -> Row {
    let mut text = error.replace('\n', " ");
    if text.chars().count() > 100 {
        text = text.chars().take(100).collect::<String>() + "…";
    }
    row(measure, text, "", Verdict::Failed)
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

impl Setup {
    fn ratio_target(&self) -> f64 {
        if self.backend == "postgresql" {
            RATIO_TARGET_POSTGRES
        } else {
            RATIO_TARGET_SQLITE
        }
    }
}

fn run_rows(setup: &Setup, run: &Run) -> Vec<Row> {
    let mut rows = Vec::new();
    let size = thousands(run.projects);
    rows.push(row(
        format!("[{size}] generation ({} rows)", thousands(run.total_rows())),
        format!(
            "{:.1} s (people {:.1} s, bulk insert {:.1} s)",
            run.generation_secs(),
            run.people_secs,
            run.insert_secs
        ),
        "",
        Verdict::Info,
    ));
    rows.push(match &run.rebuild {
        Ok((secs, n)) => row(
            format!("[{size}] portfolio::rebuild"),
            format!("{secs:.1} s ({n} returned)"),
            "",
            Verdict::Info,
        ),
        Err(e) => error_row(&format!("[{size}] portfolio::rebuild"), e),
    });
    rows.push(row(
        format!("[{size}] echo (bare tonic)"),
        throughput(&run.echo),
        "",
        Verdict::Info,
    ));
    rows.push(match &run.get_project.first_error {
        Some(e) if run.get_project.latency.count == 0 => {
            error_row(&format!("[{size}] GetProject"), e)
        }
        _ => row(
            format!("[{size}] GetProject"),
            throughput(&run.get_project),
            "",
            Verdict::Info,
        ),
    });
    let target = setup.ratio_target();
    rows.push(match run.ratio() {
        Some(ratio) => row(
            format!("[{size}] GetProject / echo throughput"),
            format!("{ratio:.2}"),
            &format!(">= {target:.2}"),
            Verdict::at_least(ratio, target),
        ),
        None => row(
            format!("[{size}] GetProject / echo throughput"),
            "n/a (errors)",
            &format!(">= {target:.2}"),
            Verdict::Failed,
        ),
    });
    rows.push(match &run.echo_sequential {
        Ok(s) => row(
            format!("[{size}] echo, one call at a time"),
            latency(s),
            "",
            Verdict::Info,
        ),
        Err(e) => error_row(&format!("[{size}] echo, one call at a time"), e),
    });
    rows.push(match &run.get_project_sequential {
        Ok(s) => row(
            format!("[{size}] GetProject, one call at a time"),
            latency(s),
            "",
            Verdict::Info,
        ),
        Err(e) => error_row(&format!("[{size}] GetProject, one call at a time"), e),
    });
    rows.push(match &run.summary {
        Ok(s) => row(
            format!("[{size}] GetPortfolioSummary"),
            latency(s),
            "",
            Verdict::Info,
        ),
        Err(e) => error_row(&format!("[{size}] GetPortfolioSummary"), e),
    });
    rows.push(match &run.sql {
        Ok(s) => row(
            format!("[{size}] hand-written SQL (counters + 3 counts)"),
            latency(s),
            "",
            Verdict::Info,
        ),
        Err(e) => error_row(&format!("[{size}] hand-written SQL"), e),
    });
    if let Some(ratio) = run.summary_sql_ratio() {
        rows.push(row(
            format!("[{size}] GetPortfolioSummary / SQL (p50)"),
            format!("{ratio:.2}"),
            &format!("<= {SUMMARY_SQL_TARGET:.1}"),
            Verdict::at_most(ratio, SUMMARY_SQL_TARGET),
        ));
    }
    rows.push(match &run.scratch {
        Ok(s) => row(
            format!("[{size}] from-scratch aggregates (info)"),
            latency(s),
            "",
            Verdict::Info,
        ),
        Err(e) => error_row(&format!("[{size}] from-scratch aggregates"), e),
    });
    rows.push(match &run.first_page {
        Ok(s) => row(
            format!("[{size}] ListPortfolioProjects page 1 (COST desc)"),
            latency(s),
            "",
            Verdict::Info,
        ),
        Err(e) => error_row(&format!("[{size}] ListPortfolioProjects page 1"), e),
    });
    match &run.deep {
        Ok(d) => {
            rows.push(row(
                format!(
                    "[{size}] ListPortfolioProjects page {} (row {})",
                    d.pages,
                    thousands(d.first_row as u64)
                ),
                format!(
                    "{} (walk {:.1} s, page 1 {:.2} ms, page {} {:.2} ms)",
                    latency(&d.last),
                    d.walk_secs,
                    d.first_ms,
                    d.pages,
                    d.last_ms
                ),
                "",
                Verdict::Info,
            ));
        }
        Err(e) => rows.push(error_row(
            &format!("[{size}] ListPortfolioProjects deep page"),
            e,
        )),
    }
    match (run.memory.hwm_kb, &run.memory.reset) {
        (Some(hwm), reset) => {
            let note = if reset.is_ok() {
                ""
            } else {
                " (peak not reset: includes generation)"
            };
            rows.push(row(
                format!("[{size}] peak RSS under load (VmHWM)"),
                format!("{:.1} MB{note}", mb(hwm)),
                &format!("<= {MEMORY_TARGET_MB:.0} MB"),
                Verdict::at_most(mb(hwm), MEMORY_TARGET_MB),
            ));
        }
        (None, _) => rows.push(row(
            format!("[{size}] peak RSS under load (VmHWM)"),
            "unavailable",
            "",
            Verdict::Failed,
        )),
    }
    if let Some(rss) = run.memory.rss_at_reset_kb {
        rows.push(row(
            format!("[{size}] RSS before the server started"),
            format!("{:.1} MB (generation ran in a child process)", mb(rss)),
            "",
            Verdict::Info,
        ));
    }
    if let Some(rss) = run.memory.rss_kb {
        rows.push(row(
            format!("[{size}] RSS after load (VmRSS)"),
            format!("{:.1} MB", mb(rss)),
            "",
            Verdict::Info,
        ));
    }
    rows
}

/// GetPortfolioSummary p50 at the largest size / at the smallest.
fn scaling(runs: &[Run]) -> Option<(u64, u64, f64)> {
    let small = runs.iter().min_by_key(|r| r.projects)?;
    let large = runs.iter().max_by_key(|r| r.projects)?;
    if small.projects == large.projects {
        return None;
    }
    match (&small.summary, &large.summary) {
        (Ok(s), Ok(l)) if s.p50_ms > 0.0 => {
            Some((large.projects, small.projects, l.p50_ms / s.p50_ms))
        }
        _ => None,
    }
}

/// The table, as printed.
pub fn table(setup: &Setup, runs: &[Run]) -> String {
    let mut rows: Vec<Row> = runs.iter().flat_map(|r| run_rows(setup, r)).collect();
    if let Some((large, small, ratio)) = scaling(runs) {
        rows.push(row(
            format!(
                "GetPortfolioSummary p50, {} / {}",
                thousands(large),
                thousands(small)
            ),
            format!("{ratio:.2}"),
            &format!("<= {SUMMARY_SCALING_TARGET:.0}"),
            Verdict::at_most(ratio, SUMMARY_SCALING_TARGET),
        ));
    }
    let width = |f: fn(&Row) -> &str, title: &str| {
        rows.iter()
            .map(|r| f(r).chars().count())
            .chain([title.len()])
            .max()
            .unwrap_or(0)
    };
    let (wm, wv, wt) = (
        width(|r| &r.measure, "measure"),
        width(|r| &r.value, "value"),
        width(|r| &r.target, "target"),
    );
    let mut out = String::new();
    let _ = writeln!(
        out,
        "jalon-bench: {} ({}, server pool {}), {} cores ({}); load {} connections x {} in flight, {:.1} s after {:.1} s warm-up; {} sequential calls",
        setup.backend,
        setup.backend_version,
        setup.db_connections,
        setup.cores,
        setup.cpu,
        setup.load.connections,
        setup.load.inflight,
        setup.load.duration.as_secs_f64(),
        setup.load.warmup.as_secs_f64(),
        setup.calls,
    );
    let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w.saturating_sub(s.chars().count())));
    let _ = writeln!(
        out,
        "{}  {}  {}  result",
        pad("measure", wm),
        pad("value", wv),
        pad("target", wt)
    );
    let _ = writeln!(out, "{}", "-".repeat(wm + wv + wt + 12));
    for r in &rows {
        let _ = writeln!(
            out,
            "{}  {}  {}  {}",
            pad(&r.measure, wm),
            pad(&r.value, wv),
            pad(&r.target, wt),
            r.verdict.text()
        );
    }
    out
}

fn result_json<T>(r: &Result<T, String>, f: impl Fn(&T) -> Value) -> Value {
    match r {
        Ok(v) => f(v),
        Err(e) => json!({ "error": e }),
    }
}

fn run_json(setup: &Setup, run: &Run) -> Value {
    json!({
        "projects": run.projects,
        "rows": run.rows,
        "rows_total": run.total_rows(),
        "generation_secs": round3(run.generation_secs()),
        "people_secs": round3(run.people_secs),
        "bulk_insert_secs": round3(run.insert_secs),
        "rebuild": result_json(&run.rebuild, |(secs, n)| json!({ "secs": round3(*secs), "returned": n })),
        "echo": run.echo.json(),
        "get_project": run.get_project.json(),
        "get_project_over_echo": run.ratio().map(round3),
        "echo_sequential": result_json(&run.echo_sequential, Stats::json),
        "get_project_sequential": result_json(&run.get_project_sequential, Stats::json),
        "get_project_over_echo_target": setup.ratio_target(),
        "get_portfolio_summary": result_json(&run.summary, Stats::json),
        "summary_sql": result_json(&run.sql, Stats::json),
        "summary_over_sql_p50": run.summary_sql_ratio().map(round3),
        "summary_over_sql_target": SUMMARY_SQL_TARGET,
        "scratch_aggregates": result_json(&run.scratch, Stats::json),
        "list_first_page": result_json(&run.first_page, Stats::json),
        "list_deep_page": result_json(&run.deep, |d| json!({
            "pages": d.pages,
            "rows": d.rows,
            "first_row_of_last_page": d.first_row,
            "walk_secs": round3(d.walk_secs),
            "first_ms": round3(d.first_ms),
            "last_ms": round3(d.last_ms),
            "last_page": d.last.json(),
        })),
        "memory": {
            "peak_reset_after_generation": run.memory.reset.is_ok(),
            "peak_reset_error": run.memory.reset.as_ref().err(),
            "vm_rss_at_reset_kb": run.memory.rss_at_reset_kb,
            "vm_hwm_kb": run.memory.hwm_kb,
            "vm_rss_kb": run.memory.rss_kb,
            "target_mb": MEMORY_TARGET_MB,
        },
    })
}

/// All figures as JSON.
pub fn json(setup: &Setup, runs: &[Run]) -> Value {
    json!({
        "machine": {
            "cores": setup.cores,
            "cpu": setup.cpu,
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
        },
        "backend": setup.backend,
        "backend_version": setup.backend_version,
        "load": {
            "connections": setup.load.connections,
            "inflight_per_connection": setup.load.inflight,
            "warmup_secs": setup.load.warmup.as_secs_f64(),
            "duration_secs": setup.load.duration.as_secs_f64(),
            "sequential_calls": setup.calls,
            "server_db_connections": setup.db_connections,
        },
        "seed": setup.seed,
        "runs": runs.iter().map(|r| run_json(setup, r)).collect::<Vec<_>>(),
        "summary_scaling": scaling(runs).map(|(large, small, ratio)| json!({
            "large": large,
            "small": small,
            "p50_ratio": round3(ratio),
            "target": SUMMARY_SCALING_TARGET,
        })),
    })
}

/// Writes the JSON, creating the directory.
pub fn write_json(path: &Path, value: &Value) -> Result<(), BoxError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(value)? + "\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
