//! The Equivalence section: every comparison of every cell, then each cell's verdict and reasons.

use serde::Serialize;

use crate::report::format::{self, md_cell};
use crate::report::labels::comparison_label;
use crate::summary::{CellSummary, PairSummary, Summary};

#[derive(Debug, Serialize)]
pub(crate) struct EquivalenceView {
    pub policy: String,
    pub rows: Vec<EquivRow>,
    pub verdicts: Vec<CellVerdict>,
}

#[derive(Debug, Serialize)]
pub(crate) struct EquivRow {
    pub cell: String,
    pub comparison: String,
    pub reference: String,
    pub rows: String,
    pub max_abs: String,
    pub mean_abs: String,
    pub top1: String,
    pub top5: String,
    pub kl: String,
    pub first_divergent: String,
    pub flips: String,
    pub result: String,
    pub verdict: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct CellVerdict {
    pub cell: String,
    pub verdict: String,
    /// `reason; reason` (cell and comparison reasons, deduplicated); empty when none.
    pub reasons: String,
}

const DASH: &str = "—";

pub(super) fn build(summary: &Summary) -> EquivalenceView {
    let mut rows = Vec::new();
    for cell in &summary.cells {
        if cell.comparisons.is_empty() {
            rows.push(empty_row(cell));
        }
        for pair in &cell.comparisons {
            rows.push(pair_row(cell, pair));
        }
    }
    EquivalenceView {
        policy: summary.policy.clone(),
        rows,
        verdicts: summary.cells.iter().map(cell_verdict).collect(),
    }
}

fn empty_row(cell: &CellSummary) -> EquivRow {
    EquivRow {
        cell: cell.key.clone(),
        comparison: "none".to_string(),
        reference: DASH.into(),
        rows: "0".into(),
        max_abs: DASH.into(),
        mean_abs: DASH.into(),
        top1: DASH.into(),
        top5: DASH.into(),
        kl: DASH.into(),
        first_divergent: DASH.into(),
        flips: DASH.into(),
        result: DASH.into(),
        verdict: cell.verdict.as_str().to_string(),
    }
}

fn pair_row(cell: &CellSummary, p: &PairSummary) -> EquivRow {
    let rows = if p.rows_excluded > 0 {
        format!("{} (+{} excluded)", p.rows_compared, p.rows_excluded)
    } else {
        p.rows_compared.to_string()
    };
    let mut first = p
        .first_divergent_position
        .map(|j| j.to_string())
        .unwrap_or_else(|| DASH.to_string());
    if let Some(t) = p.token_divergence_position {
        first.push_str(&format!(" (tokens differ from {t})"));
    }
    let flips = if p.flips == 0 {
        "0".to_string()
    } else if p.flips_not_near_tie == 0 {
        format!("{} (all near-ties)", p.flips)
    } else {
        format!("{} ({} not near-tie)", p.flips, p.flips_not_near_tie)
    };
    EquivRow {
        cell: cell.key.clone(),
        comparison: comparison_label(p, cell),
        reference: md_cell(&p.reference),
        rows,
        max_abs: format::sig(p.max_abs_diff, 4),
        mean_abs: format::sig(p.mean_abs_diff, 4),
        top1: format::ratio4(p.top1_agreement),
        top5: format::ratio4(p.top5_overlap),
        kl: format::kl(p.kl_mean),
        first_divergent: first,
        flips,
        result: if p.pass { "pass" } else { "FAIL" }.to_string(),
        verdict: cell.verdict.as_str().to_string(),
    }
}

fn cell_verdict(cell: &CellSummary) -> CellVerdict {
    let mut reasons: Vec<String> = Vec::new();
    let pair_reasons =
        cell.comparisons.iter().flat_map(|p| {
            p.reasons
                .iter()
                .map(move |r| format!("{}: {r}", comparison_label(p, cell)))
                .chain(p.nonfinite.iter().map(move |n| {
                    format!("{}: non-finite logits ({n})", comparison_label(p, cell))
                }))
        });
    for r in cell.reasons.iter().cloned().chain(pair_reasons) {
        if !reasons.contains(&r) {
            reasons.push(r);
        }
    }
    CellVerdict {
        cell: cell.key.clone(),
        verdict: cell.verdict.as_str().to_string(),
        reasons: reasons
            .iter()
            .map(|r| r.replace('\n', " "))
            .collect::<Vec<_>>()
            .join("; "),
    }
}
