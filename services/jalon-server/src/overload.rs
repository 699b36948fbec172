//! Bounded resources under overload.
//!
//! - **Load shedding** ([`LoadShedLayer`]): a unary call takes a slot of
//!   `server.max_in_flight_calls`, a long-lived stream (every method whose
//!   request or response is a stream: event watches, streamed imports,
//!   reflection, health watches) one of `server.max_in_flight_streams`, for
//!   as long as its response is being sent. A call that finds its budget
//!   spent is answered `RESOURCE_EXHAUSTED` at once, before any decoding,
//!   authentication or database work, instead of queueing (a queue only
//!   turns overload into memory and latency): the answer carries retry
//!   advice, the `grpc-retry-pushback-ms` trailer that gRPC clients' retry
//!   policies honour and a `google.rpc.RetryInfo` detail, and is counted in
//!   `jalon_grpc_requests_shed_total{reason}`. Health checks
//!   (`grpc.health.v1.Health/Check`) are never shed: an overloaded replica
//!   must not be restarted by its liveness probe.
//! - **Idle connections** ([`TrackedIncoming`]): each accepted connection
//!   counts its open calls; a connection with none for
//!   `server.idle_connection_timeout_secs` is closed. HTTP/2 keepalive PINGs
//!   do not count as activity: a client that only pings is idle.
//! - **Per-caller rate limit** ([`RateLimiter`]), off by default: a token
//!   bucket per token subject (not per peer address, which behind an
//!   ingress is the ingress), applied after authentication.
//!
//! The per-connection stream limit (HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`)
//! and the HTTP/2 keepalive are hyper's, set in `startup`.

use std::{
    collections::{HashMap, HashSet},
    io,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use prost::Message;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::{OwnedSemaphorePermit, Semaphore},
    time::{Instant, Sleep},
};
use tonic::{
    Code, Status,
    body::Body,
    metadata::MetadataValue,
    transport::server::{Connected, TcpConnectInfo},
};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{config::ServerSettings, metrics::Metrics};

/// The trailer (and response header, for a trailers-only answer) that
/// tells a gRPC client how long to wait before retrying (gRFC A6).
pub const PUSHBACK_HEADER: &str = "grpc-retry-pushback-ms";

/// The health check that is never shed.
const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";

/// How long a shed is logged again after the last warning.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// A `RESOURCE_EXHAUSTED` status with retry advice: `message`, a
/// `google.rpc.RetryInfo` detail and the `grpc-retry-pushback-ms` trailer.
pub fn exhausted(message: impl Into<String>, retry_after: Duration) -> Status {
    let mut status = Status::with_error_details(
        Code::ResourceExhausted,
        message,
        ErrorDetails::with_retry_info(Some(retry_after)),
    );
    let millis = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX);
    if let Ok(value) = MetadataValue::try_from(millis.to_string()) {
        status.metadata_mut().insert(PUSHBACK_HEADER, value);
    }
    status
}

/// Which budget a call takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Budget {
    Calls,
    Streams,
    Exempt,
}

/// `/package.Service/Method` of every streaming method the server answers
/// (the API, health and reflection), read from their descriptors.
pub fn streaming_paths() -> Result<HashSet<String>, String> {
    let sets = [
        jalon_proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ];
    let mut paths = HashSet::new();
    for bytes in sets {
        let set = prost_types::FileDescriptorSet::decode(bytes)
            .map_err(|e| format!("cannot read the services' descriptors: {e}"))?;
        for file in set.file {
            for service in &file.service {
                let full = match file.package() {
                    "" => service.name().to_owned(),
                    package => format!("{package}.{}", service.name()),
                };
                for method in &service.method {
                    if method.client_streaming() || method.server_streaming() {
                        paths.insert(format!("/{full}/{}", method.name()));
                    }
                }
            }
        }
    }
    Ok(paths)
}

/// The in-flight budgets of a server, shared by every connection.
#[derive(Clone)]
pub struct LoadShedLayer {
    calls: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    max_calls: usize,
    max_streams: usize,
    retry_after: Duration,
    streaming: Arc<HashSet<String>>,
    metrics: Option<Arc<Metrics>>,
    warned: Arc<Mutex<Option<(Instant, u64)>>>,
}

impl LoadShedLayer {
    pub fn new(server: &ServerSettings, metrics: Option<Arc<Metrics>>) -> Result<Self, String> {
        Ok(Self {
            calls: Arc::new(Semaphore::new(server.max_in_flight_calls)),
            streams: Arc::new(Semaphore::new(server.max_in_flight_streams)),
            max_calls: server.max_in_flight_calls,
            max_streams: server.max_in_flight_streams,
            retry_after: Duration::from_millis(server.shed_retry_after_ms),
            streaming: Arc::new(streaming_paths()?),
            metrics,
            warned: Arc::new(Mutex::new(None)),
        })
    }

    fn budget(&self, path: &str) -> Budget {
        if path == HEALTH_CHECK {
            Budget::Exempt
        } else if self.streaming.contains(path) {
            Budget::Streams
        } else {
            Budget::Calls
        }
    }

    /// A slot of the call's budget, or the answer of a shed call.
    fn admit(&self, path: &str) -> Result<Option<OwnedSemaphorePermit>, Status> {
        let (semaphore, max, reason, setting) = match self.budget(path) {
            Budget::Exempt => return Ok(None),
            Budget::Calls => (
                &self.calls,
                self.max_calls,
                "in_flight_calls",
                "server.max_in_flight_calls",
            ),
            Budget::Streams => (
                &self.streams,
                self.max_streams,
                "in_flight_streams",
                "server.max_in_flight_streams",
            ),
        };
        match semaphore.clone().try_acquire_owned() {
            Ok(permit) => Ok(Some(permit)),
            Err(_) => {
                if let Some(metrics) = &self.metrics {
                    metrics.shed(reason);
                }
                self.warn(reason, max);
                let kind = if reason == "in_flight_calls" {
                    "calls"
                } else {
                    "streams"
                };
                Err(exhausted(
                    format!(
                        "the server is overloaded: {max} {kind} in flight ({setting}); \
                         retry after {} ms",
                        self.retry_after.as_millis()
                    ),
                    self.retry_after,
                ))
            }
        }
    }

    /// Logs shedding at most once per [`WARN_EVERY`], with the count since
    /// the last line: a log line per shed call would add to the overload.
    fn warn(&self, reason: &'static str, max: usize) {
        let mut warned = lock(&self.warned);
        let now = Instant::now();
        match warned.as_mut() {
            Some((at, count)) if now.duration_since(*at) < WARN_EVERY => *count += 1,
            _ => {
                let since = warned.map_or(0, |(_, count)| count);
                tracing::warn!(
                    reason,
                    limit = max,
                    shed_since_last_warning = since,
                    "overloaded: shedding calls with RESOURCE_EXHAUSTED"
                );
                *warned = Some((now, 0));
            }
        }
    }
}

impl<S> tower::Layer<S> for LoadShedLayer {
    type Service = LoadShed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LoadShed {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`LoadShedLayer`].
#[derive(Clone)]
pub struct LoadShed<S> {
    inner: S,
    layer: LoadShedLayer,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for LoadShed<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: HttpBody<Data = Bytes> + Send + 'static,
    R::Error: Into<tower::BoxError>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The connection has a call open from here until its response is
        // sent or dropped.
        let stream = request
            .extensions()
            .get::<ConnectionInfo>()
            .map(|info| info.activity.call_started());
        let permit = match self.layer.admit(request.uri().path()) {
            Ok(permit) => permit,
            Err(status) => {
                drop(stream);
                return Box::pin(std::future::ready(Ok(status.into_http())));
            }
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|inner| {
                Body::new(HeldBody {
                    inner: Body::new(inner),
                    _held: (permit, stream),
                })
            }))
        })
    }
}

/// A response body that holds its call's slot and its connection's
/// activity until it is sent (or dropped).
struct HeldBody {
    inner: Body,
    _held: (Option<OwnedSemaphorePermit>, Option<CallGuard>),
}

impl HttpBody for HeldBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// After bytes arrive on a connection with no call open, how long it is
/// left to turn them into a call before it may be closed as idle: a request
/// read just as the idle timeout expires is served, not dropped.
const ARRIVAL_GRACE: Duration = Duration::from_secs(1);

/// The calls open on one connection, and since when it has had none.
#[derive(Debug)]
pub struct Activity {
    open: AtomicUsize,
    state: Mutex<ActivityState>,
}

#[derive(Debug)]
struct ActivityState {
    /// When the last call ended (or the connection was accepted).
    idle_since: Instant,
    /// The connection's task, woken when its last call ends so that it
    /// arms its idle timer.
    waker: Option<Waker>,
}

impl Activity {
    fn new() -> Self {
        Self {
            open: AtomicUsize::new(0),
            state: Mutex::new(ActivityState {
                idle_since: Instant::now(),
                waker: None,
            }),
        }
    }

    fn call_started(self: &Arc<Self>) -> CallGuard {
        self.open.fetch_add(1, Ordering::SeqCst);
        CallGuard(self.clone())
    }

    fn open_calls(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

/// One open call of a connection, until dropped.
#[derive(Debug)]
struct CallGuard(Arc<Activity>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            let waker = {
                let mut state = lock(&self.0.state);
                state.idle_since = Instant::now();
                state.waker.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

/// What a request knows of its connection (in its extensions): the TCP
/// addresses, as tonic gives them, and the connection's activity.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    pub tcp: TcpConnectInfo,
    activity: Arc<Activity>,
}

/// An accepted connection that closes itself once it has had no call open
/// for the idle timeout: its reads then end (EOF), so the server drops it.
/// It closes only while its client is silent, and not within
/// [`ARRIVAL_GRACE`] of bytes received with no call open.
pub struct TrackedStream {
    inner: TcpStream,
    activity: Arc<Activity>,
    idle_timeout: Duration,
    timer: Pin<Box<Sleep>>,
    /// Bytes arrived while no call was open: not closed before this.
    grace_until: Option<Instant>,
    closed: bool,
    metrics: Option<Arc<Metrics>>,
}

impl TrackedStream {
    pub fn new(inner: TcpStream, idle_timeout: Duration, metrics: Option<Arc<Metrics>>) -> Self {
        if let Some(metrics) = &metrics {
            metrics.connection(true);
        }
        Self {
            inner,
            activity: Arc::new(Activity::new()),
            idle_timeout,
            timer: Box::pin(tokio::time::sleep(idle_timeout)),
            grace_until: None,
            closed: false,
            metrics,
        }
    }

    /// When the connection may be closed as idle, if it has no call open.
    fn idle_deadline(&self) -> Option<Instant> {
        let state = lock(&self.activity.state);
        if self.activity.open_calls() > 0 {
            return None;
        }
        let deadline = state.idle_since + self.idle_timeout;
        Some(match self.grace_until {
            Some(grace) if grace > deadline => grace,
            _ => deadline,
        })
    }
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        if let Some(metrics) = &self.metrics {
            metrics.connection(false);
        }
    }
}

impl Connected for TrackedStream {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        ConnectionInfo {
            tcp: self.inner.connect_info(),
            activity: self.activity.clone(),
        }
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.closed {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && this.activity.open_calls() == 0 {
                    this.grace_until = Some(Instant::now() + ARRIVAL_GRACE);
                }
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {}
        }
        // The client is silent. With a call open, the call's end wakes this
        // task; with none, the idle timer does.
        {
            let mut state = lock(&this.activity.state);
            if this.activity.open_calls() > 0 {
                state.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
        }
        let Some(deadline) = this.idle_deadline() else {
            // A call started in between: its end wakes this task.
            let mut state = lock(&this.activity.state);
            state.waker = Some(cx.waker().clone());
            return Poll::Pending;
        };
        if this.timer.deadline() != deadline {
            this.timer.as_mut().reset(deadline);
        }
        if this.timer.as_mut().poll(cx).is_ready() {
            this.closed = true;
            if let Some(metrics) = &this.metrics {
                metrics.connection_closed_idle();
            }
            tracing::debug!(
                peer = ?this.inner.peer_addr().ok(),
                idle_timeout_secs = this.idle_timeout.as_secs(),
                "closing an idle connection"
            );
            // End of stream: the server closes the connection.
            return Poll::Ready(Ok(()));
        }
        Poll::Pending
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A token bucket per caller (the token's subject): `rate` calls per
/// second sustained, `burst` at once. Buckets that have filled up again are
/// forgotten when the map grows, so its size follows the callers active in
/// the last `burst / rate` seconds.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    retry_floor: Duration,
    buckets: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    by_subject: HashMap<String, Bucket>,
    /// The map is swept of full buckets when it reaches this size.
    sweep_at: usize,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: std::time::Instant,
}

/// The size of the bucket map at which it is first swept.
const FIRST_SWEEP: usize = 1024;

impl RateLimiter {
    /// The limiter of the settings, if `caller_rate_limit_per_sec` is set.
    pub fn from_settings(server: &ServerSettings) -> Option<Self> {
        (server.caller_rate_limit_per_sec > 0).then(|| Self {
            rate: f64::from(server.caller_rate_limit_per_sec),
            burst: f64::from(server.caller_rate_limit_burst.max(1)),
            retry_floor: Duration::from_millis(1),
            buckets: Mutex::new(Buckets {
                by_subject: HashMap::new(),
                sweep_at: FIRST_SWEEP,
            }),
        })
    }

    /// Takes a token of `subject`'s bucket, or says how long until one is
    /// there.
    pub fn check(&self, subject: &str) -> Result<(), Duration> {
        self.check_at(subject, std::time::Instant::now())
    }

    fn check_at(&self, subject: &str, now: std::time::Instant) -> Result<(), Duration> {
        let mut buckets = lock(&self.buckets);
        if buckets.by_subject.len() >= buckets.sweep_at {
            let (rate, burst) = (self.rate, self.burst);
            buckets
                .by_subject
                .retain(|_, bucket| refilled(*bucket, now, rate, burst) < burst);
            buckets.sweep_at = (buckets.by_subject.len() * 2).max(FIRST_SWEEP);
        }
        let bucket = match buckets.by_subject.get_mut(subject) {
            Some(bucket) => bucket,
            None => buckets
                .by_subject
                .entry(subject.to_owned())
                .or_insert(Bucket {
                    tokens: self.burst,
                    at: now,
                }),
        };
        let tokens = refilled(*bucket, now, self.rate, self.burst);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            Ok(())
        } else {
            *bucket = Bucket { tokens, at: now };
            Err(Duration::from_secs_f64((1.0 - tokens) / self.rate).max(self.retry_floor))
        }
    }

    /// The answer of a call over its caller's rate.
    pub fn refusal(&self, retry_after: Duration) -> Status {
        // Whole milliseconds, rounded up: a client that waits that long
        // finds a token.
        let retry_after = Duration::from_millis(
            u64::try_from(retry_after.as_micros().div_ceil(1000)).unwrap_or(u64::MAX),
        );
        exhausted(
            format!(
                "too many calls from this caller: at most {} per second \
                 (server.caller_rate_limit_per_sec), bursts of {} \
                 (server.caller_rate_limit_burst); retry after {} ms",
                self.rate,
                self.burst,
                retry_after.as_millis()
            ),
            retry_after,
        )
    }
}

/// A bucket's tokens at `now`.
fn refilled(bucket: Bucket, now: std::time::Instant, rate: f64, burst: f64) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    (bucket.tokens + elapsed * rate).min(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: u32, burst: u32) -> RateLimiter {
        RateLimiter::from_settings(&ServerSettings {
            caller_rate_limit_per_sec: rate,
            caller_rate_limit_burst: burst,
            ..ServerSettings::default()
        })
        .expect("a limiter")
    }

    #[test]
    fn the_rate_limit_is_off_by_default() {
        assert!(RateLimiter::from_settings(&ServerSettings::default()).is_none());
    }

    #[test]
    fn each_caller_has_its_own_bucket() {
        let limiter = limiter(2, 3);
        let t0 = std::time::Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check_at("ada", t0), Ok(()));
        }
        let wait = limiter.check_at("ada", t0).expect_err("over the burst");
        assert_eq!(wait, Duration::from_millis(500), "a token every 500 ms");
        // Another subject is not affected.
        assert_eq!(limiter.check_at("bob", t0), Ok(()));
        // Half a second later, one token is back (2 per second).
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(limiter.check_at("ada", t1), Ok(()));
        assert!(limiter.check_at("ada", t1).is_err());
        // A long pause refills the bucket up to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(limiter.check_at("ada", t2), Ok(()));
        }
        assert!(limiter.check_at("ada", t2).is_err());
    }

    #[test]
    fn full_buckets_are_forgotten_when_the_map_grows() {
        let limiter = limiter(1000, 1);
        let t0 = std::time::Instant::now();
        for n in 0..FIRST_SWEEP {
            assert_eq!(limiter.check_at(&format!("caller-{n}"), t0), Ok(()));
        }
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(limiter.check_at("one-more", t1), Ok(()));
        let buckets = lock(&limiter.buckets);
        assert_eq!(buckets.by_subject.len(), 1, "swept, then one-more added");
    }

    #[test]
    fn a_refusal_carries_retry_advice() {
        let status = limiter(1, 1).refusal(Duration::from_micros(1500));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            status
                .metadata()
                .get(PUSHBACK_HEADER)
                .and_then(|v| v.to_str().ok()),
            Some("2")
        );
        let details = status.get_error_details();
        assert_eq!(
            details.retry_info().and_then(|r| r.retry_delay),
            Some(Duration::from_millis(2))
        );
        assert!(
            status
                .message()
                .contains("server.caller_rate_limit_per_sec")
        );
    }

    #[test]
    fn streams_have_their_own_budget_and_health_checks_none() {
        let layer = LoadShedLayer::new(&ServerSettings::default(), None).expect("layer");
        assert_eq!(
            layer.budget("/jalon.v1.EventService/WatchEvents"),
            Budget::Streams
        );
        assert_eq!(
            layer.budget("/jalon.v1.FinanceService/ImportCosts"),
            Budget::Streams
        );
        assert_eq!(
            layer.budget("/jalon.v1.ProjectService/GetProject"),
            Budget::Calls
        );
        assert_eq!(layer.budget("/no.Such/Path"), Budget::Calls);
        assert_eq!(layer.budget(HEALTH_CHECK), Budget::Exempt);
        assert_eq!(
            layer.budget("/grpc.health.v1.Health/Watch"),
            Budget::Streams
        );
    }

    #[test]
    fn a_spent_budget_sheds_with_retry_advice_and_frees_with_the_call() {
        let settings = ServerSettings {
            max_in_flight_calls: 1,
            shed_retry_after_ms: 250,
            ..ServerSettings::default()
        };
        let metrics = Arc::new(Metrics::new());
        let layer = LoadShedLayer::new(&settings, Some(metrics.clone())).expect("layer");
        let held = layer
            .admit("/jalon.v1.ProjectService/GetProject")
            .expect("admitted");
        let status = layer
            .admit("/jalon.v1.ProjectService/ListProjects")
            .expect_err("shed");
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(
            status.message().contains("server.max_in_flight_calls"),
            "{status:?}"
        );
        assert_eq!(
            status
                .get_error_details()
                .retry_info()
                .and_then(|r| r.retry_delay),
            Some(Duration::from_millis(250))
        );
        // Streams are not affected.
        assert!(layer.admit("/jalon.v1.EventService/WatchEvents").is_ok());
        drop(held);
        assert!(layer.admit("/jalon.v1.ProjectService/GetProject").is_ok());
        let text = metrics.encode().expect("encoded");
        assert!(
            text.contains("jalon_grpc_requests_shed_total{reason=\"in_flight_calls\"} 1"),
            "{text}"
        );
    }
}
