//! The run history end to end, on copies of one real tiny b3_81 sweep (all with
//! `--gate PASS_EQUIV`): a slower decode is REGRESSED (exit 1) and the report names it with old
//! and new values; an unchanged run is WITHIN_NOISE; an acknowledged change passes and is
//! listed; another device is INSUFFICIENT_HISTORY; `--baseline TAG`; accept/reject/tag via the
//! CLI; numeric drift against the last accepted run; bad input is exit 2.

#![cfg(feature = "history")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use common::*;
use serde_json::Value;

const B2: &str = "cpu_b2_p0_ctx128_gen16_span8_f32_invariant_flash_kv1_s0";
const B1: &str = "cpu_b1_p0_ctx128_gen16_span8_f32_invariant_flash_kv1_s0";

/// One clean tiny b3_81 quick sweep, shared by every test of this file (copied, never
/// changed in place).
fn sweep() -> &'static Path {
    static SWEEP: OnceLock<PathBuf> = OnceLock::new();
    SWEEP.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e_history");
        let _ = std::fs::remove_dir_all(&base);
        let dir = base.join("sweep");
        let o = run_sweep(&dir, &["--mode", "b3_81", "--quick", "--model", "tiny"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        dir
    })
}

/// A fresh copy of the sweep, changed by `edit`.
fn copy(root: &Path, name: &str, edit: impl Fn(&Path)) -> PathBuf {
    let d = root.join(name);
    copy_dir(sweep(), &d);
    // Reports of the shared sweep are not copied along: each copy gets its own.
    for f in ["report.md", "summary.json"] {
        let _ = std::fs::remove_file(d.join(f));
    }
    edit(&d);
    d
}

fn edit_run_json(cell_dir: &Path, f: impl Fn(&mut Value)) {
    let p = cell_dir.join("run.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// Decode twice as slow in the batch-2 cell.
fn slower_decode(d: &Path) {
    edit_run_json(&d.join(B2), |v| {
        let t = v["timings"]["decode_s"].as_f64().unwrap();
        v["timings"]["decode_s"] = Value::from(t * 2.0);
    });
}

/// `analyze --gate PASS_EQUIV --history HIST` plus `extra`, run in `cwd` (so the default
/// acknowledgements file of the repository is not picked up).
fn analyze_h(traces: &Path, hist: &Path, cwd: &Path, extra: &[&str]) -> Output {
    let o = tracecheck()
        .current_dir(cwd)
        .arg("analyze")
        .args(["--mode", "b3_81", "--gate", "PASS_EQUIV", "--traces-dir"])
        .arg(traces)
        .arg("--history")
        .arg(hist)
        .args(extra)
        .output()
        .unwrap();
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    o
}

fn history_cmd(args: &[&str], hist: &Path) -> Output {
    let o = tracecheck()
        .arg("history")
        .args(args)
        .arg("--history")
        .arg(hist)
        .output()
        .unwrap();
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    o
}

fn comparison<'a>(s: &'a Value, cell: &str, metric: &str) -> &'a Value {
    s["history"]["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cell"] == cell && c["metric"] == metric)
        .unwrap_or_else(|| panic!("no comparison {cell} {metric}"))
}

fn verdicts(s: &Value) -> Vec<String> {
    s["history"]["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["verdict"].as_str().unwrap().to_string())
        .collect()
}

/// A history of `n` accepted runs of the clean sweep.
fn accepted_history(root: &Path, n: usize) -> PathBuf {
    let hist = root.join("hist");
    let clean = copy(root, "clean", |_| {});
    for i in 0..n {
        let o = analyze_h(&clean, &hist, root, &[]);
        assert_eq!(o.status.code(), Some(0), "run {i}: {}", stderr(&o));
    }
    hist
}

/// The first number of a report table cell such as `5442 tokens/s`.
fn number(cell: &str) -> f64 {
    cell.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn a_slower_decode_is_regressed_named_with_old_and_new_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let hist = accepted_history(root, 3);
    let slow = copy(root, "slow", slower_decode);
    let o = analyze_h(&slow, &hist, root, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("REGRESSED") && err.contains(B2) && err.contains("decode_tok_s"),
        "the terminal names it: {err}"
    );
    assert!(err.contains("gate PASS_EQUIV: passed"), "{err}");

    let s = summary(&slow.join("summary.json"));
    assert_eq!(s["overall"]["exit_code"], 1);
    let h = &s["history"];
    assert_eq!(h["prior_accepted_runs"], 3);
    assert_eq!(h["regressions"], 2, "decode tokens/s and decode time");
    let d = comparison(&s, B2, "decode_tok_s");
    assert_eq!(d["verdict"], "REGRESSED");
    assert_eq!(d["history_runs"], 3);
    let (old, new) = (d["baseline"].as_f64().unwrap(), d["new"].as_f64().unwrap());
    assert!((new / old - 0.5).abs() < 1e-9, "{old} → {new}");
    assert_eq!(comparison(&s, B2, "decode_s")["verdict"], "REGRESSED");
    assert_eq!(comparison(&s, B2, "prefill_s")["verdict"], "WITHIN_NOISE");
    assert_eq!(
        comparison(&s, B1, "decode_tok_s")["verdict"],
        "WITHIN_NOISE"
    );
    assert_eq!(h["recorded"]["accepted"], false);

    // The report's table names the cell, the metric, the old and the new value.
    let md = std::fs::read_to_string(slow.join("report.md")).unwrap();
    assert!(md.contains("## Regressions vs prior runs"), "{md}");
    let row = md
        .lines()
        .find(|l| l.contains(B2) && l.contains("decode tokens/s") && l.contains("REGRESSED"))
        .unwrap_or_else(|| panic!("no regression row: {md}"));
    let cols: Vec<&str> = row.split('|').map(str::trim).collect();
    // | Cell | Metric | Baseline | New | Change | Band | Verdict |
    assert!((number(cols[3]) / old - 1.0).abs() < 1e-3, "{row}");
    assert!((number(cols[4]) / new - 1.0).abs() < 1e-3, "{row}");
    assert_eq!(cols[5], "-50.0 %", "{row}");
    assert!(md.contains("regressions not acknowledged: the run fails"));
    assert!(slow.join("report_trend_decode_tok_s.png").is_file());

    // Without --gate a regression still fails the run (the history is a gate of its own).
    let o = tracecheck()
        .current_dir(root)
        .args(["analyze", "--mode", "b3_81", "--no-record", "--traces-dir"])
        .arg(&slow)
        .arg("--history")
        .arg(&hist)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));

    // The rejected run does not become the baseline: the same slow run regresses again; its
    // JUnit file carries the regression as a failure with the old and new values.
    let junit = root.join("slow.xml");
    let o = analyze_h(&slow, &hist, root, &["--junit", junit.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let xml = std::fs::read_to_string(&junit).unwrap();
    let case = xml
        .split("<testcase ")
        .find(|c| c.contains("history_decode_tok_s") && c.contains(B2))
        .unwrap_or_else(|| panic!("no history test case: {xml}"));
    assert!(
        case.contains("<failure") && case.contains("REGRESSED"),
        "{case}"
    );
    assert!(
        case.contains(&format!("{old:.6}")) && case.contains(&format!("{new:.6}")),
        "old and new values: {case}"
    );
    let list = stdout(&history_cmd(&["list"], &hist));
    assert_eq!(list.matches("| yes |").count(), 3, "{list}");
    assert_eq!(list.matches("| no |").count(), 2, "{list}");
}

#[test]
fn an_unchanged_run_is_within_noise_and_is_appended() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // One accepted run is history enough for the threshold test.
    let hist = accepted_history(root, 1);
    let again = copy(root, "again", |_| {});
    let o = analyze_h(&again, &hist, root, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&again.join("summary.json"));
    let v = verdicts(&s);
    assert!(
        !v.is_empty() && v.iter().all(|v| v == "WITHIN_NOISE"),
        "{v:?}"
    );
    let numerics = s["history"]["numerics"].as_array().unwrap();
    assert_eq!(
        numerics.len(),
        6,
        "every cell's logits against the last accepted run"
    );
    assert!(numerics
        .iter()
        .all(|d| d["verdict"] == "WITHIN_NOISE" && d["drift"]["bit_exact"] == true));
    assert_eq!(s["history"]["recorded"]["accepted"], true);
    let list = stdout(&history_cmd(&["list"], &hist));
    assert_eq!(list.matches("| yes |").count(), 2, "{list}");
    let md = std::fs::read_to_string(again.join("report.md")).unwrap();
    assert!(md.contains("No metric moved beyond its band."), "{md}");
}

#[test]
fn an_acknowledged_change_passes_and_is_listed_and_a_bad_file_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let hist = accepted_history(root, 1);
    let slow = copy(root, "slow", slower_decode);
    let ack = root.join("acknowledged.toml");
    std::fs::write(
        &ack,
        format!(
            r#"[[ack]]
cell = "{B2}"
metric = "decode_tok_s"
reason = "batch 2 decode takes the split-K path on purpose"
date = "2026-05-01"

[[ack]]
cell = "{B2}"
metric = "decode_s"
reason = "same change, seen as time"
date = "2026-05-01"
"#
        ),
    )
    .unwrap();
    let o = analyze_h(
        &slow,
        &hist,
        root,
        &["--acknowledged", ack.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&slow.join("summary.json"));
    let h = &s["history"];
    assert_eq!(h["regressions"], 0);
    let acked = h["acknowledged"].as_array().unwrap();
    assert_eq!(acked.len(), 2);
    assert_eq!(acked[0]["entry"], 1);
    let d = comparison(&s, B2, "decode_tok_s");
    assert_eq!(d["verdict"], "REGRESSED");
    assert_eq!(d["acknowledged"], true);
    assert_eq!(h["recorded"]["accepted"], true);
    let md = std::fs::read_to_string(slow.join("report.md")).unwrap();
    assert!(md.contains("### Acknowledged changes"), "{md}");
    assert!(md.contains("batch 2 decode takes the split-K path on purpose"));
    assert!(md.contains("REGRESSED (acknowledged)"));

    // The default file, reports/acknowledged.toml under the working directory, is read too.
    std::fs::create_dir_all(root.join("reports")).unwrap();
    std::fs::copy(&ack, root.join("reports/acknowledged.toml")).unwrap();
    let o = analyze_h(&slow, &hist, root, &["--no-record"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // A missing reason or a bad date is bad input naming the file and the entry.
    let cases = [
        (
            format!("[[ack]]\ncell = \"{B2}\"\nmetric = \"decode_s\"\ndate = \"2026-05-01\"\n"),
            "entry 1",
            "`reason` is missing",
        ),
        (
            format!("[[ack]]\ncell = \"{B2}\"\nmetric = \"decode_s\"\nreason = \"r\"\ndate = \"May 1\"\n"),
            "entry 1",
            "is not YYYY-MM-DD",
        ),
        ("[[ack]\n".to_string(), "acknowledged.toml", "TOML"),
    ];
    for (text, entry, fault) in cases {
        std::fs::write(&ack, text).unwrap();
        let o = analyze_h(
            &slow,
            &hist,
            root,
            &["--acknowledged", ack.to_str().unwrap()],
        );
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains("acknowledged.toml") && e.contains(entry) && e.contains(fault),
            "{e}"
        );
    }
}

#[test]
fn another_device_is_insufficient_history_not_a_regression() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let hist = accepted_history(root, 2);
    let other = copy(root, "other_device", |d| {
        slower_decode(d);
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.join("run.json").is_file() {
                edit_run_json(&p, |v| v["engine"]["device"] = Value::from("NVIDIA H200"));
            }
        }
    });
    let o = analyze_h(&other, &hist, root, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&other.join("summary.json"));
    let v = verdicts(&s);
    assert!(v.iter().all(|v| v == "INSUFFICIENT_HISTORY"), "{v:?}");
    assert_eq!(s["history"]["prior_accepted_runs"], 0);
    assert!(s["history"]["numerics"].as_array().unwrap().is_empty());
}

#[test]
fn baseline_tag_and_accept_reject_tag_via_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let hist = accepted_history(root, 1);
    let o = history_cmd(&["tag", "v1"], &hist);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("tagged v1"));

    // A slower run fails and is not accepted; accepting it makes it history.
    let slow = copy(root, "slow", slower_decode);
    assert_eq!(analyze_h(&slow, &hist, root, &[]).status.code(), Some(1));
    let o = history_cmd(
        &["accept", "latest", "--reason", "intended: new kernel"],
        &hist,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let list = stdout(&history_cmd(&["list"], &hist));
    assert!(
        list.contains("intended: new kernel") && list.contains("v1"),
        "{list}"
    );
    assert_eq!(list.matches("| yes |").count(), 2, "{list}");

    // The same slow run against the newest accepted run (now itself): within noise; against
    // the tag: still a regression.
    let window1 = ["--history-window", "1", "--no-record"];
    let o = analyze_h(&slow, &hist, root, &window1);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&slow.join("summary.json"));
    assert_eq!(comparison(&s, B2, "decode_s")["verdict"], "WITHIN_NOISE");
    let o = analyze_h(&slow, &hist, root, &["--baseline", "v1", "--no-record"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&slow.join("summary.json"));
    assert_eq!(comparison(&s, B2, "decode_s")["verdict"], "REGRESSED");
    assert_eq!(comparison(&s, B2, "decode_s")["history_runs"], 1);
    assert_eq!(s["history"]["baseline_tag"], "v1");
    assert!(s["history"]["recorded"].is_null());

    // Rejecting it again makes the tagged run the newest accepted one.
    let o = history_cmd(&["reject", "latest"], &hist);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = analyze_h(&slow, &hist, root, &window1);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));

    // Unknown tags and runs are bad input, named.
    let o = analyze_h(&slow, &hist, root, &["--baseline", "v9"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no run is tagged `v9` (tags: v1)"),
        "{}",
        stderr(&o)
    );
    let o = history_cmd(&["accept", "19990101T000000Z"], &hist);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no run `19990101T000000Z`"),
        "{}",
        stderr(&o)
    );
    let o = history_cmd(&["tag", "a,b"], &hist);
    assert_eq!(o.status.code(), Some(2));
    let o = history_cmd(&["untag", "v1"], &hist);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stdout(&history_cmd(&["list"], &hist)).contains("v1"));
}

/// Flips the lowest mantissa bit of the argmax logit of decode row `j` of sequence 0.
fn flip_argmax_bit(cell_dir: &Path, j: usize) {
    let f = cell_dir.join("logits.safetensors");
    let mut bytes = std::fs::read(&f).unwrap();
    let vocab = 320;
    let row_at = tensor_offset(&bytes, "decode", j * vocab);
    let row: Vec<f32> = bytes[row_at..row_at + vocab * 4]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let argmax = (0..vocab)
        .max_by(|&a, &b| row[a].total_cmp(&row[b]).then(b.cmp(&a)))
        .unwrap();
    bytes[row_at + argmax * 4] ^= 1;
    std::fs::write(&f, bytes).unwrap();
}

#[test]
fn numeric_drift_against_the_last_accepted_run_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let hist = root.join("hist");
    let clean = copy(root, "clean", |_| {});
    let fp32 = ["--policy", "fp32"];
    assert_eq!(analyze_h(&clean, &hist, root, &fp32).status.code(), Some(0));
    // A 1-ULP change of the batch-1 cell's top logit at position 2, in decode only.
    let drifted = copy(root, "drifted", |d| flip_argmax_bit(&d.join(B1), 2));

    // Under fp32 the change is within the policy: shown, not failing.
    let o = analyze_h(&drifted, &hist, root, &["--policy", "fp32", "--no-record"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&drifted.join("summary.json"));
    let d = s["history"]["numerics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["cell"] == B1)
        .unwrap();
    assert_eq!(d["drift"]["bit_exact"], false);
    assert_eq!(d["drift"]["first_divergent_position"], 2);
    assert!(d["drift"]["max_abs_diff"].as_f64().unwrap() > 0.0);
    assert_eq!(d["verdict"], "WITHIN_NOISE");
    let md = std::fs::read_to_string(drifted.join("report.md")).unwrap();
    assert!(
        md.contains("### Numeric drift vs last accepted run"),
        "{md}"
    );
    let row = md
        .lines()
        .find(|l| l.starts_with(&format!("| `{B1}` |")) && l.contains("| no |"))
        .unwrap_or_else(|| panic!("no drift row for {B1}: {md}"));
    assert!(row.contains("| 2 |"), "first divergent position: {row}");

    // Under exact it is a numerics regression against the last accepted run.
    let o = analyze_h(&drifted, &hist, root, &["--no-record"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&drifted.join("summary.json"));
    let d = s["history"]["numerics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["cell"] == B1)
        .unwrap();
    assert_eq!(d["verdict"], "REGRESSED");
    let why = d["reasons"][0].as_str().unwrap();
    assert!(why.contains("not bit-identical to run"), "{why}");
    assert!(stderr(&o).contains("numerics"), "{}", stderr(&o));
}

#[test]
fn a_corrupt_history_is_exit_2_naming_it_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let hist = root.join("hist");
    std::fs::create_dir_all(&hist).unwrap();
    let file = hist.join("history.parquet");
    std::fs::write(&file, b"PAR1 not really parquet PAR1").unwrap();
    let clean = copy(root, "clean", |_| {});
    let o = analyze_h(&clean, &hist, root, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("history.parquet") && stderr(&o).contains("left as it is"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"PAR1 not really parquet PAR1"
    );
    let o = history_cmd(&["list"], &hist);
    assert_eq!(o.status.code(), Some(2));

    // History flags without --history, and a bad threshold, are usage errors.
    for (args, needle) in [
        (vec!["--baseline", "v1"], "--baseline needs --history"),
        (vec!["--no-record"], "--no-record needs --history"),
    ] {
        let o = analyze(&clean, &[&["--mode", "b3_81"][..], &args].concat());
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(needle), "{}", stderr(&o));
    }
    let o = analyze_h(
        &clean,
        &root.join("h2"),
        root,
        &["--regress-threshold", "speed=5%"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown metric `speed`"),
        "{}",
        stderr(&o)
    );
}
