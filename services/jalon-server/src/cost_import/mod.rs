//! `jalon import costs FILE.csv`: a cost file streamed through
//! `FinanceService/ImportCosts`, for finance teams.
//!
//! The file is read as it is sent, never held whole: a reader thread
//! parses the CSV (see [`columns`] for the two layouts it recognises) into
//! messages of `--batch` rows, and the sender streams them, opening a new
//! `ImportCosts` stream every [`STREAM_ROWS`] rows (so that every row the
//! server does not accept is listed in its answer, whose list stops at
//! 10,000 entries). Only the current stream's rows are kept (their line
//! numbers and values, to write the rejects file). A re-run changes
//! nothing: each row carries its source and external_ref, and rows already
//! posted come back as duplicates.

pub mod columns;

use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufRead, BufReader, IsTerminal, Read, Write},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use jalon_proto::v1::{
    self as pb, finance_service_client::FinanceServiceClient,
    organisation_service_client::OrganisationServiceClient,
};
use rust_decimal::Decimal;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{
    Code, Request, Status,
    metadata::{Ascii, MetadataValue},
    transport::{Certificate, Channel, ClientTlsConfig},
};

use self::columns::{Layout, Refusal};

/// Rows of one `ImportCosts` stream: the server lists at most 10,000 rows
/// not accepted per answer.
pub const STREAM_ROWS: usize = 10_000;
/// The default rows per message.
pub const DEFAULT_BATCH: usize = 500;
/// The most rows per message (the server's message limit is 4 MiB by
/// default; a row is a few hundred bytes).
pub const MAX_BATCH: usize = 5_000;
/// Exit status when the import completed but rows were rejected (2 is
/// clap's, for a bad command line).
pub const EXIT_REJECTED: u8 = 3;

/// What to import, where.
#[derive(Debug, Clone)]
pub struct CostsImport {
    pub file: PathBuf,
    pub server: String,
    /// An organisation id, or its slug.
    pub organisation: String,
    pub source: String,
    pub token: String,
    /// Default: `<FILE>.rejects.csv` beside the file.
    pub rejects: Option<PathBuf>,
    pub batch: usize,
    /// The certificate authority of an https:// server, when not public.
    pub ca_file: Option<PathBuf>,
}

/// What became of the file.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub rows: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// Rows the server did not accept and did not list (beyond its cap).
    pub unlisted: u64,
    pub accepted_total: BTreeMap<String, Decimal>,
    pub rejected_total: BTreeMap<String, Decimal>,
    pub secs: f64,
    pub rejects_file: PathBuf,
    pub layout: &'static str,
    pub streams: u64,
}

impl Summary {
    pub fn rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.secs.max(1e-9)
    }

    /// The summary printed at the end (stdout).
    pub fn text(&self, file: &Path) -> String {
        let totals = |m: &BTreeMap<String, Decimal>| {
            if m.is_empty() {
                String::new()
            } else {
                let parts: Vec<String> = m.iter().map(|(c, a)| format!("{c} {a}")).collect();
                format!("   {}", parts.join(", "))
            }
        };
        let mut out = format!(
            "{}: {} rows ({}) in {:.1} s, {:.0} rows/s, {} stream(s)\n",
            file.display(),
            self.rows,
            self.layout,
            self.secs,
            self.rows_per_sec(),
            self.streams
        );
        out.push_str(&format!(
            "  imported   {:>10}{}\n",
            self.accepted,
            totals(&self.accepted_total)
        ));
        out.push_str(&format!("  duplicates {:>10}\n", self.duplicates));
        out.push_str(&format!(
            "  rejected   {:>10}{}\n",
            self.rejected,
            totals(&self.rejected_total)
        ));
        if self.unlisted > 0 {
            out.push_str(&format!(
                "  ({} rows not accepted were not listed by the server: not in the rejects file)\n",
                self.unlisted
            ));
        }
        out.push_str(&format!(
            "  rejected rows: {}\n",
            self.rejects_file.display()
        ));
        out
    }
}

/// An `ImportCosts` call in progress: where its messages go, and its
/// answer to come.
type OpenStream = (
    mpsc::Sender<pb::ImportCostsRequest>,
    tokio::task::JoinHandle<Result<tonic::Response<pb::ImportCostsResponse>, Status>>,
);

/// A row read from the file.
struct Row {
    /// Line of the file where the record starts (the header is line 1).
    line: u64,
    values: Vec<String>,
    parsed: Result<columns::ParsedRow, Refusal>,
}

/// What the reader thread sends.
enum FromReader {
    Rows(Vec<Row>),
    /// Bytes of the file read so far.
    Progress(u64),
}

/// The default rejects file: `costs.csv` -> `costs.rejects.csv`.
pub fn default_rejects(file: &Path) -> PathBuf {
    let stem = file
        .file_stem()
        .map_or_else(|| "costs".to_owned(), |s| s.to_string_lossy().into_owned());
    file.with_file_name(format!("{stem}.rejects.csv"))
}

/// The field delimiter: `,`, `;` or a tab, whichever the header line
/// holds most of (outside quotes).
fn sniff_delimiter(first_line: &[u8]) -> u8 {
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for &b in first_line {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted {
            for (d, n) in counts.iter_mut() {
                if b == *d {
                    *n += 1;
                }
            }
        }
    }
    counts
        .iter()
        .max_by_key(|(_, n)| *n)
        .filter(|(_, n)| *n > 0)
        .map_or(b',', |(d, _)| *d)
}

fn bearer(token: &str) -> Result<MetadataValue<Ascii>, String> {
    let token = token.trim();
    let token = token.strip_prefix("Bearer ").unwrap_or(token);
    format!("Bearer {token}")
        .parse()
        .map_err(|_| "the token holds characters a header cannot carry".to_owned())
}

fn authed<T>(auth: &MetadataValue<Ascii>, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", auth.clone());
    request
}

/// A status for people: its code and message.
fn status_text(s: &Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

/// Connects, checks the organisation and the source, and imports the
/// file. Progress goes to stderr; the caller prints the summary.
pub async fn run(import: CostsImport) -> Result<Summary, String> {
    let started = Instant::now();
    if import.batch == 0 || import.batch > MAX_BATCH {
        return Err(format!("--batch must be 1 to {MAX_BATCH}"));
    }
    if import.token.trim().is_empty() {
        return Err("a token is needed: --token or JALON_TOKEN".into());
    }
    let auth = bearer(&import.token)?;
    let file = File::open(&import.file)
        .map_err(|e| format!("cannot read {}: {e}", import.file.display()))?;
    let file_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut input = BufReader::with_capacity(256 * 1024, file);
    let delimiter = sniff_delimiter(
        input
            .fill_buf()
            .map_err(|e| format!("cannot read {}: {e}", import.file.display()))?
            .split(|b| *b == b'\n')
            .next()
            .unwrap_or_default(),
    );
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(input);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| format!("cannot read the header of {}: {e}", import.file.display()))?
        .iter()
        .map(str::to_owned)
        .collect();
    let layout = Layout::from_header(&header.iter().map(String::as_str).collect::<Vec<_>>())
        .map_err(|e| format!("{}: {e}", import.file.display()))?;

    let channel = connect(&import.server, import.ca_file.as_deref()).await?;
    let organisation_id = resolve_organisation(&channel, &auth, &import.organisation).await?;
    let currency = OrganisationServiceClient::new(channel.clone())
        .get_organisation(authed(
            &auth,
            pb::GetOrganisationRequest {
                id: organisation_id.clone(),
            },
        ))
        .await
        .map_err(|s| format!("organisation {}: {}", import.organisation, status_text(&s)))?
        .into_inner()
        .organisation
        .map(|o| o.default_currency)
        .unwrap_or_default();
    let mut finance = FinanceServiceClient::new(channel)
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024);
    check_source(&mut finance, &auth, &organisation_id, &import.source).await?;

    let rejects_path = import
        .rejects
        .clone()
        .unwrap_or_else(|| default_rejects(&import.file));
    let mut rejects = csv::Writer::from_path(&rejects_path)
        .map_err(|e| format!("cannot write {}: {e}", rejects_path.display()))?;
    let mut rejects_header = vec![
        "rejected_line".to_owned(),
        "rejected_field".to_owned(),
        "rejected_reason".to_owned(),
    ];
    rejects_header.extend(
        header
            .iter()
            .filter(|h| !h.to_ascii_lowercase().starts_with(columns::REJECTED_PREFIX))
            .cloned(),
    );
    let kept_columns: Vec<usize> = header
        .iter()
        .enumerate()
        .filter(|(_, h)| !h.to_ascii_lowercase().starts_with(columns::REJECTED_PREFIX))
        .map(|(i, _)| i)
        .collect();
    rejects
        .write_record(&rejects_header)
        .map_err(|e| format!("cannot write {}: {e}", rejects_path.display()))?;

    // The reader: a thread of its own (csv reads synchronously), a few
    // messages ahead of the sender.
    let (tx, mut rx) = mpsc::channel::<FromReader>(4);
    let reader_layout = layout.clone();
    let source = import.source.clone();
    let batch = import.batch;
    let reader_task = tokio::task::spawn_blocking(move || {
        read_rows(&mut reader, &reader_layout, &source, &currency, batch, &tx)
    });

    let mut summary = Summary {
        rejects_file: rejects_path.clone(),
        layout: layout.name(),
        ..Default::default()
    };
    let mut progress = Progress::new(file_bytes);
    let mut pending: Vec<Row> = Vec::new();
    let mut done = false;
    while !done {
        // One stream: up to STREAM_ROWS rows sent (rows refused here are
        // written to the rejects file without being sent).
        // The call is opened with the stream's first message.
        let mut call: Option<OpenStream> = None;
        let mut sent: Vec<Row> = Vec::new();
        let mut local: Vec<Row> = Vec::new();
        while sent.len() < STREAM_ROWS {
            let rows = if pending.is_empty() {
                match rx.recv().await {
                    Some(FromReader::Rows(rows)) => rows,
                    Some(FromReader::Progress(bytes)) => {
                        progress.bytes = bytes;
                        continue;
                    }
                    None => {
                        done = true;
                        break;
                    }
                }
            } else {
                std::mem::take(&mut pending)
            };
            let room = STREAM_ROWS - sent.len();
            let mut rows = rows;
            if rows.len() > room {
                pending = rows.split_off(room);
            }
            let mut costs = Vec::with_capacity(rows.len());
            for row in rows {
                summary.rows += 1;
                match &row.parsed {
                    Ok(p) => {
                        costs.push(p.cost.clone());
                        sent.push(row);
                    }
                    Err(_) => local.push(row),
                }
            }
            if !costs.is_empty() {
                let (msg_tx, _) = call.get_or_insert_with(|| {
                    let (msg_tx, msg_rx) = mpsc::channel::<pb::ImportCostsRequest>(2);
                    let mut client = finance.clone();
                    let call_auth = auth.clone();
                    let handle = tokio::spawn(async move {
                        client
                            .import_costs(authed(&call_auth, ReceiverStream::new(msg_rx)))
                            .await
                    });
                    (msg_tx, handle)
                });
                let message = pb::ImportCostsRequest {
                    organisation_id: organisation_id.clone(),
                    costs,
                };
                if msg_tx.send(message).await.is_err() {
                    // The call ended early: its status says why.
                    break;
                }
            }
            progress.tick(&summary, sent.len() as u64);
        }
        let first_line = sent.first().or(local.first()).map_or(0, |r| r.line);
        let last_line = sent.iter().chain(&local).map(|r| r.line).max().unwrap_or(0);
        let answer = match call {
            // Nothing was sent: no stream was opened.
            None => pb::ImportCostsResponse::default(),
            Some((msg_tx, handle)) => {
                drop(msg_tx);
                summary.streams += 1;
                match handle.await {
                    Ok(Ok(response)) => response.into_inner(),
                    Ok(Err(status)) => {
                        let _ = rejects.flush();
                        return Err(stream_error(&status, first_line, last_line, &summary));
                    }
                    Err(e) => return Err(format!("the import call failed: {e}")),
                }
            }
        };
        settle(
            &layout,
            &kept_columns,
            sent,
            local,
            &answer,
            &mut summary,
            &mut rejects,
        )
        .map_err(|e| format!("cannot write {}: {e}", rejects_path.display()))?;
        progress.streams_done(&summary);
    }
    rejects
        .flush()
        .map_err(|e| format!("cannot write {}: {e}", rejects_path.display()))?;
    match reader_task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("{}: {e}", import.file.display())),
        Err(e) => return Err(format!("the reader failed: {e}")),
    }
    progress.finish();
    summary.secs = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// What to say when a stream fails: what was written stays written.
fn stream_error(status: &Status, first: u64, last: u64, summary: &Summary) -> String {
    let hint = match status.code() {
        Code::Unauthenticated => " (check the token: --token or JALON_TOKEN)",
        Code::PermissionDenied => {
            " (importing costs needs the role ADMIN, DIRECTOR or INTEGRATION, or a MEMBER for the projects they lead)"
        }
        _ => "",
    };
    format!(
        "the import stream of lines {first} to {last} failed: {}{hint}. The {} rows answered before it are written; batches of that stream the server committed before the failure stay written too: run the same command again, rows already written come back as duplicates",
        status_text(status),
        summary.accepted + summary.duplicates + summary.rejected
    )
}

/// Counts a stream's answer and writes its rejected rows (those refused
/// here and those the server refused) to the rejects file, in line order.
fn settle(
    layout: &Layout,
    kept_columns: &[usize],
    sent: Vec<Row>,
    local: Vec<Row>,
    answer: &pb::ImportCostsResponse,
    summary: &mut Summary,
    rejects: &mut csv::Writer<File>,
) -> Result<(), csv::Error> {
    let mut status_of: Vec<Option<&pb::ImportCostResult>> = vec![None; sent.len()];
    for r in &answer.results {
        if let Some(slot) = usize::try_from(r.row)
            .ok()
            .and_then(|i| status_of.get_mut(i))
        {
            *slot = Some(r);
        }
    }
    summary.accepted += u64::try_from(answer.accepted).unwrap_or(0);
    summary.duplicates += u64::try_from(answer.duplicates).unwrap_or(0);
    summary.rejected += u64::try_from(answer.rejected).unwrap_or(0) + local.len() as u64;
    summary.unlisted += u64::try_from(answer.omitted_results).unwrap_or(0);
    let add = |m: &mut BTreeMap<String, Decimal>, row: &Row| {
        if let Ok(columns::ParsedRow {
            total: Some((currency, amount)),
            ..
        }) = &row.parsed
        {
            *m.entry(currency.clone()).or_default() += *amount;
        }
    };
    // (line, field, reason, row)
    let mut out: Vec<(u64, String, String, &Row)> = Vec::new();
    for row in &local {
        if let Err(refusal) = &row.parsed {
            out.push((
                row.line,
                refusal.column.clone(),
                refusal.reason.clone(),
                row,
            ));
        }
    }
    for (i, row) in sent.iter().enumerate() {
        match status_of[i] {
            None => {
                // Not listed: accepted, unless the server left it out of
                // its list (then it is counted, not known).
                if answer.omitted_results == 0 {
                    add(&mut summary.accepted_total, row);
                }
            }
            Some(r) if r.status == pb::ImportCostStatus::Duplicate as i32 => {}
            Some(r) => {
                add(&mut summary.rejected_total, row);
                let field = if r.field.is_empty() {
                    String::new()
                } else {
                    layout.column_of(&r.field)
                };
                out.push((row.line, field, r.reason.clone(), row));
            }
        }
    }
    out.sort_by_key(|(line, ..)| *line);
    for (line, field, reason, row) in out {
        let mut record = vec![line.to_string(), field, reason];
        record.extend(
            kept_columns
                .iter()
                .map(|&i| row.values.get(i).cloned().unwrap_or_default()),
        );
        rejects.write_record(&record)?;
    }
    rejects.flush()?;
    Ok(())
}

/// The reader thread: records to rows, `batch` at a time.
fn read_rows<R: Read>(
    reader: &mut csv::Reader<R>,
    layout: &Layout,
    source: &str,
    currency: &str,
    batch: usize,
    tx: &mpsc::Sender<FromReader>,
) -> Result<(), String> {
    let mut rows = Vec::with_capacity(batch);
    let mut record = csv::StringRecord::new();
    let mut last_progress = Instant::now();
    loop {
        let line = reader.position().line();
        let row = match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(line, |p| p.line());
                let values: Vec<&str> = record.iter().collect();
                Row {
                    line,
                    values: record.iter().map(str::to_owned).collect(),
                    parsed: layout.parse(&values, source, currency),
                }
            }
            Err(e) => {
                let (line, reason) = match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        pos,
                        expected_len,
                        len,
                    } => (
                        pos.as_ref().map_or(line, |p| p.line()),
                        format!("has {len} fields, the header {expected_len}"),
                    ),
                    csv::ErrorKind::Utf8 { pos, .. } => (
                        pos.as_ref().map_or(line, |p| p.line()),
                        "is not UTF-8 text".to_owned(),
                    ),
                    csv::ErrorKind::Io(e) => return Err(format!("read error: {e}")),
                    _ => (line, e.to_string()),
                };
                Row {
                    line,
                    values: Vec::new(),
                    parsed: Err(Refusal {
                        column: String::new(),
                        reason: format!("the line {reason}"),
                    }),
                }
            }
        };
        rows.push(row);
        if rows.len() >= batch {
            let full = std::mem::replace(&mut rows, Vec::with_capacity(batch));
            if tx.blocking_send(FromReader::Rows(full)).is_err() {
                // The sender stopped (an error): nothing more to read.
                return Ok(());
            }
            if last_progress.elapsed() >= Duration::from_millis(200) {
                last_progress = Instant::now();
                let _ = tx.blocking_send(FromReader::Progress(reader.position().byte()));
            }
        }
    }
    let _ = tx.blocking_send(FromReader::Progress(reader.position().byte()));
    if !rows.is_empty() {
        let _ = tx.blocking_send(FromReader::Rows(rows));
    }
    Ok(())
}

/// A channel to `server` (`http://` or `https://`; a bare `host:port` is
/// `http://`).
async fn connect(server: &str, ca_file: Option<&Path>) -> Result<Channel, String> {
    let url = if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    };
    let mut endpoint = Channel::from_shared(url.clone())
        .map_err(|e| format!("--server {server:?} is not a URL: {e}"))?
        .connect_timeout(Duration::from_secs(10));
    if url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().with_webpki_roots();
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read --ca-file {}: {e}", path.display()))?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| format!("--server {server}: {e}"))?;
    } else if ca_file.is_some() {
        return Err("--ca-file is for an https:// server".into());
    }
    endpoint
        .connect()
        .await
        .map_err(|e| format!("cannot reach the server at {url}: {e}"))
}

/// An id as it is, or the id of the caller's organisation with this slug.
async fn resolve_organisation(
    channel: &Channel,
    auth: &MetadataValue<Ascii>,
    organisation: &str,
) -> Result<String, String> {
    if uuid::Uuid::parse_str(organisation).is_ok() {
        return Ok(organisation.to_owned());
    }
    let mut client = OrganisationServiceClient::new(channel.clone());
    let mut page_token = String::new();
    loop {
        let page = client
            .list_organisations(authed(
                auth,
                pb::ListOrganisationsRequest {
                    page_size: 500,
                    page_token: page_token.clone(),
                    show_deleted: false,
                },
            ))
            .await
            .map_err(|s| format!("cannot list organisations: {}", status_text(&s)))?
            .into_inner();
        if let Some(o) = page.organisations.iter().find(|o| o.slug == organisation) {
            return Ok(o.id.clone());
        }
        if page.next_page_token.is_empty() {
            return Err(format!(
                "--organisation {organisation:?}: no organisation of yours has this id or slug"
            ));
        }
        page_token = page.next_page_token;
    }
}

/// Refuses an unregistered source before the file is read (every row
/// would be rejected). Callers who may not list sources go on: each row is
/// judged by the server anyway.
async fn check_source(
    finance: &mut FinanceServiceClient<Channel>,
    auth: &MetadataValue<Ascii>,
    organisation_id: &str,
    source: &str,
) -> Result<(), String> {
    let listed = finance
        .list_cost_sources(authed(
            auth,
            pb::ListCostSourcesRequest {
                organisation_id: organisation_id.to_owned(),
            },
        ))
        .await;
    match listed {
        Ok(r) => {
            let names: Vec<String> = r.into_inner().sources.into_iter().map(|s| s.name).collect();
            if names.iter().any(|n| n == source) {
                Ok(())
            } else {
                Err(format!(
                    "--source {source:?} is not registered in the organisation (registered: {}); an ADMIN or DIRECTOR registers it with FinanceService/CreateCostSource",
                    names.join(", ")
                ))
            }
        }
        Err(s) if s.code() == Code::PermissionDenied => Ok(()),
        Err(s) => Err(format!("cannot list the cost sources: {}", status_text(&s))),
    }
}

/// Progress on stderr: a line rewritten in place on a terminal, a line
/// every 5 seconds otherwise.
struct Progress {
    started: Instant,
    last: Instant,
    every: Duration,
    tty: bool,
    file_bytes: u64,
    bytes: u64,
    answered: u64,
}

impl Progress {
    fn new(file_bytes: u64) -> Self {
        let tty = std::io::stderr().is_terminal();
        Self {
            started: Instant::now(),
            last: Instant::now(),
            every: if tty {
                Duration::from_millis(250)
            } else {
                Duration::from_secs(5)
            },
            tty,
            file_bytes,
            bytes: 0,
            answered: 0,
        }
    }

    fn line(&self, summary: &Summary, in_flight: u64) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let percent = if self.file_bytes > 0 {
            (self.bytes as f64 * 100.0 / self.file_bytes as f64).min(100.0)
        } else {
            0.0
        };
        let width = 24usize;
        let filled = ((percent / 100.0) * width as f64) as usize;
        format!(
            "jalon: [{}{}] {percent:5.1}% {} rows read, {} answered ({} rejected), {} in flight, {:.0} rows/s",
            "#".repeat(filled),
            "-".repeat(width - filled),
            summary.rows,
            self.answered,
            summary.rejected,
            in_flight,
            summary.rows as f64 / secs
        )
    }

    fn tick(&mut self, summary: &Summary, in_flight: u64) {
        if self.last.elapsed() < self.every {
            return;
        }
        self.last = Instant::now();
        let line = self.line(summary, in_flight);
        let mut err = std::io::stderr();
        if self.tty {
            let _ = write!(err, "\r{line}\x1b[K");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    fn streams_done(&mut self, summary: &Summary) {
        self.answered = summary.accepted + summary.duplicates + summary.rejected;
    }

    fn finish(&mut self) {
        if self.tty {
            let _ = writeln!(std::io::stderr());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_are_sniffed_from_the_header() {
        assert_eq!(sniff_delimiter(b"external_ref;amount;\"a,b\""), b';');
        assert_eq!(sniff_delimiter(b"external_ref,amount"), b',');
        assert_eq!(sniff_delimiter(b"a\tb\tc"), b'\t');
        assert_eq!(sniff_delimiter(b"single"), b',');
    }

    #[test]
    fn rejects_go_beside_the_file() {
        assert_eq!(
            default_rejects(Path::new("/data/costs.csv")),
            PathBuf::from("/data/costs.rejects.csv")
        );
    }
}
