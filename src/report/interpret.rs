//! The Interpretation section, written from the numbers in the Summary: each bullet states what
//! the tables show (bit-exactness, scaling, memory) and is only emitted when the data supports
//! it. Bullets are Markdown without the leading "- ".

use crate::report::format::{self, join_distinct};
use crate::report::labels::{attn_label, cell_label, comparison_label, measured_cells};
use crate::summary::{CellSummary, PairSummary, Summary, Verdict};

/// At most this many failing comparisons are spelled out in one bullet.
const MAX_LISTED: usize = 4;

pub fn interpret(summary: &Summary) -> Vec<String> {
    let mut out = Vec::new();
    out.extend(context_headlines(summary));
    out.push(numerical_stability(summary));
    out.push(completion(summary));
    out.extend(throughput_scaling(summary));
    out.extend(vram_scaling(summary));
    out.extend(context_vram(summary));
    out.extend(prefill_scaling(summary));
    out.extend(attention_comparison(summary));
    out.extend(golden_drift(summary));
    out.extend(history(summary));
    out
}

/// One bullet on the run history: the regressions by name, else the improvements, else calm.
fn history(summary: &Summary) -> Option<String> {
    let h = summary.history.as_ref()?;
    let compared = h
        .comparisons
        .iter()
        .filter(|c| c.verdict != crate::summary::RegressionVerdict::InsufficientHistory)
        .count();
    if compared == 0 {
        return Some(format!(
            "**History:** no accepted prior run of the same mode, cells, model and device in `{}` yet; this run starts the history.",
            h.dir
        ));
    }
    let named = |pred: &dyn Fn(&crate::summary::MetricComparison) -> bool| -> Vec<String> {
        h.comparisons
            .iter()
            .filter(|c| pred(c))
            .map(|c| match c.change {
                Some(x) => format!("{} of `{}` ({:+.1} %)", c.metric, c.cell, x * 100.0),
                None => format!("{} of `{}`", c.metric, c.cell),
            })
            .collect()
    };
    let regressed = named(&|c| c.verdict.is_failure() && !c.acknowledged);
    let numerics = h
        .numerics
        .iter()
        .filter(|d| d.verdict.is_failure() && !d.acknowledged)
        .count();
    if !regressed.is_empty() || numerics > 0 {
        let mut parts = regressed;
        if numerics > 0 {
            parts.push(format!("the numerics of {numerics} cells"));
        }
        return Some(format!(
            "**History:** regressed against {} — {}.",
            h.baseline,
            parts.join(", ")
        ));
    }
    let improved = named(&|c| c.verdict == crate::summary::RegressionVerdict::Improved);
    let acked = h.acknowledged.len();
    let mut s = format!(
        "**History:** {compared} metrics compared with {}: no regressions",
        h.baseline
    );
    if acked > 0 {
        s.push_str(&format!(" ({acked} acknowledged changes)"));
    }
    if !improved.is_empty() {
        s.push_str(&format!("; improved: {}", improved.join(", ")));
    }
    s.push('.');
    Some(s)
}

fn sorted_distinct<T: Ord + Copy>(v: impl Iterator<Item = T>) -> Vec<T> {
    let mut v: Vec<T> = v.collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// b3_77's one-line verdict per context: `PASS_EQUIV @ ctx=32768; diff=0.0; top1=1.0`.
fn context_headlines(summary: &Summary) -> Vec<String> {
    summary
        .tables
        .context
        .iter()
        .map(|r| {
            let mut s = format!("{} @ ctx={}", r.verdict, r.ctx);
            if let Some(d) = r.max_logits_diff {
                s.push_str(&format!("; diff={}", format::short(d)));
            }
            if let Some(t) = r.top1_agreement {
                s.push_str(&format!("; top1={}", format::short(t)));
            }
            format!("**{s}**")
        })
        .collect()
}

/// Where the equivalence was tested, in the study's own dimension.
fn scope(cells: &[&CellSummary], all_ran: bool) -> String {
    let batches = sorted_distinct(cells.iter().map(|c| c.batch));
    let ctxs = sorted_distinct(cells.iter().map(|c| c.ctx));
    let mut attns: Vec<String> = Vec::new();
    for c in cells {
        let a = attn_label(&c.attn_impl, c.variant.as_deref());
        if !attns.contains(&a) {
            attns.push(a);
        }
    }
    let which = if all_ran {
        "all tested"
    } else {
        "the completed"
    };
    let mut s = if batches.len() > 1 {
        format!("across {which} batch sizes ({})", join_distinct(batches))
    } else if ctxs.len() > 1 {
        format!("across {which} contexts ({})", join_distinct(ctxs))
    } else {
        format!(
            "at ctx={} (batch {})",
            join_distinct(ctxs),
            join_distinct(batches)
        )
    };
    if attns.len() > 1 {
        s.push_str(&format!(
            " and attention implementations ({})",
            attns.join(", ")
        ));
    }
    s
}

fn pair_kinds(pairs: &[(&CellSummary, &PairSummary)]) -> String {
    let mut kinds: Vec<&str> = Vec::new();
    for (_, p) in pairs {
        let k = match p.kind.as_str() {
            "prefill_vs_decode" => "decode vs prefill",
            "batch_vs_batch1" => "batch N vs batch 1",
            other => other,
        };
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    kinds.join(" and ")
}

fn numerical_stability(summary: &Summary) -> String {
    let pairs: Vec<(&CellSummary, &PairSummary)> = summary
        .cells
        .iter()
        .flat_map(|c| c.comparisons.iter().map(move |p| (c, p)))
        .filter(|(_, p)| p.kind != "golden")
        .collect();
    if pairs.is_empty() {
        return "**Numerical Stability:** no logits were compared (no cell produced comparable rows)."
            .to_string();
    }
    let measured = measured_cells(summary);
    let compared: Vec<&CellSummary> = measured
        .iter()
        .copied()
        .filter(|c| c.comparisons.iter().any(|p| p.kind != "golden"))
        .collect();
    let scope = scope(&compared, compared.len() == measured.len());
    let rows: usize = pairs.iter().map(|(_, p)| p.rows_compared).sum();
    let failing: Vec<&(&CellSummary, &PairSummary)> = pairs
        .iter()
        .filter(|(_, p)| !p.pass || p.nonfinite.is_some())
        .collect();

    if failing.is_empty() && pairs.iter().all(|(_, p)| p.bit_exact) {
        return format!(
            "**Numerical Stability:** Bit-perfect equivalence (`diff=0.0`) maintained {scope}: {}, {rows} compared rows.",
            pair_kinds(&pairs)
        );
    }
    let (worst_cell, worst) = pairs
        .iter()
        .max_by(|a, b| a.1.max_abs_diff.total_cmp(&b.1.max_abs_diff))
        .copied()
        .expect("pairs is not empty");
    let all = &summary.cells;
    if failing.is_empty() {
        let kl = pairs.iter().map(|(_, p)| p.kl_mean).fold(0.0, f64::max);
        let top1 = pairs
            .iter()
            .map(|(_, p)| p.top1_agreement)
            .fold(1.0, f64::min);
        let flips: usize = pairs.iter().map(|(_, p)| p.flips).sum();
        let flips = match flips {
            0 => "no argmax flips".to_string(),
            1 => "1 argmax flip, a near-tie".to_string(),
            n => format!("{n} argmax flips, all near-ties"),
        };
        return format!(
            "**Numerical Stability:** Not bit-exact, but every comparison is within the `{}` policy {scope}: max |Δ| {} (`{}`, {}), worst mean KL {}, lowest top-1 {}; {flips}.",
            summary.policy,
            format::sig(worst.max_abs_diff, 4),
            cell_label(worst_cell, all),
            comparison_label(worst, worst_cell),
            format::kl(kl),
            format::ratio4(top1),
        );
    }

    let failing_cells = sorted_distinct(failing.iter().map(|(c, _)| c.key.as_str())).len();
    let compared_cells = sorted_distinct(pairs.iter().map(|(c, _)| c.key.as_str())).len();
    let details: Vec<String> = failing
        .iter()
        .take(MAX_LISTED)
        .map(|(c, p)| failing_detail(c, p, all))
        .collect();
    let more = failing.len().saturating_sub(MAX_LISTED);
    let mut s = format!(
        "**Numerical Stability:** FAIL_EQUIV in {failing_cells} of {compared_cells} compared cells under the `{}` policy — {}",
        summary.policy,
        details.join("; ")
    );
    if more > 0 {
        s.push_str(&format!("; and {more} more failing comparisons"));
    }
    s.push('.');
    let exact: Vec<String> = compared
        .iter()
        .filter(|c| {
            c.comparisons
                .iter()
                .filter(|p| p.kind != "golden")
                .all(|p| p.bit_exact)
        })
        .map(|c| format!("`{}`", cell_label(c, all)))
        .collect();
    if !exact.is_empty() {
        s.push_str(&format!(" Bit-exact: {}.", exact.join(", ")));
    }
    s
}

fn failing_detail(c: &CellSummary, p: &PairSummary, all: &[CellSummary]) -> String {
    let mut d = format!(
        "`{}` {}: max |Δ| {}, top-1 {}",
        cell_label(c, all),
        comparison_label(p, c),
        format::sig(p.max_abs_diff, 4),
        format::ratio4(p.top1_agreement)
    );
    if let Some(j) = p.first_divergent_position {
        d.push_str(&format!(", first divergent position {j}"));
    }
    if let Some(t) = p.token_divergence_position {
        d.push_str(&format!(", generated tokens differ from position {t}"));
    }
    if p.flips > 0 {
        d.push_str(&format!(
            ", {} argmax flip{} ({} not near-tie)",
            p.flips,
            if p.flips == 1 { "" } else { "s" },
            p.flips_not_near_tie
        ));
    }
    if let Some(n) = &p.nonfinite {
        d.push_str(&format!(", non-finite logits ({n})"));
    }
    d
}

fn stopped(v: Verdict) -> bool {
    !matches!(v, Verdict::PassEquiv | Verdict::FailEquiv | Verdict::Ok)
}

fn completion(summary: &Summary) -> String {
    let all = &summary.cells;
    let stopped: Vec<String> = all
        .iter()
        .filter(|c| stopped(c.verdict))
        .map(|c| {
            let mut s = format!("`{}` → {}", cell_label(c, all), c.verdict);
            if let Some(r) = c.reasons.first() {
                s.push_str(&format!(" ({r})"));
            }
            s
        })
        .collect();
    if stopped.is_empty() {
        let ctxs = sorted_distinct(measured_cells(summary).iter().map(|c| c.ctx));
        let ctx = if ctxs.len() == 1 {
            format!("at ctx={}", ctxs[0])
        } else {
            format!("at every context ({})", join_distinct(ctxs))
        };
        let who = match all.len() {
            1 => "The cell".to_string(),
            n => format!("All {n} cells"),
        };
        format!("**Stability:** {who} completed {ctx} without OOM, timeout or crash.")
    } else {
        format!(
            "**Stop Conditions:** {} of {} cells did not complete: {}.",
            stopped.len(),
            all.len(),
            stopped.join("; ")
        )
    }
}

fn throughput_scaling(summary: &Summary) -> Option<String> {
    let rows = &summary.tables.batch;
    let measured: Vec<_> = rows.iter().filter(|r| r.tokens_per_s.is_some()).collect();
    if measured.len() < 2 {
        return None;
    }
    let min = measured
        .iter()
        .filter_map(|r| r.tokens_per_s)
        .fold(f64::INFINITY, f64::min);
    let max = measured
        .iter()
        .filter_map(|r| r.tokens_per_s)
        .fold(0.0, f64::max);
    let batches = join_distinct(measured.iter().map(|r| r.batch));
    let range = format!(
        "tokens/s ranged {}–{} across batch sizes {batches}",
        format::fixed(min, 2),
        format::fixed(max, 2)
    );
    let Some(top) = rows
        .iter()
        .filter(|r| r.speedup.is_some() && r.batch > 1)
        .max_by_key(|r| r.batch)
    else {
        return Some(format!(
            "**Throughput Scaling:** no batch-1 baseline, so no speedup; {range}."
        ));
    };
    let s = top.speedup.unwrap_or_default();
    let b = top.batch as f64;
    let best = rows.iter().filter_map(|r| r.speedup).fold(0.0, f64::max);
    let shape = if best < 1.2 {
        "Throughput stayed nearly constant regardless of batch size: batching gave no parallel speedup.".to_string()
    } else if s / b >= 0.8 {
        "Scaling is near-linear.".to_string()
    } else {
        format!(
            "Scaling is sub-linear: {} of the ideal at batch {}.",
            format::percent(s / b),
            top.batch
        )
    };
    Some(format!(
        "**Throughput Scaling:** At batch {} the aggregate is {} batch 1's tokens/s (ideal linear: {}x, {} of linear); {range}. {shape}",
        top.batch,
        format::speedup(s),
        top.batch,
        format::percent(s / b),
    ))
}

fn vram_scaling(summary: &Summary) -> Option<String> {
    let rows: Vec<_> = summary
        .tables
        .batch
        .iter()
        .filter(|r| r.peak_vram_mb.is_some() && r.vram_delta_mb.is_some())
        .collect();
    let base = rows.iter().find(|r| r.batch == 1)?;
    let others: Vec<_> = rows.iter().filter(|r| r.batch > 1).collect();
    if others.is_empty() {
        return None;
    }
    let p1 = base.peak_vram_mb.unwrap_or_default();
    let deltas = others
        .iter()
        .map(|r| {
            format!(
                "{} at batch {}",
                format::delta_mb(r.vram_delta_mb.unwrap_or_default()),
                r.batch
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let head = format!(
        "**VRAM Scaling:** Peak {} MB at batch 1; vs batch 1: {deltas}.",
        format::mb(p1)
    );
    let ds: Vec<f64> = others
        .iter()
        .map(|r| r.vram_delta_mb.unwrap_or_default().round())
        .collect();
    let nondecreasing = ds.windows(2).all(|w| w[1] >= w[0]);
    let last = others.last().expect("others is not empty");
    let pn = last.peak_vram_mb.unwrap_or_default();
    let tail = if ds.iter().all(|&d| d == 0.0) {
        "The peak did not change with batch size.".to_string()
    } else if ds.iter().all(|&d| d >= 0.0) && nondecreasing {
        format!(
            "The peak grows with batch size: ~{} MB per additional sequence ({} → {} MB).",
            format::mb((pn - p1) / (last.batch as f64 - 1.0)),
            format::mb(p1),
            format::mb(pn)
        )
    } else if ds.iter().any(|&d| d < 0.0) {
        let period = summary
            .cells
            .iter()
            .find_map(|c| c.memory_period_s)
            .map(|p| format!(" every {}", format::secs_compact(p)))
            .unwrap_or_default();
        let mut t = format!(
            "Larger batches peaked below batch 1, which a sampled peak (sampled{period}) can show when it catches a transient spike in one run and misses it in another."
        );
        if others.len() >= 2 && nondecreasing {
            t.push_str(&format!(
                " From batch {} to {} the peak grew from {} to {} MB.",
                others[0].batch,
                last.batch,
                format::mb(others[0].peak_vram_mb.unwrap_or_default()),
                format::mb(pn)
            ));
        }
        t
    } else {
        "The peak does not grow monotonically with batch size.".to_string()
    };
    Some(format!("{head} {tail}"))
}

fn context_vram(summary: &Summary) -> Vec<String> {
    summary
        .tables
        .context
        .iter()
        .filter_map(|r| {
            let peak = r.peak_vram_mb?;
            let cell = summary.cells.iter().find(|c| c.key == r.key);
            let when = cell
                .and_then(|c| c.peak_t_s)
                .map(|t| format!(", {} into sampling", format::secs_compact(t)))
                .unwrap_or_default();
            let how = cell
                .and_then(|c| match (&c.memory_source, c.memory_period_s) {
                    (Some(s), Some(p)) => {
                        Some(format!(" (`{s}` every {})", format::secs_compact(p)))
                    }
                    (Some(s), None) => Some(format!(" (`{s}`)")),
                    _ => None,
                })
                .unwrap_or_default();
            Some(format!(
                "**VRAM:** Peak {} MB ({}) at ctx={}{when}{how}.",
                format::mb(peak),
                format::gb_approx(peak),
                r.ctx
            ))
        })
        .collect()
}

fn prefill_scaling(summary: &Summary) -> Vec<String> {
    summary
        .tables
        .scaling
        .iter()
        .map(|fit| {
            let mut rows: Vec<_> = summary
                .tables
                .prefill
                .iter()
                .filter(|r| r.attn_impl == fit.attn_impl && r.variant == fit.variant)
                .collect();
            rows.sort_by_key(|r| r.ctx);
            let name = attn_label(&fit.attn_impl, fit.variant.as_deref());
            let span = match (rows.first(), rows.last()) {
                (Some(a), Some(b)) => format!("contexts {}–{}", a.ctx, b.ctx),
                _ => "no contexts".to_string(),
            };
            let mut s = match fit.exponent {
                Some(e) => {
                    let shape = if (e - 2.0).abs() <= 0.2 {
                        "consistent with O(n²) attention".to_string()
                    } else if e < 2.0 {
                        "below quadratic: the linear-cost parts (projections, MLP) still weigh in at these lengths".to_string()
                    } else {
                        "above quadratic: costs beyond attention's n² (e.g. memory traffic) grow with context".to_string()
                    };
                    format!(
                        "**Prefill Scaling ({name}):** measured exponent {} vs 2 for O(n²) over {span} ({} points) — {shape}",
                        format::fixed(e, 2),
                        fit.points
                    )
                }
                None => format!(
                    "**Prefill Scaling ({name}):** too few completed points over {span} to fit an exponent ({} points)",
                    fit.points
                ),
            };
            let base = rows.first();
            if let (Some(b), Some(top)) = (base, rows.iter().rev().find(|r| r.scaling_factor.is_some())) {
                if top.ctx != b.ctx {
                    s.push_str(&format!(
                        "; ctx {} took {} the ctx {} time (n² predicts {})",
                        top.ctx,
                        format::factor(top.scaling_factor.unwrap_or_default()),
                        b.ctx,
                        format::expected_factor(top.expected_quadratic)
                    ));
                }
            }
            let tps: Vec<_> = rows.iter().filter(|r| r.throughput_tok_s.is_some()).collect();
            if let (Some(a), Some(b)) = (tps.first(), tps.last()) {
                if a.ctx != b.ctx {
                    s.push_str(&format!(
                        "; throughput {} → {} tok/s",
                        format::approx(a.throughput_tok_s.unwrap_or_default()),
                        format::approx(b.throughput_tok_s.unwrap_or_default())
                    ));
                }
            }
            s.push('.');
            s
        })
        .collect()
}

fn attention_comparison(summary: &Summary) -> Option<String> {
    let rows = &summary.tables.prefill;
    let ctx = sorted_distinct(rows.iter().map(|r| r.ctx))
        .into_iter()
        .rev()
        .find(|&n| {
            rows.iter()
                .filter(|r| r.ctx == n && r.prefill_s.is_some())
                .count()
                >= 2
        })?;
    let mut at: Vec<(String, f64)> = rows
        .iter()
        .filter(|r| r.ctx == ctx)
        .filter_map(|r| Some((attn_label(&r.attn_impl, r.variant.as_deref()), r.prefill_s?)))
        .collect();
    at.sort_by(|a, b| a.1.total_cmp(&b.1));
    let fastest = at[0].1;
    let parts: Vec<String> = at
        .iter()
        .enumerate()
        .map(|(i, (name, t))| {
            if i == 0 {
                format!("{name} {}s (fastest)", format::secs(*t))
            } else if fastest > 0.0 {
                format!(
                    "{name} {}s ({} slower)",
                    format::secs(*t),
                    format::speedup(t / fastest)
                )
            } else {
                format!("{name} {}s", format::secs(*t))
            }
        })
        .collect();
    Some(format!(
        "**Attention Implementations:** prefill at ctx {ctx}: {}.",
        parts.join(", ")
    ))
}

fn golden_drift(summary: &Summary) -> Option<String> {
    let pairs: Vec<(&CellSummary, &PairSummary)> = summary
        .cells
        .iter()
        .flat_map(|c| c.comparisons.iter().map(move |p| (c, p)))
        .filter(|(_, p)| p.kind == "golden")
        .collect();
    if pairs.is_empty() {
        return None;
    }
    let dir = summary
        .golden_dir
        .as_ref()
        .map(|d| format!(" (`{d}`)"))
        .unwrap_or_default();
    if pairs.iter().all(|(_, p)| p.bit_exact) {
        return Some(format!(
            "**Golden Drift:** bit-identical to the golden traces{dir} in all {} compared cells.",
            pairs.len()
        ));
    }
    let (c, worst) = pairs
        .iter()
        .max_by(|a, b| a.1.max_abs_diff.total_cmp(&b.1.max_abs_diff))
        .copied()?;
    let top1 = pairs
        .iter()
        .map(|(_, p)| p.top1_agreement)
        .fold(1.0, f64::min);
    let failing = pairs.iter().filter(|(_, p)| !p.pass).count();
    Some(format!(
        "**Golden Drift:** max |Δ| {} vs the golden traces{dir} (`{}`), lowest top-1 {}; {failing} of {} comparisons fail.",
        format::sig(worst.max_abs_diff, 4),
        cell_label(c, &summary.cells),
        format::ratio4(top1),
        pairs.len()
    ))
}
