//! Quantisation from f32, step for step as ggml's reference `quantize_row_*_ref`
//! (ggml-quants.c) and `ggml_compute_fp32_to_bf16` (ggml-impl.h), so files match ggml's bytes.

use half::f16;

use crate::gguf::error::QuantizeError;
use crate::gguf::types::GgmlType;

const QK4_0: usize = 32;
const QK4_1: usize = 32;
const QK8_0: usize = 32;

/// f32 to f16 bits, round to nearest even (as ggml's GGML_FP32_TO_FP16; NaN payloads may
/// differ between ggml builds, so only NaN-ness is promised).
pub fn f32_to_f16(x: f32) -> u16 {
    f16::from_f32(x).to_bits()
}

/// f32 to bf16 bits exactly as ggml_compute_fp32_to_bf16: NaN keeps its top bits and is forced
/// quiet; everything else rounds to nearest even (overflowing to infinity as ggml does).
pub fn f32_to_bf16(x: f32) -> u16 {
    let u = x.to_bits();
    if u & 0x7fff_ffff > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    (u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

/// Quantise `data` to `ty`, appending the encoded bytes to `out`.
pub fn quantize_into(ty: GgmlType, data: &[f32], out: &mut Vec<u8>) -> Result<(), QuantizeError> {
    let block_size = ty.block_size();
    if !data.len().is_multiple_of(block_size) {
        return Err(QuantizeError::NotBlockMultiple {
            ggml_type: ty,
            len: data.len(),
            block_size,
        });
    }
    out.reserve(data.len() / block_size * ty.type_size());
    match ty {
        GgmlType::F32 => data.iter().for_each(|x| out.extend(x.to_le_bytes())),
        GgmlType::F16 => data
            .iter()
            .for_each(|&x| out.extend(f32_to_f16(x).to_le_bytes())),
        GgmlType::BF16 => data
            .iter()
            .for_each(|&x| out.extend(f32_to_bf16(x).to_le_bytes())),
        GgmlType::Q4_0 => data.chunks_exact(QK4_0).for_each(|x| q4_0(x, out)),
        GgmlType::Q4_1 => data.chunks_exact(QK4_1).for_each(|x| q4_1(x, out)),
        GgmlType::Q8_0 => data.chunks_exact(QK8_0).for_each(|x| q8_0(x, out)),
        other => return Err(QuantizeError::Unsupported(other)),
    }
    Ok(())
}

/// Quantise `data` to `ty` into a new buffer.
pub fn quantize(ty: GgmlType, data: &[f32]) -> Result<Vec<u8>, QuantizeError> {
    let mut out = Vec::new();
    quantize_into(ty, data, &mut out)?;
    Ok(out)
}

/// C's `(int8_t)` of a float as ggml's x86 builds compute it: cvttss2si to i32 (out of range and
/// NaN give 0x80000000) and then truncation to the low byte. Rust's `as` saturates instead.
fn c_f32_to_i8(v: f32) -> i8 {
    if v.is_nan() || !(-2_147_483_648.0..2_147_483_648.0).contains(&v) {
        0
    } else {
        v as i32 as i8
    }
}

/// quantize_row_q4_0_ref for one block.
fn q4_0(x: &[f32], out: &mut Vec<u8>) {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend(f32_to_f16(d).to_le_bytes());
    let (lo, hi) = x.split_at(QK4_0 / 2);
    for (&a, &b) in lo.iter().zip(hi) {
        let x0 = a * id;
        let x1 = b * id;
        // MIN(15, (int8_t)(x + 8.5f)) stored in a uint8_t, wrapping as C does.
        let xi0 = c_f32_to_i8(x0 + 8.5).min(15) as u8;
        let xi1 = c_f32_to_i8(x1 + 8.5).min(15) as u8;
        out.push(xi0 | (xi1 << 4));
    }
}

/// quantize_row_q4_1_ref for one block.
fn q4_1(x: &[f32], out: &mut Vec<u8>) {
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend(f32_to_f16(d).to_le_bytes());
    out.extend(f32_to_f16(min).to_le_bytes());
    let (lo, hi) = x.split_at(QK4_1 / 2);
    for (&a, &b) in lo.iter().zip(hi) {
        let x0 = (a - min) * id;
        let x1 = (b - min) * id;
        let xi0 = c_f32_to_i8(x0 + 0.5).min(15) as u8;
        let xi1 = c_f32_to_i8(x1 + 0.5).min(15) as u8;
        out.push(xi0 | (xi1 << 4));
    }
}

/// quantize_row_q8_0_ref for one block.
fn q8_0(x: &[f32], out: &mut Vec<u8>) {
    let mut amax = 0.0f32;
    for &v in x {
        // MAX(a, b) is `a > b ? a : b`; spelled out so NaN behaves as in ggml.
        amax = if amax > v.abs() { amax } else { v.abs() };
    }
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend(f32_to_f16(d).to_le_bytes());
    for &v in x {
        // roundf: halves away from zero, as f32::round.
        out.push(c_f32_to_i8((v * id).round()) as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected bytes are worked out by hand in the comments.

    #[test]
    fn bf16_rounding_by_hand() {
        assert_eq!(f32_to_bf16(1.0), 0x3F80);
        // 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125: ties to even -> 1.0
        assert_eq!(f32_to_bf16(f32::from_bits(0x3F80_8000)), 0x3F80);
        // 1.0078125 + 2^-8 is halfway, the lower neighbour is odd -> rounds up to 0x3F82
        assert_eq!(f32_to_bf16(f32::from_bits(0x3F81_8000)), 0x3F82);
        // just above halfway rounds up
        assert_eq!(f32_to_bf16(f32::from_bits(0x3F80_8001)), 0x3F81);
        // NaN keeps its top bits and gets the quiet bit (64 = 0x40)
        assert_eq!(f32_to_bf16(f32::from_bits(0x7F80_0001)), 0x7FC0);
        assert_eq!(f32_to_bf16(f32::from_bits(0xFF81_0000)), 0xFFC1);
        // the largest finite f32 rounds to infinity
        assert_eq!(f32_to_bf16(f32::MAX), 0x7F80);
        assert_eq!(f32_to_bf16(-0.0), 0x8000);
    }

    #[test]
    fn q4_0_block_by_hand() {
        // max |x| is -4.0 at element 0 -> d = -4/-8 = 0.5 (f16 0x3800), id = 2.
        // q = (int8)(x*2 + 8.5): -4 -> 0; 3.5 -> 15; 0.2 -> 8 (8.9); -0.3 -> 7 (7.9);
        // 0.25 -> 9 (9.0); 1.0 -> 10 (10.5)
        let mut x = [0.0f32; 32];
        x[0] = -4.0;
        x[16] = 3.5;
        x[1] = 0.2;
        x[17] = -0.3;
        x[2] = 0.25;
        x[18] = 1.0;
        let bytes = quantize(GgmlType::Q4_0, &x).unwrap();
        let mut want = vec![0x00, 0x38, 0xF0, 0x78, 0xA9];
        want.extend([0x88; 13]); // 0.0 -> 8 in both nibbles
        assert_eq!(bytes, want);
    }

    #[test]
    fn q4_0_positive_max_clamps_to_15() {
        // max |x| is +8 -> d = -1, id = -1: x = -8 -> 16.5 -> 16 -> MIN(15) = 15; 8 -> 0.
        let mut x = [0.0f32; 32];
        x[0] = 8.0;
        x[16] = -8.0;
        let bytes = quantize(GgmlType::Q4_0, &x).unwrap();
        assert_eq!(&bytes[..3], &[0x00, 0xBC, 0xF0]); // f16 -1.0 = 0xBC00
    }

    #[test]
    fn q4_1_block_by_hand() {
        // min -1, max 2.75 -> d = 3.75/15 = 0.25 (f16 0x3400), m = -1 (0xBC00), id = 4.
        // q = (int8)((x+1)*4 + 0.5): -1 -> 0; 2.75 -> 15; 0 -> 4; 0.5 -> 6; 0.1 -> 4 (4.9)
        let mut x = [0.0f32; 32];
        x[0] = -1.0;
        x[16] = 2.75;
        x[1] = 0.5;
        x[17] = 0.1;
        let bytes = quantize(GgmlType::Q4_1, &x).unwrap();
        let mut want = vec![0x00, 0x34, 0x00, 0xBC, 0xF0, 0x46];
        want.extend([0x44; 14]);
        assert_eq!(bytes, want);
    }

    #[test]
    fn q8_0_block_by_hand() {
        // amax 254 -> d = 2 (f16 0x4000), id = 0.5: 254 -> 127; -3 -> -1.5 -> -2 (0xFE);
        // 1 -> 0.5 -> 1 (away from zero); -1 -> -1 (0xFF); 0.9 -> 0.45 -> 0
        let mut x = [0.0f32; 32];
        x[..5].copy_from_slice(&[254.0, -3.0, 1.0, -1.0, 0.9]);
        let bytes = quantize(GgmlType::Q8_0, &x).unwrap();
        let mut want = vec![0x00, 0x40, 0x7F, 0xFE, 0x01, 0xFF, 0x00];
        want.extend([0u8; 27]);
        assert_eq!(bytes, want);
    }

    #[test]
    fn zero_block_has_zero_scale() {
        let x = [0.0f32; 32];
        assert_eq!(quantize(GgmlType::Q8_0, &x).unwrap(), vec![0u8; 34]);
        let q40 = quantize(GgmlType::Q4_0, &x).unwrap();
        // d = 0.0 / -8 = -0.0, which ggml stores as f16 0x8000
        assert_eq!(&q40[..2], &[0x00, 0x80]);
        assert!(q40[2..].iter().all(|&b| b == 0x88)); // 0*0 + 8.5 -> 8
    }

    #[test]
    fn rejects_partial_blocks_and_unsupported_types() {
        assert_eq!(
            quantize(GgmlType::Q8_0, &[0.0; 31]),
            Err(QuantizeError::NotBlockMultiple {
                ggml_type: GgmlType::Q8_0,
                len: 31,
                block_size: 32
            })
        );
        assert_eq!(
            quantize(GgmlType::Q6_K, &[0.0; 256]),
            Err(QuantizeError::Unsupported(GgmlType::Q6_K))
        );
    }
}
