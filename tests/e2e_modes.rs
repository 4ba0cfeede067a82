//! Each mode end to end — `tracecheck run` then `tracecheck analyze --gate PASS_EQUIV` — on the
//! tiny model and on SmolLM2-135M `--quick` (each mode's own quick configuration).

mod common;

use common::*;

const HEADERS: [(&str, &str); 3] = [
    ("b3_81", "| Batch | Peak VRAM (MB) | Prefill (s) | Decode (s) | Tokens/s | Speedup | VRAM Delta | Verdict |"),
    ("b3_77", "| Context | KV | Peak VRAM (MB) | Max Logits Diff | Top-1 Agreement | Verdict |"),
    ("b3_89", "| Context | prefill_s | wall_time_s | attn_impl | Throughput (tok/s) | Status |"),
];

fn mode_end_to_end(mode: &str, header: &str, model: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let sweep = dir.path().join("runs");
    let mut args = vec!["--mode", mode, "--quick"];
    if let Some(m) = model {
        args.extend(["--model", m]);
    }
    let o = run_sweep(&sweep, &args);
    assert_eq!(o.status.code(), Some(0), "run: {}", stderr(&o));
    let report = dir.path().join("report.md");
    let o = analyze(
        &sweep,
        &[
            "--mode",
            mode,
            "--gate",
            "PASS_EQUIV",
            "--output",
            report.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "analyze: {}", stderr(&o));
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.contains(header), "{mode}: header missing in\n{md}");
    assert!(
        md.contains("## Execution Commands") && md.contains("tracecheck run"),
        "{md}"
    );
    let s = summary(&dir.path().join("summary.json"));
    assert_eq!(s["schema_version"], 1);
    assert_eq!(s["overall"]["gate_passed"], true);
    let cells = s["cells"].as_array().unwrap();
    assert!(!cells.is_empty());
    for c in cells {
        assert_eq!(c["verdict"], "PASS_EQUIV", "{}", c["key"]);
    }
    // Every chart the report links exists and is a PNG.
    for line in md.lines().filter(|l| l.starts_with("![")) {
        let file = line.split("](").nth(1).unwrap().trim_end_matches(')');
        let bytes = std::fs::read(dir.path().join(file)).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{file}");
    }
    if mode == "b3_81" {
        // Batch 4's sequences were compared with their batch-1 twins.
        let b4 = cells.iter().find(|c| c["batch"] == 4).unwrap();
        assert!(b4["comparisons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["kind"] == "batch_vs_batch1"));
    }
    if mode == "b3_89" {
        let fits = s["tables"]["scaling"].as_array().unwrap();
        assert_eq!(fits.len(), 2, "naive and flash");
        assert!(fits.iter().all(|f| f["exponent"].is_number()));
    }
}

#[test]
fn tiny_b3_81() {
    mode_end_to_end("b3_81", HEADERS[0].1, Some("tiny"));
}

#[test]
fn tiny_b3_77() {
    mode_end_to_end("b3_77", HEADERS[1].1, Some("tiny"));
}

#[test]
fn tiny_b3_89() {
    mode_end_to_end("b3_89", HEADERS[2].1, Some("tiny"));
}

#[test]
fn smollm2_quick_every_mode() {
    if !smollm2_available() {
        return;
    }
    for (mode, header) in HEADERS {
        mode_end_to_end(mode, header, None);
    }
}
