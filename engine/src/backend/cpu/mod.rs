//! The CPU reference backend: f32 or bf16 numerics with one fixed reduction order, so its
//! logits are bit-identical between prefill and decode, across batch sizes, and at any thread
//! count. Parallel over weight rows, rows and heads (rayon's current pool).

mod attention;
mod avx512;
mod forward;
pub mod kernels;
mod memory;

use crate::model::{ModelSource, TensorName};
use crate::trace::{Dtype, Numerics};

use super::{Backend, BackendError, MemoryStats, Precision, SeqChunk};
use kernels::round_bf16;
use memory::Budget;

/// Tokens per forward chunk: bounds scratch memory whatever the prompt length (chunked
/// prefill). Chunking never changes results: each row's arithmetic is independent of it.
pub const CHUNK_ROWS: usize = 256;

/// A weight matrix [rows × cols], row-major, in the precision's storage type.
pub(crate) enum Mat {
    F32(Vec<f32>),
    /// bf16 bit patterns.
    Bf16(Vec<u16>),
}

pub(crate) struct Layer {
    pub attn_norm: Vec<f32>,
    pub q: Mat,
    pub k: Mat,
    pub v: Mat,
    pub o: Mat,
    pub ffn_norm: Vec<f32>,
    pub gate: Mat,
    pub up: Mat,
    pub down: Mat,
}

pub(crate) struct Weights {
    pub embd: Mat,
    pub layers: Vec<Layer>,
    pub out_norm: Vec<f32>,
    /// None: tied to `embd`.
    pub output: Option<Mat>,
}

/// Preallocated per-run state: the KV cache and the scratch of one chunk.
pub(crate) struct State {
    pub slots: usize,
    pub max_ctx: usize,
    /// Per layer: [slot][pos][kv_dim] keys and values (bf16 values when bf16, stored as f32).
    pub k_cache: Vec<Vec<f32>>,
    pub v_cache: Vec<Vec<f32>>,
    /// RoPE angles per position: [pos][head_dim/2].
    pub cos: Vec<f32>,
    pub sin: Vec<f32>,
    pub x: Vec<f32>,
    pub xb: Vec<f32>,
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    pub att: Vec<f32>,
    pub proj: Vec<f32>,
    pub gate: Vec<f32>,
    pub up: Vec<f32>,
}

pub struct CpuBackend {
    budget: Budget,
    cfg: Option<crate::model::LlamaConfig>,
    precision: Option<Precision>,
    weights: Option<Weights>,
    state: Option<State>,
}

impl CpuBackend {
    /// `mem_limit`: the bytes this backend may hold (weights + cache + scratch), like a GPU's
    /// memory; beyond it allocation fails with [`BackendError::OutOfMemory`].
    pub fn new(mem_limit: Option<u64>) -> Self {
        CpuBackend {
            budget: Budget::new(mem_limit),
            cfg: None,
            precision: None,
            weights: None,
            state: None,
        }
    }

    fn mat(
        &mut self,
        model: &ModelSource,
        name: TensorName,
        bf16: bool,
    ) -> Result<Mat, BackendError> {
        let data = model.tensor(name)?;
        if bf16 {
            self.budget.take(data.len() as u64 * 2, &name.gguf_name())?;
            let mut out = memory::try_vec::<u16>(data.len(), &name.gguf_name(), &self.budget)?;
            out.extend(data.iter().map(|x| (round_bf16(*x).to_bits() >> 16) as u16));
            Ok(Mat::Bf16(out))
        } else {
            self.budget.take(data.len() as u64 * 4, &name.gguf_name())?;
            Ok(Mat::F32(data))
        }
    }

    fn norm(
        &mut self,
        model: &ModelSource,
        name: TensorName,
        bf16: bool,
    ) -> Result<Vec<f32>, BackendError> {
        let mut w = model.tensor(name)?;
        self.budget.take(w.len() as u64 * 4, &name.gguf_name())?;
        kernels::round_slice(&mut w, bf16);
        Ok(w)
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn device(&self) -> String {
        cpu_model_name()
    }

    fn driver(&self) -> Option<String> {
        None
    }

    fn load(&mut self, model: &ModelSource, precision: Precision) -> Result<(), BackendError> {
        if precision.numerics == Numerics::Fast {
            return Err(BackendError::Usage(
                "--numerics fast is not available on the CPU backend: the CPU reference is always `invariant`".into(),
            ));
        }
        let cfg = model.config().clone();
        let bf16 = precision.dtype == Dtype::Bf16;
        let embd = self.mat(model, TensorName::TokEmbd, bf16)?;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for l in 0..cfg.n_layer {
            layers.push(Layer {
                attn_norm: self.norm(model, TensorName::AttnNorm(l), bf16)?,
                q: self.mat(model, TensorName::Q(l), bf16)?,
                k: self.mat(model, TensorName::K(l), bf16)?,
                v: self.mat(model, TensorName::V(l), bf16)?,
                o: self.mat(model, TensorName::O(l), bf16)?,
                ffn_norm: self.norm(model, TensorName::FfnNorm(l), bf16)?,
                gate: self.mat(model, TensorName::Gate(l), bf16)?,
                up: self.mat(model, TensorName::Up(l), bf16)?,
                down: self.mat(model, TensorName::Down(l), bf16)?,
            });
        }
        let out_norm = self.norm(model, TensorName::OutputNorm, bf16)?;
        let output = if cfg.tied_embeddings {
            None
        } else {
            Some(self.mat(model, TensorName::Output, bf16)?)
        };
        self.weights = Some(Weights {
            embd,
            layers,
            out_norm,
            output,
        });
        self.cfg = Some(cfg);
        self.precision = Some(precision);
        Ok(())
    }

    fn reserve(&mut self, slots: usize, max_ctx: usize) -> Result<(), BackendError> {
        let cfg = self
            .cfg
            .clone()
            .ok_or_else(|| BackendError::Usage("reserve() before load()".into()))?;
        if let Some(old) = self.state.take() {
            self.budget.give(memory::state_bytes(&old));
        }
        self.state = Some(memory::allocate_state(
            &cfg,
            slots,
            max_ctx,
            &mut self.budget,
        )?);
        Ok(())
    }

    fn forward(
        &mut self,
        seqs: &[SeqChunk<'_>],
        logits: &mut Vec<f32>,
    ) -> Result<(), BackendError> {
        let (Some(cfg), Some(p), Some(w), Some(st)) =
            (&self.cfg, self.precision, &self.weights, &mut self.state)
        else {
            return Err(BackendError::Usage(
                "forward() before load() and reserve()".into(),
            ));
        };
        forward::forward(cfg, p, w, st, seqs, logits)
    }

    fn memory(&self) -> MemoryStats {
        MemoryStats {
            allocated: self.budget.used(),
            high_water: self.budget.high_water(),
            baseline: 0,
            source: "rss",
        }
    }
}

/// The CPU's model name from /proc/cpuinfo (Linux), else the architecture.
pub fn cpu_model_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}
