//! A cell directory as a whole: reading it with every cross-check between run.json, the logits
//! and the directory name, and writing it atomically.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::trace::atomic::StagedDir;
use crate::trace::cell_key::{cell_key, CellKey};
use crate::trace::logits::{write_logits, LogitsFile};
use crate::trace::run::RunRecord;
use crate::trace::{TraceError, LOGITS_FILE, RUN_JSON, STDERR_TAIL};

/// A validated cell: its record and, when status is OK, its logits.
#[derive(Debug)]
pub struct CellTrace {
    pub dir: PathBuf,
    pub record: RunRecord,
    /// Present exactly when `record.status` is OK.
    pub logits: Option<LogitsFile>,
}

impl CellTrace {
    /// Reads `dir/run.json` (schema, then types), opens the logits when status is OK, and
    /// cross-checks everything ([`cross_check`], plus the directory name against the config when
    /// the name is a cell key). All inconsistencies are reported together.
    pub fn open(dir: &Path) -> Result<CellTrace, TraceError> {
        let run_path = dir.join(RUN_JSON);
        let record = RunRecord::read(&run_path).map_err(|e| match e {
            TraceError::Io { path, source } if source.kind() == ErrorKind::NotFound => {
                TraceError::Missing {
                    path,
                    why: "every cell directory has one".into(),
                }
            }
            other => other,
        })?;
        let logits = if record.status.is_ok() {
            let path = dir.join(LOGITS_FILE);
            if !path.exists() {
                return Err(TraceError::Missing {
                    path,
                    why: "status OK requires it".into(),
                });
            }
            Some(LogitsFile::open(&path)?)
        } else {
            None
        };
        let mut problems = cross_check(&record, logits.as_ref().map(LogitsFile::dims));
        problems.extend(name_problems(dir, &record));
        if !problems.is_empty() {
            return Err(TraceError::Inconsistent {
                path: dir.to_path_buf(),
                problems,
            });
        }
        Ok(CellTrace {
            dir: dir.to_path_buf(),
            record,
            logits,
        })
    }

    /// The directory name (the cell key, for cells written by tracecheck).
    pub fn name(&self) -> Option<&str> {
        self.dir.file_name()?.to_str()
    }

    /// The failed engine's last stderr lines, when the cell has them.
    pub fn stderr_tail(&self) -> Option<String> {
        fs::read_to_string(self.dir.join(STDERR_TAIL)).ok()
    }
}

/// What the schema cannot see: the logits' (batch, span, vocab) against config and model, and
/// the token rows against batch, ctx, gen, span and vocab. `logits_dims` is `None` when there
/// are no logits; for status OK that is itself a problem.
pub fn cross_check(record: &RunRecord, logits_dims: Option<(usize, usize, usize)>) -> Vec<String> {
    let c = &record.config;
    let mut problems = Vec::new();
    if c.span > c.gen {
        problems.push(format!(
            "run.json: config.span {} exceeds config.gen {} (rows come from generated tokens)",
            c.span, c.gen
        ));
    }
    if !record.status.is_ok() {
        return problems;
    }
    // The schema guarantees these for status OK; a hand-built record may still lack them.
    let (Some(model), Some(tokens)) = (&record.model, &record.tokens) else {
        problems.push("run.json: status OK without model or tokens".into());
        return problems;
    };
    match logits_dims {
        None => problems.push(format!("{LOGITS_FILE}: absent, status OK requires it")),
        Some((b, s, v)) => {
            for (what, have, want, source) in [
                ("batch", b, c.batch, "config.batch"),
                ("span", s, c.span, "config.span"),
                ("vocab", v, model.vocab, "model.vocab"),
            ] {
                if have != want {
                    problems.push(format!(
                        "{LOGITS_FILE}: {what} is {have} but run.json {source} is {want}"
                    ));
                }
            }
        }
    }
    let rows = |name: &str, rows: &[Vec<u32>], problems: &mut Vec<String>| {
        if rows.len() != c.batch {
            problems.push(format!(
                "run.json: tokens.{name} has {} rows, config.batch is {}",
                rows.len(),
                c.batch
            ));
        }
        for (b, row) in rows.iter().enumerate() {
            if let Some((i, t)) = row
                .iter()
                .enumerate()
                .find(|(_, t)| **t as usize >= model.vocab)
            {
                problems.push(format!(
                    "run.json: tokens.{name}[{b}][{i}] = {t} is not below model.vocab {}",
                    model.vocab
                ));
            }
        }
    };
    rows("prompt", &tokens.prompt, &mut problems);
    rows("generated", &tokens.generated, &mut problems);
    for (b, row) in tokens.prompt.iter().enumerate() {
        // Ragged prompts (kv_aligned false) are shortened, never longer than ctx.
        let ok = if c.kv_aligned {
            row.len() == c.ctx
        } else {
            !row.is_empty() && row.len() <= c.ctx
        };
        if !ok {
            let want = if c.kv_aligned { "exactly" } else { "1 to" };
            problems.push(format!(
                "run.json: tokens.prompt[{b}] has {} tokens, expected {want} config.ctx {}",
                row.len(),
                c.ctx
            ));
        }
    }
    for (b, row) in tokens.generated.iter().enumerate() {
        if row.len() < c.span || row.len() > c.gen {
            problems.push(format!(
                "run.json: tokens.generated[{b}] has {} tokens, expected span {} to gen {}",
                row.len(),
                c.span,
                c.gen
            ));
        }
    }
    problems
}

/// A directory named like a cell key must be the key of its record's config (a renamed or
/// copied cell would otherwise be compared as something it is not). Other names are not checked.
fn name_problems(dir: &Path, record: &RunRecord) -> Vec<String> {
    let Some(name) = dir.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    let Ok(parsed) = CellKey::parse(name) else {
        return Vec::new();
    };
    // A status-only record has no engine; its backend is then taken from the name.
    let backend = record
        .engine
        .as_ref()
        .map_or(parsed.backend.as_str(), |e| e.backend.as_str());
    let want = cell_key(backend, &record.config);
    if want == name {
        Vec::new()
    } else {
        vec![format!(
            "directory name `{name}` does not match run.json's backend and config (expected `{want}`)"
        )]
    }
}

/// Writes a cell atomically as `<parent>/<key>`: run.json (checked against the schema and
/// [`cross_check`] first) and, for status OK, logits.safetensors from `(decode, prefill)`, each
/// [batch, span, vocab] with the dims taken from the record. An existing cell is replaced only
/// with `force`. Returns the cell's path.
pub fn write_cell(
    parent: &Path,
    key: &str,
    record: &RunRecord,
    logits: Option<(&[f32], &[f32])>,
    force: bool,
) -> Result<PathBuf, TraceError> {
    let final_dir = parent.join(key);
    let text = record.to_json_checked(&final_dir.join(RUN_JSON))?;
    let dims = match (record.status.is_ok(), logits) {
        (true, None) => {
            return Err(TraceError::invalid(
                &final_dir.join(LOGITS_FILE),
                "status OK requires logits; none were given",
            ))
        }
        (false, Some(_)) => {
            return Err(TraceError::invalid(
                &final_dir,
                format!("status {} has no logits; write it without", record.status),
            ))
        }
        (true, Some(_)) => record.logits_dims(),
        (false, None) => None,
    };
    let mut problems = cross_check(record, dims);
    problems.extend(name_problems(&final_dir, record));
    if !problems.is_empty() {
        return Err(TraceError::Inconsistent {
            path: final_dir,
            problems,
        });
    }
    let staged = StagedDir::begin(parent, key, force)?;
    staged.write_file(RUN_JSON, text.as_bytes())?;
    if let (Some((decode, prefill)), Some((b, s, v))) = (logits, dims) {
        write_logits(&staged.path().join(LOGITS_FILE), b, s, v, decode, prefill)?;
    }
    staged.commit()
}

/// Writes a cell that did not finish (runner side): run.json and stderr.tail.txt, atomically.
/// The status must not be OK.
pub fn write_status_only(
    parent: &Path,
    key: &str,
    record: &RunRecord,
    stderr_tail: &str,
    force: bool,
) -> Result<PathBuf, TraceError> {
    let final_dir = parent.join(key);
    if record.status.is_ok() {
        return Err(TraceError::invalid(
            &final_dir,
            "a status-only cell cannot have status OK",
        ));
    }
    let text = record.to_json_checked(&final_dir.join(RUN_JSON))?;
    let mut problems = cross_check(record, None);
    problems.extend(name_problems(&final_dir, record));
    if !problems.is_empty() {
        return Err(TraceError::Inconsistent {
            path: final_dir,
            problems,
        });
    }
    let staged = StagedDir::begin(parent, key, force)?;
    staged.write_file(RUN_JSON, text.as_bytes())?;
    staged.write_file(STDERR_TAIL, stderr_tail.as_bytes())?;
    staged.commit()
}

/// The cell directories of a sweep directory, sorted: every visible subdirectory (hidden ones
/// are temp or old cells being written or replaced). A subdirectory without run.json is
/// listed too, so that a reader reports it rather than skipping it.
pub fn list_cell_dirs(sweep_dir: &Path) -> Result<Vec<PathBuf>, TraceError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(sweep_dir).map_err(|e| TraceError::io(sweep_dir, e))? {
        let entry = entry.map_err(|e| TraceError::io(sweep_dir, e))?;
        let visible = !entry.file_name().to_string_lossy().starts_with('.');
        if visible && entry.path().is_dir() {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::logits::Side;
    use crate::trace::run::tests::{sample_config, sample_ok};
    use crate::trace::run::Status;

    fn key() -> String {
        cell_key("cpu", &sample_config())
    }

    fn logits() -> (Vec<f32>, Vec<f32>) {
        let n = 2 * 2 * 5;
        let d = (0..n).map(|i| i as f32 * 0.5).collect();
        let p = (0..n).map(|i| i as f32 * 0.5 + 1e-3).collect();
        (d, p)
    }

    fn visible_and_hidden(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn ok_cell_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let (dec, pre) = logits();
        let r = sample_ok();
        let path = write_cell(d.path(), &key(), &r, Some((&dec, &pre)), false).unwrap();
        assert_eq!(path, d.path().join(key()));
        assert_eq!(visible_and_hidden(d.path()), [key()]);
        assert_eq!(visible_and_hidden(&path), [LOGITS_FILE, RUN_JSON]);

        let cell = CellTrace::open(&path).unwrap();
        assert_eq!(cell.record, r);
        assert_eq!(cell.name(), Some(key().as_str()));
        let l = cell.logits.as_ref().unwrap();
        assert_eq!(l.dims(), (2, 2, 5));
        assert_eq!(&*l.row(Side::Prefill, 1, 1), &pre[15..20]);
        assert!(cell.stderr_tail().is_none());
    }

    #[test]
    fn status_only_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let r = RunRecord::status_only(
            "b3_81",
            Status::FailTimeout,
            vec!["tracecheck-engine".into()],
            sample_config(),
            Some("decode exceeded 600 s".into()),
        );
        let path = write_status_only(d.path(), &key(), &r, "last line\n", false).unwrap();
        assert_eq!(visible_and_hidden(&path), [RUN_JSON, STDERR_TAIL]);
        let cell = CellTrace::open(&path).unwrap();
        assert_eq!(cell.record, r);
        assert!(cell.logits.is_none());
        assert_eq!(cell.stderr_tail().as_deref(), Some("last line\n"));

        let e = write_status_only(d.path(), "other", &sample_ok(), "", false).unwrap_err();
        assert!(e.to_string().contains("cannot have status OK"), "{e}");
    }

    #[test]
    fn writer_refuses_wrong_logits_presence() {
        let d = tempfile::tempdir().unwrap();
        let e = write_cell(d.path(), &key(), &sample_ok(), None, false).unwrap_err();
        assert!(e.to_string().contains("status OK requires logits"), "{e}");
        let (dec, pre) = logits();
        let mut r = sample_ok();
        r.status = Status::FailCrash;
        let e = write_cell(d.path(), &key(), &r, Some((&dec, &pre)), false).unwrap_err();
        assert!(e.to_string().contains("FAIL_CRASH has no logits"), "{e}");
        // Wrong length: refused by the logits writer, nothing left behind.
        let e = write_cell(
            d.path(),
            &key(),
            &sample_ok(),
            Some((&dec[1..], &pre)),
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("decode has 19 values"), "{e}");
        assert!(visible_and_hidden(d.path()).is_empty());
    }

    #[test]
    fn force_replaces_and_resume_keeps() {
        let d = tempfile::tempdir().unwrap();
        let (dec, pre) = logits();
        write_cell(d.path(), &key(), &sample_ok(), Some((&dec, &pre)), false).unwrap();
        let e = write_cell(d.path(), &key(), &sample_ok(), Some((&dec, &pre)), false).unwrap_err();
        assert!(matches!(e, TraceError::CellExists { .. }), "{e}");
        let mut r = sample_ok();
        r.mode = "b3_77".into();
        write_cell(d.path(), &key(), &r, Some((&dec, &pre)), true).unwrap();
        let cell = CellTrace::open(&d.path().join(key())).unwrap();
        assert_eq!(cell.record.mode, "b3_77");
        assert_eq!(visible_and_hidden(d.path()), [key()]);
    }

    #[test]
    fn cross_check_finds_every_inconsistency() {
        let mut r = sample_ok();
        let t = r.tokens.as_mut().unwrap();
        t.prompt.pop(); // 1 row for batch 2
        t.generated[0].truncate(1); // shorter than span 2
        t.generated[1][2] = 5; // vocab is 5
        let p = cross_check(&r, Some((3, 2, 6)));
        let want = [
            "logits.safetensors: batch is 3 but run.json config.batch is 2",
            "logits.safetensors: vocab is 6 but run.json model.vocab is 5",
            "run.json: tokens.prompt has 1 rows, config.batch is 2",
            "run.json: tokens.generated[1][2] = 5 is not below model.vocab 5",
            "run.json: tokens.generated[0] has 1 tokens, expected span 2 to gen 3",
        ];
        for w in want {
            assert!(p.iter().any(|x| x == w), "{w} not in {p:#?}");
        }
        assert_eq!(p.len(), want.len(), "{p:#?}");

        let mut r = sample_ok();
        r.tokens.as_mut().unwrap().prompt[1].pop();
        let p = cross_check(&r, Some((2, 2, 5)));
        assert_eq!(
            p,
            ["run.json: tokens.prompt[1] has 3 tokens, expected exactly config.ctx 4"]
        );
        r.config.kv_aligned = false; // ragged prompts may be shorter
        assert!(cross_check(&r, Some((2, 2, 5))).is_empty());
        assert!(!cross_check(&r, None).is_empty());
    }

    #[test]
    fn open_reports_inconsistent_cells() {
        let d = tempfile::tempdir().unwrap();
        let (dec, pre) = logits();
        let path = write_cell(d.path(), "cell", &sample_ok(), Some((&dec, &pre)), false).unwrap();
        // Someone edits run.json behind our back.
        let mut r = sample_ok();
        r.config.span = 3;
        r.write(&path.join(RUN_JSON)).unwrap();
        match CellTrace::open(&path).unwrap_err() {
            TraceError::Inconsistent { path: p, problems } => {
                assert_eq!(p, path);
                assert_eq!(
                    problems,
                    ["logits.safetensors: span is 2 but run.json config.span is 3"]
                );
            }
            e => panic!("{e}"),
        }
    }

    #[test]
    fn open_reports_missing_and_bad_files() {
        let d = tempfile::tempdir().unwrap();
        let e = CellTrace::open(d.path()).unwrap_err();
        assert!(matches!(e, TraceError::Missing { .. }), "{e}");
        assert!(e.to_string().contains("run.json: missing"), "{e}");

        let (dec, pre) = logits();
        let path = write_cell(d.path(), &key(), &sample_ok(), Some((&dec, &pre)), false).unwrap();
        fs::remove_file(path.join(LOGITS_FILE)).unwrap();
        let e = CellTrace::open(&path).unwrap_err().to_string();
        assert!(
            e.ends_with("logits.safetensors: missing (status OK requires it)"),
            "{e}"
        );

        let mut v = serde_json::to_value(sample_ok()).unwrap();
        v["schema_version"] = serde_json::json!(2);
        fs::write(path.join(RUN_JSON), v.to_string()).unwrap();
        let e = CellTrace::open(&path).unwrap_err();
        assert!(matches!(e, TraceError::UnsupportedVersion { .. }), "{e}");
    }

    #[test]
    fn directory_name_must_match_config() {
        let d = tempfile::tempdir().unwrap();
        let (dec, pre) = logits();
        let wrong = cell_key("cuda", &sample_config());
        let e = write_cell(d.path(), &wrong, &sample_ok(), Some((&dec, &pre)), false).unwrap_err();
        assert!(e.to_string().contains("does not match"), "{e}");
        let path = write_cell(d.path(), &key(), &sample_ok(), Some((&dec, &pre)), false).unwrap();
        let moved = d.path().join(cell_key("cpu", &sample_config().twin(3)));
        fs::rename(&path, &moved).unwrap();
        let e = CellTrace::open(&moved).unwrap_err().to_string();
        assert!(e.contains("expected `cpu_b2_p0_"), "{e}");
    }

    #[test]
    fn listing_skips_hidden_dirs() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("b_cell")).unwrap();
        fs::create_dir(d.path().join("a_cell")).unwrap();
        fs::create_dir(d.path().join(".tmp-x-1")).unwrap();
        fs::write(d.path().join("sweep.json"), "{}").unwrap();
        let names: Vec<_> = list_cell_dirs(d.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a_cell", "b_cell"]);
    }
}
