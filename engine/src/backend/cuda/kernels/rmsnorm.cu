// RMSNorm, one block per output row: y = (x · rms_inv(x)) · w, rounded to bf16 in bf16 runs
// (DESIGN.md: every RMSNorm output). rms_inv (common.cuh) is the one order of the sum of
// squares for a given width d, shared with the norm fused into matmul.cu's mmtc_bf16_dec_norm, so a
// row's normalised values have the same bits whichever kernel computes them. Warp 0 computes
// it; the whole block writes the row (a decode step has one row per sequence: one warp walking
// Llama-3's 4096 values took most of the kernel's 19 µs on an H100).
// `rows` (nullable) picks the input row of each output row (the final norm of kept rows).
// Launch: grid (output rows), block RMS_THREADS.
#include "common.cuh"

#define RMS_THREADS 256

extern "C" __global__ void __launch_bounds__(RMS_THREADS)
rmsnorm(const float* __restrict__ x, const int* __restrict__ rows,
        const float* __restrict__ w, int d, float eps, int round_out,
        float* __restrict__ out) {
    const int i = blockIdx.x, tid = threadIdx.x;
    const bool vec = (d & 3) == 0;  // rows 16-byte aligned: float4 loads and stores
    // The weights are constants: into L1 while the kernel before finishes.
    for (int e = (vec ? 4 : 1) * tid; e < d; e += (vec ? 4 : 1) * RMS_THREADS) prefetch_l1(w + e);
    pdl_enter();
    __shared__ float inv_s;
    const int src = rows ? rows[i] : i;
    const float* xr = x + (size_t)src * d;
    if (tid < 32) {
        const float inv = rms_inv(xr, d, eps, tid);
        if (tid == 0) inv_s = inv;
    }
    __syncthreads();
    const float inv = inv_s;
    float* o = out + (size_t)i * d;
    if (vec) {
        const float4* x4 = reinterpret_cast<const float4*>(xr);
        const float4* w4 = reinterpret_cast<const float4*>(w);
        float4* o4 = reinterpret_cast<float4*>(o);
#pragma unroll 4
        for (int e = tid; e < d / 4; e += RMS_THREADS) {
            const float4 a = x4[e], b = w4[e];
            o4[e] = make_float4(maybe_round(rms_scale(a.x, inv, b.x), round_out),
                                maybe_round(rms_scale(a.y, inv, b.y), round_out),
                                maybe_round(rms_scale(a.z, inv, b.z), round_out),
                                maybe_round(rms_scale(a.w, inv, b.w), round_out));
        }
    } else {
        for (int e = tid; e < d; e += RMS_THREADS)
            o[e] = maybe_round(rms_scale(xr[e], inv, w[e]), round_out);
    }
}
