//! Numerics against prior runs: every recorded run keeps, per cell, the compact top-16 record
//! a golden keeps ([`golden_of`]), in `<dir>/numerics/<run_id>/<cell_key>.json`; the record of
//! the last accepted run of a cell then serves as its golden.
//!
//! Why JSON files beside the Parquet rather than Parquet: the record is nested (sequences →
//! rows → 16 ids, 16 logits and a row hash) and is read whole, one cell at a time, by the same
//! serde type and drift code as goldens — the history adds no second format or reader. A cell's
//! record is a few kB (tiny b3_81 quick sweep: ~30 kB per run); only the records that can still
//! serve as a baseline are kept (see [`prune`]), so the directory does not grow with the history.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use tracecheck_engine::trace::write_file_atomic;

use super::model::History;
use super::HistoryError;
use crate::golden::GoldenFile;
use crate::metrics::Thresholds;
use crate::summary::{PairSummary, RegressionVerdict};

pub const NUMERICS_DIR: &str = "numerics";
/// Accepted runs per (mode, model, devices) group whose records are kept.
pub const KEEP_ACCEPTED: usize = 5;

pub fn record_path(dir: &Path, run_id: &str, cell: &str) -> PathBuf {
    dir.join(NUMERICS_DIR)
        .join(run_id)
        .join(format!("{cell}.json"))
}

/// Writes one run's records (each file atomically).
pub fn write_run(
    dir: &Path,
    run_id: &str,
    records: &[(String, GoldenFile)],
) -> Result<(), HistoryError> {
    let run_dir = dir.join(NUMERICS_DIR).join(run_id);
    std::fs::create_dir_all(&run_dir).map_err(|e| HistoryError::Io {
        path: run_dir.clone(),
        what: e.to_string(),
    })?;
    for (cell, file) in records {
        let path = record_path(dir, run_id, cell);
        let json = serde_json::to_vec(file).map_err(|e| HistoryError::Io {
            path: path.clone(),
            what: e.to_string(),
        })?;
        write_file_atomic(&path, &json).map_err(|e| HistoryError::Io {
            path: path.clone(),
            what: e.to_string(),
        })?;
    }
    Ok(())
}

/// A run's record of a cell; None when it was not kept.
pub fn load(dir: &Path, run_id: &str, cell: &str) -> Result<Option<GoldenFile>, HistoryError> {
    let path = record_path(dir, run_id, cell);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(HistoryError::Io {
                path,
                what: e.to_string(),
            })
        }
    };
    let file: GoldenFile = serde_json::from_str(&text).map_err(|e| HistoryError::Corrupt {
        path: path.clone(),
        what: format!("not a numerics record ({e})"),
    })?;
    if file.schema_version != crate::golden::GOLDEN_SCHEMA_VERSION {
        return Err(HistoryError::Corrupt {
            path,
            what: format!(
                "schema_version {} is not supported (this build reads {})",
                file.schema_version,
                crate::golden::GOLDEN_SCHEMA_VERSION
            ),
        });
    }
    Ok(Some(file))
}

/// The runs whose records may still serve as a baseline: tagged runs, the newest
/// [`KEEP_ACCEPTED`] accepted runs of each (mode, model, devices) group, and runs newer than
/// a group's newest accepted one (they may be accepted later).
pub fn runs_to_keep(h: &History) -> BTreeSet<String> {
    let mut groups: BTreeMap<(String, String, String), Vec<usize>> = BTreeMap::new();
    for (i, r) in h.runs.iter().enumerate() {
        let devices: BTreeSet<&str> = r.values.iter().map(|v| v.device.as_str()).collect();
        let key = (
            r.info.mode.clone(),
            r.info.model_sha256.clone(),
            devices.into_iter().collect::<Vec<_>>().join("|"),
        );
        groups.entry(key).or_default().push(i);
    }
    let mut keep = BTreeSet::new();
    for idx in groups.values() {
        let mut idx = idx.clone();
        idx.sort_by_key(|&i| std::cmp::Reverse(h.runs[i].info.seq));
        let mut accepted = 0;
        for i in idx {
            let r = &h.runs[i].info;
            if accepted < KEEP_ACCEPTED || !r.tags.is_empty() {
                keep.insert(r.run_id.clone());
            }
            accepted += usize::from(r.accepted);
        }
    }
    keep
}

/// Removes the records of runs no longer needed (and of runs the history does not know, e.g.
/// left by an interrupted write). Only run directories are touched.
pub fn prune(dir: &Path, h: &History) -> Result<usize, HistoryError> {
    let root = dir.join(NUMERICS_DIR);
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Ok(0);
    };
    let keep = runs_to_keep(h);
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !e.path().is_dir() || keep.contains(&name) || !super::looks_like_run_id(&name) {
            continue;
        }
        std::fs::remove_dir_all(e.path()).map_err(|err| HistoryError::Io {
            path: e.path(),
            what: err.to_string(),
        })?;
        removed += 1;
    }
    Ok(removed)
}

/// The verdict of a cell's drift against a prior run's record, under the analysis policy:
/// `exact` asks for bit-identical rows (same device, by the comparison key), the tolerance
/// policies for their max |Δ| (over the record's top-16 ids), top-1 and near-tie flips.
pub fn judge(d: &PairSummary, th: &Thresholds, run_id: &str) -> (RegressionVerdict, Vec<String>) {
    if d.bit_exact && d.token_divergence_position.is_none() {
        return (RegressionVerdict::WithinNoise, vec![]);
    }
    let mut reasons = Vec::new();
    if let Some(p) = d.token_divergence_position {
        reasons.push(format!(
            "generated tokens diverge from run {run_id} at position {p}"
        ));
    }
    if th.bit_exact {
        if !d.bit_exact {
            reasons.push(format!(
                "decode logits are not bit-identical to run {run_id} (first at position {}; max |Δ| {:.3e} over its top-16 ids); policy exact",
                d.first_divergent_position.unwrap_or(0),
                d.max_abs_diff
            ));
        }
    } else {
        if let Some(atol) = th.max_abs_diff {
            if d.max_abs_diff > atol {
                reasons.push(format!(
                    "max |Δ| {:.3e} over run {run_id}'s top-16 ids > {atol:e}",
                    d.max_abs_diff
                ));
            }
        }
        if let Some(m) = th.min_top1 {
            if d.top1_agreement < m {
                reasons.push(format!(
                    "top-1 agreement with run {run_id} {:.4} < {m}",
                    d.top1_agreement
                ));
            }
        }
        if d.flips_not_near_tie > 0 {
            reasons.push(format!(
                "{} top-1 flips against run {run_id} are not near-ties",
                d.flips_not_near_tie
            ));
        }
    }
    if reasons.is_empty() {
        (RegressionVerdict::WithinNoise, vec![])
    } else {
        (RegressionVerdict::Regressed, reasons)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::model::tests::run;
    use crate::metrics::{Overrides, Policy};

    fn drift(bit_exact: bool, max: f64) -> PairSummary {
        let mut d: PairSummary = serde_json::from_value(serde_json::json!({
            "kind": "history", "reference": "r", "rows_compared": 8, "rows_excluded": 0,
            "bit_exact": true, "max_abs_diff": 0.0, "mean_abs_diff": 0.0,
            "top1_agreement": 1.0, "top5_overlap": 1.0, "kl_mean": 0.0, "kl_max": 0.0,
            "kl_ladder": [], "first_divergent_position": null, "token_divergence_position": null,
            "flips": 0, "flips_not_near_tie": 0, "max_abs_diff_by_position": [],
            "nonfinite": null, "pass": true, "reasons": []
        }))
        .unwrap();
        d.bit_exact = bit_exact;
        d.max_abs_diff = max;
        if !bit_exact {
            d.first_divergent_position = Some(3);
        }
        d
    }

    #[test]
    fn drift_verdicts_follow_the_policy() {
        let exact = Policy::Exact.thresholds(&Overrides::default());
        let fp32 = Policy::Fp32.thresholds(&Overrides::default());
        assert_eq!(
            judge(&drift(true, 0.0), &exact, "r").0,
            RegressionVerdict::WithinNoise
        );
        let (v, why) = judge(&drift(false, 1e-7), &exact, "r1");
        assert_eq!(v, RegressionVerdict::Regressed);
        assert!(why[0].contains("not bit-identical to run r1"), "{why:?}");
        assert_eq!(
            judge(&drift(false, 1e-7), &fp32, "r").0,
            RegressionVerdict::WithinNoise
        );
        assert_eq!(
            judge(&drift(false, 1e-2), &fp32, "r").0,
            RegressionVerdict::Regressed
        );
    }

    #[test]
    fn records_are_kept_while_they_can_serve_as_a_baseline() {
        let mut h = History::default();
        for i in 1..=9 {
            let mut r = run(i, &format!("r{i}"));
            r.info.accepted = i <= 7;
            h.runs.push(r);
        }
        h.runs[0].info.tags = vec!["v1".into()];
        let keep = runs_to_keep(&h);
        let want: BTreeSet<String> = ["r1", "r3", "r4", "r5", "r6", "r7", "r8", "r9"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(keep, want);
    }
}
