// RMSNorm, one block per output row: y = (x · 1/sqrtf(mean(x²) + eps)) · w, rounded to bf16
// in bf16 runs (DESIGN.md: every RMSNorm output). The sum of squares has one order for a given
// width d: thread t accumulates elements t, t+256, … with fmaf, then block_sum's fixed tree.
// `rows` (nullable) picks the input row of each output row (the final norm of kept rows).
// Launch: grid (output rows), block RMS_NT.
#include "common.cuh"

#define RMS_NT 256

extern "C" __global__ void __launch_bounds__(RMS_NT)
rmsnorm(const float* __restrict__ x, const int* __restrict__ rows,
        const float* __restrict__ w, int d, float eps, int round_out,
        float* __restrict__ out) {
    __shared__ float red[32];
    const int i = blockIdx.x;
    const int src = rows ? rows[i] : i;
    const float* xr = x + (size_t)src * d;
    float ss = 0.0f;
    for (int e = threadIdx.x; e < d; e += RMS_NT) ss = fmaf(xr[e], xr[e], ss);
    ss = block_sum<RMS_NT>(ss, red);
    // 1/sqrt, both IEEE-rounded (no rsqrtf: it is approximate).
    const float inv = 1.0f / sqrtf(ss / (float)d + eps);
    float* o = out + (size_t)i * d;
    for (int e = threadIdx.x; e < d; e += RMS_NT) o[e] = maybe_round((xr[e] * inv) * w[e], round_out);
}
