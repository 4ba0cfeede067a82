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
#define EPI_STORE 0
#define EPI_RESIDUAL 1
#define EPI_SWIGLU 2
#define EPI_QKV 3

template <typename KVT>
__device__ __forceinline__ void mm_epilogue(int i, int j, float a0, float a1, bool has1, int epi,
                                            int r, float* __restrict__ out, int ldo,
                                            KVT* __restrict__ kc, KVT* __restrict__ vc,
                                            const int* __restrict__ row_slot,
                                            const int* __restrict__ row_pos,
                                            const float* __restrict__ cos_t,
                                            const float* __restrict__ sin_t, int d, int kv,
                                            int hd, int max_ctx) {
    if (epi == EPI_STORE) {
        out[(size_t)i * ldo + j] = maybe_round(a0, r);
        if (has1) out[(size_t)i * ldo + j + 1] = maybe_round(a1, r);
    } else if (epi == EPI_RESIDUAL) {
        float* o = out + (size_t)i * ldo + j;
        o[0] = maybe_round(o[0] + maybe_round(a0, r), r);
        if (has1) o[1] = maybe_round(o[1] + maybe_round(a1, r), r);
    } else if (epi == EPI_SWIGLU) {
        const float g = maybe_round(a0, r);
        const float u = maybe_round(a1, r);
        const float s = g / (1.0f + tc_exp(-g));
        out[(size_t)i * ldo + (j >> 1)] = maybe_round(s * u, r);
    } else {  // EPI_QKV
        const float a = maybe_round(a0, r);
        const float b = maybe_round(a1, r);
        const int pos = row_pos[i];
        if (j < d + kv) {
            const int jj = j < d ? j : j - d;
            const int half = hd >> 1;
            const int t = pos * half + ((jj % hd) >> 1);
            const float c = cos_t[t], s = sin_t[t];
            // The CPU's rope_row: (a·cos − b·sin, a·sin + b·cos), products and sums apart.
            const float ra = maybe_round(a * c - b * s, r);
            const float rb = maybe_round(a * s + b * c, r);
            if (j < d) {
                out[(size_t)i * ldo + j] = ra;
                out[(size_t)i * ldo + j + 1] = rb;
            } else {
                const size_t at = ((size_t)row_slot[i] * max_ctx + pos) * kv + jj;
                store_elem(kc, at, ra);
                store_elem(kc, at + 1, rb);
            }
        } else {
            const size_t at = ((size_t)row_slot[i] * max_ctx + pos) * kv + (j - d - kv);
            store_elem(vc, at, a);
            store_elem(vc, at + 1, b);
        }
    }
}

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
//   all n rows, then the segments are added in order (decode: many blocks, short chains).
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

extern "C" __global__ void __launch_bounds__(32 * TC_SEGS) mmtc_bf16_dec(MMTC_PARAMS) {
    __shared__ float red[TC_SEGS][32][4];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
    const int j0 = blockIdx.x * 16, i0 = blockIdx.y * 8;
    const int nb = k >> 5;
    const bf16_t* w0 = w + (size_t)min(j0 + g, m - 1) * k;
    const bf16_t* w1 = w + (size_t)min(j0 + g + 8, m - 1) * k;
    const float* xr = x + (size_t)min(i0 + g, n - 1) * k;
    float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    const int b_end = seg_begin(warp + 1, nb);
#pragma unroll 4
    for (int kb = seg_begin(warp, nb); kb < b_end; ++kb) {
        const uint4 a0 = __ldg(reinterpret_cast<const uint4*>(w0 + kb * 32 + t * 8));
        const uint4 a1 = __ldg(reinterpret_cast<const uint4*>(w1 + kb * 32 + t * 8));
        unsigned b[4];
        load_b(xr + kb * 32, t, b);
        mma_block(c, a0, a1, b);
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
    tc_epilogue(v, i0, j0, lane, n, m, epi, r, MMTC_EPI_ARGS);
}

extern "C" __global__ void __launch_bounds__(128) mmtc_bf16_pre(MMTC_PARAMS) {
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
