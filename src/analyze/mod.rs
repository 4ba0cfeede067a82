//! `tracecheck analyze`: reads a traces directory (any engine's, through the engine's trace
//! library), compares prefill vs decode, batch N vs batch 1 and run vs golden in f64, gives
//! each cell a verdict under the policy, builds the mode's tables and the [`Summary`], writes
//! summary.json and the report, and computes the CI gate's exit code.

pub mod compare;
pub mod load;
mod tables;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use thiserror::Error;

use tracecheck_engine::capture::ModelSpec;
use tracecheck_engine::tokenizer::Tokenizer;
use tracecheck_engine::trace::{write_file_atomic, CellTrace, Status};

use crate::golden::GoldenSet;
use crate::metrics::{Overrides, Policy};
use crate::summary::{CellSummary, Overall, Summary, Verdict, SUMMARY_SCHEMA_VERSION};

use compare::{compare_cell, Ctx};
use load::{check_consistency, key_config, load_cells, Loaded};

#[derive(Debug, Error)]
pub enum AnalyzeError {
    #[error("{0}")]
    BadInput(String),
}

#[derive(Debug, Clone, clap::Args)]
pub struct AnalyzeArgs {
    /// b3_81, b3_77 or b3_89.
    #[arg(long)]
    pub mode: String,
    #[arg(long)]
    pub traces_dir: PathBuf,
    /// A golden set (golden/<mode>/<model>) to report drift against.
    #[arg(long)]
    pub golden: Option<PathBuf>,
    /// The Markdown report (default: <traces-dir>/report.md); PNGs and summary.json beside it.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// exact | fp32 | fp16 | bf16.
    #[arg(long, default_value = "exact")]
    pub policy: String,
    /// Overrides the policy's max |Δlogit|.
    #[arg(long)]
    pub atol: Option<f64>,
    /// Overrides the policy's minimum top-1 agreement.
    #[arg(long)]
    pub min_top1: Option<f64>,
    /// Fail (exit 1) unless every cell is within this verdict (PASS_EQUIV).
    #[arg(long)]
    pub gate: Option<String>,
    /// Statuses the gate lets through, comma-separated (e.g. SKIPPED_UNSUPPORTED_BATCH).
    #[arg(long, value_delimiter = ',')]
    pub allow: Vec<String>,
    /// Write summary.json here instead of beside the report.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// A GGUF model (or smollm2-135m / tiny) whose tokenizer decodes tokens in the report
    /// (default: the sweep's model when it is at hand).
    #[arg(long)]
    pub model: Option<String>,
    /// Report title (default: the mode's).
    #[arg(long)]
    pub title: Option<String>,
    /// Also write a JUnit XML file: one test case per cell verdict and per comparison.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    #[command(flatten)]
    pub history: crate::history::HistoryArgs,
}

pub struct Outcome {
    pub summary: Summary,
    pub report: PathBuf,
    pub summary_path: PathBuf,
}

fn bad(e: impl std::fmt::Display) -> AnalyzeError {
    AnalyzeError::BadInput(e.to_string())
}

fn parse_verdict(flag: &str, s: &str) -> Result<Verdict, AnalyzeError> {
    Verdict::parse(s.trim()).ok_or_else(|| {
        bad(format!(
            "{flag} {s}: unknown verdict (known: PASS_EQUIV, FAIL_EQUIV, INVALID_TRACE, FAIL_BAD_INPUT, FAIL_OOM, FAIL_TIMEOUT, FAIL_CRASH, SKIPPED_UNSUPPORTED_BATCH, OK)"
        ))
    })
}

/// The tokenizer of the model named by `--model` or the sweep, when it can be opened.
fn tokenizer_for(spec: Option<&str>) -> Option<Tokenizer> {
    let spec = spec?;
    let path = match spec.parse::<ModelSpec>().ok()? {
        ModelSpec::Named(name) => tracecheck_engine::fetch::cached_path(&name).ok()?,
        ModelSpec::Dummy(_) => return None,
        ModelSpec::Path(p) => p,
    };
    let f = tracecheck_engine::gguf::GgufFile::open(&path).ok()?;
    tracecheck_engine::model::gguf_tokenizer(&f).ok()
}

fn status_verdict(s: Status) -> Verdict {
    match s {
        Status::Ok => Verdict::PassEquiv,
        Status::FailBadInput => Verdict::FailBadInput,
        Status::FailOom => Verdict::FailOom,
        Status::FailTimeout => Verdict::FailTimeout,
        Status::SkippedUnsupportedBatch => Verdict::SkippedUnsupportedBatch,
        Status::FailCrash => Verdict::FailCrash,
    }
}

fn cell_summary(ctx: &Ctx<'_>, l: &Loaded, reference: bool) -> CellSummary {
    let (cfg, backend) = match l.ok() {
        Some(t) => (
            Some(t.record.config.clone()),
            t.record.engine.as_ref().map(|e| e.backend.clone()),
        ),
        None => match key_config(&l.key) {
            Some(k) => (Some(k.config), Some(k.backend)),
            None => (None, None),
        },
    };
    let mut s = CellSummary {
        key: l.key.clone(),
        status: "INVALID".into(),
        verdict: Verdict::InvalidTrace,
        reasons: vec![],
        notes: vec![],
        reference_cell: reference,
        backend,
        device: None,
        batch: cfg.as_ref().map_or(0, |c| c.batch),
        prompt_offset: cfg.as_ref().map_or(0, |c| c.prompt_offset),
        ctx: cfg.as_ref().map_or(0, |c| c.ctx),
        gen: cfg.as_ref().map_or(0, |c| c.gen),
        span: cfg.as_ref().map_or(0, |c| c.span),
        dtype: cfg
            .as_ref()
            .map(|c| c.dtype.to_string())
            .unwrap_or_default(),
        numerics: cfg
            .as_ref()
            .map(|c| c.numerics.to_string())
            .unwrap_or_default(),
        attn_impl: cfg
            .as_ref()
            .map(|c| c.attn_impl.to_string())
            .unwrap_or_default(),
        kv_aligned: cfg.as_ref().is_none_or(|c| c.kv_aligned),
        variant: cfg.as_ref().and_then(|c| c.variant.clone()),
        prefill_s: None,
        decode_s: None,
        reference_prefill_s: None,
        model_load_s: None,
        tokenize_s: None,
        setup_s: None,
        wall_s: None,
        decode_tok_s: None,
        prefill_tok_s: None,
        peak_mb: None,
        peak_t_s: None,
        high_water_mb: None,
        baseline_mb: None,
        memory_source: None,
        memory_period_s: None,
        memory_samples: 0,
        memory_series: vec![],
        comparisons: vec![],
        sequences: vec![],
    };
    let t: &CellTrace = match &l.trace {
        Err(e) => {
            s.reasons.push(e.clone());
            return s;
        }
        Ok(t) => t,
    };
    let r = &t.record;
    s.status = r.status.to_string();
    s.verdict = status_verdict(r.status);
    s.device = r.engine.as_ref().map(|e| e.device.clone());
    if let Some(e) = &r.error {
        s.reasons.push(e.clone());
    }
    if let Some(tm) = &r.timings {
        let c = &r.config;
        s.prefill_s = Some(tm.prefill_s);
        s.decode_s = Some(tm.decode_s);
        s.reference_prefill_s = Some(tm.reference_prefill_s);
        s.model_load_s = Some(tm.model_load_s);
        s.tokenize_s = Some(tm.tokenize_s);
        s.setup_s = Some(tm.setup_s);
        s.wall_s = Some(tm.wall_s);
        s.decode_tok_s =
            (c.gen > 1 && tm.decode_s > 0.0).then(|| (c.batch * (c.gen - 1)) as f64 / tm.decode_s);
        s.prefill_tok_s = (tm.prefill_s > 0.0).then(|| (c.batch * c.ctx) as f64 / tm.prefill_s);
    }
    if let Some(m) = &r.memory {
        s.peak_mb = Some(m.peak_mb);
        s.peak_t_s = Some(m.peak_t_s);
        s.high_water_mb = Some(m.high_water_mb);
        s.baseline_mb = Some(m.baseline_mb);
        s.memory_source = Some(m.source.clone());
        s.memory_period_s = Some(m.period_s);
        s.memory_samples = m.samples.len();
        s.memory_series = m.samples.clone();
    }
    if r.status.is_ok() {
        let c = compare_cell(ctx, t);
        s.notes = c.notes;
        let failed: Vec<String> = c
            .merged
            .iter()
            .filter(|p| !p.pass)
            .flat_map(|p| {
                p.reasons
                    .iter()
                    .map(move |why| format!("{}: {why}", p.kind))
            })
            .collect();
        s.verdict = if !failed.is_empty() {
            Verdict::FailEquiv
        } else if c.merged.is_empty() {
            Verdict::Ok
        } else {
            Verdict::PassEquiv
        };
        s.reasons.extend(failed);
        s.comparisons = c.merged;
        s.sequences = c.sequences;
    }
    s
}

/// Runs an analysis and writes summary.json and the report.
pub fn analyze(a: &AnalyzeArgs, argv: Vec<String>) -> Result<Outcome, AnalyzeError> {
    if !crate::modes::names().contains(&a.mode.as_str()) {
        return Err(bad(format!(
            "unknown mode `{}` (known: {})",
            a.mode,
            crate::modes::names().join(", ")
        )));
    }
    let policy: Policy = a
        .policy
        .parse()
        .map_err(|e| bad(format!("--policy {}: {e}", a.policy)))?;
    let gate = a
        .gate
        .as_deref()
        .map(|g| parse_verdict("--gate", g))
        .transpose()?;
    let allow: Vec<Verdict> = a
        .allow
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| parse_verdict("--allow", s))
        .collect::<Result<_, _>>()?;
    // Before any trace is opened: a bad history flag, file or acknowledgement fails fast.
    let history = crate::history::prepare(&a.history).map_err(bad)?;
    let (mut cells, sweep) = load_cells(&a.traces_dir)?;
    check_consistency(&mut cells);
    let golden = a
        .golden
        .as_deref()
        .map(GoldenSet::load)
        .transpose()
        .map_err(bad)?;
    let model_spec = a
        .model
        .clone()
        .or_else(|| sweep.as_ref().map(|s| s.model.clone()));
    let tokenizer = tokenizer_for(model_spec.as_deref());
    let device = cells
        .iter()
        .filter_map(Loaded::ok)
        .find_map(|t| t.record.engine.as_ref().map(|e| e.device.clone()));
    let ctx = Ctx {
        cells: &cells,
        policy,
        overrides: Overrides {
            atol: a.atol,
            min_top1: a.min_top1,
        },
        tokenizer: tokenizer.as_ref(),
        golden: golden.as_ref(),
        device: device.clone(),
    };
    let reference_keys: Vec<String> = sweep
        .as_ref()
        .map(|s| {
            s.matrix
                .iter()
                .filter(|c| c.reference)
                .map(|c| c.key.clone())
                .collect()
        })
        .unwrap_or_default();
    let summaries: Vec<CellSummary> = cells
        .par_iter()
        .map(|l| cell_summary(&ctx, l, reference_keys.contains(&l.key)))
        .collect();

    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for c in &summaries {
        *counts.entry(c.verdict.to_string()).or_default() += 1;
    }
    let mut problems: Vec<String> = summaries
        .iter()
        .filter(|c| matches!(c.verdict, Verdict::InvalidTrace | Verdict::FailBadInput))
        .map(|c| format!("{}: {} — {}", c.key, c.verdict, c.reasons.join("; ")))
        .collect();
    if let Some(g) = &golden {
        for k in g.keys() {
            if !summaries.iter().any(|c| &c.key == k) {
                problems.push(format!("golden cell {k} is missing from the traces"));
            }
        }
    }
    let bad_input = summaries
        .iter()
        .any(|c| matches!(c.verdict, Verdict::InvalidTrace | Verdict::FailBadInput));
    let outside_gate: Vec<&CellSummary> = match gate {
        Some(g) => summaries
            .iter()
            .filter(|c| c.verdict != g && c.verdict != Verdict::Ok && !allow.contains(&c.verdict))
            .collect(),
        None => vec![],
    };
    let golden_missing = golden.is_some() && problems.iter().any(|p| p.starts_with("golden cell"));
    let gate_passed = gate.is_some() && outside_gate.is_empty() && !golden_missing;
    let worst = summaries
        .iter()
        .map(|c| c.verdict)
        .filter(|v| !v.passed())
        .max()
        .unwrap_or(Verdict::PassEquiv);
    let exit_code = if bad_input {
        2
    } else if gate.is_some() && !gate_passed {
        1
    } else {
        0
    };
    let first_ok = cells.iter().filter_map(Loaded::ok).next();
    let mut summary = Summary {
        schema_version: SUMMARY_SCHEMA_VERSION,
        tool: "tracecheck".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        mode: a.mode.clone(),
        traces_dir: a.traces_dir.display().to_string(),
        generated_at: tracecheck_engine::trace::rfc3339_utc(std::time::SystemTime::now()),
        policy: policy.to_string(),
        atol: a.atol,
        min_top1: a.min_top1,
        allow: allow.iter().map(|v| v.to_string()).collect(),
        golden_dir: a.golden.as_ref().map(|p| p.display().to_string()),
        model: first_ok.and_then(|t| t.record.model.as_ref().map(|m| m.name.clone())),
        model_sha256: first_ok.and_then(|t| t.record.model.as_ref().map(|m| m.sha256.clone())),
        device,
        backend: first_ok.and_then(|t| t.record.engine.as_ref().map(|e| e.backend.clone())),
        timeout_s: sweep.as_ref().and_then(|s| s.timeout_s),
        run_argv: sweep.as_ref().map(|s| s.argv.clone()),
        analyze_argv: argv,
        tables: tables::build(&a.mode, &summaries),
        cells: summaries,
        overall: Overall {
            verdict: worst,
            gate: gate.map(|g| g.to_string()),
            gate_passed,
            exit_code,
            counts,
            problems,
        },
        engine_revision: cells
            .iter()
            .filter_map(Loaded::ok)
            .find_map(|t| t.record.engine.as_ref().and_then(|e| e.revision.clone())),
        host: sweep.as_ref().map(|s| s.host.hostname.clone()),
        history: None,
    };
    let history = crate::history::finish(
        history,
        crate::history::Input {
            summary: &summary,
            traces: &cells,
            thresholds: policy.thresholds(&ctx.overrides),
        },
    )
    .map_err(bad)?;
    if let Some(h) = history {
        // Regressions no acknowledgement covers fail the run, with or without --gate.
        if h.regressions > 0 && summary.overall.exit_code == 0 {
            summary.overall.exit_code = 1;
        }
        summary.history = Some(h);
    }
    let report = a
        .output
        .clone()
        .unwrap_or_else(|| a.traces_dir.join("report.md"));
    let summary_path = a.json.clone().unwrap_or_else(|| {
        report
            .parent()
            .unwrap_or(Path::new("."))
            .join("summary.json")
    });
    if let Some(dir) = report.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| bad(format!("{}: {e}", dir.display())))?;
    }
    let json = serde_json::to_string_pretty(&summary).map_err(bad)?;
    write_file_atomic(&summary_path, json.as_bytes()).map_err(bad)?;
    let rctx = crate::report::ReportContext {
        title: a.title.clone(),
        ..Default::default()
    };
    crate::report::render(&summary, &rctx, &report).map_err(bad)?;
    // JUnit (--junit) and the GitHub step summary ($GITHUB_STEP_SUMMARY).
    crate::ci_output::write_outputs(&summary, a.junit.as_deref()).map_err(bad)?;
    Ok(Outcome {
        summary,
        report,
        summary_path,
    })
}
