//! Metrics of one compared pair of logits rows (reference `r`, candidate `c`).

use serde::{Deserialize, Serialize};

use super::dtype::LogitDtype;
use super::error::MetricsError;
use super::nonfinite::{compare_non_finite, NonFinite};
use super::topk::{TopK, TOP_K};
use super::{kernels, kl};

/// The two argmaxes differ.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Flip {
    /// argmax of the reference row.
    pub ref_id: u32,
    /// argmax of the candidate row.
    pub cand_id: u32,
    /// The reference's logits at those two ids.
    pub ref_logit_at_ref_id: f32,
    pub ref_logit_at_cand_id: f32,
    /// log p_r[ref_id] − log p_r[cand_id] (≥ 0); the log-sum-exp cancels, so it is the logit
    /// difference, exact in f64.
    pub logprob_gap: f64,
    /// The two reference logits are within 4 ULP of the dtype at their magnitude.
    pub near_tie: bool,
}

/// Everything measured on one pair of rows. All numbers are finite.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RowMetrics {
    /// Every value's bits equal (+0 ≠ −0; NaN compared by its bits).
    pub bit_exact: bool,
    /// Ids compared: all of them unless NaN/Inf is present (then the ids finite on both sides).
    pub compared: u32,
    pub max_abs_diff: f64,
    /// Lowest id where |Δ| = `max_abs_diff`.
    pub max_abs_diff_id: u32,
    pub sum_abs_diff: f64,
    pub mean_abs_diff: f64,
    pub top1_agree: bool,
    /// |top5(r) ∩ top5(c)| / 5.
    pub top5_overlap: f64,
    /// KL(p_r ‖ p_c) of the softmaxes, nats.
    pub kl: f64,
    pub top_ref: TopK,
    pub top_cand: TopK,
    pub flip: Option<Flip>,
    pub non_finite_ref: Option<NonFinite>,
    pub non_finite_cand: Option<NonFinite>,
}

impl RowMetrics {
    pub fn has_non_finite(&self) -> bool {
        self.non_finite_ref.is_some() || self.non_finite_cand.is_some()
    }
}

/// Compares one pair of rows. `dtype` is the dtype the logits were computed in (near-ties).
/// Allocates nothing. Identical rows: a bitwise compare and one top-5 scan. Differing rows:
/// top-5 scans, a |Δ| pass and the softmax pass for KL.
/// KL is computed in a cancellation-free form, so it stays accurate (~1e-9 relative) even for
/// f32-noise differences (KL ~1e-13).
pub fn compare_rows(r: &[f32], c: &[f32], dtype: LogitDtype) -> Result<RowMetrics, MetricsError> {
    if r.len() != c.len() {
        return Err(MetricsError::LengthMismatch {
            reference: r.len(),
            candidate: c.len(),
        });
    }
    if r.is_empty() {
        return Err(MetricsError::EmptyVocab);
    }
    if u32::try_from(r.len()).is_err() {
        return Err(MetricsError::VocabTooLarge(r.len()));
    }
    Ok(compare_checked(r, c, dtype))
}

/// [`compare_rows`] for rows already known to be equal-length, non-empty and u32-indexable.
pub(crate) fn compare_checked(r: &[f32], c: &[f32], dtype: LogitDtype) -> RowMetrics {
    if kernels::bits_equal(r, c) {
        let (top, non_finite) = kernels::scan_row(r);
        if non_finite {
            return compare_non_finite(r, c, true, dtype);
        }
        // Identical finite rows: |Δ| = 0 everywhere and KL = 0, no exp work needed.
        let mut m = finish_row(r, top, top, dtype);
        m.bit_exact = true;
        m.compared = r.len() as u32;
        return m;
    }
    let (top_ref, bad_ref) = kernels::scan_row(r);
    let (top_cand, bad_cand) = kernels::scan_row(c);
    if bad_ref || bad_cand {
        return compare_non_finite(r, c, false, dtype);
    }
    let d = kernels::diff_pass(r, c);
    // Finite rows: the argmax logit is the softmax shift that keeps every exp ≤ 1.
    let shift_ref = f64::from(top_ref.as_slice()[0].logit);
    let offset = d.sum_signed / r.len() as f64;
    let kl = if d.max_abs + offset.abs() <= kl::PRECISE_MAX_DELTA {
        let s = kernels::kl_pass(r, c, shift_ref, offset);
        kl::kl_precise(s.sum_exp, s.sum_exp_excess, s.sum_exp_m1)
    } else {
        let shift_cand = f64::from(top_cand.as_slice()[0].logit);
        let s = kernels::lse_pass(r, c, shift_ref, shift_cand);
        kl::kl_lse(
            s.weighted_diff,
            s.sum_exp_ref,
            s.sum_exp_cand,
            shift_ref,
            shift_cand,
        )
    };
    let mut m = finish_row(r, top_ref, top_cand, dtype);
    m.compared = r.len() as u32;
    m.sum_abs_diff = d.sum_abs;
    m.max_abs_diff = d.max_abs;
    m.max_abs_diff_id = d.max_abs_id as u32;
    m.mean_abs_diff = d.sum_abs / r.len() as f64;
    m.kl = kl;
    m
}

/// The row's fields that follow from the two top-5 lists; the rest zero/none.
pub(crate) fn finish_row(
    r: &[f32],
    top_ref: TopK,
    top_cand: TopK,
    dtype: LogitDtype,
) -> RowMetrics {
    let (a, b) = (top_ref.argmax(), top_cand.argmax());
    let flip = match (a, b) {
        (Some(a), Some(b)) if a != b => {
            let (ra, rb) = (r[a as usize], r[b as usize]);
            // Undefined when the reference holds NaN/Inf at the candidate's pick; that row is
            // flagged non-finite anyway.
            (ra.is_finite() && rb.is_finite()).then(|| Flip {
                ref_id: a,
                cand_id: b,
                ref_logit_at_ref_id: ra,
                ref_logit_at_cand_id: rb,
                logprob_gap: f64::from(ra) - f64::from(rb),
                near_tie: dtype.is_near_tie(ra, rb),
            })
        }
        _ => None,
    };
    RowMetrics {
        bit_exact: false,
        compared: 0,
        max_abs_diff: 0.0,
        max_abs_diff_id: 0,
        sum_abs_diff: 0.0,
        mean_abs_diff: 0.0,
        top1_agree: a == b,
        top5_overlap: top_ref.common_ids(&top_cand) as f64 / TOP_K as f64,
        kl: 0.0,
        top_ref,
        top_cand,
        flip,
        non_finite_ref: None,
        non_finite_cand: None,
    }
}
