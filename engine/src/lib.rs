//! tracecheck's bundled engine and the open trace format library.
//!
//! The main types:
//! - [`trace`]: trace format v1 — [`trace::RunRecord`] (run.json), [`trace::SweepRecord`]
//!   (sweep.json), [`trace::LogitsFile`] (logits.safetensors), canonical cell keys and atomic
//!   writes. Every reader and writer of traces (the engine and the analyzer) goes through it; it
//!   needs no backend feature.
//! - [`gguf`]: GGUF v2/v3 reader, writer and dequantisation.
//! - [`tokenizer`]: GPT-2-style BPE tokenizers built from GGUF vocabularies.
//! - [`model`]: Llama configuration and weights (GGUF, `dummy:` shapes, the tiny test model).
//! - [`backend`]: the [`backend::Backend`] trait, the CPU reference backend and the CUDA stub.
//! - [`capture`]: one cell's capture (prompt prefill, greedy decode, reference prefill).

pub mod backend;
pub mod capture;
pub mod fetch;
pub mod gguf;
pub mod memsample;
pub mod model;
pub mod prompts;
pub mod rng;
pub mod tokenizer;
pub mod trace;
