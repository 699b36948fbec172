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
