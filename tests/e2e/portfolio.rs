//! The innovation director's portfolio end to end: figures checked against
//! hand-computed values, filters, sorting and pages, visibility, every alert
//! raised and cleared by the action that fixes it, the export stream, and
//! the maintained roll-ups equal to a recomputation after random writes.

use chrono::{Duration, Utc};
use jalon_proto::v1 as pb;
use jalon_store::{
    PoolOptions, Store,
    entity::{gate_condition, kpi_measurement, project_phase},
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use tonic::Code;

use crate::{
    helpers::*,
    kpis::{Callbot, at, callbot, decide, eur, go, measure, record},
};

/// An organisation `acme` with a director (dina), a sponsor (sam), a lead
/// (lea) and a viewer (vic), and three projects:
/// - Callbot (Customer service; nlp, callcenter; LIMITED), sponsored by sam
///   and led by lea: 1,000.50 EUR of cloud and 500.00 of people, a budget of
///   1,200.00, 2,000.00 of recorded savings, one open HIGH-risk item;
/// - Forecast (Supply; HIGH), no sponsor, a KPI without baseline;
/// - Emotion (HR; nlp; PROHIBITED), sponsored by sam.
struct Acme {
    org: String,
    callbot: String,
    forecast: String,
    emotion: String,
    sam: String,
    lea: String,
}

async fn create_project(app: &TestApp, org: &str, project: pb::Project) -> pb::Project {
    app.create_project("dina", org, project).await
}

fn today() -> Option<pb::Date> {
    let d = Utc::now().date_naive();
    use chrono::Datelike;
    Some(pb::Date {
        year: d.year(),
        month: i32::try_from(d.month()).unwrap(),
        day: i32::try_from(d.day()).unwrap(),
    })
}

async fn cost(app: &TestApp, org: &str, project: &str, amount: &str, category: pb::CostCategory) {
    app.finance()
        .record_cost(authed(
            "dina",
            pb::RecordCostRequest {
                organisation_id: org.into(),
                cost: Some(pb::Cost {
                    project_id: project.into(),
                    amount: eur(amount),
                    category: category as i32,
                    nature: pb::CostNature::Opex as i32,
                    incurred_on: today(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .expect("record cost");
}

async fn budget(app: &TestApp, org: &str, project: &str, amount: &str) {
    app.finance()
        .set_budget(authed(
            "dina",
            pb::SetBudgetRequest {
                organisation_id: org.into(),
                project_id: project.into(),
                total: eur(amount),
                by_category: vec![],
            },
        ))
        .await
        .expect("set budget");
}

async fn acme(app: &TestApp) -> Acme {
    let (org, _) = app.create_org("acme", "alice").await;
    let org = org.id;
    app.add_person("alice", &org, "dina", pb::Role::Director)
        .await;
    let sam = app.add_person("alice", &org, "sam", pb::Role::Member).await;
    let lea = app.add_person("alice", &org, "lea", pb::Role::Member).await;
    app.add_person("alice", &org, "vic", pb::Role::Viewer).await;
    let callbot = create_project(
        app,
        &org,
        pb::Project {
            name: "Callbot".into(),
            business_unit: "Customer service".into(),
            tags: vec!["nlp".into(), "callcenter".into()],
            sponsor_id: sam.id.clone(),
            lead_id: lea.id.clone(),
            ai_act_tier: pb::AiActTier::Limited as i32,
            ..Default::default()
        },
    )
    .await;
    let forecast = create_project(
        app,
        &org,
        pb::Project {
            name: "Forecast".into(),
            business_unit: "Supply".into(),
            ai_act_tier: pb::AiActTier::High as i32,
            ai_act_reason: "decides on staffing levels".into(),
            ..Default::default()
        },
    )
    .await;
    let emotion = create_project(
        app,
        &org,
        pb::Project {
            name: "Emotion".into(),
            business_unit: "HR".into(),
            tags: vec!["nlp".into()],
            sponsor_id: sam.id.clone(),
            ai_act_tier: pb::AiActTier::Prohibited as i32,
            ai_act_reason: "emotion recognition at work".into(),
            ..Default::default()
        },
    )
    .await;
    cost(app, &org, &callbot.id, "1000.50", pb::CostCategory::Cloud).await;
    cost(app, &org, &callbot.id, "500.00", pb::CostCategory::People).await;
    budget(app, &org, &callbot.id, "1200.00").await;
    app.finance()
        .record_benefit(authed(
            "dina",
            pb::RecordBenefitRequest {
                organisation_id: org.clone(),
                benefit: Some(pb::Benefit {
                    project_id: callbot.id.clone(),
                    kind: pb::BenefitKind::Savings as i32,
                    amount: eur("2000.00"),
                    date: today(),
                    description: "fewer transfers".into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .expect("record benefit");
    let items = app
        .assessments()
        .list_assessment_items(authed(
            "lea",
            pb::ListAssessmentItemsRequest {
                organisation_id: org.clone(),
                project_id: callbot.id.clone(),
                phase: pb::Phase::Ideation as i32,
                concern: pb::Concern::Data as i32,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .items;
    app.assessments()
        .answer_assessment_item(authed(
            "lea",
            pb::AnswerAssessmentItemRequest {
                organisation_id: org.clone(),
                project_id: callbot.id.clone(),
                key: items[0].key.clone(),
                status: pb::AnswerStatus::Open as i32,
                risk: pb::RiskLevel::High as i32,
                note: "the call recordings hold health data".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("answer");
    app.kpis()
        .create_kpi(authed(
            "dina",
            pb::CreateKpiRequest {
                organisation_id: org.clone(),
                kpi: Some(crate::gates::accuracy_kpi(&forecast.id)),
            },
        ))
        .await
        .expect("kpi");
    Acme {
        org,
        callbot: callbot.id,
        forecast: forecast.id,
        emotion: emotion.id,
        sam: sam.id,
        lea: lea.id,
    }
}

pub(crate) async fn summary(
    app: &TestApp,
    who: &str,
    org: &str,
    filter: Option<pb::PortfolioFilter>,
) -> pb::PortfolioSummary {
    let mut s = app
        .portfolio()
        .get_portfolio_summary(authed(
            who,
            pb::GetPortfolioSummaryRequest {
                organisation_id: org.into(),
                filter,
                include_cost_centres: true,
            },
        ))
        .await
        .expect("summary")
        .into_inner()
        .summary
        .unwrap();
    s.compute_time = None;
    s
}

fn money(m: &Option<pb::Money>) -> String {
    m.as_ref().map(|m| m.amount.clone()).unwrap_or_default()
}

fn alert_count(s: &pb::PortfolioSummary, kind: pb::AlertKind) -> i64 {
    s.alerts
        .iter()
        .find(|a| a.kind == kind as i32)
        .map_or(0, |a| a.count)
}

pub(crate) async fn rows(
    app: &TestApp,
    who: &str,
    org: &str,
    sort: pb::PortfolioSort,
    descending: bool,
    filter: Option<pb::PortfolioFilter>,
) -> Vec<pb::PortfolioProject> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .portfolio()
            .list_portfolio_projects(authed(
                who,
                pb::ListPortfolioProjectsRequest {
                    organisation_id: org.into(),
                    filter: filter.clone(),
                    sort: sort as i32,
                    descending,
                    page_size: 1,
                    page_token: token,
                },
            ))
            .await
            .expect("list")
            .into_inner();
        out.extend(page.projects);
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

fn names(rows: &[pb::PortfolioProject]) -> Vec<&str> {
    rows.iter().map(|r| r.name.as_str()).collect()
}

#[tokio::test]
async fn the_summary_adds_up_a_crafted_portfolio() {
    on_each_backend(async |app: &TestApp| {
        let a = acme(app).await;
        let s = summary(app, "dina", &a.org, None).await;
        assert_eq!(s.project_count, 3);
        assert_eq!(
            s.by_phase_status,
            vec![pb::PhaseStatusCount {
                phase: pb::Phase::Ideation as i32,
                status: pb::ProjectStatus::Active as i32,
                count: 3
            }]
        );
        let funnel = s.funnel.clone().unwrap();
        assert_eq!(funnel.stages[0].entered, 3);
        assert_eq!(funnel.stages[0].decided, 0);
        assert_eq!(funnel.stages[0].kill_rate, "");
        assert_eq!(funnel.stages[1].entered, 0);
        assert_eq!(funnel.poc_to_production_share, "");
        let m = s.money.clone().unwrap();
        assert_eq!(money(&m.budget), "1200.00");
        assert_eq!(money(&m.cost), "1500.50");
        let by: Vec<(i32, String)> = m
            .cost_by_category
            .iter()
            .filter(|c| money(&c.amount) != "0.00")
            .map(|c| (c.category, money(&c.amount)))
            .collect();
        assert_eq!(
            by,
            vec![
                (pb::CostCategory::People as i32, "500.00".into()),
                (pb::CostCategory::Cloud as i32, "1000.50".into())
            ]
        );
        assert_eq!(money(&m.recorded_benefit), "2000.00");
        assert_eq!(money(&m.derived_benefit), "0.00");
        assert_eq!(money(&m.net_value), "499.50");
        // 499.50 / 1500.50 = 0.33288903...
        assert_eq!(m.roi, "0.332889");
        assert_eq!(m.paid_back_projects, 1);
        assert_eq!(m.projects_with_cost, 1);
        let tiers: Vec<i64> = s.ai_act_tiers.iter().map(|t| t.count).collect();
        assert_eq!(tiers, vec![0, 0, 1, 1, 1], "UNASSESSED..PROHIBITED");
        let hot: Vec<(i32, i32, i64)> = s
            .risk_heat_map
            .iter()
            .filter(|c| c.open_high_risk_items > 0)
            .map(|c| (c.phase, c.concern, c.open_high_risk_items))
            .collect();
        assert_eq!(
            hot,
            vec![(pb::Phase::Ideation as i32, pb::Concern::Data as i32, 1)]
        );
        assert_eq!(s.risk_heat_map.len(), 24);
        use pb::AlertKind as K;
        for (kind, n) in [
            (K::NoSponsor, 1),
            (K::SponsorInactive, 0),
            (K::KpiWithoutBaseline, 1),
            (K::LateBaseline, 0),
            (K::GateOverdue, 0),
            (K::ReviewOverdue, 0),
            (K::KpiUnderperforming, 0),
            (K::BudgetOverrun, 1),
            (K::ConditionOverdue, 0),
            (K::ProhibitedActive, 1),
            (K::LeadInactive, 0),
        ] {
            assert_eq!(alert_count(&s, kind), n, "{kind:?}");
        }
        assert_eq!(s.time_in_phase.len(), 4);
        assert!(s.time_in_phase.iter().all(|d| d.stays == 0));

        // A filter that matches everything reads the projects' contributions
        // instead of the counters: the same figures.
        let all = pb::PortfolioFilter {
            status: pb::ProjectStatus::Active as i32,
            ..Default::default()
        };
        assert_eq!(summary(app, "dina", &a.org, Some(all)).await, s);
        // The viewer sees the whole organisation too.
        assert_eq!(summary(app, "vic", &a.org, None).await, s);

        // Filters.
        let supply = summary(
            app,
            "dina",
            &a.org,
            Some(pb::PortfolioFilter {
                business_unit: "Supply".into(),
                ..Default::default()
            }),
        )
        .await;
        assert_eq!(supply.project_count, 1);
        assert_eq!(alert_count(&supply, K::NoSponsor), 1);
        assert_eq!(alert_count(&supply, K::BudgetOverrun), 0);
        let nlp = summary(
            app,
            "dina",
            &a.org,
            Some(pb::PortfolioFilter {
                tags: vec!["nlp".into()],
                ..Default::default()
            }),
        )
        .await;
        assert_eq!(nlp.project_count, 2);
        assert_eq!(money(&nlp.money.unwrap().cost), "1500.50");
        let both = summary(
            app,
            "dina",
            &a.org,
            Some(pb::PortfolioFilter {
                tags: vec!["nlp".into(), "callcenter".into()],
                ..Default::default()
            }),
        )
        .await;
        assert_eq!(both.project_count, 1);
        for (filter, expected) in [
            (
                pb::PortfolioFilter {
                    sponsor_id: a.sam.clone(),
                    ..Default::default()
                },
                2,
            ),
            (
                pb::PortfolioFilter {
                    lead_id: a.lea.clone(),
                    ..Default::default()
                },
                1,
            ),
            (
                pb::PortfolioFilter {
                    ai_act_tier: pb::AiActTier::High as i32,
                    ..Default::default()
                },
                1,
            ),
            (
                pb::PortfolioFilter {
                    phase: pb::Phase::Poc as i32,
                    ..Default::default()
                },
                0,
            ),
            (
                pb::PortfolioFilter {
                    create_time_to: at(-1),
                    ..Default::default()
                },
                0,
            ),
            (
                pb::PortfolioFilter {
                    create_time_from: at(-1),
                    create_time_to: at(1),
                    ..Default::default()
                },
                3,
            ),
        ] {
            let got = summary(app, "dina", &a.org, Some(filter.clone())).await;
            assert_eq!(got.project_count, expected, "{filter:?}");
        }

        // Members see the projects they lead or sponsor.
        let lea = summary(app, "lea", &a.org, None).await;
        assert_eq!(lea.project_count, 1);
        assert_eq!(alert_count(&lea, K::BudgetOverrun), 1);
        assert_eq!(alert_count(&lea, K::NoSponsor), 0);
        assert_eq!(summary(app, "sam", &a.org, None).await.project_count, 2);
        let lea_rows = rows(app, "lea", &a.org, pb::PortfolioSort::Name, false, None).await;
        assert_eq!(names(&lea_rows), vec!["Callbot"]);

        // Another organisation sees nothing.
        let (other, _) = app.create_org("other", "olga").await;
        for who in ["olga"] {
            let refused = app
                .portfolio()
                .get_portfolio_summary(authed(
                    who,
                    pb::GetPortfolioSummaryRequest {
                        organisation_id: a.org.clone(),
                        filter: None,
                        include_cost_centres: false,
                    },
                ))
                .await;
            expect_code(refused, Code::NotFound);
            let refused = app
                .portfolio()
                .list_alerts(authed(
                    who,
                    pb::ListAlertsRequest {
                        organisation_id: a.org.clone(),
                        ..Default::default()
                    },
                ))
                .await;
            expect_code(refused, Code::NotFound);
        }
        let theirs = summary(app, "olga", &other.id, None).await;
        assert_eq!(theirs.project_count, 0);
        assert_eq!(
            money(&theirs.money.unwrap().cost),
            "0.00",
            "no figure leaks across organisations"
        );
        let _ = (&a.forecast, &a.emotion, &a.callbot);
    })
    .await;
}

#[tokio::test]
async fn rows_sort_filter_and_page() {
    on_each_backend(async |app: &TestApp| {
        let a = acme(app).await;
        use pb::PortfolioSort as S;
        assert_eq!(
            names(&rows(app, "dina", &a.org, S::Name, false, None).await),
            vec!["Callbot", "Emotion", "Forecast"]
        );
        assert_eq!(
            names(&rows(app, "dina", &a.org, S::Name, true, None).await),
            vec!["Forecast", "Emotion", "Callbot"]
        );
        let by_cost = rows(app, "dina", &a.org, S::Cost, true, None).await;
        assert_eq!(by_cost[0].name, "Callbot");
        assert_eq!(money(&by_cost[0].cost), "1500.50");
        assert_eq!(money(&by_cost[0].benefit), "2000.00");
        assert_eq!(money(&by_cost[0].budget), "1200.00");
        assert_eq!(by_cost[0].roi, "0.332889");
        assert!(by_cost[0].paid_back);
        assert_eq!(by_cost[0].phase, pb::Phase::Ideation as i32);
        assert_eq!(by_cost[0].days_in_phase, 0);
        let mut alerts = by_cost[0].alerts.clone();
        alerts.sort_unstable();
        assert_eq!(
            alerts,
            vec![
                pb::AlertKind::BudgetOverrun as i32,
                pb::AlertKind::NoKpi as i32
            ]
        );
        assert_eq!(by_cost.len(), 3);
        // ROI: projects without cost come last, whatever the direction.
        for descending in [false, true] {
            let by_roi = rows(app, "dina", &a.org, S::Roi, descending, None).await;
            assert_eq!(by_roi.len(), 3);
            assert_eq!(by_roi[0].name, "Callbot");
            assert_eq!(by_roi[1].roi, "");
        }
        // Alerts: two each (Forecast: no sponsor, KPI without baseline;
        // Emotion: prohibited, no KPI; Callbot: budget overrun, no KPI),
        // then Callbot's budget is raised and it drops to one.
        let by_alerts = rows(app, "dina", &a.org, S::Alerts, true, None).await;
        let counts: Vec<usize> = by_alerts.iter().map(|r| r.alerts.len()).collect();
        assert_eq!(counts, vec![2, 2, 2]);
        budget(app, &a.org, &a.callbot, "5000").await;
        let by_alerts = rows(app, "dina", &a.org, S::Alerts, true, None).await;
        assert_eq!(by_alerts[2].name, "Callbot");
        assert_eq!(by_alerts[2].alerts, vec![pb::AlertKind::NoKpi as i32]);
        let ascending = rows(app, "dina", &a.org, S::Alerts, false, None).await;
        assert_eq!(ascending[0].name, "Callbot");
        for sort in [
            S::Unspecified,
            S::Phase,
            S::DaysInPhase,
            S::Readiness,
            S::KpiGain,
            S::Benefit,
            S::CreateTime,
        ] {
            for descending in [false, true] {
                let got = rows(app, "dina", &a.org, sort, descending, None).await;
                let mut seen = names(&got);
                seen.sort_unstable();
                assert_eq!(seen, vec!["Callbot", "Emotion", "Forecast"], "{sort:?}");
            }
        }
        let created = rows(app, "dina", &a.org, S::CreateTime, false, None).await;
        assert_eq!(names(&created), vec!["Callbot", "Forecast", "Emotion"]);
        let nlp = rows(
            app,
            "dina",
            &a.org,
            S::Name,
            false,
            Some(pb::PortfolioFilter {
                tags: vec!["nlp".into()],
                ..Default::default()
            }),
        )
        .await;
        assert_eq!(names(&nlp), vec!["Callbot", "Emotion"]);

        // A page token is bound to its filter and sort.
        let first = app
            .portfolio()
            .list_portfolio_projects(authed(
                "dina",
                pb::ListPortfolioProjectsRequest {
                    organisation_id: a.org.clone(),
                    page_size: 2,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(first.total_size, 3);
        assert_eq!(first.projects.len(), 2);
        let misuse = app
            .portfolio()
            .list_portfolio_projects(authed(
                "dina",
                pb::ListPortfolioProjectsRequest {
                    organisation_id: a.org.clone(),
                    sort: S::Cost as i32,
                    page_token: first.next_page_token.clone(),
                    ..Default::default()
                },
            ))
            .await;
        expect_bad_field(misuse, "page_token");
        let bad = app
            .portfolio()
            .list_portfolio_projects(authed(
                "dina",
                pb::ListPortfolioProjectsRequest {
                    organisation_id: a.org.clone(),
                    sort: 99,
                    page_size: -1,
                    filter: Some(pb::PortfolioFilter {
                        sponsor_id: "nope".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ))
            .await;
        let status = expect_code(bad, Code::InvalidArgument);
        let mut fields = bad_fields(&status);
        fields.sort();
        assert_eq!(fields, vec!["filter.sponsor_id", "page_size", "sort"]);

        // The export streams every row, in id order.
        let mut stream = app
            .portfolio()
            .export_portfolio(authed(
                "dina",
                pb::ExportPortfolioRequest {
                    organisation_id: a.org.clone(),
                    filter: None,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let mut exported = Vec::new();
        while let Some(msg) = stream.message().await.unwrap() {
            exported.push(msg.project.unwrap());
        }
        let mut ids: Vec<String> = exported.iter().map(|p| p.project_id.clone()).collect();
        let sorted = {
            let mut s = ids.clone();
            s.sort();
            s
        };
        assert_eq!(ids, sorted);
        ids.sort();
        let mut expected = vec![a.callbot.clone(), a.forecast.clone(), a.emotion.clone()];
        expected.sort();
        assert_eq!(ids, expected);
        let callbot = exported.iter().find(|p| p.name == "Callbot").unwrap();
        assert_eq!(money(&callbot.cost), "1500.50");
    })
    .await;
}

async fn alerts_of(app: &TestApp, org: &str, project: &str) -> Vec<i32> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .portfolio()
            .list_alerts(authed(
                "dina",
                pb::ListAlertsRequest {
                    organisation_id: org.into(),
                    page_size: 2,
                    page_token: token,
                    ..Default::default()
                },
            ))
            .await
            .expect("alerts")
            .into_inner();
        for a in page.alerts {
            assert!(!a.reason.is_empty());
            assert!(a.since.is_some());
            if a.project_id == project {
                out.push(a.kind);
            }
        }
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

/// A harmless write on the project, so that its figures are recomputed after
/// a test moved its clock.
async fn touch(app: &TestApp, org: &str, project: &str) {
    app.projects()
        .update_project(authed(
            "dina",
            pb::UpdateProjectRequest {
                organisation_id: org.into(),
                project: Some(pb::Project {
                    id: project.into(),
                    description: format!("touched at {}", Utc::now()),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["description".into()],
                }),
            },
        ))
        .await
        .expect("touch");
}

/// Moves the project's phase history `days` into the past.
async fn age(app: &TestApp, project: &str, days: i64) {
    let db = app.db.connect().await;
    let id: uuid::Uuid = project.parse().unwrap();
    for span in project_phase::Entity::find()
        .filter(project_phase::Column::ProjectId.eq(id))
        .all(&db)
        .await
        .unwrap()
    {
        project_phase::Entity::update_many()
            .col_expr(
                project_phase::Column::EnterTime,
                Expr::value(span.enter_time - Duration::days(days)),
            )
            .col_expr(
                project_phase::Column::LeaveTime,
                Expr::value(span.leave_time.map(|t| t - Duration::days(days))),
            )
            .filter(project_phase::Column::ProjectId.eq(id))
            .filter(project_phase::Column::Seq.eq(span.seq))
            .exec(&db)
            .await
            .unwrap();
    }
    db.close().await.unwrap();
}

fn has(kinds: &[i32], kind: pb::AlertKind) -> bool {
    kinds.contains(&(kind as i32))
}

#[tokio::test]
async fn write_raised_alerts_are_raised_and_cleared_by_their_fix() {
    on_each_backend(async |app: &TestApp| {
        use pb::AlertKind as K;
        let a = acme(app).await;
        // No sponsor: cleared by naming one.
        assert!(has(
            &alerts_of(app, &a.org, &a.forecast).await,
            K::NoSponsor
        ));
        let hugo = app
            .add_person("alice", &a.org, "hugo", pb::Role::Member)
            .await;
        let set_sponsor = async |sponsor: &str| {
            app.projects()
                .update_project(authed(
                    "dina",
                    pb::UpdateProjectRequest {
                        organisation_id: a.org.clone(),
                        project: Some(pb::Project {
                            id: a.forecast.clone(),
                            sponsor_id: sponsor.into(),
                            ..Default::default()
                        }),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["sponsor_id".into()],
                        }),
                    },
                ))
                .await
                .expect("set sponsor");
        };
        set_sponsor(&hugo.id).await;
        assert!(!has(
            &alerts_of(app, &a.org, &a.forecast).await,
            K::NoSponsor
        ));
        // HR deactivates the sponsor: raised; a new sponsor clears it.
        app.people()
            .deactivate_person(authed(
                "alice",
                pb::DeactivatePersonRequest {
                    organisation_id: a.org.clone(),
                    id: hugo.id.clone(),
                    etag: String::new(),
                },
            ))
            .await
            .expect("deactivate");
        let kinds = alerts_of(app, &a.org, &a.forecast).await;
        assert!(has(&kinds, K::SponsorInactive), "{kinds:?}");
        let s = summary(app, "dina", &a.org, None).await;
        assert_eq!(alert_count(&s, K::SponsorInactive), 1);
        set_sponsor(&a.sam).await;
        assert!(!has(
            &alerts_of(app, &a.org, &a.forecast).await,
            K::SponsorInactive
        ));

        // A KPI without baseline: cleared by measuring one.
        let kpi = app
            .kpis()
            .list_kpis(authed(
                "dina",
                pb::ListKpisRequest {
                    organisation_id: a.org.clone(),
                    project_id: a.forecast.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .kpis
            .remove(0);
        app.kpis()
            .record_measurement(authed(
                "dina",
                pb::RecordMeasurementRequest {
                    organisation_id: a.org.clone(),
                    measurement: Some(crate::gates::measurement(
                        &kpi.id,
                        pb::Stage::Baseline,
                        60.0,
                    )),
                },
            ))
            .await
            .expect("baseline");
        assert!(!has(
            &alerts_of(app, &a.org, &a.forecast).await,
            K::KpiWithoutBaseline
        ));

        // Budget overrun: cleared by a larger budget.
        assert!(has(
            &alerts_of(app, &a.org, &a.callbot).await,
            K::BudgetOverrun
        ));
        budget(app, &a.org, &a.callbot, "1500.50").await;
        assert!(!has(
            &alerts_of(app, &a.org, &a.callbot).await,
            K::BudgetOverrun
        ));

        // Prohibited and active: cleared by a new assessment of the tier.
        assert!(has(
            &alerts_of(app, &a.org, &a.emotion).await,
            K::ProhibitedActive
        ));
        app.projects()
            .update_project(authed(
                "dina",
                pb::UpdateProjectRequest {
                    organisation_id: a.org.clone(),
                    project: Some(pb::Project {
                        id: a.emotion.clone(),
                        ai_act_tier: pb::AiActTier::Limited as i32,
                        ai_act_reason: "reworked: detects call stress, not employees' emotions"
                            .into(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["ai_act_tier".into(), "ai_act_reason".into()],
                    }),
                },
            ))
            .await
            .expect("reassess the tier");
        // No KPI: cleared by defining one (its missing baseline then shows).
        assert_eq!(
            alerts_of(app, &a.org, &a.emotion).await,
            vec![K::NoKpi as i32]
        );
        app.kpis()
            .create_kpi(authed(
                "dina",
                pb::CreateKpiRequest {
                    organisation_id: a.org.clone(),
                    kpi: Some(pb::Kpi {
                        project_id: a.emotion.clone(),
                        name: "Calls escalated".into(),
                        unit: "%".into(),
                        unit_kind: pb::UnitKind::Percentage as i32,
                        direction: pb::Direction::LowerIsBetter as i32,
                        category: pb::KpiCategory::Customer as i32,
                        cadence: pb::Cadence::Monthly as i32,
                        ..Default::default()
                    }),
                },
            ))
            .await
            .expect("a KPI");
        assert_eq!(
            alerts_of(app, &a.org, &a.emotion).await,
            vec![K::KpiWithoutBaseline as i32]
        );
        let s = summary(app, "dina", &a.org, None).await;
        assert!(
            s.alerts.iter().all(|a| a.count == 0
                || a.kind == K::NoKpi as i32
                || a.kind == K::KpiWithoutBaseline as i32),
            "{:?}",
            s.alerts
        );
    })
    .await;
}

#[tokio::test]
async fn deadline_alerts_follow_the_clock_and_the_organisation_threshold() {
    on_each_backend(async |app: &TestApp| {
        use pb::AlertKind as K;
        // Gate overdue: a project in IDEATION for 400 days.
        let r = ready_review(app, "late").await;
        age(app, &r.project.id, 400).await;
        touch(app, &r.org, &r.project.id).await;
        // (The review's project has no KPI: NO_KPI stands beside it.)
        let kinds = alerts_of(app, &r.org, &r.project.id).await;
        assert_eq!(kinds, vec![K::GateOverdue as i32, K::NoKpi as i32]);
        let row = rows(
            app,
            "dina",
            &r.org,
            pb::PortfolioSort::DaysInPhase,
            true,
            None,
        )
        .await;
        assert_eq!(row[0].days_in_phase, 400);
        // The organisation allows two years: no longer overdue.
        let org = app
            .organisations()
            .get_organisation(authed(
                "alice",
                pb::GetOrganisationRequest { id: r.org.clone() },
            ))
            .await
            .unwrap()
            .into_inner()
            .organisation
            .unwrap();
        assert_eq!(org.gate_overdue_days, 365);
        let set_days = async |days: i32| {
            app.organisations()
                .update_organisation(authed(
                    ROOT,
                    pb::UpdateOrganisationRequest {
                        organisation: Some(pb::Organisation {
                            id: r.org.clone(),
                            gate_overdue_days: days,
                            ..Default::default()
                        }),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["gate_overdue_days".into()],
                        }),
                    },
                ))
                .await
        };
        set_days(730).await.expect("two years");
        assert_eq!(
            alerts_of(app, &r.org, &r.project.id).await,
            vec![K::NoKpi as i32]
        );
        expect_bad_field(set_days(0).await, "organisation.gate_overdue_days");
        set_days(365).await.expect("back to one year");
        let s = summary(app, "dina", &r.org, None).await;
        assert_eq!(alert_count(&s, K::GateOverdue), 1);
        // The gate is decided (HOLD): the alert clears.
        app.gates()
            .decide_gate(authed(
                "dina",
                pb::DecideGateRequest {
                    organisation_id: r.org.clone(),
                    review_id: r.review.clone(),
                    outcome: pb::GateOutcome::Hold as i32,
                    rationale: "waiting for the budget".into(),
                    conditions: vec![],
                },
            ))
            .await
            .expect("hold");
        assert_eq!(
            alerts_of(app, &r.org, &r.project.id).await,
            vec![K::NoKpi as i32]
        );
        let s = summary(app, "dina", &r.org, None).await;
        assert_eq!(alert_count(&s, K::GateOverdue), 0);
        let funnel = s.funnel.unwrap();
        assert_eq!(funnel.stages[0].decided, 1);
        assert_eq!(funnel.stages[0].passed, 0);
        assert_eq!(funnel.stages[0].kill_rate, "0.0000");
        let hold = funnel.stages[0]
            .outcomes
            .iter()
            .find(|o| o.outcome == pb::GateOutcome::Hold as i32)
            .unwrap();
        assert_eq!(hold.count, 1);
    })
    .await;
}

pub(crate) async fn deployed_callbot(app: &TestApp) -> Callbot {
    let c = callbot(app).await;
    record(
        app,
        "lea",
        &c,
        measure(&c.kpi, pb::Stage::Baseline, 95.0, 100, 10.0, at(0), ""),
    )
    .await
    .unwrap();
    go(app, &c).await.unwrap();
    record(
        app,
        "lea",
        &c,
        measure(&c.kpi, pb::Stage::Poc, 40.0, 100, 10.0, at(0), ""),
    )
    .await
    .unwrap();
    go(app, &c).await.unwrap();
    c
}

#[tokio::test]
async fn conditions_reviews_baselines_and_underperformance_raise_alerts() {
    on_each_backend(async |app: &TestApp| {
        use pb::AlertKind as K;
        let c = deployed_callbot(app).await;
        // A conditional GO into DEPLOYMENT, its condition due in 10 days.
        let lea = app
            .people()
            .list_people(authed(
                "dina",
                pb::ListPeopleRequest {
                    organisation_id: c.org.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .people
            .into_iter()
            .find(|p| p.subject == "lea")
            .unwrap();
        let due = (Utc::now() + Duration::days(10)).date_naive();
        use chrono::Datelike;
        decide(
            app,
            &c,
            pb::GateOutcome::ConditionalGo,
            vec![pb::GateCondition {
                description: "train the call-centre staff".into(),
                owner_id: lea.id.clone(),
                due_date: Some(pb::Date {
                    year: due.year(),
                    month: i32::try_from(due.month()).unwrap(),
                    day: i32::try_from(due.day()).unwrap(),
                }),
                ..Default::default()
            }],
        )
        .await
        .expect("conditional go");
        assert!(alerts_of(app, &c.org, &c.project).await.is_empty());
        // Ten days later, still open.
        let db = app.db.connect().await;
        let project_id: uuid::Uuid = c.project.parse().unwrap();
        gate_condition::Entity::update_many()
            .col_expr(
                gate_condition::Column::DueDate,
                Expr::value(Utc::now().date_naive() - Duration::days(1)),
            )
            .filter(gate_condition::Column::ProjectId.eq(project_id))
            .exec(&db)
            .await
            .unwrap();
        touch(app, &c.org, &c.project).await;
        assert_eq!(
            alerts_of(app, &c.org, &c.project).await,
            vec![K::ConditionOverdue as i32]
        );
        let condition = app
            .gates()
            .list_gate_conditions(authed(
                "dina",
                pb::ListGateConditionsRequest {
                    organisation_id: c.org.clone(),
                    project_id: c.project.clone(),
                    open_only: true,
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .conditions
            .remove(0);
        app.gates()
            .close_gate_condition(authed(
                "lea",
                pb::CloseGateConditionRequest {
                    organisation_id: c.org.clone(),
                    id: condition.id,
                    note: "trained on 3 sites".into(),
                },
            ))
            .await
            .expect("close");
        assert!(alerts_of(app, &c.org, &c.project).await.is_empty());

        // In production; a monthly KPI last measured 400 days ago.
        let live = go(app, &c).await.expect("production").project.unwrap();
        assert_eq!(live.status, pb::ProjectStatus::InProduction as i32);
        record(
            app,
            "erp",
            &c,
            measure(
                &c.kpi,
                pb::Stage::PostDeployment,
                40.0,
                100,
                10.0,
                at(1),
                "",
            ),
        )
        .await
        .unwrap();
        assert!(alerts_of(app, &c.org, &c.project).await.is_empty());
        age(app, &c.project, 400).await;
        let kpi_id: uuid::Uuid = c.kpi.parse().unwrap();
        for m in kpi_measurement::Entity::find()
            .filter(kpi_measurement::Column::KpiId.eq(kpi_id))
            .all(&db)
            .await
            .unwrap()
        {
            kpi_measurement::Entity::update_many()
                .col_expr(
                    kpi_measurement::Column::MeasureTime,
                    Expr::value(m.measure_time - Duration::days(400)),
                )
                .filter(kpi_measurement::Column::Id.eq(m.id))
                .exec(&db)
                .await
                .unwrap();
        }
        db.close().await.unwrap();
        // Rows edited by hand: the KPI's statistics are repaired as an
        // operator would, with a rebuild.
        let store = Store::connect(&app.db.url, &PoolOptions::default())
            .await
            .unwrap();
        jalon_store::portfolio::rebuild(store.db(), c.org.parse().unwrap())
            .await
            .unwrap();
        store.close().await;
        assert_eq!(
            alerts_of(app, &c.org, &c.project).await,
            vec![K::ReviewOverdue as i32]
        );
        let s = summary(app, "dina", &c.org, None).await;
        assert_eq!(alert_count(&s, K::ReviewOverdue), 1);
        assert_eq!(s.funnel.clone().unwrap().reached_production, 1);
        assert_eq!(s.funnel.unwrap().poc_to_production_share, "1.0000");
        // Measuring again clears it.
        record(
            app,
            "erp",
            &c,
            measure(
                &c.kpi,
                pb::Stage::PostDeployment,
                41.0,
                100,
                10.0,
                at(0),
                "",
            ),
        )
        .await
        .unwrap();
        assert_eq!(alerts_of(app, &c.org, &c.project).await, Vec::<i32>::new());

        // Two review periods worse than the baseline: underperforming; a
        // good period clears it.
        for (days, value) in [(40, 100.0), (75, 104.0)] {
            record(
                app,
                "erp",
                &c,
                measure(
                    &c.kpi,
                    pb::Stage::PostDeployment,
                    value,
                    100,
                    10.0,
                    at(days),
                    "",
                ),
            )
            .await
            .unwrap();
        }
        assert_eq!(
            alerts_of(app, &c.org, &c.project).await,
            vec![K::KpiUnderperforming as i32]
        );
        record(
            app,
            "erp",
            &c,
            measure(
                &c.kpi,
                pb::Stage::PostDeployment,
                42.0,
                100,
                10.0,
                at(110),
                "",
            ),
        )
        .await
        .unwrap();
        assert!(alerts_of(app, &c.org, &c.project).await.is_empty());

        // A baseline taken after the POC began is late; archiving the KPI
        // (to re-baseline another) clears it.
        let late = app
            .kpis()
            .create_kpi(authed(
                "lea",
                pb::CreateKpiRequest {
                    organisation_id: c.org.clone(),
                    kpi: Some(pb::Kpi {
                        primary: false,
                        ..crate::gates::accuracy_kpi(&c.project)
                    }),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .kpi
            .unwrap();
        record(
            app,
            "lea",
            &c,
            measure(&late.id, pb::Stage::Baseline, 70.0, 100, 10.0, at(0), ""),
        )
        .await
        .unwrap();
        assert!(has(
            &alerts_of(app, &c.org, &c.project).await,
            K::LateBaseline
        ));
        app.kpis()
            .archive_kpi(authed(
                "lea",
                pb::ArchiveKpiRequest {
                    organisation_id: c.org.clone(),
                    id: late.id.clone(),
                },
            ))
            .await
            .expect("archive");
        assert!(alerts_of(app, &c.org, &c.project).await.is_empty());
        let s = summary(app, "dina", &c.org, None).await;
        assert!(s.alerts.iter().all(|a| a.count == 0), "{:?}", s.alerts);
        // Time in phase: IDEATION, POC and INDUSTRIALISATION were left.
        let stays: Vec<i64> = s.time_in_phase.iter().map(|d| d.stays).collect();
        assert_eq!(stays, vec![1, 1, 1, 0]);
        let derived = s.money.unwrap().derived_benefit.unwrap();
        assert_ne!(derived.amount, "0.00", "the monetised KPI derives benefits");
    })
    .await;
}

/// The summary, with the time it was computed removed.
pub(crate) async fn snapshot(
    app: &TestApp,
    org: &str,
) -> (pb::PortfolioSummary, Vec<pb::PortfolioProject>) {
    (
        summary(app, "dina", org, None).await,
        rows(app, "dina", org, pb::PortfolioSort::Name, false, None).await,
    )
}

#[tokio::test]
async fn maintained_figures_equal_a_recomputation_after_random_writes() {
    on_each_backend(async |app: &TestApp| {
        let a = acme(app).await;
        let projects = [a.callbot.clone(), a.forecast.clone(), a.emotion.clone()];
        let people = [a.sam.clone(), a.lea.clone()];
        // A deterministic pseudo-random sequence of writes.
        let mut seed: u64 = 0x5eed_1234_abcd_0042;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let categories = [
            pb::CostCategory::People,
            pb::CostCategory::Cloud,
            pb::CostCategory::Licences,
            pb::CostCategory::Integration,
        ];
        for step in 0..40 {
            let project = &projects[next(3) as usize];
            match next(6) {
                0 | 1 => {
                    let cents = 100 + next(500_000);
                    let amount = format!("{}.{:02}", cents / 100, cents % 100);
                    cost(app, &a.org, project, &amount, categories[next(4) as usize]).await;
                }
                2 => {
                    let amount = format!("{}.00", 1000 + next(9000));
                    budget(app, &a.org, project, &amount).await;
                }
                3 => {
                    app.finance()
                        .record_benefit(authed(
                            "dina",
                            pb::RecordBenefitRequest {
                                organisation_id: a.org.clone(),
                                benefit: Some(pb::Benefit {
                                    project_id: project.clone(),
                                    kind: pb::BenefitKind::Revenue as i32,
                                    amount: eur(&format!("{}.25", next(5000))),
                                    date: today(),
                                    description: format!("step {step}"),
                                    ..Default::default()
                                }),
                            },
                        ))
                        .await
                        .expect("benefit");
                }
                4 => {
                    let tiers = [
                        pb::AiActTier::Minimal,
                        pb::AiActTier::Limited,
                        pb::AiActTier::High,
                    ];
                    app.projects()
                        .update_project(authed(
                            "dina",
                            pb::UpdateProjectRequest {
                                organisation_id: a.org.clone(),
                                project: Some(pb::Project {
                                    id: project.clone(),
                                    ai_act_tier: tiers[next(3) as usize] as i32,
                                    ai_act_reason: "reassessed".into(),
                                    ..Default::default()
                                }),
                                update_mask: Some(prost_types::FieldMask {
                                    paths: vec!["ai_act_tier".into(), "ai_act_reason".into()],
                                }),
                            },
                        ))
                        .await
                        .expect("tier");
                }
                _ => {
                    let sponsor = &people[next(2) as usize];
                    // The sponsor cannot lead the same project: refused
                    // writes change nothing either.
                    let _ = app
                        .projects()
                        .update_project(authed(
                            "dina",
                            pb::UpdateProjectRequest {
                                organisation_id: a.org.clone(),
                                project: Some(pb::Project {
                                    id: project.clone(),
                                    sponsor_id: sponsor.clone(),
                                    ..Default::default()
                                }),
                                update_mask: Some(prost_types::FieldMask {
                                    paths: vec!["sponsor_id".into()],
                                }),
                            },
                        ))
                        .await;
                }
            }
        }
        let maintained = snapshot(app, &a.org).await;
        // The same figures read through the contributions (a filter that
        // matches every project).
        let scanned = summary(
            app,
            "dina",
            &a.org,
            Some(pb::PortfolioFilter {
                create_time_from: at(-1),
                ..Default::default()
            }),
        )
        .await;
        assert_eq!(scanned, maintained.0);
        // Recompute everything from scratch.
        let store = Store::connect(&app.db.url, &PoolOptions::default())
            .await
            .unwrap();
        let org: uuid::Uuid = a.org.parse().unwrap();
        assert_eq!(
            jalon_store::portfolio::rebuild(store.db(), org)
                .await
                .unwrap(),
            3
        );
        store.close().await;
        let recomputed = snapshot(app, &a.org).await;
        assert_eq!(recomputed.0, maintained.0);
        assert_eq!(recomputed.1, maintained.1);
        let cost: i64 = maintained
            .1
            .iter()
            .map(|r| {
                let amount = money(&r.cost);
                let (units, cents) = amount.split_once('.').unwrap();
                units.parse::<i64>().unwrap() * 100 + cents.parse::<i64>().unwrap()
            })
            .sum();
        let total = money(&maintained.0.money.unwrap().cost);
        assert_eq!(total, format!("{}.{:02}", cost / 100, cost % 100));
    })
    .await;
}
