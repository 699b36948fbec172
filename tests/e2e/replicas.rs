//! Two replicas on one PostgreSQL database behave as one service: concurrent
//! writes through both lose no update, decide a gate once and create once
//! per `request_id`. The servers are two full applications in this process,
//! each with its own pool; nothing but the database is shared. Without
//! `JALON_TEST_POSTGRES_URL` these tests say so and do nothing (SQLite is
//! single-process).

use jalon_proto::v1 as pb;
use tonic::Code;

use crate::{helpers::*, organisations::futures_join_all};

/// Two servers on one fresh PostgreSQL database: the first migrates it, the
/// second starts on the current schema without migrating, as replicas do
/// after `jalon migrate`.
async fn two_replicas() -> Option<(TestApp, TestApp)> {
    let Some(backend) = backends()
        .into_iter()
        .find(|b| matches!(b, Backend::Postgres(_)))
    else {
        println!("skipped: two replicas need one PostgreSQL database; set JALON_TEST_POSTGRES_URL");
        return None;
    };
    let db = FreshDatabase::create(&backend).await;
    let shared = db.shared();
    let first = TestApp::start(db, test_settings(&shared.url)).await;
    let mut settings = test_settings(&shared.url);
    settings.database.migrate = Some(false);
    let second = TestApp::start(shared, settings).await;
    assert_ne!(first.addr, second.addr);
    Some((first, second))
}

async fn stop(first: TestApp, second: TestApp) {
    second.cleanup().await;
    first.cleanup().await;
}

/// An organisation (admin `alice`, director `dina`, sponsor `sam`, lead
/// `lea`) set up through both replicas.
async fn cast(a: &TestApp, b: &TestApp) -> (String, pb::Person, pb::Person) {
    let (org, _) = a.create_org("replicas", "alice").await;
    b.add_person("alice", &org.id, "dina", pb::Role::Director)
        .await;
    let sponsor = a
        .add_person("alice", &org.id, "sam", pb::Role::Member)
        .await;
    let lead = b
        .add_person("alice", &org.id, "lea", pb::Role::Member)
        .await;
    (org.id, sponsor, lead)
}

fn callbot(sponsor: &pb::Person, lead: &pb::Person) -> pb::Project {
    pb::Project {
        name: "Callbot".into(),
        sponsor_id: sponsor.id.clone(),
        lead_id: lead.id.clone(),
        ai_act_tier: pb::AiActTier::Minimal as i32,
        ..Default::default()
    }
}

async fn get_project(app: &TestApp, org: &str, id: &str) -> pb::Project {
    app.projects()
        .get_project(authed(
            "dina",
            pb::GetProjectRequest {
                organisation_id: org.into(),
                id: id.into(),
            },
        ))
        .await
        .expect("get project")
        .into_inner()
        .project
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_etag_updates_a_project_through_one_replica_only() {
    let Some((a, b)) = two_replicas().await else {
        return;
    };
    let (org, sponsor, lead) = cast(&a, &b).await;
    let mut project = b
        .create_project("dina", &org, callbot(&sponsor, &lead))
        .await;
    for round in 0..6 {
        let update = |app: &TestApp, via: &str| {
            let mut projects = app.projects();
            let request = authed(
                "dina",
                pb::UpdateProjectRequest {
                    organisation_id: org.clone(),
                    project: Some(pb::Project {
                        id: project.id.clone(),
                        etag: project.etag.clone(),
                        name: format!("Round {round} via {via}"),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["name".into()],
                    }),
                },
            );
            async move { projects.update_project(request).await }
        };
        let results = futures_join_all([update(&a, "A"), update(&b, "B")]).await;
        let winners: Vec<pb::Project> = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|r| r.get_ref().project.clone().unwrap())
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        for refused in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(refused.code(), Code::Aborted, "round {round}: {refused:?}");
        }
        let winner = winners.into_iter().next().unwrap();
        assert_ne!(winner.etag, project.etag);
        // Both replicas read the winner's write: nothing lost, nothing stale.
        for app in [&a, &b] {
            assert_eq!(get_project(app, &org, &project.id).await, winner);
        }
        project = winner;
    }
    stop(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_gate_review_decided_through_both_replicas_is_decided_once() {
    let Some((a, b)) = two_replicas().await else {
        return;
    };
    let ready = ready_review(&a, "replicas").await;
    b.add_person("alice", &ready.org, "dora", pb::Role::Director)
        .await;
    // Outcomes that each would be accepted alone (a GO also needs the KPI
    // criteria): exactly one may win the race.
    let calls = [
        (&a, "dina", pb::GateOutcome::Hold),
        (&b, "dora", pb::GateOutcome::Kill),
        (&b, "dina", pb::GateOutcome::Recycle),
        (&a, "dora", pb::GateOutcome::Hold),
    ]
    .map(|(app, who, outcome)| {
        let mut gates = app.gates();
        let request = authed(
            who,
            pb::DecideGateRequest {
                organisation_id: ready.org.clone(),
                review_id: ready.review.clone(),
                outcome: outcome as i32,
                rationale: format!("{who} decides"),
                conditions: vec![],
            },
        );
        async move { gates.decide_gate(request).await }
    });
    let results = futures_join_all(calls).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(refused.code(), Code::FailedPrecondition | Code::Aborted),
            "{refused:?}"
        );
    }
    let winner = results
        .into_iter()
        .find_map(Result::ok)
        .unwrap()
        .into_inner();
    let decided = winner.review.unwrap();
    let after = winner.project.unwrap();
    for app in [&a, &b] {
        let review = app
            .gates()
            .get_gate_review(authed(
                "dina",
                pb::GetGateReviewRequest {
                    organisation_id: ready.org.clone(),
                    id: ready.review.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .review
            .unwrap();
        assert_eq!(review.state, pb::GateReviewState::Decided as i32);
        assert_eq!(review.outcome, decided.outcome);
        assert_eq!(review.decided_by, decided.decided_by);
        assert_eq!(get_project(app, &ready.org, &ready.project.id).await, after);
        let events = app
            .audit()
            .list_audit_events(authed(
                "dina",
                pb::ListAuditEventsRequest {
                    organisation_id: ready.org.clone(),
                    project_id: ready.project.id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .events;
        assert_eq!(
            events.iter().filter(|e| e.action == "gate.decided").count(),
            1,
            "{events:?}"
        );
    }
    let verified = b
        .audit()
        .verify_audit_log(authed(
            "dina",
            pb::VerifyAuditLogRequest {
                organisation_id: ready.org.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(verified.valid, "{verified:?}");
    stop(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_request_id_through_both_replicas_creates_one_project() {
    let Some((a, b)) = two_replicas().await else {
        return;
    };
    let (org, sponsor, lead) = cast(&a, &b).await;
    let request_id = uuid::Uuid::now_v7().to_string();
    let calls = [&a, &b, &a, &b, &a, &b].map(|app| {
        let mut projects = app.projects();
        let request = authed(
            "dina",
            pb::CreateProjectRequest {
                organisation_id: org.clone(),
                project: Some(callbot(&sponsor, &lead)),
                request_id: request_id.clone(),
            },
        );
        async move { projects.create_project(request).await }
    });
    let ids: Vec<String> = futures_join_all(calls)
        .await
        .into_iter()
        .map(|r| {
            r.expect("a retry answers the first result")
                .into_inner()
                .project
                .unwrap()
                .id
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    for app in [&a, &b] {
        let listed = app
            .projects()
            .list_projects(authed(
                "dina",
                pb::ListProjectsRequest {
                    organisation_id: org.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .projects;
        assert_eq!(
            listed.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            [ids[0].as_str()]
        );
    }
    stop(a, b).await;
}

/// A watcher on one replica receives what is committed through the other
/// (PostgreSQL NOTIFY wakes every replica's watchers), in order and once.
#[tokio::test]
async fn a_watcher_on_one_replica_sees_the_other_replicas_commits() {
    let Some((a, b)) = two_replicas().await else {
        return;
    };
    let (org, sponsor, lead) = cast(&a, &b).await;
    let mut stream = a
        .events()
        .watch_events(authed(
            "dina",
            pb::WatchEventsRequest {
                organisation_id: org.clone(),
                from_now: true,
                ..Default::default()
            },
        ))
        .await
        .expect("watch on the first replica")
        .into_inner();
    let created = b
        .projects()
        .create_project(authed(
            "dina",
            pb::CreateProjectRequest {
                organisation_id: org.clone(),
                project: Some(callbot(&sponsor, &lead)),
                request_id: String::new(),
            },
        ))
        .await
        .expect("create through the second replica")
        .into_inner()
        .project
        .expect("project");
    let event = loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(5), stream.message())
            .await
            .expect("the event arrives within 5 s")
            .expect("the stream stays open")
            .expect("a message");
        if let Some(pb::watch_events_response::Kind::Event(e)) = message.kind {
            break e;
        }
    };
    assert_eq!(event.r#type, "project.created");
    assert_eq!(event.project_id, created.id);
    drop(stream);
    stop(a, b).await;
}
