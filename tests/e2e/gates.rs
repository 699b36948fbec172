//! The lifecycle end to end: assessments, gate reviews, sign-offs,
//! decisions, conditions, lifecycle actions and the audit chain.

use jalon_proto::v1 as pb;
use sea_orm::ConnectionTrait;
use tonic::Code;

use crate::{helpers::*, organisations::futures_join_all};

/// An organisation with a director, a sponsor, a lead, a viewer, and one
/// project led by the lead and sponsored by the sponsor.
struct Stage {
    org: String,
    project: pb::Project,
    sponsor: String,
    lead: String,
}

async fn stage(app: &TestApp, configure: impl FnOnce(&mut pb::Project)) -> Stage {
    let (org, _) = app.create_org("vilogia", "alice").await;
    app.add_person("alice", &org.id, "dina", pb::Role::Director)
        .await;
    let sponsor = app
        .add_person("alice", &org.id, "sam", pb::Role::Member)
        .await;
    let lead = app
        .add_person("alice", &org.id, "lea", pb::Role::Member)
        .await;
    app.add_person("alice", &org.id, "vic", pb::Role::Viewer)
        .await;
    let mut project = pb::Project {
        name: "Callbot".into(),
        sponsor_id: sponsor.id.clone(),
        lead_id: lead.id.clone(),
        ai_act_tier: pb::AiActTier::Minimal as i32,
        ..Default::default()
    };
    configure(&mut project);
    let project = app.create_project("dina", &org.id, project).await;
    // A primary KPI with a target, a review cadence, a baseline and a POC
    // result, so that the KPI criteria pass and the rest can be tested.
    let kpi = app
        .kpis()
        .create_kpi(authed(
            "dina",
            pb::CreateKpiRequest {
                organisation_id: org.id.clone(),
                kpi: Some(accuracy_kpi(&project.id)),
            },
        ))
        .await
        .expect("create kpi")
        .into_inner()
        .kpi
        .unwrap();
    for (stage, value) in [(pb::Stage::Baseline, 60.0), (pb::Stage::Poc, 85.0)] {
        app.kpis()
            .record_measurement(authed(
                "dina",
                pb::RecordMeasurementRequest {
                    organisation_id: org.id.clone(),
                    measurement: Some(measurement(&kpi.id, stage, value)),
                },
            ))
            .await
            .expect("measure");
    }
    Stage {
        org: org.id,
        project,
        sponsor: sponsor.id,
        lead: lead.id,
    }
}

/// A primary model-performance KPI: accuracy in %, target 80, monthly.
pub fn accuracy_kpi(project_id: &str) -> pb::Kpi {
    pb::Kpi {
        project_id: project_id.into(),
        name: "Qualification accuracy".into(),
        unit: "%".into(),
        unit_kind: pb::UnitKind::Percentage as i32,
        direction: pb::Direction::HigherIsBetter as i32,
        category: pb::KpiCategory::ModelPerformance as i32,
        primary: true,
        target: Some(80.0),
        cadence: pb::Cadence::Monthly as i32,
        ..Default::default()
    }
}

/// A measurement taken now.
pub fn measurement(kpi_id: &str, stage: pb::Stage, value: f64) -> pb::Measurement {
    let now = chrono::Utc::now();
    pb::Measurement {
        kpi_id: kpi_id.into(),
        value,
        measure_time: Some(prost_types::Timestamp {
            seconds: now.timestamp(),
            nanos: 0,
        }),
        stage: stage as i32,
        ..Default::default()
    }
}

async fn items(app: &TestApp, s: &Stage, phase: pb::Phase) -> Vec<pb::AssessmentItem> {
    app.assessments()
        .list_assessment_items(authed(
            "lea",
            pb::ListAssessmentItemsRequest {
                organisation_id: s.org.clone(),
                project_id: s.project.id.clone(),
                phase: phase as i32,
                concern: 0,
            },
        ))
        .await
        .expect("items")
        .into_inner()
        .items
}

async fn answer(
    app: &TestApp,
    who: &str,
    s: &Stage,
    key: &str,
    status: pb::AnswerStatus,
) -> Result<pb::AssessmentItem, tonic::Status> {
    app.assessments()
        .answer_assessment_item(authed(
            who,
            pb::AnswerAssessmentItemRequest {
                organisation_id: s.org.clone(),
                project_id: s.project.id.clone(),
                key: key.into(),
                status: status as i32,
                risk: pb::RiskLevel::Low as i32,
                note: "checked with the business".into(),
                evidence_uri: "https://wiki.example/evidence".into(),
                justification: if status == pb::AnswerStatus::NotApplicable {
                    "not relevant here".into()
                } else {
                    String::new()
                },
                etag: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner().item.unwrap())
}

/// The lead answers every MUST item of the phase DONE.
async fn complete_musts(app: &TestApp, s: &Stage, phase: pb::Phase) {
    for item in items(app, s, phase)
        .await
        .into_iter()
        .filter(|i| i.kind == pb::QuestionKind::Must as i32)
    {
        answer(app, "lea", s, &item.key, pb::AnswerStatus::Done)
            .await
            .expect("answer");
    }
}

async fn request(app: &TestApp, who: &str, s: &Stage) -> Result<pb::GateReview, tonic::Status> {
    app.gates()
        .request_gate_review(authed(
            who,
            pb::RequestGateReviewRequest {
                organisation_id: s.org.clone(),
                project_id: s.project.id.clone(),
            },
        ))
        .await
        .map(|r| r.into_inner().review.unwrap())
}

async fn sign(
    app: &TestApp,
    who: &str,
    s: &Stage,
    review: &str,
    verdict: pb::Verdict,
) -> Result<pb::GateReview, tonic::Status> {
    app.gates()
        .sign_gate(authed(
            who,
            pb::SignGateRequest {
                organisation_id: s.org.clone(),
                review_id: review.into(),
                verdict: verdict as i32,
                comment: format!("{who} signs"),
            },
        ))
        .await
        .map(|r| r.into_inner().review.unwrap())
}

async fn decide(
    app: &TestApp,
    who: &str,
    s: &Stage,
    review: &str,
    outcome: pb::GateOutcome,
    conditions: Vec<pb::GateCondition>,
) -> Result<pb::DecideGateResponse, tonic::Status> {
    app.gates()
        .decide_gate(authed(
            who,
            pb::DecideGateRequest {
                organisation_id: s.org.clone(),
                review_id: review.into(),
                outcome: outcome as i32,
                rationale: "as discussed in committee".into(),
                conditions,
            },
        ))
        .await
        .map(|r| r.into_inner())
}

async fn project(app: &TestApp, s: &Stage) -> pb::Project {
    app.projects()
        .get_project(authed(
            "dina",
            pb::GetProjectRequest {
                organisation_id: s.org.clone(),
                id: s.project.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .project
        .unwrap()
}

/// Passes the current phase's gate: MUSTs done, review, sponsor approves,
/// director decides GO.
async fn pass_gate(app: &TestApp, s: &Stage, phase: pb::Phase) -> pb::DecideGateResponse {
    complete_musts(app, s, phase).await;
    let review = request(app, "lea", s).await.expect("request");
    sign(app, "sam", s, &review.id, pb::Verdict::Approve)
        .await
        .expect("sponsor signs");
    decide(app, "dina", s, &review.id, pb::GateOutcome::Go, vec![])
        .await
        .expect("GO")
}

fn kinds(status: &tonic::Status) -> Vec<String> {
    precondition_kinds(status)
}

#[tokio::test]
async fn a_project_lives_from_ideation_to_production_with_sign_offs() {
    on_each_backend(async |app: &TestApp| {
        let s = stage(app, |_| {}).await;
        assert!(
            items(app, &s, pb::Phase::Ideation).await.len() >= 24,
            "the IDEATION checklist is instantiated"
        );
        assert!(
            items(app, &s, pb::Phase::Poc).await.is_empty(),
            "later checklists come with their phase"
        );

        let mut history = vec![pb::Phase::Ideation];
        for (phase, next) in [
            (pb::Phase::Ideation, pb::Phase::Poc),
            (pb::Phase::Poc, pb::Phase::Industrialisation),
            (pb::Phase::Industrialisation, pb::Phase::Deployment),
        ] {
            let decided = pass_gate(app, &s, phase).await;
            let review = decided.review.unwrap();
            assert_eq!(review.state, pb::GateReviewState::Decided as i32);
            assert_eq!(review.outcome, pb::GateOutcome::Go as i32);
            assert!(
                review
                    .criteria
                    .iter()
                    .all(|c| c.result == pb::CriterionResult::Pass as i32)
            );
            assert_eq!(review.signatories[0].function, "SPONSOR");
            assert_eq!(review.signatories[0].verdict, pb::Verdict::Approve as i32);
            let p = decided.project.unwrap();
            assert_eq!(p.phase, next as i32);
            assert_eq!(p.status, pb::ProjectStatus::Active as i32);
            history.push(next);
            assert!(
                !items(app, &s, next).await.is_empty(),
                "{next:?} checklist instantiated"
            );
        }
        let live = pass_gate(app, &s, pb::Phase::Deployment)
            .await
            .project
            .unwrap();
        assert_eq!(live.phase, pb::Phase::Deployment as i32);
        assert_eq!(live.status, pb::ProjectStatus::InProduction as i32);
        let spans: Vec<i32> = live.phase_history.iter().map(|p| p.phase).collect();
        assert_eq!(spans, history.iter().map(|p| *p as i32).collect::<Vec<_>>());
        assert!(
            live.phase_history[..3]
                .iter()
                .all(|p| p.leave_time.is_some())
        );
        assert!(live.phase_history[3].leave_time.is_none());
        assert_eq!(
            project(app, &s).await,
            live,
            "GetProject reads back the whole history, times to the microsecond"
        );

        // In production: no more gates; retire needs a reason.
        expect_code(request(app, "lea", &s).await, Code::FailedPrecondition);
        let retired = app
            .projects()
            .retire_project(authed(
                "dina",
                pb::RetireProjectRequest {
                    organisation_id: s.org.clone(),
                    id: s.project.id.clone(),
                    reason: "replaced by v2".into(),
                },
            ))
            .await
            .expect("retire")
            .into_inner()
            .project
            .unwrap();
        assert_eq!(retired.status, pb::ProjectStatus::Retired as i32);

        let reviews = app
            .gates()
            .list_gate_reviews(authed(
                "vic",
                pb::ListGateReviewsRequest {
                    organisation_id: s.org.clone(),
                    project_id: s.project.id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .reviews;
        assert_eq!(reviews.len(), 4);
        assert_eq!(
            reviews[0].from_phase,
            pb::Phase::Deployment as i32,
            "newest first"
        );

        let verified = app
            .audit()
            .verify_audit_log(authed(
                "dina",
                pb::VerifyAuditLogRequest {
                    organisation_id: s.org.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(verified.valid, "{verified:?}");
        assert_eq!(
            verified.checked, 8,
            "four signatures and four decisions are chained"
        );
    })
    .await;
}

#[tokio::test]
async fn each_unmet_criterion_is_listed_and_blocks_go() {
    on_each_backend(async |app: &TestApp| {
        let s = stage(app, |p| p.personal_data = true).await;
        // Open MUST items and a missing signature.
        let review = request(app, "lea", &s).await.expect("request");
        let failing: Vec<&str> = review
            .criteria
            .iter()
            .filter(|c| c.result == pb::CriterionResult::Fail as i32)
            .map(|c| c.key.as_str())
            .collect();
        assert_eq!(failing, vec!["MUST_ITEMS_DONE"]);
        assert_eq!(review.criteria_at_request, review.criteria);
        let refused = decide(app, "dina", &s, &review.id, pb::GateOutcome::Go, vec![]).await;
        assert_eq!(
            kinds(&expect_code(refused, Code::FailedPrecondition)),
            vec!["MUST_ITEMS_DONE", "SIGNATURE_MISSING"]
        );
        // A second open review is refused.
        assert_eq!(
            kinds(&expect_code(
                request(app, "lea", &s).await,
                Code::FailedPrecondition
            )),
            vec!["REVIEW_ALREADY_OPEN"]
        );

        complete_musts(app, &s, pb::Phase::Ideation).await;
        let fresh = app
            .gates()
            .get_gate_review(authed(
                "lea",
                pb::GetGateReviewRequest {
                    organisation_id: s.org.clone(),
                    id: review.id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .review
            .unwrap();
        assert!(
            fresh
                .criteria
                .iter()
                .all(|c| c.result == pb::CriterionResult::Pass as i32),
            "criteria are evaluated afresh on read"
        );
        assert!(
            fresh
                .criteria_at_request
                .iter()
                .any(|c| c.result == pb::CriterionResult::Fail as i32),
            "the snapshot at request stays"
        );

        // The HR system deactivates the sponsor: the gate cannot pass.
        app.people()
            .deactivate_person(authed(
                "alice",
                pb::DeactivatePersonRequest {
                    organisation_id: s.org.clone(),
                    id: s.sponsor.clone(),
                    etag: String::new(),
                },
            ))
            .await
            .unwrap();
        let refused = decide(app, "dina", &s, &review.id, pb::GateOutcome::Go, vec![]).await;
        assert_eq!(
            kinds(&expect_code(refused, Code::FailedPrecondition)),
            vec!["SPONSOR_ACTIVE", "SIGNATURE_MISSING"]
        );
        app.people()
            .reactivate_person(authed(
                "alice",
                pb::ReactivatePersonRequest {
                    organisation_id: s.org.clone(),
                    id: s.sponsor.clone(),
                    etag: String::new(),
                },
            ))
            .await
            .unwrap();
        sign(app, "sam", &s, &review.id, pb::Verdict::Approve)
            .await
            .unwrap();
        decide(app, "dina", &s, &review.id, pb::GateOutcome::Go, vec![])
            .await
            .expect("GO out of IDEATION");

        // Leaving POC with personal data needs anonymisation; waive MUSTs but not that.
        let review = request(app, "lea", &s).await.unwrap();
        sign(app, "sam", &s, &review.id, pb::Verdict::Approve)
            .await
            .unwrap();
        let refused = decide(app, "dina", &s, &review.id, pb::GateOutcome::Go, vec![]).await;
        assert_eq!(
            kinds(&expect_code(refused, Code::FailedPrecondition)),
            vec!["MUST_ITEMS_DONE", "PERSONAL_DATA_ANONYMISED"]
        );
        let waive = |who: &'static str, criterion: &'static str| {
            let mut gates = app.gates();
            let request = authed(
                who,
                pb::WaiveGateCriterionRequest {
                    organisation_id: s.org.clone(),
                    review_id: review.id.clone(),
                    criterion: criterion.into(),
                    reason: "accepted risk".into(),
                },
            );
            async move { gates.waive_gate_criterion(request).await }
        };
        expect_code(
            waive("lea", "MUST_ITEMS_DONE").await,
            Code::PermissionDenied,
        );
        expect_code(
            waive("dina", "SPONSOR_ACTIVE").await,
            Code::FailedPrecondition,
        );
        expect_bad_field(waive("dina", "NO_SUCH_RULE").await, "criterion");
        let waived = waive("dina", "MUST_ITEMS_DONE")
            .await
            .expect("a director waives")
            .into_inner()
            .review
            .unwrap();
        assert!(
            waived
                .criteria
                .iter()
                .any(|c| c.key == "MUST_ITEMS_DONE"
                    && c.result == pb::CriterionResult::Waived as i32)
        );
        let refused = decide(app, "dina", &s, &review.id, pb::GateOutcome::Go, vec![]).await;
        assert_eq!(
            kinds(&expect_code(refused, Code::FailedPrecondition)),
            vec!["PERSONAL_DATA_ANONYMISED"]
        );
        answer(
            app,
            "lea",
            &s,
            "poc.ethics.personal-data-anonymised",
            pb::AnswerStatus::Done,
        )
        .await
        .unwrap();
        decide(app, "dina", &s, &review.id, pb::GateOutcome::Go, vec![])
            .await
            .expect("GO out of POC");

        // Entering DEPLOYMENT as HIGH risk needs oversight, logging, informed workers.
        app.projects()
            .update_project(authed(
                "dina",
                pb::UpdateProjectRequest {
                    organisation_id: s.org.clone(),
                    project: Some(pb::Project {
                        id: s.project.id.clone(),
                        ai_act_tier: pb::AiActTier::High as i32,
                        ai_act_reason: "scores tenants".into(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["ai_act_tier".into(), "ai_act_reason".into()],
                    }),
                },
            ))
            .await
            .unwrap();
        complete_musts(app, &s, pb::Phase::Industrialisation).await;
        let review = request(app, "lea", &s).await.unwrap();
        sign(app, "sam", &s, &review.id, pb::Verdict::Approve)
            .await
            .unwrap();
        let refused = decide(app, "dina", &s, &review.id, pb::GateOutcome::Go, vec![]).await;
        let status = expect_code(refused, Code::FailedPrecondition);
        assert_eq!(kinds(&status), vec!["HIGH_RISK_CONTROLS"]);
        for key in [
            "industrialisation.ethics.human-oversight",
            "industrialisation.ethics.logging",
            "industrialisation.ethics.workers-informed",
        ] {
            answer(app, "lea", &s, key, pb::AnswerStatus::Done)
                .await
                .unwrap();
        }
        decide(app, "dina", &s, &review.id, pb::GateOutcome::Go, vec![])
            .await
            .expect("GO into DEPLOYMENT");
    })
    .await;
}

#[tokio::test]
async fn signatures_are_independent_final_and_a_reject_blocks_go() {
    on_each_backend(async |app: &TestApp| {
        let s = stage(app, |_| {}).await;
        complete_musts(app, &s, pb::Phase::Ideation).await;
        let review = request(app, "lea", &s).await.unwrap();
        // The lead is no signatory; a viewer never signs; strangers see nothing.
        expect_code(
            sign(app, "lea", &s, &review.id, pb::Verdict::Approve).await,
            Code::PermissionDenied,
        );
        expect_code(
            sign(app, "vic", &s, &review.id, pb::Verdict::Approve).await,
            Code::PermissionDenied,
        );
        expect_bad_field(
            app.gates()
                .sign_gate(authed(
                    "sam",
                    pb::SignGateRequest {
                        organisation_id: s.org.clone(),
                        review_id: review.id.clone(),
                        verdict: pb::Verdict::Reject as i32,
                        comment: String::new(),
                    },
                ))
                .await,
            "comment",
        );
        sign(app, "sam", &s, &review.id, pb::Verdict::Reject)
            .await
            .expect("the sponsor rejects");
        assert_eq!(
            kinds(&expect_code(
                sign(app, "sam", &s, &review.id, pb::Verdict::Approve).await,
                Code::FailedPrecondition
            )),
            vec!["ALREADY_SIGNED"]
        );
        let refused = decide(app, "dina", &s, &review.id, pb::GateOutcome::Go, vec![]).await;
        assert_eq!(
            kinds(&expect_code(refused, Code::FailedPrecondition)),
            vec!["SIGNATORY_REJECTED"]
        );
        // Only a director or the sponsor decides; the lead and the viewer do not.
        expect_code(
            decide(app, "lea", &s, &review.id, pb::GateOutcome::Recycle, vec![]).await,
            Code::PermissionDenied,
        );
        expect_code(
            decide(app, "vic", &s, &review.id, pb::GateOutcome::Recycle, vec![]).await,
            Code::PermissionDenied,
        );
        let recycled = decide(app, "sam", &s, &review.id, pb::GateOutcome::Recycle, vec![])
            .await
            .expect("the sponsor recycles");
        assert_eq!(recycled.project.unwrap().phase, pb::Phase::Ideation as i32);
        // A decided review is immutable.
        assert_eq!(
            kinds(&expect_code(
                decide(app, "dina", &s, &review.id, pb::GateOutcome::Go, vec![]).await,
                Code::FailedPrecondition
            )),
            vec!["REVIEW_DECIDED"]
        );
        assert_eq!(
            kinds(&expect_code(
                sign(app, "sam", &s, &review.id, pb::Verdict::Approve).await,
                Code::FailedPrecondition
            )),
            vec!["REVIEW_DECIDED"]
        );

        // An extra signatory by policy: a DPO when personal data is involved.
        let dpo = app
            .add_person("alice", &s.org, "dan", pb::Role::Member)
            .await;
        app.gates()
            .set_gate_policy(authed(
                "dina",
                pb::SetGatePolicyRequest {
                    organisation_id: s.org.clone(),
                    policy: Some(pb::GatePolicy {
                        from_phase: pb::Phase::Ideation as i32,
                        signatories: vec![pb::GatePolicySignatory {
                            function: "DPO".into(),
                            person_id: dpo.id.clone(),
                            only_when_personal_data: false,
                        }],
                    }),
                },
            ))
            .await
            .expect("policy");
        let review = request(app, "lea", &s).await.unwrap();
        assert_eq!(
            review
                .signatories
                .iter()
                .map(|x| x.function.as_str())
                .collect::<Vec<_>>(),
            vec!["SPONSOR", "DPO"]
        );
        sign(app, "sam", &s, &review.id, pb::Verdict::Approve)
            .await
            .unwrap();
        let refused = decide(app, "dina", &s, &review.id, pb::GateOutcome::Go, vec![]).await;
        assert_eq!(
            kinds(&expect_code(refused, Code::FailedPrecondition)),
            vec!["SIGNATURE_MISSING"]
        );
        sign(app, "dan", &s, &review.id, pb::Verdict::Approve)
            .await
            .unwrap();
        decide(app, "dina", &s, &review.id, pb::GateOutcome::Go, vec![])
            .await
            .expect("GO with both signatures");
    })
    .await;
}

#[tokio::test]
async fn a_prohibited_project_can_only_be_killed() {
    on_each_backend(async |app: &TestApp| {
        let s = stage(app, |p| {
            p.ai_act_tier = pb::AiActTier::Prohibited as i32;
            p.ai_act_reason = "emotion recognition of employees from their voice".into();
        })
        .await;
        complete_musts(app, &s, pb::Phase::Ideation).await;
        let review = request(app, "lea", &s).await.unwrap();
        sign(app, "sam", &s, &review.id, pb::Verdict::Approve)
            .await
            .unwrap();
        for outcome in [
            pb::GateOutcome::Go,
            pb::GateOutcome::Recycle,
            pb::GateOutcome::Hold,
        ] {
            let refused = decide(app, "dina", &s, &review.id, outcome, vec![]).await;
            assert_eq!(
                kinds(&expect_code(refused, Code::FailedPrecondition)),
                vec!["NOT_PROHIBITED"],
                "{outcome:?}"
            );
        }
        let killed = decide(app, "dina", &s, &review.id, pb::GateOutcome::Kill, vec![])
            .await
            .expect("KILL")
            .project
            .unwrap();
        assert_eq!(killed.status, pb::ProjectStatus::Stopped as i32);
        // Stopped for good.
        expect_code(request(app, "lea", &s).await, Code::FailedPrecondition);
        let resume = app
            .projects()
            .resume_project(authed(
                "dina",
                pb::ResumeProjectRequest {
                    organisation_id: s.org.clone(),
                    id: s.project.id.clone(),
                    reason: "try again".into(),
                },
            ))
            .await;
        assert_eq!(
            kinds(&expect_code(resume, Code::FailedPrecondition)),
            vec!["ILLEGAL_TRANSITION"]
        );
    })
    .await;
}

#[tokio::test]
async fn conditions_of_a_conditional_go_block_the_next_gate_until_closed() {
    on_each_backend(async |app: &TestApp| {
        let s = stage(app, |_| {}).await;
        complete_musts(app, &s, pb::Phase::Ideation).await;
        let review = request(app, "lea", &s).await.unwrap();
        sign(app, "sam", &s, &review.id, pb::Verdict::Approve)
            .await
            .unwrap();
        let condition = pb::GateCondition {
            description: "Secure access to the call recordings".into(),
            owner_id: s.lead.clone(),
            due_date: Some(pb::Date {
                year: 2027,
                month: 3,
                day: 31,
            }),
            ..Default::default()
        };
        expect_bad_field(
            decide(
                app,
                "dina",
                &s,
                &review.id,
                pb::GateOutcome::ConditionalGo,
                vec![],
            )
            .await,
            "conditions",
        );
        expect_bad_field(
            decide(
                app,
                "dina",
                &s,
                &review.id,
                pb::GateOutcome::ConditionalGo,
                vec![pb::GateCondition {
                    due_date: None,
                    ..condition.clone()
                }],
            )
            .await,
            "conditions[0].due_date",
        );
        expect_bad_field(
            decide(
                app,
                "dina",
                &s,
                &review.id,
                pb::GateOutcome::Go,
                vec![condition.clone()],
            )
            .await,
            "conditions",
        );
        let decided = decide(
            app,
            "dina",
            &s,
            &review.id,
            pb::GateOutcome::ConditionalGo,
            vec![condition],
        )
        .await
        .expect("CONDITIONAL_GO");
        assert_eq!(decided.project.unwrap().phase, pb::Phase::Poc as i32);
        let open = decided.review.unwrap().conditions;
        assert_eq!(open.len(), 1);

        complete_musts(app, &s, pb::Phase::Poc).await;
        let next = request(app, "lea", &s).await.unwrap();
        sign(app, "sam", &s, &next.id, pb::Verdict::Approve)
            .await
            .unwrap();
        let refused = decide(app, "dina", &s, &next.id, pb::GateOutcome::Go, vec![]).await;
        assert_eq!(
            kinds(&expect_code(refused, Code::FailedPrecondition)),
            vec!["CONDITIONS_CLOSED"]
        );
        let close = |who: &'static str| {
            let mut gates = app.gates();
            let request = authed(
                who,
                pb::CloseGateConditionRequest {
                    organisation_id: s.org.clone(),
                    id: open[0].id.clone(),
                    note: "VPN access granted".into(),
                },
            );
            async move { gates.close_gate_condition(request).await }
        };
        expect_code(close("vic").await, Code::PermissionDenied);
        let closed = close("lea")
            .await
            .expect("the owner closes it")
            .into_inner()
            .condition
            .unwrap();
        assert!(closed.closed);
        expect_code(close("lea").await, Code::FailedPrecondition);
        decide(app, "dina", &s, &next.id, pb::GateOutcome::Go, vec![])
            .await
            .expect("GO once closed");
    })
    .await;
}

#[tokio::test]
async fn hold_resume_recycle_and_illegal_transitions() {
    on_each_backend(async |app: &TestApp| {
        let s = stage(app, |_| {}).await;
        let resume = |who: &'static str| {
            let mut projects = app.projects();
            let request = authed(
                who,
                pb::ResumeProjectRequest {
                    organisation_id: s.org.clone(),
                    id: s.project.id.clone(),
                    reason: "budget back".into(),
                },
            );
            async move { projects.resume_project(request).await }
        };
        assert_eq!(
            kinds(&expect_code(resume("dina").await, Code::FailedPrecondition)),
            vec!["ILLEGAL_TRANSITION"]
        );
        let retire = app
            .projects()
            .retire_project(authed(
                "dina",
                pb::RetireProjectRequest {
                    organisation_id: s.org.clone(),
                    id: s.project.id.clone(),
                    reason: "x".into(),
                },
            ))
            .await;
        expect_code(retire, Code::FailedPrecondition);

        let review = request(app, "sam", &s)
            .await
            .expect("the sponsor may request");
        let held = decide(app, "dina", &s, &review.id, pb::GateOutcome::Hold, vec![])
            .await
            .expect("HOLD")
            .project
            .unwrap();
        assert_eq!(held.status, pb::ProjectStatus::OnHold as i32);
        expect_code(request(app, "lea", &s).await, Code::FailedPrecondition);
        expect_code(resume("lea").await, Code::PermissionDenied);
        expect_bad_field(
            app.projects()
                .resume_project(authed(
                    "dina",
                    pb::ResumeProjectRequest {
                        organisation_id: s.org.clone(),
                        id: s.project.id.clone(),
                        reason: " ".into(),
                    },
                ))
                .await,
            "reason",
        );
        let resumed = resume("sam")
            .await
            .expect("the sponsor resumes")
            .into_inner()
            .project
            .unwrap();
        assert_eq!(resumed.status, pb::ProjectStatus::Active as i32);
        assert_eq!(resumed.phase, pb::Phase::Ideation as i32);
        let review = request(app, "lea", &s).await.unwrap();
        let recycled = decide(
            app,
            "dina",
            &s,
            &review.id,
            pb::GateOutcome::Recycle,
            vec![],
        )
        .await
        .unwrap()
        .project
        .unwrap();
        assert_eq!(
            (recycled.phase, recycled.status),
            (pb::Phase::Ideation as i32, pb::ProjectStatus::Active as i32)
        );
        assert_eq!(
            recycled.phase_history.len(),
            1,
            "a recycle does not enter a phase"
        );
    })
    .await;
}

#[tokio::test]
async fn concurrent_decisions_on_one_review_give_exactly_one_decision() {
    on_each_backend(async |app: &TestApp| {
        let s = stage(app, |_| {}).await;
        app.add_person("alice", &s.org, "dora", pb::Role::Director)
            .await;
        complete_musts(app, &s, pb::Phase::Ideation).await;
        let review = request(app, "lea", &s).await.unwrap();
        sign(app, "sam", &s, &review.id, pb::Verdict::Approve)
            .await
            .unwrap();
        let calls = [
            ("dina", pb::GateOutcome::Go),
            ("dora", pb::GateOutcome::Kill),
            ("dina", pb::GateOutcome::Go),
            ("dora", pb::GateOutcome::Hold),
        ]
        .map(|(who, outcome)| {
            let mut gates = app.gates();
            let request = authed(
                who,
                pb::DecideGateRequest {
                    organisation_id: s.org.clone(),
                    review_id: review.id.clone(),
                    outcome: outcome as i32,
                    rationale: "race".into(),
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
        for r in results.iter().filter_map(|r| r.as_ref().err()) {
            assert!(
                matches!(r.code(), Code::FailedPrecondition | Code::Aborted),
                "{r:?}"
            );
        }
        let winner = results
            .into_iter()
            .find_map(Result::ok)
            .unwrap()
            .into_inner();
        let p = project(app, &s).await;
        assert_eq!(p.version_marker(), winner.project.unwrap().version_marker());
        let reviews = app
            .gates()
            .list_gate_reviews(authed(
                "dina",
                pb::ListGateReviewsRequest {
                    organisation_id: s.org.clone(),
                    project_id: s.project.id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .reviews;
        assert_eq!(reviews.len(), 1);
        let events = app
            .audit()
            .list_audit_events(authed(
                "dina",
                pb::ListAuditEventsRequest {
                    organisation_id: s.org.clone(),
                    project_id: s.project.id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .events;
        assert_eq!(
            events.iter().filter(|e| e.action == "gate.decided").count(),
            1
        );
    })
    .await;
}

trait VersionMarker {
    fn version_marker(&self) -> (i32, i32, String);
}

impl VersionMarker for pb::Project {
    fn version_marker(&self) -> (i32, i32, String) {
        (self.phase, self.status, self.etag.clone())
    }
}

#[tokio::test]
async fn viewers_and_other_organisations_cannot_act_on_the_lifecycle() {
    on_each_backend(async |app: &TestApp| {
        let s = stage(app, |_| {}).await;
        let item = items(app, &s, pb::Phase::Ideation).await.remove(0);
        expect_code(
            answer(app, "vic", &s, &item.key, pb::AnswerStatus::Done).await,
            Code::PermissionDenied,
        );
        expect_code(
            answer(app, "sam", &s, &item.key, pb::AnswerStatus::Done).await,
            Code::PermissionDenied,
        );
        expect_bad_field(
            app.assessments()
                .answer_assessment_item(authed(
                    "lea",
                    pb::AnswerAssessmentItemRequest {
                        organisation_id: s.org.clone(),
                        project_id: s.project.id.clone(),
                        key: item.key.clone(),
                        status: pb::AnswerStatus::NotApplicable as i32,
                        ..Default::default()
                    },
                ))
                .await,
            "justification",
        );
        let review = request(app, "lea", &s).await.unwrap();

        let (other, _) = app.create_org("globex", "bert").await;
        let _ = other;
        for outsider in ["bert", "nobody"] {
            expect_code(
                answer(app, outsider, &s, &item.key, pb::AnswerStatus::Done).await,
                Code::NotFound,
            );
            expect_code(request(app, outsider, &s).await, Code::NotFound);
            expect_code(
                sign(app, outsider, &s, &review.id, pb::Verdict::Approve).await,
                Code::NotFound,
            );
            expect_code(
                decide(app, outsider, &s, &review.id, pb::GateOutcome::Kill, vec![]).await,
                Code::NotFound,
            );
            expect_code(
                app.gates()
                    .get_gate_review(authed(
                        outsider,
                        pb::GetGateReviewRequest {
                            organisation_id: s.org.clone(),
                            id: review.id.clone(),
                        },
                    ))
                    .await,
                Code::NotFound,
            );
            expect_code(
                app.assessments()
                    .list_assessment_items(authed(
                        outsider,
                        pb::ListAssessmentItemsRequest {
                            organisation_id: s.org.clone(),
                            project_id: s.project.id.clone(),
                            phase: 0,
                            concern: 0,
                        },
                    ))
                    .await,
                Code::NotFound,
            );
            expect_code(
                app.audit()
                    .list_audit_events(authed(
                        outsider,
                        pb::ListAuditEventsRequest {
                            organisation_id: s.org.clone(),
                            ..Default::default()
                        },
                    ))
                    .await,
                Code::NotFound,
            );
            expect_code(
                app.audit()
                    .verify_audit_log(authed(
                        outsider,
                        pb::VerifyAuditLogRequest {
                            organisation_id: s.org.clone(),
                        },
                    ))
                    .await,
                Code::NotFound,
            );
        }
        // A member who neither leads nor sponsors sees nothing either.
        app.add_person("alice", &s.org, "max", pb::Role::Member)
            .await;
        expect_code(
            app.gates()
                .get_gate_review(authed(
                    "max",
                    pb::GetGateReviewRequest {
                        organisation_id: s.org.clone(),
                        id: review.id.clone(),
                    },
                ))
                .await,
            Code::NotFound,
        );
        let unchanged = app
            .gates()
            .get_gate_review(authed(
                "dina",
                pb::GetGateReviewRequest {
                    organisation_id: s.org.clone(),
                    id: review.id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .review
            .unwrap();
        assert_eq!(unchanged.state, pb::GateReviewState::Open as i32);
        assert!(unchanged.signatories.iter().all(|x| x.verdict == 0));
    })
    .await;
}

#[tokio::test]
async fn the_audit_chain_verifies_and_detects_a_tampered_entry() {
    on_each_backend(async |app: &TestApp| {
        let s = stage(app, |_| {}).await;
        pass_gate(app, &s, pb::Phase::Ideation).await;
        let review = request(app, "lea", &s).await.unwrap();
        sign(app, "sam", &s, &review.id, pb::Verdict::Reject)
            .await
            .unwrap();
        decide(
            app,
            "dina",
            &s,
            &review.id,
            pb::GateOutcome::Recycle,
            vec![],
        )
        .await
        .unwrap();

        let mut audit = app.audit();
        let events = audit
            .list_audit_events(authed(
                "vic",
                pb::ListAuditEventsRequest {
                    organisation_id: s.org.clone(),
                    project_id: s.project.id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .events;
        let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions.first(), Some(&"project.created"));
        assert!(
            actions.contains(&"assessment.answered")
                && actions.contains(&"gate.signed")
                && actions.contains(&"gate.decided")
        );
        let decided = events.iter().find(|e| e.action == "gate.decided").unwrap();
        assert!(decided.before_json.contains("IDEATION") && decided.after_json.contains("\"GO\""));
        assert_eq!(decided.actor_subject, "dina");
        assert!(events.windows(2).all(|w| w[0].sequence < w[1].sequence));
        let chained: Vec<&pb::AuditEvent> =
            events.iter().filter(|e| e.chain_sequence > 0).collect();
        assert_eq!(chained.len(), 4);
        assert!(chained.windows(2).all(|w| w[1].previous_hash == w[0].hash));
        // By actor, and paged.
        let by_sponsor = audit
            .list_audit_events(authed(
                "dina",
                pb::ListAuditEventsRequest {
                    organisation_id: s.org.clone(),
                    actor_person_id: s.sponsor.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .events;
        assert_eq!(by_sponsor.len(), 2);
        let first = audit
            .list_audit_events(authed(
                "dina",
                pb::ListAuditEventsRequest {
                    organisation_id: s.org.clone(),
                    page_size: 3,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(first.events.len(), 3);
        let second = audit
            .list_audit_events(authed(
                "dina",
                pb::ListAuditEventsRequest {
                    organisation_id: s.org.clone(),
                    page_size: 3,
                    page_token: first.next_page_token,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(second.events[0].sequence, first.events[2].sequence + 1);
        expect_code(
            audit
                .verify_audit_log(authed(
                    "vic",
                    pb::VerifyAuditLogRequest {
                        organisation_id: s.org.clone(),
                    },
                ))
                .await,
            Code::PermissionDenied,
        );

        let ok = audit
            .verify_audit_log(authed(
                "dina",
                pb::VerifyAuditLogRequest {
                    organisation_id: s.org.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(ok.valid && ok.checked == 4, "{ok:?}");

        // Someone with database access turns the REJECT into an APPROVE.
        let rejected = chained
            .iter()
            .find(|e| e.after_json.contains("REJECT"))
            .unwrap();
        let db = app.db.connect().await;
        let tampered = db
            .execute_unprepared(
                "UPDATE audit_events SET after_json = REPLACE(after_json, 'REJECT', 'APPROVE') \
                 WHERE action = 'gate.signed' AND after_json LIKE '%REJECT%'",
            )
            .await
            .expect("tamper");
        assert_eq!(tampered.rows_affected(), 1);
        let broken = audit
            .verify_audit_log(authed(
                "dina",
                pb::VerifyAuditLogRequest {
                    organisation_id: s.org.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(!broken.valid);
        assert_eq!(broken.first_broken_event_id, rejected.id);
        assert_eq!(broken.first_broken_chain_sequence, rejected.chain_sequence);
        assert!(broken.reason.contains("altered"), "{broken:?}");
        db.close().await.ok();
    })
    .await;
}

#[tokio::test]
async fn the_question_bank_is_versioned_and_readiness_is_weighted() {
    on_each_backend(async |app: &TestApp| {
        let s = stage(app, |_| {}).await;
        let mut assessments = app.assessments();
        let bank = assessments
            .list_questions(authed(
                "vic",
                pb::ListQuestionsRequest {
                    organisation_id: s.org.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(bank.version, 0);
        assert!(bank.questions.len() >= 96);
        for phase in [
            pb::Phase::Ideation,
            pb::Phase::Poc,
            pb::Phase::Industrialisation,
            pb::Phase::Deployment,
        ] {
            for concern in 1..=6 {
                let n = bank
                    .questions
                    .iter()
                    .filter(|q| q.phase == phase as i32 && q.concern == concern)
                    .count();
                assert!(n >= 4, "{phase:?}/{concern}: {n}");
            }
        }
        // Add a POC question, retire a default POC one; the project entering
        // POC afterwards gets the new version; its IDEATION items stay.
        let retired_key = bank
            .questions
            .iter()
            .find(|q| q.phase == pb::Phase::Poc as i32 && q.kind == pb::QuestionKind::Should as i32)
            .unwrap()
            .key
            .clone();
        let added = assessments
            .create_question(authed(
                "dina",
                pb::CreateQuestionRequest {
                    organisation_id: s.org.clone(),
                    question: Some(pb::Question {
                        key: "gdpr-register".into(),
                        phase: pb::Phase::Poc as i32,
                        concern: pb::Concern::Ethics as i32,
                        kind: pb::QuestionKind::Should as i32,
                        weight: 3,
                        text: "Processing entered in the GDPR register".into(),
                        ..Default::default()
                    }),
                },
            ))
            .await
            .expect("add")
            .into_inner();
        assert_eq!(
            (added.version, added.question.unwrap().key),
            (1, "custom.gdpr-register".into())
        );
        expect_code(
            assessments
                .create_question(authed(
                    "dina",
                    pb::CreateQuestionRequest {
                        organisation_id: s.org.clone(),
                        question: Some(pb::Question {
                            key: "gdpr-register".into(),
                            phase: 2,
                            concern: 6,
                            kind: 2,
                            text: "again".into(),
                            ..Default::default()
                        }),
                    },
                ))
                .await,
            Code::AlreadyExists,
        );
        expect_code(
            assessments
                .create_question(authed(
                    "lea",
                    pb::CreateQuestionRequest {
                        organisation_id: s.org.clone(),
                        question: Some(pb::Question {
                            key: "mine".into(),
                            phase: 2,
                            concern: 6,
                            kind: 2,
                            text: "x".into(),
                            ..Default::default()
                        }),
                    },
                ))
                .await,
            Code::PermissionDenied,
        );
        expect_bad_field(
            assessments
                .create_question(authed(
                    "dina",
                    pb::CreateQuestionRequest {
                        organisation_id: s.org.clone(),
                        question: Some(pb::Question {
                            key: "Bad Key".into(),
                            phase: 0,
                            concern: 6,
                            kind: 2,
                            text: "x".into(),
                            ..Default::default()
                        }),
                    },
                ))
                .await,
            "question.key",
        );
        let retired = assessments
            .retire_question(authed(
                "dina",
                pb::RetireQuestionRequest {
                    organisation_id: s.org.clone(),
                    key: retired_key.clone(),
                },
            ))
            .await
            .expect("retire")
            .into_inner();
        assert_eq!(retired.version, 2);
        expect_code(
            assessments
                .retire_question(authed(
                    "dina",
                    pb::RetireQuestionRequest {
                        organisation_id: s.org.clone(),
                        key: retired_key.clone(),
                    },
                ))
                .await,
            Code::FailedPrecondition,
        );
        expect_code(
            assessments
                .retire_question(authed(
                    "dina",
                    pb::RetireQuestionRequest {
                        organisation_id: s.org.clone(),
                        key: "custom.nope".into(),
                    },
                ))
                .await,
            Code::NotFound,
        );

        pass_gate(app, &s, pb::Phase::Ideation).await;
        let poc = items(app, &s, pb::Phase::Poc).await;
        assert!(
            poc.iter()
                .any(|i| i.key == "custom.gdpr-register" && i.bank_version == 2)
        );
        assert!(poc.iter().all(|i| i.key != retired_key));
        assert!(
            items(app, &s, pb::Phase::Ideation)
                .await
                .iter()
                .all(|i| i.bank_version == 0)
        );
        // Past phases are closed to answers.
        let old = items(app, &s, pb::Phase::Ideation).await.remove(0);
        assert_eq!(
            kinds(&expect_code(
                answer(app, "lea", &s, &old.key, pb::AnswerStatus::Done).await,
                Code::FailedPrecondition
            )),
            vec!["PHASE_CLOSED"]
        );

        // Readiness: weighted share of SHOULD items done, N/A excluded.
        let ethics: Vec<pb::AssessmentItem> = poc
            .iter()
            .filter(|i| i.concern == pb::Concern::Ethics as i32)
            .cloned()
            .collect();
        let shoulds: Vec<&pb::AssessmentItem> = ethics
            .iter()
            .filter(|i| i.kind == pb::QuestionKind::Should as i32)
            .collect();
        answer(app, "lea", &s, &shoulds[0].key, pb::AnswerStatus::Done)
            .await
            .unwrap();
        answer(
            app,
            "lea",
            &s,
            &shoulds[1].key,
            pb::AnswerStatus::NotApplicable,
        )
        .await
        .unwrap();
        let total: i32 = shoulds.iter().map(|i| i.weight).sum();
        let ready = assessments
            .get_readiness(authed(
                "vic",
                pb::GetReadinessRequest {
                    organisation_id: s.org.clone(),
                    project_id: s.project.id.clone(),
                    phase: 0,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ready.phase, pb::Phase::Poc as i32);
        let r = ready
            .concerns
            .iter()
            .find(|c| c.concern == pb::Concern::Ethics as i32)
            .unwrap();
        assert_eq!(r.done_weight, shoulds[0].weight);
        assert_eq!(r.applicable_weight, total - shoulds[1].weight);
        assert_eq!(
            r.percent,
            shoulds[0].weight * 100 / (total - shoulds[1].weight)
        );
        let musts: Vec<String> = ethics
            .iter()
            .filter(|i| i.kind == pb::QuestionKind::Must as i32)
            .map(|i| i.key.clone())
            .collect();
        assert_eq!(r.must_open, musts);
        assert_eq!(ready.concerns.len(), 6);
        // A stale etag on an answer is ABORTED.
        let first = answer(app, "lea", &s, &shoulds[2].key, pb::AnswerStatus::Blocked)
            .await
            .unwrap();
        let stale = assessments
            .answer_assessment_item(authed(
                "lea",
                pb::AnswerAssessmentItemRequest {
                    organisation_id: s.org.clone(),
                    project_id: s.project.id.clone(),
                    key: shoulds[2].key.clone(),
                    status: pb::AnswerStatus::Done as i32,
                    etag: "W/\"1\"".into(),
                    ..Default::default()
                },
            ))
            .await;
        expect_code(stale, Code::Aborted);
        assert_eq!(first.status, pb::AnswerStatus::Blocked as i32);
        assert_eq!(first.risk, pb::RiskLevel::Low as i32);
        assert!(!first.answered_by.is_empty() && first.answer_time.is_some());
    })
    .await;
}

/// "Who signed what, and when?" in one call, organisation-wide, with
/// filters; a member sees only their projects' signatures; another
/// organisation's are invisible.
#[tokio::test]
async fn signatures_are_listed_organisation_wide_with_filters() {
    on_each_backend(async |app: &TestApp| {
        let s = ready_review(app, "acme").await;
        let other = ready_review(app, "globex").await;
        app.add_person("alice", &s.org, "zed", pb::Role::Member)
            .await;
        app.gates()
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
            .expect("hold");
        let list = |who: &'static str, request: pb::ListSignaturesRequest| {
            let mut gates = app.gates();
            async move {
                gates
                    .list_signatures(authed(who, request))
                    .await
                    .map(|r| r.into_inner())
            }
        };
        let all = list(
            "dina",
            pb::ListSignaturesRequest {
                organisation_id: s.org.clone(),
                ..Default::default()
            },
        )
        .await
        .expect("signatures");
        assert_eq!(all.signatures.len(), 1, "{all:?}");
        let sig = &all.signatures[0];
        assert_eq!(sig.review_id, s.review);
        assert_eq!(sig.project_id, s.project.id);
        assert_eq!(sig.project_name, "Callbot");
        assert_eq!(sig.verdict, pb::Verdict::Approve as i32);
        assert_eq!(sig.outcome, pb::GateOutcome::Hold as i32);
        assert_eq!(sig.from_phase, pb::Phase::Ideation as i32);
        assert!(sig.sign_time.is_some() && sig.decide_time.is_some());
        assert!(all.next_page_token.is_empty());
        // Filters.
        for (request, expected) in [
            (
                pb::ListSignaturesRequest {
                    signatory_id: sig.signatory_id.clone(),
                    outcome: pb::GateOutcome::Hold as i32,
                    ..Default::default()
                },
                1,
            ),
            (
                pb::ListSignaturesRequest {
                    verdict: pb::Verdict::Reject as i32,
                    ..Default::default()
                },
                0,
            ),
            (
                pb::ListSignaturesRequest {
                    outcome: pb::GateOutcome::Go as i32,
                    ..Default::default()
                },
                0,
            ),
            (
                pb::ListSignaturesRequest {
                    sponsor_id: s.project.sponsor_id.clone(),
                    ..Default::default()
                },
                1,
            ),
        ] {
            let got = list(
                "dina",
                pb::ListSignaturesRequest {
                    organisation_id: s.org.clone(),
                    ..request.clone()
                },
            )
            .await
            .expect("filtered");
            assert_eq!(got.signatures.len(), expected, "{request:?}");
        }
        // The lead sees it; a member unrelated to the project does not.
        let lead = list(
            "lea",
            pb::ListSignaturesRequest {
                organisation_id: s.org.clone(),
                ..Default::default()
            },
        )
        .await
        .expect("lead");
        assert_eq!(lead.signatures.len(), 1);
        let stranger = list(
            "zed",
            pb::ListSignaturesRequest {
                organisation_id: s.org.clone(),
                ..Default::default()
            },
        )
        .await
        .expect("member");
        assert!(stranger.signatures.is_empty());
        // The other organisation's list holds only its own review, and a
        // person of another organisation gets NOT_FOUND here.
        let theirs = list(
            "dina",
            pb::ListSignaturesRequest {
                organisation_id: other.org.clone(),
                ..Default::default()
            },
        )
        .await
        .expect("the other organisation's");
        assert_eq!(theirs.signatures.len(), 1);
        assert_eq!(theirs.signatures[0].review_id, other.review);
        app.create_org("initech", "gina").await;
        expect_code(
            list(
                "gina",
                pb::ListSignaturesRequest {
                    organisation_id: s.org.clone(),
                    ..Default::default()
                },
            )
            .await,
            Code::NotFound,
        );
        expect_bad_field(
            list(
                "dina",
                pb::ListSignaturesRequest {
                    organisation_id: s.org.clone(),
                    signatory_id: "not-an-id".into(),
                    ..Default::default()
                },
            )
            .await,
            "signatory_id",
        );

        // A second review, signed later: pages of one, newest first.
        app.projects()
            .resume_project(authed(
                "dina",
                pb::ResumeProjectRequest {
                    organisation_id: s.org.clone(),
                    id: s.project.id.clone(),
                    reason: "the budget came".into(),
                },
            ))
            .await
            .expect("resume");
        let second = app
            .gates()
            .request_gate_review(authed(
                "lea",
                pb::RequestGateReviewRequest {
                    organisation_id: s.org.clone(),
                    project_id: s.project.id.clone(),
                },
            ))
            .await
            .expect("request again")
            .into_inner()
            .review
            .unwrap()
            .id;
        app.gates()
            .sign_gate(authed(
                "sam",
                pb::SignGateRequest {
                    organisation_id: s.org.clone(),
                    review_id: second.clone(),
                    verdict: pb::Verdict::Reject as i32,
                    comment: "not before the pilot's figures".into(),
                },
            ))
            .await
            .expect("sign again");
        let mut token = String::new();
        let mut seen = Vec::new();
        loop {
            let page = list(
                "dina",
                pb::ListSignaturesRequest {
                    organisation_id: s.org.clone(),
                    page_size: 1,
                    page_token: token.clone(),
                    ..Default::default()
                },
            )
            .await
            .expect("page");
            seen.extend(page.signatures.into_iter().map(|r| r.review_id));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(seen, vec![second, s.review.clone()]);
    })
    .await;
}
