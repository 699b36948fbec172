//! Prometheus metrics, served in the Prometheus text format at `/metrics` on
//! their own HTTP port (`metrics.listen`), apart from the gRPC port.
//!
//! - `jalon_grpc_requests_total{service,method,code}`: calls answered, by gRPC
//!   method and the status code the client got (`OK`, `NOT_FOUND`, ...): the
//!   one of the response headers, or of the trailers when the call answered
//!   messages first (a response that fails while being sent, such as one over
//!   the message size limit, counts with its error); a call dropped before
//!   its status was sent (server timeout, client gone) counts as `CANCELLED`;
//! - `jalon_grpc_request_duration_seconds{service,method}`: time to the
//!   response headers, which for a unary call is the time of the handler;
//! - `jalon_grpc_requests_in_flight`: calls being handled now, until their
//!   status is sent;
//! - `jalon_grpc_requests_shed_total{reason}`: calls refused with
//!   RESOURCE_EXHAUSTED before any work, by the bound they hit
//!   (`in_flight_calls`: `server.max_in_flight_calls`, `in_flight_streams`:
//!   `server.max_in_flight_streams`, `caller_rate_limit`: the caller's
//!   `server.caller_rate_limit_per_sec`); they are counted in
//!   `jalon_grpc_requests_total` too, with their code;
//! - `jalon_connections_open`: client connections (HTTP/2 or HTTP/1) open
//!   now; `jalon_connections_idle_closed_total`: connections closed after
//!   `server.idle_connection_timeout_secs` without a call;
//! - `jalon_db_pool_connections`, `jalon_db_pool_idle_connections`,
//!   `jalon_db_pool_max_connections`: the database pool, read at each scrape;
//! - `jalon_db_pool_acquire_seconds`: how long each query or transaction
//!   waited for a connection from the pool (from sqlx's acquire events, see
//!   `telemetry`); a starved pool shows as its upper buckets filling;
//! - `jalon_gate_decisions_total{outcome}`,
//!   `jalon_assessment_answers_total{status}` and
//!   `jalon_imported_rows_total{kind, result}`: domain events;
//! - `jalon_webhook_deliveries_total{outcome}`: webhook delivery attempts by
//!   outcome (`succeeded`, `failed`: to be retried, `gave_up`: the retry
//!   window passed, `gone`: 410, the endpoint disabled, `refused`: the
//!   address is not allowed, `lease_lost`: another replica took over), and
//!   `jalon_webhook_delivery_duration_seconds`: the time of each attempt
//!   that reached the endpoint;
//! - `jalon_webhook_endpoints_disabled_total`: endpoints the service
//!   disabled (410, or failing for `webhooks.disable_after_secs`).
//!
//! Method labels come from the served services' descriptors: any other path
//! counts as `unknown`, so a scanner cannot grow the label set.
//!
//! Each [`Application`](crate::Application) has its own [`Metrics`]: the
//! request layer puts a handle in the request extensions, where the handlers
//! find it to count domain events ([`gate_decided`], [`assessment_answered`]).

use std::{
    collections::HashMap,
    convert::Infallible,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use jalon_core::{assessment::AnswerStatus, gate::Outcome};
use jalon_store::Store;
use prometheus_client::{
    encoding::{EncodeLabelSet, prometheus_text},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use prost::Message;
use sea_orm::DbBackend;
use tokio::{net::TcpListener, sync::watch, task::JoinSet};
use tonic::Code;

/// Upper bounds of the latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// How long a metrics connection may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// On shutdown, how long a scrape being answered may take to finish.
const SCRAPE_DRAIN: Duration = Duration::from_secs(2);

/// A gRPC method, as labelled.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    service: Arc<str>,
    method: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    service: Arc<str>,
    method: Arc<str>,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AnswerLabels {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ImportLabels {
    kind: &'static str,
    result: &'static str,
}

type LatencyFamily = Family<MethodLabels, Histogram, fn() -> Histogram>;

/// Buckets of the pool-wait histogram, in seconds: from a free connection
/// (well under a millisecond) to a starved pool (the acquire timeout).
const ACQUIRE_BUCKETS: [f64; 10] = [
    0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
];

/// The pool-wait histogram: one per process (a process has one pool),
/// shared by every registry.
pub static POOL_ACQUIRE: std::sync::LazyLock<Histogram> =
    std::sync::LazyLock::new(|| Histogram::new(ACQUIRE_BUCKETS));

/// The metrics of one application.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    methods: HashMap<String, MethodLabels>,
    unknown: MethodLabels,
    requests: Family<CallLabels, Counter>,
    latency: LatencyFamily,
    in_flight: Gauge,
    pool_connections: Gauge,
    pool_idle: Gauge,
    pool_max: Gauge,
    gate_decisions: Family<OutcomeLabels, Counter>,
    assessment_answers: Family<AnswerLabels, Counter>,
    imported: Family<ImportLabels, Counter>,
    webhook_deliveries: Family<OutcomeLabels, Counter>,
    webhook_latency: Histogram,
    webhooks_disabled: Counter,
    shed: Family<ReasonLabels, Counter>,
    connections_open: Gauge,
    connections_idle_closed: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Why a call was shed, as labelled.
pub const SHED_REASONS: [&str; 3] = ["in_flight_calls", "in_flight_streams", "caller_rate_limit"];

/// Outcomes of a webhook delivery attempt, as labelled.
pub const WEBHOOK_OUTCOMES: [&str; 6] = [
    "succeeded",
    "failed",
    "gave_up",
    "gone",
    "refused",
    "lease_lost",
];

/// Upper bounds of the webhook latency buckets, in seconds (up to the 15 s
/// timeout).
const WEBHOOK_BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric of the service, at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<CallLabels, Counter>::default();
        registry.register(
            "jalon_grpc_requests",
            "gRPC calls answered, by method and status code",
            requests.clone(),
        );
        let latency: LatencyFamily =
            Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS));
        registry.register(
            "jalon_grpc_request_duration_seconds",
            "Time from a gRPC call's request to its response headers, by method",
            latency.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "jalon_grpc_requests_in_flight",
            "gRPC calls being handled",
            in_flight.clone(),
        );
        let pool_connections = Gauge::default();
        registry.register(
            "jalon_db_pool_connections",
            "Open database connections of the pool, in use or idle",
            pool_connections.clone(),
        );
        let pool_idle = Gauge::default();
        registry.register(
            "jalon_db_pool_idle_connections",
            "Open database connections of the pool not in use",
            pool_idle.clone(),
        );
        let pool_max = Gauge::default();
        registry.register(
            "jalon_db_pool_max_connections",
            "Largest size of the database pool (database.max_connections)",
            pool_max.clone(),
        );
        registry.register(
            "jalon_db_pool_acquire_seconds",
            "Time each query or transaction waited for a database connection",
            POOL_ACQUIRE.clone(),
        );
        let gate_decisions = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "jalon_gate_decisions",
            "Gate reviews decided, by outcome",
            gate_decisions.clone(),
        );
        let assessment_answers = Family::<AnswerLabels, Counter>::default();
        registry.register(
            "jalon_assessment_answers",
            "Assessment items answered, by the status given",
            assessment_answers.clone(),
        );
        let imported = Family::<ImportLabels, Counter>::default();
        registry.register(
            "jalon_imported_rows",
            "Rows of streamed imports (kind: measurement or cost), by result",
            imported.clone(),
        );
        for kind in ["measurement", "cost"] {
            for result in IMPORT_RESULTS {
                let _ = imported.get_or_create(&ImportLabels { kind, result });
            }
        }
        // Every outcome and status is known: export them at zero from the
        // start, so that the first decision shows as an increase.
        for outcome in Outcome::ALL {
            let _ = gate_decisions.get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            });
        }
        for status in AnswerStatus::ALL {
            let _ = assessment_answers.get_or_create(&AnswerLabels {
                status: status.as_str(),
            });
        }
        let webhook_deliveries = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "jalon_webhook_deliveries",
            "Webhook delivery attempts, by outcome",
            webhook_deliveries.clone(),
        );
        for outcome in WEBHOOK_OUTCOMES {
            let _ = webhook_deliveries.get_or_create(&OutcomeLabels { outcome });
        }
        let webhook_latency = Histogram::new(WEBHOOK_BUCKETS);
        registry.register(
            "jalon_webhook_delivery_duration_seconds",
            "Time of each webhook delivery attempt that reached its endpoint",
            webhook_latency.clone(),
        );
        let webhooks_disabled = Counter::default();
        registry.register(
            "jalon_webhook_endpoints_disabled",
            "Webhook endpoints disabled by the service (410 Gone, or failing for too long)",
            webhooks_disabled.clone(),
        );
        let shed = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "jalon_grpc_requests_shed",
            "Calls refused with RESOURCE_EXHAUSTED before any work, by the bound they hit",
            shed.clone(),
        );
        for reason in SHED_REASONS {
            let _ = shed.get_or_create(&ReasonLabels { reason });
        }
        let connections_open = Gauge::default();
        registry.register(
            "jalon_connections_open",
            "Client connections of the gRPC port open now",
            connections_open.clone(),
        );
        let connections_idle_closed = Counter::default();
        registry.register(
            "jalon_connections_idle_closed",
            "Client connections closed after server.idle_connection_timeout_secs without a call",
            connections_idle_closed.clone(),
        );
        Self {
            registry,
            methods: known_methods(),
            unknown: MethodLabels {
                service: Arc::from("unknown"),
                method: Arc::from("unknown"),
            },
            requests,
            latency,
            in_flight,
            pool_connections,
            pool_idle,
            pool_max,
            gate_decisions,
            assessment_answers,
            imported,
            webhook_deliveries,
            webhook_latency,
            webhooks_disabled,
            shed,
            connections_open,
            connections_idle_closed,
        }
    }

    /// Counts a call shed (`reason` among [`SHED_REASONS`]).
    pub fn shed(&self, reason: &'static str) {
        self.shed.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// A client connection was accepted (`open`) or closed.
    pub fn connection(&self, open: bool) {
        if open {
            self.connections_open.inc();
        } else {
            self.connections_open.dec();
        }
    }

    /// Counts a connection closed for being idle.
    pub fn connection_closed_idle(&self) {
        self.connections_idle_closed.inc();
    }

    /// Counts a webhook delivery attempt (`outcome` among
    /// [`WEBHOOK_OUTCOMES`]) and, when it reached the endpoint, its time.
    pub fn webhook_attempted(&self, outcome: &'static str, latency: Option<Duration>) {
        self.webhook_deliveries
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        if let Some(latency) = latency {
            self.webhook_latency.observe(latency.as_secs_f64());
        }
    }

    /// Counts an endpoint the service disabled.
    pub fn webhook_endpoint_disabled(&self) {
        self.webhooks_disabled.inc();
    }

    /// The labels of a request path: a served method, or `unknown`.
    fn method(&self, path: &str) -> MethodLabels {
        self.methods.get(path).unwrap_or(&self.unknown).clone()
    }

    /// Reads the pool's figures into the gauges.
    pub fn observe_pool(&self, store: &Store) {
        let db = store.db();
        let (size, idle, max) = match store.backend() {
            DbBackend::Postgres => {
                let pool = db.get_postgres_connection_pool();
                (
                    pool.size(),
                    pool.num_idle(),
                    pool.options().get_max_connections(),
                )
            }
            DbBackend::Sqlite => {
                let pool = db.get_sqlite_connection_pool();
                (
                    pool.size(),
                    pool.num_idle(),
                    pool.options().get_max_connections(),
                )
            }
            _ => return,
        };
        self.pool_connections.set(i64::from(size));
        self.pool_idle.set(i64::try_from(idle).unwrap_or(i64::MAX));
        self.pool_max.set(i64::from(max));
    }

    /// Every metric, in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::with_capacity(16 * 1024);
        prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// The paths `/package.Service/Method` of every service the server answers:
/// the API, health and reflection.
fn known_methods() -> HashMap<String, MethodLabels> {
    let sets = [
        jalon_proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ];
    let mut methods = HashMap::new();
    for bytes in sets {
        let Ok(set) = prost_types::FileDescriptorSet::decode(bytes) else {
            continue;
        };
        for file in set.file {
            for service in &file.service {
                let full = match file.package() {
                    "" => service.name().to_owned(),
                    package => format!("{package}.{}", service.name()),
                };
                let service_label: Arc<str> = Arc::from(full.as_str());
                for method in &service.method {
                    methods.insert(
                        format!("/{full}/{}", method.name()),
                        MethodLabels {
                            service: service_label.clone(),
                            method: Arc::from(method.name()),
                        },
                    );
                }
            }
        }
    }
    methods
}

/// The canonical name of a gRPC status code.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The status of response headers or trailers: `grpc-status` in the
/// headers for an error (trailers-only), absent for a call that answers
/// messages, whose status is in the trailers.
fn response_code(headers: &http::HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(Code::from_i32)
}

/// The handle the request layer leaves in the request extensions.
#[derive(Clone)]
struct Recorder(Arc<Metrics>);

/// Counts a gate decision, if this server records metrics.
pub fn gate_decided(extensions: &tonic::Extensions, outcome: Outcome) {
    if let Some(Recorder(metrics)) = extensions.get::<Recorder>() {
        metrics
            .gate_decisions
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            })
            .inc();
    }
}

/// Counts a call refused by the caller's rate limit, if this server
/// records metrics.
pub fn rate_limited(extensions: &tonic::Extensions) {
    if let Some(Recorder(metrics)) = extensions.get::<Recorder>() {
        metrics.shed("caller_rate_limit");
    }
}

/// The results of an imported row.
const IMPORT_RESULTS: [&str; 3] = ["accepted", "duplicate", "rejected"];

/// Counts the rows of an import (`kind`: `measurement` or `cost`), if this
/// server records metrics.
pub fn rows_imported(
    extensions: &tonic::Extensions,
    kind: &'static str,
    accepted: i64,
    duplicates: i64,
    rejected: i64,
) {
    if let Some(Recorder(metrics)) = extensions.get::<Recorder>() {
        for (result, n) in IMPORT_RESULTS
            .into_iter()
            .zip([accepted, duplicates, rejected])
        {
            metrics
                .imported
                .get_or_create(&ImportLabels { kind, result })
                .inc_by(u64::try_from(n).unwrap_or(0));
        }
    }
}

/// Counts an assessment answer, if this server records metrics.
pub fn assessment_answered(extensions: &tonic::Extensions, status: AnswerStatus) {
    if let Some(Recorder(metrics)) = extensions.get::<Recorder>() {
        metrics
            .assessment_answers
            .get_or_create(&AnswerLabels {
                status: status.as_str(),
            })
            .inc();
    }
}

/// One call being handled: its latency observed at its response headers,
/// in flight until dropped, then counted with its code (`CANCELLED` when
/// dropped before its status was sent).
struct Call {
    metrics: Arc<Metrics>,
    method: MethodLabels,
    start: Instant,
    timed: bool,
    code: Option<Code>,
}

impl Call {
    fn start(metrics: Arc<Metrics>, path: &str) -> Self {
        metrics.in_flight.inc();
        let method = metrics.method(path);
        Self {
            metrics,
            method,
            start: Instant::now(),
            timed: false,
            code: None,
        }
    }

    /// The response headers are out: the latency of the call.
    fn headers_sent(&mut self) {
        if !self.timed {
            self.timed = true;
            self.metrics
                .latency
                .get_or_create(&self.method)
                .observe(self.start.elapsed().as_secs_f64());
        }
    }

    fn answered(mut self, code: Code) {
        self.code = Some(code);
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.headers_sent();
        let code = code_name(self.code.unwrap_or(Code::Cancelled));
        self.metrics.in_flight.dec();
        self.metrics
            .requests
            .get_or_create(&CallLabels {
                service: self.method.service.clone(),
                method: self.method.method.clone(),
                code,
            })
            .inc();
    }
}

/// Records the request metrics of every call (nothing when `None`).
#[derive(Clone)]
pub struct MetricsLayer {
    metrics: Option<Arc<Metrics>>,
}

impl MetricsLayer {
    pub fn new(metrics: Option<Arc<Metrics>>) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service of [`MetricsLayer`].
#[derive(Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Option<Arc<Metrics>>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for MetricsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: hyper::body::Body + Send + Unpin + 'static,
{
    type Response = http::Response<CallBody<R>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let Some(metrics) = self.metrics.clone() else {
            let response = self.inner.call(request);
            return Box::pin(async move {
                Ok(response.await?.map(|inner| CallBody { inner, call: None }))
            });
        };
        request
            .extensions_mut()
            .insert(Recorder(Arc::clone(&metrics)));
        let mut call = Call::start(metrics, request.uri().path());
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = match response.await {
                Ok(response) => response,
                Err(error) => {
                    call.answered(Code::Unknown);
                    return Err(error);
                }
            };
            call.headers_sent();
            // A trailers-only answer has its status in the headers; a call
            // that answers messages has it in the trailers, read by the body.
            let call = match response_code(response.headers()) {
                Some(code) => {
                    call.answered(code);
                    None
                }
                None => Some(call),
            };
            Ok(response.map(|inner| CallBody { inner, call }))
        })
    }
}

/// A response body that counts its call when the status goes out in the
/// trailers: the code the client gets, even when the response failed after
/// its headers (a message over the size limit).
pub struct CallBody<R> {
    inner: R,
    call: Option<Call>,
}

impl<R: hyper::body::Body + Unpin> hyper::body::Body for CallBody<R> {
    type Data = R::Data;
    type Error = R::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<R::Data>, R::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(response_code)
                    && let Some(call) = this.call.take()
                {
                    call.answered(code);
                }
            }
            // The body failed (the connection is gone): CANCELLED, when
            // the call is dropped.
            Poll::Ready(Some(Err(_))) => drop(this.call.take()),
            // Ended without trailers: nothing said otherwise.
            Poll::Ready(None) => {
                if let Some(call) = this.call.take() {
                    call.answered(Code::Ok);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `/metrics` on `listener` until `shutdown` completes; then stops
/// accepting, lets the scrapes being answered finish (briefly) and returns.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    store: Store,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(());
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics: cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (metrics, store, mut stop) = (metrics.clone(), store.clone(), stop_rx.clone());
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        let response = respond(&metrics, &store, &request);
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let connection = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_READ_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(connection);
                    tokio::select! {
                        _ = connection.as_mut() => {}
                        _ = stop.changed() => {
                            connection.as_mut().graceful_shutdown();
                            let _ = tokio::time::timeout(SCRAPE_DRAIN, connection).await;
                        }
                    }
                });
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(());
    while connections.join_next().await.is_some() {}
}

/// `GET /metrics`: the metrics; anything else: 404 or 405.
fn respond(
    metrics: &Metrics,
    store: &Store,
    request: &http::Request<Incoming>,
) -> http::Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &'static str, body: String| {
        let mut response = http::Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    };
    const PLAIN: &str = "text/plain; charset=utf-8";
    if request.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            PLAIN,
            "not found: see /metrics\n".into(),
        );
    }
    if request.method() != http::Method::GET && request.method() != http::Method::HEAD {
        let mut response = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            PLAIN,
            "method not allowed\n".into(),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    metrics.observe_pool(store);
    match metrics.encode() {
        Ok(text) => reply(StatusCode::OK, prometheus_text::CONTENT_TYPE, text),
        Err(_) => {
            tracing::error!("metrics: cannot encode the registry");
            reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                PLAIN,
                "cannot encode the metrics\n".into(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::{BodyExt, Empty, StreamBody};
    use tower::{Layer, Service, ServiceExt};

    use super::*;

    type TestBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

    /// A trailers-only answer with `status` in its headers, or (`None`) a
    /// message then `trailers` status in the trailers.
    fn grpc_response(status: Option<&'static str>) -> http::Response<TestBody> {
        match status {
            Some(status) => {
                let mut response = http::Response::new(Empty::new().boxed_unsync());
                response
                    .headers_mut()
                    .insert("grpc-status", HeaderValue::from_static(status));
                response
            }
            None => answered_with_trailers("0"),
        }
    }

    fn answered_with_trailers(status: &'static str) -> http::Response<TestBody> {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static(status));
        let frames = vec![
            Ok::<_, Infallible>(hyper::body::Frame::data(Bytes::from_static(b"\0\0\0\0\0"))),
            Ok(hyper::body::Frame::trailers(trailers)),
        ];
        http::Response::new(StreamBody::new(tokio_stream::iter(frames)).boxed_unsync())
    }

    #[tokio::test]
    async fn the_layer_counts_calls_by_method_and_code() {
        let metrics = Arc::new(Metrics::new());
        let mut service = MetricsLayer::new(Some(metrics.clone())).layer(tower::service_fn(
            |request: http::Request<()>| async move {
                assert!(request.extensions().get::<Recorder>().is_some());
                Ok::<_, Infallible>(match request.uri().path() {
                    "/jalon.v1.GateService/DecideGate" => grpc_response(Some("9")),
                    _ => grpc_response(None),
                })
            },
        ));
        for path in [
            "/jalon.v1.GateService/DecideGate",
            "/jalon.v1.ProjectService/GetProject",
            "/jalon.v1.ProjectService/GetProject",
            "/wp-login.php",
        ] {
            let request = http::Request::builder().uri(path).body(()).unwrap();
            let response = service.ready().await.unwrap().call(request).await.unwrap();
            response.into_body().collect().await.unwrap();
        }
        let text = metrics.encode().unwrap();
        assert!(text.contains(
            r#"jalon_grpc_requests_total{service="jalon.v1.GateService",method="DecideGate",code="FAILED_PRECONDITION"} 1"#
        ), "{text}");
        assert!(text.contains(
            r#"jalon_grpc_requests_total{service="jalon.v1.ProjectService",method="GetProject",code="OK"} 2"#
        ), "{text}");
        assert!(
            text.contains(
                r#"jalon_grpc_requests_total{service="unknown",method="unknown",code="OK"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"jalon_grpc_request_duration_seconds_count{service="jalon.v1.ProjectService",method="GetProject"} 2"#
        ), "{text}");
        assert!(text.contains("jalon_grpc_requests_in_flight 0"), "{text}");
        assert!(!text.contains("wp-login"), "{text}");
    }

    #[tokio::test]
    async fn a_call_dropped_before_it_answers_is_cancelled_and_leaves_flight() {
        let metrics = Arc::new(Metrics::new());
        let mut service = MetricsLayer::new(Some(metrics.clone())).layer(tower::service_fn(
            |_: http::Request<()>| {
                std::future::pending::<Result<http::Response<TestBody>, Infallible>>()
            },
        ));
        let request = http::Request::builder()
            .uri("/jalon.v1.AuditService/VerifyAuditLog")
            .body(())
            .unwrap();
        let pending = service.ready().await.unwrap().call(request);
        assert!(
            metrics
                .encode()
                .unwrap()
                .contains("jalon_grpc_requests_in_flight 1")
        );
        drop(pending);
        let text = metrics.encode().unwrap();
        assert!(text.contains("jalon_grpc_requests_in_flight 0"), "{text}");
        assert!(text.contains(
            r#"jalon_grpc_requests_total{service="jalon.v1.AuditService",method="VerifyAuditLog",code="CANCELLED"} 1"#
        ), "{text}");
    }

    #[tokio::test]
    async fn a_status_in_the_trailers_is_counted_when_the_body_ends() {
        let metrics = Arc::new(Metrics::new());
        let mut service = MetricsLayer::new(Some(metrics.clone())).layer(tower::service_fn(
            // Headers of a success, then a failure while sending (a message
            // over the size limit): RESOURCE_EXHAUSTED in the trailers.
            |_: http::Request<()>| async { Ok::<_, Infallible>(answered_with_trailers("8")) },
        ));
        let request = http::Request::builder()
            .uri("/jalon.v1.ProjectService/ListProjects")
            .body(())
            .unwrap();
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        let text = metrics.encode().unwrap();
        assert!(text.contains("jalon_grpc_requests_in_flight 1"), "{text}");
        assert!(text.contains(
            r#"jalon_grpc_request_duration_seconds_count{service="jalon.v1.ProjectService",method="ListProjects"} 1"#
        ), "{text}");
        response.into_body().collect().await.unwrap();
        let text = metrics.encode().unwrap();
        assert!(text.contains("jalon_grpc_requests_in_flight 0"), "{text}");
        assert!(text.contains(
            r#"jalon_grpc_requests_total{service="jalon.v1.ProjectService",method="ListProjects",code="RESOURCE_EXHAUSTED"} 1"#
        ), "{text}");
        assert!(
            !text.contains(r#"method="ListProjects",code="OK""#),
            "{text}"
        );
    }

    #[test]
    fn domain_counters_count_only_with_a_recorder() {
        let metrics = Arc::new(Metrics::new());
        let mut extensions = tonic::Extensions::new();
        gate_decided(&extensions, Outcome::Go);
        extensions.insert(Recorder(metrics.clone()));
        gate_decided(&extensions, Outcome::Go);
        gate_decided(&extensions, Outcome::Kill);
        assessment_answered(&extensions, AnswerStatus::Done);
        let text = metrics.encode().unwrap();
        assert!(
            text.contains(r#"jalon_gate_decisions_total{outcome="GO"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"jalon_gate_decisions_total{outcome="KILL"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"jalon_gate_decisions_total{outcome="HOLD"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"jalon_assessment_answers_total{status="DONE"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"jalon_assessment_answers_total{status="BLOCKED"} 0"#),
            "{text}"
        );
    }

    #[test]
    fn health_reflection_and_the_api_are_known_methods() {
        let metrics = Metrics::new();
        for path in [
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            "/jalon.v1.OrganisationService/CreateOrganisation",
        ] {
            assert_ne!(metrics.method(path), metrics.unknown, "{path}");
        }
        assert_eq!(metrics.method("/jalon.v1.Nope/Nothing"), metrics.unknown);
    }
}
