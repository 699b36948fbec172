//! SCIM Users and Groups of an organisation, written by its provisioning
//! tokens. A SCIM User is a person linked to the identity provider (its
//! `id` is the person's); a Group is a set of linked people whose name may
//! map to a role (`provisioning::sync_roles`). Every write is one change:
//! read under the organisation's lock, compare-and-swap on the version,
//! the audit events recorded with the token as actor.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use jalon_core::{
    Error, Result,
    authz::{Action, Role},
    person::{NewPerson, Person, PersonPatch},
    scim::{CompareOp, Filter, GroupAttr, GroupState, SubjectAttribute, UserAttr, UserState},
    values::Subject,
};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, JoinType,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, Func, LikeExpr, Query, SimpleExpr},
};
use serde_json::json;
use uuid::Uuid;

use crate::{
    audit::NewEvent,
    change::Change,
    entity::{person, scim_group as group, scim_group_member as member, scim_user},
    error::{db_error, unique_violation},
    people::{self, person_event},
    provisioning::{Provisioner, sync_roles},
};

/// A group a user is in.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRef {
    pub id: Uuid,
    pub display_name: String,
}

/// A SCIM User: the person and what the identity provider sent.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub person: Person,
    pub user_name: String,
    /// The SCIM attributes kept as sent (JSON object).
    pub profile_json: String,
    pub groups: Vec<GroupRef>,
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberRef {
    pub id: Uuid,
    pub display_name: String,
}

/// A SCIM Group.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub id: Uuid,
    pub display_name: String,
    pub external_id: Option<String>,
    /// Empty when the members were not asked for.
    pub members: Vec<MemberRef>,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub version: i64,
}

fn user_conflict(err: &sea_orm::DbErr) -> Option<Error> {
    let message = unique_violation(err)?;
    Some(if message.contains("user_name") {
        Error::AlreadyExists("a User with this userName already exists".into())
    } else {
        people::conflict(&message)
    })
}

fn write_error(err: sea_orm::DbErr) -> Error {
    match user_conflict(&err) {
        Some(e) => e,
        None => db_error(err),
    }
}

fn group_write_error(err: sea_orm::DbErr) -> Error {
    match unique_violation(&err) {
        Some(m) if m.contains("display") => {
            Error::AlreadyExists("a Group with this displayName already exists".into())
        }
        _ => db_error(err),
    }
}

/// The linked users `ids` (in that order, the absent skipped), with their
/// groups.
async fn users_by_ids(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    ids: &[Uuid],
) -> Result<Vec<User>> {
    let mut links: BTreeMap<Uuid, scim_user::Model> = BTreeMap::new();
    let mut persons: BTreeMap<Uuid, Person> = BTreeMap::new();
    let mut groups: BTreeMap<Uuid, Vec<GroupRef>> = BTreeMap::new();
    for chunk in ids.chunks(crate::CHUNK) {
        for link in scim_user::Entity::find()
            .filter(scim_user::Column::OrganisationId.eq(organisation_id))
            .filter(scim_user::Column::PersonId.is_in(chunk.to_vec()))
            .all(conn)
            .await
            .map_err(db_error)?
        {
            links.insert(link.person_id, link);
        }
        for model in person::Entity::find()
            .filter(person::Column::OrganisationId.eq(organisation_id))
            .filter(person::Column::Id.is_in(chunk.to_vec()))
            .all(conn)
            .await
            .map_err(db_error)?
        {
            persons.insert(model.id, people::from_model(model)?);
        }
        let rows: Vec<(Uuid, Uuid, String)> = member::Entity::find()
            .select_only()
            .column(member::Column::PersonId)
            .column(group::Column::Id)
            .column(group::Column::DisplayName)
            .join(
                JoinType::InnerJoin,
                member::Entity::belongs_to(group::Entity)
                    .from(member::Column::GroupId)
                    .to(group::Column::Id)
                    .into(),
            )
            .filter(member::Column::OrganisationId.eq(organisation_id))
            .filter(member::Column::PersonId.is_in(chunk.to_vec()))
            .order_by_asc(group::Column::DisplayKey)
            .into_tuple()
            .all(conn)
            .await
            .map_err(db_error)?;
        for (person_id, id, display_name) in rows {
            groups
                .entry(person_id)
                .or_default()
                .push(GroupRef { id, display_name });
        }
    }
    Ok(ids
        .iter()
        .filter_map(|id| {
            let link = links.remove(id)?;
            let person = persons.remove(id)?;
            Some(User {
                person,
                user_name: link.user_name,
                profile_json: link.profile_json,
                groups: groups.remove(id).unwrap_or_default(),
            })
        })
        .collect())
}

/// A linked user of the organisation.
#[tracing::instrument(skip(conn))]
pub async fn get_user(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    id: Uuid,
) -> Result<User> {
    users_by_ids(conn, organisation_id, &[id])
        .await?
        .pop()
        .ok_or(Error::NotFound { resource: "User" })
}

fn lower(col: impl sea_orm::sea_query::IntoColumnRef) -> SimpleExpr {
    Func::lower(Expr::col(col)).into()
}

fn like_pattern(op: CompareOp, value: &str) -> String {
    let escaped = value
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    match op {
        CompareOp::Co => format!("%{escaped}%"),
        CompareOp::Sw => format!("{escaped}%"),
        _ => format!("%{escaped}"),
    }
}

/// A comparison of a text expression with a value.
fn compare(expr: SimpleExpr, op: CompareOp, value: String) -> Condition {
    let c = match op {
        CompareOp::Eq => expr.eq(value),
        CompareOp::Ne => expr.ne(value),
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => {
            expr.like(LikeExpr::new(like_pattern(op, &value)).escape('\\'))
        }
    };
    Condition::all().add(c)
}

fn nothing() -> Condition {
    Condition::all().add(Expr::val(1).eq(0))
}

fn id_compare(col: impl ColumnTrait, op: CompareOp, value: &str) -> Condition {
    match (op, Uuid::try_parse(value)) {
        (CompareOp::Eq, Ok(id)) => Condition::all().add(col.eq(id)),
        (CompareOp::Eq, Err(_)) => nothing(),
        (CompareOp::Ne, Ok(id)) => Condition::all().add(col.ne(id)),
        (CompareOp::Ne, Err(_)) => Condition::all(),
        _ => compare(
            Expr::col(col).cast_as(sea_orm::sea_query::Alias::new("text")),
            op,
            value.to_lowercase(),
        ),
    }
}

fn user_condition(filter: &Filter<UserAttr>) -> Result<Condition> {
    Ok(match filter {
        Filter::And(a, b) => Condition::all()
            .add(user_condition(a)?)
            .add(user_condition(b)?),
        Filter::Or(a, b) => Condition::any()
            .add(user_condition(a)?)
            .add(user_condition(b)?),
        Filter::Not(a) => user_condition(a)?.not(),
        Filter::Present(attr) => match attr {
            UserAttr::ExternalId => Condition::all().add(person::Column::ExternalId.is_not_null()),
            UserAttr::Title => Condition::all().add(person::Column::JobTitle.ne("")),
            UserAttr::Department => Condition::all().add(person::Column::Department.ne("")),
            _ => Condition::all(),
        },
        Filter::Compare(attr, op, value) => match attr {
            UserAttr::Id => id_compare(person::Column::Id, *op, value),
            UserAttr::UserName => compare(
                Expr::col((scim_user::Entity, scim_user::Column::UserNameKey)),
                *op,
                value.to_lowercase(),
            ),
            UserAttr::ExternalId => compare(
                Expr::col((person::Entity, person::Column::ExternalId)),
                *op,
                value.clone(),
            ),
            UserAttr::Email => compare(
                Expr::col((person::Entity, person::Column::Email)),
                *op,
                value.to_lowercase(),
            ),
            UserAttr::DisplayName => compare(
                lower((person::Entity, person::Column::DisplayName)),
                *op,
                value.to_lowercase(),
            ),
            UserAttr::Title => compare(
                lower((person::Entity, person::Column::JobTitle)),
                *op,
                value.to_lowercase(),
            ),
            UserAttr::Department => compare(
                lower((person::Entity, person::Column::Department)),
                *op,
                value.to_lowercase(),
            ),
            UserAttr::Active => {
                let wanted = match value.to_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(Error::invalid(
                            "filter",
                            "active compares with true or false",
                        ));
                    }
                };
                match op {
                    CompareOp::Eq => Condition::all().add(person::Column::Active.eq(wanted)),
                    CompareOp::Ne => Condition::all().add(person::Column::Active.ne(wanted)),
                    _ => {
                        return Err(Error::invalid("filter", "active supports eq and ne only"));
                    }
                }
            }
        },
    })
}

/// One page of the organisation's linked users matching `filter`, in
/// creation order: `offset` skipped (startIndex - 1), at most `count`; with
/// the total that match.
#[tracing::instrument(skip(db, filter))]
pub async fn list_users(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    filter: Option<&Filter<UserAttr>>,
    offset: u64,
    count: u64,
) -> Result<(u64, Vec<User>)> {
    let mut query = person::Entity::find()
        .join(
            JoinType::InnerJoin,
            person::Entity::belongs_to(scim_user::Entity)
                .from(person::Column::Id)
                .to(scim_user::Column::PersonId)
                .into(),
        )
        .filter(person::Column::OrganisationId.eq(organisation_id));
    if let Some(filter) = filter {
        query = query.filter(user_condition(filter)?);
    }
    let total = query.clone().count(db).await.map_err(db_error)?;
    if count == 0 {
        return Ok((total, Vec::new()));
    }
    let ids: Vec<Uuid> = query
        .select_only()
        .column(person::Column::Id)
        .order_by_asc(person::Column::Id)
        .offset(offset)
        .limit(count)
        .into_tuple()
        .all(db)
        .await
        .map_err(db_error)?;
    Ok((total, users_by_ids(db, organisation_id, &ids).await?))
}

/// The person to adopt for a new SCIM User: an unlinked person of the
/// organisation with the same subject, or else the same external id, or
/// else the same e-mail address.
async fn adoptable(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    subject: &Subject,
    external_id: Option<&str>,
    email: &str,
) -> Result<Option<Person>> {
    let mut by = vec![person::Column::Subject.eq(subject.as_str())];
    if let Some(external) = external_id {
        by.push(person::Column::ExternalId.eq(external));
    }
    by.push(person::Column::Email.eq(email));
    for condition in by {
        let found = person::Entity::find()
            .filter(person::Column::OrganisationId.eq(organisation_id))
            .filter(condition)
            .one(conn)
            .await
            .map_err(db_error)?;
        if let Some(model) = found {
            let linked = scim_user::Entity::find_by_id(model.id)
                .one(conn)
                .await
                .map_err(db_error)?;
            if linked.is_some() {
                // Its userName differs (else the insert's uniqueness
                // answers): the subject or e-mail clash is a conflict.
                return Err(Error::AlreadyExists(
                    "another User already has this subject, externalId or e-mail address".into(),
                ));
            }
            return Ok(Some(people::from_model(model)?));
        }
    }
    Ok(None)
}

fn check_manager_is_user(state: &UserState) -> Option<Uuid> {
    state.manager_id
}

async fn ensure_linked_manager(change: &Change, state: &UserState) -> Result<()> {
    if let Some(manager) = check_manager_is_user(state) {
        let linked = scim_user::Entity::find_by_id(manager)
            .filter(scim_user::Column::OrganisationId.eq(change.organisation_id()))
            .one(change.conn())
            .await
            .map_err(db_error)?;
        if linked.is_none() {
            return Err(Error::invalid(
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
                "is not the id of a User of this organisation",
            ));
        }
    }
    Ok(())
}

/// The patch that makes a person hold `state` (its active state apart).
fn patch_for(state: &UserState, subject: Subject) -> PersonPatch {
    PersonPatch {
        subject: Some(subject),
        email: Some(state.email.clone()),
        display_name: Some(state.display_name.clone()),
        department: Some(state.department.clone()),
        job_title: Some(state.title.clone()),
        manager_id: Some(state.manager_id),
        role: None,
        external_id: Some(state.external_id.clone()),
    }
}

fn link_event(action: &'static str, id: Uuid, user_name: &str) -> NewEvent {
    person_event(action, id, None, json!({"scim_user_name": user_name}))
}

/// Creates a SCIM User: a new person (MEMBER, or as their groups say), or
/// an unlinked person of the organisation with the same subject (or
/// externalId) adopted and updated. A userName already used (in any case)
/// is ALREADY_EXISTS.
#[tracing::instrument(skip(db, state))]
pub async fn create_user(
    db: &DatabaseConnection,
    by: Provisioner,
    subject_attribute: SubjectAttribute,
    state: &UserState,
) -> Result<User> {
    let organisation_id = by.organisation_id;
    let mut change =
        Change::begin_provisioning(db, organisation_id, by.token_id, Action::CreatePerson).await?;
    let subject = state.subject(subject_attribute)?;
    ensure_linked_manager(&change, state).await?;
    let taken = scim_user::Entity::find()
        .filter(scim_user::Column::OrganisationId.eq(organisation_id))
        .filter(scim_user::Column::UserNameKey.eq(state.user_name.key()))
        .one(change.conn())
        .await
        .map_err(db_error)?;
    if taken.is_some() {
        return Err(Error::AlreadyExists(
            "a User with this userName already exists".into(),
        ));
    }
    let adopted = adoptable(
        change.conn(),
        organisation_id,
        &subject,
        state.external_id.as_ref().map(|e| e.as_str()),
        state.email.as_str(),
    )
    .await?;
    let id = match adopted {
        Some(current) => {
            let patch = patch_for(state, subject).without_unchanged(&current);
            let current = if patch.is_empty() {
                current
            } else {
                people::write_patch(&mut change, &current, &patch).await?
            };
            if current.active != state.active {
                people::write_active(&mut change, &current, state.active).await?;
            }
            current.id
        }
        None => {
            let id = Uuid::now_v7();
            let new = NewPerson {
                subject,
                email: state.email.clone(),
                display_name: state.display_name.clone(),
                department: state.department.clone(),
                job_title: state.title.clone(),
                manager_id: state.manager_id,
                role: Role::Member,
                external_id: state.external_id.clone(),
            };
            let created = people::insert(change.conn(), organisation_id, &new, id).await?;
            change.event(person_event(
                "person.created",
                id,
                None,
                people::audit_view(&created),
            ));
            if !state.active {
                people::write_active(&mut change, &created, false).await?;
            }
            id
        }
    };
    scim_user::ActiveModel {
        person_id: Set(id),
        organisation_id: Set(organisation_id),
        user_name: Set(state.user_name.as_str().to_owned()),
        user_name_key: Set(state.user_name.key()),
        profile_json: Set(state.profile_json.clone()),
        create_time: Set(Utc::now()),
    }
    .insert(change.conn())
    .await
    .map_err(write_error)?;
    change.event(link_event("person.linked", id, state.user_name.as_str()));
    let user = get_user(change.conn(), organisation_id, id).await?;
    change.commit().await?;
    Ok(user)
}

/// Replaces a user with what `next` computes from the current one (PUT and
/// PATCH), atomically: `if_match` (a version) must be current. Nothing
/// changed, nothing written (no version bump, no event): identity
/// providers resend what they sent.
#[tracing::instrument(skip(db, next))]
pub async fn modify_user(
    db: &DatabaseConnection,
    by: Provisioner,
    subject_attribute: SubjectAttribute,
    id: Uuid,
    if_match: Option<i64>,
    next: impl FnOnce(&User) -> Result<UserState>,
) -> Result<User> {
    let organisation_id = by.organisation_id;
    let mut change =
        Change::begin_provisioning(db, organisation_id, by.token_id, Action::UpdatePerson).await?;
    let current = get_user(change.conn(), organisation_id, id).await?;
    if if_match.is_some_and(|v| v != current.person.version) {
        return Err(Error::stale_etag("User"));
    }
    let state = next(&current)?;
    let subject = state.subject(subject_attribute)?;
    if state.manager_id != current.person.manager_id {
        ensure_linked_manager(&change, &state).await?;
    }
    let link_changed =
        state.user_name.as_str() != current.user_name || state.profile_json != current.profile_json;
    let patch = patch_for(&state, subject).without_unchanged(&current.person);
    let mut person = current.person.clone();
    if !patch.is_empty() {
        person = people::write_patch(&mut change, &person, &patch).await?;
    }
    if person.active != state.active {
        person = people::write_active(&mut change, &person, state.active).await?;
    }
    if link_changed {
        if state.user_name.key() != current.user_name.to_lowercase() {
            let taken = scim_user::Entity::find()
                .filter(scim_user::Column::OrganisationId.eq(organisation_id))
                .filter(scim_user::Column::UserNameKey.eq(state.user_name.key()))
                .filter(scim_user::Column::PersonId.ne(id))
                .one(change.conn())
                .await
                .map_err(db_error)?;
            if taken.is_some() {
                return Err(Error::AlreadyExists(
                    "a User with this userName already exists".into(),
                ));
            }
        }
        scim_user::ActiveModel {
            person_id: Set(id),
            user_name: Set(state.user_name.as_str().to_owned()),
            user_name_key: Set(state.user_name.key()),
            profile_json: Set(state.profile_json.clone()),
            ..Default::default()
        }
        .update(change.conn())
        .await
        .map_err(write_error)?;
        if person.version == current.person.version {
            // Only what the link holds changed: the version still moves
            // (it is the User's ETag).
            let model = person::ActiveModel {
                update_time: Set(Utc::now()),
                version: Set(person.version + 1),
                ..Default::default()
            };
            people::swap(change.conn(), id, person.version, model).await?;
        }
        if state.user_name.as_str() != current.user_name {
            change.event(person_event(
                "person.updated",
                id,
                Some(json!({"scim_user_name": current.user_name})),
                json!({"scim_user_name": state.user_name.as_str()}),
            ));
        }
    }
    let user = get_user(change.conn(), organisation_id, id).await?;
    change.commit().await?;
    Ok(user)
}

/// Deletes a SCIM User: the person is deactivated (losing access at once)
/// and unlinked (the id then answers 404, and their groups no longer
/// hold them); the person, their signatures, decisions and audit history
/// stay.
#[tracing::instrument(skip(db))]
pub async fn delete_user(
    db: &DatabaseConnection,
    by: Provisioner,
    id: Uuid,
    if_match: Option<i64>,
) -> Result<()> {
    let organisation_id = by.organisation_id;
    let mut change =
        Change::begin_provisioning(db, organisation_id, by.token_id, Action::DeactivatePerson)
            .await?;
    let current = get_user(change.conn(), organisation_id, id).await?;
    if if_match.is_some_and(|v| v != current.person.version) {
        return Err(Error::stale_etag("User"));
    }
    if current.person.active {
        people::write_active(&mut change, &current.person, false).await?;
    }
    member::Entity::delete_many()
        .filter(member::Column::PersonId.eq(id))
        .exec(change.conn())
        .await
        .map_err(db_error)?;
    scim_user::Entity::delete_by_id(id)
        .exec(change.conn())
        .await
        .map_err(db_error)?;
    change.event(person_event(
        "person.unlinked",
        id,
        Some(json!({"scim_user_name": current.user_name})),
        json!({"scim_user_name": null}),
    ));
    change.commit().await
}

async fn members_of(
    conn: &impl ConnectionTrait,
    group_ids: &[Uuid],
) -> Result<BTreeMap<Uuid, Vec<MemberRef>>> {
    let mut out: BTreeMap<Uuid, Vec<MemberRef>> = BTreeMap::new();
    for chunk in group_ids.chunks(crate::CHUNK) {
        let rows: Vec<(Uuid, Uuid, String)> = member::Entity::find()
            .select_only()
            .column(member::Column::GroupId)
            .column(person::Column::Id)
            .column(person::Column::DisplayName)
            .join(
                JoinType::InnerJoin,
                member::Entity::belongs_to(person::Entity)
                    .from(member::Column::PersonId)
                    .to(person::Column::Id)
                    .into(),
            )
            .filter(member::Column::GroupId.is_in(chunk.to_vec()))
            .order_by_asc(person::Column::Id)
            .into_tuple()
            .all(conn)
            .await
            .map_err(db_error)?;
        for (group_id, id, display_name) in rows {
            out.entry(group_id)
                .or_default()
                .push(MemberRef { id, display_name });
        }
    }
    Ok(out)
}

fn group_from(m: group::Model, members: Vec<MemberRef>) -> Group {
    Group {
        id: m.id,
        display_name: m.display_name,
        external_id: m.external_id,
        members,
        create_time: m.create_time,
        update_time: m.update_time,
        version: m.version,
    }
}

/// A group of the organisation, with its members when `with_members`.
#[tracing::instrument(skip(conn))]
pub async fn get_group(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    id: Uuid,
    with_members: bool,
) -> Result<Group> {
    let found = group::Entity::find_by_id(id)
        .filter(group::Column::OrganisationId.eq(organisation_id))
        .one(conn)
        .await
        .map_err(db_error)?
        .ok_or(Error::NotFound { resource: "Group" })?;
    let members = if with_members {
        members_of(conn, &[id])
            .await?
            .remove(&id)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    Ok(group_from(found, members))
}

fn group_condition(filter: &Filter<GroupAttr>) -> Condition {
    match filter {
        Filter::And(a, b) => Condition::all()
            .add(group_condition(a))
            .add(group_condition(b)),
        Filter::Or(a, b) => Condition::any()
            .add(group_condition(a))
            .add(group_condition(b)),
        Filter::Not(a) => group_condition(a).not(),
        Filter::Present(attr) => match attr {
            GroupAttr::ExternalId => Condition::all().add(group::Column::ExternalId.is_not_null()),
            GroupAttr::Member => Condition::all().add(
                group::Column::Id.in_subquery(
                    Query::select()
                        .column(member::Column::GroupId)
                        .from(member::Entity)
                        .to_owned(),
                ),
            ),
            _ => Condition::all(),
        },
        Filter::Compare(attr, op, value) => match attr {
            GroupAttr::Id => id_compare(group::Column::Id, *op, value),
            GroupAttr::DisplayName => compare(
                Expr::col((group::Entity, group::Column::DisplayKey)),
                *op,
                value.to_lowercase(),
            ),
            GroupAttr::ExternalId => compare(
                Expr::col((group::Entity, group::Column::ExternalId)),
                *op,
                value.clone(),
            ),
            GroupAttr::Member => match (op, Uuid::try_parse(value)) {
                (CompareOp::Eq | CompareOp::Ne, Ok(person_id)) => {
                    let sub = Query::select()
                        .column(member::Column::GroupId)
                        .from(member::Entity)
                        .and_where(member::Column::PersonId.eq(person_id))
                        .to_owned();
                    Condition::all().add(if *op == CompareOp::Eq {
                        group::Column::Id.in_subquery(sub)
                    } else {
                        group::Column::Id.not_in_subquery(sub)
                    })
                }
                (CompareOp::Ne, Err(_)) => Condition::all(),
                _ => nothing(),
            },
        },
    }
}

/// One page of the organisation's groups matching `filter`, by creation:
/// with the total that match.
#[tracing::instrument(skip(db, filter))]
pub async fn list_groups(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    filter: Option<&Filter<GroupAttr>>,
    offset: u64,
    count: u64,
    with_members: bool,
) -> Result<(u64, Vec<Group>)> {
    let mut query = group::Entity::find().filter(group::Column::OrganisationId.eq(organisation_id));
    if let Some(filter) = filter {
        query = query.filter(group_condition(filter));
    }
    let total = query.clone().count(db).await.map_err(db_error)?;
    if count == 0 {
        return Ok((total, Vec::new()));
    }
    let rows = query
        .order_by_asc(group::Column::Id)
        .offset(offset)
        .limit(count)
        .all(db)
        .await
        .map_err(db_error)?;
    let mut members = if with_members {
        members_of(db, &rows.iter().map(|g| g.id).collect::<Vec<_>>()).await?
    } else {
        BTreeMap::new()
    };
    Ok((
        total,
        rows.into_iter()
            .map(|g| {
                let m = members.remove(&g.id).unwrap_or_default();
                group_from(g, m)
            })
            .collect(),
    ))
}

/// Checks that every member is a linked user of the organisation.
async fn ensure_members(change: &Change, members: &[Uuid]) -> Result<()> {
    let mut found = BTreeSet::new();
    for chunk in members.chunks(crate::CHUNK) {
        let ids: Vec<Uuid> = scim_user::Entity::find()
            .select_only()
            .column(scim_user::Column::PersonId)
            .filter(scim_user::Column::OrganisationId.eq(change.organisation_id()))
            .filter(scim_user::Column::PersonId.is_in(chunk.to_vec()))
            .into_tuple()
            .all(change.conn())
            .await
            .map_err(db_error)?;
        found.extend(ids);
    }
    if let Some(missing) = members.iter().find(|m| !found.contains(m)) {
        return Err(Error::invalid(
            "members.value",
            format!("{missing} is not the id of a User of this organisation"),
        ));
    }
    Ok(())
}

async fn add_members(change: &Change, group_id: Uuid, ids: &[Uuid]) -> Result<()> {
    for chunk in ids.chunks(crate::CHUNK) {
        member::Entity::insert_many(chunk.iter().map(|person_id| member::ActiveModel {
            group_id: Set(group_id),
            person_id: Set(*person_id),
            organisation_id: Set(change.organisation_id()),
        }))
        .exec(change.conn())
        .await
        .map_err(db_error)?;
    }
    Ok(())
}

fn group_event(
    action: &'static str,
    id: Uuid,
    before: Option<serde_json::Value>,
    after: serde_json::Value,
) -> NewEvent {
    NewEvent {
        project_id: None,
        action,
        resource_type: "group",
        resource_id: id.to_string(),
        before,
        after,
        chained: false,
    }
}

/// Creates a group with its members; their roles follow its mapping.
#[tracing::instrument(skip(db, state))]
pub async fn create_group(
    db: &DatabaseConnection,
    by: Provisioner,
    state: &GroupState,
) -> Result<Group> {
    let organisation_id = by.organisation_id;
    let mut change =
        Change::begin_provisioning(db, organisation_id, by.token_id, Action::UpdatePersonRole)
            .await?;
    ensure_members(&change, &state.members).await?;
    let id = Uuid::now_v7();
    let now = Utc::now();
    group::ActiveModel {
        id: Set(id),
        organisation_id: Set(organisation_id),
        display_name: Set(state.display_name.as_str().to_owned()),
        display_key: Set(state.display_name.key()),
        external_id: Set(state.external_id.as_ref().map(|e| e.as_str().to_owned())),
        create_time: Set(now),
        update_time: Set(now),
        version: Set(1),
    }
    .insert(change.conn())
    .await
    .map_err(group_write_error)?;
    add_members(&change, id, &state.members).await?;
    change.event(group_event(
        "group.created",
        id,
        None,
        json!({"display_name": state.display_name.as_str(), "members_added": state.members.len()}),
    ));
    sync_roles(&mut change, state.members.iter().copied()).await?;
    let created = get_group(change.conn(), organisation_id, id, true).await?;
    change.commit().await?;
    Ok(created)
}

/// Replaces a group with what `next` computes from the current one (with
/// its members), atomically; the roles of the members added, removed (and
/// all of them on a rename) follow. Nothing changed, nothing written.
#[tracing::instrument(skip(db, next))]
pub async fn modify_group(
    db: &DatabaseConnection,
    by: Provisioner,
    id: Uuid,
    if_match: Option<i64>,
    next: impl FnOnce(&Group) -> Result<GroupState>,
) -> Result<Group> {
    let organisation_id = by.organisation_id;
    let mut change =
        Change::begin_provisioning(db, organisation_id, by.token_id, Action::UpdatePersonRole)
            .await?;
    let current = get_group(change.conn(), organisation_id, id, true).await?;
    if if_match.is_some_and(|v| v != current.version) {
        return Err(Error::stale_etag("Group"));
    }
    let state = next(&current)?;
    let before: BTreeSet<Uuid> = current.members.iter().map(|m| m.id).collect();
    let after: BTreeSet<Uuid> = state.members.iter().copied().collect();
    let added: Vec<Uuid> = after.difference(&before).copied().collect();
    let removed: Vec<Uuid> = before.difference(&after).copied().collect();
    let renamed = state.display_name.as_str() != current.display_name;
    let external = state.external_id.as_ref().map(|e| e.as_str().to_owned());
    if added.is_empty() && removed.is_empty() && !renamed && external == current.external_id {
        return Ok(current);
    }
    ensure_members(&change, &added).await?;
    let updated = group::Entity::update_many()
        .set(group::ActiveModel {
            display_name: Set(state.display_name.as_str().to_owned()),
            display_key: Set(state.display_name.key()),
            external_id: Set(external),
            update_time: Set(Utc::now()),
            version: Set(current.version + 1),
            ..Default::default()
        })
        .filter(group::Column::Id.eq(id))
        .filter(group::Column::Version.eq(current.version))
        .exec(change.conn())
        .await
        .map_err(group_write_error)?;
    if updated.rows_affected == 0 {
        return Err(Error::stale_etag("Group"));
    }
    for chunk in removed.chunks(crate::CHUNK) {
        member::Entity::delete_many()
            .filter(member::Column::GroupId.eq(id))
            .filter(member::Column::PersonId.is_in(chunk.to_vec()))
            .exec(change.conn())
            .await
            .map_err(db_error)?;
    }
    add_members(&change, id, &added).await?;
    change.event(group_event(
        "group.updated",
        id,
        renamed.then(|| json!({"display_name": current.display_name})),
        json!({
            "display_name": state.display_name.as_str(),
            "members_added": added,
            "members_removed": removed,
        }),
    ));
    let touched: Vec<Uuid> = if renamed {
        before.union(&after).copied().collect()
    } else {
        added.iter().chain(removed.iter()).copied().collect()
    };
    sync_roles(&mut change, touched).await?;
    let group = get_group(change.conn(), organisation_id, id, true).await?;
    change.commit().await?;
    Ok(group)
}

/// Deletes a group; its former members' roles follow.
#[tracing::instrument(skip(db))]
pub async fn delete_group(
    db: &DatabaseConnection,
    by: Provisioner,
    id: Uuid,
    if_match: Option<i64>,
) -> Result<()> {
    let organisation_id = by.organisation_id;
    let mut change =
        Change::begin_provisioning(db, organisation_id, by.token_id, Action::UpdatePersonRole)
            .await?;
    let current = get_group(change.conn(), organisation_id, id, true).await?;
    if if_match.is_some_and(|v| v != current.version) {
        return Err(Error::stale_etag("Group"));
    }
    member::Entity::delete_many()
        .filter(member::Column::GroupId.eq(id))
        .exec(change.conn())
        .await
        .map_err(db_error)?;
    group::Entity::delete_by_id(id)
        .exec(change.conn())
        .await
        .map_err(db_error)?;
    change.event(group_event(
        "group.deleted",
        id,
        Some(json!({"display_name": current.display_name})),
        json!({}),
    ));
    sync_roles(&mut change, current.members.iter().map(|m| m.id)).await?;
    change.commit().await
}
