//! The "Regressions vs prior runs" section: every metric against the history, the changes
//! first, acknowledged changes, numeric drift against the last accepted run, and the record.

use serde::Serialize;

use crate::report::format::{self, md_cell};
use crate::summary::{HistorySummary, MetricComparison, NumericsDrift, Summary};

#[derive(Debug, Serialize)]
pub(crate) struct HistoryView {
    pub dir: String,
    pub baseline: String,
    pub prior_runs: usize,
    /// `REGRESSED × 1, WITHIN_NOISE × 40`.
    pub counts: String,
    pub regressions: usize,
    /// The threshold and band rule in words.
    pub rule: String,
    /// Metrics whose verdict is a change (regressions, improvements, status changes).
    pub changes: Vec<HistoryRow>,
    /// Every metric comparison.
    pub rows: Vec<HistoryRow>,
    pub acknowledged: Vec<AckRow>,
    pub ack_file: Option<String>,
    pub numerics: Vec<NumericsRow>,
    /// "Recorded as run … (accepted: …)."
    pub recorded: String,
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct HistoryRow {
    pub cell: String,
    pub metric: String,
    pub baseline: String,
    pub new: String,
    pub change: String,
    pub band: String,
    /// The verdict word, bold when it fails the run, marked when acknowledged.
    pub verdict: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct AckRow {
    pub cell: String,
    pub metric: String,
    pub verdict: String,
    pub reason: String,
    pub date: String,
    pub entry: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct NumericsRow {
    pub cell: String,
    pub against: String,
    pub rows: String,
    pub bit_exact: String,
    pub max_abs: String,
    pub top1: String,
    pub first_divergent: String,
    pub verdict: String,
    pub reasons: String,
}

const DASH: &str = "—";

fn value(x: f64, unit: &str) -> String {
    let n = if unit == "s" {
        format::secs(x)
    } else {
        format::sig(x, 4)
    };
    if unit.is_empty() {
        n
    } else {
        format!("{n} {unit}")
    }
}

fn verdict_word(v: crate::summary::RegressionVerdict, acknowledged: bool) -> String {
    if acknowledged {
        format!("{v} (acknowledged)")
    } else if v.is_failure() {
        format!("**{v}**")
    } else {
        v.to_string()
    }
}

fn row(c: &MetricComparison) -> HistoryRow {
    let metric = crate::history::metrics::label_of(&c.metric).to_string();
    if c.metric == "status" {
        return HistoryRow {
            cell: c.cell.clone(),
            metric,
            baseline: c.baseline_status.clone().unwrap_or_else(|| DASH.into()),
            new: c.new_status.clone().unwrap_or_else(|| DASH.into()),
            change: DASH.into(),
            band: DASH.into(),
            verdict: verdict_word(c.verdict, c.acknowledged),
        };
    }
    HistoryRow {
        cell: c.cell.clone(),
        metric,
        baseline: c
            .baseline
            .map_or_else(|| DASH.into(), |b| value(b, &c.unit)),
        new: c.new.map_or_else(|| DASH.into(), |n| value(n, &c.unit)),
        change: c
            .change
            .map_or_else(|| DASH.into(), |x| format!("{:+.1} %", x * 100.0)),
        band: c.band.map_or_else(
            || DASH.into(),
            |(lo, hi)| {
                let n = |x: f64| {
                    if c.unit == "s" {
                        format::secs(x)
                    } else {
                        format::sig(x, 4)
                    }
                };
                format!(
                    "{}–{}{}",
                    n(lo),
                    n(hi),
                    if c.band_from.as_deref() == Some("spread") {
                        " (spread)"
                    } else {
                        ""
                    }
                )
            },
        ),
        verdict: verdict_word(c.verdict, c.acknowledged),
    }
}

fn numerics_row(d: &NumericsDrift) -> NumericsRow {
    let p = &d.drift;
    NumericsRow {
        cell: d.cell.clone(),
        against: d.against_run.clone(),
        rows: p.rows_compared.to_string(),
        bit_exact: if p.bit_exact { "yes" } else { "no" }.into(),
        max_abs: format::diff6(p.max_abs_diff),
        top1: format::ratio4(p.top1_agreement),
        first_divergent: p
            .first_divergent_position
            .map_or_else(|| DASH.into(), |x| x.to_string()),
        verdict: verdict_word(d.verdict, d.acknowledged),
        reasons: md_cell(&d.reasons.join("; ")),
    }
}

fn rule(h: &HistorySummary) -> String {
    let pct = |t: f64| format!("{} %", format::short(t * 100.0).trim_end_matches(".0"));
    let special: Vec<String> = h
        .thresholds
        .iter()
        .filter(|(_, t)| **t != h.threshold)
        .map(|(m, t)| format!("{m} {}", pct(*t)))
        .collect();
    format!(
        "A change counts beyond {}{} of the baseline and, from {} accepted runs on, also beyond {} × their median absolute deviation (the band is the wider of the two).",
        pct(h.threshold),
        if special.is_empty() {
            String::new()
        } else {
            format!(" ({})", special.join(", "))
        },
        h.min_runs_for_band,
        format::short(h.noise_mads),
    )
}

pub(super) fn build(summary: &Summary) -> Option<HistoryView> {
    let h = summary.history.as_ref()?;
    let rows: Vec<HistoryRow> = h.comparisons.iter().map(row).collect();
    let changes = h
        .comparisons
        .iter()
        .filter(|c| c.verdict.is_change())
        .map(row)
        .collect();
    Some(HistoryView {
        dir: h.dir.clone(),
        baseline: h.baseline.clone(),
        prior_runs: h.prior_accepted_runs,
        counts: h
            .counts
            .iter()
            .map(|(k, n)| format!("{k} × {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        regressions: h.regressions,
        rule: rule(h),
        changes,
        rows,
        acknowledged: h
            .acknowledged
            .iter()
            .map(|a| AckRow {
                cell: a.cell.clone(),
                metric: crate::history::metrics::label_of(&a.metric).to_string(),
                verdict: a.verdict.to_string(),
                reason: md_cell(&a.reason),
                date: a.date.clone(),
                entry: format!("{} entry {}", a.file, a.entry),
            })
            .collect(),
        ack_file: h.acknowledgements_file.clone(),
        numerics: h.numerics.iter().map(numerics_row).collect(),
        recorded: match &h.recorded {
            Some(r) => format!(
                "Recorded as run `{}`: {} ({}).",
                r.run_id,
                if r.accepted {
                    "accepted — later runs compare with it"
                } else {
                    "**not accepted** — later runs do not compare with it unless `tracecheck history accept` accepts it"
                },
                r.decision
            ),
            None => "This run was not recorded in the history.".into(),
        },
        notes: h.notes.clone(),
    })
}
