//! AI projects, with their tags and phase history.

use std::sync::LazyLock;

use chrono::Utc;
use jalon_core::{
    Error, Result,
    authz::{Action, Parties},
    organisation::etag_matches,
    project::{AiActTier, DataKind, Phase, PhaseSpan, Project, ProjectDetails, Status},
    values::CurrencyCode,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, sea_query::Query,
};
use uuid::Uuid;

pub use crate::rows::projects::get;
use crate::rows::projects::{from_model, hydrate};
use crate::{
    access::lock_organisation,
    assessments,
    audit::NewEvent,
    begin_write,
    change::{Caller, Change},
    commit,
    entity::{project, project_phase, project_tag},
    error::db_error,
    idempotency::{Claim, IdempotencyKey, claim},
    page::{Page, paginate},
    readers::columns as readers_columns,
    retry_idempotent_race,
};

/// The columns a client sets, from validated details.
fn write_details(model: &mut project::ActiveModel, d: &ProjectDetails) {
    model.name = Set(d.name.as_str().to_owned());
    model.description = Set(d.description.clone());
    model.business_unit = Set(d.business_unit.as_str().to_owned());
    model.objective = Set(d.objective.clone());
    model.gain_quantified = Set(d.gain_quantified);
    model.expected_gain_minor = Set(d.expected_gain.map(|m| m.minor_units()));
    model.expected_gain_currency = Set(d.expected_gain.map(|m| m.currency().as_str().to_owned()));
    model.usage = Set(d.usage.map(|v| v.as_str().to_owned()));
    model.result_type = Set(d.result_type.map(|v| v.as_str().to_owned()));
    model.data_kinds = Set(d
        .data_kinds
        .iter()
        .map(DataKind::as_str)
        .collect::<Vec<_>>()
        .join(","));
    model.algorithm_approach = Set(d.algorithm_approach.map(|v| v.as_str().to_owned()));
    model.execution = Set(d.execution.map(|v| v.as_str().to_owned()));
    model.hosting = Set(d.hosting.map(|v| v.as_str().to_owned()));
    model.personal_data = Set(d.personal_data);
    model.ai_act_tier = Set(d.ai_act_tier.as_str().to_owned());
    model.ai_act_reason = Set(d.ai_act_reason.clone());
    model.sponsor_id = Set(d.sponsor_id);
    model.lead_id = Set(d.lead_id);
    model.planned_start = Set(d.planned_start);
    model.planned_end = Set(d.planned_end);
}

/// The sponsor and the lead must be active people of the organisation.
async fn check_people(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    d: &ProjectDetails,
) -> Result<()> {
    let named = [
        ("project.sponsor_id", d.sponsor_id),
        ("project.lead_id", d.lead_id),
    ];
    let active = crate::access::active_members(
        conn,
        organisation_id,
        named.iter().filter_map(|(_, id)| *id),
    )
    .await?;
    let violations: Vec<_> = named
        .iter()
        .filter_map(|(field, id)| {
            id.filter(|id| !active.contains(id)).map(|_| {
                jalon_core::FieldViolation::new(
                    *field,
                    "is not an active person of this organisation",
                )
            })
        })
        .collect();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidArgument(violations))
    }
}

async fn write_tags(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    project_id: Uuid,
    tags: &[String],
) -> Result<()> {
    project_tag::Entity::delete_many()
        .filter(project_tag::Column::ProjectId.eq(project_id))
        .exec(conn)
        .await
        .map_err(db_error)?;
    if tags.is_empty() {
        return Ok(());
    }
    project_tag::Entity::insert_many(tags.iter().map(|tag| project_tag::ActiveModel {
        project_id: Set(project_id),
        tag: Set(tag.clone()),
        organisation_id: Set(organisation_id),
    }))
    .exec(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// What the audit log keeps of a project.
pub fn audit_view(p: &Project) -> serde_json::Value {
    let d = &p.details;
    serde_json::json!({
        "name": d.name.as_str(),
        "description": d.description,
        "business_unit": d.business_unit.as_str(),
        "tags": d.tags,
        "objective": d.objective,
        "gain_quantified": d.gain_quantified,
        "expected_gain": d.expected_gain.map(|m| format!("{} {}", m, m.currency())),
        "usage": d.usage.map(|v| v.as_str()),
        "result_type": d.result_type.map(|v| v.as_str()),
        "data_kinds": d.data_kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        "algorithm_approach": d.algorithm_approach.map(|v| v.as_str()),
        "execution": d.execution.map(|v| v.as_str()),
        "hosting": d.hosting.map(|v| v.as_str()),
        "personal_data": d.personal_data,
        "ai_act_tier": d.ai_act_tier.as_str(),
        "ai_act_reason": d.ai_act_reason,
        "sponsor_id": d.sponsor_id,
        "lead_id": d.lead_id,
        "planned_start": d.planned_start,
        "planned_end": d.planned_end,
        "phase": p.phase.as_str(),
        "status": p.status.as_str(),
        "underperforming": p.underperforming,
    })
}

/// Creates a project in IDEATION, ACTIVE, with its first phase span and the
/// IDEATION checklist. `draft` makes the details from the request, given
/// the organisation's currency; a MEMBER who names no lead leads it.
#[tracing::instrument(skip(db, draft, key, caller))]
pub async fn create(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    caller: &Caller,
    key: Option<&IdempotencyKey>,
    draft: impl Fn(CurrencyCode) -> Result<ProjectDetails>,
) -> Result<Project> {
    retry_idempotent_race(|| async {
        let mut change = Change::begin(db, organisation_id, caller, Action::CreateProject).await?;
        let id = Uuid::now_v7();
        if let Claim::Replay(existing) = claim(change.conn(), key, id).await? {
            return get(change.conn(), organisation_id, existing).await;
        }
        let mut details = draft(change.currency().await?)?;
        if let Some(member) = change.member() {
            jalon_core::authz::proposer_leads(member, &mut details);
        }
        change.allow(
            &Parties {
                lead: details.lead_id,
                sponsor: details.sponsor_id,
                ..Parties::default()
            },
            "project",
        )?;
        check_people(change.conn(), organisation_id, &details).await?;
        let now = Utc::now();
        let mut model = project::ActiveModel {
            id: Set(id),
            organisation_id: Set(organisation_id),
            underperforming: Set(false),
            phase: Set(Phase::Ideation.as_str().to_owned()),
            status: Set(Status::Active.as_str().to_owned()),
            create_time: Set(now),
            update_time: Set(now),
            version: Set(1),
            ..Default::default()
        };
        write_details(&mut model, &details);
        model.insert(change.conn()).await.map_err(db_error)?;
        write_tags(change.conn(), organisation_id, id, &details.tags).await?;
        project_phase::ActiveModel {
            project_id: Set(id),
            seq: Set(0),
            phase: Set(Phase::Ideation.as_str().to_owned()),
            enter_time: Set(now),
            leave_time: Set(None),
        }
        .insert(change.conn())
        .await
        .map_err(db_error)?;
        assessments::instantiate(change.conn(), organisation_id, id, Phase::Ideation).await?;
        let created = get(change.conn(), organisation_id, id).await?;
        change.event(NewEvent {
            project_id: Some(id),
            action: "project.created",
            resource_type: "project",
            resource_id: id.to_string(),
            before: None,
            after: audit_view(&created),
            chained: false,
        });
        change.created(created.clone());
        change.commit().await?;
        Ok(created)
    })
    .await
}

/// The caller's membership and a project, read together by
/// [`get_as_member`].
#[derive(Debug, Clone)]
pub struct MemberRead {
    /// The caller's active membership; `None` when they have none, and then
    /// nothing else was read.
    pub membership: Option<crate::access::Membership>,
    /// The project, when it exists in the organisation.
    pub project: Option<Project>,
}

/// `GetProject`'s read in one statement: the caller's active membership
/// (the same rule as [`crate::people::membership`]) and, beside it, the
/// project with its tags and phase history aggregated as JSON. One
/// statement instead of four is what makes the most frequent read of a
/// frontend cheap: each statement is a round trip to the database (a
/// worker thread on SQLite, the network on PostgreSQL).
#[tracing::instrument(skip(readers))]
pub async fn get_as_member(
    readers: &crate::readers::Readers,
    organisation_id: Uuid,
    subject: &str,
    id: Uuid,
) -> Result<MemberRead> {
    use crate::readers::Arg;
    static SQLITE: LazyLock<String> = LazyLock::new(|| {
        GET_AS_MEMBER_SQLITE.replace("{columns}", &readers_columns::<project::Entity>("p"))
    });
    static POSTGRES: LazyLock<String> = LazyLock::new(|| {
        GET_AS_MEMBER_POSTGRES.replace("{columns}", &readers_columns::<project::Entity>("p"))
    });
    let sql: &'static str = if readers.backend() == sea_orm::DbBackend::Postgres {
        &POSTGRES
    } else {
        &SQLITE
    };
    let row = readers
        .fetch_optional(
            sql,
            &[
                Arg::Uuid(id),
                Arg::Uuid(organisation_id),
                Arg::Text(subject),
                Arg::Bool(true),
            ],
        )
        .await?;
    let Some(row) = row else {
        return Ok(MemberRead {
            membership: None,
            project: None,
        });
    };
    let membership = crate::access::caller_membership(&row, "caller_organisation_delete_time")?;
    if membership.is_none() {
        return Ok(MemberRead {
            membership: None,
            project: None,
        });
    }
    let found: Option<Uuid> = row.try_get("", "id").map_err(db_error)?;
    if found.is_none() {
        return Ok(MemberRead {
            membership,
            project: None,
        });
    }
    let model = <project::Model as sea_orm::FromQueryResult>::from_query_result(&row, "")
        .map_err(db_error)?;
    let tags: Option<String> = row.try_get("", "tags_json").map_err(db_error)?;
    let phases: Option<String> = row.try_get("", "phases_json").map_err(db_error)?;
    let tags = parse_tags(tags.as_deref())?;
    let phases = parse_phases(phases.as_deref())?;
    Ok(MemberRead {
        membership,
        project: Some(from_model(model, tags, phases)?),
    })
}

/// The read of [`get_as_member`]: the membership row drives it, so no
/// membership means no row; the project is left-joined.
const GET_AS_MEMBER_SQLITE: &str = "SELECT {columns}, \
    m.id AS caller_person_id, m.role AS caller_role, \
    o.delete_time AS caller_organisation_delete_time, \
    (SELECT json_group_array(t.tag ORDER BY t.tag) FROM project_tags t \
        WHERE t.project_id = p.id) AS tags_json, \
    (SELECT json_group_array(json_array(h.phase, h.enter_time, h.leave_time) ORDER BY h.seq) \
        FROM project_phases h WHERE h.project_id = p.id) AS phases_json \
    FROM people m \
    JOIN organisations o ON o.id = m.organisation_id \
    LEFT JOIN projects p ON p.id = $1 AND p.organisation_id = m.organisation_id \
    WHERE m.organisation_id = $2 AND m.subject = $3 AND m.active = $4 \
    LIMIT 1";

const GET_AS_MEMBER_POSTGRES: &str = "SELECT {columns}, \
    m.id AS caller_person_id, m.role AS caller_role, \
    o.delete_time AS caller_organisation_delete_time, \
    (SELECT json_agg(t.tag ORDER BY t.tag) FROM project_tags t \
        WHERE t.project_id = p.id)::text AS tags_json, \
    (SELECT json_agg(json_build_array(h.phase, h.enter_time, h.leave_time) ORDER BY h.seq) \
        FROM project_phases h WHERE h.project_id = p.id)::text AS phases_json \
    FROM people m \
    JOIN organisations o ON o.id = m.organisation_id \
    LEFT JOIN projects p ON p.id = $1 AND p.organisation_id = m.organisation_id \
    WHERE m.organisation_id = $2 AND m.subject = $3 AND m.active = $4 \
    LIMIT 1";

fn corrupt(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("{what} read back as JSON: {e}"))
}

fn parse_tags(json: Option<&str>) -> Result<Vec<String>> {
    match json {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text).map_err(|e| corrupt("tags", e)),
    }
}

/// Phase spans as `[phase, enter_time, leave_time]` arrays; the times are
/// RFC 3339 on both backends (SQLite stores them so; PostgreSQL's JSON
/// renders `timestamptz` so, in the session's offset).
fn parse_phases(json: Option<&str>) -> Result<Vec<PhaseSpan>> {
    let Some(text) = json else {
        return Ok(Vec::new());
    };
    let rows: Vec<(String, String, Option<String>)> =
        serde_json::from_str(text).map_err(|e| corrupt("phase history", e))?;
    let time = |raw: &str| {
        chrono::DateTime::parse_from_rfc3339(raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| corrupt("phase history", e))
    };
    rows.into_iter()
        .map(|(phase, enter, leave)| {
            Ok(PhaseSpan {
                phase: phase.parse().map_err(|e| corrupt("phase history", e))?,
                enter_time: time(&enter)?,
                leave_time: leave.as_deref().map(time).transpose()?,
            })
        })
        .collect()
}

/// Filters of `ListProjects`; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct ProjectFilter {
    pub phase: Option<Phase>,
    pub status: Option<Status>,
    pub sponsor_id: Option<Uuid>,
    pub lead_id: Option<Uuid>,
    pub business_unit: Option<String>,
    pub tag: Option<String>,
    pub ai_act_tier: Option<AiActTier>,
    /// Only projects this person leads or sponsors (the MEMBER rule).
    /// What the caller may see (a MEMBER: the projects they lead or sponsor).
    pub visibility: jalon_core::authz::Visibility,
}

impl ProjectFilter {
    /// A stable rendering, bound into page tokens.
    pub fn key(&self) -> String {
        format!("{self:?}")
    }
}

/// Lists projects in creation order.
#[tracing::instrument(skip(db))]
pub async fn list(
    db: &impl ConnectionTrait,
    organisation_id: Uuid,
    filter: &ProjectFilter,
    page_size: u32,
    after: Option<Uuid>,
) -> Result<Page<Project>> {
    use project::Column as C;
    let mut query = project::Entity::find().filter(C::OrganisationId.eq(organisation_id));
    if let Some(v) = filter.phase {
        query = query.filter(C::Phase.eq(v.as_str()));
    }
    if let Some(v) = filter.status {
        query = query.filter(C::Status.eq(v.as_str()));
    }
    if let Some(v) = filter.sponsor_id {
        query = query.filter(C::SponsorId.eq(v));
    }
    if let Some(v) = filter.lead_id {
        query = query.filter(C::LeadId.eq(v));
    }
    if let Some(v) = &filter.business_unit {
        query = query.filter(C::BusinessUnit.eq(v.as_str()));
    }
    if let Some(v) = filter.ai_act_tier {
        query = query.filter(C::AiActTier.eq(v.as_str()));
    }
    if let Some(tag) = &filter.tag {
        query = query.filter(
            C::Id.in_subquery(
                Query::select()
                    .column(project_tag::Column::ProjectId)
                    .from(project_tag::Entity)
                    .and_where(project_tag::Column::OrganisationId.eq(organisation_id))
                    .and_where(project_tag::Column::Tag.eq(tag.as_str()))
                    .to_owned(),
            ),
        );
    }
    query = query.filter(crate::access::visibility_condition(
        filter.visibility,
        C::LeadId,
        C::SponsorId,
    ));
    if let Some(after) = after {
        query = query.filter(C::Id.gt(after));
    }
    let rows = query
        .order_by_asc(C::Id)
        .limit(u64::from(page_size) + 1)
        .all(db)
        .await
        .map_err(db_error)?;
    Ok(paginate(
        hydrate(db, rows).await?,
        page_size,
        &filter.key(),
        |p| p.id,
    ))
}

/// Updates a project: `apply` changes the current details (and checks
/// them), given the organisation's currency; compare-and-swap on the
/// version.
#[tracing::instrument(skip(db, apply, caller))]
pub async fn update(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    id: Uuid,
    etag: &str,
    caller: &Caller,
    apply: impl FnOnce(&Project, CurrencyCode) -> Result<ProjectDetails>,
) -> Result<Project> {
    let mut change = Change::begin(db, organisation_id, caller, Action::UpdateProject).await?;
    // Read with its tags (the update compares them), then the policy.
    let current = change.locked_project(id, "project").await?;
    change.allow(&Parties::of(&current), "project")?;
    if !etag_matches(etag, current.version) {
        return Err(Error::stale_etag("project"));
    }
    let details = apply(&current, change.currency().await?)?;
    if details.sponsor_id != current.details.sponsor_id
        || details.lead_id != current.details.lead_id
    {
        check_people(change.conn(), organisation_id, &details).await?;
    }
    let mut model = project::ActiveModel {
        update_time: Set(Utc::now()),
        version: Set(current.version + 1),
        ..Default::default()
    };
    write_details(&mut model, &details);
    let result = project::Entity::update_many()
        .set(model)
        .filter(project::Column::Id.eq(id))
        .filter(project::Column::Version.eq(current.version))
        .exec(change.conn())
        .await
        .map_err(db_error)?;
    if result.rows_affected == 0 {
        return Err(Error::stale_etag("project"));
    }
    if details.tags != current.details.tags {
        write_tags(change.conn(), organisation_id, id, &details.tags).await?;
    }
    let updated = get(change.conn(), organisation_id, id).await?;
    change.event(NewEvent {
        project_id: Some(id),
        action: "project.updated",
        resource_type: "project",
        resource_id: id.to_string(),
        before: Some(audit_view(&current)),
        after: audit_view(&updated),
        chained: false,
    });
    change.rewritten(updated.clone());
    change.commit().await?;
    Ok(updated)
}

/// Gives a locked project (read by the change) a new sponsor and lead,
/// compare-and-swap on its version, and records project.updated; the
/// people are checked by the caller. Returns the project as written.
pub(crate) async fn reassign(
    change: &mut Change,
    current: &Project,
    sponsor_id: Option<Uuid>,
    lead_id: Option<Uuid>,
) -> Result<Project> {
    let organisation_id = change.organisation_id();
    let result = project::Entity::update_many()
        .set(project::ActiveModel {
            sponsor_id: Set(sponsor_id),
            lead_id: Set(lead_id),
            update_time: Set(Utc::now()),
            version: Set(current.version + 1),
            ..Default::default()
        })
        .filter(project::Column::Id.eq(current.id))
        .filter(project::Column::Version.eq(current.version))
        .exec(change.conn())
        .await
        .map_err(db_error)?;
    if result.rows_affected == 0 {
        return Err(Error::stale_etag("project"));
    }
    let updated = get(change.conn(), organisation_id, current.id).await?;
    // Only the sponsor and the lead changed (the cached project carries no
    // tags: the view before is the one after with the old people).
    let mut before_view = audit_view(&updated);
    before_view["sponsor_id"] = serde_json::json!(current.details.sponsor_id);
    before_view["lead_id"] = serde_json::json!(current.details.lead_id);
    change.event(NewEvent {
        project_id: Some(current.id),
        action: "project.updated",
        resource_type: "project",
        resource_id: current.id.to_string(),
        before: Some(before_view),
        after: audit_view(&updated),
        chained: false,
    });
    change.rewritten(updated.clone());
    Ok(updated)
}

/// Moves a project's phase and status (a gate decision or a lifecycle
/// action), inside the caller's transaction: closes the current phase span
/// and opens the next one when the phase changes, and instantiates the new
/// phase's checklist.
pub(crate) async fn move_project(
    conn: &impl ConnectionTrait,
    project: &Project,
    phase: Phase,
    status: Status,
) -> Result<()> {
    let now = Utc::now();
    let model = project::ActiveModel {
        phase: Set(phase.as_str().to_owned()),
        status: Set(status.as_str().to_owned()),
        update_time: Set(now),
        version: Set(project.version + 1),
        ..Default::default()
    };
    let result = project::Entity::update_many()
        .set(model)
        .filter(project::Column::Id.eq(project.id))
        .filter(project::Column::Version.eq(project.version))
        .exec(conn)
        .await
        .map_err(db_error)?;
    if result.rows_affected == 0 {
        return Err(Error::stale_etag("project"));
    }
    if phase != project.phase {
        let seq = i32::try_from(project.phase_history.len()).unwrap_or(i32::MAX);
        project_phase::Entity::update_many()
            .set(project_phase::ActiveModel {
                leave_time: Set(Some(now)),
                ..Default::default()
            })
            .filter(project_phase::Column::ProjectId.eq(project.id))
            .filter(project_phase::Column::LeaveTime.is_null())
            .exec(conn)
            .await
            .map_err(db_error)?;
        project_phase::ActiveModel {
            project_id: Set(project.id),
            seq: Set(seq),
            phase: Set(phase.as_str().to_owned()),
            enter_time: Set(now),
            leave_time: Set(None),
        }
        .insert(conn)
        .await
        .map_err(db_error)?;
        assessments::instantiate(conn, project.organisation_id, project.id, phase).await?;
    }
    Ok(())
}

/// Resumes or retires a project (lifecycle actions outside gates).
pub async fn lifecycle(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    id: Uuid,
    action: jalon_core::gate::LifecycleAction,
    reason: &str,
    caller: &Caller,
) -> Result<Project> {
    use jalon_core::gate::LifecycleAction;
    let rule = match action {
        LifecycleAction::Resume => Action::ResumeProject,
        LifecycleAction::Retire => Action::RetireProject,
    };
    let mut change = Change::begin(db, organisation_id, caller, rule).await?;
    let current = change.project_for(id, "project").await?;
    let status = jalon_core::gate::lifecycle(&current, action)?;
    move_project(change.conn(), &current, current.phase, status).await?;
    let updated = get(change.conn(), organisation_id, id).await?;
    change.event(NewEvent {
        project_id: Some(id),
        action: match action {
            LifecycleAction::Resume => "project.resumed",
            LifecycleAction::Retire => "project.retired",
        },
        resource_type: "project",
        resource_id: id.to_string(),
        before: Some(serde_json::json!({"status": current.status.as_str()})),
        after: serde_json::json!({"status": updated.status.as_str(), "reason": reason}),
        chained: false,
    });
    change.rewritten(updated.clone());
    change.commit().await?;
    Ok(updated)
}

/// Demo data only (`jalon serve --demo`), never real data: rewrites a
/// project's phase history so that its stays lasted `days` (oldest first;
/// the last one runs up to now), moves its creation before the first stay
/// and its KPIs' baseline and POC measurements into the matching phases,
/// then refreshes its portfolio figures.
#[tracing::instrument(skip(db))]
pub async fn backdate_for_demo(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    id: Uuid,
    days: &[i64],
) -> Result<()> {
    use crate::entity::{kpi, kpi_measurement};
    use sea_orm::sea_query::Expr;
    let txn = begin_write(db).await?;
    lock_organisation(&txn, organisation_id).await?;
    get(&txn, organisation_id, id).await?;
    let spans = project_phase::Entity::find()
        .filter(project_phase::Column::ProjectId.eq(id))
        .order_by_asc(project_phase::Column::Seq)
        .all(&txn)
        .await
        .map_err(db_error)?;
    let mut cursor = Utc::now();
    let mut placed = Vec::new();
    for (i, span) in spans.iter().enumerate().rev() {
        let from_end = spans.len() - i;
        let length = days
            .len()
            .checked_sub(from_end)
            .and_then(|k| days.get(k))
            .copied()
            .unwrap_or(0);
        let leave = span.leave_time.map(|_| cursor);
        let enter = cursor - chrono::Duration::days(length);
        project_phase::Entity::update_many()
            .col_expr(project_phase::Column::EnterTime, Expr::value(enter))
            .col_expr(project_phase::Column::LeaveTime, Expr::value(leave))
            .filter(project_phase::Column::ProjectId.eq(id))
            .filter(project_phase::Column::Seq.eq(span.seq))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        placed.push((span.phase.clone(), enter, leave.unwrap_or(cursor)));
        cursor = enter;
    }
    let created = cursor - chrono::Duration::days(1);
    project::Entity::update_many()
        .col_expr(project::Column::CreateTime, Expr::value(created))
        .filter(project::Column::Id.eq(id))
        .exec(&txn)
        .await
        .map_err(db_error)?;
    let kpis: Vec<Uuid> = kpi::Entity::find()
        .select_only()
        .column(kpi::Column::Id)
        .filter(kpi::Column::ProjectId.eq(id))
        .into_tuple()
        .all(&txn)
        .await
        .map_err(db_error)?;
    let poc = placed
        .iter()
        .find(|(phase, _, _)| phase == Phase::Poc.as_str())
        .map(|(_, enter, leave)| *enter + (*leave - *enter) / 2);
    for (stage, time) in [("BASELINE", Some(created)), ("POC", poc)] {
        if let Some(time) = time {
            kpi_measurement::Entity::update_many()
                .col_expr(kpi_measurement::Column::MeasureTime, Expr::value(time))
                .filter(kpi_measurement::Column::KpiId.is_in(kpis.clone()))
                .filter(kpi_measurement::Column::Stage.eq(stage))
                .exec(&txn)
                .await
                .map_err(db_error)?;
        }
    }
    crate::portfolio::refresh(&txn, organisation_id, [id]).await?;
    commit(txn).await
}

/// The lead and sponsor of projects of an organisation, for the access
/// policy (absent projects are left out).
pub async fn parties(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, Parties>> {
    let mut out = std::collections::HashMap::new();
    for chunk in ids.chunks(crate::CHUNK) {
        let rows: Vec<(Uuid, Option<Uuid>, Option<Uuid>)> = project::Entity::find()
            .select_only()
            .column(project::Column::Id)
            .column(project::Column::LeadId)
            .column(project::Column::SponsorId)
            .filter(project::Column::OrganisationId.eq(organisation_id))
            .filter(project::Column::Id.is_in(chunk.to_vec()))
            .into_tuple()
            .all(conn)
            .await
            .map_err(db_error)?;
        out.extend(rows.into_iter().map(|(id, lead, sponsor)| {
            (
                id,
                Parties {
                    lead,
                    sponsor,
                    ..Parties::default()
                },
            )
        }));
    }
    Ok(out)
}
