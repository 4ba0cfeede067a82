//! `tracecheck run`'s errors: bad input found before any cell starts, and faults writing the
//! sweep. Each names the flag, file or value and the fault; the binary maps them all to exit 2.

use std::path::PathBuf;

use tracecheck_engine::trace::TraceError;

use crate::modes::ModeError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    #[error(transparent)]
    Mode(#[from] ModeError),
    /// A flag's value does not parse or is out of range.
    #[error("--{flag} {value}: {fault}")]
    BadFlag {
        flag: &'static str,
        value: String,
        fault: String,
    },
    #[error("--span {span} exceeds --gen {gen}: only generated positions can be compared")]
    SpanExceedsGen { span: usize, gen: usize },
    #[error(
        "--numerics fast is not available on the CPU backend (the CPU reference is always \
         `invariant`)"
    )]
    FastOnCpu,
    #[error("ctx {ctx} + gen {gen} = {} positions exceed --max-ctx {max_ctx}", .ctx + .gen)]
    ExceedsMaxCtx {
        ctx: usize,
        gen: usize,
        max_ctx: usize,
    },
    #[error("--model {model}: {fault}")]
    BadModel { model: String, fault: String },
    #[error("--model {}: {source}", .path.display())]
    ModelUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--prompt-ids {}: {fault}", .path.display())]
    BadPromptIds { path: PathBuf, fault: String },
    #[error("tracecheck-engine not found (tried {tried}); build it or pass --engine PATH")]
    EngineNotFound { tried: String },
    #[error("engine {}: {fault}", .path.display())]
    EngineNotRunnable { path: PathBuf, fault: String },
    #[error("--model {model}: fetching it failed: {message}")]
    ModelFetch { model: String, message: String },
    #[error("--out {}: {fault}", .path.display())]
    OutDir { path: PathBuf, fault: String },
    /// The output directory holds another sweep; mixing them would mix models in one report.
    #[error(
        "--out {}: holds a sweep of mode `{found_mode}` with model `{found_model}`, not mode \
         `{mode}` with model `{model}`; choose another --out or pass --force",
        .path.display()
    )]
    OtherSweep {
        path: PathBuf,
        found_mode: String,
        found_model: String,
        mode: String,
        model: String,
    },
    #[error(transparent)]
    Trace(#[from] TraceError),
}

impl RunError {
    /// Every `run` error is bad input or an unusable output directory.
    pub fn exit_code(&self) -> i32 {
        2
    }

    pub(crate) fn flag(
        flag: &'static str,
        value: impl Into<String>,
        fault: impl Into<String>,
    ) -> Self {
        RunError::BadFlag {
            flag,
            value: value.into(),
            fault: fault.into(),
        }
    }
}
