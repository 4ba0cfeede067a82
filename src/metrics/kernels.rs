//! The hot loops over a pair of rows, written so LLVM vectorises them: fixed-width lane
//! accumulators (so the summation order, hence every result bit, is the same whatever vector
//! width a build or CPU uses), selects instead of branches, and in the top-5 scan a per-chunk
//! "could anything enter?" test so the scalar insertion runs only on rare chunks (kept out
//! of the arithmetic loops, whose accumulators then stay in registers).
//!
//! Each kernel has `#[target_feature]` clones (AVX-512, AVX2, both with FMA) picked at run
//! time; they all compile the same generic body, and its only fused operations are explicit
//! `mul_add`s (exactly rounded by IEEE 754), so results are bit-identical across them and the
//! portable body (which is slow where FMA is emulated: x86 CPUs older than 2013).

use super::fastexp;
use super::topk::TopK;

/// f64 accumulator lanes.
const LANES: usize = 16;
/// Values per top-k test; a multiple of LANES.
const CHUNK: usize = 64;

/// Calls `$body` through the widest clone the CPU supports.
macro_rules! dispatch {
    ($body:ident($($arg:ident: $ty:ty),*) -> $ret:ty) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw,fma")]
            fn avx512($($arg: $ty),*) -> $ret {
                $body($($arg),*)
            }
            #[target_feature(enable = "avx2,fma")]
            fn avx2($($arg: $ty),*) -> $ret {
                $body($($arg),*)
            }
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512bw")
            {
                // SAFETY: the features the clone is compiled for were just detected.
                return unsafe { avx512($($arg),*) };
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: as above.
                return unsafe { avx2($($arg),*) };
            }
        }
        $body($($arg),*)
    }};
}

/// Δ = r − c statistics of a pair of finite rows.
pub(crate) struct DiffPass {
    /// Σ|Δ|.
    pub sum_abs: f64,
    /// ΣΔ.
    pub sum_signed: f64,
    pub max_abs: f64,
    /// Lowest id reaching `max_abs`.
    pub max_abs_id: usize,
}

/// Pass 2 sums for the cancellation-free KL form, with e = exp(r − shift_ref),
/// x = (c − r) + offset, g = expm1(x): Σe, Σe·(g − x), Σe·g.
pub(crate) struct KlSums {
    pub sum_exp: f64,
    pub sum_exp_excess: f64,
    pub sum_exp_m1: f64,
}

/// Pass 2 sums for the log-sum-exp KL form, with e = exp(x − shift) per side:
/// Σe_r, Σe_c, Σe_r·(r − c).
pub(crate) struct LseSums {
    pub sum_exp_ref: f64,
    pub sum_exp_cand: f64,
    pub weighted_diff: f64,
}

/// Bitwise equality (so +0 ≠ −0 and NaNs compare by payload), chunked so it vectorises
/// and still stops early on the usual first-chunk difference.
pub(crate) fn bits_equal(r: &[f32], c: &[f32]) -> bool {
    debug_assert_eq!(r.len(), c.len());
    let mut rc = r.chunks_exact(CHUNK);
    let mut cc = c.chunks_exact(CHUNK);
    for (a, b) in (&mut rc).zip(&mut cc) {
        let mut acc = 0u32;
        for i in 0..CHUNK {
            acc |= a[i].to_bits() ^ b[i].to_bits();
        }
        if acc != 0 {
            return false;
        }
    }
    rc.remainder()
        .iter()
        .zip(cc.remainder())
        .all(|(a, b)| a.to_bits() == b.to_bits())
}

/// One pass over a row: its top-5 and "any non-finite value?".
pub(crate) fn scan_row(r: &[f32]) -> (TopK, bool) {
    dispatch!(scan_row_body(r: &[f32]) -> (TopK, bool))
}

pub(crate) fn diff_pass(r: &[f32], c: &[f32]) -> DiffPass {
    debug_assert_eq!(r.len(), c.len());
    dispatch!(diff_pass_body(r: &[f32], c: &[f32]) -> DiffPass)
}

pub(crate) fn kl_pass(r: &[f32], c: &[f32], shift_ref: f64, offset: f64) -> KlSums {
    debug_assert_eq!(r.len(), c.len());
    dispatch!(kl_pass_body(r: &[f32], c: &[f32], shift_ref: f64, offset: f64) -> KlSums)
}

pub(crate) fn lse_pass(r: &[f32], c: &[f32], shift_ref: f64, shift_cand: f64) -> LseSums {
    debug_assert_eq!(r.len(), c.len());
    dispatch!(lse_pass_body(r: &[f32], c: &[f32], shift_ref: f64, shift_cand: f64) -> LseSums)
}

/// Sums lanes in a fixed pairwise order.
#[inline(always)]
fn reduce(lanes: [f64; LANES]) -> f64 {
    let mut v = lanes;
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            v[i] += v[i + w];
        }
    }
    v[0]
}

#[inline(always)]
fn any_above(chunk: &[f32; CHUNK], threshold: f32) -> bool {
    let mut hit = false;
    for &x in chunk {
        hit |= x > threshold;
    }
    hit
}

#[inline(always)]
fn scan_row_body(r: &[f32]) -> (TopK, bool) {
    const EXP_MASK: u32 = 0x7f80_0000;
    let mut top = TopK::default();
    let mut non_finite = false;
    let mut chunks = r.chunks_exact(CHUNK);
    let mut base = 0;
    for chunk in &mut chunks {
        let chunk: &[f32; CHUNK] = chunk.try_into().expect("exact chunk");
        let mut bad = false;
        for &x in chunk {
            bad |= x.to_bits() & EXP_MASK == EXP_MASK;
        }
        non_finite |= bad;
        if !top.is_full() || any_above(chunk, top.threshold()) {
            top.offer_all(chunk, base);
        }
        base += CHUNK;
    }
    let tail = chunks.remainder();
    non_finite |= tail.iter().any(|x| !x.is_finite());
    top.offer_all(tail, base);
    (top, non_finite)
}

#[inline(always)]
fn diff_pass_body(r: &[f32], c: &[f32]) -> DiffPass {
    let mut sum = [0.0f64; LANES];
    let mut signed = [0.0f64; LANES];
    // −1 so that the first |Δ| (≥ 0) of every lane records its index. Ids are kept as f64
    // (exact below 2^53) so the selects stay in one vector type.
    let mut best = [-1.0f64; LANES];
    let mut best_id = [0.0f64; LANES];
    let mut rc = r.chunks_exact(LANES);
    let mut cc = c.chunks_exact(LANES);
    let mut base = 0.0f64;
    for (a, b) in (&mut rc).zip(&mut cc) {
        for l in 0..LANES {
            let delta = f64::from(a[l]) - f64::from(b[l]);
            let d = delta.abs();
            sum[l] += d;
            signed[l] += delta;
            let gt = d > best[l];
            best[l] = if gt { d } else { best[l] };
            best_id[l] = if gt { base + l as f64 } else { best_id[l] };
        }
        base += LANES as f64;
    }
    for (l, (&a, &b)) in rc.remainder().iter().zip(cc.remainder()).enumerate() {
        let delta = f64::from(a) - f64::from(b);
        let d = delta.abs();
        sum[l] += d;
        signed[l] += delta;
        if d > best[l] {
            best[l] = d;
            best_id[l] = base + l as f64;
        }
    }
    // Each lane kept its first maximum; the lowest id among lanes at the maximum wins.
    let (mut max_abs, mut max_abs_id) = (best[0], best_id[0]);
    for l in 1..LANES {
        if best[l] > max_abs || (best[l] == max_abs && best_id[l] < max_abs_id) {
            max_abs = best[l];
            max_abs_id = best_id[l];
        }
    }
    DiffPass {
        sum_abs: reduce(sum),
        sum_signed: reduce(signed),
        max_abs: max_abs.max(0.0),
        max_abs_id: max_abs_id as usize,
    }
}

/// Accumulators of [`kl_pass_body`], one per lane.
struct KlLanes {
    exp: [f64; LANES],
    excess: [f64; LANES],
    m1: [f64; LANES],
}

impl KlLanes {
    // inline(always), not a closure: closures do not inherit the caller's target features.
    #[inline(always)]
    fn step(&mut self, l: usize, a: f32, b: f32, shift_ref: f64, offset: f64) {
        let (x, y) = (f64::from(a), f64::from(b));
        // x − shift ≤ 0 (shift = the row max); |d| ≤ 30 (the caller's precise-form bound).
        let e = fastexp::exp_nonpositive(x - shift_ref);
        let d = (y - x) + offset;
        let g = fastexp::exp_m1_moderate(d);
        self.exp[l] += e;
        self.excess[l] += e * (g - d);
        self.m1[l] += e * g;
    }
}

#[inline(always)]
fn kl_pass_body(r: &[f32], c: &[f32], shift_ref: f64, offset: f64) -> KlSums {
    let mut acc = KlLanes {
        exp: [0.0; LANES],
        excess: [0.0; LANES],
        m1: [0.0; LANES],
    };
    let mut rc = r.chunks_exact(LANES);
    let mut cc = c.chunks_exact(LANES);
    for (a, b) in (&mut rc).zip(&mut cc) {
        for l in 0..LANES {
            acc.step(l, a[l], b[l], shift_ref, offset);
        }
    }
    for (l, (&a, &b)) in rc.remainder().iter().zip(cc.remainder()).enumerate() {
        acc.step(l, a, b, shift_ref, offset);
    }
    KlSums {
        sum_exp: reduce(acc.exp),
        sum_exp_excess: reduce(acc.excess),
        sum_exp_m1: reduce(acc.m1),
    }
}

/// Accumulators of [`lse_pass_body`], one per lane.
struct LseLanes {
    exp_ref: [f64; LANES],
    exp_cand: [f64; LANES],
    weighted: [f64; LANES],
}

impl LseLanes {
    #[inline(always)]
    fn step(&mut self, l: usize, a: f32, b: f32, shift_ref: f64, shift_cand: f64) {
        let (x, y) = (f64::from(a), f64::from(b));
        // Both shifts are their row's max: arguments ≤ 0.
        let ex = fastexp::exp_nonpositive(x - shift_ref);
        self.exp_ref[l] += ex;
        self.exp_cand[l] += fastexp::exp_nonpositive(y - shift_cand);
        self.weighted[l] += ex * (x - y);
    }
}

#[inline(always)]
fn lse_pass_body(r: &[f32], c: &[f32], shift_ref: f64, shift_cand: f64) -> LseSums {
    let mut acc = LseLanes {
        exp_ref: [0.0; LANES],
        exp_cand: [0.0; LANES],
        weighted: [0.0; LANES],
    };
    let mut rc = r.chunks_exact(LANES);
    let mut cc = c.chunks_exact(LANES);
    for (a, b) in (&mut rc).zip(&mut cc) {
        for l in 0..LANES {
            acc.step(l, a[l], b[l], shift_ref, shift_cand);
        }
    }
    for (l, (&a, &b)) in rc.remainder().iter().zip(cc.remainder()).enumerate() {
        acc.step(l, a, b, shift_ref, shift_cand);
    }
    LseSums {
        sum_exp_ref: reduce(acc.exp_ref),
        sum_exp_cand: reduce(acc.exp_cand),
        weighted_diff: reduce(acc.weighted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32 / 1e5)
            .collect()
    }

    #[test]
    fn clones_agree_with_the_portable_body() {
        // Odd length: exercises chunk, lane and tail paths.
        let r = ramp(64 * 7 + 21, 1);
        let c = ramp(64 * 7 + 21, 9);
        let a = diff_pass(&r, &c);
        let b = diff_pass_body(&r, &c);
        assert_eq!(a.sum_abs.to_bits(), b.sum_abs.to_bits());
        assert_eq!((a.max_abs, a.max_abs_id), (b.max_abs, b.max_abs_id));
        assert_eq!(a.sum_signed.to_bits(), b.sum_signed.to_bits());
        let e = lse_pass(&r, &c, 170.0, 170.0);
        let f = lse_pass_body(&r, &c, 170.0, 170.0);
        assert_eq!(e.sum_exp_ref.to_bits(), f.sum_exp_ref.to_bits());
        assert_eq!(e.weighted_diff.to_bits(), f.weighted_diff.to_bits());
        let e = kl_pass(&r, &c, 170.0, 0.25);
        let f = kl_pass_body(&r, &c, 170.0, 0.25);
        assert!(r.iter().all(|&x| x <= 170.0) && e.sum_exp > 0.0);
        assert_eq!(e.sum_exp.to_bits(), f.sum_exp.to_bits());
        assert_eq!(e.sum_exp_excess.to_bits(), f.sum_exp_excess.to_bits());
        assert_eq!(e.sum_exp_m1.to_bits(), f.sum_exp_m1.to_bits());
        assert_eq!(scan_row(&r), scan_row_body(&r));
    }

    #[test]
    fn diff_pass_matches_naive() {
        let r = ramp(1000, 3);
        let c = ramp(1000, 4);
        let p = diff_pass(&r, &c);
        let d: Vec<f64> = r
            .iter()
            .zip(&c)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).abs())
            .collect();
        let max = d.iter().cloned().fold(0.0, f64::max);
        assert_eq!(p.max_abs, max);
        assert_eq!(p.max_abs_id, d.iter().position(|&x| x == max).unwrap());
        let naive: f64 = d.iter().sum();
        assert!((p.sum_abs - naive).abs() <= 1e-12 * naive);
        let mut t = TopK::default();
        t.offer_all(&r, 0);
        assert_eq!(scan_row(&r), (t, false));
    }

    #[test]
    fn max_abs_ties_go_to_the_lowest_id() {
        // Equal |Δ| in different lanes and chunks: id 3 must win over 70 and 130.
        let r = vec![0.0f32; 200];
        let mut c = r.clone();
        for i in [130, 70, 3] {
            c[i] = -0.5;
        }
        c[150] = 0.5; // same |Δ| with the other sign
        let p = diff_pass(&r, &c);
        assert_eq!((p.max_abs, p.max_abs_id), (0.5, 3));
    }

    #[test]
    fn bits_equal_sees_signed_zero_and_nan_payloads() {
        let a = vec![0.0f32; 130];
        let mut b = a.clone();
        assert!(bits_equal(&a, &b));
        b[129] = -0.0;
        assert!(!bits_equal(&a, &b));
        let x = vec![f32::NAN; 3];
        assert!(bits_equal(&x, &x.clone()));
        let y = vec![f32::from_bits(0x7fc0_0001); 3];
        assert!(!bits_equal(&x, &y));
    }
}
