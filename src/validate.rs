//! `tracecheck validate DIR`: checks a traces directory (any engine's) against the run.json
//! schema and the row semantics the files let us verify, listing every problem.

use std::io::Write;
use std::path::Path;

use crate::analyze::load::{check_consistency, load_cells};
use crate::analyze::AnalyzeError;

/// Prints one line per cell and every problem; returns the number of invalid cells.
pub fn validate(dir: &Path, out: &mut dyn Write) -> Result<usize, AnalyzeError> {
    let (mut cells, sweep) = load_cells(dir)?;
    check_consistency(&mut cells);
    let io = |e: std::io::Error| AnalyzeError::BadInput(e.to_string());
    let mut invalid = 0;
    if let Some(s) = &sweep {
        for p in s.check() {
            writeln!(out, "sweep.json: {p}").map_err(io)?;
            invalid += 1;
        }
        for planned in &s.matrix {
            if !cells.iter().any(|c| c.key == planned.key) {
                writeln!(out, "{}: planned in sweep.json but absent", planned.key).map_err(io)?;
            }
        }
    }
    for c in &cells {
        match &c.trace {
            Ok(t) => {
                let status = t.record.status;
                let extra = if status.is_ok() {
                    let (b, s, v) = t.logits.as_ref().map(|l| l.dims()).unwrap_or_default();
                    format!("batch {b} × span {s} × vocab {v}")
                } else {
                    t.record.error.clone().unwrap_or_default()
                };
                writeln!(out, "{}: valid ({status}; {extra})", c.key).map_err(io)?;
            }
            Err(e) => {
                invalid += 1;
                writeln!(out, "{}: INVALID", c.key).map_err(io)?;
                for line in e.lines() {
                    writeln!(out, "  {line}").map_err(io)?;
                }
            }
        }
    }
    writeln!(out, "{} cells, {} invalid", cells.len(), invalid).map_err(io)?;
    Ok(invalid)
}
