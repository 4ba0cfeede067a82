//! `tracecheck run`: the sweep runner (DESIGN "Engine ↔ runner protocol"). It expands a mode
//! preset and the flags into cells, checks every input before any cell starts, then runs one
//! `tracecheck-engine capture` process per cell, sequentially (cells would contend for the
//! GPU), with a per-phase timeout, and records a status-only run.json for every cell that did
//! not finish. A sweep resumes: finished cells are kept unless `--force`.
//!
//! Parts: [`args`] (flags), [`plan`] (preset + flags → cells), [`checks`] and [`engine_bin`]
//! (input checks), [`engine_proc`] (one engine process), [`status`] (exit → status),
//! [`resume`], [`progress`], [`tail`] (stderr tail), `cell` (one cell end to end).

pub mod args;
mod cell;
pub mod checks;
pub mod engine_bin;
pub mod engine_proc;
pub mod error;
mod interrupt;
pub mod plan;
pub mod progress;
pub mod resume;
pub mod status;
pub mod tail;

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod tests_support;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tracecheck_engine::trace::{rfc3339_utc, Status, SweepRecord, ToolInfo, SWEEP_JSON};

pub use args::RunArgs;
pub use cell::CellResult;
pub use error::RunError;

use checks::ModelKind;
use progress::Progress;
use resume::Existing;

/// A model download is slow but must end.
const FETCH_LIMIT: Duration = Duration::from_secs(30 * 60);

/// What a sweep did.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// 2 when a cell failed with FAIL_BAD_INPUT, 128 + signal when interrupted, else 0 (failed
    /// cells are data for `analyze`, which gates).
    pub exit_code: i32,
    pub out: PathBuf,
    /// One per cell run or kept, in matrix order (cells after an interrupt are absent).
    pub cells: Vec<CellResult>,
    /// The signal that stopped the sweep.
    pub interrupted: Option<i32>,
}

impl RunOutcome {
    /// Cells per status.
    pub fn count(&self, status: Status) -> usize {
        self.cells.iter().filter(|c| c.status == status).count()
    }

    /// e.g. `6 cells: 5 OK (2 kept), 1 FAIL_OOM`.
    pub fn summary_line(&self) -> String {
        let n = self.cells.len();
        let mut parts = Vec::new();
        for &s in Status::ALL {
            let count = self.count(s);
            if count == 0 {
                continue;
            }
            let kept = self
                .cells
                .iter()
                .filter(|c| c.status == s && c.kept)
                .count();
            if kept > 0 {
                parts.push(format!("{count} {s} ({kept} kept)"));
            } else {
                parts.push(format!("{count} {s}"));
            }
        }
        let mut line = format!(
            "{n} cell{}: {}",
            if n == 1 { "" } else { "s" },
            if parts.is_empty() {
                "none run".to_string()
            } else {
                parts.join(", ")
            }
        );
        if let Some(sig) = self.interrupted {
            line.push_str(&format!(
                " — interrupted by signal {sig}; run again to resume"
            ));
        }
        line
    }
}

/// Runs the sweep `args` describes. Bad input is an `Err` before any cell starts; cell failures
/// are in the outcome.
pub fn run(args: &RunArgs) -> Result<RunOutcome, RunError> {
    let prompt_ids = args
        .prompt_ids
        .as_deref()
        .map(checks::read_prompt_ids)
        .transpose()?;
    let plan = plan::resolve(args, prompt_ids.as_ref())?;
    let model_kind = checks::check_model(&plan.model)?;
    let engine = engine_bin::find_engine(args.engine.as_deref())?;
    let engine_version = engine_bin::engine_version(&engine)?;
    let cells = plan::expand(&plan);
    checks::prepare_out_dir(&plan)?;

    let progress = Progress::auto(cells.len());
    let _signals = interrupt::Guard::install();
    let states: Vec<Existing> = cells
        .iter()
        .map(|c| resume::existing(&plan.out, &c.key))
        .collect();
    let to_run = plan.force || states.iter().any(|s| *s != Existing::Finished);
    if model_kind == ModelKind::Named && to_run {
        progress.note(&format!("fetching {} (once; cached after)…", plan.model));
        engine_bin::fetch_model(&engine, &plan.model, FETCH_LIMIT)?;
    }

    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let tool = ToolInfo {
        name: "tracecheck".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let mut record = SweepRecord::begin(tool, plan.mode.clone(), argv, plan.model.clone());
    record.matrix = cells.clone();
    record.timeout_s = Some(plan.timeout.as_secs_f64());
    record
        .tool_versions
        .insert("tracecheck".into(), env!("CARGO_PKG_VERSION").into());
    record
        .tool_versions
        .insert("tracecheck-engine".into(), engine_version);
    let sweep_json = plan.out.join(SWEEP_JSON);
    record.write(&sweep_json)?;

    let mut results = Vec::with_capacity(cells.len());
    let mut interrupted = None;
    for (i, (cell, before)) in cells.iter().zip(&states).enumerate() {
        if let Some(sig) = interrupt::pending() {
            interrupted = Some(sig);
            break;
        }
        if *before == Existing::Finished && !plan.force {
            progress.kept(i, &cell.key);
            results.push(CellResult {
                key: cell.key.clone(),
                reference: cell.reference,
                status: Status::Ok,
                kept: true,
                seconds: 0.0,
                message: None,
            });
            continue;
        }
        match cell::run_cell(&plan, &engine, cell, before, i, &progress)? {
            Some(r) => results.push(r),
            None => {
                interrupted = interrupt::pending().or(Some(2));
                break;
            }
        }
    }

    record.ended_at = Some(rfc3339_utc(SystemTime::now()));
    record.write(&sweep_json)?;

    let exit_code = match interrupted {
        Some(sig) => 128 + sig,
        None if results.iter().any(|r| r.status == Status::FailBadInput) => 2,
        None => 0,
    };
    let outcome = RunOutcome {
        exit_code,
        out: plan.out.clone(),
        cells: results,
        interrupted,
    };
    progress.finish(&outcome.summary_line());
    Ok(outcome)
}
