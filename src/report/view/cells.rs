//! Per-cell timing and memory facts (b3_77's "Timeout Policy & Timing" and "VRAM Sampling
//! Method", the generic results table).

use serde::Serialize;

use crate::report::format;
use crate::report::labels::cell_label;
use crate::summary::CellSummary;

#[derive(Debug, Serialize)]
pub(crate) struct CellView {
    pub key: String,
    pub label: String,
    pub verdict: String,
    pub status: String,
    pub batch: usize,
    pub ctx: usize,
    pub attn: String,
    /// Seconds as `36.14s`; None when the phase did not run.
    pub prefill: Option<String>,
    pub decode: Option<String>,
    pub reference_prefill: Option<String>,
    pub model_load: Option<String>,
    pub setup: Option<String>,
    pub wall: Option<String>,
    pub decode_tok_s: Option<String>,
    pub prefill_tok_s: Option<String>,
    pub device: Option<String>,
    pub memory_source: Option<String>,
    pub period: Option<String>,
    pub samples: usize,
    pub peak_mb: Option<String>,
    pub peak_gb: Option<String>,
    pub peak_t: Option<String>,
    pub high_water_mb: Option<String>,
    pub baseline_mb: Option<String>,
    /// What the sampling can miss, from its period.
    pub sampling_note: Option<String>,
}

fn s(x: Option<f64>) -> Option<String> {
    x.filter(|v| v.is_finite())
        .map(|v| format!("{}s", format::secs(v)))
}

fn m(x: Option<f64>) -> Option<String> {
    x.filter(|v| v.is_finite()).map(format::mb)
}

fn rate(x: Option<f64>) -> Option<String> {
    x.filter(|v| v.is_finite()).map(|v| format::fixed(v, 2))
}

pub(super) fn cell_view(c: &CellSummary, all: &[CellSummary]) -> CellView {
    let period = c.memory_period_s.map(format::secs_compact);
    let sampling_note = period.as_ref().map(|p| {
        let bound = match c.high_water_mb {
            Some(hw) => format!(
                "; the allocator high-water mark ({} MB) bounds them",
                format::mb(hw)
            ),
            None => String::new(),
        };
        format!("{p} sampling; micro-spikes shorter than {p} might not be captured{bound}.")
    });
    CellView {
        key: c.key.clone(),
        label: cell_label(c, all),
        verdict: c.verdict.as_str().to_string(),
        status: c.status.clone(),
        batch: c.batch,
        ctx: c.ctx,
        attn: crate::report::labels::attn_label(&c.attn_impl, c.variant.as_deref()),
        prefill: s(c.prefill_s),
        decode: s(c.decode_s),
        reference_prefill: s(c.reference_prefill_s),
        model_load: s(c.model_load_s),
        setup: s(c.setup_s),
        wall: s(c.wall_s),
        decode_tok_s: rate(c.decode_tok_s),
        prefill_tok_s: rate(c.prefill_tok_s),
        device: c.device.clone(),
        memory_source: c.memory_source.clone(),
        period,
        samples: c.memory_samples,
        peak_mb: m(c.peak_mb),
        peak_gb: c.peak_mb.filter(|v| v.is_finite()).map(format::gb_approx),
        peak_t: c
            .peak_t_s
            .filter(|v| v.is_finite())
            .map(format::secs_compact),
        high_water_mb: m(c.high_water_mb),
        baseline_mb: m(c.baseline_mb),
        sampling_note,
    }
}
