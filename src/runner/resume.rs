//! Resuming a sweep: what a cell's directory holds before it runs. A valid OK cell is kept
//! (unless `--force`); anything else there (a status-only record of a failed attempt, or a
//! damaged cell) is re-run and replaced.

use std::path::Path;

use tracecheck_engine::trace::{CellTrace, Status, RUN_JSON};

/// A cell directory's state before the cell runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existing {
    Absent,
    /// A valid cell with status OK.
    Finished,
    /// A status-only record of an earlier attempt.
    Failed(Status),
    /// Something that is not a valid cell; the reason.
    Invalid(String),
}

impl Existing {
    /// Whether a directory is there (the engine then needs `--force` to replace it).
    pub fn is_present(&self) -> bool {
        !matches!(self, Existing::Absent)
    }
}

/// Looks at `<out>/<key>`.
pub fn existing(out: &Path, key: &str) -> Existing {
    let dir = out.join(key);
    if !dir.exists() {
        return Existing::Absent;
    }
    match CellTrace::open(&dir) {
        Ok(cell) if cell.record.status.is_ok() => Existing::Finished,
        Ok(cell) => Existing::Failed(cell.record.status),
        Err(e) => Existing::Invalid(e.to_string()),
    }
}

/// The modification time of a cell's run.json, to tell a cell written by this attempt from
/// one that was there before.
pub fn run_json_mtime(out: &Path, key: &str) -> Option<std::time::SystemTime> {
    std::fs::metadata(out.join(key).join(RUN_JSON))
        .and_then(|m| m.modified())
        .ok()
}
