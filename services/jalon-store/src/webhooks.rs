//! Webhooks: the endpoints an organisation's ADMIN registers, and the
//! deliveries of its outbox's events to them.
//!
//! Design (see the README, "Webhooks"):
//!
//! - **Fan-out.** Each endpoint keeps a `cursor`: the last position of the
//!   organisation's outbox already turned into deliveries. The delivery
//!   worker of any replica reads the outbox after it, writes one delivery per
//!   event of the endpoint's types (carrying the CloudEvents body, built once
//!   so that every attempt sends the same bytes) and moves the cursor, in one
//!   transaction under the endpoint's row lock (`FOR UPDATE SKIP LOCKED` on
//!   PostgreSQL: another replica skips the endpoint rather than wait).
//!   Positions are given in commit order, so the cursor never skips an
//!   event; a unique (endpoint, event) index makes a repeated fan-out
//!   harmless.
//! - **Claim.** A replica claims due deliveries by giving them a lease (a
//!   token and an expiry) in a short transaction (`FOR UPDATE SKIP LOCKED`
//!   on PostgreSQL; SQLite's write lock on one file). Only the lease holder's
//!   result is recorded (the token is checked); a replica that dies leaves a
//!   lease that expires, and the delivery is claimed again: at least once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jalon_core::{
    Error, Result,
    authz::Action,
    organisation::etag_matches,
    webhook::{DeliveryState, EndpointUrl},
};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
    sea_query::{Expr, LockBehavior, LockType, Query},
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    audit::{Actor, NewEvent},
    begin_write,
    change::{Caller, Change},
    commit,
    entity::{
        event_head as head, outbox_event as outbox, webhook_attempt as attempt_row,
        webhook_delivery as delivery, webhook_endpoint as endpoint,
    },
    error::db_error,
    events,
    idempotency::{Claim, IdempotencyKey, claim},
    is_postgres,
    page::{Page, paginate},
    retry_idempotent_race,
};

/// An endpoint, without its secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub url: String,
    pub description: String,
    /// Empty for every type.
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub disable_time: Option<DateTime<Utc>>,
    pub previous_secret_expire_time: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub version: i64,
}

/// An endpoint to register (validated at the edge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEndpoint {
    pub url: EndpointUrl,
    pub description: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
}

/// The fields an update changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointPatch {
    pub url: Option<EndpointUrl>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// A delivery, as its log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_position: i64,
    pub event_type: String,
    pub state: DeliveryState,
    pub attempts: i32,
    pub last_attempt_time: Option<DateTime<Utc>>,
    pub next_attempt_time: DateTime<Utc>,
    pub last_status_code: Option<i32>,
    pub last_latency_ms: Option<i64>,
    pub last_error: Option<String>,
    pub create_time: DateTime<Utc>,
    /// Its latest attempts, newest first (at most [`ATTEMPTS_SHOWN`]).
    pub recent_attempts: Vec<PastAttempt>,
}

/// One attempt of a delivery, as its log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastAttempt {
    /// 1 for the delivery's first attempt (redeliveries continue the count).
    pub number: i32,
    pub start_time: DateTime<Utc>,
    /// The HTTP status, when the endpoint answered.
    pub status_code: Option<i32>,
    pub latency_ms: i64,
    /// Why it failed (none on success).
    pub error: Option<String>,
}

/// The attempts kept per delivery: the oldest beyond are deleted as new ones
/// are recorded (the retry schedule makes about 15 over its three days, so
/// only manual redeliveries reach it).
pub const ATTEMPTS_KEPT: i32 = 100;

/// The attempts a delivery log shows per delivery, newest first.
pub const ATTEMPTS_SHOWN: usize = 20;

/// The latest attempts of deliveries, newest first, at most
/// [`ATTEMPTS_SHOWN`] each.
async fn recent_attempts(
    conn: &impl ConnectionTrait,
    ids: Vec<Uuid>,
) -> Result<std::collections::HashMap<Uuid, Vec<PastAttempt>>> {
    let mut out: std::collections::HashMap<Uuid, Vec<PastAttempt>> =
        std::collections::HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let rows = attempt_row::Entity::find()
        .filter(attempt_row::Column::DeliveryId.is_in(ids))
        .order_by_asc(attempt_row::Column::DeliveryId)
        .order_by_desc(attempt_row::Column::Number)
        .all(conn)
        .await
        .map_err(db_error)?;
    for r in rows {
        let list = out.entry(r.delivery_id).or_default();
        if list.len() < ATTEMPTS_SHOWN {
            list.push(PastAttempt {
                number: r.number,
                start_time: r.start_time,
                status_code: r.status_code,
                latency_ms: r.latency_ms,
                error: r.error,
            });
        }
    }
    Ok(out)
}

/// Deliveries with their latest attempts.
async fn with_attempts(
    conn: &impl ConnectionTrait,
    mut deliveries: Vec<Delivery>,
) -> Result<Vec<Delivery>> {
    let mut attempts = recent_attempts(conn, deliveries.iter().map(|d| d.id).collect()).await?;
    for d in &mut deliveries {
        d.recent_attempts = attempts.remove(&d.id).unwrap_or_default();
    }
    Ok(deliveries)
}

fn parse_types(raw: &str, id: Uuid) -> Result<Vec<String>> {
    serde_json::from_str(raw).map_err(|e| {
        Error::Internal(format!(
            "webhook endpoint {id}: stored event types {raw:?}: {e}"
        ))
    })
}

fn from_model(m: endpoint::Model) -> Result<Endpoint> {
    Ok(Endpoint {
        event_types: parse_types(&m.event_types, m.id)?,
        id: m.id,
        organisation_id: m.organisation_id,
        url: m.url,
        description: m.description,
        enabled: m.enabled,
        disabled_reason: m.disabled_reason,
        disable_time: m.disable_time,
        previous_secret_expire_time: m.previous_secret_expire_time,
        failing_since: m.failing_since,
        create_time: m.create_time,
        update_time: m.update_time,
        version: m.version,
    })
}

fn delivery_from_model(m: delivery::Model) -> Result<Delivery> {
    let state = m
        .state
        .parse()
        .map_err(|e| Error::Internal(format!("webhook delivery {}: {e}", m.id)))?;
    Ok(Delivery {
        id: m.id,
        endpoint_id: m.endpoint_id,
        event_id: m.event_id,
        event_position: m.event_position,
        event_type: m.event_type,
        state,
        attempts: m.attempts,
        last_attempt_time: m.last_attempt_time,
        next_attempt_time: m.next_attempt_time,
        last_status_code: m.last_status_code,
        last_latency_ms: m.last_latency_ms,
        last_error: m.last_error,
        create_time: m.create_time,
        recent_attempts: Vec::new(),
    })
}

/// An endpoint as the audit log shows it (never its secrets).
fn audit_view(e: &endpoint::Model) -> Value {
    json!({
        "url": e.url,
        "description": e.description,
        "event_types": serde_json::from_str::<Value>(&e.event_types).unwrap_or(Value::Null),
        "enabled": e.enabled,
    })
}

fn endpoint_event(action: &'static str, id: Uuid, before: Option<Value>, after: Value) -> NewEvent {
    NewEvent {
        project_id: None,
        action,
        resource_type: "webhook_endpoint",
        resource_id: id.to_string(),
        before,
        after,
        chained: false,
    }
}

async fn find_model(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    id: Uuid,
) -> Result<endpoint::Model> {
    endpoint::Entity::find_by_id(id)
        .filter(endpoint::Column::OrganisationId.eq(organisation_id))
        .one(conn)
        .await
        .map_err(db_error)?
        .ok_or(Error::NotFound {
            resource: "webhook endpoint",
        })
}

/// Registers an endpoint with its first `secret`; deliveries start after
/// the organisation's current position. Returns the endpoint and its
/// current secret (a retry of the same `request_id` returns the first
/// endpoint).
#[tracing::instrument(skip_all, fields(organisation_id = %organisation_id))]
pub async fn create(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    caller: &Caller,
    new: &NewEndpoint,
    secret: &str,
    key: Option<&IdempotencyKey>,
) -> Result<(Endpoint, String)> {
    retry_idempotent_race(|| try_create(db, organisation_id, caller, new, secret, key)).await
}

async fn try_create(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    caller: &Caller,
    new: &NewEndpoint,
    secret: &str,
    key: Option<&IdempotencyKey>,
) -> Result<(Endpoint, String)> {
    let mut change =
        Change::begin(db, organisation_id, caller, Action::CreateWebhookEndpoint).await?;
    let id = Uuid::now_v7();
    if let Claim::Replay(existing) = claim(change.conn(), key, id).await? {
        let model = find_model(change.conn(), organisation_id, existing).await?;
        let secret = model.secret.clone();
        return Ok((from_model(model)?, secret));
    }
    let (cursor, _) = events::head(change.conn(), organisation_id).await?;
    let now = Utc::now();
    let model = endpoint::ActiveModel {
        id: Set(id),
        organisation_id: Set(organisation_id),
        url: Set(new.url.as_str().to_owned()),
        description: Set(new.description.clone()),
        event_types: Set(json!(new.event_types).to_string()),
        enabled: Set(new.enabled),
        disabled_reason: Set(None),
        disable_time: Set((!new.enabled).then_some(now)),
        secret: Set(secret.to_owned()),
        previous_secret: Set(None),
        previous_secret_expire_time: Set(None),
        cursor: Set(cursor),
        failing_since: Set(None),
        create_time: Set(now),
        update_time: Set(now),
        version: Set(1),
    }
    .insert(change.conn())
    .await
    .map_err(db_error)?;
    change.event(endpoint_event(
        "webhook.created",
        id,
        None,
        audit_view(&model),
    ));
    change.commit().await?;
    Ok((from_model(model)?, secret.to_owned()))
}

/// An endpoint of the organisation.
pub async fn get(conn: &impl ConnectionTrait, organisation_id: Uuid, id: Uuid) -> Result<Endpoint> {
    from_model(find_model(conn, organisation_id, id).await?)
}

/// The organisation's endpoints, oldest first.
pub async fn list(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    size: u32,
    after: Option<Uuid>,
) -> Result<Page<Endpoint>> {
    let mut query = endpoint::Entity::find()
        .filter(endpoint::Column::OrganisationId.eq(organisation_id))
        .order_by_asc(endpoint::Column::Id)
        .limit(u64::from(size) + 1);
    if let Some(after) = after {
        query = query.filter(endpoint::Column::Id.gt(after));
    }
    let rows = query.all(conn).await.map_err(db_error)?;
    let rows = rows
        .into_iter()
        .map(from_model)
        .collect::<Result<Vec<_>>>()?;
    Ok(paginate(rows, size, "", |e| e.id))
}

/// Applies a patch (compare-and-swap on the version). Enabling clears the
/// reason of a disabling and the failure streak, and moves the cursor to the
/// current position: what was missed meanwhile is redelivered on demand.
#[tracing::instrument(skip(db, caller, patch))]
pub async fn update(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    id: Uuid,
    etag: &str,
    caller: &Caller,
    patch: &EndpointPatch,
) -> Result<Endpoint> {
    let mut change =
        Change::begin(db, organisation_id, caller, Action::UpdateWebhookEndpoint).await?;
    let current = lock_endpoint(change.conn(), organisation_id, id).await?;
    if !etag_matches(etag, current.version) {
        return Err(Error::stale_etag("webhook endpoint"));
    }
    let now = Utc::now();
    let mut model = endpoint::ActiveModel {
        update_time: Set(now),
        version: Set(current.version + 1),
        ..Default::default()
    };
    if let Some(url) = &patch.url {
        model.url = Set(url.as_str().to_owned());
    }
    if let Some(description) = &patch.description {
        model.description = Set(description.clone());
    }
    if let Some(types) = &patch.event_types {
        model.event_types = Set(json!(types).to_string());
    }
    match patch.enabled {
        Some(true) if !current.enabled => {
            let (position, _) = events::head(change.conn(), organisation_id).await?;
            model.enabled = Set(true);
            model.disabled_reason = Set(None);
            model.disable_time = Set(None);
            model.failing_since = Set(None);
            model.cursor = Set(position.max(current.cursor));
            if current.disabled_reason.is_some() {
                change.notice(events::endpoint_alert_notice("alert.cleared", id));
            }
        }
        Some(false) if current.enabled => {
            model.enabled = Set(false);
            model.disable_time = Set(Some(now));
        }
        _ => {}
    }
    let updated = swap(change.conn(), id, current.version, model).await?;
    let (before, after) = crate::audit::diff(audit_view(&current), audit_view(&updated));
    change.event(endpoint_event("webhook.updated", id, Some(before), after));
    change.commit().await?;
    from_model(updated)
}

/// Replaces the secret with `secret`; the previous one keeps signing until
/// `grace` has passed.
#[tracing::instrument(skip(db, caller, secret))]
pub async fn rotate_secret(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    id: Uuid,
    etag: &str,
    caller: &Caller,
    secret: &str,
    grace: Duration,
) -> Result<Endpoint> {
    let mut change =
        Change::begin(db, organisation_id, caller, Action::RotateWebhookSecret).await?;
    let current = lock_endpoint(change.conn(), organisation_id, id).await?;
    if !etag_matches(etag, current.version) {
        return Err(Error::stale_etag("webhook endpoint"));
    }
    let now = Utc::now();
    let expire = now + chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::days(1));
    let model = endpoint::ActiveModel {
        secret: Set(secret.to_owned()),
        previous_secret: Set(Some(current.secret.clone())),
        previous_secret_expire_time: Set(Some(expire)),
        update_time: Set(now),
        version: Set(current.version + 1),
        ..Default::default()
    };
    let updated = swap(change.conn(), id, current.version, model).await?;
    change.event(endpoint_event(
        "webhook.secret_rotated",
        id,
        None,
        json!({"previous_secret_expire_time": expire}),
    ));
    change.commit().await?;
    from_model(updated)
}

/// Deletes an endpoint and its deliveries.
#[tracing::instrument(skip(db, caller))]
pub async fn delete(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    id: Uuid,
    etag: &str,
    caller: &Caller,
) -> Result<()> {
    let mut change =
        Change::begin(db, organisation_id, caller, Action::DeleteWebhookEndpoint).await?;
    let current = lock_endpoint(change.conn(), organisation_id, id).await?;
    if !etag_matches(etag, current.version) {
        return Err(Error::stale_etag("webhook endpoint"));
    }
    attempt_row::Entity::delete_many()
        .filter(
            attempt_row::Column::DeliveryId.in_subquery(
                Query::select()
                    .column(delivery::Column::Id)
                    .from(delivery::Entity)
                    .and_where(delivery::Column::EndpointId.eq(id))
                    .to_owned(),
            ),
        )
        .exec(change.conn())
        .await
        .map_err(db_error)?;
    delivery::Entity::delete_many()
        .filter(delivery::Column::EndpointId.eq(id))
        .exec(change.conn())
        .await
        .map_err(db_error)?;
    endpoint::Entity::delete_by_id(id)
        .exec(change.conn())
        .await
        .map_err(db_error)?;
    if !current.enabled && current.disabled_reason.is_some() {
        change.notice(events::endpoint_alert_notice("alert.cleared", id));
    }
    change.event(endpoint_event(
        "webhook.deleted",
        id,
        Some(audit_view(&current)),
        json!({}),
    ));
    change.commit().await
}

/// Reads an endpoint of the organisation under its row lock (PostgreSQL;
/// SQLite's write transaction excludes the others).
async fn lock_endpoint(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    id: Uuid,
) -> Result<endpoint::Model> {
    endpoint::Entity::find_by_id(id)
        .filter(endpoint::Column::OrganisationId.eq(organisation_id))
        .lock(LockType::Update)
        .one(conn)
        .await
        .map_err(db_error)?
        .ok_or(Error::NotFound {
            resource: "webhook endpoint",
        })
}

async fn swap(
    conn: &impl ConnectionTrait,
    id: Uuid,
    version: i64,
    model: endpoint::ActiveModel,
) -> Result<endpoint::Model> {
    let result = endpoint::Entity::update_many()
        .set(model)
        .filter(endpoint::Column::Id.eq(id))
        .filter(endpoint::Column::Version.eq(version))
        .exec(conn)
        .await
        .map_err(db_error)?;
    if result.rows_affected == 0 {
        return Err(Error::stale_etag("webhook endpoint"));
    }
    endpoint::Entity::find_by_id(id)
        .one(conn)
        .await
        .map_err(db_error)?
        .ok_or(Error::NotFound {
            resource: "webhook endpoint",
        })
}

/// The filter of a delivery log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub state: Option<DeliveryState>,
}

impl DeliveryFilter {
    /// The filter's fingerprint for page tokens.
    pub fn key(&self, endpoint_id: Uuid) -> String {
        format!(
            "endpoint={endpoint_id};state={}",
            self.state.map_or("", DeliveryState::as_str)
        )
    }
}

/// The delivery log of an endpoint of the organisation, newest first.
pub async fn list_deliveries(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    endpoint_id: Uuid,
    filter: DeliveryFilter,
    size: u32,
    after: Option<Uuid>,
) -> Result<Page<Delivery>> {
    find_model(conn, organisation_id, endpoint_id).await?;
    let mut query = delivery::Entity::find()
        .filter(delivery::Column::EndpointId.eq(endpoint_id))
        .filter(delivery::Column::OrganisationId.eq(organisation_id))
        .order_by_desc(delivery::Column::Id)
        .limit(u64::from(size) + 1);
    if let Some(state) = filter.state {
        query = query.filter(delivery::Column::State.eq(state.as_str()));
    }
    if let Some(after) = after {
        query = query.filter(delivery::Column::Id.lt(after));
    }
    let rows = query
        .all(conn)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(delivery_from_model)
        .collect::<Result<Vec<_>>>()?;
    let rows = with_attempts(conn, rows).await?;
    Ok(paginate(rows, size, &filter.key(endpoint_id), |d| d.id))
}

/// Makes one event of the organisation due now for the endpoint, whatever
/// happened to its delivery before (a new delivery when there was none),
/// with a fresh retry window.
#[tracing::instrument(skip(db, caller, source))]
pub async fn redeliver(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    endpoint_id: Uuid,
    event_id: Uuid,
    caller: &Caller,
    window: Duration,
    source: &str,
) -> Result<Delivery> {
    let mut change =
        Change::begin(db, organisation_id, caller, Action::RedeliverWebhookEvent).await?;
    lock_endpoint(change.conn(), organisation_id, endpoint_id).await?;
    let event = outbox::Entity::find()
        .filter(outbox::Column::OrganisationId.eq(organisation_id))
        .filter(outbox::Column::Id.eq(event_id))
        .one(change.conn())
        .await
        .map_err(db_error)?
        .ok_or(Error::NotFound { resource: "event" })?;
    let now = Utc::now();
    let give_up = now + chrono::Duration::from_std(window).unwrap_or(chrono::Duration::days(3));
    let existing = delivery::Entity::find()
        .filter(delivery::Column::EndpointId.eq(endpoint_id))
        .filter(delivery::Column::EventId.eq(event_id))
        .one(change.conn())
        .await
        .map_err(db_error)?;
    let model = match existing {
        Some(found) => {
            delivery::Entity::update_many()
                .set(delivery::ActiveModel {
                    state: Set(DeliveryState::Pending.as_str().to_owned()),
                    next_attempt_time: Set(now),
                    give_up_time: Set(give_up),
                    lease_token: Set(None),
                    lease_expire_time: Set(None),
                    update_time: Set(now),
                    ..Default::default()
                })
                .filter(delivery::Column::Id.eq(found.id))
                .exec(change.conn())
                .await
                .map_err(db_error)?;
            delivery::Entity::find_by_id(found.id)
                .one(change.conn())
                .await
                .map_err(db_error)?
                .ok_or_else(|| Error::Internal("a redelivered delivery vanished".into()))?
        }
        None => new_delivery(organisation_id, endpoint_id, &event, source, now, give_up)
            .insert(change.conn())
            .await
            .map_err(db_error)?,
    };
    change.event(endpoint_event(
        "webhook.redelivery_requested",
        endpoint_id,
        None,
        json!({"event_id": event_id}),
    ));
    let delivery = delivery_from_model(model)?;
    let delivery = with_attempts(change.conn(), vec![delivery])
        .await?
        .pop()
        .ok_or_else(|| Error::Internal("a redelivered delivery vanished".into()))?;
    change.commit().await?;
    Ok(delivery)
}

/// The CloudEvents 1.0 structured JSON body of an outbox event: `source`
/// is `<source>/organisations/<id>`; the event's position and project ride
/// as the extension attributes `jalonposition` and `jalonproject`.
pub fn cloud_event(event: &events::Event, source: &str) -> String {
    let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
    let mut body = json!({
        "specversion": "1.0",
        "id": event.id.to_string(),
        "source": format!("{source}/organisations/{}", event.organisation_id),
        "type": event.kind,
        "subject": event.subject,
        "time": event.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "datacontenttype": "application/json",
        "jalonposition": event.position,
        "data": data,
    });
    if let (Some(project), Value::Object(fields)) = (event.project_id, &mut body) {
        fields.insert("jalonproject".into(), Value::String(project.to_string()));
    }
    body.to_string()
}

fn new_delivery(
    organisation_id: Uuid,
    endpoint_id: Uuid,
    event: &events::Event,
    source: &str,
    now: DateTime<Utc>,
    give_up: DateTime<Utc>,
) -> delivery::ActiveModel {
    delivery::ActiveModel {
        id: Set(Uuid::now_v7()),
        organisation_id: Set(organisation_id),
        endpoint_id: Set(endpoint_id),
        event_id: Set(event.id),
        event_position: Set(event.position),
        event_type: Set(event.kind.clone()),
        body: Set(cloud_event(event, source)),
        state: Set(DeliveryState::Pending.as_str().to_owned()),
        attempts: Set(0),
        next_attempt_time: Set(now),
        give_up_time: Set(give_up),
        lease_token: Set(None),
        lease_expire_time: Set(None),
        last_attempt_time: Set(None),
        last_status_code: Set(None),
        last_latency_ms: Set(None),
        last_error: Set(None),
        create_time: Set(now),
        update_time: Set(now),
    }
}

/// Events read from the outbox per endpoint and transaction.
const FAN_OUT_BATCH: u64 = 200;

/// Turns the new outbox events of every enabled endpoint into deliveries
/// (see the module's doc). Returns how many deliveries were written.
pub async fn fan_out(db: &DatabaseConnection, window: Duration, source: &str) -> Result<u64> {
    let endpoints: Vec<(Uuid, Uuid, i64)> = endpoint::Entity::find()
        .select_only()
        .column(endpoint::Column::Id)
        .column(endpoint::Column::OrganisationId)
        .column(endpoint::Column::Cursor)
        .filter(endpoint::Column::Enabled.eq(true))
        .into_tuple()
        .all(db)
        .await
        .map_err(db_error)?;
    if endpoints.is_empty() {
        return Ok(0);
    }
    let mut orgs: Vec<Uuid> = endpoints.iter().map(|(_, org, _)| *org).collect();
    orgs.sort();
    orgs.dedup();
    let heads: std::collections::HashMap<Uuid, i64> = head::Entity::find()
        .select_only()
        .column(head::Column::OrganisationId)
        .column(head::Column::Position)
        .filter(head::Column::OrganisationId.is_in(orgs))
        .into_tuple::<(Uuid, i64)>()
        .all(db)
        .await
        .map_err(db_error)?
        .into_iter()
        .collect();
    let mut written = 0;
    for (id, organisation_id, cursor) in endpoints {
        if heads.get(&organisation_id).is_some_and(|h| *h > cursor) {
            written += fan_out_endpoint(db, id, window, source).await?;
        }
    }
    Ok(written)
}

async fn fan_out_endpoint(
    db: &DatabaseConnection,
    id: Uuid,
    window: Duration,
    source: &str,
) -> Result<u64> {
    let mut written = 0;
    loop {
        let txn = begin_write(db).await?;
        // Another replica fanning out this endpoint holds the lock: leave
        // it to them.
        let Some(found) = endpoint::Entity::find_by_id(id)
            .filter(endpoint::Column::Enabled.eq(true))
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .one(&txn)
            .await
            .map_err(db_error)?
        else {
            return Ok(written);
        };
        let batch = events::read(&txn, found.organisation_id, found.cursor, FAN_OUT_BATCH).await?;
        let Some(last) = batch.last().map(|e| e.position) else {
            return Ok(written);
        };
        let types = parse_types(&found.event_types, id)?;
        let now = Utc::now();
        let give_up = now + chrono::Duration::from_std(window).unwrap_or(chrono::Duration::days(3));
        let rows: Vec<delivery::ActiveModel> = batch
            .iter()
            .filter(|e| types.is_empty() || types.contains(&e.kind))
            .map(|e| new_delivery(found.organisation_id, id, e, source, now, give_up))
            .collect();
        let count = rows.len() as u64;
        if !rows.is_empty() {
            delivery::Entity::insert_many(rows)
                .on_conflict_do_nothing_on([
                    delivery::Column::EndpointId,
                    delivery::Column::EventId,
                ])
                .exec(&txn)
                .await
                .map_err(db_error)?;
        }
        endpoint::Entity::update_many()
            .col_expr(endpoint::Column::Cursor, Expr::value(last))
            .filter(endpoint::Column::Id.eq(id))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        commit(txn).await?;
        written += count;
        if (batch.len() as u64) < FAN_OUT_BATCH {
            return Ok(written);
        }
    }
}

/// A delivery claimed by this replica: what to send, where, signed with
/// which secrets.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub body: String,
    pub attempts: i32,
    pub give_up_time: DateTime<Utc>,
    pub lease_token: Uuid,
    pub url: String,
    /// The current secret first, then the previous one during its grace.
    pub secrets: Vec<String>,
}

/// Claims up to `limit` due deliveries of enabled endpoints for `lease`.
pub async fn claim_due(
    db: &DatabaseConnection,
    limit: u64,
    lease: Duration,
) -> Result<Vec<Claimed>> {
    let now = Utc::now();
    let txn = begin_write(db).await?;
    let enabled = Query::select()
        .column(endpoint::Column::Id)
        .from(endpoint::Entity)
        .and_where(endpoint::Column::Enabled.eq(true))
        .to_owned();
    let mut query = delivery::Entity::find()
        .filter(delivery::Column::State.eq(DeliveryState::Pending.as_str()))
        .filter(delivery::Column::NextAttemptTime.lte(now))
        .filter(
            Condition::any()
                .add(delivery::Column::LeaseExpireTime.is_null())
                .add(delivery::Column::LeaseExpireTime.lt(now)),
        )
        .filter(delivery::Column::EndpointId.in_subquery(enabled))
        .order_by_asc(delivery::Column::NextAttemptTime)
        .limit(limit);
    if is_postgres(&txn) {
        query = query.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let due = query.all(&txn).await.map_err(db_error)?;
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let token = Uuid::now_v7();
    let expire = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
    delivery::Entity::update_many()
        .col_expr(delivery::Column::LeaseToken, Expr::value(token))
        .col_expr(delivery::Column::LeaseExpireTime, Expr::value(expire))
        .filter(delivery::Column::Id.is_in(due.iter().map(|d| d.id)))
        .exec(&txn)
        .await
        .map_err(db_error)?;
    let mut endpoint_ids: Vec<Uuid> = due.iter().map(|d| d.endpoint_id).collect();
    endpoint_ids.sort();
    endpoint_ids.dedup();
    let endpoints: std::collections::HashMap<Uuid, endpoint::Model> = endpoint::Entity::find()
        .filter(endpoint::Column::Id.is_in(endpoint_ids))
        .all(&txn)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(|e| (e.id, e))
        .collect();
    commit(txn).await?;
    Ok(due
        .into_iter()
        .filter_map(|d| {
            let e = endpoints.get(&d.endpoint_id)?;
            let mut secrets = vec![e.secret.clone()];
            if let (Some(previous), Some(until)) =
                (&e.previous_secret, e.previous_secret_expire_time)
                && until > now
            {
                secrets.push(previous.clone());
            }
            Some(Claimed {
                id: d.id,
                organisation_id: d.organisation_id,
                endpoint_id: d.endpoint_id,
                event_id: d.event_id,
                event_type: d.event_type,
                body: d.body,
                attempts: d.attempts,
                give_up_time: d.give_up_time,
                lease_token: token,
                url: e.url.clone(),
                secrets,
            })
        })
        .collect())
}

/// The actor of the delivery worker's events (an endpoint it disables).
pub const WORKER_SUBJECT: &str = "jalon:webhook-worker";

/// An organisation-level alert: an endpoint the delivery worker disabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisabledAlert {
    pub endpoint_id: Uuid,
    pub since: DateTime<Utc>,
    /// For a human: the endpoint's host and why.
    pub reason: String,
}

/// The endpoints of the organisation disabled by the delivery worker (not
/// by an ADMIN) and not re-enabled since, oldest id first: the
/// organisation's `WEBHOOK_DISABLED` alerts.
pub async fn disabled_alerts(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
) -> Result<Vec<DisabledAlert>> {
    let rows = endpoint::Entity::find()
        .filter(endpoint::Column::OrganisationId.eq(organisation_id))
        .filter(endpoint::Column::Enabled.eq(false))
        .filter(endpoint::Column::DisabledReason.is_not_null())
        .order_by_asc(endpoint::Column::Id)
        .all(conn)
        .await
        .map_err(db_error)?;
    Ok(rows
        .into_iter()
        .map(|m| DisabledAlert {
            endpoint_id: m.id,
            since: m.disable_time.unwrap_or(m.update_time),
            reason: jalon_core::webhook::disabled_alert_reason(
                &m.url,
                m.disabled_reason.as_deref().unwrap_or_default(),
            ),
        })
        .collect())
}

/// What one attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub start_time: DateTime<Utc>,
    /// The HTTP status, when the endpoint answered.
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    /// Why it failed (none on success).
    pub error: Option<String>,
}

/// What follows an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: done; the endpoint's failure streak ends.
    Succeeded,
    /// Failed; try again at this time.
    Retry(DateTime<Utc>),
    /// Failed and the retry window has passed.
    GiveUp,
    /// 410 Gone: the delivery fails and the endpoint is disabled.
    Gone,
}

/// What recording an attempt did to the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The lease had expired and another replica took the delivery over:
    /// nothing was recorded.
    LeaseLost,
    /// Recorded; the endpoint stays as it was.
    Done,
    /// Recorded, and the endpoint was disabled for this reason.
    Disabled(String),
}

/// Records an attempt of a claimed delivery, if this replica still holds
/// its lease, and its consequences on the endpoint: a success ends its
/// failure streak; a failure starts one, and one lasting `disable_after`
/// disables the endpoint (as does a 410), with the reason.
pub async fn record_attempt(
    db: &DatabaseConnection,
    claimed: &Claimed,
    attempt: &Attempt,
    verdict: &Verdict,
    disable_after: Duration,
) -> Result<Recorded> {
    let now = Utc::now();
    let txn = begin_write(db).await?;
    let (state, next) = match verdict {
        Verdict::Succeeded => (DeliveryState::Succeeded, None),
        Verdict::Retry(at) => (DeliveryState::Pending, Some(*at)),
        Verdict::GiveUp | Verdict::Gone => (DeliveryState::Failed, None),
    };
    let mut model = delivery::ActiveModel {
        state: Set(state.as_str().to_owned()),
        attempts: Set(claimed.attempts.saturating_add(1)),
        lease_token: Set(None),
        lease_expire_time: Set(None),
        last_attempt_time: Set(Some(attempt.start_time)),
        last_status_code: Set(attempt.status_code.map(i32::from)),
        last_latency_ms: Set(Some(attempt.latency_ms)),
        last_error: Set(attempt.error.clone()),
        update_time: Set(now),
        ..Default::default()
    };
    if let Some(next) = next {
        model.next_attempt_time = Set(next);
    }
    let updated = delivery::Entity::update_many()
        .set(model)
        .filter(delivery::Column::Id.eq(claimed.id))
        .filter(delivery::Column::LeaseToken.eq(claimed.lease_token))
        .exec(&txn)
        .await
        .map_err(db_error)?;
    if updated.rows_affected == 0 {
        return Ok(Recorded::LeaseLost);
    }
    let number = claimed.attempts.saturating_add(1);
    attempt_row::ActiveModel {
        id: Set(Uuid::now_v7()),
        delivery_id: Set(claimed.id),
        number: Set(number),
        start_time: Set(attempt.start_time),
        status_code: Set(attempt.status_code.map(i32::from)),
        latency_ms: Set(attempt.latency_ms),
        error: Set(attempt.error.clone()),
    }
    .insert(&txn)
    .await
    .map_err(db_error)?;
    if number > ATTEMPTS_KEPT {
        attempt_row::Entity::delete_many()
            .filter(attempt_row::Column::DeliveryId.eq(claimed.id))
            .filter(attempt_row::Column::Number.lte(number - ATTEMPTS_KEPT))
            .exec(&txn)
            .await
            .map_err(db_error)?;
    }
    let Some(current) = endpoint::Entity::find_by_id(claimed.endpoint_id)
        .lock(LockType::Update)
        .one(&txn)
        .await
        .map_err(db_error)?
    else {
        commit(txn).await?;
        return Ok(Recorded::Done);
    };
    let mut change = <endpoint::ActiveModel as Default>::default();
    let mut outcome = Recorded::Done;
    let failing_for = |since: DateTime<Utc>| (now - since).to_std().unwrap_or_default();
    match verdict {
        Verdict::Succeeded => {
            if current.failing_since.is_some() {
                change.failing_since = Set(None);
            }
        }
        Verdict::Gone => {
            outcome = Recorded::Disabled(format!(
                "the endpoint answered 410 Gone at {}",
                now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ));
        }
        Verdict::Retry(_) | Verdict::GiveUp => match current.failing_since {
            None => change.failing_since = Set(Some(attempt.start_time)),
            Some(since) if failing_for(since) >= disable_after => {
                outcome = Recorded::Disabled(format!(
                    "every delivery failed since {} (last error: {})",
                    since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    attempt.error.as_deref().unwrap_or("none")
                ));
            }
            Some(_) => {}
        },
    }
    if let Recorded::Disabled(reason) = &outcome {
        if current.enabled {
            change.enabled = Set(false);
            change.disabled_reason = Set(Some(reason.clone()));
            change.disable_time = Set(Some(now));
            change.update_time = Set(now);
            change.version = Set(current.version + 1);
        } else {
            outcome = Recorded::Done;
        }
    }
    if change.is_changed() {
        endpoint::Entity::update_many()
            .set(change)
            .filter(endpoint::Column::Id.eq(current.id))
            .exec(&txn)
            .await
            .map_err(db_error)?;
    }
    let raised = matches!(outcome, Recorded::Disabled(_));
    if raised {
        // Last statement: the outbox's position is taken under its head's
        // lock, held to the commit.
        events::append(
            &txn,
            current.organisation_id,
            &Actor {
                person_id: None,
                subject: WORKER_SUBJECT.to_owned(),
            },
            &[events::endpoint_alert_notice("alert.raised", current.id)],
        )
        .await?;
    }
    let backend = txn.get_database_backend();
    commit(txn).await?;
    if raised {
        events::committed(backend, current.organisation_id);
    }
    Ok(outcome)
}
