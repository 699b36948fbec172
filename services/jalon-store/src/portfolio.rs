//! The portfolio: per-project figures, roll-up counters and alerts, kept by
//! the writes that change a project (in their transaction), and the queries
//! of the portfolio views.
//!
//! Every write that touches a project calls [`refresh`] before it commits:
//! the project's facts are gathered afresh, reduced by
//! `jalon_core::portfolio::reduce`, and the difference with what the project
//! contributed before is added to the organisation's counters. The summary of
//! a whole organisation reads those counters; a filtered or member-scoped one
//! sums the contributions of the matching projects. [`rebuild`] recomputes
//! everything from scratch (and a test checks both agree).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use jalon_core::{
    Error, Result,
    assessment::{Concern, ItemCounts},
    gate::Outcome,
    kpi,
    organisation::Organisation,
    portfolio::{
        self, AlertKind, Figures, KpiFacts, MoneyFacts, PersonFacts, ProjectFacts, Summary,
    },
    project::{AiActTier, Phase, Status},
    values::CurrencyCode,
};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, FromQueryResult,
    Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, NullOrdering, OnConflict, Query, SimpleExpr},
};
use uuid::Uuid;

use crate::{
    CHUNK, aggregates, begin_write, commit,
    entity::{
        aggregate_rebuild, gate_condition, gate_review, person,
        portfolio_contribution as contribution, portfolio_counter as counter,
        portfolio_counter_delta as delta, project, project_alert, project_cost_centre as centre,
        project_figures as fig, project_tag,
    },
    error::db_error,
    events::Notice,
    page,
};

/// Projects gathered and written together by a rebuild.
const REBUILD_CHUNK: usize = 1000;

/// Gathers what the portfolio needs to know of projects, set-based: a
/// fixed number of statements for a batch of projects, each reading the
/// projects' aggregates (money by month, KPI statistics, assessment
/// counts), never their history.
async fn gather_many(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    ids: &[Uuid],
    currency: CurrencyCode,
    rate: rust_decimal::Decimal,
    known: &HashMap<Uuid, jalon_core::project::Project>,
    flag_checks: &BTreeSet<Uuid>,
    flags: &mut Vec<FlagChange>,
) -> Result<Vec<ProjectFacts>> {
    let unknown: Vec<Uuid> = ids
        .iter()
        .filter(|id| !known.contains_key(id))
        .copied()
        .collect();
    let mut found = crate::rows::projects::get_many(conn, organisation_id, unknown).await?;
    found.extend(ids.iter().filter_map(|id| known.get(id).cloned()));
    // The sponsors and leads: whether they are active, and for those who
    // left, their name and the day (the alerts' reasons).
    let people_ids: Vec<Uuid> = found
        .iter()
        .flat_map(|p| [p.details.sponsor_id, p.details.lead_id])
        .flatten()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    type PersonRow = (Uuid, bool, String, Option<DateTime<Utc>>);
    let mut parties: HashMap<Uuid, PersonFacts> = HashMap::new();
    for chunk in people_ids.chunks(CHUNK) {
        for (id, active, display_name, deactivate_time) in person::Entity::find()
            .select_only()
            .column(person::Column::Id)
            .column(person::Column::Active)
            .column(person::Column::DisplayName)
            .column(person::Column::DeactivateTime)
            .filter(person::Column::Id.is_in(chunk.to_vec()))
            .into_tuple::<PersonRow>()
            .all(conn)
            .await
            .map_err(db_error)?
        {
            parties.insert(
                id,
                PersonFacts {
                    id,
                    active,
                    display_name,
                    left_on: deactivate_time.filter(|_| !active).map(|t| t.date_naive()),
                },
            );
        }
    }
    let party = |id: Uuid| {
        parties.get(&id).cloned().unwrap_or(PersonFacts {
            id,
            active: false,
            display_name: format!("people/{id}"),
            left_on: None,
        })
    };
    let mut counts = aggregates::load_item_counts(conn, ids).await?;
    // A decision: when, the review, the phase it closed, its outcome.
    type Decision = (Option<DateTime<Utc>>, Uuid, Phase, Outcome);
    let mut decisions: HashMap<Uuid, Vec<Decision>> = HashMap::new();
    let mut condition_due: HashMap<Uuid, NaiveDate> = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        for r in gate_review::Entity::find()
            .filter(gate_review::Column::OrganisationId.eq(organisation_id))
            .filter(gate_review::Column::ProjectId.is_in(chunk.to_vec()))
            .filter(gate_review::Column::Outcome.is_not_null())
            .all(conn)
            .await
            .map_err(db_error)?
        {
            let phase: Phase = r
                .from_phase
                .parse()
                .map_err(|e| crate::error::unknown("gate_reviews", r.id, e))?;
            let outcome: Outcome = r
                .outcome
                .as_deref()
                .unwrap_or_default()
                .parse()
                .map_err(|e| crate::error::unknown("gate_reviews", r.id, e))?;
            decisions
                .entry(r.project_id)
                .or_default()
                .push((r.decide_time, r.id, phase, outcome));
        }
        for c in gate_condition::Entity::find()
            .filter(gate_condition::Column::ProjectId.is_in(chunk.to_vec()))
            .filter(gate_condition::Column::Closed.eq(false))
            .all(conn)
            .await
            .map_err(db_error)?
        {
            let due = condition_due.entry(c.project_id).or_insert(c.due_date);
            *due = std::cmp::min(*due, c.due_date);
        }
    }
    let mut kpis_of: HashMap<Uuid, Vec<jalon_core::kpi::Kpi>> = HashMap::new();
    for k in crate::rows::kpis::active_of_projects(conn, organisation_id, ids).await? {
        kpis_of.entry(k.project_id).or_default().push(k);
    }
    let stats = aggregates::load_kpi_stats(conn, ids).await?;
    let mut money = aggregates::load_money(conn, ids, false).await?;
    let mut budgets = crate::rows::budgets::budgets_of(conn, organisation_id, ids).await?;
    let mut out = Vec::with_capacity(found.len());
    for p in found {
        let mut readiness = ItemCounts::default();
        let mut heat: BTreeMap<(Phase, Concern), i64> = BTreeMap::new();
        for (phase, concern, c) in counts.remove(&p.id).unwrap_or_default() {
            if phase == p.phase {
                readiness.add(c);
            }
            if c.open_high_risk != 0 {
                *heat.entry((phase, concern)).or_default() += c.open_high_risk;
            }
        }
        let mut kpi_facts = Vec::new();
        let mut derived = Vec::new();
        let mut failing = Vec::new();
        let mut ks = kpis_of.remove(&p.id).unwrap_or_default();
        ks.sort_by_key(|k| k.id);
        for k in &ks {
            let s = stats.get(&k.id);
            let (r, lines) = aggregates::kpi_outcome(k, s);
            if kpi::underperforming(k, &r) {
                failing.push(k.name.clone());
            }
            derived.extend(lines);
            kpi_facts.push(KpiFacts {
                name: k.name.clone(),
                primary: k.primary,
                baseline_count: r.baseline_count,
                late_baseline: r.late_baseline,
                cadence: k.cadence,
                last_post_deployment: s.and_then(kpi::last_post_deployment),
                relative_change: r.relative_change,
            });
        }
        let totals = money.remove(&p.id).unwrap_or_default();
        jalon_core::finance::check_project_totals(&totals, &derived, currency).map_err(
            |reason| Error::precondition("TOTAL_OVERFLOW", format!("projects/{}", p.id), reason),
        )?;
        let f = crate::rows::budgets::financials_of(
            currency,
            rate,
            totals,
            &derived,
            budgets.remove(&p.id).as_ref(),
        );
        // A project running in production (or active) is flagged
        // underperforming while one of its active KPIs is, when a change
        // asked for the check (it recorded measurements or changed a KPI).
        let mut underperforming = p.underperforming;
        let flag = !failing.is_empty();
        if flag_checks.contains(&p.id)
            && matches!(p.status, Status::InProduction | Status::Active)
            && flag != p.underperforming
        {
            underperforming = flag;
            flags.push(FlagChange {
                project_id: p.id,
                underperforming,
                failing,
            });
        }
        let mut decided = decisions.remove(&p.id).unwrap_or_default();
        decided.sort_by_key(|(t, id, _, _)| (*t, *id));
        out.push(ProjectFacts {
            id: p.id,
            name: p.details.name.as_str().to_owned(),
            business_unit: p.details.business_unit.as_str().to_owned(),
            phase: p.phase,
            status: p.status,
            ai_act_tier: p.details.ai_act_tier,
            sponsor: p.details.sponsor_id.map(party),
            lead: p.details.lead_id.map(party),
            create_time: p.create_time,
            phase_history: p.phase_history,
            underperforming,
            readiness: readiness.ratio(),
            open_must_items: u32::try_from(readiness.must_open).unwrap_or(u32::MAX),
            open_high_risk: heat.into_iter().map(|((p, c), n)| (p, c, n)).collect(),
            decisions: decided.into_iter().map(|(_, _, p, o)| (p, o)).collect(),
            open_condition_due: condition_due.remove(&p.id),
            kpis: kpi_facts,
            money: MoneyFacts {
                currency: Some(currency),
                budget_minor: f.budget.map(|b| b.minor_units()),
                cost_by_category: f
                    .cost_by_category
                    .iter()
                    .map(|(c, m)| (*c, m.minor_units()))
                    .collect(),
                recorded_benefit_minor: f.recorded_benefit.minor_units(),
                derived_benefit_minor: f.derived_benefit.minor_units(),
                paid_back: f.payback_month.is_some(),
            },
        });
    }
    Ok(out)
}

fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// Figures as the database keeps them (times to the microsecond).
fn stored_as(f: &Figures) -> Figures {
    Figures {
        project_create_time: micros(f.project_create_time),
        phase_enter_time: micros(f.phase_enter_time),
        gate_watch_since: f.gate_watch_since.map(micros),
        review_due_time: f.review_due_time.map(micros),
        kpi_gain: f.kpi_gain.filter(|g| g.is_finite()),
        ..f.clone()
    }
}

fn figures_model(organisation_id: Uuid, f: &Figures, now: DateTime<Utc>) -> fig::ActiveModel {
    use sea_orm::ActiveValue::Set;
    fig::ActiveModel {
        project_id: Set(f.project_id),
        organisation_id: Set(organisation_id),
        name: Set(f.name.clone()),
        business_unit: Set(f.business_unit.clone()),
        sponsor_id: Set(f.sponsor_id),
        lead_id: Set(f.lead_id),
        phase: Set(f.phase.as_str().to_owned()),
        phase_rank: Set(portfolio::phase_rank(f.phase)),
        status: Set(f.status.as_str().to_owned()),
        ai_act_tier: Set(f.ai_act_tier.as_str().to_owned()),
        project_create_time: Set(micros(f.project_create_time)),
        phase_enter_time: Set(micros(f.phase_enter_time)),
        gate_watch_since: Set(f.gate_watch_since.map(micros)),
        review_due_time: Set(f.review_due_time.map(micros)),
        condition_due_date: Set(f.condition_due_date),
        readiness: Set(f.readiness),
        open_must_items: Set(i32::try_from(f.open_must_items).unwrap_or(i32::MAX)),
        kpi_gain: Set(f.kpi_gain.filter(|g| g.is_finite())),
        budget_minor: Set(f.budget_minor),
        cost_minor: Set(f.cost_minor),
        benefit_minor: Set(f.benefit_minor),
        roi_micros: Set(f.roi_micros),
        paid_back: Set(f.paid_back),
        alert_bits: Set(f.alert_bits),
        static_alert_count: Set(f.static_alert_count),
        update_time: Set(now),
    }
}

fn figures_from(m: fig::Model) -> Result<Figures> {
    let bad = |e: String| crate::error::unknown("project_figures", m.project_id, e);
    Ok(Figures {
        project_id: m.project_id,
        name: m.name,
        business_unit: m.business_unit,
        sponsor_id: m.sponsor_id,
        lead_id: m.lead_id,
        phase: m.phase.parse().map_err(bad)?,
        status: m.status.parse().map_err(bad)?,
        ai_act_tier: m.ai_act_tier.parse().map_err(bad)?,
        project_create_time: m.project_create_time,
        phase_enter_time: m.phase_enter_time,
        gate_watch_since: m.gate_watch_since,
        review_due_time: m.review_due_time,
        condition_due_date: m.condition_due_date,
        readiness: m.readiness,
        open_must_items: u32::try_from(m.open_must_items).unwrap_or(0),
        kpi_gain: m.kpi_gain,
        budget_minor: m.budget_minor,
        cost_minor: m.cost_minor,
        benefit_minor: m.benefit_minor,
        roi_micros: m.roi_micros,
        paid_back: m.paid_back,
        alert_bits: m.alert_bits,
        static_alert_count: m.static_alert_count,
    })
}

/// Adds `deltas` to the organisation's counters: appended as rows of
/// `portfolio_counter_deltas` (inserts, which concurrent writers never
/// wait on: updating the counters' rows here made every cost write of an
/// organisation queue behind the others until commit), folded into
/// `portfolio_counters` by [`fold_counters`]; readers sum both
/// ([`organisation_counters`]).
async fn add_to_counters(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    deltas: &BTreeMap<String, i64>,
) -> Result<()> {
    use sea_orm::ActiveValue::Set;
    let rows: Vec<delta::ActiveModel> = deltas
        .iter()
        .filter(|(_, v)| **v != 0)
        .map(|(name, value)| delta::ActiveModel {
            id: Set(Uuid::now_v7()),
            organisation_id: Set(organisation_id),
            name: Set(name.clone()),
            value: Set(*value),
        })
        .collect();
    for chunk in rows.chunks(CHUNK) {
        delta::Entity::insert_many(chunk.to_vec())
            .exec(conn)
            .await
            .map_err(db_error)?;
    }
    check_organisation_money(conn, organisation_id, deltas).await
}

/// The organisation's counters as of this statement: the folded values
/// plus the deltas not folded yet, summed by the database in one statement
/// (one snapshot: a fold committing meanwhile is seen whole or not at all).
/// All of them, or only `names`.
pub(crate) async fn organisation_counters(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    names: Option<&[String]>,
) -> Result<BTreeMap<String, i64>> {
    let p = |n: usize| aggregates::placeholder(conn, n);
    // Each half binds its own values (SQLite's `?` are positional).
    let mut values: Vec<sea_orm::Value> = Vec::new();
    let mut condition = || {
        values.push(organisation_id.into());
        let mut sql = format!("organisation_id = {}", p(values.len()));
        if let Some(names) = names {
            let marks: Vec<String> = names
                .iter()
                .map(|n| {
                    values.push(n.clone().into());
                    p(values.len())
                })
                .collect();
            sql.push_str(&format!(" AND name IN ({})", marks.join(", ")));
        }
        sql
    };
    let (folded, pending) = (condition(), condition());
    let sql = format!(
        "SELECT name, CAST(SUM(value) AS BIGINT) AS value FROM ( \
           SELECT name, value FROM portfolio_counters WHERE {folded} \
           UNION ALL \
           SELECT name, value FROM portfolio_counter_deltas WHERE {pending} \
         ) AS c GROUP BY name"
    );
    let rows = conn
        .query_all_raw(sea_orm::Statement::from_sql_and_values(
            conn.get_database_backend(),
            sql,
            values,
        ))
        .await
        .map_err(db_error)?;
    let mut out = BTreeMap::new();
    for row in rows {
        let name: String = row.try_get("", "name").map_err(db_error)?;
        let value: i64 = row.try_get("", "value").map_err(db_error)?;
        out.insert(name, value);
    }
    Ok(out)
}

/// Folds the counter deltas (of every organisation, up to `limit` of
/// them) into the counters, in one transaction: the deltas taken are
/// deleted and their sums added. Safe with several replicas folding at
/// once: a delta is deleted, and so added, by exactly one of them. Returns
/// how many were folded.
pub async fn fold_counters(db: &DatabaseConnection, limit: u64) -> Result<u64> {
    use sea_orm::ActiveValue::Set;
    let txn = begin_write(db).await?;
    let p = |n: usize| aggregates::placeholder(&txn, n);
    let sql = format!(
        "DELETE FROM portfolio_counter_deltas WHERE id IN \
         (SELECT id FROM portfolio_counter_deltas ORDER BY id LIMIT {}) \
         RETURNING organisation_id, name, value",
        p(1)
    );
    let rows = txn
        .query_all_raw(sea_orm::Statement::from_sql_and_values(
            txn.get_database_backend(),
            sql,
            [i64::try_from(limit).unwrap_or(i64::MAX).into()],
        ))
        .await
        .map_err(db_error)?;
    let folded = rows.len() as u64;
    let mut sums: BTreeMap<(Uuid, String), i64> = BTreeMap::new();
    for row in rows {
        let org: Uuid = row.try_get("", "organisation_id").map_err(db_error)?;
        let name: String = row.try_get("", "name").map_err(db_error)?;
        let value: i64 = row.try_get("", "value").map_err(db_error)?;
        let sum = sums.entry((org, name)).or_default();
        *sum = sum.saturating_add(value);
    }
    // In key order: two folders lock counter rows in the same order.
    let rows: Vec<counter::ActiveModel> = sums
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .map(|((org, name), value)| counter::ActiveModel {
            organisation_id: Set(org),
            name: Set(name),
            value: Set(value),
        })
        .collect();
    for chunk in rows.chunks(CHUNK) {
        counter::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([counter::Column::OrganisationId, counter::Column::Name])
                    .value(
                        counter::Column::Value,
                        Expr::cust("portfolio_counters.value + excluded.value"),
                    )
                    .to_owned(),
            )
            .exec(&txn)
            .await
            .map_err(db_error)?;
    }
    commit(txn).await?;
    Ok(folded)
}

/// Refuses (and so rolls back) a change that took one of the
/// organisation's money counters beyond
/// [`jalon_core::finance::MAX_ORGANISATION_MINOR_UNITS`]: one read of the
/// counters the change moved, only when it moved money.
async fn check_organisation_money(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    deltas: &BTreeMap<String, i64>,
) -> Result<()> {
    use jalon_core::finance::MAX_ORGANISATION_MINOR_UNITS as MAX;
    let moved: Vec<String> = deltas
        .iter()
        .filter(|(name, v)| **v != 0 && portfolio::is_money_counter(name))
        .map(|(name, _)| name.clone())
        .collect();
    if moved.is_empty() {
        return Ok(());
    }
    let counters = organisation_counters(conn, organisation_id, Some(&moved)).await?;
    match counters.iter().find(|(_, v)| **v > MAX || **v < -MAX) {
        None => Ok(()),
        Some((name, _)) => Err(Error::precondition(
            "TOTAL_OVERFLOW",
            format!("organisations/{organisation_id}"),
            format!(
                "the organisation's total '{name}' would exceed the largest total kept for a portfolio ({MAX} minor units of its currency): the write is refused"
            ),
        )),
    }
}

/// Recomputes the figures of `project_ids` (of one organisation) and moves
/// the organisation's counters by the difference. Runs in the caller's
/// transaction; locks the projects' rows first (in id order) so that two
/// writers never refresh one project from the same old contributions.
pub(crate) async fn refresh(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    project_ids: impl IntoIterator<Item = Uuid>,
) -> Result<()> {
    let ids: Vec<Uuid> = project_ids
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    // On SQLite the write transaction already excludes other writers: the
    // lock would be one more read for nothing.
    if crate::is_postgres(conn) {
        crate::access::lock_project_rows(conn, organisation_id, &ids).await?;
    }
    refresh_locked(conn, organisation_id, &ids).await
}

/// [`refresh`] of projects whose rows the transaction holds.
pub(crate) async fn refresh_locked(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    ids: &[Uuid],
) -> Result<()> {
    refresh_known(conn, organisation_id, ids, &Known::default())
        .await
        .map(drop)
}

/// [`refresh_locked`] for a rebuild: a project's figures row is written
/// only when it differs from the one stored (the row has an index per sort
/// and deadline, so writing 100,000 unchanged rows was most of a rebuild).
async fn refresh_for_rebuild(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    ids: &[Uuid],
) -> Result<()> {
    refresh_with(conn, organisation_id, ids, &Known::default(), true)
        .await
        .map(drop)
}

/// What a change already knows when it refreshes its projects.
#[derive(Default)]
pub(crate) struct Known<'a> {
    /// Projects read (current) by the transaction: not read again.
    pub projects: Option<&'a HashMap<Uuid, jalon_core::project::Project>>,
    /// Projects whose underperformance flag is set or cleared from their
    /// KPIs' statistics (their KPIs or measurements changed).
    pub flag_checks: Option<&'a BTreeSet<Uuid>>,
    /// The organisation's terms, if read already.
    pub terms: Option<crate::access::Terms>,
}

/// A project's underperformance flag, set or cleared by a refresh.
pub(crate) struct FlagChange {
    project_id: Uuid,
    underperforming: bool,
    /// The active KPIs that underperform.
    failing: Vec<String>,
}

/// What a refresh found besides the figures it wrote.
#[derive(Default)]
pub(crate) struct Refreshed {
    /// The outbox events of the alerts raised and cleared.
    pub notices: Vec<Notice>,
    /// The audit events of the underperformance flags it set or cleared.
    pub events: Vec<crate::audit::NewEvent>,
}

/// [`refresh_locked`] with what the change knows (see [`Known`]).
pub(crate) async fn refresh_known(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    ids: &[Uuid],
    known: &Known<'_>,
) -> Result<Refreshed> {
    refresh_with(conn, organisation_id, ids, known, false).await
}

async fn refresh_with(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    ids: &[Uuid],
    known: &Known<'_>,
    only_changed_figures: bool,
) -> Result<Refreshed> {
    let mut notices = Vec::new();
    let mut flags = Vec::new();
    if ids.is_empty() {
        return Ok(Refreshed::default());
    }
    let crate::access::Terms { currency, rate } = match known.terms {
        Some(terms) => terms,
        None => crate::access::Terms::read(conn, organisation_id).await?,
    };
    let no_projects = HashMap::new();
    let no_checks = BTreeSet::new();
    let now = micros(Utc::now());
    // The counters move once per transaction, by the sum of the projects'
    // differences: PostgreSQL keeps every version of a row updated within a
    // transaction, so updating a counter once per project made a large
    // rebuild quadratic.
    let mut deltas: BTreeMap<String, i64> = BTreeMap::new();
    for chunk in ids.chunks(REBUILD_CHUNK) {
        let facts = gather_many(
            conn,
            organisation_id,
            chunk,
            currency,
            rate,
            known.projects.unwrap_or(&no_projects),
            known.flag_checks.unwrap_or(&no_checks),
            &mut flags,
        )
        .await?;
        apply_many(
            conn,
            organisation_id,
            &facts,
            now,
            &mut deltas,
            &mut notices,
            only_changed_figures,
        )
        .await?;
    }
    add_to_counters(conn, organisation_id, &deltas).await?;
    let mut events = Vec::with_capacity(flags.len());
    for f in flags {
        events.push(write_flag(conn, f).await?);
    }
    Ok(Refreshed { notices, events })
}

/// Writes a project's underperformance flag; returns its audit event.
async fn write_flag(conn: &impl ConnectionTrait, f: FlagChange) -> Result<crate::audit::NewEvent> {
    use sea_orm::ActiveValue::Set;
    project::Entity::update_many()
        .set(project::ActiveModel {
            underperforming: Set(f.underperforming),
            ..Default::default()
        })
        .filter(project::Column::Id.eq(f.project_id))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(crate::audit::NewEvent {
        project_id: Some(f.project_id),
        action: if f.underperforming {
            "project.underperformance_flagged"
        } else {
            "project.underperformance_cleared"
        },
        resource_type: "project",
        resource_id: f.project_id.to_string(),
        before: Some(serde_json::json!({"underperforming": !f.underperforming})),
        after: serde_json::json!({"underperforming": f.underperforming, "kpis": f.failing}),
        chained: false,
    })
}

/// Writes projects' figures, contributions and alerts (a fixed number of
/// statements per batch), and adds the difference of their contributions
/// to `deltas`.
async fn apply_many(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    facts: &[ProjectFacts],
    now: DateTime<Utc>,
    deltas: &mut BTreeMap<String, i64>,
    notices: &mut Vec<Notice>,
    only_changed_figures: bool,
) -> Result<()> {
    use sea_orm::ActiveValue::Set;
    if facts.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = facts.iter().map(|f| f.id).collect();
    let mut stored_figures: HashMap<Uuid, Figures> = HashMap::new();
    if only_changed_figures {
        for chunk in ids.chunks(CHUNK) {
            for m in fig::Entity::find()
                .filter(fig::Column::ProjectId.is_in(chunk.to_vec()))
                .all(conn)
                .await
                .map_err(db_error)?
            {
                stored_figures.insert(m.project_id, figures_from(m)?);
            }
        }
    }
    let mut old: HashMap<Uuid, BTreeMap<String, i64>> = HashMap::new();
    let mut existing_alerts: HashMap<Uuid, Vec<project_alert::Model>> = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        for (project_id, name, value) in contribution::Entity::find()
            .select_only()
            .column(contribution::Column::ProjectId)
            .column(contribution::Column::Name)
            .column(contribution::Column::Value)
            .filter(contribution::Column::ProjectId.is_in(chunk.to_vec()))
            .into_tuple::<(Uuid, String, i64)>()
            .all(conn)
            .await
            .map_err(db_error)?
        {
            old.entry(project_id).or_default().insert(name, value);
        }
        for a in project_alert::Entity::find()
            .filter(project_alert::Column::ProjectId.is_in(chunk.to_vec()))
            .all(conn)
            .await
            .map_err(db_error)?
        {
            existing_alerts.entry(a.project_id).or_default().push(a);
        }
    }
    // Only the contributions that changed are written: a cost moves a
    // handful of a project's few dozen.
    let mut removed: Vec<(Uuid, String)> = Vec::new();
    let mut new_contributions: Vec<contribution::ActiveModel> = Vec::new();
    let mut figures_rows: Vec<fig::ActiveModel> = Vec::with_capacity(facts.len());
    let mut alerts_cleared: Vec<(Uuid, Vec<String>)> = Vec::new();
    let mut alerts_new: Vec<project_alert::ActiveModel> = Vec::new();
    let mut alerts_reworded: Vec<(Uuid, &'static str, String)> = Vec::new();
    for f in facts {
        let (figures, contributions, alerts) = portfolio::reduce(f);
        let before = old.remove(&f.id).unwrap_or_default();
        if before != contributions {
            for (name, value) in &contributions {
                *deltas.entry(name.clone()).or_default() += value;
            }
            for (name, value) in &before {
                *deltas.entry(name.clone()).or_default() -= value;
            }
            removed.extend(
                before
                    .keys()
                    .filter(|name| !contributions.contains_key(*name))
                    .map(|name| (f.id, name.clone())),
            );
            new_contributions.extend(
                contributions
                    .iter()
                    .filter(|(name, value)| before.get(*name) != Some(*value))
                    .map(|(name, value)| contribution::ActiveModel {
                        project_id: Set(f.id),
                        name: Set(name.clone()),
                        organisation_id: Set(organisation_id),
                        value: Set(*value),
                    }),
            );
        }
        if stored_figures.get(&f.id) != Some(&stored_as(&figures)) {
            figures_rows.push(figures_model(organisation_id, &figures, now));
        }
        let existing = existing_alerts.remove(&f.id).unwrap_or_default();
        let raised: BTreeMap<&'static str, &str> = alerts
            .iter()
            .map(|a| (a.kind.as_str(), a.reason.as_str()))
            .collect();
        let cleared: Vec<String> = existing
            .iter()
            .filter(|a| !raised.contains_key(a.kind.as_str()))
            .map(|a| a.kind.clone())
            .collect();
        let new_kinds: Vec<&str> = raised
            .keys()
            .filter(|kind| !existing.iter().any(|a| a.kind == **kind))
            .copied()
            .collect();
        notices.extend(crate::events::alert_notices(f.id, &new_kinds, &cleared));
        if !cleared.is_empty() {
            alerts_cleared.push((f.id, cleared));
        }
        for (kind, reason) in raised {
            match existing.iter().find(|a| a.kind == kind) {
                Some(a) if a.reason == reason => {}
                Some(_) => alerts_reworded.push((f.id, kind, reason.to_owned())),
                None => alerts_new.push(project_alert::ActiveModel {
                    project_id: Set(f.id),
                    kind: Set(kind.to_owned()),
                    organisation_id: Set(organisation_id),
                    since: Set(now),
                    reason: Set(reason.to_owned()),
                }),
            }
        }
    }
    for chunk in removed.chunks(CHUNK / 2) {
        let mut any = Condition::any();
        for (project_id, name) in chunk {
            any = any.add(
                Condition::all()
                    .add(contribution::Column::ProjectId.eq(*project_id))
                    .add(contribution::Column::Name.eq(name.as_str())),
            );
        }
        contribution::Entity::delete_many()
            .filter(any)
            .exec(conn)
            .await
            .map_err(db_error)?;
    }
    for chunk in new_contributions.chunks(CHUNK) {
        contribution::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([contribution::Column::ProjectId, contribution::Column::Name])
                    .update_column(contribution::Column::Value)
                    .to_owned(),
            )
            .exec(conn)
            .await
            .map_err(db_error)?;
    }
    for chunk in figures_rows.chunks(CHUNK / 10) {
        fig::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::column(fig::Column::ProjectId)
                    .update_columns([
                        fig::Column::Name,
                        fig::Column::BusinessUnit,
                        fig::Column::SponsorId,
                        fig::Column::LeadId,
                        fig::Column::Phase,
                        fig::Column::PhaseRank,
                        fig::Column::Status,
                        fig::Column::AiActTier,
                        fig::Column::ProjectCreateTime,
                        fig::Column::PhaseEnterTime,
                        fig::Column::GateWatchSince,
                        fig::Column::ReviewDueTime,
                        fig::Column::ConditionDueDate,
                        fig::Column::Readiness,
                        fig::Column::OpenMustItems,
                        fig::Column::KpiGain,
                        fig::Column::BudgetMinor,
                        fig::Column::CostMinor,
                        fig::Column::BenefitMinor,
                        fig::Column::RoiMicros,
                        fig::Column::PaidBack,
                        fig::Column::AlertBits,
                        fig::Column::StaticAlertCount,
                        fig::Column::UpdateTime,
                    ])
                    .to_owned(),
            )
            .exec(conn)
            .await
            .map_err(db_error)?;
    }
    for (project_id, kinds) in alerts_cleared {
        project_alert::Entity::delete_many()
            .filter(project_alert::Column::ProjectId.eq(project_id))
            .filter(project_alert::Column::Kind.is_in(kinds))
            .exec(conn)
            .await
            .map_err(db_error)?;
    }
    for (project_id, kind, reason) in alerts_reworded {
        project_alert::Entity::update_many()
            .col_expr(project_alert::Column::Reason, Expr::value(reason))
            .filter(project_alert::Column::ProjectId.eq(project_id))
            .filter(project_alert::Column::Kind.eq(kind))
            .exec(conn)
            .await
            .map_err(db_error)?;
    }
    for chunk in alerts_new.chunks(CHUNK) {
        project_alert::Entity::insert_many(chunk.to_vec())
            .exec(conn)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

/// On PostgreSQL, plans each statement of this transaction for the tables
/// as they are at that moment. PostgreSQL otherwise settles, after five runs
/// of a prepared statement, on a generic plan made from the statistics of
/// the moment; a rebuild fills `portfolio_contributions` from nothing inside
/// one transaction, which autovacuum cannot see, so a plan made while the
/// table looked empty (a sequential scan) would be kept while it grows, and
/// each of 100,000 lookups would read it whole. Measured: a 10,000-project
/// rebuild after `ANALYZE` of the empty tables took 118 s instead of 18 s.
async fn plan_for_tables_growing_in(txn: &crate::WriteTxn) -> Result<()> {
    if crate::is_postgres(txn) {
        txn.execute_unprepared("SET LOCAL plan_cache_mode = force_custom_plan")
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

/// Recomputes an organisation's aggregates (money, KPI statistics,
/// assessment counts), figures and counters from scratch, in one
/// transaction (writers wait meanwhile), set-based: the aggregates in a
/// handful of statements, then the figures a thousand projects at a time.
/// Alerts keep the time they were first raised. Returns the number of
/// projects.
#[tracing::instrument(skip(db))]
pub async fn rebuild(db: &DatabaseConnection, organisation_id: Uuid) -> Result<u64> {
    let txn = begin_write(db).await?;
    plan_for_tables_growing_in(&txn).await?;
    crate::access::lock_organisation(&txn, organisation_id).await?;
    let n = rebuild_in(&txn, organisation_id).await?;
    aggregate_rebuild::Entity::delete_by_id(organisation_id)
        .exec(&txn)
        .await
        .map_err(db_error)?;
    commit(txn).await?;
    Ok(n)
}

async fn rebuild_in(txn: &crate::WriteTxn, organisation_id: Uuid) -> Result<u64> {
    let started = std::time::Instant::now();
    aggregates::recompute(txn, organisation_id).await?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "aggregates recomputed"
    );
    let ids: Vec<Uuid> = project::Entity::find()
        .select_only()
        .column(project::Column::Id)
        .filter(project::Column::OrganisationId.eq(organisation_id))
        .order_by_asc(project::Column::Id)
        .into_tuple()
        .all(txn)
        .await
        .map_err(db_error)?;
    let total = ids.len();
    let mut done = 0;
    // Each project's contributions are rewritten where they differ from
    // what it computes now (consistent data: nothing is written).
    for chunk in ids.chunks(10 * REBUILD_CHUNK) {
        refresh_for_rebuild(txn, organisation_id, chunk).await?;
        done += chunk.len();
        tracing::info!(
            done,
            total,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "portfolio rebuild progress"
        );
    }
    // The counters are the sums of the contributions, by definition.
    let p = |n: usize| aggregates::placeholder(txn, n);
    for sql in [
        format!(
            "DELETE FROM portfolio_counters WHERE organisation_id = {}",
            p(1)
        ),
        format!(
            "DELETE FROM portfolio_counter_deltas WHERE organisation_id = {}",
            p(1)
        ),
        format!(
            "INSERT INTO portfolio_counters (organisation_id, name, value) \
             SELECT organisation_id, name, CAST(SUM(value) AS BIGINT) FROM portfolio_contributions \
             WHERE organisation_id = {} GROUP BY organisation_id, name HAVING SUM(value) <> 0",
            p(1)
        ),
    ] {
        aggregates::execute_for(txn, &sql, organisation_id).await?;
    }
    Ok(total as u64)
}

/// Brings old data up to date at startup: recomputes the aggregates and
/// figures of organisations queued by a migration (`aggregate_rebuilds`),
/// then computes the figures of projects that have none (projects created
/// before the portfolio existed), a batch per transaction. Returns how many
/// projects were computed.
#[tracing::instrument(skip(db))]
pub async fn backfill(db: &DatabaseConnection) -> Result<u64> {
    let mut done = 0;
    let queued: Vec<Uuid> = aggregate_rebuild::Entity::find()
        .select_only()
        .column(aggregate_rebuild::Column::OrganisationId)
        .into_tuple()
        .all(db)
        .await
        .map_err(db_error)?;
    for org in queued {
        tracing::info!(organisation_id = %org, "recomputing the aggregates of an organisation (one-off, after an upgrade)");
        done += rebuild(db, org).await?;
    }
    loop {
        let missing: Vec<(Uuid, Uuid)> = project::Entity::find()
            .select_only()
            .column(project::Column::OrganisationId)
            .column(project::Column::Id)
            .filter(
                project::Column::Id.not_in_subquery(
                    Query::select()
                        .column(fig::Column::ProjectId)
                        .from(fig::Entity)
                        .to_owned(),
                ),
            )
            .limit(CHUNK as u64)
            .into_tuple()
            .all(db)
            .await
            .map_err(db_error)?;
        if missing.is_empty() {
            return Ok(done);
        }
        let mut by_org: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
        for (org, id) in missing {
            by_org.entry(org).or_default().push(id);
        }
        for (org, ids) in by_org {
            let txn = begin_write(db).await?;
            plan_for_tables_growing_in(&txn).await?;
            crate::access::lock_organisation(&txn, org).await?;
            done += ids.len() as u64;
            refresh(&txn, org, ids).await?;
            commit(txn).await?;
        }
    }
}

/// Which projects a portfolio query covers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub business_unit: Option<String>,
    pub sponsor_id: Option<Uuid>,
    pub lead_id: Option<Uuid>,
    /// Every one of them.
    pub tags: Vec<String>,
    pub phase: Option<Phase>,
    pub status: Option<Status>,
    pub ai_act_tier: Option<AiActTier>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    /// Only projects with at least one cost line booked to this cost centre
    /// (a line reversed in full still counts).
    pub cost_centre: Option<String>,
    /// What the caller may see (a MEMBER: the projects they lead or sponsor).
    pub visibility: jalon_core::authz::Visibility,
}

impl Filter {
    /// Covers the whole organisation.
    pub fn is_everything(&self) -> bool {
        *self == Filter::default()
    }

    fn key(&self) -> String {
        format!("{self:?}")
    }

    /// The ids of the projects the filter covers, as a subquery.
    fn project_ids(&self, organisation_id: Uuid) -> sea_orm::sea_query::SelectStatement {
        Query::select()
            .column(fig::Column::ProjectId)
            .from(fig::Entity)
            .cond_where(self.condition(organisation_id))
            .to_owned()
    }

    fn condition(&self, organisation_id: Uuid) -> Condition {
        use fig::Column as C;
        let mut c = Condition::all().add(C::OrganisationId.eq(organisation_id));
        if let Some(v) = &self.business_unit {
            c = c.add(C::BusinessUnit.eq(v.as_str()));
        }
        if let Some(v) = self.sponsor_id {
            c = c.add(C::SponsorId.eq(v));
        }
        if let Some(v) = self.lead_id {
            c = c.add(C::LeadId.eq(v));
        }
        for tag in &self.tags {
            c = c.add(
                C::ProjectId.in_subquery(
                    Query::select()
                        .column(project_tag::Column::ProjectId)
                        .from(project_tag::Entity)
                        .and_where(project_tag::Column::OrganisationId.eq(organisation_id))
                        .and_where(project_tag::Column::Tag.eq(tag.as_str()))
                        .to_owned(),
                ),
            );
        }
        if let Some(v) = self.phase {
            c = c.add(C::Phase.eq(v.as_str()));
        }
        if let Some(v) = self.status {
            c = c.add(C::Status.eq(v.as_str()));
        }
        if let Some(v) = self.ai_act_tier {
            c = c.add(C::AiActTier.eq(v.as_str()));
        }
        if let Some(v) = self.created_from {
            c = c.add(C::ProjectCreateTime.gte(v));
        }
        if let Some(v) = self.created_to {
            c = c.add(C::ProjectCreateTime.lt(v));
        }
        if let Some(v) = &self.cost_centre {
            // A row exists once a line is booked to the cost centre: the
            // aggregate's index (organisation, cost centre, project) alone.
            c = c.add(
                C::ProjectId.in_subquery(
                    Query::select()
                        .column(centre::Column::ProjectId)
                        .from(centre::Entity)
                        .and_where(centre::Column::OrganisationId.eq(organisation_id))
                        .and_where(centre::Column::CostCentre.eq(v.as_str()))
                        .to_owned(),
                ),
            );
        }
        c = c.add(crate::access::visibility_condition(
            self.visibility,
            C::LeadId,
            C::SponsorId,
        ));
        c
    }
}

/// The deadlines of the time-dependent alerts at `now`.
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    gate_cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
    today: NaiveDate,
}

impl Deadlines {
    fn at(now: DateTime<Utc>, gate_overdue_days: u32) -> Self {
        Self {
            gate_cutoff: portfolio::gate_cutoff(now, gate_overdue_days),
            now,
            today: now.date_naive(),
        }
    }

    fn condition(&self, kind: AlertKind) -> Option<SimpleExpr> {
        use fig::Column as C;
        match kind {
            AlertKind::GateOverdue => Some(C::GateWatchSince.lt(self.gate_cutoff)),
            AlertKind::ReviewOverdue => Some(C::ReviewDueTime.lt(self.now)),
            AlertKind::ConditionOverdue => Some(C::ConditionDueDate.lt(self.today)),
            _ => None,
        }
    }

    /// How many alerts a row carries (for sorting).
    fn count_expr(&self) -> SimpleExpr {
        let mut e: SimpleExpr = Expr::col(fig::Column::StaticAlertCount);
        for kind in AlertKind::ALL.iter().filter(|k| !k.is_static()) {
            if let Some(cond) = self.condition(*kind) {
                e = e.add(Expr::case(cond, 1).finally(0));
            }
        }
        e
    }
}

#[derive(Debug, FromQueryResult)]
struct NamedSum {
    name: String,
    total: i64,
}

/// The summary of the projects `filter` covers, at `now`.
#[tracing::instrument(skip(db))]
pub async fn summary(
    db: &impl ConnectionTrait,
    org: &Organisation,
    filter: &Filter,
    now: DateTime<Utc>,
    with_cost_centres: bool,
) -> Result<Summary> {
    let organisation_id = org.id;
    let currency = CurrencyCode::parse(&org.default_currency)
        .map_err(|e| Error::Internal(format!("stored currency: {e}")))?;
    let counters: BTreeMap<String, i64> = if filter.is_everything() {
        // Names and values only: an organisation has thousands of counters
        // (the time-in-phase histograms hold one per phase and day).
        organisation_counters(db, organisation_id, None).await?
    } else {
        contribution::Entity::find()
            .select_only()
            .column(contribution::Column::Name)
            .expr_as(
                Expr::cust("CAST(SUM(portfolio_contributions.value) AS BIGINT)"),
                "total",
            )
            .filter(
                contribution::Column::ProjectId.in_subquery(filter.project_ids(organisation_id)),
            )
            .group_by(contribution::Column::Name)
            .into_model::<NamedSum>()
            .all(db)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(|s| (s.name, s.total))
            .collect()
    };
    // One count per deadline, each an index range (a single statement with
    // OR-ed deadlines scans the whole organisation instead).
    let deadlines = Deadlines::at(now, org.gate_overdue_days);
    let mut deadline_counts = Vec::new();
    for kind in AlertKind::ALL.iter().filter(|k| !k.is_static()) {
        if let Some(cond) = deadlines.condition(*kind) {
            let n = fig::Entity::find()
                .filter(filter.condition(organisation_id))
                .filter(cond)
                .count(db)
                .await
                .map_err(db_error)?;
            deadline_counts.push((*kind, i64::try_from(n).unwrap_or(i64::MAX)));
        }
    }
    let mut summary = portfolio::summarise(&counters, &deadline_counts, currency);
    // Only when asked: it reads one row per project and cost centre (about
    // 45 ms for 200,000 of them on PostgreSQL), where the rest of an
    // unfiltered summary reads the organisation's counters.
    if with_cost_centres {
        summary.money.cost_by_cost_centre = portfolio::cost_centre_breakdown(
            cost_by_cost_centre(db, organisation_id, filter).await?,
            currency,
        );
    }
    Ok(summary)
}

/// Cost by cost centre over the projects `filter` covers, from the
/// cost-centre aggregate: (cost centre, amount, projects with a line in
/// it). Read by the same project predicate as the rest of a filtered
/// summary; for the whole organisation, the organisation's rows by index.
/// One row is read per project and cost centre, whatever the number of
/// cost lines.
async fn cost_by_cost_centre(
    db: &impl ConnectionTrait,
    organisation_id: Uuid,
    filter: &Filter,
) -> Result<Vec<(String, i64, i64)>> {
    let mut query = centre::Entity::find()
        .select_only()
        .column(centre::Column::CostCentre)
        .expr_as(
            Expr::cust("CAST(SUM(project_cost_centres.amount_minor) AS BIGINT)"),
            "amount",
        )
        .expr_as(Expr::cust("COUNT(*)"), "projects")
        .filter(centre::Column::OrganisationId.eq(organisation_id));
    if !filter.is_everything() {
        query = query
            .filter(centre::Column::ProjectId.in_subquery(filter.project_ids(organisation_id)));
    }
    query
        .group_by(centre::Column::CostCentre)
        .into_tuple::<(String, i64, i64)>()
        .all(db)
        .await
        .map_err(db_error)
}

/// What ListPortfolioProjects sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Name,
    Phase,
    DaysInPhase,
    Readiness,
    KpiGain,
    Cost,
    Benefit,
    Roi,
    Alerts,
    CreateTime,
    /// Project id (the export's order).
    Id,
}

/// A project row with the alerts it carries now.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub figures: Figures,
    pub alerts: Vec<(AlertKind, DateTime<Utc>, String)>,
    /// The project's cost in the filter's cost centre (minor units), when
    /// the filter names one.
    pub cost_centre_cost: Option<i64>,
}

/// A page of rows.
#[derive(Debug, Clone, PartialEq)]
pub struct RowPage {
    pub rows: Vec<Row>,
    pub next_page_token: String,
    pub total_size: i64,
}

/// The sort value of a row, as kept in page tokens.
#[derive(Debug, Clone, PartialEq)]
enum Key {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Time(DateTime<Utc>),
}

impl Key {
    fn encode(&self) -> String {
        match self {
            Key::Null => "n".into(),
            Key::Int(v) => format!("i{v}"),
            Key::Float(v) => format!("f{:016x}", v.to_bits()),
            Key::Text(v) => format!("s{v}"),
            Key::Time(v) => format!("t{}", v.timestamp_micros()),
        }
    }

    fn decode(raw: &str) -> Option<Key> {
        let (tag, rest) = raw.split_at_checked(1)?;
        Some(match tag {
            "n" => Key::Null,
            "i" => Key::Int(rest.parse().ok()?),
            "f" => Key::Float(f64::from_bits(u64::from_str_radix(rest, 16).ok()?)),
            "s" => Key::Text(rest.to_owned()),
            "t" => Key::Time(DateTime::from_timestamp_micros(rest.parse().ok()?)?),
            _ => return None,
        })
    }

    fn value(&self) -> Option<sea_orm::Value> {
        match self {
            Key::Null => None,
            Key::Int(v) => Some((*v).into()),
            Key::Float(v) => Some((*v).into()),
            Key::Text(v) => Some(v.clone().into()),
            Key::Time(v) => Some((*v).into()),
        }
    }
}

fn alerts_of(
    f: &Figures,
    stored: &[project_alert::Model],
    now: DateTime<Utc>,
    gate_overdue_days: u32,
) -> Vec<(AlertKind, DateTime<Utc>, String)> {
    let mut out: Vec<(AlertKind, DateTime<Utc>, String)> = stored
        .iter()
        .filter_map(|a| Some((a.kind.parse().ok()?, a.since, a.reason.clone())))
        .filter(|(k, _, _): &(AlertKind, _, _)| f.alert_bits & k.bit() != 0)
        .collect();
    out.extend(portfolio::alerts_now(f, now, gate_overdue_days));
    out.sort_by_key(|(k, _, _)| *k);
    out
}

async fn stored_alerts(
    conn: &impl ConnectionTrait,
    ids: Vec<Uuid>,
) -> Result<HashMap<Uuid, Vec<project_alert::Model>>> {
    let mut out: HashMap<Uuid, Vec<project_alert::Model>> = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    for a in project_alert::Entity::find()
        .filter(project_alert::Column::ProjectId.is_in(ids))
        .all(conn)
        .await
        .map_err(db_error)?
    {
        out.entry(a.project_id).or_default().push(a);
    }
    Ok(out)
}

/// One page of project rows, sorted by `sort` (then by id), largest first
/// when `descending`.
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(skip(db))]
pub async fn list(
    db: &impl ConnectionTrait,
    org: &Organisation,
    filter: &Filter,
    sort: SortKey,
    descending: bool,
    page_size: u32,
    page_token: &str,
    now: DateTime<Utc>,
) -> Result<RowPage> {
    use fig::Column as C;
    let organisation_id = org.id;
    let deadlines = Deadlines::at(now, org.gate_overdue_days);
    // Days in phase grow as the phase began earlier.
    let ascending = if sort == SortKey::DaysInPhase {
        descending
    } else {
        !descending
    };
    let (expr, nullable): (SimpleExpr, bool) = match sort {
        SortKey::Name => (Expr::col(C::Name), false),
        SortKey::Phase => (Expr::col(C::PhaseRank), false),
        SortKey::DaysInPhase => (Expr::col(C::PhaseEnterTime), false),
        SortKey::Readiness => (Expr::col(C::Readiness), false),
        SortKey::KpiGain => (Expr::col(C::KpiGain), true),
        SortKey::Cost => (Expr::col(C::CostMinor), false),
        SortKey::Benefit => (Expr::col(C::BenefitMinor), false),
        SortKey::Roi => (Expr::col(C::RoiMicros), true),
        SortKey::Alerts => (deadlines.count_expr(), false),
        SortKey::CreateTime => (Expr::col(C::ProjectCreateTime), false),
        SortKey::Id => (Expr::col(C::ProjectId), false),
    };
    let token_key = format!("{}|{sort:?}|{descending}", filter.key());
    let after: Option<(Key, Uuid)> = page::decode::<String>(page_token, &token_key, "page_token")?
        .map(|raw| {
            let (key, id) = raw.rsplit_once('|')?;
            Some((Key::decode(key)?, id.parse().ok()?))
        })
        .map(|k| {
            k.ok_or_else(|| Error::invalid("page_token", "is not a page token this service issued"))
        })
        .transpose()?;
    let mut query = fig::Entity::find().filter(filter.condition(organisation_id));
    if let Some((key, id)) = &after {
        let id_after = if ascending {
            C::ProjectId.gt(*id)
        } else {
            C::ProjectId.lt(*id)
        };
        let cond = if sort == SortKey::Id {
            Condition::all().add(id_after)
        } else {
            match key.value() {
                None => Condition::all().add(expr.clone().is_null()).add(id_after),
                // A row comparison, `(key, id) > (v, id0)`: one range of the
                // sort key's index on both databases, however deep the
                // page. (The OR-ed form below reads the index from its
                // start on PostgreSQL.)
                Some(v) if !nullable => {
                    let row = Expr::tuple([expr.clone(), Expr::col(C::ProjectId)]);
                    let at = Expr::tuple([Expr::val(v), Expr::val(*id)]);
                    Condition::all().add(if ascending { row.gt(at) } else { row.lt(at) })
                }
                Some(v) => {
                    let beyond = if ascending {
                        expr.clone().gt(Expr::val(v.clone()))
                    } else {
                        expr.clone().lt(Expr::val(v.clone()))
                    };
                    let mut c = Condition::any().add(beyond).add(
                        Condition::all()
                            .add(expr.clone().eq(Expr::val(v)))
                            .add(id_after),
                    );
                    if nullable {
                        c = c.add(expr.clone().is_null());
                    }
                    c
                }
            }
        };
        query = query.filter(cond);
    }
    let order = if ascending { Order::Asc } else { Order::Desc };
    if sort != SortKey::Id {
        query = if nullable {
            query.order_by_with_nulls(expr.clone(), order.clone(), NullOrdering::Last)
        } else {
            query.order_by(expr.clone(), order.clone())
        };
    }
    let mut models = query
        .order_by(C::ProjectId, order)
        .limit(u64::from(page_size) + 1)
        .all(db)
        .await
        .map_err(db_error)?;
    let next_page_token = if models.len() > page_size as usize {
        models.truncate(page_size as usize);
        models
            .last()
            .map(|m| {
                let key = match sort {
                    SortKey::Name => Key::Text(m.name.clone()),
                    SortKey::Phase => Key::Int(i64::from(m.phase_rank)),
                    SortKey::DaysInPhase => Key::Time(m.phase_enter_time),
                    SortKey::Readiness => Key::Float(m.readiness),
                    SortKey::KpiGain => m.kpi_gain.map_or(Key::Null, Key::Float),
                    SortKey::Cost => Key::Int(m.cost_minor),
                    SortKey::Benefit => Key::Int(m.benefit_minor),
                    SortKey::Roi => m.roi_micros.map_or(Key::Null, Key::Int),
                    SortKey::Alerts => {
                        let dynamic = match figures_from(m.clone()) {
                            Ok(f) => portfolio::alerts_now(&f, now, org.gate_overdue_days).len(),
                            Err(_) => 0,
                        };
                        Key::Int(
                            i64::try_from(dynamic).unwrap_or(0) + i64::from(m.static_alert_count),
                        )
                    }
                    SortKey::CreateTime => Key::Time(m.project_create_time),
                    SortKey::Id => Key::Null,
                };
                page::encode(format!("{}|{}", key.encode(), m.project_id), &token_key)
            })
            .unwrap_or_default()
    } else {
        String::new()
    };
    let total_size = if filter.is_everything() {
        organisation_counters(db, organisation_id, Some(&["projects".to_owned()]))
            .await?
            .get("projects")
            .copied()
            .unwrap_or(0)
    } else {
        i64::try_from(
            fig::Entity::find()
                .filter(filter.condition(organisation_id))
                .count(db)
                .await
                .map_err(db_error)?,
        )
        .unwrap_or(i64::MAX)
    };
    let mut stored = stored_alerts(
        db,
        models
            .iter()
            .filter(|m| m.static_alert_count > 0)
            .map(|m| m.project_id)
            .collect(),
    )
    .await?;
    // The page's cost in the filter's cost centre: one read of its rows.
    let centre_costs: HashMap<Uuid, i64> = match &filter.cost_centre {
        Some(cost_centre) if !models.is_empty() => centre::Entity::find()
            .select_only()
            .column(centre::Column::ProjectId)
            .column(centre::Column::AmountMinor)
            .filter(centre::Column::OrganisationId.eq(organisation_id))
            .filter(centre::Column::CostCentre.eq(cost_centre.as_str()))
            .filter(centre::Column::ProjectId.is_in(models.iter().map(|m| m.project_id)))
            .into_tuple::<(Uuid, i64)>()
            .all(db)
            .await
            .map_err(db_error)?
            .into_iter()
            .collect(),
        _ => HashMap::new(),
    };
    let rows = models
        .into_iter()
        .map(|m| {
            let stored = stored.remove(&m.project_id).unwrap_or_default();
            let cost_centre_cost = filter
                .cost_centre
                .as_ref()
                .map(|_| centre_costs.get(&m.project_id).copied().unwrap_or(0));
            let figures = figures_from(m)?;
            Ok(Row {
                alerts: alerts_of(&figures, &stored, now, org.gate_overdue_days),
                figures,
                cost_centre_cost,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RowPage {
        rows,
        next_page_token,
        total_size,
    })
}

/// An alert on a project.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    pub project_id: Uuid,
    pub project_name: String,
    pub kind: AlertKind,
    pub since: DateTime<Utc>,
    pub reason: String,
}

/// One page of the alerts raised now, by project id then kind.
#[tracing::instrument(skip(db))]
pub async fn alerts(
    db: &impl ConnectionTrait,
    org: &Organisation,
    filter: &Filter,
    kind: Option<AlertKind>,
    page_size: u32,
    page_token: &str,
    now: DateTime<Utc>,
) -> Result<(Vec<AlertRow>, String)> {
    use fig::Column as C;
    let organisation_id = org.id;
    let deadlines = Deadlines::at(now, org.gate_overdue_days);
    let token_key = format!("{}|{kind:?}", filter.key());
    let after: Option<(Uuid, AlertKind)> =
        page::decode::<String>(page_token, &token_key, "page_token")?
            .map(|raw| {
                let (id, kind) = raw.split_once('|')?;
                Some((id.parse().ok()?, kind.parse().ok()?))
            })
            .map(|k| {
                k.ok_or_else(|| {
                    Error::invalid("page_token", "is not a page token this service issued")
                })
            })
            .transpose()?;
    let raised = match kind {
        Some(k) if k.is_static() => Condition::all().add(
            C::ProjectId.in_subquery(
                Query::select()
                    .column(project_alert::Column::ProjectId)
                    .from(project_alert::Entity)
                    .and_where(project_alert::Column::OrganisationId.eq(organisation_id))
                    .and_where(project_alert::Column::Kind.eq(k.as_str()))
                    .to_owned(),
            ),
        ),
        Some(k) => Condition::all().add(deadlines.condition(k).unwrap_or_else(|| Expr::val(false))),
        None => {
            let mut any = Condition::any().add(C::StaticAlertCount.gt(0));
            for k in AlertKind::ALL.iter().filter(|k| !k.is_static()) {
                if let Some(c) = deadlines.condition(*k) {
                    any = any.add(c);
                }
            }
            any
        }
    };
    let mut query = fig::Entity::find()
        .filter(filter.condition(organisation_id))
        .filter(raised);
    if let Some((id, _)) = after {
        query = query.filter(C::ProjectId.gte(id));
    }
    let models = query
        .order_by_asc(C::ProjectId)
        .limit(u64::from(page_size) + 1)
        .all(db)
        .await
        .map_err(db_error)?;
    let mut stored = stored_alerts(
        db,
        models
            .iter()
            .filter(|m| m.static_alert_count > 0)
            .map(|m| m.project_id)
            .collect(),
    )
    .await?;
    let mut out = Vec::new();
    let mut more = false;
    'rows: for m in models {
        let stored = stored.remove(&m.project_id).unwrap_or_default();
        let f = figures_from(m)?;
        for (k, since, reason) in alerts_of(&f, &stored, now, org.gate_overdue_days) {
            if kind.is_some_and(|want| want != k) {
                continue;
            }
            if let Some((id, last)) = after
                && (f.project_id, k) <= (id, last)
            {
                continue;
            }
            if out.len() == page_size as usize {
                more = true;
                break 'rows;
            }
            out.push(AlertRow {
                project_id: f.project_id,
                project_name: f.name.clone(),
                kind: k,
                since,
                reason,
            });
        }
    }
    let next = match (more, out.last()) {
        (true, Some(last)) => page::encode(
            format!("{}|{}", last.project_id, last.kind.as_str()),
            &token_key,
        ),
        _ => String::new(),
    };
    Ok((out, next))
}
