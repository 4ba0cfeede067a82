// Flash attention: causal, per (row, head), over the row's own sequence, keys 0..=pos, with a
// FIXED key split: keys are cut at absolute positions into splits of FL_SPLIT keys, each split
// into tiles of FL_TILE keys. Inside a split: the CPU's online softmax (running max m and sum
// l, rescaled per tile; probabilities exp(s − m) rounded to bf16 in bf16 runs; o += p·v in
// increasing key order). A row whose keys fit in one split is finished here (o / l, rounded);
// otherwise each split leaves (m, l, o) and `flash_combine` merges the splits in split order.
// Split and tile boundaries are absolute positions, so the decode step at position p and row
// p of any prefill do the same arithmetic, whatever the batch or chunk.
//
// A block serves one (query tile, KV head, split): a query tile is 1..qt consecutive
// positions of one sequence (prefill shares each K/V tile between them; decode has 1 row),
// and all `group` query heads of the KV head. Per-element orders:
//   score   s = (Σ_e q[e]·k[e], e ascending, fmaf) · scale
//   tile l  lane sums p[lane] + p[lane+32], then the xor tree; l = l·α + l_tile
//   o       o = o·α, then o = fmaf(p_j, v_j, o) for keys j ascending.
// Launch: grid (tiles, n_kv_head, max splits), block FL_NT, dynamic shared memory
// flash_smem_bytes() (host mirrors it).
#include "common.cuh"

#define FL_TILE 64
#define FL_SPLIT 512
#define FL_NT 256
#define FL_WARPS (FL_NT / 32)
#define NEG_INF (__int_as_float(0xff800000))

template <typename KVT>
__device__ __forceinline__ void flash_body(
    const float* __restrict__ q, int d, int kv, int hd, int group, int nh, float scale, int r,
    const KVT* __restrict__ kc, const KVT* __restrict__ vc, int max_ctx,
    const int* __restrict__ tiles, const int* __restrict__ row_slot,
    const int* __restrict__ row_pos, int qt, float* __restrict__ out,
    float* __restrict__ part_o, float* __restrict__ part_ml, int max_splits) {
    extern __shared__ float sm[];
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int r0 = tiles[2 * blockIdx.x], cnt = tiles[2 * blockIdx.x + 1];
    const int kvh = blockIdx.y, split = blockIdx.z;
    const int slot = row_slot[r0], p0 = row_pos[r0], plast = p0 + cnt - 1;
    const int k_begin = split * FL_SPLIT;
    if (k_begin > plast) return;
    const int k_end = min(k_begin + FL_SPLIT, plast + 1);
    const int QG = cnt * group;
    const int ldk = hd + 1;  // padded K rows: thread-per-key dot products avoid bank conflicts

    float* sq = sm;                       // [qt·group][hd]
    float* so = sq + qt * group * hd;     // [qt·group][hd]
    float* ss = so + qt * group * hd;     // [qt·group][FL_TILE]
    float* sk = ss + qt * group * FL_TILE;  // [FL_TILE][hd+1]
    float* sv = sk + FL_TILE * ldk;       // [FL_TILE][hd]
    float* s_m = sv + FL_TILE * hd;       // [qt·group]
    float* s_l = s_m + qt * group;        // [qt·group]
    float* s_a = s_l + qt * group;        // [qt·group]

    for (int idx = tid; idx < QG * hd; idx += FL_NT) {
        const int qg = idx / hd, e = idx - qg * hd;
        const int rr = qg / group, g = qg - rr * group;
        sq[idx] = q[(size_t)(r0 + rr) * d + (kvh * group + g) * hd + e];
        so[idx] = 0.0f;
    }
    for (int qg = tid; qg < QG; qg += FL_NT) {
        s_m[qg] = NEG_INF;
        s_l[qg] = 0.0f;
        s_a[qg] = 0.0f;
    }
    const size_t base = (size_t)slot * max_ctx * kv + (size_t)kvh * hd;

    for (int t0 = k_begin; t0 < k_end; t0 += FL_TILE) {
        const int tn = min(FL_TILE, k_end - t0);
        __syncthreads();  // previous tile fully consumed
        for (int idx = tid; idx < tn * hd; idx += FL_NT) {
            const int j = idx / hd, e = idx - j * hd;
            const size_t at = base + (size_t)(t0 + j) * kv + e;
            sk[j * ldk + e] = load_elem(kc, at);
            sv[j * hd + e] = load_elem(vc, at);
        }
        __syncthreads();
        // Scores of the keys each row may see (t0 + j <= its position).
        for (int idx = tid; idx < QG * FL_TILE; idx += FL_NT) {
            const int qg = idx / FL_TILE, j = idx - qg * FL_TILE;
            const int pos = p0 + qg / group;
            float s = NEG_INF;
            if (j < tn && t0 + j <= pos) {
                const float* qq = sq + qg * hd;
                const float* kk = sk + j * ldk;
                float acc = 0.0f;
                for (int e = 0; e < hd; ++e) acc = fmaf(qq[e], kk[e], acc);
                s = acc * scale;
            }
            ss[idx] = s;
        }
        __syncthreads();
        // Online softmax statistics: one warp per (row, head).
        for (int qg = warp; qg < QG; qg += FL_WARPS) {
            const int pos = p0 + qg / group;
            if (t0 > pos) continue;  // this row sees no key of the tile
            float* sr = ss + qg * FL_TILE;
            const float s0 = sr[lane], s1 = sr[lane + 32];
            const float m_old = s_m[qg];
            const float m_new = fmaxf(m_old, warp_max(fmaxf(s0, s1)));
            const float alpha = (m_old == NEG_INF) ? 0.0f : tc_exp(m_old - m_new);
            const bool v0 = lane < tn && t0 + lane <= pos;
            const bool v1 = lane + 32 < tn && t0 + lane + 32 <= pos;
            const float e0 = v0 ? maybe_round(tc_exp(s0 - m_new), r) : 0.0f;
            const float e1 = v1 ? maybe_round(tc_exp(s1 - m_new), r) : 0.0f;
            sr[lane] = e0;
            sr[lane + 32] = e1;
            const float lt = warp_sum(e0 + e1);
            if (lane == 0) {
                s_l[qg] = s_l[qg] * alpha + lt;
                s_m[qg] = m_new;
                s_a[qg] = alpha;
            }
        }
        __syncthreads();
        // o = o·α + Σ_j p_j v_j, keys ascending.
        for (int idx = tid; idx < QG * hd; idx += FL_NT) {
            const int qg = idx / hd, e = idx - qg * hd;
            const int pos = p0 + qg / group;
            if (t0 > pos) continue;
            const int jn = min(tn, pos - t0 + 1);
            const float* pr = ss + qg * FL_TILE;
            float o = so[idx] * s_a[qg];
            for (int j = 0; j < jn; ++j) o = fmaf(pr[j], sv[j * hd + e], o);
            so[idx] = o;
        }
    }
    __syncthreads();
    for (int idx = tid; idx < QG * hd; idx += FL_NT) {
        const int qg = idx / hd, e = idx - qg * hd;
        const int rr = qg / group, g = qg - rr * group;
        const int pos = p0 + rr;
        if (pos < k_begin) continue;  // this row has no key in this split
        const int row = r0 + rr, h = kvh * group + g;
        if (pos < FL_SPLIT) {
            out[(size_t)row * d + h * hd + e] = maybe_round(so[idx] / s_l[qg], r);
        } else {
            const size_t ps = ((size_t)row * nh + h) * max_splits + split;
            part_o[ps * hd + e] = so[idx];
            if (e == 0) {
                part_ml[ps * 2] = s_m[qg];
                part_ml[ps * 2 + 1] = s_l[qg];
            }
        }
    }
}

// Merges the splits of rows at positions >= FL_SPLIT, in split order:
// M = max m_s, w_s = e^(m_s − M), L = Σ l_s·w_s, O = Σ o_s·w_s (fmaf), out = r(O / L).
// Launch: grid (rows, n_head), block 128.
extern "C" __global__ void __launch_bounds__(128)
flash_combine(const int* __restrict__ row_pos, int d, int hd, int nh, int r,
              const float* __restrict__ part_o, const float* __restrict__ part_ml,
              int max_splits, float* __restrict__ out) {
    const int row = blockIdx.x, h = blockIdx.y;
    const int pos = row_pos[row];
    if (pos < FL_SPLIT) return;  // finished by the flash kernel
    const int ns = pos / FL_SPLIT + 1;
    const size_t ps0 = ((size_t)row * nh + h) * max_splits;
    const float* ml = part_ml + ps0 * 2;
    float M = NEG_INF;
    for (int s = 0; s < ns; ++s) M = fmaxf(M, ml[2 * s]);
    float L = 0.0f;
    for (int s = 0; s < ns; ++s) L = L + ml[2 * s + 1] * tc_exp(ml[2 * s] - M);
    for (int e = threadIdx.x; e < hd; e += blockDim.x) {
        float o = 0.0f;
        for (int s = 0; s < ns; ++s) o = fmaf(part_o[(ps0 + s) * hd + e], tc_exp(ml[2 * s] - M), o);
        out[(size_t)row * d + h * hd + e] = maybe_round(o / L, r);
    }
}

#define FLASH_INSTANCE(KVT, SUF)                                                              \
    extern "C" __global__ void __launch_bounds__(FL_NT) flash_##SUF(                          \
        const float* __restrict__ q, int d, int kv, int hd, int group, int nh, float scale,   \
        int r, const KVT* __restrict__ kc, const KVT* __restrict__ vc, int max_ctx,           \
        const int* __restrict__ tiles, const int* __restrict__ row_slot,                      \
        const int* __restrict__ row_pos, int qt, float* __restrict__ out,                     \
        float* __restrict__ part_o, float* __restrict__ part_ml, int max_splits) {            \
        flash_body<KVT>(q, d, kv, hd, group, nh, scale, r, kc, vc, max_ctx, tiles, row_slot,  \
                        row_pos, qt, out, part_o, part_ml, max_splits);                      \
    }

FLASH_INSTANCE(float, f32)
FLASH_INSTANCE(bf16_t, bf16)
