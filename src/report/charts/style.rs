//! One line-chart routine shared by every chart: frame, axes, series, legend, note.

use std::ops::Range;
use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

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
}

impl LineChart {
    pub(crate) fn draw(&self, path: &Path) -> Result<(), String> {
        use plotters::coord::combinators::IntoLogRange;
        if self.log_log {
            self.draw_with(path, self.x.clone().log_scale(), self.y.clone().log_scale())
        } else {
            self.draw_with(path, self.x.clone(), self.y.clone())
        }
    }

    fn draw_with<X, Y>(&self, path: &Path, x: X, y: Y) -> Result<(), String>
    where
        X: AsRangedCoord<Value = f64>,
        Y: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let root = BitMapBackend::new(path, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, (FAMILY, 20))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(x, y)
            .map_err(|e| e.to_string())?;
        let x_int = self.x_int;
        let x_fmt = move |v: &f64| {
            // Non-integer ticks of a short integer axis are left blank, not rounded into repeats.
            if x_int && (v - v.round()).abs() < 1e-9 {
                format::fixed(*v, 0)
            } else if x_int && v.abs() < 1e3 {
                String::new()
            } else {
                format::sig(*v, 3)
            }
        };
        let y_fmt = |v: &f64| format::sig(*v, 3);
        chart
            .configure_mesh()
            .x_desc(&self.x_desc)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 15))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| e.to_string())?;
        for s in &self.series {
            let color = s.color;
            let style = color.stroke_width(2);
            let anno = if s.dashed {
                chart
                    .draw_series(DashedLineSeries::new(s.points.clone(), 8, 5, style))
                    .map_err(|e| e.to_string())?
            } else {
                chart
                    .draw_series(LineSeries::new(s.points.clone(), style))
                    .map_err(|e| e.to_string())?
            };
            anno.label(s.label.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
            if !s.dashed {
                chart
                    .draw_series(
                        s.points
                            .iter()
                            .map(|&p| Circle::new(p, 4, color.filled())),
                    )
                    .map_err(|e| e.to_string())?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FAMILY, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .map_err(|e| e.to_string())?;
        if let Some(note) = &self.note {
            let area = chart.plotting_area();
            let (px, py) = area.get_pixel_range();
            root.draw(&Text::new(
                note.clone(),
                (px.end - 330, py.start + 10),
                (FAMILY, 14).into_font().color(&RGBColor(120, 120, 120)),
            ))
            .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())
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
