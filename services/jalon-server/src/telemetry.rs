//! Logging: human-readable by default, JSON on request. sqlx and the HTTP
//! stack are kept at WARN so that a line is a decision, not a query.
//!
//! What is logged: ids (organisation, project, person, review), outcomes,
//! gRPC methods and codes, latencies. Never a token, a secret, a password,
//! an e-mail address or a name: tests/e2e/observability.rs captures the log
//! of a whole session and looks for them.

use std::{
    io::{self, IsTerminal},
    sync::{Arc, Mutex, PoisonError},
};

use tracing::Subscriber;
use tracing_subscriber::{EnvFilter, fmt, fmt::MakeWriter, prelude::*};

use crate::config::{LogFormat, LogSettings};

const QUIET: &str = "sqlx=warn,sea_orm=warn,sea_orm_migration=warn,h2=warn,hyper=warn,tower=warn";

/// Installs the global subscriber, writing to stderr (once; later calls are
/// no-ops). `RUST_LOG`, when set, wins over `log.filter`.
pub fn init(settings: &LogSettings) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| settings.filter.clone());
    let ansi = settings.format == LogFormat::Text && io::stderr().is_terminal();
    let _ = subscriber(settings.format, &filter, io::stderr, ansi).try_init();
}

/// Runs `f` with the service's subscriber for `settings` (its format and its
/// filter) writing to `writer`, as the default of this thread only: what
/// other threads log is untouched. Tests use it to read the log.
pub fn scoped<W, T>(settings: &LogSettings, writer: W, f: impl FnOnce() -> T) -> T
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // tracing caches, per call site, whether anyone is interested in it. With
    // a single dispatcher registered it asks only the default of the thread
    // that first reaches the call site: another thread, with no subscriber,
    // would then switch the call site off for this one too. A second
    // (silent) dispatcher, alive as long as ours, makes it ask both, and the
    // thread's own default decides at each event.
    let _companion = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let subscriber = subscriber(settings.format, &settings.filter, writer, false);
    tracing::subscriber::with_default(subscriber, f)
}

/// The subscriber of the service: `filter` (with the noisy crates kept at
/// WARN) and `format`, writing to `writer`.
fn subscriber<W>(
    format: LogFormat,
    filter: &str,
    writer: W,
    ansi: bool,
) -> Box<dyn Subscriber + Send + Sync + 'static>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(format!("{filter},{QUIET}"))
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{QUIET}")));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => Box::new(
            registry.with(
                fmt::layer()
                    .with_target(false)
                    .with_writer(writer)
                    .with_ansi(ansi),
            ),
        ),
        LogFormat::Json => Box::new(
            registry.with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(writer),
            ),
        ),
    }
}

/// An in-memory log, shared by its clones (see [`scoped`]).
#[derive(Debug, Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    /// Everything written so far.
    pub fn contents(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'w> MakeWriter<'w> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'w self) -> Self::Writer {
        self.clone()
    }
}
