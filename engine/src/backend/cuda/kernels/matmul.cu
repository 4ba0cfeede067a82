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
