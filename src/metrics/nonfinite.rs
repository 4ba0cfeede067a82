//! NaN/Inf in a row: what was found, and the (rare, scalar) comparison of such rows.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::dtype::LogitDtype;
use super::kl::kl_scalar;
use super::row::{finish_row, RowMetrics};
use super::topk::TopK;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NonFiniteKind {
    Nan,
    PosInf,
    NegInf,
}

impl NonFiniteKind {
    fn of(x: f32) -> Option<Self> {
        if x.is_nan() {
            Some(NonFiniteKind::Nan)
        } else if x == f32::INFINITY {
            Some(NonFiniteKind::PosInf)
        } else if x == f32::NEG_INFINITY {
            Some(NonFiniteKind::NegInf)
        } else {
            None
        }
    }
}

impl fmt::Display for NonFiniteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NonFiniteKind::Nan => "NaN",
            NonFiniteKind::PosInf => "+Inf",
            NonFiniteKind::NegInf => "-Inf",
        })
    }
}

/// The non-finite values of one row side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NonFinite {
    pub nan: u32,
    pub pos_inf: u32,
    pub neg_inf: u32,
    /// The lowest id holding a non-finite value, and what it holds.
    pub first_id: u32,
    pub first_kind: NonFiniteKind,
}

impl NonFinite {
    pub fn count(&self) -> u64 {
        u64::from(self.nan) + u64::from(self.pos_inf) + u64::from(self.neg_inf)
    }

    /// None when every value is finite.
    pub fn scan(row: &[f32]) -> Option<NonFinite> {
        let mut found: Option<NonFinite> = None;
        for (id, &x) in row.iter().enumerate() {
            let Some(kind) = NonFiniteKind::of(x) else {
                continue;
            };
            let nf = found.get_or_insert(NonFinite {
                nan: 0,
                pos_inf: 0,
                neg_inf: 0,
                first_id: id as u32,
                first_kind: kind,
            });
            match kind {
                NonFiniteKind::Nan => nf.nan += 1,
                NonFiniteKind::PosInf => nf.pos_inf += 1,
                NonFiniteKind::NegInf => nf.neg_inf += 1,
            }
        }
        found
    }
}

/// Compares a pair of which at least one side holds NaN/Inf. Every statistic is taken over
/// the ids where both sides are finite, and non-finite values never enter a top-5, so all
/// numbers stay finite (and JSON-representable); the flags carry the failure.
pub(crate) fn compare_non_finite(
    r: &[f32],
    c: &[f32],
    bit_exact: bool,
    dtype: LogitDtype,
) -> RowMetrics {
    let both_finite = |i: usize| r[i].is_finite() && c[i].is_finite();
    let mut compared = 0u32;
    let (mut sum_abs, mut max_abs, mut max_abs_id) = (0.0f64, 0.0f64, 0usize);
    for i in (0..r.len()).filter(|&i| both_finite(i)) {
        let d = (f64::from(r[i]) - f64::from(c[i])).abs();
        compared += 1;
        sum_abs += d;
        if d > max_abs {
            max_abs = d;
            max_abs_id = i;
        }
    }
    let kl = kl_scalar(r, c, both_finite);
    let mut top_ref = TopK::default();
    top_ref.offer_finite(r);
    let mut top_cand = TopK::default();
    top_cand.offer_finite(c);
    let mut m = finish_row(r, top_ref, top_cand, dtype);
    m.bit_exact = bit_exact;
    m.compared = compared;
    m.sum_abs_diff = sum_abs;
    m.max_abs_diff = max_abs;
    m.max_abs_diff_id = max_abs_id as u32;
    m.mean_abs_diff = if compared == 0 {
        0.0
    } else {
        sum_abs / f64::from(compared)
    };
    m.kl = kl;
    m.non_finite_ref = NonFinite::scan(r);
    m.non_finite_cand = NonFinite::scan(c);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_counts_kinds_and_first_id() {
        assert_eq!(NonFinite::scan(&[1.0, 2.0]), None);
        let nf =
            NonFinite::scan(&[0.0, f32::NEG_INFINITY, f32::NAN, f32::INFINITY, f32::NAN]).unwrap();
        assert_eq!((nf.nan, nf.pos_inf, nf.neg_inf, nf.count()), (2, 1, 1, 4));
        assert_eq!((nf.first_id, nf.first_kind), (1, NonFiniteKind::NegInf));
    }
}
