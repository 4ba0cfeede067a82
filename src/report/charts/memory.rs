//! Memory over time, one series per cell that has samples.

use super::style::{color, y_range_from_zero, LineChart, Series};
use super::Chart;
use crate::report::labels::cell_label;
use crate::summary::Summary;

/// More lines than this are unreadable in one legend; the caption says how many were left out.
const MAX_SERIES: usize = 10;

pub(super) fn memory(summary: &Summary) -> Option<Chart> {
    let cells: Vec<_> = summary
        .cells
        .iter()
        .filter(|c| !c.memory_series.is_empty())
        .collect();
    if cells.is_empty() {
        return None;
    }
    let shown = &cells[..cells.len().min(MAX_SERIES)];
    let t_max = shown
        .iter()
        .flat_map(|c| c.memory_series.iter().map(|p| p.0))
        .fold(0.0, f64::max);
    let series: Vec<Series> = shown
        .iter()
        .enumerate()
        .map(|(i, c)| Series {
            label: cell_label(c, &summary.cells),
            points: c.memory_series.clone(),
            color: color(i),
            dashed: false,
        })
        .collect();
    let source = cells
        .iter()
        .find_map(|c| c.memory_source.clone())
        .unwrap_or_else(|| "memory".into());
    let mut caption = format!("Sampled memory (MB, via `{source}`) over time, one line per cell.");
    if cells.len() > shown.len() {
        caption.push_str(&format!(
            " {} more cells are not drawn (see summary.json).",
            cells.len() - shown.len()
        ));
    }
    Some(Chart {
        name: "memory",
        alt: "Memory over time per cell".into(),
        caption,
        plot: LineChart {
            title: "Memory (MB) over time (s)".into(),
            x_desc: "time since sampling start (s)".into(),
            x: 0.0..(t_max * 1.05).max(1e-3),
            y: y_range_from_zero(series.iter().flat_map(|s| s.points.iter().map(|p| p.1))),
            log_log: false,
            x_int: false,
            series,
            note: None,
            bands: vec![],
        },
    })
}
