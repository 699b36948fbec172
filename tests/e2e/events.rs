//! EventService end to end: watch then decide on another connection, list
//! then watch with no gap and no duplicate, resume under concurrent writers,
//! a member's filtered view, expired history, heartbeats, a deactivated
//! caller, shutdown, and another organisation's events invisible.

use std::{collections::BTreeSet, time::Duration};

use chrono::Utc;
use jalon_proto::v1::{self as pb, watch_events_response::Kind};
use tonic::{Code, Status, Streaming};

use crate::{helpers::*, kpis::eur, organisations::futures_join_all};

type Watch = Streaming<pb::WatchEventsResponse>;

async fn watch(app: &TestApp, who: &str, request: pb::WatchEventsRequest) -> Result<Watch, Status> {
    app.events()
        .watch_events(authed(who, request))
        .await
        .map(|r| r.into_inner())
}

fn after(org: &str, position: i64) -> pb::WatchEventsRequest {
    pb::WatchEventsRequest {
        organisation_id: org.into(),
        after_position: position,
        ..Default::default()
    }
}

/// The next message, within `wait`.
async fn next(stream: &mut Watch, wait: Duration) -> Option<Result<Kind, Status>> {
    match tokio::time::timeout(wait, stream.message()).await {
        Ok(Ok(Some(m))) => m.kind.map(Ok),
        Ok(Ok(None)) => None,
        Ok(Err(status)) => Some(Err(status)),
        Err(_) => None,
    }
}

/// Events until none arrives for `quiet` (heartbeats skipped).
async fn drain(stream: &mut Watch, quiet: Duration) -> Vec<pb::Event> {
    let mut out = Vec::new();
    while let Some(message) = next(stream, quiet).await {
        match message {
            Ok(Kind::Event(e)) => out.push(e),
            Ok(Kind::Heartbeat(_)) => {}
            Err(status) => panic!("the stream failed: {status:?}"),
        }
    }
    out
}

fn types(events: &[pb::Event]) -> Vec<&str> {
    events.iter().map(|e| e.r#type.as_str()).collect()
}

fn cost_request(org: &str, project: &str, amount: &str) -> pb::RecordCostRequest {
    pb::RecordCostRequest {
        organisation_id: org.into(),
        cost: Some(pb::Cost {
            project_id: project.into(),
            amount: eur(amount),
            category: pb::CostCategory::People as i32,
            nature: pb::CostNature::Opex as i32,
            incurred_on: Some(pb::Date {
                year: 2026,
                month: 11,
                day: 2,
            }),
            ..Default::default()
        }),
    }
}

async fn cost(app: &TestApp, who: &str, org: &str, project: &str, amount: &str) {
    app.finance()
        .record_cost(authed(who, cost_request(org, project, amount)))
        .await
        .expect("record cost");
}

async fn create_project(app: &TestApp, who: &str, org: &str, name: &str) -> pb::Project {
    app.create_project(who, org, minimal_project(name)).await
}

#[tokio::test]
async fn a_gate_decided_on_another_connection_reaches_the_watchers_it_concerns() {
    on_each_backend(async |app: &TestApp| {
        let s = ready_review(app, "acme").await;
        app.add_person("alice", &s.org, "zed", pb::Role::Member)
            .await;
        let (other, _) = app.create_org("globex", "gina").await;

        let mut director = watch(
            app,
            "dina",
            pb::WatchEventsRequest {
                organisation_id: s.org.clone(),
                from_now: true,
                ..Default::default()
            },
        )
        .await
        .expect("watch");
        // The lead sees the project's events; a member unrelated to it
        // does not.
        let mut lead = watch(app, "lea", after(&s.org, 0)).await.expect("watch");
        let mut stranger = watch(app, "zed", after(&s.org, 0)).await.expect("watch");
        // Another organisation's people cannot watch this one.
        expect_code(watch(app, "gina", after(&s.org, 0)).await, Code::NotFound);
        let mut theirs = watch(app, "gina", after(&other.id, 0))
            .await
            .expect("watch");

        let mut gates = jalon_proto::v1::gate_service_client::GateServiceClient::new(
            tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
                .unwrap()
                .connect()
                .await
                .expect("a second connection"),
        );
        gates
            .decide_gate(authed(
                "dina",
                pb::DecideGateRequest {
                    organisation_id: s.org.clone(),
                    review_id: s.review.clone(),
                    outcome: pb::GateOutcome::Hold as i32,
                    rationale: "waiting for the budget".into(),
                    conditions: vec![],
                },
            ))
            .await
            .expect("decide");

        let seen = drain(&mut director, Duration::from_millis(800)).await;
        assert_eq!(
            types(&seen),
            vec!["gate.decided", "project.status_changed"],
            "{seen:#?}"
        );
        let decided: serde_json::Value = serde_json::from_str(&seen[0].data_json).unwrap();
        assert_eq!(decided["review_id"], s.review.as_str());
        assert_eq!(decided["outcome"], "HOLD");
        assert_eq!(seen[0].project_id, s.project.id);
        assert_eq!(seen[0].actor_subject, "dina");
        assert_eq!(seen[1].position, seen[0].position + 1);
        let status: serde_json::Value = serde_json::from_str(&seen[1].data_json).unwrap();
        assert_eq!(status["from"], "ACTIVE");
        assert_eq!(status["to"], "ON_HOLD");

        let led = drain(&mut lead, Duration::from_millis(800)).await;
        assert!(
            led.iter()
                .all(|e| e.project_id.is_empty() || e.project_id == s.project.id),
            "{led:#?}"
        );
        for expected in [
            "person.created",
            "project.created",
            "assessment.answered",
            "gate.review_requested",
            "gate.signed",
            "gate.decided",
            "project.status_changed",
        ] {
            assert!(
                types(&led).contains(&expected),
                "{expected}: {:?}",
                types(&led)
            );
        }
        let unrelated = drain(&mut stranger, Duration::from_millis(300)).await;
        assert!(
            unrelated.iter().all(|e| e.project_id.is_empty()),
            "a member sees no event of a project they neither lead nor sponsor: {unrelated:#?}"
        );
        assert!(types(&unrelated).contains(&"person.created"));
        let globex = drain(&mut theirs, Duration::from_millis(300)).await;
        assert!(
            globex.iter().all(|e| !e.data_json.contains(&s.project.id)
                && e.project_id.is_empty()
                && !e.subject.contains(&s.org)),
            "{globex:#?}"
        );
        // No payload carries an e-mail address.
        assert!(led.iter().all(|e| !e.data_json.contains('@')));
    })
    .await;
}

#[tokio::test]
async fn a_list_then_a_watch_from_its_position_misses_nothing_and_repeats_nothing() {
    on_each_backend(async |app: &TestApp| {
        let (org, _) = app.create_org("acme", "alice").await;
        app.add_person("alice", &org.id, "dina", pb::Role::Director)
            .await;
        let first = create_project(app, "dina", &org.id, "Before the list").await;
        cost(app, "dina", &org.id, &first.id, "10.00").await;
        let listed = app
            .projects()
            .list_projects(authed(
                "dina",
                pb::ListProjectsRequest {
                    organisation_id: org.id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .expect("list")
            .into_inner();
        assert_eq!(listed.projects.len(), 1);
        let position = listed.event_position;
        assert!(position > 0);
        let summary = app
            .portfolio()
            .get_portfolio_summary(authed(
                "dina",
                pb::GetPortfolioSummaryRequest {
                    organisation_id: org.id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .expect("summary")
            .into_inner();
        assert_eq!(summary.event_position, position, "nothing happened between");
        let alerts = app
            .portfolio()
            .list_alerts(authed(
                "dina",
                pb::ListAlertsRequest {
                    organisation_id: org.id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .expect("alerts")
            .into_inner();
        assert_eq!(alerts.event_position, position);
        let rows = app
            .portfolio()
            .list_portfolio_projects(authed(
                "dina",
                pb::ListPortfolioProjectsRequest {
                    organisation_id: org.id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .expect("rows")
            .into_inner();
        assert_eq!(rows.event_position, position);

        let second = create_project(app, "dina", &org.id, "After the list").await;
        let mut stream = watch(app, "dina", after(&org.id, position))
            .await
            .expect("watch");
        let seen = drain(&mut stream, Duration::from_millis(800)).await;
        assert_eq!(seen.first().map(|e| e.position), Some(position + 1));
        assert!(seen.iter().all(|e| e.position > position));
        let created: Vec<&pb::Event> = seen
            .iter()
            .filter(|e| e.r#type == "project.created")
            .collect();
        assert_eq!(created.len(), 1, "{seen:#?}");
        assert_eq!(created[0].project_id, second.id);
        assert!(seen.iter().all(|e| e.project_id != first.id), "{seen:#?}");
    })
    .await;
}

#[tokio::test]
async fn a_watcher_resuming_under_concurrent_writers_sees_every_event_once_in_order() {
    on_each_backend(async |app: &TestApp| {
        let (org, _) = app.create_org("acme", "alice").await;
        app.add_person("alice", &org.id, "dina", pb::Role::Director)
            .await;
        let mut projects = Vec::new();
        for i in 0..4 {
            projects.push(create_project(app, "dina", &org.id, &format!("P{i}")).await);
        }
        let mut stream = watch(
            app,
            "dina",
            pb::WatchEventsRequest {
                organisation_id: org.id.clone(),
                from_now: true,
                types: vec!["finance.costs_posted".into()],
                ..Default::default()
            },
        )
        .await
        .expect("watch");
        const WRITES: usize = 15;
        let writers = futures_join_all(projects.iter().map(|p| {
            let request = cost_request(&org.id, &p.id, "1.00");
            let mut finance = app.finance();
            async move {
                for _ in 0..WRITES {
                    finance
                        .record_cost(authed("dina", request.clone()))
                        .await
                        .expect("record cost");
                }
            }
        }));
        let reader = async {
            let mut seen: Vec<pb::Event> = Vec::new();
            // Read some, disconnect, resume after the last position seen.
            while seen.len() < 10 {
                match next(&mut stream, Duration::from_secs(10)).await {
                    Some(Ok(Kind::Event(e))) => seen.push(e),
                    Some(Ok(Kind::Heartbeat(_))) => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
            drop(stream);
            let last = seen.last().map(|e| e.position).unwrap_or(0);
            let mut resumed = watch(
                app,
                "dina",
                pb::WatchEventsRequest {
                    organisation_id: org.id.clone(),
                    after_position: last,
                    types: vec!["finance.costs_posted".into()],
                    ..Default::default()
                },
            )
            .await
            .expect("resume");
            while seen.len() < WRITES * 4 {
                match next(&mut resumed, Duration::from_secs(10)).await {
                    Some(Ok(Kind::Event(e))) => seen.push(e),
                    Some(Ok(Kind::Heartbeat(_))) => {}
                    other => panic!("unexpected {other:?} after {} events", seen.len()),
                }
            }
            // Nothing more.
            assert!(
                drain(&mut resumed, Duration::from_millis(500))
                    .await
                    .is_empty()
            );
            seen
        };
        let (_, seen) = tokio::join!(writers, reader);
        let positions: Vec<i64> = seen.iter().map(|e| e.position).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "in order, once: {positions:?}"
        );
        let ids: BTreeSet<&str> = seen.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), WRITES * 4);
        for p in &projects {
            assert_eq!(
                seen.iter().filter(|e| e.project_id == p.id).count(),
                WRITES,
                "every write of {} arrived once",
                p.name
            );
        }
        // The director sees everything: the positions of a full replay are
        // 1, 2, ... with no hole.
        let mut all = watch(app, "dina", after(&org.id, 0)).await.expect("replay");
        let replay = drain(&mut all, Duration::from_millis(800)).await;
        let expected: Vec<i64> = (1..=i64::try_from(replay.len()).unwrap()).collect();
        assert_eq!(
            replay.iter().map(|e| e.position).collect::<Vec<_>>(),
            expected
        );
    })
    .await;
}

#[tokio::test]
async fn bad_positions_types_and_expired_history_are_refused_clearly() {
    on_each_backend(async |app: &TestApp| {
        let (org, _) = app.create_org("acme", "alice").await;
        app.add_person("alice", &org.id, "dina", pb::Role::Director)
            .await;
        create_project(app, "dina", &org.id, "Old news").await;
        expect_bad_field(
            watch(
                app,
                "dina",
                pb::WatchEventsRequest {
                    organisation_id: org.id.clone(),
                    types: vec!["gate.decided".into(), "gate.exploded".into()],
                    ..Default::default()
                },
            )
            .await,
            "types[1]",
        );
        expect_bad_field(
            watch(app, "dina", after(&org.id, 1_000)).await,
            "after_position",
        );
        expect_bad_field(
            watch(app, "dina", after(&org.id, -1)).await,
            "after_position",
        );

        // Everything so far passes its retention.
        let conn = app.db.connect().await;
        let purged = jalon_store::events::purge(&conn, Utc::now() + chrono::Duration::days(1))
            .await
            .expect("purge");
        assert!(purged > 0);
        let status = expect_code(
            watch(app, "dina", after(&org.id, 0)).await,
            Code::FailedPrecondition,
        );
        assert_eq!(precondition_kinds(&status), vec!["HISTORY_EXPIRED"]);
        // From now on still works, and a list gives a position to resume at.
        let position = app
            .projects()
            .list_projects(authed(
                "dina",
                pb::ListProjectsRequest {
                    organisation_id: org.id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .expect("list")
            .into_inner()
            .event_position;
        let mut stream = watch(app, "dina", after(&org.id, position))
            .await
            .expect("watch");
        create_project(app, "dina", &org.id, "Fresh news").await;
        let seen = drain(&mut stream, Duration::from_millis(800)).await;
        assert_eq!(
            seen.first().map(|e| e.r#type.as_str()),
            Some("project.created")
        );
        assert_eq!(seen[0].position, position + 1);
    })
    .await;
}

#[tokio::test]
async fn a_quiet_watch_gets_heartbeats_and_a_deactivated_caller_is_cut_off() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| s.events.heartbeat_secs = 1).await;
        let (org, _) = app.create_org("acme", "alice").await;
        let zed = app
            .add_person("alice", &org.id, "zed", pb::Role::Member)
            .await;
        let mut stream = watch(
            &app,
            "zed",
            pb::WatchEventsRequest {
                organisation_id: org.id.clone(),
                from_now: true,
                ..Default::default()
            },
        )
        .await
        .expect("watch");
        match next(&mut stream, Duration::from_secs(3)).await {
            Some(Ok(Kind::Heartbeat(beat))) => {
                // alice's and zed's person.created.
                assert_eq!(beat.position, 2, "the position of the head: {beat:?}");
            }
            other => panic!("expected a heartbeat, got {other:?}"),
        }
        app.people()
            .deactivate_person(authed(
                "alice",
                pb::DeactivatePersonRequest {
                    organisation_id: org.id.clone(),
                    id: zed.id.clone(),
                    etag: zed.etag.clone(),
                },
            ))
            .await
            .expect("deactivate");
        let end = loop {
            match next(&mut stream, Duration::from_secs(3)).await {
                Some(Ok(_)) => continue,
                other => break other,
            }
        };
        match end {
            Some(Err(status)) => assert_eq!(status.code(), Code::PermissionDenied, "{status:?}"),
            other => panic!("the stream should end PERMISSION_DENIED, got {other:?}"),
        }
        app.cleanup().await;
    }
}

#[tokio::test]
async fn on_shutdown_watch_streams_end_unavailable() {
    for backend in backends() {
        let mut app = TestApp::spawn(&backend).await;
        let (org, _) = app.create_org("acme", "alice").await;
        let mut stream = watch(&app, "alice", after(&org.id, 0))
            .await
            .expect("watch");
        assert!(
            !drain(&mut stream, Duration::from_millis(300))
                .await
                .is_empty()
        );
        app.signal_shutdown();
        let end = loop {
            match next(&mut stream, Duration::from_secs(5)).await {
                Some(Ok(_)) => continue,
                other => break other,
            }
        };
        match end {
            Some(Err(status)) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
            other => panic!("the stream should end UNAVAILABLE, got {other:?}"),
        }
        app.wait_stopped().await.expect("stopped");
        app.db.drop_database().await;
    }
}

/// A browser's gRPC-Web call (HTTP/1.1, CORS) watches too: the replay and
/// then a live event arrive as frames of one streamed answer.
#[tokio::test]
async fn a_browser_watches_over_grpc_web() {
    use prost::Message;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(&Backend::Sqlite, |s| {
        s.server.cors_allowed_origins = vec!["https://portfolio.example".into()];
    })
    .await;
    let (org, _) = app.create_org("web", "alice").await;
    let request = after(&org.id, 0).encode_to_vec();
    let mut frame = vec![0_u8];
    frame.extend(u32::try_from(request.len()).unwrap().to_be_bytes());
    frame.extend(request);
    let head = format!(
        "POST /jalon.v1.EventService/WatchEvents HTTP/1.1\r\nHost: jalon\r\n\
         Origin: https://portfolio.example\r\nContent-Type: application/grpc-web+proto\r\n\
         X-Grpc-Web: 1\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
        token("alice"),
        frame.len()
    );
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&frame).await.unwrap();
    let mut answer = Vec::new();
    let mut live_sent = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        let mut chunk = [0_u8; 4096];
        match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut chunk)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => {}
        }
        let text = String::from_utf8_lossy(&answer).to_string();
        if !live_sent && text.contains("person.created") {
            // The replay arrived: now a live change.
            app.add_person("alice", &org.id, "webby", pb::Role::Viewer)
                .await;
            live_sent = true;
        }
        if live_sent && text.matches("person.created").count() >= 2 {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer).to_string();
    let lower = text.to_lowercase();
    assert!(lower.starts_with("http/1.1 200"), "{text}");
    assert!(
        lower.contains("access-control-allow-origin: https://portfolio.example"),
        "{text}"
    );
    assert!(lower.contains("application/grpc-web"), "{text}");
    assert_eq!(
        text.matches("person.created").count(),
        2,
        "the replayed and the live event: {text}"
    );
    drop(stream);
    app.cleanup().await;
}
