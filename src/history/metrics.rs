//! The metrics the history keeps per cell, each with its unit and which way is better.

use super::verdict::Direction;
use crate::summary::CellSummary;

/// A cell's status (its verdict) is kept too: a change of it is `NEW_FAILURE` or `FIXED`.
pub const STATUS: &str = "status";
/// Numeric drift of the logits against the last accepted run (top-k records, not a number).
pub const NUMERICS: &str = "numerics";

pub struct MetricDef {
    pub name: &'static str,
    /// How the report names it.
    pub label: &'static str,
    pub unit: &'static str,
    pub direction: Direction,
    /// The trend chart's id (`<report stem>_<chart>.png`).
    pub chart: &'static str,
    pub get: fn(&CellSummary) -> Option<f64>,
}

/// Numeric metrics, in report order.
pub const METRICS: &[MetricDef] = &[
    MetricDef {
        name: "decode_tok_s",
        label: "decode tokens/s",
        unit: "tokens/s",
        direction: Direction::HigherIsBetter,
        chart: "trend_decode_tok_s",
        get: |c| c.decode_tok_s,
    },
    MetricDef {
        name: "prefill_tok_s",
        label: "prefill tokens/s",
        unit: "tokens/s",
        direction: Direction::HigherIsBetter,
        chart: "trend_prefill_tok_s",
        get: |c| c.prefill_tok_s,
    },
    MetricDef {
        name: "prefill_s",
        label: "prefill time",
        unit: "s",
        direction: Direction::LowerIsBetter,
        chart: "trend_prefill_s",
        get: |c| c.prefill_s,
    },
    MetricDef {
        name: "decode_s",
        label: "decode time",
        unit: "s",
        direction: Direction::LowerIsBetter,
        chart: "trend_decode_s",
        get: |c| c.decode_s,
    },
    MetricDef {
        name: "wall_s",
        label: "wall time",
        unit: "s",
        direction: Direction::LowerIsBetter,
        chart: "trend_wall_s",
        get: |c| c.wall_s,
    },
    MetricDef {
        name: "peak_mb",
        label: "peak memory",
        unit: "MB",
        direction: Direction::LowerIsBetter,
        chart: "trend_peak_mb",
        get: |c| c.peak_mb,
    },
    MetricDef {
        name: "high_water_mb",
        label: "allocator high-water mark",
        unit: "MB",
        direction: Direction::LowerIsBetter,
        chart: "trend_high_water_mb",
        get: |c| c.high_water_mb,
    },
];

pub fn metric(name: &str) -> Option<&'static MetricDef> {
    METRICS.iter().find(|m| m.name == name)
}

/// Every name an acknowledgement or `--regress-threshold` may use.
pub fn known_metric_names() -> Vec<&'static str> {
    METRICS
        .iter()
        .map(|m| m.name)
        .chain([STATUS, NUMERICS])
        .collect()
}

pub fn is_known_metric(name: &str) -> bool {
    known_metric_names().contains(&name)
}

/// The cell's value of a metric when it is a usable number (timings of a cell that did not
/// run are None; 0 s phases give no tokens/s).
pub fn value_of(def: &MetricDef, cell: &CellSummary) -> Option<f64> {
    (def.get)(cell).filter(|v| v.is_finite())
}

/// The report's label of any metric name.
pub fn label_of(name: &str) -> &str {
    match name {
        STATUS => "status",
        NUMERICS => "numerics (top-16 logits)",
        other => metric(other).map_or(other, |m| m.label),
    }
}
