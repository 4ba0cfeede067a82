//! This run's cells against the history: which prior values each (mode, cell, model, device)
//! key is compared with, the verdict of every metric, and the trend series. Pure: works on
//! the [`History`] the store loaded and the [`CellSummary`]s of this analysis.

use std::collections::{BTreeMap, HashMap};

use super::metrics::{value_of, METRICS, STATUS};
use super::model::{History, StoredRun};
use super::verdict::{judge, judge_status, Rule};
use crate::summary::{CellSummary, MetricComparison, RegressionVerdict, TrendSeries, Verdict};

/// Points drawn per trend series.
pub const TREND_RUNS: usize = 30;

/// Thresholds per metric (`--regress-threshold`), with the shared band rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub default_threshold: f64,
    pub per_metric: BTreeMap<String, f64>,
    pub noise_mads: f64,
    pub min_runs_for_band: usize,
}

impl Default for Rules {
    fn default() -> Self {
        let r = Rule::default();
        Rules {
            default_threshold: r.threshold,
            per_metric: BTreeMap::new(),
            noise_mads: r.noise_mads,
            min_runs_for_band: r.min_runs_for_band,
        }
    }
}

impl Rules {
    pub fn rule(&self, metric: &str) -> Rule {
        Rule {
            threshold: *self
                .per_metric
                .get(metric)
                .unwrap_or(&self.default_threshold),
            noise_mads: self.noise_mads,
            min_runs_for_band: self.min_runs_for_band,
        }
    }

    /// The threshold of every numeric metric, for the summary.
    pub fn table(&self) -> BTreeMap<String, f64> {
        METRICS
            .iter()
            .map(|m| (m.name.to_string(), self.rule(m.name).threshold))
            .collect()
    }
}

/// What this run is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Baseline {
    /// The median of the last `window` accepted runs of each key.
    Recent { window: usize },
    /// One run (`--baseline NAME`), by its index in the history.
    Run(usize),
}

/// This analysis as the comparison sees it.
pub struct Current<'a> {
    pub mode: &'a str,
    pub model_sha256: &'a str,
    /// For cells whose run.json does not name one (status-only cells).
    pub device: &'a str,
    pub cells: &'a [CellSummary],
}

impl Current<'_> {
    pub fn device_of<'c>(&'c self, cell: &'c CellSummary) -> &'c str {
        cell.device.as_deref().unwrap_or(self.device)
    }
}

/// The values a key has had, newest first.
#[derive(Default)]
struct KeyHistory<'h> {
    /// metric → values.
    values: HashMap<&'h str, Vec<f64>>,
    /// The cell's verdict in each run, newest first.
    statuses: Vec<&'h str>,
    /// Runs holding the key, newest first (run ids).
    runs: Vec<&'h str>,
}

/// (cell, device) → history, over `runs` (newest first).
fn index<'h>(runs: &[&'h StoredRun]) -> HashMap<(&'h str, &'h str), KeyHistory<'h>> {
    let mut map: HashMap<(&str, &str), KeyHistory> = HashMap::new();
    for r in runs {
        for v in &r.values {
            let k = map.entry((v.cell.as_str(), v.device.as_str())).or_default();
            if v.metric == STATUS {
                k.statuses.push(&v.verdict);
                k.runs.push(&r.info.run_id);
            } else if let Some(x) = v.value.filter(|x| x.is_finite()) {
                k.values.entry(v.metric.as_str()).or_default().push(x);
            }
        }
    }
    map
}

pub struct Comparison {
    pub comparisons: Vec<MetricComparison>,
    pub trends: Vec<TrendSeries>,
    /// Per cell: the run whose numerics record serves as its golden.
    pub numerics_run: BTreeMap<String, String>,
    pub prior_accepted_runs: usize,
}

fn passed(status: &str) -> bool {
    Verdict::parse(status).is_some_and(Verdict::passed)
}

/// The accepted runs of the same mode and model, newest first.
fn accepted<'h>(h: &'h History, cur: &Current<'_>) -> Vec<&'h StoredRun> {
    let mut v: Vec<&StoredRun> = h
        .runs
        .iter()
        .filter(|r| {
            r.info.accepted && r.info.mode == cur.mode && r.info.model_sha256 == cur.model_sha256
        })
        .collect();
    v.sort_by_key(|r| std::cmp::Reverse(r.info.seq));
    v
}

pub fn compare(h: &History, cur: &Current<'_>, baseline: &Baseline, rules: &Rules) -> Comparison {
    let accepted_runs = accepted(h, cur);
    let accepted_idx = index(&accepted_runs);
    let (base_idx, window) = match baseline {
        Baseline::Recent { window } => (None, *window),
        // A tagged run must also match the model: values of another model do not compare.
        Baseline::Run(i) => {
            let r = &h.runs[*i];
            let same = r.info.mode == cur.mode && r.info.model_sha256 == cur.model_sha256;
            let runs: Vec<&StoredRun> = if same { vec![r] } else { vec![] };
            (Some(index(&runs)), 1)
        }
    };
    let base = base_idx.as_ref().unwrap_or(&accepted_idx);
    let mut comparisons = Vec::new();
    let mut trends = Vec::new();
    let mut numerics_run = BTreeMap::new();
    let mut seen_runs: std::collections::HashSet<&str> = Default::default();
    for cell in cur.cells {
        let device = cur.device_of(cell);
        let key = (cell.key.as_str(), device);
        let kh = base.get(&key);
        if let Some(a) = accepted_idx.get(&key) {
            seen_runs.extend(a.runs.iter().copied());
        }
        if let Some(run) = kh.and_then(|k| k.runs.first()) {
            numerics_run.insert(cell.key.clone(), run.to_string());
        }
        for def in METRICS {
            let Some(new) = value_of(def, cell) else {
                continue;
            };
            let prior: &[f64] = kh
                .and_then(|k| k.values.get(def.name))
                .map_or(&[], |v| &v[..v.len().min(window)]);
            let rule = rules.rule(def.name);
            let j = judge(prior, new, def.direction, &rule);
            comparisons.push(MetricComparison {
                cell: cell.key.clone(),
                metric: def.name.to_string(),
                unit: def.unit.to_string(),
                direction: def.direction.as_str().to_string(),
                baseline: j.baseline,
                new: Some(new),
                change: j.change,
                band: j.band,
                band_from: j.band_from.map(|b| b.as_str().to_string()),
                threshold: Some(rule.threshold),
                history_runs: prior.len(),
                baseline_status: None,
                new_status: None,
                verdict: j.verdict,
                acknowledged: false,
            });
            let trail: Vec<f64> = accepted_idx
                .get(&key)
                .and_then(|k| k.values.get(def.name))
                .map(|v| v.iter().take(TREND_RUNS).rev().copied().collect())
                .unwrap_or_default();
            trends.push(TrendSeries {
                cell: cell.key.clone(),
                metric: def.name.to_string(),
                unit: def.unit.to_string(),
                accepted: trail,
                new: Some(new),
                baseline: j.baseline,
                band: j.band,
            });
        }
        let old = kh.and_then(|k| k.statuses.first().copied());
        let now = cell.verdict.as_str();
        comparisons.push(MetricComparison {
            cell: cell.key.clone(),
            metric: STATUS.to_string(),
            unit: String::new(),
            direction: "status".into(),
            baseline: None,
            new: None,
            change: None,
            band: None,
            band_from: None,
            threshold: None,
            history_runs: usize::from(old.is_some()),
            baseline_status: old.map(str::to_string),
            new_status: Some(now.to_string()),
            verdict: judge_status(old, now, passed),
            acknowledged: false,
        });
    }
    Comparison {
        comparisons,
        trends,
        numerics_run,
        prior_accepted_runs: seen_runs.len(),
    }
}

/// Verdict counts, the words as keys.
pub fn count<'a>(
    verdicts: impl Iterator<Item = RegressionVerdict> + 'a,
) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for v in verdicts {
        *m.entry(v.as_str().to_string()).or_default() += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::model::tests::run;
    use crate::history::model::StoredValue;

    fn cell(key: &str, decode_tok_s: f64, verdict: Verdict) -> CellSummary {
        let mut c: CellSummary = serde_json::from_value(serde_json::json!({
            "key": key, "status": "OK", "verdict": "PASS_EQUIV", "reasons": [], "notes": [],
            "reference_cell": false, "backend": "cpu", "device": "cpu0", "batch": 1,
            "prompt_offset": 0, "ctx": 8, "gen": 4, "span": 2, "dtype": "f32",
            "numerics": "invariant", "attn_impl": "flash", "kv_aligned": true, "variant": null,
            "prefill_s": null, "decode_s": null, "reference_prefill_s": null,
            "model_load_s": null, "tokenize_s": null, "setup_s": null, "wall_s": null,
            "decode_tok_s": null, "prefill_tok_s": null, "peak_mb": null, "peak_t_s": null,
            "high_water_mb": null, "baseline_mb": null, "memory_source": null,
            "memory_period_s": null, "memory_samples": 0, "memory_series": [],
            "comparisons": [], "sequences": []
        }))
        .unwrap();
        c.decode_tok_s = Some(decode_tok_s);
        c.verdict = verdict;
        c
    }

    fn history(values: &[(f64, bool, &str)]) -> History {
        History {
            runs: values
                .iter()
                .enumerate()
                .map(|(i, &(v, accepted, device))| {
                    let mut r = run(i as i64 + 1, &format!("r{}", i + 1));
                    r.info.accepted = accepted;
                    let row = |metric: &str, value: Option<f64>| StoredValue {
                        cell: "c".into(),
                        device: device.into(),
                        metric: metric.into(),
                        unit: String::new(),
                        direction: String::new(),
                        value,
                        verdict: "PASS_EQUIV".into(),
                    };
                    r.values = vec![row("decode_tok_s", Some(v)), row(STATUS, None)];
                    r
                })
                .collect(),
        }
    }

    fn current(cells: &[CellSummary]) -> Current<'_> {
        Current {
            mode: "b3_81",
            model_sha256: "abc",
            device: "cpu0",
            cells,
        }
    }

    fn decode(c: &Comparison) -> &MetricComparison {
        c.comparisons
            .iter()
            .find(|m| m.metric == "decode_tok_s")
            .unwrap()
    }

    #[test]
    fn median_of_the_last_window_accepted_runs_of_the_same_key() {
        // Rejected runs and runs on another device do not count; the window keeps the newest.
        let h = history(&[
            (10.0, true, "cpu0"),
            (100.0, true, "cpu0"),
            (100.0, false, "cpu0"),
            (1.0, true, "other"),
            (102.0, true, "cpu0"),
            (98.0, true, "cpu0"),
        ]);
        let cells = [cell("c", 60.0, Verdict::PassEquiv)];
        let c = compare(
            &h,
            &current(&cells),
            &Baseline::Recent { window: 3 },
            &Rules::default(),
        );
        let d = decode(&c);
        assert_eq!(d.history_runs, 3);
        assert_eq!(d.baseline, Some(100.0));
        assert_eq!(d.verdict, RegressionVerdict::Regressed);
        assert_eq!(c.prior_accepted_runs, 4);
        assert_eq!(c.numerics_run["c"], "r6");
        let t = c
            .trends
            .iter()
            .find(|t| t.metric == "decode_tok_s")
            .unwrap();
        assert_eq!(t.accepted, vec![10.0, 100.0, 102.0, 98.0]);
        assert_eq!(t.new, Some(60.0));
    }

    #[test]
    fn another_device_is_insufficient_history_not_a_regression() {
        let h = history(&[(100.0, true, "cpu0")]);
        let mut c1 = cell("c", 10.0, Verdict::PassEquiv);
        c1.device = Some("gpu".into());
        let cells = [c1];
        let c = compare(
            &h,
            &current(&cells),
            &Baseline::Recent { window: 10 },
            &Rules::default(),
        );
        assert!(c
            .comparisons
            .iter()
            .all(|m| m.verdict == RegressionVerdict::InsufficientHistory));
        assert_eq!(c.prior_accepted_runs, 0);
    }

    #[test]
    fn a_tagged_run_is_the_baseline_even_when_newer_runs_differ() {
        let mut h = history(&[(50.0, true, "cpu0"), (100.0, true, "cpu0")]);
        h.set_tag(0, "v1");
        let cells = [cell("c", 52.0, Verdict::PassEquiv)];
        let cur = current(&cells);
        let rules = Rules::default();
        let c = compare(&h, &cur, &Baseline::Run(0), &rules);
        assert_eq!(decode(&c).baseline, Some(50.0));
        assert_eq!(decode(&c).verdict, RegressionVerdict::WithinNoise);
        assert_eq!(c.numerics_run["c"], "r1");
        let c = compare(&h, &cur, &Baseline::Recent { window: 10 }, &rules);
        assert_eq!(decode(&c).verdict, RegressionVerdict::Regressed);
    }

    #[test]
    fn status_changes_and_per_metric_thresholds() {
        let h = history(&[(100.0, true, "cpu0")]);
        let cells = [cell("c", 85.0, Verdict::FailOom)];
        let mut rules = Rules::default();
        rules.per_metric.insert("decode_tok_s".into(), 0.2);
        let c = compare(
            &h,
            &current(&cells),
            &Baseline::Recent { window: 10 },
            &rules,
        );
        assert_eq!(decode(&c).verdict, RegressionVerdict::WithinNoise);
        assert_eq!(decode(&c).threshold, Some(0.2));
        let s = c.comparisons.iter().find(|m| m.metric == STATUS).unwrap();
        assert_eq!(s.verdict, RegressionVerdict::NewFailure);
        assert_eq!(s.baseline_status.as_deref(), Some("PASS_EQUIV"));
        assert_eq!(s.new_status.as_deref(), Some("FAIL_OOM"));
    }
}
