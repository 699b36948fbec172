use chrono::TimeZone;

use super::*;

fn t(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
}

fn eur() -> CurrencyCode {
    CurrencyCode::parse("EUR").unwrap()
}

fn facts() -> ProjectFacts {
    ProjectFacts {
        id: Uuid::nil(),
        name: "Callbot".into(),
        business_unit: "Customer service".into(),
        phase: Phase::Poc,
        status: Status::Active,
        ai_act_tier: AiActTier::Limited,
        sponsor: Some(PersonFacts {
            id: Uuid::from_u128(1),
            active: true,
            display_name: "Grace Hopper".into(),
            left_on: None,
        }),
        lead: Some(PersonFacts {
            id: Uuid::from_u128(2),
            active: true,
            display_name: "Alan Turing".into(),
            left_on: None,
        }),
        create_time: t(2026, 1, 1),
        phase_history: vec![
            PhaseSpan {
                phase: Phase::Ideation,
                enter_time: t(2026, 1, 1),
                leave_time: Some(t(2026, 3, 2)),
            },
            PhaseSpan {
                phase: Phase::Poc,
                enter_time: t(2026, 3, 2),
                leave_time: None,
            },
        ],
        underperforming: false,
        readiness: 0.5,
        open_must_items: 2,
        open_high_risk: vec![(Phase::Poc, Concern::Data, 2)],
        decisions: vec![
            (Phase::Ideation, Outcome::Recycle),
            (Phase::Ideation, Outcome::Go),
        ],
        open_condition_due: None,
        kpis: vec![KpiFacts {
            name: "waiting time".into(),
            primary: true,
            baseline_count: 1,
            late_baseline: false,
            cadence: Some(Cadence::Monthly),
            last_post_deployment: None,
            relative_change: None,
        }],
        money: MoneyFacts {
            currency: Some(CurrencyCode::parse("EUR").unwrap()),
            budget_minor: Some(10_000),
            cost_by_category: vec![(CostCategory::Cloud, 15_000), (CostCategory::People, 5_000)],
            recorded_benefit_minor: 0,
            derived_benefit_minor: 30_000,
            paid_back: true,
        },
    }
}

#[test]
fn percentile_is_nearest_rank() {
    let h: BTreeMap<i64, i64> = [(10, 1), (20, 1), (30, 1), (40, 1)].into();
    assert_eq!(percentile(&h, 0.5), 20);
    assert_eq!(percentile(&h, 0.9), 40);
    assert_eq!(percentile(&BTreeMap::new(), 0.5), 0);
    let h: BTreeMap<i64, i64> = [(5, 9), (100, 1)].into();
    assert_eq!(percentile(&h, 0.9), 5);
}

#[test]
fn a_project_contributes_its_phase_money_gates_and_stays() {
    let (figures, c, alerts) = reduce(&facts());
    assert_eq!(c["projects"], 1);
    assert_eq!(c["ps:POC:ACTIVE"], 1);
    assert_eq!(c["entered:IDEATION"], 1);
    assert_eq!(c["entered:POC"], 1);
    assert_eq!(c["decided:IDEATION"], 1);
    assert_eq!(c["passed:IDEATION"], 1);
    assert_eq!(c["outcome:IDEATION:RECYCLE"], 1);
    assert_eq!(c["outcome:IDEATION:GO"], 1);
    assert!(!c.contains_key("killed:IDEATION"));
    assert_eq!(c["stay:IDEATION:60"], 1);
    assert_eq!(c["cost"], 20_000);
    assert_eq!(c["cost:CLOUD"], 15_000);
    assert_eq!(c["benefit_derived"], 30_000);
    assert_eq!(c["heat:POC:DATA"], 2);
    assert_eq!(c["alert:BUDGET_OVERRUN"], 1);
    assert_eq!(figures.roi_micros, Some(500_000));
    assert_eq!(figures.phase_enter_time, t(2026, 3, 2));
    assert_eq!(figures.gate_watch_since, Some(t(2026, 3, 2)));
    assert_eq!(alerts.len(), 1);
    assert_eq!(figures.alert_bits, AlertKind::BudgetOverrun.bit());
}

#[test]
fn stopped_projects_raise_no_alert_and_no_risk() {
    let mut f = facts();
    f.status = Status::Stopped;
    f.sponsor = None;
    let (figures, c, alerts) = reduce(&f);
    assert!(alerts.is_empty());
    assert!(!c.contains_key("heat:POC:DATA"));
    assert_eq!(figures.gate_watch_since, None);
}

#[test]
fn a_departed_sponsor_or_lead_is_named_with_the_day_they_left() {
    let mut f = facts();
    f.money.budget_minor = None;
    let sponsor = f.sponsor.as_mut().unwrap();
    sponsor.active = false;
    sponsor.left_on = NaiveDate::from_ymd_opt(2026, 12, 1);
    let lead = f.lead.as_mut().unwrap();
    lead.active = false;
    let raised = static_alerts(&f, 0);
    let reasons: Vec<(AlertKind, &str)> =
        raised.iter().map(|a| (a.kind, a.reason.as_str())).collect();
    assert_eq!(
        reasons,
        vec![
            (
                AlertKind::SponsorInactive,
                "Grace Hopper, sponsor, left on 2026-12-01"
            ),
            (
                AlertKind::LeadInactive,
                "Alan Turing, lead, is no longer active"
            ),
        ]
    );
    // Stopped or retired projects raise nothing.
    f.status = Status::Retired;
    assert!(static_alerts(&f, 0).is_empty());
}

#[test]
fn sponsor_and_baseline_alerts() {
    let mut f = facts();
    f.sponsor.as_mut().unwrap().active = false;
    f.kpis[0].baseline_count = 0;
    f.money.budget_minor = None;
    let kinds: Vec<AlertKind> = static_alerts(&f, 0).iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        vec![AlertKind::SponsorInactive, AlertKind::KpiWithoutBaseline]
    );
    f.sponsor = None;
    f.ai_act_tier = AiActTier::Prohibited;
    let kinds: Vec<AlertKind> = static_alerts(&f, 0).iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        vec![
            AlertKind::NoSponsor,
            AlertKind::KpiWithoutBaseline,
            AlertKind::ProhibitedActive
        ]
    );
}

#[test]
fn deadlines_raise_alerts_once_passed() {
    let mut f = facts();
    f.phase = Phase::Deployment;
    f.status = Status::InProduction;
    f.phase_history.push(PhaseSpan {
        phase: Phase::Deployment,
        enter_time: t(2026, 5, 1),
        leave_time: None,
    });
    f.open_condition_due = NaiveDate::from_ymd_opt(2026, 6, 1);
    let (figures, _, _) = reduce(&f);
    assert_eq!(figures.review_due_time, Some(t(2026, 6, 1)));
    assert!(alerts_now(&figures, t(2026, 5, 31), 365).is_empty());
    let kinds: Vec<AlertKind> = alerts_now(&figures, t(2026, 6, 2), 365)
        .iter()
        .map(|a| a.0)
        .collect();
    assert_eq!(
        kinds,
        vec![AlertKind::ReviewOverdue, AlertKind::ConditionOverdue]
    );

    let (figures, _, _) = reduce(&facts());
    assert!(alerts_now(&figures, t(2027, 3, 2), 365).is_empty());
    assert_eq!(
        alerts_now(&figures, t(2027, 3, 3), 365)[0].0,
        AlertKind::GateOverdue
    );
    assert!(figures.gate_watch_since.unwrap() < gate_cutoff(t(2027, 3, 3), 365));
}

#[test]
fn summary_reads_counters() {
    let (_, a, _) = reduce(&facts());
    let mut f = facts();
    f.id = Uuid::from_u128(9);
    f.decisions.push((Phase::Poc, Outcome::Kill));
    f.status = Status::Stopped;
    f.phase_history[1].leave_time = Some(t(2026, 3, 12));
    let (_, b, _) = reduce(&f);
    let mut sum = a.clone();
    for (k, v) in b {
        *sum.entry(k).or_default() += v;
    }
    let s = summarise(&sum, &[(AlertKind::GateOverdue, 3)], eur());
    assert_eq!(s.project_count, 2);
    assert_eq!(
        s.by_phase_status,
        vec![
            (Phase::Poc, Status::Active, 1),
            (Phase::Poc, Status::Stopped, 1)
        ]
    );
    let poc = &s.funnel[1];
    assert_eq!((poc.entered, poc.decided, poc.killed), (2, 1, 1));
    assert_eq!(poc.kill_rate, "1.0000");
    assert_eq!(s.funnel[0].kill_rate, "0.0000");
    assert_eq!(s.poc_to_production_share, "0.0000");
    assert_eq!(s.time_in_phase[0].median_days, 60);
    assert_eq!(s.time_in_phase[1].stays, 1);
    assert_eq!(s.time_in_phase[1].median_days, 10);
    assert_eq!(s.money.cost.to_string(), "400.00");
    assert_eq!(s.money.net_value.to_string(), "200.00");
    assert_eq!(s.money.roi, "0.500000");
    assert_eq!(s.money.paid_back_projects, 2);
    assert_eq!(
        s.risk_heat_map
            .iter()
            .find(|(p, c, _)| *p == Phase::Poc && *c == Concern::Data)
            .unwrap()
            .2,
        2
    );
    assert_eq!(
        s.alerts
            .iter()
            .find(|(k, _)| *k == AlertKind::GateOverdue)
            .unwrap()
            .1,
        3
    );
}

#[test]
fn a_budget_overrun_is_told_in_the_currency() {
    let f = facts();
    let alerts = static_alerts(&f, 20_000);
    let overrun = alerts
        .iter()
        .find(|a| a.kind == AlertKind::BudgetOverrun)
        .expect("an overrun");
    assert_eq!(
        overrun.reason,
        "costs of EUR 200.00 exceed the budget of EUR 100.00 by EUR 100.00"
    );
}

#[test]
fn cost_centres_show_largest_cost_first_then_by_name() {
    let rows = vec![
        ("CC-2".to_owned(), 500, 1),
        ("".to_owned(), 700, 2),
        ("CC-1".to_owned(), 500, 3),
        ("CC-3".to_owned(), -100, 1),
    ];
    let out = cost_centre_breakdown(rows, eur());
    let order: Vec<(&str, String, i64)> = out
        .iter()
        .map(|c| (c.cost_centre.as_str(), c.cost.to_string(), c.project_count))
        .collect();
    assert_eq!(
        order,
        vec![
            ("", "7.00".to_owned(), 2),
            ("CC-1", "5.00".to_owned(), 3),
            ("CC-2", "5.00".to_owned(), 1),
            ("CC-3", "-1.00".to_owned(), 1),
        ]
    );
}
