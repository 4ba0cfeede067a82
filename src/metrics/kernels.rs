//! The hot loops over a pair of rows, written so LLVM vectorises them: fixed-width lane
//! accumulators (so the summation order, hence every result bit, is the same whatever vector
//! width a build or CPU uses), selects instead of branches, and a per-chunk "could anything
//! enter the top-5?" test so the scalar top-k insertion runs only on rare chunks.
//!
//! Each kernel has `#[target_feature]` clones (AVX-512, AVX2) picked at run time; they all
//! compile the same generic body, so results are bit-identical across them.

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
            #[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw")]
            fn avx512($($arg: $ty),*) -> $ret {
                $body($($arg),*)
            }
            #[target_feature(enable = "avx2")]
            fn avx2($($arg: $ty),*) -> $ret {
                $body($($arg),*)
            }
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512bw")
            {
                // SAFETY: the features the clone is compiled for were just detected.
                return unsafe { avx512($($arg),*) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: as above.
                return unsafe { avx2($($arg),*) };
            }
        }
        $body($($arg),*)
    }};
}

/// Pass 1 over a differing pair: |Δ| statistics and both top-5 lists.
pub(crate) struct DiffPass {
    /// Σ|r − c| (NaN/Inf here ⟺ a non-finite value on either side).
    pub sum_abs: f64,
    pub max_abs: f64,
    /// Lowest id reaching `max_abs`.
    pub max_abs_id: usize,
    pub top_ref: TopK,
    pub top_cand: TopK,
}

/// Pass 2 sums with shifts m_r, m_c: Σe_r, Σe_c, Σe_r·(r − c), e = exp(x − m).
pub(crate) struct ExpPass {
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

/// One pass over a row known to equal its partner: top-5 and "any non-finite value?".
pub(crate) fn scan_identical(r: &[f32]) -> (TopK, bool) {
    dispatch!(scan_identical_body(r: &[f32]) -> (TopK, bool))
}

pub(crate) fn diff_pass(r: &[f32], c: &[f32]) -> DiffPass {
    debug_assert_eq!(r.len(), c.len());
    dispatch!(diff_pass_body(r: &[f32], c: &[f32]) -> DiffPass)
}

pub(crate) fn exp_pass(r: &[f32], c: &[f32], shift_ref: f64, shift_cand: f64) -> ExpPass {
    debug_assert_eq!(r.len(), c.len());
    dispatch!(exp_pass_body(r: &[f32], c: &[f32], shift_ref: f64, shift_cand: f64) -> ExpPass)
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
fn scan_identical_body(r: &[f32]) -> (TopK, bool) {
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
    // −1 so that the first |Δ| (≥ 0) of every lane records its index.
    let mut best = [-1.0f64; LANES];
    let mut best_id = [0u64; LANES];
    let mut top_ref = TopK::default();
    let mut top_cand = TopK::default();
    let n = r.len();
    let full = n / CHUNK * CHUNK;
    for base in (0..full).step_by(CHUNK) {
        let rc: &[f32; CHUNK] = r[base..base + CHUNK].try_into().expect("exact chunk");
        let cc: &[f32; CHUNK] = c[base..base + CHUNK].try_into().expect("exact chunk");
        for g in 0..CHUNK / LANES {
            for l in 0..LANES {
                let i = g * LANES + l;
                let d = (f64::from(rc[i]) - f64::from(cc[i])).abs();
                sum[l] += d;
                let gt = d > best[l];
                best[l] = if gt { d } else { best[l] };
                best_id[l] = if gt { (base + i) as u64 } else { best_id[l] };
            }
        }
        if !top_ref.is_full() || any_above(rc, top_ref.threshold()) {
            top_ref.offer_all(rc, base);
        }
        if !top_cand.is_full() || any_above(cc, top_cand.threshold()) {
            top_cand.offer_all(cc, base);
        }
    }
    for i in full..n {
        let l = i % LANES;
        let d = (f64::from(r[i]) - f64::from(c[i])).abs();
        sum[l] += d;
        if d > best[l] {
            best[l] = d;
            best_id[l] = i as u64;
        }
    }
    top_ref.offer_all(&r[full..], full);
    top_cand.offer_all(&c[full..], full);

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
        max_abs: max_abs.max(0.0),
        max_abs_id: max_abs_id as usize,
        top_ref,
        top_cand,
    }
}

#[inline(always)]
fn exp_pass_body(r: &[f32], c: &[f32], shift_ref: f64, shift_cand: f64) -> ExpPass {
    let mut s_ref = [0.0f64; LANES];
    let mut s_cand = [0.0f64; LANES];
    let mut t = [0.0f64; LANES];
    let mut rc = r.chunks_exact(LANES);
    let mut cc = c.chunks_exact(LANES);
    for (a, b) in (&mut rc).zip(&mut cc) {
        for l in 0..LANES {
            let x = f64::from(a[l]);
            let y = f64::from(b[l]);
            let ex = fastexp::exp(x - shift_ref);
            let ey = fastexp::exp(y - shift_cand);
            s_ref[l] += ex;
            s_cand[l] += ey;
            t[l] += ex * (x - y);
        }
    }
    for (l, (&a, &b)) in rc.remainder().iter().zip(cc.remainder()).enumerate() {
        let x = f64::from(a);
        let y = f64::from(b);
        let ex = fastexp::exp(x - shift_ref);
        s_ref[l] += ex;
        s_cand[l] += fastexp::exp(y - shift_cand);
        t[l] += ex * (x - y);
    }
    ExpPass {
        sum_exp_ref: reduce(s_ref),
        sum_exp_cand: reduce(s_cand),
        weighted_diff: reduce(t),
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
        assert_eq!((a.top_ref, a.top_cand), (b.top_ref, b.top_cand));
        let e = exp_pass(&r, &c, 170.0, 170.0);
        let f = exp_pass_body(&r, &c, 170.0, 170.0);
        assert_eq!(e.sum_exp_ref.to_bits(), f.sum_exp_ref.to_bits());
        assert_eq!(e.weighted_diff.to_bits(), f.weighted_diff.to_bits());
        assert_eq!(scan_identical(&r), scan_identical_body(&r));
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
        assert_eq!(p.top_ref, t);
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
