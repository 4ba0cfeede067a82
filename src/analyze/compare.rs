//! The comparisons of one cell: prefill vs decode for every sequence, batch N vs the batch-1
//! twin of the same prompt, and drift against a golden — each as metrics plus a policy outcome.

use std::borrow::Cow;

use tracecheck_engine::tokenizer::Tokenizer;
use tracecheck_engine::trace::{CellConfig, CellTrace, LogitsFile, Side};

use crate::golden::GoldenSet;
use crate::metrics::{
    compare_sequence, evaluate, LogitDtype, Overrides, Policy, RowMetrics, Stats, TopK,
};
use crate::summary::{Divergence, PairSummary, SequenceSummary, TopToken};

use super::load::Loaded;

/// What every comparison of an analysis shares.
pub struct Ctx<'a> {
    pub cells: &'a [Loaded],
    pub policy: Policy,
    pub overrides: Overrides,
    pub tokenizer: Option<&'a Tokenizer>,
    pub golden: Option<&'a GoldenSet>,
    /// The device of this analysis' traces equals the golden's: goldens must be bit-exact.
    pub device: Option<String>,
}

/// Divergence rows kept per comparison (the report shows them all; this bounds its size).
const DIVERGENCES_PER_PAIR: usize = 3;

pub struct CellComparisons {
    pub sequences: Vec<SequenceSummary>,
    /// Merged over sequences, one per kind.
    pub merged: Vec<PairSummary>,
    pub notes: Vec<String>,
}

pub fn logit_dtype(c: &CellConfig) -> LogitDtype {
    match c.dtype {
        tracecheck_engine::trace::Dtype::Bf16 => LogitDtype::Bf16,
        tracecheck_engine::trace::Dtype::F32 => LogitDtype::F32,
    }
}

/// The first `rows` rows of sequence `b` on one side, contiguous (zero-copy for aligned F32).
pub fn seq_rows<'l>(l: &'l LogitsFile, side: Side, b: usize, rows: usize) -> Cow<'l, [f32]> {
    let (_, span, vocab) = l.dims();
    if let Some(all) = l.tensor_f32(side) {
        let at = b * span * vocab;
        return Cow::Borrowed(&all[at..at + rows * vocab]);
    }
    let mut v = vec![0f32; rows * vocab];
    for j in 0..rows {
        l.row_into(side, b, j, &mut v[j * vocab..(j + 1) * vocab]);
    }
    Cow::Owned(v)
}

/// First position where two generated-token lists differ, within `span`.
pub fn token_divergence(a: &[u32], b: &[u32], span: usize) -> Option<usize> {
    (0..span).find(|&j| a.get(j) != b.get(j))
}

fn top_tokens(t: &TopK, tok: Option<&Tokenizer>) -> Vec<TopToken> {
    t.as_slice()
        .iter()
        .map(|e| TopToken {
            id: e.id,
            logit: e.logit,
            text: tok.map(|k| k.token_text(e.id)).unwrap_or_default(),
        })
        .collect()
}

/// The rows worth showing: flips first, then the largest differences.
fn divergences(rows: &[RowMetrics], tok: Option<&Tokenizer>, kind: &str) -> Vec<Divergence> {
    let mut idx: Vec<usize> = (0..rows.len()).filter(|&j| !rows[j].bit_exact).collect();
    idx.sort_by(|&a, &b| {
        (rows[b].flip.is_some(), rows[b].max_abs_diff)
            .partial_cmp(&(rows[a].flip.is_some(), rows[a].max_abs_diff))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    idx.truncate(DIVERGENCES_PER_PAIR);
    idx.sort_unstable();
    idx.into_iter()
        .map(|j| {
            let r = &rows[j];
            Divergence {
                kind: kind.to_string(),
                position: j,
                max_abs_diff: r.max_abs_diff,
                top1_agree: r.top1_agree,
                logprob_gap: r.flip.map(|f| f.logprob_gap),
                near_tie: r.flip.map(|f| f.near_tie),
                reference_top5: top_tokens(&r.top_ref, tok),
                candidate_top5: top_tokens(&r.top_cand, tok),
            }
        })
        .collect()
}

/// Builds a comparison's summary from its statistics and the policy.
pub fn pair_summary(
    kind: &str,
    reference: String,
    stats: &Stats,
    excluded: usize,
    token_divergence_position: Option<usize>,
    policy: Policy,
    overrides: &Overrides,
) -> PairSummary {
    let outcome = evaluate(stats, policy, overrides);
    let mut reasons: Vec<String> = outcome.reasons.iter().map(|r| r.to_string()).collect();
    let mut pass = outcome.pass;
    if let Some(p) = token_divergence_position {
        // Different inputs follow: the rows after it were not compared. Exact demands none.
        if policy == Policy::Exact {
            pass = false;
            reasons.push(format!("generated tokens diverge at position {p}"));
        }
    }
    let ladder = stats.kl.as_ref();
    PairSummary {
        kind: kind.to_string(),
        reference,
        rows_compared: stats.rows as usize,
        rows_excluded: excluded,
        bit_exact: stats.all_bit_exact,
        max_abs_diff: stats.max_abs_diff,
        mean_abs_diff: stats.mean_abs_diff,
        top1_agreement: stats.top1_agreement,
        top5_overlap: stats.top5_overlap,
        kl_mean: stats.mean_kl,
        kl_max: ladder.map(|l| l.max).unwrap_or(0.0),
        kl_ladder: ladder
            .map(|l| {
                [
                    ("max", l.max),
                    ("99.9%", l.p99_9),
                    ("99%", l.p99),
                    ("95%", l.p95),
                    ("90%", l.p90),
                    ("median", l.median),
                    ("10%", l.p10),
                    ("5%", l.p5),
                    ("1%", l.p1),
                    ("min", l.min),
                ]
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect()
            })
            .unwrap_or_default(),
        first_divergent_position: stats.first_divergent.map(|r| r.position as usize),
        token_divergence_position,
        flips: stats.flips.len(),
        flips_not_near_tie: stats.flips.iter().filter(|f| !f.flip.near_tie).count(),
        max_abs_diff_by_position: stats.max_abs_diff_per_row.clone(),
        nonfinite: stats.non_finite.first().map(|n| {
            format!(
                "{:?} in {:?} row {} (id {})",
                n.values.first_kind, n.side, n.position, n.values.first_id
            )
        }),
        pass,
        reasons,
    }
}

/// The batch-1 cell holding `prompt` under the same settings, preferring prompt_offset = i.
fn find_twin<'a>(
    ctx: &'a Ctx<'_>,
    cell: &CellTrace,
    prompt: &[u32],
    i: usize,
) -> Option<&'a CellTrace> {
    let want = cell.record.config.twin(i);
    let backend = cell.record.engine.as_ref().map(|e| e.backend.as_str());
    let sha = cell.record.model.as_ref().map(|m| m.sha256.as_str());
    let same = |t: &CellTrace| {
        let c = &t.record.config;
        c.batch == 1
            && c.ctx == want.ctx
            && c.gen == want.gen
            && c.span == want.span
            && c.dtype == want.dtype
            && c.numerics == want.numerics
            && c.attn_impl == want.attn_impl
            && c.variant == want.variant
            && c.kv_aligned == want.kv_aligned
            && c.seed == want.seed
            && t.record.engine.as_ref().map(|e| e.backend.as_str()) == backend
            && t.record.model.as_ref().map(|m| m.sha256.as_str()) == sha
            && t.record
                .tokens
                .as_ref()
                .and_then(|k| k.prompt.first())
                .map(Vec::as_slice)
                == Some(prompt)
            && t.logits.is_some()
    };
    let mut found: Vec<&CellTrace> = ctx
        .cells
        .iter()
        .filter_map(Loaded::ok)
        .filter(|t| same(t))
        .collect();
    found.sort_by_key(|t| {
        (
            t.record.config.prompt_offset != i,
            t.record.config.prompt_offset,
        )
    });
    found.into_iter().next()
}

/// One comparison kind's sequences, merged at the end into the cell's summary.
#[derive(Default)]
struct KindAcc {
    stats: Vec<Stats>,
    excluded: usize,
    tdiv: Option<usize>,
    reference: String,
}

#[derive(Default)]
struct Accumulator {
    kinds: std::collections::BTreeMap<&'static str, KindAcc>,
}

#[derive(Default)]
struct SeqAcc {
    comparisons: Vec<PairSummary>,
    divergences: Vec<Divergence>,
}

impl Accumulator {
    /// Records one sequence's comparison: its summary and divergences, and its stats for the
    /// cell-level merge.
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        ctx: &Ctx<'_>,
        seq: &mut SeqAcc,
        kind: &'static str,
        reference: String,
        m: crate::metrics::SequenceMetrics,
        excluded: usize,
        tdiv: Option<usize>,
    ) {
        seq.divergences
            .extend(divergences(&m.rows, ctx.tokenizer, kind));
        seq.comparisons.push(pair_summary(
            kind,
            reference.clone(),
            &m.stats,
            excluded,
            tdiv,
            ctx.policy,
            &ctx.overrides,
        ));
        let e = self.kinds.entry(kind).or_insert_with(|| KindAcc {
            reference,
            ..Default::default()
        });
        e.stats.push(m.stats);
        e.excluded += excluded;
        e.tdiv = match (e.tdiv, tdiv) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

pub fn compare_cell(ctx: &Ctx<'_>, cell: &CellTrace) -> CellComparisons {
    let r = &cell.record;
    let (Some(logits), Some(tokens)) = (cell.logits.as_ref(), r.tokens.as_ref()) else {
        return CellComparisons {
            sequences: vec![],
            merged: vec![],
            notes: vec![],
        };
    };
    let (batch, span, vocab) = logits.dims();
    let dtype = logit_dtype(&r.config);
    let mut notes = Vec::new();
    let mut acc = Accumulator::default();
    let mut sequences = Vec::with_capacity(batch);
    for b in 0..batch {
        let i = r.config.prompt_offset + b;
        let prompt = tokens.prompt.get(b).cloned().unwrap_or_default();
        let mut seq = SeqAcc::default();
        // Prefill vs decode: both consumed the same generated tokens.
        let pre = seq_rows(logits, Side::Prefill, b, span);
        let dec = seq_rows(logits, Side::Decode, b, span);
        match compare_sequence(&pre, &dec, vocab, dtype) {
            Ok(m) => acc.add(
                ctx,
                &mut seq,
                "prefill_vs_decode",
                "prefill".into(),
                m,
                0,
                None,
            ),
            Err(e) => notes.push(format!("sequence {b}: prefill vs decode not compared: {e}")),
        }
        // Batch N vs its batch-1 twin.
        if batch > 1 {
            match find_twin(ctx, cell, &prompt, i) {
                Some(twin) => {
                    let tl = twin.logits.as_ref().expect("twin has logits");
                    let tg = &twin.record.tokens.as_ref().expect("twin has tokens").generated[0];
                    let tdiv = token_divergence(tg, &tokens.generated[b], span);
                    // Row j consumed generated[j−1]: rows after a token divergence differ in input.
                    let rows = tdiv.map_or(span, |p| p + 1).min(span);
                    let refr = seq_rows(tl, Side::Decode, 0, rows);
                    let name = twin.name().unwrap_or("batch 1").to_string();
                    match compare_sequence(&refr, &dec[..rows * vocab], vocab, dtype) {
                        Ok(m) => {
                            let reference = format!("batch 1 ({name})");
                            acc.add(ctx, &mut seq, "batch_vs_batch1", reference, m, span - rows, tdiv)
                        }
                        Err(e) => notes.push(format!("sequence {b}: batch vs batch 1 not compared: {e}")),
                    }
                }
                None => notes.push(format!(
                    "sequence {b} (prompt {i}): no batch-1 twin with the same prompt and settings; batch invariance not checked"
                )),
            }
        }
        // Drift against the golden.
        if let Some(g) = ctx.golden {
            if let Some(gc) = g.cell(cell.name().unwrap_or_default()) {
                let rows = crate::golden::DecodeRows {
                    b,
                    generated: &tokens.generated[b],
                    dec: &dec,
                    vocab,
                    span,
                    dtype,
                    device: ctx.device.as_deref(),
                };
                match gc.drift(&rows) {
                    Ok(p) => seq.comparisons.push(p),
                    Err(e) => notes.push(format!("sequence {b}: golden not compared: {e}")),
                }
            }
        }
        sequences.push(SequenceSummary {
            b,
            prompt_index: i,
            prompt_len: prompt.len(),
            comparisons: seq.comparisons,
            divergences: seq.divergences,
        });
    }
    let per_kind = acc.kinds;
    let mut merged: Vec<PairSummary> = per_kind
        .into_iter()
        .map(
            |(
                kind,
                KindAcc {
                    stats,
                    excluded,
                    tdiv,
                    reference,
                },
            )| {
                let s = Stats::merge(stats.iter());
                let reference = if kind == "batch_vs_batch1" {
                    "batch 1 twins".to_string()
                } else {
                    reference
                };
                pair_summary(
                    kind,
                    reference,
                    &s,
                    excluded,
                    tdiv,
                    ctx.policy,
                    &ctx.overrides,
                )
            },
        )
        .collect();
    // Golden drift merges by the worst sequence (its stats are not row metrics).
    let golden: Vec<&PairSummary> = sequences
        .iter()
        .flat_map(|s| s.comparisons.iter().filter(|c| c.kind == "golden"))
        .collect();
    if !golden.is_empty() {
        merged.push(crate::golden::merge_drift(&golden));
    }
    CellComparisons {
        sequences,
        merged,
        notes,
    }
}
