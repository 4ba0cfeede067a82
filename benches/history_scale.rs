//! The history at scale: synthesises N prior runs (default 1,000) of a b3_81-like sweep, then
//! reports the history's size on disk and times analyze's history step (read the Parquet file,
//! compare every cell and metric, numerics, and append the run).
//!
//! `cargo bench --bench history_scale [-- SWEEP_DIR]`
//! - SWEEP_DIR: an analysed sweep (`summary.json` beside its cells): its cells, values and logits
//!   are used (numerics drift included), so `tracecheck analyze --traces-dir SWEEP_DIR
//!   --history KEEP_DIR` can then be timed end to end. Without it: 6 synthetic cells, no logits.
//! - env HISTORY_RUNS (default 1000), BENCH_REPS (default 5: median), HISTORY_KEEP=DIR (write
//!   the history there and keep it).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracecheck::analyze::load::{load_cells, Loaded};
use tracecheck::golden::golden_of;
use tracecheck::history::metrics::{value_of, METRICS, STATUS};
use tracecheck::history::model::{History, RunInfo, StoredRun, StoredValue};
use tracecheck::history::store::Store;
use tracecheck::history::{finish, numerics, prepare, HistoryArgs, Input};
use tracecheck::metrics::{Overrides, Policy};
use tracecheck::summary::Summary;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// splitmix64 in [-1, 1).
fn noise(seed: u64) -> f64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

/// A b3_81 quick-like summary with 6 cells and plausible numbers (no logits).
fn synthetic_summary() -> Summary {
    let cells: Vec<serde_json::Value> = [(1, 0), (1, 1), (1, 2), (1, 3), (2, 0), (4, 0)]
        .iter()
        .map(|&(b, p)| {
            serde_json::json!({
                "key": format!("cpu_b{b}_p{p}_ctx128_gen16_span8_f32_invariant_flash_kv1_s0"),
                "status": "OK", "verdict": "PASS_EQUIV", "reasons": [], "notes": [],
                "reference_cell": b == 1 && p > 0, "backend": "cpu", "device": "AMD EPYC",
                "batch": b, "prompt_offset": p, "ctx": 128, "gen": 16, "span": 8,
                "dtype": "f32", "numerics": "invariant", "attn_impl": "flash",
                "kv_aligned": true, "variant": null, "prefill_s": 0.003 * b as f64,
                "decode_s": 0.005 * b as f64, "reference_prefill_s": 0.003, "model_load_s": 0.01,
                "tokenize_s": 0.0, "setup_s": 0.0, "wall_s": 0.05 * b as f64,
                "decode_tok_s": 3000.0, "prefill_tok_s": 43000.0, "peak_mb": 30.0 + b as f64,
                "peak_t_s": 0.01, "high_water_mb": 28.0 + b as f64, "baseline_mb": 0.0,
                "memory_source": "rss", "memory_period_s": 0.05, "memory_samples": 3,
                "memory_series": [], "comparisons": [], "sequences": []
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "schema_version": 1, "tool": "tracecheck", "tool_version": "0.1.0", "mode": "b3_81",
        "traces_dir": "synthetic", "generated_at": "2026-11-22T12:00:00Z", "policy": "exact",
        "atol": null, "min_top1": null, "allow": [], "golden_dir": null,
        "model": "tracecheck-tiny", "model_sha256": "0".repeat(64), "device": "AMD EPYC",
        "backend": "cpu", "timeout_s": null, "run_argv": null, "analyze_argv": [],
        "cells": cells, "tables": {"batch": [], "context": [], "prefill": [], "scaling": []},
        "overall": {"verdict": "PASS_EQUIV", "gate": "PASS_EQUIV", "gate_passed": true,
                    "exit_code": 0, "counts": {}, "problems": []}
    }))
    .expect("synthetic summary")
}

/// N runs of `s`'s cells, each value moved by ±2 % noise; 1 run in 20 rejected.
fn synthesise(s: &Summary, n: usize) -> History {
    let mut runs = Vec::with_capacity(n);
    for i in 0..n {
        let seq = i as i64 + 1;
        // 2026-01-01 plus i hours: ids stay valid and sortable.
        let (day, hour) = (i / 24, i % 24);
        let run_id = format!(
            "2026{:02}{:02}T{hour:02}0000Z-{:06x}",
            1 + day / 28 % 12,
            1 + day % 28,
            i
        );
        let mut values = Vec::new();
        for (c_i, c) in s.cells.iter().enumerate() {
            let device = c.device.clone().unwrap_or_default();
            values.push(StoredValue {
                cell: c.key.clone(),
                device: device.clone(),
                metric: STATUS.into(),
                unit: String::new(),
                direction: "status".into(),
                value: None,
                verdict: c.verdict.to_string(),
            });
            for (m_i, m) in METRICS.iter().enumerate() {
                if let Some(v) = value_of(m, c) {
                    let r = noise((i * 1000 + c_i * 10 + m_i) as u64);
                    values.push(StoredValue {
                        cell: c.key.clone(),
                        device: device.clone(),
                        metric: m.name.into(),
                        unit: m.unit.into(),
                        direction: m.direction.as_str().into(),
                        value: Some(v * (1.0 + 0.02 * r)),
                        verdict: c.verdict.to_string(),
                    });
                }
            }
        }
        runs.push(StoredRun {
            info: RunInfo {
                run_id,
                seq,
                recorded_at: "2026-01-01T00:00:00Z".into(),
                mode: s.mode.clone(),
                model: s.model.clone(),
                model_sha256: s.model_sha256.clone().unwrap_or_default(),
                engine_version: Some("0.1.0".into()),
                engine_revision: Some(format!("{:040x}", i * 7919)),
                host: Some("ci-runner".into()),
                traces_dir: "runs/b3_81".into(),
                accepted: i % 20 != 7,
                decision: "gate PASS_EQUIV passed, no regressions".into(),
                tags: if i == 100 { vec!["v1".into()] } else { vec![] },
            },
            values,
        });
    }
    History { runs }
}

fn dir_size(p: &Path) -> u64 {
    walk(p)
        .iter()
        .map(|f| f.metadata().map_or(0, |m| m.len()))
        .sum()
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let n = env_usize("HISTORY_RUNS", 1000);
    let reps = env_usize("BENCH_REPS", 5).max(1);
    let sweep: Option<PathBuf> = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from);
    let (summary, traces): (Summary, Vec<Loaded>) = match &sweep {
        Some(d) => {
            let text = std::fs::read_to_string(d.join("summary.json"))
                .expect("SWEEP_DIR/summary.json (run tracecheck analyze on it first)");
            let mut s: Summary = serde_json::from_str(&text).expect("summary.json");
            s.history = None;
            let (cells, _) = load_cells(d).expect("sweep cells");
            (s, cells)
        }
        None => (synthetic_summary(), Vec::new()),
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = std::env::var("HISTORY_KEEP")
        .map(PathBuf::from)
        .unwrap_or_else(|_| tmp.path().join("history"));
    let _ = std::fs::remove_dir_all(&dir);

    let h = synthesise(&summary, n);
    let store = Store::new(&dir);
    let t = Instant::now();
    store.save(&h).expect("save");
    let save = t.elapsed();
    // The numerics records the history keeps (the newest accepted runs, the tag, …).
    let records: Vec<(String, tracecheck::golden::GoldenFile)> = traces
        .iter()
        .filter_map(|l| Some((l.key.clone(), golden_of(l.ok()?)?)))
        .collect();
    for id in numerics::runs_to_keep(&h) {
        numerics::write_run(&dir, &id, &records).expect("numerics");
    }
    let rows: usize = h.runs.iter().map(|r| r.values.len()).sum();
    let parquet = std::fs::metadata(store.file()).map_or(0, |m| m.len());
    println!(
        "history: {n} runs × {} cells = {rows} rows{}",
        summary.cells.len(),
        if sweep.is_some() {
            " (cells and logits of the given sweep)"
        } else {
            " (synthetic cells, no numerics records)"
        }
    );
    println!(
        "  history.parquet {:.1} kB ({:.1} bytes/row), numerics/ {:.1} kB, directory {:.1} kB",
        parquet as f64 / 1e3,
        parquet as f64 / rows as f64,
        dir_size(&dir.join(numerics::NUMERICS_DIR)) as f64 / 1e3,
        dir_size(&dir) as f64 / 1e3
    );
    println!("  write all {n} runs: {}", ms(save));

    let args = HistoryArgs {
        history: Some(dir.clone()),
        history_window: 10,
        no_record: true,
        ..Default::default()
    };
    let thresholds = Policy::Exact.thresholds(&Overrides::default());
    // What analyze's history step does: prepare (read, compare, numerics), then finish.
    let history_step = |a: &HistoryArgs| {
        let p = prepare(a).expect("prepare");
        finish(
            p,
            Input {
                summary: &summary,
                traces: &traces,
                thresholds,
            },
        )
        .expect("finish")
        .expect("history")
    };
    let mut load = Vec::new();
    let mut step = Vec::new();
    let mut verdicts = String::new();
    for _ in 0..reps {
        let t = Instant::now();
        std::hint::black_box(store.load().expect("load"));
        load.push(t.elapsed());
        let t = Instant::now();
        let hs = history_step(&args);
        step.push(t.elapsed());
        verdicts = format!("{:?}", hs.counts);
    }
    println!(
        "  read history.parquet: {} (median of {reps})",
        ms(median(load))
    );
    println!(
        "  history step, compare only (read + compare + numerics): {} (median of {reps}); {verdicts}",
        ms(median(step))
    );
    let record = HistoryArgs {
        no_record: false,
        ..args
    };
    let t = Instant::now();
    let hs = history_step(&record);
    println!(
        "  history step with recording (read + compare + numerics + append {} rows + prune): {}",
        summary.cells.len() * (METRICS.len() + 1),
        ms(t.elapsed())
    );
    assert!(hs.recorded.is_some());
    if std::env::var("HISTORY_KEEP").is_ok() {
        println!("  kept in {}", dir.display());
    }
}
