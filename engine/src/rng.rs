//! Counter-based random numbers: a pure function of (seed, stream, index).
//!
//! `dummy:` weights and prompts must be identical on every backend, batch size and thread
//! count, so no generator state is ever carried: each value is a hash of its coordinates. The
//! hash is SplitMix64's output function applied to a key derived from the seed and the stream.
//! It is frozen: changing it changes every `dummy:` trace, and the CUDA backend reimplements it.

/// SplitMix64's increment (2^64 / φ, odd).
pub const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's finaliser (Stafford's "mix13"): a bijection on u64 with full avalanche.
#[inline]
pub const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `index`-th 64-bit value of stream `stream` under `seed`.
///
/// Exactly: `key = mix64(mix64(seed + GAMMA) ^ (stream · GAMMA))`, then
/// `mix64(key + (index + 1) · GAMMA)` (all wrapping), i.e. the `index`-th output of a SplitMix64
/// generator whose state starts at `key`. Hashing the seed before mixing in the stream keeps
/// neighbouring seeds and streams unrelated.
#[inline]
pub const fn counter_hash(seed: u64, stream: u64, index: u64) -> u64 {
    let key = mix64(mix64(seed.wrapping_add(GAMMA)) ^ stream.wrapping_mul(GAMMA));
    mix64(key.wrapping_add(index.wrapping_add(1).wrapping_mul(GAMMA)))
}

/// Maps a 64-bit hash to `[0, n)` by the high half of `h · n` (Lemire); the bias is below
/// n / 2^64. Returns 0 when `n` is 0.
#[inline]
pub const fn below(h: u64, n: u64) -> u64 {
    ((h as u128 * n as u128) >> 64) as u64
}

/// Maps a 64-bit hash to a uniform f32 in `[0, 1)` from its top 24 bits (exact in f32).
#[inline]
pub fn unit_f32(h: u64) -> f32 {
    (h >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
}

/// A stream number for a name (e.g. a tensor name): 64-bit FNV-1a of its UTF-8 bytes.
pub const fn stream_of(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
        i += 1;
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // SplitMix64 seeded with 0 yields these first outputs (Vigna's reference generator).
        assert_eq!(mix64(GAMMA), 0xE220_A839_7B1D_CDAF);
        assert_eq!(mix64(GAMMA.wrapping_mul(2)), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn counter_hash_is_frozen() {
        // Pinned: a change here changes every dummy trace (and must match the CUDA side).
        assert_eq!(counter_hash(0, 0, 0), FROZEN[0]);
        assert_eq!(counter_hash(1, 2, 3), FROZEN[1]);
        assert_eq!(counter_hash(u64::MAX, u64::MAX, u64::MAX), FROZEN[2]);
    }

    const FROZEN: [u64; 3] = [
        0x568A_9B0B_1A2C_05EC,
        0x1981_09F2_B20D_CF03,
        0x7BA8_E05E_958E_39CE,
    ];

    #[test]
    fn below_and_unit_ranges() {
        for i in 0..10_000u64 {
            let h = counter_hash(7, 1, i);
            assert!(below(h, 49_152) < 49_152);
            let u = unit_f32(h);
            assert!((0.0..1.0).contains(&u));
        }
        assert_eq!(below(u64::MAX, 10), 9);
        assert_eq!(below(0, 10), 0);
        assert_eq!(below(123, 0), 0);
        assert_eq!(unit_f32(u64::MAX), 1.0 - 1.0 / (1u64 << 24) as f32);
    }

    #[test]
    fn streams_differ() {
        assert_ne!(counter_hash(1, 0, 0), counter_hash(2, 0, 0));
        assert_ne!(counter_hash(1, 0, 0), counter_hash(1, 1, 0));
        assert_ne!(counter_hash(1, 0, 0), counter_hash(1, 0, 1));
        assert_eq!(stream_of(""), 0xCBF2_9CE4_8422_2325);
        assert_eq!(stream_of("a"), 0xAF63_DC4C_8601_EC8C);
        assert_ne!(
            stream_of("blk.0.attn_q.weight"),
            stream_of("blk.0.attn_k.weight")
        );
    }
}
