#!/usr/bin/env python3
"""NumPy baseline for the analyzer's per-row metrics (what benches/analyze_throughput.rs times).

Same synthetic trace set: vocab 128,256, span 16, batches 1-8 (36 sequences, 576 row pairs),
the same splitmix64 generator, candidate = reference + small noise (every value differs), and
separately identical rows. Per row pair, in f64 from the stored f32 values: bit-exact, NaN/Inf
counts and first id per side, max |d| and its lowest id, mean |d|, top-5 ids+logits per side
(ties to the lowest id, NaN never wins), top-1 agreement, top-5 overlap, KL(ref||cand) by the
log-sum-exp form, argmax flips with the reference log-prob gap and the 4-ULP near-tie flag.
Vectorised over the 16 rows of a sequence. Counts both rows' bytes, like the Rust bench.

    pip install numpy && python3 scripts/numpy_metrics_bench.py [--reps 3]
"""

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # single core, like the Rust 1-thread figure
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

VOCAB = 128_256
SPAN = 16
SEQUENCES = sum(range(1, 9))  # batches 1..8
TOP_K = 5
MANTISSA_BITS = {"f32": 23, "f16": 10, "bf16": 7}
MIN_NORMAL_EXP = {"f32": -126, "f16": -14, "bf16": -126}


def splitmix_logits(start, n, seed, scale):
    """Values start..start+n of the bench's splitmix64 stream, as f32 like the Rust fill()."""
    with np.errstate(over="ignore"):
        i = np.arange(start + 1, start + n + 1, dtype=np.uint64)
        z = np.uint64(seed) + i * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    m = np.uint64(0xFFFF)
    u = (z & m) + ((z >> np.uint64(16)) & m) + ((z >> np.uint64(32)) & m) + (z >> np.uint64(48))
    return (u.astype(np.float32) / np.float32(65536.0) - np.float32(2.0)) * np.float32(scale)


def make_sequence(s):
    n = SPAN * VOCAB
    ref = splitmix_logits(s * n, n, 1, 3.0)
    cand = ref + splitmix_logits(s * n, n, 2, 0.02)
    same = cand == ref
    cand[same] = (cand[same].view(np.uint32) ^ np.uint32(1)).view(np.float32)
    return ref.reshape(SPAN, VOCAB), cand.reshape(SPAN, VOCAB)


def ulp(x, dtype):
    e = np.maximum(np.frexp(np.abs(x))[1] - 1, MIN_NORMAL_EXP[dtype])
    return np.ldexp(1.0, e - MANTISSA_BITS[dtype])


def non_finite(x):
    bad = ~np.isfinite(x)
    return bad.sum(axis=1), np.where(bad.any(axis=1), bad.argmax(axis=1), -1)


def top5(x):
    """Top-5 ids per row: largest first, ties to the lowest id, NaN/Inf never enter."""
    x = np.where(np.isfinite(x), x, -np.inf)
    fifth = -np.partition(-x, TOP_K - 1, axis=1)[:, TOP_K - 1]
    ids = []
    for row, v in zip(x, fifth):
        cand = np.flatnonzero(row >= v)
        order = np.lexsort((cand, -row[cand]))  # by value desc, then id asc
        ids.append(cand[order][:TOP_K])
    ids = np.array(ids)
    return ids, np.take_along_axis(x, ids, axis=1)


def compare_sequence(r, c, dtype="bf16"):
    bit_exact = (r.view(np.uint32) == c.view(np.uint32)).all(axis=1)
    nf_ref, nf_cand = non_finite(r), non_finite(c)
    rd, cd = r.astype(np.float64), c.astype(np.float64)
    d = rd - cd
    a = np.abs(d)
    max_abs, max_abs_id, mean_abs = a.max(axis=1), a.argmax(axis=1), a.mean(axis=1)
    ids_r, top_r = top5(r)
    ids_c, top_c = top5(c)
    top1 = ids_r[:, 0] == ids_c[:, 0]
    overlap = np.array([len(np.intersect1d(x, y)) for x, y in zip(ids_r, ids_c)]) / TOP_K
    # KL = sum p_r (r - c) - lse(r) + lse(c), shifts = the row maxima.
    mr = top_r[:, :1].astype(np.float64)
    mc = top_c[:, :1].astype(np.float64)
    er = np.exp(rd - mr)
    sr = er.sum(axis=1)
    sc = np.exp(cd - mc).sum(axis=1)
    t = (er * d).sum(axis=1)
    kl = np.maximum(t / sr + (mc[:, 0] - mr[:, 0]) + np.log(sc / sr), 0.0)
    flips = []
    for j in np.flatnonzero(~top1):
        ra, rb = rd[j, ids_r[j, 0]], rd[j, ids_c[j, 0]]
        near = abs(ra - rb) <= 4 * ulp(max(abs(ra), abs(rb)), dtype)
        flips.append((j, ids_r[j, 0], ids_c[j, 0], ra - rb, near))
    return dict(bit_exact=bit_exact, nf=(nf_ref, nf_cand), max_abs=max_abs, max_abs_id=max_abs_id,
                mean_abs=mean_abs, top=(ids_r, top_r, ids_c, top_c), top1=top1, overlap=overlap,
                kl=kl, flips=flips)


def run(pairs, reps):
    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(reps):
        w0, c0 = time.perf_counter(), time.process_time()
        out = [compare_sequence(r, c) for r, c in pairs]
        best_wall = min(best_wall, time.perf_counter() - w0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return best_wall, best_cpu, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    seqs = [make_sequence(s) for s in range(SEQUENCES)]
    total = 2 * SEQUENCES * SPAN * VOCAB * 4
    print(f"numpy {np.__version__}: vocab {VOCAB}, span {SPAN}, {SEQUENCES} sequences, "
          f"{total / 1e6:.0f} MB of trace (both sides); best of {args.reps}")
    for label, pairs in [("differing rows", seqs), ("identical rows", [(r, r.copy()) for r, _ in seqs])]:
        wall, cpu, out = run(pairs, args.reps)
        kl = np.concatenate([o["kl"] for o in out])
        print(f"{label}: {total / wall / 1e9:.3f} GB/s wall ({wall * 1e3:.0f} ms), "
              f"{total / cpu / 1e9:.3f} GB/s per core of CPU time; mean KL {kl.mean():.3e}")


if __name__ == "__main__":
    main()
