//! JUnit XML (`analyze --junit FILE`): one `<testsuite>` per analysed sweep, one `<testcase>`
//! per [`Check`] (classname = the cell key, name = the check), failures carrying the numbers.
//!
//! The layout is the one CI test reporters read (Jenkins, GitLab, GitHub test-report actions,
//! Python's junitparser): `testsuites > testsuite > testcase > failure|skipped`, with `tests`,
//! `failures`, `errors` (always 0: a cell that could not be analysed is a failure of its own
//! check), `skipped` and `time` counted on both levels.

use std::fmt::Write as _;

use super::checks::{checks, Check, CheckOutcome};
use crate::summary::Summary;

/// One `<testsuite>`: a sweep and its checks.
pub struct Suite {
    pub name: String,
    /// RFC 3339 (UTC), the analysis time.
    pub timestamp: String,
    pub properties: Vec<(String, String)>,
    pub checks: Vec<Check>,
}

impl Suite {
    pub fn from_summary(s: &Summary) -> Suite {
        let mut properties = vec![
            ("mode".to_string(), s.mode.clone()),
            ("traces_dir".to_string(), s.traces_dir.clone()),
            ("policy".to_string(), s.policy.clone()),
            ("overall_verdict".to_string(), s.overall.verdict.to_string()),
            ("tool_version".to_string(), s.tool_version.clone()),
        ];
        let optional = [
            ("gate", s.overall.gate.clone()),
            (
                "gate_passed",
                s.overall
                    .gate
                    .as_ref()
                    .map(|_| s.overall.gate_passed.to_string()),
            ),
            ("model", s.model.clone()),
            ("model_sha256", s.model_sha256.clone()),
            ("device", s.device.clone()),
            ("backend", s.backend.clone()),
            ("golden_dir", s.golden_dir.clone()),
        ];
        properties.extend(
            optional
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k.to_string(), v))),
        );
        Suite {
            name: format!("{} {}", s.mode, s.traces_dir),
            timestamp: s.generated_at.clone(),
            properties,
            checks: checks(s),
        }
    }

    fn failures(&self) -> usize {
        self.checks.iter().filter(|c| c.outcome.is_failed()).count()
    }
    fn skipped(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.outcome.is_skipped())
            .count()
    }
    fn time(&self) -> f64 {
        self.checks.iter().map(|c| c.time_s).sum()
    }
}

/// Text as XML character data. Characters XML 1.0 cannot hold at all (most C0 controls)
/// become visible `\u{..}` escapes rather than an unparseable file.
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' | '\t' | '\r' => out.push(c),
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Text as an attribute value: quotes escaped too, and line breaks and tabs as spaces (an XML
/// parser would turn them into spaces anyway; several JUnit readers reject `&#10;`).
pub fn escape_attr(s: &str) -> String {
    let one_line: String = s
        .chars()
        .map(|c| {
            if matches!(c, '\n' | '\r' | '\t') {
                ' '
            } else {
                c
            }
        })
        .collect();
    escape_text(&one_line)
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn secs(t: f64) -> String {
    format!("{:.3}", if t.is_finite() && t > 0.0 { t } else { 0.0 })
}

fn write_case(out: &mut String, c: &Check) {
    let _ = write!(
        out,
        "    <testcase name=\"{}\" classname=\"{}\" time=\"{}\"",
        escape_attr(&c.name),
        escape_attr(&c.subject),
        secs(c.time_s)
    );
    match &c.outcome {
        CheckOutcome::Passed => out.push_str("/>\n"),
        CheckOutcome::Skipped { message } => {
            let _ = writeln!(
                out,
                ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                escape_attr(message)
            );
        }
        CheckOutcome::Failed {
            kind,
            message,
            details,
        } => {
            let _ = writeln!(
                out,
                ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>",
                escape_attr(message),
                escape_attr(kind),
                escape_text(details)
            );
        }
    }
}

/// The whole document.
pub fn render(suites: &[Suite]) -> String {
    let tests: usize = suites.iter().map(|s| s.checks.len()).sum();
    let failures: usize = suites.iter().map(Suite::failures).sum();
    let skipped: usize = suites.iter().map(Suite::skipped).sum();
    let time: f64 = suites.iter().map(Suite::time).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"tracecheck\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{}\">",
        secs(time)
    );
    for s in suites {
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{}\" timestamp=\"{}\">",
            escape_attr(&s.name),
            s.checks.len(),
            s.failures(),
            s.skipped(),
            secs(s.time()),
            escape_attr(&s.timestamp)
        );
        if !s.properties.is_empty() {
            out.push_str("    <properties>\n");
            for (k, v) in &s.properties {
                let _ = writeln!(
                    out,
                    "      <property name=\"{}\" value=\"{}\"/>",
                    escape_attr(k),
                    escape_attr(v)
                );
            }
            out.push_str("    </properties>\n");
        }
        for c in &s.checks {
            write_case(&mut out, c);
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// The JUnit document of one analysis.
pub fn render_summary(summary: &Summary) -> String {
    render(&[Suite::from_summary(summary)])
}
