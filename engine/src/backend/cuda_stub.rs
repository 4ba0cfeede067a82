//! The CUDA backend when this build has none: creating it is a clear usage error (exit 2).

use super::{Backend, BackendError, MemoryStats, Precision, SeqChunk};
use crate::model::ModelSource;

/// Stands in for the CUDA backend in builds without it.
pub struct CudaBackend(());

impl CudaBackend {
    pub fn new(_mem_limit: Option<u64>) -> Result<Self, BackendError> {
        Err(BackendError::Usage(
            "--backend cuda: this tracecheck-engine was built without CUDA support (rebuild with `--features cuda`, or use --backend cpu)".into(),
        ))
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }
    fn device(&self) -> String {
        String::new()
    }
    fn driver(&self) -> Option<String> {
        None
    }
    fn load(&mut self, _: &ModelSource, _: Precision) -> Result<(), BackendError> {
        unreachable_stub()
    }
    fn reserve(&mut self, _: usize, _: usize) -> Result<(), BackendError> {
        unreachable_stub()
    }
    fn forward(&mut self, _: &[SeqChunk<'_>], _: &mut Vec<f32>) -> Result<(), BackendError> {
        unreachable_stub()
    }
    fn memory(&self) -> MemoryStats {
        MemoryStats::default()
    }
}

// A stub value cannot be constructed (`new` always fails), so these are never reached; they
// still answer with an error rather than a panic.
fn unreachable_stub() -> Result<(), BackendError> {
    Err(BackendError::Usage("this build has no CUDA backend".into()))
}
