//! Golden traces: a compact record of a blessed sweep — per cell its run.json and, per sequence
//! and decode row, the top-k logits with their ids and the sha256 of the full row — and the
//! drift of a new run against it (max |Δ| over the golden's stored ids, top-1, hash match).
//!
//! Layout: `golden/<mode>/<model>/<cell-key>/{run.json,golden.json}` plus
//! `golden/<mode>/<model>/manifest.json` holding the `tracecheck run` command that CI replays.
//! Within one device a golden must match bit for bit (hashes); across devices it compares under
//! the `fp32` policy.

mod bless;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use tracecheck_engine::trace::{CellTrace, RunRecord, RUN_JSON};

use crate::metrics::LogitDtype;
use crate::summary::PairSummary;

pub use bless::{bless, BlessOptions};

pub const GOLDEN_SCHEMA_VERSION: u32 = 1;
pub const GOLDEN_JSON: &str = "golden.json";
pub const MANIFEST_JSON: &str = "manifest.json";
/// Logits kept per row: enough to see drift among the likely tokens, small enough to commit.
pub const GOLDEN_TOP_K: usize = 16;
/// `fp32` policy's limit on |Δ| for cross-device drift.
const FP32_ATOL: f64 = 1e-3;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoldenRow {
    /// sha256 of the row's f32 little-endian bytes.
    pub sha256: String,
    /// Top-k ids by logit (descending, ties to the lowest id) and their logits.
    pub ids: Vec<u32>,
    pub logits: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoldenSeq {
    pub b: usize,
    pub generated: Vec<u32>,
    /// Decode rows 0..span.
    pub rows: Vec<GoldenRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoldenFile {
    pub schema_version: u32,
    pub top_k: usize,
    pub vocab: usize,
    pub span: usize,
    pub device: Option<String>,
    pub sequences: Vec<GoldenSeq>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub mode: String,
    pub model: String,
    /// `tracecheck` arguments that recreate the sweep (without `--out`).
    pub run: Vec<String>,
    pub cells: Vec<String>,
    pub device: Option<String>,
    pub blessed_at: String,
}

pub struct GoldenCell {
    pub record: RunRecord,
    pub file: GoldenFile,
}

/// A directory of golden cells.
pub struct GoldenSet {
    pub dir: PathBuf,
    cells: BTreeMap<String, GoldenCell>,
}

fn err(path: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", path.display())
}

pub fn row_sha256(row: &[f32]) -> String {
    let mut h = Sha256::new();
    for v in row {
        h.update(v.to_le_bytes());
    }
    tracecheck_engine::model::hex_digest(&h.finalize())
}

/// Top-k (id, logit), descending, ties to the lowest id; NaN never ranks.
pub fn top_k(row: &[f32], k: usize) -> (Vec<u32>, Vec<f32>) {
    let mut best: Vec<(f32, u32)> = Vec::with_capacity(k + 1);
    for (i, &v) in row.iter().enumerate() {
        if v.is_nan() || (best.len() == k && v <= best[k - 1].0) {
            continue;
        }
        let pos = best.partition_point(|&(b, _)| b >= v);
        best.insert(pos, (v, i as u32));
        best.truncate(k);
    }
    (
        best.iter().map(|b| b.1).collect(),
        best.iter().map(|b| b.0).collect(),
    )
}

impl GoldenSet {
    pub fn load(dir: &Path) -> Result<GoldenSet, String> {
        if !dir.is_dir() {
            return Err(err(dir, "golden directory does not exist"));
        }
        let mut cells = BTreeMap::new();
        let entries = std::fs::read_dir(dir).map_err(|e| err(dir, e))?;
        for e in entries {
            let e = e.map_err(|e| err(dir, e))?;
            let d = e.path();
            if !d.join(GOLDEN_JSON).is_file() {
                continue;
            }
            let key = e.file_name().to_string_lossy().into_owned();
            let record = RunRecord::read(&d.join(RUN_JSON)).map_err(|e| e.to_string())?;
            let gp = d.join(GOLDEN_JSON);
            let text = std::fs::read_to_string(&gp).map_err(|e| err(&gp, e))?;
            let file: GoldenFile = serde_json::from_str(&text).map_err(|e| err(&gp, e))?;
            if file.schema_version != GOLDEN_SCHEMA_VERSION {
                return Err(err(&gp, format!("schema_version {} is not supported (this build reads {GOLDEN_SCHEMA_VERSION})", file.schema_version)));
            }
            cells.insert(key, GoldenCell { record, file });
        }
        if cells.is_empty() {
            return Err(err(dir, "no golden cells (no */golden.json)"));
        }
        Ok(GoldenSet {
            dir: dir.to_path_buf(),
            cells,
        })
    }

    pub fn cell(&self, key: &str) -> Option<&GoldenCell> {
        self.cells.get(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.cells.keys()
    }
}

/// One sequence's decode rows from a run, to compare with a compact record.
pub struct DecodeRows<'a> {
    pub b: usize,
    pub generated: &'a [u32],
    /// span × vocab.
    pub dec: &'a [f32],
    pub vocab: usize,
    pub span: usize,
    pub dtype: LogitDtype,
    /// The run's device: on the record's own device the rows must be bit-exact.
    pub device: Option<&'a str>,
}

impl GoldenCell {
    /// Drift of one sequence's decode rows against this golden.
    pub fn drift(&self, rows: &DecodeRows<'_>) -> Result<PairSummary, String> {
        self.file.drift("golden", rows)
    }
}

impl GoldenFile {
    /// Drift of one sequence's decode rows against this record. `kind` names the record in the
    /// comparison and its reasons ("golden", or "history" for a prior run's record).
    pub fn drift(&self, kind: &str, rows: &DecodeRows<'_>) -> Result<PairSummary, String> {
        let DecodeRows {
            b,
            generated,
            dec,
            vocab,
            span,
            dtype,
            device,
        } = *rows;
        let g = self
            .sequences
            .iter()
            .find(|s| s.b == b)
            .ok_or_else(|| format!("the {kind} record has no sequence {b}"))?;
        if self.vocab != vocab {
            return Err(format!(
                "the {kind} record's vocab {} differs from the run's {vocab}",
                self.vocab
            ));
        }
        let same_device = device.is_some() && device == self.device.as_deref();
        let span = span.min(g.rows.len());
        let tdiv = (0..span).find(|&j| g.generated.get(j) != generated.get(j));
        let rows = tdiv.map_or(span, |p| p + 1).min(span);
        let (mut max, mut sum, mut n, mut top1, mut top5, mut hashes) =
            (0f64, 0f64, 0usize, 0usize, 0f64, 0usize);
        let mut by_pos = Vec::with_capacity(rows);
        let mut reasons = Vec::new();
        let mut first_div = None;
        let mut flips = 0;
        let mut flips_bad = 0;
        for (j, gr) in g.rows.iter().take(rows).enumerate() {
            let row = &dec[j * vocab..(j + 1) * vocab];
            let mut m = 0f64;
            for (id, gl) in gr.ids.iter().zip(&gr.logits) {
                let d =
                    (row.get(*id as usize).copied().unwrap_or(f32::NAN) as f64 - *gl as f64).abs();
                m = if d.is_nan() { f64::INFINITY } else { m.max(d) };
                sum += if d.is_nan() { 0.0 } else { d };
                n += 1;
            }
            by_pos.push(m);
            max = max.max(m);
            let hash_ok = row_sha256(row) == gr.sha256;
            hashes += hash_ok as usize;
            if !hash_ok && first_div.is_none() {
                first_div = Some(j);
            }
            let (ids, _) = top_k(row, 5);
            top5 += ids
                .iter()
                .filter(|i| gr.ids.iter().take(5).any(|g| g == *i))
                .count() as f64
                / 5.0;
            if ids.first() == gr.ids.first() {
                top1 += 1;
            } else {
                flips += 1;
                let near = gr.logits.len() > 1 && dtype.is_near_tie(gr.logits[0], gr.logits[1]);
                if !near {
                    flips_bad += 1;
                    reasons.push(format!(
                        "top-1 at position {j} differs from the {kind} and is not a near-tie"
                    ));
                }
            }
        }
        let bit_exact = hashes == rows && tdiv.is_none();
        let pass = if same_device {
            if !bit_exact {
                reasons.insert(0, format!(
                    "same device as the {kind}: {} of {rows} rows are not bit-identical (first at position {})",
                    rows - hashes,
                    first_div.unwrap_or(0)
                ));
            }
            bit_exact
        } else {
            if max > FP32_ATOL {
                reasons.insert(
                    0,
                    format!(
                        "max |Δ| {max:.3e} > {FP32_ATOL:e} over the {kind}'s top-{} ids (fp32)",
                        GOLDEN_TOP_K
                    ),
                );
            }
            max <= FP32_ATOL && flips_bad == 0
        };
        if let Some(p) = tdiv {
            reasons.push(format!(
                "generated tokens diverge from the {kind} at position {p}"
            ));
        }
        Ok(PairSummary {
            kind: kind.into(),
            reference: format!(
                "{kind} ({}; {})",
                self.device.as_deref().unwrap_or("unknown device"),
                if same_device {
                    "same device: bit-exact"
                } else {
                    "other device: fp32"
                }
            ),
            rows_compared: rows,
            rows_excluded: span - rows,
            bit_exact,
            max_abs_diff: max,
            mean_abs_diff: if n == 0 { 0.0 } else { sum / n as f64 },
            top1_agreement: if rows == 0 {
                1.0
            } else {
                top1 as f64 / rows as f64
            },
            top5_overlap: if rows == 0 { 1.0 } else { top5 / rows as f64 },
            kl_mean: 0.0,
            kl_max: 0.0,
            kl_ladder: vec![],
            first_divergent_position: first_div,
            token_divergence_position: tdiv,
            flips,
            flips_not_near_tie: flips_bad,
            max_abs_diff_by_position: by_pos,
            nonfinite: None,
            pass,
            reasons,
        })
    }
}

/// Drift of every sequence of a traced cell against a compact record, merged over the
/// sequences (the worst of each number). Err when the cell has no logits or no sequence could
/// be compared (the first reason).
pub fn cell_drift(file: &GoldenFile, kind: &str, cell: &CellTrace) -> Result<PairSummary, String> {
    let (Some(logits), Some(tokens)) = (cell.logits.as_ref(), cell.record.tokens.as_ref()) else {
        return Err("the cell has no logits".into());
    };
    let (batch, span, vocab) = logits.dims();
    let device = cell.record.engine.as_ref().map(|e| e.device.as_str());
    let dtype = crate::analyze::compare::logit_dtype(&cell.record.config);
    let mut parts = Vec::with_capacity(batch);
    let mut first_err = None;
    for b in 0..batch {
        let dec = crate::analyze::compare::seq_rows(
            logits,
            tracecheck_engine::trace::Side::Decode,
            b,
            span,
        );
        let rows = DecodeRows {
            b,
            generated: tokens.generated.get(b).map_or(&[], Vec::as_slice),
            dec: &dec,
            vocab,
            span,
            dtype,
            device,
        };
        match file.drift(kind, &rows) {
            Ok(p) => parts.push(p),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if parts.is_empty() {
        return Err(first_err.unwrap_or_else(|| "the cell has no sequences".into()));
    }
    let refs: Vec<&PairSummary> = parts.iter().collect();
    Ok(merge_drift(&refs))
}

/// One summary over a cell's sequences: the worst of each number.
pub fn merge_drift(parts: &[&PairSummary]) -> PairSummary {
    let mut m = parts[0].clone();
    for p in &parts[1..] {
        m.rows_compared += p.rows_compared;
        m.rows_excluded += p.rows_excluded;
        m.bit_exact &= p.bit_exact;
        m.max_abs_diff = m.max_abs_diff.max(p.max_abs_diff);
        m.mean_abs_diff = m.mean_abs_diff.max(p.mean_abs_diff);
        m.top1_agreement = m.top1_agreement.min(p.top1_agreement);
        m.top5_overlap = m.top5_overlap.min(p.top5_overlap);
        m.first_divergent_position = match (m.first_divergent_position, p.first_divergent_position)
        {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        m.token_divergence_position =
            match (m.token_divergence_position, p.token_divergence_position) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        m.flips += p.flips;
        m.flips_not_near_tie += p.flips_not_near_tie;
        for (a, b) in m
            .max_abs_diff_by_position
            .iter_mut()
            .zip(&p.max_abs_diff_by_position)
        {
            *a = a.max(*b);
        }
        m.pass &= p.pass;
        for r in &p.reasons {
            if !m.reasons.contains(r) {
                m.reasons.push(r.clone());
            }
        }
    }
    m
}

/// The golden record of one traced cell (decode rows of every sequence).
pub fn golden_of(cell: &CellTrace) -> Option<GoldenFile> {
    let logits = cell.logits.as_ref()?;
    let tokens = cell.record.tokens.as_ref()?;
    let (batch, span, vocab) = logits.dims();
    let sequences = (0..batch)
        .map(|b| GoldenSeq {
            b,
            generated: tokens.generated.get(b).cloned().unwrap_or_default(),
            rows: (0..span)
                .map(|j| {
                    let row = logits.row(tracecheck_engine::trace::Side::Decode, b, j);
                    let (ids, logits) = top_k(&row, GOLDEN_TOP_K);
                    GoldenRow {
                        sha256: row_sha256(&row),
                        ids,
                        logits,
                    }
                })
                .collect(),
        })
        .collect();
    Some(GoldenFile {
        schema_version: GOLDEN_SCHEMA_VERSION,
        top_k: GOLDEN_TOP_K,
        vocab,
        span,
        device: cell.record.engine.as_ref().map(|e| e.device.clone()),
        sequences,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_logit_then_lowest_id_and_skips_nan() {
        let row = [1.0, 3.0, f32::NAN, 3.0, -1.0, 2.0];
        let (ids, l) = top_k(&row, 3);
        assert_eq!(ids, vec![1, 3, 5]);
        assert_eq!(l, vec![3.0, 3.0, 2.0]);
    }

    #[test]
    fn row_hash_sees_every_bit() {
        assert_ne!(row_sha256(&[0.0]), row_sha256(&[-0.0]));
        assert_eq!(row_sha256(&[1.5, 2.0]), row_sha256(&[1.5, 2.0]));
    }
}
