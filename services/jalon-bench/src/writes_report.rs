//! The write benchmark's figures: one table row per measure (value,
//! baseline, ratio, target, pass or miss), and the same figures as JSON.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::{
    csv_import::CsvFigures,
    load::{Stats, round3},
    report::{Verdict, thousands},
    writes::{
        Concurrent, EventFigures, ImportFigures, ImportRun, KpiFigures, RebuildFigures,
        WebhookFigures, WritersFigures, WritesConfig, WritesRun,
    },
};

/// ImportCosts rows/s over the bare batched INSERT's, at least.
pub const IMPORT_RATIO_TARGET: f64 = 0.5;
/// Time of the last segment over time of the first, at most.
pub const IMPORT_LINEARITY_TARGET: f64 = 1.25;
/// Concurrent writes/s over the bare one-row transactions', at least
/// (PostgreSQL).
pub const WRITERS_RATIO_TARGET_POSTGRES: f64 = 0.25;
/// p99 of the concurrent writes, at most, in ms (SQLite).
pub const WRITERS_P99_TARGET_SQLITE_MS: f64 = 50.0;
/// RecordMeasurement p50 on the loaded KPI over the fresh KPI's, at most.
pub const KPI_RATIO_TARGET: f64 = 1.2;
/// portfolio::rebuild, under this many seconds.
pub const REBUILD_TARGET_SECS: f64 = 20.0;

struct Row {
    measure: String,
    value: String,
    baseline: String,
    ratio: String,
    target: String,
    verdict: Verdict,
}

/// A column of the table: how to read its cell from a row.
type Cell = fn(&Row) -> &str;

fn row(measure: impl Into<String>, value: impl Into<String>) -> Row {
    Row {
        measure: measure.into(),
        value: value.into(),
        baseline: String::new(),
        ratio: String::new(),
        target: String::new(),
        verdict: Verdict::Info,
    }
}

impl Row {
    fn baseline(mut self, baseline: impl Into<String>) -> Self {
        self.baseline = baseline.into();
        self
    }

    fn ratio(mut self, ratio: Option<f64>) -> Self {
        self.ratio = ratio.map_or_else(|| "n/a".into(), |r| format!("{r:.2}"));
        self
    }

    fn at_least(mut self, value: Option<f64>, target: f64, text: String) -> Self {
        self.target = text;
        self.verdict = value.map_or(Verdict::Failed, |v| Verdict::at_least(v, target));
        self
    }

    fn at_most(mut self, value: Option<f64>, target: f64, text: String) -> Self {
        self.target = text;
        self.verdict = value.map_or(Verdict::Failed, |v| Verdict::at_most(v, target));
        self
    }
}

fn error_row(measure: impl Into<String>, error: &str) -> Row {
    let mut text = error.replace('\n', " ");
    if text.chars().count() > 140 {
        text = text.chars().take(140).collect::<String>() + "…";
    }
    let mut r = row(measure, text);
    r.verdict = Verdict::Failed;
    r
}

fn latency(s: &Stats) -> String {
    format!("p50 {:.2} ms, p99 {:.2} ms", s.p50_ms, s.p99_ms)
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "n/a".into(), |r| format!("{r:.0} rows/s"))
}

fn ratio_of(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn short(n: u64) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", thousands(n / 1000))
    } else {
        thousands(n)
    }
}

fn import_rows(f: &ImportFigures) -> Vec<Row> {
    let m = &f.milestones;
    let seg = short(m.segment);
    let bare = f.bare.as_ref().ok();
    let mut rows = Vec::new();
    let server_overall = f.server.overall(m);
    let bare_overall = bare.and_then(|b| b.overall(m));
    let title = format!(
        "[import] ImportCosts, {} rows in one stream",
        thousands(m.rows)
    );
    let baseline = match &f.bare {
        Ok(b) => format!(
            "bare INSERT x {}/txn: {} ({:.1} s)",
            f.batch_rows,
            rate(b.overall(m)),
            b.curve.at(m.rows).unwrap_or(b.secs)
        ),
        Err(e) => format!("bare INSERT failed: {e}"),
    };
    if f.server.complete(m) {
        rows.push(
            row(
                title,
                format!(
                    "{} ({:.1} s; messages of {})",
                    rate(server_overall),
                    f.server.curve.at(m.rows).unwrap_or(f.server.secs),
                    f.message_rows
                ),
            )
            .baseline(baseline)
            .ratio(ratio_of(server_overall, bare_overall))
            .at_least(
                ratio_of(server_overall, bare_overall),
                IMPORT_RATIO_TARGET,
                format!(">= {IMPORT_RATIO_TARGET:.2}"),
            ),
        );
    } else {
        rows.push(
            error_row(
                title,
                &format!(
                    "FAILED after {} rows committed in {:.1} s: {}",
                    thousands(f.server.committed),
                    f.server.secs,
                    f.server
                        .error
                        .as_deref()
                        .unwrap_or("the stream ended early")
                ),
            )
            .baseline(baseline),
        );
    }
    let first = f.server.first(m);
    let last = f.server.last(m);
    rows.push(
        row(format!("[import] first {seg} rows"), rate(first))
            .baseline(rate(bare.and_then(|b| b.first(m))))
            .ratio(ratio_of(first, bare.and_then(|b| b.first(m)))),
    );
    rows.push(
        row(format!("[import] last {seg} rows"), rate(last))
            .baseline(rate(bare.and_then(|b| b.last(m))))
            .ratio(ratio_of(last, bare.and_then(|b| b.last(m)))),
    );
    let slowdown = f.server.slowdown(m);
    rows.push(
        row(
            format!("[import] time of last {seg} / first {seg}"),
            slowdown.map_or_else(|| "n/a".into(), |s| format!("{s:.2}")),
        )
        .baseline(
            bare.and_then(|b| b.slowdown(m))
                .map_or_else(|| "n/a".into(), |s| format!("bare {s:.2}")),
        )
        .at_most(
            slowdown,
            IMPORT_LINEARITY_TARGET,
            format!("<= {IMPORT_LINEARITY_TARGET:.2}"),
        ),
    );
    if f.server.complete(m)
        && let Some(e) = &f.server.error
    {
        rows.push(error_row(
            "[import] the stream's answer (all rows committed)",
            e,
        ));
    }
    rows
}

fn concurrent(c: &Concurrent) -> String {
    let mut text = format!("{:.0} writes/s, {}", c.writes_per_sec, latency(&c.all));
    if c.errors > 0 {
        let _ = write!(
            text,
            ", {} errors (first: {})",
            c.errors,
            c.first_error.as_deref().unwrap_or("?")
        );
    }
    text
}

fn writers_rows(run: &WritesRun, f: &WritersFigures) -> Vec<Row> {
    let postgres = run.backend == "postgresql";
    let bare = f.bare.as_ref().ok();
    let ratio = bare.and_then(|b| {
        (b.writes_per_sec > 0.0 && f.server.errors == 0)
            .then(|| f.server.writes_per_sec / b.writes_per_sec)
    });
    let title = format!(
        "[writers] {} writers, RecordCost + RecordMeasurement",
        f.writers
    );
    let mut rows = Vec::new();
    let first = row(title, concurrent(&f.server))
        .baseline(match &f.bare {
            Ok(b) => format!("bare 1-row txn: {}", concurrent(b)),
            Err(e) => format!("bare failed: {e}"),
        })
        .ratio(ratio);
    rows.push(if postgres {
        first.at_least(
            ratio,
            WRITERS_RATIO_TARGET_POSTGRES,
            format!(">= {WRITERS_RATIO_TARGET_POSTGRES:.2}"),
        )
    } else {
        first
    });
    let p99 = (f.server.all.count > 0).then_some(f.server.all.p99_ms);
    let second = row(
        "[writers] p99 of every write",
        p99.map_or_else(|| "n/a".into(), |p| format!("{p:.1} ms")),
    )
    .baseline(bare.map_or_else(String::new, |b| format!("{:.1} ms", b.all.p99_ms)))
    .ratio(ratio_of(p99, bare.map(|b| b.all.p99_ms)));
    rows.push(if postgres {
        second
    } else {
        second.at_most(
            p99,
            WRITERS_P99_TARGET_SQLITE_MS,
            format!("<= {WRITERS_P99_TARGET_SQLITE_MS:.0} ms"),
        )
    });
    for (k, (name, bare_name)) in [
        ("RecordCost", "bare_costs"),
        ("RecordMeasurement", "bare_measurements"),
    ]
    .into_iter()
    .enumerate()
    {
        let s = &f.server.by_kind[k];
        rows.push(
            row(
                format!("[writers] {name}"),
                format!("{} calls, {}", s.count, latency(s)),
            )
            .baseline(bare.map_or_else(String::new, |b| {
                format!(
                    "{bare_name}: {} txns, {}",
                    b.by_kind[k].count,
                    latency(&b.by_kind[k])
                )
            })),
        );
    }
    let round_trip = |s: &Stats| format!("p50 {:.3} ms, p99 {:.3} ms", s.p50_ms, s.p99_ms);
    rows.push(match &f.round_trip {
        Ok((hot, spaced)) => row(
            "[writers] a statement's round trip (SELECT 1)",
            format!("{} after 0.1 ms of work", round_trip(spaced)),
        )
        .baseline(format!("back to back: {}", round_trip(hot))),
        Err(e) => row(
            "[writers] a statement's round trip (SELECT 1)",
            format!("failed: {e}"),
        ),
    });
    rows
}

fn kpi_rows(f: &KpiFigures) -> Vec<Row> {
    let ratio = (f.fresh.p50_ms > 0.0).then(|| f.loaded.p50_ms / f.fresh.p50_ms);
    vec![
        row(
            format!(
                "[kpi] load: ImportMeasurements of {} rows",
                thousands(f.measurements)
            ),
            format!(
                "{:.1} s ({:.0} rows/s)",
                f.load_secs,
                f.measurements as f64 / f.load_secs.max(1e-9)
            ),
        ),
        row(
            format!(
                "[kpi] RecordMeasurement, KPI of {} (p50)",
                short(f.measurements)
            ),
            format!("{}, mean {:.2} ms", latency(&f.loaded), f.loaded.mean_ms),
        )
        .baseline(format!(
            "fresh KPI: {}, mean {:.2} ms",
            latency(&f.fresh),
            f.fresh.mean_ms
        ))
        .ratio(ratio)
        .at_most(ratio, KPI_RATIO_TARGET, format!("<= {KPI_RATIO_TARGET:.1}")),
    ]
}

fn event_rows(f: &EventFigures) -> Vec<Row> {
    vec![
        row(
            format!("[events] commit to watcher, {} writes (p50)", f.writes),
            format!(
                "{}, mean {:.2} ms",
                latency(&f.after_answer),
                f.after_answer.mean_ms
            ),
        ),
        row(
            "[events] request to watcher (write included)".to_owned(),
            format!(
                "{}, mean {:.2} ms",
                latency(&f.from_request),
                f.from_request.mean_ms
            ),
        ),
    ]
}

fn webhook_rows(f: &WebhookFigures) -> Vec<Row> {
    vec![
        row(
            format!(
                "[webhooks] deliveries/s, {} writes by {} writers",
                f.writes, f.writers
            ),
            format!(
                "{:.0}/s ({:.2} s to the last delivery)",
                f.deliveries_per_sec(),
                f.deliver_secs
            ),
        )
        .baseline(format!(
            "writes: {:.0}/s ({:.2} s)",
            f.writes_per_sec(),
            f.write_secs
        ))
        .ratio(Some(f.deliveries_per_sec() / f.writes_per_sec().max(1e-9))),
        row(
            "[webhooks] commit to delivery (p50)".to_owned(),
            format!(
                "{}, mean {:.2} ms{}",
                latency(&f.commit_to_delivery),
                f.commit_to_delivery.mean_ms,
                if f.duplicates > 0 {
                    format!(", {} duplicate(s)", f.duplicates)
                } else {
                    String::new()
                }
            ),
        ),
    ]
}

fn rebuild_rows(f: &RebuildFigures) -> Vec<Row> {
    let p = &f.portfolio;
    let size = thousands(p.projects);
    let mut rows = vec![row(
        format!(
            "[rebuild] generation of {size} projects ({} rows)",
            thousands(p.rows.values().sum())
        ),
        format!("{:.1} s", p.people_secs + p.insert_secs),
    )];
    let title = format!("[rebuild] portfolio::rebuild at {size} projects");
    rows.push(match &f.rebuild {
        Ok((secs, n)) => row(title, format!("{secs:.1} s ({n} returned)")).at_most(
            Some(*secs),
            REBUILD_TARGET_SECS,
            format!("< {REBUILD_TARGET_SECS:.0} s"),
        ),
        Err(e) => error_row(title, e),
    });
    rows
}

fn mb(kb: Option<u64>) -> String {
    kb.map_or_else(
        || "n/a".into(),
        |kb| format!("{:.1} MB", kb as f64 / 1024.0),
    )
}

fn csv_rows(f: &CsvFigures) -> Vec<Row> {
    let size = thousands(f.rows);
    vec![
        row(
            format!(
                "[csv] jalon import costs, {size} rows ({:.0} MB file)",
                f.file_bytes as f64 / 1e6
            ),
            format!(
                "{:.0} rows/s ({:.1} s; messages of {}; {} imported, {} duplicates, {} rejected)",
                f.rows_per_sec(),
                f.secs,
                f.batch,
                thousands(f.imported),
                thousands(f.duplicates),
                thousands(f.rejected)
            ),
        ),
        row("[csv] peak RSS of the client (VmHWM)", mb(f.client_peak_kb))
            .ratio(
                f.client_peak_kb
                    .map(|kb| kb as f64 * 1024.0 / (f.file_bytes.max(1) as f64)),
            )
            .baseline("ratio: over the file's size"),
        row("[csv] peak RSS of the server (VmHWM)", mb(f.server_peak_kb))
            .baseline(format!("{} before the import", mb(f.server_before_kb))),
    ]
    .into_iter()
    .chain(f.analyze.map(|(runs, secs)| {
        row(
            "[csv] note: autovacuum off, ANALYZE in its place",
            format!("{runs} times, {secs:.1} s in all"),
        )
    }))
    .collect()
}

/// The table, as printed.
pub fn table(config: &WritesConfig, run: &WritesRun) -> String {
    let mut rows = Vec::new();
    match &run.import {
        Some(Ok(f)) => rows.extend(import_rows(f)),
        Some(Err(e)) => rows.push(error_row("[import]", e)),
        None => {}
    }
    match &run.writers {
        Some(Ok(f)) => rows.extend(writers_rows(run, f)),
        Some(Err(e)) => rows.push(error_row("[writers]", e)),
        None => {}
    }
    match &run.kpi {
        Some(Ok(f)) => rows.extend(kpi_rows(f)),
        Some(Err(e)) => rows.push(error_row("[kpi]", e)),
        None => {}
    }
    match &run.events {
        Some(Ok(f)) => rows.extend(event_rows(f)),
        Some(Err(e)) => rows.push(error_row("[events]", e)),
        None => {}
    }
    match &run.webhooks {
        Some(Ok(f)) => rows.extend(webhook_rows(f)),
        Some(Err(e)) => rows.push(error_row("[webhooks]", e)),
        None => {}
    }
    match &run.rebuild {
        Some(Ok(f)) => rows.extend(rebuild_rows(f)),
        Some(Err(e)) => rows.push(error_row("[rebuild]", e)),
        None => {}
    }
    match &run.csv {
        Some(Ok(f)) => rows.extend(csv_rows(f)),
        Some(Err(e)) => rows.push(error_row("[csv]", e)),
        None => {}
    }
    let columns: [(&str, Cell); 5] = [
        ("measure", |r| &r.measure),
        ("value", |r| &r.value),
        ("baseline", |r| &r.baseline),
        ("ratio", |r| &r.ratio),
        ("target", |r| &r.target),
    ];
    let widths: Vec<usize> = columns
        .iter()
        .map(|(title, f)| {
            rows.iter()
                .map(|r| f(r).chars().count())
                .chain([title.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w.saturating_sub(s.chars().count())));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "jalon-bench --writes: {} ({}, server pool {}), {} cores ({}); import {} rows in messages of {}, bare batches of {}; {} writers, {:.1} s after {:.1} s warm-up; KPI of {} measurements, {} calls after {}; rebuild at {} projects",
        run.backend,
        run.backend_version,
        run.db_connections,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        crate::cpu_model(),
        thousands(config.import_rows),
        config.import_message_rows,
        config.import_batch_rows,
        config.writers,
        config.writers_duration.as_secs_f64(),
        config.writers_warmup.as_secs_f64(),
        thousands(config.kpi_measurements),
        config.kpi_calls,
        config.kpi_warmup,
        thousands(config.rebuild_projects),
    );
    for note in &run.notes {
        let _ = writeln!(out, "note: {note}");
    }
    let header: Vec<String> = columns
        .iter()
        .zip(&widths)
        .map(|((title, _), w)| pad(title, *w))
        .collect();
    let _ = writeln!(out, "{}  result", header.join("  "));
    let _ = writeln!(
        out,
        "{}",
        "-".repeat(widths.iter().sum::<usize>() + 2 * widths.len() + 6)
    );
    for r in &rows {
        let cells: Vec<String> = columns
            .iter()
            .zip(&widths)
            .map(|((_, f), w)| pad(f(r), *w))
            .collect();
        let _ = writeln!(out, "{}  {}", cells.join("  "), r.verdict.text());
    }
    out
}

fn opt3(x: Option<f64>) -> Value {
    x.map_or(Value::Null, |v| json!(round3(v)))
}

fn import_run_json(run: &ImportRun, f: &ImportFigures) -> Value {
    let m = &f.milestones;
    json!({
        "complete": run.complete(m),
        "committed": run.committed,
        "secs": round3(run.secs),
        "rows_per_sec": opt3(run.overall(m)),
        "first_segment_rows_per_sec": opt3(run.first(m)),
        "last_segment_rows_per_sec": opt3(run.last(m)),
        "last_over_first_time": opt3(run.slowdown(m)),
        "error": run.error,
        "accepted_duplicates_rejected": run.counts.map(|(a, d, r)| json!([a, d, r])),
        "curve_rows_secs": run.curve.json(),
    })
}

fn concurrent_json(c: &Concurrent) -> Value {
    json!({
        "writes_per_sec": c.writes_per_sec.round(),
        "latency": c.all.json(),
        "costs": c.by_kind[0].json(),
        "measurements": c.by_kind[1].json(),
        "errors": c.errors,
        "first_error": c.first_error,
    })
}

fn result_json<T>(r: &Option<Result<T, String>>, f: impl Fn(&T) -> Value) -> Value {
    match r {
        None => Value::Null,
        Some(Ok(v)) => f(v),
        Some(Err(e)) => json!({ "error": e }),
    }
}

/// All figures as JSON.
pub fn json(config: &WritesConfig, run: &WritesRun) -> Value {
    json!({
        "mode": "writes",
        "machine": {
            "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
            "cpu": crate::cpu_model(),
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
        },
        "backend": run.backend,
        "backend_version": run.backend_version,
        "server_db_connections": run.db_connections,
        "seed": config.seed,
        "notes": run.notes,
        "import": result_json(&run.import, |f| {
            let m = &f.milestones;
            let server = f.server.overall(m);
            let bare = f.bare.as_ref().ok().and_then(|b| b.overall(m));
            json!({
                "rows": m.rows,
                "projects": crate::writes::IMPORT_PROJECTS,
                "message_rows": f.message_rows,
                "bare_batch_rows": f.batch_rows,
                "segment_rows": m.segment,
                "server": import_run_json(&f.server, f),
                "bare": match &f.bare {
                    Ok(b) => import_run_json(b, f),
                    Err(e) => json!({ "error": e }),
                },
                "server_over_bare": opt3(ratio_of(server, bare)),
                "server_over_bare_target": IMPORT_RATIO_TARGET,
                "last_over_first_target": IMPORT_LINEARITY_TARGET,
            })
        }),
        "writers": result_json(&run.writers, |f| {
            let bare = f.bare.as_ref().ok();
            json!({
                "writers": f.writers,
                "warmup_secs": f.warmup.as_secs_f64(),
                "duration_secs": f.duration.as_secs_f64(),
                "server": concurrent_json(&f.server),
                "bare": match &f.bare {
                    Ok(b) => concurrent_json(b),
                    Err(e) => json!({ "error": e }),
                },
                "server_over_bare": opt3(bare.and_then(|b| ratio_of(Some(f.server.writes_per_sec), Some(b.writes_per_sec)))),
                "statement_round_trip": match &f.round_trip {
                    Ok((hot, spaced)) => json!({ "back_to_back": hot.json(), "after_0_1_ms_of_work": spaced.json() }),
                    Err(e) => json!({ "error": e }),
                },
                "server_over_bare_target_postgres": WRITERS_RATIO_TARGET_POSTGRES,
                "p99_target_sqlite_ms": WRITERS_P99_TARGET_SQLITE_MS,
            })
        }),
        "kpi": result_json(&run.kpi, |f| json!({
            "measurements": f.measurements,
            "load_secs": round3(f.load_secs),
            "calls": f.calls,
            "warmup_calls": config.kpi_warmup,
            "loaded": f.loaded.json(),
            "fresh": f.fresh.json(),
            "p50_ratio": opt3((f.fresh.p50_ms > 0.0).then(|| f.loaded.p50_ms / f.fresh.p50_ms)),
            "mean_ratio": opt3((f.fresh.mean_ms > 0.0).then(|| f.loaded.mean_ms / f.fresh.mean_ms)),
            "target": KPI_RATIO_TARGET,
        })),
        "events": result_json(&run.events, |f| json!({
            "writes": f.writes,
            "commit_to_watcher": f.after_answer.json(),
            "request_to_watcher": f.from_request.json(),
        })),
        "webhooks": result_json(&run.webhooks, |f| json!({
            "writes": f.writes,
            "writers": f.writers,
            "write_secs": round3(f.write_secs),
            "deliver_secs": round3(f.deliver_secs),
            "writes_per_sec": round3(f.writes_per_sec()),
            "deliveries_per_sec": round3(f.deliveries_per_sec()),
            "duplicates": f.duplicates,
            "commit_to_delivery": f.commit_to_delivery.json(),
        })),
        "rebuild": result_json(&run.rebuild, |f| json!({
            "projects": f.portfolio.projects,
            "rows": f.portfolio.rows,
            "generation_secs": round3(f.portfolio.people_secs + f.portfolio.insert_secs),
            "rebuild": match &f.rebuild {
                Ok((secs, n)) => json!({ "secs": round3(*secs), "returned": n }),
                Err(e) => json!({ "error": e }),
            },
            "target_secs": REBUILD_TARGET_SECS,
        })),
        "csv": result_json(&run.csv, |f| json!({
            "rows": f.rows,
            "projects": crate::csv_import::CSV_PROJECTS,
            "file_bytes": f.file_bytes,
            "message_rows": f.batch,
            "generate_secs": round3(f.generate_secs),
            "secs": round3(f.secs),
            "rows_per_sec": round3(f.rows_per_sec()),
            "imported": f.imported,
            "duplicates": f.duplicates,
            "rejected": f.rejected,
            "client_peak_kb": f.client_peak_kb,
            "server_peak_kb": f.server_peak_kb,
            "server_peak_before_import_kb": f.server_before_kb,
            "exit_code": f.exit_code,
            "analyze_runs_secs": f.analyze.map(|(n, s)| json!([n, round3(s)])),
        })),
    })
}
