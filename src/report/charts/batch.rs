//! b3_81 charts: tokens/s vs batch with the ideal linear line, and peak VRAM vs batch.

use super::style::{color, y_range_from_zero, LineChart, Series};
use super::Chart;
use crate::report::format;
use crate::summary::Summary;

fn x_range(max_batch: f64) -> std::ops::Range<f64> {
    0.0..(max_batch * 1.08).max(2.0)
}

pub(super) fn throughput(summary: &Summary) -> Option<Chart> {
    let points: Vec<(f64, f64)> = summary
        .tables
        .batch
        .iter()
        .filter_map(|r| Some((r.batch as f64, r.tokens_per_s?)))
        .collect();
    if points.is_empty() {
        return None;
    }
    let max_b = points.iter().map(|p| p.0).fold(1.0, f64::max);
    let base = summary
        .tables
        .batch
        .iter()
        .find(|r| r.batch == 1)
        .and_then(|r| r.tokens_per_s);
    let mut series = vec![Series {
        label: "measured".into(),
        points: points.clone(),
        color: color(0),
        dashed: false,
    }];
    let mut ys: Vec<f64> = points.iter().map(|p| p.1).collect();
    if let Some(t1) = base {
        let ideal: Vec<(f64, f64)> = points.iter().map(|&(b, _)| (b, t1 * b)).collect();
        ys.extend(ideal.iter().map(|p| p.1));
        series.push(Series {
            label: "ideal linear (batch 1 × batch)".into(),
            points: ideal,
            color: color(7),
            dashed: true,
        });
    }
    let caption = match base {
        Some(t1) => format!(
            "Aggregate decode tokens/s per batch size; dashed: ideal linear scaling from batch 1 ({} tokens/s).",
            format::fixed(t1, 2)
        ),
        None => "Aggregate decode tokens/s per batch size (no batch-1 baseline, so no ideal line).".into(),
    };
    Some(Chart {
        name: "throughput",
        alt: "Tokens/s vs batch size".into(),
        caption,
        plot: LineChart {
            title: "Decode throughput (tokens/s) vs batch size".into(),
            x_desc: "batch size".into(),
            x: x_range(max_b),
            y: y_range_from_zero(ys.into_iter()),
            log_log: false,
            x_int: true,
            series,
            note: None,
            bands: vec![],
        },
    })
}

pub(super) fn vram(summary: &Summary) -> Option<Chart> {
    let points: Vec<(f64, f64)> = summary
        .tables
        .batch
        .iter()
        .filter_map(|r| Some((r.batch as f64, r.peak_vram_mb?)))
        .collect();
    if points.is_empty() {
        return None;
    }
    let max_b = points.iter().map(|p| p.0).fold(1.0, f64::max);
    Some(Chart {
        name: "vram",
        alt: "Peak VRAM vs batch size".into(),
        caption: "Peak sampled memory (MB) per batch size.".into(),
        plot: LineChart {
            title: "Peak VRAM (MB) vs batch size".into(),
            x_desc: "batch size".into(),
            x: x_range(max_b),
            y: y_range_from_zero(points.iter().map(|p| p.1)),
            log_log: false,
            x_int: true,
            series: vec![Series {
                label: "peak VRAM".into(),
                points,
                color: color(1),
                dashed: false,
            }],
            note: None,
            bands: vec![],
        },
    })
}
