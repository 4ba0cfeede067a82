//! KL(p_r ‖ p_c) of the two softmaxes from per-row sums, in the form that is accurate for the
//! row at hand.
//!
//! With Δ = r − c, KL = Σ p_r Δ + ln Σ p_r e^(−Δ). KL is unchanged by adding a constant to c,
//! so Δ is first centred by its plain mean (`offset`), which removes any common shift.
//! Precise form (|Δ| moderate): with g = expm1(−Δ), S = Σ p_r g,
//!   KL = Σ p_r (Δ + g) − (S − ln1p S),
//! both parts O(Δ²) with no O(1) terms cancelling, so even f32-noise KLs (~1e-13) keep ~1e-9
//! relative accuracy. Log-sum-exp form (large |Δ|, where e^(−Δ) could overflow or S round to
//! −1): KL = Σ p_r Δ − lse(r) + lse(c), accurate to ~1e-15 absolute.

/// Largest max|Δ| + |offset| for the precise form: keeps e^(±Δ) ≤ e^30 (no overflow) and
/// 1 + S ≥ e^-30 ≫ f64 rounding of S.
pub(crate) const PRECISE_MAX_DELTA: f64 = 30.0;

/// Precise form from Σe, Σe·(g + Δ), Σe·g with e = exp(r − shift) (p = e/Σe).
pub(crate) fn kl_precise(sum_exp: f64, sum_exp_excess: f64, sum_exp_m1: f64) -> f64 {
    let s = sum_exp_m1 / sum_exp;
    clamp(sum_exp_excess / sum_exp - (s - s.ln_1p()))
}

/// Log-sum-exp form from Σe per side (shifts m) and t = Σe_r·(r − c):
/// KL = t/s_r + (m_c − m_r) + ln(s_c/s_r).
pub(crate) fn kl_lse(t: f64, s_ref: f64, s_cand: f64, shift_ref: f64, shift_cand: f64) -> f64 {
    clamp(t / s_ref + ((shift_cand - shift_ref) + (s_cand / s_ref).ln()))
}

/// KL ≥ 0 (Gibbs); the terms that nearly cancel when the rows (almost) agree can round a few
/// ULP below 0, which would read as nonsense downstream.
fn clamp(kl: f64) -> f64 {
    kl.max(0.0)
}

/// Scalar KL over the ids `keep` admits (rows holding NaN/Inf; std exp, not the kernels).
pub(crate) fn kl_scalar(r: &[f32], c: &[f32], keep: impl Fn(usize) -> bool) -> f64 {
    let ids = || {
        (0..r.len())
            .filter(|&i| keep(i))
            .map(|i| (f64::from(r[i]), f64::from(c[i])))
    };
    let (mut n, mut shift_ref, mut shift_cand, mut sum_delta, mut max_abs) =
        (0usize, f64::MIN, f64::MIN, 0.0, 0.0f64);
    for (x, y) in ids() {
        n += 1;
        shift_ref = shift_ref.max(x);
        shift_cand = shift_cand.max(y);
        sum_delta += x - y;
        max_abs = max_abs.max((x - y).abs());
    }
    if n == 0 {
        return 0.0;
    }
    let offset = sum_delta / n as f64;
    if max_abs + offset.abs() <= PRECISE_MAX_DELTA {
        let (mut se, mut sx, mut sg) = (0.0, 0.0, 0.0);
        for (x, y) in ids() {
            let e = (x - shift_ref).exp();
            let d = (y - x) + offset;
            let g = d.exp_m1();
            se += e;
            sx += e * (g - d);
            sg += e * g;
        }
        kl_precise(se, sx, sg)
    } else {
        let (mut sr, mut sc, mut t) = (0.0, 0.0, 0.0);
        for (x, y) in ids() {
            let e = (x - shift_ref).exp();
            sr += e;
            sc += (y - shift_cand).exp();
            t += e * (x - y);
        }
        kl_lse(t, sr, sc, shift_ref, shift_cand)
    }
}
