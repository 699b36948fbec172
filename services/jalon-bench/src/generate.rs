//! The synthetic portfolio: one organisation and its people created through
//! the store (as the demo does), then projects with their whole history
//! bulk-inserted with multi-row INSERT statements, in transactions.
//!
//! Everything is drawn from a seeded PRNG, one stream per project, and ids
//! are derived from counters, so the same seed and size give the same
//! portfolio (times are relative to the day of the run). Values follow the
//! rules the store and the gate engine keep: phases are never skipped, a
//! RECYCLE keeps the phase, a KILL stops and a HOLD pauses the project in
//! its phase, production follows a GO out of DEPLOYMENT, and every row
//! points at rows that exist.

use std::{collections::BTreeMap, time::Instant};

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use jalon_core::{
    assessment::{AnswerStatus, Concern, QuestionKind, RiskLevel},
    authz::Role,
    finance::{BenefitKind, CostCategory, CostNature},
    gate::Outcome,
    kpi::{Cadence, Category, Direction, Source, Stage, UnitKind},
    organisation::NewOrganisation,
    person::NewPerson,
    project::{
        AiActTier, AlgorithmApproach, DataKind, Execution, Hosting, Phase, ResultType, Status,
        Usage,
    },
    values::{CurrencyCode, DiscountRate, DisplayName, Email, Month, ShortText, Slug, Subject},
};
use jalon_store::{
    Store,
    entity::{
        assessment_item, benefit, budget, cost, gate_condition, gate_review, gate_signature, kpi,
        kpi_measurement, project, project_phase, project_tag,
    },
    organisations, people,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, DatabaseTransaction, EntityTrait, TransactionTrait,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{BoxError, rng::Rng};

/// Rows per INSERT statement.
const ROWS_PER_INSERT: usize = 500;
/// Projects per transaction (each brings some 35 rows).
const PROJECTS_PER_TRANSACTION: u64 = 500;
/// The organisation's currency.
const CURRENCY: &str = "EUR";
/// How many people the organisation has, its admin and director included.
pub const PEOPLE: usize = 200;
const SPONSORS: usize = 60;
const INACTIVE_SPONSORS: usize = 6;
const VIEWERS: usize = 2;
const INACTIVE_LEADS: usize = 4;
/// The director the benchmark calls as.
pub const DIRECTOR: &str = "bench-director";

const DAY: i64 = 86_400;

const PHASES: [Phase; 4] = [
    Phase::Ideation,
    Phase::Poc,
    Phase::Industrialisation,
    Phase::Deployment,
];

const BUSINESS_UNITS: &[&str] = &[
    "Retail",
    "Customer service",
    "Finance",
    "Supply chain",
    "Marketing",
    "Human resources",
    "Manufacturing",
    "Logistics",
    "Legal",
    "IT operations",
    "Sales",
    "Research",
];

const SUBJECTS: &[&str] = &[
    "demand forecast",
    "callbot",
    "document triage",
    "churn prediction",
    "invoice matching",
    "quality inspection",
    "route optimisation",
    "contract review",
    "ticket routing",
    "fraud detection",
    "stock replenishment",
    "sentiment analysis",
    "course generation",
    "occupancy detection",
];

const TAGS: &[&str] = &[
    "nlp",
    "vision",
    "forecasting",
    "genai",
    "callbot",
    "iot",
    "first-roi",
    "quick-win",
    "regulatory",
    "customer",
    "internal",
    "data-platform",
    "edge",
    "bias-audit",
    "pilot",
    "group",
];

/// What a kind of id is for: the high bits of the derived uuids.
#[derive(Clone, Copy)]
enum Kind {
    Project = 1,
    Kpi = 2,
    Measurement = 3,
    Cost = 4,
    Review = 5,
    Condition = 6,
    Benefit = 7,
}

/// A deterministic uuid (version 8, "custom") for item `n` of a kind.
fn uid(kind: Kind, n: u64) -> Uuid {
    let raw = ((kind as u128) << 96) | u128::from(n);
    uuid::Builder::from_custom_bytes(raw.to_be_bytes()).into_uuid()
}

/// The id of project `i` (0-based) of a generated portfolio.
pub fn project_id(i: u64) -> Uuid {
    uid(Kind::Project, i)
}

/// What was generated.
#[derive(Debug, Clone)]
pub struct Portfolio {
    pub organisation_id: Uuid,
    pub projects: u64,
    /// Rows inserted, by table.
    pub rows: BTreeMap<String, u64>,
    /// Time spent creating the organisation and its people.
    pub people_secs: f64,
    /// Time spent bulk-inserting the projects and everything under them.
    pub insert_secs: f64,
}

impl Portfolio {
    pub fn to_json(&self) -> Value {
        json!({
            "organisation_id": self.organisation_id,
            "projects": self.projects,
            "rows": self.rows,
            "people_secs": self.people_secs,
            "insert_secs": self.insert_secs,
        })
    }

    pub fn from_json(v: &Value) -> Result<Self, BoxError> {
        let field = |name: &str| v.get(name).ok_or_else(|| format!("no {name} in {v}"));
        Ok(Self {
            organisation_id: field("organisation_id")?
                .as_str()
                .ok_or("organisation_id is not a string")?
                .parse()?,
            projects: field("projects")?
                .as_u64()
                .ok_or("projects is not a number")?,
            rows: serde_json::from_value(field("rows")?.clone())?,
            people_secs: field("people_secs")?.as_f64().unwrap_or(0.0),
            insert_secs: field("insert_secs")?.as_f64().unwrap_or(0.0),
        })
    }
}

fn person(
    subject: &str,
    name: &str,
    department: &str,
    title: &str,
    role: Role,
) -> Result<NewPerson, BoxError> {
    Ok(NewPerson {
        subject: Subject::parse(subject)?,
        email: Email::parse(&format!("{subject}@bench.jalon.example"))?,
        display_name: DisplayName::parse(name)?,
        department: ShortText::parse(department)?,
        job_title: ShortText::parse(title)?,
        manager_id: None,
        role,
        external_id: None,
    })
}

/// The people projects point at.
struct Staff {
    director: Uuid,
    /// Sponsors, the deactivated ones included.
    sponsors: Vec<Uuid>,
    leads: Vec<Uuid>,
}

/// Creates the organisation and its people through the store functions.
async fn organisation(store: &Store, projects: u64) -> Result<(Uuid, Staff), BoxError> {
    let db = store.db();
    let new = NewOrganisation {
        display_name: DisplayName::parse(&format!("Benchmark portfolio ({projects} projects)"))?,
        slug: Slug::parse(&format!("bench-{projects}"))?,
        default_currency: CurrencyCode::parse(CURRENCY)?,
        discount_rate: DiscountRate::parse("0.08")?,
        fiscal_year_start_month: Month::JANUARY,
        external_ref: None,
        gate_overdue_days: jalon_core::portfolio::DEFAULT_GATE_OVERDUE_DAYS,
    };
    let admin = person(
        "bench-admin",
        "Ada Admin",
        "IT",
        "Platform owner",
        Role::Admin,
    )?;
    let admin_caller = jalon_store::change::Caller {
        subject: "bench-admin".to_owned(),
        platform_admin: true,
    };
    let (org, _) = organisations::create(db, &admin_caller, &new, &admin, None).await?;
    let director = people::create(
        db,
        org.id,
        &admin_caller,
        &person(
            DIRECTOR,
            "Diane Directrice",
            "Innovation",
            "Innovation director",
            Role::Director,
        )?,
        None,
    )
    .await?
    .id;
    for v in 0..VIEWERS {
        people::create(
            db,
            org.id,
            &admin_caller,
            &person(
                &format!("bench-viewer-{v:03}"),
                &format!("Viewer {v}"),
                "Finance",
                "Controller",
                Role::Viewer,
            )?,
            None,
        )
        .await?;
    }
    let mut sponsors = Vec::with_capacity(SPONSORS);
    for s in 0..SPONSORS {
        let bu = BUSINESS_UNITS[s % BUSINESS_UNITS.len()];
        let p = people::create(
            db,
            org.id,
            &admin_caller,
            &person(
                &format!("bench-sponsor-{s:03}"),
                &format!("Sponsor {s}"),
                bu,
                "Business director",
                Role::Member,
            )?,
            None,
        )
        .await?;
        sponsors.push(p.id);
    }
    let leads_count = PEOPLE - 2 - VIEWERS - SPONSORS;
    let mut leads = Vec::with_capacity(leads_count);
    for l in 0..leads_count {
        let p = people::create(
            db,
            org.id,
            &admin_caller,
            &person(
                &format!("bench-lead-{l:03}"),
                &format!("Lead {l}"),
                "Data office",
                "Project lead",
                Role::Member,
            )?,
            None,
        )
        .await?;
        leads.push(p.id);
    }
    // Some sponsors left (the HR system deactivated them): their projects
    // raise SPONSOR_INACTIVE. A few leads left too.
    for id in sponsors
        .iter()
        .step_by(SPONSORS / INACTIVE_SPONSORS)
        .take(INACTIVE_SPONSORS)
    {
        people::set_active(db, org.id, *id, "", &admin_caller, false).await?;
    }
    for id in leads
        .iter()
        .skip(1)
        .step_by(leads_count / INACTIVE_LEADS)
        .take(INACTIVE_LEADS)
    {
        people::set_active(db, org.id, *id, "", &admin_caller, false).await?;
    }
    Ok((
        org.id,
        Staff {
            director,
            sponsors,
            leads,
        },
    ))
}

/// Rows of one transaction, parents before children.
#[derive(Default)]
struct Batch {
    projects: Vec<project::ActiveModel>,
    tags: Vec<project_tag::ActiveModel>,
    phases: Vec<project_phase::ActiveModel>,
    kpis: Vec<kpi::ActiveModel>,
    measurements: Vec<kpi_measurement::ActiveModel>,
    costs: Vec<cost::ActiveModel>,
    budgets: Vec<budget::ActiveModel>,
    benefits: Vec<benefit::ActiveModel>,
    reviews: Vec<gate_review::ActiveModel>,
    signatures: Vec<gate_signature::ActiveModel>,
    conditions: Vec<gate_condition::ActiveModel>,
    items: Vec<assessment_item::ActiveModel>,
}

/// Inserts `rows` with multi-row INSERTs of [`ROWS_PER_INSERT`] rows.
async fn insert_all<A>(
    txn: &DatabaseTransaction,
    table: &'static str,
    rows: Vec<A>,
    counts: &mut BTreeMap<&'static str, u64>,
) -> Result<(), BoxError>
where
    A: ActiveModelTrait + Send,
{
    *counts.entry(table).or_default() += rows.len() as u64;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(ROWS_PER_INSERT).collect();
        A::Entity::insert_many(chunk)
            .exec_without_returning(txn)
            .await
            .map_err(|e| format!("inserting into {table}: {e}"))?;
    }
    Ok(())
}

impl Batch {
    async fn write(
        self,
        txn: &DatabaseTransaction,
        counts: &mut BTreeMap<&'static str, u64>,
    ) -> Result<(), BoxError> {
        insert_all(txn, "projects", self.projects, counts).await?;
        insert_all(txn, "project_tags", self.tags, counts).await?;
        insert_all(txn, "project_phases", self.phases, counts).await?;
        insert_all(txn, "kpis", self.kpis, counts).await?;
        insert_all(txn, "kpi_measurements", self.measurements, counts).await?;
        insert_all(txn, "costs", self.costs, counts).await?;
        insert_all(txn, "budgets", self.budgets, counts).await?;
        insert_all(txn, "benefits", self.benefits, counts).await?;
        insert_all(txn, "gate_reviews", self.reviews, counts).await?;
        insert_all(txn, "gate_signatures", self.signatures, counts).await?;
        insert_all(txn, "gate_conditions", self.conditions, counts).await?;
        insert_all(txn, "assessment_items", self.items, counts).await?;
        Ok(())
    }
}

/// Generates the portfolio: the organisation, [`PEOPLE`] people, and
/// `projects` projects with their history.
pub async fn generate(store: &Store, projects: u64, seed: u64) -> Result<Portfolio, BoxError> {
    let started = Instant::now();
    let (organisation_id, staff) = organisation(store, projects).await?;
    let people_secs = started.elapsed().as_secs_f64();
    let now = Utc::now();
    let ctx = Context {
        organisation_id,
        // Whole seconds, so that what is stored reads back identical.
        now: DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now),
        staff,
        seed,
    };
    let mut counts = BTreeMap::new();
    *counts.entry("organisations").or_default() += 1;
    *counts.entry("people").or_default() += PEOPLE as u64;
    let inserting = Instant::now();
    let mut next_report = projects / 10;
    let mut start = 0;
    while start < projects {
        let end = (start + PROJECTS_PER_TRANSACTION).min(projects);
        let mut batch = Batch::default();
        for i in start..end {
            ctx.project(i, &mut batch);
        }
        let txn = store.db().begin().await?;
        batch.write(&txn, &mut counts).await?;
        txn.commit().await?;
        start = end;
        if projects >= 10_000 && start >= next_report && start < projects {
            eprintln!(
                "  {start}/{projects} projects inserted ({:.0} s)",
                inserting.elapsed().as_secs_f64()
            );
            next_report += projects / 10;
        }
    }
    Ok(Portfolio {
        organisation_id,
        projects,
        rows: counts
            .into_iter()
            .map(|(table, n)| (table.to_owned(), n))
            .collect(),
        people_secs,
        insert_secs: inserting.elapsed().as_secs_f64(),
    })
}

/// One gate decision of a project's history.
#[derive(Clone, Copy)]
struct Decision {
    /// Index of the phase the gate closes.
    phase: usize,
    outcome: Outcome,
    time: DateTime<Utc>,
}

struct Context {
    organisation_id: Uuid,
    now: DateTime<Utc>,
    staff: Staff,
    seed: u64,
}

fn days(n: i64) -> Duration {
    Duration::seconds(n * DAY)
}

fn at_midnight(date: NaiveDate) -> DateTime<Utc> {
    date.and_time(NaiveTime::MIN).and_utc()
}

impl Context {
    /// Everything about project `i`, drawn from its own stream.
    fn project(&self, i: u64, out: &mut Batch) {
        let mut rng = Rng::derive(self.seed, i);
        let r = &mut rng;
        let id = project_id(i);
        let org = self.organisation_id;
        let now = self.now;
        let today = now.date_naive();

        // Where the project ends up.
        let last = r.weighted(&[(35, 0usize), (30, 1), (20, 2), (15, 3)]);
        let status = if last == 3 && r.chance(0.35) {
            Status::InProduction
        } else {
            match r.below(100) {
                0..10 => Status::Stopped,
                10..15 => Status::OnHold,
                _ => Status::Active,
            }
        };
        // The gate decisions that led there, in order.
        let mut outcomes: Vec<(usize, Outcome)> = Vec::new();
        for phase in 0..last {
            if r.chance(0.12) {
                outcomes.push((phase, Outcome::Recycle));
            }
            let go = if r.chance(0.08) {
                Outcome::ConditionalGo
            } else {
                Outcome::Go
            };
            outcomes.push((phase, go));
        }
        match status {
            Status::InProduction => {
                if r.chance(0.15) {
                    outcomes.push((last, Outcome::Recycle));
                }
                outcomes.push((last, Outcome::Go));
            }
            Status::Stopped => outcomes.push((last, Outcome::Kill)),
            Status::OnHold => outcomes.push((last, Outcome::Hold)),
            _ => {
                if r.chance(0.15) {
                    outcomes.push((last, Outcome::Recycle));
                }
            }
        }

        // The timeline: created 20 days to 4 years ago; the time since is
        // shared out between the stays in each phase.
        let age = r.range(20 * DAY, 4 * 365 * DAY);
        let create = now - Duration::seconds(age);
        let weights: Vec<f64> = (0..=outcomes.len()).map(|_| 0.3 + r.f64()).collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let decisions: Vec<Decision> = outcomes
            .iter()
            .zip(&weights)
            .map(|(&(phase, outcome), w)| {
                acc += w;
                let offset = (age as f64 * acc / total) as i64;
                Decision {
                    phase,
                    outcome,
                    time: create + Duration::seconds(offset.max(1)),
                }
            })
            .collect();
        // Entry into each phase reached: creation, then each GO.
        let mut enter = vec![create];
        for d in &decisions {
            if matches!(d.outcome, Outcome::Go | Outcome::ConditionalGo) && d.phase < 3 {
                enter.push(d.time);
            }
        }
        let production_time = decisions
            .iter()
            .find(|d| d.phase == 3 && matches!(d.outcome, Outcome::Go))
            .map(|d| d.time);
        let last_event = decisions.last().map_or(create, |d| d.time);
        let phase_at =
            |t: DateTime<Utc>| -> usize { enter.iter().rposition(|e| *e <= t).unwrap_or(0) };

        // Who.
        let sponsor = (!r.chance(0.03)).then(|| r.pick(&self.staff.sponsors));
        let lead = (!r.chance(0.01)).then(|| r.pick(&self.staff.leads));
        let director = self.staff.director;
        let bu = r.pick(BUSINESS_UNITS);
        let subject = r.pick(SUBJECTS);
        let tier = r.weighted(&[
            (10, AiActTier::Unassessed),
            (50, AiActTier::Minimal),
            (25, AiActTier::Limited),
            (14, AiActTier::High),
            (1, AiActTier::Prohibited),
        ]);
        let tier_reason = match tier {
            AiActTier::High => "Annex III use: employment, credit or essential services",
            AiActTier::Prohibited => "social scoring of customers: to be stopped",
            AiActTier::Limited => "talks to people: they must be told it is an AI",
            _ => "",
        };
        let gain = r.chance(0.2).then(|| r.range(20_000, 2_000_000) * 100);
        let mut kinds = vec![r.pick(DataKind::ALL)];
        if r.chance(0.5) {
            let second = r.pick(DataKind::ALL);
            if !kinds.contains(&second) {
                kinds.push(second);
            }
        }
        let in_production = status == Status::InProduction;
        let underperforming = in_production && r.chance(0.2);

        out.projects.push(project::ActiveModel {
            id: Set(id),
            organisation_id: Set(org),
            name: Set(format!("{subject} for {bu} #{i:06}")),
            description: Set(format!("Synthetic project {i}: {subject} for {bu}")),
            business_unit: Set(bu.to_owned()),
            objective: Set(format!("Make {subject} measurably better for {bu}")),
            gain_quantified: Set(gain.is_some()),
            expected_gain_minor: Set(gain),
            expected_gain_currency: Set(gain.map(|_| CURRENCY.to_owned())),
            usage: Set(Some(r.pick(Usage::ALL).as_str().to_owned())),
            result_type: Set(Some(r.pick(ResultType::ALL).as_str().to_owned())),
            data_kinds: Set(kinds
                .iter()
                .map(DataKind::as_str)
                .collect::<Vec<_>>()
                .join(",")),
            algorithm_approach: Set(Some(r.pick(AlgorithmApproach::ALL).as_str().to_owned())),
            execution: Set(Some(r.pick(Execution::ALL).as_str().to_owned())),
            hosting: Set(Some(
                r.weighted(&[
                    (90, Hosting::Cloud),
                    (7, Hosting::OnPremises),
                    (3, Hosting::Edge),
                ])
                .as_str()
                .to_owned(),
            )),
            personal_data: Set(r.chance(0.4)),
            ai_act_tier: Set(tier.as_str().to_owned()),
            ai_act_reason: Set(tier_reason.to_owned()),
            sponsor_id: Set(sponsor),
            lead_id: Set(lead),
            phase: Set(PHASES[last].as_str().to_owned()),
            status: Set(status.as_str().to_owned()),
            planned_start: Set(Some(create.date_naive())),
            planned_end: Set(Some(create.date_naive() + days(r.range(180, 900)))),
            create_time: Set(create),
            update_time: Set(last_event),
            version: Set(1 + decisions.len() as i64),
            underperforming: Set(underperforming),
        });

        // Tags.
        let mut tags: Vec<&str> = (0..r.range(1, 3)).map(|_| r.pick(TAGS)).collect();
        tags.sort_unstable();
        tags.dedup();
        for tag in tags {
            out.tags.push(project_tag::ActiveModel {
                project_id: Set(id),
                organisation_id: Set(org),
                tag: Set(tag.to_owned()),
            });
        }

        // Phase history: one stay per phase reached; the current one open.
        for (seq, enter_time) in enter.iter().enumerate() {
            out.phases.push(project_phase::ActiveModel {
                project_id: Set(id),
                seq: Set(seq as i32),
                phase: Set(PHASES[seq].as_str().to_owned()),
                enter_time: Set(*enter_time),
                leave_time: Set(enter.get(seq + 1).copied()),
            });
        }

        // Gate reviews, decided, with the sponsor's signature on the GOs
        // and a condition on the CONDITIONAL_GOs.
        let signatories = match sponsor {
            Some(s) => format!(r#"[{{"function":"SPONSOR","person_id":"{s}"}}]"#),
            None => "[]".to_owned(),
        };
        let mut previous = create;
        for (k, d) in decisions.iter().enumerate() {
            let review_id = uid(Kind::Review, i * 16 + k as u64);
            let request_time = (d.time - days(r.range(1, 14))).max(previous);
            let from = PHASES[d.phase];
            let rationale = match d.outcome {
                Outcome::Go => "criteria met and the sponsor signed",
                Outcome::ConditionalGo => "criteria met, with a condition to close",
                Outcome::Recycle => "the objective is not clear yet: rework it",
                Outcome::Hold => "no budget this year: paused",
                Outcome::Kill => "the gain does not cover the cost",
            };
            out.reviews.push(gate_review::ActiveModel {
                id: Set(review_id),
                organisation_id: Set(org),
                project_id: Set(id),
                open_project_id: Set(None),
                from_phase: Set(from.as_str().to_owned()),
                to_phase: Set(from.next().map(|p| p.as_str().to_owned())),
                state: Set("DECIDED".to_owned()),
                requested_by: Set(lead.or(Some(director))),
                request_time: Set(request_time),
                criteria_at_request: Set("[]".to_owned()),
                signatories: Set(signatories.clone()),
                outcome: Set(Some(d.outcome.as_str().to_owned())),
                rationale: Set(rationale.to_owned()),
                decided_by: Set(Some(director)),
                decide_time: Set(Some(d.time)),
                criteria_at_decision: Set(Some("[]".to_owned())),
                version: Set(2),
            });
            if let (Some(s), Outcome::Go | Outcome::ConditionalGo) = (sponsor, d.outcome) {
                out.signatures.push(gate_signature::ActiveModel {
                    review_id: Set(review_id),
                    person_id: Set(s),
                    verdict: Set("APPROVE".to_owned()),
                    comment: Set("the business case holds".to_owned()),
                    sign_time: Set(request_time + (d.time - request_time) / 2),
                });
            }
            if d.outcome == Outcome::ConditionalGo {
                let due = d.time.date_naive() + days(r.range(30, 120));
                let closed = due < today && r.chance(0.6);
                let owner = lead.unwrap_or(director);
                out.conditions.push(gate_condition::ActiveModel {
                    id: Set(uid(Kind::Condition, i * 16 + k as u64)),
                    organisation_id: Set(org),
                    project_id: Set(id),
                    review_id: Set(review_id),
                    description: Set("Complete the bias audit on the pilot's data".to_owned()),
                    owner_id: Set(owner),
                    due_date: Set(due),
                    closed: Set(closed),
                    close_note: Set(if closed {
                        "audit done".to_owned()
                    } else {
                        String::new()
                    }),
                    closed_by: Set(closed.then_some(owner)),
                    close_time: Set(closed.then(|| at_midnight(due).min(now))),
                });
            }
            previous = d.time;
        }

        // KPIs and their measurements: a baseline series before the project
        // (sometimes late, sometimes missing), POC and pilot results, and a
        // post-deployment series at the KPI's cadence once in production.
        let kpi_count = if r.chance(0.5) { 2 } else { 1 };
        let mut m = 0u64;
        for k in 0..kpi_count {
            let kpi_id = uid(Kind::Kpi, i * 4 + k);
            let unit_kind = r.pick(UnitKind::ALL);
            let unit = match unit_kind {
                UnitKind::Duration => "minutes",
                UnitKind::Percentage => "%",
                UnitKind::Count => "items",
                UnitKind::Currency => CURRENCY,
                UnitKind::Ratio => "ratio",
                UnitKind::Score => "points",
            };
            let direction = r.pick(Direction::ALL);
            let better = if direction == Direction::HigherIsBetter {
                1.0
            } else {
                -1.0
            };
            let baseline = r.range(20, 2000) as f64;
            let cadence = r.weighted(&[
                (70, Cadence::Monthly),
                (10, Cadence::Weekly),
                (20, Cadence::Quarterly),
            ]);
            let monetised = r.chance(0.3);
            let kpi_create = (create + days(1)).min(now);
            out.kpis.push(kpi::ActiveModel {
                id: Set(kpi_id),
                organisation_id: Set(org),
                project_id: Set(id),
                name: Set(format!("KPI {k} of project {i}")),
                description: Set("what the business measures".to_owned()),
                unit: Set(unit.to_owned()),
                unit_kind: Set(unit_kind.as_str().to_owned()),
                direction: Set(direction.as_str().to_owned()),
                category: Set(r.pick(Category::ALL).as_str().to_owned()),
                is_primary: Set(k == 0),
                target: Set(Some(baseline * (1.0 + better * 0.2))),
                method: Set("measured by the business over a full period".to_owned()),
                cadence: Set(Some(cadence.as_str().to_owned())),
                value_per_unit_minor: Set(monetised.then(|| r.range(5, 5_000))),
                value_per_unit_currency: Set(monetised.then(|| CURRENCY.to_owned())),
                volume_per_period: Set(monetised.then(|| "1000".to_owned())),
                archived: Set(false),
                create_time: Set(kpi_create),
                update_time: Set(kpi_create),
                version: Set(1),
            });
            let mut measure = |out: &mut Batch,
                               r: &mut Rng,
                               stage: Stage,
                               time: DateTime<Utc>,
                               value: f64,
                               late: bool| {
                out.measurements.push(kpi_measurement::ActiveModel {
                    id: Set(uid(Kind::Measurement, i * 64 + m)),
                    organisation_id: Set(org),
                    kpi_id: Set(kpi_id),
                    value: Set(value),
                    measure_time: Set(time),
                    period_start: Set(None),
                    period_end: Set(None),
                    stage: Set(stage.as_str().to_owned()),
                    sample_size: Set(Some(r.range(30, 500))),
                    std_dev: Set(Some((baseline * 0.1).max(0.5))),
                    source: Set(r
                        .weighted(&[(70, Source::Manual), (30, Source::Integration)])
                        .as_str()
                        .to_owned()),
                    external_ref: Set(None),
                    late_baseline: Set(late),
                    create_time: Set(time),
                });
                m += 1;
            };
            if !r.chance(0.03) {
                let count = r.range(3, 8);
                let late = r.chance(0.04);
                for j in 0..count {
                    let time = if late {
                        (create + days(7 * (j + 1))).min(now)
                    } else {
                        create - days(30 * (count - j))
                    };
                    let value = baseline * (1.0 + 0.05 * (r.f64() - 0.5));
                    measure(out, r, Stage::Baseline, time, value, late);
                }
            }
            let span = |phase: usize| -> Option<(DateTime<Utc>, DateTime<Utc>)> {
                let from = *enter.get(phase)?;
                let to = enter
                    .get(phase + 1)
                    .copied()
                    .or(production_time)
                    .unwrap_or(now);
                Some((from, to))
            };
            for (phase, stage, gain) in [(1, Stage::Poc, 0.15), (3, Stage::Pilot, 0.12)] {
                if let Some((from, to)) = span(phase) {
                    for _ in 0..r.range(1, 2) {
                        let offset =
                            ((to - from).num_seconds() as f64 * (0.2 + 0.7 * r.f64())) as i64;
                        let value = baseline * (1.0 + better * gain * (0.5 + r.f64()));
                        measure(
                            out,
                            r,
                            stage,
                            from + Duration::seconds(offset),
                            value,
                            false,
                        );
                    }
                }
            }
            if let Some(live) = production_time {
                let step = match cadence {
                    Cadence::Weekly => 7,
                    Cadence::Monthly => 30,
                    Cadence::Quarterly => 91,
                };
                let mut times: Vec<DateTime<Utc>> = (1..)
                    .map(|n| live + days(step * n))
                    .take_while(|t| *t <= now)
                    .collect();
                // A quarter of them stopped being measured: REVIEW_OVERDUE.
                if r.chance(0.25) {
                    let keep = times.len().saturating_sub(2);
                    times.truncate(keep);
                }
                let skip = times.len().saturating_sub(12);
                let n = times.len() - skip;
                for (j, time) in times.into_iter().skip(skip).enumerate() {
                    let worse = underperforming && k == 0 && j + 2 >= n;
                    let change = if worse { -0.1 } else { 0.1 + 0.2 * r.f64() };
                    let value = baseline * (1.0 + better * change);
                    measure(out, r, Stage::PostDeployment, time, value, false);
                }
            }
        }

        // Costs: about ten lines over every category, in the phase the
        // project was in when they were incurred.
        let end = if matches!(status, Status::Stopped | Status::OnHold) {
            last_event
        } else {
            now
        };
        let lines = r.range(8, 12) as u64;
        let offset = r.below(CostCategory::ALL.len() as u64) as usize;
        let mut cost_total = 0i64;
        for j in 0..lines {
            let category = CostCategory::ALL[(offset + j as usize) % CostCategory::ALL.len()];
            let (lo, hi) = match category {
                CostCategory::People => (5_000, 60_000),
                CostCategory::Cloud => (500, 15_000),
                CostCategory::Licences => (1_000, 20_000),
                CostCategory::DataLabelling => (1_000, 25_000),
                CostCategory::Integration => (2_000, 40_000),
                CostCategory::RunOperations => (500, 10_000),
                CostCategory::Other => (100, 5_000),
            };
            let amount = r.range(lo, hi) * 100 + r.range(0, 99);
            cost_total += amount;
            let at =
                create + Duration::seconds(((end - create).num_seconds() as f64 * r.f64()) as i64);
            let nature = if matches!(
                category,
                CostCategory::Cloud | CostCategory::Licences | CostCategory::RunOperations
            ) {
                CostNature::Opex
            } else {
                CostNature::Capex
            };
            out.costs.push(cost::ActiveModel {
                id: Set(uid(Kind::Cost, i * 16 + j)),
                organisation_id: Set(org),
                project_id: Set(id),
                amount_minor: Set(amount),
                currency: Set(CURRENCY.to_owned()),
                category: Set(category.as_str().to_owned()),
                nature: Set(nature.as_str().to_owned()),
                incurred_on: Set(at.date_naive()),
                cost_centre: Set(format!("CC-{}", bu.to_uppercase().replace(' ', "-"))),
                phase: Set(PHASES[phase_at(at)].as_str().to_owned()),
                description: Set(format!(
                    "{} for project {i}",
                    category.as_str().to_lowercase()
                )),
                external_ref: Set(Some(format!("ERP-{i}-{j}"))),
                create_time: Set(at),
                source: Set(jalon_core::finance::MANUAL_SOURCE.to_owned()),
                posting_period: Set(at.format("%Y-%m").to_string()),
                original_amount_minor: Set(None),
                original_currency: Set(None),
                exchange_rate: Set(None),
                rate_date: Set(None),
                reverses_cost_id: Set(None),
            });
        }

        // Budgets for two projects in three, some overrun.
        if r.chance(0.65) {
            let factor = 0.85 + 0.75 * r.f64();
            out.budgets.push(budget::ActiveModel {
                project_id: Set(id),
                organisation_id: Set(org),
                total_minor: Set((cost_total as f64 * factor) as i64),
                currency: Set(CURRENCY.to_owned()),
                by_category: Set("[]".to_owned()),
                update_time: Set(create),
                version: Set(1),
            });
        }

        // Benefits booked by finance once in production.
        if let Some(live) = production_time {
            for j in 0..r.range(1, 3) as u64 {
                let at =
                    live + Duration::seconds(((now - live).num_seconds() as f64 * r.f64()) as i64);
                out.benefits.push(benefit::ActiveModel {
                    id: Set(uid(Kind::Benefit, i * 4 + j)),
                    organisation_id: Set(org),
                    project_id: Set(id),
                    kind: Set(r.pick(BenefitKind::ALL).as_str().to_owned()),
                    amount_minor: Set((cost_total as f64 * (0.2 + 0.6 * r.f64())) as i64),
                    currency: Set(CURRENCY.to_owned()),
                    benefit_date: Set(at.date_naive()),
                    description: Set("booked by finance".to_owned()),
                    create_time: Set(at),
                });
            }
        }

        // The current phase's checklist, partly answered, with one or two
        // open HIGH risks for the heat map.
        let phase = PHASES[last];
        for k in 0..r.range(4, 6) {
            let concern = r.pick(Concern::ALL);
            let (kind, status, risk) = match k {
                0 => (
                    QuestionKind::Must,
                    AnswerStatus::Open,
                    Some(RiskLevel::High),
                ),
                1 if r.chance(0.5) => (
                    QuestionKind::Should,
                    AnswerStatus::Open,
                    Some(RiskLevel::High),
                ),
                1 => (
                    QuestionKind::Should,
                    AnswerStatus::Blocked,
                    Some(RiskLevel::High),
                ),
                _ => {
                    let kind = if r.chance(0.3) {
                        QuestionKind::Must
                    } else {
                        QuestionKind::Should
                    };
                    match r.below(10) {
                        0..6 => (
                            kind,
                            AnswerStatus::Done,
                            Some(r.pick(&[RiskLevel::Low, RiskLevel::Medium])),
                        ),
                        6 => (kind, AnswerStatus::NotApplicable, None),
                        _ => (kind, AnswerStatus::Open, None),
                    }
                }
            };
            let answered = status != AnswerStatus::Open || risk.is_some();
            let answer_time = enter[last]
                + Duration::seconds(((now - enter[last]).num_seconds() as f64 * r.f64()) as i64);
            out.items.push(assessment_item::ActiveModel {
                project_id: Set(id),
                key: Set(format!(
                    "bench.{}.{}.{k}",
                    phase.as_str().to_lowercase(),
                    concern.as_str().to_lowercase()
                )),
                organisation_id: Set(org),
                phase: Set(phase.as_str().to_owned()),
                concern: Set(concern.as_str().to_owned()),
                kind: Set(kind.as_str().to_owned()),
                weight: Set(r.range(1, 3) as i32),
                text: Set(format!(
                    "Synthetic {} question {k} on {}",
                    kind.as_str(),
                    concern.as_str()
                )),
                bank_version: Set(0),
                status: Set(status.as_str().to_owned()),
                risk: Set(risk.map(|v| v.as_str().to_owned())),
                note: Set(if answered {
                    "reviewed with the sponsor's team".to_owned()
                } else {
                    String::new()
                }),
                evidence_uri: Set(String::new()),
                justification: Set(if status == AnswerStatus::NotApplicable {
                    "out of scope for this project".to_owned()
                } else {
                    String::new()
                }),
                answered_by: Set(if answered {
                    lead.or(Some(director))
                } else {
                    None
                }),
                answer_time: Set(answered.then_some(answer_time)),
                version: Set(if answered { 2 } else { 1 }),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> Context {
        Context {
            organisation_id: Uuid::from_u128(1),
            now: DateTime::from_timestamp(1_800_000_000, 0).expect("a valid time"),
            staff: Staff {
                director: Uuid::from_u128(2),
                sponsors: (10..70).map(Uuid::from_u128).collect(),
                leads: (100..236).map(Uuid::from_u128).collect(),
            },
            seed: 42,
        }
    }

    fn value<T: Clone + Into<sea_orm::Value>>(v: &sea_orm::ActiveValue<T>) -> T {
        v.as_ref().clone()
    }

    #[test]
    fn a_project_is_generated_identically_from_the_same_seed() {
        let ctx = context();
        let (mut a, mut b) = (Batch::default(), Batch::default());
        ctx.project(7, &mut a);
        ctx.project(7, &mut b);
        assert_eq!(a.projects, b.projects);
        assert_eq!(a.measurements, b.measurements);
        assert_eq!(a.costs, b.costs);
    }

    #[test]
    fn histories_follow_the_lifecycle() {
        let ctx = context();
        let mut batch = Batch::default();
        for i in 0..2_000 {
            ctx.project(i, &mut batch);
        }
        let n = batch.projects.len();
        let stopped = batch
            .projects
            .iter()
            .filter(|p| value(&p.status) == "STOPPED")
            .count();
        let production = batch
            .projects
            .iter()
            .filter(|p| value(&p.status) == "IN_PRODUCTION")
            .count();
        assert!(
            (n / 20..n / 7).contains(&stopped),
            "{stopped} stopped of {n}"
        );
        assert!(
            (n / 40..n / 10).contains(&production),
            "{production} in production of {n}"
        );
        // One phase stay per phase reached, the last one open.
        for p in &batch.projects {
            let id = value(&p.id);
            let stays: Vec<_> = batch
                .phases
                .iter()
                .filter(|s| value(&s.project_id) == id)
                .collect();
            let phase = value(&p.phase);
            assert_eq!(value(&stays[stays.len() - 1].phase), phase);
            assert!(value(&stays[stays.len() - 1].leave_time).is_none());
            assert!(
                stays[..stays.len() - 1]
                    .iter()
                    .all(|s| value(&s.leave_time).is_some())
            );
        }
        let per_project = |rows: usize| rows as f64 / n as f64;
        assert!((8.0..12.5).contains(&per_project(batch.costs.len())));
        assert!(
            (7.0..13.0).contains(&per_project(batch.measurements.len())),
            "{}",
            per_project(batch.measurements.len())
        );
        // Every timestamp is in the past.
        assert!(
            batch
                .measurements
                .iter()
                .all(|m| value(&m.measure_time) <= ctx.now)
        );
        assert!(
            batch
                .reviews
                .iter()
                .all(|r| value(&r.request_time) <= value(&r.decide_time).expect("decided"))
        );
    }
}
