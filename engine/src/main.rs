//! `tracecheck-engine`: captures one cell's trace (`capture`) and manages models (`model`).
//! Exit codes: 0 OK, 2 bad input or usage, 3 out of memory, 4 unsupported configuration.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use tracecheck_engine::backend::BackendKind;
use tracecheck_engine::capture::{capture, CaptureError, CaptureSpec, ModelSpec};
use tracecheck_engine::fetch;
use tracecheck_engine::model::{self, ModelSource};
use tracecheck_engine::trace::{AttnImpl, Dtype, Numerics};

#[derive(Parser)]
#[command(
    name = "tracecheck-engine",
    version,
    about = "tracecheck's bundled LLM engine: captures prefill/decode logits traces"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Capture one cell: prompt prefill, greedy decode, reference prefill; write DIR/<cell-key>/.
    Capture(Box<CaptureArgs>),
    /// Fetch or inspect models.
    Model {
        #[command(subcommand)]
        cmd: ModelCmd,
    },
}

#[derive(Subcommand)]
enum ModelCmd {
    /// Download a known model into the cache (smollm2-135m; tiny is written locally).
    Fetch { name: String },
    /// Print a GGUF model's metadata and tensors (or a dummy:SHAPE's config).
    Info { model: String },
    /// Write the tiny test model (a GGUF file; byte-stable).
    MakeTiny { path: PathBuf },
    /// Print the cache directory.
    CacheDir,
}

#[derive(Args)]
struct CaptureArgs {
    /// The sweep directory; the cell is written to OUT/<cell-key>/.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value = "adhoc")]
    mode: String,
    /// PATH.gguf, smollm2-135m (cached, fetched when missing), tiny (the test model) or dummy:SHAPE.
    #[arg(long, default_value = "smollm2-135m")]
    model: String,
    #[arg(long, default_value = "cpu")]
    backend: String,
    #[arg(long, default_value_t = 1)]
    batch: usize,
    #[arg(long, default_value_t = 0)]
    prompt_offset: usize,
    /// Prompt length P (taken from --prompt-ids when given).
    #[arg(long)]
    ctx: Option<usize>,
    #[arg(long, default_value_t = 16)]
    gen: usize,
    #[arg(long, default_value_t = 8)]
    span: usize,
    #[arg(long, default_value = "f32")]
    dtype: String,
    #[arg(long, default_value = "invariant")]
    numerics: String,
    #[arg(long, default_value = "flash")]
    attn: String,
    #[arg(long)]
    variant: Option<String>,
    #[arg(long, default_value = "true")]
    kv_aligned: String,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Cap on the KV capacity (P + gen); above it the cell is a usage error.
    #[arg(long)]
    max_ctx: Option<usize>,
    /// JSON: a list of ids, or a list of lists indexed by prompt.
    #[arg(long)]
    prompt_ids: Option<PathBuf>,
    /// Memory the backend may use, MB (beyond it: out of memory, exit 3).
    #[arg(long)]
    mem_limit: Option<u64>,
    /// Memory sampling period, seconds.
    #[arg(long, default_value_t = 1.0)]
    vram_period: f64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Replace an existing cell directory.
    #[arg(long)]
    force: bool,
}

fn parse<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, CaptureError>
where
    T::Err: std::fmt::Display,
{
    v.parse()
        .map_err(|e| CaptureError::BadInput(format!("--{flag} {v}: {e}")))
}

fn spec_from(a: &CaptureArgs) -> Result<CaptureSpec, CaptureError> {
    let kv_aligned = match a.kv_aligned.as_str() {
        "true" | "1" => true,
        "false" | "0" => false,
        other => {
            return Err(CaptureError::BadInput(format!(
                "--kv-aligned {other}: expected true or false"
            )))
        }
    };
    let backend: BackendKind =
        a.backend
            .parse()
            .map_err(|e: tracecheck_engine::backend::BackendError| match e {
                tracecheck_engine::backend::BackendError::Unsupported(m) => {
                    CaptureError::BadInput(m)
                }
                other => CaptureError::BadInput(other.to_string()),
            })?;
    Ok(CaptureSpec {
        mode: a.mode.clone(),
        model: parse::<ModelSpec>("model", &a.model)?,
        backend,
        batch: a.batch,
        prompt_offset: a.prompt_offset,
        ctx: a.ctx,
        gen: a.gen,
        span: a.span,
        dtype: parse::<Dtype>("dtype", &a.dtype)?,
        numerics: parse::<Numerics>("numerics", &a.numerics)?,
        attn: parse::<AttnImpl>("attn", &a.attn)?,
        variant: a.variant.clone(),
        kv_aligned,
        seed: a.seed,
        max_ctx: a.max_ctx,
        prompt_ids: a.prompt_ids.clone(),
        mem_limit_mb: a.mem_limit,
        mem_period_s: a.vram_period,
        out: a.out.clone(),
        force: a.force,
        argv: std::env::args().collect(),
    })
}

/// One JSON line per phase event on stdout, flushed at once (the runner enforces per-phase
/// timeouts from them).
fn emit(v: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

fn run_capture(a: &CaptureArgs) -> Result<PathBuf, CaptureError> {
    let spec = spec_from(a)?;
    let start = Instant::now();
    let mut events = |phase: &str, event: &str| {
        emit(
            serde_json::json!({"phase": phase, "event": event, "t_s": start.elapsed().as_secs_f64()}),
        );
    };
    let go = |events: &mut dyn FnMut(&str, &str)| capture(&spec, events);
    match a.threads {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| CaptureError::Internal(e.to_string()))?
            .install(|| go(&mut events)),
        None => go(&mut events),
    }
}

fn model_cmd(cmd: &ModelCmd) -> anyhow::Result<()> {
    match cmd {
        ModelCmd::Fetch { name } => {
            let p = fetch::ensure(name)?;
            println!("{}", p.display());
        }
        ModelCmd::CacheDir => println!("{}", fetch::cache_dir().display()),
        ModelCmd::MakeTiny { path } => {
            model::tiny::write(path).with_context(|| format!("writing {}", path.display()))?;
            println!("{}", path.display());
        }
        ModelCmd::Info { model } => {
            let src = match model.parse::<ModelSpec>()? {
                ModelSpec::Dummy(s) => ModelSource::dummy(s, 0),
                ModelSpec::Named(n) => ModelSource::open_gguf(&fetch::ensure(&n)?)?,
                ModelSpec::Path(p) => ModelSource::open_gguf(&p)?,
            };
            let c = src.config();
            println!("model      {}", src.describe());
            println!("name       {}", c.name);
            println!("sha256     {}", src.sha256());
            println!(
                "shape      vocab {} · embd {} · layers {} · heads {}/{} kv · head dim {} · ff {} · ctx {} · rope θ {} · eps {} · tied {}",
                c.vocab, c.n_embd, c.n_layer, c.n_head, c.n_kv_head, c.head_dim, c.n_ff, c.n_ctx_train, c.rope_theta, c.rms_eps, c.tied_embeddings
            );
            println!("params     {}", c.n_params());
            if let Some(f) = src.gguf() {
                println!(
                    "gguf       version {} · alignment {} · {} tensors",
                    f.version(),
                    f.alignment(),
                    f.tensors().len()
                );
                for (k, v) in f.metadata() {
                    println!("  {k} = {}", meta_summary(v));
                }
                for t in f.tensors() {
                    println!("  tensor {} {:?} {}", t.name, t.dims, t.ggml_type);
                }
            }
        }
    }
    Ok(())
}

/// A metadata value in one line: arrays as their type and length.
fn meta_summary(v: &tracecheck_engine::gguf::MetaValue) -> String {
    match v.as_array() {
        Some(a) => format!("{} [{} items]", v.type_description(), a.len()),
        None => format!("{v:?}"),
    }
}

fn main() {
    let cli = Cli::parse();
    let code = match &cli.cmd {
        Cmd::Capture(a) => match run_capture(a) {
            Ok(dir) => {
                emit(
                    serde_json::json!({"event": "done", "status": "OK", "cell": dir.display().to_string()}),
                );
                0
            }
            Err(e) => {
                emit(
                    serde_json::json!({"event": "error", "exit": e.exit_code(), "message": e.to_string()}),
                );
                eprintln!("tracecheck-engine: {e}");
                e.exit_code()
            }
        },
        Cmd::Model { cmd } => match model_cmd(cmd) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("tracecheck-engine: {e:#}");
                2
            }
        },
    };
    std::process::exit(code);
}
