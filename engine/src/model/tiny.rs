//! The tiny test model: a 2-layer Llama (GQA, tied embeddings) with a small byte-level BPE
//! vocabulary, written as GGUF with a mix of tensor types (F32, F16, BF16, Q8_0, Q4_0, Q4_1) so
//! tests exercise every dequantiser. Weights come from the counter RNG: the file is byte-stable
//! (goldens depend on it).

use std::path::Path;

use crate::gguf::{GgmlType, GgufError, GgufWriter, MetaValue};
use crate::rng::{counter_hash, unit_f32};
use crate::tokenizer::tiny_vocab;

use super::{DummyShape, TensorName};

const SEED: u64 = 0x7EAC_EC4E;

/// The storage type of each tensor: norms F32, the rest spread over the quantised types.
fn storage(name: TensorName) -> GgmlType {
    use TensorName::*;
    match name {
        TokEmbd => GgmlType::F16,
        OutputNorm | AttnNorm(_) | FfnNorm(_) => GgmlType::F32,
        Q(_) => GgmlType::Q8_0,
        K(_) => GgmlType::Q4_0,
        V(_) => GgmlType::Q4_1,
        O(_) => GgmlType::BF16,
        Gate(_) => GgmlType::Q4_1,
        Up(_) => GgmlType::Q8_0,
        Down(_) => GgmlType::F32,
        Output => GgmlType::F16,
    }
}

/// The tiny model's GGUF bytes.
pub fn to_bytes() -> Result<Vec<u8>, GgufError> {
    Ok(builder()?.to_bytes())
}

/// Writes the tiny model to `path` (atomically).
pub fn write(path: &Path) -> Result<(), GgufError> {
    builder()?.write_to(path)
}

fn builder() -> Result<GgufWriter, GgufError> {
    let mut c = DummyShape::Tiny.config();
    c.name = "tracecheck-tiny".into();
    let vocab = tiny_vocab();
    c.vocab = vocab.tokens.len();
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "llama")?;
    w.add_metadata("general.name", c.name.as_str())?;
    w.add_metadata("llama.context_length", c.n_ctx_train as u32)?;
    w.add_metadata("llama.embedding_length", c.n_embd as u32)?;
    w.add_metadata("llama.block_count", c.n_layer as u32)?;
    w.add_metadata("llama.feed_forward_length", c.n_ff as u32)?;
    w.add_metadata("llama.attention.head_count", c.n_head as u32)?;
    w.add_metadata("llama.attention.head_count_kv", c.n_kv_head as u32)?;
    w.add_metadata("llama.rope.freq_base", c.rope_theta)?;
    w.add_metadata("llama.attention.layer_norm_rms_epsilon", c.rms_eps)?;
    w.add_metadata("tokenizer.ggml.model", vocab.model.as_str())?;
    if let Some(pre) = &vocab.pre {
        w.add_metadata("tokenizer.ggml.pre", pre.as_str())?;
    }
    w.add_metadata(
        "tokenizer.ggml.tokens",
        MetaValue::from(vocab.tokens.iter().map(String::as_str).collect::<Vec<_>>()),
    )?;
    w.add_metadata(
        "tokenizer.ggml.merges",
        MetaValue::from(vocab.merges.iter().map(String::as_str).collect::<Vec<_>>()),
    )?;
    if let Some(tt) = &vocab.token_types {
        w.add_metadata("tokenizer.ggml.token_type", tt.clone())?;
    }
    if let Some(b) = vocab.bos {
        w.add_metadata("tokenizer.ggml.bos_token_id", b)?;
    }
    if let Some(e) = vocab.eos {
        w.add_metadata("tokenizer.ggml.eos_token_id", e)?;
    }
    for name in TensorName::all(&c) {
        let (rows, cols) = name.shape(&c);
        let stream = name
            .gguf_name()
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(131).wrapping_add(b as u64));
        let is_norm = rows == 1;
        let scale = if is_norm {
            0.2
        } else {
            1.0 / (cols as f32).sqrt()
        };
        let data: Vec<f32> = (0..rows * cols)
            .map(|i| {
                let u = unit_f32(counter_hash(SEED, stream, i as u64)) * 2.0 - 1.0;
                if is_norm {
                    1.0 + u * scale
                } else {
                    u * scale * 1.5
                }
            })
            .collect();
        let dims: Vec<u64> = if is_norm {
            vec![cols as u64]
        } else {
            vec![cols as u64, rows as u64]
        };
        w.add_tensor(name.gguf_name(), &dims, &data, storage(name))?;
    }
    Ok(w)
}
