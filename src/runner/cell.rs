//! One cell: run the engine, judge how it ended, and for a cell that did not finish write the
//! status-only run.json and stderr.tail.txt (atomically, through the trace library).

use std::path::Path;

use tracecheck_engine::trace::{write_status_only, PlannedCell, RunRecord, Status};

use super::engine_proc::{run_engine, ProcReport};
use super::error::RunError;
use super::plan::{engine_args, SweepPlan};
use super::progress::Progress;
use super::resume::{existing, run_json_mtime, Existing};
use super::status::{describe, status_of, Ending};

/// How one cell of the sweep ended.
#[derive(Debug, Clone, PartialEq)]
pub struct CellResult {
    pub key: String,
    /// A batch-1 twin added by the runner.
    pub reference: bool,
    pub status: Status,
    /// Finished in an earlier run and kept (not re-run).
    pub kept: bool,
    /// The engine's wall time (0 for a kept cell).
    pub seconds: f64,
    /// Why it failed, or a note on an odd success.
    pub message: Option<String>,
}

/// Runs `cell` (index `i`) whose directory held `before`. `Ok(None)` when the user interrupted
/// it: nothing is recorded, so a resume runs it again.
pub(crate) fn run_cell(
    plan: &SweepPlan,
    engine: &Path,
    cell: &PlannedCell,
    before: &Existing,
    i: usize,
    progress: &Progress,
) -> Result<Option<CellResult>, RunError> {
    let out = &plan.out;
    let key = cell.key.as_str();
    let mtime_before = run_json_mtime(out, key);
    let args = engine_args(plan, cell, before.is_present());
    let mut argv = vec![engine.display().to_string()];
    argv.extend(args.iter().map(|a| a.to_string_lossy().into_owned()));

    progress.start(i, key);
    let report = match run_engine(engine, &args, plan.timeout, &mut |ev| {
        progress.event(key, ev)
    }) {
        Ok(r) => r,
        Err(e) => {
            // Found and runnable at the start, so this is the engine (or host) failing.
            let message = format!("could not start {}: {e}", engine.display());
            let status = Status::FailCrash;
            record_failure(plan, cell, status, argv, &message, "")?;
            progress.end(i, key, status, 0.0, Some(&message));
            return Ok(Some(result(cell, status, 0.0, Some(message))));
        }
    };
    if matches!(report.ending, Ending::Interrupted(_)) {
        remove_staged(out, key, &report);
        return Ok(None);
    }
    let seconds = report.elapsed.as_secs_f64();
    let after = existing(out, key);
    let cell_ok = after == Existing::Finished;
    // Written by this attempt: an OK cell that was not there, or whose run.json changed.
    let fresh_ok = cell_ok && (mtime_before.is_none() || run_json_mtime(out, key) != mtime_before);
    let judged = status_of(&report.ending, cell_ok).unwrap_or(Status::FailCrash);
    let (status, message) = if judged.is_ok() {
        (Status::Ok, None)
    } else if fresh_ok {
        // The engine wrote a complete cell and failed only after: the data stands.
        let note = format!(
            "kept the cell it wrote, although {}",
            describe(&report.ending)
        );
        (Status::Ok, Some(note))
    } else {
        let message = failure_message(&report, &after, out, key);
        record_failure(plan, cell, judged, argv, &message, &report.stderr.text())?;
        remove_staged(out, key, &report);
        (judged, Some(message))
    };
    progress.end(i, key, status, seconds, message.as_deref());
    Ok(Some(result(cell, status, seconds, message)))
}

fn result(cell: &PlannedCell, status: Status, seconds: f64, message: Option<String>) -> CellResult {
    CellResult {
        key: cell.key.clone(),
        reference: cell.reference,
        status,
        kept: false,
        seconds,
        message,
    }
}

/// The engine's own error message when it gave one; else what happened and stderr's last line.
fn failure_message(report: &ProcReport, after: &Existing, out: &Path, key: &str) -> String {
    if let Ending::TimedOut { .. } = report.ending {
        return describe(&report.ending);
    }
    if let Some(m) = report
        .error_message
        .as_deref()
        .filter(|m| !m.trim().is_empty())
    {
        return m.trim().to_string();
    }
    let mut m = describe(&report.ending);
    if report.ending == Ending::Exited(0) {
        let dir = out.join(key);
        match after {
            Existing::Absent => {
                m.push_str(&format!(" but wrote no cell {}", dir.display()));
                // A key computed differently by the engine shows up here.
                if let Some(cell) = &report.done_cell {
                    m.push_str(&format!(" (it reported {cell})"));
                }
            }
            Existing::Invalid(why) => m.push_str(&format!(" but left an invalid cell: {why}")),
            Existing::Failed(s) => m.push_str(&format!(" but the cell holds status {s}")),
            Existing::Finished => {}
        }
    }
    if let Some(line) = report.stderr.last_line() {
        m.push_str(": ");
        m.push_str(line);
    }
    m
}

fn record_failure(
    plan: &SweepPlan,
    cell: &PlannedCell,
    status: Status,
    argv: Vec<String>,
    message: &str,
    stderr_tail: &str,
) -> Result<(), RunError> {
    let record = RunRecord::status_only(
        plan.mode.clone(),
        status,
        argv,
        cell.config.clone(),
        Some(message.to_string()),
    );
    // Replaces an earlier failed attempt (or, with --force, the old cell).
    write_status_only(&plan.out, &cell.key, &record, stderr_tail, true)?;
    Ok(())
}

/// A killed engine cannot clean up the directory it was staging (`.tmp-<key>-<pid>`).
fn remove_staged(out: &Path, key: &str, report: &ProcReport) {
    let staged = out.join(format!(".tmp-{key}-{}", report.pid));
    if staged.is_dir() {
        let _ = std::fs::remove_dir_all(staged);
    }
}
