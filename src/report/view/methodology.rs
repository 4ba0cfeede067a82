//! The Methodology section: runner, matrix, stop conditions, memory sampling.

use serde::Serialize;

use crate::report::context::ReportContext;
use crate::report::format::{self, join_distinct};
use crate::report::labels::attn_label;
use crate::summary::{CellSummary, Summary};

#[derive(Debug, Serialize)]
pub(crate) struct Methodology {
    /// The first run command on one line, for inline code.
    pub runner: Option<String>,
    /// How many more run commands the Execution Commands section lists.
    pub runner_more: usize,
    pub contexts: String,
    /// `64 tokens`.
    pub gen: String,
    /// `First 8 generated tokens`.
    pub span: String,
    /// `BF16`.
    pub dtype: String,
    /// `` `kv_aligned=1` ``.
    pub kv: String,
    /// Shown only where batch size is part of the study.
    pub batches: Option<String>,
    pub numerics: String,
    pub attn: String,
    pub model: Option<String>,
    pub backend: Option<String>,
    /// `600s per phase`.
    pub timeout: String,
    pub unsupported_batch: bool,
    /// `VRAM Monitoring` (device memory) or `Memory Monitoring` (host RSS).
    pub monitoring_label: String,
    pub monitoring: Option<String>,
    /// Period as written in prose: `1s`.
    pub period: Option<String>,
}

pub(super) fn build(summary: &Summary, ctx: &ReportContext, cells: &[&CellSummary]) -> Methodology {
    let runs = super::commands::run_commands(summary, ctx);
    let mut batches: Vec<usize> = cells.iter().map(|c| c.batch).collect();
    batches.sort_unstable();
    batches.dedup();
    let batch_study = summary.mode == "b3_81" || batches.iter().any(|&b| b != 1);
    let mut contexts: Vec<usize> = cells.iter().map(|c| c.ctx).collect();
    contexts.sort_unstable();
    contexts.dedup();
    let mut gens: Vec<usize> = cells.iter().map(|c| c.gen).collect();
    gens.sort_unstable();
    gens.dedup();
    let mut spans: Vec<usize> = cells.iter().map(|c| c.span).collect();
    spans.sort_unstable();
    spans.dedup();
    let (monitoring_label, monitoring, period) = monitoring(cells);
    Methodology {
        runner: runs.first().map(|argv| {
            argv.iter()
                .map(|a| format::shell_quote(a))
                .collect::<Vec<_>>()
                .join(" ")
        }),
        runner_more: runs.len().saturating_sub(1),
        contexts: join_distinct(contexts),
        gen: format!("{} {}", join_distinct(&gens), plural(&gens, "token")),
        span: format!(
            "First {} generated {}",
            join_distinct(&spans),
            plural(&spans, "token")
        ),
        dtype: join_distinct(cells.iter().map(|c| c.dtype.to_uppercase())),
        kv: join_distinct(
            cells
                .iter()
                .map(|c| format!("`kv_aligned={}`", u8::from(c.kv_aligned))),
        ),
        batches: batch_study.then(|| join_distinct(batches)),
        numerics: join_distinct(cells.iter().map(|c| c.numerics.clone())),
        attn: join_distinct(
            cells
                .iter()
                .map(|c| attn_label(&c.attn_impl, c.variant.as_deref())),
        ),
        model: summary.model.clone(),
        backend: summary
            .backend
            .clone()
            .or_else(|| cells.iter().find_map(|c| c.backend.clone())),
        timeout: summary
            .timeout_s
            .or_else(|| timeout_s(&runs))
            .map(|s| format!("{} per phase", format::secs_compact(s)))
            .unwrap_or_else(|| "per phase, the runner's default".to_string()),
        unsupported_batch: batch_study,
        monitoring_label,
        monitoring,
        period,
    }
}

fn plural(values: &[usize], word: &str) -> String {
    if values == [1] {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

/// `--timeout S` from the run command (the traces do not record it).
pub(crate) fn timeout_s(runs: &[Vec<String>]) -> Option<f64> {
    for argv in runs {
        for (i, a) in argv.iter().enumerate() {
            let value = if a == "--timeout" {
                argv.get(i + 1).map(String::as_str)
            } else {
                a.strip_prefix("--timeout=")
            };
            if let Some(v) = value.and_then(|v| v.trim_end_matches('s').parse::<f64>().ok()) {
                return Some(v);
            }
        }
    }
    None
}

fn monitoring(cells: &[&CellSummary]) -> (String, Option<String>, Option<String>) {
    let sources: Vec<String> = {
        let mut v: Vec<String> = cells
            .iter()
            .filter_map(|c| c.memory_source.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let device_memory = !sources.iter().all(|s| s == "rss");
    let label = if device_memory || sources.is_empty() {
        "VRAM Monitoring"
    } else {
        "Memory Monitoring"
    };
    let period = cells.iter().find_map(|c| c.memory_period_s);
    let text = (!sources.is_empty()).then(|| {
        let via = sources
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ");
        match period {
            Some(p) => format!(
                "Real-time sampling via {via} every {}, plus one sample at every phase boundary.",
                format::secs_compact(p)
            ),
            None => format!("Sampling via {via} at every phase boundary."),
        }
    });
    (label.to_string(), text, period.map(format::secs_compact))
}
