//! Comparing whole sequences (rows = positions), serially or with rayon over all rows.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::dtype::LogitDtype;
use super::error::MetricsError;
use super::row::{compare_checked, RowMetrics};
use super::stats::Stats;

/// The reference and candidate logits of one sequence, each `rows × vocab` row-major.
#[derive(Debug, Clone, Copy)]
pub struct SequencePair<'a> {
    pub reference: &'a [f32],
    pub candidate: &'a [f32],
}

/// Per-position rows and their statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequenceMetrics {
    pub rows: Vec<RowMetrics>,
    pub stats: Stats,
}

impl SequenceMetrics {
    pub fn from_rows(rows: Vec<RowMetrics>) -> SequenceMetrics {
        let stats = Stats::from_rows(&rows);
        SequenceMetrics { rows, stats }
    }
}

/// Compares one sequence row by row.
pub fn compare_sequence(
    reference: &[f32],
    candidate: &[f32],
    vocab: usize,
    dtype: LogitDtype,
) -> Result<SequenceMetrics, MetricsError> {
    let pair = SequencePair {
        reference,
        candidate,
    };
    check(&[pair], vocab)?;
    Ok(SequenceMetrics::from_rows(compare_all(pair, vocab, dtype)))
}

/// Compares many sequences on the calling thread.
pub fn compare_sequences(
    pairs: &[SequencePair<'_>],
    vocab: usize,
    dtype: LogitDtype,
) -> Result<Vec<SequenceMetrics>, MetricsError> {
    check(pairs, vocab)?;
    Ok(pairs
        .iter()
        .map(|&p| SequenceMetrics::from_rows(compare_all(p, vocab, dtype)))
        .collect())
}

/// Compares many sequences with rayon over all their rows. Rows are independent and every
/// reduction runs afterwards in sequence order, so results are identical for any thread count
/// (and to [`compare_sequences`]).
pub fn compare_sequences_par(
    pairs: &[SequencePair<'_>],
    vocab: usize,
    dtype: LogitDtype,
) -> Result<Vec<SequenceMetrics>, MetricsError> {
    check(pairs, vocab)?;
    let tasks: Vec<(usize, usize)> = pairs
        .iter()
        .enumerate()
        .flat_map(|(s, p)| (0..p.reference.len() / vocab).map(move |j| (s, j)))
        .collect();
    let mut rows: Vec<RowMetrics> = tasks
        .par_iter()
        .map(|&(s, j)| {
            let span = j * vocab..(j + 1) * vocab;
            compare_checked(
                &pairs[s].reference[span.clone()],
                &pairs[s].candidate[span],
                dtype,
            )
        })
        .collect();
    let mut out = Vec::with_capacity(pairs.len());
    for p in pairs.iter().rev() {
        let n = p.reference.len() / vocab;
        let tail = rows.split_off(rows.len() - n);
        out.push(SequenceMetrics::from_rows(tail));
    }
    out.reverse();
    Ok(out)
}

/// The statistics over many sequences, in their order.
pub fn aggregate(sequences: &[SequenceMetrics]) -> Stats {
    Stats::merge(sequences.iter().map(|s| &s.stats))
}

fn compare_all(p: SequencePair<'_>, vocab: usize, dtype: LogitDtype) -> Vec<RowMetrics> {
    p.reference
        .chunks_exact(vocab)
        .zip(p.candidate.chunks_exact(vocab))
        .map(|(r, c)| compare_checked(r, c, dtype))
        .collect()
}

fn check(pairs: &[SequencePair<'_>], vocab: usize) -> Result<(), MetricsError> {
    if vocab == 0 {
        return Err(MetricsError::EmptyVocab);
    }
    if u32::try_from(vocab).is_err() {
        return Err(MetricsError::VocabTooLarge(vocab));
    }
    for p in pairs {
        if p.reference.len() != p.candidate.len() {
            return Err(MetricsError::LengthMismatch {
                reference: p.reference.len(),
                candidate: p.candidate.len(),
            });
        }
        if p.reference.len() % vocab != 0 {
            return Err(MetricsError::RaggedRows {
                len: p.reference.len(),
                vocab,
            });
        }
    }
    Ok(())
}
