// Greedy next token of each kept row on the device: the id of the largest logit, ties to the
// lowest id, NaN never wins, an all-NaN row gives 0 (the host's `backend::argmax`, exactly).
// A decode step whose logits are not recorded then moves one id per row to the host, not the
// row's vocab floats.
//
// Every (value, id) maps to one 64-bit key whose unsigned order is the choice's order: the
// high word is the value's bits made monotone (NaN → 0, below -inf; -0 → +0, since the host's
// `>` sees them equal), the low word ~id (a lower id is a larger key). The choice is then the
// maximum key, which no order of reduction can change.
//
// Launch: grid (ceil(vocab / ARGMAX_CHUNK), rows), block ARGMAX_THREADS. Logits row r belongs
// to chunk row c = kept[r]. Each block folds its chunk of a row into keys[r] (atomicMax); the
// row's last block (counts[r]) writes out[steps[c] · rows + r], counts the step (steps[c] += 1)
// and resets keys[r] and counts[r] to 0 for the next launch (both start zeroed). With
// `advance` (greedy decode steps run back to back on the device) it also makes the row's next
// step: tok[c] = the chosen id, pos[c] += 1 — the row metadata the next step's launches read.
#include "common.cuh"

#define ARGMAX_THREADS 256
#define ARGMAX_CHUNK (16 * ARGMAX_THREADS)

__device__ __forceinline__ unsigned long long argmax_key(float v, int id) {
    unsigned int b = __float_as_uint(v == 0.0f ? 0.0f : v);
    b = (v != v) ? 0u : (b & 0x80000000u) ? ~b : (b | 0x80000000u);
    return ((unsigned long long)b << 32) | (unsigned int)~id;
}

extern "C" __global__ void __launch_bounds__(ARGMAX_THREADS)
    argmax_rows(const float* __restrict__ logits, int vocab, const int* __restrict__ kept,
                unsigned long long* __restrict__ keys, unsigned int* __restrict__ counts,
                unsigned int* __restrict__ out, int* __restrict__ steps, int* __restrict__ tok,
                int* __restrict__ pos, int advance) {
    __shared__ unsigned long long warp_best[ARGMAX_THREADS / 32];
    const int r = blockIdx.y;
    const int c0 = blockIdx.x * ARGMAX_CHUNK;
    const int c1 = min(c0 + ARGMAX_CHUNK, vocab);
    pdl_enter();
    const float* l = logits + (size_t)r * vocab;
    unsigned long long best = 0;
    for (int i = c0 + threadIdx.x; i < c1; i += ARGMAX_THREADS) {
        best = max(best, argmax_key(l[i], i));
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) best = max(best, __shfl_xor_sync(TC_FULL_MASK, best, o));
    if ((threadIdx.x & 31) == 0) warp_best[threadIdx.x >> 5] = best;
    __syncthreads();
    if (threadIdx.x != 0) return;
    for (int w = 1; w < ARGMAX_THREADS / 32; ++w) best = max(best, warp_best[w]);
    atomicMax(keys + r, best);
    // The row's last block sees every other block's atomicMax (fence before the count).
    __threadfence();
    if (atomicAdd(counts + r, 1u) != gridDim.x - 1) return;
    __threadfence();
    const unsigned long long k = atomicExch(keys + r, 0ull);
    counts[r] = 0;
    const unsigned int id = ~(unsigned int)(k & 0xffffffffull);
    const int c = kept[r];
    out[(size_t)steps[c] * gridDim.y + r] = id;
    steps[c] += 1;
    if (advance) {
        tok[c] = (int)id;
        pos[c] += 1;
    }
}
