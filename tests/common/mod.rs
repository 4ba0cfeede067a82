//! Shared helpers for the end-to-end tests: the two binaries, sweeps on the tiny model.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn tracecheck() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tracecheck"));
    c.env("TRACECHECK_ENGINE", engine_path());
    // Under GitHub Actions every analyze would append to the real job summary.
    c.env_remove("GITHUB_STEP_SUMMARY");
    c
}

/// tracecheck-engine from the same target directory (built by `cargo test --workspace`).
pub fn engine_path() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_tracecheck")).with_file_name("tracecheck-engine");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p tracecheck-engine` (or `cargo test --workspace`)",
        p.display()
    );
    p
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn run_sweep(out: &Path, args: &[&str]) -> Output {
    let o = tracecheck()
        .arg("run")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    o
}

pub fn analyze(dir: &Path, args: &[&str]) -> Output {
    let o = tracecheck()
        .arg("analyze")
        .arg("--traces-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    o
}

pub fn summary(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Byte offset of element `index` of tensor `name` in a safetensors file.
pub fn tensor_offset(bytes: &[u8], name: &str, index: usize) -> usize {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let start = header[name]["data_offsets"][0].as_u64().unwrap() as usize;
    8 + n + start + index * 4
}

pub fn smollm2_available() -> bool {
    let p = dirs_cache().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    if p.exists() {
        return true;
    }
    assert!(
        std::env::var("TRACECHECK_REQUIRE_SMOLLM2").as_deref() != Ok("1"),
        "{} is missing and TRACECHECK_REQUIRE_SMOLLM2=1",
        p.display()
    );
    eprintln!("skipped: SmolLM2 not cached ({})", p.display());
    false
}

fn dirs_cache() -> PathBuf {
    tracecheck_engine::fetch::cache_dir()
}
