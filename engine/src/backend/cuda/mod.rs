//! The CUDA backend (`--backend cuda`, cargo feature `cuda`): cudarc with dynamic loading, so
//! the build needs no CUDA toolkit; on a machine without the driver or NVRTC library,
//! [`CudaBackend::new`] is a usage error (exit 2), never a panic.
//!
//! Kernels are `.cu` files compiled at run time by NVRTC for the device's architecture
//! ([`nvrtc`]); weights are uploaded once (bf16 in bf16 runs, f32 in f32 runs); the KV cache
//! (same element type), the RoPE table and one chunk of scratch are preallocated by `reserve`;
//! a forward step runs in chunks of [`CHUNK_ROWS`] rows and computes logits only for kept rows.
//!
//! Numerics: `invariant` mirrors the CPU backend's rounding points (DESIGN.md) with one fixed
//! reduction order per output element (see `forward.rs` and the `.cu` files), so a row's
//! logits never depend on the batch, the chunk, or prefill vs decode. Matmuls: f32 runs use
//! CUDA cores (fmaf chains, lane-strided k, fixed xor tree); bf16 runs use tensor cores
//! (mma.sync bf16 → f32, fixed k segments; activations are bf16 values already, so exact);
//! attention in bf16 runs is a tensor-core flash kernel (`flash_tc`). TF32 is never used.
//! `fast` sends matmuls of prefill chunks (≥ `FAST_MIN_ROWS` rows) through cuBLAS and keeps
//! the same epilogues; decode steps run the invariant kernels.
//!
//! Decode steps replay CUDA graphs (`forward.rs`) of programmatic dependent launches
//! (`launch.rs`, sm_90+): a kernel starts, and loads its weights, while the one before it
//! finishes. The decode matmul applies the RMSNorm before it itself (`Kernels::matmul`'s
//! `Norm`), and decode attention of a few rows merges its KV splits in the same kernel.

mod flash_tc;
mod forward;
mod kernels;
mod launch;
mod memory;
mod mmtc_tile;
pub mod nvrtc;

use std::sync::Arc;

use cudarc::driver::sys as cu;
use std::collections::HashMap;

use cudarc::driver::{CudaContext, CudaEvent, CudaGraph, CudaStream, PinnedHostSlice};

use crate::backend::cpu::kernels::{round_bf16, round_slice};
use crate::model::{LlamaConfig, ModelSource, TensorName};
use crate::trace::{AttnImpl, Dtype, Numerics};

use super::{Backend, BackendError, MemoryStats, Precision, SeqChunk};
use kernels::{tc_pair_perm, uses_tensor_cores, Kernels, FLASH_SPLIT};
use memory::{copy_dtoh, dev, Allocator, DBuf};

/// An A/B switch read at load: on unless the environment variable `name` is "0".
fn switch_on(name: &str) -> bool {
    std::env::var(name).map_or(true, |v| v != "0")
}

/// A tuning constant, overridden by the environment variable `name` for A/B timing.
fn tuned(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Rows per forward chunk (chunked prefill): scratch does not grow with ctx × batch.
/// Chunking never changes results: each row's arithmetic is independent of it. Larger chunks
/// fill the H100 better (SmolLM2 8k prefill, invariant / fast: 512 rows 70.8 / 59.6 ms, 1024
/// rows 63.2 / 45.8, 2048 rows 55.5 / 42.3) for more scratch and split partials (batch 8 at
/// ctx 8192: high-water 1.90 GB with 1024 rows, 1.99 GB with 2048).
pub const CHUNK_ROWS: usize = 2048;
/// Kept rows whose logits are computed per launch (bounds the logits buffer).
pub const LOGIT_ROWS: usize = 64;

/// Device weights of one layer. `qkv` is [q; k; v] stacked (rows d + 2·kv); `gate_up`
/// interleaves gate and up rows (row 2p = gate p, 2p+1 = up p) for the fused SwiGLU epilogue.
/// On the tensor-core path both are stored pair-permuted ([`kernels::tc_pair_perm`]).
pub(crate) struct Layer {
    pub attn_norm: DBuf,
    pub qkv: DBuf,
    pub o: DBuf,
    pub ffn_norm: DBuf,
    pub gate_up: DBuf,
    pub down: DBuf,
}

pub(crate) struct Weights {
    pub embd: DBuf,
    pub layers: Vec<Layer>,
    pub out_norm: DBuf,
    /// None: tied to `embd`.
    pub output: Option<DBuf>,
}

/// Preallocated per-run state.
pub(crate) struct State {
    pub slots: usize,
    pub max_ctx: usize,
    /// Per layer [slot][pos][kv_dim], bf16 or f32 like the weights.
    pub k_cache: Vec<DBuf>,
    pub v_cache: Vec<DBuf>,
    /// RoPE table [pos][head_dim/2], computed on the host exactly as the CPU does.
    pub cos: DBuf,
    pub sin: DBuf,
    pub x: DBuf,
    pub xb: DBuf,
    pub q: DBuf,
    pub att: DBuf,
    pub ff: DBuf,
    /// Final-norm output of kept rows [LOGIT_ROWS][d] and their logits [LOGIT_ROWS][vocab].
    pub xn: DBuf,
    pub logits: DBuf,
    /// Per-chunk row metadata (i32): see `forward::Meta`.
    pub meta: DBuf,
    /// Flash split partials: o [CHUNK][n_head][splits][hd], (m, l) [CHUNK][n_head][splits][2].
    pub part_o: DBuf,
    pub part_ml: DBuf,
    /// Finished split blocks per (query tile, KV head) of a decode flash launch, zeroed;
    /// the block that merges resets its counter.
    pub merge_cnt: DBuf,
    pub max_splits: usize,
    /// Naive attention scores [CHUNK][n_head][max_ctx].
    pub scores: DBuf,
    /// Greedy steps (argmax.cu): per logits row a u64 key and a u32 block count (zero between
    /// launches), and the chosen ids [step][row] of up to `forward::GREEDY_STEPS` steps.
    pub argmax_keys: DBuf,
    pub argmax_counts: DBuf,
    pub argmax_out: DBuf,
    /// Pinned host staging for logits, greedy ids and row metadata (pageable copies of a
    /// batch's logits cost more than the decode step itself).
    pub host_logits: PinnedHostSlice<f32>,
    pub host_ids: PinnedHostSlice<u32>,
    pub host_meta: PinnedHostSlice<i32>,
    /// Recorded after each metadata upload: the host waits on it before refilling
    /// `host_meta` (the copy from pinned memory is truly asynchronous, queued behind the
    /// previous chunk's kernels).
    pub meta_copied: CudaEvent,
    /// `fast` bf16 runs: cuBLAS's bf16 input and f32 output ([`kernels::FastScratch`]).
    pub fast: Option<(DBuf, DBuf)>,
    /// Whether decode steps replay graphs (`TRACECHECK_CUDA_GRAPHS`).
    pub use_graphs: bool,
    /// Decode graphs by chunk shape; they hold this state's buffer addresses.
    pub graphs: HashMap<forward::Shape, CudaGraph>,
}

/// The device in words, for run.json, and what NVRTC compiles for.
struct DeviceInfo {
    device: String,
    driver: Option<String>,
    arch: String,
    /// Programmatic dependent launches: sm_90 and newer, unless `TRACECHECK_CUDA_PDL=0`.
    pdl: bool,
}

// Large parts are boxed: `AnyBackend` holds this by value.
pub struct CudaBackend {
    // Device buffers first: they are freed before the stream and context go.
    state: Option<Box<State>>,
    weights: Option<Box<Weights>>,
    kernels: Option<Box<Kernels>>,
    cfg: Option<Box<LlamaConfig>>,
    precision: Option<Precision>,
    alloc: Allocator,
    stream: Arc<CudaStream>,
    ctx: Arc<CudaContext>,
    info: Box<DeviceInfo>,
    smem_optin: usize,
    baseline: u64,
}

impl CudaBackend {
    /// Opens device 0 with a non-legacy stream. `mem_limit` caps what the backend may allocate
    /// (bytes). Without the driver or NVRTC library, or without a device: a usage error.
    pub fn new(mem_limit: Option<u64>) -> Result<Self, BackendError> {
        // SAFETY: only tries to open the library by its candidate names.
        if !unsafe { cu::is_culib_present() } {
            return Err(BackendError::Usage(
                "--backend cuda: the CUDA driver library (libcuda.so) was not found: this machine has no NVIDIA driver installed (use --backend cpu, or set LD_LIBRARY_PATH to the driver's directory)".into(),
            ));
        }
        nvrtc::probe()?;
        let usage = |what: &str, e: cudarc::driver::DriverError| {
            BackendError::Usage(format!("--backend cuda: {what}: {e}"))
        };
        let ctx = CudaContext::new(0).map_err(|e| usage("no usable CUDA device", e))?;
        // One stream, ordered by construction: no per-buffer event tracking.
        // SAFETY: no buffer is created before this call.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx
            .new_stream()
            .map_err(|e| usage("creating a stream", e))?;
        let device = ctx.name().unwrap_or_else(|_| "CUDA device".into());
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| usage("compute capability", e))?;
        let mut version = 0i32;
        // SAFETY: out-parameter.
        let driver = (unsafe { cu::cuDriverGetVersion(&mut version) }
            == cu::CUresult::CUDA_SUCCESS)
            .then(|| format!("CUDA {}.{}", version / 1000, (version % 1000) / 10));
        let smem_optin = ctx
            .attribute(
                cu::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
            )
            .map_err(|e| usage("device attributes", e))? as usize;
        let (free, total) = ctx.mem_get_info().map_err(|e| usage("cuMemGetInfo", e))?;
        Ok(CudaBackend {
            state: None,
            weights: None,
            kernels: None,
            cfg: None,
            precision: None,
            alloc: Allocator::new(ctx.clone(), mem_limit),
            stream,
            ctx,
            info: Box::new(DeviceInfo {
                device,
                driver,
                arch: nvrtc::arch_name(major, minor),
                pdl: major >= 9 && switch_on("TRACECHECK_CUDA_PDL"),
            }),
            smem_optin,
            baseline: (total - free) as u64,
        })
    }

    /// Compiles every kernel file with NVRTC for `arch` (e.g. `sm_90`) without a device:
    /// (file, CUBIN bytes, NVRTC log). For tests and diagnostics.
    pub fn compile_kernels(arch: &str) -> Result<Vec<(String, usize, String)>, BackendError> {
        nvrtc::compile_all(arch)
    }

    /// Runs `f` and returns its result with the GPU time between CUDA events recorded on the
    /// backend's stream before and after it (seconds; for benchmarks).
    pub fn timed<R>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<R, BackendError>,
    ) -> Result<(R, f64), BackendError> {
        let ev = || {
            self.ctx
                .new_event(Some(cu::CUevent_flags::CU_EVENT_DEFAULT))
                .map_err(|e| dev("cuEventCreate", e))
        };
        let (start, end) = (ev()?, ev()?);
        start
            .record(&self.stream)
            .map_err(|e| dev("cuEventRecord", e))?;
        let r = f(self)?;
        end.record(&self.stream)
            .map_err(|e| dev("cuEventRecord", e))?;
        let ms = start
            .elapsed_ms(&end)
            .map_err(|e| dev("cuEventElapsedTime", e))?;
        Ok((r, ms as f64 / 1e3))
    }

    /// The greedy ids of `rows` (`vocab` floats each, at most [`LOGIT_ROWS`] rows) as the
    /// kernel of greedy decode steps chooses them (argmax.cu), launched twice (the second
    /// writes the next step's slots) to check that a launch leaves its per-row state reset —
    /// for tests against [`crate::backend::argmax`].
    pub fn device_argmax(&self, rows: &[f32], vocab: usize) -> Result<Vec<u32>, BackendError> {
        let n = rows.len().checked_div(vocab).unwrap_or(0);
        if n == 0 || n * vocab != rows.len() || n > LOGIT_ROWS {
            return Err(BackendError::Usage(format!(
                "device_argmax: {} values are not 1…{LOGIT_ROWS} rows of {vocab}",
                rows.len()
            )));
        }
        let f = nvrtc::load_module(&self.ctx, "argmax.cu", &self.info.arch)?
            .load_function("argmax_rows")
            .map_err(|e| dev("kernel argmax_rows", e))?;
        let a = &self.alloc;
        let s = &self.stream;
        let kept: Vec<i32> = (0..n as i32).collect();
        let logits = a.upload(rows, "argmax rows", s)?;
        let kept = a.upload(&kept, "argmax rows", s)?;
        let keys = a.zeros::<u64>(n, "argmax keys", s)?;
        let counts = a.zeros::<u32>(n, "argmax counts", s)?;
        let steps = a.zeros::<i32>(n, "argmax steps", s)?;
        let out = a.alloc(2 * n * 4, "argmax ids")?;
        let args = kernels::ArgmaxArgs {
            rows: n,
            logits: logits.ptr(),
            vocab,
            kept: kept.ptr(),
            keys: keys.ptr(),
            counts: counts.ptr(),
            out: out.ptr(),
            steps: steps.ptr(),
            tok: 0,
            pos: 0,
            advance: false,
        };
        for _ in 0..2 {
            kernels::launch_argmax(&f, s, self.info.pdl, &args)?;
        }
        let mut ids = vec![0u32; 2 * n];
        copy_dtoh(&out, 0, &mut ids, s)?;
        let (first, second) = ids.split_at(n);
        if first != second {
            return Err(BackendError::Device(format!(
                "argmax.cu: a second launch chose {second:?}, the first {first:?} (per-row state not reset)"
            )));
        }
        ids.truncate(n);
        Ok(ids)
    }

    /// NVRTC's version, when the library loads.
    pub fn nvrtc_version() -> Result<(i32, i32), BackendError> {
        nvrtc::version()
    }

    /// The include directories NVRTC gets (where `cuda_bf16.h` was found).
    pub fn cuda_include_dirs() -> Vec<std::path::PathBuf> {
        nvrtc::include_dirs()
    }

    /// Weights in storage form: bf16 bit patterns or f32, uploaded.
    fn upload_mat(&self, data: &[f32], bf16: bool, what: &str) -> Result<DBuf, BackendError> {
        if bf16 {
            let bits: Vec<u16> = data
                .iter()
                .map(|x| (round_bf16(*x).to_bits() >> 16) as u16)
                .collect();
            self.alloc.upload(&bits, what, &self.stream)
        } else {
            self.alloc.upload(data, what, &self.stream)
        }
    }

    fn upload_norm(
        &self,
        model: &ModelSource,
        name: TensorName,
        bf16: bool,
    ) -> Result<DBuf, BackendError> {
        let mut w = model.tensor(name)?;
        round_slice(&mut w, bf16);
        self.alloc.upload(&w, &name.gguf_name(), &self.stream)
    }

    fn ensure_kernels(&mut self) -> Result<(), BackendError> {
        if self.kernels.is_some() {
            return Ok(());
        }
        let (Some(cfg), Some(p)) = (&self.cfg, self.precision) else {
            return Err(BackendError::Usage("kernels before load()".into()));
        };
        self.kernels = Some(Box::new(Kernels::load(
            &self.ctx,
            &self.stream,
            &self.info.arch,
            p.dtype == Dtype::Bf16,
            p.numerics == Numerics::Fast,
            p.attn,
            cfg.n_head / cfg.n_kv_head,
            cfg.head_dim,
            self.smem_optin,
            self.info.pdl,
        )?));
        Ok(())
    }

    /// Page-locked host memory (not write-combined: the host reads logits back).
    fn pinned<T: cudarc::driver::DeviceRepr>(
        &self,
        len: usize,
    ) -> Result<PinnedHostSlice<T>, BackendError> {
        // SAFETY: the memory is only read through `as_mut_slice` after a copy or a write fills it.
        unsafe { self.ctx.alloc_pinned_with_flags::<T>(len, 0) }
            .map_err(|e| dev("pinned host memory", e))
    }

    /// One forward step with the loaded weights and the reserved state.
    fn run_forward(
        &mut self,
        seqs: &[SeqChunk<'_>],
        out: forward::Out<'_>,
    ) -> Result<(), BackendError> {
        let (pass, st) = self.pass()?;
        forward::forward(pass, st, seqs, out)
    }

    /// What a forward pass reads, and the reserved state it runs on (kernels loaded first).
    fn pass(&mut self) -> Result<(forward::Pass<'_>, &mut State), BackendError> {
        self.ensure_kernels()?;
        let (Some(cfg), Some(p), Some(w), Some(st), Some(k)) = (
            &self.cfg,
            self.precision,
            &self.weights,
            &mut self.state,
            &self.kernels,
        ) else {
            return Err(BackendError::Usage(
                "forward() before load() and reserve()".into(),
            ));
        };
        let pass = forward::Pass {
            cfg,
            p,
            w,
            k,
            s: &self.stream,
        };
        Ok((pass, st))
    }

    fn sync(&self) -> Result<(), BackendError> {
        self.stream
            .synchronize()
            .map_err(|e| dev("cuStreamSynchronize", e))
    }
}

impl Drop for CudaBackend {
    fn drop(&mut self) {
        let _ = self.stream.synchronize();
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn device(&self) -> String {
        self.info.device.clone()
    }

    fn driver(&self) -> Option<String> {
        self.info.driver.clone()
    }

    fn load(&mut self, model: &ModelSource, precision: Precision) -> Result<(), BackendError> {
        let cfg = model.config().clone();
        if !cfg.n_embd.is_multiple_of(8) || !cfg.n_ff.is_multiple_of(8) {
            return Err(BackendError::Unsupported(format!(
                "the CUDA matmul needs n_embd and n_ff to be multiples of 8 (got {} and {})",
                cfg.n_embd, cfg.n_ff
            )));
        }
        let bf16 = precision.dtype == Dtype::Bf16;
        self.weights = None;
        self.state = None;
        self.kernels = None;
        let embd = self.upload_mat(
            &model.tensor(TensorName::TokEmbd)?,
            bf16,
            "token_embd.weight",
        )?;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for l in 0..cfg.n_layer {
            let attn_norm = self.upload_norm(model, TensorName::AttnNorm(l), bf16)?;
            let mut qkv = model.tensor(TensorName::Q(l))?;
            qkv.extend(model.tensor(TensorName::K(l))?);
            qkv.extend(model.tensor(TensorName::V(l))?);
            let (d, m_qkv) = (cfg.n_embd, cfg.n_embd + 2 * cfg.kv_dim());
            if uses_tensor_cores(bf16, m_qkv, d) {
                qkv = tc_pair_perm(&qkv, m_qkv, d);
            }
            let qkv = self.upload_mat(&qkv, bf16, &format!("blk.{l}.attn_qkv"))?;
            let o = self.upload_mat(
                &model.tensor(TensorName::O(l))?,
                bf16,
                &TensorName::O(l).gguf_name(),
            )?;
            let ffn_norm = self.upload_norm(model, TensorName::FfnNorm(l), bf16)?;
            let (gate, up) = (
                model.tensor(TensorName::Gate(l))?,
                model.tensor(TensorName::Up(l))?,
            );
            let mut gu = Vec::with_capacity(gate.len() * 2);
            for (g, u) in gate.chunks(d).zip(up.chunks(d)) {
                gu.extend_from_slice(g);
                gu.extend_from_slice(u);
            }
            drop((gate, up));
            if uses_tensor_cores(bf16, 2 * cfg.n_ff, d) {
                gu = tc_pair_perm(&gu, 2 * cfg.n_ff, d);
            }
            let gate_up = self.upload_mat(&gu, bf16, &format!("blk.{l}.ffn_gate_up"))?;
            let down = self.upload_mat(
                &model.tensor(TensorName::Down(l))?,
                bf16,
                &TensorName::Down(l).gguf_name(),
            )?;
            layers.push(Layer {
                attn_norm,
                qkv,
                o,
                ffn_norm,
                gate_up,
                down,
            });
        }
        let out_norm = self.upload_norm(model, TensorName::OutputNorm, bf16)?;
        let output = if cfg.tied_embeddings {
            None
        } else {
            Some(self.upload_mat(&model.tensor(TensorName::Output)?, bf16, "output.weight")?)
        };
        self.sync()?;
        self.weights = Some(Box::new(Weights {
            embd,
            layers,
            out_norm,
            output,
        }));
        self.cfg = Some(Box::new(cfg));
        self.precision = Some(precision);
        Ok(())
    }

    fn reserve(&mut self, slots: usize, max_ctx: usize) -> Result<(), BackendError> {
        let (Some(cfg), Some(p)) = (self.cfg.clone(), self.precision) else {
            return Err(BackendError::Usage("reserve() before load()".into()));
        };
        self.sync()?;
        self.state = None;
        let (d, kv, hd, nh) = (cfg.n_embd, cfg.kv_dim(), cfg.head_dim, cfg.n_head);
        let kv_elem = if p.dtype == Dtype::Bf16 { 2 } else { 4 };
        let per_layer = super::kv_cache_elems(&cfg, slots, max_ctx)?;
        if max_ctx > i32::MAX as usize / 2 {
            return Err(BackendError::Unsupported(format!(
                "KV capacity {max_ctx} is too large"
            )));
        }
        let a = &self.alloc;
        let s = &self.stream;
        let mut k_cache = Vec::with_capacity(cfg.n_layer);
        let mut v_cache = Vec::with_capacity(cfg.n_layer);
        for l in 0..cfg.n_layer {
            k_cache.push(a.zeros::<u8>(
                per_layer * kv_elem,
                &format!("KV cache (layer {l} keys)"),
                s,
            )?);
            v_cache.push(a.zeros::<u8>(
                per_layer * kv_elem,
                &format!("KV cache (layer {l} values)"),
                s,
            )?);
        }
        let (cos, sin) = cfg.rope_table(max_ctx);
        let r = CHUNK_ROWS;
        let max_splits = max_ctx.div_ceil(FLASH_SPLIT);
        let (part_o, part_ml) = if p.attn == AttnImpl::Flash && max_splits > 1 {
            (
                a.alloc(r * nh * max_splits * hd * 4, "flash split partials")?,
                a.alloc(r * nh * max_splits * 2 * 4, "flash split partials")?,
            )
        } else {
            (a.alloc(0, "")?, a.alloc(0, "")?)
        };
        let scores = if p.attn == AttnImpl::Naive {
            a.alloc(r * nh * max_ctx * 4, "naive attention scores")?
        } else {
            a.alloc(0, "")?
        };
        let fast = if p.numerics == Numerics::Fast && p.dtype == Dtype::Bf16 {
            let max_k = d.max(cfg.n_ff);
            let max_m = (d + 2 * kv).max(2 * cfg.n_ff);
            Some((
                a.alloc(r * max_k * 2, "fast matmul scratch")?,
                a.alloc(r * max_m * 4, "fast matmul scratch")?,
            ))
        } else {
            None
        };
        let state = State {
            fast,
            slots,
            max_ctx,
            k_cache,
            v_cache,
            cos: a.upload(&cos, "RoPE table", s)?,
            sin: a.upload(&sin, "RoPE table", s)?,
            x: a.alloc(r * d * 4, "scratch")?,
            xb: a.alloc(r * d * 4, "scratch")?,
            q: a.alloc(r * d * 4, "scratch")?,
            att: a.alloc(r * d * 4, "scratch")?,
            ff: a.alloc(r * cfg.n_ff * 4, "scratch")?,
            xn: a.alloc(LOGIT_ROWS * d * 4, "scratch")?,
            logits: a.alloc(LOGIT_ROWS * cfg.vocab * 4, "logits")?,
            meta: a.alloc(forward::META_INTS * 4, "row metadata")?,
            part_o,
            part_ml,
            merge_cnt: a.zeros::<u8>(r * cfg.n_kv_head * 4, "flash merge counters", s)?,
            max_splits,
            scores,
            argmax_keys: a.zeros::<u64>(LOGIT_ROWS, "greedy argmax keys", s)?,
            argmax_counts: a.zeros::<u32>(LOGIT_ROWS, "greedy argmax counts", s)?,
            argmax_out: a.alloc(forward::GREEDY_STEPS * LOGIT_ROWS * 4, "greedy ids")?,
            host_logits: self.pinned(LOGIT_ROWS * cfg.vocab)?,
            host_ids: self.pinned(forward::GREEDY_STEPS * LOGIT_ROWS)?,
            host_meta: self.pinned(forward::META_INTS)?,
            meta_copied: self
                .ctx
                .new_event(None)
                .map_err(|e| dev("cuEventCreate", e))?,
            use_graphs: forward::graphs_enabled(),
            graphs: HashMap::new(),
        };
        self.sync()?;
        self.state = Some(Box::new(state));
        Ok(())
    }

    fn forward(
        &mut self,
        seqs: &[SeqChunk<'_>],
        logits: &mut Vec<f32>,
    ) -> Result<(), BackendError> {
        self.run_forward(seqs, forward::Out::Logits(logits))
    }

    fn forward_greedy(
        &mut self,
        seqs: &[SeqChunk<'_>],
        next: &mut Vec<u32>,
    ) -> Result<(), BackendError> {
        self.run_forward(seqs, forward::Out::Greedy(next))
    }

    fn decode_greedy(
        &mut self,
        seqs: &[SeqChunk<'_>],
        steps: usize,
        next: &mut Vec<u32>,
    ) -> Result<(), BackendError> {
        let (pass, st) = self.pass()?;
        if !forward::chains(st, seqs.len()) {
            return super::decode_greedy_stepwise(self, seqs, steps, next);
        }
        forward::decode_greedy(pass, st, seqs, steps, next)
    }

    /// Compiles and loads the kernels, then runs short forwards of 65, 8, 4, 2 and 1 rows on slot 0
    /// (every matmul variant; the slot's cache entries are overwritten by the real prefill) and
    /// a decode step of every slot, so first-launch costs and graph captures are not timed.
    fn warm_up(&mut self) -> Result<(), BackendError> {
        self.ensure_kernels()?;
        let Some((max_ctx, slots)) = self.state.as_ref().map(|s| (s.max_ctx, s.slots)) else {
            return Ok(());
        };
        let mut sink = Vec::new();
        // 65 rows: the tiled prefill matmul and, in `fast` runs, cuBLAS's first call.
        for n in [kernels::FAST_MIN_ROWS, 8, 4, 2, 1]
            .into_iter()
            .filter(|&n| n <= max_ctx)
        {
            let tokens = vec![0u32; n];
            sink.clear();
            self.forward(
                &[SeqChunk {
                    slot: 0,
                    start: 0,
                    tokens: &tokens,
                    keep: vec![n - 1],
                }],
                &mut sink,
            )?;
        }
        // A decode step of every slot (the batch the slots were reserved for), returning logits
        // and greedy: their graphs are captured here, not in the first timed decode step.
        // Position 0 of each slot is overwritten by the real prefill.
        let toks = vec![[0u32; 1]; slots];
        let step: Vec<SeqChunk> = (0..slots).map(|b| SeqChunk::step(b, 0, &toks[b])).collect();
        sink.clear();
        self.forward(&step, &mut sink)?;
        self.forward_greedy(&step, &mut Vec::new())?;
        self.sync()
    }

    fn memory_probe(&self) -> Option<super::MemoryProbe> {
        let ctx = self.ctx.clone();
        // cuMemGetInfo binds the context to the sampler's thread first.
        Some(Box::new(move || {
            ctx.mem_get_info()
                .ok()
                .map(|(free, total)| (total - free) as f64 / 1e6)
        }))
    }

    fn memory(&self) -> MemoryStats {
        MemoryStats {
            allocated: self.alloc.used(),
            high_water: self.alloc.high_water(),
            baseline: self.baseline,
            source: "cuMemGetInfo",
        }
    }
}
