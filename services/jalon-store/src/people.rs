//! People of an organisation: create, read, list, update, (de)activate, and
//! the membership lookup behind every authorisation check.

use chrono::Utc;
use jalon_core::{
    Error, Result,
    authz::{self, Action, Role},
    organisation::etag_matches,
    person::{
        NewPerson, Person, PersonPatch, ensure_an_admin_remains, ensure_no_management_cycle,
        removes_an_admin,
    },
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::{Value, json};
use uuid::Uuid;

pub use crate::access::{Membership, is_active_member, membership};
use crate::{
    audit::NewEvent,
    change::{Caller, Change},
    entity::person,
    error::{db_error, unique_violation},
    idempotency::{Claim, IdempotencyKey, claim},
    page::{Page, paginate},
    retry_idempotent_race,
};

pub(crate) fn from_model(m: person::Model) -> Result<Person> {
    let role = m
        .role
        .parse()
        .map_err(|e| crate::error::unknown("people", m.id, e))?;
    Ok(Person {
        id: m.id,
        organisation_id: m.organisation_id,
        subject: m.subject,
        email: m.email,
        display_name: m.display_name,
        department: m.department,
        job_title: m.job_title,
        manager_id: m.manager_id,
        role,
        active: m.active,
        external_id: m.external_id,
        create_time: m.create_time,
        update_time: m.update_time,
        deactivate_time: m.deactivate_time,
        version: m.version,
    })
}

pub(crate) fn conflict(message: &str) -> Error {
    let what = if message.contains("subject") {
        "subject"
    } else if message.contains("email") {
        "email"
    } else if message.contains("external_id") {
        "external_id"
    } else {
        tracing::error!(%message, "unexpected unique violation");
        return Error::Internal("unexpected conflict".into());
    };
    Error::AlreadyExists(format!(
        "a person with this {what} already exists in the organisation"
    ))
}

fn write_error(err: sea_orm::DbErr) -> Error {
    match unique_violation(&err) {
        Some(message) => conflict(&message),
        None => db_error(err),
    }
}

/// Inserts a person (inside the caller's transaction).
pub(crate) async fn insert(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    new: &NewPerson,
    id: Uuid,
) -> Result<Person> {
    let now = Utc::now();
    person::ActiveModel {
        id: Set(id),
        organisation_id: Set(organisation_id),
        subject: Set(new.subject.as_str().to_owned()),
        email: Set(new.email.as_str().to_owned()),
        display_name: Set(new.display_name.as_str().to_owned()),
        department: Set(new.department.as_str().to_owned()),
        job_title: Set(new.job_title.as_str().to_owned()),
        manager_id: Set(new.manager_id),
        role: Set(new.role.as_str().to_owned()),
        active: Set(true),
        external_id: Set(new.external_id.as_ref().map(|e| e.as_str().to_owned())),
        create_time: Set(now),
        update_time: Set(now),
        deactivate_time: Set(None),
        version: Set(1),
    }
    .insert(conn)
    .await
    .map_err(write_error)
    .and_then(from_model)
}

/// Checks that `manager_id` is a person of the organisation and that making
/// them `person_id`'s manager creates no loop.
pub(crate) async fn check_manager(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    person_id: Uuid,
    manager_id: Uuid,
) -> Result<()> {
    let mut chain = Vec::new();
    let mut next = Some(manager_id);
    while let Some(id) = next {
        if chain.contains(&id) || chain.len() > 1000 {
            break;
        }
        let found = person::Entity::find_by_id(id)
            .filter(person::Column::OrganisationId.eq(organisation_id))
            .one(conn)
            .await
            .map_err(db_error)?;
        match found {
            Some(p) => {
                chain.push(id);
                next = p.manager_id;
            }
            None if id == manager_id => {
                return Err(Error::invalid(
                    "person.manager_id",
                    "is not a person of this organisation",
                ));
            }
            None => break,
        }
    }
    ensure_no_management_cycle(person_id, &chain)
}

/// A person as the audit log shows them: what identifies them and what
/// they may do, never their e-mail address (events are read by
/// integrations and auditors).
pub(crate) fn audit_view(p: &Person) -> Value {
    json!({
        "subject": p.subject,
        "display_name": p.display_name,
        "department": p.department,
        "job_title": p.job_title,
        "manager_id": p.manager_id,
        "role": p.role.as_str(),
        "active": p.active,
        "external_id": p.external_id,
    })
}

pub(crate) fn person_event(
    action: &'static str,
    id: Uuid,
    before: Option<Value>,
    after: Value,
) -> NewEvent {
    NewEvent {
        project_id: None,
        action,
        resource_type: "person",
        resource_id: id.to_string(),
        before,
        after,
        chained: false,
    }
}

/// Adds a person to an organisation.
#[tracing::instrument(skip(db, caller, new, key))]
pub async fn create(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    caller: &Caller,
    new: &NewPerson,
    key: Option<&IdempotencyKey>,
) -> Result<Person> {
    retry_idempotent_race(|| async {
        let mut change = Change::begin(db, organisation_id, caller, Action::CreatePerson).await?;
        let id = Uuid::now_v7();
        if let Claim::Replay(existing) = claim(change.conn(), key, id).await? {
            return get(change.conn(), organisation_id, existing).await;
        }
        if let Some(member) = change.member() {
            authz::may_grant(member, new.role)?;
        }
        change.lock_organisation().await?;
        if let Some(manager_id) = new.manager_id {
            check_manager(change.conn(), organisation_id, id, manager_id).await?;
        }
        let created = insert(change.conn(), organisation_id, new, id).await?;
        change.event(person_event(
            "person.created",
            id,
            None,
            audit_view(&created),
        ));
        change.commit().await?;
        Ok(created)
    })
    .await
}

/// Reads a person of an organisation.
#[tracing::instrument(skip(conn))]
pub async fn get(conn: &impl ConnectionTrait, organisation_id: Uuid, id: Uuid) -> Result<Person> {
    person::Entity::find_by_id(id)
        .filter(person::Column::OrganisationId.eq(organisation_id))
        .one(conn)
        .await
        .map_err(db_error)?
        .map(from_model)
        .transpose()?
        .ok_or(Error::NotFound { resource: "person" })
}

/// Filters of `ListPeople`; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct PersonFilter {
    pub role: Option<Role>,
    pub active: Option<bool>,
    pub department: Option<String>,
    pub external_id: Option<String>,
}

impl PersonFilter {
    /// A stable rendering, bound into page tokens.
    pub fn key(&self) -> String {
        format!(
            "role={:?};active={:?};department={:?};external_id={:?}",
            self.role, self.active, self.department, self.external_id
        )
    }
}

/// Lists people in creation order.
#[tracing::instrument(skip(db))]
pub async fn list(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    filter: &PersonFilter,
    page_size: u32,
    after: Option<Uuid>,
) -> Result<Page<Person>> {
    let mut query =
        person::Entity::find().filter(person::Column::OrganisationId.eq(organisation_id));
    if let Some(role) = filter.role {
        query = query.filter(person::Column::Role.eq(role.as_str()));
    }
    if let Some(active) = filter.active {
        query = query.filter(person::Column::Active.eq(active));
    }
    if let Some(department) = &filter.department {
        query = query.filter(person::Column::Department.eq(department.as_str()));
    }
    if let Some(external_id) = &filter.external_id {
        query = query.filter(person::Column::ExternalId.eq(external_id.as_str()));
    }
    if let Some(after) = after {
        query = query.filter(person::Column::Id.gt(after));
    }
    let rows = query
        .order_by_asc(person::Column::Id)
        .limit(u64::from(page_size) + 1)
        .all(db)
        .await
        .map_err(db_error)?;
    Ok(paginate(
        rows.into_iter()
            .map(from_model)
            .collect::<Result<Vec<_>>>()?,
        page_size,
        &filter.key(),
        |p| p.id,
    ))
}

pub(crate) async fn count_other_active_admins(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    except: Uuid,
) -> Result<u64> {
    person::Entity::find()
        .filter(person::Column::OrganisationId.eq(organisation_id))
        .filter(person::Column::Role.eq(Role::Admin.as_str()))
        .filter(person::Column::Active.eq(true))
        .filter(person::Column::Id.ne(except))
        .count(conn)
        .await
        .map_err(db_error)
}

/// Applies a patch, compare-and-swap on the version; keeps an active
/// admin. A role in the patch takes the role-change rule too.
#[tracing::instrument(skip(db, caller, patch))]
pub async fn update(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    id: Uuid,
    etag: &str,
    caller: &Caller,
    patch: &PersonPatch,
) -> Result<Person> {
    let mut change = Change::begin(db, organisation_id, caller, Action::UpdatePerson).await?;
    if patch.role.is_some() {
        change.authorize_also(Action::UpdatePersonRole)?;
    }
    change.lock_organisation().await?;
    let current = get(change.conn(), organisation_id, id).await?;
    if !etag_matches(etag, current.version) {
        return Err(Error::stale_etag("person"));
    }
    let updated = write_patch(&mut change, &current, patch).await?;
    change.commit().await?;
    Ok(updated)
}

/// Writes a patch over `current` (read under the organisation's lock),
/// compare-and-swap on its version, keeping an active admin and a
/// management chain without loops, and records person.updated (and
/// person.role_changed).
pub(crate) async fn write_patch(
    change: &mut Change,
    current: &Person,
    patch: &PersonPatch,
) -> Result<Person> {
    let organisation_id = change.organisation_id();
    let id = current.id;
    if removes_an_admin(current, patch.role, false) {
        let others = count_other_active_admins(change.conn(), organisation_id, id).await?;
        ensure_an_admin_remains(others, id)?;
    }
    if let Some(Some(manager_id)) = patch.manager_id {
        check_manager(change.conn(), organisation_id, id, manager_id).await?;
    }
    let mut model = person::ActiveModel {
        update_time: Set(Utc::now()),
        version: Set(current.version + 1),
        ..Default::default()
    };
    if let Some(v) = &patch.subject {
        model.subject = Set(v.as_str().to_owned());
    }
    if let Some(v) = &patch.email {
        model.email = Set(v.as_str().to_owned());
    }
    if let Some(v) = &patch.display_name {
        model.display_name = Set(v.as_str().to_owned());
    }
    if let Some(v) = &patch.department {
        model.department = Set(v.as_str().to_owned());
    }
    if let Some(v) = &patch.job_title {
        model.job_title = Set(v.as_str().to_owned());
    }
    if let Some(v) = patch.manager_id {
        model.manager_id = Set(v);
    }
    if let Some(v) = patch.role {
        model.role = Set(v.as_str().to_owned());
    }
    if let Some(v) = &patch.external_id {
        model.external_id = Set(v.as_ref().map(|e| e.as_str().to_owned()));
    }
    swap(change.conn(), id, current.version, model).await?;
    let updated = get(change.conn(), organisation_id, id).await?;
    if !updated.active && updated.display_name != current.display_name {
        // The alerts about a leaver name them.
        touch_their_projects(change, id).await?;
    }
    let (before, mut after) = crate::audit::diff(audit_view(current), audit_view(&updated));
    if current.email != updated.email
        && let Value::Object(fields) = &mut after
    {
        // Named as changed, never shown.
        fields.insert("email_changed".into(), Value::Bool(true));
    }
    change.event(person_event("person.updated", id, Some(before), after));
    if updated.role != current.role {
        change.event(person_event(
            "person.role_changed",
            id,
            Some(json!({"role": current.role.as_str()})),
            json!({"role": updated.role.as_str()}),
        ));
    }
    Ok(updated)
}

/// What an upsert did.
#[derive(Debug, Clone, PartialEq)]
pub struct Upserted {
    pub person: Person,
    pub created: bool,
}

/// Creates the person of the organisation whose HR identifier is
/// `external_id` (from `new`, made only then), or updates the fields of
/// `patch` that differ; a call that changes nothing writes and records
/// nothing. The rules are Create's and Update's: an INTEGRATION account
/// creates MEMBERs and VIEWERs only and changes no role.
#[tracing::instrument(skip(db, caller, new, patch))]
pub async fn upsert(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    caller: &Caller,
    external_id: &str,
    new: impl FnOnce() -> Result<NewPerson>,
    patch: &PersonPatch,
) -> Result<Upserted> {
    let mut change = Change::begin(db, organisation_id, caller, Action::UpsertPerson).await?;
    change.lock_organisation().await?;
    let found = person::Entity::find()
        .filter(person::Column::OrganisationId.eq(organisation_id))
        .filter(person::Column::ExternalId.eq(external_id))
        .one(change.conn())
        .await
        .map_err(db_error)?
        .map(from_model)
        .transpose()?;
    let Some(current) = found else {
        change.authorize_also(Action::CreatePerson)?;
        let new = new()?;
        if let Some(member) = change.member() {
            authz::may_grant(member, new.role)?;
        }
        let id = Uuid::now_v7();
        if let Some(manager_id) = new.manager_id {
            check_manager(change.conn(), organisation_id, id, manager_id).await?;
        }
        let created = insert(change.conn(), organisation_id, &new, id).await?;
        change.event(person_event(
            "person.created",
            id,
            None,
            audit_view(&created),
        ));
        change.commit().await?;
        return Ok(Upserted {
            person: created,
            created: true,
        });
    };
    let patch = patch.without_unchanged(&current);
    if patch.is_empty() {
        return Ok(Upserted {
            person: current,
            created: false,
        });
    }
    change.authorize_also(Action::UpdatePerson)?;
    if patch.role.is_some() {
        change.authorize_also(Action::UpdatePersonRole)?;
    }
    let updated = write_patch(&mut change, &current, &patch).await?;
    change.commit().await?;
    Ok(Upserted {
        person: updated,
        created: false,
    })
}

/// Deactivates (`active = false`) or reactivates a person; keeps an active
/// admin. The projects they sponsor or lead are refreshed (their alerts).
/// A person already in the state asked for is answered as is, with no
/// write and no event (HR connectors retry).
#[tracing::instrument(skip(db, caller))]
pub async fn set_active(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    id: Uuid,
    etag: &str,
    caller: &Caller,
    active: bool,
) -> Result<Person> {
    let action = if active {
        Action::ReactivatePerson
    } else {
        Action::DeactivatePerson
    };
    let mut change = Change::begin(db, organisation_id, caller, action).await?;
    change.lock_organisation().await?;
    let current = get(change.conn(), organisation_id, id).await?;
    if current.active == active {
        // Already as asked: connectors retry, and a retry whose first
        // attempt committed finds its work done (its etag is then stale:
        // nothing is written, so it is not compared). Nothing changes, so
        // nothing is recorded.
        return Ok(current);
    }
    if !etag_matches(etag, current.version) {
        return Err(Error::stale_etag("person"));
    }
    let updated = write_active(&mut change, &current, active).await?;
    change.commit().await?;
    Ok(updated)
}

/// Deactivates or reactivates `current` (read under the organisation's
/// lock, in another state) inside a change: keeps an active admin,
/// refreshes the projects they sponsor or lead, records the event.
pub(crate) async fn write_active(
    change: &mut Change,
    current: &Person,
    active: bool,
) -> Result<Person> {
    let organisation_id = change.organisation_id();
    let id = current.id;
    if removes_an_admin(current, None, !active) {
        let others = count_other_active_admins(change.conn(), organisation_id, id).await?;
        ensure_an_admin_remains(others, id)?;
    }
    let now = Utc::now();
    let model = person::ActiveModel {
        active: Set(active),
        deactivate_time: Set((!active).then_some(now)),
        update_time: Set(now),
        version: Set(current.version + 1),
        ..Default::default()
    };
    swap(change.conn(), id, current.version, model).await?;
    let updated = get(change.conn(), organisation_id, id).await?;
    touch_their_projects(change, id).await?;
    change.event(person_event(
        if active {
            "person.reactivated"
        } else {
            "person.deactivated"
        },
        id,
        Some(json!({"active": current.active})),
        json!({"active": updated.active}),
    ));
    Ok(updated)
}

/// Locks the projects a person sponsors or leads and marks them touched:
/// their alerts (which name the person when they left) are refreshed at
/// commit.
pub(crate) async fn touch_their_projects(change: &mut Change, id: Uuid) -> Result<()> {
    use crate::entity::project::{Column as P, Entity as Projects};
    let theirs: Vec<Uuid> = Projects::find()
        .select_only()
        .column(P::Id)
        .filter(P::OrganisationId.eq(change.organisation_id()))
        .filter(
            sea_orm::Condition::any()
                .add(P::SponsorId.eq(id))
                .add(P::LeadId.eq(id)),
        )
        .into_tuple()
        .all(change.conn())
        .await
        .map_err(db_error)?;
    for project_id in change.lock_projects(theirs).await? {
        change.touch(project_id);
    }
    Ok(())
}

pub(crate) async fn swap(
    conn: &impl ConnectionTrait,
    id: Uuid,
    version: i64,
    model: person::ActiveModel,
) -> Result<()> {
    let result = person::Entity::update_many()
        .set(model)
        .filter(person::Column::Id.eq(id))
        .filter(person::Column::Version.eq(version))
        .exec(conn)
        .await
        .map_err(write_error)?;
    if result.rows_affected == 0 {
        return Err(Error::stale_etag("person"));
    }
    Ok(())
}
