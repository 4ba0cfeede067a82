//! The KL percentile ladder, as llama.cpp's perplexity tool (`--kl-divergence`) reports it.

use serde::{Deserialize, Serialize};

/// Mean ± standard error, then max, 99.9 %, 99 %, 95 %, 90 %, median, 10 %, 5 %, 1 %, min.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KlLadder {
    pub count: u64,
    pub mean: f64,
    pub std_err: f64,
    pub max: f64,
    pub p99_9: f64,
    pub p99: f64,
    pub p95: f64,
    pub p90: f64,
    pub median: f64,
    pub p10: f64,
    pub p5: f64,
    pub p1: f64,
    pub min: f64,
}

impl KlLadder {
    /// None for no values. Values are summed in the given order (deterministic).
    pub fn from_values(values: &[f64]) -> Option<KlLadder> {
        if values.is_empty() {
            return None;
        }
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        // Standard error of the mean, sqrt(Σ(x−mean)² / (n(n−1))), what llama.cpp computes
        // from Σx and Σx² (two-pass here for accuracy). llama.cpp prints 0 for n ≤ 10; spans
        // are often that short, so we report it from n = 2 on.
        let std_err = if n < 2 {
            0.0
        } else {
            let ss: f64 = values.iter().map(|x| (x - mean) * (x - mean)).sum();
            (ss / (n as f64 * (n - 1) as f64)).sqrt()
        };
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(KlLadder {
            count: n as u64,
            mean,
            std_err,
            max: sorted[n - 1],
            p99_9: percentile(&sorted, 0.999),
            p99: percentile(&sorted, 0.99),
            p95: percentile(&sorted, 0.95),
            p90: percentile(&sorted, 0.90),
            median: median_sorted(&sorted),
            p10: percentile(&sorted, 0.10),
            p5: percentile(&sorted, 0.05),
            p1: percentile(&sorted, 0.01),
            min: sorted[0],
        })
    }
}

/// llama.cpp's percentile: linear interpolation at fraction·(n−1) of the sorted values.
fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    let p = fraction * (sorted.len() - 1) as f64;
    let i = p as usize;
    let w = p - i as f64;
    let j = (i + 1).min(sorted.len() - 1);
    (1.0 - w) * sorted[i] + w * sorted[j]
}

/// Median of sorted, non-empty values (the middle two averaged for an even count).
pub fn median_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n.is_multiple_of(2) {
        0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
    } else {
        sorted[n / 2]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_of_known_values() {
        // 0..=100 shuffled: percentiles land on exact values.
        let mut v: Vec<f64> = (0..=100).map(f64::from).collect();
        v.reverse();
        let l = KlLadder::from_values(&v).unwrap();
        assert_eq!((l.count, l.min, l.max, l.median), (101, 0.0, 100.0, 50.0));
        let got = [l.p1, l.p5, l.p10, l.p90, l.p95, l.p99, l.p99_9];
        let want = [1.0, 5.0, 10.0, 90.0, 95.0, 99.0, 99.9];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-9, "{got:?}");
        }
        assert_eq!(l.mean, 50.0);
        // sample std of 0..=100 is sqrt(858.5); std err = that / sqrt(101).
        assert!((l.std_err - (858.5f64 / 101.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn ladder_small_sets() {
        assert_eq!(KlLadder::from_values(&[]), None);
        let l = KlLadder::from_values(&[0.5]).unwrap();
        assert_eq!(
            (l.mean, l.std_err, l.median, l.p1, l.p99_9),
            (0.5, 0.0, 0.5, 0.5, 0.5)
        );
        let l = KlLadder::from_values(&[1.0, 3.0]).unwrap();
        assert_eq!(l.median, 2.0);
        assert!((l.p10 - 1.2).abs() < 1e-12 && (l.p90 - 2.8).abs() < 1e-12);
    }
}
