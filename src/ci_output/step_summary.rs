//! The GitHub Actions job summary: when `$GITHUB_STEP_SUMMARY` names a file, `analyze` appends
//! a compact Markdown summary to it (GitHub's append semantics: every step adds to the job's
//! page). GitHub refuses a step summary of 1 MiB or more, so the text is cut to fit what the
//! file already holds: rows are dropped from the end (failures come first) with a note saying
//! how many are missing.

use std::io::Write;
use std::path::Path;

use super::checks::sweep_problems;
use crate::report::format::{diff6, fixed, mb, md_code, md_text, opt, ratio4};
use crate::summary::{CellSummary, Summary};

/// GitHub's limit for one step's summary file; the file must stay strictly below it.
pub const GITHUB_LIMIT: usize = 1024 * 1024;

/// Room kept for the truncation note.
const NOTE_RESERVE: usize = 256;

/// A reason longer than this is cut: one runaway message must not crowd out the table.
const MAX_REASON: usize = 600;

#[derive(Debug, thiserror::Error)]
pub enum StepSummaryError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: already {size} bytes, no room left under GitHub's 1 MiB step summary limit")]
    Full { path: String, size: u64 },
}

/// Lines appended while they fit in `limit` bytes; once one does not, every later one is only
/// counted, so what is shown is always a prefix of what was meant.
struct Budget {
    out: String,
    limit: usize,
    dropped: usize,
}

impl Budget {
    fn push(&mut self, line: &str) {
        if self.dropped == 0 && self.out.len() + line.len() + 1 + NOTE_RESERVE <= self.limit {
            self.out.push_str(line);
            self.out.push('\n');
        } else {
            self.dropped += 1;
        }
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn cell_row(c: &CellSummary) -> String {
    let max_diff = c
        .comparisons
        .iter()
        .map(|p| p.max_abs_diff)
        .reduce(f64::max);
    let top1 = c
        .comparisons
        .iter()
        .map(|p| p.top1_agreement)
        .reduce(f64::min);
    format!(
        "| {} | {} | {} | {} | {} | {} |",
        md_code(&c.key),
        c.verdict,
        opt(max_diff, diff6),
        opt(top1, ratio4),
        opt(c.decode_tok_s, |x| fixed(x, 1)),
        opt(c.peak_mb, mb),
    )
}

/// The Markdown summary, at most `limit` bytes (the whole header even when that is more).
pub fn render(summary: &Summary, limit: usize) -> String {
    let o = &summary.overall;
    let icon = if o.verdict.passed() && (o.gate.is_none() || o.gate_passed) {
        "✅"
    } else {
        "❌"
    };
    let counts: Vec<String> = o.counts.iter().map(|(k, v)| format!("{k} × {v}")).collect();
    let gate = match &o.gate {
        Some(g) => format!(
            "gate {} **{}**",
            md_code(g),
            if o.gate_passed { "passed" } else { "FAILED" }
        ),
        None => "no gate".to_string(),
    };
    let mut head = format!(
        "### {icon} tracecheck {} — {}\n\n{} cells ({}), policy {}, {gate}, exit code {}.\n",
        md_code(&summary.mode),
        o.verdict,
        summary.cells.len(),
        counts.join(", "),
        md_code(&summary.policy),
        o.exit_code,
    );
    let mut about: Vec<String> = [
        ("Model", summary.model.as_deref()),
        ("Device", summary.device.as_deref()),
        ("Backend", summary.backend.as_deref()),
    ]
    .iter()
    .filter_map(|(k, v)| v.map(|v| format!("{k}: {}", md_text(&cut(v, MAX_REASON)))))
    .collect();
    about.push(format!(
        "Traces: {}",
        md_code(&cut(&summary.traces_dir, MAX_REASON))
    ));
    head.push_str(&format!("{}.\n", about.join(" · ")));

    let mut b = Budget {
        out: head,
        limit,
        dropped: 0,
    };
    // Failures first: they are why anyone opens the summary.
    let mut cells: Vec<&CellSummary> = summary.cells.iter().collect();
    cells.sort_by_key(|c| c.verdict.passed());
    let failing: Vec<&&CellSummary> = cells.iter().filter(|c| !c.verdict.passed()).collect();
    let problems = sweep_problems(summary);
    if !failing.is_empty() || !problems.is_empty() {
        b.push("\n**Failures**\n");
        for c in &failing {
            let why = if c.reasons.is_empty() {
                String::new()
            } else {
                format!(" — {}", md_text(&cut(&c.reasons.join("; "), MAX_REASON)))
            };
            b.push(&format!("- {}: {}{why}", md_code(&c.key), c.verdict));
        }
        for p in problems {
            b.push(&format!("- {}", md_text(&cut(p, MAX_REASON))));
        }
    }
    b.push("");
    if cells.is_empty() {
        b.push("No cells were analysed.");
    } else {
        b.push("| Cell | Verdict | Max \\|Δ\\| | Top-1 | Decode tok/s | Peak MB |");
        b.push("|---|---|---|---|---|---|");
    }
    for c in &cells {
        b.push(&cell_row(c));
    }
    let mut out = b.out;
    if b.dropped > 0 {
        out.push_str(&format!(
            "\n_… {} more lines not shown: GitHub keeps step summaries under 1 MiB. The full \
             results are in summary.json and the report._\n",
            b.dropped
        ));
    }
    out
}

/// Appends the summary to `path`, cut to keep the file under [`GITHUB_LIMIT`]. Returns the
/// bytes written.
pub fn append(path: &Path, summary: &Summary) -> Result<usize, StepSummaryError> {
    let name = path.display().to_string();
    let io = |source| StepSummaryError::Io {
        path: name.clone(),
        source,
    };
    let size = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(io(e)),
    };
    // A blank line between steps' sections; "- 1" keeps the file strictly below the limit.
    let lead = if size > 0 { "\n" } else { "" };
    let room = (GITHUB_LIMIT as u64 - 1).saturating_sub(size + lead.len() as u64) as usize;
    let text = render(summary, room);
    if text.len() > room {
        return Err(StepSummaryError::Full { path: name, size });
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    let all = format!("{lead}{text}");
    f.write_all(all.as_bytes()).map_err(io)?;
    Ok(all.len())
}
