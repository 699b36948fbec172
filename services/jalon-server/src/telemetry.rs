//! Logging: human-readable by default, JSON on request. sqlx and the HTTP
//! stack are kept at WARN so that a line is a decision, not a query.
//!
//! What is logged: ids (organisation, project, person, review), outcomes,
//! gRPC methods and codes, latencies. Never a token, a secret, a password,
//! an e-mail address or a name: tests/e2e/observability.rs captures the log
//! of a whole session and looks for them.
//!
//! Traces: every call continues the W3C trace context (`traceparent`,
//! `tracestate`) its caller sent, and its span carries a `trace_id` field, so
//! that log lines can be joined with traces. With `tracing.otlp_endpoint`
//! set, spans are also exported over OTLP/gRPC ([`Traces`]).

use std::{
    io::{self, IsTerminal},
    sync::{Arc, Mutex, PoisonError},
};

use opentelemetry::{
    propagation::{Extractor, TextMapPropagator},
    trace::{TraceContextExt, TraceId, TracerProvider as _},
};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{Sampler, SdkTracerProvider},
};
use tracing::{
    Event, Level, Span, Subscriber,
    field::{Field, Visit},
};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    EnvFilter, Layer, filter::Targets, fmt, fmt::MakeWriter, layer::Context, prelude::*,
    registry::LookupSpan,
};

use crate::config::{LogFormat, LogSettings, TracingSettings};

const QUIET: &str = "sqlx=warn,sea_orm=warn,sea_orm_migration=warn,h2=warn,hyper=warn,tower=warn";

/// Installs the global subscriber, writing to stderr and exporting spans to
/// `traces` when given (once; later calls are no-ops). `RUST_LOG`, when set,
/// wins over `log.filter`.
pub fn init(settings: &LogSettings, traces: Option<&Traces>) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| settings.filter.clone());
    let ansi = settings.format == LogFormat::Text && io::stderr().is_terminal();
    let _ = subscriber(settings.format, &filter, io::stderr, ansi, traces).try_init();
}

/// A fatal error as printed on stderr: with JSON logging, one JSON line
/// shaped as the log's (`timestamp`, `level`, `message`, `target`) so that a
/// log pipeline parses it; otherwise `jalon: message`.
pub fn fatal_line(format: LogFormat, message: &str) -> String {
    match format {
        LogFormat::Json => serde_json::json!({
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "level": "ERROR",
            "message": message,
            "target": "jalon",
            "fatal": true,
        })
        .to_string(),
        LogFormat::Text => format!("jalon: {message}"),
    }
}

/// Where sqlx reports the time each connection took to leave the pool.
const POOL_ACQUIRE_TARGET: &str = "sqlx::pool::acquire";

/// Feeds sqlx's `sqlx::pool::acquire` events (one per connection handed out,
/// with `acquired_after_secs`) into the `jalon_db_pool_acquire_seconds`
/// histogram: how long queries waited for a connection.
struct PoolAcquireLayer;

impl<S: Subscriber> Layer<S> for PoolAcquireLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        struct Seconds(Option<f64>);
        impl Visit for Seconds {
            fn record_f64(&mut self, field: &Field, value: f64) {
                if field.name() == "acquired_after_secs" {
                    self.0 = Some(value);
                }
            }
            fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
        }
        if event.metadata().target() != POOL_ACQUIRE_TARGET {
            return;
        }
        let mut seconds = Seconds(None);
        event.record(&mut seconds);
        if let Some(s) = seconds.0 {
            crate::metrics::POOL_ACQUIRE.observe(s);
        }
    }
}

/// The pool-wait layer with its own filter (only sqlx's acquire events),
/// whatever the log filter.
fn pool_acquire_layer<S>() -> impl Layer<S> + Send + Sync + 'static
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    PoolAcquireLayer.with_filter(Targets::new().with_target(POOL_ACQUIRE_TARGET, Level::TRACE))
}

/// Spans exported over OTLP/gRPC: the tracer provider built from
/// `[tracing]`. Its clones share the provider.
#[derive(Debug, Clone)]
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// The exporter to `tracing.otlp_endpoint`, or None when it is unset.
    /// Call it within a Tokio runtime, which must outlive it: the exporter's
    /// connection (made lazily, at the first export) runs on it.
    pub fn new(settings: &TracingSettings) -> Result<Option<Self>, String> {
        let Some(endpoint) = settings.endpoint() else {
            return Ok(None);
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| format!("tracing.otlp_endpoint ({endpoint}): {e}"))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                settings.sample_ratio,
            ))))
            .with_resource(
                Resource::builder()
                    .with_service_name(settings.service_name.clone())
                    .build(),
            )
            .build();
        Ok(Some(Self { provider }))
    }

    /// Exports the spans ended so far. Blocks: call it off the runtime's
    /// threads (`spawn_blocking`).
    pub fn flush(&self) -> Result<(), String> {
        self.provider.force_flush().map_err(|e| e.to_string())
    }

    /// Exports what is left and stops. Blocks, like [`Traces::flush`].
    pub fn shutdown(&self) -> Result<(), String> {
        self.provider.shutdown().map_err(|e| e.to_string())
    }
}

/// The gRPC metadata (HTTP/2 headers) of a call, read by the propagator.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Makes `span` (a call's, with an empty `trace_id` field) continue the
/// caller's W3C trace context found in `headers`, and records its trace id:
/// the exported span's when traces are exported, else the caller's, if any.
pub fn continue_trace(span: &Span, headers: &http::HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    let remote = parent.span().span_context().trace_id();
    if remote != TraceId::INVALID {
        let _ = span.set_parent(parent);
    }
    let own = span.context().span().span_context().trace_id();
    let trace_id = if own == TraceId::INVALID { remote } else { own };
    if trace_id != TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }
}

/// Runs `f` with the service's subscriber for `settings` (its format and its
/// filter) writing to `writer`, as the default of this thread only: what
/// other threads log is untouched. Tests use it to read the log.
pub fn scoped<W, T>(settings: &LogSettings, writer: W, f: impl FnOnce() -> T) -> T
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    scoped_traced(settings, None, writer, f)
}

/// [`scoped`], also exporting the spans to `traces` when given.
pub fn scoped_traced<W, T>(
    settings: &LogSettings,
    traces: Option<&Traces>,
    writer: W,
    f: impl FnOnce() -> T,
) -> T
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
    let subscriber = subscriber(settings.format, &settings.filter, writer, false, traces);
    tracing::subscriber::with_default(subscriber, f)
}

/// The subscriber of the service: `filter` (with the noisy crates kept at
/// WARN) and `format`, writing to `writer`, and exporting spans to `traces`.
fn subscriber<W>(
    format: LogFormat,
    filter: &str,
    writer: W,
    ansi: bool,
    traces: Option<&Traces>,
) -> Box<dyn Subscriber + Send + Sync + 'static>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // Each layer filters on its own: the log filter keeps sqlx quiet in the
    // log, while the pool-wait layer still sees sqlx's acquire events.
    let log_filter = || {
        EnvFilter::try_new(format!("{filter},{QUIET}"))
            .unwrap_or_else(|_| EnvFilter::new(format!("info,{QUIET}")))
    };
    // The filter wraps the Option: a missing layer (`None`) would otherwise
    // declare an interest in everything and have every span built.
    let otel = traces
        .map(|traces| {
            tracing_opentelemetry::layer()
                .with_tracer(traces.provider.tracer("jalon"))
                .with_tracked_inactivity(false)
        })
        .with_filter(log_filter());
    let registry = tracing_subscriber::registry()
        .with(otel)
        .with(pool_acquire_layer());
    match format {
        LogFormat::Text => Box::new(
            registry.with(
                fmt::layer()
                    .with_target(false)
                    .with_writer(writer)
                    .with_ansi(ansi)
                    .with_filter(log_filter()),
            ),
        ),
        LogFormat::Json => Box::new(
            registry.with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(writer)
                    .with_filter(log_filter()),
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
