//! Project rows with their tags and phase history.

use std::collections::HashMap;

use jalon_core::{
    Error, Result,
    project::{AiActTier, DataKind, Phase, PhaseSpan, Project, ProjectDetails, Status},
    values::{CurrencyCode, DisplayName, Money, ShortText},
};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::{
    entity::{project, project_phase, project_tag},
    error::db_error,
};

fn parse_opt<T: std::str::FromStr>(raw: Option<String>) -> Option<T> {
    raw.and_then(|r| r.parse().ok())
}

pub(crate) fn from_model(
    m: project::Model,
    tags: Vec<String>,
    phase_history: Vec<PhaseSpan>,
) -> Result<Project> {
    let bad = |e: String| crate::error::unknown("projects", m.id, e);
    let ai_act_tier: AiActTier = m.ai_act_tier.parse().map_err(bad)?;
    let phase: Phase = m.phase.parse().map_err(bad)?;
    let status: Status = m.status.parse().map_err(bad)?;
    let expected_gain = match (m.expected_gain_minor, m.expected_gain_currency.as_deref()) {
        (Some(minor), Some(code)) => CurrencyCode::parse(code)
            .ok()
            .map(|c| Money::from_minor(minor, c)),
        _ => None,
    };
    Ok(Project {
        id: m.id,
        organisation_id: m.organisation_id,
        details: ProjectDetails {
            // Stored values were validated on the way in.
            name: DisplayName::parse(&m.name)
                .unwrap_or_else(|_| DisplayName::parse("?").expect("a valid name")),
            description: m.description,
            business_unit: ShortText::parse(&m.business_unit)
                .unwrap_or_else(|_| ShortText::parse("").expect("empty is valid")),
            tags,
            objective: m.objective,
            gain_quantified: m.gain_quantified,
            expected_gain,
            usage: parse_opt(m.usage),
            result_type: parse_opt(m.result_type),
            data_kinds: m
                .data_kinds
                .split(',')
                .filter_map(|k| k.parse::<DataKind>().ok())
                .collect(),
            algorithm_approach: parse_opt(m.algorithm_approach),
            execution: parse_opt(m.execution),
            hosting: parse_opt(m.hosting),
            personal_data: m.personal_data,
            ai_act_tier,
            ai_act_reason: m.ai_act_reason,
            sponsor_id: m.sponsor_id,
            lead_id: m.lead_id,
            planned_start: m.planned_start,
            planned_end: m.planned_end,
        },
        phase,
        status,
        phase_history,
        underperforming: m.underperforming,
        create_time: m.create_time,
        update_time: m.update_time,
        version: m.version,
    })
}

/// Loads the tags and phase histories of several projects at once.
pub(crate) async fn hydrate(
    conn: &impl ConnectionTrait,
    rows: Vec<project::Model>,
) -> Result<Vec<Project>> {
    hydrate_with(conn, rows, true).await
}

/// [`hydrate`], the tags only when asked (the rules and the figures do not
/// look at them).
pub(crate) async fn hydrate_with(
    conn: &impl ConnectionTrait,
    rows: Vec<project::Model>,
    with_tags: bool,
) -> Result<Vec<Project>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut tags: HashMap<Uuid, Vec<String>> = HashMap::new();
    if with_tags {
        for t in project_tag::Entity::find()
            .filter(project_tag::Column::ProjectId.is_in(ids.clone()))
            .order_by_asc(project_tag::Column::Tag)
            .all(conn)
            .await
            .map_err(db_error)?
        {
            tags.entry(t.project_id).or_default().push(t.tag);
        }
    }
    let mut phases: HashMap<Uuid, Vec<PhaseSpan>> = HashMap::new();
    for p in project_phase::Entity::find()
        .filter(project_phase::Column::ProjectId.is_in(ids))
        .order_by_asc(project_phase::Column::Seq)
        .all(conn)
        .await
        .map_err(db_error)?
    {
        phases.entry(p.project_id).or_default().push(PhaseSpan {
            phase: p
                .phase
                .parse()
                .map_err(|e| crate::error::unknown("project_phases", p.project_id, e))?,
            enter_time: p.enter_time,
            leave_time: p.leave_time,
        });
    }
    rows.into_iter()
        .map(|m| {
            let id = m.id;
            from_model(
                m,
                tags.remove(&id).unwrap_or_default(),
                phases.remove(&id).unwrap_or_default(),
            )
        })
        .collect()
}

/// Reads a project of an organisation.
#[tracing::instrument(skip(conn))]
pub async fn get(conn: &impl ConnectionTrait, organisation_id: Uuid, id: Uuid) -> Result<Project> {
    let row = project::Entity::find_by_id(id)
        .filter(project::Column::OrganisationId.eq(organisation_id))
        .one(conn)
        .await
        .map_err(db_error)?
        .ok_or(Error::NotFound {
            resource: "project",
        })?;
    hydrate(conn, vec![row])
        .await?
        .pop()
        .ok_or(Error::NotFound {
            resource: "project",
        })
}

/// Reads several projects of an organisation (those that exist there),
/// without their tags (what the access policy and the figures read).
pub(crate) async fn get_many(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    ids: Vec<Uuid>,
) -> Result<Vec<Project>> {
    read_many(conn, organisation_id, ids, false).await
}

/// [`get_many`] that also locks the rows it reads, in id order (on
/// PostgreSQL `FOR NO KEY UPDATE`; SQLite's write transaction already
/// excludes other writers): a change's lock and read in one statement.
pub(crate) async fn lock_many(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    mut ids: Vec<Uuid>,
) -> Result<Vec<Project>> {
    ids.sort();
    ids.dedup();
    read_many(conn, organisation_id, ids, crate::is_postgres(conn)).await
}

async fn read_many(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    ids: Vec<Uuid>,
    lock: bool,
) -> Result<Vec<Project>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(crate::CHUNK) {
        let mut query = project::Entity::find()
            .filter(project::Column::OrganisationId.eq(organisation_id))
            .filter(project::Column::Id.is_in(chunk.to_vec()));
        if lock {
            query = query
                .order_by_asc(project::Column::Id)
                .lock(sea_orm::sea_query::LockType::NoKeyUpdate);
        }
        let rows = query.all(conn).await.map_err(db_error)?;
        out.extend(hydrate_with(conn, rows, false).await?);
    }
    Ok(out)
}
