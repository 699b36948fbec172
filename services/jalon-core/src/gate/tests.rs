use chrono::Utc;
use uuid::Uuid;

use super::*;
use crate::{
    assessment::{AnswerStatus, Concern, Item, QuestionKind},
    project::{AiActTier, Phase, Project, ProjectDetails, Status},
    values::{DisplayName, ShortText},
};

struct World {
    project: Project,
    items: Vec<Item>,
    sponsor: Uuid,
    lead: Uuid,
}

fn world(phase: Phase) -> World {
    let (sponsor, lead) = (Uuid::now_v7(), Uuid::now_v7());
    let now = Utc::now();
    let project = Project {
        id: Uuid::now_v7(),
        organisation_id: Uuid::now_v7(),
        details: ProjectDetails {
            name: DisplayName::parse("Callbot").unwrap(),
            description: String::new(),
            business_unit: ShortText::parse("").unwrap(),
            tags: vec![],
            objective: String::new(),
            gain_quantified: false,
            expected_gain: None,
            usage: None,
            result_type: None,
            data_kinds: vec![],
            algorithm_approach: None,
            execution: None,
            hosting: None,
            personal_data: false,
            ai_act_tier: AiActTier::Minimal,
            ai_act_reason: String::new(),
            sponsor_id: Some(sponsor),
            lead_id: Some(lead),
            planned_start: None,
            planned_end: None,
        },
        phase,
        status: Status::Active,
        phase_history: vec![],
        underperforming: false,
        create_time: now,
        update_time: now,
        version: 1,
    };
    let items = vec![
        item("x.must", phase, QuestionKind::Must, AnswerStatus::Done),
        item("x.should", phase, QuestionKind::Should, AnswerStatus::Open),
    ];
    World {
        project,
        items,
        sponsor,
        lead,
    }
}

fn item(key: &str, phase: Phase, kind: QuestionKind, status: AnswerStatus) -> Item {
    Item {
        key: key.into(),
        phase,
        concern: Concern::Ethics,
        kind,
        weight: 1,
        status,
    }
}

fn ctx(w: &World) -> GateContext<'_> {
    GateContext {
        project: &w.project,
        from: w.project.phase,
        items: &w.items,
        sponsor_active: true,
        open_conditions: 0,
        kpis: &[],
    }
}

fn failed(evals: &[Evaluation]) -> Vec<&str> {
    evals
        .iter()
        .filter(|e| e.result == CriterionResult::Fail)
        .map(|e| e.key.as_str())
        .collect()
}

const DIRECTOR: Decider = Decider {
    is_director: true,
    is_sponsor: false,
};

fn approved(w: &World) -> (Vec<Signatory>, Vec<Signature>) {
    (
        required_signatories(w.sponsor, &[]),
        vec![Signature {
            person_id: w.sponsor,
            verdict: Verdict::Approve,
        }],
    )
}

#[test]
fn a_ready_project_passes_every_criterion() {
    let w = world(Phase::Ideation);
    assert!(failed(&evaluate(&default_criteria(), &ctx(&w), &[])).is_empty());
}

#[test]
fn open_must_items_fail_and_can_be_waived() {
    let mut w = world(Phase::Poc);
    w.items.push(item(
        "poc.data.access",
        Phase::Poc,
        QuestionKind::Must,
        AnswerStatus::Blocked,
    ));
    // A MUST item of another phase does not count.
    w.items.push(item(
        "ideation.x",
        Phase::Ideation,
        QuestionKind::Must,
        AnswerStatus::Open,
    ));
    let evals = evaluate(&default_criteria(), &ctx(&w), &[]);
    assert_eq!(failed(&evals), vec!["MUST_ITEMS_DONE"]);
    assert!(evals[0].reason.contains("poc.data.access"));
    assert!(!evals[0].reason.contains("ideation.x"));
    let waived = evaluate(
        &default_criteria(),
        &ctx(&w),
        &[Waiver {
            criterion: "MUST_ITEMS_DONE".into(),
            reason: "access granted next week".into(),
        }],
    );
    assert!(failed(&waived).is_empty());
    assert_eq!(waived[0].result, CriterionResult::Waived);
}

#[test]
fn a_missing_or_inactive_sponsor_fails_and_cannot_be_waived() {
    let mut w = world(Phase::Ideation);
    let mut c = ctx(&w);
    c.sponsor_active = false;
    let waiver = [Waiver {
        criterion: "SPONSOR_ACTIVE".into(),
        reason: "trust me".into(),
    }];
    assert_eq!(
        failed(&evaluate(&default_criteria(), &c, &waiver)),
        vec!["SPONSOR_ACTIVE"]
    );
    w.project.details.sponsor_id = None;
    assert_eq!(
        failed(&evaluate(&default_criteria(), &ctx(&w), &[])),
        vec!["SPONSOR_ACTIVE"]
    );
}

#[test]
fn a_prohibited_project_can_only_be_killed() {
    let mut w = world(Phase::Poc);
    w.project.details.ai_act_tier = AiActTier::Prohibited;
    let evals = evaluate(&default_criteria(), &ctx(&w), &[]);
    assert_eq!(failed(&evals), vec!["NOT_PROHIBITED"]);
    let (required, signatures) = approved(&w);
    for outcome in [Outcome::Go, Outcome::Recycle, Outcome::Hold] {
        let err = decide(
            &w.project,
            Phase::Poc,
            outcome,
            DIRECTOR,
            &evals,
            &required,
            &signatures,
            &[],
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::FailedPrecondition(v) if v[0].kind == "NOT_PROHIBITED"),
            "{outcome}: {err:?}"
        );
    }
    let killed = decide(
        &w.project,
        Phase::Poc,
        Outcome::Kill,
        DIRECTOR,
        &evals,
        &required,
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(killed.status, Status::Stopped);
}

#[test]
fn personal_data_needs_anonymisation_before_leaving_poc() {
    let mut w = world(Phase::Poc);
    w.project.details.personal_data = true;
    assert_eq!(
        failed(&evaluate(&default_criteria(), &ctx(&w), &[])),
        vec!["PERSONAL_DATA_ANONYMISED"]
    );
    w.items.push(item(
        crate::assessment::keys::ANONYMISATION,
        Phase::Poc,
        QuestionKind::Must,
        AnswerStatus::Done,
    ));
    assert!(failed(&evaluate(&default_criteria(), &ctx(&w), &[])).is_empty());
    // Leaving ideation, it does not apply yet.
    let mut w = world(Phase::Ideation);
    w.project.details.personal_data = true;
    assert!(failed(&evaluate(&default_criteria(), &ctx(&w), &[])).is_empty());
}

#[test]
fn high_risk_needs_oversight_logging_and_informed_workers_before_deployment() {
    use crate::assessment::keys::*;
    let mut w = world(Phase::Industrialisation);
    w.project.details.ai_act_tier = AiActTier::High;
    let evals = evaluate(&default_criteria(), &ctx(&w), &[]);
    assert_eq!(failed(&evals), vec!["HIGH_RISK_CONTROLS"]);
    for key in [HUMAN_OVERSIGHT, LOGGING] {
        w.items.push(item(
            key,
            Phase::Industrialisation,
            QuestionKind::Should,
            AnswerStatus::Done,
        ));
    }
    let evals = evaluate(&default_criteria(), &ctx(&w), &[]);
    assert!(
        evals
            .iter()
            .any(|e| e.reason.contains(WORKERS_INFORMED) && !e.reason.contains(LOGGING))
    );
    w.items.push(item(
        WORKERS_INFORMED,
        Phase::Industrialisation,
        QuestionKind::Should,
        AnswerStatus::Done,
    ));
    assert!(failed(&evaluate(&default_criteria(), &ctx(&w), &[])).is_empty());
}

#[test]
fn open_conditions_block_the_next_gate() {
    let w = world(Phase::Poc);
    let mut c = ctx(&w);
    c.open_conditions = 2;
    assert_eq!(
        failed(&evaluate(&default_criteria(), &c, &[])),
        vec!["CONDITIONS_CLOSED"]
    );
}

#[test]
fn go_needs_every_signatory_to_approve() {
    let w = world(Phase::Ideation);
    let evals = evaluate(&default_criteria(), &ctx(&w), &[]);
    let dpo = Signatory {
        function: "DPO".into(),
        person_id: Uuid::now_v7(),
    };
    let required = required_signatories(w.sponsor, std::slice::from_ref(&dpo));
    assert_eq!(required.len(), 2);
    let only_sponsor = [Signature {
        person_id: w.sponsor,
        verdict: Verdict::Approve,
    }];
    let err = decide(
        &w.project,
        Phase::Ideation,
        Outcome::Go,
        DIRECTOR,
        &evals,
        &required,
        &only_sponsor,
        &[],
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::FailedPrecondition(v) if v.len() == 1 && v[0].kind == "SIGNATURE_MISSING")
    );
    let rejected = [
        only_sponsor[0].clone(),
        Signature {
            person_id: dpo.person_id,
            verdict: Verdict::Reject,
        },
    ];
    let err = decide(
        &w.project,
        Phase::Ideation,
        Outcome::Go,
        DIRECTOR,
        &evals,
        &required,
        &rejected,
        &[],
    )
    .unwrap_err();
    assert!(matches!(&err, Error::FailedPrecondition(v) if v[0].kind == "SIGNATORY_REJECTED"));
    // A rejection does not stop a RECYCLE.
    let recycle = decide(
        &w.project,
        Phase::Ideation,
        Outcome::Recycle,
        DIRECTOR,
        &evals,
        &required,
        &rejected,
        &[],
    )
    .unwrap();
    assert_eq!(
        (recycle.phase, recycle.status, recycle.advanced),
        (Phase::Ideation, Status::Active, false)
    );
    let all = [
        only_sponsor[0].clone(),
        Signature {
            person_id: dpo.person_id,
            verdict: Verdict::Approve,
        },
    ];
    let go = decide(
        &w.project,
        Phase::Ideation,
        Outcome::Go,
        DIRECTOR,
        &evals,
        &required,
        &all,
        &[],
    )
    .unwrap();
    assert_eq!(
        (go.phase, go.status, go.advanced),
        (Phase::Poc, Status::Active, true)
    );
}

#[test]
fn every_unmet_requirement_is_listed_at_once() {
    let mut w = world(Phase::Poc);
    w.items.push(item(
        "poc.m",
        Phase::Poc,
        QuestionKind::Must,
        AnswerStatus::Open,
    ));
    w.project.details.personal_data = true;
    let evals = evaluate(&default_criteria(), &ctx(&w), &[]);
    let required = required_signatories(w.sponsor, &[]);
    let err = decide(
        &w.project,
        Phase::Poc,
        Outcome::Go,
        DIRECTOR,
        &evals,
        &required,
        &[],
        &[],
    )
    .unwrap_err();
    let Error::FailedPrecondition(v) = err else {
        panic!("{err:?}")
    };
    let kinds: Vec<&str> = v.iter().map(|x| x.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "MUST_ITEMS_DONE",
            "PERSONAL_DATA_ANONYMISED",
            "SIGNATURE_MISSING"
        ]
    );
}

#[test]
fn outcomes_move_phase_and_status() {
    let w = world(Phase::Industrialisation);
    let evals = evaluate(&default_criteria(), &ctx(&w), &[]);
    let (required, signatures) = approved(&w);
    let d = |o, c: &[NewCondition]| {
        decide(
            &w.project,
            Phase::Industrialisation,
            o,
            DIRECTOR,
            &evals,
            &required,
            &signatures,
            c,
        )
    };
    let cond = [NewCondition {
        description: "load test".into(),
        owner_id: w.lead,
        due: chrono::NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
    }];
    assert_eq!(
        d(Outcome::ConditionalGo, &cond).unwrap().phase,
        Phase::Deployment
    );
    assert!(
        d(Outcome::ConditionalGo, &[]).is_err(),
        "conditions required"
    );
    assert!(
        d(Outcome::Go, &cond).is_err(),
        "conditions only on CONDITIONAL_GO"
    );
    assert_eq!(d(Outcome::Hold, &[]).unwrap().status, Status::OnHold);
    assert_eq!(d(Outcome::Kill, &[]).unwrap().status, Status::Stopped);

    let dep = world(Phase::Deployment);
    let evals = evaluate(&default_criteria(), &ctx(&dep), &[]);
    let (required, signatures) = approved(&dep);
    let live = decide(
        &dep.project,
        Phase::Deployment,
        Outcome::Go,
        DIRECTOR,
        &evals,
        &required,
        &signatures,
        &[],
    )
    .unwrap();
    assert_eq!(
        (live.phase, live.status, live.advanced),
        (Phase::Deployment, Status::InProduction, false)
    );
}

#[test]
fn only_directors_and_the_sponsor_decide_on_active_projects() {
    let mut w = world(Phase::Ideation);
    let evals = evaluate(&default_criteria(), &ctx(&w), &[]);
    let (required, signatures) = approved(&w);
    let nobody = Decider {
        is_director: false,
        is_sponsor: false,
    };
    assert!(matches!(
        decide(
            &w.project,
            Phase::Ideation,
            Outcome::Recycle,
            nobody,
            &evals,
            &required,
            &signatures,
            &[]
        ),
        Err(Error::PermissionDenied(_))
    ));
    let sponsor = Decider {
        is_director: false,
        is_sponsor: true,
    };
    assert!(
        decide(
            &w.project,
            Phase::Ideation,
            Outcome::Recycle,
            sponsor,
            &evals,
            &required,
            &signatures,
            &[]
        )
        .is_ok()
    );
    w.project.status = Status::OnHold;
    assert!(matches!(
        decide(
            &w.project,
            Phase::Ideation,
            Outcome::Go,
            DIRECTOR,
            &evals,
            &required,
            &signatures,
            &[]
        ),
        Err(Error::FailedPrecondition(_))
    ));
    assert!(check_can_request(&w.project, true).is_err());
}

#[test]
fn signatures_are_independent_single_and_final() {
    let w = world(Phase::Ideation);
    let required = required_signatories(w.sponsor, &[]);
    assert!(check_signature(w.sponsor, Some(w.lead), &required, &[]).is_ok());
    assert!(matches!(
        check_signature(Uuid::now_v7(), Some(w.lead), &required, &[]),
        Err(Error::PermissionDenied(_))
    ));
    let signed = [Signature {
        person_id: w.sponsor,
        verdict: Verdict::Reject,
    }];
    assert!(matches!(
        check_signature(w.sponsor, Some(w.lead), &required, &signed),
        Err(Error::FailedPrecondition(_))
    ));
    // The lead named as sponsor-signatory cannot sign for their own project.
    let self_sign = required_signatories(w.lead, &[]);
    assert!(matches!(
        check_signature(w.lead, Some(w.lead), &self_sign, &[]),
        Err(Error::PermissionDenied(_))
    ));
    // But the lead may sign in another function (e.g. a DPO who leads).
    let as_dpo = [Signatory {
        function: "DPO".into(),
        person_id: w.lead,
    }];
    assert!(check_signature(w.lead, Some(w.lead), &as_dpo, &[]).is_ok());
}

#[test]
fn lifecycle_actions() {
    let mut w = world(Phase::Poc);
    assert!(lifecycle(&w.project, LifecycleAction::Resume).is_err());
    w.project.status = Status::OnHold;
    assert_eq!(
        lifecycle(&w.project, LifecycleAction::Resume),
        Ok(Status::Active)
    );
    assert!(lifecycle(&w.project, LifecycleAction::Retire).is_err());
    w.project.status = Status::InProduction;
    assert_eq!(
        lifecycle(&w.project, LifecycleAction::Retire),
        Ok(Status::Retired)
    );
    w.project.status = Status::Stopped;
    assert!(lifecycle(&w.project, LifecycleAction::Resume).is_err());
}

#[test]
fn an_underperforming_project_in_production_can_be_reassessed() {
    let mut w = world(Phase::Deployment);
    w.project.status = Status::InProduction;
    assert!(
        check_can_request(&w.project, true).is_err(),
        "no flag, no review"
    );
    w.project.underperforming = true;
    assert!(matches!(
        check_can_request(&w.project, false),
        Err(Error::PermissionDenied(_))
    ));
    assert!(check_can_request(&w.project, true).is_ok());
    let evals = evaluate(&default_criteria(), &ctx(&w), &[]);
    let (required, signatures) = approved(&w);
    let go = decide(
        &w.project,
        Phase::Deployment,
        Outcome::Go,
        DIRECTOR,
        &evals,
        &required,
        &signatures,
        &[],
    )
    .unwrap_err();
    assert!(matches!(&go, Error::FailedPrecondition(v) if v[0].kind == "REASSESSMENT_OUTCOME"));
    let back = decide(
        &w.project,
        Phase::Deployment,
        Outcome::Recycle,
        DIRECTOR,
        &evals,
        &required,
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(
        (back.phase, back.status),
        (Phase::Deployment, Status::Active)
    );
}

#[test]
fn a_hand_over_moves_the_awaited_sponsor_signature_only() {
    let (old, new, rssi) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let policy = [Signatory {
        function: "RSSI".into(),
        person_id: rssi,
    }];
    let required = required_signatories(old, &policy);
    let moved = hand_over_sponsor(&required, &[], old, new).expect("moved");
    assert_eq!(moved, required_signatories(new, &policy));
    // A signature given stands: nothing moves.
    let signed = [Signature {
        person_id: old,
        verdict: Verdict::Approve,
    }];
    assert_eq!(hand_over_sponsor(&required, &signed, old, new), None);
    // Someone who is not the sponsor signatory hands nothing over.
    assert_eq!(hand_over_sponsor(&required, &[], rssi, new), None);
    // The new sponsor already signs for another function: both remain.
    let both = hand_over_sponsor(&required, &[], old, rssi).expect("moved");
    assert_eq!(
        both,
        vec![
            Signatory {
                function: SPONSOR.into(),
                person_id: rssi
            },
            policy[0].clone(),
        ]
    );
}
