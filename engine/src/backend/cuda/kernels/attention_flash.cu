// Flash attention: causal, per (row, head), over the row's own sequence, keys 0..=pos.
//
// Fixed key structure at absolute positions: TILES of FL_TILE keys (tile t = keys 64t …
// 64t+63), grouped into SPLITS of FL_SPLIT_TILES tiles (256 keys). For each (row, head):
//   per tile   s_j = (Σ_e q[e]·k_j[e], e ascending, fmaf) · scale       (keys j ≤ pos only)
//              m_t = max_j s_j;  p_j = e^(s_j − m_t), rounded to bf16 in bf16 runs
//              l_t = Σ_j p_j (lane sums p[lane] + p[lane+32], then the xor tree)
//              o_t = Σ_j p_j·v_j (j ascending, fmaf from 0)
//   merge      from (M, L, O) = (−∞, 0, 0), items in order:
//              M' = max(M, m); a = (M = −∞) ? 0 : e^(M − M'); b = e^(m − M')
//              L = L·a + l·b;  O = fmaf(o, b, O·a);  M = M'
//   a split    merges its tiles in tile order → (M_s, L_s, O_s)
//   the row    merges its splits in split order (a row with one split: its split's state,
//              unchanged by that merge), and out = O / L, rounded in bf16 runs.
// Every value depends only on the row's position and its sequence's cache, never on the
// batch, the chunk, or prefill vs decode.
//
// flash_<kv>_hd<HD>: a block per (query tile, KV head, split). A query tile is 1..qt
// consecutive positions of one sequence (prefill: its rows share each K/V tile load; decode:
// one row), with all `group` query heads of the KV head. Rows with one split write `out`;
// others write their split's (M_s, L_s, O_s) to part_ml / part_o [row][head][split].
// Launch: grid (query tiles, n_kv_head, max splits), block FL_NT, dynamic shared memory
// flash_smem_bytes() (the host mirrors the layout).
// flash_merge: a block per (row, head) of rows with several splits. Launch: grid (rows,
// n_head), block 128.
#include "common.cuh"

#define FL_TILE 64
#define FL_SPLIT_TILES 4
#define FL_SPLIT (FL_TILE * FL_SPLIT_TILES)
#define FL_NT 256
#define FL_WARPS (FL_NT / 32)
#define NEG_INF (__int_as_float(0xff800000))

// Shared memory of one block (floats), for qg = qt·group (row, head) pairs:
//   sq [qg][HD]  so [qg][HD] (merged O)  st [qg][HD] (tile o_t)  ss [qg][FL_TILE]
//   sk [FL_TILE][HD+1]  sv [FL_TILE][HD]  s_m, s_l, s_a, s_b [qg]
struct FlashSmem {
    float *sq, *so, *st, *ss, *sk, *sv, *s_m, *s_l, *s_a, *s_b;
};

template <int HD>
__device__ __forceinline__ FlashSmem flash_smem(float* sm, int qg) {
    FlashSmem f;
    f.sq = sm;
    f.so = f.sq + qg * HD;
    f.st = f.so + qg * HD;
    f.ss = f.st + qg * HD;
    f.sk = f.ss + qg * FL_TILE;
    f.sv = f.sk + FL_TILE * (HD + 1);
    f.s_m = f.sv + FL_TILE * HD;
    f.s_l = f.s_m + qg;
    f.s_a = f.s_l + qg;
    f.s_b = f.s_a + qg;
    return f;
}

// Loads the K/V tile starting at key t0 (tn keys) of one (slot, KV head) into shared memory:
// every thread issues all its 16-byte loads first, then converts and stores.
template <int HD, typename KVT>
__device__ __forceinline__ void load_tile(const FlashSmem& f, const KVT* __restrict__ kc,
                                          const KVT* __restrict__ vc, size_t base, int kv,
                                          int t0, int tn) {
    constexpr int VEC = 16 / (int)sizeof(KVT);
    constexpr int PER_ROW = HD / VEC;
    constexpr int TOTAL = FL_TILE * PER_ROW;
    constexpr int ITERS = (TOTAL + FL_NT - 1) / FL_NT;
    uint4 kr[ITERS], vr[ITERS];
#pragma unroll
    for (int it = 0; it < ITERS; ++it) {
        const int idx = threadIdx.x + it * FL_NT;
        const int j = idx / PER_ROW, c = idx % PER_ROW;
        if (idx < TOTAL && j < tn) {
            const size_t at = base + (size_t)(t0 + j) * kv + c * VEC;
            kr[it] = __ldg(reinterpret_cast<const uint4*>(kc + at));
            vr[it] = __ldg(reinterpret_cast<const uint4*>(vc + at));
        }
    }
#pragma unroll
    for (int it = 0; it < ITERS; ++it) {
        const int idx = threadIdx.x + it * FL_NT;
        const int j = idx / PER_ROW, c = idx % PER_ROW;
        if (idx < TOTAL && j < tn) {
            float kf[VEC], vf[VEC];
            unpack16(kr[it], kc, kf);
            unpack16(vr[it], vc, vf);
#pragma unroll
            for (int i = 0; i < VEC; ++i) {
                f.sk[j * (HD + 1) + c * VEC + i] = kf[i];
                f.sv[j * HD + c * VEC + i] = vf[i];
            }
        }
    }
}

// One tile for `qg` (row, head) pairs whose positions are p0 + pair / group:
// st[pair][·] = o_t, tm[pair] = m_t, tl[pair] = l_t. Pairs that see no key of the tile get
// m_t = −∞, l_t = 0, o_t = 0 (the caller skips them). With few pairs (decode) each thread runs
// one chain; with many (prefill) a thread runs 4 (one key for the scores, one dimension for
// o_t, so each shared load feeds 4 chains). Either way every chain is the one documented above.
template <int HD>
__device__ __forceinline__ void tile_stats(const FlashSmem& f, int qg, int group, int p0,
                                           int t0, int tn, float scale, int r, float* tm,
                                           float* tl) {
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    if (qg * FL_TILE <= FL_NT) {
        const int pr = tid / FL_TILE, j = tid % FL_TILE;
        if (pr < qg) {
            const float* qq = f.sq + pr * HD;
            const float* kk = f.sk + j * (HD + 1);
            float acc = 0.0f;
#pragma unroll 16
            for (int e = 0; e < HD; ++e) acc = fmaf(qq[e], kk[e], acc);
            const bool ok = j < tn && t0 + j <= p0 + pr / group;
            f.ss[pr * FL_TILE + j] = ok ? acc * scale : NEG_INF;
        }
    } else {
        constexpr int NPG = FL_NT / FL_TILE;
        const int j = tid % FL_TILE, pg = tid / FL_TILE;
        const float* kk = f.sk + j * (HD + 1);
        for (int c0 = pg * 4; c0 < qg; c0 += NPG * 4) {
            const float* qr[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) qr[i] = f.sq + min(c0 + i, qg - 1) * HD;
            float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll 8
            for (int e = 0; e < HD; ++e) {
                const float kv_e = kk[e];
#pragma unroll
                for (int i = 0; i < 4; ++i) acc[i] = fmaf(qr[i][e], kv_e, acc[i]);
            }
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const int pr = c0 + i;
                if (pr < qg) {
                    const bool ok = j < tn && t0 + j <= p0 + pr / group;
                    f.ss[pr * FL_TILE + j] = ok ? acc[i] * scale : NEG_INF;
                }
            }
        }
    }
    __syncthreads();
    for (int pr = warp; pr < qg; pr += FL_WARPS) {
        const int pos = p0 + pr / group;
        float* sr = f.ss + pr * FL_TILE;
        const float s0 = sr[lane], s1 = sr[lane + 32];
        const float m = warp_max(fmaxf(s0, s1));
        const bool v0 = lane < tn && t0 + lane <= pos;
        const bool v1 = lane + 32 < tn && t0 + lane + 32 <= pos;
        const float e0 = v0 ? maybe_round(tc_exp(s0 - m), r) : 0.0f;
        const float e1 = v1 ? maybe_round(tc_exp(s1 - m), r) : 0.0f;
        sr[lane] = e0;
        sr[lane + 32] = e1;
        const float l = warp_sum(e0 + e1);
        if (lane == 0) {
            tm[pr] = m;
            tl[pr] = l;
        }
    }
    __syncthreads();
    {
        // HD divides FL_NT (16 … 256): thread t takes dimension t % HD.
        constexpr int NPG = FL_NT / HD;
        const int e = tid % HD, pg = tid / HD;
        if (qg * HD <= FL_NT) {
            const int pr = pg;
            if (pr < qg) {
                const int jn = max(0, min(tn, p0 + pr / group - t0 + 1));
                const float* pp = f.ss + pr * FL_TILE;
                float o = 0.0f;
#pragma unroll 8
                for (int j = 0; j < jn; ++j) o = fmaf(pp[j], f.sv[j * HD + e], o);
                f.st[pr * HD + e] = o;
            }
        } else {
            for (int c0 = pg * 4; c0 < qg; c0 += NPG * 4) {
                const float* pp[4];
                int jn[4];
                int jmax = 0;
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    const int pr = min(c0 + i, qg - 1);
                    pp[i] = f.ss + pr * FL_TILE;
                    jn[i] = c0 + i < qg ? max(0, min(tn, p0 + pr / group - t0 + 1)) : 0;
                    jmax = max(jmax, jn[i]);
                }
                float o[4] = {0.0f, 0.0f, 0.0f, 0.0f};
                for (int j = 0; j < jmax; ++j) {
                    const float v = f.sv[j * HD + e];
#pragma unroll
                    for (int i = 0; i < 4; ++i)
                        if (j < jn[i]) o[i] = fmaf(pp[i][j], v, o[i]);
                }
#pragma unroll
                for (int i = 0; i < 4; ++i)
                    if (c0 + i < qg) f.st[(c0 + i) * HD + e] = o[i];
            }
        }
    }
}

// The coefficients of one merge step (tiles into a split, splits into the row).
__device__ __forceinline__ void merge_coeffs(float M, float m_t, float* a, float* b, float* M2) {
    const float mn = fmaxf(M, m_t);
    *a = (M == NEG_INF) ? 0.0f : tc_exp(M - mn);
    *b = tc_exp(m_t - mn);
    *M2 = mn;
}

template <int HD, typename KVT>
__device__ __forceinline__ void flash_body(
    const float* __restrict__ q, int d, int kv, int group, int nh, float scale, int r,
    const KVT* __restrict__ kc, const KVT* __restrict__ vc, int max_ctx,
    const int* __restrict__ tiles, const int* __restrict__ row_slot,
    const int* __restrict__ row_pos, int qt, float* __restrict__ out,
    float* __restrict__ part_o, float* __restrict__ part_ml, int max_splits) {
    extern __shared__ float sm[];
    const int tid = threadIdx.x;
    const int r0 = tiles[2 * blockIdx.x], cnt = tiles[2 * blockIdx.x + 1];
    const int kvh = blockIdx.y, split = blockIdx.z;
    const int slot = row_slot[r0], p0 = row_pos[r0], plast = p0 + cnt - 1;
    const int k_begin = split * FL_SPLIT;
    if (k_begin > plast) return;  // no row of the tile reaches this split
    const int k_end = min(k_begin + FL_SPLIT, plast + 1);
    const int qg = cnt * group;
    const FlashSmem f = flash_smem<HD>(sm, qt * group);
    float* tm = f.s_a;  // m_t, then a, per pair
    float* tl = f.s_b;  // l_t, then b, per pair

    for (int idx = tid; idx < qg * HD; idx += FL_NT) {
        const int pr = idx / HD, e = idx % HD;
        const int rr = pr / group, g = pr % group;
        f.sq[idx] = q[(size_t)(r0 + rr) * d + (kvh * group + g) * HD + e];
        f.so[idx] = 0.0f;
    }
    for (int pr = tid; pr < qg; pr += FL_NT) {
        f.s_m[pr] = NEG_INF;
        f.s_l[pr] = 0.0f;
    }
    const size_t base = (size_t)slot * max_ctx * kv + (size_t)kvh * HD;
    for (int t0 = k_begin; t0 < k_end; t0 += FL_TILE) {
        const int tn = min(FL_TILE, k_end - t0);
        __syncthreads();
        load_tile<HD>(f, kc, vc, base, kv, t0, tn);
        __syncthreads();
        tile_stats<HD>(f, qg, group, p0, t0, tn, scale, r, tm, tl);
        __syncthreads();
        for (int pr = tid; pr < qg; pr += FL_NT) {
            if (t0 > p0 + pr / group) continue;  // the row sees no key of this tile
            float a, b, mn;
            merge_coeffs(f.s_m[pr], tm[pr], &a, &b, &mn);
            f.s_l[pr] = f.s_l[pr] * a + tl[pr] * b;
            f.s_m[pr] = mn;
            tm[pr] = a;
            tl[pr] = b;
        }
        __syncthreads();
        for (int idx = tid; idx < qg * HD; idx += FL_NT) {
            const int pr = idx / HD;
            if (t0 > p0 + pr / group) continue;
            f.so[idx] = fmaf(f.st[idx], tl[pr], f.so[idx] * tm[pr]);
        }
    }
    __syncthreads();
    for (int idx = tid; idx < qg * HD; idx += FL_NT) {
        const int pr = idx / HD, e = idx % HD;
        const int rr = pr / group, g = pr % group;
        const int pos = p0 + rr, row = r0 + rr, h = kvh * group + g;
        if (pos < k_begin) continue;  // the row has no key in this split
        if (pos < FL_SPLIT) {
            out[(size_t)row * d + h * HD + e] = maybe_round(f.so[idx] / f.s_l[pr], r);
        } else {
            const size_t ps = ((size_t)row * nh + h) * max_splits + split;
            part_o[ps * HD + e] = f.so[idx];
            if (e == 0) {
                part_ml[ps * 2] = f.s_m[pr];
                part_ml[ps * 2 + 1] = f.s_l[pr];
            }
        }
    }
}

// Merges the splits of one (row, head) in split order (rows at positions ≥ FL_SPLIT).
extern "C" __global__ void __launch_bounds__(128)
flash_merge(const int* __restrict__ row_pos, int d, int hd, int nh, int r,
            const float* __restrict__ part_o, const float* __restrict__ part_ml,
            int max_splits, float* __restrict__ out) {
    pdl_enter();
    const int row = blockIdx.x, h = blockIdx.y;
    const int pos = row_pos[row];
    if (pos < FL_SPLIT) return;  // finished by the flash kernel
    const int ns = pos / FL_SPLIT + 1;
    const size_t ps0 = ((size_t)row * nh + h) * max_splits;
    const float* ml = part_ml + ps0 * 2;
    for (int e = threadIdx.x; e < hd; e += blockDim.x) {
        float M = NEG_INF, L = 0.0f, O = 0.0f;
        for (int s = 0; s < ns; ++s) {
            float a, b, mn;
            merge_coeffs(M, ml[2 * s], &a, &b, &mn);
            L = L * a + ml[2 * s + 1] * b;
            O = fmaf(part_o[(ps0 + s) * hd + e], b, O * a);
            M = mn;
        }
        out[(size_t)row * d + h * hd + e] = maybe_round(O / L, r);
    }
}

#define FLASH_INSTANCE(HD, KVT, SUF)                                                          \
    extern "C" __global__ void __launch_bounds__(FL_NT) flash_##SUF##_hd##HD(                 \
        const float* __restrict__ q, int d, int kv, int group, int nh, float scale, int r,    \
        const KVT* __restrict__ kc, const KVT* __restrict__ vc, int max_ctx,                  \
        const int* __restrict__ tiles, const int* __restrict__ row_slot,                      \
        const int* __restrict__ row_pos, int qt, float* __restrict__ out,                     \
        float* __restrict__ part_o, float* __restrict__ part_ml, int max_splits) {            \
        pdl_enter();                                                                          \
        flash_body<HD, KVT>(q, d, kv, group, nh, scale, r, kc, vc, max_ctx, tiles, row_slot,  \
                            row_pos, qt, out, part_o, part_ml, max_splits);                  \
    }

// Head dimensions 16 (tiny), 32, 64 (SmolLM2), 128 (Llama-3), 256.
FLASH_INSTANCE(16, float, f32)
FLASH_INSTANCE(32, float, f32)
FLASH_INSTANCE(64, float, f32)
FLASH_INSTANCE(128, float, f32)
FLASH_INSTANCE(256, float, f32)
FLASH_INSTANCE(16, bf16_t, bf16)
FLASH_INSTANCE(32, bf16_t, bf16)
FLASH_INSTANCE(64, bf16_t, bf16)
FLASH_INSTANCE(128, bf16_t, bf16)
FLASH_INSTANCE(256, bf16_t, bf16)
