//! Leavers: idempotent deactivation, the HR connector's upsert by
//! `external_id`, the alerts a departed sponsor or lead raises (with their
//! name and the day they left), and the hand-over of their projects.

use jalon_proto::v1 as pb;
use tonic::Code;

use crate::{
    gates::{accuracy_kpi, measurement},
    helpers::*,
};

/// A person with a real name.
async fn named(app: &TestApp, org: &str, subject: &str, name: &str, role: pb::Role) -> pb::Person {
    app.people()
        .create_person(authed(
            "alice",
            pb::CreatePersonRequest {
                organisation_id: org.into(),
                person: Some(pb::Person {
                    display_name: name.into(),
                    ..person(subject, role)
                }),
                request_id: String::new(),
            },
        ))
        .await
        .expect("create person")
        .into_inner()
        .person
        .unwrap()
}

async fn deactivate(app: &TestApp, org: &str, id: &str) -> Result<pb::Person, tonic::Status> {
    app.people()
        .deactivate_person(authed(
            "alice",
            pb::DeactivatePersonRequest {
                organisation_id: org.into(),
                id: id.into(),
                etag: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner().person.unwrap())
}

async fn audit(app: &TestApp, org: &str) -> Vec<pb::AuditEvent> {
    app.audit()
        .list_audit_events(authed(
            "alice",
            pb::ListAuditEventsRequest {
                organisation_id: org.into(),
                page_size: 500,
                ..Default::default()
            },
        ))
        .await
        .expect("audit")
        .into_inner()
        .events
}

async fn alerts(app: &TestApp, org: &str) -> Vec<pb::Alert> {
    app.portfolio()
        .list_alerts(authed(
            "dina",
            pb::ListAlertsRequest {
                organisation_id: org.into(),
                page_size: 1000,
                ..Default::default()
            },
        ))
        .await
        .expect("alerts")
        .into_inner()
        .alerts
}

async fn create_project(
    app: &TestApp,
    org: &str,
    name: &str,
    sponsor: &str,
    lead: &str,
) -> pb::Project {
    let project = pb::Project {
        sponsor_id: sponsor.into(),
        lead_id: lead.into(),
        ..minimal_project(name)
    };
    app.create_project("dina", org, project).await
}

fn hand_over(
    org: &str,
    from: &str,
    to: &str,
    responsibilities: &[pb::Responsibility],
    project_ids: &[&str],
) -> pb::HandOverProjectsRequest {
    pb::HandOverProjectsRequest {
        organisation_id: org.into(),
        from_person_id: from.into(),
        to_person_id: to.into(),
        responsibilities: responsibilities.iter().map(|r| *r as i32).collect(),
        project_ids: project_ids.iter().map(|s| (*s).to_owned()).collect(),
    }
}

#[tokio::test]
async fn deactivating_or_reactivating_twice_is_ok_and_records_nothing_more() {
    on_each_backend(async |app: &TestApp| {
        let (org, _) = app.create_org("acme", "alice").await;
        let hr = app
            .add_person("alice", &org.id, "hr-sync", pb::Role::Integration)
            .await;
        let bob = app
            .add_person("alice", &org.id, "bob", pb::Role::Member)
            .await;
        let first = app
            .people()
            .deactivate_person(authed(
                "hr-sync",
                pb::DeactivatePersonRequest {
                    organisation_id: org.id.clone(),
                    id: bob.id.clone(),
                    etag: bob.etag.clone(),
                },
            ))
            .await
            .expect("deactivate")
            .into_inner()
            .person
            .unwrap();
        assert!(!first.active);
        let events_after_first = audit(app, &org.id).await.len();
        // The connector retries with the etag it had: OK, unchanged.
        for _ in 0..2 {
            let again = app
                .people()
                .deactivate_person(authed(
                    "hr-sync",
                    pb::DeactivatePersonRequest {
                        organisation_id: org.id.clone(),
                        id: bob.id.clone(),
                        etag: bob.etag.clone(),
                    },
                ))
                .await
                .expect("a retried deactivation is OK")
                .into_inner()
                .person
                .unwrap();
            assert_eq!(again, first, "unchanged: same etag, same deactivate_time");
        }
        let events = audit(app, &org.id).await;
        assert_eq!(events.len(), events_after_first, "no event for a no-op");
        assert_eq!(
            events
                .iter()
                .filter(|e| e.action == "person.deactivated")
                .count(),
            1
        );
        // Reactivating, twice: the second is OK and records nothing.
        let back = app
            .people()
            .reactivate_person(authed(
                "hr-sync",
                pb::ReactivatePersonRequest {
                    organisation_id: org.id.clone(),
                    id: bob.id.clone(),
                    etag: first.etag.clone(),
                },
            ))
            .await
            .expect("reactivate")
            .into_inner()
            .person
            .unwrap();
        assert!(back.active);
        let again = app
            .people()
            .reactivate_person(authed(
                "hr-sync",
                pb::ReactivatePersonRequest {
                    organisation_id: org.id.clone(),
                    id: bob.id.clone(),
                    etag: first.etag.clone(),
                },
            ))
            .await
            .expect("a second reactivation is OK")
            .into_inner()
            .person
            .unwrap();
        assert_eq!(again, back);
        let events = audit(app, &org.id).await;
        assert_eq!(
            events
                .iter()
                .filter(|e| e.action == "person.reactivated")
                .count(),
            1
        );
        // A stale etag still counts when something would change.
        deactivate(app, &org.id, &bob.id).await.unwrap();
        expect_code(
            app.people()
                .reactivate_person(authed(
                    "hr-sync",
                    pb::ReactivatePersonRequest {
                        organisation_id: org.id.clone(),
                        id: bob.id.clone(),
                        etag: back.etag.clone(),
                    },
                ))
                .await,
            Code::Aborted,
        );
        assert_eq!(hr.role, pb::Role::Integration as i32);
    })
    .await;
}

fn hr_record(external_id: &str, subject: &str, title: &str, role: pb::Role) -> pb::Person {
    pb::Person {
        external_id: Some(external_id.into()),
        job_title: title.into(),
        ..person(subject, role)
    }
}

async fn upsert(
    app: &TestApp,
    who: &str,
    org: &str,
    person: pb::Person,
    mask: &[&str],
) -> Result<pb::UpsertPersonResponse, tonic::Status> {
    app.people()
        .upsert_person(authed(
            who,
            pb::UpsertPersonRequest {
                organisation_id: org.into(),
                person: Some(person),
                update_mask: Some(prost_types::FieldMask {
                    paths: mask.iter().map(|s| (*s).to_owned()).collect(),
                }),
            },
        ))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn an_hr_connector_upserts_people_by_external_id() {
    on_each_backend(async |app: &TestApp| {
        let (org, _) = app.create_org("acme", "alice").await;
        app.add_person("alice", &org.id, "hr-sync", pb::Role::Integration)
            .await;
        let mask = ["display_name", "department", "job_title", "role"];
        // Created: the whole record is used.
        let created = upsert(
            app,
            "hr-sync",
            &org.id,
            hr_record("E-1001", "grace", "Analyst", pb::Role::Member),
            &mask,
        )
        .await
        .expect("create by upsert");
        assert!(created.created);
        let grace = created.person.unwrap();
        assert_eq!(grace.external_id.as_deref(), Some("E-1001"));
        assert_eq!(grace.job_title, "Analyst");
        assert_eq!(grace.role, pb::Role::Member as i32);

        // Updated: only the masked fields, and only those that differ.
        let updated = upsert(
            app,
            "hr-sync",
            &org.id,
            pb::Person {
                email: "ignored@example.com".into(),
                ..hr_record("E-1001", "grace", "Director", pb::Role::Member)
            },
            &mask,
        )
        .await
        .expect("update by upsert");
        assert!(!updated.created);
        let after = updated.person.unwrap();
        assert_eq!(after.id, grace.id);
        assert_eq!(after.job_title, "Director");
        assert_eq!(after.email, grace.email, "email was not in the mask");
        assert_ne!(after.etag, grace.etag);

        // The same record again: nothing to write, nothing recorded.
        let before = audit(app, &org.id).await;
        let same = upsert(
            app,
            "hr-sync",
            &org.id,
            hr_record("E-1001", "grace", "Director", pb::Role::Member),
            &mask,
        )
        .await
        .expect("a no-op upsert");
        assert!(!same.created);
        assert_eq!(same.person.unwrap(), after, "unchanged, same etag");
        assert_eq!(audit(app, &org.id).await.len(), before.len());

        let actions: Vec<(String, String)> = before
            .iter()
            .filter(|e| e.resource_id == grace.id)
            .map(|e| (e.action.clone(), e.actor_subject.clone()))
            .collect();
        assert_eq!(
            actions,
            vec![
                ("person.created".to_owned(), "hr-sync".to_owned()),
                ("person.updated".to_owned(), "hr-sync".to_owned()),
            ]
        );
        let update = before
            .iter()
            .find(|e| e.action == "person.updated" && e.resource_id == grace.id)
            .unwrap();
        assert!(
            update.after_json.contains("Director"),
            "{}",
            update.after_json
        );
        assert!(
            !update.after_json.contains("display_name"),
            "only what changed"
        );

        // The role rules of Create and Update hold.
        expect_code(
            upsert(
                app,
                "hr-sync",
                &org.id,
                hr_record("E-2002", "mallory", "Admin", pb::Role::Admin),
                &mask,
            )
            .await,
            Code::PermissionDenied,
        );
        expect_code(
            upsert(
                app,
                "hr-sync",
                &org.id,
                hr_record("E-1001", "grace", "Director", pb::Role::Director),
                &mask,
            )
            .await,
            Code::PermissionDenied,
        );
        // An ADMIN changes a role by upsert: person.role_changed.
        let promoted = upsert(
            app,
            "alice",
            &org.id,
            hr_record("E-1001", "grace", "Director", pb::Role::Director),
            &mask,
        )
        .await
        .expect("an admin changes the role");
        assert_eq!(promoted.person.unwrap().role, pb::Role::Director as i32);
        assert!(
            audit(app, &org.id)
                .await
                .iter()
                .any(|e| e.action == "person.role_changed" && e.resource_id == grace.id)
        );
        // No external_id, or external_id in the mask: INVALID_ARGUMENT.
        expect_bad_field(
            upsert(
                app,
                "hr-sync",
                &org.id,
                person("nobody", pb::Role::Member),
                &mask,
            )
            .await,
            "person.external_id",
        );
        expect_bad_field(
            upsert(
                app,
                "hr-sync",
                &org.id,
                hr_record("E-1001", "grace", "Director", pb::Role::Director),
                &["external_id"],
            )
            .await,
            "update_mask",
        );
        // A MEMBER may not upsert.
        app.add_person("alice", &org.id, "bob", pb::Role::Member)
            .await;
        expect_code(
            upsert(
                app,
                "bob",
                &org.id,
                hr_record("E-3003", "eve", "Analyst", pb::Role::Member),
                &mask,
            )
            .await,
            Code::PermissionDenied,
        );
    })
    .await;
}

/// Answers the current phase's MUST items as the lead.
async fn answer_musts(app: &TestApp, org: &str, project: &str) {
    let items = app
        .assessments()
        .list_assessment_items(authed(
            "lea",
            pb::ListAssessmentItemsRequest {
                organisation_id: org.into(),
                project_id: project.into(),
                phase: pb::Phase::Ideation as i32,
                concern: 0,
            },
        ))
        .await
        .expect("items")
        .into_inner()
        .items;
    for item in items
        .iter()
        .filter(|i| i.kind == pb::QuestionKind::Must as i32)
    {
        app.assessments()
            .answer_assessment_item(authed(
                "lea",
                pb::AnswerAssessmentItemRequest {
                    organisation_id: org.into(),
                    project_id: project.into(),
                    key: item.key.clone(),
                    status: pb::AnswerStatus::Done as i32,
                    risk: pb::RiskLevel::Low as i32,
                    note: "checked with the business".into(),
                    evidence_uri: "https://wiki.example/evidence".into(),
                    justification: String::new(),
                    etag: String::new(),
                },
            ))
            .await
            .expect("answer");
    }
}

#[tokio::test]
async fn a_departed_sponsor_is_named_in_alerts_and_their_projects_are_handed_over() {
    on_each_backend(async |app: &TestApp| {
        let (org, _) = app.create_org("acme", "alice").await;
        let org = org.id;
        app.add_person("alice", &org, "dina", pb::Role::Director)
            .await;
        let grace = named(app, &org, "grace", "Grace Hopper", pb::Role::Member).await;
        let lea = named(app, &org, "lea", "Lea Lead", pb::Role::Member).await;
        let kat = named(app, &org, "kat", "Katherine Johnson", pb::Role::Member).await;
        let leo = named(app, &org, "leo", "Leo Left", pb::Role::Member).await;

        // Two projects sponsored by Grace; another led by Leo.
        let callbot = create_project(app, &org, "Callbot", &grace.id, &lea.id).await;
        let churn = create_project(app, &org, "Churn", &grace.id, &lea.id).await;
        let quay = create_project(app, &org, "Quay", &kat.id, &leo.id).await;
        // The callbot's review waits for Grace's signature.
        let kpi = app
            .kpis()
            .create_kpi(authed(
                "dina",
                pb::CreateKpiRequest {
                    organisation_id: org.clone(),
                    kpi: Some(accuracy_kpi(&callbot.id)),
                },
            ))
            .await
            .expect("kpi")
            .into_inner()
            .kpi
            .unwrap();
        for (stage, value) in [(pb::Stage::Baseline, 60.0), (pb::Stage::Poc, 85.0)] {
            app.kpis()
                .record_measurement(authed(
                    "dina",
                    pb::RecordMeasurementRequest {
                        organisation_id: org.clone(),
                        measurement: Some(measurement(&kpi.id, stage, value)),
                    },
                ))
                .await
                .expect("measure");
        }
        answer_musts(app, &org, &callbot.id).await;
        let review = app
            .gates()
            .request_gate_review(authed(
                "lea",
                pb::RequestGateReviewRequest {
                    organisation_id: org.clone(),
                    project_id: callbot.id.clone(),
                },
            ))
            .await
            .expect("request")
            .into_inner()
            .review
            .unwrap();
        assert_eq!(review.signatories[0].person_id, grace.id);

        // Grace and Leo leave.
        let day = |p: &pb::Person| {
            let t = p.deactivate_time.unwrap();
            chrono::DateTime::from_timestamp(t.seconds, 0)
                .unwrap()
                .date_naive()
                .to_string()
        };
        let left_on = day(&deactivate(app, &org, &grace.id).await.unwrap());
        let leo_left_on = day(&deactivate(app, &org, &leo.id).await.unwrap());
        let raised = alerts(app, &org).await;
        let about = |kind: pb::AlertKind| -> Vec<(String, String)> {
            raised
                .iter()
                .filter(|a| a.kind == kind as i32)
                .map(|a| (a.project_name.clone(), a.reason.clone()))
                .collect()
        };
        let sponsor_gone = format!("Grace Hopper, sponsor, left on {left_on}");
        let mut expected = vec![
            ("Callbot".to_owned(), sponsor_gone.clone()),
            ("Churn".to_owned(), sponsor_gone.clone()),
        ];
        expected.sort();
        let mut got = about(pb::AlertKind::SponsorInactive);
        got.sort();
        assert_eq!(got, expected);
        assert_eq!(
            about(pb::AlertKind::LeadInactive),
            vec![(
                "Quay".to_owned(),
                format!("Leo Left, lead, left on {leo_left_on}")
            )]
        );
        for a in &raised {
            assert!(!a.reason.contains(&grace.id) && !a.reason.contains("people/"));
        }

        // Refused: an inactive recipient, the same person, a stranger, a
        // MEMBER, a project Grace neither sponsors nor leads.
        let mut projects = app.projects();
        expect_bad_field(
            projects
                .hand_over_projects(authed(
                    "dina",
                    hand_over(&org, &grace.id, &leo.id, &[], &[]),
                ))
                .await,
            "to_person_id",
        );
        expect_bad_field(
            projects
                .hand_over_projects(authed(
                    "dina",
                    hand_over(&org, &grace.id, &grace.id, &[], &[]),
                ))
                .await,
            "to_person_id",
        );
        let (other, _) = app.create_org("globex", "olga").await;
        let stranger = app
            .add_person("olga", &other.id, "oscar", pb::Role::Member)
            .await;
        expect_bad_field(
            projects
                .hand_over_projects(authed(
                    "dina",
                    hand_over(&org, &grace.id, &stranger.id, &[], &[]),
                ))
                .await,
            "to_person_id",
        );
        expect_bad_field(
            projects
                .hand_over_projects(authed(
                    "dina",
                    hand_over(&org, &stranger.id, &kat.id, &[], &[]),
                ))
                .await,
            "from_person_id",
        );
        expect_code(
            projects
                .hand_over_projects(authed("lea", hand_over(&org, &grace.id, &kat.id, &[], &[])))
                .await,
            Code::PermissionDenied,
        );
        expect_bad_field(
            projects
                .hand_over_projects(authed(
                    "dina",
                    hand_over(&org, &grace.id, &kat.id, &[], &[&callbot.id, &quay.id]),
                ))
                .await,
            "project_ids[1]",
        );
        // Kat sponsors Quay: she cannot take over its lead too.
        expect_bad_field(
            projects
                .hand_over_projects(authed(
                    "dina",
                    hand_over(&org, &leo.id, &kat.id, &[pb::Responsibility::Lead], &[]),
                ))
                .await,
            "to_person_id",
        );

        // The director hands over all of Grace's projects to Kat.
        let done = projects
            .hand_over_projects(authed(
                "dina",
                hand_over(&org, &grace.id, &kat.id, &[], &[]),
            ))
            .await
            .expect("hand over")
            .into_inner();
        let mut handed: Vec<(String, String)> = done
            .projects
            .iter()
            .map(|p| (p.name.clone(), p.sponsor_id.clone()))
            .collect();
        handed.sort();
        assert_eq!(
            handed,
            vec![
                ("Callbot".to_owned(), kat.id.clone()),
                ("Churn".to_owned(), kat.id.clone())
            ]
        );
        assert!(done.projects.iter().all(|p| p.lead_id == lea.id));
        assert_eq!(done.reassigned_review_ids, vec![review.id.clone()]);
        // The sponsor alerts are gone; Leo's stays.
        let now: Vec<i32> = alerts(app, &org).await.iter().map(|a| a.kind).collect();
        assert!(
            !now.contains(&(pb::AlertKind::SponsorInactive as i32)),
            "{now:?}"
        );
        assert!(now.contains(&(pb::AlertKind::LeadInactive as i32)));
        // Nothing left to hand over: OK, empty.
        let again = projects
            .hand_over_projects(authed(
                "dina",
                hand_over(&org, &grace.id, &kat.id, &[], &[]),
            ))
            .await
            .expect("nothing left")
            .into_inner();
        assert!(again.projects.is_empty() && again.reassigned_review_ids.is_empty());

        // Audited: one project.updated per project, the review's new
        // signatory, all by the director.
        let events = audit(app, &org).await;
        let by_dina: Vec<(String, String)> = events
            .iter()
            .filter(|e| e.actor_subject == "dina")
            .filter(|e| e.action == "project.updated" || e.action == "gate.signatories_changed")
            .map(|e| (e.action.clone(), e.resource_id.clone()))
            .collect();
        let mut expected = vec![
            ("project.updated".to_owned(), callbot.id.clone()),
            ("project.updated".to_owned(), churn.id.clone()),
            ("gate.signatories_changed".to_owned(), review.id.clone()),
        ];
        expected.sort();
        let mut by_dina_sorted = by_dina.clone();
        by_dina_sorted.sort();
        assert_eq!(by_dina_sorted, expected);
        let update = events
            .iter()
            .find(|e| e.action == "project.updated" && e.resource_id == callbot.id)
            .unwrap();
        assert!(update.before_json.contains(&grace.id) && update.after_json.contains(&kat.id));

        // Grace can no longer sign; Kat signs and the gate is decided.
        expect_code(
            app.gates()
                .sign_gate(authed(
                    "grace",
                    pb::SignGateRequest {
                        organisation_id: org.clone(),
                        review_id: review.id.clone(),
                        verdict: pb::Verdict::Approve as i32,
                        comment: String::new(),
                    },
                ))
                .await,
            Code::NotFound,
        );
        let signed = app
            .gates()
            .sign_gate(authed(
                "kat",
                pb::SignGateRequest {
                    organisation_id: org.clone(),
                    review_id: review.id.clone(),
                    verdict: pb::Verdict::Approve as i32,
                    comment: "taking over from Grace".into(),
                },
            ))
            .await
            .expect("the new sponsor signs")
            .into_inner()
            .review
            .unwrap();
        assert_eq!(signed.signatories.len(), 1);
        assert_eq!(signed.signatories[0].person_id, kat.id);
        let decided = app
            .gates()
            .decide_gate(authed(
                "dina",
                pb::DecideGateRequest {
                    organisation_id: org.clone(),
                    review_id: review.id.clone(),
                    outcome: pb::GateOutcome::Go as i32,
                    rationale: "the new sponsor carries it".into(),
                    conditions: vec![],
                },
            ))
            .await
            .expect("GO")
            .into_inner();
        assert_eq!(decided.project.unwrap().phase, pb::Phase::Poc as i32);

        // The HR system corrects a leaver's name: the alert follows.
        app.people()
            .update_person(authed(
                "alice",
                pb::UpdatePersonRequest {
                    organisation_id: org.clone(),
                    person: Some(pb::Person {
                        id: leo.id.clone(),
                        display_name: "Leonard Left".into(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["display_name".into()],
                    }),
                },
            ))
            .await
            .expect("rename");
        let reasons: Vec<String> = alerts(app, &org)
            .await
            .into_iter()
            .filter(|a| a.kind == pb::AlertKind::LeadInactive as i32)
            .map(|a| a.reason)
            .collect();
        assert_eq!(
            reasons,
            vec![format!("Leonard Left, lead, left on {leo_left_on}")]
        );

        // The lead hand-over of a chosen project: Leo's Quay to Lea.
        let quay_done = projects
            .hand_over_projects(authed(
                "alice",
                hand_over(
                    &org,
                    &leo.id,
                    &lea.id,
                    &[pb::Responsibility::Lead],
                    &[&quay.id],
                ),
            ))
            .await
            .expect("hand over a lead")
            .into_inner();
        assert_eq!(quay_done.projects[0].lead_id, lea.id);
        assert_eq!(quay_done.projects[0].sponsor_id, kat.id);
        let left: Vec<i32> = alerts(app, &org).await.iter().map(|a| a.kind).collect();
        assert!(
            !left.contains(&(pb::AlertKind::LeadInactive as i32))
                && !left.contains(&(pb::AlertKind::SponsorInactive as i32)),
            "{left:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn another_organisations_director_cannot_hand_over_projects() {
    on_each_backend(async |app: &TestApp| {
        let (org, _) = app.create_org("acme", "alice").await;
        let org = org.id;
        app.add_person("alice", &org, "dina", pb::Role::Director)
            .await;
        let grace = named(app, &org, "grace", "Grace Hopper", pb::Role::Member).await;
        let kat = named(app, &org, "kat", "Katherine Johnson", pb::Role::Member).await;
        let project = create_project(app, &org, "Callbot", &grace.id, "").await;
        let (other, _) = app.create_org("globex", "olga").await;
        app.add_person("olga", &other.id, "otto", pb::Role::Director)
            .await;
        let theirs = app
            .add_person("olga", &other.id, "oscar", pb::Role::Member)
            .await;
        let theirs_too = app
            .add_person("olga", &other.id, "opal", pb::Role::Member)
            .await;
        let mut projects = app.projects();
        // Through this organisation: it does not exist for them.
        expect_code(
            projects
                .hand_over_projects(authed(
                    "otto",
                    hand_over(&org, &grace.id, &kat.id, &[], &[&project.id]),
                ))
                .await,
            Code::NotFound,
        );
        // Through their own: this organisation's project is not found.
        expect_code(
            projects
                .hand_over_projects(authed(
                    "otto",
                    hand_over(&other.id, &theirs.id, &theirs_too.id, &[], &[&project.id]),
                ))
                .await,
            Code::NotFound,
        );
        let unchanged = projects
            .get_project(authed(
                "dina",
                pb::GetProjectRequest {
                    organisation_id: org.clone(),
                    id: project.id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .project
            .unwrap();
        assert_eq!(unchanged.sponsor_id, grace.id);
        assert_eq!(unchanged.etag, project.etag);
    })
    .await;
}
