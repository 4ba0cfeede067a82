//! `tracecheck`: run sweeps, analyse traces, validate them, bless goldens, publish reports.
//! Exit codes: 0 OK, 1 gate failed, 2 bad input.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use tracecheck::analyze::{analyze, AnalyzeArgs};
use tracecheck::golden::{bless, BlessOptions};
use tracecheck::publish::{publish, PublishOptions};
use tracecheck::runner::{run, RunArgs};

#[derive(Parser)]
#[command(
    name = "tracecheck",
    version,
    about = "Prove an LLM engine's decode path, batch sizes and history agree; report and gate CI"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a mode's sweep: one tracecheck-engine process per cell.
    Run(Box<RunArgs>),
    /// Analyse a traces directory: verdicts, report, summary.json, CI gate.
    Analyze(Box<AnalyzeArgs>),
    /// Check a traces directory (any engine's) against the trace format.
    Validate { dir: std::path::PathBuf },
    /// The run history: list runs, accept, reject or tag them (see `analyze --history`).
    History {
        #[command(subcommand)]
        cmd: tracecheck::history::cli::HistoryCmd,
    },
    /// Replace a golden set with a sweep (shows the drift first; writes only with --yes).
    Bless {
        #[arg(long)]
        traces_dir: std::path::PathBuf,
        #[arg(long)]
        golden: std::path::PathBuf,
        #[arg(long)]
        yes: bool,
    },
    /// Publish reports as a static HTML site (index, pages, charts; relative links only).
    Publish {
        /// The directory of Markdown reports (searched recursively).
        #[arg(long)]
        reports: std::path::PathBuf,
        /// The site's directory; files in it that publish did not write are left alone.
        #[arg(long)]
        to: std::path::PathBuf,
        /// The index page's title.
        #[arg(long)]
        title: Option<String>,
    },
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("tracecheck: {e}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let argv: Vec<String> = std::env::args().collect();
    match cli.cmd {
        Cmd::Run(a) => match run(&a) {
            Ok(o) => ExitCode::from(o.exit_code.clamp(0, 255) as u8),
            Err(e) => fail(e),
        },
        Cmd::Analyze(a) => match analyze(&a, argv) {
            Ok(o) => {
                let s = &o.summary;
                for c in &s.cells {
                    let why = if c.verdict.passed() {
                        String::new()
                    } else {
                        format!(" — {}", c.reasons.join("; "))
                    };
                    eprintln!("{:<60} {}{why}", c.key, c.verdict);
                }
                for p in &s.overall.problems {
                    eprintln!("problem: {p}");
                }
                let counts: Vec<String> = s
                    .overall
                    .counts
                    .iter()
                    .map(|(k, v)| format!("{v} {k}"))
                    .collect();
                eprintln!("{} cells: {}", s.cells.len(), counts.join(", "));
                if let Some(h) = &s.history {
                    for line in tracecheck::history::terminal_lines(h) {
                        eprintln!("{line}");
                    }
                }
                if let Some(g) = &s.overall.gate {
                    eprintln!(
                        "gate {g}: {}",
                        if s.overall.gate_passed {
                            "passed"
                        } else {
                            "FAILED"
                        }
                    );
                }
                eprintln!(
                    "report: {}\nsummary: {}",
                    o.report.display(),
                    o.summary_path.display()
                );
                ExitCode::from(s.overall.exit_code as u8)
            }
            Err(e) => fail(e),
        },
        Cmd::History { cmd } => match tracecheck::history::cli::run(&cmd, &mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        },
        Cmd::Validate { dir } => match tracecheck::validate::validate(&dir, &mut std::io::stdout())
        {
            Ok(0) => ExitCode::SUCCESS,
            Ok(_) => ExitCode::from(2),
            Err(e) => fail(e),
        },
        Cmd::Bless {
            traces_dir,
            golden,
            yes,
        } => {
            match bless(
                &BlessOptions {
                    traces_dir,
                    golden,
                    yes,
                },
                &mut std::io::stdout(),
            ) {
                Ok(code) => ExitCode::from(code as u8),
                Err(e) => fail(e),
            }
        }
        Cmd::Publish { reports, to, title } => {
            match publish(&PublishOptions { reports, to, title }) {
                Ok(o) => {
                    for w in &o.warnings {
                        eprintln!("warning: {w}");
                    }
                    for p in &o.problems {
                        eprintln!("problem: {p}");
                    }
                    eprintln!(
                        "published {} pages ({} sweeps), {} files, {} stale files removed: {}",
                        o.pages,
                        o.sweeps,
                        o.files,
                        o.removed,
                        o.index.display()
                    );
                    ExitCode::from(o.exit_code() as u8)
                }
                Err(e) => fail(e),
            }
        }
    }
}
