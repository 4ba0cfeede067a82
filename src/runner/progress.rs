//! Sweep progress on stderr: an indicatif bar (cell i/n, key, phase) on a terminal; otherwise
//! plain lines, one when a cell starts and one when it ends (status and seconds), for CI logs.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracecheck_engine::trace::Status;

use super::engine_proc::EngineEvent;

/// Where progress goes.
pub struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
}

impl Progress {
    /// A bar when stderr is a terminal, plain lines otherwise.
    pub fn auto(total: usize) -> Progress {
        if std::io::stderr().is_terminal() {
            Progress::bar(total)
        } else {
            Progress::plain(total)
        }
    }

    /// Plain lines.
    pub fn plain(total: usize) -> Progress {
        Progress { bar: None, total }
    }

    fn bar(total: usize) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        // The template is a constant; fall back to the default style rather than fail.
        if let Ok(style) = ProgressStyle::with_template(
            "{elapsed_precise} [{bar:24.cyan/blue}] {pos}/{len} {wide_msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(250));
        Progress {
            bar: Some(bar),
            total,
        }
    }

    /// A line that is not about one cell (e.g. a model fetch).
    pub fn note(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Cell `i` (0-based) was finished earlier and is kept.
    pub fn kept(&self, i: usize, key: &str) {
        let line = format!("[{}/{}] kept {key} (finished earlier)", i + 1, self.total);
        match &self.bar {
            Some(bar) => {
                bar.println(line);
                bar.inc(1);
            }
            None => eprintln!("{line}"),
        }
    }

    pub fn start(&self, i: usize, key: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(format!("{key} · starting")),
            None => eprintln!("[{}/{}] start {key}", i + 1, self.total),
        }
    }

    /// An engine event of the running cell (the bar shows its phase).
    pub fn event(&self, key: &str, ev: &EngineEvent) {
        if let (Some(bar), Some(phase)) = (&self.bar, &ev.phase) {
            if ev.event == "start" {
                bar.set_message(format!("{key} · {phase}"));
            }
        }
    }

    pub fn end(&self, i: usize, key: &str, status: Status, seconds: f64, message: Option<&str>) {
        let mut line = format!("[{}/{}] {status} {key} ({seconds:.1} s)", i + 1, self.total);
        if let Some(m) = message {
            line.push_str(": ");
            line.push_str(m);
        }
        match &self.bar {
            Some(bar) => {
                bar.println(line);
                bar.inc(1);
            }
            None => eprintln!("{line}"),
        }
    }

    /// Clears the bar and prints the summary line.
    pub fn finish(&self, summary: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        eprintln!("{summary}");
    }
}
