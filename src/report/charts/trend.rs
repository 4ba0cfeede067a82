//! History trends: one chart per metric, each cell's accepted values over the last runs and
//! this run's value, as % of the cell's baseline so cells of different magnitudes share an
//! axis; each cell's accepted band is shaded in its colour.

use super::style::{color, Band, LineChart, Series};
use super::Chart;
use crate::history::metrics::METRICS;
use crate::report::labels::cell_label;
use crate::summary::{Summary, TrendSeries};

/// Cells drawn per chart (the palette's size); cells that regressed are always among them.
const MAX_SERIES: usize = 10;

pub(super) fn trends(summary: &Summary) -> Vec<Chart> {
    let Some(h) = &summary.history else {
        return Vec::new();
    };
    let mut charts = Vec::new();
    for def in METRICS {
        let mut series: Vec<(&TrendSeries, f64, bool)> =
            h.trends
                .iter()
                .filter(|t| t.metric == def.name && !t.accepted.is_empty())
                .filter_map(|t| {
                    let base = t.baseline.filter(|b| *b != 0.0 && b.is_finite())?;
                    let failing = h.comparisons.iter().any(|c| {
                        c.cell == t.cell && c.metric == t.metric && c.verdict.is_failure()
                    });
                    Some((t, base, failing))
                })
                .collect();
        if series.is_empty() {
            continue;
        }
        let total = series.len();
        series.sort_by_key(|s| !s.2);
        series.truncate(MAX_SERIES);
        // Cells that regressed are drawn last, on top of the others.
        series.sort_by_key(|s| s.2);
        let pct = |v: f64, base: f64| v / base * 100.0;
        let mut lines = Vec::new();
        let mut bands = Vec::new();
        let (mut lo, mut hi) = (100.0f64, 100.0f64);
        let mut longest = 1usize;
        for (i, (t, base, _)) in series.iter().enumerate() {
            let n = t.accepted.len();
            longest = longest.max(n);
            let mut points: Vec<(f64, f64)> = t
                .accepted
                .iter()
                .enumerate()
                .map(|(k, v)| (k as f64 - n as f64, pct(*v, *base)))
                .collect();
            if let Some(v) = t.new {
                points.push((0.0, pct(v, *base)));
            }
            for p in &points {
                lo = lo.min(p.1);
                hi = hi.max(p.1);
            }
            if let Some((a, b)) = t.band {
                let (a, b) = (pct(a, *base), pct(b, *base));
                lo = lo.min(a);
                hi = hi.max(b);
                bands.push((a, b, i));
            }
            let label = summary
                .cells
                .iter()
                .find(|c| c.key == t.cell)
                .map_or_else(|| t.cell.clone(), |c| cell_label(c, &summary.cells));
            lines.push(Series {
                label,
                points,
                color: color(i),
                dashed: false,
            });
        }
        let bands = merge_bands(&bands);
        let pad = ((hi - lo) * 0.08).max(1.0);
        let mut caption = format!(
            "{} of each cell as % of its baseline over the last {} accepted runs (0 = this run); shaded: each cell's accepted band.",
            capitalise(def.label),
            longest
        );
        if total > lines.len() {
            caption.push_str(&format!(
                " {} more cells are not drawn (see summary.json).",
                total - lines.len()
            ));
        }
        charts.push(Chart {
            name: def.chart,
            alt: format!("Trend of {} vs prior runs", def.label),
            caption,
            plot: LineChart {
                title: format!("{} vs prior runs (% of baseline)", capitalise(def.label)),
                x_desc: "accepted runs before this one (0 = this run)".into(),
                x: -(longest as f64) - 0.5..0.5,
                y: (lo - pad).max(0.0)..hi + pad,
                log_log: false,
                x_int: true,
                series: lines,
                note: None,
                bands,
            },
        });
    }
    charts
}

/// One shade per distinct band (to 0.1 % of the baseline): identical bands stacked would
/// darken into a block. A band shared by several cells is grey, one of a single cell its colour.
fn merge_bands(bands: &[(f64, f64, usize)]) -> Vec<Band> {
    struct Shade {
        key: (i64, i64),
        y: std::ops::Range<f64>,
        series: usize,
        cells: usize,
    }
    let key = |a: f64, b: f64| ((a * 10.0).round() as i64, (b * 10.0).round() as i64);
    let mut seen: Vec<Shade> = Vec::new();
    for &(a, b, i) in bands {
        match seen.iter_mut().find(|s| s.key == key(a, b)) {
            Some(s) => s.cells += 1,
            None => seen.push(Shade {
                key: key(a, b),
                y: a..b,
                series: i,
                cells: 1,
            }),
        }
    }
    seen.into_iter()
        .map(|s| Band {
            y: s.y,
            color: if s.cells > 1 {
                color(7)
            } else {
                color(s.series)
            },
        })
        .collect()
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
