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

/// Greedy choice: the largest logit, ties to the lowest id (NaN never wins; an all-NaN row
/// gives 0). The CUDA backend's device argmax (argmax.cu) keeps exactly this order.
pub fn argmax(row: &[f32]) -> u32 {
    // Two passes the compiler vectorises: the largest value (`max` passes over NaN; -0 and +0
    // compare equal, so either may come out), then the first id holding a value equal to it.
    let mut lanes = [f32::NAN; 16];
    let mut chunks = row.chunks_exact(16);
    for c in &mut chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            *l = l.max(*v);
        }
    }
    let m = chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .fold(f32::NAN, |a, &v| a.max(v));
    if m.is_nan() {
        return 0;
    }
    row.iter().position(|&v| v == m).unwrap_or(0) as u32
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
    /// Runs one forward step like [`Backend::forward`] but appends only each kept row's greedy
    /// next token ([`argmax`] of its logits, same order) to `next`: the decode steps whose
    /// logits are not recorded. A GPU backend chooses on the device and moves one id per row
    /// to the host instead of the row's `vocab` floats.
    fn forward_greedy(
        &mut self,
        seqs: &[SeqChunk<'_>],
        next: &mut Vec<u32>,
    ) -> Result<(), BackendError> {
        let mut logits = Vec::new();
        self.forward(seqs, &mut logits)?;
        let kept: usize = seqs.iter().map(|s| s.keep.len()).sum();
        if let Some(vocab) = logits.len().checked_div(kept).filter(|&v| v > 0) {
            next.extend(logits.chunks_exact(vocab).map(argmax));
        }
        Ok(())
    }
    /// Runs `steps` greedy decode steps: `seqs` is the first step (one token per sequence,
    /// kept, each sequence in its own slot) and step i + 1 feeds every sequence the token step
    /// i chose, one position on. Appends the chosen ids step by step (`steps` × `seqs.len()`).
    /// A GPU backend runs the steps back to back without the host in between.
    fn decode_greedy(
        &mut self,
        seqs: &[SeqChunk<'_>],
        steps: usize,
        next: &mut Vec<u32>,
    ) -> Result<(), BackendError> {
        decode_greedy_stepwise(self, seqs, steps, next)
    }
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

/// [`Backend::decode_greedy`] one [`Backend::forward_greedy`] step at a time.
pub fn decode_greedy_stepwise<B: Backend + ?Sized>(
    be: &mut B,
    seqs: &[SeqChunk<'_>],
    steps: usize,
    next: &mut Vec<u32>,
) -> Result<(), BackendError> {
    let mut toks = greedy_chain_tokens(seqs)?;
    for j in 0..steps {
        let from = next.len();
        be.forward_greedy(&greedy_step(seqs, &toks, j), next)?;
        if next.len() != from + seqs.len() {
            return Err(BackendError::Device(format!(
                "greedy step {j}: {} ids for {} sequences",
                next.len() - from,
                seqs.len()
            )));
        }
        for (t, &id) in toks.iter_mut().zip(&next[from..]) {
            *t = [id];
        }
    }
    Ok(())
}

/// Step `j` of the greedy chain that starts at `seqs`, fed `toks` (one per sequence).
pub fn greedy_step<'a>(seqs: &[SeqChunk<'_>], toks: &'a [[u32; 1]], j: usize) -> Vec<SeqChunk<'a>> {
    seqs.iter()
        .zip(toks)
        .map(|(q, t)| SeqChunk::step(q.slot, q.start + j, t))
        .collect()
}

/// The first tokens of a greedy chain ([`Backend::decode_greedy`]), after checking its shape:
/// one kept token per sequence, each sequence in its own slot.
pub fn greedy_chain_tokens(seqs: &[SeqChunk<'_>]) -> Result<Vec<[u32; 1]>, BackendError> {
    let mut slots: Vec<usize> = seqs.iter().map(|q| q.slot).collect();
    slots.sort_unstable();
    if slots.windows(2).any(|w| w[0] == w[1]) {
        return Err(BackendError::Usage(
            "greedy decode: two sequences share a KV slot".into(),
        ));
    }
    seqs.iter()
        .map(|q| match (q.tokens, q.keep.as_slice()) {
            ([t], [0]) => Ok([*t]),
            _ => Err(BackendError::Usage(format!(
                "greedy decode: slot {} brings {} tokens keeping {:?}; each sequence brings one token and keeps it",
                q.slot,
                q.tokens.len(),
                q.keep
            ))),
        })
        .collect()
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
    fn forward_greedy(
        &mut self,
        seqs: &[SeqChunk<'_>],
        next: &mut Vec<u32>,
    ) -> Result<(), BackendError> {
        self.inner().forward_greedy(seqs, next)
    }
    fn decode_greedy(
        &mut self,
        seqs: &[SeqChunk<'_>],
        steps: usize,
        next: &mut Vec<u32>,
    ) -> Result<(), BackendError> {
        self.inner().decode_greedy(seqs, steps, next)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition: the first id whose value beats every earlier one, NaN never winning.
    fn argmax_by_definition(row: &[f32]) -> u32 {
        let mut best = 0usize;
        for (i, v) in row.iter().enumerate() {
            if *v > row[best] || row[best].is_nan() && !v.is_nan() {
                best = i;
            }
        }
        best as u32
    }

    #[test]
    fn argmax_keeps_the_definition_on_ties_nan_and_signed_zeros() {
        let mut state = 0x2545f4914f6cdd1du64;
        let mut rows: Vec<Vec<f32>> = vec![
            vec![],
            vec![f32::NAN],
            vec![f32::NAN; 37],
            vec![-0.0, 0.0, -1.0],
            vec![0.0, -0.0, -1.0],
            vec![f32::NAN, f32::NEG_INFINITY, f32::NAN],
            vec![1.0, f32::INFINITY, 3.0, f32::INFINITY],
        ];
        for len in [1usize, 15, 16, 17, 33, 100, 49152] {
            let mut r: Vec<f32> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    ((state % 16) as f32 - 8.0) / 2.0
                })
                .collect();
            rows.push(r.clone());
            r[len / 3] = f32::NAN;
            r[0] = f32::NAN;
            rows.push(r.clone());
            r[len - 1] = 50.0;
            r[len / 2] = 50.0;
            rows.push(r);
        }
        for r in &rows {
            assert_eq!(
                argmax(r),
                argmax_by_definition(r),
                "{:?}",
                &r[..r.len().min(8)]
            );
        }
    }

    #[test]
    fn greedy_chains_take_one_kept_token_per_slot() {
        let (a, b) = ([5u32], [6u32]);
        let ok = [SeqChunk::step(0, 3, &a), SeqChunk::step(2, 9, &b)];
        assert_eq!(greedy_chain_tokens(&ok).unwrap(), vec![[5], [6]]);
        let shared = [SeqChunk::step(1, 3, &a), SeqChunk::step(1, 4, &b)];
        let e = greedy_chain_tokens(&shared).unwrap_err().to_string();
        assert!(e.contains("share a KV slot"), "{e}");
        let two = [1u32, 2];
        let long = [SeqChunk::prompt(0, &two)];
        let e = greedy_chain_tokens(&long).unwrap_err().to_string();
        assert!(e.contains("brings 2 tokens"), "{e}");
        let mut unkept = SeqChunk::step(0, 3, &a);
        unkept.keep.clear();
        assert!(greedy_chain_tokens(&[unkept]).is_err());
        let steps = greedy_step(&ok, &[[7], [8]], 4);
        assert_eq!(
            steps
                .iter()
                .map(|q| (q.slot, q.start, q.tokens[0]))
                .collect::<Vec<_>>(),
            vec![(0, 7, 7), (2, 13, 8)]
        );
    }
}
