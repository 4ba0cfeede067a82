//! sweep.json: a sweep directory's record (argv, expanded matrix, host, tool versions, start and
//! end), plus the host probe and the UTC timestamp formatter that fill it.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::trace::atomic::write_file_atomic;
use crate::trace::cell_key::cell_key;
use crate::trace::config::CellConfig;
use crate::trace::schema::{parse_validated, sweep_schema};
use crate::trace::{TraceError, SCHEMA_VERSION};

/// The tool that ran the sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolInfo {
    pub name: String,
    pub version: String,
}

/// One cell of the expanded matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedCell {
    /// `cell_key(backend, config)`; the cell's directory name.
    pub key: String,
    pub backend: String,
    pub config: CellConfig,
    /// A batch-1 twin added so that every sequence of a larger batch has its pair.
    pub reference: bool,
}

impl PlannedCell {
    /// A cell with its canonical key.
    pub fn new(backend: &str, config: CellConfig, reference: bool) -> PlannedCell {
        PlannedCell {
            key: cell_key(backend, &config),
            backend: backend.to_string(),
            config,
            reference,
        }
    }
}

/// The machine the sweep ran on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    pub hostname: String,
    pub os: String,
    pub arch: String,
    pub cpu: String,
    pub cores: usize,
    pub memory_mb: u64,
}

impl HostInfo {
    /// Best effort, never fails: what cannot be read is `unknown` (or 0 MB).
    pub fn detect() -> HostInfo {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        let hostname = read("/proc/sys/kernel/hostname")
            .or_else(|| read("/etc/hostname"))
            .or_else(|| std::env::var("HOSTNAME").ok())
            .or_else(|| std::env::var("COMPUTERNAME").ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".into());
        let pretty = read("/etc/os-release").and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim().trim_matches('"').to_string())
        });
        let os = match pretty {
            Some(p) => format!("{} ({p})", std::env::consts::OS),
            None => std::env::consts::OS.to_string(),
        };
        let cpu = read("/proc/cpuinfo")
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let memory_mb = read("/proc/meminfo")
            .and_then(|t| {
                let line = t.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kb / 1024)
            })
            .unwrap_or(0);
        HostInfo {
            hostname,
            os,
            arch: std::env::consts::ARCH.to_string(),
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_mb,
        }
    }
}

/// sweep.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRecord {
    pub schema_version: u32,
    pub tool: ToolInfo,
    pub mode: String,
    pub argv: Vec<String>,
    /// The model as given on the command line.
    pub model: String,
    pub matrix: Vec<PlannedCell>,
    pub host: HostInfo,
    /// e.g. `rustc`, `nvidia-driver`, `cuda`.
    pub tool_versions: BTreeMap<String, String>,
    /// RFC 3339 UTC ([`rfc3339_utc`]).
    pub started_at: String,
    /// None while the sweep runs.
    #[serde(default)]
    pub ended_at: Option<String>,
    /// The runner's per-phase timeout, seconds (reports quote it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
}

impl SweepRecord {
    /// Reads, schema-validates and [`check`](Self::check)s `path`.
    pub fn read(path: &Path) -> Result<SweepRecord, TraceError> {
        let text = std::fs::read_to_string(path).map_err(|e| TraceError::io(path, e))?;
        Self::from_json_str(path, &text)
    }

    /// Parses sweep.json text; `path` only names the source in errors.
    pub fn from_json_str(path: &Path, text: &str) -> Result<SweepRecord, TraceError> {
        let value = parse_validated(path, text, sweep_schema())?;
        let record: SweepRecord =
            serde_json::from_value(value).map_err(|e| TraceError::json(path, e))?;
        let problems = record.check();
        if problems.is_empty() {
            Ok(record)
        } else {
            Err(TraceError::Inconsistent {
                path: path.to_path_buf(),
                problems,
            })
        }
    }

    /// What the schema cannot see: every key is the canonical key of its backend and config,
    /// keys are unique, reference cells have batch 1.
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut seen = HashSet::new();
        for (i, cell) in self.matrix.iter().enumerate() {
            let want = cell_key(&cell.backend, &cell.config);
            if cell.key != want {
                problems.push(format!(
                    "/matrix/{i}/key: `{}` does not match its config (expected `{want}`)",
                    cell.key
                ));
            }
            if !seen.insert(&cell.key) {
                problems.push(format!("/matrix/{i}/key: `{}` appears twice", cell.key));
            }
            if cell.reference && cell.config.batch != 1 {
                problems.push(format!(
                    "/matrix/{i}: a reference cell must have batch 1, has {}",
                    cell.config.batch
                ));
            }
        }
        problems
    }

    /// The planned cell with this key.
    pub fn cell(&self, key: &str) -> Option<&PlannedCell> {
        self.matrix.iter().find(|c| c.key == key)
    }

    /// Pretty JSON, checked against the schema and [`check`](Self::check) first.
    pub fn to_json_checked(&self, path: &Path) -> Result<String, TraceError> {
        let value = serde_json::to_value(self).map_err(|e| TraceError::json(path, e))?;
        let problems = sweep_schema().validate(&value);
        if !problems.is_empty() {
            return Err(TraceError::Schema {
                path: path.to_path_buf(),
                problems,
            });
        }
        let problems = self.check();
        if !problems.is_empty() {
            return Err(TraceError::Inconsistent {
                path: path.to_path_buf(),
                problems,
            });
        }
        let mut text =
            serde_json::to_string_pretty(&value).map_err(|e| TraceError::json(path, e))?;
        text.push('\n');
        Ok(text)
    }

    /// Writes `path` atomically (the runner rewrites it at the end of the sweep).
    pub fn write(&self, path: &Path) -> Result<(), TraceError> {
        let text = self.to_json_checked(path)?;
        write_file_atomic(path, text.as_bytes())
    }

    /// A record started now, with an empty matrix, this host and no end.
    pub fn begin(
        tool: ToolInfo,
        mode: impl Into<String>,
        argv: Vec<String>,
        model: impl Into<String>,
    ) -> SweepRecord {
        SweepRecord {
            schema_version: SCHEMA_VERSION,
            tool,
            mode: mode.into(),
            argv,
            model: model.into(),
            matrix: Vec::new(),
            host: HostInfo::detect(),
            tool_versions: BTreeMap::new(),
            started_at: rfc3339_utc(SystemTime::now()),
            ended_at: None,
            timeout_s: None,
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds; times before 1970 work too).
pub fn rfc3339_utc(t: SystemTime) -> String {
    let secs: i64 = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        // Round towards the past so that 1969-12-31T23:59:59.5 prints :59.
        Err(e) => {
            let d = e.duration();
            let whole = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            -whole - i64::from(d.subsec_nanos() > 0)
        }
    };
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::run::tests::sample_config;
    use std::time::Duration;

    fn sample() -> SweepRecord {
        let mut s = SweepRecord::begin(
            ToolInfo {
                name: "tracecheck".into(),
                version: "0.1.0".into(),
            },
            "b3_81",
            vec!["tracecheck".into(), "run".into()],
            "smollm2-135m",
        );
        let c = sample_config();
        s.matrix.push(PlannedCell::new("cpu", c.clone(), false));
        s.matrix.push(PlannedCell::new("cpu", c.twin(0), true));
        s.matrix.push(PlannedCell::new("cpu", c.twin(1), true));
        s.tool_versions.insert("rustc".into(), "1.85".into());
        s.timeout_s = Some(600.0);
        s
    }

    #[test]
    fn timestamps() {
        let at = |s: i64| {
            if s >= 0 {
                UNIX_EPOCH + Duration::from_secs(s as u64)
            } else {
                UNIX_EPOCH - Duration::from_secs((-s) as u64)
            }
        };
        assert_eq!(rfc3339_utc(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(at(1_700_000_000)), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_utc(at(4_107_542_399)), "2100-02-28T23:59:59Z");
        assert_eq!(rfc3339_utc(at(-1)), "1969-12-31T23:59:59Z");
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH - Duration::from_millis(500)),
            "1969-12-31T23:59:59Z"
        );
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH + Duration::from_millis(1999)),
            "1970-01-01T00:00:01Z"
        );
    }

    #[test]
    fn round_trips() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("sweep.json");
        let mut s = sample();
        s.write(&path).unwrap();
        assert_eq!(SweepRecord::read(&path).unwrap(), s);
        s.ended_at = Some(rfc3339_utc(SystemTime::now()));
        s.write(&path).unwrap();
        let back = SweepRecord::read(&path).unwrap();
        assert_eq!(back, s);
        assert_eq!(
            back.cell("cpu_b1_p1_ctx4_gen3_span2_bf16_invariant_flash_kv1_s0")
                .map(|c| c.reference),
            Some(true)
        );
    }

    #[test]
    fn host_detection_fills_what_it_can() {
        let h = HostInfo::detect();
        assert!(!h.hostname.is_empty() && h.cores >= 1);
        assert_eq!(h.arch, std::env::consts::ARCH);
    }

    #[test]
    fn inconsistent_matrix_is_refused() {
        let p = Path::new("s/sweep.json");
        let mut s = sample();
        s.matrix[0].key = "cpu_b9_p0_ctx4_gen3_span2_bf16_invariant_flash_kv1_s0".into();
        s.matrix[0].reference = true; // batch 2
        s.matrix[2] = s.matrix[1].clone();
        let problems = s.check();
        assert_eq!(problems.len(), 3, "{problems:#?}");
        let err = s.to_json_checked(p).unwrap_err().to_string();
        assert!(err.contains("/matrix/0/key: `cpu_b9_"), "{err}");
        assert!(
            err.contains("/matrix/0: a reference cell must have batch 1, has 2"),
            "{err}"
        );
        assert!(err.contains("/matrix/2/key: `cpu_b1_p0_"), "{err}");
        // Reading checks the same.
        let text = serde_json::to_string(&s).unwrap();
        assert!(matches!(
            SweepRecord::from_json_str(p, &text),
            Err(TraceError::Inconsistent { .. })
        ));
    }

    #[test]
    fn schema_faults_are_reported() {
        let p = Path::new("s/sweep.json");
        let mut v = serde_json::to_value(sample()).unwrap();
        v["host"]["cores"] = serde_json::json!(0);
        v["tool_versions"]["cuda"] = serde_json::json!(12);
        v["matrix"][0]["config"]["attn_impl"] = serde_json::json!("sdpa");
        let err = SweepRecord::from_json_str(p, &v.to_string()).unwrap_err();
        let s = err.to_string();
        assert!(s.contains("(3 problems)"), "{s}");
        assert!(
            s.contains("/host/cores: 0 is less than the minimum 1"),
            "{s}"
        );
        assert!(s.contains("/tool_versions/cuda: expected string"), "{s}");
        assert!(s.contains("/matrix/0/config/attn_impl"), "{s}");
        v["schema_version"] = serde_json::json!(3);
        let err = SweepRecord::from_json_str(p, &v.to_string()).unwrap_err();
        assert!(
            matches!(err, TraceError::UnsupportedVersion { .. }),
            "{err}"
        );
    }
}
