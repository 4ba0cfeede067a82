//! The logits' dtype, which sets the ULP used to call an argmax flip a near-tie.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::ParseNameError;

/// How many ULPs apart two reference logits may be for their flip to count as a near-tie.
pub const NEAR_TIE_ULPS: f64 = 4.0;

/// The dtype the engine computed the logits in (the stored values may be wider).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogitDtype {
    #[default]
    F32,
    F16,
    Bf16,
}

impl LogitDtype {
    /// Explicit mantissa bits (the implicit leading 1 not counted).
    pub fn mantissa_bits(self) -> i32 {
        match self {
            LogitDtype::F32 => 23,
            LogitDtype::F16 => 10,
            LogitDtype::Bf16 => 7,
        }
    }

    /// Exponent of the smallest normal number: below it the spacing stays constant.
    fn min_normal_exponent(self) -> i32 {
        match self {
            LogitDtype::F32 | LogitDtype::Bf16 => -126,
            LogitDtype::F16 => -14,
        }
    }

    /// ULP(x) = 2^(exponent(x) − mantissa_bits), exponent(x) = ⌊log2 |x|⌋ clamped at the
    /// dtype's smallest normal exponent (so zero and subnormals get the subnormal spacing).
    pub fn ulp(self, x: f64) -> f64 {
        let biased = ((x.to_bits() >> 52) & 0x7ff) as i32;
        // f64 subnormals/zero have biased 0; they are far below every dtype's normal range.
        let exponent = (biased - 1023).max(self.min_normal_exponent());
        pow2(exponent - self.mantissa_bits())
    }

    /// Whether two reference logits are within [`NEAR_TIE_ULPS`] ULPs of each other, the ULP
    /// taken at the larger magnitude of the two.
    pub fn is_near_tie(self, a: f32, b: f32) -> bool {
        let (a, b) = (f64::from(a), f64::from(b));
        if !(a.is_finite() && b.is_finite()) {
            return false;
        }
        (a - b).abs() <= NEAR_TIE_ULPS * self.ulp(a.abs().max(b.abs()))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogitDtype::F32 => "f32",
            LogitDtype::F16 => "f16",
            LogitDtype::Bf16 => "bf16",
        }
    }
}

/// Exact 2^e for the exponents ULPs need (−159 ..= 1000 fit f64's normal range).
fn pow2(e: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&e));
    f64::from_bits(((e + 1023) as u64) << 52)
}

impl FromStr for LogitDtype {
    type Err = ParseNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(LogitDtype::F32),
            "f16" | "fp16" | "float16" => Ok(LogitDtype::F16),
            "bf16" | "bfloat16" => Ok(LogitDtype::Bf16),
            _ => Err(ParseNameError {
                what: "dtype",
                given: s.to_owned(),
                expected: "f32, f16, bf16",
            }),
        }
    }
}

impl fmt::Display for LogitDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulp_values() {
        assert_eq!(LogitDtype::F32.ulp(1.0), 2f64.powi(-23));
        assert_eq!(LogitDtype::F32.ulp(1.999), 2f64.powi(-23));
        assert_eq!(LogitDtype::F32.ulp(2.0), 2f64.powi(-22));
        assert_eq!(LogitDtype::Bf16.ulp(-12.5), 2f64.powi(3 - 7));
        assert_eq!(LogitDtype::F16.ulp(0.75), 2f64.powi(-1 - 10));
        // Zero and tiny values get the subnormal spacing.
        assert_eq!(LogitDtype::F32.ulp(0.0), 2f64.powi(-149));
        assert_eq!(LogitDtype::F16.ulp(1e-7), 2f64.powi(-24));
    }

    #[test]
    fn near_tie_boundary_f32() {
        let d = LogitDtype::F32;
        let ulp1 = 2f32.powi(-23);
        // Magnitude 1.0 → ULP 2^-23; 4 ULP below is still a near-tie...
        assert!(d.is_near_tie(1.0, 1.0 - 4.0 * ulp1));
        // ...4.5 ULP (representable: spacing below 1.0 is 2^-24) is not.
        assert!(!d.is_near_tie(1.0, 1.0 - 4.5 * ulp1));
        // Above 1.0, 4 vs 5 spacings.
        assert!(d.is_near_tie(1.0 + 4.0 * ulp1, 1.0));
        assert!(!d.is_near_tie(1.0 + 5.0 * ulp1, 1.0));
        // The larger magnitude sets the ULP: just above 2.0 the ULP doubles.
        let two = 2.0f32;
        assert!(d.is_near_tie(two, two - 8.0 * 2f32.powi(-24) * 2.0)); // 8·2^-23 = 4·ULP(2)
        assert!(!d.is_near_tie(two, two - 9.0 * 2f32.powi(-23)));
        // Negative logits use the magnitude too.
        assert!(d.is_near_tie(-3.0, -3.0 - 4.0 * 2f32.powi(-22)));
        assert!(!d.is_near_tie(-3.0, -3.0 - 5.0 * 2f32.powi(-22)));
        assert!(!d.is_near_tie(f32::NAN, 1.0));
    }

    #[test]
    fn near_tie_boundary_bf16() {
        let d = LogitDtype::Bf16;
        // Magnitude 1.0 → ULP 2^-7 = 0.0078125; 4 ULP = 0.03125.
        assert!(d.is_near_tie(1.0, 0.96875));
        assert!(!d.is_near_tie(1.0, 0.96875 - 0.00390625));
        // Magnitude 16 → ULP 2^-3, 4 ULP = 0.5.
        assert!(d.is_near_tie(16.5, 16.0));
        assert!(d.is_near_tie(16.0, 15.5));
        assert!(!d.is_near_tie(16.0, 15.499));
        // f32 would not call that a near-tie.
        assert!(!LogitDtype::F32.is_near_tie(16.0, 15.5));
    }

    #[test]
    fn parse_and_display() {
        for d in [LogitDtype::F32, LogitDtype::F16, LogitDtype::Bf16] {
            assert_eq!(d.to_string().parse::<LogitDtype>().unwrap(), d);
        }
        assert_eq!("BF16".parse::<LogitDtype>().unwrap(), LogitDtype::Bf16);
        assert!("int8".parse::<LogitDtype>().is_err());
    }
}
