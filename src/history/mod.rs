//! The run history: `analyze --history DIR` compares every cell's speed, memory, status and
//! numerics with prior runs of the same mode, cell, model and device, gives each metric a
//! [`RegressionVerdict`], fails the run on regressions no acknowledgement covers, and records
//! the run (accepted when it passes) for the next one. `tracecheck history` lists runs and
//! accepts, rejects or tags them.
//!
//! Layers, each usable without the next:
//! - [`verdict`]: the statistics — threshold and MAD band, directions, status transitions
//!   (pure, always built: the summary's types use it).
//! - [`compare`] over [`model::History`]: which prior values a key is compared with (pure).
//! - [`ack`]: the acknowledgements file ([`ack::AckSet`]).
//! - [`store`]: `history.parquet` through polars; [`numerics`]: the top-16 records.
//! - [`session`]: what `analyze` calls ([`prepare`], then [`session::Prepared::finish`]);
//!   [`cli`]: `tracecheck history`.
//!
//! Everything but [`verdict`] and the argument types is behind the `history` cargo feature (a
//! default one): a GPU-host build without it stays small and says so when `--history` is used.
//! On-disk layout and CI usage: `docs/history.md`.

#[cfg(feature = "history")]
pub mod ack;
pub mod cli;
#[cfg(feature = "history")]
pub mod compare;
pub mod metrics;
#[cfg(feature = "history")]
pub mod model;
#[cfg(feature = "history")]
pub mod numerics;
#[cfg(feature = "history")]
pub mod session;
#[cfg(feature = "history")]
pub mod store;
pub mod verdict;

use std::path::PathBuf;

pub use verdict::RegressionVerdict;

use crate::analyze::load::Loaded;
use crate::metrics::Thresholds;
use crate::summary::{HistorySummary, Summary};

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{0} needs the `history` feature, which this tracecheck was built without (build with default features: cargo build --release)")]
    NotBuilt(&'static str),
    /// A history file that cannot be read; it is left exactly as it was.
    #[error("{}: {what}; the file was left as it is", .path.display())]
    Corrupt { path: PathBuf, what: String },
    #[error("{}: {what}", .path.display())]
    Io { path: PathBuf, what: String },
    #[cfg(feature = "history")]
    #[error(transparent)]
    Ack(#[from] ack::AckError),
    #[cfg(feature = "history")]
    #[error("{}: {source}", .dir.display())]
    Lookup {
        dir: PathBuf,
        source: model::RunLookupError,
    },
    /// Bad flags.
    #[error("{0}")]
    Usage(String),
}

/// `analyze`'s history flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HistoryArgs {
    /// A run history directory (kept between CI runs): compare every cell with prior runs of
    /// the same mode, cell, model and device, and record this run (accepted when it passes).
    #[arg(long, value_name = "DIR")]
    pub history: Option<PathBuf>,
    /// Compare with the run tagged NAME (`tracecheck history tag`) instead of the recent
    /// accepted runs.
    #[arg(long, value_name = "NAME")]
    pub baseline: Option<String>,
    /// Accepted runs whose median is the baseline.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub history_window: usize,
    /// Relative change that counts (default 5%): `7%` or `0.07` for every metric,
    /// `METRIC=PCT` for one (comma-separated, e.g. `5%,peak_mb=2%`).
    #[arg(long, value_name = "SPEC", value_delimiter = ',')]
    pub regress_threshold: Vec<String>,
    /// Acknowledged changes (TOML; default: reports/acknowledged.toml when it exists).
    #[arg(long, value_name = "PATH")]
    pub acknowledged: Option<PathBuf>,
    /// Compare only; do not add this run to the history.
    #[arg(long)]
    pub no_record: bool,
}

impl HistoryArgs {
    /// History flags given without `--history`.
    fn orphan_flags(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.baseline.is_some() {
            v.push("--baseline");
        }
        if !self.regress_threshold.is_empty() {
            v.push("--regress-threshold");
        }
        if self.acknowledged.is_some() {
            v.push("--acknowledged");
        }
        if self.no_record {
            v.push("--no-record");
        }
        v
    }
}

/// Parses a relative threshold: `5%`, `5 %` or `0.05`.
pub fn parse_fraction(s: &str) -> Option<f64> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().ok()? / 100.0,
        None => t.parse::<f64>().ok()?,
    };
    (v.is_finite() && v >= 0.0).then_some(v)
}

/// `YYYYMMDDTHHMMSSZ-xxxxxx`, as [`session`] makes them.
pub fn looks_like_run_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 23
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[16] == b'-'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
        && b[17..].iter().all(|c| c.is_ascii_hexdigit())
}

#[cfg(feature = "history")]
pub use session::{prepare, Prepared};

/// Without the `history` feature nothing can be prepared.
#[cfg(not(feature = "history"))]
pub type Prepared = std::convert::Infallible;

/// Without the `history` feature: `--history` is an error (exit 2) saying so.
#[cfg(not(feature = "history"))]
pub fn prepare(a: &HistoryArgs) -> Result<Option<Prepared>, HistoryError> {
    if a.history.is_some() {
        return Err(HistoryError::NotBuilt("--history"));
    }
    match a.orphan_flags().first() {
        Some(f) => Err(HistoryError::Usage(format!("{f} needs --history DIR"))),
        None => Ok(None),
    }
}

/// The analysis being compared.
pub struct Input<'a> {
    /// Built without its history section.
    pub summary: &'a Summary,
    /// The cells' traces (numerics records and drift).
    pub traces: &'a [Loaded],
    /// The analysis policy's thresholds (numeric drift is judged by them).
    pub thresholds: Thresholds,
}

/// Compares and records an analysis when [`prepare`] found `--history`.
pub fn finish(
    prepared: Option<Prepared>,
    input: Input<'_>,
) -> Result<Option<HistorySummary>, HistoryError> {
    #[cfg(feature = "history")]
    {
        prepared.map(|p| p.finish(input)).transpose()
    }
    #[cfg(not(feature = "history"))]
    {
        let _ = input;
        match prepared {
            None => Ok(None),
            Some(never) => match never {},
        }
    }
}

/// Lines for the terminal: the comparison in one line, each change, the record.
pub fn terminal_lines(h: &HistorySummary) -> Vec<String> {
    use crate::report::format::sig;
    let counts: Vec<String> = h.counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let mut out = vec![format!(
        "history: {} prior accepted runs; baseline: {}; {}",
        h.prior_accepted_runs,
        h.baseline,
        counts.join(", ")
    )];
    for c in h.comparisons.iter().filter(|c| c.verdict.is_change()) {
        let what = match (c.baseline, c.new) {
            (Some(b), Some(n)) => format!(
                "{} → {} {}{}{}",
                sig(b, 4),
                sig(n, 4),
                c.unit,
                c.change
                    .map(|x| format!(" ({:+.1} %)", x * 100.0))
                    .unwrap_or_default(),
                c.band
                    .map(|(lo, hi)| format!(", band {}–{}", sig(lo, 4), sig(hi, 4)))
                    .unwrap_or_default()
            ),
            _ => format!(
                "{} → {}",
                c.baseline_status.as_deref().unwrap_or("?"),
                c.new_status.as_deref().unwrap_or("?")
            ),
        };
        out.push(format!(
            "  {:<12} {} {}: {what}{}",
            c.verdict.as_str(),
            c.cell,
            c.metric,
            if c.acknowledged {
                " (acknowledged)"
            } else {
                ""
            }
        ));
    }
    for d in h.numerics.iter().filter(|d| d.verdict.is_change()) {
        out.push(format!(
            "  {:<12} {} numerics: {}{}",
            d.verdict.as_str(),
            d.cell,
            d.reasons.join("; "),
            if d.acknowledged {
                " (acknowledged)"
            } else {
                ""
            }
        ));
    }
    for n in &h.notes {
        out.push(format!("  note: {n}"));
    }
    if h.regressions > 0 {
        out.push(format!(
            "history: FAILED — {} regression{} not acknowledged",
            h.regressions,
            if h.regressions == 1 { "" } else { "s" }
        ));
    }
    match &h.recorded {
        Some(r) => out.push(format!(
            "history: recorded run {} in {}: {} ({})",
            r.run_id,
            h.dir,
            if r.accepted {
                "accepted"
            } else {
                "NOT accepted"
            },
            r.decision
        )),
        None => out.push(format!("history: this run was not recorded in {}", h.dir)),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions() {
        assert_eq!(parse_fraction("5%"), Some(0.05));
        assert_eq!(parse_fraction(" 12.5 % "), Some(0.125));
        assert_eq!(parse_fraction("0.1"), Some(0.1));
        assert_eq!(parse_fraction("-1%"), None);
        assert_eq!(parse_fraction("fast"), None);
    }

    #[test]
    fn run_ids() {
        assert!(looks_like_run_id("20261122T002900Z-a1b2c3"));
        assert!(!looks_like_run_id("20261122T002900Z-a1b2cz"));
        assert!(!looks_like_run_id("latest"));
    }
}
