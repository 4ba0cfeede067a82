// Shared device helpers of tracecheck's CUDA kernels (compiled with NVRTC, `--fmad=false`).
//
// Numerics contract (DESIGN.md "Trace format v1", the CPU backend's rounding points):
// - bf16 rounding is round-to-nearest-even (`__float2bfloat16_rn`), returned as the f32 it
//   represents; `maybe_round(x, r)` rounds only in bf16 runs.
// - Multiply and add never fuse behind the code's back (`--fmad=false`); dot products use
//   explicit `fmaf` (one IEEE rounding per step), so every order is a property of this code.
// - Every reduction has one order that depends only on the reduced length (and fixed block
//   sizes), never on how many rows a launch holds or where a row sits in it.
#pragma once
#include <cuda_bf16.h>

typedef unsigned short bf16_t;  // bf16 bit pattern (weights, KV cache in bf16 runs)

#define TC_FULL_MASK 0xffffffffu

__device__ __forceinline__ float round_bf16(float x) {
    return __bfloat162float(__float2bfloat16_rn(x));
}

__device__ __forceinline__ float maybe_round(float x, int r) { return r ? round_bf16(x) : x; }

// Element loads/stores for the two storage types. Stores take values that are already
// rounded when the storage is bf16, so the conversion is exact.
__device__ __forceinline__ float load_elem(const float* p, size_t i) { return p[i]; }
__device__ __forceinline__ float load_elem(const bf16_t* p, size_t i) {
    return __uint_as_float(((unsigned int)p[i]) << 16);
}
__device__ __forceinline__ void store_elem(float* p, size_t i, float v) { p[i] = v; }
__device__ __forceinline__ void store_elem(bf16_t* p, size_t i, float v) {
    p[i] = __bfloat16_as_ushort(__float2bfloat16_rn(v));
}

// 16 bytes of cache as f32: 8 bf16 or 4 f32 values.
__device__ __forceinline__ void unpack16(const uint4& u, const bf16_t*, float* o) {
    o[0] = __uint_as_float(u.x << 16);
    o[1] = __uint_as_float(u.x & 0xffff0000u);
    o[2] = __uint_as_float(u.y << 16);
    o[3] = __uint_as_float(u.y & 0xffff0000u);
    o[4] = __uint_as_float(u.z << 16);
    o[5] = __uint_as_float(u.z & 0xffff0000u);
    o[6] = __uint_as_float(u.w << 16);
    o[7] = __uint_as_float(u.w & 0xffff0000u);
}
__device__ __forceinline__ void unpack16(const uint4& u, const float*, float* o) {
    o[0] = __uint_as_float(u.x);
    o[1] = __uint_as_float(u.y);
    o[2] = __uint_as_float(u.z);
    o[3] = __uint_as_float(u.w);
}

// Eight consecutive elements as f32 (16-byte loads; `p` 16-byte aligned for bf16, 32 for f32).
__device__ __forceinline__ void load8(const bf16_t* __restrict__ p, float (&o)[8]) {
    unpack16(__ldg(reinterpret_cast<const uint4*>(p)), p, o);
}
__device__ __forceinline__ void load8(const float* __restrict__ p, float (&o)[8]) {
    const float4 a = __ldg(reinterpret_cast<const float4*>(p));
    const float4 b = __ldg(reinterpret_cast<const float4*>(p) + 1);
    o[0] = a.x; o[1] = a.y; o[2] = a.z; o[3] = a.w;
    o[4] = b.x; o[5] = b.y; o[6] = b.z; o[7] = b.w;
}

// e^x with plain f32 operations: the CPU backend's `exp_f32` (kernels.rs) line for line, so
// both backends share one exponential (Cody–Waite reduction, Cephes degree-6 polynomial,
// 2^n from the exponent bits; ~2 ULP; 0 below -87.3, +inf above 88.7, NaN stays NaN).
__device__ __forceinline__ float tc_exp(float x) {
    const float LOG2E = 1.44269504088896340736f;
    const float LN2_HI = 0.6933594f;
    const float LN2_LO = -2.1219444e-4f;
    const float ROUND = 12582912.0f;
    const float xc = fminf(fmaxf(x, -87.3f), 88.7f);
    const float n = (xc * LOG2E + ROUND) - ROUND;
    const float r = (xc - n * LN2_HI) - n * LN2_LO;
    const float p = ((((((1.9875692e-4f * r + 1.3981999e-3f) * r + 8.333452e-3f) * r
                        + 4.1665796e-2f) * r + 1.6666665e-1f) * r + 5e-1f) * r) * r
                    + r + 1.0f;
    const float scale = __int_as_float(((int)n + 127) << 23);
    const float y = p * scale;
    if (x != x) return x;
    if (x < -87.3f) return 0.0f;
    if (x > 88.7f) return __int_as_float(0x7f800000);
    return y;
}

// Programmatic dependent launch (sm_90+; the host sets the launch attribute only there).
// A kernel launched with it may start while the kernel before it still runs: everything it
// reads that an earlier kernel wrote must come after pdl_wait() (which returns once every
// earlier kernel has completed and its writes are visible); kernels call it before their first
// such read and before their first write. pdl_trigger() lets the next kernel start its own
// prologue; kernels call it right after pdl_wait(), so at most one kernel waits behind one
// that runs. Both are no-ops without the attribute and below sm_90.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}
// Both, for kernels with nothing to do before their inputs are ready.
__device__ __forceinline__ void pdl_enter() {
    pdl_wait();
    pdl_trigger();
}

// Sum over a warp by a fixed xor tree (16, 8, 4, 2, 1). a+b == b+a, so every lane ends with
// the same bits.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(TC_FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(TC_FULL_MASK, v, o));
    return v;
}

// Pulls the line holding p into L1 (no register, no wait): for constant data read after
// pdl_wait (norm weights, RoPE tables).
__device__ __forceinline__ void prefetch_l1(const void* p) {
    asm volatile("prefetch.global.L1 [%0];\n" ::"l"(p));
}

// 1 / sqrt(mean(x²) + eps) of one row of d values, computed by one warp (every lane ends with
// the same bits): lane l accumulates x[e]² for e = l + 32j, with fmaf in order of j, into
// accumulator j % 4 (four chains: a 4096-wide row is 32 steps per chain, not 128), then
// (a0 + a1) + (a2 + a3), then warp_sum's xor tree; 1/sqrt with both operations IEEE-rounded
// (no rsqrtf: it is approximate). The one RMSNorm order of every kernel (rmsnorm.cu and the
// norm fused into matmul.cu's mmtc_bf16_dec_norm).
// The loads come B steps per chain at a time, all issued before their fmaf: a warp alone on a
// row is latency-bound (H100, Llama-3's 4096: 19 µs with one step's 4 loads in flight). Past d
// a load gives 0 and fmaf(0, 0, a) = a exactly (a is a sum of squares from +0, never −0), so
// the chains see the same terms in the same order for every B and every d: B only trades
// registers for round trips.
template <int B = 8>
__device__ __forceinline__ float rms_inv(const float* xr, int d, float eps, int lane) {
    float a[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int e0 = lane; e0 < d; e0 += 128 * B) {
        float v[B][4];
#pragma unroll
        for (int b = 0; b < B; ++b)
#pragma unroll
            for (int c = 0; c < 4; ++c) {
                const int e = e0 + 128 * b + 32 * c;
                v[b][c] = e < d ? xr[e] : 0.0f;
            }
#pragma unroll
        for (int b = 0; b < B; ++b)
#pragma unroll
            for (int c = 0; c < 4; ++c) a[c] = fmaf(v[b][c], v[b][c], a[c]);
    }
    const float ss = warp_sum((a[0] + a[1]) + (a[2] + a[3]));
    return 1.0f / sqrtf(ss / (float)d + eps);
}

// A normalised value before its bf16 rounding: (x · inv) · w, two IEEE products in this order
// (rmsnorm.cu and the decode matmul's fused norm, so their values have the same bits).
__device__ __forceinline__ float rms_scale(float x, float inv, float w) { return (x * inv) * w; }

// Block-wide sum for a block of NT threads (NT a multiple of 32, at most 1024): each warp by
// the xor tree, then the warp totals in warp order (every thread computes the same sum).
// `red` holds 32 floats of shared memory; the call ends with a barrier so `red` can be reused.
template <int NT>
__device__ __forceinline__ float block_sum(float v, float* red) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    v = warp_sum(v);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = 0.0f;
#pragma unroll
    for (int w = 0; w < NT / 32; ++w) t += red[w];
    __syncthreads();
    return t;
}

template <int NT>
__device__ __forceinline__ float block_max(float v, float* red) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    v = warp_max(v);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = red[0];
#pragma unroll
    for (int w = 1; w < NT / 32; ++w) t = fmaxf(t, red[w]);
    __syncthreads();
    return t;
}

// Matmul epilogues (matmul.cu's contract; also applied after cuBLAS in `fast` runs, fast.cu).
// (j, j+1) is a column pair; has1 says whether j+1 exists.
#define EPI_STORE 0
#define EPI_RESIDUAL 1
#define EPI_SWIGLU 2
#define EPI_QKV 3

// EPI_RESIDUAL's value: the old residual plus the (rounded) product, rounded again.
__device__ __forceinline__ float residual_add(float old, float acc, int r) {
    return maybe_round(old + maybe_round(acc, r), r);
}

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
        o[0] = residual_add(o[0], a0, r);
        if (has1) o[1] = residual_add(o[1], a1, r);
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
