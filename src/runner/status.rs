//! How an engine process ended, and the cell status that follows (DESIGN "Engine ↔ runner
//! protocol": exit 0 OK, 2 bad input, 3 out of memory, 4 unsupported configuration, other or a
//! signal a crash).

use std::time::Duration;

use tracecheck_engine::trace::Status;

/// How one engine process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Exited(i32),
    /// Killed by a signal it did not expect (not the runner's timeout).
    Signaled(i32),
    /// The runner killed it: no event for `idle`.
    TimedOut {
        idle: Duration,
        /// The phase of the last event, and whether that phase had started (not ended).
        phase: Option<(String, bool)>,
    },
    /// The user interrupted the sweep (this signal); the cell is left for a resume.
    Interrupted(i32),
}

/// The status a cell gets from its engine's ending; `cell_ok` says whether a valid OK cell is
/// in place afterwards (what an exit 0 promises). `None` for an interrupted cell, which gets no
/// record.
pub fn status_of(ending: &Ending, cell_ok: bool) -> Option<Status> {
    Some(match ending {
        Ending::Exited(0) if cell_ok => Status::Ok,
        Ending::Exited(2) => Status::FailBadInput,
        Ending::Exited(3) => Status::FailOom,
        Ending::Exited(4) => Status::SkippedUnsupportedBatch,
        Ending::Exited(_) | Ending::Signaled(_) => Status::FailCrash,
        Ending::TimedOut { .. } => Status::FailTimeout,
        Ending::Interrupted(_) => return None,
    })
}

/// What happened, for a status-only record when the engine gave no message of its own.
pub fn describe(ending: &Ending) -> String {
    match ending {
        Ending::Exited(0) => "the engine exited 0".into(),
        Ending::Exited(code) => format!("the engine exited with code {code}"),
        Ending::Signaled(sig) => {
            format!("the engine was killed by signal {sig}{}", signal_name(*sig))
        }
        Ending::TimedOut { idle, phase } => {
            let when = match phase {
                Some((p, true)) => format!("during phase `{p}`"),
                Some((p, false)) => format!("after phase `{p}` ended"),
                None => "before its first event".into(),
            };
            format!(
                "no engine event for {} s {when} (per-phase timeout); the engine was killed",
                idle.as_secs_f64()
            )
        }
        Ending::Interrupted(sig) => format!("interrupted by signal {sig}{}", signal_name(*sig)),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => " (SIGHUP)",
        2 => " (SIGINT)",
        6 => " (SIGABRT)",
        7 => " (SIGBUS)",
        9 => " (SIGKILL, e.g. the kernel's OOM killer)",
        11 => " (SIGSEGV)",
        15 => " (SIGTERM)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_map_to_statuses() {
        let s = |e: Ending, ok| status_of(&e, ok);
        assert_eq!(s(Ending::Exited(0), true), Some(Status::Ok));
        assert_eq!(s(Ending::Exited(0), false), Some(Status::FailCrash));
        assert_eq!(s(Ending::Exited(2), false), Some(Status::FailBadInput));
        assert_eq!(s(Ending::Exited(3), false), Some(Status::FailOom));
        assert_eq!(
            s(Ending::Exited(4), false),
            Some(Status::SkippedUnsupportedBatch)
        );
        assert_eq!(s(Ending::Exited(1), false), Some(Status::FailCrash));
        assert_eq!(s(Ending::Exited(101), true), Some(Status::FailCrash));
        assert_eq!(s(Ending::Signaled(9), false), Some(Status::FailCrash));
        let t = Ending::TimedOut {
            idle: Duration::from_secs(600),
            phase: Some(("prefill".into(), true)),
        };
        assert_eq!(s(t.clone(), false), Some(Status::FailTimeout));
        assert_eq!(
            describe(&t),
            "no engine event for 600 s during phase `prefill` (per-phase timeout); the engine was killed"
        );
        assert_eq!(s(Ending::Interrupted(2), false), None);
        assert_eq!(
            describe(&Ending::Signaled(11)),
            "the engine was killed by signal 11 (SIGSEGV)"
        );
    }
}
