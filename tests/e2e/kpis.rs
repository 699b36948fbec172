//! KPIs, costs, benefits and ROI end to end: the Vilogia callbot from the
//! white paper, imports, the KPI gate criteria, and underperformance.

use chrono::{Duration, Utc};
use jalon_proto::v1 as pb;
use prost_types::Timestamp;
use tonic::Code;

use crate::helpers::*;

pub(crate) fn at(offset_days: i64) -> Option<Timestamp> {
    let t = Utc::now() + Duration::days(offset_days);
    Some(Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    })
}

pub(crate) fn eur(amount: &str) -> Option<pb::Money> {
    Some(pb::Money {
        currency_code: "EUR".into(),
        amount: amount.into(),
    })
}

fn date(y: i32, m: i32, d: i32) -> Option<pb::Date> {
    Some(pb::Date {
        year: y,
        month: m,
        day: d,
    })
}

pub(crate) struct Callbot {
    pub org: String,
    pub project: String,
    pub kpi: String,
}

/// Vilogia's callbot: director dina, sponsor sam, lead lea, HR/finance
/// integration "erp"; waiting time in seconds, lower is better, target 45 s,
/// monthly, worth EUR 0.50 per second over 40,000 calls a month.
pub(crate) async fn callbot(app: &TestApp) -> Callbot {
    let (org, _) = app.create_org("vilogia", "alice").await;
    app.add_person("alice", &org.id, "dina", pb::Role::Director)
        .await;
    let sam = app
        .add_person("alice", &org.id, "sam", pb::Role::Member)
        .await;
    let lea = app
        .add_person("alice", &org.id, "lea", pb::Role::Member)
        .await;
    app.add_person("alice", &org.id, "erp", pb::Role::Integration)
        .await;
    let project = app
        .create_project(
            "dina",
            &org.id,
            pb::Project {
                name: "Callbot".into(),
                sponsor_id: sam.id,
                lead_id: lea.id,
                ai_act_tier: pb::AiActTier::Limited as i32,
                ..Default::default()
            },
        )
        .await;
    let kpi = app
        .kpis()
        .create_kpi(authed(
            "lea",
            pb::CreateKpiRequest {
                organisation_id: org.id.clone(),
                kpi: Some(pb::Kpi {
                    project_id: project.id.clone(),
                    name: "Phone waiting time".into(),
                    unit: "seconds".into(),
                    unit_kind: pb::UnitKind::Duration as i32,
                    direction: pb::Direction::LowerIsBetter as i32,
                    category: pb::KpiCategory::Customer as i32,
                    primary: true,
                    target: Some(45.0),
                    cadence: pb::Cadence::Monthly as i32,
                    value_per_unit: eur("0.50"),
                    volume_per_period: "40000".into(),
                    measurement_method: "telephony statistics, all calls of the month".into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .expect("the lead creates the KPI")
        .into_inner()
        .kpi
        .unwrap();
    Callbot {
        org: org.id,
        project: project.id,
        kpi: kpi.id,
    }
}

pub(crate) fn measure(
    kpi: &str,
    stage: pb::Stage,
    value: f64,
    n: i64,
    sd: f64,
    when: Option<Timestamp>,
    external_ref: &str,
) -> pb::Measurement {
    pb::Measurement {
        kpi_id: kpi.into(),
        value,
        measure_time: when,
        stage: stage as i32,
        sample_size: Some(n),
        std_dev: Some(sd),
        external_ref: external_ref.into(),
        ..Default::default()
    }
}

pub(crate) async fn record(
    app: &TestApp,
    who: &str,
    c: &Callbot,
    m: pb::Measurement,
) -> Result<pb::RecordMeasurementResponse, tonic::Status> {
    app.kpis()
        .record_measurement(authed(
            who,
            pb::RecordMeasurementRequest {
                organisation_id: c.org.clone(),
                measurement: Some(m),
            },
        ))
        .await
        .map(|r| r.into_inner())
}

/// Requests, signs and decides GO on the current gate, answering its MUST
/// items first.
pub(crate) async fn go(
    app: &TestApp,
    c: &Callbot,
) -> Result<pb::DecideGateResponse, tonic::Status> {
    decide(app, c, pb::GateOutcome::Go, vec![]).await
}

/// Requests, signs and decides the current gate with `outcome`, answering
/// its MUST items first.
pub(crate) async fn decide(
    app: &TestApp,
    c: &Callbot,
    outcome: pb::GateOutcome,
    conditions: Vec<pb::GateCondition>,
) -> Result<pb::DecideGateResponse, tonic::Status> {
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
        .await?
        .into_inner()
        .items;
    let project = app
        .projects()
        .get_project(authed(
            "dina",
            pb::GetProjectRequest {
                organisation_id: c.org.clone(),
                id: c.project.clone(),
            },
        ))
        .await?
        .into_inner()
        .project
        .unwrap();
    for item in items.iter().filter(|i| {
        i.phase == project.phase
            && i.kind == pb::QuestionKind::Must as i32
            && i.status != pb::AnswerStatus::Done as i32
    }) {
        app.assessments()
            .answer_assessment_item(authed(
                "lea",
                pb::AnswerAssessmentItemRequest {
                    organisation_id: c.org.clone(),
                    project_id: c.project.clone(),
                    key: item.key.clone(),
                    status: pb::AnswerStatus::Done as i32,
                    ..Default::default()
                },
            ))
            .await?;
    }
    let open = app
        .gates()
        .list_gate_reviews(authed(
            "dina",
            pb::ListGateReviewsRequest {
                organisation_id: c.org.clone(),
                project_id: c.project.clone(),
            },
        ))
        .await?
        .into_inner()
        .reviews;
    let review = match open
        .into_iter()
        .find(|r| r.state == pb::GateReviewState::Open as i32)
    {
        Some(r) => r,
        None => app
            .gates()
            .request_gate_review(authed(
                "lea",
                pb::RequestGateReviewRequest {
                    organisation_id: c.org.clone(),
                    project_id: c.project.clone(),
                },
            ))
            .await?
            .into_inner()
            .review
            .unwrap(),
    };
    if review.signatories.iter().all(|s| s.verdict == 0) {
        app.gates()
            .sign_gate(authed(
                "sam",
                pb::SignGateRequest {
                    organisation_id: c.org.clone(),
                    review_id: review.id.clone(),
                    verdict: pb::Verdict::Approve as i32,
                    comment: "ok".into(),
                },
            ))
            .await?;
    }
    app.gates()
        .decide_gate(authed(
            "dina",
            pb::DecideGateRequest {
                organisation_id: c.org.clone(),
                review_id: review.id,
                outcome: outcome as i32,
                rationale: "decided".into(),
                conditions,
            },
        ))
        .await
        .map(|r| r.into_inner())
}

fn kinds(status: &tonic::Status) -> Vec<String> {
    precondition_kinds(status)
}

#[tokio::test]
async fn the_vilogia_callbot_pays_and_its_gain_is_real() {
    on_each_backend(async |app: &TestApp| {
        let c = callbot(app).await;
        // No baseline yet: the IDEATION gate refuses.
        let refused = go(app, &c).await;
        assert_eq!(
            kinds(&expect_code(refused, Code::FailedPrecondition)),
            vec!["KPI_BASELINE"]
        );
        record(
            app,
            "lea",
            &c,
            measure(
                &c.kpi,
                pb::Stage::Baseline,
                95.0,
                12_000,
                40.0,
                at(0),
                "tel-2026-01",
            ),
        )
        .await
        .expect("baseline");
        go(app, &c).await.expect("GO into POC");

        // POC: a result below target fails POC_RESULT, which a director may waive.
        record(
            app,
            "lea",
            &c,
            measure(&c.kpi, pb::Stage::Poc, 52.0, 300, 20.0, at(0), ""),
        )
        .await
        .unwrap();
        let refused = go(app, &c).await;
        assert_eq!(
            kinds(&expect_code(refused, Code::FailedPrecondition)),
            vec!["POC_RESULT"]
        );
        record(
            app,
            "lea",
            &c,
            measure(&c.kpi, pb::Stage::Poc, 44.0, 300, 20.0, at(1), ""),
        )
        .await
        .unwrap();
        go(app, &c)
            .await
            .expect("GO into INDUSTRIALISATION: the latest POC result meets the target");

        // A late baseline is accepted but flagged.
        let late = record(
            app,
            "lea",
            &c,
            measure(
                &c.kpi,
                pb::Stage::Baseline,
                96.0,
                // As many calls as the first: the pooled (size-weighted)
                // baseline is then the plain mean of the two, 95.5.
                12_000,
                41.0,
                at(1),
                "tel-2026-02",
            ),
        )
        .await
        .unwrap();
        assert!(late.measurement.unwrap().late_baseline);

        // POST_DEPLOYMENT before DEPLOYMENT is refused.
        let early = record(
            app,
            "erp",
            &c,
            measure(
                &c.kpi,
                pb::Stage::PostDeployment,
                50.0,
                12_500,
                30.0,
                at(0),
                "",
            ),
        )
        .await;
        assert_eq!(
            kinds(&expect_code(early, Code::FailedPrecondition)),
            vec!["NOT_DEPLOYED"]
        );
        go(app, &c).await.expect("GO into DEPLOYMENT");

        // The telephony integration streams the post-deployment series.
        let rows = vec![
            measure(
                &c.kpi,
                pb::Stage::PostDeployment,
                50.0,
                12_500,
                30.0,
                at(1),
                "tel-2026-06",
            ),
            measure(
                &c.kpi,
                pb::Stage::PostDeployment,
                f64::NAN,
                1,
                0.0,
                at(1),
                "tel-broken",
            ),
            measure(
                &c.kpi,
                pb::Stage::PostDeployment,
                49.0,
                12_400,
                31.0,
                at(40),
                "tel-2026-07",
            ),
        ];
        let import = |rows: Vec<pb::Measurement>| {
            let mut kpis = app.kpis();
            let messages = vec![
                pb::ImportMeasurementsRequest {
                    organisation_id: c.org.clone(),
                    measurements: rows[..1].to_vec(),
                },
                pb::ImportMeasurementsRequest {
                    organisation_id: c.org.clone(),
                    measurements: rows[1..].to_vec(),
                },
            ];
            async move {
                kpis.import_measurements(authed("erp", tokio_stream::iter(messages)))
                    .await
                    .map(|r| r.into_inner())
            }
        };
        let first = import(rows.clone()).await.expect("import");
        assert_eq!(
            (first.accepted, first.duplicates, first.rejected),
            (2, 0, 1)
        );
        // Only the rows not accepted are listed: the NaN of row 1.
        assert_eq!(first.results.len(), 1, "{:?}", first.results);
        assert_eq!(first.results[0].row, 1);
        assert_eq!(
            first.results[0].status,
            pb::ImportRowStatus::Rejected as i32
        );
        assert_eq!(first.results[0].field, "value");
        assert!(first.results[0].id.is_empty());
        assert!(!first.results[0].reason.is_empty());
        assert_eq!(first.omitted_results, 0);
        let retried = import(rows).await.expect("retry");
        assert_eq!(
            (retried.accepted, retried.duplicates, retried.rejected),
            (0, 2, 1),
            "a retried import creates no duplicates"
        );
        // The duplicates name the measurements the first import recorded.
        let recorded = app
            .kpis()
            .list_measurements(authed(
                "alice",
                pb::ListMeasurementsRequest {
                    organisation_id: c.org.clone(),
                    kpi_id: c.kpi.clone(),
                    stage: pb::Stage::PostDeployment as i32,
                },
            ))
            .await
            .expect("list")
            .into_inner()
            .measurements;
        let id_of = |external_ref: &str| {
            recorded
                .iter()
                .find(|m| m.external_ref == external_ref)
                .map(|m| m.id.clone())
                .expect("recorded by the first import")
        };
        let summary: Vec<(i64, i32, String)> = retried
            .results
            .iter()
            .map(|r| (r.row, r.status, r.id.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    0,
                    pb::ImportRowStatus::Duplicate as i32,
                    id_of("tel-2026-06")
                ),
                (1, pb::ImportRowStatus::Rejected as i32, String::new()),
                (
                    2,
                    pb::ImportRowStatus::Duplicate as i32,
                    id_of("tel-2026-07")
                ),
            ]
        );
        assert_eq!(retried.omitted_results, 0);
        let metrics = crate::observability::scrape(app).await;
        for line in [
            r#"jalon_imported_rows_total{kind="measurement",result="accepted"} 2"#,
            r#"jalon_imported_rows_total{kind="measurement",result="duplicate"} 2"#,
            r#"jalon_imported_rows_total{kind="measurement",result="rejected"} 2"#,
        ] {
            assert!(metrics.contains(line), "{line} not in the metrics");
        }

        let result = app
            .kpis()
            .get_kpi_result(authed(
                "sam",
                pb::GetKpiResultRequest {
                    organisation_id: c.org.clone(),
                    id: c.kpi.clone(),
                },
            ))
            .await
            .expect("the sponsor asks")
            .into_inner();
        assert_eq!(result.baseline, Some(95.5), "mean of the two baselines");
        assert!(result.late_baseline);
        assert_eq!(result.current, Some(49.0));
        assert_eq!(result.series.len(), 2);
        assert_eq!(
            result.absolute_change,
            Some(46.5),
            "lower is better: a drop is a gain"
        );
        assert_eq!(result.target_met, Some(false));
        assert!(
            result.significance_known && result.significant,
            "{result:?}"
        );
        assert!(
            result.improvement_low > 40.0 && result.improvement_high < 53.0,
            "{result:?}"
        );
        // 46.5 s x EUR 0.50 x 40,000 calls = EUR 930,000.00 for the month.
        assert_eq!(result.monetised_gain_per_period, eur("930000.00"));

        // Costs from the finance system, streamed; a wrong currency is refused.
        let cost = |amount: &str,
                    currency: &str,
                    category: pb::CostCategory,
                    month: i32,
                    external_ref: &str| pb::Cost {
            project_id: c.project.clone(),
            amount: Some(pb::Money {
                currency_code: currency.into(),
                amount: amount.into(),
            }),
            category: category as i32,
            nature: pb::CostNature::Opex as i32,
            incurred_on: date(2026, month, 15),
            cost_centre: "CC-42".into(),
            phase: pb::Phase::Poc as i32,
            external_ref: external_ref.into(),
            ..Default::default()
        };
        let costs = vec![
            cost("120000", "EUR", pb::CostCategory::People, 1, "sap-1"),
            cost("30000.50", "EUR", pb::CostCategory::Cloud, 2, "sap-2"),
            cost("999", "USD", pb::CostCategory::Licences, 2, "sap-3"),
        ];
        let mut finance = app.finance();
        let messages = vec![pb::ImportCostsRequest {
            organisation_id: c.org.clone(),
            costs: costs.clone(),
        }];
        let imported = finance
            .import_costs(authed("erp", tokio_stream::iter(messages.clone())))
            .await
            .expect("import costs")
            .into_inner();
        assert_eq!(
            (imported.accepted, imported.duplicates, imported.rejected),
            (2, 0, 1)
        );
        // The USD row alone is listed, with its field and reason.
        assert_eq!(imported.results.len(), 1, "{:?}", imported.results);
        assert_eq!(imported.results[0].row, 2);
        assert_eq!(
            imported.results[0].status,
            pb::ImportCostStatus::Rejected as i32
        );
        assert_eq!(imported.results[0].field, "amount");
        assert!(
            imported.results[0].reason.contains("EUR"),
            "{:?}",
            imported.results[0]
        );
        let again = finance
            .import_costs(authed("erp", tokio_stream::iter(messages)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!((again.accepted, again.duplicates), (0, 2));
        let listed = finance
            .list_costs(authed(
                "alice",
                pb::ListCostsRequest {
                    organisation_id: c.org.clone(),
                    project_id: c.project.clone(),
                    ..Default::default()
                },
            ))
            .await
            .expect("list costs")
            .into_inner()
            .costs;
        let cost_id = |external_ref: &str| {
            listed
                .iter()
                .find(|c| c.external_ref == external_ref)
                .map(|c| c.id.clone())
                .expect("posted by the first import")
        };
        assert_eq!(
            again
                .results
                .iter()
                .map(|r| (r.row, r.status, r.id.clone()))
                .collect::<Vec<_>>(),
            vec![
                (0, pb::ImportCostStatus::Duplicate as i32, cost_id("sap-1")),
                (1, pb::ImportCostStatus::Duplicate as i32, cost_id("sap-2")),
                (2, pb::ImportCostStatus::Rejected as i32, String::new()),
            ]
        );
        let conflict = finance
            .record_cost(authed(
                "erp",
                pb::RecordCostRequest {
                    organisation_id: c.org.clone(),
                    cost: Some(cost("1", "EUR", pb::CostCategory::People, 1, "sap-1")),
                },
            ))
            .await;
        expect_code(conflict, Code::AlreadyExists);
        expect_bad_field(
            finance
                .record_cost(authed(
                    "erp",
                    pb::RecordCostRequest {
                        organisation_id: c.org.clone(),
                        cost: Some(cost("10", "USD", pb::CostCategory::Other, 3, "")),
                    },
                ))
                .await,
            "cost.amount",
        );
        finance
            .set_budget(authed(
                "dina",
                pb::SetBudgetRequest {
                    organisation_id: c.org.clone(),
                    project_id: c.project.clone(),
                    total: eur("140000"),
                    by_category: vec![pb::CategoryAmount {
                        category: pb::CostCategory::Cloud as i32,
                        amount: eur("25000"),
                    }],
                },
            ))
            .await
            .expect("budget");
        expect_code(
            finance
                .set_budget(authed(
                    "lea",
                    pb::SetBudgetRequest {
                        organisation_id: c.org.clone(),
                        project_id: c.project.clone(),
                        total: eur("1"),
                        by_category: vec![],
                    },
                ))
                .await,
            Code::PermissionDenied,
        );
        finance
            .record_benefit(authed(
                "dina",
                pb::RecordBenefitRequest {
                    organisation_id: c.org.clone(),
                    benefit: Some(pb::Benefit {
                        project_id: c.project.clone(),
                        kind: pb::BenefitKind::AvoidedCost as i32,
                        amount: eur("5000"),
                        date: date(2026, 3, 1),
                        description: "two temps not hired".into(),
                        ..Default::default()
                    }),
                },
            ))
            .await
            .expect("benefit");

        let f = finance
            .get_project_financials(authed(
                "sam",
                pb::GetProjectFinancialsRequest {
                    organisation_id: c.org.clone(),
                    project_id: c.project.clone(),
                },
            ))
            .await
            .expect("financials")
            .into_inner();
        assert_eq!(f.total_cost, eur("150000.50"));
        assert_eq!(f.recorded_benefit, eur("5000.00"));
        // Two periods: (95.5 - 50) x 0.5 x 40,000 = 910,000 and
        // (95.5 - 49) x 0.5 x 40,000 = 930,000.
        assert_eq!(f.derived_benefit, eur("1840000.00"));
        assert_eq!(f.net_value, eur("1694999.50"));
        // ROI = 1,694,999.50 / 150,000.50 = 11.299959 (6 places).
        assert_eq!(f.roi, "11.299959");
        assert_eq!(f.budget_variance, eur("-10000.50"));
        assert_eq!(f.budget_by_category[0].variance, eur("-5000.50"));
        let now = Utc::now();
        assert_eq!(
            f.payback_month,
            Some(pb::Date {
                year: chrono::Datelike::year(&now),
                month: chrono::Datelike::month(&now) as i32,
                day: 1
            }),
            "the first derived month pays back"
        );
        assert!(f.npv.is_some());
        assert_eq!(f.cost_by_phase.len(), 1);
        // One RPC answers "did it pay, and is the gain real?".
        assert_eq!(f.kpi_gains.len(), 1);
        assert_eq!(f.kpi_gains[0].absolute_change, Some(46.5));
        assert!(f.kpi_gains[0].significant);
        let benefits = finance
            .list_benefits(authed(
                "sam",
                pb::ListBenefitsRequest {
                    organisation_id: c.org.clone(),
                    project_id: c.project.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!((benefits.recorded.len(), benefits.derived.len()), (1, 2));

        // Another organisation sees nothing.
        let (other, _) = app.create_org("other", "olga").await;
        let _ = other;
        expect_code(
            app.kpis()
                .get_kpi(authed(
                    "olga",
                    pb::GetKpiRequest {
                        organisation_id: c.org.clone(),
                        id: c.kpi.clone(),
                    },
                ))
                .await,
            Code::NotFound,
        );
        expect_code(
            app.kpis()
                .get_kpi_result(authed(
                    "olga",
                    pb::GetKpiResultRequest {
                        organisation_id: c.org.clone(),
                        id: c.kpi.clone(),
                    },
                ))
                .await,
            Code::NotFound,
        );
        expect_code(
            finance
                .get_project_financials(authed(
                    "olga",
                    pb::GetProjectFinancialsRequest {
                        organisation_id: c.org.clone(),
                        project_id: c.project.clone(),
                    },
                ))
                .await,
            Code::NotFound,
        );
        expect_code(
            record(
                app,
                "olga",
                &c,
                measure(&c.kpi, pb::Stage::Baseline, 1.0, 2, 1.0, at(0), ""),
            )
            .await,
            Code::NotFound,
        );
    })
    .await;
}

#[tokio::test]
async fn bad_kpi_input_names_the_field() {
    on_each_backend(async |app: &TestApp| {
        let c = callbot(app).await;
        let base = || pb::Kpi {
            project_id: c.project.clone(),
            name: "x".into(),
            unit: "s".into(),
            unit_kind: 1,
            direction: 1,
            category: 1,
            ..Default::default()
        };
        let cases: Vec<(&str, pb::Kpi)> = vec![
            (
                "kpi.name",
                pb::Kpi {
                    name: " ".into(),
                    ..base()
                },
            ),
            (
                "kpi.unit_kind",
                pb::Kpi {
                    unit_kind: 0,
                    ..base()
                },
            ),
            (
                "kpi.direction",
                pb::Kpi {
                    direction: 9,
                    ..base()
                },
            ),
            (
                "kpi.value_per_unit",
                pb::Kpi {
                    value_per_unit: Some(pb::Money {
                        currency_code: "USD".into(),
                        amount: "1".into(),
                    }),
                    volume_per_period: "1".into(),
                    ..base()
                },
            ),
            (
                "kpi.volume_per_period",
                pb::Kpi {
                    value_per_unit: eur("1"),
                    ..base()
                },
            ),
            (
                "kpi.target",
                pb::Kpi {
                    unit_kind: pb::UnitKind::Percentage as i32,
                    target: Some(150.0),
                    ..base()
                },
            ),
        ];
        for (field, kpi) in cases {
            expect_bad_field(
                app.kpis()
                    .create_kpi(authed(
                        "dina",
                        pb::CreateKpiRequest {
                            organisation_id: c.org.clone(),
                            kpi: Some(kpi),
                        },
                    ))
                    .await,
                field,
            );
        }
        let pct = app
            .kpis()
            .create_kpi(authed(
                "dina",
                pb::CreateKpiRequest {
                    organisation_id: c.org.clone(),
                    kpi: Some(pb::Kpi {
                        unit_kind: pb::UnitKind::Percentage as i32,
                        ..base()
                    }),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .kpi
            .unwrap();
        let bad = record(
            app,
            "dina",
            &c,
            pb::Measurement {
                kpi_id: pct.id.clone(),
                value: 120.0,
                measure_time: at(0),
                stage: pb::Stage::Baseline as i32,
                ..Default::default()
            },
        )
        .await;
        expect_bad_field(bad, "measurement.value");
        expect_bad_field(
            record(
                app,
                "dina",
                &c,
                pb::Measurement {
                    kpi_id: pct.id.clone(),
                    value: 1.0,
                    stage: pb::Stage::Baseline as i32,
                    ..Default::default()
                },
            )
            .await,
            "measurement.measure_time",
        );
        expect_bad_field(
            record(
                app,
                "dina",
                &c,
                pb::Measurement {
                    kpi_id: pct.id.clone(),
                    value: 1.0,
                    measure_time: at(0),
                    ..Default::default()
                },
            )
            .await,
            "measurement.stage",
        );
        // Members other than the lead do not record; viewers never.
        app.add_person("alice", &c.org, "vic", pb::Role::Viewer)
            .await;
        expect_code(
            record(
                app,
                "sam",
                &c,
                measure(&c.kpi, pb::Stage::Baseline, 90.0, 2, 1.0, at(0), ""),
            )
            .await,
            Code::PermissionDenied,
        );
        expect_code(
            record(
                app,
                "vic",
                &c,
                measure(&c.kpi, pb::Stage::Baseline, 90.0, 2, 1.0, at(0), ""),
            )
            .await,
            Code::PermissionDenied,
        );
        // Archived KPIs take no more measurements.
        app.kpis()
            .archive_kpi(authed(
                "lea",
                pb::ArchiveKpiRequest {
                    organisation_id: c.org.clone(),
                    id: pct.id.clone(),
                },
            ))
            .await
            .expect("archive");
        let archived = record(
            app,
            "dina",
            &c,
            pb::Measurement {
                kpi_id: pct.id,
                value: 1.0,
                measure_time: at(0),
                stage: pb::Stage::Baseline as i32,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(
            kinds(&expect_code(archived, Code::FailedPrecondition)),
            vec!["KPI_ARCHIVED"]
        );
    })
    .await;
}

#[tokio::test]
async fn an_underperforming_kpi_flags_the_project_for_reassessment() {
    on_each_backend(async |app: &TestApp| {
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
        go(app, &c).await.unwrap();
        let live = go(app, &c).await.expect("into production").project.unwrap();
        assert_eq!(live.status, pb::ProjectStatus::InProduction as i32);
        assert!(!live.underperforming);
        // Two review periods worse than the baseline.
        record(
            app,
            "erp",
            &c,
            measure(
                &c.kpi,
                pb::Stage::PostDeployment,
                100.0,
                100,
                10.0,
                at(1),
                "",
            ),
        )
        .await
        .unwrap();
        let get = || {
            let mut projects = app.projects();
            let request = authed(
                "dina",
                pb::GetProjectRequest {
                    organisation_id: c.org.clone(),
                    id: c.project.clone(),
                },
            );
            async move {
                projects
                    .get_project(request)
                    .await
                    .unwrap()
                    .into_inner()
                    .project
                    .unwrap()
            }
        };
        assert!(!get().await.underperforming, "one period is not a trend");
        record(
            app,
            "erp",
            &c,
            measure(
                &c.kpi,
                pb::Stage::PostDeployment,
                104.0,
                100,
                10.0,
                at(40),
                "",
            ),
        )
        .await
        .unwrap();
        let flagged = get().await;
        assert!(flagged.underperforming);
        let listed = app
            .projects()
            .list_projects(authed(
                "dina",
                pb::ListProjectsRequest {
                    organisation_id: c.org.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .projects;
        assert!(listed[0].underperforming, "visible in List");
        // The project's audit log, as its actions.
        let actions = || {
            let mut audit = app.audit();
            let request = authed(
                "dina",
                pb::ListAuditEventsRequest {
                    organisation_id: c.org.clone(),
                    project_id: c.project.clone(),
                    ..Default::default()
                },
            );
            async move {
                audit
                    .list_audit_events(request)
                    .await
                    .unwrap()
                    .into_inner()
                    .events
                    .into_iter()
                    .map(|e| e.action)
                    .collect::<Vec<_>>()
            }
        };
        assert!(
            actions()
                .await
                .iter()
                .any(|a| a == "project.underperformance_flagged")
        );

        // Only a director opens the reassessment; it ends in RECYCLE or KILL.
        let by_lead = app
            .gates()
            .request_gate_review(authed(
                "lea",
                pb::RequestGateReviewRequest {
                    organisation_id: c.org.clone(),
                    project_id: c.project.clone(),
                },
            ))
            .await;
        expect_code(by_lead, Code::PermissionDenied);
        let review = app
            .gates()
            .request_gate_review(authed(
                "dina",
                pb::RequestGateReviewRequest {
                    organisation_id: c.org.clone(),
                    project_id: c.project.clone(),
                },
            ))
            .await
            .expect("reassessment")
            .into_inner()
            .review
            .unwrap();
        assert_eq!(review.from_phase, pb::Phase::Deployment as i32);
        let decide = |outcome: pb::GateOutcome| {
            let mut gates = app.gates();
            let request = authed(
                "dina",
                pb::DecideGateRequest {
                    organisation_id: c.org.clone(),
                    review_id: review.id.clone(),
                    outcome: outcome as i32,
                    rationale: "retrain on this year's calls".into(),
                    conditions: vec![],
                },
            );
            async move { gates.decide_gate(request).await }
        };
        assert_eq!(
            kinds(&expect_code(
                decide(pb::GateOutcome::Go).await,
                Code::FailedPrecondition
            )),
            vec!["REASSESSMENT_OUTCOME"]
        );
        let back = decide(pb::GateOutcome::Recycle)
            .await
            .expect("recycle")
            .into_inner()
            .project
            .unwrap();
        assert_eq!(
            (back.phase, back.status),
            (
                pb::Phase::Deployment as i32,
                pb::ProjectStatus::Active as i32
            )
        );
        assert!(get().await.underperforming, "a recycle keeps the flag");

        // Retrained: a review period better than the baseline and on target
        // (lower is better, 45) clears it, with its audit record.
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
                at(75),
                "",
            ),
        )
        .await
        .unwrap();
        assert!(!get().await.underperforming, "the KPI recovered");
        let cleared = actions()
            .await
            .into_iter()
            .filter(|a| a == "project.underperformance_cleared")
            .count();
        assert_eq!(cleared, 1, "one clearing recorded");
    })
    .await;
}
