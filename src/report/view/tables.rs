//! The mode tables of the Results section (b3_81, b3_77, b3_89), one row struct each.

use serde::Serialize;

use crate::report::format::{self, opt};
use crate::report::labels::attn_label;
use crate::summary::Summary;

/// `| Batch | Peak VRAM (MB) | Prefill (s) | Decode (s) | Tokens/s | Speedup | VRAM Delta | Verdict |`
#[derive(Debug, Serialize)]
pub(crate) struct BatchRowView {
    pub batch: usize,
    pub peak: String,
    pub prefill: String,
    pub decode: String,
    pub tokens_s: String,
    pub speedup: String,
    pub vram_delta: String,
    pub verdict: String,
}

/// `| Context | KV | Peak VRAM (MB) | Max Logits Diff | Top-1 Agreement | Verdict |`
#[derive(Debug, Serialize)]
pub(crate) struct ContextRowView {
    pub ctx: usize,
    pub kv: u8,
    pub peak: String,
    pub diff: String,
    pub top1: String,
    pub verdict: String,
}

/// `| Context | prefill_s | wall_time_s | attn_impl | Throughput (tok/s) | Status |`
#[derive(Debug, Serialize)]
pub(crate) struct PrefillRowView {
    pub ctx: usize,
    pub prefill: String,
    pub wall: String,
    pub attn: String,
    pub throughput: String,
    pub status: String,
}

/// One `| Context | Prefill Time | Scaling Factor |` table per attention implementation.
#[derive(Debug, Serialize)]
pub(crate) struct ScalingGroupView {
    pub attn: String,
    pub rows: Vec<ScalingRowView>,
    /// Fitted log-log slope, `2.03`.
    pub exponent: Option<String>,
    pub points: usize,
}

#[derive(Debug, Serialize)]
pub(crate) struct ScalingRowView {
    pub ctx: usize,
    /// `22.77s`.
    pub time: String,
    /// `1.0x (baseline)`, `5.0x (expected ~4x)`.
    pub factor: String,
}

pub(super) fn batch_rows(summary: &Summary) -> Vec<BatchRowView> {
    summary
        .tables
        .batch
        .iter()
        .map(|r| BatchRowView {
            batch: r.batch,
            peak: opt(r.peak_vram_mb, format::mb),
            prefill: opt(r.prefill_s, format::secs),
            decode: opt(r.decode_s, format::secs),
            tokens_s: opt(r.tokens_per_s, |x| format::fixed(x, 2)),
            speedup: opt(r.speedup, format::speedup),
            vram_delta: opt(r.vram_delta_mb, format::delta_mb),
            verdict: r.verdict.as_str().to_string(),
        })
        .collect()
}

pub(super) fn context_rows(summary: &Summary) -> Vec<ContextRowView> {
    summary
        .tables
        .context
        .iter()
        .map(|r| ContextRowView {
            ctx: r.ctx,
            kv: u8::from(r.kv_aligned),
            peak: opt(r.peak_vram_mb, format::mb),
            diff: opt(r.max_logits_diff, format::diff6),
            top1: opt(r.top1_agreement, format::ratio4),
            verdict: r.verdict.as_str().to_string(),
        })
        .collect()
}

pub(super) fn prefill_rows(summary: &Summary) -> Vec<PrefillRowView> {
    summary
        .tables
        .prefill
        .iter()
        .map(|r| PrefillRowView {
            ctx: r.ctx,
            prefill: opt(r.prefill_s, format::secs),
            wall: opt(r.wall_s, format::secs),
            attn: attn_label(&r.attn_impl, r.variant.as_deref()),
            throughput: opt(r.throughput_tok_s, format::approx),
            // The verdict word of the cell (the row's run status when the cell is unknown).
            status: summary
                .cells
                .iter()
                .find(|c| c.key == r.key)
                .map(|c| c.verdict.as_str().to_string())
                .unwrap_or_else(|| r.status.clone()),
        })
        .collect()
}

pub(super) fn scaling_groups(summary: &Summary) -> Vec<ScalingGroupView> {
    let mut groups: Vec<(String, Option<String>)> = Vec::new();
    for r in &summary.tables.prefill {
        let g = (r.attn_impl.clone(), r.variant.clone());
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    groups
        .into_iter()
        .map(|(attn_impl, variant)| {
            let mut rows: Vec<_> = summary
                .tables
                .prefill
                .iter()
                .filter(|r| r.attn_impl == attn_impl && r.variant == variant)
                .collect();
            rows.sort_by_key(|r| r.ctx);
            let fit = summary
                .tables
                .scaling
                .iter()
                .find(|f| f.attn_impl == attn_impl && f.variant == variant);
            ScalingGroupView {
                attn: attn_label(&attn_impl, variant.as_deref()),
                rows: rows
                    .iter()
                    .map(|r| ScalingRowView {
                        ctx: r.ctx,
                        time: opt(r.prefill_s, |s| format!("{}s", format::secs(s))),
                        factor: scaling_factor(r.scaling_factor, r.expected_quadratic),
                    })
                    .collect(),
                exponent: fit.and_then(|f| f.exponent).map(|e| format::fixed(e, 2)),
                points: fit.map(|f| f.points).unwrap_or(rows.len()),
            }
        })
        .collect()
}

fn scaling_factor(factor: Option<f64>, expected: f64) -> String {
    match factor {
        None => format::NA.to_string(),
        // The smallest context is the reference: its expectation is exactly 1.
        Some(f) if expected == 1.0 => format!("{} (baseline)", format::factor(f)),
        Some(f) => format!(
            "{} (expected {})",
            format::factor(f),
            format::expected_factor(expected)
        ),
    }
}
