//! CPU kernels with one fixed reduction order.
//!
//! Every dot product accumulates in 16 lanes (lane `l` takes elements `k ≡ l mod 16`, in
//! increasing `k`), then folds the lanes by a fixed tree (8, 4, 2, 1). Multiply and add are
//! separate operations (Rust never contracts them into FMA), so the bits do not depend on the
//! instruction set: the AVX-512/AVX2 builds of a kernel below are the same code compiled for
//! wider registers and give identical results. A row's result never depends on how many rows
//! are computed together, on tiling, or on the thread count.

use rayon::prelude::*;

pub const LANES: usize = 16;

/// Round-to-nearest-even to bf16, returned as the f32 it represents (NaN stays NaN).
#[inline(always)]
pub fn round_bf16(x: f32) -> f32 {
    let b = x.to_bits();
    if x.is_nan() {
        return f32::from_bits((b | 0x0040_0000) & 0xffff_0000);
    }
    let r = b.wrapping_add(0x7fff + ((b >> 16) & 1));
    f32::from_bits(r & 0xffff_0000)
}

#[inline(always)]
pub fn bf16_bits_to_f32(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// e^x in f32 with plain f32 arithmetic (no libm, no FMA): the same bits on every CPU and in
/// every SIMD build, and vectorisable. Cody–Waite reduction x = n·ln2 + r, |r| ≤ ln2/2, Cephes'
/// degree-6 polynomial, then 2^n from the exponent bits. Max error ~2 ULP; flushes to 0 below
/// −87.3 (no subnormal results), +∞ above 88.7, NaN stays NaN.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2^23 rounds to the nearest integer (ties to even).
    const ROUND: f32 = 12_582_912.0;
    let xc = x.clamp(-87.3, 88.7);
    let n = (xc * LOG2E + ROUND) - ROUND;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let p = ((((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 1.666_666_5e-1)
        * r
        + 5e-1)
        * r)
        * r
        + r
        + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    let y = p * scale;
    if x.is_nan() {
        x
    } else if x < -87.3 {
        0.0
    } else if x > 88.7 {
        f32::INFINITY
    } else {
        y
    }
}

/// Rounds a slice in place when `bf16` is set (DESIGN.md's rounding points).
#[inline]
pub fn round_slice(xs: &mut [f32], bf16: bool) {
    if bf16 {
        for x in xs {
            *x = round_bf16(*x);
        }
    }
}

#[inline(always)]
pub(super) fn fold(mut v: [f32; LANES]) -> f32 {
    let mut w = LANES / 2;
    while w > 0 {
        for i in 0..w {
            v[i] += v[i + w];
        }
        w /= 2;
    }
    v[0]
}

/// An element type of a weight matrix.
pub trait WeightElem: Copy + Send + Sync + 'static {
    fn to_f32(self) -> f32;
    /// Loads 16 consecutive weights as f32 lanes.
    ///
    /// # Safety
    /// `p` must point at 16 readable elements and the CPU must support AVX-512F.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load16(p: *const Self) -> std::arch::x86_64::__m512;
}
impl WeightElem for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load16(p: *const f32) -> std::arch::x86_64::__m512 {
        std::arch::x86_64::_mm512_loadu_ps(p)
    }
}
/// bf16 stored as its bit pattern.
impl WeightElem for u16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        bf16_bits_to_f32(self)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load16(p: *const u16) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        // bf16 → f32 is exact: widen to 32 bits and shift into the high half.
        let h = _mm256_loadu_si256(p as *const __m256i);
        _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))
    }
}

/// Dot product in the fixed order.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let out = dot_tile::<1, 1, f32>([a], [b]);
    out[0][0]
}

/// R activation rows against C weight rows: R×C dot products, each in the fixed order.
#[inline(always)]
fn dot_tile<const R: usize, const C: usize, W: WeightElem>(
    x: [&[f32]; R],
    w: [&[W]; C],
) -> [[f32; C]; R] {
    let k = w[0].len();
    let mut acc = [[[0f32; LANES]; C]; R];
    let full = k / LANES * LANES;
    let mut base = 0;
    while base < full {
        let mut wv = [[0f32; LANES]; C];
        for c in 0..C {
            let ws = &w[c][base..base + LANES];
            for l in 0..LANES {
                wv[c][l] = ws[l].to_f32();
            }
        }
        for r in 0..R {
            let xs = &x[r][base..base + LANES];
            for c in 0..C {
                for l in 0..LANES {
                    acc[r][c][l] += xs[l] * wv[c][l];
                }
            }
        }
        base += LANES;
    }
    for i in full..k {
        let l = i - full;
        for r in 0..R {
            for c in 0..C {
                acc[r][c][l] += x[r][i] * w[c][i].to_f32();
            }
        }
    }
    let mut out = [[0f32; C]; R];
    for r in 0..R {
        for c in 0..C {
            out[r][c] = fold(acc[r][c]);
        }
    }
    out
}

/// Rows of weights handled by one task: large enough to amortise scheduling, small enough to
/// spread a 576-row matrix over the cores.
const COLS_PER_TASK: usize = 32;

struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// out[n × m] = x[n × k] · w[m × k]ᵀ, in the fixed order, parallel over weight rows.
pub fn matmul<W: WeightElem>(x: &[f32], n: usize, w: &[W], m: usize, k: usize, out: &mut [f32]) {
    assert!(x.len() >= n * k && w.len() == m * k && out.len() >= n * m);
    let ptr = SendPtr(out.as_mut_ptr());
    let tasks = m.div_ceil(COLS_PER_TASK);
    (0..tasks).into_par_iter().for_each(|t| {
        let j0 = t * COLS_PER_TASK;
        let j1 = (j0 + COLS_PER_TASK).min(m);
        let p = &ptr;
        block_dispatch(
            x,
            n,
            &w[j0 * k..j1 * k],
            j1 - j0,
            k,
            &mut |i, j, v| unsafe {
                // Each task writes only its own columns j0..j1: the writes are disjoint.
                *p.0.add(i * m + j0 + j) = v;
            },
        );
    });
}

pub(super) type Sink<'a> = dyn FnMut(usize, usize, f32) + 'a;

fn block_dispatch<W: WeightElem>(
    x: &[f32],
    n: usize,
    w: &[W],
    m: usize,
    k: usize,
    sink: &mut Sink<'_>,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked above); slices are bounds-checked
            // by the caller's layout (x: n×k, w: m×k).
            return unsafe { super::avx512::block(x, n, w, m, k, sink) };
        }
    }
    block_generic(x, n, w, m, k, sink)
}

/// The tiling: 4 weight rows at a time (each loaded once per 16 k), against 2 activation rows.
#[inline(always)]
pub(super) fn block_generic<W: WeightElem>(
    x: &[f32],
    n: usize,
    w: &[W],
    m: usize,
    k: usize,
    sink: &mut Sink<'_>,
) {
    let xr = |i: usize| &x[i * k..(i + 1) * k];
    let wr = |j: usize| &w[j * k..(j + 1) * k];
    let mut j = 0;
    while j + 4 <= m {
        let ws = [wr(j), wr(j + 1), wr(j + 2), wr(j + 3)];
        let mut i = 0;
        while i + 2 <= n {
            let o = dot_tile::<2, 4, W>([xr(i), xr(i + 1)], ws);
            for (r, row) in o.iter().enumerate() {
                for (c, v) in row.iter().enumerate() {
                    sink(i + r, j + c, *v);
                }
            }
            i += 2;
        }
        if i < n {
            let o = dot_tile::<1, 4, W>([xr(i)], ws);
            for (c, v) in o[0].iter().enumerate() {
                sink(i, j + c, *v);
            }
        }
        j += 4;
    }
    while j < m {
        for i in 0..n {
            let o = dot_tile::<1, 1, W>([xr(i)], [wr(j)]);
            sink(i, j, o[0][0]);
        }
        j += 1;
    }
}

/// RMSNorm of each row: y = (x · 1/sqrt(mean(x²) + eps)) · w, then rounded when bf16.
pub fn rmsnorm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32], bf16: bool) {
    let d = w.len();
    out.par_chunks_mut(d)
        .zip(x.par_chunks(d))
        .for_each(|(o, xi)| rmsnorm_row(xi, w, eps, o, bf16));
}

#[inline]
pub fn rmsnorm_row(x: &[f32], w: &[f32], eps: f32, out: &mut [f32], bf16: bool) {
    let ss = dot(x, x);
    let inv = 1.0 / (ss / x.len() as f32 + eps).sqrt();
    for ((o, xv), wv) in out.iter_mut().zip(x).zip(w) {
        *o = (xv * inv) * wv;
    }
    round_slice(out, bf16);
}

/// x += y, then rounded when bf16 (the residual stream after each add).
pub fn add_in_place(x: &mut [f32], y: &[f32], bf16: bool) {
    x.par_chunks_mut(4096)
        .zip(y.par_chunks(4096))
        .for_each(|(a, b)| {
            for (a, b) in a.iter_mut().zip(b) {
                *a += *b;
            }
            round_slice(a, bf16);
        });
}

/// gate ← silu(gate) · up, rounded when bf16.
pub fn swiglu(gate: &mut [f32], up: &[f32], bf16: bool) {
    gate.par_chunks_mut(4096)
        .zip(up.par_chunks(4096))
        .for_each(|(g, u)| {
            for (g, u) in g.iter_mut().zip(u) {
                let s = *g / (1.0 + exp_f32(-*g));
                *g = s * *u;
            }
            round_slice(g, bf16);
        });
}

/// Rotates adjacent pairs (2i, 2i+1) of each head by the angle table of position `pos`
/// (llama.cpp's RoPE for llama GGUF, whose Q/K weights are permuted to match it).
#[inline]
pub fn rope_row(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32], bf16: bool) {
    for head in x.chunks_mut(head_dim) {
        for i in 0..head_dim / 2 {
            let (a, b) = (head[2 * i], head[2 * i + 1]);
            head[2 * i] = a * cos[i] - b * sin[i];
            head[2 * i + 1] = a * sin[i] + b * cos[i];
        }
    }
    round_slice(x, bf16);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_fixed_order(a: &[f32], b: &[f32]) -> f32 {
        let mut lanes = [0f32; LANES];
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            lanes[i % LANES] += x * y;
        }
        fold(lanes)
    }

    fn data(n: usize, salt: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2654435761).wrapping_add(salt) >> 8) as f32 / 16777216.0
                    - 0.5
            })
            .collect()
    }

    #[test]
    fn dot_follows_the_documented_order() {
        for k in [1, 15, 16, 17, 64, 576, 1000] {
            let (a, b) = (data(k, 1), data(k, 2));
            assert_eq!(
                dot(&a, &b).to_bits(),
                naive_fixed_order(&a, &b).to_bits(),
                "k={k}"
            );
        }
    }

    #[test]
    fn matmul_rows_do_not_depend_on_row_count_or_simd_path() {
        let (k, m) = (80, 37);
        let x = data(7 * k, 3);
        let w = data(m * k, 4);
        let mut full = vec![0f32; 7 * m];
        matmul(&x, 7, &w, m, k, &mut full);
        for i in 0..7 {
            let mut one = vec![0f32; m];
            matmul(&x[i * k..(i + 1) * k], 1, &w, m, k, &mut one);
            assert_eq!(one, full[i * m..(i + 1) * m].to_vec());
            for j in 0..m {
                let expect = naive_fixed_order(&x[i * k..(i + 1) * k], &w[j * k..(j + 1) * k]);
                assert_eq!(full[i * m + j].to_bits(), expect.to_bits());
                // The portable build gives the same bits as the dispatched SIMD build.
                let mut g = 0f32;
                block_generic(
                    &x[i * k..(i + 1) * k],
                    1,
                    &w[j * k..(j + 1) * k],
                    1,
                    k,
                    &mut |_, _, v| g = v,
                );
                assert_eq!(g.to_bits(), expect.to_bits());
            }
        }
    }

    #[test]
    fn bf16_rounding_is_nearest_even() {
        assert_eq!(round_bf16(1.0), 1.0);
        // 1 + 2^-8 is exactly half-way between 1 and 1 + 2^-7: ties go to even (1.0).
        assert_eq!(round_bf16(1.0 + 1.0 / 256.0), 1.0);
        assert_eq!(round_bf16(1.0 + 3.0 / 256.0), 1.0 + 4.0 / 256.0);
        assert_eq!(
            round_bf16(-2.5e-3).to_bits(),
            half::bf16::from_f32(-2.5e-3).to_f32().to_bits()
        );
        assert!(round_bf16(f32::NAN).is_nan());
        for x in data(1000, 9) {
            let y = x * 1000.0;
            assert_eq!(round_bf16(y), half::bf16::from_f32(y).to_f32());
        }
    }

    #[test]
    fn exp_f32_is_within_two_ulp_of_f64() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = exp_f32(x) as f64;
            let rel = ((got - want) / want).abs();
            worst = worst.max(rel);
            x += 0.0137;
        }
        assert!(worst < 2.5e-7, "max relative error {worst:e}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-100.0), 0.0);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn rope_rotates_pairs() {
        let mut x = vec![1.0, 0.0, 0.0, 1.0];
        let (c, s) = ([0.0f32, 1.0], [1.0f32, 0.0]);
        rope_row(&mut x, 4, &c, &s, false);
        // pair 0 rotated by 90°: (1,0) → (0,1); pair 1 by 0°: unchanged.
        assert_eq!(x, vec![0.0, 1.0, 0.0, 1.0]);
    }
}
