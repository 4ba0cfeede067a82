//! Atomic file writes: readers never see a half-written report.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::ReportError;

/// A temp name in the same directory (rename is atomic only within a filesystem). Keeps the
/// extension so encoders that pick the format from it still work.
fn temp_path_for(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{}.tmp-{}", std::process::id(), name))
}

/// Moves a finished temp file into place.
fn commit(tmp: &Path, path: &Path) -> Result<(), ReportError> {
    std::fs::rename(tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(tmp);
        ReportError::io(path, e)
    })
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let tmp = temp_path_for(path);
    let result =
        std::fs::File::create(&tmp).and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(ReportError::io(&tmp, e));
    }
    commit(&tmp, path)
}
