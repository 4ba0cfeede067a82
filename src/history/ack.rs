//! The acknowledgements file: intended changes that the history lets through, each with a
//! reason and a date, kept in the repository (default `reports/acknowledged.toml`) so the
//! change and its justification are reviewed together.
//!
//! ```toml
//! [[ack]]
//! cell = "cpu_b2_p0_ctx128_gen16_span8_f32_invariant_flash_kv1_s0"  # a cell key, or "*"
//! metric = "decode_tok_s"      # a history metric, "status", "numerics", or "*"
//! reason = "batch 2 now uses the invariant split-K kernel: slower, bit-exact"
//! date = "2026-05-01"          # when it was acknowledged (YYYY-MM-DD)
//! # optional:
//! mode = "b3_81"               # only this mode
//! device = "NVIDIA H200"       # only this device
//! expires = "2026-06-01"       # not applied after this date
//! ```
//!
//! Validated strictly: unknown keys, a missing or empty `reason`, a malformed date or an
//! unknown metric are errors naming the file and the entry (exit 2) — a typo must not silently
//! let a regression through.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::metrics::is_known_metric;

/// Default location, relative to the working directory; used when it exists.
pub const DEFAULT_ACK_FILE: &str = "reports/acknowledged.toml";

#[derive(Debug, thiserror::Error)]
#[error("{path}: {what}")]
pub struct AckError {
    pub path: PathBuf,
    pub what: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ack {
    /// 1-based position in the file, for messages.
    pub entry: usize,
    pub cell: String,
    pub metric: String,
    pub reason: String,
    pub date: String,
    pub mode: Option<String>,
    pub device: Option<String>,
    pub expires: Option<String>,
}

/// The entries of one acknowledgements file.
#[derive(Debug, Clone, Default)]
pub struct AckSet {
    pub path: Option<PathBuf>,
    pub entries: Vec<Ack>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    ack: Vec<RawAck>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAck {
    cell: Option<String>,
    metric: Option<String>,
    reason: Option<String>,
    date: Option<String>,
    mode: Option<String>,
    device: Option<String>,
    expires: Option<String>,
}

/// `YYYY-MM-DD` with a real month and day.
pub fn valid_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|p| p.parse::<u32>().ok());
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    if !s
        .chars()
        .enumerate()
        .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    {
        return false;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

impl AckSet {
    /// Parses and validates an acknowledgements file's text; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<AckSet, AckError> {
        let err = |what: String| AckError {
            path: path.to_path_buf(),
            what,
        };
        let raw: RawFile = toml::from_str(text)
            .map_err(|e| err(format!("not a valid acknowledgements file: {e}")))?;
        let mut entries = Vec::with_capacity(raw.ack.len());
        for (i, r) in raw.ack.into_iter().enumerate() {
            let n = i + 1;
            let name = format!(
                "entry {n} ([[ack]] cell = {}, metric = {})",
                r.cell.as_deref().map_or("?".into(), |c| format!("{c:?}")),
                r.metric.as_deref().map_or("?".into(), |m| format!("{m:?}")),
            );
            let required = |v: Option<String>, key: &str| -> Result<String, AckError> {
                match v.map(|s| s.trim().to_string()) {
                    Some(s) if !s.is_empty() => Ok(s),
                    Some(_) => Err(err(format!("{name}: `{key}` is empty"))),
                    None => Err(err(format!("{name}: `{key}` is missing"))),
                }
            };
            let cell = required(r.cell, "cell")?;
            let metric = required(r.metric, "metric")?;
            let reason = required(r.reason, "reason")?;
            let date = required(r.date, "date")?;
            if metric != "*" && !is_known_metric(&metric) {
                return Err(err(format!(
                    "{name}: unknown metric `{metric}` (known: {}, or \"*\")",
                    super::metrics::known_metric_names().join(", ")
                )));
            }
            if !valid_date(&date) {
                return Err(err(format!("{name}: date `{date}` is not YYYY-MM-DD")));
            }
            if let Some(x) = &r.expires {
                if !valid_date(x) {
                    return Err(err(format!("{name}: expires `{x}` is not YYYY-MM-DD")));
                }
            }
            entries.push(Ack {
                entry: n,
                cell,
                metric,
                reason,
                date,
                mode: r.mode,
                device: r.device,
                expires: r.expires,
            });
        }
        Ok(AckSet {
            path: Some(path.to_path_buf()),
            entries,
        })
    }

    /// The file named by `--acknowledged`, else the default one when it exists, else none.
    pub fn load(explicit: Option<&Path>) -> Result<AckSet, AckError> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => {
                let d = PathBuf::from(DEFAULT_ACK_FILE);
                if !d.is_file() {
                    return Ok(AckSet::default());
                }
                d
            }
        };
        let text = std::fs::read_to_string(&path).map_err(|e| AckError {
            path: path.clone(),
            what: e.to_string(),
        })?;
        AckSet::parse(&path, &text)
    }

    /// The first entry that covers this change and is in force on `today` (YYYY-MM-DD).
    pub fn find(
        &self,
        mode: &str,
        cell: &str,
        metric: &str,
        device: &str,
        today: &str,
    ) -> Option<&Ack> {
        self.entries.iter().find(|a| {
            (a.cell == "*" || a.cell == cell)
                && (a.metric == "*" || a.metric == metric)
                && a.mode.as_deref().is_none_or(|m| m == mode)
                && a.device.as_deref().is_none_or(|d| d == device)
                && a.expires.as_deref().is_none_or(|x| today <= x)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AckSet, AckError> {
        AckSet::parse(Path::new("reports/acknowledged.toml"), text)
    }

    const GOOD: &str = r#"
[[ack]]
cell = "cpu_b2"
metric = "decode_tok_s"
reason = "new kernel"
date = "2026-05-01"

[[ack]]
cell = "*"
metric = "peak_mb"
reason = "bigger workspace"
date = "2026-05-02"
mode = "b3_81"
expires = "2026-06-01"
"#;

    #[test]
    fn parses_and_matches() {
        let s = parse(GOOD).unwrap();
        assert_eq!(s.entries.len(), 2);
        let today = "2026-05-10";
        let a = s
            .find("b3_81", "cpu_b2", "decode_tok_s", "cpu", today)
            .unwrap();
        assert_eq!(a.entry, 1);
        assert!(s
            .find("b3_81", "cpu_b4", "decode_tok_s", "cpu", today)
            .is_none());
        assert_eq!(
            s.find("b3_81", "cpu_b4", "peak_mb", "cpu", today)
                .unwrap()
                .entry,
            2
        );
        // Restricted to a mode, and expired after its date.
        assert!(s.find("b3_89", "cpu_b4", "peak_mb", "cpu", today).is_none());
        assert!(s
            .find("b3_81", "cpu_b4", "peak_mb", "cpu", "2026-06-02")
            .is_none());
        assert!(s
            .find("b3_81", "cpu_b4", "peak_mb", "cpu", "2026-06-01")
            .is_some());
    }

    #[test]
    fn an_empty_file_acknowledges_nothing() {
        assert!(parse("").unwrap().entries.is_empty());
    }

    #[test]
    fn faults_name_the_file_and_the_entry() {
        let cases = [
            (
                "[[ack]]\ncell = \"c\"\nmetric = \"decode_s\"\ndate = \"2026-01-01\"\n",
                "entry 1 ([[ack]] cell = \"c\", metric = \"decode_s\"): `reason` is missing",
            ),
            (
                "[[ack]]\ncell = \"c\"\nmetric = \"decode_s\"\nreason = \" \"\ndate = \"2026-01-01\"\n",
                "`reason` is empty",
            ),
            (
                "[[ack]]\ncell = \"c\"\nmetric = \"speed\"\nreason = \"r\"\ndate = \"2026-01-01\"\n",
                "unknown metric `speed`",
            ),
            (
                "[[ack]]\ncell = \"c\"\nmetric = \"decode_s\"\nreason = \"r\"\ndate = \"2026-02-30\"\n",
                "date `2026-02-30` is not YYYY-MM-DD",
            ),
            (
                "[[ack]]\ncell = \"c\"\nmetric = \"decode_s\"\nreason = \"r\"\ndate = \"2026-01-01\"\nreasn = \"x\"\n",
                "unknown field `reasn`",
            ),
            ("[[ack]\ncell = 1", "not a valid acknowledgements file"),
        ];
        for (text, needle) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.starts_with("reports/acknowledged.toml: "), "{e}");
            assert!(e.contains(needle), "{needle}: {e}");
        }
        let e = parse(&format!(
            "{GOOD}\n[[ack]]\ncell = \"x\"\nmetric = \"*\"\ndate = \"2026-01-01\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("entry 3"), "{e}");
    }

    #[test]
    fn dates() {
        assert!(valid_date("2024-02-29"));
        assert!(!valid_date("2023-02-29"));
        assert!(!valid_date("2026-13-01"));
        assert!(!valid_date("2026-1-01"));
        assert!(!valid_date("2026-01-0a"));
        assert!(!valid_date("2026/01/01"));
    }
}
