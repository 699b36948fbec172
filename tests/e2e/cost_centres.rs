//! The portfolio by cost centre (issue 12): costs in two cost centres (and
//! without one) across three projects, with a partial reversal and a
//! restatement into another cost centre; the summary's breakdown, the
//! filtered summary, rows and export checked against hand-computed values;
//! a MEMBER's breakdown covers only their projects; another organisation's
//! costs never appear; a bad filter names `filter.cost_centre`.

use jalon_proto::v1 as pb;
use tokio_stream::StreamExt;
use tonic::Code;

use crate::{
    helpers::*,
    kpis::eur,
    portfolio::{rows, summary},
};

/// An organisation with a director (dina), a MEMBER (lea) who leads
/// Alpha and Beta, and Gamma, led by nobody.
struct Setup {
    org: String,
    lea: String,
    gamma: String,
}

async fn project(app: &TestApp, org: &str, name: &str, lead: &str) -> String {
    let project = pb::Project {
        lead_id: lead.into(),
        ..minimal_project(name)
    };
    app.create_project("dina", org, project).await.id
}

/// `amount` EUR of people cost on `project`, booked to `cost_centre`.
fn line(project: &str, external_ref: &str, amount: &str, cost_centre: &str) -> pb::Cost {
    pb::Cost {
        project_id: project.into(),
        amount: eur(amount),
        category: pb::CostCategory::People as i32,
        nature: pb::CostNature::Opex as i32,
        incurred_on: Some(pb::Date {
            year: 2026,
            month: 3,
            day: 10,
        }),
        cost_centre: cost_centre.into(),
        external_ref: external_ref.into(),
        ..Default::default()
    }
}

async fn record(app: &TestApp, org: &str, costs: Vec<pb::Cost>) {
    let r = app
        .finance()
        .record_costs(authed(
            "dina",
            pb::RecordCostsRequest {
                organisation_id: org.into(),
                costs,
            },
        ))
        .await
        .expect("record costs")
        .into_inner();
    assert!(r.results.is_empty(), "every row accepted: {r:?}");
}

/// The costs (EUR):
///
/// | project | CC-4711                 | CC-4200                      | none |
/// |---------|-------------------------|------------------------------|------|
/// | Alpha   | 1,000                   | 500                          | 200  |
/// | Beta    | 3,000 - 1,000 reversed  |                              |      |
/// | Gamma   | 700 (the restatement)   | 800 - 800 (corrected)        |      |
///
/// CC-4711: 3,700 over 3 projects; CC-4200: 500 over 2 (Gamma's line,
/// reversed in full, still counts); none: 200 over 1; total 4,400.
async fn setup(app: &TestApp) -> Setup {
    let (org, _) = app.create_org("centres", "alice").await;
    app.add_person("alice", &org.id, "dina", pb::Role::Director)
        .await;
    let lea = app
        .add_person("alice", &org.id, "lea", pb::Role::Member)
        .await;
    let org = org.id;
    let alpha = project(app, &org, "Alpha", &lea.id).await;
    let beta = project(app, &org, "Beta", &lea.id).await;
    let gamma = project(app, &org, "Gamma", "").await;
    record(
        app,
        &org,
        vec![
            line(&alpha, "a1", "1000.00", "CC-4711"),
            line(&alpha, "a2", "500.00", "CC-4200"),
            line(&alpha, "a3", "200.00", ""),
            line(&beta, "b1", "3000.00", "CC-4711"),
            line(&gamma, "c1", "800.00", "CC-4200"),
        ],
    )
    .await;
    // A partial reversal: booked to the reversed line's cost centre.
    record(
        app,
        &org,
        vec![pb::Cost {
            amount: eur("-1000.00"),
            external_ref: "b1-r".into(),
            reverses_external_ref: "b1".into(),
            ..Default::default()
        }],
    )
    .await;
    // A restatement: Gamma's line reversed in full and posted again, 700
    // in CC-4711.
    app.finance()
        .correct_cost(authed(
            "dina",
            pb::CorrectCostRequest {
                organisation_id: org.clone(),
                external_ref: "c1".into(),
                reversal_external_ref: "c1-r".into(),
                description: "wrong cost centre".into(),
                replacement: Some(line("", "c1-2", "700.00", "CC-4711")),
                ..Default::default()
            },
        ))
        .await
        .expect("correct cost");
    Setup {
        org,
        lea: lea.id,
        gamma,
    }
}

fn amount(m: &Option<pb::Money>) -> String {
    m.as_ref().map(|m| m.amount.clone()).unwrap_or_default()
}

/// The breakdown as (cost centre, cost, projects), in the answer's order.
fn breakdown(s: &pb::PortfolioSummary) -> Vec<(String, String, i64)> {
    s.money
        .as_ref()
        .unwrap()
        .cost_by_cost_centre
        .iter()
        .map(|c| (c.cost_centre.clone(), amount(&c.cost), c.project_count))
        .collect()
}

fn entry(cost_centre: &str, cost: &str, projects: i64) -> (String, String, i64) {
    (cost_centre.to_owned(), cost.to_owned(), projects)
}

fn by(cost_centre: &str) -> Option<pb::PortfolioFilter> {
    Some(pb::PortfolioFilter {
        cost_centre: cost_centre.into(),
        ..Default::default()
    })
}

/// (name, cost, cost in the filter's cost centre) of each row.
fn row_costs(rows: &[pb::PortfolioProject]) -> Vec<(String, String, Option<String>)> {
    rows.iter()
        .map(|r| {
            (
                r.name.clone(),
                amount(&r.cost),
                r.cost_centre_cost.as_ref().map(|m| m.amount.clone()),
            )
        })
        .collect()
}

fn row(name: &str, cost: &str, in_centre: Option<&str>) -> (String, String, Option<String>) {
    (
        name.to_owned(),
        cost.to_owned(),
        in_centre.map(str::to_owned),
    )
}

#[tokio::test]
async fn the_summary_breaks_down_and_filters_by_cost_centre() {
    on_each_backend(async |app: &TestApp| {
        let s = setup(app).await;
        use pb::PortfolioSort::Name;

        // The whole organisation: every cost centre, largest first, the
        // lines without one under "".
        let all = summary(app, "dina", &s.org, None).await;
        assert_eq!(amount(&all.money.as_ref().unwrap().cost), "4400.00");
        assert_eq!(
            breakdown(&all),
            vec![
                entry("CC-4711", "3700.00", 3),
                entry("CC-4200", "500.00", 2),
                entry("", "200.00", 1),
            ]
        );
        // Not asked for (include_cost_centres unset): no breakdown, the
        // rest of the summary the same.
        let unasked = app
            .portfolio()
            .get_portfolio_summary(authed(
                "dina",
                pb::GetPortfolioSummaryRequest {
                    organisation_id: s.org.clone(),
                    ..Default::default()
                },
            ))
            .await
            .expect("summary")
            .into_inner()
            .summary
            .unwrap();
        assert!(breakdown(&unasked).is_empty());
        assert_eq!(
            unasked.money.as_ref().unwrap().cost,
            all.money.as_ref().unwrap().cost
        );
        // No cost-centre filter: rows carry no cost-centre cost.
        let plain = rows(app, "dina", &s.org, Name, false, None).await;
        assert!(plain.iter().all(|r| r.cost_centre_cost.is_none()));

        // CC-4200: Alpha, and Gamma whose line there was reversed in full.
        // Their money stays whole; the breakdown shows every cost centre
        // of those projects.
        let f = summary(app, "dina", &s.org, by("CC-4200")).await;
        assert_eq!(f.project_count, 2);
        assert_eq!(amount(&f.money.as_ref().unwrap().cost), "2400.00");
        assert_eq!(
            breakdown(&f),
            vec![
                entry("CC-4711", "1700.00", 2),
                entry("CC-4200", "500.00", 2),
                entry("", "200.00", 1),
            ]
        );
        assert_eq!(
            row_costs(&rows(app, "dina", &s.org, Name, false, by("CC-4200")).await),
            vec![
                row("Alpha", "1700.00", Some("500.00")),
                row("Gamma", "700.00", Some("0.00")),
            ]
        );
        // CC-4711: the three projects, each with its cost there.
        assert_eq!(
            row_costs(&rows(app, "dina", &s.org, Name, false, by("CC-4711")).await),
            vec![
                row("Alpha", "1700.00", Some("1000.00")),
                row("Beta", "2000.00", Some("2000.00")),
                row("Gamma", "700.00", Some("700.00")),
            ]
        );
        // Sorted by cost, paged one row at a time: the same rows.
        assert_eq!(
            row_costs(
                &rows(
                    app,
                    "dina",
                    &s.org,
                    pb::PortfolioSort::Cost,
                    true,
                    by("CC-4711")
                )
                .await
            ),
            vec![
                row("Beta", "2000.00", Some("2000.00")),
                row("Alpha", "1700.00", Some("1000.00")),
                row("Gamma", "700.00", Some("700.00")),
            ]
        );
        // Combined with another filter (AND): led by lea and in CC-4200.
        let lea_led = Some(pb::PortfolioFilter {
            lead_id: s.lea.clone(),
            ..by("CC-4200").unwrap()
        });
        let f = summary(app, "dina", &s.org, lea_led).await;
        assert_eq!(f.project_count, 1);
        assert_eq!(
            breakdown(&f),
            vec![
                entry("CC-4711", "1000.00", 1),
                entry("CC-4200", "500.00", 1),
                entry("", "200.00", 1),
            ]
        );
        // A cost centre nobody booked to: nothing.
        let none = summary(app, "dina", &s.org, by("CC-9999")).await;
        assert_eq!(none.project_count, 0);
        assert!(breakdown(&none).is_empty());
        let page = app
            .portfolio()
            .list_portfolio_projects(authed(
                "dina",
                pb::ListPortfolioProjectsRequest {
                    organisation_id: s.org.clone(),
                    filter: by("CC-9999"),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(page.projects.is_empty());
        assert_eq!(page.total_size, 0);

        // The export takes the same filter and carries the same cost.
        let mut stream = app
            .portfolio()
            .export_portfolio(authed(
                "dina",
                pb::ExportPortfolioRequest {
                    organisation_id: s.org.clone(),
                    filter: by("CC-4200"),
                },
            ))
            .await
            .expect("export")
            .into_inner();
        let mut exported = Vec::new();
        while let Some(m) = stream.next().await {
            exported.push(m.expect("row").project.unwrap());
        }
        exported.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(
            row_costs(&exported),
            vec![
                row("Alpha", "1700.00", Some("500.00")),
                row("Gamma", "700.00", Some("0.00")),
            ]
        );

        // GetProjectFinancials reads the same aggregate: Gamma's CC-4200
        // nets to zero.
        let fin = app
            .finance()
            .get_project_financials(authed(
                "dina",
                pb::GetProjectFinancialsRequest {
                    organisation_id: s.org.clone(),
                    project_id: s.gamma.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let fin_centres: Vec<(String, String)> = fin
            .cost_by_cost_centre
            .iter()
            .map(|c| (c.cost_centre.clone(), amount(&c.amount)))
            .collect();
        assert_eq!(
            fin_centres,
            vec![
                ("CC-4200".to_owned(), "0.00".to_owned()),
                ("CC-4711".to_owned(), "700.00".to_owned()),
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn a_member_sees_the_cost_centres_of_their_projects_only() {
    on_each_backend(async |app: &TestApp| {
        let s = setup(app).await;
        // lea leads Alpha and Beta, not Gamma.
        let mine = summary(app, "lea", &s.org, None).await;
        assert_eq!(mine.project_count, 2);
        assert_eq!(
            breakdown(&mine),
            vec![
                entry("CC-4711", "3000.00", 2),
                entry("CC-4200", "500.00", 1),
                entry("", "200.00", 1),
            ]
        );
        // Filtered: Alpha only (Gamma, also in CC-4200, is not theirs).
        let f = summary(app, "lea", &s.org, by("CC-4200")).await;
        assert_eq!(f.project_count, 1);
        assert_eq!(
            breakdown(&f),
            vec![
                entry("CC-4711", "1000.00", 1),
                entry("CC-4200", "500.00", 1),
                entry("", "200.00", 1),
            ]
        );
        assert_eq!(
            row_costs(
                &rows(
                    app,
                    "lea",
                    &s.org,
                    pb::PortfolioSort::Name,
                    false,
                    by("CC-4200")
                )
                .await
            ),
            vec![row("Alpha", "1700.00", Some("500.00"))]
        );
    })
    .await;
}

#[tokio::test]
async fn another_organisations_cost_centres_never_appear() {
    on_each_backend(async |app: &TestApp| {
        let s = setup(app).await;
        // Another organisation books to the same cost centre names.
        let (other, _) = app.create_org("elsewhere", "olga").await;
        let theirs = app
            .create_project("olga", &other.id, minimal_project("Theirs"))
            .await
            .id;
        let r = app
            .finance()
            .record_costs(authed(
                "olga",
                pb::RecordCostsRequest {
                    organisation_id: other.id.clone(),
                    costs: vec![
                        line(&theirs, "x1", "99999.00", "CC-4711"),
                        line(&theirs, "x2", "5.00", "CC-9999"),
                    ],
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(r.results.is_empty(), "{r:?}");
        // The first organisation's figures are unchanged.
        let all = summary(app, "dina", &s.org, None).await;
        assert_eq!(
            breakdown(&all),
            vec![
                entry("CC-4711", "3700.00", 3),
                entry("CC-4200", "500.00", 2),
                entry("", "200.00", 1),
            ]
        );
        let none = summary(app, "dina", &s.org, by("CC-9999")).await;
        assert_eq!(none.project_count, 0);
        assert!(breakdown(&none).is_empty());
        let names: Vec<String> = rows(
            app,
            "dina",
            &s.org,
            pb::PortfolioSort::Name,
            false,
            by("CC-4711"),
        )
        .await
        .into_iter()
        .map(|r| r.name)
        .collect();
        assert_eq!(names, vec!["Alpha", "Beta", "Gamma"]);
        // The other organisation sees its own only.
        let theirs_summary = summary(app, "olga", &other.id, by("CC-4711")).await;
        assert_eq!(theirs_summary.project_count, 1);
        assert_eq!(
            breakdown(&theirs_summary),
            vec![entry("CC-4711", "99999.00", 1), entry("CC-9999", "5.00", 1)]
        );
        // A MEMBER of the first organisation gets nothing of the other.
        let status = app
            .portfolio()
            .get_portfolio_summary(authed(
                "lea",
                pb::GetPortfolioSummaryRequest {
                    organisation_id: other.id.clone(),
                    filter: by("CC-4711"),
                    include_cost_centres: false,
                },
            ))
            .await
            .unwrap_err();
        assert!(
            matches!(status.code(), Code::NotFound | Code::PermissionDenied),
            "{status:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_bad_cost_centre_filter_is_invalid_argument_naming_the_field() {
    on_each_backend(async |app: &TestApp| {
        let s = setup(app).await;
        for bad in ["C".repeat(101), "CC\t4711".into(), "CC\u{7}4711".into()] {
            expect_bad_field(
                app.portfolio()
                    .get_portfolio_summary(authed(
                        "dina",
                        pb::GetPortfolioSummaryRequest {
                            organisation_id: s.org.clone(),
                            filter: by(&bad),
                            include_cost_centres: false,
                        },
                    ))
                    .await,
                "filter.cost_centre",
            );
            expect_bad_field(
                app.portfolio()
                    .list_portfolio_projects(authed(
                        "dina",
                        pb::ListPortfolioProjectsRequest {
                            organisation_id: s.org.clone(),
                            filter: by(&bad),
                            ..Default::default()
                        },
                    ))
                    .await,
                "filter.cost_centre",
            );
            expect_bad_field(
                app.portfolio()
                    .export_portfolio(authed(
                        "dina",
                        pb::ExportPortfolioRequest {
                            organisation_id: s.org.clone(),
                            filter: by(&bad),
                        },
                    ))
                    .await
                    .map(|_| ()),
                "filter.cost_centre",
            );
        }
        // 100 characters are fine.
        let longest = summary(app, "dina", &s.org, by(&"C".repeat(100))).await;
        assert_eq!(longest.project_count, 0);
    })
    .await;
}

#[tokio::test]
async fn the_migration_sums_existing_costs_by_cost_centre() {
    use chrono::{TimeZone, Utc};
    use jalon_migration::MigratorTrait;
    use jalon_store::{
        PoolOptions, Store,
        entity::{cost, organisation, project, project_cost_centre},
    };
    use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
    for backend in backends() {
        let db = FreshDatabase::create(&backend).await;
        let conn = db.connect().await;
        // The schema before this aggregate: the migrations before its own.
        let before = jalon_migration::Migrator::migrations()
            .iter()
            .position(|m| m.name() == "m20261208_000001_create_project_cost_centres")
            .expect("the cost-centre migration");
        jalon_migration::Migrator::up(&conn, Some(u32::try_from(before).unwrap()))
            .await
            .unwrap();
        let t = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        let org = uuid::Uuid::now_v7();
        organisation::ActiveModel {
            id: Set(org),
            display_name: Set("Legacy".into()),
            slug: Set("legacy".into()),
            default_currency: Set("EUR".into()),
            discount_rate: Set("0.08".into()),
            fiscal_year_start_month: Set(1),
            external_ref: Set(None),
            create_time: Set(t),
            update_time: Set(t),
            delete_time: Set(None),
            version: Set(1),
            gate_overdue_days: Set(365),
        }
        .insert(&conn)
        .await
        .unwrap();
        let mut projects = Vec::new();
        for name in ["Old bot", "Old forecast"] {
            let p = uuid::Uuid::now_v7();
            project::ActiveModel {
                id: Set(p),
                organisation_id: Set(org),
                name: Set(name.into()),
                description: Set(String::new()),
                business_unit: Set(String::new()),
                objective: Set(String::new()),
                gain_quantified: Set(false),
                expected_gain_minor: Set(None),
                expected_gain_currency: Set(None),
                usage: Set(None),
                result_type: Set(None),
                data_kinds: Set("[]".into()),
                algorithm_approach: Set(None),
                execution: Set(None),
                hosting: Set(None),
                personal_data: Set(false),
                ai_act_tier: Set("MINIMAL".into()),
                ai_act_reason: Set(String::new()),
                sponsor_id: Set(None),
                lead_id: Set(None),
                phase: Set("IDEATION".into()),
                status: Set("ACTIVE".into()),
                planned_start: Set(None),
                planned_end: Set(None),
                create_time: Set(t),
                update_time: Set(t),
                version: Set(1),
                underperforming: Set(false),
            }
            .insert(&conn)
            .await
            .unwrap();
            projects.push(p);
        }
        let (p1, p2) = (projects[0], projects[1]);
        let line1 = uuid::Uuid::now_v7();
        for (i, (project_id, minor, centre, reverses)) in [
            (p1, 10_000_i64, "CC-1", None),
            (p1, 2_500, "CC-1", None),
            (p1, -2_500, "CC-1", Some(line1)),
            (p1, 700, "", None),
            (p2, 4_000, "CC-2", None),
        ]
        .into_iter()
        .enumerate()
        {
            cost::ActiveModel {
                id: Set(if i == 1 { line1 } else { uuid::Uuid::now_v7() }),
                organisation_id: Set(org),
                project_id: Set(project_id),
                amount_minor: Set(minor),
                currency: Set("EUR".into()),
                category: Set("CLOUD".into()),
                nature: Set("OPEX".into()),
                incurred_on: Set(t.date_naive()),
                cost_centre: Set(centre.into()),
                phase: Set("IDEATION".into()),
                description: Set(String::new()),
                external_ref: Set(Some(format!("OLD-{i}"))),
                create_time: Set(t),
                source: Set("manual".into()),
                posting_period: Set("2026-03".into()),
                original_amount_minor: Set(None),
                original_currency: Set(None),
                exchange_rate: Set(None),
                rate_date: Set(None),
                reverses_cost_id: Set(reverses),
            }
            .insert(&conn)
            .await
            .unwrap();
        }
        jalon_migration::Migrator::up(&conn, None).await.unwrap();
        let rows = |conn| async move {
            let mut out: Vec<(uuid::Uuid, String, i64, i64)> = project_cost_centre::Entity::find()
                .filter(project_cost_centre::Column::OrganisationId.eq(org))
                .all(conn)
                .await
                .unwrap()
                .into_iter()
                .map(|r| (r.project_id, r.cost_centre, r.amount_minor, r.lines))
                .collect();
            out.sort();
            out
        };
        let mut expected = vec![
            (p1, String::new(), 700, 1),
            (p1, "CC-1".to_owned(), 10_000, 3),
            (p2, "CC-2".to_owned(), 4_000, 1),
        ];
        expected.sort();
        assert_eq!(rows(&conn).await, expected, "summed by the migration");
        // The same rows as a recomputation from scratch.
        let store = Store::connect(&db.url, &PoolOptions::default())
            .await
            .unwrap();
        jalon_store::portfolio::rebuild(store.db(), org)
            .await
            .unwrap();
        store.close().await;
        assert_eq!(rows(&conn).await, expected, "recomputed");
        conn.close().await.unwrap();
        db.drop_database().await;
    }
}
