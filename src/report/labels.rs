//! Short human names for cells and comparisons, shared by tables, prose and chart legends.

use crate::summary::{CellSummary, PairSummary, Summary};

/// The cells a report is about: the sweep's own cells, without the batch-1 twins that `run`
/// adds for pairing (all cells when every cell is such a twin).
pub(crate) fn measured_cells(summary: &Summary) -> Vec<&CellSummary> {
    let own: Vec<&CellSummary> = summary.cells.iter().filter(|c| !c.reference_cell).collect();
    if own.is_empty() {
        summary.cells.iter().collect()
    } else {
        own
    }
}

/// A label naming only the dimensions that vary across `all` (e.g. `b2`, `b1 p3`,
/// `ctx 256 naive`), so legends stay short yet unambiguous; falls back to the key.
pub(crate) fn cell_label(cell: &CellSummary, all: &[CellSummary]) -> String {
    fn varies<T: PartialEq>(all: &[CellSummary], f: impl Fn(&CellSummary) -> T) -> bool {
        all.first()
            .map(|first| all.iter().any(|c| f(c) != f(first)))
            .unwrap_or(false)
    }
    let mut parts: Vec<String> = Vec::new();
    if varies(all, |c| c.backend.clone()) {
        parts.push(cell.backend.clone().unwrap_or_default());
    }
    if varies(all, |c| c.batch) {
        parts.push(format!("b{}", cell.batch));
    }
    // Offset 0 is every sweep cell's; only the batch-1 twins need it spelled out.
    if varies(all, |c| c.prompt_offset) && cell.prompt_offset != 0 {
        parts.push(format!("p{}", cell.prompt_offset));
    }
    if varies(all, |c| c.ctx) {
        parts.push(format!("ctx {}", cell.ctx));
    }
    if varies(all, |c| c.gen) {
        parts.push(format!("gen {}", cell.gen));
    }
    if varies(all, |c| c.span) {
        parts.push(format!("span {}", cell.span));
    }
    if varies(all, |c| c.dtype.clone()) {
        parts.push(cell.dtype.clone());
    }
    if varies(all, |c| c.numerics.clone()) {
        parts.push(cell.numerics.clone());
    }
    if varies(all, |c| c.attn_impl.clone()) {
        parts.push(cell.attn_impl.clone());
    }
    if varies(all, |c| c.kv_aligned) {
        parts.push(format!("kv{}", u8::from(cell.kv_aligned)));
    }
    if varies(all, |c| c.variant.clone()) {
        parts.push(cell.variant.clone().unwrap_or_else(|| "base".into()));
    }
    let unique = all
        .iter()
        .filter(|c| c.key != cell.key)
        .all(|c| cell_label_parts_differ(c, cell));
    if !unique {
        return cell.key.clone();
    }
    if parts.is_empty() {
        // A lone cell: name it by its main dimensions.
        parts.push(format!("b{} ctx {}", cell.batch, cell.ctx));
    }
    parts.join(" ")
}

// Two cells share a label only if every labelled field is equal (e.g. they differ in seed).
fn cell_label_parts_differ(a: &CellSummary, b: &CellSummary) -> bool {
    (
        &a.backend,
        a.batch,
        a.prompt_offset,
        a.ctx,
        a.gen,
        a.span,
        &a.dtype,
        &a.numerics,
        &a.attn_impl,
        a.kv_aligned,
        &a.variant,
    ) != (
        &b.backend,
        b.batch,
        b.prompt_offset,
        b.ctx,
        b.gen,
        b.span,
        &b.dtype,
        &b.numerics,
        &b.attn_impl,
        b.kv_aligned,
        &b.variant,
    )
}

/// `decode vs prefill`, `batch 4 vs batch 1`, `golden drift`.
pub(crate) fn comparison_label(pair: &PairSummary, cell: &CellSummary) -> String {
    match pair.kind.as_str() {
        "prefill_vs_decode" => "decode vs prefill".to_string(),
        "batch_vs_batch1" => format!("batch {} vs batch 1", cell.batch),
        "golden" => "golden drift".to_string(),
        other => other.replace('_', " "),
    }
}

/// Attention implementation with its variant: `flash`, `flash (v3)`.
pub(crate) fn attn_label(attn_impl: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) if !v.is_empty() => format!("{attn_impl} ({v})"),
        _ => attn_impl.to_string(),
    }
}
