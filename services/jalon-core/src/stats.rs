//! Small statistics: Student's t quantiles (for Welch intervals), computed
//! from the regularised incomplete beta function. KPI values are
//! measurements, so floating point is right here; money never comes here.

/// ln Γ(x), Lanczos approximation (g = 7, n = 9), |error| < 1e-13 for x > 0.
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Continued fraction of the incomplete beta function (Numerical Recipes).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..300 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// The regularised incomplete beta function I_x(a, b).
fn inc_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(a, b, x) / a
    } else {
        1.0 - front * beta_cf(b, a, 1.0 - x) / b
    }
}

/// P(T <= t) for Student's t with `df` degrees of freedom (df may be
/// fractional, as Welch's is).
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let x = df / (df + t * t);
    let tail = 0.5 * inc_beta(df / 2.0, 0.5, x);
    if t >= 0.0 { 1.0 - tail } else { tail }
}

/// The `p` quantile of Student's t with `df` degrees of freedom, by
/// bisection on the CDF (to 1e-10).
pub fn t_quantile(p: f64, df: f64) -> f64 {
    let (mut lo, mut hi) = (-1e3, 1e3);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-10 {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// A sample summarised: size, mean, standard deviation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: f64,
    pub mean: f64,
    pub sd: f64,
}

/// Combines summaries of disjoint samples into the summary of their union
/// (exact: within-group and between-group variance).
pub fn combine(parts: &[Summary]) -> Option<Summary> {
    let n: f64 = parts.iter().map(|p| p.n).sum();
    if n < 2.0 {
        return None;
    }
    let mean = parts.iter().map(|p| p.n * p.mean).sum::<f64>() / n;
    let ss: f64 = parts
        .iter()
        .map(|p| (p.n - 1.0) * p.sd * p.sd + p.n * (p.mean - mean).powi(2))
        .sum();
    Some(Summary {
        n,
        mean,
        sd: (ss / (n - 1.0)).sqrt(),
    })
}

/// Welch's two-sided 95% confidence interval for `after.mean -
/// before.mean`: (difference, low, high, degrees of freedom).
pub fn welch_95(before: Summary, after: Summary) -> Option<(f64, f64, f64, f64)> {
    if before.n < 2.0 || after.n < 2.0 {
        return None;
    }
    let (v1, v2) = (before.sd.powi(2) / before.n, after.sd.powi(2) / after.n);
    let se = (v1 + v2).sqrt();
    let diff = after.mean - before.mean;
    if se == 0.0 {
        return Some((diff, diff, diff, f64::INFINITY));
    }
    let df = (v1 + v2).powi(2) / (v1.powi(2) / (before.n - 1.0) + v2.powi(2) / (after.n - 1.0));
    let t = t_quantile(0.975, df);
    Some((diff, diff - t * se, diff + t * se, df))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_the_tables() {
        // Reference values from standard t tables.
        for (df, q) in [
            (1.0, 12.706_204_736),
            (2.0, 4.302_652_730),
            (5.0, 2.570_581_836),
            (10.0, 2.228_138_852),
            (30.0, 2.042_272_456),
            (1000.0, 1.962_339_081),
        ] {
            assert!(
                (t_quantile(0.975, df) - q).abs() < 1e-6,
                "df {df}: {} vs {q}",
                t_quantile(0.975, df)
            );
        }
        assert!((t_cdf(0.0, 7.0) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn combining_summaries_is_exact() {
        // Samples {1,2,3} and {4,5}: union {1..5}, mean 3, sd sqrt(2.5).
        let a = Summary {
            n: 3.0,
            mean: 2.0,
            sd: 1.0,
        };
        let b = Summary {
            n: 2.0,
            mean: 4.5,
            sd: (0.5_f64).sqrt(),
        };
        let u = combine(&[a, b]).unwrap();
        assert!((u.mean - 3.0).abs() < 1e-12);
        assert!((u.sd - 2.5_f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn welch_interval_against_a_worked_example() {
        // Before: n=10, mean 20, sd 4; after: n=12, mean 16, sd 3.
        // se = sqrt(1.6 + 0.75) = 1.532971; df = 2.35^2 / (1.6^2/9 + 0.75^2/11)
        //    = 5.5225 / (0.284444 + 0.051136) = 16.4565; t(0.975, 16.4565) = 2.1140
        // CI = -4 -/+ 3.2407 -> (-7.2407, -0.7593).
        let (diff, lo, hi, df) = welch_95(
            Summary {
                n: 10.0,
                mean: 20.0,
                sd: 4.0,
            },
            Summary {
                n: 12.0,
                mean: 16.0,
                sd: 3.0,
            },
        )
        .unwrap();
        assert!((diff + 4.0).abs() < 1e-12);
        assert!((df - 16.4565).abs() < 1e-3, "{df}");
        assert!((lo + 7.2407).abs() < 2e-3, "{lo}");
        assert!((hi + 0.7593).abs() < 2e-3, "{hi}");
    }
}
