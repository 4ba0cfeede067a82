// `--numerics fast` (bf16 runs): cuBLAS computes acc = x · wᵀ in f32 with its own reduction
// order (not batch-invariant: that is what `fast` allows), then these kernels apply exactly the
// epilogues of matmul.cu (common.cuh's mm_epilogue), so the rounding points stay DESIGN.md's.
//
// to_bf16: y[i] = bf16(x[i]) — exact, activations in bf16 runs are bf16 values already.
//   Launch: grid ceil(n / 256), block 256.
// epi_apply: acc [n × m] row-major with columns in weight STORAGE order; `perm` = 1 when the
//   weight rows are pair-permuted (kernels.rs tc_pair_perm: within each group of 16, storage
//   row g holds logical column 2g and storage row g+8 logical column 2g+1). A thread per
//   (row i, logical column pair j = 2p, 2p+1). Launch: grid (ceil(m / 2 / 128), n), block 128.
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(256)
to_bf16(const float* __restrict__ x, long long n, bf16_t* __restrict__ y) {
    pdl_enter();
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = __bfloat16_as_ushort(__float2bfloat16_rn(x[i]));
}

__device__ __forceinline__ int storage_col(int c, int perm) {
    if (!perm) return c;
    const int g = c & 15;
    return (c & ~15) + ((g & 1) ? (g >> 1) + 8 : (g >> 1));
}

extern "C" __global__ void __launch_bounds__(128)
epi_apply(const float* __restrict__ acc, int n, int m, int epi, int r, float* __restrict__ out,
          int ldo, bf16_t* __restrict__ kc, bf16_t* __restrict__ vc,
          const int* __restrict__ row_slot, const int* __restrict__ row_pos,
          const float* __restrict__ cos_t, const float* __restrict__ sin_t, int d, int kv,
          int hd, int max_ctx, int perm) {
    pdl_enter();
    const int i = blockIdx.y;
    const int j = 2 * (blockIdx.x * blockDim.x + threadIdx.x);
    if (i >= n || j >= m) return;
    const float* a = acc + (size_t)i * m;
    const bool has1 = j + 1 < m;
    const float a0 = a[storage_col(j, perm)];
    const float a1 = has1 ? a[storage_col(j + 1, perm)] : 0.0f;
    mm_epilogue<bf16_t>(i, j, a0, a1, has1, epi, r, out, ldo, kc, vc, row_slot, row_pos, cos_t,
                        sin_t, d, kv, hd, max_ctx);
}
