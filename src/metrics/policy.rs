//! Equivalence policies (DESIGN "Metrics, policies, verdicts") as a pure function of
//! [`Stats`]: pass/fail plus typed reasons (their `Display` is the one-line explanation).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::ParseNameError;
use super::nonfinite::NonFiniteKind;
use super::stats::{Side, Stats};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    #[default]
    Exact,
    Fp32,
    Fp16,
    Bf16,
}

/// User overrides (`--atol`, `--min-top1`): they replace the policy's threshold, or add the
/// check to a policy that has none (`exact` stays bit-exact either way).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Overrides {
    pub atol: Option<f64>,
    pub min_top1: Option<f64>,
}

/// The checks a policy (with overrides) applies; NaN/Inf always fails on top of these.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub bit_exact: bool,
    pub max_abs_diff: Option<f64>,
    pub min_top1: Option<f64>,
    pub max_mean_kl: Option<f64>,
    pub flips_near_tie: bool,
    pub atol_overridden: bool,
    pub min_top1_overridden: bool,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Exact => "exact",
            Policy::Fp32 => "fp32",
            Policy::Fp16 => "fp16",
            Policy::Bf16 => "bf16",
        }
    }

    pub fn thresholds(self, overrides: &Overrides) -> Thresholds {
        let (bit_exact, max_abs_diff, min_top1, max_mean_kl) = match self {
            Policy::Exact => (true, None, None, None),
            Policy::Fp32 => (false, Some(1e-3), None, None),
            Policy::Fp16 => (false, Some(5e-2), Some(0.995), None),
            // Measured bf16 noise on SmolLM2: max |Δ| 0.4–1.1, mean KL ~1e-3.
            Policy::Bf16 => (false, Some(1.5), None, Some(5e-3)),
        };
        Thresholds {
            bit_exact,
            max_abs_diff: overrides.atol.or(max_abs_diff),
            min_top1: overrides.min_top1.or(min_top1),
            max_mean_kl,
            flips_near_tie: !bit_exact,
            atol_overridden: overrides.atol.is_some(),
            min_top1_overridden: overrides.min_top1.is_some(),
        }
    }
}

impl FromStr for Policy {
    type Err = ParseNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "exact" => Ok(Policy::Exact),
            "fp32" => Ok(Policy::Fp32),
            "fp16" => Ok(Policy::Fp16),
            "bf16" => Ok(Policy::Bf16),
            _ => Err(ParseNameError {
                what: "policy",
                given: s.to_owned(),
                expected: "exact, fp32, fp16, bf16",
            }),
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why statistics fail their policy. `sequence` is None when they cover one sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum FailReason {
    NonFinite {
        sequence: Option<u32>,
        position: u32,
        side: Side,
        kind: NonFiniteKind,
        id: u32,
        count: u64,
    },
    NotBitExact {
        rows: u64,
        of: u64,
        first_sequence: Option<u32>,
        first_position: u32,
    },
    MaxAbsDiff {
        value: f64,
        limit: f64,
        policy: Policy,
        overridden: bool,
    },
    Top1 {
        value: f64,
        limit: f64,
        policy: Policy,
        overridden: bool,
    },
    MeanKl {
        value: f64,
        limit: f64,
        policy: Policy,
    },
    FlipNotNearTie {
        sequence: Option<u32>,
        position: u32,
        ref_id: u32,
        cand_id: u32,
        gap: f64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyOutcome {
    pub policy: Policy,
    pub thresholds: Thresholds,
    pub pass: bool,
    pub reasons: Vec<FailReason>,
}

/// Applies `policy` (with `overrides`) to `stats`.
pub fn evaluate(stats: &Stats, policy: Policy, overrides: &Overrides) -> PolicyOutcome {
    let th = policy.thresholds(overrides);
    let seq = |s: u32| (stats.sequences > 1).then_some(s);
    let mut reasons = Vec::new();
    for nf in &stats.non_finite {
        reasons.push(FailReason::NonFinite {
            sequence: seq(nf.sequence),
            position: nf.position,
            side: nf.side,
            kind: nf.values.first_kind,
            id: nf.values.first_id,
            count: nf.values.count(),
        });
    }
    if th.bit_exact && !stats.all_bit_exact {
        let first = stats.first_divergent.unwrap_or(super::stats::RowRef {
            sequence: 0,
            position: 0,
        });
        reasons.push(FailReason::NotBitExact {
            rows: stats.rows - stats.bit_exact_rows,
            of: stats.rows,
            first_sequence: seq(first.sequence),
            first_position: first.position,
        });
    }
    if let Some(limit) = th.max_abs_diff {
        if above(stats.max_abs_diff, limit) {
            reasons.push(FailReason::MaxAbsDiff {
                value: stats.max_abs_diff,
                limit,
                policy,
                overridden: th.atol_overridden,
            });
        }
    }
    if let Some(limit) = th.min_top1 {
        if above(limit, stats.top1_agreement) {
            reasons.push(FailReason::Top1 {
                value: stats.top1_agreement,
                limit,
                policy,
                overridden: th.min_top1_overridden,
            });
        }
    }
    if let Some(limit) = th.max_mean_kl {
        if above(stats.mean_kl, limit) {
            reasons.push(FailReason::MeanKl {
                value: stats.mean_kl,
                limit,
                policy,
            });
        }
    }
    if th.flips_near_tie {
        for f in stats.flips.iter().filter(|f| !f.flip.near_tie) {
            reasons.push(FailReason::FlipNotNearTie {
                sequence: seq(f.sequence),
                position: f.position,
                ref_id: f.flip.ref_id,
                cand_id: f.flip.cand_id,
                gap: f.flip.logprob_gap,
            });
        }
    }
    PolicyOutcome {
        policy,
        thresholds: th,
        pass: reasons.is_empty(),
        reasons,
    }
}

/// `value > limit`, and true for NaN on either side so that NaN can never pass.
fn above(value: f64, limit: f64) -> bool {
    value > limit || value.is_nan() || limit.is_nan()
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origin = |policy: &Policy, overridden: bool| {
            if overridden {
                format!("{policy}, overridden")
            } else {
                policy.to_string()
            }
        };
        match self {
            FailReason::NonFinite {
                sequence,
                position,
                side,
                kind,
                id,
                count,
            } => {
                let side = match side {
                    Side::Reference => "reference",
                    Side::Candidate => "candidate",
                };
                write!(f, "{kind} in {side} row {position}")?;
                if let Some(s) = sequence {
                    write!(f, " of sequence {s}")?;
                }
                write!(f, " at id {id}")?;
                if *count > 1 {
                    write!(f, " ({count} non-finite values)")?;
                }
                Ok(())
            }
            FailReason::NotBitExact {
                rows,
                of,
                first_sequence,
                first_position,
            } => {
                write!(f, "{rows} of {of} rows not bit-identical (first at ")?;
                if let Some(s) = first_sequence {
                    write!(f, "sequence {s} ")?;
                }
                write!(f, "position {first_position})")
            }
            FailReason::MaxAbsDiff {
                value,
                limit,
                policy,
                overridden,
            } => write!(
                f,
                "max |Δ| {} > {} ({})",
                num(*value),
                num(*limit),
                origin(policy, *overridden)
            ),
            FailReason::Top1 {
                value,
                limit,
                policy,
                overridden,
            } => write!(
                f,
                "top-1 agreement {} < {} ({})",
                num(*value),
                num(*limit),
                origin(policy, *overridden)
            ),
            FailReason::MeanKl {
                value,
                limit,
                policy,
            } => {
                write!(f, "mean KL {} > {} ({policy})", num(*value), num(*limit))
            }
            FailReason::FlipNotNearTie {
                sequence,
                position,
                ref_id,
                cand_id,
                gap,
            } => {
                write!(f, "flip at ")?;
                if let Some(s) = sequence {
                    write!(f, "sequence {s} ")?;
                }
                write!(
                    f,
                    "position {position} is not a near-tie (gap {}, id {ref_id} → {cand_id})",
                    num(*gap)
                )
            }
        }
    }
}

/// Three significant digits, scientific outside [0.01, 10⁴), trailing zeros dropped:
/// 2.1e-3, 1e-3, 0.41, 1.5, 0.995.
fn num(x: f64) -> String {
    let a = x.abs();
    if x == 0.0 || !x.is_finite() {
        return x.to_string();
    }
    if (0.01..1e4).contains(&a) {
        let digits = (2 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{x:.digits$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        }
    } else {
        let s = format!("{x:.2e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
        format!("{mantissa}e{exp}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_format() {
        assert_eq!(num(2.1e-3), "2.1e-3");
        assert_eq!(num(1e-3), "1e-3");
        assert_eq!(num(0.41), "0.41");
        assert_eq!(num(1.5), "1.5");
        assert_eq!(num(0.995), "0.995");
        assert_eq!(num(5e-2), "0.05");
        assert_eq!(num(1.234567e-7), "1.23e-7");
        assert_eq!(num(0.0), "0");
    }

    #[test]
    fn parse_policy() {
        for p in [Policy::Exact, Policy::Fp32, Policy::Fp16, Policy::Bf16] {
            assert_eq!(p.to_string().parse::<Policy>().unwrap(), p);
        }
        let e = "fp8".parse::<Policy>().unwrap_err();
        assert!(e.to_string().contains("fp8"), "{e}");
    }

    #[test]
    fn overrides_replace_or_add() {
        let o = Overrides {
            atol: Some(0.1),
            min_top1: Some(0.9),
        };
        let t = Policy::Fp32.thresholds(&o);
        assert_eq!((t.max_abs_diff, t.min_top1), (Some(0.1), Some(0.9)));
        let t = Policy::Exact.thresholds(&o);
        assert!(t.bit_exact);
        assert_eq!(
            Policy::Fp16.thresholds(&Overrides::default()).min_top1,
            Some(0.995)
        );
    }
}
