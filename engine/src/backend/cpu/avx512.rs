//! The AVX-512 build of the matmul tiles. Bit-identical to `kernels::block_generic`: lane `l`
//! of an accumulator takes elements `k ≡ l mod 16` in increasing `k`, multiply and add are
//! separate instructions (no FMA), the tail (k mod 16) and the lane fold are the same scalar
//! code. Only the register width differs.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::kernels::{fold, Sink, WeightElem, LANES};

/// R activation rows × C weight rows of dot products.
#[inline(always)]
unsafe fn tile<const R: usize, const C: usize, W: WeightElem>(
    x: &[f32],
    xi: usize,
    w: &[W],
    wj: usize,
    k: usize,
) -> [[f32; C]; R] {
    let full = k / LANES * LANES;
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    let xp: [*const f32; R] = std::array::from_fn(|r| x.as_ptr().add((xi + r) * k));
    let wp: [*const W; C] = std::array::from_fn(|c| w.as_ptr().add((wj + c) * k));
    let mut base = 0;
    while base < full {
        let wv: [__m512; C] = std::array::from_fn(|c| W::load16(wp[c].add(base)));
        for r in 0..R {
            let xv = _mm512_loadu_ps(xp[r].add(base));
            for c in 0..C {
                acc[r][c] = _mm512_add_ps(acc[r][c], _mm512_mul_ps(xv, wv[c]));
            }
        }
        base += LANES;
    }
    let mut out = [[0f32; C]; R];
    for r in 0..R {
        for c in 0..C {
            let mut lanes = [0f32; LANES];
            _mm512_storeu_ps(lanes.as_mut_ptr(), acc[r][c]);
            for i in full..k {
                lanes[i - full] += *xp[r].add(i) * (*wp[c].add(i)).to_f32();
            }
            out[r][c] = fold(lanes);
        }
    }
    out
}

/// out rows 0..n × weight rows 0..m through `sink`: 4×4 tiles, 1×8 for leftover rows (decode
/// steps have 1…3 rows: 8 accumulator chains keep the adders busy), then narrower edges.
///
/// # Safety
/// The CPU must support AVX-512F; `x` holds n×k and `w` m×k elements.
#[target_feature(enable = "avx512f,avx512bw,avx2")]
pub(super) unsafe fn block<W: WeightElem>(
    x: &[f32],
    n: usize,
    w: &[W],
    m: usize,
    k: usize,
    sink: &mut Sink<'_>,
) {
    assert!(x.len() >= n * k && w.len() >= m * k);
    let mut emit = |i: usize, j: usize, o: &[f32]| {
        for (c, v) in o.iter().enumerate() {
            sink(i, j + c, *v);
        }
    };
    let mut j = 0;
    while j + 8 <= m {
        let mut i = 0;
        while i + 4 <= n {
            for jj in [j, j + 4] {
                let o = tile::<4, 4, W>(x, i, w, jj, k);
                for (r, row) in o.iter().enumerate() {
                    emit(i + r, jj, row);
                }
            }
            i += 4;
        }
        for r in i..n {
            emit(r, j, &tile::<1, 8, W>(x, r, w, j, k)[0]);
        }
        j += 8;
    }
    while j + 4 <= m {
        let mut i = 0;
        while i + 4 <= n {
            let o = tile::<4, 4, W>(x, i, w, j, k);
            for (r, row) in o.iter().enumerate() {
                emit(i + r, j, row);
            }
            i += 4;
        }
        for r in i..n {
            emit(r, j, &tile::<1, 4, W>(x, r, w, j, k)[0]);
        }
        j += 4;
    }
    while j < m {
        for r in 0..n {
            emit(r, j, &tile::<1, 1, W>(x, r, w, j, k)[0]);
        }
        j += 1;
    }
}
