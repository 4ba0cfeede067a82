//! Launch shapes of the tensor-core flash attention (attention_flash_tc.cu,
//! `flash_tc_bf16_hd{16,32,64,128}`, bf16 runs only). Plain functions: the caller owns the
//! cudarc state.
//!
//! The kernel takes `flash_bf16_hd*`'s parameters, grid (query tiles, n_kv_head, splits) and
//! partial-output layout, so `flash_merge` (attention_flash.cu) finishes rows past one split
//! unchanged; `flash_tc_merge` (same parameters, grid (rows, n_head), block
//! [`FLASH_TC_MERGE_THREADS`]) gives the same bits ~2.6× faster. A block holds `qt · group`
//! pair-rows (position-in-tile · group + query head in group), 16 per warp; the K/V tiles of
//! its split stream through two shared-memory stages. The query-tile size, the block size
//! and the tile alignment never change a row's bits (see the `.cu` header), so the host may
//! launch a decode chunk with the `qt` it actually needs (1: one warp per block), as long as
//! the block has [`flash_tc_threads`]`(qt, group)` threads for that `qt`.
//!
//! Decode launches (one position per tile, few blocks) may use `flash_tc_dec_bf16_hd*`
//! instead: the same parameters and bits, a warp per 64-key tile of a split
//! ([`FLASH_TC_DEC_THREADS`], [`flash_tc_dec_smem_bytes`] per split). Launched grouped (a
//! block of several splits' warps, grid z = 1) it merges the splits in shared memory; launched
//! as thread-block clusters of its splits (cluster dimensions (1, 1, splits), sm_90), the
//! blocks push their split states into rank 0's inbox over distributed shared memory
//! ([`flash_tc_dec_inbox_bytes`] per split) — flash_tc_merge's arithmetic either way, so again
//! the same bits.

/// Head dimensions the kernel is instantiated for.
pub const FLASH_TC_HEAD_DIMS: [usize; 4] = [16, 32, 64, 128];

/// Keys per tile (the kernel's FT_TILE). Splits are 4 tiles, 256 keys: kernels.rs's
/// `FLASH_SPLIT`, the same as the CUDA-core kernel's, which the merge kernels rely on.
pub const FLASH_TC_TILE: usize = 64;

/// Threads of a `flash_tc_merge` block (one warp per (row, head); grid (rows, n_head)).
pub const FLASH_TC_MERGE_THREADS: u32 = 32;

/// The kernel's `__launch_bounds__`: at most 8 warps, i.e. 128 pair-rows per block.
pub const FLASH_TC_MAX_THREADS: u32 = 256;

/// Pair-rows (position × query head) a block aims at: at most 4 warps of 16 rows. Measured
/// on an H100/H200 (8k-token prefill in chunks of 512 rows): SmolLM2 qt 16 (48 rows) beat 32
/// (96 rows); Llama-3 qt 16 (64 rows) beat 24 and 32 — more blocks per SM (registers bound
/// them), fewer partly idle blocks.
const TARGET_ROWS: usize = 64;

/// Whether the tensor-core kernel handles this model shape.
pub fn flash_tc_supported(group: usize, hd: usize) -> bool {
    FLASH_TC_HEAD_DIMS.contains(&hd)
        && group >= 1
        && flash_tc_threads(flash_tc_qt(group, hd), group) <= FLASH_TC_MAX_THREADS
}

/// The most positions per query tile the host may put in one block (it cuts runs of
/// consecutive positions of a sequence at this length; shorter tiles are fine): the largest
/// power of two with `qt · group ≤ 64`, so that tiles cut at multiples of `qt` from position
/// 0 never straddle a 64-key tile (no tile of the block is then partly past a row). SmolLM2
/// (group 3): 16 positions, 48 rows, 3 warps; Llama-3 (group 4): 16, 64 rows, 4 warps.
pub fn flash_tc_qt(group: usize, hd: usize) -> usize {
    let _ = hd; // the shared memory does not depend on the tile; registers are per warp
    let cap = (TARGET_ROWS / group.max(1)).max(1);
    1 << (usize::BITS - 1 - cap.leading_zeros())
}

/// Threads per block for tiles of at most `qt` positions: a warp per 16 pair-rows.
pub fn flash_tc_threads(qt: usize, group: usize) -> u32 {
    (32 * (qt * group).div_ceil(16)).max(32) as u32
}

/// Dynamic shared memory (bytes) of one block: 2 stages × (K, V) × 64 keys × (hd + 8) bf16
/// (the kernel's FtLayout; the padding keeps ldmatrix free of bank conflicts). Independent
/// of `qt` and `group`; over 48 KiB for hd = 128, so the host must raise
/// `CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES` to it.
pub fn flash_tc_smem_bytes(qt: usize, group: usize, hd: usize) -> usize {
    let _ = (qt, group);
    2 * 2 * FLASH_TC_TILE * (hd + 8) * 2
}

/// Threads of a `flash_tc_dec_bf16_hd*` block per split: a warp per 64-key tile of it.
pub const FLASH_TC_DEC_THREADS: u32 = 128;

/// Splits one grouped `flash_tc_dec_bf16_hd*` block may run (the kernel's FT_DEC_GROUPS: its
/// launch bounds are this many × [`FLASH_TC_DEC_THREADS`]).
pub const FLASH_TC_DEC_GROUPS: usize = 3;

/// Dynamic shared memory (bytes) of `flash_tc_dec_bf16_hd*` per split: the split's four K/V
/// tiles (rows padded as above; P of a tile goes into its K rows once the scores are done) and
/// three values per tile and row (4 × 16 × 3 floats). Over 48 KiB: the host raises the
/// function's limit (to this times the splits of a grouped block).
pub fn flash_tc_dec_smem_bytes(hd: usize) -> usize {
    4 * 2 * FLASH_TC_TILE * (hd + 8) * 2 + 3 * 4 * 16 * 4
}

/// Shared memory (bytes) of one slot of the inbox that rank 0 of a cluster launch of
/// `flash_tc_dec_bf16_hd*` holds past its split's region (the kernel's ft_inbox_floats): a
/// split state of 16 pair-rows, O and (M, L). A cluster launch of `s` splits adds `s` slots.
pub fn flash_tc_dec_inbox_bytes(hd: usize) -> usize {
    (16 * hd + 32) * 4
}

/// Who finishes the rows of a flash launch that reach past one split (kernels.rs `flash`).
/// Every choice gives the same bits (flash_tc_merge's arithmetic, splits in order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitMerge {
    /// No row reaches past one split.
    None,
    /// The decode form runs every split of a (row, KV head) in one block and merges there.
    Grouped,
    /// The decode form, launched as thread-block clusters of the splits, merges over DSMEM.
    Cluster,
    /// The last block of a (query tile, KV head) to finish merges (fence/atomic, merge_cnt).
    LastBlock,
    /// The merge kernel, launched after the attention.
    Kernel,
}

/// The launch-shape limits [`split_merge`] decides by (kernels.rs's tuned constants).
#[derive(Clone, Copy, Debug)]
pub struct MergeLimits {
    /// Grouped blocks: at most this many splits (bounded by the block's shared memory and the
    /// kernel's FT_DEC_GROUPS) and this many rows.
    pub group_max: usize,
    pub group_rows: usize,
    /// Clusters: at most this many splits.
    pub cluster_max: usize,
    /// The attention merges itself (clusters or its last block) up to this many rows.
    pub self_rows: usize,
}

/// The merge of a launch of `n` rows over `n_splits` splits: `dec` says it runs the decode
/// form (tensor-core kernel, one position per tile, few enough blocks), `tc` the tensor-core
/// kernel at all, `qt` its query-tile length.
pub fn split_merge(
    tc: bool,
    dec: bool,
    qt: usize,
    n: usize,
    n_splits: usize,
    lim: &MergeLimits,
) -> SplitMerge {
    if n_splits <= 1 {
        SplitMerge::None
    } else if dec && n_splits <= lim.group_max && n <= lim.group_rows {
        SplitMerge::Grouped
    } else if tc && qt == 1 && n <= lim.self_rows {
        if dec && n_splits <= lim.cluster_max {
            SplitMerge::Cluster
        } else {
            SplitMerge::LastBlock
        }
    } else {
        SplitMerge::Kernel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        // SmolLM2: group 3, hd 64 → 16 positions, 48 rows, 3 warps.
        assert_eq!(flash_tc_qt(3, 64), 16);
        assert_eq!(flash_tc_threads(16, 3), 96);
        // Llama-3-8B: group 4, hd 128 → 16 positions, 4 warps.
        assert_eq!(flash_tc_qt(4, 128), 16);
        assert_eq!(flash_tc_threads(16, 4), 128);
        // The tiny model: group 2, hd 16 → 32 positions, 4 warps.
        assert_eq!(flash_tc_qt(2, 16), 32);
        assert_eq!(flash_tc_threads(32, 2), 128);
        // Decode: one position → one warp.
        assert_eq!(flash_tc_threads(1, 3), 32);
        assert_eq!(flash_tc_smem_bytes(16, 3, 64), 36864);
        assert_eq!(flash_tc_smem_bytes(1, 4, 128), 69632);
        // Decode kernel: 4 tiles of K and V, P and the row values.
        assert_eq!(flash_tc_dec_smem_bytes(64), 73728 + 768);
        assert!(flash_tc_dec_smem_bytes(128) <= 227 * 1024);
        // SmolLM2's three splits fit one grouped block on an H100 (227 KiB per block).
        assert!(FLASH_TC_DEC_GROUPS * flash_tc_dec_smem_bytes(64) <= 227 * 1024);
        // A cluster's inbox: 16 pair-rows of O and (M, L) per split.
        assert_eq!(flash_tc_dec_inbox_bytes(64), (16 * 64 + 32) * 4);
        for g in 1..=128 {
            for hd in FLASH_TC_HEAD_DIMS {
                let qt = flash_tc_qt(g, hd);
                assert!(flash_tc_supported(g, hd));
                assert!(qt.is_power_of_two() && (qt * g <= 64 || qt == 1));
                assert!(flash_tc_threads(qt, g) <= FLASH_TC_MAX_THREADS);
            }
        }
        assert!(!flash_tc_supported(129, 64));
        assert!(!flash_tc_supported(3, 256));
        assert!(!flash_tc_supported(3, 48));
    }

    #[test]
    fn split_merge_follows_the_launch_shape() {
        use SplitMerge::*;
        let lim = MergeLimits {
            group_max: 2,
            group_rows: 8,
            cluster_max: 3,
            self_rows: 4,
        };
        let m = |tc, dec, qt, n, ns| split_merge(tc, dec, qt, n, ns, &lim);
        // One split: nothing to merge, whatever the kernel.
        assert_eq!(m(true, true, 1, 1, 1), None);
        assert_eq!(m(false, false, 16, 512, 1), None);
        // Two splits in the decode form: grouped up to 8 rows, then the merge kernel.
        assert_eq!(m(true, true, 1, 1, 2), Grouped);
        assert_eq!(m(true, true, 1, 8, 2), Grouped);
        assert_eq!(m(true, true, 1, 9, 2), Kernel);
        // Three splits: clusters up to 4 rows, then the merge kernel.
        assert_eq!(m(true, true, 1, 1, 3), Cluster);
        assert_eq!(m(true, true, 1, 4, 3), Cluster);
        assert_eq!(m(true, true, 1, 8, 3), Kernel);
        // Long contexts: the last block up to 4 rows, decode form or not.
        assert_eq!(m(true, true, 1, 1, 32), LastBlock);
        assert_eq!(m(true, false, 1, 4, 32), LastBlock);
        assert_eq!(m(true, false, 1, 8, 32), Kernel);
        // Prefill tiles and the CUDA-core kernel: always the merge kernel.
        assert_eq!(m(true, false, 16, 1, 3), Kernel);
        assert_eq!(m(false, false, 1, 1, 3), Kernel);
        // Grouping off (limit 0 or 1): the cluster takes two splits.
        let off = MergeLimits {
            group_max: 1,
            ..lim
        };
        assert_eq!(split_merge(true, true, 1, 1, 2, &off), Cluster);
    }
}
