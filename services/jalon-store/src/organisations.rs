//! Organisations: create (with their first admin), read, list, update, soft
//! delete.

use chrono::Utc;
use jalon_core::{
    Error, Result,
    authz::{Action, Role},
    organisation::{NewOrganisation, Organisation, OrganisationPatch, etag_matches},
    person::{NewPerson, Person},
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, sea_query::Query,
};
use serde_json::{Value, json};
use uuid::Uuid;

pub use crate::access::deleted_precondition;
use crate::rows::organisations::from_model;
pub use crate::rows::organisations::get;
use crate::{
    audit::{self, Actor, NewEvent},
    begin_write,
    change::{Caller, Change},
    commit,
    entity::{organisation as org, person},
    error::{db_error, unique_violation},
    events,
    idempotency::{Claim, IdempotencyKey, claim},
    page::{Page, paginate},
    people, retry_idempotent_race,
};

fn conflict(message: &str) -> Error {
    if message.contains("slug") {
        Error::AlreadyExists("an organisation with this slug already exists".into())
    } else if message.contains("external_ref") {
        Error::AlreadyExists("an organisation with this external_ref already exists".into())
    } else {
        people::conflict(message)
    }
}

fn write_error(err: sea_orm::DbErr) -> Error {
    match unique_violation(&err) {
        Some(message) => conflict(&message),
        None => db_error(err),
    }
}

/// An organisation as the audit log shows it.
fn audit_view(o: &Organisation) -> Value {
    json!({
        "display_name": o.display_name,
        "slug": o.slug,
        "default_currency": o.default_currency,
        "discount_rate": o.discount_rate,
        "fiscal_year_start_month": o.fiscal_year_start_month,
        "gate_overdue_days": o.gate_overdue_days,
        "external_ref": o.external_ref,
        "deleted": o.delete_time.is_some(),
    })
}

fn organisation_event(
    action: &'static str,
    id: Uuid,
    before: Option<Value>,
    after: Value,
) -> NewEvent {
    NewEvent {
        project_id: None,
        action,
        resource_type: "organisation",
        resource_id: id.to_string(),
        before,
        after,
        chained: false,
    }
}

/// Who acts on an organisation as a platform administrator: their person
/// there if they are one.
async fn platform_actor(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    caller: &Caller,
) -> Result<Actor> {
    Ok(Actor {
        person_id: crate::access::membership(conn, organisation_id, &caller.subject)
            .await?
            .map(|m| m.person_id),
        subject: caller.subject.clone(),
    })
}

/// Creates an organisation and its first administrator in one transaction
/// (both in the new organisation's audit log, by `caller`).
#[tracing::instrument(skip_all, fields(slug = new.slug.as_str()))]
pub async fn create(
    db: &DatabaseConnection,
    caller: &Caller,
    new: &NewOrganisation,
    admin: &NewPerson,
    key: Option<&IdempotencyKey>,
) -> Result<(Organisation, Person)> {
    retry_idempotent_race(|| try_create(db, caller, new, admin, key)).await
}

async fn try_create(
    db: &DatabaseConnection,
    caller: &Caller,
    new: &NewOrganisation,
    admin: &NewPerson,
    key: Option<&IdempotencyKey>,
) -> Result<(Organisation, Person)> {
    let txn = begin_write(db).await?;
    let id = Uuid::now_v7();
    if let Claim::Replay(existing) = claim(&txn, key, id).await? {
        let organisation = get(&txn, existing).await?;
        let admin = person::Entity::find()
            .filter(person::Column::OrganisationId.eq(existing))
            .filter(person::Column::Role.eq(Role::Admin.as_str()))
            .order_by_asc(person::Column::Id)
            .one(&txn)
            .await
            .map_err(db_error)?
            .map(people::from_model)
            .transpose()?
            .ok_or_else(|| Error::Internal("organisation without an admin".into()))?;
        return Ok((organisation, admin));
    }
    let now = Utc::now();
    let model = org::ActiveModel {
        id: Set(id),
        display_name: Set(new.display_name.as_str().to_owned()),
        slug: Set(new.slug.as_str().to_owned()),
        default_currency: Set(new.default_currency.as_str().to_owned()),
        discount_rate: Set(new.discount_rate.to_string()),
        fiscal_year_start_month: Set(i16::from(new.fiscal_year_start_month.number())),
        external_ref: Set(new.external_ref.as_ref().map(|r| r.as_str().to_owned())),
        create_time: Set(now),
        update_time: Set(now),
        delete_time: Set(None),
        version: Set(1),
        gate_overdue_days: Set(i32::try_from(new.gate_overdue_days).unwrap_or(365)),
    }
    .insert(&txn)
    .await
    .map_err(write_error)?;
    let admin = people::insert(&txn, id, admin, Uuid::now_v7()).await?;
    let created = from_model(model);
    let actor = Actor {
        person_id: None,
        subject: caller.subject.clone(),
    };
    let records = [
        organisation_event("organisation.created", id, None, audit_view(&created)),
        people::person_event("person.created", admin.id, None, people::audit_view(&admin)),
    ];
    let notices: Vec<_> = records.iter().flat_map(events::notices_of).collect();
    for event in records {
        audit::record(&txn, id, &actor, event).await?;
    }
    events::append(&txn, id, &actor, &notices).await?;
    let backend = txn.get_database_backend();
    commit(txn).await?;
    events::committed(backend, id);
    Ok((created, admin))
}

/// The caller's active membership and their organisation, read in one
/// statement through the readers (what every portfolio call needs first).
/// No membership: `(None, None)`, and nothing of the organisation is read.
pub async fn get_as_member(
    readers: &crate::readers::Readers,
    id: Uuid,
    subject: &str,
) -> Result<(Option<crate::access::Membership>, Option<Organisation>)> {
    use crate::readers::Arg;
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT {}, m.id AS caller_person_id, m.role AS caller_role \
             FROM people m JOIN organisations o ON o.id = m.organisation_id \
             WHERE m.organisation_id = $1 AND m.subject = $2 AND m.active = $3 LIMIT 1",
            crate::readers::columns::<org::Entity>("o")
        )
    });
    let Some(row) = readers
        .fetch_optional(&SQL, &[Arg::Uuid(id), Arg::Text(subject), Arg::Bool(true)])
        .await?
    else {
        return Ok((None, None));
    };
    let Some(membership) = crate::access::caller_membership(&row, "delete_time")? else {
        return Ok((None, None));
    };
    let model =
        <org::Model as sea_orm::FromQueryResult>::from_query_result(&row, "").map_err(db_error)?;
    Ok((Some(membership), Some(from_model(model))))
}

/// Finds an organisation by its slug (deleted or not).
pub async fn find_by_slug(conn: &impl ConnectionTrait, slug: &str) -> Result<Option<Organisation>> {
    Ok(org::Entity::find()
        .filter(org::Column::Slug.eq(slug))
        .one(conn)
        .await
        .map_err(db_error)?
        .map(from_model))
}

/// Whose organisations to list.
#[derive(Debug, Clone)]
pub enum Visibility {
    /// Every organisation (platform administrators).
    All,
    /// The organisations this subject is an active member of.
    MemberOf(String),
}

/// Lists organisations in creation order.
#[tracing::instrument(skip(db))]
pub async fn list(
    db: &DatabaseConnection,
    visibility: &Visibility,
    show_deleted: bool,
    page_size: u32,
    after: Option<Uuid>,
    filter_key: &str,
) -> Result<Page<Organisation>> {
    let mut query = org::Entity::find();
    if let Visibility::MemberOf(subject) = visibility {
        query = query.filter(
            org::Column::Id.in_subquery(
                Query::select()
                    .column(person::Column::OrganisationId)
                    .from(person::Entity)
                    .and_where(person::Column::Subject.eq(subject.as_str()))
                    .and_where(person::Column::Active.eq(true))
                    .to_owned(),
            ),
        );
    }
    if !show_deleted {
        query = query.filter(org::Column::DeleteTime.is_null());
    }
    if let Some(after) = after {
        query = query.filter(org::Column::Id.gt(after));
    }
    let rows = query
        .order_by_asc(org::Column::Id)
        .limit(u64::from(page_size) + 1)
        .all(db)
        .await
        .map_err(db_error)?;
    Ok(paginate(
        rows.into_iter().map(from_model).collect(),
        page_size,
        filter_key,
        |o| o.id,
    ))
}

/// Applies a patch, compare-and-swap on the version.
#[tracing::instrument(skip(db, patch))]
pub async fn update(
    db: &DatabaseConnection,
    id: Uuid,
    etag: &str,
    caller: &Caller,
    patch: &OrganisationPatch,
) -> Result<Organisation> {
    let mut change = Change::begin(db, id, caller, Action::UpdateOrganisation).await?;
    let current = get(change.conn(), id).await?;
    if !etag_matches(etag, current.version) {
        return Err(Error::stale_etag("organisation"));
    }
    let mut model = org::ActiveModel {
        update_time: Set(Utc::now()),
        version: Set(current.version + 1),
        ..Default::default()
    };
    if let Some(v) = &patch.display_name {
        model.display_name = Set(v.as_str().to_owned());
    }
    if let Some(v) = &patch.slug {
        model.slug = Set(v.as_str().to_owned());
    }
    if let Some(v) = &patch.default_currency {
        model.default_currency = Set(v.as_str().to_owned());
    }
    if let Some(v) = &patch.discount_rate {
        model.discount_rate = Set(v.to_string());
    }
    if let Some(v) = &patch.fiscal_year_start_month {
        model.fiscal_year_start_month = Set(i16::from(v.number()));
    }
    if let Some(v) = patch.gate_overdue_days {
        model.gate_overdue_days = Set(i32::try_from(v).unwrap_or(365));
    }
    if let Some(v) = &patch.external_ref {
        model.external_ref = Set(v.as_ref().map(|r| r.as_str().to_owned()));
    }
    swap(change.conn(), id, current.version, model).await?;
    let updated = get(change.conn(), id).await?;
    let (before, after) = audit::diff(audit_view(&current), audit_view(&updated));
    change.event(organisation_event(
        "organisation.updated",
        id,
        Some(before),
        after,
    ));
    change.commit().await?;
    Ok(updated)
}

/// Soft-deletes (`deleted`) or restores an organisation.
#[tracing::instrument(skip(db))]
pub async fn set_deleted(
    db: &DatabaseConnection,
    id: Uuid,
    etag: &str,
    caller: &Caller,
    deleted: bool,
) -> Result<Organisation> {
    let txn = begin_write(db).await?;
    let current = get(&txn, id).await?;
    if !etag_matches(etag, current.version) {
        return Err(Error::stale_etag("organisation"));
    }
    if current.is_deleted() == deleted {
        return Err(Error::precondition(
            if deleted {
                "ALREADY_DELETED"
            } else {
                "NOT_DELETED"
            },
            format!("organisations/{id}"),
            if deleted {
                "the organisation is already deleted"
            } else {
                "the organisation is not deleted"
            },
        ));
    }
    let now = Utc::now();
    let model = org::ActiveModel {
        update_time: Set(now),
        delete_time: Set(deleted.then_some(now)),
        version: Set(current.version + 1),
        ..Default::default()
    };
    swap(&txn, id, current.version, model).await?;
    let updated = get(&txn, id).await?;
    let actor = platform_actor(&txn, id, caller).await?;
    let event = organisation_event(
        if deleted {
            "organisation.deleted"
        } else {
            "organisation.undeleted"
        },
        id,
        Some(json!({"deleted": current.is_deleted()})),
        json!({"deleted": updated.is_deleted()}),
    );
    audit::record(&txn, id, &actor, event).await?;
    commit(txn).await?;
    Ok(updated)
}

/// Writes `model` over the row if its version is still `version`.
async fn swap(
    conn: &impl ConnectionTrait,
    id: Uuid,
    version: i64,
    model: org::ActiveModel,
) -> Result<()> {
    let result = org::Entity::update_many()
        .set(model)
        .filter(org::Column::Id.eq(id))
        .filter(org::Column::Version.eq(version))
        .exec(conn)
        .await
        .map_err(write_error)?;
    if result.rows_affected == 0 {
        return Err(Error::stale_etag("organisation"));
    }
    Ok(())
}
