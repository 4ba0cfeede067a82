//! `tracecheck bless`: shows how a sweep drifts from the current golden, then (with `--yes`)
//! replaces the golden set with the sweep's compact record and its replay command.

use std::io::Write;
use std::path::PathBuf;

use tracecheck_engine::trace::{rfc3339_utc, write_file_atomic, StagedDir, RUN_JSON};

use crate::analyze::load::load_cells;
use crate::analyze::AnalyzeError;

use super::{golden_of, GoldenSet, Manifest, GOLDEN_JSON, GOLDEN_SCHEMA_VERSION, MANIFEST_JSON};

pub struct BlessOptions {
    pub traces_dir: PathBuf,
    pub golden: PathBuf,
    pub yes: bool,
}

/// The recorded `tracecheck run` arguments without the program name and `--out DIR`.
fn replay_args(argv: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        if a == "--out" {
            it.next();
        } else if !a.starts_with("--out=") {
            out.push(a.clone());
        }
    }
    out
}

pub fn bless(opts: &BlessOptions, out: &mut dyn Write) -> Result<i32, AnalyzeError> {
    let (cells, sweep) = load_cells(&opts.traces_dir)?;
    let bad = |e: std::io::Error| AnalyzeError::BadInput(e.to_string());
    let current = GoldenSet::load(&opts.golden).ok();
    writeln!(
        out,
        "Drift of {} against {}:",
        opts.traces_dir.display(),
        opts.golden.display()
    )
    .map_err(bad)?;
    writeln!(
        out,
        "| Cell | Golden | Max Δ (top-k) | Top-1 | Rows bit-identical | Verdict |"
    )
    .map_err(bad)?;
    writeln!(out, "|---|---|---|---|---|---|").map_err(bad)?;
    let mut blessable = Vec::new();
    for l in &cells {
        let Some(t) = l
            .ok()
            .filter(|t| t.record.status.is_ok() && t.logits.is_some())
        else {
            let why = match &l.trace {
                Err(e) => e.clone(),
                Ok(t) => t.record.status.to_string(),
            };
            writeln!(out, "| {} | not blessed | | | | {why} |", l.key).map_err(bad)?;
            continue;
        };
        blessable.push(t);
        let Some(g) = current.as_ref().and_then(|g| g.cell(&l.key)) else {
            writeln!(out, "| {} | new | | | | |", l.key).map_err(bad)?;
            continue;
        };
        let Ok(d) = super::cell_drift(&g.file, "golden", t) else {
            writeln!(out, "| {} | not comparable | | | | |", l.key).map_err(bad)?;
            continue;
        };
        writeln!(
            out,
            "| {} | present | {:.3e} | {:.4} | {} | {} |",
            l.key,
            d.max_abs_diff,
            d.top1_agreement,
            if d.bit_exact { "all" } else { "no" },
            if d.pass { "PASS_EQUIV" } else { "FAIL_EQUIV" }
        )
        .map_err(bad)?;
    }
    if !opts.yes {
        writeln!(
            out,
            "\nNothing written: re-run with --yes to bless {} cells into {}.",
            blessable.len(),
            opts.golden.display()
        )
        .map_err(bad)?;
        return Ok(0);
    }
    if blessable.is_empty() {
        return Err(AnalyzeError::BadInput(format!(
            "{}: no OK cells to bless",
            opts.traces_dir.display()
        )));
    }
    std::fs::create_dir_all(&opts.golden)
        .map_err(|e| AnalyzeError::BadInput(format!("{}: {e}", opts.golden.display())))?;
    // The golden set becomes exactly this sweep: cells it no longer has are removed.
    if let Ok(entries) = std::fs::read_dir(&opts.golden) {
        for e in entries.flatten() {
            let keep = blessable
                .iter()
                .any(|t| t.name() == Some(&*e.file_name().to_string_lossy()));
            if e.path().join(GOLDEN_JSON).is_file() && !keep {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let io = |e: tracecheck_engine::trace::TraceError| AnalyzeError::BadInput(e.to_string());
    for t in &blessable {
        let key = t.name().unwrap_or_default();
        let g = golden_of(t).expect("OK cells have logits");
        let staged = StagedDir::begin(&opts.golden, key, true).map_err(io)?;
        let run = std::fs::read(t.dir.join(RUN_JSON))
            .map_err(|e| AnalyzeError::BadInput(e.to_string()))?;
        staged.write_file(RUN_JSON, &run).map_err(io)?;
        let json = serde_json::to_vec(&g).map_err(|e| AnalyzeError::BadInput(e.to_string()))?;
        staged.write_file(GOLDEN_JSON, &json).map_err(io)?;
        staged.commit().map_err(io)?;
    }
    let first = blessable[0];
    let manifest = Manifest {
        schema_version: GOLDEN_SCHEMA_VERSION,
        mode: first.record.mode.clone(),
        model: sweep.as_ref().map(|s| s.model.clone()).unwrap_or_else(|| {
            first
                .record
                .model
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default()
        }),
        run: sweep
            .as_ref()
            .map(|s| replay_args(&s.argv))
            .unwrap_or_default(),
        cells: blessable
            .iter()
            .filter_map(|t| t.name().map(str::to_string))
            .collect(),
        device: first.record.engine.as_ref().map(|e| e.device.clone()),
        blessed_at: rfc3339_utc(std::time::SystemTime::now()),
    };
    let text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| AnalyzeError::BadInput(e.to_string()))?;
    write_file_atomic(&opts.golden.join(MANIFEST_JSON), text.as_bytes()).map_err(io)?;
    writeln!(
        out,
        "\nBlessed {} cells into {}.",
        blessable.len(),
        opts.golden.display()
    )
    .map_err(bad)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::replay_args;

    #[test]
    fn replay_drops_the_program_and_out_dir() {
        let argv: Vec<String> = [
            "tracecheck",
            "run",
            "--mode",
            "b3_81",
            "--out",
            "x",
            "--quick",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(replay_args(&argv), ["run", "--mode", "b3_81", "--quick"]);
    }
}
