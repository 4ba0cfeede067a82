//! The Execution Commands section: the exact commands, shell-quoted.

use serde::Serialize;

use crate::report::context::ReportContext;
use crate::report::format;
use crate::summary::Summary;

#[derive(Debug, Serialize)]
pub(crate) struct CommandsView {
    /// One entry per run command, each possibly spanning lines with `\` continuations.
    pub run: Vec<String>,
    pub analyze: Option<String>,
}

/// The caller's run commands, else the argv recorded in sweep.json.
pub(crate) fn run_commands(summary: &Summary, ctx: &ReportContext) -> Vec<Vec<String>> {
    if !ctx.run_commands.is_empty() {
        ctx.run_commands.clone()
    } else {
        summary.run_argv.clone().into_iter().collect()
    }
}

pub(super) fn build(summary: &Summary, ctx: &ReportContext) -> CommandsView {
    let analyze = if ctx.analyze_command.is_empty() {
        &summary.analyze_argv
    } else {
        &ctx.analyze_command
    };
    CommandsView {
        run: run_commands(summary, ctx)
            .iter()
            .filter(|argv| !argv.is_empty())
            .map(|argv| format::shell_command(argv))
            .collect(),
        analyze: (!analyze.is_empty()).then(|| format::shell_command(analyze)),
    }
}
