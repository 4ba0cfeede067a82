//! The `tracecheck-engine` binary end to end: a real capture writes a valid cell; every bad
//! input is a clear message naming the file or value, exit 2, never a panic; out of memory is
//! exit 3; an unsupported batch exit 4.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tracecheck_engine::model::tiny;
use tracecheck_engine::trace::{CellTrace, Side};

fn engine() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tracecheck-engine"))
}

struct Fixture {
    dir: tempfile::TempDir,
    model: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    tiny::write(&model).unwrap();
    Fixture { dir, model }
}

fn capture(f: &Fixture, extra: &[&str]) -> Output {
    let out = f.dir.path().join("sweep");
    let model = f.model.to_str().unwrap();
    let out_s = out.to_str().unwrap();
    let defaults = [
        ("--out", out_s),
        ("--model", model),
        ("--ctx", "24"),
        ("--gen", "4"),
        ("--span", "3"),
        ("--vram-period", "0.05"),
    ];
    let mut c = engine();
    c.arg("capture");
    // A flag given in `extra` replaces its default (clap refuses repeated flags).
    for (flag, value) in defaults {
        if !extra.contains(&flag) {
            c.args([flag, value]);
        }
    }
    c.args(extra);
    c.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_clean_failure(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert!(err.contains(needle), "expected `{needle}` in: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
}

#[test]
fn capture_writes_a_valid_cell_with_phase_events() {
    let f = fixture();
    let o = capture(
        &f,
        &[
            "--batch",
            "2",
            "--dtype",
            "bf16",
            "--attn",
            "naive",
            "--variant",
            "v3",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for phase in [
        "load",
        "tokenize",
        "setup",
        "prefill",
        "decode",
        "reference_prefill",
        "write",
    ] {
        for ev in ["start", "end"] {
            assert!(
                events
                    .iter()
                    .any(|e| e["phase"] == phase && e["event"] == ev),
                "missing {phase} {ev} in {stdout}"
            );
        }
    }
    assert_eq!(events.last().unwrap()["event"], "done");
    let dir = f
        .dir
        .path()
        .join("sweep/cpu_b2_p0_ctx24_gen4_span3_bf16_invariant_naive_kv1_s0_vv3");
    let cell = CellTrace::open(&dir).unwrap();
    let r = &cell.record;
    assert_eq!(r.tokens.as_ref().unwrap().generated[0].len(), 4);
    assert_eq!(r.model.as_ref().unwrap().max_ctx, 28);
    assert!(
        r.memory.as_ref().unwrap().samples.len() >= 8,
        "a sample at every phase boundary"
    );
    let logits = cell.logits.as_ref().unwrap();
    assert_eq!(logits.dims(), (2, 3, 320));
    // Prefill and decode rows are bit-identical on the CPU.
    for b in 0..2 {
        for j in 0..3 {
            assert_eq!(
                logits.row(Side::Decode, b, j),
                logits.row(Side::Prefill, b, j)
            );
        }
    }
    // Resume semantics belong to the runner; the engine refuses to overwrite without --force.
    let again = capture(
        &f,
        &[
            "--batch",
            "2",
            "--dtype",
            "bf16",
            "--attn",
            "naive",
            "--variant",
            "v3",
        ],
    );
    assert_ne!(again.status.code(), Some(0));
    let forced = capture(
        &f,
        &[
            "--batch",
            "2",
            "--dtype",
            "bf16",
            "--attn",
            "naive",
            "--variant",
            "v3",
            "--force",
        ],
    );
    assert!(forced.status.success(), "{}", stderr(&forced));
}

#[test]
fn context_is_raised_past_the_trained_length_and_capped_by_max_ctx() {
    let f = fixture();
    // The tiny model is trained for 256 positions; 250 + 10 needs 260.
    let o = capture(&f, &["--ctx", "250", "--gen", "10"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = f
        .dir
        .path()
        .join("sweep/cpu_b1_p0_ctx250_gen10_span3_f32_invariant_flash_kv1_s0");
    let r = CellTrace::open(&dir).unwrap().record;
    assert!(r.max_ctx_raised);
    assert_eq!(r.model.unwrap().max_ctx, 260);
    let o = capture(
        &f,
        &["--ctx", "250", "--gen", "10", "--max-ctx", "256", "--force"],
    );
    assert_clean_failure(&o, 2, "exceed --max-ctx 256");
}

#[test]
fn ragged_batches_run() {
    let f = fixture();
    let o = capture(
        &f,
        &[
            "--batch",
            "3",
            "--prompt-offset",
            "2",
            "--kv-aligned",
            "false",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = f
        .dir
        .path()
        .join("sweep/cpu_b3_p2_ctx24_gen4_span3_f32_invariant_flash_kv0_s0");
    let r = CellTrace::open(&dir).unwrap().record;
    let lens: Vec<usize> = r.tokens.unwrap().prompt.iter().map(Vec::len).collect();
    assert_eq!(lens, vec![24 - 14 % 6, 24 - 21 % 6, 24 - 28 % 6]);
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn bad_model_files_are_exit_2_naming_the_file() {
    let f = fixture();
    let good = std::fs::read(&f.model).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated.gguf",
            good[..good.len() / 2].to_vec(),
            "truncated.gguf",
        ),
        (
            "magic.gguf",
            [b"GGUX".as_slice(), &good[4..]].concat(),
            "not a GGUF file",
        ),
        (
            "version.gguf",
            {
                let mut v = good.clone();
                v[4] = 9;
                v
            },
            "version",
        ),
        ("empty.gguf", Vec::new(), "empty.gguf"),
    ];
    for (name, bytes, needle) in cases {
        let p = write(f.dir.path(), name, &bytes);
        let o = capture(&f, &["--model", p.to_str().unwrap()]);
        assert_clean_failure(&o, 2, needle);
        assert!(stderr(&o).contains(name), "{name}: {}", stderr(&o));
    }
    let o = capture(&f, &["--model", "/nonexistent/model.gguf"]);
    assert_clean_failure(&o, 2, "/nonexistent/model.gguf");
}

#[test]
fn bad_values_are_exit_2() {
    let f = fixture();
    let ids_bad = write(f.dir.path(), "ids.json", b"[1, 2, 99999]");
    let ids_garbage = write(f.dir.path(), "garbage.json", b"{not json");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--numerics", "fast"], "--numerics fast"),
        (
            vec!["--prompt-ids", ids_bad.to_str().unwrap(), "--ctx", "3"],
            "99999",
        ),
        (
            vec!["--prompt-ids", ids_garbage.to_str().unwrap()],
            "garbage.json",
        ),
        (vec!["--span", "9"], "--span 9 exceeds --gen 4"),
        (vec!["--dtype", "f8"], "unknown dtype `f8`"),
        (vec!["--attn", "sparse"], "sparse"),
        (vec!["--backend", "cuda"], "--backend cuda"),
        (vec!["--backend", "hip"], "HIP"),
        (vec!["--model", "dummy:huge"], "unknown dummy shape"),
        (vec!["--kv-aligned", "maybe"], "--kv-aligned"),
        (vec!["--ctx", "0"], "--ctx must be at least 1"),
    ];
    for (args, needle) in cases {
        let o = capture(&f, &args);
        assert_clean_failure(&o, 2, needle);
    }
}

#[test]
fn unsupported_tokenizer_type_is_exit_2_naming_it() {
    use tracecheck_engine::gguf::{GgufFile, GgufWriter, MetaValue};
    let f = fixture();
    let src = GgufFile::open(&f.model).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in src.metadata() {
        let v = if k == "tokenizer.ggml.model" {
            MetaValue::from("llama")
        } else {
            v.clone()
        };
        w.add_metadata(k.clone(), v).unwrap();
    }
    for t in src.tensors() {
        w.add_tensor_raw(
            t.name.clone(),
            &t.dims,
            t.ggml_type,
            src.bytes_of(t).unwrap().to_vec(),
        )
        .unwrap();
    }
    let p = f.dir.path().join("spm.gguf");
    w.write_to(&p).unwrap();
    let o = capture(&f, &["--model", p.to_str().unwrap()]);
    assert_clean_failure(&o, 2, "tokenizer type `llama`");
}

#[test]
fn out_of_memory_is_exit_3_and_big_batches_exit_4() {
    let f = fixture();
    let o = capture(&f, &["--mem-limit", "1"]);
    assert_clean_failure(&o, 3, "out of memory");
    let o = capture(&f, &["--batch", "65"]);
    assert_clean_failure(&o, 4, "batch 65");
}

#[test]
fn dummy_models_run_and_are_deterministic() {
    let f = fixture();
    let out = f.dir.path().join("d");
    let run = |dir: &Path| {
        let o = engine()
            .args([
                "capture",
                "--model",
                "dummy:tiny",
                "--ctx",
                "16",
                "--gen",
                "3",
                "--span",
                "2",
                "--seed",
                "5",
                "--out",
            ])
            .arg(dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        CellTrace::open(&dir.join("cpu_b1_p0_ctx16_gen3_span2_f32_invariant_flash_kv1_s5")).unwrap()
    };
    let a = run(&out.join("a"));
    let b = run(&out.join("b"));
    assert_eq!(a.record.tokens, b.record.tokens);
    let (la, lb) = (a.logits.unwrap(), b.logits.unwrap());
    assert_eq!(la.row(Side::Decode, 0, 1), lb.row(Side::Decode, 0, 1));
}

#[test]
fn model_fetch_offline_says_where_to_put_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let o = engine()
        .args(["model", "fetch", "smollm2-135m"])
        .env("TRACECHECK_CACHE", dir.path())
        .env("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
        .env("PIP_RETRIES", "0")
        .env("PIP_TIMEOUT", "2")
        .output()
        .unwrap();
    assert_clean_failure(&o, 2, "SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        stderr(&o).contains(dir.path().to_str().unwrap()),
        "{}",
        stderr(&o)
    );
}

#[test]
fn model_info_prints_the_shape() {
    let f = fixture();
    let o = engine()
        .args(["model", "info"])
        .arg(&f.model)
        .output()
        .unwrap();
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("vocab 320") && s.contains("tensor blk.0.attn_q.weight"),
        "{s}"
    );
}
