//! The outbox: what changed, for the systems that follow an organisation
//! (`EventService.WatchEvents`, webhooks). Every change writes its events in
//! its own transaction (`change::Change::commit`), derived from what it
//! records in the audit log plus the alerts its refresh raised or cleared;
//! the payloads are thin (ids, what changed, who), never tokens, secrets or
//! e-mail addresses.
//!
//! Positions: each organisation's events are numbered 1, 2, ... from
//! `event_heads`, taken under that row's lock at the end of the writing
//! transaction (on PostgreSQL by a deferred trigger, at commit). A position
//! is therefore assigned in commit order: no event with a lower position can
//! commit after one with a higher position, and a reader resuming "after N"
//! never skips one. The lock is held from then to the commit only.

use std::{collections::BTreeMap, sync::LazyLock};

use chrono::{DateTime, Utc};
use jalon_core::{Error, Result};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    CHUNK,
    audit::{Actor, NewEvent},
    entity::{event_head as head, outbox_event as event},
    error::db_error,
    is_postgres,
};

/// The PostgreSQL channel that wakes the watchers of every replica; the
/// payload is the organisation's id.
pub const CHANNEL: &str = "jalon_events";

/// Every event type, with what its `data` carries (also in the README).
pub const TYPES: &[(&str, &str)] = &[
    ("project.created", "name, phase, status"),
    ("project.updated", "fields: the names of the fields changed"),
    ("project.phase_changed", "from, to: phases"),
    (
        "project.status_changed",
        "from, to: statuses; reason when given",
    ),
    ("gate.review_requested", "review_id, from_phase"),
    ("gate.signed", "review_id, verdict"),
    ("gate.waived", "review_id, criterion"),
    (
        "gate.signatories_changed",
        "review_id, from, to: the sponsor whose signature was awaited, and the one now awaited (a hand-over)",
    ),
    ("gate.decided", "review_id, outcome, phase, status"),
    ("gate.condition_closed", "condition_id"),
    ("assessment.answered", "item, status"),
    ("kpi.created", "kpi_id"),
    ("kpi.updated", "kpi_id, fields"),
    ("kpi.archived", "kpi_id"),
    (
        "kpi.measurements_recorded",
        "count, kpi_ids: one event per project and batch",
    ),
    (
        "kpi.underperforming",
        "kpis: the names of the KPIs below target",
    ),
    ("kpi.recovered", "(none)"),
    (
        "finance.costs_posted",
        "count: one event per project and batch",
    ),
    ("finance.benefit_recorded", "benefit_id"),
    ("finance.budget_set", "(none)"),
    (
        "alert.raised",
        "kind (and endpoint_id for `WEBHOOK_DISABLED`, organisation-level)",
    ),
    (
        "alert.cleared",
        "kind (and endpoint_id for `WEBHOOK_DISABLED`, organisation-level)",
    ),
    ("person.created", "person_id, role"),
    ("person.updated", "person_id, fields"),
    ("person.role_changed", "person_id, from, to"),
    ("person.deactivated", "person_id"),
    ("person.reactivated", "person_id"),
    ("organisation.updated", "fields"),
];

/// Whether `kind` is an event type.
pub fn is_type(kind: &str) -> bool {
    TYPES.iter().any(|(t, _)| *t == kind)
}

/// An event to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub kind: &'static str,
    pub project_id: Option<Uuid>,
    /// The resource the event is about, e.g. `projects/<id>`.
    pub subject: String,
    pub data: Value,
}

/// An event as stored.
pub type Event = event::Model;

fn notice(kind: &'static str, project_id: Option<Uuid>, subject: String, data: Value) -> Notice {
    Notice {
        kind,
        project_id,
        subject,
        data,
    }
}

/// The names of the fields that differ between two JSON objects.
fn fields_changed(before: Option<&Value>, after: &Value) -> Vec<String> {
    let (Some(Value::Object(before)), Value::Object(after)) = (before, after) else {
        return Vec::new();
    };
    after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect()
}

/// The events an audit record stands for (none for those no one follows:
/// question bank and gate policy edits stay in the audit log).
pub(crate) fn notices_of(audit: &NewEvent) -> Vec<Notice> {
    let id = audit.resource_id.as_str();
    let project = audit.project_id;
    let after = &audit.after;
    let before = audit.before.as_ref();
    let pick = |v: &Value, key: &str| v.get(key).cloned().unwrap_or(Value::Null);
    let project_subject = || format!("projects/{}", project.unwrap_or_default());
    match audit.action {
        "project.created" => vec![notice(
            "project.created",
            project,
            project_subject(),
            json!({"name": pick(after, "name"), "phase": pick(after, "phase"), "status": pick(after, "status")}),
        )],
        "project.updated" => vec![notice(
            "project.updated",
            project,
            project_subject(),
            json!({"fields": fields_changed(before, after)}),
        )],
        "project.resumed" | "project.retired" => vec![notice(
            "project.status_changed",
            project,
            project_subject(),
            json!({"from": before.map(|b| pick(b, "status")), "to": pick(after, "status"), "reason": pick(after, "reason")}),
        )],
        "gate.requested" => vec![notice(
            "gate.review_requested",
            project,
            format!("gate_reviews/{id}"),
            json!({"review_id": id, "from_phase": pick(after, "from_phase")}),
        )],
        "gate.signed" => vec![notice(
            "gate.signed",
            project,
            format!("gate_reviews/{id}"),
            json!({"review_id": id, "verdict": pick(after, "verdict")}),
        )],
        "gate.signatories_changed" => vec![notice(
            "gate.signatories_changed",
            project,
            format!("gate_reviews/{id}"),
            json!({"review_id": id, "from": before.map(|b| pick(b, "sponsor")), "to": pick(after, "sponsor")}),
        )],
        "gate.waived" => vec![notice(
            "gate.waived",
            project,
            format!("gate_reviews/{id}"),
            json!({"review_id": id, "criterion": pick(after, "criterion")}),
        )],
        "gate.decided" => {
            let mut out = vec![notice(
                "gate.decided",
                project,
                format!("gate_reviews/{id}"),
                json!({"review_id": id, "outcome": pick(after, "outcome"), "phase": pick(after, "phase"), "status": pick(after, "status")}),
            )];
            for (field, kind) in [
                ("phase", "project.phase_changed"),
                ("status", "project.status_changed"),
            ] {
                let from = before.map(|b| pick(b, field)).unwrap_or(Value::Null);
                let to = pick(after, field);
                if from != to {
                    out.push(notice(
                        kind,
                        project,
                        project_subject(),
                        json!({"from": from, "to": to}),
                    ));
                }
            }
            out
        }
        "gate.condition_closed" => vec![notice(
            "gate.condition_closed",
            project,
            format!("gate_conditions/{id}"),
            json!({"condition_id": id}),
        )],
        "assessment.answered" => vec![notice(
            "assessment.answered",
            project,
            project_subject(),
            json!({"item": id, "status": pick(after, "status")}),
        )],
        "kpi.created" | "kpi.archived" => vec![notice(
            if audit.action == "kpi.created" {
                "kpi.created"
            } else {
                "kpi.archived"
            },
            project,
            format!("kpis/{id}"),
            json!({"kpi_id": id}),
        )],
        "kpi.updated" => vec![notice(
            "kpi.updated",
            project,
            format!("kpis/{id}"),
            json!({"kpi_id": id, "fields": fields_changed(before, after)}),
        )],
        "kpi.measurements_recorded" => per_project(after, |p, rows| {
            let mut kpis: Vec<&str> = rows.iter().filter_map(|r| r["kpi_id"].as_str()).collect();
            kpis.sort_unstable();
            kpis.dedup();
            notice(
                "kpi.measurements_recorded",
                Some(p),
                format!("projects/{p}"),
                json!({"count": rows.len(), "kpi_ids": kpis}),
            )
        }),
        "project.underperformance_flagged" => vec![notice(
            "kpi.underperforming",
            project,
            project_subject(),
            json!({"kpis": pick(after, "kpis")}),
        )],
        "project.underperformance_cleared" => vec![notice(
            "kpi.recovered",
            project,
            project_subject(),
            json!({}),
        )],
        "finance.costs_recorded" => per_project(after, |p, rows| {
            notice(
                "finance.costs_posted",
                Some(p),
                format!("projects/{p}"),
                json!({"count": rows.len()}),
            )
        }),
        "finance.benefit_recorded" => vec![notice(
            "finance.benefit_recorded",
            project,
            project_subject(),
            json!({"benefit_id": id}),
        )],
        "finance.budget_set" => vec![notice(
            "finance.budget_set",
            project,
            project_subject(),
            json!({}),
        )],
        "person.created" => vec![notice(
            "person.created",
            None,
            format!("people/{id}"),
            json!({"person_id": id, "role": pick(after, "role")}),
        )],
        "person.updated" => vec![notice(
            "person.updated",
            None,
            format!("people/{id}"),
            json!({"person_id": id, "fields": after.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default()}),
        )],
        "person.role_changed" => vec![notice(
            "person.role_changed",
            None,
            format!("people/{id}"),
            json!({"person_id": id, "from": before.map(|b| pick(b, "role")), "to": pick(after, "role")}),
        )],
        "person.deactivated" | "person.reactivated" => vec![notice(
            if audit.action == "person.deactivated" {
                "person.deactivated"
            } else {
                "person.reactivated"
            },
            None,
            format!("people/{id}"),
            json!({"person_id": id}),
        )],
        "organisation.updated" => vec![notice(
            "organisation.updated",
            None,
            format!("organisations/{id}"),
            json!({"fields": after.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default()}),
        )],
        _ => Vec::new(),
    }
}

/// One event per project of a batch recorded as a list of rows that each
/// name their `project_id` (or, for measurements, are all of one project
/// given by the audit record).
fn per_project(rows: &Value, make: impl Fn(Uuid, &[&Value]) -> Notice) -> Vec<Notice> {
    let mut by_project: BTreeMap<Uuid, Vec<&Value>> = BTreeMap::new();
    for row in rows.as_array().into_iter().flatten() {
        if let Some(p) = row["project_id"].as_str().and_then(|p| p.parse().ok()) {
            by_project.entry(p).or_default().push(row);
        }
    }
    by_project.iter().map(|(p, rows)| make(*p, rows)).collect()
}

/// Alert changes of a project's refresh as events.
pub(crate) fn alert_notices(project_id: Uuid, raised: &[&str], cleared: &[String]) -> Vec<Notice> {
    let subject = format!("projects/{project_id}");
    raised
        .iter()
        .map(|kind| {
            notice(
                "alert.raised",
                Some(project_id),
                subject.clone(),
                json!({"kind": kind}),
            )
        })
        .chain(cleared.iter().map(|kind| {
            notice(
                "alert.cleared",
                Some(project_id),
                subject.clone(),
                json!({"kind": kind}),
            )
        }))
        .collect()
}

/// An organisation-level alert raised or cleared on a webhook endpoint
/// (`kind`: `alert.raised` or `alert.cleared`): no project; the subject is
/// the endpoint.
pub(crate) fn endpoint_alert_notice(kind: &'static str, endpoint_id: Uuid) -> Notice {
    notice(
        kind,
        None,
        format!("webhook_endpoints/{endpoint_id}"),
        json!({"kind": jalon_core::webhook::DISABLED_ALERT, "endpoint_id": endpoint_id}),
    )
}

/// Appends events to an organisation's outbox, inside the change's
/// transaction and as its last statements, and on PostgreSQL notifies the
/// other replicas' watchers (delivered at commit).
///
/// Positions come from the organisation's head, whose row stays locked from
/// its update to the commit: every writer of the organisation waits for the
/// holder. On SQLite (one writer at a time anyway) the head is moved here.
/// On PostgreSQL the rows are inserted with pending positions and a
/// deferred trigger (migration `m20261209_000001`) takes the real ones at
/// commit, inside the database, so no writer holds the head across a round
/// trip of its own; the rows and the NOTIFY are one statement.
pub(crate) async fn append(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    actor: &Actor,
    notices: &[Notice],
) -> Result<()> {
    if notices.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let rows: Vec<event::Model> = notices
        .iter()
        .map(|notice| event::Model {
            organisation_id,
            // Taken from the head below (SQLite) or at commit (PostgreSQL).
            position: 0,
            id: Uuid::now_v7(),
            kind: notice.kind.to_owned(),
            project_id: notice.project_id,
            subject: notice.subject.clone(),
            actor_person_id: actor.person_id,
            actor_subject: actor.subject.clone(),
            time: now,
            data: notice.data.to_string(),
        })
        .collect();
    if is_postgres(conn) {
        return append_postgres(conn, organisation_id, rows).await;
    }
    let n = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    let last = take_positions(conn, organisation_id, n).await?;
    let models: Vec<event::ActiveModel> = rows
        .into_iter()
        .zip(last - n + 1..)
        .map(|(row, position)| event::ActiveModel::from(event::Model { position, ..row }))
        .collect();
    for chunk in models.chunks(CHUNK / 10) {
        event::Entity::insert_many(chunk.to_vec())
            .exec(conn)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

/// Moves the head of `organisation_id`'s outbox by `n` positions (creating
/// it at `n`) and returns the last one taken.
async fn take_positions(conn: &impl ConnectionTrait, organisation_id: Uuid, n: i64) -> Result<i64> {
    let p = |n| crate::aggregates::placeholder(conn, n);
    let sql = format!(
        "INSERT INTO event_heads (organisation_id, position, purged_through) VALUES ({}, {}, 0) \
         ON CONFLICT (organisation_id) DO UPDATE SET position = event_heads.position + excluded.position \
         RETURNING position",
        p(1),
        p(2)
    );
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            conn.get_database_backend(),
            sql,
            [organisation_id.into(), n.into()],
        ))
        .await
        .map_err(db_error)?
        .ok_or_else(|| Error::Internal("the event head returned no position".into()))?;
    row.try_get("", "position").map_err(db_error)
}

/// [`append`] on PostgreSQL: one statement per batch of events, which
/// inserts the rows with pending positions (negative, unique; the deferred
/// trigger `outbox_take_position` replaces them at commit, in insertion
/// order) and queues the NOTIFY (sent at commit).
async fn append_postgres(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    rows: Vec<event::Model>,
) -> Result<()> {
    for chunk in rows.chunks(CHUNK / 10) {
        // $1 the organisation, $2 the time, then a row of the list per
        // event: its order, id, type, project, subject, actor (person and
        // subject) and data.
        let mut values: Vec<sea_orm::Value> = vec![organisation_id.into(), chunk[0].time.into()];
        for (ord, row) in chunk.iter().enumerate() {
            values.extend([
                i64::try_from(ord).unwrap_or(i64::MAX).into(),
                row.id.into(),
                row.kind.clone().into(),
                row.project_id.into(),
                row.subject.clone().into(),
                row.actor_person_id.into(),
                row.actor_subject.clone().into(),
                row.data.clone().into(),
            ]);
        }
        let list = crate::aggregates::values_table(conn, chunk.len(), 8, 3);
        let channel = values.len() + 1;
        values.push(CHANNEL.into());
        let sql = format!(
            "WITH added AS ( \
               INSERT INTO outbox_events (organisation_id, position, id, type, project_id, subject, \
                 actor_person_id, actor_subject, time, data) \
               SELECT $1, -nextval('outbox_pending_positions'), r.column2, r.column3, r.column4, \
                 r.column5, r.column6, r.column7, $2, r.column8 \
               FROM {list} \
               ORDER BY r.column1 \
               RETURNING 1 \
             ) \
             SELECT pg_notify(${channel}, CAST($1 AS text)) FROM (SELECT count(*) FROM added) AS a"
        );
        conn.execute_raw(Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            sql,
            values,
        ))
        .await
        .map_err(db_error)?;
    }
    Ok(())
}

/// After a commit that appended events: on SQLite (one process) wakes this
/// process's watchers of the organisation. On PostgreSQL the NOTIFY sent in
/// the transaction wakes every replica's, this one's included, through
/// [`listen`].
pub(crate) fn committed(backend: sea_orm::DbBackend, organisation_id: Uuid) {
    if backend != sea_orm::DbBackend::Postgres {
        wake(organisation_id);
    }
}

/// Wakes this process's followers of an organisation (the watchers, the
/// webhook worker) without a commit: a redelivery made due now.
pub fn wake_local(organisation_id: Uuid) {
    wake(organisation_id);
}

fn wake(organisation_id: Uuid) {
    // No receiver is not an error: nobody watches.
    let _ = HUB.send(organisation_id);
}

static HUB: LazyLock<tokio::sync::broadcast::Sender<Uuid>> =
    LazyLock::new(|| tokio::sync::broadcast::channel(4096).0);

/// A receiver of the organisations whose outbox grew (in this process, and
/// from other replicas once [`listen`] forwards them).
pub fn subscribe() -> tokio::sync::broadcast::Receiver<Uuid> {
    HUB.subscribe()
}

/// An organisation's head: the last position written and the last one
/// purged (0, 0 when it has no event yet).
pub async fn head(conn: &impl ConnectionTrait, organisation_id: Uuid) -> Result<(i64, i64)> {
    Ok(head::Entity::find_by_id(organisation_id)
        .one(conn)
        .await
        .map_err(db_error)?
        .map_or((0, 0), |h| (h.position, h.purged_through)))
}

/// The next events of an organisation after `after`, in order.
pub async fn read(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    after: i64,
    limit: u64,
) -> Result<Vec<Event>> {
    event::Entity::find()
        .filter(event::Column::OrganisationId.eq(organisation_id))
        .filter(event::Column::Position.gt(after))
        .order_by_asc(event::Column::Position)
        .limit(limit)
        .all(conn)
        .await
        .map_err(db_error)
}

/// Deletes events older than `before`, one organisation at a time, and
/// records how far each organisation's history now starts. Returns how many
/// were deleted.
pub async fn purge(db: &sea_orm::DatabaseConnection, before: DateTime<Utc>) -> Result<u64> {
    let orgs: Vec<(Uuid, i64)> = event::Entity::find()
        .select_only()
        .column(event::Column::OrganisationId)
        .column_as(event::Column::Position.max(), "position")
        .filter(event::Column::Time.lt(before))
        .group_by(event::Column::OrganisationId)
        .into_tuple()
        .all(db)
        .await
        .map_err(db_error)?;
    let mut deleted = 0;
    for (organisation_id, through) in orgs {
        let txn = crate::begin_write(db).await?;
        let result = event::Entity::delete_many()
            .filter(event::Column::OrganisationId.eq(organisation_id))
            .filter(event::Column::Position.lte(through))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        head::Entity::update_many()
            .col_expr(
                head::Column::PurgedThrough,
                sea_orm::sea_query::Expr::value(through),
            )
            .filter(head::Column::OrganisationId.eq(organisation_id))
            .filter(head::Column::PurgedThrough.lt(through))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        crate::commit(txn).await?;
        deleted += result.rows_affected;
    }
    Ok(deleted)
}

/// Forwards PostgreSQL notifications of other replicas' commits to this
/// process's watchers, reconnecting after a failure. Runs until the process
/// ends; on SQLite there is one process and nothing to listen to.
pub async fn listen(db: sea_orm::DatabaseConnection) {
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return;
    }
    let pool = db.get_postgres_connection_pool().clone();
    loop {
        match sea_orm::sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if let Err(error) = listener.listen(CHANNEL).await {
                    tracing::warn!(%error, "cannot listen for other replicas' events; retrying");
                } else {
                    tracing::info!(channel = CHANNEL, "listening for other replicas' events");
                    loop {
                        match listener.recv().await {
                            Ok(n) => {
                                if let Ok(org) = n.payload().parse() {
                                    wake(org);
                                }
                            }
                            Err(error) => {
                                tracing::warn!(%error, "event listener lost its connection; reconnecting");
                                break;
                            }
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot connect the event listener; retrying"),
        }
        // Watchers re-read after a reconnection: something may have been
        // missed while the listener was down.
        wake(Uuid::nil());
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}
