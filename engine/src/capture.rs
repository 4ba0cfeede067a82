//! One cell's capture, in DESIGN.md's row semantics: prompt prefill (decode row 0), greedy
//! decode of gen − 1 steps (decode rows 1…span−1), then one reference forward over
//! prompt + generated[0..span−1] with no prior cache (prefill rows 0…span−1).

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

use thiserror::Error;

pub use crate::backend::argmax;
use crate::backend::{AnyBackend, Backend, BackendError, BackendKind, Precision, SeqChunk};
use std::sync::Arc;

use crate::memsample::{rss_mb, Probe, Sampler};
use crate::model::{DummyShape, ModelError, ModelSource};
use crate::prompts::{ragged_len, PromptSource};
use crate::trace::{self, AttnImpl, CellConfig, Dtype, Numerics, RunRecord, Status};

/// Sequences one CPU capture may hold; larger batches are an unsupported configuration.
pub const MAX_BATCH: usize = 64;

/// What `--model` names.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSpec {
    Path(PathBuf),
    /// A model of the cache (`smollm2-135m`, fetched when missing; `tiny`, written when missing).
    Named(String),
    Dummy(DummyShape),
}

impl FromStr for ModelSpec {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, ModelError> {
        if let Some(shape) = s.strip_prefix("dummy:") {
            return Ok(ModelSpec::Dummy(shape.parse()?));
        }
        if crate::fetch::NAMED_MODELS.contains(&s) {
            return Ok(ModelSpec::Named(s.into()));
        }
        Ok(ModelSpec::Path(PathBuf::from(s)))
    }
}

/// Everything one capture needs (the engine's command-line flags).
#[derive(Debug, Clone)]
pub struct CaptureSpec {
    pub mode: String,
    pub model: ModelSpec,
    pub backend: BackendKind,
    pub batch: usize,
    pub prompt_offset: usize,
    /// Prompt length P; None when `prompt_ids` fixes it.
    pub ctx: Option<usize>,
    pub gen: usize,
    pub span: usize,
    pub dtype: Dtype,
    pub numerics: Numerics,
    pub attn: AttnImpl,
    pub variant: Option<String>,
    pub kv_aligned: bool,
    pub seed: u64,
    pub max_ctx: Option<usize>,
    pub prompt_ids: Option<PathBuf>,
    pub mem_limit_mb: Option<u64>,
    pub mem_period_s: f64,
    /// The sweep directory: the cell is written to `out/<cell key>/`.
    pub out: PathBuf,
    pub force: bool,
    pub argv: Vec<String>,
}

#[derive(Debug, Error)]
pub enum CaptureError {
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    OutOfMemory(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Internal(String),
}

impl CaptureError {
    /// The engine ↔ runner protocol's exit codes.
    pub fn exit_code(&self) -> i32 {
        match self {
            CaptureError::BadInput(_) => 2,
            CaptureError::OutOfMemory(_) => 3,
            CaptureError::Unsupported(_) => 4,
            CaptureError::Internal(_) => 1,
        }
    }
}

impl From<BackendError> for CaptureError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::OutOfMemory { .. } => CaptureError::OutOfMemory(e.to_string()),
            BackendError::Unsupported(m) => CaptureError::Unsupported(m),
            BackendError::Usage(m) => CaptureError::BadInput(m),
            BackendError::Model(m) => CaptureError::BadInput(m.to_string()),
            BackendError::Device(m) => CaptureError::Internal(m),
        }
    }
}

fn bad(e: impl std::fmt::Display) -> CaptureError {
    CaptureError::BadInput(e.to_string())
}

/// The result of the numeric part of a capture, before it is written.
pub struct Captured {
    pub prompts: Vec<Vec<u32>>,
    pub generated: Vec<Vec<u32>>,
    /// [batch, span, vocab]
    pub decode: Vec<f32>,
    pub prefill: Vec<f32>,
    pub prefill_s: f64,
    pub decode_s: f64,
    pub reference_prefill_s: f64,
}

/// Decode step j's input tokens: generated[j−1] of every sequence.
fn step_tokens(generated: &[Vec<u32>], j: usize) -> Vec<[u32; 1]> {
    generated.iter().map(|g| [g[j - 1]]).collect()
}

/// Decode step j of every sequence b (KV slot b): `toks[b]` at position P_b + j − 1.
fn decode_step<'a>(prompts: &[Vec<u32>], toks: &'a [[u32; 1]], j: usize) -> Vec<SeqChunk<'a>> {
    prompts
        .iter()
        .zip(toks)
        .enumerate()
        .map(|(b, (p, t))| SeqChunk::step(b, p.len() + j - 1, t))
        .collect()
}

/// Runs the three passes on a loaded, reserved backend. `prompts[b]` is sequence b's prompt
/// (its KV slot is b); `events(phase, "start"|"end")` brackets each pass.
pub fn run_passes(
    be: &mut dyn Backend,
    vocab: usize,
    prompts: &[Vec<u32>],
    gen: usize,
    span: usize,
    events: &mut dyn FnMut(&str, &str),
) -> Result<Captured, CaptureError> {
    let batch = prompts.len();
    let mut decode = vec![0f32; batch * span * vocab];
    let mut generated: Vec<Vec<u32>> = vec![Vec::with_capacity(gen); batch];
    let row = |b: usize, j: usize| (b * span + j) * vocab;

    // Prompt prefill of the whole batch: logits at P−1 are decode row 0.
    events("prefill", "start");
    let t = Instant::now();
    let seqs: Vec<SeqChunk> = prompts
        .iter()
        .enumerate()
        .map(|(b, p)| SeqChunk::prompt(b, p))
        .collect();
    let mut logits = Vec::with_capacity(batch * vocab);
    be.forward(&seqs, &mut logits)?;
    let prefill_s = t.elapsed().as_secs_f64();
    for b in 0..batch {
        let l = &logits[b * vocab..(b + 1) * vocab];
        decode[row(b, 0)..row(b, 0) + vocab].copy_from_slice(l);
        generated[b].push(argmax(l));
    }
    events("prefill", "end");

    // Greedy decode: step j consumes generated[j−1] at position P+j−1; no EOS stop. The
    // span's steps return their logits (decode rows); the steps past it only their tokens,
    // run by the backend as one greedy chain.
    events("decode", "start");
    let t = Instant::now();
    for j in 1..span {
        let toks = step_tokens(&generated, j);
        let seqs = decode_step(prompts, &toks, j);
        logits.clear();
        be.forward(&seqs, &mut logits)?;
        for b in 0..batch {
            let l = &logits[b * vocab..(b + 1) * vocab];
            decode[row(b, j)..row(b, j) + vocab].copy_from_slice(l);
            generated[b].push(argmax(l));
        }
    }
    if gen > span {
        let toks = step_tokens(&generated, span);
        let seqs = decode_step(prompts, &toks, span);
        let mut next = Vec::with_capacity(batch * (gen - span));
        be.decode_greedy(&seqs, gen - span, &mut next)?;
        if next.len() != batch * (gen - span) {
            return Err(CaptureError::Internal(format!(
                "greedy decode returned {} tokens for {} steps of {batch} sequences",
                next.len(),
                gen - span
            )));
        }
        for step in next.chunks_exact(batch) {
            for (g, &t) in generated.iter_mut().zip(step) {
                g.push(t);
            }
        }
    }
    let decode_s = t.elapsed().as_secs_f64();
    events("decode", "end");

    // Reference: one forward over prompt + generated[0..span−1] from an empty cache; rows
    // P−1 … P+span−2 are prefill rows 0 … span−1.
    events("reference_prefill", "start");
    let t = Instant::now();
    let full: Vec<Vec<u32>> = (0..batch)
        .map(|b| {
            let mut v = prompts[b].clone();
            v.extend_from_slice(&generated[b][..span - 1]);
            v
        })
        .collect();
    let seqs: Vec<SeqChunk> = full
        .iter()
        .enumerate()
        .map(|(b, toks)| {
            let p = prompts[b].len();
            SeqChunk {
                slot: b,
                start: 0,
                tokens: toks,
                keep: (p - 1..p - 1 + span).collect(),
            }
        })
        .collect();
    let mut prefill = Vec::with_capacity(batch * span * vocab);
    be.forward(&seqs, &mut prefill)?;
    let reference_prefill_s = t.elapsed().as_secs_f64();
    events("reference_prefill", "end");

    Ok(Captured {
        prompts: prompts.to_vec(),
        generated,
        decode,
        prefill,
        prefill_s,
        decode_s,
        reference_prefill_s,
    })
}

/// Opens the model named by the spec (fetching a named model into the cache when missing).
pub fn open_model(spec: &ModelSpec, seed: u64) -> Result<ModelSource, CaptureError> {
    match spec {
        ModelSpec::Dummy(shape) => Ok(ModelSource::dummy(*shape, seed)),
        ModelSpec::Named(name) => {
            // Opening hashes the file anyway: check that hash instead of hashing twice.
            let path = crate::fetch::ensure_present(name).map_err(bad)?;
            let model = ModelSource::open_gguf(&path).map_err(bad)?;
            crate::fetch::check_sha256(name, &path, &model.sha256()).map_err(bad)?;
            Ok(model)
        }
        ModelSpec::Path(p) => ModelSource::open_gguf(p).map_err(bad),
    }
}

/// The prompts of this cell's sequences: prompt i = prompt_offset + b, the same at any batch.
fn build_prompts(
    spec: &CaptureSpec,
    model: &ModelSource,
) -> Result<(Vec<Vec<u32>>, usize), CaptureError> {
    let vocab = model.config().vocab;
    let source = if let Some(path) = &spec.prompt_ids {
        PromptSource::ids_file(path, vocab).map_err(bad)?
    } else if let Some(f) = model.gguf() {
        let tok = crate::model::gguf_tokenizer(f).map_err(bad)?;
        PromptSource::text(&tok).map_err(bad)?
    } else {
        PromptSource::counter(spec.seed, vocab).map_err(bad)?
    };
    let ctx = match (source.ctx(), spec.ctx) {
        (Some(n), Some(c)) if n != c => {
            return Err(bad(format!(
                "--ctx {c} disagrees with the prompt ids file, whose prompts have {n} ids"
            )))
        }
        (Some(n), _) => n,
        (None, Some(c)) => c,
        (None, None) => return Err(bad("--ctx is required (or --prompt-ids FILE)")),
    };
    if ctx == 0 {
        return Err(bad("--ctx must be at least 1"));
    }
    let mut prompts = Vec::with_capacity(spec.batch);
    for b in 0..spec.batch {
        let i = spec.prompt_offset + b;
        let len = if spec.kv_aligned {
            ctx
        } else {
            ragged_len(ctx, i)
        };
        prompts.push(source.prompt(i, len).map_err(bad)?);
    }
    Ok((prompts, ctx))
}

fn check_spec(spec: &CaptureSpec) -> Result<(), CaptureError> {
    if spec.batch == 0 || spec.gen == 0 || spec.span == 0 {
        return Err(bad(format!(
            "--batch, --gen and --span must be at least 1 (got {}, {}, {})",
            spec.batch, spec.gen, spec.span
        )));
    }
    if spec.span > spec.gen {
        return Err(bad(format!(
            "--span {} exceeds --gen {}: only generated positions can be compared",
            spec.span, spec.gen
        )));
    }
    if spec.backend == BackendKind::Cpu && spec.numerics == Numerics::Fast {
        return Err(bad(
            "--numerics fast is not available on the CPU backend (the CPU reference is always `invariant`)",
        ));
    }
    if spec.batch > MAX_BATCH {
        return Err(CaptureError::Unsupported(format!(
            "batch {} exceeds this engine's maximum of {MAX_BATCH} sequences",
            spec.batch
        )));
    }
    if spec.model == ModelSpec::Dummy(DummyShape::Llama3_8b) && spec.dtype != Dtype::Bf16 {
        return Err(CaptureError::Unsupported(
            "dummy:llama3-8b runs in bf16 only (--dtype bf16)".into(),
        ));
    }
    Ok(())
}

/// Runs a whole capture and writes the cell directory; returns its path.
pub fn capture(
    spec: &CaptureSpec,
    events: &mut dyn FnMut(&str, &str),
) -> Result<PathBuf, CaptureError> {
    let wall = Instant::now();
    check_spec(spec)?;
    // The device context first: what it holds before model load is the baseline.
    let mem_limit = spec.mem_limit_mb.map(|mb| mb * 1_000_000);
    let mut be = AnyBackend::new(spec.backend, mem_limit)?;
    let probe: Probe = match be.memory_probe() {
        Some(p) => Arc::new(move || p().unwrap_or(0.0)),
        None => Arc::new(rss_mb),
    };
    let baseline_mb = probe();
    let sampler = Sampler::start(wall, spec.mem_period_s, probe);

    events("load", "start");
    let t = Instant::now();
    let model = open_model(&spec.model, spec.seed)?;
    let cfg = model.config().clone();
    let precision = Precision {
        dtype: spec.dtype,
        attn: spec.attn,
        numerics: spec.numerics,
    };
    be.load(&model, precision)?;
    let model_load_s = t.elapsed().as_secs_f64();
    sampler.mark();
    events("load", "end");

    events("tokenize", "start");
    let t = Instant::now();
    let (prompts, ctx) = build_prompts(spec, &model)?;
    let tokenize_s = t.elapsed().as_secs_f64();
    events("tokenize", "end");

    // KV capacity P + gen, raised past the trained context when needed, capped by --max-ctx.
    let kv_cap = ctx + spec.gen;
    if let Some(cap) = spec.max_ctx {
        if kv_cap > cap {
            return Err(bad(format!(
                "ctx {ctx} + gen {} = {kv_cap} positions exceed --max-ctx {cap}",
                spec.gen
            )));
        }
    }
    let raised = kv_cap > cfg.n_ctx_train;

    events("setup", "start");
    let t = Instant::now();
    be.reserve(spec.batch, kv_cap)?;
    be.warm_up()?;
    let setup_s = t.elapsed().as_secs_f64();
    sampler.mark();
    events("setup", "end");

    let mut on_phase = |phase: &str, ev: &str| {
        sampler.mark();
        events(phase, ev);
    };
    let cap = run_passes(
        &mut be,
        cfg.vocab,
        &prompts,
        spec.gen,
        spec.span,
        &mut on_phase,
    )?;

    events("write", "start");
    let mem = be.memory();
    let samples = sampler.finish();
    let (peak_t_s, peak_mb) =
        samples
            .iter()
            .cloned()
            .fold((0.0, 0.0), |acc, s| if s.1 > acc.1 { s } else { acc });
    let config = CellConfig {
        batch: spec.batch,
        prompt_offset: spec.prompt_offset,
        ctx,
        gen: spec.gen,
        span: spec.span,
        dtype: spec.dtype,
        numerics: spec.numerics,
        attn_impl: spec.attn,
        variant: spec.variant.clone(),
        kv_aligned: spec.kv_aligned,
        seed: spec.seed,
    };
    let key = trace::cell_key(spec.backend.as_str(), &config);
    let record = RunRecord {
        schema_version: trace::SCHEMA_VERSION,
        mode: spec.mode.clone(),
        status: Status::Ok,
        argv: spec.argv.clone(),
        engine: Some(trace::EngineInfo {
            name: "tracecheck-engine".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            revision: option_env!("TRACECHECK_REVISION").map(str::to_string),
            backend: be.name().into(),
            device: be.device(),
            driver: be.driver(),
        }),
        model: Some(trace::ModelInfo {
            name: cfg.name.clone(),
            arch: cfg.arch.clone(),
            sha256: model.sha256(),
            vocab: cfg.vocab,
            n_ctx_train: cfg.n_ctx_train,
            max_ctx: kv_cap,
        }),
        config: config.clone(),
        tokens: Some(trace::Tokens {
            prompt: cap.prompts.clone(),
            generated: cap.generated.clone(),
        }),
        timings: Some(trace::Timings {
            setup_s,
            model_load_s,
            tokenize_s,
            prefill_s: cap.prefill_s,
            decode_s: cap.decode_s,
            reference_prefill_s: cap.reference_prefill_s,
            wall_s: wall.elapsed().as_secs_f64(),
        }),
        memory: Some(trace::Memory {
            source: mem.source.into(),
            period_s: spec.mem_period_s,
            baseline_mb,
            samples,
            peak_mb,
            peak_t_s,
            high_water_mb: mem.high_water as f64 / 1e6,
        }),
        error: None,
        max_ctx_raised: raised,
    };
    let dir = trace::write_cell(
        &spec.out,
        &key,
        &record,
        Some((&cap.decode, &cap.prefill)),
        spec.force,
    )
    .map_err(|e| CaptureError::Internal(e.to_string()))?;
    events("write", "end");
    Ok(dir)
}
