//! Dequantisation to f32, operation for operation as ggml's reference `dequantize_row_*`
//! (ggml-quants.c), so results match ggml and gguf-py bit for bit.

use half::f16;

use crate::gguf::error::DequantError;
use crate::gguf::types::GgmlType;

const QK4_0: usize = 32;
const QK4_1: usize = 32;
const QK8_0: usize = 32;

/// f16 bits to f32 (exact: every f16 is an f32).
pub fn f16_to_f32(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

/// bf16 bits to f32 (exact: bf16 is the top half of an f32).
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// Dequantise `bytes` of type `ty` into `out`, which must hold exactly the values they encode.
pub fn dequantize_into(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<(), DequantError> {
    if !ty.is_dequantisable() {
        return Err(DequantError::Unsupported(ty));
    }
    let n_blocks = out.len() / ty.block_size();
    let whole = out.len().is_multiple_of(ty.block_size());
    if !whole || n_blocks.checked_mul(ty.type_size()) != Some(bytes.len()) {
        return Err(DequantError::LengthMismatch {
            ggml_type: ty,
            n_bytes: bytes.len(),
            n_values: out.len(),
        });
    }
    match ty {
        GgmlType::F32 => {
            for (y, b) in out.iter_mut().zip(blocks::<4>(bytes)) {
                *y = f32::from_le_bytes(*b);
            }
        }
        GgmlType::F16 => {
            for (y, b) in out.iter_mut().zip(blocks::<2>(bytes)) {
                *y = f16_to_f32(u16::from_le_bytes(*b));
            }
        }
        GgmlType::BF16 => {
            for (y, b) in out.iter_mut().zip(blocks::<2>(bytes)) {
                *y = bf16_to_f32(u16::from_le_bytes(*b));
            }
        }
        GgmlType::Q4_0 => q4_0(bytes, out),
        GgmlType::Q4_1 => q4_1(bytes, out),
        GgmlType::Q8_0 => q8_0(bytes, out),
        other => return Err(DequantError::Unsupported(other)),
    }
    Ok(())
}

/// Dequantise a whole buffer of type `ty` (its length must be a whole number of blocks).
pub fn dequantize(ty: GgmlType, bytes: &[u8]) -> Result<Vec<f32>, DequantError> {
    let n_values = (bytes.len() / ty.type_size()).saturating_mul(ty.block_size());
    let mut out = vec![0.0f32; n_values];
    dequantize_into(ty, bytes, &mut out)?;
    Ok(out)
}

/// Fixed-size views of consecutive blocks; lengths were checked by the caller, so the
/// `try_into` never fails and no index into file data is unchecked.
fn blocks<const N: usize>(bytes: &[u8]) -> impl Iterator<Item = &[u8; N]> {
    bytes.chunks_exact(N).filter_map(|c| c.try_into().ok())
}

/// block_q4_0: f16 d, 16 bytes of nibbles; low nibbles are elements 0..16, high 16..32.
fn q4_0(bytes: &[u8], out: &mut [f32]) {
    for (x, y) in blocks::<18>(bytes).zip(out.chunks_exact_mut(QK4_0)) {
        let d = f16_to_f32(u16::from_le_bytes([x[0], x[1]]));
        let (lo, hi) = y.split_at_mut(QK4_0 / 2);
        for ((&q, y0), y1) in x[2..].iter().zip(lo).zip(hi) {
            let x0 = i32::from(q & 0x0F) - 8;
            let x1 = i32::from(q >> 4) - 8;
            *y0 = x0 as f32 * d;
            *y1 = x1 as f32 * d;
        }
    }
}

/// block_q4_1: f16 d, f16 m, 16 bytes of nibbles; value = q*d + m (two roundings, as ggml).
fn q4_1(bytes: &[u8], out: &mut [f32]) {
    for (x, y) in blocks::<20>(bytes).zip(out.chunks_exact_mut(QK4_1)) {
        let d = f16_to_f32(u16::from_le_bytes([x[0], x[1]]));
        let m = f16_to_f32(u16::from_le_bytes([x[2], x[3]]));
        let (lo, hi) = y.split_at_mut(QK4_1 / 2);
        for ((&q, y0), y1) in x[4..].iter().zip(lo).zip(hi) {
            let x0 = i32::from(q & 0x0F);
            let x1 = i32::from(q >> 4);
            *y0 = x0 as f32 * d + m;
            *y1 = x1 as f32 * d + m;
        }
    }
}

/// block_q8_0: f16 d, 32 i8; value = q*d.
fn q8_0(bytes: &[u8], out: &mut [f32]) {
    for (x, y) in blocks::<34>(bytes).zip(out.chunks_exact_mut(QK8_0)) {
        let d = f16_to_f32(u16::from_le_bytes([x[0], x[1]]));
        for (&q, y) in x[2..].iter().zip(y) {
            *y = f32::from(q as i8) * d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values are worked out by hand in the comments, independent of the code above.

    #[test]
    fn q4_0_block_by_hand() {
        // d = 0.5 (f16 0x3800). Byte j holds element j (low nibble) and j+16 (high nibble).
        let mut block = vec![0x00, 0x38];
        // byte 0: low 0x0 -> (0-8)*0.5 = -4.0, high 0xF -> (15-8)*0.5 = 3.5
        // byte 1: low 0x8 -> 0.0, high 0x9 -> 0.5; the rest 0x77 -> (7-8)*0.5 = -0.5
        block.extend_from_slice(&[0xF0, 0x98]);
        block.extend_from_slice(&[0x77; 14]);
        let out = dequantize(GgmlType::Q4_0, &block).unwrap();
        let mut want = [-0.5f32; 32];
        want[0] = -4.0;
        want[16] = 3.5;
        want[1] = 0.0;
        want[17] = 0.5;
        assert_eq!(out, want);
    }

    #[test]
    fn q4_1_block_by_hand() {
        // d = 0.25 (f16 0x3400), m = -1.0 (f16 0xBC00); value = q*0.25 - 1.
        let mut block = vec![0x00, 0x34, 0x00, 0xBC];
        // byte 0: low 0x0 -> -1.0, high 0xF -> 2.75; byte 1: low 0x4 -> 0.0, high 0x6 -> 0.5
        block.extend_from_slice(&[0xF0, 0x64]);
        block.extend_from_slice(&[0x22; 14]); // 2*0.25 - 1 = -0.5
        let out = dequantize(GgmlType::Q4_1, &block).unwrap();
        let mut want = [-0.5f32; 32];
        want[0] = -1.0;
        want[16] = 2.75;
        want[1] = 0.0;
        want[17] = 0.5;
        assert_eq!(out, want);
    }

    #[test]
    fn q8_0_block_by_hand() {
        // d = 2.0 (f16 0x4000); q = 0, 1, -1, 127, -128, then 3s.
        let mut block = vec![0x00, 0x40, 0x00, 0x01, 0xFF, 0x7F, 0x80];
        block.extend_from_slice(&[0x03; 27]);
        let out = dequantize(GgmlType::Q8_0, &block).unwrap();
        let mut want = vec![0.0f32, 2.0, -2.0, 254.0, -256.0];
        want.extend([6.0f32; 27]);
        assert_eq!(out, want);
    }

    #[test]
    fn q8_0_scale_is_an_f16() {
        // d = f16 0x2E66 = 2^-4 * (1 + 614/1024) = 1638/16384; 3 * d = 4914/16384 (exact).
        let mut block = vec![0x66, 0x2E, 0x03];
        block.extend_from_slice(&[0x00; 31]);
        let out = dequantize(GgmlType::Q8_0, &block).unwrap();
        assert_eq!(out[0], 4914.0 / 16384.0);
        assert_eq!(out[1], 0.0);
    }

    #[test]
    fn plain_types_by_hand() {
        // F32 1.5 = 0x3FC00000; F16 -2.0 = 0xC000; BF16 0x3F80 = 1.0, 0x4049 = 3.140625
        assert_eq!(
            dequantize(GgmlType::F32, &[0x00, 0x00, 0xC0, 0x3F]).unwrap(),
            [1.5]
        );
        assert_eq!(
            dequantize(GgmlType::F16, &[0x00, 0xC0, 0x01, 0x00]).unwrap(),
            [-2.0, 5.960_464_5e-8] // 0x0001 is the smallest f16 subnormal, 2^-24
        );
        assert_eq!(
            dequantize(GgmlType::BF16, &[0x80, 0x3F, 0x49, 0x40]).unwrap(),
            [1.0, 3.140_625]
        );
    }

    #[test]
    fn rejects_unsupported_and_bad_lengths() {
        assert_eq!(
            dequantize(GgmlType::Q5_K, &[0; 176]),
            Err(DequantError::Unsupported(GgmlType::Q5_K))
        );
        let mut out = [0.0f32; 32];
        assert!(matches!(
            dequantize_into(GgmlType::Q4_0, &[0; 17], &mut out),
            Err(DequantError::LengthMismatch { .. })
        ));
        let mut out = [0.0f32; 31];
        assert!(matches!(
            dequantize_into(GgmlType::Q4_0, &[0; 18], &mut out),
            Err(DequantError::LengthMismatch { .. })
        ));
    }
}
