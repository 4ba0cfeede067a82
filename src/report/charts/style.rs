//! One line-chart routine shared by every chart: frame, axes, series, legend, note.

use std::ops::Range;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::font::FAMILY;
use crate::report::format;

pub(crate) const SIZE: (u32, u32) = (800, 500);

/// Tableau 10: distinguishable, colour-blind friendly.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub(crate) fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

pub(crate) struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub color: RGBColor,
    /// Reference lines (ideal, n²) are dashed and carry no markers.
    pub dashed: bool,
}

pub(crate) struct LineChart {
    /// Carries the y unit: ab_glyph cannot rotate a y-axis label.
    pub title: String,
    pub x_desc: String,
    pub x: Range<f64>,
    pub y: Range<f64>,
    pub log_log: bool,
    /// Integer x ticks (batch sizes).
    pub x_int: bool,
    pub series: Vec<Series>,
    /// Drawn inside the plot, e.g. "all values are 0".
    pub note: Option<String>,
    /// Shaded horizontal bands under the series (linear charts), e.g. accepted ranges.
    pub bands: Vec<Band>,
}

/// A shaded y range across the whole x axis.
pub(crate) struct Band {
    pub y: Range<f64>,
    pub color: RGBColor,
}

impl LineChart {
    /// The chart as PNG bytes.
    pub(crate) fn png(&self) -> Result<Vec<u8>, String> {
        let mut rgb = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
        self.draw(&mut rgb)?;
        encode_png(&rgb)
    }

    fn draw(&self, rgb: &mut [u8]) -> Result<(), String> {
        if self.log_log {
            // Log-log is drawn as linear axes over log10 values with ticks placed by hand:
            // plotters' own log ticks leave most of a short range unlabelled.
            let (x, y) = (log_range(&self.x), log_range(&self.y));
            self.draw_with(rgb, x, y, true)
        } else {
            self.draw_with(rgb, self.x.clone(), self.y.clone(), false)
        }
    }

    fn draw_with(
        &self,
        rgb: &mut [u8],
        x: Range<f64>,
        y: Range<f64>,
        log: bool,
    ) -> Result<(), String> {
        let map = |p: &(f64, f64)| {
            if log {
                (p.0.log10(), p.1.log10())
            } else {
                *p
            }
        };
        let root = BitMapBackend::with_buffer(rgb, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = root
            .titled(&self.title, (FAMILY, 20))
            .map_err(|e| e.to_string())?;
        // The legend gets its own column so it never hides data.
        let (plot_area, legend_area) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);
        let mut chart = ChartBuilder::on(&plot_area)
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(x.clone(), y.clone())
            .map_err(|e| e.to_string())?;
        let x_int = self.x_int;
        let x_fmt = move |v: &f64| {
            // Non-integer ticks of a short integer axis are left blank, not rounded into repeats.
            if x_int && (v - v.round()).abs() < 1e-9 {
                format::fixed(*v, 0)
            } else if x_int && v.abs() < 1e3 {
                String::new()
            } else {
                axis_label(*v)
            }
        };
        let y_fmt = |v: &f64| axis_label(*v);
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(&self.x_desc)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 15))
            .light_line_style(RGBColor(238, 238, 238));
        if log {
            mesh.x_labels(0).y_labels(0).disable_mesh();
        }
        mesh.draw().map_err(|e| e.to_string())?;
        if log {
            self.draw_log_ticks(&mut chart, &plot_area, &x, &y)?;
        } else {
            // Light enough that overlapping bands stay readable and series stay on top.
            chart
                .draw_series(self.bands.iter().map(|b| {
                    Rectangle::new(
                        [(x.start, b.y.start), (x.end, b.y.end)],
                        b.color.mix(0.13).filled(),
                    )
                }))
                .map_err(|e| e.to_string())?;
        }
        for s in &self.series {
            let style = s.color.stroke_width(2);
            if s.dashed {
                chart
                    .draw_series(DashedLineSeries::new(s.points.iter().map(map), 8, 5, style))
                    .map_err(|e| e.to_string())?;
            } else {
                chart
                    .draw_series(LineSeries::new(s.points.iter().map(map), style))
                    .map_err(|e| e.to_string())?;
            }
            // Markers help read sparse series; on dense ones (memory samples) they are noise.
            if !s.dashed && s.points.len() <= MAX_MARKERS {
                chart
                    .draw_series(
                        s.points
                            .iter()
                            .map(|p| Circle::new(map(p), 4, s.color.filled())),
                    )
                    .map_err(|e| e.to_string())?;
            }
        }
        if let Some(note) = &self.note {
            let (px, py) = chart.plotting_area().get_pixel_range();
            let (ox, oy) = plot_area.get_base_pixel();
            plot_area
                .draw(&Text::new(
                    note.clone(),
                    (px.start - ox + 12, py.start - oy + 8),
                    (FAMILY, 14).into_font().color(&RGBColor(110, 110, 110)),
                ))
                .map_err(|e| e.to_string())?;
        }
        self.draw_legend(&legend_area)?;
        root.present().map_err(|e| e.to_string())
    }

    /// Grid lines and labels of a log-log chart: x at the data's own x values, y at 1-2-5
    /// steps of each decade.
    fn draw_log_ticks<DB: DrawingBackend>(
        &self,
        chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
        area: &DrawingArea<DB, plotters::coord::Shift>,
        x: &Range<f64>,
        y: &Range<f64>,
    ) -> Result<(), String> {
        let grid = RGBColor(225, 225, 225);
        let (ox, oy) = area.get_base_pixel();
        let font = (FAMILY, 14).into_font().color(&BLACK);
        let mut xs: Vec<f64> = self
            .series
            .iter()
            .filter(|s| !s.dashed)
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        for v in xs {
            let lx = v.log10();
            chart
                .draw_series(LineSeries::new([(lx, y.start), (lx, y.end)], grid))
                .map_err(|e| e.to_string())?;
            let (px, py) = chart.backend_coord(&(lx, y.start));
            area.draw(&Text::new(
                axis_label(v),
                (px - ox, py - oy + 6),
                font.clone().pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(|e| e.to_string())?;
        }
        for v in log_ticks(y.start, y.end) {
            let ly = v.log10();
            chart
                .draw_series(LineSeries::new([(x.start, ly), (x.end, ly)], grid))
                .map_err(|e| e.to_string())?;
            let (px, py) = chart.backend_coord(&(x.start, ly));
            area.draw(&Text::new(
                axis_label(v),
                (px - ox - 6, py - oy),
                font.clone().pos(Pos::new(HPos::Right, VPos::Center)),
            ))
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn draw_legend<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<(), String> {
        const ROW: i32 = 20;
        const MAX_CHARS: usize = 30;
        for (i, s) in self.series.iter().enumerate() {
            let y = 24 + ROW * i as i32;
            let style = s.color.stroke_width(2);
            let segments: Vec<Vec<(i32, i32)>> = if s.dashed {
                vec![vec![(4, y), (12, y)], vec![(17, y), (25, y)]]
            } else {
                vec![vec![(4, y), (25, y)]]
            };
            for seg in segments {
                area.draw(&PathElement::new(seg, style))
                    .map_err(|e| e.to_string())?;
            }
            let label: String = if s.label.chars().count() > MAX_CHARS {
                s.label.chars().take(MAX_CHARS - 1).chain(['…']).collect()
            } else {
                s.label.clone()
            };
            area.draw(&Text::new(
                label,
                (32, y - 7),
                (FAMILY, 13).into_font().color(&BLACK),
            ))
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Encodes with the best compression: chart PNGs are mostly flat colour and shrink a lot.
fn encode_png(rgb: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, SIZE.0, SIZE.1);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Best);
    enc.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
    let mut w = enc.write_header().map_err(|e| e.to_string())?;
    w.write_image_data(rgb).map_err(|e| e.to_string())?;
    w.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

fn log_range(r: &Range<f64>) -> Range<f64> {
    r.start.max(f64::MIN_POSITIVE).log10()..r.end.max(f64::MIN_POSITIVE).log10()
}

/// 1, 2, 5 × 10^k inside [10^lo, 10^hi] (only 1 × 10^k over many decades).
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let steps: &[f64] = if hi - lo > 4.0 {
        &[1.0]
    } else {
        &[1.0, 2.0, 5.0]
    };
    let mut out = Vec::new();
    for k in lo.floor() as i32..=hi.ceil() as i32 {
        for m in steps {
            let v = m * 10f64.powi(k);
            let l = v.log10();
            if l >= lo && l <= hi {
                out.push(v);
            }
        }
    }
    out
}

/// Series with more points than this are drawn without markers.
const MAX_MARKERS: usize = 24;

/// Width of the legend column, pixels.
const LEGEND_WIDTH: u32 = 220;

/// Tick labels: 3 significant digits without trailing zeros (`0.005`, `60`, `1.5e-7`).
fn axis_label(v: f64) -> String {
    let s = format::sig(v, 3);
    if s.contains('e') || !s.contains('.') {
        s
    } else {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A y range that shows `values` with headroom; 0..1 when they are all zero.
pub(crate) fn y_range_from_zero(values: impl Iterator<Item = f64>) -> Range<f64> {
    let max = values.filter(|v| v.is_finite()).fold(0.0, f64::max);
    if max > 0.0 {
        0.0..max * 1.12
    } else {
        0.0..1.0
    }
}
