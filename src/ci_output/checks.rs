//! The checks an analysis made, flattened into one list for CI outputs: a cell's verdict, each
//! of its comparisons, and sweep-level problems. The JUnit writer renders exactly this list, so
//! a new kind of check (e.g. regressions against prior runs) only has to be appended here.

use crate::history::RegressionVerdict;
use crate::report::format::{diff6, kl, ratio4, NA};
use crate::summary::{CellSummary, PairSummary, Summary, Verdict};

/// One pass/fail statement about a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// What was checked: the cell key, or the mode for sweep-level checks.
    pub subject: String,
    /// Which check: `verdict`, `prefill_vs_decode`, `batch4_vs_batch1`, `golden_drift`, …
    pub name: String,
    /// Seconds spent (the cell's wall time for its verdict; 0 for derived checks).
    pub time_s: f64,
    pub outcome: CheckOutcome,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckOutcome {
    Passed,
    /// `kind` is a short machine-readable cause (a verdict word); `message` one line;
    /// `details` the numbers, one per line.
    Failed {
        kind: String,
        message: String,
        details: String,
    },
    /// Not passed, yet let through by the gate (`--allow`, or the `--gate` verdict itself).
    Skipped {
        message: String,
    },
}

impl CheckOutcome {
    pub fn is_failed(&self) -> bool {
        matches!(self, CheckOutcome::Failed { .. })
    }
    pub fn is_skipped(&self) -> bool {
        matches!(self, CheckOutcome::Skipped { .. })
    }
}

/// How the gate treats a verdict. CI outputs judge every cell as `--gate PASS_EQUIV` would
/// (or the run's own `--gate`), even when the analysis ran without a gate: a FAIL_EQUIV cell is
/// a failed check whether or not it fails the job.
enum Judgement {
    Passed,
    LetThrough(String),
    Failed,
}

fn judge(summary: &Summary, v: Verdict) -> Judgement {
    if v.passed() {
        return Judgement::Passed;
    }
    if summary.allow.iter().any(|a| a == v.as_str()) {
        return Judgement::LetThrough(format!("{v} allowed by --allow"));
    }
    if summary.overall.gate.as_deref() == Some(v.as_str()) {
        return Judgement::LetThrough(format!("{v} is the --gate verdict"));
    }
    Judgement::Failed
}

/// The test name of a comparison: `prefill_vs_decode`, `batch4_vs_batch1`, `golden_drift`.
fn comparison_name(cell: &CellSummary, p: &PairSummary) -> String {
    match p.kind.as_str() {
        "batch_vs_batch1" => format!("batch{}_vs_batch1", cell.batch),
        "golden" => "golden_drift".to_string(),
        other => other.to_string(),
    }
}

fn pos(p: Option<usize>) -> String {
    p.map_or_else(|| NA.to_string(), |p| p.to_string())
}

/// The numbers of one comparison, one `name: value` per line.
pub fn comparison_details(p: &PairSummary) -> String {
    let mut lines = vec![
        format!("reference: {}", p.reference),
        format!(
            "rows compared: {} (excluded after a token divergence: {})",
            p.rows_compared, p.rows_excluded
        ),
        format!("bit-exact: {}", p.bit_exact),
        format!("max |Δ|: {}", diff6(p.max_abs_diff)),
        format!("mean |Δ|: {}", diff6(p.mean_abs_diff)),
        format!("top-1 agreement: {}", ratio4(p.top1_agreement)),
        format!("top-5 overlap: {}", ratio4(p.top5_overlap)),
        format!("KL mean: {}, max: {}", kl(p.kl_mean), kl(p.kl_max)),
        format!(
            "first divergent position: {}",
            pos(p.first_divergent_position)
        ),
        format!(
            "token divergence position: {}",
            pos(p.token_divergence_position)
        ),
        format!(
            "argmax flips: {} ({} not near-ties)",
            p.flips, p.flips_not_near_tie
        ),
    ];
    if let Some(n) = &p.nonfinite {
        lines.push(format!("non-finite: {n}"));
    }
    for r in &p.reasons {
        lines.push(format!("reason: {r}"));
    }
    lines.join("\n")
}

/// The cell's own numbers, for its verdict check.
fn cell_details(cell: &CellSummary) -> String {
    let mut lines = vec![format!("status: {}", cell.status)];
    for r in &cell.reasons {
        lines.push(format!("reason: {r}"));
    }
    for p in &cell.comparisons {
        lines.push(format!(
            "{}: max |Δ| {}, top-1 {}, first divergent position {}",
            p.kind,
            diff6(p.max_abs_diff),
            ratio4(p.top1_agreement),
            pos(p.first_divergent_position)
        ));
    }
    if let Some(mb) = cell.peak_mb {
        lines.push(format!("peak memory: {mb:.0} MB"));
    }
    for n in &cell.notes {
        lines.push(format!("note: {n}"));
    }
    lines.join("\n")
}

fn one_line(reasons: &[String], fallback: &str) -> String {
    if reasons.is_empty() {
        fallback.to_string()
    } else {
        reasons.join("; ")
    }
}

fn cell_checks(summary: &Summary, cell: &CellSummary, out: &mut Vec<Check>) {
    let judged = judge(summary, cell.verdict);
    let outcome = match &judged {
        Judgement::Passed => CheckOutcome::Passed,
        Judgement::LetThrough(why) => CheckOutcome::Skipped {
            message: format!("{why}: {}", one_line(&cell.reasons, &cell.status)),
        },
        Judgement::Failed => CheckOutcome::Failed {
            kind: cell.verdict.to_string(),
            message: format!(
                "{}: {}",
                cell.verdict,
                one_line(&cell.reasons, "outside the gate")
            ),
            details: cell_details(cell),
        },
    };
    out.push(Check {
        subject: cell.key.clone(),
        name: "verdict".to_string(),
        time_s: cell
            .wall_s
            .filter(|t| t.is_finite() && *t >= 0.0)
            .unwrap_or(0.0),
        outcome,
    });
    for p in &cell.comparisons {
        let outcome = if p.pass {
            CheckOutcome::Passed
        } else {
            match &judged {
                Judgement::LetThrough(why) => CheckOutcome::Skipped {
                    message: format!("{why}: {}", one_line(&p.reasons, "did not pass")),
                },
                // A failed comparison in a cell that passed cannot happen; keep it visible.
                Judgement::Passed | Judgement::Failed => CheckOutcome::Failed {
                    kind: Verdict::FailEquiv.to_string(),
                    message: format!(
                        "{} (max |Δ| {}, top-1 {}, first divergent position {})",
                        one_line(&p.reasons, "did not pass"),
                        diff6(p.max_abs_diff),
                        ratio4(p.top1_agreement),
                        pos(p.first_divergent_position)
                    ),
                    details: comparison_details(p),
                },
            }
        };
        out.push(Check {
            subject: cell.key.clone(),
            name: comparison_name(cell, p),
            time_s: 0.0,
            outcome,
        });
    }
}

/// Problems of the sweep that no cell carries (e.g. a golden cell missing from the traces):
/// the others start with their cell's key.
pub fn sweep_problems(summary: &Summary) -> Vec<&str> {
    summary
        .overall
        .problems
        .iter()
        .filter(|p| {
            !summary.cells.iter().any(|c| {
                p.strip_prefix(c.key.as_str())
                    .is_some_and(|r| r.starts_with(':'))
            })
        })
        .map(String::as_str)
        .collect()
}

/// Every check of a summary, cell by cell in the summary's order, then the sweep-level ones.
/// `--history`: one check per metric comparison and per numerics comparison; REGRESSED and
/// NEW_FAILURE fail unless acknowledged (then skipped, with the acknowledgement's word).
fn history_checks(summary: &Summary, out: &mut Vec<Check>) {
    let Some(h) = &summary.history else {
        return;
    };
    let outcome = |v: RegressionVerdict, acknowledged: bool, message: String, details: String| {
        if !v.is_failure() {
            CheckOutcome::Passed
        } else if acknowledged {
            CheckOutcome::Skipped {
                message: format!("{v} acknowledged: {message}"),
            }
        } else {
            CheckOutcome::Failed {
                kind: v.as_str().to_string(),
                message,
                details,
            }
        }
    };
    let num = |x: Option<f64>| x.map_or_else(|| NA.to_string(), |v| format!("{v:.6}"));
    for c in &h.comparisons {
        let message = match (&c.baseline_status, &c.new_status) {
            (Some(old), Some(new)) => format!("{}: {old} → {new}", c.metric),
            _ => format!(
                "{}: baseline {} → new {} {} ({})",
                c.metric,
                num(c.baseline),
                num(c.new),
                c.unit,
                c.change
                    .map_or_else(|| NA.to_string(), |x| format!("{:+.1} %", 100.0 * x))
            ),
        };
        let details = format!(
            "baseline: {} ({} accepted runs, {})\nnew: {}\nband: {}\ndirection: {}",
            num(c.baseline),
            c.history_runs,
            h.baseline,
            num(c.new),
            c.band
                .map_or_else(|| NA.to_string(), |(lo, hi)| format!("[{lo:.6}, {hi:.6}]")),
            c.direction
        );
        out.push(Check {
            subject: c.cell.clone(),
            name: format!("history_{}", c.metric),
            time_s: 0.0,
            outcome: outcome(c.verdict, c.acknowledged, message, details),
        });
    }
    for d in &h.numerics {
        let message = format!(
            "numerics vs run {}: {}",
            d.against_run,
            one_line(&d.reasons, d.verdict.as_str())
        );
        out.push(Check {
            subject: d.cell.clone(),
            name: "history_numerics".to_string(),
            time_s: 0.0,
            outcome: outcome(
                d.verdict,
                d.acknowledged,
                message,
                comparison_details(&d.drift),
            ),
        });
    }
}

pub fn checks(summary: &Summary) -> Vec<Check> {
    let mut out = Vec::new();
    for cell in &summary.cells {
        cell_checks(summary, cell, &mut out);
    }
    history_checks(summary, &mut out);
    let problems = sweep_problems(summary);
    // A golden set makes "every golden cell was compared" a check of its own.
    if summary.golden_dir.is_some() || !problems.is_empty() {
        let outcome = if problems.is_empty() {
            CheckOutcome::Passed
        } else {
            CheckOutcome::Failed {
                kind: "SWEEP".to_string(),
                message: problems.join("; "),
                details: problems.join("\n"),
            }
        };
        out.push(Check {
            subject: summary.mode.clone(),
            name: "sweep".to_string(),
            time_s: 0.0,
            outcome,
        });
    }
    out
}
