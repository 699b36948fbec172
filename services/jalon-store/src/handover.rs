//! The hand-over: a person's sponsorships and leads (usually a leaver's)
//! passed to another active person of the organisation in one change; open
//! gate reviews that waited for the old sponsor's signature then wait for
//! the new sponsor's. Each project is audited as `project.updated` (and
//! each review as `gate.signatories_changed`), so the outbox follows; the
//! projects' figures and alerts are refreshed at commit.

use std::collections::BTreeSet;

use jalon_core::{
    Error, FieldViolation, Result,
    authz::Action,
    portfolio::is_live,
    project::{Project, Status},
};
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::{
    change::{Caller, Change},
    entity::project,
    error::db_error,
    gates, people, projects,
};

/// What is handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Responsibilities {
    pub sponsor: bool,
    pub lead: bool,
}

/// A hand-over asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandOver {
    pub from: Uuid,
    pub to: Uuid,
    pub what: Responsibilities,
    /// The chosen projects (field `project_ids`); empty for every live
    /// project `from` sponsors or leads.
    pub projects: Vec<Uuid>,
}

/// What a hand-over did.
#[derive(Debug, Clone, PartialEq)]
pub struct HandedOver {
    /// The projects handed over, as written, in id order.
    pub projects: Vec<Project>,
    /// The open reviews now waiting for the new sponsor.
    pub reviews: Vec<Uuid>,
}

/// Hands over `request.from`'s sponsorships and/or leads to `request.to`.
#[tracing::instrument(skip(db, caller))]
pub async fn hand_over(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    caller: &Caller,
    request: &HandOver,
) -> Result<HandedOver> {
    let mut change = Change::begin(db, organisation_id, caller, Action::HandOverProjects).await?;
    let mut bad = Vec::new();
    match people::get(change.conn(), organisation_id, request.from).await {
        Err(Error::NotFound { .. }) => bad.push(FieldViolation::new(
            "from_person_id",
            "is not a person of this organisation",
        )),
        other => {
            other?;
        }
    }
    if request.to == request.from {
        bad.push(FieldViolation::new(
            "to_person_id",
            "must differ from from_person_id",
        ));
    } else if crate::access::active_members(change.conn(), organisation_id, [request.to])
        .await?
        .is_empty()
    {
        // Locked (shared) on PostgreSQL: they cannot be deactivated while
        // they receive the projects.
        bad.push(FieldViolation::new(
            "to_person_id",
            "is not an active person of this organisation",
        ));
    }
    if !bad.is_empty() {
        return Err(Error::InvalidArgument(bad));
    }
    let (ids, chosen) = if request.projects.is_empty() {
        (theirs(&change, request).await?, false)
    } else {
        (request.projects.clone(), true)
    };
    let mut found = change.projects_for(ids.iter().copied(), "project").await?;
    let mut out = HandedOver {
        projects: Vec::new(),
        reviews: Vec::new(),
    };
    let position = |id: Uuid| ids.iter().position(|i| *i == id).unwrap_or_default();
    let unique: BTreeSet<Uuid> = ids.iter().copied().collect();
    for id in unique {
        let current = found.remove(&id).unwrap_or(Err(Error::NotFound {
            resource: "project",
        }))?;
        let field = || format!("project_ids[{}]", position(id));
        let moves_sponsor =
            request.what.sponsor && current.details.sponsor_id == Some(request.from);
        let moves_lead = request.what.lead && current.details.lead_id == Some(request.from);
        if !moves_sponsor && !moves_lead {
            // Only a chosen project can get here: the others were found by
            // these very people.
            return Err(Error::invalid(
                field(),
                format!(
                    "{} is not sponsored or led by from_person_id (as responsibilities says)",
                    current.details.name.as_str()
                ),
            ));
        }
        let sponsor = if moves_sponsor {
            Some(request.to)
        } else {
            current.details.sponsor_id
        };
        let lead = if moves_lead {
            Some(request.to)
        } else {
            current.details.lead_id
        };
        if sponsor.is_some() && sponsor == lead {
            let why = format!(
                "would both sponsor and lead {}: sign-offs must be independent",
                current.details.name.as_str()
            );
            return Err(Error::invalid(
                if chosen {
                    field()
                } else {
                    "to_person_id".to_owned()
                },
                why,
            ));
        }
        let written = projects::reassign(&mut change, &current, sponsor, lead).await?;
        if moves_sponsor
            && let Some(review) =
                gates::hand_over_sponsor_signature(&mut change, id, request.from, request.to)
                    .await?
        {
            out.reviews.push(review);
        }
        out.projects.push(written);
    }
    change.commit().await?;
    Ok(out)
}

/// The live projects (not stopped or retired) `from` sponsors or leads, as
/// the hand-over asks.
async fn theirs(change: &Change, request: &HandOver) -> Result<Vec<Uuid>> {
    use project::Column as C;
    let mut who = Condition::any();
    if request.what.sponsor {
        who = who.add(C::SponsorId.eq(request.from));
    }
    if request.what.lead {
        who = who.add(C::LeadId.eq(request.from));
    }
    let live: Vec<&str> = [
        Status::Active,
        Status::OnHold,
        Status::Stopped,
        Status::InProduction,
        Status::Retired,
    ]
    .into_iter()
    .filter(|s| is_live(*s))
    .map(|s| s.as_str())
    .collect();
    project::Entity::find()
        .select_only()
        .column(C::Id)
        .filter(C::OrganisationId.eq(change.organisation_id()))
        .filter(C::Status.is_in(live))
        .filter(who)
        .into_tuple()
        .all(change.conn())
        .await
        .map_err(db_error)
}
