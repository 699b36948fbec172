//! Gate reviews: requests, signatures, waivers, decisions, conditions and
//! the organisation's signatory policies. The rules are the gate engine's
//! (`jalon_core::gate`); this module loads what they look at and writes what
//! they decide, each action in one transaction under the organisation's lock.

use chrono::Utc;
use jalon_core::{
    Error, FieldViolation, Result,
    authz::{Action, Role},
    gate::{
        self, CriterionResult, Decider, Evaluation, GateContext, NewCondition, Outcome, Signatory,
        Signature, Verdict, Waiver,
    },
    project::{Phase, Project},
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    assessments,
    audit::NewEvent,
    change::{Caller, Change, Concerning},
    entity::{
        gate_condition as condition, gate_policy as policy, gate_review as review,
        gate_signature as signature, gate_waiver as waiver,
    },
    error::{db_error, unique_violation},
    projects,
};

/// A review with everything around it.
#[derive(Debug, Clone)]
pub struct ReviewView {
    pub review: review::Model,
    pub signatories: Vec<(Signatory, Option<signature::Model>)>,
    pub criteria_at_request: Vec<Evaluation>,
    /// Evaluated now for an open review, as at the decision for a decided one.
    pub criteria: Vec<Evaluation>,
    pub conditions: Vec<condition::Model>,
}

fn evaluations_to_json(evals: &[Evaluation]) -> String {
    Value::Array(
        evals
            .iter()
            .map(|e| json!({"key": e.key, "description": e.description, "result": e.result.as_str(), "reason": e.reason, "waivable": e.waivable}))
            .collect(),
    )
    .to_string()
}

fn evaluations_from_json(text: &str) -> Vec<Evaluation> {
    let Ok(Value::Array(items)) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|v| {
            Some(Evaluation {
                key: v["key"].as_str()?.to_owned(),
                description: v["description"].as_str()?.to_owned(),
                result: v["result"].as_str()?.parse::<CriterionResult>().ok()?,
                reason: v["reason"].as_str()?.to_owned(),
                waivable: v["waivable"].as_bool()?,
            })
        })
        .collect()
}

fn signatories_to_json(s: &[Signatory]) -> String {
    Value::Array(
        s.iter()
            .map(|s| json!({"function": s.function, "person_id": s.person_id}))
            .collect(),
    )
    .to_string()
}

fn signatories_from_json(text: &str) -> Vec<Signatory> {
    let Ok(Value::Array(items)) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|v| {
            Some(Signatory {
                function: v["function"].as_str()?.to_owned(),
                person_id: v["person_id"].as_str()?.parse().ok()?,
            })
        })
        .collect()
}

/// What the criteria look at, loaded for a project.
struct Facts {
    items: Vec<jalon_core::assessment::Item>,
    sponsor_active: bool,
    open_conditions: usize,
    kpis: Vec<jalon_core::kpi::KpiFacts>,
}

async fn facts(conn: &impl ConnectionTrait, project: &Project) -> Result<Facts> {
    let rows = assessments::items(conn, project.id, None, None).await?;
    let sponsor_active = match project.details.sponsor_id {
        Some(id) => crate::access::is_active_member(conn, project.organisation_id, id).await?,
        None => false,
    };
    let open_conditions = condition::Entity::find()
        .filter(condition::Column::ProjectId.eq(project.id))
        .filter(condition::Column::Closed.eq(false))
        .count(conn)
        .await
        .map_err(db_error)?;
    Ok(Facts {
        items: assessments::domain_items(&rows)?,
        sponsor_active,
        open_conditions: usize::try_from(open_conditions).unwrap_or(usize::MAX),
        kpis: crate::kpis::gate_facts(conn, project.id).await?,
    })
}

/// The gate engine's criteria followed by the KPI module's.
fn criteria() -> Vec<gate::Criterion> {
    let mut all = gate::default_criteria();
    all.extend(jalon_core::kpi::gate_criteria());
    all
}

fn evaluate(project: &Project, from: Phase, facts: &Facts, waivers: &[Waiver]) -> Vec<Evaluation> {
    let ctx = GateContext {
        project,
        from,
        items: &facts.items,
        sponsor_active: facts.sponsor_active,
        open_conditions: facts.open_conditions,
        kpis: &facts.kpis,
    };
    gate::evaluate(&criteria(), &ctx, waivers)
}

async fn waivers(conn: &impl ConnectionTrait, review_id: Uuid) -> Result<Vec<Waiver>> {
    Ok(waiver::Entity::find()
        .filter(waiver::Column::ReviewId.eq(review_id))
        .all(conn)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(|w| Waiver {
            criterion: w.criterion,
            reason: w.reason,
        })
        .collect())
}

async fn signatures(conn: &impl ConnectionTrait, review_id: Uuid) -> Result<Vec<signature::Model>> {
    signature::Entity::find()
        .filter(signature::Column::ReviewId.eq(review_id))
        .all(conn)
        .await
        .map_err(db_error)
}

fn domain_signatures(rows: &[signature::Model]) -> Vec<Signature> {
    rows.iter()
        .filter_map(|s| {
            Some(Signature {
                person_id: s.person_id,
                verdict: s.verdict.parse::<Verdict>().ok()?,
            })
        })
        .collect()
}

async fn find(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    id: Uuid,
) -> Result<review::Model> {
    review::Entity::find_by_id(id)
        .filter(review::Column::OrganisationId.eq(organisation_id))
        .one(conn)
        .await
        .map_err(db_error)?
        .ok_or(Error::NotFound {
            resource: "gate review",
        })
}

fn from_phase(r: &review::Model) -> Result<Phase> {
    r.from_phase
        .parse()
        .map_err(|e| crate::error::unknown("gate_reviews", r.id, e))
}

fn is_open(r: &review::Model) -> bool {
    r.state == "OPEN"
}

async fn view(conn: &impl ConnectionTrait, r: review::Model) -> Result<ReviewView> {
    let sigs = signatures(conn, r.id).await?;
    let required = signatories_from_json(&r.signatories);
    let signatories = required
        .into_iter()
        .map(|s| {
            let signed = sigs.iter().find(|x| x.person_id == s.person_id).cloned();
            (s, signed)
        })
        .collect();
    let criteria = if is_open(&r) {
        let project = projects::get(conn, r.organisation_id, r.project_id).await?;
        let facts = facts(conn, &project).await?;
        let waived = waivers(conn, r.id).await?;
        evaluate(&project, from_phase(&r)?, &facts, &waived)
    } else {
        evaluations_from_json(r.criteria_at_decision.as_deref().unwrap_or("[]"))
    };
    let conditions = condition::Entity::find()
        .filter(condition::Column::ReviewId.eq(r.id))
        .order_by_asc(condition::Column::Id)
        .all(conn)
        .await
        .map_err(db_error)?;
    Ok(ReviewView {
        criteria_at_request: evaluations_from_json(&r.criteria_at_request),
        criteria,
        signatories,
        conditions,
        review: r,
    })
}

/// Reads a review; an open one is evaluated afresh.
pub async fn get(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    id: Uuid,
) -> Result<ReviewView> {
    let r = find(conn, organisation_id, id).await?;
    view(conn, r).await
}

/// The project a review is about and its required signatories (for
/// visibility checks: a signatory sees the review they must sign).
pub async fn project_of(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    review_id: Uuid,
) -> Result<(Uuid, Vec<Uuid>)> {
    let r = find(conn, organisation_id, review_id).await?;
    let signatories = signatories_from_json(&r.signatories)
        .into_iter()
        .map(|s| s.person_id)
        .collect();
    Ok((r.project_id, signatories))
}

/// A project's reviews, newest first.
pub async fn list(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    project_id: Uuid,
) -> Result<Vec<ReviewView>> {
    let rows = review::Entity::find()
        .filter(review::Column::OrganisationId.eq(organisation_id))
        .filter(review::Column::ProjectId.eq(project_id))
        .order_by_desc(review::Column::RequestTime)
        .order_by_desc(review::Column::Id)
        .all(conn)
        .await
        .map_err(db_error)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(view(conn, r).await?);
    }
    Ok(out)
}

/// The extra signatories the policy requires for a transition out of
/// `phase`, for this project.
async fn policy_signatories(
    conn: &impl ConnectionTrait,
    project: &Project,
) -> Result<Vec<Signatory>> {
    Ok(policy::Entity::find()
        .filter(policy::Column::OrganisationId.eq(project.organisation_id))
        .filter(policy::Column::FromPhase.eq(project.phase.as_str()))
        .order_by_asc(policy::Column::Function)
        .all(conn)
        .await
        .map_err(db_error)?
        .into_iter()
        .filter(|p| !p.only_when_personal_data || project.details.personal_data)
        .map(|p| Signatory {
            function: p.function,
            person_id: p.person_id,
        })
        .collect())
}

/// Opens the review of the transition out of the project's current phase.
pub async fn request(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    project_id: Uuid,
    caller: &Caller,
) -> Result<ReviewView> {
    let mut change = Change::begin(db, organisation_id, caller, Action::RequestGateReview).await?;
    let project = change.project_for(project_id, "project").await?;
    let is_director = change.member().is_some_and(|m| m.role == Role::Director);
    gate::check_can_request(&project, is_director)?;
    let facts = facts(change.conn(), &project).await?;
    let evals = evaluate(&project, project.phase, &facts, &[]);
    let mut required = policy_signatories(change.conn(), &project).await?;
    if let Some(sponsor) = project.details.sponsor_id {
        required = gate::required_signatories(sponsor, &required);
    }
    let id = Uuid::now_v7();
    let inserted = review::ActiveModel {
        id: Set(id),
        organisation_id: Set(organisation_id),
        project_id: Set(project_id),
        open_project_id: Set(Some(project_id)),
        from_phase: Set(project.phase.as_str().to_owned()),
        to_phase: Set(project.phase.next().map(|p| p.as_str().to_owned())),
        state: Set("OPEN".to_owned()),
        requested_by: Set(change.actor().person_id),
        request_time: Set(Utc::now()),
        criteria_at_request: Set(evaluations_to_json(&evals)),
        signatories: Set(signatories_to_json(&required)),
        outcome: Set(None),
        rationale: Set(String::new()),
        decided_by: Set(None),
        decide_time: Set(None),
        criteria_at_decision: Set(None),
        version: Set(1),
    }
    .insert(change.conn())
    .await;
    match inserted {
        Ok(_) => {}
        Err(e) if unique_violation(&e).is_some() => {
            return Err(Error::precondition(
                "REVIEW_ALREADY_OPEN",
                format!("projects/{project_id}"),
                "the project already has an open gate review: decide it first",
            ));
        }
        Err(e) => return Err(db_error(e)),
    }
    change.event(NewEvent {
        project_id: Some(project_id),
        action: "gate.requested",
        resource_type: "gate_review",
        resource_id: id.to_string(),
        before: None,
        after: json!({"from_phase": project.phase.as_str(), "criteria": serde_json::from_str::<Value>(&evaluations_to_json(&evals)).unwrap_or(Value::Null)}),
        chained: false,
    });
    let created = get(change.conn(), organisation_id, id).await?;
    change.commit().await?;
    Ok(created)
}

/// After a project's sponsorship passed from `from` to `to` (inside the
/// change, the project locked): its open review, if it still waits for
/// `from`'s signature as sponsor, waits for `to`'s instead. Records
/// gate.signatories_changed and returns the review's id when it changed.
pub(crate) async fn hand_over_sponsor_signature(
    change: &mut Change,
    project_id: Uuid,
    from: Uuid,
    to: Uuid,
) -> Result<Option<Uuid>> {
    let Some(r) = review::Entity::find()
        .filter(review::Column::OrganisationId.eq(change.organisation_id()))
        .filter(review::Column::ProjectId.eq(project_id))
        .filter(review::Column::State.eq("OPEN"))
        .one(change.conn())
        .await
        .map_err(db_error)?
    else {
        return Ok(None);
    };
    let required = signatories_from_json(&r.signatories);
    let signed = domain_signatures(&signatures(change.conn(), r.id).await?);
    let Some(moved) = gate::hand_over_sponsor(&required, &signed, from, to) else {
        return Ok(None);
    };
    let updated = review::Entity::update_many()
        .set(review::ActiveModel {
            signatories: Set(signatories_to_json(&moved)),
            version: Set(r.version + 1),
            ..Default::default()
        })
        .filter(review::Column::Id.eq(r.id))
        .filter(review::Column::Version.eq(r.version))
        .filter(review::Column::State.eq("OPEN"))
        .exec(change.conn())
        .await
        .map_err(db_error)?;
    if updated.rows_affected == 0 {
        return Err(Error::Aborted(
            "the gate review changed concurrently".into(),
        ));
    }
    let as_json = |s: &[Signatory]| {
        s.iter()
            .map(|s| json!({"function": s.function, "person_id": s.person_id}))
            .collect::<Vec<_>>()
    };
    change.event(NewEvent {
        project_id: Some(project_id),
        action: "gate.signatories_changed",
        resource_type: "gate_review",
        resource_id: r.id.to_string(),
        before: Some(json!({"signatories": as_json(&required), "sponsor": from})),
        after: json!({"signatories": as_json(&moved), "sponsor": to}),
        chained: false,
    });
    Ok(Some(r.id))
}

/// Begins a change acting on an open review: locks its project, reads the
/// review under that lock and applies the access policy (a required
/// signatory sees the review they must sign).
async fn open_review(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    review_id: Uuid,
    caller: &Caller,
    action: Action,
) -> Result<(Change, review::Model, Project)> {
    let mut change = Change::begin(db, organisation_id, caller, action).await?;
    let project_id = find(change.conn(), organisation_id, review_id)
        .await?
        .project_id;
    let project = change.locked_project(project_id, "gate review").await?;
    let r = find(change.conn(), organisation_id, review_id).await?;
    let signatories: Vec<Uuid> = signatories_from_json(&r.signatories)
        .into_iter()
        .map(|s| s.person_id)
        .collect();
    change.allow_concerning(
        &project,
        Concerning {
            signatories: &signatories,
            ..Concerning::default()
        },
        "gate review",
    )?;
    open_or_refuse(&r)?;
    Ok((change, r, project))
}

fn open_or_refuse(r: &review::Model) -> Result<()> {
    if is_open(r) {
        Ok(())
    } else {
        Err(Error::precondition(
            "REVIEW_DECIDED",
            format!("gate_reviews/{}", r.id),
            "the review is decided, and a decided review is immutable",
        ))
    }
}

/// Signs a review.
pub async fn sign(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    review_id: Uuid,
    verdict: Verdict,
    comment: &str,
    caller: &Caller,
) -> Result<ReviewView> {
    let (mut change, r, project) =
        open_review(db, organisation_id, review_id, caller, Action::SignGate).await?;
    let signer = change
        .actor()
        .person_id
        .ok_or_else(|| Error::PermissionDenied("only people of the organisation sign".into()))?;
    let required = signatories_from_json(&r.signatories);
    let existing = signatures(change.conn(), review_id).await?;
    gate::check_signature(
        signer,
        project.details.lead_id,
        &required,
        &domain_signatures(&existing),
    )?;
    signature::ActiveModel {
        review_id: Set(review_id),
        person_id: Set(signer),
        verdict: Set(verdict.as_str().to_owned()),
        comment: Set(comment.to_owned()),
        sign_time: Set(Utc::now()),
    }
    .insert(change.conn())
    .await
    .map_err(db_error)?;
    let functions: Vec<&str> = required
        .iter()
        .filter(|s| s.person_id == signer)
        .map(|s| s.function.as_str())
        .collect();
    change.event(NewEvent {
        project_id: Some(r.project_id),
        action: "gate.signed",
        resource_type: "gate_review",
        resource_id: review_id.to_string(),
        before: None,
        after: json!({"verdict": verdict.as_str(), "comment": comment, "functions": functions}),
        chained: true,
    });
    let updated = get(change.conn(), organisation_id, review_id).await?;
    change.commit().await?;
    Ok(updated)
}

/// Waives a failed, waivable criterion of an open review.
pub async fn waive(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    review_id: Uuid,
    criterion: &str,
    reason: &str,
    caller: &Caller,
) -> Result<ReviewView> {
    let (mut change, r, project) = open_review(
        db,
        organisation_id,
        review_id,
        caller,
        Action::WaiveGateCriterion,
    )
    .await?;
    let director = change.actor().person_id.ok_or_else(|| {
        Error::PermissionDenied("only a DIRECTOR of the organisation waives".into())
    })?;
    let facts = facts(change.conn(), &project).await?;
    let current = evaluate(
        &project,
        from_phase(&r)?,
        &facts,
        &waivers(change.conn(), review_id).await?,
    );
    let Some(found) = current.iter().find(|e| e.key == criterion) else {
        return Err(Error::invalid(
            "criterion",
            format!("'{criterion}' is not a criterion of this gate"),
        ));
    };
    if !found.waivable {
        return Err(Error::precondition(
            "NOT_WAIVABLE",
            format!("criteria/{criterion}"),
            format!("{criterion} cannot be waived"),
        ));
    }
    if found.result != CriterionResult::Fail {
        return Err(Error::precondition(
            "NOT_FAILING",
            format!("criteria/{criterion}"),
            format!("{criterion} does not fail: nothing to waive"),
        ));
    }
    waiver::ActiveModel {
        review_id: Set(review_id),
        criterion: Set(criterion.to_owned()),
        reason: Set(reason.to_owned()),
        waived_by: Set(director),
        waive_time: Set(Utc::now()),
    }
    .insert(change.conn())
    .await
    .map_err(db_error)?;
    change.event(NewEvent {
        project_id: Some(r.project_id),
        action: "gate.waived",
        resource_type: "gate_review",
        resource_id: review_id.to_string(),
        before: Some(json!({"criterion": criterion, "result": "FAIL", "reason": found.reason})),
        after: json!({"criterion": criterion, "result": "WAIVED", "waiver": reason}),
        chained: true,
    });
    let updated = get(change.conn(), organisation_id, review_id).await?;
    change.commit().await?;
    Ok(updated)
}

/// Records a decision and moves the project, in one transaction.
pub async fn decide(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    review_id: Uuid,
    outcome: Outcome,
    rationale: &str,
    conditions: &[NewCondition],
    caller: &Caller,
) -> Result<(ReviewView, Project)> {
    let (mut change, r, project) =
        open_review(db, organisation_id, review_id, caller, Action::DecideGate).await?;
    let is_director = change.member().is_some_and(|m| m.role == Role::Director);
    let person_id = change.actor().person_id;
    let facts = facts(change.conn(), &project).await?;
    let evals = evaluate(
        &project,
        from_phase(&r)?,
        &facts,
        &waivers(change.conn(), review_id).await?,
    );
    let decider = Decider {
        is_director,
        is_sponsor: person_id.is_some() && person_id == project.details.sponsor_id,
    };
    let required = signatories_from_json(&r.signatories);
    let sigs = domain_signatures(&signatures(change.conn(), review_id).await?);
    let transition = gate::decide(
        &project,
        from_phase(&r)?,
        outcome,
        decider,
        &evals,
        &required,
        &sigs,
        conditions,
    )?;
    let active = crate::access::active_members(
        change.conn(),
        organisation_id,
        conditions.iter().map(|c| c.owner_id),
    )
    .await?;
    let mut bad_owners = Vec::new();
    for (i, c) in conditions.iter().enumerate() {
        if !active.contains(&c.owner_id) {
            bad_owners.push(FieldViolation::new(
                format!("conditions[{i}].owner_id"),
                "is not an active person of this organisation",
            ));
        }
    }
    if !bad_owners.is_empty() {
        return Err(Error::InvalidArgument(bad_owners));
    }
    let now = Utc::now();
    let updated = review::Entity::update_many()
        .set(review::ActiveModel {
            state: Set("DECIDED".to_owned()),
            open_project_id: Set(None),
            outcome: Set(Some(outcome.as_str().to_owned())),
            rationale: Set(rationale.to_owned()),
            decided_by: Set(person_id),
            decide_time: Set(Some(now)),
            criteria_at_decision: Set(Some(evaluations_to_json(&evals))),
            version: Set(r.version + 1),
            ..Default::default()
        })
        .filter(review::Column::Id.eq(review_id))
        .filter(review::Column::Version.eq(r.version))
        .filter(review::Column::State.eq("OPEN"))
        .exec(change.conn())
        .await
        .map_err(db_error)?;
    if updated.rows_affected == 0 {
        return Err(Error::Aborted("the review was decided concurrently".into()));
    }
    projects::move_project(change.conn(), &project, transition.phase, transition.status).await?;
    for c in conditions {
        condition::ActiveModel {
            id: Set(Uuid::now_v7()),
            organisation_id: Set(organisation_id),
            project_id: Set(project.id),
            review_id: Set(review_id),
            description: Set(c.description.clone()),
            owner_id: Set(c.owner_id),
            due_date: Set(c.due),
            closed: Set(false),
            close_note: Set(String::new()),
            closed_by: Set(None),
            close_time: Set(None),
        }
        .insert(change.conn())
        .await
        .map_err(db_error)?;
    }
    change.event(NewEvent {
        project_id: Some(project.id),
        action: "gate.decided",
        resource_type: "gate_review",
        resource_id: review_id.to_string(),
        before: Some(json!({"phase": project.phase.as_str(), "status": project.status.as_str()})),
        after: json!({
            "outcome": outcome.as_str(),
            "rationale": rationale,
            "phase": transition.phase.as_str(),
            "status": transition.status.as_str(),
            "conditions": conditions.iter().map(|c| json!({"description": c.description, "owner_id": c.owner_id, "due": c.due})).collect::<Vec<_>>(),
            "criteria": serde_json::from_str::<Value>(&evaluations_to_json(&evals)).unwrap_or(Value::Null),
        }),
        chained: true,
    });
    let review_view = get(change.conn(), organisation_id, review_id).await?;
    let moved = projects::get(change.conn(), organisation_id, project.id).await?;
    change.rewritten(moved.clone());
    change.commit().await?;
    Ok((review_view, moved))
}

/// A project's conditions, oldest first.
pub async fn conditions(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    project_id: Uuid,
    open_only: bool,
) -> Result<Vec<condition::Model>> {
    let mut query = condition::Entity::find()
        .filter(condition::Column::OrganisationId.eq(organisation_id))
        .filter(condition::Column::ProjectId.eq(project_id));
    if open_only {
        query = query.filter(condition::Column::Closed.eq(false));
    }
    query
        .order_by_asc(condition::Column::Id)
        .all(conn)
        .await
        .map_err(db_error)
}

async fn find_condition(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    id: Uuid,
) -> Result<condition::Model> {
    condition::Entity::find_by_id(id)
        .filter(condition::Column::OrganisationId.eq(organisation_id))
        .one(conn)
        .await
        .map_err(db_error)?
        .ok_or(Error::NotFound {
            resource: "condition",
        })
}

/// Closes a condition.
pub async fn close_condition(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    id: Uuid,
    note: &str,
    caller: &Caller,
) -> Result<condition::Model> {
    let mut change = Change::begin(db, organisation_id, caller, Action::CloseGateCondition).await?;
    let project_id = find_condition(change.conn(), organisation_id, id)
        .await?
        .project_id;
    let project = change.locked_project(project_id, "condition").await?;
    let found = find_condition(change.conn(), organisation_id, id).await?;
    change.allow_concerning(
        &project,
        Concerning {
            condition_owner: Some(found.owner_id),
            ..Concerning::default()
        },
        "condition",
    )?;
    if found.closed {
        return Err(Error::precondition(
            "ALREADY_CLOSED",
            format!("conditions/{id}"),
            "the condition is already closed",
        ));
    }
    let closed = condition::ActiveModel {
        id: Set(id),
        closed: Set(true),
        close_note: Set(note.to_owned()),
        closed_by: Set(change.actor().person_id),
        close_time: Set(Some(Utc::now())),
        ..Default::default()
    }
    .update(change.conn())
    .await
    .map_err(db_error)?;
    change.event(NewEvent {
        project_id: Some(project_id),
        action: "gate.condition_closed",
        resource_type: "gate_condition",
        resource_id: id.to_string(),
        before: Some(json!({"closed": false})),
        after: json!({"closed": true, "note": note}),
        chained: false,
    });
    change.touch(project_id);
    change.commit().await?;
    Ok(closed)
}

/// An extra signatory of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySignatory {
    pub function: String,
    pub person_id: Uuid,
    pub only_when_personal_data: bool,
}

/// The organisation's policies, by phase.
pub async fn policies(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
) -> Result<Vec<(Phase, Vec<PolicySignatory>)>> {
    let rows = policy::Entity::find()
        .filter(policy::Column::OrganisationId.eq(organisation_id))
        .order_by_asc(policy::Column::Function)
        .all(conn)
        .await
        .map_err(db_error)?;
    let mut out: Vec<(Phase, Vec<PolicySignatory>)> = Vec::new();
    for phase in Phase::ALL {
        let signatories: Vec<PolicySignatory> = rows
            .iter()
            .filter(|r| r.from_phase == phase.as_str())
            .map(|r| PolicySignatory {
                function: r.function.clone(),
                person_id: r.person_id,
                only_when_personal_data: r.only_when_personal_data,
            })
            .collect();
        if !signatories.is_empty() {
            out.push((*phase, signatories));
        }
    }
    Ok(out)
}

/// Replaces the extra signatories of the transition out of `phase`.
pub async fn set_policy(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    phase: Phase,
    signatories: &[PolicySignatory],
    caller: &Caller,
) -> Result<Vec<PolicySignatory>> {
    let mut change = Change::begin(db, organisation_id, caller, Action::SetGatePolicy).await?;
    change.lock_organisation().await?;
    let active = crate::access::active_members(
        change.conn(),
        organisation_id,
        signatories.iter().map(|s| s.person_id),
    )
    .await?;
    let mut bad = Vec::new();
    for (i, s) in signatories.iter().enumerate() {
        if !active.contains(&s.person_id) {
            bad.push(FieldViolation::new(
                format!("policy.signatories[{i}].person_id"),
                "is not an active person of this organisation",
            ));
        }
    }
    if !bad.is_empty() {
        return Err(Error::InvalidArgument(bad));
    }
    let before = policies(change.conn(), organisation_id).await?;
    policy::Entity::delete_many()
        .filter(policy::Column::OrganisationId.eq(organisation_id))
        .filter(policy::Column::FromPhase.eq(phase.as_str()))
        .exec(change.conn())
        .await
        .map_err(db_error)?;
    for s in signatories {
        policy::ActiveModel {
            organisation_id: Set(organisation_id),
            from_phase: Set(phase.as_str().to_owned()),
            function: Set(s.function.clone()),
            person_id: Set(s.person_id),
            only_when_personal_data: Set(s.only_when_personal_data),
        }
        .insert(change.conn())
        .await
        .map_err(db_error)?;
    }
    let as_json = |list: &[PolicySignatory]| -> Value {
        list.iter().map(|s| json!({"function": s.function, "person_id": s.person_id, "only_when_personal_data": s.only_when_personal_data})).collect()
    };
    let previous = before
        .iter()
        .find(|(p, _)| *p == phase)
        .map(|(_, l)| as_json(l))
        .unwrap_or(Value::Array(vec![]));
    change.event(NewEvent {
        project_id: None,
        action: "gate.policy_set",
        resource_type: "gate_policy",
        resource_id: phase.as_str().to_owned(),
        before: Some(previous),
        after: as_json(signatories),
        chained: false,
    });
    change.commit().await?;
    Ok(signatories.to_vec())
}

/// Filters of the organisation-wide signature query; `None` matches all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SignatureFilter {
    pub signatory_id: Option<Uuid>,
    pub sponsor_id: Option<Uuid>,
    pub verdict: Option<Verdict>,
    pub outcome: Option<Outcome>,
    /// Signed at or after.
    pub start: Option<chrono::DateTime<Utc>>,
    /// Signed before.
    pub end: Option<chrono::DateTime<Utc>>,
    /// Which projects the caller sees.
    pub visibility: jalon_core::authz::Visibility,
}

impl SignatureFilter {
    /// A stable rendering, bound into page tokens.
    pub fn key(&self) -> String {
        format!("{self:?}")
    }
}

/// One signature with its review and project: who signed what, and when.
#[derive(Debug, Clone, PartialEq, sea_orm::FromQueryResult)]
pub struct SignatureRecord {
    pub review_id: Uuid,
    pub signatory_id: Uuid,
    pub signatory_name: String,
    pub verdict: String,
    pub comment: String,
    pub sign_time: chrono::DateTime<Utc>,
    pub project_id: Uuid,
    pub project_name: String,
    pub sponsor_id: Option<Uuid>,
    pub from_phase: String,
    pub outcome: Option<String>,
    pub decided_by: Option<Uuid>,
    pub decide_time: Option<chrono::DateTime<Utc>>,
}

/// Where a page of signatures continues (newest first): before this time,
/// review and signatory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureCursor {
    pub sign_time_nanos: i64,
    pub review_id: Uuid,
    pub signatory_id: Uuid,
}

impl std::fmt::Display for SignatureCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.sign_time_nanos, self.review_id, self.signatory_id
        )
    }
}

impl std::str::FromStr for SignatureCursor {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let mut parts = s.split('/');
        let mut next = || parts.next().ok_or_else(|| "a short cursor".to_owned());
        Ok(SignatureCursor {
            sign_time_nanos: next()?.parse().map_err(|_| "a bad time")?,
            review_id: next()?.parse().map_err(|_| "a bad review")?,
            signatory_id: next()?.parse().map_err(|_| "a bad signatory")?,
        })
    }
}

/// Every signature of the organisation's gate reviews the caller may see,
/// newest first, with filters: "who signed what, and when" in one call.
pub async fn signatures_of_organisation(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    filter: &SignatureFilter,
    page_size: u32,
    after: Option<SignatureCursor>,
) -> Result<crate::page::Page<SignatureRecord>> {
    use crate::entity::{person, project};
    use sea_orm::{Condition, JoinType, QuerySelect};
    let mut query = signature::Entity::find()
        .select_only()
        .column_as(signature::Column::ReviewId, "review_id")
        .column_as(signature::Column::PersonId, "signatory_id")
        .column_as(person::Column::DisplayName, "signatory_name")
        .column_as(signature::Column::Verdict, "verdict")
        .column_as(signature::Column::Comment, "comment")
        .column_as(signature::Column::SignTime, "sign_time")
        .column_as(review::Column::ProjectId, "project_id")
        .column_as(project::Column::Name, "project_name")
        .column_as(project::Column::SponsorId, "sponsor_id")
        .column_as(review::Column::FromPhase, "from_phase")
        .column_as(review::Column::Outcome, "outcome")
        .column_as(review::Column::DecidedBy, "decided_by")
        .column_as(review::Column::DecideTime, "decide_time")
        .join(
            JoinType::InnerJoin,
            signature::Entity::belongs_to(review::Entity)
                .from(signature::Column::ReviewId)
                .to(review::Column::Id)
                .into(),
        )
        .join(
            JoinType::InnerJoin,
            review::Entity::belongs_to(project::Entity)
                .from(review::Column::ProjectId)
                .to(project::Column::Id)
                .into(),
        )
        .join(
            JoinType::InnerJoin,
            signature::Entity::belongs_to(person::Entity)
                .from(signature::Column::PersonId)
                .to(person::Column::Id)
                .into(),
        )
        .filter(review::Column::OrganisationId.eq(organisation_id))
        .filter(crate::access::visibility_condition(
            filter.visibility,
            project::Column::LeadId,
            project::Column::SponsorId,
        ));
    if let Some(p) = filter.signatory_id {
        query = query.filter(signature::Column::PersonId.eq(p));
    }
    if let Some(p) = filter.sponsor_id {
        query = query.filter(project::Column::SponsorId.eq(p));
    }
    if let Some(v) = filter.verdict {
        query = query.filter(signature::Column::Verdict.eq(v.as_str()));
    }
    if let Some(o) = filter.outcome {
        query = query.filter(review::Column::Outcome.eq(o.as_str()));
    }
    if let Some(t) = filter.start {
        query = query.filter(signature::Column::SignTime.gte(t));
    }
    if let Some(t) = filter.end {
        query = query.filter(signature::Column::SignTime.lt(t));
    }
    if let Some(c) = after {
        let t =
            Some(chrono::DateTime::from_timestamp_nanos(c.sign_time_nanos)).ok_or_else(|| {
                Error::invalid("page_token", "is not a page token this service issued")
            })?;
        query = query.filter(
            Condition::any().add(signature::Column::SignTime.lt(t)).add(
                Condition::all().add(signature::Column::SignTime.eq(t)).add(
                    Condition::any()
                        .add(signature::Column::ReviewId.lt(c.review_id))
                        .add(
                            Condition::all()
                                .add(signature::Column::ReviewId.eq(c.review_id))
                                .add(signature::Column::PersonId.lt(c.signatory_id)),
                        ),
                ),
            ),
        );
    }
    let rows = query
        .order_by_desc(signature::Column::SignTime)
        .order_by_desc(signature::Column::ReviewId)
        .order_by_desc(signature::Column::PersonId)
        .limit(u64::from(page_size) + 1)
        .into_model::<SignatureRecord>()
        .all(conn)
        .await
        .map_err(db_error)?;
    Ok(crate::page::paginate(rows, page_size, &filter.key(), |r| {
        SignatureCursor {
            sign_time_nanos: r.sign_time.timestamp_nanos_opt().unwrap_or(i64::MAX),
            review_id: r.review_id,
            signatory_id: r.signatory_id,
        }
    }))
}
