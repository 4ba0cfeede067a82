//! A branch-free f64 exp that compilers vectorise (std's `exp` is an opaque libm call).
//!
//! exp(x) = 2^k · exp(r), k = round(x / ln 2), r = x − k·ln 2 (Cody–Waite split of ln 2, so r
//! is exact to ~2^-60), |r| ≤ ln2/2, exp(r) by its degree-12 Taylor polynomial (truncation
//! < 2.5e-16 relative). Only mul/add are used, never `mul_add`: the result is then bit-identical
//! on every instruction set the kernels are compiled for.

const LOG2_E: f64 = std::f64::consts::LOG2_E;
// ln 2 split so that k·LN2_HI is exact for |k| < 2^11.
const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
// Adding 1.5·2^52 rounds to an integer and leaves it in the low mantissa bits.
const ROUND_SHIFT: f64 = 6_755_399_441_055_744.0;
/// Below this the result would be subnormal: it is flushed to 0 (the kernels only use exp for
/// softmax terms, where anything < 1e-307 relative to the largest term (= 1) is irrelevant).
pub const EXP_FLUSH_BELOW: f64 = -708.0;
/// Above this exp overflows to +inf.
const EXP_OVERFLOW_ABOVE: f64 = 709.782_712_893_384;

// 1/n! for n = 2..=12 (1/0! and 1/1! are the literal 1s in the Horner chain).
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

/// exp(x) to ~4e-16 relative on [−708, 709.78]; 0 below −708, +inf above, NaN stays NaN.
#[inline(always)]
pub fn exp(x: f64) -> f64 {
    // Clamp first so the integer trick below never sees an out-of-range k; the selects at the
    // end restore the special results (compiled to blends, no branches).
    let xc = x.clamp(EXP_FLUSH_BELOW, EXP_OVERFLOW_ABOVE);
    let shifted = xc * LOG2_E + ROUND_SHIFT;
    let k = shifted - ROUND_SHIFT;
    let r = (xc - k * LN2_HI) - k * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (C2
                + r * (C3
                    + r * (C4
                        + r * (C5
                            + r * (C6
                                + r * (C7
                                    + r * (C8 + r * (C9 + r * (C10 + r * (C11 + r * C12)))))))))));
    // 2^(k−1) from the integer in shifted's low bits (k−1+1023 ∈ [1, 2046] after the clamp),
    // times 2 (exact) so that k = 1024 near the overflow limit still works.
    let scale = f64::from_bits((shifted.to_bits().wrapping_add(1022)) << 52);
    let y = (p * 2.0) * scale;
    let y = if x < EXP_FLUSH_BELOW { 0.0 } else { y };
    let y = if x > EXP_OVERFLOW_ABOVE { f64::INFINITY } else { y };
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
        assert!(worst.0 < 1e-15, "worst relative error {:e} at x = {}", worst.0, worst.1);
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
