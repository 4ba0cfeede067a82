//! Report rendering: Markdown from templates (minijinja) plus PNG charts (plotters), from the
//! analysis Summary. Presentation only: every number comes from the Summary.

mod charts;
mod context;
mod error;
pub(crate) mod format;
pub mod interpret;
mod labels;
mod templates;
mod view;
mod write;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use context::{ChartFile, RenderedReport, ReportContext};
pub use error::ReportError;
pub use interpret::interpret;

use crate::summary::Summary;

/// Writes the Markdown report to `out_md` (atomically) and its charts beside it as
/// `<stem>_<chart>.png`, linked relatively from the Markdown.
pub fn render(
    summary: &Summary,
    ctx: &ReportContext,
    out_md: &Path,
) -> Result<RenderedReport, ReportError> {
    let stem = out_md
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ReportError::BadOutput {
            path: out_md.to_path_buf(),
            reason: "has no file name".to_string(),
        })?;
    let dir = match out_md.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| ReportError::io(&dir, e))?;

    // Render the Markdown first: a template error must not leave fresh PNGs behind.
    let template = templates::template_for(&summary.mode, ctx.templates_dir.as_deref());
    let planned = charts::plan(summary);
    let markdown = render_markdown(summary, ctx, &template, charts::views(&planned, &stem))?;

    let chart_files = charts::write_all(&planned, &dir, &stem)?;
    // The Markdown goes last so it never links to a chart that is not there yet.
    write::write_atomic(out_md, markdown.as_bytes())?;
    Ok(RenderedReport {
        markdown: out_md.to_path_buf(),
        charts: chart_files,
        template,
    })
}

fn render_markdown(
    summary: &Summary,
    ctx: &ReportContext,
    template: &str,
    charts: Vec<charts::ChartView>,
) -> Result<String, ReportError> {
    let env = templates::environment(ctx.templates_dir.clone());
    let view = view::build(summary, ctx, charts);
    let err = |source| ReportError::Template {
        name: template.to_string(),
        source,
    };
    let tmpl = env.get_template(template).map_err(err)?;
    let text = tmpl
        .render(minijinja::Value::from_serialize(&view))
        .map_err(err)?;
    Ok(tidy(&text))
}

/// At most one blank line in a row, none at the start, one before each heading, one trailing
/// newline: optional sections leave no gaps. Code blocks are kept as they are.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_blank = false;
    let mut in_code = false;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() && !in_code {
            pending_blank = !out.is_empty();
            continue;
        }
        // Headings always get a blank line before them (partials trim their own).
        let heading = !in_code && line.starts_with('#') && !out.is_empty();
        if pending_blank || (heading && !out.ends_with("\n\n")) {
            out.push('\n');
            pending_blank = false;
        }
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}
