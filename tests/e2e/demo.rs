//! The demo portfolio seeds once, with the white paper's six cases at
//! plausible phases and a verifiable decision log.

use jalon_proto::v1 as pb;
use jalon_server::demo;
use jalon_store::{PoolOptions, Store};

use crate::helpers::*;

#[tokio::test]
async fn the_demo_portfolio_is_seeded_once() {
    on_each_backend(async |app: &TestApp| {
        let store = Store::connect(&app.db.url, &PoolOptions::default())
            .await
            .expect("store");
        assert!(
            demo::seed(&store).await.expect("seed"),
            "seeded the first time"
        );
        assert!(!demo::seed(&store).await.expect("seed again"), "not twice");
        let org = demo::organisation_id(&store)
            .await
            .unwrap()
            .expect("the demo organisation")
            .to_string();
        store.close().await;

        let projects = app
            .projects()
            .list_projects(authed(
                demo::DIRECTOR,
                pb::ListProjectsRequest {
                    organisation_id: org.clone(),
                    ..Default::default()
                },
            ))
            .await
            .expect("the director lists the portfolio")
            .into_inner()
            .projects;
        let stages: Vec<(i32, i32)> = projects.iter().map(|p| (p.phase, p.status)).collect();
        use pb::{Phase::*, ProjectStatus::*};
        assert_eq!(
            stages,
            vec![
                (Deployment as i32, InProduction as i32),
                (Deployment as i32, Active as i32),
                (Poc as i32, Active as i32),
                (Deployment as i32, InProduction as i32),
                (Industrialisation as i32, Active as i32),
                (Poc as i32, Active as i32),
                (Ideation as i32, Active as i32),
            ]
        );
        let culturia = projects
            .iter()
            .find(|p| p.name.contains("CulturIA"))
            .unwrap();
        assert_eq!(culturia.ai_act_tier, pb::AiActTier::High as i32);
        let conditions = app
            .gates()
            .list_gate_conditions(authed(
                demo::DIRECTOR,
                pb::ListGateConditionsRequest {
                    organisation_id: org.clone(),
                    project_id: culturia.id.clone(),
                    open_only: true,
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .conditions;
        assert_eq!(
            conditions.len(),
            1,
            "its bias audit is a condition still open"
        );
        let verified = app
            .audit()
            .verify_audit_log(authed(
                demo::DIRECTOR,
                pb::VerifyAuditLogRequest {
                    organisation_id: org.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(verified.valid);
        assert!(verified.checked >= 28, "{verified:?}");
        // Promod's money: EUR 135,000 people + 18,000 cloud + 9,000 labelling;
        // a budget 20% above; EUR 60,000 of savings booked.
        let f = app
            .finance()
            .get_project_financials(authed(
                demo::DIRECTOR,
                pb::GetProjectFinancialsRequest {
                    organisation_id: org.clone(),
                    project_id: projects[0].id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let eur = |a: &str| {
            Some(pb::Money {
                currency_code: "EUR".into(),
                amount: a.into(),
            })
        };
        assert_eq!(f.total_cost, eur("162000.00"));
        assert_eq!(f.recorded_benefit, eur("60000.00"));
        assert_eq!(f.budget, eur("194400.00"));
        assert_eq!(f.kpi_gains.len(), 1);
        // Vilogia's gain is monetised: (95 - 52) s x EUR 0.05 x 40,000 calls.
        let vilogia = app
            .finance()
            .list_benefits(authed(
                demo::DIRECTOR,
                pb::ListBenefitsRequest {
                    organisation_id: org.clone(),
                    project_id: projects[1].id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(
            vilogia.derived.is_empty(),
            "not in production yet: no post-deployment period"
        );
        // A sponsor sees what they sponsor, nothing more.
        let mine = app
            .projects()
            .list_projects(authed(
                "demo-sponsor-hr",
                pb::ListProjectsRequest {
                    organisation_id: org.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .projects;
        assert_eq!(mine.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn the_demo_portfolio_summary_matches_hand_computed_figures() {
    on_each_backend(async |app: &TestApp| {
        let store = Store::connect(&app.db.url, &PoolOptions::default())
            .await
            .expect("store");
        demo::seed(&store).await.expect("seed");
        let org = demo::organisation_id(&store)
            .await
            .unwrap()
            .unwrap()
            .to_string();
        store.close().await;
        let s = app
            .portfolio()
            .get_portfolio_summary(authed(
                demo::DIRECTOR,
                pb::GetPortfolioSummaryRequest {
                    organisation_id: org.clone(),
                    filter: None,
                    include_cost_centres: true,
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .summary
            .unwrap();
        assert_eq!(s.project_count, 7);
        // Funnel: 7 ideas; 6 passed IDEATION (Opinion Viewer after a
        // RECYCLE), 4 passed POC (CulturIA with conditions), 3 passed
        // INDUSTRIALISATION, 2 went into production: 2 of the 6 POCs.
        let f = s.funnel.unwrap();
        let entered: Vec<i64> = f.stages.iter().map(|st| st.entered).collect();
        let passed: Vec<i64> = f.stages.iter().map(|st| st.passed).collect();
        assert_eq!(entered, vec![7, 6, 4, 3]);
        assert_eq!(passed, vec![6, 4, 3, 2]);
        let count = |stage: usize, outcome: pb::GateOutcome| {
            f.stages[stage]
                .outcomes
                .iter()
                .find(|o| o.outcome == outcome as i32)
                .unwrap()
                .count
        };
        assert_eq!(count(0, pb::GateOutcome::Recycle), 1);
        assert_eq!(count(0, pb::GateOutcome::Go), 6);
        assert_eq!(count(1, pb::GateOutcome::ConditionalGo), 1);
        assert_eq!(f.reached_production, 2);
        assert_eq!(f.poc_to_production_share, "0.3333");
        // Time in phase (completed stays, nearest rank): IDEATION 20, 30,
        // 40, 40, 45, 50 days; POC 60, 95, 110, 120; INDUSTRIALISATION 90,
        // 130, 150.
        let t: Vec<(i64, i64, i64)> = s
            .time_in_phase
            .iter()
            .map(|d| (d.stays, d.median_days, d.p90_days))
            .collect();
        assert_eq!(t, vec![(6, 40, 50), (4, 95, 120), (3, 130, 150), (0, 0, 0)]);
        // Money: four projects at 45,000 people + 6,000 cloud + 9,000
        // labelling, two in production at 135,000 + 18,000 + 9,000; budgets
        // 20% above the costs, but VNF's cut to 50,000; 2 x 60,000 of savings
        // booked; NOLEJ's KPI derives (40 - 0.8) h x EUR 45 x 120 modules.
        let m = s.money.unwrap();
        let amount = |m: &Option<pb::Money>| m.as_ref().unwrap().amount.clone();
        assert_eq!(amount(&m.cost), "564000.00");
        let by: Vec<String> = m
            .cost_by_category
            .iter()
            .map(|c| amount(&c.amount))
            .collect();
        assert_eq!(
            by,
            vec![
                "450000.00",
                "60000.00",
                "0.00",
                "54000.00",
                "0.00",
                "0.00",
                "0.00"
            ]
        );
        // Budgets: 3 x 72,000 + 50,000 (VNF) + 2 x 194,400.
        assert_eq!(amount(&m.budget), "654800.00");
        assert_eq!(amount(&m.recorded_benefit), "120000.00");
        assert_eq!(amount(&m.derived_benefit), "211680.00");
        assert_eq!(amount(&m.net_value), "-232320.00");
        assert_eq!(m.roi, "-0.411915");
        assert_eq!(m.paid_back_projects, 1, "NOLEJ");
        // Cost by cost centre: the demo books each project's lines to the
        // cost centre of its business unit; largest cost first, then by name.
        let centres: Vec<(String, String, i64)> = m
            .cost_by_cost_centre
            .iter()
            .map(|c| (c.cost_centre.clone(), amount(&c.cost), c.project_count))
            .collect();
        let centre = |name: &str, cost: &str| (name.to_owned(), cost.to_owned(), 1);
        assert_eq!(
            centres,
            vec![
                centre("CC-EDUCATION-PRODUCTS", "162000.00"),
                centre("CC-RETAIL", "162000.00"),
                centre("CC-CUSTOMER-SERVICE", "60000.00"),
                centre("CC-MARKETING", "60000.00"),
                centre("CC-RECRUITMENT", "60000.00"),
                centre("CC-WATERWAYS-OPERATIONS", "60000.00"),
            ]
        );
        assert_eq!(m.projects_with_cost, 6);
        let tiers: Vec<i64> = s.ai_act_tiers.iter().map(|t| t.count).collect();
        assert_eq!(tiers, vec![0, 4, 2, 1, 0]);
        // The director's morning: Vilogia's deployment review is overdue,
        // CulturIA has been in INDUSTRIALISATION 400 days, VNF's budget was
        // cut below its costs, and the churn idea lost its sponsor and has
        // no baseline.
        let alerts: Vec<(i32, i64)> = s
            .alerts
            .iter()
            .filter(|a| a.count > 0)
            .map(|a| (a.kind, a.count))
            .collect();
        use pb::AlertKind as K;
        assert_eq!(
            alerts,
            vec![
                (K::SponsorInactive as i32, 1),
                (K::KpiWithoutBaseline as i32, 1),
                (K::GateOverdue as i32, 1),
                (K::ReviewOverdue as i32, 1),
                (K::BudgetOverrun as i32, 1),
            ]
        );
        // One blocked HIGH-risk data item per project at work past IDEATION.
        let hot: Vec<(i32, i64)> = s
            .risk_heat_map
            .iter()
            .filter(|c| c.open_high_risk_items > 0)
            .map(|c| (c.phase, c.open_high_risk_items))
            .collect();
        assert_eq!(
            hot,
            vec![
                (pb::Phase::Poc as i32, 2),
                (pb::Phase::Industrialisation as i32, 1),
                (pb::Phase::Deployment as i32, 1)
            ]
        );
        let listed = app
            .portfolio()
            .list_alerts(authed(
                demo::DIRECTOR,
                pb::ListAlertsRequest {
                    organisation_id: org.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .alerts;
        let culturia = listed
            .iter()
            .find(|a| a.kind == K::GateOverdue as i32)
            .unwrap();
        assert!(culturia.project_name.contains("CulturIA"));
        assert!(culturia.reason.contains("400 days"), "{}", culturia.reason);
    })
    .await;
}

#[tokio::test]
async fn the_demo_history_is_dated_along_its_phases() {
    on_each_backend(async |app: &TestApp| {
        let store = Store::connect(&app.db.url, &PoolOptions::default())
            .await
            .expect("store");
        demo::seed(&store).await.expect("seed");
        let org = demo::organisation_id(&store)
            .await
            .unwrap()
            .expect("the demo organisation")
            .to_string();
        store.close().await;
        let secs = |t: &Option<prost_types::Timestamp>| t.as_ref().map_or(i64::MAX, |t| t.seconds);
        let projects = app
            .projects()
            .list_projects(authed(
                demo::DIRECTOR,
                pb::ListProjectsRequest {
                    organisation_id: org.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .projects;
        // Every signature falls within the phase it approved leaving (or,
        // for the last gate, the phase the project is in), months ago for
        // the projects that moved on long ago.
        let signatures = app
            .gates()
            .list_signatures(authed(
                demo::DIRECTOR,
                pb::ListSignaturesRequest {
                    organisation_id: org.clone(),
                    page_size: 500,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .signatures;
        assert!(signatures.len() >= 8, "{}", signatures.len());
        let now = chrono::Utc::now().timestamp();
        let mut old = 0;
        for s in &signatures {
            let p = projects.iter().find(|p| p.id == s.project_id).unwrap();
            let signed = secs(&s.sign_time);
            let within = p.phase_history.iter().any(|span| {
                span.phase == s.from_phase
                    && secs(&span.enter_time) <= signed
                    && signed <= secs(&span.leave_time).min(now + 1)
            });
            assert!(within, "{} signed outside its phase: {s:?}", p.name);
            if now - signed > 30 * 86_400 {
                old += 1;
            }
        }
        assert!(
            old >= 5,
            "most signatures are months old, not seed time: {old}"
        );
        // The decision log reads in time order and its chain still holds.
        let mut events = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = app
                .audit()
                .list_audit_events(authed(
                    demo::DIRECTOR,
                    pb::ListAuditEventsRequest {
                        organisation_id: org.clone(),
                        page_size: 500,
                        page_token: page_token.clone(),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            events.extend(page.events);
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        assert!(events.len() > 50, "{}", events.len());
        assert!(
            events
                .windows(2)
                .all(|w| w[0].sequence < w[1].sequence && secs(&w[0].time) <= secs(&w[1].time)),
            "the log is in sequence and time order"
        );
        for p in &projects {
            let created = events
                .iter()
                .find(|e| e.action == "project.created" && e.resource_id == p.id)
                .unwrap_or_else(|| panic!("{} created", p.name));
            assert_eq!(secs(&created.time), secs(&p.create_time), "{}", p.name);
        }
        let verified = app
            .audit()
            .verify_audit_log(authed(
                demo::DIRECTOR,
                pb::VerifyAuditLogRequest {
                    organisation_id: org.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(verified.valid, "{verified:?}");
    })
    .await;
}
