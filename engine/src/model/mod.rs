//! Llama models: configuration ([`LlamaConfig`]), where weights come from ([`ModelSource`]:
//! a GGUF file or a `dummy:` shape), the tokenizer of a GGUF file ([`gguf_tokenizer`]), and the
//! tiny test model ([`tiny`]).

mod config;
mod dummy;
mod source;
pub mod tiny;
mod vocab;

pub use config::LlamaConfig;
pub use dummy::DummyShape;
pub use source::{hex_digest, ModelError, ModelSource, TensorName};
pub use vocab::{gguf_tokenizer, gguf_vocab};
