//! Money at the limits (issue 15): an amount is at most
//! `MAX_MINOR_UNITS` (EUR 9,999,999,999,999.99), and so is every total of a
//! project; a write that would take a total beyond it is refused
//! (FAILED_PRECONDITION, TOTAL_OVERFLOW) and writes nothing; no read ever
//! fails or goes negative. A seeded random sequence of costs, benefits and
//! budgets, drawn mostly near the limits, against a model in 128 bits.

use jalon_core::values::MAX_MINOR_UNITS;
use jalon_proto::v1 as pb;
use tonic::Code;

use crate::{helpers::*, kpis::eur};

/// splitmix64: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// An amount in minor units, drawn near the limits most of the time.
fn amount(rng: &mut Rng) -> i128 {
    let max = i128::from(MAX_MINOR_UNITS);
    match rng.below(9) {
        0 => max,
        1 => max - i128::from(rng.below(1_000)),
        2 => max / 2 + i128::from(rng.below(1_000)),
        3 => max / 3,
        4 => max + 1,
        5 => i128::from(i64::MAX),
        6 => i128::from(rng.below(10_000_000)),
        7 => 1,
        _ => i128::from(rng.below(100_000_000_000_000)),
    }
}

/// EUR text of minor units (not negative).
fn text(minor: i128) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

fn minor(money: Option<&pb::Money>) -> i128 {
    let m = money.expect("an amount");
    assert_eq!(m.currency_code, "EUR");
    let (units, cents) = m.amount.split_once('.').unwrap_or((&m.amount, "0"));
    let cents = format!("{cents:0<2}");
    let units: i128 = units.parse().expect("units");
    let cents: i128 = cents.parse().expect("cents");
    units * 100
        + if units < 0 || m.amount.starts_with('-') {
            -cents
        } else {
            cents
        }
}

#[derive(Default, Clone, Copy)]
struct Model {
    cost: i128,
    benefit: i128,
    budget: Option<i128>,
}

fn date(month: u64) -> Option<pb::Date> {
    Some(pb::Date {
        year: 2026,
        month: i32::try_from(1 + month).unwrap(),
        day: 15,
    })
}

#[tokio::test]
async fn totals_at_the_limits_are_exact_checked_and_always_readable() {
    on_each_backend(async |app: &TestApp| {
        let (org, _) = app.create_org("acme", "alice").await;
        let org = org.id;
        let mut projects = Vec::new();
        for name in ["Callbot", "Forecast", "Vision"] {
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
        let max = i128::from(MAX_MINOR_UNITS);
        let mut model = vec![Model::default(); projects.len()];
        let (mut refused_amounts, mut refused_totals, mut accepted) = (0, 0, 0);
        let mut rng = Rng(0x15_00_15);
        for step in 0..90 {
            let i = usize::try_from(rng.below(projects.len() as u64)).unwrap();
            let project = projects[i].clone();
            let a = amount(&mut rng);
            let kind = rng.below(5);
            let (result, field) = match kind {
                0..=2 => (
                    app.finance()
                        .record_cost(authed(
                            "alice",
                            pb::RecordCostRequest {
                                organisation_id: org.clone(),
                                cost: Some(pb::Cost {
                                    project_id: project.clone(),
                                    amount: eur(&text(a)),
                                    category: if rng.below(2) == 0 {
                                        pb::CostCategory::Cloud
                                    } else {
                                        pb::CostCategory::People
                                    } as i32,
                                    nature: pb::CostNature::Opex as i32,
                                    incurred_on: date(rng.below(3)),
                                    phase: pb::Phase::Ideation as i32,
                                    ..Default::default()
                                }),
                            },
                        ))
                        .await
                        .map(drop),
                    "cost.amount",
                ),
                3 => (
                    app.finance()
                        .record_benefit(authed(
                            "alice",
                            pb::RecordBenefitRequest {
                                organisation_id: org.clone(),
                                benefit: Some(pb::Benefit {
                                    project_id: project.clone(),
                                    kind: pb::BenefitKind::Savings as i32,
                                    amount: eur(&text(a)),
                                    date: date(rng.below(3)),
                                    ..Default::default()
                                }),
                            },
                        ))
                        .await
                        .map(drop),
                    "benefit.amount",
                ),
                _ => (
                    app.finance()
                        .set_budget(authed(
                            "alice",
                            pb::SetBudgetRequest {
                                organisation_id: org.clone(),
                                project_id: project.clone(),
                                total: eur(&text(a)),
                                by_category: vec![],
                            },
                        ))
                        .await
                        .map(drop),
                    "total",
                ),
            };
            let m = &mut model[i];
            if a > max {
                let status = expect_code(result, Code::InvalidArgument);
                assert_eq!(bad_fields(&status), vec![field.to_owned()], "step {step}");
                assert!(
                    status.message().contains("9999999999999.99 EUR"),
                    "step {step}: the limit is named: {}",
                    status.message()
                );
                refused_amounts += 1;
            } else if kind <= 2 && m.cost + a > max || kind == 3 && m.benefit + a > max {
                let status = expect_code(result, Code::FailedPrecondition);
                assert_eq!(
                    precondition_kinds(&status),
                    vec!["TOTAL_OVERFLOW".to_owned()],
                    "step {step}: {}",
                    status.message()
                );
                refused_totals += 1;
            } else {
                result.unwrap_or_else(|e| panic!("step {step}: {e:?}"));
                match kind {
                    0..=2 => m.cost += a,
                    3 => m.benefit += a,
                    _ => m.budget = Some(a),
                }
                accepted += 1;
            }

            // Every figure reads, exact, never negative.
            let f = app
                .finance()
                .get_project_financials(authed(
                    "alice",
                    pb::GetProjectFinancialsRequest {
                        organisation_id: org.clone(),
                        project_id: project.clone(),
                    },
                ))
                .await
                .unwrap_or_else(|e| panic!("step {step}: financials: {e:?}"))
                .into_inner();
            let m = model[i];
            assert_eq!(minor(f.total_cost.as_ref()), m.cost, "step {step}");
            assert_eq!(minor(f.recorded_benefit.as_ref()), m.benefit, "step {step}");
            assert_eq!(
                minor(f.net_value.as_ref()),
                m.benefit - m.cost,
                "step {step}"
            );
            if let Some(b) = m.budget {
                assert_eq!(minor(f.budget_variance.as_ref()), b - m.cost, "step {step}");
            }
            let by_category: i128 = f
                .cost_by_category
                .iter()
                .map(|c| minor(c.amount.as_ref()))
                .sum();
            assert_eq!(by_category, m.cost, "step {step}");
            assert!(
                f.cost_by_category
                    .iter()
                    .all(|c| minor(c.amount.as_ref()) >= 0)
            );
            let summary = app
                .portfolio()
                .get_portfolio_summary(authed(
                    "alice",
                    pb::GetPortfolioSummaryRequest {
                        organisation_id: org.clone(),
                        filter: None,
                        include_cost_centres: false,
                    },
                ))
                .await
                .unwrap_or_else(|e| panic!("step {step}: summary: {e:?}"))
                .into_inner()
                .summary
                .unwrap()
                .money
                .unwrap();
            let cost: i128 = model.iter().map(|m| m.cost).sum();
            let benefit: i128 = model.iter().map(|m| m.benefit).sum();
            let budget: i128 = model.iter().filter_map(|m| m.budget).sum();
            assert_eq!(minor(summary.cost.as_ref()), cost, "step {step}");
            assert_eq!(minor(summary.recorded_benefit.as_ref()), benefit);
            assert_eq!(minor(summary.budget.as_ref()), budget);
            assert_eq!(minor(summary.net_value.as_ref()), benefit - cost);
        }
        // The sequence exercised each outcome.
        assert!(refused_amounts > 3, "{refused_amounts} amounts refused");
        assert!(refused_totals > 3, "{refused_totals} totals refused");
        assert!(accepted > 20, "{accepted} accepted");
    })
    .await;
}

#[tokio::test]
async fn an_import_that_would_overflow_a_total_is_refused_whole() {
    on_each_backend(async |app: &TestApp| {
        let (org, _) = app.create_org("acme", "alice").await;
        let org = org.id;
        let project = app
            .create_project(
                "alice",
                &org,
                pb::Project {
                    business_unit: "Operations".into(),
                    ..minimal_project("Callbot")
                },
            )
            .await
            .id;
        let row = |amount: &str, r: &str| pb::Cost {
            project_id: project.clone(),
            amount: eur(amount),
            category: pb::CostCategory::Cloud as i32,
            nature: pb::CostNature::Opex as i32,
            incurred_on: date(0),
            external_ref: r.into(),
            ..Default::default()
        };
        // The case: the largest amount, then one cent more.
        let status = expect_code(
            app.finance()
                .import_costs(authed(
                    "alice",
                    tokio_stream::iter([pb::ImportCostsRequest {
                        organisation_id: org.clone(),
                        costs: vec![row("9999999999999.99", "a"), row("0.01", "b")],
                    }]),
                ))
                .await,
            Code::FailedPrecondition,
        );
        assert_eq!(precondition_kinds(&status), vec!["TOTAL_OVERFLOW"]);
        let f = app
            .finance()
            .get_project_financials(authed(
                "alice",
                pb::GetProjectFinancialsRequest {
                    organisation_id: org.clone(),
                    project_id: project.clone(),
                },
            ))
            .await
            .expect("financials")
            .into_inner();
        assert_eq!(
            minor(f.total_cost.as_ref()),
            0,
            "nothing of the batch stays"
        );
    })
    .await;
}

#[tokio::test]
async fn a_write_that_would_overflow_the_portfolio_total_is_refused() {
    use jalon_store::entity::portfolio_counter_delta as delta;
    use sea_orm::{ActiveValue::Set, EntityTrait};
    on_each_backend(async |app: &TestApp| {
        let (org, _) = app.create_org("acme", "alice").await;
        let org = org.id;
        let project = app
            .create_project(
                "alice",
                &org,
                pb::Project {
                    business_unit: "Operations".into(),
                    ..minimal_project("Callbot")
                },
            )
            .await
            .id;
        let cost = |amount: &str| pb::RecordCostRequest {
            organisation_id: org.clone(),
            cost: Some(pb::Cost {
                project_id: project.clone(),
                amount: eur(amount),
                category: pb::CostCategory::Cloud as i32,
                nature: pb::CostNature::Opex as i32,
                incurred_on: date(0),
                ..Default::default()
            }),
        };
        app.finance()
            .record_cost(authed("alice", cost("1.00")))
            .await
            .expect("a first cost");
        // 4,000 projects at their limit would take the portfolio's cost
        // here; a counter delta written by hand stands for them.
        let max = jalon_core::finance::MAX_ORGANISATION_MINOR_UNITS;
        let db = app.db.connect().await;
        delta::Entity::insert(delta::ActiveModel {
            id: Set(uuid::Uuid::now_v7()),
            organisation_id: Set(uuid::Uuid::parse_str(&org).unwrap()),
            name: Set("cost".into()),
            value: Set(max - 50 - 100),
        })
        .exec(&db)
        .await
        .expect("stand for 4,000 projects");
        let status = expect_code(
            app.finance()
                .record_cost(authed("alice", cost("0.51")))
                .await,
            Code::FailedPrecondition,
        );
        assert_eq!(precondition_kinds(&status), vec!["TOTAL_OVERFLOW"]);
        assert!(status.message().contains("'cost'"), "{}", status.message());
        // Nothing of the refused write stays; what fits still lands.
        app.finance()
            .record_cost(authed("alice", cost("0.50")))
            .await
            .expect("a cost that fits");
        let summary = app
            .portfolio()
            .get_portfolio_summary(authed(
                "alice",
                pb::GetPortfolioSummaryRequest {
                    organisation_id: org.clone(),
                    filter: None,
                    include_cost_centres: false,
                },
            ))
            .await
            .expect("the summary reads")
            .into_inner()
            .summary
            .unwrap()
            .money
            .unwrap();
        assert_eq!(minor(summary.cost.as_ref()), i128::from(max));
    })
    .await;
}
