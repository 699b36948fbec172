//! `jalon.v1.ProjectService`.

use chrono::NaiveDate;
use jalon_core::{
    Error, FieldViolation, Result,
    authz::Action,
    gate::LifecycleAction,
    project::{
        self as domain, AiActTier, AlgorithmApproach, DataKind, Execution, Hosting, Phase, Project,
        ProjectDetails, ResultType, Status, Usage, check_consistency,
    },
    values::{
        CurrencyCode, DEFAULT_PAGE_SIZE, DisplayName, MAX_PAGE_SIZE, Money, ShortText, parse_id,
        parse_page_size,
    },
};
use jalon_proto::v1::{self as pb, project_service_server::ProjectService};
use jalon_store::{
    Store,
    handover::{self, HandOver, Responsibilities},
    page,
    projects::{self, ProjectFilter},
};
use tonic::{Request, Response, Status as GrpcStatus};
use uuid::Uuid;

use super::{authorise, caller, check_standing, conversions as conv, member, requester, visible};
use crate::error::OrStatus;

/// The handlers of `ProjectService`.
#[derive(Clone)]
pub struct ProjectApi {
    pub store: Store,
}

wire_enum!(pub(crate) phase_in, phase_out, pb::Phase, Phase, "PHASE_");
wire_enum!(
    pub(crate) status_in,
    status_out,
    pb::ProjectStatus,
    Status,
    "PROJECT_STATUS_"
);
wire_enum!(pub(crate) usage_in, usage_out, pb::Usage, Usage, "USAGE_");
wire_enum!(
    result_in,
    result_out,
    pb::ResultType,
    ResultType,
    "RESULT_TYPE_"
);
wire_enum!(
    data_kind_in,
    data_kind_out,
    pb::DataKind,
    DataKind,
    "DATA_KIND_"
);
wire_enum!(
    approach_in,
    approach_out,
    pb::AlgorithmApproach,
    AlgorithmApproach,
    "ALGORITHM_APPROACH_"
);
wire_enum!(
    execution_in,
    execution_out,
    pb::Execution,
    Execution,
    "EXECUTION_"
);
wire_enum!(pub(crate) hosting_in, hosting_out, pb::Hosting, Hosting, "HOSTING_");
wire_enum!(pub(crate) tier_in, tier_out, pb::AiActTier, AiActTier, "AI_ACT_TIER_");

pub(crate) fn date_in(d: Option<&pb::Date>) -> Result<Option<NaiveDate>, String> {
    match d {
        None => Ok(None),
        Some(d) => u32::try_from(d.month)
            .ok()
            .zip(u32::try_from(d.day).ok())
            .and_then(|(m, day)| NaiveDate::from_ymd_opt(d.year, m, day))
            .filter(|date| (1..=9999).contains(&chrono::Datelike::year(date)))
            .map(Some)
            .ok_or_else(|| format!("{}-{}-{} is not a valid date", d.year, d.month, d.day)),
    }
}

pub(crate) fn date_out(d: Option<NaiveDate>) -> Option<pb::Date> {
    d.map(|d| pb::Date {
        year: chrono::Datelike::year(&d),
        month: i32::try_from(chrono::Datelike::month(&d)).unwrap_or(1),
        day: i32::try_from(chrono::Datelike::day(&d)).unwrap_or(1),
    })
}

pub(crate) fn optional_person(raw: &str) -> Result<Option<Uuid>, String> {
    if raw.is_empty() {
        Ok(None)
    } else {
        parse_id(raw).map(Some)
    }
}

fn money_in(m: Option<&pb::Money>, currency: CurrencyCode) -> Result<Option<Money>, String> {
    let Some(m) = m else { return Ok(None) };
    if m.currency_code != currency.as_str() {
        return Err(format!(
            "must be in the organisation's currency {currency}, not '{}' (no conversion is made)",
            m.currency_code
        ));
    }
    Money::parse(&m.amount, currency).map(Some)
}

/// Sets `path` of `d` from the request's project, or says what is wrong.
fn set_field(
    d: &mut ProjectDetails,
    path: &str,
    p: &pb::Project,
    currency: CurrencyCode,
) -> Result<(), String> {
    match path {
        "name" => d.name = DisplayName::parse(&p.name)?,
        "description" => d.description = domain::parse_long_text(&p.description)?,
        "business_unit" => d.business_unit = ShortText::parse(&p.business_unit)?,
        "tags" => d.tags = domain::parse_tags(&p.tags)?,
        "objective" => d.objective = domain::parse_long_text(&p.objective)?,
        "gain_quantified" => d.gain_quantified = p.gain_quantified,
        "expected_gain" => d.expected_gain = money_in(p.expected_gain.as_ref(), currency)?,
        "usage" => d.usage = usage_in(p.usage)?,
        "result_type" => d.result_type = result_in(p.result_type)?,
        "data_kinds" => {
            let mut kinds = Vec::new();
            for raw in &p.data_kinds {
                match data_kind_in(*raw)? {
                    Some(kind) if !kinds.contains(&kind) => kinds.push(kind),
                    Some(_) => {}
                    None => return Err("DATA_KIND_UNSPECIFIED is not a data kind".into()),
                }
            }
            kinds.sort();
            d.data_kinds = kinds;
        }
        "algorithm_approach" => d.algorithm_approach = approach_in(p.algorithm_approach)?,
        "execution" => d.execution = execution_in(p.execution)?,
        "hosting" => d.hosting = hosting_in(p.hosting)?,
        "personal_data" => d.personal_data = p.personal_data,
        "ai_act_tier" => d.ai_act_tier = tier_in(p.ai_act_tier)?.unwrap_or(AiActTier::Unassessed),
        "ai_act_reason" => d.ai_act_reason = domain::parse_long_text(&p.ai_act_reason)?,
        "sponsor_id" => d.sponsor_id = optional_person(&p.sponsor_id)?,
        "lead_id" => d.lead_id = optional_person(&p.lead_id)?,
        "planned_start_date" => d.planned_start = date_in(p.planned_start_date.as_ref())?,
        "planned_end_date" => d.planned_end = date_in(p.planned_end_date.as_ref())?,
        other => return Err(format!("'{other}' cannot be set")),
    }
    Ok(())
}

/// Applies the named paths, then the rules that tie fields together; every
/// violation is reported at once.
fn apply(
    mut d: ProjectDetails,
    paths: &[&str],
    p: &pb::Project,
    currency: CurrencyCode,
) -> Result<ProjectDetails> {
    let mut violations = Vec::new();
    for path in paths {
        if let Err(description) = set_field(&mut d, path, p, currency) {
            violations.push(FieldViolation::new(format!("project.{path}"), description));
        }
    }
    if violations.is_empty() {
        for (field, description) in check_consistency(&d) {
            violations.push(FieldViolation::new(format!("project.{field}"), description));
        }
    }
    if violations.is_empty() {
        Ok(d)
    } else {
        Err(Error::InvalidArgument(violations))
    }
}

fn blank_details() -> ProjectDetails {
    ProjectDetails {
        name: DisplayName::parse("-").unwrap_or_else(|_| unreachable!("a valid name")),
        description: String::new(),
        business_unit: ShortText::parse("").unwrap_or_else(|_| unreachable!("empty is valid")),
        tags: Vec::new(),
        objective: String::new(),
        gain_quantified: false,
        expected_gain: None,
        usage: None,
        result_type: None,
        data_kinds: Vec::new(),
        algorithm_approach: None,
        execution: None,
        hosting: None,
        personal_data: false,
        ai_act_tier: AiActTier::Unassessed,
        ai_act_reason: String::new(),
        sponsor_id: None,
        lead_id: None,
        planned_start: None,
        planned_end: None,
    }
}

pub fn project_to_proto(p: Project) -> pb::Project {
    let d = p.details;
    pb::Project {
        id: p.id.to_string(),
        organisation_id: p.organisation_id.to_string(),
        name: d.name.as_str().to_owned(),
        description: d.description,
        business_unit: d.business_unit.as_str().to_owned(),
        tags: d.tags,
        objective: d.objective,
        gain_quantified: d.gain_quantified,
        expected_gain: d.expected_gain.map(conv::money_out),
        usage: usage_out(d.usage),
        result_type: result_out(d.result_type),
        data_kinds: d
            .data_kinds
            .into_iter()
            .map(|k| data_kind_out(Some(k)))
            .collect(),
        algorithm_approach: approach_out(d.algorithm_approach),
        execution: execution_out(d.execution),
        hosting: hosting_out(d.hosting),
        personal_data: d.personal_data,
        ai_act_tier: tier_out(Some(d.ai_act_tier)),
        ai_act_reason: d.ai_act_reason,
        sponsor_id: d.sponsor_id.map(|id| id.to_string()).unwrap_or_default(),
        lead_id: d.lead_id.map(|id| id.to_string()).unwrap_or_default(),
        phase: phase_out(Some(p.phase)),
        status: status_out(Some(p.status)),
        phase_history: p
            .phase_history
            .into_iter()
            .map(|s| pb::PhaseSpan {
                phase: phase_out(Some(s.phase)),
                enter_time: Some(conv::timestamp(s.enter_time)),
                leave_time: s.leave_time.map(conv::timestamp),
            })
            .collect(),
        planned_start_date: date_out(d.planned_start),
        planned_end_date: date_out(d.planned_end),
        create_time: Some(conv::timestamp(p.create_time)),
        update_time: Some(conv::timestamp(p.update_time)),
        etag: jalon_core::organisation::etag(p.version),
        underperforming: p.underperforming,
    }
}

#[tonic::async_trait]
impl ProjectService for ProjectApi {
    #[tracing::instrument(skip_all)]
    async fn create_project(
        &self,
        request: Request<pb::CreateProjectRequest>,
    ) -> Result<Response<pb::CreateProjectResponse>, GrpcStatus> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let wire = conv::required("project", req.project.as_ref()).or_status()?;
        let key = conv::idempotency_key(
            format!("projects:{org}"),
            &req.request_id,
            &pb::CreateProjectRequest {
                request_id: String::new(),
                ..req.clone()
            },
        )
        .or_status()?;
        let created = projects::create(
            self.store.db(),
            org,
            &requester(&caller),
            key.as_ref(),
            |currency| apply(blank_details(), domain::UPDATABLE_FIELDS, wire, currency),
        )
        .await
        .or_status()?;
        tracing::info!(organisation_id = %org, project_id = %created.id, "project created");
        Ok(Response::new(pb::CreateProjectResponse {
            project: Some(project_to_proto(created)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_project(
        &self,
        request: Request<pb::GetProjectRequest>,
    ) -> Result<Response<pb::GetProjectResponse>, GrpcStatus> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let id = conv::id("id", &req.id).or_status()?;
        // One statement reads the membership and the project together; the
        // rule applied is `authorise`'s, then the MEMBER visibility.
        let read = projects::get_as_member(self.store.readers(), org, &caller.subject, id)
            .await
            .or_status()?;
        check_standing(&caller, Action::GetProject, read.membership.as_ref()).or_status()?;
        let membership = member(read.membership).or_status()?;
        let project = read
            .project
            .ok_or(Error::NotFound {
                resource: "project",
            })
            .or_status()?;
        if !visible(&membership, &project) {
            return Err(Error::NotFound {
                resource: "project",
            })
            .or_status();
        }
        Ok(Response::new(pb::GetProjectResponse {
            project: Some(project_to_proto(project)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_projects(
        &self,
        request: Request<pb::ListProjectsRequest>,
    ) -> Result<Response<pb::ListProjectsResponse>, GrpcStatus> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let mut v = jalon_core::error::Violations::new();
        let size = v.check(
            "page_size",
            parse_page_size(req.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE),
        );
        let phase = v.check("phase", phase_in(req.phase)).flatten();
        let status = v.check("status", status_in(req.status)).flatten();
        let ai_act_tier = v.check("ai_act_tier", tier_in(req.ai_act_tier)).flatten();
        let sponsor_id = v
            .check("sponsor_id", optional_person(&req.sponsor_id))
            .flatten();
        let lead_id = v.check("lead_id", optional_person(&req.lead_id)).flatten();
        let tag = if req.tag.is_empty() {
            None
        } else {
            v.check("tag", domain::parse_tag(&req.tag))
        };
        let business_unit = v
            .check(
                "business_unit",
                jalon_core::values::free_text(&req.business_unit, ShortText::MAX_CHARS),
            )
            .filter(|b| !b.is_empty());
        v.finish().or_status()?;
        let membership = member(
            authorise(&self.store, &caller, Action::ListProjects, org)
                .await
                .or_status()?,
        )
        .or_status()?;
        let filter = ProjectFilter {
            phase,
            status,
            sponsor_id,
            lead_id,
            business_unit,
            tag,
            ai_act_tier,
            visibility: jalon_core::authz::visibility(&membership.member()),
        };
        let after = page::decode(&req.page_token, &filter.key(), "page_token").or_status()?;
        let snapshot = self.store.snapshot().await.or_status()?;
        let (event_position, _) = jalon_store::events::head(&snapshot, org)
            .await
            .or_status()?;
        let page = projects::list(
            &snapshot,
            org,
            &filter,
            size.unwrap_or(DEFAULT_PAGE_SIZE),
            after,
        )
        .await
        .or_status()?;
        Ok(Response::new(pb::ListProjectsResponse {
            projects: page.items.into_iter().map(project_to_proto).collect(),
            next_page_token: page.next_page_token,
            event_position,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_project(
        &self,
        request: Request<pb::UpdateProjectRequest>,
    ) -> Result<Response<pb::UpdateProjectResponse>, GrpcStatus> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let wire = conv::required("project", req.project.as_ref()).or_status()?;
        let id = conv::id("project.id", &wire.id).or_status()?;
        if let Some(mask) = &req.update_mask
            && let Some(path) = mask
                .paths
                .iter()
                .find(|p| domain::LIFECYCLE_FIELDS.contains(&p.as_str()))
        {
            return Err(Error::invalid(
                "update_mask",
                format!("'{path}' changes only through gate decisions and lifecycle actions"),
            ))
            .or_status();
        }
        let paths =
            conv::mask_paths(req.update_mask.as_ref(), domain::UPDATABLE_FIELDS).or_status()?;
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        let updated = projects::update(
            self.store.db(),
            org,
            id,
            &wire.etag,
            &requester(&caller),
            |current, currency| apply(current.details.clone(), &paths, wire, currency),
        )
        .await
        .or_status()?;
        Ok(Response::new(pb::UpdateProjectResponse {
            project: Some(project_to_proto(updated)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn resume_project(
        &self,
        request: Request<pb::ResumeProjectRequest>,
    ) -> Result<Response<pb::ResumeProjectResponse>, GrpcStatus> {
        let project = self.lifecycle(request, LifecycleAction::Resume).await?;
        Ok(Response::new(pb::ResumeProjectResponse {
            project: Some(project),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn retire_project(
        &self,
        request: Request<pb::RetireProjectRequest>,
    ) -> Result<Response<pb::RetireProjectResponse>, GrpcStatus> {
        let request = request.map(|r| pb::ResumeProjectRequest {
            organisation_id: r.organisation_id,
            id: r.id,
            reason: r.reason,
        });
        let project = self.lifecycle(request, LifecycleAction::Retire).await?;
        Ok(Response::new(pb::RetireProjectResponse {
            project: Some(project),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn hand_over_projects(
        &self,
        request: Request<pb::HandOverProjectsRequest>,
    ) -> Result<Response<pb::HandOverProjectsResponse>, GrpcStatus> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let hand_over = hand_over_in(&req).or_status()?;
        let done = handover::hand_over(self.store.db(), org, &requester(&caller), &hand_over)
            .await
            .or_status()?;
        tracing::info!(
            organisation_id = %org,
            from = %hand_over.from,
            to = %hand_over.to,
            projects = done.projects.len(),
            reviews = done.reviews.len(),
            "projects handed over"
        );
        Ok(Response::new(pb::HandOverProjectsResponse {
            projects: done.projects.into_iter().map(project_to_proto).collect(),
            reassigned_review_ids: done.reviews.iter().map(Uuid::to_string).collect(),
        }))
    }
}

/// A hand-over request, validated: every bad field named at once.
fn hand_over_in(req: &pb::HandOverProjectsRequest) -> Result<HandOver> {
    let mut v = jalon_core::error::Violations::new();
    let from = v.check("from_person_id", parse_id(&req.from_person_id));
    let to = v.check("to_person_id", parse_id(&req.to_person_id));
    let mut what = Responsibilities {
        sponsor: req.responsibilities.is_empty(),
        lead: req.responsibilities.is_empty(),
    };
    for (i, raw) in req.responsibilities.iter().enumerate() {
        match pb::Responsibility::try_from(*raw) {
            Ok(pb::Responsibility::Sponsor) => what.sponsor = true,
            Ok(pb::Responsibility::Lead) => what.lead = true,
            _ => v.push(
                format!("responsibilities[{i}]"),
                "must be RESPONSIBILITY_SPONSOR or RESPONSIBILITY_LEAD",
            ),
        }
    }
    let projects: Vec<Uuid> = req
        .project_ids
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| v.check(&format!("project_ids[{i}]"), parse_id(raw)))
        .collect();
    v.finish()?;
    match (from, to) {
        (Some(from), Some(to)) => Ok(HandOver {
            from,
            to,
            what,
            projects,
        }),
        _ => Err(Error::Internal("violations were checked".into())),
    }
}

impl ProjectApi {
    /// Resume and retire: a DIRECTOR or the project's sponsor, with a reason.
    async fn lifecycle(
        &self,
        request: Request<pb::ResumeProjectRequest>,
        action: LifecycleAction,
    ) -> Result<pb::Project, GrpcStatus> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let id = conv::id("id", &req.id).or_status()?;
        if req.reason.trim().is_empty() {
            return Err(Error::invalid("reason", "is required")).or_status();
        }
        let moved = projects::lifecycle(
            self.store.db(),
            org,
            id,
            action,
            req.reason.trim(),
            &requester(&caller),
        )
        .await
        .or_status()?;
        tracing::info!(organisation_id = %org, project_id = %id, ?action, "project lifecycle action");
        Ok(project_to_proto(moved))
    }
}
