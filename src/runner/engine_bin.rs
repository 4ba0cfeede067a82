//! Finding the engine binary and the one-off calls made to it before any cell: `--version`
//! (proves it runs, and goes into sweep.json) and `model fetch` (so that a download failure is
//! one clear error instead of every cell failing).

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::error::RunError;
use super::tail::last_bytes;

/// The engine's file name.
pub const ENGINE_NAME: &str = "tracecheck-engine";
/// Where a user points to another engine binary.
pub const ENGINE_ENV: &str = "TRACECHECK_ENGINE";

// `--version` answers at once; a binary that hangs on it is not a usable engine.
const VERSION_TIMEOUT: Duration = Duration::from_secs(30);

/// The engine binary: `explicit` (`--engine`), else `$TRACECHECK_ENGINE`, else
/// `tracecheck-engine` beside the current executable (or its parent directory, for cargo's
/// `target/*/deps` test binaries), else on `PATH`.
pub fn find_engine(explicit: Option<&Path>) -> Result<PathBuf, RunError> {
    let chosen = explicit.map(Path::to_path_buf).or_else(|| {
        std::env::var_os(ENGINE_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    if let Some(path) = chosen {
        return if path.is_file() {
            Ok(path)
        } else {
            Err(RunError::EngineNotFound {
                tried: format!("{} (no such file)", path.display()),
            })
        };
    }
    let file = format!("{ENGINE_NAME}{}", std::env::consts::EXE_SUFFIX);
    let mut tried = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        let mut dirs = vec![dir.clone()];
        if dir.file_name() == Some(OsStr::new("deps")) {
            dirs.extend(dir.parent().map(Path::to_path_buf));
        }
        for d in dirs {
            let p = d.join(&file);
            if p.is_file() {
                return Ok(p);
            }
            tried.push(p.display().to_string());
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            let p = d.join(&file);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    tried.push(format!("${ENGINE_ENV}, {file} on PATH"));
    Err(RunError::EngineNotFound {
        tried: tried.join(", "),
    })
}

/// Runs `ENGINE --version`; returns its first output line (e.g. `tracecheck-engine 0.1.0`).
pub fn engine_version(engine: &Path) -> Result<String, RunError> {
    let fault = |fault: String| RunError::EngineNotRunnable {
        path: engine.to_path_buf(),
        fault,
    };
    let out = output_within(Command::new(engine).arg("--version"), VERSION_TIMEOUT)
        .map_err(|e| fault(format!("cannot run it: {e}")))?
        .ok_or_else(|| {
            fault(format!(
                "`--version` gave no answer in {} s",
                VERSION_TIMEOUT.as_secs()
            ))
        })?;
    if !out.status.success() {
        return Err(fault(format!(
            "`--version` failed ({}): {}",
            describe_status(out.status),
            last_line(&out.stderr)
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty());
    line.map(str::to_string)
        .ok_or_else(|| fault("`--version` printed nothing".into()))
}

/// Runs `ENGINE model fetch NAME` (a no-op when the model is cached), within `limit`.
pub fn fetch_model(engine: &Path, name: &str, limit: Duration) -> Result<(), RunError> {
    let fail = |message: String| RunError::ModelFetch {
        model: name.to_string(),
        message,
    };
    let out = output_within(Command::new(engine).args(["model", "fetch", name]), limit)
        .map_err(|e| fail(format!("cannot run {}: {e}", engine.display())))?
        .ok_or_else(|| fail(format!("no answer within {} s", limit.as_secs_f64())))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.trim();
        // The engine's own message names the cache path to fill by hand when offline.
        let tail = last_bytes(err, 4000);
        let cut = if tail.len() < err.len() { "…" } else { "" };
        Err(fail(format!(
            "{cut}{tail} ({})",
            describe_status(out.status)
        )))
    }
}

/// "exit 3", "killed by signal 9".
pub fn describe_status(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return format!("killed by signal {sig}");
        }
    }
    status.to_string()
}

fn last_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("(no message)")
        .to_string()
}

/// Runs `cmd` with stdin closed and its output captured; `None` (the child killed and reaped)
/// when it does not finish within `limit`.
fn output_within(
    cmd: &mut Command,
    limit: Duration,
) -> std::io::Result<Option<std::process::Output>> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() >= limit {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Some(std::process::Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_engine_must_exist() {
        let e = find_engine(Some(Path::new("/no/such/engine"))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "tracecheck-engine not found (tried /no/such/engine (no such file)); build it or pass \
             --engine PATH"
        );
    }

    #[cfg(unix)]
    #[test]
    fn version_probe() {
        use super::super::tests_support::script;
        let d = tempfile::tempdir().unwrap();
        let ok = script(d.path(), "ok", "echo 'tracecheck-engine 9.9.9'");
        assert_eq!(engine_version(&ok).unwrap(), "tracecheck-engine 9.9.9");
        let bad = script(d.path(), "bad", "echo 'no such flag' >&2; exit 2");
        assert_eq!(
            engine_version(&bad).unwrap_err().to_string(),
            format!(
                "engine {}: `--version` failed (exit 2): no such flag",
                bad.display()
            )
        );
        let not_exec = d.path().join("plain");
        std::fs::write(&not_exec, "x").unwrap();
        assert!(engine_version(&not_exec)
            .unwrap_err()
            .to_string()
            .contains("cannot run it"));
        let fetch_fails = script(
            d.path(),
            "f",
            "echo 'offline: put the file at /c/x.gguf' >&2; exit 2",
        );
        let e = fetch_model(&fetch_fails, "smollm2-135m", Duration::from_secs(10)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--model smollm2-135m: fetching it failed: offline: put the file at /c/x.gguf (exit 2)"
        );
    }
}
