use std::path::Path;

use super::fixtures;
use crate::report::{render, RenderedReport, ReportContext, ReportError};
use crate::summary::Summary;

fn ctx() -> ReportContext {
    ReportContext {
        date: "2026-02-09".to_string(),
        ..ReportContext::default()
    }
}

fn render_to(summary: &Summary, ctx: &ReportContext, dir: &Path) -> (RenderedReport, String) {
    let out = dir.join("report.md");
    let r = render(summary, ctx, &out).expect("render");
    let md = std::fs::read_to_string(&out).expect("read report");
    (r, md)
}

fn has_line(md: &str, line: &str) {
    assert!(
        md.lines().any(|l| l == line),
        "missing line {line:?} in:\n{md}"
    );
}

/// PNG signature, then IHDR as the first chunk; returns (width, height).
fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &b[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    assert_eq!(&b[12..16], b"IHDR");
    let w = u32::from_be_bytes(b[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(b[20..24].try_into().unwrap());
    (w, h)
}

fn assert_charts(r: &RenderedReport, md: &str, names: &[&str]) {
    let got: Vec<&str> = r.charts.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(got, names);
    for c in &r.charts {
        assert_eq!(png_size(&c.path), (800, 500));
        let file = c.path.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(file, format!("report_{}.png", c.name));
        assert!(md.contains(&format!("]({file})")), "{file} not linked");
    }
}

fn no_temp_files(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with('.'), "temp file left behind: {name}");
    }
}

#[test]
fn b3_81_tables_and_charts() {
    let dir = tempfile::tempdir().unwrap();
    let (r, md) = render_to(&fixtures::b3_81(), &ctx(), dir.path());
    assert_eq!(r.template, "b3_81.md.j2");
    assert!(
        md.starts_with("# B3.81 — Multi-Batch Throughput Scaling @ 8k (MI300X)\n\n## Objective\n"),
        "{md}"
    );
    has_line(&md, "## Results (2026-02-09)");
    has_line(&md, "- **Runner:** `tracecheck run --mode b3_81 --out runs/b3_81 --batches 1,2,4,8 --timeout 600`");
    has_line(&md, "  - Context Length: 8192");
    has_line(&md, "  - Generation Length: 64 tokens");
    has_line(&md, "  - Logits Comparison Span: First 8 generated tokens");
    has_line(&md, "  - Data Type: BF16");
    has_line(&md, "  - KV Alignment: `kv_aligned=1`");
    has_line(&md, "  - Batch Sizes: 1, 2, 4, 8");
    has_line(
        &md,
        "  - **OOM:** Immediate termination and record `FAIL_OOM`.",
    );
    has_line(&md, "  - **Timeout:** 600s per phase → `FAIL_TIMEOUT`.");
    has_line(
        &md,
        "  - **Unsupported Batch:** Record `SKIPPED_UNSUPPORTED_BATCH`.",
    );
    has_line(&md, "- **VRAM Monitoring:** Real-time sampling via `nvml` every 1s, plus one sample at every phase boundary.");
    has_line(&md, "| Batch | Peak VRAM (MB) | Prefill (s) | Decode (s) | Tokens/s | Speedup | VRAM Delta | Verdict |");
    has_line(&md, "|---|---|---|---|---|---|---|---|");
    has_line(
        &md,
        "| 1 | 24250 | 34.88 | 34.53 | 7.29 | 1.00x | +0 MB | PASS_EQUIV |",
    );
    has_line(
        &md,
        "| 2 | 17741 | 34.50 | 34.29 | 7.23 | 0.99x | -6509 MB | PASS_EQUIV |",
    );
    has_line(
        &md,
        "| 4 | 19033 | 34.91 | 34.98 | 7.26 | 1.00x | -5217 MB | PASS_EQUIV |",
    );
    has_line(
        &md,
        "| 8 | 21617 | 35.09 | 35.44 | 7.23 | 0.99x | -2633 MB | PASS_EQUIV |",
    );
    has_line(&md, "| Cell | Comparison | Reference | Rows | Max \\|Δ\\| | Mean \\|Δ\\| | Top-1 | Top-5 Overlap | Mean KL | First Divergent | Flips | Result |");
    has_line(&md, "| `cuda_b2_p0_ctx8192_gen64_span8_bf16_invariant_flash_kv1_s0` | batch 2 vs batch 1 | batch 1 (twins) | 16 | 0 | 0 | 1.0000 | 1.0000 | 0 | — | 0 | pass |");
    has_line(&md, "- **Numerical Stability:** Bit-perfect equivalence (`diff=0.0`) maintained across all tested batch sizes (1, 2, 4, 8): decode vs prefill and batch N vs batch 1, 248 compared rows.");
    has_line(&md, "No divergence: every compared row is bit-identical.");
    has_line(&md, "### Runner");
    has_line(&md, "### Analyzer");
    assert!(md.contains("```bash\ntracecheck run --mode b3_81 --out runs/b3_81 --batches 1,2,4,8 --timeout 600\n```"), "{md}");
    assert!(md.contains("```bash\ntracecheck analyze \\\n  --mode b3_81 \\\n  --traces-dir runs/b3_81 \\\n  --output reports/b3_81/report.md\n```"), "{md}");
    assert!(md.contains(
        "*Max |Δlogit| per compared position: all zeros — every compared row is bit-identical.*"
    ));
    assert!(!md.contains("\n\n\n"), "double blank lines");
    assert_charts(&r, &md, &["throughput", "vram", "memory", "logit_diff"]);
    no_temp_files(dir.path());
}

#[test]
fn failing_batch_shows_divergence_with_escaped_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (_, md) = render_to(&fixtures::b3_81_failing(), &ctx(), dir.path());
    has_line(
        &md,
        "| 2 | 17741 | 34.50 | 34.29 | 7.23 | 0.99x | -6509 MB | FAIL_EQUIV |",
    );
    has_line(&md, "### `cuda_b2_p0_ctx8192_gen64_span8_bf16_invariant_flash_kv1_s0` — sequence 1 (prompt 1), position 3");
    has_line(
        &md,
        "Max \\|Δ\\| 0.03125; top-1 **differs**; reference log-prob gap 0.2500 (not a near-tie).",
    );
    has_line(&md, "| Rank | Reference ID | Reference Token | Reference Logit | Candidate ID | Candidate Token | Candidate Logit |");
    has_line(&md, r#"| 1 | 42 | "a\|b" | 12.5 | 7 | "\`code\`" | 12.5 |"#);
    has_line(
        &md,
        r#"| 3 | 9 | "line\nbreak" | 11 | 9 | "line\nbreak" | 11 |"#,
    );
    has_line(&md, r#"| 5 | 12 | n/a | 9.5 | 12 | n/a | 9.5 |"#);
    has_line(&md, "- `cuda_b2_p0_ctx8192_gen64_span8_bf16_invariant_flash_kv1_s0`: FAIL_EQUIV — argmax flip at position 3 (not a near-tie); batch 2 vs batch 1: max |Δ| 0.03125 > 0 (exact)");
    assert!(!md.contains("No divergence"));
    assert!(!md.contains("Bit-perfect"));
    // Every table row still has its 7 columns after escaping.
    for line in md.lines().filter(|l| l.starts_with("| 1 | 42")) {
        let cells = line.replace("\\|", "").matches('|').count();
        assert_eq!(cells, 8, "{line}");
    }
}

#[test]
fn b3_77_sections() {
    let dir = tempfile::tempdir().unwrap();
    let (r, md) = render_to(&fixtures::b3_77(), &ctx(), dir.path());
    assert!(
        md.starts_with("# B3.77 — Single-Point 32k Long-Context Attempt (MI300X)\n"),
        "{md}"
    );
    has_line(
        &md,
        "| Context | KV | Peak VRAM (MB) | Max Logits Diff | Top-1 Agreement | Verdict |",
    );
    has_line(
        &md,
        "| 32768 | 1 | 17095 | 0.000000 | 1.0000 | PASS_EQUIV |",
    );
    has_line(&md, "## Timeout Policy & Timing");
    has_line(&md, "- **Measured Wall Time:**");
    has_line(&md, "  - Prefill: 36.14s");
    has_line(&md, "  - Decode: 35.68s");
    has_line(&md, "## VRAM Sampling Method");
    has_line(&md, "- **Sampling Period:** 1s via `nvml`");
    has_line(&md, "- **Samples Count:** 66");
    has_line(&md, "- **Peak VRAM (MB):** 17095");
    has_line(
        &md,
        "- **Peak Timestamp Offset:** 34s (seconds from start of sampling)",
    );
    has_line(&md, "- **Device Info:** MI300X");
    has_line(
        &md,
        "- **Note:** 1s sampling; micro-spikes shorter than 1s might not be captured.",
    );
    has_line(&md, "- **PASS_EQUIV @ ctx=32768; diff=0.0; top1=1.0**");
    assert!(!md.contains("Batch Sizes"), "b3_77 has no batch matrix");
    assert!(!md.contains("Unsupported Batch"));
    assert_charts(&r, &md, &["memory", "logit_diff"]);
}

#[test]
fn b3_89_tables_and_scaling() {
    let dir = tempfile::tempdir().unwrap();
    let (r, md) = render_to(&fixtures::b3_89(), &ctx(), dir.path());
    assert!(
        md.starts_with("# B3.89 — Prefill Microbenchmarks @ 4k–16k (MI300X)\n"),
        "{md}"
    );
    has_line(
        &md,
        "| Context | prefill_s | wall_time_s | attn_impl | Throughput (tok/s) | Status |",
    );
    has_line(&md, "| 4096 | 22.77 | 44.88 | flash_v2_naive | ~180 | OK |");
    has_line(
        &md,
        "| 8192 | 114.27 | 136.13 | flash_v2_naive | ~72 | OK |",
    );
    has_line(
        &md,
        "| 16384 | 469.75 | 491.37 | flash_v2_naive | ~35 | OK |",
    );
    has_line(&md, "#### attn_impl = flash_v2_naive");
    has_line(&md, "| Context | Prefill Time | Scaling Factor |");
    has_line(&md, "| 4096 | 22.77s | 1.0x (baseline) |");
    has_line(&md, "| 8192 | 114.27s | 5.0x (expected ~4x) |");
    has_line(&md, "| 16384 | 469.75s | 20.6x (expected ~16x) |");
    has_line(&md, "Fitted exponent (log-log slope of prefill time vs context): **2.18** over 3 points (O(n²) → 2.00).");
    has_line(&md, "#### attn_impl = naive");
    has_line(&md, "No comparisons: no cell produced logits to compare.");
    assert_charts(&r, &md, &["prefill_scaling"]);
}

#[test]
fn unknown_mode_uses_generic_template() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = fixtures::b3_77();
    s.mode = "kernel_study".to_string();
    let (r, md) = render_to(&s, &ctx(), dir.path());
    assert_eq!(r.template, "generic.md.j2");
    assert!(
        md.starts_with("# KERNEL.STUDY — tracecheck report @ 32k (MI300X)\n"),
        "{md}"
    );
    has_line(&md, "| Cell | Batch | Context | Attention | Prefill | Decode | Decode Tokens/s | Peak Memory (MB) | Verdict |");
    has_line(&md, "| `cuda_b1_p0_ctx32768_gen64_span16_bf16_invariant_flash_kv1_s0` | 1 | 32768 | flash | 36.14s | 35.68s | n/a | 17095 | PASS_EQUIV |");
}

#[test]
fn title_commands_and_template_dir_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let tpl = dir.path().join("templates");
    std::fs::create_dir_all(tpl.join("partials")).unwrap();
    std::fs::write(
        tpl.join("partials/commands.md.j2"),
        "CUSTOM {{ commands.run | length }}\n",
    )
    .unwrap();
    let ctx = ReportContext {
        title: Some("My run".to_string()),
        date: "2026-03-01".to_string(),
        run_commands: vec![fixtures::argv(
            "tracecheck run --mode b3_81 --quick --out 'x'",
        )],
        analyze_command: fixtures::argv("tracecheck analyze --mode b3_81 --traces-dir x"),
        templates_dir: Some(tpl),
    };
    let (_, md) = render_to(&fixtures::b3_81(), &ctx, dir.path());
    assert!(md.starts_with("# My run\n"), "{md}");
    has_line(&md, "## Results (2026-03-01)");
    has_line(
        &md,
        "- **Runner:** `tracecheck run --mode b3_81 --quick --out ''\\''x'\\'''`",
    );
    has_line(&md, "CUSTOM 1");
    assert!(!md.contains("### Analyzer"));
}

#[test]
fn errors_name_the_file_and_fault() {
    let dir = tempfile::tempdir().unwrap();
    let tpl = dir.path().join("templates");
    std::fs::create_dir_all(&tpl).unwrap();
    std::fs::write(tpl.join("b3_81.md.j2"), "{{ no_such_field }}\n").unwrap();
    let ctx = ReportContext {
        templates_dir: Some(tpl),
        ..ctx()
    };
    let out = dir.path().join("r.md");
    let err = render(&fixtures::b3_81(), &ctx, &out).unwrap_err();
    assert!(matches!(err, ReportError::Template { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with("template b3_81.md.j2: "), "{msg}");
    assert!(msg.contains("undefined"), "{msg}");
    assert!(!out.exists(), "no report on failure");
    assert!(
        !dir.path().join("r_throughput.png").exists(),
        "no charts on template failure"
    );

    let err = render(
        &fixtures::b3_81(),
        &ReportContext::default(),
        Path::new("/"),
    )
    .unwrap_err();
    assert!(matches!(err, ReportError::BadOutput { .. }), "{err:?}");
}

#[test]
fn date_defaults_to_generated_at() {
    let dir = tempfile::tempdir().unwrap();
    let (_, md) = render_to(&fixtures::b3_77(), &ReportContext::default(), dir.path());
    has_line(&md, "## Results (2026-02-09)");
    // Commands fall back to the Summary's argv.
    assert!(md.contains("```bash\ntracecheck run --mode b3_77 --out runs/b3_77 --timeout 600\n```"));
}

/// A history section with one regression, one acknowledged change, a status change and
/// numeric drift, on `s`'s first two cells.
fn with_history(mut s: Summary) -> Summary {
    use crate::summary::{
        AcknowledgedChange, HistorySummary, MetricComparison, NumericsDrift, RecordedRun,
        RegressionVerdict as V, TrendSeries,
    };
    let (a, b) = (s.cells[0].key.clone(), s.cells[1].key.clone());
    let cmp =
        |cell: &str, metric: &str, base: f64, new: f64, verdict: V, ack: bool| MetricComparison {
            cell: cell.into(),
            metric: metric.into(),
            unit: "tokens/s".into(),
            direction: "higher_is_better".into(),
            baseline: Some(base),
            new: Some(new),
            change: Some(new / base - 1.0),
            band: Some((base * 0.95, base * 1.05)),
            band_from: Some("threshold".into()),
            threshold: Some(0.05),
            history_runs: 4,
            baseline_status: None,
            new_status: None,
            verdict,
            acknowledged: ack,
        };
    let mut status = cmp(&b, "status", 0.0, 0.0, V::NewFailure, false);
    (status.baseline, status.new, status.change, status.band) = (None, None, None, None);
    status.baseline_status = Some("PASS_EQUIV".into());
    status.new_status = Some("FAIL_OOM".into());
    let drift: crate::summary::PairSummary = serde_json::from_value(serde_json::json!({
        "kind": "history", "reference": "history", "rows_compared": 8, "rows_excluded": 0,
        "bit_exact": false, "max_abs_diff": 2.4e-7, "mean_abs_diff": 1e-8,
        "top1_agreement": 1.0, "top5_overlap": 1.0, "kl_mean": 0.0, "kl_max": 0.0,
        "kl_ladder": [], "first_divergent_position": 2, "token_divergence_position": null,
        "flips": 0, "flips_not_near_tie": 0, "max_abs_diff_by_position": [],
        "nonfinite": null, "pass": true, "reasons": []
    }))
    .unwrap();
    s.history = Some(HistorySummary {
        dir: "hist".into(),
        baseline: "median of the last 10 accepted runs".into(),
        baseline_tag: None,
        baseline_run: None,
        window: 10,
        threshold: 0.05,
        thresholds: [
            ("decode_tok_s".to_string(), 0.05),
            ("peak_mb".to_string(), 0.02),
        ]
        .into(),
        noise_mads: 3.0,
        min_runs_for_band: 3,
        prior_accepted_runs: 4,
        acknowledgements_file: Some("reports/acknowledged.toml".into()),
        comparisons: vec![
            cmp(&a, "decode_tok_s", 1000.0, 500.0, V::Regressed, false),
            cmp(&b, "decode_tok_s", 1000.0, 800.0, V::Regressed, true),
            cmp(&a, "prefill_tok_s", 1000.0, 1010.0, V::WithinNoise, false),
            status,
        ],
        numerics: vec![NumericsDrift {
            cell: a.clone(),
            against_run: "20260101T000000Z-abcdef".into(),
            drift,
            verdict: V::WithinNoise,
            acknowledged: false,
            reasons: vec![],
        }],
        acknowledged: vec![AcknowledgedChange {
            cell: b.clone(),
            metric: "decode_tok_s".into(),
            verdict: V::Regressed,
            file: "reports/acknowledged.toml".into(),
            entry: 1,
            reason: "new kernel | on purpose".into(),
            date: "2026-05-01".into(),
        }],
        counts: [
            ("REGRESSED".to_string(), 2),
            ("WITHIN_NOISE".to_string(), 2),
        ]
        .into(),
        regressions: 2,
        recorded: Some(RecordedRun {
            run_id: "20260102T000000Z-123456".into(),
            accepted: false,
            decision: "gate PASS_EQUIV passed, but 2 regressions".into(),
        }),
        trends: vec![TrendSeries {
            cell: a.clone(),
            metric: "decode_tok_s".into(),
            unit: "tokens/s".into(),
            accepted: vec![990.0, 1000.0, 1010.0, 1000.0],
            new: Some(500.0),
            baseline: Some(1000.0),
            band: Some((950.0, 1050.0)),
        }],
        notes: vec![],
    });
    s
}

#[test]
fn every_mode_template_has_the_history_section() {
    for (name, s) in [
        ("b3_81", fixtures::b3_81()),
        ("b3_77", fixtures::b3_77()),
        ("b3_89", fixtures::b3_89()),
    ] {
        // b3_77 has one cell: give it a twin so both rows have a cell to name.
        let mut s = s;
        if s.cells.len() < 2 {
            let mut c = s.cells[0].clone();
            c.key.push_str("_b");
            s.cells.push(c);
        }
        let first = s.cells[0].key.clone();
        let s = with_history(s);
        let dir = tempfile::tempdir().unwrap();
        let (r, md) = render_to(&s, &ctx(), dir.path());
        assert!(md.contains("## Regressions vs prior runs"), "{name}: {md}");
        assert!(
            md.contains("**2 regressions not acknowledged: the run fails.**"),
            "{name}"
        );
        has_line(
            &md,
            &format!("| `{first}` | decode tokens/s | 1000 tokens/s | 500.0 tokens/s | -50.0 % | 950.0–1050 | **REGRESSED** |"),
        );
        assert!(md.contains("REGRESSED (acknowledged)"), "{name}");
        assert!(
            md.contains("new kernel \\| on purpose"),
            "{name}: pipes escaped"
        );
        assert!(
            md.contains("| PASS_EQUIV | FAIL_OOM |"),
            "{name}: status change"
        );
        assert!(
            md.contains("### Numeric drift vs last accepted run"),
            "{name}"
        );
        assert!(md.contains("beyond 5 % (peak_mb 2 %)"), "{name}: {md}");
        assert!(md.contains("Recorded as run `20260102T000000Z-123456`: **not accepted**"));
        let trend = r.charts.iter().find(|c| c.name == "trend_decode_tok_s");
        let trend = trend.unwrap_or_else(|| panic!("{name}: no trend chart"));
        assert_eq!(png_size(&trend.path), (800, 500));
        assert!(md.contains("](report_trend_decode_tok_s.png)"), "{name}");
        // The section sits before Equivalence in every layout.
        assert!(md.find("## Regressions vs prior runs") < md.find("## Equivalence"));
    }
    // The generic template too.
    let mut s = with_history(fixtures::b3_81());
    s.mode = "b9_99".into();
    let dir = tempfile::tempdir().unwrap();
    let (r, md) = render_to(&s, &ctx(), dir.path());
    assert_eq!(r.template, "generic.md.j2");
    assert!(md.contains("## Regressions vs prior runs"));
    // Without a history section: no trace of it.
    let dir = tempfile::tempdir().unwrap();
    let (_, md) = render_to(&fixtures::b3_81(), &ctx(), dir.path());
    assert!(!md.contains("Regressions vs prior runs"));
}
