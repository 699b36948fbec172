//! Webhooks: endpoints managed by an organisation's ADMIN (and invisible to
//! other organisations), deliveries signed per the Standard Webhooks
//! specification with CloudEvents bodies, verified by a test receiver and by
//! third parties' libraries (`standardwebhooks`, `cloudevents`, installed by
//! `.ci/tools.sh`), retries, 410, SSRF refusals, secret rotation, two
//! replicas delivering each event once, and a replica killed mid-delivery.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use jalon_proto::v1::{self as pb, webhook_service_client::WebhookServiceClient};
use jalon_server::{Application, config::Settings};
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};
use tonic::{Code, transport::Channel};

use crate::helpers::*;

/// What the receiver answers to one request.
#[derive(Debug, Clone)]
enum Reply {
    Status(u16),
    /// A status with a `Retry-After` header (seconds).
    RetryAfter(u16, u64),
    /// Never answers (the sender is killed meanwhile).
    Hold,
}

/// A request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HashMap<String, String>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// An in-process HTTP receiver on 127.0.0.1: records every request and
/// answers from its script (200 when the script is empty).
struct Receiver {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    task: JoinHandle<()>,
}

impl Receiver {
    async fn start(script: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let task = {
            let received = received.clone();
            let script = script.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let received = received.clone();
                    let script = script.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req: hyper::Request<Incoming>| {
                            let received = received.clone();
                            let script = script.clone();
                            async move {
                                let headers = req
                                    .headers()
                                    .iter()
                                    .map(|(k, v)| {
                                        (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                                    })
                                    .collect();
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                received.lock().unwrap().push(Received {
                                    headers,
                                    body: String::from_utf8(body.to_vec()).unwrap(),
                                });
                                let reply = script
                                    .lock()
                                    .unwrap()
                                    .pop_front()
                                    .unwrap_or(Reply::Status(200));
                                let mut response = hyper::Response::builder();
                                let status = match reply {
                                    Reply::Status(s) => s,
                                    Reply::RetryAfter(s, secs) => {
                                        response = response.header("retry-after", secs.to_string());
                                        s
                                    }
                                    Reply::Hold => std::future::pending().await,
                                };
                                Ok::<_, Infallible>(
                                    response
                                        .status(status)
                                        .body(Full::new(Bytes::from_static(b"ok")))
                                        .unwrap(),
                                )
                            }
                        });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        Self {
            addr,
            received,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        eventually(&format!("{n} request(s) at the receiver"), || async {
            let got = self.received();
            (got.len() >= n).then_some(got)
        })
        .await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls `check` until it gives a value (at most 30 s).
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Test settings: http and 127.0.0.1 allowed, short retries.
fn hook_settings(settings: &mut Settings) {
    settings.webhooks.allow_http = true;
    settings.webhooks.allowed_networks = vec!["127.0.0.1".into()];
    settings.webhooks.retry_initial_delay_ms = 50;
    settings.webhooks.poll_interval_ms = 50;
    settings.webhooks.timeout_secs = 5;
    settings.webhooks.lease_secs = 10;
}

fn hooks(channel: &Channel) -> WebhookServiceClient<Channel> {
    WebhookServiceClient::new(channel.clone())
}

async fn create_endpoint(
    channel: &Channel,
    admin: &str,
    org: &str,
    url: &str,
    types: &[&str],
) -> Result<(pb::WebhookEndpoint, String), tonic::Status> {
    let created = hooks(channel)
        .create_webhook_endpoint(authed(
            admin,
            pb::CreateWebhookEndpointRequest {
                organisation_id: org.into(),
                endpoint: Some(pb::WebhookEndpoint {
                    url: url.into(),
                    description: "the test receiver".into(),
                    event_types: types.iter().map(|t| (*t).to_owned()).collect(),
                    enabled: true,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await?
        .into_inner();
    Ok((created.endpoint.unwrap(), created.secret))
}

async fn deliveries(
    channel: &Channel,
    admin: &str,
    org: &str,
    endpoint: &str,
) -> Vec<pb::WebhookDelivery> {
    hooks(channel)
        .list_webhook_deliveries(authed(
            admin,
            pb::ListWebhookDeliveriesRequest {
                organisation_id: org.into(),
                endpoint_id: endpoint.into(),
                ..Default::default()
            },
        ))
        .await
        .expect("list deliveries")
        .into_inner()
        .deliveries
}

async fn get_endpoint(channel: &Channel, admin: &str, org: &str, id: &str) -> pb::WebhookEndpoint {
    hooks(channel)
        .get_webhook_endpoint(authed(
            admin,
            pb::GetWebhookEndpointRequest {
                organisation_id: org.into(),
                id: id.into(),
            },
        ))
        .await
        .expect("get endpoint")
        .into_inner()
        .endpoint
        .unwrap()
}

/// Runs the third-party verifier (tests/e2e/verify_webhooks.py) on
/// deliveries, each with the secret to check it against. Without the
/// verifiers installed (`bash .ci/tools.sh`) it says so and returns `None`,
/// unless `JALON_TEST_REQUIRE_VERIFIERS` is set (CI sets it): then their
/// absence fails the test.
fn third_party_verify(cases: &[(&str, &Received)]) -> Option<Vec<Value>> {
    use std::io::Write;
    let python = std::env::var("JALON_TEST_WEBHOOKS_PYTHON").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../.ci/tools/bin/webhooks-python"
        )
        .to_owned()
    });
    if !std::path::Path::new(&python).exists()
        && std::env::var_os("JALON_TEST_REQUIRE_VERIFIERS").is_none()
    {
        println!(
            "third-party verification skipped: {python} is missing (bash .ci/tools.sh installs it; CI requires it)"
        );
        return None;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/verify_webhooks.py");
    let input = json!(
        cases
            .iter()
            .map(|(secret, r)| json!({"secret": secret, "headers": r.headers, "body": r.body}))
            .collect::<Vec<_>>()
    );
    let mut child = std::process::Command::new(&python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {python} ({e}): install the webhook verifiers with `bash .ci/tools.sh` \
                 or set JALON_TEST_WEBHOOKS_PYTHON to a Python with standardwebhooks and cloudevents"
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the verifier failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(serde_json::from_slice(&output.stdout).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_endpoints_are_managed_by_admins_and_invisible_to_other_organisations() {
    for backend in backends() {
        let app = TestApp::spawn(&backend).await;
        let (org, _) = app.create_org("hooks-admin", "alice").await;
        let org = org.id;
        app.add_person("alice", &org, "dina", pb::Role::Director)
            .await;
        let (other, _) = app.create_org("hooks-other", "olga").await;
        let c = &app.channel;

        // https only (the operator did not allow http); known types only.
        let status = expect_code(
            create_endpoint(c, "alice", &org, "http://hooks.example.com/in", &[]).await,
            Code::InvalidArgument,
        );
        assert_eq!(bad_fields(&status), vec!["endpoint.url"]);
        let status = expect_code(
            create_endpoint(
                c,
                "alice",
                &org,
                "https://hooks.example.com/in",
                &["gate.decided", "gate.exploded"],
            )
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(bad_fields(&status), vec!["endpoint.event_types[1]"]);
        // ADMIN only.
        expect_code(
            create_endpoint(c, "dina", &org, "https://hooks.example.com/in", &[]).await,
            Code::PermissionDenied,
        );

        let (endpoint, secret) = create_endpoint(
            c,
            "alice",
            &org,
            "https://hooks.example.com/in",
            &["gate.decided"],
        )
        .await
        .expect("created");
        assert!(secret.starts_with("whsec_"), "{secret}");
        assert!(endpoint.enabled);
        assert_eq!(endpoint.event_types, vec!["gate.decided"]);
        assert!(!endpoint.etag.is_empty());

        // Another organisation's admin sees nothing of it.
        let foreign_get = hooks(c)
            .get_webhook_endpoint(authed(
                "olga",
                pb::GetWebhookEndpointRequest {
                    organisation_id: org.clone(),
                    id: endpoint.id.clone(),
                },
            ))
            .await;
        expect_code(foreign_get, Code::NotFound);
        let through_own = hooks(c)
            .get_webhook_endpoint(authed(
                "olga",
                pb::GetWebhookEndpointRequest {
                    organisation_id: other.id.clone(),
                    id: endpoint.id.clone(),
                },
            ))
            .await;
        expect_code(through_own, Code::NotFound);
        let own_list = hooks(c)
            .list_webhook_endpoints(authed(
                "olga",
                pb::ListWebhookEndpointsRequest {
                    organisation_id: other.id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(own_list.endpoints.is_empty());
        for result in [
            hooks(c)
                .list_webhook_deliveries(authed(
                    "olga",
                    pb::ListWebhookDeliveriesRequest {
                        organisation_id: other.id.clone(),
                        endpoint_id: endpoint.id.clone(),
                        ..Default::default()
                    },
                ))
                .await
                .map(|_| ()),
            hooks(c)
                .rotate_webhook_secret(authed(
                    "olga",
                    pb::RotateWebhookSecretRequest {
                        organisation_id: org.clone(),
                        id: endpoint.id.clone(),
                        etag: String::new(),
                    },
                ))
                .await
                .map(|_| ()),
            hooks(c)
                .delete_webhook_endpoint(authed(
                    "olga",
                    pb::DeleteWebhookEndpointRequest {
                        organisation_id: other.id.clone(),
                        id: endpoint.id.clone(),
                        etag: String::new(),
                    },
                ))
                .await
                .map(|_| ()),
        ] {
            expect_code(result, Code::NotFound);
        }
        // Directors neither read nor list endpoints.
        let director_list = hooks(c)
            .list_webhook_endpoints(authed(
                "dina",
                pb::ListWebhookEndpointsRequest {
                    organisation_id: org.clone(),
                    ..Default::default()
                },
            ))
            .await;
        expect_code(director_list, Code::PermissionDenied);

        let listed = hooks(c)
            .list_webhook_endpoints(authed(
                "alice",
                pb::ListWebhookEndpointsRequest {
                    organisation_id: org.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.endpoints, vec![endpoint.clone()]);

        // Update with a mask and the etag; a stale etag is ABORTED.
        let update = |etag: String| pb::UpdateWebhookEndpointRequest {
            organisation_id: org.clone(),
            endpoint: Some(pb::WebhookEndpoint {
                id: endpoint.id.clone(),
                description: "paused".into(),
                enabled: false,
                event_types: vec!["gate.decided".into(), "project.created".into()],
                etag,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["description".into(), "enabled".into(), "event_types".into()],
            }),
        };
        let updated = hooks(c)
            .update_webhook_endpoint(authed("alice", update(endpoint.etag.clone())))
            .await
            .unwrap()
            .into_inner()
            .endpoint
            .unwrap();
        assert!(!updated.enabled);
        assert_eq!(updated.description, "paused");
        assert_eq!(updated.event_types.len(), 2);
        assert!(updated.disable_time.is_some());
        expect_code(
            hooks(c)
                .update_webhook_endpoint(authed("alice", update(endpoint.etag.clone())))
                .await,
            Code::Aborted,
        );

        // Rotation: a new secret, the previous one valid for the grace.
        let rotated = hooks(c)
            .rotate_webhook_secret(authed(
                "alice",
                pb::RotateWebhookSecretRequest {
                    organisation_id: org.clone(),
                    id: endpoint.id.clone(),
                    etag: updated.etag.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(rotated.secret.starts_with("whsec_"));
        assert_ne!(rotated.secret, secret);
        let rotated_endpoint = rotated.endpoint.unwrap();
        assert!(rotated_endpoint.previous_secret_expire_time.is_some());
        // The secret is never read back.
        let read = get_endpoint(c, "alice", &org, &endpoint.id).await;
        assert_eq!(read, rotated_endpoint);

        hooks(c)
            .delete_webhook_endpoint(authed(
                "alice",
                pb::DeleteWebhookEndpointRequest {
                    organisation_id: org.clone(),
                    id: endpoint.id.clone(),
                    etag: rotated_endpoint.etag.clone(),
                },
            ))
            .await
            .expect("deleted");
        let gone = hooks(c)
            .get_webhook_endpoint(authed(
                "alice",
                pb::GetWebhookEndpointRequest {
                    organisation_id: org.clone(),
                    id: endpoint.id.clone(),
                },
            ))
            .await;
        expect_code(gone, Code::NotFound);
        app.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deliveries_are_signed_cloud_events_that_standardwebhooks_verifies() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, hook_settings).await;
        let receiver = Receiver::start(Vec::new()).await;
        let (org, _) = app.create_org("hooks-signed", "alice").await;
        let org = org.id;
        let (endpoint, secret) = create_endpoint(
            &app.channel,
            "alice",
            &org,
            &receiver.url(),
            &["person.created"],
        )
        .await
        .expect("created");
        let person = app
            .add_person("alice", &org, "dina", pb::Role::Director)
            .await;
        // Not subscribed: not delivered.
        app.people()
            .deactivate_person(authed(
                "alice",
                pb::DeactivatePersonRequest {
                    organisation_id: org.clone(),
                    id: person.id.clone(),
                    etag: person.etag.clone(),
                },
            ))
            .await
            .expect("deactivated");
        let got = receiver.wait_for(1).await;
        let delivery = &got[0];
        let log = eventually("a successful delivery in the log", || async {
            let log = deliveries(&app.channel, "alice", &org, &endpoint.id).await;
            (log.len() == 1 && log[0].state == pb::WebhookDeliveryState::Succeeded as i32)
                .then_some(log)
        })
        .await;
        assert_eq!(log[0].attempts, 1);
        assert_eq!(log[0].last_status_code, 200);
        assert_eq!(log[0].event_type, "person.created");
        assert!(log[0].last_error.is_empty());

        // The receiver's own checks: headers and the CloudEvents fields.
        assert_eq!(delivery.header("webhook-id"), log[0].event_id);
        assert_eq!(
            delivery.header("content-type"),
            "application/cloudevents+json"
        );
        let timestamp: i64 = delivery.header("webhook-timestamp").parse().unwrap();
        assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 60);
        let signature = delivery.header("webhook-signature");
        assert!(signature.starts_with("v1,"), "{signature}");
        assert_eq!(
            signature,
            jalon_server::webhooks::sign(&secret, &log[0].event_id, timestamp, &delivery.body)
                .unwrap()
        );
        let body: Value = serde_json::from_str(&delivery.body).unwrap();
        assert_eq!(body["specversion"], "1.0");
        assert_eq!(body["id"], log[0].event_id.as_str());
        assert_eq!(body["type"], "person.created");
        assert_eq!(body["source"], format!("/jalon/organisations/{org}"));
        assert_eq!(body["subject"], format!("people/{}", person.id));
        assert_eq!(body["datacontenttype"], "application/json");
        assert_eq!(body["data"]["person_id"], person.id.as_str());
        assert_eq!(body["data"]["role"], "DIRECTOR");
        assert!(body["time"].as_str().unwrap().ends_with('Z'));

        // The third parties' verdict: the signature with the secret, the
        // event with the CloudEvents SDK; a wrong secret fails.
        let (_, wrong) = create_endpoint(
            &app.channel,
            "alice",
            &org,
            &receiver.url(),
            &["kpi.created"],
        )
        .await
        .unwrap();
        if let Some(verdicts) = third_party_verify(&[(&secret, delivery), (&wrong, delivery)]) {
            assert_eq!(verdicts[0]["valid"], true, "{}", verdicts[0]);
            let event = &verdicts[0]["event"];
            assert_eq!(event["id"], log[0].event_id.as_str());
            assert_eq!(event["specversion"], "1.0");
            assert_eq!(event["type"], "person.created");
            assert_eq!(event["source"], format!("/jalon/organisations/{org}"));
            assert_eq!(event["subject"], format!("people/{}", person.id));
            assert_eq!(event["datacontenttype"], "application/json");
            assert_eq!(event["data"]["person_id"], person.id.as_str());
            assert!(event["time"].as_str().is_some());
            assert_eq!(verdicts[1]["valid"], false, "{}", verdicts[1]);
        }

        // Only the subscribed type was sent.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(receiver.received().len(), 1);

        // Counted in the metrics.
        let metrics = scrape(app.metrics_addr.unwrap()).await;
        assert!(
            metrics.contains("jalon_webhook_deliveries_total{outcome=\"succeeded\"} 1"),
            "{metrics}"
        );
        assert!(metrics.contains("jalon_webhook_delivery_duration_seconds_count 1"));
        app.cleanup().await;
    }
}

/// The metrics page.
async fn scrape(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: jalon\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_deliveries_are_retried_until_the_receiver_recovers() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, hook_settings).await;
        let receiver = Receiver::start(vec![
            Reply::Status(500),
            Reply::RetryAfter(503, 1),
            Reply::Status(302),
        ])
        .await;
        let (org, _) = app.create_org("hooks-retry", "alice").await;
        let org = org.id;
        let (endpoint, secret) = create_endpoint(&app.channel, "alice", &org, &receiver.url(), &[])
            .await
            .unwrap();
        app.add_person("alice", &org, "dina", pb::Role::Director)
            .await;
        let got = receiver.wait_for(4).await;
        // The same message every time: same id, same body, each signed.
        let id = got[0].header("webhook-id");
        assert!(got.iter().all(|r| r.header("webhook-id") == id));
        assert!(got.iter().all(|r| r.body == got[0].body));
        if let Some(verdicts) =
            third_party_verify(&got.iter().map(|r| (secret.as_str(), r)).collect::<Vec<_>>())
        {
            assert!(verdicts.iter().all(|v| v["valid"] == true), "{verdicts:?}");
        }
        // Retry-After: 1 was honoured between the second and third attempts.
        let t = |r: &Received| r.header("webhook-timestamp").parse::<i64>().unwrap();
        assert!(t(&got[2]) - t(&got[1]) >= 1);
        let log = eventually("the delivery succeeded", || async {
            let log = deliveries(&app.channel, "alice", &org, &endpoint.id).await;
            (log.first()?.state == pb::WebhookDeliveryState::Succeeded as i32).then_some(log)
        })
        .await;
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].attempts, 4);
        assert_eq!(log[0].last_status_code, 200);
        // Every attempt is kept, newest first.
        let tried = &log[0].recent_attempts;
        assert_eq!(
            tried
                .iter()
                .map(|a| (a.number, a.status_code))
                .collect::<Vec<_>>(),
            [(4, 200), (3, 302), (2, 503), (1, 500)]
        );
        assert!(tried[0].error.is_empty());
        assert!(tried[1..].iter().all(|a| !a.error.is_empty()), "{tried:?}");
        assert!(
            tried
                .iter()
                .all(|a| a.latency_ms >= 0 && a.start_time.is_some())
        );
        assert!(
            tried
                .windows(2)
                .all(|w| w[0].start_time.as_ref().unwrap().seconds
                    >= w[1].start_time.as_ref().unwrap().seconds)
        );
        // The failures were recorded on the way, and cleared by the success.
        assert!(
            get_endpoint(&app.channel, "alice", &org, &endpoint.id)
                .await
                .failing_since
                .is_none()
        );

        // A manual redelivery sends it again, same id.
        let redelivered = hooks(&app.channel)
            .redeliver_webhook_event(authed(
                "alice",
                pb::RedeliverWebhookEventRequest {
                    organisation_id: org.clone(),
                    endpoint_id: endpoint.id.clone(),
                    event_id: id.to_owned(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .delivery
            .unwrap();
        assert_eq!(redelivered.state, pb::WebhookDeliveryState::Pending as i32);
        let got = receiver.wait_for(5).await;
        assert_eq!(got[4].header("webhook-id"), id);
        // The redelivery's attempt continues the count.
        let log = eventually("the redelivery recorded", || async {
            let log = deliveries(&app.channel, "alice", &org, &endpoint.id).await;
            (log.first()?.recent_attempts.len() == 5).then_some(log)
        })
        .await;
        assert_eq!(log[0].recent_attempts[0].number, 5);
        assert_eq!(log[0].recent_attempts[0].status_code, 200);
        // An unknown event is NOT_FOUND.
        let unknown = hooks(&app.channel)
            .redeliver_webhook_event(authed(
                "alice",
                pb::RedeliverWebhookEventRequest {
                    organisation_id: org.clone(),
                    endpoint_id: endpoint.id.clone(),
                    event_id: uuid::Uuid::now_v7().to_string(),
                },
            ))
            .await;
        expect_code(unknown, Code::NotFound);
        app.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_endpoint_answering_410_is_disabled() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, hook_settings).await;
        let receiver = Receiver::start(vec![Reply::Status(410)]).await;
        let (org, _) = app.create_org("hooks-gone", "alice").await;
        let org = org.id;
        let (endpoint, _) = create_endpoint(&app.channel, "alice", &org, &receiver.url(), &[])
            .await
            .unwrap();
        app.add_person("alice", &org, "dina", pb::Role::Director)
            .await;
        receiver.wait_for(1).await;
        let disabled = eventually("the endpoint disabled", || async {
            let e = get_endpoint(&app.channel, "alice", &org, &endpoint.id).await;
            (!e.enabled).then_some(e)
        })
        .await;
        assert!(
            disabled.disabled_reason.contains("410"),
            "{}",
            disabled.disabled_reason
        );
        assert!(disabled.disable_time.is_some());
        let log = deliveries(&app.channel, "alice", &org, &endpoint.id).await;
        assert_eq!(log[0].state, pb::WebhookDeliveryState::Failed as i32);
        assert_eq!(log[0].last_status_code, 410);
        // Nothing more is sent to it.
        app.add_person("alice", &org, "sam", pb::Role::Member).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(receiver.received().len(), 1);
        assert_eq!(
            deliveries(&app.channel, "alice", &org, &endpoint.id)
                .await
                .len(),
            1
        );

        // The director sees an organisation-level alert naming the host and
        // why; a member does not.
        let list = |who: &'static str, kind: pb::AlertKind| {
            let app = &app;
            let org = org.clone();
            async move {
                app.portfolio()
                    .list_alerts(authed(
                        who,
                        pb::ListAlertsRequest {
                            organisation_id: org,
                            kind: kind as i32,
                            ..Default::default()
                        },
                    ))
                    .await
                    .unwrap()
                    .into_inner()
                    .alerts
            }
        };
        let alerts = list("dina", pb::AlertKind::Unspecified).await;
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].kind, pb::AlertKind::WebhookDisabled as i32);
        assert_eq!(alerts[0].project_id, "");
        assert_eq!(alerts[0].webhook_endpoint_id, endpoint.id);
        assert!(
            alerts[0].reason.contains("127.0.0.1") && alerts[0].reason.contains("410"),
            "{}",
            alerts[0].reason
        );
        assert_eq!(list("dina", pb::AlertKind::WebhookDisabled).await, alerts);
        assert!(list("dina", pb::AlertKind::NoSponsor).await.is_empty());
        assert!(list("sam", pb::AlertKind::Unspecified).await.is_empty());
        assert!(list("sam", pb::AlertKind::WebhookDisabled).await.is_empty());
        // ... and an `alert.raised` event, also for the director only.
        let watched = |who: &'static str| {
            let app = &app;
            let org = org.clone();
            async move {
                let mut stream = app
                    .events()
                    .watch_events(authed(
                        who,
                        pb::WatchEventsRequest {
                            organisation_id: org,
                            types: vec!["alert.raised".into(), "alert.cleared".into()],
                            ..Default::default()
                        },
                    ))
                    .await
                    .unwrap()
                    .into_inner();
                let mut out = Vec::new();
                while let Ok(Ok(Some(m))) =
                    tokio::time::timeout(Duration::from_millis(500), stream.message()).await
                {
                    if let Some(pb::watch_events_response::Kind::Event(e)) = m.kind {
                        out.push((e.r#type, e.subject, e.data_json));
                    }
                }
                out
            }
        };
        let raised = watched("dina").await;
        assert_eq!(raised.len(), 1, "{raised:?}");
        assert_eq!(raised[0].0, "alert.raised");
        assert_eq!(raised[0].1, format!("webhook_endpoints/{}", endpoint.id));
        assert!(raised[0].2.contains("WEBHOOK_DISABLED"), "{}", raised[0].2);
        assert!(watched("sam").await.is_empty());

        // Re-enabling clears it.
        let current = get_endpoint(&app.channel, "alice", &org, &endpoint.id).await;
        hooks(&app.channel)
            .update_webhook_endpoint(authed(
                "alice",
                pb::UpdateWebhookEndpointRequest {
                    organisation_id: org.clone(),
                    endpoint: Some(pb::WebhookEndpoint {
                        id: endpoint.id.clone(),
                        enabled: true,
                        etag: current.etag,
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["enabled".into()],
                    }),
                },
            ))
            .await
            .unwrap();
        assert!(list("dina", pb::AlertKind::Unspecified).await.is_empty());
        let events = watched("dina").await;
        assert_eq!(
            events.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
            ["alert.raised", "alert.cleared"]
        );
        app.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn private_addresses_are_refused_unless_allow_listed() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| {
            hook_settings(s);
            s.webhooks.allowed_networks = Vec::new();
            s.webhooks.retry_initial_delay_ms = 60_000;
        })
        .await;
        let receiver = Receiver::start(Vec::new()).await;
        let (org, _) = app.create_org("hooks-ssrf", "alice").await;
        let org = org.id;
        let mut endpoints = Vec::new();
        for url in [
            receiver.url(),
            format!("http://localhost:{}/hooks", receiver.addr.port()),
            "http://10.1.2.3/hooks".to_owned(),
            "http://169.254.169.254/latest/meta-data".to_owned(),
        ] {
            let (endpoint, _) = create_endpoint(&app.channel, "alice", &org, &url, &[])
                .await
                .unwrap();
            endpoints.push((url, endpoint));
        }
        app.add_person("alice", &org, "dina", pb::Role::Director)
            .await;
        for (url, endpoint) in &endpoints {
            let log = eventually("a refused attempt", || async {
                let log = deliveries(&app.channel, "alice", &org, &endpoint.id).await;
                (log.first()?.attempts >= 1).then_some(log)
            })
            .await;
            assert_eq!(
                log[0].state,
                pb::WebhookDeliveryState::Pending as i32,
                "{url}"
            );
            assert_eq!(log[0].last_status_code, 0, "{url}");
            assert!(
                log[0].last_error.starts_with("refused:")
                    && log[0]
                        .last_error
                        .contains("not in webhooks.allowed_networks"),
                "{url}: {}",
                log[0].last_error
            );
        }
        assert!(receiver.received().is_empty());
        let metrics = scrape(app.metrics_addr.unwrap()).await;
        assert!(
            metrics.contains("jalon_webhook_deliveries_total{outcome=\"refused\"} 4"),
            "{metrics}"
        );
        app.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotation_signs_with_both_secrets_during_the_grace_period() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, hook_settings).await;
        let receiver = Receiver::start(Vec::new()).await;
        let (org, _) = app.create_org("hooks-rotate", "alice").await;
        let org = org.id;
        let (endpoint, old) = create_endpoint(&app.channel, "alice", &org, &receiver.url(), &[])
            .await
            .unwrap();
        let new = hooks(&app.channel)
            .rotate_webhook_secret(authed(
                "alice",
                pb::RotateWebhookSecretRequest {
                    organisation_id: org.clone(),
                    id: endpoint.id.clone(),
                    etag: endpoint.etag.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .secret;
        app.add_person("alice", &org, "dina", pb::Role::Director)
            .await;
        let got = receiver.wait_for(1).await;
        let signatures: Vec<&str> = got[0].header("webhook-signature").split(' ').collect();
        assert_eq!(signatures.len(), 2, "{signatures:?}");
        // Receivers holding either secret accept it.
        if let Some(verdicts) = third_party_verify(&[(&old, &got[0]), (&new, &got[0])]) {
            assert_eq!(verdicts[0]["valid"], true, "{}", verdicts[0]);
            assert_eq!(verdicts[1]["valid"], true, "{}", verdicts[1]);
        }
        app.cleanup().await;
    }
}

/// A server that can be killed: its task aborted, dropping everything it
/// runs, deliveries in flight included (as `kill -9` would, minus the
/// process).
struct Killable {
    channel: Channel,
    handle: JoinHandle<Result<(), String>>,
}

impl Killable {
    async fn start(settings: Settings) -> Self {
        let app = Application::build(settings).await.expect("builds");
        let addr = app.local_addr();
        let handle = tokio::spawn(app.run_until(std::future::pending()));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Self { channel, handle }
    }

    async fn kill(self) {
        self.handle.abort();
        let _ = self.handle.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_mid_delivery_loses_nothing() {
    for backend in backends() {
        let db = FreshDatabase::create(&backend).await;
        let mut settings = test_settings(&db.url);
        hook_settings(&mut settings);
        settings.metrics.enabled = false;
        settings.webhooks.timeout_secs = 1;
        settings.webhooks.lease_secs = 2;
        let receiver = Receiver::start(vec![Reply::Hold]).await;
        let first = Killable::start(settings.clone()).await;
        let (org, _) = {
            let response = first
                .channel
                .clone()
                .create_organisation_via(authed(
                    ROOT,
                    pb::CreateOrganisationRequest {
                        organisation: Some(organisation("hooks-kill")),
                        initial_admin: Some(person("alice", pb::Role::Unspecified)),
                        request_id: String::new(),
                    },
                ))
                .await;
            (response.organisation.unwrap().id, ())
        };
        let (endpoint, secret) =
            create_endpoint(&first.channel, "alice", &org, &receiver.url(), &[])
                .await
                .unwrap();
        jalon_proto::v1::person_service_client::PersonServiceClient::new(first.channel.clone())
            .create_person(authed(
                "alice",
                pb::CreatePersonRequest {
                    organisation_id: org.clone(),
                    person: Some(person("dina", pb::Role::Director)),
                    request_id: String::new(),
                },
            ))
            .await
            .unwrap();
        // The first replica is sending; the receiver holds the request; the
        // replica dies.
        receiver.wait_for(1).await;
        first.kill().await;
        settings.database.migrate = Some(false);
        let second = TestApp::start(db, settings).await;
        let got = receiver.wait_for(2).await;
        assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
        let log = eventually("the delivery succeeded on the second replica", || async {
            let log = deliveries(&second.channel, "alice", &org, &endpoint.id).await;
            (log.first()?.state == pb::WebhookDeliveryState::Succeeded as i32).then_some(log)
        })
        .await;
        assert_eq!(log.len(), 1);
        // The killed attempt was never recorded: one attempt, the second's.
        assert_eq!(log[0].attempts, 1);
        if let Some(verdicts) = third_party_verify(&[(&secret, &got[1])]) {
            assert_eq!(verdicts[0]["valid"], true, "{}", verdicts[0]);
        }
        second.cleanup().await;
    }
}

/// Creating an organisation through a bare channel.
trait CreateOrganisationVia {
    async fn create_organisation_via(
        self,
        request: tonic::Request<pb::CreateOrganisationRequest>,
    ) -> pb::CreateOrganisationResponse;
}

impl CreateOrganisationVia for Channel {
    async fn create_organisation_via(
        self,
        request: tonic::Request<pb::CreateOrganisationRequest>,
    ) -> pb::CreateOrganisationResponse {
        jalon_proto::v1::organisation_service_client::OrganisationServiceClient::new(self)
            .create_organisation(request)
            .await
            .unwrap()
            .into_inner()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_on_one_postgresql_deliver_each_event_once() {
    let Some(backend) = backends()
        .into_iter()
        .find(|b| matches!(b, Backend::Postgres(_)))
    else {
        println!("skipped: two replicas need one PostgreSQL database; set JALON_TEST_POSTGRES_URL");
        return;
    };
    let db = FreshDatabase::create(&backend).await;
    let shared = db.shared();
    let mut settings = test_settings(&db.url);
    hook_settings(&mut settings);
    let first = TestApp::start(db, settings.clone()).await;
    settings.database.migrate = Some(false);
    let second = TestApp::start(shared, settings).await;
    let receiver = Receiver::start(Vec::new()).await;
    let (org, _) = first.create_org("hooks-replicas", "alice").await;
    let org = org.id;
    let (endpoint, _) = create_endpoint(&first.channel, "alice", &org, &receiver.url(), &[])
        .await
        .unwrap();
    const PEOPLE: usize = 24;
    for i in 0..PEOPLE {
        let app = if i % 2 == 0 { &first } else { &second };
        app.add_person("alice", &org, &format!("p{i}"), pb::Role::Viewer)
            .await;
    }
    let got = receiver.wait_for(PEOPLE).await;
    let log = eventually("every delivery succeeded", || async {
        let log = deliveries(&second.channel, "alice", &org, &endpoint.id).await;
        (log.len() == PEOPLE
            && log
                .iter()
                .all(|d| d.state == pb::WebhookDeliveryState::Succeeded as i32))
        .then_some(log)
    })
    .await;
    assert!(log.iter().all(|d| d.attempts == 1));
    // Settle, then count: each event once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = receiver.received().len().max(got.len());
    let ids: HashSet<String> = receiver
        .received()
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert_eq!(ids.len(), PEOPLE);
    assert_eq!(got, PEOPLE);
    second.cleanup().await;
    first.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_endpoint_failing_for_the_configured_time_is_disabled_with_the_reason() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| {
            hook_settings(s);
            s.webhooks.disable_after_secs = 1;
        })
        .await;
        // Always 500.
        let receiver = Receiver::start(vec![Reply::Status(500); 1000]).await;
        let (org, _) = app.create_org("hooks-failing", "alice").await;
        let org = org.id;
        let (endpoint, _) = create_endpoint(&app.channel, "alice", &org, &receiver.url(), &[])
            .await
            .unwrap();
        app.add_person("alice", &org, "dina", pb::Role::Director)
            .await;
        let disabled = eventually("the failing endpoint disabled", || async {
            let e = get_endpoint(&app.channel, "alice", &org, &endpoint.id).await;
            (!e.enabled).then_some(e)
        })
        .await;
        assert!(
            disabled
                .disabled_reason
                .contains("every delivery failed since")
                && disabled.disabled_reason.contains("HTTP 500"),
            "{}",
            disabled.disabled_reason
        );
        assert!(disabled.failing_since.is_some());
        let log = deliveries(&app.channel, "alice", &org, &endpoint.id).await;
        assert!(log[0].attempts >= 2, "{log:?}");
        assert_eq!(log[0].last_status_code, 500);
        // Disabled: no more attempts.
        let attempts = receiver.received().len();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(receiver.received().len(), attempts);
        app.cleanup().await;
    }
}

/// A private CA and a certificate it signed for 127.0.0.1, made with the
/// `openssl` command in `dir`: (the CA's PEM path, the leaf's chain PEM,
/// its key PEM). `None` when `openssl` is not installed.
fn private_ca(dir: &std::path::Path) -> Option<(String, Vec<u8>, Vec<u8>)> {
    let run = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let ca = run(&[
        &["req", "-x509"][..],
        &ec,
        &["-keyout", "ca.key", "-out", "ca.pem", "-days", "1"],
        &["-subj", "/CN=jalon test CA"],
    ]
    .concat());
    match ca {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("openssl: {e}"),
        Ok(out) => assert!(out.status.success(), "openssl req -x509: {out:?}"),
    }
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let csr = run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat())
    .unwrap();
    assert!(csr.status.success(), "openssl req: {csr:?}");
    let signed = run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "1",
        "-extfile",
        "leaf.ext",
    ])
    .unwrap();
    assert!(signed.status.success(), "openssl x509: {signed:?}");
    Some((
        dir.join("ca.pem").to_string_lossy().into_owned(),
        std::fs::read(dir.join("leaf.pem")).unwrap(),
        std::fs::read(dir.join("leaf.key")).unwrap(),
    ))
}

/// An HTTPS receiver on 127.0.0.1 answering 204; the bodies it got.
async fn tls_receiver(
    chain: &[u8],
    key: &[u8],
) -> (SocketAddr, Arc<Mutex<Vec<Received>>>, JoinHandle<()>) {
    use tokio_rustls::{
        TlsAcceptor,
        rustls::{
            self,
            pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
        },
    };
    let certs = CertificateDer::pem_slice_iter(chain)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received: Arc<Mutex<Vec<Received>>> = Arc::default();
    let seen = received.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = service_fn(move |req: hyper::Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let headers = req
                            .headers()
                            .iter()
                            .map(|(k, v)| {
                                (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                            })
                            .collect();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        seen.lock().unwrap().push(Received {
                            headers,
                            body: String::from_utf8(body.to_vec()).unwrap(),
                        });
                        Ok::<_, Infallible>(
                            hyper::Response::builder()
                                .status(204)
                                .body(Full::new(Bytes::new()))
                                .unwrap(),
                        )
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, received, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_https_endpoint_signed_by_a_configured_private_ca_is_delivered_to() {
    let dir = std::env::temp_dir().join(format!("jalon-tls-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let Some((ca, chain, key)) = private_ca(&dir) else {
        eprintln!("skipped: the openssl command is not installed");
        return;
    };
    let (addr, received, receiver) = tls_receiver(&chain, &key).await;
    let url = format!("https://127.0.0.1:{}/hooks", addr.port());
    for backend in backends() {
        // Without the CA configured, the certificate is not trusted: a
        // failed attempt that says why, nothing received.
        let app = TestApp::spawn_with(&backend, hook_settings).await;
        let (org, _) = app.create_org("hooks-tls-untrusted", "alice").await;
        let (endpoint, _) = create_endpoint(&app.channel, "alice", &org.id, &url, &[])
            .await
            .unwrap();
        app.add_person("alice", &org.id, "dina", pb::Role::Director)
            .await;
        let log = eventually("an untrusted certificate refused", || async {
            let log = deliveries(&app.channel, "alice", &org.id, &endpoint.id).await;
            (log.first()?.attempts >= 1).then_some(log)
        })
        .await;
        assert!(log[0].last_error.contains("TLS"), "{}", log[0].last_error);
        assert!(received.lock().unwrap().is_empty());
        app.cleanup().await;

        // With it: delivered over TLS, signed.
        let ca = ca.clone();
        let app = TestApp::spawn_with(&backend, move |s| {
            hook_settings(s);
            s.webhooks.allow_http = false;
            s.webhooks.extra_root_certificates = vec![ca];
        })
        .await;
        let (org, _) = app.create_org("hooks-tls", "alice").await;
        let (endpoint, secret) = create_endpoint(&app.channel, "alice", &org.id, &url, &[])
            .await
            .unwrap();
        app.add_person("alice", &org.id, "dina", pb::Role::Director)
            .await;
        let got = eventually("a delivery over TLS", || async {
            let got = received.lock().unwrap().clone();
            (!got.is_empty()).then_some(got)
        })
        .await;
        let event: Value = serde_json::from_str(&got[0].body).unwrap();
        assert_eq!(event["type"], "person.created");
        assert!(!got[0].header("webhook-signature").is_empty());
        if let Some(verdicts) = third_party_verify(&[(secret.as_str(), &got[0])]) {
            assert!(verdicts.iter().all(|v| v["valid"] == true), "{verdicts:?}");
        }
        let log = eventually("the delivery succeeded", || async {
            let log = deliveries(&app.channel, "alice", &org.id, &endpoint.id).await;
            (log.first()?.state == pb::WebhookDeliveryState::Succeeded as i32).then_some(log)
        })
        .await;
        assert_eq!(log[0].last_status_code, 204);
        received.lock().unwrap().clear();
        app.cleanup().await;
    }
    receiver.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
