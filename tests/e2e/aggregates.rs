//! The running aggregates (issue 11): after a random sequence of writes
//! (single costs, imports with duplicates and bad rows, benefits,
//! measurements of every stage with and without sample statistics, a
//! change of review cadence, assessment answers, costs in cost centres with
//! reversals and restatements), the aggregates the writes kept, and the
//! figures computed from them, equal a recomputation from the raw rows.

use jalon_proto::v1 as pb;
use jalon_store::{
    PoolOptions, Store,
    entity::{assessment_count, kpi_stats, project_cost_centre, project_money},
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::{
    helpers::*,
    kpis::{at, eur, go, measure},
    portfolio::{deployed_callbot, snapshot},
};

/// The aggregate rows of an organisation, in key order.
type Aggregates = (
    Vec<project_money::Model>,
    Vec<kpi_stats::Model>,
    Vec<assessment_count::Model>,
    Vec<project_cost_centre::Model>,
);

async fn aggregates(app: &TestApp, org: uuid::Uuid) -> Aggregates {
    let store = Store::connect(&app.db.url, &PoolOptions::default())
        .await
        .unwrap();
    let db = store.db();
    let money = project_money::Entity::find()
        .filter(project_money::Column::OrganisationId.eq(org))
        .order_by_asc(project_money::Column::ProjectId)
        .order_by_asc(project_money::Column::Nature)
        .order_by_asc(project_money::Column::Month)
        .order_by_asc(project_money::Column::Category)
        .order_by_asc(project_money::Column::Phase)
        .all(db)
        .await
        .unwrap();
    let stats = kpi_stats::Entity::find()
        .filter(kpi_stats::Column::OrganisationId.eq(org))
        .order_by_asc(kpi_stats::Column::KpiId)
        .order_by_asc(kpi_stats::Column::Stage)
        .order_by_asc(kpi_stats::Column::Period)
        .all(db)
        .await
        .unwrap();
    let counts = assessment_count::Entity::find()
        .filter(assessment_count::Column::OrganisationId.eq(org))
        .order_by_asc(assessment_count::Column::ProjectId)
        .order_by_asc(assessment_count::Column::Phase)
        .order_by_asc(assessment_count::Column::Concern)
        .all(db)
        .await
        .unwrap();
    let centres = project_cost_centre::Entity::find()
        .filter(project_cost_centre::Column::OrganisationId.eq(org))
        .order_by_asc(project_cost_centre::Column::ProjectId)
        .order_by_asc(project_cost_centre::Column::CostCentre)
        .all(db)
        .await
        .unwrap();
    store.close().await;
    // Rows whose every count fell back to zero are equivalent to absent.
    let counts = counts
        .into_iter()
        .filter(|c| {
            (
                c.should_applicable_weight,
                c.should_done_weight,
                c.must_open,
                c.open_high_risk,
            ) != (0, 0, 0, 0)
        })
        .collect();
    (money, stats, counts, centres)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// KPI statistics agree: counts and times exactly, sums of floats up to
/// their rounding (the order they were added in differs).
fn same_stats(kept: &[kpi_stats::Model], recomputed: &[kpi_stats::Model]) {
    assert_eq!(kept.len(), recomputed.len(), "{kept:#?}\n{recomputed:#?}");
    for (k, r) in kept.iter().zip(recomputed) {
        assert_eq!(
            (
                &k.kpi_id,
                &k.stage,
                &k.period,
                k.count,
                k.late_count,
                k.incomplete
            ),
            (
                &r.kpi_id,
                &r.stage,
                &r.period,
                r.count,
                r.late_count,
                r.incomplete
            )
        );
        assert_eq!((k.first_time, k.last_time), (r.first_time, r.last_time));
        assert_eq!(k.last_value, r.last_value, "{k:?} vs {r:?}");
        for (a, b) in [
            (k.sum_value, r.sum_value),
            (k.pooled_n, r.pooled_n),
            (k.pooled_sum, r.pooled_sum),
            (k.pooled_ss, r.pooled_ss),
        ] {
            assert!(close(a, b), "{k:?} vs {r:?}");
        }
    }
}

#[tokio::test]
async fn kept_aggregates_equal_a_recomputation_after_random_writes() {
    on_each_backend(async |app: &TestApp| {
        let c = deployed_callbot(app).await;
        go(app, &c).await.expect("GO into DEPLOYMENT");
        let org: uuid::Uuid = c.org.parse().unwrap();
        // A second, weekly KPI beside the callbot's monthly one.
        let weekly = app
            .kpis()
            .create_kpi(authed(
                "dina",
                pb::CreateKpiRequest {
                    organisation_id: c.org.clone(),
                    kpi: Some(pb::Kpi {
                        project_id: c.project.clone(),
                        name: "First-call resolution".into(),
                        unit: "%".into(),
                        unit_kind: pb::UnitKind::Percentage as i32,
                        direction: pb::Direction::HigherIsBetter as i32,
                        category: pb::KpiCategory::Quality as i32,
                        target: Some(80.0),
                        cadence: pb::Cadence::Weekly as i32,
                        ..Default::default()
                    }),
                },
            ))
            .await
            .expect("weekly KPI")
            .into_inner()
            .kpi
            .unwrap();
        let kpis = [c.kpi.clone(), weekly.id.clone()];
        let categories = [
            pb::CostCategory::People,
            pb::CostCategory::Cloud,
            pb::CostCategory::Licences,
        ];
        let mut seed: u64 = 0x0a99_2e9a_7e5e_ed11;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut refs: Vec<String> = Vec::new();
        // Lines without a cost centre are kept under "".
        let centres = ["", "CC-1", "CC-2"];
        let cost_row =
            |amount_cents: u64, month: u64, category: pb::CostCategory, centre: &str, r: String| {
                pb::Cost {
                    project_id: c.project.clone(),
                    amount: eur(&format!("{}.{:02}", amount_cents / 100, amount_cents % 100)),
                    category: category as i32,
                    nature: pb::CostNature::Opex as i32,
                    incurred_on: Some(pb::Date {
                        year: 2026,
                        month: i32::try_from(1 + month).unwrap(),
                        day: 15,
                    }),
                    cost_centre: centre.into(),
                    external_ref: r,
                    ..Default::default()
                }
            };
        for step in 0..70 {
            match next(9) {
                0 => {
                    let r = if !refs.is_empty() && next(3) == 0 {
                        refs[next(refs.len() as u64) as usize].clone()
                    } else {
                        format!("gl-{step}")
                    };
                    refs.push(r.clone());
                    // A repeated reference is a duplicate or, with another
                    // amount, refused: neither moves the aggregates.
                    let _ = app
                        .finance()
                        .record_cost(authed(
                            "dina",
                            pb::RecordCostRequest {
                                organisation_id: c.org.clone(),
                                cost: Some(cost_row(
                                    100 + next(900_000),
                                    next(12),
                                    categories[next(3) as usize],
                                    centres[next(3) as usize],
                                    r,
                                )),
                            },
                        ))
                        .await;
                }
                1 => {
                    let mut rows = Vec::new();
                    for i in 0..(5 + next(20)) {
                        let r = if !refs.is_empty() && next(4) == 0 {
                            refs[next(refs.len() as u64) as usize].clone()
                        } else {
                            format!("imp-{step}-{i}")
                        };
                        refs.push(r.clone());
                        rows.push(cost_row(
                            next(5_000_000),
                            next(12),
                            categories[next(3) as usize],
                            centres[next(3) as usize],
                            r,
                        ));
                    }
                    // A bad row is rejected alone.
                    rows.push(pb::Cost {
                        amount: eur("-1.00"),
                        ..cost_row(0, 0, pb::CostCategory::Other, "", format!("bad-{step}"))
                    });
                    let msg = pb::ImportCostsRequest {
                        organisation_id: c.org.clone(),
                        costs: rows,
                    };
                    app.finance()
                        .import_costs(authed("dina", tokio_stream::iter(vec![msg])))
                        .await
                        .expect("import");
                }
                2 => {
                    app.finance()
                        .record_benefit(authed(
                            "dina",
                            pb::RecordBenefitRequest {
                                organisation_id: c.org.clone(),
                                benefit: Some(pb::Benefit {
                                    project_id: c.project.clone(),
                                    kind: pb::BenefitKind::Savings as i32,
                                    amount: eur(&format!("{}.10", next(40_000))),
                                    date: Some(pb::Date {
                                        year: 2026,
                                        month: i32::try_from(1 + next(12)).unwrap(),
                                        day: 3,
                                    }),
                                    description: format!("step {step}"),
                                    ..Default::default()
                                }),
                            },
                        ))
                        .await
                        .expect("benefit");
                }
                3 | 4 => {
                    let kpi = &kpis[next(2) as usize];
                    let stage = [
                        pb::Stage::Baseline,
                        pb::Stage::Poc,
                        pb::Stage::PostDeployment,
                        pb::Stage::PostDeployment,
                    ][next(4) as usize];
                    let mut m = measure(
                        kpi,
                        stage,
                        20.0 + next(600) as f64 / 10.0,
                        1 + next(500) as i64,
                        next(100) as f64 / 7.0,
                        at(1 + next(120) as i64),
                        "",
                    );
                    if next(4) == 0 {
                        // Without sample statistics: the pooled summary is
                        // unknown from then on.
                        m.sample_size = None;
                        m.std_dev = None;
                    }
                    app.kpis()
                        .record_measurement(authed(
                            "dina",
                            pb::RecordMeasurementRequest {
                                organisation_id: c.org.clone(),
                                measurement: Some(m),
                            },
                        ))
                        .await
                        .expect("measurement");
                }
                5 => {
                    let mut rows = Vec::new();
                    for i in 0..(3 + next(10)) {
                        let r = if next(3) == 0 {
                            format!("tel-{}", next(5))
                        } else {
                            format!("tel-{step}-{i}")
                        };
                        rows.push(measure(
                            &kpis[next(2) as usize],
                            pb::Stage::PostDeployment,
                            40.0 + next(300) as f64 / 10.0,
                            100,
                            5.0,
                            at(1 + next(120) as i64),
                            &r,
                        ));
                    }
                    let msg = pb::ImportMeasurementsRequest {
                        organisation_id: c.org.clone(),
                        measurements: rows,
                    };
                    app.kpis()
                        .import_measurements(authed("dina", tokio_stream::iter(vec![msg])))
                        .await
                        .expect("import measurements");
                }
                6 => {
                    let items = app
                        .assessments()
                        .list_assessment_items(authed(
                            "dina",
                            pb::ListAssessmentItemsRequest {
                                organisation_id: c.org.clone(),
                                project_id: c.project.clone(),
                                ..Default::default()
                            },
                        ))
                        .await
                        .unwrap()
                        .into_inner()
                        .items;
                    let open: Vec<&pb::AssessmentItem> = items
                        .iter()
                        .filter(|i| i.phase == pb::Phase::Deployment as i32)
                        .collect();
                    let item = open[next(open.len() as u64) as usize];
                    let status = [
                        pb::AnswerStatus::Open,
                        pb::AnswerStatus::Done,
                        pb::AnswerStatus::Blocked,
                        pb::AnswerStatus::NotApplicable,
                    ][next(4) as usize];
                    let risk = [pb::RiskLevel::Low, pb::RiskLevel::High][next(2) as usize];
                    app.assessments()
                        .answer_assessment_item(authed(
                            "dina",
                            pb::AnswerAssessmentItemRequest {
                                organisation_id: c.org.clone(),
                                project_id: c.project.clone(),
                                key: item.key.clone(),
                                status: status as i32,
                                risk: risk as i32,
                                justification: "not relevant here".into(),
                                etag: item.etag.clone(),
                                ..Default::default()
                            },
                        ))
                        .await
                        .expect("answer");
                }
                7 if !refs.is_empty() => {
                    // A correction of a line: in full or in part, with or
                    // without a restatement in another cost centre. A line
                    // already reversed in full, or never posted, is
                    // refused: nothing moves.
                    let line = refs[next(refs.len() as u64) as usize].clone();
                    let replacement = (next(2) == 0).then(|| {
                        cost_row(
                            100 + next(90_000),
                            next(12),
                            categories[next(3) as usize],
                            centres[next(3) as usize],
                            format!("restated-{step}"),
                        )
                    });
                    let _ = app
                        .finance()
                        .correct_cost(authed(
                            "dina",
                            pb::CorrectCostRequest {
                                organisation_id: c.org.clone(),
                                external_ref: line,
                                amount: (next(2) == 0).then(|| eur("0.50")).flatten(),
                                reversal_external_ref: format!("rev-{step}"),
                                description: format!("step {step}"),
                                replacement,
                                ..Default::default()
                            },
                        ))
                        .await;
                }
                8 if !refs.is_empty() => {
                    // A reversal booked to another cost centre than its
                    // line's: that cost centre's cost goes down.
                    let line = refs[next(refs.len() as u64) as usize].clone();
                    let _ = app
                        .finance()
                        .record_cost(authed(
                            "dina",
                            pb::RecordCostRequest {
                                organisation_id: c.org.clone(),
                                cost: Some(pb::Cost {
                                    amount: eur("-0.25"),
                                    external_ref: format!("rev-cc-{step}"),
                                    reverses_external_ref: line,
                                    cost_centre: "CC-3".into(),
                                    ..Default::default()
                                }),
                            },
                        ))
                        .await;
                }
                7 | 8 => {}
                _ => {
                    // The weekly KPI turns monthly or back: its periods
                    // regroup.
                    let k = app
                        .kpis()
                        .get_kpi(authed(
                            "dina",
                            pb::GetKpiRequest {
                                organisation_id: c.org.clone(),
                                id: weekly.id.clone(),
                            },
                        ))
                        .await
                        .unwrap()
                        .into_inner()
                        .kpi
                        .unwrap();
                    let cadence = if k.cadence == pb::Cadence::Weekly as i32 {
                        pb::Cadence::Monthly
                    } else {
                        pb::Cadence::Weekly
                    };
                    app.kpis()
                        .update_kpi(authed(
                            "dina",
                            pb::UpdateKpiRequest {
                                organisation_id: c.org.clone(),
                                kpi: Some(pb::Kpi {
                                    id: weekly.id.clone(),
                                    cadence: cadence as i32,
                                    etag: k.etag.clone(),
                                    ..Default::default()
                                }),
                                update_mask: Some(prost_types::FieldMask {
                                    paths: vec!["cadence".into()],
                                }),
                            },
                        ))
                        .await
                        .expect("cadence");
                }
            }
        }
        let kept = aggregates(app, org).await;
        let kept_view = snapshot(app, &c.org).await;
        assert!(!kept.0.is_empty() && !kept.1.is_empty() && !kept.2.is_empty());
        // Every cost centre was written, reversals included.
        let kept_centres: std::collections::BTreeSet<&str> =
            kept.3.iter().map(|r| r.cost_centre.as_str()).collect();
        assert_eq!(
            kept_centres,
            ["", "CC-1", "CC-2", "CC-3"].into_iter().collect(),
            "{:?}",
            kept.3
        );
        // The cost centres of the project add up to its cost.
        let by_centres: i64 = kept.3.iter().map(|r| r.amount_minor).sum();
        let by_money: i64 = kept
            .0
            .iter()
            .filter(|m| m.nature == "COST")
            .map(|m| m.amount_minor)
            .sum();
        assert_eq!(by_centres, by_money);
        let store = Store::connect(&app.db.url, &PoolOptions::default())
            .await
            .unwrap();
        jalon_store::portfolio::rebuild(store.db(), org)
            .await
            .unwrap();
        store.close().await;
        let recomputed = aggregates(app, org).await;
        assert_eq!(kept.0, recomputed.0, "money by month, category and phase");
        same_stats(&kept.1, &recomputed.1);
        assert_eq!(kept.2, recomputed.2, "assessment counts");
        assert_eq!(kept.3, recomputed.3, "cost by cost centre");
        let recomputed_view = snapshot(app, &c.org).await;
        assert_eq!(kept_view.0, recomputed_view.0, "the summary");
        assert_eq!(kept_view.1, recomputed_view.1, "the project rows");
    })
    .await;
}
