//! Backends run the Llama forward pass. One trait ([`Backend`]), one enum dispatch
//! ([`AnyBackend`]), and a stub for every backend whose feature is off, so call sites carry no
//! `cfg`.
//!
//! The trait is shaped for GPUs: weights are uploaded once ([`Backend::load`]); the KV cache and
//! scratch are preallocated by [`Backend::reserve`] for a number of sequence slots and a KV
//! capacity; a forward step takes token ids for several sequences (each at its own position)
//! and returns logits only for the rows the caller keeps. Running out of memory is a
//! recoverable [`BackendError::OutOfMemory`].

pub mod cpu;
#[cfg(feature = "cuda")]
mod cuda;
#[cfg(not(feature = "cuda"))]
mod cuda_stub;

use thiserror::Error;

use crate::model::ModelSource;
use crate::trace::{AttnImpl, Dtype, Numerics};

pub use cpu::CpuBackend;
#[cfg(feature = "cuda")]
pub use cuda::CudaBackend;
#[cfg(not(feature = "cuda"))]
pub use cuda_stub::CudaBackend;

#[derive(Debug, Error)]
pub enum BackendError {
    #[error("out of memory: {what} needs {requested_mb:.1} MB, {available_mb:.1} MB available (limit {limit})")]
    OutOfMemory {
        what: String,
        requested_mb: f64,
        available_mb: f64,
        limit: String,
    },
    #[error("unsupported configuration: {0}")]
    Unsupported(String),
    #[error("{0}")]
    Usage(String),
    #[error("model: {0}")]
    Model(#[from] crate::model::ModelError),
    #[error("device error: {0}")]
    Device(String),
}

/// How numbers are computed: the element type at DESIGN.md's rounding points, the attention
/// implementation, and whether reductions must be batch-invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Precision {
    pub dtype: Dtype,
    pub attn: AttnImpl,
    pub numerics: Numerics,
}

/// One sequence's part of a forward step.
#[derive(Debug, Clone)]
pub struct SeqChunk<'a> {
    /// KV-cache slot of this sequence (0..slots from [`Backend::reserve`]).
    pub slot: usize,
    /// Position of `tokens[0]`; the cache must already hold positions 0..start of this slot.
    pub start: usize,
    pub tokens: &'a [u32],
    /// Indices into `tokens` whose logits are returned, in increasing order.
    pub keep: Vec<usize>,
}

impl<'a> SeqChunk<'a> {
    /// Prompt prefill of sequence `slot` from an empty cache, keeping the last position's
    /// logits (what the next token is chosen from).
    pub fn prompt(slot: usize, tokens: &'a [u32]) -> Self {
        SeqChunk {
            slot,
            start: 0,
            tokens,
            keep: vec![tokens.len().saturating_sub(1)],
        }
    }

    /// One decode step of sequence `slot`: `token` at position `pos`, its logits kept.
    pub fn step(slot: usize, pos: usize, token: &'a [u32; 1]) -> Self {
        SeqChunk {
            slot,
            start: pos,
            tokens: token,
            keep: vec![0],
        }
    }
}

/// Elements of one layer's K (or V) cache for `slots` × `max_ctx` positions, or the
/// overflow as an unsupported configuration — every backend sizes its cache with it.
pub fn kv_cache_elems(
    cfg: &crate::model::LlamaConfig,
    slots: usize,
    max_ctx: usize,
) -> Result<usize, BackendError> {
    slots
        .checked_mul(max_ctx)
        .and_then(|n| n.checked_mul(cfg.kv_dim()))
        .ok_or_else(|| {
            BackendError::Unsupported(format!("KV cache of {slots} × {max_ctx} overflows"))
        })
}

/// One token of a forward step: its cache slot and position, and whether its logits are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepRow {
    pub slot: usize,
    pub pos: usize,
    pub token: u32,
    pub keep: bool,
}

/// Checks a step against the reserved cache and the vocabulary, and flattens it into rows
/// (sequence order, then token order) — what every backend's forward consumes.
pub fn flatten_step(
    seqs: &[SeqChunk<'_>],
    slots: usize,
    max_ctx: usize,
    vocab: usize,
) -> Result<Vec<StepRow>, BackendError> {
    let mut rows = Vec::new();
    for s in seqs {
        if s.slot >= slots {
            return Err(BackendError::Usage(format!(
                "slot {} ≥ reserved {slots}",
                s.slot
            )));
        }
        let end = s.start + s.tokens.len();
        if end > max_ctx {
            return Err(BackendError::Usage(format!(
                "positions up to {end} exceed the reserved KV capacity {max_ctx}"
            )));
        }
        if s.keep.windows(2).any(|k| k[0] >= k[1]) || s.keep.iter().any(|&k| k >= s.tokens.len()) {
            return Err(BackendError::Usage(
                "keep rows must be increasing token indices".into(),
            ));
        }
        for (i, &t) in s.tokens.iter().enumerate() {
            if t as usize >= vocab {
                return Err(BackendError::Usage(format!(
                    "token id {t} is outside the vocabulary (size {vocab})"
                )));
            }
            rows.push(StepRow {
                slot: s.slot,
                pos: s.start + i,
                token: t,
                keep: s.keep.binary_search(&i).is_ok(),
            });
        }
    }
    Ok(rows)
}

/// What a backend reports about memory, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MemoryStats {
    /// What the backend holds now (weights + cache + scratch).
    pub allocated: u64,
    /// The allocator's high-water mark.
    pub high_water: u64,
    /// Bytes held by the device context before the model was loaded (GPU driver baseline).
    pub baseline: u64,
    /// Where the numbers come from, e.g. "rss" or "cuMemGetInfo".
    pub source: &'static str,
}

pub trait Backend {
    /// "cpu", "cuda", …
    fn name(&self) -> &'static str;
    /// The device in words (CPU model or GPU name).
    fn device(&self) -> String;
    /// Driver version, where there is one.
    fn driver(&self) -> Option<String>;
    /// Uploads the weights once, converted to the precision's dtype.
    fn load(&mut self, model: &ModelSource, precision: Precision) -> Result<(), BackendError>;
    /// Preallocates the KV cache for `slots` sequences of up to `max_ctx` positions, and the
    /// scratch for forward steps. Out of memory here is the usual recoverable failure.
    fn reserve(&mut self, slots: usize, max_ctx: usize) -> Result<(), BackendError>;
    /// Runs one forward step; appends the kept rows' logits (`vocab` floats each, in `seqs`
    /// order, then `keep` order) to `logits`.
    fn forward(&mut self, seqs: &[SeqChunk<'_>], logits: &mut Vec<f32>)
        -> Result<(), BackendError>;
    /// Setup that must not be timed as prefill/decode (compilation, graph capture, warm-up).
    fn warm_up(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
    fn memory(&self) -> MemoryStats;
    /// A probe of device memory in use (MB) that a sampler thread may call while the backend
    /// works; None where the process RSS is the measure (the CPU).
    fn memory_probe(&self) -> Option<MemoryProbe> {
        None
    }
}

/// Device memory in use, MB (see [`Backend::memory_probe`]).
pub type MemoryProbe = Box<dyn Fn() -> Option<f64> + Send + Sync>;

/// The backend chosen on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Cpu,
    Cuda,
}

impl std::str::FromStr for BackendKind {
    type Err = BackendError;
    fn from_str(s: &str) -> Result<Self, BackendError> {
        match s {
            "cpu" => Ok(BackendKind::Cpu),
            "cuda" => Ok(BackendKind::Cuda),
            "hip" => Err(BackendError::Unsupported(
                "the HIP backend is not built yet (use --backend cpu or cuda)".into(),
            )),
            other => Err(BackendError::Usage(format!(
                "unknown backend `{other}` (known: cpu, cuda)"
            ))),
        }
    }
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Cuda => "cuda",
        }
    }
}

/// Enum dispatch over the backends.
pub enum AnyBackend {
    Cpu(Box<CpuBackend>),
    Cuda(CudaBackend),
}

impl AnyBackend {
    /// Creates the backend; `mem_limit` caps what it may allocate (bytes).
    pub fn new(kind: BackendKind, mem_limit: Option<u64>) -> Result<Self, BackendError> {
        Ok(match kind {
            BackendKind::Cpu => AnyBackend::Cpu(Box::new(CpuBackend::new(mem_limit))),
            BackendKind::Cuda => AnyBackend::Cuda(CudaBackend::new(mem_limit)?),
        })
    }

    fn inner(&mut self) -> &mut dyn Backend {
        match self {
            AnyBackend::Cpu(b) => b.as_mut(),
            AnyBackend::Cuda(b) => b,
        }
    }

    fn inner_ref(&self) -> &dyn Backend {
        match self {
            AnyBackend::Cpu(b) => b.as_ref(),
            AnyBackend::Cuda(b) => b,
        }
    }
}

impl Backend for AnyBackend {
    fn name(&self) -> &'static str {
        self.inner_ref().name()
    }
    fn device(&self) -> String {
        self.inner_ref().device()
    }
    fn driver(&self) -> Option<String> {
        self.inner_ref().driver()
    }
    fn load(&mut self, model: &ModelSource, precision: Precision) -> Result<(), BackendError> {
        self.inner().load(model, precision)
    }
    fn reserve(&mut self, slots: usize, max_ctx: usize) -> Result<(), BackendError> {
        self.inner().reserve(slots, max_ctx)
    }
    fn forward(
        &mut self,
        seqs: &[SeqChunk<'_>],
        logits: &mut Vec<f32>,
    ) -> Result<(), BackendError> {
        self.inner().forward(seqs, logits)
    }
    fn warm_up(&mut self) -> Result<(), BackendError> {
        self.inner().warm_up()
    }
    fn memory(&self) -> MemoryStats {
        self.inner_ref().memory()
    }
    fn memory_probe(&self) -> Option<MemoryProbe> {
        self.inner_ref().memory_probe()
    }
}
