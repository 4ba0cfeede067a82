//! Typed errors of the metrics module.

use thiserror::Error;

/// Why a comparison could not be computed (shape problems only: values are never an error,
/// NaN/Inf are reported as findings).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MetricsError {
    #[error("reference row has {reference} values but candidate row has {candidate}")]
    LengthMismatch { reference: usize, candidate: usize },
    #[error("vocab must be at least 1")]
    EmptyVocab,
    #[error("vocab {0} does not fit token ids in u32")]
    VocabTooLarge(usize),
    #[error("{len} values are not a whole number of rows of vocab {vocab}")]
    RaggedRows { len: usize, vocab: usize },
}

/// A policy or dtype name that is not one of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown {what} {given:?} (expected one of: {expected})")]
pub struct ParseNameError {
    pub what: &'static str,
    pub given: String,
    pub expected: &'static str,
}
