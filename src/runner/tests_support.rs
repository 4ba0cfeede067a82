//! Test helpers: fake engines as small shell scripts.

#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Writes an executable `#!/bin/sh` script `dir/name` with `body`.
#[cfg(unix)]
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    wait_until_executable(&path);
    path
}

/// A fake `tracecheck-engine`: answers `--version`, runs `body` for anything else.
#[cfg(unix)]
pub fn fake_engine(dir: &Path, body: &str) -> PathBuf {
    script(
        dir,
        "fake-engine",
        &format!(
            "if [ \"$1\" = \"--version\" ]; then echo 'tracecheck-engine 0.0.0-fake'; exit 0; fi\n{body}"
        ),
    )
}

// Another test thread may fork while our write handle is open; until that child execs, running
// the script fails with ETXTBSY ("text file busy"). The window is short: retry through it.
fn wait_until_executable(path: &Path) {
    for _ in 0..100 {
        match std::process::Command::new(path)
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
        {
            Err(e) if e.raw_os_error() == Some(26) => std::thread::sleep(Duration::from_millis(20)),
            _ => return,
        }
    }
}
