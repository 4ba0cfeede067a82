//! Llama hyper-parameters, read from GGUF metadata or given by a `dummy:` shape.

use crate::gguf::GgufFile;

use super::ModelError;

/// The hyper-parameters the forward pass needs. Field names follow llama.cpp's GGUF keys.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub name: String,
    pub arch: String,
    pub vocab: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub n_ctx_train: usize,
    pub rope_theta: f32,
    pub rms_eps: f32,
    /// No `output.weight`: the output projection reuses the token embedding.
    pub tied_embeddings: bool,
}

impl LlamaConfig {
    /// Reads `llama.*` metadata. Every missing or inconsistent key is an error naming the file.
    pub fn from_gguf(f: &GgufFile) -> Result<Self, ModelError> {
        let path = f.path().display().to_string();
        let arch = f.get_str("general.architecture")?.to_string();
        if arch != "llama" {
            return Err(ModelError::Unsupported {
                origin: path,
                what: format!("architecture `{arch}` (tracecheck runs `llama`)"),
            });
        }
        let key = |k: &str| format!("{arch}.{k}");
        let n_embd = f.get_u32(&key("embedding_length"))? as usize;
        let n_head = f.get_u32(&key("attention.head_count"))? as usize;
        let n_kv_head = match f.get_u32_opt(&key("attention.head_count_kv"))? {
            Some(v) => v as usize,
            None => n_head,
        };
        let tok = f
            .tensor_info("token_embd.weight")
            .ok_or_else(|| ModelError::Invalid {
                origin: path.clone(),
                fault: "tensor `token_embd.weight` is missing".into(),
            })?;
        let vocab = tok.dims.get(1).copied().unwrap_or(0) as usize;
        let name = f
            .get_str_opt("general.name")?
            .map(str::to_string)
            .unwrap_or_else(|| {
                f.path()
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
        let head_dim = n_embd.checked_div(n_head).unwrap_or(0);
        let cfg = LlamaConfig {
            name,
            arch: arch.clone(),
            vocab,
            n_embd,
            n_layer: f.get_u32(&key("block_count"))? as usize,
            n_head,
            n_kv_head,
            head_dim,
            n_ff: f.get_u32(&key("feed_forward_length"))? as usize,
            n_ctx_train: f.get_u32(&key("context_length"))? as usize,
            rope_theta: f.get_f32_opt(&key("rope.freq_base"))?.unwrap_or(10_000.0),
            rms_eps: f.get_f32(&key("attention.layer_norm_rms_epsilon"))?,
            tied_embeddings: f.tensor_info("output.weight").is_none(),
        };
        cfg.check(&path)?;
        Ok(cfg)
    }

    /// Shape sanity: catches metadata that would make the forward pass index out of bounds.
    pub fn check(&self, source: &str) -> Result<(), ModelError> {
        let bad = |fault: String| {
            Err(ModelError::Invalid {
                origin: source.to_string(),
                fault,
            })
        };
        if self.n_head == 0 || self.n_kv_head == 0 || self.n_layer == 0 || self.vocab == 0 {
            return bad(format!(
                "zero-sized model: heads {}, kv heads {}, layers {}, vocab {}",
                self.n_head, self.n_kv_head, self.n_layer, self.vocab
            ));
        }
        if !self.n_embd.is_multiple_of(self.n_head) || !self.n_head.is_multiple_of(self.n_kv_head) {
            return bad(format!(
                "embedding {} / heads {} / kv heads {} do not divide evenly",
                self.n_embd, self.n_head, self.n_kv_head
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return bad(format!(
                "head dimension {} is odd (RoPE rotates pairs)",
                self.head_dim
            ));
        }
        Ok(())
    }

    /// RoPE angles for positions 0..max_ctx as ([pos][head_dim/2] cos, sin): computed in f64
    /// and rounded once to f32, so every backend uploads the same table.
    pub fn rope_table(&self, max_ctx: usize) -> (Vec<f32>, Vec<f32>) {
        let half = self.head_dim / 2;
        let mut cos = vec![0f32; max_ctx * half];
        let mut sin = vec![0f32; max_ctx * half];
        for i in 0..half {
            let freq = (self.rope_theta as f64).powf(-2.0 * i as f64 / self.head_dim as f64);
            for pos in 0..max_ctx {
                let a = pos as f64 * freq;
                cos[pos * half + i] = a.cos() as f32;
                sin[pos * half + i] = a.sin() as f32;
            }
        }
        (cos, sin)
    }

    pub fn kv_dim(&self) -> usize {
        self.n_kv_head * self.head_dim
    }

    /// Parameter count (embedding counted once when tied).
    pub fn n_params(&self) -> usize {
        let per_layer = 2 * self.n_embd
            + self.n_embd * self.n_embd * 2
            + self.n_embd * self.kv_dim() * 2
            + 3 * self.n_embd * self.n_ff;
        let out = if self.tied_embeddings {
            0
        } else {
            self.vocab * self.n_embd
        };
        self.vocab * self.n_embd + self.n_layer * per_layer + self.n_embd + out
    }
}
