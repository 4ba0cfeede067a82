//! Reads a GGUF file's tokenizer metadata (`tokenizer.ggml.*`) into a [`GgufVocab`].

use crate::gguf::GgufFile;
use crate::tokenizer::{GgufVocab, Tokenizer, TokenizerError};

use super::ModelError;

pub fn gguf_vocab(f: &GgufFile) -> Result<GgufVocab, ModelError> {
    Ok(GgufVocab {
        model: f.get_str("tokenizer.ggml.model")?.to_string(),
        pre: f.get_str_opt("tokenizer.ggml.pre")?.map(str::to_string),
        tokens: f.get_str_array("tokenizer.ggml.tokens")?.to_vec(),
        merges: f
            .get_str_array_opt("tokenizer.ggml.merges")?
            .map(<[String]>::to_vec)
            .unwrap_or_default(),
        token_types: f.get_i32_array_opt("tokenizer.ggml.token_type")?,
        bos: f.get_u32_opt("tokenizer.ggml.bos_token_id")?,
        eos: f.get_u32_opt("tokenizer.ggml.eos_token_id")?,
        source: f.path().display().to_string(),
    })
}

/// The tokenizer of a GGUF model.
pub fn gguf_tokenizer(f: &GgufFile) -> Result<Tokenizer, ModelError> {
    let v = gguf_vocab(f)?;
    Tokenizer::from_vocab(&v).map_err(|e: TokenizerError| ModelError::Invalid {
        origin: f.path().display().to_string(),
        fault: e.to_string(),
    })
}
