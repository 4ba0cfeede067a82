//! Trace format v1 (DESIGN "Trace format v1"): the one implementation every reader and writer of
//! traces uses, the capture engine and the analyzer alike. It needs no backend feature.
//!
//! A sweep directory holds [`SWEEP_JSON`] ([`SweepRecord`]) and one directory per cell, named by
//! its canonical key ([`cell_key`], [`CellKey`]). A cell holds [`RUN_JSON`] ([`RunRecord`],
//! checked against the bundled JSON Schema, see [`schema`]), [`LOGITS_FILE`] ([`LogitsFile`],
//! written by [`write_logits`]) when its status is OK, and [`STDERR_TAIL`] when it did not
//! finish. [`CellTrace::open`] reads and cross-checks a cell; [`write_cell`] and
//! [`write_status_only`] write one atomically ([`StagedDir`], [`write_file_atomic`]). Every
//! failure is a [`TraceError`] naming the file and the fault.

pub mod atomic;
pub mod cell;
pub mod cell_key;
pub mod config;
pub mod logits;
pub mod run;
pub mod schema;
pub mod sweep;

use std::fmt::Display;
use std::path::{Path, PathBuf};

pub use atomic::{write_file_atomic, write_file_atomic_with, StagedDir};
pub use cell::{cross_check, list_cell_dirs, write_cell, write_status_only, CellTrace};
pub use cell_key::{cell_key, sanitize_label, twin_key, CellKey, CellKeyError};
pub use config::{AttnImpl, CellConfig, Dtype, Numerics, ParseNameError};
pub use logits::{write_logits, LogitDtype, LogitsFile, Side, ROW_SEMANTICS};
pub use run::{EngineInfo, Memory, ModelInfo, RunRecord, Status, Timings, Tokens};
pub use schema::{run_schema, sweep_schema, Schema, SchemaProblem};
pub use sweep::{rfc3339_utc, HostInfo, PlannedCell, SweepRecord, ToolInfo};

/// The trace format version this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;
/// A cell's record.
pub const RUN_JSON: &str = "run.json";
/// A cell's logits.
pub const LOGITS_FILE: &str = "logits.safetensors";
/// The last lines of a failed engine's stderr.
pub const STDERR_TAIL: &str = "stderr.tail.txt";
/// A sweep's record.
pub const SWEEP_JSON: &str = "sweep.json";

/// Any failure to read or write a trace. Each variant names the file (or key) and the fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file the trace requires is absent.
    #[error("{}: missing ({why})", .path.display())]
    Missing { path: PathBuf, why: String },
    #[error("{}: invalid JSON: {source}", .path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{}: schema_version {found} is not supported (this build reads {supported})",
        .path.display()
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: serde_json::Number,
        supported: u32,
    },
    /// The document breaks the JSON Schema; every problem is listed.
    #[error("{}", list(.path, "does not match its JSON Schema", .problems))]
    Schema {
        path: PathBuf,
        problems: Vec<SchemaProblem>,
    },
    /// The parts of a trace disagree with each other (shapes, counts, key vs config).
    #[error("{}", list(.path, "is inconsistent", .problems))]
    Inconsistent {
        path: PathBuf,
        problems: Vec<String>,
    },
    #[error(
        "{}: truncated (header says {}, file is {})",
        .path.display(), sizes(*.expected, *.actual).0, sizes(*.expected, *.actual).1
    )]
    Truncated {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("{}: not a valid safetensors file: {fault}", .path.display())]
    Safetensors { path: PathBuf, fault: String },
    #[error("{}: missing tensor `{name}`", .path.display())]
    MissingTensor { path: PathBuf, name: String },
    #[error(
        "{}: tensor `{tensor}` is {dtype}; logits must be F32, F16 or BF16",
        .path.display()
    )]
    BadDtype {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },
    /// Valid safetensors, but not valid trace logits (shapes, dtypes or metadata disagree).
    #[error("{}: {fault}", .path.display())]
    BadLogits { path: PathBuf, fault: String },
    #[error("{}: already exists (force replaces it)", .path.display())]
    CellExists { path: PathBuf },
    #[error(transparent)]
    BadCellKey(#[from] CellKeyError),
    /// A caller asked for something the format does not allow.
    #[error("{}: {fault}", .path.display())]
    Invalid { path: PathBuf, fault: String },
}

impl TraceError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> TraceError {
        TraceError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn json(path: &Path, source: serde_json::Error) -> TraceError {
        TraceError::Json {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn invalid(path: &Path, fault: impl Into<String>) -> TraceError {
        TraceError::Invalid {
            path: path.to_path_buf(),
            fault: fault.into(),
        }
    }
}

// Long lists stay readable in a terminal; the error value keeps them all.
const SHOWN_PROBLEMS: usize = 50;

fn list<T: Display>(path: &Path, what: &str, problems: &[T]) -> String {
    if let [one] = problems {
        return format!("{}: {one}", path.display());
    }
    let mut s = format!("{}: {what} ({} problems):", path.display(), problems.len());
    for p in problems.iter().take(SHOWN_PROBLEMS) {
        s.push_str(&format!("\n  {p}"));
    }
    if problems.len() > SHOWN_PROBLEMS {
        s.push_str(&format!(
            "\n  … and {} more",
            problems.len() - SHOWN_PROBLEMS
        ));
    }
    s
}

/// Human sizes (decimal units); exact byte counts when the rounded ones would read the same.
fn sizes(a: u64, b: u64) -> (String, String) {
    let (ha, hb) = (human_size(a), human_size(b));
    if ha == hb {
        (format!("{a} bytes"), format!("{b} bytes"))
    } else {
        (ha, hb)
    }
}

fn human_size(n: u64) -> String {
    const UNITS: [(f64, &str); 3] = [(1e9, "GB"), (1e6, "MB"), (1e3, "kB")];
    for (scale, unit) in UNITS {
        if n as f64 >= scale {
            return format!("{:.1} {unit}", n as f64 / scale);
        }
    }
    format!("{n} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_message_uses_human_sizes() {
        let e = TraceError::Truncated {
            path: "c/logits.safetensors".into(),
            expected: 1_200_000,
            actual: 400_000,
        };
        assert_eq!(
            e.to_string(),
            "c/logits.safetensors: truncated (header says 1.2 MB, file is 400.0 kB)"
        );
        let e = TraceError::Truncated {
            path: "x".into(),
            expected: 1_200_010,
            actual: 1_200_000,
        };
        assert_eq!(
            e.to_string(),
            "x: truncated (header says 1200010 bytes, file is 1200000 bytes)"
        );
    }

    #[test]
    fn problem_lists_are_capped_in_display_only() {
        let problems: Vec<String> = (0..60).map(|i| format!("p{i}")).collect();
        let e = TraceError::Inconsistent {
            path: "d".into(),
            problems: problems.clone(),
        };
        let s = e.to_string();
        assert!(
            s.starts_with("d: is inconsistent (60 problems):\n  p0\n"),
            "{s}"
        );
        assert!(s.ends_with("… and 10 more"), "{s}");
        let one = TraceError::Inconsistent {
            path: "d".into(),
            problems: vec!["only".into()],
        };
        assert_eq!(one.to_string(), "d: only");
    }
}
