//! The template context: everything a template prints, already formatted as strings, so
//! templates hold only layout and wording.

mod cells;
mod commands;
mod divergence;
mod equivalence;
mod history;
mod methodology;
mod tables;

use serde::Serialize;

use super::charts::ChartView;
use super::context::ReportContext;
use super::format;
use super::interpret;
use super::labels::measured_cells;
use crate::summary::Summary;

pub(crate) use cells::CellView;
pub(crate) use commands::CommandsView;
pub(crate) use divergence::DivergenceView;
pub(crate) use equivalence::EquivalenceView;
pub(crate) use history::HistoryView;
pub(crate) use methodology::Methodology;
pub(crate) use tables::{BatchRowView, ContextRowView, PrefillRowView, ScalingGroupView};

#[derive(Debug, Serialize)]
pub(crate) struct View {
    /// The caller's title override; templates use their own heading when None.
    pub title: Option<String>,
    pub mode: String,
    /// `B3.81`.
    pub mode_label: String,
    pub date: String,
    pub device: String,
    /// `8k`, or `4k–16k` over several contexts.
    pub ctx_label: String,
    pub model: Option<String>,
    pub backend: Option<String>,
    pub policy: String,
    pub traces_dir: String,
    pub tool: String,
    pub tool_version: String,
    pub generated_at: String,
    pub methodology: Methodology,
    pub overall: OverallView,
    pub batch_rows: Vec<BatchRowView>,
    pub context_rows: Vec<ContextRowView>,
    pub prefill_rows: Vec<PrefillRowView>,
    pub scaling: Vec<ScalingGroupView>,
    /// The measured cells (no batch-1 twins), for timing and memory sections.
    pub cells: Vec<CellView>,
    pub equivalence: EquivalenceView,
    pub interpretation: Vec<String>,
    pub divergence: DivergenceView,
    pub commands: CommandsView,
    pub charts: ChartsView,
    /// `analyze --history`: the section "Regressions vs prior runs"; None without it.
    pub history: Option<HistoryView>,
}

#[derive(Debug, Serialize)]
pub(crate) struct OverallView {
    pub verdict: String,
    /// `PASS_EQUIV × 4, FAIL_OOM × 1`.
    pub counts: String,
    pub cells: usize,
    pub gate: Option<String>,
    pub gate_passed: bool,
    pub exit_code: i32,
    pub problems: Vec<String>,
}

/// Charts by id; a template embeds those that are Some.
#[derive(Debug, Default, Serialize)]
pub(crate) struct ChartsView {
    pub throughput: Option<ChartView>,
    pub vram: Option<ChartView>,
    pub prefill_scaling: Option<ChartView>,
    pub memory: Option<ChartView>,
    pub logit_diff: Option<ChartView>,
    /// One trend chart per history metric (`trend_<metric>`), in metric order.
    pub trends: Vec<ChartView>,
}

impl ChartsView {
    pub(crate) fn from_list(charts: Vec<ChartView>) -> Self {
        let mut v = ChartsView::default();
        for c in charts {
            let slot = match c.name.as_str() {
                "throughput" => &mut v.throughput,
                "vram" => &mut v.vram,
                "prefill_scaling" => &mut v.prefill_scaling,
                "memory" => &mut v.memory,
                "logit_diff" => &mut v.logit_diff,
                name if name.starts_with("trend_") => {
                    v.trends.push(c);
                    continue;
                }
                _ => continue,
            };
            *slot = Some(c);
        }
        v
    }
}

pub(crate) fn build(summary: &Summary, ctx: &ReportContext, charts: Vec<ChartView>) -> View {
    let measured = measured_cells(summary);
    View {
        title: ctx.title.clone(),
        mode: summary.mode.clone(),
        mode_label: format::mode_label(&summary.mode),
        date: report_date(summary, ctx),
        device: device(summary),
        ctx_label: ctx_label(measured.iter().map(|c| c.ctx)),
        model: summary.model.clone(),
        backend: summary.backend.clone(),
        policy: summary.policy.clone(),
        traces_dir: summary.traces_dir.clone(),
        tool: summary.tool.clone(),
        tool_version: summary.tool_version.clone(),
        generated_at: summary.generated_at.clone(),
        methodology: methodology::build(summary, ctx, &measured),
        overall: overall(summary),
        batch_rows: tables::batch_rows(summary),
        context_rows: tables::context_rows(summary),
        prefill_rows: tables::prefill_rows(summary),
        scaling: tables::scaling_groups(summary),
        cells: measured
            .iter()
            .map(|c| cells::cell_view(c, &summary.cells))
            .collect(),
        equivalence: equivalence::build(summary),
        interpretation: interpret::interpret(summary),
        divergence: divergence::build(summary),
        commands: commands::build(summary, ctx),
        charts: ChartsView::from_list(charts),
        history: history::build(summary),
    }
}

fn report_date(summary: &Summary, ctx: &ReportContext) -> String {
    if !ctx.date.is_empty() {
        return ctx.date.clone();
    }
    // RFC 3339 timestamps start with the date.
    summary.generated_at.chars().take(10).collect()
}

/// The device named in the summary, else the first cell's, else the backend.
pub(crate) fn device(summary: &Summary) -> String {
    summary
        .device
        .clone()
        .or_else(|| summary.cells.iter().find_map(|c| c.device.clone()))
        .or_else(|| summary.backend.clone())
        .unwrap_or_else(|| "unknown device".to_string())
}

fn ctx_label(ctxs: impl Iterator<Item = usize>) -> String {
    let mut v: Vec<usize> = ctxs.collect();
    v.sort_unstable();
    v.dedup();
    match (v.first(), v.last()) {
        (Some(a), Some(b)) if a == b => format::ctx_short(*a),
        (Some(a), Some(b)) => format!("{}–{}", format::ctx_short(*a), format::ctx_short(*b)),
        _ => "n/a".to_string(),
    }
}

fn overall(summary: &Summary) -> OverallView {
    let o = &summary.overall;
    OverallView {
        verdict: o.verdict.as_str().to_string(),
        counts: o
            .counts
            .iter()
            .map(|(k, n)| format!("{k} × {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        cells: summary.cells.len(),
        gate: o.gate.clone(),
        gate_passed: o.gate_passed,
        exit_code: o.exit_code,
        problems: o.problems.clone(),
    }
}
