//! One driver for the client-streaming imports (`FinanceService/ImportCosts`,
//! `KpiService/ImportMeasurements`): read the messages, check that they all
//! name the same organisation, authorise the caller once on the first one,
//! validate each row, write the rows to the store `server.import_batch_rows`
//! at a time (each batch is one transaction, committed as the stream goes), count what
//! became of them, and report the rows that were not accepted.
//!
//! What a stream of a million rows keeps in memory is one batch and the
//! capped list of results, never a result per row. The stream has no overall
//! time limit: the server cuts it when the client stalls
//! (`server.import_idle_timeout_secs`, see `crate::timeouts`).

use std::{future::Future, time::Instant};

use jalon_core::{Error, Result};
use tokio_stream::StreamExt;
use tonic::{Extensions, Status, Streaming};
use uuid::Uuid;

use super::conversions as conv;
use crate::{auth::Caller, error::OrStatus};

/// Rows read, valid or not, before a batch is written even if it holds
/// fewer than a batch of valid rows, in batches: what waits in memory stays
/// small however many rows are refused.
const MAX_PENDING_BATCHES: usize = 4;
/// Most entries of an import's `results`: the rows not accepted beyond it
/// are only counted (`omitted_results`).
pub const MAX_RESULTS: usize = 10_000;
/// Longest `reason` of a result, in bytes: a reason may quote the row.
pub const MAX_REASON_BYTES: usize = 256;
/// A progress line is logged every this many rows.
pub const PROGRESS_EVERY: u64 = 100_000;

/// How much of the rows not accepted an answer may carry.
#[derive(Debug, Clone, Copy)]
pub struct ImportLimits {
    /// Most result entries.
    pub max_results: usize,
    /// Most bytes of result entries, so that the answer fits in a message.
    pub max_results_bytes: usize,
    /// Valid rows written per transaction.
    pub batch_rows: usize,
}

impl ImportLimits {
    /// [`MAX_RESULTS`] entries, fewer if they would not fit in a message of
    /// `max_message_bytes` (keeping 1 KiB for the counts and framing);
    /// `batch_rows` valid rows per transaction.
    pub fn new(max_message_bytes: usize, batch_rows: usize) -> Self {
        Self {
            max_results: MAX_RESULTS,
            max_results_bytes: max_message_bytes.saturating_sub(1024),
            batch_rows: batch_rows.max(1),
        }
    }
}

/// What the store made of one row.
pub enum Outcome {
    Accepted,
    /// Already there: the existing record's id.
    Duplicate(Uuid),
    Rejected(Error),
}

/// Why a row was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowStatus {
    Duplicate,
    Rejected,
}

/// A row that was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowResult {
    /// Its position in the stream, from 0.
    pub row: i64,
    pub status: RowStatus,
    /// The existing record's id (a duplicate).
    pub id: String,
    /// The field to blame, when one is (rejected).
    pub field: String,
    /// Why it was rejected.
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Rows read.
    pub rows: i64,
    pub accepted: i64,
    pub duplicates: i64,
    pub rejected: i64,
    /// The first rows not accepted, in row order.
    pub results: Vec<RowResult>,
    /// Rows not accepted beyond `results`.
    pub omitted: i64,
    results_bytes: usize,
    full: bool,
}

impl Summary {
    fn report(&mut self, result: RowResult, limits: ImportLimits) {
        // What the entry weighs on the wire, at most: tags, lengths, the row.
        let bytes = 32 + result.id.len() + result.field.len() + result.reason.len();
        if !self.full
            && self.results.len() < limits.max_results
            && self.results_bytes + bytes <= limits.max_results_bytes
        {
            self.results_bytes += bytes;
            self.results.push(result);
        } else {
            // Once one is left out, all that follow are: `results` is always
            // the first rows not accepted.
            self.full = true;
            self.omitted += 1;
        }
    }

    fn duplicate(&mut self, row: i64, id: Uuid, limits: ImportLimits) {
        self.duplicates += 1;
        self.report(
            RowResult {
                row,
                status: RowStatus::Duplicate,
                id: id.to_string(),
                field: String::new(),
                reason: String::new(),
            },
            limits,
        );
    }

    fn reject(&mut self, row: i64, field: String, reason: String, limits: ImportLimits) {
        self.rejected += 1;
        self.report(
            RowResult {
                row,
                status: RowStatus::Rejected,
                id: String::new(),
                field,
                reason: truncate(reason, MAX_REASON_BYTES),
            },
            limits,
        );
    }
}

/// `text` cut to at most `max` bytes, on a character boundary, marked with
/// an ellipsis when cut.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
    text
}

/// The field and the reason of a row the store refused.
fn refusal(e: &Error) -> (String, String) {
    match e {
        Error::InvalidArgument(v) => (
            v.first().map(|x| x.field.clone()).unwrap_or_default(),
            e.to_string(),
        ),
        Error::Internal(cause) => {
            tracing::error!(%cause, "internal error on an imported row");
            (String::new(), "internal error".into())
        }
        _ => (String::new(), e.to_string()),
    }
}

/// One kind of streamed import: its messages, its rows and its store call.
pub trait Import: Sync {
    /// A message of the stream.
    type Message: Send + 'static;
    /// A row as it travels.
    type Wire: Send;
    /// A row validated, ready for the store.
    type Row: Send + Sync;
    /// What authorising the caller gives, for validating and writing rows.
    type Session: Send + Sync;

    /// The `kind` label of `jalon_imported_rows_total`.
    const KIND: &'static str;

    /// The organisation a message names.
    fn organisation_id(message: &Self::Message) -> &str;

    /// The rows a message carries.
    fn rows(message: Self::Message) -> Vec<Self::Wire>;

    /// Authorises the caller on `organisation_id`, once per stream.
    fn open(
        &self,
        caller: &Caller,
        organisation_id: Uuid,
    ) -> impl Future<Output = Result<Self::Session>> + Send;

    /// A row validated, or its bad field and why.
    fn parse(session: &Self::Session, wire: &Self::Wire) -> Result<Self::Row, (String, String)>;

    /// Writes a batch in one transaction: one outcome per row, in order.
    fn write(
        &self,
        session: &Self::Session,
        organisation_id: Uuid,
        rows: &[Self::Row],
    ) -> impl Future<Output = Result<Vec<Outcome>>> + Send;
}

/// Runs an import stream to its end and says what became of its rows.
/// Batches written before an error (a bad message, the idle timeout, a
/// database failure) stay written; the error is the answer.
pub async fn run<I: Import>(
    import: &I,
    caller: &Caller,
    extensions: &Extensions,
    stream: Streaming<I::Message>,
    limits: ImportLimits,
) -> Result<Summary, Status> {
    let started = Instant::now();
    let mut summary = Summary::default();
    let outcome = drive(import, caller, stream, limits, started, &mut summary).await;
    crate::metrics::rows_imported(
        extensions,
        I::KIND,
        summary.accepted,
        summary.duplicates,
        summary.rejected,
    );
    let elapsed = started.elapsed().as_secs_f64();
    match &outcome {
        Ok(()) => tracing::info!(
            kind = I::KIND,
            rows = summary.rows,
            accepted = summary.accepted,
            duplicates = summary.duplicates,
            rejected = summary.rejected,
            omitted_results = summary.omitted,
            elapsed_s = %format_args!("{elapsed:.3}"),
            rows_per_s = %format_args!("{:.0}", rate(summary.rows, elapsed)),
            "import finished"
        ),
        Err(status) => tracing::warn!(
            kind = I::KIND,
            code = ?status.code(),
            rows_read = summary.rows,
            written_accepted = summary.accepted,
            written_duplicates = summary.duplicates,
            written_rejected = summary.rejected,
            elapsed_s = %format_args!("{elapsed:.3}"),
            "import stopped: the batches written so far stay written"
        ),
    }
    outcome.map(|()| summary)
}

/// The rows of one unary call (RecordCosts): validated and written as one
/// batch of a stream (the same parse, the same store call, in one
/// transaction), and answered like a stream.
pub async fn run_rows<I: Import>(
    import: &I,
    session: &I::Session,
    extensions: &Extensions,
    org: Uuid,
    wires: Vec<I::Wire>,
    limits: ImportLimits,
) -> Result<Summary> {
    let mut summary = Summary::default();
    let mut pending: Vec<Pending<I::Row>> = Vec::with_capacity(wires.len());
    for wire in wires {
        pending.push((summary.rows, I::parse(session, &wire)));
        summary.rows += 1;
    }
    flush(import, session, org, &mut pending, &mut summary, limits).await?;
    crate::metrics::rows_imported(
        extensions,
        I::KIND,
        summary.accepted,
        summary.duplicates,
        summary.rejected,
    );
    Ok(summary)
}

fn rate(rows: i64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        rows as f64 / seconds
    } else {
        0.0
    }
}

/// A row read and waiting for its batch: validated, or refused with its
/// field and reason.
type Pending<R> = (i64, Result<R, (String, String)>);

async fn drive<I: Import>(
    import: &I,
    caller: &Caller,
    mut stream: Streaming<I::Message>,
    limits: ImportLimits,
    started: Instant,
    summary: &mut Summary,
) -> Result<(), Status> {
    let Some(first) = stream.next().await.transpose()? else {
        return Err(Error::invalid(
            "organisation_id",
            "an import needs at least one message",
        ))
        .or_status();
    };
    let org = conv::id("organisation_id", I::organisation_id(&first)).or_status()?;
    let session = import.open(caller, org).await.or_status()?;
    let batch = limits.batch_rows.max(1);
    let mut pending: Vec<Pending<I::Row>> = Vec::with_capacity(batch);
    let mut valid = 0usize;
    let mut next_progress = PROGRESS_EVERY;
    let mut next = Some(first);
    while let Some(message) = next {
        if conv::id("organisation_id", I::organisation_id(&message)).or_status()? != org {
            return Err(Error::invalid(
                "organisation_id",
                "must be the same in every message of an import",
            ))
            .or_status();
        }
        for wire in I::rows(message) {
            let parsed = I::parse(&session, &wire);
            valid += usize::from(parsed.is_ok());
            pending.push((summary.rows, parsed));
            summary.rows += 1;
            if valid >= batch || pending.len() >= MAX_PENDING_BATCHES * batch {
                flush(import, &session, org, &mut pending, summary, limits)
                    .await
                    .or_status()?;
                valid = 0;
            }
            if u64::try_from(summary.rows).is_ok_and(|n| n >= next_progress) {
                next_progress += PROGRESS_EVERY;
                let elapsed = started.elapsed().as_secs_f64();
                tracing::info!(
                    kind = I::KIND,
                    rows = summary.rows,
                    accepted = summary.accepted,
                    duplicates = summary.duplicates,
                    rejected = summary.rejected,
                    elapsed_s = %format_args!("{elapsed:.1}"),
                    rows_per_s = %format_args!("{:.0}", rate(summary.rows, elapsed)),
                    "import in progress"
                );
            }
        }
        next = stream.next().await.transpose()?;
    }
    flush(import, &session, org, &mut pending, summary, limits)
        .await
        .or_status()
}

/// Writes the valid rows waiting, in one transaction, and reports every row
/// waiting in row order.
async fn flush<I: Import>(
    import: &I,
    session: &I::Session,
    org: Uuid,
    pending: &mut Vec<Pending<I::Row>>,
    summary: &mut Summary,
    limits: ImportLimits,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let mut rows = Vec::with_capacity(pending.len());
    let mut order = Vec::with_capacity(pending.len());
    for (row, parsed) in pending.drain(..) {
        match parsed {
            Ok(valid) => {
                rows.push(valid);
                order.push((row, None));
            }
            Err(refused) => order.push((row, Some(refused))),
        }
    }
    let outcomes = if rows.is_empty() {
        Vec::new()
    } else {
        import.write(session, org, &rows).await?
    };
    if outcomes.len() != rows.len() {
        return Err(Error::Internal(format!(
            "the store answered {} outcomes for {} rows",
            outcomes.len(),
            rows.len()
        )));
    }
    let mut outcomes = outcomes.into_iter();
    for (row, refused) in order {
        let outcome = match refused {
            Some((field, reason)) => {
                summary.reject(row, field, reason, limits);
                continue;
            }
            None => outcomes.next(),
        };
        match outcome {
            Some(Outcome::Accepted) => summary.accepted += 1,
            Some(Outcome::Duplicate(id)) => summary.duplicate(row, id, limits),
            Some(Outcome::Rejected(e)) => {
                let (field, reason) = refusal(&e);
                summary.reject(row, field, reason, limits);
            }
            None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_results: usize, max_results_bytes: usize) -> ImportLimits {
        ImportLimits {
            max_results,
            max_results_bytes,
            batch_rows: 500,
        }
    }

    #[test]
    fn results_stop_at_the_cap_and_the_rest_is_counted() {
        let mut s = Summary::default();
        let l = limits(3, usize::MAX);
        for row in 0..10 {
            if row % 2 == 0 {
                s.duplicate(row, Uuid::nil(), l);
            } else {
                s.reject(row, "amount".into(), "bad".into(), l);
            }
        }
        assert_eq!((s.duplicates, s.rejected), (5, 5));
        assert_eq!(
            s.results.iter().map(|r| r.row).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(s.omitted, 7);
    }

    #[test]
    fn results_stop_before_the_answer_outgrows_a_message() {
        let mut s = Summary::default();
        let l = limits(MAX_RESULTS, 200);
        s.reject(0, "f".into(), "x".repeat(100), l);
        // Too big to fit: left out, and so are the small ones after it.
        s.reject(1, "f".into(), "x".repeat(100), l);
        s.reject(2, "f".into(), String::new(), l);
        assert_eq!(s.results.len(), 1);
        assert_eq!(s.omitted, 2);
    }

    #[test]
    fn long_reasons_are_cut_on_a_character_boundary() {
        let cut = truncate("é".repeat(300), MAX_REASON_BYTES);
        assert!(cut.len() <= MAX_REASON_BYTES, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert_eq!(truncate("short".into(), MAX_REASON_BYTES), "short");
    }

    #[test]
    fn internal_causes_are_not_reported_to_the_client() {
        let (_, reason) = refusal(&Error::Internal("table costs is locked".into()));
        assert_eq!(reason, "internal error");
    }
}
