//! summary.json: everything an analysis concluded, schema-versioned. The report renderer, the
//! JUnit writer and CI read only this; it is written beside every report.
//!
//! Schema (version 1), documented field by field below; `docs/summary.md` lists it for users.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::history::verdict::RegressionVerdict;

pub const SUMMARY_SCHEMA_VERSION: u32 = 1;

/// The verdict words of the seeds and DESIGN.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Verdict {
    #[serde(rename = "PASS_EQUIV")]
    PassEquiv,
    #[serde(rename = "FAIL_EQUIV")]
    FailEquiv,
    #[serde(rename = "INVALID_TRACE")]
    InvalidTrace,
    #[serde(rename = "FAIL_BAD_INPUT")]
    FailBadInput,
    #[serde(rename = "FAIL_OOM")]
    FailOom,
    #[serde(rename = "FAIL_TIMEOUT")]
    FailTimeout,
    #[serde(rename = "FAIL_CRASH")]
    FailCrash,
    #[serde(rename = "SKIPPED_UNSUPPORTED_BATCH")]
    SkippedUnsupportedBatch,
    /// A cell with nothing to compare (e.g. gen = span = 1 prefill benchmarks): it ran.
    #[serde(rename = "OK")]
    Ok,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::PassEquiv => "PASS_EQUIV",
            Verdict::FailEquiv => "FAIL_EQUIV",
            Verdict::InvalidTrace => "INVALID_TRACE",
            Verdict::FailBadInput => "FAIL_BAD_INPUT",
            Verdict::FailOom => "FAIL_OOM",
            Verdict::FailTimeout => "FAIL_TIMEOUT",
            Verdict::FailCrash => "FAIL_CRASH",
            Verdict::SkippedUnsupportedBatch => "SKIPPED_UNSUPPORTED_BATCH",
            Verdict::Ok => "OK",
        }
    }

    pub fn parse(s: &str) -> Option<Verdict> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }

    /// Cells that ran to the end and whose numbers are trustworthy.
    pub fn passed(self) -> bool {
        matches!(self, Verdict::PassEquiv | Verdict::Ok)
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One side-by-side token of a divergence table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopToken {
    pub id: u32,
    pub logit: f32,
    /// The token decoded to text (empty when no tokenizer is available).
    pub text: String,
}

/// A compared row where the two sides disagree: where and what each side predicted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    /// The comparison it came from: "prefill_vs_decode", "batch_vs_batch1" or "golden".
    pub kind: String,
    /// Row index j (0 = the logits at P−1).
    pub position: usize,
    pub max_abs_diff: f64,
    pub top1_agree: bool,
    /// Reference log-prob gap between the two argmax tokens when they differ.
    pub logprob_gap: Option<f64>,
    pub near_tie: Option<bool>,
    pub reference_top5: Vec<TopToken>,
    pub candidate_top5: Vec<TopToken>,
}

/// Metrics of one comparison (one sequence, or merged over sequences).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairSummary {
    /// "prefill_vs_decode", "batch_vs_batch1" or "golden".
    pub kind: String,
    /// Reference side, e.g. "prefill", "batch 1 (cpu_b1_p3_…)", "golden".
    pub reference: String,
    pub rows_compared: usize,
    /// Rows left out because the two sides had generated different tokens before them.
    pub rows_excluded: usize,
    pub bit_exact: bool,
    pub max_abs_diff: f64,
    pub mean_abs_diff: f64,
    pub top1_agreement: f64,
    pub top5_overlap: f64,
    pub kl_mean: f64,
    pub kl_max: f64,
    /// llama.cpp's ladder: (label, value) e.g. ("99.9%", …).
    pub kl_ladder: Vec<(String, f64)>,
    /// First row that is not bit-exact.
    pub first_divergent_position: Option<usize>,
    /// First row where the two sides' generated tokens differ (later rows excluded).
    pub token_divergence_position: Option<usize>,
    pub flips: usize,
    pub flips_not_near_tie: usize,
    /// Max |Δ| per position (for the chart).
    pub max_abs_diff_by_position: Vec<f64>,
    pub nonfinite: Option<String>,
    pub pass: bool,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequenceSummary {
    /// Index within the cell's batch.
    pub b: usize,
    /// Prompt index i = prompt_offset + b.
    pub prompt_index: usize,
    pub prompt_len: usize,
    pub comparisons: Vec<PairSummary>,
    pub divergences: Vec<Divergence>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellSummary {
    pub key: String,
    /// The run.json status.
    pub status: String,
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    /// What could not be checked (e.g. no batch-1 twin), without failing the cell.
    pub notes: Vec<String>,
    /// A batch-1 reference cell added by `run` for pairing.
    pub reference_cell: bool,
    pub backend: Option<String>,
    pub device: Option<String>,
    pub batch: usize,
    pub prompt_offset: usize,
    pub ctx: usize,
    pub gen: usize,
    pub span: usize,
    pub dtype: String,
    pub numerics: String,
    pub attn_impl: String,
    pub kv_aligned: bool,
    pub variant: Option<String>,
    pub prefill_s: Option<f64>,
    pub decode_s: Option<f64>,
    pub reference_prefill_s: Option<f64>,
    pub model_load_s: Option<f64>,
    pub tokenize_s: Option<f64>,
    pub setup_s: Option<f64>,
    pub wall_s: Option<f64>,
    /// batch × (gen − 1) / decode_s; None when gen = 1.
    pub decode_tok_s: Option<f64>,
    /// batch × P / prefill_s.
    pub prefill_tok_s: Option<f64>,
    pub peak_mb: Option<f64>,
    pub peak_t_s: Option<f64>,
    pub high_water_mb: Option<f64>,
    pub baseline_mb: Option<f64>,
    pub memory_source: Option<String>,
    pub memory_period_s: Option<f64>,
    pub memory_samples: usize,
    /// (t, MB) samples, for the memory chart.
    pub memory_series: Vec<(f64, f64)>,
    /// Merged over the cell's sequences, one per comparison kind.
    pub comparisons: Vec<PairSummary>,
    pub sequences: Vec<SequenceSummary>,
}

/// b3_81's results table row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRow {
    pub key: String,
    pub batch: usize,
    pub peak_vram_mb: Option<f64>,
    pub prefill_s: Option<f64>,
    pub decode_s: Option<f64>,
    pub tokens_per_s: Option<f64>,
    /// tokens/s vs batch 1.
    pub speedup: Option<f64>,
    /// peak vs batch 1, MB.
    pub vram_delta_mb: Option<f64>,
    pub verdict: Verdict,
}

/// b3_77's results table row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextRow {
    pub key: String,
    pub ctx: usize,
    pub kv_aligned: bool,
    pub peak_vram_mb: Option<f64>,
    pub max_logits_diff: Option<f64>,
    pub top1_agreement: Option<f64>,
    pub verdict: Verdict,
}

/// b3_89's results table row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrefillRow {
    pub key: String,
    pub ctx: usize,
    pub attn_impl: String,
    pub variant: Option<String>,
    pub prefill_s: Option<f64>,
    pub wall_s: Option<f64>,
    pub throughput_tok_s: Option<f64>,
    pub status: String,
    /// prefill_s / prefill_s at the smallest context of the same attention implementation.
    pub scaling_factor: Option<f64>,
    /// (n / n₀)².
    pub expected_quadratic: f64,
}

/// Fitted exponent of prefill time vs context per attention implementation (log-log slope).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingFit {
    pub attn_impl: String,
    pub variant: Option<String>,
    pub exponent: Option<f64>,
    pub points: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tables {
    pub batch: Vec<BatchRow>,
    pub context: Vec<ContextRow>,
    pub prefill: Vec<PrefillRow>,
    pub scaling: Vec<ScalingFit>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overall {
    pub verdict: Verdict,
    /// `--gate` given and every cell inside it (or `--allow`ed).
    pub gate: Option<String>,
    pub gate_passed: bool,
    pub exit_code: i32,
    pub counts: std::collections::BTreeMap<String, usize>,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub schema_version: u32,
    pub tool: String,
    pub tool_version: String,
    pub mode: String,
    pub traces_dir: String,
    pub generated_at: String,
    pub policy: String,
    pub atol: Option<f64>,
    pub min_top1: Option<f64>,
    pub allow: Vec<String>,
    pub golden_dir: Option<String>,
    pub model: Option<String>,
    pub model_sha256: Option<String>,
    pub device: Option<String>,
    pub backend: Option<String>,
    /// The runner's per-phase timeout (sweep.json), seconds.
    pub timeout_s: Option<f64>,
    /// sweep.json's argv when the traces came from `tracecheck run`.
    pub run_argv: Option<Vec<String>>,
    pub analyze_argv: Vec<String>,
    pub cells: Vec<CellSummary>,
    pub tables: Tables,
    pub overall: Overall,
    /// The engine's source revision (first valid cell), when known.
    #[serde(default)]
    pub engine_revision: Option<String>,
    /// sweep.json's host name, when known.
    #[serde(default)]
    pub host: Option<String>,
    /// `--history`: this run against prior runs (null without it).
    #[serde(default)]
    pub history: Option<HistorySummary>,
}

/// One metric of one cell against prior runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricComparison {
    pub cell: String,
    /// `decode_tok_s`, `prefill_tok_s`, `prefill_s`, `decode_s`, `wall_s`, `peak_mb`,
    /// `high_water_mb` or `status`.
    pub metric: String,
    pub unit: String,
    /// `higher_is_better`, `lower_is_better` or `status`.
    pub direction: String,
    /// Median of the accepted values compared with (or the tagged run's value).
    pub baseline: Option<f64>,
    pub new: Option<f64>,
    /// (new − baseline) / |baseline|.
    pub change: Option<f64>,
    /// The accepted band [lo, hi]: inside it is WITHIN_NOISE.
    pub band: Option<(f64, f64)>,
    /// `threshold` or `spread` (the accepted runs' MAD was wider).
    pub band_from: Option<String>,
    /// The relative threshold applied.
    pub threshold: Option<f64>,
    /// Accepted values the baseline was taken from.
    pub history_runs: usize,
    /// Status metric: the cell's verdict in the baseline run and now.
    pub baseline_status: Option<String>,
    pub new_status: Option<String>,
    pub verdict: RegressionVerdict,
    /// Covered by an acknowledgement (a failing verdict that does not fail the run).
    pub acknowledged: bool,
}

/// Numeric drift of one cell's decode logits against the last accepted run's top-16 record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericsDrift {
    pub cell: String,
    /// The run whose record it was compared with.
    pub against_run: String,
    pub drift: PairSummary,
    pub verdict: RegressionVerdict,
    pub acknowledged: bool,
    /// Why it counts as a change (or why it could not be compared).
    pub reasons: Vec<String>,
}

/// An acknowledgement that let a change through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcknowledgedChange {
    pub cell: String,
    pub metric: String,
    pub verdict: RegressionVerdict,
    /// The acknowledgements file and the entry's position in it (1-based).
    pub file: String,
    pub entry: usize,
    pub reason: String,
    pub date: String,
}

/// How this analysis was recorded in the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRun {
    pub run_id: String,
    /// Accepted runs are the baseline of later ones.
    pub accepted: bool,
    pub decision: String,
}

/// One metric's values over the history, for a cell (the trend charts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendSeries {
    pub cell: String,
    pub metric: String,
    pub unit: String,
    /// Accepted values, oldest first (at most the last 30).
    pub accepted: Vec<f64>,
    pub new: Option<f64>,
    pub baseline: Option<f64>,
    pub band: Option<(f64, f64)>,
}

/// `--history`: this run against prior runs of the same mode, cell, model and device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistorySummary {
    pub dir: String,
    /// What the values were compared with, in words.
    pub baseline: String,
    /// `--baseline NAME` and the run it names.
    pub baseline_tag: Option<String>,
    pub baseline_run: Option<String>,
    /// `--history-window`: accepted runs the median is taken over.
    pub window: usize,
    /// `--regress-threshold`: the relative threshold of every metric (0.05 = 5 %) …
    pub threshold: f64,
    /// … and per metric, where given.
    pub thresholds: BTreeMap<String, f64>,
    /// Band half-width in MADs of the accepted values, from `min_runs_for_band` of them.
    pub noise_mads: f64,
    pub min_runs_for_band: usize,
    /// Accepted prior runs with the same mode and model and at least one cell on the same device.
    pub prior_accepted_runs: usize,
    pub acknowledgements_file: Option<String>,
    pub comparisons: Vec<MetricComparison>,
    pub numerics: Vec<NumericsDrift>,
    pub acknowledged: Vec<AcknowledgedChange>,
    /// Comparisons (metrics and numerics) per verdict.
    pub counts: BTreeMap<String, usize>,
    /// REGRESSED / NEW_FAILURE comparisons no acknowledgement covers: each fails the run.
    pub regressions: usize,
    /// None when the run was not recorded (`--no-record`, or bad input).
    pub recorded: Option<RecordedRun>,
    pub trends: Vec<TrendSeries>,
    /// Cells or records that could not be compared, and why.
    pub notes: Vec<String>,
}
