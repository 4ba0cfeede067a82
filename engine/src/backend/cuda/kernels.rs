//! The compiled kernels of one run (bf16 or f32 variants) and one typed launch function per
//! kernel. Launch shapes are documented at the top of each `.cu` file; they never change a
//! row's arithmetic.

use std::sync::Arc;

use cudarc::cublas::{result as cublas_result, sys as cublas_sys, CudaBlas};
use cudarc::driver::sys::CUfunction_attribute_enum as FnAttr;
use cudarc::driver::{CudaContext, CudaFunction, CudaStream};

use crate::backend::BackendError;
use crate::trace::AttnImpl;

use super::flash_tc::SplitMerge;
use super::launch::Launch;
use super::memory::dev;
use super::nvrtc;
use super::{flash_tc, mmtc_tile, switch_on, tuned};

/// Keys per flash tile and per split (attention_flash.cu's FL_TILE, FL_SPLIT = 4 tiles).
pub const FLASH_TILE: usize = 64;
pub const FLASH_SPLIT: usize = 4 * FLASH_TILE;
/// Head dimensions the attention kernels are instantiated for.
const FLASH_HEAD_DIMS: [usize; 5] = [16, 32, 64, 128, 256];
const FLASH_THREADS: u32 = 256;
const NAIVE_THREADS: u32 = 256;
/// Threads per rmsnorm block (rmsnorm.cu's RMS_THREADS; a block per row).
const RMS_THREADS: u32 = 256;
/// Threads per argmax block and the ids each block reduces (argmax.cu's ARGMAX_THREADS,
/// ARGMAX_CHUNK).
const ARGMAX_THREADS: u32 = 256;
const ARGMAX_CHUNK: usize = 16 * ARGMAX_THREADS as usize;
/// Warps per matmul block; each warp owns one pair of output columns.
const MM_WARPS: u32 = 4;
/// k segments of the tensor-core matmul (matmul.cu's TC_SEGS): warps per decode block.
const TC_SEGS: u32 = 8;

/// Whether an [m × k] weight runs on the tensor-core matmul (bf16 runs; matmul.cu's mmtc_*).
/// Decided by the shape alone, so every row of a run takes the same path.
pub fn uses_tensor_cores(bf16: bool, m: usize, k: usize) -> bool {
    bf16 && k.is_multiple_of(32) && m.is_multiple_of(16)
}

/// The storage order of a paired-epilogue weight on the tensor-core path: within each group of
/// 16 rows, storage row g holds logical row 2g and storage row g+8 logical row 2g+1.
pub fn tc_pair_perm(rows: &[f32], m: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0f32; m * k];
    for grp in 0..m / 16 {
        for g in 0..8 {
            for (dst, src) in [(g, 2 * g), (g + 8, 2 * g + 1)] {
                let (d0, s0) = ((grp * 16 + dst) * k, (grp * 16 + src) * k);
                out[d0..d0 + k].copy_from_slice(&rows[s0..s0 + k]);
            }
        }
    }
    out
}

/// Matmul epilogues (matmul.cu's EPI_*).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(i32)]
pub enum Epi {
    Store = 0,
    Residual = 1,
    Swiglu = 2,
    Qkv = 3,
}

/// The extra arguments of the fused QKV epilogue (RoPE and the KV-cache store).
#[derive(Clone, Copy, Default)]
pub struct QkvArgs {
    pub k_cache: u64,
    pub v_cache: u64,
    pub row_slot: u64,
    pub row_pos: u64,
    pub cos: u64,
    pub sin: u64,
    pub d: i32,
    pub kv: i32,
    pub hd: i32,
    pub max_ctx: i32,
}

impl QkvArgs {
    /// The epilogue's trailing kernel parameters, in matmul.cu's (and fast.cu's) order.
    fn push_args<'a>(&'a self, b: &mut Launch<'a>) {
        b.arg(&self.k_cache).arg(&self.v_cache);
        b.arg(&self.row_slot).arg(&self.row_pos);
        b.arg(&self.cos).arg(&self.sin);
        b.arg(&self.d)
            .arg(&self.kv)
            .arg(&self.hd)
            .arg(&self.max_ctx);
    }
}

/// The shapes attention kernels need.
#[derive(Clone, Copy)]
pub struct AttnShape {
    pub d: i32,
    pub kv: i32,
    pub hd: i32,
    pub group: i32,
    pub n_head: i32,
    pub n_kv_head: i32,
    pub scale: f32,
    pub round: i32,
    pub max_ctx: i32,
}

// flash_merge finishes the tensor-core kernel's splits too.
const _: () = assert!(4 * flash_tc::FLASH_TC_TILE == FLASH_SPLIT);

/// The decode matmul applies the RMSNorm itself up to this width: each block recomputes its
/// rows' norm, cheap for SmolLM2's 576 but a measurable serial start for Llama-3's 4096
/// (H100: Llama-3-8B decode 6.42 → 6.82 ms per step with it fused, rmsnorm.cu taking a block
/// per row).
const FUSED_NORM_MAX_K: usize = 1024;

/// Decode flash launches of at most this many rows merge their splits inside the kernel
/// (H100, SmolLM2, ctx 8192: batch 1 1.047 → 1.018 ms per step fused; batch 8 1.756 → 1.855
/// ms: there the merge kernel's warps, one per (row, head), finish sooner than the tiles'
/// last blocks merging three heads each).
const FUSED_MERGE_MAX_ROWS: usize = 4;

/// k32 weight blocks per batch of `mmtc_bf16_dec` and `mmtc_bf16_dec8` (matmul.cu's DEC_U of
/// each instance): a warp segment longer than the first and at most the second takes dec8.
const DEC_BATCH: usize = 4;
const DEC8_BATCH: usize = 8;

/// Decode launches of the decode flash form with at most this many splits (and at most
/// `FUSED_MERGE_MAX_ROWS` rows) merge inside a cluster of their splits instead of the
/// fence/atomic merge (H100, SmolLM2 invariant, ms per step cluster / atomic, when rank 0
/// pulled its peers' states: batch 1 ctx 300 0.580–0.584 / 0.599–0.648, ctx 600 0.572–0.575 /
/// 0.589–0.596 — 2 and 3 splits; 4 splits (ctx 800) 0.647–0.658 / 0.601–0.608, 6 (ctx 1300)
/// 0.678 / 0.627–0.633; batch 8 ctx 300 and 600 0.833–0.848 / 0.784–0.814 against the merge
/// kernel). The peers now push their states and leave (batch 1 ctx 512 0.544 → 0.524, ctx
/// 700 0.561 → 0.540, batch 4 ctx 512 0.609 → 0.588); clusters of up to 8 still lose from 4
/// splits on: ctx 800 0.581–0.583 / 0.566–0.567 with 3, ctx 2000 0.612 / 0.574.
const FLASH_CLUSTER_MAX: usize = 3;

/// Decode launches of the decode flash form with 2 … this many splits (and at most
/// `FLASH_GROUP_MAX_ROWS` rows) run every split of a (row, KV head) in one block, a group of
/// warps per split, and merge them there (attention_flash_tc.cu, "grouped"): no cluster
/// barrier, no fence/atomic, no merge kernel. Bounded by the kernel's FT_DEC_GROUPS and by
/// the shared memory of one block (SmolLM2 73 KB per split; Llama-3's 137 KB: never grouped).
/// H100, SmolLM2 invariant, ms per step grouped / before (cluster merge at batch 1, the merge
/// kernel above 4 rows): 2 splits (ctx 300) batch 1 0.522 / 0.532, batch 4 0.574 / 0.618,
/// batch 8 0.592 / 0.613; 3 splits (ctx 512) batch 1 0.562 / 0.546 — one SM then copies 9
/// tiles of K/V before its wait, where a cluster spreads them over three — so 2.
const FLASH_GROUP_MAX: usize = 2;
const FLASH_GROUP_MAX_ROWS: usize = 8;

/// `fast` numerics: matmuls of at least this many rows (prefill chunks) go through cuBLAS.
/// Above the decode-graph limit, so cuBLAS never runs inside a graph capture.
pub const FAST_MIN_ROWS: usize = 65;

/// cuBLAS and the kernels around it (fast.cu), for `--numerics fast` bf16 runs.
struct FastGemm {
    blas: CudaBlas,
    to_bf16: CudaFunction,
    epi_apply: CudaFunction,
}

/// Scratch of the `fast` path: activations as bf16 [CHUNK_ROWS × max k] and cuBLAS's f32
/// output [CHUNK_ROWS × max m].
pub struct FastScratch {
    pub xh: u64,
    pub acc: u64,
}

pub(crate) struct Kernels {
    /// Present in `fast` bf16 runs.
    fast: Option<FastGemm>,
    embed: CudaFunction,
    rmsnorm: CudaFunction,
    argmax: CudaFunction,
    /// Rows per warp 1, 2, 4, 8.
    mm: [CudaFunction; 4],
    /// Tensor-core matmul (bf16 runs): decode (n ≤ 8; without and with the fused RMSNorm),
    /// small and tiled prefill shapes, and decode in weight batches of 8 (`mmtc_bf16_dec8`).
    mmtc: Option<[CudaFunction; 5]>,
    /// Decode matmuls whose warp segment is 5–8 k32 blocks (`DEC_BATCH` < … ≤ `DEC8_BATCH`)
    /// take `mmtc_bf16_dec8` (`TRACECHECK_DEC8=0` keeps `mmtc_bf16_dec`, for A/B timing; the
    /// same bits).
    dec8: bool,
    flash: CudaFunction,
    flash_merge: CudaFunction,
    /// Present in `--attn naive` runs.
    naive: Option<CudaFunction>,
    /// Rows per flash query tile, chosen so the tile's shared memory fits the device.
    pub flash_qt: usize,
    flash_smem_max: u32,
    /// `flash` is the tensor-core kernel (attention_flash_tc.cu).
    flash_tc: bool,
    /// Its decode form (`flash_tc_dec_bf16_hd*`, same bits, tiles of a split side by side),
    /// for launches of one position per tile and at most `flash_dec_blocks` blocks;
    /// `TRACECHECK_FLASH_DEC=0` keeps `flash` (A/B).
    flash_dec: Option<CudaFunction>,
    /// The device's SM count: the decode form pays off while its blocks fit side by side
    /// (H100, SmolLM2 invariant, ms per step with / without it: batch 1 ctx 512 0.834 / 0.932,
    /// batch 8 ctx 512 1.077 / 1.224, batch 1 ctx 8192 0.985 / 1.021 — 96 blocks; batch 4 ctx
    /// 8192 1.490 / 1.292 and batch 8 2.015 / 1.714 — 396 and 792 blocks: its 83 KB of shared
    /// memory per block (73 KB since P shares the K rows) then leaves fewer loads in flight per
    /// SM). `TRACECHECK_FLASH_DEC_BLOCKS` overrides it, for A/B timing.
    flash_dec_blocks: usize,
    /// Block size of `flash_merge` (the two merge kernels are built for different blocks).
    flash_merge_threads: u32,
    /// Launch as programmatic dependent launches (sm_90+, see launch.rs).
    pdl: bool,
    /// Who merges a decode launch's splits (`flash_tc::split_merge`), from the launch shape:
    /// `flash_dec` with 2 … `group_max` splits and at most `group_rows` rows runs them in one
    /// block (`FLASH_GROUP_MAX`, `FLASH_GROUP_MAX_ROWS`; `TRACECHECK_FLASH_GROUP_MAX`, 0 or 1:
    /// off, `TRACECHECK_FLASH_GROUP_ROWS`); else with 2 … `cluster_max` splits and at most
    /// `self_rows` rows in clusters of its splits over distributed shared memory (the peers
    /// push into rank 0's inbox, attention_flash_tc.cu; `TRACECHECK_FLASH_CLUSTER_MAX`, 0 or 1:
    /// off; above 8 the non-portable sizes, up to 16); else launches of at most `self_rows`
    /// rows in their last block (`FUSED_MERGE_MAX_ROWS`, `TRACECHECK_FUSED_MERGE_ROWS`; 0:
    /// always the merge kernel). The variables are for A/B timing.
    merge_limits: flash_tc::MergeLimits,
    /// Widest rows the decode matmul normalises itself (`TRACECHECK_FUSED_NORM_MAX_K`, A/B).
    fused_norm_max_k: usize,
}

/// One matmul: norm(x) [n × k] · w [m × k]ᵀ (x itself without `norm`) with the epilogue `epi`
/// into `out` (row stride `ldo`); `round` rounds the epilogue's values to bf16.
#[derive(Clone, Copy)]
pub struct Gemm<'a> {
    pub x: u64,
    pub norm: Option<&'a Norm>,
    pub n: usize,
    pub k: usize,
    pub w: u64,
    pub m: usize,
    pub epi: Epi,
    pub round: bool,
    pub out: u64,
    pub ldo: usize,
    pub qkv: &'a QkvArgs,
}

/// An RMSNorm to apply to a matmul's input rows first (`Kernels::matmul`): fused into the
/// decode matmul, a separate `rmsnorm` into `scratch` otherwise — the same bits either way.
#[derive(Clone, Copy)]
pub struct Norm {
    /// The norm's weights [k].
    pub w: u64,
    pub eps: f32,
    /// Input row of each output row (device i32 array), or 0 for the identity.
    pub rows: u64,
    /// [rows × k] f32 for the separate norm's output.
    pub scratch: u64,
}

/// argmax.cu's `argmax_rows` parameters: `rows` logits rows of `vocab`, row r belonging to
/// chunk row kept[r]; `keys` (u64) and `counts` (u32), one per row, zero before and after;
/// the chosen id of row r goes to out[steps[kept[r]] · rows + r] and steps[kept[r]] counts up;
/// with `advance`, tok[kept[r]] = the id and pos[kept[r]] += 1 (device pointers; i32 arrays).
#[derive(Clone, Copy)]
pub struct ArgmaxArgs {
    pub rows: usize,
    pub logits: u64,
    pub vocab: usize,
    pub kept: u64,
    pub keys: u64,
    pub counts: u64,
    pub out: u64,
    pub steps: u64,
    pub tok: u64,
    pub pos: u64,
    pub advance: bool,
}

/// The greedy id of each logits row (largest value, ties to the lowest id, NaN never wins)
/// with argmax.cu's `argmax_rows` (`f`).
pub(super) fn launch_argmax(
    f: &CudaFunction,
    s: &Arc<CudaStream>,
    pdl: bool,
    a: &ArgmaxArgs,
) -> Result<(), BackendError> {
    let (v, adv) = (a.vocab as i32, a.advance as i32);
    let mut b = Launch::new(s, f);
    b.arg(&a.logits)
        .arg(&v)
        .arg(&a.kept)
        .arg(&a.keys)
        .arg(&a.counts);
    b.arg(&a.out)
        .arg(&a.steps)
        .arg(&a.tok)
        .arg(&a.pos)
        .arg(&adv);
    let grid = (a.vocab.div_ceil(ARGMAX_CHUNK) as u32, a.rows as u32, 1);
    // SAFETY: argmax_rows's parameters, in order; the caller sizes `logits` [rows × vocab],
    // keys/counts [rows], `out` for the steps counted, and kept/steps/tok/pos for the chunk's
    // rows; the kernel calls pdl_wait before its first read.
    unsafe { b.run(grid, ARGMAX_THREADS, 0, pdl, "argmax") }
}

/// Shared memory (bytes) of one flash block: mirrors attention_flash.cu's `FlashSmem`.
pub fn flash_smem_bytes(qt: usize, group: usize, hd: usize) -> usize {
    let qg = qt * group;
    4 * (3 * qg * hd + qg * FLASH_TILE + FLASH_TILE * (hd + 1) + FLASH_TILE * hd + 4 * qg)
}

fn naive_smem_bytes(group: usize, hd: usize) -> usize {
    4 * (group * hd + NAIVE_THREADS as usize)
}

impl Kernels {
    /// Compiles (once per process) and loads the kernels for `arch`, in the bf16 or f32
    /// variant; sizes the flash query tile for the model's group × head_dim.
    #[allow(clippy::too_many_arguments)]
    pub fn load(
        ctx: &Arc<CudaContext>,
        stream: &Arc<CudaStream>,
        arch: &str,
        bf16: bool,
        fast: bool,
        attn: AttnImpl,
        group: usize,
        hd: usize,
        smem_optin: usize,
        pdl: bool,
    ) -> Result<Self, BackendError> {
        let suf = if bf16 { "bf16" } else { "f32" };
        let module = |file: &str| nvrtc::load_module(ctx, file, arch);
        let f = |m: &Arc<cudarc::driver::CudaModule>, name: &str| {
            m.load_function(name)
                .map_err(|e| dev(&format!("kernel {name}"), e))
        };
        // Only the attention kernels the run uses are compiled (NVRTC runs in every cell's
        // process: the CUDA-core flash file alone is ~0.5 MB of CUBIN).
        let (embed_m, norm_m, mm_m, argmax_m) = (
            module("embed.cu")?,
            module("rmsnorm.cu")?,
            module("matmul.cu")?,
            module("argmax.cu")?,
        );
        if !FLASH_HEAD_DIMS.contains(&hd) {
            return Err(BackendError::Unsupported(format!(
                "the attention kernels are built for head dimensions {FLASH_HEAD_DIMS:?}, not {hd}"
            )));
        }
        // bf16 runs take the tensor-core flash kernel where it is built for the shape
        // (`TRACECHECK_FLASH_TC=0` keeps the CUDA-core one, for comparisons).
        let tc =
            bf16 && flash_tc::flash_tc_supported(group, hd) && switch_on("TRACECHECK_FLASH_TC");
        let mut flash_dec = None;
        let mut group_max = 0;
        // Clusters need sm_90 (the same devices as PDL).
        let mut cluster_max = if pdl {
            tuned("TRACECHECK_FLASH_CLUSTER_MAX", FLASH_CLUSTER_MAX).min(16)
        } else {
            0
        };
        let (flash, flash_merge, flash_qt, flash_smem_max) = if tc {
            let m = module("attention_flash_tc.cu")?;
            let qt = flash_tc::flash_tc_qt(group, hd);
            let dec_smem = flash_tc::flash_tc_dec_smem_bytes(hd);
            if switch_on("TRACECHECK_FLASH_DEC") && dec_smem <= smem_optin && group <= 16 {
                let fd = f(&m, &format!("flash_tc_dec_bf16_hd{hd}"))?;
                group_max = tuned("TRACECHECK_FLASH_GROUP_MAX", FLASH_GROUP_MAX)
                    .min(flash_tc::FLASH_TC_DEC_GROUPS)
                    .min(smem_optin / dec_smem);
                // A cluster launch's rank 0 holds an inbox slot per split past its region.
                let inbox = flash_tc::flash_tc_dec_inbox_bytes(hd);
                cluster_max = cluster_max.min((smem_optin - dec_smem) / inbox);
                let most = (group_max.max(1) * dec_smem).max(dec_smem + cluster_max * inbox);
                fd.set_attribute(
                    FnAttr::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    most as i32,
                )
                .map_err(|e| dev("decode flash shared memory limit", e))?;
                if cluster_max > 8 {
                    fd.set_attribute(
                        FnAttr::CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED,
                        1,
                    )
                    .map_err(|e| dev("decode flash cluster size", e))?;
                }
                flash_dec = Some(fd);
            }
            (
                f(&m, &format!("flash_tc_bf16_hd{hd}"))?,
                f(&m, "flash_tc_merge")?,
                qt,
                flash_tc::flash_tc_smem_bytes(qt, group, hd),
            )
        } else {
            let flash_m = module("attention_flash.cu")?;
            let qt = [16usize, 8, 4, 2, 1]
                .into_iter()
                .find(|&qt| flash_smem_bytes(qt, group, hd) <= smem_optin)
                .ok_or_else(|| {
                    BackendError::Unsupported(format!(
                        "flash attention needs {} bytes of shared memory per block for head_dim {hd} × group {group}; the device allows {smem_optin}",
                        flash_smem_bytes(1, group, hd)
                    ))
                })?;
            (
                f(&flash_m, &format!("flash_{suf}_hd{hd}"))?,
                f(&flash_m, "flash_merge")?,
                qt,
                flash_smem_bytes(qt, group, hd),
            )
        };
        if flash_smem_max > smem_optin {
            return Err(BackendError::Unsupported(format!(
                "flash attention needs {flash_smem_max} bytes of shared memory per block; the device allows {smem_optin}"
            )));
        }
        let flash_smem_max = flash_smem_max as u32;
        flash
            .set_attribute(
                FnAttr::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                flash_smem_max as i32,
            )
            .map_err(|e| dev("flash shared memory limit", e))?;
        let naive = if attn == AttnImpl::Naive {
            let naive_m = module("attention_naive.cu")?;
            let naive = f(&naive_m, &format!("naive_{suf}_hd{hd}"))?;
            let naive_smem = naive_smem_bytes(group, hd);
            if naive_smem > smem_optin {
                return Err(BackendError::Unsupported(format!(
                    "naive attention needs {naive_smem} bytes of shared memory per block; the device allows {smem_optin}"
                )));
            }
            naive
                .set_attribute(
                    FnAttr::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    naive_smem as i32,
                )
                .map_err(|e| dev("naive shared memory limit", e))?;
            Some(naive)
        } else {
            None
        };
        let fast = if fast && bf16 {
            // SAFETY: only tries to open the library by its candidate names.
            if !unsafe { cudarc::cublas::sys::is_culib_present() } {
                return Err(BackendError::Usage(
                    "--numerics fast: the cuBLAS library (libcublas.so) was not found: put the CUDA toolkit's lib directory on LD_LIBRARY_PATH (e.g. /usr/local/cuda/lib64), or use --numerics invariant".into(),
                ));
            }
            let m = module("fast.cu")?;
            Some(FastGemm {
                blas: CudaBlas::new(stream.clone())
                    .map_err(|e| BackendError::Device(format!("cublasCreate: {e}")))?,
                to_bf16: f(&m, "to_bf16")?,
                epi_apply: f(&m, "epi_apply")?,
            })
        } else {
            None
        };
        Ok(Kernels {
            fast,
            embed: f(&embed_m, &format!("embed_{suf}"))?,
            rmsnorm: f(&norm_m, "rmsnorm")?,
            argmax: f(&argmax_m, "argmax_rows")?,
            mm: [
                f(&mm_m, &format!("mm_{suf}_r1"))?,
                f(&mm_m, &format!("mm_{suf}_r2"))?,
                f(&mm_m, &format!("mm_{suf}_r4"))?,
                f(&mm_m, &format!("mm_{suf}_r8"))?,
            ],
            mmtc: if bf16 {
                let pre2 = f(&mm_m, "mmtc_bf16_pre2")?;
                pre2.set_attribute(
                    FnAttr::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    mmtc_tile::pre2_smem_bytes() as i32,
                )
                .map_err(|e| dev("tiled matmul shared memory limit", e))?;
                Some([
                    f(&mm_m, "mmtc_bf16_dec")?,
                    f(&mm_m, "mmtc_bf16_dec_norm")?,
                    f(&mm_m, "mmtc_bf16_pre")?,
                    pre2,
                    f(&mm_m, "mmtc_bf16_dec8")?,
                ])
            } else {
                None
            },
            flash,
            flash_merge,
            naive,
            flash_qt,
            flash_smem_max,
            dec8: switch_on("TRACECHECK_DEC8"),
            flash_tc: tc,
            merge_limits: flash_tc::MergeLimits {
                group_max,
                group_rows: tuned("TRACECHECK_FLASH_GROUP_ROWS", FLASH_GROUP_MAX_ROWS),
                cluster_max,
                self_rows: tuned("TRACECHECK_FUSED_MERGE_ROWS", FUSED_MERGE_MAX_ROWS),
            },
            flash_dec,
            flash_dec_blocks: tuned(
                "TRACECHECK_FLASH_DEC_BLOCKS",
                ctx.attribute(cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
                    .map_err(|e| dev("SM count", e))? as usize,
            ),
            flash_merge_threads: if tc {
                flash_tc::FLASH_TC_MERGE_THREADS
            } else {
                128
            },
            pdl,
            fused_norm_max_k: tuned("TRACECHECK_FUSED_NORM_MAX_K", FUSED_NORM_MAX_K),
        })
    }

    /// x[i, :] = table[tokens[i], :].
    pub fn embed(
        &self,
        s: &Arc<CudaStream>,
        n: usize,
        tokens: u64,
        table: u64,
        d: usize,
        x: u64,
    ) -> Result<(), BackendError> {
        let d = d as i32;
        let mut b = Launch::new(s, &self.embed);
        b.arg(&tokens).arg(&table).arg(&d).arg(&x);
        self.run(b, (n as u32, 1, 1), 128, 0, "embed")
    }

    /// The greedy id of each `logits` row (see [`launch_argmax`]).
    pub fn argmax(&self, s: &Arc<CudaStream>, a: &ArgmaxArgs) -> Result<(), BackendError> {
        launch_argmax(&self.argmax, s, self.pdl, a)
    }

    /// out[i, :] = rmsnorm(x[rows[i] or i, :]) · w (rows = 0: identity).
    #[allow(clippy::too_many_arguments)]
    pub fn rmsnorm(
        &self,
        s: &Arc<CudaStream>,
        n_out: usize,
        x: u64,
        rows: u64,
        w: u64,
        d: usize,
        eps: f32,
        round: bool,
        out: u64,
    ) -> Result<(), BackendError> {
        let (d, r) = (d as i32, round as i32);
        let mut b = Launch::new(s, &self.rmsnorm);
        b.arg(&x)
            .arg(&rows)
            .arg(&w)
            .arg(&d)
            .arg(&eps)
            .arg(&r)
            .arg(&out);
        self.run(b, (n_out as u32, 1, 1), RMS_THREADS, 0, "rmsnorm")
    }

    /// The matmul `g` (with `scratch` in `fast` runs: prefill chunks go through cuBLAS).
    pub fn matmul(
        &self,
        s: &Arc<CudaStream>,
        g: &Gemm<'_>,
        scratch: Option<&FastScratch>,
    ) -> Result<(), BackendError> {
        let Gemm {
            x,
            norm,
            n,
            k,
            w,
            m,
            epi,
            round,
            out,
            ldo,
            qkv,
        } = *g;
        if n == 0 {
            return Ok(());
        }
        // The tensor-core decode matmul (bf16 runs, n ≤ 8) applies the norm itself; every other
        // path normalises first (bf16 runs round the norm's output: `mmtc` is their marker).
        let bf16 = self.mmtc.is_some();
        let decode = bf16 && n <= 8 && uses_tensor_cores(true, m, k);
        let (x, fused) = match norm {
            Some(nm) if !decode || k > self.fused_norm_max_k => {
                self.rmsnorm(s, n, x, nm.rows, nm.w, k, nm.eps, bf16, nm.scratch)?;
                (nm.scratch, None)
            }
            _ => (x, norm),
        };
        if let (Some(fg), Some(fs)) = (&self.fast, scratch) {
            if n >= FAST_MIN_ROWS && uses_tensor_cores(true, m, k) {
                return self.fast_matmul(
                    fg,
                    fs,
                    s,
                    &Gemm {
                        x,
                        norm: None,
                        ..*g
                    },
                );
            }
        }
        // The kernel and its shape decide which rows share a weight load, never a row's
        // arithmetic: for a given (m, k), every n gives a row the same bits.
        let (func, grid, block, smem) = match &self.mmtc {
            Some([dec, dec_norm, pre, pre2, dec8]) if uses_tensor_cores(true, m, k) => {
                if decode {
                    // A warp's segment: ceil(k / 32 / TC_SEGS) k32 blocks.
                    let per_warp = (k / 32).div_ceil(TC_SEGS as usize);
                    let f = if fused.is_some() {
                        dec_norm
                    } else if self.dec8 && (DEC_BATCH + 1..=DEC8_BATCH).contains(&per_warp) {
                        dec8
                    } else {
                        dec
                    };
                    (f, (m.div_ceil(16) as u32, 1, 1), 32 * TC_SEGS, 0)
                } else if n >= mmtc_tile::pre2_min_rows() && mmtc_tile::pre2_offsets_fit(m, n, k) {
                    (
                        pre2,
                        mmtc_tile::pre2_grid(m, n),
                        mmtc_tile::PRE2_THREADS,
                        mmtc_tile::pre2_smem_bytes(),
                    )
                } else {
                    (
                        pre,
                        (m.div_ceil(64) as u32, n.div_ceil(32) as u32, 1),
                        128,
                        0,
                    )
                }
            }
            _ => {
                let (variant, rows) = match n {
                    1 => (0, 1),
                    2 => (1, 2),
                    3 | 4 => (2, 4),
                    _ => (3, 8),
                };
                let grid_x = m.div_ceil(2 * MM_WARPS as usize) as u32;
                (
                    &self.mm[variant],
                    (grid_x, n.div_ceil(rows) as u32, 1),
                    32 * MM_WARPS,
                    0,
                )
            }
        };
        let (n_, k_, m_, e_, r_, ldo_) = (
            n as i32,
            k as i32,
            m as i32,
            epi as i32,
            round as i32,
            ldo as i32,
        );
        let mut b = Launch::new(s, func);
        b.arg(&x)
            .arg(&n_)
            .arg(&k_)
            .arg(&w)
            .arg(&m_)
            .arg(&e_)
            .arg(&r_);
        b.arg(&out).arg(&ldo_);
        qkv.push_args(&mut b);
        let (nw, nrows, eps) = fused.map_or((0u64, 0u64, 0f32), |nm| (nm.w, nm.rows, nm.eps));
        if decode {
            b.arg(&nw).arg(&nrows).arg(&eps);
        }
        self.run(b, grid, block, smem, "matmul")
    }

    /// `fast` matmul: x → bf16, cuBLAS GEMM (bf16 in, f32 out and accumulation), then the
    /// epilogue in storage order (see fast.cu).
    /// `g.norm` is applied already (`matmul` normalises into its scratch first).
    fn fast_matmul(
        &self,
        fg: &FastGemm,
        fs: &FastScratch,
        s: &Arc<CudaStream>,
        g: &Gemm<'_>,
    ) -> Result<(), BackendError> {
        let (x, n, k, w, m) = (g.x, g.n, g.k, g.w, g.m);
        let len = (n * k) as i64;
        let mut b = Launch::new(s, &fg.to_bf16);
        b.arg(&x).arg(&len).arg(&fs.xh);
        self.run(b, ((n * k).div_ceil(256) as u32, 1, 1), 256, 0, "to_bf16")?;
        let (alpha, beta) = (1.0f32, 0.0f32);
        // Row-major acc [n × m] = x [n × k] · w [m × k]ᵀ is column-major acc [m × n] =
        // op(w) · xᵀ with w read transposed (lda = k) and x as is (ldb = k).
        // SAFETY: w holds m × k bf16, xh n × k bf16 (converted above), acc n × m f32 (sized by
        // `reserve` for CHUNK_ROWS rows and the largest m); alpha/beta are host scalars.
        unsafe {
            cublas_result::gemm_ex(
                *fg.blas.handle(),
                cublas_sys::cublasOperation_t::CUBLAS_OP_T,
                cublas_sys::cublasOperation_t::CUBLAS_OP_N,
                m as i32,
                n as i32,
                k as i32,
                (&alpha as *const f32).cast(),
                w as *const std::ffi::c_void,
                cublas_sys::cudaDataType_t::CUDA_R_16BF,
                k as i32,
                fs.xh as *const std::ffi::c_void,
                cublas_sys::cudaDataType_t::CUDA_R_16BF,
                k as i32,
                (&beta as *const f32).cast(),
                fs.acc as *mut std::ffi::c_void,
                cublas_sys::cudaDataType_t::CUDA_R_32F,
                m as i32,
                cublas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cublas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(|e| BackendError::Device(format!("cublasGemmEx ({n} × {k} · {m} × {k}): {e}")))?;
        let perm = matches!(g.epi, Epi::Qkv | Epi::Swiglu) as i32;
        let (n_, m_, e_, r_, ldo_) = (
            n as i32,
            m as i32,
            g.epi as i32,
            g.round as i32,
            g.ldo as i32,
        );
        let mut b = Launch::new(s, &fg.epi_apply);
        b.arg(&fs.acc).arg(&n_).arg(&m_).arg(&e_).arg(&r_);
        b.arg(&g.out).arg(&ldo_);
        g.qkv.push_args(&mut b);
        b.arg(&perm);
        self.run(
            b,
            ((m / 2).div_ceil(128) as u32, n as u32, 1),
            128,
            0,
            "matmul epilogue",
        )
    }

    /// Flash attention: a block per (query tile, KV head, split) over `n_tiles` query tiles
    /// of at most `qt` rows and splits 0..n_splits; then, when some row has several splits,
    /// their ordered merge (`part_o`/`part_ml` are [row][head][split]; `merge_cnt`, zeroed
    /// [CHUNK_ROWS × n_kv_head] i32, counts finished blocks where the kernel merges itself).
    /// `decode`: at most one row per sequence (the tensor-core kernels then copy K/V of
    /// earlier positions before waiting on the kernel before them).
    #[allow(clippy::too_many_arguments)]
    pub fn flash(
        &self,
        s: &Arc<CudaStream>,
        a: &AttnShape,
        n: usize,
        q: u64,
        k_cache: u64,
        v_cache: u64,
        tiles: u64,
        n_tiles: usize,
        qt: usize,
        n_splits: usize,
        row_slot: u64,
        row_pos: u64,
        part_o: u64,
        part_ml: u64,
        max_splits: usize,
        merge_cnt: u64,
        decode: bool,
        out: u64,
    ) -> Result<(), BackendError> {
        let (group, hd) = (a.group as usize, a.hd as usize);
        // Decode launches (one position per tile) of the tensor-core kernel merge their splits
        // themselves; prefill chunks keep the merge kernel (a tile's rows × heads would queue
        // behind one block). The decode form with few splits runs them in one block (grouped)
        // or, failing that, merges inside a cluster of them; otherwise the tile's last block
        // does (merge_cnt; a warp per query head: the block gets a warp per head of the
        // group).
        let blocks = n_tiles * a.n_kv_head as usize * n_splits;
        let dec = self
            .flash_dec
            .as_ref()
            .filter(|_| qt == 1 && blocks <= self.flash_dec_blocks);
        let merge = flash_tc::split_merge(
            self.flash_tc,
            dec.is_some(),
            qt,
            n,
            n_splits,
            &self.merge_limits,
        );
        let grouped = merge == SplitMerge::Grouped;
        let fused_merge = merge == SplitMerge::LastBlock;
        let (smem, threads) = if dec.is_some() {
            let per_block = if grouped { n_splits } else { 1 };
            let inbox = if merge == SplitMerge::Cluster {
                n_splits * flash_tc::flash_tc_dec_inbox_bytes(hd)
            } else {
                0
            };
            (
                (per_block * flash_tc::flash_tc_dec_smem_bytes(hd) + inbox) as u32,
                per_block as u32 * flash_tc::FLASH_TC_DEC_THREADS,
            )
        } else if self.flash_tc {
            let threads = flash_tc::flash_tc_threads(qt, group);
            (
                flash_tc::flash_tc_smem_bytes(qt, group, hd) as u32,
                if fused_merge {
                    threads.max(32 * group.min(8) as u32)
                } else {
                    threads
                },
            )
        } else {
            (flash_smem_bytes(qt, group, hd) as u32, FLASH_THREADS)
        };
        if dec.is_none() && smem > self.flash_smem_max {
            return Err(BackendError::Device(format!(
                "flash tile of {qt} rows exceeds the shared memory set at load"
            )));
        }
        let (qt_, ms) = (qt as i32, max_splits as i32);
        let mut b = Launch::new(s, dec.unwrap_or(&self.flash));
        b.arg(&q)
            .arg(&a.d)
            .arg(&a.kv)
            .arg(&a.group)
            .arg(&a.n_head)
            .arg(&a.scale);
        b.arg(&a.round).arg(&k_cache).arg(&v_cache).arg(&a.max_ctx);
        b.arg(&tiles)
            .arg(&row_slot)
            .arg(&row_pos)
            .arg(&qt_)
            .arg(&out);
        b.arg(&part_o).arg(&part_ml).arg(&ms);
        let cnt = if fused_merge { merge_cnt } else { 0 };
        let decode = decode as i32;
        if self.flash_tc {
            b.arg(&cnt).arg(&decode);
        }
        let grid_z = if grouped { 1 } else { n_splits as u32 };
        let grid = (n_tiles as u32, a.n_kv_head as u32, grid_z);
        if merge == SplitMerge::Cluster {
            b.clusters(n_splits as u32);
        }
        self.run(b, grid, threads, smem, "flash attention")?;
        if merge == SplitMerge::Kernel {
            let mut b = Launch::new(s, &self.flash_merge);
            b.arg(&row_pos)
                .arg(&a.d)
                .arg(&a.hd)
                .arg(&a.n_head)
                .arg(&a.round);
            b.arg(&part_o).arg(&part_ml).arg(&ms).arg(&out);
            self.run(
                b,
                (n as u32, a.n_head as u32, 1),
                self.flash_merge_threads,
                0,
                "flash merge",
            )?;
        }
        Ok(())
    }

    /// Naive attention of `n` rows (scores materialised in `scores`).
    #[allow(clippy::too_many_arguments)]
    pub fn naive(
        &self,
        s: &Arc<CudaStream>,
        a: &AttnShape,
        n: usize,
        q: u64,
        k_cache: u64,
        v_cache: u64,
        row_slot: u64,
        row_pos: u64,
        out: u64,
        scores: u64,
    ) -> Result<(), BackendError> {
        let smem = naive_smem_bytes(a.group as usize, a.hd as usize) as u32;
        let naive = self.naive.as_ref().ok_or_else(|| {
            BackendError::Usage("naive attention kernels not loaded (this run uses flash)".into())
        })?;
        let mut b = Launch::new(s, naive);
        b.arg(&q).arg(&a.d).arg(&a.kv).arg(&a.group).arg(&a.n_head);
        b.arg(&a.scale).arg(&a.round).arg(&k_cache).arg(&v_cache);
        b.arg(&a.max_ctx)
            .arg(&row_slot)
            .arg(&row_pos)
            .arg(&out)
            .arg(&scores);
        self.run(
            b,
            (n as u32, a.n_kv_head as u32, 1),
            NAIVE_THREADS,
            smem,
            "naive attention",
        )
    }
}

impl Kernels {
    /// Launches `b` (as a programmatic dependent launch where the device has it: every
    /// kernel here calls `pdl_wait` before reading what an earlier kernel wrote).
    fn run(
        &self,
        b: Launch<'_>,
        grid: (u32, u32, u32),
        block: u32,
        smem: u32,
        what: &str,
    ) -> Result<(), BackendError> {
        // SAFETY: every launch function above passes exactly the kernel's parameters, in order
        // and with the kernel's types (device pointers as u64, int as i32, float as f32); the
        // buffers are sized by `reserve` for CHUNK_ROWS rows and the reserved KV capacity; the
        // kernels call pdl_wait (common.cuh) before their first dependent access; the one
        // cluster launch (flash) spans the grid's z axis.
        unsafe { b.run(grid, block, smem, self.pdl, what) }
    }
}
