//! Finding and opening the cells of a traces directory (any engine's), and the checks that span
//! cells (vocabulary, model).

use std::path::{Path, PathBuf};

use tracecheck_engine::trace::{CellKey, CellTrace, SweepRecord, RUN_JSON, SWEEP_JSON};

use super::AnalyzeError;

/// A cell directory: its trace, or why it is not a valid one.
pub struct Loaded {
    pub dir: PathBuf,
    pub key: String,
    pub trace: Result<CellTrace, String>,
}

impl Loaded {
    pub fn ok(&self) -> Option<&CellTrace> {
        self.trace.as_ref().ok()
    }
}

/// Every directory under `root` (up to 3 levels) that holds a run.json, in name order, opened
/// in parallel (a trace can be large; opening maps it and validates its header).
pub fn load_cells(root: &Path) -> Result<(Vec<Loaded>, Option<SweepRecord>), AnalyzeError> {
    if !root.is_dir() {
        return Err(AnalyzeError::BadInput(format!(
            "{}: traces directory does not exist (or is not a directory)",
            root.display()
        )));
    }
    let mut dirs: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .max_depth(3)
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.file_name() == RUN_JSON)
        .filter_map(|e| e.path().parent().map(Path::to_path_buf))
        // Staged (temp) cells of a sweep in progress are not cells yet.
        .filter(|d| {
            !d.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".tmp-"))
        })
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err(AnalyzeError::BadInput(format!(
            "{}: no cells found (no */run.json within 3 levels); is this a traces directory?",
            root.display()
        )));
    }
    let sweep_path = root.join(SWEEP_JSON);
    let sweep = if sweep_path.is_file() {
        Some(SweepRecord::read(&sweep_path).map_err(|e| AnalyzeError::BadInput(e.to_string()))?)
    } else {
        None
    };
    use rayon::prelude::*;
    let cells = dirs
        .into_par_iter()
        .map(|dir| {
            let key = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let trace = CellTrace::open(&dir).map_err(|e| e.to_string());
            Loaded { dir, key, trace }
        })
        .collect();
    Ok((cells, sweep))
}

/// Marks cells whose vocabulary or model differs from the majority as invalid: comparisons
/// across them would be meaningless.
pub fn check_consistency(cells: &mut [Loaded]) {
    let vocab_of = |l: &Loaded| {
        l.ok()
            .and_then(|t| t.record.model.as_ref().map(|m| m.vocab))
    };
    let mut counts = std::collections::BTreeMap::<usize, usize>::new();
    for v in cells.iter().filter_map(vocab_of) {
        *counts.entry(v).or_default() += 1;
    }
    let Some((&majority, _)) = counts
        .iter()
        .max_by_key(|(v, n)| (**n, std::cmp::Reverse(**v)))
    else {
        return;
    };
    if counts.len() > 1 {
        for l in cells.iter_mut() {
            if let Some(v) = vocab_of(l) {
                if v != majority {
                    let msg = format!(
                        "{}: vocab {v} differs from the other cells' vocab {majority}: the cells are not from one model",
                        l.dir.join(RUN_JSON).display()
                    );
                    l.trace = Err(msg);
                }
            }
        }
    }
}

/// The key's parsed config, for cells whose run.json could not be read.
pub fn key_config(key: &str) -> Option<CellKey> {
    CellKey::parse(key).ok()
}
