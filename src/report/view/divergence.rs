//! The Divergence section: where sequences diverged and what each side predicted there.

use serde::Serialize;

use crate::report::format::{self, md_token_text};
use crate::summary::{Divergence, Summary, TopToken};

/// Past this many rows the section points at summary.json instead (a badly broken run would
/// otherwise print a table per row).
const MAX_ITEMS: usize = 24;

#[derive(Debug, Serialize)]
pub(crate) struct DivergenceView {
    pub items: Vec<DivergenceItem>,
    /// Divergences left out of the report (all are in summary.json).
    pub omitted: usize,
    /// Shown instead of items when there are none.
    pub note: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct DivergenceItem {
    pub cell: String,
    pub sequence: usize,
    pub prompt_index: usize,
    pub position: usize,
    pub max_abs: String,
    pub top1_agree: bool,
    /// Reference log-prob gap between the two argmax tokens.
    pub gap: Option<String>,
    pub near_tie: Option<bool>,
    pub tokens: Vec<TokenRow>,
}

#[derive(Debug, Serialize)]
pub(crate) struct TokenRow {
    pub rank: usize,
    pub ref_id: String,
    pub ref_text: String,
    pub ref_logit: String,
    pub cand_id: String,
    pub cand_text: String,
    pub cand_logit: String,
}

pub(super) fn build(summary: &Summary) -> DivergenceView {
    let mut all = Vec::new();
    for cell in &summary.cells {
        for seq in &cell.sequences {
            for d in &seq.divergences {
                all.push(item(&cell.key, seq.b, seq.prompt_index, d));
            }
        }
    }
    let omitted = all.len().saturating_sub(MAX_ITEMS);
    all.truncate(MAX_ITEMS);
    let pairs: Vec<_> = summary.cells.iter().flat_map(|c| &c.comparisons).collect();
    let note = all.is_empty().then(|| {
        if pairs.is_empty() {
            "No comparisons: no cell produced logits to compare.".to_string()
        } else if pairs.iter().all(|p| p.bit_exact) {
            "No divergence: every compared row is bit-identical.".to_string()
        } else {
            "No divergent rows recorded, though not every compared row is bit-identical \
             (see Equivalence)."
                .to_string()
        }
    });
    DivergenceView {
        items: all,
        omitted,
        note,
    }
}

fn item(cell: &str, b: usize, prompt_index: usize, d: &Divergence) -> DivergenceItem {
    let n = d.reference_top5.len().max(d.candidate_top5.len());
    DivergenceItem {
        cell: cell.to_string(),
        sequence: b,
        prompt_index,
        position: d.position,
        max_abs: format::sig(d.max_abs_diff, 4),
        top1_agree: d.top1_agree,
        gap: d.logprob_gap.map(|g| format::sig(g, 4)),
        near_tie: d.near_tie,
        tokens: (0..n)
            .map(|i| {
                let (ref_id, ref_text, ref_logit) = token(d.reference_top5.get(i));
                let (cand_id, cand_text, cand_logit) = token(d.candidate_top5.get(i));
                TokenRow {
                    rank: i + 1,
                    ref_id,
                    ref_text,
                    ref_logit,
                    cand_id,
                    cand_text,
                    cand_logit,
                }
            })
            .collect(),
    }
}

fn token(t: Option<&TopToken>) -> (String, String, String) {
    match t {
        // f32's shortest round-trip form: two logits print alike only when they are equal.
        Some(t) => (
            t.id.to_string(),
            md_token_text(&t.text),
            t.logit.to_string(),
        ),
        None => ("—".into(), "—".into(), "—".into()),
    }
}
