//! `tracecheck run`'s flags (DESIGN "Commands and flags"). Every matrix flag is optional: unset,
//! the mode preset's value holds. Lists stay text here and are parsed by `plan` so that a bad
//! list is a [`RunError`](super::RunError) naming the flag, not a clap message.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::ArgAction;
use tracecheck_engine::trace::{Dtype, Numerics};

/// Runs a mode's sweep: one `tracecheck-engine capture` per cell, sequentially, into OUT.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// Mode preset: b3_81, b3_77 or b3_89.
    #[arg(long)]
    pub mode: String,
    /// The sweep directory (created; an existing sweep there is resumed).
    #[arg(long)]
    pub out: PathBuf,
    /// Backend(s), comma-separated: cpu, cuda.
    #[arg(long, value_name = "cpu|cuda[,…]")]
    pub backend: Option<String>,
    /// PATH.gguf, smollm2-135m (fetched into the cache up front) or dummy:SHAPE.
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Batch sizes, comma-separated.
    #[arg(long, value_name = "B[,B…]")]
    pub batches: Option<String>,
    /// Prompt lengths, comma-separated.
    #[arg(long, value_name = "N[,N…]")]
    pub ctx: Option<String>,
    /// Tokens generated per sequence.
    #[arg(long, value_name = "N")]
    pub gen: Option<usize>,
    /// Logit rows compared per sequence (≤ gen).
    #[arg(long, value_name = "N")]
    pub span: Option<usize>,
    #[arg(long, value_name = "f32|bf16")]
    pub dtype: Option<Dtype>,
    /// `fast` is a usage error on the CPU backend.
    #[arg(long, value_name = "fast|invariant")]
    pub numerics: Option<Numerics>,
    /// Attention implementation(s), comma-separated.
    #[arg(long, value_name = "naive|flash[,…]")]
    pub attn: Option<String>,
    #[arg(long, value_name = "true|false", action = ArgAction::Set,
          value_parser = BoolishValueParser::new())]
    pub kv_aligned: Option<bool>,
    /// Cap on the KV capacity (ctx + gen); above it a cell is a usage error.
    #[arg(long, value_name = "N")]
    pub max_ctx: Option<usize>,
    /// JSON prompt ids: a list, or a list of lists indexed by prompt (fixes ctx).
    #[arg(long, value_name = "FILE")]
    pub prompt_ids: Option<PathBuf>,
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Per-phase timeout, seconds: no engine event for this long kills the cell.
    #[arg(long, value_name = "S")]
    pub timeout: Option<f64>,
    /// Memory sampling period, seconds.
    #[arg(long, value_name = "S")]
    pub vram_period: Option<f64>,
    /// Memory the engine may use, MB (beyond it: FAIL_OOM).
    #[arg(long, value_name = "MB")]
    pub mem_limit: Option<u64>,
    /// A label kept in every cell key, for comparing variants of one engine.
    #[arg(long, value_name = "LABEL")]
    pub variant: Option<String>,
    /// Engine worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// The engine binary (default: $TRACECHECK_ENGINE, else tracecheck-engine beside this
    /// executable, else on PATH).
    #[arg(long, value_name = "PATH")]
    pub engine: Option<PathBuf>,
    /// Re-run and replace finished cells too.
    #[arg(long)]
    pub force: bool,
    /// The mode's small CPU configuration (SmolLM2-135M, f32).
    #[arg(long)]
    pub quick: bool,
}
