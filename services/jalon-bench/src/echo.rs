//! The baseline: a bare tonic service of the benchmark's own,
//! `jalon.bench.v1.EchoService/Echo`, which returns its request. It is served
//! by a plain `tonic::transport::Server` with nothing else (no auth, no
//! layers, no database), so the ratio Jalon / echo is what Jalon's stack and
//! work cost on top of tonic itself. Written by hand as tonic's code
//! generator would write it, so that it needs no .proto, no build script and
//! nothing added to the product.

use std::{
    convert::Infallible,
    net::SocketAddr,
    task::{Context, Poll},
};

use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{
    Status,
    codegen::{Body, BoxFuture, Service, StdError, http},
    server::{Grpc, NamedService, UnaryService},
    transport::{Channel, Server, server::TcpIncoming},
};
use tonic_prost::ProstCodec;

use crate::BoxError;

/// The one message, both ways.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoMessage {
    #[prost(string, tag = "1")]
    pub message: String,
}

const SERVICE: &str = "jalon.bench.v1.EchoService";
const ECHO_PATH: &str = "/jalon.bench.v1.EchoService/Echo";

/// The server side.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoServer;

impl NamedService for EchoServer {
    const NAME: &'static str = SERVICE;
}

struct Echo;

impl UnaryService<EchoMessage> for Echo {
    type Response = EchoMessage;
    type Future = BoxFuture<tonic::Response<EchoMessage>, Status>;

    fn call(&mut self, request: tonic::Request<EchoMessage>) -> Self::Future {
        Box::pin(async move { Ok(tonic::Response::new(request.into_inner())) })
    }
}

impl<B> Service<http::Request<B>> for EchoServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() == ECHO_PATH {
            Box::pin(async move {
                let mut grpc = Grpc::new(ProstCodec::<EchoMessage, EchoMessage>::default());
                Ok(grpc.unary(Echo, req).await)
            })
        } else {
            Box::pin(async move { Ok(Status::unimplemented("no such method").into_http()) })
        }
    }
}

/// The client side.
#[derive(Debug, Clone)]
pub struct EchoClient {
    inner: tonic::client::Grpc<Channel>,
}

impl EchoClient {
    pub fn new(channel: Channel) -> Self {
        Self {
            inner: tonic::client::Grpc::new(channel),
        }
    }

    pub async fn echo(&mut self, message: EchoMessage) -> Result<EchoMessage, Status> {
        self.inner
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("the echo service is not ready: {e}")))?;
        let codec = ProstCodec::<EchoMessage, EchoMessage>::default();
        let path = http::uri::PathAndQuery::from_static(ECHO_PATH);
        Ok(self
            .inner
            .unary(tonic::Request::new(message), path, codec)
            .await?
            .into_inner())
    }
}

/// A running echo server.
pub struct EchoHandle {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

/// Serves the echo on 127.0.0.1, on a free port, with tonic's defaults
/// (TCP_NODELAY on accepted connections, as `Server::serve` sets it).
pub async fn serve() -> Result<EchoHandle, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(
        Server::builder()
            .add_service(EchoServer)
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                async {
                    let _ = stopped.await;
                },
            ),
    );
    Ok(EchoHandle { addr, stop, task })
}

impl EchoHandle {
    /// Stops the server and waits for it.
    pub async fn stop(self) -> Result<(), BoxError> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }
}
