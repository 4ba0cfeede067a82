//! Device memory: plain `cuMemAlloc` buffers with the backend's own accounting (bytes held and
//! the high-water mark), `--mem-limit` as a budget, and allocation failure as
//! [`BackendError::OutOfMemory`] (exit 3).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cudarc::driver::{result, sys, CudaContext, CudaStream};

use crate::backend::BackendError;

/// Bytes held by the backend and their high-water mark, shared with every buffer.
#[derive(Default)]
pub(crate) struct Counters {
    used: AtomicU64,
    high: AtomicU64,
}

pub(crate) struct Allocator {
    ctx: Arc<CudaContext>,
    limit: Option<u64>,
    counters: Arc<Counters>,
}

/// One device allocation; freed (and un-counted) on drop.
pub(crate) struct DBuf {
    ptr: sys::CUdeviceptr,
    bytes: usize,
    ctx: Arc<CudaContext>,
    counters: Arc<Counters>,
}

impl DBuf {
    /// The device address of element `i` of a buffer of `T`.
    pub fn at<T>(&self, i: usize) -> u64 {
        debug_assert!(i * std::mem::size_of::<T>() <= self.bytes);
        self.ptr + (i * std::mem::size_of::<T>()) as u64
    }

    pub fn ptr(&self) -> u64 {
        self.ptr
    }
}

impl Drop for DBuf {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        // SAFETY: allocated by cuMemAlloc in this context; all work using it was issued on the
        // backend's one stream, which is synchronised before buffers are dropped.
        let _ = self.ctx.bind_to_thread();
        let _ = unsafe { result::free_sync(self.ptr) };
        self.counters
            .used
            .fetch_sub(self.bytes as u64, Ordering::Relaxed);
    }
}

impl Allocator {
    pub fn new(ctx: Arc<CudaContext>, limit: Option<u64>) -> Self {
        Allocator {
            ctx,
            limit,
            counters: Arc::new(Counters::default()),
        }
    }

    pub fn used(&self) -> u64 {
        self.counters.used.load(Ordering::Relaxed)
    }

    pub fn high_water(&self) -> u64 {
        self.counters.high.load(Ordering::Relaxed)
    }

    /// `bytes` of uninitialised device memory, or OutOfMemory naming `what`.
    pub fn alloc(&self, bytes: usize, what: &str) -> Result<DBuf, BackendError> {
        let used = self.used();
        let after = used.saturating_add(bytes as u64);
        if let Some(limit) = self.limit {
            if after > limit {
                return Err(self.oom(what, bytes, limit.saturating_sub(used)));
            }
        }
        let ptr = if bytes == 0 {
            0
        } else {
            self.ctx
                .bind_to_thread()
                .map_err(|e| dev("cuCtxSetCurrent", e))?;
            // SAFETY: a plain allocation; the pointer is owned by the returned DBuf.
            match unsafe { result::malloc_sync(bytes) } {
                Ok(p) => p,
                Err(e) if e.0 == sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY => {
                    let free = self.ctx.mem_get_info().map(|m| m.0 as u64).unwrap_or(0);
                    return Err(self.oom(what, bytes, free));
                }
                Err(e) => return Err(dev(&format!("cuMemAlloc ({what})"), e)),
            }
        };
        self.counters
            .used
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.counters.high.fetch_max(after, Ordering::Relaxed);
        Ok(DBuf {
            ptr,
            bytes,
            ctx: self.ctx.clone(),
            counters: self.counters.clone(),
        })
    }

    /// A buffer of `n` elements of `T`, zero-filled.
    pub fn zeros<T>(
        &self,
        n: usize,
        what: &str,
        stream: &CudaStream,
    ) -> Result<DBuf, BackendError> {
        let b = self.alloc(n * std::mem::size_of::<T>(), what)?;
        if b.bytes > 0 {
            // SAFETY: the range lies inside the allocation.
            unsafe { result::memset_d8_async(b.ptr, 0, b.bytes, stream.cu_stream()) }
                .map_err(|e| dev("cuMemsetD8Async", e))?;
        }
        Ok(b)
    }

    /// A buffer holding a copy of `data`.
    pub fn upload<T: Copy>(
        &self,
        data: &[T],
        what: &str,
        stream: &CudaStream,
    ) -> Result<DBuf, BackendError> {
        let b = self.alloc(std::mem::size_of_val(data), what)?;
        copy_htod(&b, 0, data, stream)?;
        Ok(b)
    }

    fn oom(&self, what: &str, bytes: usize, available: u64) -> BackendError {
        BackendError::OutOfMemory {
            what: what.to_string(),
            requested_mb: bytes as f64 / 1e6,
            available_mb: available as f64 / 1e6,
            limit: match self.limit {
                Some(l) => format!("--mem-limit {} MB", l / 1_000_000),
                None => "device memory".into(),
            },
        }
    }
}

/// Copies `data` into `dst` at element offset `at` (stream-ordered). A pageable `data` may be
/// reused at once (staged before the call returns); a pinned one is read when the stream gets
/// to the copy, so the caller must not refill it before then (forward.rs waits on an event).
pub(crate) fn copy_htod<T: Copy>(
    dst: &DBuf,
    at: usize,
    data: &[T],
    stream: &CudaStream,
) -> Result<(), BackendError> {
    if data.is_empty() {
        return Ok(());
    }
    assert!((at + data.len()) * std::mem::size_of::<T>() <= dst.bytes);
    // SAFETY: the destination range lies inside the allocation (asserted).
    unsafe { result::memcpy_htod_async(dst.at::<T>(at), data, stream.cu_stream()) }
        .map_err(|e| dev("cuMemcpyHtoDAsync", e))
}

/// Copies `out.len()` elements from `src` at element offset `at` and waits for them.
pub(crate) fn copy_dtoh<T: Copy>(
    src: &DBuf,
    at: usize,
    out: &mut [T],
    stream: &CudaStream,
) -> Result<(), BackendError> {
    if out.is_empty() {
        return Ok(());
    }
    assert!((at + out.len()) * std::mem::size_of::<T>() <= src.bytes);
    // SAFETY: the source range lies inside the allocation (asserted); the stream is
    // synchronised before `out` is read.
    unsafe { result::memcpy_dtoh_async(out, src.at::<T>(at), stream.cu_stream()) }
        .map_err(|e| dev("cuMemcpyDtoHAsync", e))?;
    stream
        .synchronize()
        .map_err(|e| dev("cuStreamSynchronize", e))
}

pub(crate) fn dev(what: &str, e: result::DriverError) -> BackendError {
    if e.0 == sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY {
        return BackendError::OutOfMemory {
            what: what.to_string(),
            requested_mb: 0.0,
            available_mb: 0.0,
            limit: "device memory".into(),
        };
    }
    BackendError::Device(format!("{what}: {e}"))
}
