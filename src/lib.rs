//! tracecheck: proves an LLM engine's decode path matches its prefill path, that every batch
//! size gives the same logits, and that nothing regressed — then reports and gates CI.
//!
//! Main parts:
//! - [`runner`]: `tracecheck run` — expands a mode's matrix ([`modes`]) into cells and runs one
//!   `tracecheck-engine` process per cell.
//! - [`analyze`]: `tracecheck analyze` — reads traces through the engine's trace library,
//!   computes [`metrics`], gives verdicts, builds the [`summary::Summary`].
//! - [`report`]: Markdown + PNG reports from a summary.
//! - [`ci_output`]: JUnit XML (`analyze --junit`) and the GitHub Actions step summary.
//! - [`publish`]: `tracecheck publish` — a static HTML site from the reports.
//! - [`golden`]: compact golden traces (`bless`) and drift against them.
//! - [`history`]: the run history (`analyze --history`, `tracecheck history`): regressions in
//!   speed, memory, status and numerics against prior runs.
//! - [`validate`]: `tracecheck validate` for any engine's traces.
pub mod analyze;
pub mod ci_output;
pub mod golden;
pub mod history;
pub mod metrics;
pub mod modes;
pub mod publish;
pub mod report;
pub mod runner;
pub mod summary;
pub mod validate;
