//! Max |Δlogit| per compared position, one series per cell and comparison.

use super::style::{color, y_range_from_zero, LineChart, Series};
use super::Chart;
use crate::report::labels::{cell_label, comparison_label};
use crate::summary::Summary;

const MAX_SERIES: usize = 12;

pub(super) fn logit_diff(summary: &Summary) -> Option<Chart> {
    let mut all: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for cell in &summary.cells {
        for pair in &cell.comparisons {
            if pair.max_abs_diff_by_position.is_empty() {
                continue;
            }
            let points = pair
                .max_abs_diff_by_position
                .iter()
                .enumerate()
                .map(|(j, d)| (j as f64, *d))
                .collect();
            let label = format!(
                "{}: {}",
                cell_label(cell, &summary.cells),
                comparison_label(pair, cell)
            );
            all.push((label, points));
        }
    }
    if all.is_empty() {
        return None;
    }
    let all_zero = all.iter().all(|s| s.1.iter().all(|p| p.1 == 0.0));
    let total = all.len();
    all.truncate(MAX_SERIES);
    let x_max = all
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let series: Vec<Series> = all
        .into_iter()
        .enumerate()
        .map(|(i, (label, points))| Series {
            label,
            points,
            color: color(i),
            dashed: false,
        })
        .collect();
    let mut caption = if all_zero {
        "Max |Δlogit| per compared position: all zeros — every compared row is bit-identical."
            .to_string()
    } else {
        "Max |Δlogit| per compared position (row j = the logits predicting generated token j), per cell and comparison.".to_string()
    };
    if total > series.len() {
        caption.push_str(&format!(
            " {} more comparisons are not drawn (see summary.json).",
            total - series.len()
        ));
    }
    Some(Chart {
        name: "logit_diff",
        alt: "Max |Δlogit| per position".into(),
        caption,
        plot: LineChart {
            title: "Max |Δlogit| per position".into(),
            x_desc: "position j".into(),
            x: -0.2..x_max + 0.2,
            y: y_range_from_zero(series.iter().flat_map(|s| s.points.iter().map(|p| p.1))),
            log_log: false,
            x_int: true,
            series,
            note: all_zero.then(|| "all values are 0 (bit-identical)".to_string()),
            bands: vec![],
        },
    })
}
