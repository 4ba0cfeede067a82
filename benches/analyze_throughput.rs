//! Analyzer throughput on a synthetic trace set: vocab 128,256, span 16, batches 1–8
//! (36 sequences, 576 row pairs). Counts both rows' bytes. Rows that all differ and identical
//! rows are timed apart, single-threaded and with rayon over rows.
//!
//! `cargo bench --bench analyze_throughput` (env BENCH_REPS, default 3: best of N).

use std::hint::black_box;
use std::time::{Duration, Instant};

use tracecheck::metrics::{
    aggregate, compare_sequences, compare_sequences_par, LogitDtype, SequencePair,
};

const VOCAB: usize = 128_256;
const SPAN: usize = 16;
const BATCHES: std::ops::RangeInclusive<usize> = 1..=8;

/// splitmix64 → roughly N(0, 3²) logits, deterministic.
fn fill(out: &mut [f32], seed: u64, scale: f32) {
    let mut s = seed;
    let mut next = || {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for x in out {
        let z = next();
        // Sum of four 16-bit uniforms: cheap and bell-shaped.
        let u = (z & 0xffff) + ((z >> 16) & 0xffff) + ((z >> 32) & 0xffff) + (z >> 48);
        *x = (u as f32 / 65_536.0 - 2.0) * scale;
    }
}

fn pairs<'a>(reference: &'a [f32], candidate: &'a [f32], per_seq: usize) -> Vec<SequencePair<'a>> {
    reference
        .chunks_exact(per_seq)
        .zip(candidate.chunks_exact(per_seq))
        .map(|(r, c)| SequencePair {
            reference: r,
            candidate: c,
        })
        .collect()
}

/// On-CPU time of all this process's threads (Linux schedstat), so that other load on the
/// machine does not count against us; None elsewhere.
fn cpu_time() -> Option<Duration> {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(ns))
}

/// Best wall time and best CPU time of `reps` runs.
fn time_best(reps: usize, mut f: impl FnMut()) -> (Duration, Option<Duration>) {
    let mut best = (Duration::MAX, None::<Duration>);
    for _ in 0..reps {
        let (c0, t) = (cpu_time(), Instant::now());
        f();
        let wall = t.elapsed();
        let cpu = cpu_time().zip(c0).map(|(b, a)| b.saturating_sub(a));
        best.0 = best.0.min(wall);
        best.1 = match (best.1, cpu) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    best
}

fn main() {
    let reps: usize = std::env::var("BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let sequences: usize = BATCHES.sum();
    let per_seq = SPAN * VOCAB;
    let n = sequences * per_seq;
    let mut reference = vec![0.0f32; n];
    fill(&mut reference, 1, 3.0);
    // Candidate = reference + small noise: every value differs (bf16-like noise level).
    let mut candidate = vec![0.0f32; n];
    fill(&mut candidate, 2, 0.02);
    for (c, r) in candidate.iter_mut().zip(&reference) {
        *c += *r;
        if *c == *r {
            *c = f32::from_bits(c.to_bits() ^ 1);
        }
    }
    let identical = reference.clone();

    let differing = pairs(&reference, &candidate, per_seq);
    let same = pairs(&reference, &identical, per_seq);

    let bytes = 2.0 * (n * 4) as f64;
    let threads = rayon::current_num_threads();
    println!(
        "analyze_throughput: vocab {VOCAB}, span {SPAN}, batches 1-8 = {sequences} sequences, \
         {} row pairs, {:.0} MB of trace (both sides); best of {reps}",
        sequences * SPAN,
        bytes / 1e6
    );
    #[cfg(target_arch = "x86_64")]
    println!(
        "cpu: avx512f {} avx2 {}; rayon threads {threads}",
        std::arch::is_x86_feature_detected!("avx512f"),
        std::arch::is_x86_feature_detected!("avx2")
    );
    for (label, set) in [("differing rows", &differing), ("identical rows", &same)] {
        let one = time_best(reps, || {
            let seqs = compare_sequences(set, VOCAB, LogitDtype::Bf16).expect("valid shapes");
            black_box(aggregate(&seqs));
        });
        let par = time_best(reps, || {
            let seqs = compare_sequences_par(set, VOCAB, LogitDtype::Bf16).expect("valid shapes");
            black_box(aggregate(&seqs));
        });
        // Same data as scripts/numpy_metrics_bench.py: its mean KL must match this one.
        let seqs = compare_sequences(set, VOCAB, LogitDtype::Bf16).expect("valid shapes");
        let stats = aggregate(&seqs);
        let gbs = |d: Duration| bytes / d.as_secs_f64() / 1e9;
        let cpu = |c: Option<Duration>| c.map_or("n/a".to_owned(), |c| format!("{:.2}", gbs(c)));
        println!(
            "{label}: 1 thread {:6.2} GB/s wall ({:6.1} ms), {} GB/s per core of CPU time | \
             {threads} threads {:6.2} GB/s wall ({:6.1} ms), {} GB/s per core of CPU time; \
             mean KL {:.3e}, max |Δ| {:.3e}",
            gbs(one.0),
            one.0.as_secs_f64() * 1e3,
            cpu(one.1),
            gbs(par.0),
            par.0.as_secs_f64() * 1e3,
            cpu(par.1),
            stats.mean_kl,
            stats.max_abs_diff,
        );
    }
}
