//! What `analyze --history` does, in two steps around the analysis: [`prepare`] checks the
//! flags and reads the history and the acknowledgements before any trace is opened (bad input
//! fails fast), and [`Prepared::finish`] compares the analysed cells, applies the
//! acknowledgements, decides whether the run is accepted and records it.

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::ack::AckSet;
use super::compare::{compare, count, Baseline, Current, Rules};
use super::metrics::{is_known_metric, value_of, METRICS, NUMERICS, STATUS};
use super::model::{History, RunInfo, StoredRun, StoredValue};
use super::store::Store;
use super::{numerics, parse_fraction, HistoryArgs, HistoryError, Input};
use crate::analyze::load::Loaded;
use crate::golden::{cell_drift, golden_of};
use crate::metrics::Thresholds;
use crate::summary::{
    AcknowledgedChange, HistorySummary, NumericsDrift, RecordedRun, RegressionVerdict, Summary,
};

/// The history and the flags, read and checked; ready to compare an analysis.
pub struct Prepared {
    store: Store,
    history: History,
    acks: AckSet,
    baseline: Baseline,
    baseline_tag: Option<String>,
    rules: Rules,
    window: usize,
    no_record: bool,
}

/// `--regress-threshold` items: `PCT` for every metric, `METRIC=PCT` for one.
pub fn parse_rules(items: &[String]) -> Result<Rules, HistoryError> {
    let mut rules = Rules::default();
    for item in items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let bad = |why: String| HistoryError::Usage(format!("--regress-threshold {item}: {why}"));
        match item.split_once('=') {
            Some((metric, pct)) => {
                let metric = metric.trim();
                if !is_known_metric(metric) || metric == STATUS || metric == NUMERICS {
                    return Err(bad(format!(
                        "unknown metric `{metric}` (known: {})",
                        METRICS
                            .iter()
                            .map(|m| m.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                let v = parse_fraction(pct)
                    .ok_or_else(|| bad("not a percentage like 5% or 0.05".into()))?;
                rules.per_metric.insert(metric.to_string(), v);
            }
            None => {
                rules.default_threshold = parse_fraction(item)
                    .ok_or_else(|| bad("not a percentage like 5% or 0.05".into()))?;
            }
        }
    }
    Ok(rules)
}

/// Checks the history flags and reads the history; None without `--history`.
pub fn prepare(a: &HistoryArgs) -> Result<Option<Prepared>, HistoryError> {
    let Some(dir) = &a.history else {
        return match a.orphan_flags().first() {
            Some(f) => Err(HistoryError::Usage(format!("{f} needs --history DIR"))),
            None => Ok(None),
        };
    };
    if a.history_window == 0 {
        return Err(HistoryError::Usage(
            "--history-window must be at least 1".into(),
        ));
    }
    if dir.exists() && !dir.is_dir() {
        return Err(HistoryError::Io {
            path: dir.clone(),
            what: "not a directory (--history takes a directory)".into(),
        });
    }
    let rules = parse_rules(&a.regress_threshold)?;
    let store = Store::new(dir);
    let history = store.load()?;
    let acks = AckSet::load(a.acknowledged.as_deref())?;
    let baseline = match &a.baseline {
        Some(tag) => Baseline::Run(history.tagged(tag).map_err(|source| HistoryError::Lookup {
            dir: dir.clone(),
            source,
        })?),
        None => Baseline::Recent {
            window: a.history_window,
        },
    };
    Ok(Some(Prepared {
        store,
        history,
        acks,
        baseline,
        baseline_tag: a.baseline.clone(),
        rules,
        window: a.history_window,
        no_record: a.no_record,
    }))
}

/// `YYYYMMDDTHHMMSSZ-xxxxxx` from the analysis time and a hash that makes it unique.
fn new_run_id(generated_at: &str, traces_dir: &str, seq: i64) -> String {
    let stamp: String = generated_at
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T' || *c == 'Z')
        .collect();
    let mut h = Sha256::new();
    h.update(traces_dir.as_bytes());
    h.update(seq.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.update(nanos.to_le_bytes());
    let hex = tracecheck_engine::model::hex_digest(&h.finalize());
    format!("{stamp}-{}", &hex[..6])
}

impl Prepared {
    fn baseline_words(&self) -> (String, Option<String>) {
        match self.baseline {
            Baseline::Recent { window } => (
                format!(
                    "median of the last {window} accepted runs of each cell (same mode, model and device)"
                ),
                None,
            ),
            Baseline::Run(i) => {
                let r = &self.history.runs[i].info;
                (
                    format!(
                        "run {} (tag {}), recorded {}{}",
                        r.run_id,
                        self.baseline_tag.as_deref().unwrap_or("?"),
                        r.recorded_at,
                        r.engine_revision
                            .as_deref()
                            .map(|v| format!(", revision {v}"))
                            .unwrap_or_default()
                    ),
                    Some(r.run_id.clone()),
                )
            }
        }
    }

    /// Each cell's decode logits against the top-16 record of its baseline run; notes for
    /// cells whose record is gone or of another shape.
    fn numerics(
        &self,
        traces: &[Loaded],
        numerics_run: &std::collections::BTreeMap<String, String>,
        thresholds: &Thresholds,
    ) -> Result<(Vec<NumericsDrift>, Vec<String>), HistoryError> {
        let mut notes = Vec::new();
        let jobs: Vec<(&Loaded, &String)> = traces
            .iter()
            .filter(|l| l.ok().is_some_and(|t| t.logits.is_some()))
            .filter_map(|l| numerics_run.get(&l.key).map(|run| (l, run)))
            .collect();
        let dir = self.store.dir().to_path_buf();
        // A missing record (pruned) or one of another shape (e.g. a changed span) cannot serve
        // as a golden: a note, not a failure.
        let drifts: Vec<Result<Result<NumericsDrift, String>, HistoryError>> = jobs
            .par_iter()
            .map(|(l, run)| {
                let Some(record) = numerics::load(&dir, run, &l.key)? else {
                    return Ok(Err(format!(
                        "{}: run {run} kept no numerics record; numerics not compared",
                        l.key
                    )));
                };
                let t = l.ok().expect("filtered on ok cells");
                Ok(match cell_drift(&record, "history", t) {
                    Ok(d) => {
                        let (verdict, reasons) = numerics::judge(&d, thresholds, run);
                        Ok(NumericsDrift {
                            cell: l.key.clone(),
                            against_run: run.to_string(),
                            drift: d,
                            verdict,
                            acknowledged: false,
                            reasons,
                        })
                    }
                    Err(e) => Err(format!(
                        "{}: numerics not compared with run {run}: {e}",
                        l.key
                    )),
                })
            })
            .collect();
        let mut numerics_drift = Vec::new();
        for d in drifts {
            match d? {
                Ok(d) => numerics_drift.push(d),
                Err(note) => notes.push(note),
            }
        }
        Ok((numerics_drift, notes))
    }

    /// Compares the analysed cells with the history and records the run (unless `--no-record`
    /// or the analysis found bad input).
    pub fn finish(self, input: Input<'_>) -> Result<HistorySummary, HistoryError> {
        let s = input.summary;
        if let Baseline::Run(i) = self.baseline {
            let r = &self.history.runs[i].info;
            if r.mode != s.mode {
                return Err(HistoryError::Usage(format!(
                    "--baseline {}: run {} is a {} run, this analysis is {}",
                    self.baseline_tag.as_deref().unwrap_or("?"),
                    r.run_id,
                    r.mode,
                    s.mode
                )));
            }
        }
        let run_device = s.device.as_deref().unwrap_or("");
        let cur = Current {
            mode: &s.mode,
            model_sha256: s.model_sha256.as_deref().unwrap_or(""),
            device: run_device,
            cells: &s.cells,
        };
        let mut cmp = compare(&self.history, &cur, &self.baseline, &self.rules);
        let (mut numerics_drift, mut notes) =
            self.numerics(input.traces, &cmp.numerics_run, &input.thresholds)?;

        // Acknowledgements: a failing verdict they cover passes, and is listed.
        let today: String = s.generated_at.chars().take(10).collect();
        let ack_file = self
            .acks
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let mut acknowledged = Vec::new();
        let device_of = |cell: &str| {
            s.cells
                .iter()
                .find(|c| c.key == cell)
                .and_then(|c| c.device.clone())
                .unwrap_or_else(|| run_device.to_string())
        };
        let mut acknowledge = |cell: &str, metric: &str, verdict: RegressionVerdict| -> bool {
            if !verdict.is_failure() {
                return false;
            }
            let Some(a) = self
                .acks
                .find(&s.mode, cell, metric, &device_of(cell), &today)
            else {
                return false;
            };
            acknowledged.push(AcknowledgedChange {
                cell: cell.to_string(),
                metric: metric.to_string(),
                verdict,
                file: ack_file.clone(),
                entry: a.entry,
                reason: a.reason.clone(),
                date: a.date.clone(),
            });
            true
        };
        for c in &mut cmp.comparisons {
            c.acknowledged = acknowledge(&c.cell, &c.metric, c.verdict);
        }
        for d in &mut numerics_drift {
            d.acknowledged = acknowledge(&d.cell, NUMERICS, d.verdict);
        }
        let regressions = cmp
            .comparisons
            .iter()
            .filter(|c| c.verdict.is_failure() && !c.acknowledged)
            .count()
            + numerics_drift
                .iter()
                .filter(|d| d.verdict.is_failure() && !d.acknowledged)
                .count();
        let counts = count(
            cmp.comparisons
                .iter()
                .map(|c| c.verdict)
                .chain(numerics_drift.iter().map(|d| d.verdict)),
        );

        let bad_input = s.overall.exit_code == 2;
        let (accepted, decision) = acceptance(s, regressions, acknowledged.len());
        let recorded = if self.no_record || bad_input {
            if bad_input {
                notes.push("not recorded: the analysis found bad input".into());
            }
            None
        } else {
            Some(self.record(&input, accepted, decision, &mut notes)?)
        };
        let (baseline, baseline_run) = self.baseline_words();
        Ok(HistorySummary {
            dir: self.store.dir().display().to_string(),
            baseline,
            baseline_tag: self.baseline_tag.clone(),
            baseline_run,
            window: self.window,
            threshold: self.rules.default_threshold,
            thresholds: self.rules.table(),
            noise_mads: self.rules.noise_mads,
            min_runs_for_band: self.rules.min_runs_for_band,
            prior_accepted_runs: cmp.prior_accepted_runs,
            acknowledgements_file: self.acks.path.as_ref().map(|p| p.display().to_string()),
            comparisons: cmp.comparisons,
            numerics: numerics_drift,
            acknowledged,
            counts,
            regressions,
            recorded,
            trends: cmp.trends,
            notes,
        })
    }

    /// Appends the run (rows, then its numerics records) under the lock, re-reading the file
    /// first so a run another process added meanwhile is kept.
    fn record(
        &self,
        input: &Input<'_>,
        accepted: bool,
        decision: String,
        notes: &mut Vec<String>,
    ) -> Result<RecordedRun, HistoryError> {
        let s = input.summary;
        let _lock = self.store.lock()?;
        let mut h = self.store.load()?;
        let seq = h.next_seq();
        let run_id = new_run_id(&s.generated_at, &s.traces_dir, seq);
        let first_ok = input.traces.iter().find_map(Loaded::ok);
        let info = RunInfo {
            run_id: run_id.clone(),
            seq,
            recorded_at: s.generated_at.clone(),
            mode: s.mode.clone(),
            model: s.model.clone(),
            model_sha256: s.model_sha256.clone().unwrap_or_default(),
            engine_version: first_ok
                .and_then(|t| t.record.engine.as_ref().map(|e| e.version.clone())),
            engine_revision: s.engine_revision.clone(),
            host: s.host.clone(),
            traces_dir: s.traces_dir.clone(),
            accepted,
            decision: decision.clone(),
            tags: vec![],
        };
        let run_device = s.device.clone().unwrap_or_default();
        let mut values = Vec::new();
        for c in &s.cells {
            let device = c.device.clone().unwrap_or_else(|| run_device.clone());
            let row = |metric: &str, unit: &str, direction: &str, value: Option<f64>| StoredValue {
                cell: c.key.clone(),
                device: device.clone(),
                metric: metric.to_string(),
                unit: unit.to_string(),
                direction: direction.to_string(),
                value,
                verdict: c.verdict.to_string(),
            };
            values.push(row(STATUS, "", "status", None));
            for m in METRICS {
                if let Some(v) = value_of(m, c) {
                    values.push(row(m.name, m.unit, m.direction.as_str(), Some(v)));
                }
            }
        }
        let records: Vec<(String, crate::golden::GoldenFile)> = input
            .traces
            .par_iter()
            .filter_map(|l| Some((l.key.clone(), golden_of(l.ok()?)?)))
            .collect();
        let dir = self.store.dir();
        numerics::write_run(dir, &run_id, &records)?;
        h.runs.push(StoredRun { info, values });
        if let Err(e) = self.store.save(&h) {
            let _ = std::fs::remove_dir_all(dir.join(numerics::NUMERICS_DIR).join(&run_id));
            return Err(e);
        }
        // Pruning only saves space: a failure is reported, not fatal.
        if let Err(e) = numerics::prune(dir, &h) {
            notes.push(format!("numerics records not pruned: {e}"));
        }
        Ok(RecordedRun {
            run_id,
            accepted,
            decision,
        })
    }
}

/// Whether a run is accepted, and why: with `--gate`, the gate passed; without, every cell is
/// PASS_EQUIV or OK; and in both cases no regression is left unacknowledged.
pub fn acceptance(s: &Summary, regressions: usize, acknowledged: usize) -> (bool, String) {
    let cells_ok = match &s.overall.gate {
        Some(g) if s.overall.gate_passed => Ok(format!("gate {g} passed")),
        Some(g) => Err(format!("gate {g} failed")),
        None if s.cells.iter().all(|c| c.verdict.passed()) => {
            Ok("every cell PASS_EQUIV or OK".to_string())
        }
        None => Err("not every cell is PASS_EQUIV or OK".to_string()),
    };
    match (cells_ok, regressions) {
        (Ok(why), 0) if acknowledged == 0 => (true, format!("{why}, no regressions")),
        (Ok(why), 0) => (true, format!("{why}, {acknowledged} acknowledged changes")),
        (Ok(why), n) => (false, format!("{why}, but {n} regressions")),
        (Err(why), 0) => (false, why),
        (Err(why), n) => (false, format!("{why}, {n} regressions")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::Verdict;

    fn summary(gate: Option<&str>, gate_passed: bool, verdicts: &[Verdict]) -> Summary {
        let cell = |v: &Verdict| {
            serde_json::json!({
                "key": "c", "status": "OK", "verdict": v, "reasons": [], "notes": [],
                "reference_cell": false, "backend": null, "device": null, "batch": 1,
                "prompt_offset": 0, "ctx": 8, "gen": 2, "span": 2, "dtype": "f32",
                "numerics": "invariant", "attn_impl": "flash", "kv_aligned": true,
                "variant": null, "prefill_s": null, "decode_s": null,
                "reference_prefill_s": null, "model_load_s": null, "tokenize_s": null,
                "setup_s": null, "wall_s": null, "decode_tok_s": null, "prefill_tok_s": null,
                "peak_mb": null, "peak_t_s": null, "high_water_mb": null, "baseline_mb": null,
                "memory_source": null, "memory_period_s": null, "memory_samples": 0,
                "memory_series": [], "comparisons": [], "sequences": []
            })
        };
        serde_json::from_value(serde_json::json!({
            "schema_version": 1, "tool": "tracecheck", "tool_version": "0", "mode": "b3_81",
            "traces_dir": "t", "generated_at": "2026-01-01T00:00:00Z", "policy": "exact",
            "atol": null, "min_top1": null, "allow": [], "golden_dir": null, "model": null,
            "model_sha256": null, "device": null, "backend": null, "timeout_s": null,
            "run_argv": null, "analyze_argv": [],
            "cells": verdicts.iter().map(cell).collect::<Vec<_>>(),
            "tables": {"batch": [], "context": [], "prefill": [], "scaling": []},
            "overall": {"verdict": "PASS_EQUIV", "gate": gate, "gate_passed": gate_passed,
                        "exit_code": 0, "counts": {}, "problems": []}
        }))
        .unwrap()
    }

    #[test]
    fn accepted_when_the_gate_passes_and_nothing_regressed() {
        let ok = [Verdict::PassEquiv, Verdict::Ok];
        let gated = summary(Some("PASS_EQUIV"), true, &ok);
        assert_eq!(
            acceptance(&gated, 0, 0),
            (true, "gate PASS_EQUIV passed, no regressions".into())
        );
        assert_eq!(
            acceptance(&gated, 0, 2),
            (
                true,
                "gate PASS_EQUIV passed, 2 acknowledged changes".into()
            )
        );
        assert!(!acceptance(&gated, 1, 0).0);
        assert!(!acceptance(&summary(Some("PASS_EQUIV"), false, &ok), 0, 0).0);
        // Without --gate: every cell must pass.
        assert!(acceptance(&summary(None, false, &ok), 0, 0).0);
        let oom = summary(None, false, &[Verdict::PassEquiv, Verdict::FailOom]);
        assert_eq!(
            acceptance(&oom, 0, 0),
            (false, "not every cell is PASS_EQUIV or OK".into())
        );
    }

    #[test]
    fn thresholds_parse_per_metric() {
        let r = parse_rules(&["7%".into(), "peak_mb=2%".into()]).unwrap();
        assert_eq!(r.rule("decode_s").threshold, 0.07);
        assert_eq!(r.rule("peak_mb").threshold, 0.02);
        for bad in ["fast", "speed=5%", "status=5%", "peak_mb=x"] {
            let e = parse_rules(&[bad.into()]).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("--regress-threshold {bad}: ")),
                "{e}"
            );
        }
    }
}
