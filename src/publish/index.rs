//! The site's `index.html`: every sweep (a report with summary.json beside it) with its mode,
//! model, device, date, verdict, gate and cell counts; then the other pages (READMEs, notes).
//! Values from summary.json are only displayed, HTML-escaped by the template.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The fields of summary.json the index shows. Read leniently (unknown fields ignored, most
/// fields optional) so summaries of older or newer schema versions are still listed.
#[derive(Debug, Deserialize)]
pub struct SummaryHead {
    pub mode: String,
    pub model: Option<String>,
    pub device: Option<String>,
    pub backend: Option<String>,
    pub generated_at: Option<String>,
    #[serde(default)]
    pub cells: Vec<serde::de::IgnoredAny>,
    pub overall: OverallHead,
}

#[derive(Debug, Deserialize)]
pub struct OverallHead {
    pub verdict: String,
    pub gate: Option<String>,
    #[serde(default)]
    pub gate_passed: bool,
    #[serde(default)]
    pub counts: BTreeMap<String, usize>,
}

/// Reads a summary.json; the error names the file.
pub fn read_summary(path: &Path) -> Result<SummaryHead, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a tracecheck summary.json: {e}", path.display()))
}

#[derive(Debug, Serialize)]
pub struct SweepRow {
    pub url: String,
    pub path: String,
    pub summary_url: Option<String>,
    /// Why summary.json could not be read (the page is still published).
    pub error: Option<String>,
    pub mode: String,
    pub model: String,
    pub device: String,
    pub backend: String,
    pub date: String,
    pub verdict: String,
    pub verdict_class: &'static str,
    pub gate: String,
    pub gate_class: Option<&'static str>,
    pub cells: String,
    /// For ordering: newest first.
    #[serde(skip)]
    pub generated_at: String,
}

#[derive(Debug, Serialize)]
pub struct PageRow {
    pub url: String,
    pub path: String,
    pub title: String,
}

#[derive(Debug, Serialize)]
pub struct BrokenRow {
    pub path: String,
    pub error: String,
}

fn verdict_class(v: &str) -> &'static str {
    match v {
        "PASS_EQUIV" | "OK" => "pass",
        v if v.starts_with("SKIPPED") => "skip",
        _ => "fail",
    }
}

/// `2026-11-21T23:22:37Z` → `2026-11-21 23:22`; anything else as it is.
fn date(generated_at: &str) -> String {
    match (generated_at.get(..10), generated_at.get(11..16)) {
        (Some(d), Some(t)) if generated_at.as_bytes().get(10) == Some(&b'T') => format!("{d} {t}"),
        _ => generated_at.to_string(),
    }
}

const DASH: &str = "—";

impl SweepRow {
    pub fn new(url: String, path: String, summary_url: Option<String>, s: &SummaryHead) -> Self {
        let o = &s.overall;
        let (gate, gate_class) = match &o.gate {
            Some(g) if o.gate_passed => (format!("{g} passed"), Some("pass")),
            Some(g) => (format!("{g} FAILED"), Some("fail")),
            None => (DASH.to_string(), None),
        };
        let counts: Vec<String> = o.counts.iter().map(|(k, v)| format!("{k} × {v}")).collect();
        let or_dash = |x: &Option<String>| x.clone().unwrap_or_else(|| DASH.to_string());
        SweepRow {
            url,
            path,
            summary_url,
            error: None,
            mode: s.mode.clone(),
            model: or_dash(&s.model),
            device: or_dash(&s.device),
            backend: s.backend.clone().unwrap_or_default(),
            date: s
                .generated_at
                .as_deref()
                .map_or_else(|| DASH.to_string(), date),
            verdict: o.verdict.clone(),
            verdict_class: verdict_class(&o.verdict),
            gate,
            gate_class,
            cells: format!("{} ({})", s.cells.len(), counts.join(", ")),
            generated_at: s.generated_at.clone().unwrap_or_default(),
        }
    }

    /// A sweep whose summary.json could not be read: listed, linked, with the reason.
    pub fn unreadable(url: String, path: String, error: String) -> Self {
        SweepRow {
            url,
            path,
            summary_url: None,
            error: Some(error),
            mode: String::new(),
            model: String::new(),
            device: String::new(),
            backend: String::new(),
            date: String::new(),
            verdict: String::new(),
            verdict_class: "fail",
            gate: String::new(),
            gate_class: None,
            cells: String::new(),
            generated_at: String::new(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct IndexView {
    pub title: String,
    pub tool_version: &'static str,
    pub css: &'static str,
    pub sweeps: Vec<SweepRow>,
    pub pages: Vec<PageRow>,
    pub broken: Vec<BrokenRow>,
}

impl IndexView {
    /// Newest sweeps first (then by path); pages by path.
    pub fn sort(&mut self) {
        self.sweeps.sort_by(|a, b| {
            b.generated_at
                .cmp(&a.generated_at)
                .then_with(|| a.path.cmp(&b.path))
        });
        self.pages.sort_by(|a, b| a.path.cmp(&b.path));
        self.broken.sort_by(|a, b| a.path.cmp(&b.path));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_head_reads_the_repo_reports_and_tolerates_extra_fields() {
        let s: SummaryHead = serde_json::from_str(
            r#"{"mode":"b3_81","model":"m","device":"<script>x</script>","backend":"cpu",
                "generated_at":"2026-11-21T23:22:37Z","cells":[{},{}],"future_field":1,
                "overall":{"verdict":"FAIL_EQUIV","gate":"PASS_EQUIV","gate_passed":false,
                "counts":{"FAIL_EQUIV":1,"PASS_EQUIV":1},"regressions":[]}}"#,
        )
        .unwrap();
        let row = SweepRow::new("a/report.html".into(), "a".into(), None, &s);
        assert_eq!(row.date, "2026-11-21 23:22");
        assert_eq!(row.gate, "PASS_EQUIV FAILED");
        assert_eq!(row.verdict_class, "fail");
        assert_eq!(row.cells, "2 (FAIL_EQUIV × 1, PASS_EQUIV × 1)");
        // Escaping is the template's job: the row keeps the text as it is.
        assert_eq!(row.device, "<script>x</script>");
        assert!(read_summary(Path::new("/nonexistent/summary.json"))
            .unwrap_err()
            .contains("/nonexistent/summary.json"));
    }
}
