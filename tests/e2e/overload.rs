//! Bounded resources under overload, against the real server: calls beyond
//! the in-flight budget are shed with RESOURCE_EXHAUSTED and retry advice
//! (counted in the metrics) while long-lived streams have a budget of their
//! own and health checks are never shed; a connection with no call is
//! closed after the idle timeout while one with an open stream is not; the
//! per-caller rate limit, when enabled, holds each token subject to its own
//! bucket. Another organisation's data stays invisible throughout.

use std::time::Duration;

use jalon_proto::v1 as pb;
use jalon_server::overload::PUSHBACK_HEADER;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::mpsc,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
use tonic_types::StatusExt;

use crate::{
    helpers::*,
    kpis::callbot,
    observability::{sample, scrape},
};

/// A unary call left in flight: a raw HTTP/1.1 gRPC-Web `GetProject` whose
/// body never comes. It holds its slot until the socket is dropped.
async fn hold_a_call(app: &TestApp) -> TcpStream {
    let mut socket = TcpStream::connect(app.addr).await.expect("connect");
    let head = format!(
        "POST /jalon.v1.ProjectService/GetProject HTTP/1.1\r\nHost: jalon\r\n\
         Content-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\n\
         Authorization: Bearer {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        token("dina")
    );
    socket.write_all(head.as_bytes()).await.expect("write head");
    socket
}

/// Waits until the server has `n` calls in flight (its metrics say so).
async fn until_in_flight(app: &TestApp, n: u32) {
    let series = "jalon_grpc_requests_in_flight";
    for _ in 0..200 {
        if sample(&scrape(app).await, series) == Some(f64::from(n)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the server never had {n} calls in flight");
}

fn shed(reason: &str) -> String {
    format!(r#"jalon_grpc_requests_shed_total{{reason="{reason}"}}"#)
}

/// The retry advice of a RESOURCE_EXHAUSTED answer: the pushback trailer
/// and the RetryInfo detail, in milliseconds.
fn retry_advice(status: &Status) -> (Option<u64>, Option<u128>) {
    let pushback = status
        .metadata()
        .get(PUSHBACK_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let retry_info = status
        .get_error_details()
        .retry_info()
        .and_then(|r| r.retry_delay)
        .map(|d| d.as_millis());
    (pushback, retry_info)
}

fn get_project(org: &str, id: &str) -> pb::GetProjectRequest {
    pb::GetProjectRequest {
        organisation_id: org.into(),
        id: id.into(),
    }
}

#[tokio::test]
async fn calls_beyond_the_in_flight_limit_are_shed_with_retry_advice_and_counted() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| {
            s.server.max_in_flight_calls = 2;
            s.server.max_in_flight_streams = 1;
            s.server.shed_retry_after_ms = 300;
        })
        .await;
        let c = callbot(&app).await;
        let (globex, _) = app.create_org("globex", "gus").await;

        // Two unary calls in flight: the budget of calls is spent.
        let held = [hold_a_call(&app).await, hold_a_call(&app).await];
        until_in_flight(&app, 2).await;

        // A stream still opens: streams have a budget of their own.
        let (feed, rows) = mpsc::channel::<pb::ImportCostsRequest>(1);
        let finance = app.finance();
        let import = tokio::spawn(async move {
            let mut finance = finance;
            finance
                .import_costs(authed("erp", ReceiverStream::new(rows)))
                .await
        });
        until_in_flight(&app, 3).await;

        // The next unary call is shed at once, with retry advice...
        let status = expect_code(
            app.projects()
                .get_project(authed("dina", get_project(&c.org, &c.project)))
                .await,
            Code::ResourceExhausted,
        );
        assert!(
            status.message().contains("server.max_in_flight_calls"),
            "{status:?}"
        );
        assert_eq!(retry_advice(&status), (Some(300), Some(300)));
        // ... before authentication: an anonymous call gets the same.
        let anonymous = app
            .projects()
            .get_project(get_project(&c.org, &c.project))
            .await;
        expect_code(anonymous, Code::ResourceExhausted);

        // A second stream is shed from the streams' budget.
        let watch = app
            .events()
            .watch_events(authed(
                "dina",
                pb::WatchEventsRequest {
                    organisation_id: c.org.clone(),
                    ..Default::default()
                },
            ))
            .await;
        let status = expect_code(watch, Code::ResourceExhausted);
        assert!(
            status.message().contains("server.max_in_flight_streams"),
            "{status:?}"
        );
        assert_eq!(retry_advice(&status), (Some(300), Some(300)));

        // Health checks are never shed: the replica is not restarted by
        // its probe for being busy.
        let health = tonic_health::pb::health_client::HealthClient::new(app.channel.clone())
            .check(HealthCheckRequest::default())
            .await
            .expect("health check")
            .into_inner();
        assert_eq!(health.status, ServingStatus::Serving as i32);

        let text = scrape(&app).await;
        assert_eq!(sample(&text, &shed("in_flight_calls")), Some(2.0), "{text}");
        assert_eq!(
            sample(&text, &shed("in_flight_streams")),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, &shed("caller_rate_limit")),
            Some(0.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                r#"jalon_grpc_requests_total{service="jalon.v1.ProjectService",method="GetProject",code="RESOURCE_EXHAUSTED"}"#
            ),
            Some(2.0),
            "{text}"
        );

        // The held calls go (their clients leave): their slots are free
        // again, and the server answers as before.
        drop(held);
        drop(feed);
        // The import was served, not shed (it ends as an import without
        // rows does, whatever that answer is).
        if let Err(status) = import.await.expect("import task") {
            assert_ne!(status.code(), Code::ResourceExhausted, "{status:?}");
        }
        until_in_flight(&app, 0).await;
        let project = app
            .projects()
            .get_project(authed("dina", get_project(&c.org, &c.project)))
            .await
            .expect("served once the load is gone")
            .into_inner()
            .project
            .expect("project");
        assert_eq!(project.id, c.project);
        // Another organisation's project stays invisible.
        expect_code(
            app.projects()
                .get_project(authed("gus", get_project(&globex.id, &c.project)))
                .await,
            Code::NotFound,
        );
        app.cleanup().await;
    }
}

/// HTTP/2's connection preface and an empty SETTINGS frame: a client that
/// connects and then makes no call.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Reads until the server closes the connection; false if it is still
/// open after `wait`.
async fn closed_within(socket: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(wait, async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_timeout_but_not_one_with_an_open_stream() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| {
            s.server.idle_connection_timeout_secs = 1;
            s.events.heartbeat_secs = 1;
        })
        .await;
        let c = callbot(&app).await;

        // HTTP/2 and HTTP/1.1 connections that make no call are closed.
        let mut h2 = TcpStream::connect(app.addr).await.expect("connect");
        h2.write_all(H2_PREFACE).await.expect("preface");
        let mut h1 = TcpStream::connect(app.addr).await.expect("connect");
        assert!(
            closed_within(&mut h2, Duration::from_secs(15)).await,
            "an idle HTTP/2 connection stays open"
        );
        assert!(
            closed_within(&mut h1, Duration::from_secs(15)).await,
            "an idle connection stays open"
        );
        let text = scrape(&app).await;
        let closed = sample(&text, "jalon_connections_idle_closed_total").unwrap_or(0.0);
        assert!(closed >= 2.0, "{text}");

        // A connection whose stream is open is not idle: a watch on a
        // connection of its own keeps receiving heartbeats for three idle
        // timeouts.
        let channel = Channel::from_shared(format!("http://{}", app.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        let mut watch = pb::event_service_client::EventServiceClient::new(channel)
            .watch_events(authed(
                "dina",
                pb::WatchEventsRequest {
                    organisation_id: c.org.clone(),
                    ..Default::default()
                },
            ))
            .await
            .expect("watch")
            .into_inner();
        let until = tokio::time::Instant::now() + Duration::from_secs(3);
        let mut heartbeats = 0;
        while tokio::time::Instant::now() < until {
            let message = tokio::time::timeout(Duration::from_secs(5), watch.message())
                .await
                .expect("a message within 5 s")
                .expect("the stream is alive")
                .expect("the stream is open");
            if let Some(pb::watch_events_response::Kind::Heartbeat(_)) = message.kind {
                heartbeats += 1;
            }
        }
        assert!(heartbeats >= 2, "{heartbeats} heartbeats");
        drop(watch);

        // A client whose idle connection was closed simply reconnects: the
        // shared channel, idle since the setup, still works.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut answered = None;
        for _ in 0..3 {
            match app
                .projects()
                .get_project(authed("dina", get_project(&c.org, &c.project)))
                .await
            {
                Ok(response) => {
                    answered = response.into_inner().project;
                    break;
                }
                // The connection's close may still be on its way.
                Err(status) if status.code() == Code::Unavailable => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(status) => panic!("{status:?}"),
            }
        }
        assert_eq!(answered.map(|p| p.id), Some(c.project.clone()));
        app.cleanup().await;
    }
}

#[tokio::test]
async fn the_rate_limit_holds_each_caller_to_its_own_bucket_when_enabled() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| {
            s.server.caller_rate_limit_per_sec = 2;
            // The setup makes four calls in a row as alice.
            s.server.caller_rate_limit_burst = 5;
        })
        .await;
        let c = callbot(&app).await;
        let (globex, _) = app.create_org("globex", "gus").await;
        // The setup's calls spent some of their callers' tokens: wait for
        // the buckets to fill again (5 tokens at 2 per second).
        tokio::time::sleep(Duration::from_millis(2600)).await;

        let list = |who: &'static str, org: String| {
            let mut projects = app.projects();
            async move {
                projects
                    .list_projects(authed(
                        who,
                        pb::ListProjectsRequest {
                            organisation_id: org,
                            ..Default::default()
                        },
                    ))
                    .await
            }
        };
        // A burst of five, then refused with retry advice.
        for _ in 0..5 {
            let page = list("dina", c.org.clone()).await.expect("within the burst");
            assert_eq!(page.into_inner().projects.len(), 1);
        }
        let status = expect_code(list("dina", c.org.clone()).await, Code::ResourceExhausted);
        assert!(
            status
                .message()
                .contains("server.caller_rate_limit_per_sec"),
            "{status:?}"
        );
        let (pushback, retry_info) = retry_advice(&status);
        let wait = pushback.expect("pushback trailer");
        assert!((1..=500).contains(&wait), "{wait} ms at 2 calls per second");
        assert_eq!(retry_info, Some(u128::from(wait)));

        // Another caller, from the same address, has its own bucket; and
        // sees only its own organisation's projects.
        let page = list("gus", globex.id.clone())
            .await
            .expect("gus's bucket is full");
        assert!(page.into_inner().projects.is_empty());
        expect_code(
            app.projects()
                .get_project(authed("gus", get_project(&globex.id, &c.project)))
                .await,
            Code::NotFound,
        );

        // After the advised wait, the caller is served again.
        tokio::time::sleep(Duration::from_millis(wait)).await;
        list("dina", c.org.clone())
            .await
            .expect("served after the advised wait");

        let text = scrape(&app).await;
        assert_eq!(
            sample(&text, &shed("caller_rate_limit")),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                r#"jalon_grpc_requests_total{service="jalon.v1.ProjectService",method="ListProjects",code="RESOURCE_EXHAUSTED"}"#
            ),
            Some(1.0),
            "{text}"
        );
        app.cleanup().await;
    }
}
