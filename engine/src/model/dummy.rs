//! `dummy:SHAPE` models: weights from a counter-based RNG keyed by (seed, tensor name, index),
//! so every backend (and any process) derives identical weights without a file.

use std::str::FromStr;

use crate::rng::{counter_hash, unit_f32};

use super::{LlamaConfig, ModelError, TensorName};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DummyShape {
    Tiny,
    Smollm2_135m,
    Llama3_8b,
}

impl FromStr for DummyShape {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, ModelError> {
        Self::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| {
                ModelError::Usage(format!(
                    "unknown dummy shape `{s}` (known: {})",
                    Self::NAMES.join(", ")
                ))
            })
    }
}

impl DummyShape {
    pub const ALL: [DummyShape; 3] = [
        DummyShape::Tiny,
        DummyShape::Smollm2_135m,
        DummyShape::Llama3_8b,
    ];
    /// The spellings after `dummy:`, in [`Self::ALL`]'s order.
    pub const NAMES: [&'static str; 3] = ["tiny", "smollm2-135m", "llama3-8b"];

    pub fn name(self) -> &'static str {
        match self {
            DummyShape::Tiny => "tiny",
            DummyShape::Smollm2_135m => "smollm2-135m",
            DummyShape::Llama3_8b => "llama3-8b",
        }
    }

    /// The real models' hyper-parameters (SmolLM2-135M and Llama-3-8B), or the tiny test shape.
    pub fn config(self) -> LlamaConfig {
        let (vocab, n_embd, n_layer, n_head, n_kv_head, n_ff, n_ctx, theta, eps, tied) = match self
        {
            DummyShape::Tiny => (320, 64, 2, 4, 2, 128, 256, 10_000.0, 1e-5, true),
            DummyShape::Smollm2_135m => (49152, 576, 30, 9, 3, 1536, 8192, 100_000.0, 1e-5, true),
            DummyShape::Llama3_8b => (128256, 4096, 32, 32, 8, 14336, 8192, 500_000.0, 1e-5, false),
        };
        LlamaConfig {
            name: format!("dummy:{}", self.name()),
            arch: "llama".into(),
            vocab,
            n_embd,
            n_layer,
            n_head,
            n_kv_head,
            head_dim: n_embd / n_head,
            n_ff,
            n_ctx_train: n_ctx,
            rope_theta: theta,
            rms_eps: eps,
            tied_embeddings: tied,
        }
    }
}

/// FNV-1a of the tensor's GGUF name: the RNG stream of that tensor.
fn stream_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Norm weights near 1, matrices uniform in ±1/sqrt(fan_in) (keeps activations O(1) at depth).
pub(super) fn tensor(c: &LlamaConfig, seed: u64, name: TensorName) -> Vec<f32> {
    let (rows, cols) = name.shape(c);
    let stream = stream_of(&name.gguf_name());
    let is_norm = rows == 1;
    let scale = if is_norm {
        0.25
    } else {
        1.0 / (cols as f32).sqrt()
    };
    let n = rows * cols;
    let mut out = vec![0f32; n];
    use rayon::prelude::*;
    out.par_chunks_mut(1 << 16)
        .enumerate()
        .for_each(|(ci, chunk)| {
            for (j, v) in chunk.iter_mut().enumerate() {
                let idx = (ci << 16) + j;
                let u = unit_f32(counter_hash(seed, stream, idx as u64)) * 2.0 - 1.0;
                *v = if is_norm { 1.0 + u * scale } else { u * scale };
            }
        });
    out
}
