//! Numerics metrics of the analyzer: comparing a reference and a candidate logits row (and
//! sequences of them), aggregating, and applying equivalence policies.
//!
//! Every statistic is computed in f64 from the stored f32 values. The hot path
//! ([`compare_rows`]) allocates nothing: identical rows get a bitwise compare and one top-5
//! scan (KL = 0, no exp work); differing rows get top-5 scans, a |Δ| pass and one softmax pass
//! for KL with a vectorised f64 exp. Results never depend on the CPU's vector width or on the
//! thread count.
//! Presentation (tables, charts, text) lives elsewhere; only [`FailReason`]'s `Display`
//! gives the one-line reason a verdict quotes.

mod dtype;
mod error;
mod fastexp;
mod kernels;
mod kl;
mod ladder;
mod nonfinite;
mod policy;
mod row;
mod sequence;
mod stats;
mod topk;

#[cfg(test)]
mod tests;

pub use dtype::{LogitDtype, NEAR_TIE_ULPS};
pub use error::{MetricsError, ParseNameError};
pub use fastexp::{exp as fast_exp, exp_m1 as fast_exp_m1};
pub use ladder::{median_sorted, KlLadder};
pub use nonfinite::{NonFinite, NonFiniteKind};
pub use policy::{evaluate, FailReason, Overrides, Policy, PolicyOutcome, Thresholds};
pub use row::{compare_rows, Flip, RowMetrics};
pub use sequence::{
    aggregate, compare_sequence, compare_sequences, compare_sequences_par, SequenceMetrics,
    SequencePair,
};
pub use stats::{DiffAt, FlipAt, NonFiniteAt, RowRef, Side, Stats};
pub use topk::{TopEntry, TopK, TOP_K};
