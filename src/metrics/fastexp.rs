//! Branch-free f64 exp and expm1 that compilers vectorise (std's are opaque libm calls).
//!
//! exp(x) = 2^k · (1 + expm1(r)), k = round(x / ln 2), r = x − k·ln 2 (Cody–Waite split of
//! ln 2, so r is exact to ~2^-60), |r| ≤ ln2/2, expm1(r) by its degree-13 Taylor polynomial
//! (truncation < 2e-17 relative), which also makes expm1 accurate near 0. The kernel variants
//! use explicit `mul_add` (exactly rounded, so results do not depend on the instruction set;
//! the kernels are compiled with FMA enabled so it is one instruction).

const LOG2_E: f64 = std::f64::consts::LOG2_E;
// ln 2 split so that k·LN2_HI is exact for |k| < 2^11.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000); // 6.93147180369123816490e-1
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76); // 1.90821492927058770002e-10
                                                           // Adding 1.5·2^52 rounds to an integer and leaves it in the low mantissa bits.
const ROUND_SHIFT: f64 = 6_755_399_441_055_744.0;
/// Below this the result would be subnormal: it is flushed to 0 (the kernels only use exp for
/// softmax terms, where anything < 1e-307 relative to the largest term (= 1) is irrelevant).
pub const EXP_FLUSH_BELOW: f64 = -708.0;
/// Above this exp_m1 is exp (and 2^k in `core` cannot overflow).
const EXP_M1_DIRECT_ABOVE: f64 = 700.0;
/// Above this exp overflows to +inf.
const EXP_OVERFLOW_ABOVE: f64 = 709.782_712_893_384;

// 1/n! for n = 2..=13 (1/1! is the literal 1 in the Horner chain).
const C2: f64 = 1.0 / 2.0;
const C3: f64 = 1.0 / 6.0;
const C4: f64 = 1.0 / 24.0;
const C5: f64 = 1.0 / 120.0;
const C6: f64 = 1.0 / 720.0;
const C7: f64 = 1.0 / 5_040.0;
const C8: f64 = 1.0 / 40_320.0;
const C9: f64 = 1.0 / 362_880.0;
const C10: f64 = 1.0 / 3_628_800.0;
const C11: f64 = 1.0 / 39_916_800.0;
const C12: f64 = 1.0 / 479_001_600.0;
const C13: f64 = 1.0 / 6_227_020_800.0;

/// exp(x) to ≤ 3e-16 relative on [−708, 709.78]; 0 below −708, +inf above, NaN stays NaN.
#[inline(always)]
pub fn exp(x: f64) -> f64 {
    let (q, half_two_k) = reduce(x);
    finish(x, ((1.0 + q) * 2.0) * half_two_k)
}

/// exp(x) − 1 to ≤ 3e-16 relative, also near 0 where exp(x) − 1 would cancel; −1 below −708.
#[inline(always)]
pub fn exp_m1(x: f64) -> f64 {
    let y = exp_m1_moderate(x.clamp(EXP_FLUSH_BELOW, EXP_M1_DIRECT_ABOVE));
    // Beyond the clamp exp(x) − 1 rounds to exp(x) (above) or to −1 (below).
    let y = if x > EXP_M1_DIRECT_ABOVE { exp(x) } else { y };
    let y = if x < EXP_FLUSH_BELOW { -1.0 } else { y };
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// [`exp`] for x ≤ 0 only (softmax terms x − max), without the checks that range makes
/// unnecessary; bit-identical to [`exp`] there.
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f64) -> f64 {
    debug_assert!(x <= 0.0 || x.is_nan());
    let (q, two_k) = core(x.max(EXP_FLUSH_BELOW));
    let y = (1.0 + q) * two_k;
    if x < EXP_FLUSH_BELOW {
        0.0
    } else {
        y
    }
}

/// [`exp_m1`] for |x| ≤ 700 only, without checks; bit-identical to [`exp_m1`] there.
/// 2^k·expm1(r) + (2^k − 1) is exactly expm1(r) = expm1(x) for k = 0 (no cancellation near
/// 0) and at worst ~2.4× less accurate than exp elsewhere.
#[inline(always)]
pub(crate) fn exp_m1_moderate(x: f64) -> f64 {
    debug_assert!(x.abs() <= EXP_M1_DIRECT_ABOVE.max(-EXP_FLUSH_BELOW) || x.is_nan());
    let (q, two_k) = core(x);
    two_k.mul_add(q, two_k - 1.0)
}

/// expm1(r) and 2^k for k = round(x / ln 2) ∈ [−1021, 1010] (x ∈ [−708, 700]).
#[inline(always)]
fn core(x: f64) -> (f64, f64) {
    let (q, shifted) = reduce_core(x);
    (
        q,
        f64::from_bits(shifted.to_bits().wrapping_add(1023) << 52),
    )
}

/// expm1(r), r = x − k·ln 2, and x·log2(e) + 1.5·2^52, whose low mantissa bits hold k.
#[inline(always)]
fn reduce_core(x: f64) -> (f64, f64) {
    let shifted = x.mul_add(LOG2_E, ROUND_SHIFT);
    let k = shifted - ROUND_SHIFT;
    let r = (-k).mul_add(LN2_LO, (-k).mul_add(LN2_HI, x));
    (expm1_poly(r), shifted)
}

/// expm1(r) for |r| ≤ ln2/2: degree-13 Taylor, r + r²·Q(r), Q evaluated by Estrin's scheme
/// (dependency depth 4 instead of Horner's 12: the kernels are latency-bound otherwise).
#[inline(always)]
fn expm1_poly(r: f64) -> f64 {
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let a0 = C3.mul_add(r, C2);
    let a1 = C5.mul_add(r, C4);
    let a2 = C7.mul_add(r, C6);
    let a3 = C9.mul_add(r, C8);
    let a4 = C11.mul_add(r, C10);
    let a5 = C13.mul_add(r, C12);
    let b0 = a1.mul_add(r2, a0);
    let b1 = a3.mul_add(r2, a2);
    let b2 = a5.mul_add(r2, a4);
    let q = b2.mul_add(r8, b1.mul_add(r4, b0));
    r2.mul_add(q, r)
}

/// Range reduction over exp's whole range: expm1(r) and 2^(k−1) (callers multiply by 2 first,
/// exactly, so that k = 1024 near the overflow limit does not overflow).
#[inline(always)]
fn reduce(x: f64) -> (f64, f64) {
    // Clamp first so the integer trick never sees an out-of-range k; `finish` restores the
    // special results (compiled to blends, no branches).
    let (q, shifted) = reduce_core(x.clamp(EXP_FLUSH_BELOW, EXP_OVERFLOW_ABOVE));
    // k−1+1023 ∈ [1, 2046] after the clamp.
    (
        q,
        f64::from_bits((shifted.to_bits().wrapping_add(1022)) << 52),
    )
}

/// exp's special results: 0 below the flush limit, +inf above the overflow limit, NaN → NaN.
#[inline(always)]
fn finish(x: f64, y: f64) -> f64 {
    let y = if x < EXP_FLUSH_BELOW { 0.0 } else { y };
    let y = if x > EXP_OVERFLOW_ABOVE {
        f64::INFINITY
    } else {
        y
    };
    if x.is_nan() {
        x
    } else {
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel_err(x: f64) -> f64 {
        let want = x.exp();
        ((exp(x) - want) / want).abs()
    }

    #[test]
    fn matches_std_exp_over_the_whole_range() {
        let mut worst = (0.0f64, 0.0f64);
        let n = 2_000_000;
        for i in 0..=n {
            let x = EXP_FLUSH_BELOW + (EXP_OVERFLOW_ABOVE - EXP_FLUSH_BELOW) * i as f64 / n as f64;
            let e = rel_err(x);
            if e > worst.0 {
                worst = (e, x);
            }
        }
        assert!(
            worst.0 < 1e-15,
            "worst relative error {:e} at x = {}",
            worst.0,
            worst.1
        );
    }

    #[test]
    fn softmax_range_is_accurate() {
        // The kernels call exp(x − max) ∈ (−∞, 0]: check densely near 0 and at the
        // reduction's k boundaries (x = (k ± 0.5)·ln 2).
        let mut worst = 0.0f64;
        for i in 0..=1_000_000 {
            let x = -60.0 * i as f64 / 1e6;
            worst = worst.max(rel_err(x));
        }
        for k in -1000..1000 {
            for d in [-0.5, 0.5] {
                let x = (k as f64 + d) * std::f64::consts::LN_2;
                if (EXP_FLUSH_BELOW..=EXP_OVERFLOW_ABOVE).contains(&x) {
                    worst = worst.max(rel_err(x));
                }
            }
        }
        assert!(worst < 1e-15, "worst relative error {worst:e}");
    }

    #[test]
    fn exp_m1_is_accurate_near_zero_and_far() {
        let mut worst = (0.0f64, 0.0f64);
        let mut check = |x: f64| {
            let want = x.exp_m1();
            let e = ((exp_m1(x) - want) / want).abs();
            if e > worst.0 {
                worst = (e, x);
            }
        };
        for i in 1..=200_000 {
            let t = i as f64 / 200_000.0;
            for x in [t * 1e-12, t * 1e-6, t * 0.35, t * 0.7, t * 40.0, t * 700.0] {
                check(x);
                check(-x);
            }
        }
        assert!(
            worst.0 < 1e-15,
            "worst relative error {:e} at x = {}",
            worst.0,
            worst.1
        );
        assert_eq!(exp_m1(0.0), 0.0);
        assert_eq!(exp_m1(-800.0), -1.0);
        assert_eq!(exp_m1(800.0), f64::INFINITY);
        assert!(exp_m1(f64::NAN).is_nan());
    }

    #[test]
    fn kernel_variants_are_bit_identical_in_their_range() {
        for i in 0..=1_000_000 {
            let t = i as f64 / 1e6;
            let x = -750.0 * t * t;
            assert_eq!(exp_nonpositive(x).to_bits(), exp(x).to_bits(), "x = {x}");
            for y in [700.0 * (2.0 * t - 1.0), 0.5 * (2.0 * t - 1.0)] {
                assert_eq!(exp_m1_moderate(y).to_bits(), exp_m1(y).to_bits(), "x = {y}");
            }
        }
    }

    #[test]
    fn special_values() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-0.0), 1.0);
        assert_eq!(exp(-709.0), 0.0);
        assert_eq!(exp(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp(710.0), f64::INFINITY);
        assert_eq!(exp(f64::INFINITY), f64::INFINITY);
        assert!(exp(f64::NAN).is_nan());
        // The k = 1024 edge just below overflow stays finite and accurate.
        assert!(rel_err(709.7) < 1e-15);
        assert!(exp(709.78).is_finite());
    }
}
