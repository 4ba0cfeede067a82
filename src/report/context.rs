//! What the caller tells the renderer beyond the Summary, and what the renderer hands back.

use std::path::PathBuf;

/// Inputs to a report that are not analysis results.
#[derive(Debug, Clone, Default)]
pub struct ReportContext {
    /// Replaces the mode's heading text (the part after `# `).
    pub title: Option<String>,
    /// Shown in "## Results (<date>)"; empty → the date part of `Summary::generated_at`.
    pub date: String,
    /// The run command(s) as argv lists; empty → `Summary::run_argv`.
    pub run_commands: Vec<Vec<String>>,
    /// The analyze command as an argv list; empty → `Summary::analyze_argv`.
    pub analyze_command: Vec<String>,
    /// A directory whose `*.md.j2` files replace the built-in templates of the same name.
    pub templates_dir: Option<PathBuf>,
}

/// One PNG written beside the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartFile {
    /// Chart id, e.g. "throughput"; the file is `<stem>_<name>.png`.
    pub name: String,
    pub path: PathBuf,
}

/// What `render` wrote.
#[derive(Debug, Clone)]
pub struct RenderedReport {
    pub markdown: PathBuf,
    pub charts: Vec<ChartFile>,
    /// Name of the template used (e.g. "b3_81.md.j2").
    pub template: String,
}
