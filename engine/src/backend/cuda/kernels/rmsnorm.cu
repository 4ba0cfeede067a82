// RMSNorm, one warp per output row: y = (x · rms_inv(x)) · w, rounded to bf16 in bf16 runs
// (DESIGN.md: every RMSNorm output). rms_inv (common.cuh) is the one order of the sum of
// squares for a given width d, shared with the norm fused into matmul.cu's mmtc_bf16_dec, so a
// row's normalised values have the same bits whichever kernel computes them.
// `rows` (nullable) picks the input row of each output row (the final norm of kept rows).
// Launch: grid ceil(output rows / RMS_ROWS), block 32 · RMS_ROWS.
#include "common.cuh"

#define RMS_ROWS 8

extern "C" __global__ void __launch_bounds__(32 * RMS_ROWS)
rmsnorm(const float* __restrict__ x, const int* __restrict__ rows,
        const float* __restrict__ w, int d, float eps, int round_out, int n_out,
        float* __restrict__ out) {
    pdl_enter();
    const int lane = threadIdx.x & 31;
    const int i = blockIdx.x * RMS_ROWS + (threadIdx.x >> 5);
    if (i >= n_out) return;
    const int src = rows ? rows[i] : i;
    const float* xr = x + (size_t)src * d;
    const float inv = rms_inv(xr, d, eps, lane);
    float* o = out + (size_t)i * d;
    for (int e = lane; e < d; e += 32) o[e] = maybe_round((xr[e] * inv) * w[e], round_out);
}
