//! Where a model's weights come from: a GGUF file or a `dummy:` shape. Backends pull tensors by
//! [`TensorName`] one at a time, so they can convert (e.g. to bf16) without holding the whole
//! model twice.

use std::path::Path;

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::gguf::{GgufError, GgufFile};

use super::{DummyShape, LlamaConfig};

#[derive(Debug, Error)]
pub enum ModelError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("{origin}: {fault}")]
    Invalid { origin: String, fault: String },
    #[error("{origin}: unsupported {what}")]
    Unsupported { origin: String, what: String },
    #[error("{0}")]
    Usage(String),
}

/// The tensors of a Llama model, named independently of any file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorName {
    TokEmbd,
    OutputNorm,
    Output,
    AttnNorm(usize),
    Q(usize),
    K(usize),
    V(usize),
    O(usize),
    FfnNorm(usize),
    Gate(usize),
    Up(usize),
    Down(usize),
}

impl TensorName {
    pub fn gguf_name(self) -> String {
        use TensorName::*;
        match self {
            TokEmbd => "token_embd.weight".into(),
            OutputNorm => "output_norm.weight".into(),
            Output => "output.weight".into(),
            AttnNorm(l) => format!("blk.{l}.attn_norm.weight"),
            Q(l) => format!("blk.{l}.attn_q.weight"),
            K(l) => format!("blk.{l}.attn_k.weight"),
            V(l) => format!("blk.{l}.attn_v.weight"),
            O(l) => format!("blk.{l}.attn_output.weight"),
            FfnNorm(l) => format!("blk.{l}.ffn_norm.weight"),
            Gate(l) => format!("blk.{l}.ffn_gate.weight"),
            Up(l) => format!("blk.{l}.ffn_up.weight"),
            Down(l) => format!("blk.{l}.ffn_down.weight"),
        }
    }

    /// (rows, cols) of the row-major matrix: rows = output features, cols = input features.
    /// Norm weights are one row.
    pub fn shape(self, c: &LlamaConfig) -> (usize, usize) {
        use TensorName::*;
        match self {
            TokEmbd | Output => (c.vocab, c.n_embd),
            OutputNorm | AttnNorm(_) | FfnNorm(_) => (1, c.n_embd),
            Q(_) | O(_) => (c.n_embd, c.n_embd),
            K(_) | V(_) => (c.kv_dim(), c.n_embd),
            Gate(_) | Up(_) => (c.n_ff, c.n_embd),
            Down(_) => (c.n_embd, c.n_ff),
        }
    }

    /// Every tensor of a model in load order.
    pub fn all(c: &LlamaConfig) -> Vec<TensorName> {
        use TensorName::*;
        let mut v = vec![TokEmbd];
        for l in 0..c.n_layer {
            v.extend([
                AttnNorm(l),
                Q(l),
                K(l),
                V(l),
                O(l),
                FfnNorm(l),
                Gate(l),
                Up(l),
                Down(l),
            ]);
        }
        v.push(OutputNorm);
        if !c.tied_embeddings {
            v.push(Output);
        }
        v
    }
}

/// A loaded model description: its config, identity, and a way to produce each tensor as f32.
pub enum ModelSource {
    Gguf {
        file: GgufFile,
        config: LlamaConfig,
        sha256: String,
    },
    Dummy {
        shape: DummyShape,
        config: LlamaConfig,
        seed: u64,
    },
}

impl ModelSource {
    /// Opens a GGUF model: reads its metadata, checks every tensor the forward pass needs is
    /// there with the right shape, and hashes the file.
    pub fn open_gguf(path: &Path) -> Result<Self, ModelError> {
        let file = GgufFile::open(path)?;
        let config = LlamaConfig::from_gguf(&file)?;
        let src = path.display().to_string();
        for name in TensorName::all(&config) {
            let gname = name.gguf_name();
            let info = file
                .tensor_info(&gname)
                .ok_or_else(|| ModelError::Invalid {
                    origin: src.clone(),
                    fault: format!("tensor `{gname}` is missing"),
                })?;
            let (rows, cols) = name.shape(&config);
            let dims: Vec<u64> = info.dims.clone();
            let ok = match dims.as_slice() {
                [c] => rows == 1 && *c as usize == cols,
                [c, r] => *c as usize == cols && *r as usize == rows,
                _ => false,
            };
            if !ok {
                return Err(ModelError::Invalid {
                    origin: src.clone(),
                    fault: format!(
                        "tensor `{gname}` has dims {dims:?}, expected [{cols}, {rows}] from the metadata"
                    ),
                });
            }
        }
        let sha256 = crate::fetch::sha256_file(path).map_err(|e| ModelError::Invalid {
            origin: src.clone(),
            fault: e.to_string(),
        })?;
        Ok(ModelSource::Gguf {
            file,
            config,
            sha256,
        })
    }

    pub fn dummy(shape: DummyShape, seed: u64) -> Self {
        ModelSource::Dummy {
            config: shape.config(),
            shape,
            seed,
        }
    }

    pub fn config(&self) -> &LlamaConfig {
        match self {
            ModelSource::Gguf { config, .. } | ModelSource::Dummy { config, .. } => config,
        }
    }

    /// The model's identity hash: the GGUF file's sha256, or a hash of the dummy spec.
    pub fn sha256(&self) -> String {
        match self {
            ModelSource::Gguf { sha256, .. } => sha256.clone(),
            ModelSource::Dummy { shape, seed, .. } => hex_digest(&Sha256::digest(
                format!("tracecheck-dummy-v1:{}:{seed}", shape.name()).as_bytes(),
            )),
        }
    }

    /// The tensor as row-major f32 (rows = output features).
    pub fn tensor(&self, name: TensorName) -> Result<Vec<f32>, ModelError> {
        match self {
            ModelSource::Gguf { file, .. } => Ok(file.tensor_f32(&name.gguf_name())?),
            ModelSource::Dummy { config, seed, .. } => {
                Ok(super::dummy::tensor(config, *seed, name))
            }
        }
    }

    /// Describes the source for messages: the path or the dummy spec.
    pub fn describe(&self) -> String {
        match self {
            ModelSource::Gguf { file, .. } => file.path().display().to_string(),
            ModelSource::Dummy { shape, .. } => format!("dummy:{}", shape.name()),
        }
    }

    pub fn gguf(&self) -> Option<&GgufFile> {
        match self {
            ModelSource::Gguf { file, .. } => Some(file),
            ModelSource::Dummy { .. } => None,
        }
    }
}

pub fn hex_digest(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
