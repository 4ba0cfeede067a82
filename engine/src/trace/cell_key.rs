//! Canonical cell keys: the directory name of a cell, holding every setting that can change its
//! logits, e.g. `cuda_b8_p0_ctx8192_gen64_span8_bf16_invariant_flash_kv1_s0`.

use std::fmt;
use std::str::FromStr;

use crate::trace::config::{AttnImpl, CellConfig, Dtype, Numerics};

/// A cell key that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cell key `{key}`: {fault}")]
pub struct CellKeyError {
    pub key: String,
    pub fault: String,
}

/// A parsed cell key: the backend and the full config.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CellKey {
    /// Sanitised backend name.
    pub backend: String,
    /// The config; `variant` is the sanitised label.
    pub config: CellConfig,
}

/// Keeps `[A-Za-z0-9.-]` and turns anything else into `-`, so a label can neither split the key
/// at `_` nor escape its directory.
pub fn sanitize_label(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The canonical key of a cell. `backend` and the variant are sanitised ([`sanitize_label`]);
/// an empty variant counts as none.
pub fn cell_key(backend: &str, config: &CellConfig) -> String {
    CellKey {
        backend: backend.to_string(),
        config: config.clone(),
    }
    .to_string()
}

/// The key of the batch-1 twin of `config` that runs prompt `prompt_offset` alone.
pub fn twin_key(backend: &str, config: &CellConfig, prompt_offset: usize) -> String {
    cell_key(backend, &config.twin(prompt_offset))
}

impl CellKey {
    /// Parses a key; same as `key.parse()`.
    pub fn parse(key: &str) -> Result<CellKey, CellKeyError> {
        key.parse()
    }
}

impl fmt::Display for CellKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        write!(
            f,
            "{}_b{}_p{}_ctx{}_gen{}_span{}_{}_{}_{}_kv{}_s{}",
            sanitize_label(&self.backend),
            c.batch,
            c.prompt_offset,
            c.ctx,
            c.gen,
            c.span,
            c.dtype,
            c.numerics,
            c.attn_impl,
            u8::from(c.kv_aligned),
            c.seed
        )?;
        match c.variant.as_deref() {
            Some(v) if !v.is_empty() => write!(f, "_v{}", sanitize_label(v)),
            _ => Ok(()),
        }
    }
}

impl FromStr for CellKey {
    type Err = CellKeyError;

    fn from_str(key: &str) -> Result<CellKey, CellKeyError> {
        let fail = |fault: String| CellKeyError {
            key: key.to_string(),
            fault,
        };
        let parts: Vec<&str> = key.split('_').collect();
        if parts.len() != 11 && parts.len() != 12 {
            return Err(fail(format!(
                "has {} `_`-separated parts, expected 11 (12 with a variant)",
                parts.len()
            )));
        }
        let label = |s: &str, what: &str| -> Result<String, CellKeyError> {
            if s.is_empty() || sanitize_label(s) != s {
                return Err(fail(format!("{what} `{s}` is empty or not [A-Za-z0-9.-]")));
            }
            Ok(s.to_string())
        };
        let backend = label(parts[0], "backend")?;
        let num = |s: &str, prefix: &str| -> Result<u64, CellKeyError> {
            let digits = s
                .strip_prefix(prefix)
                .ok_or_else(|| fail(format!("`{s}` should start with `{prefix}`")))?;
            // Canonical digits only, so that formatting a parsed key gives it back unchanged.
            let canonical = !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (digits == "0" || !digits.starts_with('0'));
            if !canonical {
                return Err(fail(format!("`{s}`: `{digits}` is not a plain number")));
            }
            digits
                .parse()
                .map_err(|_| fail(format!("`{s}`: number too large")))
        };
        let size = |s: &str, prefix: &str| -> Result<usize, CellKeyError> {
            usize::try_from(num(s, prefix)?).map_err(|_| fail(format!("`{s}`: number too large")))
        };
        fn exact<T: Copy + fmt::Display>(all: &[T], s: &str) -> Option<T> {
            all.iter().copied().find(|v| v.to_string() == s)
        }
        let dtype = exact(Dtype::ALL, parts[6]).ok_or_else(|| {
            fail(format!(
                "dtype `{}` is not one of {:?}",
                parts[6],
                Dtype::NAMES
            ))
        })?;
        let numerics = exact(Numerics::ALL, parts[7]).ok_or_else(|| {
            fail(format!(
                "numerics `{}` is not one of {:?}",
                parts[7],
                Numerics::NAMES
            ))
        })?;
        let attn_impl = exact(AttnImpl::ALL, parts[8]).ok_or_else(|| {
            fail(format!(
                "attention `{}` is not one of {:?}",
                parts[8],
                AttnImpl::NAMES
            ))
        })?;
        let kv_aligned = match parts[9] {
            "kv1" => true,
            "kv0" => false,
            other => return Err(fail(format!("`{other}` should be kv1 or kv0"))),
        };
        let variant = match parts.get(11) {
            None => None,
            Some(v) => {
                let v = v
                    .strip_prefix('v')
                    .ok_or_else(|| fail(format!("`{v}` should start with `v`")))?;
                Some(label(v, "variant")?)
            }
        };
        Ok(CellKey {
            backend,
            config: CellConfig {
                batch: size(parts[1], "b")?,
                prompt_offset: size(parts[2], "p")?,
                ctx: size(parts[3], "ctx")?,
                gen: size(parts[4], "gen")?,
                span: size(parts[5], "span")?,
                dtype,
                numerics,
                attn_impl,
                variant,
                kv_aligned,
                seed: num(parts[10], "s")?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn design_example() -> CellConfig {
        CellConfig {
            batch: 8,
            prompt_offset: 0,
            ctx: 8192,
            gen: 64,
            span: 8,
            dtype: Dtype::Bf16,
            numerics: Numerics::Invariant,
            attn_impl: AttnImpl::Flash,
            variant: None,
            kv_aligned: true,
            seed: 0,
        }
    }

    #[test]
    fn formats_design_example() {
        assert_eq!(
            cell_key("cuda", &design_example()),
            "cuda_b8_p0_ctx8192_gen64_span8_bf16_invariant_flash_kv1_s0"
        );
    }

    #[test]
    fn round_trips() {
        let mut c = design_example();
        let k = CellKey::parse(&cell_key("cuda", &c)).unwrap();
        assert_eq!((k.backend.as_str(), &k.config), ("cuda", &c));

        c.variant = Some("tile-64.v2".into());
        c.kv_aligned = false;
        c.seed = u64::MAX;
        c.dtype = Dtype::F32;
        c.numerics = Numerics::Fast;
        c.attn_impl = AttnImpl::Naive;
        c.prompt_offset = 7;
        let s = cell_key("hip", &c);
        assert_eq!(
            s,
            "hip_b8_p7_ctx8192_gen64_span8_f32_fast_naive_kv0_s18446744073709551615_vtile-64.v2"
        );
        let k: CellKey = s.parse().unwrap();
        assert_eq!(k.config, c);
        assert_eq!(k.to_string(), s);
    }

    #[test]
    fn sanitises_variant_and_backend() {
        let mut c = design_example();
        c.variant = Some("my_variant/../x y".into());
        let s = cell_key("cu_da", &c);
        assert!(s.starts_with("cu-da_b8_"), "{s}");
        assert!(s.ends_with("_vmy-variant-..-x-y"), "{s}");
        assert!(!s.contains('/'));
        // Formatting the parse gives the same key back.
        assert_eq!(CellKey::parse(&s).unwrap().to_string(), s);
        c.variant = Some(String::new());
        assert!(!cell_key("cuda", &c).contains("_v"));
    }

    #[test]
    fn twin() {
        assert_eq!(
            twin_key("cuda", &design_example(), 5),
            "cuda_b1_p5_ctx8192_gen64_span8_bf16_invariant_flash_kv1_s0"
        );
    }

    #[test]
    fn rejects_malformed_keys() {
        let good = "cuda_b8_p0_ctx8192_gen64_span8_bf16_invariant_flash_kv1_s0";
        for (bad, fault) in [
            ("cuda_b8", "parts"),
            (
                "cuda_x8_p0_ctx8192_gen64_span8_bf16_invariant_flash_kv1_s0",
                "start with `b`",
            ),
            (
                "cuda_b08_p0_ctx8192_gen64_span8_bf16_invariant_flash_kv1_s0",
                "plain number",
            ),
            (
                "cuda_b+8_p0_ctx8192_gen64_span8_bf16_invariant_flash_kv1_s0",
                "plain number",
            ),
            (
                "cuda_b8_p0_ctx8192_gen64_span8_BF16_invariant_flash_kv1_s0",
                "dtype",
            ),
            (
                "cuda_b8_p0_ctx8192_gen64_span8_bf16_invariant_sdpa_kv1_s0",
                "attention",
            ),
            (
                "cuda_b8_p0_ctx8192_gen64_span8_bf16_invariant_flash_kv2_s0",
                "kv1 or kv0",
            ),
            (
                "cuda_b8_p0_ctx8192_gen64_span8_bf16_invariant_flash_kv1_s0_x",
                "start with `v`",
            ),
            (
                "cuda_b8_p0_ctx8192_gen64_span8_bf16_invariant_flash_kv1_s0_v",
                "variant",
            ),
            (
                "_b8_p0_ctx8192_gen64_span8_bf16_invariant_flash_kv1_s0",
                "backend",
            ),
            (
                "cuda_b8_p0_ctx8192_gen64_span8_bf16_invariant_flash_kv1_s99999999999999999999",
                "too large",
            ),
        ] {
            let err = CellKey::parse(bad).unwrap_err();
            assert!(err.to_string().contains(fault), "{bad}: {err}");
            assert!(err.to_string().contains(bad), "{err}");
        }
        assert!(CellKey::parse(good).is_ok());
    }
}
