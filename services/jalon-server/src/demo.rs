//! The demo portfolio (`jalon serve --demo`): the white paper's six use cases
//! in one organisation, at plausible phases, with people, sponsors, answered
//! assessments, signed and decided gates. Seeded once, through the same store
//! functions and domain rules as the API.

use jalon_core::{
    Error, Result,
    assessment::{AnswerStatus, QuestionKind, RiskLevel},
    authz::{Action, Role},
    gate::{NewCondition, Outcome, Verdict},
    organisation::NewOrganisation,
    person::NewPerson,
    project::{
        AiActTier, AlgorithmApproach, DataKind, Execution, Hosting, Phase, Project, ProjectDetails,
        ResultType, Usage,
    },
    values::{
        CurrencyCode, DiscountRate, DisplayName, Email, Money, Month, ShortText, Slug, Subject,
    },
};
use jalon_core::{
    finance::{BenefitKind, CostCategory, CostNature},
    kpi::{Cadence, Category, Direction, Kpi, Source, Stage, UnitKind},
};
use jalon_store::{
    Store,
    assessments::{self, Answer},
    audit::Actor,
    finance::{self, NewCost},
    gates,
    kpis::{self, NewMeasurement},
    organisations, people, projects,
};
use uuid::Uuid;

/// The demo organisation's slug.
pub const SLUG: &str = "demo-ai-portfolio";
/// The subject of the demo's innovation director.
pub const DIRECTOR: &str = "demo-director";

/// The store's view of a demo person acting.
fn caller_of(actor: &Actor) -> jalon_store::change::Caller {
    jalon_store::change::Caller {
        subject: actor.subject.clone(),
        platform_admin: false,
    }
}

fn invalid(e: String) -> Error {
    Error::Internal(format!("demo data is invalid: {e}"))
}

fn person(
    subject: &str,
    name: &str,
    department: &str,
    title: &str,
    role: Role,
) -> Result<NewPerson> {
    Ok(NewPerson {
        subject: Subject::parse(subject).map_err(invalid)?,
        email: Email::parse(&format!("{subject}@demo.jalon.example")).map_err(invalid)?,
        display_name: DisplayName::parse(name).map_err(invalid)?,
        department: ShortText::parse(department).map_err(invalid)?,
        job_title: ShortText::parse(title).map_err(invalid)?,
        manager_id: None,
        role,
        external_id: None,
    })
}

struct Case {
    name: &'static str,
    business_unit: &'static str,
    objective: &'static str,
    tags: &'static [&'static str],
    gain: Option<&'static str>,
    usage: Usage,
    result: ResultType,
    data: &'static [DataKind],
    approach: AlgorithmApproach,
    execution: Execution,
    hosting: Hosting,
    personal_data: bool,
    tier: AiActTier,
    tier_reason: &'static str,
    sponsor: &'static str,
    lead: &'static str,
    /// Gates passed with GO, in order (the last may be a CONDITIONAL_GO).
    passes: usize,
    conditional_last: bool,
    /// Out of DEPLOYMENT into production.
    in_production: bool,
    /// A RECYCLE before the first GO.
    recycled_first: bool,
    /// Days spent in each phase stay, oldest first; the last runs up to now.
    phase_days: &'static [i64],
    /// The budget was cut below the costs already incurred.
    over_budget: bool,
    /// The primary KPI: name, unit, kind, direction, baseline, target, POC
    /// result, value after deployment, and optionally money per unit of
    /// improvement with its monthly volume.
    kpi: DemoKpi,
}

struct DemoKpi {
    name: &'static str,
    unit: &'static str,
    kind: UnitKind,
    direction: Direction,
    category: Category,
    baseline: (f64, u64, f64),
    target: f64,
    poc: f64,
    after: (f64, u64, f64),
    value_per_unit: Option<(&'static str, u32)>,
}

const CASES: &[Case] = &[
    Case {
        name: "Promod: grow revenue from the data already held",
        business_unit: "Retail",
        objective: "First AI project and first ROI: predict sales per store and product to adjust stock and promotions",
        tags: &["retail", "forecasting", "first-roi"],
        gain: Some("420000"),
        usage: Usage::Prediction,
        result: ResultType::Prediction,
        data: &[DataKind::Structured, DataKind::TimeSeries],
        approach: AlgorithmApproach::SpecificModel,
        execution: Execution::Batch,
        hosting: Hosting::Cloud,
        personal_data: false,
        tier: AiActTier::Minimal,
        tier_reason: "",
        sponsor: "demo-sponsor-retail",
        lead: "demo-lead-data",
        passes: 4,
        conditional_last: false,
        in_production: true,
        recycled_first: false,
        phase_days: &[40, 95, 130, 280],
        over_budget: false,
        kpi: DemoKpi {
            name: "Forecast error (MAPE)",
            unit: "%",
            kind: UnitKind::Percentage,
            direction: Direction::LowerIsBetter,
            category: Category::ModelPerformance,
            baseline: (32.0, 400, 9.0),
            target: 20.0,
            poc: 18.5,
            after: (17.0, 420, 8.0),
            value_per_unit: None,
        },
    },
    Case {
        name: "Vilogia: callbot qualifying tenants' calls",
        business_unit: "Customer service",
        objective: "Qualify calls among 200+ reasons; cut waiting time, raise pick-up and automated qualification rates; progressive roll-out",
        tags: &["callbot", "nlp", "housing"],
        gain: Some("250000"),
        usage: Usage::Productivity,
        result: ResultType::LanguageProcessing,
        data: &[DataKind::Audio, DataKind::Text],
        approach: AlgorithmApproach::TransferLearning,
        execution: Execution::RealTime,
        hosting: Hosting::Cloud,
        personal_data: true,
        tier: AiActTier::Limited,
        tier_reason: "talks to tenants: they must be told it is an AI",
        sponsor: "demo-sponsor-service",
        lead: "demo-lead-nlp",
        passes: 3,
        conditional_last: false,
        in_production: false,
        recycled_first: false,
        phase_days: &[30, 120, 150, 75],
        over_budget: false,
        kpi: DemoKpi {
            name: "Phone waiting time",
            unit: "seconds",
            kind: UnitKind::Duration,
            direction: Direction::LowerIsBetter,
            category: Category::Customer,
            baseline: (95.0, 12000, 40.0),
            target: 45.0,
            poc: 44.0,
            after: (52.0, 12500, 30.0),
            value_per_unit: Some(("0.05", 40_000)),
        },
    },
    Case {
        name: "VNF Fluviote Quai: quay occupancy from connected sensors",
        business_unit: "Waterways operations",
        objective: "Show quay occupancy in real time to boatmen from connected sensors (demonstrator)",
        tags: &["iot", "demonstrator"],
        gain: None,
        usage: Usage::Other,
        result: ResultType::VisualRecognition,
        data: &[DataKind::TimeSeries, DataKind::Image],
        approach: AlgorithmApproach::TransferLearning,
        execution: Execution::Streaming,
        hosting: Hosting::Edge,
        personal_data: false,
        tier: AiActTier::Minimal,
        tier_reason: "",
        sponsor: "demo-sponsor-ops",
        lead: "demo-lead-iot",
        passes: 1,
        conditional_last: false,
        in_production: false,
        recycled_first: false,
        phase_days: &[50, 210],
        over_budget: true,
        kpi: DemoKpi {
            name: "Quay occupancy accuracy",
            unit: "%",
            kind: UnitKind::Percentage,
            direction: Direction::HigherIsBetter,
            category: Category::ModelPerformance,
            baseline: (45.0, 100, 10.0),
            target: 80.0,
            poc: 0.0,
            after: (0.0, 1, 0.0),
            value_per_unit: None,
        },
    },
    Case {
        name: "NOLEJ: interactive course modules up to 50 times faster",
        business_unit: "Education products",
        objective: "Generate interactive course modules from existing material, up to 50 times faster than by hand",
        tags: &["edtech", "generation"],
        gain: Some("180000"),
        usage: Usage::Productivity,
        result: ResultType::Generation,
        data: &[DataKind::Text],
        approach: AlgorithmApproach::OffTheShelf,
        execution: Execution::Batch,
        hosting: Hosting::Cloud,
        personal_data: false,
        tier: AiActTier::Limited,
        tier_reason: "generated content is labelled as such",
        sponsor: "demo-sponsor-products",
        lead: "demo-lead-nlp",
        passes: 4,
        conditional_last: false,
        in_production: true,
        recycled_first: false,
        phase_days: &[20, 60, 90, 200],
        over_budget: false,
        kpi: DemoKpi {
            name: "Time to build a course module",
            unit: "hours",
            kind: UnitKind::Duration,
            direction: Direction::LowerIsBetter,
            category: Category::Productivity,
            baseline: (40.0, 30, 8.0),
            target: 2.0,
            poc: 1.5,
            after: (0.8, 60, 0.3),
            value_per_unit: Some(("45", 120)),
        },
    },
    Case {
        name: "SII Nord CulturIA: culture-fit score from CVs",
        business_unit: "Recruitment",
        objective: "Score candidates' culture fit from their CVs to help recruiters; bias and discrimination audits throughout",
        tags: &["hr", "recruitment", "bias-audit"],
        gain: None,
        usage: Usage::Prediction,
        result: ResultType::Classification,
        data: &[DataKind::Text],
        approach: AlgorithmApproach::SpecificModel,
        execution: Execution::Batch,
        hosting: Hosting::OnPremises,
        personal_data: true,
        tier: AiActTier::High,
        tier_reason: "recruitment: Annex III high-risk use",
        sponsor: "demo-sponsor-hr",
        lead: "demo-lead-data",
        passes: 2,
        conditional_last: true,
        in_production: false,
        recycled_first: false,
        phase_days: &[45, 110, 400],
        over_budget: false,
        kpi: DemoKpi {
            name: "Recruiter agreement with the score",
            unit: "%",
            kind: UnitKind::Percentage,
            direction: Direction::HigherIsBetter,
            category: Category::ModelPerformance,
            baseline: (50.0, 200, 12.0),
            target: 75.0,
            poc: 78.0,
            after: (0.0, 1, 0.0),
            value_per_unit: None,
        },
    },
    Case {
        name: "SII Nord Opinion Viewer: polarity, topics and summary of social comments",
        business_unit: "Marketing",
        objective: "Give the brand team the polarity, topics and a summary of social-media comments",
        tags: &["nlp", "social-media"],
        gain: None,
        usage: Usage::Other,
        result: ResultType::LanguageProcessing,
        data: &[DataKind::Text],
        approach: AlgorithmApproach::TransferLearning,
        execution: Execution::Batch,
        hosting: Hosting::Cloud,
        personal_data: true,
        tier: AiActTier::Minimal,
        tier_reason: "",
        sponsor: "demo-sponsor-marketing",
        lead: "demo-lead-nlp",
        passes: 1,
        conditional_last: false,
        in_production: false,
        recycled_first: true,
        phase_days: &[30, 40, 40],
        over_budget: false,
        kpi: DemoKpi {
            name: "Comment polarity accuracy",
            unit: "%",
            kind: UnitKind::Percentage,
            direction: Direction::HigherIsBetter,
            category: Category::ModelPerformance,
            baseline: (55.0, 500, 0.0),
            target: 80.0,
            poc: 0.0,
            after: (0.0, 1, 0.0),
            value_per_unit: None,
        },
    },
];

/// Seeds the demo organisation unless it exists. Returns whether it seeded.
pub async fn seed(store: &Store) -> Result<bool> {
    let db = store.db();
    if organisations::find_by_slug(db, SLUG).await?.is_some() {
        return Ok(false);
    }
    let new = NewOrganisation {
        display_name: DisplayName::parse("Demo: the white paper's AI portfolio")
            .map_err(invalid)?,
        slug: Slug::parse(SLUG).map_err(invalid)?,
        default_currency: CurrencyCode::parse("EUR").map_err(invalid)?,
        discount_rate: DiscountRate::parse("0.08").map_err(invalid)?,
        fiscal_year_start_month: Month::JANUARY,
        external_ref: None,
        gate_overdue_days: jalon_core::portfolio::DEFAULT_GATE_OVERDUE_DAYS,
    };
    let admin = person(
        "demo-admin",
        "Ada Admin",
        "IT",
        "Platform owner",
        Role::Admin,
    )?;
    // The demo's administrator sets it up, as a platform administrator would.
    let admin_caller = jalon_store::change::Caller {
        subject: "demo-admin".to_owned(),
        platform_admin: true,
    };
    let (org, _) = organisations::create(db, &admin_caller, &new, &admin, None).await?;
    let mut ids = std::collections::HashMap::new();
    for (subject, name, department, title, role) in [
        (
            DIRECTOR,
            "Diane Directrice",
            "Innovation",
            "Innovation director",
            Role::Director,
        ),
        (
            "demo-viewer",
            "Victor Viewer",
            "Finance",
            "Controller",
            Role::Viewer,
        ),
        (
            "demo-sponsor-retail",
            "Romain Retail",
            "Retail",
            "Retail director",
            Role::Member,
        ),
        (
            "demo-sponsor-service",
            "Sonia Service",
            "Customer service",
            "Customer service director",
            Role::Member,
        ),
        (
            "demo-sponsor-ops",
            "Olivier Ops",
            "Waterways operations",
            "Operations director",
            Role::Member,
        ),
        (
            "demo-sponsor-products",
            "Paula Products",
            "Education products",
            "Product director",
            Role::Member,
        ),
        (
            "demo-sponsor-hr",
            "Hugo HR",
            "Recruitment",
            "HR director",
            Role::Member,
        ),
        (
            "demo-sponsor-marketing",
            "Maud Marketing",
            "Marketing",
            "Brand director",
            Role::Member,
        ),
        (
            "demo-sponsor-sales",
            "Sacha Sales",
            "Sales",
            "Sales director",
            Role::Member,
        ),
        (
            "demo-lead-data",
            "Lea Data",
            "Data office",
            "Data science lead",
            Role::Member,
        ),
        (
            "demo-lead-nlp",
            "Noe Langage",
            "Data office",
            "NLP lead",
            Role::Member,
        ),
        (
            "demo-lead-iot",
            "Ines Iot",
            "Waterways operations",
            "IoT engineer",
            Role::Member,
        ),
    ] {
        let p = people::create(
            db,
            org.id,
            &admin_caller,
            &person(subject, name, department, title, role)?,
            None,
        )
        .await?;
        ids.insert(subject, p.id);
    }
    let id = |subject: &str| {
        ids.get(subject)
            .copied()
            .ok_or_else(|| invalid(format!("no {subject}")))
    };
    let actor = |subject: &str| -> Result<Actor> {
        Ok(Actor {
            person_id: Some(id(subject)?),
            subject: subject.to_owned(),
        })
    };
    let director = actor(DIRECTOR)?;
    let eur = CurrencyCode::parse("EUR").map_err(invalid)?;

    for case in CASES {
        let details = ProjectDetails {
            name: DisplayName::parse(case.name).map_err(invalid)?,
            description: format!("{} (from the white paper's case studies)", case.name),
            business_unit: ShortText::parse(case.business_unit).map_err(invalid)?,
            tags: case.tags.iter().map(|t| (*t).to_owned()).collect(),
            objective: case.objective.to_owned(),
            gain_quantified: case.gain.is_some(),
            expected_gain: case
                .gain
                .map(|g| Money::parse(g, eur))
                .transpose()
                .map_err(invalid)?,
            usage: Some(case.usage),
            result_type: Some(case.result),
            data_kinds: case.data.to_vec(),
            algorithm_approach: Some(case.approach),
            execution: Some(case.execution),
            hosting: Some(case.hosting),
            personal_data: case.personal_data,
            ai_act_tier: case.tier,
            ai_act_reason: case.tier_reason.to_owned(),
            sponsor_id: Some(id(case.sponsor)?),
            lead_id: Some(id(case.lead)?),
            planned_start: None,
            planned_end: None,
        };
        let mut project = projects::create(db, org.id, &caller_of(&director), None, |_| {
            Ok(details.clone())
        })
        .await?;
        let lead = actor(case.lead)?;
        let kpi = demo_kpi(store, org.id, &project, &case.kpi, eur, &lead).await?;
        let sponsor = actor(case.sponsor)?;
        if case.recycled_first {
            let review = gates::request(db, org.id, project.id, &caller_of(&lead)).await?;
            gates::decide(
                db,
                org.id,
                review.review.id,
                Outcome::Recycle,
                "the objective is not clear yet: rework it with marketing",
                &[],
                &caller_of(&director),
            )
            .await?;
        }
        for step in 0..case.passes {
            if project.phase == Phase::Poc {
                measure(
                    store,
                    org.id,
                    kpi,
                    Stage::Poc,
                    (case.kpi.poc, 200, 5.0),
                    &lead,
                )
                .await?;
            }
            answer_phase(store, org.id, &project, &lead).await?;
            let review = gates::request(db, org.id, project.id, &caller_of(&lead)).await?;
            gates::sign(
                db,
                org.id,
                review.review.id,
                Verdict::Approve,
                "the business case holds",
                &caller_of(&sponsor),
            )
            .await?;
            let last = step + 1 == case.passes;
            let (outcome, conditions) = if last && case.conditional_last {
                let due = chrono::Utc::now().date_naive() + chrono::Days::new(60);
                (Outcome::ConditionalGo, vec![NewCondition { description: "Complete the second bias and discrimination audit on the pilot's scores".into(), owner_id: id(case.lead)?, due }])
            } else {
                (Outcome::Go, Vec::new())
            };
            let rationale = if project.phase == Phase::Deployment {
                "the roll-out met its indicators: into production"
            } else {
                "criteria met and the sponsor signed"
            };
            let (_, moved) = gates::decide(
                db,
                org.id,
                review.review.id,
                outcome,
                rationale,
                &conditions,
                &caller_of(&director),
            )
            .await?;
            project = moved;
        }
        if case.in_production {
            measure(
                store,
                org.id,
                kpi,
                Stage::PostDeployment,
                case.kpi.after,
                &lead,
            )
            .await?;
        }
        money(store, org.id, &project, case, eur, &director).await?;
        if case.over_budget {
            let cut = Money::parse("50000", eur).map_err(invalid)?;
            finance::set_budget(db, org.id, project.id, cut, &[], &caller_of(&director)).await?;
        }
        if !case.in_production && project.phase != Phase::Ideation {
            // Work in progress on the current phase.
            answer_some(store, org.id, &project, &lead).await?;
        }
        projects::backdate_for_demo(db, org.id, project.id, case.phase_days).await?;
    }
    churn(
        store,
        org.id,
        eur,
        &director,
        id("demo-sponsor-sales")?,
        id("demo-lead-data")?,
    )
    .await?;
    // The gates and the decision log, dated along the phase histories.
    jalon_store::demo_history::date_history_for_demo(db, org.id).await?;
    Ok(true)
}

/// A new idea whose sponsor has just left the company (HR deactivated
/// them) and whose KPI has no baseline yet: two alerts for the director.
async fn churn(
    store: &Store,
    org: Uuid,
    eur: CurrencyCode,
    director: &Actor,
    sponsor: Uuid,
    lead: Uuid,
) -> Result<()> {
    let db = store.db();
    let details = ProjectDetails {
        name: DisplayName::parse("Subscriber churn: who will leave next quarter")
            .map_err(invalid)?,
        description: "Score subscribers by their risk of leaving, for the retention team".into(),
        business_unit: ShortText::parse("Sales").map_err(invalid)?,
        tags: vec!["churn".into(), "forecasting".into()],
        objective: "Halve the churn of the subscribers the retention team calls".into(),
        gain_quantified: false,
        expected_gain: None,
        usage: Some(Usage::Prediction),
        result_type: Some(ResultType::Classification),
        data_kinds: vec![DataKind::Structured],
        algorithm_approach: Some(AlgorithmApproach::SpecificModel),
        execution: Some(Execution::Batch),
        hosting: Some(Hosting::Cloud),
        personal_data: true,
        ai_act_tier: AiActTier::Minimal,
        ai_act_reason: String::new(),
        sponsor_id: Some(sponsor),
        lead_id: Some(lead),
        planned_start: None,
        planned_end: None,
    };
    let project =
        projects::create(db, org, &caller_of(director), None, |_| Ok(details.clone())).await?;
    let kpi = DemoKpi {
        name: "Quarterly churn rate",
        unit: "%",
        kind: UnitKind::Percentage,
        direction: Direction::LowerIsBetter,
        category: Category::Customer,
        baseline: (0.0, 0, 0.0),
        target: 6.0,
        poc: 0.0,
        after: (0.0, 0, 0.0),
        value_per_unit: None,
    };
    demo_kpi(store, org, &project, &kpi, eur, director).await?;
    projects::backdate_for_demo(db, org, project.id, &[25]).await?;
    // The HR system (here the demo's administrator) deactivates them.
    let hr = jalon_store::change::Caller {
        subject: "demo-admin".to_owned(),
        platform_admin: false,
    };
    people::set_active(db, org, sponsor, "", &hr, false).await?;
    Ok(())
}

/// Costs posted by the finance system, a budget, and for projects in
/// production a recorded benefit.
async fn money(
    store: &Store,
    org: Uuid,
    project: &Project,
    case: &Case,
    eur: CurrencyCode,
    director: &Actor,
) -> Result<()> {
    let today = chrono::Utc::now().date_naive();
    let scale: i64 = if case.in_production { 3 } else { 1 };
    let lines = [
        (CostCategory::People, 45_000 * scale, 150, Phase::Poc),
        (
            CostCategory::Cloud,
            6_000 * scale,
            90,
            Phase::Industrialisation,
        ),
        (CostCategory::DataLabelling, 9_000, 120, Phase::Poc),
    ];
    let rows: Vec<NewCost> = lines
        .iter()
        .enumerate()
        .map(|(i, (category, amount, days_ago, phase))| {
            Ok(NewCost {
                target: finance::CostTarget::Project(project.id),
                amount: Money::parse(&amount.to_string(), eur).map_err(invalid)?,
                original: None,
                category: Some(*category),
                nature: Some(if *category == CostCategory::Cloud {
                    CostNature::Opex
                } else {
                    CostNature::Capex
                }),
                incurred_on: Some(today - chrono::Days::new(*days_ago)),
                source: None,
                posting_period: None,
                reverses: None,
                cost_centre: format!("CC-{}", case.business_unit.to_uppercase().replace(' ', "-")),
                phase: Some(*phase),
                description: format!("{} for {}", category.as_str().to_lowercase(), case.name),
                external_ref: Some(format!("ERP-{}-{i}", project.id.simple())),
            })
        })
        .collect::<Result<_>>()?;
    let total: i64 = lines.iter().map(|(_, a, _, _)| a).sum();
    finance::record_costs(
        store.db(),
        org,
        &caller_of(director),
        Action::RecordCost,
        &rows,
        false,
    )
    .await?;
    let budget = Money::parse(&(total + total / 5).to_string(), eur).map_err(invalid)?;
    finance::set_budget(
        store.db(),
        org,
        project.id,
        budget,
        &[],
        &caller_of(director),
    )
    .await?;
    if case.in_production {
        let benefit = Money::parse("60000", eur).map_err(invalid)?;
        finance::record_benefit(
            store.db(),
            org,
            project.id,
            BenefitKind::Savings,
            benefit,
            today - chrono::Days::new(30),
            "first quarter of savings booked by finance",
            &caller_of(director),
        )
        .await?;
    }
    Ok(())
}

/// The case's primary KPI with its baseline (measured before the project).
async fn demo_kpi(
    store: &Store,
    org: Uuid,
    project: &Project,
    k: &DemoKpi,
    eur: CurrencyCode,
    lead: &Actor,
) -> Result<Uuid> {
    let now = chrono::Utc::now();
    let value_per_unit = k
        .value_per_unit
        .map(|(v, _)| Money::parse(v, eur))
        .transpose()
        .map_err(invalid)?;
    let created = kpis::create(
        store.db(),
        org,
        &Kpi {
            id: Uuid::nil(),
            organisation_id: org,
            project_id: project.id,
            name: k.name.to_owned(),
            description: format!("{} of the project", k.name),
            unit: k.unit.to_owned(),
            unit_kind: k.kind,
            direction: k.direction,
            category: k.category,
            primary: true,
            target: Some(k.target),
            method: "measured by the business over a full month".into(),
            cadence: Some(Cadence::Monthly),
            value_per_unit,
            volume_per_period: k
                .value_per_unit
                .map(|(_, volume)| rust_decimal::Decimal::from(volume)),
            archived: false,
            create_time: now,
            update_time: now,
            version: 0,
        },
        &caller_of(lead),
    )
    .await?;
    if k.baseline.1 > 1 {
        measure(store, org, created.id, Stage::Baseline, k.baseline, lead).await?;
    }
    Ok(created.id)
}

/// Records one measurement (value, sample size, standard deviation) now.
async fn measure(
    store: &Store,
    org: Uuid,
    kpi: Uuid,
    stage: Stage,
    (value, n, sd): (f64, u64, f64),
    actor: &Actor,
) -> Result<()> {
    if n <= 1 {
        return Ok(());
    }
    let outcomes = kpis::record(
        store.db(),
        org,
        &caller_of(actor),
        Action::RecordMeasurement,
        &[NewMeasurement {
            kpi_id: kpi,
            value,
            measure_time: chrono::Utc::now(),
            period_start: None,
            period_end: None,
            stage,
            sample_size: Some(n),
            std_dev: Some(sd),
            source: Source::Manual,
            external_ref: None,
        }],
    )
    .await?;
    match outcomes.into_iter().next() {
        Some(kpis::Outcome::Rejected(e)) => Err(e),
        _ => Ok(()),
    }
}

/// The lead settles every MUST item of the current phase and most SHOULDs
/// (the high-risk controls included when the project needs them).
async fn answer_phase(store: &Store, org: Uuid, project: &Project, lead: &Actor) -> Result<()> {
    let rows = assessments::items(store.db(), project.id, Some(project.phase), None).await?;
    for (i, row) in rows.iter().enumerate() {
        let must = row.kind == QuestionKind::Must.as_str();
        let (status, justification) = if must || i % 4 != 3 {
            (AnswerStatus::Done, String::new())
        } else {
            (
                AnswerStatus::NotApplicable,
                "out of scope for this project".to_owned(),
            )
        };
        let answer = Answer {
            status,
            risk: Some(if i % 7 == 0 {
                RiskLevel::Medium
            } else {
                RiskLevel::Low
            }),
            note: "reviewed with the sponsor's team".into(),
            evidence_uri: format!(
                "https://wiki.demo.jalon.example/projects/{}/{}",
                project.id, row.key
            ),
            justification,
        };
        assessments::answer(
            store.db(),
            org,
            project.id,
            &row.key,
            &answer,
            "",
            &caller_of(lead),
        )
        .await?;
    }
    Ok(())
}

/// A phase half done: some items done, one blocked with a HIGH risk.
async fn answer_some(store: &Store, org: Uuid, project: &Project, lead: &Actor) -> Result<()> {
    let rows = assessments::items(store.db(), project.id, Some(project.phase), None).await?;
    for (i, row) in rows.iter().enumerate().take(rows.len() / 2) {
        let status = if i == 1 {
            AnswerStatus::Blocked
        } else {
            AnswerStatus::Done
        };
        let answer = Answer {
            status,
            risk: Some(if status == AnswerStatus::Blocked {
                RiskLevel::High
            } else {
                RiskLevel::Low
            }),
            note: if status == AnswerStatus::Blocked {
                "waiting for access to production data".into()
            } else {
                "done".into()
            },
            evidence_uri: String::new(),
            justification: String::new(),
        };
        assessments::answer(
            store.db(),
            org,
            project.id,
            &row.key,
            &answer,
            "",
            &caller_of(lead),
        )
        .await?;
    }
    Ok(())
}

/// Finds the demo organisation's id.
pub async fn organisation_id(store: &Store) -> Result<Option<Uuid>> {
    Ok(organisations::find_by_slug(store.db(), SLUG)
        .await?
        .map(|o| o.id))
}
