//! Each mode's results tables from the cell summaries: speedup and VRAM delta vs batch 1
//! (b3_81), the context table (b3_77), prefill scaling vs the smallest context with the
//! (n/n₀)² expectation and the fitted log-log exponent (b3_89).

use std::collections::BTreeMap;

use crate::summary::{BatchRow, CellSummary, ContextRow, PrefillRow, ScalingFit, Tables};

fn primary(cells: &[CellSummary]) -> impl Iterator<Item = &CellSummary> {
    cells.iter().filter(|c| !c.reference_cell)
}

fn comparison<'a>(c: &'a CellSummary, kind: &str) -> Option<&'a crate::summary::PairSummary> {
    c.comparisons.iter().find(|p| p.kind == kind)
}

/// The tables of `mode` (a mode without its own tables gets the batch table).
pub fn build(mode: &str, cells: &[CellSummary]) -> Tables {
    let t = build_all(cells);
    match mode {
        "b3_77" => Tables {
            context: t.context,
            ..Default::default()
        },
        "b3_89" => Tables {
            prefill: t.prefill,
            scaling: t.scaling,
            ..Default::default()
        },
        _ => Tables {
            batch: t.batch,
            ..Default::default()
        },
    }
}

fn build_all(cells: &[CellSummary]) -> Tables {
    let mut batch: Vec<BatchRow> = primary(cells)
        .map(|c| BatchRow {
            key: c.key.clone(),
            batch: c.batch,
            peak_vram_mb: c.peak_mb,
            prefill_s: c.prefill_s,
            decode_s: c.decode_s,
            tokens_per_s: c.decode_tok_s,
            speedup: None,
            vram_delta_mb: None,
            verdict: c.verdict,
        })
        .collect();
    batch.sort_by(|a, b| (a.batch, &a.key).cmp(&(b.batch, &b.key)));
    // Speedup and VRAM delta against the batch-1 row of the same settings (same key but batch).
    let base_of = |key: &str| key.replacen(&key_batch(key), "_b1_", 1);
    let by_key: BTreeMap<String, (Option<f64>, Option<f64>)> = batch
        .iter()
        .map(|r| (r.key.clone(), (r.tokens_per_s, r.peak_vram_mb)))
        .collect();
    for r in &mut batch {
        if let Some((tps1, peak1)) = by_key.get(&base_of(&r.key)) {
            r.speedup = match (r.tokens_per_s, tps1) {
                (Some(a), Some(b)) if *b > 0.0 => Some(a / b),
                _ => None,
            };
            r.vram_delta_mb = match (r.peak_vram_mb, peak1) {
                (Some(a), Some(b)) => Some(a - b),
                _ => None,
            };
        }
    }

    let mut context: Vec<ContextRow> = primary(cells)
        .map(|c| {
            let p = comparison(c, "prefill_vs_decode");
            ContextRow {
                key: c.key.clone(),
                ctx: c.ctx,
                kv_aligned: c.kv_aligned,
                peak_vram_mb: c.peak_mb,
                max_logits_diff: p.map(|p| p.max_abs_diff),
                top1_agreement: p.map(|p| p.top1_agreement),
                verdict: c.verdict,
            }
        })
        .collect();
    context.sort_by(|a, b| (a.ctx, &a.key).cmp(&(b.ctx, &b.key)));

    let mut prefill: Vec<PrefillRow> = primary(cells)
        .map(|c| PrefillRow {
            key: c.key.clone(),
            ctx: c.ctx,
            attn_impl: c.attn_impl.clone(),
            variant: c.variant.clone(),
            prefill_s: c.prefill_s,
            wall_s: c.wall_s,
            throughput_tok_s: c.prefill_tok_s,
            status: c.verdict.to_string(),
            scaling_factor: None,
            expected_quadratic: 1.0,
        })
        .collect();
    prefill.sort_by(|a, b| {
        (&a.attn_impl, &a.variant, a.ctx, &a.key).cmp(&(&b.attn_impl, &b.variant, b.ctx, &b.key))
    });
    let mut groups: BTreeMap<(String, Option<String>), Vec<usize>> = BTreeMap::new();
    for (i, r) in prefill.iter().enumerate() {
        groups
            .entry((r.attn_impl.clone(), r.variant.clone()))
            .or_default()
            .push(i);
    }
    let mut scaling = Vec::new();
    for ((attn, variant), idx) in groups {
        let base = idx
            .iter()
            .copied()
            .find(|&i| prefill[i].prefill_s.is_some_and(|t| t > 0.0));
        let mut pts = Vec::new();
        if let Some(b) = base {
            let (n0, t0) = (prefill[b].ctx as f64, prefill[b].prefill_s.unwrap_or(0.0));
            for &i in &idx {
                let n = prefill[i].ctx as f64;
                prefill[i].expected_quadratic = (n / n0).powi(2);
                if let Some(t) = prefill[i].prefill_s.filter(|t| *t > 0.0) {
                    prefill[i].scaling_factor = Some(t / t0);
                    pts.push((n.ln(), t.ln()));
                }
            }
        }
        scaling.push(ScalingFit {
            attn_impl: attn,
            variant,
            exponent: slope(&pts),
            points: pts.len(),
        });
    }
    Tables {
        batch,
        context,
        prefill,
        scaling,
    }
}

/// The `_bN_` part of a cell key.
fn key_batch(key: &str) -> String {
    key.split('_')
        .find(|p| p.len() > 1 && p.starts_with('b') && p[1..].chars().all(|c| c.is_ascii_digit()))
        .map(|p| format!("_{p}_"))
        .unwrap_or_default()
}

/// Least-squares slope of (x, y); None with fewer than two distinct x.
pub fn slope(pts: &[(f64, f64)]) -> Option<f64> {
    if pts.len() < 2 {
        return None;
    }
    let n = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_square_law_is_two() {
        let pts: Vec<(f64, f64)> = [64.0f64, 128.0, 256.0]
            .iter()
            .map(|n| (n.ln(), (3.0 * n * n).ln()))
            .collect();
        assert!((slope(&pts).unwrap() - 2.0).abs() < 1e-12);
        assert_eq!(slope(&pts[..1]), None);
    }

    #[test]
    fn key_batch_finds_the_batch_part() {
        assert_eq!(
            key_batch("cpu_b8_p0_ctx128_gen16_span8_f32_invariant_flash_kv1_s0"),
            "_b8_"
        );
    }
}
