//! The one place that decides how long a call may take.
//!
//! - A client-streaming call of the API (`FinanceService/ImportCosts`,
//!   `KpiService/ImportMeasurements`: every method whose request is a stream,
//!   read from the API's descriptors) has no overall limit: it fails with
//!   DEADLINE_EXCEEDED when its client sends nothing for
//!   `server.import_idle_timeout_secs`. A stream of a million rows takes as
//!   long as it takes, a stalled client does not hold a connection forever.
//! - Every other call is cut at `server.request_timeout_secs`, answered
//!   CANCELLED "Timeout expired" (what tonic's own server timeout answers).
//! - The client's `grpc-timeout` bounds every call, streams included: tonic's
//!   server applies it around these layers.

use std::{
    collections::HashSet,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use prost::Message;
use tokio::time::{Instant, Sleep};
use tonic::{Status, body::Body};

/// The setting named by the idle timeout's error.
pub const IDLE_SETTING: &str = "server.import_idle_timeout_secs";

/// `/package.Service/Method` of every client-streaming method of the API.
pub fn client_streaming_paths() -> Result<HashSet<String>, String> {
    let set = prost_types::FileDescriptorSet::decode(jalon_proto::FILE_DESCRIPTOR_SET)
        .map_err(|e| format!("cannot read the API's descriptors: {e}"))?;
    let mut paths = HashSet::new();
    for file in set.file {
        let package = file.package().to_owned();
        for service in file.service {
            for method in &service.method {
                if method.client_streaming() {
                    paths.insert(format!("/{package}.{}/{}", service.name(), method.name()));
                }
            }
        }
    }
    Ok(paths)
}

/// Applies the request timeout to calls and the idle timeout to streams.
#[derive(Clone)]
pub struct TimeoutLayer {
    request: Duration,
    idle: Duration,
    streams: Arc<HashSet<String>>,
}

impl TimeoutLayer {
    pub fn new(request: Duration, idle: Duration) -> Result<Self, String> {
        Ok(Self {
            request,
            idle,
            streams: Arc::new(client_streaming_paths()?),
        })
    }
}

impl<S> tower::Layer<S> for TimeoutLayer {
    type Service = Timeouts<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeouts {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`TimeoutLayer`].
#[derive(Clone)]
pub struct Timeouts<S> {
    inner: S,
    layer: TimeoutLayer,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Timeouts<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<tower::BoxError>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if self.layer.streams.contains(request.uri().path()) {
            let idle = self.layer.idle;
            Box::pin(
                self.inner
                    .call(request.map(|body| Body::new(IdleBody::new(Body::new(body), idle)))),
            )
        } else {
            let limit = self.layer.request;
            let call = self.inner.call(request.map(Body::new));
            Box::pin(async move {
                match tokio::time::timeout(limit, call).await {
                    Ok(answer) => answer,
                    Err(_) => Ok(Status::cancelled("Timeout expired").into_http()),
                }
            })
        }
    }
}

/// A request body that fails with DEADLINE_EXCEEDED when the server has
/// waited `idle` for its next frame. Only the time spent waiting for the
/// client counts: the time the handler spends writing a batch does not.
pub struct IdleBody {
    inner: Body,
    idle: Duration,
    /// Armed while the server waits for the client.
    timer: Pin<Box<Sleep>>,
    waiting: bool,
}

impl IdleBody {
    pub fn new(inner: Body, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            waiting: false,
        }
    }
}

impl HttpBody for IdleBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.waiting = false;
            return Poll::Ready(frame);
        }
        if !this.waiting {
            this.waiting = true;
            this.timer.as_mut().reset(Instant::now() + this.idle);
        }
        if this.timer.as_mut().poll(cx).is_ready() {
            tracing::warn!(
                idle_secs = this.idle.as_secs(),
                "import stream idle: cut by {IDLE_SETTING}"
            );
            return Poll::Ready(Some(Err(Status::deadline_exceeded(format!(
                "the stream sent nothing for {} s ({IDLE_SETTING}); the batches written \
                 before stay written: resend the file, the rows already written come back \
                 as duplicates",
                this.idle.as_secs()
            )))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::{BodyExt, StreamBody};
    use tokio::sync::mpsc;
    use tower::{Layer, Service, ServiceExt};

    use super::*;

    #[test]
    fn the_streamed_imports_are_the_calls_exempt_from_the_request_timeout() {
        let mut paths: Vec<String> = client_streaming_paths()
            .expect("descriptors")
            .into_iter()
            .collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                "/jalon.v1.FinanceService/ImportCosts",
                "/jalon.v1.KpiService/ImportMeasurements"
            ]
        );
    }

    /// Reads the whole body, as a client-streaming handler does, and answers
    /// it back (or the error that ended it).
    async fn echo(request: http::Request<Body>) -> Result<http::Response<Body>, Infallible> {
        Ok(match request.into_body().collect().await {
            Ok(body) => http::Response::new(Body::new(http_body_util::Full::new(body.to_bytes()))),
            Err(status) => status.into_http(),
        })
    }

    type Frames = mpsc::Sender<Result<Frame<Bytes>, Status>>;

    /// A body fed through the returned sender.
    fn body() -> (Frames, Body) {
        let (tx, rx) = mpsc::channel(1);
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        (tx, Body::new(StreamBody::new(stream)))
    }

    async fn call(path: &str, body: Body, request: u64, idle: u64) -> http::Response<Body> {
        let layer = TimeoutLayer::new(Duration::from_millis(request), Duration::from_millis(idle))
            .expect("layer");
        let mut service = layer.layer(tower::service_fn(echo));
        let request = http::Request::builder()
            .uri(path)
            .body(body)
            .expect("request");
        let ready = ServiceExt::<http::Request<Body>>::ready(&mut service).await;
        match ready.expect("ready").call(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    fn grpc_status(response: &http::Response<Body>) -> Option<String> {
        response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    #[tokio::test]
    async fn a_unary_call_is_cut_at_the_request_timeout() {
        let (_open, stalled) = body();
        let response = call("/jalon.v1.PersonService/CreatePerson", stalled, 100, 60_000).await;
        assert_eq!(grpc_status(&response).as_deref(), Some("1"), "CANCELLED");
    }

    #[tokio::test]
    async fn a_stalled_import_fails_with_deadline_exceeded_naming_the_setting() {
        let (_open, stalled) = body();
        let response = call("/jalon.v1.FinanceService/ImportCosts", stalled, 60_000, 100).await;
        assert_eq!(
            grpc_status(&response).as_deref(),
            Some("4"),
            "DEADLINE_EXCEEDED"
        );
        let status = Status::from_header_map(response.headers()).expect("a status");
        assert!(status.message().contains(IDLE_SETTING), "{status:?}");
    }

    #[tokio::test]
    async fn an_import_that_keeps_sending_outlives_the_request_timeout() {
        let (tx, feed) = body();
        tokio::spawn(async move {
            for _ in 0..8 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"x")))).await;
            }
        });
        // 8 frames 50 ms apart: 400 ms in all, never 200 ms without a frame.
        let response = call("/jalon.v1.KpiService/ImportMeasurements", feed, 100, 200).await;
        assert_eq!(grpc_status(&response), None, "no error");
        let body = response.into_body().collect().await.expect("body");
        assert_eq!(body.to_bytes(), Bytes::from_static(b"xxxxxxxx"));
    }
}
