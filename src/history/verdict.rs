//! The regression verdicts, pure: a new value against the accepted values of prior runs, and a
//! cell's new status against its status then. No storage, no I/O — unit-tested on numbers.
//!
//! A numeric change counts only when it is beyond BOTH
//! - the metric's relative threshold around the baseline (default 5 %), and
//! - once at least [`Rule::min_runs_for_band`] accepted values exist, the spread they show:
//!   [`Rule::noise_mads`] × their median absolute deviation (MAD, unscaled).
//!
//! The baseline is the median of the accepted values (or the one value of a tagged run). The
//! band is `baseline ± max(threshold × |baseline|, noise_mads × MAD)`; a value outside it is
//! `IMPROVED` or `REGRESSED` by the metric's direction.

use serde::{Deserialize, Serialize};

/// The verdict of one metric of one cell against prior runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RegressionVerdict {
    /// Worse than the accepted band (fails the run unless acknowledged).
    Regressed,
    /// The cell passed in the baseline and does not now (or fails differently).
    NewFailure,
    Improved,
    /// The cell failed in the baseline and passes now.
    Fixed,
    WithinNoise,
    /// No accepted run of the same mode, cell, model and device to compare with.
    InsufficientHistory,
}

impl RegressionVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            RegressionVerdict::Regressed => "REGRESSED",
            RegressionVerdict::NewFailure => "NEW_FAILURE",
            RegressionVerdict::Improved => "IMPROVED",
            RegressionVerdict::Fixed => "FIXED",
            RegressionVerdict::WithinNoise => "WITHIN_NOISE",
            RegressionVerdict::InsufficientHistory => "INSUFFICIENT_HISTORY",
        }
    }

    /// Verdicts that fail the run unless an acknowledgement covers them.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            RegressionVerdict::Regressed | RegressionVerdict::NewFailure
        )
    }

    /// A change worth listing (anything but "same as before" and "nothing to compare").
    pub fn is_change(self) -> bool {
        !matches!(
            self,
            RegressionVerdict::WithinNoise | RegressionVerdict::InsufficientHistory
        )
    }
}

impl std::fmt::Display for RegressionVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which way is better for a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Tokens/s.
    HigherIsBetter,
    /// Times, memory.
    LowerIsBetter,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::HigherIsBetter => "higher_is_better",
            Direction::LowerIsBetter => "lower_is_better",
        }
    }
}

/// How far a value may move before it counts as a change.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Relative threshold around the baseline (0.05 = 5 %).
    pub threshold: f64,
    /// Band half-width in MADs of the accepted values, once there are enough of them.
    pub noise_mads: f64,
    /// Accepted values needed before their spread is used (fewer: the threshold alone).
    pub min_runs_for_band: usize,
}

pub const DEFAULT_THRESHOLD: f64 = 0.05;
pub const DEFAULT_NOISE_MADS: f64 = 3.0;
pub const DEFAULT_MIN_RUNS_FOR_BAND: usize = 3;

impl Default for Rule {
    fn default() -> Self {
        Rule {
            threshold: DEFAULT_THRESHOLD,
            noise_mads: DEFAULT_NOISE_MADS,
            min_runs_for_band: DEFAULT_MIN_RUNS_FOR_BAND,
        }
    }
}

/// What set the band's width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BandFrom {
    Threshold,
    /// The accepted runs' spread was wider than the threshold.
    Spread,
}

impl BandFrom {
    pub fn as_str(self) -> &'static str {
        match self {
            BandFrom::Threshold => "threshold",
            BandFrom::Spread => "spread",
        }
    }
}

/// A numeric metric judged against its history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judgement {
    /// None without history.
    pub baseline: Option<f64>,
    /// (new − baseline) / |baseline|; None without history or when the baseline is 0.
    pub change: Option<f64>,
    /// The accepted band [lo, hi].
    pub band: Option<(f64, f64)>,
    pub band_from: Option<BandFrom>,
    pub verdict: RegressionVerdict,
}

/// Median of finite values; None when there are none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(crate::metrics::median_sorted(&v))
}

/// Median absolute deviation from the median (unscaled); None when there are no values.
pub fn mad(values: &[f64]) -> Option<f64> {
    let m = median(values)?;
    let dev: Vec<f64> = values
        .iter()
        .filter(|x| x.is_finite())
        .map(|x| (x - m).abs())
        .collect();
    median(&dev)
}

/// Judges `new` against the accepted values `history` (any order; non-finite ones ignored).
pub fn judge(history: &[f64], new: f64, direction: Direction, rule: &Rule) -> Judgement {
    let finite: Vec<f64> = history.iter().copied().filter(|x| x.is_finite()).collect();
    let Some(baseline) = median(&finite) else {
        return Judgement {
            baseline: None,
            change: None,
            band: None,
            band_from: None,
            verdict: RegressionVerdict::InsufficientHistory,
        };
    };
    let by_threshold = rule.threshold.abs() * baseline.abs();
    let by_spread = if finite.len() >= rule.min_runs_for_band {
        mad(&finite).map(|m| rule.noise_mads * m)
    } else {
        None
    };
    let (half, band_from) = match by_spread {
        Some(s) if s > by_threshold => (s, BandFrom::Spread),
        _ => (by_threshold, BandFrom::Threshold),
    };
    let band = (baseline - half, baseline + half);
    let change = (baseline != 0.0).then(|| (new - baseline) / baseline.abs());
    let verdict = if !new.is_finite() {
        // A metric that stopped being a number (0 s decode → ∞ tokens/s is filtered earlier)
        // is worse whichever way is better.
        RegressionVerdict::Regressed
    } else if new >= band.0 && new <= band.1 {
        RegressionVerdict::WithinNoise
    } else {
        let higher = new > band.1;
        match (direction, higher) {
            (Direction::HigherIsBetter, true) | (Direction::LowerIsBetter, false) => {
                RegressionVerdict::Improved
            }
            _ => RegressionVerdict::Regressed,
        }
    };
    Judgement {
        baseline: Some(baseline),
        change,
        band: Some(band),
        band_from: Some(band_from),
        verdict,
    }
}

/// A cell's status now against its status in the baseline run (`None`: not in it).
/// `passed` says whether a status counts as a pass (PASS_EQUIV, OK).
pub fn judge_status(
    baseline: Option<&str>,
    new: &str,
    passed: impl Fn(&str) -> bool,
) -> RegressionVerdict {
    let Some(old) = baseline else {
        return RegressionVerdict::InsufficientHistory;
    };
    match (passed(old), passed(new)) {
        (true, true) => RegressionVerdict::WithinNoise,
        (true, false) => RegressionVerdict::NewFailure,
        (false, true) => RegressionVerdict::Fixed,
        // Failing before and now: the same failure is no news, a different one is.
        (false, false) if old == new => RegressionVerdict::WithinNoise,
        (false, false) => RegressionVerdict::NewFailure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RegressionVerdict::*;

    const HI: Direction = Direction::HigherIsBetter;
    const LO: Direction = Direction::LowerIsBetter;

    fn rule() -> Rule {
        Rule::default()
    }

    #[test]
    fn median_and_mad() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 1.0]), Some(1.0));
        // |x − 2| = 1, 0, 1, 8 → median 1.
        assert_eq!(mad(&[1.0, 2.0, 3.0, 10.0]), Some(1.0));
        assert_eq!(mad(&[5.0, 5.0, 5.0]), Some(0.0));
    }

    #[test]
    fn no_history_is_insufficient() {
        let j = judge(&[], 100.0, HI, &rule());
        assert_eq!(j.verdict, InsufficientHistory);
        assert_eq!(j.baseline, None);
        assert_eq!(j.band, None);
        let j = judge(&[f64::NAN], 100.0, HI, &rule());
        assert_eq!(j.verdict, InsufficientHistory);
    }

    #[test]
    fn one_run_is_enough_for_the_threshold_test() {
        let j = judge(&[100.0], 94.0, HI, &rule());
        assert_eq!(j.verdict, Regressed);
        assert_eq!(j.baseline, Some(100.0));
        assert!((j.change.unwrap() + 0.06).abs() < 1e-12);
        assert_eq!(j.band, Some((95.0, 105.0)));
        assert_eq!(j.band_from, Some(BandFrom::Threshold));
        assert_eq!(judge(&[100.0], 96.0, HI, &rule()).verdict, WithinNoise);
        assert_eq!(judge(&[100.0], 106.0, HI, &rule()).verdict, Improved);
    }

    #[test]
    fn the_threshold_edge_is_inside() {
        assert_eq!(judge(&[100.0], 95.0, HI, &rule()).verdict, WithinNoise);
        assert_eq!(judge(&[100.0], 105.0, LO, &rule()).verdict, WithinNoise);
    }

    #[test]
    fn directions() {
        // Tokens/s: lower is worse. Times and memory: higher is worse.
        assert_eq!(judge(&[100.0], 50.0, HI, &rule()).verdict, Regressed);
        assert_eq!(judge(&[100.0], 150.0, HI, &rule()).verdict, Improved);
        assert_eq!(judge(&[1.0], 2.0, LO, &rule()).verdict, Regressed);
        assert_eq!(judge(&[1.0], 0.5, LO, &rule()).verdict, Improved);
    }

    #[test]
    fn per_metric_threshold() {
        let loose = Rule {
            threshold: 0.2,
            ..rule()
        };
        assert_eq!(judge(&[100.0], 85.0, HI, &loose).verdict, WithinNoise);
        assert_eq!(judge(&[100.0], 79.0, HI, &loose).verdict, Regressed);
    }

    #[test]
    fn the_spread_widens_the_band_only_from_three_runs() {
        // Noisy history: MAD of [80, 100, 120] = 20 → band ± 60 once n ≥ 3.
        let noisy = [80.0, 100.0, 120.0];
        let j = judge(&noisy, 60.0, HI, &rule());
        assert_eq!(j.verdict, WithinNoise);
        assert_eq!(j.band, Some((40.0, 160.0)));
        assert_eq!(j.band_from, Some(BandFrom::Spread));
        assert_eq!(judge(&noisy, 39.0, HI, &rule()).verdict, Regressed);
        // n = 2 < 3: the threshold alone, around the median 90.
        let j = judge(&[80.0, 100.0], 60.0, HI, &rule());
        assert_eq!(j.verdict, Regressed);
        assert_eq!(j.band_from, Some(BandFrom::Threshold));
        assert_eq!(j.baseline, Some(90.0));
    }

    #[test]
    fn a_tight_spread_never_narrows_below_the_threshold() {
        // Identical accepted values: MAD 0; the 5 % threshold still applies.
        let j = judge(&[100.0; 5], 97.0, HI, &rule());
        assert_eq!(j.verdict, WithinNoise);
        assert_eq!(j.band_from, Some(BandFrom::Threshold));
    }

    #[test]
    fn the_baseline_is_the_median_so_one_outlier_does_not_move_it() {
        let j = judge(&[100.0, 101.0, 99.0, 100.0, 10.0], 100.0, HI, &rule());
        assert_eq!(j.baseline, Some(100.0));
        assert_eq!(j.verdict, WithinNoise);
    }

    #[test]
    fn zero_baseline_has_no_relative_change() {
        let j = judge(&[0.0], 0.0, LO, &rule());
        assert_eq!(j.verdict, WithinNoise);
        assert_eq!(j.change, None);
        assert_eq!(judge(&[0.0], 1.0, LO, &rule()).verdict, Regressed);
    }

    #[test]
    fn a_non_finite_new_value_is_a_regression() {
        assert_eq!(judge(&[1.0], f64::NAN, LO, &rule()).verdict, Regressed);
        assert_eq!(judge(&[1.0], f64::INFINITY, HI, &rule()).verdict, Regressed);
    }

    #[test]
    fn status_transitions() {
        let passed = |s: &str| s == "PASS_EQUIV" || s == "OK";
        assert_eq!(
            judge_status(None, "PASS_EQUIV", passed),
            InsufficientHistory
        );
        assert_eq!(
            judge_status(Some("PASS_EQUIV"), "PASS_EQUIV", passed),
            WithinNoise
        );
        assert_eq!(judge_status(Some("PASS_EQUIV"), "OK", passed), WithinNoise);
        assert_eq!(
            judge_status(Some("PASS_EQUIV"), "FAIL_OOM", passed),
            NewFailure
        );
        assert_eq!(judge_status(Some("FAIL_OOM"), "PASS_EQUIV", passed), Fixed);
        assert_eq!(
            judge_status(Some("FAIL_OOM"), "FAIL_OOM", passed),
            WithinNoise
        );
        assert_eq!(
            judge_status(Some("FAIL_OOM"), "FAIL_TIMEOUT", passed),
            NewFailure
        );
    }

    #[test]
    fn failures_and_changes() {
        assert!(Regressed.is_failure() && NewFailure.is_failure());
        assert!(!Improved.is_failure() && !Fixed.is_failure() && !WithinNoise.is_failure());
        assert!(!InsufficientHistory.is_failure());
        assert!(Improved.is_change() && Fixed.is_change() && Regressed.is_change());
        assert!(!WithinNoise.is_change() && !InsufficientHistory.is_change());
        assert_eq!(
            serde_json::to_string(&InsufficientHistory).unwrap(),
            "\"INSUFFICIENT_HISTORY\""
        );
    }
}
