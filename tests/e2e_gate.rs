//! The CI gate and bad input: a negative control (one flipped bit → FAIL_EQUIV, exit 1), real
//! FAIL_OOM and FAIL_TIMEOUT cells that leave the others their data, broken traces among good
//! ones (INVALID_TRACE, report still written, exit 2), validate, bless and golden drift.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// A clean tiny b3_81 quick sweep (batches 1, 2, 4 and the batch-1 twins).
fn clean_sweep(root: &Path) -> PathBuf {
    let sweep = root.join("clean");
    let o = run_sweep(&sweep, &["--mode", "b3_81", "--quick", "--model", "tiny"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    sweep
}

const B2: &str = "cpu_b2_p0_ctx128_gen16_span8_f32_invariant_flash_kv1_s0";

#[test]
fn one_flipped_bit_fails_the_gate_and_the_clean_sweep_passes() {
    let dir = tempfile::tempdir().unwrap();
    let clean = clean_sweep(dir.path());
    let o = analyze(&clean, &["--mode", "b3_81", "--gate", "PASS_EQUIV"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let bad = dir.path().join("flipped");
    copy_dir(&clean, &bad);
    let f = bad.join(B2).join("logits.safetensors");
    let mut bytes = std::fs::read(&f).unwrap();
    // Lowest mantissa bit of decode[b=1, j=3, id=17]: a 1-ULP change.
    let vocab = 320;
    let at = tensor_offset(&bytes, "decode", (8 + 3) * vocab + 17);
    bytes[at] ^= 1;
    std::fs::write(&f, bytes).unwrap();
    let o = analyze(&bad, &["--mode", "b3_81", "--gate", "PASS_EQUIV"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&bad.join("summary.json"));
    let cell = s["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"] == B2)
        .unwrap();
    assert_eq!(cell["verdict"], "FAIL_EQUIV");
    let md = std::fs::read_to_string(bad.join("report.md")).unwrap();
    assert!(md.contains("FAIL_EQUIV") && md.contains("## Divergence"));
    // Without a gate the analysis itself succeeds.
    assert_eq!(analyze(&bad, &["--mode", "b3_81"]).status.code(), Some(0));
    // A tolerance policy accepts a 1-ULP change.
    assert_eq!(
        analyze(
            &bad,
            &[
                "--mode",
                "b3_81",
                "--gate",
                "PASS_EQUIV",
                "--policy",
                "fp32"
            ]
        )
        .status
        .code(),
        Some(0)
    );
}

#[test]
fn mem_limit_and_timeout_give_failed_cells_and_keep_the_others() {
    let dir = tempfile::tempdir().unwrap();
    // Tiny model at ctx 2000: batch 4's KV cache does not fit in 4 MB, batch 1 and 2 do.
    let sweep = dir.path().join("oom");
    let o = run_sweep(
        &sweep,
        &[
            "--mode",
            "b3_81",
            "--quick",
            "--model",
            "tiny",
            "--ctx",
            "2000",
            "--mem-limit",
            "4",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = analyze(&sweep, &["--mode", "b3_81", "--gate", "PASS_EQUIV"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "FAIL_OOM is outside the gate: {}",
        stderr(&o)
    );
    let s = summary(&sweep.join("summary.json"));
    let verdict = |b: u64| {
        s["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["batch"] == b && c["prompt_offset"] == 0)
            .unwrap()["verdict"]
            .clone()
    };
    assert_eq!(verdict(4), "FAIL_OOM");
    assert_eq!(verdict(1), "PASS_EQUIV");
    assert_eq!(verdict(2), "PASS_EQUIV");
    let oom_dir = sweep.join("cpu_b4_p0_ctx2000_gen16_span8_f32_invariant_flash_kv1_s0");
    assert!(oom_dir.join("stderr.tail.txt").exists());
    assert!(!oom_dir.join("logits.safetensors").exists());
    // --allow lets an expected status through.
    let o = analyze(
        &sweep,
        &[
            "--mode",
            "b3_81",
            "--gate",
            "PASS_EQUIV",
            "--allow",
            "FAIL_OOM",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // A 60k-token prefill cannot finish a phase within 2 s; the 64-token cells can.
    let sweep = dir.path().join("timeout");
    let o = run_sweep(
        &sweep,
        &[
            "--mode",
            "b3_89",
            "--quick",
            "--model",
            "tiny",
            "--ctx",
            "64,60000",
            "--attn",
            "flash",
            "--timeout",
            "2",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = analyze(&sweep, &["--mode", "b3_89"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&sweep.join("summary.json"));
    let by_ctx = |n: u64| {
        s["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["ctx"] == n)
            .unwrap()["verdict"]
            .clone()
    };
    assert_eq!(by_ctx(60000), "FAIL_TIMEOUT");
    assert_eq!(by_ctx(64), "PASS_EQUIV");
}

#[test]
fn broken_cells_among_good_ones_are_invalid_and_the_report_is_still_written() {
    let dir = tempfile::tempdir().unwrap();
    let clean = clean_sweep(dir.path());
    type Breaker = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Breaker)> = vec![
        (
            "missing field",
            Box::new(|d: &Path| {
                let p = d.join(B2).join("run.json");
                let mut v: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                v["config"].as_object_mut().unwrap().remove("span");
                std::fs::write(&p, v.to_string()).unwrap();
            }),
        ),
        (
            "schema version",
            Box::new(|d: &Path| {
                let p = d.join(B2).join("run.json");
                let t = std::fs::read_to_string(&p).unwrap().replacen(
                    "\"schema_version\": 1",
                    "\"schema_version\": 2",
                    1,
                );
                std::fs::write(&p, t).unwrap();
            }),
        ),
        (
            "truncated logits",
            Box::new(|d: &Path| {
                let p = d.join(B2).join("logits.safetensors");
                let b = std::fs::read(&p).unwrap();
                std::fs::write(&p, &b[..b.len() / 3]).unwrap();
            }),
        ),
        (
            "mis-shaped logits",
            Box::new(|d: &Path| {
                let p = d.join(B2).join("logits.safetensors");
                let v = vec![0f32; 2 * 7 * 320];
                tracecheck_engine::trace::write_logits(&p, 2, 7, 320, &v, &v).unwrap();
            }),
        ),
    ];
    for (name, break_it) in cases {
        let d = dir.path().join(name.replace(' ', "_"));
        copy_dir(&clean, &d);
        break_it(&d);
        let o = analyze(&d, &["--mode", "b3_81", "--gate", "PASS_EQUIV"]);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(B2),
            "{name}: the message names the cell: {}",
            stderr(&o)
        );
        let s = summary(&d.join("summary.json"));
        let cells = s["cells"].as_array().unwrap();
        let broken = cells.iter().find(|c| c["key"] == B2).unwrap();
        assert_eq!(broken["verdict"], "INVALID_TRACE", "{name}");
        assert!(
            cells
                .iter()
                .filter(|c| c["key"] != B2)
                .all(|c| c["verdict"] == "PASS_EQUIV"),
            "{name}"
        );
        assert!(d.join("report.md").exists(), "{name}");
        // validate lists the problem too.
        let o = tracecheck().arg("validate").arg(&d).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{name}");
        assert!(stdout(&o).contains("INVALID"), "{name}: {}", stdout(&o));
    }
    let o = tracecheck().arg("validate").arg(&clean).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn vocab_mismatch_between_cells_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let clean = clean_sweep(dir.path());
    let other = dir.path().join("other");
    let o = tracecheck_engine_capture(
        &other,
        &[
            "--model",
            "dummy:smollm2-135m",
            "--ctx",
            "8",
            "--gen",
            "2",
            "--span",
            "2",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let mixed = dir.path().join("mixed");
    copy_dir(&clean, &mixed);
    copy_dir(&other, &mixed);
    let o = analyze(&mixed, &["--mode", "b3_81"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("vocab 49152 differs"), "{}", stderr(&o));
}

fn tracecheck_engine_capture(out: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(engine_path())
        .arg("capture")
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn bad_invocations_are_exit_2_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--mode", "b3_81", "--traces-dir", "/nonexistent/x"],
            "does not exist",
        ),
        (
            vec!["--mode", "b3_81", "--traces-dir", empty.to_str().unwrap()],
            "no cells found",
        ),
        (
            vec!["--mode", "b9_99", "--traces-dir", empty.to_str().unwrap()],
            "unknown mode `b9_99`",
        ),
        (
            vec![
                "--mode",
                "b3_81",
                "--traces-dir",
                empty.to_str().unwrap(),
                "--policy",
                "loose",
            ],
            "--policy loose",
        ),
        (
            vec![
                "--mode",
                "b3_81",
                "--traces-dir",
                empty.to_str().unwrap(),
                "--gate",
                "GREEN",
            ],
            "--gate GREEN",
        ),
    ];
    for (args, needle) in cases {
        let o = tracecheck().arg("analyze").args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"));
    }
    let o = tracecheck()
        .args(["run", "--mode", "nope", "--out"])
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn bless_needs_yes_and_golden_drift_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let clean = clean_sweep(dir.path());
    let golden = dir.path().join("golden/b3_81/tiny");
    let o = tracecheck()
        .arg("bless")
        .arg("--traces-dir")
        .arg(&clean)
        .arg("--golden")
        .arg(&golden)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).contains("| Cell | Golden |") && stdout(&o).contains("--yes"),
        "{}",
        stdout(&o)
    );
    assert!(!golden.exists(), "nothing is written without --yes");
    let o = tracecheck()
        .arg("bless")
        .arg("--traces-dir")
        .arg(&clean)
        .arg("--golden")
        .arg(&golden)
        .arg("--yes")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(golden.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["run"][0], "run");
    assert_eq!(manifest["cells"].as_array().unwrap().len(), 6);
    // A fresh run of the manifest's command matches the golden bit for bit (same machine).
    let replay = dir.path().join("replay");
    let args: Vec<String> = manifest["run"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let o = tracecheck()
        .args(&args)
        .arg("--out")
        .arg(&replay)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = analyze(
        &replay,
        &[
            "--mode",
            "b3_81",
            "--gate",
            "PASS_EQUIV",
            "--golden",
            golden.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let md = std::fs::read_to_string(replay.join("report.md")).unwrap();
    assert!(md.contains("golden"), "{md}");
    // A golden whose stored hash no longer matches fails the gate.
    let g = golden.join(B2).join("golden.json");
    let text = std::fs::read_to_string(&g).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["sequences"][0]["rows"][2]["sha256"] = serde_json::Value::String("0".repeat(64));
    std::fs::write(&g, v.to_string()).unwrap();
    let o = analyze(
        &replay,
        &[
            "--mode",
            "b3_81",
            "--gate",
            "PASS_EQUIV",
            "--golden",
            golden.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}
