//! The append-only audit log. Every change to a project, an answer, a
//! signature and a decision is an event; signatures, waivers and decisions are
//! hash-chained per organisation: each chained event's hash covers the
//! previous one's hash and the event's canonical content, so rewriting any of
//! them breaks the chain from there on.

use chrono::{DateTime, Utc};
use jalon_core::Result;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    entity::{audit_event as event, audit_head as head},
    error::db_error,
    is_postgres,
    page::{Page, paginate},
};

/// Who acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// Their person in the organisation (none for a platform administrator).
    pub person_id: Option<Uuid>,
    /// Their token subject.
    pub subject: String,
}

/// An event to record.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub project_id: Option<Uuid>,
    /// e.g. `project.created`, `gate.signed`.
    pub action: &'static str,
    pub resource_type: &'static str,
    pub resource_id: String,
    pub before: Option<Value>,
    pub after: Value,
    /// Signatures, waivers and decisions are chained.
    pub chained: bool,
}

/// The fields of two audit views (JSON objects) that differ: (before,
/// after), each holding only those fields.
pub(crate) fn diff(old: Value, new: Value) -> (Value, Value) {
    let mut was = serde_json::Map::new();
    let mut now = serde_json::Map::new();
    if let (Value::Object(old), Value::Object(new)) = (old, new) {
        for (key, value) in new {
            if old.get(&key) != Some(&value) {
                was.insert(key.clone(), old.get(&key).cloned().unwrap_or(Value::Null));
                now.insert(key, value);
            }
        }
    }
    (Value::Object(was), Value::Object(now))
}

/// An event as stored.
pub type Event = event::Model;

/// Times are kept to the microsecond, as PostgreSQL stores them, so that a
/// hash computed at write time is recomputed identically at read time.
fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// The canonical content an event's hash covers.
fn canonical(e: &event::Model) -> String {
    serde_json::json!([
        e.organisation_id.to_string(),
        e.sequence,
        e.chain_sequence,
        e.project_id.map(|p| p.to_string()),
        e.actor_person_id.map(|p| p.to_string()),
        e.actor_subject,
        e.action,
        e.resource_type,
        e.resource_id,
        e.before_json,
        e.after_json,
        e.time.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
    ])
    .to_string()
}

fn hash(previous: &str, content: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(previous.as_bytes());
    digest.update(b"\n");
    digest.update(content.as_bytes());
    digest
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Appends an event, inside the caller's transaction.
///
/// Sequence numbers: on PostgreSQL they come from the database sequence
/// `audit_event_sequence`, shared by every organisation (increasing, with
/// gaps), so that writers of different projects never wait for each other
/// here; on SQLite, whose writers are serialised anyway, from the
/// organisation's head. Chained events (signatures, waivers, decisions)
/// take the organisation's head row for the rest of the transaction: the
/// chain is a total order.
pub async fn record(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    actor: &Actor,
    new: NewEvent,
) -> Result<()> {
    let postgres = is_postgres(conn);
    let current = if new.chained || !postgres {
        let mut query = head::Entity::find_by_id(organisation_id);
        if postgres {
            query = query.lock_exclusive();
        }
        query.one(conn).await.map_err(db_error)?
    } else {
        None
    };
    let (last_sequence, last_chain, last_hash) =
        current.as_ref().map_or((0, 0, String::new()), |h| {
            (h.last_sequence, h.last_chain_sequence, h.last_hash.clone())
        });
    if postgres && !new.chained {
        // One statement: the sequence number is drawn by the INSERT itself.
        use event::Column as C;
        use sea_orm::sea_query::{Expr, Query};
        let stmt = Query::insert()
            .into_table(event::Entity)
            .columns([
                C::Id,
                C::OrganisationId,
                C::Sequence,
                C::ProjectId,
                C::ActorPersonId,
                C::ActorSubject,
                C::Action,
                C::ResourceType,
                C::ResourceId,
                C::BeforeJson,
                C::AfterJson,
                C::Time,
                C::ChainSequence,
                C::PreviousHash,
                C::Hash,
            ])
            .values([
                Uuid::now_v7().into(),
                organisation_id.into(),
                Expr::cust("nextval('audit_event_sequence')"),
                new.project_id.into(),
                actor.person_id.into(),
                actor.subject.clone().into(),
                new.action.into(),
                new.resource_type.into(),
                new.resource_id.into(),
                new.before.map(|v| v.to_string()).unwrap_or_default().into(),
                new.after.to_string().into(),
                now_micros().into(),
                0_i64.into(),
                String::new().into(),
                String::new().into(),
            ])
            .map_err(|e| jalon_core::Error::Internal(format!("audit insert: {e}")))?
            .to_owned();
        conn.execute(&stmt).await.map_err(db_error)?;
        return Ok(());
    }
    let sequence = if postgres {
        let row = conn
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT nextval('audit_event_sequence') AS n",
            ))
            .await
            .map_err(db_error)?
            .ok_or_else(|| jalon_core::Error::Internal("nextval returned no row".into()))?;
        row.try_get::<i64>("", "n").map_err(db_error)?
    } else {
        last_sequence + 1
    };
    let mut model = event::Model {
        id: Uuid::now_v7(),
        organisation_id,
        sequence,
        project_id: new.project_id,
        actor_person_id: actor.person_id,
        actor_subject: actor.subject.clone(),
        action: new.action.to_owned(),
        resource_type: new.resource_type.to_owned(),
        resource_id: new.resource_id,
        before_json: new.before.map(|v| v.to_string()).unwrap_or_default(),
        after_json: new.after.to_string(),
        time: now_micros(),
        chain_sequence: 0,
        previous_hash: String::new(),
        hash: String::new(),
    };
    let chained = new.chained;
    let (chain, chain_hash) = if chained {
        model.chain_sequence = last_chain + 1;
        model.previous_hash = last_hash.clone();
        model.hash = hash(&last_hash, &canonical(&model));
        (model.chain_sequence, model.hash.clone())
    } else {
        (last_chain, last_hash)
    };
    event::ActiveModel::from(model)
        .insert(conn)
        .await
        .map_err(db_error)?;
    let next = head::ActiveModel {
        organisation_id: Set(organisation_id),
        last_sequence: Set(sequence.max(last_sequence)),
        last_chain_sequence: Set(chain),
        last_hash: Set(chain_hash),
    };
    if current.is_some() {
        next.update(conn).await.map_err(db_error)?;
    } else {
        next.insert(conn).await.map_err(db_error)?;
    }
    Ok(())
}

/// Filters of `ListAuditEvents`.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub project_id: Option<Uuid>,
    pub actor_person_id: Option<Uuid>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// Only this action (e.g. `gate.decided`).
    pub action: Option<String>,
    /// Only this resource type (e.g. `gate_review`).
    pub resource_type: Option<String>,
    /// Newest first instead of oldest first.
    pub newest_first: bool,
}

impl EventFilter {
    pub fn key(&self) -> String {
        format!("{self:?}")
    }
}

/// Lists events in sequence order (or the reverse).
pub async fn list(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    filter: &EventFilter,
    page_size: u32,
    after: Option<i64>,
) -> Result<Page<Event>> {
    use event::Column as C;
    let mut query = event::Entity::find().filter(C::OrganisationId.eq(organisation_id));
    if let Some(p) = filter.project_id {
        query = query.filter(C::ProjectId.eq(p));
    }
    if let Some(p) = filter.actor_person_id {
        query = query.filter(C::ActorPersonId.eq(p));
    }
    if let Some(t) = filter.start {
        query = query.filter(C::Time.gte(t));
    }
    if let Some(t) = filter.end {
        query = query.filter(C::Time.lt(t));
    }
    if let Some(action) = &filter.action {
        query = query.filter(C::Action.eq(action.as_str()));
    }
    if let Some(resource_type) = &filter.resource_type {
        query = query.filter(C::ResourceType.eq(resource_type.as_str()));
    }
    if let Some(after) = after {
        query = query.filter(if filter.newest_first {
            C::Sequence.lt(after)
        } else {
            C::Sequence.gt(after)
        });
    }
    let order = if filter.newest_first {
        sea_orm::Order::Desc
    } else {
        sea_orm::Order::Asc
    };
    let rows = query
        .order_by(C::Sequence, order)
        .limit(u64::from(page_size) + 1)
        .all(db)
        .await
        .map_err(db_error)?;
    Ok(paginate(rows, page_size, &filter.key(), |e| e.sequence))
}

/// Gives events of an organisation new times (the demo's history, dated
/// after the fact) and rewrites its log so that it stays a log: events in
/// the order of their times (ties in their former order), numbered with
/// the same set of sequence numbers, the chain renumbered and every hash
/// recomputed, the head moved to the new last entry. Runs in the caller's
/// transaction; never used on data a user wrote.
pub(crate) async fn restamp(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    times: &std::collections::HashMap<Uuid, DateTime<Utc>>,
) -> Result<()> {
    let mut events = event::Entity::find()
        .filter(event::Column::OrganisationId.eq(organisation_id))
        .order_by_asc(event::Column::Sequence)
        .all(conn)
        .await
        .map_err(db_error)?;
    let sequences: Vec<i64> = events.iter().map(|e| e.sequence).collect();
    for e in &mut events {
        if let Some(t) = times.get(&e.id) {
            e.time = DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(*t);
        }
    }
    // Stable: ties keep their sequence order.
    events.sort_by_key(|e| e.time);
    let (mut chain, mut previous) = (0_i64, String::new());
    for (e, sequence) in events.iter_mut().zip(sequences) {
        e.sequence = sequence;
        if e.chain_sequence > 0 {
            chain += 1;
            e.chain_sequence = chain;
            e.previous_hash = previous.clone();
            e.hash = hash(&previous, &canonical(e));
            previous = e.hash.clone();
        }
    }
    event::Entity::delete_many()
        .filter(event::Column::OrganisationId.eq(organisation_id))
        .exec(conn)
        .await
        .map_err(db_error)?;
    let last_sequence = events.last().map_or(0, |e| e.sequence);
    for chunk in events.chunks(crate::CHUNK / 16) {
        event::Entity::insert_many(chunk.iter().cloned().map(event::ActiveModel::from))
            .exec(conn)
            .await
            .map_err(db_error)?;
    }
    head::Entity::update_many()
        .col_expr(
            head::Column::LastSequence,
            sea_orm::sea_query::Expr::value(last_sequence),
        )
        .col_expr(
            head::Column::LastChainSequence,
            sea_orm::sea_query::Expr::value(chain),
        )
        .col_expr(
            head::Column::LastHash,
            sea_orm::sea_query::Expr::value(previous),
        )
        .filter(head::Column::OrganisationId.eq(organisation_id))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// What a walk of the chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub checked: i64,
    /// The first broken event: chain position, id, what is wrong.
    pub broken: Option<(i64, Uuid, String)>,
}

/// Walks the organisation's chain from the start.
pub async fn verify(db: &DatabaseConnection, organisation_id: Uuid) -> Result<Verification> {
    use event::Column as C;
    let mut previous = String::new();
    let mut expected = 1_i64;
    let mut checked = 0_i64;
    loop {
        let batch = event::Entity::find()
            .filter(C::OrganisationId.eq(organisation_id))
            .filter(C::ChainSequence.gte(expected))
            .order_by_asc(C::ChainSequence)
            .limit(1000)
            .all(db)
            .await
            .map_err(db_error)?;
        if batch.is_empty() {
            break;
        }
        for e in batch {
            checked += 1;
            let problem = if e.chain_sequence != expected {
                Some(format!(
                    "chain position {} found where {expected} was expected (an entry is missing)",
                    e.chain_sequence
                ))
            } else if e.previous_hash != previous {
                Some("its previous_hash does not match the previous entry's hash".to_owned())
            } else if hash(&previous, &canonical(&e)) != e.hash {
                Some("its content does not match its hash (the entry was altered)".to_owned())
            } else {
                None
            };
            if let Some(reason) = problem {
                return Ok(Verification {
                    checked,
                    broken: Some((expected, e.id, reason)),
                });
            }
            previous = e.hash;
            expected += 1;
        }
    }
    // The head must agree with the last entry: a deleted tail shows here.
    let head = head::Entity::find_by_id(organisation_id)
        .one(db)
        .await
        .map_err(db_error)?;
    if let Some(h) = head
        && h.last_chain_sequence != expected - 1
    {
        return Ok(Verification {
            checked,
            broken: Some((
                expected,
                Uuid::nil(),
                format!(
                    "the log's head says {} chained entries, {} were found (entries were removed)",
                    h.last_chain_sequence,
                    expected - 1
                ),
            )),
        });
    }
    Ok(Verification {
        checked,
        broken: None,
    })
}
