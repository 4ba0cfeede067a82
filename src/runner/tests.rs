//! End-to-end runner tests against fake engines (shell scripts): every ending maps to its
//! status and record, timeouts kill the whole process group, resume keeps finished cells.

#![cfg(unix)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracecheck_engine::trace::{
    write_cell, CellConfig, CellTrace, EngineInfo, Memory, ModelInfo, RunRecord, Status,
    SweepRecord, Timings, Tokens, STDERR_TAIL, SWEEP_JSON,
};

use super::tests_support::fake_engine;
use super::*;

const LOAD_START: &str = r#"echo '{"phase":"load","event":"start","t_s":0.0}'"#;

/// b3_77 quick on a dummy model: exactly one cell.
fn one_cell_args(engine: &Path, out: &Path) -> RunArgs {
    RunArgs {
        mode: "b3_77".into(),
        out: out.to_path_buf(),
        quick: true,
        model: Some("dummy:tiny".into()),
        engine: Some(engine.to_path_buf()),
        ..RunArgs::default()
    }
}

const ONE_KEY: &str = "cpu_b1_p0_ctx256_gen16_span16_f32_invariant_flash_kv1_s0";

fn status_only(out: &Path, key: &str) -> (RunRecord, String) {
    let cell = CellTrace::open(&out.join(key)).unwrap();
    assert!(cell.logits.is_none());
    let tail = fs::read_to_string(out.join(key).join(STDERR_TAIL)).unwrap();
    (cell.record, tail)
}

#[test]
fn timeout_kills_the_process_group() {
    let d = tempfile::tempdir().unwrap();
    let pid_file = d.path().join("sleeper.pid");
    let engine = fake_engine(
        d.path(),
        &format!(
            "{LOAD_START}\necho 'loading weights' >&2\nsleep 30 &\necho $! > {}\nwait",
            pid_file.display()
        ),
    );
    let out = d.path().join("sweep");
    let args = RunArgs {
        timeout: Some(1.0),
        ..one_cell_args(&engine, &out)
    };
    let t = Instant::now();
    let outcome = run(&args).unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(outcome.exit_code, 0);
    assert_eq!(outcome.cells[0].status, Status::FailTimeout);
    let (rec, tail) = status_only(&out, ONE_KEY);
    assert_eq!(rec.status, Status::FailTimeout);
    assert_eq!(rec.mode, "b3_77");
    assert_eq!(rec.argv[0], engine.display().to_string());
    assert!(rec.argv.contains(&"--prompt-offset".to_string()));
    let err = rec.error.unwrap();
    assert!(err.contains("during phase `load`"), "{err}");
    assert_eq!(tail, "loading weights\n");
    // The script's own child was in the group: it is gone too.
    let pid: i32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Killed but not yet reaped by its new parent (init) counts as gone: state Z in /proc.
    let alive = |pid: i32| match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        // No /proc entry: gone on Linux; elsewhere ask the kernel.
        Err(_) if Path::new("/proc/self").exists() => false,
        // SAFETY: signal 0 only checks that the pid exists.
        Err(_) => unsafe { libc::kill(pid, 0) == 0 },
    };
    let gone = (0..40).any(|_| {
        let alive = alive(pid);
        if alive {
            std::thread::sleep(Duration::from_millis(50));
        }
        !alive
    });
    assert!(gone, "grandchild {pid} survived the timeout kill");
    // No staging directory left behind.
    let names: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn exit_codes_become_statuses() {
    for (body, status, exit, needle) in [
        (
            r#"echo '{"event":"error","exit":3,"message":"out of memory: 9 GB requested, 8 GB free"}'
echo 'tracecheck-engine: out of memory' >&2; exit 3"#,
            Status::FailOom,
            0,
            "out of memory: 9 GB requested, 8 GB free",
        ),
        (
            "echo 'batch 1 exceeds the maximum' >&2; exit 4",
            Status::SkippedUnsupportedBatch,
            0,
            "the engine exited with code 4: batch 1 exceeds the maximum",
        ),
        (
            "echo 'about to crash' >&2; kill -9 $$",
            Status::FailCrash,
            0,
            "the engine was killed by signal 9",
        ),
        (
            "echo 'segfault-ish' >&2; exit 139",
            Status::FailCrash,
            0,
            "the engine exited with code 139: segfault-ish",
        ),
        (
            r#"echo '{"event":"error","exit":2,"message":"--prompt-ids: id 99999 out of range"}'; exit 2"#,
            Status::FailBadInput,
            2,
            "--prompt-ids: id 99999 out of range",
        ),
        (
            &format!("{LOAD_START}\nexit 0"),
            Status::FailCrash,
            0,
            "the engine exited 0 but wrote no cell",
        ),
    ] {
        let d = tempfile::tempdir().unwrap();
        let engine = fake_engine(d.path(), &format!("{LOAD_START}\n{body}"));
        let out = d.path().join("sweep");
        let outcome = run(&one_cell_args(&engine, &out)).unwrap();
        assert_eq!(outcome.exit_code, exit, "{body}");
        let r = &outcome.cells[0];
        assert_eq!(r.status, status, "{body}");
        let (rec, _) = status_only(&out, ONE_KEY);
        assert_eq!(rec.status, status);
        let err = rec.error.unwrap();
        assert!(err.starts_with(needle), "{body}: {err}");
        assert_eq!(r.message.as_deref(), Some(err.as_str()));
        let sweep = SweepRecord::read(&out.join(SWEEP_JSON)).unwrap();
        assert!(sweep.ended_at.is_some());
        assert_eq!(
            sweep.tool_versions["tracecheck-engine"],
            "tracecheck-engine 0.0.0-fake"
        );
    }
}

/// A valid OK cell for `config`, written under `parent`.
fn ok_cell(parent: &Path, key: &str, config: &CellConfig) -> PathBuf {
    let vocab = 5;
    let (b, s) = (config.batch, config.span);
    let record = RunRecord {
        status: Status::Ok,
        error: None,
        engine: Some(EngineInfo {
            name: "tracecheck-engine".into(),
            version: "0.0.0-fake".into(),
            revision: None,
            backend: "cpu".into(),
            device: "test".into(),
            driver: None,
        }),
        model: Some(ModelInfo {
            name: "dummy:tiny".into(),
            arch: "llama".into(),
            sha256: "ab".repeat(32),
            vocab,
            n_ctx_train: 256,
            max_ctx: config.ctx + config.gen,
        }),
        tokens: Some(Tokens {
            prompt: vec![vec![1; config.ctx]; b],
            generated: vec![vec![2; config.gen]; b],
        }),
        timings: Some(Timings {
            setup_s: 0.0,
            model_load_s: 0.1,
            tokenize_s: 0.0,
            prefill_s: 0.1,
            decode_s: 0.1,
            reference_prefill_s: 0.1,
            wall_s: 0.5,
        }),
        memory: Some(Memory {
            source: "rss".into(),
            period_s: 1.0,
            baseline_mb: 0.0,
            samples: vec![(0.0, 1.0)],
            peak_mb: 1.0,
            peak_t_s: 0.0,
            high_water_mb: 1.0,
        }),
        ..RunRecord::status_only(
            "b3_81",
            Status::Ok,
            vec!["fake".into()],
            config.clone(),
            None,
        )
    };
    let logits = vec![0.5f32; b * s * vocab];
    write_cell(parent, key, &record, Some((&logits, &logits)), false).unwrap()
}

fn small_b3_81(engine: &Path, out: &Path) -> RunArgs {
    RunArgs {
        mode: "b3_81".into(),
        out: out.to_path_buf(),
        quick: true,
        model: Some("dummy:tiny".into()),
        engine: Some(engine.to_path_buf()),
        batches: Some("1,2".into()),
        ctx: Some("4".into()),
        gen: Some(3),
        span: Some(2),
        ..RunArgs::default()
    }
}

#[test]
fn ok_cells_are_kept_on_resume_and_failed_ones_rerun() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("sweep");
    let log = d.path().join("calls.log");
    // Prepare the finished b1/p0 cell where the fake engine copies it from.
    let probe = fake_engine(d.path(), "exit 1");
    let plan = plan::resolve(&small_b3_81(&probe, &out), None).unwrap();
    let cells = plan::expand(&plan);
    let keys: Vec<&str> = cells.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "cpu_b1_p0_ctx4_gen3_span2_f32_invariant_flash_kv1_s0",
            "cpu_b1_p1_ctx4_gen3_span2_f32_invariant_flash_kv1_s0",
            "cpu_b2_p0_ctx4_gen3_span2_f32_invariant_flash_kv1_s0",
        ]
    );
    let staging = d.path().join("staging");
    ok_cell(&staging, keys[0], &cells[0].config);
    // The batch-1 offset-0 cell succeeds (copied in place); every other cell runs out of memory.
    let engine = fake_engine(
        d.path(),
        &format!(
            "echo \"$*\" >> {log}\n{LOAD_START}\ncase \"$*\" in\n  *'--batch 1 --prompt-offset 0 '*) cp -R {src} {out}/ ;;\n  *) echo 'oom' >&2; exit 3 ;;\nesac",
            log = log.display(),
            src = staging.join(keys[0]).display(),
            out = out.display(),
        ),
    );
    let args = small_b3_81(&engine, &out);
    let first = run(&args).unwrap();
    let statuses: Vec<Status> = first.cells.iter().map(|c| c.status).collect();
    assert_eq!(statuses, [Status::Ok, Status::FailOom, Status::FailOom]);
    assert!(first.cells.iter().all(|c| !c.kept));
    assert_eq!(
        first.cells[1].message.as_deref(),
        Some("the engine exited with code 3: oom")
    );
    assert_eq!(first.summary_line(), "3 cells: 1 OK, 2 FAIL_OOM");
    assert_eq!(fs::read_to_string(&log).unwrap().lines().count(), 3);

    // Resume: the OK cell is kept; the failed ones re-run, replacing their records (--force).
    fs::write(&log, "").unwrap();
    let second = run(&args).unwrap();
    assert!(second.cells[0].kept && second.cells[0].status == Status::Ok);
    assert_eq!(second.summary_line(), "3 cells: 1 OK (1 kept), 2 FAIL_OOM");
    let calls = fs::read_to_string(&log).unwrap();
    assert_eq!(calls.lines().count(), 2, "{calls}");
    assert!(calls.lines().all(|l| l.ends_with("--force")), "{calls}");
    assert!(!calls.contains("--batch 1 --prompt-offset 0 "));

    // --force re-runs the finished cell too.
    fs::write(&log, "").unwrap();
    let third = run(&RunArgs {
        force: true,
        ..args
    })
    .unwrap();
    assert_eq!(fs::read_to_string(&log).unwrap().lines().count(), 3);
    assert!(third.cells.iter().all(|c| !c.kept));
    let sweep = SweepRecord::read(&out.join(SWEEP_JSON)).unwrap();
    assert_eq!(sweep.matrix.len(), 3);
    assert_eq!(sweep.matrix.iter().filter(|c| c.reference).count(), 1);
}

#[test]
fn bad_inputs_stop_before_any_cell() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("calls.log");
    let engine = fake_engine(
        d.path(),
        &format!("echo \"$*\" >> {}\nexit 3", log.display()),
    );
    let out = d.path().join("sweep");
    let base = one_cell_args(&engine, &out);

    let e = run(&RunArgs {
        engine: Some(d.path().join("nope")),
        ..base.clone()
    })
    .unwrap_err();
    assert!(matches!(e, RunError::EngineNotFound { .. }), "{e}");
    let e = run(&RunArgs {
        model: Some("dummy:huge".into()),
        ..base.clone()
    })
    .unwrap_err();
    assert!(matches!(e, RunError::BadModel { .. }), "{e}");
    let e = run(&RunArgs {
        span: Some(17),
        ..base.clone()
    })
    .unwrap_err();
    assert!(
        matches!(e, RunError::SpanExceedsGen { span: 17, gen: 16 }),
        "{e}"
    );
    let ids = d.path().join("ids.json");
    fs::write(&ids, "[1, -1]").unwrap();
    let e = run(&RunArgs {
        prompt_ids: Some(ids),
        ..base.clone()
    })
    .unwrap_err();
    assert!(matches!(e, RunError::BadPromptIds { .. }), "{e}");
    let file = d.path().join("a-file");
    fs::write(&file, "").unwrap();
    let e = run(&RunArgs {
        out: file.join("sub"),
        ..base.clone()
    })
    .unwrap_err();
    assert!(matches!(e, RunError::OutDir { .. }), "{e}");
    let e = run(&RunArgs {
        out: file.clone(),
        ..base.clone()
    })
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("--out {}: exists and is not a directory", file.display())
    );
    let broken = super::tests_support::script(d.path(), "broken", "exit 1");
    let e = run(&RunArgs {
        engine: Some(broken),
        ..base.clone()
    })
    .unwrap_err();
    assert!(matches!(e, RunError::EngineNotRunnable { .. }), "{e}");
    assert!(!log.exists(), "no cell may start on bad input");
    assert!(!out.exists());

    // A sweep of another mode in --out is refused unless --force.
    run(&base).unwrap();
    let other = RunArgs {
        mode: "b3_89".into(),
        ..base.clone()
    };
    let e = run(&other).unwrap_err();
    assert!(matches!(e, RunError::OtherSweep { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("mode `b3_77` with model `dummy:tiny`"),
        "{e}"
    );
    assert_eq!(
        run(&RunArgs {
            force: true,
            ..other
        })
        .unwrap()
        .cells
        .len(),
        6
    );
}

#[test]
fn damaged_cell_is_rerun_and_a_crash_after_writing_keeps_the_cell() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("sweep");
    let log = d.path().join("calls.log");
    let probe = fake_engine(d.path(), "exit 1");
    let plan = plan::resolve(&one_cell_args(&probe, &out), None).unwrap();
    let cell = plan::expand(&plan).remove(0);
    let staging = d.path().join("staging");
    ok_cell(&staging, ONE_KEY, &cell.config);
    // A damaged cell from an earlier attempt.
    fs::create_dir_all(out.join(ONE_KEY)).unwrap();
    fs::write(out.join(ONE_KEY).join("run.json"), "{").unwrap();
    // The engine replaces it, then dies before exiting cleanly.
    let engine = fake_engine(
        d.path(),
        &format!(
            "echo \"$*\" >> {log}\nrm -rf {out}/{ONE_KEY}\ncp -R {src} {out}/\nkill -9 $$",
            log = log.display(),
            out = out.display(),
            src = staging.join(ONE_KEY).display(),
        ),
    );
    let outcome = run(&one_cell_args(&engine, &out)).unwrap();
    assert!(fs::read_to_string(&log)
        .unwrap()
        .trim_end()
        .ends_with("--force"));
    let r = &outcome.cells[0];
    assert_eq!(r.status, Status::Ok);
    let note = r.message.as_deref().unwrap();
    assert!(
        note.starts_with("kept the cell it wrote, although the engine was killed by signal 9"),
        "{note}"
    );
    assert!(CellTrace::open(&out.join(ONE_KEY))
        .unwrap()
        .record
        .status
        .is_ok());
}
