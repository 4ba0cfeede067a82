//! The history as plain data: runs (an analysed sweep each) and their per-cell, per-metric
//! values. The store reads and writes it; the comparison reads it; nothing here does I/O.

/// One analysed sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    /// `YYYYMMDDTHHMMSSZ-xxxxxx`: sortable by time, unique per history.
    pub run_id: String,
    /// Order of recording (1, 2, …): what "the last N runs" counts by.
    pub seq: i64,
    /// RFC 3339 UTC.
    pub recorded_at: String,
    pub mode: String,
    pub model: Option<String>,
    /// Part of the comparison key ("" when the traces do not say).
    pub model_sha256: String,
    /// Attributes: runs of different commits and hosts compare.
    pub engine_version: Option<String>,
    pub engine_revision: Option<String>,
    pub host: Option<String>,
    pub traces_dir: String,
    /// Accepted runs are the baseline of later ones.
    pub accepted: bool,
    /// Why it is (not) accepted: the automatic decision or the reason given to `history`.
    pub decision: String,
    pub tags: Vec<String>,
}

/// One metric of one cell of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredValue {
    pub cell: String,
    /// Part of the comparison key ("" when unknown).
    pub device: String,
    pub metric: String,
    pub unit: String,
    /// `higher_is_better`, `lower_is_better` or `status`.
    pub direction: String,
    /// None for the status row.
    pub value: Option<f64>,
    /// The cell's verdict in that run (every row carries it).
    pub verdict: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredRun {
    pub info: RunInfo,
    pub values: Vec<StoredValue>,
}

/// Every run of a history directory, in recording order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub runs: Vec<StoredRun>,
}

/// How a command names a run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RunLookupError {
    #[error("the history has no runs")]
    Empty,
    #[error("no run `{0}` (see `tracecheck history list`)")]
    NotFound(String),
    #[error("`{0}` matches {1} runs; give more of the run id")]
    Ambiguous(String, usize),
    #[error("no run is tagged `{0}` (tags: {1})")]
    NoTag(String, String),
}

impl History {
    pub fn next_seq(&self) -> i64 {
        self.runs.iter().map(|r| r.info.seq).max().unwrap_or(0) + 1
    }

    /// `latest`, a full run id, or a unique prefix of one.
    pub fn find(&self, name: &str) -> Result<usize, RunLookupError> {
        if self.runs.is_empty() {
            return Err(RunLookupError::Empty);
        }
        if name == "latest" {
            return Ok(self
                .runs
                .iter()
                .enumerate()
                .max_by_key(|(_, r)| r.info.seq)
                .map(|(i, _)| i)
                .unwrap_or(0));
        }
        if let Some(i) = self.runs.iter().position(|r| r.info.run_id == name) {
            return Ok(i);
        }
        let hits: Vec<usize> = (0..self.runs.len())
            .filter(|&i| self.runs[i].info.run_id.starts_with(name))
            .collect();
        match hits.len() {
            0 => Err(RunLookupError::NotFound(name.to_string())),
            1 => Ok(hits[0]),
            n => Err(RunLookupError::Ambiguous(name.to_string(), n)),
        }
    }

    pub fn tagged(&self, tag: &str) -> Result<usize, RunLookupError> {
        self.runs
            .iter()
            .position(|r| r.info.tags.iter().any(|t| t == tag))
            .ok_or_else(|| {
                let mut all: Vec<&str> = self
                    .runs
                    .iter()
                    .flat_map(|r| r.info.tags.iter().map(String::as_str))
                    .collect();
                all.sort_unstable();
                let all = if all.is_empty() {
                    "none".to_string()
                } else {
                    all.join(", ")
                };
                RunLookupError::NoTag(tag.to_string(), all)
            })
    }

    /// Moves `tag` to run `i` (a tag names one run).
    pub fn set_tag(&mut self, i: usize, tag: &str) {
        for r in &mut self.runs {
            r.info.tags.retain(|t| t != tag);
        }
        self.runs[i].info.tags.push(tag.to_string());
    }

    /// Removes `tag`; false when no run had it.
    pub fn remove_tag(&mut self, tag: &str) -> bool {
        let mut found = false;
        for r in &mut self.runs {
            let before = r.info.tags.len();
            r.info.tags.retain(|t| t != tag);
            found |= r.info.tags.len() != before;
        }
        found
    }
}

/// Tag names: letters, digits, `.`, `_`, `-` (they are stored comma-joined).
pub fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag != "latest"
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn run(seq: i64, id: &str) -> StoredRun {
        StoredRun {
            info: RunInfo {
                run_id: id.into(),
                seq,
                recorded_at: "2026-01-01T00:00:00Z".into(),
                mode: "b3_81".into(),
                model: Some("tiny".into()),
                model_sha256: "abc".into(),
                engine_version: Some("0.1.0".into()),
                engine_revision: None,
                host: Some("h".into()),
                traces_dir: "t".into(),
                accepted: true,
                decision: "auto".into(),
                tags: vec![],
            },
            values: vec![],
        }
    }

    #[test]
    fn runs_are_found_by_id_prefix_latest_and_tag() {
        let mut h = History {
            runs: vec![
                run(1, "20260101-aa"),
                run(2, "20260102-bb"),
                run(3, "20260102-bc"),
            ],
        };
        assert_eq!(h.find("latest"), Ok(2));
        assert_eq!(h.find("20260101"), Ok(0));
        assert_eq!(h.find("20260102-bb"), Ok(1));
        assert_eq!(
            h.find("20260102"),
            Err(RunLookupError::Ambiguous("20260102".into(), 2))
        );
        assert!(matches!(h.find("x"), Err(RunLookupError::NotFound(_))));
        assert_eq!(h.next_seq(), 4);
        h.set_tag(0, "v1");
        h.set_tag(1, "v1");
        assert_eq!(h.tagged("v1"), Ok(1));
        assert!(h.runs[0].info.tags.is_empty(), "a tag names one run");
        assert!(matches!(h.tagged("v2"), Err(RunLookupError::NoTag(_, t)) if t == "v1"));
        assert!(h.remove_tag("v1"));
        assert!(!h.remove_tag("v1"));
        assert!(History::default().find("latest") == Err(RunLookupError::Empty));
    }

    #[test]
    fn tag_names() {
        assert!(valid_tag("v1.2_rc-3"));
        assert!(!valid_tag("a,b") && !valid_tag("") && !valid_tag("latest") && !valid_tag("a b"));
    }
}
