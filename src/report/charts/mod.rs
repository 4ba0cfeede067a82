//! PNG charts beside the report: which charts a Summary has data for, and writing them.

mod batch;
mod font;
mod logit_diff;
mod memory;
mod prefill;
mod style;
mod trend;

use std::path::Path;

use serde::Serialize;

use super::context::ChartFile;
use super::error::ReportError;
use super::write::write_atomic;
use crate::summary::Summary;

/// A chart as the template embeds it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ChartView {
    pub name: String,
    /// Relative to the Markdown file (same directory).
    pub file: String,
    pub alt: String,
    pub caption: String,
}

/// A chart with data: its id, its words, and the drawing.
pub(crate) struct Chart {
    pub name: &'static str,
    pub alt: String,
    pub caption: String,
    pub plot: style::LineChart,
}

/// Every chart the Summary has data for, in report order.
pub(crate) fn plan(summary: &Summary) -> Vec<Chart> {
    let mut charts: Vec<Chart> = [
        batch::throughput(summary),
        batch::vram(summary),
        prefill::scaling(summary),
        memory::memory(summary),
        logit_diff::logit_diff(summary),
    ]
    .into_iter()
    .flatten()
    .collect();
    charts.extend(trend::trends(summary));
    charts
}

/// How the template links each planned chart (`<stem>_<name>.png`, relative).
pub(crate) fn views(charts: &[Chart], stem: &str) -> Vec<ChartView> {
    charts
        .iter()
        .map(|c| ChartView {
            name: c.name.to_string(),
            file: file_name(stem, c.name),
            alt: c.alt.clone(),
            caption: c.caption.clone(),
        })
        .collect()
}

fn file_name(stem: &str, name: &str) -> String {
    format!("{stem}_{name}.png")
}

/// Draws each planned chart and writes it to `<dir>/<stem>_<name>.png` atomically.
pub(crate) fn write_all(
    charts: &[Chart],
    dir: &Path,
    stem: &str,
) -> Result<Vec<ChartFile>, ReportError> {
    if charts.is_empty() {
        return Ok(Vec::new());
    }
    font::ensure_registered()?;
    let mut files = Vec::new();
    for chart in charts {
        let path = dir.join(file_name(stem, chart.name));
        let bytes = chart.plot.png().map_err(|message| ReportError::Chart {
            path: path.clone(),
            message,
        })?;
        write_atomic(&path, &bytes)?;
        files.push(ChartFile {
            name: chart.name.to_string(),
            path,
        });
    }
    Ok(files)
}
