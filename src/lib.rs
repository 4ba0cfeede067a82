//! tracecheck: proves an LLM engine's decode path matches its prefill path, that every batch
//! size gives the same logits, and that nothing regressed — then reports and gates CI.
//!
//! Main parts: [`summary`] (summary.json, what an analysis concluded).
pub mod summary;
