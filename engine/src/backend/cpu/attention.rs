//! Causal attention of one query head over a sequence's cached keys and values.
//!
//! Both implementations visit keys in increasing position and never depend on how many
//! queries a forward step holds, so the decode step at position p and row p of a prefill give
//! identical bits.
//! - `naive`: all scores, max, exp-sum, normalised probabilities (rounded when bf16), P·V.
//! - `flash`: tiles of [`FLASH_TILE`] keys at fixed absolute positions with an online softmax
//!   (running max and sum, rescaled per tile); probabilities are the unnormalised
//!   exp(s − running max), rounded when bf16; the output is divided by the sum at the end.

use super::kernels::{dot, exp_f32, round_bf16, round_slice};

pub const FLASH_TILE: usize = 64;

/// Keys/values of one sequence and layer: `n` positions of `kv_dim` floats each.
pub struct KvView<'a> {
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub kv_dim: usize,
    /// Offset of this head's group inside a position's `kv_dim` floats.
    pub head_off: usize,
}

impl KvView<'_> {
    #[inline(always)]
    fn key(&self, j: usize, hd: usize) -> &[f32] {
        let o = j * self.kv_dim + self.head_off;
        &self.k[o..o + hd]
    }
    #[inline(always)]
    fn value(&self, j: usize, hd: usize) -> &[f32] {
        let o = j * self.kv_dim + self.head_off;
        &self.v[o..o + hd]
    }
}

/// `out` ← softmax(q·Kᵀ·scale) · V over positions 0..n.
pub fn naive(
    q: &[f32],
    kv: &KvView<'_>,
    n: usize,
    scale: f32,
    out: &mut [f32],
    bf16: bool,
    scores: &mut Vec<f32>,
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F is present; the same code, compiled for wider registers.
        return unsafe { naive_avx512(q, kv, n, scale, out, bf16, scores) };
    }
    naive_impl(q, kv, n, scale, out, bf16, scores)
}

/// Tiled attention with an online softmax; same contract as [`naive`].
pub fn flash(q: &[f32], kv: &KvView<'_>, n: usize, scale: f32, out: &mut [f32], bf16: bool) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F is present; the same code, compiled for wider registers.
        return unsafe { flash_avx512(q, kv, n, scale, out, bf16) };
    }
    flash_impl(q, kv, n, scale, out, bf16)
}

// The compiler may not reorder floating-point operations, so these builds give the same bits
// as the portable ones; only the register width differs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2")]
unsafe fn naive_avx512(
    q: &[f32],
    kv: &KvView<'_>,
    n: usize,
    scale: f32,
    out: &mut [f32],
    bf16: bool,
    scores: &mut Vec<f32>,
) {
    naive_impl(q, kv, n, scale, out, bf16, scores)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2")]
unsafe fn flash_avx512(
    q: &[f32],
    kv: &KvView<'_>,
    n: usize,
    scale: f32,
    out: &mut [f32],
    bf16: bool,
) {
    flash_impl(q, kv, n, scale, out, bf16)
}

#[inline(always)]
fn naive_impl(
    q: &[f32],
    kv: &KvView<'_>,
    n: usize,
    scale: f32,
    out: &mut [f32],
    bf16: bool,
    scores: &mut Vec<f32>,
) {
    let hd = q.len();
    scores.clear();
    let mut m = f32::NEG_INFINITY;
    for j in 0..n {
        let s = dot(q, kv.key(j, hd)) * scale;
        m = m.max(s);
        scores.push(s);
    }
    for s in scores.iter_mut() {
        *s = exp_f32(*s - m);
    }
    // The sum in increasing position, one fixed order.
    let mut l = 0f32;
    for s in scores.iter() {
        l += *s;
    }
    for s in scores.iter_mut() {
        *s /= l;
        if bf16 {
            *s = round_bf16(*s);
        }
    }
    out.fill(0.0);
    for (j, p) in scores.iter().enumerate() {
        for (o, v) in out.iter_mut().zip(kv.value(j, hd)) {
            *o += p * v;
        }
    }
    round_slice(out, bf16);
}

#[inline(always)]
fn flash_impl(q: &[f32], kv: &KvView<'_>, n: usize, scale: f32, out: &mut [f32], bf16: bool) {
    let hd = q.len();
    let mut m = f32::NEG_INFINITY;
    let mut l = 0f32;
    out.fill(0.0);
    let mut s = [0f32; FLASH_TILE];
    let mut t0 = 0;
    while t0 < n {
        let t1 = (t0 + FLASH_TILE).min(n);
        let len = t1 - t0;
        let mut m_new = m;
        for j in t0..t1 {
            s[j - t0] = dot(q, kv.key(j, hd)) * scale;
            m_new = m_new.max(s[j - t0]);
        }
        let alpha = if m == f32::NEG_INFINITY {
            0.0
        } else {
            exp_f32(m - m_new)
        };
        l *= alpha;
        for o in out.iter_mut() {
            *o *= alpha;
        }
        for p in s[..len].iter_mut() {
            *p = exp_f32(*p - m_new);
            if bf16 {
                *p = round_bf16(*p);
            }
        }
        for (jj, p) in s[..len].iter().enumerate() {
            l += *p;
            for (o, v) in out.iter_mut().zip(kv.value(t0 + jj, hd)) {
                *o += p * v;
            }
        }
        m = m_new;
        t0 = t1;
    }
    for o in out.iter_mut() {
        *o /= l;
    }
    round_slice(out, bf16);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f64_attention(q: &[f32], k: &[f32], v: &[f32], n: usize, hd: usize) -> Vec<f64> {
        let scale = 1.0 / (hd as f64).sqrt();
        let s: Vec<f64> = (0..n)
            .map(|j| {
                (0..hd)
                    .map(|d| q[d] as f64 * k[j * hd + d] as f64)
                    .sum::<f64>()
                    * scale
            })
            .collect();
        let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
        let l: f64 = e.iter().sum();
        (0..hd)
            .map(|d| (0..n).map(|j| e[j] / l * v[j * hd + d] as f64).sum())
            .collect()
    }

    #[test]
    fn naive_and_flash_match_f64_and_mask_future_keys() {
        let hd = 16;
        let total = 150; // spans three flash tiles
        let val = |i: usize| ((i * 7919 % 1000) as f32 / 500.0) - 1.0;
        let q: Vec<f32> = (0..hd).map(|i| val(i + 3)).collect();
        let k: Vec<f32> = (0..total * hd).map(|i| val(i * 3 + 1)).collect();
        let v: Vec<f32> = (0..total * hd).map(|i| val(i * 5 + 2)).collect();
        let kv = KvView {
            k: &k,
            v: &v,
            kv_dim: hd,
            head_off: 0,
        };
        for n in [1, 63, 64, 65, 150] {
            let want = f64_attention(&q, &k, &v, n, hd);
            let (mut a, mut b) = (vec![0f32; hd], vec![0f32; hd]);
            naive(
                &q,
                &kv,
                n,
                1.0 / (hd as f32).sqrt(),
                &mut a,
                false,
                &mut Vec::new(),
            );
            flash(&q, &kv, n, 1.0 / (hd as f32).sqrt(), &mut b, false);
            for d in 0..hd {
                assert!((a[d] as f64 - want[d]).abs() < 1e-5, "naive n={n}");
                assert!((b[d] as f64 - want[d]).abs() < 1e-5, "flash n={n}");
            }
        }
        // Keys beyond n never influence the result (causal mask): poison them.
        let mut k2 = k.clone();
        for x in &mut k2[100 * hd..] {
            *x = f32::NAN;
        }
        let kv2 = KvView {
            k: &k2,
            v: &v,
            kv_dim: hd,
            head_off: 0,
        };
        let (mut a, mut b) = (vec![0f32; hd], vec![0f32; hd]);
        naive(&q, &kv, 100, 0.25, &mut a, true, &mut Vec::new());
        naive(&q, &kv2, 100, 0.25, &mut b, true, &mut Vec::new());
        assert_eq!(a, b);
        flash(&q, &kv, 100, 0.25, &mut a, true);
        flash(&q, &kv2, 100, 0.25, &mut b, true);
        assert_eq!(a, b);
        // The dispatched SIMD builds give the portable builds' bits.
        for bf16 in [false, true] {
            let (mut a, mut b) = (vec![0f32; hd], vec![0f32; hd]);
            flash(&q, &kv, 150, 0.25, &mut a, bf16);
            flash_impl(&q, &kv, 150, 0.25, &mut b, bf16);
            assert_eq!(
                a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                b.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
            naive(&q, &kv, 150, 0.25, &mut a, bf16, &mut Vec::new());
            naive_impl(&q, &kv, 150, 0.25, &mut b, bf16, &mut Vec::new());
            assert_eq!(
                a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                b.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
        }
    }
}
