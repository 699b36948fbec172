//! What finance feeds book against: an organisation's cost sources, its
//! accounting periods (closed or open), the cost objects of its projects
//! (WBS elements, internal orders, cost collectors) and its cost-centre
//! rules. The costs themselves are in [`crate::finance`].

use chrono::Utc;
use jalon_core::{
    Error, Result,
    authz::Action,
    finance::{CostObjectKind, MANUAL_SOURCE},
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, QueryFilter, QueryOrder, sea_query::OnConflict,
};
use serde_json::json;
use uuid::Uuid;

use crate::{
    audit::NewEvent,
    change::{Caller, Change},
    entity::{cost_centre_rule, cost_period, cost_source, project_cost_object},
    error::{db_error, unique_violation},
};

/// A registered source.
pub type CostSource = cost_source::Model;
/// A period that was closed at least once (closed or reopened since).
pub type CostPeriod = cost_period::Model;
/// A project's cost object.
pub type CostObject = project_cost_object::Model;
/// "cost centre -> project".
pub type CostCentreRule = cost_centre_rule::Model;

/// Registers a source. The name is unique in the organisation; "manual" is
/// built in.
pub async fn create_source(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    caller: &Caller,
    name: &str,
    display_name: &str,
) -> Result<CostSource> {
    let exists = || Error::AlreadyExists(format!("the source '{name}' is already registered"));
    if name == MANUAL_SOURCE {
        return Err(exists());
    }
    let mut change = Change::begin(db, organisation_id, caller, Action::CreateCostSource).await?;
    let stored = cost_source::ActiveModel {
        id: Set(Uuid::now_v7()),
        organisation_id: Set(organisation_id),
        name: Set(name.to_owned()),
        display_name: Set(display_name.to_owned()),
        create_time: Set(Utc::now()),
    }
    .insert(change.conn())
    .await
    .map_err(|e| {
        if unique_violation(&e).is_some() {
            exists()
        } else {
            db_error(e)
        }
    })?;
    change.event(NewEvent {
        project_id: None,
        action: "finance.source_created",
        resource_type: "cost_source",
        resource_id: stored.name.clone(),
        before: None,
        after: json!({"name": stored.name, "display_name": stored.display_name}),
        chained: false,
    });
    change.commit().await?;
    Ok(stored)
}

/// The organisation's registered sources, by name (without the built-in
/// "manual").
pub async fn sources(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
) -> Result<Vec<CostSource>> {
    cost_source::Entity::find()
        .filter(cost_source::Column::OrganisationId.eq(organisation_id))
        .order_by_asc(cost_source::Column::Name)
        .all(conn)
        .await
        .map_err(db_error)
}

/// Closes (`closed`) or reopens a period. Closing a closed period, or
/// reopening an open one, changes nothing and records nothing.
pub async fn set_period(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    caller: &Caller,
    period: &str,
    closed: bool,
) -> Result<CostPeriod> {
    let action = if closed {
        Action::ClosePeriod
    } else {
        Action::ReopenPeriod
    };
    let mut change = Change::begin(db, organisation_id, caller, action).await?;
    let before = cost_period::Entity::find_by_id((organisation_id, period.to_owned()))
        .one(change.conn())
        .await
        .map_err(db_error)?;
    match &before {
        Some(p) if p.closed == closed => return Ok(p.clone()),
        None if !closed => {
            // Never closed: open already.
            return Ok(CostPeriod {
                organisation_id,
                period: period.to_owned(),
                closed: false,
                updated_by: String::new(),
                update_time: Utc::now(),
            });
        }
        _ => {}
    }
    let row = cost_period::ActiveModel {
        organisation_id: Set(organisation_id),
        period: Set(period.to_owned()),
        closed: Set(closed),
        updated_by: Set(change.actor().subject.clone()),
        update_time: Set(Utc::now()),
    };
    cost_period::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([
                cost_period::Column::OrganisationId,
                cost_period::Column::Period,
            ])
            .update_columns([
                cost_period::Column::Closed,
                cost_period::Column::UpdatedBy,
                cost_period::Column::UpdateTime,
            ])
            .to_owned(),
        )
        .exec(change.conn())
        .await
        .map_err(db_error)?;
    let stored = cost_period::Entity::find_by_id((organisation_id, period.to_owned()))
        .one(change.conn())
        .await
        .map_err(db_error)?
        .ok_or_else(|| Error::Internal("the period just written is gone".into()))?;
    change.event(NewEvent {
        project_id: None,
        action: if closed {
            "finance.period_closed"
        } else {
            "finance.period_reopened"
        },
        resource_type: "cost_period",
        resource_id: period.to_owned(),
        before: before.map(|p| json!({"closed": p.closed})),
        after: json!({"closed": closed}),
        chained: false,
    });
    change.commit().await?;
    Ok(stored)
}

/// The periods closed at least once, newest first.
pub async fn periods(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
) -> Result<Vec<CostPeriod>> {
    cost_period::Entity::find()
        .filter(cost_period::Column::OrganisationId.eq(organisation_id))
        .order_by_desc(cost_period::Column::Period)
        .all(conn)
        .await
        .map_err(db_error)
}

/// Replaces a project's cost objects by `objects` (kind, reference). A
/// reference is unique in the organisation: one held by another project is
/// ALREADY_EXISTS naming it.
pub async fn set_cost_objects(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    caller: &Caller,
    project_id: Uuid,
    objects: &[(CostObjectKind, String)],
) -> Result<Vec<CostObject>> {
    let mut change =
        Change::begin(db, organisation_id, caller, Action::SetProjectCostObjects).await?;
    change.project_for(project_id, "project").await?;
    let before = cost_objects(change.conn(), organisation_id, Some(project_id)).await?;
    project_cost_object::Entity::delete_many()
        .filter(project_cost_object::Column::OrganisationId.eq(organisation_id))
        .filter(project_cost_object::Column::ProjectId.eq(project_id))
        .exec(change.conn())
        .await
        .map_err(db_error)?;
    let now = Utc::now();
    for (kind, reference) in objects {
        project_cost_object::ActiveModel {
            id: Set(Uuid::now_v7()),
            organisation_id: Set(organisation_id),
            project_id: Set(project_id),
            kind: Set(kind.as_str().to_owned()),
            reference: Set(reference.clone()),
            create_time: Set(now),
        }
        .insert(change.conn())
        .await
        .map_err(|e| {
            if unique_violation(&e).is_some() {
                Error::AlreadyExists(format!(
                    "the cost object reference '{reference}' belongs to another project"
                ))
            } else {
                db_error(e)
            }
        })?;
    }
    let after = cost_objects(change.conn(), organisation_id, Some(project_id)).await?;
    let view = |v: &[CostObject]| {
        json!(
            v.iter()
                .map(|o| json!({"kind": o.kind, "reference": o.reference}))
                .collect::<Vec<_>>()
        )
    };
    change.event(NewEvent {
        project_id: Some(project_id),
        action: "finance.cost_objects_set",
        resource_type: "project",
        resource_id: project_id.to_string(),
        before: Some(view(&before)),
        after: view(&after),
        chained: false,
    });
    change.commit().await?;
    Ok(after)
}

/// The organisation's cost objects (of one project, if given), by
/// reference.
pub async fn cost_objects(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    project_id: Option<Uuid>,
) -> Result<Vec<CostObject>> {
    let mut q = project_cost_object::Entity::find()
        .filter(project_cost_object::Column::OrganisationId.eq(organisation_id));
    if let Some(p) = project_id {
        q = q.filter(project_cost_object::Column::ProjectId.eq(p));
    }
    q.order_by_asc(project_cost_object::Column::Reference)
        .all(conn)
        .await
        .map_err(db_error)
}

/// Sets (creates or replaces) the rule "cost centre -> project".
pub async fn set_rule(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    caller: &Caller,
    cost_centre: &str,
    project_id: Uuid,
) -> Result<CostCentreRule> {
    let mut change = Change::begin(db, organisation_id, caller, Action::SetCostCentreRule).await?;
    change.project_for(project_id, "project").await?;
    let before = cost_centre_rule::Entity::find_by_id((organisation_id, cost_centre.to_owned()))
        .one(change.conn())
        .await
        .map_err(db_error)?;
    let row = CostCentreRule {
        organisation_id,
        cost_centre: cost_centre.to_owned(),
        project_id,
        create_time: Utc::now(),
    };
    cost_centre_rule::Entity::insert(cost_centre_rule::ActiveModel::from(row.clone()))
        .on_conflict(
            OnConflict::columns([
                cost_centre_rule::Column::OrganisationId,
                cost_centre_rule::Column::CostCentre,
            ])
            .update_columns([
                cost_centre_rule::Column::ProjectId,
                cost_centre_rule::Column::CreateTime,
            ])
            .to_owned(),
        )
        .exec(change.conn())
        .await
        .map_err(db_error)?;
    change.event(NewEvent {
        project_id: Some(project_id),
        action: "finance.cost_centre_rule_set",
        resource_type: "cost_centre_rule",
        resource_id: cost_centre.to_owned(),
        before: before.map(|b| json!({"project_id": b.project_id})),
        after: json!({"project_id": project_id}),
        chained: false,
    });
    change.commit().await?;
    Ok(row)
}

/// Deletes the rule of a cost centre (NOT_FOUND if there is none).
pub async fn delete_rule(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    caller: &Caller,
    cost_centre: &str,
) -> Result<()> {
    let mut change =
        Change::begin(db, organisation_id, caller, Action::DeleteCostCentreRule).await?;
    let before = cost_centre_rule::Entity::find_by_id((organisation_id, cost_centre.to_owned()))
        .one(change.conn())
        .await
        .map_err(db_error)?
        .ok_or(Error::NotFound {
            resource: "cost centre rule",
        })?;
    cost_centre_rule::Entity::delete_by_id((organisation_id, cost_centre.to_owned()))
        .exec(change.conn())
        .await
        .map_err(db_error)?;
    change.event(NewEvent {
        project_id: Some(before.project_id),
        action: "finance.cost_centre_rule_deleted",
        resource_type: "cost_centre_rule",
        resource_id: cost_centre.to_owned(),
        before: Some(json!({"project_id": before.project_id})),
        after: json!(null),
        chained: false,
    });
    change.commit().await
}

/// The organisation's cost-centre rules, by cost centre.
pub async fn rules(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
) -> Result<Vec<CostCentreRule>> {
    cost_centre_rule::Entity::find()
        .filter(cost_centre_rule::Column::OrganisationId.eq(organisation_id))
        .order_by_asc(cost_centre_rule::Column::CostCentre)
        .all(conn)
        .await
        .map_err(db_error)
}
