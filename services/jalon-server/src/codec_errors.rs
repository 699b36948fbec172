//! What tonic's codec answers to a request it cannot read, in gRPC's and
//! AIP-193's words, without the decoder's internals:
//!
//! - a body that is not a message of the method's request type (random or
//!   truncated bytes, a bad frame, a string field that is not UTF-8, a bad
//!   gRPC-Web body): `INVALID_ARGUMENT` instead of `INTERNAL` (tonic follows
//!   gRPC's status-code table there, but the fault is the caller's, and a
//!   retry of the same bytes can never succeed); a field tonic names is
//!   returned as a `google.rpc.BadRequest` violation;
//! - a request or a response over `server.max_message_bytes`:
//!   `RESOURCE_EXHAUSTED` instead of `OUT_OF_RANGE`, as gRPC's own
//!   implementations answer.
//!
//! The status is rewritten where the client reads it: in the headers of a
//! trailers-only answer, or in the trailers (a response too large to encode
//! is only found after its headers went out as a success). The layer sits
//! inside gRPC-Web, the request log and the metrics, so all of them see the
//! rewritten code.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::HeaderMap;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tonic::{Code, Status, body::Body};
use tonic_types::{ErrorDetails, StatusExt};

/// Rewrites the codec's statuses of every call.
#[derive(Clone, Copy, Debug, Default)]
pub struct CodecErrorLayer;

impl<S> tower::Layer<S> for CodecErrorLayer {
    type Service = CodecErrors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CodecErrors { inner }
    }
}

/// The service of [`CodecErrorLayer`].
#[derive(Clone, Debug)]
pub struct CodecErrors<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for CodecErrors<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            rewrite(response.headers_mut());
            Ok(response.map(|body| Body::new(RewrittenBody { inner: body })))
        })
    }
}

/// A response body whose trailers are rewritten.
struct RewrittenBody {
    inner: Body,
}

impl HttpBody for RewrittenBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(mut frame))) => {
                if let Some(trailers) = frame.trailers_mut() {
                    rewrite(trailers);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Replaces a codec status in `headers` (response headers or trailers) by
/// the one the caller should get; leaves any other status alone.
fn rewrite(headers: &mut HeaderMap) {
    let Some(status) = Status::from_header_map(headers) else {
        return;
    };
    let Some(replacement) = replacement(&status) else {
        return;
    };
    tracing::debug!(
        codec_code = ?status.code(),
        codec_message = status.message(),
        code = ?replacement.code(),
        "request refused by the codec"
    );
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        headers.remove(name);
    }
    if replacement.add_header(headers).is_err() {
        // The replacement's details could not be encoded: the code and the
        // message alone.
        let _ = Status::new(replacement.code(), replacement.message()).add_header(headers);
    }
}

/// The prefix of prost's decode errors, as tonic reports them.
const DECODE_PREFIX: &str = "failed to decode Protobuf message: ";

/// The status the caller should get instead of `status`, when `status` is
/// one of the codec's.
fn replacement(status: &Status) -> Option<Status> {
    let message = status.message();
    match status.code() {
        Code::Internal => {
            if let Some(detail) = message.strip_prefix(DECODE_PREFIX) {
                return Some(undecodable(detail));
            }
            let framing = [
                "protocol error: received message with",
                "Unexpected EOF decoding stream",
                "Missing request message",
                "Error decompressing",
                "tonic-web: ",
            ];
            framing.iter().any(|p| message.starts_with(p)).then(|| {
                Status::invalid_argument(
                    "malformed request: the body is not a sequence of gRPC messages \
                     (a truncated, empty or badly framed body)",
                )
            })
        }
        Code::OutOfRange => {
            let (direction, sizes) = if let Some(rest) =
                message.strip_prefix("Error, decoded message length too large: ")
            {
                ("request", rest)
            } else if let Some(rest) =
                message.strip_prefix("Error, encoded message length too large: ")
            {
                ("response", rest)
            } else {
                return None;
            };
            let (found, limit) = sizes_of(sizes);
            let advice = if direction == "request" {
                "send a smaller message (split an import in more messages)"
            } else {
                "ask for less (a smaller page_size or a narrower filter)"
            };
            Some(Status::resource_exhausted(match (found, limit) {
                (Some(found), Some(limit)) => format!(
                    "the {direction} message is {found} bytes, over the limit of {limit} bytes \
                     (server.max_message_bytes): {advice}"
                ),
                _ => format!(
                    "the {direction} message is over the limit (server.max_message_bytes): \
                     {advice}"
                ),
            }))
        }
        _ => None,
    }
}

/// The sizes of tonic's message "found N bytes, the limit is: M bytes".
fn sizes_of(text: &str) -> (Option<u64>, Option<u64>) {
    let numbers: Vec<u64> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    (numbers.first().copied(), numbers.get(1).copied())
}

/// `INVALID_ARGUMENT` for a body prost cannot decode. prost's error reads
/// `Inner.field: Outer.field: what went wrong`: the field path, when there
/// is one, is returned as a field violation (`project.name`), with what is
/// wrong in the caller's words; the wire details stay in the debug log.
fn undecodable(detail: &str) -> Status {
    let mut path = Vec::new();
    let mut rest = detail;
    while let Some((head, tail)) = rest.split_once(": ") {
        match head.rsplit_once('.') {
            Some((message, field))
                if !message.is_empty()
                    && !field.is_empty()
                    && head
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') =>
            {
                path.push(field);
                rest = tail;
            }
            _ => break,
        }
    }
    let what = if rest.contains("UTF-8") {
        "is not valid UTF-8"
    } else {
        "is malformed (truncated, or not of the field's type)"
    };
    path.reverse();
    if path.is_empty() {
        return Status::invalid_argument(
            "malformed request: the body is not a valid message of this method's request type",
        );
    }
    let field = path.join(".");
    let mut details = ErrorDetails::new();
    details.add_bad_request_violation(field.clone(), what);
    Status::with_error_details(
        Code::InvalidArgument,
        format!("malformed request: {field} {what}"),
        details,
    )
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use tower::{Layer, Service, ServiceExt};

    use super::*;

    fn headers_of(status: &Status) -> HeaderMap {
        let mut headers = HeaderMap::new();
        status.add_header(&mut headers).expect("headers");
        headers
    }

    fn rewritten(status: Status) -> Status {
        let mut headers = headers_of(&status);
        rewrite(&mut headers);
        Status::from_header_map(&headers).expect("a status")
    }

    #[test]
    fn undecodable_bodies_are_invalid_arguments_without_the_decoders_words() {
        for message in [
            "failed to decode Protobuf message: invalid wire type value: 7",
            "failed to decode Protobuf message: buffer underflow",
            "protocol error: received message with invalid compression flag: 8 (valid flags are 0 and 1), while sending request",
            "protocol error: received message with compressed-flag but no grpc-encoding was specified",
            "Unexpected EOF decoding stream.",
            "Missing request message.",
            "tonic-web: malformed base64 request",
        ] {
            let status = rewritten(Status::internal(message));
            assert_eq!(status.code(), Code::InvalidArgument, "{message}");
            let text = status.message().to_lowercase();
            for internal in ["protobuf", "wire type", "underflow", "tonic", "flag"] {
                assert!(!text.contains(internal), "{message} -> {text}");
            }
        }
    }

    #[test]
    fn a_field_prost_names_is_a_field_violation() {
        let status = rewritten(Status::internal(
            "failed to decode Protobuf message: Project.name: CreateProjectRequest.project: \
             invalid string value: data is not UTF-8 encoded",
        ));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "malformed request: project.name is not valid UTF-8"
        );
        let details = status.get_error_details();
        let bad = details.bad_request().expect("field violations");
        assert_eq!(bad.field_violations[0].field, "project.name");
    }

    #[test]
    fn messages_over_the_limit_exhaust_a_resource() {
        let status = rewritten(Status::out_of_range(
            "Error, decoded message length too large: found 5000 bytes, the limit is: 4096 bytes",
        ));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(
            status.message().contains("request message is 5000 bytes")
                && status.message().contains("limit of 4096 bytes"),
            "{}",
            status.message()
        );
        let status = rewritten(Status::out_of_range(
            "Error, encoded message length too large: found 9000 bytes, the limit is: 4096 bytes",
        ));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(
            status.message().contains("page_size"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn other_statuses_are_left_alone() {
        for status in [
            Status::internal("internal error"),
            Status::out_of_range("month must be 1 to 12"),
            Status::invalid_argument("failed to decode Protobuf message: x"),
            Status::ok(""),
        ] {
            let after = rewritten(status.clone());
            assert_eq!(
                (after.code(), after.message()),
                (status.code(), status.message())
            );
        }
    }

    #[tokio::test]
    async fn statuses_in_headers_and_in_trailers_are_rewritten() {
        let mut service =
            CodecErrorLayer.layer(tower::service_fn(|request: http::Request<()>| async move {
                let decode =
                    Status::internal("failed to decode Protobuf message: buffer underflow");
                if request.uri().path() == "/headers" {
                    return Ok::<_, std::convert::Infallible>(decode.into_http());
                }
                // A success whose message turned out too large to encode.
                let trailers = headers_of(&Status::out_of_range(
                    "Error, encoded message length too large: found 9 bytes, the limit is: 4 bytes",
                ));
                let frames = vec![Ok::<_, Status>(Frame::trailers(trailers))];
                Ok(http::Response::new(Body::new(
                    http_body_util::StreamBody::new(tokio_stream::iter(frames)),
                )))
            }));
        let request = http::Request::builder().uri("/headers").body(()).unwrap();
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        let status = Status::from_header_map(response.headers()).expect("a status");
        assert_eq!(status.code(), Code::InvalidArgument);

        let request = http::Request::builder().uri("/trailers").body(()).unwrap();
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        assert!(Status::from_header_map(response.headers()).is_none());
        let trailers = response
            .into_body()
            .collect()
            .await
            .expect("the body")
            .trailers()
            .cloned()
            .expect("trailers");
        let status = Status::from_header_map(&trailers).expect("a status");
        assert_eq!(status.code(), Code::ResourceExhausted);
    }
}
