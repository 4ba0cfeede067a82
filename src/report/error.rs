//! Errors of report rendering: each names the file involved and what went wrong with it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("report output {path}: {reason}")]
    BadOutput { path: PathBuf, reason: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("template {name}: {source:#}")]
    Template {
        name: String,
        #[source]
        source: minijinja::Error,
    },

    #[error("chart {path}: {message}")]
    Chart { path: PathBuf, message: String },

    #[error("embedded font {name}: not a valid TrueType font")]
    Font { name: String },
}

impl ReportError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ReportError::Io {
            path: path.into(),
            source,
        }
    }
}
