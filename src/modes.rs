//! Mode presets (DESIGN "Modes"): each mode's default sweep matrix and its `--quick` CPU
//! configuration, kept as data in `templates/modes/<mode>.toml` and embedded in the binary so a
//! GPU host needs no template files beside it.

use serde::Deserialize;
use tracecheck_engine::trace::{AttnImpl, Dtype, Numerics};

/// The embedded preset files, in the order modes are listed to users.
const PRESETS: &[(&str, &str)] = &[
    ("b3_81", include_str!("../templates/modes/b3_81.toml")),
    ("b3_77", include_str!("../templates/modes/b3_77.toml")),
    ("b3_89", include_str!("../templates/modes/b3_89.toml")),
];

/// A mode that does not exist, or a preset file that does not parse (a build defect, reported
/// rather than panicked on).
#[derive(Debug, thiserror::Error)]
pub enum ModeError {
    #[error("unknown mode `{name}` (known modes: {})", names().join(", "))]
    Unknown { name: String },
    #[error("mode preset templates/modes/{name}.toml: {source}")]
    Parse {
        name: String,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("mode preset templates/modes/{name}.toml: {fault}")]
    Invalid { name: String, fault: String },
}

/// A full sweep matrix: the preset's `[matrix]` table, every key required.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    pub backend: Vec<String>,
    /// `PATH.gguf`, `smollm2-135m` or `dummy:SHAPE`.
    pub model: String,
    pub batches: Vec<usize>,
    pub ctx: Vec<usize>,
    pub gen: usize,
    pub span: usize,
    pub dtype: Dtype,
    pub numerics: Numerics,
    pub attn: Vec<AttnImpl>,
    pub kv_aligned: bool,
    pub seed: u64,
    /// Per phase: no engine event for this long kills the cell.
    pub timeout_s: f64,
    pub vram_period_s: f64,
}

/// The preset's `[quick]` table: the keys it has replace the full matrix's.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixOverlay {
    pub backend: Option<Vec<String>>,
    pub model: Option<String>,
    pub batches: Option<Vec<usize>>,
    pub ctx: Option<Vec<usize>>,
    pub gen: Option<usize>,
    pub span: Option<usize>,
    pub dtype: Option<Dtype>,
    pub numerics: Option<Numerics>,
    pub attn: Option<Vec<AttnImpl>>,
    pub kv_aligned: Option<bool>,
    pub seed: Option<u64>,
    pub timeout_s: Option<f64>,
    pub vram_period_s: Option<f64>,
}

impl MatrixOverlay {
    /// `base` with every key this overlay sets replaced.
    pub fn apply(&self, base: &Matrix) -> Matrix {
        let b = base.clone();
        Matrix {
            backend: self.backend.clone().unwrap_or(b.backend),
            model: self.model.clone().unwrap_or(b.model),
            batches: self.batches.clone().unwrap_or(b.batches),
            ctx: self.ctx.clone().unwrap_or(b.ctx),
            gen: self.gen.unwrap_or(b.gen),
            span: self.span.unwrap_or(b.span),
            dtype: self.dtype.unwrap_or(b.dtype),
            numerics: self.numerics.unwrap_or(b.numerics),
            attn: self.attn.clone().unwrap_or(b.attn),
            kv_aligned: self.kv_aligned.unwrap_or(b.kv_aligned),
            seed: self.seed.unwrap_or(b.seed),
            timeout_s: self.timeout_s.unwrap_or(b.timeout_s),
            vram_period_s: self.vram_period_s.unwrap_or(b.vram_period_s),
        }
    }
}

/// One mode's preset file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModePreset {
    pub name: String,
    /// A short human title, e.g. "Multi-batch throughput scaling".
    pub title: String,
    pub matrix: Matrix,
    #[serde(default)]
    pub quick: MatrixOverlay,
}

impl ModePreset {
    /// The full matrix, or the `--quick` one.
    pub fn matrix(&self, quick: bool) -> Matrix {
        if quick {
            self.quick.apply(&self.matrix)
        } else {
            self.matrix.clone()
        }
    }
}

/// The known mode names.
pub fn names() -> Vec<&'static str> {
    PRESETS.iter().map(|(n, _)| *n).collect()
}

/// The preset of mode `name`.
pub fn preset(name: &str) -> Result<ModePreset, ModeError> {
    let (_, text) = PRESETS
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| ModeError::Unknown {
            name: name.to_string(),
        })?;
    let preset: ModePreset = toml::from_str(text).map_err(|e| ModeError::Parse {
        name: name.to_string(),
        source: Box::new(e),
    })?;
    if preset.name != name {
        return Err(ModeError::Invalid {
            name: name.to_string(),
            fault: format!("its `name` is `{}`", preset.name),
        });
    }
    Ok(preset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_and_names_itself() {
        for name in names() {
            let p = preset(name).unwrap();
            assert_eq!(p.name, name);
            for quick in [false, true] {
                let m = p.matrix(quick);
                assert!(m.span <= m.gen, "{name} quick={quick}");
                assert!(!m.batches.is_empty() && !m.ctx.is_empty() && !m.attn.is_empty());
                assert_eq!(m.timeout_s, 600.0);
                assert_eq!(m.vram_period_s, 1.0);
                assert_eq!(m.numerics, Numerics::Invariant);
            }
        }
    }

    #[test]
    fn full_presets_match_design() {
        let m = preset("b3_81").unwrap().matrix(false);
        assert_eq!(
            (m.batches.as_slice(), m.ctx.as_slice(), m.gen, m.span),
            (&[1, 2, 4, 8][..], &[8192][..], 64, 8)
        );
        assert_eq!((m.dtype, m.kv_aligned), (Dtype::Bf16, true));
        assert_eq!(m.attn, [AttnImpl::Flash]);
        let m = preset("b3_77").unwrap().matrix(false);
        assert_eq!(
            (m.batches.as_slice(), m.ctx.as_slice(), m.gen, m.span),
            (&[1][..], &[32768][..], 64, 16)
        );
        assert_eq!(m.dtype, Dtype::Bf16);
        let m = preset("b3_89").unwrap().matrix(false);
        assert_eq!(m.ctx, [4096, 8192, 16384]);
        assert_eq!(m.attn, [AttnImpl::Naive, AttnImpl::Flash]);
        assert_eq!((m.gen, m.span, m.batches.as_slice()), (1, 1, &[1][..]));
    }

    #[test]
    fn quick_presets_match_design() {
        for name in names() {
            let m = preset(name).unwrap().matrix(true);
            assert_eq!(m.model, "smollm2-135m");
            assert_eq!(
                (m.dtype, m.backend.as_slice()),
                (Dtype::F32, &["cpu".to_string()][..])
            );
        }
        let m = preset("b3_81").unwrap().matrix(true);
        assert_eq!((m.ctx.as_slice(), m.gen, m.span), (&[128][..], 16, 8));
        assert_eq!(m.batches, [1, 2, 4]);
        let m = preset("b3_77").unwrap().matrix(true);
        assert_eq!((m.ctx.as_slice(), m.gen, m.span), (&[256][..], 16, 16));
        assert_eq!(m.batches, [1]);
        let m = preset("b3_89").unwrap().matrix(true);
        assert_eq!(
            (m.ctx.as_slice(), m.gen, m.span),
            (&[64, 128, 256][..], 1, 1)
        );
        assert_eq!(m.attn, [AttnImpl::Naive, AttnImpl::Flash]);
    }

    #[test]
    fn unknown_mode_lists_the_modes() {
        let e = preset("b3_99").unwrap_err().to_string();
        assert_eq!(e, "unknown mode `b3_99` (known modes: b3_81, b3_77, b3_89)");
    }
}
