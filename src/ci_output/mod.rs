//! CI outputs of `tracecheck analyze`, both presentation only (every number comes from the
//! [`Summary`]):
//!
//! - [`junit`]: `--junit FILE`, a JUnit XML file with one test case per cell verdict and per
//!   comparison ([`checks`] is the list it renders; new kinds of checks are added there).
//! - [`step_summary`]: a Markdown job summary appended to `$GITHUB_STEP_SUMMARY` when that is
//!   set (GitHub Actions), kept under GitHub's 1 MiB limit.
//!
//! A JUnit file that cannot be written is an error (the user asked for it: exit 2). A step
//! summary that cannot be written is only a warning on stderr: it is a convenience of the CI
//! host, and the analysis, its report and its exit code stand without it.

pub mod checks;
pub mod junit;
pub mod step_summary;

#[cfg(test)]
mod tests;

use std::path::Path;

use thiserror::Error;
use tracecheck_engine::trace::{write_file_atomic, TraceError};

use crate::summary::Summary;

pub use checks::{checks, Check, CheckOutcome};

/// The variable GitHub Actions sets to the step's summary file.
pub const STEP_SUMMARY_ENV: &str = "GITHUB_STEP_SUMMARY";

#[derive(Debug, Error)]
pub enum CiOutputError {
    /// The error names the file.
    #[error("--junit: {0}")]
    Junit(#[source] TraceError),
}

/// Writes the JUnit file (atomically, when `junit` is given) and appends the step summary
/// (when `$GITHUB_STEP_SUMMARY` is set and not empty).
pub fn write_outputs(summary: &Summary, junit: Option<&Path>) -> Result<(), CiOutputError> {
    if let Some(path) = junit {
        write_junit(summary, path)?;
    }
    if let Some(path) = std::env::var_os(STEP_SUMMARY_ENV).filter(|p| !p.is_empty()) {
        if let Err(e) = step_summary::append(Path::new(&path), summary) {
            eprintln!("tracecheck: warning: step summary (${STEP_SUMMARY_ENV}) not written: {e}");
        }
    }
    Ok(())
}

/// The JUnit file of one analysis, written atomically (a CI reporter never reads half a file).
pub fn write_junit(summary: &Summary, path: &Path) -> Result<(), CiOutputError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| {
            CiOutputError::Junit(TraceError::Io {
                path: dir.to_path_buf(),
                source,
            })
        })?;
    }
    let xml = junit::render_summary(summary);
    write_file_atomic(path, xml.as_bytes()).map_err(CiOutputError::Junit)
}
