//! Atomic writes: a file or a whole cell directory appears under its final name complete or not
//! at all, so a crash, an OOM kill or a timeout never leaves a half-written trace behind that a
//! reader (or a resumed sweep) would take for a finished one.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::trace::TraceError;

// Distinguishes temp files of concurrent writers in one process (the pid covers processes).
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to `path` via a temp file in the same directory (so the rename cannot cross
/// file systems), fsynced before the rename and the directory fsynced after it.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), TraceError> {
    write_file_atomic_with(path, |tmp| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp)
            .map_err(|e| TraceError::io(tmp, e))?;
        f.write_all(bytes).map_err(|e| TraceError::io(tmp, e))
    })
}

/// Like [`write_file_atomic`], for writers that need a path (e.g. a serialiser that streams to a
/// file): `fill` creates and writes the temp path it is given; on any error the temp file is
/// removed and `path` is left as it was.
pub fn write_file_atomic_with<F>(path: &Path, fill: F) -> Result<(), TraceError>
where
    F: FnOnce(&Path) -> Result<(), TraceError>,
{
    let name = path
        .file_name()
        .ok_or_else(|| TraceError::invalid(path, "not a file path"))?;
    let dir = parent_of(path);
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = fill(&tmp).and_then(|()| {
        sync_file(&tmp)?;
        fs::rename(&tmp, path).map_err(|e| TraceError::io(path, e))?;
        sync_dir(dir);
        Ok(())
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn sync_file(path: &Path) -> Result<(), TraceError> {
    // Opened for writing: Windows refuses to flush a read-only handle.
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| TraceError::io(path, e))
}

// Best effort: makes the rename durable on Unix; directories cannot be opened on Windows.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Checks that `key` is a single, visible path component (never `..`, never hidden, which is
/// where temp directories live).
fn check_key(parent: &Path, key: &str) -> Result<(), TraceError> {
    let ok = !key.is_empty()
        && !key.starts_with('.')
        && !key.contains(['/', '\\', '\0'])
        && Path::new(key).file_name() == Some(key.as_ref());
    if ok {
        Ok(())
    } else {
        Err(TraceError::invalid(
            &parent.join(key),
            format!("`{key}` is not usable as a cell directory name"),
        ))
    }
}

/// A cell directory being built under `<parent>/.tmp-<key>-<pid>`, renamed to `<parent>/<key>`
/// by [`StagedDir::commit`]. Dropped without a commit, it removes itself.
#[derive(Debug)]
pub struct StagedDir {
    tmp: PathBuf,
    final_path: PathBuf,
    parent: PathBuf,
    key: String,
    force: bool,
    committed: bool,
}

impl StagedDir {
    /// Starts a cell directory. Fails early with [`TraceError::CellExists`] when `<parent>/<key>`
    /// exists and `force` is false. Creates `parent` when needed.
    pub fn begin(parent: &Path, key: &str, force: bool) -> Result<StagedDir, TraceError> {
        check_key(parent, key)?;
        let final_path = parent.join(key);
        if final_path.exists() && !force {
            return Err(TraceError::CellExists { path: final_path });
        }
        fs::create_dir_all(parent).map_err(|e| TraceError::io(parent, e))?;
        let tmp = parent.join(format!(".tmp-{key}-{}", std::process::id()));
        // Left by an earlier process that had our pid and died mid-write: never visible, stale.
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| TraceError::io(&tmp, e))?;
        }
        fs::create_dir(&tmp).map_err(|e| TraceError::io(&tmp, e))?;
        Ok(StagedDir {
            tmp,
            final_path,
            parent: parent.to_path_buf(),
            key: key.to_string(),
            force,
            committed: false,
        })
    }

    /// The temp directory to write into.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// The name the directory will have after the commit.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// Writes one file into the staged directory and fsyncs it; returns its (temp) path.
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, TraceError> {
        let path = self.tmp.join(name);
        let mut f = File::create(&path).map_err(|e| TraceError::io(&path, e))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| TraceError::io(&path, e))?;
        Ok(path)
    }

    /// Renames the staged directory to its final name. With `force`, an existing directory is
    /// moved aside first and deleted after; for that instant the name is absent, but it never
    /// shows a partial cell.
    pub fn commit(mut self) -> Result<PathBuf, TraceError> {
        sync_dir(&self.tmp);
        let mut old = None;
        if self.final_path.exists() {
            if !self.force {
                return Err(TraceError::CellExists {
                    path: self.final_path.clone(),
                });
            }
            let aside = self
                .parent
                .join(format!(".old-{}-{}", self.key, std::process::id()));
            if aside.exists() {
                fs::remove_dir_all(&aside).map_err(|e| TraceError::io(&aside, e))?;
            }
            fs::rename(&self.final_path, &aside)
                .map_err(|e| TraceError::io(&self.final_path, e))?;
            old = Some(aside);
        }
        if let Err(e) = fs::rename(&self.tmp, &self.final_path) {
            // Put the previous cell back rather than lose it.
            if let Some(aside) = &old {
                let _ = fs::rename(aside, &self.final_path);
            }
            return Err(TraceError::io(&self.final_path, e));
        }
        self.committed = true;
        sync_dir(&self.parent);
        if let Some(aside) = old {
            fs::remove_dir_all(&aside).map_err(|e| TraceError::io(&aside, e))?;
        }
        Ok(self.final_path.clone())
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn file_write_replaces_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.json");
        write_file_atomic(&p, b"one").unwrap();
        write_file_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(names(d.path()), ["a.json"]);
    }

    #[test]
    fn failed_fill_leaves_target_untouched_and_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.json");
        write_file_atomic(&p, b"old").unwrap();
        let err = write_file_atomic_with(&p, |tmp| {
            fs::write(tmp, b"partial").unwrap();
            Err(TraceError::invalid(tmp, "simulated failure"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("simulated failure"));
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(names(d.path()), ["a.json"]);
    }

    #[test]
    fn write_into_missing_dir_fails_cleanly() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("no/such/dir/a.json");
        let err = write_file_atomic(&p, b"x").unwrap_err();
        assert!(matches!(err, TraceError::Io { .. }), "{err}");
        assert!(names(d.path()).is_empty());
    }

    #[test]
    fn staged_dir_is_invisible_until_commit() {
        let d = tempfile::tempdir().unwrap();
        let s = StagedDir::begin(d.path(), "cell", false).unwrap();
        s.write_file("run.json", b"{}").unwrap();
        assert!(!d.path().join("cell").exists());
        assert_eq!(names(d.path()).len(), 1);
        assert!(names(d.path())[0].starts_with(".tmp-cell-"));
        let fin = s.commit().unwrap();
        assert_eq!(fin, d.path().join("cell"));
        assert_eq!(names(d.path()), ["cell"]);
        assert_eq!(names(&fin), ["run.json"]);
    }

    #[test]
    fn dropped_stage_is_removed() {
        let d = tempfile::tempdir().unwrap();
        {
            let s = StagedDir::begin(d.path(), "cell", false).unwrap();
            s.write_file("run.json", b"{}").unwrap();
        }
        assert!(names(d.path()).is_empty());
    }

    #[test]
    fn existing_cell_needs_force() {
        let d = tempfile::tempdir().unwrap();
        let s = StagedDir::begin(d.path(), "cell", false).unwrap();
        s.write_file("old.txt", b"1").unwrap();
        s.commit().unwrap();

        let err = StagedDir::begin(d.path(), "cell", false).unwrap_err();
        assert!(matches!(err, TraceError::CellExists { .. }), "{err}");

        let s = StagedDir::begin(d.path(), "cell", true).unwrap();
        s.write_file("new.txt", b"2").unwrap();
        s.commit().unwrap();
        assert_eq!(names(d.path()), ["cell"]);
        assert_eq!(names(&d.path().join("cell")), ["new.txt"]);
    }

    #[test]
    fn rejects_bad_keys() {
        let d = tempfile::tempdir().unwrap();
        for k in ["", ".", "..", ".hidden", "a/b", "../x"] {
            assert!(StagedDir::begin(d.path(), k, false).is_err(), "{k:?}");
        }
        assert!(names(d.path()).is_empty());
    }
}
