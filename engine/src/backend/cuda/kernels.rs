//! The compiled kernels of one run (bf16 or f32 variants) and one typed launch function per
//! kernel. Launch shapes are documented at the top of each `.cu` file; they never change a
//! row's arithmetic.

use std::sync::Arc;

use cudarc::driver::sys::CUfunction_attribute_enum as FnAttr;
use cudarc::driver::{CudaContext, CudaFunction, CudaStream, LaunchConfig, PushKernelArg};
use cudarc::nvrtc::Ptx;

use crate::backend::BackendError;

use super::memory::dev;
use super::nvrtc;

/// Keys per flash tile and per split (attention_flash.cu's FL_TILE, FL_SPLIT = 4 tiles).
pub const FLASH_TILE: usize = 64;
pub const FLASH_SPLIT: usize = 4 * FLASH_TILE;
/// Head dimensions the attention kernels are instantiated for.
const FLASH_HEAD_DIMS: [usize; 5] = [16, 32, 64, 128, 256];
const FLASH_THREADS: u32 = 256;
const NAIVE_THREADS: u32 = 256;
const RMS_THREADS: u32 = 256;
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

pub(crate) struct Kernels {
    embed: CudaFunction,
    rmsnorm: CudaFunction,
    /// Rows per warp 1, 2, 4, 8.
    mm: [CudaFunction; 4],
    /// Tensor-core matmul (bf16 runs): decode (n ≤ 8) and prefill shapes.
    mmtc: Option<[CudaFunction; 2]>,
    flash: CudaFunction,
    flash_merge: CudaFunction,
    naive: CudaFunction,
    /// Rows per flash query tile, chosen so the tile's shared memory fits the device.
    pub flash_qt: usize,
    flash_smem_max: u32,
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
    pub fn load(
        ctx: &Arc<CudaContext>,
        arch: &str,
        bf16: bool,
        group: usize,
        hd: usize,
        smem_optin: usize,
    ) -> Result<Self, BackendError> {
        let suf = if bf16 { "bf16" } else { "f32" };
        let module = |file: &str| -> Result<_, BackendError> {
            let c = nvrtc::compile(file, arch)?;
            ctx.load_module(Ptx::from_binary(c.cubin.clone()))
                .map_err(|e| dev(&format!("loading {file}"), e))
        };
        let f = |m: &Arc<cudarc::driver::CudaModule>, name: &str| {
            m.load_function(name)
                .map_err(|e| dev(&format!("kernel {name}"), e))
        };
        let (embed_m, norm_m, mm_m, flash_m, naive_m) = (
            module("embed.cu")?,
            module("rmsnorm.cu")?,
            module("matmul.cu")?,
            module("attention_flash.cu")?,
            module("attention_naive.cu")?,
        );
        let flash_qt = [16usize, 8, 4, 2, 1]
            .into_iter()
            .find(|&qt| flash_smem_bytes(qt, group, hd) <= smem_optin)
            .ok_or_else(|| {
                BackendError::Unsupported(format!(
                    "flash attention needs {} bytes of shared memory per block for head_dim {hd} × group {group}; the device allows {smem_optin}",
                    flash_smem_bytes(1, group, hd)
                ))
            })?;
        if !FLASH_HEAD_DIMS.contains(&hd) {
            return Err(BackendError::Unsupported(format!(
                "the attention kernels are built for head dimensions {FLASH_HEAD_DIMS:?}, not {hd}"
            )));
        }
        let flash_smem_max = flash_smem_bytes(flash_qt, group, hd) as u32;
        let flash = f(&flash_m, &format!("flash_{suf}_hd{hd}"))?;
        flash
            .set_attribute(
                FnAttr::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                flash_smem_max as i32,
            )
            .map_err(|e| dev("flash shared memory limit", e))?;
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
        Ok(Kernels {
            embed: f(&embed_m, &format!("embed_{suf}"))?,
            rmsnorm: f(&norm_m, "rmsnorm")?,
            mm: [
                f(&mm_m, &format!("mm_{suf}_r1"))?,
                f(&mm_m, &format!("mm_{suf}_r2"))?,
                f(&mm_m, &format!("mm_{suf}_r4"))?,
                f(&mm_m, &format!("mm_{suf}_r8"))?,
            ],
            mmtc: if bf16 {
                Some([f(&mm_m, "mmtc_bf16_dec")?, f(&mm_m, "mmtc_bf16_pre")?])
            } else {
                None
            },
            flash,
            flash_merge: f(&flash_m, "flash_merge")?,
            naive,
            flash_qt,
            flash_smem_max,
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
        let mut b = s.launch_builder(&self.embed);
        b.arg(&tokens).arg(&table).arg(&d).arg(&x);
        launch(b, (n as u32, 1, 1), 128, 0, "embed")
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
        let mut b = s.launch_builder(&self.rmsnorm);
        b.arg(&x)
            .arg(&rows)
            .arg(&w)
            .arg(&d)
            .arg(&eps)
            .arg(&r)
            .arg(&out);
        launch(b, (n_out as u32, 1, 1), RMS_THREADS, 0, "rmsnorm")
    }

    /// x [n × k] · w [m × k]ᵀ with the epilogue `epi` into `out` (row stride `ldo`).
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        &self,
        s: &Arc<CudaStream>,
        x: u64,
        n: usize,
        k: usize,
        w: u64,
        m: usize,
        epi: Epi,
        round: bool,
        out: u64,
        ldo: usize,
        qkv: &QkvArgs,
    ) -> Result<(), BackendError> {
        if n == 0 {
            return Ok(());
        }
        // The kernel and its shape decide which rows share a weight load, never a row's
        // arithmetic: for a given (m, k), every n gives a row the same bits.
        let (func, grid, block) = match &self.mmtc {
            Some([dec, pre]) if uses_tensor_cores(true, m, k) => {
                if n <= 8 {
                    (dec, (m.div_ceil(16) as u32, 1, 1), 32 * TC_SEGS)
                } else {
                    (pre, (m.div_ceil(64) as u32, n.div_ceil(32) as u32, 1), 128)
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
        let mut b = s.launch_builder(func);
        b.arg(&x)
            .arg(&n_)
            .arg(&k_)
            .arg(&w)
            .arg(&m_)
            .arg(&e_)
            .arg(&r_);
        b.arg(&out).arg(&ldo_);
        b.arg(&qkv.k_cache).arg(&qkv.v_cache);
        b.arg(&qkv.row_slot).arg(&qkv.row_pos);
        b.arg(&qkv.cos).arg(&qkv.sin);
        b.arg(&qkv.d).arg(&qkv.kv).arg(&qkv.hd).arg(&qkv.max_ctx);
        launch(b, grid, block, 0, "matmul")
    }

    /// Flash attention: a block per (query tile, KV head, split) over `n_tiles` query tiles
    /// of at most `qt` rows and splits 0..n_splits; then, when some row has several splits,
    /// their ordered merge (`part_o`/`part_ml` are [row][head][split]).
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
        out: u64,
    ) -> Result<(), BackendError> {
        let smem = flash_smem_bytes(qt, a.group as usize, a.hd as usize) as u32;
        if smem > self.flash_smem_max {
            return Err(BackendError::Device(format!(
                "flash tile of {qt} rows exceeds the shared memory set at load"
            )));
        }
        let (qt_, ms) = (qt as i32, max_splits as i32);
        let mut b = s.launch_builder(&self.flash);
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
        let grid = (n_tiles as u32, a.n_kv_head as u32, n_splits as u32);
        launch(b, grid, FLASH_THREADS, smem, "flash attention")?;
        if n_splits > 1 {
            let mut b = s.launch_builder(&self.flash_merge);
            b.arg(&row_pos)
                .arg(&a.d)
                .arg(&a.hd)
                .arg(&a.n_head)
                .arg(&a.round);
            b.arg(&part_o).arg(&part_ml).arg(&ms).arg(&out);
            launch(b, (n as u32, a.n_head as u32, 1), 128, 0, "flash merge")?;
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
        let mut b = s.launch_builder(&self.naive);
        b.arg(&q).arg(&a.d).arg(&a.kv).arg(&a.group).arg(&a.n_head);
        b.arg(&a.scale).arg(&a.round).arg(&k_cache).arg(&v_cache);
        b.arg(&a.max_ctx)
            .arg(&row_slot)
            .arg(&row_pos)
            .arg(&out)
            .arg(&scores);
        launch(
            b,
            (n as u32, a.n_kv_head as u32, 1),
            NAIVE_THREADS,
            smem,
            "naive attention",
        )
    }
}

fn launch(
    mut b: cudarc::driver::LaunchArgs<'_>,
    grid: (u32, u32, u32),
    block: u32,
    smem: u32,
    what: &str,
) -> Result<(), BackendError> {
    let cfg = LaunchConfig {
        grid_dim: grid,
        block_dim: (block, 1, 1),
        shared_mem_bytes: smem,
    };
    // SAFETY: every launch function above passes exactly the kernel's parameters, in order and
    // with the kernel's types (device pointers as u64, int as i32, float as f32); the buffers
    // are sized by `reserve` for CHUNK_ROWS rows and the reserved KV capacity.
    unsafe { b.launch(cfg) }
        .map(|_| ())
        .map_err(|e| dev(&format!("launching {what}"), e))
}
