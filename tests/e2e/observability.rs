//! Observability: Prometheus metrics scraped from a running server over its
//! metrics port, a whole session's log (text and JSON, at TRACE) that
//! carries no secret, token, password or personal data, and traces: the
//! caller's W3C trace context continued, its trace id in the log, and spans
//! exported over OTLP/gRPC to a collector run by the test.

use std::{
    io::{Read, Write},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use jalon_proto::v1 as pb;
use jalon_server::{
    Application,
    config::{LogFormat, LogSettings, TracingSettings},
    telemetry::{self, LogBuffer, Traces},
};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{AnyValue, KeyValue, any_value},
    trace::v1::Span,
};
use tonic::{Code, Request, Response, Status};

use crate::helpers::*;

/// One HTTP/1.1 request to `addr`: the status, the content type and the
/// body.
async fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .expect("connect to the metrics port");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status");
        let content_type = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-type")
                    .then(|| value.trim().to_owned())
            })
            .unwrap_or_default();
        (status, content_type, body.to_owned())
    })
    .await
    .expect("HTTP task")
}

/// `GET /metrics`, checked to be Prometheus text.
pub async fn scrape(app: &TestApp) -> String {
    let addr = app.metrics_addr.expect("metrics are on by default");
    let (status, content_type, body) = http(addr, "GET", "/metrics").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    body
}

/// The value of `series` (name and labels, as exposed), if exposed.
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn calls(service: &str, method: &str, code: &str) -> String {
    format!(
        r#"jalon_grpc_requests_total{{service="jalon.v1.{service}",method="{method}",code="{code}"}}"#
    )
}

#[tokio::test]
async fn metrics_are_scraped_from_a_running_server() {
    on_each_backend(async |app: &TestApp| {
        let before = scrape(app).await;
        for series in [
            r#"jalon_gate_decisions_total{outcome="HOLD"}"#,
            r#"jalon_assessment_answers_total{status="DONE"}"#,
            "jalon_grpc_requests_in_flight",
        ] {
            assert_eq!(sample(&before, series), Some(0.0), "{series}\n{before}");
        }
        assert_eq!(
            sample(&before, "jalon_db_pool_max_connections"),
            Some(8.0),
            "{before}"
        );

        let ready = ready_review(app, "metrics").await;
        app.gates()
            .decide_gate(authed(
                "dina",
                pb::DecideGateRequest {
                    organisation_id: ready.org.clone(),
                    review_id: ready.review.clone(),
                    outcome: pb::GateOutcome::Hold as i32,
                    rationale: "waiting for the budget".into(),
                    conditions: vec![],
                },
            ))
            .await
            .expect("decide");
        let missing = app
            .organisations()
            .get_organisation(authed(
                ROOT,
                pb::GetOrganisationRequest {
                    id: uuid::Uuid::now_v7().to_string(),
                },
            ))
            .await;
        expect_code(missing, Code::NotFound);
        let anonymous = app
            .organisations()
            .list_organisations(Request::new(pb::ListOrganisationsRequest::default()))
            .await;
        expect_code(anonymous, Code::Unauthenticated);

        let text = scrape(app).await;
        let answers = ready.answers as f64;
        assert!(answers > 0.0);
        for (series, expected) in [
            (calls("OrganisationService", "CreateOrganisation", "OK"), 1.0),
            (calls("OrganisationService", "GetOrganisation", "NOT_FOUND"), 1.0),
            (
                calls("OrganisationService", "ListOrganisations", "UNAUTHENTICATED"),
                1.0,
            ),
            (calls("PersonService", "CreatePerson", "OK"), 3.0),
            (calls("AssessmentService", "AnswerAssessmentItem", "OK"), answers),
            (calls("GateService", "DecideGate", "OK"), 1.0),
            (
                r#"jalon_grpc_request_duration_seconds_count{service="jalon.v1.GateService",method="DecideGate"}"#.into(),
                1.0,
            ),
            (
                r#"jalon_grpc_request_duration_seconds_bucket{service="jalon.v1.GateService",method="DecideGate",le="+Inf"}"#.into(),
                1.0,
            ),
            (r#"jalon_gate_decisions_total{outcome="HOLD"}"#.into(), 1.0),
            (r#"jalon_gate_decisions_total{outcome="GO"}"#.into(), 0.0),
            (r#"jalon_assessment_answers_total{status="DONE"}"#.into(), answers),
            ("jalon_grpc_requests_in_flight".into(), 0.0),
        ] {
            assert_eq!(sample(&text, &series), Some(expected), "{series}\n{text}");
        }
        assert!(
            sample(&text, "jalon_db_pool_acquire_seconds_count").is_some(),
            "{text}"
        );
        let size = sample(&text, "jalon_db_pool_connections").expect("pool size");
        let idle = sample(&text, "jalon_db_pool_idle_connections").expect("idle");
        assert!((1.0..=8.0).contains(&size), "{text}");
        assert!((0.0..=size).contains(&idle), "{text}");
        // Nothing from the scrapes themselves: they are not gRPC calls.
        assert!(!text.contains("/metrics"), "{text}");

        let addr = app.metrics_addr.unwrap();
        assert_eq!(http(addr, "GET", "/").await.0, 404);
        assert_eq!(http(addr, "POST", "/metrics").await.0, 405);
    })
    .await;
}

#[tokio::test]
async fn the_metrics_server_stops_with_the_application_and_can_be_turned_off() {
    let mut app = TestApp::spawn(&Backend::Sqlite).await;
    let addr = app.metrics_addr.expect("on by default");
    assert!(scrape(&app).await.contains("jalon_grpc_requests_in_flight"));
    app.stop().await.expect("stops");
    let refused = tokio::task::spawn_blocking(move || {
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
    })
    .await
    .unwrap();
    assert!(refused.is_err(), "the metrics port still answers");
    app.cleanup().await;

    let off = TestApp::spawn_with(&Backend::Sqlite, |s| s.metrics.enabled = false).await;
    assert_eq!(off.metrics_addr, None);
    off.cleanup().await;
}

#[tokio::test]
async fn a_metrics_address_that_cannot_be_used_is_a_clear_error() {
    let db = FreshDatabase::create(&Backend::Sqlite).await;

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap();
    let mut settings = test_settings(&db.url);
    settings.metrics.listen = taken_addr;
    let error = Application::build(settings).await.err().expect("refused");
    assert!(
        error.contains("metrics.listen") && error.contains(&taken_addr.to_string()),
        "{error}"
    );

    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut settings = test_settings(&db.url);
    settings.server.listen = free;
    settings.metrics.listen = free;
    let error = Application::build(settings).await.err().expect("refused");
    assert!(error.contains("must differ from server.listen"), "{error}");
    db.drop_database().await;
}

/// `url` with a password, and the password: the one it has, or one added
/// (PostgreSQL's trust authentication ignores it). None without a user.
fn with_password(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (userinfo, host) = rest[..authority_end].rsplit_once('@')?;
    if let Some((_, password)) = userinfo.split_once(':') {
        return Some((url.to_owned(), password.to_owned()));
    }
    let password = "pg-password-that-must-not-be-logged".to_owned();
    let url = format!(
        "{scheme}://{userinfo}:{password}@{host}{}",
        &rest[authority_end..]
    );
    Some((url, password))
}

/// A session touching personal data and credentials: what must never be
/// logged comes back.
async fn session() -> Vec<String> {
    let mut secrets = vec![SECRET.to_owned()];
    for backend in backends() {
        let backend = match backend {
            Backend::Postgres(url) => match with_password(&url) {
                Some((url, password)) => {
                    secrets.push(password);
                    Backend::Postgres(url)
                }
                None => Backend::Postgres(url),
            },
            sqlite => sqlite,
        };
        let app = TestApp::spawn(&backend).await;
        let root = token(ROOT);
        let admin_email = "ada.lovelace@private-mail.example";
        let admin_name = "Ada Lovelace-Byron";
        let org = app
            .organisations()
            .create_organisation(with_token(
                &root,
                pb::CreateOrganisationRequest {
                    organisation: Some(organisation("logs")),
                    initial_admin: Some(pb::Person {
                        subject: "ada-sub".into(),
                        email: admin_email.into(),
                        display_name: admin_name.into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
            ))
            .await
            .expect("create organisation")
            .into_inner()
            .organisation
            .unwrap()
            .id;
        let ada = token("ada-sub");
        let person = |email: &str, name: &str| pb::CreatePersonRequest {
            organisation_id: org.clone(),
            person: Some(pb::Person {
                subject: format!("sub-{name}"),
                email: email.into(),
                display_name: name.into(),
                department: "Customer care".into(),
                job_title: "Director".into(),
                role: pb::Role::Member as i32,
                ..Default::default()
            }),
            request_id: String::new(),
        };
        let grace_email = "grace.hopper@private-mail.example";
        let grace_name = "Grace Brewster Hopper";
        let grace = app
            .people()
            .create_person(with_token(&ada, person(grace_email, grace_name)))
            .await
            .expect("create person")
            .into_inner()
            .person
            .unwrap();
        // Refused: the same e-mail again, and a malformed one.
        let again = app
            .people()
            .create_person(with_token(&ada, person(grace_email, "Grace Again")))
            .await;
        assert!(again.is_err());
        let malformed = "not an e-mail: katherine.johnson";
        expect_bad_field(
            app.people()
                .create_person(with_token(&ada, person(malformed, "Katherine Johnson")))
                .await,
            "person.email",
        );
        let renamed = "Grace Hopper-Murray";
        app.people()
            .update_person(with_token(
                &ada,
                pb::UpdatePersonRequest {
                    organisation_id: org.clone(),
                    person: Some(pb::Person {
                        id: grace.id.clone(),
                        display_name: renamed.into(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["display_name".into()],
                    }),
                },
            ))
            .await
            .expect("update person");
        app.people()
            .list_people(with_token(
                &ada,
                pb::ListPeopleRequest {
                    organisation_id: org.clone(),
                    ..Default::default()
                },
            ))
            .await
            .expect("list people");
        // Refused credentials: a tampered token, one signed with another
        // secret, and garbage.
        let mut tampered = ada.clone();
        tampered.pop();
        tampered.push('x');
        let other_secret = "another-secret-also-at-least-32-bytes-long";
        let forged = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims("ada-sub"),
            &jsonwebtoken::EncodingKey::from_secret(other_secret.as_bytes()).unwrap(),
        )
        .unwrap();
        let garbage = "garbage-credential-4f1c";
        // Signed with the right secret, but `exp` mistyped: a personal
        // address where a timestamp belongs.
        let mut mistyped_claims = claims("ada-sub");
        mistyped_claims["exp"] = serde_json::json!(admin_email);
        let mistyped = hs256(&mistyped_claims);
        for bad in [&tampered, &forged, &garbage.to_owned(), &mistyped] {
            expect_code(
                app.organisations()
                    .get_organisation(with_token(
                        bad,
                        pb::GetOrganisationRequest { id: org.clone() },
                    ))
                    .await,
                Code::Unauthenticated,
            );
        }
        // The lifecycle: answers, a review, a signature and a decision.
        let ready = ready_review(&app, "logs-lifecycle").await;
        app.gates()
            .decide_gate(authed(
                "dina",
                pb::DecideGateRequest {
                    organisation_id: ready.org.clone(),
                    review_id: ready.review.clone(),
                    outcome: pb::GateOutcome::Hold as i32,
                    rationale: "waiting for the budget".into(),
                    conditions: vec![],
                },
            ))
            .await
            .expect("decide");
        app.cleanup().await;
        secrets.extend(
            [
                &root,
                &ada,
                &tampered,
                &forged,
                &mistyped,
                garbage,
                other_secret,
                admin_email,
                admin_name,
                grace_email,
                grace_name,
                malformed,
                renamed,
                // The local parts alone, in case an address is mangled.
                "ada.lovelace",
                "grace.hopper",
            ]
            .map(str::to_owned),
        );
    }
    secrets
}

/// Runs the session in a runtime on this thread, with the service's
/// subscriber for `format` at TRACE writing to a buffer (the other tests, on
/// other threads, are not captured): the log and what it must not show.
fn capture(format: LogFormat) -> (String, Vec<String>) {
    let buffer = LogBuffer::default();
    let settings = LogSettings {
        format,
        filter: "trace".into(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let secrets = telemetry::scoped(&settings, buffer.clone(), || runtime.block_on(session()));
    drop(runtime);
    (buffer.contents(), secrets)
}

#[test]
fn logs_carry_no_secret_token_password_or_personal_data() {
    for format in [LogFormat::Text, LogFormat::Json] {
        let (log, secrets) = capture(format);
        // The log is there: decisions, calls, refusals (DEBUG).
        for expected in [
            "organisation created",
            "person created",
            "rpc finished",
            "token refused",
            "gate decided",
        ] {
            assert!(
                log.contains(expected),
                "{format:?}: no {expected:?} in\n{log}"
            );
        }
        for secret in &secrets {
            assert!(
                !log.contains(secret.as_str()),
                "{format:?}: the log shows {secret:?}:\n{log}"
            );
        }
        // No JWT at all (their header starts with `{"` in base64), no
        // authorization header.
        assert!(!log.contains("eyJ"), "{format:?}: a JWT in\n{log}");
        assert!(
            !log.to_ascii_lowercase().contains("bearer"),
            "{format:?}: an authorization header in\n{log}"
        );
        if format == LogFormat::Json {
            for line in log.lines() {
                let value: serde_json::Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                assert!(value.get("level").is_some(), "{line}");
            }
        } else {
            assert!(log.lines().all(|l| !l.starts_with('{')), "{log}");
        }
    }
}

#[test]
fn passwords_are_added_to_postgres_urls_only_when_missing() {
    let (url, password) = with_password("postgres://postgres@127.0.0.1:5432/postgres").unwrap();
    assert_eq!(
        url,
        format!("postgres://postgres:{password}@127.0.0.1:5432/postgres")
    );
    assert_eq!(
        with_password("postgres://u:pw@h/db?sslmode=disable").unwrap(),
        (
            "postgres://u:pw@h/db?sslmode=disable".to_owned(),
            "pw".to_owned()
        )
    );
    assert_eq!(with_password("postgres://h:5432/db"), None);
}

/// A caller's trace: its id and the caller's span.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

/// A `ListOrganisations` request from the platform administrator, with a
/// sampled W3C `traceparent` when `traced`.
fn list_organisations(traced: bool) -> Request<pb::ListOrganisationsRequest> {
    let mut request = authed(ROOT, pb::ListOrganisationsRequest::default());
    if traced {
        let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01");
        request
            .metadata_mut()
            .insert("traceparent", traceparent.parse().expect("metadata"));
        request
            .metadata_mut()
            .insert("tracestate", "vendor=opaque".parse().expect("metadata"));
    }
    request
}

/// The `rpc finished` lines of `log`.
fn finished(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("rpc finished")).collect()
}

/// The trace id of a JSON `rpc finished` line.
fn json_trace_id(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
    value["span"]["trace_id"].as_str().map(str::to_owned)
}

#[test]
fn log_lines_carry_the_callers_trace_id() {
    for format in [LogFormat::Text, LogFormat::Json] {
        let buffer = LogBuffer::default();
        let settings = LogSettings {
            format,
            filter: "info".into(),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        telemetry::scoped(&settings, buffer.clone(), || {
            runtime.block_on(async {
                let app = TestApp::spawn(&Backend::Sqlite).await;
                for traced in [true, false] {
                    app.organisations()
                        .list_organisations(list_organisations(traced))
                        .await
                        .expect("list organisations");
                }
                app.cleanup().await;
            })
        });
        drop(runtime);
        let log = buffer.contents();
        let lines = finished(&log);
        assert_eq!(lines.len(), 2, "{format:?}:\n{log}");
        match format {
            LogFormat::Text => {
                assert!(lines[0].contains(&format!("trace_id={TRACE_ID}")), "{log}");
                // With no traceparent and no export, there is no trace id.
                assert!(!lines[1].contains("trace_id="), "{log}");
            }
            LogFormat::Json => {
                assert_eq!(json_trace_id(lines[0]).as_deref(), Some(TRACE_ID), "{log}");
                assert_eq!(json_trace_id(lines[1]), None, "{log}");
            }
        }
    }
}

/// A span received by the collector, with the `service.name` of its
/// resource.
type Received = (String, Span);

/// A tiny OTLP/gRPC trace collector: it keeps what it receives.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Received>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut received = self.0.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|r| string_attribute(&r.attributes, "service.name"))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    received.push((service.clone(), span));
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

fn string_attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| match a.value.as_ref() {
            Some(AnyValue {
                value: Some(any_value::Value::StringValue(s)),
            }) => Some(s.clone()),
            _ => None,
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn spans_are_exported_over_otlp_and_continue_the_callers_trace() {
    // The collector, and the exporter's connection to it, run on a runtime of
    // their own: flushing blocks the thread that calls it.
    let background = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let collector = Collector::default();
    let listener = background
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    background.spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let tracing_settings = TracingSettings {
        otlp_endpoint: Some(endpoint),
        service_name: "jalon-e2e".into(),
        ..TracingSettings::default()
    };
    let traces = {
        let _context = background.enter();
        Traces::new(&tracing_settings)
            .expect("the exporter builds")
            .expect("an endpoint is set")
    };
    assert!(
        Traces::new(&TracingSettings::default()).unwrap().is_none(),
        "no export without an endpoint"
    );

    let buffer = LogBuffer::default();
    let settings = LogSettings {
        format: LogFormat::Json,
        filter: "info".into(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    telemetry::scoped_traced(&settings, Some(&traces), buffer.clone(), || {
        runtime.block_on(async {
            let app = TestApp::spawn(&Backend::Sqlite).await;
            for traced in [true, false] {
                app.organisations()
                    .list_organisations(list_organisations(traced))
                    .await
                    .expect("list organisations");
            }
            app.cleanup().await;
        })
    });
    drop(runtime);
    traces.flush().expect("the spans are exported");

    let received = collector.0.lock().unwrap().clone();
    let method = "/jalon.v1.OrganisationService/ListOrganisations";
    let calls: Vec<&Received> = received
        .iter()
        .filter(|(_, span)| {
            string_attribute(&span.attributes, "rpc.method").as_deref() == Some(method)
        })
        .collect();
    assert_eq!(calls.len(), 2, "{received:#?}");
    for (service, span) in &calls {
        assert_eq!(service, "jalon-e2e");
        assert_eq!(span.name, "rpc");
        assert_eq!(
            string_attribute(&span.attributes, "rpc.system").as_deref(),
            Some("grpc")
        );
    }
    // The traced call continues the caller's trace, under the caller's span.
    let (_, continued) = calls
        .iter()
        .find(|(_, span)| hex(&span.trace_id) == TRACE_ID)
        .unwrap_or_else(|| panic!("no span of the trace {TRACE_ID}: {calls:#?}"));
    assert_eq!(hex(&continued.parent_span_id), CALLER_SPAN_ID);
    assert_eq!(continued.trace_state, "vendor=opaque");
    // The other one starts a trace of its own.
    let (_, root) = calls
        .iter()
        .find(|(_, span)| hex(&span.trace_id) != TRACE_ID)
        .expect("a new trace");
    assert!(root.parent_span_id.is_empty(), "{root:#?}");

    // Both log lines carry the trace id of the exported span.
    let log = buffer.contents();
    let ids: Vec<Option<String>> = finished(&log).into_iter().map(json_trace_id).collect();
    assert_eq!(
        ids,
        vec![Some(TRACE_ID.to_owned()), Some(hex(&root.trace_id))],
        "{log}"
    );
    traces.shutdown().expect("shutdown");
}

/// With the service's subscriber (as `jalon serve` installs it), every
/// connection taken from the pool is timed into
/// `jalon_db_pool_acquire_seconds`, the pool's waits.
#[test]
fn the_pools_waits_are_measured() {
    let settings = LogSettings {
        format: LogFormat::Text,
        filter: "info".into(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    telemetry::scoped(&settings, LogBuffer::default(), || {
        runtime.block_on(async {
            for backend in backends() {
                let app = TestApp::spawn(&backend).await;
                let count = |text: &str| {
                    sample(text, "jalon_db_pool_acquire_seconds_count").expect("the histogram")
                };
                let before = count(&scrape(&app).await);
                let ready = ready_review(&app, "waits").await;
                let text = scrape(&app).await;
                let after = count(&text);
                // Each call took at least one connection.
                assert!(
                    after - before > ready.answers as f64,
                    "{before} -> {after}\n{text}"
                );
                assert_eq!(
                    sample(&text, r#"jalon_db_pool_acquire_seconds_bucket{le="+Inf"}"#),
                    Some(after),
                    "{text}"
                );
                app.cleanup().await;
            }
        });
    });
}
