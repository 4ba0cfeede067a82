// Naive attention: causal, per (row, head), keys 0..=pos of the row's own sequence, with all
// scores materialised (global scratch [rows][n_head][max_ctx]): scores, max, e^(s − max), sum,
// normalised probabilities (rounded to bf16 in bf16 runs), then P·V.
// A block serves one (row, KV head) and its `group` query heads, one head after the other.
// Per-element orders (functions of the key count only):
//   score  s_j = (Σ_e q[e]·k_j[e], e ascending, fmaf) · scale
//   sum    thread t adds e_j for j = t, t+NV_NT, … ascending, then block_sum's fixed tree
//   o[e]   C = NV_NT / HD partial sums, partial c over j = c, c+C, … ascending (fmaf), then
//          added in c order
// Launch: grid (rows, n_kv_head), block NV_NT, dynamic shared memory
// (group·HD + NV_NT) floats.
#include "common.cuh"

#define NV_NT 256

template <int HD, typename KVT>
__device__ __forceinline__ void naive_body(
    const float* __restrict__ q, int d, int kv, int group, int nh, float scale, int r,
    const KVT* __restrict__ kc, const KVT* __restrict__ vc, int max_ctx,
    const int* __restrict__ row_slot, const int* __restrict__ row_pos,
    float* __restrict__ out, float* __restrict__ scores) {
    constexpr int VEC = 16 / (int)sizeof(KVT);  // elements per 16-byte load
    constexpr int CH = HD < 32 ? HD : 32;       // key elements loaded at once
    constexpr int C = NV_NT / HD;               // P·V partial sums (HD divides NV_NT)
    extern __shared__ float sq[];  // [group][HD], then the P·V partials [C][HD]
    __shared__ float red[32];
    const int row = blockIdx.x, kvh = blockIdx.y, tid = threadIdx.x;
    const int slot = row_slot[row], pos = row_pos[row], nk = pos + 1;
    const size_t base = (size_t)slot * max_ctx * kv + (size_t)kvh * HD;
    for (int idx = tid; idx < group * HD; idx += NV_NT) {
        const int g = idx / HD, e = idx % HD;
        sq[idx] = q[(size_t)row * d + (kvh * group + g) * HD + e];
    }
    float* part = sq + group * HD;
    __syncthreads();
    for (int g = 0; g < group; ++g) {
        const int h = kvh * group + g;
        float* sc = scores + ((size_t)row * nh + h) * max_ctx;
        const float* qq = sq + g * HD;
        float mx = __int_as_float(0xff800000);
        for (int j = tid; j < nk; j += NV_NT) {
            const KVT* kr = kc + base + (size_t)j * kv;
            float acc = 0.0f;
#pragma unroll
            for (int c0 = 0; c0 < HD; c0 += CH) {
                uint4 u[CH / VEC];
#pragma unroll
                for (int v = 0; v < CH / VEC; ++v)
                    u[v] = __ldg(reinterpret_cast<const uint4*>(kr + c0) + v);
#pragma unroll
                for (int v = 0; v < CH / VEC; ++v) {
                    float kf[VEC];
                    unpack16(u[v], kc, kf);
#pragma unroll
                    for (int i = 0; i < VEC; ++i) acc = fmaf(qq[c0 + v * VEC + i], kf[i], acc);
                }
            }
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
        {
            const int c = tid / HD, e = tid % HD;
            float o = 0.0f;
#pragma unroll 8
            for (int j = c; j < nk; j += C) o = fmaf(sc[j], load_elem(vc, base + (size_t)j * kv + e), o);
            part[tid] = o;
        }
        __syncthreads();
        for (int e = tid; e < HD; e += NV_NT) {
            float o = part[e];
            for (int c = 1; c < C; ++c) o += part[c * HD + e];
            out[(size_t)row * d + h * HD + e] = maybe_round(o, r);
        }
        __syncthreads();
    }
}

#define NAIVE_INSTANCE(HD, KVT, SUF)                                                          \
    extern "C" __global__ void __launch_bounds__(NV_NT) naive_##SUF##_hd##HD(                 \
        const float* __restrict__ q, int d, int kv, int group, int nh, float scale, int r,    \
        const KVT* __restrict__ kc, const KVT* __restrict__ vc, int max_ctx,                  \
        const int* __restrict__ row_slot, const int* __restrict__ row_pos,                    \
        float* __restrict__ out, float* __restrict__ scores) {                                \
        pdl_enter();                                                                          \
        naive_body<HD, KVT>(q, d, kv, group, nh, scale, r, kc, vc, max_ctx, row_slot,         \
                            row_pos, out, scores);                                            \
    }

// Head dimensions 16 (tiny), 32, 64 (SmolLM2), 128 (Llama-3), 256.
NAIVE_INSTANCE(16, float, f32)
NAIVE_INSTANCE(32, float, f32)
NAIVE_INSTANCE(64, float, f32)
NAIVE_INSTANCE(128, float, f32)
NAIVE_INSTANCE(256, float, f32)
NAIVE_INSTANCE(16, bf16_t, bf16)
NAIVE_INSTANCE(32, bf16_t, bf16)
NAIVE_INSTANCE(64, bf16_t, bf16)
NAIVE_INSTANCE(128, bf16_t, bf16)
NAIVE_INSTANCE(256, bf16_t, bf16)
