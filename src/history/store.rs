//! The history's storage: `<dir>/history.parquet`, one row per run, cell and metric, with the
//! run's attributes repeated on each row (Parquet's dictionary encoding makes that nearly free)
//! so the file alone answers queries in polars, DuckDB or pandas. The only module that uses
//! polars.
//!
//! Writes replace the file atomically (temp file + rename) under a lock file, so readers never
//! see half a file and two writers on one host do not lose each other's runs. A file that
//! cannot be read is an error naming it, and is never overwritten.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use polars::prelude::*;

use tracecheck_engine::trace::{write_file_atomic_with, TraceError};

use super::model::{History, RunInfo, StoredRun, StoredValue};
use super::HistoryError;

pub const HISTORY_FILE: &str = "history.parquet";
const LOCK_FILE: &str = "history.lock";
/// Version of the columns below; a newer file is refused rather than misread.
pub const SCHEMA_VERSION: i32 = 1;
/// How long a writer waits for another one on the same directory.
const LOCK_WAIT: Duration = Duration::from_secs(120);

/// A history directory.
pub struct Store {
    dir: PathBuf,
}

/// Held while a writer reads, changes and replaces the file.
pub struct Lock {
    path: PathBuf,
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn pid_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        // Signal 0 checks existence; EPERM means it exists under another user.
        let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

impl Store {
    pub fn new(dir: &Path) -> Store {
        Store {
            dir: dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn file(&self) -> PathBuf {
        self.dir.join(HISTORY_FILE)
    }

    fn io(path: &Path, e: impl std::fmt::Display) -> HistoryError {
        HistoryError::Io {
            path: path.to_path_buf(),
            what: e.to_string(),
        }
    }

    /// Takes the writer's lock (creating the directory). A lock left by a process that no longer
    /// exists is taken over; a live one is waited for, then named in the error.
    pub fn lock(&self) -> Result<Lock, HistoryError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Self::io(&self.dir, e))?;
        let path = self.dir.join(LOCK_FILE);
        let start = Instant::now();
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    let _ = writeln!(f, "{}", std::process::id());
                    return Ok(Lock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse::<u32>().ok());
                    match holder {
                        Some(pid) if pid_alive(pid) => {
                            if start.elapsed() > LOCK_WAIT {
                                return Err(Self::io(
                                    &path,
                                    format!("another tracecheck (pid {pid}) is writing this history; waited {} s", LOCK_WAIT.as_secs()),
                                ));
                            }
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        // Stale (its writer died) or being written this instant.
                        Some(_) => {
                            let _ = std::fs::remove_file(&path);
                        }
                        None => {
                            if start.elapsed() > Duration::from_secs(2) {
                                let _ = std::fs::remove_file(&path);
                            }
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                }
                Err(e) => return Err(Self::io(&path, e)),
            }
        }
    }

    /// The history; empty when the directory or the file does not exist yet.
    pub fn load(&self) -> Result<History, HistoryError> {
        let path = self.file();
        if !path.exists() {
            return Ok(History::default());
        }
        let corrupt = |what: String| HistoryError::Corrupt {
            path: path.clone(),
            what,
        };
        let file = std::fs::File::open(&path).map_err(|e| Self::io(&path, e))?;
        let df = ParquetReader::new(file)
            .finish()
            .map_err(|e| corrupt(format!("not a readable Parquet file ({e})")))?;
        from_frame(&df).map_err(corrupt)
    }

    /// Replaces the file with `h`, atomically.
    pub fn save(&self, h: &History) -> Result<(), HistoryError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Self::io(&self.dir, e))?;
        let path = self.file();
        let mut df = to_frame(h).map_err(|e| Self::io(&path, e))?;
        write_file_atomic_with(&path, |tmp| {
            let f = std::fs::File::create(tmp).map_err(|source| TraceError::Io {
                path: tmp.to_path_buf(),
                source,
            })?;
            ParquetWriter::new(f)
                .with_compression(ParquetCompression::Zstd(None))
                .finish(&mut df)
                .map(|_| ())
                .map_err(|e| TraceError::Invalid {
                    path: tmp.to_path_buf(),
                    fault: format!("writing Parquet: {e}"),
                })
        })
        .map_err(|e| Self::io(&path, e))
    }
}

/// Column names, in file order.
mod col {
    pub const SCHEMA_VERSION: &str = "schema_version";
    pub const RUN_ID: &str = "run_id";
    pub const SEQ: &str = "seq";
    pub const RECORDED_AT: &str = "recorded_at";
    pub const MODE: &str = "mode";
    pub const MODEL: &str = "model";
    pub const MODEL_SHA256: &str = "model_sha256";
    pub const ENGINE_VERSION: &str = "engine_version";
    pub const ENGINE_REVISION: &str = "engine_revision";
    pub const HOST: &str = "host";
    pub const TRACES_DIR: &str = "traces_dir";
    pub const ACCEPTED: &str = "accepted";
    pub const DECISION: &str = "decision";
    pub const TAGS: &str = "tags";
    pub const CELL_KEY: &str = "cell_key";
    pub const DEVICE: &str = "device";
    pub const METRIC: &str = "metric";
    pub const UNIT: &str = "unit";
    pub const DIRECTION: &str = "direction";
    pub const VALUE: &str = "value";
    pub const VERDICT: &str = "verdict";
}

fn to_frame(h: &History) -> PolarsResult<DataFrame> {
    let rows: Vec<(&RunInfo, &StoredValue)> = h
        .runs
        .iter()
        .flat_map(|r| r.values.iter().map(move |v| (&r.info, v)))
        .collect();
    let run_str = |f: fn(&RunInfo) -> &str| rows.iter().map(|(r, _)| f(r)).collect::<Vec<&str>>();
    let run_opt = |f: fn(&RunInfo) -> Option<&str>| {
        rows.iter()
            .map(|(r, _)| f(r))
            .collect::<Vec<Option<&str>>>()
    };
    let val_str =
        |f: fn(&StoredValue) -> &str| rows.iter().map(|(_, v)| f(v)).collect::<Vec<&str>>();
    let tags: Vec<String> = rows.iter().map(|(r, _)| r.tags.join(",")).collect();
    let columns = vec![
        Column::new(col::SCHEMA_VERSION.into(), vec![SCHEMA_VERSION; rows.len()]),
        Column::new(col::RUN_ID.into(), run_str(|r| &r.run_id)),
        Column::new(
            col::SEQ.into(),
            rows.iter().map(|(r, _)| r.seq).collect::<Vec<i64>>(),
        ),
        Column::new(col::RECORDED_AT.into(), run_str(|r| &r.recorded_at)),
        Column::new(col::MODE.into(), run_str(|r| &r.mode)),
        Column::new(col::MODEL.into(), run_opt(|r| r.model.as_deref())),
        Column::new(col::MODEL_SHA256.into(), run_str(|r| &r.model_sha256)),
        Column::new(
            col::ENGINE_VERSION.into(),
            run_opt(|r| r.engine_version.as_deref()),
        ),
        Column::new(
            col::ENGINE_REVISION.into(),
            run_opt(|r| r.engine_revision.as_deref()),
        ),
        Column::new(col::HOST.into(), run_opt(|r| r.host.as_deref())),
        Column::new(col::TRACES_DIR.into(), run_str(|r| &r.traces_dir)),
        Column::new(
            col::ACCEPTED.into(),
            rows.iter().map(|(r, _)| r.accepted).collect::<Vec<bool>>(),
        ),
        Column::new(col::DECISION.into(), run_str(|r| &r.decision)),
        Column::new(col::TAGS.into(), tags),
        Column::new(col::CELL_KEY.into(), val_str(|v| &v.cell)),
        Column::new(col::DEVICE.into(), val_str(|v| &v.device)),
        Column::new(col::METRIC.into(), val_str(|v| &v.metric)),
        Column::new(col::UNIT.into(), val_str(|v| &v.unit)),
        Column::new(col::DIRECTION.into(), val_str(|v| &v.direction)),
        Column::new(
            col::VALUE.into(),
            rows.iter()
                .map(|(_, v)| v.value)
                .collect::<Vec<Option<f64>>>(),
        ),
        Column::new(col::VERDICT.into(), val_str(|v| &v.verdict)),
    ];
    DataFrame::new(rows.len(), columns)
}

/// A typed view of the file's columns; every fault names the column.
struct Cols<'a> {
    df: &'a DataFrame,
}

impl<'a> Cols<'a> {
    fn get(&self, name: &str) -> Result<&'a Column, String> {
        self.df
            .column(name)
            .map_err(|_| format!("column `{name}` is missing: not a tracecheck history"))
    }

    fn strs(&self, name: &str) -> Result<Vec<Option<&'a str>>, String> {
        let c = self.get(name)?;
        let s = c
            .str()
            .map_err(|_| format!("column `{name}` is {}, not text", c.dtype()))?;
        Ok(s.iter().collect())
    }

    /// A text column without nulls.
    fn req_strs(&self, name: &str) -> Result<Vec<&'a str>, String> {
        self.strs(name)?
            .into_iter()
            .enumerate()
            .map(|(i, v)| v.ok_or_else(|| format!("column `{name}` is null in row {i}")))
            .collect()
    }
}

fn from_frame(df: &DataFrame) -> Result<History, String> {
    let c = Cols { df };
    let versions = c.get(col::SCHEMA_VERSION)?;
    let versions = versions
        .i32()
        .map_err(|_| format!("column `{}` is not Int32", col::SCHEMA_VERSION))?;
    if let Some(v) = versions.iter().flatten().find(|&v| v != SCHEMA_VERSION) {
        return Err(format!(
            "schema_version {v} is not supported (this build reads {SCHEMA_VERSION}); use a newer tracecheck"
        ));
    }
    let run_id = c.req_strs(col::RUN_ID)?;
    let seq: Vec<Option<i64>> = {
        let s = c.get(col::SEQ)?;
        s.i64()
            .map_err(|_| format!("column `{}` is not Int64", col::SEQ))?
            .iter()
            .collect()
    };
    let accepted: Vec<Option<bool>> = {
        let s = c.get(col::ACCEPTED)?;
        s.bool()
            .map_err(|_| format!("column `{}` is not Boolean", col::ACCEPTED))?
            .iter()
            .collect()
    };
    let value: Vec<Option<f64>> = {
        let s = c.get(col::VALUE)?;
        s.f64()
            .map_err(|_| format!("column `{}` is not Float64", col::VALUE))?
            .iter()
            .collect()
    };
    let recorded_at = c.req_strs(col::RECORDED_AT)?;
    let mode = c.req_strs(col::MODE)?;
    let model = c.strs(col::MODEL)?;
    let model_sha = c.req_strs(col::MODEL_SHA256)?;
    let engine_version = c.strs(col::ENGINE_VERSION)?;
    let engine_revision = c.strs(col::ENGINE_REVISION)?;
    let host = c.strs(col::HOST)?;
    let traces_dir = c.req_strs(col::TRACES_DIR)?;
    let decision = c.req_strs(col::DECISION)?;
    let tags = c.req_strs(col::TAGS)?;
    let cell = c.req_strs(col::CELL_KEY)?;
    let device = c.req_strs(col::DEVICE)?;
    let metric = c.req_strs(col::METRIC)?;
    let unit = c.req_strs(col::UNIT)?;
    let direction = c.req_strs(col::DIRECTION)?;
    let verdict = c.req_strs(col::VERDICT)?;

    let mut runs: Vec<StoredRun> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for i in 0..df.height() {
        let at = match index.get(run_id[i]) {
            Some(&at) => at,
            None => {
                let info = RunInfo {
                    run_id: run_id[i].to_string(),
                    seq: seq[i].ok_or_else(|| format!("column `seq` is null in row {i}"))?,
                    recorded_at: recorded_at[i].to_string(),
                    mode: mode[i].to_string(),
                    model: model[i].map(str::to_string),
                    model_sha256: model_sha[i].to_string(),
                    engine_version: engine_version[i].map(str::to_string),
                    engine_revision: engine_revision[i].map(str::to_string),
                    host: host[i].map(str::to_string),
                    traces_dir: traces_dir[i].to_string(),
                    accepted: accepted[i]
                        .ok_or_else(|| format!("column `accepted` is null in row {i}"))?,
                    decision: decision[i].to_string(),
                    tags: tags[i]
                        .split(',')
                        .filter(|t| !t.is_empty())
                        .map(str::to_string)
                        .collect(),
                };
                index.insert(run_id[i], runs.len());
                runs.push(StoredRun {
                    info,
                    values: Vec::new(),
                });
                runs.len() - 1
            }
        };
        runs[at].values.push(StoredValue {
            cell: cell[i].to_string(),
            device: device[i].to_string(),
            metric: metric[i].to_string(),
            unit: unit[i].to_string(),
            direction: direction[i].to_string(),
            value: value[i],
            verdict: verdict[i].to_string(),
        });
    }
    runs.sort_by_key(|r| r.info.seq);
    Ok(History { runs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::model::tests::run;

    fn sample() -> History {
        let mut a = run(1, "r1");
        a.values = vec![
            StoredValue {
                cell: "c1".into(),
                device: "cpu".into(),
                metric: "decode_tok_s".into(),
                unit: "tokens/s".into(),
                direction: "higher_is_better".into(),
                value: Some(12.5),
                verdict: "PASS_EQUIV".into(),
            },
            StoredValue {
                cell: "c1".into(),
                device: "cpu".into(),
                metric: "status".into(),
                unit: String::new(),
                direction: "status".into(),
                value: None,
                verdict: "PASS_EQUIV".into(),
            },
        ];
        let mut b = run(2, "r2");
        b.info.tags = vec!["v1".into(), "nightly".into()];
        b.info.accepted = false;
        b.info.engine_version = None;
        b.values = a.values.clone();
        History { runs: vec![a, b] }
    }

    #[test]
    fn round_trips_through_parquet() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::new(&dir.path().join("h"));
        assert_eq!(s.load().unwrap(), History::default());
        let h = sample();
        {
            let _lock = s.lock().unwrap();
            s.save(&h).unwrap();
        }
        assert!(!dir.path().join("h").join(LOCK_FILE).exists());
        assert_eq!(s.load().unwrap(), h);
    }

    #[test]
    fn a_corrupt_file_is_named_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::new(dir.path());
        std::fs::write(s.file(), b"PAR1 garbage").unwrap();
        let e = s.load().unwrap_err().to_string();
        assert!(e.contains("history.parquet"), "{e}");
        assert_eq!(std::fs::read(s.file()).unwrap(), b"PAR1 garbage");
    }

    #[test]
    fn a_foreign_parquet_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::new(dir.path());
        let mut df = DataFrame::new(1, vec![Column::new("x".into(), vec![1i64])]).unwrap();
        ParquetWriter::new(std::fs::File::create(s.file()).unwrap())
            .finish(&mut df)
            .unwrap();
        let e = s.load().unwrap_err().to_string();
        assert!(e.contains("column `schema_version` is missing"), "{e}");
    }

    #[test]
    fn a_stale_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::new(dir.path());
        // No process has pid 4 000 000 (above Linux's pid_max default).
        std::fs::write(dir.path().join(LOCK_FILE), "4000000\n").unwrap();
        let l = s.lock().unwrap();
        drop(l);
    }
}
