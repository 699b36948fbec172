//! One unit of work per change: a transaction that owns the caller's
//! membership (read inside it), the access decision (the one policy of
//! `jalon_core::authz`: the role table, then the MEMBER relationship to each
//! project), the projects it locks, the audit events it records and the
//! refresh of the touched projects' figures, done once at commit. Handlers
//! say who asks and for what; they never begin, commit or restate a rule.
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

use std::collections::{BTreeSet, HashMap};

use jalon_core::{
    Error, Result,
    authz::{self, Action, Member, Parties, Standing},
    project::Project,
    values::CurrencyCode,
};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use uuid::Uuid;

use crate::{
    access::Terms,
    audit::{self, Actor, NewEvent},
    begin_write, commit,
    events::{self, Notice},
};

/// Who asks for a change: the token's subject, and whether the
/// configuration names them a platform administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    pub platform_admin: bool,
}

/// A change in progress.
pub struct Change {
    txn: crate::WriteTxn,
    organisation_id: Uuid,
    action: Action,
    platform_admin: bool,
    member: Option<Member>,
    actor: Actor,
    locked: BTreeSet<Uuid>,
    touched: BTreeSet<Uuid>,
    events: Vec<NewEvent>,
    /// Outbox events that stand for no audit record (an organisation-level
    /// alert cleared by the change).
    notices: Vec<Notice>,
    /// The locked projects as read (without tags), kept current by the
    /// change: the refresh at commit does not read them again.
    projects: HashMap<Uuid, Project>,
    /// Projects whose underperformance flag the refresh re-evaluates.
    flag_checks: BTreeSet<Uuid>,
    /// The organisation's currency and discount rate, read with the
    /// membership (or when first needed).
    terms: Option<Terms>,
}

/// What the caller is to the thing acted on inside a project, beyond its
/// lead and sponsor.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Concerning<'a> {
    /// The owner of the gate condition acted on.
    pub condition_owner: Option<Uuid>,
    /// The required signatories of the gate review acted on.
    pub signatories: &'a [Uuid],
}

impl Change {
    /// Begins a change of `organisation_id`'s data: reads the caller's
    /// membership inside the transaction and applies the role table to
    /// `action` (another organisation answers NOT_FOUND, a role not allowed
    /// PERMISSION_DENIED); the organisation must not be deleted.
    pub async fn begin(
        db: &DatabaseConnection,
        organisation_id: Uuid,
        caller: &Caller,
        action: Action,
    ) -> Result<Change> {
        let txn = begin_write(db).await?;
        let arrival = crate::access::arrival(&txn, organisation_id, &caller.subject).await?;
        let membership = arrival.as_ref().and_then(|a| a.membership);
        authz::authorize(
            action,
            Standing {
                platform_admin: caller.platform_admin,
                role: membership.map(|m| m.role),
            },
            "organisation",
        )?;
        let arrival = arrival.ok_or(Error::NotFound {
            resource: "organisation",
        })?;
        if arrival.organisation_deleted {
            return Err(crate::access::deleted_precondition(organisation_id));
        }
        Ok(Change {
            txn,
            organisation_id,
            action,
            platform_admin: caller.platform_admin,
            member: membership.map(|m| m.member()),
            actor: Actor {
                person_id: membership.map(|m| m.person_id),
                subject: caller.subject.clone(),
            },
            locked: BTreeSet::new(),
            touched: BTreeSet::new(),
            events: Vec::new(),
            notices: Vec::new(),
            projects: HashMap::new(),
            flag_checks: BTreeSet::new(),
            terms: arrival.terms,
        })
    }

    /// Begins a change made by an organisation's provisioning token (SCIM):
    /// the token, read again inside the transaction, must still be valid
    /// (else UNAUTHENTICATED); it acts on its own organisation only, as the
    /// actor `scim-token:<id>`, and the role table does not apply (the
    /// token is not a member: what it may do is what SCIM offers).
    pub async fn begin_provisioning(
        db: &DatabaseConnection,
        organisation_id: Uuid,
        token_id: Uuid,
        action: Action,
    ) -> Result<Change> {
        let txn = begin_write(db).await?;
        crate::access::check_provisioning_token(&txn, organisation_id, token_id).await?;
        Ok(Change {
            txn,
            organisation_id,
            action,
            platform_admin: false,
            member: None,
            actor: Actor {
                person_id: None,
                subject: crate::access::provisioning_actor(token_id),
            },
            locked: BTreeSet::new(),
            touched: BTreeSet::new(),
            events: Vec::new(),
            notices: Vec::new(),
            projects: HashMap::new(),
            flag_checks: BTreeSet::new(),
            terms: None,
        })
    }

    /// Locks and reads the projects `ids` and applies the access policy of
    /// the change's action to each: the projects the caller may act on, and
    /// for each other id why not (an invisible or absent project is
    /// NOT_FOUND, named `resource`).
    pub async fn projects_for(
        &mut self,
        ids: impl IntoIterator<Item = Uuid>,
        resource: &'static str,
    ) -> Result<HashMap<Uuid, Result<Project>>> {
        let wanted: BTreeSet<Uuid> = ids.into_iter().collect();
        let found = self.lock_and_read(wanted.iter().copied().collect()).await?;
        let mut out: HashMap<Uuid, Result<Project>> = found
            .into_iter()
            .map(|p| {
                self.projects.insert(p.id, p.clone());
                let allowed = self.allow(&Parties::of(&p), resource);
                (p.id, allowed.map(|()| p))
            })
            .collect();
        for id in wanted {
            out.entry(id).or_insert(Err(Error::NotFound { resource }));
        }
        Ok(out)
    }

    /// [`Self::projects_for`] of one project, as a result.
    pub async fn project_for(&mut self, id: Uuid, resource: &'static str) -> Result<Project> {
        self.projects_for([id], resource)
            .await?
            .remove(&id)
            .unwrap_or(Err(Error::NotFound { resource }))
    }

    /// Locks and reads a project without applying the access policy yet:
    /// for actions whose policy looks at a thing inside the project (a gate
    /// review, a condition) that must be read under the lock first. Follow
    /// with [`Self::allow_concerning`].
    pub(crate) async fn locked_project(
        &mut self,
        id: Uuid,
        resource: &'static str,
    ) -> Result<Project> {
        let project = self
            .lock_and_read(vec![id])
            .await?
            .pop()
            .ok_or(Error::NotFound { resource })?;
        self.projects.insert(id, project.clone());
        Ok(project)
    }

    /// Locks and reads projects in one statement (the lock taken as the
    /// rows are read, in id order): those that exist in the organisation.
    async fn lock_and_read(&mut self, ids: Vec<Uuid>) -> Result<Vec<Project>> {
        let found = crate::rows::projects::lock_many(&self.txn, self.organisation_id, ids).await?;
        self.locked.extend(found.iter().map(|p| p.id));
        Ok(found)
    }

    /// The access policy on a project, with what the caller is to the
    /// thing acted on inside it (`concerning`), beyond its lead and sponsor.
    pub(crate) fn allow_concerning(
        &self,
        project: &Project,
        concerning: Concerning<'_>,
        resource: &'static str,
    ) -> Result<()> {
        let me = self.member.as_ref().map(|m| m.person_id);
        self.allow(
            &Parties {
                condition_owner: concerning.condition_owner,
                signatory: me.is_some_and(|me| concerning.signatories.contains(&me)),
                ..Parties::of(project)
            },
            resource,
        )
    }

    /// The access policy of the change's action on a project's parties.
    /// Platform administrators without a membership pass the role table
    /// only where it lets them in, and see every project then.
    pub fn allow(&self, parties: &Parties, resource: &'static str) -> Result<()> {
        match &self.member {
            Some(member) => authz::check(member, self.action, parties, resource),
            None => Ok(()),
        }
    }

    /// Applies the role table to a further action the change also
    /// performs (a role change inside a person's update), with the same
    /// standing.
    pub fn authorize_also(&self, action: Action) -> Result<()> {
        authz::authorize(
            action,
            Standing {
                platform_admin: self.platform_admin,
                role: self.member.as_ref().map(|m| m.role),
            },
            "organisation",
        )
    }

    /// The caller as a member of the organisation (none for a platform
    /// administrator who is not one).
    pub fn member(&self) -> Option<&Member> {
        self.member.as_ref()
    }

    /// The organisation's default currency (what a request's amounts are
    /// in), read once inside the change.
    pub async fn currency(&mut self) -> Result<CurrencyCode> {
        Ok(self.terms().await?.currency)
    }

    async fn terms(&mut self) -> Result<Terms> {
        if let Some(terms) = self.terms {
            return Ok(terms);
        }
        let terms = Terms::read(&self.txn, self.organisation_id).await?;
        self.terms = Some(terms);
        Ok(terms)
    }

    /// Locks the organisation's row for the rest of the change: for rules
    /// over the whole organisation (its people, its gate policies), never
    /// for a project's write.
    pub async fn lock_organisation(&mut self) -> Result<()> {
        crate::access::lock_organisation(&self.txn, self.organisation_id).await
    }

    /// A project the change has just created: locked (no other change sees
    /// it yet), touched, and known as written.
    pub(crate) fn created(&mut self, project: Project) {
        self.locked.insert(project.id);
        self.touched.insert(project.id);
        self.projects.insert(project.id, project);
    }

    /// A locked project as written by the change (its phase moved, its
    /// details updated): the refresh at commit uses it as is.
    pub(crate) fn rewritten(&mut self, project: Project) {
        self.touched.insert(project.id);
        self.projects.insert(project.id, project);
    }

    /// The transaction.
    pub fn conn(&self) -> &crate::WriteTxn {
        &self.txn
    }

    pub fn organisation_id(&self) -> Uuid {
        self.organisation_id
    }

    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// Locks the rows of projects of the organisation (those not locked
    /// yet), in id order, without reading them. Returns the ids that exist
    /// in the organisation (mark those written with [`Self::touch`]).
    pub async fn lock_projects(
        &mut self,
        ids: impl IntoIterator<Item = Uuid>,
    ) -> Result<BTreeSet<Uuid>> {
        let wanted: BTreeSet<Uuid> = ids.into_iter().collect();
        let new: Vec<Uuid> = wanted.difference(&self.locked).copied().collect();
        let found = crate::access::lock_project_rows(&self.txn, self.organisation_id, &new).await?;
        self.locked.extend(found);
        Ok(wanted.intersection(&self.locked).copied().collect())
    }

    /// Marks a project (locked before) as changed.
    pub fn touch(&mut self, project_id: Uuid) {
        self.touched.insert(project_id);
    }

    /// Marks a project (locked before) as changed, its underperformance
    /// flag to re-evaluate at commit from its KPIs' statistics (it records
    /// measurements or changes a KPI).
    pub(crate) fn touch_kpis(&mut self, project_id: Uuid) {
        self.touched.insert(project_id);
        self.flag_checks.insert(project_id);
    }

    /// Records an audit event at commit.
    pub fn event(&mut self, event: NewEvent) {
        self.events.push(event);
    }

    /// Records an outbox event that no audit record stands for.
    pub(crate) fn notice(&mut self, notice: Notice) {
        self.notices.push(notice);
    }

    /// Refreshes the touched projects' figures, writes the audit events and
    /// the outbox's events (those the audit records stand for, and the
    /// alerts the refresh raised or cleared), commits, and wakes this
    /// process's watchers.
    pub async fn commit(mut self) -> Result<()> {
        let touched: Vec<Uuid> = std::mem::take(&mut self.touched).into_iter().collect();
        let refreshed = crate::portfolio::refresh_known(
            &self.txn,
            self.organisation_id,
            &touched,
            &crate::portfolio::Known {
                projects: Some(&self.projects),
                flag_checks: Some(&self.flag_checks),
                terms: self.terms,
            },
        )
        .await?;
        self.events.extend(refreshed.events);
        let mut notices: Vec<Notice> = self.events.iter().flat_map(events::notices_of).collect();
        notices.extend(refreshed.notices);
        notices.extend(self.notices);
        for event in self.events {
            audit::record(&self.txn, self.organisation_id, &self.actor, event).await?;
        }
        // Last: the outbox's positions are taken under its head's lock,
        // held from here to the commit.
        events::append(&self.txn, self.organisation_id, &self.actor, &notices).await?;
        let backend = self.txn.get_database_backend();
        commit(self.txn).await?;
        if !notices.is_empty() {
            events::committed(backend, self.organisation_id);
        }
        Ok(())
    }
}
