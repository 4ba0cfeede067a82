//! `tracecheck history list|accept|reject|tag|untag`: look at the recorded runs and decide which
//! count as the baseline. RUN is a run id, a unique prefix of one, or `latest` (the default).

use std::path::PathBuf;

use super::HistoryError;

#[derive(Debug, Clone, clap::Subcommand)]
pub enum HistoryCmd {
    /// List the recorded runs, newest first.
    List {
        #[arg(long, value_name = "DIR")]
        history: PathBuf,
        /// Only runs of this mode.
        #[arg(long)]
        mode: Option<String>,
        /// Runs shown (0: all).
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Accept a run: its values join the baseline of later runs (e.g. an intended change).
    Accept {
        #[arg(long, value_name = "DIR")]
        history: PathBuf,
        #[arg(default_value = "latest")]
        run: String,
        /// Why (kept with the run).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Reject a run: later runs are no longer compared with it.
    Reject {
        #[arg(long, value_name = "DIR")]
        history: PathBuf,
        #[arg(default_value = "latest")]
        run: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Tag a run; `analyze --baseline NAME` compares with it. A tag names one run: tagging
    /// another run moves it.
    Tag {
        #[arg(long, value_name = "DIR")]
        history: PathBuf,
        name: String,
        #[arg(default_value = "latest")]
        run: String,
    },
    /// Remove a tag.
    Untag {
        #[arg(long, value_name = "DIR")]
        history: PathBuf,
        name: String,
    },
}

/// Runs a history command, printing to `out`.
#[cfg(not(feature = "history"))]
pub fn run(_cmd: &HistoryCmd, _out: &mut dyn std::io::Write) -> Result<(), HistoryError> {
    Err(HistoryError::NotBuilt("tracecheck history"))
}

/// Runs a history command, printing to `out`.
#[cfg(feature = "history")]
pub fn run(cmd: &HistoryCmd, out: &mut dyn std::io::Write) -> Result<(), HistoryError> {
    use super::model::valid_tag;
    use super::numerics;
    use super::store::Store;

    let write_err = |e: std::io::Error| HistoryError::Io {
        path: PathBuf::from("<stdout>"),
        what: e.to_string(),
    };
    match cmd {
        HistoryCmd::List {
            history,
            mode,
            limit,
        } => {
            if !history.is_dir() {
                return Err(HistoryError::Io {
                    path: history.clone(),
                    what: "no history directory here".into(),
                });
            }
            let h = Store::new(history).load()?;
            list(&h, mode.as_deref(), *limit, out).map_err(write_err)
        }
        HistoryCmd::Accept {
            history,
            run,
            reason,
        }
        | HistoryCmd::Reject {
            history,
            run,
            reason,
        } => {
            let accept = matches!(cmd, HistoryCmd::Accept { .. });
            let store = existing(history)?;
            let _lock = store.lock()?;
            let mut h = store.load()?;
            let i = h.find(run).map_err(|source| HistoryError::Lookup {
                dir: history.clone(),
                source,
            })?;
            let now = tracecheck_engine::trace::rfc3339_utc(std::time::SystemTime::now());
            let r = &mut h.runs[i].info;
            r.accepted = accept;
            r.decision = format!(
                "{} by `tracecheck history` at {now}{}",
                if accept { "accepted" } else { "rejected" },
                reason
                    .as_deref()
                    .map(|x| format!(": {x}"))
                    .unwrap_or_default()
            );
            let id = r.run_id.clone();
            store.save(&h)?;
            let _ = numerics::prune(history, &h);
            writeln!(
                out,
                "run {id}: {}",
                if accept { "accepted" } else { "rejected" }
            )
            .map_err(write_err)
        }
        HistoryCmd::Tag { history, name, run } => {
            if !valid_tag(name) {
                return Err(HistoryError::Usage(format!(
                    "tag `{name}`: use letters, digits, `.`, `_` and `-` (not `latest`)"
                )));
            }
            let store = existing(history)?;
            let _lock = store.lock()?;
            let mut h = store.load()?;
            let i = h.find(run).map_err(|source| HistoryError::Lookup {
                dir: history.clone(),
                source,
            })?;
            h.set_tag(i, name);
            store.save(&h)?;
            let _ = numerics::prune(history, &h);
            writeln!(out, "run {}: tagged {name}", h.runs[i].info.run_id).map_err(write_err)
        }
        HistoryCmd::Untag { history, name } => {
            let store = existing(history)?;
            let _lock = store.lock()?;
            let mut h = store.load()?;
            if !h.remove_tag(name) {
                return Err(HistoryError::Lookup {
                    dir: history.clone(),
                    source: super::model::RunLookupError::NotFound(format!("tag {name}")),
                });
            }
            store.save(&h)?;
            let _ = numerics::prune(history, &h);
            writeln!(out, "tag {name} removed").map_err(write_err)
        }
    }
}

/// The store of a directory that holds a history (commands that change one never create it).
#[cfg(feature = "history")]
fn existing(dir: &std::path::Path) -> Result<super::store::Store, HistoryError> {
    let store = super::store::Store::new(dir);
    if !store.file().is_file() {
        return Err(HistoryError::Io {
            path: store.file(),
            what: "no history here (analyze --history DIR records the first run)".into(),
        });
    }
    Ok(store)
}

#[cfg(feature = "history")]
fn list(
    h: &super::model::History,
    mode: Option<&str>,
    limit: usize,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let runs: Vec<_> = h
        .runs
        .iter()
        .rev()
        .filter(|r| mode.is_none_or(|m| r.info.mode == m))
        .collect();
    let shown = if limit == 0 {
        runs.len()
    } else {
        limit.min(runs.len())
    };
    writeln!(
        out,
        "| Run | Recorded | Mode | Model | Device | Revision | Cells | Accepted | Tags | Decision |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|---|---|---|")?;
    for r in &runs[..shown] {
        let i = &r.info;
        let mut devices: Vec<&str> = r.values.iter().map(|v| v.device.as_str()).collect();
        devices.sort_unstable();
        devices.dedup();
        let cells = r
            .values
            .iter()
            .filter(|v| v.metric == super::metrics::STATUS)
            .count();
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            i.run_id,
            i.recorded_at,
            i.mode,
            i.model.as_deref().unwrap_or("?"),
            devices.join(", "),
            i.engine_revision.as_deref().unwrap_or("—"),
            cells,
            if i.accepted { "yes" } else { "no" },
            i.tags.join(", "),
            i.decision
        )?;
    }
    if shown < runs.len() {
        writeln!(
            out,
            "\n{} older runs not shown (--limit 0 shows all)",
            runs.len() - shown
        )?;
    }
    Ok(())
}
