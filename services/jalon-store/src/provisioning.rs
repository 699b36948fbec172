//! Provisioning (SCIM) set-up of an organisation: its tokens (only a
//! SHA-256 hash of each secret is kept; a presented secret is checked by
//! its id, then its hash compared in constant time), and the mapping of
//! SCIM group names to roles, which the roles of provisioned people follow
//! (`sync_roles`).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use jalon_core::{
    Error, Result,
    authz::{Action, Role},
    person::PersonPatch,
    scim::{GroupName, role_from_groups},
    values::DisplayName,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, sea_query::OnConflict,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    audit::NewEvent,
    change::{Caller, Change},
    entity::{
        group_role_mapping as mapping, organisation as org, person, provisioning_token as token,
        scim_group as group, scim_group_member as member, scim_user,
    },
    error::db_error,
    people,
};

/// The audit actor of a token's changes: `scim-token:<id>`.
pub use crate::access::provisioning_actor as actor_subject;

/// The prefix of every provisioning secret (secret scanners can find them).
pub const SECRET_PREFIX: &str = "jsp_";

/// How stale a token's last-used time may get before a request refreshes
/// it (a write per request would serialise SCIM reads on SQLite).
const LAST_USED_PRECISION_SECS: i64 = 60;

/// A provisioning token, without its secret.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub display_name: String,
    pub created_by: String,
    pub create_time: DateTime<Utc>,
    pub last_used_time: Option<DateTime<Utc>>,
    pub revoke_time: Option<DateTime<Utc>>,
}

fn token_from(m: token::Model) -> Token {
    Token {
        id: m.id,
        organisation_id: m.organisation_id,
        display_name: m.display_name,
        created_by: m.created_by,
        create_time: m.create_time,
        last_used_time: m.last_used_time,
        revoke_time: m.revoke_time,
    }
}

fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Equality of two byte strings in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token id a secret names, if it has the secret's shape.
fn secret_id(secret: &str) -> Option<Uuid> {
    let rest = secret.strip_prefix(SECRET_PREFIX)?;
    let (id, random) = rest.split_once('_')?;
    if random.len() < 32 {
        return None;
    }
    Uuid::try_parse(id).ok()
}

/// Creates a token; `random` is the secret's random part (at least 32
/// characters, from the server's randomness). Returns the token and its
/// secret, which is not kept.
#[tracing::instrument(skip(db, caller, random))]
pub async fn create_token(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    caller: &Caller,
    display_name: &DisplayName,
    random: &str,
) -> Result<(Token, String)> {
    if random.len() < 32 {
        return Err(Error::Internal("a provisioning secret is too short".into()));
    }
    let mut change =
        Change::begin(db, organisation_id, caller, Action::CreateProvisioningToken).await?;
    let id = Uuid::now_v7();
    let secret = format!("{SECRET_PREFIX}{}_{random}", id.simple());
    let created = token::ActiveModel {
        id: Set(id),
        organisation_id: Set(organisation_id),
        display_name: Set(display_name.as_str().to_owned()),
        secret_hash: Set(hash(&secret)),
        created_by: Set(caller.subject.clone()),
        create_time: Set(Utc::now()),
        last_used_time: Set(None),
        revoke_time: Set(None),
    }
    .insert(change.conn())
    .await
    .map_err(db_error)?;
    change.event(NewEvent {
        project_id: None,
        action: "provisioning_token.created",
        resource_type: "provisioning_token",
        resource_id: id.to_string(),
        before: None,
        after: json!({"display_name": display_name.as_str()}),
        chained: false,
    });
    change.commit().await?;
    Ok((token_from(created), secret))
}

/// The organisation's tokens, oldest first.
#[tracing::instrument(skip(db))]
pub async fn list_tokens(db: &DatabaseConnection, organisation_id: Uuid) -> Result<Vec<Token>> {
    Ok(token::Entity::find()
        .filter(token::Column::OrganisationId.eq(organisation_id))
        .order_by_asc(token::Column::Id)
        .all(db)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(token_from)
        .collect())
}

/// Revokes a token (a revoked one is answered as is).
#[tracing::instrument(skip(db, caller))]
pub async fn revoke_token(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    caller: &Caller,
    id: Uuid,
) -> Result<Token> {
    let mut change =
        Change::begin(db, organisation_id, caller, Action::RevokeProvisioningToken).await?;
    let found = token::Entity::find_by_id(id)
        .filter(token::Column::OrganisationId.eq(organisation_id))
        .one(change.conn())
        .await
        .map_err(db_error)?
        .ok_or(Error::NotFound {
            resource: "provisioning token",
        })?;
    if found.revoke_time.is_some() {
        return Ok(token_from(found));
    }
    let now = Utc::now();
    let revoked = token::ActiveModel {
        id: Set(id),
        revoke_time: Set(Some(now)),
        ..Default::default()
    }
    .update(change.conn())
    .await
    .map_err(db_error)?;
    change.event(NewEvent {
        project_id: None,
        action: "provisioning_token.revoked",
        resource_type: "provisioning_token",
        resource_id: id.to_string(),
        before: None,
        after: json!({"display_name": found.display_name}),
        chained: false,
    });
    change.commit().await?;
    Ok(token_from(revoked))
}

/// Who a valid provisioning secret is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provisioner {
    pub token_id: Uuid,
    pub organisation_id: Uuid,
}

/// Checks a presented secret: `None` when it is not a valid token's
/// (unknown, revoked, malformed, or its organisation deleted), whatever the
/// reason. Refreshes the token's last-used time when it is a minute old.
#[tracing::instrument(skip_all)]
pub async fn authenticate(db: &DatabaseConnection, secret: &str) -> Result<Option<Provisioner>> {
    let Some(id) = secret_id(secret) else {
        return Ok(None);
    };
    let Some(found) = token::Entity::find_by_id(id)
        .one(db)
        .await
        .map_err(db_error)?
    else {
        return Ok(None);
    };
    if !constant_time_eq(hash(secret).as_bytes(), found.secret_hash.as_bytes())
        || found.revoke_time.is_some()
    {
        return Ok(None);
    }
    let deleted: Option<Option<DateTime<Utc>>> = org::Entity::find_by_id(found.organisation_id)
        .select_only()
        .column(org::Column::DeleteTime)
        .into_tuple()
        .one(db)
        .await
        .map_err(db_error)?;
    if !matches!(deleted, Some(None)) {
        return Ok(None);
    }
    let now = Utc::now();
    if found
        .last_used_time
        .is_none_or(|t| now - t > Duration::seconds(LAST_USED_PRECISION_SECS))
    {
        token::Entity::update_many()
            .col_expr(token::Column::LastUsedTime, now.into())
            .filter(token::Column::Id.eq(id))
            .exec(db)
            .await
            .map_err(db_error)?;
    }
    Ok(Some(Provisioner {
        token_id: id,
        organisation_id: found.organisation_id,
    }))
}

/// A group's mapping to a role.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub group_name: String,
    pub role: Role,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

fn mapping_from(m: mapping::Model) -> Result<Mapping> {
    let role = m
        .role
        .parse()
        .map_err(|e| crate::error::unknown("group_role_mappings", m.organisation_id, e))?;
    Ok(Mapping {
        group_name: m.group_name,
        role,
        create_time: m.create_time,
        update_time: m.update_time,
    })
}

/// The organisation's mappings, by group name.
#[tracing::instrument(skip(db))]
pub async fn list_mappings(db: &DatabaseConnection, organisation_id: Uuid) -> Result<Vec<Mapping>> {
    mapping::Entity::find()
        .filter(mapping::Column::OrganisationId.eq(organisation_id))
        .order_by_asc(mapping::Column::GroupKey)
        .all(db)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(mapping_from)
        .collect()
}

/// The provisioned people in the groups named `key` (lowercased).
async fn members_of_groups_named(change: &Change, key: &str) -> Result<BTreeSet<Uuid>> {
    let ids: Vec<Uuid> = member::Entity::find()
        .select_only()
        .column(member::Column::PersonId)
        .join(
            sea_orm::JoinType::InnerJoin,
            member::Entity::belongs_to(group::Entity)
                .from(member::Column::GroupId)
                .to(group::Column::Id)
                .into(),
        )
        .filter(group::Column::OrganisationId.eq(change.organisation_id()))
        .filter(group::Column::DisplayKey.eq(key))
        .into_tuple()
        .all(change.conn())
        .await
        .map_err(db_error)?;
    Ok(ids.into_iter().collect())
}

/// Sets a group's mapping; the roles of its provisioned members follow.
/// Returns the mapping and how many roles changed.
#[tracing::instrument(skip(db, caller))]
pub async fn set_mapping(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    caller: &Caller,
    name: &GroupName,
    role: Role,
) -> Result<(Mapping, usize)> {
    let mut change =
        Change::begin(db, organisation_id, caller, Action::SetGroupRoleMapping).await?;
    change.lock_organisation().await?;
    let key = name.key();
    let before = mapping::Entity::find_by_id((organisation_id, key.clone()))
        .one(change.conn())
        .await
        .map_err(db_error)?;
    let now = Utc::now();
    let create_time = before.as_ref().map_or(now, |m| m.create_time);
    mapping::Entity::insert(mapping::ActiveModel {
        organisation_id: Set(organisation_id),
        group_key: Set(key.clone()),
        group_name: Set(name.as_str().to_owned()),
        role: Set(role.as_str().to_owned()),
        create_time: Set(create_time),
        update_time: Set(now),
    })
    .on_conflict(
        OnConflict::columns([mapping::Column::OrganisationId, mapping::Column::GroupKey])
            .update_columns([
                mapping::Column::GroupName,
                mapping::Column::Role,
                mapping::Column::UpdateTime,
            ])
            .to_owned(),
    )
    .exec(change.conn())
    .await
    .map_err(db_error)?;
    change.event(NewEvent {
        project_id: None,
        action: "group_mapping.set",
        resource_type: "group_mapping",
        resource_id: key.clone(),
        before: before.as_ref().map(|m| json!({"role": m.role})),
        after: json!({"group_name": name.as_str(), "role": role.as_str()}),
        chained: false,
    });
    let members = members_of_groups_named(&change, &key).await?;
    let changed = sync_roles(&mut change, members).await?;
    change.commit().await?;
    Ok((
        Mapping {
            group_name: name.as_str().to_owned(),
            role,
            create_time,
            update_time: now,
        },
        changed,
    ))
}

/// Deletes a group's mapping; the roles of its provisioned members follow.
/// Returns how many roles changed.
#[tracing::instrument(skip(db, caller))]
pub async fn delete_mapping(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    caller: &Caller,
    name: &GroupName,
) -> Result<usize> {
    let mut change =
        Change::begin(db, organisation_id, caller, Action::DeleteGroupRoleMapping).await?;
    change.lock_organisation().await?;
    let key = name.key();
    let before = mapping::Entity::find_by_id((organisation_id, key.clone()))
        .one(change.conn())
        .await
        .map_err(db_error)?
        .ok_or(Error::NotFound {
            resource: "group role mapping",
        })?;
    mapping::Entity::delete_many()
        .filter(mapping::Column::OrganisationId.eq(organisation_id))
        .filter(mapping::Column::GroupKey.eq(key.as_str()))
        .exec(change.conn())
        .await
        .map_err(db_error)?;
    change.event(NewEvent {
        project_id: None,
        action: "group_mapping.deleted",
        resource_type: "group_mapping",
        resource_id: key.clone(),
        before: Some(json!({"group_name": before.group_name, "role": before.role})),
        after: json!({}),
        chained: false,
    });
    let members = members_of_groups_named(&change, &key).await?;
    let changed = sync_roles(&mut change, members).await?;
    change.commit().await?;
    Ok(changed)
}

/// Gives each of `people` that is provisioned (linked to a SCIM User) the
/// role their groups' mappings give (`role_from_groups`), inside the
/// change; promotions are written before demotions, so that moving the
/// ADMIN role from one person to another in one change keeps an ADMIN.
/// A change that leaves no active ADMIN fails LAST_ADMIN. Returns how many
/// roles changed.
pub(crate) async fn sync_roles(
    change: &mut Change,
    people_ids: impl IntoIterator<Item = Uuid>,
) -> Result<usize> {
    let organisation_id = change.organisation_id();
    let wanted: Vec<Uuid> = people_ids
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if wanted.is_empty() {
        return Ok(0);
    }
    let mappings: BTreeMap<String, Role> = list_mappings_in(change).await?;
    let mut targets: Vec<(jalon_core::person::Person, Role)> = Vec::new();
    for chunk in wanted.chunks(crate::CHUNK) {
        let linked: Vec<Uuid> = scim_user::Entity::find()
            .select_only()
            .column(scim_user::Column::PersonId)
            .filter(scim_user::Column::OrganisationId.eq(organisation_id))
            .filter(scim_user::Column::PersonId.is_in(chunk.to_vec()))
            .into_tuple()
            .all(change.conn())
            .await
            .map_err(db_error)?;
        if linked.is_empty() {
            continue;
        }
        let memberships: Vec<(Uuid, String)> = member::Entity::find()
            .select_only()
            .column(member::Column::PersonId)
            .column(group::Column::DisplayKey)
            .join(
                sea_orm::JoinType::InnerJoin,
                member::Entity::belongs_to(group::Entity)
                    .from(member::Column::GroupId)
                    .to(group::Column::Id)
                    .into(),
            )
            .filter(member::Column::PersonId.is_in(linked.clone()))
            .into_tuple()
            .all(change.conn())
            .await
            .map_err(db_error)?;
        let mut roles: BTreeMap<Uuid, Vec<Role>> = BTreeMap::new();
        for (person_id, key) in memberships {
            if let Some(role) = mappings.get(&key) {
                roles.entry(person_id).or_default().push(*role);
            }
        }
        let people = person::Entity::find()
            .filter(person::Column::OrganisationId.eq(organisation_id))
            .filter(person::Column::Id.is_in(linked))
            .all(change.conn())
            .await
            .map_err(db_error)?;
        for model in people {
            let current = people::from_model(model)?;
            let role = role_from_groups(roles.remove(&current.id).unwrap_or_default());
            if role != current.role {
                targets.push((current, role));
            }
        }
    }
    // Promotions to ADMIN first.
    targets.sort_by_key(|(_, role)| *role != Role::Admin);
    let changed = targets.len();
    for (current, role) in targets {
        let patch = PersonPatch {
            role: Some(role),
            ..PersonPatch::default()
        };
        people::write_patch(change, &current, &patch).await?;
    }
    Ok(changed)
}

async fn list_mappings_in(change: &Change) -> Result<BTreeMap<String, Role>> {
    let rows = mapping::Entity::find()
        .filter(mapping::Column::OrganisationId.eq(change.organisation_id()))
        .all(change.conn())
        .await
        .map_err(db_error)?;
    rows.into_iter()
        .map(|m| {
            let key = m.group_key.clone();
            mapping_from(m).map(|mapping| (key, mapping.role))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_name_their_token() {
        let id = Uuid::now_v7();
        let secret = format!("{SECRET_PREFIX}{}_{}", id.simple(), "a".repeat(43));
        assert_eq!(secret_id(&secret), Some(id));
        assert_eq!(
            secret_id("jsp_nothex_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            None
        );
        assert_eq!(
            secret_id(&format!("{SECRET_PREFIX}{}_short", id.simple())),
            None
        );
        assert_eq!(secret_id("Bearer something"), None);
    }

    #[test]
    fn hashes_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert_eq!(hash("x").len(), 64);
    }
}
