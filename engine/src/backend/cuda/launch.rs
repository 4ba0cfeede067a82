//! Kernel launches through `cuLaunchKernelEx`, optionally as programmatic dependent launches
//! (PDL, sm_90+): the kernel may start while the one before it on the stream still runs, and
//! waits for it in the kernel (`pdl_wait` in common.cuh, which every kernel calls before it
//! reads what an earlier kernel wrote). A decode step is ~200 short dependent kernels; PDL
//! overlaps each one's launch and weight prefetch with the tail of the previous one. Inside a
//! stream capture the attribute becomes a programmatic edge of the CUDA graph.

use std::ffi::c_void;
use std::marker::PhantomData;

use cudarc::driver::sys;
use cudarc::driver::{CudaFunction, CudaStream, DeviceRepr};

use crate::backend::BackendError;

use super::memory::dev;

/// One launch's function, stream and parameters (pointers to values that outlive it).
pub(super) struct Launch<'a> {
    stream: &'a CudaStream,
    func: &'a CudaFunction,
    args: Vec<*mut c_void>,
    /// Thread-block clusters of (1, 1, cluster_z); 1: none.
    cluster_z: u32,
    _args: PhantomData<&'a ()>,
}

impl<'a> Launch<'a> {
    pub fn new(stream: &'a CudaStream, func: &'a CudaFunction) -> Self {
        Launch {
            stream,
            func,
            args: Vec::with_capacity(24),
            cluster_z: 1,
            _args: PhantomData,
        }
    }

    /// The next kernel parameter, by reference (the driver copies it at launch).
    pub fn arg<T: DeviceRepr>(&mut self, v: &'a T) -> &mut Self {
        self.args.push(v as *const T as *mut c_void);
        self
    }

    /// Groups the blocks into thread-block clusters of (1, 1, `z`) (sm_90+; the grid's z must
    /// be a multiple of it).
    pub fn clusters(&mut self, z: u32) -> &mut Self {
        self.cluster_z = z;
        self
    }

    /// Launches with `grid` × `block` threads and `smem` bytes of dynamic shared memory; `pdl`
    /// allows the kernel to start before the previous one on the stream has finished.
    ///
    /// # Safety
    /// The parameters must be exactly the kernel's, in order and with its types (device
    /// pointers as u64, int as i32, float as f32), and every buffer must be large enough for
    /// the launch shape; with `pdl` the kernel must call `pdl_wait` before touching anything
    /// an earlier kernel writes.
    pub unsafe fn run(
        mut self,
        grid: (u32, u32, u32),
        block: u32,
        smem: u32,
        pdl: bool,
        what: &str,
    ) -> Result<(), BackendError> {
        self.stream
            .context()
            .bind_to_thread()
            .map_err(|e| dev("binding the CUDA context", e))?;
        // SAFETY: zero is a valid bit pattern for the attributes (plain C unions).
        let mut attrs: [sys::CUlaunchAttribute; 2] = std::mem::zeroed();
        let mut n_attrs = 0;
        if pdl {
            let a = &mut attrs[n_attrs];
            a.id = sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
            a.value.programmaticStreamSerializationAllowed = 1;
            n_attrs += 1;
        }
        if self.cluster_z > 1 {
            let a = &mut attrs[n_attrs];
            a.id = sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
            a.value.clusterDim.x = 1;
            a.value.clusterDim.y = 1;
            a.value.clusterDim.z = self.cluster_z;
            n_attrs += 1;
        }
        let cfg = sys::CUlaunchConfig {
            gridDimX: grid.0,
            gridDimY: grid.1,
            gridDimZ: grid.2,
            blockDimX: block,
            blockDimY: 1,
            blockDimZ: 1,
            sharedMemBytes: smem,
            hStream: self.stream.cu_stream(),
            attrs: attrs.as_mut_ptr(),
            numAttrs: n_attrs as u32,
        };
        sys::cuLaunchKernelEx(
            &cfg,
            self.func.cu_function(),
            self.args.as_mut_ptr(),
            std::ptr::null_mut(),
        )
        .result()
        .map_err(|e| dev(&format!("launching {what}"), e))
    }
}
