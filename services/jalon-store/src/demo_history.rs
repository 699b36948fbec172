//! The demo portfolio's history, dated after it is seeded: the seeder
//! makes every change now, then [`crate::projects::backdate_for_demo`]
//! spreads each project's phases over the past year. This dates what
//! happened at the gates and in the decision log to match: a review is
//! requested, signed and decided as its phase ends, and every audit event
//! falls between the anchors around it (the project's creation, its gate
//! events), so the log reads in the order things happened. Never used on
//! data a user wrote.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use jalon_core::Result;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, sea_query::Expr,
};
use uuid::Uuid;

use crate::{
    audit, begin_write, commit,
    entity::{audit_event, gate_review, gate_signature, project, project_phase},
    error::db_error,
};

/// When a review was requested, signed and decided.
struct ReviewTimes {
    request: DateTime<Utc>,
    sign: DateTime<Utc>,
    decide: DateTime<Utc>,
}

/// The times of a decided review of the phase spanning `enter..leave`:
/// decided as the phase ends when the project moved on (`moved`), within
/// the phase otherwise (a recycle); requested a few days before and signed
/// in between, never before the phase began.
fn review_times(enter: DateTime<Utc>, leave: DateTime<Utc>, moved: bool) -> ReviewTimes {
    let decide = if moved {
        leave
    } else {
        enter + (leave - enter) * 2 / 5
    };
    let request = (decide - Duration::days(6)).max(enter + (decide - enter) / 2);
    let sign = request + (decide - request) / 2;
    ReviewTimes {
        request,
        sign,
        decide,
    }
}

/// Dates the gate reviews, signatures and audit events of the demo
/// organisation from its projects' (already backdated) phase histories,
/// then rewrites its audit log in that order ([`audit::restamp`]).
pub async fn date_history_for_demo(db: &DatabaseConnection, organisation_id: Uuid) -> Result<()> {
    let txn = begin_write(db).await?;
    let now = Utc::now();
    let projects: HashMap<Uuid, DateTime<Utc>> = project::Entity::find()
        .filter(project::Column::OrganisationId.eq(organisation_id))
        .all(&txn)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(|p| (p.id, p.create_time))
        .collect();
    let mut spans: HashMap<Uuid, Vec<project_phase::Model>> = HashMap::new();
    for s in project_phase::Entity::find()
        .filter(project_phase::Column::ProjectId.is_in(projects.keys().copied()))
        .order_by_asc(project_phase::Column::Seq)
        .all(&txn)
        .await
        .map_err(db_error)?
    {
        spans.entry(s.project_id).or_default().push(s);
    }

    // The reviews, each dated within the span of the phase it reviewed.
    let mut anchors: HashMap<String, ReviewTimes> = HashMap::new();
    for r in gate_review::Entity::find()
        .filter(gate_review::Column::OrganisationId.eq(organisation_id))
        .filter(gate_review::Column::DecideTime.is_not_null())
        .all(&txn)
        .await
        .map_err(db_error)?
    {
        let moved = r.to_phase.is_some() && r.outcome.as_deref() != Some("RECYCLE");
        // The span the project left; for the last gate (into production,
        // the phase goes on) or a recycle, the phase's latest span.
        let of_phase: Vec<&project_phase::Model> = spans
            .get(&r.project_id)
            .map(|s| s.iter().filter(|s| s.phase == r.from_phase).collect())
            .unwrap_or_default();
        let left = of_phase
            .iter()
            .find(|s| moved && s.leave_time.is_some())
            .or(of_phase.last());
        let Some(span) = left else {
            continue;
        };
        let times = review_times(
            span.enter_time,
            span.leave_time.unwrap_or(now),
            moved && span.leave_time.is_some(),
        );
        gate_review::Entity::update_many()
            .col_expr(gate_review::Column::RequestTime, Expr::value(times.request))
            .col_expr(gate_review::Column::DecideTime, Expr::value(times.decide))
            .filter(gate_review::Column::Id.eq(r.id))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        gate_signature::Entity::update_many()
            .col_expr(gate_signature::Column::SignTime, Expr::value(times.sign))
            .filter(gate_signature::Column::ReviewId.eq(r.id))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        anchors.insert(r.id.to_string(), times);
    }

    // The log: anchored events take their anchor's time; the others fall
    // evenly between the anchors around them, per project. Events of no
    // project seeded before the first project (the organisation and its
    // people) are dated the week before it; later ones keep their time.
    let events = audit_event::Entity::find()
        .filter(audit_event::Column::OrganisationId.eq(organisation_id))
        .order_by_asc(audit_event::Column::Sequence)
        .all(&txn)
        .await
        .map_err(db_error)?;
    let start = projects.values().min().copied().unwrap_or(now) - Duration::days(7);
    let mut times: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
    let mut by_project: HashMap<Uuid, Vec<&audit_event::Model>> = HashMap::new();
    let mut before_projects = Vec::new();
    let mut seen_project = false;
    for e in &events {
        match e.project_id {
            Some(p) if projects.contains_key(&p) => {
                seen_project = true;
                by_project.entry(p).or_default().push(e);
            }
            _ if !seen_project => before_projects.push(e.id),
            _ => {}
        }
    }
    for (i, id) in before_projects.iter().enumerate() {
        times.insert(*id, start + Duration::minutes(i as i64));
    }
    for (project_id, list) in by_project {
        let created = projects[&project_id];
        let anchor = |e: &audit_event::Model| -> Option<DateTime<Utc>> {
            if e.action == "project.created" {
                return Some(created);
            }
            let t = anchors.get(&e.resource_id)?;
            match e.action.as_str() {
                "gate.requested" => Some(t.request),
                "gate.signed" => Some(t.sign),
                "gate.decided" => Some(t.decide),
                _ => None,
            }
        };
        // (index, time) of the anchors, increasing; the end is the seed.
        let mut fixed: Vec<(usize, DateTime<Utc>)> = Vec::new();
        for (i, e) in list.iter().enumerate() {
            if let Some(t) = anchor(e)
                && fixed.last().is_none_or(|(_, last)| *last <= t)
            {
                fixed.push((i, t));
            }
        }
        let end = list.last().map_or(now, |e| e.time.max(now));
        let mut previous = (0_usize, created);
        let mut k = 0;
        for (i, e) in list.iter().enumerate() {
            if k < fixed.len() && fixed[k].0 == i {
                times.insert(e.id, fixed[k].1);
                previous = fixed[k];
                k += 1;
                continue;
            }
            let next = fixed.get(k).copied().unwrap_or((list.len(), end));
            let steps = (next.0 - previous.0).max(1) as i32;
            let t = previous.1 + (next.1 - previous.1) * (i - previous.0) as i32 / steps;
            times.insert(e.id, t);
        }
    }
    audit::restamp(&txn, organisation_id, &times).await?;
    commit(txn).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_review_is_dated_within_its_phase() {
        let enter = Utc::now() - Duration::days(100);
        let leave = enter + Duration::days(60);
        let t = review_times(enter, leave, true);
        assert_eq!(t.decide, leave);
        assert_eq!(t.request, leave - Duration::days(6));
        assert!(t.request < t.sign && t.sign < t.decide);
        let recycled = review_times(enter, leave, false);
        assert_eq!(recycled.decide, enter + Duration::days(24));
        let short = review_times(enter, enter + Duration::days(2), true);
        assert!(short.request >= enter && short.request < short.decide);
    }
}
