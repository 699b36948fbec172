//! The server around the API: health and reflection without a token,
//! gRPC-Web with CORS, graceful shutdown, refusal of an unmigrated schema,
//! and UNAVAILABLE (then recovery) when the database goes away.

use std::time::Duration;

use jalon_proto::v1 as pb;
use jalon_server::Application;
use sea_orm::{
    ConnectionTrait, DbBackend, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::*;

#[tokio::test]
async fn health_and_reflection_answer_without_a_token() {
    on_each_backend(async |app: &TestApp| {
        let mut health = HealthClient::new(app.channel.clone());
        for service in ["", "jalon.v1.OrganisationService", "jalon.v1.PersonService"] {
            let status = health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .expect("health answers")
                .into_inner()
                .status;
            assert_eq!(status, ServingStatus::Serving as i32, "{service}");
        }
        let unknown = health
            .check(HealthCheckRequest {
                service: "nope.Service".into(),
            })
            .await;
        expect_code(unknown, Code::NotFound);

        for services in [reflection_v1(app).await, reflection_v1alpha(app).await] {
            for expected in [
                "jalon.v1.OrganisationService",
                "jalon.v1.PersonService",
                "grpc.health.v1.Health",
            ] {
                assert!(
                    services.iter().any(|s| s == expected),
                    "{expected} in {services:?}"
                );
            }
        }
    })
    .await;
}

async fn reflection_v1(app: &TestApp) -> Vec<String> {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut client = ServerReflectionClient::new(app.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection v1")
        .into_inner();
    match stream
        .message()
        .await
        .expect("a response")
        .and_then(|r| r.message_response)
    {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

async fn reflection_v1alpha(app: &TestApp) -> Vec<String> {
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut client = ServerReflectionClient::new(app.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection v1alpha")
        .into_inner();
    match stream
        .message()
        .await
        .expect("a response")
        .and_then(|r| r.message_response)
    {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

/// Sends raw HTTP/1.1 and returns the whole response as text (lossy).
async fn http1(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(body).await.expect("write body");
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).to_lowercase()
}

#[tokio::test]
async fn grpc_web_answers_browsers_of_allowed_origins() {
    let app = TestApp::spawn_with(&Backend::Sqlite, |s| {
        s.server.cors_allowed_origins = vec!["https://portfolio.example".into()];
    })
    .await;
    let preflight = |origin: &str| {
        format!(
            "OPTIONS /jalon.v1.OrganisationService/ListOrganisations HTTP/1.1\r\nHost: jalon\r\n\
             Origin: {origin}\r\nAccess-Control-Request-Method: POST\r\n\
             Access-Control-Request-Headers: authorization,content-type,x-grpc-web\r\nConnection: close\r\n\r\n"
        )
    };
    let allowed = http1(app.addr, &preflight("https://portfolio.example"), b"").await;
    assert!(allowed.starts_with("http/1.1 200"), "{allowed}");
    assert!(
        allowed.contains("access-control-allow-origin: https://portfolio.example"),
        "{allowed}"
    );
    let refused = http1(app.addr, &preflight("https://evil.example"), b"").await;
    assert!(
        !refused.contains("access-control-allow-origin"),
        "{refused}"
    );

    // A gRPC-Web call: one empty ListOrganisationsRequest frame.
    let frame = [0u8, 0, 0, 0, 0];
    let call = format!(
        "POST /jalon.v1.OrganisationService/ListOrganisations HTTP/1.1\r\nHost: jalon\r\n\
         Origin: https://portfolio.example\r\nContent-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\n\
         Authorization: Bearer {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        token(ROOT),
        frame.len()
    );
    let answer = http1(app.addr, &call, &frame).await;
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(
        answer.contains("content-type: application/grpc-web+proto"),
        "{answer}"
    );
    assert!(answer.contains("grpc-status:0"), "{answer}");
    app.cleanup().await;
}

#[tokio::test]
async fn graceful_shutdown_lets_an_in_flight_call_finish() {
    for backend in backends() {
        let mut app = TestApp::spawn(&backend).await;
        let (org, _) = app.create_org("drain", "alice").await;

        // Hold the database so that the next write waits in the server.
        let db = app.db.connect().await;
        let blocker = db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
            .expect("begin");
        if db.get_database_backend() == DbBackend::Postgres {
            blocker
                .execute_unprepared(&format!(
                    "SELECT id FROM organisations WHERE id = '{}' FOR UPDATE",
                    org.id
                ))
                .await
                .expect("lock the organisation");
        }
        let mut people = app.people();
        let org_id = org.id.clone();
        let in_flight = tokio::spawn(async move {
            people
                .create_person(authed(
                    "alice",
                    pb::CreatePersonRequest {
                        organisation_id: org_id,
                        person: Some(person("late", pb::Role::Member)),
                        request_id: String::new(),
                    },
                ))
                .await
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!in_flight.is_finished(), "the call waits for the database");

        app.signal_shutdown();
        tokio::time::sleep(Duration::from_millis(300)).await;
        blocker.commit().await.expect("release");

        let created = in_flight
            .await
            .expect("task")
            .expect("the in-flight call finished");
        assert_eq!(created.into_inner().person.expect("person").subject, "late");
        app.wait_stopped()
            .await
            .expect("the server stopped cleanly");
        let count = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT COUNT(*) AS n FROM people WHERE subject = 'late'",
            ))
            .await
            .expect("count")
            .expect("a row")
            .try_get::<i64>("", "n")
            .expect("n");
        assert_eq!(count, 1);
        db.close().await.ok();
        app.cleanup().await;
    }
}

#[tokio::test]
async fn an_unmigrated_database_is_refused_unless_migrations_may_run() {
    for backend in backends() {
        let db = FreshDatabase::create(&backend).await;
        let mut settings = test_settings(&db.url);
        settings.database.migrate = Some(false);
        let refusal = match Application::build(settings).await {
            Ok(_) => panic!("started on an unmigrated database"),
            Err(message) => message,
        };
        assert!(refusal.contains("jalon migrate"), "{refusal}");
        let mut settings = test_settings(&db.url);
        settings.database.migrate = Some(true);
        assert!(Application::build(settings).await.is_ok());
        db.drop_database().await;
    }
}

#[tokio::test]
async fn a_lost_database_is_unavailable_and_the_pool_recovers() {
    // SQLite is embedded: only a networked database can go away.
    let Some(backend) = backends()
        .into_iter()
        .find(|b| matches!(b, Backend::Postgres(_)))
    else {
        eprintln!("skipped: JALON_TEST_POSTGRES_URL is not set");
        return;
    };
    let db = FreshDatabase::create(&backend).await;
    let host_port = pg_host_port(&db.url);
    let target = tokio::net::lookup_host(&host_port)
        .await
        .expect("resolve")
        .next()
        .expect("an address");
    let proxy = TcpProxy::start(target).await;
    let mut settings = test_settings(&db.url.replacen(&host_port, &proxy.addr.to_string(), 1));
    settings.database.acquire_timeout_secs = 2;
    let app = TestApp::start(db, settings).await;
    let (org, _) = app.create_org("flaky", "alice").await;
    let get = || {
        let mut client = app.organisations();
        let id = org.id.clone();
        async move {
            client
                .get_organisation(authed("alice", pb::GetOrganisationRequest { id }))
                .await
        }
    };
    assert!(get().await.is_ok());

    proxy.cut();
    let status = expect_code(get().await, Code::Unavailable);
    assert!(
        !status.message().contains("127.0.0.1"),
        "no connection details leak: {status:?}"
    );
    // Still serving: health is not tied to one query.
    let mut health = HealthClient::new(app.channel.clone());
    assert!(
        health
            .check(HealthCheckRequest {
                service: String::new()
            })
            .await
            .is_ok()
    );

    proxy.restore();
    let mut recovered = false;
    for _ in 0..20 {
        if get().await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(recovered, "the pool reconnects once the database is back");
    app.cleanup().await;
}

#[test]
fn postgres_host_and_port_are_read_from_urls() {
    assert_eq!(
        pg_host_port("postgres://postgres@127.0.0.1:5432/x"),
        "127.0.0.1:5432"
    );
    assert_eq!(
        pg_host_port("postgres://u:p@db/x?sslmode=disable"),
        "db:5432"
    );
    assert_eq!(pg_host_port("postgres://localhost:6543"), "localhost:6543");
}

#[tokio::test]
async fn slow_calls_are_cut_by_the_request_timeout_and_write_nothing() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| s.server.request_timeout_secs = 1).await;
        let (org, _) = app.create_org("slow", "alice").await;
        let db = app.db.connect().await;
        let blocker = db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
            .expect("begin");
        if db.get_database_backend() == DbBackend::Postgres {
            blocker
                .execute_unprepared(&format!(
                    "SELECT id FROM organisations WHERE id = '{}' FOR UPDATE",
                    org.id
                ))
                .await
                .expect("lock the organisation");
        }
        let slow = app
            .people()
            .create_person(authed(
                "alice",
                pb::CreatePersonRequest {
                    organisation_id: org.id.clone(),
                    person: Some(person("too-late", pb::Role::Member)),
                    request_id: String::new(),
                },
            ))
            .await;
        let status = expect_code(slow, Code::Cancelled);
        assert_eq!(status.message(), "Timeout expired");
        blocker.rollback().await.expect("release");
        let listed = app
            .people()
            .list_people(authed(
                "alice",
                pb::ListPeopleRequest {
                    organisation_id: org.id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .expect("list")
            .into_inner();
        assert!(
            listed.people.iter().all(|p| p.subject != "too-late"),
            "the cancelled call wrote nothing"
        );
        db.close().await.ok();
        app.cleanup().await;
    }
}

#[tokio::test]
async fn oversized_messages_are_refused() {
    let app =
        TestApp::spawn_with(&Backend::Sqlite, |s| s.server.max_message_bytes = 64 * 1024).await;
    let (org, _) = app.create_org("big", "alice").await;
    let mut huge = person("huge", pb::Role::Member);
    huge.job_title = "x".repeat(100 * 1024);
    let refused = app
        .people()
        .create_person(authed(
            "alice",
            pb::CreatePersonRequest {
                organisation_id: org.id.clone(),
                person: Some(huge),
                request_id: String::new(),
            },
        ))
        .await;
    expect_code(refused, Code::ResourceExhausted);
    app.cleanup().await;
}

/// A second server on the same SQLite file is refused with a message naming
/// the file and the first server's process; once the first has stopped, the
/// file can be served again. (PostgreSQL has no such lock: replicas share it.)
#[tokio::test]
async fn a_second_server_on_one_sqlite_file_is_refused() {
    let db = FreshDatabase::create(&Backend::Sqlite).await;
    let shared = db.shared();
    let mut first = TestApp::start(db, test_settings(&shared.url)).await;
    let refused = match Application::build(test_settings(&shared.url)).await {
        Ok(_) => panic!("a second server started on the same SQLite file"),
        Err(e) => e,
    };
    assert!(
        refused.contains("another jalon server")
            && refused.contains("jalon.db")
            && refused.contains(&format!("process {}", std::process::id())),
        "{refused}"
    );
    first.stop().await.expect("the first server stops");
    let again = Application::build(test_settings(&shared.url))
        .await
        .expect("the file is free once the first server stopped");
    drop(again);
    first.db.drop_database().await;
}
