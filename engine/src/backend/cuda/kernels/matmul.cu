// out = x · wᵀ with x [n × k] f32 activations and w [m × k] weights (bf16 or f32), f32
// accumulation, and a fused per-element epilogue.
//
// One order per output element, whatever n: a warp owns one PAIR of output columns (j, j+1)
// for R rows. The k axis is cut into vectors of 8 elements; lane l takes vectors l, l+32,
// l+64, … in increasing order and accumulates each vector's 8 products in order with fmaf;
// then the 32 lane sums fold by the fixed xor tree (warp_sum). R (1, 2, 4, 8 rows per warp)
// and the grid only decide which rows share a weight load, never the arithmetic of a row: the
// decode step (n = batch) and a prefill chunk (n up to 512) give the same bits for a row.
// No split-K, no atomics. Requires k % 8 == 0 (checked on the host).
//
// Epilogues (DESIGN.md rounding points, `round_out` set in bf16 runs):
//   EPI_STORE    out[i, j] = r(acc)                                   (logits: round_out = 0)
//   EPI_RESIDUAL out[i, j] = r(out[i, j] + r(acc))                    (o and down projections)
//   EPI_SWIGLU   columns are interleaved (gate_p, up_p) pairs:
//                out[i, p] = r(silu(r(gate)) · r(up)), silu(g) = g / (1 + e^-g)
//   EPI_QKV      columns are [q | k | v] of one fused weight; (j, j+1) is a RoPE pair:
//                q, k: rotate the rounded pair by the row's position, round again; q goes to
//                out[i, j], k to the K cache at (slot, pos); v (rounded) to the V cache.
//
// Launch: grid (ceil(m / (2 · MM_WARPS)), ceil(n / R)), block 32 · MM_WARPS.
//
// Tensor-core variant (mmtc_*, bf16 runs with k % 32 == 0 and m % 16 == 0): see below.
#include "common.cuh"

#define MM_WARPS 4

template <int R, typename WT, typename KVT>
__device__ __forceinline__ void mm_body(const float* __restrict__ x, int n, int k,
                                        const WT* __restrict__ w, int m, int epi, int r,
                                        float* __restrict__ out, int ldo, KVT* __restrict__ kc,
                                        KVT* __restrict__ vc, const int* __restrict__ row_slot,
                                        const int* __restrict__ row_pos,
                                        const float* __restrict__ cos_t,
                                        const float* __restrict__ sin_t, int d, int kv, int hd,
                                        int max_ctx) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int j = (blockIdx.x * MM_WARPS + warp) * 2;
    if (j >= m) return;  // the whole warp leaves together
    const bool has1 = j + 1 < m;
    const int i0 = blockIdx.y * R;
    const WT* w0 = w + (size_t)j * k;
    const WT* w1 = w + (size_t)(has1 ? j + 1 : j) * k;
    const float* xr[R];
#pragma unroll
    for (int q = 0; q < R; ++q) xr[q] = x + (size_t)min(i0 + q, n - 1) * k;

    float acc[R][2];
#pragma unroll
    for (int q = 0; q < R; ++q) acc[q][0] = acc[q][1] = 0.0f;

    const int nv = k >> 3;
#pragma unroll 2
    for (int v = lane; v < nv; v += 32) {
        float wa[8], wb[8];
        load8(w0 + (size_t)v * 8, wa);
        load8(w1 + (size_t)v * 8, wb);
#pragma unroll
        for (int q = 0; q < R; ++q) {
            float xv[8];
            load8(xr[q] + (size_t)v * 8, xv);
#pragma unroll
            for (int e = 0; e < 8; ++e) {
                acc[q][0] = fmaf(xv[e], wa[e], acc[q][0]);
                acc[q][1] = fmaf(xv[e], wb[e], acc[q][1]);
            }
        }
    }
#pragma unroll
    for (int q = 0; q < R; ++q) {
        acc[q][0] = warp_sum(acc[q][0]);
        acc[q][1] = warp_sum(acc[q][1]);
    }
    // Every lane holds every sum; lane q writes row i0 + q.
#pragma unroll
    for (int q = 0; q < R; ++q) {
        if (lane == q && i0 + q < n)
            mm_epilogue<KVT>(i0 + q, j, acc[q][0], acc[q][1], has1, epi, r, out, ldo, kc, vc,
                             row_slot, row_pos, cos_t, sin_t, d, kv, hd, max_ctx);
    }
}

#define MM_INSTANCE(R, WT, SUF)                                                               \
    extern "C" __global__ void __launch_bounds__(32 * MM_WARPS) mm_##SUF##_r##R(              \
        const float* __restrict__ x, int n, int k, const WT* __restrict__ w, int m, int epi,  \
        int r, float* __restrict__ out, int ldo, WT* __restrict__ kc, WT* __restrict__ vc,    \
        const int* __restrict__ row_slot, const int* __restrict__ row_pos,                    \
        const float* __restrict__ cos_t, const float* __restrict__ sin_t, int d, int kv,      \
        int hd, int max_ctx) {                                                                \
        pdl_enter();                                                                          \
        mm_body<R, WT, WT>(x, n, k, w, m, epi, r, out, ldo, kc, vc, row_slot, row_pos, cos_t, \
                           sin_t, d, kv, hd, max_ctx);                                        \
    }

// bf16 runs: bf16 weights and bf16 KV cache; f32 runs: f32 both.
MM_INSTANCE(1, bf16_t, bf16)
MM_INSTANCE(2, bf16_t, bf16)
MM_INSTANCE(4, bf16_t, bf16)
MM_INSTANCE(8, bf16_t, bf16)
MM_INSTANCE(1, float, f32)
MM_INSTANCE(2, float, f32)
MM_INSTANCE(4, float, f32)
MM_INSTANCE(8, float, f32)

// ---------------------------------------------------------------------------------------
// Tensor-core matmul for bf16 runs: mma.sync m16n8k16 (bf16 inputs, f32 accumulation), the
// weights as the A operand (16 weight rows) and the activations as B (8 activation rows), in
// every variant. Activations in bf16 runs are bf16 values already (DESIGN's rounding points),
// so converting them to bf16 is exact.
//
// One order per output element (weight row j, activation row i), whatever n:
//   k is cut into blocks of 32 (two mma k16 steps; lane (g, t) = (lane / 4, lane % 4) feeds
//   elements 8t … 8t+3 to the first step and 8t+4 … 8t+7 to the second, for A and B alike);
//   the blocks form TC_SEGS = 8 fixed segments, segment s = blocks [s·nb/8, (s+1)·nb/8);
//   seg_s = the mma chain over its blocks from 0; out = (…((seg_0 + seg_1) + seg_2) …) + seg_7.
// mmtc_*_dec (n ≤ 8): a block of TC_SEGS warps per 16 weight rows, warp s computes seg_s of
//   all n rows, then the segments are added in order (decode: many blocks, short chains);
//   it may also apply the RMSNorm before it (see the kernel).
// mmtc_*_pre: a warp per 16 weight rows × 32 activation rows walks the segments in order
//   (prefill: each weight fragment feeds four mma).
// The epilogues are matmul.cu's. For the paired epilogues (EPI_QKV, EPI_SWIGLU) the host
// stores the weight rows permuted within each group of 16 (tc_pair_perm): storage rows g and
// g+8 hold logical columns 2g and 2g+1, so a lane holds both values of a pair.
// Launch: dec grid (ceil(m/16), 1), block 32·TC_SEGS; pre grid (ceil(m/64), ceil(n/32)),
// block 128.
#define TC_SEGS 8

__device__ __forceinline__ void mma_bf16(float (&c)[4], unsigned a0, unsigned a1, unsigned a2,
                                         unsigned a3, unsigned b0, unsigned b1) {
    asm(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ unsigned pack_bf16x2(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const unsigned*>(&v);
}

// B fragments of one k32 block for activation row `xr` (already offset to the block).
__device__ __forceinline__ void load_b(const float* __restrict__ xr, int t, unsigned (&b)[4]) {
    const float4 u = __ldg(reinterpret_cast<const float4*>(xr + t * 8));
    const float4 v = __ldg(reinterpret_cast<const float4*>(xr + t * 8) + 1);
    b[0] = pack_bf16x2(u.x, u.y);
    b[1] = pack_bf16x2(u.z, u.w);
    b[2] = pack_bf16x2(v.x, v.y);
    b[3] = pack_bf16x2(v.z, v.w);
}

// One k32 block: two mma steps into c, A from rows (g, g+8) as uint4 (8 bf16 each).
__device__ __forceinline__ void mma_block(float (&c)[4], const uint4& w0, const uint4& w1,
                                          const unsigned (&b)[4]) {
    mma_bf16(c, w0.x, w1.x, w0.y, w1.y, b[0], b[1]);
    mma_bf16(c, w0.z, w1.z, w0.w, w1.w, b[2], b[3]);
}

__device__ __forceinline__ int seg_begin(int s, int nb) { return s * nb / TC_SEGS; }

// Stores a lane's four results: rows (i, i+1) = (i0 + 2t, +1), columns (storage) j0+g, j0+g+8.
__device__ __forceinline__ void tc_epilogue(const float (&v)[4], int i0, int j0, int lane, int n,
                                            int m, int epi, int r, float* __restrict__ out,
                                            int ldo, bf16_t* __restrict__ kc,
                                            bf16_t* __restrict__ vc,
                                            const int* __restrict__ row_slot,
                                            const int* __restrict__ row_pos,
                                            const float* __restrict__ cos_t,
                                            const float* __restrict__ sin_t, int d, int kv,
                                            int hd, int max_ctx) {
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int i = i0 + 2 * t + h;
        if (i >= n) continue;
        if (epi == EPI_QKV || epi == EPI_SWIGLU) {
            // Permuted storage: rows j0+g and j0+g+8 are logical columns j0+2g and j0+2g+1.
            mm_epilogue<bf16_t>(i, j0 + 2 * g, v[h], v[2 + h], true, epi, r, out, ldo, kc, vc,
                                row_slot, row_pos, cos_t, sin_t, d, kv, hd, max_ctx);
        } else {
            if (j0 + g < m)
                mm_epilogue<bf16_t>(i, j0 + g, v[h], 0.0f, false, epi, r, out, ldo, kc, vc,
                                    row_slot, row_pos, cos_t, sin_t, d, kv, hd, max_ctx);
            if (j0 + g + 8 < m)
                mm_epilogue<bf16_t>(i, j0 + g + 8, v[2 + h], 0.0f, false, epi, r, out, ldo, kc,
                                    vc, row_slot, row_pos, cos_t, sin_t, d, kv, hd, max_ctx);
        }
    }
}

#define MMTC_PARAMS                                                                            \
    const float *__restrict__ x, int n, int k, const bf16_t *__restrict__ w, int m, int epi,  \
        int r, float *__restrict__ out, int ldo, bf16_t *__restrict__ kc,                      \
        bf16_t *__restrict__ vc, const int *__restrict__ row_slot,                             \
        const int *__restrict__ row_pos, const float *__restrict__ cos_t,                      \
        const float *__restrict__ sin_t, int d, int kv, int hd, int max_ctx
#define MMTC_EPI_ARGS out, ldo, kc, vc, row_slot, row_pos, cos_t, sin_t, d, kv, hd, max_ctx

// 16 bytes of weights, streamed: no L1 allocation, and the L2 fetches 256 bytes around it (a
// lane's batch walks 64-byte steps of one row; H100: Llama-3-8B decode 7.79 → 7.32 ms per
// step, SmolLM2 batch 1 0.685 → 0.661 ms).
__device__ __forceinline__ uint4 ld_stream(const void* p) {
    uint4 r;
    asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];"
        : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
        : "l"(p));
    return r;
}

// B fragments of one k32 block for activation row `xr` normalised on the fly: the values
// rmsnorm.cu would store, (x · inv) · w rounded to bf16 (bf16 runs), so the same bits.
__device__ __forceinline__ void load_b_norm(const float* __restrict__ xr,
                                            const float* __restrict__ nw, float inv, int t,
                                            unsigned (&b)[4]) {
    const float4 u = *reinterpret_cast<const float4*>(xr + t * 8);
    const float4 v = *reinterpret_cast<const float4*>(xr + t * 8 + 4);
    const float4 wu = __ldg(reinterpret_cast<const float4*>(nw + t * 8));
    const float4 wv = __ldg(reinterpret_cast<const float4*>(nw + t * 8) + 1);
    b[0] = pack_bf16x2(rms_scale(u.x, inv, wu.x), rms_scale(u.y, inv, wu.y));
    b[1] = pack_bf16x2(rms_scale(u.z, inv, wu.z), rms_scale(u.w, inv, wu.w));
    b[2] = pack_bf16x2(rms_scale(v.x, inv, wv.x), rms_scale(v.y, inv, wv.y));
    b[3] = pack_bf16x2(rms_scale(v.z, inv, wv.z), rms_scale(v.w, inv, wv.w));
}

// mmtc_bf16_dec / mmtc_bf16_dec_norm: the decode matmul with two decode-only extras after
// MMTC_PARAMS:
//   norm_w (mmtc_bf16_dec_norm; ignored by mmtc_bf16_dec): x holds the residual stream and the
//     kernel applies RMSNorm (weights norm_w, epsilon eps) to its rows first — rmsnorm.cu's
//     arithmetic (rms_inv per row by one warp, then (x · inv) · w rounded to bf16), so the bits
//     equal rmsnorm + this matmul;
//   x_rows (nullable): activation row i is x row x_rows[i] (the kept rows of the logits).
// A warp walks its segment in batches of DEC_U k32 blocks: the batch's weights are loaded first
// (DEC_U · 32 bytes in flight per lane), then its DEC_U mma_block in order — the order of the
// contract. The first batch is loaded before pdl_wait: no kernel writes weights, so those
// loads overlap the end of the kernel before. Two instances so that the kernel without the
// norm keeps the registers (80) of three blocks per SM: with ld_stream's 256-byte L2 fetches,
// occupancy beat deeper batches (H100, Llama-3-8B decode: 8 k32 blocks per lane at 128
// registers 6.42 ms per step, 4 at 80 registers 6.04 ms). A third, mmtc_bf16_dec8, loads
// batches of 8: the host takes it where that is a warp's whole segment (k ≤ 2048, no norm:
// SmolLM2's down projection, 6 blocks per warp), so no weight load waits behind the mma.
template <bool NORM, int DEC_U>
__device__ __forceinline__ void dec_body(MMTC_PARAMS, const float* __restrict__ norm_w,
                                         const int* __restrict__ x_rows, float eps,
                                         float (&red)[TC_SEGS][32][4], float (&inv_s)[8]) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
    const int j0 = blockIdx.x * 16, i0 = blockIdx.y * 8;
    const int nb = k >> 5;
    const bf16_t* w0 = w + (size_t)min(j0 + g, m - 1) * k + t * 8;
    const bf16_t* w1 = w + (size_t)min(j0 + g + 8, m - 1) * k + t * 8;
    const int kb0 = seg_begin(warp, nb), b_end = seg_begin(warp + 1, nb);
    uint4 pa[DEC_U], pb[DEC_U];
    auto load_batch = [&](int kb) {
#pragma unroll
        for (int u = 0; u < DEC_U; ++u) {
            if (kb + u < b_end) {
                pa[u] = ld_stream(w0 + (kb + u) * 32);
                pb[u] = ld_stream(w1 + (kb + u) * 32);
            }
        }
    };
    load_batch(kb0);
    // The residual epilogue's old values (x, rows i0 + 2t + h, columns j0 + g + 8c) are read
    // before pdl_wait too: the kernel before the O and down projections (attention or its
    // merge; gate/up, or the RMSNorm before it) never writes x, and x's last writer finished
    // before that kernel got past its own pdl_wait, which is when this one was launched. L2
    // reads (__ldcg), past any stale L1 line. (forward.rs's layer order is what makes this hold.)
    float res[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}};
    // Constant inputs of what follows the wait, pulled into L1 now: the norm's weights for the
    // first batch, and the RoPE table entries of warp 0's epilogue (positions come from the
    // row metadata, uploaded before the step).
    if (NORM) {
#pragma unroll
        for (int u = 0; u < DEC_U; ++u)
            if (kb0 + u < b_end) prefetch_l1(norm_w + (kb0 + u) * 32 + t * 8);
    }
    if (epi == EPI_QKV && warp == 0) {
        const int j = j0 + 2 * g;  // tc_epilogue's logical column pair of this lane
        if (j < d + kv) {
            const int jj = j < d ? j : j - d;
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int i = i0 + 2 * t + h;
                if (i < n) {
                    const int at = row_pos[i] * (hd >> 1) + ((jj % hd) >> 1);
                    prefetch_l1(cos_t + at);
                    prefetch_l1(sin_t + at);
                }
            }
        }
    }
    if (epi == EPI_RESIDUAL && warp == 0) {
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int c = 0; c < 2; ++c) {
                const int i = i0 + 2 * t + h, j = j0 + g + 8 * c;
                if (i < n && j < m) res[h][c] = __ldcg(out + (size_t)i * ldo + j);
            }
    }
    pdl_enter();
    const int gi = min(g, n - 1 - i0);  // rows past n read row n - 1 and are never stored
    const float* xr = x + (size_t)(x_rows ? x_rows[i0 + gi] : i0 + gi) * k;
    float inv = 0.0f;
    if (NORM) {
        if (i0 + warp < n) {
            const int iw = i0 + warp;
            inv_s[warp] = rms_inv<8>(x + (size_t)(x_rows ? x_rows[iw] : iw) * k, k, eps, lane);
        }
        __syncthreads();
        inv = inv_s[gi];
    }
    float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int kb = kb0; kb < b_end; kb += DEC_U) {
        if (kb != kb0) load_batch(kb);
#pragma unroll
        for (int u = 0; u < DEC_U; ++u) {
            if (kb + u < b_end) {
                unsigned b[4];
                if (NORM)
                    load_b_norm(xr + (kb + u) * 32, norm_w + (kb + u) * 32, inv, t, b);
                else
                    load_b(xr + (kb + u) * 32, t, b);
                mma_block(c, pa[u], pb[u], b);
            }
        }
    }
#pragma unroll
    for (int e = 0; e < 4; ++e) red[warp][lane][e] = c[e];
    __syncthreads();
    if (warp != 0) return;
    float v[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
        v[e] = red[0][lane][e];
#pragma unroll
        for (int s = 1; s < TC_SEGS; ++s) v[e] = v[e] + red[s][lane][e];
    }
    if (epi == EPI_RESIDUAL) {
        // mm_epilogue's EPI_RESIDUAL with the values read above (tc_epilogue's mapping: row
        // i0 + 2t + h, column j0 + g + 8c holds v[2c + h]).
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int c = 0; c < 2; ++c) {
                const int i = i0 + 2 * t + h, j = j0 + g + 8 * c;
                if (i < n && j < m)
                    out[(size_t)i * ldo + j] = residual_add(res[h][c], v[2 * c + h], r);
            }
        return;
    }
    tc_epilogue(v, i0, j0, lane, n, m, epi, r, MMTC_EPI_ARGS);
}

#define DEC_INSTANCE(NAME, NORM, U)                                                           \
    extern "C" __global__ void __launch_bounds__(32 * TC_SEGS)                                \
        NAME(MMTC_PARAMS, const float* __restrict__ norm_w, const int* __restrict__ x_rows,   \
             float eps) {                                                                     \
        __shared__ float red[TC_SEGS][32][4];                                                 \
        __shared__ float inv_s[8];                                                            \
        dec_body<NORM, U>(x, n, k, w, m, epi, r, MMTC_EPI_ARGS, norm_w, x_rows, eps, red,     \
                          inv_s);                                                             \
    }
DEC_INSTANCE(mmtc_bf16_dec, false, 4)
DEC_INSTANCE(mmtc_bf16_dec_norm, true, 4)
DEC_INSTANCE(mmtc_bf16_dec8, false, 8)

extern "C" __global__ void __launch_bounds__(128) mmtc_bf16_pre(MMTC_PARAMS) {
    pdl_enter();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
    const int j0 = (blockIdx.x * 4 + warp) * 16, i0 = blockIdx.y * 32;
    if (j0 >= m) return;
    const int nb = k >> 5;
    const bf16_t* w0 = w + (size_t)min(j0 + g, m - 1) * k;
    const bf16_t* w1 = w + (size_t)min(j0 + g + 8, m - 1) * k;
    const float* xr[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) xr[q] = x + (size_t)min(i0 + q * 8 + g, n - 1) * k;
    float tot[4][4];
#pragma unroll
    for (int s = 0; s < TC_SEGS; ++s) {
        float c[4][4];
#pragma unroll
        for (int q = 0; q < 4; ++q) c[q][0] = c[q][1] = c[q][2] = c[q][3] = 0.0f;
        const int b_end = seg_begin(s + 1, nb);
#pragma unroll 2
        for (int kb = seg_begin(s, nb); kb < b_end; ++kb) {
            const uint4 a0 = __ldg(reinterpret_cast<const uint4*>(w0 + kb * 32 + t * 8));
            const uint4 a1 = __ldg(reinterpret_cast<const uint4*>(w1 + kb * 32 + t * 8));
#pragma unroll
            for (int q = 0; q < 4; ++q) {
                unsigned b[4];
                load_b(xr[q] + kb * 32, t, b);
                mma_block(c[q], a0, a1, b);
            }
        }
#pragma unroll
        for (int q = 0; q < 4; ++q)
#pragma unroll
            for (int e = 0; e < 4; ++e) tot[q][e] = (s == 0) ? c[q][e] : tot[q][e] + c[q][e];
    }
#pragma unroll
    for (int q = 0; q < 4; ++q)
        tc_epilogue(tot[q], i0 + q * 8, j0, lane, n, m, epi, r, MMTC_EPI_ARGS);
}

// ---------------------------------------------------------------------------------------
// mmtc_bf16_pre2: the prefill matmul with shared-memory tiles and the k segments spread over
// warps. Same parameters (MMTC_PARAMS), epilogue (tc_epilogue) and per-element arithmetic as
// mmtc_bf16_dec / mmtc_bf16_pre, so any of the three may run any n.
//
// Block: P2_BM = 64 weight rows × P2_BN = 64 activation rows, 16 warps (512 threads) in
//   P2_KG = 4 k groups of 4 output warps. Output warp (wm, wn) owns 32 × 32 outputs: A
//   fragments of the 16-row groups 2wm, 2wm+1 (aligned to tc_pair_perm's groups) × B fragments
//   of 8 activation rows wn·32 + 8b, b = 0…3 → 16 mma per k32 block from 12 16-byte shared
//   loads. Group p computes TC_SEGS segments 2p and 2p+1 (blocks seg_begin(2p) … seg_begin(2p+2)
//   - 1) into two register sets, so the four groups walk a quarter of k each, side by side.
// Pipeline: step i = block seg_begin(2p) + i of every group p; P2_STAGES = 3 steps in a ring of
//   dynamic shared memory filled by cp.async two steps ahead; one __syncthreads per step; the
//   longest group sets the step count (a group past its range copies and computes nothing).
//   Per stage and group (13,312 bytes):
//     W, 4 × 1 KiB, one per 16-row group: [quad h = 0, 1][lane l][4 words], quad h of lane
//       (g, t) = the A operand of mma h of mma_block: (w0.x, w1.x, w0.y, w1.y) for h = 0,
//       (w0.z, w1.z, w0.w, w1.w) for h = 1 (w0, w1 = rows g, g+8, elements 8t … 8t+7). Filled
//       by 4-byte cp.async (each word lands where the mma wants it: no register shuffles), read
//       by one conflict-free 16-byte load per quad.
//     X, [64 rows][36] f32 (32 values + 16 bytes of padding: the 16-byte loads of a quarter warp,
//       rows g, g+1 at 32-byte steps, hit 32 distinct banks), 16-byte cp.async; a warp packs its
//       B operands with pack_bf16x2 as load_b does (exact: the activations are bf16 values).
//   Shared memory: 3 stages × 4 groups × 13,312 = 159,744 bytes (the host raises the
//   function's dynamic shared memory limit: mmtc_tile.rs). After the loop the same memory
//   holds the 8 segments of the tile (128 KiB) for the fold.
// Fold and store: every warp parks its two segments ([segment][output warp][fragment][lane]
//   float4); then each warp takes two fragments of its output warp, sums the 8 segments in
//   order and calls tc_epilogue once per fragment (one inlined copy of the epilogue: unrolled
//   copies made the kernel large enough for instruction fetch to cost microseconds).
// Tails: a 16-row weight group at or past m reads the last group (m % 16 == 0) and is never
//   stored; activation rows past n read row n-1 and are never stored (tc_epilogue's i < n).
//   Requires k % 32 == 0, m % 16 == 0 (uses_tensor_cores), x 16-byte and w 4-byte aligned,
//   m·k and n·k below 2^32 (32-bit element offsets).
// Launch: grid (ceil(m / 64), ceil(n / 64)), block 512, dynamic shared memory 159,744 bytes.
//
// Why every output element has the contract's bits (the order documented above TC_SEGS):
//   take weight row j (storage order) and activation row i, held at lane (g, t) of output
//   warp (wm, wn) as fragment (a, b): j = j0 + g or j0 + g + 8 with j0 = 64·bx + 32wm + 16a, i =
//   i0 + 2t or i0 + 2t + 1 with i0 = 64·by + 32wn + 8b.
//   - Operands: in group p's stage for block kb, quad h of lane (g, t) holds exactly the four
//     32-bit words mmtc_bf16_pre passes as mma h's A operand for rows (j0 + g, j0 + g + 8) and
//     block kb (cp.async copies bits; the word → position map is written out at w_dst), and
//     X row i0 - 64·by + g holds x[i0 + g][32kb … 32kb+31], packed pairwise as load_b packs
//     them. p2_block issues mma_bf16(acc, quad 0, b[0], b[1]) then mma_bf16(acc, quad 1,
//     b[2], b[3]), which is mma_block. An mma's D[r][c] depends only on A row r, B column c
//     and C[r][c], so element (j, i) sees the same mma inputs as in mmtc_bf16_pre.
//   - Chains: segment s = 2p + h is accumulated by group p, from 0.0f, over blocks
//     seg_begin(s) … seg_begin(s+1) - 1 in increasing order, in its own register set (sa for
//     h = 0, sb1 for h = 1); nothing else touches those registers. An empty segment stays 0.0f.
//   - Fold: tot = seg_0, then tot = tot + seg_s for s = 1 … 7 in f32 (shared memory holds the
//     exact f32 bits), as mmtc_bf16_dec does and mmtc_bf16_pre's (s == 0 ? c : tot + c).
//   - Epilogue: tc_epilogue(tot, i0, j0, …), the call mmtc_bf16_pre makes for (i0, j0).
#define P2_BM 64       // weight rows per block
#define P2_BN 64       // activation rows per block
#define P2_KG 4        // k groups: group p computes segments 2p and 2p + 1
#define P2_STAGES 3    // ring of k32 blocks (each stage: one block per k group)
#define P2_OW ((P2_BM / 32) * (P2_BN / 32))  // output warps per k group (32 × 32 each)
#define P2_THREADS (32 * P2_OW * P2_KG)
#define P2_GT (32 * P2_OW)                   // threads per k group
#define P2_W_BYTES (P2_BM / 16 * 1024)       // A operands of one k32 block, 1 KiB per 16 rows
#define P2_XROW 36                           // floats per X row in shared memory (32 + 4)
#define P2_X_BYTES (P2_BN * P2_XROW * 4)
#define P2_GRP_BYTES (P2_W_BYTES + P2_X_BYTES)   // one k group's block in a stage
#define P2_STAGE_BYTES (P2_KG * P2_GRP_BYTES)
#define P2_SMEM_BYTES (P2_STAGES * P2_STAGE_BYTES)

__device__ __forceinline__ void cp_async4(unsigned dst, const void* src) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async16(unsigned dst, const void* src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// One k32 block of a warp's 32 × 32 outputs from its group's part of a stage (sb): A quads
// of 16-row groups wm·2 and wm·2 + 1 (a_off), B from X rows wn·32 + 8b + g (b_off).
__device__ __forceinline__ void p2_block(float (&acc)[2][4][4], const unsigned char* sb,
                                         int a_off, int b_off) {
    uint4 q0[2], q1[2];
#pragma unroll
    for (int a = 0; a < 2; ++a) {
        q0[a] = *reinterpret_cast<const uint4*>(sb + a_off + a * 1024);
        q1[a] = *reinterpret_cast<const uint4*>(sb + a_off + a * 1024 + 512);
    }
#pragma unroll
    for (int b = 0; b < 4; ++b) {
        const float* xp = reinterpret_cast<const float*>(sb + b_off + b * 8 * P2_XROW * 4);
        const float4 u = *reinterpret_cast<const float4*>(xp);
        const float4 v = *reinterpret_cast<const float4*>(xp + 4);
        const unsigned b0 = pack_bf16x2(u.x, u.y), b1 = pack_bf16x2(u.z, u.w);
        const unsigned b2 = pack_bf16x2(v.x, v.y), b3 = pack_bf16x2(v.z, v.w);
#pragma unroll
        for (int a = 0; a < 2; ++a) {
            // = mma_block(acc[a][b], w0, w1, load_b's b): q0 = (w0.x, w1.x, w0.y, w1.y),
            // q1 = (w0.z, w1.z, w0.w, w1.w).
            mma_bf16(acc[a][b], q0[a].x, q0[a].y, q0[a].z, q0[a].w, b0, b1);
            mma_bf16(acc[a][b], q1[a].x, q1[a].y, q1[a].z, q1[a].w, b2, b3);
        }
    }
}

extern "C" __global__ void __launch_bounds__(P2_THREADS, 1) mmtc_bf16_pre2(MMTC_PARAMS) {
    extern __shared__ __align__(16) unsigned char p2_smem[];
    pdl_enter();
    static_assert(TC_SEGS == 2 * P2_KG, "each k group holds two segments");
    static_assert(P2_GT == 128, "the copy mapping below assumes 128 threads per k group");
    static_assert(P2_BM == 64 && P2_BN == 64, "the copy mapping below assumes 64 × 64 tiles");
    constexpr int W_WORDS = 8;  // 4-byte W copies per thread and block: 64 rows × 16 words / 128
    constexpr int X_CH = 4;     // 16-byte X copies per thread and block: 64 rows × 8 / 128

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, t = lane & 3;
    const int p = warp / P2_OW, ow = warp % P2_OW;  // k group; output warp within it
    const int wm = ow % (P2_BM / 32), wn = ow / (P2_BM / 32);
    const int gt = tid & (P2_GT - 1);  // thread index within the k group
    const int j_blk = blockIdx.x * P2_BM, i_blk = blockIdx.y * P2_BN;
    const int nb = k >> 5;
    // This group's blocks: segments 2p (kb < kb_mid) and 2p + 1.
    const int kb_beg = seg_begin(2 * p, nb), kb_mid = seg_begin(2 * p + 1, nb);
    const int len = seg_begin(2 * p + 2, nb) - kb_beg;
    int iters = 0;  // the longest group's length (every thread walks the same barriers)
#pragma unroll
    for (int q = 0; q < P2_KG; ++q)
        iters = max(iters, seg_begin(2 * q + 2, nb) - seg_begin(2 * q, nb));
    const unsigned smem0 = (unsigned)__cvta_generic_to_shared(p2_smem);
    const unsigned grp0 = smem0 + p * P2_GRP_BYTES;

    // W copies: word u = gt + 128q (q = 0 … 7) of the 64 × 16 words of a block: row
    // r = gt / 16 + 8q, i.e. 16-row group G = q / 2, row gg = gt / 16 (+ 8 if q is odd), word
    // wd = gt % 16 = 4·tt + ww (elements 8tt + 2ww, +1). Lane (gg, tt) needs it as register
    // (ww % 2)·2 + (q % 2) of quad ww / 2 (mma_block's A: (w0.x, w1.x, w0.y, w1.y) and
    // (w0.z, w1.z, w0.w, w1.w)); quad h of lane l sits at 1024G + 512h + 16l.
    const int gg = gt >> 4, wd = gt & 15, tt = wd >> 2, ww = wd & 3;
    const unsigned w_dst = (ww >> 1) * 512 + (gg * 4 + tt) * 16 + (ww & 1) * 8;
    unsigned w_row[P2_BM / 16];  // first element of row gg of each 16-row group (clamped)
#pragma unroll
    for (int G = 0; G < P2_BM / 16; ++G)
        w_row[G] = (unsigned)(min(j_blk + G * 16, m - 16) + gg) * (unsigned)k + wd * 2;
    // X copies: chunk c = gt + 128q (q = 0 … 3): row c / 8 = gt / 8 + 16q, 4 floats at k offset
    // 4·(gt % 8); shared at row·144 + 16·(gt % 8). Element offsets are 32-bit (m·k, n·k ≤ 2^32).
    unsigned x_row[X_CH];
#pragma unroll
    for (int q = 0; q < X_CH; ++q)
        x_row[q] =
            (unsigned)min(i_blk + (gt >> 3) + 16 * q, n - 1) * (unsigned)k + (gt & 7) * 4;
    const unsigned x_dst = P2_W_BYTES + (gt >> 3) * (P2_XROW * 4) + (gt & 7) * 16;

    // Copies block kb_beg + i of this group into stage st (nothing past the group's range).
    auto load_stage = [&](int st, int i) {
        if (i >= len) return;
        const int kb = kb_beg + i;
        const unsigned base = grp0 + st * P2_STAGE_BYTES;
#pragma unroll
        for (int q = 0; q < W_WORDS; ++q)
            cp_async4(base + (q >> 1) * 1024 + w_dst + (q & 1) * 4,
                      w + (w_row[q >> 1] + (q & 1) * 8u * (unsigned)k + kb * 32u));
#pragma unroll
        for (int q = 0; q < X_CH; ++q)
            cp_async16(base + x_dst + q * 16 * (P2_XROW * 4), x + (x_row[q] + kb * 32u));
    };

    // This warp's fragment addresses within its group's part of a stage (bytes).
    const int a_off = (wm * 2) * 1024 + lane * 16;
    const int b_off = P2_W_BYTES + ((wn * 32 + g) * P2_XROW + t * 8) * 4;

    float sa[2][4][4], sb1[2][4][4];  // the chains of segments 2p and 2p + 1, from 0
#pragma unroll
    for (int a = 0; a < 2; ++a)
#pragma unroll
        for (int b = 0; b < 4; ++b)
#pragma unroll
            for (int e = 0; e < 4; ++e) sa[a][b][e] = sb1[a][b][e] = 0.0f;

#pragma unroll
    for (int st = 0; st < P2_STAGES - 1; ++st) {
        load_stage(st, st);
        cp_async_commit();
    }
    int st_rd = 0, st_wr = P2_STAGES - 1;
    for (int i = 0; i < iters; ++i) {
        cp_async_wait<P2_STAGES - 2>();  // this thread's copies of step i have landed
        __syncthreads();  // everyone's have; every warp is done with step i - 1 (stage st_wr)
        load_stage(st_wr, i + P2_STAGES - 1);
        cp_async_commit();
        st_wr = (st_wr + 1 == P2_STAGES) ? 0 : st_wr + 1;
        const unsigned char* sb = p2_smem + p * P2_GRP_BYTES + st_rd * P2_STAGE_BYTES;
        st_rd = (st_rd + 1 == P2_STAGES) ? 0 : st_rd + 1;
        // Segment 2p (blocks before kb_mid) accumulates into sa, segment 2p + 1 into sb1.
        if (i < len) {  // warp-uniform
            if (kb_beg + i < kb_mid)
                p2_block(sa, sb, a_off, b_off);
            else
                p2_block(sb1, sb, a_off, b_off);
        }
    }
    cp_async_wait<0>();  // only empty groups remain; leave nothing in flight

    // Every segment to shared memory as float4 per lane, [segment][output warp][fragment][lane];
    // then each warp folds two of its output warp's eight fragments in segment order.
    static_assert(TC_SEGS * P2_OW * 8 * 32 * 16 <= P2_SMEM_BYTES, "segments must fit");
    __syncthreads();  // every warp is done reading the stages
    float4* park = reinterpret_cast<float4*>(p2_smem);
#pragma unroll
    for (int ab = 0; ab < 8; ++ab) {
        const float* u = sa[ab >> 2][ab & 3];
        const float* v = sb1[ab >> 2][ab & 3];
        park[(((2 * p) * P2_OW + ow) * 8 + ab) * 32 + lane] = make_float4(u[0], u[1], u[2], u[3]);
        park[(((2 * p + 1) * P2_OW + ow) * 8 + ab) * 32 + lane] =
            make_float4(v[0], v[1], v[2], v[3]);
    }
    __syncthreads();
#pragma unroll 1
    for (int h = 0; h < 8 / P2_KG; ++h) {
        const int ab = p * (8 / P2_KG) + h, a = ab >> 2, b = ab & 3;
        const int j0 = j_blk + wm * 32 + a * 16;
        if (j0 >= m) continue;
        // tot = (…((seg_0 + seg_1) + seg_2) …) + seg_7, as mmtc_bf16_dec / mmtc_bf16_pre.
        float4 f = park[(ow * 8 + ab) * 32 + lane];
        float v[4] = {f.x, f.y, f.z, f.w};
#pragma unroll
        for (int s = 1; s < TC_SEGS; ++s) {
            f = park[((s * P2_OW + ow) * 8 + ab) * 32 + lane];
            v[0] = v[0] + f.x;
            v[1] = v[1] + f.y;
            v[2] = v[2] + f.z;
            v[3] = v[3] + f.w;
        }
        tc_epilogue(v, i_blk + wn * 32 + b * 8, j0, lane, n, m, epi, r, MMTC_EPI_ARGS);
    }
}
