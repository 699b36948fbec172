//! `jalon.v1.AssessmentService`.

use jalon_core::{
    Error, Result,
    assessment::{
        self as domain, AnswerStatus, Concern, Question, QuestionKind, RiskLevel, readiness,
    },
    authz::Action,
    values::{free_text, parse_link},
};
use jalon_proto::v1::{self as pb, assessment_service_server::AssessmentService};
use jalon_store::{
    Store,
    assessments::{self, Answer, ItemRow, NewQuestion},
};
use tonic::{Request, Response, Status};

use super::{
    authorise, caller, conversions as conv, member,
    projects::{phase_in, phase_out},
    requester, visible_project,
};
use crate::error::OrStatus;

wire_enum!(pub(crate) concern_in, concern_out, pb::Concern, Concern, "CONCERN_");
wire_enum!(
    kind_in,
    kind_out,
    pb::QuestionKind,
    QuestionKind,
    "QUESTION_KIND_"
);
wire_enum!(
    status_in,
    status_out,
    pb::AnswerStatus,
    AnswerStatus,
    "ANSWER_STATUS_"
);
wire_enum!(risk_in, risk_out, pb::RiskLevel, RiskLevel, "RISK_LEVEL_");

/// The handlers of `AssessmentService`.
#[derive(Clone)]
pub struct AssessmentApi {
    pub store: Store,
}

fn question_to_proto(q: Question) -> pb::Question {
    pb::Question {
        key: q.key,
        phase: phase_out(Some(q.phase)),
        concern: concern_out(Some(q.concern)),
        kind: kind_out(Some(q.kind)),
        weight: i32::try_from(q.weight).unwrap_or(1),
        text: q.text,
        default: q.default,
        retired: q.retired,
    }
}

fn item_to_proto(r: ItemRow) -> pb::AssessmentItem {
    pb::AssessmentItem {
        project_id: r.project_id.to_string(),
        phase: phase_out(r.phase.parse().ok()),
        concern: concern_out(r.concern.parse().ok()),
        kind: kind_out(r.kind.parse().ok()),
        weight: r.weight,
        text: r.text,
        status: status_out(r.status.parse().ok()),
        risk: risk_out(r.risk.as_deref().and_then(|r| r.parse().ok())),
        note: r.note,
        evidence_uri: r.evidence_uri,
        justification: r.justification,
        answered_by: r.answered_by.map(|p| p.to_string()).unwrap_or_default(),
        answer_time: r.answer_time.map(conv::timestamp),
        bank_version: r.bank_version,
        etag: jalon_core::organisation::etag(r.version),
        key: r.key,
    }
}

fn readiness_to_proto(concern: Option<Concern>, r: &domain::Readiness) -> pb::Readiness {
    pb::Readiness {
        concern: concern_out(concern),
        done_weight: i32::try_from(r.done_weight).unwrap_or(i32::MAX),
        applicable_weight: i32::try_from(r.applicable_weight).unwrap_or(i32::MAX),
        percent: i32::try_from(r.percent()).unwrap_or(100),
        must_open: r.must_open.clone(),
    }
}

#[tonic::async_trait]
impl AssessmentService for AssessmentApi {
    #[tracing::instrument(skip_all)]
    async fn list_questions(
        &self,
        request: Request<pb::ListQuestionsRequest>,
    ) -> Result<Response<pb::ListQuestionsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let phase = phase_in(req.phase)
            .map_err(|d| Error::invalid("phase", d))
            .or_status()?;
        let concern = concern_in(req.concern)
            .map_err(|d| Error::invalid("concern", d))
            .or_status()?;
        authorise(&self.store, &caller, Action::ListQuestions, org)
            .await
            .or_status()?;
        let (version, questions) = assessments::bank(self.store.db(), org, req.include_retired)
            .await
            .or_status()?;
        Ok(Response::new(pb::ListQuestionsResponse {
            questions: questions
                .into_iter()
                .filter(|q| {
                    phase.is_none_or(|p| q.phase == p) && concern.is_none_or(|c| q.concern == c)
                })
                .map(question_to_proto)
                .collect(),
            version,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn create_question(
        &self,
        request: Request<pb::CreateQuestionRequest>,
    ) -> Result<Response<pb::CreateQuestionResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let q = conv::required("question", req.question.as_ref()).or_status()?;
        let mut v = jalon_core::error::Violations::new();
        let key = v.check("question.key", domain::parse_custom_key(&q.key));
        let phase = v.check(
            "question.phase",
            phase_in(q.phase).and_then(|p| p.ok_or_else(|| "is required".to_owned())),
        );
        let concern = v.check(
            "question.concern",
            concern_in(q.concern).and_then(|c| c.ok_or_else(|| "is required".to_owned())),
        );
        let kind = v.check(
            "question.kind",
            kind_in(q.kind).and_then(|k| k.ok_or_else(|| "is required".to_owned())),
        );
        let weight = v.check(
            "question.weight",
            match q.weight {
                0 => Ok(1),
                w @ 1..=10 => Ok(u32::try_from(w).unwrap_or(1)),
                _ => Err("must be between 1 and 10".to_owned()),
            },
        );
        let text = v.check(
            "question.text",
            free_text(&q.text, 1000).and_then(|t| {
                if t.is_empty() {
                    Err("is required".to_owned())
                } else {
                    Ok(t)
                }
            }),
        );
        v.finish().or_status()?;
        let (Some(key), Some(phase), Some(concern), Some(kind), Some(weight), Some(text)) =
            (key, phase, concern, kind, weight, text)
        else {
            return Err(Error::invalid("question", "is invalid")).or_status();
        };
        let weight = if kind == QuestionKind::Must {
            1
        } else {
            weight
        };
        let new = NewQuestion {
            key,
            phase,
            concern,
            kind,
            weight,
            text,
        };
        let (question, version) =
            assessments::create_question(self.store.db(), org, &new, &requester(&caller))
                .await
                .or_status()?;
        Ok(Response::new(pb::CreateQuestionResponse {
            question: Some(question_to_proto(question)),
            version,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn retire_question(
        &self,
        request: Request<pb::RetireQuestionRequest>,
    ) -> Result<Response<pb::RetireQuestionResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        if req.key.is_empty() {
            return Err(Error::invalid("key", "is required")).or_status();
        }
        let (question, version) =
            assessments::retire_question(self.store.db(), org, &req.key, &requester(&caller))
                .await
                .or_status()?;
        Ok(Response::new(pb::RetireQuestionResponse {
            question: Some(question_to_proto(question)),
            version,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_assessment_items(
        &self,
        request: Request<pb::ListAssessmentItemsRequest>,
    ) -> Result<Response<pb::ListAssessmentItemsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let project_id = conv::id("project_id", &req.project_id).or_status()?;
        let phase = phase_in(req.phase)
            .map_err(|d| Error::invalid("phase", d))
            .or_status()?;
        let concern = concern_in(req.concern)
            .map_err(|d| Error::invalid("concern", d))
            .or_status()?;
        let membership = member(
            authorise(&self.store, &caller, Action::ListAssessmentItems, org)
                .await
                .or_status()?,
        )
        .or_status()?;
        visible_project(&self.store, &membership, org, project_id)
            .await
            .or_status()?;
        let rows = assessments::items(self.store.db(), project_id, phase, concern)
            .await
            .or_status()?;
        Ok(Response::new(pb::ListAssessmentItemsResponse {
            items: rows.into_iter().map(item_to_proto).collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn answer_assessment_item(
        &self,
        request: Request<pb::AnswerAssessmentItemRequest>,
    ) -> Result<Response<pb::AnswerAssessmentItemResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let project_id = conv::id("project_id", &req.project_id).or_status()?;
        let mut v = jalon_core::error::Violations::new();
        if req.key.is_empty() {
            v.push("key", "is required");
        }
        let status = v.check(
            "status",
            status_in(req.status).and_then(|s| s.ok_or_else(|| "is required".to_owned())),
        );
        let risk = v.check("risk", risk_in(req.risk));
        let note = v.check("note", free_text(&req.note, 10_000));
        let evidence_uri = v.check("evidence_uri", parse_link(&req.evidence_uri));
        let justification = v.check("justification", free_text(&req.justification, 10_000));
        if let (Some(status), Some(justification)) = (status, justification.as_ref()) {
            v.check("justification", domain::check_answer(status, justification));
        }
        v.finish().or_status()?;
        let (Some(status), Some(risk), Some(note), Some(evidence_uri), Some(justification)) =
            (status, risk, note, evidence_uri, justification)
        else {
            return Err(Error::invalid("status", "is invalid")).or_status();
        };
        // The membership is read, and the policy applied, inside the change.
        let answer = Answer {
            status,
            risk,
            note,
            evidence_uri,
            justification,
        };
        let row = assessments::answer(
            self.store.db(),
            org,
            project_id,
            &req.key,
            &answer,
            &req.etag,
            &requester(&caller),
        )
        .await
        .or_status()?;
        crate::metrics::assessment_answered(request.extensions(), answer.status);
        Ok(Response::new(pb::AnswerAssessmentItemResponse {
            item: Some(item_to_proto(row)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_readiness(
        &self,
        request: Request<pb::GetReadinessRequest>,
    ) -> Result<Response<pb::GetReadinessResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let project_id = conv::id("project_id", &req.project_id).or_status()?;
        let phase = phase_in(req.phase)
            .map_err(|d| Error::invalid("phase", d))
            .or_status()?;
        let membership = member(
            authorise(&self.store, &caller, Action::GetReadiness, org)
                .await
                .or_status()?,
        )
        .or_status()?;
        let project = visible_project(&self.store, &membership, org, project_id)
            .await
            .or_status()?;
        let phase = phase.unwrap_or(project.phase);
        let rows = assessments::items(self.store.db(), project_id, Some(phase), None)
            .await
            .or_status()?;
        let items = assessments::domain_items(&rows).or_status()?;
        let overall = readiness(&items);
        let concerns = Concern::ALL
            .iter()
            .map(|c| {
                readiness_to_proto(
                    Some(*c),
                    &readiness(items.iter().filter(|i| i.concern == *c)),
                )
            })
            .collect();
        Ok(Response::new(pb::GetReadinessResponse {
            phase: phase_out(Some(phase)),
            overall: Some(readiness_to_proto(None, &overall)),
            concerns,
        }))
    }
}
