//! A cell's configuration: every setting that can change its logits, shared by run.json,
//! sweep.json and the canonical cell key.

use serde::{Deserialize, Serialize};

/// A name that is not one of an enum's known spellings (for `FromStr` in CLIs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}` (expected one of: {})", expected.join(", "))]
pub struct ParseNameError {
    /// What was being parsed, e.g. "dtype".
    pub what: &'static str,
    /// The text given.
    pub value: String,
    /// The accepted spellings.
    pub expected: &'static [&'static str],
}

/// Defines a fieldless enum whose JSON, `Display` and `FromStr` spelling is one fixed string per
/// variant, so the three can never disagree.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:literal) {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize,
        )]
        $vis enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The spellings of [`Self::ALL`], in the same order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The canonical spelling (as in JSON and cell keys).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::trace::config::ParseNameError;

            // Case-insensitive so `--dtype BF16` works; output is always canonical.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $(if s.eq_ignore_ascii_case($text) {
                    return Ok($name::$variant);
                })+
                Err($crate::trace::config::ParseNameError {
                    what: $what,
                    value: s.to_string(),
                    expected: Self::NAMES,
                })
            }
        }
    };
}
pub(crate) use named_enum;

named_enum! {
    /// The dtype of weights and activations (DESIGN: "bf16 (both backends round at exactly
    /// these points)").
    pub enum Dtype ("dtype") {
        F32 = "f32",
        Bf16 = "bf16",
    }
}

named_enum! {
    /// `fast` lets kernels pick batch-dependent reduction orders; `invariant` forbids it.
    pub enum Numerics ("numerics") {
        Fast = "fast",
        Invariant = "invariant",
    }
}

named_enum! {
    /// The attention kernel family.
    pub enum AttnImpl ("attention implementation") {
        Naive = "naive",
        Flash = "flash",
    }
}

/// run.json's `config`: one cell's settings. Every field is part of the cell key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CellConfig {
    /// Sequences in the batch.
    pub batch: usize,
    /// Sequence b uses prompt `prompt_offset + b`.
    pub prompt_offset: usize,
    /// Prompt length P.
    pub ctx: usize,
    /// Tokens generated per sequence.
    pub gen: usize,
    /// Logit rows stored per sequence.
    pub span: usize,
    pub dtype: Dtype,
    pub numerics: Numerics,
    pub attn_impl: AttnImpl,
    /// A free label for comparing variants of one engine (kept in the key, sanitised).
    #[serde(default)]
    pub variant: Option<String>,
    /// false = ragged prompt lengths with masking.
    pub kv_aligned: bool,
    pub seed: u64,
}

impl CellConfig {
    /// The batch-1 twin of this config that holds prompt `prompt_offset` on its own.
    pub fn twin(&self, prompt_offset: usize) -> CellConfig {
        CellConfig {
            batch: 1,
            prompt_offset,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print() {
        for d in Dtype::ALL {
            assert_eq!(d.as_str().parse::<Dtype>().unwrap(), *d);
            assert_eq!(d.to_string(), d.as_str());
        }
        assert_eq!("BF16".parse::<Dtype>().unwrap(), Dtype::Bf16);
        assert_eq!("Flash".parse::<AttnImpl>().unwrap(), AttnImpl::Flash);
        assert_eq!("fast".parse::<Numerics>().unwrap(), Numerics::Fast);
        let err = "f16".parse::<Dtype>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown dtype `f16` (expected one of: f32, bf16)"
        );
    }

    #[test]
    fn serde_spelling_matches_display() {
        assert_eq!(serde_json::to_string(&Dtype::Bf16).unwrap(), "\"bf16\"");
        assert_eq!(
            serde_json::from_str::<Numerics>("\"invariant\"").unwrap(),
            Numerics::Invariant
        );
        // JSON is case-sensitive even though FromStr is not.
        assert!(serde_json::from_str::<AttnImpl>("\"FLASH\"").is_err());
    }

    #[test]
    fn twin_keeps_everything_but_batch_and_offset() {
        let c = CellConfig {
            batch: 8,
            prompt_offset: 0,
            ctx: 128,
            gen: 16,
            span: 8,
            dtype: Dtype::F32,
            numerics: Numerics::Invariant,
            attn_impl: AttnImpl::Naive,
            variant: Some("x".into()),
            kv_aligned: false,
            seed: 3,
        };
        let t = c.twin(5);
        assert_eq!((t.batch, t.prompt_offset), (1, 5));
        assert_eq!(
            CellConfig {
                batch: 8,
                prompt_offset: 0,
                ..t
            },
            c
        );
    }
}
