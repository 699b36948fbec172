//! Who the caller is in an organisation and what a write holds: the
//! membership read, the organisation's row lock, the lock of the people and
//! projects a write names, and the SQL form of the access policy's
//! visibility. Below every module that reads or writes on a caller's behalf
//! (the unit of work, the lists, the roll-ups).

use chrono::Utc;
use jalon_core::{
    Error, Result,
    authz::{Role, Visibility},
    values::{CurrencyCode, DiscountRate},
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, sea_query::LockType,
};
use uuid::Uuid;

use crate::{
    entity::{organisation as org, person, project, provisioning_token},
    error::db_error,
    is_postgres,
};

/// What the caller is in an organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    /// The caller's person id in the organisation.
    pub person_id: Uuid,
    pub role: Role,
    pub organisation_deleted: bool,
}

impl Membership {
    /// The member as the access policy sees them.
    pub fn member(&self) -> jalon_core::authz::Member {
        jalon_core::authz::Member {
            person_id: self.person_id,
            role: self.role,
        }
    }
}

/// The active membership of `subject` in `organisation_id`, if any.
#[tracing::instrument(skip(db))]
pub async fn membership(
    db: &impl ConnectionTrait,
    organisation_id: Uuid,
    subject: &str,
) -> Result<Option<Membership>> {
    Ok(arrival(db, organisation_id, subject)
        .await?
        .and_then(|a| a.membership))
}

/// An organisation as a change finds it: the caller's active membership,
/// whether it is deleted, and the terms its figures are computed in.
pub(crate) struct Arrival {
    pub membership: Option<Membership>,
    pub organisation_deleted: bool,
    /// None when the stored values do not parse (whoever needs them reads
    /// them again and says what is wrong).
    pub terms: Option<Terms>,
}

/// What an organisation's figures are computed in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Terms {
    pub currency: CurrencyCode,
    /// The yearly discount rate (NPV); zero when unset.
    pub rate: rust_decimal::Decimal,
}

impl Terms {
    /// From an organisation's row as stored.
    pub(crate) fn parse(
        organisation_id: Uuid,
        default_currency: &str,
        discount_rate: &str,
    ) -> Result<Terms> {
        let currency = CurrencyCode::parse(default_currency).map_err(|e| {
            Error::Internal(format!(
                "organisation {organisation_id}: stored currency {default_currency:?}: {e}"
            ))
        })?;
        let rate = DiscountRate::parse(discount_rate)
            .map(|r| r.value())
            .unwrap_or_default();
        Ok(Terms { currency, rate })
    }

    /// Reads an organisation's terms.
    pub(crate) async fn read(conn: &impl ConnectionTrait, organisation_id: Uuid) -> Result<Terms> {
        let (currency, rate): (String, String) = org::Entity::find_by_id(organisation_id)
            .select_only()
            .column(org::Column::DefaultCurrency)
            .column(org::Column::DiscountRate)
            .into_tuple()
            .one(conn)
            .await
            .map_err(db_error)?
            .ok_or(Error::NotFound {
                resource: "organisation",
            })?;
        Terms::parse(organisation_id, &currency, &rate)
    }
}

/// The organisation and the caller's active membership in it, in one
/// read (None: no such organisation).
pub(crate) async fn arrival(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    subject: &str,
) -> Result<Option<Arrival>> {
    let p = |n| crate::aggregates::placeholder(conn, n);
    let sql = format!(
        "SELECT o.delete_time, o.default_currency, o.discount_rate, \
           m.id AS caller_person_id, m.role AS caller_role \
         FROM organisations o \
         LEFT JOIN people m ON m.organisation_id = o.id AND m.subject = {} AND m.active = {} \
         WHERE o.id = {}",
        p(1),
        p(2),
        p(3)
    );
    let Some(row) = conn
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            conn.get_database_backend(),
            sql,
            [subject.into(), true.into(), organisation_id.into()],
        ))
        .await
        .map_err(db_error)?
    else {
        return Ok(None);
    };
    let deleted: Option<chrono::DateTime<Utc>> =
        row.try_get("", "delete_time").map_err(db_error)?;
    let currency: String = row.try_get("", "default_currency").map_err(db_error)?;
    let rate: String = row.try_get("", "discount_rate").map_err(db_error)?;
    let person: Option<Uuid> = row.try_get("", "caller_person_id").map_err(db_error)?;
    let role: Option<String> = row.try_get("", "caller_role").map_err(db_error)?;
    Ok(Some(Arrival {
        membership: person.zip(role).and_then(|(person_id, role)| {
            role.parse().ok().map(|role| Membership {
                person_id,
                role,
                organisation_deleted: deleted.is_some(),
            })
        }),
        organisation_deleted: deleted.is_some(),
        terms: Terms::parse(organisation_id, &currency, &rate).ok(),
    }))
}

/// The caller's membership from a row of a combined read, whose columns
/// `caller_person_id`, `caller_role` and `delete_time_column` (the
/// organisation's) come from `people` joined to `organisations`. An unknown
/// role is no membership, as in [`membership`].
pub(crate) fn caller_membership(
    row: &sea_orm::QueryResult,
    delete_time_column: &str,
) -> Result<Option<Membership>> {
    let person_id: Uuid = row.try_get("", "caller_person_id").map_err(db_error)?;
    let role: String = row.try_get("", "caller_role").map_err(db_error)?;
    let deleted: Option<chrono::DateTime<Utc>> =
        row.try_get("", delete_time_column).map_err(db_error)?;
    Ok(role.parse().ok().map(|role| Membership {
        person_id,
        role,
        organisation_deleted: deleted.is_some(),
    }))
}

/// Whether `person_id` is an active person of the organisation.
pub async fn is_active_member(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    person_id: Uuid,
) -> Result<bool> {
    Ok(person::Entity::find_by_id(person_id)
        .filter(person::Column::OrganisationId.eq(organisation_id))
        .filter(person::Column::Active.eq(true))
        .count(conn)
        .await
        .map_err(db_error)?
        > 0)
}

/// Which of `ids` are active people of the organisation, for a write that
/// names them (a sponsor, a condition owner, a signatory). On PostgreSQL
/// their rows are locked `FOR SHARE` until the change ends, so a concurrent
/// deactivation waits for it instead of slipping in between the check and
/// the write (on SQLite the write transaction excludes it).
pub(crate) async fn active_members(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    ids: impl IntoIterator<Item = Uuid>,
) -> Result<std::collections::BTreeSet<Uuid>> {
    let mut wanted: Vec<Uuid> = ids.into_iter().collect();
    wanted.sort();
    wanted.dedup();
    if wanted.is_empty() {
        return Ok(std::collections::BTreeSet::new());
    }
    let mut query = person::Entity::find()
        .select_only()
        .column(person::Column::Id)
        .filter(person::Column::OrganisationId.eq(organisation_id))
        .filter(person::Column::Id.is_in(wanted))
        .filter(person::Column::Active.eq(true))
        .order_by_asc(person::Column::Id);
    if is_postgres(conn) {
        query = query.lock(sea_orm::sea_query::LockType::Share);
    }
    let found: Vec<Uuid> = query.into_tuple().all(conn).await.map_err(db_error)?;
    Ok(found.into_iter().collect())
}

/// Locks the organisation row for the rest of the transaction, so that rules
/// counting its people (the last admin) hold under concurrent writers. On
/// SQLite the write transaction already holds the database's write lock.
pub(crate) async fn lock_organisation(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
) -> Result<()> {
    let mut query = org::Entity::find_by_id(organisation_id);
    if is_postgres(conn) {
        // NO KEY UPDATE, not UPDATE: writes of other tables that reference
        // the organisation (their foreign keys take KEY SHARE) go on.
        query = query.lock(sea_orm::sea_query::LockType::NoKeyUpdate);
    }
    let found = query.one(conn).await.map_err(db_error)?;
    match found {
        Some(o) if o.delete_time.is_some() => Err(deleted_precondition(organisation_id)),
        Some(_) => Ok(()),
        None => Err(Error::NotFound {
            resource: "organisation",
        }),
    }
}

/// The precondition every write into a deleted organisation fails.
pub fn deleted_precondition(id: Uuid) -> Error {
    Error::precondition(
        "ORGANISATION_DELETED",
        format!("organisations/{id}"),
        "the organisation is deleted and read-only; a platform administrator can undelete it",
    )
}

/// Locks the rows of projects of an organisation in id order (on
/// PostgreSQL, `FOR NO KEY UPDATE`: rows referencing them can still be
/// inserted by others; on SQLite the write transaction already excludes
/// other writers) and returns the ids that exist there.
pub(crate) async fn lock_project_rows(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    ids: &[Uuid],
) -> Result<Vec<Uuid>> {
    let mut sorted = ids.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut found = Vec::with_capacity(sorted.len());
    for chunk in sorted.chunks(crate::CHUNK) {
        let mut query = project::Entity::find()
            .select_only()
            .column(project::Column::Id)
            .filter(project::Column::OrganisationId.eq(organisation_id))
            .filter(project::Column::Id.is_in(chunk.to_vec()))
            .order_by_asc(project::Column::Id);
        if is_postgres(conn) {
            query = query.lock(LockType::NoKeyUpdate);
        }
        let rows: Vec<Uuid> = query.into_tuple().all(conn).await.map_err(db_error)?;
        found.extend(rows);
    }
    Ok(found)
}

/// The SQL predicate of a [`Visibility`] over a table's lead and sponsor
/// columns: the one translation every list and roll-up uses.
pub(crate) fn visibility_condition(
    visibility: Visibility,
    lead: impl ColumnTrait,
    sponsor: impl ColumnTrait,
) -> sea_orm::Condition {
    match visibility {
        Visibility::All => sea_orm::Condition::all(),
        Visibility::LeadOrSponsor(person) => sea_orm::Condition::any()
            .add(lead.eq(person))
            .add(sponsor.eq(person)),
    }
}

/// The audit actor of a provisioning token's changes.
pub fn provisioning_actor(token_id: Uuid) -> String {
    format!("scim-token:{token_id}")
}

/// Inside a provisioning change: the token must still be valid.
pub(crate) async fn check_provisioning_token(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    token_id: Uuid,
) -> Result<()> {
    let revoked: Option<Option<chrono::DateTime<Utc>>> =
        provisioning_token::Entity::find_by_id(token_id)
            .filter(provisioning_token::Column::OrganisationId.eq(organisation_id))
            .select_only()
            .column(provisioning_token::Column::RevokeTime)
            .into_tuple()
            .one(conn)
            .await
            .map_err(db_error)?;
    match revoked {
        Some(None) => lock_organisation(conn, organisation_id).await,
        _ => Err(Error::Unauthenticated),
    }
}
