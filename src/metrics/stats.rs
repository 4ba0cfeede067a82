//! Statistics over many compared rows: one sequence (rows = positions 0..span), or the merge
//! of many sequences/cells. The same struct serves both, so merges compose.

use serde::{Deserialize, Serialize};

use super::ladder::KlLadder;
use super::nonfinite::NonFinite;
use super::row::{Flip, RowMetrics};
use super::topk::TOP_K;

/// A row of a [`Stats`]: `sequence` is the index among the merged parts, in merge order (0 in
/// one-sequence stats); `position` the row within that sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowRef {
    pub sequence: u32,
    pub position: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffAt {
    pub sequence: u32,
    pub position: u32,
    pub id: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FlipAt {
    pub sequence: u32,
    pub position: u32,
    #[serde(flatten)]
    pub flip: Flip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Reference,
    Candidate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NonFiniteAt {
    pub sequence: u32,
    pub position: u32,
    pub side: Side,
    #[serde(flatten)]
    pub values: NonFinite,
}

/// Raw counts and per-row series (mergeable) plus the figures derived from them.
/// With no rows: agreements are 1, differences and KL 0, `kl` None.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub sequences: u32,
    pub rows: u64,
    pub rows_per_sequence: Vec<u32>,
    pub bit_exact_rows: u64,
    pub all_bit_exact: bool,
    /// Earliest position not bit-exact (over sequences: the lowest position, then sequence).
    pub first_divergent: Option<RowRef>,
    /// Sequences with at least one row not bit-exact.
    pub divergent_sequences: u32,
    /// Values compared (ids finite on both sides).
    pub compared_values: u64,
    pub max_abs_diff: f64,
    /// First row (in order) and lowest id reaching `max_abs_diff`; None when it is 0.
    pub max_abs_diff_at: Option<DiffAt>,
    pub sum_abs_diff: f64,
    pub mean_abs_diff: f64,
    pub top1_agree_rows: u64,
    pub top1_agreement: f64,
    /// Σ |top5(r) ∩ top5(c)| over rows.
    pub top5_common: u64,
    pub top5_overlap: f64,
    pub mean_kl: f64,
    pub kl: Option<KlLadder>,
    /// Per-row series in order (sequence by sequence): what the report charts.
    pub max_abs_diff_per_row: Vec<f64>,
    pub kl_per_row: Vec<f64>,
    pub flips: Vec<FlipAt>,
    pub non_finite: Vec<NonFiniteAt>,
}

impl Default for Stats {
    fn default() -> Self {
        let mut s = Stats {
            sequences: 0,
            rows: 0,
            rows_per_sequence: Vec::new(),
            bit_exact_rows: 0,
            all_bit_exact: true,
            first_divergent: None,
            divergent_sequences: 0,
            compared_values: 0,
            max_abs_diff: 0.0,
            max_abs_diff_at: None,
            sum_abs_diff: 0.0,
            mean_abs_diff: 0.0,
            top1_agree_rows: 0,
            top1_agreement: 1.0,
            top5_common: 0,
            top5_overlap: 1.0,
            mean_kl: 0.0,
            kl: None,
            max_abs_diff_per_row: Vec::new(),
            kl_per_row: Vec::new(),
            flips: Vec::new(),
            non_finite: Vec::new(),
        };
        s.derive();
        s
    }
}

impl Stats {
    /// Stats of one sequence whose rows are positions 0, 1, ….
    pub fn from_rows(rows: &[RowMetrics]) -> Stats {
        let mut s = Stats {
            sequences: 1,
            rows_per_sequence: vec![rows.len() as u32],
            ..Stats::default()
        };
        for (pos, row) in rows.iter().enumerate() {
            let position = pos as u32;
            s.rows += 1;
            if row.bit_exact {
                s.bit_exact_rows += 1;
            } else if s.first_divergent.is_none() {
                s.first_divergent = Some(RowRef {
                    sequence: 0,
                    position,
                });
            }
            s.compared_values += u64::from(row.compared);
            s.sum_abs_diff += row.sum_abs_diff;
            if row.max_abs_diff > s.max_abs_diff {
                s.max_abs_diff = row.max_abs_diff;
                s.max_abs_diff_at = Some(DiffAt {
                    sequence: 0,
                    position,
                    id: row.max_abs_diff_id,
                });
            }
            s.top1_agree_rows += u64::from(row.top1_agree);
            // top5_overlap is k/5 for an integer k; round away the division.
            s.top5_common += (row.top5_overlap * TOP_K as f64).round() as u64;
            s.max_abs_diff_per_row.push(row.max_abs_diff);
            s.kl_per_row.push(row.kl);
            if let Some(flip) = row.flip {
                s.flips.push(FlipAt {
                    sequence: 0,
                    position,
                    flip,
                });
            }
            for (side, nf) in [
                (Side::Reference, row.non_finite_ref),
                (Side::Candidate, row.non_finite_cand),
            ] {
                if let Some(values) = nf {
                    s.non_finite.push(NonFiniteAt {
                        sequence: 0,
                        position,
                        side,
                        values,
                    });
                }
            }
        }
        s.divergent_sequences = u32::from(s.first_divergent.is_some());
        s.derive();
        s
    }

    /// Merges stats in the given order; part k's sequences are renumbered after those of
    /// parts 0..k. The result depends only on the order, never on how the parts were computed.
    pub fn merge<'a>(parts: impl IntoIterator<Item = &'a Stats>) -> Stats {
        let mut s = Stats::default();
        for p in parts {
            let off = s.sequences;
            s.sequences += p.sequences;
            s.rows += p.rows;
            s.rows_per_sequence.extend_from_slice(&p.rows_per_sequence);
            s.bit_exact_rows += p.bit_exact_rows;
            if let Some(f) = p.first_divergent {
                let f = RowRef {
                    sequence: f.sequence + off,
                    ..f
                };
                if s.first_divergent.is_none_or(|g| f.position < g.position) {
                    s.first_divergent = Some(f);
                }
            }
            s.divergent_sequences += p.divergent_sequences;
            s.compared_values += p.compared_values;
            s.sum_abs_diff += p.sum_abs_diff;
            if p.max_abs_diff > s.max_abs_diff {
                s.max_abs_diff = p.max_abs_diff;
                s.max_abs_diff_at = p.max_abs_diff_at.map(|a| DiffAt {
                    sequence: a.sequence + off,
                    ..a
                });
            }
            s.top1_agree_rows += p.top1_agree_rows;
            s.top5_common += p.top5_common;
            s.max_abs_diff_per_row
                .extend_from_slice(&p.max_abs_diff_per_row);
            s.kl_per_row.extend_from_slice(&p.kl_per_row);
            s.flips.extend(p.flips.iter().map(|f| FlipAt {
                sequence: f.sequence + off,
                ..*f
            }));
            s.non_finite
                .extend(p.non_finite.iter().map(|n| NonFiniteAt {
                    sequence: n.sequence + off,
                    ..*n
                }));
        }
        s.derive();
        s
    }

    /// Recomputes the derived figures from the raw ones.
    fn derive(&mut self) {
        self.all_bit_exact = self.bit_exact_rows == self.rows;
        self.mean_abs_diff = ratio(self.sum_abs_diff, self.compared_values as f64, 0.0);
        self.top1_agreement = ratio(self.top1_agree_rows as f64, self.rows as f64, 1.0);
        self.top5_overlap = ratio(
            self.top5_common as f64,
            (self.rows * TOP_K as u64) as f64,
            1.0,
        );
        self.kl = KlLadder::from_values(&self.kl_per_row);
        self.mean_kl = self.kl.map_or(0.0, |k| k.mean);
    }

    pub fn has_non_finite(&self) -> bool {
        !self.non_finite.is_empty()
    }
}

fn ratio(num: f64, den: f64, empty: f64) -> f64 {
    if den == 0.0 {
        empty
    } else {
        num / den
    }
}
