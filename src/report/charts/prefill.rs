//! b3_89 chart: prefill time vs context on log-log axes, one series per attention
//! implementation, with the n² line through the smallest point.

use super::style::{color, LineChart, Series};
use super::Chart;
use crate::report::labels::attn_label;
use crate::summary::Summary;

pub(super) fn scaling(summary: &Summary) -> Option<Chart> {
    let rows = &summary.tables.prefill;
    let mut groups: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for r in rows {
        // Log axes cannot show zero or missing times.
        let Some(t) = r.prefill_s.filter(|t| *t > 0.0) else {
            continue;
        };
        let name = attn_label(&r.attn_impl, r.variant.as_deref());
        match groups.iter_mut().find(|g| g.0 == name) {
            Some(g) => g.1.push((r.ctx as f64, t)),
            None => groups.push((name, vec![(r.ctx as f64, t)])),
        }
    }
    if groups.is_empty() {
        return None;
    }
    for g in &mut groups {
        g.1.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let all: Vec<(f64, f64)> = groups.iter().flat_map(|g| g.1.iter().copied()).collect();
    let (n0, t0) = all
        .iter()
        .copied()
        .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)))?;
    let n_max = all.iter().map(|p| p.0).fold(n0, f64::max);
    let reference = vec![(n0, t0), (n_max, t0 * (n_max / n0).powi(2))];
    let ys = all.iter().chain(reference.iter()).map(|p| p.1);
    let y_min = ys.clone().fold(f64::INFINITY, f64::min);
    let y_max = ys.fold(0.0, f64::max);
    let mut series: Vec<Series> = groups
        .into_iter()
        .enumerate()
        .map(|(i, (label, points))| Series {
            label,
            points,
            color: color(i),
            dashed: false,
        })
        .collect();
    series.push(Series {
        label: "n² reference".into(),
        points: reference,
        color: color(7),
        dashed: true,
    });
    Some(Chart {
        name: "prefill_scaling",
        alt: "Prefill time vs context (log-log)".into(),
        caption: "Prefill time vs context length on log-log axes, one series per attention implementation; dashed: n² through the smallest point (slope 2).".into(),
        plot: LineChart {
            title: "Prefill time (s) vs context, log-log".into(),
            x_desc: "context length (tokens)".into(),
            x: n0 / 1.25..n_max * 1.25,
            y: y_min / 1.6..y_max * 1.6,
            log_log: true,
            x_int: true,
            series,
            note: None,
            bands: vec![],
        },
    })
}
