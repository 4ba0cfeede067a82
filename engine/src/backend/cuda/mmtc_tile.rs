//! Launch shapes of matmul.cu's `mmtc_bf16_pre2`, the shared-memory tiled tensor-core prefill
//! matmul of bf16 runs (`uses_tensor_cores` shapes: k % 32 == 0, m % 16 == 0).
//!
//! The kernel takes `mmtc_bf16_pre`'s parameters (MMTC_PARAMS, in the same order) and gives
//! every output element the bits of `mmtc_bf16_dec` / `mmtc_bf16_pre` (matmul.cu's comment
//! above the kernel says why), so which of the three runs a launch never changes a row's
//! arithmetic. The constants mirror matmul.cu's `P2_*` macros; change both together.

/// Weight rows (output columns, storage order) per block: matmul.cu's `P2_BM`.
pub const PRE2_BM: usize = 64;
/// Activation rows per block: matmul.cu's `P2_BN`.
pub const PRE2_BN: usize = 64;
/// k groups per block (group p computes TC_SEGS segments 2p and 2p + 1): `P2_KG`.
pub const PRE2_KG: usize = 4;
/// Stages of the cp.async ring (each one k32 block per k group): `P2_STAGES`.
pub const PRE2_STAGES: usize = 3;

/// Threads per block: 4 k groups × 4 output warps of 32 × 32 outputs = 16 warps.
pub const PRE2_THREADS: u32 = (32 * (PRE2_BM / 32) * (PRE2_BN / 32) * PRE2_KG) as u32;

/// Grid of `mmtc_bf16_pre2` for `m` weight rows and `n` activation rows:
/// (ceil(m / 64), ceil(n / 64), 1). Weight tiles vary fastest, so blocks that run together
/// share an activation tile.
pub fn pre2_grid(m: usize, n: usize) -> (u32, u32, u32) {
    (m.div_ceil(PRE2_BM) as u32, n.div_ceil(PRE2_BN) as u32, 1)
}

/// Dynamic shared memory of one block in bytes (the kernel has no static shared memory):
/// PRE2_STAGES stages × PRE2_KG groups × (A operands of 64 weight rows × 32 k, 4 KiB, plus
/// 64 activation rows of 32 f32 in rows of 144 bytes, 9 KiB) = 159,744 bytes. Above the 48 KiB
/// a launch gets by default: set the function's
/// `CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES` to this value once after loading (as
/// `Kernels::load` does for flash attention; a Hopper allows up to 227 KiB), and pass it as
/// the launch's `shared_mem_bytes`.
pub fn pre2_smem_bytes() -> u32 {
    (PRE2_STAGES * PRE2_KG * (PRE2_BM / 16 * 1024 + PRE2_BN * 144)) as u32
}

/// From how many activation rows `mmtc_bf16_pre2` beats `mmtc_bf16_pre` (`mmtc_bf16_dec`
/// stays the kernel for n ≤ 8). Measured on one H100/H200 with the standalone kernels (CUDA
/// graphs of 50 launches, SmolLM2-135M shapes): pre2 wins from n = 32 on every shape except
/// gate_up (breaks even at 32, wins from 64; at n = 256 gate_up is 18.6 µs vs 15.2 µs for pre,
/// the one shape/size where pre stays ahead past 64). The choice never changes any bits.
pub fn pre2_min_rows() -> usize {
    32
}

/// Whether the kernel's 32-bit element offsets cover the matrices: m·k and n·k ≤ 2^32.
/// (Llama-3-8B's largest, the 128256 × 4096 output, is 5.3e8.)
pub fn pre2_offsets_fit(m: usize, n: usize, k: usize) -> bool {
    let lim = 1u64 << 32;
    (m as u64) * (k as u64) <= lim && (n as u64) * (k as u64) <= lim
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(PRE2_THREADS, 512);
        assert_eq!(pre2_smem_bytes(), 159_744);
        // The fold reuses the stage ring for 8 segments of the 64 × 64 tile (128 KiB).
        assert!(pre2_smem_bytes() as usize >= 8 * PRE2_BM * PRE2_BN * 4);
        assert!(pre2_smem_bytes() <= 227 * 1024);
        // SmolLM2-135M, a 512-row chunk: qkv [960 × 576], o [576 × 576], gate_up [3072 × 576].
        assert_eq!(pre2_grid(960, 512), (15, 8, 1));
        assert_eq!(pre2_grid(576, 512), (9, 8, 1));
        assert_eq!(pre2_grid(3072, 65), (48, 2, 1));
        assert_eq!(pre2_grid(16, 1), (1, 1, 1));
        assert!(pre2_offsets_fit(128_256, 512, 4096));
        assert!(!pre2_offsets_fit(1 << 20, 1, 1 << 13));
    }
}
