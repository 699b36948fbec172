use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::*;
use crate::values::CurrencyCode;

fn kpi(direction: Direction, target: Option<f64>) -> Kpi {
    let now = Utc::now();
    Kpi {
        id: Uuid::nil(),
        organisation_id: Uuid::nil(),
        project_id: Uuid::nil(),
        name: "waiting time".into(),
        description: String::new(),
        unit: "seconds".into(),
        unit_kind: UnitKind::Duration,
        direction,
        category: Category::Customer,
        primary: true,
        target,
        method: String::new(),
        cadence: Some(Cadence::Monthly),
        value_per_unit: None,
        volume_per_period: None,
        archived: false,
        create_time: now,
        update_time: now,
        version: 1,
    }
}

fn m(stage: Stage, value: f64, y: i32, mo: u32, d: u32) -> Measurement {
    Measurement {
        id: Uuid::now_v7(),
        kpi_id: Uuid::nil(),
        value,
        measure_time: Utc.with_ymd_and_hms(y, mo, d, 12, 0, 0).unwrap(),
        period_start: None,
        period_end: None,
        stage,
        sample_size: None,
        std_dev: None,
        source: Source::Manual,
        external_ref: None,
        late_baseline: false,
    }
}

#[test]
fn lower_is_better_improvements_are_positive() {
    // Waiting time: baseline mean (120 + 100) / 2 = 110 s; March mean
    // (80 + 70) / 2 = 75 s; improvement 35 s, 31.8% of the baseline; target
    // 60 s: attainment (75 - 110) / (60 - 110) = 0.7.
    let k = kpi(Direction::LowerIsBetter, Some(60.0));
    let ms = vec![
        m(Stage::Baseline, 120.0, 2026, 1, 5),
        m(Stage::Baseline, 100.0, 2026, 1, 20),
        m(Stage::PostDeployment, 90.0, 2026, 2, 10),
        m(Stage::PostDeployment, 80.0, 2026, 3, 2),
        m(Stage::PostDeployment, 70.0, 2026, 3, 28),
    ];
    let r = result(&k, &ms);
    assert_eq!(r.baseline, Some(110.0));
    assert_eq!(r.current, Some(75.0));
    assert_eq!(r.current_period.as_deref(), Some("2026-03"));
    assert_eq!(r.series.len(), 2);
    assert_eq!(r.series[0].period, "2026-02");
    assert_eq!((r.series[0].mean, r.series[0].count), (90.0, 1));
    assert_eq!(r.absolute_change, Some(35.0));
    assert!((r.relative_change.unwrap() - 35.0 / 110.0).abs() < 1e-12);
    assert!((r.target_attainment.unwrap() - 0.7).abs() < 1e-12);
    assert_eq!(r.target_met, Some(false));
    assert!(r.significance.is_none(), "no sample sizes, no interval");
}

#[test]
fn higher_is_better_and_targets() {
    // Automated qualification rate: 20% -> 45%, target 40%: met, attainment 1.25.
    let k = kpi(Direction::HigherIsBetter, Some(40.0));
    let r = result(
        &k,
        &[
            m(Stage::Baseline, 20.0, 2026, 1, 1),
            m(Stage::PostDeployment, 45.0, 2026, 6, 1),
        ],
    );
    assert_eq!(r.absolute_change, Some(25.0));
    assert_eq!(r.target_met, Some(true));
    assert!((r.target_attainment.unwrap() - 1.25).abs() < 1e-12);
}

#[test]
fn welch_interval_is_signed_by_direction() {
    // Same worked example as stats: before n=10 mean 20 sd 4, after n=12
    // mean 16 sd 3; lower is better: improvement 4, CI (0.7593, 7.2407).
    let k = kpi(Direction::LowerIsBetter, None);
    let mut before = m(Stage::Baseline, 20.0, 2026, 1, 1);
    before.sample_size = Some(10);
    before.std_dev = Some(4.0);
    let mut after = m(Stage::PostDeployment, 16.0, 2026, 5, 1);
    after.sample_size = Some(12);
    after.std_dev = Some(3.0);
    let s = result(&k, &[before.clone(), after.clone()])
        .significance
        .unwrap();
    assert!((s.improvement - 4.0).abs() < 1e-12);
    assert!((s.low - 0.7593).abs() < 2e-3, "{s:?}");
    assert!((s.high - 7.2407).abs() < 2e-3, "{s:?}");
    assert!(s.significant);
    // Higher is better: the same drop is a significant deterioration.
    let k = kpi(Direction::HigherIsBetter, None);
    let s = result(&k, &[before, after]).significance.unwrap();
    assert!((s.improvement + 4.0).abs() < 1e-12);
    assert!(s.high < 0.0 && !s.significant);
}

#[test]
fn weekly_and_quarterly_periods() {
    let t = Utc.with_ymd_and_hms(2027, 3, 15, 0, 0, 0).unwrap();
    assert_eq!(period_of(Cadence::Weekly, t), "2027-W11");
    assert_eq!(period_of(Cadence::Quarterly, t), "2027-Q1");
    assert_eq!(period_of(Cadence::Monthly, t), "2027-03");
}

#[test]
fn underperformance_needs_two_bad_periods() {
    let k = kpi(Direction::LowerIsBetter, Some(60.0));
    let base = m(Stage::Baseline, 100.0, 2026, 1, 1);
    let good_then_bad = [
        base.clone(),
        m(Stage::PostDeployment, 55.0, 2026, 2, 1),
        m(Stage::PostDeployment, 110.0, 2026, 3, 1),
    ];
    assert!(
        !underperforming(&k, &result(&k, &good_then_bad)),
        "one bad period is not a trend"
    );
    let two_bad = [
        base.clone(),
        m(Stage::PostDeployment, 105.0, 2026, 2, 1),
        m(Stage::PostDeployment, 110.0, 2026, 3, 1),
    ];
    assert!(underperforming(&k, &result(&k, &two_bad)));
    // Better than baseline but below target twice: flagged too.
    let below_target = [
        base,
        m(Stage::PostDeployment, 80.0, 2026, 2, 1),
        m(Stage::PostDeployment, 75.0, 2026, 3, 1),
    ];
    assert!(underperforming(&k, &result(&k, &below_target)));
}

#[test]
fn values_are_checked_against_their_unit() {
    assert!(check_value(UnitKind::Percentage, 101.0, None, None).is_err());
    assert!(check_value(UnitKind::Percentage, 100.0, None, None).is_ok());
    assert!(check_value(UnitKind::Duration, f64::NAN, None, None).is_err());
    assert!(check_value(UnitKind::Count, f64::INFINITY, None, None).is_err());
    assert!(check_value(UnitKind::Count, 3.0, Some(0), None).is_err());
    assert!(check_value(UnitKind::Count, 3.0, Some(5), Some(-1.0)).is_err());
}

#[test]
fn stages_follow_the_phase_history() {
    let t = |d| Utc.with_ymd_and_hms(2026, 1, d, 0, 0, 0).unwrap();
    let history = vec![
        PhaseSpan {
            phase: Phase::Ideation,
            enter_time: t(1),
            leave_time: Some(t(10)),
        },
        PhaseSpan {
            phase: Phase::Poc,
            enter_time: t(10),
            leave_time: None,
        },
    ];
    assert_eq!(check_stage(Stage::Baseline, t(5), &history), Ok(false));
    assert_eq!(
        check_stage(Stage::Baseline, t(12), &history),
        Ok(true),
        "late baseline flagged"
    );
    assert!(check_stage(Stage::PostDeployment, t(12), &history).is_err());
    let mut deployed = history.clone();
    deployed.push(PhaseSpan {
        phase: Phase::Deployment,
        enter_time: t(20),
        leave_time: None,
    });
    assert!(check_stage(Stage::PostDeployment, t(19), &deployed).is_err());
    assert_eq!(
        check_stage(Stage::PostDeployment, t(21), &deployed),
        Ok(false)
    );
}

#[test]
fn a_monetised_gain() {
    // 30 s saved per call x EUR 0.50 per second x 40,000 calls a month
    // = EUR 600,000.00 a month.
    let mut k = kpi(Direction::LowerIsBetter, None);
    let eur = CurrencyCode::parse("EUR").unwrap();
    k.value_per_unit = Some(Money::parse("0.50", eur).unwrap());
    k.volume_per_period = Some(Decimal::from(40_000));
    assert_eq!(
        monetised(&k, 30.0).map(|m| m.minor_units()),
        Some(60_000_000)
    );
    // 0.123 s x 0.50 x 3 = 0.1845 -> 0.18 (half-even).
    k.volume_per_period = Some(Decimal::from(3));
    assert_eq!(
        monetised(&k, 0.123).map(|m| m.to_string()),
        Some("0.18".into())
    );
    k.value_per_unit = None;
    assert_eq!(monetised(&k, 30.0), None);
}

#[test]
fn a_monetised_gain_beyond_64_bits_saturates_instead_of_panicking() {
    let mut k = kpi(Direction::HigherIsBetter, None);
    let eur = CurrencyCode::parse("EUR").unwrap();
    k.value_per_unit = Some(Money::parse("9999999999999.99", eur).unwrap());
    k.volume_per_period = Some(Decimal::from(1_000_000_000_i64));
    assert_eq!(
        monetised(&k, 1e300).map(|m| m.minor_units()),
        Some(i64::MAX)
    );
    assert_eq!(
        monetised(&k, -1e12).map(|m| m.minor_units()),
        Some(i64::MIN)
    );
    assert_eq!(monetised(&k, 1e-300).map(|m| m.minor_units()), Some(0));
    assert_eq!(monetised(&k, f64::NAN), None);
}

fn facts(
    primary: bool,
    target: Option<f64>,
    baselines: usize,
    poc: Option<f64>,
    cadence: Option<Cadence>,
) -> KpiFacts {
    KpiFacts {
        name: "k".into(),
        category: Category::Quality,
        primary,
        direction: Direction::HigherIsBetter,
        target,
        cadence,
        baseline_count: baselines,
        poc_result: poc,
    }
}

#[test]
fn kpi_gate_criteria() {
    use crate::gate::{CriterionResult, evaluate};
    let project = crate::gate::tests_support::project(Phase::Ideation);
    let run = |from: Phase, kpis: &[KpiFacts]| {
        let ctx = GateContext {
            project: &project,
            from,
            items: &[],
            sponsor_active: true,
            open_conditions: 0,
            kpis,
        };
        evaluate(&gate_criteria(), &ctx, &[])
            .into_iter()
            .filter(|e| e.result == CriterionResult::Fail)
            .map(|e| e.key)
            .collect::<Vec<_>>()
    };
    assert_eq!(run(Phase::Ideation, &[]), vec!["KPI_BASELINE"]);
    assert_eq!(
        run(Phase::Ideation, &[facts(true, None, 1, None, None)]),
        vec!["KPI_BASELINE"],
        "a target is needed"
    );
    assert!(run(Phase::Ideation, &[facts(true, Some(1.0), 1, None, None)]).is_empty());
    assert_eq!(
        run(Phase::Poc, &[facts(true, Some(80.0), 1, None, None)]),
        vec!["POC_RESULT"]
    );
    assert_eq!(
        run(Phase::Poc, &[facts(true, Some(80.0), 1, Some(72.0), None)]),
        vec!["POC_RESULT"],
        "below target"
    );
    assert!(run(Phase::Poc, &[facts(true, Some(80.0), 1, Some(81.0), None)]).is_empty());
    assert_eq!(
        run(
            Phase::Industrialisation,
            &[facts(true, None, 1, None, None)]
        ),
        vec!["KPI_CADENCE"]
    );
    assert!(
        run(
            Phase::Industrialisation,
            &[facts(true, None, 1, None, Some(Cadence::Monthly))]
        )
        .is_empty()
    );
}

#[test]
fn derived_benefits_per_period() {
    // Baseline 110 s; February 90 s (20 s saved), March 75 s (35 s saved);
    // EUR 0.50 per second, 1,000 calls a month: EUR 10,000 then 17,500.
    let mut k = kpi(Direction::LowerIsBetter, None);
    let eur = CurrencyCode::parse("EUR").unwrap();
    k.value_per_unit = Some(Money::parse("0.50", eur).unwrap());
    k.volume_per_period = Some(Decimal::from(1000));
    let ms = vec![
        m(Stage::Baseline, 110.0, 2026, 1, 5),
        m(Stage::PostDeployment, 90.0, 2026, 2, 10),
        m(Stage::PostDeployment, 75.0, 2026, 3, 2),
    ];
    let lines = derived_benefits(&k, &result(&k, &ms));
    let shown: Vec<(String, String)> = lines
        .iter()
        .map(|(d, m)| (d.to_string(), m.to_string()))
        .collect();
    assert_eq!(
        shown,
        vec![
            ("2026-02-10".to_owned(), "10000.00".to_owned()),
            ("2026-03-02".to_owned(), "17500.00".to_owned())
        ]
    );
}

#[test]
fn with_sample_sizes_the_values_are_the_pooled_means_the_interval_is_centred_on() {
    // Baseline: 4.0 over 10 samples and 6.0 over 30: pooled 5.5 (the plain
    // mean of the values would be 5.0). After: 9.0 over 20 and 11.0 over 20:
    // pooled 10.0. The change (4.5) is the interval's centre.
    let k = kpi(Direction::HigherIsBetter, None);
    let sized = |stage, value, n: u64, day| {
        let mut x = m(stage, value, 2026, 3, day);
        x.sample_size = Some(n);
        x.std_dev = Some(1.0);
        x
    };
    let r = result(
        &k,
        &[
            sized(Stage::Baseline, 4.0, 10, 1),
            sized(Stage::Baseline, 6.0, 30, 2),
            sized(Stage::PostDeployment, 9.0, 20, 10),
            sized(Stage::PostDeployment, 11.0, 20, 11),
        ],
    );
    assert!(
        (r.baseline.unwrap() - 5.5).abs() < 1e-12,
        "{:?}",
        r.baseline
    );
    assert!((r.current.unwrap() - 10.0).abs() < 1e-12, "{:?}", r.current);
    let s = r.significance.expect("an interval");
    assert!((r.absolute_change.unwrap() - s.improvement).abs() < 1e-9);
    assert!(((s.low + s.high) / 2.0 - s.improvement).abs() < 1e-9);
    // One measurement without its size: back to the plain mean, no interval.
    let mut plain = m(Stage::Baseline, 8.0, 2026, 3, 3);
    plain.sample_size = None;
    let r = result(
        &k,
        &[
            sized(Stage::Baseline, 4.0, 10, 1),
            plain,
            sized(Stage::PostDeployment, 9.0, 20, 10),
        ],
    );
    assert_eq!(r.baseline, Some(6.0));
    assert!(r.significance.is_none());
}
