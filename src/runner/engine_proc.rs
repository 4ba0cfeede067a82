//! One engine process: started with stdin closed in its own process group, its stdout read line
//! by line on a thread that forwards the JSON events, its stderr kept as a bounded tail, and the
//! per-phase timeout enforced: no event within the timeout of the previous one (or of the
//! start) kills the whole group. The child is always reaped, whatever happens.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::interrupt;
use super::status::Ending;
use super::tail::Tail;

/// How often the wait loop looks for a user interrupt.
const TICK: Duration = Duration::from_millis(100);
/// After the engine ends, how long its stderr may take to drain (a grandchild holding the pipe
/// must not hang the sweep).
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Longest stdout line parsed as an event; longer ones are skipped.
const MAX_EVENT_LINE: u64 = 64 * 1024;

/// One JSON line of the engine's stdout (DESIGN "Engine ↔ runner protocol").
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EngineEvent {
    /// `start`, `end`, `done` or `error`.
    pub event: String,
    #[serde(default)]
    pub phase: Option<String>,
    /// Seconds since the engine started.
    #[serde(default)]
    pub t_s: Option<f64>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub cell: Option<String>,
    #[serde(default)]
    pub exit: Option<i64>,
    #[serde(default)]
    pub message: Option<String>,
}

/// What one engine process did.
#[derive(Debug, Clone)]
pub struct ProcReport {
    pub ending: Ending,
    /// The child's pid (its staged cell directory is named after it).
    pub pid: u32,
    /// The message of its `error` event.
    pub error_message: Option<String>,
    /// It printed a `done` event.
    pub done: bool,
    /// The cell directory its `done` event named.
    pub done_cell: Option<String>,
    pub stderr: Tail,
    pub elapsed: Duration,
}

/// Runs `program args…` to its end (or kills it on timeout or interrupt); `on_event` sees every
/// event as it arrives. Fails only when the process cannot be started.
pub fn run_engine(
    program: &Path,
    args: &[OsString],
    timeout: Duration,
    on_event: &mut dyn FnMut(&EngineEvent),
) -> std::io::Result<ProcReport> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // A group of its own, so a kill reaches whatever the engine started too.
        cmd.process_group(0);
    }
    let start = Instant::now();
    let mut child = Reaper::new(cmd.spawn()?);
    let pid = child.id();

    let (ev_tx, ev_rx) = mpsc::channel::<EngineEvent>();
    if let Some(stdout) = child.take_stdout() {
        std::thread::spawn(move || read_events(stdout, ev_tx));
    }
    let tail = Arc::new(Mutex::new(Tail::default()));
    let (err_done_tx, err_done_rx) = mpsc::channel::<()>();
    if let Some(stderr) = child.take_stderr() {
        let tail = Arc::clone(&tail);
        std::thread::spawn(move || {
            read_tail(stderr, &tail);
            let _ = err_done_tx.send(());
        });
    } else {
        drop(err_done_tx);
    }

    let mut error_message = None;
    let mut done = false;
    let mut done_cell = None;
    let mut phase: Option<(String, bool)> = None;
    let mut last_event = start;
    let mut stdout_open = true;
    let ending = loop {
        if let Some(sig) = interrupt::pending() {
            child.kill_group();
            child.wait()?;
            break Ending::Interrupted(sig);
        }
        let deadline = last_event + timeout;
        let now = Instant::now();
        if now >= deadline {
            child.kill_group();
            child.wait()?;
            break Ending::TimedOut {
                idle: timeout,
                phase,
            };
        }
        let wait = (deadline - now).min(TICK);
        if stdout_open {
            match ev_rx.recv_timeout(wait) {
                Ok(ev) => {
                    last_event = Instant::now();
                    match ev.event.as_str() {
                        "error" => error_message = ev.message.clone(),
                        "done" => {
                            done = true;
                            done_cell = ev.cell.clone();
                        }
                        "start" | "end" => {
                            if let Some(p) = &ev.phase {
                                phase = Some((p.clone(), ev.event == "start"));
                            }
                        }
                        _ => {}
                    }
                    on_event(&ev);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => stdout_open = false,
            }
        } else if let Some(status) = child.try_wait()? {
            break ending_of(status);
        } else {
            // Stdout closed but the process lives on: the same timeout applies.
            std::thread::sleep(wait.min(Duration::from_millis(20)));
        }
    };
    let elapsed = start.elapsed();
    let _ = err_done_rx.recv_timeout(DRAIN_GRACE);
    let stderr = tail.lock().map(|t| t.clone()).unwrap_or_default();
    Ok(ProcReport {
        ending,
        pid,
        error_message,
        done,
        done_cell,
        stderr,
        elapsed,
    })
}

fn ending_of(status: ExitStatus) -> Ending {
    if let Some(code) = status.code() {
        return Ending::Exited(code);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return Ending::Signaled(sig);
        }
    }
    Ending::Exited(-1)
}

/// Forwards each stdout line that parses as an event; other output is ignored.
fn read_events(stdout: impl Read, tx: mpsc::Sender<EngineEvent>) {
    let mut r = BufReader::new(stdout);
    let mut buf = Vec::new();
    let mut skipping = false;
    loop {
        buf.clear();
        match (&mut r).take(MAX_EVENT_LINE).read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let complete = buf.ends_with(b"\n");
        // The rest of an over-long line is not an event either.
        if skipping || (!complete && buf.len() as u64 >= MAX_EVENT_LINE) {
            skipping = !complete;
            continue;
        }
        if let Ok(ev) = serde_json::from_slice::<EngineEvent>(buf.trim_ascii()) {
            if tx.send(ev).is_err() {
                return;
            }
        }
    }
}

fn read_tail(stderr: impl Read, tail: &Mutex<Tail>) {
    let mut r = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        // Bounded reads: a line without end is split rather than held whole.
        match (&mut r).take(MAX_EVENT_LINE).read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if let Ok(mut t) = tail.lock() {
                    t.push_line(&buf);
                }
            }
        }
    }
}

/// The child, killed (with its group) and reaped on drop if nothing else did: no zombie and no
/// orphaned engine on any path out of [`run_engine`].
struct Reaper {
    child: Child,
    reaped: bool,
}

impl Reaper {
    fn new(child: Child) -> Reaper {
        interrupt::set_child_group(Some(child.id()));
        Reaper {
            child,
            reaped: false,
        }
    }

    fn id(&self) -> u32 {
        self.child.id()
    }

    fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    fn take_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.child.stderr.take()
    }

    /// SIGKILL to the whole group (the engine and anything it started), then to the child
    /// itself in case the group call failed. Only called before the child is reaped, so the
    /// group id cannot have been reused.
    fn kill_group(&mut self) {
        if self.reaped {
            return;
        }
        #[cfg(unix)]
        if let Ok(pgid) = i32::try_from(self.child.id()) {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
    }

    fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let status = self.child.wait()?;
        self.mark_reaped();
        Ok(status)
    }

    fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        let status = self.child.try_wait()?;
        if status.is_some() {
            self.mark_reaped();
        }
        Ok(status)
    }

    fn mark_reaped(&mut self) {
        self.reaped = true;
        interrupt::set_child_group(None);
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill_group();
            let _ = self.child.wait();
            interrupt::set_child_group(None);
        }
    }
}
