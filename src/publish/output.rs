//! Writing the site into `--to`, which may already hold other files (a CNAME, a hand-written
//! page, an older site). `publish` owns only the files it wrote, listed in a manifest
//! (`.tracecheck-site.json`):
//!
//! - it refuses (before writing anything) to replace a file the manifest does not list;
//! - every file is written atomically (temp name + rename), so a reader or a web server never
//!   sees half a page;
//! - files of the previous site that the new one no longer has are removed, with the
//!   directories that this leaves empty; nothing else is touched.
//!
//! The manifest is first rewritten to list the old and the new files together, then to list
//! the new ones: an interrupted publish leaves no file that a later one would not own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracecheck_engine::trace::{write_file_atomic, write_file_atomic_with, TraceError};

use super::PublishError;

pub const MANIFEST: &str = ".tracecheck-site.json";

/// What a file of the site holds.
pub enum Content {
    Bytes(Vec<u8>),
    /// A copy of a source file (a chart, a log, summary.json).
    Copy(PathBuf),
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Manifest {
    tool: String,
    tool_version: String,
    /// Site-relative paths with `/` separators.
    files: BTreeSet<String>,
}

fn key(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// A manifest entry as a path inside `--to`; `None` for anything that could leave it.
fn entry_path(entry: &str) -> Option<PathBuf> {
    let p = Path::new(entry);
    p.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| p.to_path_buf())
}

fn read_manifest(to: &Path) -> Result<Manifest, PublishError> {
    let path = to.join(MANIFEST);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| PublishError::Manifest {
            path,
            reason: format!("{e} (remove it, and the files it listed, to publish afresh)"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
        Err(source) => Err(PublishError::Io { path, source }),
    }
}

fn write_manifest(to: &Path, files: BTreeSet<String>) -> Result<(), PublishError> {
    let m = Manifest {
        tool: "tracecheck".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        files,
    };
    let mut json = serde_json::to_string_pretty(&m).expect("a manifest serialises");
    json.push('\n');
    write_file_atomic(&to.join(MANIFEST), json.as_bytes()).map_err(PublishError::Write)
}

/// What [`write_site`] did.
pub struct Written {
    pub files: usize,
    pub removed: usize,
}

/// Writes `files` (site-relative) into `to`, removes the previous site's leftovers.
pub fn write_site(to: &Path, files: &BTreeMap<PathBuf, Content>) -> Result<Written, PublishError> {
    if to.exists() && !to.is_dir() {
        return Err(PublishError::Io {
            path: to.to_path_buf(),
            source: std::io::Error::other("exists and is not a directory"),
        });
    }
    let old = read_manifest(to)?;
    let new: BTreeSet<String> = files.keys().map(|p| key(p)).collect();

    // Check every target before the first write.
    for rel in files.keys() {
        let dest = to.join(rel);
        match std::fs::symlink_metadata(&dest) {
            Ok(m) if m.is_dir() => {
                return Err(PublishError::NotOurs {
                    path: dest,
                    why: "is a directory",
                })
            }
            Ok(_) if !old.files.contains(&key(rel)) => {
                return Err(PublishError::NotOurs {
                    path: dest,
                    why: "was not written by tracecheck publish",
                })
            }
            _ => {}
        }
    }

    std::fs::create_dir_all(to).map_err(|source| PublishError::Io {
        path: to.to_path_buf(),
        source,
    })?;
    write_manifest(to, old.files.union(&new).cloned().collect())?;
    for (rel, content) in files {
        let dest = to.join(rel);
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).map_err(|source| PublishError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        match content {
            Content::Bytes(b) => write_file_atomic(&dest, b),
            Content::Copy(src) => write_file_atomic_with(&dest, |tmp| {
                std::fs::copy(src, tmp)
                    .map(|_| ())
                    .map_err(|source| TraceError::Io {
                        path: src.clone(),
                        source,
                    })
            }),
        }
        .map_err(PublishError::Write)?;
    }

    let mut removed = 0;
    for stale in old.files.difference(&new).filter_map(|e| entry_path(e)) {
        let path = to.join(&stale);
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(PublishError::Io { path, source }),
        }
        // Directories the old site created and that are now empty go too.
        let mut dir = stale.parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            if std::fs::remove_dir(to.join(d)).is_err() {
                break;
            }
            dir = d.parent();
        }
    }
    write_manifest(to, new)?;
    Ok(Written {
        files: files.len(),
        removed,
    })
}
