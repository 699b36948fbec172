//! One unit of work per change: a transaction that owns the projects it
//! locks, the audit events it records and the refresh of the touched
//! projects' figures, done once at commit.
//!
//! Locking (see the README, "Concurrency"): a change locks the rows of the
//! projects it writes (on PostgreSQL `FOR NO KEY UPDATE`, in id order, so
//! two changes never wait on each other in a circle; on SQLite the write
//! transaction holds the database's write lock). Nothing organisation-wide
//! is locked for the length of the change: the portfolio counters are
//! moved at the end, in name order, and audit events are written last
//! (non-chained events take their sequence from a database sequence on
//! PostgreSQL, so they wait for nobody; the hash-chained events of
//! signatures and decisions are ordered by the organisation's log head).

use std::collections::BTreeSet;

use jalon_core::{Error, Result};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, sea_query::LockType,
};
use uuid::Uuid;

use crate::{
    audit::{self, Actor, NewEvent},
    begin_write, commit,
    entity::{organisation as org, project},
    error::db_error,
    is_postgres,
};

/// A change in progress.
pub struct Change {
    txn: DatabaseTransaction,
    organisation_id: Uuid,
    actor: Actor,
    locked: BTreeSet<Uuid>,
    touched: BTreeSet<Uuid>,
    events: Vec<NewEvent>,
}

impl Change {
    /// Begins a change of `organisation_id`'s data by `actor`: the
    /// organisation must exist and not be deleted.
    pub async fn begin(
        db: &DatabaseConnection,
        organisation_id: Uuid,
        actor: &Actor,
    ) -> Result<Change> {
        let txn = begin_write(db).await?;
        let found = org::Entity::find_by_id(organisation_id)
            .select_only()
            .column(org::Column::DeleteTime)
            .into_tuple::<Option<chrono::DateTime<chrono::Utc>>>()
            .one(&txn)
            .await
            .map_err(db_error)?;
        match found {
            None => Err(Error::NotFound {
                resource: "organisation",
            }),
            Some(Some(_)) => Err(crate::organisations::deleted_precondition(organisation_id)),
            Some(None) => Ok(Change {
                txn,
                organisation_id,
                actor: actor.clone(),
                locked: BTreeSet::new(),
                touched: BTreeSet::new(),
                events: Vec::new(),
            }),
        }
    }

    /// The transaction.
    pub fn conn(&self) -> &DatabaseTransaction {
        &self.txn
    }

    pub fn organisation_id(&self) -> Uuid {
        self.organisation_id
    }

    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// Locks the rows of projects of the organisation (those not locked
    /// yet), in id order, and marks them touched: their figures are
    /// refreshed at commit. Returns the ids that exist in the organisation.
    pub async fn lock_projects(
        &mut self,
        ids: impl IntoIterator<Item = Uuid>,
    ) -> Result<BTreeSet<Uuid>> {
        let wanted: BTreeSet<Uuid> = ids.into_iter().collect();
        let new: Vec<Uuid> = wanted.difference(&self.locked).copied().collect();
        let found = lock_project_rows(&self.txn, self.organisation_id, &new).await?;
        self.locked.extend(found);
        Ok(wanted.intersection(&self.locked).copied().collect())
    }

    /// Marks a project (locked before) as changed.
    pub fn touch(&mut self, project_id: Uuid) {
        self.touched.insert(project_id);
    }

    /// Records an audit event at commit.
    pub fn event(&mut self, event: NewEvent) {
        self.events.push(event);
    }

    /// Refreshes the touched projects' figures, writes the audit events and
    /// commits.
    pub async fn commit(self) -> Result<()> {
        let touched: Vec<Uuid> = self.touched.into_iter().collect();
        crate::portfolio::refresh_locked(&self.txn, self.organisation_id, &touched).await?;
        for event in self.events {
            audit::record(&self.txn, self.organisation_id, &self.actor, event).await?;
        }
        commit(self.txn).await
    }
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
    for chunk in sorted.chunks(crate::aggregates::CHUNK) {
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
