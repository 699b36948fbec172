//! `jalon.v1.GateService`.

use jalon_core::{
    Error, FieldViolation, Result,
    authz::Action,
    gate::{CriterionResult, Evaluation, NewCondition, Outcome, Verdict},
    project::Phase,
};
use jalon_proto::v1::{self as pb, gate_service_server::GateService};
use jalon_store::{
    Store,
    entity::gate_condition,
    gates::{self, PolicySignatory, ReviewView},
    people::Membership,
};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{
    allow, authorise, caller, conversions as conv, member,
    projects::{date_in, date_out, phase_in, phase_out, project_to_proto},
    requester, visible_project,
};
use crate::error::OrStatus;

wire_enum!(
    pub(crate) outcome_in,
    outcome_out,
    pb::GateOutcome,
    Outcome,
    "GATE_OUTCOME_"
);
wire_enum!(verdict_in, verdict_out, pb::Verdict, Verdict, "VERDICT_");
fn result_out(value: Option<CriterionResult>) -> i32 {
    value
        .and_then(|v| {
            pb::CriterionResult::from_str_name(&format!("CRITERION_RESULT_{}", v.as_str()))
        })
        .map_or(0, |e| e as i32)
}

/// The handlers of `GateService`.
#[derive(Clone)]
pub struct GateApi {
    pub store: Store,
}

fn evaluation_to_proto(e: Evaluation) -> pb::CriterionEvaluation {
    pb::CriterionEvaluation {
        key: e.key,
        description: e.description,
        result: result_out(Some(e.result)),
        reason: e.reason,
        waivable: e.waivable,
    }
}

fn condition_to_proto(c: gate_condition::Model) -> pb::GateCondition {
    pb::GateCondition {
        id: c.id.to_string(),
        review_id: c.review_id.to_string(),
        project_id: c.project_id.to_string(),
        description: c.description,
        owner_id: c.owner_id.to_string(),
        due_date: date_out(Some(c.due_date)),
        closed: c.closed,
        close_note: c.close_note,
        close_time: c.close_time.map(conv::timestamp),
    }
}

fn review_to_proto(v: ReviewView) -> pb::GateReview {
    let r = v.review;
    pb::GateReview {
        id: r.id.to_string(),
        project_id: r.project_id.to_string(),
        from_phase: phase_out(r.from_phase.parse().ok()),
        to_phase: phase_out(r.to_phase.as_deref().and_then(|p| p.parse().ok())),
        state: if r.state == "OPEN" {
            pb::GateReviewState::Open as i32
        } else {
            pb::GateReviewState::Decided as i32
        },
        requested_by: r.requested_by.map(|p| p.to_string()).unwrap_or_default(),
        request_time: Some(conv::timestamp(r.request_time)),
        criteria_at_request: v
            .criteria_at_request
            .into_iter()
            .map(evaluation_to_proto)
            .collect(),
        criteria: v.criteria.into_iter().map(evaluation_to_proto).collect(),
        signatories: v
            .signatories
            .into_iter()
            .map(|(s, signed)| pb::GateSignatory {
                function: s.function,
                person_id: s.person_id.to_string(),
                verdict: verdict_out(signed.as_ref().and_then(|x| x.verdict.parse().ok())),
                comment: signed
                    .as_ref()
                    .map(|x| x.comment.clone())
                    .unwrap_or_default(),
                sign_time: signed.map(|x| conv::timestamp(x.sign_time)),
            })
            .collect(),
        outcome: outcome_out(r.outcome.as_deref().and_then(|o| o.parse().ok())),
        rationale: r.rationale,
        decided_by: r.decided_by.map(|p| p.to_string()).unwrap_or_default(),
        decide_time: r.decide_time.map(conv::timestamp),
        conditions: v.conditions.into_iter().map(condition_to_proto).collect(),
        etag: jalon_core::organisation::etag(r.version),
    }
}

fn text(field: &str, value: &str, required: bool) -> Result<String> {
    let value =
        jalon_core::values::free_text(value, 10_000).map_err(|d| Error::invalid(field, d))?;
    if required && value.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    Ok(value)
}

impl GateApi {
    /// The caller's membership and the review's project, which they must see.
    async fn review_access(
        &self,
        caller: &crate::auth::Caller,
        action: Action,
        org: Uuid,
        review_id: Uuid,
    ) -> Result<(Membership, jalon_core::project::Project)> {
        let membership = member(authorise(&self.store, caller, action, org).await?)?;
        let (project_id, signatories) = gates::project_of(self.store.db(), org, review_id).await?;
        let project = jalon_store::projects::get(self.store.db(), org, project_id).await?;
        allow(
            &membership,
            action,
            &jalon_core::authz::Parties {
                signatory: signatories.contains(&membership.person_id),
                ..jalon_core::authz::Parties::of(&project)
            },
            "gate review",
        )?;
        Ok((membership, project))
    }
}

#[tonic::async_trait]
impl GateService for GateApi {
    #[tracing::instrument(skip_all)]
    async fn request_gate_review(
        &self,
        request: Request<pb::RequestGateReviewRequest>,
    ) -> Result<Response<pb::RequestGateReviewResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let project_id = conv::id("project_id", &req.project_id).or_status()?;
        let review = gates::request(self.store.db(), org, project_id, &requester(&caller))
            .await
            .or_status()?;
        tracing::info!(organisation_id = %org, project_id = %project_id, review_id = %review.review.id, "gate review requested");
        Ok(Response::new(pb::RequestGateReviewResponse {
            review: Some(review_to_proto(review)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_gate_review(
        &self,
        request: Request<pb::GetGateReviewRequest>,
    ) -> Result<Response<pb::GetGateReviewResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let id = conv::id("id", &req.id).or_status()?;
        self.review_access(&caller, Action::GetGateReview, org, id)
            .await
            .or_status()?;
        let review = gates::get(self.store.db(), org, id).await.or_status()?;
        Ok(Response::new(pb::GetGateReviewResponse {
            review: Some(review_to_proto(review)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_gate_reviews(
        &self,
        request: Request<pb::ListGateReviewsRequest>,
    ) -> Result<Response<pb::ListGateReviewsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let project_id = conv::id("project_id", &req.project_id).or_status()?;
        let membership = member(
            authorise(&self.store, &caller, Action::ListGateReviews, org)
                .await
                .or_status()?,
        )
        .or_status()?;
        visible_project(&self.store, &membership, org, project_id)
            .await
            .or_status()?;
        let reviews = gates::list(self.store.db(), org, project_id)
            .await
            .or_status()?;
        Ok(Response::new(pb::ListGateReviewsResponse {
            reviews: reviews.into_iter().map(review_to_proto).collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_signatures(
        &self,
        request: Request<pb::ListSignaturesRequest>,
    ) -> Result<Response<pb::ListSignaturesResponse>, Status> {
        use jalon_core::values::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, parse_page_size};
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let mut v = jalon_core::error::Violations::new();
        let size = v.check(
            "page_size",
            parse_page_size(req.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE),
        );
        let person = |field: &str, raw: &str, v: &mut jalon_core::error::Violations| {
            v.check(field, super::projects::optional_person(raw))
                .flatten()
        };
        let signatory_id = person("signatory_id", &req.signatory_id, &mut v);
        let sponsor_id = person("sponsor_id", &req.sponsor_id, &mut v);
        let verdict = v.check("verdict", verdict_in(req.verdict)).flatten();
        let outcome = v.check("outcome", outcome_in(req.outcome)).flatten();
        let start = v
            .check("start_time", conv::time_in(req.start_time.as_ref()))
            .flatten();
        let end = v
            .check("end_time", conv::time_in(req.end_time.as_ref()))
            .flatten();
        v.finish().or_status()?;
        let membership = member(
            authorise(&self.store, &caller, Action::ListSignatures, org)
                .await
                .or_status()?,
        )
        .or_status()?;
        let filter = gates::SignatureFilter {
            signatory_id,
            sponsor_id,
            verdict,
            outcome,
            start,
            end,
            visibility: jalon_core::authz::visibility(&membership.member()),
        };
        let after =
            jalon_store::page::decode(&req.page_token, &filter.key(), "page_token").or_status()?;
        let page = gates::signatures_of_organisation(
            self.store.db(),
            org,
            &filter,
            size.unwrap_or(DEFAULT_PAGE_SIZE),
            after,
        )
        .await
        .or_status()?;
        Ok(Response::new(pb::ListSignaturesResponse {
            signatures: page
                .items
                .into_iter()
                .map(|r| pb::SignatureRecord {
                    review_id: r.review_id.to_string(),
                    signatory_id: r.signatory_id.to_string(),
                    signatory_name: r.signatory_name,
                    verdict: verdict_out(r.verdict.parse().ok()),
                    comment: r.comment,
                    sign_time: Some(conv::timestamp(r.sign_time)),
                    project_id: r.project_id.to_string(),
                    project_name: r.project_name,
                    sponsor_id: r.sponsor_id.map(|p| p.to_string()).unwrap_or_default(),
                    from_phase: phase_out(r.from_phase.parse().ok()),
                    outcome: outcome_out(r.outcome.as_deref().and_then(|o| o.parse().ok())),
                    decided_by: r.decided_by.map(|p| p.to_string()).unwrap_or_default(),
                    decide_time: r.decide_time.map(conv::timestamp),
                })
                .collect(),
            next_page_token: page.next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn sign_gate(
        &self,
        request: Request<pb::SignGateRequest>,
    ) -> Result<Response<pb::SignGateResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let review_id = conv::id("review_id", &req.review_id).or_status()?;
        let verdict = verdict_in(req.verdict)
            .and_then(|v| v.ok_or_else(|| "is required".to_owned()))
            .map_err(|d| Error::invalid("verdict", d))
            .or_status()?;
        let comment = text("comment", &req.comment, verdict == Verdict::Reject).or_status()?;
        let review = gates::sign(
            self.store.db(),
            org,
            review_id,
            verdict,
            &comment,
            &requester(&caller),
        )
        .await
        .or_status()?;
        tracing::info!(organisation_id = %org, %review_id, verdict = verdict.as_str(), "gate signed");
        Ok(Response::new(pb::SignGateResponse {
            review: Some(review_to_proto(review)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn waive_gate_criterion(
        &self,
        request: Request<pb::WaiveGateCriterionRequest>,
    ) -> Result<Response<pb::WaiveGateCriterionResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let review_id = conv::id("review_id", &req.review_id).or_status()?;
        if req.criterion.is_empty() {
            return Err(Error::invalid("criterion", "is required")).or_status();
        }
        let reason = text("reason", &req.reason, true).or_status()?;
        let review = gates::waive(
            self.store.db(),
            org,
            review_id,
            &req.criterion,
            &reason,
            &requester(&caller),
        )
        .await
        .or_status()?;
        Ok(Response::new(pb::WaiveGateCriterionResponse {
            review: Some(review_to_proto(review)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn decide_gate(
        &self,
        request: Request<pb::DecideGateRequest>,
    ) -> Result<Response<pb::DecideGateResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let review_id = conv::id("review_id", &req.review_id).or_status()?;
        let mut violations = Vec::new();
        let outcome = match outcome_in(req.outcome) {
            Ok(Some(o)) => Some(o),
            Ok(None) => {
                violations.push(FieldViolation::new("outcome", "is required"));
                None
            }
            Err(d) => {
                violations.push(FieldViolation::new("outcome", d));
                None
            }
        };
        let rationale = match text("rationale", &req.rationale, true) {
            Ok(r) => r,
            Err(Error::InvalidArgument(v)) => {
                violations.extend(v);
                String::new()
            }
            Err(e) => return Err(e).or_status(),
        };
        let mut conditions = Vec::new();
        for (i, c) in req.conditions.iter().enumerate() {
            let field = |name: &str| format!("conditions[{i}].{name}");
            let description = match jalon_core::values::free_text(&c.description, 2_000) {
                Ok(d) if d.is_empty() => {
                    violations.push(FieldViolation::new(field("description"), "is required"));
                    String::new()
                }
                Ok(d) => d,
                Err(d) => {
                    violations.push(FieldViolation::new(field("description"), d));
                    String::new()
                }
            };
            let owner = jalon_core::values::parse_id(&c.owner_id)
                .map_err(|d| violations.push(FieldViolation::new(field("owner_id"), d)))
                .ok();
            let due = match date_in(c.due_date.as_ref()) {
                Ok(Some(d)) => Some(d),
                Ok(None) => {
                    violations.push(FieldViolation::new(field("due_date"), "is required"));
                    None
                }
                Err(d) => {
                    violations.push(FieldViolation::new(field("due_date"), d));
                    None
                }
            };
            if let (Some(owner_id), Some(due)) = (owner, due) {
                conditions.push(NewCondition {
                    description,
                    owner_id,
                    due,
                });
            }
        }
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations)).or_status();
        }
        let Some(outcome) = outcome else {
            return Err(Error::invalid("outcome", "is required")).or_status();
        };
        let (review, project) = gates::decide(
            self.store.db(),
            org,
            review_id,
            outcome,
            &rationale,
            &conditions,
            &requester(&caller),
        )
        .await
        .or_status()?;
        tracing::info!(organisation_id = %org, %review_id, outcome = outcome.as_str(), phase = project.phase.as_str(), status = project.status.as_str(), "gate decided");
        crate::metrics::gate_decided(request.extensions(), outcome);
        Ok(Response::new(pb::DecideGateResponse {
            review: Some(review_to_proto(review)),
            project: Some(project_to_proto(project)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_gate_conditions(
        &self,
        request: Request<pb::ListGateConditionsRequest>,
    ) -> Result<Response<pb::ListGateConditionsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let project_id = conv::id("project_id", &req.project_id).or_status()?;
        let membership = member(
            authorise(&self.store, &caller, Action::ListGateConditions, org)
                .await
                .or_status()?,
        )
        .or_status()?;
        visible_project(&self.store, &membership, org, project_id)
            .await
            .or_status()?;
        let rows = gates::conditions(self.store.db(), org, project_id, req.open_only)
            .await
            .or_status()?;
        Ok(Response::new(pb::ListGateConditionsResponse {
            conditions: rows.into_iter().map(condition_to_proto).collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn close_gate_condition(
        &self,
        request: Request<pb::CloseGateConditionRequest>,
    ) -> Result<Response<pb::CloseGateConditionResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let id = conv::id("id", &req.id).or_status()?;
        let note = text("note", &req.note, true).or_status()?;
        let closed = gates::close_condition(self.store.db(), org, id, &note, &requester(&caller))
            .await
            .or_status()?;
        Ok(Response::new(pb::CloseGateConditionResponse {
            condition: Some(condition_to_proto(closed)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_gate_policies(
        &self,
        request: Request<pb::ListGatePoliciesRequest>,
    ) -> Result<Response<pb::ListGatePoliciesResponse>, Status> {
        let caller = caller(&request)?;
        let org = conv::id("organisation_id", &request.get_ref().organisation_id).or_status()?;
        authorise(&self.store, &caller, Action::ListGatePolicies, org)
            .await
            .or_status()?;
        let policies = gates::policies(self.store.db(), org).await.or_status()?;
        Ok(Response::new(pb::ListGatePoliciesResponse {
            policies: policies
                .into_iter()
                .map(|(phase, list)| policy_to_proto(phase, &list))
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn set_gate_policy(
        &self,
        request: Request<pb::SetGatePolicyRequest>,
    ) -> Result<Response<pb::SetGatePolicyResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let policy = conv::required("policy", req.policy.as_ref()).or_status()?;
        let mut violations = Vec::new();
        let phase = match phase_in(policy.from_phase) {
            Ok(Some(p)) => Some(p),
            Ok(None) => {
                violations.push(FieldViolation::new("policy.from_phase", "is required"));
                None
            }
            Err(d) => {
                violations.push(FieldViolation::new("policy.from_phase", d));
                None
            }
        };
        let mut signatories = Vec::new();
        for (i, s) in policy.signatories.iter().enumerate() {
            let function = s.function.trim();
            let function_ok = (2..=64).contains(&function.len())
                && function
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                && function != jalon_core::gate::SPONSOR;
            if !function_ok {
                violations.push(FieldViolation::new(
                    format!("policy.signatories[{i}].function"),
                    "must be 2 to 64 characters of A-Z, 0-9 and _ (SPONSOR is reserved)",
                ));
            }
            if signatories
                .iter()
                .any(|x: &PolicySignatory| x.function == function)
            {
                violations.push(FieldViolation::new(
                    format!("policy.signatories[{i}].function"),
                    "appears twice",
                ));
            }
            match jalon_core::values::parse_id(&s.person_id) {
                Ok(person_id) => signatories.push(PolicySignatory {
                    function: function.to_owned(),
                    person_id,
                    only_when_personal_data: s.only_when_personal_data,
                }),
                Err(d) => violations.push(FieldViolation::new(
                    format!("policy.signatories[{i}].person_id"),
                    d,
                )),
            }
        }
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations)).or_status();
        }
        let Some(phase) = phase else {
            return Err(Error::invalid("policy.from_phase", "is required")).or_status();
        };
        let stored = gates::set_policy(
            self.store.db(),
            org,
            phase,
            &signatories,
            &requester(&caller),
        )
        .await
        .or_status()?;
        Ok(Response::new(pb::SetGatePolicyResponse {
            policy: Some(policy_to_proto(phase, &stored)),
        }))
    }
}

fn policy_to_proto(phase: Phase, list: &[PolicySignatory]) -> pb::GatePolicy {
    pb::GatePolicy {
        from_phase: phase_out(Some(phase)),
        signatories: list
            .iter()
            .map(|s| pb::GatePolicySignatory {
                function: s.function.clone(),
                person_id: s.person_id.to_string(),
                only_when_personal_data: s.only_when_personal_data,
            })
            .collect(),
    }
}
