//! The portfolio's counters without a hot row (issue 11): writes append
//! deltas, a background task folds them, readers sum both. The summary is
//! the same before and after the fold; two folders at once (replicas)
//! fold each delta exactly once.

use jalon_proto::v1 as pb;
use jalon_store::{
    PoolOptions, Store,
    entity::{portfolio_counter as counter, portfolio_counter_delta as delta},
};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::{helpers::*, kpis::eur};

async fn summary_money(app: &TestApp, org: &str) -> (i64, pb::PortfolioMoney) {
    let s = app
        .portfolio()
        .get_portfolio_summary(authed(
            "alice",
            pb::GetPortfolioSummaryRequest {
                organisation_id: org.into(),
                filter: None,
                include_cost_centres: false,
            },
        ))
        .await
        .expect("summary")
        .into_inner()
        .summary
        .unwrap();
    (s.project_count, s.money.unwrap())
}

#[tokio::test]
async fn counters_read_the_same_before_and_after_their_deltas_are_folded() {
    on_each_backend(async |app: &TestApp| {
        let (org, _) = app.create_org("acme", "alice").await;
        let org = org.id;
        let mut projects = Vec::new();
        for name in ["Callbot", "Forecast"] {
            let p = app
                .create_project(
                    "alice",
                    &org,
                    pb::Project {
                        business_unit: "Operations".into(),
                        ..minimal_project(name)
                    },
                )
                .await;
            projects.push(p.id);
        }
        for (i, amount) in ["100.00", "250.50", "0.25", "1000.00"].iter().enumerate() {
            app.finance()
                .record_cost(authed(
                    "alice",
                    pb::RecordCostRequest {
                        organisation_id: org.clone(),
                        cost: Some(pb::Cost {
                            project_id: projects[i % 2].clone(),
                            amount: eur(amount),
                            category: pb::CostCategory::Cloud as i32,
                            nature: pb::CostNature::Opex as i32,
                            incurred_on: Some(pb::Date {
                                year: 2026,
                                month: 3,
                                day: 1,
                            }),
                            ..Default::default()
                        }),
                    },
                ))
                .await
                .expect("record cost");
        }
        let (count, before) = summary_money(app, &org).await;
        assert_eq!(count, 2);
        assert_eq!(before.cost, eur("1350.75"));
        // The server folds every second: wait until nothing is pending.
        let db = app.db.connect().await;
        let org_id = uuid::Uuid::parse_str(&org).unwrap();
        let mut pending = u64::MAX;
        for _ in 0..100 {
            pending = delta::Entity::find()
                .filter(delta::Column::OrganisationId.eq(org_id))
                .count(&db)
                .await
                .unwrap();
            if pending == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(pending, 0, "the deltas are folded in the background");
        let cost = counter::Entity::find_by_id((org_id, "cost".to_owned()))
            .one(&db)
            .await
            .unwrap()
            .expect("the folded cost counter");
        assert_eq!(cost.value, 135_075);
        let (count, after) = summary_money(app, &org).await;
        assert_eq!((count, after), (2, before));
    })
    .await;
}

#[tokio::test]
async fn two_folders_at_once_fold_each_delta_exactly_once() {
    for backend in backends() {
        let app = TestApp::spawn(&backend).await;
        let (org, _) = app.create_org("acme", "alice").await;
        let org_id = uuid::Uuid::parse_str(&org.id).unwrap();
        let conn = app.db.connect().await;
        // 3,000 pending deltas of two counters, as concurrent writers leave.
        let rows: Vec<delta::ActiveModel> = (0..3_000_i64)
            .map(|i| delta::ActiveModel {
                id: Set(uuid::Uuid::now_v7()),
                organisation_id: Set(org_id),
                name: Set(if i % 2 == 0 { "cost" } else { "budget" }.into()),
                value: Set(i + 1),
            })
            .collect();
        for chunk in rows.chunks(500) {
            delta::Entity::insert_many(chunk.to_vec())
                .exec(&conn)
                .await
                .unwrap();
        }
        // Two more folders (two replicas' worth of pools) race the
        // server's own, in small batches.
        let a = Store::connect(&app.db.url, &PoolOptions::default())
            .await
            .unwrap();
        let b = Store::connect(&app.db.url, &PoolOptions::default())
            .await
            .unwrap();
        let fold = async |store: &Store| {
            let mut n = 0;
            loop {
                let folded = jalon_store::portfolio::fold_counters(store.db(), 100)
                    .await
                    .expect("fold");
                n += folded;
                if folded == 0 {
                    break n;
                }
            }
        };
        let (fa, fb) = tokio::join!(fold(&a), fold(&b));
        assert!(fa + fb <= 3_000, "{fa} + {fb}");
        a.close().await;
        b.close().await;
        let pending = delta::Entity::find()
            .filter(delta::Column::OrganisationId.eq(org_id))
            .count(&conn)
            .await
            .unwrap();
        assert_eq!(pending, 0);
        let value = |name: &'static str| {
            let conn = conn.clone();
            async move {
                counter::Entity::find_by_id((org_id, name.to_owned()))
                    .one(&conn)
                    .await
                    .unwrap()
                    .map_or(0, |c| c.value)
            }
        };
        // Odd i + 1 for cost (1 + 3 + ... + 2999), even for budget.
        assert_eq!(value("cost").await, 1_500 * 1_500);
        assert_eq!(value("budget").await, 1_500 * 1_501);
        app.cleanup().await;
    }
}
