// Naive attention: causal, per (row, head), keys 0..=pos of the row's own sequence, with all
// scores materialised (global scratch [rows][n_head][max_ctx]): scores, max, e^(s − max), sum,
// normalised probabilities (rounded to bf16 in bf16 runs), then P·V.
// A block serves one (row, KV head) and its `group` query heads, one head after the other.
// Per-element orders (functions of the key count only):
//   score  s_j = (Σ_e q[e]·k_j[e], e ascending, fmaf) · scale
//   sum    thread t adds e_j for j = t, t+NV_NT, … ascending, then block_sum's fixed tree
//   o[e]   C = max(1, NV_NT / hd) partial sums, partial c over j = c, c+C, … ascending (fmaf),
//          then added in c order
// Launch: grid (rows, n_kv_head), block NV_NT, dynamic shared memory
// (group·hd + max(NV_NT, hd)) floats.
#include "common.cuh"

#define NV_NT 256

template <typename KVT>
__device__ __forceinline__ void naive_body(
    const float* __restrict__ q, int d, int kv, int hd, int group, int nh, float scale, int r,
    const KVT* __restrict__ kc, const KVT* __restrict__ vc, int max_ctx,
    const int* __restrict__ row_slot, const int* __restrict__ row_pos,
    float* __restrict__ out, float* __restrict__ scores) {
    extern __shared__ float sq[];  // [group][hd], then the P·V partials [C][hd]
    __shared__ float red[32];
    const int row = blockIdx.x, kvh = blockIdx.y, tid = threadIdx.x;
    const int slot = row_slot[row], pos = row_pos[row], nk = pos + 1;
    const size_t base = (size_t)slot * max_ctx * kv + (size_t)kvh * hd;
    for (int idx = tid; idx < group * hd; idx += NV_NT) {
        const int g = idx / hd, e = idx - g * hd;
        sq[idx] = q[(size_t)row * d + (kvh * group + g) * hd + e];
    }
    float* part = sq + group * hd;
    const int C = hd <= NV_NT ? NV_NT / hd : 1;
    __syncthreads();
    for (int g = 0; g < group; ++g) {
        const int h = kvh * group + g;
        float* sc = scores + ((size_t)row * nh + h) * max_ctx;
        const float* qq = sq + g * hd;
        float mx = __int_as_float(0xff800000);
        for (int j = tid; j < nk; j += NV_NT) {
            const size_t at = base + (size_t)j * kv;
            float acc = 0.0f;
            for (int e = 0; e < hd; ++e) acc = fmaf(qq[e], load_elem(kc, at + e), acc);
            const float s = acc * scale;
            sc[j] = s;
            mx = fmaxf(mx, s);
        }
        mx = block_max<NV_NT>(mx, red);
        float sum = 0.0f;
        for (int j = tid; j < nk; j += NV_NT) {
            const float ex = tc_exp(sc[j] - mx);
            sc[j] = ex;
            sum += ex;
        }
        sum = block_sum<NV_NT>(sum, red);
        for (int j = tid; j < nk; j += NV_NT) sc[j] = maybe_round(sc[j] / sum, r);
        __syncthreads();  // every probability visible to the whole block
        for (int idx = tid; idx < C * hd; idx += NV_NT) {
            const int c = idx / hd, e = idx - c * hd;
            float o = 0.0f;
            for (int j = c; j < nk; j += C) o = fmaf(sc[j], load_elem(vc, base + (size_t)j * kv + e), o);
            part[idx] = o;
        }
        __syncthreads();
        for (int e = tid; e < hd; e += NV_NT) {
            float o = part[e];
            for (int c = 1; c < C; ++c) o += part[c * hd + e];
            out[(size_t)row * d + h * hd + e] = maybe_round(o, r);
        }
        __syncthreads();
    }
}

#define NAIVE_INSTANCE(KVT, SUF)                                                              \
    extern "C" __global__ void __launch_bounds__(NV_NT) naive_##SUF(                          \
        const float* __restrict__ q, int d, int kv, int hd, int group, int nh, float scale,   \
        int r, const KVT* __restrict__ kc, const KVT* __restrict__ vc, int max_ctx,           \
        const int* __restrict__ row_slot, const int* __restrict__ row_pos,                    \
        float* __restrict__ out, float* __restrict__ scores) {                                \
        naive_body<KVT>(q, d, kv, hd, group, nh, scale, r, kc, vc, max_ctx, row_slot,         \
                        row_pos, out, scores);                                                \
    }

NAIVE_INSTANCE(float, f32)
NAIVE_INSTANCE(bf16_t, bf16)
